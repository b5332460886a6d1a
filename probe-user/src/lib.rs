//! mapaudit: which goroutines and threads write which Go maps, how hard, from
//! where — and whether any of those writes overlap.
//!
//! Data flow (see README "How it works"): `target` finds processes, `gobin`
//! reads their Go binaries, `loader` attaches the eBPF probes, `collector`
//! turns kernel counters and events into the pure `model`, which `tui`
//! draws and `report` serialises; `gate` turns a report into an exit code.

pub mod bpfmaps;
pub mod budget;
pub mod classes;
pub mod cli;
pub mod collector;
pub mod command;
pub mod formats;
pub mod counters;
pub mod fixtures;
pub mod gate;
pub mod gobin;
pub mod identity;
pub mod loader;
pub mod model;
pub mod pidctl;
pub mod preflight;
pub mod record;
pub mod report;
pub mod safefile;
pub mod sanity;
pub mod session;
pub mod summary;
pub mod target;
pub mod timeline;
pub mod top;
pub mod tui;

pub use cli::Cli;

/// Runs mapaudit; returns the process exit code (0 ok, 1 gate failed,
/// 2 usage or environment error; `record -- CMD`: CMD's status).
pub fn run(cli: Cli) -> i32 {
    // Before anything is opened: what is ours to keep from a started command.
    command::note_inherited_descriptors();
    let mut logger = env_logger::Builder::new();
    logger.filter_level(cli.log_level.filter()).format_timestamp_millis();
    // The live view owns the terminal: its logs go to a file instead.
    let is_top = matches!(cli.command, None | Some(cli::Command::Top(_)));
    if is_top && cli.log_level != cli::LogLevel::Off {
        // A fresh file under an unguessable name, as the user mapaudit acts for.
        let user = match &cli.command {
            Some(cli::Command::Top(a)) => a.probe.user.as_deref(),
            _ => None,
        };
        match open_log("mapaudit", user) {
            Ok((f, path)) => {
                eprintln!("mapaudit: logging to {}", path.display());
                logger.target(env_logger::Target::Pipe(Box::new(f)));
            }
            Err(e) => eprintln!("mapaudit: cannot log to a file in {}: {e:#}; logging is off", std::env::temp_dir().display()),
        }
    }
    logger.init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mapaudit: error: cannot start the runtime: {e}");
            return 2;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => top::run(cli::TopArgs::system_wide(), cli.log_level).await,
            Some(cli::Command::Top(a)) => top::run(a, cli.log_level).await,
            Some(cli::Command::Record(a)) => record::run(a, cli.log_level).await,
            Some(cli::Command::Check(a)) => check(a),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mapaudit: error: {e:#}");
            2
        }
    }
}

fn check(a: cli::CheckArgs) -> anyhow::Result<i32> {
    // Destinations are checked before any work, as `record` does.
    let outputs = formats::Outputs::prepare(&a.share, None)?;
    let rep = gate::read_report(&a.report)?;
    outputs.write(&rep, &a.gate, a.share.source_root.as_deref())?;
    let failures = gate::evaluate(&rep, &a.gate);
    if a.gate.is_empty() && outputs.is_empty() {
        eprintln!("mapaudit: {} is a valid report ({} findings); give --fail-on or a threshold to gate on it", a.report.display(), rep.findings.len());
    }
    Ok(gate::conclude(&failures))
}

/// A fresh log file `STEM-PID-RANDOM.log` in the temp directory, created as
/// the user mapaudit acts for (`--user NAME`, or the sudo user).
pub fn open_log(stem: &str, user: Option<&str>) -> anyhow::Result<(std::fs::File, std::path::PathBuf)> {
    let create = || safefile::create_log(stem);
    Ok(match identity::Identity::resolve(user)? {
        Some(who) => who.run_as(create)??,
        None => create()?,
    })
}
