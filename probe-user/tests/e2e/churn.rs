//! Real programs at real scale: per-request maps and goroutines, addresses
//! reused by the allocator and the stack pool. Counts stay exact, nothing
//! is lost, and a map one goroutine writes is never "shared" because
//! another map lived at its address before.

use serde_json::Value;
use crate::support::*;

fn source(name: &str) -> String {
    fixtures::workspace_root().join("fixtures/go").join(name).join("main.go").display().to_string()
}

/// Writes per `main.go` line of the fixture over every map of the report,
/// and the instances (map rows) written there.
fn per_line(p: &Value) -> std::collections::BTreeMap<u64, (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for m in p["maps"].as_array().unwrap() {
        for s in m["sites"].as_array().unwrap() {
            if s["file"].as_str().is_some_and(|f| f.ends_with("/main.go")) {
                let e = out.entry(s["line"].as_u64().unwrap()).or_insert((0, 0));
                e.0 += s["writes"].as_u64().unwrap();
                e.1 += 1;
            }
        }
    }
    out
}

fn class_at<'a>(p: &'a Value, site: &str) -> &'a Value {
    p["map_classes"].as_array().unwrap().iter().find(|c| c["site"] == site).unwrap_or_else(|| panic!("no class at {site}: {:#}", p["map_classes"]))
}

fn churn(name: &str, extra: &[&str]) -> (Value, Value) {
    let bin = fixtures::build("churn", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    let json = scratch(name).join("r.json");
    let mut args = vec!["record", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-n", "10000"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = truth(&out.stdout);
    assert_eq!(t["requests"], 10000, "the fixture served every request: {t}");
    assert_eq!(t["failed"], 0);
    (read_json(&json), t)
}

/// The checks both connection modes share; returns the fixture's process.
fn assert_churn<'a>(r: &'a Value, t: &Value) -> &'a Value {
    let src = source("churn");
    let (heap, stack, cache) = (line_of(&src, "// SITE:heap"), line_of(&src, "// SITE:stack"), line_of(&src, "// SITE:cache"));
    assert_eq!(r["totals"]["lost_events"], 0, "nothing lost: {:#}", r["lost"]);
    let p = &r["processes"][0];
    let lines = per_line(p);
    // Each kind of per-request map keeps its busiest instances as rows; the
    // others are in its class (the report would list 10,000 of each).
    assert!(lines[&heap].1 <= 100 && lines[&stack].1 <= 100, "{lines:?}");
    assert_eq!(lines[&cache], (t["cache"].as_u64().unwrap(), 1), "writes to the one cache");
    assert!(r["diagnostics"]["folded_map_rows"].as_u64().unwrap() > 0);

    let findings = r["findings"].as_array().unwrap();
    assert!(!findings.iter().any(|f| f["kind"] == "overlapping_writes"), "no overlap: {findings:#?}");
    let at = |line: u64| format!("main.go:{line}");
    for line in [heap, stack] {
        let false_ones: Vec<_> = findings.iter().filter(|f| f["sites"].to_string().contains(&at(line))).collect();
        assert!(false_ones.is_empty(), "per-request maps written by one goroutine each are not shared: {false_ones:#?}");
    }
    let shared: Vec<_> = findings.iter().filter(|f| f["sites"].to_string().contains(&at(cache))).collect();
    assert_eq!(shared.len(), 1, "{shared:#?}");
    assert_eq!(shared[0]["kind"], "shared_map");
    assert_eq!(shared[0]["type"], "map[string]int");
    assert_eq!(shared[0]["instances"], 1);
    assert_eq!(shared[0]["sites"], serde_json::json!([format!("main.handler.func1 main.go:{cache}")]));
    assert!(shared[0]["goroutines"].as_array().unwrap().len() > 1);
    // Classes: every per-request map counted in its class.
    let c = class_at(p, &format!("main.fillHeap main.go:{heap}"));
    assert_eq!((c["type"].as_str(), c["writes"].as_u64(), c["shared_instances"].as_u64()), (Some("map[string]int"), t["heap"].as_u64(), Some(0)));
    let c = class_at(p, &format!("main.fillStack main.go:{stack}"));
    assert_eq!((c["type"].as_str(), c["writes"].as_u64(), c["shared_instances"].as_u64()), (Some("map[int]int"), t["stack"].as_u64(), Some(0)));
    p
}

root_test! {
    fn net_http_with_a_connection_per_request(name) {
        let (r, t) = churn(name, &[]);
        let p = assert_churn(&r, &t);
        // A new server goroutine per request: each per-request map is its own
        // instance, at whatever address it got.
        let src = source("churn");
        let (heap, stack) = (line_of(&src, "// SITE:heap"), line_of(&src, "// SITE:stack"));
        assert_eq!(class_at(p, &format!("main.fillHeap main.go:{heap}"))["instances"], 10000);
        assert_eq!(class_at(p, &format!("main.fillStack main.go:{stack}"))["instances"], 10000);
    }
}

root_test! {
    fn net_http_keep_alive(name) {
        let (r, t) = churn(name, &["-keepalive"]);
        assert_churn(&r, &t);
    }
}

root_test! {
    fn reused_addresses_are_new_maps(name) {
        let bin = fixtures::build("reuse", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        for go in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
            let bin = if go == fixtures::GO_NEWEST { bin.clone() } else { fixtures::build("reuse", go, Variant::Plain).unwrap() };
            let json = scratch(&format!("{name}_{go}")).join("r.json");
            let out = run(&["record", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let t = truth(&out.stdout);
            let r = read_json(&json);
            assert_eq!(r["totals"]["lost_events"], 0, "Go {go}");
            let src = source("reuse");
            let (heap, stack) = (line_of(&src, "// SITE:heap"), line_of(&src, "// SITE:stack"));
            let p = &r["processes"][0];
            // 200 of each kind: the report keeps the busiest 100 as rows, the
            // class counts them all.
            let lines = per_line(p);
            assert_eq!(lines[&heap].1, 100, "Go {go}: heap rows kept");
            assert_eq!(lines[&stack].1, 100, "Go {go}: stack rows kept");
            let c = class_at(p, &format!("main.heapRound main.go:{heap}"));
            assert_eq!((&c["instances"], &c["writes"]), (&t["heap_maps"], &t["heap_writes"]), "Go {go}");
            let c = class_at(p, &format!("main.stackRound main.go:{stack}"));
            assert_eq!((&c["instances"], &c["writes"]), (&t["stack_maps"], &t["stack_writes"]), "Go {go}");
            let findings = r["findings"].as_array().unwrap();
            assert!(findings.is_empty(), "Go {go}: every map had one writer: {findings:#?}");
            // Of the 200 heap maps kept as rows, few addresses: they were reused.
            let addrs: std::collections::BTreeSet<&str> =
                p["maps"].as_array().unwrap().iter().filter(|m| m["type"] == "map[string]int").map(|m| m["addr"].as_str().unwrap()).collect();
            assert!(addrs.len() < 50, "Go {go}: addresses were reused ({} distinct among 100 rows)", addrs.len());
        }
    }
}
