//! Row 10: what the `sys_enter_bpf` tracepoint costs per bpf(2) call. The
//! `bpfreuse` fixture times `-a N` single-element updates to one map; runs
//! interleave unprobed, the floor (`--bench-floor`: an empty program at the
//! same tracepoint), `mapaudit record` (the map named in the kernel at each
//! call) and `mapaudit record --bpf-hot-keys` (plus the key hash).

use std::process::Command;

use anyhow::{Context as _, bail};

use super::*;

/// Updates per run: ~1 µs each, a fraction of a second unprobed.
const CALLS: u64 = 200_000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BpfConfig {
    Unprobed,
    Floor,
    Mapaudit,
    HotKeys,
}

impl BpfConfig {
    const ALL: [Self; 4] = [Self::Unprobed, Self::Floor, Self::Mapaudit, Self::HotKeys];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Unprobed => "unprobed",
            Self::Floor => "empty tracepoint (floor)",
            Self::Mapaudit => "mapaudit",
            Self::HotKeys => "mapaudit --bpf-hot-keys",
        }
    }
}

pub(super) struct BpfCost {
    /// Per config: elapsed ns of the update loop, per round.
    pub(super) runs: [Vec<f64>; 4],
    pub(super) calls: u64,
}

impl BpfCost {
    pub(super) fn median_ns(&self, c: BpfConfig) -> Option<f64> {
        median(&self.runs[c as usize])
    }

    /// Extra ns per call of `c` over `base`.
    pub(super) fn per_call(&self, c: BpfConfig, base: BpfConfig) -> Option<f64> {
        Some((self.median_ns(c)? - self.median_ns(base)?) / self.calls as f64)
    }
}

pub(super) fn bpf_cost(bins: &Bins, rounds: usize) -> anyhow::Result<BpfCost> {
    let fixture = fixtures::build("bpfreuse", fixtures::GO_NEWEST, fixtures::Variant::Plain)?;
    let fa = ["-a".to_string(), CALLS.to_string(), "-b".into(), "0".into(), "-lookups".into(), "0".into()];
    let mut cost = BpfCost { runs: Default::default(), calls: CALLS };
    for round in 0..=rounds {
        eprintln!("xtask: bpf(2) tracepoint cost {}/{rounds}", round.max(1));
        for cfg in BpfConfig::ALL {
            let mut c = match cfg {
                BpfConfig::Unprobed => Command::new(&fixture),
                _ => {
                    let mut c = Command::new(&bins.mapaudit);
                    c.arg("record");
                    match cfg {
                        BpfConfig::Floor => {
                            c.arg("--bench-floor");
                        }
                        BpfConfig::HotKeys => {
                            c.arg("--bpf-hot-keys");
                        }
                        _ => {}
                    }
                    c.arg("--").arg(&fixture);
                    c
                }
            };
            c.args(&fa);
            let out = capture(c)?;
            if !out.success {
                bail!("{} run failed ({}):\n{}\n{}", cfg.label(), out.status, out.stdout, out.stderr);
            }
            let v = json_line(&out.stdout).with_context(|| format!("{}: no truth line:\n{}", cfg.label(), out.stdout))?;
            let a = &v["a"];
            if a["updates"].as_u64() != Some(CALLS) {
                bail!("{}: the fixture made {} updates, expected {CALLS}", cfg.label(), a["updates"]);
            }
            // Round 0 warms caches and the page cache: not counted.
            if round > 0 {
                let ns = num(a, "elapsed_ns").context("no elapsed_ns")?;
                cost.runs[cfg as usize].push(ns);
            }
        }
    }
    Ok(cost)
}

pub(super) fn bpf_rows(t: &mut Table, c: &BpfCost) {
    for cfg in BpfConfig::ALL {
        let runs = &c.runs[cfg as usize];
        let derived = match cfg {
            BpfConfig::Unprobed => format!("{} per call", c.median_ns(cfg).map(|m| fmt_ns(m / c.calls as f64)).unwrap_or_default()),
            BpfConfig::Floor => format!("+{} per call over unprobed", c.per_call(cfg, BpfConfig::Unprobed).map(fmt_ns).unwrap_or_default()),
            _ => format!("+{} per call over the floor", c.per_call(cfg, BpfConfig::Floor).map(fmt_ns).unwrap_or_default()),
        };
        t.row(&[
            "10",
            &format!("bpf(2) updates ({} calls): {}", fmt_int(c.calls), cfg.label()),
            &spread(runs, |ns| fmt_ms(ns / 1e6)),
            &derived,
            "measured (no target)",
            "—",
        ]);
    }
}
