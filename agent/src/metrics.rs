//! The agent's Prometheus metrics, and the small plain-HTTP listener that serves them on
//! `metrics_listen` (loopback only, off unless configured).
//!
//! Recorded as they happen: each probe's duration and result per cycle, each push to each
//! manager by outcome. Read at scrape time: transitions dropped from the ring, the node's
//! last status. Label sets are bounded: `probe` by the config's probes, `manager` by the
//! manager list (a manager removed from it is removed here too), `outcome` by a fixed set
//! ([`outcome_label`]), `status` by the three statuses. No label or value carries the token,
//! the key or a probe's password, nor a failure's free text (it is cut into a class).
//!
//! Bounds of the listener: at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at accept), a request head within [`HEADER_TIMEOUT`], and one small answer.

use crate::push::{Outcome, Shared};
use crate::schedule::ProbeResult;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use sr_protocol::NodeStatus;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Concurrent scrapes served; past it a connection is closed at once.
pub const MAX_CONNECTIONS: usize = 8;
/// A request head must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

type Labels = Vec<(&'static str, String)>;

/// What the agent records as it runs. Clones share their values.
#[derive(Clone)]
pub struct AgentMetrics {
    probe_seconds: Family<Labels, Histogram>,
    probe_results: Family<Labels, Counter>,
    pushes: Family<Labels, Counter>,
    cycles: Counter,
    node_status: Family<Labels, Gauge>,
    wakeups: Family<Labels, Counter>,
    sessions: Family<Labels, Counter>,
    fast_polls: Family<Labels, Counter>,
    fast_poll_changes: Family<Labels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics {
            // 1 ms .. 16 s: probe budgets are a few seconds; a timeout lands in the top.
            probe_seconds: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.001, 2.0, 15))) as fn() -> Histogram,
            ),
            probe_results: Family::default(),
            pushes: Family::default(),
            cycles: Counter::default(),
            node_status: Family::default(),
            wakeups: Family::default(),
            sessions: Family::default(),
            fast_polls: Family::default(),
            fast_poll_changes: Family::default(),
        }
    }
}

/// The class of a push outcome, from the fixed set `ok`, `timeout`, `connect`, `request`,
/// `response`, `url`, `http_3xx`, `http_4xx`, `http_5xx`, `other`: never the cause's text.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    let cause = match outcome {
        Outcome::Delivered => return "ok",
        Outcome::AwaitingApproval => return "pending_approval",
        Outcome::Retryable(c) | Outcome::Fatal(c) => c.as_str(),
    };
    let kind = cause.split(':').next().unwrap_or("");
    match kind {
        "timeout" => "timeout",
        "connect" => "connect",
        "request" => "request",
        "response" => "response",
        "url" => "url",
        k if k.starts_with("http 3") => "http_3xx",
        k if k.starts_with("http 4") => "http_4xx",
        k if k.starts_with("http 5") => "http_5xx",
        _ => "other",
    }
}

impl AgentMetrics {
    /// One cycle's probe results and the node status it produced.
    pub fn cycle(&self, results: &[ProbeResult], node_status: NodeStatus) {
        self.cycles.inc();
        for r in results {
            let probe: Labels = vec![("probe", r.probe.clone())];
            self.probe_seconds
                .get_or_create(&probe)
                .observe(r.duration.as_secs_f64());
            let mut l = probe;
            l.push(("status", r.finding.status.as_str().to_string()));
            self.probe_results.get_or_create(&l).inc();
        }
        for s in [NodeStatus::Ok, NodeStatus::Degraded, NodeStatus::Fail] {
            self.node_status
                .get_or_create(&vec![("status", s.as_str().to_string())])
                .set(i64::from(s == node_status));
        }
    }

    /// One push attempt to `manager`.
    pub fn push(&self, manager: &str, outcome: &Outcome) {
        self.pushes
            .get_or_create(&vec![
                ("manager", manager.to_string()),
                ("outcome", outcome_label(outcome).to_string()),
            ])
            .inc();
    }

    /// One wake-up request from an event source ([`crate::watch`]) and what became of it:
    /// `cycle` (an extra cycle ran), `rate_limited` (over the budget; the next tick covers
    /// it) or `coalesced` (a cycle was already pending). Both labels are from fixed sets.
    pub fn wakeup(&self, source: &'static str, outcome: &'static str) {
        self.wakeups
            .get_or_create(&vec![
                ("source", source.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// What became of a session the session watch ([`crate::watch::session`]) opened or
    /// tried to: `opened`, `connect_failed`, `short_lived` (ended within its first second:
    /// no wake-up, backs off) or `ended` (a wake-up was asked for). `protocol` is
    /// `postgresql` or `amqp`: both labels are from fixed sets.
    pub fn session(&self, protocol: &'static str, outcome: &'static str) {
        self.sessions
            .get_or_create(&vec![
                ("protocol", protocol.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// One poll of the fast poll ([`crate::watch::fast_poll`]) by its outcome: `answered`,
    /// `timeout` or `failed`. `endpoint` is `patroni` or `etcd_health`: fixed sets.
    pub fn fast_poll(&self, endpoint: &'static str, outcome: &'static str) {
        self.fast_polls
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// A polled endpoint's fingerprint differed from the previous poll's (a wake-up was
    /// asked for).
    pub fn fast_poll_change(&self, endpoint: &'static str) {
        self.fast_poll_changes
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .inc();
    }

    /// `manager` left the list: its series go with it (keeps the label set bounded).
    pub fn forget_manager(&self, manager: &str) {
        // Family has no retain: collect the label sets to remove first.
        let mut gone = Vec::new();
        for outcome in [
            "ok",
            "pending_approval",
            "timeout",
            "connect",
            "request",
            "response",
            "url",
            "http_3xx",
            "http_4xx",
            "http_5xx",
            "other",
        ] {
            gone.push(vec![
                ("manager", manager.to_string()),
                ("outcome", outcome.to_string()),
            ]);
        }
        for l in gone {
            self.pushes.remove(&l);
        }
    }

    /// The exposition, with what is read now from `shared`.
    pub fn encode(&self, shared: &Shared) -> String {
        let dropped = shared.lock().tracker.dropped();
        let mut reg = Registry::with_prefix("status_reporter_agent");
        reg.register_with_unit(
            "probe_duration",
            "How long each probe took in its last cycles (timeouts at their deadline)",
            Unit::Seconds,
            self.probe_seconds.clone(),
        );
        reg.register(
            "probe_results",
            "Probe runs by the status their finding had",
            self.probe_results.clone(),
        );
        reg.register(
            "pushes",
            "Report pushes per manager by outcome class",
            self.pushes.clone(),
        );
        reg.register("cycles", "Probe cycles completed", self.cycles.clone());
        reg.register(
            "node_status",
            "The node's status after the last cycle: 1 for the current one",
            self.node_status.clone(),
        );
        reg.register(
            "wakeups",
            "Wake-up requests from event sources, by source and by what became of them",
            self.wakeups.clone(),
        );
        reg.register(
            "session_watch",
            "Sessions held by the session watch, by protocol and by what became of them",
            self.sessions.clone(),
        );
        reg.register(
            "fast_polls",
            "Polls of cheap endpoints by the fast poll, by endpoint and outcome",
            self.fast_polls.clone(),
        );
        reg.register(
            "fast_poll_changes",
            "Polls whose answer's fingerprint differed from the previous one (each asked for a wake-up)",
            self.fast_poll_changes.clone(),
        );
        let c: Counter = Counter::default();
        c.inc_by(dropped);
        reg.register(
            "transitions_dropped",
            "Transitions dropped from the ring before every manager acknowledged them",
            c,
        );
        let mut out = String::new();
        let _ = prometheus_text::encode(&mut out, &reg);
        out
    }
}

/// Binds `addr` for [`serve`]; the error says which address could not be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr}: {e}"),
        )
    })
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &shared)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), service);
            // A scrape is one small answer: a connection that lasts longer is stuck.
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn answer<B>(req: &hyper::Request<B>, shared: &Shared) -> hyper::Response<Full<Bytes>> {
    let plain = |code: u16, text: &str| {
        hyper::Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text.to_string())))
            .expect("a static response is valid")
    };
    if req.uri().path() != "/metrics" {
        return plain(404, "not found: the agent serves only /metrics\n");
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return plain(405, "method not allowed: GET /metrics\n");
    }
    let body = shared.metrics.encode(shared);
    hyper::Response::builder()
        .header(http::header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_outcomes_map_to_a_fixed_set_without_their_text() {
        let cases = [
            (Outcome::Delivered, "ok"),
            (
                Outcome::Retryable("timeout: no answer within 5 ms".into()),
                "timeout",
            ),
            (Outcome::Retryable("connect: refused".into()), "connect"),
            (Outcome::Retryable("http 503: busy".into()), "http_5xx"),
            (
                Outcome::Fatal("http 401: token revoked secret".into()),
                "http_4xx",
            ),
            (Outcome::Fatal("http 302: redirects".into()), "http_3xx"),
            (Outcome::Fatal("url: invalid".into()), "url"),
            (Outcome::Retryable("weird\nthing".into()), "other"),
        ];
        for (o, want) in cases {
            assert_eq!(outcome_label(&o), want, "{o:?}");
        }
    }

    #[test]
    fn metrics_listen_must_be_a_loopback_socket_address() {
        use crate::config::check_metrics_listen;
        for ok in ["127.0.0.1:9464", "[::1]:9464", "127.0.0.2:0"] {
            assert!(check_metrics_listen(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0.0.0.0:9464",
            "[::]:9464",
            "10.0.0.1:9464",
            "localhost:9464",
            "127.0.0.1",
            "127.0.0.1:65536",
            "",
            ":9464",
            &"1".repeat(100_000),
        ] {
            let e = check_metrics_listen(bad).unwrap_err();
            assert!(
                e.len() < 300,
                "the message quotes at most a bounded input: {}",
                e.len()
            );
        }
    }

    #[test]
    fn forgetting_a_manager_removes_its_series() {
        let m = AgentMetrics::default();
        m.push("a:53333", &Outcome::Delivered);
        m.push("a:53333", &Outcome::Retryable("http 500: x".into()));
        m.push("b:53333", &Outcome::Delivered);
        let shared = Shared::default();
        assert!(m.encode(&shared).contains("manager=\"a:53333\""));
        m.forget_manager("a:53333");
        let text = m.encode(&shared);
        assert!(!text.contains("manager=\"a:53333\""), "{text}");
        assert!(text.contains("manager=\"b:53333\""), "{text}");
    }
}
