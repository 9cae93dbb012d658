//! What readers get: `GET /api/v3.1/cluster-status` and the node list endpoints.
//!
//! The shape is Cloudify 5.0.5's, so `cfy cluster status` parses it. Our additions
//! (`reasons`, `role`, `last_seen`, `skew_ms`, `flapping`, `key_mismatch`, ...) are extra
//! keys the legacy readers ignore.

use crate::model::{NodeStatus, Reason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub status: NodeStatus,
    /// `manager`, `db`, `broker`. Empty with `?summary=true`.
    pub services: BTreeMap<String, ServiceTypeView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceTypeView {
    pub status: NodeStatus,
    pub is_external: bool,
    /// Keyed by node name.
    pub nodes: BTreeMap<String, NodeView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub status: NodeStatus,
    pub node_id: String,
    pub version: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    /// The node's legacy `report.services`, or `{}` when it has no valid report.
    pub services: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Collector receive time of the last accepted report, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Reporter clock minus collector clock at receipt, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
    #[serde(default)]
    pub flapping: bool,
    #[serde(default)]
    pub key_mismatch: bool,
    #[serde(default)]
    pub signed: bool,
}

/// `GET /managers`, `/brokers`, `/db-nodes`: Cloudify's list shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    pub items: Vec<NodeListItem>,
    pub metadata: ListMetadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeListItem {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub node_id: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListMetadata {
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pagination {
    pub total: usize,
    pub size: usize,
    pub offset: usize,
}

impl NodeList {
    pub fn new(items: Vec<NodeListItem>) -> Self {
        let total = items.len();
        NodeList {
            items,
            metadata: ListMetadata {
                pagination: Pagination {
                    total,
                    size: total.max(1000),
                    offset: 0,
                },
            },
        }
    }
}
