//! The pure model: cumulative kernel counters in, rankings, rates and
//! findings out. No I/O, no clocks (callers pass the tick length), so it is
//! unit-tested without root and shared by the live view and the report.
//! `classes` groups rows into map and goroutine classes.

pub mod advice;
pub mod classes;
mod counter_index;
mod findings;
pub mod lengths;
mod ranking;
mod rows;
mod sets;
pub mod timeline;

pub use counter_index::*;
pub use findings::*;
pub use ranking::*;
pub use rows::*;
pub use sets::*;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use probe_common::{
    lost,
    uprobe::{WriteKey, routine},
};

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
    /// Map and goroutine classes of the live processes (the Classes tab).
    pub classes: Vec<crate::model::classes::ClassRow>,
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
    pub folded_maps: Vec<crate::model::classes::MapClass>,
    pub folded_goroutines: Vec<crate::model::classes::GoroutineClass>,
}

/// How many per-tick total rates the sparkline keeps.
pub const HISTORY_LEN: usize = 240;

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
    /// Each class's mutations at the last tick (its rate's base); holds
    /// the live classes only.
    prev_classes: FxHashMap<(u32, crate::model::classes::ClassKind, String), u64>,
    /// `--bpf-hot-keys`: per map, its hottest keys.
    pub bpf_hot_keys: Vec<BpfHotKeys>,
    /// How bpf(2) map fds were named (`kernel` or `userspace`, and why).
    pub bpf_resolution: Option<(String, Option<String>)>,
    /// How the map-write probes were linked (`uprobe_multi`, `perf_event`).
    pub uprobe_links: Option<String>,
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
    /// (how long, whether its program was parsed meanwhile: the first
    /// process of an executable; later ones reuse its attachment).
    pub exec_stops_ns: VecDeque<(u64, bool)>,
    /// `-- CMD`'s processes of a program already attached, which the kernel
    /// let run at exec without a stop.
    pub execs_not_stopped: u64,
    /// Processes the exec guard resumed at its deadline, unattached.
    pub watchdog_resumes: u64,
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
    /// Map lengths over time (`--len-maps`), read at each refresh.
    pub lengths: lengths::Lengths,
}

/// Rows folded into their classes because they went idle (`Model::fold_idle`).
#[derive(Debug, Default)]
pub struct Folded {
    pub maps: FxHashMap<(u32, Option<String>, u64), crate::model::classes::MapClass>,
    pub goroutines: FxHashMap<(u32, Option<String>), crate::model::classes::GoroutineClass>,
    pub findings: Vec<Finding>,
    pub map_rows: u64,
    pub goroutine_rows: u64,
    /// The writer of each single-writer map instance folded while idle.
    pub(super) writers: Tombstones,
    /// Folded instances and goroutines that sites' and threads' sets may
    /// still name: pruned together once a fold is done (`prune_folded`),
    /// not at each of its steps (a pass over every such set).
    unpruned_maps: rustc_hash::FxHashSet<(u32, MapId)>,
    unpruned_goroutines: rustc_hash::FxHashSet<(u32, u64)>,
}

/// Folded ids waiting for `Model::prune_folded` past which it runs even in
/// the middle of a fold.
const UNPRUNED_MAX: usize = 1 << 18;

/// The only writer of map instances folded with one writer, by (pid, map):
/// if the instance is written again, by another goroutine, it is shared all
/// the same (a controller's cache written every few seconds by different
/// workers must not lose its finding to a fold between two writes).
/// Bounded: two generations of at most `TOMBSTONES / 2` entries; the oldest
/// generation is dropped whole (≈ 40 bytes an entry: 40 MB at most).
#[derive(Debug, Default)]
pub struct Tombstones {
    young: FxHashMap<(u32, MapId), u64>,
    old: FxHashMap<(u32, MapId), u64>,
}

pub const TOMBSTONES: usize = 1_000_000;

/// Writers a map instance names one by one; the rest count together under
/// `OTHER_WRITERS`. A cache every request's goroutine writes would
/// otherwise keep an entry per goroutine for ever (millions on a busy
/// server); past a thousand, the shared-map finding says no more.
pub const MAX_WRITERS_PER_MAP: usize = 1024;
/// The writer id the writers beyond `MAX_WRITERS_PER_MAP` count under (no
/// goroutine has it): never listed, only counted.
pub const OTHER_WRITERS: u64 = u64::MAX;

impl Tombstones {
    fn insert(&mut self, k: (u32, MapId), goid: u64) {
        if self.young.len() >= TOMBSTONES / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, goid);
    }

    fn take(&mut self, k: &(u32, MapId)) -> Option<u64> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
        if !routine::mutates(routine::op(k.routine)) {
            // A reader (or iterator) is not a writer: reads reach the rows' totals only,
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
        if m.writers.is_empty()
            && let Some(before) = self.folded.writers.take(&(k.pid, mid))
            && before != k.goid
        {
            // Written before it was folded, by another goroutine: that
            // writer is still one (its ops are in the map's class).
            m.writers.entry(before);
        }
        let writer = if m.writers.len() >= MAX_WRITERS_PER_MAP && m.writers.get(&k.goid).is_none() { OTHER_WRITERS } else { k.goid };
        let (map_writer, new_writer) = m.writers.entry(writer);
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
            if !routine::mutates(*op) {
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
            if routine::mutates(op) {
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
                live_mut(rank).for_each(name);
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
        let goroutines = self.goroutines.take(&mut a.goroutines, |g| g.pid == pid, usize::MAX);
        let threads = self.threads.take(&mut a.threads, |t| t.pid == pid, usize::MAX);
        let mut maps = self.maps.take(&mut a.maps, |m| m.pid == pid, usize::MAX);
        self.sites.take(&mut a.sites, |s| s.pid == pid, usize::MAX);
        let (overlaps, keep) = std::mem::take(&mut self.overlaps).into_iter().partition(|o| o.pid == pid);
        self.overlaps = keep;
        for m in &mut maps {
            m.rate = 0.0;
            m.overlaps = overlaps.iter().filter(|o| o.map == m.map && !o.read).count() as u64;
        }
        let findings = derive_findings(&overlaps, &maps, &self.names);
        let sites = self.names.sites.iter().filter(|(k, _)| k.0 == pid).map(|(k, v)| (k.1, v.clone())).collect();
        let info = self.processes.remove(&pid).unwrap_or(ProcessInfo { pid, ..Default::default() });
        // The pid's rows are gone, and only its keys pointed at them (the
        // other rows keep their slots).
        self.counts.retain(|k, _| k.pid != pid);
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
        // Its sites and threads went with it; ids of the next program at
        // this pid must not be pruned for its predecessor's sake.
        self.folded.unpruned_maps.retain(|k| k.0 != pid);
        self.folded.unpruned_goroutines.retain(|k| k.0 != pid);
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

    pub fn note_exec_stop(&mut self, ns: u64, parsed: bool) {
        if self.exec_stops_ns.len() == EXEC_STOPS_KEPT {
            self.exec_stops_ns.pop_front();
        }
        self.exec_stops_ns.push_back((ns, parsed));
    }

    /// Folds goroutines and map instances that have not counted for
    /// `idle` epochs (drains) into their classes (`folded`), so the model's
    /// memory is bounded by what was active in that window, not by how
    /// long the recording runs: a server making maps and goroutines per
    /// request would otherwise add rows forever. Totals, threads and sites
    /// are unchanged; a folded instance written by several goroutines keeps
    /// its shared-map finding; maps with overlaps are never folded.
    ///
    /// Only when at least `min_rows` rows, and half of all, are idle (a
    /// fold still looks at every row and counter key once), and at most
    /// `limit` map rows and `limit` goroutine rows at a time: a fold costs
    /// about what it takes out, so `limit` bounds how long the caller's
    /// loop (which resumes processes stopped at exec) waits; the caller
    /// folds again, with `min_rows` 0, until fewer than `limit` fold.
    /// Returns (map rows, goroutine rows) folded.
    pub fn fold_idle(&mut self, idle: u32, min_rows: usize, limit: usize) -> (usize, usize) {
        let Some(cutoff) = self.epoch.checked_sub(idle) else { return (0, 0) };
        if min_rows > 0 {
            let a = &self.agg;
            let idle_rows = live(&a.maps).filter(|m| m.meta.active < cutoff).count()
                + live(&a.goroutines).filter(|g| g.meta.active < cutoff).count();
            if idle_rows < min_rows.max((a.maps.len() + a.goroutines.len()) / 2) {
                return (0, 0);
            }
        }
        self.fold_where(|m| m.meta.active < cutoff, |g| g.meta.active < cutoff, limit)
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
        let class_of = |m: &MapRow| (m.pid, names.map_types.get(&(m.pid, m.map)), crate::model::classes::top_site(m).unwrap_or(0));
        let fold_maps = beyond(live(&a.maps).map(|m| (class_of(m), m.ops.total())), keep);
        let fold_goroutines =
            beyond(live(&a.goroutines).map(|g| ((g.pid, names.created_by.get(&(g.pid, g.goid))), g.ops.total())), keep);
        let map_ids: rustc_hash::FxHashSet<(u32, MapId)> =
            live(&a.maps).zip(&fold_maps).filter(|(_, f)| **f).map(|(m, _)| (m.pid, m.map)).collect();
        let goroutine_ids: rustc_hash::FxHashSet<(u32, u64)> =
            live(&a.goroutines).zip(&fold_goroutines).filter(|(_, f)| **f).map(|(g, _)| (g.pid, g.goid)).collect();
        self.fold_where(|m| map_ids.contains(&(m.pid, m.map)), |g| goroutine_ids.contains(&(g.pid, g.goid)), usize::MAX)
    }

    /// Folds the map and goroutine rows the predicates pick (maps with
    /// overlaps excepted) into their classes, at most `limit` of each; see
    /// `fold_idle`.
    fn fold_where(
        &mut self,
        map: impl Fn(&MapRow) -> bool,
        goroutine: impl Fn(&GoroutineRow) -> bool,
        limit: usize,
    ) -> (usize, usize) {
        let with_overlaps: rustc_hash::FxHashSet<(u32, MapId)> = self.overlaps.iter().map(|o| (o.pid, o.map)).collect();
        let idle_map = |m: &MapRow| map(m) && !with_overlaps.contains(&(m.pid, m.map));
        let idle_goroutine = |g: &GoroutineRow| goroutine(g);
        let a = &mut self.agg;
        // The rows stay in their (now free) slots until new rows fill them.
        let map_slots = self.maps.free_in_place(&mut a.maps, idle_map, limit);
        let goroutine_slots = self.goroutines.free_in_place(&mut a.goroutines, idle_goroutine, limit);
        if map_slots.is_empty() && goroutine_slots.is_empty() {
            // (A fold whose last step took exactly `limit` ends here.)
            if !(self.folded.unpruned_maps.is_empty() && self.folded.unpruned_goroutines.is_empty()) {
                self.prune_folded();
            }
            return (0, 0);
        }
        // Named before they go (their classes are by name); only these.
        for &s in &map_slots {
            let m = &mut a.maps.rows[s as usize];
            if m.type_name.is_none() {
                m.type_name = self.names.map_types.get(&(m.pid, m.map)).cloned();
            }
        }
        for &s in &goroutine_slots {
            let g = &mut a.goroutines.rows[s as usize];
            if g.created_by.is_none() {
                g.created_by = self.names.created_by.get(&(g.pid, g.goid)).cloned();
            }
        }
        let maps: Vec<&MapRow> = map_slots.iter().map(|&s| &a.maps.rows[s as usize]).collect();
        let goroutines: Vec<&GoroutineRow> = goroutine_slots.iter().map(|&s| &a.goroutines.rows[s as usize]).collect();

        // Their findings and classes.
        let names = &self.names;
        let mut cache = FxHashMap::default();
        // Busiest first (rows come in slot order), so that a kind's
        // finding names its busiest instances' goroutines first.
        let mut shared: Vec<&MapRow> = maps.iter().copied().filter(|m| m.writers.len() > 1).collect();
        shared.sort_by(|a, b| b.ops.total().cmp(&a.ops.total()).then((a.pid, a.map).cmp(&(b.pid, b.map))));
        for m in shared {
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
        for c in crate::model::classes::map_classes(maps.iter().copied(), site) {
            let key = (c.pid, c.type_name.clone(), c.site_pc);
            match self.folded.maps.get_mut(&key) {
                Some(f) => f.absorb(&c),
                None => {
                    self.folded.maps.insert(key, c);
                }
            }
        }
        for c in crate::model::classes::goroutine_classes(goroutines.iter().copied()) {
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
        for m in maps.iter().filter(|m| m.writers.len() == 1) {
            if let Some((&goid, _)) = m.writers.iter().next() {
                self.folded.writers.insert((m.pid, m.map), goid);
            }
        }

        // Counter keys of folded rows go (a key seen again is linked anew);
        // the others keep their slots.
        // (Found in bitmaps of the slots just freed: small enough to stay
        // in the cache while every key is looked at, unlike the rows.)
        let bitmap = |len: usize, slots: &[u32]| {
            let mut b = vec![0u64; len.div_ceil(64)];
            for &s in slots {
                b[s as usize / 64] |= 1 << (s % 64);
            }
            b
        };
        let (gone_goroutines, gone_maps) = (bitmap(a.goroutines.rows.len(), &goroutine_slots), bitmap(a.maps.rows.len(), &map_slots));
        let gone = |b: &[u64], s: u32| b[s as usize / 64] >> (s % 64) & 1 == 1;
        self.counts.retain(|_, c| {
            c.goroutine == UNLINKED.goroutine || !(gone(&gone_goroutines, c.goroutine) || gone(&gone_maps, c.map))
        });

        // Sets that name folded rows, and their names: only the rows that
        // can name them are looked at.
        let folded_maps: rustc_hash::FxHashSet<(u32, MapId)> = maps.iter().map(|m| (m.pid, m.map)).collect();
        let folded_goroutines: rustc_hash::FxHashSet<(u32, u64)> = goroutines.iter().map(|g| (g.pid, g.goid)).collect();
        drop(goroutines);
        // A goroutine's maps are those it is a writer of, unless the map
        // had more writers than it names (then all are looked at).
        let crowded = maps.iter().any(|m| m.writers.len() >= MAX_WRITERS_PER_MAP);
        let mut writers: Vec<u32> = if crowded {
            (0..a.goroutines.rows.len() as u32).filter(|&s| !a.goroutines.rows[s as usize].meta.free).collect()
        } else {
            maps.iter()
                .flat_map(|m| m.writers.iter().filter_map(|(goid, _)| self.goroutines.index.get(&(m.pid, *goid)).copied()))
                .collect()
        };
        writers.sort_unstable();
        writers.dedup();
        for s in writers {
            let g = &mut a.goroutines.rows[s as usize];
            let pid = g.pid;
            g.maps.retain(|m| !folded_maps.contains(&(pid, *m)));
        }
        for k in &folded_maps {
            self.names.map_types.remove(k);
        }
        for k in &folded_goroutines {
            self.names.created_by.remove(k);
        }
        // Names went: sizes no longer tell whether any were added.
        self.named = None;
        // Sites and threads: once the fold is done (fewer than `limit`
        // taken), or once many wait.
        self.folded.unpruned_maps.extend(folded_maps);
        self.folded.unpruned_goroutines.extend(folded_goroutines);
        let done = map_slots.len() < limit && goroutine_slots.len() < limit;
        if done || self.folded.unpruned_maps.len() + self.folded.unpruned_goroutines.len() > UNPRUNED_MAX {
            self.prune_folded();
        }
        // Nothing is ranked or derived here: the rows left keep their order,
        // and the next tick makes ranks and findings (with the folded ones).
        (map_slots.len(), goroutine_slots.len())
    }

    /// Drops folded instances and goroutines from the sets of sites (the
    /// maps written there) and threads (the goroutines that ran there),
    /// unless they are rows again (written since: their new rows added them
    /// once more, so repeated ids go too). Costs a pass over the sets of the
    /// processes involved.
    fn prune_folded(&mut self) {
        let f = &mut self.folded;
        // (The processes before the ids written again are set aside: their
        // sets may name those twice.)
        let map_pids: rustc_hash::FxHashSet<u32> = f.unpruned_maps.iter().map(|k| k.0).collect();
        let goroutine_pids: rustc_hash::FxHashSet<u32> = f.unpruned_goroutines.iter().map(|k| k.0).collect();
        let (maps, goroutines) = (&self.maps.index, &self.goroutines.index);
        f.unpruned_maps.retain(|k| !maps.contains_key(k));
        f.unpruned_goroutines.retain(|k| !goroutines.contains_key(k));
        let a = &mut self.agg;
        for s in live_mut(&mut a.sites).filter(|s| map_pids.contains(&s.pid)) {
            let pid = s.pid;
            s.maps.retain(|m| !f.unpruned_maps.contains(&(pid, *m)));
            s.maps.settle_dedup();
        }
        for t in live_mut(&mut a.threads).filter(|t| goroutine_pids.contains(&t.pid)) {
            let pid = t.pid;
            t.goroutines.retain(|g| !f.unpruned_goroutines.contains(&(pid, *g)));
            t.goroutines.settle_dedup();
        }
        f.unpruned_maps.clear();
        f.unpruned_goroutines.clear();
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
        self.refresh_classes(secs);
    }

    /// `agg.classes`: the live processes' map and goroutine classes, rows
    /// and folded rows together, with their rates since the last tick.
    fn refresh_classes(&mut self, secs: f64) {
        use crate::model::classes;
        let a = &self.agg;
        let maps = classes::merge_map_classes(
            classes::map_classes(live(&a.maps), classes::live_site_name(&self.names)),
            self.folded.maps.values(),
        );
        let goroutines =
            classes::merge_goroutine_classes(classes::goroutine_classes(live(&a.goroutines)), self.folded.goroutines.values());
        let mut rows = classes::class_rows(maps, goroutines);
        let mut prev = std::mem::take(&mut self.prev_classes);
        for r in &mut rows {
            let now = r.ops.total();
            let key = (r.pid, r.kind, r.name.clone());
            let before = prev.remove(&key).unwrap_or(now);
            r.rate = if secs > 0.0 { now.saturating_sub(before) as f64 / secs } else { 0.0 };
            self.prev_classes.insert(key, now);
        }
        self.agg.classes = rows;
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
        let growing = lengths::growth_findings(&self.lengths, self.agg.maps.iter(), &self.names);
        self.agg.findings.extend(growing);
    }
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
        assert_eq!(a.totals, Ops { writes: 60, deletes: 5, clears: 2, reads: 0, iterations: 0 });
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
    fn a_line_reached_through_two_return_addresses_is_one_site() {
        let mut m = sample();
        // 0x104 (the delete) on the same line as 0x100 (the write).
        m.names.sites.insert((10, 0x104), loc("main.worker", 27));
        m.tick(Duration::ZERO);
        let f = m.agg.findings.iter().find(|f| f.kind == FindingKind::SharedMap).unwrap();
        assert_eq!(f.sites, vec!["main.worker main.go:27".to_string(), "main.other main.go:40".to_string()]);
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
                read: false, iter: false,
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

    fn overlap(goid: u64, tid: u32, pc: u64, ktime_ns: u64, by_go_runtime: bool) -> OverlapEvent {
        OverlapEvent {
            pid: 10,
            map: MapId { addr: 0xa, inst: 0 },
            goid,
            tid,
            site: Some(loc("main.other", 40)),
            other_goid: Some(7),
            other_tid: Some(11),
            other_site: Some(loc("main.worker", 27)),
            ktime_ns,
            by_go_runtime,
            read: false,
            iter: false,
            pc,
        }
    }

    fn overlap_count(m: &mut Model) -> u64 {
        m.tick(Duration::ZERO);
        let f: Vec<_> = m.agg.findings.iter().filter(|f| f.kind == FindingKind::OverlappingWrites).collect();
        assert_eq!(f.len(), 1);
        assert_eq!(m.agg.maps.iter().find(|x| x.map.addr == 0xa).unwrap().overlaps, f[0].count);
        f[0].count
    }

    #[test]
    fn one_incident_seen_at_entry_and_by_go_runtime_is_one_overlap() {
        let mut m = sample();
        m.add_overlap(overlap(8, 13, 0x200, 5, false));
        m.add_overlap(overlap(8, 13, 0x200, 6, true));
        assert_eq!(overlap_count(&mut m), 1);
    }

    #[test]
    fn each_path_alone_counts_its_incident() {
        for by_go_runtime in [false, true] {
            let mut m = sample();
            m.add_overlap(overlap(8, 13, 0x200, 5, by_go_runtime));
            assert_eq!(overlap_count(&mut m), 1, "by_go_runtime {by_go_runtime}");
        }
    }

    #[test]
    fn distinct_incidents_are_two_overlaps() {
        // Another goroutine, thread or site is another incident, whichever
        // path saw each.
        for second in [overlap(9, 13, 0x200, 6, true), overlap(8, 14, 0x200, 6, true), overlap(8, 13, 0x204, 6, true)] {
            let mut m = sample();
            m.add_overlap(overlap(8, 13, 0x200, 5, false));
            m.add_overlap(second);
            assert_eq!(overlap_count(&mut m), 2);
        }
        // Two entry-check reports of one write site are two incidents (a loop
        // that overlaps twice), as are two Go reports (never merged with
        // each other: the runtime dies at its first).
        for by_go_runtime in [false, true] {
            let mut m = sample();
            m.add_overlap(overlap(8, 13, 0x200, 5, by_go_runtime));
            m.add_overlap(overlap(8, 13, 0x200, 6, by_go_runtime));
            assert_eq!(overlap_count(&mut m), 2, "by_go_runtime {by_go_runtime}");
        }
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
            read: true, iter: false,
            pc: 0x400,
        });
        m.tick(Duration::ZERO);
        let a = &m.agg;
        assert_eq!(a.totals, Ops { writes: 60, deletes: 5, clears: 2, reads: 146, iterations: 0 });
        let ma = a.maps.iter().find(|x| x.map.addr == 0xa).unwrap();
        assert_eq!((ma.ops.writes, ma.ops.reads), (60, 146));
        assert_eq!(ma.writers.keys().copied().collect::<Vec<_>>(), vec![7, 8], "a reader is not a writer");
        assert_eq!(ma.sites.keys().copied().collect::<Vec<_>>(), vec![0x100, 0x104, 0x200], "read sites stay out");
        assert_eq!(ma.overlaps, 0, "a read during a write is not an overlapping write");
        let g9 = m.goroutine(10, 9).unwrap();
        assert_eq!((g9.ops.reads, g9.ops.total(), g9.maps.len(), g9.sites.len()), (140, 0, 0, 0));
        assert_eq!(m.goroutine(10, 7).unwrap().ops, Ops { writes: 50, deletes: 5, clears: 0, reads: 6, iterations: 0 });
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
