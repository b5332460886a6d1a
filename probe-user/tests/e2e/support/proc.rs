//! Running mapaudit and the fixtures: one way to start a process, read its
//! output as it comes (on threads: no pipe ever fills and blocks it), wait
//! for a line with a deadline, signal it (nix), and collect what it printed.
//! Synchronisation is always on something the process says — mapaudit's
//! "recording", a fixture's "READY <pid>" or its truth — never on a sleep.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::mapaudit_bin;

/// How long a process may take to say what a test waits for. Generous: CI
/// machines are small and shared; a deadline only turns a hang into a
/// failure that shows what was said so far.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// One output stream of a child, read line by line on its own thread.
pub struct Lines {
    rx: Receiver<String>,
    seen: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Lines {
    fn pump(r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let seen = Arc::new(Mutex::new(String::new()));
        let all = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            loop {
                let mut l = String::new();
                match r.read_line(&mut l) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        all.lock().expect("output lock").push_str(&l);
                        let _ = tx.send(l);
                    }
                }
            }
        });
        Self { rx, seen, reader: Some(reader) }
    }

    /// A stream already consumed.
    fn done() -> Self {
        Self { rx: channel().1, seen: Arc::default(), reader: None }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.seen.lock().expect("output lock").clone()
    }

    /// The next line satisfying `ok`, within `within`; panics with
    /// everything read so far otherwise (or when the stream ends).
    pub fn wait_for(&self, what: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if ok(&l) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("timed out after {within:?} waiting for {what}; output so far:\n{}", self.text()),
                Err(RecvTimeoutError::Disconnected) => panic!("the stream ended before {what}; output:\n{}", self.text()),
            }
        }
    }

    /// Waits for the stream to end; everything it carried.
    fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.text()
    }
}

/// A running child with both output streams being read. Killed (and
/// reaped) if dropped while still running: a failed test leaves nothing
/// behind.
pub struct Proc {
    child: Option<Child>,
    pub out: Lines,
    pub err: Lines,
    what: String,
}

/// What a finished child printed, and how it ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The last stdout line that is JSON: a fixture's truth.
    pub fn truth(&self) -> Value {
        super::report::truth(self.stdout.as_bytes())
    }

    /// Every stdout line that is JSON, in order.
    pub fn truths(&self) -> Vec<Value> {
        super::report::truths(self.stdout.as_bytes())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with stderr unless the child exited 0.
    pub fn assert_success(&self, ctx: &str) -> &Self {
        assert!(self.status.success(), "{ctx}: {} ({}):\n{}", self.status, ctx, self.stderr);
        self
    }
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let out = Lines::pump(child.stdout.take().expect("piped stdout"));
        let err = Lines::pump(child.stderr.take().expect("piped stderr"));
        Self { child: Some(child), out, err, what }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running child").id()
    }

    /// Sends `sig`; the child must still exist (it is ours and unreaped).
    pub fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
    }

    /// SIGUSR1: what a `-wait-signal` fixture waits for to start writing.
    pub fn go(&self) {
        self.signal(Signal::SIGUSR1);
    }

    /// Whether it is still running (not exited, or exited but unreaped is
    /// "exited").
    pub fn running(&mut self) -> bool {
        self.child.as_mut().expect("child").try_wait().expect("try_wait").is_none()
    }

    /// Waits for the child to exit and for its streams to end.
    pub fn wait(mut self) -> Finished {
        let mut child = self.child.take().expect("child");
        let status = child.wait().unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what));
        let (out, err) = (std::mem::replace(&mut self.out, Lines::done()), std::mem::replace(&mut self.err, Lines::done()));
        Finished { status, stdout: out.finish(), stderr: err.finish() }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `kill(pid, sig)` through nix; panics if the process is gone.
pub fn signal(pid: u32, sig: Signal) {
    let p = Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    kill(p, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
}

/// `mapaudit ARGS` as a command (to add environment or a directory).
pub fn mapaudit(args: &[&str]) -> Command {
    let mut c = Command::new(mapaudit_bin());
    c.args(with_exec_stop_timeout(args, std::env::var(EXEC_STOP_TIMEOUT_ENV).ok().as_deref()));
    c
}

/// Set by `cargo xtask test-arm64` in its emulated machine: the
/// `--exec-stop-timeout` of every `record … -- CMD` that does not choose its
/// own. Under emulation on a loaded host, attaching to a program stopped at
/// exec can outlast the 1 s default; the watchdog then resumes it unaudited
/// and the writes it makes before the probes land are missing (a lost
/// overlap, an unnamed reader). The tests about the deadline itself pass
/// `--exec-stop-timeout` and keep their value; natively nothing changes.
pub const EXEC_STOP_TIMEOUT_ENV: &str = "MAPAUDIT_E2E_EXEC_STOP_TIMEOUT";

/// `args` with `--exec-stop-timeout TIMEOUT` after `record` when they run a
/// command (`--`) and set no deadline of their own.
pub fn with_exec_stop_timeout<'a>(args: &[&'a str], timeout: Option<&'a str>) -> Vec<&'a str> {
    let mut v = args.to_vec();
    let record = args.iter().position(|a| *a == "record");
    let cmd = args.iter().position(|a| *a == "--");
    if let (Some(t), Some(r), Some(c)) = (timeout, record, cmd)
        && r < c
        && !args[..c].iter().any(|a| a.starts_with("--exec-stop-timeout"))
    {
        v.splice(r + 1..r + 1, ["--exec-stop-timeout", t]);
    }
    v
}


/// `mapaudit ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    mapaudit(args).stdin(Stdio::null()).output().expect("running mapaudit")
}

/// `mapaudit ARGS` to completion, through [`Proc`] (for [`Finished::truth`]).
pub fn record(args: &[&str]) -> Finished {
    Proc::spawn(mapaudit(args)).wait()
}

/// Starts mapaudit and returns once it says it is recording (its probes are
/// attached), with that line; panics with its output if it never does.
pub fn start_mapaudit(args: &[&str]) -> (Proc, String) {
    start_mapaudit_cmd(mapaudit(args))
}

/// [`start_mapaudit`] for a prepared command.
pub fn start_mapaudit_cmd(cmd: Command) -> (Proc, String) {
    let m = Proc::spawn(cmd);
    let line = m.err.wait_for("mapaudit to say it is recording", DEADLINE, |l| l.contains("recording"));
    (m, line)
}

/// Starts a fixture (no waiting).
pub fn spawn_fixture(bin: &Path, args: &[&str]) -> Proc {
    let mut c = Command::new(bin);
    c.args(args);
    Proc::spawn(c)
}

/// Starts a fixture with `-wait-signal` (added here) and returns once it
/// says `READY <pid>`: it has started and makes no map write until
/// [`Proc::go`].
pub fn spawn_waiting(bin: &Path, args: &[&str]) -> Proc {
    let mut c = Command::new(bin);
    c.args(args).arg("-wait-signal");
    let p = Proc::spawn(c);
    let line = p.err.wait_for("the fixture's READY line", DEADLINE, |l| l.starts_with("READY"));
    let said: u32 = line.trim().strip_prefix("READY ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("fixture said {line:?}"));
    assert_eq!(said, p.pid(), "READY names the fixture's own pid");
    p
}
