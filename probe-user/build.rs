//! Builds the eBPF object (`probe-ebpf`, target `bpfel-unknown-none`) so that
//! a plain `cargo build` produces one self-contained `mapaudit` with the
//! object embedded. Two toolchains work (see README "Building"):
//! (a) rustup nightly with `rust-src` and `bpf-linker`;
//! (b) Debian's `rustc-web` + `rust-web-src` + `bpf-linker` built for LLVM 22.
//! `cargo xtask setup` provisions (b) when neither is present.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

const SKIP: &str = "MAPAUDIT_SKIP_EBPF";

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.parent().context("workspace root")?.to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let obj = out.join("probe-ebpf.o");
    for dir in ["probe-ebpf/src", "probe-ebpf/Cargo.toml", "probe-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed={SKIP}");
    build_info(&root)?;

    if env::var_os(SKIP).is_some_and(|v| v == "1") {
        // For hosts that only run the parsers' tests: mapaudit built this way
        // refuses to attach and says how to build it properly.
        println!("cargo:warning={SKIP}=1: building without the eBPF object");
        std::fs::write(&obj, b"")?;
        return Ok(());
    }

    // The probe reads Go's registers from the kernel's pt_regs, whose layout
    // is the CPU's: build the object for the architecture mapaudit targets.
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    if !["x86_64", "aarch64"].contains(&arch.as_str()) {
        bail!("mapaudit's probe supports x86_64 and aarch64, not {arch}");
    }
    let target_arch = format!("--cfg=bpf_target_arch=\"{arch}\"");
    let mut cmd = toolchain_command()?;
    cmd.current_dir(root.join("probe-ebpf"))
        .args(["build", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(out.join("ebpf-target"))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [target_arch.as_str(), "-Cdebuginfo=2", "-Clink-arg=--btf"].join("\x1f"),
        );
    if let Some(home) = cargo_home() {
        // bpf-linker is usually installed by `cargo install`.
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![home.join("bin")];
        paths.extend(env::split_paths(&path));
        cmd.env("PATH", env::join_paths(paths)?);
    }
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!(
            "building the eBPF object failed ({status}); run `cargo xtask setup` to provision the \
             eBPF toolchain, or set {SKIP}=1 to build without it"
        );
    }
    let built = out.join("ebpf-target/bpfel-unknown-none/release/probe-ebpf");
    std::fs::copy(&built, &obj).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

/// What `mapaudit --version` reports besides the version: the commit it was
/// built from and the Go versions its tests run against.
fn build_info(root: &Path) -> anyhow::Result<()> {
    println!("cargo:rustc-env=MAPAUDIT_GIT_COMMIT={}", git_commit(root));
    // The Go matrix is the one list the tests use; --version must not drift from it.
    let list = root.join("fixtures/go-versions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let text = std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
    let versions: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let (Some(oldest), Some(newest)) = (versions.first(), versions.last()) else {
        bail!("{} lists no Go version", list.display());
    };
    println!("cargo:rustc-env=MAPAUDIT_GO_TESTED={oldest} … {newest}");
    Ok(())
}

/// The commit being built: `$MAPAUDIT_GIT_COMMIT` (for builds from a source
/// tarball whose commit is known), else git's, else "unknown" (a tarball
/// without `.git`, or no git installed).
fn git_commit(root: &Path) -> String {
    println!("cargo:rerun-if-env-changed=MAPAUDIT_GIT_COMMIT");
    if let Ok(c) = env::var("MAPAUDIT_GIT_COMMIT")
        && !c.trim().is_empty()
    {
        return c.trim().to_string();
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    // A source tarball unpacked inside some other git checkout must not
    // report that checkout's commit: the work tree has to be this workspace.
    let ours = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .is_some_and(|top| std::fs::canonicalize(root).is_ok_and(|r| r == top));
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let (true, Some(commit)) = (ours, commit) else {
        return "unknown".into();
    };
    // Rebuild when HEAD moves: HEAD itself (checkout) and the branch it
    // names (commit). Only existing files: a missing one would make cargo
    // rerun this script on every build.
    let mut watch = vec!["HEAD".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    watch.push("packed-refs".into());
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    commit
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

/// Picks the toolchain: Debian's (b) when its library source is installed,
/// else rustup's nightly (a) when it has rust-src.
fn toolchain_command() -> anyhow::Result<Command> {
    let clean = |program: &str| {
        let mut cmd = Command::new(program);
        // The outer cargo's settings describe the host build, not this one.
        for key in [
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTFLAGS",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_MAKEFLAGS",
        ] {
            cmd.env_remove(key);
        }
        cmd
    };
    let debian_src = Path::new("/usr/lib/rustlib/src/rust/library/core");
    if Path::new("/usr/bin/rustc").exists() && debian_src.exists() {
        let mut cmd = clean("/usr/bin/cargo");
        cmd.env("RUSTC", "/usr/bin/rustc").env("RUSTC_BOOTSTRAP", "1");
        return Ok(cmd);
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && sysroot.join("lib/rustlib/src/rust/library/core").exists()
    {
        let mut cmd = clean("rustup");
        cmd.args(["run", "nightly", "cargo"]);
        return Ok(cmd);
    }
    bail!(
        "no eBPF toolchain found: need rustup nightly with rust-src, or Debian's rustc-web + \
         rust-web-src (+ bpf-linker). Run `cargo xtask setup`, or see README \"Building\"; \
         set {SKIP}=1 to build without the eBPF object"
    )
}
