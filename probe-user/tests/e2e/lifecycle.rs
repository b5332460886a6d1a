//! The report is always written (duration, command exit or SIGKILL,
//! mapaudit's SIGINT/SIGTERM), and nothing is left behind in the kernel after
//! mapaudit exits — normally, by signal, or SIGKILLed — while a target that
//! keeps running is unaffected.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

/// One at a time: these tests watch the kernel's lists.
static SERIAL: Mutex<()> = Mutex::new(());

/// Polls the kernel's list until `f` holds: program unloading is deferred
/// by the kernel and announces nothing to wait on. The deadline only turns
/// a leak into a failure; it is no timing claim (the bench has those).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out after {DEADLINE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

root_test! {
    /// SIGKILL of the command once it has printed its truth (`-hold`: it
    /// keeps running after): record returns its fate and the report has
    /// exactly what it wrote.
    fn report_written_when_the_command_is_sigkilled(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let (m, line) = start_mapaudit(&["record", "--json", s(&json), "--", s(&fixture("writers")), "-n", "20000", "-hold"]);
        let pid: u32 = line.rsplit("(pid ").next().unwrap().trim_end_matches([')', '\n']).parse().unwrap();
        let ids = prog_ids_of(m.pid());
        assert!(!ids.is_empty());
        let t: serde_json::Value = serde_json::from_str(&m.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        assert_eq!(t["pid"], pid);
        signal(pid, Signal::SIGKILL);
        let out = m.wait();
        assert_eq!(out.code(), Some(128 + 9), "record returns the command's fate: {}", out.stderr);
        assert_writers_truth(&read_json(&json), &t, name);
        wait_until("programs to unload", || still_loaded(&ids) == 0);
    }
}

root_test! {
    /// `--duration`: the recording ends, the command (still running) is
    /// terminated and its status returned, the report has exactly what it
    /// wrote.
    fn report_written_at_the_end_of_duration(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        // Few enough writes to be done well within the duration even in the
        // emulated arm64 machine (~12× slower than native): the truth is
        // printed before the end of the duration stops the held target.
        let out = record(&["record", "--duration", "5s", "--json", s(&json), "--", s(&fixture("writers")), "-n", "2000", "-hold"]);
        assert_eq!(out.code(), Some(128 + Signal::SIGTERM as i32), "{}", out.stderr);
        let r = read_json(&json);
        assert!(r["duration_s"].as_f64().unwrap() >= 5.0, "{}", r["duration_s"]);
        assert_writers_truth(&r, &out.truth(), name);
    }
}

/// mapaudit stopped by `sig` while auditing a --pid target in the middle of
/// its writes (every worker has written, `-progress`): the report is
/// written with what was seen so far, the kernel is clean, and the target
/// finishes unaffected.
fn stop_mapaudit_with(sig: Signal) {
    let _g = SERIAL.lock();
    let name = format!("stop_mapaudit_with_{sig}");
    let fx = spawn_waiting(&fixture("writers"), &["-n", "3000000", "-progress"]);
    let json = scratch(&name).join("r.json");
    let (m, _) = start_mapaudit(&["record", "--pid", &fx.pid().to_string(), "--json", s(&json)]);
    let ids = prog_ids_of(m.pid());
    assert!(ids.len() >= 4, "map_write and the sched tracepoints: {ids:?}");
    fx.go();
    fx.err.wait_for("every worker writing", DEADLINE, |l| l.starts_with("WRITING"));
    m.signal(sig);
    let st = m.wait();
    // Nothing of mapaudit's stays in the kernel.
    wait_until("programs to unload", || still_loaded(&ids) == 0);
    // The target keeps running, unprobed, and ends as it would have.
    let fx_pid = fx.pid();
    let out = fx.wait();
    assert!(out.status.success(), "target failed after mapaudit left: {}", out.stderr);
    let t = out.truth();
    if sig == Signal::SIGKILL {
        assert_eq!(st.code(), None);
        return;
    }
    assert_eq!(st.code(), Some(128 + sig as i32), "{}", st.stderr);
    // What the report saw is a true part of what the target did: each
    // worker seen writing, never more than it wrote, on its own thread.
    let r = read_json(&json);
    let p = process(&r, u64::from(fx_pid));
    for g in t["goroutines"].as_array().unwrap() {
        let rg = find(&p["goroutines"], "goid", &g["goid"]);
        let (seen, did) = (rg["writes"].as_u64().unwrap(), g["writes"].as_u64().unwrap());
        assert!(seen >= 1 && seen <= did, "goroutine {}: {seen} seen of {did}", g["name"]);
        assert_eq!(rg["tids"], serde_json::json!([g["tid"]]), "goroutine {}", g["name"]);
    }
}

root_test! {
    fn sigint_writes_the_report_and_leaves_nothing_behind(_) {
        stop_mapaudit_with(Signal::SIGINT);
    }
}

root_test! {
    fn sigterm_writes_the_report_and_leaves_nothing_behind(_) {
        stop_mapaudit_with(Signal::SIGTERM);
    }
}

root_test! {
    fn sigkill_leaves_nothing_behind_and_the_target_unaffected(_) {
        stop_mapaudit_with(Signal::SIGKILL);
    }
}

root_test! {
    fn normal_exit_leaves_nothing_behind(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let (m, _) = start_mapaudit(&["record", "--json", s(&json), "--", "/bin/sleep", "1"]);
        let ids = prog_ids_of(m.pid());
        assert!(ids.len() >= 4, "{ids:?}");
        m.wait().assert_success("mapaudit");
        wait_until("programs to unload", || still_loaded(&ids) == 0);
    }
}

/// A process's state letter from /proc/PID/stat ('T' stopped), if it exists.
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].split_ascii_whitespace().next()?.chars().next()
}

root_test! {
    /// mapaudit SIGKILLed while the command stands stopped at exec (its
    /// attach stalled on purpose, `--debug-exec-stall`): the exec guard
    /// resumes it, and it runs to its end. Without the guard it would stay
    /// stopped forever.
    fn sigkill_while_a_process_is_stopped_at_exec_leaves_nothing_stopped(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let (m, line) = start_mapaudit(&[
            "--log-level", "info", "record", "--debug-exec-stall", "600s", "--exec-stop-timeout", "3600s", "--json", s(&json),
            "--", s(&fixture("writers")), "-n", "2000",
        ]);
        let pid: u32 = line.rsplit("(pid ").next().unwrap().trim_end_matches([')', '\n']).parse().unwrap();
        wait_until("the command to stand stopped at its exec", || proc_state(pid) == Some('T'));
        // This test is about a held process (a kill before the hold is
        // `sigkill_before_exec_events_are_read_leaves_nothing_stopped`'s).
        m.err.wait_for("the guard to hold it", DEADLINE, |l| l.contains(&format!("pid {pid} stopped at exec, held by the exec guard")));
        let ids = prog_ids_of(m.pid());
        m.signal(Signal::SIGKILL);
        // The command, resumed by the guard, runs to its end and prints its truth.
        let t: serde_json::Value = serde_json::from_str(&m.out.wait_for("the command's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        assert_eq!(t["pid"], pid);
        let out = m.wait();
        assert_eq!(out.code(), None, "mapaudit was killed: {}", out.stderr);
        assert!(out.stderr.contains(&format!("pid {pid} stood stopped at exec; resumed it")), "the guard says what it did: {}", out.stderr);
        wait_until("programs to unload", || still_loaded(&ids) == 0);
    }
}

/// SIGKILLs the listed pids if the test fails with them still around (a
/// process left stopped would otherwise stay so, and keep the pipes open).
struct KillOnPanic(Vec<u32>);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for &pid in &self.0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

root_test! {
    /// The window before the guard holds a process: the kernel stopped the
    /// command's children at their exec, and mapaudit has not handled their
    /// exec events (it leaves them unhandled on purpose,
    /// `--debug-ignore-execs-after 1`: the shell's own exec is handled, so
    /// it runs and starts them). mapaudit SIGKILLed then: the kernel listed
    /// every stop (`EXEC_STOPPED`) and the guard, holding that map, resumes
    /// each child once mapaudit is gone. Each runs to its end and the
    /// command completes. Before the fix they stayed stopped forever.
    fn sigkill_before_exec_events_are_read_leaves_nothing_stopped(name) {
        const CHILDREN: usize = 4;
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let w = fixture("writers");
        // Builtins only besides the children: any other exec would be left
        // stopped too.
        let list = (1..=CHILDREN).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
        let script = format!("for i in {list}; do {} -n 200 & done; wait; echo all-done", s(&w));
        let (m, line) = start_mapaudit(&[
            "--log-level", "info", "record", "--debug-ignore-execs-after", "1", "--exec-stop-timeout", "3600s",
            "--json", s(&json), "--", "sh", "-c", &script,
        ]);
        let sh: u32 = line.rsplit("(pid ").next().unwrap().trim_end_matches([')', '\n']).parse().unwrap();
        let mut cleanup = KillOnPanic(vec![sh]);
        // Every child stands stopped at its exec, its event unhandled.
        let unhandled = |text: &str| -> Vec<u32> {
            text.lines()
                .filter(|l| l.contains("stopped at exec, left unhandled"))
                .map(|l| l.split("pid ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap())
                .collect()
        };
        let end = Instant::now() + DEADLINE;
        while unhandled(&m.err.text()).len() < CHILDREN {
            assert!(Instant::now() < end, "timed out waiting for every child's exec to be left unhandled: {}", m.err.text());
            std::thread::sleep(Duration::from_millis(50));
        }
        let kids = unhandled(&m.err.text());
        cleanup.0.extend(&kids);
        for &k in &kids {
            wait_until(&format!("child {k} to stand stopped at its exec"), || proc_state(k) == Some('T'));
        }
        let mut of_sh: Vec<u32> = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
            .unwrap()
            .split_ascii_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        of_sh.sort_unstable();
        let mut sorted = kids.clone();
        sorted.sort_unstable();
        assert_eq!(of_sh, sorted, "the stopped processes are the shell's children");
        let ids = prog_ids_of(m.pid());
        m.signal(Signal::SIGKILL);
        for &k in &kids {
            wait_until(&format!("child {k} to be resumed"), || proc_state(k) != Some('T'));
        }
        // The command completes: every child ran to its end (its truth), the
        // shell's `wait` returned.
        m.out.wait_for("the command to complete", DEADLINE, |l| l.trim() == "all-done");
        let out = m.wait();
        assert_eq!(out.code(), None, "mapaudit was killed: {}", out.stderr);
        let mut ran: Vec<u32> = out.truths().iter().map(|t| t["pid"].as_u64().unwrap() as u32).collect();
        ran.sort_unstable();
        assert_eq!(ran, sorted, "each child ran to its end: {}", out.stdout);
        for k in &kids {
            let said = format!("mapaudit ended before it read pid {k}'s exec (stopped at exec); resumed it");
            assert_eq!(out.stderr.matches(&said).count(), 1, "the guard says what it did, once: {}", out.stderr);
        }
        wait_until("programs to unload", || still_loaded(&ids) == 0);
    }
}

root_test! {
    /// An attach that stalls past `--exec-stop-timeout`: the guard resumes
    /// the process at the deadline, the command completes, and the report
    /// says the process was not audited from its start (count and warning).
    fn a_stalled_attach_is_resumed_at_the_deadline_and_reported(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let out = record(&[
            "record", "--debug-exec-stall", "3s", "--exec-stop-timeout", "200ms", "--json", s(&json),
            "--", s(&fixture("writers")), "-n", "2000",
        ]);
        out.assert_success(name);
        let t = out.truth();
        let r = read_json(&json);
        let stops = &r["diagnostics"]["exec_stops"];
        assert_eq!(stops["count"], 1, "{stops}");
        assert_eq!(stops["watchdog_resumes"], 1, "{stops}");
        let pid = t["pid"].as_u64().unwrap();
        let warned = r["warnings"].as_array().unwrap().iter().filter(|w| {
            w.as_str().is_some_and(|w| w.starts_with(&format!("pid {pid} ")) && w.contains("--exec-stop-timeout"))
        });
        assert_eq!(warned.count(), 1, "{}", r["warnings"]);
    }
}

root_test! {
    /// The ordinary path: attaches well within the deadline, so the guard
    /// never acts: no watchdog resume, exact counts.
    fn an_attach_within_the_deadline_is_not_a_watchdog_resume(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let out = record(&["record", "--json", s(&json), "--", s(&fixture("writers")), "-n", "2000"]);
        out.assert_success(name);
        let r = read_json(&json);
        assert_eq!(r["diagnostics"]["exec_stops"]["watchdog_resumes"], 0);
        assert_eq!(r["diagnostics"]["exec_stops"]["count"], 1);
        assert_writers_truth(&r, &out.truth(), name);
    }
}

/// Each thread's niceness under /proc/PID/task (field 19 of `stat`).
fn thread_nice(pid: u32) -> Vec<i64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // Fields after the command name's closing parenthesis start at 3.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        out.push(rest.split(' ').nth(19 - 3).unwrap().parse().unwrap());
    }
    out
}

root_test! {
    /// With `-- CMD`, every thread of mapaudit runs at nice -10 (so a
    /// command saturating the machine does not keep its own execs waiting
    /// for mapaudit's loop), while the command keeps the niceness it was
    /// given; counts stay exact.
    fn mapaudit_favours_its_own_threads_and_not_the_command(name) {
        let _g = SERIAL.lock();
        let json = scratch(name).join("r.json");
        let (m, line) = start_mapaudit(&["record", "--json", s(&json), "--", s(&fixture("writers")), "-n", "20000", "-hold"]);
        let pid: u32 = line.rsplit("(pid ").next().unwrap().trim_end_matches([')', '\n']).parse().unwrap();
        let t: serde_json::Value = serde_json::from_str(&m.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        let ours = thread_nice(m.pid());
        let theirs = thread_nice(pid);
        // What mapaudit was started with, hence what its command inherits.
        let given = thread_nice(std::process::id())[0];
        signal(pid, Signal::SIGKILL);
        let out = m.wait();
        assert!(ours.len() >= 2 && ours.iter().all(|&n| n == -10), "mapaudit's threads: {ours:?}");
        assert!(!theirs.is_empty() && theirs.iter().all(|&n| n == given), "the command's threads: {theirs:?}, given {given}");
        assert_eq!(out.code(), Some(128 + 9), "{}", out.stderr);
        assert_writers_truth(&read_json(&json), &t, name);
    }
}

/// `record -- sh -c "P; P; …"` with `extra` flags: the report and the
/// command's output. The scripts end in `true` so that the shell forks every
/// program: a shell may exec its last command itself (busybox's does, in the
/// arm64 test machine), and a process that exec'd before (the shell) always
/// stops at its next exec.
fn record_sh(name: &str, extra: &[&str], script: &str) -> (serde_json::Value, Finished) {
    let json = scratch(name).join("r.json");
    let mut args = vec!["record", "--json", s(&json)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let out = record(&args);
    out.assert_success(name);
    (read_json(&json), out)
}

root_test! {
    /// A Go program attached for every process of its file (`-- CMD`,
    /// non-PIE) needs no attach for its next processes: the kernel lets
    /// them run at exec (no stop, no wait), and each is counted exactly
    /// from its first instruction, like the first.
    fn later_processes_of_an_attached_program_run_without_a_stop(name) {
        let _g = SERIAL.lock();
        let w = fixture("writers");
        let (r, out) = record_sh(name, &[], &format!("{0} -n 2000; {0} -n 2000; {0} -n 2000; true", s(&w)));
        let truths = out.truths();
        assert_eq!(truths.len(), 3, "{}", out.stdout);
        for t in &truths {
            assert_writers_truth(&r, t, name);
        }
        let stops = &r["diagnostics"]["exec_stops"];
        // The shell and the first writers process stood stopped (both parsed).
        assert_eq!((stops["count"].as_u64(), stops["parsed"].as_u64(), stops["not_stopped"].as_u64()), (Some(2), Some(2), Some(2)), "{stops}");

        // --debug-stop-every-exec: every process stopped again (what bench row 13 measures).
        let (r, out) = record_sh(&format!("{name}-every"), &["--debug-stop-every-exec"], &format!("{0} -n 200; {0} -n 200; true", s(&w)));
        for t in &out.truths() {
            assert_writers_truth(&r, t, name);
        }
        let stops = &r["diagnostics"]["exec_stops"];
        assert_eq!((stops["count"].as_u64(), stops["parsed"].as_u64(), stops["not_stopped"].as_u64()), (Some(3), Some(2), Some(0)), "{stops}");
    }
}

root_test! {
    /// A process let run at exec may exit before mapaudit reads its exec
    /// event (held back here by --debug-exec-stall): it is still named,
    /// from the file the kernel saw it exec, with exact counts.
    fn a_process_let_run_at_exec_is_named_even_once_gone(name) {
        let _g = SERIAL.lock();
        let w = fixture("writers");
        let (r, out) = record_sh(name, &["--debug-exec-stall", "300ms"], &format!("{0} -n 10; {0} -n 10; true", s(&w)));
        let truths = out.truths();
        assert_eq!(truths.len(), 2, "{}", out.stdout);
        for t in &truths {
            assert_writers_truth(&r, t, name);
        }
        assert_eq!(r["diagnostics"]["exec_stops"]["not_stopped"], 1, "{}", r["diagnostics"]["exec_stops"]);
    }
}

root_test! {
    /// A PIE's processes always stop at exec: its load address is read
    /// from /proc while it stands still.
    fn processes_of_a_pie_always_stop_at_exec(name) {
        let _g = SERIAL.lock();
        let w = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Pie).expect("PIE writers fixture");
        let (r, out) = record_sh(name, &[], &format!("{0} -n 200; {0} -n 200; true", s(&w)));
        for t in &out.truths() {
            assert_writers_truth(&r, t, name);
        }
        let stops = &r["diagnostics"]["exec_stops"];
        assert_eq!((stops["count"].as_u64(), stops["not_stopped"].as_u64()), (Some(3), Some(0)), "{stops}");
    }
}
