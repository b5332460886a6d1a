//! Findings: overlapping writes, shared maps and reads during writes — one
//! `FindingKind` for the model, the report and the gate.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::*;

/// A finding kind, as named in the report (`"kind"`) and gated on
/// (`--fail-on`): one type for the model, the report and the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    OverlappingWrites,
    SharedMap,
    /// A lookup while another goroutine's write was in progress (`--reads`).
    ReadDuringWrite,
    /// A range loop started or stepped while another goroutine's write was
    /// in progress (Go's "concurrent map iteration and map write").
    IterateDuringWrite,
    /// A map whose length grew steadily over the recording without coming
    /// back (`--len-maps`): a leak suspect.
    GrowingMap,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OverlappingWrites => "overlapping_writes",
            Self::SharedMap => "shared_map",
            Self::ReadDuringWrite => "read_during_write",
            Self::IterateDuringWrite => "iterate_during_write",
            Self::GrowingMap => "growing_map",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub pid: u32,
    pub map: MapId,
    pub type_name: Option<String>,
    pub goroutines: Vec<u64>,
    pub sites: Vec<String>,
    pub count: u64,
    /// Kernel time of the latest occurrence (for "most recent first").
    pub last_ktime_ns: u64,
    /// Map instances it stands for (shared maps of one kind folded
    /// together: `Model::fold_idle`); 1 otherwise.
    pub instances: u64,
}

pub(super) fn site_name(names: &Names, pid: u32, pc: u64) -> (String, bool) {
    match names.sites.get(&(pid, pc)) {
        Some(l) => (l.short(), true),
        None => (format!("0x{pc:x}"), false),
    }
}

/// The overlapping-writes findings, most recent first.
pub(super) fn overlap_findings(overlaps_seen: &[OverlapEvent], names: &Names) -> Vec<Finding> {
    let mut overlaps: BTreeMap<(FindingKind, u32, MapId), Finding> = BTreeMap::new();
    for ov in overlaps_seen {
        let kind = match (ov.read, ov.iter) {
            (_, true) => FindingKind::IterateDuringWrite,
            (true, _) => FindingKind::ReadDuringWrite,
            _ => FindingKind::OverlappingWrites,
        };
        let f = overlaps.entry((kind, ov.pid, ov.map)).or_insert_with(|| Finding {
            kind,
            pid: ov.pid,
            map: ov.map,
            type_name: names.map_types.get(&(ov.pid, ov.map)).cloned(),
            goroutines: Vec::new(),
            sites: Vec::new(),
            count: 0,
            last_ktime_ns: 0,
            instances: 1,
        });
        f.count += 1;
        f.last_ktime_ns = f.last_ktime_ns.max(ov.ktime_ns);
        let mine = ov.site.as_ref().map(Location::short);
        let theirs = ov.other_site.as_ref().map(Location::short);
        for (g, s) in [(Some(ov.goid), mine), (ov.other_goid, theirs)] {
            if let Some(g) = g
                && !f.goroutines.contains(&g)
            {
                f.goroutines.push(g);
            }
            if let Some(s) = s
                && !f.sites.contains(&s)
            {
                f.sites.push(s);
            }
        }
    }
    let mut out: Vec<Finding> = overlaps.into_values().collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.last_ktime_ns));
    out
}

/// The shared-map finding of `m` (written by more than one goroutine), and
/// whether every site had a name. `cache`: site names already made.
pub(super) fn shared_finding(m: &MapRow, names: &Names, cache: &mut FxHashMap<(u32, u64), (String, bool)>) -> (Finding, bool) {
    let mut all_named = true;
    // Several return addresses can name one line (calls to different map
    // routines there, or inlined copies): each line once.
    let mut sites: Vec<String> = Vec::new();
    for &pc in m.sites.keys() {
        let (s, named) = cache.entry((m.pid, pc)).or_insert_with(|| site_name(names, m.pid, pc));
        all_named &= *named;
        if !sites.contains(s) {
            sites.push(s.clone());
        }
    }
    let f = Finding {
        kind: FindingKind::SharedMap,
        pid: m.pid,
        map: m.map,
        type_name: m.type_name.clone(),
        goroutines: m.writers.keys().copied().filter(|&g| g != crate::model::OTHER_WRITERS).collect(),
        sites,
        count: m.ops.total(),
        last_ktime_ns: 0,
        instances: 1,
    };
    (f, all_named)
}

/// Findings, most recent overlaps first, then shared maps by traffic.
pub(super) fn derive_findings(overlaps_seen: &[OverlapEvent], maps: &[MapRow], names: &Names) -> Vec<Finding> {
    let mut out = overlap_findings(overlaps_seen, names);
    let mut cache = FxHashMap::default();
    out.extend(maps.iter().filter(|m| m.writers.len() > 1).map(|m| shared_finding(m, names, &mut cache).0));
    out
}
