//! The alerts' Prometheus series, held here and registered into each scrape by
//! [`AlertMetrics::register`]. Labels are bounded: `sink` by the configured sinks
//! (at most 16 of each kind, an Alertmanager sink once per URL as `name@host:port`),
//! `kind` by node/service, `to` by the statuses. No URL path, secret or password.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

type L = Vec<(&'static str, String)>;
type Histograms = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 10 ms .. ~10 min: a delivery includes its queue wait and its retries.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// Every sink's series, and the evaluator's.
#[derive(Clone)]
pub struct AlertMetrics {
    delivered: Family<L, Counter>,
    failed: Family<L, Counter>,
    dropped: Family<L, Counter>,
    retries: Family<L, Counter>,
    queued: Family<L, Gauge>,
    latency: Histograms,
    changes: Family<L, Counter>,
    /// Targets waiting out the hold-down or a maintenance window.
    pub pending: Gauge,
}

impl Default for AlertMetrics {
    fn default() -> Self {
        AlertMetrics {
            delivered: Family::default(),
            failed: Family::default(),
            dropped: Family::default(),
            retries: Family::default(),
            queued: Family::default(),
            latency: Family::new_with_constructor(latency as fn() -> Histogram),
            changes: Family::default(),
            pending: Gauge::default(),
        }
    }
}

/// One sink's handles (clones share their values with the families).
#[derive(Clone)]
pub struct SinkMetrics {
    pub delivered: Counter,
    pub failed: Counter,
    pub dropped: Counter,
    pub retries: Counter,
    pub queued: Gauge,
    pub latency: Histogram,
}

impl SinkMetrics {
    /// Handles registered nowhere, for unit tests.
    pub fn detached() -> SinkMetrics {
        AlertMetrics::default().sink("test")
    }
}

impl AlertMetrics {
    /// The handles of sink `name`, created at 0 so `rate()` sees the first increase.
    pub fn sink(&self, name: &str) -> SinkMetrics {
        let l: L = vec![("sink", name.to_string())];
        SinkMetrics {
            delivered: self.delivered.get_or_create(&l).clone(),
            failed: self.failed.get_or_create(&l).clone(),
            dropped: self.dropped.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            queued: self.queued.get_or_create(&l).clone(),
            latency: self.latency.get_or_create(&l).clone(),
        }
    }

    /// One change let through by the hold-down.
    pub fn change(&self, kind: &'static str, to: &'static str) {
        self.changes
            .get_or_create(&vec![("kind", kind.to_string()), ("to", to.to_string())])
            .inc();
    }

    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "alerts_delivered",
            "Alert deliveries a sink's receiver answered 2xx (an Alertmanager re-send counts too)",
            self.delivered.clone(),
        );
        reg.register(
            "alerts_failed",
            "Alert deliveries given up: retries spent, or an answer not worth retrying (4xx)",
            self.failed.clone(),
        );
        reg.register(
            "alerts_dropped",
            "Alerts dropped from a full sink queue (the oldest goes)",
            self.dropped.clone(),
        );
        reg.register(
            "alert_retries",
            "Delivery attempts retried",
            self.retries.clone(),
        );
        reg.register(
            "alert_queue_length",
            "Alerts waiting in a sink's queue",
            self.queued.clone(),
        );
        reg.register_with_unit(
            "alert_delivery_duration",
            "From an alert entering a sink's queue to its receiver's 2xx, retries included",
            Unit::Seconds,
            self.latency.clone(),
        );
        reg.register(
            "alert_changes",
            "Status changes the hold-down let through, by kind (node, service) and new status",
            self.changes.clone(),
        );
        reg.register(
            "alerts_pending",
            "Targets whose status differs from what the sinks last heard (in hold-down or maintenance)",
            self.pending.clone(),
        );
    }
}
