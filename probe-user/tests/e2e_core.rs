//! Root end-to-end tests of exact auditing: the `writers` fixture prints its
//! ground truth; mapaudit's report must match it exactly, for every way of
//! targeting it and every Go version of the matrix.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const N: &str = "20000";

/// `record -- FIXTURE`: counts from the first instruction.
fn record_command(version: &str, variant: Variant) {
    let name = format!("record_command_go{version}_{}", variant.name());
    if !root_or_skip(&name) {
        return;
    }
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
}

#[test]
fn exact_counts_go_matrix_plain() {
    for v in fixtures::GO_VERSIONS {
        record_command(v, Variant::Plain);
    }
}

#[test]
fn exact_counts_pie_and_stripped_oldest_and_newest() {
    for v in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
        for variant in [Variant::Pie, Variant::Stripped, Variant::PieStripped] {
            record_command(v, variant);
        }
    }
}

/// Builds users run that the toolchain's defaults do not make (issue #14):
/// build info removed, cgo (dynamically linked), the external linker (plain
/// and PIE), -trimpath.
#[test]
fn exact_counts_wild_builds_oldest_and_newest() {
    for v in [fixtures::GO_OLDEST, fixtures::GO_NEWEST] {
        for variant in [Variant::StrippedNoBuildInfo, Variant::Cgo, Variant::External, Variant::ExternalPie, Variant::Trimpath] {
            record_command(v, variant);
        }
    }
}

#[test]
fn exact_counts_through_a_shell() {
    let name = "exact_counts_through_a_shell";
    if !root_or_skip(name) {
        return;
    }
    let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    let json = scratch(name).join("report.json");
    // `sh -c 'x; true'` forks a child for x, then execs nothing: the fixture is a grandchild.
    let script = format!("{} -n {N}; true", bin.display());
    let out = run(&["record", "--json", json.to_str().unwrap(), "--", "/bin/sh", "-c", &script]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
}

#[test]
fn exit_status_of_the_command_is_returned() {
    let name = "exit_status_of_the_command_is_returned";
    if !root_or_skip(name) {
        return;
    }
    let json = scratch(name).join("report.json");
    let out = run(&["record", "--json", json.to_str().unwrap(), "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_json(&json)["schema"], "mapaudit/v1");
}

/// Starts the fixture waiting for SIGUSR1; returns it and its pid.
fn waiting_fixture() -> (std::process::Child, u32, BufReader<std::process::ChildStderr>) {
    let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    let mut child = Command::new(bin)
        .args(["-n", N, "-wait-signal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "fixture said {line:?}");
    let pid = child.id();
    (child, pid, err)
}

/// Starts mapaudit and waits until it says it is recording.
fn start_recording(args: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut m = Command::new(mapaudit_bin()).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(m.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("mapaudit never started recording: {seen}");
        }
        seen.push_str(&line);
        if line.contains("recording") {
            break;
        }
    }
    (m, err)
}

fn drain(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

#[test]
fn exact_counts_with_pid_attached_before_writes() {
    let name = "exact_counts_with_pid_attached_before_writes";
    if !root_or_skip(name) {
        return;
    }
    let (child, pid, _err) = waiting_fixture();
    let json = scratch(name).join("report.json");
    let (m, merr) = start_recording(&["record", "--pid", &pid.to_string(), "--json", json.to_str().unwrap()]);
    // SAFETY: kill(2).
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let out = child.wait_with_output().unwrap();
    let st = m.wait_with_output().unwrap();
    assert!(st.status.success(), "mapaudit: {}", drain(merr));
    assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
}

#[test]
fn exact_counts_system_wide_and_report_on_sigint() {
    let name = "exact_counts_system_wide_and_report_on_sigint";
    if !root_or_skip(name) {
        return;
    }
    let (child, pid, _err) = waiting_fixture();
    let json = scratch(name).join("report.json");
    let (m, merr) = start_recording(&["record", "--json", json.to_str().unwrap()]);
    // SAFETY: kill(2).
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let out = child.wait_with_output().unwrap();
    // Let a tick pass, then stop mapaudit as a user would.
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: kill(2).
    unsafe { libc::kill(m.id() as i32, libc::SIGINT) };
    let st = m.wait_with_output().unwrap();
    assert_eq!(st.status.code(), Some(130), "mapaudit: {}", drain(merr));
    assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
}

#[test]
fn exec_starts_a_new_program_at_the_same_pid() {
    let name = "exec_starts_a_new_program_at_the_same_pid";
    if !root_or_skip(name) {
        return;
    }
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
    let cache: Vec<_> = at_pid[1]["maps"].as_array().unwrap().iter().filter(|m| m["type"] == "map[string][]string").collect();
    assert_eq!(cache.len(), 1, "{:#}", at_pid[1]);
    assert_eq!(cache[0]["writes"], ts[1]["writes"]);
    assert_eq!(cache[0]["writes"], 200);
}

/// Starts mapaudit with `args`, then the fixture (waiting for SIGUSR1); the
/// new process is attached at its exec event, before it writes.
fn started_after_mapaudit(name: &str, args: &[&str]) {
    let json = scratch(name).join("report.json");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let (m, merr) = start_recording(&all);
    let (child, pid, _err) = waiting_fixture();
    // Attaching happens when mapaudit handles the exec event, within
    // milliseconds; give it ample time before the writes begin.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2).
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let out = child.wait_with_output().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: kill(2).
    unsafe { libc::kill(m.id() as i32, libc::SIGINT) };
    let st = m.wait_with_output().unwrap();
    assert_eq!(st.status.code(), Some(130), "mapaudit: {}", drain(merr));
    assert_writers_truth(&read_json(&json), &truth(&out.stdout), name);
}

#[test]
fn exact_counts_system_wide_for_a_process_started_later() {
    let name = "exact_counts_system_wide_for_a_process_started_later";
    if !root_or_skip(name) {
        return;
    }
    started_after_mapaudit(name, &["record"]);
}

#[test]
fn exact_counts_for_exe_target_started_later() {
    let name = "exact_counts_for_exe_target_started_later";
    if !root_or_skip(name) {
        return;
    }
    let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    started_after_mapaudit(name, &["record", "--exe", bin.to_str().unwrap()]);
}
