//! Medians, number formats and the markdown table every row goes into.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

/// Median; the mean of the middle two for an even count.
pub(super) fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

pub(super) fn fmt_ns(ns: f64) -> String {
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

pub(super) fn fmt_ms(ms: f64) -> String {
    fmt_ns(ms * 1e6)
}

pub(super) fn fmt_rate(r: f64) -> String {
    if r >= 1e6 { format!("{:.2} M/s", r / 1e6) } else { format!("{:.0} k/s", r / 1e3) }
}

pub(super) fn fmt_int(n: u64) -> String {
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

pub(super) fn verdict(met: bool) -> String {
    if met { "met".into() } else { "**MISSED**".into() }
}

/// `median (n=7: min–max)`.
pub(super) fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    match median(v) {
        None => "—".into(),
        Some(m) => {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{} (n={}: {}–{})", f(m), v.len(), f(lo), f(hi))
        }
    }
}

pub(super) struct Table {
    pub(super) header: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub(super) fn row(&mut self, cells: &[&str]) {
        let mut r: Vec<String> = cells.iter().map(|s| s.to_string()).collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
    }

    /// GitHub markdown: one line per row, `|` in cells escaped.
    pub(super) fn markdown(&self) -> String {
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
