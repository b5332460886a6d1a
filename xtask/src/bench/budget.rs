//! Row 5: `--max-overhead` against the unprobed run of the same workload:
//! slowdown, and the report's scaled total against the fixture's count.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

/// `--max-overhead` targets: slowdown within the budget (plus noise), the
/// scaled total within 10 % of the truth.
pub(super) const BUDGET_PCT: f64 = 5.0;

pub(super) const TARGET_BUDGET_ERROR: f64 = 0.10;

/// `--max-overhead BUDGET_PCT` against the unprobed run of the same workload.
#[derive(Clone, Debug, Default)]
pub(super) struct BudgetCost {
    pub(super) unprobed_ns: Vec<f64>,
    pub(super) budgeted_ns: Vec<f64>,
    /// The report's scaled `totals.writes` / the fixture's true count.
    pub(super) scaled_over_truth: Vec<f64>,
    /// The report's `sampling.duty_cycle`.
    pub(super) duty: Vec<f64>,
    pub(super) writes: u64,
    /// `-work` of the fixture (0: the hot loop).
    pub(super) work: u64,
    pub(super) skipped: Option<String>,
}

impl BudgetCost {
    pub(super) fn slowdown(&self) -> Option<f64> {
        Some(median(&self.budgeted_ns)? / median(&self.unprobed_ns)? - 1.0)
    }
}

pub(super) fn budget_cost(bins: &Bins, args: &BenchArgs, per_goroutine: u64, work: u64) -> anyhow::Result<BudgetCost> {
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
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?)
            .with_context(|| format!("parsing {}", json.display()))?;
        let scaled = report["totals"]["writes"].as_f64().context("report without totals.writes")?;
        b.scaled_over_truth.push(scaled / b.writes as f64);
        if let Some(d) = report["sampling"]["duty_cycle"].as_f64() {
            b.duty.push(d);
        }
    }
    Ok(b)
}

pub(super) fn budget_row(t: &mut Table, b: &BudgetCost, goroutines: u64) {
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
