//! JUnit XML for test dashboards: one test case per gate condition (each
//! `--fail-on` kind and threshold), failed with the findings that tripped
//! it — the same verdict `check` gives as its exit code.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use super::{Verdict, View};

pub(super) fn render(v: &View) -> Vec<u8> {
    let failed = v.conditions.iter().filter(|c| !c.failures.is_empty()).count();
    // No condition given: one passing case, so the suite is never empty
    // (many readers treat an empty suite as an error).
    let tests = v.conditions.len().max(1);
    let time = format!("{:.3}", v.report.duration_s.max(0.0));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, r#"<testsuites name="mapaudit" tests="{tests}" failures="{failed}" errors="0" time="{time}">"#);
    let _ = writeln!(
        x,
        r#"  <testsuite name="mapaudit gate" tests="{tests}" failures="{failed}" errors="0" skipped="0" time="{time}" timestamp="{}">"#,
        attr(&v.report.started_at)
    );
    let _ = writeln!(x, "    <properties>");
    for (name, value) in [
        ("writes", v.report.totals.writes.to_string()),
        ("lost_events", v.report.totals.lost_events.to_string()),
        ("findings", v.report.findings.len().to_string()),
        ("processes", v.report.processes.len().to_string()),
    ] {
        let _ = writeln!(x, r#"      <property name="{name}" value="{value}"/>"#);
    }
    let _ = writeln!(x, "    </properties>");
    if v.verdict == Verdict::NoGate {
        let _ = writeln!(x, r#"    <testcase classname="mapaudit.gate" name="report is valid" time="0">"#);
        let _ = writeln!(
            x,
            "      <system-out>{}</system-out>",
            text("no --fail-on or threshold was given; nothing was gated")
        );
        let _ = writeln!(x, "    </testcase>");
    }
    for c in &v.conditions {
        let _ = write!(x, r#"    <testcase classname="mapaudit.gate" name="{}" time="0""#, attr(&c.name));
        if c.failures.is_empty() {
            let _ = writeln!(x, "/>");
            continue;
        }
        let n = c.failures.len();
        let message = format!("{n} problem{}: {}", if n == 1 { "" } else { "s" }, c.failures[0].0);
        let body: Vec<&str> = c.failures.iter().map(|f| f.0.as_str()).collect();
        let _ = writeln!(x, ">");
        let _ = writeln!(x, r#"      <failure message="{}" type="{}">{}</failure>"#, attr(&message), attr(&c.name), text(&body.join("\n")));
        let _ = writeln!(x, "    </testcase>");
    }
    let _ = writeln!(x, "  </testsuite>");
    let _ = writeln!(x, "</testsuites>");
    x.into_bytes()
}

/// Report strings come from the audited programs: escape them, and drop the
/// control characters XML 1.0 cannot carry at all.
fn text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t')).collect();
    escape(clean.as_str()).into_owned()
}

fn attr(s: &str) -> String {
    // Newlines in attributes are normalised away by readers: keep them as spaces.
    text(&s.replace(['\n', '\t'], " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gate;
    use crate::model::FindingKind;
    use crate::output::formats::tests::report;

    fn junit(gate: &Gate) -> String {
        let r = report();
        String::from_utf8(render(&View::new(&r, gate))).unwrap()
    }

    #[test]
    fn a_case_per_condition_failed_by_its_findings() {
        let x = junit(&Gate {
            fail_on: vec![FindingKind::OverlappingWrites, FindingKind::ReadDuringWrite],
            max_writes_per_sec: Some(1000.0),
            max_lost_events: Some(0),
        });
        assert!(x.contains(r#"tests="4" failures="2""#), "{x}");
        assert!(x.contains(r#"<testcase classname="mapaudit.gate" name="--fail-on overlap" time="0">"#));
        assert!(x.contains("<failure message=\"1 problem: overlapping_writes in pid 41"));
        // Recorded without --reads: the check cannot pass.
        assert!(x.contains("cannot be checked: the report was recorded without --reads"));
        assert!(x.contains(r#"<testcase classname="mapaudit.gate" name="--max-writes-per-sec 1000" time="0"/>"#));
        assert!(x.contains(r#"<testcase classname="mapaudit.gate" name="--max-lost-events 0" time="0"/>"#));
    }

    #[test]
    fn no_conditions_is_one_passing_case() {
        let x = junit(&Gate::default());
        assert!(x.contains(r#"tests="1" failures="0""#));
        assert!(x.contains(r#"name="report is valid""#));
    }

    #[test]
    fn untrusted_text_is_escaped() {
        assert_eq!(text("a<b>&\"c\u{1}\n"), "a&lt;b&gt;&amp;&quot;c\n");
        assert_eq!(attr("x\ny"), "x y");
    }
}
