//! Root end-to-end tests of exact auditing: the `writers` fixture prints its
//! ground truth; mapaudit's report must match it exactly, for every way of
//! targeting it and every Go version of the matrix.

use crate::support::*;

const N: &str = "20000";

/// `record -- FIXTURE`: counts from the first instruction.
fn record_command(version: &str, variant: Variant) {
    let name = format!("record_command_go{version}_{}", variant.name());
    let bin = fixtures::build("writers", version, variant).expect("fixture build");
    let dir = scratch(&name);
    let json = dir.join("report.json");
    let out = run(&["record", "--json", json.to_str().unwrap(), "--", bin.to_str().unwrap(), "-n", N]);
    assert!(out.status.success(), "{name}: mapaudit failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = read_json(&json);
    assert_eq!(report["schema"], "mapaudit/v1");
    let t = truth(&out.stdout);
    let p = process(&report, t["pid"].as_u64().unwrap());
    assert_eq!(p["go_version"], format!("go{version}"));
    let source = if variant == Variant::StrippedNoBuildInfo { "inferred" } else { "buildinfo" };
    assert_eq!(p["go_version_source"], source, "{name}");
    assert_writers_truth(&report, &t, &name);
    // Exact from the first instruction: package init's writes and main's
    // first ones, made before any worker exists, are all there.
    let e = &t["early"];
    assert_eq!(find(&p["maps"], "addr", &e["init_map"])["writes"], e["init_writes"], "{name}: package init");
    assert_eq!(find(&p["maps"], "addr", &e["main_map"])["writes"], e["main_writes"], "{name}: the top of main");
}

root_test! {
    fn exact_counts_go_matrix_plain(_) {
        for v in fixtures::GO_VERSIONS {
            record_command(v, Variant::Plain);
        }
    }
}

root_test! {
    fn exact_counts_pie_and_stripped_oldest_and_newest(_) {
        for v in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
            for variant in [Variant::Pie, Variant::Stripped, Variant::PieStripped] {
                record_command(v, variant);
            }
        }
    }
}

root_test! {
    /// Builds users run that the toolchain's defaults do not make (issue #14):
    /// build info removed, cgo (dynamically linked), the external linker (plain
    /// and PIE), -trimpath.
    fn exact_counts_wild_builds_oldest_and_newest(_) {
        for v in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
            for variant in [Variant::StrippedNoBuildInfo, Variant::Cgo, Variant::External, Variant::ExternalPie, Variant::Trimpath] {
                record_command(v, variant);
            }
        }
    }
}

root_test! {
    /// Both ways of linking the probes count exactly: one uprobe_multi link
    /// per executable (the default on Linux >= 6.6) and one perf-event uprobe
    /// per point (older kernels; forced here), and the report says which.
    fn exact_counts_through_either_kind_of_uprobe_link(name) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim().to_string();
        let multi_kernel = mapaudit::kernel::preflight::kernel_version(&release).is_some_and(|v| v >= (6, 6));
        let default = if multi_kernel { "uprobe_multi" } else { "perf_event" };
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        for (extra, kind) in [(None, default), (Some("--debug-no-uprobe-multi"), "perf_event")] {
            let json = scratch(name).join(format!("{kind}.json"));
            let mut args = vec!["record", "--json", s(&json)];
            args.extend(extra);
            args.extend(["--", s(&bin), "-n", N]);
            let out = run(&args);
            assert!(out.status.success(), "{name} {kind}: {}", String::from_utf8_lossy(&out.stderr));
            let report = read_json(&json);
            assert_eq!(report["diagnostics"]["uprobe_links"], kind, "{name} (kernel {release})");
            assert_writers_truth(&report, &truth(&out.stdout), &format!("{name} {kind}"));
        }
    }
}

root_test! {
    fn exact_counts_through_a_shell(name) {
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        // `sh -c 'x; true'` forks a child for x, then execs nothing: the fixture is a grandchild.
        let script = format!("{} -n {N}; true", bin.display());
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", "/bin/sh", "-c", &script]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
    }
}

root_test! {
    fn exit_status_of_the_command_is_returned(name) {
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", "/bin/sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(read_json(&json)["schema"], "mapaudit/v1");
    }
}

/// The writers fixture, started and waiting for SIGUSR1 before its writes.
fn waiting_fixture() -> Proc {
    spawn_waiting(&fixture("writers"), &["-n", N])
}

root_test! {
    fn exact_counts_with_pid_attached_before_writes(name) {
        let fx = waiting_fixture();
        let json = scratch(name).join("report.json");
        let (m, _) = start_mapaudit(&["record", "--pid", &fx.pid().to_string(), "--json", s(&json)]);
        fx.go();
        let out = fx.wait();
        // A --pid recording ends when its target does.
        m.wait().assert_success("mapaudit");
        assert_writers_truth(&read_json(&json), &out.truth(), name);
    }
}

root_test! {
    fn exact_counts_system_wide_and_report_on_sigint(name) {
        let fx = waiting_fixture();
        let json = scratch(name).join("report.json");
        let (m, _) = start_mapaudit(&["record", "--json", s(&json)]);
        fx.go();
        let out = fx.wait();
        // Stopped as a user would, right after the target exited: the final
        // read takes whatever the last tick did not.
        m.signal(Signal::SIGINT);
        let st = m.wait();
        assert_eq!(st.code(), Some(130), "mapaudit: {}", st.stderr);
        assert_writers_truth(&read_json(&json), &out.truth(), name);
    }
}

root_test! {
    fn exec_starts_a_new_program_at_the_same_pid(name) {
        let writers = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let bench = fixtures::build("bench", fixtures::GO_OLDEST, Variant::Plain).unwrap();
        let json = scratch(name).join("report.json");
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", writers.to_str().unwrap(), "-n", N, "-exec", bench.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ts = truths(&out.stdout);
        assert_eq!(ts.len(), 2, "both programs printed their truth");
        let report = read_json(&json);
        let pid = ts[0]["pid"].as_u64().unwrap();
        let at_pid: Vec<_> = report["processes"].as_array().unwrap().iter().filter(|p| p["pid"] == pid).collect();
        assert_eq!(at_pid.len(), 2, "one entry per program at the pid");
        assert_eq!(at_pid[0]["generation"], 0);
        assert!(at_pid[0]["exe"].as_str().unwrap().ends_with("/writers"));
        assert_eq!(at_pid[0]["go_version"], format!("go{}", fixtures::GO_NEWEST));
        // The first program's counts are exactly its own...
        assert_writers_truth(&report, &ts[0], name);
        // ...and the second's are its own, under the same pid.
        assert_eq!(at_pid[1]["generation"], 1);
        assert!(at_pid[1]["exe"].as_str().unwrap().ends_with("/bench"));
        assert_eq!(at_pid[1]["go_version"], format!("go{}", fixtures::GO_OLDEST));
        let cache = find(&at_pid[1]["maps"], "addr", &ts[1]["map"]);
        assert_eq!(cache["type"], "map[string][]string", "{:#}", at_pid[1]);
        assert_eq!(cache["writes"], ts[1]["writes"]);
    }
}

/// Starts mapaudit with `args`, then the fixture (waiting for SIGUSR1); the
/// new process is attached at its exec event, before it writes: the test
/// lets it write once mapaudit logs the attachment.
fn started_after_mapaudit(name: &str, args: &[&str]) {
    let json = scratch(name).join("report.json");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--log-level", "info", "--json", s(&json)]);
    let (m, _) = start_mapaudit(&all);
    let fx = waiting_fixture();
    let attached = format!("attached to pid {}", fx.pid());
    m.err.wait_for(&attached, DEADLINE, |l| l.contains(&attached));
    fx.go();
    let out = fx.wait();
    m.signal(Signal::SIGINT);
    let st = m.wait();
    assert_eq!(st.code(), Some(130), "mapaudit: {}", st.stderr);
    assert_writers_truth(&read_json(&json), &out.truth(), name);
}

root_test! {
    fn exact_counts_system_wide_for_a_process_started_later(name) {
        started_after_mapaudit(name, &["record"]);
    }
}

root_test! {
    fn exact_counts_for_exe_target_started_later(name) {
        let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        started_after_mapaudit(name, &["record", "--exe", bin.to_str().unwrap()]);
    }
}

root_test! {
    /// `--exe` on a process already running: attached at start (the file's
    /// probes cover it), counted exactly from then — here before its writes.
    fn exact_counts_for_exe_target_already_running(name) {
        let fx = waiting_fixture();
        let json = scratch(name).join("report.json");
        let (m, _) = start_mapaudit(&["record", "--exe", s(&fixture("writers")), "--json", s(&json)]);
        fx.go();
        let out = fx.wait();
        m.signal(Signal::SIGINT);
        let st = m.wait();
        assert_eq!(st.code(), Some(130), "mapaudit: {}", st.stderr);
        assert_writers_truth(&read_json(&json), &out.truth(), name);
    }
}

root_test! {
    /// `totals` is every map operation of the process: after its READY line
    /// the `exact` fixture makes no map operation it does not count (see its
    /// header).
    fn totals_are_the_fixtures_truth_on_every_go(name) {
        for version in fixtures::GO_VERSIONS {
            let bin = fixtures::build("exact", version, Variant::Plain).unwrap();
            let json = scratch(name).join(format!("{version}.json"));
            let fx = spawn_waiting(&bin, &["-n", "3000"]);
            let pid = fx.pid().to_string();
            let (m, _) = start_mapaudit(&["record", "--reads", "--no-bpf-maps", "--pid", &pid, "--json", s(&json)]);
            fx.go();
            let t = fx.wait().truth();
            m.wait().assert_success(&format!("record --pid, Go {version}"));
            let r = read_json(&json);
            for f in ["writes", "deletes", "clears", "reads"] {
                assert_eq!(r["totals"][f], t[f], "Go {version}: totals.{f}");
            }
            assert_eq!(r["totals"]["lost_events"], 0, "Go {version}");
        }
    }
}

root_test! {
    /// A process in its own mount and pid namespaces (what a container
    /// runtime makes): its executable is on a tmpfs mounted only inside, so
    /// the host path names nothing and only /proc/PID/exe reaches it; its
    /// own pid is 1. `--pid` with the host pid counts it exactly.
    fn a_process_in_its_own_mount_and_pid_namespace_is_reached_through_proc_exe(name) {
        let dir = scratch(name);
        let inside = dir.join("inside");
        std::fs::create_dir_all(&inside).unwrap();
        let script = format!(
            "mount -t tmpfs none '{i}' && cp '{b}' '{i}/exact' && exec '{i}/exact' -n 5000 -wait-signal",
            i = inside.display(),
            b = fixture("exact").display()
        );
        let mut c = std::process::Command::new("unshare");
        c.args(["--mount", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", &script]);
        let ns = Proc::spawn(c);
        let ready = ns.err.wait_for("the fixture's READY line", DEADLINE, |l| l.starts_with("READY"));
        assert_eq!(ready.trim(), "READY 1", "pid 1 in its own pid namespace");
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", ns.pid())).unwrap();
        let host_pid: u32 = children.trim().parse().unwrap_or_else(|_| panic!("unshare's one child: {children:?}"));
        let exe = std::fs::read_link(format!("/proc/{host_pid}/exe")).unwrap();
        assert_eq!(exe, inside.join("exact"));
        assert!(!exe.exists(), "{} exists only in the process's mount namespace", exe.display());

        let json = dir.join("report.json");
        let (m, _) = start_mapaudit(&["record", "--reads", "--no-bpf-maps", "--pid", &host_pid.to_string(), "--json", s(&json)]);
        signal(host_pid, Signal::SIGUSR1);
        let out = ns.wait();
        assert!(out.status.success(), "{}", out.stderr);
        m.wait().assert_success("a --pid recording ends with its target");
        let t = out.truth();
        assert_eq!(t["pid"], 1);
        let r = read_json(&json);
        let p = process(&r, u64::from(host_pid));
        assert_eq!(p["go_version"], format!("go{}", fixtures::GO_NEWEST));
        for f in ["writes", "deletes", "clears", "reads"] {
            assert_eq!(r["totals"][f], t[f], "totals.{f}");
        }
        let sum = |f: &str| p["goroutines"].as_array().unwrap().iter().map(|g| g[f].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("writes"), t["writes"].as_u64().unwrap(), "all in that process's goroutines");
    }
}

/// One inotify event: (mask, cookie, file name).
fn inotify_events(fd: i32) -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reads into a buffer of the length given.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        let mut at = 0;
        while at + 16 <= n as usize {
            let word = |o: usize| u32::from_ne_bytes(buf[at + o..at + o + 4].try_into().unwrap());
            let (mask, cookie, len) = (word(4), word(8), word(12) as usize);
            let name = buf[at + 16..at + 16 + len].split(|&b| b == 0).next().unwrap();
            out.push((mask, cookie, String::from_utf8_lossy(name).into_owned()));
            at += 16 + len;
        }
    }
}

root_test! {
    /// The report is written whole under another name in its directory and
    /// renamed into place: a reader sees no file or a complete one. The
    /// directory's inotify events show it (no open, write or create ever
    /// happens under the report's own name).
    fn the_report_appears_whole_by_a_rename_in_its_directory(name) {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = scratch(name);
        let json = dir.join("r.json");
        // SAFETY: plain syscalls; the descriptor is closed below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let all = libc::IN_CREATE | libc::IN_OPEN | libc::IN_MODIFY | libc::IN_CLOSE_WRITE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;
        // SAFETY: a valid descriptor and NUL-terminated path.
        assert!(unsafe { libc::inotify_add_watch(fd, c.as_ptr(), all) } >= 0);
        let out = record(&["record", "--no-bpf-maps", "--json", s(&json), "--", s(&fixture("exact"))]);
        out.assert_success("record");
        let events = inotify_events(fd);
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        let on_report: Vec<_> = events.iter().filter(|e| e.2 == "r.json").collect();
        assert_eq!(on_report.len(), 1, "only the rename touches r.json: {events:?}");
        let (mask, cookie, _) = on_report[0];
        assert_eq!(mask & libc::IN_MOVED_TO, libc::IN_MOVED_TO, "{events:?}");
        let from = events.iter().find(|e| e.0 & libc::IN_MOVED_FROM != 0 && e.1 == *cookie).expect("renamed from this directory");
        let temp = &from.2;
        let of_temp: Vec<u32> = events.iter().filter(|e| &e.2 == temp).map(|e| e.0).collect();
        let first = |m: u32| of_temp.iter().position(|&x| x & m != 0).unwrap_or_else(|| panic!("{temp}: no {m:#x} in {events:?}"));
        assert!(first(libc::IN_CREATE) < first(libc::IN_CLOSE_WRITE), "{events:?}");
        assert!(first(libc::IN_CLOSE_WRITE) < first(libc::IN_MOVED_FROM), "written and closed before the rename: {events:?}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("r.json")], "no temporary file left");
        // Whole: it parses and validates, and names the command's process.
        let r = read_json(&json);
        process(&r, out.truth()["pid"].as_u64().unwrap());
    }
}
