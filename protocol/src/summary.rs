//! A tier-1 cluster's summary, as its collector pushes it to tier-2 collectors
//! (docs/protocol.md, section 4): the overall status, each service's status and reasons,
//! the nodes that are not OK (with whether they are silent and their last-seen age), the
//! managers' addresses and the cluster's name.
//!
//! [`Summary::decode`] is the one parser a tier-2 collector applies to a summary, after its
//! signature has verified: strict (unknown keys, a wrong version or a name that differs
//! from the path are errors) and bounded (lists capped, reason fields cut as in reports),
//! so what is stored and shown is never larger than these bounds.

use crate::model::{NodeStatus, Reason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The body's `version`.
pub const SUMMARY_VERSION: u32 = 1;
/// Default body limit at a tier-2 collector (`[fleet] max_summary_bytes`).
pub const DEFAULT_MAX_SUMMARY_BYTES: usize = 64 * 1024;
/// Nodes listed at most; the rest are counted in `nodes_omitted`.
pub const MAX_NODES: usize = 256;
pub const MAX_SERVICES: usize = 64;
pub const MAX_MANAGERS: usize = 32;
/// Longest service name, node name and manager address kept.
pub const MAX_NAME_LEN: usize = 128;
/// The path prefix of the tier-2 API.
pub const TIER2_PREFIX: &str = "/api/tier2/v1";

/// The path a summary of `cluster` is PUT to (and signed over).
pub fn summary_path(cluster: &str) -> String {
    format!("{TIER2_PREFIX}/clusters/{cluster}")
}

/// A cluster name is 1–64 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn valid_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub version: u32,
    pub cluster: String,
    /// The tier-1 push interval: a tier-2 reader can tell a late summary from a slow one.
    pub interval_secs: u32,
    pub status: NodeStatus,
    pub reasons: Vec<Reason>,
    pub services: BTreeMap<String, ServiceSummary>,
    pub nodes: Vec<NodeSummary>,
    pub nodes_total: u32,
    pub nodes_omitted: u32,
    pub managers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSummary {
    pub status: NodeStatus,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSummary {
    pub name: String,
    pub service: String,
    pub status: NodeStatus,
    /// Judged by its silence at tier 1 (`stale`, `no_report`): what healing acts on.
    pub silent: bool,
    /// Age of the node's newest report when the summary was built; `None`: never reported.
    pub last_seen_age_ms: Option<u64>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    #[error("summary is not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error("summary version {0} is not supported (expected {SUMMARY_VERSION})")]
    Version(u32),
    #[error("summary names cluster {found:?}, the path {expected:?}")]
    ClusterMismatch { expected: String, found: String },
    #[error("{0} has {1} entries, more than the limit {2}")]
    TooMany(&'static str, usize, usize),
    #[error("{0} is empty, longer than {MAX_NAME_LEN} bytes or holds control characters")]
    BadName(&'static str),
    #[error("interval_secs = {0} is out of range 1..=3600")]
    Interval(u32),
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && !s.chars().any(crate::model::is_hidden_char)
}

impl Summary {
    /// Parses and checks a summary that claims to be `cluster`'s. Lists past their bounds
    /// are refused (a tier-1 collector builds within them), reason lists are cut as in
    /// reports.
    pub fn decode(bytes: &[u8], cluster: &str) -> Result<Summary, SummaryError> {
        let mut s: Summary =
            serde_json::from_slice(bytes).map_err(|e| SummaryError::Shape(e.to_string()))?;
        if s.version != SUMMARY_VERSION {
            return Err(SummaryError::Version(s.version));
        }
        if s.cluster != cluster {
            return Err(SummaryError::ClusterMismatch {
                expected: cluster.chars().take(64).collect(),
                found: s.cluster.chars().take(64).collect(),
            });
        }
        if !(1..=3600).contains(&s.interval_secs) {
            return Err(SummaryError::Interval(s.interval_secs));
        }
        for (what, n, max) in [
            ("services", s.services.len(), MAX_SERVICES),
            ("nodes", s.nodes.len(), MAX_NODES),
            ("managers", s.managers.len(), MAX_MANAGERS),
        ] {
            if n > max {
                return Err(SummaryError::TooMany(what, n, max));
            }
        }
        if !s.services.keys().all(|k| name_ok(k)) {
            return Err(SummaryError::BadName("a service name"));
        }
        if !s.managers.iter().all(|m| name_ok(m)) {
            return Err(SummaryError::BadName("a manager address"));
        }
        if !s
            .nodes
            .iter()
            .all(|n| name_ok(&n.name) && name_ok(&n.service))
        {
            return Err(SummaryError::BadName("a node's name or service"));
        }
        crate::report::bound_reasons(&mut s.reasons);
        for sv in s.services.values_mut() {
            crate::report::bound_reasons(&mut sv.reasons);
        }
        for n in &mut s.nodes {
            crate::report::bound_reasons(&mut n.reasons);
        }
        Ok(s)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a summary always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "version": 1, "cluster": "east", "interval_secs": 10, "status": "Degraded",
            "reasons": [{"code": "degraded", "message": "2 of 3"}],
            "services": {"db": {"status": "Degraded", "reasons": []}},
            "nodes": [{"name": "db2", "service": "db", "status": "Fail", "silent": true,
                       "last_seen_age_ms": 41000, "reasons": [{"code": "stale", "message": "x"}]}],
            "nodes_total": 3, "nodes_omitted": 0, "managers": ["10.0.0.11"]
        })
    }

    fn decode(v: &serde_json::Value) -> Result<Summary, SummaryError> {
        Summary::decode(v.to_string().as_bytes(), "east")
    }

    /// The wire of version 1 is locked: the golden file decodes, and encodes back to the
    /// same document (no key renamed, added or dropped).
    #[test]
    fn the_golden_summary_is_the_wire() {
        let golden = include_str!("../tests/golden/summary-v1.json");
        let s = Summary::decode(golden.as_bytes(), "east").unwrap();
        let back: serde_json::Value = serde_json::from_slice(&s.encode()).unwrap();
        let want: serde_json::Value = serde_json::from_str(golden).unwrap();
        assert_eq!(back, want);
    }

    #[test]
    fn a_summary_round_trips() {
        let s = decode(&sample()).unwrap();
        assert_eq!(s.nodes[0].last_seen_age_ms, Some(41000));
        assert_eq!(Summary::decode(&s.encode(), "east").unwrap(), s);
    }

    #[test]
    fn malformed_truncated_and_mismatched_summaries_are_refused() {
        let text = sample().to_string();
        for cut in [0, 1, text.len() / 2, text.len() - 1] {
            assert!(matches!(
                Summary::decode(&text.as_bytes()[..cut], "east"),
                Err(SummaryError::Shape(_))
            ));
        }
        let mut v = sample();
        v["extra"] = json!(1);
        assert!(matches!(decode(&v), Err(SummaryError::Shape(_))));
        let mut v = sample();
        v["nodes"][0]["pid"] = json!(1);
        assert!(matches!(decode(&v), Err(SummaryError::Shape(_))));
        let mut v = sample();
        v["version"] = json!(2);
        assert_eq!(decode(&v), Err(SummaryError::Version(2)));
        assert!(matches!(
            Summary::decode(text.as_bytes(), "west"),
            Err(SummaryError::ClusterMismatch { .. })
        ));
        let mut v = sample();
        v["interval_secs"] = json!(0);
        assert_eq!(decode(&v), Err(SummaryError::Interval(0)));
        let mut v = sample();
        v["status"] = json!("Unreachable");
        assert!(matches!(decode(&v), Err(SummaryError::Shape(_))));
        let mut v = sample();
        v["nodes"][0]["name"] = json!("db\u{202e}2");
        assert!(matches!(decode(&v), Err(SummaryError::BadName(_))));
    }

    #[test]
    fn oversized_lists_are_refused_and_long_reasons_cut() {
        let mut v = sample();
        v["managers"] = json!(vec!["m"; MAX_MANAGERS + 1]);
        assert_eq!(
            decode(&v),
            Err(SummaryError::TooMany(
                "managers",
                MAX_MANAGERS + 1,
                MAX_MANAGERS
            ))
        );
        let mut v = sample();
        let node = v["nodes"][0].clone();
        v["nodes"] = json!(vec![node; MAX_NODES + 1]);
        assert!(matches!(
            decode(&v),
            Err(SummaryError::TooMany("nodes", _, _))
        ));
        let mut v = sample();
        v["reasons"] = json!(vec![
            json!({"code": "c", "message": "m".repeat(10_000)});
            40
        ]);
        let s = decode(&v).unwrap();
        assert_eq!(s.reasons.len(), crate::report::MAX_REASONS + 1);
        assert!(s.reasons[0].message.len() <= 600);
    }

    #[test]
    fn cluster_names_are_a_safe_path_segment() {
        for ok in ["east", "a.b_c-1", &"x".repeat(64)] {
            assert!(valid_cluster_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65), "é"] {
            assert!(!valid_cluster_name(bad), "{bad}");
        }
    }
}
