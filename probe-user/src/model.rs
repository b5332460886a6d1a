//! The pure model: cumulative kernel counters in, rankings, rates and
//! findings out. No I/O, no clocks (callers pass the tick length), so it is
//! unit-tested without root and shared by the live view and the report.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use rustc_hash::FxHashMap;

use probe_common::{
    lost,
    uprobe::{WriteKey, routine},
};

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
}

/// Op counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ops {
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    /// Lookups (`--reads`): counted apart; never part of `total`.
    pub reads: u64,
}

impl Ops {
    pub fn add(&mut self, routine_id: u8, n: u64) {
        self.add_op(routine::op(routine_id), n);
    }
    fn add_op(&mut self, op: routine::Op, n: u64) {
        // Branch-free: the fold adds ops of mixed kinds in a row.
        self.writes += n * u64::from(op == routine::Op::Write);
        self.deletes += n * u64::from(op == routine::Op::Delete);
        self.clears += n * u64::from(op == routine::Op::Clear);
        self.reads += n * u64::from(op == routine::Op::Read);
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
    pub sites: HashMap<(u32, u64), Location>,
    /// (pid, map) → `map[K]V`.
    pub map_types: HashMap<(u32, MapId), String>,
    /// (pid, goid) → where the goroutine was created.
    pub created_by: HashMap<(u32, u64), Location>,
    /// (pid, tid) → thread name.
    pub comms: HashMap<(u32, u32), String>,
}

/// Ids a row has seen (a goroutine's threads and maps, a thread's
/// goroutines, a site's maps), ascending: a sorted Vec, read like a
/// `BTreeSet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet<K> {
    ids: Vec<K>,
    /// `ids[..sorted]` is sorted; ids added by the running `set_counts` come
    /// after it until that call sorts them in.
    sorted: usize,
}

impl<K: Ord + Copy> IdSet<K> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ascending.
    pub fn iter(&self) -> std::slice::Iter<'_, K> {
        self.ids.iter()
    }

    pub fn as_slice(&self) -> &[K] {
        &self.ids
    }

    pub fn first(&self) -> Option<&K> {
        self.ids.first()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.ids[..self.sorted].binary_search(k).is_ok() || self.ids[self.sorted..].contains(k)
    }

    /// Keeps the ids `keep` says (order kept, so a sorted set stays sorted).
    fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let before = self.ids.len();
        let mut i = 0;
        let mut sorted_kept = 0;
        let sorted = self.sorted;
        self.ids.retain(|k| {
            let k_ok = keep(k);
            if k_ok && i < sorted {
                sorted_kept += 1;
            }
            i += 1;
            k_ok
        });
        if self.ids.len() != before {
            self.sorted = sorted_kept;
            trim(&mut self.ids);
        }
    }

    /// Adds `k`, known to be new.
    fn push_new(&mut self, k: K) {
        self.ids.push(k);
    }

    /// Adds `k` unless present; whether it was added.
    fn insert(&mut self, k: K) -> bool {
        if self.contains(&k) {
            return false;
        }
        self.ids.push(k);
        true
    }

    fn settle(&mut self) {
        if self.sorted < self.ids.len() {
            // A sorted run plus a short tail: the stable sort merges them.
            self.ids.sort();
            self.sorted = self.ids.len();
            trim(&mut self.ids);
        }
    }
}

/// Gives back what growing left unused: most sets and tallies are small
/// and stop growing early, and there is one per row.
fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() {
        v.shrink_to_fit();
    }
}

impl<'a, K> IntoIterator for &'a IdSet<K> {
    type Item = &'a K;
    type IntoIter = std::slice::Iter<'a, K>;
    fn into_iter(self) -> Self::IntoIter {
        self.ids.iter()
    }
}

/// Above this many entries a [`Tally`] keeps a hash index instead of
/// scanning its entries for a new id.
const SCAN_MAX: usize = 32;

/// Per-id counts (a map's writers and sites, a goroutine's sites), read like
/// a `BTreeMap`: ascending ids. Entries never move once added, so the fold
/// updates them through their position, with no lookup.
#[derive(Clone, Debug, Default)]
#[repr(C)] // `entries` first: see GoroutineRow.
pub struct Tally<K, V> {
    /// In the order they were first seen.
    entries: Vec<(K, V)>,
    /// Position by id, once there are more than `SCAN_MAX` entries.
    index: Option<Box<FxHashMap<K, u32>>>,
    /// Positions in ascending id order (settled like [`IdSet`]).
    order: Vec<u32>,
}

impl<K: Ord + Hash + Copy, V: Default> Tally<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.position(k).map(|i| &self.entries[i as usize].1)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.position(k).is_some()
    }

    /// Ascending ids.
    pub fn iter(&self) -> TallyIter<'_, K, V> {
        TallyIter { order: self.order.iter(), entries: &self.entries }
    }

    /// Ascending.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// In ascending id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }

    fn position(&self, k: &K) -> Option<u32> {
        match &self.index {
            Some(ix) => ix.get(k).copied(),
            None => self.entries.iter().position(|e| e.0 == *k).map(|i| i as u32),
        }
    }

    /// `k`'s position, the entry added if new; whether it was.
    fn entry(&mut self, k: K) -> (u32, bool) {
        if let Some(i) = self.position(&k) {
            return (i, false);
        }
        let i = self.entries.len() as u32;
        self.entries.push((k, V::default()));
        match &mut self.index {
            Some(ix) => {
                ix.insert(k, i);
            }
            None if self.entries.len() > SCAN_MAX => {
                self.index = Some(Box::new(self.entries.iter().enumerate().map(|(i, e)| (e.0, i as u32)).collect()));
            }
            None => {}
        }
        (i, true)
    }

    fn at(&mut self, i: u32) -> &mut V {
        &mut self.entries[i as usize].1
    }

    fn settle(&mut self) {
        let Self { entries, order, .. } = self;
        if order.len() < entries.len() {
            order.extend(order.len() as u32..entries.len() as u32);
            // A sorted run plus a short tail: the stable sort merges them.
            order.sort_by_key(|&i| entries[i as usize].0);
            trim(entries);
            trim(order);
        }
    }
}

/// A [`Tally`]'s entries, ascending ids.
#[derive(Clone, Debug)]
pub struct TallyIter<'a, K, V> {
    order: std::slice::Iter<'a, u32>,
    entries: &'a [(K, V)],
}

impl<'a, K, V> Iterator for TallyIter<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        self.order.next().map(|&i| {
            let (k, v) = &self.entries[i as usize];
            (k, v)
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

impl<K, V> DoubleEndedIterator for TallyIter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.order.next_back().map(|&i| {
            let (k, v) = &self.entries[i as usize];
            (k, v)
        })
    }
}

impl<K, V> ExactSizeIterator for TallyIter<'_, K, V> {}

impl<'a, K: Ord + Hash + Copy, V: Default> IntoIterator for &'a Tally<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = TallyIter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `prev` before a row's first tick: it has no baseline for a rate.
const NO_BASELINE: u64 = u64::MAX;

/// The model's bookkeeping in a row.
#[derive(Clone, Copy, Debug)]
struct RowMeta {
    /// Total ops at the previous tick, for the rate.
    prev: u64,
    /// Its sets grew during the running `set_counts` (queued in `Table::dirty`).
    dirty: bool,
    /// `Model::epoch` when it last counted (goroutine and map rows).
    active: u32,
}

impl Default for RowMeta {
    fn default() -> Self {
        Self { prev: NO_BASELINE, dirty: false, active: 0 }
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
    meta: RowMeta,
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
    meta: RowMeta,
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
    meta: RowMeta,
    /// Bumped whenever `writers` or `sites` gains an id.
    shape: u32,
    /// What this map's shared-map finding was last built from: (`shape`,
    /// `Model::site_names` generation, or `ALL_NAMED` if every site had a
    /// name, which never changes).
    finding: Option<(u32, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct SiteRow {
    pub pid: u32,
    pub pc: u64,
    pub location: Option<Location>,
    pub ops: Ops,
    pub rate: f64,
    pub maps: IdSet<MapId>,
    meta: RowMeta,
}

/// One aggregate's rows, read like a slice: busiest first (ties by
/// identity) as ranked at the last tick, rows added since last.
///
/// Rows stay where they were added (their slot: counter keys reach them
/// through it); ranking reorders only `order`.
#[derive(Clone, Debug)]
pub struct Ranking<R> {
    /// By slot.
    rows: Vec<R>,
    /// Slots, in ranking order.
    order: Vec<u32>,
}

impl<R> Default for Ranking<R> {
    fn default() -> Self {
        Self { rows: Vec::new(), order: Vec::new() }
    }
}

impl<R> Ranking<R> {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The `i`th row in ranking order.
    pub fn get(&self, i: usize) -> Option<&R> {
        self.order.get(i).map(|&s| &self.rows[s as usize])
    }

    pub fn first(&self) -> Option<&R> {
        self.get(0)
    }

    /// In ranking order.
    pub fn iter(&self) -> RankingIter<'_, R> {
        RankingIter { order: self.order.iter(), rows: &self.rows }
    }
}

impl<R> std::ops::Index<usize> for Ranking<R> {
    type Output = R;
    fn index(&self, i: usize) -> &R {
        &self.rows[self.order[i] as usize]
    }
}

impl<'a, R> IntoIterator for &'a Ranking<R> {
    type Item = &'a R;
    type IntoIter = RankingIter<'a, R>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A [`Ranking`]'s rows, in ranking order.
#[derive(Clone, Debug)]
pub struct RankingIter<'a, R> {
    order: std::slice::Iter<'a, u32>,
    rows: &'a [R],
}

impl<'a, R> Iterator for RankingIter<'a, R> {
    type Item = &'a R;
    fn next(&mut self) -> Option<&'a R> {
        self.order.next().map(|&s| &self.rows[s as usize])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<&'a R> {
        self.order.nth(n).map(|&s| &self.rows[s as usize])
    }
}

impl<R> DoubleEndedIterator for RankingIter<'_, R> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.order.next_back().map(|&s| &self.rows[s as usize])
    }
}

impl<R> ExactSizeIterator for RankingIter<'_, R> {}

/// A finding kind, as named in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    OverlappingWrites,
    SharedMap,
    /// A lookup while another goroutine's write was in progress (`--reads`).
    ReadDuringWrite,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OverlappingWrites => "overlapping_writes",
            Self::SharedMap => "shared_map",
            Self::ReadDuringWrite => "read_during_write",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub pid: u32,
    pub map: MapId,
    pub type_name: Option<String>,
    pub goroutines: Vec<u64>,
    pub sites: Vec<String>,
    pub count: u64,
    /// Kernel time of the latest occurrence (for "most recent first").
    pub last_ktime_ns: u64,
    /// Map instances it stands for (shared maps of one kind folded
    /// together: `Model::fold_idle`); 1 otherwise.
    pub instances: u64,
}

/// Everything derived at one tick.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    pub totals: Ops,
    pub total_rate: f64,
    pub goroutines: Ranking<GoroutineRow>,
    pub threads: Ranking<ThreadRow>,
    pub maps: Ranking<MapRow>,
    pub sites: Ranking<SiteRow>,
    pub findings: Vec<Finding>,
}

/// A program that ran at a pid and was replaced (exec, or the pid reused):
/// its rows frozen with their names, so it is never merged with its successor.
#[derive(Clone, Debug, Default)]
pub struct Retired {
    pub info: ProcessInfo,
    pub goroutines: Vec<GoroutineRow>,
    pub threads: Vec<ThreadRow>,
    pub maps: Vec<MapRow>,
    /// pc → call site, as resolved in that program.
    pub sites: HashMap<u64, Location>,
    pub findings: Vec<Finding>,
    /// Its rows folded while it ran (`Model::fold_idle`).
    pub folded_maps: Vec<crate::classes::MapClass>,
    pub folded_goroutines: Vec<crate::classes::GoroutineClass>,
}

/// How many per-tick total rates the sparkline keeps.
pub const HISTORY_LEN: usize = 240;

/// A row kind, as its [`Table`] sees it.
trait Ranked: Default {
    type Id: Copy + Ord + Hash + Eq + std::fmt::Debug;
    fn id(&self) -> Self::Id;
    fn total(&self) -> u64;
    fn meta(&mut self) -> &mut RowMeta;
    fn set_rate(&mut self, rate: f64);
    /// Sorts in what the running `set_counts` added to its sets.
    fn settle(&mut self);
}

impl Ranked for GoroutineRow {
    type Id = (u32, u64);
    fn id(&self) -> Self::Id {
        (self.pid, self.goid)
    }
    fn total(&self) -> u64 {
        self.ops.total()
    }
    fn meta(&mut self) -> &mut RowMeta {
        &mut self.meta
    }
    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }
    fn settle(&mut self) {
        self.tids.settle();
        self.maps.settle();
        self.sites.settle();
    }
}

impl Ranked for ThreadRow {
    type Id = (u32, u32);
    fn id(&self) -> Self::Id {
        (self.pid, self.tid)
    }
    fn total(&self) -> u64 {
        self.ops.total()
    }
    fn meta(&mut self) -> &mut RowMeta {
        &mut self.meta
    }
    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }
    fn settle(&mut self) {
        self.goroutines.settle();
    }
}

impl Ranked for MapRow {
    type Id = (u32, MapId);
    fn id(&self) -> Self::Id {
        (self.pid, self.map)
    }
    fn total(&self) -> u64 {
        self.ops.total()
    }
    fn meta(&mut self) -> &mut RowMeta {
        &mut self.meta
    }
    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }
    fn settle(&mut self) {
        self.writers.settle();
        self.sites.settle();
    }
}

impl Ranked for SiteRow {
    type Id = (u32, u64);
    fn id(&self) -> Self::Id {
        (self.pid, self.pc)
    }
    fn total(&self) -> u64 {
        self.ops.total()
    }
    fn meta(&mut self) -> &mut RowMeta {
        &mut self.meta
    }
    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }
    fn settle(&mut self) {
        self.maps.settle();
    }
}

/// Bookkeeping for one aggregate's [`Ranking`].
#[derive(Debug)]
struct Table<R: Ranked> {
    /// Identity → slot.
    index: FxHashMap<R::Id, u32>,
    /// Slots whose sets grew during the running `set_counts`.
    dirty: Vec<u32>,
    /// Slots added since names were last filled in.
    fresh: Vec<u32>,
    /// Ranking scratch: (total, identity) by slot, then (total, identity,
    /// slot) in ranking order.
    now: Vec<(u64, R::Id)>,
    keys: Vec<(u64, R::Id, u32)>,
}

impl<R: Ranked> Default for Table<R> {
    fn default() -> Self {
        Self {
            index: FxHashMap::default(),
            dirty: Vec::new(),
            fresh: Vec::new(),
            now: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl<R: Ranked> Table<R> {
    /// The slot of the row `id`, added (ranked last) if new.
    fn slot(&mut self, rank: &mut Ranking<R>, id: R::Id, make: impl FnOnce() -> R) -> u32 {
        *self.index.entry(id).or_insert_with(|| {
            let slot = rank.rows.len() as u32;
            rank.rows.push(make());
            rank.order.push(slot);
            self.fresh.push(slot);
            slot
        })
    }

    fn get<'a>(&self, rank: &'a Ranking<R>, id: &R::Id) -> Option<&'a R> {
        self.index.get(id).map(|&s| &rank.rows[s as usize])
    }

    /// Queues the row at `slot` for `settle`.
    fn touch(&mut self, rank: &mut Ranking<R>, slot: u32) {
        let m = rank.rows[slot as usize].meta();
        if !m.dirty {
            m.dirty = true;
            self.dirty.push(slot);
        }
    }

    fn settle(&mut self, rank: &mut Ranking<R>) {
        for slot in self.dirty.drain(..) {
            let r = &mut rank.rows[slot as usize];
            r.settle();
            r.meta().dirty = false;
        }
    }

    /// Rates since the last tick (a row's first tick has no baseline), then
    /// the ranking.
    fn tick(&mut self, rank: &mut Ranking<R>, secs: f64) {
        self.now.clear();
        for r in &mut rank.rows {
            let total = r.total();
            let m = r.meta();
            // `secs` is the tick divided by the sampling duty (see Model::tick).
            let rate =
                if secs > 0.0 && m.prev != NO_BASELINE { total.saturating_sub(m.prev) as f64 / secs } else { 0.0 };
            m.prev = total;
            r.set_rate(rate);
            self.now.push((total, r.id()));
        }
        self.rank(rank);
    }

    /// Ranks again without a tick (rates stay).
    fn rerank(&mut self, rank: &mut Ranking<R>) {
        self.now.clear();
        self.now.extend(rank.rows.iter().map(|r| (r.total(), r.id())));
        self.rank(rank);
    }

    /// Busiest first, ties by identity. `now` holds every row's (total,
    /// identity), by slot.
    fn rank(&mut self, rank: &mut Ranking<R>) {
        let now = &self.now;
        self.keys.clear();
        self.keys.extend(rank.order.iter().map(|&s| (now[s as usize].0, now[s as usize].1, s)));
        let busiest_first = |a: &(u64, R::Id, u32), b: &(u64, R::Id, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        // Usually only a few rows change places, often none.
        if !self.keys.is_sorted_by(|a, b| busiest_first(a, b).is_le()) {
            self.keys.sort_unstable_by(busiest_first);
            rank.order.clear();
            rank.order.extend(self.keys.iter().map(|k| k.2));
        }
    }

    /// Moves the rows `mine` selects out (in ranking order) and forgets
    /// them; the rows left get new slots: returns the old slot → new slot
    /// map (`u32::MAX`: taken).
    fn take(&mut self, rank: &mut Ranking<R>, mine: impl Fn(&R) -> bool) -> (Vec<R>, Vec<u32>) {
        let mut moved = vec![u32::MAX; rank.rows.len()];
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for (old, r) in std::mem::take(&mut rank.rows).into_iter().enumerate() {
            if mine(&r) {
                out.push((old, r));
            } else {
                moved[old] = kept.len() as u32;
                kept.push(r);
            }
        }
        rank.rows = kept;
        // The taken rows in ranking order.
        let mut at = vec![u32::MAX; moved.len()];
        for (i, &s) in rank.order.iter().enumerate() {
            at[s as usize] = i as u32;
        }
        out.sort_by_key(|(old, _)| at[*old]);
        rank.order.retain(|&s| moved[s as usize] != u32::MAX);
        for s in &mut rank.order {
            *s = moved[*s as usize];
        }
        self.index.clear();
        self.index.extend(rank.rows.iter().enumerate().map(|(s, r)| (r.id(), s as u32)));
        for list in [&mut self.fresh, &mut self.dirty] {
            list.retain(|&s| moved[s as usize] != u32::MAX);
            for s in list.iter_mut() {
                *s = moved[*s as usize];
            }
        }
        (out.into_iter().map(|(_, r)| r).collect(), moved)
    }
}

/// A counter key's last value and where it is folded: the slots of its
/// four rows and its positions in the rows' tallies.
#[derive(Clone, Copy, Debug)]
struct Counter {
    count: u64,
    /// `u32::MAX` until the key first counts.
    goroutine: u32,
    thread: u32,
    map: u32,
    site: u32,
    goroutine_site: u32,
    map_writer: u32,
    map_site: u32,
}

const UNLINKED: Counter =
    Counter { count: 0, goroutine: u32::MAX, thread: 0, map: 0, site: 0, goroutine_site: 0, map_writer: 0, map_site: 0 };

/// A read's counter: no entries in the per-site and per-writer tallies.
const READER: Counter = Counter { goroutine_site: u32::MAX, map_writer: u32::MAX, map_site: u32::MAX, ..UNLINKED };

/// Counters folded together (see `Model::fold`).
const BATCH: usize = 64;

/// A counter's growth on its way into the rows.
#[derive(Clone, Copy, Debug)]
struct Growth {
    c: Counter,
    n: u64,
    op: routine::Op,
}

/// Every counter key seen, with its [`Counter`], in the order first seen,
/// found by an open-addressing index of positions.
///
/// The kernel lists its hash map in the same (bucket) order at every
/// snapshot, new keys aside, so the next key is nearly always the one after
/// the last: that is checked first, and the index only asked on a miss.
#[derive(Debug, Default)]
struct Counters {
    entries: Vec<(WriteKey, Counter)>,
    /// Positions in `entries` (`EMPTY`: free), linear probing, a power of
    /// two in size and at most half full.
    index: Vec<u32>,
    /// Where the next key of a snapshot is expected.
    next: usize,
    /// The last keys came in that order: guess before asking the index.
    in_order: bool,
}

impl Counters {
    const EMPTY: u32 = u32::MAX;

    fn hash(k: &WriteKey) -> usize {
        // Multiply-rotate over the key's words, then a splitmix64 finish.
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = 0u64;
        for w in [u64::from(k.pid) | u64::from(k.tid) << 32, k.goid, k.map, k.pc, u64::from(k.routine)] {
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        h ^= h >> 31;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 29;
        h as usize
    }

    fn find(&self, k: &WriteKey) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = Self::hash(k) & mask;
        loop {
            let at = self.index[i];
            if at == Self::EMPTY {
                return None;
            }
            if self.entries[at as usize].0 == *k {
                return Some(at as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// The position of `k`, a key of the snapshot being read, if known.
    fn lookup(&mut self, k: &WriteKey) -> Option<usize> {
        if self.in_order {
            if let Some(e) = self.entries.get(self.next)
                && e.0 == *k
            {
                self.next += 1;
                return Some(self.next - 1);
            }
            // Out of order: stop guessing (a wrong guess is a wasted cache
            // miss) until keys come in order again.
            self.in_order = false;
        }
        let at = self.find(k)?;
        self.in_order = at == self.next;
        self.next = at + 1;
        Some(at)
    }

    /// Adds `k`, uncounted; its position.
    fn add(&mut self, k: WriteKey) -> usize {
        let at = self.entries.len();
        self.entries.push((k, UNLINKED));
        if self.entries.len() * 2 > self.index.len() {
            self.reindex();
        } else {
            self.place(at);
        }
        at
    }

    fn place(&mut self, at: usize) {
        let mask = self.index.len() - 1;
        let mut i = Self::hash(&self.entries[at].0) & mask;
        while self.index[i] != Self::EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = at as u32;
    }

    fn reindex(&mut self) {
        let size = (self.entries.len() * 2).next_power_of_two().max(16);
        self.index.clear();
        self.index.resize(size, Self::EMPTY);
        for at in 0..self.entries.len() {
            self.place(at);
        }
    }

    fn retain(&mut self, keep: impl Fn(&WriteKey) -> bool) {
        self.entries.retain(|e| keep(&e.0));
        self.reindex();
        self.next = 0;
        self.in_order = true;
    }
}

/// The kernel's cumulative counters as last seen: see [`Model::counts`].
#[derive(Clone, Copy, Debug)]
pub struct Counts<'a>(&'a Counters);

/// [`Counts`]' keys and counts.
#[derive(Clone, Debug)]
pub struct CountsIter<'a>(std::slice::Iter<'a, (WriteKey, Counter)>);

impl<'a> Iterator for CountsIter<'a> {
    type Item = (&'a WriteKey, &'a u64);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, c)| (k, &c.count))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for CountsIter<'_> {}

impl<'a> Counts<'a> {
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    pub fn get(&self, k: &WriteKey) -> Option<u64> {
        self.0.find(k).map(|at| self.0.entries[at].1.count)
    }

    /// Every key and its count, in the order first seen.
    pub fn iter(&self) -> CountsIter<'a> {
        CountsIter(self.0.entries.iter())
    }
}

impl<'a> IntoIterator for Counts<'a> {
    type Item = (&'a WriteKey, &'a u64);
    type IntoIter = CountsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `MapRow::finding` for a finding whose sites all had names.
const ALL_NAMED: u64 = u64::MAX;

#[derive(Default, Debug)]
pub struct Model {
    counts: Counters,
    pub names: Names,
    pub processes: BTreeMap<u32, ProcessInfo>,
    pub overlaps: Vec<OverlapEvent>,
    pub bpf: Vec<BpfRow>,
    prev_bpf: HashMap<(u32, u32, u32, u32), u64>,
    /// `--bpf-hot-keys`: per map, its hottest keys.
    pub bpf_hot_keys: Vec<BpfHotKeys>,
    /// How bpf(2) map fds were named (`kernel` or `userspace`, and why).
    pub bpf_resolution: Option<(String, Option<String>)>,
    /// Summed `probe_common::lost` counters.
    pub lost: [u64; lost::COUNT as usize],
    /// Events the collector could not decode or resolve.
    pub unresolved: u64,
    /// Events received from the kernel, by kind.
    pub events: EventCounts,
    pub elapsed: Duration,
    /// Rankings, updated in place as counters arrive and re-ranked at each
    /// tick. A changed counter is found where the last snapshot had it
    /// (else by one hash lookup) and reaches its rows and tally entries
    /// through fixed slots; per tick, one pass over the rows, plus a sort of
    /// the ranking when its order changed.
    pub agg: Aggregates,
    goroutines: Table<GoroutineRow>,
    threads: Table<ThreadRow>,
    maps: Table<MapRow>,
    sites: Table<SiteRow>,
    /// Sizes of `names.{created_by, comms, map_types, sites}` when rows were
    /// last named: names are only ever added (retire aside), so rows still
    /// unnamed then need another look only when these change.
    named: Option<[usize; 4]>,
    /// `names.sites.len()` when last seen, and a generation bumped whenever
    /// it changes (or names are dropped): shared-map findings with an
    /// unnamed site are rebuilt when it moves.
    site_names: (usize, u64),
    prev_total: Option<u64>,
    pub history: VecDeque<u64>,
    /// Programs replaced at their pid during the recording, oldest first.
    pub retired: Vec<Retired>,
    /// `--max-overhead`: the fraction of time the probes were attached.
    /// Rates are scaled up by its inverse; counts stay as observed (the
    /// report scales them and says so).
    pub sampling: Option<f64>,
    /// Map reads are probed (`--reads`).
    pub reads_probed: bool,
    /// What the user should know about the data itself (e.g. offsets that
    /// look wrong: `sanity`).
    pub warnings: Vec<String>,
    /// How long processes stood stopped at exec until their probes were
    /// attached, ns (the most recent `EXEC_STOPS_KEPT`).
    pub exec_stops_ns: VecDeque<u64>,
    /// The slowest drain of the kernel's counters: (keys, time).
    pub slowest_drain: (usize, Duration),
    /// The most keys one drain read, and how long that took.
    pub largest_drain: (usize, Duration),
    /// Counts applied so far (`add_counts` calls): rows remember the epoch
    /// they last counted in, so idle ones can be folded (`fold_idle`).
    epoch: u32,
    /// What `fold_idle` took out of the rows, by class, and the shared-map
    /// findings of the instances it folded.
    pub folded: Folded,
}

/// Rows folded into their classes because they went idle (`Model::fold_idle`).
#[derive(Debug, Default)]
pub struct Folded {
    pub maps: FxHashMap<(u32, Option<String>, u64), crate::classes::MapClass>,
    pub goroutines: FxHashMap<(u32, Option<String>), crate::classes::GoroutineClass>,
    pub findings: Vec<Finding>,
    pub map_rows: u64,
    pub goroutine_rows: u64,
}

/// How many exec stops `Model::exec_stops_ns` keeps.
pub const EXEC_STOPS_KEPT: usize = 100_000;

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what the kernel counted since the last drain (its tables are
    /// emptied as they are read: see `counters`).
    pub fn add_counts(&mut self, deltas: impl IntoIterator<Item = (WriteKey, u64)>) {
        self.apply_counts(deltas.into_iter(), false);
    }

    /// Takes cumulative counts (each key's total so far); only the growth
    /// since the last call is folded in. A key missing from `counts` keeps
    /// its last value.
    pub fn set_counts(&mut self, counts: impl IntoIterator<Item = (WriteKey, u64)>) {
        self.apply_counts(counts.into_iter(), true);
    }

    fn apply_counts(&mut self, mut counts: impl Iterator<Item = (WriteKey, u64)>, cumulative: bool) {
        self.epoch = self.epoch.wrapping_add(1);
        let mut keys = Vec::with_capacity(BATCH);
        let mut found = [None; BATCH];
        let mut batch = Vec::with_capacity(BATCH);
        self.counts.next = 0;
        self.counts.in_order = true;
        loop {
            keys.clear();
            keys.extend(counts.by_ref().take(BATCH));
            if keys.is_empty() {
                break;
            }
            // Where the batch's keys are, all first: their cache misses overlap.
            for ((k, _), at) in keys.iter().zip(&mut found) {
                *at = self.counts.lookup(k);
            }
            for (&(k, v), at) in keys.iter().zip(found) {
                let at = at.or_else(|| self.counts.find(&k)).unwrap_or_else(|| self.counts.add(k));
                let c = &mut self.counts.entries[at].1;
                let n = if cumulative { v.saturating_sub(c.count) } else { v };
                if n == 0 {
                    continue;
                }
                c.count += n;
                let v = c.count;
                let c = if c.goroutine == u32::MAX {
                    let linked = self.link(&k, v);
                    self.counts.entries[at].1 = linked;
                    linked
                } else {
                    *c
                };
                batch.push(Growth { c, n, op: routine::op(k.routine) });
            }
            self.fold(&batch);
            batch.clear();
        }
        let a = &mut self.agg;
        self.goroutines.settle(&mut a.goroutines);
        self.threads.settle(&mut a.threads);
        self.maps.settle(&mut a.maps);
        self.sites.settle(&mut a.sites);
    }

    /// A key counts for the first time: finds (or makes) its rows and its
    /// entries in their tallies and sets.
    fn link(&mut self, k: &WriteKey, count: u64) -> Counter {
        let a = &mut self.agg;
        let goroutine = self.goroutines.slot(&mut a.goroutines, (k.pid, k.goid), || GoroutineRow {
            pid: k.pid,
            goid: k.goid,
            ..Default::default()
        });
        let thread =
            self.threads.slot(&mut a.threads, (k.pid, k.tid), || ThreadRow { pid: k.pid, tid: k.tid, ..Default::default() });
        let mid = MapId::of(k);
        let map = self.maps.slot(&mut a.maps, (k.pid, mid), || MapRow { pid: k.pid, map: mid, ..Default::default() });
        let site = self.sites.slot(&mut a.sites, (k.pid, k.pc), || SiteRow { pid: k.pid, pc: k.pc, ..Default::default() });

        let m = &mut a.maps.rows[map as usize];
        let g = &mut a.goroutines.rows[goroutine as usize];
        if routine::op(k.routine) == routine::Op::Read {
            // A reader is not a writer: reads reach the rows' totals only,
            // never the writer and site tallies that findings are made of.
            if g.tids.insert(k.tid) {
                self.goroutines.touch(&mut a.goroutines, goroutine);
                a.threads.rows[thread as usize].goroutines.push_new(k.goid);
                self.threads.touch(&mut a.threads, thread);
            }
            let s = &mut a.sites.rows[site as usize];
            if s.maps.insert(mid) {
                self.sites.touch(&mut a.sites, site);
            }
            return Counter { count, goroutine, thread, map, site, ..READER };
        }
        let (map_writer, new_writer) = m.writers.entry(k.goid);
        let (map_site, new_map_site) = m.sites.entry(k.pc);
        if new_writer || new_map_site {
            m.shape = m.shape.wrapping_add(1);
            self.maps.touch(&mut a.maps, map);
        }
        let (goroutine_site, new_site) = g.sites.entry(k.pc);
        let new_tid = g.tids.insert(k.tid);
        // A goroutine's maps are the maps it is a writer of, a thread's
        // goroutines those that ran on it, a site's maps those written there.
        if new_writer {
            g.maps.push_new(mid);
        }
        if new_site || new_tid || new_writer {
            self.goroutines.touch(&mut a.goroutines, goroutine);
        }
        if new_tid {
            a.threads.rows[thread as usize].goroutines.push_new(k.goid);
            self.threads.touch(&mut a.threads, thread);
        }
        if new_map_site {
            a.sites.rows[site as usize].maps.push_new(mid);
            self.sites.touch(&mut a.sites, site);
        }
        Counter { count, goroutine, thread, map, site, goroutine_site, map_writer, map_site }
    }

    /// Adds each counter's growth to its rows and tallies.
    ///
    /// The rows and tallies of a snapshot's keys are scattered over memory
    /// too large for the caches: each access is a cache miss. They overlap
    /// only when nothing waits on them, so a batch is first read (the rows,
    /// then the tallies they point to: loads only, which the CPU runs ahead
    /// on), and only then added to, from the cache.
    fn fold(&mut self, batch: &[Growth]) {
        let a = &mut self.agg;
        let (goroutines, threads, maps, sites) =
            (&mut a.goroutines.rows, &mut a.threads.rows, &mut a.maps.rows, &mut a.sites.rows);
        let mut seen = 0u64;
        for Growth { c, .. } in batch {
            let (g, m) = (&goroutines[c.goroutine as usize], &maps[c.map as usize]);
            seen ^= g.ops.writes ^ g.ops.clears ^ g.sites.entries.len() as u64;
            seen ^= m.ops.writes ^ m.ops.clears ^ m.writers.entries.len() as u64 ^ m.sites.entries.len() as u64;
        }
        for Growth { c, op, .. } in batch {
            if *op == routine::Op::Read {
                continue;
            }
            let (g, m) = (&goroutines[c.goroutine as usize], &maps[c.map as usize]);
            seen ^= g.sites.entries[c.goroutine_site as usize].1;
            let (w, s) = (&m.writers.entries[c.map_writer as usize].1, &m.sites.entries[c.map_site as usize].1);
            seen ^= w.writes ^ w.clears ^ s.writes ^ s.clears;
        }
        std::hint::black_box(seen);
        let epoch = self.epoch;
        for &Growth { ref c, n, op } in batch {
            a.totals.add_op(op, n);
            let g = &mut goroutines[c.goroutine as usize];
            g.ops.add_op(op, n);
            g.meta.active = epoch;
            threads[c.thread as usize].ops.add_op(op, n);
            let m = &mut maps[c.map as usize];
            m.ops.add_op(op, n);
            m.meta.active = epoch;
            sites[c.site as usize].ops.add_op(op, n);
            if op != routine::Op::Read {
                *g.sites.at(c.goroutine_site) += n;
                m.writers.at(c.map_writer).add_op(op, n);
                m.sites.at(c.map_site).add_op(op, n);
            }
        }
    }

    /// The row of goroutine `goid` of `pid`.
    pub fn goroutine(&self, pid: u32, goid: u64) -> Option<&GoroutineRow> {
        self.goroutines.get(&self.agg.goroutines, &(pid, goid))
    }

    pub fn thread(&self, pid: u32, tid: u32) -> Option<&ThreadRow> {
        self.threads.get(&self.agg.threads, &(pid, tid))
    }

    pub fn map(&self, pid: u32, map: MapId) -> Option<&MapRow> {
        self.maps.get(&self.agg.maps, &(pid, map))
    }

    pub fn site(&self, pid: u32, pc: u64) -> Option<&SiteRow> {
        self.sites.get(&self.agg.sites, &(pid, pc))
    }

    /// The last value of every kernel counter key seen (keys that never
    /// counted included).
    pub fn counts(&self) -> Counts<'_> {
        Counts(&self.counts)
    }

    pub fn set_bpf(&mut self, rows: Vec<BpfRow>) {
        self.bpf = rows;
    }

    /// Records an overlap. The Go runtime's own detection of a write the
    /// probe already flagged at its entry is the same incident: kept once.
    pub fn add_overlap(&mut self, ev: OverlapEvent) {
        let same = |o: &OverlapEvent| {
            (o.pid, o.tid, o.goid, o.map, o.pc) == (ev.pid, ev.tid, ev.goid, ev.map, ev.pc) && !o.by_go_runtime
        };
        if ev.by_go_runtime && self.overlaps.iter().rev().take(16).any(same) {
            return;
        }
        self.overlaps.push(ev);
    }

    /// Total lost (everything the kernel could not record, plus events the
    /// collector could not use).
    pub fn lost_total(&self) -> u64 {
        self.lost.iter().sum::<u64>() + self.unresolved
    }

    /// Copies names resolved since the last tick into the rows.
    fn fill_names(&mut self) {
        let names = &self.names;
        let sizes = [names.created_by.len(), names.comms.len(), names.map_types.len(), names.sites.len()];
        let grew = |i: usize| self.named.is_none_or(|n| n[i] != sizes[i]);
        let a = &mut self.agg;
        // Only rows added since, unless names were added since.
        fn rows_to_name<R: Ranked>(t: &Table<R>, rank: &mut Ranking<R>, all: bool, mut name: impl FnMut(&mut R)) {
            if all {
                rank.rows.iter_mut().for_each(name);
            } else {
                for &slot in &t.fresh {
                    name(&mut rank.rows[slot as usize]);
                }
            }
        }
        rows_to_name(&self.goroutines, &mut a.goroutines, grew(0), |g| {
            if g.created_by.is_none() {
                g.created_by = names.created_by.get(&(g.pid, g.goid)).cloned();
            }
        });
        rows_to_name(&self.threads, &mut a.threads, grew(1), |t| {
            if t.comm.is_empty()
                && let Some(c) = names.comms.get(&(t.pid, t.tid))
            {
                t.comm.clone_from(c);
            }
        });
        rows_to_name(&self.maps, &mut a.maps, grew(2), |m| {
            if m.type_name.is_none() {
                m.type_name = names.map_types.get(&(m.pid, m.map)).cloned();
            }
        });
        rows_to_name(&self.sites, &mut a.sites, grew(3), |s| {
            if s.location.is_none() {
                s.location = names.sites.get(&(s.pid, s.pc)).cloned();
            }
        });
        self.named = Some(sizes);
        self.goroutines.fresh.clear();
        self.threads.fresh.clear();
        self.maps.fresh.clear();
        self.sites.fresh.clear();
    }

    /// Freezes everything recorded for the program at `pid` into `retired`
    /// and forgets it, so the next program there (after exec, or a reused
    /// pid) starts from zero. The caller snapshots the kernel first and
    /// removes the pid's kernel counters after.
    pub fn retire(&mut self, pid: u32) {
        self.fill_names();
        let a = &mut self.agg;
        let (goroutines, goroutine_slots) = self.goroutines.take(&mut a.goroutines, |g| g.pid == pid);
        let (threads, thread_slots) = self.threads.take(&mut a.threads, |t| t.pid == pid);
        let (mut maps, map_slots) = self.maps.take(&mut a.maps, |m| m.pid == pid);
        let (_, site_slots) = self.sites.take(&mut a.sites, |s| s.pid == pid);
        let (overlaps, keep) = std::mem::take(&mut self.overlaps).into_iter().partition(|o| o.pid == pid);
        self.overlaps = keep;
        for m in &mut maps {
            m.rate = 0.0;
            m.overlaps = overlaps.iter().filter(|o| o.map == m.map && !o.read).count() as u64;
        }
        let findings = derive_findings(&overlaps, &maps, &self.names);
        let sites = self.names.sites.iter().filter(|(k, _)| k.0 == pid).map(|(k, v)| (k.1, v.clone())).collect();
        let info = self.processes.remove(&pid).unwrap_or(ProcessInfo { pid, ..Default::default() });
        self.counts.retain(|k| k.pid != pid);
        for (_, c) in &mut self.counts.entries {
            if c.goroutine != UNLINKED.goroutine {
                c.goroutine = goroutine_slots[c.goroutine as usize];
                c.thread = thread_slots[c.thread as usize];
                c.map = map_slots[c.map as usize];
                c.site = site_slots[c.site as usize];
            }
        }
        let n = &mut self.names;
        n.sites.retain(|k, _| k.0 != pid);
        n.map_types.retain(|k, _| k.0 != pid);
        n.created_by.retain(|k, _| k.0 != pid);
        n.comms.retain(|k, _| k.0 != pid);
        // Names were dropped: sizes no longer tell whether any were added.
        self.named = None;
        self.site_names = (usize::MAX, self.site_names.1.wrapping_add(1));
        self.goroutines.rerank(&mut a.goroutines);
        self.threads.rerank(&mut a.threads);
        self.maps.rerank(&mut a.maps);
        self.sites.rerank(&mut a.sites);
        self.refresh_findings();
        let mut findings = findings;
        let (mine, others) = std::mem::take(&mut self.folded.findings).into_iter().partition(|f| f.pid == pid);
        self.folded.findings = others;
        findings.extend::<Vec<Finding>>(mine);
        let folded_maps = self.folded.maps.extract_if(|k, _| k.0 == pid).map(|(_, c)| c).collect();
        let folded_goroutines = self.folded.goroutines.extract_if(|k, _| k.0 == pid).map(|(_, c)| c).collect();
        self.retired.push(Retired { info, goroutines, threads, maps, sites, findings, folded_maps, folded_goroutines });
    }

    pub fn note_drain(&mut self, keys: usize, took: Duration) {
        if took > self.slowest_drain.1 {
            self.slowest_drain = (keys, took);
        }
        if keys > self.largest_drain.0 {
            self.largest_drain = (keys, took);
        }
    }

    pub fn note_exec_stop(&mut self, ns: u64) {
        if self.exec_stops_ns.len() == EXEC_STOPS_KEPT {
            self.exec_stops_ns.pop_front();
        }
        self.exec_stops_ns.push_back(ns);
    }

    /// Folds goroutines and map instances that have not counted for
    /// `idle` epochs (drains) into their classes (`folded`), so the model's
    /// memory is bounded by what was active in that window, not by how
    /// long the recording runs: a server making maps and goroutines per
    /// request would otherwise add rows forever. Totals, threads and sites
    /// are unchanged; a folded instance written by several goroutines keeps
    /// its shared-map finding; maps with overlaps are never folded.
    /// Returns (map rows, goroutine rows) folded.
    pub fn fold_idle(&mut self, idle: u32, min_rows: usize) -> (usize, usize) {
        let Some(cutoff) = self.epoch.checked_sub(idle) else { return (0, 0) };
        // Only when at least `min_rows` rows, and half of all, are idle (a
        // fold walks every row and counter key).
        let a = &self.agg;
        let idle_rows = a.maps.rows.iter().filter(|m| m.meta.active < cutoff).count()
            + a.goroutines.rows.iter().filter(|g| g.meta.active < cutoff).count();
        if idle_rows == 0 || idle_rows < min_rows.max((a.maps.len() + a.goroutines.len()) / 2) {
            return (0, 0);
        }
        self.fold_where(|m| m.meta.active < cutoff, |g| g.meta.active < cutoff)
    }

    /// Keeps at most `keep` rows per class — the busiest — and folds the
    /// rest into their classes (see `fold_idle`): a report of a server that
    /// made 80,000 per-request maps lists each kind once, with its busiest
    /// instances, instead of 80,000 rows. Returns (map rows, goroutine rows)
    /// folded.
    pub fn fold_crowded(&mut self, keep: usize) -> (usize, usize) {
        /// Rows of classes with more than `keep` rows, beyond their `keep`
        /// busiest: `rows` gives each row's (class, mutations).
        fn beyond<K: std::hash::Hash + Eq>(rows: impl Iterator<Item = (K, u64)>, keep: usize) -> Vec<bool> {
            let mut by: FxHashMap<K, Vec<(u64, usize)>> = FxHashMap::default();
            let mut n = 0;
            for (i, (k, ops)) in rows.enumerate() {
                by.entry(k).or_default().push((ops, i));
                n = i + 1;
            }
            let mut fold = vec![false; n];
            for mut v in by.into_values().filter(|v| v.len() > keep) {
                v.sort_unstable_by(|a, b| b.cmp(a));
                for &(_, i) in &v[keep..] {
                    fold[i] = true;
                }
            }
            fold
        }
        let (names, a) = (&self.names, &self.agg);
        // The key `classes::map_classes` groups by.
        let class_of = |m: &MapRow| (m.pid, names.map_types.get(&(m.pid, m.map)), crate::classes::top_site(m).unwrap_or(0));
        let fold_maps = beyond(a.maps.rows.iter().map(|m| (class_of(m), m.ops.total())), keep);
        let fold_goroutines =
            beyond(a.goroutines.rows.iter().map(|g| ((g.pid, names.created_by.get(&(g.pid, g.goid))), g.ops.total())), keep);
        let map_ids: rustc_hash::FxHashSet<(u32, MapId)> =
            a.maps.rows.iter().zip(&fold_maps).filter(|(_, f)| **f).map(|(m, _)| (m.pid, m.map)).collect();
        let goroutine_ids: rustc_hash::FxHashSet<(u32, u64)> =
            a.goroutines.rows.iter().zip(&fold_goroutines).filter(|(_, f)| **f).map(|(g, _)| (g.pid, g.goid)).collect();
        self.fold_where(|m| map_ids.contains(&(m.pid, m.map)), |g| goroutine_ids.contains(&(g.pid, g.goid)))
    }

    /// Folds the map and goroutine rows the predicates pick (maps with
    /// overlaps excepted) into their classes; see `fold_idle`.
    fn fold_where(&mut self, map: impl Fn(&MapRow) -> bool, goroutine: impl Fn(&GoroutineRow) -> bool) -> (usize, usize) {
        let with_overlaps: rustc_hash::FxHashSet<(u32, MapId)> = self.overlaps.iter().map(|o| (o.pid, o.map)).collect();
        let idle_map = |m: &MapRow| map(m) && !with_overlaps.contains(&(m.pid, m.map));
        let idle_goroutine = |g: &GoroutineRow| goroutine(g);
        let a = &mut self.agg;
        if !a.maps.rows.iter().any(idle_map) && !a.goroutines.rows.iter().any(idle_goroutine) {
            return (0, 0);
        }
        self.fill_names();
        let a = &mut self.agg;
        let (maps, map_slots) = self.maps.take(&mut a.maps, idle_map);
        let (goroutines, goroutine_slots) = self.goroutines.take(&mut a.goroutines, idle_goroutine);

        // Their findings and classes.
        let names = &self.names;
        let mut cache = FxHashMap::default();
        for m in maps.iter().filter(|m| m.writers.len() > 1) {
            // One finding per kind of shared map (type and sites), however
            // many instances: they stay in every tick's findings.
            let f = shared_finding(m, names, &mut cache).0;
            match self.folded.findings.iter_mut().find(|x| (x.pid, &x.type_name, &x.sites) == (f.pid, &f.type_name, &f.sites)) {
                Some(x) => {
                    x.instances += 1;
                    x.count += f.count;
                    for g in f.goroutines {
                        if !x.goroutines.contains(&g) {
                            x.goroutines.push(g);
                        }
                    }
                }
                None => self.folded.findings.push(f),
            }
        }
        let site = |pid: u32, pc: u64| names.sites.get(&(pid, pc)).cloned();
        for c in crate::classes::map_classes(maps.iter(), site) {
            let key = (c.pid, c.type_name.clone(), c.site_pc);
            match self.folded.maps.get_mut(&key) {
                Some(f) => f.absorb(&c),
                None => {
                    self.folded.maps.insert(key, c);
                }
            }
        }
        for c in crate::classes::goroutine_classes(goroutines.iter()) {
            let key = (c.pid, c.created_by.as_ref().map(Location::short));
            match self.folded.goroutines.get_mut(&key) {
                Some(f) => f.absorb(&c),
                None => {
                    self.folded.goroutines.insert(key, c);
                }
            }
        }
        self.folded.map_rows += maps.len() as u64;
        self.folded.goroutine_rows += goroutines.len() as u64;

        // Counter keys of folded rows go (a key seen again is linked anew);
        // the others follow their rows to their new slots.
        let gone = |slots: &[u32], s: u32| slots[s as usize] == u32::MAX;
        self.counts.entries.retain(|(_, c)| c.goroutine == u32::MAX || !(gone(&goroutine_slots, c.goroutine) || gone(&map_slots, c.map)));
        for (_, c) in &mut self.counts.entries {
            if c.goroutine != u32::MAX {
                c.goroutine = goroutine_slots[c.goroutine as usize];
                c.map = map_slots[c.map as usize];
            }
        }
        self.counts.retain(|_| true);

        // Sets that name folded rows, and their names.
        let folded_maps: rustc_hash::FxHashSet<(u32, MapId)> = maps.iter().map(|m| (m.pid, m.map)).collect();
        let folded_goroutines: rustc_hash::FxHashSet<(u32, u64)> = goroutines.iter().map(|g| (g.pid, g.goid)).collect();
        for g in &mut a.goroutines.rows {
            let pid = g.pid;
            g.maps.retain(|m| !folded_maps.contains(&(pid, *m)));
        }
        for s in &mut a.sites.rows {
            let pid = s.pid;
            s.maps.retain(|m| !folded_maps.contains(&(pid, *m)));
        }
        for t in &mut a.threads.rows {
            let pid = t.pid;
            t.goroutines.retain(|g| !folded_goroutines.contains(&(pid, *g)));
        }
        self.names.map_types.retain(|k, _| !folded_maps.contains(k));
        self.names.created_by.retain(|k, _| !folded_goroutines.contains(k));
        self.named = None;
        self.site_names = (usize::MAX, self.site_names.1.wrapping_add(1));
        self.goroutines.rerank(&mut a.goroutines);
        self.maps.rerank(&mut a.maps);
        self.refresh_findings();
        (maps.len(), goroutines.len())
    }

    /// Epochs so far (`add_counts` calls; see `fold_idle`).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The generation the next program registered at `pid` gets.
    pub fn next_generation(&self, pid: u32) -> u32 {
        self.retired.iter().filter(|r| r.info.pid == pid).count() as u32
    }

    /// Computes rates over `dt` (the time since the last tick; zero for a
    /// final, rate-less pass), fills in names, re-ranks, derives findings.
    pub fn tick(&mut self, dt: Duration) {
        self.elapsed += dt;
        // Sampled: only a fraction of the tick was observed.
        let secs = dt.as_secs_f64() * self.sampling.unwrap_or(1.0);
        self.fill_names();
        let a = &mut self.agg;
        self.goroutines.tick(&mut a.goroutines, secs);
        self.threads.tick(&mut a.threads, secs);
        self.maps.tick(&mut a.maps, secs);
        self.sites.tick(&mut a.sites, secs);
        for m in &mut a.maps.rows {
            m.overlaps = 0;
        }
        for ov in self.overlaps.iter().filter(|o| !o.read) {
            if let Some(&slot) = self.maps.index.get(&(ov.pid, ov.map)) {
                a.maps.rows[slot as usize].overlaps += 1;
            }
        }

        for row in &mut self.bpf {
            let key = (row.pid, row.tid, row.fd, row.map_id.unwrap_or(0));
            let now = row.updates + row.deletes;
            let before = self.prev_bpf.insert(key, now).unwrap_or(now);
            row.rate = if secs > 0.0 { now.saturating_sub(before) as f64 / secs } else { 0.0 };
        }

        let total = a.totals.total();
        let before = self.prev_total.replace(total).unwrap_or(total);
        a.total_rate = if secs > 0.0 { total.saturating_sub(before) as f64 / secs } else { 0.0 };
        if secs > 0.0 {
            self.history.push_back(a.total_rate.round() as u64);
            if self.history.len() > HISTORY_LEN {
                self.history.pop_front();
            }
        }
        self.refresh_findings();
    }

    /// `agg.findings` for the current rows: what [`derive_findings`] gives,
    /// reusing last tick's shared-map findings whose writers, sites and
    /// site names did not change since (only their counts move).
    fn refresh_findings(&mut self) {
        let names = &self.names;
        if self.site_names.0 != names.sites.len() {
            self.site_names = (names.sites.len(), self.site_names.1.wrapping_add(1));
        }
        let site_gen = self.site_names.1;
        let old = std::mem::replace(&mut self.agg.findings, overlap_findings(&self.overlaps, names));
        let mut old = old.into_iter().filter(|f| f.kind == FindingKind::SharedMap).peekable();
        // Last tick's findings in map order; once the order differs, by map.
        let mut by_map: Option<FxHashMap<(u32, MapId), Finding>> = None;
        let mut site_cache: FxHashMap<(u32, u64), (String, bool)> = FxHashMap::default();
        let a = &mut self.agg;
        for &slot in &a.maps.order {
            let m = &mut a.maps.rows[slot as usize];
            if m.writers.len() < 2 {
                continue;
            }
            let key = (m.pid, m.map);
            let cached = if let Some(rest) = &mut by_map {
                rest.remove(&key)
            } else if old.peek().is_some_and(|f| (f.pid, f.map) == key) {
                old.next()
            } else {
                by_map.insert(old.by_ref().map(|f| ((f.pid, f.map), f)).collect()).remove(&key)
            };
            let fresh = m.finding.is_some_and(|(shape, names_gen)| {
                shape == m.shape && (names_gen == ALL_NAMED || names_gen == site_gen)
            });
            let f = match cached {
                Some(mut f) if fresh => {
                    f.count = m.ops.total();
                    if f.type_name != m.type_name {
                        f.type_name.clone_from(&m.type_name);
                    }
                    f
                }
                _ => {
                    let (f, all_named) = shared_finding(m, names, &mut site_cache);
                    m.finding = Some((m.shape, if all_named { ALL_NAMED } else { site_gen }));
                    f
                }
            };
            a.findings.push(f);
        }
        // Shared maps folded away while idle keep their findings.
        a.findings.extend(self.folded.findings.iter().cloned());
    }
}

fn site_name(names: &Names, pid: u32, pc: u64) -> (String, bool) {
    match names.sites.get(&(pid, pc)) {
        Some(l) => (l.short(), true),
        None => (format!("0x{pc:x}"), false),
    }
}

/// The overlapping-writes findings, most recent first.
fn overlap_findings(overlaps_seen: &[OverlapEvent], names: &Names) -> Vec<Finding> {
    let mut overlaps: BTreeMap<(FindingKind, u32, MapId), Finding> = BTreeMap::new();
    for ov in overlaps_seen {
        let kind = if ov.read { FindingKind::ReadDuringWrite } else { FindingKind::OverlappingWrites };
        let f = overlaps.entry((kind, ov.pid, ov.map)).or_insert_with(|| Finding {
            kind,
            pid: ov.pid,
            map: ov.map,
            type_name: names.map_types.get(&(ov.pid, ov.map)).cloned(),
            goroutines: Vec::new(),
            sites: Vec::new(),
            count: 0,
            last_ktime_ns: 0,
            instances: 1,
        });
        f.count += 1;
        f.last_ktime_ns = f.last_ktime_ns.max(ov.ktime_ns);
        let mine = ov.site.as_ref().map(Location::short);
        let theirs = ov.other_site.as_ref().map(Location::short);
        for (g, s) in [(Some(ov.goid), mine), (ov.other_goid, theirs)] {
            if let Some(g) = g
                && !f.goroutines.contains(&g)
            {
                f.goroutines.push(g);
            }
            if let Some(s) = s
                && !f.sites.contains(&s)
            {
                f.sites.push(s);
            }
        }
    }
    let mut out: Vec<Finding> = overlaps.into_values().collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.last_ktime_ns));
    out
}

/// The shared-map finding of `m` (written by more than one goroutine), and
/// whether every site had a name. `cache`: site names already made.
fn shared_finding(m: &MapRow, names: &Names, cache: &mut FxHashMap<(u32, u64), (String, bool)>) -> (Finding, bool) {
    let mut all_named = true;
    let sites = m
        .sites
        .keys()
        .map(|&pc| {
            let (s, named) = cache.entry((m.pid, pc)).or_insert_with(|| site_name(names, m.pid, pc));
            all_named &= *named;
            s.clone()
        })
        .collect();
    let f = Finding {
        kind: FindingKind::SharedMap,
        pid: m.pid,
        map: m.map,
        type_name: m.type_name.clone(),
        goroutines: m.writers.keys().copied().collect(),
        sites,
        count: m.ops.total(),
        last_ktime_ns: 0,
        instances: 1,
    };
    (f, all_named)
}

/// Findings, most recent overlaps first, then shared maps by traffic.
fn derive_findings(overlaps_seen: &[OverlapEvent], maps: &[MapRow], names: &Names) -> Vec<Finding> {
    let mut out = overlap_findings(overlaps_seen, names);
    let mut cache = FxHashMap::default();
    out.extend(maps.iter().filter(|m| m.writers.len() > 1).map(|m| shared_finding(m, names, &mut cache).0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_common::uprobe::routine::*;

    fn key(pid: u32, tid: u32, goid: u64, map: u64, pc: u64, r: u8) -> WriteKey {
        WriteKey { pid, tid, goid, map, pc, routine: r, _pad: [0; 3], inst: 0 }
    }

    fn loc(f: &str, line: u32) -> Location {
        Location { function: f.into(), file: "/src/app/main.go".into(), line }
    }

    fn sample() -> Model {
        let mut m = Model::new();
        m.set_counts([
            (key(10, 11, 7, 0xa, 0x100, MAPASSIGN_FASTSTR), 30),
            (key(10, 12, 7, 0xa, 0x100, MAPASSIGN_FASTSTR), 20),
            (key(10, 12, 7, 0xa, 0x104, MAPDELETE_FASTSTR), 5),
            (key(10, 13, 8, 0xa, 0x200, MAPASSIGN_FASTSTR), 10),
            (key(10, 13, 8, 0xb, 0x300, MAPCLEAR), 2),
        ]);
        m.names.sites.insert((10, 0x100), loc("main.worker", 27));
        m.names.sites.insert((10, 0x200), loc("main.other", 40));
        m.names.map_types.insert((10, MapId { addr: 0xa, inst: 0 }), "map[string]int".into());
        m.names.created_by.insert((10, 7), loc("main.main", 12));
        m
    }

    #[test]
    fn aggregates_fold_keys_exactly() {
        let mut m = sample();
        m.tick(Duration::ZERO);
        let a = &m.agg;
        assert_eq!(a.totals, Ops { writes: 60, deletes: 5, clears: 2, reads: 0 });
        assert_eq!(a.goroutines.len(), 2);
        let g7 = &a.goroutines[0];
        assert_eq!((g7.goid, g7.ops.writes, g7.ops.deletes), (7, 50, 5));
        assert_eq!(g7.tids.iter().copied().collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(g7.created_by.as_ref().map(Location::short).as_deref(), Some("main.main main.go:12"));
        let t12 = a.threads.iter().find(|t| t.tid == 12).unwrap();
        assert_eq!((t12.ops.writes, t12.ops.deletes), (20, 5));
        let ma = a.maps.iter().find(|x| x.map.addr == 0xa).unwrap();
        assert_eq!((ma.ops.writes, ma.ops.deletes), (60, 5));
        assert_eq!(ma.writers.keys().copied().collect::<Vec<_>>(), vec![7, 8]);
        let mb = a.maps.iter().find(|x| x.map.addr == 0xb).unwrap();
        assert_eq!(mb.ops.clears, 2);
        assert_eq!(a.sites[0].pc, 0x100);
        assert_eq!(a.sites[0].ops.writes, 50);
    }

    #[test]
    fn shared_map_finding_lists_both_writers_and_sites() {
        let mut m = sample();
        m.tick(Duration::ZERO);
        let f: Vec<_> = m.agg.findings.iter().filter(|f| f.kind == FindingKind::SharedMap).collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].map.addr, 0xa);
        assert_eq!(f[0].goroutines, vec![7, 8]);
        assert_eq!(f[0].type_name.as_deref(), Some("map[string]int"));
        assert!(f[0].sites.contains(&"main.worker main.go:27".to_string()));
        assert!(f[0].sites.contains(&"main.other main.go:40".to_string()));
        assert!(f[0].sites.contains(&"0x104".to_string()));
    }

    #[test]
    fn rates_are_deltas_over_the_tick() {
        let mut m = sample();
        m.tick(Duration::from_secs(1));
        assert_eq!(m.agg.goroutines[0].rate, 0.0, "first tick has no baseline");
        m.set_counts([(key(10, 11, 7, 0xa, 0x100, MAPASSIGN_FASTSTR), 230)]);
        m.tick(Duration::from_millis(500));
        let g7 = m.agg.goroutines.iter().find(|g| g.goid == 7).unwrap();
        assert_eq!(g7.rate, 400.0);
        assert_eq!(m.agg.total_rate, 400.0);
        assert_eq!(m.history.back().copied(), Some(400));
    }

    /// Everything the views and the report read, in order.
    fn dump(m: &Model) -> String {
        use std::fmt::Write;
        let (a, mut s) = (&m.agg, String::new());
        let _ = writeln!(s, "{:?} {}", a.totals, a.total_rate);
        for g in &a.goroutines {
            let sites: Vec<_> = g.sites.iter().collect();
            let _ = writeln!(s, "g {} {} {:?} {} {:?} {:?} {sites:?}", g.pid, g.goid, g.ops, g.rate, g.tids.as_slice(), g.maps.as_slice());
        }
        for t in &a.threads {
            let _ = writeln!(s, "t {} {} {:?} {} {:?}", t.pid, t.tid, t.ops, t.rate, t.goroutines.as_slice());
        }
        for x in &a.maps {
            let (w, ss): (Vec<_>, Vec<_>) = (x.writers.iter().collect(), x.sites.iter().collect());
            let _ = writeln!(s, "m {} {} {:?} {} {w:?} {ss:?} {}", x.pid, x.map.addr, x.ops, x.rate, x.overlaps);
        }
        for x in &a.sites {
            let _ = writeln!(s, "s {} {} {:?} {} {:?}", x.pid, x.pc, x.ops, x.rate, x.maps.as_slice());
        }
        let _ = writeln!(s, "{:?}", a.findings);
        s
    }

    /// Many goroutines on few threads writing few maps from few sites, in
    /// a scrambled order: more ids per row than a tally scans.
    fn crowd(round: u64) -> Vec<(WriteKey, u64)> {
        let mut out: Vec<(WriteKey, u64)> = (0..300u64)
            .map(|i| {
                let g = (i * 37) % 150;
                let r = if i % 3 == 0 { MAPDELETE } else { MAPASSIGN_FAST64 };
                (key(10 + (g % 2) as u32, 1 + (i % 5) as u32, g, 0xa + i % 4, 0x100 + i % 40, r), round * (1 + i % 7))
            })
            .collect();
        out.rotate_left((round as usize * 17) % 300);
        out
    }

    #[test]
    fn snapshot_order_does_not_matter() {
        let (mut a, mut b) = (Model::new(), Model::new());
        for round in 1..5 {
            let snap = crowd(round);
            let mut rev = snap.clone();
            rev.reverse();
            a.set_counts(snap);
            b.set_counts(rev);
            a.tick(Duration::from_secs(1));
            b.tick(Duration::from_secs(1));
            assert!(dump(&a) == dump(&b), "round {round}");
        }
        let m0 = &a.agg.maps[0];
        assert!(m0.writers.len() > SCAN_MAX, "the tally's index is exercised");
        assert!(m0.writers.keys().is_sorted() && m0.sites.keys().is_sorted());
        assert_eq!(m0.writers.values().map(Ops::total).sum::<u64>(), m0.ops.total());
        let g = a.agg.goroutines.iter().find(|g| g.goid == 3).unwrap();
        assert_eq!(a.goroutine(g.pid, 3).map(|x| x.ops), Some(g.ops));
        assert_eq!(a.counts().len(), 300);
        assert_eq!(a.counts().get(&crowd(4)[0].0), Some(crowd(4)[0].1));
    }

    #[test]
    fn retiring_a_program_keeps_the_others_counting() {
        let mut m = Model::new();
        m.set_counts(crowd(1));
        m.tick(Duration::from_secs(1));
        m.retire(10);
        let mut alone = Model::new();
        let only11 = |r| crowd(r).into_iter().filter(|(k, _)| k.pid == 11).collect::<Vec<_>>();
        alone.set_counts(only11(1));
        alone.tick(Duration::from_secs(1));
        for round in 2..4 {
            m.set_counts(only11(round));
            alone.set_counts(only11(round));
            m.tick(Duration::from_secs(1));
            alone.tick(Duration::from_secs(1));
            // Rows and findings alike (the totals keep the retired program's).
            let rows = |m: &Model| dump(m).split_once('\n').map(|(_, rows)| rows.to_string());
            assert!(rows(&m) == rows(&alone), "round {round}");
            assert_eq!(m.agg.total_rate, alone.agg.total_rate);
        }
        let r = &m.retired[0];
        assert!(r.goroutines.iter().all(|g| g.pid == 10) && !r.goroutines.is_empty());
        assert!(r.goroutines.windows(2).all(|w| w[0].ops.total() >= w[1].ops.total()), "ranked");
    }

    #[test]
    fn counters_never_go_backwards() {
        let mut m = sample();
        m.set_counts([(key(10, 11, 7, 0xa, 0x100, MAPASSIGN_FASTSTR), 1)]);
        m.tick(Duration::ZERO);
        assert_eq!(m.agg.totals.writes, 60);
    }

    #[test]
    fn overlap_finding_names_both_goroutines_and_sites() {
        let mut m = sample();
        for t in [5, 9] {
            m.add_overlap(OverlapEvent {
                pid: 10,
                map: MapId { addr: 0xa, inst: 0 },
                goid: 8,
                tid: 13,
                site: Some(loc("main.other", 40)),
                other_goid: Some(7),
                other_tid: Some(11),
                other_site: Some(loc("main.worker", 27)),
                ktime_ns: t,
                by_go_runtime: false,
                read: false,
                pc: 0x200 + t,
            });
        }
        m.tick(Duration::ZERO);
        let f = &m.agg.findings[0];
        assert_eq!(f.kind, FindingKind::OverlappingWrites);
        assert_eq!(f.goroutines, vec![8, 7]);
        assert_eq!(f.sites, vec!["main.other main.go:40", "main.worker main.go:27"]);
        assert_eq!(f.count, 2);
        assert_eq!(m.agg.maps.iter().find(|x| x.map.addr == 0xa).unwrap().overlaps, 2);
    }

    #[test]
    fn reads_count_apart_and_never_make_a_writer() {
        let mut m = sample();
        // Goroutine 9 only reads map 0xa (two sites); goroutine 7 also reads it.
        m.set_counts([
            (key(10, 14, 9, 0xa, 0x400, MAPACCESS1_FASTSTR), 100),
            (key(10, 14, 9, 0xa, 0x410, MAPACCESS2_FASTSTR), 40),
            (key(10, 11, 7, 0xa, 0x420, MAPACCESS1_FASTSTR), 6),
        ]);
        m.add_overlap(OverlapEvent {
            pid: 10,
            map: MapId { addr: 0xa, inst: 0 },
            goid: 9,
            tid: 14,
            site: Some(loc("main.reader", 50)),
            other_goid: Some(8),
            other_tid: Some(13),
            other_site: Some(loc("main.other", 40)),
            ktime_ns: 3,
            by_go_runtime: false,
            read: true,
            pc: 0x400,
        });
        m.tick(Duration::ZERO);
        let a = &m.agg;
        assert_eq!(a.totals, Ops { writes: 60, deletes: 5, clears: 2, reads: 146 });
        let ma = a.maps.iter().find(|x| x.map.addr == 0xa).unwrap();
        assert_eq!((ma.ops.writes, ma.ops.reads), (60, 146));
        assert_eq!(ma.writers.keys().copied().collect::<Vec<_>>(), vec![7, 8], "a reader is not a writer");
        assert_eq!(ma.sites.keys().copied().collect::<Vec<_>>(), vec![0x100, 0x104, 0x200], "read sites stay out");
        assert_eq!(ma.overlaps, 0, "a read during a write is not an overlapping write");
        let g9 = m.goroutine(10, 9).unwrap();
        assert_eq!((g9.ops.reads, g9.ops.total(), g9.maps.len(), g9.sites.len()), (140, 0, 0, 0));
        assert_eq!(m.goroutine(10, 7).unwrap().ops, Ops { writes: 50, deletes: 5, clears: 0, reads: 6 });
        assert_eq!(m.thread(10, 14).unwrap().goroutines.as_slice(), &[9]);
        assert_eq!(m.site(10, 0x410).unwrap().ops.reads, 40);
        let kinds: Vec<_> = a.findings.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![FindingKind::ReadDuringWrite, FindingKind::SharedMap]);
        let f = &a.findings[0];
        assert_eq!((f.goroutines.as_slice(), f.count), (&[9, 8][..], 1));
        assert_eq!(f.sites, vec!["main.reader main.go:50", "main.other main.go:40"]);
        // The shared-map finding is about writers only.
        assert_eq!(a.findings[1].goroutines, vec![7, 8]);
    }
}
