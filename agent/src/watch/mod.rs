//! Event sources that wake the daemon for a cycle before its next tick, and the budget
//! that bounds those extra cycles.
//!
//! A failure used to show only at the next tick: at the default 5 s interval, a median
//! 2.5 s after it happened. An event source notices something cheap (a watched process
//! exiting, [`process`]; an idle connection dropping, [`connection`]; an authenticated
//! PostgreSQL session or AMQP connection ending, [`session`]; systemd announcing
//! a probed unit's state change, [`systemd`]; a cheap endpoint's answer changing or
//! stopping between two polls, [`fast_poll`]) and sends a [`Wake`]; the daemon runs one whole cycle at once
//! and pushes it only if a status changed. Ticks keep their grid.
//!
//! Invariant: no event source probes, and none decides a status. A source only wakes the
//! scheduler; the probes decide, as on a tick. A wrong wake-up (a process that was not the
//! service, a restart) costs one bounded extra cycle, never a wrong report.
//!
//! Bounds: the wake queue holds [`WAKE_QUEUE`] requests (a full queue means a cycle is
//! already pending: the request is counted as `coalesced`), and [`Budget`] allows at most
//! `max_extra_cycles` extra cycles per interval (the rest are counted as `rate_limited`;
//! the next tick covers them), so a flapping service cannot flood the managers.

pub mod connection;
pub mod fast_poll;
pub mod listener;
pub mod process;
pub mod session;
pub mod systemd;

use crate::metrics::AgentMetrics;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Wake requests queued at most; more are coalesced into the pending cycle.
pub const WAKE_QUEUE: usize = 16;

/// What noticed the event. A fixed set: it is a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A process a probe depends on exited ([`process`]).
    ProcessExit,
    /// An idle connection to a probed port was closed or reset ([`connection`]).
    ConnectionDropped,
    /// systemd announced a state change of a unit a `services` probe reads ([`systemd`]).
    UnitState,
    /// A held PostgreSQL session or AMQP connection was ended by the server ([`session`]).
    SessionEnded,
    /// A polled endpoint's answer changed or stopped coming ([`fast_poll`]).
    FastPoll,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::ProcessExit => "process_exit",
            Source::ConnectionDropped => "connection_dropped",
            Source::UnitState => "unit_state",
            Source::SessionEnded => "session_ended",
            Source::FastPoll => "fast_poll",
        }
    }
}

/// One request for an immediate cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub source: Source,
    /// The probe whose service the event concerns (for the log line).
    pub probe: String,
}

/// The sending side, cloned into every event source.
#[derive(Clone)]
pub struct Waker {
    tx: mpsc::Sender<Wake>,
    metrics: AgentMetrics,
}

/// A bounded wake queue; the receiver belongs to the daemon's loop.
pub fn channel(metrics: AgentMetrics) -> (Waker, mpsc::Receiver<Wake>) {
    let (tx, rx) = mpsc::channel(WAKE_QUEUE);
    (Waker { tx, metrics }, rx)
}

impl Waker {
    /// The agent's metrics, for the sources' own counters.
    pub fn metrics(&self) -> &AgentMetrics {
        &self.metrics
    }

    /// Asks for a cycle now. Never waits: with the queue full a cycle is pending already.
    pub fn wake(&self, wake: Wake) {
        let source = wake.source;
        if self.tx.try_send(wake).is_err() {
            self.metrics.wakeup(source.label(), "coalesced");
        }
    }
}

/// A token bucket: at most `capacity` extra cycles in any one interval, refilled evenly.
#[derive(Debug)]
pub struct Budget {
    capacity: u32,
    tokens: f64,
    period: Duration,
    last: Instant,
}

impl Budget {
    /// A full bucket of `capacity` tokens per `period`. Capacity 0 allows no extra cycle.
    pub fn new(capacity: u32, period: Duration, now: Instant) -> Self {
        Budget {
            capacity,
            tokens: f64::from(capacity),
            period,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        if !self.period.is_zero() {
            let refill =
                elapsed.as_secs_f64() / self.period.as_secs_f64() * f64::from(self.capacity);
            self.tokens = (self.tokens + refill).min(f64::from(self.capacity));
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Polls `f` every 10 ms until it holds; fails after 10 s.
#[cfg(test)]
pub(crate) async fn until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_allows_a_burst_of_capacity_then_refills_evenly() {
        let period = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut b = Budget::new(3, period, t0);
        let taken = (0..100).filter(|_| b.try_take(t0)).count();
        assert_eq!(taken, 3, "a burst gets the capacity, no more");
        // One token per period / capacity.
        assert!(!b.try_take(t0 + period / 4));
        assert!(b.try_take(t0 + period / 3 + Duration::from_millis(1)));
        // Over one long quiet spell the bucket fills to its capacity only.
        let later = t0 + period * 10;
        assert_eq!((0..100).filter(|_| b.try_take(later)).count(), 3);
        let mut off = Budget::new(0, period, t0);
        assert!(!off.try_take(t0 + period * 100), "capacity 0 allows none");
    }

    #[tokio::test]
    async fn a_full_queue_coalesces_and_counts() {
        let metrics = AgentMetrics::default();
        let (w, mut rx) = channel(metrics.clone());
        for _ in 0..WAKE_QUEUE + 5 {
            w.wake(Wake {
                source: Source::ProcessExit,
                probe: "patroni".into(),
            });
        }
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, WAKE_QUEUE);
        let text = metrics.encode(&crate::push::Shared::default());
        assert!(
            text.contains(
                "status_reporter_agent_wakeups_total{source=\"process_exit\",outcome=\"coalesced\"} 5"
            ),
            "{text}"
        );
    }
}
