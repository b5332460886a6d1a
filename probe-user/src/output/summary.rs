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
    // A terminal summary: the report has every finding whole.
    const FINDINGS_SHOWN: usize = 20;
    const GOROUTINES_SHOWN: usize = 8;
    for f in rep.findings.iter().take(FINDINGS_SHOWN) {
        let mut goroutines: Vec<String> = f.goroutines.iter().take(GOROUTINES_SHOWN).map(u64::to_string).collect();
        if f.goroutines.len() > GOROUTINES_SHOWN {
            goroutines.push(format!("… {} in all", f.goroutines.len()));
        }
        let instances = if f.instances > 1 { format!(" ({} instances)", f.instances) } else { String::new() };
        let _ = writeln!(
            s,
            "  {}: pid {} map {} {}{instances} goroutines [{}] at {}",
            match f.kind {
                FindingKind::OverlappingWrites => "OVERLAP",
                FindingKind::ReadDuringWrite => "READ DURING WRITE",
                FindingKind::IterateDuringWrite => "ITERATION DURING WRITE",
                FindingKind::GrowingMap => "GROWING MAP",
                FindingKind::SharedMap => "shared map",
            },
            f.pid,
            f.map,
            f.type_name.as_deref().unwrap_or("?"),
            goroutines.join(", "),
            f.sites.join(", ")
        );
    }
    if rep.findings.len() > FINDINGS_SHOWN {
        let _ = writeln!(s, "  … {} findings in all (the report has them all)", rep.findings.len());
    }
    s
}
