//! `--max-overhead`: the probes are duty-cycled (detached part of the time)
//! and the report says the counts are sampled and scaled. Accuracy and the
//! overhead achieved are measured by `cargo xtask bench`, not asserted here.

use crate::support::*;

root_test! {
    fn max_overhead_duty_cycles_and_reports_sampling(name) {
        let bench = fixtures::build("bench", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("r.json");
        let out = run(&["record", "--max-overhead", "2%", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--", bench.to_str().unwrap(), "-g", "4", "-n", "6000000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let truth = truth(&out.stdout)["writes"].as_u64().unwrap();
        let r = read_json(&json);
        let s = &r["sampling"];
        assert_eq!(s["scaled"], true, "{r:#}");
        assert_eq!(s["budget"], 0.02);
        assert!(s["probe_cost_ns"].as_u64().unwrap() > 0, "calibrated");
        let duty = s["duty_cycle"].as_f64().unwrap();
        assert!(duty > 0.0 && duty < 1.0, "the probes were detached part of the time: {duty}");
        let observed = s["observed_writes"].as_u64().unwrap();
        assert!(observed < truth, "detached stretches were not observed: {observed} of {truth}");
        // The uncertainty is more than sampling noise: the probes' load on this
        // hot loop makes the inversion sensitive to the cost per hit.
        let err = s["relative_error"].as_f64().unwrap();
        assert!(err > 1.0 / (observed as f64).sqrt() * 1.5, "relative_error {err} for {observed} observed");
        let scale = s["scale"].as_f64().unwrap();
        assert!(scale > 1.0);
        let total = r["totals"]["writes"].as_u64().unwrap() + r["totals"]["deletes"].as_u64().unwrap();
        assert!((total as f64 - observed as f64 * scale).abs() <= 2.0, "totals are the observed counts scaled");
    }
}
