//! mapaudit: which goroutines and threads write which Go maps, how hard, from
//! where — and whether any of those writes overlap.
//!
//! Layers, in data-flow order (see README "Code map" and "How it works"):
//! `cli` parses the command line and `config` converts it once into the
//! settings the rest uses; `cmd` runs `top`, `record` or `check`;
//! `session` checks the environment, loads the probes and follows the target
//! over time; `host` finds processes under /proc and acts for the user;
//! `gobin` reads their Go binaries; `kernel` attaches the eBPF probes and
//! turns kernel counters and events into the pure `model`, which `tui` draws
//! and `output` serialises (`report`), summarises and gates (`gate`: a report
//! into an exit code).

pub mod arch;
pub mod build_info;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod gobin;
pub mod host;
pub mod kernel;
pub mod model;
pub mod output;
pub mod session;
pub mod tui;

pub use cli::Cli;

/// Runs mapaudit; returns the process exit code (0 ok, 1 gate failed,
/// 2 usage or environment error; `record -- CMD`: CMD's status).
/// mimalloc's purge delay, by its place in v3's `mi_option_e` (mimalloc.h;
/// libmimalloc-sys does not name it). The enum's length pins the version
/// it was read from.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47, "mimalloc's option list changed: check the ordinal above");

/// Memory freed by the model (folded rows, drained batches) is kept for
/// reuse rather than returned to the kernel: under churn, purged pages
/// were faulted back and zeroed again and again — page zeroing was ~40 %
/// of mapaudit's CPU in the churn benchmark. (mimalloc is also built
/// without its transparent-huge-page advice, `no_thp`: a fault then zeroes
/// 4 KiB, not 2 MiB. Not through its `allow_thp` option: that disables
/// THP for the process with a prctl the audited command would inherit.)
/// The peak is what the model's bound allows (README "Limits"). For
/// binaries whose global allocator is mimalloc (`mapaudit`, the bench).
pub fn tune_allocator() {
    // SAFETY: a plain option setter, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

pub fn run(cli: Cli) -> i32 {
    // Before anything is opened: what is ours to keep from a started command.
    host::command::note_inherited_descriptors();
    let config = config::Config::from(cli);
    let mut logger = env_logger::Builder::new();
    logger.filter_level(config.log).format_timestamp_millis();
    // The live view owns the terminal: its logs go to a file instead.
    if let config::Command::Top(top) = &config.command
        && config.log != log::LevelFilter::Off
    {
        // A fresh file under an unguessable name, as the user mapaudit acts for.
        match cmd::open_log("mapaudit", top.probe.user.as_deref()) {
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
        match config.command {
            config::Command::Top(a) => cmd::top::run(a).await,
            config::Command::Record(a) => cmd::record::run(a).await,
            config::Command::Check(a) => cmd::check::run(a),
            config::Command::Serve(a) => cmd::serve::run(a).await,
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

// Unit tests build Go fixtures with the workspace's fixture crate (a
// dev-dependency; nothing of it ships) under the path they always used.
#[cfg(test)]
use ::fixtures;
