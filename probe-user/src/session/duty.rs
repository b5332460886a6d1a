//! `--max-overhead` at run time: the duty cycle (`budget::DutyCycle`, pure)
//! plus what drives it against the live probes — the clock of its steps,
//! the kernel's BPF run-time stats and the hits credited so far. Owned by
//! the session driver, which steps it every `budget::STEP`; kept out of
//! `Session`, which only lends it its probes, collector and model.

use std::time::{Duration, Instant};

use super::Session;
use super::budget::{self, DutyCycle, Phase};
use crate::kernel::loader::Probes;

pub struct Duty {
    pub cycle: DutyCycle,
    last_step: Instant,
    /// BPF run-time stats, on while held; the empty program's run time per
    /// call; `map_write`'s stats when last read.
    _bpf_stats: Option<std::os::fd::OwnedFd>,
    empty_body: Option<Duration>,
    last_body: Option<(Duration, u64)>,
    /// Writes and reads counted when hits were last credited.
    last_total: u64,
}

impl Duty {
    /// Calibrates the probe cost (before anything is attached) and starts
    /// a duty cycle that keeps it under `budget`.
    pub fn start(probes: &mut Probes, budget: f64) -> anyhow::Result<Self> {
        // Run-time stats (while the fd is held) measure what the program
        // costs beyond an empty one; without them, the calibration alone.
        let bpf_stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("BPF run-time stats unavailable ({e}): the probe cost is the calibration's alone");
                None
            }
        };
        let cal = budget::calibrate(probes)?;
        log::info!("calibrated probe cost: {} ns per hit; budget {:.1}%", cal.cost.as_nanos(), budget * 100.0);
        Ok(Self {
            cycle: DutyCycle::new(budget, cal.cost),
            last_step: Instant::now(),
            _bpf_stats: bpf_stats,
            empty_body: cal.empty_body,
            last_body: None,
            last_total: 0,
        })
    }

    /// Advances the duty cycle (call often, e.g. every `budget::STEP`):
    /// attaches or detaches the probes as it says.
    pub fn step(&mut self, s: &mut Session) -> anyhow::Result<()> {
        let now = Instant::now();
        let dt = now - self.last_step;
        self.last_step = now;
        let attached = !s.probes.is_suspended();
        if self.cycle.closes_after(dt) {
            // The period is judged on every hit it had, at the cost the
            // program really had.
            self.count_hits(s)?;
            self.measure_body(&s.probes);
        }
        let phase = self.cycle.step(dt, attached);
        log::trace!("duty {:.3} attached {attached} -> {phase:?}", self.cycle.duty);
        let attach = match phase {
            Phase::Attach if !attached => true,
            Phase::Detach if attached => false,
            _ => return Ok(()),
        };
        if attach {
            s.probes.resume()?;
        } else {
            self.count_hits(s)?;
            s.probes.suspend();
        }
        let end = Instant::now();
        self.cycle.switch_took(end - now, attach);
        self.last_step = end;
        Ok(())
    }

    /// Updates the duty cycle's per-hit cost with what `map_write` cost per
    /// run beyond the empty program since the last call (BPF stats).
    fn measure_body(&mut self, probes: &Probes) {
        let (Some(empty), Some(now)) = (self.empty_body, probes.uprobe_stats()) else { return };
        let (t0, n0) = self.last_body.unwrap_or_default();
        self.last_body = Some(now);
        let (t, n) = (now.0.saturating_sub(t0), now.1.saturating_sub(n0));
        if n == 0 {
            return;
        }
        let per_run = t / u32::try_from(n).unwrap_or(u32::MAX);
        self.cycle.body_extra = per_run.saturating_sub(empty);
        log::debug!("map_write costs {per_run:?} per run, {:?} more than an empty program", self.cycle.body_extra);
    }

    /// Credits the writes counted since the last call to the duty cycle.
    pub fn count_hits(&mut self, s: &mut Session) -> anyhow::Result<()> {
        // The period being closed must have every one of its hits.
        s.collector.snapshot(&mut s.model)?;
        let total = s.model.agg.totals.total() + s.model.agg.totals.reads;
        self.cycle.add_hits(total.saturating_sub(self.last_total));
        s.model.sampling = Some(self.cycle.effective_duty());
        self.last_total = total;
        Ok(())
    }
}
