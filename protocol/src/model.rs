//! The shared vocabulary: node types, statuses and reasons.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The three kinds of node in a Cloudify-style HA cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Manager,
    Db,
    Broker,
}

impl NodeType {
    pub const ALL: [NodeType; 3] = [NodeType::Manager, NodeType::Db, NodeType::Broker];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Manager => "manager",
            NodeType::Db => "db",
            NodeType::Broker => "broker",
        }
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node type {0:?}: expected manager, db or broker")]
pub struct UnknownNodeType(pub String);

impl FromStr for NodeType {
    type Err = UnknownNodeType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manager" => Ok(NodeType::Manager),
            "db" => Ok(NodeType::Db),
            "broker" => Ok(NodeType::Broker),
            other => Err(UnknownNodeType(other.chars().take(64).collect())),
        }
    }
}

/// Health of a node, a service type or the whole cluster. Ordered from best to worst,
/// so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeStatus {
    #[serde(rename = "OK")]
    Ok,
    Degraded,
    Fail,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ok => "OK",
            NodeStatus::Degraded => "Degraded",
            NodeStatus::Fail => "Fail",
        }
    }

    /// The fixed exit code used by `probe` and `cluster status` (Nagios style).
    pub fn exit_code(self) -> i32 {
        match self {
            NodeStatus::Ok => 0,
            NodeStatus::Degraded => 1,
            NodeStatus::Fail => 2,
        }
    }

    /// The only values a Cloudify 5.0.5 manager accepts in `report.status` are `OK` and
    /// `Fail`. A Degraded node is still serving, so it is `OK` on the legacy wire; its
    /// real status travels in our extension.
    pub fn legacy(self) -> LegacyNodeStatus {
        match self {
            NodeStatus::Ok | NodeStatus::Degraded => LegacyNodeStatus::Ok,
            NodeStatus::Fail => LegacyNodeStatus::Fail,
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `report.status` on the legacy wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegacyNodeStatus {
    #[serde(rename = "OK")]
    Ok,
    Fail,
}

impl From<LegacyNodeStatus> for NodeStatus {
    fn from(s: LegacyNodeStatus) -> Self {
        match s {
            LegacyNodeStatus::Ok => NodeStatus::Ok,
            LegacyNodeStatus::Fail => NodeStatus::Fail,
        }
    }
}

/// A service's status on the legacy wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceStatus {
    Active,
    Inactive,
}

/// Why something is not OK: machine-readable `code`, human `message`, and the node it
/// concerns when there is one. Every non-OK status carries at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Longest reason message kept; longer ones are cut so a hostile probe response cannot
/// bloat every report and view.
pub const MAX_REASON_LEN: usize = 512;

impl Reason {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_REASON_LEN {
            let mut cut = MAX_REASON_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Reason {
            code: code.into(),
            message,
            node: None,
        }
    }

    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_is_max() {
        let all = [NodeStatus::Ok, NodeStatus::Fail, NodeStatus::Degraded];
        assert_eq!(all.iter().copied().max(), Some(NodeStatus::Fail));
    }

    #[test]
    fn degraded_is_ok_on_the_legacy_wire() {
        assert_eq!(NodeStatus::Degraded.legacy(), LegacyNodeStatus::Ok);
        assert_eq!(NodeStatus::Fail.legacy(), LegacyNodeStatus::Fail);
    }

    #[test]
    fn node_type_round_trips_and_rejects_unknown() {
        for t in NodeType::ALL {
            assert_eq!(t.as_str().parse::<NodeType>().unwrap(), t);
        }
        assert!("Manager".parse::<NodeType>().is_err());
        assert!("../db".parse::<NodeType>().is_err());
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let r = Reason::new("x", "é".repeat(600));
        assert!(r.message.len() <= MAX_REASON_LEN + '…'.len_utf8());
        assert!(r.message.ends_with('…'));
    }
}
