//! `mapaudit top`: the live view. One loop over the session driver's events
//! (refresh tick, the command's or the --pid process's exit, signals) and
//! the terminal's (crossterm's `EventStream`); the terminal is restored on
//! every way out (quit, error, signal, panic).

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt as _;
use ratatui::DefaultTerminal;

use crate::config::{Target, Top};
use crate::session::Session;
use crate::session::driver::{Driver, SessionEvent, TickWork};
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
    let (mut s, duty) = Session::start(target, &args.probe, output.as_ref().map(|(f, _)| f))?;
    let mut driver = Driver::new(&s, duty, args.interval, TickWork::Refresh, None)?;

    let mut app = App::new(args.interval);
    app.status.target = describe(target, &s);
    app.status.warnings = s.warnings.clone();
    if let Some((_, path)) = &output {
        app.status.warnings.push(format!("the command's output goes to {}", path.display()));
    }
    app.status.attached = s.probes.attached_count();

    let end = {
        let mut screen = Screen::enter()?;
        let Screen { term, keys } = &mut screen;
        live(&mut s, &mut driver, &mut app, term, keys.as_mut().context("the terminal's events")?).await
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
    driver: &mut Driver,
    app: &mut App,
    term: &mut DefaultTerminal,
    keys: &mut EventStream,
) -> anyhow::Result<End> {
    app.page = usize::from(term.size()?.height.saturating_sub(CHROME_ROWS));
    let mut redraw = true;
    loop {
        if redraw {
            app.status.elapsed = s.elapsed();
            term.draw(|f| tui::draw(f, app, &s.model)).context("drawing the view")?;
            redraw = false;
        }
        driver.set_tick(app.interval);
        // Frozen view, live collection: the ring buffer keeps draining so
        // nothing is lost; the kernel keeps counting and the next tick
        // after resuming sees every write.
        driver.set_tick_work(if app.paused { TickWork::DrainOnly } else { TickWork::Refresh });
        tokio::select! {
            // The session first: a process stopped at exec waits for it.
            biased;
            ev = driver.next(s) => match ev? {
                SessionEvent::Tick { took } => {
                    if !app.paused {
                        app.on_tick(&s.model, took);
                    }
                    app.status.attached = s.probes.attached_count();
                    for w in s.warnings.iter().chain(&s.model.warnings) {
                        if !app.status.warnings.contains(w) {
                            app.status.warnings.push(w.clone());
                        }
                    }
                    redraw = true;
                }
                SessionEvent::TargetExited(p) => {
                    if app.status.ended.is_none() {
                        app.status.ended = Some(format!("pid {p} exited"));
                        redraw = true;
                    }
                }
                SessionEvent::ChildExited(status) => {
                    app.status.ended = Some(match status {
                        Ok(st) => exit_text(&st),
                        Err(e) => format!("command: {e}"),
                    });
                    redraw = true;
                }
                // The view has no --duration.
                SessionEvent::Deadline => {}
                SessionEvent::Signal(sig) => return Ok(End::Signal(sig)),
            },
            ev = keys.next() => {
                // The terminal's events end only when the terminal fails.
                let Some(Ok(ev)) = ev else { return Ok(End::Quit) };
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

/// The terminal in raw mode on the alternate screen, and its events.
/// Dropping it restores the terminal; ratatui's panic hook (installed by
/// `try_init`) does the same on a panic, before unwinding.
struct Screen {
    term: DefaultTerminal,
    /// Dropped before the terminal is handed back (crossterm's reader
    /// stops with it).
    keys: Option<EventStream>,
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        let term = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                // Raw mode may be on already.
                ratatui::restore();
                return Err(anyhow::Error::new(e).context("setting up the terminal"));
            }
        };
        Ok(Self { term, keys: Some(EventStream::new()) })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.keys = None;
        ratatui::restore();
    }
}
