//! The target never notices: the soak fixture (deep recursion with stack
//! copying, heavy GC, 10,000 goroutines writing maps) prints the same digest
//! and exits the same way probed as unprobed — plain and PIE builds.
//! `cargo xtask soak` runs the long version (≥ 60 s each); CI runs this one.

use std::process::Command;

use crate::support::*;

/// Scale of the work; `MAPAUDIT_SOAK_SCALE` raises it for `cargo xtask soak`.
fn scale() -> String {
    std::env::var("MAPAUDIT_SOAK_SCALE").unwrap_or_else(|_| "1".into())
}

fn soak(variant: Variant) {
    let name = format!("soak_{}", variant.name());
    let bin = fixtures::build("soak", fixtures::GO_NEWEST, variant).unwrap();
    let scale = scale();
    let plain = Command::new(&bin).args(["-scale", &scale]).output().unwrap();
    assert!(plain.status.success());
    let json = scratch(&name).join("r.json");
    let t = std::time::Instant::now();
    // 10,000 goroutines each make a new counter key (one event each) within
    // milliseconds: a larger ring keeps a busy CI machine from dropping them.
    let probed = run(&["record", "--no-bpf-maps", "--ringbuf-kib", "16384", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-scale", &scale]);
    eprintln!("{name}: probed run took {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(probed.status.code(), plain.status.code(), "{}", String::from_utf8_lossy(&probed.stderr));
    assert_eq!(String::from_utf8_lossy(&probed.stdout), String::from_utf8_lossy(&plain.stdout), "output differs under probes");
    assert!(String::from_utf8_lossy(&plain.stdout).contains("gc_ran=true"));
    let r = read_json(&json);
    // The 10,000 goroutines' writes, as the fixture counted them: every
    // one in the classes of the maps written at the sites of many's goroutine closure
    // (the report keeps the busiest instances as rows, the classes count all).
    let stdout = String::from_utf8_lossy(&plain.stdout);
    let many: u64 = stdout.split_whitespace().find_map(|w| w.strip_prefix("many_writes=")).and_then(|n| n.parse().ok()).expect("many_writes in the output");
    let classes: u64 = r["processes"][0]["map_classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["site"].as_str().is_some_and(|s| s.starts_with("main.many.func")))
        .map(|c| c["writes"].as_u64().unwrap())
        .sum();
    assert_eq!(classes, many, "{:#}", r["processes"][0]["map_classes"]);
    // The recursion's writes run on stacks that grew and moved: each level
    // wrote once per round, nothing double counted.
    let deep: u64 = r["processes"][0]["maps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["sites"].as_array().unwrap().iter())
        .filter(|s| s["function"] == "main.recurse")
        .map(|s| s["writes"].as_u64().unwrap())
        .sum();
    assert_eq!(deep, 20_001 * scale.parse::<u64>().unwrap());
    // Counts are exact: no write went uncounted and no read failed. Dropped
    // events (names only) may happen under load and are counted.
    let lost = &r["lost"];
    assert_eq!(lost["writes_map_full"], 0, "{lost}");
    assert_eq!(lost["read_failed"], 0, "{lost}");
}

root_test! {
    fn soak_plain(_) {
        soak(Variant::Plain);
    }
}

root_test! {
    fn soak_pie(_) {
        soak(Variant::Pie);
    }
}
