//! `--reads`, end to end: every lookup routine counted exactly, per
//! goroutine, thread and map, on every Go of the matrix (the newest's
//! `mapaccess1_*` are wrappers around `mapaccess2_*`: one read must count
//! once); readers never become writers; an unsynchronised
//! read during a write is a `read_during_write` naming both goroutines.

use serde_json::Value;
use crate::support::*;

fn record_readers(name: &str, version: &str, variant: Variant, extra: &[&str]) -> (Value, Value, std::path::PathBuf) {
    let bin = fixtures::build("readers", version, variant).unwrap();
    let json = scratch(name).join("report.json");
    let mut args = vec!["record", "--no-bpf-maps", "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(["--", bin.to_str().unwrap(), "-n", "3000"]);
    let out = run(&args);
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    let report = read_json(&json);
    assert_valid_report(&report);
    (report, truth(&out.stdout), json)
}

fn find<'a>(rows: &'a Value, field: &str, v: &Value) -> &'a Value {
    rows.as_array().unwrap().iter().find(|r| r[field] == *v).unwrap_or_else(|| panic!("no row with {field} = {v}"))
}

root_test! {
    fn reads_are_counted_exactly_per_goroutine_thread_and_map(_) {
        // Every version of the matrix, and the newest stripped PIE.
        let builds = fixtures::GO_VERSIONS.iter().map(|v| (*v, Variant::Plain)).chain([(fixtures::GO_NEWEST, Variant::PieStripped)]);
        for (version, variant) in builds {
            let ctx = format!("go{version} {}", variant.name());
            let (report, t, _) = record_readers(&format!("reads_exact_{version}_{}", variant.name()), version, variant, &["--reads"]);
            assert_eq!(report["reads_probed"], true, "{ctx}");
            let p = process(&report, t["pid"].as_u64().unwrap());
            let mut worker_reads = 0;
            for g in t["goroutines"].as_array().unwrap() {
                let rg = find(&p["goroutines"], "goid", &g["goid"]);
                assert_eq!(rg["reads"], g["reads"], "{ctx}: goroutine {} reads", g["name"]);
                assert_eq!(rg["writes"], g["writes"], "{ctx}: goroutine {} writes", g["name"]);
                assert_eq!(rg["tids"], serde_json::json!([g["tid"]]), "{ctx}: goroutine {} tids", g["name"]);
                let rt = find(&p["threads"], "tid", &g["tid"]);
                assert_eq!(rt["reads"], g["reads"], "{ctx}: thread of {} reads: {rt}; goroutines on it: {}", g["name"], on_thread(p, &g["tid"]));
                worker_reads += g["reads"].as_u64().unwrap();
            }
            for m in t["maps"].as_array().unwrap() {
                let rm = find(&p["maps"], "addr", &m["addr"]);
                assert_eq!(rm["type"], m["type"], "{ctx}: map {} type", m["name"]);
                assert_eq!(rm["reads"], m["reads"], "{ctx}: map {} reads", m["name"]);
                assert_eq!(rm["writes"], m["writes"], "{ctx}: map {} writes", m["name"]);
                assert_eq!(rm["overlaps"], 0, "{ctx}: map {} overlaps", m["name"]);
            }
            // Readers are not writers: the RWMutex map has exactly one writer,
            // so no finding of any kind.
            let rw = find(&t["maps"], "name", &"rw".into());
            let writer = find(&t["goroutines"], "name", &"rwwriter".into());
            assert_eq!(find(&p["maps"], "addr", &rw["addr"])["writers"], serde_json::json!([writer["goid"]]), "{ctx}");
            assert_eq!(report["findings"], serde_json::json!([]), "{ctx}");
            // Every read in the process is a worker's, or main's (runtime
            // start-up and JSON printing): never fewer than the workers made.
            assert!(report["totals"]["reads"].as_u64().unwrap() >= worker_reads, "{ctx}");
        }
    }
}

root_test! {
    fn without_reads_nothing_is_read_and_the_gate_says_it_cannot_tell(_) {
        let (report, t, json) = record_readers("without_reads", fixtures::GO_NEWEST, Variant::Plain, &[]);
        assert_eq!(report["reads_probed"], false);
        assert_eq!(report["totals"]["reads"], 0);
        let p = process(&report, t["pid"].as_u64().unwrap());
        for g in p["goroutines"].as_array().unwrap() {
            assert_eq!(g["reads"], 0);
        }
        // Writes are still exact.
        for m in t["maps"].as_array().unwrap() {
            assert_eq!(find(&p["maps"], "addr", &m["addr"])["writes"], m["writes"], "map {}", m["name"]);
        }
        let gate = run(&["check", json.to_str().unwrap(), "--fail-on", "read-during-write"]);
        assert_eq!(gate.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&gate.stderr).contains("--reads"), "{}", String::from_utf8_lossy(&gate.stderr));
    }
}

root_test! {
    fn read_during_write_names_the_reader_and_the_writer(name) {
        for version in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
            let bin = fixtures::build("racy", version, Variant::Plain).unwrap();
            let json = scratch(name).join(format!("report-{version}.json"));
            let out = run(&["record", "--reads", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-read"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "go{version}: {stderr}");
            assert!(stderr.contains("concurrent map read and map write"), "go{version}: the fixture should have crashed: {stderr}");
            let t = truth(&out.stdout);
            let report = read_json(&json);
            assert_valid_report(&report);
            let rdw: Vec<_> =
                report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == "read_during_write").collect();
            assert_eq!(rdw.len(), 1, "go{version}: {report:#}");
            let f = rdw[0];
            assert_eq!(f["map"], t["map"]);
            assert_eq!(f["type"], "map[string]int");
            let (writer, reader) = (&t["goids"][0], &t["goids"][1]);
            assert_eq!(f["goroutines"], serde_json::json!([reader, writer]), "go{version}: the reader, then the writer");
            assert_eq!(
                f["sites"],
                serde_json::json!([format!("main.reader main.go:{}", t["read_line"]), format!("main.racer main.go:{}", t["line"])]),
                "go{version}"
            );
            // One writer: not an overlapping write, not a shared map.
            assert!(report["findings"].as_array().unwrap().iter().all(|f| f["kind"] == "read_during_write"), "{report:#}");
            let gate = run(&["check", json.to_str().unwrap(), "--fail-on", "read-during-write"]);
            assert_eq!(gate.status.code(), Some(1));
            let msg = String::from_utf8_lossy(&gate.stderr);
            assert!(msg.contains("read_during_write") && msg.contains(&format!("main.go:{}", t["read_line"])), "{msg}");
        }
    }
}
