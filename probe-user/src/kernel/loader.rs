//! Loading the embedded eBPF object, configuring it, and attaching: the
//! process-lifecycle and bpf(2) tracepoints once, the map-write uprobe per
//! Go binary (all processes) or per process.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as BpfHashMap, MapData},
    programs::{RawTracePoint, TracePoint, UProbe, uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope}},
};
use probe_common::{
    config::{Global, Tracked},
    maps as names,
    uprobe::{Cookie, MapKey, MapState, NEST_WRAPPER, routine, routine::Op},
};

use crate::config::Probe;
use crate::gobin::GoBinary;
use crate::kernel::uprobe_multi::MultiProgram;
use std::os::fd::OwnedFd;

/// The eBPF object, built by build.rs and embedded: mapaudit is one file.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe-ebpf.o"));

/// The embedded eBPF object (empty when built with MAPAUDIT_SKIP_EBPF).
#[cfg(test)]
pub(crate) fn embedded_object() -> &'static [u8] {
    EBPF_OBJECT
}

/// Sizes and switches decided before load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub writes_entries: u32,
    pub ringbuf_bytes: u32,
    pub bpf_maps: bool,
    pub bpf_tracked_only: bool,
    /// Count map accesses of `TRACKED` processes only (`-- CMD`).
    pub maps_tracked_only: bool,
    pub exec_all: bool,
    pub log_level: log::LevelFilter,
    /// Hidden test knobs: tiny maps to prove losses are counted.
    pub map_state_entries: u32,
    pub bpf_writes_entries: u32,
    /// Benchmark: attach the empty floor program instead of `map_write`.
    pub floor: bool,
    /// `--reads`: probe the map lookup routines too (and count bpf(2) lookups).
    pub reads: bool,
    /// `--bpf-hot-keys`: count bpf(2) writes per key hash.
    pub bpf_hot_keys: bool,
    /// Testing: skip the kernel-side naming of map fds.
    pub bpf_force_userspace: bool,
    /// Link the map-write probes through uprobe_multi when the kernel can
    /// (`--debug-no-uprobe-multi` turns it off).
    pub uprobe_multi: bool,
    /// Let a process of a program already attached run at exec without a
    /// stop (`--debug-stop-every-exec` turns it off).
    pub exec_skip_attached: bool,
}

impl LoadOptions {
    pub fn from_probe(p: &Probe) -> anyhow::Result<Self> {
        let ringbuf_bytes = p.ringbuf_kib.checked_mul(1024).context("--ringbuf-kib too large")?;
        if !ringbuf_bytes.is_power_of_two() || ringbuf_bytes < 4096 {
            bail!("--ringbuf-kib must be a power of two of at least 4 (got {})", p.ringbuf_kib);
        }
        if p.max_entries == 0 {
            bail!("--max-entries must be at least 1");
        }
        Ok(Self {
            writes_entries: p.max_entries,
            ringbuf_bytes,
            bpf_maps: p.bpf_maps,
            bpf_tracked_only: false,
            maps_tracked_only: false,
            exec_all: false,
            log_level: p.log,
            map_state_entries: p.debug_map_state_entries.max(1),
            bpf_writes_entries: p.debug_bpf_writes_entries.max(1),
            floor: p.bench_floor,
            reads: p.reads,
            bpf_hot_keys: p.bpf_hot_keys,
            bpf_force_userspace: p.debug_bpf_userspace,
            uprobe_multi: !p.debug_no_uprobe_multi,
            exec_skip_attached: !p.debug_stop_every_exec,
        })
    }
}

/// A `dev_t` from stat(2) as the kernel keeps it in a superblock
/// (`MKDEV`: major << 20 | minor).
pub fn kernel_dev(dev: u64) -> u32 {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    (major << 20) | (minor & 0xf_ffff)
}

/// (run time, run count) of a loaded program (kernel BPF stats).
fn prog_stats(p: &aya::programs::Program) -> Option<(Duration, u64)> {
    let info = p.info().ok()?;
    Some((info.run_time(), info.run_count()))
}

/// One attached Go binary or process.
struct Attachment {
    /// The executable, held open: `/proc/self/fd/N` reaches it for
    /// re-attaching even after the process it was found through is gone.
    file: std::fs::File,
    /// (file offset, cookie) of every probe point.
    points: Vec<(u64, u64)>,
    scope_pid: Option<NonZeroU32>,
    /// Empty while suspended (`--max-overhead` duty cycling).
    links: Vec<UProbeLinkId>,
    /// The uprobe_multi link holding every point (instead of `links`).
    multi: Option<OwnedFd>,
}

impl Attachment {
    fn scope(&self) -> UProbeScope {
        match self.scope_pid {
            Some(p) => UProbeScope::OneProcess(p),
            None => UProbeScope::AllProcesses,
        }
    }

    fn path(&self) -> std::path::PathBuf {
        use std::os::fd::AsRawFd as _;
        std::path::PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    fn is_linked(&self) -> bool {
        !self.links.is_empty() || self.multi.is_some()
    }

    fn link(&mut self, multi: Option<&MultiProgram>, prog: &mut UProbe) -> anyhow::Result<()> {
        if let Some(m) = multi {
            let pid = self.scope_pid.map(NonZeroU32::get);
            let link = m.attach(&self.file, &self.points, pid).with_context(|| {
                format!("attaching {} uprobes through one uprobe_multi link", self.points.len())
            })?;
            self.multi = Some(link);
            return Ok(());
        }
        let path = self.path();
        for &(offset, cookie) in &self.points {
            let point = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: Some(cookie) };
            let link = prog.attach(point, &path, self.scope()).with_context(|| format!("attaching a uprobe at offset {offset:#x}"))?;
            self.links.push(link);
        }
        Ok(())
    }

    fn unlink(&mut self, prog: &mut UProbe) {
        self.multi = None;
        for l in self.links.drain(..) {
            let _ = prog.detach(l);
        }
    }

    /// Takes the links out (dropping one detaches it).
    fn take_links(&mut self, prog: Option<&mut UProbe>) -> Vec<Link> {
        let mut out: Vec<Link> = self.multi.take().map(Link::Multi).into_iter().collect();
        if let Some(prog) = prog {
            out.extend(self.links.drain(..).filter_map(|l| prog.take_link(l).ok()).map(Link::Uprobe));
        }
        out
    }
}

pub struct Probes {
    pub ebpf: Ebpf,
    global: Global,
    /// The uprobe program attached at map writes (`map_write`, or the floor).
    uprobe: &'static str,
    /// That program loaded for uprobe_multi links (kernel ≥ 6.6); None:
    /// aya's perf-event uprobes, one per point.
    multi: Option<MultiProgram>,
    /// Keyed by (device, inode, pid or 0 for all processes).
    attached: HashMap<(u64, u64, u32), Attachment>,
    suspended: bool,
    /// `--reads`: probe the lookup routines too.
    reads: bool,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// The tracepoints attached, detached together at the end.
    tracepoints: Vec<(&'static str, aya::programs::trace_point::TracePointLinkId)>,
    raw_tracepoints: Vec<(&'static str, aya::programs::raw_trace_point::RawTracePointLinkId)>,
    /// How bpf(2) map fds are named (None: bpf(2) is not audited).
    pub bpf_resolution: Option<crate::kernel::bpfmaps::Resolution>,
    /// `detach_all`'s thread, joined at drop; from then on nothing attaches.
    detaching: Option<std::thread::JoinHandle<()>>,
}

impl Probes {
    pub fn load(opts: &LoadOptions) -> anyhow::Result<Self> {
        if EBPF_OBJECT.is_empty() {
            bail!("this mapaudit was built with MAPAUDIT_SKIP_EBPF=1 and has no eBPF object; rebuild it after `cargo xtask setup`");
        }
        // aya-log's levels are `log`'s: Off 0, Error 1 … Trace 5.
        let level = opts.log_level as u8;
        // Read the kernel's BTF (once, for both offsets) while the object loads.
        let wants_kernel = opts.bpf_maps && !opts.floor && !opts.bpf_force_userspace;
        let btf = std::thread::spawn(move || crate::kernel::bpfmaps::btf_offsets(wants_kernel));
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(names::WRITES[0], opts.writes_entries)
            .map_max_entries(names::WRITES[1], opts.writes_entries)
            .map_max_entries(names::EVENTS, opts.ringbuf_bytes)
            .map_max_entries(names::MAP_STATE, opts.map_state_entries)
            // Not written without bpf(2) auditing: do not preallocate
            // (a per-CPU table costs ~0.5 µs per entry to create).
            .map_max_entries(names::BPF_WRITES, if opts.bpf_maps { opts.bpf_writes_entries } else { 1 })
            // Never used without --bpf-hot-keys: do not preallocate.
            .map_max_entries(names::HOT_KEYS, if opts.bpf_hot_keys { names::HOT_KEYS_ENTRIES } else { 1 })
            .override_global("AYA_LOG_LEVEL", &level, false)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs into the kernel (needs root or CAP_BPF+CAP_PERFMON, and a kernel with BTF)")?;
        let uprobe = if opts.floor { names::PROG_FLOOR } else { names::PROG_MAP_WRITE };
        // Before the logger takes its map out of `ebpf`: this load needs all.
        let multi = if opts.uprobe_multi { MultiProgram::load_if_supported(EBPF_OBJECT, &ebpf, uprobe) } else { None };
        let logger = if opts.log_level != log::LevelFilter::Off {
            aya_log::EbpfLogger::init(&mut ebpf).ok()
        } else {
            None
        };
        let mut me = Self {
            ebpf,
            global: Global::default(),
            uprobe,
            multi,
            attached: HashMap::new(),
            suspended: false,
            reads: opts.reads,
            logger,
            tracepoints: Vec::new(),
            raw_tracepoints: Vec::new(),
            bpf_resolution: None,
            detaching: None,
        };
        me.set_global(Global {
            self_pid: std::process::id(),
            exec_all: opts.exec_all as u32,
            bpf_maps: opts.bpf_maps as u32,
            bpf_tracked_only: opts.bpf_tracked_only as u32,
            fork_child_pid_off: tracefs_offset("sched", "sched_process_fork", "child_pid")
                .unwrap_or(probe_common::bpfmap::TP_FORK_CHILD_PID),
            bpf_cmd_off: tracefs_offset("syscalls", "sys_enter_bpf", "cmd").unwrap_or(probe_common::bpfmap::TP_CMD),
            bpf_uattr_off: tracefs_offset("syscalls", "sys_enter_bpf", "uattr").unwrap_or(probe_common::bpfmap::TP_UATTR),
            bench_pid: 0,
            maps_tracked_only: opts.maps_tracked_only as u32,
            bpf_reads: opts.reads as u32,
            bpf_hot_keys: opts.bpf_hot_keys as u32,
            count_iterations: opts.reads as u32,
            ..Global::default()
        })?;
        if me.multi.is_none() {
            let prog: &mut UProbe = me.program(uprobe)?.try_into()?;
            prog.load().context("loading the map-write uprobe program")?;
        }
        // The lifecycle tracepoints, raw (released without a grace period:
        // see probe-ebpf's sched.rs); fork needs task_struct.pid's offset.
        let t = std::time::Instant::now();
        let btf = btf.join().unwrap_or_else(|_| crate::kernel::bpfmaps::BtfOffsets {
            task_pid: None,
            kernel: Err("reading the kernel's BTF failed".into()),
            exec_inode: None,
        });
        let task_pid_off = btf.task_pid;
        log::debug!("task_struct.pid offset {task_pid_off:?} (waited {:?})", t.elapsed());
        if let (true, Some(o)) = (opts.exec_skip_attached, btf.exec_inode) {
            me.set_global(Global { exec_skip_attached: 1, exec_inode: o, ..me.global })?;
        }
        if let Some(off) = task_pid_off {
            let g = Global { task_pid_off: off, ..me.global };
            me.set_global(g)?;
        } else {
            log::debug!("no task_struct.pid in the kernel's BTF: following forks through the tracefs tracepoint");
        }
        let fork = if task_pid_off.is_some() { names::PROG_FORK_RAW } else { names::PROG_FORK };
        for (name, event) in
            [(fork, "sched_process_fork"), (names::PROG_EXEC, "sched_process_exec"), (names::PROG_EXIT, "sched_process_exit")]
        {
            if name == names::PROG_FORK {
                me.attach_tracepoint(name, "sched", event)?;
                continue;
            }
            let prog: &mut RawTracePoint = me.program(name)?.try_into()?;
            prog.load().with_context(|| format!("loading {name}"))?;
            let link = prog.attach(event).with_context(|| format!("attaching raw tracepoint {event}"))?;
            me.raw_tracepoints.push((name, link));
        }
        if opts.bpf_maps {
            // --bench-floor: the empty program, for the tracepoint's cost floor.
            let name = if opts.floor { names::PROG_BPF_SYSCALL_FLOOR } else { names::PROG_BPF_SYSCALL };
            me.attach_tracepoint(name, "syscalls", "sys_enter_bpf")?;
        }
        if opts.bpf_maps && !opts.floor {
            let offsets = if opts.bpf_force_userspace { Err("forced by --debug-bpf-userspace".to_string()) } else { btf.kernel };
            let resolution = match offsets.and_then(|k| me.calibrate_bpf(k)) {
                Ok(()) => crate::kernel::bpfmaps::Resolution::Kernel,
                Err(why) => {
                    log::warn!("bpf(2) map fds are named from /proc after the fact: {why}");
                    crate::kernel::bpfmaps::Resolution::Userspace(why)
                }
            };
            me.bpf_resolution = Some(resolution);
        }
        Ok(me)
    }

    /// Proves the kernel-side fd → map chain on one of our own maps before
    /// trusting it: a lookup on `CALIB` makes the tracepoint record what it
    /// finds; the id must be `CALIB`'s, and the file's `f_op` it saw is
    /// `bpf_map_fops`, the mark of a map fd from then on.
    fn calibrate_bpf(&mut self, k: probe_common::bpfmap::KernelOffsets) -> Result<(), String> {
        use probe_common::bpfmap::Calibration;
        let before = self.global;
        self.set_global(Global { kernel: k, bpf_calibrating: 1, ..before }).map_err(|e| e.to_string())?;
        let found = (|| -> anyhow::Result<(u32, Calibration)> {
            let map = self.ebpf.map(names::CALIB).context("CALIB map")?;
            let want = match map {
                aya::maps::Map::Array(d) => d.info()?.id(),
                _ => bail!("CALIB is not an array"),
            };
            let arr: Array<&MapData, Calibration> = Array::try_from(map)?;
            arr.get(&0, 0)?; // the calibrating lookup
            Ok((want, arr.get(&0, 0)?))
        })();
        let result = match found {
            Ok((want, c)) if c.done != 0 && c.map_id == want && c.f_op != 0 => {
                let name = crate::kernel::bpfmaps::c_name(&c.name);
                if name.as_deref() != Some(names::CALIB) {
                    Err(format!("calibration read the map name {name:?}, expected {:?}", names::CALIB))
                } else {
                    Ok(c.f_op)
                }
            }
            Ok((want, c)) if c.done != 0 => Err(format!("calibration read map id {}, expected {want}", c.map_id)),
            Ok(_) => Err("the calibration call was not seen by the bpf(2) tracepoint".into()),
            Err(e) => Err(format!("calibration failed: {e:#}")),
        };
        let g = match &result {
            Ok(fops) => Global { kernel: k, bpf_map_fops: *fops, bpf_resolve: 1, bpf_calibrating: 0, ..before },
            Err(_) => before,
        };
        self.set_global(g).map_err(|e| e.to_string())?;
        result.map(|_| ())
    }

    pub fn hot_keys_enabled(&self) -> bool {
        self.global.bpf_hot_keys != 0
    }

    fn attach_tracepoint(&mut self, name: &'static str, category: &str, event: &str) -> anyhow::Result<()> {
        let prog: &mut TracePoint = self.program(name)?.try_into()?;
        prog.load().with_context(|| format!("loading {name}"))?;
        let link = prog
            .attach(category, event)
            .with_context(|| format!("attaching tracepoint {category}/{event} (is tracefs mounted at /sys/kernel/tracing?)"))?;
        self.tracepoints.push((name, link));
        Ok(())
    }

    fn program(&mut self, name: &str) -> anyhow::Result<&mut aya::programs::Program> {
        self.ebpf.program_mut(name).with_context(|| format!("program {name} missing from the eBPF object"))
    }

    pub fn set_global(&mut self, g: Global) -> anyhow::Result<()> {
        let mut arr: Array<&mut MapData, Global> =
            Array::try_from(self.ebpf.map_mut(names::GLOBAL).context("GLOBAL map")?)?;
        arr.set(0, g, 0)?;
        self.global = g;
        Ok(())
    }

    /// Benchmark: makes every getppid() of `pid` emit a burst of events.
    pub fn start_bench_pump(&mut self, pid: u32) -> anyhow::Result<()> {
        let prog: &mut TracePoint = self.program(names::PROG_BENCH_PUMP)?.try_into()?;
        prog.load()?;
        prog.attach("syscalls", "sys_enter_getppid")?;
        let g = Global { bench_pid: pid, ..self.global };
        self.set_global(g)
    }

    pub fn track(&mut self, pid: u32, stop_on_exec: bool) -> anyhow::Result<()> {
        let mut m: BpfHashMap<&mut MapData, u32, Tracked> =
            BpfHashMap::try_from(self.ebpf.map_mut(names::TRACKED).context("TRACKED map")?)?;
        m.insert(pid, Tracked { stop_on_exec: stop_on_exec as u32, execd: 0 }, 0)?;
        Ok(())
    }

    /// Whether the kernel can tell an exec'd file's inode (and so let a
    /// process of a program already attached run without a stop).
    pub fn exec_skip_attached(&self) -> bool {
        self.global.exec_skip_attached != 0
    }

    /// Marks a file whose probes are attached for every process running it
    /// (`ATTACHED_INODES`): its next processes are not stopped at exec.
    /// `dev`: `st_dev` as stat(2) gives it.
    pub fn mark_attached_inode(&mut self, dev: u64, ino: u64) -> anyhow::Result<()> {
        let key = probe_common::maps::InodeKey { ino, dev: kernel_dev(dev), _pad: 0 };
        let mut m: BpfHashMap<&mut MapData, probe_common::maps::InodeKey, u32> =
            BpfHashMap::try_from(self.ebpf.map_mut(names::ATTACHED_INODES).context("ATTACHED_INODES map")?)?;
        m.insert(key, 1, 0)?;
        Ok(())
    }

    pub fn untrack(&mut self, pid: u32) {
        if let Some(map) = self.ebpf.map_mut(names::TRACKED)
            && let Ok(mut m) = BpfHashMap::<&mut MapData, u32, Tracked>::try_from(map)
        {
            let _ = m.remove(&pid);
        }
    }

    /// `EXEC_STOPPED`: the processes the kernel stopped at exec whose stop
    /// mapaudit has not taken over yet (see `probe_common::maps`).
    pub fn exec_stopped(&self) -> Option<BpfHashMap<&MapData, u32, u64>> {
        BpfHashMap::try_from(self.ebpf.map(names::EXEC_STOPPED)?).ok()
    }

    /// `EXEC_STOPPED`'s fd, for the exec guard.
    pub fn exec_stopped_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd as _;
        match self.ebpf.map(names::EXEC_STOPPED)? {
            aya::maps::Map::HashMap(d) => Some(d.fd().as_fd()),
            _ => None,
        }
    }

    /// Drops `pid`'s `EXEC_STOPPED` entry if it is still the one of the exec
    /// at `ktime_ns` (not a later exec at a reused pid, which the kernel
    /// recorded meanwhile): its stop is mapaudit's (or the guard's) now.
    pub fn forget_exec_stopped(&mut self, pid: u32, ktime_ns: u64) {
        let Some(map) = self.ebpf.map_mut(names::EXEC_STOPPED) else { return };
        let Ok(mut m) = BpfHashMap::<&mut MapData, u32, u64>::try_from(map) else { return };
        if m.get(&pid, 0).is_ok_and(|t| t == ktime_ns) {
            let _ = m.remove(&pid);
        }
    }

    /// Attaches the map-write uprobe at every routine `bin` links, through
    /// `path` (e.g. `/proc/PID/exe`, which reaches binaries in containers and
    /// deleted ones). `pid` None: every process running that file.
    /// Returns how many routines were attached and warnings to show.
    pub fn attach_binary(
        &mut self,
        key: (u64, u64),
        path: &Path,
        bin: &GoBinary,
        pid: Option<u32>,
    ) -> anyhow::Result<(usize, Vec<String>)> {
        let id = (key.0, key.1, pid.unwrap_or(0));
        if self.attached.contains_key(&id) {
            return Ok((0, Vec::new()));
        }
        let offs = bin.runtime_offsets()?;
        let reads = self.reads;
        let mut warnings = Vec::new();
        let mut routines: Vec<_> = bin.routines().into_iter().filter(|r| reads || routine::op(r.id) != Op::Read).collect();
        if bin.is_arm64() {
            // Anything but the stack check's branch would be single-stepped
            // out of line on every call, which corrupted Go stacks of busy
            // targets (see `gobin::prologue_arm64`): never at the target's
            // expense. `runtime.fatal` (nosplit: its entry) is hit once, as
            // the process dies.
            routines.retain(|r| {
                let ok = r.at_stack_check || r.id == routine::FATAL;
                if !ok {
                    warnings.push(format!(
                        "{}: prologue not recognised on arm64: not probed (single-stepping its entry could crash the target); its operations are not counted",
                        r.symbol
                    ));
                }
                ok
            });
        }
        if !routines.iter().any(|r| matches!(routine::op(r.id), Op::Write | Op::Delete | Op::Clear)) {
            bail!("{} links none of the Go map write routines (runtime.mapassign*): nothing to audit", path.display());
        }
        // Nested calls between the probed routines (Go 1.27's mapaccess1_*
        // wrappers): the wrapper marks its entry, the inner routine skips
        // an entry made from inside it. With a nesting that cannot be
        // decoded, the collector still drops the inner entries' counts.
        let mut nest = [0u8; routine::COUNT];
        let mut undecodable = [false; routine::COUNT];
        for n in bin.nested_calls() {
            let probed = |id: u8| routines.iter().any(|r| r.id == id);
            if !probed(n.wrapper) || !probed(n.inner) {
                continue;
            }
            let inner = &mut nest[n.inner as usize];
            match n.sp_drop {
                Some(d) if *inner == 0 || *inner == d => *inner = d,
                // Unknown, or two wrappers at different depths: no single
                // distance to check in the kernel.
                _ => undecodable[n.inner as usize] = true,
            }
            nest[n.wrapper as usize] = NEST_WRAPPER;
        }
        for (n, bad) in nest.iter_mut().zip(undecodable) {
            if bad {
                *n = 0;
            }
        }
        let mut points = Vec::new();
        for r in &routines {
            if !r.attach_is_ideal() {
                warnings.push(format!(
                    "{}: prologue not recognised, probing the entry (slower; may count twice when the stack grows)",
                    r.symbol
                ));
            }
            log::debug!(
                "{}: {} at {:#x} (+{}, `{}`)",
                path.display(),
                r.symbol,
                r.attach_vaddr,
                r.attach_vaddr - r.entry,
                r.attach_instruction
            );
            let cookie = Cookie {
                routine: r.id,
                at_stack_check: r.at_stack_check,
                goid_off: offs.goid,
                gopc_off: offs.gopc,
                writing_off: offs.writing_off,
                writing_mask: offs.writing_mask,
                nest: nest[r.id as usize],
            }
            .encode();
            points.push((r.attach_offset, cookie));
        }
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut a = Attachment { file, points, scope_pid: pid.and_then(NonZeroU32::new), links: Vec::new(), multi: None };
        if !self.suspended {
            let prog: &mut UProbe = self.ebpf.program_mut(self.uprobe).context("map-write program")?.try_into()?;
            a.link(self.multi.as_ref(), prog).with_context(|| format!("attaching to {}", path.display()))?;
        }
        let n = a.points.len();
        self.attached.insert(id, a);
        Ok((n, warnings))
    }

    /// Detaches what `attach_binary` attached for a process that is gone,
    /// on a thread of its own: the kernel's grace periods never hold up
    /// the caller (an exec waiting to be resumed, a refresh).
    pub fn detach_pid(&mut self, pid: u32) {
        let ids: Vec<_> = self.attached.keys().filter(|k| k.2 == pid && pid != 0).copied().collect();
        let mut prog = self.ebpf.program_mut(self.uprobe).and_then(|p| <&mut UProbe>::try_from(p).ok());
        let mut links = Vec::new();
        for id in ids {
            if let Some(mut a) = self.attached.remove(&id) {
                links.extend(a.take_links(prog.as_deref_mut()));
            }
        }
        if !links.is_empty() {
            std::thread::spawn(move || drop_all_at_once(links));
        }
    }

    /// Detaches every map-write probe, keeping what is needed to re-attach
    /// (duty cycling under `--max-overhead`: sampling events alone would not
    /// remove the trap cost; only detaching does).
    pub fn suspend(&mut self) {
        self.suspended = true;
        let mut prog = self.ebpf.program_mut(self.uprobe).and_then(|p| <&mut UProbe>::try_from(p).ok());
        let t = std::time::Instant::now();
        let links: Vec<_> = self.attached.values_mut().flat_map(|a| a.take_links(prog.as_deref_mut())).collect();
        let n = links.len();
        drop_all_at_once(links);
        log::debug!("detached {n} uprobes in {:?}", t.elapsed());
    }

    /// Time spent in and runs of the map-write program so far (counted only
    /// while `aya::sys::enable_stats` is held).
    pub fn uprobe_stats(&self) -> Option<(Duration, u64)> {
        match &self.multi {
            Some(m) => m.stats(),
            None => prog_stats(self.ebpf.program(self.uprobe)?),
        }
    }

    /// Runs `f` with the empty floor program attached at `offset` of our own
    /// executable, for this process only (calibration).
    /// Also returns the empty program's run time per call, if BPF run-time
    /// stats are enabled.
    pub fn with_floor_probe<T>(&mut self, offset: u64, f: impl FnOnce() -> T) -> anyhow::Result<(T, Option<Duration>)> {
        let prog: &mut UProbe = self.program(names::PROG_FLOOR)?.try_into()?;
        if prog.fd().is_err() {
            prog.load().context("loading the calibration program")?;
        }
        let point = UProbeAttachPoint { location: UProbeAttachLocation::AbsoluteOffset(offset), cookie: None };
        let link = prog.attach(point, "/proc/self/exe", UProbeScope::CallingProcess).context("attaching the calibration probe")?;
        let before = prog_stats(self.ebpf.program(names::PROG_FLOOR).context("floor program")?);
        let out = f();
        let after = prog_stats(self.ebpf.program(names::PROG_FLOOR).context("floor program")?);
        let prog: &mut UProbe = self.program(names::PROG_FLOOR)?.try_into()?;
        let _ = prog.detach(link);
        // The empty program's own run time per call, when stats are on.
        let body = match (before, after) {
            (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => Some(t1.saturating_sub(t0) / (n1 - n0) as u32),
            _ => None,
        };
        Ok((out, body))
    }

    /// Re-attaches what `suspend` detached.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.detaching.is_some() {
            return Ok(());
        }
        self.suspended = false;
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(self.uprobe)
            .context("map-write program")?
            .try_into()?;
        for a in self.attached.values_mut().filter(|a| !a.is_linked()) {
            // A process-scoped attachment whose process is gone fails here:
            // nothing left to probe, not an error.
            if let Err(e) = a.link(self.multi.as_ref(), prog) {
                log::debug!("re-attaching: {e:#}");
                a.unlink(prog);
            }
        }
        Ok(())
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Drops a pid's last-writer state (its maps are gone with its program).
    pub fn forget_map_state(&mut self, pid: u32) {
        let Some(map) = self.ebpf.map_mut(names::MAP_STATE) else { return };
        let Ok(mut m) = BpfHashMap::<&mut MapData, MapKey, MapState>::try_from(map) else { return };
        let keys: Vec<MapKey> = m.keys().filter_map(Result::ok).filter(|k| k.pid == pid).collect();
        for k in &keys {
            let _ = m.remove(k);
        }
    }

    /// Forwards pending eBPF log records (aya-log) to the logger.
    pub fn flush_logs(&mut self) {
        if let Some(l) = &mut self.logger {
            l.flush();
        }
    }

    /// How the map-write probes are linked (the report's
    /// `diagnostics.uprobe_links`).
    pub fn uprobe_links(&self) -> &'static str {
        if self.multi.is_some() { "uprobe_multi" } else { "perf_event" }
    }

    pub fn attached_count(&self) -> usize {
        self.attached.len()
    }

    /// Every link (uprobes and tracepoints), taken out: dropping one detaches it.
    fn take_all_links(&mut self) -> Vec<Link> {
        let mut prog = self.ebpf.program_mut(self.uprobe).and_then(|p| <&mut UProbe>::try_from(p).ok());
        let mut links: Vec<Link> = self.attached.values_mut().flat_map(|a| a.take_links(prog.as_deref_mut())).collect();
        for (name, id) in std::mem::take(&mut self.tracepoints) {
            if let Some(prog) = self.ebpf.program_mut(name).and_then(|p| <&mut TracePoint>::try_from(p).ok())
                && let Ok(l) = prog.take_link(id)
            {
                links.push(Link::TracePoint(l));
            }
        }
        for (name, id) in std::mem::take(&mut self.raw_tracepoints) {
            if let Some(prog) = self.ebpf.program_mut(name).and_then(|p| <&mut RawTracePoint>::try_from(p).ok())
                && let Ok(l) = prog.take_link(id)
            {
                links.push(Link::RawTracePoint(l));
            }
        }
        links
    }

    /// Ends the audit's probing now and detaches everything on a thread of
    /// its own, so that the kernel's grace periods (one per uprobe or
    /// tracepoint, serialised by the kernel: ~1 s for 15 uprobes here) pass
    /// while the caller reads the last counts and writes the report, not
    /// after. Nothing is attached from then on. Counts already made stay
    /// in the tables for the final read.
    pub fn detach_all(&mut self) {
        self.suspended = true;
        let links = self.take_all_links();
        let n = links.len();
        let prev = self.detaching.take();
        self.detaching = Some(std::thread::spawn(move || {
            let t = std::time::Instant::now();
            drop_all_at_once(links);
            if let Some(h) = prev {
                let _ = h.join();
            }
            log::debug!("detached {n} probes in {:?}", t.elapsed());
        }));
    }
}

impl Probes {
    /// Whether every task the kernel tracked (`TRACKED`: the command, its
    /// threads and everything they forked) has passed its exit tracepoint,
    /// which removes its own entry. A program run happens in the context of
    /// the task that hit the probe, so a task's last run has returned
    /// before its exit: with none left, nothing counted under
    /// `maps_tracked_only` can still be writing the tables, and the final
    /// read needs neither a grace period nor the detach. A stale entry (a
    /// thread that exec'd and took its leader's pid) only makes this say
    /// no: the final read then waits, as before.
    pub fn no_tracked_task_left(&self) -> bool {
        let Some(map) = self.ebpf.map(names::TRACKED) else { return false };
        let Ok(m) = BpfHashMap::<&MapData, u32, Tracked>::try_from(map) else { return false };
        m.keys().next().is_none()
    }

    /// Whether `detach_all` has finished within `wait`: every probe is then
    /// gone, and no program run is still in flight — the kernel returns from
    /// a uprobe's unregistering only once its handlers have returned
    /// (`uprobe_unregister_sync`; before 6.12, the uprobe's register lock,
    /// which a handler holds while it runs). Counts in the tables are then
    /// final and can be read without waiting for a grace period.
    pub fn detached_within(&mut self, wait: std::time::Duration) -> bool {
        let Some(h) = &self.detaching else { return false };
        let t = std::time::Instant::now();
        while !h.is_finished() {
            if t.elapsed() >= wait {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.detaching.take().is_some_and(|h| h.join().is_ok())
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        let t = std::time::Instant::now();
        let links = self.take_all_links();
        let n = links.len();
        drop_all_at_once(links);
        if let Some(h) = self.detaching.take() {
            let _ = h.join();
        }
        log::debug!("detached {n} probes at exit (and joined the early detach) in {:?}", t.elapsed());
    }
}

/// A link whose drop detaches a probe.
#[expect(dead_code, reason = "held only to be dropped")]
enum Link {
    Uprobe(aya::programs::uprobe::UProbeLink),
    TracePoint(aya::programs::trace_point::TracePointLink),
    RawTracePoint(aya::programs::raw_trace_point::RawTracePointLink),
    /// A uprobe_multi link (closing its fd detaches it).
    Multi(OwnedFd),
}

/// Drops links (detaching their probes) concurrently. The kernel waits for
/// a grace period per uprobe or tracepoint it unregisters (~0.1 s here);
/// concurrent waits share grace periods.
fn drop_all_at_once<L: Send>(links: Vec<L>) {
    const THREADS: usize = 256;
    let per = links.len().div_ceil(THREADS).max(1);
    let mut links = links;
    std::thread::scope(|sc| {
        while !links.is_empty() {
            let chunk: Vec<_> = links.drain(..per.min(links.len())).collect();
            sc.spawn(move || drop(chunk));
        }
    });
}

/// Offset of `field` in a tracepoint's record, from its tracefs format file
/// (layouts change between kernels).
pub fn tracefs_offset(category: &str, event: &str, field: &str) -> Option<u32> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].iter().find_map(|base| {
        let fmt = std::fs::read_to_string(format!("{base}/events/{category}/{event}/format")).ok()?;
        parse_format_offset(&fmt, field)
    })
}

fn parse_format_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|l| {
        let decl = l.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.split_whitespace().last()?.trim_start_matches('*');
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        rest.trim().strip_prefix("offset:")?.split(';').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_tracefs_format() {
        let f = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
                 \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n\
                 \tfield:union bpf_attr * uattr;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(super::parse_format_offset(f, "child_pid"), Some(20));
        assert_eq!(super::parse_format_offset(f, "uattr"), Some(24));
        assert_eq!(super::parse_format_offset(f, "parent_comm"), Some(8));
        assert_eq!(super::parse_format_offset(f, "nope"), None);
    }
}
