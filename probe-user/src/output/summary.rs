//! The short text summary `record` prints on stderr: what a person in a
//! terminal reads first.

use crate::model::{FindingKind, Location, Model};
use crate::output::report::Report;

const TOP: usize = 5;

pub fn print(rep: &Report, model: &Model) {
    eprint!("{}", render(rep, model));
}

pub fn render(rep: &Report, model: &Model) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = &rep.totals;
    let reads = if rep.reads_probed { format!(", {} reads", t.reads) } else { String::new() };
    let _ = writeln!(
        s,
        "mapaudit: {:.1}s, {} writes, {} deletes, {} clears{reads} in {} process(es); {} lost",
        rep.duration_s,
        t.writes,
        t.deletes,
        t.clears,
        rep.processes.len(),
        t.lost_events
    );
    let agg = &model.agg;
    if !agg.goroutines.is_empty() {
        let _ = writeln!(s, "  top goroutines:");
        for g in agg.goroutines.iter().take(TOP) {
            let _ = writeln!(
                s,
                "    pid {:<7} goroutine {:<6} {:>10} ops  created by {}",
                g.pid,
                g.goid,
                g.ops.total(),
                g.created_by.as_ref().map(Location::short).unwrap_or_else(|| "?".into())
            );
        }
    }
    if !agg.maps.is_empty() {
        let _ = writeln!(s, "  top maps:");
        for m in agg.maps.iter().take(TOP) {
            let _ = writeln!(
                s,
                "    pid {:<7} 0x{:<14x} {:<28} {:>10} ops  {} writer(s)",
                m.pid,
                m.map.addr,
                m.type_name.as_deref().unwrap_or("?"),
                m.ops.total(),
                m.writers.len()
            );
        }
    }
    render_findings(rep, &mut s);
    s
}

fn render_findings(rep: &Report, s: &mut String) {
    use std::fmt::Write as _;
    // A terminal summary: the report has every finding whole. The same
    // finding in many processes of one program (each `compile` of a `go
    // build` sharing its symbol table between goroutines: 179 processes,
    // one line each) is one line, with how many processes.
    const FINDINGS_SHOWN: usize = 20;
    const GOROUTINES_SHOWN: usize = 8;
    const PIDS_SHOWN: usize = 4;
    let groups = alike(rep);
    for g in groups.iter().take(FINDINGS_SHOWN) {
        let f = &rep.findings[g[0]];
        let mut goroutines: Vec<String> = f.goroutines.iter().take(GOROUTINES_SHOWN).map(u64::to_string).collect();
        if f.goroutines.len() > GOROUTINES_SHOWN {
            goroutines.push(format!("… {} in all", f.goroutines.len()));
        }
        let instances: u64 = g.iter().map(|&i| rep.findings[i].instances).sum();
        let instances = if instances > 1 { format!(" ({instances} instances)") } else { String::new() };
        let kind = match f.kind {
            FindingKind::OverlappingWrites => "OVERLAP",
            FindingKind::ReadDuringWrite => "READ DURING WRITE",
            FindingKind::IterateDuringWrite => "ITERATION DURING WRITE",
            FindingKind::GrowingMap => "GROWING MAP",
            FindingKind::SharedMap => "shared map",
        };
        let at = f.sites.join(", ");
        let ty = f.type_name.as_deref().unwrap_or("?");
        if g.len() == 1 {
            let _ = writeln!(s, "  {kind}: pid {} map {} {ty}{instances} goroutines [{}] at {at}", f.pid, f.map, goroutines.join(", "));
        } else {
            let mut pids: Vec<String> = g.iter().take(PIDS_SHOWN).map(|&i| rep.findings[i].pid.to_string()).collect();
            if g.len() > PIDS_SHOWN {
                pids.push("…".into());
            }
            let _ = writeln!(
                s,
                "  {kind}: in {} processes of {} (pids {}): {ty}{instances} at {at}",
                g.len(),
                exe_of(rep, f.pid).unwrap_or("?"),
                pids.join(", ")
            );
        }
    }
    if groups.len() > FINDINGS_SHOWN {
        let _ = writeln!(s, "  … {} findings in all (the report has them all)", rep.findings.len());
    }
}

fn exe_of(rep: &Report, pid: u32) -> Option<&str> {
    rep.processes.iter().find(|p| p.pid == pid).map(|p| p.exe.as_str())
}

/// The report's findings as lines: indices into `rep.findings`, in report
/// order, those alike (kind, program, map type and sites; not an overlap,
/// which names its own goroutines) in different processes together.
fn alike(rep: &Report) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut at: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for (i, f) in rep.findings.iter().enumerate() {
        let groupable = matches!(f.kind, FindingKind::SharedMap | FindingKind::GrowingMap);
        let key = (f.kind, exe_of(rep, f.pid), &f.type_name, &f.sites);
        match at.get(&key) {
            Some(&g) if groupable && exe_of(rep, f.pid).is_some() => groups[g].push(i),
            _ => {
                if groupable {
                    at.insert(key, groups.len());
                }
                groups.push(vec![i]);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(pid: u32, ty: &str, site: &str) -> serde_json::Value {
        serde_json::json!({"kind": "shared_map", "pid": pid, "map": "0xc000100000", "type": ty,
            "goroutines": [1, 2], "sites": [site], "count": 10, "instances": 2})
    }

    #[test]
    fn a_finding_repeated_in_processes_of_one_program_is_one_line() {
        let process = |pid: u32, exe: &str| serde_json::json!({"pid": pid, "exe": exe, "go_version": "go1.27.3",
            "goroutines": [], "threads": [], "maps": []});
        let r: Report = serde_json::from_value(serde_json::json!({
            "schema": "mapaudit/v1", "started_at": "2026-11-29T10:00:00Z", "duration_s": 2.0,
            "totals": {"writes": 30, "deletes": 0, "clears": 0, "lost_events": 0},
            "processes": [process(11, "/go/pkg/tool/compile"), process(12, "/go/pkg/tool/compile"),
                process(13, "/go/pkg/tool/compile"), process(14, "/go/pkg/tool/compile"), process(15, "/go/pkg/tool/compile"),
                process(21, "/srv/app")],
            "bpf_maps": [],
            "findings": [
                shared(11, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                {"kind": "overlapping_writes", "pid": 12, "map": "0xc000200000", "type": "map[int]int",
                 "goroutines": [3, 4], "sites": ["a a.go:1", "b b.go:2"], "count": 1},
                shared(12, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                shared(21, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                shared(13, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                shared(14, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                shared(15, "map[string]*types.Sym", "types.LookupOK pkg.go:84"),
                shared(13, "map[string]string", "types.InternString pkg.go:127")]
        }))
        .unwrap();
        let mut s = String::new();
        render_findings(&r, &mut s);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4, "{s}");
        assert_eq!(
            lines[0],
            "  shared map: in 5 processes of /go/pkg/tool/compile (pids 11, 12, 13, 14, …): map[string]*types.Sym (10 instances) at types.LookupOK pkg.go:84"
        );
        assert!(lines[1].starts_with("  OVERLAP: pid 12 map 0xc000200000 map[int]int goroutines [3, 4]"), "{s}");
        // Another program: its own line.
        assert!(lines[2].starts_with("  shared map: pid 21 map 0xc000100000 map[string]*types.Sym (2 instances)"), "{s}");
        assert!(lines[3].starts_with("  shared map: pid 13 map 0xc000100000 map[string]string"), "{s}");
    }
}
