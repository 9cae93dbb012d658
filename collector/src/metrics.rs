//! Prometheus metrics of the collector, served as `GET /metrics` in the text exposition
//! format (0.0.4) by the `prometheus-client` crate.
//!
//! Two kinds of series:
//! - **recorded as they happen** and held here ([`Metrics`]): reports refused by reason,
//!   the ingest latency and the store's write latency;
//! - **read at scrape time** ([`Metrics::encode`]): the roll-up's status of the cluster,
//!   each service and each node, stale nodes, and the counters `/api/v3.1/status` already
//!   shows (copied from their atomics, so the two never disagree).
//!
//! Every scrape builds a fresh [`Registry`] around clones of the held metrics (clones share
//! their values), so nothing registered lives longer than one answer and a node forgotten
//! by the operator disappears from the next scrape.
//!
//! `[metrics] per_node_series = false` leaves out the three series labelled by node
//! (`node_status`, `node_reason`, `node_clock_skew_seconds`); the counts stay.
//!
//! Label sets are bounded: `node` by `max_nodes`, `service` by the node types, `status` by
//! the three statuses, `reason` on refusals by the refusal codes (a fixed set of
//! `&'static str`), `reason` on nodes by the reason catalog
//! ([`sr_protocol::reasons::ALL`]; a code outside it counts as `other`). No label or value
//! carries a token, a key or a password.

use crate::app::{App, BoundCounters};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use sr_protocol::view::ClusterStatus;
use sr_protocol::{NodeStatus, Reason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The refusal codes a report can be answered with ([`crate::ingest::Refusal::code`] and the
/// body budget's `server_busy`). Listed so that each starts at 0 (a counter that first
/// appears at 1 hides its first increase from `rate()`); a code missing here is still
/// counted, from its first use.
pub const REFUSAL_CODES: &[&str] = &[
    "payload_too_large",
    "unsupported_media_type",
    "unauthorized_error",
    "unknown_node_type",
    "forbidden_error",
    "invalid_node_id",
    "request_timeout",
    "invalid_signature",
    "signature_required",
    "too_many_nodes",
    "key_mismatch",
    "replayed_report",
    "stale_signature",
    "key_forgotten",
    "key_not_approved",
    "store_unavailable",
    "bad_parameters_error",
    "server_busy",
];

type Labels1 = [(&'static str, &'static str); 1];

/// What is recorded as it happens.
#[derive(Clone)]
pub struct Metrics {
    refused: Family<Labels1, Counter>,
    ingest_seconds: Histogram,
    /// Shared with the writer thread ([`crate::writer::Writer::timings`]).
    pub store: StoreTimings,
}

impl Metrics {
    /// `store` is the writer thread's [`StoreTimings`].
    pub fn new(store: StoreTimings) -> Self {
        let refused = Family::<Labels1, Counter>::default();
        for code in REFUSAL_CODES {
            let _ = refused.get_or_create(&[("reason", code)]);
        }
        Metrics {
            refused,
            // 0.5 ms .. 4 s: a report is a signature check and, on first contact or with
            // transitions, one fsync; the tail is the queue behind the writer.
            ingest_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            store,
        }
    }
}

/// The writer thread's latency per kind of write: `durable` (pins and transitions, one
/// group commit, before the 200) and `flush` (latest reports written behind).
#[derive(Clone)]
pub struct StoreTimings(Family<Labels1, Histogram>);

impl Default for StoreTimings {
    fn default() -> Self {
        let f = Family::<Labels1, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0002, 2.0, 15))) as fn() -> Histogram,
        );
        for kind in ["durable", "flush"] {
            let _ = f.get_or_create(&[("kind", kind)]);
        }
        StoreTimings(f)
    }
}

impl StoreTimings {
    pub fn durable(&self, took: Duration) {
        self.0
            .get_or_create(&[("kind", "durable")])
            .observe(took.as_secs_f64());
    }

    pub fn flush(&self, took: Duration) {
        self.0
            .get_or_create(&[("kind", "flush")])
            .observe(took.as_secs_f64());
    }
}

impl Metrics {
    /// One report answered: how long it took, and its refusal code if it was refused.
    pub fn report(&self, took: Duration, refused: Option<&'static str>) {
        self.ingest_seconds.observe(took.as_secs_f64());
        if let Some(code) = refused {
            self.refused.get_or_create(&[("reason", code)]).inc();
        }
    }

    /// The whole exposition: held metrics, the counters of `/status`, and the roll-up
    /// `view` (computed by the caller off the async threads).
    pub fn encode(&self, app: &App, view: &ClusterStatus) -> String {
        let mut reg = Registry::with_prefix("status_reporter");
        self.register_held(&mut reg);
        register_counters(&mut reg, app);
        register_view(&mut reg, app, view);
        app.alerts.register(&mut reg);
        app.tier2.register(&mut reg, crate::clock::now_ms());
        if let Some(shared) = app.shared.get() {
            crate::shared::sync::register_metrics(&mut reg, shared);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &reg);
        out
    }

    fn register_held(&self, reg: &mut Registry) {
        reg.register(
            "reports_refused",
            "Reports refused, by the error_code the reporter was answered with",
            self.refused.clone(),
        );
        reg.register_with_unit(
            "ingest_duration",
            "Time from a report's headers to its answer, accepted or refused",
            Unit::Seconds,
            self.ingest_seconds.clone(),
        );
        reg.register_with_unit(
            "store_write_duration",
            "Time the store writer took per write: durable (before the 200) or flush (write-behind)",
            Unit::Seconds,
            self.store.0.clone(),
        );
    }
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// The counters `/api/v3.1/status` shows, as Prometheus counters.
fn register_counters(reg: &mut Registry, app: &App) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let ingest = &app.mem.counters;
    let bounds = &app.bounds.counters;
    let counters: [(&str, &str, &AtomicU64); 11] = [
        ("reports_accepted", "Reports accepted and stored", &ingest.accepted),
        ("reports_rejected", "Reports refused, all reasons together (see reports_refused_total)", &ingest.rejected),
        ("connections_refused", "TCP connections closed at accept: max_connections reached", &ingest.connections_refused),
        ("tls_handshake_failures", "TLS handshakes that failed or timed out", &ingest.tls_handshake_failures),
        ("nodes_refused", "Reports from a new node refused because max_nodes are tracked", &ingest.nodes_refused),
        ("flushes", "Write-behind flushes of the latest reports", &ingest.flushes),
        ("flush_errors", "Write-behind flushes that failed", &ingest.flush_errors),
        ("report_bodies_refused_busy", "Reports answered 503 because the in-flight body budget was spent", &bounds.bodies_refused_busy),
        ("login_failures", "HTTP Basic logins that failed (wrong password or unknown user)", &bounds.login_failures),
        ("logins_throttled", "HTTP Basic attempts answered 429 unchecked: the source's failed-login budget was spent", &bounds.logins_throttled),
        ("accept_failures", "accept() errors (file descriptors exhausted, mostly)", &bounds.accept_failures),
    ];
    for (name, help, c) in counters {
        reg.register(name, help, counter(get(c)));
    }
    reg.register(
        "idle_connections_closed",
        "Connections closed after idle_timeout with no request in flight",
        counter(BoundCounters::get(&bounds.idle_closed)),
    );
    let free = app.bounds.body_bytes.available_permits();
    let limit = app.cfg.max_inflight_body_bytes;
    reg.register_with_unit(
        "inflight_body",
        "Report-body bytes requests hold of the in-flight budget now",
        Unit::Bytes,
        gauge(limit.saturating_sub(free) as i64),
    );
    reg.register_with_unit(
        "inflight_body_limit",
        "The in-flight body budget (max_inflight_body_bytes)",
        Unit::Bytes,
        gauge(limit as i64),
    );
    let w = &app.watchers;
    reg.register(
        "event_watchers",
        "Event streams open now",
        gauge(w.active.load(Ordering::Relaxed) as i64),
    );
    reg.register(
        "event_watchers_refused",
        "Event streams refused: the watcher cap was reached",
        counter(get(&w.refused)),
    );
    reg.register(
        "events_sent",
        "Events sent on event streams, all watchers together",
        counter(get(&w.sent)),
    );
    reg.register(
        "login_throttle_sources",
        "Sources the failed-login throttle remembers now",
        gauge(app.bounds.logins.sources() as i64),
    );
}

const STATUSES: [NodeStatus; 3] = [NodeStatus::Ok, NodeStatus::Degraded, NodeStatus::Fail];

/// The catalog code of `r`, or `other` for a code outside the catalog (an agent could send
/// any string; the label set stays the catalog's).
fn catalog_code(r: &Reason) -> &'static str {
    sr_protocol::reasons::ALL
        .iter()
        .find(|c| c.code == r.code)
        .map_or("other", |c| c.code)
}

/// The roll-up as state sets (1 for the current status, 0 for the others), the reasons in
/// force, and node counts.
fn register_view(reg: &mut Registry, app: &App, view: &ClusterStatus) {
    type L = Vec<(&'static str, String)>;
    let cluster = Family::<L, Gauge>::default();
    let services = Family::<L, Gauge>::default();
    let service_reasons = Family::<L, Gauge>::default();
    let nodes = Family::<L, Gauge>::default();
    let node_reasons = Family::<L, Gauge>::default();
    let skew = Family::<L, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let mut stale = 0i64;
    let mut count = 0i64;
    let state = |family: &Family<L, Gauge>, base: &L, current: NodeStatus| {
        for s in STATUSES {
            let mut l = base.clone();
            l.push(("status", s.as_str().to_string()));
            family.get_or_create(&l).set(i64::from(s == current));
        }
    };
    state(&cluster, &Vec::new(), view.status);
    for (service, sv) in &view.services {
        let base: L = vec![("service", service.clone())];
        state(&services, &base, sv.status);
        for r in &sv.reasons {
            let mut l = base.clone();
            l.push(("reason", catalog_code(r).to_string()));
            service_reasons.get_or_create(&l).set(1);
        }
        for (name, node) in &sv.nodes {
            count += 1;
            // `[metrics] per_node_series = false`: counted, not labelled by node.
            if !app.cfg.metrics.per_node_series {
                stale += i64::from(
                    node.reasons
                        .iter()
                        .any(|r| r.code == sr_protocol::reasons::STALE.code),
                );
                continue;
            }
            let base: L = vec![("service", service.clone()), ("node", name.clone())];
            state(&nodes, &base, node.status);
            for r in &node.reasons {
                let code = catalog_code(r);
                stale += i64::from(code == sr_protocol::reasons::STALE.code);
                let mut l = base.clone();
                l.push(("reason", code.to_string()));
                node_reasons.get_or_create(&l).set(1);
            }
            if let Some(ms) = node.skew_ms {
                skew.get_or_create(&base).set(ms as f64 / 1000.0);
            }
        }
    }
    reg.register(
        "cluster_status",
        "The cluster's status: 1 for the current one of OK, Degraded, Fail",
        cluster,
    );
    reg.register(
        "service_status",
        "Each service type's status: 1 for the current one",
        services,
    );
    reg.register(
        "service_reason",
        "Reason codes in force on a service type (1 while present)",
        service_reasons,
    );
    if app.cfg.metrics.per_node_series {
        reg.register(
            "node_status",
            "Each node's status: 1 for the current one",
            nodes,
        );
        reg.register(
            "node_reason",
            "Reason codes in force on a node (1 while present; codes outside the catalog count as other)",
            node_reasons,
        );
        reg.register_with_unit(
            "node_clock_skew",
            "The node's clock minus the collector's at its last report",
            Unit::Seconds,
            skew,
        );
    }
    reg.register(
        "nodes",
        "Nodes in the view (reporting or expected)",
        gauge(count),
    );
    reg.register(
        "nodes_max",
        "The node cap (max_nodes)",
        gauge(app.cfg.max_nodes as i64),
    );
    reg.register(
        "stale_nodes",
        "Nodes without a report for stale_after (reason stale)",
        gauge(stale),
    );
}
