//! The session driver: the one loop that runs a session over time, for both
//! `record` and `top`. It owns the refresh tick, the event ring buffer's
//! readiness (exec wake-ups), the counter drains, the duty-cycle timer, the
//! started command's exit, `--duration` and SIGINT/SIGTERM; it does the
//! kernel-side work itself and yields only what a command acts on
//! (`SessionEvent`).
//!
//! Exec events come first: a process the kernel stopped at exec stands
//! stopped until its probes are attached, so ring-buffer readiness is
//! polled before anything else (`biased`), and handled at once.
//!
//! Cancel-safe: `next` awaits only on cancel-safe futures (timers, fd
//! readiness, signals, the child's exit) and does its work between awaits,
//! so a caller may race it against its own input (the live view's keys).

use std::os::fd::RawFd;
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Interval, MissedTickBehavior, Sleep};

use super::duty::Duty;
use super::{DRAIN_EVERY, Session, budget};
use crate::config::Target;

/// A loop step longer than this is logged (debug): exec events wait behind it.
const SLOW_STEP: Duration = Duration::from_millis(20);

/// What a command acts on.
#[derive(Debug)]

pub enum SessionEvent {
    /// The tick's work (`TickWork`) is done; `took`: how long it took.
    Tick { took: Duration },
    /// The `--pid` process exited (yielded once).
    TargetExited(u32),
    /// The started command exited (yielded once).
    ChildExited(std::io::Result<ExitStatus>),
    /// `--duration` passed.
    Deadline,
    /// SIGINT or SIGTERM arrived.
    Signal(i32),
}

/// What each tick does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickWork {
    /// Read events and counters only (`record`: rankings wait for the end).
    Collect,
    /// Also recompute the model's rates, rankings and findings (`top`).
    Refresh,
    /// Only drain the ring buffer (the paused live view: collection goes
    /// on, the model stands still).
    DrainOnly,
}

pub struct Driver {
    events: AsyncFd<RawFd>,
    tick: Interval,
    tick_every: Duration,
    tick_work: TickWork,
    drain_timer: Interval,
    /// `--max-overhead`: the duty cycle and its timer.
    duty: Option<(Duty, Interval)>,
    deadline: Option<Pin<Box<Sleep>>>,
    sigint: Signal,
    sigterm: Signal,
    child_running: bool,
    /// The `--pid` process, until it is seen gone.
    watched_pid: Option<u32>,
    target_exited: Option<u32>,
}

impl Driver {
    /// `tick_every`: how often the tick's work runs; `duration`: when to
    /// yield `Deadline`.
    pub fn new(
        s: &Session,
        duty: Option<Duty>,
        tick_every: Duration,
        tick_work: TickWork,
        duration: Option<Duration>,
    ) -> anyhow::Result<Self> {
        // A tick, drain or step that comes late is not made up for: each
        // reads everything the kernel has, so one is as good as several.
        let timer = |every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        };
        Ok(Self {
            events: s.events_ready()?,
            tick: timer(tick_every),
            tick_every,
            tick_work,
            drain_timer: timer(DRAIN_EVERY),
            duty: duty.map(|d| (d, timer(budget::STEP))),
            deadline: duration.map(|d| Box::pin(tokio::time::sleep(d))),
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
            child_running: s.child.is_some(),
            watched_pid: match s.target {
                Target::Pid(p) => Some(p),
                _ => None,
            },
            target_exited: None,
        })
    }

    /// Changes the tick's period; the next tick is one period from now.
    pub fn set_tick(&mut self, every: Duration) {
        if every != self.tick_every {
            self.tick_every = every;
            self.tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            self.tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
    }

    pub fn set_tick_work(&mut self, work: TickWork) {
        self.tick_work = work;
    }

    /// The duty cycle under `--max-overhead`.
    pub fn duty(&self) -> Option<&budget::DutyCycle> {
        self.duty.as_ref().map(|(d, _)| &d.cycle)
    }

    /// Runs the session until something a command acts on happens.
    pub async fn next(&mut self, s: &mut Session) -> anyhow::Result<SessionEvent> {
        if let Some(pid) = self.target_exited.take() {
            return Ok(SessionEvent::TargetExited(pid));
        }
        let Self {
            events, tick, tick_work, drain_timer, duty, deadline, sigint, sigterm, child_running, watched_pid, target_exited, ..
        } = self;
        loop {
            tokio::select! {
                // Exec events first: a process stands stopped until handled.
                biased;
                guard = events.readable(), if !s.drain_at_exit_only => {
                    // Only exec events (and a half-full buffer) wake us:
                    // attach, and let the process go, at once.
                    let mut guard = guard?;
                    guard.clear_ready();
                    s.drain();
                }
                _ = tick.tick() => {
                    let t0 = Instant::now();
                    let duty = duty.as_mut().map(|(d, _)| d);
                    let exited = match tick_work {
                        TickWork::Collect => s.collect(duty)?,
                        TickWork::Refresh => s.tick(duty)?,
                        TickWork::DrainOnly => s.drain(),
                    };
                    let took = t0.elapsed();
                    if took > SLOW_STEP {
                        log::debug!("tick took {took:?}");
                    }
                    if let Some(p) = *watched_pid
                        && (exited.contains(&p) || !std::path::Path::new(&format!("/proc/{p}")).exists())
                    {
                        *watched_pid = None;
                        *target_exited = Some(p);
                    }
                    return Ok(SessionEvent::Tick { took });
                }
                status = s.wait_child(), if *child_running => {
                    *child_running = false;
                    return Ok(SessionEvent::ChildExited(status));
                }
                _ = async {
                    match duty.as_mut() {
                        Some((_, timer)) => timer.tick().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((d, _)) = duty.as_mut() {
                        d.step(s)?;
                    }
                }
                // Also while the view is paused: the kernel's tables must not fill.
                _ = drain_timer.tick() => {
                    let t0 = Instant::now();
                    s.drain_counters()?;
                    if t0.elapsed() > SLOW_STEP {
                        log::debug!("counter fold took {:?}", t0.elapsed());
                    }
                }
                _ = async {
                    match deadline.as_mut() {
                        Some(d) => d.as_mut().await,
                        None => std::future::pending().await,
                    }
                } => {
                    *deadline = None;
                    return Ok(SessionEvent::Deadline);
                }
                _ = sigint.recv() => return Ok(SessionEvent::Signal(libc::SIGINT)),
                _ = sigterm.recv() => return Ok(SessionEvent::Signal(libc::SIGTERM)),
            }
        }
    }

    /// The final, exact read (`Session::finish`), closing the duty cycle's
    /// last period.
    pub fn finish(&mut self, s: &mut Session, keep_per_class: Option<usize>) -> anyhow::Result<()> {
        s.finish(self.duty.as_mut().map(|(d, _)| d), keep_per_class)
    }
}
