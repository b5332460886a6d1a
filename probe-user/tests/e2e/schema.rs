//! The published JSON Schema and the report the code builds agree (no root).

use mapaudit::model::{MapId, Location, Model, OverlapEvent};
use probe_common::uprobe::{WriteKey, routine};

user_test! {
    fn built_reports_validate_against_the_published_schema(_) {
        let mut m = Model::new();
        let k = |goid, pc, r| WriteKey { pid: 9, tid: 10, goid, map: 0xc0001, pc, routine: r, _pad: [0; 3], inst: 0 };
        m.set_counts([(k(1, 0x10, routine::MAPASSIGN), 5), (k(2, 0x20, routine::MAPCLEAR), 1)]);
        m.names.sites.insert((9, 0x10), Location { function: "main.f".into(), file: "/a/main.go".into(), line: 3 });
        m.add_overlap(OverlapEvent { pid: 9, map: MapId { addr: 0xc0001, inst: 0 }, goid: 2, tid: 10, site: None, other_goid: Some(1), other_tid: None, other_site: None, ktime_ns: 0, by_go_runtime: false, read: false, pc: 0 });
        m.tick(std::time::Duration::from_secs(1));
        let r = mapaudit::report::build(&m, "2026-11-22T00:00:00Z", 1.0);
        crate::support::assert_valid_report(&serde_json::to_value(&r).unwrap());
    }
}

user_test! {
    fn the_schema_rejects_a_renamed_field(_) {
        let mut v = serde_json::to_value(mapaudit::report::build(&Model::new(), "t", 0.0)).unwrap();
        crate::support::assert_valid_report(&v);
        let totals = v["totals"].take();
        v["total"] = totals;
        let errors = crate::support::report::schema_errors(&v);
        assert!(errors.iter().any(|e| e.contains("totals")), "a report without `totals` must be rejected: {errors:#?}");
    }
}
