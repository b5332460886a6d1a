//! The tables: columns per view, and rows as pure functions of the model and
//! the user's sort and filter.

use std::cmp::Ordering;

use super::{App, RowId, Sort, Tab};
use crate::model::{FindingKind, Location, Model};

/// How a column sorts and aligns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Num,
    /// A writes/s column: numeric, and the view's default order.
    Rate,
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub title: &'static str,
    /// Width when shown (grown further when `grow` and there is room).
    pub width: u16,
    pub grow: bool,
    /// 0: always shown; higher numbers are dropped first on narrow terminals.
    pub prio: u8,
    pub kind: Kind,
}

const fn col(title: &'static str, width: u16, grow: bool, prio: u8, kind: Kind) -> Column {
    Column { title, width, grow, prio, kind }
}

use Kind::{Num, Rate, Text};

const GOROUTINES: &[Column] = &[
    col("GOID", 7, false, 0, Num),
    col("PROCESS", 14, false, 2, Text),
    col("CREATED BY", 16, true, 1, Text),
    col("WRITES/S", 10, false, 0, Rate),
    col("TOTAL", 8, false, 0, Num),
    col("MAPS WRITTEN", 16, true, 1, Text),
    col("THREAD", 8, false, 1, Text),
];
const THREADS: &[Column] = &[
    col("TID", 8, false, 0, Num),
    col("PROCESS", 14, false, 2, Text),
    col("COMM", 15, false, 1, Text),
    col("WRITES/S", 10, false, 0, Rate),
    col("TOTAL", 8, false, 0, Num),
    col("GOROUTINES SEEN", 16, true, 1, Text),
];
const MAPS: &[Column] = &[
    col("ADDRESS", 14, false, 0, Text),
    col("TYPE", 20, true, 0, Text),
    col("WRITES/S", 10, false, 0, Rate),
    col("TOTAL", 8, false, 0, Num),
    col("WRITERS", 8, false, 1, Num),
    col("OVERLAPS", 9, false, 1, Num),
    col("PROCESS", 14, false, 2, Text),
];
const SITES: &[Column] = &[
    col("FUNCTION FILE:LINE", 28, true, 0, Text),
    col("WRITES/S", 10, false, 0, Rate),
    col("TOTAL", 8, false, 0, Num),
    col("MAPS", 5, false, 1, Num),
    col("MAP TYPES", 16, true, 1, Text),
    col("PROCESS", 14, false, 2, Text),
];
const BPF: &[Column] = &[
    col("PID", 7, false, 0, Num),
    col("COMM", 15, false, 0, Text),
    col("MAP ID", 7, false, 0, Num),
    col("NAME", 16, true, 0, Text),
    col("TYPE", 12, false, 2, Text),
    col("UPDATES", 9, false, 1, Num),
    col("DELETES", 9, false, 1, Num),
    col("WRITES/S", 10, false, 0, Rate),
];
const FINDINGS: &[Column] = &[
    col("KIND", 8, false, 0, Text),
    col("PROCESS", 14, false, 2, Text),
    col("MAP", 14, false, 0, Text),
    col("TYPE", 18, true, 0, Text),
    col("GOROUTINES", 12, true, 1, Text),
    col("SITES", 24, true, 2, Text),
    col("COUNT", 8, false, 0, Num),
];

pub fn columns(tab: Tab) -> &'static [Column] {
    match tab {
        Tab::Goroutines => GOROUTINES,
        Tab::Threads => THREADS,
        Tab::Maps => MAPS,
        Tab::Sites => SITES,
        Tab::Bpf => BPF,
        Tab::Findings => FINDINGS,
    }
}

/// The order a view starts in: busiest (writes/s) first; findings as the
/// model gives them (most recent overlaps first).
pub fn default_sort(tab: Tab) -> Sort {
    match tab {
        Tab::Findings => Sort { col: None, desc: false },
        _ => Sort { col: columns(tab).iter().position(|c| c.kind == Rate), desc: true },
    }
}

/// How a row draws attention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Alert {
    #[default]
    None,
    /// A shared map: legal under a lock, worth knowing.
    Warn,
    /// Overlapping writes: a data race.
    Bad,
}

/// One table row, ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct RowData {
    pub id: RowId,
    pub cells: Vec<String>,
    /// Per column: the numeric sort key (None: sort by the text).
    pub keys: Vec<Option<f64>>,
    /// Lower-case text the filter matches: the cells plus what the row
    /// stands for (executable, map types, functions).
    pub search: String,
    pub rate: f64,
    pub alert: Alert,
}

/// `12`, `99999`, `123.4k`, `12.3M`, `4.5G`: at most 6 characters.
pub fn fmt_count(n: u64) -> String {
    si(n as f64, false)
}

/// A rate: like [`fmt_count`], with one decimal below 10.
pub fn fmt_rate(r: f64) -> String {
    si(r, true)
}

fn si(v: f64, fractional: bool) -> String {
    if v <= 0.0 {
        "0".into()
    } else if fractional && v < 10.0 && v.fract() != 0.0 {
        format!("{v:.1}")
    } else if v < 100_000.0 {
        format!("{v:.0}")
    } else if v < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else if v < 1e9 {
        format!("{:.1}M", v / 1e6)
    } else if v < 1e12 {
        format!("{:.1}G", v / 1e9)
    } else {
        format!("{:.1}T", v / 1e12)
    }
}

pub fn fmt_addr(a: u64) -> String {
    format!("0x{a:x}")
}

/// `4242 writers`: pid and command name of an audited process.
pub fn process_name(model: &Model, pid: u32) -> String {
    match model.processes.get(&pid) {
        Some(p) if !p.comm.is_empty() => format!("{pid} {}", p.comm),
        _ => pid.to_string(),
    }
}

pub fn site_name(model: &Model, pid: u32, pc: u64) -> String {
    model.names.sites.get(&(pid, pc)).map(Location::short).unwrap_or_else(|| fmt_addr(pc))
}

pub fn map_type(model: &Model, pid: u32, addr: u64) -> String {
    model.names.map_types.get(&(pid, addr)).cloned().unwrap_or_else(|| "?".into())
}

/// A value from an HDR histogram (1% resolution): no more digits than that.
pub fn fmt_approx(v: u64) -> String {
    let f = v as f64;
    if v < 1000 {
        v.to_string()
    } else if f < 1e6 {
        format!("{:.1}k", f / 1e3)
    } else if f < 1e9 {
        format!("{:.1}M", f / 1e6)
    } else {
        format!("{:.1}G", f / 1e9)
    }
}

/// `a, b, c` with a count in front when there is more than one.
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        many => format!("{}: {}", many.len(), many.join(", ")),
    }
}

fn row(id: RowId, cells: Vec<(String, Option<f64>)>, extra: &[&str], rate: f64, alert: Alert) -> RowData {
    let mut search = String::new();
    for s in cells.iter().map(|(s, _)| s.as_str()).chain(extra.iter().copied()) {
        search.push_str(&s.to_lowercase());
        search.push('\n');
    }
    let (cells, keys) = cells.into_iter().unzip();
    RowData { id, cells, keys, search, rate, alert }
}

fn num(n: u64) -> (String, Option<f64>) {
    (fmt_count(n), Some(n as f64))
}

fn rate(r: f64) -> (String, Option<f64>) {
    (fmt_rate(r), Some(r))
}

fn text(s: String) -> (String, Option<f64>) {
    (s, None)
}

fn exe(model: &Model, pid: u32) -> &str {
    model.processes.get(&pid).map(|p| p.exe.as_str()).unwrap_or("")
}

/// Every row of `tab`, unfiltered, in the model's order.
fn all_rows(tab: Tab, model: &Model) -> Vec<RowData> {
    let a = &model.agg;
    match tab {
        Tab::Goroutines => a
            .goroutines
            .iter()
            .map(|g| {
                let types: Vec<String> = g.maps.iter().map(|&m| map_type(model, g.pid, m)).collect();
                let sites: Vec<String> = g.sites.keys().map(|&pc| site_name(model, g.pid, pc)).collect();
                let thread = match g.tids.len() {
                    0 => String::new(),
                    1 => g.tids.iter().map(u32::to_string).collect(),
                    n => format!("{} +{}", g.tids.iter().next().copied().unwrap_or(0), n - 1),
                };
                let mut extra: Vec<&str> = sites.iter().map(String::as_str).collect();
                extra.push(exe(model, g.pid));
                row(
                    RowId::Goroutine { pid: g.pid, goid: g.goid },
                    vec![
                        num(g.goid),
                        (process_name(model, g.pid), Some(g.pid as f64)),
                        text(g.created_by.as_ref().map(Location::short).unwrap_or_else(|| "?".into())),
                        rate(g.rate),
                        num(g.ops.total()),
                        text(list(&types)),
                        (thread, g.tids.iter().next().map(|&t| t as f64)),
                    ],
                    &extra,
                    g.rate,
                    Alert::None,
                )
            })
            .collect(),
        Tab::Threads => a
            .threads
            .iter()
            .map(|t| {
                let gs: Vec<String> = t.goroutines.iter().map(u64::to_string).collect();
                row(
                    RowId::Thread { pid: t.pid, tid: t.tid },
                    vec![
                        (t.tid.to_string(), Some(t.tid as f64)),
                        (process_name(model, t.pid), Some(t.pid as f64)),
                        text(t.comm.clone()),
                        rate(t.rate),
                        num(t.ops.total()),
                        (list(&gs), Some(gs.len() as f64)),
                    ],
                    &[exe(model, t.pid)],
                    t.rate,
                    Alert::None,
                )
            })
            .collect(),
        Tab::Maps => a
            .maps
            .iter()
            .map(|m| {
                let sites: Vec<String> = m.sites.keys().map(|&pc| site_name(model, m.pid, pc)).collect();
                let mut extra: Vec<&str> = sites.iter().map(String::as_str).collect();
                extra.push(exe(model, m.pid));
                let alert = if m.overlaps > 0 {
                    Alert::Bad
                } else if m.writers.len() > 1 {
                    Alert::Warn
                } else {
                    Alert::None
                };
                row(
                    RowId::Map { pid: m.pid, addr: m.addr },
                    vec![
                        (fmt_addr(m.addr), Some(m.addr as f64)),
                        text(m.type_name.clone().unwrap_or_else(|| "?".into())),
                        rate(m.rate),
                        num(m.ops.total()),
                        num(m.writers.len() as u64),
                        num(m.overlaps),
                        (process_name(model, m.pid), Some(m.pid as f64)),
                    ],
                    &extra,
                    m.rate,
                    alert,
                )
            })
            .collect(),
        Tab::Sites => a
            .sites
            .iter()
            .map(|s| {
                let types: Vec<String> = s.maps.iter().map(|&m| map_type(model, s.pid, m)).collect();
                row(
                    RowId::Site { pid: s.pid, pc: s.pc },
                    vec![
                        text(s.location.as_ref().map(Location::short).unwrap_or_else(|| fmt_addr(s.pc))),
                        rate(s.rate),
                        num(s.ops.total()),
                        num(s.maps.len() as u64),
                        text(types.join(", ")),
                        (process_name(model, s.pid), Some(s.pid as f64)),
                    ],
                    &[exe(model, s.pid), s.location.as_ref().map(|l| l.file.as_str()).unwrap_or("")],
                    s.rate,
                    Alert::None,
                )
            })
            .collect(),
        Tab::Bpf => model
            .bpf
            .iter()
            .map(|b| {
                row(
                    RowId::Bpf { pid: b.pid, tid: b.tid, fd: b.fd },
                    vec![
                        (b.pid.to_string(), Some(b.pid as f64)),
                        text(b.comm.clone()),
                        (b.map_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()), Some(b.map_id.unwrap_or(0) as f64)),
                        text(b.map_name.clone().unwrap_or_else(|| format!("fd {}", b.fd))),
                        text(b.map_type.clone().unwrap_or_default()),
                        num(b.updates),
                        num(b.deletes),
                        rate(b.rate),
                    ],
                    &[],
                    b.rate,
                    Alert::None,
                )
            })
            .collect(),
        Tab::Findings => a
            .findings
            .iter()
            .map(|f| {
                let (kind, alert) = match f.kind {
                    FindingKind::OverlappingWrites => ("OVERLAP", Alert::Bad),
                    FindingKind::SharedMap => ("SHARED", Alert::Warn),
                };
                let gs: Vec<String> = f.goroutines.iter().map(u64::to_string).collect();
                row(
                    RowId::Finding { kind: f.kind, pid: f.pid, map: f.map },
                    vec![
                        text(kind.into()),
                        (process_name(model, f.pid), Some(f.pid as f64)),
                        (fmt_addr(f.map), Some(f.map as f64)),
                        text(f.type_name.clone().unwrap_or_else(|| "?".into())),
                        (gs.join(", "), Some(gs.len() as f64)),
                        text(f.sites.join("; ")),
                        num(f.count),
                    ],
                    &[f.kind.as_str(), exe(model, f.pid)],
                    0.0,
                    alert,
                )
            })
            .collect(),
    }
}

/// Whether `row` matches the filter: every whitespace-separated term occurs
/// (case-insensitively) in its text.
pub fn matches(row: &RowData, filter: &str) -> bool {
    filter.split_whitespace().all(|t| row.search.contains(&t.to_lowercase()))
}

/// Orders rows by `sort`; ties keep the model's order (busiest first), so
/// equal rows do not shuffle between ticks.
pub fn sort_rows(rows: &mut [RowData], sort: Sort) {
    let Some(c) = sort.col else {
        if sort.desc {
            rows.reverse();
        }
        return;
    };
    rows.sort_by(|a, b| {
        let o = match (a.keys.get(c).copied().flatten(), b.keys.get(c).copied().flatten()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => {
                let (x, y) = (a.cells.get(c).map(String::as_str), b.cells.get(c).map(String::as_str));
                x.cmp(&y)
            }
        };
        if sort.desc { o.reverse() } else { o }
    });
}

/// The rows `tab` shows: the model's rows, filtered and sorted as the user
/// asked.
pub fn rows_for(tab: Tab, model: &Model, app: &App) -> Vec<RowData> {
    let mut rows = all_rows(tab, model);
    if !app.filter.trim().is_empty() {
        rows.retain(|r| matches(r, &app.filter));
    }
    sort_rows(&mut rows, app.sort[tab.index()]);
    rows
}

/// How many rows `tab` has before filtering (for the tab titles).
pub fn count(tab: Tab, model: &Model) -> usize {
    let a = &model.agg;
    match tab {
        Tab::Goroutines => a.goroutines.len(),
        Tab::Threads => a.threads.len(),
        Tab::Maps => a.maps.len(),
        Tab::Sites => a.sites.len(),
        Tab::Bpf => model.bpf.len(),
        Tab::Findings => a.findings.len(),
    }
}

/// Which columns fit in `width`, and how wide each is: the most important
/// ones first, leftover width shared by the growing columns. Returned in
/// display order as (column index, width).
pub fn fit_columns(cols: &[Column], width: u16) -> Vec<(usize, u16)> {
    let need = |prio: u8| -> u32 {
        let shown: Vec<&Column> = cols.iter().filter(|c| c.prio <= prio).collect();
        shown.iter().map(|c| u32::from(c.width)).sum::<u32>() + shown.len().saturating_sub(1) as u32
    };
    let max_prio = cols.iter().map(|c| c.prio).max().unwrap_or(0);
    let prio = (0..=max_prio).rev().find(|&p| need(p) <= u32::from(width)).unwrap_or(0);
    let mut out: Vec<(usize, u16)> =
        cols.iter().enumerate().filter(|(_, c)| c.prio <= prio).map(|(i, c)| (i, c.width)).collect();
    let spare = u32::from(width).saturating_sub(need(prio));
    let growers = out.iter().filter(|(i, _)| cols[*i].grow).count() as u32;
    if growers > 0 && spare > 0 {
        let (each, mut rest) = (spare / growers, spare % growers);
        for (i, w) in &mut out {
            if cols[*i].grow {
                let extra = each + u32::from(rest > 0);
                rest = rest.saturating_sub(1);
                *w = w.saturating_add(extra as u16);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testutil::{self, PID};

    fn goids(rows: &[RowData]) -> Vec<u64> {
        rows.iter()
            .map(|r| match r.id {
                RowId::Goroutine { goid, .. } => goid,
                _ => panic!("not a goroutine row"),
            })
            .collect()
    }

    #[test]
    fn goroutines_by_rate_then_reversed() {
        let m = testutil::model();
        let mut app = App::default();
        let rows = rows_for(Tab::Goroutines, &m, &app);
        // Rates: 7 → 3500/s, 8 → 1000/s, 9 → 200/s, 10 → 100/s, 11 idle.
        assert_eq!(goids(&rows), vec![7, 8, 9, 10, 11]);
        assert_eq!(rows[0].cells[3], "3500");
        assert_eq!(rows[0].cells[4], "4600");
        assert_eq!(rows[0].cells[2], "main.main main.go:170");
        assert_eq!(rows[0].cells[5], "map[string][]string");
        assert_eq!(rows[0].cells[1], "4242 writers");
        app.sort[0].desc = false;
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![11, 10, 9, 8, 7]);
    }

    #[test]
    fn sort_by_text_and_numeric_columns() {
        let m = testutil::model();
        let mut app = App::default();
        app.sort[0] = Sort { col: Some(0), desc: true };
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![11, 10, 9, 8, 7]);
        // Maps written, by text: map[int32]int < map[int64]int < map[string][]string < map[string]int.
        app.sort[0] = Sort { col: Some(5), desc: false };
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![11, 8, 7, 9, 10]);
    }

    #[test]
    fn numbers_sort_as_numbers_not_text() {
        let mut rows: Vec<RowData> = [9u64, 10, 100_000]
            .iter()
            .map(|&n| row(RowId::Goroutine { pid: 1, goid: n }, vec![num(n)], &[], 0.0, Alert::None))
            .collect();
        sort_rows(&mut rows, Sort { col: Some(0), desc: false });
        assert_eq!(goids(&rows), vec![9, 10, 100_000]);
        assert_eq!(rows[2].cells[0], "100.0k");
    }

    #[test]
    fn filter_matches_types_functions_and_processes() {
        let m = testutil::model();
        let mut app = App { filter: "int64".into(), ..App::default() };
        let maps = rows_for(Tab::Maps, &m, &app);
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].cells[1], "map[int64]int");
        // Goroutines match through the types of the maps they wrote.
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![8]);
        // Through functions (not shown in the goroutine table), case-insensitively.
        app.filter = "SHAREDWRITER".into();
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![9, 10]);
        // Terms combine.
        app.filter = "sharedwriter 174".into();
        assert_eq!(goids(&rows_for(Tab::Goroutines, &m, &app)), vec![10]);
        app.filter = "writers".into();
        assert_eq!(rows_for(Tab::Goroutines, &m, &app).len(), 5);
        app.filter = "nothing-like-this".into();
        assert!(rows_for(Tab::Goroutines, &m, &app).is_empty());
    }

    #[test]
    fn other_views_rows() {
        let m = testutil::model();
        let app = App::default();
        let maps = rows_for(Tab::Maps, &m, &app);
        assert_eq!(maps[0].cells[..4], ["0xc000010000", "map[string][]string", "3500", "4600"]);
        let shared = maps.iter().find(|r| r.cells[1] == "map[string]int").unwrap();
        assert_eq!((shared.cells[4].as_str(), shared.cells[5].as_str(), shared.alert), ("2", "1", Alert::Bad));
        let threads = rows_for(Tab::Threads, &m, &app);
        assert_eq!(threads[0].cells[..5], ["101", "4242 writers", "writers", "3500", "4600"]);
        let sites = rows_for(Tab::Sites, &m, &app);
        assert_eq!(sites[0].cells[..3], ["main.strWriter main.go:81", "3000", "4000"]);
        let bpf = rows_for(Tab::Bpf, &m, &app);
        assert_eq!(bpf[0].cells, ["77", "cilium-agent", "31", "cilium_ct4", "lru_hash", "60", "2", "50"]);
        let f = rows_for(Tab::Findings, &m, &app);
        assert_eq!(f[0].id, RowId::Finding { kind: FindingKind::OverlappingWrites, pid: PID, map: 0xc000030000 });
        assert_eq!(f[0].cells[4], "10, 9");
        assert_eq!(f[1].cells[0], "SHARED");
    }

    #[test]
    fn narrow_terminals_drop_minor_columns() {
        let all: u16 = GOROUTINES.iter().map(|c| c.width).sum::<u16>() + GOROUTINES.len() as u16 - 1;
        let wide = fit_columns(GOROUTINES, 200);
        assert_eq!(wide.len(), GOROUTINES.len());
        assert_eq!(wide.iter().map(|(_, w)| w).sum::<u16>() + 6, 200);
        assert!(all > 80);
        let narrow = fit_columns(GOROUTINES, 80);
        let titles: Vec<&str> = narrow.iter().map(|(i, _)| GOROUTINES[*i].title).collect();
        assert_eq!(titles, ["GOID", "CREATED BY", "WRITES/S", "TOTAL", "MAPS WRITTEN", "THREAD"]);
        assert!(narrow.iter().map(|(_, w)| w).sum::<u16>() + 5 <= 80);
        for tab in Tab::ALL {
            let cols = columns(tab);
            let fit = fit_columns(cols, 79);
            assert!(fit.iter().map(|(_, w)| u32::from(*w)).sum::<u32>() + fit.len() as u32 - 1 <= 79, "{tab:?}");
            // Headers fit their columns with a sort arrow.
            assert!(cols.iter().all(|c| c.title.chars().count() < usize::from(c.width) || c.grow), "{tab:?}");
        }
    }

    #[test]
    fn counts_format() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(99_999), "99999");
        assert_eq!(fmt_count(123_456), "123.5k");
        assert_eq!(fmt_count(12_345_678), "12.3M");
        assert_eq!(fmt_rate(2.5), "2.5");
        assert_eq!(fmt_rate(3500.0), "3500");
        assert_eq!(fmt_approx(3503), "3.5k");
        assert_eq!(fmt_approx(255), "255");
    }
}
