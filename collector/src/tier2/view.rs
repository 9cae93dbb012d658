//! Pure: each cluster's standing at tier 2 from its last summary and `now`. The only
//! judgement tier 2 adds to what the tier-1 roll-up said is the summary's own freshness:
//! none for `unreachable_after` is Unreachable, with the reason `cluster_unreachable`.

use serde::{Deserialize, Serialize};
use sr_protocol::reasons::CLUSTER_UNREACHABLE;
use sr_protocol::summary::Summary;
use sr_protocol::{NodeStatus, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClusterState {
    #[serde(rename = "OK")]
    Ok,
    Degraded,
    Fail,
    Unreachable,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Ok => "OK",
            ClusterState::Degraded => "Degraded",
            ClusterState::Fail => "Fail",
            ClusterState::Unreachable => "Unreachable",
        }
    }

    /// `cluster status`'s exit code: an Unreachable cluster is as bad as a Fail one
    /// (no data is never healthy); 3 stays "the tier-2 collector itself is unreachable".
    pub fn exit_code(self) -> i32 {
        match self {
            ClusterState::Ok => 0,
            ClusterState::Degraded => 1,
            ClusterState::Fail | ClusterState::Unreachable => 2,
        }
    }
}

impl From<NodeStatus> for ClusterState {
    fn from(s: NodeStatus) -> Self {
        match s {
            NodeStatus::Ok => ClusterState::Ok,
            NodeStatus::Degraded => ClusterState::Degraded,
            NodeStatus::Fail => ClusterState::Fail,
        }
    }
}

/// One cluster as `GET /api/tier2/v1/clusters` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub status: ClusterState,
    pub reasons: Vec<Reason>,
    pub received_at: Option<String>,
    pub age_ms: i64,
    pub managers: Vec<String>,
    pub nodes_total: u32,
    /// Listed nodes that are not OK, and how many of them are silent.
    pub nodes_unwell: u32,
    pub nodes_silent: u32,
}

/// Whether a summary received at `received_ms` is fresh at `now_ms`.
pub fn fresh(received_ms: i64, now_ms: i64, unreachable_after_ms: i64) -> bool {
    now_ms.saturating_sub(received_ms) <= unreachable_after_ms
}

pub fn judge(s: &Summary, received_ms: i64, now_ms: i64, unreachable_after_ms: i64) -> ClusterView {
    let age_ms = now_ms.saturating_sub(received_ms).max(0);
    let (status, reasons) = if fresh(received_ms, now_ms, unreachable_after_ms) {
        (ClusterState::from(s.status), s.reasons.clone())
    } else {
        (
            ClusterState::Unreachable,
            vec![CLUSTER_UNREACHABLE.reason(format!(
                "no summary from cluster {} for {} s (limit {} s); last said {}",
                s.cluster,
                age_ms / 1000,
                unreachable_after_ms / 1000,
                s.status
            ))],
        )
    };
    ClusterView {
        status,
        reasons,
        received_at: crate::rollup::rfc3339_ms(received_ms),
        age_ms,
        managers: s.managers.clone(),
        nodes_total: s.nodes_total,
        nodes_unwell: s.nodes.len() as u32 + s.nodes_omitted,
        nodes_silent: s.nodes.iter().filter(|n| n.silent).count() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(status: NodeStatus) -> Summary {
        Summary {
            version: 1,
            cluster: "east".into(),
            interval_secs: 10,
            status,
            reasons: vec![],
            services: Default::default(),
            nodes: vec![],
            nodes_total: 3,
            nodes_omitted: 0,
            managers: vec!["10.0.0.1".into()],
        }
    }

    #[test]
    fn a_fresh_summary_speaks_for_its_cluster_and_a_late_one_is_unreachable() {
        let s = summary(NodeStatus::Degraded);
        let v = judge(&s, 1_000, 31_000, 30_000);
        assert_eq!(v.status, ClusterState::Degraded);
        assert_eq!(v.age_ms, 30_000);
        let v = judge(&s, 1_000, 31_001, 30_000);
        assert_eq!(v.status, ClusterState::Unreachable);
        assert_eq!(v.reasons[0].code, "cluster_unreachable");
        assert_eq!(v.status.exit_code(), 2);
        // A summary from the future (clock stepped back) is fresh, age 0.
        assert_eq!(judge(&s, 50_000, 31_000, 30_000).age_ms, 0);
    }
}
