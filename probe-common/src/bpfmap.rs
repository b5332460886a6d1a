//! bpf(2) map auditing: commands counted, the counter key, and what the
//! kernel side needs to name a map fd itself (offsets from the running
//! kernel's BTF, given by userspace).

pub const BPF_MAP_LOOKUP_ELEM: u32 = 1;
pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
pub const BPF_MAP_DELETE_ELEM: u32 = 3;
pub const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
pub const BPF_MAP_LOOKUP_BATCH: u32 = 24;
pub const BPF_MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
pub const BPF_MAP_UPDATE_BATCH: u32 = 26;
pub const BPF_MAP_DELETE_BATCH: u32 = 27;

/// Offsets inside `union bpf_attr` (stable kernel ABI).
pub const ATTR_ELEM_MAP_FD: usize = 0;
/// `attr.key`: a user pointer to the key (single-element commands).
pub const ATTR_ELEM_KEY: usize = 8;
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

/// Lookups: counted as reads when asked (`--reads`).
pub const fn is_lookup(cmd: u32) -> bool {
    matches!(cmd, BPF_MAP_LOOKUP_ELEM | BPF_MAP_LOOKUP_BATCH)
}

pub const fn is_batch(cmd: u32) -> bool {
    matches!(
        cmd,
        BPF_MAP_LOOKUP_AND_DELETE_BATCH | BPF_MAP_UPDATE_BATCH | BPF_MAP_DELETE_BATCH | BPF_MAP_LOOKUP_BATCH
    )
}

/// Key bytes hashed for the hot-key ranking (longer keys: their first 64).
pub const HOT_KEY_MAX_BYTES: usize = 64;

/// FNV-1a (64 bits) over a key's bytes: the kernel side and userspace (and
/// tests) hash the same way. Raw keys are never stored: they can be secrets.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Field offsets in kernel structures, from `/sys/kernel/btf/vmlinux`, for
/// following `current->files->fdt->fd[fd]->private_data` to a `bpf_map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_op: u32,
    pub file_private_data: u32,
    pub map_type: u32,
    pub map_key_size: u32,
    pub map_id: u32,
    pub map_name: u32,
}

/// What the kernel side saw for mapaudit's own calibration call
/// (`CALIB[0]`): userspace checks the id against the map it used, and takes
/// `f_op` as the address of `bpf_map_fops` (which /proc/kallsyms often
/// hides), so that no other kind of fd is ever read as a map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Calibration {
    pub f_op: u64,
    pub map_id: u32,
    pub map_type: u32,
    pub name: [u8; 16],
    /// Non-zero once the program has filled this in.
    pub done: u32,
    pub _pad: u32,
}

/// `HOT_KEYS` key: a map (by id) and a key's hash.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct HotKey {
    pub map_id: u32,
    pub _pad: u32,
    pub hash: u64,
}

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct BpfWriteKey {
    pub pid: u32,
    pub tid: u32,
    pub fd: u32,
    pub cmd: u32,
    /// The map behind `fd` at the call, resolved in the kernel; 0 when it
    /// could not be (userspace then resolves the fd later, if still open).
    pub map_id: u32,
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
    /// The map's name and type as the kernel had them (when `map_id` != 0).
    pub map_name: [u8; 16],
    pub map_type: u32,
    pub _pad: u32,
}

crate::user_pod!(BpfWriteKey, BpfWriteValue, KernelOffsets, Calibration, HotKey);
