//! Signals to processes mapaudit tracks — today the SIGCONT that releases a
//! process the kernel stopped at exec — sent so that a pid the kernel has
//! since given to another process never receives them.
//!
//! A pid names a process only until it is reaped; after that the number can
//! go to anyone. So the signal goes through a pidfd (`pidfd_open` pins one
//! process; `pidfd_send_signal` reaches that process or none), and before
//! sending, the pinned process must have started no later than the event the
//! signal answers: a process that took over the pid started after the
//! tracked one was gone, hence after the event.
//!
//! Clocks: the event's timestamp is `bpf_ktime_get_ns`, CLOCK_MONOTONIC
//! (which stops while the machine is suspended); `/proc/PID/stat`'s
//! `starttime` is CLOCK_BOOTTIME (which does not), in clock ticks
//! (`sysconf(_SC_CLK_TCK)`, 100 Hz in practice). The event time is moved to
//! boottime with today's offset between the two clocks: if the machine was
//! suspended since the event, that errs towards accepting (by the suspended
//! time), never towards refusing the right process. Ticks truncate: a
//! process started up to one tick (10 ms) after the event still passes —
//! the kernel cannot hand a reaped pid round the whole pid space that fast.

use std::io;

use rustix::process::{Pid, PidfdFlags, Signal};
use rustix::time::{ClockId, clock_gettime};

/// Continues (SIGCONT) process `pid` if it is still the process that was
/// there at `not_started_after_ktime_ns` (CLOCK_MONOTONIC ns, the clock of
/// `bpf_ktime_get_ns`): Ok(true) when signalled, Ok(false) when that process
/// is gone (exited, or its pid now belongs to a process that started later).
pub fn continue_if_same(pid: u32, not_started_after_ktime_ns: u64) -> io::Result<bool> {
    signal_if_same(pid, not_started_after_ktime_ns, Signal::CONT)
}

/// `continue_if_same` for any signal.
pub fn signal_if_same(pid: u32, not_started_after_ktime_ns: u64, sig: Signal) -> io::Result<bool> {
    match pin_if_same(pid, not_started_after_ktime_ns)? {
        Some(p) => p.signal(sig),
        None => Ok(false),
    }
}

/// One process, pinned: signals reach it or nothing.
pub struct Pinned {
    pid: Pid,
    /// None only on kernels without pidfd_open (see `pin_if_same`).
    fd: Option<std::os::fd::OwnedFd>,
}

impl Pinned {
    pub fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd as _;
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Ok(true) when signalled, Ok(false) when the process is gone.
    pub fn signal(&self, sig: Signal) -> io::Result<bool> {
        let sent = match &self.fd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, sig),
            None => rustix::process::kill_process(self.pid, sig),
        };
        match sent {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::SRCH) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Pins process `pid` if it is still the process that was there at
/// `not_started_after_ktime_ns`; None when that process is gone.
pub fn pin_if_same(pid: u32, not_started_after_ktime_ns: u64) -> io::Result<Option<Pinned>> {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else { return Ok(None) };
    let pidfd = match rustix::process::pidfd_open(p, PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        // Kernels before 5.3 have no pidfd_open (mapaudit needs 5.8 for its
        // ring buffer, so this is for completeness): check, then kill(2).
        Err(rustix::io::Errno::NOSYS) => None,
        Err(e) => return Err(e.into()),
    };
    // Read after pidfd_open: if the pinned process has gone and the pid moved
    // on since, this sees the newer process, which is refused below.
    let started = match start_boottime_ns(pid) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    if started > monotonic_to_boottime_ns(not_started_after_ktime_ns) {
        log::debug!("pid {pid} started after the event it answers: another process now; not signalled");
        return Ok(None);
    }
    Ok(Some(Pinned { pid: p, fd: pidfd }))
}

/// CLOCK_MONOTONIC ns, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    ns(clock_gettime(ClockId::Monotonic))
}

/// `mono_ns` (CLOCK_MONOTONIC) on the CLOCK_BOOTTIME scale, with today's
/// offset between the two (see the module comment on suspend).
pub fn monotonic_to_boottime_ns(mono_ns: u64) -> u64 {
    let mono = ns(clock_gettime(ClockId::Monotonic));
    let boot = ns(clock_gettime(ClockId::Boottime));
    mono_ns.saturating_add(boot.saturating_sub(mono))
}

fn ns(t: rustix::time::Timespec) -> u64 {
    u64::try_from(t.tv_sec).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// When process `pid` started (CLOCK_BOOTTIME ns, tick resolution), from
/// field 22 of `/proc/PID/stat`.
pub fn start_boottime_ns(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
    let ticks = parse_starttime(&stat).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no start time in {:?}", String::from_utf8_lossy(&stat)))
    })?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(ticks.saturating_mul(1_000_000_000 / hz))
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line (parsed by procfs:
/// the command name may hold spaces and parentheses).
fn parse_starttime(stat: &[u8]) -> Option<u64> {
    crate::host::proc::parse_stat(stat).ok().map(|s| s.starttime)
}

/// Also the exec guard's tests' (stopped processes and their states).
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    pub(crate) fn state(pid: u32) -> Option<char> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        s[s.rfind(')')? + 1..].split_ascii_whitespace().next()?.chars().next()
    }

    pub(crate) fn wait_state(pid: u32, want: impl Fn(char) -> bool) -> char {
        let t = Instant::now();
        loop {
            let s = state(pid).unwrap_or('?');
            if want(s) || t.elapsed() > Duration::from_secs(5) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn stopped_sleeper() -> Child {
        let c = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(c.id() as i32).unwrap();
        rustix::process::kill_process(pid, Signal::STOP).unwrap();
        assert_eq!(wait_state(c.id(), |s| s == 'T'), 'T');
        c
    }

    pub(crate) fn end(mut c: Child) {
        let _ = c.kill();
        let _ = c.wait();
    }

    #[test]
    fn parses_starttime_past_odd_command_names() {
        // A whole line, as Linux writes it (52 fields).
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 18446744073709551615 \
                    94788675022848 94788675042729 140730905552832 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94788675058736 \
                    94788675060352 94788725510144 140730905553633 140730905553653 140730905553653 140730905554923 0";
        assert_eq!(parse_starttime(line.as_bytes()), Some(123456));
        assert_eq!(parse_starttime(b"42 (x) S 1"), None);
    }

    #[test]
    fn continues_the_process_that_was_there() {
        let c = stopped_sleeper();
        // The event (its exec) came after it started.
        assert!(continue_if_same(c.id(), monotonic_ns()).unwrap());
        assert_ne!(wait_state(c.id(), |s| s != 'T'), 'T', "continued");
        end(c);
    }

    #[test]
    fn refuses_a_process_that_started_after_the_event() {
        // What a reused pid looks like: the process now at that pid started
        // after the event the signal answers. (Forcing real pid reuse needs
        // root: see tests/e2e_security.rs.)
        let event = monotonic_ns();
        std::thread::sleep(Duration::from_millis(50));
        let c = stopped_sleeper();
        assert!(!continue_if_same(c.id(), event).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(state(c.id()), Some('T'), "still stopped: never signalled");
        end(c);
    }

    #[test]
    fn refuses_a_process_that_is_gone() {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        // Reaped: pidfd_open fails (unless the pid was reused already, which
        // the start time then refuses).
        assert!(!continue_if_same(pid, monotonic_ns().saturating_sub(1_000_000_000)).unwrap());
        assert!(!continue_if_same(0, monotonic_ns()).unwrap());
    }

    #[test]
    fn boottime_of_now_is_close_to_boottime_now() {
        let mono = monotonic_ns();
        let boot = ns(clock_gettime(ClockId::Boottime));
        let conv = monotonic_to_boottime_ns(mono);
        assert!(conv.abs_diff(boot) < 50_000_000, "{conv} vs {boot}");
        // Our own start time is in the past, on the same scale.
        let me = start_boottime_ns(std::process::id()).unwrap();
        assert!(me <= conv + 10_000_000, "{me} vs {conv}");
    }
}
