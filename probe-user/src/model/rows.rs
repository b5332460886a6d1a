//! The rows: one per goroutine, thread, map instance and call site, with
//! their op counts, and the names and identities they are keyed by.

use std::hash::Hash;

use probe_common::uprobe::{WriteKey, routine};

use super::*;

/// A Go map instance within its process: the header's address and the
/// instance the probe told apart there (see `uprobe::MapState::inst`) — a
/// map freed and another made at the same address are two maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapId {
    pub addr: u64,
    pub inst: u32,
}

impl MapId {
    pub fn of(k: &WriteKey) -> Self {
        Self { addr: k.map, inst: k.inst }
    }
}

impl std::fmt::LowerHex for MapId {
    /// The address: what a user can find in a debugger or a heap dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.addr, f)
    }
}

/// A resolved code location.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Location {
    pub function: String,
    pub file: String,
    pub line: u32,
}

impl Location {
    /// `main.worker main.go:27`: what Go's tracebacks show, with the file's
    /// base name to keep tables narrow.
    pub fn short(&self) -> String {
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{} {}:{}", self.function, base, self.line)
    }
}

/// What is known about an audited process.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    /// 0 for the first program seen at this pid, +1 at each exec (or reuse
    /// of the pid by a new process): a pid plus its generation names one
    /// program run.
    pub generation: u32,
    pub exe: String,
    pub comm: String,
    pub go_version: String,
    /// How `go_version` was decided (None: not known, e.g. in tests).
    pub go_version_source: Option<crate::gobin::VersionSource>,
    /// Its container and Kubernetes pod (None: not in a container).
    pub container: Option<crate::host::container::Container>,
}

/// Op counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ops {
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    /// Lookups (`--reads`): counted apart; never part of `total`.
    pub reads: u64,
    /// Range loops started (`--reads`): counted apart, like reads.
    pub iterations: u64,
}

impl Ops {
    pub fn add(&mut self, routine_id: u8, n: u64) {
        self.add_op(routine::op(routine_id), n);
    }
    pub(super) fn add_op(&mut self, op: routine::Op, n: u64) {
        // Branch-free: the fold adds ops of mixed kinds in a row.
        self.writes += n * u64::from(op == routine::Op::Write);
        self.deletes += n * u64::from(op == routine::Op::Delete);
        self.clears += n * u64::from(op == routine::Op::Clear);
        self.reads += n * u64::from(op == routine::Op::Read);
        self.iterations += n * u64::from(op == routine::Op::Iter);
    }
    /// Every mutation: what rates and rankings are based on.
    pub fn total(&self) -> u64 {
        self.writes + self.deletes + self.clears
    }
}

/// One overlapping write, as seen by the kernel, resolved.
#[derive(Clone, Debug, Default)]
pub struct OverlapEvent {
    pub pid: u32,
    pub map: MapId,
    pub goid: u64,
    pub tid: u32,
    pub site: Option<Location>,
    /// The writer whose write was in progress, when the kernel knew it.
    pub other_goid: Option<u64>,
    pub other_tid: Option<u32>,
    pub other_site: Option<Location>,
    pub ktime_ns: u64,
    /// Detected by the Go runtime (`fatal("concurrent map writes")`) rather
    /// than by the probe at the write's entry.
    pub by_go_runtime: bool,
    /// The detecting access was a read (`--reads`): a read during a write.
    pub read: bool,
    /// The detecting access was an iteration start: Go's "concurrent map
    /// iteration and map write" (`read` is false then).
    pub iter: bool,
    /// The detecting access's call site pc.
    pub pc: u64,
}

/// A bpf(2) map writer row (already resolved to a map id where possible).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BpfRow {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub fd: u32,
    pub map_id: Option<u32>,
    pub map_name: Option<String>,
    pub map_type: Option<String>,
    pub updates: u64,
    pub deletes: u64,
    pub update_calls: u64,
    pub delete_calls: u64,
    /// bpf(2) lookups (`--reads`): elements and calls.
    pub lookups: u64,
    pub lookup_calls: u64,
    pub rate: f64,
}

/// One kernel BPF map's hottest written keys (`--bpf-hot-keys`), by the
/// FNV-1a hash of each key's first 64 bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BpfHotKeys {
    pub map_id: u32,
    /// (hash, writes), hottest first.
    pub keys: Vec<(u64, u64)>,
}

/// Ring-buffer events received, by kind: with the kernel's `ringbuf_full`
/// count they account for every event the probes tried to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    pub new_tuple: u64,
    pub overlap: u64,
    pub exec: u64,
    pub exit: u64,
}

/// Names the collector resolved, keyed like the counters they describe.
#[derive(Default, Debug)]
pub struct Names {
    /// (pid, pc) → call site.
    pub sites: FxHashMap<(u32, u64), Location>,
    /// (pid, map) → `map[K]V`.
    pub map_types: FxHashMap<(u32, MapId), String>,
    /// (pid, goid) → where the goroutine was created.
    pub created_by: FxHashMap<(u32, u64), Location>,
    /// (pid, tid) → thread name.
    pub comms: FxHashMap<(u32, u32), String>,
}

/// `prev` before a row's first tick: it has no baseline for a rate.
pub(super) const NO_BASELINE: u64 = u64::MAX;

/// The model's bookkeeping in a row.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowMeta {
    /// Total ops at the previous tick, for the rate.
    pub(super) prev: u64,
    /// Its sets grew during the running `set_counts` (queued in `Table::dirty`).
    pub(super) dirty: bool,
    /// `Model::epoch` when it last counted (goroutine and map rows).
    pub(super) active: u32,
    /// A free slot: its row was taken out (`Table::take`), and the slot
    /// waits for the next new row.
    pub(super) free: bool,
}

impl Default for RowMeta {
    fn default() -> Self {
        Self { prev: NO_BASELINE, dirty: false, active: 0, free: false }
    }
}

// Laid out for the fold, which updates `ops` and `sites` of rows scattered
// over memory: both in the row's first cache line.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct GoroutineRow {
    pub ops: Ops,
    /// Site pc → mutations there (every mutating routine).
    pub sites: Tally<u64, u64>,
    pub(super) meta: RowMeta,
    pub pid: u32,
    pub goid: u64,
    pub rate: f64,
    pub tids: IdSet<u32>,
    pub maps: IdSet<MapId>,
    pub created_by: Option<Location>,
}

 const _: () = assert!(
    std::mem::offset_of!(GoroutineRow, sites) + std::mem::size_of::<Vec<(u64, u64)>>() <= 64
        && std::mem::offset_of!(GoroutineRow, ops) == 0
);

#[derive(Clone, Debug, Default)]
pub struct ThreadRow {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub ops: Ops,
    pub rate: f64,
    pub goroutines: IdSet<u64>,
    pub(super) meta: RowMeta,
}

// Laid out for the fold (see GoroutineRow): `ops`, `writers` and `sites`
// in the first two cache lines.
#[derive(Clone, Debug, Default)]
#[repr(C, align(64))]
pub struct MapRow {
    pub ops: Ops,
    /// Goroutine id → its ops on this map.
    pub writers: Tally<u64, Ops>,
    /// Site pc → ops there.
    pub sites: Tally<u64, Ops>,
    pub pid: u32,
    pub map: MapId,
    pub type_name: Option<String>,
    pub rate: f64,
    pub overlaps: u64,
    pub(super) meta: RowMeta,
    /// Bumped whenever `writers` or `sites` gains an id.
    pub(super) shape: u32,
    /// What this map's shared-map finding was last built from: (`shape`,
    /// `Model::site_names` generation, or `ALL_NAMED` if every site had a
    /// name, which never changes).
    pub(super) finding: Option<(u32, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct SiteRow {
    pub pid: u32,
    pub pc: u64,
    pub location: Option<Location>,
    pub ops: Ops,
    pub rate: f64,
    pub maps: IdSet<MapId>,
    pub(super) meta: RowMeta,
}
