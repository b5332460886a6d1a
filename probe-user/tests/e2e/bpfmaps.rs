//! bpf(2) map writes, end to end: a process makes exactly known updates and
//! deletes to a kernel BPF map while `record` runs system-wide; the report
//! names the map (id, name), the writer's comm, and the exact counts.

use serde_json::Value;
use crate::support::*;

/// Records system-wide while the bpfwriter fixture makes its bpf(2) calls;
/// mapaudit is stopped while the fixture still holds its map open (it
/// waits for a second SIGUSR1), so the map resolves by id and name.
fn audit_bpfwriter(name: &str, fixture_args: &[&str]) -> (Value, Value, u32) {
    let fx = spawn_waiting(&fixture("bpfwriter"), fixture_args);
    let json = scratch(name).join("report.json");
    let (m, _) = start_mapaudit(&["record", "--json", s(&json)]);
    fx.go();
    let t: Value = serde_json::from_str(&fx.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
    let me = m.pid();
    m.signal(Signal::SIGINT);
    let st = m.wait();
    assert_eq!(st.code(), Some(130), "{}", st.stderr);
    fx.go();
    fx.wait().assert_success("bpfwriter");
    (read_json(&json), t, me)
}

fn rows_for<'a>(report: &'a Value, truth: &Value) -> Vec<&'a Value> {
    report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["pid"] == truth["pid"]).collect()
}

/// The fixture's one row, field by field against what it counted.
fn assert_row(report: &Value, t: &Value) {
    let rows = rows_for(report, t);
    // On failure, every row and how fds were named: a missing row says
    // more next to the others (another pid? no rows at all?).
    assert_eq!(
        rows.len(),
        1,
        "one writer thread (locked), one map, for pid {}: {rows:#?}\nall rows: {:#}\nresolution: {:#}\nlost: {:#}",
        t["pid"],
        report["bpf_maps"],
        report["diagnostics"]["bpf_map_resolution"],
        report["lost"]
    );
    let r = rows[0];
    for f in ["tid", "map_id", "map_name", "comm", "updates", "deletes", "update_calls", "delete_calls"] {
        assert_eq!(r[f], t[f], "{f}: {r:#}");
    }
    assert_eq!(r["map_type"], "hash");
}

root_test! {
    fn bpf_map_updates_and_deletes_are_counted_exactly(name) {
        let (report, t, mapaudit_pid) = audit_bpfwriter(name, &["-updates", "10", "-deletes", "3"]);
        assert_row(&report, &t);
        assert_eq!((&t["updates"], &t["deletes"]), (&10.into(), &3.into()), "the fixture did what it was asked");
        // mapaudit's own bpf(2) calls (it reads its maps every tick) are excluded.
        assert!(!report["bpf_maps"].as_array().unwrap().iter().any(|r| r["pid"] == mapaudit_pid));
    }
}

root_test! {
    fn bpf_map_batch_updates_count_elements(name) {
        let (report, t, _) = audit_bpfwriter(name, &["-updates", "4", "-deletes", "2", "-batch", "5"]);
        assert_row(&report, &t);
        // A batch counts its elements as updates and itself as one call.
        assert_eq!((&t["updates"], &t["update_calls"]), (&9.into(), &5.into()), "the kernel processed the whole batch");
    }
}
