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
    /// The node's own name, given only when the row's key is not it: two nodes of the type
    /// share a (confusable) name, so the key is `name (short node id)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// No member of the service lists this reporter in its view of the membership: it is
    /// shown, and counts for neither the quorum nor OK.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unvouched: bool,
}

/// `GET /managers`, `/brokers`, `/db-nodes`: Cloudify's list shape.
///
/// Written, never read back: the items of the three lists differ (see [`ListKind`]), and
/// only the 5.0.5 readers (`cfy`, the Python reporter) and our agent's `configure` parse them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeList {
    pub items: Vec<NodeListItem>,
    pub metadata: ListMetadata,
}

/// One node of a list: the keys every list shares, then those of its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// 5.0.5's network map, `{"default": <private_ip>}` (empty when the address is unknown).
    /// `cfy cluster brokers list/get` print it and 5.0.5 reporters connect through it.
    pub networks: BTreeMap<String, String>,
    /// True for the stand-in entry a list carries while no node of its type has reported
    /// (the collector itself): 5.0.5's `cfy profiles use` fails on an empty list, and its
    /// reporter would save an empty manager list and never report again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
    #[serde(flatten)]
    pub kind: ListKind,
}

/// The keys only one list has, as 5.0.5's REST service answers them (`cfy`'s
/// `MANAGER_COLUMNS`, `BROKER_COLUMNS`, `DB_COLUMNS`, and the keys its
/// `cluster update-profile` reads).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ListKind {
    Manager {
        edition: String,
        distribution: Option<String>,
        distro_release: Option<String>,
    },
    Broker {
        /// The address clients connect to: the node's private address.
        host: Option<String>,
        /// The AMQP port, unknown to the collector: `null`, which `cfy` shows as 5.0.5's
        /// default, 5671.
        port: Option<u16>,
        /// A node with an agent is one we run, never an external service.
        is_external: bool,
    },
    Db {
        host: Option<String>,
        is_external: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListMetadata {
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
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
