//! One audit session, shared by `top` and `record`: checks the environment,
//! loads the probes, attaches to the target (starting the command when there
//! is one), and turns kernel events into attachments and model updates.
//! `driver` runs a session over time for `record` and `top`; `budget` and
//! `duty` are the `--max-overhead` duty cycle.

pub mod budget;
pub mod driver;
pub mod duty;

use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::config::{Probe, Target};
use crate::kernel::collector::{Collector, Control};
use crate::kernel::loader::{LoadOptions, Probes};
use crate::model::Model;
use duty::Duty;
use crate::kernel::preflight;
use crate::host::proc::{self, ProcExe};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0}; check the pid (ps -e) and try again")]
    NoSuchPid(u32),
    #[error("process {0} is a zombie (exited, not yet reaped): nothing to audit")]
    Zombie(u32),
    #[error("{what} is not an auditable Go program: {why}")]
    NotGo { what: String, why: String },
    #[error("command not found: {0} (give a path, or a name on PATH)")]
    NoCommand(String),
}

/// How often the kernel's counter tables are emptied (`drain_counters`).
/// A table holds `--max-entries` distinct tuples: a busy server making
/// per-request maps fills 65,536 in well under a second.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Goroutines and map instances that have not counted for this many drains
/// (30 s) are folded into their classes (`Model::fold_idle`), checked every
/// `FOLD_EVERY` drains: the model holds what was active in the last 30 s,
/// whatever the recording's length.
pub const FOLD_IDLE_DRAINS: u32 = 300;
pub const FOLD_EVERY: u32 = 50;
/// ... and only when at least this many rows (and half of all rows) are
/// idle: a fold walks every row and counter key, a pause of the loop that
/// resumes processes stopped at exec, worth it only for many rows at once.
/// Memory stays within a constant factor of the window's.
pub const FOLD_MIN_ROWS: usize = 50_000;
/// Past this many live rows (maps + goroutines), rows idle for
/// `FOLD_PRESSURE_IDLE_DRAINS` (1 s) fold at once, at any drain: a server
/// making 50,000 maps and goroutines a second would otherwise hold 30 s of
/// them (gigabytes). A single-writer instance folded early keeps its
/// writer (`Tombstones`), so a map written again later by another goroutine
/// is still found shared.
pub const FOLD_PRESSURE_ROWS: usize = 200_000;
pub const FOLD_PRESSURE_IDLE_DRAINS: u32 = 10;
/// Drained counter keys folded into the model between two looks at the
/// event ring buffer (`Session::fold_drained`), so a process stopped at
/// exec does not wait behind a full table's fold (65,536 new keys: 150–300
/// ms, `cargo xtask bench` row 14). Measured in a recording under a full
/// table on a loaded 2-CPU machine (load 7–8), interleaved: exec p99 49–81
/// ms with slices of 4,096 keys (20–100 ms each), 34–47 ms with 1,024.
pub const FOLD_SLICE_KEYS: usize = 1024;

/// Rows (of each kind: map instances, goroutines) one fold step takes out
/// at most: a step costs about what it takes (~0.8 µs a row, plus a look at
/// every row and counter key), and the loop that resumes processes stopped
/// at exec waits for it. A fold of more goes on at the next drains
/// (`cargo xtask bench` row 15).
pub const FOLD_STEP_ROWS: usize = 8192;

/// Where the folding of idle rows stands (`fold_step`).
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldSchedule {
    /// `Model::epoch` at the last periodic fold.
    last: u32,
    /// A fold that took `FOLD_STEP_ROWS` and may have more to take: its
    /// idle window.
    more: Option<u32>,
}

/// Folds idle rows when due (see the constants above), `FOLD_STEP_ROWS` of
/// each kind at a time. Shared by the session and the bench. Returns (map
/// rows, goroutine rows) folded.
pub fn fold_step(model: &mut Model, at: &mut FoldSchedule) -> (usize, usize) {
    let live = model.agg.maps.len() + model.agg.goroutines.len();
    let (idle, min_rows) = if let Some(idle) = at.more {
        (idle, 0)
    } else if live > FOLD_PRESSURE_ROWS {
        (FOLD_PRESSURE_IDLE_DRAINS, FOLD_PRESSURE_ROWS / 4)
    } else if model.epoch() / FOLD_EVERY != at.last / FOLD_EVERY {
        at.last = model.epoch();
        (FOLD_IDLE_DRAINS, FOLD_MIN_ROWS)
    } else {
        return (0, 0);
    };
    let (maps, goroutines) = model.fold_idle(idle, min_rows, FOLD_STEP_ROWS);
    at.more = (maps.max(goroutines) == FOLD_STEP_ROWS).then_some(idle);
    (maps, goroutines)
}

/// How long the final read waits for an early detach to finish before it
/// reads with grace periods instead (two take ~25–50 ms here).
const FINAL_READ_DETACH_WAIT: Duration = Duration::from_millis(30);

pub struct Session {
    pub probes: Probes,
    pub collector: Collector,
    pub model: Model,
    pub target: Target,
    pub child: Option<tokio::process::Child>,
    pub started_at: SystemTime,
    pub start: Instant,
    last_tick: Instant,
    /// Things the user should know (prologue fallbacks, attach failures).
    pub warnings: Vec<String>,
    /// (dev, ino) of the --exe file.
    exe_key: Option<(u64, u64)>,
    /// `-- CMD`: executables attached for every process running them whose
    /// later processes the kernel lets run at exec (`ATTACHED_INODES`), by
    /// the kernel's (dev, ino), with the process they were first seen in:
    /// such a process is named from its exec event, even once gone.
    attached_exes: std::collections::HashMap<(u32, u64), ProcExe>,
    /// Testing: leave events in the ring buffer until `finish`.
    pub drain_at_exit_only: bool,
    /// Where the folding of idle rows stands.
    fold_schedule: FoldSchedule,
    /// `-- CMD`: holds every process stopped at exec until resumed (see
    /// `host::exec_guard`); None for other targets, or if it cannot start.
    guard: Option<crate::host::exec_guard::ExecGuard>,
    /// Testing: `--debug-exec-stall`.
    exec_stall: Duration,
    /// Testing: `--debug-ignore-execs-after`: stops at exec still to handle.
    execs_to_handle: Option<u32>,
}

impl Session {
    /// `child_output`: where a started command's stdout and stderr go (its
    /// stdin is then /dev/null) — the live view keeps the terminal to itself;
    /// None: the command inherits mapaudit's stdio.
    ///
    /// Also returns the duty cycle under `--max-overhead` (calibrated here,
    /// before anything is attached), for the driver to run.
    pub fn start(
        target: &Target,
        probe: &Probe,
        child_output: Option<&std::fs::File>,
    ) -> anyhow::Result<(Self, Option<Duty>)> {
        preflight::check_all()?;
        // Validate the target before loading anything.
        let pid_exe = match target {
            Target::Pid(pid) => Some(check_pid(*pid)?),
            _ => None,
        };
        let exe_bin = match target {
            Target::Exe(path) => {
                let bin = crate::gobin::GoBinary::open(path).map_err(|e| TargetError::NotGo {
                    what: path.display().to_string(),
                    why: e.to_string(),
                })?;
                Some(bin)
            }
            _ => None,
        };
        let cmd_path = match target {
            Target::Command(cmd) => Some(resolve_command(&cmd[0])?),
            _ => None,
        };

        // The command's executable is parsed while the probes load (~150 ms,
        // mostly the kernel preallocating the per-CPU counter tables).
        let preparse = cmd_path.clone().map(|p| std::thread::spawn(move || crate::kernel::collector::preparse(&p)));
        let mut opts = LoadOptions::from_probe(probe)?;
        opts.bpf_tracked_only = matches!(target, Target::Pid(_) | Target::Command(_));
        opts.exec_all = matches!(target, Target::SystemWide | Target::Exe(_));
        opts.maps_tracked_only = matches!(target, Target::Command(_));
        let mut probes = Probes::load(&opts)?;
        let uprobe_links = probes.uprobe_links();
        log::debug!("probes loaded");
        let mut collector = Collector::new(&mut probes)?;
        if let Some(bin) = preparse.and_then(|t| t.join().ok()).flatten() {
            collector.adopt(bin);
        }
        let now = Instant::now();
        let mut s = Self {
            probes,
            collector,
            model: Model::new(),
            target: target.clone(),
            child: None,
            started_at: SystemTime::now(),
            start: now,
            last_tick: now,
            warnings: Vec::new(),
            exe_key: None,
            attached_exes: Default::default(),
            drain_at_exit_only: probe.debug_drain_at_exit,
            fold_schedule: FoldSchedule::default(),
            guard: None,
            exec_stall: probe.debug_exec_stall,
            execs_to_handle: probe.debug_ignore_execs_after,
        };
        s.model.uprobe_links = Some(uprobe_links.to_string());
        s.model.reads_probed = probe.reads;
        s.model.lengths = crate::model::lengths::Lengths::new(probe.len_maps);
        s.model.lengths.growth = probe.growth;
        let duty = match probe.max_overhead.filter(|b| *b < 1.0) {
            Some(budget) => Some(Duty::start(&mut s.probes, budget)?),
            None => None,
        };
        match target {
            Target::Pid(pid) => {
                let exe = pid_exe.context("pid checked above")?;
                s.attach_process(exe, true).map_err(|e| TargetError::NotGo { what: format!("pid {pid}"), why: e.to_string() })?;
                s.probes.track(*pid, false)?;
            }
            Target::Exe(path) => {
                let bin = std::sync::Arc::new(exe_bin.context("exe checked above")?);
                let meta = std::fs::metadata(path)?;
                use std::os::unix::fs::MetadataExt as _;
                let key = (meta.dev(), meta.ino());
                s.exe_key = Some(key);
                let (_, w) = s.probes.attach_binary(key, path, &bin, None)?;
                s.warnings.extend(w);
                for pid in proc::all_pids() {
                    if let Ok(exe) = proc::proc_exe(pid)
                        && exe.key() == key
                    {
                        s.collector.add_process(exe, bin.clone(), &mut s.model);
                    }
                }
            }
            Target::SystemWide => {
                for pid in proc::all_pids() {
                    if pid == std::process::id() {
                        continue;
                    }
                    if let Ok(exe) = proc::proc_exe(pid) {
                        let _ = s.attach_process(exe, false);
                    }
                }
            }
            Target::Command(cmd) => {
                let path = cmd_path.context("command checked above")?;
                // Before mapaudit tracks its own children: the guard is
                // never stopped at its own exec.
                let exec_stopped = s.probes.exec_stopped_fd().context("map EXEC_STOPPED missing")?;
                match crate::host::exec_guard::ExecGuard::start(probe.exec_stop_timeout, exec_stopped) {
                    Ok(g) => s.guard = Some(g),
                    Err(e) => s.warnings.push(format!(
                        "cannot start the exec guard ({e}): a program stopped at exec is resumed only by mapaudit itself, and stays stopped if mapaudit is killed"
                    )),
                }
                log::debug!("exec guard started");
                s.spawn(&path, &cmd[1..], probe.user.as_deref(), child_output)?;
                let n = proc::favour_own_threads(proc::OWN_NICE);
                log::debug!("{n} of mapaudit's threads at nice {}", proc::OWN_NICE);
            }
        }
        Ok((s, duty))
    }

    /// Attaches to the Go binary `exe` runs: for that process only when
    /// `only_this_pid`, else for every process running the file.
    fn attach_process(&mut self, exe: ProcExe, only_this_pid: bool) -> anyhow::Result<()> {
        let t = Instant::now();
        let bin = self.collector.binary(&exe)?;
        let parsed = t.elapsed();
        let _ = bin.runtime_offsets();
        let offsets = t.elapsed();
        let _ = bin.nested_calls();
        let nested = t.elapsed();
        let pid = only_this_pid.then_some(exe.pid);
        let (_, warnings) = self.probes.attach_binary(exe.key(), &exe.path, &bin, pid)?;
        // Later processes of this file need no attach: the kernel lets them
        // run at exec. Not for a PIE, whose load address is read from /proc
        // (a process of it must stand still until then).
        if matches!(self.target, Target::Command(_)) && pid.is_none() && !bin.is_pie() && self.probes.exec_skip_attached() {
            let k = (crate::kernel::loader::kernel_dev(exe.dev), exe.ino);
            if !self.attached_exes.contains_key(&k) {
                match self.probes.mark_attached_inode(exe.dev, exe.ino) {
                    Ok(()) => {
                        self.attached_exes.insert(k, exe.clone());
                    }
                    Err(e) => log::warn!("{}: its next processes will stop at exec: {e:#}", exe.display),
                }
            }
        }
        log::debug!("pid {}: parsed {parsed:?}, offsets {offsets:?}, nested {nested:?}, attached {:?}", exe.pid, t.elapsed());
        for w in warnings {
            let w = format!("{} (pid {}): {w}", exe.display, exe.pid);
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        self.collector.add_process(exe, bin, &mut self.model);
        Ok(())
    }

    /// Starts CMD so that the kernel stops it (and every descendant) at exec
    /// until its probes are attached: no write is missed.
    fn spawn(
        &mut self,
        path: &std::path::Path,
        args: &[String],
        user: Option<&str>,
        output: Option<&std::fs::File>,
    ) -> anyhow::Result<()> {
        let me = std::process::id();
        // Children of mapaudit forked while this entry exists are followed.
        self.probes.track(me, true)?;
        let mut cmd = tokio::process::Command::new(path);
        cmd.args(args).kill_on_drop(false);
        let who = crate::host::identity::Identity::resolve(user)?;
        crate::host::command::configure(&mut cmd, who.as_ref());
        if let Some(out) = output {
            cmd.stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out.try_clone()?);
        }
        let child = cmd.spawn();
        self.probes.untrack(me);
        let child = child.with_context(|| format!("starting {}", path.display()))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The ring buffer's fd, for readiness polling (forced wake-ups only).
    pub fn events_fd(&self) -> std::os::fd::RawFd {
        self.collector.events.as_raw_fd()
    }

    /// Readiness of the event ring buffer for the session driver: woken only
    /// by exec events and when the buffer is half full.
    pub fn events_ready(&self) -> anyhow::Result<tokio::io::unix::AsyncFd<std::os::fd::RawFd>> {
        // SAFETY: the ring buffer's fd stays open for the whole session,
        // which outlives this registration.
        unsafe { tokio::io::unix::AsyncFd::register(self.events_fd()) }
            .map_err(|e| anyhow::anyhow!("polling the event ring buffer: {e}"))
    }

    /// Waits for the started command to exit; never resolves without one.
    pub async fn wait_child(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.child.as_mut() {
            Some(c) => c.wait().await,
            None => std::future::pending().await,
        }
    }

    /// Drains events and acts on them (attach at exec, continue stopped
    /// processes). Returns the pids that exited.
    pub fn drain(&mut self) -> Vec<u32> {
        self.probes.flush_logs();
        let controls = self.collector.drain(&mut self.model);
        let mut exited = Vec::new();
        for c in controls {
            match c {
                Control::Exec { pid, stopped, ktime_ns, attached, inode } => {
                    if attached && !stopped && matches!(self.target, Target::Command(_)) {
                        self.model.execs_not_stopped += 1;
                    }
                    if stopped && self.execs_to_handle.is_some_and(|n| n == 0) {
                        log::info!("pid {pid} stopped at exec, left unhandled (--debug-ignore-execs-after)");
                        continue;
                    }
                    if stopped && let Some(n) = self.execs_to_handle.as_mut() {
                        *n -= 1;
                    }
                    // Pinned through a pidfd, and only if the process at
                    // `pid` started before this exec: a reused pid is never
                    // continued. The guard holds it meanwhile (a deadline,
                    // and a resume should mapaudit die before it does).
                    let pinned = if stopped { self.pin_stopped(pid, ktime_ns) } else { None };
                    if stopped {
                        // Held by the guard, or gone: the kernel's record of
                        // the stop has served (dropped before the resume: a
                        // later exec of the resumed process records anew).
                        self.probes.forget_exec_stopped(pid, ktime_ns);
                    }
                    // (Testing: also for a process let run at exec, which
                    // may then be gone before it is named.)
                    if (stopped || attached) && !self.exec_stall.is_zero() {
                        std::thread::sleep(self.exec_stall);
                    }
                    let parses = self.collector.parses;
                    self.on_exec(pid, ktime_ns, inode);
                    let parsed = self.collector.parses != parses;
                    if let Some((p, held)) = pinned {
                        if let Err(e) = p.signal(rustix::process::Signal::CONT) {
                            log::warn!("cannot continue pid {pid} after its exec: {e}");
                        }
                        if let (Some(g), Some(h)) = (self.guard.as_mut(), held) {
                            g.release(h);
                        }
                    }
                    if stopped {
                        // How long it stood stopped: the price of exactness.
                        let ns = crate::host::pidctl::monotonic_ns().saturating_sub(ktime_ns);
                        self.model.note_exec_stop(ns, parsed);
                        log::debug!("pid {pid} stood stopped at exec {:.1} ms{}", ns as f64 / 1e6, if parsed { " (parsed its program)" } else { "" });
                    }
                }
                Control::Exit { pid } => exited.push(pid),
            }
        }
        self.note_watchdog_resumes();
        exited
    }

    /// Pins a process the kernel stopped at exec and hands it to the guard.
    fn pin_stopped(
        &mut self,
        pid: u32,
        ktime_ns: u64,
    ) -> Option<(crate::host::pidctl::Pinned, Option<crate::host::exec_guard::Held>)> {
        let p = match crate::host::pidctl::pin_if_same(pid, ktime_ns) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("cannot pin pid {pid} stopped at its exec: {e}");
                return None;
            }
        };
        let held = match (self.guard.as_mut(), p.pidfd()) {
            (Some(g), Some(fd)) => g.hold(pid, fd),
            _ => None,
        };
        if held.is_some() {
            log::info!("pid {pid} stopped at exec, held by the exec guard");
        }
        Some((p, held))
    }

    /// Processes the guard resumed at their deadline, before their probes
    /// were attached: not audited from their start. Said in the report.
    fn note_watchdog_resumes(&mut self) {
        let Some(g) = self.guard.as_mut() else { return };
        for pid in g.resumed_by_watchdog() {
            self.note_resumed_unaudited(
                pid,
                "resumed by the exec guard before its probes were attached",
                "stood stopped at exec past --exec-stop-timeout and was resumed before its probes were attached: its writes before that are not counted",
            );
        }
    }

    /// A process let go from its stop at exec without probes: counted, and
    /// said in the log (`log`) and the report (`warning`).
    fn note_resumed_unaudited(&mut self, pid: u32, log: &str, warning: &str) {
        self.model.watchdog_resumes += 1;
        let exe = proc::proc_exe(pid).map(|e| e.display).unwrap_or_else(|_| "?".into());
        log::warn!("pid {pid} ({exe}) {log}");
        self.model.warnings.push(format!("pid {pid} ({exe}) {warning}"));
    }

    /// At the end: continues every process the kernel stopped at exec that
    /// mapaudit did not take over (its exec came after the last drain, or
    /// was left unhandled). The guard does the same once mapaudit is gone —
    /// this covers a run without a guard. Processes the guard already
    /// resumed at their deadline are no longer listed: never counted twice.
    fn continue_unhandled_stops(&mut self) {
        let Some(m) = self.probes.exec_stopped() else { return };
        let resumed = crate::host::exec_guard::continue_listed(&m, &mut Default::default());
        for (pid, ktime_ns) in resumed {
            // Taken over: the guard's sweep after mapaudit's exit skips it.
            self.probes.forget_exec_stopped(pid, ktime_ns);
            self.note_resumed_unaudited(
                pid,
                "stood stopped at exec when the recording ended; resumed it",
                "stood stopped at exec when the recording ended and was resumed without probes: its writes are not counted",
            );
        }
    }

    fn on_exec(&mut self, pid: u32, ktime_ns: u64, inode: Option<(u32, u64)>) {
        let mut gone = false;
        let exe = match proc::proc_exe(pid) {
            Ok(exe) => exe,
            // A process the kernel did not stop (its program was attached)
            // may be gone already: named from the file it exec'd.
            Err(_) => match inode.and_then(|k| self.attached_exes.get(&k)) {
                Some(first) => {
                    gone = true;
                    ProcExe { pid, start_time: 0, ..first.clone() }
                }
                None => return,
            },
        };
        // Without a stop at exec (system-wide, --exe) the event may arrive
        // after the new program was already registered through its first
        // writes: then there is nothing to retire.
        if self.collector.procs.get(&pid).is_some_and(|p| p.registered_ns > ktime_ns) {
            return;
        }
        // A pid that exec'd (or was reused) runs a new program: freeze the
        // old one's counts under its own generation and start from zero.
        self.retire(pid);
        let result = match &self.target {
            // --exe: the file's attachment already covers its processes; only name them.
            Target::Exe(_) if Some(exe.key()) != self.exe_key => return,
            Target::Exe(_) => self.collector.binary(&exe).map(|bin| self.collector.add_process(exe.clone(), bin, &mut self.model)).map_err(Into::into),
            // The command's descendants: one attachment per executable,
            // counting only tracked processes (`maps_tracked_only`).
            Target::Command(_) => self.attach_process(exe.clone(), false),
            Target::Pid(_) => self.attach_process(exe.clone(), true),
            Target::SystemWide => self.attach_process(exe.clone(), false),
        };
        match result {
            Ok(()) => log::info!("attached to pid {pid} ({})", exe.display),
            Err(e) => log::debug!("pid {pid} ({}) not audited: {e}", exe.display),
        }
        if gone
            && let Some(p) = self.model.processes.get_mut(&pid)
            && p.comm.is_empty()
        {
            // What the kernel named it at that exec: the file's name, cut
            // to 15 bytes (TASK_COMM_LEN).
            let base = exe.display.rsplit('/').next().unwrap_or(&exe.display);
            p.comm = base.char_indices().take_while(|(i, c)| i + c.len_utf8() <= 15).map(|(_, c)| c).collect();
        }
    }

    fn retire(&mut self, pid: u32) {
        if self.model.processes.contains_key(&pid) {
            if let Err(e) = self.collector.snapshot(&mut self.model) {
                log::warn!("snapshot before pid {pid} exec'd: {e}");
            }
            self.model.retire(pid);
            self.probes.forget_map_state(pid);
        }
        self.collector.forget(pid, &mut self.model);
        self.probes.detach_pid(pid);
    }

    /// Empties the kernel's counter tables into the model (see `counters`):
    /// often enough that one period's distinct tuples fit in a table,
    /// whatever the model's tick costs.
    pub fn drain_counters(&mut self) -> anyhow::Result<()> {
        self.fold_drained()?;
        let t0 = Instant::now();
        let (maps, goroutines) = fold_step(&mut self.model, &mut self.fold_schedule);
        if maps + goroutines > 0 {
            log::debug!("folded {maps} idle map instances and {goroutines} goroutines into their classes in {:?}", t0.elapsed());
        }
        Ok(())
    }

    /// One tick: drain, snapshot counters, recompute the model.
    pub fn tick(&mut self, duty: Option<&mut Duty>) -> anyhow::Result<Vec<u32>> {
        let exited = self.collect(duty)?;
        let now = Instant::now();
        self.model.tick(now - self.last_tick);
        self.last_tick = now;
        Ok(exited)
    }

    /// A tick without the model's rates, rankings and findings, for
    /// `record`: nobody looks at them before the end (`finish` makes them
    /// over the whole recording), and on a program with hundreds of
    /// thousands of goroutines and map instances re-ranking every tick
    /// would take a CPU the target needs.
    pub fn collect(&mut self, duty: Option<&mut Duty>) -> anyhow::Result<Vec<u32>> {
        let exited = if self.drain_at_exit_only { Vec::new() } else { self.drain() };
        match duty {
            Some(d) => d.count_hits(self)?,
            // Nothing to close: what the drainer has is enough, and the
            // loop does not wait for a grace period.
            None => self.fold_drained()?,
        }
        self.sample_lengths();
        Ok(exited)
    }

    /// Folds what the drainer thread emptied from the kernel's tables into
    /// the model, `FOLD_SLICE_KEYS` at a time, handling exec events between
    /// slices: they go first (a process stands stopped until handled), and
    /// a fold of a full table takes far longer than the exec budget.
    fn fold_drained(&mut self) -> anyhow::Result<()> {
        while self.collector.collect_some(&mut self.model, FOLD_SLICE_KEYS)? {
            if !self.drain_at_exit_only {
                // Exits seen here are found again by the callers' own checks
                // (as with the driver's exec wake-ups).
                self.drain();
            }
        }
        Ok(())
    }

    /// Reads the length of the instances `Lengths::pick` chooses, in one
    /// `process_vm_readv` batch per process. The element count is the first
    /// word of the header in every supported Go (`hmap.count`,
    /// `maps.Map.used`: `probe_common::uprobe::COUNT_OFF`). A map freed
    /// and its memory reused reads as whatever is there now: the picked
    /// maps are the most written ones, which are rarely dead ones.
    pub fn sample_lengths(&mut self) {
        let picked = self.model.lengths.pick(self.model.agg.maps.iter());
        if picked.is_empty() {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        for chunk in picked.chunk_by(|a, b| a.0 == b.0) {
            let pid = chunk[0].0;
            let addrs: Vec<u64> =
                chunk.iter().map(|(_, m)| m.addr + probe_common::uprobe::COUNT_OFF).collect();
            let lens = crate::host::remote_mem::read_u64s(pid, &addrs);
            log::debug!("pid {pid}: {} of {} map lengths read", lens.iter().flatten().count(), lens.len());
            for ((_, map), len) in chunk.iter().zip(lens) {
                // A negative or absurd count is not a live map's.
                if let Some(len) = len.filter(|&n| n < 1 << 48) {
                    self.model.lengths.record(pid, *map, t, len);
                }
            }
        }
    }

    /// Final, exact read: everything the kernel still holds.
    /// Under `--max-overhead`, also closes the duty cycle's last period,
    /// with every hit it had (else a recording that ends inside a long
    /// period would estimate none of it).
    /// `keep_per_class`: fold each class's rows beyond its busiest that
    /// many (`Model::fold_crowded`) before the last model pass, which then
    /// ranks hundreds of rows rather than every instance of a churning
    /// program (`record`: the report keeps no more).
    pub fn finish(&mut self, duty: Option<&mut Duty>, keep_per_class: Option<usize>) -> anyhow::Result<()> {
        let t = Instant::now();
        self.drain();
        // The last counts are read at once, not two grace periods later,
        // when nothing can be counting any more: every task of the command
        // has exited (only its tasks count), or the probes detached early
        // (`record`) are gone.
        let quiescent = matches!(self.target, Target::Command(_)) && self.probes.no_tracked_task_left();
        let detached = quiescent || self.probes.detached_within(FINAL_READ_DETACH_WAIT);
        self.collector.snapshot_all(&mut self.model, detached)?;
        self.drain();
        log::debug!(
            "final read{}: {:?}",
            if quiescent { " (every tracked task exited)" } else if detached { " (probes detached)" } else { "" },
            t.elapsed()
        );
        self.continue_unhandled_stops();
        // The last lengths, while a target that waits to be stopped is alive.
        self.sample_lengths();
        self.collector.judge_remaining(&mut self.model);
        if let Some(d) = duty {
            d.count_hits(self)?;
            d.cycle.close_period();
        }
        if let Some(keep) = keep_per_class {
            let (maps, goroutines) = self.model.fold_crowded(keep);
            log::debug!("{maps} map and {goroutines} goroutine rows folded into their classes: {:?}", t.elapsed());
        }
        let now = Instant::now();
        self.model.tick(now - self.last_tick);
        self.last_tick = now;
        log::debug!("final model pass: {:?}", t.elapsed());
        Ok(())
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Terminates the command (SIGTERM, then SIGKILL after `grace`).
    pub async fn terminate_child(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        if let Some(pid) = child.id() {
            // SIGCONT in case it is stopped at exec. `id()` is Some only
            // until tokio reaps the child, and an unreaped child's pid
            // cannot be reused: the signals reach our child.
            use nix::sys::signal::{Signal, kill};
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let _ = kill(pid, Signal::SIGCONT);
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(st)) => Some(st),
            _ => {
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        }
    }
}

fn check_pid(pid: u32) -> Result<ProcExe, TargetError> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() || pid == 0 {
        return Err(TargetError::NoSuchPid(pid));
    }
    if proc::state(pid) == Some('Z') {
        return Err(TargetError::Zombie(pid));
    }
    let exe = proc::proc_exe(pid).map_err(|e| TargetError::NotGo {
        what: format!("pid {pid}"),
        why: if e.kind() == std::io::ErrorKind::PermissionDenied {
            // Another user's process, and mapaudit runs with file
            // capabilities rather than as root (README "Privileges").
            format!("cannot read /proc/{pid}/exe ({e}): auditing another user's process needs root or cap_sys_ptrace")
        } else {
            format!("cannot read /proc/{pid}/exe ({e}); is it a kernel thread?")
        },
    })?;
    crate::gobin::GoBinary::open(&exe.path)
        .map_err(|e| TargetError::NotGo { what: format!("pid {pid} ({})", exe.display), why: e.to_string() })?;
    Ok(exe)
}

fn resolve_command(name: &str) -> Result<std::path::PathBuf, TargetError> {
    let p = std::path::Path::new(name);
    if name.contains('/') {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(TargetError::NoCommand(name.into())) };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|c| c.is_file())
        .ok_or_else(|| TargetError::NoCommand(name.into()))
}
