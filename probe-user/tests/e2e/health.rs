//! Map health, end to end: a range loop over a map while another goroutine
//! writes it is an `iterate_during_write` naming both goroutines and sites
//! (the target dies of Go's fatal; the report is still written), and with
//! `--reads` range loops are counted exactly per goroutine and map.

use serde_json::Value;
use crate::support::*;

fn rows<'a>(rows: &'a Value, field: &str, v: &Value) -> &'a Value {
    rows.as_array().unwrap().iter().find(|r| r[field] == *v).unwrap_or_else(|| panic!("no row with {field} = {v}"))
}

root_test! {
    fn iterate_during_write_names_the_iterator_and_the_writer(name) {
        // Before swiss maps (runtime.mapiterinit), the first with them
        // (runtime.mapIterStart), and the newest.
        for version in [fixtures::GO_OLDEST, "1.24.11", fixtures::GO_NEWEST] {
            let bin = fixtures::build("iterracy", version, Variant::Plain).unwrap();
            let json = scratch(name).join(format!("report-{version}.json"));
            // No --reads: iterations are always checked.
            let out = run(&["record", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "go{version}: {stderr}");
            assert!(
                stderr.contains("concurrent map iteration and map write"),
                "go{version}: the fixture should have crashed: {stderr}"
            );
            let t = truth(&out.stdout);
            let report = read_json(&json);
            assert_valid_report(&report);
            let findings = report["findings"].as_array().unwrap();
            // One writer (it also filled the map): no other kind of finding.
            assert!(findings.iter().all(|f| f["kind"] == "iterate_during_write"), "go{version}: {report:#}");
            assert_eq!(findings.len(), 1, "go{version}: {report:#}");
            let f = &findings[0];
            assert_eq!(f["map"], t["map"], "go{version}");
            assert_eq!(f["type"], "map[string]int", "go{version}");
            let (writer, iterator) = (&t["goids"][0], &t["goids"][1]);
            assert_eq!(f["goroutines"], serde_json::json!([iterator, writer]), "go{version}: the iterator, then the writer");
            assert_eq!(
                f["sites"],
                serde_json::json!([format!("main.iterator main.go:{}", t["iter_line"]), format!("main.writer main.go:{}", t["line"])]),
                "go{version}"
            );
            // Advice on a racy map: a bug, not a tuning question.
            let m = rows(&process(&report, t["pid"].as_u64().unwrap())["maps"], "addr", &t["map"]).clone();
            assert_eq!(m["advice"]["rule"], "bug", "go{version}: {m:#}");
            assert_eq!(m["advice"]["overlaps"], m["overlaps"], "go{version}: {m:#}");
            let gate = run(&["check", json.to_str().unwrap(), "--fail-on", "iterate-during-write"]);
            assert_eq!(gate.status.code(), Some(1), "go{version}");
            let msg = String::from_utf8_lossy(&gate.stderr);
            assert!(
                msg.contains("iterate_during_write") && msg.contains(&format!("main.go:{}", t["iter_line"])),
                "go{version}: {msg}"
            );
            // The same report passes a gate on another kind.
            let other = run(&["check", json.to_str().unwrap(), "--fail-on", "overlap"]);
            assert_eq!(other.status.code(), Some(0), "go{version}: {}", String::from_utf8_lossy(&other.stderr));
        }
    }
}

root_test! {
    fn iterations_are_counted_exactly_with_reads(name) {
        for version in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
            let bin = fixtures::build("iterracy", version, Variant::Plain).unwrap();
            for reads in [true, false] {
                let json = scratch(name).join(format!("report-{version}-{reads}.json"));
                let mut args = vec!["record", "--no-bpf-maps", "--json", json.to_str().unwrap()];
                if reads {
                    args.push("--reads");
                }
                args.extend(["--", bin.to_str().unwrap(), "-locked", "777"]);
                let out = run(&args);
                assert!(out.status.success(), "go{version}: {}", String::from_utf8_lossy(&out.stderr));
                let t = truth(&out.stdout);
                let report = read_json(&json);
                assert_valid_report(&report);
                let p = process(&report, t["pid"].as_u64().unwrap());
                let (writer, iterator) = (&t["goids"][0], &t["goids"][1]);
                let want = if reads { 777 } else { 0 };
                // Without --reads the iterator, which writes nothing, has no row.
                let it = p["goroutines"].as_array().unwrap().iter().find(|g| g["goid"] == *iterator);
                assert_eq!(it.map_or(0, |g| g["iterations"].as_u64().unwrap()), want, "go{version} reads={reads}");
                assert_eq!(it.is_some(), reads, "go{version} reads={reads}");
                assert_eq!(rows(&p["goroutines"], "goid", writer)["iterations"], 0, "go{version} reads={reads}");
                let m = rows(&p["maps"], "addr", &t["map"]);
                assert_eq!(m["iterations"], want, "go{version} reads={reads}");
                // 1000 to fill, 777 under the lock; the iterator is no writer.
                assert_eq!(m["writes"], 1777, "go{version} reads={reads}");
                assert_eq!(m["writers"], serde_json::json!([writer]), "go{version} reads={reads}");
                assert_eq!(report["findings"], serde_json::json!([]), "go{version} reads={reads}");
            }
        }
    }
}

root_test! {
    fn lengths_growth_and_advice_of_known_maps(name) {
        let bin = fixtures::build("health", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let (m, _) = start_mapaudit(&["record", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap()]);
        // The fixture prints its truth when every map has its final length,
        // and keeps them alive until stopped: mapaudit's last sample, at
        // the end of the recording, reads the final lengths.
        m.out.wait_for("the fixture's truth", DEADLINE, |l| l.contains("\"maps\""));
        m.signal(Signal::SIGINT);
        let done = m.wait();
        let t = done.truth();
        let report = read_json(&json);
        assert_valid_report(&report);
        let p = process(&report, t["pid"].as_u64().unwrap());
        let tm = |n: &str| t["maps"].as_array().unwrap().iter().find(|m| m["name"] == n).unwrap().clone();
        for name in ["grow", "band", "drained", "locked"] {
            let want = tm(name);
            let got = rows(&p["maps"], "addr", &want["addr"]);
            assert_eq!(got["len"]["last"], want["len"], "{name}: {got:#}");
            assert!(got["len"]["samples"].as_u64().unwrap() >= 8, "{name}: sampled while it moved: {got:#}");
        }
        let (grow, band, drained) = (tm("grow"), tm("band"), tm("drained"));
        // Monotonic growth peaks at its final length, a drained map bottoms
        // out at 0 (both seen by the last sample); the band's sampled
        // extremes depend on when samples fall, but never pass its top.
        assert_eq!(rows(&p["maps"], "addr", &grow["addr"])["len"]["max"], 8000);
        assert_eq!(rows(&p["maps"], "addr", &drained["addr"])["len"]["min"], 0);
        let b = &rows(&p["maps"], "addr", &band["addr"])["len"];
        assert!(b["max"].as_u64().unwrap() <= 2000, "{b:#}");
        // The growth finding on the growing map only.
        let growing: Vec<_> = report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "growing_map").collect();
        assert_eq!(growing.len(), 1, "{report:#}");
        let f = growing[0];
        assert_eq!(f["map"], grow["addr"]);
        assert_eq!(f["count"], 8000);
        assert_eq!(f["growth"]["last"], 8000);
        assert!(f["growth"]["slope_per_s"].as_f64().unwrap() > 0.0, "{f:#}");
        assert_eq!(f["growth"]["max_drop"], 0, "{f:#}");
        assert_eq!(f["growth"]["inserting_sites"], serde_json::json!([format!("main.owner main.go:{}", t["grow_line"])]));
        assert_eq!(f["growth"]["deleting_sites"], serde_json::json!([]));
        // Advice: one writer each for the three, four under one lock at a
        // high rate for the last.
        for name in ["grow", "band", "drained"] {
            assert_eq!(rows(&p["maps"], "addr", &tm(name)["addr"])["advice"]["rule"], "single_writer", "{name}");
        }
        let locked = rows(&p["maps"], "addr", &tm("locked")["addr"]);
        assert_eq!(locked["advice"]["rule"], "shard", "{locked:#}");
        assert_eq!(locked["advice"]["writers"], 4, "{locked:#}");
        // The gate names the growing map.
        let gate = run(&["check", json.to_str().unwrap(), "--fail-on", "growing-map"]);
        assert_eq!(gate.status.code(), Some(1));
        let msg = String::from_utf8_lossy(&gate.stderr);
        assert!(msg.contains("growing_map") && msg.contains(grow["addr"].as_str().unwrap()), "{msg}");
    }
}

root_test! {
    fn read_mostly_maps_get_read_mostly_advice_with_reads(name) {
        // `readers`: maps filled by main, then only read by one goroutine
        // each (read-mostly); `rw` read and written as often, one writer.
        let bin = fixtures::build("readers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = record(&["record", "--reads", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-n", "3000"]);
        out.assert_success("readers");
        let t = out.truth();
        let report = read_json(&json);
        assert_valid_report(&report);
        let p = process(&report, t["pid"].as_u64().unwrap());
        for m in t["maps"].as_array().unwrap() {
            let got = rows(&p["maps"], "addr", &m["addr"]);
            let (reads, writes) = (m["reads"].as_u64().unwrap(), m["writes"].as_u64().unwrap());
            let want = if reads >= 10 * writes { "read_mostly" } else { "single_writer" };
            assert_eq!(got["advice"]["rule"], want, "map {}: {got:#}", m["name"]);
            assert_eq!(got["advice"]["reads"], reads, "map {}", m["name"]);
            assert_eq!(got["advice"]["mutations"], writes, "map {}", m["name"]);
        }
        let rule = |n: &str| {
            let m = t["maps"].as_array().unwrap().iter().find(|m| m["name"] == n).unwrap();
            rows(&p["maps"], "addr", &m["addr"])["advice"]["rule"].clone()
        };
        // Both rules are exercised, not only one.
        assert_eq!(rule("str"), "read_mostly");
        assert_eq!(rule("rw"), "single_writer");
    }
}
