//! A short Markdown summary for a CI job page (e.g. `$GITHUB_STEP_SUMMARY`):
//! verdict, totals, losses, the top goroutines, maps and sites, and the
//! findings with their sites.

use std::fmt::Write as _;

use super::{Top, Verdict, View, describe_kind, finding_message};

/// Findings listed in full; the rest are counted.
const FINDINGS: usize = 20;

pub(super) fn render(v: &View) -> String {
    let r = v.report;
    let mut s = String::new();
    let icon = match v.verdict {
        Verdict::Passed => "✅",
        Verdict::Failed => "❌",
        Verdict::NoGate => "ℹ️",
    };
    let _ = writeln!(s, "## {icon} mapaudit: {}\n", v.verdict.text());
    for c in &v.conditions {
        let mark = if c.failures.is_empty() { "passed" } else { "**failed**" };
        let _ = writeln!(s, "- `{}`: {mark}", cell(&c.name));
    }
    if !v.conditions.is_empty() {
        s.push('\n');
    }
    let t = &r.totals;
    let reads = if r.reads_probed { format!(", {} reads", t.reads) } else { String::new() };
    let _ = writeln!(
        s,
        "{:.1} s recorded: {} writes, {} deletes, {} clears{reads} in {} process{}; **{} lost**{}.\n",
        r.duration_s,
        t.writes,
        t.deletes,
        t.clears,
        r.processes.len(),
        if r.processes.len() == 1 { "" } else { "es" },
        t.lost_events,
        lost_causes(r),
    );
    if let Some(sm) = &r.sampling
        && sm.scaled
    {
        let _ = writeln!(
            s,
            "> Counts are scaled estimates (probes attached {:.0}% of the time, ±{:.0}%).\n",
            sm.duty_cycle * 100.0,
            sm.relative_error * 100.0
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "> ⚠️ {}\n", line(w));
    }

    let _ = writeln!(s, "### Findings ({})\n", r.findings.len());
    if r.findings.is_empty() {
        let _ = writeln!(s, "None.\n");
    }
    for f in r.findings.iter().take(FINDINGS) {
        let (title, level, _) = describe_kind(f.kind);
        let _ = writeln!(s, "- **{title}** (`{}`, {level}): {}", f.kind.as_str(), line(&finding_message(f)));
    }
    if r.findings.len() > FINDINGS {
        let _ = writeln!(s, "- … and {} more in the JSON report", r.findings.len() - FINDINGS);
    }
    s.push('\n');
    table(&mut s, "Top goroutines", "Goroutine (created by)", &v.top_goroutines());
    table(&mut s, "Top maps", "Map", &v.top_maps());
    table(&mut s, "Top write sites", "Site", &v.top_sites());
    s
}

fn lost_causes(r: &crate::output::report::Report) -> String {
    let causes: Vec<String> = r.lost.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    if causes.is_empty() { String::new() } else { format!(" ({})", causes.join(", ")) }
}

fn table(s: &mut String, title: &str, what: &str, rows: &[Top]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "### {title}\n\n| {what} | pid | mutations |\n|---|---:|---:|");
    for t in rows {
        let _ = writeln!(s, "| {} | {} | {} |", cell(&t.label), t.pid, t.ops);
    }
    s.push('\n');
}

/// Text from the report inside a table cell: no line breaks, no column
/// breaks, no HTML (job pages render it).
fn cell(t: &str) -> String {
    line(t).replace('|', "\\|")
}

fn line(t: &str) -> String {
    t.replace(['\n', '\r'], " ").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gate;
    use crate::model::FindingKind;
    use crate::output::formats::tests::report;

    /// The whole summary, byte for byte: a change to it is a change users see.
    #[test]
    fn snapshot() {
        let r = report();
        let md = render(&View::new(&r, &Gate { fail_on: vec![FindingKind::OverlappingWrites], ..Default::default() }));
        let want = "\
## ❌ mapaudit: gate FAILED

- `--fail-on overlap`: **failed**

2.0 s recorded: 30 writes, 2 deletes, 0 clears in 1 process; **0 lost**.

### Findings (2)

- **Concurrent map writes** (`overlapping_writes`, error): map[string]int 0xc000100000 in pid 41 was written by goroutines 22 and 21 at the same time (1×), at main.racer main.go:38 and main.other b.go:7
- **Map written by several goroutines** (`shared_map`, note): map[string]int 0xc000100000 in pid 41 was written by goroutines 21 and 22 at main.racer main.go:38

### Top goroutines

| Goroutine (created by) | pid | mutations |
|---|---:|---:|
| goroutine 21 · main.main main.go:69 | 41 | 18 |
| goroutine 22 · main.main main.go:70 | 41 | 14 |

### Top maps

| Map | pid | mutations |
|---|---:|---:|
| map[string]int 0xc000100000 | 41 | 32 |

### Top write sites

| Site | pid | mutations |
|---|---:|---:|
| main.racer /src/app/main.go:38 | 41 | 20 |
| main.other /src/app/pkg/b.go:7 | 41 | 12 |

";
        assert_eq!(md, want);
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\n<script>"), "a\\|b &lt;script&gt;");
    }
}
