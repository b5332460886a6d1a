//! The published JSON Schema and the report the code builds agree (no root).

use mapaudit::model::{MapId, Location, Model, OverlapEvent};
use probe_common::uprobe::{WriteKey, routine};

user_test! {
    fn built_reports_validate_against_the_published_schema(_) {
        let mut m = Model::new();
        let k = |goid, pc, r| WriteKey { pid: 9, tid: 10, goid, map: 0xc0001, pc, routine: r, _pad: [0; 3], inst: 0 };
        m.set_counts([(k(1, 0x10, routine::MAPASSIGN), 5), (k(2, 0x20, routine::MAPCLEAR), 1)]);
        m.names.sites.insert((9, 0x10), Location { function: "main.f".into(), file: "/a/main.go".into(), line: 3 });
        m.add_overlap(OverlapEvent { pid: 9, map: MapId { addr: 0xc0001, inst: 0 }, goid: 2, tid: 10, site: None, other_goid: Some(1), other_tid: None, other_site: None, ktime_ns: 0, by_go_runtime: false, read: false, iter: false, pc: 0 });
        m.tick(std::time::Duration::from_secs(1));
        let r = mapaudit::output::report::build(&m, "2026-11-22T00:00:00Z", 1.0);
        crate::support::assert_valid_report(&serde_json::to_value(&r).unwrap());
    }
}

user_test! {
    fn the_schema_rejects_a_renamed_field(_) {
        let mut v = serde_json::to_value(mapaudit::output::report::build(&Model::new(), "t", 0.0)).unwrap();
        crate::support::assert_valid_report(&v);
        let totals = v["totals"].take();
        v["total"] = totals;
        let errors = crate::support::report::schema_errors(&v);
        assert!(errors.iter().any(|e| e.contains("totals")), "a report without `totals` must be rejected: {errors:#?}");
    }
}

/// A report with a process, a goroutine, a map and a finding, as built by
/// the code (the same as the first test's).
fn built_report() -> serde_json::Value {
    let mut m = Model::new();
    let k = |goid, pc, r| WriteKey { pid: 9, tid: 10, goid, map: 0xc0001, pc, routine: r, _pad: [0; 3], inst: 0 };
    m.set_counts([(k(1, 0x10, routine::MAPASSIGN), 5), (k(2, 0x20, routine::MAPCLEAR), 1)]);
    m.names.sites.insert((9, 0x10), Location { function: "main.f".into(), file: "/a/main.go".into(), line: 3 });
    m.add_overlap(OverlapEvent { pid: 9, map: MapId { addr: 0xc0001, inst: 0 }, goid: 2, tid: 10, site: None, other_goid: Some(1), other_tid: None, other_site: None, ktime_ns: 0, by_go_runtime: false, read: false, iter: false, pc: 0 });
    m.tick(std::time::Duration::from_secs(1));
    serde_json::to_value(mapaudit::output::report::build(&m, "2026-11-22T00:00:00Z", 1.0)).unwrap()
}

/// Asserts the schema rejects `v`, naming `what` in an error.
fn rejected(v: &serde_json::Value, what: &str) {
    let errors = crate::support::report::schema_errors(v);
    assert!(errors.iter().any(|e| e.contains(what)), "expected an error naming {what:?}, got {errors:#?}");
}

user_test! {
    /// The contract is closed: a field the schema does not describe is an
    /// error at every level, and every top-level field is always written.
    fn the_schema_rejects_unknown_fields_and_missing_always_written_ones(_) {
        let good = built_report();
        crate::support::assert_valid_report(&good);
        assert!(!good["processes"][0]["goroutines"].as_array().unwrap().is_empty(), "{good:#}");
        assert!(!good["findings"].as_array().unwrap().is_empty(), "{good:#}");
        for path in ["", "/totals", "/processes/0", "/processes/0/goroutines/0", "/processes/0/maps/0", "/findings/0"] {
            let mut v = good.clone();
            v.pointer_mut(path).unwrap().as_object_mut().unwrap().insert("not_in_the_contract".into(), 1.into());
            rejected(&v, "not_in_the_contract");
        }
        for field in ["reads_probed", "lost", "sampling", "diagnostics", "warnings", "bpf_maps"] {
            let mut v = good.clone();
            v.as_object_mut().unwrap().remove(field);
            rejected(&v, field);
        }
    }

    /// Wrong types and values are errors too.
    fn the_schema_rejects_wrong_types(_) {
        let good = built_report();
        let mut v = good.clone();
        v["totals"]["writes"] = "5".into();
        rejected(&v, "/totals/writes");
        let mut v = good.clone();
        v["processes"][0]["goroutines"][0]["goid"] = (-1).into();
        rejected(&v, "/processes/0/goroutines/0/goid");
        let mut v = good;
        v["duration_s"] = serde_json::Value::Null;
        rejected(&v, "/duration_s");
    }
}
