//! One self-contained HTML page: the verdict and findings first, then the
//! rankings as bar charts, the writes-per-interval timeline and the BPF
//! maps. Inline CSS and SVG only, and a Content-Security-Policy that lets
//! the browser load nothing: the page opens offline and phones nowhere.

use std::fmt::Write as _;

use super::{Top, Verdict, View, describe_kind, finding_message};
use crate::output::report::SeriesReport;

const CSS: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 10px}
.verdict{display:inline-block;padding:6px 14px;border-radius:6px;font-weight:600;color:#fff}
.passed{background:#1a7f37}.failed{background:#cf222e}.nogate{background:#57606a}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:10px 0}
.finding.error{border-left:5px solid #cf222e}.finding.note{border-left:5px solid #0969da}
.finding.warning{border-left:5px solid #bf8700}
code{font:12.5px ui-monospace,monospace;background:#eef1f4;padding:1px 4px;border-radius:4px}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#57606a}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
";

const COLORS: [&str; 8] = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#bc4c00", "#57606a"];

pub(super) fn render(v: &View) -> String {
    let r = v.report;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>mapaudit report: {}</title><style>{CSS}</style></head><body><main>\n",
        esc(v.verdict.text())
    );
    let class = match v.verdict {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::NoGate => "nogate",
    };
    let _ = writeln!(h, "<h1>mapaudit report</h1>");
    let _ = writeln!(h, "<p><span id=\"verdict\" class=\"verdict {class}\">{}</span></p>", esc(v.verdict.text()));
    if !v.conditions.is_empty() {
        let _ = writeln!(h, "<ul id=\"conditions\">");
        for c in &v.conditions {
            let state = if c.failures.is_empty() { "passed".to_string() } else { format!("<b>failed</b> ({})", c.failures.len()) };
            let _ = writeln!(h, "<li><code>{}</code>: {state}</li>", esc(&c.name));
        }
        let _ = writeln!(h, "</ul>");
    }
    let t = &r.totals;
    let reads = if r.reads_probed { format!(", {} reads", t.reads) } else { String::new() };
    let _ = writeln!(
        h,
        "<p id=\"totals\">Recorded {:.1} s from {}: <b>{}</b> writes, {} deletes, {} clears{reads} in {} process(es); <b>{}</b> lost.</p>",
        r.duration_s,
        esc(&r.started_at),
        t.writes,
        t.deletes,
        t.clears,
        r.processes.len(),
        t.lost_events
    );
    if let Some(s) = &r.sampling
        && s.scaled
    {
        let _ = writeln!(
            h,
            "<p class=\"card\">Counts are scaled estimates: probes were attached {:.0}% of the time (±{:.0}%).</p>",
            s.duty_cycle * 100.0,
            s.relative_error * 100.0
        );
    }
    for w in &r.warnings {
        let _ = writeln!(h, "<p class=\"card\">⚠️ {}</p>", esc(w));
    }

    let _ = writeln!(h, "<h2>Findings ({})</h2><section id=\"findings\">", r.findings.len());
    if r.findings.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">No findings.</p>");
    }
    for f in &r.findings {
        let (title, level, help) = describe_kind(f.kind);
        let _ = writeln!(h, "<div class=\"card finding {level}\" data-kind=\"{}\"><b>{}</b> <code>{}</code>", f.kind.as_str(), esc(title), f.kind.as_str());
        let _ = writeln!(h, "<p>{}</p><ul>", esc(&finding_message(f)));
        for s in &f.sites {
            let full = v.site(f.pid, s).map(|s| format!("{}:{}", s.file, s.line)).unwrap_or_default();
            let _ = writeln!(h, "<li><code>{}</code> <span class=\"muted\">{}</span></li>", esc(s), esc(&full));
        }
        let _ = writeln!(h, "</ul><p class=\"muted\">{}</p></div>", esc(help));
    }
    let _ = writeln!(h, "</section>");

    let _ = writeln!(h, "<h2>Rankings</h2>");
    bars(&mut h, "rank-goroutines", "Goroutines (by creator)", &v.top_goroutines());
    bars(&mut h, "rank-threads", "Threads", &v.top_threads());
    bars(&mut h, "rank-maps", "Maps", &v.top_maps());
    bars(&mut h, "rank-classes", "Map kinds (type and creating site)", &v.top_map_classes());
    bars(&mut h, "rank-sites", "Write sites", &v.top_sites());

    let _ = writeln!(h, "<h2>Timeline</h2><section id=\"timeline\">");
    match &r.timeline {
        Some(tl) if !tl.total.is_empty() => {
            let total = SeriesReport { pid: 0, id: "total".into(), label: "all processes".into(), from: 0, writes: tl.total.clone() };
            chart(&mut h, "Mutations per interval, all processes", tl.interval_s, &[total], tl.total.len());
            chart(&mut h, "Top goroutines", tl.interval_s, &tl.goroutines, tl.total.len());
            chart(&mut h, "Top maps", tl.interval_s, &tl.maps, tl.total.len());
        }
        _ => {
            let _ = writeln!(h, "<p class=\"muted\">No timeline in this report (only <code>record</code> keeps one).</p>");
        }
    }
    let _ = writeln!(h, "</section>");

    if !r.bpf_maps.is_empty() {
        let _ = writeln!(
            h,
            "<h2>BPF maps (writes through bpf(2))</h2><table id=\"bpf-maps\"><tr><th>pid</th><th>comm</th><th>map</th><th>type</th><th class=\"num\">updates</th><th class=\"num\">deletes</th></tr>"
        );
        for b in &r.bpf_maps {
            let map = match (b.map_id, &b.map_name) {
                (Some(id), Some(n)) => format!("{n} (id {id})"),
                (Some(id), None) => format!("id {id}"),
                _ => format!("fd {}", b.fd),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                b.pid,
                esc(&b.comm),
                esc(&map),
                esc(b.map_type.as_deref().unwrap_or("?")),
                b.updates,
                b.deletes
            );
        }
        let _ = writeln!(h, "</table>");
    }
    let _ = writeln!(h, "<p class=\"muted\">mapaudit {} · schema {}</p></main></body></html>", env!("CARGO_PKG_VERSION"), esc(&r.schema));
    h
}

/// A horizontal bar chart.
fn bars(h: &mut String, id: &str, title: &str, rows: &[Top]) {
    let _ = writeln!(h, "<div class=\"card\" id=\"{id}\"><b>{}</b>", esc(title));
    if rows.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">none</p></div>");
        return;
    }
    let max = rows.iter().map(|r| r.ops).max().unwrap_or(1).max(1) as f64;
    let (row_h, bar_x, width) = (24, 430.0, 1000.0);
    let _ = writeln!(
        h,
        "<svg role=\"img\" viewBox=\"0 0 {width} {}\" width=\"100%\" preserveAspectRatio=\"xMinYMin meet\">",
        rows.len() * row_h + 4
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i * row_h;
        let w = ((r.ops as f64 / max) * (width - bar_x - 90.0)).max(1.0);
        let label = format!("pid {} · {}", r.pid, r.label);
        let _ = writeln!(
            h,
            "<g class=\"bar\"><title>{}: {}</title><text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{bar_x}\" y=\"{}\" width=\"{w:.1}\" height=\"16\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text></g>",
            esc(&label),
            r.ops,
            y + 16,
            esc(&clip(&label, 62)),
            y + 4,
            COLORS[0],
            bar_x + w + 6.0,
            y + 16,
            r.ops
        );
    }
    let _ = writeln!(h, "</svg></div>");
}

/// A line chart of per-interval counts; `points` intervals on the x axis.
fn chart(h: &mut String, title: &str, interval_s: f64, series: &[SeriesReport], points: usize) {
    let _ = writeln!(h, "<div class=\"card chart\"><b>{}</b>", esc(title));
    if series.is_empty() || points == 0 {
        let _ = writeln!(h, "<p class=\"muted\">none</p></div>");
        return;
    }
    let (w, ht, left, bottom) = (1000.0, 220.0, 60.0, 24.0);
    let max = series.iter().flat_map(|s| s.writes.iter()).copied().max().unwrap_or(0).max(1) as f64;
    let dx = (w - left - 10.0) / (points.max(2) - 1) as f64;
    let y = |v: u64| (ht - bottom) - (v as f64 / max) * (ht - bottom - 10.0);
    let _ = writeln!(h, "<svg role=\"img\" viewBox=\"0 0 {w} {ht}\" width=\"100%\">");
    let _ = writeln!(
        h,
        "<line x1=\"{left}\" y1=\"{0}\" x2=\"{w}\" y2=\"{0}\" stroke=\"#d0d7de\"/><text x=\"0\" y=\"14\">{max:.0}</text>\
         <text x=\"0\" y=\"{0}\">0</text><text x=\"{left}\" y=\"{1}\">0 s</text><text x=\"{2}\" y=\"{1}\" text-anchor=\"end\">{3:.0} s</text>",
        ht - bottom,
        ht - 6.0,
        w - 10.0,
        points as f64 * interval_s
    );
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = (s.writes.iter().enumerate())
            .map(|(k, &v)| format!("{:.1},{:.1}", left + (s.from as usize + k) as f64 * dx, y(v)))
            .collect();
        let _ = writeln!(
            h,
            "<polyline class=\"series\" fill=\"none\" stroke-width=\"2\" stroke=\"{}\" points=\"{}\"><title>{}</title></polyline>",
            COLORS[i % COLORS.len()],
            pts.join(" "),
            esc(&s.label)
        );
    }
    let _ = writeln!(h, "</svg><div class=\"legend\">");
    for (i, s) in series.iter().enumerate() {
        let _ = writeln!(
            h,
            "<span style=\"color:{}\">■</span> {} <span class=\"muted\">pid {} · {} per {interval_s:.0} s max</span><br>",
            COLORS[i % COLORS.len()],
            esc(&s.label),
            s.pid,
            s.writes.iter().max().unwrap_or(&0)
        );
    }
    let _ = writeln!(h, "</div></div>");
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).chain(std::iter::once('…')).collect() }
}

/// Report strings come from audited programs: escape everything.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gate;
    use crate::model::FindingKind;
    use crate::output::formats::tests::report;
    use crate::output::report::TimelineReport;

    #[test]
    fn verdict_findings_rankings_and_timeline_are_on_the_page() {
        let mut r = report();
        r.timeline = Some(TimelineReport {
            interval_s: 1.0,
            total: vec![10, 22],
            goroutines: vec![SeriesReport { pid: 41, id: "21".into(), label: "goroutine 21".into(), from: 0, writes: vec![8, 10] }],
            maps: vec![],
        });
        let page = render(&View::new(&r, &Gate { fail_on: vec![FindingKind::OverlappingWrites], ..Default::default() }));
        assert!(page.contains("<span id=\"verdict\" class=\"verdict failed\">gate FAILED</span>"));
        assert_eq!(page.matches("class=\"card finding ").count(), 2);
        assert!(page.contains("/src/app/pkg/b.go:7"), "full file names from the map rows");
        assert!(page.contains("id=\"rank-goroutines\""));
        assert!(page.contains("goroutine 21 · main.main main.go:69"));
        assert_eq!(page.matches("<polyline").count(), 2, "the total and one goroutine");
        assert!(page.contains("default-src 'none'"));
        for bad in ["http://", "https://", "<script", "src="] {
            assert!(!page.contains(bad), "{bad}");
        }
    }

    #[test]
    fn text_from_targets_is_escaped() {
        let mut r = report();
        r.processes[0].goroutines[0].created_by = Some("<img src=x onerror=alert(1)>".into());
        let page = render(&View::new(&r, &Gate::default()));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;img src=x"));
        assert!(page.contains("No timeline in this report"));
    }
}
