//! Pure: a tier-1 collector's view → its cluster's [`Summary`]. No I/O, no clock: the
//! caller passes `now` and each node's last receive time.

use sr_protocol::reasons::{NO_REPORT, STALE};
use sr_protocol::summary::{
    NodeSummary, ServiceSummary, Summary, MAX_MANAGERS, MAX_NODES, MAX_SERVICES, SUMMARY_VERSION,
};
use sr_protocol::view::ClusterStatus;
use sr_protocol::{NodeStatus, Reason};
use std::collections::HashMap;

/// Reasons kept per node: the summary says why, the tier-1 view has the rest.
const NODE_REASONS: usize = 4;
const LIST_REASONS: usize = 16;

/// What is needed beside the view.
pub struct Inputs<'a> {
    pub cluster: &'a str,
    pub interval_secs: u32,
    /// node_id → receive time of its newest report.
    pub last_seen_ms: &'a HashMap<String, i64>,
    pub now_ms: i64,
}

fn is_silent(reasons: &[Reason]) -> bool {
    reasons
        .iter()
        .any(|r| r.code == STALE.code || r.code == NO_REPORT.code)
}

fn cut(reasons: &[Reason], n: usize) -> Vec<Reason> {
    reasons.iter().take(n).cloned().collect()
}

pub fn build(view: &ClusterStatus, i: &Inputs<'_>) -> Summary {
    let mut nodes = Vec::new();
    let mut total = 0u32;
    let mut managers: Vec<String> = Vec::new();
    for (service, sv) in &view.services {
        for (row, n) in &sv.nodes {
            total += 1;
            if service == "manager" {
                if let Some(ip) = &n.private_ip {
                    if !managers.contains(ip) && managers.len() < MAX_MANAGERS {
                        managers.push(ip.clone());
                    }
                }
            }
            if n.status == NodeStatus::Ok {
                continue;
            }
            let age = i
                .last_seen_ms
                .get(&n.node_id)
                .map(|at| i.now_ms.saturating_sub(*at).max(0) as u64);
            nodes.push(NodeSummary {
                name: row.clone(),
                service: service.clone(),
                status: n.status,
                silent: is_silent(&n.reasons),
                last_seen_age_ms: age,
                reasons: cut(&n.reasons, NODE_REASONS),
            });
        }
    }
    // Silent nodes first (what healing acts on), then the worst: a cut keeps them.
    nodes.sort_by(|a, b| {
        (!a.silent, std::cmp::Reverse(a.status), &a.service, &a.name).cmp(&(
            !b.silent,
            std::cmp::Reverse(b.status),
            &b.service,
            &b.name,
        ))
    });
    let omitted = nodes.len().saturating_sub(MAX_NODES);
    nodes.truncate(MAX_NODES);
    Summary {
        version: SUMMARY_VERSION,
        cluster: i.cluster.to_string(),
        interval_secs: i.interval_secs,
        status: view.status,
        reasons: cut(&view.reasons, LIST_REASONS),
        services: view
            .services
            .iter()
            .take(MAX_SERVICES)
            .map(|(k, s)| {
                (
                    k.clone(),
                    ServiceSummary {
                        status: s.status,
                        reasons: cut(&s.reasons, LIST_REASONS),
                    },
                )
            })
            .collect(),
        nodes,
        nodes_total: total,
        nodes_omitted: omitted as u32,
        managers,
    }
}

/// Drops the last listed nodes (counted in `nodes_omitted`) until the encoding fits
/// `max_bytes`; a tier-2 collector refuses larger bodies.
pub fn fit(mut s: Summary, max_bytes: usize) -> Vec<u8> {
    loop {
        let bytes = s.encode();
        if bytes.len() <= max_bytes || s.nodes.is_empty() {
            return bytes;
        }
        let keep = s.nodes.len() / 2;
        s.nodes_omitted += (s.nodes.len() - keep) as u32;
        s.nodes.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::view::{NodeView, ServiceTypeView};

    fn node(id: &str, status: NodeStatus, code: Option<&str>, ip: Option<&str>) -> NodeView {
        let mut v: NodeView = serde_json::from_value(serde_json::json!({
            "status": "OK", "node_id": id, "version": null, "public_ip": null,
            "private_ip": ip, "services": {}, "role": null, "last_seen": null,
        }))
        .unwrap();
        v.status = status;
        v.reasons = code.map(|c| vec![Reason::new(c, "m")]).unwrap_or_default();
        v
    }

    fn view() -> ClusterStatus {
        let mut db = ServiceTypeView {
            status: NodeStatus::Degraded,
            is_external: false,
            nodes: Default::default(),
            reasons: vec![Reason::new("degraded", "2 of 3")],
        };
        db.nodes
            .insert("db1".into(), node("i1", NodeStatus::Ok, None, None));
        db.nodes.insert(
            "db2".into(),
            node("i2", NodeStatus::Fail, Some("stale"), None),
        );
        db.nodes.insert(
            "db3".into(),
            node("i3", NodeStatus::Degraded, Some("replica_lag"), None),
        );
        let mut mgr = ServiceTypeView {
            status: NodeStatus::Ok,
            is_external: false,
            nodes: Default::default(),
            reasons: vec![],
        };
        mgr.nodes.insert(
            "m1".into(),
            node("im", NodeStatus::Ok, None, Some("10.0.0.11")),
        );
        ClusterStatus {
            status: NodeStatus::Degraded,
            services: [("db".to_string(), db), ("manager".to_string(), mgr)].into(),
            reasons: vec![],
        }
    }

    #[test]
    fn only_unwell_nodes_are_listed_silent_first_with_their_age() {
        let seen: HashMap<String, i64> = [("i2".to_string(), 1_000)].into();
        let s = build(
            &view(),
            &Inputs {
                cluster: "east",
                interval_secs: 10,
                last_seen_ms: &seen,
                now_ms: 42_000,
            },
        );
        assert_eq!(s.nodes_total, 4);
        let names: Vec<_> = s
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.silent))
            .collect();
        assert_eq!(names, [("db2", true), ("db3", false)]);
        assert_eq!(s.nodes[0].last_seen_age_ms, Some(41_000));
        assert_eq!(s.nodes[1].last_seen_age_ms, None);
        assert_eq!(s.managers, ["10.0.0.11"]);
        // What is built decodes at tier 2.
        let back = Summary::decode(&s.encode(), "east").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn fit_drops_nodes_until_the_body_is_small_enough() {
        let seen = HashMap::new();
        let mut s = build(
            &view(),
            &Inputs {
                cluster: "east",
                interval_secs: 10,
                last_seen_ms: &seen,
                now_ms: 0,
            },
        );
        let n = s.nodes[0].clone();
        s.nodes = vec![n; 200];
        let bytes = fit(s, 4096);
        assert!(bytes.len() <= 4096);
        let back = Summary::decode(&bytes, "east").unwrap();
        assert_eq!(back.nodes.len() as u32 + back.nodes_omitted, 200);
    }
}
