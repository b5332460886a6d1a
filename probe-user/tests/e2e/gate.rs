//! The CI gate's pass and fail paths end to end, on reports of fixtures
//! whose truth is known: `check` and `record --fail-on` for every finding
//! kind, `--max-writes-per-sec` at the exact rate the report shows.

use serde_json::Value;

use crate::support::*;

fn check(report: &std::path::Path, args: &[&str]) -> Finished {
    let mut a = vec!["check", s(report)];
    a.extend_from_slice(args);
    record(&a)
}

root_test! {
    /// On reports without the finding, each `--fail-on` kind passes (exit
    /// 0); with it, it fails (exit 1) — in `check` and in `record` alike.
    fn fail_on_every_kind_passes_clean_reports_and_fails_the_rest(name) {
        // readers with --reads: no finding of any kind.
        let dir = scratch(name);
        let clean = dir.join("readers.json");
        let out = record(&["record", "--reads", "--no-bpf-maps", "--json", s(&clean), "--", s(&fixture("readers")), "-n", "3000"]);
        out.assert_success("record readers");
        let r = read_json(&clean);
        assert_eq!(r["findings"], serde_json::json!([]), "{r:#}");
        for kind in ["overlap", "shared-map", "read-during-write"] {
            let gate = check(&clean, &["--fail-on", kind]);
            assert_eq!(gate.code(), Some(0), "check --fail-on {kind} on a clean report: {}", gate.stderr);
        }
        // writers: one shared map (under a mutex), no overlap.
        let shared = dir.join("writers.json");
        let out = record(&["record", "--fail-on", "overlap", "--no-bpf-maps", "--json", s(&shared), "--", s(&fixture("writers")), "-n", "2000"]);
        assert_eq!(out.code(), Some(0), "record --fail-on overlap without an overlap: {}", out.stderr);
        assert_writers_truth(&read_json(&shared), &out.truth(), name);
        let out = record(&["record", "--fail-on", "shared-map", "--no-bpf-maps", "--json", s(&dir.join("w2.json")), "--", s(&fixture("writers")), "-n", "2000"]);
        assert_eq!(out.code(), Some(1), "record --fail-on shared-map with a shared map: {}", out.stderr);
        assert!(out.stderr.contains("shared_map"), "{}", out.stderr);
        read_json(&dir.join("w2.json"));
        let out = record(&["record", "--reads", "--fail-on", "read-during-write", "--no-bpf-maps", "--json", s(&dir.join("r2.json")), "--", s(&fixture("readers")), "-n", "3000"]);
        assert_eq!(out.code(), Some(0), "record --fail-on read-during-write, none: {}", out.stderr);
        read_json(&dir.join("r2.json"));
    }

    /// `--max-writes-per-sec`: just above the report's highest rate passes,
    /// just below fails and names exactly the goroutines and maps above it.
    fn max_writes_per_sec_at_the_reports_own_rates(name) {
        let json = scratch(name).join("r.json");
        let out = record(&["record", "--no-bpf-maps", "--json", s(&json), "--", s(&fixture("writers")), "-n", "20000"]);
        out.assert_success("record writers");
        let r = read_json(&json);
        let t = out.truth();
        assert_writers_truth(&r, &t, name);
        let secs = r["duration_s"].as_f64().unwrap();
        let p = process(&r, t["pid"].as_u64().unwrap());
        let ops = |v: &Value| ["writes", "deletes", "clears"].iter().map(|f| v[f].as_f64().unwrap()).sum::<f64>();
        let rates: Vec<f64> = p["goroutines"].as_array().unwrap().iter().chain(p["maps"].as_array().unwrap()).map(|v| ops(v) / secs).collect();
        let top = rates.iter().copied().fold(0.0, f64::max);
        assert!(top > 0.0);
        let above = format!("{:.3}", top * 1.001);
        assert_eq!(check(&json, &["--max-writes-per-sec", &above]).code(), Some(0));
        let below = top * 0.999;
        let gate = check(&json, &["--max-writes-per-sec", &format!("{below:.3}")]);
        assert_eq!(gate.code(), Some(1), "{}", gate.stderr);
        let over = rates.iter().filter(|r| **r > below).count();
        let named = gate.stderr.lines().filter(|l| l.contains("/s >")).count();
        assert_eq!(named, over, "one line per goroutine or map over the limit: {}", gate.stderr);
        // The same gate in one step.
        let out = record(&["record", "--no-bpf-maps", "--max-writes-per-sec", "1", "--json", s(&json), "--", s(&fixture("writers")), "-n", "2000"]);
        assert_eq!(out.code(), Some(1), "{}", out.stderr);
        read_json(&json);
    }
}
