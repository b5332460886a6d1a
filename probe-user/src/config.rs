//! What the layers below `cmd` are told, converted once from the command
//! line (`cli`): what to audit (`Target`), how to probe (`Probe`), what to
//! gate on (`Gate`), per command. `session`, `kernel` and `output` take
//! these types and never clap's (as ripgrep keeps its low-level arguments
//! apart from the configuration its core uses).

use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use crate::cli::{self, Cli, FailOn, GateArgs, ProbeArgs, TargetArgs};
use crate::model::FindingKind;

/// `--max-overhead` default of plain `mapaudit` (system-wide `top`).
pub const DEFAULT_SYSTEM_WIDE_BUDGET: f64 = 0.05;

/// One run of mapaudit: the command and the log level.
#[derive(Debug)]
pub struct Config {
    pub command: Command,
    /// mapaudit's own log level and its eBPF programs'.
    pub log: LevelFilter,
}

#[derive(Debug)]
pub enum Command {
    Top(Top),
    Record(Record),
    Check(Check),
    Serve(Serve),
}

#[derive(Debug)]
pub struct Serve {
    pub target: Target,
    pub probe: Probe,
    pub listen: std::net::SocketAddr,
    pub interval: Duration,
    pub metrics: crate::output::metrics::MetricsConfig,
}

/// What to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Exe(PathBuf),
    Command(Vec<String>),
    SystemWide,
}

/// How to probe: sizes, switches and the user mapaudit acts for; shared by
/// `top` and `record`. Sizes are checked where they are used (`loader`).
#[derive(Debug, Clone)]
pub struct Probe {
    pub bpf_maps: bool,
    pub reads: bool,
    pub max_entries: u32,
    pub ringbuf_kib: u32,
    /// `--max-overhead` as a fraction of a CPU; None: exact.
    pub max_overhead: Option<f64>,
    pub user: Option<String>,
    /// The eBPF programs' log level (mapaudit's own).
    pub log: LevelFilter,
    pub bench_floor: bool,
    pub debug_map_state_entries: u32,
    pub debug_drain_at_exit: bool,
    pub debug_bpf_writes_entries: u32,
    /// `--bpf-hot-keys`.
    pub bpf_hot_keys: bool,
    pub debug_bpf_userspace: bool,
    pub debug_no_uprobe_multi: bool,
    pub debug_stop_every_exec: bool,
    /// `--exec-stop-timeout`: the exec guard's deadline.
    pub exec_stop_timeout: std::time::Duration,
    pub debug_exec_stall: std::time::Duration,
    /// `--debug-ignore-execs-after`.
    pub debug_ignore_execs_after: Option<u32>,
    /// `--len-maps`: map instances whose length is sampled.
    pub len_maps: usize,
    /// `--growth-min`, `--growth-max-drop`.
    pub growth: crate::model::lengths::GrowthRule,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    /// Fail when the report has findings of these kinds.
    pub fail_on: Vec<FindingKind>,
    pub max_writes_per_sec: Option<f64>,
    pub max_lost_events: Option<u64>,
}

impl Gate {
    pub fn is_empty(&self) -> bool {
        self.fail_on.is_empty() && self.max_writes_per_sec.is_none() && self.max_lost_events.is_none()
    }
}

#[derive(Debug)]
pub struct Top {
    pub target: Target,
    pub probe: Probe,
    pub interval: Duration,
}

#[derive(Debug)]
pub struct Record {
    pub target: Target,
    pub probe: Probe,
    pub duration: Option<Duration>,
    /// `--json PATH|-`.
    pub json: Option<String>,
    pub share: Share,
    pub gate: Gate,
}

/// `--format`/`--output` pairs and `--source-root`.
#[derive(Debug, Clone)]
pub struct Share {
    /// (format, `PATH|-`); Err: the pairing was wrong (said when run: exit 2).
    pub outputs: Result<Vec<(cli::Format, String)>, String>,
    pub source_root: Option<PathBuf>,
}

impl From<cli::ShareArgs> for Share {
    fn from(a: cli::ShareArgs) -> Self {
        Self { outputs: a.pairs(), source_root: a.source_root }
    }
}

#[derive(Debug)]
pub struct Check {
    pub report: PathBuf,
    pub share: Share,
    pub gate: Gate,
}

impl From<Cli> for Config {
    fn from(cli: Cli) -> Self {
        let log = cli.log_level.filter();
        let command = match cli.command {
            None => Command::Top(Top::new(cli::TopArgs::system_wide(), log)),
            Some(cli::Command::Top(a)) => Command::Top(Top::new(a, log)),
            Some(cli::Command::Record(a)) => Command::Record(Record {
                target: target(&a.target),
                probe: probe(a.probe, log),
                duration: a.duration,
                json: a.json,
                share: a.share.into(),
                gate: a.gate.into(),
            }),
            Some(cli::Command::Check(a)) => Command::Check(Check { report: a.report, share: a.share.into(), gate: a.gate.into() }),
            Some(cli::Command::Serve(a)) => Command::Serve(Serve::new(a, log)),
        };
        Self { command, log }
    }
}

impl Top {
    fn new(a: cli::TopArgs, log: LevelFilter) -> Self {
        let target = target(&a.target);
        let mut probe = probe(a.probe, log);
        // On a production node (system-wide), the live view keeps its cost
        // under 5% of a CPU unless told otherwise; a targeted view is exact.
        if target == Target::SystemWide && probe.max_overhead.is_none() {
            probe.max_overhead = Some(DEFAULT_SYSTEM_WIDE_BUDGET);
        }
        Self { target, probe, interval: a.interval }
    }
}

impl Serve {
    fn new(a: cli::ServeArgs, log: LevelFilter) -> Self {
        let target = target(&a.target);
        let mut probe = probe(a.probe, log);
        // A node-wide exporter costs what system-wide `top` does, by default.
        if target == Target::SystemWide && probe.max_overhead.is_none() {
            probe.max_overhead = Some(DEFAULT_SYSTEM_WIDE_BUDGET);
        }
        let filter = crate::output::metrics::Filter {
            include_namespaces: a.include_namespace,
            exclude_namespaces: a.exclude_namespace,
            include_pods: a.include_pod,
            exclude_pods: a.exclude_pod,
            include_exes: a.include_exe,
            exclude_exes: a.exclude_exe,
        };
        let metrics = crate::output::metrics::MetricsConfig { top_sites: a.top_sites, max_series: a.max_series, filter };
        Self { target, probe, listen: a.listen, interval: a.interval, metrics }
    }
}

fn target(a: &TargetArgs) -> Target {
    if let Some(pid) = a.pid {
        Target::Pid(pid)
    } else if let Some(exe) = &a.exe {
        Target::Exe(exe.clone())
    } else if !a.cmd.is_empty() {
        Target::Command(a.cmd.clone())
    } else {
        Target::SystemWide
    }
}

fn probe(p: ProbeArgs, log: LevelFilter) -> Probe {
    Probe {
        bpf_maps: !p.no_bpf_maps,
        reads: p.reads,
        max_entries: p.max_entries,
        ringbuf_kib: p.ringbuf_kib,
        max_overhead: p.max_overhead,
        user: p.user,
        log,
        bench_floor: p.bench_floor,
        debug_map_state_entries: p.debug_map_state_entries,
        debug_drain_at_exit: p.debug_drain_at_exit,
        debug_bpf_writes_entries: p.debug_bpf_writes_entries,
        bpf_hot_keys: p.bpf_hot_keys,
        debug_bpf_userspace: p.debug_bpf_userspace,
        debug_no_uprobe_multi: p.debug_no_uprobe_multi,
        debug_stop_every_exec: p.debug_stop_every_exec,
        exec_stop_timeout: p.exec_stop_timeout,
        debug_exec_stall: p.debug_exec_stall.unwrap_or_default(),
        debug_ignore_execs_after: p.debug_ignore_execs_after,
        len_maps: p.len_maps,
        growth: crate::model::lengths::GrowthRule {
            min_growth: p.growth_min,
            max_drop: p.growth_max_drop / 100.0,
            ..Default::default()
        },
    }
}

impl Probe {
    /// The settings of plain `mapaudit top` with its defaults, exact (no
    /// budget) and silent: for tools that load the probes themselves.
    pub fn defaults() -> Self {
        probe(cli::TopArgs::system_wide().probe, LevelFilter::Off)
    }
}

impl From<GateArgs> for Gate {
    fn from(g: GateArgs) -> Self {
        let fail_on = g
            .fail_on
            .iter()
            .map(|k| match k {
                FailOn::Overlap => FindingKind::OverlappingWrites,
                FailOn::SharedMap => FindingKind::SharedMap,
                FailOn::ReadDuringWrite => FindingKind::ReadDuringWrite,
                FailOn::IterateDuringWrite => FindingKind::IterateDuringWrite,
                FailOn::GrowingMap => FindingKind::GrowingMap,
            })
            .collect();
        Self { fail_on, max_writes_per_sec: g.max_writes_per_sec, max_lost_events: g.max_lost_events }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn config(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("mapaudit").chain(args.iter().copied())).unwrap().into()
    }

    #[test]
    fn targets_and_the_system_wide_budget() {
        let Command::Record(r) = config(&["record", "--", "./x", "-n", "5"]).command else { panic!("not record") };
        assert_eq!(r.target, Target::Command(vec!["./x".into(), "-n".into(), "5".into()]));
        assert_eq!(r.probe.max_overhead, None);
        let Command::Top(t) = config(&[]).command else { panic!("not top") };
        assert_eq!(t.target, Target::SystemWide);
        assert_eq!(t.probe.max_overhead, Some(DEFAULT_SYSTEM_WIDE_BUDGET));
        let Command::Top(t) = config(&["top", "--pid", "7"]).command else { panic!("not top") };
        assert_eq!(t.target, Target::Pid(7));
        assert_eq!(t.probe.max_overhead, None);
        let Command::Top(t) = config(&["top", "--max-overhead", "2%"]).command else { panic!("not top") };
        assert_eq!(t.probe.max_overhead, Some(0.02));
    }

    #[test]
    fn serve_budget_and_loopback_default() {
        let Command::Serve(sv) = config(&["serve"]).command else { panic!("not serve") };
        assert_eq!(sv.target, Target::SystemWide);
        assert_eq!(sv.probe.max_overhead, Some(DEFAULT_SYSTEM_WIDE_BUDGET));
        assert!(sv.listen.ip().is_loopback());
        assert_eq!(sv.listen.port(), 9750);
        let Command::Serve(sv) = config(&["serve", "--listen", "0.0.0.0:9000", "--max-series", "7", "--exclude-exe", "x", "--", "./w"]).command
        else {
            panic!("not serve")
        };
        assert_eq!(sv.probe.max_overhead, None, "a started command is audited exactly");
        assert_eq!(sv.metrics.max_series, 7);
        assert_eq!(sv.metrics.filter.exclude_exes, vec!["x".to_string()]);
        assert!(!sv.listen.ip().is_loopback());
    }

    #[test]
    fn gate_kinds_and_log_level() {
        let c = config(&["--log-level", "debug", "check", "r.json", "--fail-on", "read-during-write", "--fail-on", "overlap"]);
        assert_eq!(c.log, LevelFilter::Debug);
        let Command::Check(ch) = c.command else { panic!("not check") };
        assert_eq!(ch.gate.fail_on, vec![FindingKind::ReadDuringWrite, FindingKind::OverlappingWrites]);
        assert!(!ch.gate.is_empty());
    }
}
