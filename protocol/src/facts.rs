//! Structured facts that probes report and the collector's cluster rules read.
//!
//! The legacy `extra_info` shapes are fixed by Cloudify 5.0.5 and too thin for a
//! quorum-aware roll-up, so the facts the roll-up needs are typed here instead. Every
//! field a probe may fail to learn is an `Option`: missing knowledge is never "healthy".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a db node knows about its Patroni member, its view of the cluster and etcd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DbFacts {
    /// Patroni member name (`name:` in patroni.yml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Normalised role from `/patroni`: `leader`, `replica`, `standby_leader`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// This member's replication lag in bytes, when it is a replica and it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    #[serde(default)]
    pub nofailover: bool,
    /// The leader this node's `/cluster` view names, if it could read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_leader: Option<String>,
    /// Members in this node's `/cluster` view: name → role/state/lag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_members: BTreeMap<String, MemberView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcs_reachable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_lag_on_failover: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdFacts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub role: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// Bytes; `None` when Patroni says `"unknown"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    #[serde(default)]
    pub nofailover: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtcdFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// `/health` (needs quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// What a broker node knows about itself and how it sees the RabbitMQ cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerFacts {
    /// This node's RabbitMQ name, e.g. `rabbit@host1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Every member as this node sees it: name → running.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_view: BTreeMap<String, bool>,
    /// Peers this node reports a partition with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_alarm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp_ok: Option<bool>,
}
