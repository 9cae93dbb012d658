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

/// The families behind every sink's handles, one label value per sink; shared in shape
/// with the tier-2 push ([`crate::tier2::push`]), which delivers the same way.
#[derive(Clone)]
pub struct SinkFamilies {
    pub delivered: Family<L, Counter>,
    pub failed: Family<L, Counter>,
    pub dropped: Family<L, Counter>,
    pub retries: Family<L, Counter>,
    pub queued: Family<L, Gauge>,
    pub latency: Histograms,
}

impl SinkFamilies {
    /// Empty families; `latency` makes each histogram (its buckets).
    pub fn new(latency: fn() -> Histogram) -> SinkFamilies {
        SinkFamilies {
            delivered: Family::default(),
            failed: Family::default(),
            dropped: Family::default(),
            retries: Family::default(),
            queued: Family::default(),
            latency: Family::new_with_constructor(latency),
        }
    }

    /// The handles of one sink, labelled `label = name`, created at 0 so `rate()` sees the
    /// first increase.
    pub fn sink(&self, label: &'static str, name: &str) -> SinkMetrics {
        let l: L = vec![(label, name.to_string())];
        SinkMetrics {
            delivered: self.delivered.get_or_create(&l).clone(),
            failed: self.failed.get_or_create(&l).clone(),
            dropped: self.dropped.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            queued: self.queued.get_or_create(&l).clone(),
            latency: self.latency.get_or_create(&l).clone(),
        }
    }
}

/// Every sink's series, and the evaluator's.
#[derive(Clone)]
pub struct AlertMetrics {
    sinks: SinkFamilies,
    changes: Family<L, Counter>,
    /// Targets waiting out the hold-down or a maintenance window.
    pub pending: Gauge,
}

impl Default for AlertMetrics {
    fn default() -> Self {
        AlertMetrics {
            sinks: SinkFamilies::new(latency),
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
        self.sinks.sink("sink", name)
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
            self.sinks.delivered.clone(),
        );
        reg.register(
            "alerts_failed",
            "Alert deliveries given up: retries spent, or an answer not worth retrying (4xx)",
            self.sinks.failed.clone(),
        );
        reg.register(
            "alerts_dropped",
            "Alerts dropped from a full sink queue (the oldest goes)",
            self.sinks.dropped.clone(),
        );
        reg.register(
            "alert_retries",
            "Delivery attempts retried",
            self.sinks.retries.clone(),
        );
        reg.register(
            "alert_queue_length",
            "Alerts waiting in a sink's queue",
            self.sinks.queued.clone(),
        );
        reg.register_with_unit(
            "alert_delivery_duration",
            "From an alert entering a sink's queue to its receiver's 2xx, retries included",
            Unit::Seconds,
            self.sinks.latency.clone(),
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
