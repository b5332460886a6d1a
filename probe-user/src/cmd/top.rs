//! `mapaudit top`: the live view. One `tokio::select!` loop over keys, the
//! refresh tick, ring-buffer readiness, the command's exit and signals; the
//! terminal is restored on every way out (quit, error, signal, panic).

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use crossterm::event::{self, Event};
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::config::{Target, Top};
use crate::session::Session;
use crate::tui::{self, App};

/// Rows of the screen that are not table rows (header, tabs, sparklines,
/// table header, footer): what PgUp/PgDn subtract from the height.
const CHROME_ROWS: u16 = 7;

pub async fn run(args: Top) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "the live view needs a terminal and stdout is not one; to audit into a file or a pipe, use \
             `mapaudit record --json -` (with --duration D, or until the target exits)"
        );
    }
    let target = &args.target;
    // A command started under the view must not draw over it or read its
    // keys: it gets /dev/null for input and a log file for output.
    let output = match target {
        Target::Command(_) => Some(super::open_log("mapaudit-top", args.probe.user.as_deref())?),
        _ => None,
    };
    // (`config` gave plain system-wide `top` its default budget.)
    let mut s = Session::start(target, &args.probe, output.as_ref().map(|(f, _)| f))?;

    let mut app = App::new(args.interval);
    app.status.target = describe(target, &s);
    app.status.warnings = s.warnings.clone();
    if let Some((_, path)) = &output {
        app.status.warnings.push(format!("the command's output goes to {}", path.display()));
    }
    app.status.attached = s.probes.attached_count();

    let end = {
        let (mut screen, mut keys) = Screen::enter()?;
        live(&mut s, &mut app, target, &mut screen.term, &mut keys).await
    };
    // The terminal is back; stop the command we started (a no-op for --pid).
    if s.child.is_some() && app.status.ended.is_none() {
        eprintln!("mapaudit: stopping the command");
    }
    s.terminate_child(Duration::from_secs(5)).await;
    if let Some((_, path)) = &output {
        eprintln!("mapaudit: the command's output is in {}", path.display());
    }
    match end? {
        End::Quit => Ok(0),
        End::Signal(sig) => Ok(128 + sig),
    }
}

#[derive(Debug)]
enum End {
    Quit,
    Signal(i32),
}

async fn live(
    s: &mut Session,
    app: &mut App,
    target: &Target,
    term: &mut DefaultTerminal,
    keys: &mut mpsc::UnboundedReceiver<Event>,
) -> anyhow::Result<End> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let events = s.events_ready()?;
    let mut interval = app.interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watched_pid = match target {
        Target::Pid(p) => Some(*p),
        _ => None,
    };
    let mut child_running = s.child.is_some();
    let mut duty_timer = tokio::time::interval(crate::session::budget::STEP);
    let mut drain_timer = tokio::time::interval(crate::session::DRAIN_EVERY);
    drain_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let sampling = s.duty.is_some();
    app.page = usize::from(term.size()?.height.saturating_sub(CHROME_ROWS));
    let mut redraw = true;
    loop {
        if redraw {
            app.status.elapsed = s.elapsed();
            term.draw(|f| tui::draw(f, app, &s.model)).context("drawing the view")?;
            redraw = false;
        }
        tokio::select! {
            // Exec events first: a process stands stopped until handled.
            biased;
            guard = events.readable() => {
                // Only exec events wake us: attach (and let the process go) at once.
                let mut guard = guard?;
                guard.clear_ready();
                s.drain();
            }
            ev = keys.recv() => {
                // The input thread ends only when the terminal fails.
                let Some(ev) = ev else { return Ok(End::Quit) };
                match ev {
                    Event::Key(k) => {
                        let a = tui::action(k, app);
                        app.apply(a, &s.model);
                        if app.quit {
                            return Ok(End::Quit);
                        }
                    }
                    Event::Resize(_, h) => app.page = usize::from(h.saturating_sub(CHROME_ROWS)),
                    _ => {}
                }
                redraw = true;
            }
            _ = duty_timer.tick(), if sampling => s.duty_step()?,
            // Also while paused: the kernel's tables must not fill.
            _ = drain_timer.tick() => s.drain_counters()?,
            _ = tick.tick() => {
                let exited = if app.paused {
                    // Frozen view, live collection: the ring buffer keeps
                    // draining so nothing is lost; the kernel keeps counting
                    // and the next tick after resuming sees every write.
                    s.drain()
                } else {
                    let t0 = Instant::now();
                    let exited = s.tick()?;
                    app.on_tick(&s.model, t0.elapsed());
                    exited
                };
                if let Some(p) = watched_pid
                    && app.status.ended.is_none()
                    && (exited.contains(&p) || !Path::new(&format!("/proc/{p}")).exists())
                {
                    app.status.ended = Some(format!("pid {p} exited"));
                }
                app.status.attached = s.probes.attached_count();
                for w in s.warnings.iter().chain(&s.model.warnings) {
                    if !app.status.warnings.contains(w) {
                        app.status.warnings.push(w.clone());
                    }
                }
                redraw = true;
            }
            status = s.wait_child(), if child_running => {
                child_running = false;
                app.status.ended = Some(match status {
                    Ok(st) => exit_text(&st),
                    Err(e) => format!("command: {e}"),
                });
                redraw = true;
            }
            _ = sigint.recv() => return Ok(End::Signal(libc::SIGINT)),
            _ = sigterm.recv() => return Ok(End::Signal(libc::SIGTERM)),
        }
        if app.interval != interval {
            interval = app.interval;
            tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
    }
}

fn exit_text(st: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("command exited with status {c}"),
        (None, Some(sig)) => format!("command killed by signal {sig}"),
        _ => "command exited".into(),
    }
}

fn describe(t: &Target, s: &Session) -> String {
    match t {
        Target::Pid(p) => match s.model.processes.get(p) {
            Some(info) if !info.comm.is_empty() => format!("pid {p} ({})", info.comm),
            _ => format!("pid {p}"),
        },
        Target::Exe(e) => format!("every {}", e.display()),
        Target::Command(c) => format!("{} (pid {})", c.join(" "), s.child_pid().unwrap_or(0)),
        Target::SystemWide => "every Go process".into(),
    }
}

/// The terminal in raw mode on the alternate screen, and the thread that
/// reads its keys. Dropping it restores the terminal; ratatui's panic hook
/// (installed by `try_init`) does the same on a panic, before unwinding.
struct Screen {
    term: DefaultTerminal,
    stop: Arc<AtomicBool>,
    input: Option<std::thread::JoinHandle<()>>,
}

impl Screen {
    fn enter() -> anyhow::Result<(Self, mpsc::UnboundedReceiver<Event>)> {
        let term = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                // Raw mode may be on already.
                ratatui::restore();
                return Err(anyhow::Error::new(e).context("setting up the terminal"));
            }
        };
        let mut screen = Self { term, stop: Arc::new(AtomicBool::new(false)), input: None };
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = screen.stop.clone();
        // crossterm's reads block: a thread of its own, polling with a
        // timeout so that it notices `stop` and ends before the terminal
        // is handed back.
        let input = std::thread::Builder::new()
            .name("mapaudit-keys".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match event::poll(Duration::from_millis(50)) {
                        Ok(true) => match event::read() {
                            Ok(ev) => {
                                if tx.send(ev).is_err() {
                                    break;
                                }
                            }
                            Err(_) => break,
                        },
                        Ok(false) => {}
                        Err(_) => break,
                    }
                }
            })
            .context("starting the key reader")?;
        screen.input = Some(input);
        Ok((screen, rx))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.input.take() {
            let _ = h.join();
        }
        ratatui::restore();
    }
}
