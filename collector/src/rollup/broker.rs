//! The broker cluster rule: RabbitMQ (one agreed membership, no partitions, a majority).
//!
//! Decisions, worst wins:
//! - any fresh node reports a RabbitMQ network partition (`partitions` non-empty): split
//!   brain, Fail;
//! - the running nodes' views of the cluster contradict each other: node X's view has
//!   running node Y down while Y's view has X down. Each side then believes it is the
//!   cluster (split brain), Fail. A one-sided difference (X still sees a restarted Y as
//!   down while Y sees X up) is not split brain: it is two reports taken a few seconds
//!   apart around a stop or start, and judging it Fail would make every restart flap;
//! - otherwise the quorum rule: OK when every node is OK, Degraded while the healthy (not
//!   Fail) nodes reach ⌊n/2⌋+1, Fail below.
//!
//! "Running nodes" are the nodes with a fresh report whose own view lists themselves as
//! running; a node whose RabbitMQ or management API is down has no view to compare.
//! A legacy (5.0.5) report's view does not name its own RabbitMQ node: it counts as
//! running when it sees anyone running, and two views contradict each other when they
//! share no running node (each side then runs without the other).
//! Every non-OK result names the nodes behind it.

use super::{generic, NodeInput, Policy};
use sr_protocol::facts::BrokerFacts;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeSet;

/// A fresh node with a usable view of the RabbitMQ cluster.
struct Viewer<'a> {
    node: &'a NodeInput,
    /// This node's RabbitMQ name; `None` from a legacy body, which does not say it.
    rabbit: Option<&'a str>,
    /// Members this node sees running.
    running: BTreeSet<&'a str>,
    facts: &'a BrokerFacts,
}

fn viewer(n: &NodeInput) -> Option<Viewer<'_>> {
    if !n.fresh {
        return None;
    }
    let facts = n.facts.as_ref()?.broker.as_ref()?;
    let rabbit = facts.node_name.as_deref();
    if rabbit.is_none() && n.legacy.is_none() {
        return None;
    }
    let running: BTreeSet<&str> = facts
        .cluster_view
        .iter()
        .filter(|(_, up)| **up)
        .map(|(name, _)| name.as_str())
        .collect();
    let runs = match rabbit {
        Some(me) => running.contains(me),
        None => !running.is_empty(),
    };
    runs.then_some(Viewer {
        node: n,
        rabbit,
        running,
        facts,
    })
}

impl Viewer<'_> {
    /// `node (rabbit name)`, or the node alone when its RabbitMQ name is unknown.
    fn label(&self) -> String {
        match self.rabbit {
            Some(r) => format!("{} ({r})", self.node.name),
            None => self.node.name.clone(),
        }
    }

    fn running_list(&self) -> String {
        self.running.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

/// Status and reasons of the broker service type. `nodes` are all of type broker.
///
/// The quorum rule, then the split-brain rules over the fresh views; a split brain is Fail
/// and its reasons come first, the node reasons after them.
pub fn rollup(nodes: &[NodeInput], policy: &Policy) -> (NodeStatus, Vec<Reason>) {
    let (status, reasons) = generic::rollup(nodes, policy);
    let viewers: Vec<Viewer> = nodes.iter().filter_map(viewer).collect();
    let mut split = partitions_reported(&viewers);
    split.extend(contradicting_views(&viewers));
    if split.is_empty() {
        return (status, reasons);
    }
    split.extend(reasons);
    (NodeStatus::Fail, split)
}

/// Every node that reports a RabbitMQ network partition.
fn partitions_reported(viewers: &[Viewer]) -> Vec<Reason> {
    viewers
        .iter()
        .filter(|v| !v.facts.partitions.is_empty())
        .map(|v| {
            Reason::new(
                codes::SPLIT_BRAIN,
                format!(
                    "{} reports a network partition with {}",
                    v.label(),
                    v.facts.partitions.join(", ")
                ),
            )
            .on_node(v.node.name.clone())
        })
        .collect()
}

/// Every pair of running nodes that each see the other down. When a view does not name
/// its own node (a legacy body), the pair contradicts when the views share no running
/// node: each node sees itself running, so neither sees the other.
fn contradicting_views(viewers: &[Viewer]) -> Vec<Reason> {
    let mut split = Vec::new();
    for (i, a) in viewers.iter().enumerate() {
        for b in &viewers[i + 1..] {
            let message = match (a.rabbit, b.rabbit) {
                (Some(ar), Some(br)) => (ar != br
                    && !a.running.contains(br)
                    && !b.running.contains(ar))
                .then(|| {
                    format!(
                        "views differ: {} ({ar}) sees {br} down, and {} ({br}) sees {ar} down; both run",
                        a.node.name, b.node.name
                    )
                }),
                _ => a.running.is_disjoint(&b.running).then(|| {
                    format!(
                        "views differ: {} sees only {} running, and {} sees only {}; both run",
                        a.label(),
                        a.running_list(),
                        b.label(),
                        b.running_list()
                    )
                }),
            };
            if let Some(message) = message {
                split.push(Reason::new(codes::SPLIT_BRAIN, message).on_node(a.node.name.clone()));
            }
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::super::{LatestReport, NodeRecord};
    use super::*;
    use sr_protocol::report::ReportBody;
    use sr_protocol::NodeType;
    use std::sync::Arc;

    /// The fixed collector clock every test judges at.
    const NOW_MS: i64 = 1_790_000_000_000;

    /// A node's RabbitMQ view: its own name, each member with whether it is up, and the
    /// partitions it reports.
    type View<'a> = (&'a str, &'a [(&'a str, bool)], &'a [&'a str]);

    /// A broker node that reported `ago_ms` before [`NOW_MS`] with this status, reasons
    /// and RabbitMQ view (`None`: its management API was down, no view).
    fn node(
        name: &str,
        ago_ms: i64,
        status: &str,
        reasons: &[(&str, &str)],
        view: Option<View<'_>>,
    ) -> NodeInput {
        let mut facts = serde_json::json!({});
        if let Some((me, members, partitions)) = view {
            let cluster_view: serde_json::Map<String, serde_json::Value> = members
                .iter()
                .map(|(m, up)| (m.to_string(), (*up).into()))
                .collect();
            facts = serde_json::json!({"broker": {"node_name": me, "cluster_view": cluster_view, "partitions": partitions}});
        }
        let legacy = if status == "Fail" { "Fail" } else { "OK" };
        let reasons: Vec<_> = reasons
            .iter()
            .map(|(c, m)| serde_json::json!({"code": c, "message": m}))
            .collect();
        let body: ReportBody = serde_json::from_value(serde_json::json!({
            "reporting_freq": 5,
            "timestamp": "20260922120000+0000",
            "report": {"status": legacy, "services": {"RabbitMQ": {"status": if status == "Fail" {"Inactive"} else {"Active"}, "extra_info": {}}}},
            "status_reporter": {
                "version": 1, "node_status": status, "node_name": name, "agent_version": "0.1.0",
                "boot_id": "b", "seq": 1, "reasons": reasons, "facts": facts
            }
        }))
        .unwrap();
        judged(name, body, ago_ms, true)
    }

    /// A broker node whose last report, `ago_ms` before [`NOW_MS`], is `body`, judged.
    fn judged(name: &str, body: ReportBody, ago_ms: i64, signed: bool) -> NodeInput {
        let rec = NodeRecord {
            node_type: NodeType::Broker,
            node_id: format!("id-{name}"),
            name: name.into(),
            private_ip: None,
            key_mismatch: false,
            latest: Some(Arc::new(LatestReport {
                body,
                received_ms: NOW_MS - ago_ms,
                skew_ms: 0,
                signed,
            })),
            status_changes_ms: Vec::new(),
        };
        NodeInput::from_record(&rec, NOW_MS, &Policy::default())
    }

    const ALL_UP: &[(&str, bool)] = &[("r1@h", true), ("r2@h", true), ("r3@h", true)];
    const R3_DOWN: &[(&str, bool)] = &[("r1@h", true), ("r2@h", true), ("r3@h", false)];

    fn healthy(name: &str, rabbit: &str) -> NodeInput {
        node(name, 1000, "OK", &[], Some((rabbit, ALL_UP, &[])))
    }

    fn codes(r: &[Reason]) -> Vec<&str> {
        r.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn all_healthy_and_agreeing_is_ok() {
        let (s, r) = rollup(
            &[
                healthy("b1", "r1@h"),
                healthy("b2", "r2@h"),
                healthy("b3", "r3@h"),
            ],
            &Policy::default(),
        );
        assert_eq!(s, NodeStatus::Ok);
        assert!(r.is_empty());
    }

    #[test]
    fn one_node_stopped_is_degraded_and_named() {
        let peer = [("peer_down", "cluster member r3@h is not running")];
        let nodes = [
            node("b1", 1000, "Degraded", &peer, Some(("r1@h", R3_DOWN, &[]))),
            node("b2", 1000, "Degraded", &peer, Some(("r2@h", R3_DOWN, &[]))),
            node(
                "b3",
                1000,
                "Fail",
                &[("management_unreachable", "management API unreachable")],
                None,
            ),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(
            r.iter()
                .any(|x| x.node.as_deref() == Some("b3") && x.code == "management_unreachable"),
            "{r:?}"
        );
        assert!(!codes(&r).contains(&"split_brain"));
    }

    #[test]
    fn two_nodes_stopped_is_fail() {
        let down2: &[(&str, bool)] = &[("r1@h", true), ("r2@h", false), ("r3@h", false)];
        let nodes = [
            node(
                "b1",
                1000,
                "Degraded",
                &[("peer_down", "r2@h, r3@h not running")],
                Some(("r1@h", down2, &[])),
            ),
            node("b2", 1000, "Fail", &[("management_unreachable", "x")], None),
            node("b3", 1000, "Fail", &[("management_unreachable", "x")], None),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes(&r).contains(&"quorum_lost"), "{r:?}");
        assert!(
            r.iter().any(|x| x.node.as_deref() == Some("b2"))
                && r.iter().any(|x| x.node.as_deref() == Some("b3"))
        );
    }

    #[test]
    fn a_reported_partition_is_split_brain_even_when_every_node_is_up() {
        let nodes = [
            node("b1", 1000, "OK", &[], Some(("r1@h", ALL_UP, &["r3@h"]))),
            healthy("b2", "r2@h"),
            healthy("b3", "r3@h"),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(r[0].code, "split_brain");
        assert!(
            r[0].message.contains("b1") && r[0].message.contains("r3@h"),
            "{r:?}"
        );
    }

    #[test]
    fn mutually_exclusive_views_are_split_brain() {
        let side_a: &[(&str, bool)] = &[("r1@h", true), ("r2@h", true), ("r3@h", false)];
        let side_b: &[(&str, bool)] = &[("r1@h", false), ("r2@h", false), ("r3@h", true)];
        let nodes = [
            node(
                "b1",
                1000,
                "Degraded",
                &[("peer_down", "r3@h")],
                Some(("r1@h", side_a, &[])),
            ),
            node(
                "b2",
                1000,
                "Degraded",
                &[("peer_down", "r3@h")],
                Some(("r2@h", side_a, &[])),
            ),
            node(
                "b3",
                1000,
                "Degraded",
                &[("peer_down", "r1@h, r2@h")],
                Some(("r3@h", side_b, &[])),
            ),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Fail, "{r:?}");
        let split: Vec<_> = r.iter().filter(|x| x.code == "split_brain").collect();
        assert_eq!(split.len(), 2, "b1|b3 and b2|b3: {split:?}");
        assert!(split.iter().all(|x| x.message.contains("b3")));
    }

    #[test]
    fn a_one_sided_difference_during_a_restart_is_not_split_brain() {
        // b1's report predates r3's restart; r3 already sees everyone.
        let nodes = [
            node(
                "b1",
                4000,
                "Degraded",
                &[("peer_down", "r3@h")],
                Some(("r1@h", R3_DOWN, &[])),
            ),
            healthy("b2", "r2@h"),
            healthy("b3", "r3@h"),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(!codes(&r).contains(&"split_brain"));
    }

    #[test]
    fn a_stale_nodes_old_view_is_not_compared_and_the_node_fails() {
        let stale_partition = node("b3", 60_000, "OK", &[], Some(("r3@h", ALL_UP, &["r1@h"])));
        let (s, r) = rollup(
            &[
                healthy("b1", "r1@h"),
                healthy("b2", "r2@h"),
                stale_partition,
            ],
            &Policy::default(),
        );
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(
            codes(&r).contains(&"stale") && !codes(&r).contains(&"split_brain"),
            "{r:?}"
        );
    }

    #[test]
    fn a_local_alarm_fails_only_that_node_and_the_type_is_degraded() {
        let nodes = [
            healthy("b1", "r1@h"),
            node(
                "b2",
                1000,
                "Fail",
                &[("local_alarm", "resource alarm in effect on r2@h: memory")],
                Some(("r2@h", ALL_UP, &[])),
            ),
            healthy("b3", "r3@h"),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Degraded);
        let blamed: BTreeSet<_> = r.iter().filter_map(|x| x.node.as_deref()).collect();
        assert_eq!(blamed, BTreeSet::from(["b2"]), "{r:?}");
    }

    #[test]
    fn no_broker_nodes_is_fail() {
        let (s, r) = rollup(&[], &Policy::default());
        assert_eq!(s, NodeStatus::Fail);
        assert!(!r.is_empty());
    }

    /// A 5.0.5 broker: a legacy body whose `cluster_status` is this view, OK.
    fn legacy(name: &str, view: &[(&str, bool)]) -> NodeInput {
        let cluster_status: serde_json::Map<String, serde_json::Value> = view
            .iter()
            .map(|(m, up)| (m.to_string(), if *up { "OK" } else { "Fail" }.into()))
            .collect();
        let body: ReportBody = serde_json::from_value(serde_json::json!({
            "reporting_freq": 5,
            "timestamp": "20260922120000+0000",
            "report": {"status": "OK", "services": {"RabbitMQ": {"status": "Active", "extra_info": {
                "node_status": {"status": "ok"}, "cluster_status": cluster_status}}}}
        }))
        .unwrap();
        judged(name, body, 1000, false)
    }

    #[test]
    fn legacy_views_contradict_only_when_they_share_no_running_node() {
        let r3_alone: &[(&str, bool)] = &[("r1@h", false), ("r2@h", false), ("r3@h", true)];
        // A one-sided difference around a restart: not split brain.
        let nodes = [
            legacy("b1", R3_DOWN),
            legacy("b2", R3_DOWN),
            legacy("b3", ALL_UP),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!((s, codes(&r)), (NodeStatus::Ok, vec![]));

        // Disjoint views: each side runs without the other.
        let nodes = [
            legacy("b1", R3_DOWN),
            legacy("b2", R3_DOWN),
            legacy("b3", r3_alone),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(codes(&r), ["split_brain", "split_brain"]);

        // One of ours (named) against a legacy view: the same test applies.
        let nodes = [
            node(
                "b1",
                1000,
                "Degraded",
                &[("peer_down", "r3@h")],
                Some(("r1@h", R3_DOWN, &[])),
            ),
            healthy("b2", "r2@h"),
            legacy("b3", r3_alone),
        ];
        let (s, r) = rollup(&nodes, &Policy::default());
        assert_eq!(s, NodeStatus::Fail, "{r:?}");
        let split: Vec<_> = r.iter().filter(|x| x.code == "split_brain").collect();
        assert_eq!(split.len(), 1, "b1|b3 only: b2 sees r3@h running: {r:?}");
        assert!(split[0].message.contains("b1 (r1@h)") && split[0].message.contains("b3"));

        // A legacy node whose RabbitMQ is down sends an empty view: nothing to compare.
        let nodes = [
            healthy("b1", "r1@h"),
            healthy("b2", "r2@h"),
            legacy("b3", &[]),
        ];
        assert!(!codes(&rollup(&nodes, &Policy::default()).1).contains(&"split_brain"));
    }
}
