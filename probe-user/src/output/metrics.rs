//! `mapaudit serve`'s metrics: the model as Prometheus counters and gauges
//! (`prometheus-client`, OpenMetrics text), with bounded labels only — pod,
//! container, executable, map type, op, call site; never a goroutine id,
//! thread id or map address.
//!
//! Counters stay monotonic across refreshes: each refresh computes every
//! series' total so far — the live processes' rows plus what processes
//! that are gone (exited, or replaced at their pid) had counted when last
//! seen — and a counter only ever moves up to it (`fetch_max`), so a row
//! whose name resolves late, or a process that goes away, never makes a
//! counter fall. Series are admitted once and stay: at most `top_sites`
//! call sites (the rest under `site="other"`) and at most `max_series`
//! series in all (the rest are counted in `mapaudit_series_folded`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::host::container::Container;
use crate::model::Model;

/// What `serve` exports and how much of it.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Call sites with their own series; the rest are `site="other"`.
    pub top_sites: usize,
    /// Series (all labelled families together) before new ones are folded.
    pub max_series: usize,
    pub filter: Filter,
}

/// Which processes' counts are exported: an include list that is not empty
/// admits only what it names; an exclude list drops what it names.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub include_pods: Vec<String>,
    pub exclude_pods: Vec<String>,
    /// A full path or a file name.
    pub include_exes: Vec<String>,
    pub exclude_exes: Vec<String>,
}

impl Filter {
    pub fn admits(&self, p: &ProcLabels) -> bool {
        fn ok(v: &str, include: &[String], exclude: &[String], same: impl Fn(&str, &str) -> bool) -> bool {
            (include.is_empty() || include.iter().any(|i| same(i, v))) && !exclude.iter().any(|e| same(e, v))
        }
        let eq = |a: &str, b: &str| a == b;
        let exe = |pat: &str, exe: &str| pat == exe || exe.rsplit('/').next() == Some(pat);
        ok(&p.namespace, &self.include_namespaces, &self.exclude_namespaces, eq)
            && ok(&p.pod, &self.include_pods, &self.exclude_pods, eq)
            && ok(&p.exe, &self.include_exes, &self.exclude_exes, exe)
    }
}

/// The labels every per-process series carries (empty when unknown).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, Default, EncodeLabelSet)]
pub struct ProcLabels {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub exe: String,
}

impl ProcLabels {
    pub fn of(exe: &str, c: Option<&Container>) -> Self {
        let s = |v: Option<&String>| v.cloned().unwrap_or_default();
        Self {
            namespace: s(c.and_then(|c| c.namespace.as_ref())),
            pod: s(c.and_then(|c| c.pod.as_ref())),
            pod_uid: s(c.and_then(|c| c.pod_uid.as_ref())),
            container: s(c.and_then(|c| c.id.as_ref())),
            exe: exe.to_string(),
        }
    }
}

/// `exact`: every write was counted; `scaled`: counts observed while the
/// probes were attached (`--max-overhead`), scaled up — estimates.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct WriteLabels {
    #[prometheus(flatten)]
    pub proc: ProcLabels,
    pub map_type: String,
    pub op: String,
    pub estimate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SiteLabels {
    #[prometheus(flatten)]
    pub proc: ProcLabels,
    pub map_type: String,
    pub site: String,
    pub estimate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct BpfLabels {
    pub exe: String,
    pub map_name: String,
    pub map_type: String,
    pub cmd: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

/// One series of any labelled family: where its total is kept between
/// refreshes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
enum Series {
    Writes(WriteLabels),
    Site(SiteLabels),
    Overlap(SiteLabels),
    Bpf(BpfLabels),
}

/// The registry and the state that keeps its counters monotonic.
pub struct Metrics {
    pub registry: Registry,
    cfg: MetricsConfig,
    writes: Family<WriteLabels, Counter>,
    sites: Family<SiteLabels, Counter>,
    overlaps: Family<SiteLabels, Counter>,
    bpf: Family<BpfLabels, Counter>,
    probe_hits: Counter,
    lost: Family<CauseLabels, Counter>,
    processes: Gauge,
    probes: Gauge,
    duty: Gauge<f64, AtomicU64>,
    folded: Counter,
    series: Gauge,
    /// Per program run (pid, generation): its series' totals when last seen.
    live: HashMap<(u32, u32), BTreeMap<Series, u64>>,
    /// Program runs no longer live: their last totals, summed.
    gone: BTreeMap<Series, u64>,
    /// Series exported (admitted once, kept).
    admitted: HashSet<Series>,
    /// Call sites with their own series.
    named_sites: HashSet<(ProcLabels, String)>,
    /// Series refused for `max_series`.
    refused: HashSet<Series>,
}

/// What one refresh is told besides the model.
pub struct Refresh {
    /// The duty cycle's scale (observed × scale = estimate); None: exact.
    pub scale: Option<f64>,
    pub duty_cycle: f64,
    pub attached_probes: usize,
}

impl Metrics {
    pub fn new(cfg: MetricsConfig) -> Self {
        let mut registry = Registry::with_prefix("mapaudit");
        let writes = Family::<WriteLabels, Counter>::default();
        let sites = Family::<SiteLabels, Counter>::default();
        let overlaps = Family::<SiteLabels, Counter>::default();
        let bpf = Family::<BpfLabels, Counter>::default();
        let lost = Family::<CauseLabels, Counter>::default();
        let (probe_hits, processes, probes, folded, series) =
            (Counter::default(), Gauge::default(), Gauge::default(), Counter::default(), Gauge::default());
        let duty = Gauge::<f64, AtomicU64>::default();
        registry.register("go_map_writes", "Go map mutations (op: write, delete, clear) by map type", writes.clone());
        registry.register(
            "go_map_site_writes",
            "Go map mutations by call site (the busiest sites; the rest under site=\"other\")",
            sites.clone(),
        );
        registry.register(
            "go_map_overlapping_writes",
            "Go map writes that overlapped another goroutine's write of the same map",
            overlaps.clone(),
        );
        registry.register("bpf_map_syscall_writes", "Kernel BPF map elements written through bpf(2) (cmd: update, delete)", bpf.clone());
        registry.register("probe_hits", "Map operations the probes observed (before any scaling)", probe_hits.clone());
        registry.register("lost_events", "Events and writes that could not be recorded, by cause", lost.clone());
        registry.register("attached_processes", "Go processes whose map writes are counted", processes.clone());
        registry.register("attached_probes", "Uprobes attached", probes.clone());
        registry.register(
            "sampling_duty_cycle",
            "Fraction of time the probes were attached (1: exact; below 1: counts are scaled estimates)",
            duty.clone(),
        );
        registry.register("series_folded", "Label sets not exported because --max-series was reached", folded.clone());
        registry.register("series", "Labelled series exported", series.clone());
        registry.register(
            "build",
            "mapaudit's version and commit",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION")), ("commit", crate::build_info::COMMIT)]),
        );
        Self {
            registry,
            cfg,
            writes,
            sites,
            overlaps,
            bpf,
            probe_hits,
            lost,
            processes,
            probes,
            duty,
            folded,
            series,
            live: HashMap::new(),
            gone: BTreeMap::new(),
            admitted: HashSet::new(),
            named_sites: HashSet::new(),
            refused: HashSet::new(),
        }
    }

    /// Brings every series up to the model's totals.
    pub fn update(&mut self, model: &Model, r: &Refresh) {
        let estimate = if r.scale.is_some() { "scaled" } else { "exact" };
        let scale = |v: u64| r.scale.map_or(v, |k| (v as f64 * k).round() as u64);
        let mut now: HashMap<(u32, u32), BTreeMap<Series, u64>> = HashMap::new();
        let labels: HashMap<u32, (u32, ProcLabels)> = model
            .processes
            .iter()
            .map(|(&pid, p)| (pid, (p.generation, ProcLabels::of(&p.exe, p.container.as_ref()))))
            .collect();
        let proc_of = |pid: u32| labels.get(&pid).cloned().unwrap_or_else(|| (0, ProcLabels { exe: format!("pid {pid}"), ..Default::default() }));
        let add = |now: &mut HashMap<(u32, u32), BTreeMap<Series, u64>>, pid: u32, generation: u32, s: Series, v: u64| {
            if v > 0 {
                *now.entry((pid, generation)).or_default().entry(s).or_default() += v;
            }
        };
        let a = &model.agg;
        let map_type = |t: Option<&String>| t.cloned().unwrap_or_else(|| "unknown".into());
        let ops = |o: &crate::model::Ops| [("write", o.writes), ("delete", o.deletes), ("clear", o.clears)];
        // Map types: the live map rows and the classes idle rows were folded into.
        let rows = a.maps.iter().map(|m| (m.pid, m.type_name.as_ref(), m.ops));
        let classes = model.folded.maps.values().map(|c| (c.pid, c.type_name.as_ref(), c.ops));
        for (pid, t, o) in rows.chain(classes) {
            let (generation, proc) = proc_of(pid);
            if !self.cfg.filter.admits(&proc) {
                continue;
            }
            for (op, n) in ops(&o) {
                let l = WriteLabels { proc: proc.clone(), map_type: map_type(t), op: op.into(), estimate: estimate.into() };
                add(&mut now, pid, generation, Series::Writes(l), scale(n));
            }
        }
        for s in &a.sites {
            let (generation, proc) = proc_of(s.pid);
            if !self.cfg.filter.admits(&proc) {
                continue;
            }
            let site = s.location.as_ref().map_or_else(|| format!("0x{:x}", s.pc), |l| l.short());
            let t = s.maps.iter().next().and_then(|m| model.names.map_types.get(&(s.pid, *m)));
            let l = SiteLabels { proc, map_type: map_type(t), site, estimate: estimate.into() };
            add(&mut now, s.pid, generation, Series::Site(l), scale(s.ops.total()));
        }
        for o in model.overlaps.iter().filter(|o| !o.read) {
            let (generation, proc) = proc_of(o.pid);
            if !self.cfg.filter.admits(&proc) {
                continue;
            }
            let site = o.site.as_ref().map_or_else(|| "unknown".to_string(), |l| l.short());
            let t = model.names.map_types.get(&(o.pid, o.map));
            // Overlaps are seen one by one, never scaled: exact even under a budget.
            let l = SiteLabels { proc, map_type: map_type(t), site, estimate: "exact".into() };
            add(&mut now, o.pid, generation, Series::Overlap(l), 1);
        }
        for b in &model.bpf {
            let exe = labels.get(&b.pid).map_or_else(|| b.comm.clone(), |(_, p)| p.exe.clone());
            let l = |cmd: &str| BpfLabels {
                exe: exe.clone(),
                map_name: b.map_name.clone().unwrap_or_default(),
                map_type: b.map_type.clone().unwrap_or_default(),
                cmd: cmd.into(),
            };
            // bpf(2) rows are keyed by pid and fd; pid 0 generation 0 is
            // as good a run key as any (they are counted, not sampled).
            add(&mut now, b.pid, u32::MAX, Series::Bpf(l("update")), b.updates);
            add(&mut now, b.pid, u32::MAX, Series::Bpf(l("delete")), b.deletes);
        }
        // Runs no longer live keep what they had counted.
        let ended: Vec<(u32, u32)> = self.live.keys().filter(|k| !now.contains_key(k)).copied().collect();
        for k in ended {
            if let Some(m) = self.live.remove(&k) {
                for (s, v) in m {
                    *self.gone.entry(s).or_default() += v;
                }
            }
        }
        self.live = now;
        let mut totals = self.gone.clone();
        for m in self.live.values() {
            for (s, v) in m {
                *totals.entry(s.clone()).or_default() += v;
            }
        }
        self.export(totals);
        let observed: u64 = a.totals.writes + a.totals.deletes + a.totals.clears + a.totals.reads;
        self.probe_hits.inner().fetch_max(observed, Ordering::Relaxed);
        for (i, name) in probe_common::lost::NAMES.iter().enumerate() {
            self.lost.get_or_create(&CauseLabels { cause: (*name).into() }).inner().fetch_max(model.lost[i], Ordering::Relaxed);
        }
        self.lost.get_or_create(&CauseLabels { cause: "unresolved".into() }).inner().fetch_max(model.unresolved, Ordering::Relaxed);
        self.processes.set(model.processes.len() as i64);
        self.probes.set(r.attached_probes as i64);
        self.duty.set(r.duty_cycle);
        self.series.set(self.admitted.len() as i64);
    }

    /// Admits new series within the limits and moves every admitted one up.
    fn export(&mut self, totals: BTreeMap<Series, u64>) {
        // Sites beyond the top K go to site="other": the busiest first
        // (at this refresh) get the free places, and keep them.
        let mut site_totals: Vec<(&Series, u64)> = totals.iter().filter(|(s, _)| matches!(s, Series::Site(_))).map(|(s, v)| (s, *v)).collect();
        site_totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (s, _) in site_totals {
            if let Series::Site(l) = s
                && self.named_sites.len() < self.cfg.top_sites
            {
                self.named_sites.insert((l.proc.clone(), l.site.clone()));
            }
        }
        let mut merged: BTreeMap<Series, u64> = BTreeMap::new();
        for (s, v) in totals {
            let s = match s {
                Series::Site(mut l) if !self.named_sites.contains(&(l.proc.clone(), l.site.clone())) => {
                    l.site = "other".into();
                    l.map_type = String::new();
                    Series::Site(l)
                }
                s => s,
            };
            *merged.entry(s).or_default() += v;
        }
        for (s, v) in merged {
            if !self.admitted.contains(&s) {
                if self.admitted.len() >= self.cfg.max_series {
                    if self.refused.insert(s) {
                        self.folded.inc();
                    }
                    continue;
                }
                self.admitted.insert(s.clone());
            }
            let c = match &s {
                Series::Writes(l) => self.writes.get_or_create(l).clone(),
                Series::Site(l) => self.sites.get_or_create(l).clone(),
                Series::Overlap(l) => self.overlaps.get_or_create(l).clone(),
                Series::Bpf(l) => self.bpf.get_or_create(l).clone(),
            };
            c.inner().fetch_max(v, Ordering::Relaxed);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(top_sites: usize, max_series: usize) -> MetricsConfig {
        MetricsConfig { top_sites, max_series, filter: Filter::default() }
    }

    fn proc(exe: &str) -> ProcLabels {
        ProcLabels { exe: exe.into(), ..Default::default() }
    }

    fn site(exe: &str, s: &str) -> Series {
        Series::Site(SiteLabels { proc: proc(exe), map_type: "map[int]int".into(), site: s.into(), estimate: "exact".into() })
    }

    fn value(m: &Metrics, s: &str) -> Option<u64> {
        let text = m.encode().unwrap();
        text.lines().find(|l| l.starts_with(s)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
    }

    #[test]
    fn sites_beyond_top_k_are_other_and_counters_never_fall() {
        let mut m = Metrics::new(cfg(2, 100));
        let t: BTreeMap<Series, u64> = [(site("a", "s1"), 10), (site("a", "s2"), 5), (site("a", "s3"), 1), (site("a", "s4"), 2)].into();
        m.export(t);
        assert_eq!(value(&m, "mapaudit_go_map_site_writes_total{namespace=\"\",pod=\"\",pod_uid=\"\",container=\"\",exe=\"a\",map_type=\"map[int]int\",site=\"s1\""), Some(10));
        assert_eq!(value(&m, "mapaudit_go_map_site_writes_total{namespace=\"\",pod=\"\",pod_uid=\"\",container=\"\",exe=\"a\",map_type=\"\",site=\"other\""), Some(3));
        // s3 grows past s1: it stays under "other" (admission is sticky), and a
        // smaller total (a late-named row) never makes a counter fall.
        let t: BTreeMap<Series, u64> = [(site("a", "s1"), 7), (site("a", "s2"), 5), (site("a", "s3"), 100), (site("a", "s4"), 2)].into();
        m.export(t);
        assert_eq!(value(&m, "mapaudit_go_map_site_writes_total{namespace=\"\",pod=\"\",pod_uid=\"\",container=\"\",exe=\"a\",map_type=\"map[int]int\",site=\"s1\""), Some(10));
        assert_eq!(value(&m, "mapaudit_go_map_site_writes_total{namespace=\"\",pod=\"\",pod_uid=\"\",container=\"\",exe=\"a\",map_type=\"\",site=\"other\""), Some(102));
    }

    #[test]
    fn max_series_folds_and_counts() {
        let mut m = Metrics::new(cfg(1000, 3));
        let t: BTreeMap<Series, u64> = (0..10).map(|i| (site("a", &format!("s{i}")), 1)).collect();
        m.export(t);
        assert_eq!(m.admitted.len(), 3);
        assert_eq!(m.folded.get(), 7);
        let t: BTreeMap<Series, u64> = (0..10).map(|i| (site("a", &format!("s{i}")), 2)).collect();
        m.export(t);
        assert_eq!(m.folded.get(), 7, "a folded series is counted once");
        let series = m.encode().unwrap().lines().filter(|l| l.starts_with("mapaudit_go_map_site_writes_total{")).count();
        assert_eq!(series, 3);
    }

    /// Counters built from a model hold the model's exact totals, and keep
    /// them when the process is gone (retired: its rows leave the model),
    /// and a pod's labels come from its process.
    #[test]
    fn totals_survive_the_process_going_away() {
        use probe_common::uprobe::{WriteKey, routine};
        let key = |pid: u32, goid: u64, pc: u64, r: u8| WriteKey { pid, tid: pid, goid, map: 0x1000, pc, routine: r, _pad: [0; 3], inst: 1 };
        let mut model = Model::new();
        let pod = Container { pod: Some("web-0".into()), namespace: Some("prod".into()), ..Default::default() };
        model.processes.insert(7, crate::model::ProcessInfo { pid: 7, exe: "/bin/api".into(), container: Some(pod), ..Default::default() });
        model.add_counts([(key(7, 1, 0x10, routine::MAPASSIGN_FASTSTR), 30), (key(7, 2, 0x20, routine::MAPDELETE_FASTSTR), 4)]);
        model.tick(std::time::Duration::from_secs(1));
        let mut m = Metrics::new(cfg(10, 100));
        let r = Refresh { scale: None, duty_cycle: 1.0, attached_probes: 1 };
        m.update(&model, &r);
        let writes = "mapaudit_go_map_writes_total{namespace=\"prod\",pod=\"web-0\",pod_uid=\"\",container=\"\",exe=\"/bin/api\",map_type=\"unknown\",op=";
        let check = |m: &Metrics| {
            assert_eq!(value(m, &format!("{writes}\"write\"")), Some(30));
            assert_eq!(value(m, &format!("{writes}\"delete\"")), Some(4));
            let text = m.encode().unwrap();
            assert_eq!(sample_sum(&text, "mapaudit_go_map_site_writes_total{"), 34, "{text}");
            assert_eq!(value(m, "mapaudit_probe_hits_total"), Some(34));
        };
        check(&m);
        m.update(&model, &r);
        check(&m);
        model.retire(7);
        m.update(&model, &r);
        check(&m);
        // A new program at the same pid counts on top.
        model.processes.insert(7, crate::model::ProcessInfo { pid: 7, generation: 1, exe: "/bin/api".into(), ..Default::default() });
        model.add_counts([(key(7, 1, 0x10, routine::MAPASSIGN_FASTSTR), 5)]);
        model.tick(std::time::Duration::from_secs(1));
        m.update(&model, &r);
        assert_eq!(value(&m, &format!("{writes}\"write\"")), Some(30));
        let other = "mapaudit_go_map_writes_total{namespace=\"\",pod=\"\",pod_uid=\"\",container=\"\",exe=\"/bin/api\",map_type=\"unknown\",op=\"write\"";
        assert_eq!(value(&m, other), Some(5));
    }

    fn sample_sum(text: &str, prefix: &str) -> u64 {
        text.lines().filter(|l| l.starts_with(prefix)).map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum()
    }

    #[test]
    fn filters() {
        let f = Filter { include_namespaces: vec!["prod".into()], exclude_exes: vec!["noisy".into()], ..Default::default() };
        let p = |ns: &str, exe: &str| ProcLabels { namespace: ns.into(), exe: exe.into(), ..Default::default() };
        assert!(f.admits(&p("prod", "/bin/api")));
        assert!(!f.admits(&p("dev", "/bin/api")));
        assert!(!f.admits(&p("prod", "/usr/bin/noisy")));
        assert!(Filter::default().admits(&p("", "x")));
    }

    #[test]
    fn exposition_has_the_self_metrics() {
        let mut m = Metrics::new(cfg(10, 10));
        m.update(&Model::new(), &Refresh { scale: None, duty_cycle: 1.0, attached_probes: 7 });
        let text = m.encode().unwrap();
        assert!(text.contains("mapaudit_attached_probes 7"), "{text}");
        assert!(text.contains("mapaudit_sampling_duty_cycle 1.0"), "{text}");
        assert!(text.contains("mapaudit_build_info{version=\""), "{text}");
        assert!(text.contains("mapaudit_lost_events_total{cause=\"unresolved\"} 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
