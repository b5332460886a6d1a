//! bpf(2) map-write auditing: commands counted and the counter key.

pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
pub const BPF_MAP_DELETE_ELEM: u32 = 3;
pub const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
pub const BPF_MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
pub const BPF_MAP_UPDATE_BATCH: u32 = 26;
pub const BPF_MAP_DELETE_BATCH: u32 = 27;

/// Offsets inside `union bpf_attr` (stable kernel ABI).
pub const ATTR_ELEM_MAP_FD: usize = 0;
pub const ATTR_BATCH_COUNT: usize = 32;
pub const ATTR_BATCH_MAP_FD: usize = 36;

/// Default offsets of the `sys_enter_bpf` tracepoint arguments (every
/// syscall tracepoint lays its args out as 8-byte slots from offset 16);
/// userspace reads the real ones from tracefs into `config::Global`.
pub const TP_CMD: u32 = 16;
pub const TP_UATTR: u32 = 24;
/// Default offset of `child_pid` in `sched_process_fork` (kernels ≥ 6.x with
/// `__data_loc` comms); older kernels: 44.
pub const TP_FORK_CHILD_PID: u32 = 20;

pub const fn is_write(cmd: u32) -> bool {
    matches!(
        cmd,
        BPF_MAP_UPDATE_ELEM
            | BPF_MAP_DELETE_ELEM
            | BPF_MAP_LOOKUP_AND_DELETE_ELEM
            | BPF_MAP_LOOKUP_AND_DELETE_BATCH
            | BPF_MAP_UPDATE_BATCH
            | BPF_MAP_DELETE_BATCH
    )
}

pub const fn is_batch(cmd: u32) -> bool {
    matches!(
        cmd,
        BPF_MAP_LOOKUP_AND_DELETE_BATCH | BPF_MAP_UPDATE_BATCH | BPF_MAP_DELETE_BATCH
    )
}

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct BpfWriteKey {
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    pub cmd: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BpfWriteValue {
    /// Syscalls made.
    pub calls: u64,
    /// Elements requested: 1 per single-element call, `attr.batch.count` for
    /// batch calls (as requested on entry; the kernel may process fewer).
    pub elems: u64,
    /// The caller's `comm`, captured on first insert.
    pub comm: [u8; 16],
}

crate::user_pod!(BpfWriteKey, BpfWriteValue);
