//! Row 2: ring-buffer drain, the rate stepped up until events are lost or
//! the producer cannot keep the rate.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

pub(super) const TARGET_DRAIN_RATE: f64 = 2_000_000.0;

/// The drain ladder, events/s.
pub(super) const DRAIN_RATES: [u64; 5] = [1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000];

/// A drain run whose producer took this much longer than asked did not reach its rate.
pub(super) const PRODUCER_SLACK: f64 = 1.05;

#[derive(Clone, Debug, Default)]
pub(super) struct DrainStep {
    pub(super) rate: u64,
    pub(super) drained_per_s: Vec<f64>,
    pub(super) produced_per_s: Vec<f64>,
    pub(super) lost: Vec<f64>,
    pub(super) producer_s: Vec<f64>,
}

impl DrainStep {
    pub(super) fn runs(&self) -> usize {
        self.lost.len()
    }

    pub(super) fn runs_with_loss(&self) -> usize {
        self.lost.iter().filter(|l| **l > 0.0).count()
    }

    pub(super) fn median_lost(&self) -> f64 {
        median(&self.lost).unwrap_or(0.0)
    }

    /// The producer took longer than asked: it could not reach the rate.
    pub(super) fn producer_limited(&self, seconds: u64) -> bool {
        median(&self.producer_s).is_some_and(|s| s > seconds as f64 * PRODUCER_SLACK)
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct Drain {
    pub(super) steps: Vec<DrainStep>,
    pub(super) seconds: u64,
}

impl Drain {
    /// The lowest rate whose median run lost events.
    pub(super) fn loss_starts(&self) -> Option<&DrainStep> {
        self.steps.iter().find(|s| s.median_lost() > 0.0)
    }

    /// ≥ 2M events/s drained with zero loss in every run of some step.
    pub(super) fn target_met(&self) -> bool {
        self.steps.iter().any(|s| {
            s.runs() > 0
                && s.runs_with_loss() == 0
                && median(&s.drained_per_s).is_some_and(|r| r >= TARGET_DRAIN_RATE * 0.98)
        })
    }
}

pub(super) fn drain_run(bins: &Bins, rate: u64, seconds: u64) -> anyhow::Result<String> {
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
pub(super) fn drain_ladder(bins: &Bins, args: &BenchArgs) -> anyhow::Result<Drain> {
    let mut d = Drain { steps: Vec::new(), seconds: args.drain_seconds };
    for round in 0..args.drain_rounds {
        let rates: Vec<u64> = if round == 0 { DRAIN_RATES.to_vec() } else { d.steps.iter().map(|s| s.rate).collect() };
        for (i, rate) in rates.into_iter().enumerate() {
            eprintln!("xtask: drain round {}/{}: {rate} events/s", round + 1, args.drain_rounds);
            let out = drain_run(bins, rate, args.drain_seconds)?;
            let json = json_line(&out).with_context(|| format!("mapaudit-bench drain: no JSON line in {out}"))?;
            let num = |k: &str| num(&json, k).with_context(|| format!("mapaudit-bench drain: no {k} in {json}"));
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
