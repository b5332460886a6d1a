//! `--max-overhead`: the probes are duty-cycled (detached part of the time)
//! and the report says the counts are sampled and scaled, within the error
//! it states on a workload the budget is meant for. The overhead achieved
//! is measured by `cargo xtask bench`, not asserted here.

use crate::support::*;

root_test! {
    fn max_overhead_duty_cycles_and_reports_sampling(name) {
        let bench = fixtures::build("bench", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("r.json");
        let out = run(&["record", "--max-overhead", "2%", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bench.to_str().unwrap(), "-g", "4", "-n", "6000000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let t = truth(&out.stdout);
        let truth = t["writes"].as_u64().unwrap();
        let r = read_json(&json);
        let s = &r["sampling"];
        assert_eq!(s["scaled"], true, "{r:#}");
        assert_eq!(s["budget"], 0.02);
        assert!(s["probe_cost_ns"].as_u64().unwrap() > 0, "calibrated");
        let duty = s["duty_cycle"].as_f64().unwrap();
        assert!(duty > 0.0 && duty < 1.0, "the probes were detached part of the time: {duty}");
        let observed = s["observed_writes"].as_u64().unwrap();
        assert!(observed < truth, "detached stretches were not observed: {observed} of {truth}");
        // On this hot loop the probes' own load makes the estimate coarse
        // (the README says to record exactly instead); the claim is tested
        // on a light workload below.
        let err = s["relative_error"].as_f64().unwrap();
        assert!(err > 0.0, "relative_error {err}");
    }

    /// The claim, where the budget is meant to be used (arithmetic between
    /// writes): the scaled count of the fixture's own map is its true count
    /// within the error the report states.
    #[ignore = "not yet trusted in CI: before the variation term it was 6-12 % off for a stated 3.5-4.5 % on a quiet machine; with it, 9 of 9 runs within the stated error on a loaded one (margins down to 0.3 points, 2026-11-29), not yet run on a quiet one"]
    fn max_overhead_scaled_count_within_its_stated_error(name) {
        let bench = fixtures::build("bench", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(&format!("{name}_light")).join("r.json");
        let out = record(&["record", "--max-overhead", "2%", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bench.to_str().unwrap(), "-g", "4", "-n", "30000", "-work", "20000"]);
        out.assert_success("record --max-overhead, light workload");
        let t = out.truth();
        let truth = t["writes"].as_f64().unwrap();
        let r = read_json(&json);
        let sm = &r["sampling"];
        assert_eq!(sm["scaled"], true, "{r:#}");
        let err = sm["relative_error"].as_f64().unwrap();
        let scaled = find(&r["processes"][0]["maps"], "addr", &t["map"])["writes"].as_f64().unwrap();
        let off = (scaled - truth).abs() / truth;
        assert!(off <= err, "scaled {scaled} vs true {truth}: {:.1} % off, reported error {:.1} %", off * 100.0, err * 100.0);
    }
}
