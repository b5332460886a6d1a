//! Row 11: map-length sampling (`--len-maps`) per refresh — one
//! `process_vm_readv` batch of N words in another process, and the pick of
//! N instances among 10,000 map rows (`mapaudit-bench lengths`). Nothing
//! runs in the probe: the target only sees a read of its memory by another
//! process (no stop, no fault, no signal), so no effect on it is expected.


use anyhow::Context as _;

use super::*;

/// Maps sampled per refresh: the `--len-maps` default.
pub(super) const LEN_MAPS: u64 = 32;

#[derive(Clone, Debug, Default)]
pub(super) struct LengthsCost {
    pub(super) read_us: Vec<f64>,
    pub(super) read_ns_per_map: Vec<f64>,
    pub(super) pick_us: Vec<f64>,
}

/// `runs` helper runs of `rounds` refreshes each.
pub(super) fn lengths_cost(helper: &std::path::Path, runs: usize, rounds: usize) -> anyhow::Result<LengthsCost> {
    let mut c = LengthsCost::default();
    for _ in 0..runs {
        let j = helper_json(helper, &["lengths".to_string(), LEN_MAPS.to_string(), rounds.to_string()], RUN_TIMEOUT)?;
        let num = |k: &str| num(&j, k).with_context(|| format!("mapaudit-bench lengths: no {k} in {j}"));
        c.read_us.push(num("read_us")?);
        c.read_ns_per_map.push(num("read_ns_per_map")?);
        c.pick_us.push(num("pick_10000_rows_us")?);
    }
    Ok(c)
}

/// The row: the batch read per refresh and per map, the pick beside it.
pub(super) fn lengths_row(t: &mut Table, c: &LengthsCost) {
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let read = med(&c.read_us);
    let per_refresh = read + med(&c.pick_us);
    t.row(&[
        "11",
        &format!("map-length sampling, {LEN_MAPS} maps per refresh"),
        &format!("{read:.1} µs read ({:.0} ns/map)", med(&c.read_ns_per_map)),
        &format!("+ {:.0} µs pick among 10,000 rows = {per_refresh:.0} µs per refresh", med(&c.pick_us)),
        "≤ 1 ms per refresh",
        &verdict(per_refresh <= 1000.0),
    ]);
}
