//! Writes over time for the report's `timeline`: the whole recording's
//! mutations per interval, and the same for the goroutines and maps that
//! were among the top few at some sample. Bounded in both directions: at
//! most `MAX_SERIES` series per kind (a newcomer replaces the smallest), and
//! at most `MAX_POINTS` points (then the interval doubles).
//!
//! It stores cumulative counts, not per-interval ones: halving the
//! resolution is then exact (keep every other sample), and a series needs
//! no memory of rows it does not track.

use rustc_hash::FxHashMap;

use crate::model::{MapId, Model};
use crate::output::report::{SeriesReport, TimelineReport};

/// Entries ranked per sample; the ones that make it get a series.
pub const TOP_PER_SAMPLE: usize = 5;
pub const MAX_SERIES: usize = 10;
pub const MAX_POINTS: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Goroutine { pid: u32, goid: u64 },
    Map { pid: u32, map: MapId },
}

#[derive(Debug, Clone)]
struct Series {
    /// Sample index of `cum[0]`.
    first: usize,
    cum: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Timeline {
    interval_s: f64,
    /// Cumulative mutations of everything, one per sample.
    total: Vec<u64>,
    series: FxHashMap<Key, Series>,
}

impl Timeline {
    pub fn new(interval_s: f64) -> Self {
        Self { interval_s, total: Vec::new(), series: FxHashMap::default() }
    }

    pub fn interval_s(&self) -> f64 {
        self.interval_s
    }

    /// Takes one sample of `model` (call once per interval).
    pub fn sample(&mut self, model: &Model) {
        let i = self.total.len();
        self.total.push(model.agg.totals.total());
        let gs = model.agg.goroutines.iter().map(|g| (Key::Goroutine { pid: g.pid, goid: g.goid }, g.ops.total()));
        let ms = model.agg.maps.iter().map(|m| (Key::Map { pid: m.pid, map: m.map }, m.ops.total()));
        let mut now: FxHashMap<Key, u64> = FxHashMap::default();
        for rows in [top(gs), top(ms)] {
            now.extend(rows);
        }
        // Tracked series continue while their row exists.
        for (k, s) in &mut self.series {
            let v = now.remove(k).or_else(|| match *k {
                Key::Goroutine { pid, goid } => model.goroutine(pid, goid).map(|g| g.ops.total()),
                Key::Map { pid, map } => model.map(pid, map).map(|m| m.ops.total()),
            });
            if let Some(v) = v
                && s.first + s.cum.len() == i
            {
                s.cum.push(v);
            }
        }
        for (k, v) in now {
            self.admit(k, Series { first: i, cum: vec![v] });
        }
        if self.total.len() > MAX_POINTS {
            self.halve();
        }
    }

    fn admit(&mut self, k: Key, s: Series) {
        let is_map = matches!(k, Key::Map { .. });
        let same_kind = |k: &Key| matches!(k, Key::Map { .. }) == is_map;
        if self.series.keys().filter(|k| same_kind(k)).count() >= MAX_SERIES {
            let last = |s: &Series| s.cum.last().copied().unwrap_or(0);
            let Some((&weakest, w)) = self.series.iter().filter(|(k, _)| same_kind(k)).min_by_key(|(_, s)| last(s)) else {
                return;
            };
            if last(w) >= last(&s) {
                return;
            }
            self.series.remove(&weakest);
        }
        self.series.insert(k, s);
    }

    /// Keeps the samples at even indices: half the points, twice the interval.
    fn halve(&mut self) {
        self.total = self.total.iter().copied().step_by(2).collect();
        for s in self.series.values_mut() {
            let skip = s.first % 2;
            s.cum = s.cum.iter().copied().skip(skip).step_by(2).collect();
            s.first = s.first.div_ceil(2);
        }
        self.series.retain(|_, s| !s.cum.is_empty());
        self.interval_s *= 2.0;
    }

    /// Per-interval counts. A series that started after the first sample
    /// begins one interval later: what it did before it was tracked is
    /// unknown, and never shown as a burst.
    pub fn report(&self, model: &Model) -> TimelineReport {
        let total = deltas(0, &self.total);
        let mut goroutines = Vec::new();
        let mut maps = Vec::new();
        for (k, s) in &self.series {
            let from = if s.first == 0 { 0 } else { s.first + 1 };
            let writes = if s.first == 0 { deltas(0, &s.cum) } else { deltas(s.cum[0], &s.cum[1..]) };
            if writes.is_empty() {
                continue;
            }
            match *k {
                Key::Goroutine { pid, goid } => {
                    let by = model.goroutine(pid, goid).and_then(|g| g.created_by.as_ref()).map(|l| l.short());
                    let label = format!("goroutine {goid} · {}", by.as_deref().unwrap_or("creator unknown"));
                    goroutines.push(SeriesReport { pid, id: goid.to_string(), label, from: from as u32, writes });
                }
                Key::Map { pid, map } => {
                    let ty = model.map(pid, map).and_then(|m| m.type_name.clone());
                    let id = format!("{:#x}", map.addr);
                    let label = format!("{} {id}", ty.as_deref().unwrap_or("map (type unknown)"));
                    maps.push(SeriesReport { pid, id, label, from: from as u32, writes });
                }
            }
        }
        let busiest = |a: &SeriesReport, b: &SeriesReport| {
            let sum = |s: &SeriesReport| s.writes.iter().sum::<u64>();
            sum(b).cmp(&sum(a)).then_with(|| (a.pid, &a.id).cmp(&(b.pid, &b.id)))
        };
        goroutines.sort_by(busiest);
        maps.sort_by(busiest);
        TimelineReport { interval_s: self.interval_s, total, goroutines, maps }
    }
}

/// The `TOP_PER_SAMPLE` largest, by cumulative mutations.
fn top(rows: impl Iterator<Item = (Key, u64)>) -> Vec<(Key, u64)> {
    let mut best: Vec<(Key, u64)> = Vec::with_capacity(TOP_PER_SAMPLE + 1);
    for (k, v) in rows {
        if v == 0 || (best.len() == TOP_PER_SAMPLE && best[TOP_PER_SAMPLE - 1].1 >= v) {
            continue;
        }
        let at = best.partition_point(|b| b.1 >= v);
        best.insert(at, (k, v));
        best.truncate(TOP_PER_SAMPLE);
    }
    best
}

fn deltas(mut prev: u64, cum: &[u64]) -> Vec<u64> {
    cum.iter()
        .map(|&c| {
            let d = c.saturating_sub(prev);
            prev = c;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(goid: u64) -> Key {
        Key::Goroutine { pid: 1, goid }
    }

    #[test]
    fn top_keeps_the_largest_in_order() {
        let rows = (1..=9u64).map(|i| (key(i), i * 10)).chain([(key(100), 0)]);
        let t = top(rows);
        assert_eq!(t.iter().map(|r| r.1).collect::<Vec<_>>(), [90, 80, 70, 60, 50]);
    }

    #[test]
    fn deltas_from_cumulative() {
        assert_eq!(deltas(0, &[3, 3, 10]), [3, 0, 7]);
        assert_eq!(deltas(5, &[7, 9]), [2, 2]);
    }

    #[test]
    fn halving_keeps_exact_cumulative_counts() {
        let mut t = Timeline::new(1.0);
        t.total = (1..=7).map(|i| i * 10).collect();
        t.series.insert(key(1), Series { first: 0, cum: (1..=7).collect() });
        t.series.insert(key(2), Series { first: 3, cum: vec![100, 200, 300, 400] });
        t.series.insert(key(3), Series { first: 5, cum: vec![5] });
        t.halve();
        assert_eq!(t.interval_s, 2.0);
        assert_eq!(t.total, [10, 30, 50, 70]);
        assert_eq!(t.series[&key(1)].cum, [1, 3, 5, 7]);
        // Samples 3..6 → the even ones, 4 and 6, at new indices 2 and 3.
        assert_eq!((t.series[&key(2)].first, t.series[&key(2)].cum.clone()), (2, vec![200, 400]));
        assert!(!t.series.contains_key(&key(3)), "its only sample was at an odd index");
    }

    #[test]
    fn series_are_bounded_and_the_smallest_makes_room() {
        let mut t = Timeline::new(1.0);
        for g in 0..MAX_SERIES as u64 {
            t.admit(key(g), Series { first: 0, cum: vec![100 + g] });
        }
        t.admit(key(999), Series { first: 0, cum: vec![50] });
        assert!(!t.series.contains_key(&key(999)), "smaller than every tracked series");
        t.admit(key(1000), Series { first: 0, cum: vec![500] });
        assert!(t.series.contains_key(&key(1000)));
        assert!(!t.series.contains_key(&key(0)), "the smallest made room");
        // Maps have their own budget.
        t.admit(Key::Map { pid: 1, map: MapId { addr: 1, inst: 0 } }, Series { first: 0, cum: vec![1] });
        assert_eq!(t.series.len(), MAX_SERIES + 1);
    }
}
