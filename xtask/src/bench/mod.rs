//! `cargo xtask bench`: what mapaudit costs, measured against baselines in
//! one invocation. Every figure is a median of interleaved runs (A B C D
//! A B C D …), reported with ratios and next to its target; a miss is
//! printed, never hidden. Benchmarks live here, never as timed assertions
//! in tests: the tests below only check the arithmetic and the table's shape.
//!
//! 1. Probe cost on the `fixtures/go/bench` workload (G goroutines × N map
//!    writes): unprobed; the floor (`mapaudit record --bench-floor`, an
//!    empty BPF program at exactly mapaudit's points); `mapaudit record`;
//!    a bpftrace one-liner counting `runtime.mapassign_faststr`. Per-write
//!    cost comes from the fixture's own timing of its write phase. Then,
//!    untimed, the kernel's bpf_stats for the BPF body alone.
//! 2. Drain: `mapaudit-bench drain RATE S`, stepping the rate up until
//!    events are lost or the producer cannot reach the rate.
//! 3. Model: `mapaudit-bench model 100000 10000` (tick, memory, TUI frame).
//! 5. The overhead budget: `mapaudit record --max-overhead 5` on a long
//!    run of the write workload against the same run unprobed: slowdown,
//!    and the scaled total against the fixture's true count; on the hot
//!    loop, and on a light variant (`-work`: arithmetic between writes).
//! 4. Probe cost with `--reads` on the read-heavy workload (`-reads`: G
//!    goroutines × N lookups under a read lock), the same four
//!    configurations, bpftrace on `runtime.mapaccess1_faststr`.
//! 6. to 9. Real programs at real scale (`real`): a net/http churn server
//!    against `-race`, a cold-cache `go build`, fixed costs, drains.
//! 10. The bpf(2) tracepoint per call (`bpf`): unprobed, an empty program
//!     at `sys_enter_bpf`, mapaudit, mapaudit `--bpf-hot-keys`.
//! 11. Map-length sampling per refresh (`lengths`): the batch read of 32
//!     map headers in another process and the pick among 10,000 rows.
//! 12. The model's memory under map churn (`churnmem`): 50,000 new map
//!     instances a second for 10 simulated minutes.
//! 13. Exec to resume under a full counter table, and 14. the snapshot of a
//!     full table (`fulltable`).
//! 15. The longest step of a fold of 200,000 idle rows (`foldstep`): what a
//!     process stopped at exec may wait for.
//!
//! `--only ROWS` runs some rows alone (rows 6–9 are one run: any of them
//! selects all four); such a run prints its table and leaves BENCHMARKS.md
//! alone.
//!
//! One file per row (`probe`: rows 1 and 4, `drain`: 2, `model`: 3,
//! `budget`: 5, `real`: 6–9, `bpf`: 10, `lengths`: 11, `churnmem`: 12,
//! `fulltable`: 13–14, `foldstep`: 15); `exec` runs the commands, `table` and
//! `markdown` render. Counts come from JSON (mapaudit's report, the
//! fixtures' and helper's output lines) read with serde_json.

mod bpf;
mod budget;
mod churnmem;
mod drain;
mod exec;
mod foldstep;
mod fulltable;
mod lengths;
mod markdown;
mod model;
mod probe;
mod real;
mod table;

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{is_root, root};
use bpf::*;
use budget::*;
use drain::*;
use exec::*;
use fulltable::*;
use lengths::*;
use churnmem::*;
use markdown::*;
use model::*;
use probe::*;
use table::*;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Interleaved rounds of the probe-cost runs (unprobed, floor, mapaudit,
    /// bpftrace per round); figures are medians over rounds.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Untimed warm-up rounds before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Goroutines of the map-write workload.
    #[arg(long, default_value_t = 4)]
    pub goroutines: u64,
    /// Map writes per goroutine.
    #[arg(long, default_value_t = 25_000)]
    pub writes: u64,
    /// Rounds of the drain ladder (the first finds where it stops).
    #[arg(long, default_value_t = 3)]
    pub drain_rounds: usize,
    /// Seconds per drain run.
    #[arg(long, default_value_t = 2)]
    pub drain_seconds: u64,
    /// Runs of the model benchmark (separate processes: memory is per run).
    #[arg(long, default_value_t = 3)]
    pub model_runs: usize,
    /// Skip the untimed bpf_stats pass (BPF body cost per call).
    #[arg(long)]
    pub no_bpf_stats: bool,
    /// Writes per goroutine of the overhead-budget runs (long: the duty
    /// cycle needs several periods; ~15 s unprobed here).
    #[arg(long, default_value_t = 60_000_000)]
    pub budget_writes: u64,
    /// Arithmetic steps between writes in the light overhead-budget runs
    /// (which make 1/200 of `--budget-writes`).
    #[arg(long, default_value_t = 20_000)]
    pub budget_work: u64,
    /// Interleaved rounds (unprobed, budgeted) of the overhead-budget runs;
    /// 0 skips them.
    #[arg(long, default_value_t = 3)]
    pub budget_rounds: usize,
    /// Interleaved rounds of the real-program rows (churn server, fixed
    /// costs); 0 skips rows 6–9.
    #[arg(long, default_value_t = 3)]
    real_rounds: u32,
    /// Rounds of the cold-cache `go build` (row 7; ~30 s unprobed here).
    #[arg(long, default_value_t = 1)]
    build_rounds: u32,
    /// Interleaved rounds of the bpf(2) tracepoint row (10); 0 skips it.
    #[arg(long, default_value_t = 5)]
    bpf_rounds: usize,
    /// Refreshes timed per run of the map-length sampling row (11); 0 skips it.
    #[arg(long, default_value_t = 2000)]
    len_rounds: usize,
    /// Simulated seconds of the churn memory row (12); 0 skips it.
    #[arg(long, default_value_t = 600)]
    churn_seconds: u64,
    /// `--max-entries` of the exec-under-a-full-table row (13): small
    /// enough that the churn server fills it between two of the drainer's
    /// 5 ms looks at its fill (it is drained early once half full).
    #[arg(long, default_value_t = 256)]
    full_table_entries: u32,
    /// Execs of a Go program in row 13 (p99 over them); 0 skips it.
    #[arg(long, default_value_t = 200)]
    full_table_execs: u32,
    /// Drains timed by the full-table snapshot row (14); 0 skips it.
    #[arg(long, default_value_t = 5)]
    snapshot_runs: usize,
    /// Keys of the full table in row 14: mapaudit's default --max-entries
    /// (`probe_common::maps::WRITES_DEFAULT_ENTRIES`).
    #[arg(long, default_value_t = 32_768)]
    snapshot_entries: u32,
    /// Runs of the fold-step row (15); 0 skips it.
    #[arg(long, default_value_t = 3)]
    fold_runs: usize,
    /// Only these rows (comma-separated numbers, 1–15; rows 6–9 run
    /// together): printed, BENCHMARKS.md untouched.
    #[arg(long, value_delimiter = ',', value_name = "ROWS", value_parser = clap::value_parser!(u32).range(1..=ROWS as i64))]
    only: Vec<u32>,
    /// Only rows 6–9 (real programs): a quick check of a change to the
    /// session or the collector; the same as `--only 6,7,8,9`.
    #[arg(long)]
    only_real: bool,
    /// Also replace the generated section of BENCHMARKS.md with this run.
    #[arg(long)]
    pub write_md: bool,
}

/// The rows of the table.
const ROWS: u32 = 15;

/// Which rows a run makes: all, or those `--only` (and `--only-real`) name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Selection(Option<Vec<u32>>);

impl Selection {
    fn of(args: &BenchArgs) -> Self {
        let mut rows = args.only.clone();
        if args.only_real {
            rows.extend([6, 7, 8, 9]);
        }
        Self((!rows.is_empty()).then_some(rows))
    }

    /// Row `n` runs. Rows 6–9 come from one run: any of them selects all.
    pub(super) fn wants(&self, n: u32) -> bool {
        let group = |r: u32| if (6..=9).contains(&r) { 6 } else { r };
        self.0.as_ref().is_none_or(|rows| rows.iter().any(|&r| group(r) == group(n)))
    }

    /// The whole bench (the one that may replace BENCHMARKS.md's section).
    pub(super) fn all(&self) -> bool {
        self.0.is_none()
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the benchmarks load eBPF programs (mapaudit, bpftrace) and need root: \
             run `sudo -E cargo xtask bench`"
        );
    }
    if args.rounds == 0 || args.drain_rounds == 0 || args.model_runs == 0 || args.goroutines * args.writes == 0 {
        bail!("--rounds, --drain-rounds, --model-runs, --goroutines and --writes must be at least 1");
    }
    let sel = Selection::of(args);
    if args.write_md && !sel.all() {
        bail!("--write-md replaces the whole table: run it without --only/--only-real");
    }
    crate::build()?;
    let bins = Bins {
        mapaudit: root().join("target/release/mapaudit"),
        helper: root().join("target/release/mapaudit-bench"),
        fixture: build_fixture()?,
        bpftrace: which("bpftrace"),
    };
    let machine = Machine::probe(&bins);
    eprintln!("xtask: bench on {}", machine.one_line());
    let want = |n: u32| sel.wants(n);
    let probe = if want(1) { Some(probe_cost(&bins, args, Workload::Writes)?) } else { None };
    let body = if args.no_bpf_stats || !want(1) {
        None
    } else {
        match bpf_body_cost(&bins, args) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("xtask: bpf_stats pass failed (the table says so): {e:#}");
                None
            }
        }
    };
    let reads = if want(4) { Some(probe_cost(&bins, args, Workload::Reads)?) } else { None };
    let budget = if want(5) {
        vec![
            budget_cost(&bins, args, args.budget_writes, 0)?,
            budget_cost(&bins, args, (args.budget_writes / 200).max(1), args.budget_work)?,
        ]
    } else {
        Vec::new()
    };
    let drain = if want(2) { Some(drain_ladder(&bins, args)?) } else { None };
    let model = if want(3) { Some(model_cost(&bins, args)?) } else { None };
    let bpf = if args.bpf_rounds == 0 || !want(10) { None } else { Some(bpf_cost(&bins, args.bpf_rounds)?) };
    // Asked for by name, rows 6–9 run even with --real-rounds 0.
    let real_rounds = if sel.all() { args.real_rounds } else { args.real_rounds.max(1) };
    let real = if real_rounds == 0 || !want(6) { Vec::new() } else { real::rows(&bins.mapaudit, real_rounds, args.build_rounds.max(1))? };
    let lengths = if args.len_rounds == 0 || !want(11) { None } else { Some(lengths_cost(&bins.helper, 3, args.len_rounds)?) };
    let churn_mem = if args.churn_seconds == 0 || !want(12) { None } else { Some(churn_memory(&bins.helper, args.churn_seconds)?) };
    let exec_full = if args.full_table_execs == 0 || !want(13) {
        None
    } else {
        Some(exec_under_full_table(&bins.mapaudit, &bins.fixture, args.full_table_entries, args.full_table_execs)?)
    };
    let snapshot = if args.snapshot_runs == 0 || !want(14) {
        None
    } else {
        Some(snapshot_cost(&bins.helper, args.snapshot_entries, args.snapshot_runs)?)
    };
    let fold = if args.fold_runs == 0 || !want(15) { None } else { Some(foldstep::fold_step_cost(&bins.helper, args.fold_runs)?) };
    let res = Results {
        probe,
        body,
        reads,
        budget,
        drain,
        model,
        real,
        bpf,
        lengths,
        churn_mem,
        exec_full,
        snapshot,
        fold,
        goroutines: args.goroutines,
        writes_per_goroutine: args.writes,
    };
    if !sel.all() {
        println!("{}\n\n{}", machine.one_line(), render_table(&res).markdown());
        return Ok(());
    }

    let mut machine = machine;
    machine.load_after = loadavg();
    let table = render_table(&res);
    let md = render_md(&machine, &table, args);
    println!("{md}");
    let out = root().join("target/bench.md");
    std::fs::write(&out, &md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    if args.write_md {
        let path = root().join("BENCHMARKS.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, splice_md(&old, &md)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: updated {}", path.display());
    }
    Ok(())
}

struct Bins {
    mapaudit: PathBuf,
    helper: PathBuf,
    fixture: PathBuf,
    bpftrace: Option<PathBuf>,
}

/// Builds `fixtures/go/bench` with the newest Go (the fixture crate's
/// builder, as the tests build it).
fn build_fixture() -> anyhow::Result<PathBuf> {
    fixtures::build("bench", fixtures::GO_NEWEST, fixtures::Variant::Plain)
}

/// A JSON line's object (the fixtures' and `mapaudit-bench`'s output).
pub(super) fn json_line(s: &str) -> Option<serde_json::Value> {
    s.lines().map(str::trim).filter(|l| l.starts_with('{')).find_map(|l| serde_json::from_str(l).ok())
}

/// A number field of a JSON object.
pub(super) fn num(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64)
}

/// What a run measured; a row not run (`--only`) is None or empty.
struct Results {
    probe: Option<ProbeCost>,
    body: Option<BodyCost>,
    /// Row 4: the read-heavy workload under `--reads`.
    reads: Option<ProbeCost>,
    /// Row 5: `--max-overhead`, on the hot loop and the light workload.
    budget: Vec<BudgetCost>,
    drain: Option<Drain>,
    model: Option<ModelCost>,
    /// Rows 6–9.
    real: Vec<real::Row>,
    /// Row 10.
    bpf: Option<BpfCost>,
    /// Row 11.
    lengths: Option<LengthsCost>,
    /// Row 12.
    churn_mem: Option<ChurnMemory>,
    /// Row 13.
    exec_full: Option<ExecFull>,
    /// Row 14.
    snapshot: Option<Snapshot>,
    /// Row 15.
    fold: Option<foldstep::FoldStep>,
    goroutines: u64,
    writes_per_goroutine: u64,
}

fn render_table(r: &Results) -> Table {
    let mut t = Table::new(&["#", "measurement", "median (runs: min–max)", "derived", "target", "verdict"]);

    // 1. Probe cost.
    if let Some(p) = &r.probe {
        probe_section(&mut t, p, r);
    }
    // 2. Drain.
    if let Some(d) = &r.drain {
        drain_section(&mut t, d);
    }
    // 3. Model.
    if let Some(m) = &r.model {
        model_section(&mut t, m);
    }

    // 4. --reads.
    if let Some(reads) = &r.reads {
        let workload = format!("{} goroutines × {} reads under a read lock", r.goroutines, fmt_int(r.writes_per_goroutine));
        probe_rows(&mut t, "4", reads, &workload);
    }

    // 5. Overhead budget.
    for b in &r.budget {
        budget_row(&mut t, b, r.goroutines);
    }

    // 6–9. Real programs.
    real_rows(&mut t, &r.real);
    if let Some(b) = &r.bpf {
        bpf_rows(&mut t, b);
    }
    if let Some(l) = &r.lengths {
        lengths_row(&mut t, l);
    }
    if let Some(c) = &r.churn_mem {
        churn_memory_row(&mut t, c);
    }
    if let Some(e) = &r.exec_full {
        exec_full_row(&mut t, e);
    }
    if let Some(s) = &r.snapshot {
        snapshot_row(&mut t, s);
    }
    if let Some(f) = &r.fold {
        foldstep::fold_step_row(&mut t, f);
    }
    t
}

/// Row 1: the probe cost and the BPF body's own.
fn probe_section(t: &mut Table, p: &ProbeCost, r: &Results) {
    let workload = format!("{} goroutines × {} writes", r.goroutines, fmt_int(r.writes_per_goroutine));
    probe_rows(t, "1", p, &workload);
    match &r.body {
        Some(b) => {
            let (f, m) = (BodyCost::ns_per_run(b.floor), BodyCost::ns_per_run(b.mapaudit));
            let show = |v: Option<f64>, raw: Option<(u64, u64)>| match (v, raw) {
                (Some(v), Some((_, n))) => format!("{} ({} calls)", fmt_ns(v), fmt_int(n)),
                _ => "n/a".into(),
            };
            let derived = match (f, m, p.extra_per_write(Config::Mapaudit), p.extra_per_write(Config::Floor)) {
                (Some(f), Some(m), Some(em), Some(ef)) => format!(
                    "body difference {} of the {} mapaudit − floor gap",
                    fmt_ns(m - f),
                    fmt_ns(em - ef)
                ),
                _ => String::new(),
            };
            t.row(&[
                "1",
                "BPF body only (kernel bpf_stats, untimed pass, 10× writes): floor / mapaudit per call",
                &format!("{} / {}", show(f, b.floor), show(m, b.mapaudit)),
                &derived,
                "",
                "",
            ]);
        }
        None => t.row(&["1", "BPF body only (kernel bpf_stats)", "n/a (skipped or failed)", "", "", ""]),
    }

}

/// Row 2: the ring-buffer drain ladder.
fn drain_section(t: &mut Table, d: &Drain) {
    for s in &d.steps {
        let limited = s.producer_limited(d.seconds);
        let derived = format!(
            "produced {}{}; lost {} (median), in {}/{} runs",
            median(&s.produced_per_s).map(fmt_rate).unwrap_or_default(),
            if limited { " (**producer could not reach the rate**)" } else { "" },
            fmt_int(s.median_lost() as u64),
            s.runs_with_loss(),
            s.runs()
        );
        t.row(&[
            "2",
            &format!("drain at {} × {} s", fmt_rate(s.rate as f64), d.seconds),
            &format!("{} drained", spread(&s.drained_per_s, fmt_rate)),
            &derived,
            "",
            "",
        ]);
    }
    let (loss_at, note) = match d.loss_starts() {
        Some(s) => (format!("loss starts at {}", fmt_rate(s.rate as f64)), String::new()),
        None => {
            let top = d.steps.last();
            let why = match top {
                Some(s) if s.producer_limited(d.seconds) => format!(
                    "producer-limited at {} (asked {})",
                    median(&s.produced_per_s).map(fmt_rate).unwrap_or_default(),
                    fmt_rate(s.rate as f64)
                ),
                Some(s) => format!("up to {}", fmt_rate(s.rate as f64)),
                None => String::new(),
            };
            ("no loss".to_string(), why)
        }
    };
    t.row(&["2", "drain: where loss starts", &loss_at, &note, "≥ 2.00 M/s, 0 lost", &verdict(d.target_met())]);

}

/// Row 3: the model's tick, memory and the TUI frame.
fn model_section(t: &mut Table, m: &ModelCost) {
    let scale = format!("{} goroutines, {} maps, {} keys", fmt_int(MODEL_GOROUTINES), fmt_int(m.maps), fmt_int(m.keys));
    let tick = median(&m.tick_ms);
    t.row(&[
        "3",
        &format!("model tick: snapshot fold + aggregation ({scale})"),
        &spread(&m.tick_ms, fmt_ms),
        &format!("fold {}; JSON report {}", median(&m.fold_ms).map(fmt_ms).unwrap_or_default(), median(&m.report_ms).map(fmt_ms).unwrap_or_default()),
        &format!("≤ {TARGET_TICK_MS:.0} ms"),
        &tick.map(|x| verdict(x <= TARGET_TICK_MS)).unwrap_or_else(|| "n/a".into()),
    ]);
    let bpk = median(&m.bytes_per_key);
    let bound = match (bpk, m.max_entries) {
        (Some(b), n) if n > 0 => format!(
            "{:.0} B/key; at the default --max-entries {} keys: {:.0} MiB",
            b,
            fmt_int(n),
            b * n as f64 / (1024.0 * 1024.0)
        ),
        (Some(b), _) => format!("{b:.0} B/key"),
        _ => String::new(),
    };
    t.row(&[
        "3",
        "model memory after the tick (RSS growth)",
        &spread(&m.tick_rss_mib, |x| format!("{x:.0} MiB")),
        &bound,
        "bounded",
        "reported (linear in keys; keys bounded by --max-entries)",
    ]);
    match &m.frame_na {
        Some(na) => t.row(&["3", "TUI frame (TestBackend)", na, "", "", ""]),
        None => {
            t.row(&[
                "3",
                &format!("TUI frame (TestBackend {}, median of 5 draws per run)", m.frame_size),
                &spread(&m.frame_ms, fmt_ms),
                &format!("App::on_tick {}", median(&m.app_tick_ms).map(fmt_ms).unwrap_or_default()),
                "",
                "",
            ]);
        }
    }

}

/// Rows 6–9 into the table (each measurement starts with its row number).
fn real_rows(t: &mut Table, rows: &[real::Row]) {
    for row in rows {
        let (num, what) = row.measurement.split_once(' ').unwrap_or(("", &row.measurement));
        t.row(&[num, what, &row.median, &row.derived, &row.target, &row.verdict]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn parses_tool_output() {
        let bt = "Attaching 1 probe...\n{\"elapsed_ns\":1515937004,\"writes\":100000}\n\n\n@[27523]: 3940\n@[27524]: 96060\n";
        assert_eq!(parse_fixture_line(bt, "writes"), Some((1_515_937_004, 100_000)));
        assert_eq!(parse_fixture_line(bt, "reads"), None);
        assert_eq!(parse_fixture_line("{\"elapsed_ns\":7,\"reads\":9}", "reads"), Some((7, 9)));
        assert_eq!(parse_bpftrace_sum(bt), 100_000);
        let ma = br#"{"schema":"mapaudit/v1","totals":{"writes":100026,"deletes":0,"clears":0,"reads":0,"lost_events":0}}"#;
        assert_eq!(parse_report_count(ma, "writes"), Some(100_026));
        let mr = br#"{"totals":{"writes":26,"reads":100003}}"#;
        assert_eq!(parse_report_count(mr, "reads"), Some(100_003));
        assert_eq!(parse_report_count(b"mapaudit: 0.2s, 26 writes", "writes"), None);
        let j = json_line("warming up\n{\"drained\":2000000,\"drained_per_s\":1000220.07,\"lost\":0,\"x\":1e3,\"frame_size\":[160,48]}\n").unwrap();
        assert_eq!(num(&j, "drained"), Some(2_000_000.0));
        assert_eq!(num(&j, "drained_per_s"), Some(1_000_220.07));
        assert_eq!(num(&j, "x"), Some(1000.0));
        assert_eq!(num(&j, "missing"), None);
        let fdinfo = "pos:\t0\nprog_type:\t2\nprog_id:\t3236\nrun_time_ns:\t42819473\nrun_cnt:\t733727\n";
        assert_eq!(parse_prog_fdinfo(fdinfo), Some((2, 42_819_473, 733_727)));
        assert_eq!(parse_prog_fdinfo("pos:\t0\nmap_type:\t1\n"), None);
    }

    fn fake_results() -> Results {
        let mut probe = ProbeCost { writes: 100_000, ..Default::default() };
        let ms = |v: &[f64]| v.iter().map(|x| x * 1e6).collect::<Vec<_>>();
        probe.runs[Config::Unprobed as usize].elapsed_ns = ms(&[4.0, 5.0, 3.0]);
        probe.runs[Config::Floor as usize].elapsed_ns = ms(&[104.0, 110.0, 120.0]);
        probe.runs[Config::Mapaudit as usize].elapsed_ns = ms(&[204.0, 210.0, 199.0]);
        probe.runs[Config::Mapaudit as usize].counted = vec![100_026, 100_026, 100_030];
        probe.runs[Config::Bpftrace as usize].elapsed_ns = ms(&[1505.0, 1600.0, 1500.0]);
        let step = |rate: u64, lost: f64, producer_s: f64| DrainStep {
            rate,
            drained_per_s: vec![rate as f64; 3],
            produced_per_s: vec![rate as f64; 3],
            lost: vec![lost; 3],
            producer_s: vec![producer_s; 3],
        };
        let mut reads = ProbeCost { workload: Workload::Reads, ..probe.clone() };
        reads.runs[Config::Mapaudit as usize].elapsed_ns = ms(&[304.0, 310.0, 299.0]);
        let budget = vec![BudgetCost {
            unprobed_ns: vec![10e9, 11e9, 10.5e9],
            budgeted_ns: vec![11e9, 12e9, 11.5e9],
            scaled_over_truth: vec![0.95, 1.2, 1.05],
            duty: vec![0.01; 3],
            writes: 4 * 60_000_000,
            work: 0,
            skipped: None,
        }];
        Results {
            probe: Some(probe),
            reads: Some(reads),
            budget,
            bpf: Some(BpfCost { runs: [vec![2e8; 3], vec![2.1e8; 3], vec![2.3e8; 3], vec![2.4e8; 3]], calls: 200_000 }),
            lengths: Some(LengthsCost { read_us: vec![6.0, 7.0, 8.0], read_ns_per_map: vec![220.0; 3], pick_us: vec![90.0; 3] }),
            churn_mem: Some(ChurnMemory {
                seconds: 600,
                rss_mib: vec![590.0; 10],
                peak_rows: 210_001,
                instances: 30_000_001,
                instances_in_classes: 30_000_001,
            }),
            real: vec![real::Row {
                measurement: "6 mapaudit's extra time / the race detector's".into(),
                median: "0.90 s / 1.70 s".into(),
                derived: "0.53×".into(),
                target: "≤ 0.25×".into(),
                verdict: verdict(false),
            }],
            body: Some(BodyCost { floor: Some((58_000, 1000)), mapaudit: Some((876_000, 1000)) }),
            drain: Some(Drain { steps: vec![step(1_000_000, 0.0, 2.0), step(2_000_000, 0.0, 2.0), step(4_000_000, 0.0, 2.4)], seconds: 2 }),
            model: Some(ModelCost {
                tick_ms: vec![180.0, 190.0, 170.0],
                fold_ms: vec![100.0; 3],
                tick_rss_mib: vec![143.0; 3],
                bytes_per_key: vec![752.0; 3],
                report_ms: vec![100.0; 3],
                app_tick_ms: vec![400.0; 3],
                frame_ms: vec![600.0; 3],
                keys: 200_000,
                maps: 10_000,
                max_entries: 65_536,
                frame_size: "160×48".into(),
                frame_na: None,
            }),
            exec_full: Some(ExecFull {
                entries: 4096,
                execs: 200,
                stops: 203,
                p50_ms: 3.0,
                p99_ms: 60.0,
                max_ms: 200.0,
                watchdog_resumes: 0,
                writes_map_full: 123_456,
                largest_drain: (4096, 25.0),
                wall_s: 40.0,
            }),
            snapshot: Some(Snapshot {
                entries: 65_536,
                keys: 65_536,
                ncpus: 2,
                drain_ms: vec![30.0, 32.0, 31.0],
                empty_ms: 12.0,
                fold_ms: 140.0,
                slice_ms: 9.0,
                slice_keys: 4096,
            }),
            fold: Some(foldstep::FoldStep {
                longest_ms: vec![12.0, 13.0, 14.0],
                total_ms: vec![130.0; 3],
                steps: 13,
                step_rows: 8192,
                folded_rows: 200_000,
                idle_rows: 200_000,
            }),
            goroutines: 4,
            writes_per_goroutine: 25_000,
        }
    }

    /// Every line has the header's column count (unescaped pipes), the
    /// second line is the separator, and each section is present.
    #[test]
    fn table_is_well_formed() {
        let md = render_table(&fake_results()).markdown();
        let lines: Vec<&str> = md.lines().collect();
        let cols = |l: &str| l.replace("\\|", "").matches('|').count();
        let n = cols(lines[0]);
        assert_eq!(n, 7, "{md}");
        assert!(lines[1].chars().all(|c| c == '|' || c == '-'), "{md}");
        for l in &lines {
            assert!(l.starts_with("| ") || l.starts_with("|-"), "{l}");
            assert_eq!(cols(l), n, "{l}");
        }
        for section in ["| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 | mapaudit's extra time / the race detector's |", "| 13 |", "| 14 |", "| 15 |"] {
            assert!(md.contains(section), "{section} missing:\n{md}");
        }
        assert!(md.contains("+3.00 µs/read"), "{md}");
        // Budget: 11.5 / 10.5 s = +9.5 %, noise 1/10.5 = 9.5 %: met on time;
        // but one run 20 % off the truth: missed.
        assert!(md.contains("slowdown **+9.5 %**"), "{md}");
        assert!(md.contains("scaled total **1.05 ×** of exact (worst 20 % off)"), "{md}");
        assert!(md.contains("2.83 × floor"), "{md}");
        // The figures the fake data implies: floor +1.06 µs, mapaudit +2.00 µs.
        assert!(md.contains("+1.06 µs/write"), "{md}");
        assert!(md.contains("+2.00 µs/write"), "{md}");
        assert!(md.contains("1.89 × floor"), "{md}");
        assert!(md.contains("**MISSED**"), "{md}");
        assert!(md.contains("no loss"), "{md}");
        assert!(md.contains("producer could not reach the rate"), "{md}");
        // Row 13: p99 60 ms over 50 ms, table full: missed, with the proof of fullness.
        assert!(md.contains("| 60.0 ms (n=203 stops: p50 3.0 ms, max 200.0 ms) | table full: 123,456 writes not counted"), "{md}");
        assert!(md.lines().any(|l| l.starts_with("| 13 |") && l.ends_with("| **MISSED** |")), "{md}");
        // Row 14: (31 − 12) ms / 65,536 keys = 290 ns per key; 31 and 9 ms ≤ 50: met.
        assert!(md.contains("31.0 ms (n=3: 30.0 ms–32.0 ms) | 290 ns per key"), "{md}");
        assert!(md.lines().any(|l| l.starts_with("| 14 |") && l.ends_with("| met |")), "{md}");
    }

    /// `--only` runs the rows named (6–9 as one); a run of some rows renders
    /// only those.
    #[test]
    fn only_selects_rows() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let sel = |argv: &[&str]| Selection::of(&Cli::try_parse_from([&["bench"], argv].concat()).unwrap().bench);
        let all = sel(&[]);
        assert!(all.all() && (1..=ROWS).all(|n| all.wants(n)));
        let some = sel(&["--only", "13,14"]);
        assert!(!some.all() && some.wants(13) && some.wants(14));
        assert!(!(1..=12).any(|n| some.wants(n)));
        let real = sel(&["--only", "7"]);
        assert!((6..=9).all(|n| real.wants(n)) && !real.wants(5) && !real.wants(10));
        assert_eq!(sel(&["--only-real"]), sel(&["--only", "6,7,8,9"]));
        assert!(Cli::try_parse_from(["bench", "--only", "16"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--only", "0"]).is_err());

        let mut r = fake_results();
        (r.probe, r.body, r.reads, r.drain, r.model, r.bpf, r.lengths, r.churn_mem) = (None, None, None, None, None, None, None, None);
        (r.budget, r.real, r.exec_full, r.fold) = (Vec::new(), Vec::new(), None, None);
        let md = render_table(&r).markdown();
        assert_eq!(md.lines().count(), 3, "{md}");
        assert!(md.lines().nth(2).unwrap().starts_with("| 14 |"), "{md}");
    }

    #[test]
    fn extra_time_and_ratios() {
        let r = fake_results();
        let (p, d) = (r.probe.as_ref().unwrap(), r.drain.as_ref().unwrap());
        let e = |c| p.extra_per_write(c).unwrap();
        assert!((e(Config::Floor) - 1060.0).abs() < 1e-6);
        assert!((e(Config::Mapaudit) - 2000.0).abs() < 1e-6);
        assert!((p.ratio(Config::Mapaudit, Config::Floor).unwrap() - 2000.0 / 1060.0).abs() < 1e-9);
        assert!(d.target_met());
        assert!(d.loss_starts().is_none());
    }

    #[test]
    fn bpf_row_arithmetic() {
        let r = fake_results();
        let b = r.bpf.as_ref().unwrap();
        // (2.1e8 - 2e8) / 200,000 calls = 50 ns; (2.3e8 - 2.1e8) / 200,000 = 100 ns.
        assert_eq!(b.per_call(BpfConfig::Floor, BpfConfig::Unprobed), Some(50.0));
        assert_eq!(b.per_call(BpfConfig::Mapaudit, BpfConfig::Floor), Some(100.0));
        let md = render_table(&r).markdown();
        assert!(md.contains("| 10 | bpf(2) updates (200,000 calls): mapaudit |"), "{md}");
    }

    #[test]
    fn tui_pending_row() {
        let mut r = fake_results();
        r.model.as_mut().unwrap().frame_na = Some("n/a (tui pending)".into());
        r.body = None;
        r.probe.as_mut().unwrap().runs[Config::Bpftrace as usize] = ProbeRuns { skipped: Some("bpftrace not installed".into()), ..Default::default() };
        let md = render_table(&r).markdown();
        assert!(md.contains("n/a (tui pending)"), "{md}");
        assert!(md.contains("bpftrace not installed"), "{md}");
    }

    #[test]
    fn md_splice_keeps_the_rest() {
        let gen1 = "## Results: one\n";
        let fresh = splice_md("", gen1);
        assert!(fresh.starts_with("# Benchmarks") && fresh.contains(MD_BEGIN) && fresh.contains("one"));
        let doc = format!("# B\n\nintro\n\n{MD_BEGIN}\nold\n{MD_END}\n\n## Analysis\nkept\n");
        let out = splice_md(&doc, "## Results: two\n");
        assert!(out.contains("intro") && out.contains("## Analysis\nkept") && out.contains("two") && !out.contains("old"));
        assert_eq!(out.matches(MD_BEGIN).count(), 1);
        let appended = splice_md("# B\n\nno markers\n", gen1);
        assert!(appended.contains("no markers") && appended.contains(MD_END));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_int(1_234_567), "1,234,567");
        assert_eq!(fmt_int(999), "999");
        assert_eq!(fmt_ns(41.4), "41 ns");
        assert_eq!(fmt_ns(1160.0), "1.16 µs");
        assert_eq!(fmt_ns(120.3e6), "120.3 ms");
        assert_eq!(fmt_rate(2_000_000.0), "2.00 M/s");
    }
}
