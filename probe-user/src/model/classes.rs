//! Classes: what real programs are made of when they create maps and
//! goroutines per request. A map class is a map type and the site that
//! wrote it most; a goroutine class is where its goroutines were created.
//! "http.Header at net/textproto.readMIMEHeader: 52k writes in 3.8k
//! instances" says more than 3.8k rows of one map each. Pure: derived from
//! the model's rows, unit-tested without root.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::model::{GoroutineRow, Location, MapRow, Names, Ops};

/// Maps of one type first-written (most) at one site, in one process.
#[derive(Clone, Debug, PartialEq)]
pub struct MapClass {
    pub pid: u32,
    pub type_name: Option<String>,
    /// The site that wrote the instances most (ties: the lowest pc); None
    /// for maps only read.
    pub site: Option<Location>,
    pub site_pc: u64,
    pub instances: u64,
    pub ops: Ops,
    /// Instances written by more than one goroutine.
    pub shared_instances: u64,
    /// The busiest instance's mutations.
    pub max_instance_ops: u64,
}

impl MapClass {
    /// Adds `other` (the same class) to this one.
    pub fn absorb(&mut self, other: &MapClass) {
        self.instances += other.instances;
        add(&mut self.ops, &other.ops);
        self.shared_instances += other.shared_instances;
        self.max_instance_ops = self.max_instance_ops.max(other.max_instance_ops);
        if self.site.is_none() {
            self.site.clone_from(&other.site);
        }
    }
}

impl GoroutineClass {
    /// Adds `other` (the same class) to this one.
    pub fn absorb(&mut self, other: &GoroutineClass) {
        self.goroutines += other.goroutines;
        add(&mut self.ops, &other.ops);
    }
}

/// Goroutines created at one site, in one process.
#[derive(Clone, Debug, PartialEq)]
pub struct GoroutineClass {
    pub pid: u32,
    /// `created_by` of its goroutines (None: not known).
    pub created_by: Option<Location>,
    pub goroutines: u64,
    pub ops: Ops,
}

/// The site of `m` that mutated it most; reads-only maps: None.
pub(crate) fn top_site(m: &MapRow) -> Option<u64> {
    m.sites
        .iter()
        .map(|(&pc, ops)| (ops.writes + ops.deletes + ops.clears, pc))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, pc)| pc)
}

fn add(into: &mut Ops, o: &Ops) {
    into.writes += o.writes;
    into.deletes += o.deletes;
    into.clears += o.clears;
    into.reads += o.reads;
}

/// Map classes of `maps`, busiest first. `names`: to name sites by (pid, pc).
pub fn map_classes<'a>(maps: impl IntoIterator<Item = &'a MapRow>, site_name: impl Fn(u32, u64) -> Option<Location>) -> Vec<MapClass> {
    let mut by: FxHashMap<(u32, Option<&str>, u64), MapClass> = FxHashMap::default();
    for m in maps {
        let pc = top_site(m).unwrap_or(0);
        let c = by.entry((m.pid, m.type_name.as_deref(), pc)).or_insert_with(|| MapClass {
            pid: m.pid,
            type_name: m.type_name.clone(),
            site: None,
            site_pc: pc,
            instances: 0,
            ops: Ops::default(),
            shared_instances: 0,
            max_instance_ops: 0,
        });
        c.instances += 1;
        add(&mut c.ops, &m.ops);
        c.shared_instances += u64::from(m.writers.len() > 1);
        c.max_instance_ops = c.max_instance_ops.max(m.ops.total());
    }
    let mut out: Vec<MapClass> = by.into_values().collect();
    for c in &mut out {
        if c.site_pc != 0 {
            c.site = site_name(c.pid, c.site_pc);
        }
    }
    out.sort_by(|a, b| {
        b.ops.total().cmp(&a.ops.total()).then(a.pid.cmp(&b.pid)).then(a.type_name.cmp(&b.type_name)).then(a.site_pc.cmp(&b.site_pc))
    });
    out
}

/// Goroutine classes of `goroutines`, busiest first.
pub fn goroutine_classes<'a>(goroutines: impl IntoIterator<Item = &'a GoroutineRow>) -> Vec<GoroutineClass> {
    let mut by: BTreeMap<(u32, Option<String>), GoroutineClass> = BTreeMap::new();
    for g in goroutines {
        let key = (g.pid, g.created_by.as_ref().map(Location::short));
        let c = by.entry(key).or_insert_with(|| GoroutineClass {
            pid: g.pid,
            created_by: g.created_by.clone(),
            goroutines: 0,
            ops: Ops::default(),
        });
        c.goroutines += 1;
        add(&mut c.ops, &g.ops);
    }
    let mut out: Vec<GoroutineClass> = by.into_values().collect();
    out.sort_by(|a, b| b.ops.total().cmp(&a.ops.total()).then(b.goroutines.cmp(&a.goroutines)));
    out
}

/// `live` with the `folded` classes of the same process added in (the same
/// class: absorbed; else a class of its own), busiest first.
pub fn merge_map_classes<'a>(mut live: Vec<MapClass>, folded: impl IntoIterator<Item = &'a MapClass>) -> Vec<MapClass> {
    for f in folded {
        match live.iter_mut().find(|c| (c.pid, &c.type_name, c.site_pc) == (f.pid, &f.type_name, f.site_pc)) {
            Some(c) => c.absorb(f),
            None => live.push(f.clone()),
        }
    }
    live.sort_by(|a, b| {
        b.ops.total().cmp(&a.ops.total()).then(a.pid.cmp(&b.pid)).then(a.type_name.cmp(&b.type_name)).then(a.site_pc.cmp(&b.site_pc))
    });
    live
}

/// Like `merge_map_classes`, for goroutine classes.
pub fn merge_goroutine_classes<'a>(
    mut live: Vec<GoroutineClass>,
    folded: impl IntoIterator<Item = &'a GoroutineClass>,
) -> Vec<GoroutineClass> {
    for f in folded {
        let key = |c: &GoroutineClass| (c.pid, c.created_by.as_ref().map(Location::short));
        match live.iter_mut().find(|c| key(c) == key(f)) {
            Some(c) => c.absorb(f),
            None => live.push(f.clone()),
        }
    }
    live.sort_by(|a, b| b.ops.total().cmp(&a.ops.total()).then(b.goroutines.cmp(&a.goroutines)));
    live
}

/// What a row of the live view's Classes tab stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassKind {
    /// Maps of one type, written most at one site.
    Map,
    /// Goroutines created at one site.
    Goroutine,
}

/// One row of the Classes tab: a map class or a goroutine class of a live
/// process, rows and folded rows together.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassRow {
    pub pid: u32,
    pub kind: ClassKind,
    /// "TYPE at SITE" for maps, the creating site for goroutines.
    pub name: String,
    /// Map instances, or goroutines.
    pub instances: u64,
    pub ops: Ops,
    /// Map classes: instances written by more than one goroutine.
    pub shared_instances: u64,
    /// Map classes: the busiest instance's mutations.
    pub max_instance_ops: u64,
    /// Mutations per second over the last tick.
    pub rate: f64,
}

impl ClassRow {
    /// Mutations per instance (per goroutine), rounded down.
    pub fn per_instance(&self) -> u64 {
        self.ops.total() / self.instances.max(1)
    }
}

/// Classes as rows (rate 0: `Model::tick` sets it), busiest first.
pub fn class_rows(maps: Vec<MapClass>, goroutines: Vec<GoroutineClass>) -> Vec<ClassRow> {
    let map_rows = maps.into_iter().map(|c| ClassRow {
        pid: c.pid,
        kind: ClassKind::Map,
        name: format!(
            "{} at {}",
            c.type_name.as_deref().unwrap_or("?"),
            c.site.as_ref().map(Location::short).unwrap_or_else(|| "?".into())
        ),
        instances: c.instances,
        ops: c.ops,
        shared_instances: c.shared_instances,
        max_instance_ops: c.max_instance_ops,
        rate: 0.0,
    });
    let goroutine_rows = goroutines.into_iter().map(|c| ClassRow {
        pid: c.pid,
        kind: ClassKind::Goroutine,
        name: c.created_by.as_ref().map(Location::short).unwrap_or_else(|| "?".into()),
        instances: c.goroutines,
        ops: c.ops,
        shared_instances: 0,
        max_instance_ops: 0,
        rate: 0.0,
    });
    let mut out: Vec<ClassRow> = map_rows.chain(goroutine_rows).collect();
    out.sort_by(|a, b| b.ops.total().cmp(&a.ops.total()).then(a.kind.cmp(&b.kind)).then(a.pid.cmp(&b.pid)).then(a.name.cmp(&b.name)));
    out
}

/// Names sites from the model's live names.
pub fn live_site_name(names: &Names) -> impl Fn(u32, u64) -> Option<Location> + '_ {
    move |pid, pc| names.sites.get(&(pid, pc)).cloned()
}

#[cfg(test)]
mod tests {
    use probe_common::uprobe::{WriteKey, routine};

    use super::*;
    use crate::model::{MapId, Model};

    fn key(goid: u64, map: u64, inst: u32, pc: u64, r: u8) -> WriteKey {
        WriteKey { pid: 1, tid: 2, goid, map, pc, routine: r, _pad: [0; 3], inst }
    }

    #[test]
    fn instances_of_one_type_and_site_are_one_class() {
        let mut m = Model::new();
        // Three per-request instances at two reused addresses, each written
        // by its own goroutine at 0x10 (and one deleted from at 0x20), plus
        // a cache written by all three at 0x30.
        m.add_counts([
            (key(1, 0xa, 1, 0x10, routine::MAPASSIGN_FASTSTR), 4),
            (key(1, 0xa, 1, 0x20, routine::MAPDELETE_FASTSTR), 1),
            (key(2, 0xa, 2, 0x10, routine::MAPASSIGN_FASTSTR), 4),
            (key(3, 0xb, 3, 0x10, routine::MAPASSIGN_FASTSTR), 5),
            (key(1, 0xc, 9, 0x30, routine::MAPASSIGN_FAST64), 1),
            (key(2, 0xc, 9, 0x30, routine::MAPASSIGN_FAST64), 1),
            (key(3, 0xc, 9, 0x30, routine::MAPASSIGN_FAST64), 1),
        ]);
        for (addr, inst, t) in [(0xa, 1, "http.Header"), (0xa, 2, "http.Header"), (0xb, 3, "http.Header"), (0xc, 9, "map[int64]int")] {
            m.names.map_types.insert((1, MapId { addr, inst }), t.into());
        }
        m.tick(std::time::Duration::from_secs(1));
        let loc = |_pid: u32, pc: u64| Some(Location { function: format!("f{pc:x}"), file: "x.go".into(), line: pc as u32 });
        let c = map_classes(m.agg.maps.iter(), loc);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].type_name.as_deref(), Some("http.Header"));
        assert_eq!((c[0].instances, c[0].ops.writes, c[0].ops.deletes, c[0].shared_instances), (3, 13, 1, 0));
        assert_eq!((c[0].site_pc, c[0].max_instance_ops), (0x10, 5));
        assert_eq!(c[0].site.as_ref().map(|l| l.line), Some(0x10));
        assert_eq!((c[1].instances, c[1].ops.writes, c[1].shared_instances, c[1].site_pc), (1, 3, 1, 0x30));
    }

    #[test]
    fn the_live_views_classes_have_instances_totals_and_rates() {
        let mut m = Model::new();
        m.add_counts([
            (key(1, 0xa, 1, 0x10, routine::MAPASSIGN_FASTSTR), 4),
            (key(2, 0xa, 2, 0x10, routine::MAPASSIGN_FASTSTR), 4),
            (key(1, 0xc, 9, 0x30, routine::MAPASSIGN_FAST64), 1),
            (key(2, 0xc, 9, 0x30, routine::MAPASSIGN_FAST64), 1),
        ]);
        for (addr, inst, t) in [(0xa, 1, "http.Header"), (0xa, 2, "http.Header"), (0xc, 9, "map[int64]int")] {
            m.names.map_types.insert((1, MapId { addr, inst }), t.into());
        }
        m.tick(std::time::Duration::from_secs(1));
        let maps: Vec<&ClassRow> = m.agg.classes.iter().filter(|c| c.kind == ClassKind::Map).collect();
        assert_eq!(maps.len(), 2);
        assert!(maps[0].name.starts_with("http.Header at "), "{}", maps[0].name);
        assert_eq!((maps[0].instances, maps[0].ops.total(), maps[0].per_instance(), maps[0].shared_instances), (2, 8, 4, 0));
        assert!(maps[1].name.starts_with("map[int64]int at "), "{}", maps[1].name);
        assert_eq!((maps[1].instances, maps[1].ops.total(), maps[1].shared_instances), (1, 2, 1));
        // Goroutines 1 and 2, creator unknown: one class of two.
        let gs: Vec<&ClassRow> = m.agg.classes.iter().filter(|c| c.kind == ClassKind::Goroutine).collect();
        assert_eq!((gs.len(), gs[0].instances, gs[0].ops.total()), (1, 2, 10));
        // A second tick: 6 more writes to a new instance of the header class
        // in 2 s → 3/s for that class, 0/s for the cache.
        m.add_counts([(key(3, 0xb, 3, 0x10, routine::MAPASSIGN_FASTSTR), 6)]);
        m.names.map_types.insert((1, MapId { addr: 0xb, inst: 3 }), "http.Header".into());
        m.tick(std::time::Duration::from_secs(2));
        let h = m.agg.classes.iter().find(|c| c.name.starts_with("http.Header")).unwrap();
        assert_eq!((h.instances, h.ops.total(), h.rate), (3, 14, 3.0));
        let cache = m.agg.classes.iter().find(|c| c.name.starts_with("map[int64]int")).unwrap();
        assert_eq!(cache.rate, 0.0);
    }

    #[test]
    fn goroutines_are_classed_by_creation_site() {
        let mut m = Model::new();
        m.add_counts([
            (key(1, 0xa, 1, 0x10, routine::MAPASSIGN), 2),
            (key(2, 0xa, 1, 0x10, routine::MAPASSIGN), 3),
            (key(3, 0xa, 1, 0x10, routine::MAPASSIGN), 7),
        ]);
        let at = |line| Location { function: "main.serve".into(), file: "main.go".into(), line };
        m.names.created_by.insert((1, 1), at(10));
        m.names.created_by.insert((1, 2), at(10));
        m.names.created_by.insert((1, 3), at(20));
        m.tick(std::time::Duration::from_secs(1));
        let c = goroutine_classes(m.agg.goroutines.iter());
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].created_by.as_ref().map(|l| l.line), c[0].goroutines, c[0].ops.writes), (Some(20), 1, 7));
        assert_eq!((c[1].created_by.as_ref().map(|l| l.line), c[1].goroutines, c[1].ops.writes), (Some(10), 2, 5));
    }
}

#[cfg(test)]
mod fold_tests {
    use probe_common::uprobe::{WriteKey, routine};

    use crate::model::{Location, MapId, Model};

    fn key(goid: u64, map: u64, inst: u32, pc: u64) -> WriteKey {
        WriteKey { pid: 1, tid: 2, goid, map, pc, routine: routine::MAPASSIGN_FASTSTR, _pad: [0; 3], inst }
    }

    #[test]
    fn idle_rows_fold_into_their_classes_and_nothing_else_changes() {
        let mut m = Model::new();
        // 100 per-request instances (goroutines 10..110, one map each, 3
        // writes at 0x10), one instance written by two goroutines (a shared
        // per-request kind: 0x20), and a cache that stays busy (0x30).
        let mut first = Vec::new();
        for i in 0..100u64 {
            first.push((key(10 + i, 0xa0 + i % 7, i as u32 + 1, 0x10), 3));
        }
        first.push((key(500, 0xb0, 900, 0x20), 1));
        first.push((key(501, 0xb0, 900, 0x20), 2));
        first.push((key(1, 0xc0, 1000, 0x30), 5));
        m.add_counts(first);
        for i in 0..100u64 {
            m.names.map_types.insert((1, MapId { addr: 0xa0 + i % 7, inst: i as u32 + 1 }), "http.Header".into());
            m.names.created_by.insert((1, 10 + i), Location { function: "net/http.(*Server).Serve".into(), file: "server.go".into(), line: 3454 });
        }
        m.names.map_types.insert((1, MapId { addr: 0xb0, inst: 900 }), "map[int]int".into());
        m.names.sites.insert((1, 0x10), Location { function: "main.handle".into(), file: "main.go".into(), line: 7 });
        m.tick(std::time::Duration::from_secs(1));
        let totals = m.agg.totals;
        // Only the cache keeps counting.
        for _ in 0..10 {
            m.add_counts([(key(1, 0xc0, 1000, 0x30), 1)]);
        }
        assert_eq!(m.fold_idle(100, 0, usize::MAX), (0, 0), "nothing is idle for 100 epochs yet");
        assert_eq!(m.fold_idle(5, 1000, usize::MAX), (0, 0), "too few idle rows to be worth a fold");
        assert_eq!(m.fold_idle(5, 0, usize::MAX), (101, 102));
        m.tick(std::time::Duration::from_secs(1));
        assert_eq!(m.agg.totals.writes, totals.writes + 10, "totals keep everything");
        assert_eq!(m.agg.maps.len(), 1, "only the cache is a row");
        assert_eq!(m.agg.goroutines.len(), 1);
        assert_eq!(m.counts().len(), 1, "the counter keys of folded rows are gone");
        assert_eq!(m.agg.sites.len(), 3, "sites stay");
        assert!(m.agg.sites.iter().all(|s| s.maps.len() <= 1), "sites no longer name folded maps");
        let c = m.folded.maps.values().find(|c| c.type_name.as_deref() == Some("http.Header")).unwrap();
        assert_eq!((c.instances, c.ops.writes, c.site_pc), (100, 300, 0x10));
        assert_eq!(c.site.as_ref().map(|l| l.line), Some(7));
        let g = m.folded.goroutines.values().find(|g| g.created_by.as_ref().is_some_and(|l| l.line == 3454)).unwrap();
        assert_eq!((g.goroutines, g.ops.writes), (100, 300));
        assert_eq!(m.folded.findings.len(), 1, "the shared instance keeps its finding");
        assert_eq!(m.folded.findings[0].goroutines, vec![500, 501]);
        assert!(m.agg.findings.iter().any(|f| f.goroutines == vec![500, 501]), "and it stays among the findings shown");
        // A folded key seen again is counted anew, on a fresh row.
        m.add_counts([(key(10, 0xa0, 1, 0x10), 2)]);
        m.tick(std::time::Duration::from_secs(1));
        assert_eq!(m.agg.maps.len(), 2);
        assert_eq!(m.agg.totals.writes, totals.writes + 12);
    }

    /// 100 idle per-request instances (goroutine i writes map 0xa0+i 3
    /// times at 0x10; two goroutines share one of them) beside a busy cache.
    fn idle_crowd() -> Model {
        let mut m = Model::new();
        let mut first: Vec<_> = (0..100u64).map(|i| (key(10 + i, 0xa00 + i, 1, 0x10), 3)).collect();
        first.push((key(10, 0xa00 + 50, 1, 0x10), 1));
        m.add_counts(first);
        for i in 0..100u64 {
            m.names.map_types.insert((1, MapId { addr: 0xa00 + i, inst: 1 }), "http.Header".into());
        }
        for _ in 0..10 {
            m.add_counts([(key(1, 0xc0, 1000, 0x30), 1)]);
        }
        m
    }

    #[test]
    fn folding_in_steps_ends_where_one_fold_ends_and_new_rows_fill_the_freed_slots() {
        let mut once = idle_crowd();
        assert_eq!(once.fold_idle(5, 0, usize::MAX), (100, 100));
        let mut steps = idle_crowd();
        let mut folded = Vec::new();
        loop {
            let f = steps.fold_idle(5, 0, 7);
            if f == (0, 0) {
                break;
            }
            folded.push(f);
        }
        assert_eq!(folded.len(), 15, "100 rows, 7 a step: {folded:?}");
        assert_eq!(folded.iter().map(|f| f.0).sum::<usize>(), 100);
        for m in [&mut once, &mut steps] {
            m.tick(std::time::Duration::from_secs(1));
        }
        let classes = |m: &Model| {
            let mut v: Vec<_> = m.folded.maps.values().map(|c| (c.type_name.clone(), c.instances, c.ops.writes)).collect();
            v.sort();
            v
        };
        assert_eq!(classes(&steps), classes(&once));
        assert_eq!(classes(&steps), vec![(Some("http.Header".into()), 100, 301)]);
        assert_eq!(steps.folded.findings.len(), 1, "the shared instance keeps its finding");
        assert_eq!(steps.folded.findings[0].goroutines, vec![10, 60]);
        assert_eq!((steps.agg.maps.len(), steps.agg.goroutines.len(), steps.counts().len()), (1, 1, 1));
        let t = &steps.agg.threads[0];
        assert_eq!(t.goroutines.as_slice(), &[1], "threads no longer name folded goroutines");
        // 100 new instances: into the freed slots, none added; counted exactly.
        let slots = steps.agg.maps.rows.len();
        steps.add_counts((0..100u64).map(|i| (key(500 + i, 0xb00 + i, 2, 0x10), 2)));
        steps.add_counts([(key(500, 0xc0, 1000, 0x30), 1)]);
        steps.tick(std::time::Duration::from_secs(1));
        assert_eq!(steps.agg.maps.rows.len(), slots, "freed slots are filled first");
        assert_eq!(steps.agg.maps.len(), 101);
        assert_eq!(steps.agg.maps.iter().map(|r| r.ops.writes).sum::<u64>(), 200 + 11);
        // A folded row stays in its slot until a new one fills it: nothing
        // of it shows through.
        let mut instances = steps.agg.maps.iter().filter(|r| r.map.addr != 0xc0);
        assert!(instances.all(|r| r.writers.len() == 1 && r.writers.iter().all(|(g, _)| *g >= 500) && r.map.inst == 2));
        assert_eq!(steps.agg.maps.iter().filter(|r| r.map.addr == 0xc0).map(|r| r.writers.len()).next(), Some(2));
        let site = steps.agg.sites.iter().find(|s| s.pc == 0x10).unwrap();
        assert_eq!(site.maps.len(), 100, "the site names only the new instances");
        assert_eq!(steps.agg.totals.writes, 301 + 10 + 200 + 1);
    }

    #[test]
    fn a_row_written_again_in_the_middle_of_a_fold_is_named_once_by_its_thread_and_site() {
        let mut m = idle_crowd();
        assert_eq!(m.fold_idle(5, 0, 7), (7, 7));
        // Goroutine 10 and its map were among the first folded; both count again.
        let folded: Vec<u64> = (10..110).filter(|g| m.goroutine(1, *g).is_none()).collect();
        assert_eq!(folded.len(), 7);
        let g = folded[0];
        let map = 0xa00 + g - 10;
        m.add_counts([(key(g, map, 1, 0x10), 4)]);
        while m.fold_idle(5, 0, 7) != (0, 0) {}
        m.tick(std::time::Duration::from_secs(1));
        let t = &m.agg.threads[0];
        assert_eq!(t.goroutines.as_slice(), &[1, g], "the busy cache's goroutine and the one written again, once each");
        let site = m.agg.sites.iter().find(|s| s.pc == 0x10).unwrap();
        assert_eq!(site.maps.as_slice(), &[MapId { addr: map, inst: 1 }]);
        assert_eq!(m.map(1, MapId { addr: map, inst: 1 }).map(|r| r.ops.writes), Some(4));
        assert_eq!(m.agg.totals.writes, 301 + 10 + 4, "every write counted once");
    }

    #[test]
    fn rows_all_written_again_before_the_prune_are_named_once() {
        let mut m = idle_crowd();
        assert_eq!(m.fold_idle(5, 0, 7), (7, 7));
        // Every per-request goroutine writes its map again: the 7 folded
        // come back as new rows, and nothing is idle any more.
        m.add_counts((0..100u64).map(|i| (key(10 + i, 0xa00 + i, 1, 0x10), 1)));
        assert_eq!(m.fold_idle(5, 0, 7), (0, 0));
        m.tick(std::time::Duration::from_secs(1));
        let t = &m.agg.threads[0];
        assert_eq!(t.goroutines.len(), 101, "goroutine 1 and the 100, once each");
        let site = m.agg.sites.iter().find(|s| s.pc == 0x10).unwrap();
        assert_eq!(site.maps.len(), 100);
    }

    #[test]
    fn a_folded_single_writer_map_written_again_by_another_goroutine_is_shared() {
        let mut m = Model::new();
        // A cache written once by goroutine 7, then idle, then folded; many
        // idle per-request maps fold with it.
        m.add_counts([(key(7, 0xc0, 3, 0x30), 1)]);
        for i in 0..50u64 {
            m.add_counts([(key(100 + i, 0xa0, 10 + i as u32, 0x10), 2)]);
        }
        m.tick(std::time::Duration::from_secs(1));
        for _ in 0..10 {
            m.add_counts([]);
        }
        assert_eq!(m.fold_idle(5, 0, usize::MAX).0, 51);
        assert!(m.agg.findings.is_empty());
        // Goroutine 8 writes the cache: a fresh row, but two writers.
        m.add_counts([(key(8, 0xc0, 3, 0x30), 1)]);
        m.tick(std::time::Duration::from_secs(1));
        let row = m.agg.maps.iter().find(|r| r.map == MapId { addr: 0xc0, inst: 3 }).unwrap();
        assert_eq!(row.writers.iter().map(|(g, _)| *g).collect::<Vec<_>>(), vec![7, 8]);
        let f: Vec<_> = m.agg.findings.iter().filter(|f| f.map == MapId { addr: 0xc0, inst: 3 }).collect();
        assert_eq!(f.len(), 1, "{:?}", m.agg.findings);
        assert_eq!(f[0].goroutines, vec![7, 8]);
        // A per-request map's address reused by a new instance (another
        // `inst`) is not the folded one: no writer carried over.
        m.add_counts([(key(200, 0xa0, 99, 0x10), 1)]);
        m.tick(std::time::Duration::from_secs(1));
        let fresh = m.agg.maps.iter().find(|r| r.map == MapId { addr: 0xa0, inst: 99 }).unwrap();
        assert_eq!(fresh.writers.len(), 1);
        // The same goroutine writing its folded map again: still one writer.
        m.add_counts([(key(100, 0xa0, 10, 0x10), 1)]);
        m.tick(std::time::Duration::from_secs(1));
        let again = m.agg.maps.iter().find(|r| r.map == MapId { addr: 0xa0, inst: 10 }).unwrap();
        assert_eq!(again.writers.len(), 1);
    }

    #[test]
    fn a_map_written_by_every_goroutine_names_at_most_a_thousand_writers() {
        use crate::model::{MAX_WRITERS_PER_MAP, OTHER_WRITERS};
        let mut m = Model::new();
        m.add_counts((1..=3000u64).map(|g| (key(g, 0xc0, 1, 0x30), 2)));
        m.tick(std::time::Duration::from_secs(1));
        let row = &m.agg.maps.rows[0];
        assert_eq!(row.ops.writes, 6000, "every write counts");
        assert_eq!(row.writers.len(), MAX_WRITERS_PER_MAP + 1);
        assert_eq!(row.writers.get(&OTHER_WRITERS).map(|o| o.writes), Some(2 * (3000 - MAX_WRITERS_PER_MAP as u64)));
        let f = &m.agg.findings[0];
        assert_eq!(f.goroutines.len(), MAX_WRITERS_PER_MAP);
        assert!(!f.goroutines.contains(&OTHER_WRITERS));
        // A named writer writing again still counts as itself.
        m.add_counts([(key(5, 0xc0, 1, 0x30), 1)]);
        m.tick(std::time::Duration::from_secs(1));
        assert_eq!(m.agg.maps.rows[0].writers.get(&5).map(|o| o.writes), Some(3));
    }
}
