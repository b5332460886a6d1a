//! The JSON report (`"schema": "mapaudit/v1"`): its types (shared by `record`,
//! which writes it, and `check`, which reads it), building it from the model,
//! and writing it atomically. Field names are a contract: add, never rename.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::host::identity::Identity;
use crate::host::safefile;
use crate::model::{Finding, FindingKind, GoroutineRow, Location, MapRow, Model, ProcessInfo, ThreadRow};

pub const SCHEMA: &str = "mapaudit/v1";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Report {
    pub schema: String,
    pub started_at: String,
    pub duration_s: f64,
    pub totals: Totals,
    /// Whether map reads were probed (`--reads`): without it, `reads` stay 0
    /// and `read_during_write` cannot be found.
    #[serde(default)]
    pub reads_probed: bool,
    /// Each kernel-side loss counter by name (see README "Nothing lost").
    #[serde(default)]
    pub lost: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    pub sampling: Option<Sampling>,
    #[serde(default)]
    pub diagnostics: Option<Diagnostics>,
    /// What the user should know about the data (e.g. `g` offsets that
    /// look wrong for a binary: counts may be under wrong goroutine ids).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub processes: Vec<ProcessReport>,
    pub bpf_maps: Vec<BpfMapReport>,
    /// `--bpf-hot-keys`: per kernel BPF map, its hottest written keys.
    #[serde(default)]
    pub bpf_hot_keys: Vec<BpfHotKeysReport>,
    pub findings: Vec<FindingReport>,
    /// Mutations over time (`record` only; bounded: see `timeline.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineReport>,
}

/// Mutations (writes + deletes + clears) per interval over the recording.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TimelineReport {
    /// Seconds per point (doubles for long recordings; at most 600 points).
    pub interval_s: f64,
    /// Every process together, from the start of the recording.
    pub total: Vec<u64>,
    /// The goroutines that were among the top 5 at some point (at most 10).
    pub goroutines: Vec<SeriesReport>,
    /// The map instances that were among the top 5 at some point (at most 10).
    pub maps: Vec<SeriesReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SeriesReport {
    pub pid: u32,
    /// Goroutine id, or map address.
    pub id: String,
    pub label: String,
    /// The interval `writes[0]` belongs to: tracking began when the entry
    /// first ranked; before that its per-interval counts are unknown.
    pub from: u32,
    pub writes: Vec<u64>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    /// Events and writes the kernel or collector could not record.
    pub lost_events: u64,
    /// Lookups (`runtime.mapaccess*`); 0 unless `reads_probed`.
    #[serde(default)]
    pub reads: u64,
}

/// How the kernel side fared: with `lost`, these account for every event.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Diagnostics {
    /// Distinct (process, thread, goroutine, map, site, routine) counters.
    pub counter_keys: u64,
    /// Ring-buffer events received, by kind.
    pub events_received: std::collections::BTreeMap<String, u64>,
    /// How long processes stood stopped at exec until their probes were
    /// attached (`-- CMD`): none when nothing was stopped.
    #[serde(default)]
    pub exec_stops: Option<ExecStops>,
    /// The largest drain of the kernel's counter tables: keys read and how
    /// long the flip, grace period and batch reads took.
    #[serde(default)]
    pub largest_drain: Option<Drain>,
    /// The slowest drain.
    #[serde(default)]
    pub slowest_drain: Option<Drain>,
    /// Map instances and goroutines folded into their classes after going
    /// idle (they are in `map_classes`/`goroutine_classes`, not in `maps`
    /// and `goroutines`): what keeps memory bounded on a long recording.
    #[serde(default)]
    pub folded_map_rows: u64,
    #[serde(default)]
    pub folded_goroutine_rows: u64,
    /// None when bpf(2) was not audited.
    #[serde(default)]
    pub bpf_map_resolution: Option<BpfResolutionReport>,
    /// How the map-write probes were linked: `uprobe_multi` (one link per
    /// executable, Linux ≥ 6.6) or `perf_event` (one per probe point).
    #[serde(default)]
    pub uprobe_links: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Drain {
    pub keys: u64,
    pub ms: f64,
}

impl Drain {
    fn of((keys, took): (usize, std::time::Duration)) -> Option<Self> {
        (keys > 0 || !took.is_zero()).then_some(Self { keys: keys as u64, ms: took.as_secs_f64() * 1e3 })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ExecStops {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Processes resumed before their probes were attached (each also named
    /// in `warnings`): by the exec guard at `--exec-stop-timeout`, or at the
    /// recording's end when mapaudit had not handled their stop yet.
    #[serde(default)]
    pub watchdog_resumes: u64,
    /// Stops during which the executable was read and parsed: the first
    /// process of each program (later ones reuse its attachment).
    #[serde(default)]
    pub parsed: u64,
    /// p99 and max over the other stops: processes of a program already
    /// attached, the exec path itself (0 when there were none).
    #[serde(default)]
    pub reused_p99_ms: f64,
    #[serde(default)]
    pub reused_max_ms: f64,
    /// Processes of a program already attached that the kernel let run at
    /// exec without a stop (not in `count`).
    #[serde(default)]
    pub not_stopped: u64,
}

impl ExecStops {
    fn of(stops: &std::collections::VecDeque<(u64, bool)>, watchdog_resumes: u64, not_stopped: u64) -> Option<Self> {
        if stops.is_empty() && watchdog_resumes == 0 && not_stopped == 0 {
            return None;
        }
        let sorted = |parsed: Option<bool>| {
            let mut v: Vec<u64> = stops.iter().filter(|s| parsed.is_none_or(|p| s.1 == p)).map(|s| s.0).collect();
            v.sort_unstable();
            v
        };
        // No measured stop (every one resumed unhandled): zeros.
        let at = |v: &[u64], q: f64| v.get(((v.len().max(1) - 1) as f64 * q).round() as usize).map_or(0.0, |&ns| ns as f64 / 1e6);
        let (all, reused) = (sorted(None), sorted(Some(false)));
        Some(Self {
            count: all.len() as u64,
            p50_ms: at(&all, 0.5),
            p99_ms: at(&all, 0.99),
            max_ms: at(&all, 1.0),
            watchdog_resumes,
            parsed: (all.len() - reused.len()) as u64,
            reused_p99_ms: at(&reused, 0.99),
            reused_max_ms: at(&reused, 1.0),
            not_stopped,
        })
    }
}

/// Present only when counts were sampled (`--max-overhead`): every count is
/// then an estimate, the observed count × `scale`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Fraction of the recording the probes were attached.
    pub duty_cycle: f64,
    pub scaled: bool,
    #[serde(default)]
    pub scale: f64,
    /// The overhead budget (fraction of a CPU).
    #[serde(default)]
    pub budget: f64,
    /// Calibrated cost of one probe hit on this machine.
    #[serde(default)]
    pub probe_cost_ns: u64,
    /// Writes actually observed (before scaling).
    #[serde(default)]
    pub observed_writes: u64,
    /// Relative uncertainty of the scaled totals: sampling noise
    /// (1/sqrt(observed)) plus how sensitive the estimate is to the probe
    /// cost at the load seen (≥ 1: not to be trusted; a hot loop that does
    /// little but write maps cannot be estimated from its probed stretches).
    /// Bursty workloads can be off by more.
    #[serde(default)]
    pub relative_error: f64,
}

/// Scales every count of `rep` by the duty cycle's factor and records how.
pub fn apply_sampling(rep: &mut Report, d: &crate::session::budget::DutyCycle) {
    let k = d.scale();
    let sc = |v: &mut u64| *v = (*v as f64 * k).round() as u64;
    let observed = rep.totals.writes + rep.totals.deletes + rep.totals.clears;
    sc(&mut rep.totals.writes);
    sc(&mut rep.totals.deletes);
    sc(&mut rep.totals.clears);
    sc(&mut rep.totals.reads);
    for p in &mut rep.processes {
        for g in &mut p.goroutines {
            sc(&mut g.writes);
            sc(&mut g.deletes);
            sc(&mut g.clears);
            sc(&mut g.reads);
            sc(&mut g.iterations);
            g.writes_per_sec *= k;
        }
        for t in &mut p.threads {
            sc(&mut t.writes);
            sc(&mut t.deletes);
            sc(&mut t.clears);
            sc(&mut t.reads);
        }
        for m in &mut p.maps {
            sc(&mut m.writes);
            sc(&mut m.deletes);
            sc(&mut m.clears);
            sc(&mut m.reads);
            sc(&mut m.iterations);
            m.writes_per_sec *= k;
            for s in &mut m.sites {
                sc(&mut s.writes);
            }
        }
    }
    for f in &mut rep.findings {
        if f.kind == FindingKind::SharedMap {
            sc(&mut f.count);
        }
    }
    rep.sampling = Some(Sampling {
        duty_cycle: d.effective_duty(),
        scaled: true,
        scale: k,
        budget: d.budget,
        probe_cost_ns: d.cost().as_nanos() as u64,
        observed_writes: observed,
        relative_error: d.relative_error(),
    });
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProcessReport {
    pub pid: u32,
    /// 0: the first program seen at this pid; +1 per exec (or pid reuse).
    #[serde(default)]
    pub generation: u32,
    pub exe: String,
    pub go_version: String,
    /// How `go_version` was decided: `buildinfo` (recorded by the toolchain)
    /// or `inferred` (no `.go.buildinfo`; `gobin::VersionSource`). Absent
    /// when the binary is no longer known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_version_source: Option<String>,
    /// Its container and Kubernetes pod (`host::container`); absent
    /// outside containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::host::container::Container>,
    pub goroutines: Vec<GoroutineReport>,
    pub threads: Vec<ThreadReport>,
    pub maps: Vec<MapReport>,
    /// Maps by type and the site that wrote them most, busiest first: the
    /// view of per-request maps (`classes`).
    #[serde(default)]
    pub map_classes: Vec<MapClassReport>,
    /// Goroutines by where they were created, busiest first.
    #[serde(default)]
    pub goroutine_classes: Vec<GoroutineClassReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MapClassReport {
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// `function file:line` of the site that wrote its instances most.
    pub site: Option<String>,
    pub instances: u64,
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    #[serde(default)]
    pub reads: u64,
    /// Instances written by more than one goroutine.
    pub shared_instances: u64,
    /// Mutations of the busiest instance.
    pub max_instance_writes: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GoroutineClassReport {
    pub created_by: Option<String>,
    pub goroutines: u64,
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    #[serde(default)]
    pub reads: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GoroutineReport {
    pub goid: u64,
    pub writes: u64,
    pub deletes: u64,
    #[serde(default)]
    pub clears: u64,
    pub tids: Vec<u32>,
    pub created_by: Option<String>,
    #[serde(default)]
    pub writes_per_sec: f64,
    #[serde(default)]
    pub reads: u64,
    /// Range loops started (`--reads`; 0 without it).
    #[serde(default)]
    pub iterations: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ThreadReport {
    pub tid: u32,
    pub writes: u64,
    pub deletes: u64,
    #[serde(default)]
    pub clears: u64,
    #[serde(default)]
    pub comm: String,
    #[serde(default)]
    pub reads: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MapReport {
    pub addr: String,
    /// Which map at `addr`: a map freed and another made at the same
    /// address are two instances (two rows). Opaque; unique per process.
    #[serde(default)]
    pub instance: u32,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub writes: u64,
    pub deletes: u64,
    pub clears: u64,
    pub writers: Vec<u64>,
    pub overlaps: u64,
    pub sites: Vec<SiteReport>,
    #[serde(default)]
    pub writes_per_sec: f64,
    #[serde(default)]
    pub reads: u64,
    /// Range loops started (`--reads`; 0 without it).
    #[serde(default)]
    pub iterations: u64,
    /// Its length over the recording (`--len-maps`; absent when not sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<crate::output::health::LenReport>,
    /// A recommendation from its writers, readers, rate and overlaps
    /// (absent on maps with too little traffic); never a finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<crate::output::health::AdviceReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SiteReport {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// All mutations made at this site (writes + deletes + clears).
    pub writes: u64,
    #[serde(default)]
    pub pc: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BpfMapReport {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// None when the fd was closed before it could be resolved.
    pub map_id: Option<u32>,
    pub map_name: Option<String>,
    #[serde(default)]
    pub map_type: Option<String>,
    #[serde(default)]
    pub fd: u32,
    /// Elements updated: 1 per BPF_MAP_UPDATE_ELEM, `count` per update batch.
    pub updates: u64,
    /// Elements deleted (delete, lookup-and-delete, and their batch forms).
    pub deletes: u64,
    #[serde(default)]
    pub update_calls: u64,
    #[serde(default)]
    pub delete_calls: u64,
    /// Elements looked up (`--reads`): lookup, lookup batch.
    #[serde(default)]
    pub lookups: u64,
    #[serde(default)]
    pub lookup_calls: u64,
}

/// A kernel BPF map's hottest written keys (`--bpf-hot-keys`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BpfHotKeysReport {
    pub map_id: u32,
    pub map_name: Option<String>,
    /// Hottest first (at most 10).
    pub keys: Vec<HotKeyReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HotKeyReport {
    /// FNV-1a (64 bits) of the key's first 64 bytes, `0x`-hex. Equal hashes:
    /// the same key (collisions are vanishingly rare); the key itself
    /// cannot be recovered from it, only confirmed by hashing a suspect.
    pub hash: String,
    pub writes: u64,
}

/// How bpf(2) map fds were named.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BpfResolutionReport {
    /// `kernel`: at each call, from the kernel's BTF; `userspace`: from
    /// /proc after the fact (fds closed by then stay unresolved).
    pub path: String,
    /// Why the kernel path was not used.
    #[serde(default)]
    pub why: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FindingReport {
    /// `overlapping_writes` | `shared_map` | `read_during_write`.
    pub kind: FindingKind,
    pub pid: u32,
    pub map: String,
    /// The map instance at `map` (see `MapReport::instance`).
    #[serde(default)]
    pub instance: u32,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub goroutines: Vec<u64>,
    pub sites: Vec<String>,
    #[serde(default)]
    pub count: u64,
    /// Map instances this finding stands for: `shared_map` findings of
    /// instances with the same type and sites are one finding (a shared
    /// map of a per-request kind), with their goroutines together.
    #[serde(default = "one")]
    pub instances: u64,
    /// `growing_map`: how it grew (absent for other kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<crate::output::health::GrowthReport>,
}

fn one() -> u64 {
    1
}

fn hex(v: u64) -> String {
    format!("0x{v:x}")
}

/// One program's rows, as the report needs them.
struct ProgramRows<'a> {
    info: Option<&'a ProcessInfo>,
    pid: u32,
    goroutines: Vec<&'a GoroutineRow>,
    threads: Vec<&'a ThreadRow>,
    maps: Vec<&'a MapRow>,
    /// Classes of rows folded while it ran (`Model::fold_idle`).
    folded_maps: Vec<&'a crate::model::classes::MapClass>,
    folded_goroutines: Vec<&'a crate::model::classes::GoroutineClass>,
}

impl ProgramRows<'_> {
    fn empty(pid: u32) -> Self {
        Self { info: None, pid, goroutines: vec![], threads: vec![], maps: vec![], folded_maps: vec![], folded_goroutines: vec![] }
    }
}

fn process_report(p: &ProgramRows<'_>, site_name: &dyn Fn(u64) -> Option<Location>, secs: f64) -> ProcessReport {
    let site = |pc: u64, n: u64| {
        let loc = site_name(pc);
        SiteReport {
            function: loc.as_ref().map(|l| l.function.clone()),
            file: loc.as_ref().map(|l| l.file.clone()),
            line: loc.as_ref().map(|l| l.line),
            writes: n,
            pc: hex(pc),
        }
    };
    ProcessReport {
        pid: p.pid,
        generation: p.info.map(|i| i.generation).unwrap_or(0),
        exe: p.info.map(|i| i.exe.clone()).unwrap_or_default(),
        go_version: p.info.map(|i| i.go_version.clone()).unwrap_or_default(),
        go_version_source: p.info.and_then(|i| i.go_version_source).map(|s| s.as_str().to_string()),
        container: p.info.and_then(|i| i.container.clone()),
        goroutines: p
            .goroutines
            .iter()
            .map(|g| GoroutineReport {
                goid: g.goid,
                writes: g.ops.writes,
                deletes: g.ops.deletes,
                clears: g.ops.clears,
                tids: g.tids.iter().copied().collect(),
                created_by: g.created_by.as_ref().map(Location::short),
                writes_per_sec: g.ops.total() as f64 / secs,
                reads: g.ops.reads,
                iterations: g.ops.iterations,
            })
            .collect(),
        threads: p
            .threads
            .iter()
            .map(|t| ThreadReport {
                tid: t.tid,
                writes: t.ops.writes,
                deletes: t.ops.deletes,
                clears: t.ops.clears,
                comm: t.comm.clone(),
                reads: t.ops.reads,
            })
            .collect(),
        map_classes: crate::model::classes::merge_map_classes(
            crate::model::classes::map_classes(p.maps.iter().copied(), |_, pc| site_name(pc)),
            p.folded_maps.iter().copied(),
        )
        .into_iter()
            .map(|c| MapClassReport {
                type_name: c.type_name,
                site: c.site.as_ref().map(Location::short),
                instances: c.instances,
                writes: c.ops.writes,
                deletes: c.ops.deletes,
                clears: c.ops.clears,
                reads: c.ops.reads,
                shared_instances: c.shared_instances,
                max_instance_writes: c.max_instance_ops,
            })
            .collect(),
        goroutine_classes: crate::model::classes::merge_goroutine_classes(
            crate::model::classes::goroutine_classes(p.goroutines.iter().copied()),
            p.folded_goroutines.iter().copied(),
        )
        .into_iter()
            .map(|c| GoroutineClassReport {
                created_by: c.created_by.as_ref().map(Location::short),
                goroutines: c.goroutines,
                writes: c.ops.writes,
                deletes: c.ops.deletes,
                clears: c.ops.clears,
                reads: c.ops.reads,
            })
            .collect(),
        maps: p
            .maps
            .iter()
            .map(|m| {
                // One row per source line: the compiler may emit several
                // calls (pcs) for one line.
                let mut sites: Vec<SiteReport> = Vec::new();
                for (&pc, ops) in &m.sites {
                    let s = site(pc, ops.total());
                    match sites
                        .iter_mut()
                        .find(|x| x.line.is_some() && (&x.function, &x.file, x.line) == (&s.function, &s.file, s.line))
                    {
                        Some(x) => x.writes += s.writes,
                        None => sites.push(s),
                    }
                }
                sites.sort_by(|a, b| b.writes.cmp(&a.writes).then(a.pc.cmp(&b.pc)));
                MapReport {
                    addr: hex(m.map.addr),
                    instance: m.map.inst,
                    type_name: m.type_name.clone(),
                    writes: m.ops.writes,
                    deletes: m.ops.deletes,
                    clears: m.ops.clears,
                    writers: m.writers.keys().copied().filter(|&g| g != crate::model::OTHER_WRITERS).collect(),
                    overlaps: m.overlaps,
                    sites,
                    writes_per_sec: m.ops.total() as f64 / secs,
                    reads: m.ops.reads,
                    iterations: m.ops.iterations,
                    len: None,
                    advice: None,
                }
            })
            .collect(),
    }
}

fn finding_report(f: &Finding) -> FindingReport {
    FindingReport {
        kind: f.kind,
        pid: f.pid,
        map: hex(f.map.addr),
        instance: f.map.inst,
        type_name: f.type_name.clone(),
        goroutines: f.goroutines.clone(),
        sites: f.sites.clone(),
        count: f.count,
        instances: f.instances,
        growth: None,
    }
}

/// One `shared_map` finding per (process, type, sites): see
/// `FindingReport::instances`. Other kinds are kept as they are.
fn merge_shared(findings: Vec<FindingReport>) -> Vec<FindingReport> {
    let mut out: Vec<FindingReport> = Vec::with_capacity(findings.len());
    let mut at: std::collections::HashMap<(u32, Option<String>, Vec<String>), usize> = std::collections::HashMap::new();
    for f in findings {
        if f.kind != FindingKind::SharedMap {
            out.push(f);
            continue;
        }
        let mut sites = f.sites.clone();
        sites.sort();
        match at.entry((f.pid, f.type_name.clone(), sites)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let m = &mut out[*e.get()];
                m.instances += f.instances;
                m.count += f.count;
                for g in f.goroutines {
                    if !m.goroutines.contains(&g) {
                        m.goroutines.push(g);
                    }
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(f);
            }
        }
    }
    out
}

/// Builds the report from a model that has had its final `tick`. Programs
/// replaced at their pid (exec) come first, each under its own generation.
pub fn build(model: &Model, started_at: &str, duration_s: f64) -> Report {
    let agg = &model.agg;
    let secs = duration_s.max(f64::MIN_POSITIVE);
    let mut processes: Vec<ProcessReport> = model
        .retired
        .iter()
        .map(|r| {
            let rows = ProgramRows {
                info: Some(&r.info),
                pid: r.info.pid,
                goroutines: r.goroutines.iter().collect(),
                threads: r.threads.iter().collect(),
                maps: r.maps.iter().collect(),
                folded_maps: r.folded_maps.iter().collect(),
                folded_goroutines: r.folded_goroutines.iter().collect(),
            };
            process_report(&rows, &|pc| r.sites.get(&pc).cloned(), secs)
        })
        .collect();
    let mut live: std::collections::BTreeMap<u32, ProgramRows<'_>> = model
        .processes
        .iter()
        .map(|(&pid, info)| (pid, ProgramRows { info: Some(info), ..ProgramRows::empty(pid) }))
        .collect();
    let entry = |live: &mut std::collections::BTreeMap<u32, ProgramRows<'_>>, pid: u32| {
        live.entry(pid).or_insert_with(|| ProgramRows::empty(pid));
    };
    for c in model.folded.maps.values() {
        entry(&mut live, c.pid);
        live.entry(c.pid).and_modify(|p| p.folded_maps.push(c));
    }
    for c in model.folded.goroutines.values() {
        entry(&mut live, c.pid);
        live.entry(c.pid).and_modify(|p| p.folded_goroutines.push(c));
    }
    for g in &agg.goroutines {
        entry(&mut live, g.pid);
        live.entry(g.pid).and_modify(|p| p.goroutines.push(g));
    }
    for t in &agg.threads {
        entry(&mut live, t.pid);
        live.entry(t.pid).and_modify(|p| p.threads.push(t));
    }
    for m in &agg.maps {
        entry(&mut live, m.pid);
        live.entry(m.pid).and_modify(|p| p.maps.push(m));
    }
    let retired = processes.len();
    processes.extend(live.values().map(|p| process_report(p, &|pc| model.names.sites.get(&(p.pid, pc)).cloned(), secs)));
    crate::output::health::annotate(&mut processes[retired..], model);
    let mut findings = merge_shared(
        model
            .retired
            .iter()
            .flat_map(|r| r.findings.iter())
            .chain(agg.findings.iter())
            .map(finding_report)
            .collect(),
    );
    crate::output::health::annotate_findings(&mut findings, model);
    Report {
        schema: SCHEMA.into(),
        started_at: started_at.into(),
        duration_s,
        totals: Totals {
            writes: agg.totals.writes,
            deletes: agg.totals.deletes,
            clears: agg.totals.clears,
            lost_events: model.lost_total(),
            reads: agg.totals.reads,
        },
        reads_probed: model.reads_probed,
        lost: probe_common::lost::NAMES
            .iter()
            .zip(model.lost.iter())
            .map(|(n, v)| ((*n).to_string(), *v))
            .chain(std::iter::once(("unresolved_events".to_string(), model.unresolved)))
            .collect(),
        sampling: None,
        warnings: model.warnings.clone(),
        diagnostics: Some(Diagnostics {
            exec_stops: ExecStops::of(&model.exec_stops_ns, model.watchdog_resumes, model.execs_not_stopped),
            largest_drain: Drain::of(model.largest_drain),
            slowest_drain: Drain::of(model.slowest_drain),
            folded_map_rows: model.folded.map_rows,
            folded_goroutine_rows: model.folded.goroutine_rows,
            bpf_map_resolution: (model.bpf_resolution.as_ref())
                .map(|(path, why)| BpfResolutionReport { path: path.clone(), why: why.clone() }),
            uprobe_links: model.uprobe_links.clone(),
            counter_keys: model.counts().len() as u64,
            events_received: [
                ("new_tuple", model.events.new_tuple),
                ("overlap", model.events.overlap),
                ("exec", model.events.exec),
                ("exit", model.events.exit),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }),
        processes,
        bpf_maps: model
            .bpf
            .iter()
            .map(|b| BpfMapReport {
                pid: b.pid,
                tid: b.tid,
                comm: b.comm.clone(),
                map_id: b.map_id,
                map_name: b.map_name.clone(),
                map_type: b.map_type.clone(),
                fd: b.fd,
                updates: b.updates,
                deletes: b.deletes,
                update_calls: b.update_calls,
                delete_calls: b.delete_calls,
                lookups: b.lookups,
                lookup_calls: b.lookup_calls,
            })
            .collect(),
        bpf_hot_keys: (model.bpf_hot_keys.iter())
            .map(|h| BpfHotKeysReport {
                map_id: h.map_id,
                map_name: model.bpf.iter().find(|b| b.map_id == Some(h.map_id)).and_then(|b| b.map_name.clone()),
                keys: h.keys.iter().map(|&(hash, writes)| HotKeyReport { hash: format!("{hash:#018x}"), writes }).collect(),
            })
            .collect(),
        findings,
        timeline: None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write the report to {path}: {why}")]
    Unwritable { path: PathBuf, why: String },
}

/// Where the report goes, validated before anything is attached.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout,
    File(ReportFile),
}

/// A report file: its directory, opened once (as the owner) and used by
/// descriptor, its name there, and whom it is written as.
#[derive(Debug, Clone)]
pub struct ReportFile {
    pub path: PathBuf,
    dir: Arc<safefile::Dir>,
    name: OsString,
    owner: Option<Identity>,
}

impl Output {
    /// Checks that `spec` can be written by `owner` (None: mapaudit itself):
    /// its directory exists and `owner` can create files in it, and whatever
    /// is at the name already is a regular file (never a device, fifo or
    /// symlink). Creates and removes a fresh temp file to prove it; never
    /// touches the report path itself.
    pub fn prepare(spec: &str, owner: Option<&Identity>) -> Result<Self, OutputError> {
        if spec == "-" {
            return Ok(Self::Stdout);
        }
        let path = PathBuf::from(spec);
        let err = |why: String| OutputError::Unwritable { path: path.clone(), why };
        let Some((dir_path, name)) = safefile::split(&path) else {
            return Err(err("it names no file; give a file path such as report.json".into()));
        };
        // Err((message, is_about_permission)).
        let check = || -> Result<safefile::Dir, (String, bool)> {
            let dir = safefile::Dir::open(&dir_path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => (format!("directory {} does not exist; create it first", dir_path.display()), false),
                std::io::ErrorKind::NotADirectory => (format!("{} is not a directory", dir_path.display()), false),
                _ => (format!("opening directory {}: {e}", dir_path.display()), true),
            })?;
            match dir.entry(&name) {
                Ok(safefile::Entry::Nothing | safefile::Entry::Regular) => {}
                Ok(other) => {
                    let why = format!(
                        "it exists and is {} (not a regular file); mapaudit only writes regular files: choose a file path",
                        other.describe()
                    );
                    return Err((why, false));
                }
                Err(e) => return Err((e.to_string(), true)),
            }
            let prefix = format!(".{}.", name.to_string_lossy());
            let (_, tmp) = dir.create_unique(&prefix, ".mapaudit-tmp", 0o600).map_err(|e| (e.to_string(), true))?;
            let _ = dir.remove(&tmp);
            Ok(dir)
        };
        let checked = match owner {
            Some(o) => o.run_as(check).map_err(|e| err(format!("{e:#}")))?,
            None => check(),
        };
        let dir = checked.map_err(|(why, permission)| match owner {
            _ if !permission => err(why),
            Some(o) => err(format!(
                "{why}; mapaudit writes its files as {} (the user it acts for): choose a directory that user can \
                 write, or `--json -`",
                o.describe()
            )),
            None => err(format!("{why}; choose a writable directory")),
        })?;
        Ok(Self::File(ReportFile { path, dir: Arc::new(dir), name, owner: owner.cloned() }))
    }

    /// Writes the report: stdout, or temp file + fsync + guarded rename, as
    /// the owner.
    pub fn write(&self, report: &Report) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        self.write_bytes(&json)
    }

    /// Writes `json` (or any rendered report) the same careful way.
    pub fn write_bytes(&self, json: &[u8]) -> anyhow::Result<()> {
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(json)?;
                out.flush()?;
            }
            Self::File(f) => {
                let write = || safefile::write_atomic(&f.dir, &f.name, json);
                match &f.owner {
                    Some(o) => o.run_as(write)??,
                    None => write()?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::MapId;

    /// The first process of each program parses it; the rest reuse its
    /// attachment, and their stops are reported apart.
    #[test]
    fn exec_stops_tell_parsing_from_reuse() {
        let ms = |n: u64| n * 1_000_000;
        let stops: std::collections::VecDeque<(u64, bool)> =
            [(ms(120), true), (ms(2), false), (ms(3), false), (ms(80), true), (ms(4), false)].into();
        let s = ExecStops::of(&stops, 1, 7).unwrap();
        assert_eq!((s.count, s.parsed, s.watchdog_resumes, s.not_stopped), (5, 2, 1, 7));
        assert_eq!((s.p50_ms, s.max_ms), (4.0, 120.0));
        assert_eq!((s.reused_p99_ms, s.reused_max_ms), (4.0, 4.0));
        // Only parsing stops: nothing reused to report.
        let s = ExecStops::of(&[(ms(50), true)].into(), 0, 0).unwrap();
        assert_eq!((s.parsed, s.reused_p99_ms), (1, 0.0));
        assert!(ExecStops::of(&Default::default(), 0, 0).is_none());
        // Nothing stopped, every exec ran at once: still reported.
        let s = ExecStops::of(&Default::default(), 0, 3).unwrap();
        assert_eq!((s.count, s.not_stopped, s.p99_ms), (0, 3, 0.0));
    }
    use super::*;
    use crate::model::OverlapEvent;
    use probe_common::uprobe::{WriteKey, routine};
    use std::time::Duration;

    fn model() -> Model {
        let mut m = Model::new();
        let k = |tid, goid, pc, r| WriteKey { pid: 5, tid, goid, map: 0xc000010000, pc, routine: r, _pad: [0; 3], inst: 0 };
        m.set_counts([(k(6, 1, 0x10, routine::MAPASSIGN_FASTSTR), 3), (k(7, 2, 0x20, routine::MAPDELETE_FASTSTR), 1)]);
        m.names.sites.insert((5, 0x10), Location { function: "main.a".into(), file: "/x/main.go".into(), line: 9 });
        m.names.map_types.insert((5, MapId { addr: 0xc000010000, inst: 0 }), "map[string]int".into());
        m.add_overlap(OverlapEvent {
            pid: 5, map: MapId { addr: 0xc000010000, inst: 0 }, goid: 2, tid: 7, site: None,
            other_goid: Some(1), other_tid: Some(6), other_site: None, ktime_ns: 1, by_go_runtime: false, read: false, iter: false, pc: 0,
        });
        m.tick(Duration::ZERO);
        m
    }

    #[test]
    fn report_matches_the_contract_names() {
        let r = build(&model(), "2026-01-01T00:00:00Z", 2.0);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["schema"], "mapaudit/v1");
        assert_eq!(v["totals"]["writes"], 3);
        assert_eq!(v["totals"]["deletes"], 1);
        let p = &v["processes"][0];
        assert_eq!(p["pid"], 5);
        assert_eq!(p["maps"][0]["addr"], "0xc000010000");
        assert_eq!(p["maps"][0]["type"], "map[string]int");
        assert_eq!(p["maps"][0]["writers"], serde_json::json!([1, 2]));
        assert_eq!(p["maps"][0]["overlaps"], 1);
        assert_eq!(p["maps"][0]["sites"][0]["function"], "main.a");
        assert_eq!(p["maps"][0]["sites"][0]["line"], 9);
        assert_eq!(p["goroutines"][0]["tids"], serde_json::json!([6]));
        let kinds: Vec<_> = v["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["overlapping_writes", "shared_map"]);
        assert_eq!(v["findings"][0]["goroutines"], serde_json::json!([2, 1]));
        // Round-trips through the reader `check` uses.
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn output_refuses_non_regular_files_and_missing_dirs() {
        use std::fs;
        assert!(Output::prepare("/dev/null", None).is_err());
        assert!(Output::prepare("/nonexistent-dir/r.json", None).is_err());
        let dir = std::env::temp_dir().join(format!("mapaudit-out-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.json");
        let out = Output::prepare(p.to_str().unwrap(), None).unwrap();
        // Preparing proves the directory writable without creating the report.
        assert!(!p.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "the probe temp file is gone");
        out.write(&build(&model(), "t", 1.0)).unwrap();
        let back: Report = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(back.schema, SCHEMA);
        // A symlink at the report's name is refused up front.
        let q = dir.join("link.json");
        std::os::unix::fs::symlink(&p, &q).unwrap();
        let e = Output::prepare(q.to_str().unwrap(), None).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
