//! bpf(2) maps named in the kernel, end to end: writers that live a few
//! milliseconds (bpftool, one process per command) are attributed to the
//! map by id, name and type; an fd closed and reused for a second map in
//! one process is attributed to the right map each time; lookups are
//! counted with `--reads`; `--bpf-hot-keys` ranks a map's keys by writes.

use std::path::PathBuf;
use std::process::Command;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

/// A system-wide `record` that has attached (it said "recording").
fn start_record(json: &std::path::Path, extra: &[&str]) -> Proc {
    let mut args = vec!["record", "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    start_mapaudit(&args).0
}

fn stop_record(m: Proc) {
    m.signal(Signal::SIGINT);
    let done = m.wait();
    assert_eq!(done.code(), Some(130), "record ends on SIGINT with 128 + 2: {}", done.stderr);
}

fn bpftool(args: &[&str]) -> std::process::Output {
    let out = Command::new("bpftool").args(args).output().expect("bpftool is installed by `cargo xtask setup`");
    assert!(out.status.success(), "bpftool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A pinned hash map for one test, removed when dropped.
struct Pinned(PathBuf, u64);

impl Pinned {
    fn new(name: &str) -> Self {
        let path = PathBuf::from(format!("/sys/fs/bpf/{name}_{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        bpftool(&["map", "create", path.to_str().unwrap(), "type", "hash", "key", "4", "value", "4", "entries", "64", "name", name]);
        let show = bpftool(&["-j", "map", "show", "pinned", path.to_str().unwrap()]);
        let v: Value = serde_json::from_slice(&show.stdout).unwrap();
        Self(path, v["id"].as_u64().unwrap())
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sum of `field` over the report's rows for map `id`.
fn sum(report: &Value, id: u64, field: &str) -> u64 {
    (report["bpf_maps"].as_array().unwrap().iter()).filter(|r| r["map_id"] == id).map(|r| r[field].as_u64().unwrap()).sum()
}

root_test! {
    fn short_lived_bpftool_writers_are_named_in_the_kernel(name) {
        let map = Pinned::new("mapaudit_bt");
        let json = scratch(name).join("report.json");
        let m = start_record(&json, &["--reads"]);
        for i in 0..10u8 {
            bpftool(&["map", "update", "pinned", map.path(), "key", &i.to_string(), "0", "0", "0", "value", "1", "0", "0", "0"]);
        }
        for i in 0..3u8 {
            bpftool(&["map", "delete", "pinned", map.path(), "key", &i.to_string(), "0", "0", "0"]);
        }
        for _ in 0..4 {
            bpftool(&["map", "lookup", "pinned", map.path(), "key", "5", "0", "0", "0"]);
        }
        stop_record(m);
        let report = read_json(&json);
        assert_eq!(report["diagnostics"]["bpf_map_resolution"]["path"], "kernel", "{:#}", report["diagnostics"]);
        let rows: Vec<&Value> = report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["map_id"] == map.1).collect();
        // Every command is its own short-lived process, and each is named.
        assert_eq!(rows.len(), 17, "{rows:#?}");
        for r in &rows {
            assert_eq!((r["map_name"].as_str(), r["map_type"].as_str(), r["comm"].as_str()), (Some("mapaudit_bt"), Some("hash"), Some("bpftool")));
        }
        assert_eq!(sum(&report, map.1, "updates"), 10);
        assert_eq!(sum(&report, map.1, "update_calls"), 10);
        assert_eq!(sum(&report, map.1, "deletes"), 3);
        assert_eq!(sum(&report, map.1, "delete_calls"), 3);
        assert_eq!(sum(&report, map.1, "lookups"), 4);
        assert_eq!(sum(&report, map.1, "lookup_calls"), 4);
        // No row of anyone's is left unnamed because its writer exited.
        let unnamed: Vec<&Value> = (report["bpf_maps"].as_array().unwrap().iter()).filter(|r| r["comm"] == "bpftool" && r["map_id"].is_null()).collect();
        assert!(unnamed.is_empty(), "{unnamed:#?}");
    }
}

root_test! {
    fn an_fd_reused_for_a_second_map_is_attributed_to_each_map(name) {
        let bin = fixtures::build("bpfreuse", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--reads", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-a", "4", "-b", "7", "-lookups", "5"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let t = truth(&out.stdout);
        assert_eq!(t["a"]["fd"], t["b"]["fd"], "the fixture got the same fd number twice: {t}");
        assert_ne!(t["a"]["map_id"], t["b"]["map_id"]);
        let report = read_json(&json);
        for (which, fields) in [("a", &["updates"][..]), ("b", &["updates", "deletes", "lookups"][..])] {
            let id = t[which]["map_id"].as_u64().unwrap();
            let rows: Vec<&Value> = report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["map_id"] == id).collect();
            assert_eq!(rows.len(), 1, "map {which}: {rows:#?}");
            assert_eq!(rows[0]["map_name"], t[which]["map_name"]);
            assert_eq!(rows[0]["fd"], t[which]["fd"]);
            assert_eq!(rows[0]["tid"], t["tid"]);
            for f in fields {
                assert_eq!(rows[0][*f], t[which][*f], "map {which} {f}");
            }
        }
        // Nothing of the fixture's is unnamed or counted twice.
        let mine: Vec<&Value> = report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["pid"] == t["pid"]).collect();
        assert_eq!(mine.len(), 2, "{mine:#?}");
    }
}

root_test! {
    fn hot_keys_rank_a_maps_keys_by_writes(name) {
        let map = Pinned::new("mapaudit_hk");
        let json = scratch(name).join("report.json");
        let m = start_record(&json, &["--bpf-hot-keys"]);
        // Key 7 written 5 times, key 3 three times (two updates, a delete), key 9 once.
        let plan: [(u8, &str, usize); 4] = [(7, "update", 5), (3, "update", 2), (3, "delete", 1), (9, "update", 1)];
        for (key, op, n) in plan {
            for _ in 0..n {
                let k = key.to_string();
                let mut args = vec!["map", op, "pinned", map.path(), "key", &k, "0", "0", "0"];
                if op == "update" {
                    args.extend(["value", "1", "0", "0", "0"]);
                }
                bpftool(&args);
            }
        }
        stop_record(m);
        let report = read_json(&json);
        let hk = (report["bpf_hot_keys"].as_array().unwrap().iter()).find(|h| h["map_id"] == map.1).expect("hot keys for the map");
        assert_eq!(hk["map_name"], "mapaudit_hk");
        // The kernel hashes the key bytes as probe_common::bpfmap::fnv1a does.
        let hash = |k: u8| format!("{:#018x}", probe_common::bpfmap::fnv1a(&[k, 0, 0, 0]));
        let got: Vec<(String, u64)> = (hk["keys"].as_array().unwrap().iter())
            .map(|k| (k["hash"].as_str().unwrap().to_string(), k["writes"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, vec![(hash(7), 5), (hash(3), 3), (hash(9), 1)]);
    }
}

root_test! {
    fn without_the_kernel_path_the_report_says_so_and_counts_stay_exact(name) {
        let bin = fixtures::build("bpfreuse", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--debug-bpf-userspace", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-a", "4", "-b", "7"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let t = truth(&out.stdout);
        let report = read_json(&json);
        let r = &report["diagnostics"]["bpf_map_resolution"];
        assert_eq!(r["path"], "userspace");
        assert!(r["why"].as_str().unwrap().contains("--debug-bpf-userspace"), "{r}");
        // Named after the fact from /proc, a row is named only if its fd was
        // still open when /proc was read (a race this path cannot win: the
        // fixture closes each map right after writing it, and reuses the fd):
        // unnamed, or named one of the fixture's maps. The counts are exact.
        let mine: Vec<&Value> = report["bpf_maps"].as_array().unwrap().iter().filter(|r| r["pid"] == t["pid"]).collect();
        assert!(!mine.is_empty(), "{report:#}");
        let fixtures_maps = [Value::Null, Value::from("mapaudit_ra"), Value::from("mapaudit_rb")];
        assert!(mine.iter().all(|r| fixtures_maps.contains(&r["map_name"])), "{mine:#?}");
        let updates: u64 = mine.iter().map(|r| r["updates"].as_u64().unwrap()).sum();
        assert_eq!(updates, t["a"]["updates"].as_u64().unwrap() + t["b"]["updates"].as_u64().unwrap());
    }
}
