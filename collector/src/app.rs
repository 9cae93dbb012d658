//! One running collector's shared state, handed to every request handler.
//!
//! It sits below both the routes ([`crate::api`]) and ingest ([`crate::ingest`]) so that
//! neither imports the other for it.
//!
//! It also holds what bounds an outsider's cost beyond the connection cap ([`Bounds`]):
//! the budget of request-body bytes in flight, the per-source throttle on failed logins,
//! the counters of what those refused, and rate limits on the log lines they cause.

use crate::config::Config;
use crate::rollup::{NodeInput, Policy};
use crate::state::Memory;
use crate::writer::Writer;
use sr_protocol::view::ClusterStatus;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Everything a request handler needs. One per running collector.
pub struct App {
    pub cfg: Config,
    pub policy: Policy,
    pub mem: Memory,
    pub writer: Writer,
    /// Recently verified Basic credentials (SHA-256 of `user:password` → when), so a
    /// polling reader does not pay an argon2 verification per request.
    pub(crate) basic_ok: Mutex<HashMap<[u8; 32], Instant>>,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and tens of ms).
    pub(crate) argon_permits: tokio::sync::Semaphore,
    pub bounds: Bounds,
    /// Prometheus metrics recorded as they happen (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The store connection history reads use, apart from the writer thread.
    pub history: crate::history::Reader,
    /// Event-stream watchers: the cap and what it refused.
    pub watchers: crate::events::Watchers,
    /// Set when the collector begins to stop: event streams end so the drain need not
    /// wait out its grace for them.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The alerts' metrics (`crate::alerts`; its tasks hold the rest).
    pub alerts: crate::alerts::AlertMetrics,
    /// The shared store's sync task, when `[store] kind = "postgres"` (issue 16).
    pub shared: std::sync::OnceLock<std::sync::Arc<crate::shared::sync::SyncStatus>>,
    /// `GET /cluster-status` from cached bytes (issue 17).
    pub view_cache: crate::view_cache::ViewCache,
    /// Tier 2 (issue 16): the clusters of a `[fleet]` collector, and the push's metrics.
    pub tier2: crate::tier2::Tier2,
}

impl App {
    pub fn new(cfg: Config, mem: Memory, writer: Writer) -> App {
        App {
            policy: cfg.rollup_policy(),
            bounds: Bounds::new(&cfg),
            tier2: crate::tier2::Tier2::new(&cfg),
            cfg,
            mem,
            basic_ok: Mutex::new(HashMap::new()),
            argon_permits: tokio::sync::Semaphore::new(2),
            metrics: crate::metrics::Metrics::new(writer.timings.clone()),
            history: Default::default(),
            watchers: Default::default(),
            closing: tokio::sync::watch::Sender::new(false),
            alerts: Default::default(),
            shared: std::sync::OnceLock::new(),
            view_cache: Default::default(),
            writer,
        }
    }

    /// The cluster-status view now (the collector's clock).
    pub fn view(&self) -> ClusterStatus {
        self.view_at().1
    }

    /// The cluster-status view now, with the clock reading it was judged at.
    pub fn view_at(&self) -> (i64, ClusterStatus) {
        self.with_view_parts(|now, parts| (now, parts.into_view()))
    }

    /// `f` over the cluster-status view now, its rows borrowed from the judged inputs
    /// (`crate::view_encode` writes them without a view per node), and the clock
    /// reading it was judged at.
    pub fn with_view_parts<R>(&self, f: impl FnOnce(i64, crate::rollup::ViewParts<'_>) -> R) -> R {
        let now = crate::clock::now_ms();
        let mut records = self.mem.records();
        // The rules take each type's nodes as one slice. Sorted as records, not as judged
        // inputs: a record is a fraction of an input's size to move (issue 17).
        records.sort_by_key(|r| r.node_type);
        let mut inputs: Vec<NodeInput> = records
            .iter()
            .map(|r| NodeInput::from_record(r, now, &self.policy))
            .collect();
        // Maintenance windows (a small table; an unreadable store shows none).
        let windows = self
            .history
            .with(self, |s| s.maintenance(now))
            .unwrap_or_default();
        let windows = crate::maintenance::in_force(windows, &inputs);
        crate::maintenance::mark_inputs(&mut inputs, &windows);
        let mut parts = crate::rollup::rollup_parts(&inputs, now, &self.policy);
        crate::maintenance::cap_services(&mut parts, &windows);
        f(now, parts)
    }
}

/// What bounds an outsider's cost beyond the connection cap, and what it refused.
pub struct Bounds {
    /// One permit per request-body byte that may be in flight (`max_inflight_body_bytes`).
    pub body_bytes: Arc<Semaphore>,
    pub logins: LoginThrottle,
    pub counters: BoundCounters,
    /// `accept` failures (EMFILE and friends) can repeat every few ms: one line per period.
    pub accept_log: LogLimiter,
    pub login_log: LogLimiter,
}

impl Bounds {
    pub fn new(cfg: &Config) -> Bounds {
        Bounds {
            body_bytes: Arc::new(Semaphore::new(cfg.max_inflight_body_bytes)),
            logins: LoginThrottle::default(),
            counters: BoundCounters::default(),
            accept_log: LogLimiter::new(LOG_PERIOD),
            login_log: LogLimiter::new(LOG_PERIOD),
        }
    }
}

/// At most one log line per this period for a repeating event; the rest are counted.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

/// What the bounds refused, shown on `GET /api/v3.1/status` beside the ingest counters.
#[derive(Debug, Default)]
pub struct BoundCounters {
    /// Reports answered 503 because the body budget was spent.
    pub bodies_refused_busy: AtomicU64,
    /// HTTP Basic logins that failed (wrong password or unknown user).
    pub login_failures: AtomicU64,
    /// HTTP Basic attempts answered 429 without checking, their source over its budget.
    pub logins_throttled: AtomicU64,
    /// `accept` errors (file descriptors exhausted, mostly).
    pub accept_failures: AtomicU64,
    /// Connections closed after `idle_timeout` with no request in flight.
    pub idle_closed: AtomicU64,
}

impl BoundCounters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let g = Self::get;
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("bodies_refused_busy", g(&self.bodies_refused_busy)),
            ("login_failures", g(&self.login_failures)),
            ("logins_throttled", g(&self.logins_throttled)),
            ("accept_failures", g(&self.accept_failures)),
            ("idle_connections_closed", g(&self.idle_closed)),
        ] {
            m.insert(k.to_string(), v.into());
        }
        m
    }
}

/// Lets one log line through per period and counts the ones it held back.
pub struct LogLimiter {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)`: log now, mentioning the `n` events held back since the last line.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(last) if last.elapsed() < self.period => {
                s.1 += 1;
                None
            }
            _ => {
                let held = std::mem::take(&mut s.1);
                s.0 = Some(Instant::now());
                Some(held)
            }
        }
    }
}

/// Failed logins a source may make at once, then one more per [`LOGIN_REFILL`].
pub const LOGIN_BURST: f64 = 10.0;
pub const LOGIN_REFILL: Duration = Duration::from_secs(6);
/// Sources remembered; past it the longest-quiet source is forgotten.
pub const LOGIN_SOURCES: usize = 4096;

/// A token bucket of failed HTTP Basic logins per source. Only failures spend tokens, so
/// a reader with the right password is never slowed; a source with none left is answered
/// 429 before any argon2 work. IPv6 sources count per /64 (one host holds a whole /64).
#[derive(Default)]
pub struct LoginThrottle {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl LoginThrottle {
    fn key(peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }

    fn refilled(tokens: f64, since: Instant, now: Instant) -> f64 {
        let gained = now.duration_since(since).as_secs_f64() / LOGIN_REFILL.as_secs_f64();
        (tokens + gained).min(LOGIN_BURST)
    }

    /// Whether `peer` may try a password now.
    pub fn may_try(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .get(&Self::key(peer))
            .is_none_or(|&(t, at)| Self::refilled(t, at, now) >= 1.0)
    }

    /// Spends one token of `peer`'s budget for a failed login.
    pub fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let key = Self::key(peer);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= LOGIN_SOURCES {
            let quietest = buckets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k);
            if let Some(k) = quietest {
                buckets.remove(&k);
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((LOGIN_BURST, now));
        *tokens = (Self::refilled(*tokens, *at, now) - 1.0).max(0.0);
        *at = now;
    }

    pub fn sources(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_a_burst_of_failures_then_waits() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..LOGIN_BURST as usize {
            assert!(t.may_try(a));
            t.failed(a);
        }
        assert!(!t.may_try(a), "the burst is spent");
        assert!(t.may_try(b), "another source is not affected");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff".parse().unwrap();
        for _ in 0..LOGIN_BURST as usize {
            t.failed(v6a);
        }
        assert!(!t.may_try(v6b), "one /64 is one source");
    }

    #[test]
    fn the_throttle_table_is_bounded() {
        let t = LoginThrottle::default();
        for i in 0..(LOGIN_SOURCES as u32 + 100) {
            t.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert_eq!(t.sources(), LOGIN_SOURCES);
    }

    #[test]
    fn the_log_limiter_lets_one_line_through_per_period() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        for _ in 0..20 {
            assert_eq!(l.allow(), None);
        }
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
    }
}
