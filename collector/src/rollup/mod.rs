//! The roll-up: a pure function of (node records, now, policy) to the cluster-status view.
//!
//! Two steps, both pure and both tested with golden views and a fixed clock:
//! 1. [`NodeInput::from_record`] judges one node: no report, a key mismatch or silence
//!    longer than `stale_after_factor × reporting_freq` (by the collector's receive time,
//!    never the reporter's clock) make it Fail with a reason; flapping holds it at
//!    Degraded or worse; clock skew is flagged without changing the status.
//!    A report without our extension (the original 5.0.5 reporter's) gets its facts from
//!    its legacy entries ([`legacy`]), so it feeds the same cluster rules.
//! 2. [`rollup`] groups nodes by type and applies each type's cluster rule:
//!    [`generic`] (quorum) for managers, [`db`] and [`broker`] for their types. The
//!    overall status is the worst of the types. An empty cluster, or an empty required
//!    type, is Fail: no data is never healthy.
//!
//! 3. The stack services ([`stack`]): each member (a node whose report carries that
//!    service's facts, whatever its type) is judged from those facts only, by the
//!    service's own rule module ([`galera`], [`lb`]); they sit in the view beside the
//!    three Cloudify types.
//!
//! Nothing here reads the clock, the store or the network.

pub mod broker;
pub mod db;
pub mod galera;
pub mod generic;
pub mod lb;
pub mod legacy;
pub mod stack;

// The record types are the roll-up's input; re-exported so its callers need one path.
pub use crate::record::{LatestReport, NodeRecord};
use sr_protocol::report::Facts;
use sr_protocol::view::{ClusterStatus, NodeView, ServiceTypeView};
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Tunables of the roll-up. The collector builds it from its config (`Config::rollup_policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Stale after this many of the node's own reporting periods.
    pub stale_after_factor: u32,
    /// More than `flap_threshold` status changes inside `flap_window_ms` is flapping.
    pub flap_window_ms: i64,
    pub flap_threshold: usize,
    /// |skew| above this is flagged with a `clock_skew` reason (status unchanged).
    pub max_skew_ms: i64,
    /// Types that must have at least one node; an empty required type is Fail.
    /// Types not listed appear only when they have nodes.
    pub required_types: Vec<NodeType>,
    /// The stack services the collector config names (`[services.<name>]`). Services not
    /// listed appear only when they have members, sized by the members seen.
    pub services: BTreeMap<sr_protocol::facts::StackService, stack::ServicePolicy>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_after_factor: 3,
            flap_window_ms: 600_000,
            flap_threshold: 4,
            max_skew_ms: 2_000,
            required_types: NodeType::ALL.to_vec(),
            services: BTreeMap::new(),
        }
    }
}

/// One node as the cluster rules see it: its status already judged for staleness, key
/// mismatch and flapping. The db and broker rules read `facts` and `role`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInput {
    pub node_type: NodeType,
    pub node_id: String,
    pub name: String,
    /// Effective status after staleness, key mismatch and flap damping.
    pub status: NodeStatus,
    /// The node's own last reported status, if it has a valid report.
    pub reported_status: Option<NodeStatus>,
    /// A valid report arrived within the stale window.
    pub fresh: bool,
    /// Why `status` is not OK (each with `node` set), plus flags such as `clock_skew`.
    pub reasons: Vec<Reason>,
    /// Structured facts of the last valid report (stale facts included: rules decide):
    /// the extension's, else those its legacy entries give.
    pub facts: Option<Facts>,
    /// `Some` when `facts` were read from a legacy body: what that body says that the
    /// facts have no slot for.
    pub legacy: Option<legacy::LegacyDetail>,
    /// Role from the last report (the Patroni role on a db node), if known.
    pub role: Option<String>,
    pub version: Option<String>,
    pub private_ip: Option<String>,
    /// The last report's legacy `report.services`, or `{}`.
    pub services: serde_json::Map<String, serde_json::Value>,
    pub last_seen_ms: Option<i64>,
    pub skew_ms: Option<i64>,
    pub flapping: bool,
    pub key_mismatch: bool,
    pub signed: bool,
}

fn reason(code: &str, message: String, node: &str) -> Reason {
    Reason::new(code, message).on_node(node)
}

impl NodeInput {
    /// Judges one node at `now_ms` (collector clock).
    pub fn from_record(rec: &NodeRecord, now_ms: i64, policy: &Policy) -> NodeInput {
        let name = rec.name.as_str();
        let mut reasons = Vec::new();
        let mut input = NodeInput {
            node_type: rec.node_type,
            node_id: rec.node_id.clone(),
            name: rec.name.clone(),
            status: NodeStatus::Fail,
            reported_status: None,
            fresh: false,
            reasons: Vec::new(),
            facts: None,
            legacy: None,
            role: None,
            version: None,
            private_ip: rec.private_ip.clone(),
            services: serde_json::Map::new(),
            last_seen_ms: None,
            skew_ms: None,
            flapping: false,
            key_mismatch: rec.key_mismatch,
            signed: false,
        };
        let mut status = match &rec.latest {
            None => {
                reasons.push(reason(
                    sr_protocol::reasons::NO_REPORT.code,
                    "no valid report received yet".into(),
                    name,
                ));
                NodeStatus::Fail
            }
            Some(latest) => {
                let body = &latest.body;
                let ext = body.extension.as_ref();
                input.reported_status = Some(body.node_status());
                match ext {
                    Some(e) => input.facts = Some(e.facts.clone()).filter(|f| !f.is_empty()),
                    None => {
                        if let Some((facts, detail)) = legacy::facts(rec.node_type, &body.report) {
                            input.facts = Some(facts);
                            input.legacy = Some(detail);
                        }
                    }
                }
                input.role = input
                    .facts
                    .as_ref()
                    .and_then(|f| f.db.as_ref())
                    .and_then(|d| d.role.clone());
                input.version = ext.map(|e| e.agent_version.clone());
                if input.private_ip.is_none() {
                    input.private_ip = ext.and_then(|e| e.private_ip.clone());
                }
                if let Ok(serde_json::Value::Object(m)) =
                    serde_json::to_value(&body.report.services)
                {
                    input.services = m;
                }
                input.last_seen_ms = Some(latest.received_ms);
                input.skew_ms = Some(latest.skew_ms);
                input.signed = latest.signed;
                let stale_after_ms =
                    i64::from(body.reporting_freq) * i64::from(policy.stale_after_factor) * 1000;
                let age_ms = now_ms.saturating_sub(latest.received_ms);
                input.fresh = age_ms <= stale_after_ms;
                if latest.skew_ms.abs() > policy.max_skew_ms {
                    let dir = if latest.skew_ms > 0 {
                        "ahead of"
                    } else {
                        "behind"
                    };
                    reasons.push(reason(
                        sr_protocol::reasons::CLOCK_SKEW.code,
                        format!(
                            "reporter clock is {} ms {dir} the collector's",
                            latest.skew_ms.abs()
                        ),
                        name,
                    ));
                }
                if !input.fresh {
                    reasons.push(reason(
                        sr_protocol::reasons::STALE.code,
                        format!(
                            "last report {} s ago; stale after {} s",
                            age_ms / 1000,
                            stale_after_ms / 1000
                        ),
                        name,
                    ));
                    NodeStatus::Fail
                } else {
                    let own = body.node_status();
                    if own != NodeStatus::Ok {
                        let given: Vec<Reason> = ext
                            .map(|e| e.reasons.iter().cloned().map(|r| r.on_node(name)).collect())
                            .unwrap_or_default();
                        if given.is_empty() {
                            let inactive: Vec<&str> = body
                                .report
                                .services
                                .iter()
                                .filter(|(_, s)| s.status == sr_protocol::ServiceStatus::Inactive)
                                .map(|(k, _)| k.as_str())
                                .collect();
                            let msg = if inactive.is_empty() {
                                format!("node reports {own}")
                            } else {
                                format!("node reports {own}; inactive: {}", inactive.join(", "))
                            };
                            reasons.push(reason(
                                sr_protocol::reasons::REPORTED_UNHEALTHY.code,
                                msg,
                                name,
                            ));
                        } else {
                            reasons.extend(given);
                        }
                    }
                    own
                }
            }
        };
        if rec.key_mismatch {
            reasons.push(reason(
                sr_protocol::reasons::KEY_MISMATCH.code,
                "a report signed by a different key was refused; run `status-reporter nodes forget` after checking the node".into(),
                name,
            ));
            status = NodeStatus::Fail;
        }
        let window_start = now_ms - policy.flap_window_ms;
        let changes = rec
            .status_changes_ms
            .iter()
            .filter(|&&t| t > window_start && t <= now_ms)
            .count();
        if changes > policy.flap_threshold {
            input.flapping = true;
            reasons.push(reason(
                sr_protocol::reasons::FLAPPING.code,
                format!(
                    "{changes} status changes in the last {} s",
                    policy.flap_window_ms / 1000
                ),
                name,
            ));
            status = status.max(NodeStatus::Degraded);
        }
        input.status = status;
        input.reasons = reasons;
        input
    }

    pub(crate) fn view(&self) -> NodeView {
        NodeView {
            status: self.status,
            node_id: self.node_id.clone(),
            version: self.version.clone(),
            public_ip: None,
            private_ip: self.private_ip.clone(),
            services: self.services.clone(),
            reasons: self.reasons.clone(),
            role: self.role.clone(),
            last_seen: self.last_seen_ms.and_then(rfc3339_ms),
            skew_ms: self.skew_ms,
            flapping: self.flapping,
            key_mismatch: self.key_mismatch,
            signed: self.signed,
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC, e.g. `2026-11-22T16:00:00.250Z`.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Builds the cluster-status view. Pure: the same inputs always give the same view.
pub fn rollup(nodes: &[NodeInput], _now_ms: i64, policy: &Policy) -> ClusterStatus {
    let mut services = BTreeMap::new();
    let mut overall = NodeStatus::Ok;
    let mut overall_reasons = Vec::new();
    // The type rules take a contiguous slice per type. Callers that pass nodes sorted by
    // type (the collector does) avoid a copy of every node here.
    let sorted: Cow<[NodeInput]> = if nodes.is_sorted_by_key(|n| n.node_type) {
        Cow::Borrowed(nodes)
    } else {
        let mut owned = nodes.to_vec();
        owned.sort_by_key(|n| n.node_type);
        Cow::Owned(owned)
    };
    for t in NodeType::ALL {
        let start = sorted.partition_point(|n| n.node_type < t);
        let end = sorted.partition_point(|n| n.node_type <= t);
        let of_type = &sorted[start..end];
        if of_type.is_empty() && !policy.required_types.contains(&t) {
            continue;
        }
        let (status, reasons) = if of_type.is_empty() {
            (
                NodeStatus::Fail,
                vec![Reason::new(
                    sr_protocol::reasons::NO_NODES.code,
                    format!("no {t} node has reported"),
                )],
            )
        } else {
            match t {
                NodeType::Manager => generic::rollup(of_type, policy),
                NodeType::Db => db::rollup(of_type, policy),
                NodeType::Broker => broker::rollup(of_type, policy),
                // Not a Cloudify type: `node` hosts feed only the stack services.
                NodeType::Node => continue,
            }
        };
        overall = overall.max(status);
        overall_reasons.extend(reasons.iter().filter(|_| status != NodeStatus::Ok).cloned());
        services.insert(
            t.as_str().to_string(),
            ServiceTypeView {
                status,
                is_external: false,
                nodes: node_views(of_type),
                reasons,
            },
        );
    }
    for (service, view) in stack::rollup(nodes, policy) {
        overall = overall.max(view.status);
        if view.status != NodeStatus::Ok {
            overall_reasons.extend(view.reasons.iter().cloned());
        }
        services.insert(service.as_str().to_string(), view);
    }
    if services.is_empty() {
        overall = NodeStatus::Fail;
        overall_reasons.push(Reason::new(
            sr_protocol::reasons::NO_NODES.code,
            "no node has reported",
        ));
    }
    ClusterStatus {
        status: overall,
        services,
        reasons: if overall == NodeStatus::Ok {
            Vec::new()
        } else {
            overall_reasons
        },
    }
}

/// Node views keyed by name; a name two nodes share gets the node id appended so neither
/// hides the other.
fn node_views(nodes: &[NodeInput]) -> BTreeMap<String, NodeView> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        *counts.entry(n.name.as_str()).or_default() += 1;
    }
    nodes
        .iter()
        .map(|n| {
            let key = if counts[n.name.as_str()] > 1 {
                format!("{} ({})", n.name, n.node_id)
            } else {
                n.name.clone()
            };
            (key, n.view())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::report::ReportBody;
    use std::sync::Arc;

    fn broker_ok(i: usize, now: i64) -> NodeInput {
        let body = ReportBody::decode(
            br#"{"reporting_freq":5,"timestamp":"20261122160000+0000","report":{"status":"OK","services":{"RabbitMQ":{"status":"Active","extra_info":{}}}}}"#,
        )
        .unwrap()
        .body;
        let rec = NodeRecord {
            node_type: NodeType::Broker,
            node_id: format!("b{i}"),
            name: format!("broker{i}"),
            private_ip: None,
            key_mismatch: false,
            latest: Some(Arc::new(LatestReport {
                body,
                received_ms: now - 1000,
                skew_ms: 0,
                signed: true,
            })),
            status_changes_ms: Vec::new(),
        };
        NodeInput::from_record(&rec, now, &Policy::default())
    }

    #[test]
    fn only_required_types_count_when_absent() {
        let now = 1_800_000_000_000;
        let brokers: Vec<NodeInput> = (0..3).map(|i| broker_ok(i, now)).collect();
        let only_brokers = Policy {
            required_types: vec![NodeType::Broker],
            ..Policy::default()
        };
        let view = rollup(&brokers, now, &only_brokers);
        assert_eq!(view.status, NodeStatus::Ok, "{view:?}");
        assert_eq!(view.services.keys().collect::<Vec<_>>(), ["broker"]);
        assert!(view.reasons.is_empty());

        // The default requires all three: the absent ones are Fail with no_nodes.
        let view = rollup(&brokers, now, &Policy::default());
        assert_eq!(view.status, NodeStatus::Fail);
        for t in ["manager", "db"] {
            let s = &view.services[t];
            assert_eq!(s.status, NodeStatus::Fail);
            assert_eq!(s.reasons[0].code, "no_nodes", "{t}");
        }
        assert_eq!(view.services["broker"].status, NodeStatus::Ok);

        // A required type that is absent stays Fail even when the present ones are OK.
        let db_and_brokers = Policy {
            required_types: vec![NodeType::Db, NodeType::Broker],
            ..Policy::default()
        };
        let view = rollup(&brokers, now, &db_and_brokers);
        assert_eq!(view.status, NodeStatus::Fail);
        assert!(!view.services.contains_key("manager"));
        assert!(view.reasons.iter().any(|r| r.code == "no_nodes"));
    }
}
