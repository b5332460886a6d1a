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

mod real;

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{is_root, root, setup};

/// Targets (shared/notes/PERFORMANCE.md and the performance issue).
const TARGET_FLOOR_RATIO: f64 = 1.15;
const TARGET_BPFTRACE_RATIO: f64 = 1.0 / 8.0;
const TARGET_DRAIN_RATE: f64 = 2_000_000.0;
const TARGET_TICK_MS: f64 = 50.0;
/// `--max-overhead` targets: slowdown within the budget (plus noise), the
/// scaled total within 10 % of the truth.
const BUDGET_PCT: f64 = 5.0;
const TARGET_BUDGET_ERROR: f64 = 0.10;
/// The drain ladder, events/s.
const DRAIN_RATES: [u64; 5] = [1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000];
/// A drain run whose producer took this much longer than asked did not reach its rate.
const PRODUCER_SLACK: f64 = 1.05;
const MODEL_GOROUTINES: u64 = 100_000;
const MODEL_MAPS: u64 = 10_000;
/// Generated part of BENCHMARKS.md (`--write-md` replaces what is between).
const MD_BEGIN: &str = "<!-- BEGIN cargo xtask bench --write-md -->";
const MD_END: &str = "<!-- END cargo xtask bench --write-md -->";
/// No single run may take longer than this.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

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
    /// Only rows 6–9 (real programs): a quick check of a change to the
    /// session or the collector; printed, BENCHMARKS.md untouched.
    #[arg(long)]
    only_real: bool,
    /// Also replace the generated section of BENCHMARKS.md with this run.
    #[arg(long)]
    pub write_md: bool,
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
    crate::build()?;
    let bins = Bins {
        mapaudit: root().join("target/release/mapaudit"),
        helper: root().join("target/release/mapaudit-bench"),
        fixture: build_fixture()?,
        bpftrace: which("bpftrace"),
    };
    let machine = Machine::probe(&bins);
    eprintln!("xtask: bench on {}", machine.one_line());
    if args.only_real {
        let mut t = Table::new(&["#", "measurement", "median (runs: min–max)", "derived", "target", "verdict"]);
        real_rows(&mut t, &real::rows(&bins.mapaudit, args.real_rounds.max(1), args.build_rounds.max(1))?);
        println!("{}\n\n{}", machine.one_line(), t.markdown());
        return Ok(());
    }

    let probe = probe_cost(&bins, args, Workload::Writes)?;
    let body = if args.no_bpf_stats {
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
    let reads = probe_cost(&bins, args, Workload::Reads)?;
    let budget = vec![
        budget_cost(&bins, args, args.budget_writes, 0)?,
        budget_cost(&bins, args, (args.budget_writes / 200).max(1), args.budget_work)?,
    ];
    let drain = drain_ladder(&bins, args)?;
    let model = model_cost(&bins, args)?;
    let real = if args.real_rounds == 0 { Vec::new() } else { real::rows(&bins.mapaudit, args.real_rounds, args.build_rounds.max(1))? };
    let res =
        Results { probe, body, reads, budget, drain, model, real, goroutines: args.goroutines, writes_per_goroutine: args.writes };

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

// ---------------------------------------------------------------- building

struct Bins {
    mapaudit: PathBuf,
    helper: PathBuf,
    fixture: PathBuf,
    bpftrace: Option<PathBuf>,
}


fn newest_go() -> anyhow::Result<(String, PathBuf)> {
    let v = setup::go_versions()?.last().cloned().context("no Go version listed in fixtures/go-versions.txt")?;
    let go = crate::setup::go_dir().join(&v).join("go/bin/go");
    Ok((v, go))
}

/// Builds `fixtures/go/bench` with the newest Go, like `setup::build_demo`.
fn build_fixture() -> anyhow::Result<PathBuf> {
    let (v, go) = newest_go()?;
    let out = root().join("target/fixtures/bench");
    let mut c = Command::new(go);
    c.current_dir(root().join("fixtures/go/bench"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", crate::setup::go_dir().join(format!("cache-{v}")))
        .env("GOPATH", crate::setup::go_dir().join("gopath"))
        .arg("build")
        .arg("-o")
        .arg(&out)
        .arg(".");
    crate::status(c)?;
    Ok(out)
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

// ------------------------------------------------------------- running

struct Captured {
    stdout: String,
    stderr: String,
    success: bool,
    status: String,
}

/// Runs `cmd` to completion with stdout and stderr captured (read on their
/// own threads: no pipe can fill up), killed after `RUN_TIMEOUT`.
fn capture(mut cmd: Command) -> anyhow::Result<Captured> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("starting {desc}"))?;
    let reader = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let err = reader(child.stderr.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{desc} took longer than {RUN_TIMEOUT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Captured { stdout, stderr, success: status.success(), status: status.to_string() })
}

// ------------------------------------------------------------- probe cost

/// Which workload a probe-cost measurement ran.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum Workload {
    /// Map writes (`runtime.mapassign_faststr`), plain `mapaudit record`.
    #[default]
    Writes,
    /// Lookups (`runtime.mapaccess1_faststr`), `mapaudit record --reads`.
    Reads,
}

impl Workload {
    /// What the fixture prints and mapaudit's summary counts.
    fn noun(self) -> &'static str {
        match self {
            Workload::Writes => "writes",
            Workload::Reads => "reads",
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Workload::Writes => "runtime.mapassign_faststr",
            Workload::Reads => "runtime.mapaccess1_faststr",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Config {
    Unprobed,
    Floor,
    Mapaudit,
    Bpftrace,
}

impl Config {
    const ALL: [Config; 4] = [Config::Unprobed, Config::Floor, Config::Mapaudit, Config::Bpftrace];

    fn label(self) -> &'static str {
        match self {
            Config::Unprobed => "unprobed",
            Config::Floor => "floor: empty BPF program at mapaudit's points",
            Config::Mapaudit => "mapaudit record",
            Config::Bpftrace => "bpftrace one-liner (uprobe at symbol)",
        }
    }
}

/// One configuration's runs.
#[derive(Clone, Debug, Default)]
struct ProbeRuns {
    /// The fixture's own elapsed_ns for its write phase, per run.
    elapsed_ns: Vec<f64>,
    /// Writes the probe counted, per run (mapaudit: its summary; bpftrace: its map).
    counted: Vec<u64>,
    /// Why this configuration was not run.
    skipped: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct ProbeCost {
    workload: Workload,
    runs: [ProbeRuns; 4],
    /// Operations (writes, or reads) the fixture made per run.
    writes: u64,
}

impl ProbeCost {
    fn get(&self, c: Config) -> &ProbeRuns {
        &self.runs[c as usize]
    }

    fn median_ns(&self, c: Config) -> Option<f64> {
        median(&self.get(c).elapsed_ns)
    }

    /// (median(c) − median(unprobed)) / writes, ns.
    fn extra_per_write(&self, c: Config) -> Option<f64> {
        let base = self.median_ns(Config::Unprobed)?;
        Some((self.median_ns(c)? - base) / self.writes.max(1) as f64)
    }

    fn ratio(&self, a: Config, b: Config) -> Option<f64> {
        let (a, b) = (self.extra_per_write(a)?, self.extra_per_write(b)?);
        (b > 0.0).then_some(a / b)
    }
}

fn fixture_args(args: &BenchArgs, writes_per_goroutine: u64, w: Workload) -> Vec<String> {
    let mut a = vec!["-g".into(), args.goroutines.to_string(), "-n".into(), writes_per_goroutine.to_string()];
    if w == Workload::Reads {
        a.push("-reads".into());
    }
    a
}

fn probe_command(bins: &Bins, cfg: Config, fixture_args: &[String], w: Workload) -> Option<Command> {
    match cfg {
        Config::Unprobed => {
            let mut c = Command::new(&bins.fixture);
            c.args(fixture_args);
            Some(c)
        }
        Config::Floor | Config::Mapaudit => {
            let mut c = Command::new(&bins.mapaudit);
            c.arg("record");
            if cfg == Config::Floor {
                c.arg("--bench-floor");
            }
            if w == Workload::Reads {
                c.arg("--reads");
            }
            c.arg("--no-bpf-maps").arg("--").arg(&bins.fixture).args(fixture_args);
            Some(c)
        }
        Config::Bpftrace => {
            let bt = bins.bpftrace.as_ref()?;
            let bin = bins.fixture.display().to_string();
            let mut c = Command::new(bt);
            c.arg("-e")
                .arg(format!("uprobe:{bin}:{} {{ @[tid] = count(); }}", w.symbol()))
                .arg("-c")
                .arg(format!("{bin} {}", fixture_args.join(" ")));
            Some(c)
        }
    }
}

fn probe_cost(bins: &Bins, args: &BenchArgs, w: Workload) -> anyhow::Result<ProbeCost> {
    let fa = fixture_args(args, args.writes, w);
    let mut pc = ProbeCost { workload: w, writes: args.goroutines * args.writes, ..Default::default() };
    if bins.bpftrace.is_none() {
        pc.runs[Config::Bpftrace as usize].skipped = Some("bpftrace not installed (`cargo xtask setup`)".into());
    }
    let total = args.warmup + args.rounds;
    for round in 0..total {
        let warm = round < args.warmup;
        eprintln!(
            "xtask: probe cost ({}) {} {}/{}",
            w.noun(),
            if warm { "warm-up" } else { "round" },
            if warm { round + 1 } else { round + 1 - args.warmup },
            if warm { args.warmup } else { args.rounds }
        );
        for cfg in Config::ALL {
            if pc.get(cfg).skipped.is_some() {
                continue;
            }
            let Some(cmd) = probe_command(bins, cfg, &fa, w) else { continue };
            let out = capture(cmd)?;
            if !out.success {
                bail!("{} run failed ({}):\n{}\n{}", cfg.label(), out.status, out.stdout, out.stderr);
            }
            let (elapsed, writes) = parse_fixture_line(&out.stdout, w.noun())
                .with_context(|| format!("{}: no {{\"elapsed_ns\"…}} line in its output:\n{}", cfg.label(), out.stdout))?;
            if writes != pc.writes {
                bail!("{}: the fixture made {writes} {}, expected {}", cfg.label(), w.noun(), pc.writes);
            }
            let counted = match cfg {
                Config::Mapaudit => parse_mapaudit_count(&out.stderr, w.noun()),
                Config::Bpftrace => Some(parse_bpftrace_sum(&out.stdout)),
                _ => None,
            };
            if warm {
                continue;
            }
            let r = &mut pc.runs[cfg as usize];
            r.elapsed_ns.push(elapsed as f64);
            if let Some(n) = counted {
                r.counted.push(n);
            }
        }
    }
    Ok(pc)
}

/// The fixture's `{"elapsed_ns":…,"writes":…}` line (bpftrace and mapaudit
/// print around it).
fn parse_fixture_line(stdout: &str, noun: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().map(str::trim).find(|l| l.starts_with("{\"elapsed_ns\""))?;
    Some((json_num(line, "elapsed_ns")? as u64, json_num(line, noun)? as u64))
}

/// A number field of a flat JSON object (the helpers print nothing nested
/// we read); enough without a JSON crate in xtask.
fn json_num(s: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let rest = s[s.find(&pat)? + pat.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `mapaudit: 0.2s, 100026 writes, 0 deletes, …` → 100026 (`noun`: writes).
fn parse_mapaudit_count(stderr: &str, noun: &str) -> Option<u64> {
    stderr.lines().filter_map(|l| l.strip_prefix("mapaudit: ")).find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.windows(2).find(|w| w[1].trim_end_matches(',') == noun).and_then(|w| w[0].parse().ok())
    })
}

/// Sum of bpftrace's `@[tid]: N` lines.
fn parse_bpftrace_sum(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter(|l| l.starts_with("@["))
        .filter_map(|l| l.rsplit_once(':').and_then(|(_, n)| n.trim().parse::<u64>().ok()))
        .sum()
}

// ------------------------------------------------------------- budget

/// `--max-overhead BUDGET_PCT` against the unprobed run of the same workload.
#[derive(Clone, Debug, Default)]
struct BudgetCost {
    unprobed_ns: Vec<f64>,
    budgeted_ns: Vec<f64>,
    /// The report's scaled `totals.writes` / the fixture's true count.
    scaled_over_truth: Vec<f64>,
    /// The report's `sampling.duty_cycle`.
    duty: Vec<f64>,
    writes: u64,
    /// `-work` of the fixture (0: the hot loop).
    work: u64,
    skipped: Option<String>,
}

impl BudgetCost {
    fn slowdown(&self) -> Option<f64> {
        Some(median(&self.budgeted_ns)? / median(&self.unprobed_ns)? - 1.0)
    }
}

fn budget_cost(bins: &Bins, args: &BenchArgs, per_goroutine: u64, work: u64) -> anyhow::Result<BudgetCost> {
    let mut b = BudgetCost { writes: args.goroutines * per_goroutine, work, ..Default::default() };
    if args.budget_rounds == 0 {
        b.skipped = Some("skipped (--budget-rounds 0)".into());
        return Ok(b);
    }
    let mut fa = fixture_args(args, per_goroutine, Workload::Writes);
    if work > 0 {
        fa.extend(["-work".into(), work.to_string()]);
    }
    let json = root().join("target/bench-budget.json");
    for round in 0..args.budget_rounds {
        eprintln!("xtask: overhead budget (work {work}) round {}/{}", round + 1, args.budget_rounds);
        let mut plain = Command::new(&bins.fixture);
        plain.args(&fa);
        let out = capture(plain)?;
        let (ns, n) = parse_fixture_line(&out.stdout, "writes").context("unprobed budget run: no timing line")?;
        if n != b.writes {
            bail!("budget run: the fixture made {n} writes, expected {}", b.writes);
        }
        b.unprobed_ns.push(ns as f64);

        let mut cmd = Command::new(&bins.mapaudit);
        // Under `sudo -E cargo xtask bench`, mapaudit would write the report
        // as the sudo user, and target/ may be root's: record as root.
        cmd.env_remove("SUDO_UID").env_remove("SUDO_GID");
        cmd.args(["record", "--no-bpf-maps", "--max-overhead"])
            .arg(BUDGET_PCT.to_string())
            .arg("--json")
            .arg(&json)
            .arg("--")
            .arg(&bins.fixture)
            .args(&fa);
        let out = capture(cmd)?;
        if !out.success {
            bail!("budgeted run failed ({}):\n{}", out.status, out.stderr);
        }
        let (ns, _) = parse_fixture_line(&out.stdout, "writes").context("budgeted run: no timing line")?;
        b.budgeted_ns.push(ns as f64);
        let report = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        // `totals` comes first in the report: its "writes" is the first.
        let scaled = json_num(&report, "writes").context("report without totals.writes")?;
        b.scaled_over_truth.push(scaled / b.writes as f64);
        if let Some(d) = json_num(&report, "duty_cycle") {
            b.duty.push(d);
        }
    }
    Ok(b)
}

fn budget_row(t: &mut Table, b: &BudgetCost, goroutines: u64) {
    let label = format!(
        "--max-overhead {BUDGET_PCT:.0}% on the write workload ({goroutines} goroutines × {} writes{})",
        fmt_int(b.writes / goroutines.max(1)),
        if b.work > 0 { format!(", {} arithmetic steps between writes", fmt_int(b.work)) } else { ", hot loop".into() }
    );
    if let Some(why) = &b.skipped {
        t.row(&["5", &label, why, "", "", ""]);
        return;
    }
    let med = format!("{} budgeted vs {} unprobed", spread(&b.budgeted_ns, fmt_ns), spread(&b.unprobed_ns, fmt_ns));
    let slow = b.slowdown();
    let err = median(&b.scaled_over_truth);
    let worst = b.scaled_over_truth.iter().map(|x| (x - 1.0).abs()).fold(0.0, f64::max);
    let derived = format!(
        "slowdown **{}**; scaled total **{}** of exact (worst {:.0} % off); duty cycle {}",
        slow.map(|x| format!("{:+.1} %", x * 100.0)).unwrap_or_else(|| "n/a".into()),
        err.map(|x| format!("{x:.2} ×")).unwrap_or_else(|| "n/a".into()),
        worst * 100.0,
        median(&b.duty).map(|d| format!("{:.2} %", d * 100.0)).unwrap_or_else(|| "n/a".into()),
    );
    // "± noise": the unprobed runs' own spread.
    let noise = match (b.unprobed_ns.iter().copied().reduce(f64::min), b.unprobed_ns.iter().copied().reduce(f64::max), median(&b.unprobed_ns)) {
        (Some(lo), Some(hi), Some(m)) if m > 0.0 => (hi - lo) / m,
        _ => 0.0,
    };
    let met = slow.is_some_and(|x| x <= BUDGET_PCT / 100.0 + noise) && worst <= TARGET_BUDGET_ERROR;
    let target = format!(
        "slowdown ≤ {BUDGET_PCT:.0} % ± noise ({:.0} %); within {:.0} % of exact",
        noise * 100.0,
        TARGET_BUDGET_ERROR * 100.0
    );
    t.row(&["5", &label, &med, &derived, &target, &verdict(met)]);
}

// ------------------------------------------------------------- BPF body

/// Kernel bpf_stats for the uprobe program alone (no trap, no dispatch).
#[derive(Clone, Debug, Default)]
struct BodyCost {
    /// (run_time_ns, run_cnt) of map_write_floor and map_write.
    floor: Option<(u64, u64)>,
    mapaudit: Option<(u64, u64)>,
}

impl BodyCost {
    fn ns_per_run(v: Option<(u64, u64)>) -> Option<f64> {
        v.filter(|(_, n)| *n > 0).map(|(t, n)| t as f64 / n as f64)
    }
}

/// Restores kernel.bpf_stats_enabled when dropped.
struct StatsGuard(String);

impl Drop for StatsGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.0.as_bytes());
    }
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Runs floor and mapaudit once more, untimed, with bpf_stats on (they
/// cost ~2 clock reads per call: never during the timed rounds), on a 10×
/// longer workload, sampling the uprobe program's run_time_ns/run_cnt from
/// mapaudit's own prog fd (/proc/PID/fdinfo: this process's program, not
/// another mapaudit's).
fn bpf_body_cost(bins: &Bins, args: &BenchArgs) -> anyhow::Result<BodyCost> {
    let old = std::fs::read_to_string(BPF_STATS).context("reading kernel.bpf_stats_enabled")?;
    std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
    let _guard = StatsGuard(old.trim().to_string());
    let fa = fixture_args(args, args.writes * 10, Workload::Writes);
    let mut body = BodyCost::default();
    for cfg in [Config::Floor, Config::Mapaudit] {
        eprintln!("xtask: bpf_stats pass: {}", cfg.label());
        let Some(mut cmd) = probe_command(bins, cfg, &fa, Workload::Writes) else { continue };
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().context("starting mapaudit")?;
        let pid = child.id();
        let start = Instant::now();
        let mut last = None;
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if start.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bpf_stats run took longer than {RUN_TIMEOUT:?}");
            }
            if let Some(s) = uprobe_prog_stats(pid) {
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match cfg {
            Config::Floor => body.floor = last,
            _ => body.mapaudit = last,
        }
    }
    Ok(body)
}

/// run_time_ns and run_cnt of the kprobe-type (uprobe) program `pid` holds
/// (mapaudit loads exactly one: map_write or map_write_floor).
fn uprobe_prog_stats(pid: u32) -> Option<(u64, u64)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| parse_prog_fdinfo(&s))
        .filter(|p| p.0 == BPF_PROG_TYPE_KPROBE)
        .map(|p| (p.1, p.2))
        .max_by_key(|p| p.1)
}

const BPF_PROG_TYPE_KPROBE: u64 = 2;

/// (prog_type, run_time_ns, run_cnt) of a BPF program fd's fdinfo.
fn parse_prog_fdinfo(s: &str) -> Option<(u64, u64, u64)> {
    let field = |k: &str| {
        s.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(':')).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    Some((field("prog_type")?, field("run_time_ns")?, field("run_cnt")?))
}

// ------------------------------------------------------------- drain

#[derive(Clone, Debug, Default)]
struct DrainStep {
    rate: u64,
    drained_per_s: Vec<f64>,
    produced_per_s: Vec<f64>,
    lost: Vec<f64>,
    producer_s: Vec<f64>,
}

impl DrainStep {
    fn runs(&self) -> usize {
        self.lost.len()
    }

    fn runs_with_loss(&self) -> usize {
        self.lost.iter().filter(|l| **l > 0.0).count()
    }

    fn median_lost(&self) -> f64 {
        median(&self.lost).unwrap_or(0.0)
    }

    /// The producer took longer than asked: it could not reach the rate.
    fn producer_limited(&self, seconds: u64) -> bool {
        median(&self.producer_s).is_some_and(|s| s > seconds as f64 * PRODUCER_SLACK)
    }
}

#[derive(Clone, Debug, Default)]
struct Drain {
    steps: Vec<DrainStep>,
    seconds: u64,
}

impl Drain {
    /// The lowest rate whose median run lost events.
    fn loss_starts(&self) -> Option<&DrainStep> {
        self.steps.iter().find(|s| s.median_lost() > 0.0)
    }

    /// ≥ 2M events/s drained with zero loss in every run of some step.
    fn target_met(&self) -> bool {
        self.steps.iter().any(|s| {
            s.runs() > 0
                && s.runs_with_loss() == 0
                && median(&s.drained_per_s).is_some_and(|r| r >= TARGET_DRAIN_RATE * 0.98)
        })
    }
}

fn drain_run(bins: &Bins, rate: u64, seconds: u64) -> anyhow::Result<String> {
    let mut c = Command::new(&bins.helper);
    c.args(["drain", &rate.to_string(), &seconds.to_string()]);
    let out = capture(c)?;
    if !out.success {
        bail!("mapaudit-bench drain {rate} {seconds} failed ({}): {}", out.status, out.stderr.trim());
    }
    Ok(out.stdout)
}

/// Round 1 steps the rate up until a run loses events or its producer
/// cannot reach the rate; later rounds repeat that ladder, interleaved.
fn drain_ladder(bins: &Bins, args: &BenchArgs) -> anyhow::Result<Drain> {
    let mut d = Drain { steps: Vec::new(), seconds: args.drain_seconds };
    for round in 0..args.drain_rounds {
        let rates: Vec<u64> = if round == 0 { DRAIN_RATES.to_vec() } else { d.steps.iter().map(|s| s.rate).collect() };
        for (i, rate) in rates.into_iter().enumerate() {
            eprintln!("xtask: drain round {}/{}: {rate} events/s", round + 1, args.drain_rounds);
            let json = drain_run(bins, rate, args.drain_seconds)?;
            let num = |k: &str| json_num(&json, k).with_context(|| format!("mapaudit-bench drain: no {k} in {json}"));
            if round == 0 {
                d.steps.push(DrainStep { rate, ..Default::default() });
            }
            let s = &mut d.steps[i];
            s.drained_per_s.push(num("drained_per_s")?);
            s.produced_per_s.push(num("produced_per_s")?);
            s.lost.push(num("lost")?);
            s.producer_s.push(num("producer_s")?);
            if round == 0 && (s.lost[0] > 0.0 || s.producer_limited(args.drain_seconds)) {
                break;
            }
        }
    }
    Ok(d)
}

// ------------------------------------------------------------- model

#[derive(Clone, Debug, Default)]
struct ModelCost {
    tick_ms: Vec<f64>,
    fold_ms: Vec<f64>,
    tick_rss_mib: Vec<f64>,
    bytes_per_key: Vec<f64>,
    report_ms: Vec<f64>,
    app_tick_ms: Vec<f64>,
    frame_ms: Vec<f64>,
    keys: u64,
    maps: u64,
    max_entries: u64,
    frame_size: String,
    /// Why the TUI frame was not measured.
    frame_na: Option<String>,
}

fn model_cost(bins: &Bins, args: &BenchArgs) -> anyhow::Result<ModelCost> {
    let mut m = ModelCost::default();
    for i in 0..args.model_runs {
        eprintln!("xtask: model run {}/{}", i + 1, args.model_runs);
        let mut c = Command::new(&bins.helper);
        c.args(["model", &MODEL_GOROUTINES.to_string(), &MODEL_MAPS.to_string()]);
        let out = capture(c)?;
        if !out.success {
            bail!("mapaudit-bench model failed ({}): {}", out.status, out.stderr.trim());
        }
        let j = out.stdout.trim();
        let num = |k: &str| json_num(j, k).with_context(|| format!("mapaudit-bench model: no {k} in {j}"));
        m.tick_ms.push(num("tick_ms")?);
        m.fold_ms.push(num("fold_ms")?);
        m.report_ms.push(num("report_ms")?);
        m.keys = num("keys")? as u64;
        m.maps = num("maps")? as u64;
        // Newer fields: absent from an older helper.
        m.max_entries = json_num(j, "max_entries_default").unwrap_or(0.0) as u64;
        m.tick_rss_mib.push(json_num(j, "tick_rss_mib").or_else(|| json_num(j, "rss_mib")).unwrap_or(0.0));
        if let Some(b) = json_num(j, "bytes_per_key") {
            m.bytes_per_key.push(b);
        }
        match (json_num(j, "frame_ms"), json_num(j, "app_tick_ms")) {
            (Some(f), Some(a)) => {
                m.frame_ms.push(f);
                m.app_tick_ms.push(a);
                if let Some(sz) = j.split("\"frame_size\":[").nth(1).and_then(|r| r.split(']').next()) {
                    m.frame_size = sz.replace(',', "×");
                }
            }
            _ => m.frame_na = Some("n/a (tui pending)".into()),
        }
    }
    if m.frame_na.is_none() && !tui_has_draw() {
        m.frame_na = Some("n/a (tui pending)".into());
    }
    Ok(m)
}

/// `probe-user/src/tui/` defines a `draw` fn.
fn tui_has_draw() -> bool {
    std::fs::read_dir(root().join("probe-user/src/tui"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|s| s.contains("pub fn draw("))
}

// ------------------------------------------------------------- results

struct Results {
    probe: ProbeCost,
    body: Option<BodyCost>,
    /// Row 4: the read-heavy workload under `--reads`.
    reads: ProbeCost,
    /// Row 5: `--max-overhead`, on the hot loop and the light workload.
    budget: Vec<BudgetCost>,
    drain: Drain,
    model: ModelCost,
    /// Rows 6–9.
    real: Vec<real::Row>,
    goroutines: u64,
    writes_per_goroutine: u64,
}

/// Median; the mean of the middle two for an even count.
fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_ms(ms: f64) -> String {
    fmt_ns(ms * 1e6)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 { format!("{:.2} M/s", r / 1e6) } else { format!("{:.0} k/s", r / 1e3) }
}

fn fmt_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> String {
    if met { "met".into() } else { "**MISSED**".into() }
}

/// `median (n=7: min–max)`.
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    match median(v) {
        None => "—".into(),
        Some(m) => {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{} (n={}: {}–{})", f(m), v.len(), f(lo), f(hi))
        }
    }
}

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: &[&str]) {
        let mut r: Vec<String> = cells.iter().map(|s| s.to_string()).collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
    }

    /// GitHub markdown: one line per row, `|` in cells escaped.
    fn markdown(&self) -> String {
        let cell = |s: &str| {
            let s = s.replace('|', "\\|").replace('\n', " ");
            if s.is_empty() { " ".to_string() } else { s }
        };
        let line = |cells: &[String]| format!("| {} |", cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(&format!("|{}", "---|".repeat(self.header.len())));
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r));
        }
        out
    }
}

fn render_table(r: &Results) -> Table {
    let mut t = Table::new(&["#", "measurement", "median (runs: min–max)", "derived", "target", "verdict"]);
    let p = &r.probe;
    let workload = format!("{} goroutines × {} writes", r.goroutines, fmt_int(r.writes_per_goroutine));

    // 1. Probe cost.
    probe_rows(&mut t, "1", p, &workload);
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

    // 2. Drain.
    let d = &r.drain;
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

    // 3. Model.
    let m = &r.model;
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

    // 4. --reads.
    let workload = format!("{} goroutines × {} reads under a read lock", r.goroutines, fmt_int(r.writes_per_goroutine));
    probe_rows(&mut t, "4", &r.reads, &workload);

    // 5. Overhead budget.
    for b in &r.budget {
        budget_row(&mut t, b, r.goroutines);
    }

    // 6–9. Real programs.
    real_rows(&mut t, &r.real);
    t
}

/// Rows 6–9 into the table (each measurement starts with its row number).
fn real_rows(t: &mut Table, rows: &[real::Row]) {
    for row in rows {
        let (num, what) = row.measurement.split_once(' ').unwrap_or(("", &row.measurement));
        t.row(&[num, what, &row.median, &row.derived, &row.target, &row.verdict]);
    }
}

/// The probe-cost rows of one workload: each configuration, then
/// mapaudit / bpftrace.
fn probe_rows(t: &mut Table, num: &str, p: &ProbeCost, workload: &str) {
    let w = p.writes;
    let noun = p.workload.noun();
    let one = noun.trim_end_matches('s');
    for cfg in Config::ALL {
        let runs = p.get(cfg);
        let mut label = match cfg {
            Config::Unprobed => format!("{} ({workload}), timed phase", cfg.label()),
            _ => cfg.label().into(),
        };
        if cfg == Config::Mapaudit && p.workload == Workload::Reads {
            label.push_str(" --reads");
        }
        if let Some(why) = &runs.skipped {
            t.row(&[num, &label, &format!("n/a ({why})"), "", "", ""]);
            continue;
        }
        let med = spread(&runs.elapsed_ns, fmt_ns);
        let mut derived = match cfg {
            Config::Unprobed => p.median_ns(cfg).map(|m| format!("{}/{one}", fmt_ns(m / w.max(1) as f64))).unwrap_or_default(),
            _ => p.extra_per_write(cfg).map(|e| format!("+{}/{one}", fmt_ns(e))).unwrap_or_default(),
        };
        if !runs.counted.is_empty() {
            let min = runs.counted.iter().copied().min().unwrap_or(0);
            let _ = write!(derived, "; counted ≥ {} {noun}{}", fmt_int(min), if min < w { " (**missed some**)" } else { "" });
        }
        let (target, verdict_s) = match cfg {
            Config::Mapaudit => match p.ratio(Config::Mapaudit, Config::Floor) {
                Some(x) => {
                    let _ = write!(derived, "; **{x:.2} × floor**");
                    (format!("≤ {TARGET_FLOOR_RATIO:.2} × floor"), verdict(x <= TARGET_FLOOR_RATIO))
                }
                None => (format!("≤ {TARGET_FLOOR_RATIO:.2} × floor"), "n/a".into()),
            },
            _ => (String::new(), String::new()),
        };
        t.row(&[num, &label, &med, &derived, &target, &verdict_s]);
    }
    let target = format!("≤ 1/{:.0} ({TARGET_BPFTRACE_RATIO:.3})", 1.0 / TARGET_BPFTRACE_RATIO);
    let label = format!("mapaudit / bpftrace, extra time per {one}");
    match p.ratio(Config::Mapaudit, Config::Bpftrace) {
        Some(x) => t.row(&[
            num,
            &label,
            "",
            &format!("**{x:.3}** (1/{:.1})", 1.0 / x),
            &target,
            &verdict(x <= TARGET_BPFTRACE_RATIO),
        ]),
        None => t.row(&[num, &label, "n/a", "", &target, "n/a"]),
    }
}

// ------------------------------------------------------------- report

struct Machine {
    kernel: String,
    cpu: String,
    nproc: String,
    date: String,
    commit: String,
    go: String,
    bpftrace: String,
    load_before: String,
    load_after: String,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

impl Machine {
    fn probe(bins: &Bins) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, v)| v.trim().to_string())))
            .unwrap_or_else(|| "?".into());
        let dirty = !sh("git", &["-C", &root().display().to_string(), "status", "--porcelain"]).is_empty();
        let commit = format!(
            "{}{}",
            sh("git", &["-C", &root().display().to_string(), "rev-parse", "--short", "HEAD"]),
            if dirty { " (with uncommitted changes)" } else { "" }
        );
        let go = newest_go().map(|(v, _)| v).unwrap_or_else(|_| "?".into());
        let bpftrace = bins.bpftrace.as_ref().map(|b| sh(&b.display().to_string(), &["--version"])).unwrap_or_else(|| "not installed".into());
        Self {
            kernel: sh("uname", &["-r"]),
            cpu,
            nproc: sh("nproc", &[]),
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit,
            go,
            bpftrace,
            load_before: loadavg(),
            load_after: String::new(),
        }
    }

    fn one_line(&self) -> String {
        format!("kernel {}, {} × {}, load {}", self.kernel, self.nproc, self.cpu, self.load_before)
    }
}

fn command_line(args: &BenchArgs) -> String {
    let mut c = String::from("sudo -E cargo xtask bench");
    let d = [
        ("--rounds", args.rounds, 7),
        ("--warmup", args.warmup, 1),
        ("--goroutines", args.goroutines as usize, 4),
        ("--writes", args.writes as usize, 25_000),
        ("--drain-rounds", args.drain_rounds, 3),
        ("--drain-seconds", args.drain_seconds as usize, 2),
        ("--model-runs", args.model_runs, 3),
    ];
    for (flag, v, default) in d {
        if v != default {
            let _ = write!(c, " {flag} {v}");
        }
    }
    if args.no_bpf_stats {
        c.push_str(" --no-bpf-stats");
    }
    c
}

fn render_md(m: &Machine, t: &Table, args: &BenchArgs) -> String {
    format!(
        "## Results: {date}\n\n\
         Machine: Linux {kernel}, {cpu}, nproc {nproc}; load average {lb} before, {la} after. \
         mapaudit {commit}; fixture built with Go {go}; {bpftrace}.\n\n\
         Reproduce: `{cmd}` (add `--write-md` to update this file).\n\n\
         {table}\n",
        date = m.date,
        kernel = m.kernel,
        cpu = m.cpu,
        nproc = m.nproc,
        lb = m.load_before,
        la = m.load_after,
        commit = m.commit,
        go = m.go,
        bpftrace = m.bpftrace,
        cmd = command_line(args),
        table = t.markdown(),
    )
}

/// `old` with its generated section replaced by `generated` (appended when
/// `old` has none); everything else in BENCHMARKS.md is kept.
fn splice_md(old: &str, generated: &str) -> String {
    let block = format!("{MD_BEGIN}\n{}\n{MD_END}", generated.trim_end());
    match (old.find(MD_BEGIN), old.find(MD_END)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + MD_END.len()..]),
        _ if old.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
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
        let ma = "mapaudit: recording `x` (pid 1)\nmapaudit: 0.2s, 100026 writes, 0 deletes, 0 clears in 1 process(es); 0 lost\n";
        assert_eq!(parse_mapaudit_count(ma, "writes"), Some(100_026));
        let mr = "mapaudit: 0.2s, 26 writes, 0 deletes, 0 clears, 100003 reads in 1 process(es); 0 lost\n";
        assert_eq!(parse_mapaudit_count(mr, "reads"), Some(100_003));
        let j = r#"{"drained":2000000,"drained_per_s":1000220.07,"lost":0,"x":1e3,"frame_size":[160,48]}"#;
        assert_eq!(json_num(j, "drained"), Some(2_000_000.0));
        assert_eq!(json_num(j, "drained_per_s"), Some(1_000_220.07));
        assert_eq!(json_num(j, "x"), Some(1000.0));
        assert_eq!(json_num(j, "missing"), None);
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
            probe,
            reads,
            budget,
            real: vec![real::Row {
                measurement: "6 mapaudit's extra time / the race detector's".into(),
                median: "0.90 s / 1.70 s".into(),
                derived: "0.53×".into(),
                target: "≤ 0.25×".into(),
                verdict: verdict(false),
            }],
            body: Some(BodyCost { floor: Some((58_000, 1000)), mapaudit: Some((876_000, 1000)) }),
            drain: Drain { steps: vec![step(1_000_000, 0.0, 2.0), step(2_000_000, 0.0, 2.0), step(4_000_000, 0.0, 2.4)], seconds: 2 },
            model: ModelCost {
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
            },
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
        for section in ["| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 | mapaudit's extra time / the race detector's |"] {
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
    }

    #[test]
    fn extra_time_and_ratios() {
        let r = fake_results();
        let e = |c| r.probe.extra_per_write(c).unwrap();
        assert!((e(Config::Floor) - 1060.0).abs() < 1e-6);
        assert!((e(Config::Mapaudit) - 2000.0).abs() < 1e-6);
        assert!((r.probe.ratio(Config::Mapaudit, Config::Floor).unwrap() - 2000.0 / 1060.0).abs() < 1e-9);
        assert!(r.drain.target_met());
        assert!(r.drain.loss_starts().is_none());
    }

    #[test]
    fn tui_pending_row() {
        let mut r = fake_results();
        r.model.frame_na = Some("n/a (tui pending)".into());
        r.body = None;
        r.probe.runs[Config::Bpftrace as usize] = ProbeRuns { skipped: Some("bpftrace not installed".into()), ..Default::default() };
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
