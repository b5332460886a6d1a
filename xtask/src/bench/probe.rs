//! Rows 1 and 4: probe cost per write (or read) — unprobed, the empty-BPF
//! floor, mapaudit, bpftrace — from the fixture's own timing of its write
//! phase; counts from mapaudit's report and bpftrace's map. Then, untimed,
//! the kernel's bpf_stats for the BPF body alone.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

/// Targets (shared/notes/PERFORMANCE.md and the performance issue).
pub(super) const TARGET_FLOOR_RATIO: f64 = 1.15;

pub(super) const TARGET_BPFTRACE_RATIO: f64 = 1.0 / 8.0;

/// Which workload a probe-cost measurement ran.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(super) enum Workload {
    /// Map writes (`runtime.mapassign_faststr`), plain `mapaudit record`.
    #[default]
    Writes,
    /// Lookups (`runtime.mapaccess1_faststr`), `mapaudit record --reads`.
    Reads,
}

impl Workload {
    /// What the fixture prints and mapaudit's summary counts.
    pub(super) fn noun(self) -> &'static str {
        match self {
            Workload::Writes => "writes",
            Workload::Reads => "reads",
        }
    }

    pub(super) fn symbol(self) -> &'static str {
        match self {
            Workload::Writes => "runtime.mapassign_faststr",
            Workload::Reads => "runtime.mapaccess1_faststr",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Config {
    Unprobed,
    Floor,
    Mapaudit,
    Bpftrace,
}

impl Config {
    pub(super) const ALL: [Config; 4] = [Config::Unprobed, Config::Floor, Config::Mapaudit, Config::Bpftrace];

    pub(super) fn label(self) -> &'static str {
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
pub(super) struct ProbeRuns {
    /// The fixture's own elapsed_ns for its write phase, per run.
    pub(super) elapsed_ns: Vec<f64>,
    /// Writes the probe counted, per run (mapaudit: its summary; bpftrace: its map).
    pub(super) counted: Vec<u64>,
    /// Why this configuration was not run.
    pub(super) skipped: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct ProbeCost {
    pub(super) workload: Workload,
    pub(super) runs: [ProbeRuns; 4],
    /// Operations (writes, or reads) the fixture made per run.
    pub(super) writes: u64,
}

impl ProbeCost {
    pub(super) fn get(&self, c: Config) -> &ProbeRuns {
        &self.runs[c as usize]
    }

    pub(super) fn median_ns(&self, c: Config) -> Option<f64> {
        median(&self.get(c).elapsed_ns)
    }

    /// (median(c) − median(unprobed)) / writes, ns.
    pub(super) fn extra_per_write(&self, c: Config) -> Option<f64> {
        let base = self.median_ns(Config::Unprobed)?;
        Some((self.median_ns(c)? - base) / self.writes.max(1) as f64)
    }

    pub(super) fn ratio(&self, a: Config, b: Config) -> Option<f64> {
        let (a, b) = (self.extra_per_write(a)?, self.extra_per_write(b)?);
        (b > 0.0).then_some(a / b)
    }
}

pub(super) fn fixture_args(args: &BenchArgs, writes_per_goroutine: u64, w: Workload) -> Vec<String> {
    let mut a = vec!["-g".into(), args.goroutines.to_string(), "-n".into(), writes_per_goroutine.to_string()];
    if w == Workload::Reads {
        a.push("-reads".into());
    }
    a
}

pub(super) fn probe_command(bins: &Bins, cfg: Config, fixture_args: &[String], w: Workload) -> Option<Command> {
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
            // The count is read from the report. Under `sudo -E cargo xtask
            // bench`, mapaudit would write it as the sudo user, and target/
            // may be root's: record as root.
            c.env_remove("SUDO_UID").env_remove("SUDO_GID");
            c.arg("--no-bpf-maps").arg("--json").arg(probe_report()).arg("--").arg(&bins.fixture).args(fixture_args);
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

pub(super) fn probe_cost(bins: &Bins, args: &BenchArgs, w: Workload) -> anyhow::Result<ProbeCost> {
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
                Config::Mapaudit => Some(report_count(&probe_report(), w.noun())?),
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
/// print around it): elapsed ns and the count it made of `noun`.
pub(super) fn parse_fixture_line(stdout: &str, noun: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().map(str::trim).find(|l| l.starts_with("{\"elapsed_ns\""))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some((v.get("elapsed_ns")?.as_u64()?, v.get(noun)?.as_u64()?))
}

/// Where the probe-cost runs of mapaudit write their report.
pub(super) fn probe_report() -> std::path::PathBuf {
    root().join("target/bench-probe.json")
}

/// `totals.<noun>` of the report at `path` (what mapaudit counted).
pub(super) fn report_count(path: &std::path::Path, noun: &str) -> anyhow::Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_report_count(&data, noun).with_context(|| format!("{}: no totals.{noun}", path.display()))
}

/// `totals.<noun>` of a report's bytes.
pub(super) fn parse_report_count(data: &[u8], noun: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    v.get("totals")?.get(noun)?.as_u64()
}

/// Sum of bpftrace's `@[tid]: N` lines.
pub(super) fn parse_bpftrace_sum(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter(|l| l.starts_with("@["))
        .filter_map(|l| l.rsplit_once(':').and_then(|(_, n)| n.trim().parse::<u64>().ok()))
        .sum()
}

/// Kernel bpf_stats for the uprobe program alone (no trap, no dispatch).
#[derive(Clone, Debug, Default)]
pub(super) struct BodyCost {
    /// (run_time_ns, run_cnt) of map_write_floor and map_write.
    pub(super) floor: Option<(u64, u64)>,
    pub(super) mapaudit: Option<(u64, u64)>,
}

impl BodyCost {
    pub(super) fn ns_per_run(v: Option<(u64, u64)>) -> Option<f64> {
        v.filter(|(_, n)| *n > 0).map(|(t, n)| t as f64 / n as f64)
    }
}

/// Restores kernel.bpf_stats_enabled when dropped.
pub(super) struct StatsGuard(String);

impl Drop for StatsGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.0.as_bytes());
    }
}

pub(super) const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Runs floor and mapaudit once more, untimed, with bpf_stats on (they
/// cost ~2 clock reads per call: never during the timed rounds), on a 10×
/// longer workload, sampling the uprobe program's run_time_ns/run_cnt from
/// mapaudit's own prog fd (/proc/PID/fdinfo: this process's program, not
/// another mapaudit's).
pub(super) fn bpf_body_cost(bins: &Bins, args: &BenchArgs) -> anyhow::Result<BodyCost> {
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
pub(super) fn uprobe_prog_stats(pid: u32) -> Option<(u64, u64)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| parse_prog_fdinfo(&s))
        .filter(|p| p.0 == BPF_PROG_TYPE_KPROBE)
        .map(|p| (p.1, p.2))
        .max_by_key(|p| p.1)
}

pub(super) const BPF_PROG_TYPE_KPROBE: u64 = 2;

/// (prog_type, run_time_ns, run_cnt) of a BPF program fd's fdinfo.
pub(super) fn parse_prog_fdinfo(s: &str) -> Option<(u64, u64, u64)> {
    let field = |k: &str| {
        s.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(':')).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    Some((field("prog_type")?, field("run_time_ns")?, field("run_cnt")?))
}

/// The probe-cost rows of one workload: each configuration, then
/// mapaudit / bpftrace.
pub(super) fn probe_rows(t: &mut Table, num: &str, p: &ProbeCost, workload: &str) {
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
