//! Running the measured commands: output captured on threads (no pipe
//! fills up), a deadline per run.

#![allow(unused_imports, reason = "each row file takes what it needs from one shared prelude")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::*;
use crate::{is_root, root};

/// Runs `mapaudit-bench ARGS` (killed after `timeout`) and returns the JSON
/// object it prints; a failed run, or one that printed none, is an error
/// naming the subcommand.
pub(super) fn helper_json(helper: &std::path::Path, args: &[String], timeout: Duration) -> anyhow::Result<serde_json::Value> {
    let sub = args.first().map_or("", String::as_str);
    let mut cmd = Command::new(helper);
    cmd.args(args);
    let out = capture_for(cmd, timeout)?;
    if !out.success {
        bail!("mapaudit-bench {sub} failed ({}): {}", out.status, out.stderr.trim());
    }
    json_line(&out.stdout).with_context(|| format!("mapaudit-bench {sub}: no JSON line in {}", out.stdout))
}

/// No single run may take longer than this.
pub(super) const RUN_TIMEOUT: Duration = Duration::from_secs(180);

pub(super) fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

pub(super) struct Captured {
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) success: bool,
    pub(super) status: String,
}

/// Runs `cmd` to completion with stdout and stderr captured (read on their
/// own threads: no pipe can fill up), killed after `RUN_TIMEOUT`.
pub(super) fn capture(cmd: Command) -> anyhow::Result<Captured> {
    capture_for(cmd, RUN_TIMEOUT)
}

/// `capture` with its own deadline (for a run known to be long).
pub(super) fn capture_for(mut cmd: Command, timeout: Duration) -> anyhow::Result<Captured> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().with_context(|| format!("starting {desc}"))?;
    let reader = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let err = reader(child.stderr.take().map(|r| Box::new(r) as Box<dyn std::io::Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{desc} took longer than {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Captured { stdout, stderr, success: status.success(), status: status.to_string() })
}
