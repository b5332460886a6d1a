//! The JSON report (`"schema": "mapaudit/v1"`): its types (shared by `record`,
//! which writes it, and `check`, which reads it), building it from the model,
//! and writing it atomically. Field names are a contract: add, never rename.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Finding, GoroutineRow, Location, MapRow, Model, ProcessInfo, ThreadRow};

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
    pub processes: Vec<ProcessReport>,
    pub bpf_maps: Vec<BpfMapReport>,
    pub findings: Vec<FindingReport>,
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
pub fn apply_sampling(rep: &mut Report, d: &crate::budget::DutyCycle) {
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
            m.writes_per_sec *= k;
            for s in &mut m.sites {
                sc(&mut s.writes);
            }
        }
    }
    for f in &mut rep.findings {
        if f.kind == "shared_map" {
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
    pub goroutines: Vec<GoroutineReport>,
    pub threads: Vec<ThreadReport>,
    pub maps: Vec<MapReport>,
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
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FindingReport {
    /// `overlapping_writes` | `shared_map` | `read_during_write`.
    pub kind: String,
    pub pid: u32,
    pub map: String,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub goroutines: Vec<u64>,
    pub sites: Vec<String>,
    #[serde(default)]
    pub count: u64,
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
        // TODO(#14): read it from ProcessInfo once the collector records it
        // there; until then gobin remembers it per executable path.
        go_version_source: p
            .info
            .and_then(|i| crate::gobin::recorded_version_source(&i.exe))
            .map(|s| s.as_str().to_string()),
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
                    addr: hex(m.addr),
                    type_name: m.type_name.clone(),
                    writes: m.ops.writes,
                    deletes: m.ops.deletes,
                    clears: m.ops.clears,
                    writers: m.writers.keys().copied().collect(),
                    overlaps: m.overlaps,
                    sites,
                    writes_per_sec: m.ops.total() as f64 / secs,
                    reads: m.ops.reads,
                }
            })
            .collect(),
    }
}

fn finding_report(f: &Finding) -> FindingReport {
    FindingReport {
        kind: f.kind.as_str().into(),
        pid: f.pid,
        map: hex(f.map),
        type_name: f.type_name.clone(),
        goroutines: f.goroutines.clone(),
        sites: f.sites.clone(),
        count: f.count,
    }
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
            };
            process_report(&rows, &|pc| r.sites.get(&pc).cloned(), secs)
        })
        .collect();
    let mut live: std::collections::BTreeMap<u32, ProgramRows<'_>> = model
        .processes
        .iter()
        .map(|(&pid, info)| (pid, ProgramRows { info: Some(info), pid, goroutines: vec![], threads: vec![], maps: vec![] }))
        .collect();
    let entry = |live: &mut std::collections::BTreeMap<u32, ProgramRows<'_>>, pid: u32| {
        live.entry(pid).or_insert_with(|| ProgramRows { info: None, pid, goroutines: vec![], threads: vec![], maps: vec![] });
    };
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
    processes.extend(live.values().map(|p| process_report(p, &|pc| model.names.sites.get(&(p.pid, pc)).cloned(), secs)));
    let findings = model.retired.iter().flat_map(|r| r.findings.iter()).chain(agg.findings.iter()).map(finding_report).collect();
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
        diagnostics: Some(Diagnostics {
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
            })
            .collect(),
        findings,
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
    File(PathBuf),
}

impl Output {
    /// Checks that `spec` can be written: its directory exists and is
    /// writable, and an existing file is a regular file (never write through
    /// a device, fifo or symlink to one).
    pub fn prepare(spec: &str) -> Result<Self, OutputError> {
        if spec == "-" {
            return Ok(Self::Stdout);
        }
        let path = PathBuf::from(spec);
        let err = |why: String| OutputError::Unwritable { path: path.clone(), why };
        match fs::metadata(&path) {
            Ok(m) if !m.is_file() => {
                return Err(err("it exists and is not a regular file; choose a file path".into()));
            }
            _ => {}
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(err(format!("directory {} does not exist; create it first", dir.display())));
        }
        // Prove we can create the temp file the atomic write will use.
        let probe = temp_path(&path);
        fs::File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| err(format!("{e}; choose a writable directory")))?;
        Ok(Self::File(path))
    }

    /// Writes the report: stdout, or temp file + fsync + rename.
    pub fn write(&self, report: &Report) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&json)?;
                out.flush()?;
            }
            Self::File(path) => write_atomic(path, &json)?,
        }
        Ok(())
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.mapaudit-tmp.{}", std::process::id()))
}

fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let tmp = temp_path(path);
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OverlapEvent;
    use probe_common::uprobe::{WriteKey, routine};
    use std::time::Duration;

    fn model() -> Model {
        let mut m = Model::new();
        let k = |tid, goid, pc, r| WriteKey { pid: 5, tid, goid, map: 0xc000010000, pc, routine: r, _pad: [0; 7] };
        m.set_counts([(k(6, 1, 0x10, routine::MAPASSIGN_FASTSTR), 3), (k(7, 2, 0x20, routine::MAPDELETE_FASTSTR), 1)]);
        m.names.sites.insert((5, 0x10), Location { function: "main.a".into(), file: "/x/main.go".into(), line: 9 });
        m.names.map_types.insert((5, 0xc000010000), "map[string]int".into());
        m.add_overlap(OverlapEvent {
            pid: 5, map: 0xc000010000, goid: 2, tid: 7, site: None,
            other_goid: Some(1), other_tid: Some(6), other_site: None, ktime_ns: 1, by_go_runtime: false, read: false, pc: 0,
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
        assert!(Output::prepare("/dev/null").is_err());
        assert!(Output::prepare("/nonexistent-dir/r.json").is_err());
        let dir = std::env::temp_dir().join(format!("mapaudit-out-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.json");
        let out = Output::prepare(p.to_str().unwrap()).unwrap();
        out.write(&build(&model(), "t", 1.0)).unwrap();
        let back: Report = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(back.schema, SCHEMA);
        fs::remove_dir_all(&dir).unwrap();
    }
}
