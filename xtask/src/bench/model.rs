//! Row 3: the model's tick, memory, report and TUI frame at 100,000
//! goroutines × 10,000 maps (`mapaudit-bench model`).

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::*;
use crate::{is_root, root};

pub(super) const TARGET_TICK_MS: f64 = 50.0;

pub(super) const MODEL_GOROUTINES: u64 = 100_000;

pub(super) const MODEL_MAPS: u64 = 10_000;

#[derive(Clone, Debug, Default)]
pub(super) struct ModelCost {
    pub(super) tick_ms: Vec<f64>,
    pub(super) fold_ms: Vec<f64>,
    pub(super) tick_rss_mib: Vec<f64>,
    pub(super) bytes_per_key: Vec<f64>,
    pub(super) report_ms: Vec<f64>,
    pub(super) app_tick_ms: Vec<f64>,
    pub(super) frame_ms: Vec<f64>,
    pub(super) keys: u64,
    pub(super) maps: u64,
    pub(super) max_entries: u64,
    pub(super) frame_size: String,
    /// Why the TUI frame was not measured.
    pub(super) frame_na: Option<String>,
}

pub(super) fn model_cost(bins: &Bins, args: &BenchArgs) -> anyhow::Result<ModelCost> {
    let mut m = ModelCost::default();
    for i in 0..args.model_runs {
        eprintln!("xtask: model run {}/{}", i + 1, args.model_runs);
        let args = ["model".to_string(), MODEL_GOROUTINES.to_string(), MODEL_MAPS.to_string()];
        let j = helper_json(&bins.helper, &args, RUN_TIMEOUT)?;
        let opt = |k: &str| num(&j, k);
        let num = |k: &str| num(&j, k).with_context(|| format!("mapaudit-bench model: no {k} in {j}"));
        m.tick_ms.push(num("tick_ms")?);
        m.fold_ms.push(num("fold_ms")?);
        m.report_ms.push(num("report_ms")?);
        m.keys = num("keys")? as u64;
        m.maps = num("maps")? as u64;
        // Newer fields: absent from an older helper.
        m.max_entries = opt("max_entries_default").unwrap_or(0.0) as u64;
        m.tick_rss_mib.push(opt("tick_rss_mib").or_else(|| opt("rss_mib")).unwrap_or(0.0));
        if let Some(b) = opt("bytes_per_key") {
            m.bytes_per_key.push(b);
        }
        match (opt("frame_ms"), opt("app_tick_ms")) {
            (Some(f), Some(a)) => {
                m.frame_ms.push(f);
                m.app_tick_ms.push(a);
                if let Some(sz) = j["frame_size"].as_array() {
                    m.frame_size = sz.iter().map(ToString::to_string).collect::<Vec<_>>().join("×");
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
pub(super) fn tui_has_draw() -> bool {
    std::fs::read_dir(root().join("probe-user/src/tui"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|s| s.contains("pub fn draw("))
}
