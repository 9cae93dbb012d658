//! The Alertmanager sink: `POST <url>/api/v2/alerts` (Alertmanager's API v2,
//! `postableAlerts`), so routing, grouping, inhibition and silencing are Alertmanager's.
//!
//! A change to Degraded or Fail fires an alert; a change to OK (or the target leaving the
//! view) resolves it (`endsAt` = now). Labels: `alertname` (`StatusReporterNodeNotOk` or
//! `StatusReporterServiceNotOk`), `cluster`, `service`, `node` (node alerts), `status`,
//! `severity` (`warning` for Degraded, `critical` for Fail) and `reason` (the reason codes
//! in force, catalog codes only, at most [`MAX_REASON_CODES`], sorted, comma-separated).
//! Annotations: `summary`, `description` (the reason texts, bounded) and `event_id`.
//!
//! Labels are an alert's identity in Alertmanager, so the labels sent for a change are
//! kept and re-sent unchanged while it fires; a later change (Degraded → Fail) resolves
//! those and fires new ones. Firing alerts are re-sent every `resend_interval` with
//! `endsAt` four intervals ahead (as Prometheus does): if this collector dies they resolve
//! by themselves then, and while it lives they never do.
//!
//! One task per URL: several URLs are an HA Alertmanager set, each told everything (they
//! deduplicate among themselves); one down does not hold the others.

use super::config::AlertmanagerSink;
use super::delivery::{deliver, Retry};
use super::holddown::{Change, Kind, Target};
use super::{Alert, SinkQueue};
use hyper::body::Bytes;
use serde_json::{json, Value};
use sr_protocol::NodeStatus;
use sr_tls::HttpsClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const MAX_REASON_CODES: usize = 4;
/// `description` is cut here (Alertmanager holds every annotation in memory).
pub const MAX_DESCRIPTION: usize = 2048;
/// Alerts per POST when re-sending every firing one.
pub const RESEND_CHUNK: usize = 500;
const MAX_ANSWER: usize = 64 * 1024;

pub type Labels = BTreeMap<&'static str, String>;

/// The labels of a firing change.
pub fn labels(cluster: &str, c: &Change) -> Labels {
    let mut l = Labels::new();
    l.insert(
        "alertname",
        match c.target.kind {
            Kind::Node => "StatusReporterNodeNotOk",
            Kind::Service => "StatusReporterServiceNotOk",
        }
        .to_string(),
    );
    l.insert("cluster", cluster.to_string());
    l.insert("service", c.target.service.clone());
    if let Some(n) = &c.target.node {
        l.insert("node", n.clone());
    }
    if let Some(s) = c.to {
        l.insert("status", s.as_str().to_string());
        l.insert(
            "severity",
            if s == NodeStatus::Fail {
                "critical"
            } else {
                "warning"
            }
            .to_string(),
        );
    }
    let mut codes: Vec<&'static str> = c
        .reasons
        .iter()
        .map(|r| {
            sr_protocol::reasons::ALL
                .iter()
                .find(|k| k.code == r.code)
                .map_or("other", |k| k.code)
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes.truncate(MAX_REASON_CODES);
    l.insert("reason", codes.join(","));
    l
}

fn annotations(c: &Change, event_id: i64) -> BTreeMap<&'static str, String> {
    let mut a = BTreeMap::new();
    let what = match &c.target.node {
        Some(n) => format!("node {n} in {}", c.target.service),
        None => format!("service {}", c.target.service),
    };
    let to = c.to.map_or("gone", |s| s.as_str());
    a.insert("summary", format!("{what} is {to}"));
    let mut d: String = c
        .reasons
        .iter()
        .map(|r| format!("{}: {}", r.code, r.message))
        .collect::<Vec<_>>()
        .join("; ");
    if d.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        d.truncate(cut);
        d.push('…');
    }
    a.insert("description", d);
    a.insert("event_id", event_id.to_string());
    a
}

/// One firing alert as sent, kept to be re-sent identically and resolved later.
#[derive(Debug, Clone)]
struct Firing {
    labels: Labels,
    annotations: BTreeMap<&'static str, String>,
    starts_ms: i64,
}

impl Firing {
    fn postable(&self, ends_ms: i64) -> Value {
        json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": crate::rollup::rfc3339_ms(self.starts_ms),
            "endsAt": crate::rollup::rfc3339_ms(ends_ms),
        })
    }
}

/// What this Alertmanager has been told is firing.
#[derive(Debug, Default)]
pub struct Firings {
    firing: BTreeMap<Target, Firing>,
}

impl Firings {
    /// The alerts to post for change `a` at `now_ms`: the target's old alert resolved, and
    /// a new one firing when the target is now in trouble.
    pub fn apply(&mut self, cluster: &str, a: &Alert, now_ms: i64, ttl: Duration) -> Vec<Value> {
        let c = &a.change;
        let mut out = Vec::new();
        if let Some(old) = self.firing.remove(&c.target) {
            out.push(old.postable(now_ms));
        }
        if c.firing() {
            let f = Firing {
                labels: labels(cluster, c),
                annotations: annotations(c, a.event_id),
                starts_ms: c.at_ms,
            };
            out.push(f.postable(now_ms + ttl.as_millis() as i64));
            self.firing.insert(c.target.clone(), f);
        }
        out
    }

    /// Every firing alert with a fresh `endsAt`.
    pub fn all(&self, now_ms: i64, ttl: Duration) -> Vec<Value> {
        let ends = now_ms + ttl.as_millis() as i64;
        self.firing.values().map(|f| f.postable(ends)).collect()
    }

    pub fn len(&self) -> usize {
        self.firing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.firing.is_empty()
    }
}

/// The task for one Alertmanager URL.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    sink: AlertmanagerSink,
    base: String,
    cluster: Arc<str>,
    retry: Retry,
    client: HttpsClient,
    q: Arc<SinkQueue>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("{base}/api/v2/alerts");
    let auth = sink.basic_auth.as_ref().map(|(u, p)| {
        use base64::Engine;
        let mut raw = format!("{u}:").into_bytes();
        raw.extend_from_slice(p.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    });
    let ttl = sink.resend_interval * 4;
    let log = crate::app::LogLimiter::new(crate::app::LOG_PERIOD);
    let mut firings = Firings::default();
    let mut resend = tokio::time::interval(sink.resend_interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resend.tick().await;
    loop {
        let (batch, queued_at, what) = tokio::select! {
            a = q.queue.take() => {
                q.metrics.queued.set(q.queue.len() as i64);
                let b = firings.apply(&cluster, &a, crate::clock::now_ms(), ttl);
                (vec![b], a.queued_at, "change")
            }
            _ = resend.tick() => {
                if firings.is_empty() {
                    continue;
                }
                let all = firings.all(crate::clock::now_ms(), ttl);
                let chunks = all.chunks(RESEND_CHUNK).map(<[Value]>::to_vec).collect();
                (chunks, tokio::time::Instant::now(), "resend")
            }
            _ = closing.changed() => return,
        };
        for alerts in batch {
            if alerts.is_empty() {
                continue;
            }
            let body = Bytes::from(Value::Array(alerts).to_string());
            let send = deliver(retry, &q.metrics, queued_at, || {
                let mut headers = vec![
                    ("content-type", "application/json"),
                    ("user-agent", "status-reporter-collector"),
                ];
                if let Some(a) = &auth {
                    headers.push(("authorization", a.as_str()));
                }
                let body = body.clone();
                let client = &client;
                let url = &url;
                let timeout = sink.delivery.timeout;
                async move {
                    client
                        .request(http::Method::POST, url, &headers, body, timeout, MAX_ANSWER)
                        .await
                }
            });
            let done = tokio::select! {
                d = send => d,
                _ = closing.changed() => return,
            };
            if let Err(cause) = done {
                if let Some(held) = log.allow() {
                    tracing::warn!(sink = %q.name, %cause, what, held_back = held, "alertmanager: alerts not delivered");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::reasons as codes;

    fn alert(
        node: &str,
        from: Option<NodeStatus>,
        to: Option<NodeStatus>,
        reasons: Vec<sr_protocol::Reason>,
    ) -> Alert {
        Alert {
            id: "x".into(),
            event_id: 42,
            queued_at: tokio::time::Instant::now(),
            change: Change {
                target: Target {
                    kind: Kind::Node,
                    service: "db".into(),
                    node: Some(node.into()),
                },
                from,
                to,
                reasons,
                at_ms: 1_800_000_000_000,
            },
        }
    }

    #[tokio::test]
    async fn labels_are_bounded_and_a_new_status_resolves_the_old_alert() {
        let mut reasons = vec![codes::STALE.reason("no report for 30 s")];
        for i in 0..10 {
            reasons.push(sr_protocol::Reason {
                code: format!("made-up-{i}"),
                message: "x".repeat(5000),
                node: None,
            });
        }
        let mut f = Firings::default();
        let ttl = Duration::from_secs(240);
        let now = 1_800_000_100_000;
        let out = f.apply(
            "prod",
            &alert(
                "db2",
                Some(NodeStatus::Ok),
                Some(NodeStatus::Degraded),
                reasons.clone(),
            ),
            now,
            ttl,
        );
        assert_eq!(out.len(), 1);
        let l = &out[0]["labels"];
        assert_eq!(l["alertname"], "StatusReporterNodeNotOk");
        assert_eq!(l["cluster"], "prod");
        assert_eq!(l["service"], "db");
        assert_eq!(l["node"], "db2");
        assert_eq!(l["status"], "Degraded");
        assert_eq!(l["severity"], "warning");
        assert_eq!(l["reason"], "other,stale", "outside codes fold into other");
        assert!(
            out[0]["annotations"]["description"].as_str().unwrap().len() <= MAX_DESCRIPTION + 3
        );
        assert_eq!(out[0]["startsAt"], "2027-01-15T08:00:00Z");
        assert_eq!(out[0]["endsAt"], "2027-01-15T08:05:40Z");

        // Degraded → Fail: the Degraded alert resolved now, a Fail one firing.
        let out = f.apply(
            "prod",
            &alert(
                "db2",
                Some(NodeStatus::Degraded),
                Some(NodeStatus::Fail),
                reasons,
            ),
            now,
            ttl,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["labels"]["status"], "Degraded");
        assert_eq!(out[0]["endsAt"], "2027-01-15T08:01:40Z");
        assert_eq!(out[1]["labels"]["severity"], "critical");
        assert_eq!(f.len(), 1);
        assert_eq!(f.all(now, ttl)[0]["labels"]["status"], "Fail");

        // Back to OK: resolved, nothing firing.
        let out = f.apply(
            "prod",
            &alert("db2", Some(NodeStatus::Fail), Some(NodeStatus::Ok), vec![]),
            now,
            ttl,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["endsAt"], "2027-01-15T08:01:40Z");
        assert!(f.is_empty());
    }
}
