//! The exec guard: a small process of mapaudit's own that holds a pidfd for
//! every process the kernel stopped at exec (`-- CMD`) until mapaudit has
//! attached its probes and resumed it.
//!
//! Two promises that mapaudit's own loop cannot keep by itself:
//! - **Never left stopped.** If mapaudit dies between a stop and its resume
//!   (SIGKILL, OOM killer, a crash), its end of the guard's socket closes and
//!   the guard continues every process it still holds. A thread could not do
//!   this: it dies with its process.
//! - **Not even before mapaudit knows of it.** A process the kernel stopped
//!   whose exec event mapaudit had not read yet is held by nobody. The
//!   kernel lists every stop in `EXEC_STOPPED` (pid → the exec's time) just
//!   before it sends it, and mapaudit drops the entry once the guard holds
//!   the process; the guard got that map's fd at start, which keeps the map
//!   alive after mapaudit dies. Once mapaudit is gone entirely (its pidfd
//!   polls readable only after its files, the programs' links among them,
//!   are released), the guard resumes every process still listed — pinned
//!   to the process that exec'd, as always — then, after an RCU grace period
//!   (a program run in flight at detach has returned), looks once more, and
//!   exits.
//! - **Never waits past a deadline.** If attaching stalls or fails silently
//!   (a huge binary to parse, a slow kernel), the guard continues the process
//!   at its deadline (`--exec-stop-timeout`) and tells mapaudit, which
//!   reports the process as not audited from its start.
//!
//! The guard is `mapaudit __exec-guard MS` with one end of a SOCK_SEQPACKET
//! socket pair as its stdin, in its own process group (a Ctrl-C to the
//! terminal's group must not take it down with mapaudit), ignoring
//! SIGINT/SIGTERM/SIGHUP. It receives pidfds (SCM_RIGHTS) that mapaudit
//! opened and checked against the exec's time (`pidctl`), so it can only
//! ever signal the process that exec'd — never one that took over its pid.
//! It is started before mapaudit tracks its own children: it is never
//! stopped at its own exec.
//!
//! Messages are one fixed-size datagram each: kind, pid, token.

use std::collections::HashSet;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType, recvmsg, sendmsg, socketpair,
};

/// The hidden first argument that makes `mapaudit` the guard.
pub const GUARD_ARG: &str = "__exec-guard";

/// mapaudit → guard: hold this pidfd (attached) until released.
const HOLD: u8 = b'H';
/// mapaudit → guard: resumed it myself; drop it.
const RELEASE: u8 = b'R';
/// guard → mapaudit: the deadline passed; I resumed it.
const RESUMED: u8 = b'W';
/// mapaudit → guard, first: `EXEC_STOPPED`'s fd and a pidfd of mapaudit.
const SETUP: u8 = b'S';

const MSG_LEN: usize = 16;

fn encode(kind: u8, pid: u32, token: u64) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0] = kind;
    m[4..8].copy_from_slice(&pid.to_le_bytes());
    m[8..16].copy_from_slice(&token.to_le_bytes());
    m
}

fn decode(m: &[u8]) -> Option<(u8, u32, u64)> {
    if m.len() != MSG_LEN {
        return None;
    }
    Some((m[0], u32::from_le_bytes(m[4..8].try_into().ok()?), u64::from_le_bytes(m[8..16].try_into().ok()?)))
}

/// mapaudit's side of the guard.
pub struct ExecGuard {
    sock: OwnedFd,
    child: std::process::Child,
    next_token: u64,
    /// Set once a send failed (the guard is gone): later stops are resumed
    /// by mapaudit alone, as before the guard existed.
    broken: bool,
}

/// A process stopped at exec and held by the guard.
pub struct Held {
    pub pid: u32,
    pub token: u64,
}

impl ExecGuard {
    /// Starts the guard with `timeout` as every held process's deadline,
    /// and `exec_stopped` (the `EXEC_STOPPED` map) to sweep once mapaudit
    /// is gone.
    pub fn start(timeout: Duration, exec_stopped: BorrowedFd<'_>) -> io::Result<Self> {
        let (mine, theirs) = socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg(GUARD_ARG)
            .arg(timeout.as_millis().max(1).to_string())
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn()?;
        // Queued before anything can be stopped: the guard reads it first.
        let me = rustix::process::pidfd_open(rustix::process::getpid(), rustix::process::PidfdFlags::empty())?;
        send_fds(&mine, &encode(SETUP, std::process::id(), 0), &[exec_stopped, me.as_fd()])?;
        rustix::io::ioctl_fionbio(&mine, true)?;
        Ok(Self { sock: mine, child, next_token: 1, broken: false })
    }

    /// Hands the guard a pidfd for `pid`, stopped at exec. None when the guard
    /// is gone (the caller resumes the process itself, as it always does).
    pub fn hold(&mut self, pid: u32, pidfd: BorrowedFd<'_>) -> Option<Held> {
        if self.broken {
            return None;
        }
        let token = self.next_token;
        self.next_token += 1;
        match send_fds(&self.sock, &encode(HOLD, pid, token), &[pidfd]) {
            Ok(()) => Some(Held { pid, token }),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Tells the guard mapaudit resumed `held` itself.
    pub fn release(&mut self, held: Held) {
        if self.broken {
            return;
        }
        let msg = encode(RELEASE, held.pid, held.token);
        if let Err(e) = rustix::net::send(&self.sock, &msg, SendFlags::NOSIGNAL) {
            self.fail(e);
        }
    }

    /// The pids the guard resumed at their deadline since the last call.
    pub fn resumed_by_watchdog(&mut self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut buf = [0u8; MSG_LEN];
        loop {
            match rustix::net::recv(&self.sock, &mut buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) if n == MSG_LEN => {
                    if let Some((RESUMED, pid, _)) = decode(&buf) {
                        out.push(pid);
                    }
                }
                Ok(_) => break,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        out
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        if !self.broken {
            log::warn!("the exec guard is gone ({e}); processes stopped at exec are resumed by mapaudit alone");
        }
        self.broken = true;
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        // Closing our end makes the guard resume whatever it still holds
        // (nothing, after a normal end) and exit; reap it if it already has.
        let _ = self.child.try_wait();
    }
}

/// Sends `msg` with `fds` attached (SCM_RIGHTS).
fn send_fds(sock: &OwnedFd, msg: &[u8; MSG_LEN], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    if !cmsg.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many fds for one message"));
    }
    sendmsg(sock, &[IoSlice::new(msg)], &mut cmsg, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Continues every process `exec_stopped` (`EXEC_STOPPED`) lists that is
/// still the process that exec'd (`pidctl`: a pid since reused is never
/// signalled) and not in `done`. Returns the entries continued (added to
/// `done`). The map's contents are the kernel's: only its pids are ever
/// signalled, through pidfds.
pub fn continue_listed<T: std::borrow::Borrow<aya::maps::MapData>>(
    exec_stopped: &aya::maps::HashMap<T, u32, u64>,
    done: &mut HashSet<(u32, u64)>,
) -> Vec<(u32, u64)> {
    let listed: Vec<(u32, u64)> = exec_stopped.iter().filter_map(Result::ok).collect();
    let mut out = Vec::new();
    for (pid, ktime_ns) in listed {
        if !done.insert((pid, ktime_ns)) {
            continue;
        }
        match crate::host::pidctl::pin_if_same(pid, ktime_ns) {
            Ok(Some(p)) => match p.signal(rustix::process::Signal::CONT) {
                Ok(true) => out.push((pid, ktime_ns)),
                Ok(false) => {}
                Err(e) => eprintln!("mapaudit exec guard: cannot continue pid {pid}: {e}"),
            },
            Ok(None) => {}
            Err(e) => eprintln!("mapaudit exec guard: cannot pin pid {pid}: {e}"),
        }
    }
    out
}

/// What the guard got at `SETUP`.
struct Setup {
    exec_stopped: aya::maps::HashMap<aya::maps::MapData, u32, u64>,
    mapaudit: OwnedFd,
}

impl Setup {
    fn from_fds(fds: Vec<OwnedFd>) -> Option<Self> {
        let [map, mapaudit]: [OwnedFd; 2] = fds.try_into().ok()?;
        let map = aya::maps::MapData::from_fd(map).ok()?;
        // Only the kernel's list of stops is ever read for pids to signal
        // (`try_from` checks its type and key and value sizes).
        if map.info().ok()?.name_as_str() != Some(probe_common::maps::EXEC_STOPPED) {
            return None;
        }
        let exec_stopped = aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(map).ok()?).ok()?;
        Some(Self { exec_stopped, mapaudit })
    }

    /// Once mapaudit is gone entirely (no program of its can stop anything
    /// any more), continues whatever the kernel stopped and mapaudit never
    /// took over.
    fn sweep_after_mapaudit(&self) {
        loop {
            let mut fds = [PollFd::new(&self.mapaudit, PollFlags::IN)];
            match poll(&mut fds, None) {
                Ok(n) if n > 0 => break,
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("mapaudit exec guard: cannot wait for mapaudit's end ({e}); sweeping now");
                    break;
                }
            }
        }
        let mut done = HashSet::new();
        let say = |resumed: Vec<(u32, u64)>| {
            for (pid, _) in resumed {
                eprintln!(
                    "mapaudit exec guard: mapaudit ended before it read pid {pid}'s exec (stopped at exec); resumed it"
                );
            }
        };
        say(continue_listed(&self.exec_stopped, &mut done));
        // A program run that began before its link went may still be
        // listing a process and stopping it: after a grace period (what
        // MEMBARRIER_CMD_GLOBAL waits for) every such run has returned.
        if rustix::thread::membarrier(rustix::thread::MembarrierCommand::Global).is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
        say(continue_listed(&self.exec_stopped, &mut done));
    }
}

/// The guard process's main: serves `sock` until mapaudit closes it.
pub fn serve(sock: BorrowedFd<'_>, timeout: Duration) -> i32 {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    let mut held: Vec<(u32, u64, OwnedFd, Instant)> = Vec::new();
    let mut setup: Option<Setup> = None;
    loop {
        let now = Instant::now();
        // Deadlines first: resume and report whatever is due.
        held.retain(|(pid, token, fd, deadline)| {
            if *deadline > now {
                return true;
            }
            let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::CONT);
            let _ = rustix::net::send(sock, &encode(RESUMED, *pid, *token), SendFlags::NOSIGNAL);
            false
        });
        let wait = held.iter().map(|h| h.3.saturating_duration_since(now)).min();
        let ts = wait.map(|d| rustix::time::Timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as i64 });
        let mut fds = [PollFd::new(&sock, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let mut buf = [0u8; MSG_LEN];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(sock, &mut [IoSliceMut::new(&mut buf)], &mut cmsg, RecvFlags::CMSG_CLOEXEC);
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(got) = m {
                fds.extend(got);
            }
        }
        // HOLD carries one fd; any extra is closed as it drops.
        let pidfd = if fds.len() == 1 { fds.pop() } else { None };
        match got {
            // 0 bytes: mapaudit's end closed (it exited, or was killed).
            Ok(r) if r.bytes == 0 => break,
            Ok(r) => match decode(&buf[..r.bytes.min(MSG_LEN)]) {
                Some((HOLD, pid, token)) => {
                    if let Some(fd) = pidfd {
                        held.push((pid, token, fd, Instant::now() + timeout));
                    }
                }
                Some((RELEASE, _, token)) => held.retain(|h| h.1 != token),
                Some((SETUP, _, _)) if setup.is_none() => {
                    setup = Setup::from_fds(fds);
                    if setup.is_none() {
                        eprintln!("mapaudit exec guard: bad setup; a process stopped before mapaudit read its exec is not covered");
                    }
                }
                _ => {}
            },
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(_) => break,
        }
    }
    // mapaudit is gone: nobody will resume these but us.
    for (pid, _, fd, _) in &held {
        let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::CONT);
        eprintln!("mapaudit exec guard: mapaudit ended while pid {pid} stood stopped at exec; resumed it");
    }
    drop(held);
    if let Some(s) = setup {
        s.sweep_after_mapaudit();
    }
    0
}

/// `main` of `mapaudit __exec-guard MS` (stdin: the guard's socket).
pub fn main_from_args(args: &[std::ffi::OsString]) -> i32 {
    let ms = args.first().and_then(|a| a.to_str()).and_then(|s| s.parse::<u64>().ok()).unwrap_or(1000);
    let stdin = std::io::stdin();
    serve(stdin.as_fd(), Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::pidctl::tests::{end, state, wait_state};

    #[test]
    fn messages_round_trip() {
        let m = encode(HOLD, 4242, 7);
        assert_eq!(decode(&m), Some((HOLD, 4242, 7)));
        assert_eq!(decode(&m[..8]), None);
    }

    /// A guard served from a thread (the same loop as the process runs).
    fn guard_thread(timeout: Duration) -> (OwnedFd, std::thread::JoinHandle<i32>) {
        let (mine, theirs) = socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
        let h = std::thread::spawn(move || serve(theirs.as_fd(), timeout));
        (mine, h)
    }

    /// A stopped process and a pidfd for it.
    fn stopped_sleeper() -> (std::process::Child, OwnedFd) {
        let c = crate::host::pidctl::tests::stopped_sleeper();
        let pid = rustix::process::Pid::from_raw(c.id() as i32).unwrap();
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        (c, fd)
    }

    fn send_hold(sock: &OwnedFd, pid: u32, token: u64, fd: &OwnedFd) {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut cmsg = SendAncillaryBuffer::new(&mut space);
        let fds = [fd.as_fd()];
        cmsg.push(SendAncillaryMessage::ScmRights(&fds));
        sendmsg(sock, &[IoSlice::new(&encode(HOLD, pid, token))], &mut cmsg, SendFlags::NOSIGNAL).unwrap();
    }

    #[test]
    fn resumes_what_it_holds_when_mapaudit_goes_away() {
        let (sock, h) = guard_thread(Duration::from_secs(3600));
        let (c, fd) = stopped_sleeper();
        send_hold(&sock, c.id(), 1, &fd);
        drop(sock);
        assert_eq!(h.join().unwrap(), 0);
        assert_ne!(wait_state(c.id(), |s| s != 'T'), 'T', "resumed by the guard");
        end(c);
    }

    #[test]
    fn a_released_process_is_not_signalled_again() {
        let (sock, h) = guard_thread(Duration::from_secs(3600));
        let (c, fd) = stopped_sleeper();
        send_hold(&sock, c.id(), 1, &fd);
        rustix::net::send(&sock, &encode(RELEASE, c.id(), 1), SendFlags::NOSIGNAL).unwrap();
        drop(sock);
        assert_eq!(h.join().unwrap(), 0);
        // The guard ended without touching it: still stopped.
        assert_eq!(state(c.id()), Some('T'));
        end(c);
    }

    /// A BPF hash map shaped like `EXEC_STOPPED`. Creating one needs
    /// CAP_BPF: without it the test is skipped, unless root tests are
    /// required (MAPAUDIT_REQUIRE_ROOT_TESTS, as in the e2e suite).
    fn exec_stopped_map() -> Option<aya::maps::HashMap<aya::maps::MapData, u32, u64>> {
        // Named as the kernel side names it: the guard reads no other map.
        let obj = aya_obj::Map::new_from_params(aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH as u32, 4, 8, 16, 0);
        let made = aya::maps::MapData::create(obj, probe_common::maps::EXEC_STOPPED, None)
            .and_then(|d| aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(d)?));
        match made {
            Ok(m) => Some(m),
            Err(e) if !std::env::var("MAPAUDIT_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1") => {
                eprintln!("skipped: cannot create a BPF map ({e})");
                None
            }
            Err(e) => panic!("cannot create a BPF map: {e}"),
        }
    }

    #[test]
    fn sweeps_the_kernels_list_once_mapaudit_is_gone() {
        let Some(mut map) = exec_stopped_map() else { return };
        // Stopped at an exec mapaudit never read: listed, held by nobody.
        let (listed, _) = stopped_sleeper();
        map.insert(listed.id(), crate::host::pidctl::monotonic_ns(), 0).unwrap();
        // A pid listed for an exec before its process started: what a pid
        // reused since looks like. Never signalled.
        let before = crate::host::pidctl::monotonic_ns();
        std::thread::sleep(Duration::from_millis(50));
        let (reused, _) = stopped_sleeper();
        map.insert(reused.id(), before, 0).unwrap();
        // mapaudit's stand-in: the guard sweeps once it is gone.
        let mut mapaudit = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mapaudit_fd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(mapaudit.id() as i32).unwrap(),
            rustix::process::PidfdFlags::empty(),
        )
        .unwrap();
        let (sock, h) = guard_thread(Duration::from_secs(3600));
        send_fds(&sock, &encode(SETUP, mapaudit.id(), 0), &[aya::maps::IterableMap::map(&map).fd().as_fd(), mapaudit_fd.as_fd()]).unwrap();
        drop(sock);
        assert_eq!(state(listed.id()), Some('T'), "not before mapaudit is gone");
        mapaudit.kill().unwrap();
        mapaudit.wait().unwrap();
        assert_eq!(h.join().unwrap(), 0);
        assert_ne!(wait_state(listed.id(), |s| s != 'T'), 'T', "resumed by the sweep");
        assert_eq!(state(reused.id()), Some('T'), "a reused pid is never signalled");
        end(listed);
        end(reused);
    }

    #[test]
    fn resumes_at_the_deadline_and_says_so() {
        let (sock, h) = guard_thread(Duration::from_millis(50));
        let (c, fd) = stopped_sleeper();
        send_hold(&sock, c.id(), 9, &fd);
        let mut buf = [0u8; MSG_LEN];
        let (n, _) = rustix::net::recv(&sock, &mut buf, RecvFlags::empty()).unwrap();
        assert_eq!(decode(&buf[..n]), Some((RESUMED, c.id(), 9)));
        assert_ne!(wait_state(c.id(), |s| s != 'T'), 'T');
        drop(sock);
        assert_eq!(h.join().unwrap(), 0);
        end(c);
    }
}
