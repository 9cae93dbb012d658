//! The `objectstore` rule (MinIO, distributed erasure-coded): the cluster serves while
//! some member's `/minio/health/cluster` says it has write quorum; a node that is down
//! while quorum holds is Degraded, not Fail.
//!
//! A member is judged from its own facts ([`member_verdicts`], the same reading the agent's
//! `minio` probe shows): live down, not initialised, the cluster check 503 (no write
//! quorum as that node sees it) or unusable is Fail for the node; `?maintenance=true`
//! answering 412 (taking this node down would lose quorum) and healing drives are
//! Degraded. The service, composed by [`rollup`]:
//! - [`capped`]: while at least one member serves (live, initialised, cluster 200), every
//!   other member's Fail counts as Degraded: the cluster still has quorum, only its
//!   margin is gone. When none serves, the members' reasons stand at Fail: a cluster check
//!   answering 503 everywhere is Fail;
//! - [`members_missing`]: fewer members reporting than the configured size, Degraded.

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::ObjectstoreFacts;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};

/// What one member's facts say ([`ObjectstoreFacts::own_verdicts`]), naming the member.
pub fn member_verdicts(f: &ObjectstoreFacts, node: &str) -> Vec<Verdict> {
    stack::tagged(f.own_verdicts(), node)
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(
        node,
        |f| f.objectstore.as_ref(),
        member_verdicts,
        |f| {
            Some(match f.cluster_status {
                Some(200) => "quorum".into(),
                Some(s) => format!("cluster {s}"),
                None => "no answer".into(),
            })
            .filter(|_| f.reachable)
        },
    )
}

fn is_serving(j: &Judged) -> bool {
    stack::standing(j.node).is_none()
        && j.node
            .facts
            .as_ref()
            .and_then(|f| f.objectstore.as_ref())
            .is_some_and(ObjectstoreFacts::serving)
}

/// Each member's reasons at its status, capped at Degraded while another member serves
/// (and there are several): the cluster keeps write quorum without it.
pub fn capped(judged: &[Judged]) -> Vec<Verdict> {
    let serving = judged.iter().filter(|j| is_serving(j)).count();
    judged
        .iter()
        .flat_map(|j| {
            let cap = if serving >= 1 && judged.len() > 1 {
                NodeStatus::Degraded
            } else {
                NodeStatus::Fail
            };
            j.reasons
                .iter()
                .map(move |r| (j.status.min(cap), r.clone()))
        })
        .collect()
}

/// Fewer members reporting than configured: Degraded (a node whose agent never reported
/// is not known to be serving).
pub fn members_missing(reporting: usize, size: usize) -> Option<Verdict> {
    (reporting < size).then(|| {
        (
            NodeStatus::Degraded,
            codes::OBJECTSTORE_MEMBERS_MISSING
                .reason(format!("{reporting} of {size} MinIO members report")),
        )
    })
}

/// Status and reasons of the `objectstore` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    let mut verdicts = capped(&judged);
    verdicts.extend(members_missing(judged.len(), size));
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::StackService;
    use sr_protocol::report::Facts;

    fn healthy() -> ObjectstoreFacts {
        ObjectstoreFacts {
            reachable: true,
            cluster_status: Some(200),
            write_quorum: Some(3),
            ..ObjectstoreFacts::default()
        }
    }

    fn with(f: impl FnOnce(&mut ObjectstoreFacts)) -> ObjectstoreFacts {
        let mut x = healthy();
        f(&mut x);
        x
    }

    fn check(members: Vec<ObjectstoreFacts>, size: u32) -> (NodeStatus, Vec<String>) {
        let facts = members
            .into_iter()
            .map(|f| Facts {
                objectstore: Some(f),
                ..Facts::default()
            })
            .collect();
        let s = stack::test_view(StackService::Objectstore, size, "minio", facts);
        (s.status, s.reasons.iter().map(|r| r.code.clone()).collect())
    }

    fn down() -> ObjectstoreFacts {
        ObjectstoreFacts {
            reachable: false,
            error: Some("cannot connect: Connection refused".into()),
            ..ObjectstoreFacts::default()
        }
    }

    #[test]
    fn every_node_with_quorum_is_ok() {
        assert_eq!(
            check(vec![healthy(), healthy(), healthy(), healthy()], 4),
            (NodeStatus::Ok, vec![])
        );
    }

    #[test]
    fn a_node_down_with_quorum_intact_is_degraded() {
        assert_eq!(
            check(vec![healthy(), healthy(), healthy(), down()], 4),
            (
                NodeStatus::Degraded,
                vec!["objectstore_unreachable".to_string()]
            )
        );
    }

    #[test]
    fn cluster_503_everywhere_is_fail() {
        let no_quorum = || with(|f| f.cluster_status = Some(503));
        let (s, c) = check(vec![no_quorum(), no_quorum(), down(), down()], 4);
        assert_eq!(s, NodeStatus::Fail);
        assert!(c.contains(&"objectstore_no_quorum".to_string()), "{c:?}");
    }

    #[test]
    fn maintenance_412_is_degraded_with_its_reason() {
        let m = with(|f| f.maintenance_status = Some(412));
        assert_eq!(
            check(vec![m, healthy()], 2),
            (
                NodeStatus::Degraded,
                vec!["objectstore_maintenance".to_string()]
            )
        );
    }

    #[test]
    fn a_member_never_reporting_is_degraded_and_a_lone_bad_answer_fail() {
        assert_eq!(
            check(vec![healthy(), healthy(), healthy()], 4),
            (
                NodeStatus::Degraded,
                vec!["objectstore_members_missing".to_string()]
            )
        );
        let garbled = with(|f| {
            f.cluster_status = Some(200);
            f.cluster_error = Some("X-Minio-Write-Quorum missing".into());
        });
        assert_eq!(check(vec![garbled], 1).0, NodeStatus::Fail);
    }
}
