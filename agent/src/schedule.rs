//! The probe scheduler: when cycles start, and how one cycle runs.
//!
//! The first cycle starts at once, so the first report leaves as soon as the probes have
//! answered. Later cycles start on a fixed grid (`start + phase + k × period`) whose phase
//! is random per agent, with a small per-tick jitter: many agents started together spread
//! out from their second cycle on, and a slow cycle never shifts every later one. Why the
//! first report carries no jitter of its own: docs/operations.md, "Start-up and mass
//! reboots". A cycle runs every probe concurrently, each under its own hard timeout and
//! all under the cycle budget, which is shorter than the period: cycles never overlap,
//! and a hung probe becomes a Fail finding with a reason while the report still goes out
//! on time.

use rand::Rng;
use sr_probes::{Finding, Probe, ProbeContext};
use sr_protocol::reasons as codes;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The part of the period a cycle may use; the rest is slack for building and handing
/// over the report.
pub const CYCLE_BUDGET_FRACTION: f64 = 0.8;
/// Per-tick jitter, as a fraction of the period, either side of the grid point.
pub const JITTER_FRACTION: f64 = 0.05;
/// The random phase of the grid is at most this (and at most half a period), so the
/// second report is never much later than one period after the first.
pub const MAX_PHASE: Duration = Duration::from_secs(2);

/// Start times for cycles: one at once, then a grid with a random phase and jitter.
#[derive(Debug)]
pub struct Ticker {
    /// The immediate first tick, until it is taken.
    first: Option<Instant>,
    /// Grid point 0; grid point k is `base + k × period`.
    base: Instant,
    period: Duration,
    k: u64,
}

/// A random phase in `[0, min(period / 2, MAX_PHASE)]`.
fn random_phase(period: Duration) -> Duration {
    let max = (period / 2).min(MAX_PHASE);
    rand::rng().random_range(Duration::ZERO..=max)
}

impl Ticker {
    /// A ticker whose first tick is `now` and whose grid starts one period plus a random
    /// phase later.
    pub fn new(now: Instant, period: Duration) -> Self {
        Ticker {
            first: Some(now),
            base: now + period + random_phase(period),
            period,
            k: 0,
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// The next start time after `now`. Grid points already past are skipped, never
    /// caught up in a burst.
    pub fn next_after(&mut self, now: Instant) -> Instant {
        if let Some(first) = self.first.take() {
            return first.max(now);
        }
        let jitter_max = self.period.mul_f64(JITTER_FRACTION);
        loop {
            let grid = self.base + self.period * (self.k as u32);
            self.k += 1;
            // Jitter in [-j, +j] around the grid point.
            let at = grid + rand::rng().random_range(Duration::ZERO..=jitter_max * 2) - jitter_max;
            if at > now {
                return at;
            }
        }
    }

    /// Changes the period (on reload): no immediate tick, and a new grid one period plus
    /// a fresh random phase from now, so a reload sent to a whole fleet at once does not
    /// line its agents up.
    pub fn reset(&mut self, now: Instant, period: Duration) {
        *self = Ticker {
            first: None,
            base: now + period + random_phase(period),
            period,
            k: 0,
        };
    }
}

/// How long a cycle may take for a given period.
pub fn cycle_budget(period: Duration) -> Duration {
    period.mul_f64(CYCLE_BUDGET_FRACTION)
}

/// One probe's outcome in one cycle.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub probe: String,
    pub finding: Finding,
    pub duration: Duration,
}

/// Runs every probe concurrently, each bounded by its own timeout and by `budget`.
/// Results come back in probe order. Never fails: timeouts and panics become findings.
pub async fn run_cycle(
    probes: &[Arc<dyn Probe>],
    ctx: &ProbeContext,
    budget: Duration,
) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, probe) in probes.iter().enumerate() {
        let probe = Arc::clone(probe);
        let ctx = ctx.clone();
        set.spawn(async move {
            let limit = probe.timeout().min(budget);
            let start = Instant::now();
            let finding = match tokio::time::timeout(limit, probe.run(&ctx)).await {
                Ok(f) => f,
                Err(_) => Finding::fail(
                    codes::PROBE_TIMEOUT,
                    format!(
                        "probe {} did not finish within {} ms",
                        probe.name(),
                        limit.as_millis()
                    ),
                ),
            };
            (
                i,
                ProbeResult {
                    probe: probe.name().to_string(),
                    finding,
                    duration: start.elapsed(),
                },
            )
        });
    }
    let mut out: Vec<Option<ProbeResult>> = vec![None; probes.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| ProbeResult {
                probe: probes[i].name().to_string(),
                finding: Finding::fail(
                    codes::PROBE_CRASHED,
                    format!("probe {} panicked", probes[i].name()),
                ),
                duration: Duration::ZERO,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_probes::BoxFuture;
    use sr_protocol::NodeStatus;

    struct Sleepy {
        name: String,
        sleep: Duration,
        timeout: Duration,
    }

    impl Probe for Sleepy {
        fn name(&self) -> &str {
            &self.name
        }
        fn timeout(&self) -> Duration {
            self.timeout
        }
        fn run<'a>(&'a self, _ctx: &'a ProbeContext) -> BoxFuture<'a, Finding> {
            Box::pin(async move {
                tokio::time::sleep(self.sleep).await;
                Finding::ok()
            })
        }
    }

    struct Panics;
    impl Probe for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn run<'a>(&'a self, _ctx: &'a ProbeContext) -> BoxFuture<'a, Finding> {
            Box::pin(async move { panic!("probe bug") })
        }
    }

    fn sleepy(name: &str, sleep_ms: u64, timeout_ms: u64) -> Arc<dyn Probe> {
        Arc::new(Sleepy {
            name: name.into(),
            sleep: Duration::from_millis(sleep_ms),
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_times_out_without_delaying_the_others_or_the_cycle() {
        let probes = vec![
            sleepy("fast", 10, 1000),
            sleepy("hung", 3_600_000, 1500),
            sleepy("slow", 500, 1000),
            Arc::new(Panics) as _,
        ];
        let ctx = ProbeContext { cycle: 0, now: 0 };
        let start = Instant::now();
        let results = run_cycle(&probes, &ctx, Duration::from_millis(800)).await;
        // Bounded by the budget (800 ms), not by the hung probe or its own 1.5 s timeout.
        assert_eq!(start.elapsed(), Duration::from_millis(800));
        let names: Vec<_> = results.iter().map(|r| r.probe.as_str()).collect();
        assert_eq!(names, ["fast", "hung", "slow", "panics"]);
        assert_eq!(results[0].finding.status, NodeStatus::Ok);
        assert_eq!(results[1].finding.status, NodeStatus::Fail);
        assert_eq!(results[1].finding.reasons[0].code, "probe_timeout");
        assert!(results[1].finding.reasons[0].message.contains("800 ms"));
        assert_eq!(results[2].finding.status, NodeStatus::Ok);
        assert_eq!(results[3].finding.reasons[0].code, "probe_crashed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_tick_is_at_once_and_later_ticks_stay_on_a_jittered_grid() {
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut ticker = Ticker::new(t0, period);
        // The daemon asks for its first tick a moment after building the ticker: the
        // first cycle still starts at once, not at t0 in the past nor on the grid.
        tokio::time::advance(Duration::from_millis(3)).await;
        let asked = Instant::now();
        assert_eq!(ticker.next_after(asked), asked);
        let jitter = period.mul_f64(JITTER_FRACTION);
        let second = ticker.next_after(asked);
        let max_phase = MAX_PHASE.min(period / 2);
        assert!(
            second >= t0 + period - jitter && second <= t0 + period + max_phase + jitter,
            "second tick {:?} after start",
            second - t0
        );
        let mut prev = second;
        for _ in 0..50 {
            let next = ticker.next_after(prev);
            let gap = next - prev;
            assert!(
                gap >= period - jitter * 2 && gap <= period + jitter * 2,
                "gap {gap:?}"
            );
            prev = next;
        }
        // A cycle that overran three periods resumes on the grid, with no burst.
        let late = prev + period * 3 + Duration::from_millis(1);
        let next = ticker.next_after(late);
        assert!(
            next > late && next - late <= period + jitter * 2,
            "{:?}",
            next - late
        );
    }

    /// A fleet started in the same instant: every first tick is that instant, and the
    /// random phase spreads the second ticks over the phase window.
    #[tokio::test(start_paused = true)]
    async fn agents_started_together_report_at_once_then_spread_out() {
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut seconds = Vec::new();
        for _ in 0..200 {
            let mut ticker = Ticker::new(t0, period);
            assert_eq!(ticker.next_after(t0), t0);
            seconds.push(ticker.next_after(t0) - t0);
        }
        seconds.sort();
        let jitter = period.mul_f64(JITTER_FRACTION);
        let window = MAX_PHASE.min(period / 2) + jitter * 2;
        // Each of 10 equal slices of the window gets some agents: not all at one point.
        // (The emptiest slices are the two at the edges, where the jitter ramps the density
        // up: each gets a draw with probability 1/16, so 200 draws leave one empty with
        // probability below 2 × (15/16)^200, about 5e-6.)
        let slice = window / 10;
        for i in 0..10u32 {
            let lo = period - jitter + slice * i;
            let hi = lo + slice;
            assert!(
                seconds.iter().any(|s| *s >= lo && *s < hi),
                "no second tick in [{lo:?}, {hi:?}): {seconds:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_has_no_immediate_tick_and_a_fresh_phase() {
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut ticker = Ticker::new(t0, period);
        ticker.next_after(t0);
        let new_period = Duration::from_secs(1);
        ticker.reset(t0, new_period);
        let jitter = new_period.mul_f64(JITTER_FRACTION);
        let next = ticker.next_after(t0);
        assert!(
            next >= t0 + new_period - jitter && next <= t0 + new_period + new_period / 2 + jitter,
            "{:?}",
            next - t0
        );
    }
}
