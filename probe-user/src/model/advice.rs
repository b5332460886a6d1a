//! Advice per map: from its writers, readers (`--reads`), rate and
//! overlaps, a short recommendation with the numbers behind it. Never a
//! finding: a way to read the numbers, not a defect.

/// What the advice is made of (one map instance, or a class).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Goroutines that mutated it.
    pub writers: u64,
    /// Writes, deletes and clears.
    pub mutations: u64,
    /// Lookups (`--reads`; 0 without it).
    pub reads: u64,
    /// Whether reads were probed: without it, read-mostly cannot be told.
    pub reads_probed: bool,
    /// Mutations per second over the recording.
    pub mutations_per_s: f64,
    /// Overlapping accesses seen (writes, reads or iterations during a write).
    pub overlaps: u64,
}

/// A recommendation and its rule's name (stable: `bug`, `read_mostly`,
/// `single_writer`, `shard`, `one_lock`).
#[derive(Clone, Debug, PartialEq)]
pub struct Advice {
    pub rule: &'static str,
    pub text: String,
}

/// Operations below which a map gets no advice: too little to say anything.
pub const MIN_OPS: u64 = 100;
/// Mutations per second from which one lock shared by several writers is
/// worth sharding (a contended mutex costs in the order of 100 ns to 1 µs
/// per hand-off; at this rate that is a noticeable share of a CPU).
pub const SHARD_RATE: f64 = 10_000.0;
/// Reads per mutation from which a map is read-mostly.
pub const READ_MOSTLY: u64 = 10;

pub fn advise(u: &Usage) -> Option<Advice> {
    if u.mutations + u.reads < MIN_OPS && u.overlaps == 0 {
        return None;
    }
    let rate = u.mutations_per_s;
    let (rule, text) = if u.overlaps > 0 {
        (
            "bug",
            format!(
                "{} overlapping accesses: a data race, not a tuning question. Guard every access with one lock \
                 (or give each goroutine its own map) before choosing a structure.",
                u.overlaps
            ),
        )
    } else if u.reads_probed && u.reads >= READ_MOSTLY.saturating_mul(u.mutations.max(1)) {
        (
            "read_mostly",
            format!(
                "read-mostly: {} reads for {} mutations. A sync.RWMutex lets readers share the lock; for rare \
                 writes, copy-on-write through an atomic.Pointer to an immutable map; sync.Map fits when each \
                 goroutine reads and writes its own keys.",
                u.reads, u.mutations
            ),
        )
    } else if u.writers <= 1 {
        ("single_writer", format!("one writing goroutine ({} mutations, {rate:.0}/s): fine as it is.", u.mutations))
    } else if rate >= SHARD_RATE {
        (
            "shard",
            format!(
                "{} writers at {rate:.0} mutations/s on one map (under one lock: no overlap seen): consider \
                 sharding it (N maps, each with its own lock, picked by key hash) to cut lock contention.",
                u.writers
            ),
        )
    } else {
        (
            "one_lock",
            format!("{} writers at {rate:.0} mutations/s: one lock is enough at this rate.", u.writers),
        )
    };
    Some(Advice { rule, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(writers: u64, mutations: u64, rate: f64) -> Usage {
        Usage { writers, mutations, mutations_per_s: rate, ..Default::default() }
    }

    fn rule(u: Usage) -> Option<&'static str> {
        advise(&u).map(|a| a.rule)
    }

    #[test]
    fn single_writer_is_fine() {
        assert_eq!(rule(usage(1, 50_000, 90_000.0)), Some("single_writer"));
    }

    #[test]
    fn many_writers_at_a_high_rate_shard() {
        let a = advise(&usage(4, 2_000_000, 700_000.0)).unwrap();
        assert_eq!(a.rule, "shard");
        assert!(a.text.contains("4 writers") && a.text.contains("700000"), "{}", a.text);
        // Just under the rate: one lock is enough.
        assert_eq!(rule(usage(4, 20_000, SHARD_RATE - 1.0)), Some("one_lock"));
    }

    #[test]
    fn read_mostly_needs_reads_probed() {
        let mut u = usage(1, 100, 10.0);
        u.reads = 5_000;
        assert_eq!(rule(u), Some("single_writer"), "reads not probed: nothing known about them");
        u.reads_probed = true;
        assert_eq!(rule(u), Some("read_mostly"));
        u.reads = 999;
        assert_eq!(rule(u), Some("single_writer"), "under 10 reads per mutation");
    }

    #[test]
    fn overlaps_are_a_bug_whatever_else() {
        let mut u = usage(2, 1_000_000, 900_000.0);
        u.overlaps = 3;
        u.reads_probed = true;
        u.reads = 1 << 30;
        let a = advise(&u).unwrap();
        assert_eq!(a.rule, "bug");
        assert!(a.text.starts_with("3 overlapping"), "{}", a.text);
        // Even on a map with few operations.
        assert_eq!(rule(Usage { overlaps: 1, writers: 2, mutations: 2, ..Default::default() }), Some("bug"));
    }

    #[test]
    fn too_little_traffic_gets_no_advice() {
        assert_eq!(rule(usage(3, MIN_OPS - 1, 1.0)), None);
    }
}
