//! Event source: a poll of a probed service's cheap read-only endpoint, faster than the
//! reporting interval. It sees what no other source can: a service that is alive but hung
//! (Patroni stopped with SIGSTOP keeps its process and its TCP connections), or one that
//! changed state without any process or connection ending (a Patroni member promoted or
//! demoted, paused, its PostgreSQL stopped; an etcd member that lost its leader).
//!
//! Endpoints ([`targets`]): `GET /patroni` of each `patroni` probe and `GET /health` of
//! each `etcd` probe, with the probe's own URL, TLS files, credentials and (for Patroni)
//! the `TCP_QUICKACK` client of the probe ([`sr_tls::Acks::Quick`]). Every
//! `[events] fast_poll_ms` the watch reads the endpoint and reduces the answer to a small
//! [`Fingerprint`]: the HTTP status and the fields that name the member's state (never
//! timestamps, WAL positions or lags, which move on every read). When it differs from the
//! previous one, the daemon is woken. A timeout is a fingerprint of its own: a service
//! that stops answering wakes the daemon once, and again when it answers.
//!
//! Invariant (as for every source): a fingerprint is not a status. It only says "the
//! answer is different"; the probes decide, in the cycle the wake-up causes. A change that
//! does not matter (a replica that joined the leader's `replication` list) costs one
//! bounded extra cycle, not a different report.
//!
//! Bounds: one task per target with one request in flight (the next poll starts after the
//! previous ended); each request has [`POLL_TIMEOUT`] at most (less if the probe's own
//! timeout is shorter); an answer's body is read up to [`MAX_BODY`] bytes (more is a
//! fingerprint of its own); the client keeps its connection alive between polls where the
//! server allows it (Patroni 3.0 answers HTTP/1.0 and closes; TLS sessions are resumed);
//! each fingerprint keeps at most [`MAX_FIELD`] bytes per field and [`MAX_REPLICAS`]
//! replication entries. Every poll is counted by outcome, every change counted
//! (`status_reporter_agent_fast_polls_total`, `..._fast_poll_changes_total`).

use super::{Source, Wake, Waker};
use sr_probes::net::{self, Fetch};
use sr_probes::ProbeConfig;
use sr_tls::{Acks, HttpsClient};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The longest a poll waits for its answer. Patroni answers `/patroni` in a few ms (with
/// quick ACKs); half a second without an answer is a hung service, not a slow one.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest answer body read. `/patroni` of a leader with 32 replicas is ~6 KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// Bytes kept of each fingerprint field.
pub const MAX_FIELD: usize = 64;
/// Replication entries kept in a Patroni fingerprint.
pub const MAX_REPLICAS: usize = 32;

/// Which cheap endpoint a target polls; decides how its answer is fingerprinted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Patroni's `GET /patroni`.
    Patroni,
    /// etcd's `GET /health`.
    EtcdHealth,
}

impl Endpoint {
    /// A metrics label, from a fixed set.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Patroni => "patroni",
            Endpoint::EtcdHealth => "etcd_health",
        }
    }
}

/// One endpoint to poll, by the probe whose service it reads.
#[derive(Clone)]
pub struct Target {
    pub probe: String,
    pub endpoint: Endpoint,
    pub url: String,
    /// The probe's client; an unloadable TLS file is the error the probe reports.
    pub client: Result<HttpsClient, String>,
    pub auth: Option<String>,
    pub timeout: Duration,
}

/// The endpoints of the probes that have one: `patroni` and `etcd`.
pub fn targets(probes: &[ProbeConfig]) -> Vec<Target> {
    let timeout = |ms: u64| Duration::from_millis(ms).min(POLL_TIMEOUT);
    probes
        .iter()
        .filter_map(|p| match p {
            ProbeConfig::Patroni(c) => Some(Target {
                probe: p.kind().to_string(),
                endpoint: Endpoint::Patroni,
                url: format!("{}/patroni", c.url),
                // The probe's own client settings, quick ACKs included (see
                // `sr_probes::net::TlsFiles::client_with_acks`).
                client: c
                    .tls
                    .client_with_acks(Duration::from_millis(c.timeout_ms), Acks::Quick),
                auth: match (&c.username, &c.password) {
                    (Some(u), Some(pw)) => Some(net::basic_auth(u, pw)),
                    _ => None,
                },
                timeout: timeout(c.timeout_ms),
            }),
            ProbeConfig::Etcd(c) => Some(Target {
                probe: p.kind().to_string(),
                endpoint: Endpoint::EtcdHealth,
                url: format!("{}/health", c.url),
                client: c.tls.client(Duration::from_millis(c.timeout_ms)),
                auth: None,
                timeout: timeout(c.timeout_ms),
            }),
            _ => None,
        })
        .collect()
}

/// What one poll's answer looked like, reduced to what names the service's state. Not a
/// status: two fingerprints are only compared for equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// An HTTP answer: its status and the endpoint's state fields (`key=value` pairs in a
    /// fixed order; `unparsable` when the body is not the expected document).
    Answered { status: u16, fields: String },
    /// No answer within the poll's timeout: a hung service.
    TimedOut,
    /// No HTTP answer: the category only (`connect`, `no_response`, `too_large`, `setup`),
    /// never the message, which can differ from one failure to the next.
    Failed(&'static str),
}

/// The fingerprint of one poll's outcome.
pub fn fingerprint(endpoint: Endpoint, fetch: &Fetch) -> Fingerprint {
    match fetch {
        Fetch::Answered { status, body } => Fingerprint::Answered {
            status: *status,
            fields: match endpoint {
                Endpoint::Patroni => patroni_fields(body),
                Endpoint::EtcdHealth => etcd_health_fields(body),
            }
            .unwrap_or_else(|| "unparsable".to_string()),
        },
        Fetch::TimedOut { .. } => Fingerprint::TimedOut,
        Fetch::ConnectFailed(_) => Fingerprint::Failed("connect"),
        Fetch::NoResponse(_) => Fingerprint::Failed("no_response"),
        Fetch::TooLarge { .. } => Fingerprint::Failed("too_large"),
        Fetch::Setup(_) => Fingerprint::Failed("setup"),
    }
}

/// The fields of `/patroni` that name the member's state. Left out on purpose:
/// `xlog.*location`, `replayed_timestamp`, `dcs_last_seen`, `postmaster_start_time`, `lag`
/// and anything else that moves while nothing changes.
#[derive(serde::Deserialize)]
struct PatroniDoc {
    // Every Patroni version sends both; a document without them is not `/patroni`.
    state: String,
    role: String,
    #[serde(default)]
    timeline: Option<u64>,
    #[serde(default)]
    pause: Option<bool>,
    #[serde(default)]
    pending_restart: Option<bool>,
    #[serde(default)]
    cluster_unlocked: Option<bool>,
    #[serde(default)]
    replication_state: Option<String>,
    #[serde(default)]
    xlog: Option<Xlog>,
    #[serde(default)]
    replication: Option<Vec<Replica>>,
}

#[derive(serde::Deserialize)]
struct Xlog {
    #[serde(default)]
    paused: Option<bool>,
}

#[derive(serde::Deserialize)]
struct Replica {
    #[serde(default)]
    application_name: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    sync_state: Option<String>,
}

/// `s` cut to [`MAX_FIELD`] bytes on a character boundary.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| cut(&v.to_string()).to_string())
        .unwrap_or_default()
}

/// `/patroni` → its state fields, or `None` when the body is not a JSON object of that
/// shape.
pub fn patroni_fields(body: &[u8]) -> Option<String> {
    let doc: PatroniDoc = serde_json::from_slice(body).ok()?;
    let mut replicas: Vec<String> = doc
        .replication
        .unwrap_or_default()
        .iter()
        .take(MAX_REPLICAS)
        .map(|r| {
            format!(
                "{}:{}:{}",
                opt(&r.application_name),
                opt(&r.state),
                opt(&r.sync_state)
            )
        })
        .collect();
    // Patroni lists replicas in pg_stat_replication's order, which may change between reads.
    replicas.sort_unstable();
    Some(format!(
        "state={} role={} timeline={} pause={} pending_restart={} cluster_unlocked={} replay_paused={} replication_state={} replication={}",
        cut(&doc.state),
        cut(&doc.role),
        opt(&doc.timeline),
        opt(&doc.pause),
        opt(&doc.pending_restart),
        opt(&doc.cluster_unlocked),
        opt(&doc.xlog.and_then(|x| x.paused)),
        opt(&doc.replication_state),
        replicas.join(",")
    ))
}

#[derive(serde::Deserialize)]
struct HealthDoc {
    health: String,
    #[serde(default)]
    reason: Option<String>,
}

/// etcd's `/health` → `health` and `reason` (3.5: `RAFT NO LEADER`, `ALARM NOSPACE`).
pub fn etcd_health_fields(body: &[u8]) -> Option<String> {
    let doc: HealthDoc = serde_json::from_slice(body).ok()?;
    Some(format!(
        "health={} reason={}",
        cut(&doc.health),
        opt(&doc.reason)
    ))
}

/// The polls of one config: one task per target, stopped when this is dropped.
pub struct FastPoll {
    tasks: Vec<JoinHandle<()>>,
}

impl FastPoll {
    /// Starts polling every `every`. The first answer of each target is only remembered.
    pub fn new(targets: Vec<Target>, every: Duration, waker: Waker) -> Self {
        FastPoll {
            tasks: targets
                .into_iter()
                .map(|t| tokio::spawn(poll(t, every, waker.clone())))
                .collect(),
        }
    }

    /// How many targets are polled.
    pub fn polling(&self) -> usize {
        self.tasks.iter().filter(|t| !t.is_finished()).count()
    }
}

impl Drop for FastPoll {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Polls `t` every `every` until aborted, waking the daemon when the fingerprint changes.
async fn poll(t: Target, every: Duration, waker: Waker) {
    let mut ticks = tokio::time::interval(every);
    // A poll that took longer than `every` delays the next; polls never overlap or burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let label = t.endpoint.label();
    let mut last: Option<Fingerprint> = None;
    loop {
        ticks.tick().await;
        let fetch = net::fetch(
            &t.client,
            http::Method::GET,
            &t.url,
            t.auth.as_deref(),
            b"",
            t.timeout,
            MAX_BODY,
        )
        .await;
        let now = fingerprint(t.endpoint, &fetch);
        let outcome = match now {
            Fingerprint::Answered { .. } => "answered",
            Fingerprint::TimedOut => "timeout",
            Fingerprint::Failed(_) => "failed",
        };
        waker.metrics().fast_poll(label, outcome);
        match &last {
            Some(prev) if *prev != now => {
                waker.metrics().fast_poll_change(label);
                tracing::info!(probe = %t.probe, endpoint = label, from = ?prev, to = ?now, "a polled endpoint's answer changed; probing now");
                waker.wake(Wake {
                    source: Source::FastPoll,
                    probe: t.probe.clone(),
                });
            }
            _ => {}
        }
        last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AgentMetrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../probes/fixtures")
            .join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn answered(rel: &str) -> Fingerprint {
        fingerprint(
            Endpoint::Patroni,
            &Fetch::Answered {
                status: 200,
                body: fixture(rel),
            },
        )
    }

    /// Real `/patroni` answers captured from Patroni 3.0.2, 4.0.7 and 4.1.5.
    #[test]
    fn patroni_fingerprints_name_the_state_and_ignore_positions_and_clocks() {
        for set in ["patroni", "patroni-4.0.7", "patroni-4.1.5"] {
            let leader = answered(&format!("{set}/leader-patroni.json"));
            let Fingerprint::Answered { status, fields } = &leader else {
                panic!("{leader:?}")
            };
            assert_eq!(*status, 200);
            assert!(fields.contains("state=running"), "{fields}");
            assert!(
                fields.contains("role=master") || fields.contains("role=primary"),
                "{fields}"
            );
            assert!(
                !fields.contains("84049920") && !fields.contains("17953"),
                "no WAL positions or clocks: {fields}"
            );
            // Every captured document is a different state: each pair differs.
            let states = [
                "leader-patroni.json",
                "leader-patroni-sync.json",
                "leader-patroni-after-failover.json",
                "replica-patroni.json",
                "replica-patroni-paused.json",
                "patroni-etcd-down.json",
            ];
            let prints: Vec<_> = states
                .iter()
                .map(|f| answered(&format!("{set}/{f}")))
                .collect();
            for (i, a) in prints.iter().enumerate() {
                for (j, b) in prints.iter().enumerate().skip(i + 1) {
                    assert_ne!(a, b, "{set}: {} vs {}", states[i], states[j]);
                }
            }
        }
        // The moving fields of one member's answer do not change its fingerprint.
        let body = fixture("patroni-4.1.5/replica-patroni.json");
        let mut doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let moved = |doc: &mut serde_json::Value| {
            doc["dcs_last_seen"] = 1_900_000_000.into();
            doc["xlog"]["received_location"] = 99_999_999.into();
            doc["xlog"]["replayed_location"] = 99_999_998.into();
            doc["xlog"]["replayed_timestamp"] = "2030-01-01 00:00:00+00:00".into();
        };
        moved(&mut doc);
        let a = fingerprint(
            Endpoint::Patroni,
            &Fetch::Answered {
                status: 200,
                body: body.clone(),
            },
        );
        let b = fingerprint(
            Endpoint::Patroni,
            &Fetch::Answered {
                status: 200,
                body: serde_json::to_vec(&doc).unwrap(),
            },
        );
        assert_eq!(a, b);
        // A role change, a demotion to a stopped PostgreSQL, and the HTTP status (Patroni 4
        // answers 503 on /patroni when PostgreSQL is down) each do.
        doc["role"] = "primary".into();
        assert_ne!(
            a,
            fingerprint(
                Endpoint::Patroni,
                &Fetch::Answered {
                    status: 200,
                    body: serde_json::to_vec(&doc).unwrap()
                }
            )
        );
        assert_ne!(a, answered("patroni-4.1.5/replica-patroni-pg-down.json"));
        assert_ne!(
            a,
            fingerprint(Endpoint::Patroni, &Fetch::Answered { status: 503, body })
        );
    }

    #[test]
    fn replication_order_does_not_matter_and_failures_are_categories() {
        let a = br#"{"state":"running","role":"primary","replication":[{"application_name":"pg2","state":"streaming","sync_state":"async"},{"application_name":"pg3","state":"streaming","sync_state":"async"}]}"#;
        let b = br#"{"role":"primary","state":"running","replication":[{"application_name":"pg3","state":"streaming","sync_state":"async"},{"application_name":"pg2","state":"streaming","sync_state":"async"}]}"#;
        assert_eq!(patroni_fields(a), patroni_fields(b));
        let f = |fetch| fingerprint(Endpoint::Patroni, &fetch);
        assert_eq!(f(Fetch::TimedOut { after_ms: 1 }), Fingerprint::TimedOut);
        assert_eq!(
            f(Fetch::ConnectFailed("port 1".into())),
            f(Fetch::ConnectFailed("port 2".into())),
            "the message is not part of it"
        );
        assert_ne!(f(Fetch::ConnectFailed("x".into())), Fingerprint::TimedOut);
    }

    #[test]
    fn malformed_truncated_and_oversized_answers_are_unparsable_never_a_panic() {
        let full = fixture("patroni-4.1.5/leader-patroni.json");
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"state\": 1}",
            b"{\"replication\": {}}",
            b"\xff\xfe",
            &full[..full.len() / 2],
        ] {
            assert_eq!(
                patroni_fields(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"health\": true}",
            b"{\"health\":\"tr",
        ] {
            assert_eq!(
                etcd_health_fields(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Huge values are cut; many replicas are capped.
        let long = "x".repeat(100_000);
        let many: Vec<String> = (0..1000)
            .map(|i| {
                format!(r#"{{"application_name":"r{i}","state":"streaming","sync_state":"async"}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"state":"{long}","role":"é{long}","replication":[{}]}}"#,
            many.join(",")
        );
        let fields = patroni_fields(body.as_bytes()).unwrap();
        assert!(fields.len() < 4096, "{}", fields.len());
    }

    #[test]
    fn etcd_health_fingerprints_follow_health_and_reason() {
        let ok = etcd_health_fields(&fixture("etcd-3.5.16/health-ok.json")).unwrap();
        let fail = etcd_health_fields(&fixture("etcd-3.5.16/health-fail.json")).unwrap();
        assert!(ok.contains("health=true"), "{ok}");
        assert_ne!(ok, fail);
        assert_eq!(
            etcd_health_fields(&fixture("etcd/health-ok.json")).unwrap(),
            "health=true reason="
        );
    }

    /// A server that answers each request with `body`, keep-alive, on one connection at
    /// a time; `hang` makes it stop answering (the connection stays open, as with SIGSTOP).
    async fn server(
        answers: tokio::sync::watch::Receiver<Option<&'static str>>,
    ) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let answers = answers.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(n) if n > 0 => {}
                            _ => return,
                        }
                        let Some(body) = *answers.borrow() else {
                            std::future::pending::<()>().await;
                            return;
                        };
                        let r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(r.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_change_and_a_hang_each_wake_once_and_a_steady_answer_never() {
        let metrics = AgentMetrics::default();
        let (waker, mut rx) = super::super::channel(metrics.clone());
        let (set, answers) = tokio::sync::watch::channel(Some(
            r#"{"state":"running","role":"replica","dcs_last_seen":1}"#,
        ));
        let addr = server(answers).await;
        let target = Target {
            probe: "patroni".into(),
            endpoint: Endpoint::Patroni,
            url: format!("http://{addr}/patroni"),
            client: Ok(HttpsClient::plain_with_acks(
                Duration::from_secs(1),
                Acks::Quick,
            )),
            auth: None,
            timeout: Duration::from_millis(200),
        };
        let polls = |m: &AgentMetrics, outcome: &str| {
            let text = m.encode(&crate::push::Shared::default());
            let key = format!(
                "status_reporter_agent_fast_polls_total{{endpoint=\"patroni\",outcome=\"{outcome}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
        let w = FastPoll::new(vec![target], Duration::from_millis(20), waker);
        assert_eq!(w.polling(), 1);
        // Several answers, moving fields only: no wake.
        crate::watch::until(|| polls(&metrics, "answered") >= 5).await;
        set.send_replace(Some(
            r#"{"state":"running","role":"replica","dcs_last_seen":2}"#,
        ));
        let seen = polls(&metrics, "answered");
        crate::watch::until(|| polls(&metrics, "answered") >= seen + 5).await;
        assert!(rx.try_recv().is_err(), "a moving timestamp is no change");
        // A promotion: one wake.
        set.send_replace(Some(
            r#"{"state":"running","role":"primary","dcs_last_seen":3}"#,
        ));
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake within 10 s")
            .unwrap();
        assert_eq!(got.source, Source::FastPoll);
        assert_eq!(got.probe, "patroni");
        // Hung: one wake for the first timeout, none for the next ones.
        set.send_replace(None);
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake within 10 s")
            .unwrap();
        assert_eq!(got.source, Source::FastPoll);
        crate::watch::until(|| polls(&metrics, "timeout") >= 3).await;
        assert!(rx.try_recv().is_err(), "a steady hang wakes once");
        let text = metrics.encode(&crate::push::Shared::default());
        assert!(
            text.contains("status_reporter_agent_fast_poll_changes_total{endpoint=\"patroni\"} 2"),
            "{text}"
        );
        drop(w);
    }
}
