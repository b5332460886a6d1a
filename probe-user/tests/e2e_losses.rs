//! Nothing is lost silently: with deliberately tiny kernel tables, what
//! could not be recorded is counted exactly, reported, and fails a
//! `--max-lost-events 0` gate.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

fn bench_fixture() -> String {
    fixtures::build("bench", fixtures::GO_NEWEST, Variant::Plain).unwrap().display().to_string()
}

fn record_bench(name: &str, extra: &[&str]) -> Value {
    let json = scratch(name).join("r.json");
    let mut args = vec!["record", "--no-bpf-maps", "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    let fx = bench_fixture();
    args.extend_from_slice(&["--", &fx, "-g", "8", "-n", "300"]);
    let out = run(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_json(&json)
}

#[test]
fn writes_beyond_a_full_counter_table_are_counted_exactly() {
    let name = "writes_beyond_a_full_counter_table";
    if !root_or_skip(name) {
        return;
    }
    let full = record_bench(&format!("{name}_ref"), &[]);
    let total = full["totals"]["writes"].as_u64().unwrap();
    assert!(total >= 2400);
    assert_eq!(full["totals"]["lost_events"], 0);

    let tiny = record_bench(name, &["--max-entries", "3"]);
    let counted = tiny["totals"]["writes"].as_u64().unwrap();
    let lost = tiny["lost"]["writes_map_full"].as_u64().unwrap();
    assert!(lost > 0, "a 3-entry table must overflow");
    assert_eq!(counted + lost, total, "every write is either counted or counted as lost");
    assert_eq!(tiny["diagnostics"]["counter_keys"], 3);
    assert!(tiny["totals"]["lost_events"].as_u64().unwrap() >= lost);

    let json = scratch(&format!("{name}_gate")).join("tiny.json");
    std::fs::write(&json, serde_json::to_vec(&tiny).unwrap()).unwrap();
    let gate = run(&["check", json.to_str().unwrap(), "--max-lost-events", "0"]);
    assert_eq!(gate.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gate.stderr).contains("lost"));
}

#[test]
fn events_beyond_a_full_ring_buffer_are_counted_exactly() {
    let name = "events_beyond_a_full_ring_buffer";
    if !root_or_skip(name) {
        return;
    }
    // Counter keys send no events (their names travel in the counters), so
    // the ring is filled with what does: each of 300 children the target
    // runs sends an exec and an exit event; a 4 KiB ring holds ~100, and
    // nothing is drained until the end.
    const CHILDREN: u64 = 300;
    let mut fx = Command::new(bench_fixture())
        .args(["-g", "4", "-n", "50", "-spawn", &CHILDREN.to_string(), "-wait-signal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(fx.stderr.take().unwrap());
    let mut l = String::new();
    err.read_line(&mut l).unwrap();
    let json = scratch(name).join("r.json");
    let mut m = Command::new(mapaudit_bin())
        .args(["record", "--no-bpf-maps", "--ringbuf-kib", "4", "--debug-drain-at-exit", "--pid", &fx.id().to_string(), "--json"])
        .arg(&json)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut merr = BufReader::new(m.stderr.take().unwrap());
    loop {
        let mut l = String::new();
        assert!(merr.read_line(&mut l).unwrap() > 0);
        if l.contains("recording") {
            break;
        }
    }
    // SAFETY: kill(2).
    unsafe { libc::kill(fx.id() as i32, libc::SIGUSR1) };
    let out = fx.wait_with_output().unwrap();
    assert!(out.status.success());
    let truth: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(truth["spawned"].as_u64(), Some(CHILDREN), "the fixture ran every child");
    assert!(m.wait().unwrap().success());
    let r = read_json(&json);
    let full = r["lost"]["ringbuf_full"].as_u64().unwrap();
    let got = &r["diagnostics"]["events_received"];
    let received = ["new_tuple", "overlap", "exec", "exit"].iter().map(|k| got[k].as_u64().unwrap()).sum::<u64>();
    assert!(full > 0, "the ring must overflow: {r:#}");
    // Sent: an exec and an exit per child, plus the target's own exit.
    assert_eq!(2 * CHILDREN + 1, received + full, "sent = received + dropped: {got} full={full}");
    // Counts stay exact whatever events were lost: the shared map got
    // every write the fixture made to it (the runtime and the fixture's
    // JSON output write small maps of their own).
    let writes = truth["writes"].as_u64().unwrap();
    let busiest = r["processes"][0]["maps"].as_array().unwrap().iter().map(|m| m["writes"].as_u64().unwrap()).max();
    assert_eq!(busiest, Some(writes));
    assert_eq!(r["totals"]["lost_events"].as_u64(), Some(full), "the only loss is the ring's");
}
