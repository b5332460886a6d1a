//! `cargo xtask fuzz`: runs every cargo-fuzz target of `probe-user/fuzz/`
//! for a bounded time and fails when one crashes, saying where the crashing
//! input is. Provisions what it needs: cargo-fuzz, the Go toolchains of the
//! fixtures the seeds come from, the seeds themselves.
//!
//! libFuzzer needs a nightly compiler: rustup's `nightly` when installed,
//! else the default toolchain with `RUSTC_BOOTSTRAP=1`. Neither needs
//! `rust-src` (no `-Zbuild-std`).

use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context as _, bail};

use crate::{root, status};

/// Every target, with libFuzzer's `-max_len` for it.
const TARGETS: &[(&str, usize)] = &[
    // Whole fixture binaries are a few MB.
    ("gobin_parse", 8 << 20),
    ("buildinfo", 4096),
    ("pclntab", 8192),
    ("types", 4096),
    ("dwarf_offsets", 16384),
    ("report_parse", 65536),
    ("version_inference", 4096),
];

fn fuzz_dir() -> PathBuf {
    root().join("probe-user/fuzz")
}

pub fn run(seconds: u64, only: &[String]) -> anyhow::Result<()> {
    let targets: Vec<(&str, usize)> = if only.is_empty() {
        TARGETS.to_vec()
    } else {
        let mut v = Vec::new();
        for name in only {
            let t = TARGETS.iter().find(|t| t.0 == name).with_context(|| {
                format!(
                    "no fuzz target {name:?}; there are: {}",
                    TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                )
            })?;
            v.push(*t);
        }
        v
    };
    ensure_cargo_fuzz()?;
    ensure_go()?;
    let nightly = Nightly::detect();
    eprintln!("xtask: fuzzing with {}", nightly.describe());

    // Seeds: fixture binaries and windows over them (examples/seeds.rs).
    let mut c = plain_cargo();
    c.current_dir(fuzz_dir()).args(["run", "--quiet", "--example", "seeds"]);
    status(c).context("generating the seed corpora")?;

    // One build of every target first: a build failure is not a crash.
    let mut c = nightly.cargo();
    c.current_dir(root().join("probe-user"))
        .env("MAPAUDIT_SKIP_EBPF", "1")
        .args(["fuzz", "build"])
        .args(nightly.sanitizer());
    status(c).context("building the fuzz targets")?;

    let mut crashed = Vec::new();
    for (target, max_len) in &targets {
        let started = SystemTime::now();
        let seeds = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&seeds)?;
        // libFuzzer adds what it finds to the first directory. The corpus of
        // whole binaries would grow by megabytes a second: give it a scratch
        // directory, emptied before and after; the others keep theirs.
        let scratch = fuzz_dir().join("target/scratch-corpus").join(target);
        let _ = std::fs::remove_dir_all(&scratch);
        let dirs = if *target == "gobin_parse" {
            std::fs::create_dir_all(&scratch)?;
            vec![scratch.clone(), seeds]
        } else {
            vec![seeds]
        };
        let mut c = nightly.cargo();
        c.current_dir(root().join("probe-user"))
            .env("MAPAUDIT_SKIP_EBPF", "1")
            .args(["fuzz", "run", target])
            .args(nightly.sanitizer())
            .args(&dirs)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-max_len={max_len}"))
            .arg("-rss_limit_mb=4096")
            // One input slower than this is a hang, reported as a crash.
            .arg("-timeout=120")
            .arg("-print_final_stats=1");
        let dict = fuzz_dir().join(format!("{target}.dict"));
        if dict.exists() {
            c.arg(format!("-dict={}", dict.display()));
        }
        eprintln!("xtask: fuzzing {target} for {seconds} s: {c:?}");
        let st = c.status().with_context(|| format!("starting {c:?}"));
        let _ = std::fs::remove_dir_all(&scratch);
        let st = st?;
        if !st.success() {
            let found = artifacts_since(target, started);
            if found.is_empty() {
                bail!("cargo fuzz run {target} failed ({st}) without leaving a crashing input: a build or setup problem");
            }
            crashed.push((*target, found));
        }
    }
    if crashed.is_empty() {
        eprintln!(
            "xtask: {} fuzz targets ran {seconds} s each without a crash",
            targets.len()
        );
        return Ok(());
    }
    eprintln!("\nxtask: fuzzing found crashes:");
    for (target, files) in &crashed {
        for f in files {
            eprintln!("  {target}: {}", f.display());
            eprintln!(
                "    reproduce: (cd probe-user && MAPAUDIT_SKIP_EBPF=1 {}cargo {}fuzz run {}{target} {})",
                nightly.env(),
                nightly.plus(),
                nightly.sanitizer().iter().map(|a| format!("{a} ")).collect::<String>(),
                f.display()
            );
        }
    }
    eprintln!(
        "  keep each as a regression test: copy it to probe-user/tests/fuzz-regressions/<target>/ \
         (replayed by `cargo test --test fuzz_regressions`)"
    );
    bail!("{} fuzz target(s) crashed", crashed.len())
}

/// Crash, leak, timeout and OOM inputs libFuzzer wrote for `target` since `t`.
fn artifacts_since(target: &str, t: SystemTime) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("artifacts").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m >= t))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn plain_cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env("MAPAUDIT_SKIP_EBPF", "1");
    c
}

/// How to get a nightly compiler for cargo-fuzz.
enum Nightly {
    /// rustup's nightly: `cargo +nightly`.
    Rustup,
    /// The default toolchain with `RUSTC_BOOTSTRAP=1`.
    Bootstrap,
}

impl Nightly {
    fn detect() -> Self {
        let ok = Command::new("rustup")
            .args(["run", "nightly", "rustc", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok { Self::Rustup } else { Self::Bootstrap }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Rustup => "rustup's nightly toolchain",
            Self::Bootstrap => "the default toolchain and RUSTC_BOOTSTRAP=1 (no rustup nightly)",
        }
    }

    fn env(&self) -> &'static str {
        match self {
            Self::Rustup => "",
            Self::Bootstrap => "RUSTC_BOOTSTRAP=1 ",
        }
    }

    fn plus(&self) -> &'static str {
        match self {
            Self::Rustup => "+nightly ",
            Self::Bootstrap => "",
        }
    }

    /// AddressSanitizer with a real nightly; none otherwise, as a stable
    /// toolchain (Debian's, say) may lack its runtime. The parsers are safe
    /// Rust: panics, overflows and runaway allocations are what is caught.
    fn sanitizer(&self) -> &'static [&'static str] {
        match self {
            Self::Rustup => &[],
            Self::Bootstrap => &["--sanitizer", "none"],
        }
    }

    fn cargo(&self) -> Command {
        match self {
            Self::Rustup => {
                // Drop what the outer (stable) cargo exported so nothing
                // pins the toolchain back.
                let mut c = Command::new("rustup");
                c.args(["run", "nightly", "cargo"])
                    .env_remove("RUSTC")
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .env_remove("CARGO");
                c
            }
            Self::Bootstrap => {
                let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                c.env("RUSTC_BOOTSTRAP", "1");
                c
            }
        }
    }
}

fn cargo_fuzz_present() -> bool {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if cargo_fuzz_present() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (crates.io)");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["install", "--locked", "cargo-fuzz"]);
    status(c)
}

/// The Go toolchains of the base binaries (oldest and newest), as
/// `cargo xtask setup` installs them; without root too.
fn ensure_go() -> anyhow::Result<()> {
    let versions = crate::setup::go_versions()?;
    let ends: Vec<&String> = [versions.first(), versions.last()].into_iter().flatten().collect();
    crate::setup::install_go(&ends)
}
