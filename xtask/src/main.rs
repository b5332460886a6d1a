//! Developer and CI entry points: `cargo xtask setup | build | test | run | soak | bench | fuzz`.
//! Orchestration only; mapaudit itself lives in probe-user.

mod bench;
mod dist;
mod fuzz;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "mapaudit's developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Provision the eBPF toolchain, Go toolchains for fixtures, tmux, tracefs.
    Setup,
    /// Build the eBPF object and mapaudit (release).
    Build,
    /// Setup if needed, build, run every test, the root end-to-end tests included.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build and run `mapaudit ARGS` as root; with no ARGS, the bundled demo
    /// under the live view (or a 10 s recording when not on a terminal).
    /// Long soak: the target-never-notices tests at ≥ 60 s per fixture run.
    Soak {
        /// Work scale for the soak fixture (default 20: about a minute probed).
        #[arg(long, default_value_t = 20)]
        scale: u32,
    },
    Run {
        /// Demo mode when no ARGS: `hot` (a hot shared cache, locked) or
        /// `race` (unsynchronised writes that overlap and usually crash).
        #[arg(long, default_value = "hot")]
        demo: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build everything and benchmark (as root): probe cost against an empty
    /// program and bpftrace, ring-buffer drain, model tick; prints one table.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
    },
    /// Build what users install into target/dist: the Debian package and a
    /// static musl binary tarball (man pages, completions, JSON Schema).
    /// `--check` installs the package and tests both (root).
    Dist {
        #[command(flatten)]
        args: dist::DistArgs,
    },
    /// Run every cargo-fuzz target (probe-user/fuzz) for a bounded time;
    /// fails on a crash and says where the crashing input is. No root needed.
    Fuzz {
        /// Seconds per target (CI uses 10).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup::run(),
        Cmd::Build => build(),
        Cmd::Test { args } => test(&args),
        Cmd::Run { demo, args } => run(&demo, &args),
        Cmd::Fuzz { seconds, targets } => fuzz::run(seconds, &targets),
        Cmd::Bench { args } => bench::run(&args),
        Cmd::Soak { scale } => soak(scale),
        Cmd::Dist { args } => dist::run(&args),
    }
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn status(mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn build() -> anyhow::Result<()> {
    setup::ensure()?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "probe-user"]);
    status(c)
}

/// Root tests record that they really ran here; CI fails if none did.
const RAN_MARKER: &str = "target/root-tests-ran.txt";

fn test(extra: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the end-to-end tests load eBPF programs and need root: run `sudo -E cargo xtask test` \
             (plain `cargo test` runs the non-root tests only)"
        );
    }
    setup::ensure()?;
    let marker = root().join(RAN_MARKER);
    let _ = std::fs::remove_file(&marker);
    let mut c = cargo();
    c.args(["build", "--release", "-p", "probe-user"]);
    status(c)?;
    let mut c = cargo();
    // Root tests must run, not skip: MAPAUDIT_REQUIRE_ROOT_TESTS turns a skip
    // into a failure. One test thread: root tests share the kernel's probes.
    // The end-to-end tests run the release mapaudit just built: the binary
    // that ships, at the speed users see.
    c.env("MAPAUDIT_REQUIRE_ROOT_TESTS", "1")
        .env("MAPAUDIT_BIN", root().join("target/release/mapaudit"))
        .args(["test", "--workspace", "--exclude", "probe-ebpf", "--no-fail-fast"])
        .args(extra)
        .args(["--", "--test-threads=1"]);
    status(c)?;
    if extra.is_empty() {
        let ran = std::fs::read_to_string(&marker).unwrap_or_default();
        let n = ran.lines().filter(|l| !l.trim().is_empty()).count();
        if n == 0 {
            bail!("no root end-to-end test ran (nothing in {RAN_MARKER}); refusing to call this green");
        }
        eprintln!("xtask: {n} root end-to-end tests ran");
    }
    Ok(())
}

fn soak(scale: u32) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the soak tests load eBPF programs and need root: run `sudo -E cargo xtask soak`");
    }
    setup::ensure()?;
    let mut c = cargo();
    c.env("MAPAUDIT_REQUIRE_ROOT_TESTS", "1")
        .env("MAPAUDIT_SOAK_SCALE", scale.to_string())
        .args(["test", "--release", "-p", "probe-user", "--test", "e2e_soak", "--", "--test-threads=1", "--nocapture"]);
    status(c)
}

fn run(demo: &str, args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("mapaudit loads eBPF programs and needs root: run `sudo -E cargo xtask run`");
    }
    build()?;
    let bin = root().join("target/release/mapaudit");
    let mut c = Command::new(&bin);
    if args.is_empty() {
        let demo_bin = setup::build_demo()?;
        let on_tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if on_tty {
            c.arg("top");
        } else {
            eprintln!("xtask: stdout is not a terminal: recording the demo for 10 s instead of the live view");
            c.args(["record", "--duration", "10s", "--json", "-"]);
        }
        c.arg("--").arg(demo_bin).args(["-mode", demo]);
    } else {
        c.args(args);
    }
    eprintln!("xtask: running {c:?}");
    let st = c.status().with_context(|| format!("starting {}", bin.display()))?;
    std::process::exit(st.code().unwrap_or(1));
}
