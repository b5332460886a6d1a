//! Names and default capacities of the kernel maps. Userspace looks maps up by
//! these names and resizes them before load; never type a map name twice.

/// Per-CPU hashes: `WriteKey` → `WriteValue`, the one counter every probed
/// write bumps in place. Two tables: the probe writes the one `GEN` names;
/// userspace flips `GEN`, waits for an RCU grace period (every program that
/// read the old generation has returned), then reads and empties the other
/// table in batches. No increment is lost between flip and drain, and the
/// tables hold only what changed in one tick, never the dead.
pub const WRITES: [&str; 2] = ["WRITES0", "WRITES1"];
/// Per table: distinct (thread, goroutine, map instance, site) tuples it
/// can hold. The drainer empties a table every `session::DRAIN_EVERY`, and
/// sooner once it is half full (`INSERTS`); the table must also hold what
/// comes while the other one is emptied (a flip, an RCU grace period —
/// 230–360 ms on a loaded 2-CPU machine — and the reads). A real net/http
/// server minting ~100,000 new tuples a second (`go tool pprof`'s web UI
/// under 4 keep-alive clients) lost 0.4 % of its writes with 16,384 and none
/// with 32,768 (23,049 keys in one drain). A per-CPU table costs ~0.7 µs
/// per entry to create (32,768: ~25 ms of every `record`'s start).
pub const WRITES_DEFAULT_ENTRIES: u32 = 32_768;

/// Per-CPU array of 2 `u64`: new keys inserted into each `WRITES` table
/// since it became the active one (the probe bumps it only on a new key);
/// the drainer polls the active one's sum to drain early.
pub const INSERTS: &str = "INSERTS";

/// LRU hash: tgid → `u32` GC cycles started (`uprobe::routine::GC_START`).
pub const GC_CYCLES: &str = "GC_CYCLES";
pub const GC_CYCLES_ENTRIES: u32 = 8_192;

/// Array with one `u32`: which `WRITES` table the probe counts into (0/1).
pub const GEN: &str = "GEN";

/// Per-CPU array with one `u32`: the CPU's map-instance sequence.
pub const INST_SEQ: &str = "INST_SEQ";

/// LRU hash: `MapKey` → `MapState` (per map address: the instance there and
/// its last writers, for overlaps). Real programs touch many more map
/// addresses over time than are live at once; the least recently written
/// are evicted, never the insert refused. An evicted map written again
/// starts a new instance with no writers: at worst a split row, never a
/// false finding.
pub const MAP_STATE: &str = "MAP_STATE";
pub const MAP_STATE_DEFAULT_ENTRIES: u32 = 65_536;

/// Array of `uprobe::LastEntry`, slot `tid % LAST_ENTRY_SLOTS`: the write a
/// thread entered last (writes to shared maps only). An array slot costs a
/// fraction of a hash update on the hot path. Not per-CPU: the thread may
/// run on another CPU when Go's `fatal` follows (returning from the uprobe
/// trap is a preemption point, and under load the scheduler moves it), and
/// the `fatal` probe must still find the entry. Threads whose tids collide
/// overwrite each other's slot; the probe checks tid and goid, so a
/// collision can only lose an incident, never misname one.
pub const LAST_ENTRY: &str = "LAST_ENTRY";
pub const LAST_ENTRY_SLOTS: u32 = 4096;

/// Array of `uprobe::NestEntry`, slot `tid % NEST_SLOTS`: the wrapper
/// routine a thread entered last (see `uprobe::Cookie::nest`). Shared by
/// all CPUs, since the nested entry may run after a migration.
pub const NEST: &str = "NEST";
pub const NEST_SLOTS: u32 = 1024;

/// Ring buffer of rare events (`events::*`).
pub const EVENTS: &str = "EVENTS";
/// Bytes; a power of two multiple of the page size.
pub const EVENTS_DEFAULT_BYTES: u32 = 1 << 20;

/// Per-CPU array indexed by `lost::*`: what the kernel side could not record.
pub const LOST: &str = "LOST";

/// Hash: tgid → `config::Tracked` — processes whose descendants are followed
/// (`record -- CMD`), stopped at exec until userspace has attached.
pub const TRACKED: &str = "TRACKED";
pub const TRACKED_DEFAULT_ENTRIES: u32 = 8_192;

/// Hash: tgid → the exec's `bpf_ktime_get_ns` — processes the kernel
/// stopped at exec (`sched_exec`, just before its SIGSTOP) whose stop
/// mapaudit has not yet taken over (by handing the process to the exec
/// guard, or finding it gone); `sched_exit` drops a tracked process's entry.
/// The exec guard holds this map's fd: if mapaudit dies before it read a
/// process's exec event, the guard finds the process here and resumes it.
/// A stopped process is a tracked one: this map cannot fill before
/// `TRACKED` does.
pub const EXEC_STOPPED: &str = "EXEC_STOPPED";
pub const EXEC_STOPPED_ENTRIES: u32 = TRACKED_DEFAULT_ENTRIES;

/// Hash: `InodeKey` → 1 — executables whose probes are attached for every
/// process running them (`record -- CMD`, non-PIE: a process of one is
/// named without reading `/proc`, so it may exit before userspace looks).
/// A tracked process's first exec into one is not stopped (`sched_exec`):
/// there is nothing to attach. Filled by userspace after each attach.
pub const ATTACHED_INODES: &str = "ATTACHED_INODES";
pub const ATTACHED_INODES_ENTRIES: u32 = 4_096;

/// An inode as the kernel names it: `i_ino` and its superblock's `s_dev`
/// (the kernel's `dev_t`: major << 20 | minor).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

crate::user_pod!(InodeKey);

/// Array with one `config::Global`.
pub const GLOBAL: &str = "GLOBAL";

/// Per-CPU hash: `bpfmap::BpfWriteKey` → `bpfmap::BpfWriteValue`.
pub const BPF_WRITES: &str = "BPF_WRITES";
pub const BPF_WRITES_DEFAULT_ENTRIES: u32 = 16_384;
/// Single-entry array: `bpfmap::Calibration`.
pub const CALIB: &str = "CALIB";
/// Per-CPU LRU hash: `bpfmap::HotKey` → writes (`--bpf-hot-keys`). LRU: the
/// coldest keys make room; the hottest stay, which is what is ranked.
pub const HOT_KEYS: &str = "HOT_KEYS";
pub const HOT_KEYS_ENTRIES: u32 = 16_384;

/// Program names (the Rust function names in probe-ebpf).
pub const PROG_MAP_WRITE: &str = "map_write";
pub const PROG_EXEC: &str = "sched_exec";
pub const PROG_FORK: &str = "sched_fork";
/// The raw-tracepoint twin of `PROG_FORK` (reads the child from its
/// `task_struct`); `PROG_FORK` is the fallback without BTF.
pub const PROG_FORK_RAW: &str = "sched_fork_raw";
pub const PROG_EXIT: &str = "sched_exit";
pub const PROG_BPF_SYSCALL: &str = "sys_enter_bpf";
/// Benchmark only: an empty uprobe attached where `map_write` would be (the
/// cost floor), and a ring-buffer event pump.
pub const PROG_FLOOR: &str = "map_write_floor";
pub const PROG_BPF_SYSCALL_FLOOR: &str = "sys_enter_bpf_floor";
pub const PROG_BENCH_PUMP: &str = "bench_pump";
