//! From the kernel to the model: drains the event ring buffer, snapshots the
//! per-CPU counters, and resolves what userspace must name (call sites,
//! `map[K]V` types, goroutine creators, bpf map ids) through each process's
//! Go binary.

use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf};

use crate::kernel::counters::{Batch, CounterTables, Drainer};
use probe_common::{
    bpfmap::{BpfWriteKey, BpfWriteValue, HotKey},
    events::{self, EventHeader},
    lost,
    maps as names,
    uprobe::WriteKey,
};

use crate::kernel::bpfmaps;
use crate::gobin::GoBinary;
use crate::kernel::loader::Probes;
use crate::model::{BpfHotKeys, BpfRow, Location, Model, OverlapEvent, ProcessInfo};
use crate::host::proc::{self, ProcExe};

/// Something the session must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A process exec'd; `stopped`: the kernel stopped it for us to attach;
    /// `ktime_ns`: when (CLOCK_MONOTONIC, like `monotonic_ns`).
    /// `attached`: the exec'd file's probes were already attached for every
    /// process of it; `inode`: (kernel dev, ino) of the file, when read.
    Exec { pid: u32, stopped: bool, ktime_ns: u64, attached: bool, inode: Option<(u32, u64)> },
    Exit { pid: u32 },
}

/// A process whose Go binary is known.
pub struct Proc {
    pub exe: ProcExe,
    pub bin: Arc<GoBinary>,
    pub bias: u64,
    /// When it was registered (CLOCK_MONOTONIC ns): an exec event older
    /// than this is the exec that started this very program.
    pub registered_ns: u64,
    /// The binary's runtime offsets (`Collector::offsets`); None: none known.
    pub offsets: Option<crate::gobin::RuntimeOffsets>,
    /// Pcs symbolized and map types named in this process, by address: a
    /// server's per-request goroutines and maps repeat a few creation
    /// sites and types thousands of times, and decoding each anew was ~5 %
    /// of mapaudit's CPU under churn. Bounded by the binary's code and types.
    symbols: FxHashMap<u64, Option<Location>>,
    types: FxHashMap<u64, Option<String>>,
}

use crate::host::pidctl::monotonic_ns;

pub struct Collector {
    pub events: RingBuf<MapData>,
    writes: Drainer,
    /// Drained keys not yet folded into the model (`collect_some`).
    backlog: Backlog,
    lost: PerCpuArray<MapData, u64>,
    bpf_writes: Option<PerCpuHashMap<MapData, BpfWriteKey, BpfWriteValue>>,
    /// `--bpf-hot-keys`: write counts per (map id, key hash).
    hot_keys: Option<PerCpuHashMap<MapData, HotKey, u64>>,
    /// How bpf(2) map fds are named, for the model (and so the report).
    bpf_resolution: Option<(String, Option<String>)>,
    /// Parsed executables by (dev, ino); None: not a Go binary.
    binaries: FxHashMap<(u64, u64), Option<Arc<GoBinary>>>,
    pub procs: FxHashMap<u32, Proc>,
    /// Pids already looked at and found not to be Go (or gone).
    not_go: FxHashSet<u32>,
    /// (pid, return address) of calls from one probed routine into another
    /// (`GoBinary::nested_returns`): the inner entry is the same map
    /// operation as the outer one, counted once, at the outer one's site.
    /// The kernel skips them; a thread-slot collision there can let one
    /// through, which is dropped here.
    nested: FxHashSet<(u32, u64)>,
    bpf_resolver: bpfmaps::Resolver,
    bpf_ids: HashMap<(u32, u32), Option<bpfmaps::BpfMapId>>,
    /// Executables parsed so far (cache misses of `binary`): an exec stop
    /// that parsed one is the first process of its program.
    pub parses: u64,
    /// Benchmark filler events drained (`cargo xtask bench`).
    pub bench_events: u64,
    /// Per process: goroutines first seen, until the decoded `g` offsets
    /// were judged (`sanity`); None once judged.
    sanity: HashMap<u32, Option<Vec<crate::kernel::sanity::Sample>>>,
}

/// Parses the executable at `path` ahead of its exec, with what attaching
/// needs (offsets, nested calls) computed: `record -- CMD` runs it while
/// the probes load, so CMD's exec waits only for the attach. Keyed like
/// `ProcExe::key`; None if it is not a Go program or changed meanwhile.
pub fn preparse(path: &std::path::Path) -> Option<((u64, u64), Arc<GoBinary>)> {
    use std::os::unix::fs::MetadataExt as _;
    let key = |m: std::fs::Metadata| (m.dev(), m.ino());
    let before = key(std::fs::metadata(path).ok()?);
    let bin = open_go(path).ok()?;
    let _ = bin.runtime_offsets();
    let _ = bin.nested_calls();
    (key(std::fs::metadata(path).ok()?) == before).then(|| (before, Arc::new(bin)))
}

/// The Go program at `path`. System-wide, every exec on the node comes
/// here: non-Go files are ruled out from their section headers before they
/// are read whole.
fn open_go(path: &std::path::Path) -> Result<GoBinary, crate::gobin::GoBinError> {
    if !proc::may_be_go(path) {
        return Err(crate::gobin::GoBinError::NotGo);
    }
    GoBinary::open(path)
}

impl Collector {
    pub fn new(probes: &mut Probes) -> anyhow::Result<Self> {
        let hot_enabled = probes.hot_keys_enabled();
        let bpf_resolution = probes.bpf_resolution.as_ref().map(|r| {
            let why = match r {
                bpfmaps::Resolution::Userspace(why) => Some(why.clone()),
                bpfmaps::Resolution::Kernel => None,
            };
            (r.name().to_string(), why)
        });
        let ebpf = &mut probes.ebpf;
        let take = |ebpf: &mut aya::Ebpf, n: &str| ebpf.take_map(n).with_context(|| format!("map {n} missing"));
        let events = RingBuf::try_from(take(ebpf, names::EVENTS)?)?;
        let writes = Drainer::spawn(CounterTables::new(ebpf)?, crate::session::DRAIN_EVERY)?;
        let lost = PerCpuArray::try_from(take(ebpf, names::LOST)?)?;
        let bpf_writes = PerCpuHashMap::try_from(take(ebpf, names::BPF_WRITES)?).ok();
        let hot_keys = if hot_enabled {
            Some(PerCpuHashMap::try_from(take(ebpf, names::HOT_KEYS)?)?)
        } else {
            None
        };
        Ok(Self {
            events,
            writes,
            backlog: Backlog::default(),
            lost,
            bpf_writes,
            hot_keys,
            bpf_resolution,
            binaries: Default::default(),
            procs: Default::default(),
            not_go: Default::default(),
            nested: Default::default(),
            bpf_resolver: bpfmaps::Resolver::default(),
            bpf_ids: HashMap::new(),
            parses: 0,
            bench_events: 0,
            sanity: HashMap::new(),
        })
    }

    /// Takes a binary parsed ahead of its exec (`preparse`).
    pub fn adopt(&mut self, (key, bin): ((u64, u64), Arc<GoBinary>)) {
        self.binaries.entry(key).or_insert(Some(bin));
    }

    /// The Go binary behind `exe`, parsed once per file.
    pub fn binary(&mut self, exe: &ProcExe) -> Result<Arc<GoBinary>, crate::gobin::GoBinError> {
        match self.binaries.get(&exe.key()) {
            Some(Some(b)) => return Ok(b.clone()),
            Some(None) => return Err(crate::gobin::GoBinError::NotGo),
            None => {}
        }
        self.parses += 1;
        match open_go(&exe.path) {
            Ok(b) => {
                let b = Arc::new(b);
                self.binaries.insert(exe.key(), Some(b.clone()));
                Ok(b)
            }
            Err(e) => {
                self.binaries.insert(exe.key(), None);
                Err(e)
            }
        }
    }

    /// Registers a process (after its binary is attached), computing its
    /// load bias and recording it in the model.
    pub fn add_process(&mut self, exe: ProcExe, bin: Arc<GoBinary>, model: &mut Model) {
        let segs: Vec<(u64, u64)> = bin.load_segments().iter().map(|s| (s.vaddr, s.offset)).collect();
        let bias = if bin.is_pie() { proc::load_bias(exe.pid, exe.ino, &segs).unwrap_or(0) } else { 0 };
        model.processes.insert(
            exe.pid,
            ProcessInfo {
                pid: exe.pid,
                generation: model.next_generation(exe.pid),
                exe: exe.display.clone(),
                comm: proc::comm(exe.pid, exe.pid),
                go_version: bin.go_version().to_string(),
                go_version_source: Some(bin.version_source()),
                container: crate::host::container::of_pid(exe.pid),
            },
        );
        // Read once per binary (`GoBinary` keeps them).
        let offsets = bin.runtime_offsets().ok();
        if let Some(o) = offsets
            && o.source == crate::gobin::OffsetSource::VersionTableGuess
        {
            // No DWARF to read them from and no table for this version: the
            // newest table's offsets are a guess (the goroutine-id check
            // warns again if the counts they give look wrong).
            let w = format!(
                "{} (pid {}): {} is newer than the newest Go known (go1.{newest}) and the binary has no DWARF: \
                 using go1.{newest}'s runtime offsets, a guess",
                exe.display,
                exe.pid,
                bin.go_version(),
                newest = crate::gobin::NEWEST_MINOR
            );
            log::warn!("{w}");
            if !model.warnings.contains(&w) {
                model.warnings.push(w);
            }
        }
        self.not_go.remove(&exe.pid);
        self.nested.retain(|k| k.0 != exe.pid);
        self.nested.extend(bin.nested_returns().iter().map(|&pc| (exe.pid, pc.wrapping_add(bias))));
        self.procs.insert(exe.pid, Proc { exe, bin, bias, registered_ns: monotonic_ns(), offsets, symbols: FxHashMap::default(), types: FxHashMap::default() });
    }

    /// A pid seen in the counters but not registered (system-wide or --exe
    /// attachments cover every process of a file): look it up now.
    fn ensure_process(&mut self, pid: u32, model: &mut Model) -> bool {
        if self.procs.contains_key(&pid) {
            return true;
        }
        if self.not_go.contains(&pid) {
            return false;
        }
        let Ok(exe) = proc::proc_exe(pid) else {
            self.not_go.insert(pid);
            return false;
        };
        match self.binary(&exe) {
            Ok(bin) => {
                self.add_process(exe, bin, model);
                true
            }
            Err(_) => {
                self.not_go.insert(pid);
                false
            }
        }
    }

    fn symbolize(&mut self, pid: u32, pc: u64) -> Option<Location> {
        let p = self.procs.get_mut(&pid)?;
        let (bin, bias) = (&p.bin, p.bias);
        p.symbols
            .entry(pc)
            .or_insert_with(|| bin.symbolize(pc.wrapping_sub(bias)).map(|l| Location { function: l.function, file: l.file, line: l.line }))
            .clone()
    }

    fn type_name(&mut self, pid: u32, maptype: u64) -> Option<String> {
        let p = self.procs.get_mut(&pid)?;
        let (bin, bias) = (&p.bin, p.bias);
        p.types.entry(maptype).or_insert_with(|| bin.type_name(maptype.wrapping_sub(bias))).clone()
    }

    /// Drains every pending ring-buffer event into the model.
    pub fn drain(&mut self, model: &mut Model) -> Vec<Control> {
        let mut raw: Vec<Vec<u8>> = Vec::new();
        while let Some(item) = self.events.next() {
            raw.push(item.to_vec());
        }
        let mut controls = Vec::new();
        for bytes in raw {
            if let Some(c) = self.handle(&bytes, model) {
                controls.push(c);
            }
        }
        controls
    }

    fn handle(&mut self, bytes: &[u8], model: &mut Model) -> Option<Control> {
        let hdr: EventHeader = read_pod(bytes)?;
        match hdr.kind {
            events::KIND_NEW_TUPLE => {
                model.events.new_tuple += 1;
                let Some(ev) = read_pod::<events::NewTuple>(bytes) else {
                    model.unresolved += 1;
                    return None;
                };
                self.note_tuple(&ev.key, ev.maptype, ev.gopc, model);
                None
            }
            events::KIND_OVERLAP => {
                model.events.overlap += 1;
                let Some(ev) = read_pod::<events::Overlap>(bytes) else {
                    model.unresolved += 1;
                    return None;
                };
                let k = ev.key;
                if self.nested.contains(&(k.pid, k.pc)) {
                    // Seen (and reported) at the outer routine's entry.
                    return None;
                }
                self.note_tuple(&k, ev.maptype, ev.gopc, model);
                let known = ev.other_known != 0;
                let ov = OverlapEvent {
                    pid: k.pid,
                    map: crate::model::MapId::of(&k),
                    goid: k.goid,
                    tid: k.tid,
                    site: self.symbolize(k.pid, k.pc),
                    other_goid: known.then_some(ev.other.goid),
                    other_tid: known.then_some(ev.other.tid),
                    other_site: if known { self.symbolize(k.pid, ev.other.pc) } else { None },
                    ktime_ns: ev.hdr.ktime_ns,
                    by_go_runtime: ev.source == events::OVERLAP_GO_FATAL,
                    read: probe_common::uprobe::routine::op(k.routine) == probe_common::uprobe::routine::Op::Read,
                    iter: probe_common::uprobe::routine::op(k.routine) == probe_common::uprobe::routine::Op::Iter,
                    pc: k.pc,
                };
                if let Some(s) = &ov.other_site {
                    model.names.sites.entry((k.pid, ev.other.pc)).or_insert_with(|| s.clone());
                }
                model.add_overlap(ov);
                None
            }
            events::KIND_EXEC => {
                model.events.exec += 1;
                let ev: events::Exec = read_pod(bytes)?;
                Some(Control::Exec {
                    pid: ev.hdr.pid,
                    stopped: ev.stopped != 0,
                    ktime_ns: ev.hdr.ktime_ns,
                    attached: ev.attached != 0,
                    inode: (ev.ino != 0).then_some((ev.dev, ev.ino)),
                })
            }
            events::KIND_EXIT => {
                model.events.exit += 1;
                Some(Control::Exit { pid: hdr.pid })
            }
            events::KIND_BENCH => {
                self.bench_events += 1;
                None
            }
            _ => {
                model.unresolved += 1;
                None
            }
        }
    }

    /// Names what a first-seen (or overlapping) write tuple refers to.
    fn note_tuple(&mut self, k: &WriteKey, maptype: u64, gopc: u64, model: &mut Model) {
        if !self.ensure_process(k.pid, model) {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = model.names.map_types.entry((k.pid, crate::model::MapId::of(k)))
            && let Some(t) = self.type_name(k.pid, maptype)
        {
            e.insert(t);
        }
        if gopc != 0 && !model.names.created_by.contains_key(&(k.pid, k.goid)) {
            let creator = self.symbolize(k.pid, gopc);
            self.judge_offsets(k.pid, k.goid, gopc, creator.as_ref().map(|l| l.function.clone()), model, false);
            if let Some(l) = creator {
                model.names.created_by.insert((k.pid, k.goid), l);
            }
        }
        self.name_key(k, model);
    }

    fn name_key(&mut self, k: &WriteKey, model: &mut Model) {
        if !model.names.sites.contains_key(&(k.pid, k.pc))
            && let Some(l) = self.symbolize(k.pid, k.pc)
        {
            model.names.sites.insert((k.pid, k.pc), l);
        }
        model.names.comms.entry((k.pid, k.tid)).or_insert_with(|| proc::comm(k.pid, k.tid));
    }

    /// Checks the decoded `g.goid`/`g.gopc` offsets of `pid` against the
    /// goroutines seen (a wrong offset would count under wrong ids, quietly):
    /// once `sanity::MIN_SAMPLES` were seen, or with what there is when
    /// `now`. A suspect verdict becomes a warning in the view and report.
    fn judge_offsets(&mut self, pid: u32, goid: u64, gopc: u64, creator: Option<String>, model: &mut Model, now: bool) {
        let Some(p) = self.procs.get(&pid) else { return };
        let slot = self.sanity.entry(pid).or_insert_with(|| Some(Vec::new()));
        let Some(samples) = slot else { return };
        if gopc != 0 && !samples.iter().any(|s| s.goid == goid) {
            samples.push(crate::kernel::sanity::Sample { goid, gopc: gopc.wrapping_sub(p.bias), creator });
        }
        if samples.len() < crate::kernel::sanity::MIN_SAMPLES && !now {
            return;
        }
        let Some(offs) = p.offsets else { return };
        let source = crate::kernel::sanity::describe_source(offs.source, p.bin.go_version());
        let decoded = crate::kernel::sanity::Decoded { goid_offset: offs.goid, gopc_offset: offs.gopc, source: &source };
        if let Some(w) = crate::kernel::sanity::check(samples, decoded).warning() {
            let w = format!("{} (pid {pid}): {w}", p.exe.display);
            log::warn!("{w}");
            model.warnings.push(w);
        }
        *slot = None;
    }

    /// Judges the offsets of processes that had too few goroutines to be
    /// judged during the recording (the hard checks still apply).
    pub fn judge_remaining(&mut self, model: &mut Model) {
        let pending: Vec<u32> = self.sanity.iter().filter(|(_, s)| s.is_some()).map(|(&p, _)| p).collect();
        for pid in pending {
            self.judge_offsets(pid, 0, 0, None, model, true);
        }
    }

    /// The kernel's loss counters, summed over CPUs.
    pub fn lost(&self) -> [u64; lost::COUNT as usize] {
        let mut out = [0; lost::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(v) = self.lost.get(&(i as u32), 0) {
                *slot = v.iter().sum();
            }
        }
        out
    }

    /// Drains the kernel's counters now and reads everything counted so
    /// far into the model (the duty cycle's hit counts need it current).
    pub fn snapshot(&mut self, model: &mut Model) -> anyhow::Result<()> {
        let batches = self.writes.sync(crate::kernel::counters::Scope::Active)?;
        self.receive(batches, model);
        self.fold_all(model)
    }

    /// The last read of a recording: everything still in the kernel
    /// (`detached`: no probe is attached or running any more, see
    /// `Probes::detached_within`: read at once, without grace periods).
    pub fn snapshot_all(&mut self, model: &mut Model, detached: bool) -> anyhow::Result<()> {
        use crate::kernel::counters::Scope;
        let batches = self.writes.sync(if detached { Scope::Detached } else { Scope::All })?;
        self.receive(batches, model);
        self.fold_all(model)
    }

    /// Reads what the drainer thread emptied from the kernel's tables since
    /// the last call into the model, without waiting for a drain.
    pub fn collect(&mut self, model: &mut Model) -> anyhow::Result<()> {
        let batches = self.writes.pending();
        self.receive(batches, model);
        self.fold_all(model)
    }

    /// `collect`, a slice at a time: folds at most `max_keys` of the keys
    /// drained so far into the model and returns whether more wait. Folding
    /// a full table's new keys takes a CPU ~2–3 µs per key (65,536 keys:
    /// ~150 ms); the session handles exec events between slices, so a
    /// process stopped at exec never waits behind a whole table. Keys are
    /// folded in the order they were drained, and `snapshot` folds the rest
    /// before anything newer.
    pub fn collect_some(&mut self, model: &mut Model, max_keys: usize) -> anyhow::Result<bool> {
        let batches = self.writes.pending();
        self.receive(batches, model);
        let slice = self.backlog.take(max_keys);
        let more = !self.backlog.is_empty();
        self.fold_batches(slice, model, !more)?;
        Ok(more)
    }

    /// Batches from the drainer, noted as drains and queued for folding.
    fn receive(&mut self, batches: Vec<Batch>, model: &mut Model) {
        for b in batches {
            for &(keys, took) in &b.drains {
                model.note_drain(keys, took);
            }
            self.backlog.push(b);
        }
    }

    fn fold_all(&mut self, model: &mut Model) -> anyhow::Result<()> {
        let all = self.backlog.take(usize::MAX);
        self.fold_batches(all, model, true)
    }

    /// Folds drained keys into the model; `last`: the backlog is empty, so
    /// also read the loss counters and the bpf(2) table.
    fn fold_batches(&mut self, batches: Vec<Batch>, model: &mut Model, last: bool) -> anyhow::Result<()> {
        let mut error = None;
        for Batch { mut keys, error: e, .. } in batches {
            keys.retain(|(k, d)| {
                // The process is registered (and its nested calls known) first.
                if !self.ensure_process(k.pid, model) {
                    return true;
                }
                if !self.nested.is_empty() && self.nested.contains(&(k.pid, k.pc)) {
                    // An inner entry the kernel let through (see `nested`).
                    return false;
                }
                // What a new key carries, read once in the kernel.
                self.note_tuple(k, d.maptype, d.gopc, model);
                true
            });
            model.add_counts(keys.iter().map(|(k, d)| (*k, d.count)));
            error = error.or(e);
        }
        if last {
            model.lost = self.lost();
            self.snapshot_bpf(model);
        }
        match error {
            Some(e) => Err(anyhow::anyhow!(e)),
            None => Ok(()),
        }
    }

    fn snapshot_bpf(&mut self, model: &mut Model) {
        use probe_common::bpfmap::{BPF_MAP_UPDATE_BATCH, BPF_MAP_UPDATE_ELEM, is_lookup};
        let Some(bw) = &self.bpf_writes else { return };
        if model.bpf_resolution.is_none() {
            model.bpf_resolution.clone_from(&self.bpf_resolution);
        }
        // (pid, tid, fd, map id): an fd closed and reused for another map
        // in one process is two rows when the kernel named the maps.
        let mut rows: HashMap<(u32, u32, u32, u32), BpfRow> = HashMap::new();
        let mut entries = Vec::new();
        for item in bw.iter() {
            let Ok((k, per_cpu)) = item else { continue };
            let mut sum = BpfWriteValue::default();
            for v in per_cpu.iter() {
                sum.calls += v.calls;
                sum.elems += v.elems;
                if v.comm[0] != 0 {
                    sum.comm = v.comm;
                }
                if v.map_name[0] != 0 || v.map_type != 0 {
                    (sum.map_name, sum.map_type) = (v.map_name, v.map_type);
                }
            }
            entries.push((k, sum));
        }
        for (k, v) in entries {
            let id = if k.map_id != 0 {
                // Named in the kernel at the call.
                Some(bpfmaps::BpfMapId {
                    id: k.map_id,
                    name: bpfmaps::c_name(&v.map_name),
                    map_type: bpfmaps::map_type_name(v.map_type),
                })
            } else {
                self.bpf_ids.entry((k.pid, k.fd)).or_insert_with(|| self.bpf_resolver.resolve(k.pid, k.fd)).clone()
            };
            let row = rows.entry((k.pid, k.tid, k.fd, k.map_id)).or_insert_with(|| BpfRow {
                pid: k.pid,
                tid: k.tid,
                fd: k.fd,
                comm: bpfmaps::c_name(&v.comm).unwrap_or_default(),
                map_id: id.as_ref().map(|i| i.id),
                map_name: id.as_ref().and_then(|i| i.name.clone()),
                map_type: id.as_ref().and_then(|i| i.map_type.clone()),
                ..Default::default()
            });
            if is_lookup(k.cmd) {
                row.lookups += v.elems;
                row.lookup_calls += v.calls;
            } else if k.cmd == BPF_MAP_UPDATE_ELEM || k.cmd == BPF_MAP_UPDATE_BATCH {
                row.updates += v.elems;
                row.update_calls += v.calls;
            } else {
                row.deletes += v.elems;
                row.delete_calls += v.calls;
            }
        }
        let mut rows: Vec<BpfRow> = rows.into_values().collect();
        rows.sort_by(|a, b| {
            (b.updates + b.deletes)
                .cmp(&(a.updates + a.deletes))
                .then((a.pid, a.tid, a.fd, a.map_id).cmp(&(b.pid, b.tid, b.fd, b.map_id)))
        });
        model.set_bpf(rows);
        if let Some(hk) = &self.hot_keys {
            model.bpf_hot_keys = hot_keys(hk);
        }
    }

    /// Forgets a process that exited (after its counts were read).
    pub fn forget(&mut self, pid: u32, model: &mut Model) {
        if self.sanity.get(&pid).is_some_and(Option::is_some) {
            self.judge_offsets(pid, 0, 0, None, model, true);
        }
        self.sanity.remove(&pid);
        self.procs.remove(&pid);
        self.nested.retain(|k| k.0 != pid);
        self.bpf_resolver.forget(pid);
    }
}

/// Drained batches waiting to be folded into the model, oldest first.
#[derive(Default)]
struct Backlog {
    batches: std::collections::VecDeque<Batch>,
}

impl Backlog {
    fn push(&mut self, b: Batch) {
        self.batches.push_back(b);
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The oldest `max_keys` keys (at least one batch, even an empty one:
    /// a batch may carry only an error), a batch split if need be.
    fn take(&mut self, max_keys: usize) -> Vec<Batch> {
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(mut b) = self.batches.pop_front() {
            let room = max_keys - n;
            if b.keys.len() > room {
                let rest = b.keys.split_off(room);
                self.batches.push_front(Batch { keys: rest, drains: Vec::new(), answers: None, error: None });
            }
            n += b.keys.len();
            out.push(b);
            if n >= max_keys {
                break;
            }
        }
        out
    }
}

/// The runtime offsets of the file `key`: read from `bin` the first time
/// only (see `Collector::offsets`).
/// Keys ranked per map: the LRU table summed over CPUs, then the
/// `HOT_KEYS_PER_MAP` hottest of each map.
fn hot_keys(table: &aya::maps::PerCpuHashMap<MapData, HotKey, u64>) -> Vec<BpfHotKeys> {
    let mut by_map: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    for item in table.iter() {
        let Ok((k, per_cpu)) = item else { continue };
        by_map.entry(k.map_id).or_default().push((k.hash, per_cpu.iter().sum()));
    }
    let mut out: Vec<BpfHotKeys> = (by_map.into_iter())
        .map(|(map_id, mut keys)| {
            keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            keys.truncate(HOT_KEYS_PER_MAP);
            BpfHotKeys { map_id, keys }
        })
        .collect();
    out.sort_by_key(|h| h.map_id);
    out
}

/// Keys kept per map in the ranking.
pub const HOT_KEYS_PER_MAP: usize = 10;

/// Reads a `#[repr(C)]` POD event from the start of `bytes`.
fn read_pod<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is Pod (any bit pattern valid); unaligned read.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    fn batch(first: u64, n: u64, error: Option<&str>) -> Batch {
        let keys = (first..first + n).map(|i| (WriteKey { goid: i, ..Default::default() }, Default::default())).collect();
        Batch { keys, drains: vec![(n as usize, std::time::Duration::from_millis(n))], answers: None, error: error.map(String::from) }
    }

    /// The backlog gives every key once, in the order drained, at most
    /// `max_keys` at a time, splitting a batch (its error stays with its
    /// first part: it is reported with the first slice of it).
    #[test]
    fn backlog_slices_keep_order_and_every_key() {
        let mut b = Backlog::default();
        for (first, n, e) in [(0, 10_000, None), (10_000, 3, Some("boom")), (10_003, 0, None), (10_003, 5_000, None)] {
            b.push(batch(first, n, e));
        }
        let mut seen = Vec::new();
        let mut slices = Vec::new();
        let mut errors = Vec::new();
        while !b.is_empty() {
            let s = b.take(4096);
            slices.push(s.iter().map(|x| x.keys.len()).sum::<usize>());
            for x in s {
                seen.extend(x.keys.iter().map(|(k, _)| k.goid));
                errors.extend(x.error);
            }
        }
        assert_eq!(seen, (0..15_003).collect::<Vec<_>>());
        assert_eq!(slices, [4096, 4096, 4096, 2715]);
        assert_eq!(errors, ["boom"]);
        // Everything at once, and an empty backlog gives nothing.
        b.push(batch(0, 7, None));
        assert_eq!(b.take(usize::MAX).iter().map(|x| x.keys.len()).sum::<usize>(), 7);
        assert!(b.is_empty() && b.take(4096).is_empty());
    }
}
