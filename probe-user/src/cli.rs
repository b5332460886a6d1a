//! The command line (clap). `mapaudit` alone means `mapaudit top`,
//! system-wide. Everything a user types is parsed and validated here;
//! `config` converts it into what the rest of mapaudit uses.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mapaudit",
    version,
    long_version = crate::build_info::LONG_VERSION,
    about = "Who writes which Go maps, how hard, from where — and do any writes overlap?",
    long_about = "mapaudit audits Go map writes (runtime.mapassign*, mapdelete*, mapclear) in \
running, unmodified Go programs with eBPF uprobes, counting per goroutine, thread, map and \
call site in the kernel. It also counts writes to kernel BPF maps made through bpf(2).\n\n\
It needs root (or CAP_BPF + CAP_PERFMON + CAP_SYS_ADMIN) and a kernel with BTF, uprobes and \
syscall tracepoints (5.15 or newer).",
    after_help = "EXAMPLES:\n  \
sudo mapaudit                                   live view of every Go process on the node\n  \
sudo mapaudit top --pid 4242                    live view of one process\n  \
sudo mapaudit record --json r.json -- ./server  audit a command, write a JSON report\n  \
sudo mapaudit record --duration 30s --json - --pid 4242\n  \
mapaudit check r.json --fail-on overlap         CI gate on a report (no privileges)\n  \
mapaudit check r.json --fail-on overlap --format sarif --output r.sarif --format markdown --output summary.md\n  \
sudo mapaudit serve                             Prometheus metrics of the node on 127.0.0.1:9750/metrics\n\n\
EXIT STATUS: 0 ok (for `record -- CMD`: CMD's status), 1 gate failed, 2 usage or environment error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Log level for mapaudit and its eBPF programs (off, error, warn, info, debug, trace).
    /// Also read from MAPAUDIT_LOG.
    #[arg(long, global = true, env = "MAPAUDIT_LOG", default_value = "off")]
    pub log_level: LogLevel,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Live terminal view (the default command).
    #[command(after_help = TOP_EXAMPLES)]
    Top(TopArgs),
    /// Record for a while (or until CMD exits) and write a JSON report.
    #[command(after_help = RECORD_EXAMPLES)]
    Record(RecordArgs),
    /// Gate on a JSON report: exit 1 when a --fail-on condition holds. Needs no privileges.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Audit like `top`, and serve Prometheus metrics (/metrics), the
    /// current JSON report (/report.json) and /healthz over HTTP.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "EXAMPLES:\n  \
sudo mapaudit serve                             every Go process on the node, on 127.0.0.1:9750 (5% budget)\n  \
sudo mapaudit serve --listen 0.0.0.0:9750       reachable from other hosts (a DaemonSet behind a Service)\n  \
sudo mapaudit serve --pid 4242 --max-series 500 one process, exact counts\n  \
curl -s localhost:9750/metrics; curl -s localhost:9750/report.json\n\n\
EXIT STATUS: 0 after SIGINT/SIGTERM (or when the --pid process or CMD ends), 2 usage or environment error.";

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Address to serve on. Only loopback unless told otherwise: binding a
    /// non-loopback address (e.g. 0.0.0.0:9750 in a pod) is your choice.
    #[arg(long, default_value = "127.0.0.1:9750", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// How often the metrics and the report are brought up to date.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Call sites with their own `site` label (the busiest first seen);
    /// the rest are counted under site="other".
    #[arg(long, default_value_t = 50, value_name = "K")]
    pub top_sites: usize,
    /// At most N labelled series; label sets beyond are not exported and
    /// are counted in mapaudit_series_folded_total.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub max_series: usize,
    /// Export only processes in this Kubernetes namespace (repeatable).
    #[arg(long, value_name = "NS")]
    pub include_namespace: Vec<String>,
    /// Do not export processes in this namespace (repeatable).
    #[arg(long, value_name = "NS")]
    pub exclude_namespace: Vec<String>,
    /// Export only processes of this pod (repeatable).
    #[arg(long, value_name = "POD")]
    pub include_pod: Vec<String>,
    /// Do not export processes of this pod (repeatable).
    #[arg(long, value_name = "POD")]
    pub exclude_pod: Vec<String>,
    /// Export only processes of this executable (full path or file name; repeatable).
    #[arg(long, value_name = "EXE")]
    pub include_exe: Vec<String>,
    /// Do not export processes of this executable (repeatable).
    #[arg(long, value_name = "EXE")]
    pub exclude_exe: Vec<String>,
}

// Each subcommand's --help (and so its man page) ends with examples.
const TOP_EXAMPLES: &str = "EXAMPLES:\n  \
sudo mapaudit top                               every Go process on the node (5% overhead budget)\n  \
sudo mapaudit top --pid 4242                    one running process\n  \
sudo mapaudit top -- ./server --flag            start a command under audit, from its first instruction";

const RECORD_EXAMPLES: &str = "EXAMPLES:\n  \
sudo mapaudit record --json r.json -- ./server  audit a command until it exits\n  \
sudo mapaudit record --duration 30s --json - --pid 4242\n  \
sudo mapaudit record --json r.json -- go test ./...   follows the test binaries go test execs\n  \
sudo mapaudit record --fail-on overlap --json r.json -- ./integration-tests\n\n\
EXIT STATUS: CMD's status (without CMD: 0, or 128+N when ended by signal N), 1 a gate (--fail-on, \
--max-*) failed, 2 usage or environment error.";

const CHECK_EXAMPLES: &str = "EXAMPLES:\n  \
mapaudit check r.json                           validate a report\n  \
mapaudit check r.json --fail-on overlap --fail-on shared-map\n  \
mapaudit check r.json --max-lost-events 0 --max-writes-per-sec 100000\n\n\
EXIT STATUS: 0 no gate failed, 1 a gate failed, 2 unreadable or invalid report.";

#[derive(Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Audit one running process.
    #[arg(long, conflicts_with_all = ["exe", "cmd"])]
    pub pid: Option<u32>,
    /// Audit every process running this executable, now and later.
    #[arg(long, conflicts_with_all = ["pid", "cmd"])]
    pub exe: Option<PathBuf>,
    /// Run this command under audit from its first instruction, following
    /// the programs it execs (e.g. `go test` running its test binary).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// Settings shared by `top` and `record`.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// Do not count bpf(2) writes to kernel BPF maps.
    #[arg(long)]
    pub no_bpf_maps: bool,
    /// Also count map reads (`runtime.mapaccess1*`/`mapaccess2*`) and find
    /// reads of a map while another goroutine writes it
    /// (`read_during_write`), count range loops over maps per goroutine
    /// and map (`iterations`; iterations during a write are found without
    /// this flag), and count bpf(2) lookups of kernel BPF maps.
    /// Reads are usually far more frequent than writes: each costs a probe
    /// hit, so expect a larger slowdown.
    #[arg(long)]
    pub reads: bool,
    /// Rank the hottest keys of each kernel BPF map written through bpf(2):
    /// the kernel hashes each written key's first 64 bytes (FNV-1a); keys
    /// are never stored or shown, only their hashes and counts.
    #[arg(long, conflicts_with = "no_bpf_maps")]
    pub bpf_hot_keys: bool,
    /// Map health: read the length of the N most-written map instances from
    /// the target's memory at each refresh (process_vm_readv, nothing in the
    /// probe): min/max/last per map in the report, LEN and a sparkline in
    /// the Maps view, and the growing_map finding. 0: off.
    #[arg(long, default_value_t = crate::model::lengths::DEFAULT_LEN_MAPS, value_name = "N")]
    pub len_maps: usize,
    /// growing_map: the least net growth (elements, first to last sample)
    /// that counts.
    #[arg(long, default_value_t = crate::model::lengths::DEFAULT_GROWTH_MIN, value_name = "N")]
    pub growth_min: u64,
    /// growing_map: the largest fall from a peak, in percent of the map's
    /// range (max − min), that still counts as growth; a map that oscillates
    /// in a band or is drained falls back by far more.
    #[arg(long, default_value_t = crate::model::lengths::DEFAULT_GROWTH_MAX_DROP_PCT, value_name = "PCT", value_parser = parse_pct_0_100)]
    pub growth_max_drop: f64,
    /// Capacity of the in-kernel write counter (distinct goroutine × thread ×
    /// map × site tuples). Memory: ~(40 + 8 × CPUs) bytes per entry. Writes
    /// beyond it are counted as lost, never dropped silently.
    #[arg(long, default_value_t = probe_common::maps::WRITES_DEFAULT_ENTRIES, value_name = "N")]
    pub max_entries: u32,
    /// Size of the event ring buffer in KiB (power of two, ≥ 4).
    #[arg(long, default_value_t = probe_common::maps::EVENTS_DEFAULT_BYTES / 1024, value_name = "KIB")]
    pub ringbuf_kib: u32,
    /// Keep the probes' cost under PCT of a CPU by attaching them only part
    /// of the time (duty cycling, calibrated at start); counts become scaled
    /// estimates, and the report and view say so. Default: exact (always
    /// attached), except plain system-wide `mapaudit top`, which uses 5%.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub max_overhead: Option<f64>,
    /// Run CMD, and write the report and logs, as this user (default under
    /// sudo: the invoking user; as plain root: root).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// With `-- CMD`: how long a program CMD execs may stand stopped while
    /// mapaudit attaches its probes. Past it, the program is resumed
    /// unaudited from its start, and the report says so (a warning and
    /// `diagnostics.exec_stops.watchdog_resumes`). Whatever happens to
    /// mapaudit, even SIGKILL, no program is left stopped.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub exec_stop_timeout: Duration,
    /// Testing only: stall every attach at exec this long (the exec watchdog's test).
    #[arg(long, hide = true, value_parser = parse_duration)]
    pub debug_exec_stall: Option<Duration>,
    /// Testing only: handle this many stops at exec, then leave every
    /// further one unhandled, as if its exec event were never read (the
    /// window before the exec guard holds a process).
    #[arg(long, hide = true, value_name = "N")]
    pub debug_ignore_execs_after: Option<u32>,
    /// Benchmark only: attach an empty program at the same points (the cost floor).
    #[arg(long, hide = true)]
    pub bench_floor: bool,
    /// Testing only: capacity of the per-map last-writer table.
    #[arg(long, hide = true, default_value_t = probe_common::maps::MAP_STATE_DEFAULT_ENTRIES)]
    pub debug_map_state_entries: u32,
    /// Testing only: drain the event ring buffer only at exit (forces overflow).
    #[arg(long, hide = true)]
    pub debug_drain_at_exit: bool,
    /// Testing only: name bpf(2) map fds from /proc, as on a kernel whose
    /// BTF lacks a field the kernel-side path needs.
    #[arg(long, hide = true)]
    pub debug_bpf_userspace: bool,
    /// Testing only: attach with one perf-event uprobe per point, as on a
    /// kernel older than 6.6 (no uprobe_multi links).
    #[arg(long, hide = true)]
    pub debug_no_uprobe_multi: bool,
    /// Testing only: stop every process of `-- CMD` at exec, even one of a
    /// program already attached (which otherwise runs at once).
    #[arg(long, hide = true)]
    pub debug_stop_every_exec: bool,
    /// Testing only: capacity of the bpf(2) write counter.
    #[arg(long, hide = true, default_value_t = probe_common::maps::BPF_WRITES_DEFAULT_ENTRIES)]
    pub debug_bpf_writes_entries: u32,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Refresh interval (e.g. 500ms, 1s, 2s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
}

impl TopArgs {
    /// What plain `mapaudit` runs: `top` over every Go process.
    pub fn system_wide() -> Self {
        match Cli::try_parse_from(["mapaudit", "top"]).map(|c| c.command) {
            Ok(Some(Command::Top(t))) => t,
            // Unreachable: "top" with defaults always parses.
            _ => Self {
                target: TargetArgs::default(),
                probe: ProbeArgs {
                    no_bpf_maps: false,
                    reads: false,
                    bpf_hot_keys: false,
                    debug_bpf_userspace: false,
                    debug_no_uprobe_multi: false,
                    debug_stop_every_exec: false,
                    max_entries: probe_common::maps::WRITES_DEFAULT_ENTRIES,
                    ringbuf_kib: 1024,
                    user: None,
                    max_overhead: None,
                    bench_floor: false,
                    debug_drain_at_exit: false,
                    debug_map_state_entries: probe_common::maps::MAP_STATE_DEFAULT_ENTRIES,
                    debug_bpf_writes_entries: probe_common::maps::BPF_WRITES_DEFAULT_ENTRIES,
                    exec_stop_timeout: Duration::from_secs(1),
                    debug_exec_stall: None,
                    debug_ignore_execs_after: None,
                    len_maps: crate::model::lengths::DEFAULT_LEN_MAPS,
                    growth_min: crate::model::lengths::DEFAULT_GROWTH_MIN,
                    growth_max_drop: crate::model::lengths::DEFAULT_GROWTH_MAX_DROP_PCT,
                },
                interval: Duration::from_secs(1),
            },
        }
    }
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Stop after this long (e.g. 30s, 5m). Without it: until CMD or the
    /// --pid process exits, or SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the JSON report here (`-` for stdout); checked before attaching,
    /// written atomically (temp file + rename), also on SIGINT/SIGTERM and
    /// when the target crashes.
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A report written by `mapaudit record --json`.
    pub report: PathBuf,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Reports for CI systems and people, besides the JSON report.
#[derive(Args, Debug, Clone, Default)]
pub struct ShareArgs {
    /// Also write the report in this format: `sarif` (code scanning: findings
    /// on the diff), `junit` (one test case per gate condition), `markdown`
    /// (a CI job summary such as $GITHUB_STEP_SUMMARY), `html` (one
    /// self-contained page). Repeatable; each --format takes the --output
    /// at the same position (e.g. `--format sarif --output r.sarif
    /// --format html --output r.html`); a single --format without --output
    /// goes to stdout.
    #[arg(long = "format", value_enum, value_name = "FORMAT")]
    pub formats: Vec<Format>,
    /// Where the --format at the same position goes (`-` for stdout);
    /// written atomically, as the user mapaudit acts for.
    #[arg(long = "output", value_name = "PATH|-")]
    pub outputs: Vec<String>,
    /// SARIF: the checkout the Go sources live in; file locations under it
    /// (or, for -trimpath builds, under the module its go.mod names) become
    /// paths relative to it, so code scanning can place them on the diff.
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

impl ShareArgs {
    /// (format, destination) pairs; an error says how to pair them.
    pub fn pairs(&self) -> Result<Vec<(Format, String)>, String> {
        match (self.formats.len(), self.outputs.len()) {
            (0, 0) => Ok(Vec::new()),
            (1, 0) => Ok(vec![(self.formats[0], "-".into())]),
            (f, o) if f == o => {
                let pairs: Vec<_> = self.formats.iter().copied().zip(self.outputs.iter().cloned()).collect();
                if pairs.iter().filter(|p| p.1 == "-").count() > 1 {
                    return Err("only one --output may be `-` (stdout)".into());
                }
                Ok(pairs)
            }
            (f, o) => Err(format!(
                "{f} --format but {o} --output: give one --output per --format, in the same order \
                 (e.g. --format sarif --output r.sarif --format junit --output r.xml)"
            )),
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SARIF 2.1.0: one result per finding, for code scanning.
    Sarif,
    /// JUnit XML: one test case per gate condition.
    Junit,
    /// Markdown: a short summary for a CI job page.
    Markdown,
    /// HTML: one self-contained page with rankings and a timeline.
    Html,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sarif => "SARIF",
            Self::Junit => "JUnit",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct GateArgs {
    /// Fail (exit 1) when the report has findings of this kind. Repeatable.
    #[arg(long, value_enum)]
    pub fail_on: Vec<FailOn>,
    /// Fail when any goroutine's or map's average write rate exceeds N/s.
    #[arg(long, value_name = "N")]
    pub max_writes_per_sec: Option<f64>,
    /// Fail when more than N events or writes were lost.
    #[arg(long, value_name = "N")]
    pub max_lost_events: Option<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Two goroutines wrote one map at the same time.
    Overlap,
    /// A map was written by more than one goroutine (even under a lock).
    SharedMap,
    /// A map was read while a write was in progress (needs --reads).
    ReadDuringWrite,
    /// A map was iterated (range) while a write was in progress (always probed).
    IterateDuringWrite,
    /// A map's length grew steadily without coming back (a leak suspect;
    /// needs --len-maps, on by default).
    GrowingMap,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            Self::Off => log::LevelFilter::Off,
            Self::Error => log::LevelFilter::Error,
            Self::Warn => log::LevelFilter::Warn,
            Self::Info => log::LevelFilter::Info,
            Self::Debug => log::LevelFilter::Debug,
            Self::Trace => log::LevelFilter::Trace,
        }
    }
}

/// "5%" or "5" → 0.05.
fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().trim_end_matches('%').parse().map_err(|_| format!("{s:?} is not a percentage (e.g. 5%)"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err("must be more than 0% and at most 100%".into());
    }
    Ok(v / 100.0)
}

/// A percentage from 0 to 100, as given (`10`, `10%`).
fn parse_pct_0_100(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().trim_end_matches('%').parse().map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err("must be from 0% to 100%".into());
    }
    Ok(v)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 5m)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mapaudit").chain(args.iter().copied()))
    }

    #[test]
    fn no_args_means_system_wide_top() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn record_with_command() {
        let cli = parse(&["record", "--duration", "2s", "--json", "-", "--", "./x", "-n", "5"]).unwrap();
        let Some(Command::Record(r)) = cli.command else { panic!("not record") };
        assert_eq!(r.duration, Some(Duration::from_secs(2)));
        assert_eq!(r.json.as_deref(), Some("-"));
        assert_eq!(r.target.cmd, vec!["./x", "-n", "5"]);
    }

    #[test]
    fn pid_and_command_conflict() {
        assert!(parse(&["record", "--pid", "1", "--", "ls"]).is_err());
    }

    #[test]
    fn check_gate_options() {
        let cli = parse(&["check", "r.json", "--fail-on", "overlap", "--fail-on", "shared-map", "--max-lost-events", "0"]).unwrap();
        let Some(Command::Check(c)) = cli.command else { panic!("not check") };
        assert_eq!(c.gate.fail_on, vec![FailOn::Overlap, FailOn::SharedMap]);
        assert_eq!(c.gate.max_lost_events, Some(0));
    }

    #[test]
    fn formats_pair_with_outputs() {
        let cli = parse(&["check", "r.json", "--format", "sarif", "--output", "a", "--format", "html", "--output", "-"]).unwrap();
        let Some(Command::Check(c)) = cli.command else { panic!("not check") };
        assert_eq!(c.share.pairs().unwrap(), vec![(Format::Sarif, "a".to_string()), (Format::Html, "-".to_string())]);
        let cli = parse(&["check", "r.json", "--format", "markdown"]).unwrap();
        let Some(Command::Check(c)) = cli.command else { panic!("not check") };
        assert_eq!(c.share.pairs().unwrap(), vec![(Format::Markdown, "-".to_string())]);
        let cli = parse(&["check", "r.json", "--format", "sarif", "--format", "junit"]).unwrap();
        let Some(Command::Check(c)) = cli.command else { panic!("not check") };
        assert!(c.share.pairs().unwrap_err().contains("2 --format but 0 --output"));
        assert!(parse(&["check", "r.json", "--format", "pdf"]).is_err());
    }

    #[test]
    fn max_overhead_is_a_percentage() {
        let cli = parse(&["record", "--max-overhead", "5%", "--", "x"]).unwrap();
        let Some(Command::Record(r)) = cli.command else { panic!("not record") };
        assert_eq!(r.probe.max_overhead, Some(0.05));
        assert!(parse(&["record", "--max-overhead", "0", "--", "x"]).is_err());
        assert!(parse(&["record", "--max-overhead", "lots", "--", "x"]).is_err());
    }

    #[test]
    fn bad_duration_is_rejected() {
        assert!(parse(&["record", "--duration", "soon"]).is_err());
        assert!(parse(&["record", "--duration", "0s"]).is_err());
    }
}
