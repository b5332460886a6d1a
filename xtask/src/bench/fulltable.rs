//! Rows 13 and 14: a full kernel counter table.
//!
//! 13. Exec to resume under a full table: `mapaudit record --max-entries E
//!     -- sh -c '…'` where the shell starts the churn fixture (a net/http
//!     server minting new goroutines and map instances, far more distinct
//!     tuples per 100 ms drain than E) in the background, then runs the tiny
//!     bench workload K times, one after another: K execs, each stopped by
//!     the kernel until mapaudit resumes it, while every drain brings a full
//!     table. Read from the report: `diagnostics.exec_stops` (p50, p99,
//!     max), and `lost.writes_map_full` > 0, the proof that the table really
//!     was full (else the row is not a measurement, and says so).
//! 14. Snapshot of a full table (`mapaudit-bench snapshot ENTRIES RUNS`):
//!     the probe's own tables, filled to the default `--max-entries` from
//!     userspace, emptied by the collector's drain (flip, grace period,
//!     batch lookup-and-delete); and the fold of those keys into the model,
//!     which runs on the loop that handles exec events, in slices (exec
//!     events are handled between them): the longest slice is what an exec
//!     can wait behind.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::*;

/// Exec to resume, p99 (the churn issue's target; row 7's too).
pub(super) const TARGET_EXEC_P99_MS: f64 = 50.0;
/// A drain of a full default table, and the longest slice of the fold of
/// its keys into the model, each ≤ this: the fold runs on the loop that
/// resumes processes stopped at exec (the exec budget), and a drain that
/// took longer would fall behind the 100 ms drain period, so a table that
/// is full at the peak would lose writes.
pub(super) const TARGET_SNAPSHOT_MS: f64 = 50.0;

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ExecFull {
    pub(super) entries: u32,
    pub(super) execs: u32,
    pub(super) stops: u64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) watchdog_resumes: u64,
    /// `lost.writes_map_full`: writes not counted because the table was full.
    pub(super) writes_map_full: u64,
    /// The largest drain (keys, ms).
    pub(super) largest_drain: (u64, f64),
    pub(super) wall_s: f64,
}

impl ExecFull {
    /// The figures of mapaudit's JSON report.
    pub(super) fn from_report(r: &Value, entries: u32, execs: u32, wall_s: f64) -> anyhow::Result<Self> {
        let s = &r["diagnostics"]["exec_stops"];
        let f = |k: &str| s[k].as_f64().with_context(|| format!("report: no diagnostics.exec_stops.{k}"));
        Ok(Self {
            entries,
            execs,
            stops: s["count"].as_u64().context("report: no diagnostics.exec_stops.count")?,
            p50_ms: f("p50_ms")?,
            p99_ms: f("p99_ms")?,
            max_ms: f("max_ms")?,
            watchdog_resumes: s["watchdog_resumes"].as_u64().unwrap_or(0),
            writes_map_full: r["lost"]["writes_map_full"].as_u64().context("report: no lost.writes_map_full")?,
            largest_drain: (
                r["diagnostics"]["largest_drain"]["keys"].as_u64().unwrap_or(0),
                r["diagnostics"]["largest_drain"]["ms"].as_f64().unwrap_or(f64::NAN),
            ),
            wall_s,
        })
    }

    /// The table was full at least once (writes went uncounted for it).
    pub(super) fn full(&self) -> bool {
        self.writes_map_full > 0
    }

    pub(super) fn met(&self) -> bool {
        self.full() && self.p99_ms <= TARGET_EXEC_P99_MS && self.watchdog_resumes == 0
    }
}

/// The shell line: the churn server in the background, then `execs` runs
/// of the tiny workload one after another, then the server stopped. The
/// second before the loop lets the server reach its pace (a warm-up, not a
/// synchronisation: that the table was full is read from the report).
pub(super) fn exec_full_script(churn: &Path, tiny: &Path, execs: u32) -> String {
    format!(
        "{} -n 1000000000 -c 2 >/dev/null 2>&1 & c=$!; sleep 1; \
         for i in $(seq {execs}); do {} -g 1 -n 1 >/dev/null; done; \
         kill $c; wait $c 2>/dev/null; exit 0",
        churn.display(),
        tiny.display()
    )
}

pub(super) fn exec_under_full_table(mapaudit: &Path, tiny: &Path, entries: u32, execs: u32) -> anyhow::Result<ExecFull> {
    let churn = fixtures::build("churn", fixtures::GO_NEWEST, fixtures::Variant::Plain)?;
    let scratch = crate::root().join("target/bench-fulltable");
    std::fs::create_dir_all(&scratch)?;
    let json = scratch.join("exec-full.json");
    let _ = std::fs::remove_file(&json);
    let mut c = Command::new(mapaudit);
    // Every exec stopped, as a program's first process is: its later
    // ones run at once (nothing to attach), which would leave this row
    // nothing to measure.
    c.args(["record", "--no-bpf-maps", "--debug-stop-every-exec", "--max-entries", &entries.to_string(), "--json"])
        .arg(&json)
        .args(["--", "sh", "-c", &exec_full_script(&churn, tiny, execs)]);
    eprintln!("xtask: bench exec under a full table ({} entries, {execs} execs)", fmt_int(u64::from(entries)));
    let t = std::time::Instant::now();
    let out = capture_for(c, RUN_TIMEOUT + Duration::from_secs(u64::from(execs)))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.success {
        bail!("mapaudit record (exec under a full table) failed ({}): {}", out.status, out.stderr.trim());
    }
    let data = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
    ExecFull::from_report(&serde_json::from_slice(&data)?, entries, execs, wall)
}

pub(super) fn exec_full_row(t: &mut Table, e: &ExecFull) {
    let full = if e.full() {
        format!("table full: {} writes not counted (writes_map_full)", fmt_int(e.writes_map_full))
    } else {
        "**the table never filled** (writes_map_full 0): not a measurement under a full table".into()
    };
    t.row(&[
        "13",
        &format!(
            "exec to resume under a full counter table (--max-entries {}; churn server + {} execs of a Go program), p99",
            fmt_int(u64::from(e.entries)),
            e.execs
        ),
        &format!("{:.1} ms (n={} stops: p50 {:.1} ms, max {:.1} ms)", e.p99_ms, e.stops, e.p50_ms, e.max_ms),
        &format!(
            "{full}; largest drain {} keys in {:.1} ms; watchdog resumes {}; run {:.1} s",
            fmt_int(e.largest_drain.0),
            e.largest_drain.1,
            e.watchdog_resumes,
            e.wall_s
        ),
        &format!("≤ {TARGET_EXEC_P99_MS:.0} ms, table full"),
        &verdict(e.met()),
    ]);
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Snapshot {
    pub(super) entries: u64,
    pub(super) keys: u64,
    pub(super) ncpus: u64,
    pub(super) drain_ms: Vec<f64>,
    pub(super) empty_ms: f64,
    pub(super) fold_ms: f64,
    /// The longest slice of the fold, and the keys per slice.
    pub(super) slice_ms: f64,
    pub(super) slice_keys: u64,
}

impl Snapshot {
    pub(super) fn from_json(j: &Value) -> anyhow::Result<Self> {
        let f = |k: &str| num(j, k).with_context(|| format!("mapaudit-bench snapshot: no {k} in {j}"));
        Ok(Self {
            entries: f("entries")? as u64,
            keys: f("keys")? as u64,
            ncpus: f("ncpus")? as u64,
            drain_ms: j["drain_ms"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default(),
            empty_ms: f("empty_drain_ms_median")?,
            fold_ms: f("fold_ms_median")?,
            slice_ms: f("fold_slice_ms_max_median")?,
            slice_keys: f("fold_slice_keys")? as u64,
        })
    }

    /// Per key beyond the empty drain (flip and grace period), ns.
    pub(super) fn ns_per_key(&self) -> Option<f64> {
        Some((median(&self.drain_ms)? - self.empty_ms).max(0.0) * 1e6 / self.keys.max(1) as f64)
    }

    pub(super) fn met(&self) -> bool {
        self.keys == self.entries
            && median(&self.drain_ms).is_some_and(|d| d <= TARGET_SNAPSHOT_MS)
            && self.slice_ms <= TARGET_SNAPSHOT_MS
    }
}

pub(super) fn snapshot_cost(helper: &Path, entries: u32, runs: usize) -> anyhow::Result<Snapshot> {
    let j = helper_json(helper, &["snapshot".to_string(), entries.to_string(), runs.to_string()], RUN_TIMEOUT)?;
    Snapshot::from_json(&j)
}

pub(super) fn snapshot_row(t: &mut Table, s: &Snapshot) {
    let full = if s.keys == s.entries {
        "full".to_string()
    } else {
        format!("**only {} of {} keys went in**", fmt_int(s.keys), fmt_int(s.entries))
    };
    t.row(&[
        "14",
        &format!(
            "snapshot of a full counter table ({} keys × {} CPUs, {full}): flip + grace period + batch lookup-and-delete",
            fmt_int(s.keys),
            s.ncpus
        ),
        &spread(&s.drain_ms, fmt_ms),
        &format!(
            "{} per key beyond the empty drain ({}: flip + grace period); fold into the model {} in all, longest slice of {} keys {}",
            s.ns_per_key().map(fmt_ns).unwrap_or_default(),
            fmt_ms(s.empty_ms),
            fmt_ms(s.fold_ms),
            fmt_int(s.slice_keys),
            fmt_ms(s.slice_ms)
        ),
        &format!("drain ≤ {TARGET_SNAPSHOT_MS:.0} ms; fold slice ≤ {TARGET_SNAPSHOT_MS:.0} ms"),
        &verdict(s.met()),
    ]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn report(p99: f64, full: u64) -> Value {
        serde_json::json!({
            "lost": {"ringbuf_full": 0, "writes_map_full": full},
            "diagnostics": {
                "exec_stops": {"count": 203, "p50_ms": 4.5, "p99_ms": p99, "max_ms": 180.0, "watchdog_resumes": 0},
                "largest_drain": {"keys": 4096, "ms": 21.5}
            }
        })
    }

    #[test]
    fn exec_full_reads_the_report_and_needs_a_full_table() {
        let e = ExecFull::from_report(&report(12.0, 5000), 4096, 200, 30.0).unwrap();
        assert_eq!((e.stops, e.p99_ms, e.max_ms, e.writes_map_full, e.largest_drain), (203, 12.0, 180.0, 5000, (4096, 21.5)));
        assert!(e.full() && e.met());
        assert!(!ExecFull::from_report(&report(51.0, 5000), 4096, 200, 30.0).unwrap().met());
        // Never full: not a measurement of what the row names.
        let never = ExecFull::from_report(&report(1.0, 0), 4096, 200, 30.0).unwrap();
        assert!(!never.full() && !never.met());
        let mut t = Table::new(&["#", "measurement", "median (runs: min–max)", "derived", "target", "verdict"]);
        exec_full_row(&mut t, &never);
        assert!(t.markdown().contains("the table never filled"), "{}", t.markdown());
        // No exec_stops (nothing stopped): an error, never a zero.
        assert!(ExecFull::from_report(&serde_json::json!({"lost": {"writes_map_full": 1}}), 4096, 200, 1.0).is_err());
    }

    #[test]
    fn exec_full_script_runs_the_workload_k_times() {
        let s = exec_full_script(Path::new("/f/churn"), Path::new("/f/bench"), 200);
        assert!(s.starts_with("/f/churn -n 1000000000 ") && s.contains("$(seq 200)") && s.contains("/f/bench -g 1 -n 1"), "{s}");
        assert!(s.contains("kill $c") && s.ends_with("exit 0"), "{s}");
    }

    #[test]
    fn snapshot_arithmetic() {
        let j = serde_json::json!({
            "entries": 65536, "keys": 65536, "ncpus": 2, "drain_ms": [40.0, 30.0, 35.0],
            "empty_drain_ms_median": 15.0, "fold_ms_median": 160.0,
            "fold_slice_keys": 4096, "fold_slice_ms_max_median": 12.5
        });
        let s = Snapshot::from_json(&j).unwrap();
        // (35 − 15) ms / 65,536 keys = 305 ns.
        assert!((s.ns_per_key().unwrap() - 20e6 / 65536.0).abs() < 1e-9);
        // The whole fold (160 ms) is reported; the slice (12.5 ms) is judged.
        assert!(s.met());
        assert!(!Snapshot { slice_ms: 60.0, ..s.clone() }.met());
        assert!(!Snapshot { keys: 60_000, ..s.clone() }.met());
        assert!(!Snapshot { drain_ms: vec![51.0], ..s.clone() }.met());
        let mut t = Table::new(&["#", "measurement", "median (runs: min–max)", "derived", "target", "verdict"]);
        snapshot_row(&mut t, &s);
        let md = t.markdown();
        assert!(md.contains("| 14 | snapshot of a full counter table (65,536 keys × 2 CPUs, full)"), "{md}");
        assert!(md.contains("35.0 ms (n=3: 30.0 ms–40.0 ms)") && md.contains("305 ns per key"), "{md}");
        assert!(md.contains("fold into the model 160.0 ms in all, longest slice of 4,096 keys 12.5 ms"), "{md}");
    }
}
