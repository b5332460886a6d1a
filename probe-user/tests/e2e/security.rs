//! Security (issue #19): mapaudit runs as root on behalf of a less privileged
//! user and runs that user's command; nothing the command (or that user)
//! does may turn mapaudit's privileges against anyone else.
//!
//! - the attack: the command plants symlinks at every name it can guess for
//!   the report, its temp file and the logs, pointing at a root-owned file
//!   outside; nothing outside the output directory changes, and the report
//!   is owned by the user;
//! - pid reuse: a process that took over a tracked pid is never continued;
//! - what the command inherits: only stdio, the user's groups and environment.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const NOBODY: u32 = 65534;

/// A root-owned file outside every directory the user can write, and its
/// state (content, mtime, inode) to compare against later.
struct Canary {
    path: PathBuf,
    before: (Vec<u8>, i64, i64, u64),
}

impl Canary {
    fn new(name: &str) -> Self {
        let dir = scratch(name);
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
        let path = dir.join("canary");
        std::fs::write(&path, b"root's file: must never change\n").unwrap();
        let before = Self::state(&path);
        Self { path, before }
    }

    fn state(p: &Path) -> (Vec<u8>, i64, i64, u64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (std::fs::read(p).unwrap(), m.mtime(), m.mtime_nsec(), m.ino())
    }

    fn assert_unchanged(&self, ctx: &str) {
        assert_eq!(Self::state(&self.path), self.before, "{ctx}: the canary outside the output directory changed");
    }
}

/// Every name the old scheme used, around a report `r.json` written by
/// mapaudit pid `$PPID` (CMD's parent), as shell commands planting symlinks
/// to `canary` in `out` and `tmp`.
fn plant_script(out: &Path, tmp: &Path, canary: &Path, final_name_too: bool) -> String {
    let mut names = vec![".r.json.mapaudit-tmp.$PPID", "mapaudit-$PPID.log", "mapaudit-top-$PPID.log", ".r.json.tmp"];
    if final_name_too {
        names.push("r.json");
    }
    let mut s = String::from("set -e\n");
    for d in [out, tmp] {
        for n in &names {
            s += &format!("ln -sfn '{}' '{}/{n}'\n", canary.display(), d.display());
        }
    }
    s += &format!("touch '{}/planted'\n", out.display());
    s
}

fn record_as_nobody(out: &Path, tmp: &Path, script: &str) -> std::process::Output {
    Command::new(mapaudit_bin())
        .args(["record", "--no-bpf-maps", "--json"])
        .arg(out.join("r.json"))
        .args(["--", "/bin/sh", "-c", script])
        .env("SUDO_UID", NOBODY.to_string())
        .env("SUDO_GID", NOBODY.to_string())
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

/// A world-writable sticky directory, like /tmp.
fn sticky_tmp(name: &str) -> PathBuf {
    let tmp = scratch(name);
    std::os::unix::fs::chown(&tmp, Some(0), Some(0)).unwrap();
    Command::new("chmod").arg("1777").arg(&tmp).status().unwrap();
    tmp
}

root_test! {
    fn planted_symlinks_never_redirect_a_write(_) {
        let canary = Canary::new("sec_canary");
        let out = scratch_owned("sec_attack_out", NOBODY, NOBODY);
        let tmp = sticky_tmp("sec_attack_tmp");

        // 1. Every guessable name but the report's own: the report is written,
        // as nobody, and nothing outside changes.
        let out1 = record_as_nobody(&out, &tmp, &plant_script(&out, &tmp, &canary.path, false));
        let err = String::from_utf8_lossy(&out1.stderr);
        assert!(out1.status.success(), "{err}");
        assert!(out.join("planted").exists(), "the command ran and planted its links: {err}");
        canary.assert_unchanged("names around the report");
        let report = out.join("r.json");
        let m = std::fs::symlink_metadata(&report).unwrap();
        assert!(m.file_type().is_file(), "the report is a regular file");
        assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY), "the report belongs to the user mapaudit acted for");
        read_json(&report);
        // No temp file left behind; every planted link is still a link.
        for e in std::fs::read_dir(&out).unwrap() {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.ends_with(".mapaudit-tmp") || e.file_type().unwrap().is_symlink(), "leftover {n}");
        }

        // 2. The report's own name too, swapped for a symlink while recording:
        // mapaudit refuses to replace it, says so and where the report is, exit 2.
        let out2 = record_as_nobody(&out, &tmp, &plant_script(&out, &tmp, &canary.path, true));
        let err = String::from_utf8_lossy(&out2.stderr);
        assert_eq!(out2.status.code(), Some(2), "{err}");
        assert!(err.contains("not replacing") && err.contains("symbolic link") && err.contains("the report is in"), "{err}");
        canary.assert_unchanged("the report's own name");
        assert!(std::fs::symlink_metadata(&report).unwrap().file_type().is_symlink(), "the link was left alone");
        let kept: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file() && e.file_name().to_string_lossy().ends_with(".mapaudit-tmp"))
            .map(|e| e.path())
            .collect();
        assert_eq!(kept.len(), 1, "the report kept under its temp name: {kept:?}");
        assert!(err.contains(&kept[0].display().to_string()), "the message names {}: {err}", kept[0].display());
        assert_eq!(std::fs::metadata(&kept[0]).unwrap().uid(), NOBODY);
        read_json(&kept[0]);

        // 3. A symlink already there when mapaudit starts: refused up front.
        let out3 = record_as_nobody(&out, &tmp, "true");
        let err = String::from_utf8_lossy(&out3.stderr);
        assert_eq!(out3.status.code(), Some(2), "{err}");
        assert!(err.contains("symbolic link") && err.contains("not a regular file"), "{err}");
        canary.assert_unchanged("a symlink at start");

        // 4. A directory the user cannot write: refused up front, the message
        // says as whom mapaudit writes.
        let root_only = scratch("sec_attack_root_only");
        std::os::unix::fs::chown(&root_only, Some(0), Some(0)).unwrap();
        let out4 = Command::new(mapaudit_bin())
            .args(["record", "--no-bpf-maps", "--json"])
            .arg(root_only.join("r.json"))
            .args(["--", "true"])
            .env("SUDO_UID", NOBODY.to_string())
            .env("SUDO_GID", NOBODY.to_string())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out4.stderr);
        assert_eq!(out4.status.code(), Some(2), "{err}");
        assert!(err.contains("user nobody (uid 65534)") && err.contains("choose a directory that user can write"), "{err}");
        assert!(!root_only.join("r.json").exists());
    }
}

/// Kills the tmux session however the test ends.
struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

fn wait_until(what: &str, secs: u64, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

root_test! {
    fn the_live_views_logs_are_fresh_files_of_the_user(_) {
        let canary = Canary::new("sec_log_canary");
        let tmp = sticky_tmp("sec_log_tmp");
        let out = scratch_owned("sec_log_out", NOBODY, NOBODY);
        // The old names were mapaudit-PID.log and mapaudit-top-PID.log, created
        // before the command runs: an attacker plants them for the next pids.
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid").unwrap().trim().parse().unwrap();
        for pid in last + 1..last + 2000 {
            for n in [format!("mapaudit-{pid}.log"), format!("mapaudit-top-{pid}.log")] {
                let l = tmp.join(n);
                std::os::unix::fs::symlink(&canary.path, &l).unwrap();
                std::os::unix::fs::lchown(&l, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        let script = plant_script(&out, &tmp, &canary.path, false) + "echo written-by-the-command\n";
        let session = format!("mapaudit-sec-{}", std::process::id());
        let _cleanup = Tmux(session.clone());
        let script_file = out.join("plant.sh");
        std::fs::write(&script_file, script).unwrap();
        let cmd = format!(
            "SUDO_UID={NOBODY} SUDO_GID={NOBODY} TMPDIR='{}' {} top --log-level debug -- /bin/sh '{}' 2>'{}/stderr'; echo EXITED=$? > '{}/exited'; sleep 600",
            tmp.display(),
            mapaudit_bin(),
            script_file.display(),
            out.display(),
            out.display()
        );
        let st = Command::new("tmux").args(["new-session", "-d", "-x", "160", "-y", "45", "-s", &session, &cmd]).status().unwrap();
        assert!(st.success());
        wait_until("the command to plant its links", 30, || out.join("planted").exists());
        // Quit once the view is drawn (its header line names the attached
        // command), and the command has written its line to its log.
        let screen = || String::from_utf8_lossy(&Command::new("tmux").args(["capture-pane", "-p", "-t", &session]).output().unwrap().stdout).into_owned();
        wait_until("the view to be drawn", 30, || screen().lines().next().is_some_and(|l| l.contains("writes/s")));
        let command_log_written = || {
            std::fs::read_dir(&tmp).unwrap().flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("mapaudit-top-")
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("written-by-the-command"))
            })
        };
        wait_until("the command's line in its log", 30, command_log_written);
        Command::new("tmux").args(["send-keys", "-t", &session, "q"]).status().unwrap();
        wait_until("mapaudit to quit", 30, || out.join("exited").exists());
        let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
        canary.assert_unchanged("logs");
        // Both logs: fresh regular files under new names, the user's, 0600.
        let logs: Vec<PathBuf> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file() && e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.path())
            .collect();
        assert_eq!(logs.len(), 2, "a debug log and the command's output: {logs:?}; stderr: {stderr}");
        for l in &logs {
            let m = std::fs::symlink_metadata(l).unwrap();
            assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (NOBODY, NOBODY, 0o600), "{}", l.display());
            assert!(stderr.contains(&l.display().to_string()), "stderr names {}: {stderr}", l.display());
        }
        let cmd_log = logs.iter().find(|l| l.file_name().unwrap().to_string_lossy().starts_with("mapaudit-top-")).unwrap();
        assert!(std::fs::read_to_string(cmd_log).unwrap().contains("written-by-the-command"));
        let debug_log = logs.iter().find(|l| !l.file_name().unwrap().to_string_lossy().starts_with("mapaudit-top-")).unwrap();
        assert!(std::fs::metadata(debug_log).unwrap().len() > 0, "the debug log has lines");
    }
}

root_test! {
    fn a_reused_pid_is_never_continued(_) {
        use mapaudit::host::pidctl;
        // A tracked process (its exec event at `event`), which exits and is reaped…
        let mut tracked = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = tracked.id();
        let event = pidctl::monotonic_ns();
        tracked.kill().unwrap();
        tracked.wait().unwrap();
        // Start times have clock-tick resolution (10 ms): a process started within
        // the event's tick is indistinguishable from the tracked one. Naturally a
        // reaped pid comes round again only after the whole pid space; steered
        // (below, root only) it could within the tick, so wait for the next tick
        // to begin — the residual window pidctl documents.
        let tick = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
        let next_tick = (pidctl::monotonic_to_boottime_ns(event) / tick + 1) * tick;
        wait_until("the clock tick after the event", 5, || pidctl::monotonic_to_boottime_ns(pidctl::monotonic_ns()) >= next_tick);
        // …and an unrelated process that gets the very same pid: root can steer
        // the next pid (ns_last_pid); other processes forking meanwhile may take
        // it first, so try until it lands.
        let mut reuser = None;
        for _ in 0..500 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
            let mut c = Command::new("sleep").arg("30").stdin(Stdio::null()).spawn().unwrap();
            if c.id() == pid {
                reuser = Some(c);
                break;
            }
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let mut reuser = reuser.unwrap_or_else(|| panic!("could not get pid {pid} reused in 500 tries"));
        assert!(pidctl::start_boottime_ns(pid).unwrap() > pidctl::monotonic_to_boottime_ns(event), "the reuser started after the event");
        // Stopped, as it would be if mapaudit's SIGCONT were its only way on.
        let state = |p: u32| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
            s[s.rfind(')').unwrap() + 2..].chars().next().unwrap()
        };
        Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
        wait_until("the reuser to stop", 5, || state(pid) == 'T');
        // mapaudit answering the tracked process's exec event: refused.
        assert!(!pidctl::continue_if_same(pid, event).unwrap(), "the process now at pid {pid} is not the tracked one");
        // No wait needed: a SIGCONT wakes a stopped process while it is being
        // sent (the control below sees the change right after its call).
        assert_eq!(state(pid), 'T', "the unrelated process was never continued");
        // Control: for an event after it started, the same call does continue it.
        assert!(pidctl::continue_if_same(pid, pidctl::monotonic_ns()).unwrap());
        wait_until("the reuser to continue", 5, || state(pid) != 'T');
        reuser.kill().unwrap();
        reuser.wait().unwrap();
    }
}

/// A user with a supplementary group, created once (idempotent): sudo's
/// `initgroups` is only visible with one.
fn test_user() -> (u32, u32, u32) {
    const USER: &str = "mapaudit-t";
    const EXTRA: &str = "mapaudit-t-extra";
    let id = |args: &[&str]| -> Option<u32> {
        let o = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok().filter(|_| o.status.success())
    };
    if Command::new("getent").args(["group", EXTRA]).output().unwrap().stdout.is_empty() {
        assert!(Command::new("groupadd").args(["--system", EXTRA]).status().unwrap().success());
    }
    if id(&["-u", USER]).is_none() {
        let st = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent/mapaudit-t"])
            .args(["--shell", "/usr/sbin/nologin", "--groups", EXTRA, USER])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {USER}");
    }
    let g = String::from_utf8_lossy(&Command::new("getent").args(["group", EXTRA]).output().unwrap().stdout).into_owned();
    let extra: u32 = g.split(':').nth(2).unwrap().parse().unwrap();
    (id(&["-u", USER]).unwrap(), id(&["-g", USER]).unwrap(), extra)
}

/// What a shell learns about itself: its descriptor numbers, the targets of
/// those, its environment, groups.
fn introspect(out: &Path) -> String {
    let o = out.display();
    format!(
        "ls /proc/$$/fd > '{o}/fds'; ls -l /proc/$$/fd > '{o}/fds-long' 2>&1; env > '{o}/env'; id -G > '{o}/groups'; id -u > '{o}/uid'"
    )
}

/// Starts `cmd` with stdio only, whatever this test process inherited
/// (a CI runner's or cargo's descriptors would otherwise pass on, as they do
/// from any shell).
fn only_stdio(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: close_range is a plain syscall, async-signal-safe, between fork
    // and exec; it closes only descriptors the child would inherit.
    unsafe {
        cmd.pre_exec(|| {
            if libc::close_range(3, libc::c_uint::MAX, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn fd_set(p: &Path) -> BTreeSet<u32> {
    std::fs::read_to_string(p).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect()
}

root_test! {
    fn the_command_inherits_stdio_and_the_users_environment_only(_) {
        let (uid, gid, extra) = test_user();
        let out = scratch_owned("sec_inherit_out", uid, gid);
        let base = scratch_owned("sec_inherit_baseline", uid, gid);
        // The baseline: the same shell started directly, as a parent shell would.
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &introspect(&base)]);
        let st = only_stdio(&mut sh).status().unwrap();
        assert!(st.success());
        let env: &[(&str, &str)] = &[
            ("SUDO_UID", &uid.to_string()),
            ("SUDO_GID", &gid.to_string()),
            ("SUDO_USER", "mapaudit-t"),
            // What root's environment under sudo looks like; none of it is the user's.
            ("HOME", "/root"),
            ("USER", "root"),
            ("LOGNAME", "root"),
            ("SHELL", "/bin/bash"),
            ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin::.:relative/bin"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
        ];
        let mut cmd = Command::new(mapaudit_bin());
        cmd.args(["record", "--no-bpf-maps", "--json"]).arg(out.join("r.json")).args(["--", "/bin/sh", "-c", &introspect(&out)]);
        only_stdio(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

        // mapaudit started with only stdio: CMD has exactly what a directly
        // started shell has — stdio (and whatever the shell opens for itself:
        // dash saves stdout and stderr at fds 10 and 11 while redirecting) —
        // none of mapaudit's descriptors.
        let fds = fd_set(&out.join("fds"));
        let long = std::fs::read_to_string(out.join("fds-long")).unwrap();
        let base_long = std::fs::read_to_string(base.join("fds-long")).unwrap();
        assert_eq!(fds, fd_set(&base.join("fds")), "CMD's descriptors:\n{long}\na direct shell's:\n{base_long}");
        assert!(fds.contains(&0) && fds.contains(&1) && fds.contains(&2));
        for target in long.lines().filter_map(|l| l.split_once(" -> ").map(|(_, t)| t)) {
            for bad in ["anon_inode", "bpf", "perf_event", "mapaudit-", "/sys/"] {
                assert!(!target.contains(bad), "a mapaudit descriptor leaked into CMD: {target}\n{long}");
            }
        }

        let env_out = std::fs::read_to_string(out.join("env")).unwrap();
        let var = |k: &str| env_out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(str::to_string);
        assert_eq!(var("HOME").as_deref(), Some("/nonexistent/mapaudit-t"), "{env_out}");
        assert_eq!(var("USER").as_deref(), Some("mapaudit-t"));
        assert_eq!(var("LOGNAME").as_deref(), Some("mapaudit-t"));
        assert_eq!(var("SHELL").as_deref(), Some("/usr/sbin/nologin"));
        assert_eq!(var("MAIL").as_deref(), Some("/var/mail/mapaudit-t"));
        assert_eq!(var("PATH").as_deref(), Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        assert_eq!(var("XDG_RUNTIME_DIR"), None);
        assert_eq!(var("SUDO_USER").as_deref(), Some("mapaudit-t"), "sudo's own variables pass");

        let uid_out: u32 = std::fs::read_to_string(out.join("uid")).unwrap().trim().parse().unwrap();
        assert_eq!(uid_out, uid);
        let groups: BTreeSet<u32> =
            std::fs::read_to_string(out.join("groups")).unwrap().split_whitespace().map(|g| g.parse().unwrap()).collect();
        assert_eq!(groups, BTreeSet::from([gid, extra]), "the user's groups, as initgroups sets them");
        let m = std::fs::metadata(out.join("r.json")).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "the report belongs to the user");
    }
}

root_test! {
    fn top_runs_the_command_as_the_sudo_user_with_its_output_in_a_file(_) {
        // `sudo mapaudit top -- CMD`: CMD runs as the invoking user, and its
        // output goes to a file of that user's (the terminal is the view's).
        let (uid, gid, extra) = test_user();
        let out = scratch_owned("sec_top_cmd_out", uid, gid);
        let tmp = scratch_owned("sec_top_cmd_tmp", uid, gid);
        let script = format!(
            "{}; echo line-on-stdout; echo line-on-stderr >&2; touch '{}/done'\n",
            introspect(&out),
            out.display()
        );
        let script_file = out.join("cmd.sh");
        std::fs::write(&script_file, script).unwrap();
        let session = format!("mapaudit-topcmd-{}", std::process::id());
        let _cleanup = Tmux(session.clone());
        let cmd = format!(
            "SUDO_UID={uid} SUDO_GID={gid} SUDO_USER=mapaudit-t TMPDIR='{}' {} top -- /bin/sh '{}' 2>'{}/stderr'; echo EXITED=$? > '{}/exited'; sleep 600",
            tmp.display(),
            mapaudit_bin(),
            script_file.display(),
            out.display(),
            out.display()
        );
        let st = Command::new("tmux").args(["new-session", "-d", "-x", "160", "-y", "45", "-s", &session, &cmd]).status().unwrap();
        assert!(st.success());
        wait_until("the command to finish", 30, || out.join("done").exists());
        let screen = || String::from_utf8_lossy(&Command::new("tmux").args(["capture-pane", "-p", "-t", &session]).output().unwrap().stdout).into_owned();
        // Nothing of the command's output is on the terminal: it is the view's.
        wait_until("the view to be drawn", 30, || screen().lines().next().is_some_and(|l| l.contains("writes/s")));
        let shown = screen();
        assert!(!shown.contains("line-on-stdout") && !shown.contains("line-on-stderr"), "{shown}");
        Command::new("tmux").args(["send-keys", "-t", &session, "q"]).status().unwrap();
        wait_until("mapaudit to quit", 30, || out.join("exited").exists());
        assert_eq!(std::fs::read_to_string(out.join("exited")).unwrap().trim(), "EXITED=0");

        let id_u: u32 = std::fs::read_to_string(out.join("uid")).unwrap().trim().parse().unwrap();
        assert_eq!(id_u, uid, "CMD runs as the sudo user");
        let groups: BTreeSet<u32> =
            std::fs::read_to_string(out.join("groups")).unwrap().split_whitespace().map(|g| g.parse().unwrap()).collect();
        assert_eq!(groups, BTreeSet::from([gid, extra]), "with the user's groups");
        let logs: Vec<PathBuf> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("mapaudit-top-"))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        let log = std::fs::read_to_string(&logs[0]).unwrap();
        assert_eq!(log, "line-on-stdout\nline-on-stderr\n", "both streams, in order");
        let m = std::fs::symlink_metadata(&logs[0]).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (uid, gid, 0o600));
        let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
        assert!(stderr.contains(&logs[0].display().to_string()), "stderr names the file: {stderr}");
    }
}
