//! The machine the bench ran on, and BENCHMARKS.md's generated section.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

/// Generated part of BENCHMARKS.md (`--write-md` replaces what is between).
pub(super) const MD_BEGIN: &str = "<!-- BEGIN cargo xtask bench --write-md -->";

pub(super) const MD_END: &str = "<!-- END cargo xtask bench --write-md -->";

pub(super) struct Machine {
    pub(super) kernel: String,
    pub(super) cpu: String,
    pub(super) nproc: String,
    pub(super) date: String,
    pub(super) commit: String,
    pub(super) go: String,
    pub(super) bpftrace: String,
    pub(super) load_before: String,
    pub(super) load_after: String,
}

pub(super) fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

impl Machine {
    pub(super) fn probe(bins: &Bins) -> Self {
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
        let go = fixtures::GO_NEWEST.to_string();
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

    pub(super) fn one_line(&self) -> String {
        format!("kernel {}, {} × {}, load {}", self.kernel, self.nproc, self.cpu, self.load_before)
    }
}

pub(super) fn command_line(args: &BenchArgs) -> String {
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

pub(super) fn render_md(m: &Machine, t: &Table, args: &BenchArgs) -> String {
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
pub(super) fn splice_md(old: &str, generated: &str) -> String {
    let block = format!("{MD_BEGIN}\n{}\n{MD_END}", generated.trim_end());
    match (old.find(MD_BEGIN), old.find(MD_END)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + MD_END.len()..]),
        _ if old.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    }
}
