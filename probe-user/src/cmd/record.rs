//! `mapaudit record`: audit until the command exits, the --pid process
//! exits, --duration passes, or SIGINT/SIGTERM; then write the report (always
//! — also when the target crashes) and apply the gate.

use std::time::Duration;

use anyhow::Context as _;

use crate::config::{Record, Target};
use crate::model::timeline::Timeline;
use crate::output::formats::Outputs;
use crate::output::report::{self, Output};
use crate::session::Session;
use crate::session::driver::{Driver, SessionEvent, TickWork};
use crate::output::{gate, summary};

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

pub async fn run(args: Record) -> anyhow::Result<i32> {
    // Refuse an unwritable report path before attaching anything.
    // The report is written as the user mapaudit acts for (README "Threat model").
    let owner = crate::host::identity::Identity::resolve(args.probe.user.as_deref())?;
    let output = args.json.as_deref().map(|spec| Output::prepare(spec, owner.as_ref())).transpose()?;
    let shared = Outputs::prepare(&args.share, owner.as_ref())?;
    let target = &args.target;
    let (mut s, duty) = Session::start(target, &args.probe, None)?;
    // Before "recording": from then on SIGINT/SIGTERM end the recording.
    let mut driver = Driver::new(&s, duty, TICK, TickWork::Collect, args.duration)?;
    for w in &s.warnings {
        eprintln!("mapaudit: warning: {w}");
    }
    eprintln!("mapaudit: recording {}", describe(target, s.child_pid()));

    let mut timeline = Timeline::new(TIMELINE_EVERY.as_secs_f64());
    let end = record_loop(&mut s, &mut driver, &mut timeline).await?;
    let t = std::time::Instant::now();
    // The kernel detaches probes one grace period at a time (~1 s for a Go
    // program's 15 uprobes here): let that run while the report is made.
    // Without a duty cycle, before the final read (every count made is in
    // the tables; the target is gone or the recording is over); with one,
    // after it, so that its last period is closed while still attached.
    let early_detach = driver.duty().is_none();
    if early_detach {
        s.probes.detach_all();
    }
    driver.finish(&mut s, Some(ROWS_PER_CLASS))?;
    if !early_detach {
        s.probes.detach_all();
    }
    log::debug!("final read, fold and model pass: {:?}", t.elapsed());
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
    if let Some(d) = driver.duty() {
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
    // The process ends here: freeing the model a row at a time (10^5 rows
    // after a churning command, their tallies and names) would only delay
    // the exit the user waits for.
    std::mem::forget(std::mem::take(&mut s.model));
    if !args.gate.is_empty() {
        let failures = gate::evaluate(&rep, &args.gate);
        if gate::conclude(&failures) == 1 {
            return Ok(1);
        }
    }
    Ok(status)
}

async fn record_loop(s: &mut Session, driver: &mut Driver, timeline: &mut Timeline) -> anyhow::Result<End> {
    // The timeline samples on the first tick past each interval.
    let start = std::time::Instant::now();
    let mut next = TIMELINE_EVERY;
    loop {
        match driver.next(s).await? {
            SessionEvent::Tick { .. } => {
                if start.elapsed() >= next {
                    timeline.sample(&s.model);
                    next += TIMELINE_EVERY;
                }
            }
            SessionEvent::TargetExited(_) => return Ok(End::TargetExited),
            SessionEvent::ChildExited(status) => return Ok(End::CommandExited(status?)),
            SessionEvent::Deadline => return Ok(End::Duration),
            SessionEvent::Signal(sig) => return Ok(End::Signal(sig)),
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
