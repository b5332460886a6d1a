//! Nothing is lost silently: with deliberately tiny kernel tables, what
//! could not be recorded is counted exactly, reported, and fails a
//! `--max-lost-events 0` gate.

use serde_json::Value;
use crate::support::*;

fn bench_fixture() -> std::path::PathBuf {
    fixture("bench")
}

/// `record [EXTRA] -- bench -g 8 -n 300`: the report and the fixture's truth.
fn record_bench(name: &str, extra: &[&str]) -> (Value, Value) {
    let json = scratch(name).join("r.json");
    let mut args = vec!["record", "--no-bpf-maps", "--json", s(&json)];
    args.extend_from_slice(extra);
    let fx = bench_fixture();
    args.extend_from_slice(&["--", s(&fx), "-g", "8", "-n", "300"]);
    let out = record(&args);
    out.assert_success("mapaudit");
    (read_json(&json), out.truth())
}

/// Writes in the report to the map at `addr`.
fn map_writes(report: &Value, addr: &Value) -> u64 {
    find(&report["processes"][0]["maps"], "addr", addr)["writes"].as_u64().unwrap()
}

root_test! {
    fn writes_beyond_a_full_counter_table_are_counted_exactly(name) {
        // With room for every counter key, the fixture's shared map has
        // exactly the writes the fixture counted, nothing is lost, and the
        // process's total is the fixture's plus the runtime's own.
        let (full, t) = record_bench(&format!("{name}_ref"), &[]);
        assert_eq!(map_writes(&full, &t["map"]), t["writes"].as_u64().unwrap(), "the fixture's map: {t}");
        assert_eq!(full["totals"]["lost_events"], 0);
        assert_eq!(full["lost"]["writes_map_full"], 0);
        let total = full["totals"]["writes"].as_u64().unwrap();

        // Three counter keys: the rest of the writes are lost to the table,
        // each one counted. The runtime's writes are the same on every run
        // of this program, so the sum must be the reference total.
        let (tiny, t2) = record_bench(name, &["--max-entries", "3"]);
        assert_eq!(t2["writes"], t["writes"]);
        let counted = tiny["totals"]["writes"].as_u64().unwrap();
        let lost = tiny["lost"]["writes_map_full"].as_u64().unwrap();
        assert!(lost > 0, "a 3-entry table must overflow");
        assert_eq!(counted + lost, total, "every write is either counted or counted as lost");
        // The table never held more than its 3 keys (it is drained early,
        // at half full, so more than 3 keys are counted in all).
        assert!(tiny["diagnostics"]["largest_drain"]["keys"].as_u64().unwrap() <= 3, "{}", tiny["diagnostics"]);
        assert!(tiny["totals"]["lost_events"].as_u64().unwrap() >= lost);

        let json = scratch(&format!("{name}_gate")).join("tiny.json");
        std::fs::write(&json, serde_json::to_vec(&tiny).unwrap()).unwrap();
        let gate = run(&["check", s(&json), "--max-lost-events", "0"]);
        assert_eq!(gate.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&gate.stderr).contains("lost"));
    }
}

root_test! {
    fn events_beyond_a_full_ring_buffer_are_counted_exactly(name) {
        // Counter keys send no events (their names travel in the counters), so
        // the ring is filled with what does: each of 300 children the target
        // runs sends an exec and an exit event; a 4 KiB ring holds ~100, and
        // nothing is drained until the end.
        const CHILDREN: u64 = 300;
        let fx = spawn_waiting(&bench_fixture(), &["-g", "4", "-n", "50", "-spawn", &CHILDREN.to_string()]);
        let json = scratch(name).join("r.json");
        let pid = fx.pid().to_string();
        let (m, _) = start_mapaudit(&["record", "--no-bpf-maps", "--ringbuf-kib", "4", "--debug-drain-at-exit", "--pid", &pid, "--json", s(&json)]);
        fx.go();
        let out = fx.wait();
        out.assert_success("bench fixture");
        let truth = out.truth();
        assert_eq!(truth["spawned"].as_u64(), Some(CHILDREN), "the fixture ran every child");
        m.wait().assert_success("mapaudit");
        let r = read_json(&json);
        let full = r["lost"]["ringbuf_full"].as_u64().unwrap();
        let got = &r["diagnostics"]["events_received"];
        let received = ["new_tuple", "overlap", "exec", "exit"].iter().map(|k| got[k].as_u64().unwrap()).sum::<u64>();
        assert!(full > 0, "the ring must overflow: {r:#}");
        // Sent: an exec and an exit per child, plus the target's own exit.
        assert_eq!(2 * truth["spawned"].as_u64().unwrap() + 1, received + full, "sent = received + dropped: {got} full={full}");
        // Counts stay exact whatever events were lost: the shared map got
        // every write the fixture made to it.
        assert_eq!(map_writes(&r, &truth["map"]), truth["writes"].as_u64().unwrap());
        // Only the ring lost anything (each other loss counter is zero).
        for (k, v) in r["lost"].as_object().unwrap() {
            if k != "ringbuf_full" {
                assert_eq!(v, 0, "lost.{k}: {:#}", r["lost"]);
            }
        }
    }
}
