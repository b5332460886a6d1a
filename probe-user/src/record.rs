//! `mapaudit record`: audit until the command exits, the --pid process
//! exits, --duration passes, or SIGINT/SIGTERM; then write the report (always
//! — also when the target crashes) and apply the gate.

use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{LogLevel, RecordArgs, Target};
use crate::report::{self, Output};
use crate::timeline::Timeline;
use crate::session::Session;
use crate::{gate, summary};

/// Rows the report keeps per class of maps or goroutines (the busiest);
/// the rest are in the class's totals (`Model::fold_crowded`).
pub const ROWS_PER_CLASS: usize = 100;

/// How often counters are read and the ring buffer drained while recording.
const TICK: Duration = Duration::from_millis(250);
/// The report's timeline resolution (it coarsens for long recordings).
const TIMELINE_EVERY: Duration = Duration::from_secs(1);

/// Why recording stopped.
#[derive(Debug, PartialEq)]
enum End {
    CommandExited(std::process::ExitStatus),
    TargetExited,
    Duration,
    Signal(i32),
}

pub async fn run(args: RecordArgs, log_level: LogLevel) -> anyhow::Result<i32> {
    // Refuse an unwritable report path before attaching anything.
    // The report is written as the user mapaudit acts for (README "Threat model").
    let owner = crate::identity::Identity::resolve(args.probe.user.as_deref())?;
    let output = args.json.as_deref().map(|spec| Output::prepare(spec, owner.as_ref())).transpose()?;
    let shared = crate::formats::Outputs::prepare(&args.share, owner.as_ref())?;
    let target = args.target.target();
    let mut s = Session::start(&target, &args.probe, log_level, None)?;
    for w in &s.warnings {
        eprintln!("mapaudit: warning: {w}");
    }
    eprintln!("mapaudit: recording {}", describe(&target, s.child_pid()));

    let mut timeline = Timeline::new(TIMELINE_EVERY.as_secs_f64());
    let end = record_loop(&mut s, &target, args.duration, &mut timeline).await?;
    let t = std::time::Instant::now();
    s.finish()?;
    log::debug!("final read and model pass: {:?}", t.elapsed());
    let (maps, goroutines) = s.model.fold_crowded(ROWS_PER_CLASS);
    log::debug!("{maps} map and {goroutines} goroutine rows folded into their classes: {:?}", t.elapsed());
    let mut status = match &end {
        End::CommandExited(st) => exit_code(st),
        End::Signal(sig) => 128 + sig,
        _ => 0,
    };
    if !matches!(end, End::CommandExited(_))
        && let Some(st) = s.terminate_child(Duration::from_secs(5)).await
        && matches!(end, End::Duration)
    {
        status = exit_code(&st);
    }
    let started = humantime::format_rfc3339_seconds(s.started_at).to_string();
    let mut rep = report::build(&s.model, &started, s.elapsed().as_secs_f64());
    if let Some(d) = &s.duty {
        report::apply_sampling(&mut rep, d);
    }
    timeline.sample(&s.model);
    rep.timeline = Some(timeline.report(&s.model));
    log::debug!("report built: {:?}", t.elapsed());
    if let Some(out) = &output {
        out.write(&rep).context("writing the report")?;
    }
    shared.write(&rep, &args.gate, args.share.source_root.as_deref())?;
    log::debug!("report written: {:?}", t.elapsed());
    summary::print(&rep, &s.model);
    if !args.gate.is_empty() {
        let failures = gate::evaluate(&rep, &args.gate);
        if gate::conclude(&failures) == 1 {
            return Ok(1);
        }
    }
    Ok(status)
}

async fn record_loop(
    s: &mut Session,
    target: &Target,
    duration: Option<Duration>,
    timeline: &mut Timeline,
) -> anyhow::Result<End> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let events = s.events_ready()?;
    let mut tick = tokio::time::interval(TICK);
    let mut timeline_timer = tokio::time::interval(TIMELINE_EVERY);
    timeline_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the timeline starts at the next second.
    timeline_timer.tick().await;
    let mut duty_timer = tokio::time::interval(crate::budget::STEP);
    let mut drain_timer = tokio::time::interval(crate::session::DRAIN_EVERY);
    drain_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sampling = s.duty.is_some();
    let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let watched_pid = match target {
        Target::Pid(p) => Some(*p),
        _ => None,
    };
    loop {
        let has_child = s.child.is_some();
        tokio::select! {
            // Exec events first: a process stands stopped until handled.
            biased;
            guard = events.readable(), if !s.drain_at_exit_only => {
                // Only exec events wake us; act on them at once.
                let mut guard = guard?;
                guard.clear_ready();
                s.drain();
            }
            _ = tick.tick() => {
                let exited = s.collect()?;
                if let Some(p) = watched_pid
                    && (exited.contains(&p) || !std::path::Path::new(&format!("/proc/{p}")).exists())
                {
                    return Ok(End::TargetExited);
                }
            }
            status = s.wait_child(), if has_child => {
                return Ok(End::CommandExited(status?));
            }
            _ = duty_timer.tick(), if sampling => s.duty_step()?,
            _ = drain_timer.tick() => s.drain_counters()?,
            _ = timeline_timer.tick() => timeline.sample(&s.model),
            _ = &mut deadline, if duration.is_some() => return Ok(End::Duration),
            _ = sigint.recv() => return Ok(End::Signal(libc::SIGINT)),
            _ = sigterm.recv() => return Ok(End::Signal(libc::SIGTERM)),
        }
    }
}

fn exit_code(st: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

fn describe(t: &Target, child: Option<u32>) -> String {
    match t {
        Target::Pid(p) => format!("pid {p}"),
        Target::Exe(e) => format!("every process of {}", e.display()),
        Target::Command(c) => format!("`{}` (pid {})", c.join(" "), child.unwrap_or(0)),
        Target::SystemWide => "every Go process on this node".into(),
    }
}
