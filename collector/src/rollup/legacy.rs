//! Facts from a legacy body: what an unmodified Cloudify 5.0.5 reporter (no
//! `status_reporter` extension) says in `report.services`, read into the same typed facts
//! our agent sends, so its reports feed the same db and broker rules.
//!
//! Why the roll-up's input adapter and not `sr_protocol`'s decode: decode keeps the body
//! exactly as it was received (it is stored, shown back under `services`, and its types
//! are locked by golden files), and it does not know the node type, which is in the path.
//! Reading a thin legacy entry as facts is a judgement the roll-up owns: which role words
//! mean leader, and what the legacy wire cannot say at all.
//!
//! What the legacy wire carries, and what it does not:
//! - db, `Patroni.extra_info.patroni_status = {state, role, replications_state}`: the
//!   member's state and role (`master` on the Patroni 5.0.5 shipped, `primary` from
//!   Patroni 4), and on the leader its walsenders' `{state, sync_state}`, **without their
//!   names**. No member name (the node name stands in), no lag, no `/cluster` view, no
//!   etcd detail. An empty `patroni_status` is how 5.0.5 says Patroni did not answer.
//! - broker, `RabbitMQ.extra_info.cluster_status = {rabbit node name: "OK" | "Fail"}`: the
//!   node's view of who runs, **without its own RabbitMQ name** (our agent adds
//!   `node_name`; 5.0.5 does not), and no partitions list.

use sr_protocol::facts::{BrokerFacts, DbFacts, ReplicationView};
use sr_protocol::report::{Facts, LegacyReport};
use sr_protocol::NodeType;

/// The legacy display names 5.0.5 reads.
const PATRONI: &str = "Patroni";
const RABBITMQ: &str = "RabbitMQ";

/// What a legacy body says that the typed facts have no slot for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyDetail {
    /// The leader's walsenders from `replications_state`, in the order sent. 5.0.5 sends
    /// their state and sync state but not which replica each one serves, so the db rule
    /// counts them against the replicas instead of looking each replica up.
    pub unnamed_walsenders: Vec<ReplicationView>,
}

/// The facts a legacy body of a node of this type gives, or `None` when it has no entry
/// the cluster rules read (a manager, or a node without a Patroni / RabbitMQ entry).
pub fn facts(node_type: NodeType, report: &LegacyReport) -> Option<(Facts, LegacyDetail)> {
    match node_type {
        NodeType::Db => {
            let (db, detail) = db_facts(report)?;
            Some((
                Facts {
                    db: Some(db),
                    ..Facts::default()
                },
                detail,
            ))
        }
        NodeType::Broker => Some((
            Facts {
                broker: Some(broker_facts(report)?),
                ..Facts::default()
            },
            LegacyDetail::default(),
        )),
        // 5.0.5 has no `node` type; a manager's entries carry no cluster facts.
        NodeType::Manager | NodeType::Node => None,
    }
}

/// Patroni's role word as the rules read it: `master` (Patroni < 4) and `primary`
/// (Patroni 4) both lead.
fn normalise_role(role: &str) -> &str {
    match role {
        "master" | "primary" => "leader",
        other => other,
    }
}

fn db_facts(report: &LegacyReport) -> Option<(DbFacts, LegacyDetail)> {
    let status = report
        .services
        .get(PATRONI)?
        .extra_info
        .get("patroni_status")?
        .as_object()?;
    let text = |key: &str| status.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let state = text("state");
    let role = text("role").map(|r| normalise_role(&r).to_string());
    let unnamed_walsenders: Vec<ReplicationView> = status
        .get("replications_state")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some(ReplicationView {
                state: w.get("state")?.as_str()?.to_string(),
                sync_state: w.get("sync_state")?.as_str()?.to_string(),
            })
        })
        .collect();
    let is_leader = role.as_deref() == Some("leader");
    let db = DbFacts {
        // 5.0.5 sends `{}` when Patroni did not answer (or had no address to ask).
        patroni_reachable: Some(state.is_some()),
        // Cloudify 5.0.5 runs Patroni in synchronous mode, and its own roll-up fails a
        // cluster whose leader has no streaming sync replica: say so, so that the same
        // `no_sync_standby` rule applies.
        synchronous_mode: is_leader.then_some(true),
        state,
        role,
        ..DbFacts::default()
    };
    Some((db, LegacyDetail { unnamed_walsenders }))
}

fn broker_facts(report: &LegacyReport) -> Option<BrokerFacts> {
    let extra = &report.services.get(RABBITMQ)?.extra_info;
    let cluster_view: std::collections::BTreeMap<String, bool> = extra
        .get("cluster_status")?
        .as_object()?
        .iter()
        .map(|(name, status)| (name.clone(), status.as_str() == Some("OK")))
        .collect();
    if cluster_view.is_empty() {
        // 5.0.5 sends `{}` when RabbitMQ or its management API is down: no view.
        return None;
    }
    Some(BrokerFacts {
        node_name: extra
            .get("node_name")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        cluster_view,
        ..BrokerFacts::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::report::ReportBody;

    fn report(services: serde_json::Value) -> LegacyReport {
        let body = serde_json::json!({
            "reporting_freq": 5,
            "timestamp": "20270115080000+0000",
            "report": {"status": "OK", "services": services}
        });
        ReportBody::decode(&serde_json::to_vec(&body).unwrap())
            .unwrap()
            .body
            .report
    }

    #[test]
    fn a_legacy_master_leads_with_its_unnamed_walsenders() {
        for role in ["master", "primary"] {
            let r = report(
                serde_json::json!({"Patroni": {"status": "Active", "extra_info": {
                "patroni_status": {"state": "running", "role": role, "replications_state": [
                    {"sync_state": "sync", "state": "streaming"},
                    {"sync_state": "async", "state": "catchup"}]}}}}),
            );
            let (f, detail) = facts(NodeType::Db, &r).unwrap();
            let db = f.db.unwrap();
            assert_eq!(db.role.as_deref(), Some("leader"), "{role}");
            assert_eq!(db.state.as_deref(), Some("running"));
            assert_eq!(db.patroni_reachable, Some(true));
            assert_eq!(db.synchronous_mode, Some(true));
            assert_eq!(db.member, None, "the legacy body names no member");
            assert!(db.replication.is_empty());
            assert_eq!(
                detail.unnamed_walsenders,
                [("streaming", "sync"), ("catchup", "async")].map(|(state, sync_state)| {
                    ReplicationView {
                        state: state.into(),
                        sync_state: sync_state.into(),
                    }
                })
            );
        }
    }

    #[test]
    fn an_empty_patroni_status_is_an_unreachable_patroni() {
        let r = report(
            serde_json::json!({"Patroni": {"status": "Inactive", "extra_info": {"patroni_status": {}}}}),
        );
        let db = facts(NodeType::Db, &r).unwrap().0.db.unwrap();
        assert_eq!(db.patroni_reachable, Some(false));
        assert_eq!((db.role, db.synchronous_mode), (None, None));
        // No Patroni entry at all: nothing to read.
        let r = report(serde_json::json!({"Etcd": {"status": "Active", "extra_info": {}}}));
        assert!(facts(NodeType::Db, &r).is_none());
    }

    #[test]
    fn a_legacy_cluster_status_is_the_broker_view() {
        let r = report(
            serde_json::json!({"RabbitMQ": {"status": "Active", "extra_info": {
            "node_status": {"status": "ok"},
            "cluster_status": {"rabbit@b1": "OK", "rabbit@b2": "Fail"}}}}),
        );
        let b = facts(NodeType::Broker, &r).unwrap().0.broker.unwrap();
        assert_eq!(b.node_name, None);
        assert_eq!(
            b.cluster_view.into_iter().collect::<Vec<_>>(),
            [
                ("rabbit@b1".to_string(), true),
                ("rabbit@b2".to_string(), false)
            ]
        );
        let r = report(
            serde_json::json!({"RabbitMQ": {"status": "Inactive", "extra_info": {
            "node_status": {}, "cluster_status": {}}}}),
        );
        assert!(facts(NodeType::Broker, &r).is_none());
        assert!(facts(NodeType::Manager, &r).is_none());
    }
}
