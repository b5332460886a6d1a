//! Developer and CI entry points: `cargo xtask setup | build | test | test-arm64 | run | soak | bench | fuzz`.
//! Orchestration only; mapaudit itself lives in probe-user. This file only
//! parses the command line and dispatches: one file (or folder) per task.

mod arm64;
mod bench;
mod build;
mod dist;
mod fuzz;
mod run;
mod setup;
mod soak;
mod test;
mod util;

use clap::{Parser, Subcommand};

pub use build::build;
pub use util::{cargo, is_root, root, status};

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
    Build {
        /// Cross-build for this target instead of the host: only
        /// `aarch64-unknown-linux-gnu` (provisions rustup's std for it and
        /// Debian's cross linker).
        #[arg(long)]
        target: Option<String>,
    },
    /// The root end-to-end tests on arm64, in an emulated arm64 machine
    /// (QEMU, Debian's arm64 kernel): cross-builds mapaudit and the tests,
    /// builds the Go fixtures for arm64, reports pass/fail per test.
    TestArm64 {
        /// Test filters instead of the default modules, e.g. `-- core::`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup if needed, build, run every test, the root end-to-end tests
    /// included; fails unless every end-to-end test selected really ran.
    Test {
        /// Test filters and libtest options for every test binary, e.g.
        /// `-- lifecycle::` or `-- core::exec --exact`. A filter that
        /// matches no test fails.
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
        Cmd::Build { target: None } => build(),
        Cmd::Build { target: Some(t) } if t == arm64::TARGET => arm64::build().map(|_| ()),
        Cmd::Build { target: Some(t) } => anyhow::bail!("cannot build for {t}: the targets are the host's and {}", arm64::TARGET),
        Cmd::TestArm64 { args } => arm64::test(&args),
        Cmd::Test { args } => test::run(&args),
        Cmd::Run { demo, args } => run::run(&demo, &args),
        Cmd::Fuzz { seconds, targets } => fuzz::run(seconds, &targets),
        Cmd::Bench { args } => bench::run(&args),
        Cmd::Soak { scale } => soak::run(scale),
        Cmd::Dist { args } => dist::run(&args),
    }
}
