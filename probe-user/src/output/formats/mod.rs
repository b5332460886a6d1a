//! Reports for CI systems and people: SARIF (code scanning), JUnit (test
//! dashboards), Markdown (job summaries) and one self-contained HTML page.
//! Every format is rendered from a `mapaudit/v1` report and the gate's
//! conditions alone, so `check` (no privileges) and `record` write the same
//! bytes for the same report. Pure: bytes out, the caller writes them.

mod html;
mod junit;
mod markdown;
mod sarif;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::Format;
use crate::config::{Gate, Share};
use crate::host::identity::Identity;
use crate::model::FindingKind;
use crate::output::gate::{self, Condition};
use crate::output::report::{FindingReport, Output, ProcessReport, Report};

/// The `--format`/`--output` pairs of one command, each destination checked
/// before anything is recorded (as `--json` is).
pub struct Outputs(Vec<(Format, Output)>);

impl Outputs {
    pub fn prepare(args: &Share, owner: Option<&Identity>) -> anyhow::Result<Self> {
        let pairs = args.outputs.clone().map_err(anyhow::Error::msg)?;
        let mut out = Vec::new();
        for (format, spec) in pairs {
            out.push((format, Output::prepare(&spec, owner)?));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn write(&self, report: &Report, gate: &Gate, source_root: Option<&Path>) -> anyhow::Result<()> {
        let opts = Options::new(source_root);
        for (format, out) in &self.0 {
            let bytes = render(*format, report, gate, &opts);
            out.write_bytes(&bytes).map_err(|e| e.context(format!("writing the {} report", format.name())))?;
        }
        Ok(())
    }
}

/// Settings every renderer may use.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// See `--source-root`.
    pub source_root: Option<PathBuf>,
    /// The module path in `source_root`'s go.mod (for -trimpath file names).
    pub module: Option<String>,
}

impl Options {
    pub fn new(source_root: Option<&Path>) -> Self {
        let source_root = source_root.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        let module = source_root.as_deref().and_then(go_module);
        Self { source_root, module }
    }
}

/// `module example.com/x` from DIR/go.mod, if there is one.
fn go_module(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("go.mod")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("module")?;
        let m = rest.trim().trim_matches('"');
        (!m.is_empty() && rest.starts_with(char::is_whitespace)).then(|| m.to_string())
    })
}

pub fn render(format: Format, report: &Report, gate: &Gate, opts: &Options) -> Vec<u8> {
    let view = View::new(report, gate);
    match format {
        Format::Sarif => sarif::render(&view, opts),
        Format::Junit => junit::render(&view),
        Format::Markdown => markdown::render(&view).into_bytes(),
        Format::Html => html::render(&view).into_bytes(),
    }
}

/// The outcome of the gate on a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// No --fail-on or threshold was given: nothing to pass or fail.
    NoGate,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Self::Passed => "gate passed",
            Self::Failed => "gate FAILED",
            Self::NoGate => "no gate conditions given",
        }
    }
}

/// A report plus what the renderers derive from it, once.
pub(crate) struct View<'a> {
    pub report: &'a Report,
    pub conditions: Vec<Condition>,
    pub verdict: Verdict,
    sites: BTreeMap<(u32, String), Site>,
}

/// A write site with its full file name, as the map rows carry it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Site {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// A row of a "top" table: a label and its mutation count.
pub(crate) struct Top {
    pub label: String,
    pub pid: u32,
    pub ops: u64,
}

pub(crate) const TOP: usize = 10;

impl<'a> View<'a> {
    pub fn new(report: &'a Report, gate: &Gate) -> Self {
        let conditions = gate::conditions(report, gate);
        let verdict = if conditions.is_empty() {
            Verdict::NoGate
        } else if conditions.iter().any(|c| !c.failures.is_empty()) {
            Verdict::Failed
        } else {
            Verdict::Passed
        };
        // Findings name sites as Go's tracebacks do (`fn base.go:line`); the
        // map rows of the same process carry the full file name.
        let mut sites = BTreeMap::new();
        for p in &report.processes {
            for m in &p.maps {
                for s in &m.sites {
                    let (Some(function), Some(file), Some(line)) = (&s.function, &s.file, s.line) else { continue };
                    let site = Site { function: function.clone(), file: file.clone(), line };
                    sites.entry((p.pid, site.short())).or_insert(site);
                }
            }
        }
        Self { report, conditions, verdict, sites }
    }

    /// A finding's site (`main.worker main.go:27`) with its full file name
    /// when any map row of the process has it; else what the string says.
    pub fn site(&self, pid: u32, short: &str) -> Option<Site> {
        if let Some(s) = self.sites.get(&(pid, short.to_string())) {
            return Some(s.clone());
        }
        let (function, at) = short.rsplit_once(' ')?;
        let (file, line) = at.rsplit_once(':')?;
        Some(Site { function: function.into(), file: file.into(), line: line.parse().ok()? })
    }

    /// The `TOP` busiest rows of every process: `rows` gives a process's
    /// rows as (label, writes, deletes, clears).
    fn top<'s, I>(&'s self, rows: impl Fn(&'s ProcessReport) -> I) -> Vec<Top>
    where
        I: Iterator<Item = (String, u64, u64, u64)> + 's,
    {
        let mut v: Vec<Top> = (self.report.processes.iter())
            .flat_map(|p| {
                rows(p).map(move |(label, w, d, c)| Top { label, pid: p.pid, ops: w.saturating_add(d).saturating_add(c) })
            })
            .collect();
        sort_top(&mut v);
        v
    }

    pub fn top_goroutines(&self) -> Vec<Top> {
        self.top(|p| {
            p.goroutines.iter().map(|g| {
                let label = format!("goroutine {} · {}", g.goid, g.created_by.as_deref().unwrap_or("creator unknown"));
                (label, g.writes, g.deletes, g.clears)
            })
        })
    }

    pub fn top_threads(&self) -> Vec<Top> {
        self.top(|p| p.threads.iter().map(|t| (format!("thread {} ({})", t.tid, t.comm), t.writes, t.deletes, t.clears)))
    }

    pub fn top_maps(&self) -> Vec<Top> {
        self.top(|p| {
            p.maps.iter().map(|m| {
                let label = format!("{} {}", m.type_name.as_deref().unwrap_or("map (type unknown)"), m.addr);
                (label, m.writes, m.deletes, m.clears)
            })
        })
    }

    /// Map kinds (type + creating site) with their instance counts.
    pub fn top_map_classes(&self) -> Vec<Top> {
        self.top(|p| {
            p.map_classes.iter().map(|c| {
                let label = format!(
                    "{} at {} ({} instance{})",
                    c.type_name.as_deref().unwrap_or("map (type unknown)"),
                    c.site.as_deref().unwrap_or("site unknown"),
                    c.instances,
                    if c.instances == 1 { "" } else { "s" }
                );
                (label, c.writes, c.deletes, c.clears)
            })
        })
    }

    /// Write sites over every map of a process.
    pub fn top_sites(&self) -> Vec<Top> {
        let mut by: BTreeMap<(u32, String), u64> = BTreeMap::new();
        for p in &self.report.processes {
            for m in &p.maps {
                for s in &m.sites {
                    let label = match (&s.function, &s.file, s.line) {
                        (Some(f), Some(file), Some(line)) => format!("{f} {file}:{line}"),
                        _ => format!("pc {}", s.pc),
                    };
                    let n = by.entry((p.pid, label)).or_default();
                    *n = n.saturating_add(s.writes);
                }
            }
        }
        let mut v: Vec<Top> = by.into_iter().map(|((pid, label), ops)| Top { label, pid, ops }).collect();
        sort_top(&mut v);
        v
    }
}

fn sort_top(v: &mut Vec<Top>) {
    v.sort_by(|a, b| b.ops.cmp(&a.ops).then_with(|| a.pid.cmp(&b.pid)).then_with(|| a.label.cmp(&b.label)));
    v.truncate(TOP);
}

impl Site {
    pub fn short(&self) -> String {
        let base = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{} {}:{}", self.function, base, self.line)
    }
}

/// What a finding of `kind` means, for every format: (title, level, help).
pub(crate) fn describe_kind(kind: FindingKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        FindingKind::OverlappingWrites => (
            "Concurrent map writes",
            "error",
            "Two goroutines were inside a write to the same Go map at the same time. Go maps are not safe for \
             concurrent use: this is the data race that ends a process with `fatal error: concurrent map writes`. \
             Guard every access to the map with one mutex, or give each goroutine its own map.",
        ),
        FindingKind::ReadDuringWrite => (
            "Map read during a write",
            "error",
            "A goroutine read a Go map while another goroutine was writing it: the race behind \
             `fatal error: concurrent map read and map write`. Guard reads and writes with the same lock \
             (a sync.RWMutex lets readers share it).",
        ),
        FindingKind::IterateDuringWrite => (
            "Map iterated during a write",
            "error",
            "A goroutine ranged over a Go map while another goroutine was writing it: the race behind \
             `fatal error: concurrent map iteration and map write`. Hold the map's lock for the whole loop \
             (or iterate over a copy taken under the lock).",
        ),
        FindingKind::GrowingMap => (
            "Map that keeps growing",
            "warning",
            "This map's length grew steadily over the recording and never came back down: a leak suspect \
             (watchers never removed, a cache without eviction). Check that every insert has a matching delete.",
        ),
        FindingKind::SharedMap => (
            "Map written by several goroutines",
            "note",
            "More than one goroutine wrote this map. That is correct when every access holds the same lock; \
             check that it does. mapaudit reports overlapping writes separately when it saw two at once.",
        ),
    }
}

/// "goroutines 7 and 8" (the kind decides the verbs in callers).
pub(crate) fn goroutines_text(f: &FindingReport) -> String {
    let ids: Vec<String> = f.goroutines.iter().map(|g| g.to_string()).collect();
    match ids.len() {
        0 => "unknown goroutines".into(),
        1 => format!("goroutine {}", ids[0]),
        _ => format!("goroutines {}", ids.join(" and ")),
    }
}

/// One sentence per finding, shared by every format.
pub(crate) fn finding_message(f: &FindingReport) -> String {
    let ty = f.type_name.as_deref().unwrap_or("map of unknown type");
    let sites = if f.sites.is_empty() { "unknown sites".to_string() } else { f.sites.join(" and ") };
    let many = if f.instances > 1 { format!(" ({} map instances of this kind)", f.instances) } else { String::new() };
    match f.kind {
        FindingKind::OverlappingWrites => format!(
            "{ty} {} in pid {} was written by {} at the same time ({}×), at {sites}{many}",
            f.map,
            f.pid,
            goroutines_text(f),
            f.count
        ),
        FindingKind::ReadDuringWrite => format!(
            "{ty} {} in pid {} was read by goroutine {} while goroutine {} wrote it ({}×), at {sites}{many}",
            f.map,
            f.pid,
            f.goroutines.first().map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
            f.goroutines.get(1).map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
            f.count
        ),
        FindingKind::IterateDuringWrite => format!(
            "{ty} {} in pid {} was iterated by goroutine {} while goroutine {} wrote it ({}×), at {sites}{many}",
            f.map,
            f.pid,
            f.goroutines.first().map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
            f.goroutines.get(1).map(|g| g.to_string()).unwrap_or_else(|| "?".into()),
            f.count
        ),
        FindingKind::GrowingMap => format!(
            "{ty} {} in pid {} kept growing to {} elements without coming back, written at {sites}",
            f.map, f.pid, f.count
        ),
        FindingKind::SharedMap => {
            format!("{ty} {} in pid {} was written by {} at {sites}{many}", f.map, f.pid, goroutines_text(f))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with one overlap, one shared map and rows of every kind.
    pub(crate) fn report() -> Report {
        serde_json::from_value(serde_json::json!({
            "schema": "mapaudit/v1", "started_at": "2026-11-29T10:00:00Z", "duration_s": 2.0,
            "totals": {"writes": 30, "deletes": 2, "clears": 0, "lost_events": 0},
            "processes": [{"pid": 41, "exe": "/srv/racy", "go_version": "go1.27.3",
                "goroutines": [
                    {"goid": 21, "writes": 18, "deletes": 0, "tids": [41], "created_by": "main.main main.go:69"},
                    {"goid": 22, "writes": 12, "deletes": 2, "tids": [42], "created_by": "main.main main.go:70"}],
                "threads": [{"tid": 41, "writes": 18, "deletes": 0, "comm": "racy"}],
                "maps": [{"addr": "0xc000100000", "instance": 3, "type": "map[string]int", "writes": 30, "deletes": 2,
                    "clears": 0, "writers": [21, 22], "overlaps": 1,
                    "sites": [
                        {"function": "main.racer", "file": "/src/app/main.go", "line": 38, "writes": 20, "pc": "0x10"},
                        {"function": "main.other", "file": "/src/app/pkg/b.go", "line": 7, "writes": 12, "pc": "0x20"}]}]}],
            "bpf_maps": [],
            "findings": [
                {"kind": "overlapping_writes", "pid": 41, "map": "0xc000100000", "instance": 3, "type": "map[string]int",
                 "goroutines": [22, 21], "sites": ["main.racer main.go:38", "main.other b.go:7"], "count": 1},
                {"kind": "shared_map", "pid": 41, "map": "0xc000100000", "instance": 3, "type": "map[string]int",
                 "goroutines": [21, 22], "sites": ["main.racer main.go:38"], "count": 32}]
        }))
        .unwrap()
    }

    #[test]
    fn finding_sites_get_full_file_names_from_the_map_rows() {
        let r = report();
        let v = View::new(&r, &Gate::default());
        let s = v.site(41, "main.other b.go:7").unwrap();
        assert_eq!((s.function.as_str(), s.file.as_str(), s.line), ("main.other", "/src/app/pkg/b.go", 7));
        // Not in any row: taken as written.
        let s = v.site(41, "main.gone gone.go:3").unwrap();
        assert_eq!((s.file.as_str(), s.line), ("gone.go", 3));
        assert!(v.site(41, "garbage").is_none());
    }

    #[test]
    fn verdict_follows_the_conditions() {
        let r = report();
        let g = |f| Gate { fail_on: vec![f], ..Default::default() };
        assert_eq!(View::new(&r, &Gate::default()).verdict, Verdict::NoGate);
        assert_eq!(View::new(&r, &g(FindingKind::OverlappingWrites)).verdict, Verdict::Failed);
        let mut clean = r.clone();
        clean.findings.clear();
        assert_eq!(View::new(&clean, &g(FindingKind::OverlappingWrites)).verdict, Verdict::Passed);
    }

    #[test]
    fn tops_rank_by_mutations() {
        let r = report();
        let v = View::new(&r, &Gate::default());
        let g = v.top_goroutines();
        assert_eq!((g[0].ops, g[1].ops), (18, 14));
        assert!(g[0].label.starts_with("goroutine 21"));
        let s = v.top_sites();
        assert_eq!(s[0].label, "main.racer /src/app/main.go:38");
        assert_eq!(s[0].ops, 20);
    }

    #[test]
    fn go_module_is_read_from_go_mod() {
        let dir = std::env::temp_dir().join(format!("mapaudit-gomod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("go.mod"), "// c\nmodule example.com/app\n\ngo 1.22\n").unwrap();
        assert_eq!(go_module(&dir).as_deref(), Some("example.com/app"));
        std::fs::write(dir.join("go.mod"), "modulex foo\n").unwrap();
        assert_eq!(go_module(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
