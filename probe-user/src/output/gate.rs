//! The CI gate: thresholds over a report → failures → exit code, plus the
//! human summary `check` prints. Pure; `check` needs no privileges.

use std::path::Path;

use crate::config::Gate;
use crate::model::FindingKind;
use crate::output::report::{FindingReport, GoroutineReport, MapReport, Report, SCHEMA};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read report {path}: {why}")]
    Io { path: String, why: String },
    #[error("{path} is not a valid mapaudit JSON report: {why}")]
    Parse { path: String, why: String },
    #[error("{path} has schema {found:?}; this mapaudit reads {SCHEMA:?} — use a matching mapaudit version")]
    Schema { path: String, found: String },
}

/// Reads and validates a report file.
pub fn read_report(path: &Path) -> Result<Report, ReadError> {
    let p = path.display().to_string();
    let data = std::fs::read(path).map_err(|e| ReadError::Io { path: p.clone(), why: e.to_string() })?;
    parse_report(&data, &p)
}

pub fn parse_report(data: &[u8], path: &str) -> Result<Report, ReadError> {
    // Check the schema first so a future report gets the right message.
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| ReadError::Parse { path: path.into(), why: e.to_string() })?;
    match v.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(other) => return Err(ReadError::Schema { path: path.into(), found: other.into() }),
        None => return Err(ReadError::Parse { path: path.into(), why: "no \"schema\" field".into() }),
    }
    serde_json::from_value(v).map_err(|e| ReadError::Parse { path: path.into(), why: e.to_string() })
}

/// One reason the gate fails, printable.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure(pub String);

fn describe(f: &FindingReport) -> String {
    let goroutines = f.goroutines.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(" and ");
    // A read-during-write finding lists the reader first, then the writer.
    let how = match f.kind {
        FindingKind::ReadDuringWrite => "read and written",
        FindingKind::IterateDuringWrite => "iterated and written",
        FindingKind::GrowingMap => "grown without coming back (inserted into, then deleted from)",
        _ => "written",
    };
    format!(
        "{} in pid {}: map {} ({}) {how} by goroutines {goroutines} at {}",
        f.kind.as_str(),
        f.pid,
        f.map,
        f.type_name.as_deref().unwrap_or("type unknown"),
        if f.sites.is_empty() { "unknown sites".to_string() } else { f.sites.join(", ") },
    )
}

/// One gate condition (a `--fail-on` kind or a threshold) and what tripped
/// it: the unit JUnit reports as a test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As the user wrote it, e.g. `--fail-on overlap`.
    pub name: String,
    pub failures: Vec<Failure>,
}

pub fn evaluate(report: &Report, gate: &Gate) -> Vec<Failure> {
    conditions(report, gate).into_iter().flat_map(|c| c.failures).collect()
}

/// The `--fail-on` value that names `kind`.
fn flag(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::OverlappingWrites => "overlap",
        FindingKind::SharedMap => "shared-map",
        FindingKind::ReadDuringWrite => "read-during-write",
        FindingKind::IterateDuringWrite => "iterate-during-write",
        FindingKind::GrowingMap => "growing-map",
    }
}

/// Every condition of `gate`, each with its failures: kinds in the order
/// given, then `--max-writes-per-sec`, then `--max-lost-events`.
pub fn conditions(report: &Report, gate: &Gate) -> Vec<Condition> {
    let mut all = Vec::new();
    for kind in &gate.fail_on {
        let mut out = Vec::new();
        if *kind == FindingKind::ReadDuringWrite && !report.reads_probed {
            // Passing would claim an absence nobody looked for.
            out.push(Failure(
                "read_during_write cannot be checked: the report was recorded without --reads (record again with --reads)"
                    .into(),
            ));
        }
        if *kind == FindingKind::GrowingMap && !report.processes.iter().any(|p| p.maps.iter().any(|m| m.len.is_some())) {
            // No length was sampled (--len-maps 0, or a report from before
            // lengths were): nothing could have been found.
            out.push(Failure(
                "growing_map cannot be checked: the report has no map lengths (record again with --len-maps N > 0)".into(),
            ));
        }
        out.extend(report.findings.iter().filter(|f| f.kind == *kind).map(|f| Failure(describe(f))));
        all.push(Condition { name: format!("--fail-on {}", flag(*kind)), failures: out });
    }
    if let Some(max) = gate.max_writes_per_sec {
        let mut out = Vec::new();
        let secs = report.duration_s.max(f64::MIN_POSITIVE);
        for p in &report.processes {
            // Goroutines, then maps: (writes, deletes, clears) and who.
            let goroutines = p.goroutines.iter().map(|g| ((g.writes, g.deletes, g.clears), RateOf::Goroutine(g)));
            let maps = p.maps.iter().map(|m| ((m.writes, m.deletes, m.clears), RateOf::Map(m)));
            for ((writes, deletes, clears), who) in goroutines.chain(maps) {
                // Reports come from outside: add as floats so no count can overflow.
                let rate = (writes as f64 + deletes as f64 + clears as f64) / secs;
                if rate > max {
                    out.push(Failure(match who {
                        RateOf::Goroutine(g) => format!(
                            "goroutine {} in pid {} ({}) wrote {rate:.0}/s > {max}/s",
                            g.goid,
                            p.pid,
                            g.created_by.as_deref().unwrap_or("creator unknown"),
                        ),
                        RateOf::Map(m) => format!(
                            "map {} ({}) in pid {} was written {rate:.0}/s > {max}/s",
                            m.addr,
                            m.type_name.as_deref().unwrap_or("type unknown"),
                            p.pid,
                        ),
                    }));
                }
            }
        }
        all.push(Condition { name: format!("--max-writes-per-sec {max}"), failures: out });
    }
    if let Some(max) = gate.max_lost_events {
        let mut out = Vec::new();
        if report.totals.lost_events > max {
            out.push(Failure(format!("{} events were lost (> {max})", report.totals.lost_events)));
        }
        all.push(Condition { name: format!("--max-lost-events {max}"), failures: out });
    }
    all
}

/// Whose write rate `--max-writes-per-sec` judges.
enum RateOf<'a> {
    Goroutine(&'a GoroutineReport),
    Map(&'a MapReport),
}

/// Prints the failures and returns the exit code (0 pass, 1 fail).
pub fn conclude(failures: &[Failure]) -> i32 {
    if failures.is_empty() {
        eprintln!("mapaudit: gate passed");
        return 0;
    }
    eprintln!("mapaudit: gate FAILED ({} problem{}):", failures.len(), if failures.len() == 1 { "" } else { "s" });
    for f in failures {
        eprintln!("  - {}", f.0);
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        serde_json::from_value(serde_json::json!({
            "schema": "mapaudit/v1", "started_at": "t", "duration_s": 2.0,
            "totals": {"writes": 10, "deletes": 0, "clears": 0, "lost_events": 3},
            "processes": [{"pid": 1, "exe": "/x", "go_version": "go1.27.3",
                "goroutines": [{"goid": 7, "writes": 10, "deletes": 0, "tids": [1], "created_by": "main.main main.go:3"}],
                "threads": [], "maps": []}],
            "bpf_maps": [],
            "findings": [{"kind": "shared_map", "pid": 1, "map": "0xc0", "type": "map[string]int", "goroutines": [7, 8], "sites": ["main.a main.go:9"]}]
        }))
        .unwrap()
    }

    #[test]
    fn fail_on_kinds() {
        let r = report();
        let g = |f: Vec<FindingKind>| Gate { fail_on: f, ..Default::default() };
        assert!(evaluate(&r, &g(vec![FindingKind::OverlappingWrites])).is_empty());
        let f = evaluate(&r, &g(vec![FindingKind::SharedMap]));
        assert_eq!(f.len(), 1);
        assert!(f[0].0.contains("goroutines 7 and 8"), "{}", f[0].0);
        assert!(f[0].0.contains("main.a main.go:9"));
    }

    #[test]
    fn growing_map_needs_sampled_lengths() {
        let mut r = report();
        let g = Gate { fail_on: vec![FindingKind::GrowingMap, FindingKind::IterateDuringWrite], ..Default::default() };
        let f = evaluate(&r, &g);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].0.contains("--len-maps"), "{}", f[0].0);
        // With one sampled map and no growing_map finding, it passes.
        let m: crate::output::report::MapReport = serde_json::from_value(serde_json::json!({
            "addr": "0xc0", "type": null, "writes": 1, "deletes": 0, "clears": 0, "writers": [7], "overlaps": 0,
            "sites": [], "len": {"min": 1, "max": 1, "last": 1, "samples": 3}
        }))
        .unwrap();
        r.processes[0].maps.push(m);
        assert!(evaluate(&r, &g).is_empty());
    }

    #[test]
    fn thresholds() {
        let r = report();
        let g = Gate { max_writes_per_sec: Some(4.0), max_lost_events: Some(3), ..Default::default() };
        assert_eq!(evaluate(&r, &g).len(), 1, "5/s > 4/s; 3 lost is not > 3");
        let g = Gate { max_writes_per_sec: Some(5.0), max_lost_events: Some(2), ..Default::default() };
        assert_eq!(evaluate(&r, &g).len(), 1);
    }

    #[test]
    fn one_condition_per_flag_with_its_failures() {
        let r = report();
        let g = Gate {
            fail_on: vec![FindingKind::OverlappingWrites, FindingKind::SharedMap],
            max_writes_per_sec: Some(4.0),
            max_lost_events: Some(3),
        };
        let c = conditions(&r, &g);
        let names: Vec<_> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["--fail-on overlap", "--fail-on shared-map", "--max-writes-per-sec 4", "--max-lost-events 3"]);
        let failed: Vec<_> = c.iter().map(|c| c.failures.len()).collect();
        assert_eq!(failed, [0, 1, 1, 0], "one shared map; goroutine 7 at 5/s; 3 lost is not > 3");
    }

    #[test]
    fn bad_reports_are_errors_not_panics() {
        assert!(matches!(parse_report(b"{", "r"), Err(ReadError::Parse { .. })));
        assert!(matches!(parse_report(b"[]", "r"), Err(ReadError::Parse { .. })));
        assert!(matches!(parse_report(br#"{"schema":"mapaudit/v9"}"#, "r"), Err(ReadError::Schema { .. })));
        assert!(matches!(parse_report(br#"{"schema":"mapaudit/v1"}"#, "r"), Err(ReadError::Parse { .. })));
        assert!(matches!(read_report(Path::new("/nonexistent/r.json")), Err(ReadError::Io { .. })));
    }
}
