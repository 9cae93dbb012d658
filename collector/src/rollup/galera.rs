//! The `galera` rule (MariaDB Galera): one Primary component with every reporter in it and
//! one state UUID, and a majority of the configured size healthy.
//!
//! A member is judged from its `facts.galera` ([`member_verdicts`]): unreachable, in a
//! non-Primary component (a partition) or not ready is Fail; a donor or desynced node is
//! Degraded, not Fail (it serves, and comes back by itself), as is a joining node, one
//! paused by flow control more than [`FLOW_CONTROL_LIMIT`] of the time, and one with
//! `read_only` on. The cluster rules, composed by [`rollup`]:
//! - [`state_uuids`]: Primary members with different state UUIDs are two clusters, Fail;
//! - [`quorum`](super::stack::quorum): healthy members below ⌊size/2⌋+1 of the configured
//!   size, Fail (a member that never reported counts as not healthy);
//! - [`component_size`]: the Primary component smaller than the configured size, Degraded
//!   (a member is gone even if its agent is silent too);
//! - [`unhealthy_members`]: any other member not OK, Degraded, with its reasons.

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::{GaleraFacts, StackService};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeSet;

/// See [`GaleraFacts::FLOW_CONTROL_LIMIT`].
pub const FLOW_CONTROL_LIMIT: f64 = GaleraFacts::FLOW_CONTROL_LIMIT;

/// What one member's own facts say ([`GaleraFacts::own_verdicts`], which the agent's
/// probe reads too), each reason naming the member.
pub fn member_verdicts(f: &GaleraFacts, node: &str) -> Vec<Verdict> {
    f.own_verdicts()
        .into_iter()
        .map(|(status, code, message)| (status, code.reason(message).on_node(node)))
        .collect()
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(
        node,
        |f| f.galera.as_ref(),
        member_verdicts,
        |f| f.local_state.clone(),
    )
}

/// Fresh Primary members' facts.
fn primaries<'a>(members: &'a [Judged]) -> impl Iterator<Item = (&'a Judged<'a>, &'a GaleraFacts)> {
    members.iter().filter_map(|j| {
        let f = j.node.facts.as_ref()?.galera.as_ref()?;
        (stack::standing(j.node).is_none() && f.reachable && f.primary()).then_some((j, f))
    })
}

/// Primary members that disagree on the state UUID hold two histories: Fail.
pub fn state_uuids(members: &[Judged]) -> Option<Verdict> {
    let uuids: BTreeSet<&str> = primaries(members)
        .filter_map(|(_, f)| f.state_uuid.as_deref())
        .collect();
    (uuids.len() > 1).then(|| {
        (
            NodeStatus::Fail,
            codes::GALERA_SPLIT.reason(format!(
                "Primary members report {} state UUIDs: {}",
                uuids.len(),
                uuids.into_iter().collect::<Vec<_>>().join(", ")
            )),
        )
    })
}

/// The Primary component (its largest reported size) smaller than the configured size.
pub fn component_size(members: &[Judged], size: usize) -> Option<Verdict> {
    let largest = primaries(members)
        .filter_map(|(_, f)| f.cluster_size)
        .max()?;
    ((largest as usize) < size).then(|| {
        (
            NodeStatus::Degraded,
            codes::GALERA_MEMBER_MISSING.reason(format!(
                "the Primary component has {largest} of {size} members"
            )),
        )
    })
}

/// Any member not OK, while nothing worse is wrong: Degraded, with its reasons.
pub fn unhealthy_members(members: &[Judged], healthy: usize, size: usize) -> Vec<Verdict> {
    let bad: Vec<&Judged> = members
        .iter()
        .filter(|j| j.status != NodeStatus::Ok)
        .collect();
    if bad.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Verdict> = bad
        .iter()
        .flat_map(|j| {
            j.reasons
                .iter()
                .map(|r| (j.status.min(NodeStatus::Degraded), r.clone()))
        })
        .collect();
    out.push((
        NodeStatus::Degraded,
        codes::DEGRADED_MEMBERS.reason(format!("{healthy} of {size} galera members healthy")),
    ));
    out
}

/// Status and reasons of the `galera` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    let healthy = judged
        .iter()
        .filter(|j| j.status != NodeStatus::Fail)
        .count();
    let mut verdicts = unhealthy_members(&judged, healthy, size);
    verdicts.extend(state_uuids(&judged));
    verdicts.extend(stack::quorum(StackService::Galera, healthy, size));
    verdicts.extend(component_size(&judged, size));
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{rollup as full_rollup, NodeInput, Policy};
    use sr_protocol::report::Facts;
    use std::collections::BTreeMap;

    fn synced() -> GaleraFacts {
        GaleraFacts {
            reachable: true,
            ready: Some(true),
            connected: Some(true),
            local_state: Some("Synced".into()),
            cluster_status: Some("Primary".into()),
            cluster_size: Some(3),
            conf_id: Some(3),
            state_uuid: Some("u1".into()),
            flow_control_paused: Some(0.0),
            read_only: Some(false),
            ..GaleraFacts::default()
        }
    }

    fn node(i: usize, f: GaleraFacts) -> NodeInput {
        let mut n = stack::test_member(
            &format!("galera{i}"),
            Facts {
                galera: Some(f),
                ..Facts::default()
            },
        );
        n.node_id = format!("g{i}");
        n
    }

    fn sized(n: u32) -> Policy {
        Policy {
            required_types: Vec::new(),
            services: BTreeMap::from([(
                StackService::Galera,
                ServicePolicy {
                    required: true,
                    size: Some(n),
                },
            )]),
            ..Policy::default()
        }
    }

    /// (status, codes) of the galera service over these members, configured size 3.
    fn check(members: Vec<GaleraFacts>) -> (NodeStatus, Vec<String>) {
        let nodes: Vec<NodeInput> = members
            .into_iter()
            .enumerate()
            .map(|(i, f)| node(i + 1, f))
            .collect();
        let view = full_rollup(&nodes, 0, &sized(3));
        let g = &view.services["galera"];
        assert_eq!(view.status, g.status, "galera is the only service");
        (g.status, g.reasons.iter().map(|r| r.code.clone()).collect())
    }

    fn with(f: impl FnOnce(&mut GaleraFacts)) -> GaleraFacts {
        let mut x = synced();
        f(&mut x);
        x
    }

    #[test]
    fn three_synced_primary_members_are_ok() {
        assert_eq!(
            check(vec![synced(), synced(), synced()]),
            (NodeStatus::Ok, vec![])
        );
    }

    #[test]
    fn a_partitioned_member_is_fail_the_majority_degraded() {
        let cut = with(|f| {
            f.cluster_status = Some("non-Primary".into());
            f.cluster_size = Some(1);
            f.ready = Some(false);
        });
        let two = with(|f| f.cluster_size = Some(2));
        let (s, codes) = check(vec![two.clone(), two, cut]);
        assert_eq!(s, NodeStatus::Degraded);
        for c in [
            "galera_non_primary",
            "galera_not_ready",
            "galera_member_missing",
            "degraded",
        ] {
            assert!(codes.iter().any(|x| x == c), "{c}: {codes:?}");
        }
    }

    #[test]
    fn below_a_majority_of_the_configured_size_is_fail() {
        // One member left reporting, Primary of 1 (e.g. bootstrapped alone): 1 of 3.
        let alone = with(|f| f.cluster_size = Some(1));
        let (s, codes) = check(vec![alone]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes.contains(&"quorum_lost".to_string()), "{codes:?}");
        // Two members unreachable: 1 healthy of 3.
        let dead = GaleraFacts {
            reachable: false,
            error: Some("connection refused".into()),
            ..GaleraFacts::default()
        };
        let (s, codes) = check(vec![with(|f| f.cluster_size = Some(1)), dead.clone(), dead]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(
            codes.contains(&"galera_unreachable".to_string()),
            "{codes:?}"
        );
    }

    #[test]
    fn a_donor_is_degraded_not_fail() {
        let donor = with(|f| f.local_state = Some("Donor/Desynced".into()));
        let (s, codes) = check(vec![synced(), synced(), donor]);
        assert_eq!(s, NodeStatus::Degraded);
        assert!(codes.contains(&"galera_donor".to_string()), "{codes:?}");
    }

    #[test]
    fn flow_control_and_read_only_are_flagged() {
        let slow = with(|f| f.flow_control_paused = Some(0.35));
        let ro = with(|f| f.read_only = Some(true));
        let (s, codes) = check(vec![synced(), slow, ro]);
        assert_eq!(s, NodeStatus::Degraded);
        assert!(
            codes.contains(&"galera_flow_control".to_string()),
            "{codes:?}"
        );
        assert!(codes.contains(&"galera_read_only".to_string()), "{codes:?}");
        // Exactly at the limit is not flagged.
        let edge = with(|f| f.flow_control_paused = Some(FLOW_CONTROL_LIMIT));
        assert_eq!(check(vec![synced(), synced(), edge]).0, NodeStatus::Ok);
    }

    #[test]
    fn two_state_uuids_among_primaries_is_fail() {
        let other = with(|f| f.state_uuid = Some("u2".into()));
        let (s, codes) = check(vec![synced(), synced(), other]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes.contains(&"galera_split".to_string()), "{codes:?}");
    }

    #[test]
    fn a_stale_member_is_fail_with_its_own_reason_and_unknown_facts_are_never_ok() {
        let mut nodes: Vec<NodeInput> = (1..=3).map(|i| node(i, synced())).collect();
        nodes[2].fresh = false;
        nodes[2].reasons = vec![codes::STALE
            .reason("last report 60 s ago")
            .on_node("galera3")];
        let view = full_rollup(&nodes, 0, &sized(3));
        let g = &view.services["galera"];
        assert_eq!(g.status, NodeStatus::Degraded);
        assert_eq!(g.nodes["galera3"].status, NodeStatus::Fail);
        assert_eq!(g.nodes["galera3"].reasons[0].code, "stale");
        // A reachable member whose answer lacks every variable is not OK.
        let (s, _) = check(vec![
            synced(),
            synced(),
            GaleraFacts {
                reachable: true,
                ..GaleraFacts::default()
            },
        ]);
        assert_ne!(s, NodeStatus::Ok);
    }

    #[test]
    fn a_required_service_with_no_member_is_fail_and_node_hosts_are_in_no_cloudify_view() {
        let view = full_rollup(&[], 0, &sized(3));
        assert_eq!(view.services["galera"].status, NodeStatus::Fail);
        assert_eq!(view.services["galera"].reasons[0].code, "no_nodes");
        let nodes: Vec<NodeInput> = (1..=3).map(|i| node(i, synced())).collect();
        let view = full_rollup(&nodes, 0, &sized(3));
        assert_eq!(view.services.keys().collect::<Vec<_>>(), ["galera"]);
        assert_eq!(view.status, NodeStatus::Ok);
    }
}
