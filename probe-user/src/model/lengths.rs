//! Map lengths over time: the element count of a bounded set of map
//! instances (the hottest by mutations), read from the target's memory at
//! each refresh (`host::remote_mem`), never by the probe. Per instance:
//! min/max/last, a short recent history for the sparkline, and what the
//! growth finding is made of (a least-squares slope over time and how far
//! the length ever came back down from its peak).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::{MapId, MapRow};

/// Samples kept per instance for the sparkline.
pub const RECENT: usize = 120;

/// Default `--len-maps`.
pub const DEFAULT_LEN_MAPS: usize = 32;

/// One instance's length series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LenSeries {
    pub min: u64,
    pub max: u64,
    pub last: u64,
    pub first: u64,
    pub samples: u64,
    /// Latest samples, oldest first (at most `RECENT`).
    pub recent: VecDeque<u64>,
    /// The largest fall from a running peak: how far the map ever came back.
    pub max_drop: u64,
    /// Seconds since the recording started, at the first and last sample.
    pub first_s: f64,
    pub last_s: f64,
    // Least-squares sums over (t, len), t relative to `first_s`.
    st: f64,
    sx: f64,
    stt: f64,
    stx: f64,
}

impl LenSeries {
    pub fn add(&mut self, t_s: f64, len: u64) {
        if self.samples == 0 {
            *self = Self { min: len, max: len, first: len, first_s: t_s, ..Self::default() };
        }
        self.max_drop = self.max_drop.max(self.max.saturating_sub(len));
        self.min = self.min.min(len);
        self.max = self.max.max(len);
        self.last = len;
        self.last_s = t_s;
        self.samples += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(len);
        let (t, x) = (t_s - self.first_s, len as f64);
        self.st += t;
        self.sx += x;
        self.stt += t * t;
        self.stx += t * x;
    }

    /// Elements per second, least squares over every sample (None: fewer
    /// than two samples, or all at one instant).
    pub fn slope(&self) -> Option<f64> {
        let n = self.samples as f64;
        let den = n * self.stt - self.st * self.st;
        (self.samples >= 2 && den > f64::EPSILON).then(|| (n * self.stx - self.st * self.sx) / den)
    }
}

/// When a length series is a `growing_map`: it grew by at least
/// `min_growth` elements over at least `min_samples` samples, with a
/// positive slope, and never fell back by more than `max_drop` of its range
/// (a map that oscillates in a band, or is drained, falls back by most of it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GrowthRule {
    pub min_growth: u64,
    /// Fraction of (max − min).
    pub max_drop: f64,
    pub min_samples: u64,
}

impl Default for GrowthRule {
    fn default() -> Self {
        Self { min_growth: DEFAULT_GROWTH_MIN, max_drop: DEFAULT_GROWTH_MAX_DROP_PCT / 100.0, min_samples: 8 }
    }
}

/// Default `--growth-min`.
pub const DEFAULT_GROWTH_MIN: u64 = 1000;
/// Default `--growth-max-drop`, percent.
pub const DEFAULT_GROWTH_MAX_DROP_PCT: f64 = 10.0;

impl GrowthRule {
    pub fn is_growing(&self, s: &LenSeries) -> bool {
        let range = s.max.saturating_sub(s.min) as f64;
        s.samples >= self.min_samples
            && s.last >= s.first.saturating_add(self.min_growth)
            && s.slope().is_some_and(|k| k > 0.0)
            && s.max_drop as f64 <= self.max_drop * range
    }
}

/// Every sampled instance's series, and how many are sampled at a time.
#[derive(Clone, Debug, Default)]
pub struct Lengths {
    pub series: FxHashMap<(u32, MapId), LenSeries>,
    /// `--len-maps`: instances read per refresh (0: off).
    pub limit: usize,
    pub growth: GrowthRule,
}

impl Lengths {
    pub fn new(limit: usize) -> Self {
        Self { series: FxHashMap::default(), limit, growth: GrowthRule::default() }
    }

    pub fn get(&self, pid: u32, map: MapId) -> Option<&LenSeries> {
        self.series.get(&(pid, map))
    }

    pub fn record(&mut self, pid: u32, map: MapId, t_s: f64, len: u64) {
        self.series.entry((pid, map)).or_default().add(t_s, len);
    }

    /// The instances to read this refresh: the `limit` with the most
    /// mutations (hot maps, and long-lived ones, whose counts keep adding
    /// up). A map whose length stays the same is never mutated much, so
    /// mutations are also where lengths move.
    pub fn pick<'a>(&self, maps: impl Iterator<Item = &'a MapRow>) -> Vec<(u32, MapId)> {
        if self.limit == 0 {
            return Vec::new();
        }
        let mut all: Vec<(u64, u32, MapId)> = maps.map(|m| (m.ops.total(), m.pid, m.map)).collect();
        if all.len() > self.limit {
            all.select_nth_unstable_by(self.limit - 1, |a, b| b.0.cmp(&a.0));
            all.truncate(self.limit);
        }
        // Stable order: one read batch per process.
        all.sort_unstable_by_key(|&(_, pid, m)| (pid, m.addr, m.inst));
        all.into_iter().map(|(_, pid, m)| (pid, m)).collect()
    }
}

/// The `growing_map` findings of the sampled map rows: writers, then the
/// sites that insert into the map (writes) and those that delete from it.
pub(super) fn growth_findings<'a>(
    lengths: &Lengths,
    maps: impl Iterator<Item = &'a MapRow>,
    names: &super::Names,
) -> Vec<super::Finding> {
    let mut out = Vec::new();
    for m in maps {
        let Some(s) = lengths.get(m.pid, m.map).filter(|s| lengths.growth.is_growing(s)) else { continue };
        let (inserting, deleting) = growth_sites(m, names);
        out.push(super::Finding {
            kind: super::FindingKind::GrowingMap,
            pid: m.pid,
            map: m.map,
            type_name: m.type_name.clone(),
            goroutines: m.writers.keys().copied().collect(),
            sites: inserting.into_iter().chain(deleting).collect(),
            count: s.last,
            last_ktime_ns: 0,
            instances: 1,
        });
    }
    out
}

/// A map row's sites that insert (assignments) and those that delete
/// (deletes, clears), named, busiest first.
pub fn growth_sites(m: &MapRow, names: &super::Names) -> (Vec<String>, Vec<String>) {
    let mut ins: Vec<(u64, String)> = Vec::new();
    let mut del: Vec<(u64, String)> = Vec::new();
    for (&pc, ops) in m.sites.iter() {
        let name = super::findings::site_name(names, m.pid, pc).0;
        if ops.writes > 0 {
            ins.push((ops.writes, name.clone()));
        }
        if ops.deletes + ops.clears > 0 {
            del.push((ops.deletes + ops.clears, name));
        }
    }
    let names_of = |mut v: Vec<(u64, String)>| {
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut out: Vec<String> = Vec::new();
        for (_, n) in v {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    };
    (names_of(ins), names_of(del))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[u64]) -> LenSeries {
        let mut s = LenSeries::default();
        for (i, &n) in points.iter().enumerate() {
            s.add(i as f64 * 0.25, n);
        }
        s
    }

    #[test]
    fn steady_growth_is_growing() {
        let rule = GrowthRule::default();
        let grow: Vec<u64> = (0..20).map(|i| i * 500).collect();
        assert!(rule.is_growing(&series(&grow)));
        // A small dip (under 10% of the range) is still growth.
        let mut dip = grow.clone();
        dip[10] = dip[9] - 400;
        assert!(rule.is_growing(&series(&dip)));
    }

    #[test]
    fn a_band_a_drained_map_and_small_growth_are_not() {
        let rule = GrowthRule::default();
        let band: Vec<u64> = (0..40).map(|i| 1000 + (i % 8) * 250 + i * 10).collect();
        assert!(!rule.is_growing(&series(&band)), "oscillates in a band");
        let drained: Vec<u64> = (0..20).map(|i| i * 500).chain([0]).collect();
        assert!(!rule.is_growing(&series(&drained)), "drained");
        let small: Vec<u64> = (0..20).map(|i| i * 10).collect();
        assert!(!rule.is_growing(&series(&small)), "below --growth-min");
        assert!(!rule.is_growing(&series(&[0, 5000, 10000])), "too few samples");
    }

    #[test]
    fn series_keeps_min_max_last_and_the_largest_fall() {
        let mut s = LenSeries::default();
        for (t, n) in [(0.0, 5), (1.0, 9), (2.0, 3), (3.0, 7)] {
            s.add(t, n);
        }
        assert_eq!((s.min, s.max, s.last, s.first, s.samples, s.max_drop), (3, 9, 7, 5, 4, 6));
        assert_eq!(s.recent, [5, 9, 3, 7]);
    }

    #[test]
    fn slope_is_elements_per_second() {
        let mut s = LenSeries::default();
        for i in 0..10u64 {
            s.add(100.0 + i as f64 * 0.5, 20 + 3 * i);
        }
        assert!((s.slope().unwrap() - 6.0).abs() < 1e-9, "{:?}", s.slope());
        let mut one = LenSeries::default();
        one.add(1.0, 4);
        assert_eq!(one.slope(), None);
    }

    #[test]
    fn recent_history_is_bounded() {
        let mut s = LenSeries::default();
        for i in 0..(RECENT as u64 + 10) {
            s.add(i as f64, i);
        }
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent.front(), Some(&10));
    }

    #[test]
    fn pick_takes_the_most_mutated_instances() {
        let row = |addr: u64, writes: u64| MapRow {
            pid: 1,
            map: MapId { addr, inst: 1 },
            ops: super::super::Ops { writes, ..Default::default() },
            ..Default::default()
        };
        let rows = [row(0x10, 5), row(0x20, 50), row(0x30, 1), row(0x40, 20)];
        let l = Lengths::new(2);
        let got: Vec<u64> = l.pick(rows.iter()).into_iter().map(|(_, m)| m.addr).collect();
        assert_eq!(got, [0x20, 0x40]);
        assert!(Lengths::new(0).pick(rows.iter()).is_empty());
    }
}
