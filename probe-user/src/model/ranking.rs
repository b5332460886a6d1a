//! Ranking: each aggregate's rows busiest first (`Ranking`), and the
//! bookkeeping that keeps them ranked tick after tick (`Table`).

use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::*;

/// One aggregate's rows, read like a slice: busiest first (ties by
/// identity) as ranked at the last tick, rows added since last.
///
/// Rows stay where they were added (their slot: counter keys reach them
/// through it); ranking reorders only `order`. A row taken out leaves a
/// free slot behind (`RowMeta::free`), which the next new row fills: taking
/// rows out costs what they hold, not what the whole table holds. `rows`
/// keeps the length of the most rows ever live at once.
#[derive(Clone, Debug)]
pub struct Ranking<R> {
    /// By slot.
    pub(super) rows: Vec<R>,
    /// Slots, in ranking order.
    pub(super) order: Vec<u32>,
}

impl<R> Default for Ranking<R> {
    fn default() -> Self {
        Self { rows: Vec::new(), order: Vec::new() }
    }
}

impl<R> Ranking<R> {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The `i`th row in ranking order.
    pub fn get(&self, i: usize) -> Option<&R> {
        self.order.get(i).map(|&s| &self.rows[s as usize])
    }

    pub fn first(&self) -> Option<&R> {
        self.get(0)
    }

    /// In ranking order.
    pub fn iter(&self) -> RankingIter<'_, R> {
        RankingIter { order: self.order.iter(), rows: &self.rows }
    }
}

/// Every row of `rank`, in slot order (free slots skipped): cheaper than
/// `Ranking::iter` where the order does not matter (memory is read in
/// sequence).
pub(super) fn live<R: Ranked>(rank: &Ranking<R>) -> impl Iterator<Item = &R> {
    rank.rows.iter().filter(|r| !r.is_free())
}

pub(super) fn live_mut<R: Ranked>(rank: &mut Ranking<R>) -> impl Iterator<Item = &mut R> {
    rank.rows.iter_mut().filter(|r| !r.is_free())
}

impl<R> std::ops::Index<usize> for Ranking<R> {
    type Output = R;
    fn index(&self, i: usize) -> &R {
        &self.rows[self.order[i] as usize]
    }
}

impl<'a, R> IntoIterator for &'a Ranking<R> {
    type Item = &'a R;
    type IntoIter = RankingIter<'a, R>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A [`Ranking`]'s rows, in ranking order.
#[derive(Clone, Debug)]
pub struct RankingIter<'a, R> {
    pub(super) order: std::slice::Iter<'a, u32>,
    pub(super) rows: &'a [R],
}

impl<'a, R> Iterator for RankingIter<'a, R> {
    type Item = &'a R;
    fn next(&mut self) -> Option<&'a R> {
        self.order.next().map(|&s| &self.rows[s as usize])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<&'a R> {
        self.order.nth(n).map(|&s| &self.rows[s as usize])
    }
}

impl<R> DoubleEndedIterator for RankingIter<'_, R> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.order.next_back().map(|&s| &self.rows[s as usize])
    }
}

impl<R> ExactSizeIterator for RankingIter<'_, R> {}

/// A row kind, as its [`Table`] sees it.
pub(super) trait Ranked: Default {
    type Id: Copy + Ord + Hash + Eq + std::fmt::Debug;
    fn id(&self) -> Self::Id;
    fn total(&self) -> u64;
    fn meta(&mut self) -> &mut RowMeta;
    fn is_free(&self) -> bool;
    fn set_rate(&mut self, rate: f64);
    /// Sorts in what the running `set_counts` added to its sets.
    fn settle(&mut self);
}

/// The four row kinds rank alike — by `ops.total()`, identified by (pid,
/// their own id), with their `meta` and `rate` — and differ only in their
/// sets: one implementation, stamped out for each.
macro_rules! ranked {
    ($($row:ty: $id:ty = ($pid:ident, $own:ident), settle [$($set:ident),*];)*) => {$(
        impl Ranked for $row {
            type Id = $id;
            fn id(&self) -> Self::Id {
                (self.$pid, self.$own)
            }
            fn total(&self) -> u64 {
                self.ops.total()
            }
            fn meta(&mut self) -> &mut RowMeta {
                &mut self.meta
            }
            fn is_free(&self) -> bool {
                self.meta.free
            }
            fn set_rate(&mut self, rate: f64) {
                self.rate = rate;
            }
            fn settle(&mut self) {
                $(self.$set.settle();)*
            }
        }
    )*};
}

ranked! {
    GoroutineRow: (u32, u64) = (pid, goid), settle [tids, maps, sites];
    ThreadRow: (u32, u32) = (pid, tid), settle [goroutines];
    MapRow: (u32, MapId) = (pid, map), settle [writers, sites];
    SiteRow: (u32, u64) = (pid, pc), settle [maps];
}

/// Bookkeeping for one aggregate's [`Ranking`].
#[derive(Debug)]
pub(super) struct Table<R: Ranked> {
    /// Identity → slot.
    pub(super) index: FxHashMap<R::Id, u32>,
    /// Slots whose sets grew during the running `set_counts`.
    pub(super) dirty: Vec<u32>,
    /// Slots added since names were last filled in.
    pub(super) fresh: Vec<u32>,
    /// Free slots (`take`), filled before the rows grow.
    pub(super) free: Vec<u32>,
    /// Ranking scratch: (total, identity) by slot, then (total, identity,
    /// slot) in ranking order.
    pub(super) now: Vec<(u64, R::Id)>,
    pub(super) keys: Vec<(u64, R::Id, u32)>,
}

impl<R: Ranked> Default for Table<R> {
    fn default() -> Self {
        Self {
            index: FxHashMap::default(),
            dirty: Vec::new(),
            fresh: Vec::new(),
            free: Vec::new(),
            now: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl<R: Ranked> Table<R> {
    /// The slot of the row `id`, added (ranked last) if new.
    pub(super) fn slot(&mut self, rank: &mut Ranking<R>, id: R::Id, make: impl FnOnce() -> R) -> u32 {
        *self.index.entry(id).or_insert_with(|| {
            let slot = match self.free.pop() {
                Some(s) => {
                    rank.rows[s as usize] = make();
                    s
                }
                None => {
                    rank.rows.push(make());
                    rank.rows.len() as u32 - 1
                }
            };
            rank.order.push(slot);
            self.fresh.push(slot);
            slot
        })
    }

    pub(super) fn get<'a>(&self, rank: &'a Ranking<R>, id: &R::Id) -> Option<&'a R> {
        self.index.get(id).map(|&s| &rank.rows[s as usize])
    }

    /// Queues the row at `slot` for `settle`.
    pub(super) fn touch(&mut self, rank: &mut Ranking<R>, slot: u32) {
        let m = rank.rows[slot as usize].meta();
        if !m.dirty {
            m.dirty = true;
            self.dirty.push(slot);
        }
    }

    pub(super) fn settle(&mut self, rank: &mut Ranking<R>) {
        for slot in self.dirty.drain(..) {
            let r = &mut rank.rows[slot as usize];
            r.settle();
            r.meta().dirty = false;
        }
    }

    /// Rates since the last tick (a row's first tick has no baseline), then
    /// the ranking.
    pub(super) fn tick(&mut self, rank: &mut Ranking<R>, secs: f64) {
        self.now.clear();
        for r in &mut rank.rows {
            let total = r.total();
            let m = r.meta();
            // `secs` is the tick divided by the sampling duty (see Model::tick).
            let rate =
                if secs > 0.0 && m.prev != NO_BASELINE { total.saturating_sub(m.prev) as f64 / secs } else { 0.0 };
            m.prev = total;
            r.set_rate(rate);
            self.now.push((total, r.id()));
        }
        self.rank(rank);
    }

    /// Ranks again without a tick (rates stay).
    pub(super) fn rerank(&mut self, rank: &mut Ranking<R>) {
        self.now.clear();
        self.now.extend(rank.rows.iter().map(|r| (r.total(), r.id())));
        self.rank(rank);
    }

    /// Busiest first, ties by identity. `now` holds every row's (total,
    /// identity), by slot.
    pub(super) fn rank(&mut self, rank: &mut Ranking<R>) {
        let now = &self.now;
        self.keys.clear();
        self.keys.extend(rank.order.iter().map(|&s| (now[s as usize].0, now[s as usize].1, s)));
        let busiest_first = |a: &(u64, R::Id, u32), b: &(u64, R::Id, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        // Usually only a few rows change places, often none.
        if !self.keys.is_sorted_by(|a, b| busiest_first(a, b).is_le()) {
            self.keys.sort_unstable_by(busiest_first);
            rank.order.clear();
            rank.order.extend(self.keys.iter().map(|k| k.2));
        }
    }

    /// Frees the slots of the rows `mine` selects — at most `limit`, first
    /// in slot order — and forgets them, leaving each row where it is, to
    /// be read by the caller and dropped when a new row fills its slot
    /// (`RowMeta::free` hides it meanwhile). Returns the slots, in slot
    /// order. Moving 10^4–10^5 rows out instead costs a fresh buffer's
    /// page faults, ~0.5 µs a row.
    pub(super) fn free_in_place(&mut self, rank: &mut Ranking<R>, mine: impl Fn(&R) -> bool, limit: usize) -> Vec<u32> {
        let (taken, slots) = Self::pick(rank, mine, limit);
        for &s in &slots {
            let r = &mut rank.rows[s as usize];
            self.index.remove(&r.id());
            r.meta().free = true;
        }
        self.free.extend_from_slice(&slots);
        self.unrank(rank, &taken, slots.len());
        slots
    }

    /// Moves the rows `mine` selects out — at most `limit`, first in
    /// slot order — and forgets them, returned in ranking order (a retired
    /// process keeps its rows ranked). Their slots are free
    /// (`RowMeta::free`) until new rows fill them; the rows left keep
    /// theirs. Costs a look at each row and a move of each taken.
    pub(super) fn take(&mut self, rank: &mut Ranking<R>, mine: impl Fn(&R) -> bool, limit: usize) -> Vec<R> {
        let (taken, slots) = Self::pick(rank, mine, limit);
        let mut out = Vec::with_capacity(slots.len());
        for &s in rank.order.iter().filter(|&&s| taken[s as usize]) {
            let slot = &mut rank.rows[s as usize];
            self.index.remove(&slot.id());
            out.push(std::mem::take(slot));
            slot.meta().free = true;
            self.free.push(s);
        }
        self.unrank(rank, &taken, out.len());
        out
    }

    /// The rows `mine` selects, at most `limit`, first in slot order: a
    /// mark per slot, and the slots.
    fn pick(rank: &Ranking<R>, mine: impl Fn(&R) -> bool, limit: usize) -> (Vec<bool>, Vec<u32>) {
        let mut taken = vec![false; rank.rows.len()];
        let mut slots = Vec::new();
        for (s, r) in rank.rows.iter().enumerate() {
            if slots.len() == limit {
                break;
            }
            if !r.is_free() && mine(r) {
                taken[s] = true;
                slots.push(s as u32);
            }
        }
        (taken, slots)
    }

    /// Drops the `taken` slots (`n` of them) from the ranking and from the
    /// rows waiting to be named or re-ranked.
    fn unrank(&mut self, rank: &mut Ranking<R>, taken: &[bool], n: usize) {
        if n == 0 {
            return;
        }
        let gone = |s: &u32| taken[*s as usize];
        let before = rank.order.len();
        rank.order.retain(|s| !gone(s));
        debug_assert_eq!(before - rank.order.len(), n, "every row is ranked");
        self.fresh.retain(|s| !gone(s));
        self.dirty.retain(|s| !gone(s));
    }
}
