//! Map health in the report: each sampled map's length (`--len-maps`), how
//! a `growing_map` grew, and each busy map's advice.

use serde::{Deserialize, Serialize};

use crate::model::advice::{Usage, advise};
use crate::model::{FindingKind, MapId, Model, lengths::LenSeries};
use crate::output::report::{FindingReport, ProcessReport};

/// A map's length over the recording.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LenReport {
    pub min: u64,
    pub max: u64,
    /// At the last sample (the recording's end while the map was sampled).
    pub last: u64,
    pub samples: u64,
    /// Least-squares growth over the recording, elements per second (None:
    /// fewer than two samples).
    #[serde(default)]
    pub slope_per_s: Option<f64>,
}

impl LenReport {
    pub fn of(s: &LenSeries) -> Self {
        Self { min: s.min, max: s.max, last: s.last, samples: s.samples, slope_per_s: s.slope() }
    }
}

/// A map's advice (`model::advice`), with the numbers behind it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AdviceReport {
    /// `bug` | `read_mostly` | `single_writer` | `shard` | `one_lock`.
    pub rule: String,
    pub text: String,
    pub writers: u64,
    pub mutations: u64,
    pub reads: u64,
    pub mutations_per_s: f64,
    pub overlaps: u64,
}

/// Adds what the model knows about each map's health to the live
/// processes' rows.
pub fn annotate(processes: &mut [ProcessReport], model: &Model) {
    for p in processes {
        for m in &mut p.maps {
            let u = Usage {
                writers: m.writers.len() as u64,
                mutations: m.writes + m.deletes + m.clears,
                reads: m.reads,
                reads_probed: model.reads_probed,
                mutations_per_s: m.writes_per_sec,
                overlaps: m.overlaps,
            };
            m.advice = advise(&u).map(|a| AdviceReport {
                rule: a.rule.into(),
                text: a.text,
                writers: u.writers,
                mutations: u.mutations,
                reads: u.reads,
                mutations_per_s: u.mutations_per_s,
                overlaps: u.overlaps,
            });
            let Some(addr) = addr_of(&m.addr) else { continue };
            if let Some(s) = model.lengths.get(p.pid, MapId { addr, inst: m.instance }) {
                m.len = Some(LenReport::of(s));
            }
        }
    }
}

/// How a `growing_map` grew.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GrowthReport {
    /// Length at the first and the last sample.
    pub first: u64,
    pub last: u64,
    /// Least-squares growth, elements per second.
    pub slope_per_s: f64,
    /// The largest fall from a peak (elements).
    pub max_drop: u64,
    pub inserting_sites: Vec<String>,
    pub deleting_sites: Vec<String>,
}

fn addr_of(hex: &str) -> Option<u64> {
    hex.strip_prefix("0x").and_then(|a| u64::from_str_radix(a, 16).ok())
}

/// Adds how each `growing_map` grew.
pub fn annotate_findings(findings: &mut [FindingReport], model: &Model) {
    for f in findings.iter_mut().filter(|f| f.kind == FindingKind::GrowingMap) {
        let Some(addr) = addr_of(&f.map) else { continue };
        let map = MapId { addr, inst: f.instance };
        let Some(s) = model.lengths.get(f.pid, map) else { continue };
        let (inserting_sites, deleting_sites) = model
            .map(f.pid, map)
            .map(|m| crate::model::lengths::growth_sites(m, &model.names))
            .unwrap_or_default();
        f.growth = Some(GrowthReport {
            first: s.first,
            last: s.last,
            slope_per_s: s.slope().unwrap_or(0.0),
            max_drop: s.max_drop,
            inserting_sites,
            deleting_sites,
        });
    }
}
