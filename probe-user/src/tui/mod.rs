//! The live view's state and logic, kept apart from the terminal so all of it
//! is unit-tested on ratatui's `TestBackend`.
//!
//! - [`App`]: what the user chose (view, sort, filter, selection, pause,
//!   interval) plus per-row rate histories. [`App::on_tick`] is the only place
//!   App state follows the model; [`App::apply`] (in `keys`) the only place it
//!   follows the user.
//! - [`rows`]: the tables as pure functions of (`Model`, `App`).
//! - [`keys`]: `KeyEvent → Action`, pure.
//! - [`draw`]: renders (`Model`, `App`) into a frame; mutates nothing.

pub mod draw;
pub mod keys;
pub mod rows;

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

use crate::model::{FindingKind, MapId, Model};

pub use draw::draw;
pub use keys::{Action, action};
pub use rows::{RowData, RowList, row_list, rows_for};

/// The views, in tab order (keys 1..7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tab {
    Goroutines,
    Threads,
    Maps,
    Sites,
    Bpf,
    Findings,
    /// Map classes (type and site) and goroutine classes (creation site):
    /// what churning programs are made of.
    Classes,
}

impl Tab {
    pub const ALL: [Tab; 7] = [Tab::Goroutines, Tab::Threads, Tab::Maps, Tab::Sites, Tab::Bpf, Tab::Findings, Tab::Classes];

    pub fn index(self) -> usize {
        match self {
            Tab::Goroutines => 0,
            Tab::Threads => 1,
            Tab::Maps => 2,
            Tab::Sites => 3,
            Tab::Bpf => 4,
            Tab::Findings => 5,
            Tab::Classes => 6,
        }
    }

    pub fn from_index(i: usize) -> Tab {
        Tab::ALL[i % Tab::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Tab::Goroutines => "Goroutines",
            Tab::Threads => "Threads",
            Tab::Maps => "Maps",
            Tab::Sites => "Sites",
            Tab::Bpf => "BPF maps",
            Tab::Findings => "Findings",
            Tab::Classes => "Classes",
        }
    }

    pub fn next(self) -> Tab {
        Tab::from_index(self.index() + 1)
    }

    pub fn prev(self) -> Tab {
        Tab::from_index(self.index() + Tab::ALL.len() - 1)
    }
}

/// A row's identity across ticks: what selection and rate histories follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowId {
    Goroutine { pid: u32, goid: u64 },
    Thread { pid: u32, tid: u32 },
    Map { pid: u32, map: MapId },
    Site { pid: u32, pc: u64 },
    /// `map`: the map id named in the kernel (an fd reused for another map is another row).
    Bpf { pid: u32, tid: u32, fd: u32, map: Option<u32> },
    Finding { kind: FindingKind, pid: u32, map: MapId },
    /// `name`: a hash of the class's name (a row id is Copy).
    Class { pid: u32, kind: crate::model::classes::ClassKind, name: u64 },
}

/// How a table is ordered: `col: None` keeps the model's order (busiest
/// first; findings most recent first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub col: Option<usize>,
    pub desc: bool,
}

/// Recent rates of one row: a ring for its sparkline and an HDR histogram of
/// exactly the ring's values for p50/p99/max over that window.
#[derive(Debug)]
pub struct RowStats {
    pub ring: VecDeque<u64>,
    pub hist: Histogram<u64>,
    /// `App::ticks` when its row was last in the model.
    seen: u64,
}

impl RowStats {
    fn new() -> Self {
        Self { ring: VecDeque::with_capacity(WINDOW), hist: histogram(None), seen: 0 }
    }

    fn push(&mut self, rate: u64) {
        if self.ring.len() == WINDOW {
            self.ring.pop_front();
            // An HDR histogram cannot forget one value: rebuild it from the
            // window (WINDOW values, cheap) so it describes the window only.
            self.hist.reset();
            for &v in &self.ring {
                let _ = self.hist.record(v);
            }
        }
        self.ring.push_back(rate);
        let _ = self.hist.record(rate);
    }

    fn idle(&self) -> bool {
        self.ring.iter().all(|&v| v == 0)
    }
}

/// An HDR histogram at 2 significant digits (1% resolution): bounded by
/// `max`, else growing with the largest value recorded.
#[expect(clippy::expect_used, reason = "constant, valid bounds: creation cannot fail")]
fn histogram(max: Option<u64>) -> Histogram<u64> {
    match max {
        Some(max) => Histogram::new_with_bounds(1, max, 2).expect("valid bounds"),
        None => Histogram::new(2).expect("valid precision"),
    }
}

/// Rates kept per row (ticks).
pub const WINDOW: usize = 120;
/// Rows with rate histories at most; beyond, new rows get none (their
/// detail pane says so) rather than memory growing without bound.
pub const MAX_TRACKED: usize = 4096;
/// Refresh intervals `+`/`-` step through.
pub const INTERVALS_MS: [u64; 8] = [100, 250, 500, 1000, 2000, 3000, 5000, 10_000];

/// What the session knows that the model does not: shown in the header.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// `pid 4242 (writers)`, `every Go process`, `./server --flag`.
    pub target: String,
    /// Attached uprobe sets (binaries).
    pub attached: usize,
    /// Why the target is gone (`command exited with status 0`, `pid 4242 exited`).
    pub ended: Option<String>,
    /// Things the user should know (prologue fallbacks, attach failures).
    pub warnings: Vec<String>,
    /// Time since the session started (the model's clock stops when paused).
    pub elapsed: Duration,
}

#[derive(Debug)]
pub struct App {
    pub tab: Tab,
    pub sort: [Sort; Tab::ALL.len()],
    pub filter: String,
    /// The filter line has the keyboard.
    pub filtering: bool,
    pub paused: bool,
    /// Selected index per view, into that view's visible rows.
    pub selected: [usize; Tab::ALL.len()],
    /// The selected row's identity per view: selection follows the row when
    /// the order changes.
    pub selected_id: [Option<RowId>; Tab::ALL.len()],
    /// The user moved the selection in this view: it follows its row. Until
    /// then it stays on the top row, whichever row is busiest.
    pub pinned: [bool; Tab::ALL.len()],
    pub detail: bool,
    pub help: bool,
    pub interval: Duration,
    /// Rows a PgUp/PgDn moves (the table's height, set on resize).
    pub page: usize,
    pub stats: FxHashMap<RowId, RowStats>,
    /// Cost of each `Session::tick` (snapshot + aggregation), µs.
    pub cost: Histogram<u64>,
    pub last_cost: Duration,
    pub ticks: u64,
    pub status: Status,
    pub quit: bool,
}

impl Default for App {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl App {
    pub fn new(interval: Duration) -> Self {
        Self {
            tab: Tab::Goroutines,
            sort: Tab::ALL.map(rows::default_sort),
            filter: String::new(),
            filtering: false,
            paused: false,
            selected: [0; Tab::ALL.len()],
            selected_id: [None; Tab::ALL.len()],
            pinned: [false; Tab::ALL.len()],
            detail: false,
            help: false,
            interval: interval.clamp(Duration::from_millis(100), Duration::from_secs(10)),
            page: 10,
            stats: FxHashMap::default(),
            // 1 µs .. 1 h.
            cost: histogram(Some(3_600_000_000)),
            last_cost: Duration::ZERO,
            ticks: 0,
            status: Status::default(),
            quit: false,
        }
    }

    /// Follows the model after a `Session::tick`: records each row's rate
    /// and the tick's cost, and keeps the selection on its row. The only
    /// place App state changes from the model.
    pub fn on_tick(&mut self, model: &Model, cost: Duration) {
        self.ticks += 1;
        self.last_cost = cost;
        let _ = self.cost.record((cost.as_micros() as u64).max(1));
        let a = &model.agg;
        let rates = a
            .goroutines
            .iter()
            .map(|g| (RowId::Goroutine { pid: g.pid, goid: g.goid }, g.rate))
            .chain(a.threads.iter().map(|t| (RowId::Thread { pid: t.pid, tid: t.tid }, t.rate)))
            .chain(a.maps.iter().map(|m| (RowId::Map { pid: m.pid, map: m.map }, m.rate)))
            .chain(a.sites.iter().map(|s| (RowId::Site { pid: s.pid, pc: s.pc }, s.rate)))
            .chain(model.bpf.iter().map(|b| (RowId::Bpf { pid: b.pid, tid: b.tid, fd: b.fd, map: b.map_id }, b.rate)));
        let tick = self.ticks;
        for (id, rate) in rates {
            let rate = rate.round() as u64;
            // Idle rows get a history only once they write: an idle row
            // with none needs no lookup.
            if rate == 0 && self.stats.is_empty() {
                continue;
            }
            let room = self.stats.len() < MAX_TRACKED;
            match self.stats.get_mut(&id) {
                Some(s) => {
                    s.push(rate);
                    s.seen = tick;
                }
                None if rate > 0 && room => {
                    let mut s = RowStats::new();
                    s.push(rate);
                    s.seen = tick;
                    self.stats.insert(id, s);
                }
                None => {}
            }
        }
        // Forget rows that vanished or stayed idle for a whole window.
        self.stats.retain(|_, s| s.seen == tick && !s.idle());
        self.reselect_all(model);
    }

    /// The row the detail pane and the selected-row sparkline describe.
    pub fn selected_row(&self, model: &Model) -> Option<RowData> {
        let rows = row_list(self.tab, model, self);
        let i = self.selection_in(&rows, model)?;
        Some(rows.row(model, i))
    }

    /// Where the selection is in `rows` (the current view's rows).
    pub fn selection_index(&self, rows: &[RowData]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        let t = self.tab.index();
        let followed = if self.pinned[t] { self.selected_id[t] } else { None };
        followed
            .and_then(|id| rows.iter().position(|r| r.id == id))
            .or(Some(self.selected[t].min(rows.len() - 1)))
    }

    /// Where the selection is in `rows` (the current view's rows, unformatted).
    pub fn selection_in(&self, rows: &RowList, model: &Model) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        let t = self.tab.index();
        let followed = if self.pinned[t] { self.selected_id[t] } else { None };
        followed
            .and_then(|id| rows.position(model, id))
            .or(Some(self.selected[t].min(rows.len() - 1)))
    }

    pub(crate) fn reselect_all(&mut self, model: &Model) {
        for tab in Tab::ALL {
            self.reselect(tab, model);
        }
    }

    /// Re-anchors `tab`'s selection after its rows changed: stay on the same
    /// row if it is still shown, else on the same position.
    pub(crate) fn reselect(&mut self, tab: Tab, model: &Model) {
        let rows = row_list(tab, model, self);
        let t = tab.index();
        if rows.is_empty() {
            self.selected[t] = 0;
            return;
        }
        let followed = if self.pinned[t] { self.selected_id[t] } else { None };
        let i = followed
            .and_then(|id| rows.position(model, id))
            .unwrap_or(self.selected[t].min(rows.len() - 1));
        self.selected[t] = i;
        self.selected_id[t] = Some(rows.id(model, i));
    }

    /// Moves the current view's selection to index `i` (clamped).
    pub(crate) fn select(&mut self, i: usize, model: &Model) {
        let rows = row_list(self.tab, model, self);
        let t = self.tab.index();
        if rows.is_empty() {
            self.selected[t] = 0;
            self.selected_id[t] = None;
            return;
        }
        let i = i.min(rows.len() - 1);
        self.selected[t] = i;
        self.selected_id[t] = Some(rows.id(model, i));
    }

    /// p50 / p99 / max of `id`'s rate over the window, when it has a history.
    pub fn rate_quantiles(&self, id: &RowId) -> Option<(u64, u64, u64, usize)> {
        let s = self.stats.get(id)?;
        // The window's max is exact from the ring; quantiles are the HDR's
        // (within 1%, rounded up to their bucket: never above the max).
        let max = s.ring.iter().copied().max().unwrap_or(0);
        let q = |q: f64| s.hist.value_at_quantile(q).min(max);
        Some((q(0.5), q(0.99), max, s.ring.len()))
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A fixed model shaped like the `writers` fixture, for view tests.

    use std::time::Duration;

    use probe_common::uprobe::{WriteKey, routine::*};

    use crate::model::{BpfRow, Location, MapId, Model, OverlapEvent, ProcessInfo};

    pub const PID: u32 = 4242;

    fn key(tid: u32, goid: u64, map: u64, pc: u64, r: u8) -> WriteKey {
        WriteKey { pid: PID, tid, goid, map, pc, routine: r, _pad: [0; 3], inst: 0 }
    }

    fn loc(f: &str, line: u32) -> Location {
        Location { function: f.into(), file: "/src/writers/main.go".into(), line }
    }

    /// (key, count at tick 1, count at tick 2): tick 2 is one second later.
    fn counts() -> Vec<(WriteKey, u64, u64)> {
        vec![
            (key(101, 7, 0xc000010000, 0x4a0100, MAPASSIGN_FASTSTR), 1000, 4000), // str: 3000/s
            (key(101, 7, 0xc000010000, 0x4a0110, MAPDELETE_FASTSTR), 100, 600),   // str deletes: 500/s
            (key(102, 8, 0xc000020000, 0x4a0200, MAPASSIGN_FAST64), 500, 1500),   // int: 1000/s
            (key(103, 9, 0xc000030000, 0x4a0300, MAPASSIGN_FASTSTR), 200, 400),   // shared1: 200/s
            (key(104, 10, 0xc000030000, 0x4a0300, MAPASSIGN_FASTSTR), 50, 150),   // shared2: 100/s
            (key(105, 11, 0xc000040000, 0x4a0400, MAPASSIGN_FAST32), 10, 10),     // idle
        ]
    }

    pub fn model() -> Model {
        let mut m = Model::new();
        m.processes.insert(
            PID,
            ProcessInfo { pid: PID, exe: "/src/writers/writers".into(), comm: "writers".into(), go_version: "go1.27.3".into(), ..Default::default() },
        );
        m.set_counts(counts().into_iter().map(|(k, a, _)| (k, a)));
        m.names.map_types.insert((PID, MapId { addr: 0xc000010000, inst: 0 }), "map[string][]string".into());
        m.names.map_types.insert((PID, MapId { addr: 0xc000020000, inst: 0 }), "map[int64]int".into());
        m.names.map_types.insert((PID, MapId { addr: 0xc000030000, inst: 0 }), "map[string]int".into());
        m.names.map_types.insert((PID, MapId { addr: 0xc000040000, inst: 0 }), "map[int32]int".into());
        m.names.sites.insert((PID, 0x4a0100), loc("main.strWriter", 81));
        m.names.sites.insert((PID, 0x4a0110), loc("main.strWriter", 85));
        m.names.sites.insert((PID, 0x4a0200), loc("main.intWriter", 95));
        m.names.sites.insert((PID, 0x4a0300), loc("main.sharedWriter", 123));
        m.names.sites.insert((PID, 0x4a0400), loc("main.clearer", 134));
        for (g, line) in [(7, 170), (8, 171), (9, 173), (10, 174), (11, 175)] {
            m.names.created_by.insert((PID, g), loc("main.main", line));
        }
        for (t, c) in [(101, "writers"), (102, "writers"), (103, "writers"), (104, "writers"), (105, "writers")] {
            m.names.comms.insert((PID, t), c.into());
        }
        m.set_bpf(vec![BpfRow {
            pid: 77,
            tid: 77,
            comm: "cilium-agent".into(),
            fd: 9,
            map_id: Some(31),
            map_name: Some("cilium_ct4".into()),
            map_type: Some("lru_hash".into()),
            updates: 10,
            deletes: 2,
            update_calls: 10,
            delete_calls: 2,
            lookups: 40,
            lookup_calls: 4,
            rate: 0.0,
        }]);
        m.bpf_hot_keys = vec![crate::model::BpfHotKeys { map_id: 31, keys: vec![(0xabcdef, 9), (0x12, 3)] }];
        m.tick(Duration::from_secs(1));
        m.set_counts(counts().into_iter().map(|(k, _, b)| (k, b)));
        m.bpf[0].updates = 60;
        m.add_overlap(OverlapEvent {
            pid: PID,
            map: MapId { addr: 0xc000030000, inst: 0 },
            goid: 10,
            tid: 104,
            site: Some(loc("main.sharedWriter", 123)),
            other_goid: Some(9),
            other_tid: Some(103),
            other_site: Some(loc("main.sharedWriter", 123)),
            ktime_ns: 5,
            by_go_runtime: false,
                read: false, iter: false,
            pc: 0x4a0300,
        });
        m.tick(Duration::from_secs(1));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_tick_keeps_windowed_rate_histograms() {
        let m = testutil::model();
        let mut app = App::default();
        for _ in 0..3 {
            app.on_tick(&m, Duration::from_micros(150));
        }
        let id = RowId::Goroutine { pid: testutil::PID, goid: 7 };
        assert_eq!(app.rate_quantiles(&id), Some((3500, 3500, 3500, 3)));
        // The idle goroutine gets no history.
        assert!(app.rate_quantiles(&RowId::Goroutine { pid: testutil::PID, goid: 11 }).is_none());
        assert_eq!(app.cost.len(), 3);
    }

    #[test]
    fn window_forgets_old_rates() {
        let mut s = RowStats::new();
        s.push(1_000_000);
        for _ in 0..WINDOW {
            s.push(10);
        }
        assert_eq!(s.ring.len(), WINDOW);
        assert_eq!(s.hist.max(), 10);
        assert_eq!(s.hist.len(), WINDOW as u64);
    }

    #[test]
    fn unmoved_selection_stays_on_top() {
        let m = testutil::model();
        let mut app = App::default();
        app.on_tick(&m, Duration::ZERO);
        app.apply(Action::ReverseSort, &m);
        let rows = rows_for(Tab::Goroutines, &m, &app);
        assert_eq!(app.selection_index(&rows), Some(0));
        assert_eq!(app.selected_id[0], Some(RowId::Goroutine { pid: testutil::PID, goid: 11 }));
    }

    #[test]
    fn quantiles_over_the_window() {
        let mut app = App::default();
        let id = RowId::Goroutine { pid: 1, goid: 1 };
        let mut s = RowStats::new();
        for v in 1..=100 {
            s.push(v * 1000);
        }
        app.stats.insert(id, s);
        let (p50, p99, max, n) = app.rate_quantiles(&id).unwrap();
        assert_eq!((max, n), (100_000, 100));
        // HDR at 2 significant digits: within 1%.
        assert!(p50.abs_diff(50_000) <= 500, "{p50}");
        assert!(p99.abs_diff(99_000) <= 990, "{p99}");
    }

    #[test]
    fn selection_follows_its_row() {
        let m = testutil::model();
        let mut app = App::default();
        app.on_tick(&m, Duration::ZERO);
        // Busiest first: goroutine 7, then 8.
        app.apply(Action::Down, &m);
        assert_eq!(app.selected_id[0], Some(RowId::Goroutine { pid: testutil::PID, goid: 8 }));
        // Reverse the order: the selection stays on goroutine 8.
        app.apply(Action::ReverseSort, &m);
        let rows = rows_for(Tab::Goroutines, &m, &app);
        let i = app.selection_index(&rows).unwrap();
        assert_eq!(rows[i].id, RowId::Goroutine { pid: testutil::PID, goid: 8 });
        assert_eq!(i, rows.len() - 2);
    }
}
