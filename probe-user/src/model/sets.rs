//! Small per-row collections: `IdSet` (ids a row has seen) and `Tally`
//! (per-id counts), kept compact because there is one per row.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Ids a row has seen (a goroutine's threads and maps, a thread's
/// goroutines, a site's maps), ascending: a sorted Vec, read like a
/// `BTreeSet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet<K> {
    pub(super) ids: Vec<K>,
    /// `ids[..sorted]` is sorted; ids added by the running `set_counts` come
    /// after it until that call sorts them in.
    pub(super) sorted: usize,
}

impl<K: Ord + Copy> IdSet<K> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ascending.
    pub fn iter(&self) -> std::slice::Iter<'_, K> {
        self.ids.iter()
    }

    pub fn as_slice(&self) -> &[K] {
        &self.ids
    }

    pub fn first(&self) -> Option<&K> {
        self.ids.first()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.ids[..self.sorted].binary_search(k).is_ok() || self.ids[self.sorted..].contains(k)
    }

    /// Keeps the ids `keep` says (order kept, so a sorted set stays sorted).
    pub(super) fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let before = self.ids.len();
        let mut i = 0;
        let mut sorted_kept = 0;
        let sorted = self.sorted;
        self.ids.retain(|k| {
            let k_ok = keep(k);
            if k_ok && i < sorted {
                sorted_kept += 1;
            }
            i += 1;
            k_ok
        });
        if self.ids.len() != before {
            self.sorted = sorted_kept;
            trim(&mut self.ids);
        }
    }

    /// Adds `k`, known to be new.
    pub(super) fn push_new(&mut self, k: K) {
        push_small(&mut self.ids, k);
    }

    /// Adds `k` unless present; whether it was added.
    pub(super) fn insert(&mut self, k: K) -> bool {
        if self.contains(&k) {
            return false;
        }
        push_small(&mut self.ids, k);
        true
    }

    /// Sorts in what was added and drops repeated ids.
    pub(super) fn settle_dedup(&mut self) {
        self.settle();
        let before = self.ids.len();
        self.ids.dedup();
        if self.ids.len() != before {
            self.sorted = self.ids.len();
            trim(&mut self.ids);
        }
    }

    pub(super) fn settle(&mut self) {
        if self.sorted < self.ids.len() {
            merge_tail(&mut self.ids, self.sorted, |k| *k);
            self.sorted = self.ids.len();
            trim(&mut self.ids);
        }
    }
}

/// Sorts `v`, whose `v[..sorted]` is sorted by `key`: sorts the tail (what
/// one fold slice added: short) and merges it in from the back, moving only
/// the run's elements that sort after the tail's smallest. Settling runs
/// after every fold slice; a full sort there (with its scratch buffer) made
/// a site's set of 50,000 per-request maps cost O(n) per slice for 1,000
/// new ids, the largest item of mapaudit's own CPU under churn.
fn merge_tail<T: Copy, K: Ord>(v: &mut [T], sorted: usize, key: impl Fn(&T) -> K) {
    let (run, tail) = v.split_at_mut(sorted);
    tail.sort_unstable_by_key(&key);
    match (run.last(), tail.first()) {
        (Some(last), Some(first)) if key(last) > key(first) => {}
        // Already in order (ids that only grow, like goids): nothing to move.
        _ => return,
    }
    let tail: Vec<T> = tail.to_vec();
    // Invariant: k == i + j; v[k..] is final.
    let (mut i, mut j, mut k) = (sorted, tail.len(), v.len());
    while j > 0 {
        k -= 1;
        if i > 0 && key(&v[i - 1]) > key(&tail[j - 1]) {
            i -= 1;
            v[k] = v[i];
        } else {
            j -= 1;
            v[k] = tail[j];
        }
    }
}

/// Pushes `x`, growing a short `v` one element at a time: most sets and
/// tallies hold one or two entries for good (a per-request goroutine's one
/// site, its map's one writer), and a Vec's first growth to 4 entries was
/// given back by `trim` at the next settle — an allocation and a copy per
/// set, several per new counter key under churn.
fn push_small<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() && v.len() < 4 {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// Gives back what growing left unused: most sets and tallies are small
/// and stop growing early, and there is one per row. A large one keeps its
/// slack (at most as much again): shrinking it after every fold slice made
/// each slice's first push copy the whole set.
pub(super) fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() && v.len() <= SCAN_MAX {
        v.shrink_to_fit();
    }
}

impl<'a, K> IntoIterator for &'a IdSet<K> {
    type Item = &'a K;
    type IntoIter = std::slice::Iter<'a, K>;
    fn into_iter(self) -> Self::IntoIter {
        self.ids.iter()
    }
}

/// Above this many entries a [`Tally`] keeps a hash index instead of
/// scanning its entries for a new id.
pub(super) const SCAN_MAX: usize = 32;

/// Per-id counts (a map's writers and sites, a goroutine's sites), read like
/// a `BTreeMap`: ascending ids. Entries never move once added, so the fold
/// updates them through their position, with no lookup.
#[derive(Clone, Debug, Default)]
#[repr(C)] // `entries` first: see GoroutineRow.
pub struct Tally<K, V> {
    /// In the order they were first seen.
    pub(super) entries: Vec<(K, V)>,
    /// Position by id, once there are more than `SCAN_MAX` entries.
    pub(super) index: Option<Box<FxHashMap<K, u32>>>,
    /// Positions in ascending id order (settled like [`IdSet`]).
    pub(super) order: Vec<u32>,
}

impl<K: Ord + Hash + Copy, V: Default> Tally<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.position(k).map(|i| &self.entries[i as usize].1)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.position(k).is_some()
    }

    /// Ascending ids.
    pub fn iter(&self) -> TallyIter<'_, K, V> {
        TallyIter { order: self.order.iter(), entries: &self.entries }
    }

    /// Ascending.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// In ascending id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }

    pub(super) fn position(&self, k: &K) -> Option<u32> {
        match &self.index {
            Some(ix) => ix.get(k).copied(),
            None => self.entries.iter().position(|e| e.0 == *k).map(|i| i as u32),
        }
    }

    /// `k`'s position, the entry added if new; whether it was.
    pub(super) fn entry(&mut self, k: K) -> (u32, bool) {
        if let Some(i) = self.position(&k) {
            return (i, false);
        }
        let i = self.entries.len() as u32;
        push_small(&mut self.entries, (k, V::default()));
        match &mut self.index {
            Some(ix) => {
                ix.insert(k, i);
            }
            None if self.entries.len() > SCAN_MAX => {
                self.index = Some(Box::new(self.entries.iter().enumerate().map(|(i, e)| (e.0, i as u32)).collect()));
            }
            None => {}
        }
        (i, true)
    }

    pub(super) fn at(&mut self, i: u32) -> &mut V {
        &mut self.entries[i as usize].1
    }

    pub(super) fn settle(&mut self) {
        let Self { entries, order, .. } = self;
        if order.len() < entries.len() {
            let sorted = order.len();
            if entries.len() <= 4 {
                order.reserve_exact(entries.len() - sorted);
            }
            order.extend(sorted as u32..entries.len() as u32);
            merge_tail(order, sorted, |&i| entries[i as usize].0);
            trim(entries);
            trim(order);
        }
    }
}

/// A [`Tally`]'s entries, ascending ids.
#[derive(Clone, Debug)]
pub struct TallyIter<'a, K, V> {
    pub(super) order: std::slice::Iter<'a, u32>,
    pub(super) entries: &'a [(K, V)],
}

impl<'a, K, V> Iterator for TallyIter<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        self.order.next().map(|&i| {
            let (k, v) = &self.entries[i as usize];
            (k, v)
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

impl<K, V> DoubleEndedIterator for TallyIter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.order.next_back().map(|&i| {
            let (k, v) = &self.entries[i as usize];
            (k, v)
        })
    }
}

impl<K, V> ExactSizeIterator for TallyIter<'_, K, V> {}

impl<'a, K: Ord + Hash + Copy, V: Default> IntoIterator for &'a Tally<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = TallyIter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    /// Every split of many pseudo-random sequences (distinct and repeated
    /// ids): the merge gives what a full sort gives.
    #[test]
    fn merging_a_sorted_run_and_a_tail_equals_sorting() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in [0usize, 1, 2, 3, 7, 40, 200] {
            for modulus in [3u64, 1000, u64::MAX] {
                let all: Vec<u64> = (0..len).map(|_| next() % modulus).collect();
                for sorted in 0..=len {
                    let mut v = all.clone();
                    v[..sorted].sort();
                    let mut want = v.clone();
                    want.sort();
                    merge_tail(&mut v, sorted, |k| *k);
                    assert_eq!(v, want, "len {len}, sorted run {sorted}, ids mod {modulus}");
                }
            }
        }
    }

    #[test]
    fn sets_and_tallies_settle_in_ascending_order_across_rounds() {
        let mut set = IdSet::<u64>::default();
        let mut tally = Tally::<u64, u32>::default();
        let mut want = Vec::new();
        for round in 0..50u64 {
            for i in 0..40u64 {
                let id = (round * 7919 + i * 104_729) % 100_003;
                if set.insert(id) {
                    want.push(id);
                }
                let (pos, _) = tally.entry(id);
                *tally.at(pos) += 1;
            }
            set.settle();
            tally.settle();
            want.sort();
            want.dedup();
            assert_eq!(set.as_slice(), &want[..], "round {round}");
            assert_eq!(tally.keys().copied().collect::<Vec<_>>(), want, "round {round}");
            assert!(want.iter().all(|k| set.contains(k)));
        }
    }
}
