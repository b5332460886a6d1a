//! Run-time configuration written by userspace before attaching.

/// Global switches, in the single-entry `GLOBAL` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Global {
    /// mapaudit's own tgid: its bpf(2) calls are not audited.
    pub self_pid: u32,
    /// 1: report every exec system-wide (no stop); 0: only tracked ones.
    pub exec_all: u32,
    /// 1: count bpf(2) map writes.
    pub bpf_maps: u32,
    /// Non-zero: count bpf(2) map writes of tracked processes only.
    pub bpf_tracked_only: u32,
    /// Offset of `child_pid` in the `sched_process_fork` record: it moved
    /// when the comm fields became `__data_loc` (read from tracefs).
    pub fork_child_pid_off: u32,
    /// Offsets of `cmd` and `uattr` in the `sys_enter_bpf` record.
    pub bpf_cmd_off: u32,
    pub bpf_uattr_off: u32,
    /// Benchmark only: the pid whose getppid() calls pump events.
    pub bench_pid: u32,
    /// Non-zero: map accesses count only in processes in `TRACKED`
    /// (`record -- CMD`). The probes are then attached once per executable
    /// for every process running it, instead of once per process: a command
    /// that execs the same compiler 100 times attaches once, and nothing is
    /// detached before the end.
    pub maps_tracked_only: u32,
    /// Non-zero: count bpf(2) lookups too (`--reads`).
    pub bpf_reads: u32,
    /// Non-zero: name map fds in the kernel with `kernel` offsets and
    /// `bpf_map_fops` (set after calibration).
    pub bpf_resolve: u32,
    /// Non-zero: this process's next bpf(2) call calibrates (`CALIB`).
    pub bpf_calibrating: u32,
    /// Non-zero: count writes per key hash (`--bpf-hot-keys`).
    pub bpf_hot_keys: u32,
    /// Non-zero: count map iterations (`--reads`); without it, an
    /// iteration start is only checked for a write in progress.
    pub count_iterations: u32,
    /// Offset of `pid` in `struct task_struct` (from the kernel's BTF), for
    /// the raw `sched_process_fork` tracepoint; 0: unknown, and the
    /// tracefs tracepoint is used instead.
    pub task_pid_off: u32,
    pub _pad: u32,
    /// `&bpf_map_fops`, learnt by calibration.
    pub bpf_map_fops: u64,
    pub kernel: crate::bpfmap::KernelOffsets,
    /// Non-zero: a tracked process's first exec into a program whose probes
    /// are already attached for every process of the file
    /// (`ATTACHED_INODES`) is not stopped (`sched_exec`); the offsets below
    /// (kernel BTF) find the exec'd file's inode.
    pub exec_skip_attached: u32,
    pub exec_inode: ExecInodeOffsets,
}

/// Offsets to follow `linux_binprm` → `file` → `inode` (→ `i_ino`, and
/// `i_sb` → `s_dev`), from the kernel's BTF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecInodeOffsets {
    pub binprm_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
}

/// Value of `TRACKED`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracked {
    /// 1: stop this process at exec until userspace has attached.
    pub stop_on_exec: u32,
    /// 1 once this process exec'd (0 in a child at fork): a process that
    /// exec'd before may have run an audited program under its pid, whose
    /// counts must be read before the new program's (its next exec is
    /// always stopped).
    pub execd: u32,
}

crate::user_pod!(Global, Tracked, ExecInodeOffsets);
