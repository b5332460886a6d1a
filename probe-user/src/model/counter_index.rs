//! The counter index: every kernel counter key seen, with its last value
//! and the rows it is folded into, found in the kernel's own order.

use probe_common::uprobe::{WriteKey, routine};

/// A counter key's last value and where it is folded: the slots of its
/// four rows and its positions in the rows' tallies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Counter {
    pub(super) count: u64,
    /// `u32::MAX` until the key first counts.
    pub(super) goroutine: u32,
    pub(super) thread: u32,
    pub(super) map: u32,
    pub(super) site: u32,
    pub(super) goroutine_site: u32,
    pub(super) map_writer: u32,
    pub(super) map_site: u32,
}

pub(super) const UNLINKED: Counter =
    Counter { count: 0, goroutine: u32::MAX, thread: 0, map: 0, site: 0, goroutine_site: 0, map_writer: 0, map_site: 0 };

/// A read's counter: no entries in the per-site and per-writer tallies.
pub(super) const READER: Counter = Counter { goroutine_site: u32::MAX, map_writer: u32::MAX, map_site: u32::MAX, ..UNLINKED };

/// Counters folded together (see `Model::fold`).
pub(super) const BATCH: usize = 64;

/// A counter's growth on its way into the rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Growth {
    pub(super) c: Counter,
    pub(super) n: u64,
    pub(super) op: routine::Op,
}

/// Every counter key seen, with its [`Counter`], in the order first seen,
/// found by an open-addressing index of positions.
///
/// The kernel lists its hash map in the same (bucket) order at every
/// snapshot, new keys aside, so the next key is nearly always the one after
/// the last: that is checked first, and the index only asked on a miss.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) entries: Vec<(WriteKey, Counter)>,
    /// Positions in `entries` (`EMPTY`: free), linear probing, a power of
    /// two in size and at most half full.
    pub(super) index: Vec<u32>,
    /// Where the next key of a snapshot is expected.
    pub(super) next: usize,
    /// The last keys came in that order: guess before asking the index.
    pub(super) in_order: bool,
}

impl Counters {
    pub(super) const EMPTY: u32 = u32::MAX;

    pub(super) fn hash(k: &WriteKey) -> usize {
        // Multiply-rotate over the key's words, then a splitmix64 finish.
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = 0u64;
        for w in [u64::from(k.pid) | u64::from(k.tid) << 32, k.goid, k.map, k.pc, u64::from(k.routine)] {
            h = (h ^ w).wrapping_mul(K).rotate_left(29);
        }
        h ^= h >> 31;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 29;
        h as usize
    }

    pub(super) fn find(&self, k: &WriteKey) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = Self::hash(k) & mask;
        loop {
            let at = self.index[i];
            if at == Self::EMPTY {
                return None;
            }
            if self.entries[at as usize].0 == *k {
                return Some(at as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// The position of `k`, a key of the snapshot being read, if known.
    pub(super) fn lookup(&mut self, k: &WriteKey) -> Option<usize> {
        if self.in_order {
            if let Some(e) = self.entries.get(self.next)
                && e.0 == *k
            {
                self.next += 1;
                return Some(self.next - 1);
            }
            // Out of order: stop guessing (a wrong guess is a wasted cache
            // miss) until keys come in order again.
            self.in_order = false;
        }
        let at = self.find(k)?;
        self.in_order = at == self.next;
        self.next = at + 1;
        Some(at)
    }

    /// Adds `k`, uncounted; its position.
    pub(super) fn add(&mut self, k: WriteKey) -> usize {
        let at = self.entries.len();
        self.entries.push((k, UNLINKED));
        if self.entries.len() * 2 > self.index.len() {
            self.reindex();
        } else {
            self.place(at);
        }
        at
    }

    pub(super) fn place(&mut self, at: usize) {
        let mask = self.index.len() - 1;
        let mut i = Self::hash(&self.entries[at].0) & mask;
        while self.index[i] != Self::EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = at as u32;
    }

    pub(super) fn reindex(&mut self) {
        let size = (self.entries.len() * 2).next_power_of_two().max(16);
        self.index.clear();
        self.index.resize(size, Self::EMPTY);
        for at in 0..self.entries.len() {
            self.place(at);
        }
    }

    pub(super) fn retain(&mut self, keep: impl Fn(&WriteKey, &Counter) -> bool) {
        self.entries.retain(|e| keep(&e.0, &e.1));
        self.reindex();
        self.next = 0;
        self.in_order = true;
    }
}

/// The kernel's cumulative counters as last seen: see [`Model::counts`].
#[derive(Clone, Copy, Debug)]
pub struct Counts<'a>(pub(super) &'a Counters);

/// [`Counts`]' keys and counts.
#[derive(Clone, Debug)]
pub struct CountsIter<'a>(pub(super) std::slice::Iter<'a, (WriteKey, Counter)>);

impl<'a> Iterator for CountsIter<'a> {
    type Item = (&'a WriteKey, &'a u64);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, c)| (k, &c.count))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for CountsIter<'_> {}

impl<'a> Counts<'a> {
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    pub fn get(&self, k: &WriteKey) -> Option<u64> {
        self.0.find(k).map(|at| self.0.entries[at].1.count)
    }

    /// Every key and its count, in the order first seen.
    pub fn iter(&self) -> CountsIter<'a> {
        CountsIter(self.0.entries.iter())
    }
}

impl<'a> IntoIterator for Counts<'a> {
    type Item = (&'a WriteKey, &'a u64);
    type IntoIter = CountsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
