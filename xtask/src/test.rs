//! `cargo xtask test`: every test of the workspace, the root end-to-end
//! tests included, against the release mapaudit (the binary that ships),
//! and the root gate.
//!
//! The gate: every test of the end-to-end binary (`probe-user/tests/e2e`)
//! records its name when it runs (its `root_test!`/`user_test!` macros;
//! a root test that skips records nothing). After the run, every test that
//! binary lists under the same filters must be in the record: a skipped
//! root test, a test declared without the macros, or an empty selection
//! fails the run. A filter that matches no test of the workspace fails
//! before anything runs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{cargo, is_root, root, setup, status};

/// Written by the end-to-end tests (`support::gate::RAN_FILE`, same path).
const RAN_FILE: &str = "target/e2e-tests-ran.txt";

/// `cargo test` over the workspace (probe-ebpf only builds for BPF).
fn workspace_tests() -> std::process::Command {
    let mut c = cargo();
    c.args(["test", "--workspace", "--exclude", "probe-ebpf"]);
    c
}

pub fn run(filters: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the end-to-end tests load eBPF programs and need root: run `sudo -E cargo xtask test` \
             (plain `cargo test` runs the non-root tests only)"
        );
    }
    setup::ensure()?;
    crate::build()?;

    // Whatever the filters select must exist.
    let mut c = workspace_tests();
    c.args(["--", "--list", "--format", "terse"]).args(filters);
    let listed = listed_tests(c)?;
    if listed.is_empty() {
        bail!("no test matches {filters:?}: refusing to call an empty run green");
    }
    let e2e = e2e_binary()?;
    let mut c = std::process::Command::new(&e2e);
    c.args(["--list", "--format", "terse"]).args(filters);
    let mut expected = listed_tests(c)?;
    // `#[ignore = "why"]` is the one declared way not to run: libtest says
    // so in the run's output, with the reason.
    let mut c = std::process::Command::new(&e2e);
    c.args(["--list", "--format", "terse", "--ignored"]).args(filters);
    let ignored = listed_tests(c)?;
    expected.retain(|t| !ignored.contains(t));
    if !ignored.is_empty() {
        eprintln!("xtask: ignored, with their reasons in the output: {}", ignored.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    if filters.is_empty() && expected.is_empty() {
        bail!("{} lists no end-to-end test", e2e.display());
    }

    let ran_file = root().join(RAN_FILE);
    let _ = std::fs::remove_file(&ran_file);
    // Root tests must run, not skip: MAPAUDIT_REQUIRE_ROOT_TESTS turns a
    // skip into a failure. One test thread: root tests share the kernel's
    // probes. The end-to-end tests run the release mapaudit just built.
    let mut c = workspace_tests();
    c.env("MAPAUDIT_REQUIRE_ROOT_TESTS", "1")
        .env("MAPAUDIT_BIN", root().join("target/release/mapaudit"))
        .args(["--no-fail-fast", "--", "--test-threads=1"])
        .args(filters);
    let result = status(c);

    let ran: BTreeSet<String> =
        std::fs::read_to_string(&ran_file).unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let missing: Vec<&String> = expected.iter().filter(|t| !ran.contains(*t)).collect();
    result?;
    if !missing.is_empty() {
        bail!(
            "{} of {} end-to-end tests did not run (skipped, or declared without root_test!/user_test!):\n  {}",
            missing.len(),
            expected.len(),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
    eprintln!("xtask: {} tests selected; all {} end-to-end tests among them ran", listed.len(), expected.len());
    Ok(())
}

/// The names a test binary (or `cargo test`) prints for `--list --format
/// terse` (`name: test`).
fn listed_tests(mut c: std::process::Command) -> anyhow::Result<BTreeSet<String>> {
    eprintln!("xtask: listing {c:?}");
    // Compiler progress stays visible; only the list is read.
    let out = c.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_suffix(": test")).map(String::from).collect())
}

/// The end-to-end test binary, as `cargo test` builds it.
fn e2e_binary() -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args(["test", "-p", "probe-user", "--test", "e2e", "--no-run", "--message-format=json"]);
    let out = c.output().with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "e2e")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no e2e test executable")
}
