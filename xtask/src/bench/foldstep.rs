//! Row 15: folding idle rows into their classes while processes exec. A
//! go build's compile processes leave ~200,000 map instances and goroutines
//! behind when they exit; 30 s later they fold, in steps of at most
//! `FOLD_STEP_ROWS` of each kind, one step per drain, on the loop that also
//! resumes processes stopped at exec — so the longest step is what such a
//! process may wait. `mapaudit-bench fold 100000 20000`: 100,000 idle
//! instances and goroutines of an exited process beside 20,000 live ones.


use anyhow::Context as _;

use super::*;

/// The exec budget is 50 ms (issue 13); a fold step may take part of it.
pub(super) const TARGET_FOLD_STEP_MS: f64 = 20.0;
const IDLE: u64 = 100_000;
const LIVE: u64 = 20_000;

#[derive(Clone, Debug, Default)]
pub(super) struct FoldStep {
    /// Per run: the longest step, and the whole fold (ms).
    pub(super) longest_ms: Vec<f64>,
    pub(super) total_ms: Vec<f64>,
    pub(super) steps: u64,
    pub(super) step_rows: u64,
    pub(super) folded_rows: u64,
    pub(super) idle_rows: u64,
}

impl FoldStep {
    pub(super) fn met(&self) -> bool {
        self.folded_rows == self.idle_rows && median(&self.longest_ms).is_some_and(|m| m <= TARGET_FOLD_STEP_MS)
    }
}

pub(super) fn fold_step_cost(helper: &std::path::Path, runs: usize) -> anyhow::Result<FoldStep> {
    let mut r = FoldStep::default();
    for _ in 0..runs {
        let j = helper_json(helper, &["fold".to_string(), IDLE.to_string(), LIVE.to_string()], RUN_TIMEOUT)?;
        let field = |k: &str| num(&j, k).with_context(|| format!("mapaudit-bench fold: no {k} in {j}"));
        r.longest_ms.push(field("longest_step_ms")?);
        r.total_ms.push(field("fold_ms")?);
        (r.steps, r.step_rows) = (field("fold_steps")? as u64, field("step_rows")? as u64);
        (r.folded_rows, r.idle_rows) = (field("folded_rows")? as u64, field("idle_rows")? as u64);
    }
    Ok(r)
}

pub(super) fn fold_step_row(t: &mut Table, f: &FoldStep) {
    t.row(&[
        "15",
        &format!(
            "fold of {} idle rows (an exited process's map instances and goroutines) beside {} live: longest step",
            fmt_int(f.idle_rows),
            fmt_int(LIVE * 2)
        ),
        &spread(&f.longest_ms, fmt_ms),
        &format!(
            "{} steps of ≤ {} rows of each kind (one per drain); {} in all; {} of {} rows folded",
            f.steps,
            fmt_int(f.step_rows),
            median(&f.total_ms).map(fmt_ms).unwrap_or_default(),
            fmt_int(f.folded_rows),
            fmt_int(f.idle_rows)
        ),
        &format!("≤ {TARGET_FOLD_STEP_MS:.0} ms (the exec budget is 50 ms)"),
        &verdict(f.met()),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn met_needs_every_idle_row_folded_and_short_steps() {
        let f = FoldStep { longest_ms: vec![12.0, 14.0, 30.0], total_ms: vec![130.0; 3], steps: 13, step_rows: 8192, folded_rows: 200_000, idle_rows: 200_000 };
        assert!(f.met());
        assert!(!FoldStep { folded_rows: 163_840, ..f.clone() }.met());
        assert!(!FoldStep { longest_ms: vec![25.0; 3], ..f }.met());
    }
}
