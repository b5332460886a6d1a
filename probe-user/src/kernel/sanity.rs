//! Sanity check of the decoded `g.goid`/`g.gopc` offsets on the first hits
//! of a process.
//!
//! The probe reads the goroutine id at an offset into `runtime.g` that comes
//! from DWARF or a per-version table (`gobin::offsets`). If that offset is
//! wrong (an unknown toolchain, a mis-inferred version, a patched runtime),
//! nothing fails: counts are still exact, but keyed by whatever word sits
//! at that offset. This module looks at what was read and says when it
//! cannot be goroutine ids, so the user is warned instead of misled.
//!
//! What real goroutine ids look like (golang/go src/runtime/proc.go):
//! - they are small positive integers handed out in increasing order from
//!   a global counter (`sched.goidgen`, batched per P); 0 belongs to the
//!   per-thread `g0`, which does not run user code;
//! - the main goroutine is goid 1, created by the runtime's bootstrap
//!   (`runtime.rt0_go` → `runtime.newproc`), never by user code;
//! - a goroutine has exactly one creation site (`g.gopc`) for its lifetime,
//!   so one goid seen with two different `gopc` means two goroutines read
//!   as one id.
//!
//! Pure: no I/O, unit-tested. The caller collects [`Sample`]s from the
//! "goroutine first seen" events of one process and calls [`check`] once it
//! has a few (see `MIN_SAMPLES`), then again at the end if it had fewer.

use std::collections::HashMap;

/// Larger "goids" are addresses or garbage: 2^36 (69 billion) goroutines
/// would take a program creating a million per second 19 hours without
/// pause, and the Go heap starts at 0xc000000000 (2^39.6) on amd64/arm64,
/// so a heap pointer read as a goid is caught.
pub const MAX_PLAUSIBLE_GOID: u64 = 1 << 36;
/// Enough first-seen goroutines for the statistical checks; the hard
/// contradictions (a pointer-like goid, goid 1 created by user code) are
/// reported from the first sample.
pub const MIN_SAMPLES: usize = 4;

/// One goroutine as first seen by the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// What was read at the decoded `g.goid` offset.
    pub goid: u64,
    /// What was read at the decoded `g.gopc` offset (link-time address,
    /// load bias removed); 0 if not read.
    pub gopc: u64,
    /// The function `gopc` symbolizes to (`main.main`, `runtime.newproc`…);
    /// `None` when it is not code of the binary.
    pub creator: Option<String>,
}

/// The offsets being judged, for the warning text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub goid_offset: u16,
    pub gopc_offset: u16,
    /// Where they came from: `DWARF`, `go1.27 table`…
    pub source: &'a str,
}

/// The verdict on a process's samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing contradicts the offsets.
    Plausible,
    /// Too few samples to judge beyond the hard checks (which passed).
    NotEnoughSamples,
    /// The values cannot be goroutine ids or creation sites; the warning
    /// says what was seen and what it means, for the report and the view.
    Suspect(String),
}

impl Verdict {
    /// The warning, if any.
    pub fn warning(&self) -> Option<&str> {
        match self {
            Self::Suspect(w) => Some(w),
            _ => None,
        }
    }
}

/// How to name where offsets came from in the warning, e.g.
/// `describe_source(offsets.source, bin.go_version())`.
pub fn describe_source(source: crate::gobin::OffsetSource, go_version: &str) -> String {
    use crate::gobin::OffsetSource;
    match source {
        OffsetSource::Dwarf => "the binary's DWARF".into(),
        OffsetSource::VersionTable => format!("the {go_version} table"),
        OffsetSource::VersionTableGuess => format!("the newest known table, a guess for {go_version}"),
    }
}

/// Judges the samples of one process.
pub fn check(samples: &[Sample], decoded: Decoded<'_>) -> Verdict {
    let Decoded {
        goid_offset,
        gopc_offset,
        source,
    } = decoded;
    let suspect = |what: String| {
        Verdict::Suspect(format!(
            "goroutine ids look wrong: {what}. The g.goid offset {goid_offset} (g.gopc {gopc_offset}, from {source}) \
             is probably wrong for this binary: per-goroutine counts and `created_by` cannot be trusted \
             (per-map, per-thread and per-site counts are unaffected)"
        ))
    };

    // Hard contradictions: one sample is enough.
    if let Some(s) = samples.iter().find(|s| s.goid >= MAX_PLAUSIBLE_GOID) {
        return suspect(format!("goid {:#x} is pointer-like, not a small counter", s.goid));
    }
    if let Some(s) = samples
        .iter()
        .find(|s| s.goid == 1 && s.creator.as_deref().is_some_and(|c| !is_runtime(c)))
    {
        return suspect(format!(
            "goid 1 is the main goroutine, created by the runtime, but reads as created by {}",
            s.creator.as_deref().unwrap_or_default()
        ));
    }
    let mut sites: HashMap<u64, u64> = HashMap::new();
    for s in samples.iter().filter(|s| s.gopc != 0) {
        match sites.insert(s.goid, s.gopc) {
            Some(prev) if prev != s.gopc => {
                return suspect(format!(
                    "goid {} reads as created at two different places ({prev:#x} and {:#x}), so different goroutines share one id",
                    s.goid, s.gopc
                ));
            }
            _ => {}
        }
    }

    if samples.len() < MIN_SAMPLES {
        return Verdict::NotEnoughSamples;
    }
    // Statistical checks: a few odd values can be real, most cannot.
    let zeros = samples.iter().filter(|s| s.goid == 0).count();
    if zeros * 2 > samples.len() {
        return suspect(format!(
            "{zeros} of {} goroutines read goid 0, the id of the scheduler's g0, which runs no user code",
            samples.len()
        ));
    }
    let mut distinct: Vec<u64> = samples.iter().map(|s| s.goid).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let creators: Vec<&str> = samples.iter().filter_map(|s| s.creator.as_deref()).collect();
    let mut distinct_creators = creators.clone();
    distinct_creators.sort_unstable();
    distinct_creators.dedup();
    if distinct.len() == 1 && distinct_creators.len() > 1 {
        return suspect(format!(
            "goroutines created at {} different functions all read goid {}",
            distinct_creators.len(),
            distinct.first().copied().unwrap_or_default()
        ));
    }
    let with_pc = samples.iter().filter(|s| s.gopc != 0).count();
    let resolved = samples.iter().filter(|s| s.gopc != 0 && s.creator.is_some()).count();
    if with_pc >= MIN_SAMPLES && resolved * 2 < with_pc {
        return suspect(format!(
            "{} of {with_pc} creation sites (g.gopc) are not code of the binary",
            with_pc - resolved
        ));
    }
    Verdict::Plausible
}

/// The runtime creates goroutine 1 (`runtime.rt0_go` calls `newproc` for
/// `runtime.main`) and its own helpers; `go` statements in user code have
/// the user's function as creator.
fn is_runtime(function: &str) -> bool {
    function.starts_with("runtime.") || function == "<autogenerated>"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D: Decoded<'static> = Decoded {
        goid_offset: 152,
        gopc_offset: 288,
        source: "go1.27 table",
    };

    fn s(goid: u64, gopc: u64, creator: Option<&str>) -> Sample {
        Sample {
            goid,
            gopc,
            creator: creator.map(str::to_string),
        }
    }

    /// What the `writers` fixture's first hits look like with the right
    /// offsets: main (1) created by the runtime, workers by main.main.
    fn healthy() -> Vec<Sample> {
        vec![
            s(1, 0x46f1a5, Some("runtime.newproc")),
            s(19, 0x4a8b10, Some("main.main")),
            s(20, 0x4a8b60, Some("main.main")),
            s(21, 0x4a8bb0, Some("main.main")),
            s(22, 0x4a8c00, Some("main.main")),
            s(23, 0x4a8c50, Some("main.main")),
        ]
    }

    #[test]
    fn sources_are_named() {
        use crate::gobin::OffsetSource;
        assert_eq!(describe_source(OffsetSource::Dwarf, "go1.27.3"), "the binary's DWARF");
        assert_eq!(describe_source(OffsetSource::VersionTable, "go1.27.3"), "the go1.27.3 table");
        let src = describe_source(OffsetSource::VersionTableGuess, "go1.30.1");
        let w = check(&[s(1, 0x4a8b10, Some("main.main"))], Decoded { goid_offset: 152, gopc_offset: 288, source: &src });
        assert!(w.warning().unwrap().contains("from the newest known table, a guess for go1.30.1"), "{w:?}");
    }

    #[test]
    fn real_goroutine_ids_pass() {
        assert_eq!(check(&healthy(), D), Verdict::Plausible);
        assert_eq!(check(&healthy(), D).warning(), None);
        // No creator known (gopc not read) is not a contradiction.
        let bare: Vec<Sample> = (1..=6).map(|g| s(g, 0, None)).collect();
        assert_eq!(check(&bare, D), Verdict::Plausible);
        // Large but counter-like ids (a long-running server) pass.
        let busy: Vec<Sample> = (0..5).map(|i| s(3_000_000_000 + i, 0x4a8b10 + i * 0x50, Some("main.serve"))).collect();
        assert_eq!(check(&busy, D), Verdict::Plausible);
        // A few samples: only the hard checks apply.
        assert_eq!(check(&healthy()[..2], D), Verdict::NotEnoughSamples);
        assert_eq!(check(&[], D), Verdict::NotEnoughSamples);
    }

    #[test]
    fn pointer_like_ids_are_suspect_at_once() {
        // An offset 8 bytes off reads e.g. a pointer into the heap.
        let w = check(&[s(0x00c0_000a_2d80, 0x4a8b10, Some("main.main"))], D);
        let w = w.warning().unwrap();
        assert!(w.contains("0xc0000a2d80 is pointer-like"), "{w}");
        assert!(w.contains("g.goid offset 152"), "{w}");
        assert!(w.contains("go1.27 table"), "{w}");
        assert!(w.contains("per-map, per-thread and per-site counts are unaffected"), "{w}");
    }

    #[test]
    fn goid_1_created_by_user_code_is_suspect() {
        let w = check(&[s(1, 0x4a8b10, Some("main.main"))], D);
        assert!(w.warning().unwrap().contains("goid 1 is the main goroutine"), "{w:?}");
        // By the runtime: fine.
        assert_eq!(check(&[s(1, 0x46f1a5, Some("runtime.newproc"))], D), Verdict::NotEnoughSamples);
    }

    #[test]
    fn one_id_with_two_creation_sites_is_suspect() {
        // E.g. the offset reads a field that is the same for many goroutines.
        let samples = [s(7, 0x4a8b10, Some("main.main")), s(7, 0x4a8c50, Some("main.worker"))];
        let w = check(&samples, D);
        assert!(w.warning().unwrap().contains("goid 7 reads as created at two different places"), "{w:?}");
        // The same site twice (a sample repeated) is not a contradiction.
        let same = [s(7, 0x4a8b10, Some("main.main")), s(7, 0x4a8b10, Some("main.main"))];
        assert_eq!(check(&same, D), Verdict::NotEnoughSamples);
    }

    #[test]
    fn mostly_zero_or_constant_ids_are_suspect() {
        let zeros: Vec<Sample> = (0..6).map(|i| s(u64::from(i == 0), 0, None)).collect();
        let w = check(&zeros, D);
        assert!(w.warning().unwrap().contains("5 of 6 goroutines read goid 0"), "{w:?}");
        // One zero among real ids (a cgo callback on g0's behalf, say): fine.
        let mut one_zero = healthy();
        one_zero.push(s(0, 0, None));
        assert_eq!(check(&one_zero, D), Verdict::Plausible);
        // Every goroutine, from different creators, reads the same small id
        // (gopc not read, so the two-sites check cannot see it).
        let constant: Vec<Sample> = ["main.main", "main.worker", "net/http.(*Server).Serve", "main.main"]
            .iter()
            .map(|c| s(3, 0, Some(c)))
            .collect();
        let w = check(&constant, D);
        assert!(w.warning().unwrap().contains("3 different functions all read goid 3"), "{w:?}");
    }

    #[test]
    fn creation_sites_outside_the_code_are_suspect() {
        let samples: Vec<Sample> = (1..=5).map(|g| s(g + 1, 0xdead_0000 + g, None)).collect();
        let w = check(&samples, D);
        assert!(w.warning().unwrap().contains("5 of 5 creation sites (g.gopc) are not code"), "{w:?}");
    }
}
