//! bpf(2) map writes, end to end: a process makes exactly known updates and
//! deletes to a kernel BPF map while `record` runs system-wide; the report
//! names the map (id, name), the writer's comm, and the exact counts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

fn audit_bpfwriter(name: &str, fixture_args: &[&str]) -> (Value, Value, u32) {
    let bin = fixtures::build("bpfwriter", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    let mut fx = Command::new(bin).args(fixture_args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(fx.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "fixture: {line}");
    let json = scratch(name).join("report.json");
    let mut m = Command::new(mapaudit_bin())
        .args(["record", "--duration", "3s", "--json", json.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut merr = BufReader::new(m.stderr.take().unwrap());
    loop {
        let mut l = String::new();
        assert!(merr.read_line(&mut l).unwrap() > 0, "mapaudit exited before recording");
        if l.contains("recording") {
            break;
        }
    }
    // SAFETY: kill(2).
    unsafe { libc::kill(fx.id() as i32, libc::SIGUSR1) };
    let out = fx.wait_with_output().unwrap();
    assert!(out.status.success(), "fixture failed: {}", String::from_utf8_lossy(&out.stderr));
    let me = m.id();
    assert!(m.wait().unwrap().success());
    (read_json(&json), truth(&out.stdout), me)
}

fn rows_for<'a>(report: &'a Value, truth: &Value) -> Vec<&'a Value> {
    report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["pid"] == truth["pid"]).collect()
}

#[test]
fn bpf_map_updates_and_deletes_are_counted_exactly() {
    let name = "bpf_map_updates_and_deletes_are_counted_exactly";
    if !root_or_skip(name) {
        return;
    }
    let (report, t, mapaudit_pid) = audit_bpfwriter(name, &["-updates", "10", "-deletes", "3"]);
    let rows = rows_for(&report, &t);
    assert_eq!(rows.len(), 1, "one writer thread, one map: {rows:#?}");
    let r = rows[0];
    assert_eq!(r["map_id"], t["map_id"]);
    assert_eq!(r["map_name"], "mapaudit_fx");
    assert_eq!(r["map_type"], "hash");
    assert_eq!(r["comm"], "bpfwriter");
    assert_eq!(r["updates"], 10);
    assert_eq!(r["deletes"], 3);
    assert_eq!(r["update_calls"], 10);
    assert_eq!(r["delete_calls"], 3);
    // mapaudit's own bpf(2) calls (it reads its maps every tick) are excluded.
    assert!(!report["bpf_maps"].as_array().unwrap().iter().any(|r| r["pid"] == mapaudit_pid));
}

#[test]
fn bpf_map_batch_updates_count_elements() {
    let name = "bpf_map_batch_updates_count_elements";
    if !root_or_skip(name) {
        return;
    }
    let (report, t, _) = audit_bpfwriter(name, &["-updates", "4", "-deletes", "2", "-batch", "5"]);
    let rows = rows_for(&report, &t);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["updates"], t["updates"]);
    assert_eq!(rows[0]["updates"], 9);
    assert_eq!(rows[0]["update_calls"], 5);
    assert_eq!(rows[0]["deletes"], 2);
}
