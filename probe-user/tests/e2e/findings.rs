//! Findings and the CI gate, end to end: an unsynchronised map write pair is
//! caught as it happens (both goroutines and the site named) even though Go
//! kills the process; a mutex-protected shared map is a `shared_map` only.

use std::path::Path;

use crate::support::*;

fn check(report: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["check", report.to_str().unwrap()];
    a.extend_from_slice(args);
    run(&a)
}

root_test! {
    fn overlapping_writes_name_both_goroutines_even_when_the_target_crashes(name) {
        let bin = fixtures::build("racy", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Go's runtime dies with exit status 2; record returns the command's status.
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("concurrent map writes"), "the fixture should have crashed: {stderr}");
        let t = truth(&out.stdout);
        let report = read_json(&json);
        let ov: Vec<_> = report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "overlapping_writes").collect();
        assert_eq!(ov.len(), 1, "{report:#}");
        let f = ov[0];
        assert_eq!(f["map"], t["map"]);
        assert_eq!(f["type"], "map[string]int");
        let mut got: Vec<u64> = f["goroutines"].as_array().unwrap().iter().map(|g| g.as_u64().unwrap()).collect();
        got.sort();
        let mut want: Vec<u64> = t["goids"].as_array().unwrap().iter().map(|g| g.as_u64().unwrap()).collect();
        want.sort();
        assert_eq!(got, want, "both goroutines are named");
        assert_eq!(f["sites"], serde_json::json!([format!("main.racer main.go:{}", t["line"])]));
        assert!(f["count"].as_u64().unwrap() >= 1);
        let p = process(&report, t["pid"].as_u64().unwrap());
        let m = p["maps"].as_array().unwrap().iter().find(|m| m["addr"] == t["map"]).unwrap();
        assert_eq!(m["overlaps"], f["count"]);

        let gate = check(&json, &["--fail-on", "overlap"]);
        assert_eq!(gate.status.code(), Some(1), "{}", String::from_utf8_lossy(&gate.stderr));
        let msg = String::from_utf8_lossy(&gate.stderr);
        assert!(msg.contains("overlapping_writes") && msg.contains(&format!("main.go:{}", t["line"])), "{msg}");
        for g in &want {
            assert!(msg.contains(&g.to_string()), "gate message names goroutine {g}: {msg}");
        }
        // The same gate in one step: exit 1 wins over the command's status.
        let json2 = json.with_file_name("report2.json");
        let out = run(&["record", "--fail-on", "overlap", "--json", json2.to_str().unwrap(), "--", bin.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        let report2 = read_json(&json2);
        assert_eq!(report2["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "overlapping_writes").count(), 1, "{report2:#}");
    }
}

root_test! {
    fn each_overlap_path_alone_and_one_incident_seen_by_both_is_one(name) {
        // The fixture sets the map header's write-in-progress flag itself, so
        // which of the two paths can see the overlap is fixed by its mode
        // (see fixtures/go/overlapmode): `fatal` only the runtime.fatal probe
        // (one writer ever: the entry check cannot fire), `entry` only the
        // entry check (Go returns from a delete on an empty map before its
        // own check: no crash), `both` one incident seen by both paths.
        let dir = scratch(name);
        for version in fixtures::GO_VERSIONS {
            let bin = fixtures::build("overlapmode", version, Variant::Plain).unwrap();
            for (mode, code) in [("fatal", 2), ("both", 2), ("entry", 0)] {
                let json = dir.join(format!("{version}-{mode}.json"));
                let out = run(&["record", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-mode", mode]);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let ctx = format!("Go {version}, -mode {mode}");
                assert_eq!(out.status.code(), Some(code), "{ctx}: {stderr}");
                assert_eq!(stderr.contains("fatal error: concurrent map writes"), code == 2, "{ctx}: {stderr}");
                let t = truth(&out.stdout);
                let report = read_json(&json);
                let ov: Vec<_> =
                    report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "overlapping_writes").collect();
                assert_eq!(ov.len(), 1, "{ctx}: {report:#}");
                let f = ov[0];
                assert_eq!(f["map"], t["map"], "{ctx}");
                assert_eq!(f["type"], "map[int]int", "{ctx}");
                // Exactly one: the runtime's report of the incident the entry
                // check already reported is merged, not counted again.
                assert_eq!(f["count"], 1, "{ctx}: {f:#}");
                assert_eq!(f["goroutines"], t["goids"], "{ctx}: the overlapping writer first, then the other (if any)");
                let mut sites = vec![format!("main.overlappingWrite main.go:{}", t["line"])];
                if mode != "fatal" {
                    sites.push(format!("main.otherWrite main.go:{}", t["other_line"]));
                }
                assert_eq!(f["sites"], serde_json::json!(sites), "{ctx}");
                let p = process(&report, t["pid"].as_u64().unwrap());
                let m = p["maps"].as_array().unwrap().iter().find(|m| m["addr"] == t["map"]).unwrap();
                assert_eq!(m["overlaps"], 1, "{ctx}");
            }
        }
    }
}

root_test! {
    fn mutex_protected_shared_map_is_shared_but_not_overlapping(name) {
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-n", "20000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // assert_writers_truth checks: one shared_map finding with both writers, no overlap.
        assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
        assert_eq!(check(&json, &["--fail-on", "overlap"]).status.code(), Some(0));
        let gate = check(&json, &["--fail-on", "shared-map"]);
        assert_eq!(gate.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&gate.stderr).contains("map[string]int"));
        // record's summary on stderr names the top goroutines and the finding.
        let summary = String::from_utf8_lossy(&out.stderr);
        assert!(summary.contains("top goroutines") && summary.contains("shared map"), "{summary}");
    }
}

user_test! {
    fn check_rejects_bad_reports_with_exit_2(_) {
        // No root needed.
        let dir = scratch("check_rejects_bad_reports");
        let missing = dir.join("missing.json");
        let out = check(&missing, &["--fail-on", "overlap"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read report"));
        for (file, body, says) in [
            ("bad.json", "{not json", "not a valid mapaudit JSON report"),
            ("other.json", r#"{"schema":"otherthing/v3"}"#, "has schema"),
            ("partial.json", r#"{"schema":"mapaudit/v1","totals":{}}"#, "not a valid mapaudit JSON report"),
        ] {
            let p = dir.join(file);
            std::fs::write(&p, body).unwrap();
            let out = check(&p, &[]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{file}: {err}");
            assert!(err.contains(says), "{file}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}
