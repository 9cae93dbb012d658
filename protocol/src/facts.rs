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
    /// Whether this node's Patroni REST API answered `/patroni` this cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patroni_reachable: Option<bool>,
    /// Whether the local PostgreSQL accepted the monitoring connection this cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_running: Option<bool>,
    /// `pg_is_in_recovery()`: a PostgreSQL that is not in recovery accepts writes, whatever
    /// Patroni says (after a SIGKILLed Patroni the old primary keeps running read-write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_recovery: Option<bool>,
    /// Patroni maintenance mode (`pause`): no automatic failover while it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// `pg_is_wal_replay_paused()` / `xlog.paused` on a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_paused: Option<bool>,
    /// Patroni sees no leader lock in the DCS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_unlocked: Option<bool>,
    /// Unix seconds of Patroni's last successful DCS contact; it freezes while etcd is
    /// unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcs_last_seen: Option<i64>,
    /// Patroni's leader-key TTL in seconds (`/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// How old `cluster_members` was when the report was built: `/cluster` is read at a
    /// lower rate than `/patroni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_view_age_s: Option<u64>,
    /// The leader's walsenders as Patroni lists them (`replication[]`), by application name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication: BTreeMap<String, ReplicationView>,
    /// Exact replay lag per standby in bytes, measured on the primary with
    /// `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`, by application name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_lag_bytes: BTreeMap<String, u64>,
}

/// One walsender on the leader.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicationView {
    /// `streaming`, `catchup`, `startup`, ...
    pub state: String,
    /// `async`, `sync`, `quorum`, `potential`.
    pub sync_state: String,
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
    /// `status.raftIndex - status.raftAppliedIndex`: entries committed but not yet applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_backlog: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_learner: Option<bool>,
    /// Whether the local member answered `/v3/maintenance/status` (needs no quorum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
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
    /// The broker sent `connection.blocked` to the AMQP check: a resource alarm somewhere
    /// in the cluster is blocking publishers (not necessarily on this node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp_blocked: Option<bool>,
}
