//! Row 12: the model's memory under map churn — 50,000 new map instances
//! (each with a goroutine of its own) a second for 10 minutes, driven as
//! `record` drives it (a drain every 100 ms, idle rows folded on the
//! session's own schedule), in simulated time (`mapaudit-bench churn`): the
//! RSS the model takes, once a minute. Bounded means it stops growing.


use anyhow::Context as _;

use super::*;

pub(super) const CHURN_RATE: u64 = 50_000;

#[derive(Clone, Debug, Default)]
pub(super) struct ChurnMemory {
    pub(super) seconds: u64,
    /// RSS (MiB) at the end of each simulated minute.
    pub(super) rss_mib: Vec<f64>,
    pub(super) peak_rows: u64,
    pub(super) instances: u64,
    pub(super) instances_in_classes: u64,
}

pub(super) fn churn_memory(helper: &std::path::Path, seconds: u64) -> anyhow::Result<ChurnMemory> {
    let args = ["churn".to_string(), seconds.to_string(), CHURN_RATE.to_string()];
    let j = helper_json(helper, &args, std::time::Duration::from_secs(seconds * 4 + 600))?;
    let field = |k: &str| num(&j, k).with_context(|| format!("mapaudit-bench churn: no {k} in {j}"));
    let rss_mib = j["samples"].as_array().map(|a| a.iter().filter_map(|s| num(s, "rss_mib")).collect()).unwrap_or_default();
    Ok(ChurnMemory {
        seconds,
        rss_mib,
        peak_rows: field("peak_rows")? as u64,
        instances: field("instances")? as u64,
        instances_in_classes: field("instances_in_classes")? as u64,
    })
}

/// Bounded: the last minute's RSS within 10 % of the highest of the minutes
/// before it (the window filled in the first).
pub(super) fn bounded(rss: &[f64]) -> bool {
    match rss.split_last() {
        Some((last, before)) if !before.is_empty() => *last <= before.iter().copied().fold(0.0, f64::max) * 1.10,
        _ => false,
    }
}

pub(super) fn churn_memory_row(t: &mut Table, c: &ChurnMemory) {
    let series = c.rss_mib.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    t.row(&[
        "12",
        &format!("model memory at {} new map instances/s for {} simulated min", fmt_int(CHURN_RATE), c.seconds / 60),
        &format!("{:.0} MiB after the last minute", c.rss_mib.last().copied().unwrap_or(f64::NAN)),
        &format!(
            "RSS per minute (MiB): {series}; peak {} live rows; {} instances, all {} in the report's classes",
            fmt_int(c.peak_rows),
            fmt_int(c.instances),
            if c.instances_in_classes == c.instances { "counted" } else { "NOT counted" }
        ),
        "bounded",
        &verdict(bounded(&c.rss_mib) && c.instances_in_classes == c.instances),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_means_the_last_minute_is_no_higher_than_before() {
        assert!(bounded(&[500.0, 590.0, 595.0, 596.0]));
        assert!(!bounded(&[100.0, 200.0, 300.0, 400.0]));
        assert!(!bounded(&[100.0]));
    }
}
