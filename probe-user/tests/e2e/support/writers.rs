//! The `writers` fixture's truth against a report: every goroutine, thread,
//! map, site and finding exactly as the fixture counted them.

use serde_json::Value;

use super::report::{line_of, process};

/// The report's goroutine rows that ran on thread `tid`, as JSON text (what
/// a thread's count that is not its goroutine's is made of).
pub fn on_thread(p: &Value, tid: &Value) -> String {
    let rows: Vec<&Value> =
        p["goroutines"].as_array().into_iter().flatten().filter(|g| g["tids"].as_array().is_some_and(|t| t.contains(tid))).collect();
    serde_json::to_string(&rows).unwrap_or_default()
}

/// Asserts the report matches the `writers` fixture's printed truth exactly.
pub fn assert_writers_truth(report: &Value, truth: &Value, ctx: &str) {
    let pid = truth["pid"].as_u64().expect("pid");
    let file = truth["file"].as_str().expect("file");
    let p = process(report, pid);
    let goid_of = |name: &str| {
        truth["goroutines"].as_array().unwrap().iter().find(|g| g["name"] == name).unwrap()["goid"].as_u64().unwrap()
    };
    for g in truth["goroutines"].as_array().expect("goroutines") {
        let goid = g["goid"].as_u64().unwrap();
        let rg = p["goroutines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["goid"] == goid)
            .unwrap_or_else(|| panic!("{ctx}: goroutine {goid} ({}) missing from report", g["name"]));
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rg[f], g[f], "{ctx}: goroutine {} {f}", g["name"]);
        }
        assert_eq!(rg["tids"], serde_json::json!([g["tid"]]), "{ctx}: goroutine {} tids", g["name"]);
        let created = format!("main.main main.go:{}", g["created_line"]);
        assert_eq!(rg["created_by"], created.as_str(), "{ctx}: goroutine {} created_by", g["name"]);
        let rt = p["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == g["tid"])
            .unwrap_or_else(|| panic!("{ctx}: thread {} missing", g["tid"]));
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rt[f], g[f], "{ctx}: thread of {} {f}: {rt}; goroutines on it: {}", g["name"], on_thread(p, &g["tid"]));
        }
    }
    for m in truth["maps"].as_array().expect("maps") {
        let rm = p["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["addr"] == m["addr"])
            .unwrap_or_else(|| panic!("{ctx}: map {} ({}) missing from report", m["addr"], m["name"]));
        assert_eq!(rm["type"], m["type"], "{ctx}: map {} type", m["name"]);
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rm[f], m[f], "{ctx}: map {} {f}", m["name"]);
        }
        let mut writers: Vec<u64> = m["writers"].as_array().unwrap().iter().map(|n| goid_of(n.as_str().unwrap())).collect();
        writers.sort();
        assert_eq!(rm["writers"], serde_json::json!(writers), "{ctx}: map {} writers", m["name"]);
        assert_eq!(rm["overlaps"], 0, "{ctx}: map {} overlaps", m["name"]);
    }
    // Sites: the strs map is written at exactly two lines of main.strWriter.
    let strs = truth["maps"].as_array().unwrap().iter().find(|m| m["name"] == "strs").unwrap();
    let rm = p["maps"].as_array().unwrap().iter().find(|x| x["addr"] == strs["addr"]).unwrap();
    let g = truth["goroutines"].as_array().unwrap().iter().find(|g| g["name"] == "str").unwrap();
    let expect = [
        (line_of(file, "// mapassign_faststr"), g["writes"].as_u64().unwrap()),
        (line_of(file, "// mapdelete_faststr"), g["deletes"].as_u64().unwrap()),
    ];
    let sites = rm["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{ctx}: strs sites {sites:?}");
    for (line, n) in expect {
        let s = sites.iter().find(|s| s["line"] == line).unwrap_or_else(|| panic!("{ctx}: no site at line {line}: {sites:?}"));
        assert_eq!(s["function"], "main.strWriter", "{ctx}");
        // Exactly the file name the runtime itself reports (absolute, or the
        // module path under -trimpath).
        assert_eq!(s["file"], file, "{ctx}");
        assert!(file.ends_with("writers/main.go"), "{ctx}: {file}");
        assert_eq!(s["writes"], n, "{ctx}: site line {line}");
    }
    // The mutex-protected shared map: a shared_map finding, no overlap.
    let shared = truth["maps"].as_array().unwrap().iter().find(|m| m["name"] == "shared").unwrap();
    let findings = report["findings"].as_array().unwrap();
    let f: Vec<_> = findings.iter().filter(|f| f["map"] == shared["addr"]).collect();
    assert_eq!(f.len(), 1, "{ctx}: findings for shared map: {f:?}");
    assert_eq!(f[0]["kind"], "shared_map", "{ctx}");
    let mut both = vec![goid_of("shared1"), goid_of("shared2")];
    both.sort();
    assert_eq!(f[0]["goroutines"], serde_json::json!(both), "{ctx}");
    assert!(!findings.iter().any(|f| f["kind"] == "overlapping_writes" && f["pid"] == pid), "{ctx}: unexpected overlap");
    assert_eq!(report["totals"]["lost_events"], 0, "{ctx}: lost events");
    assert_goids_plausible(p, ctx);
}

/// The goroutine ids of a real recording pass `sanity::check` (what the
/// collector should run on the first hits): guards the check against false
/// alarms on every build of the matrix.
pub fn assert_goids_plausible(process: &Value, ctx: &str) {
    use mapaudit::kernel::sanity::{self, Decoded, Sample, Verdict};
    let samples: Vec<Sample> = process["goroutines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| Sample {
            goid: g["goid"].as_u64().unwrap(),
            gopc: 0,
            creator: g["created_by"].as_str().and_then(|c| c.split(' ').next()).map(str::to_string),
        })
        .collect();
    let decoded = Decoded { goid_offset: 0, gopc_offset: 0, source: "the binary" };
    assert_eq!(sanity::check(&samples, decoded), Verdict::Plausible, "{ctx}: {:#}", process["goroutines"]);
}
