//! The tables: columns per view, and rows as pure functions of the model and
//! the user's sort and filter.

use std::borrow::Cow;
use std::cmp::Ordering;

use rustc_hash::FxHashMap;

use super::{App, RowId, Sort, Tab};
use crate::model::classes::ClassKind;
use crate::model::{FindingKind, Location, MapId, Model};

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
    // Last sampled length (`--len-maps`); "-" when not sampled.
    col("LEN", 8, false, 1, Num),
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

const CLASSES: &[Column] = &[
    col("KIND", 10, false, 0, Text),
    col("CLASS", 30, true, 0, Text),
    col("INSTANCES", 10, false, 0, Num),
    col("WRITES/S", 10, false, 0, Rate),
    col("TOTAL", 8, false, 0, Num),
    col("PER INST.", 10, false, 1, Num),
    col("SHARED", 7, false, 1, Num),
    col("PROCESS", 14, false, 2, Text),
];

pub fn columns(tab: Tab) -> &'static [Column] {
    match tab {
        Tab::Goroutines => GOROUTINES,
        Tab::Threads => THREADS,
        Tab::Maps => MAPS,
        Tab::Sites => SITES,
        Tab::Bpf => BPF,
        Tab::Findings => FINDINGS,
        Tab::Classes => CLASSES,
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
        if v.fract() == 0.5 {
            // A tie: rounded as the formatter rounds (to even).
            format!("{v:.0}")
        } else {
            // What `{v:.0}` prints, without its slow exact float path.
            (v.round() as u64).to_string()
        }
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

/// `4242 writers`: pid and command name of an audited process, then its
/// pod (`namespace/pod`) or container (short id) when it runs in one.
pub fn process_name(model: &Model, pid: u32) -> String {
    let p = model.processes.get(&pid);
    let name = match p {
        Some(p) if !p.comm.is_empty() => format!("{pid} {}", p.comm),
        _ => pid.to_string(),
    };
    match p.and_then(|p| p.container.as_ref()).map(|c| c.short()) {
        Some(c) if !c.is_empty() => format!("{name} [{c}]"),
        _ => name,
    }
}

pub fn site_name(model: &Model, pid: u32, pc: u64) -> String {
    model.names.sites.get(&(pid, pc)).map(Location::short).unwrap_or_else(|| fmt_addr(pc))
}

pub fn map_type(model: &Model, pid: u32, map: MapId) -> String {
    model.names.map_types.get(&(pid, map)).cloned().unwrap_or_else(|| "?".into())
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

/// The identity of item `i` of `tab`: the model's `i`th row of it, in the
/// model's order.
fn item_id(tab: Tab, model: &Model, i: usize) -> RowId {
    let a = &model.agg;
    match tab {
        Tab::Goroutines => {
            let g = &a.goroutines[i];
            RowId::Goroutine { pid: g.pid, goid: g.goid }
        }
        Tab::Threads => {
            let t = &a.threads[i];
            RowId::Thread { pid: t.pid, tid: t.tid }
        }
        Tab::Maps => {
            let m = &a.maps[i];
            RowId::Map { pid: m.pid, map: m.map }
        }
        Tab::Sites => {
            let s = &a.sites[i];
            RowId::Site { pid: s.pid, pc: s.pc }
        }
        Tab::Bpf => {
            let b = &model.bpf[i];
            RowId::Bpf { pid: b.pid, tid: b.tid, fd: b.fd, map: b.map_id }
        }
        Tab::Findings => {
            let f = &a.findings[i];
            RowId::Finding { kind: f.kind, pid: f.pid, map: f.map }
        }
        Tab::Classes => {
            let c = &a.classes[i];
            use std::hash::{BuildHasher as _, BuildHasherDefault};
            let name = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(&c.name);
            RowId::Class { pid: c.pid, kind: c.kind, name }
        }
    }
}

/// Cell `col` of item `i` of `tab`: its text and numeric sort key.
fn cell(tab: Tab, model: &Model, i: usize, col: usize) -> (String, Option<f64>) {
    let a = &model.agg;
    match tab {
        Tab::Goroutines => {
            let g = &a.goroutines[i];
            match col {
                0 => num(g.goid),
                1 => (process_name(model, g.pid), Some(g.pid as f64)),
                2 => text(g.created_by.as_ref().map(Location::short).unwrap_or_else(|| "?".into())),
                3 => rate(g.rate),
                4 => num(g.ops.total()),
                5 => text(list(&g.maps.iter().map(|&m| map_type(model, g.pid, m)).collect::<Vec<_>>())),
                6 => {
                    let thread = match g.tids.len() {
                        0 => String::new(),
                        1 => g.tids.iter().map(u32::to_string).collect(),
                        n => format!("{} +{}", g.tids.iter().next().copied().unwrap_or(0), n - 1),
                    };
                    (thread, g.tids.iter().next().map(|&t| t as f64))
                }
                _ => (String::new(), None),
            }
        }
        Tab::Threads => {
            let t = &a.threads[i];
            match col {
                0 => (t.tid.to_string(), Some(t.tid as f64)),
                1 => (process_name(model, t.pid), Some(t.pid as f64)),
                2 => text(t.comm.clone()),
                3 => rate(t.rate),
                4 => num(t.ops.total()),
                5 => {
                    let gs: Vec<String> = t.goroutines.iter().map(u64::to_string).collect();
                    (list(&gs), Some(gs.len() as f64))
                }
                _ => (String::new(), None),
            }
        }
        Tab::Maps => {
            let m = &a.maps[i];
            match col {
                0 => (fmt_addr(m.map.addr), Some(m.map.addr as f64)),
                1 => text(m.type_name.clone().unwrap_or_else(|| "?".into())),
                2 => rate(m.rate),
                3 => num(m.ops.total()),
                4 => num(m.writers.len() as u64),
                5 => num(m.overlaps),
                6 => (process_name(model, m.pid), Some(m.pid as f64)),
                7 => match model.lengths.get(m.pid, m.map) {
                    Some(s) => num(s.last),
                    None => ("-".into(), None),
                },
                _ => (String::new(), None),
            }
        }
        Tab::Sites => {
            let s = &a.sites[i];
            match col {
                0 => text(s.location.as_ref().map(Location::short).unwrap_or_else(|| fmt_addr(s.pc))),
                1 => rate(s.rate),
                2 => num(s.ops.total()),
                3 => num(s.maps.len() as u64),
                4 => text(s.maps.iter().map(|&m| map_type(model, s.pid, m)).collect::<Vec<_>>().join(", ")),
                5 => (process_name(model, s.pid), Some(s.pid as f64)),
                _ => (String::new(), None),
            }
        }
        Tab::Bpf => {
            let b = &model.bpf[i];
            match col {
                0 => (b.pid.to_string(), Some(b.pid as f64)),
                1 => text(b.comm.clone()),
                2 => (b.map_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()), Some(b.map_id.unwrap_or(0) as f64)),
                3 => text(b.map_name.clone().unwrap_or_else(|| format!("fd {}", b.fd))),
                4 => text(b.map_type.clone().unwrap_or_default()),
                5 => num(b.updates),
                6 => num(b.deletes),
                7 => rate(b.rate),
                _ => (String::new(), None),
            }
        }
        Tab::Findings => {
            let f = &a.findings[i];
            match col {
                0 => text(
                    match f.kind {
                        FindingKind::OverlappingWrites => "OVERLAP",
                        FindingKind::SharedMap => "SHARED",
                        FindingKind::ReadDuringWrite => "READ+WRITE",
                        FindingKind::IterateDuringWrite => "RANGE+WRITE",
                        FindingKind::GrowingMap => "GROWING",
                    }
                    .into(),
                ),
                1 => (process_name(model, f.pid), Some(f.pid as f64)),
                2 => (fmt_addr(f.map.addr), Some(f.map.addr as f64)),
                3 => text(f.type_name.clone().unwrap_or_else(|| "?".into())),
                4 => {
                    let gs: Vec<String> = f.goroutines.iter().map(u64::to_string).collect();
                    (gs.join(", "), Some(gs.len() as f64))
                }
                5 => text(f.sites.join("; ")),
                6 => num(f.count),
                _ => (String::new(), None),
            }
        }
        Tab::Classes => {
            let c = &a.classes[i];
            match col {
                0 => text(
                    match c.kind {
                        ClassKind::Map => "maps",
                        ClassKind::Goroutine => "goroutines",
                    }
                    .into(),
                ),
                1 => text(c.name.clone()),
                2 => num(c.instances),
                3 => rate(c.rate),
                4 => num(c.ops.total()),
                5 => num(c.per_instance()),
                6 => match c.kind {
                    ClassKind::Map => num(c.shared_instances),
                    ClassKind::Goroutine => (String::new(), None),
                },
                7 => (process_name(model, c.pid), Some(c.pid as f64)),
                _ => (String::new(), None),
            }
        }
    }
}

/// `cell(tab, model, i, col).1` without making the text.
fn sort_key(tab: Tab, model: &Model, i: usize, col: usize) -> Option<f64> {
    let a = &model.agg;
    match (tab, col) {
        (Tab::Goroutines, _) => {
            let g = &a.goroutines[i];
            match col {
                0 => Some(g.goid as f64),
                1 => Some(g.pid as f64),
                3 => Some(g.rate),
                4 => Some(g.ops.total() as f64),
                6 => g.tids.iter().next().map(|&t| t as f64),
                _ => None,
            }
        }
        (Tab::Threads, _) => {
            let t = &a.threads[i];
            match col {
                0 => Some(t.tid as f64),
                1 => Some(t.pid as f64),
                3 => Some(t.rate),
                4 => Some(t.ops.total() as f64),
                5 => Some(t.goroutines.len() as f64),
                _ => None,
            }
        }
        (Tab::Maps, _) => {
            let m = &a.maps[i];
            match col {
                0 => Some(m.map.addr as f64),
                2 => Some(m.rate),
                3 => Some(m.ops.total() as f64),
                4 => Some(m.writers.len() as f64),
                5 => Some(m.overlaps as f64),
                6 => Some(m.pid as f64),
                7 => model.lengths.get(m.pid, m.map).map(|s| s.last as f64),
                _ => None,
            }
        }
        (Tab::Sites, _) => {
            let s = &a.sites[i];
            match col {
                1 => Some(s.rate),
                2 => Some(s.ops.total() as f64),
                3 => Some(s.maps.len() as f64),
                5 => Some(s.pid as f64),
                _ => None,
            }
        }
        // Few rows: not worth a second description.
        (Tab::Bpf | Tab::Findings | Tab::Classes, _) => cell(tab, model, i, col).1,
    }
}

/// What else the filter matches of item `i` of `tab` besides its cells
/// (the call sites of a goroutine or map are `site(pid, pc)`).
fn extras<'m>(tab: Tab, model: &'m Model, i: usize, mut site: impl FnMut(u32, u64) -> Cow<'m, str>) -> Vec<Cow<'m, str>> {
    let a = &model.agg;
    match tab {
        Tab::Goroutines => {
            let g = &a.goroutines[i];
            let mut out: Vec<Cow<str>> = g.sites.keys().map(|&pc| site(g.pid, pc)).collect();
            out.push(exe(model, g.pid).into());
            out
        }
        Tab::Threads => vec![exe(model, a.threads[i].pid).into()],
        Tab::Maps => {
            let m = &a.maps[i];
            let mut out: Vec<Cow<str>> = m.sites.keys().map(|&pc| site(m.pid, pc)).collect();
            out.push(exe(model, m.pid).into());
            out
        }
        Tab::Sites => {
            let s = &a.sites[i];
            vec![exe(model, s.pid).into(), s.location.as_ref().map(|l| l.file.as_str()).unwrap_or("").into()]
        }
        Tab::Bpf => Vec::new(),
        Tab::Findings => {
            let f = &a.findings[i];
            vec![f.kind.as_str().into(), exe(model, f.pid).into()]
        }
        Tab::Classes => vec![exe(model, a.classes[i].pid).into()],
    }
}

/// Item `i` of `tab`, ready to draw.
fn build(tab: Tab, model: &Model, i: usize) -> RowData {
    let cells = (0..columns(tab).len()).map(|c| cell(tab, model, i, c)).collect();
    let extra = extras(tab, model, i, |pid, pc| site_name(model, pid, pc).into());
    let extra: Vec<&str> = extra.iter().map(|e| e.as_ref()).collect();
    let id = item_id(tab, model, i);
    let a = &model.agg;
    let (rate, alert) = match tab {
        Tab::Goroutines => (a.goroutines[i].rate, Alert::None),
        Tab::Threads => (a.threads[i].rate, Alert::None),
        Tab::Maps => {
            let m = &a.maps[i];
            let alert = if m.overlaps > 0 {
                Alert::Bad
            } else if m.writers.len() > 1 {
                Alert::Warn
            } else {
                Alert::None
            };
            (m.rate, alert)
        }
        Tab::Sites => (a.sites[i].rate, Alert::None),
        Tab::Bpf => (model.bpf[i].rate, Alert::None),
        Tab::Findings => match a.findings[i].kind {
            FindingKind::OverlappingWrites => (0.0, Alert::Bad),
            FindingKind::SharedMap | FindingKind::GrowingMap => (0.0, Alert::Warn),
            FindingKind::ReadDuringWrite | FindingKind::IterateDuringWrite => (0.0, Alert::Bad),
        },
        Tab::Classes => {
            let c = &a.classes[i];
            (c.rate, if c.shared_instances > 0 { Alert::Warn } else { Alert::None })
        }
    };
    row(id, cells, &extra, rate, alert)
}

/// [`matches`] for item `i` of `tab` without formatting a whole row: each
/// piece of its text is made only while some term is still unmatched.
/// `terms`: the filter's, lower-case; `sites`: call site names already made.
fn item_matches(
    tab: Tab,
    model: &Model,
    i: usize,
    terms: &[String],
    sites: &mut FxHashMap<(u32, u64), String>,
) -> bool {
    // A term never spans two pieces of `RowData::search`: it has no
    // whitespace, and they are joined by newlines.
    let mut unmatched: Vec<&str> = terms.iter().map(String::as_str).collect();
    let mut take = |piece: &str| {
        let low = piece.to_lowercase();
        unmatched.retain(|t| !low.contains(t));
        unmatched.is_empty()
    };
    for c in 0..columns(tab).len() {
        if take(&cell(tab, model, i, c).0) {
            return true;
        }
    }
    let extra = extras(tab, model, i, |pid, pc| {
        sites.entry((pid, pc)).or_insert_with(|| site_name(model, pid, pc)).clone().into()
    });
    extra.iter().any(|e| take(e))
}

/// Whether `row` matches the filter: every whitespace-separated term occurs
/// (case-insensitively) in its text.
pub fn matches(row: &RowData, filter: &str) -> bool {
    filter.split_whitespace().all(|t| row.search.contains(&t.to_lowercase()))
}

/// The comparison [`sort_rows`] makes on one column: numbers when both rows
/// have one, else the cells' text.
fn compare(a: (Option<f64>, Option<&str>), b: (Option<f64>, Option<&str>), desc: bool) -> Ordering {
    let o = match (a.0, b.0) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.1.cmp(&b.1),
    };
    if desc { o.reverse() } else { o }
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
    fn key(r: &RowData, c: usize) -> (Option<f64>, Option<&str>) {
        (r.keys.get(c).copied().flatten(), r.cells.get(c).map(String::as_str))
    }
    rows.sort_by(|a, b| compare(key(a, c), key(b, c), sort.desc));
}

/// A view's rows before they are formatted: which of the model's rows, in
/// the order shown. Cheap to make for any number of rows; only the rows
/// drawn are formatted (`row`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowList {
    pub tab: Tab,
    /// Indices into the model's rows of `tab`, in display order.
    pub items: Vec<usize>,
}

impl RowList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The identity of the `i`th row shown.
    pub fn id(&self, model: &Model, i: usize) -> RowId {
        item_id(self.tab, model, self.items[i])
    }

    /// The `i`th row shown, formatted.
    pub fn row(&self, model: &Model, i: usize) -> RowData {
        build(self.tab, model, self.items[i])
    }

    /// Where the row `id` is shown.
    pub fn position(&self, model: &Model, id: RowId) -> Option<usize> {
        self.items.iter().position(|&i| item_id(self.tab, model, i) == id)
    }
}

/// The rows `tab` shows, unformatted: the model's rows, filtered and sorted
/// as the user asked. With no filter, formats nothing; a sort by a text
/// column formats that column only.
pub fn row_list(tab: Tab, model: &Model, app: &App) -> RowList {
    let mut items: Vec<usize> = (0..count(tab, model)).collect();
    if !app.filter.trim().is_empty() {
        // The filter matches a row's whole text.
        let terms: Vec<String> = app.filter.split_whitespace().map(str::to_lowercase).collect();
        let mut sites = FxHashMap::default();
        items.retain(|&i| item_matches(tab, model, i, &terms, &mut sites));
    }
    let sort = app.sort[tab.index()];
    match sort.col {
        None if sort.desc => items.reverse(),
        None => {}
        Some(c) => {
            // What sort_rows compares, one column's worth, per row.
            let keys: Vec<Option<f64>> = items.iter().map(|&i| sort_key(tab, model, i, c)).collect();
            let texts: Vec<String> = if keys.iter().all(Option::is_some) {
                Vec::new()
            } else {
                items.iter().map(|&i| cell(tab, model, i, c).0).collect()
            };
            let at = |j: usize| (keys[j], texts.get(j).map(String::as_str));
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by(|&x, &y| compare(at(x), at(y), sort.desc));
            items = order.into_iter().map(|j| items[j]).collect();
        }
    }
    RowList { tab, items }
}

/// The rows `tab` shows, formatted (every one: views draw from [`row_list`]).
pub fn rows_for(tab: Tab, model: &Model, app: &App) -> Vec<RowData> {
    let l = row_list(tab, model, app);
    (0..l.len()).map(|i| l.row(model, i)).collect()
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
        Tab::Classes => a.classes.len(),
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
        assert_eq!(f[0].id, RowId::Finding { kind: FindingKind::OverlappingWrites, pid: PID, map: crate::model::MapId { addr: 0xc000030000, inst: 0 } });
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
    fn unformatted_lists_agree_with_formatted_rows() {
        let m = testutil::model();
        let mut app = App::default();
        for tab in Tab::ALL {
            for i in 0..count(tab, &m) {
                let row = build(tab, &m, i);
                for c in 0..columns(tab).len() {
                    assert_eq!(sort_key(tab, &m, i, c), row.keys[c], "{tab:?} row {i} column {c}");
                }
                for filter in ["int64", "SHAREDWRITER 174", "writers", "4242", "0x4a0300", "no-such"] {
                    let terms: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
                    let mine = item_matches(tab, &m, i, &terms, &mut FxHashMap::default());
                    assert_eq!(mine, matches(&row, filter), "{tab:?} row {i} {filter}");
                }
            }
            // Every sort, formatted then sorted (the reference) or not.
            for col in std::iter::once(None).chain((0..columns(tab).len()).map(Some)) {
                for desc in [false, true] {
                    app.sort[tab.index()] = Sort { col, desc };
                    let mut want = all_rows_formatted(tab, &m);
                    sort_rows(&mut want, app.sort[tab.index()]);
                    assert_eq!(rows_for(tab, &m, &app), want, "{tab:?} {col:?} {desc}");
                }
            }
        }
    }

    fn all_rows_formatted(tab: Tab, m: &Model) -> Vec<RowData> {
        (0..count(tab, m)).map(|i| build(tab, m, i)).collect()
    }

    #[test]
    fn whole_counts_format_like_the_formatter() {
        for v in [0.4, 1.0, 9.0, 10.0, 10.49, 10.5, 11.5, 12.5, 99.99, 1234.5001, 99_999.4, 99_999.5, 99_999.7] {
            assert_eq!(si(v, false), format!("{v:.0}"), "{v}");
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
