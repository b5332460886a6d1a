//! Rare events sent through the `EVENTS` ring buffer. Every event starts with
//! an `EventHeader`; `kind` says which struct follows.

pub const KIND_NEW_TUPLE: u32 = 1;
pub const KIND_OVERLAP: u32 = 2;
pub const KIND_EXEC: u32 = 3;
pub const KIND_EXIT: u32 = 4;
/// Benchmark filler (`bench_pump`), the size of a `NewTuple`.
pub const KIND_BENCH: u32 = 5;
/// Events `bench_pump` emits per getppid() call.
pub const BENCH_BURST: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`.
    pub ktime_ns: u64,
}

/// A `WriteKey` seen for the first time: carries what is too costly to read
/// on every write — the map's type and the goroutine's creation PC.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NewTuple {
    pub hdr: EventHeader,
    pub key: crate::uprobe::WriteKey,
    /// `*maptype` (RAX at entry).
    pub maptype: u64,
    /// `g.gopc`: PC of the `go` statement that created this goroutine.
    pub gopc: u64,
}

/// A write entered while the map's write-in-progress flag was set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Overlap {
    pub hdr: EventHeader,
    pub key: crate::uprobe::WriteKey,
    pub maptype: u64,
    pub gopc: u64,
    /// The other writer (see `MapState::other_than`).
    pub other: crate::uprobe::Writer,
    /// 1 if `other` is known.
    pub other_known: u32,
    /// `OVERLAP_AT_ENTRY` or `OVERLAP_GO_FATAL`.
    pub source: u32,
}

/// Seen by the probe at a write's entry: the map's write flag was set.
pub const OVERLAP_AT_ENTRY: u32 = 0;
/// The Go runtime itself detected it and called `fatal("concurrent map …")`.
pub const OVERLAP_GO_FATAL: u32 = 1;

/// A tracked process (or any, in system-wide mode) completed an exec.
/// When `stopped` is 1 the kernel sent it SIGSTOP: userspace attaches, then
/// sends SIGCONT.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Exec {
    pub hdr: EventHeader,
    pub stopped: u32,
    /// 1: the exec'd file's probes were already attached for every process
    /// of it (`ATTACHED_INODES`).
    pub attached: u32,
    /// The exec'd file's inode (`maps::InodeKey`); 0 when not read.
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

/// A tracked process's last thread exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Exit {
    pub hdr: EventHeader,
}

crate::user_pod!(EventHeader, NewTuple, Overlap, Exec, Exit);
