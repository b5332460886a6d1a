//! The report is always written (duration, command exit or SIGKILL,
//! mapaudit's SIGINT/SIGTERM), and nothing is left behind in the kernel after
//! mapaudit exits — normally, by signal, or SIGKILLed — while a target that
//! keeps running is unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::*;

/// One at a time: these tests watch the kernel's lists.
static SERIAL: Mutex<()> = Mutex::new(());

/// Ids of the BPF programs a running process holds (from its fdinfo).
fn prog_ids_of(pid: u32) -> Vec<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse().ok()))
        .collect()
}

/// How many of `ids` are still loaded in the kernel.
fn still_loaded(ids: &[u32]) -> usize {
    aya::programs::loaded_programs().filter_map(Result::ok).filter(|p| ids.contains(&p.id())).count()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts mapaudit with `args`; returns once it says it is recording, with
/// that line.
#[allow(clippy::zombie_processes, reason = "the child is returned; every caller waits for it")]
fn start(args: &[&str]) -> (Child, BufReader<ChildStderr>, String) {
    let mut m = Command::new(mapaudit_bin()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(m.stderr.take().unwrap());
    loop {
        let mut l = String::new();
        if err.read_line(&mut l).unwrap() == 0 {
            let _ = m.kill();
            let _ = m.wait();
            panic!("mapaudit exited before recording");
        }
        if l.contains("recording") {
            return (m, err, l);
        }
    }
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2).
    unsafe { libc::kill(pid as i32, sig) };
}

fn demo() -> std::path::PathBuf {
    fixtures::build("demo", fixtures::GO_NEWEST, Variant::Plain).unwrap()
}

#[test]
fn report_written_when_the_command_is_sigkilled() {
    let _g = SERIAL.lock();
    let name = "report_written_when_the_command_is_sigkilled";
    if !root_or_skip(name) {
        return;
    }
    let json = scratch(name).join("r.json");
    let (m, _err, line) = start(&["record", "--json", json.to_str().unwrap(), "--", demo().to_str().unwrap()]);
    let pid: u32 = line.rsplit("(pid ").next().unwrap().trim_end_matches([')', '\n']).parse().unwrap();
    let ids = prog_ids_of(m.id());
    assert!(!ids.is_empty());
    std::thread::sleep(Duration::from_millis(800));
    kill(pid, libc::SIGKILL);
    let out = m.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + 9), "record returns the command's fate");
    let r = read_json(&json);
    let p = process(&r, pid as u64);
    let cache = p["maps"].as_array().unwrap().iter().find(|m| m["type"] == "map[string][]string").expect("the demo's cache");
    assert!(cache["writes"].as_u64().unwrap() > 0);
    wait_until("programs to unload", Duration::from_secs(5), || still_loaded(&ids) == 0);
}

#[test]
fn report_written_at_the_end_of_duration() {
    let _g = SERIAL.lock();
    let name = "report_written_at_the_end_of_duration";
    if !root_or_skip(name) {
        return;
    }
    let json = scratch(name).join("r.json");
    let t = Instant::now();
    let out = run(&["record", "--duration", "1s", "--json", json.to_str().unwrap(), "--", demo().to_str().unwrap()]);
    assert!(t.elapsed() < Duration::from_secs(20));
    // The command is terminated at the end of the duration; its status is returned.
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&json);
    assert!(r["duration_s"].as_f64().unwrap() >= 1.0);
    assert!(r["totals"]["writes"].as_u64().unwrap() > 0);
}

/// mapaudit stopped by `sig` while auditing a --pid target: the report is
/// written, the kernel is clean, and the target finishes unaffected.
fn stop_mapaudit_with(sig: i32, name: &str) {
    let _g = SERIAL.lock();
    if !root_or_skip(name) {
        return;
    }
    let bin = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
    let mut fx = Command::new(bin).args(["-n", "3000000", "-wait-signal"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut fx_err = BufReader::new(fx.stderr.take().unwrap());
    let mut l = String::new();
    fx_err.read_line(&mut l).unwrap();
    let json = scratch(name).join("r.json");
    let (m, mut merr, _) = start(&["record", "--pid", &fx.id().to_string(), "--json", json.to_str().unwrap()]);
    let ids = prog_ids_of(m.id());
    assert!(ids.len() >= 4, "map_write and the sched tracepoints: {ids:?}");
    kill(fx.id(), libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(700));
    kill(m.id(), sig);
    let st = m.wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = merr.read_to_string(&mut rest);
    if sig == libc::SIGKILL {
        assert_eq!(st.status.code(), None);
    } else {
        assert_eq!(st.status.code(), Some(128 + sig), "{rest}");
        let r = read_json(&json);
        assert!(process(&r, fx.id() as u64)["goroutines"].as_array().unwrap().len() >= 6, "{r:#}");
    }
    // Nothing of mapaudit's stays in the kernel.
    wait_until("programs to unload", Duration::from_secs(5), || still_loaded(&ids) == 0);
    // The target keeps running, unprobed, and ends as it would have.
    let out = fx.wait_with_output().unwrap();
    assert!(out.status.success(), "target failed after mapaudit left: {}", String::from_utf8_lossy(&out.stderr));
    let t = truth(&out.stdout);
    for g in t["goroutines"].as_array().unwrap() {
        let n = g["writes"].as_u64().unwrap();
        assert!(n == 3_000_000 || n == 1_500_000, "{g}");
    }
}

#[test]
fn sigint_writes_the_report_and_leaves_nothing_behind() {
    stop_mapaudit_with(libc::SIGINT, "sigint_writes_the_report_and_leaves_nothing_behind");
}

#[test]
fn sigterm_writes_the_report_and_leaves_nothing_behind() {
    stop_mapaudit_with(libc::SIGTERM, "sigterm_writes_the_report_and_leaves_nothing_behind");
}

#[test]
fn sigkill_leaves_nothing_behind_and_the_target_unaffected() {
    stop_mapaudit_with(libc::SIGKILL, "sigkill_leaves_nothing_behind_and_the_target_unaffected");
}

#[test]
fn normal_exit_leaves_nothing_behind() {
    let _g = SERIAL.lock();
    let name = "normal_exit_leaves_nothing_behind";
    if !root_or_skip(name) {
        return;
    }
    let json = scratch(name).join("r.json");
    let (m, _err, _) = start(&["record", "--json", json.to_str().unwrap(), "--", "/bin/sleep", "1"]);
    let ids = prog_ids_of(m.id());
    assert!(ids.len() >= 4, "{ids:?}");
    assert!(m.wait_with_output().unwrap().status.success());
    wait_until("programs to unload", Duration::from_secs(5), || still_loaded(&ids) == 0);
}
