//! The probe scheduler: when cycles start, and how one cycle runs.
//!
//! Cycles start on a fixed grid (`offset + k × period`) with a small per-tick jitter,
//! so many agents started together spread out and a slow cycle never shifts every later
//! one. A cycle runs every probe concurrently, each under its own hard timeout and all
//! under the cycle budget, which is shorter than the period: cycles never overlap, and a
//! hung probe becomes a Fail finding with a reason while the report still goes out on
//! time.

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
/// The random start offset is at most this, so the first report is never much later
/// than start-up.
pub const MAX_START_OFFSET: Duration = Duration::from_secs(2);

/// Start times for cycles on a jittered grid.
#[derive(Debug)]
pub struct Ticker {
    base: Instant,
    period: Duration,
    k: u64,
}

impl Ticker {
    /// A ticker whose first tick is a random offset (at most half a period, capped at
    /// [`MAX_START_OFFSET`]) after `now`.
    pub fn new(now: Instant, period: Duration) -> Self {
        let max = (period / 2).min(MAX_START_OFFSET);
        let offset = rand::rng().random_range(Duration::ZERO..=max);
        Ticker {
            base: now + offset,
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
        let jitter_max = self.period.mul_f64(JITTER_FRACTION);
        loop {
            let grid = self.base + self.period * (self.k as u32);
            self.k += 1;
            if self.k == 1 {
                // The first tick is the random start offset itself.
                return grid.max(now);
            }
            // Jitter in [-j, +j] around the grid point.
            let at = grid + rand::rng().random_range(Duration::ZERO..=jitter_max * 2) - jitter_max;
            if at > now {
                return at;
            }
        }
    }

    /// Changes the period (on reload) keeping the grid's phase from now.
    pub fn reset(&mut self, now: Instant, period: Duration) {
        *self = Ticker {
            base: now + period,
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
    async fn ticks_stay_on_a_jittered_grid_and_skip_missed_points() {
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut ticker = Ticker::new(t0, period);
        let first = ticker.next_after(t0);
        assert!(
            first >= t0 && first <= t0 + MAX_START_OFFSET,
            "{:?}",
            first - t0
        );
        let jitter = period.mul_f64(JITTER_FRACTION);
        let mut prev = first;
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
}
