//! `cargo xtask dist`: what users install. Builds mapaudit (release, eBPF
//! object embedded), generates its man pages and completions from the clap
//! definitions (probe-user/examples/dist-docs.rs), packages it with cargo-deb,
//! and builds a static x86_64 musl binary in a tarball. `--check` then proves
//! the artifacts work: the package installs, its binary records a fixture
//! with exact counts (a root end-to-end test run against /usr/bin/mapaudit),
//! man renders the pages without warnings, lintian passes (allow-list:
//! probe-user/debian/lintian-overrides), bash completes subcommands and
//! `--fail-on` values, `dpkg -r` removes every file; and the static binary
//! is static and records the same fixture exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

use crate::{is_root, root, setup, status};

#[derive(clap::Args)]
pub struct DistArgs {
    /// After building, install the package and test everything (root; the
    /// package is removed again at the end, also when a check fails).
    #[arg(long)]
    check: bool,
}

const TARGET: &str = "x86_64-unknown-linux-musl";
const PACKAGE: &str = "mapaudit";
/// The root end-to-end test both binaries must pass: `record -- sh -c
/// 'fixture; true'`, the report's counts equal to the fixture's own.
const E2E_FILE: &str = "e2e";
const E2E_TEST: &str = "core::exact_counts_through_a_shell";

/// What `cargo metadata` says about the workspace and the package.
struct Meta {
    version: String,
    target_dir: PathBuf,
    maintainer: String,
}

struct Artifacts {
    deb: PathBuf,
    static_bin: PathBuf,
}

pub fn run(args: &DistArgs) -> anyhow::Result<()> {
    setup::ensure()?;
    setup::ensure_dist_tools()?;
    let meta = metadata()?;
    let art = build(&meta)?;
    if args.check {
        check(&meta, &art)?;
    }
    eprintln!("xtask: dist: {}\nxtask: dist: {}", art.deb.display(), art.static_bin.display());
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn metadata() -> anyhow::Result<Meta> {
    let out = cargo().args(["metadata", "--format-version", "1", "--no-deps"]).output().context("running cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let pkg = v["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "probe-user"))
        .context("cargo metadata has no probe-user package")?;
    let deb = &pkg["metadata"]["deb"];
    Ok(Meta {
        version: pkg["version"].as_str().context("probe-user has no version")?.to_string(),
        target_dir: PathBuf::from(v["target_directory"].as_str().context("no target_directory")?),
        maintainer: deb["maintainer"].as_str().context("probe-user has no package.metadata.deb.maintainer")?.to_string(),
    })
}

fn build(meta: &Meta) -> anyhow::Result<Artifacts> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "probe-user", "--bin", "mapaudit"]);
    status(c)?;
    // The package's generated inputs; probe-user's [package.metadata.deb]
    // names them under target/release/dist/.
    let gen_dir = meta.target_dir.join("release/dist");
    let _ = std::fs::remove_dir_all(&gen_dir);
    // The dev profile: `cargo xtask test` has built the example already (a
    // release build would rebuild probe-user with its dev-dependencies' features).
    let mut c = cargo();
    c.args(["run", "-p", "probe-user", "--example", "dist-docs", "--"]).arg(&gen_dir);
    status(c)?;
    write_changelog(meta, &gen_dir.join("changelog.Debian"))?;
    // Debian policy: man pages and changelogs compressed; -n: no name or
    // time stamp inside, so the same input gives the same package.
    let mut c = Command::new("gzip");
    c.args(["-9nf", "--"]).arg(gen_dir.join("changelog.Debian"));
    for e in std::fs::read_dir(gen_dir.join("man")).context("reading the generated man pages")? {
        c.arg(e?.path());
    }
    status(c)?;

    let out_dir = meta.target_dir.join("dist");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let deb = out_dir.join(format!("{PACKAGE}_{}-1_amd64.deb", meta.version));
    let mut c = cargo();
    c.args(["deb", "-p", "probe-user", "--no-build", "--output"]).arg(&deb);
    status(c)?;

    let static_bin = build_static(meta)?;
    tarball(meta, &static_bin, &gen_dir, &out_dir)?;
    Ok(Artifacts { deb, static_bin })
}

/// A Debian changelog entry for this build (lintian requires one): the
/// upstream commit it was built from, dated by that commit.
fn write_changelog(meta: &Meta, path: &Path) -> anyhow::Result<()> {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = match git(&["log", "-1", "--format=%aD"]) {
        Some(d) => d,
        None => {
            let out = Command::new("date").arg("-R").output().context("running date -R")?;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    let text = format!(
        "{PACKAGE} ({v}-1) unstable; urgency=medium\n\n  \
         * Upstream {v}, built by `cargo xtask dist` from commit {commit}.\n    \
         The upstream history is the project's git log.\n\n -- {m}  {date}\n",
        v = meta.version,
        m = meta.maintainer,
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// mapaudit for x86_64-unknown-linux-musl, statically linked. rustup's
/// toolchains here have no musl std, so std is rebuilt from source with
/// Debian's rustc-web (`-Zbuild-std`, the eBPF object's recipe), linked by
/// musl-gcc against musl's libc.a and LLVM's libunwind.a (what rustup's musl
/// target bundles as "self-contained"; see libunwind_for_musl).
fn build_static(meta: &Meta) -> anyhow::Result<PathBuf> {
    let dir = meta.target_dir.join("dist-musl");
    let link = dir.join("link");
    std::fs::create_dir_all(&link).with_context(|| format!("creating {}", link.display()))?;
    libunwind_for_musl(&link)?;
    let mut c = Command::new("/usr/bin/cargo");
    c.current_dir(root());
    for key in ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "RUSTUP_TOOLCHAIN", "CARGO_BUILD_TARGET"] {
        c.env_remove(key);
    }
    c.env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &dir)
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", musl_linker(&link)?)
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
            // -lgcc: mimalloc's C (mapaudit's allocator) calls libgcc's
            // helpers (`__popcountdi2`), which -nodefaultlibs leaves out;
            // static libgcc is under GCC's runtime library exception.
            format!("-C target-feature=+crt-static -C link-self-contained=no -L native={} -C link-arg=-lgcc", link.display()),
        )
        .args(["build", "--release", "-p", "probe-user", "--bin", "mapaudit", "--target", TARGET])
        .args(["-Z", "build-std=std,panic_abort"]);
    status(c)?;
    let bin = dir.join(TARGET).join("release/mapaudit");
    assert_static(&bin)?;
    Ok(bin)
}

/// A linker for `-static-pie` against musl. rustc links musl binaries as
/// static PIE (ASLR kept), but Debian's musl-gcc specs know no `-static-pie`:
/// they name the dynamic loader /lib/ld-musl-x86_64.so.1, which Debian does
/// not have, and the wrong start file. These specs are Debian's with the
/// static-pie cases added (rcrt1.o, no interpreter), as musl's own
/// musl-gcc.specs.sh has them.
fn musl_linker(link: &Path) -> anyhow::Result<PathBuf> {
    const DEBIAN_SPECS: &str = "/usr/lib/x86_64-linux-musl/musl-gcc.specs";
    let specs = std::fs::read_to_string(DEBIAN_SPECS).with_context(|| format!("reading {DEBIAN_SPECS}"))?;
    let startfile = "%{!shared: /usr/lib/x86_64-linux-musl/Scrt1.o}";
    let link_spec = "-dynamic-linker /lib/ld-musl-x86_64.so.1 -nostdlib";
    ensure!(
        specs.contains(startfile) && specs.contains(link_spec),
        "{DEBIAN_SPECS} is not the one this was written for; see xtask/src/dist.rs musl_linker"
    );
    let specs = specs
        .replace(startfile, "%{static-pie: /usr/lib/x86_64-linux-musl/rcrt1.o; !shared: /usr/lib/x86_64-linux-musl/Scrt1.o}")
        .replace(
            link_spec,
            "%{!static-pie:-dynamic-linker /lib/ld-musl-x86_64.so.1} -nostdlib \
             %{static-pie:-static -pie --no-dynamic-linker -z text}",
        );
    let specs_path = link.join("musl-static-pie.specs");
    std::fs::write(&specs_path, specs).with_context(|| format!("writing {}", specs_path.display()))?;
    let cc = link.join("musl-cc");
    let script = format!("#!/bin/sh\nexec \"${{REALGCC:-x86_64-linux-gnu-gcc}}\" \"$@\" -specs \"{}\"\n", specs_path.display());
    std::fs::write(&cc, script).with_context(|| format!("writing {}", cc.display()))?;
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(cc)
}

/// `link/libunwind.a` for the musl link: a copy of Debian's LLVM libunwind.a
/// (only it on the search path: LLVM's lib directory holds much else) plus
/// `__fprintf_chk`. Debian built that archive with _FORTIFY_SOURCE, so its
/// error messages call glibc's fortified fprintf, which musl does not have;
/// the shim forwards to vfprintf (the check it skips guards `%n` in
/// writable format strings, and libunwind's formats are literals).
fn libunwind_for_musl(link: &Path) -> anyhow::Result<()> {
    const SHIM: &str = "#include <stdarg.h>\n#include <stdio.h>\n\
        int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {\n\
        (void)flag; va_list ap; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r;\n}\n";
    let src = link.join("fortify_shim.c");
    let obj = link.join("fortify_shim.o");
    std::fs::write(&src, SHIM).with_context(|| format!("writing {}", src.display()))?;
    let mut c = Command::new("musl-gcc");
    c.args(["-O2", "-fPIE", "-c"]).arg(&src).arg("-o").arg(&obj);
    status(c)?;
    let unwind = link.join("libunwind.a");
    // Never write through an old symlink into the system's copy.
    let _ = std::fs::remove_file(&unwind);
    std::fs::copy(setup::LLVM_LIBUNWIND, &unwind).with_context(|| format!("copying {}", setup::LLVM_LIBUNWIND))?;
    let mut c = Command::new("ar");
    c.arg("rs").arg(&unwind).arg(&obj);
    status(c)
}

/// `mapaudit-VERSION-x86_64-linux-musl.tar.gz`: the static binary, its man
/// pages, completions, JSON Schema, README and licenses.
fn tarball(meta: &Meta, bin: &Path, gen_dir: &Path, out_dir: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("{PACKAGE}-{}-x86_64-linux-musl", meta.version);
    let stage = out_dir.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    for sub in ["", "man", "completions"] {
        std::fs::create_dir_all(stage.join(sub)).with_context(|| format!("creating {}", stage.display()))?;
    }
    let r = root();
    let mut copies: Vec<(PathBuf, PathBuf)> = vec![
        (bin.to_path_buf(), stage.join("mapaudit")),
        (r.join("README.md"), stage.join("README.md")),
        (r.join("LICENSE-MIT"), stage.join("LICENSE-MIT")),
        (r.join("LICENSE-APACHE"), stage.join("LICENSE-APACHE")),
        (r.join("probe-user/schema/mapaudit-v1.schema.json"), stage.join("mapaudit-v1.schema.json")),
    ];
    for sub in ["man", "completions"] {
        for e in std::fs::read_dir(gen_dir.join(sub)).with_context(|| format!("reading {}", gen_dir.join(sub).display()))? {
            let e = e?;
            copies.push((e.path(), stage.join(sub).join(e.file_name())));
        }
    }
    for (from, to) in copies {
        std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    let tar = out_dir.join(format!("{name}.tar.gz"));
    let mut c = Command::new("tar");
    c.arg("-C").arg(out_dir).args(["--owner=0", "--group=0", "-czf"]).arg(&tar).arg(&name);
    status(c)?;
    Ok(tar)
}

/// `file` says "static-pie linked" (static PIE: no interpreter, no shared
/// libraries, ASLR) or "statically linked"; and the ELF asks for no loader.
fn assert_static(bin: &Path) -> anyhow::Result<()> {
    let file = output(Command::new("file").arg(bin))?;
    ensure!(
        (file.contains("static-pie linked") || file.contains("statically linked")) && !file.contains("interpreter"),
        "{} is not statically linked: {file}",
        bin.display()
    );
    let headers = output(Command::new("readelf").args(["--program-headers", "--dynamic"]).arg(bin))?;
    ensure!(!headers.contains("INTERP") && !headers.contains("(NEEDED)"), "{} needs a loader or libraries:\n{headers}", bin.display());
    eprintln!("xtask: dist: {}", file.trim());
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(meta: &Meta, art: &Artifacts) -> anyhow::Result<()> {
    if !is_root() {
        bail!("`cargo xtask dist --check` installs the package and runs root end-to-end tests: run it as root");
    }
    lintian(&art.deb)?;
    let installed = Path::new("/usr/bin/mapaudit");
    let owner = Command::new("dpkg").args(["-S", "/usr/bin/mapaudit"]).output().context("running dpkg -S")?;
    if installed.exists() && !owner.status.success() {
        bail!("/usr/bin/mapaudit exists and belongs to no package; not overwriting it");
    }
    let mut c = Command::new("dpkg");
    c.arg("-i").arg(&art.deb);
    status(c)?;
    // Whatever fails, the package does not stay installed.
    let result = check_installed(meta);
    let removed = check_removal();
    result.and(removed)?;

    eprintln!("xtask: dist: the static binary records a fixture exactly");
    assert_static(&art.static_bin)?;
    e2e(&art.static_bin)?;
    eprintln!("xtask: dist: all checks passed");
    Ok(())
}

fn lintian(deb: &Path) -> anyhow::Result<()> {
    // Overrides (the allow-list) ship in the package; every other error,
    // warning or info tag fails. (--show-overrides would make the
    // overridden tags fail too.)
    let mut c = Command::new("lintian");
    c.args(["--fail-on", "error,warning,info", "--display-info"]).arg(deb);
    status(c)
}

fn check_installed(meta: &Meta) -> anyhow::Result<()> {
    let bin = Path::new("/usr/bin/mapaudit");
    let version = output(Command::new(bin).arg("--version"))?;
    eprintln!("xtask: dist: /usr/bin/mapaudit --version:\n{version}");
    ensure!(version.starts_with(&format!("mapaudit {}\ncommit: ", meta.version)), "unexpected --version output: {version}");
    let files = output(Command::new("dpkg").args(["-L", PACKAGE]))?;
    for want in [
        "/usr/share/mapaudit/mapaudit-v1.schema.json",
        "/usr/share/man/man1/mapaudit.1.gz",
        "/usr/share/man/man1/mapaudit-record.1.gz",
        "/usr/share/zsh/vendor-completions/_mapaudit",
        "/usr/share/fish/vendor_completions.d/mapaudit.fish",
        "/usr/share/doc/mapaudit/README.Debian",
    ] {
        ensure!(files.lines().any(|l| l == want), "the package does not install {want}");
    }
    // No capabilities granted silently.
    let caps = output(Command::new("getcap").arg(bin)).unwrap_or_default();
    ensure!(caps.trim().is_empty(), "/usr/bin/mapaudit has file capabilities nobody asked for: {caps}");

    eprintln!("xtask: dist: the installed binary records a fixture exactly");
    e2e(bin)?;
    man_pages()?;
    bash_completion()?;
    Ok(())
}

/// Runs the exact-count root end-to-end test against `bin`, and proves it ran
/// (the test records `module::name` in target/e2e-tests-ran.txt when it runs).
fn e2e(bin: &Path) -> anyhow::Result<()> {
    let marker = root().join("target/e2e-tests-ran.txt");
    let count = || std::fs::read_to_string(&marker).unwrap_or_default().lines().filter(|l| l.trim() == E2E_TEST).count();
    let before = count();
    let mut c = cargo();
    // `cargo xtask test`'s feature set and profile, so its test build is reused.
    c.env("MAPAUDIT_REQUIRE_ROOT_TESTS", "1")
        .env("MAPAUDIT_BIN", bin)
        .args(["test", "--workspace", "--exclude", "probe-ebpf", "--test", E2E_FILE, "--", "--exact", E2E_TEST, "--test-threads=1"]);
    status(c)?;
    ensure!(count() == before + 1, "{E2E_FILE} {E2E_TEST} did not run against {}", bin.display());
    Ok(())
}

/// `man -l` renders each page with groff's warnings on; any warning fails.
fn man_pages() -> anyhow::Result<()> {
    for page in ["mapaudit", "mapaudit-record", "mapaudit-top", "mapaudit-check"] {
        let path = format!("/usr/share/man/man1/{page}.1.gz");
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .with_context(|| format!("running man -l {path}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success() && stderr.trim().is_empty(), "man -l {path}: {}\n{stderr}", out.status);
        ensure!(stdout.contains("SYNOPSIS") && stdout.contains("EXAMPLES"), "man -l {path} lacks SYNOPSIS or EXAMPLES:\n{stdout}");
        eprintln!("xtask: dist: man -l {path}: {} lines, no warnings", stdout.lines().count());
    }
    Ok(())
}

/// Sources the installed bash completion and calls its function the way
/// bash's programmable completion does (COMP_WORDS, COMP_CWORD).
fn bash_completion() -> anyhow::Result<()> {
    let script = r#"
        source /usr/share/bash-completion/completions/mapaudit
        complete_at() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE};
                        COMPREPLY=(); _mapaudit mapaudit "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}";
                        echo "${COMPREPLY[*]}"; }
        complete_at mapaudit ''
        complete_at mapaudit re
        complete_at mapaudit check r.json --fail-on ''
        complete_at mapaudit record --fail-on s
    "#;
    let out = output(Command::new("bash").args(["--norc", "--noprofile", "-c", script]))?;
    let lines: Vec<&str> = out.lines().collect();
    let words = |i: usize| lines.get(i).map(|l| l.split_whitespace().collect::<Vec<_>>()).unwrap_or_default();
    let subs = words(0);
    for want in ["top", "record", "check"] {
        ensure!(subs.contains(&want), "bash completion of `mapaudit ` lacks {want}: {subs:?}");
    }
    ensure!(words(1) == ["record"], "bash completion of `mapaudit re` is {:?}, not [\"record\"]", words(1));
    ensure!(
        words(2) == ["overlap", "shared-map", "read-during-write", "iterate-during-write", "growing-map"],
        "bash completion of `--fail-on ` is {:?}",
        words(2)
    );
    ensure!(words(3) == ["shared-map"], "bash completion of `--fail-on s` is {:?}", words(3));
    eprintln!("xtask: dist: bash completes subcommands ({}) and --fail-on values ({})", subs.join(" "), words(2).join(" "));
    Ok(())
}

/// `dpkg -r` and then: the package is gone and so is every file it listed
/// (directories other packages share, like /usr/share/man/man1, stay).
fn check_removal() -> anyhow::Result<()> {
    let listed = output(Command::new("dpkg").args(["-L", PACKAGE]))?;
    let mut c = Command::new("dpkg");
    c.args(["-r", PACKAGE]);
    status(c)?;
    let left: Vec<&str> = listed.lines().filter(|p| Path::new(p).is_file() || Path::new(p).is_symlink()).collect();
    ensure!(left.is_empty(), "dpkg -r {PACKAGE} left files behind: {left:?}");
    let own_dirs = ["/usr/share/mapaudit", "/usr/share/doc/mapaudit"];
    for d in own_dirs {
        ensure!(!Path::new(d).exists(), "dpkg -r {PACKAGE} left {d} behind");
    }
    let st = Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", PACKAGE]).output().context("running dpkg-query")?;
    let state = String::from_utf8_lossy(&st.stdout);
    ensure!(!st.status.success() || state.trim() == "not-installed", "after dpkg -r, {PACKAGE} is {state}");
    eprintln!("xtask: dist: dpkg -r removed all {} paths it installed", listed.lines().filter(|l| !l.is_empty()).count());
    Ok(())
}
