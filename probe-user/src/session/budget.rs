//! `--max-overhead`: keep the probes' cost under a budget by duty-cycling
//! them — attached for a fraction of each period, detached for the rest —
//! and scale the counts seen back up. Sampling events would not help: the
//! cost is the trap, paid whether or not the program records anything.
//!
//! The cost per hit is calibrated at start on this machine (a probe on a
//! `push rbp`, the instruction mapaudit attaches at in Go routines).

use std::time::Duration;

/// Shortest period of one attach/detach cycle.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The first period, fully attached to learn the write rate: short, since
/// everything it costs is over budget.
pub const FIRST_PERIOD: Duration = Duration::from_millis(250);
/// The attached share of a period is at least this many times the time
/// both switches take: the switch windows are the least certain part (the
/// probes go or come one by one, in no order mapaudit controls).
const SWITCH_SHARE: f64 = 4.0;
/// Longest period: the estimate must follow changes in the workload.
pub const MAX_PERIOD: Duration = Duration::from_secs(60);
/// How far the calibrated cost per hit may be from the real one (the
/// calibration probes an empty program; contention adds to it): what the
/// reported uncertainty assumes.
const COST_UNCERTAINTY: f64 = 0.25;
/// Probe load (CPU fraction while attached) above which the unprobed rate
/// is taken to be unknowable: the inversion is capped there.
const MAX_LOAD: f64 = 0.95;
/// How often the session advances the duty cycle.
pub const STEP: Duration = Duration::from_millis(10);
/// Never attach for less than this per period: the estimate needs samples.
pub const MIN_DUTY: f64 = 0.01;

/// The duty cycle that keeps `hits_per_sec × cost` (CPU fraction spent in
/// probes while attached) times the duty under `budget` (e.g. 0.05).
pub fn duty_for(budget: f64, hits_per_sec_attached: f64, cost_per_hit: Duration) -> f64 {
    let load = hits_per_sec_attached * cost_per_hit.as_secs_f64();
    if load <= budget {
        return 1.0;
    }
    (budget / load).clamp(MIN_DUTY, 1.0)
}

/// The duty-cycle controller: pure state, driven by the session's clock.
#[derive(Debug, Clone)]
pub struct DutyCycle {
    pub budget: f64,
    /// The calibrated cost of a hit (trap + empty program)...
    pub cost_per_hit: Duration,
    /// ...plus what `map_write` costs beyond an empty program, measured
    /// from kernel BPF stats while attached (0 when they are unavailable).
    pub body_extra: Duration,
    /// Current fraction of each period attached.
    pub duty: f64,
    /// Time attached and in total since the start.
    pub attached: Duration,
    pub total: Duration,
    /// Hits observed while attached in the current period.
    hits_in_period: u64,
    attached_in_period: Duration,
    in_period: Duration,
    /// Writes observed, and estimated (observed + the detached stretches'
    /// share, at the unprobed rate: see `close_period`).
    pub observed: u64,
    pub estimated: f64,
    detached_in_period: Duration,
    /// The highest probe load (CPU fraction spent in probes while
    /// attached) of any period: how much the estimate can be trusted.
    pub max_load: f64,
    /// Writes extrapolated into the detached stretch of the first period
    /// that saw writes, and of the latest one: a workload that starts or
    /// stops inside a detached stretch is over- or under-estimated by up
    /// to that much (`relative_error`).
    first_extrapolated: Option<f64>,
    last_extrapolated: f64,
    /// Periods that saw writes (one: first and latest are the same stretch).
    periods_with_writes: u32,
    /// The previous period's unprobed rate and detached time (s): its
    /// detached stretch lies between its own attached stretch and the next
    /// one's, so the rate there is bounded by those two (`variation`).
    prev_rate: Option<(f64, f64)>,
    /// Σ |r_next − r| × detached over every detached stretch that has an
    /// attached stretch after it: how far the extrapolation can be off when
    /// the rate moves between periods (a bursty workload).
    variation: f64,
    /// Length of a cycle: at least `PERIOD`, longer when switching is slow
    /// (the kernel unregisters uprobes one by one, waiting for readers), so
    /// the switching never dominates the cycle.
    pub period: Duration,
    /// How long the last attach and the last detach took.
    last_attach: Duration,
    last_detach: Duration,
}

/// What the session should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Attach,
    Detach,
}

impl DutyCycle {
    pub fn new(budget: f64, cost_per_hit: Duration) -> Self {
        Self {
            budget,
            cost_per_hit,
            body_extra: Duration::ZERO,
            duty: 1.0,
            attached: Duration::ZERO,
            total: Duration::ZERO,
            hits_in_period: 0,
            attached_in_period: Duration::ZERO,
            in_period: Duration::ZERO,
            period: FIRST_PERIOD,
            observed: 0,
            estimated: 0.0,
            detached_in_period: Duration::ZERO,
            max_load: 0.0,
            first_extrapolated: None,
            last_extrapolated: 0.0,
            periods_with_writes: 0,
            prev_rate: None,
            variation: 0.0,
            last_attach: Duration::ZERO,
            last_detach: Duration::ZERO,
        }
    }

    /// Records how long attaching (`attach`) or detaching took, and
    /// stretches the period so that both switches together take at most
    /// 1/`SWITCH_SHARE` of the attached share. A detach window counts as
    /// detached: the kernel takes the breakpoints out at once and then
    /// waits, one probe after another, for a grace period (~100 ms each
    /// here); measured, counting it attached (or half) lost 10–35 % of a
    /// light workload's writes. An attach window (milliseconds) counts as
    /// attached.
    pub fn switch_took(&mut self, d: Duration, attach: bool) {
        self.step(d, attach);
        if attach {
            self.last_attach = d;
        } else {
            self.last_detach = d;
        }
        self.plan_period();
    }

    /// Stretches the period so both switches take at most 1/`SWITCH_SHARE`
    /// of the attached share at the current duty.
    fn plan_period(&mut self) {
        let switching = (self.last_attach + self.last_detach).as_secs_f64();
        let needed = switching * SWITCH_SHARE / self.duty.max(MIN_DUTY);
        self.period = Duration::from_secs_f64(needed).clamp(PERIOD, MAX_PERIOD);
    }

    /// Writes counted since the last call (all of them happened while
    /// attached: nothing is counted otherwise).
    pub fn add_hits(&mut self, hits: u64) {
        self.hits_in_period += hits;
    }

    /// Whether advancing by `dt` ends the period (the caller then counts
    /// the hits and CPU time first, so the period is judged on all of them).
    pub fn closes_after(&self, dt: Duration) -> bool {
        self.in_period + dt >= self.period
    }

    /// Advances by `dt` during which the probes were attached or not;
    /// returns the phase for the next step.
    pub fn step(&mut self, dt: Duration, was_attached: bool) -> Phase {
        self.total += dt;
        self.in_period += dt;
        if was_attached {
            self.attached += dt;
            self.attached_in_period += dt;
        } else {
            self.detached_in_period += dt;
        }
        if self.in_period >= self.period {
            self.close_period();
        }
        if self.in_period.as_secs_f64() < self.duty * self.period.as_secs_f64() { Phase::Attach } else { Phase::Detach }
    }

    /// Ends a cycle: re-plans the duty from the attached stretch's write rate,
    /// and estimates the writes of the detached stretch. While probed, each
    /// write costs `cost` more, so a thread writing at rate `r` unprobed
    /// writes at `r / (1 + r·cost)` probed; inverting, the unprobed rate is
    /// `r_a / (1 − r_a·cost)` (capped). Idle-ish workloads get ≈ `r_a`.
    ///
    /// The inversion is only as good as the cost per hit, and explodes as
    /// the load approaches a whole CPU (a hot loop that does little but
    /// write a map): `relative_error` says so. Two yardsticks that do not
    /// depend on the rate were tried and measured worse on such a loop:
    /// the targets' user CPU time (the trap's time is partly charged to
    /// user mode: ~40× the user time per write while attached), and
    /// CPU-clock samples inside the map routines (the routine's own user
    /// time per call grew ~25× while probed, the trap evicting its working
    /// set, plus interrupt skid onto the instruction after the probe).
    pub fn close_period(&mut self) {
        let hits = self.hits_in_period;
        self.observed += hits;
        self.estimated += hits as f64;
        log::debug!(
            "duty period: {hits} hits, attached {:?}, detached {:?}",
            self.attached_in_period,
            self.detached_in_period
        );
        if !self.attached_in_period.is_zero() {
            let r_a = hits as f64 / self.attached_in_period.as_secs_f64();
            let load = (r_a * self.cost().as_secs_f64()).min(MAX_LOAD);
            self.max_load = self.max_load.max(load);
            let r_u = r_a / (1.0 - load);
            let extrapolated = r_u * self.detached_in_period.as_secs_f64();
            self.estimated += extrapolated;
            if let Some((r_prev, d_prev)) = self.prev_rate {
                self.variation += (r_u - r_prev).abs() * d_prev;
            }
            self.prev_rate = Some((r_u, self.detached_in_period.as_secs_f64()));
            if hits > 0 {
                self.first_extrapolated.get_or_insert(extrapolated);
                self.last_extrapolated = extrapolated;
                self.periods_with_writes += 1;
            }
            self.duty = duty_for(self.budget, r_a, self.cost());
        }
        self.in_period = Duration::ZERO;
        self.attached_in_period = Duration::ZERO;
        self.detached_in_period = Duration::ZERO;
        self.hits_in_period = 0;
        self.plan_period();
    }

    /// Fraction of the time the probes were attached.
    pub fn effective_duty(&self) -> f64 {
        if self.total.is_zero() { 1.0 } else { self.attached.as_secs_f64() / self.total.as_secs_f64() }
    }

    /// Factor that turns observed counts into estimates (applied to every
    /// row alike: rows are assumed to share the detached stretches in the
    /// proportions they had while attached). Call `close_period` first.
    pub fn scale(&self) -> f64 {
        if self.observed == 0 { 1.0 } else { self.estimated / self.observed as f64 }
    }

    /// Relative uncertainty of the scaled totals, a bound rather than a
    /// standard error: sampling noise (1/√observed), the sensitivity of
    /// the rate inversion to the cost per hit (`COST_UNCERTAINTY` ×
    /// load/(1 − load)) at the highest load seen (at the load cap, the
    /// whole estimate), and the edges — the writes extrapolated into the
    /// first and the latest detached stretch, where the workload may have
    /// started or stopped unseen (a short run is dominated by them), and
    /// the variation: each other detached stretch's rate can lie anywhere
    /// between its neighbouring attached stretches' rates (a bursty
    /// workload moves between them).
    pub fn relative_error(&self) -> f64 {
        if self.observed == 0 {
            return 1.0;
        }
        let noise = 1.0 / (self.observed as f64).sqrt();
        let model = if self.max_load >= MAX_LOAD { 1.0 } else { COST_UNCERTAINTY * self.max_load / (1.0 - self.max_load) };
        let edges = match self.periods_with_writes {
            0 => 0.0,
            1 => self.last_extrapolated,
            _ => self.first_extrapolated.unwrap_or(0.0) + self.last_extrapolated,
        };
        noise + model + (edges + self.variation) / self.estimated.max(1.0)
    }

    /// Estimated fraction of a CPU spent in probes, averaged over time.
    pub fn estimated_overhead(&self, hits_per_sec_attached: f64) -> f64 {
        hits_per_sec_attached * self.cost().as_secs_f64() * self.effective_duty()
    }

    /// The cost of one hit as best known: calibrated, plus the program's
    /// measured extra.
    pub fn cost(&self) -> Duration {
        self.cost_per_hit + self.body_extra
    }
}

/// File offset of the calibration target in our own executable.
fn calibration_offset() -> Option<u64> {
    let addr = crate::arch::mapaudit_calibration_target as *const () as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let range = f.next()?;
        let _perms = f.next()?;
        let off = u64::from_str_radix(f.next()?, 16).ok()?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?);
        (a <= addr && addr < b).then(|| addr - a + off)
    })
}

fn time_calls(n: u32) -> Duration {
    let t = std::time::Instant::now();
    for _ in 0..n {
        // SAFETY: the target takes no arguments and only touches its frame.
        unsafe { crate::arch::mapaudit_calibration_target() };
    }
    t.elapsed()
}

/// What one probe hit costs on this machine.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// The trap and an empty program: the floor program attached at a
    /// `push rbp` in mapaudit itself, median of a few runs.
    pub cost: Duration,
    /// The empty program's own run time per call (kernel BPF stats, when
    /// enabled): what `map_write`'s measured run time is compared with.
    pub empty_body: Option<Duration>,
}

/// Measures what one probe hit costs (see `Calibration`).
pub fn calibrate(probes: &mut crate::kernel::loader::Probes) -> anyhow::Result<Calibration> {
    use anyhow::Context as _;
    let offset = calibration_offset().context("locating the calibration target")?;
    const N: u32 = 20_000;
    let base = (0..3).map(|_| time_calls(N)).min().unwrap_or_default();
    let (probed, empty_body) = probes.with_floor_probe(offset, || {
        let mut v: Vec<Duration> = (0..3).map(|_| time_calls(N)).collect();
        v.sort();
        v[1]
    })?;
    Ok(Calibration { cost: probed.saturating_sub(base) / N, empty_body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_keeps_load_under_budget() {
        let c = Duration::from_micros(1);
        assert_eq!(duty_for(0.05, 10_000.0, c), 1.0, "1% load fits a 5% budget");
        let d = duty_for(0.05, 1_000_000.0, c);
        assert!((d - 0.05).abs() < 1e-9, "100% load → 5% duty, got {d}");
        assert_eq!(duty_for(0.001, 10_000_000.0, c), MIN_DUTY);
    }

    #[test]
    fn cycle_attaches_for_the_duty_fraction_and_scales_back() {
        let mut dc = DutyCycle::new(0.05, Duration::from_micros(1));
        let step = Duration::from_millis(10);
        let mut attached = true;
        let mut added = 0;
        // A workload making 1M writes/s while probed.
        for _ in 0..500 {
            if attached {
                dc.add_hits(10_000);
                added += 10_000;
            }
            attached = dc.step(step, attached) == Phase::Attach;
        }
        assert!((dc.duty - 0.05).abs() < 1e-9, "duty {}", dc.duty);
        // A short first period fully attached, then 5%: effective a bit above 5%.
        let eff = dc.effective_duty();
        assert!(eff > 0.05 && eff < 0.15, "effective {eff}");
        assert!(dc.estimated_overhead(1_000_000.0) <= 0.3);
        dc.close_period();
        // Probed at 1M/s with 1 µs per hit: the load is 100% (capped at
        // 95%), so detached stretches are estimated at 20M/s.
        assert!(dc.scale() > 1.0);
        assert_eq!(dc.observed, added);
        let expect = added as f64 + 20_000_000.0 * (5.0 - dc.effective_duty() * 5.0);
        assert!((dc.estimated - expect).abs() / expect < 0.01, "{} vs {expect}", dc.estimated);
    }

    #[test]
    fn slow_switches_stretch_the_period_and_never_shrink_it_back() {
        let mut dc = DutyCycle::new(0.05, Duration::from_micros(1));
        dc.duty = 0.05;
        dc.period = Duration::from_secs(100);
        dc.switch_took(Duration::from_millis(700), false);
        // 4 × 0.7 s / 5 %: 56 s.
        assert_eq!(dc.period.as_secs(), 56);
        // A fast attach after it keeps the slow detach in view.
        dc.switch_took(Duration::from_millis(2), true);
        assert_eq!(dc.period.as_millis(), 56_160);
        // Closing re-plans the duty; the period stays bounded below by the
        // switching cost.
        // 1M hits/s while attached (the attach window: 2 ms), at 1 µs each:
        // a whole CPU.
        dc.add_hits(2_000);
        dc.close_period();
        assert!((dc.duty - 0.05).abs() < 1e-9, "{}", dc.duty);
        assert_eq!(dc.period.as_millis(), 56_160);
        dc.duty = MIN_DUTY;
        dc.switch_took(Duration::from_millis(700), false);
        assert_eq!(dc.period, MAX_PERIOD);
    }

    #[test]
    fn the_first_and_latest_detached_stretches_bound_the_error() {
        let mut dc = DutyCycle::new(0.05, Duration::from_nanos(1));
        dc.period = Duration::from_secs(100);
        // Ten periods of 1,000 writes attached (1 s) and 9 s detached: 9,000
        // extrapolated each (the load is negligible at 1 ns a hit).
        for _ in 0..10 {
            // Closing re-plans the period: keep it long, so only the
            // explicit close ends each one.
            dc.period = Duration::from_secs(100);
            dc.add_hits(1_000);
            dc.step(Duration::from_secs(1), true);
            dc.step(Duration::from_secs(9), false);
            dc.close_period();
        }
        let est = dc.estimated;
        assert!((est - 100_000.0).abs() < 1.0, "{est}");
        let e = dc.relative_error();
        // A workload that stopped at the start of the last stretch (or
        // started at the end of the first) is off by 9,000 each: 18 %.
        let edges = 18_000.0 / est;
        assert!(e >= edges && e < edges + 0.04, "{e}");
    }

    #[test]
    fn uncertainty_grows_with_the_probe_load() {
        let mut dc = DutyCycle::new(0.05, Duration::from_micros(1));
        dc.period = Duration::from_secs(100);
        // 100k/s while attached at 1 µs: 10 % load.
        dc.add_hits(100_000);
        dc.step(Duration::from_secs(1), true);
        dc.step(Duration::from_secs(1), false);
        dc.close_period();
        assert!((dc.max_load - 0.1).abs() < 1e-9);
        let e = dc.relative_error();
        // Unprobed rate 100k/0.9 over the 1 s detached: 111,111 of 211,111
        // estimated writes were never seen, in the only stretch there is.
        let unseen = 100_000.0 / 0.9;
        let edge = unseen / (100_000.0 + unseen);
        assert!((e - (1.0 / 100_000f64.sqrt() + 0.25 * 0.1 / 0.9 + edge)).abs() < 1e-9, "{e}");
        // A hot loop at the cap: the estimate is not to be trusted at all.
        dc.add_hits(2_000_000);
        dc.step(Duration::from_secs(1), true);
        dc.close_period();
        assert!(dc.relative_error() > 1.0);
    }
    #[test]
    fn a_rate_that_moves_between_periods_widens_the_error() {
        let run = |rates: &[u64]| {
            let mut dc = DutyCycle::new(0.05, Duration::from_nanos(1));
            for &r in rates {
                dc.period = Duration::from_secs(100);
                dc.add_hits(r);
                dc.step(Duration::from_secs(1), true);
                dc.step(Duration::from_secs(9), false);
                dc.close_period();
            }
            dc
        };
        // Steady: no variation term.
        let steady = run(&[2_000; 6]);
        assert_eq!(steady.variation, 0.0);
        // Alternating 1,000/s and 3,000/s: each of the 5 inner detached
        // stretches (9 s) may be off by 2,000/s × 9 s.
        let bursty = run(&[1_000, 3_000, 1_000, 3_000, 1_000, 3_000]);
        assert!((bursty.variation - 5.0 * 2_000.0 * 9.0).abs() < 1.0, "{}", bursty.variation);
        assert!(bursty.relative_error() > steady.relative_error() + 90_000.0 / bursty.estimated - 1e-9);
    }
}
