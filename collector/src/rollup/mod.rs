//! The roll-up: a pure function of (node records, now, policy) to the cluster-status view.
//!
//! Two steps, both pure and both tested with golden views and a fixed clock:
//! 1. [`NodeInput::from_record`] judges one node: no report, a key mismatch or silence
//!    longer than `stale_after_factor × reporting_freq` (by the collector's receive time,
//!    never the reporter's clock) make it Fail with a reason; flapping holds it at
//!    Degraded or worse; clock skew is flagged without changing the status.
//!    A report without our extension (the original 5.0.5 reporter's) gets its facts from
//!    its legacy entries ([`legacy`]), so it feeds the same cluster rules.
//! 2. [`rollup`] groups nodes by type, flags reporters that no member of the service
//!    vouches for ([`membership`]: they are shown and count for nothing), and applies each
//!    type's cluster rule to the others: [`generic`] (quorum) for managers, [`db`] and
//!    [`broker`] for their types; quorums are taken of the service's membership
//!    ([`membership::Membership`]), not of the number of reporters. The overall status is
//!    the worst of the types. An empty cluster, or an empty required type, is Fail: no data
//!    is never healthy. Rows are keyed by name, made unique by [`names`].
//!
//! 3. The stack services ([`stack`]): each member (a node whose report carries that
//!    service's facts, whatever its type) is judged from those facts only, by the
//!    service's own rule module ([`galera`], [`lb`], [`vip`], [`pacemaker`]); they sit in the view beside the
//!    three Cloudify types.
//!
//! Nothing here reads the clock, the store or the network.

pub mod broker;
pub mod db;
pub mod galera;
pub mod generic;
pub mod lb;
pub mod legacy;
pub mod membership;
pub mod names;
pub mod objectstore;
pub mod pacemaker;
pub mod search;
pub mod stack;
pub mod vip;

// The record types are the roll-up's input; re-exported so its callers need one path.
pub use crate::record::{LatestReport, NodeRecord};
use sr_protocol::report::Facts;
use sr_protocol::view::{ClusterStatus, NodeView, ServiceTypeView};
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// The configured number of members per type (`expected_size`): the quorum is taken
    /// of at least this many, and more members than this is Fail.
    pub expected_size: BTreeMap<NodeType, usize>,
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
            expected_size: BTreeMap::new(),
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
    /// the extension's, else those its legacy entries give. Behind an `Arc`: the facts of
    /// every service make `Facts` kilobytes inline, and each view moves, sorts and copies
    /// every node's input (issue 17).
    pub facts: Option<Arc<Facts>>,
    /// `Some` when `facts` were read from a legacy body: what that body says that the
    /// facts have no slot for.
    pub legacy: Option<legacy::LegacyDetail>,
    /// Role from the last report (the Patroni role on a db node), if known.
    pub role: Option<String>,
    pub version: Option<String>,
    pub private_ip: Option<String>,
    /// The last valid report, for what the view shows of it as it is (its legacy
    /// `report.services`): read when the node's rows are made, not per judgement, since
    /// the rules never look at it (issue 17).
    pub latest: Option<Arc<LatestReport>>,
    pub last_seen_ms: Option<i64>,
    pub skew_ms: Option<i64>,
    pub flapping: bool,
    pub key_mismatch: bool,
    pub signed: bool,
    /// No member of the service vouches for this reporter ([`membership::mark`]).
    pub unvouched: bool,
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
            latest: None,
            last_seen_ms: None,
            skew_ms: None,
            flapping: false,
            key_mismatch: rec.key_mismatch,
            signed: false,
            unvouched: false,
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
                    // Checked before the copy: most nodes carry no facts.
                    Some(e) => {
                        input.facts = (!e.facts.is_empty()).then(|| Arc::new(e.facts.clone()))
                    }
                    None => {
                        if let Some((facts, detail)) = legacy::facts(rec.node_type, &body.report) {
                            input.facts = Some(Arc::new(facts));
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
                input.latest = Some(latest.clone());
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

    /// The last report's legacy `report.services` as the view shows them, or `{}`.
    pub fn services(&self) -> serde_json::Map<String, serde_json::Value> {
        services_of(self.latest.as_deref())
    }

    /// The reason a row shows when its key is not the node's own name.
    pub fn duplicate_reason(&self, key: &names::RowKey) -> Option<Reason> {
        key.duplicate
            .then(|| duplicate_name_reason(self.node_type, &key.key, &self.name))
    }

    pub(crate) fn view(&self, key: &names::RowKey) -> NodeView {
        let mut reasons = self.reasons.clone();
        reasons.extend(self.duplicate_reason(key));
        NodeView {
            status: self.status,
            node_id: self.node_id.clone(),
            version: self.version.clone(),
            public_ip: None,
            private_ip: self.private_ip.clone(),
            services: self.services(),
            reasons,
            role: self.role.clone(),
            last_seen: self.last_seen_ms.and_then(rfc3339_ms),
            skew_ms: self.skew_ms,
            flapping: self.flapping,
            key_mismatch: self.key_mismatch,
            signed: self.signed,
            name: key.duplicate.then(|| self.name.clone()),
            unvouched: self.unvouched,
        }
    }
}

/// The reason a row keyed `key` shows for a node named `name` whose name another node of
/// its type shares or resembles.
pub fn duplicate_name_reason(node_type: NodeType, key: &str, name: &str) -> Reason {
    reason(
        sr_protocol::reasons::DUPLICATE_NAME.code,
        format!("another {node_type} node has the same or a confusable name; shown as {key:?}"),
        name,
    )
}

/// `latest`'s legacy `report.services` as the view shows them, or `{}`.
pub fn services_of(latest: Option<&LatestReport>) -> serde_json::Map<String, serde_json::Value> {
    match latest.map(|l| serde_json::to_value(&l.body.report.services)) {
        Some(Ok(serde_json::Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    }
}

/// Unix milliseconds as RFC 3339 UTC, e.g. `2026-11-22T16:00:00.250Z`.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Builds the cluster-status view. Pure: the same inputs always give the same view.
pub fn rollup(nodes: &[NodeInput], now_ms: i64, policy: &Policy) -> ClusterStatus {
    rollup_parts(nodes, now_ms, policy).into_view()
}

/// One row of a Cloudify type, borrowed from its judged input: the view's bytes are
/// written from it without an owned [`NodeView`] per node (issue 17; `crate::view_encode`).
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub key: names::RowKey,
    pub input: &'a NodeInput,
    /// The row's status: the input's, capped by a maintenance window ([`Row::window`]).
    pub status: NodeStatus,
    /// The maintenance reason a window on the row or its service adds after the rules
    /// (`crate::maintenance::cap_services`), shown last.
    pub window: Option<Reason>,
}

impl Row<'_> {
    pub fn view(&self) -> NodeView {
        let mut view = self.input.view(&self.key);
        view.status = self.status;
        view.reasons.extend(self.window.iter().cloned());
        view
    }
}

/// A service's rows: borrowed from the judged inputs (the common case), or made as views
/// (a stack service's members, judged by its own rule; a type with unvouched reporters).
#[derive(Debug, Clone)]
pub enum Rows<'a> {
    Judged(Vec<Row<'a>>),
    Views(BTreeMap<String, NodeView>),
}

/// [`ServiceTypeView`] with [`Rows`].
#[derive(Debug, Clone)]
pub struct ServiceParts<'a> {
    pub status: NodeStatus,
    pub is_external: bool,
    /// In key order.
    pub rows: Rows<'a>,
    pub reasons: Vec<Reason>,
}

/// [`ClusterStatus`] with its rows borrowed where they can be.
#[derive(Debug, Clone)]
pub struct ViewParts<'a> {
    pub status: NodeStatus,
    pub services: BTreeMap<String, ServiceParts<'a>>,
    pub reasons: Vec<Reason>,
}

impl ViewParts<'_> {
    /// The owned view (every row made a [`NodeView`]).
    pub fn into_view(self) -> ClusterStatus {
        ClusterStatus {
            status: self.status,
            services: self
                .services
                .into_iter()
                .map(|(name, svc)| {
                    let nodes = match svc.rows {
                        Rows::Judged(rows) => {
                            rows.iter().map(|r| (r.key.key.clone(), r.view())).collect()
                        }
                        Rows::Views(views) => views,
                    };
                    let view = ServiceTypeView {
                        status: svc.status,
                        is_external: svc.is_external,
                        nodes,
                        reasons: svc.reasons,
                    };
                    (name, view)
                })
                .collect(),
            reasons: self.reasons,
        }
    }
}

/// [`rollup`], with the rows left borrowed from `nodes`.
pub fn rollup_parts<'a>(nodes: &'a [NodeInput], _now_ms: i64, policy: &Policy) -> ViewParts<'a> {
    let mut services = BTreeMap::new();
    let mut overall = NodeStatus::Ok;
    let mut overall_reasons = Vec::new();
    // The type rules take a contiguous slice per type. Callers that pass nodes sorted by
    // type (the collector does) avoid a copy of every node here.
    let sorted: Cow<'a, [NodeInput]> = if nodes.is_sorted_by_key(|n| n.node_type) {
        Cow::Borrowed(nodes)
    } else {
        let mut owned = nodes.to_vec();
        owned.sort_by_key(|n| n.node_type);
        Cow::Owned(owned)
    };
    for t in NodeType::ALL {
        let start = sorted.partition_point(|n| n.node_type < t);
        let end = sorted.partition_point(|n| n.node_type <= t);
        if start == end && !policy.required_types.contains(&t) {
            continue;
        }
        let of_type = membership::mark(&sorted[start..end]);
        let (status, reasons) = type_rollup(t, &of_type, policy);
        overall = overall.max(status);
        overall_reasons.extend(reasons.iter().filter(|_| status != NodeStatus::Ok).cloned());
        // Rows borrow from `nodes` only when neither the sort nor the membership marking
        // made a copy (the common case); else they are made as views here.
        let rows = match (&sorted, &of_type) {
            (Cow::Borrowed(all), Cow::Borrowed(_)) => Rows::Judged(rows(&all[start..end])),
            _ => Rows::Views(node_views(&of_type)),
        };
        services.insert(
            t.as_str().to_string(),
            ServiceParts {
                status,
                is_external: false,
                rows,
                reasons,
            },
        );
    }
    for (service, view) in stack::rollup(nodes, policy) {
        overall = overall.max(view.status);
        if view.status != NodeStatus::Ok {
            overall_reasons.extend(view.reasons.iter().cloned());
        }
        let parts = ServiceParts {
            status: view.status,
            is_external: view.is_external,
            rows: Rows::Views(view.nodes),
            reasons: view.reasons,
        };
        services.insert(service.as_str().to_string(), parts);
    }
    if services.is_empty() {
        overall = NodeStatus::Fail;
        overall_reasons.push(Reason::new(
            sr_protocol::reasons::NO_NODES.code,
            "no node has reported",
        ));
    }
    ViewParts {
        status: overall,
        services,
        reasons: if overall == NodeStatus::Ok {
            Vec::new()
        } else {
            overall_reasons
        },
    }
}

/// One type's status and reasons: its rule over the reporters that count, then every
/// unvouched reporter's reason (each makes the type Degraded at least). With none that
/// counts, the type is Fail: no data is never healthy.
fn type_rollup(t: NodeType, nodes: &[NodeInput], policy: &Policy) -> (NodeStatus, Vec<Reason>) {
    let counted: Cow<[NodeInput]> = if nodes.iter().any(|n| n.unvouched) {
        Cow::Owned(nodes.iter().filter(|n| !n.unvouched).cloned().collect())
    } else {
        Cow::Borrowed(nodes)
    };
    let (mut status, mut reasons) = if counted.is_empty() {
        let what = if nodes.is_empty() {
            "has reported"
        } else {
            "that its members vouch for has reported"
        };
        (
            NodeStatus::Fail,
            vec![Reason::new(
                sr_protocol::reasons::NO_NODES.code,
                format!("no {t} node {what}"),
            )],
        )
    } else {
        match t {
            // `node` hosts are in no Cloudify type (the caller walks `NodeType::ALL`); were
            // one passed here, the plain quorum rule is the honest reading.
            NodeType::Manager | NodeType::Node => generic::rollup(&counted, policy),
            NodeType::Db => db::rollup(&counted, policy),
            NodeType::Broker => broker::rollup(&counted, policy),
        }
    };
    for n in nodes.iter().filter(|n| n.unvouched) {
        status = status.max(NodeStatus::Degraded);
        reasons.extend(
            n.reasons
                .iter()
                .filter(|r| r.code == sr_protocol::reasons::UNVOUCHED.code)
                .cloned(),
        );
    }
    (status, reasons)
}

/// Rows keyed by name, one per node ([`names::row_keys`]), in key order: a name that two
/// nodes share, or that looks like another's, is disambiguated with the node id.
fn rows(nodes: &[NodeInput]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = names::row_keys(nodes)
        .into_iter()
        .zip(nodes)
        .map(|(key, input)| Row {
            key,
            input,
            status: input.status,
            window: None,
        })
        .collect();
    // Keys are unique.
    rows.sort_unstable_by(|a, b| a.key.key.cmp(&b.key.key));
    rows
}

/// [`rows`] made views.
fn node_views(nodes: &[NodeInput]) -> BTreeMap<String, NodeView> {
    // In key order already: collecting into the map takes a sorted run as it is instead of
    // moving every view (a few hundred bytes each) through a merge sort (issue 17).
    rows(nodes)
        .iter()
        .map(|r| (r.key.key.clone(), r.view()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sr_protocol::report::ReportBody;
    use std::sync::Arc;

    fn broker_ok(i: usize, now: i64) -> NodeInput {
        let body = ReportBody::decode(
            br#"{"reporting_freq":5,"timestamp":"20261122160000+0000","report":{"status":"OK","services":{"RabbitMQ":{"status":"Active","extra_info":{}}}}}"#,
        )
        .unwrap()
        .body;
        judged(
            NodeType::Broker,
            &format!("b{i}"),
            &format!("broker{i}"),
            body,
            now,
        )
    }

    /// The node as [`NodeInput::from_record`] judges it at `now`, `body` received a second
    /// before.
    fn judged(t: NodeType, id: &str, name: &str, body: ReportBody, now: i64) -> NodeInput {
        let rec = NodeRecord {
            node_type: t,
            node_id: id.to_string(),
            name: name.to_string(),
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

    /// A node of type `t` that reported `status` with these facts a second ago.
    pub(crate) fn reporter(
        t: NodeType,
        id: &str,
        name: &str,
        status: &str,
        facts: serde_json::Value,
    ) -> NodeInput {
        let now = 1_800_000_000_000;
        let legacy = if status == "Fail" { "Fail" } else { "OK" };
        let body = ReportBody::decode(
            serde_json::json!({
                "reporting_freq": 5, "timestamp": "20261122160000+0000",
                "report": {"status": legacy, "services": {}},
                "status_reporter": {"version": 1, "node_status": status, "node_name": name,
                    "agent_version": "0.1.0", "boot_id": "b", "seq": 1, "facts": facts}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .body;
        judged(t, id, name, body, now)
    }

    /// A manager that reported `status` a second before the judging time.
    pub(crate) fn manager(id: &str, status: &str) -> NodeInput {
        reporter(NodeType::Manager, id, id, status, serde_json::json!({}))
    }

    fn rabbit_view(me: &str, members: &[(&str, bool)]) -> serde_json::Value {
        let view: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .map(|(m, up)| (m.to_string(), (*up).into()))
            .collect();
        serde_json::json!({"broker": {"node_name": me, "cluster_view": view}})
    }

    /// Issue 14, scope per service: one report from a broker node that also holds a
    /// Galera member. Its Cloudify row is judged by its own status (the host and RabbitMQ;
    /// the agent leaves stack findings out of it), its `galera` row by its Galera facts
    /// only: a partitioned Galera member fails `galera` and leaves `broker` OK, and a
    /// failing RabbitMQ fails `broker` and leaves a synced Galera member OK.
    #[test]
    fn a_stack_finding_counts_in_its_service_only() {
        let galera = |status: &str| {
            serde_json::json!({"reachable": true, "ready": status == "Primary", "connected": true,
                "local_state": "Synced", "cluster_status": status, "cluster_size": 1})
        };
        let policy = Policy {
            required_types: vec![NodeType::Broker],
            ..Policy::default()
        };
        let mut facts = rabbit_view("rabbit@b1", &[("rabbit@b1", true)]);
        facts["galera"] = galera("non-Primary");
        let node = reporter(NodeType::Broker, "b1", "broker1", "OK", facts);
        let view = rollup(&[node], 0, &policy);
        let (broker, g) = (&view.services["broker"], &view.services["galera"]);
        assert_eq!(broker.status, NodeStatus::Ok, "{:?}", broker.reasons);
        assert_eq!(broker.nodes["broker1"].status, NodeStatus::Ok);
        assert!(broker.nodes["broker1"].reasons.is_empty());
        assert_eq!(g.nodes["broker1"].status, NodeStatus::Fail);
        assert!(g.nodes["broker1"]
            .reasons
            .iter()
            .any(|r| r.code == sr_protocol::reasons::GALERA_NON_PRIMARY.code));
        assert_eq!(
            view.status,
            NodeStatus::Fail,
            "the overall is the worst service"
        );

        let mut facts = rabbit_view("rabbit@b1", &[("rabbit@b1", true)]);
        facts["galera"] = galera("Primary");
        let node = reporter(NodeType::Broker, "b1", "broker1", "Fail", facts);
        let view = rollup(&[node], 0, &policy);
        assert_eq!(
            view.services["broker"].nodes["broker1"].status,
            NodeStatus::Fail
        );
        assert_eq!(
            view.services["galera"].nodes["broker1"].status,
            NodeStatus::Ok
        );
    }

    /// Issue 12's quorum flip: three fake OK brokers (the broker token is all they need)
    /// beside one OK and two failed real ones. Before, "4 of 6, quorum 4" made the type
    /// Degraded; the fakes are in no real member's view, so it stays "1 of 3", Fail.
    #[test]
    fn fake_brokers_do_not_lift_a_lost_quorum() {
        let real = [
            ("rabbit@r1", true),
            ("rabbit@r2", false),
            ("rabbit@r3", false),
        ];
        let mut all: Vec<(&str, bool)> = real.to_vec();
        all.extend([
            ("rabbit@f1", true),
            ("rabbit@f2", true),
            ("rabbit@f3", true),
        ]);
        let mut nodes = vec![
            reporter(
                NodeType::Broker,
                "r1",
                "broker1",
                "OK",
                rabbit_view("rabbit@r1", &real),
            ),
            reporter(
                NodeType::Broker,
                "r2",
                "broker2",
                "Fail",
                serde_json::json!({}),
            ),
            reporter(
                NodeType::Broker,
                "r3",
                "broker3",
                "Fail",
                serde_json::json!({}),
            ),
        ];
        let before = rollup(&nodes, 0, &Policy::default()).services["broker"].clone();
        assert_eq!(before.status, NodeStatus::Fail);
        for i in 1..=3 {
            // Two fakes with forged views that list everyone, one with no facts at all.
            let facts = match i {
                1 => rabbit_view("rabbit@f1", &all),
                2 => rabbit_view("rabbit@f2", &all),
                _ => serde_json::json!({}),
            };
            nodes.push(reporter(
                NodeType::Broker,
                &format!("f{i}"),
                &format!("fake{i}"),
                "OK",
                facts,
            ));
        }
        let after = rollup(&nodes, 0, &Policy::default()).services["broker"].clone();
        assert_eq!(after.status, NodeStatus::Fail, "{after:#?}");
        let quorum = after
            .reasons
            .iter()
            .find(|r| r.code == "quorum_lost")
            .unwrap();
        assert!(quorum.message.starts_with("1 of 3 "), "{}", quorum.message);
        assert_eq!(after.nodes.len(), 6, "every reporter has a row");
        for i in 1..=3 {
            let row = &after.nodes[&format!("fake{i}")];
            assert!(row.unvouched, "fake{i}");
            assert_eq!(row.status, NodeStatus::Degraded);
            assert!(row.reasons.iter().any(|r| r.code == "unvouched"));
        }
        assert!(!after.nodes["broker1"].unvouched);

        // A fake whose view leaves the real members out unvouches them too: that makes
        // the view worse, never better.
        nodes.push(reporter(
            NodeType::Broker,
            "f4",
            "fake4",
            "OK",
            rabbit_view("rabbit@f4", &[("rabbit@f4", true)]),
        ));
        let worse = rollup(&nodes, 0, &Policy::default()).services["broker"].clone();
        assert_eq!(worse.status, NodeStatus::Fail);
        assert!(worse.nodes["broker1"].unvouched);
        assert!(worse.nodes["fake4"].unvouched);
    }

    fn db(member: &str, members: &[&str]) -> serde_json::Value {
        let view: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    serde_json::json!({"role": "replica", "state": "running"}),
                )
            })
            .collect();
        serde_json::json!({"db": {"member": member, "role": "replica", "patroni_reachable": true,
            "dcs_reachable": true, "cluster_view_age_s": 5, "cluster_leader": "pg1",
            "cluster_members": view}})
    }

    /// Fake db nodes with the shared db token, whether they copy a real view, add
    /// themselves to it or send no facts, do not raise the healthy count.
    #[test]
    fn fake_db_nodes_do_not_lift_quorum() {
        let real = ["pg1", "pg2", "pg3"];
        let mut nodes = vec![
            reporter(NodeType::Db, "d1", "db1", "OK", db("pg1", &real)),
            reporter(
                NodeType::Db,
                "d2",
                "db2",
                "Fail",
                serde_json::json!({"db": {"member": "pg2"}}),
            ),
            reporter(
                NodeType::Db,
                "d3",
                "db3",
                "Fail",
                serde_json::json!({"db": {"member": "pg3"}}),
            ),
        ];
        let forged = ["pg1", "pg2", "pg3", "f1", "f2", "f3"];
        nodes.push(reporter(
            NodeType::Db,
            "f1",
            "fake1",
            "OK",
            db("f1", &forged),
        ));
        nodes.push(reporter(
            NodeType::Db,
            "f2",
            "fake2",
            "OK",
            db("f2", &forged),
        ));
        nodes.push(reporter(
            NodeType::Db,
            "f3",
            "fake3",
            "OK",
            serde_json::json!({}),
        ));
        let view = rollup(&nodes, 0, &Policy::default());
        let svc = &view.services["db"];
        assert_eq!(svc.status, NodeStatus::Fail, "{svc:#?}");
        let q = svc
            .reasons
            .iter()
            .find(|r| r.code == "quorum_lost")
            .unwrap();
        assert!(q.message.starts_with("1 of 3 "), "{}", q.message);
        assert!(svc.nodes.values().filter(|n| n.unvouched).count() == 3);
        assert_eq!(view.status, NodeStatus::Fail);
    }

    /// A configured size holds where no view can: more managers than expected is Fail, and
    /// fewer is short of the quorum's base.
    #[test]
    fn expected_size_bounds_the_membership() {
        let policy = Policy {
            required_types: vec![NodeType::Manager],
            expected_size: [(NodeType::Manager, 2)].into(),
            ..Policy::default()
        };
        let mut nodes = vec![manager("m1", "Fail"), manager("m2", "Fail")];
        assert_eq!(rollup(&nodes, 0, &policy).status, NodeStatus::Fail);
        nodes.push(manager("impostor", "OK"));
        let view = rollup(&nodes, 0, &policy);
        assert_eq!(view.status, NodeStatus::Fail);
        assert!(
            view.reasons.iter().any(|r| r.code == "membership_exceeds"),
            "{view:#?}"
        );
        let one = rollup(&[manager("m1", "OK")], 0, &policy);
        assert_eq!(
            one.status,
            NodeStatus::Degraded,
            "1 of 2 expected: {one:#?}"
        );
    }

    /// The name attack of issue 12: a second node named `dbA` and a third named
    /// `dbA (legit1)` beside the real, failing `dbA`. Every node keeps its own row, the real
    /// one still Fail, and the twin counts with it, not for it.
    #[test]
    fn a_duplicate_name_cannot_hide_the_failing_row() {
        let nodes = vec![
            reporter(NodeType::Db, "legit1", "dbA", "Fail", serde_json::json!({})),
            reporter(NodeType::Db, "legit2", "dbB", "OK", serde_json::json!({})),
            reporter(NodeType::Db, "legit3", "dbC", "Fail", serde_json::json!({})),
            reporter(NodeType::Db, "evil-1", "dbA", "OK", serde_json::json!({})),
            reporter(
                NodeType::Db,
                "evil-2",
                "dbA (legit1)",
                "OK",
                serde_json::json!({}),
            ),
        ];
        let view = rollup(&nodes, 0, &Policy::default());
        let svc = &view.services["db"];
        assert_eq!(svc.nodes.len(), 5, "{:?}", svc.nodes.keys());
        let real = &svc.nodes["dbA (legit1)"];
        assert_eq!(
            (real.node_id.as_str(), real.status),
            ("legit1", NodeStatus::Fail)
        );
        assert_eq!(real.name.as_deref(), Some("dbA"));
        assert!(real.reasons.iter().any(|r| r.code == "duplicate_name"));
        assert_eq!(svc.nodes["dbA (evil-1)"].node_id, "evil-1");
        assert_eq!(svc.nodes["dbA (legit1) (evil-2)"].node_id, "evil-2");
        assert!(svc.nodes["dbB"].name.is_none());
        // Counted: dbA (Fail, whoever else claims it), dbB, dbC, and the odd name: 2 of 4.
        assert_eq!(svc.status, NodeStatus::Fail, "{svc:#?}");
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
