//! The generic quorum rule (Cloudify 5.1+ semantics), used for managers and, until their
//! own rules read the facts, for db and broker nodes too.
//!
//! OK when every node is OK. Degraded while the healthy (not Fail) nodes reach the
//! quorum: ⌊n/2⌋+1 for db and broker (a majority keeps Patroni and RabbitMQ working), 1
//! for managers (any manager serves the API). Fail below the quorum.
//!
//! The quorum is taken of the service's membership ([`Membership`]: the configured size,
//! or the members the views show), not of the reporters; reporters claiming one member
//! count once. More members than the configured size is Fail ([`Membership::exceeded`]).

use super::membership::Membership;
use super::{NodeInput, Policy};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, NodeType, Reason};

/// How many healthy nodes a type of `n` nodes needs to keep working.
pub fn quorum(node_type: NodeType, n: usize) -> usize {
    match node_type {
        NodeType::Manager => 1,
        NodeType::Db | NodeType::Broker | NodeType::Node => n / 2 + 1,
    }
}

/// Quorum roll-up of nodes of one type. Every non-OK result carries the reasons of its
/// non-OK nodes plus one type-level reason.
pub fn rollup(nodes: &[NodeInput], policy: &Policy) -> (NodeStatus, Vec<Reason>) {
    let Some(first) = nodes.first() else {
        return (
            NodeStatus::Fail,
            vec![Reason::new(
                codes::NO_NODES,
                "no node of this type has reported",
            )],
        );
    };
    let node_type = first.node_type;
    let members = Membership::of(nodes, policy);
    let n = members.size;
    let healthy = Membership::healthy(nodes.iter().map(|x| (x, x.status != NodeStatus::Fail)));
    // Every node OK (the usual case) makes every group of reporters OK: the same count,
    // without folding each name again (issue 17).
    let all_ok = if nodes.iter().all(|x| x.status == NodeStatus::Ok) {
        healthy
    } else {
        Membership::healthy(nodes.iter().map(|x| (x, x.status == NodeStatus::Ok)))
    };
    if let Some(exceeded) = members.exceeded(node_type) {
        let mut reasons = vec![exceeded];
        reasons.extend(
            nodes
                .iter()
                .filter(|x| x.status != NodeStatus::Ok)
                .flat_map(node_reasons),
        );
        return (NodeStatus::Fail, reasons);
    }
    if all_ok == n {
        return (NodeStatus::Ok, Vec::new());
    }
    let need = quorum(node_type, n);
    let mut reasons: Vec<Reason> = nodes
        .iter()
        .filter(|x| x.status != NodeStatus::Ok)
        .flat_map(node_reasons)
        .collect();
    let status = if healthy >= need {
        reasons.push(Reason::new(
            codes::DEGRADED_MEMBERS,
            format!("{healthy} of {n} {node_type} nodes healthy (quorum {need})"),
        ));
        NodeStatus::Degraded
    } else {
        reasons.push(Reason::new(
            codes::QUORUM_LOST,
            format!("{healthy} of {n} {node_type} nodes healthy, below quorum {need}"),
        ));
        NodeStatus::Fail
    };
    (status, reasons)
}

/// Why a node that is not OK is not: its own reasons without the clock-skew flag (which
/// changes no status), or a generic one naming its status.
pub(super) fn node_reasons(n: &NodeInput) -> Vec<Reason> {
    let own: Vec<Reason> = n
        .reasons
        .iter()
        .filter(|r| r.code != codes::CLOCK_SKEW.code)
        .cloned()
        .collect();
    if own.is_empty() {
        vec![
            Reason::new(codes::NODE_UNHEALTHY, format!("node is {}", n.status))
                .on_node(n.name.clone()),
        ]
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_majority_for_db_and_broker_and_one_for_managers() {
        assert_eq!(quorum(NodeType::Db, 3), 2);
        assert_eq!(quorum(NodeType::Db, 4), 3);
        assert_eq!(quorum(NodeType::Broker, 1), 1);
        assert_eq!(quorum(NodeType::Manager, 5), 1);
    }
}
