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
