//! The pure model: cumulative kernel counters in, rankings, rates and
//! findings out. No I/O, no clocks (callers pass the tick length), so it is
//! unit-tested without root and shared by the live view and the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use probe_common::{
    lost,
    uprobe::{WriteKey, routine},
};

/// A resolved code location.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
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
}

/// Op counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ops {
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
}

impl Ops {
    pub fn add(&mut self, routine_id: u8, n: u64) {
        match routine::op(routine_id) {
            routine::Op::Write => self.writes += n,
            routine::Op::Delete => self.deletes += n,
            routine::Op::Clear => self.clears += n,
            routine::Op::None => {}
        }
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
    pub map: u64,
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
    /// The detecting write's call site pc.
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
    pub rate: f64,
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
    pub map_types: HashMap<(u32, u64), String>,
    /// (pid, goid) → where the goroutine was created.
    pub created_by: HashMap<(u32, u64), Location>,
    /// (pid, tid) → thread name.
    pub comms: HashMap<(u32, u32), String>,
}

#[derive(Clone, Debug, Default)]
pub struct GoroutineRow {
    pub pid: u32,
    pub goid: u64,
    pub ops: Ops,
    pub rate: f64,
    pub tids: BTreeSet<u32>,
    pub maps: BTreeSet<u64>,
    pub sites: BTreeMap<u64, u64>,
    pub created_by: Option<Location>,
}

#[derive(Clone, Debug, Default)]
pub struct ThreadRow {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub ops: Ops,
    pub rate: f64,
    pub goroutines: BTreeSet<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct MapRow {
    pub pid: u32,
    pub addr: u64,
    pub type_name: Option<String>,
    pub ops: Ops,
    pub rate: f64,
    /// Goroutine id → its ops on this map.
    pub writers: BTreeMap<u64, Ops>,
    /// Site pc → ops there.
    pub sites: BTreeMap<u64, Ops>,
    pub overlaps: u64,
}

#[derive(Clone, Debug, Default)]
pub struct SiteRow {
    pub pid: u32,
    pub pc: u64,
    pub location: Option<Location>,
    pub ops: Ops,
    pub rate: f64,
    pub maps: BTreeSet<u64>,
}

/// A finding kind, as named in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    OverlappingWrites,
    SharedMap,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OverlappingWrites => "overlapping_writes",
            Self::SharedMap => "shared_map",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub pid: u32,
    pub map: u64,
    pub type_name: Option<String>,
    pub goroutines: Vec<u64>,
    pub sites: Vec<String>,
    pub count: u64,
    /// Kernel time of the latest occurrence (for "most recent first").
    pub last_ktime_ns: u64,
}

/// Everything derived at one tick.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    pub totals: Ops,
    pub total_rate: f64,
    pub goroutines: Vec<GoroutineRow>,
    pub threads: Vec<ThreadRow>,
    pub maps: Vec<MapRow>,
    pub sites: Vec<SiteRow>,
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
}

/// How many per-tick total rates the sparkline keeps.
pub const HISTORY_LEN: usize = 240;

/// Row storage for one aggregate: rows in a Vec (what views read, kept in
/// ranking order) plus an index by identity, rebuilt after each sort.
#[derive(Debug)]
struct Table<K, R> {
    index: FxHashMap<K, usize>,
    /// Total ops per row at the previous tick, for rates (by identity).
    prev: FxHashMap<K, u64>,
    _rows: std::marker::PhantomData<R>,
}

impl<K, R> Default for Table<K, R> {
    fn default() -> Self {
        Self { index: FxHashMap::default(), prev: FxHashMap::default(), _rows: std::marker::PhantomData }
    }
}

impl<K: std::hash::Hash + Eq + Copy, R> Table<K, R> {
    fn row<'a>(&mut self, rows: &'a mut Vec<R>, key: K, make: impl FnOnce() -> R) -> &'a mut R {
        let i = *self.index.entry(key).or_insert_with(|| {
            rows.push(make());
            rows.len() - 1
        });
        &mut rows[i]
    }

    /// Sorts busiest first (ties by identity) and re-indexes.
    fn rank(&mut self, rows: &mut [R], id: impl Fn(&R) -> K, total: impl Fn(&R) -> u64)
    where
        K: Ord,
    {
        rows.sort_unstable_by(|a, b| total(b).cmp(&total(a)).then(id(a).cmp(&id(b))));
        self.index.clear();
        self.index.extend(rows.iter().enumerate().map(|(i, r)| (id(r), i)));
    }

    /// Rate since the last tick; the first tick of a row has no baseline.
    fn rate(&mut self, key: K, total: u64, secs: f64) -> f64 {
        // `secs` is the tick divided by the sampling duty (see Model::tick).
        let before = self.prev.insert(key, total).unwrap_or(total);
        if secs > 0.0 { total.saturating_sub(before) as f64 / secs } else { 0.0 }
    }
}

#[derive(Default, Debug)]
pub struct Model {
    counts: FxHashMap<WriteKey, u64>,
    pub names: Names,
    pub processes: BTreeMap<u32, ProcessInfo>,
    pub overlaps: Vec<OverlapEvent>,
    pub bpf: Vec<BpfRow>,
    prev_bpf: HashMap<(u32, u32, u32), u64>,
    /// Summed `probe_common::lost` counters.
    pub lost: [u64; lost::COUNT as usize],
    /// Events the collector could not decode or resolve.
    pub unresolved: u64,
    /// Events received from the kernel, by kind.
    pub events: EventCounts,
    pub elapsed: Duration,
    /// Rankings, updated in place as counters arrive and re-ranked at each
    /// tick: cost per tick is one hash lookup per changed counter plus a sort.
    pub agg: Aggregates,
    goroutines: Table<(u32, u64), GoroutineRow>,
    threads: Table<(u32, u32), ThreadRow>,
    maps: Table<(u32, u64), MapRow>,
    sites: Table<(u32, u64), SiteRow>,
    prev_total: Option<u64>,
    pub history: VecDeque<u64>,
    /// Programs replaced at their pid during the recording, oldest first.
    pub retired: Vec<Retired>,
    /// `--max-overhead`: the fraction of time the probes were attached.
    /// Rates are scaled up by its inverse; counts stay as observed (the
    /// report scales them and says so).
    pub sampling: Option<f64>,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a fresh kernel snapshot of cumulative counters. Counts only
    /// grow in the kernel; a key that vanished (its process was forgotten)
    /// keeps its last value here. Only the growth is folded into the rows.
    pub fn set_counts(&mut self, counts: impl IntoIterator<Item = (WriteKey, u64)>) {
        for (k, v) in counts {
            let old = self.counts.entry(k).or_insert(0);
            if v <= *old {
                continue;
            }
            let (delta, new_key) = (v - *old, *old == 0);
            *old = v;
            self.fold(&k, delta, new_key);
        }
    }

    fn fold(&mut self, k: &WriteKey, n: u64, new_key: bool) {
        let a = &mut self.agg;
        a.totals.add(k.routine, n);
        let g = self.goroutines.row(&mut a.goroutines, (k.pid, k.goid), || GoroutineRow {
            pid: k.pid,
            goid: k.goid,
            ..Default::default()
        });
        g.ops.add(k.routine, n);
        *g.sites.entry(k.pc).or_default() += n;
        if new_key {
            g.tids.insert(k.tid);
            g.maps.insert(k.map);
        }
        let t = self.threads.row(&mut a.threads, (k.pid, k.tid), || ThreadRow {
            pid: k.pid,
            tid: k.tid,
            ..Default::default()
        });
        t.ops.add(k.routine, n);
        if new_key {
            t.goroutines.insert(k.goid);
        }
        let m = self.maps.row(&mut a.maps, (k.pid, k.map), || MapRow { pid: k.pid, addr: k.map, ..Default::default() });
        m.ops.add(k.routine, n);
        m.writers.entry(k.goid).or_default().add(k.routine, n);
        m.sites.entry(k.pc).or_default().add(k.routine, n);
        let s = self.sites.row(&mut a.sites, (k.pid, k.pc), || SiteRow { pid: k.pid, pc: k.pc, ..Default::default() });
        s.ops.add(k.routine, n);
        if new_key {
            s.maps.insert(k.map);
        }
    }

    pub fn counts(&self) -> &FxHashMap<WriteKey, u64> {
        &self.counts
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

    /// Computes rates over `dt` (the time since the last tick; zero for a
    /// final, rate-less pass), fills in names, re-ranks, derives findings.
    /// Copies names resolved since the last tick into the rows.
    fn fill_names(&mut self) {
        let names = &self.names;
        let a = &mut self.agg;
        for g in a.goroutines.iter_mut().filter(|g| g.created_by.is_none()) {
            g.created_by = names.created_by.get(&(g.pid, g.goid)).cloned();
        }
        for t in a.threads.iter_mut().filter(|t| t.comm.is_empty()) {
            if let Some(c) = names.comms.get(&(t.pid, t.tid)) {
                t.comm.clone_from(c);
            }
        }
        for m in a.maps.iter_mut().filter(|m| m.type_name.is_none()) {
            m.type_name = names.map_types.get(&(m.pid, m.addr)).cloned();
        }
        for s in a.sites.iter_mut().filter(|s| s.location.is_none()) {
            s.location = names.sites.get(&(s.pid, s.pc)).cloned();
        }
    }

    /// Freezes everything recorded for the program at `pid` into `retired`
    /// and forgets it, so the next program there (after exec, or a reused
    /// pid) starts from zero. The caller snapshots the kernel first and
    /// removes the pid's kernel counters after.
    pub fn retire(&mut self, pid: u32) {
        self.fill_names();
        fn take<R>(rows: &mut Vec<R>, mine: impl Fn(&R) -> bool) -> Vec<R> {
            let (out, keep) = std::mem::take(rows).into_iter().partition(|r| mine(r));
            *rows = keep;
            out
        }
        let a = &mut self.agg;
        let goroutines = take(&mut a.goroutines, |g| g.pid == pid);
        let threads = take(&mut a.threads, |t| t.pid == pid);
        let mut maps = take(&mut a.maps, |m| m.pid == pid);
        take(&mut a.sites, |s| s.pid == pid);
        let overlaps = take(&mut self.overlaps, |o| o.pid == pid);
        for m in &mut maps {
            m.rate = 0.0;
            m.overlaps = overlaps.iter().filter(|o| o.map == m.addr).count() as u64;
        }
        let findings = derive_findings(&overlaps, &maps, &self.names);
        let sites = self.names.sites.iter().filter(|(k, _)| k.0 == pid).map(|(k, v)| (k.1, v.clone())).collect();
        let info = self.processes.remove(&pid).unwrap_or(ProcessInfo { pid, ..Default::default() });
        self.counts.retain(|k, _| k.pid != pid);
        let n = &mut self.names;
        n.sites.retain(|k, _| k.0 != pid);
        n.map_types.retain(|k, _| k.0 != pid);
        n.created_by.retain(|k, _| k.0 != pid);
        n.comms.retain(|k, _| k.0 != pid);
        self.goroutines.prev.retain(|k, _| k.0 != pid);
        self.threads.prev.retain(|k, _| k.0 != pid);
        self.maps.prev.retain(|k, _| k.0 != pid);
        self.sites.prev.retain(|k, _| k.0 != pid);
        self.goroutines.rank(&mut a.goroutines, |g| (g.pid, g.goid), |g| g.ops.total());
        self.threads.rank(&mut a.threads, |t| (t.pid, t.tid), |t| t.ops.total());
        self.maps.rank(&mut a.maps, |m| (m.pid, m.addr), |m| m.ops.total());
        self.sites.rank(&mut a.sites, |s| (s.pid, s.pc), |s| s.ops.total());
        self.agg.findings = derive_findings(&self.overlaps, &self.agg.maps, &self.names);
        self.retired.push(Retired { info, goroutines, threads, maps, sites, findings });
    }

    /// The generation the next program registered at `pid` gets.
    pub fn next_generation(&self, pid: u32) -> u32 {
        self.retired.iter().filter(|r| r.info.pid == pid).count() as u32
    }

    pub fn tick(&mut self, dt: Duration) {
        self.elapsed += dt;
        // Sampled: only a fraction of the tick was observed.
        let secs = dt.as_secs_f64() * self.sampling.unwrap_or(1.0);
        self.fill_names();
        let a = &mut self.agg;
        for g in &mut a.goroutines {
            g.rate = self.goroutines.rate((g.pid, g.goid), g.ops.total(), secs);
        }
        for t in &mut a.threads {
            t.rate = self.threads.rate((t.pid, t.tid), t.ops.total(), secs);
        }
        for m in &mut a.maps {
            m.rate = self.maps.rate((m.pid, m.addr), m.ops.total(), secs);
            m.overlaps = 0;
        }
        for s in &mut a.sites {
            s.rate = self.sites.rate((s.pid, s.pc), s.ops.total(), secs);
        }
        for ov in &self.overlaps {
            if let Some(&i) = self.maps.index.get(&(ov.pid, ov.map)) {
                a.maps[i].overlaps += 1;
            }
        }
        self.goroutines.rank(&mut a.goroutines, |g| (g.pid, g.goid), |g| g.ops.total());
        self.threads.rank(&mut a.threads, |t| (t.pid, t.tid), |t| t.ops.total());
        self.maps.rank(&mut a.maps, |m| (m.pid, m.addr), |m| m.ops.total());
        self.sites.rank(&mut a.sites, |s| (s.pid, s.pc), |s| s.ops.total());

        for row in &mut self.bpf {
            let key = (row.pid, row.tid, row.fd);
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
        self.agg.findings = derive_findings(&self.overlaps, &self.agg.maps, &self.names);
    }
}

fn site_name(names: &Names, pid: u32, pc: u64) -> String {
        names
            .sites
            .get(&(pid, pc))
            .map(Location::short)
            .unwrap_or_else(|| format!("0x{pc:x}"))
    }

/// Findings, most recent overlaps first, then shared maps by traffic.
fn derive_findings(overlaps_seen: &[OverlapEvent], maps: &[MapRow], names: &Names) -> Vec<Finding> {
        let mut overlaps: BTreeMap<(u32, u64), Finding> = BTreeMap::new();
        for ov in overlaps_seen {
            let f = overlaps.entry((ov.pid, ov.map)).or_insert_with(|| Finding {
                kind: FindingKind::OverlappingWrites,
                pid: ov.pid,
                map: ov.map,
                type_name: names.map_types.get(&(ov.pid, ov.map)).cloned(),
                goroutines: Vec::new(),
                sites: Vec::new(),
                count: 0,
                last_ktime_ns: 0,
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
        out.sort_by(|a, b| b.last_ktime_ns.cmp(&a.last_ktime_ns));
        for m in maps.iter().filter(|m| m.writers.len() > 1) {
            out.push(Finding {
                kind: FindingKind::SharedMap,
                pid: m.pid,
                map: m.addr,
                type_name: m.type_name.clone(),
                goroutines: m.writers.keys().copied().collect(),
                sites: m.sites.keys().map(|&pc| site_name(names, m.pid, pc)).collect(),
                count: m.ops.total(),
                last_ktime_ns: 0,
            });
        }
        out
    }

#[cfg(test)]
mod tests {
    use super::*;
    use probe_common::uprobe::routine::*;

    fn key(pid: u32, tid: u32, goid: u64, map: u64, pc: u64, r: u8) -> WriteKey {
        WriteKey { pid, tid, goid, map, pc, routine: r, _pad: [0; 7] }
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
        m.names.map_types.insert((10, 0xa), "map[string]int".into());
        m.names.created_by.insert((10, 7), loc("main.main", 12));
        m
    }

    #[test]
    fn aggregates_fold_keys_exactly() {
        let mut m = sample();
        m.tick(Duration::ZERO);
        let a = &m.agg;
        assert_eq!(a.totals, Ops { writes: 60, deletes: 5, clears: 2 });
        assert_eq!(a.goroutines.len(), 2);
        let g7 = &a.goroutines[0];
        assert_eq!((g7.goid, g7.ops.writes, g7.ops.deletes), (7, 50, 5));
        assert_eq!(g7.tids.iter().copied().collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(g7.created_by.as_ref().map(Location::short).as_deref(), Some("main.main main.go:12"));
        let t12 = a.threads.iter().find(|t| t.tid == 12).unwrap();
        assert_eq!((t12.ops.writes, t12.ops.deletes), (20, 5));
        let ma = a.maps.iter().find(|x| x.addr == 0xa).unwrap();
        assert_eq!((ma.ops.writes, ma.ops.deletes), (60, 5));
        assert_eq!(ma.writers.keys().copied().collect::<Vec<_>>(), vec![7, 8]);
        let mb = a.maps.iter().find(|x| x.addr == 0xb).unwrap();
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
        assert_eq!(f[0].map, 0xa);
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
                map: 0xa,
                goid: 8,
                tid: 13,
                site: Some(loc("main.other", 40)),
                other_goid: Some(7),
                other_tid: Some(11),
                other_site: Some(loc("main.worker", 27)),
                ktime_ns: t,
                by_go_runtime: false,
                pc: 0x200 + t,
            });
        }
        m.tick(Duration::ZERO);
        let f = &m.agg.findings[0];
        assert_eq!(f.kind, FindingKind::OverlappingWrites);
        assert_eq!(f.goroutines, vec![8, 7]);
        assert_eq!(f.sites, vec!["main.other main.go:40", "main.worker main.go:27"]);
        assert_eq!(f.count, 2);
        assert_eq!(m.agg.maps.iter().find(|x| x.addr == 0xa).unwrap().overlaps, 2);
    }
}
