//! arm64: `cargo xtask build --target aarch64-unknown-linux-gnu` (a
//! cross-built mapaudit with its eBPF object) and `cargo xtask test-arm64`:
//! the root end-to-end tests in an emulated arm64 machine.
//!
//! The machine: QEMU's `virt` board under TCG (no KVM for arm64 on amd64
//! hosts), Debian's arm64 kernel (pinned below: UPROBES, BPF_SYSCALL,
//! BPF_EVENTS and BTF built in; virtio, 9p as modules, loaded from a small
//! initramfs), and a userland of Debian arm64 packages extracted into
//! `target/arm64/rootfs`, shared over 9p. The workspace is shared at the same
//! path, because the test binary embeds absolute paths (its manifest dir,
//! the fixtures). Inside, the cross-built e2e test binary runs the selected
//! modules against the cross-built mapaudit and the fixtures built here for
//! arm64; its libtest output comes back through the shared workspace and is
//! reported per test. Downloads are cached under `target/arm64/debs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fixtures::Variant;

use crate::{cargo, is_root, root, setup, status};

pub const TARGET: &str = "aarch64-unknown-linux-gnu";
const LINKER: &str = "aarch64-linux-gnu-gcc";
/// The kernel `linux-image-arm64` depended on when this was verified,
/// pinned by name (a glob would download every kernel).
const KERNEL: &str = "6.1.0-57-arm64";
/// The guest's userland: busybox for the init and the shell, glibc for
/// mapaudit and the test binary, coreutils, tmux and libcap2-bin for the tests
/// that use them, bpftool (with its libraries) for the bpf(2) tests.
const GUEST_PACKAGES: &[&str] = &[
    "busybox-static", "libc6", "libgcc-s1", "coreutils", "libacl1", "libattr1", "libgmp10", "libselinux1",
    "libpcre2-8-0", "libssl3", "libcap2", "libcap2-bin", "tmux", "libevent-core-2.1-7", "libtinfo6",
    "libutempter0", "libncursesw6", "bpftool", "libelf1", "zlib1g",
];
/// Host packages: the cross linker, the emulator, cpio and kmod (depmod,
/// modprobe) for the initramfs.
const HOST_PACKAGES: &[(&str, &str)] =
    &[("gcc-aarch64-linux-gnu", LINKER), ("qemu-system-arm", "qemu-system-aarch64"), ("cpio", "cpio"), ("kmod", "depmod")];
/// Modules the initramfs loads (with what they depend on): the 9p shares.
const MODULES: &[&str] = &["virtio_pci", "virtio_mmio", "9pnet_virtio", "9p"];

/// End-to-end modules run on arm64 (`--skip` below takes tests out of them).
/// `churn::` passes there too when asked for (`cargo xtask test-arm64 --
/// churn::`: 3 of 3, 158 s in the machine), but is not yet in CI's run.
const MODULES_RUN: &[&str] = &["core::", "findings::", "reads::", "bpfmaps::", "bpfkernel::", "lifecycle::"];
/// Tests not run on arm64, each with why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "core::exact_counts_wild_builds_oldest_and_newest",
        "its cgo and external-linker fixtures need a C toolchain targeting arm64 at fixture build time",
    ),
    ("budget::", "timing: emulation makes probe cost and duty cycles meaningless"),
    ("soak::", "timing and a minute of native work (hours under TCG)"),
];
/// `--exec-stop-timeout` for the tests' `record -- CMD` runs in the machine
/// (the end-to-end support's `EXEC_STOP_TIMEOUT_ENV`; tests about the
/// deadline set their own): attaching under emulation on a loaded host
/// outlasted the 1 s default once, and the watchdog resumed the program
/// unaudited, losing an overlap finding. The deadline is a safety net for a
/// stuck mapaudit, not what those tests prove.
const EXEC_STOP_TIMEOUT: &str = "30s";
const EXEC_STOP_TIMEOUT_ENV: &str = "MAPAUDIT_E2E_EXEC_STOP_TIMEOUT";
/// How long the whole run in the machine may take before it counts as hung.
const GUEST_TIMEOUT: Duration = Duration::from_secs(45 * 60);

fn dir() -> PathBuf {
    root().join("target/arm64")
}

/// Cross toolchain: rustup's std for the target and Debian's linker.
fn ensure_toolchain() -> anyhow::Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES.iter().filter(|(_, cmd)| !setup::have(cmd)).map(|(p, _)| *p).collect();
    if !missing.is_empty() {
        if !(is_root() && setup::apt_available()) {
            bail!("arm64 builds need, as root on Debian: apt-get install -y {}", missing.join(" "));
        }
        setup::apt_install(&missing)?;
    }
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => {
            let mut c = Command::new("rustup");
            c.args(["target", "add", TARGET]);
            status(c)
        }
        Err(_) => debian_std(),
    }
}

/// No rustup (CI on a fresh Debian 12 runs Debian's `rustc-web`): Debian's
/// std for arm64, `libstd-rust-web-dev:arm64` (Multi-Arch: same, so apt
/// installs it at exactly the host compiler's version) under the compiler's
/// sysroot.
fn debian_std() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).join("lib").is_dir() {
        return Ok(());
    }
    if !(is_root() && setup::apt_available() && sysroot == Path::new("/usr")) {
        bail!(
            "arm64 builds need std for {TARGET}: `rustup target add {TARGET}`, or with Debian's rustc-web \
             (as root) `dpkg --add-architecture arm64 && apt-get update && apt-get install libstd-rust-web-dev:arm64`"
        );
    }
    add_arm64_architecture()?;
    setup::apt_install(&["libstd-rust-web-dev:arm64"])
}

/// `dpkg --add-architecture arm64` (and the package lists it brings), once.
fn add_arm64_architecture() -> anyhow::Result<()> {
    let foreign = Command::new("dpkg").arg("--print-foreign-architectures").output().context("running dpkg")?;
    if String::from_utf8_lossy(&foreign.stdout).lines().any(|l| l.trim() == "arm64") {
        return Ok(());
    }
    if !is_root() {
        bail!("the arm64 machine's packages need `dpkg --add-architecture arm64 && apt-get update` (as root)");
    }
    let mut c = Command::new("dpkg");
    c.args(["--add-architecture", "arm64"]);
    status(c)?;
    let mut c = Command::new("apt-get");
    c.arg("update");
    status(c)
}

fn cross(mut c: Command) -> Command {
    c.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", LINKER).env("CC_aarch64_unknown_linux_gnu", LINKER);
    c
}

/// `cargo xtask build --target aarch64-unknown-linux-gnu`: the arm64
/// mapaudit, with its eBPF object built for arm64's registers, at
/// `target/aarch64-unknown-linux-gnu/release/mapaudit`.
pub fn build() -> anyhow::Result<PathBuf> {
    setup::ensure()?;
    ensure_toolchain()?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "probe-user", "--target", TARGET]);
    status(cross(c))?;
    let bin = root().join("target").join(TARGET).join("release/mapaudit");
    eprintln!("xtask: built {}", bin.display());
    Ok(bin)
}

/// The end-to-end test binary and the mapaudit it runs, cross-built by one
/// cargo command. `cargo test` builds the package's binaries for its
/// integration tests with the dev-dependencies' features unified in (a
/// plain `cargo build` after or before it rebuilds ~75 crates: ~5 min of a
/// cold run on 2 cores), so the tests run the `mapaudit` it built — the one
/// at `target/aarch64-unknown-linux-gnu/release/mapaudit`, as on amd64,
/// where `cargo test` rebuilds the binary at the same path the same way.
fn cross_build_tests() -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut c = cross(cargo());
    c.args(["test", "--release", "-p", "probe-user", "--test", "e2e", "--no-run", "--message-format=json", "--target", TARGET]);
    c.stderr(std::process::Stdio::inherit());
    eprintln!("xtask: running {c:?}");
    let out = c.output().with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}", out.status);
    }
    let artifacts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .collect();
    let executable = |kind: &str, name: &str| {
        artifacts
            .iter()
            .filter(|m| m["target"]["name"] == name && m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == kind)))
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .with_context(|| format!("cargo built no {kind} {name} for arm64"))
    };
    Ok((executable("bin", "mapaudit")?, executable("test", "e2e")?))
}

/// The fixtures the modules run here use (and no others: each Go version's
/// first arm64 build compiles its runtime, the bulk of a cold run's fixture
/// time), built for arm64 on the host (the Go toolchains are amd64
/// programs); the tests in the machine only find them, and one missing is
/// an error that names it (`fixtures::PREBUILT_ONLY`).
fn build_fixtures() -> anyhow::Result<()> {
    let (oldest, newest) = (fixtures::GO_OLDEST, fixtures::GO_NEWEST);
    let mut builds: Vec<(&str, &str, Variant)> = Vec::new();
    // Every Go: the plain matrix (core), totals (core), overlap (findings), reads.
    for v in fixtures::GO_VERSIONS {
        for name in ["writers", "readers", "exact", "overlapmode"] {
            builds.push((name, v, Variant::Plain));
        }
    }
    // Oldest and newest: PIE and stripped (core), read during write (reads).
    for v in [oldest, newest] {
        for variant in [Variant::Pie, Variant::Stripped, Variant::PieStripped] {
            builds.push(("writers", v, variant));
        }
        builds.push(("racy", v, Variant::Plain));
    }
    builds.push(("readers", newest, Variant::PieStripped));
    // Two programs in one shell (core).
    builds.push(("bench", oldest, Variant::Plain));
    // bpf(2) writers (bpfmaps, bpfkernel).
    for name in ["bpfwriter", "bpfreuse"] {
        builds.push((name, newest, Variant::Plain));
    }
    let t = Instant::now();
    // One `go build` per CPU at a time: each links alone for a good part of
    // its run (builds of one fixture share Go's build cache; outputs are
    // renamed into place, so parallel builds never see half a file).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(builds.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    while let Some((name, version, variant)) = builds.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        fixtures::build_for("arm64", name, version, *variant)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a fixture build thread panicked"))?)
    })?;
    eprintln!("xtask: {} arm64 fixtures ready in {:.0?} ({workers} at a time)", builds.len(), t.elapsed());
    Ok(())
}

/// Downloads (once) and extracts (once) the guest's packages and kernel.
fn provision_guest() -> anyhow::Result<(PathBuf, PathBuf)> {
    let debs = dir().join("debs");
    std::fs::create_dir_all(&debs)?;
    add_arm64_architecture()?;
    let kernel_pkg = format!("linux-image-{KERNEL}");
    let wanted: Vec<String> = GUEST_PACKAGES.iter().map(|p| p.to_string()).chain([kernel_pkg.clone()]).collect();
    let have = |p: &str| {
        std::fs::read_dir(&debs)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{p}_"))))
            .unwrap_or(false)
    };
    let missing: Vec<String> = wanted.iter().filter(|p| !have(p)).map(|p| format!("{p}:arm64")).collect();
    if !missing.is_empty() {
        let mut c = Command::new("apt-get");
        c.arg("download").args(&missing).current_dir(&debs);
        status(c)?;
    }
    let rootfs = dir().join("rootfs");
    let kernel = dir().join("kernel");
    let extract = |pkg: &str, into: &Path| -> anyhow::Result<()> {
        let stamp = into.join(format!(".extracted-{pkg}"));
        if stamp.exists() {
            return Ok(());
        }
        let deb = std::fs::read_dir(&debs)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_"))))
            .with_context(|| format!("no {pkg} package in {}", debs.display()))?;
        let mut c = Command::new("dpkg-deb");
        c.arg("-x").arg(&deb).arg(into);
        status(c)?;
        std::fs::write(stamp, "")?;
        Ok(())
    };
    std::fs::create_dir_all(&rootfs)?;
    std::fs::create_dir_all(&kernel)?;
    for p in GUEST_PACKAGES {
        extract(p, &rootfs)?;
    }
    extract(&kernel_pkg, &kernel)?;
    // Tests run `/bin/sh` (Debian's dash is left out: busybox is the shell).
    let sh = rootfs.join("bin/sh");
    if std::fs::symlink_metadata(&sh).is_err() {
        std::os::unix::fs::symlink("busybox", &sh).context("linking /bin/sh to busybox")?;
    }
    Ok((rootfs, kernel))
}

/// The initramfs: busybox, the 9p modules in load order and `/init`, which
/// mounts the shares and runs the tests' script in the shared userland. It
/// switches root (a chroot would leave the initramfs as every mount
/// namespace's root: a process in a new one would see its files under
/// `/newroot`, e.g. in `/proc/PID/exe`).
fn initramfs(rootfs: &Path, kernel: &Path, script: &Path) -> anyhow::Result<PathBuf> {
    let ws = root();
    let initrd = dir().join("initrd.gz");
    let tree = dir().join("initramfs");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("bin"))?;
    std::fs::create_dir_all(tree.join("modules"))?;
    std::fs::copy(rootfs.join("bin/busybox"), tree.join("bin/busybox")).context("copying busybox")?;
    let mut c = Command::new("depmod");
    c.arg("-b").arg(kernel).arg(KERNEL);
    status(c)?;
    let mut order = Vec::new();
    for m in MODULES {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(kernel)
            .args(["-S", KERNEL, "--show-depends", m])
            .output()
            .context("running modprobe")?;
        if !out.status.success() {
            bail!("modprobe --show-depends {m} for {KERNEL}: {}", String::from_utf8_lossy(&out.stderr));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = path.trim();
                let name = Path::new(path).file_name().context("module name")?.to_string_lossy().to_string();
                if !order.contains(&name) {
                    std::fs::copy(path, tree.join("modules").join(&name)).with_context(|| format!("copying {path}"))?;
                    order.push(name);
                }
            }
        }
    }
    let inserts: String = order.iter().map(|m| format!("/bin/busybox insmod /modules/{m} || fail 'insmod {m}'\n")).collect();
    let ws = ws.display();
    let init = format!(
        r#"#!/bin/busybox sh
fail() {{ echo "mapaudit-arm64: boot failed: $1"; /bin/busybox poweroff -f; }}
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
# Loopback, for the tests whose fixtures talk HTTP to themselves.
/bin/busybox ip link set lo up || fail 'bringing up the loopback interface'
{inserts}o=trans=virtio,version=9p2000.L,msize=524288,cache=loose
/bin/busybox mount -t 9p -o $o rootfs /newroot || fail 'mounting the userland'
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/root /newroot/bb
/bin/busybox mount --move /proc /newroot/proc
/bin/busybox mount --move /sys /newroot/sys
/bin/busybox mount --move /dev /newroot/dev
/bin/busybox mount -t tmpfs tmp /newroot/tmp
/bin/busybox mount -t tmpfs root /newroot/root
/bin/busybox mount -t tmpfs bb /newroot/bb
# The workspace after the tmpfs mounts: a clone under /tmp or /root would
# be hidden by them otherwise.
/bin/busybox mkdir -p /newroot{ws}
/bin/busybox mount -t 9p -o $o workspace /newroot{ws} || fail 'mounting the workspace'
# The tests' scratch directories (reports, renamed into place by mapaudit and
# read by the tests) in the machine's memory: over the 9p share with
# cache=loose a report renamed into place was once not found by the reader.
/bin/busybox mkdir -p /newroot{ws}/target/e2e
/bin/busybox mount -t tmpfs e2e /newroot{ws}/target/e2e
echo "mapaudit-arm64: booted"
exec /bin/busybox switch_root /newroot /bin/busybox sh {script}
"#,
        script = script.display()
    );
    std::fs::write(tree.join("init"), init)?;
    let mut perms = std::fs::metadata(tree.join("init"))?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(tree.join("init"), perms)?;
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'", tree.display(), initrd.display()));
    status(c)?;
    Ok(initrd)
}

/// How long each stage of `test-arm64` took, printed at the end (the CI
/// budget is spent here: see the README's arm64 section).
#[derive(Default)]
struct Stages(Vec<(&'static str, Duration)>);

impl Stages {
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let t = Instant::now();
        let r = f();
        self.0.push((name, t.elapsed()));
        r
    }

    fn summary(&self) -> String {
        self.0.iter().map(|(n, d)| format!("{n} {:.0}s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    }
}

/// `cargo xtask test-arm64 [-- FILTERS]`.
pub fn test(filters: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("`cargo xtask test-arm64` provisions packages and shares the workspace as root: run it with sudo -E");
    }
    let started = Instant::now();
    let mut stages = Stages::default();
    // Packages first, one apt at a time (the guest's downloads below run
    // while cargo builds, and apt allows one install at a time).
    stages.time("toolchain", || {
        setup::ensure()?;
        ensure_toolchain()
    })?;
    // The guest's packages (network, dpkg-deb) and the Go fixtures run in a
    // second thread while cargo cross-builds: cargo leaves CPUs idle in its
    // serial stretches (the big crates, the links) and the downloads wait on
    // the network, so overlapping them saves most of the shorter one.
    let (cross_built, side) = std::thread::scope(|s| {
        let side = s.spawn(|| -> anyhow::Result<((PathBuf, PathBuf), Stages)> {
            let mut st = Stages::default();
            let guest = st.time("guest packages", provision_guest)?;
            st.time("arm64 fixtures", build_fixtures)?;
            Ok((guest, st))
        });
        let mut st = Stages::default();
        let built = st.time("cross-build mapaudit and the e2e tests", cross_build_tests);
        let side = side.join().map_err(|_| anyhow::anyhow!("the guest provisioning thread panicked")).and_then(|r| r);
        (built.map(|b| (b, st)), side)
    });
    let ((mapaudit, e2e), st) = cross_built?;
    let ((rootfs, kernel), side) = side?;
    stages.0.extend(st.0);
    stages.0.extend(side.0);
    let prepared = started.elapsed();

    let out_file = dir().join("e2e-output.txt");
    let status_file = dir().join("e2e-status");
    let script = dir().join("run-tests.sh");
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&status_file);
    let filters: Vec<String> = if filters.is_empty() { MODULES_RUN.iter().map(|s| s.to_string()).collect() } else { filters.to_vec() };
    let skips: String = SKIPPED.iter().map(|(t, _)| format!(" --skip {t}")).collect();
    let ws = root();
    let run = format!(
        r#"/bin/busybox --install -s /bb
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/bb HOME=/root TMPDIR=/tmp TERM=xterm LANG=C.UTF-8
export MAPAUDIT_REQUIRE_ROOT_TESTS=1 MAPAUDIT_BIN={mapaudit} {prebuilt}=1 {exec_stop}={EXEC_STOP_TIMEOUT}
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
echo "mapaudit-arm64: running tests on $(uname -m), kernel $(uname -r)"
cd {pkg}
{e2e} --test-threads=1 {filters}{skips} > {out}.part 2>&1
echo $? > {status}.part
mv {out}.part {out}; mv {status}.part {status}
sync
poweroff -f
"#,
        mapaudit = mapaudit.display(),
        prebuilt = fixtures::PREBUILT_ONLY,
        exec_stop = EXEC_STOP_TIMEOUT_ENV,
        pkg = ws.join("probe-user").display(),
        e2e = e2e.display(),
        filters = filters.join(" "),
        out = out_file.display(),
        status = status_file.display(),
    );
    std::fs::write(&script, run)?;
    let initrd = stages.time("initramfs", || initramfs(&rootfs, &kernel, &script))?;

    let console = dir().join("console.log");
    let log = std::fs::File::create(&console)?;
    let mut qemu = Command::new("qemu-system-aarch64");
    // Two vCPUs, each on its own host thread (MTTCG): the tests' targets are
    // multi-threaded Go programs and the overlap tests need two writers
    // running at once.
    qemu.args(["-M", "virt", "-accel", "tcg,thread=multi", "-cpu", "max,pauth-impdef=on", "-smp", "2", "-m", "3072"])
        .args(["-nographic", "-nic", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel.join(format!("boot/vmlinuz-{KERNEL}")))
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyAMA0 panic=-1 quiet"])
        .arg("-virtfs")
        .arg(format!("local,path={},mount_tag=rootfs,security_model=passthrough,id=rootfs", rootfs.display()))
        .arg("-virtfs")
        .arg(format!("local,path={},mount_tag=workspace,security_model=passthrough,id=workspace", ws.display()))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!("xtask: booting the arm64 machine ({prepared:.0?} to prepare); console in {}", console.display());
    let booted = Instant::now();
    let mut child = qemu.spawn().context("starting qemu-system-aarch64")?;
    let exit = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if booted.elapsed() > GUEST_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the arm64 machine did not finish in {GUEST_TIMEOUT:?}; console: {}\n{}", console.display(), tail(&console));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let in_guest = booted.elapsed();
    stages.0.push(("in the machine", in_guest));
    let text = std::fs::read_to_string(&console).unwrap_or_default();
    if !text.contains("mapaudit-arm64: booted") {
        bail!("the arm64 machine did not boot (qemu: {exit}); console:\n{}", tail(&console));
    }
    let (Ok(output), Ok(code)) = (std::fs::read_to_string(&out_file), std::fs::read_to_string(&status_file)) else {
        bail!("the arm64 machine booted but wrote no test results (qemu: {exit}); console:\n{}", tail(&console));
    };
    let results = per_test(&output);
    for (t, r) in &results {
        eprintln!("arm64: {r:<7} {t}");
    }
    for (t, why) in SKIPPED {
        eprintln!("arm64: skipped {t} ({why})");
    }
    let failed: Vec<&String> = results.iter().filter(|(_, r)| r.as_str() != "ok").map(|(t, _)| t).collect();
    eprintln!(
        "xtask: arm64: {} tests, {} passed, {} failed; {:.0?} preparing, {:.0?} in the machine, {:.0?} in all \
         (stages: {}); output in {}",
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        prepared,
        in_guest,
        started.elapsed(),
        stages.summary(),
        out_file.display()
    );
    if results.is_empty() {
        bail!("no end-to-end test ran in the arm64 machine; output:\n{output}");
    }
    if !failed.is_empty() || code.trim() != "0" {
        bail!("arm64 end-to-end tests failed (exit {}): {}\nsee {}", code.trim(), failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "), out_file.display());
    }
    Ok(())
}

/// libtest's `test NAME ... ok|FAILED|ignored` lines, by name.
fn per_test(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            Some((name.trim().to_string(), result.trim().to_string()))
        })
        .collect()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
