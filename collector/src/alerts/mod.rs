//! Alerts: every status change of a node or a service, held down so that a flap does not
//! page, delivered to webhooks (signed JSON) and to Alertmanager (API v2).
//!
//! Where changes come from: the **view**, as readers see it (`App::view`: the roll-up
//! with staleness, flapping and maintenance applied), judged every `evaluate_interval`
//! by one evaluator task. Not from the stored transitions alone: a node whose agent died
//! reports nothing, and only the view turns its silence into Fail (`stale`); a service's
//! status exists only in the view. The body carries `event_id`, the newest stored event
//! when the change was judged, so a receiver can read what led to it from
//! `GET /api/v3.1/history` or the event stream.
//!
//! The path of one change:
//! 1. [`holddown`] (pure): a change goes out once it has held for `hold_down`; none while
//!    the target is in maintenance, and the target is judged afresh when the window ends.
//! 2. The evaluator offers it to every sink's [`queue::Queue`] without waiting (a full
//!    queue drops its oldest, counted).
//! 3. Each sink is its own task ([`webhook::run`], [`alertmanager::run`] per URL) with
//!    its own client, deadline and retries ([`delivery`]): a sink that is slow, down or
//!    answers 500 holds only itself. Ingest never touches any of this: reports are
//!    accepted whatever the sinks do.
//!
//! What it deliberately does not do: it keeps no alert state on disk. After a restart
//! every target is first seen anew: OK ones quietly, others sent again after the hold-down
//! with `from: null` (Alertmanager deduplicates by labels; a webhook receiver by target).
//! Alerts queued at shutdown are lost the same way and re-sent the same way.

pub mod alertmanager;
pub mod config;
pub mod delivery;
pub mod holddown;
pub mod metrics;
pub mod queue;
pub mod webhook;

pub use metrics::AlertMetrics;

use crate::app::App;
use holddown::{Change, HoldDown, Kind, Observation, Target};
use sr_protocol::view::ClusterStatus;
use sr_protocol::{NodeStatus, Reason};
use std::sync::Arc;
use tokio::time::Instant;

/// One change as the sinks get it: shared by every sink's queue.
#[derive(Debug)]
pub struct Alert {
    /// Unique per change, the same across retries and sinks: receivers deduplicate by it.
    pub id: String,
    /// The newest stored event id when the change was judged.
    pub event_id: i64,
    pub change: Change,
    /// When the evaluator offered it (the delivery latency starts here).
    pub queued_at: Instant,
}

/// A sink's queue and its metrics, shared by the evaluator (offers) and the sink (takes).
pub struct SinkQueue {
    pub name: String,
    pub queue: queue::Queue<Arc<Alert>>,
    pub metrics: metrics::SinkMetrics,
}

impl SinkQueue {
    /// Never waits; a dropped alert is counted.
    pub fn offer(&self, a: Arc<Alert>) {
        if self.queue.offer(a).is_some() {
            self.metrics.dropped.inc();
        }
        self.metrics.queued.set(self.queue.len() as i64);
    }
}

/// At most this many reasons travel with a change (each is bounded by the protocol).
pub const MAX_REASONS: usize = 16;

fn in_maintenance(reasons: &[Reason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code == sr_protocol::reasons::MAINTENANCE.code)
}

/// Every node row and every service of the view, with whether each is in maintenance.
/// A service counts as in maintenance when it has a window, or when it is not Fail and
/// every member that is not OK is in maintenance (its Degraded is the planned work);
/// a Fail is never hidden by members' windows, as in the view.
pub fn observations(view: &ClusterStatus) -> Vec<Observation> {
    let mut out = Vec::new();
    let bounded = |r: &[Reason]| r.iter().take(MAX_REASONS).cloned().collect::<Vec<_>>();
    for (service, sv) in &view.services {
        let mut unwell = sv
            .nodes
            .values()
            .filter(|n| n.status != NodeStatus::Ok)
            .peekable();
        let members_planned = unwell.peek().is_some() && unwell.all(|n| in_maintenance(&n.reasons));
        out.push(Observation {
            target: Target {
                kind: Kind::Service,
                service: service.clone(),
                node: None,
            },
            status: sv.status,
            reasons: bounded(&sv.reasons),
            maintenance: in_maintenance(&sv.reasons)
                || (sv.status != NodeStatus::Fail && members_planned),
        });
        for (row, n) in &sv.nodes {
            out.push(Observation {
                target: Target {
                    kind: Kind::Node,
                    service: service.clone(),
                    node: Some(row.clone()),
                },
                status: n.status,
                reasons: bounded(&n.reasons),
                maintenance: in_maintenance(&n.reasons),
            });
        }
    }
    out
}

/// A fresh alert id: 16 random hex digits.
fn new_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn client_for(
    ca: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<sr_tls::HttpsClient, String> {
    match ca {
        Some(ca) => sr_tls::client_config(ca, None)
            .map(|tls| sr_tls::HttpsClient::new(tls, timeout))
            .map_err(|e| format!("{}: {e}", ca.display())),
        None => Ok(sr_tls::HttpsClient::plain(timeout)),
    }
}

/// Starts the sinks' tasks and the evaluator when any sink is configured. They end when
/// the collector begins to stop (`App::closing`). An error: a CA file that could be read at
/// validation cannot be now.
pub fn start(app: &Arc<App>) -> Result<(), String> {
    let cfg = &app.cfg.alerts;
    if !cfg.enabled() {
        return Ok(());
    }
    let cluster: Arc<str> = Arc::from(cfg.cluster.as_str());
    let retry = |d: &config::Delivery| delivery::Retry {
        max_retries: d.max_retries,
        initial: cfg.retry_initial,
        cap: cfg.retry_max,
    };
    let queue = |name: String, size: usize| {
        Arc::new(SinkQueue {
            metrics: app.alerts.sink(&name),
            name,
            queue: queue::Queue::new(size),
        })
    };
    let mut sinks = Vec::new();
    for w in &cfg.webhooks {
        let client = client_for(w.ca_path.as_deref(), w.delivery.timeout)?;
        let q = queue(w.name.clone(), w.delivery.queue_size);
        sinks.push(q.clone());
        tokio::spawn(webhook::run(
            w.clone(),
            cluster.clone(),
            retry(&w.delivery),
            client,
            q,
            app.closing.subscribe(),
        ));
    }
    for a in &cfg.alertmanagers {
        for url in &a.urls {
            let client = client_for(a.ca_path.as_deref(), a.delivery.timeout)?;
            // The label names the endpoint by host:port only (no path or credentials).
            let host = url
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.to_string()))
                .unwrap_or_default();
            let q = queue(format!("{}@{host}", a.name), a.delivery.queue_size);
            sinks.push(q.clone());
            tokio::spawn(alertmanager::run(
                a.clone(),
                url.clone(),
                cluster.clone(),
                retry(&a.delivery),
                client,
                q,
                app.closing.subscribe(),
            ));
        }
    }
    tokio::spawn(evaluate_loop(app.clone(), sinks));
    Ok(())
}

/// Judges the view every `evaluate_interval` and offers each change let through to every
/// sink.
async fn evaluate_loop(app: Arc<App>, sinks: Vec<Arc<SinkQueue>>) {
    let cfg = &app.cfg.alerts;
    let mut hold = HoldDown::new(cfg.hold_down);
    let mut closing = app.closing.subscribe();
    let mut tick = tokio::time::interval(cfg.evaluate_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        let app2 = app.clone();
        // The view reads the store (maintenance windows): off the async threads.
        let judged = tokio::task::spawn_blocking(move || {
            let last = app2
                .history
                .with(&app2, |s| s.last_transition_id())
                .unwrap_or(0);
            (app2.view(), last)
        })
        .await;
        let Ok((view, event_id)) = judged else {
            return;
        };
        let changes = hold.observe(Instant::now(), crate::clock::now_ms(), observations(&view));
        app.alerts.pending.set(hold.pending() as i64);
        for change in changes {
            let to = change.to.map_or("gone", |s| s.as_str());
            app.alerts.change(change.target.kind.as_str(), to);
            tracing::info!(
                kind = change.target.kind.as_str(),
                service = %change.target.service,
                target = %change.target.name(),
                from = change.from.map_or("none", |s| s.as_str()),
                to,
                "alert: status change"
            );
            let a = Arc::new(Alert {
                id: new_id(),
                event_id,
                change,
                queued_at: Instant::now(),
            });
            for s in &sinks {
                s.offer(a.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::reasons as codes;
    use sr_protocol::view::{NodeView, ServiceTypeView};

    fn node(status: NodeStatus, reasons: Vec<Reason>) -> NodeView {
        let mut n: NodeView = serde_json::from_value(serde_json::json!({
            "status": status.as_str(), "node_id": "x", "services": {}, "reasons": [],
        }))
        .unwrap();
        n.reasons = reasons;
        n
    }

    #[test]
    fn a_service_whose_unwell_members_are_all_in_maintenance_is_in_maintenance_unless_fail() {
        let maint = || vec![codes::MAINTENANCE.reason("disk swap")];
        let mut view: ClusterStatus = serde_json::from_value(serde_json::json!({
            "status": "Degraded", "services": {}, "reasons": []
        }))
        .unwrap();
        let mut db: ServiceTypeView = serde_json::from_value(serde_json::json!({
            "status": "Degraded", "is_external": false, "nodes": {}, "reasons": []
        }))
        .unwrap();
        db.nodes.insert("db1".into(), node(NodeStatus::Ok, vec![]));
        db.nodes
            .insert("db2".into(), node(NodeStatus::Degraded, maint()));
        view.services.insert("db".into(), db);
        let o = observations(&view);
        assert_eq!(o.len(), 3);
        assert!(o[0].target.kind == Kind::Service && o[0].maintenance);
        assert!(!o[1].maintenance && o[2].maintenance);

        view.services.get_mut("db").unwrap().status = NodeStatus::Fail;
        assert!(
            !observations(&view)[0].maintenance,
            "a Fail is never hidden"
        );
        let db = view.services.get_mut("db").unwrap();
        db.status = NodeStatus::Degraded;
        db.nodes
            .insert("db3".into(), node(NodeStatus::Fail, vec![]));
        assert!(!observations(&view)[0].maintenance, "an unplanned member");
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
