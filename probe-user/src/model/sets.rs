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
        self.ids.push(k);
    }

    /// Adds `k` unless present; whether it was added.
    pub(super) fn insert(&mut self, k: K) -> bool {
        if self.contains(&k) {
            return false;
        }
        self.ids.push(k);
        true
    }

    pub(super) fn settle(&mut self) {
        if self.sorted < self.ids.len() {
            // A sorted run plus a short tail: the stable sort merges them.
            self.ids.sort();
            self.sorted = self.ids.len();
            trim(&mut self.ids);
        }
    }
}

/// Gives back what growing left unused: most sets and tallies are small
/// and stop growing early, and there is one per row.
pub(super) fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() {
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
        self.entries.push((k, V::default()));
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
            order.extend(order.len() as u32..entries.len() as u32);
            // A sorted run plus a short tail: the stable sort merges them.
            order.sort_by_key(|&i| entries[i as usize].0);
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
