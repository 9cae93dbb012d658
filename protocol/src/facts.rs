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

/// What a Galera (MariaDB) node reports of itself (`SHOW GLOBAL STATUS LIKE 'wsrep_%'` and
/// `@@read_only`). A node is a member of the `galera` service by carrying these facts; the
/// probe writes them with `reachable: false` when MariaDB does not answer, so a dead
/// server stays a member and is judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GaleraFacts {
    /// The status query answered this cycle.
    pub reachable: bool,
    /// Why it did not (connect refused, timeout, ...), bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `wsrep_ready`: the node accepts queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// `wsrep_connected`: the provider is connected to the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`, `Joined`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_state: Option<String>,
    /// `wsrep_cluster_status`: `Primary`, `non-Primary` or `Disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_status: Option<String>,
    /// `wsrep_cluster_size`: members of the component this node is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u32>,
    /// `wsrep_cluster_conf_id`: the component's configuration id; two Primary components
    /// with different ids are two clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_id: Option<u64>,
    /// `wsrep_cluster_state_uuid`: the history the node's data belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_uuid: Option<String>,
    /// `wsrep_flow_control_paused`: the fraction of time replication was paused by flow
    /// control (since the last `FLUSH STATUS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_control_paused: Option<f64>,
    /// `@@read_only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl GaleraFacts {
    /// Flow control paused more than this fraction of the time is flagged (near 1.0 the
    /// cluster is stalled; 0.1 is the usual alert line).
    pub const FLOW_CONTROL_LIMIT: f64 = 0.1;

    /// The component is Primary (wsrep's spelling, compared exactly).
    pub fn primary(&self) -> bool {
        self.cluster_status.as_deref() == Some("Primary")
    }

    /// What these facts say of their own node: the one reading both the agent's probe
    /// (the node's status) and the roll-up (the member's status in `galera`) use.
    /// Unreachable, non-Primary (a partition) or not ready is Fail; a donor/desynced or
    /// joining node, flow control over the limit and `read_only` are Degraded. Unknown
    /// values are never read as healthy.
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no answer");
            return vec![(
                Fail,
                codes::GALERA_UNREACHABLE,
                format!("MariaDB did not answer: {why}"),
            )];
        }
        let mut out = Vec::new();
        if !self.primary() {
            out.push((
                Fail,
                codes::GALERA_NON_PRIMARY,
                format!(
                    "component is {} (size {}): cut off from the quorum",
                    self.cluster_status.as_deref().unwrap_or("unknown"),
                    self.cluster_size
                        .map_or("unknown".into(), |s| s.to_string())
                ),
            ));
        }
        if self.ready != Some(true) {
            out.push((
                Fail,
                codes::GALERA_NOT_READY,
                "wsrep_ready is not ON: queries are refused".into(),
            ));
        }
        match self.local_state.as_deref() {
            Some("Synced") => {}
            Some(s) if s.starts_with("Donor") || s.contains("Desynced") => out.push((
                Degraded,
                codes::GALERA_DONOR,
                format!("state {s}: serving, may lag"),
            )),
            s => out.push((
                Degraded,
                codes::GALERA_NOT_SYNCED,
                format!("state {}", s.unwrap_or("unknown")),
            )),
        }
        if let Some(p) = self
            .flow_control_paused
            .filter(|p| *p > Self::FLOW_CONTROL_LIMIT)
        {
            out.push((
                Degraded,
                codes::GALERA_FLOW_CONTROL,
                format!("flow control paused {:.0} % of the time", p * 100.0),
            ));
        }
        if self.read_only == Some(true) {
            out.push((Degraded, codes::GALERA_READ_ONLY, "read_only is ON".into()));
        }
        out
    }
}

/// What an HAProxy node reports of its backends (stats socket `show stat`). A node is a
/// member of the `lb` service by carrying these facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LbFacts {
    /// The stats socket answered this cycle.
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Backend name → its servers. At most [`LbFacts::MAX_ENTRIES`] backends, each with at
    /// most as many servers; `truncated` says when more were cut.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, LbBackend>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl LbFacts {
    /// Backends per node and servers per backend kept (facts are bounded at 16 KiB).
    pub const MAX_ENTRIES: usize = 64;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LbBackend {
    /// Server name → what HAProxy says of it.
    #[serde(default)]
    pub servers: BTreeMap<String, LbServer>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LbServer {
    /// HAProxy's `status`: `UP`, `DOWN`, `MAINT`, `DRAIN`, `NOLB`, `UP 1/3` (going down),
    /// `DOWN 1/2` (going up), `no check`.
    pub status: String,
    /// `check_status`: `L4OK`, `L4CON`, `L7STS`, ... (absent without health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_status: Option<String>,
    /// `lastchg`: seconds since the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_s: Option<u64>,
}

impl LbServer {
    /// Takes new traffic: `UP`, `UP n/m` (still up while checks fail) or `no check`.
    pub fn serving(&self) -> bool {
        self.status == "UP" || self.status.starts_with("UP ") || self.status == "no check"
    }

    /// Held out by an operator: `MAINT`, `MAINT (via b/s)`, `DRAIN`, `DRAIN 1/2` (HAProxy
    /// appends the check's progress or the tracked server).
    pub fn held(&self) -> bool {
        self.status.starts_with("MAINT") || self.status.starts_with("DRAIN")
    }
}

impl LbBackend {
    /// The `lb` rule for one backend as one HAProxy node sees it: every server up is OK,
    /// some down is Degraded naming them, none up is Fail; MAINT/DRAIN are shown as such
    /// (Degraded). The agent's `haproxy` probe and the roll-up both read it.
    pub fn verdicts(
        &self,
        name: &str,
    ) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        let total = self.servers.len();
        let up = self.servers.values().filter(|s| s.serving()).count();
        let held: Vec<String> = self
            .servers
            .iter()
            .filter(|(_, s)| s.held())
            .map(|(n, s)| format!("{n} ({})", s.status))
            .collect();
        let down: Vec<String> = self
            .servers
            .iter()
            .filter(|(_, s)| !s.serving() && !s.held())
            .map(|(n, s)| match &s.check_status {
                Some(c) => format!("{n} ({} {c})", s.status),
                None => format!("{n} ({})", s.status),
            })
            .collect();
        if total > 0 && up == 0 {
            let mut all = down;
            all.extend(held);
            return vec![(
                Fail,
                codes::LB_BACKEND_DOWN,
                format!(
                    "backend {name}: no server up of {total}: {}",
                    all.join(", ")
                ),
            )];
        }
        let mut out = Vec::new();
        if !down.is_empty() {
            out.push((
                Degraded,
                codes::LB_SERVER_DOWN,
                format!(
                    "backend {name}: {up} of {total} up; down: {}",
                    down.join(", ")
                ),
            ));
        }
        if !held.is_empty() {
            out.push((
                Degraded,
                codes::LB_SERVER_MAINT,
                format!("backend {name}: {}", held.join(", ")),
            ));
        }
        out
    }
}

impl LbFacts {
    /// What these facts say of their own node: an unreachable stats socket is Fail, then
    /// each backend by [`LbBackend::verdicts`].
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no answer");
            return vec![(
                crate::NodeStatus::Fail,
                crate::reasons::LB_UNREACHABLE,
                format!("HAProxy stats socket: {why}"),
            )];
        }
        let mut out: Vec<_> = self
            .backends
            .iter()
            .flat_map(|(name, b)| b.verdicts(name))
            .collect();
        // A cut list may have dropped exactly the servers that are down: never a silent OK.
        if self.truncated {
            out.push((
                crate::NodeStatus::Degraded,
                crate::reasons::LB_TRUNCATED,
                format!(
                    "more backends or servers than the {} kept; the rest are not judged",
                    self.backends
                        .values()
                        .map(|b| b.servers.len())
                        .sum::<usize>()
                ),
            ));
        }
        out
    }
}

/// What a keepalived node reports (its SIGUSR1 data dump, and the addresses on its own
/// interfaces). A node is a member of the `vip` service by carrying these facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VipFacts {
    /// keepalived wrote its data file this cycle.
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// VRRP instance name → its state here. At most [`VipFacts::MAX_ENTRIES`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instances: BTreeMap<String, VrrpInstance>,
    /// The VIPs (of the instances, and the probe's configured `vips`) this node's
    /// interfaces carry. Read also when keepalived does not answer: a SIGKILLed keepalived
    /// leaves its VIP on the interface (lab.md §H), and that is a split brain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One VRRP instance as its node's keepalived dumps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstance {
    /// `State =`: `MASTER`, `BACKUP`, `FAULT`, `INIT` or `STOP`.
    pub state: String,
    /// `Effective priority =`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The instance's virtual addresses (`Virtual IP (n):`), without prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<String>,
}

impl VipFacts {
    /// Instances per node and VIPs per instance kept (facts are bounded at 16 KiB).
    pub const MAX_ENTRIES: usize = 64;

    /// Whether this node's interfaces carry `vip`.
    pub fn holds(&self, vip: &str) -> bool {
        self.held.iter().any(|h| h == vip)
    }

    /// What these facts say of their own node: keepalived not answering is Fail; an
    /// instance in FAULT is Degraded; a MASTER whose VIP is not on the node's interfaces is
    /// Degraded. Whether the instance has exactly one MASTER is the roll-up's question.
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        let mut out = Vec::new();
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no data file");
            out.push((Fail, codes::VIP_UNREACHABLE, format!("keepalived: {why}")));
        }
        for (name, i) in &self.instances {
            if i.state == "FAULT" {
                out.push((Degraded, codes::VIP_FAULT, format!("{name}: FAULT")));
            }
            let missing: Vec<&str> = i
                .vips
                .iter()
                .filter(|v| !self.holds(v))
                .map(String::as_str)
                .collect();
            if i.state == "MASTER" && !missing.is_empty() {
                out.push((
                    Degraded,
                    codes::VIP_NOT_HELD,
                    format!("{name}: MASTER without {}", missing.join(", ")),
                ));
            }
        }
        if self.truncated {
            out.push((
                Degraded,
                codes::VIP_TRUNCATED,
                format!(
                    "more VRRP instances or VIPs than the {} kept; the rest are not judged",
                    self.instances.len()
                ),
            ));
        }
        out
    }

    /// The view's role: the state of each instance (`MASTER`, or `VI_1=MASTER,VI_2=BACKUP`).
    pub fn role(&self) -> Option<String> {
        match self.instances.len() {
            0 => None,
            1 => self.instances.values().next().map(|i| i.state.clone()),
            _ => Some(
                self.instances
                    .iter()
                    .map(|(n, i)| format!("{n}={}", i.state))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

/// The stack services: those a node belongs to by its facts, not by its node type. The
/// name is the view's `services` key, the `facts` key and the `[services.<name>]` config
/// table. (`pacemaker`, `search` and `objectstore` join here with their facts.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackService {
    Galera,
    Lb,
    Vip,
    Search,
    Objectstore,
    Pacemaker,
}

impl StackService {
    pub const ALL: [StackService; 6] = [
        StackService::Galera,
        StackService::Lb,
        StackService::Vip,
        StackService::Search,
        StackService::Objectstore,
        StackService::Pacemaker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StackService::Galera => "galera",
            StackService::Lb => "lb",
            StackService::Vip => "vip",
            StackService::Search => "search",
            StackService::Objectstore => "objectstore",
            StackService::Pacemaker => "pacemaker",
        }
    }

    /// Whether `facts` make their node a member of this service.
    pub fn has_member(self, facts: &crate::report::Facts) -> bool {
        match self {
            StackService::Galera => facts.galera.is_some(),
            StackService::Lb => facts.lb.is_some(),
            StackService::Vip => facts.vip.is_some(),
            StackService::Search => facts.search.is_some(),
            StackService::Objectstore => facts.objectstore.is_some(),
            StackService::Pacemaker => facts.pacemaker.is_some(),
        }
    }
}

impl std::fmt::Display for StackService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StackService {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StackService::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown service {:?}: expected one of {}",
                    s.chars().take(64).collect::<String>(),
                    StackService::ALL.map(StackService::as_str).join(", ")
                )
            })
    }
}

/// Every service a view's `services` map can hold, by its key: the Cloudify types
/// ([`crate::NodeType::ALL`]), then the stack services ([`StackService::ALL`]). These, besides
/// a node, are what a maintenance window can name; help and error texts list them from here
/// so they never fall behind a new service.
pub fn service_names() -> impl Iterator<Item = &'static str> {
    crate::NodeType::ALL
        .into_iter()
        .map(crate::NodeType::as_str)
        .chain(StackService::ALL.into_iter().map(StackService::as_str))
}

/// [`service_names`] as a comma-separated list: `manager, db, broker, galera, lb, ...`.
pub fn service_list() -> String {
    service_names().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod service_names_tests {
    #[test]
    fn every_cloudify_type_and_stack_service_is_listed_once() {
        let names: Vec<&str> = super::service_names().collect();
        assert_eq!(names.len(), 3 + super::StackService::ALL.len());
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for s in [
            "manager",
            "db",
            "broker",
            "galera",
            "lb",
            "vip",
            "pacemaker",
            "search",
            "objectstore",
        ] {
            assert!(names.contains(&s), "{s} missing from {names:?}");
        }
        assert!(super::service_list().starts_with("manager, db, broker, galera"));
    }
}

/// What an OpenSearch node reports (`GET /`, `GET /_cluster/health`, `GET /_cat/nodes`). A
/// node is a member of the `search` service by carrying these facts; the probe writes them
/// with `reachable: false` when OpenSearch does not answer, so a dead node stays a member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchFacts {
    /// `/_cluster/health` answered with a health document this cycle.
    pub reachable: bool,
    /// Why it did not, bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status of a refusal (401, 403, 5xx): 401/403 are a credentials problem,
    /// not a dead server, and are reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// This node's name (`GET /` `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// `GET /` `cluster_uuid`: two clusters bootstrapped apart share a name, not this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_uuid: Option<String>,
    /// `GET /` `version.number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `green`, `yellow` or `red`, as OpenSearch spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_data_nodes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unassigned_shards: Option<u64>,
    /// `active_shards_percent_as_number`, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_shards_percent: Option<f64>,
    /// `_cat/nodes`: node name → its `node.role` letters (`dimr`, `-` for coordinating
    /// only). At most [`SearchFacts::MAX_NODES`]; `truncated` says when more were cut.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, String>,
    /// The node `_cat/nodes` marks `*` (the elected cluster manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_manager: Option<String>,
    /// Why `_cat/nodes` gave no list (the health answer is still used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl SearchFacts {
    /// Nodes kept from `_cat/nodes` (facts are bounded at 16 KiB).
    pub const MAX_NODES: usize = 64;

    /// The cluster's name for reasons.
    pub fn cluster(&self) -> &str {
        self.cluster_name.as_deref().unwrap_or("(unnamed)")
    }

    /// What these facts say of the node itself: no health document is Fail, a refusal of
    /// the probe's credentials named as such. The roll-up judges members by this alone and
    /// the cluster's colour once, for the service ([`SearchFacts::cluster_verdicts`]).
    pub fn node_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::Fail;
        let mut out = Vec::new();
        let auth = |s: u16| matches!(s, 401 | 403);
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no answer");
            let code = match self.http_status {
                Some(s) if auth(s) => codes::SEARCH_AUTH,
                _ => codes::SEARCH_UNREACHABLE,
            };
            out.push((Fail, code, format!("OpenSearch /_cluster/health: {why}")));
        } else if let Some(e) = self
            .nodes_error
            .as_deref()
            .filter(|e| e.contains("HTTP 401") || e.contains("HTTP 403"))
        {
            // Health is readable but the node list is not: the monitoring role lacks a
            // permission, which an operator must fix before it hides a real problem.
            out.push((
                Fail,
                codes::SEARCH_AUTH,
                format!("OpenSearch /_cat/nodes: {e}"),
            ));
        }
        out
    }

    /// What the health document says of the cluster: red Fail, yellow Degraded naming the
    /// unassigned shards, any other colour unknown (Fail), `timed_out` Degraded.
    pub fn cluster_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        if !self.reachable {
            return Vec::new();
        }
        let shards = format!(
            "{} unassigned shards, {} active",
            self.unassigned_shards
                .map_or("unknown".into(), |n| n.to_string()),
            self.active_shards_percent
                .map_or("unknown".into(), |p| format!("{p:.1} %"))
        );
        let mut out = Vec::new();
        match self.status.as_deref() {
            Some("green") => {}
            Some("yellow") => out.push((
                Degraded,
                codes::SEARCH_YELLOW,
                format!("cluster {} is yellow: {shards}", self.cluster()),
            )),
            Some("red") => out.push((
                Fail,
                codes::SEARCH_RED,
                format!("cluster {} is red: {shards}", self.cluster()),
            )),
            other => out.push((
                Fail,
                codes::SEARCH_UNREACHABLE,
                format!(
                    "cluster {}: health status {:?} is not green, yellow or red",
                    self.cluster(),
                    other.unwrap_or("missing")
                ),
            )),
        }
        if self.timed_out == Some(true) {
            out.push((
                Degraded,
                codes::SEARCH_HEALTH_TIMED_OUT,
                format!("cluster {}: the health request timed out", self.cluster()),
            ));
        }
        out
    }

    /// Everything these facts say, as the agent's own finding shows it.
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        let mut out = self.node_verdicts();
        out.extend(self.cluster_verdicts());
        out
    }

    /// The view's role: this node's `node.role` letters, `*` appended when it is the
    /// elected cluster manager.
    pub fn role(&self) -> Option<String> {
        let name = self.node_name.as_ref()?;
        let roles = self.nodes.get(name)?;
        let elected = self.cluster_manager.as_ref() == Some(name);
        Some(format!("{roles}{}", if elected { " *" } else { "" }))
    }
}

/// What a MinIO node reports (`/minio/health/live`, `/minio/health/cluster`, and
/// `/minio/health/cluster?maintenance=true` when configured). A node is a member of the
/// `objectstore` service by carrying these facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectstoreFacts {
    /// `/minio/health/live` answered 200 this cycle.
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `X-Minio-Server-Status` (`offline`, `bucket-metadata-offline`, `iam-offline`): set
    /// only while the server is not initialised; live still answers 200 then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_status: Option<String>,
    /// The HTTP status of `/minio/health/cluster`: 200 write quorum, 503 none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_status: Option<u16>,
    /// Why the cluster check gave no usable answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_error: Option<String>,
    /// `X-Minio-Write-Quorum`: drives per erasure set needed for writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_quorum: Option<u32>,
    /// `X-Minio-Healing-Drives` (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healing_drives: Option<u32>,
    /// The HTTP status of `?maintenance=true`, when asked: 200 this node can go down, 412
    /// it cannot without losing quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_status: Option<u16>,
    /// Why `?maintenance=true` gave no answer, when it was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_error: Option<String>,
}

impl ObjectstoreFacts {
    /// The node serves and sees write quorum: live 200, initialised, cluster 200.
    pub fn serving(&self) -> bool {
        self.reachable
            && self.server_status.is_none()
            && self.cluster_status == Some(200)
            && self.cluster_error.is_none()
    }

    /// What these facts say of their own node: live down Fail; not initialised Fail; the
    /// cluster check 503 Fail (no write quorum as this node sees it) or unusable Fail;
    /// `?maintenance=true` 412 Degraded (taking this node down would lose quorum); drives
    /// healing Degraded. Whether one node down leaves the cluster serving is the roll-up's
    /// question.
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no answer");
            return vec![(
                Fail,
                codes::OBJECTSTORE_UNREACHABLE,
                format!("MinIO /minio/health/live: {why}"),
            )];
        }
        let mut out = Vec::new();
        if let Some(s) = &self.server_status {
            out.push((
                Fail,
                codes::OBJECTSTORE_OFFLINE,
                format!("MinIO is not initialised: X-Minio-Server-Status {s}"),
            ));
        }
        let quorum = self
            .write_quorum
            .map_or("unknown".into(), |q| q.to_string());
        match (self.cluster_status, &self.cluster_error) {
            (Some(200), None) => {}
            (Some(503), _) if self.server_status.is_none() => out.push((
                Fail,
                codes::OBJECTSTORE_NO_QUORUM,
                format!(
                    "/minio/health/cluster 503: write quorum ({quorum} drives per set) not met"
                ),
            )),
            (Some(503), _) => {}
            (status, error) => out.push((
                Fail,
                codes::OBJECTSTORE_BAD_ANSWER,
                format!(
                    "/minio/health/cluster: {}",
                    error.clone().unwrap_or_else(|| match status {
                        Some(s) => format!("unexpected HTTP {s}"),
                        None => "no answer".into(),
                    })
                ),
            )),
        }
        if let Some(e) = &self.maintenance_error {
            out.push((
                Degraded,
                codes::OBJECTSTORE_MAINTENANCE,
                format!("?maintenance=true: {e}: whether this node can go down is unknown"),
            ));
        }
        match self.maintenance_status {
            None | Some(200) => {}
            Some(412) => out.push((
                Degraded,
                codes::OBJECTSTORE_MAINTENANCE,
                "?maintenance=true answered 412: taking this node down would lose write quorum"
                    .into(),
            )),
            Some(s) => out.push((
                Degraded,
                codes::OBJECTSTORE_MAINTENANCE,
                format!(
                    "?maintenance=true answered HTTP {s}: whether this node can go down is unknown"
                ),
            )),
        }
        if let Some(n) = self.healing_drives.filter(|n| *n > 0) {
            out.push((
                Degraded,
                codes::OBJECTSTORE_HEALING,
                format!("{n} drives healing"),
            ));
        }
        out
    }
}

/// What a Pacemaker node reports: its `crm_mon --output-as=xml` view of the whole cluster
/// (every node sees every node and resource), and which node it is (`me`). A node is a member
/// of the `pacemaker` service by carrying these facts; the probe writes them with
/// `reachable: false` when `crm_mon` does not answer, so a dead node stays a member and is
/// judged. Lists are bounded ([`PacemakerFacts::MAX_ENTRIES`]); `truncated` says when
/// entries were cut (healthy ones first: a problem is never the one dropped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacemakerFacts {
    /// `crm_mon` answered with a cluster status this cycle.
    pub reachable: bool,
    /// Why not (not connected, timeout, malformed XML, ...), bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This node's Pacemaker name (the probe's `node_name`, else the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub me: Option<String>,
    /// `current_dc with_quorum`: the partition this node is in has quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_quorum: Option<bool>,
    /// `current_dc present`: a Designated Controller is elected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_present: Option<bool>,
    /// The DC's node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    /// Cluster property `maintenance-mode`: no resource is managed while it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_mode: Option<bool>,
    /// Cluster property `stonith-enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stonith_enabled: Option<bool>,
    /// Node name → its state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, PcmkNode>,
    /// Every primitive (a clone's copies and a group's members one entry each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<PcmkResource>,
    /// Failed operations (`<failures>`) until a cleanup or `failure-timeout`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_actions: Vec<PcmkFailedAction>,
    /// Non-zero fail counts (`<node_history>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_counts: Vec<PcmkFailCount>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One Pacemaker node as `crm_mon` shows it (`<nodes><node .../>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcmkNode {
    pub online: bool,
    /// Put in standby by an operator: it runs no resources.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// Put in standby by a resource failure (`on-fail=standby`), not by an operator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby_onfail: bool,
    /// The node's `maintenance` attribute: its resources are unmanaged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// Lost without being fenced: its state is unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unclean: bool,
    /// Joining, not yet a full member.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_dc: bool,
}

/// One primitive resource (or one copy of a cloned one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcmkResource {
    pub id: String,
    /// The enclosing clone, group or bundle ids, outermost first (`web-clone/web-group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Whether the outermost parent runs copies (a clone or a bundle): a copy that stops
    /// while another runs leaves the service up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cloned: bool,
    /// `ocf:pacemaker:Dummy`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `Started`, `Stopped`, `Promoted`/`Master`, `Unpromoted`/`Slave`, `Starting`, ...
    pub role: String,
    /// `target-role` when set (`Stopped`: an operator stopped it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Pacemaker cannot act on it (a failed stop without fencing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    pub managed: bool,
    /// The nodes it runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl PcmkResource {
    /// The unit whose copies are counted: the outermost clone or bundle, else the
    /// resource itself (a group's members are counted one by one).
    pub fn unit(&self) -> &str {
        match (&self.parent, self.cloned) {
            (Some(p), true) => p.split('/').next().unwrap_or(p),
            _ => &self.id,
        }
    }

    /// Stopped on purpose: `target-role=Stopped`, or not managed (maintenance).
    pub fn held(&self) -> bool {
        self.target_role.as_deref() == Some("Stopped") || !self.managed
    }

    /// Runs and serves: active, not failed.
    pub fn running(&self) -> bool {
        self.active && !self.failed && self.role != "Stopped"
    }
}

/// One failed operation (`<failures><failure .../>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcmkFailedAction {
    /// The resource, from `op_key` (`<rsc>_<task>_<interval>`).
    pub resource: String,
    /// The operation: `monitor`, `start`, `stop`, `asyncmon`, ...
    pub task: String,
    pub node: String,
    /// `exitreason`, else `exitstatus` (`error`, `not running`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A resource's fail count on a node (`<resource_history fail-count=...>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcmkFailCount {
    pub resource: String,
    pub node: String,
    pub count: u32,
    /// Failures before the resource is moved away (`migration-threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}

impl PacemakerFacts {
    /// Nodes, resources, failed actions and fail counts kept each (facts are bounded at
    /// 16 KiB; the probe also cuts by size).
    pub const MAX_ENTRIES: usize = 64;

    /// This node's own entry in its view.
    pub fn my_node(&self) -> Option<&PcmkNode> {
        self.nodes.get(self.me.as_deref()?)
    }

    /// Whether this node's view names it as the DC.
    pub fn is_dc(&self) -> bool {
        self.me.is_some() && self.dc == self.me
    }

    /// What these facts say of their own node: the reading both the agent's probe (the
    /// node's status) and the roll-up (the member's row in `pacemaker`) use. `crm_mon` not
    /// answering and a partition without quorum are Fail; no DC, this node offline,
    /// unclean, or in standby because of a failure are Degraded, and so is the cluster's
    /// `maintenance-mode` (as Patroni's pause is: the roll-up shows it as maintenance). The
    /// cluster's resources are the roll-up's question, judged once for all members.
    pub fn own_verdicts(&self) -> Vec<(crate::NodeStatus, crate::reasons::ReasonCode, String)> {
        use crate::reasons as codes;
        use crate::NodeStatus::{Degraded, Fail};
        if !self.reachable {
            let why = self.error.as_deref().unwrap_or("no answer");
            return vec![(
                Fail,
                codes::PACEMAKER_UNREACHABLE,
                format!("crm_mon: {why}"),
            )];
        }
        let me = self.me.as_deref().unwrap_or("this node");
        let mut out = Vec::new();
        if self.with_quorum != Some(true) {
            out.push((
                Fail,
                codes::PACEMAKER_NO_QUORUM,
                format!("{me}'s partition has no quorum"),
            ));
        }
        if self.dc_present != Some(true) {
            out.push((Degraded, codes::PACEMAKER_NO_DC, "no DC elected".into()));
        }
        if self.maintenance_mode == Some(true) {
            out.push((
                Degraded,
                codes::PACEMAKER_MAINTENANCE_MODE,
                "maintenance-mode is on: no resource is managed".into(),
            ));
        }
        match self.my_node() {
            None if self.me.is_some() => out.push((
                Degraded,
                codes::PACEMAKER_NODE_OFFLINE,
                format!("{me} is not a node of this cluster"),
            )),
            None => {}
            Some(n) => {
                if !n.online {
                    out.push((
                        Degraded,
                        codes::PACEMAKER_NODE_OFFLINE,
                        format!("{me} is offline"),
                    ));
                }
                if n.unclean {
                    out.push((
                        Degraded,
                        codes::PACEMAKER_NODE_UNCLEAN,
                        format!("{me} is unclean (needs fencing)"),
                    ));
                }
                if n.standby_onfail {
                    out.push((
                        Degraded,
                        codes::PACEMAKER_STANDBY_ONFAIL,
                        format!("{me} was put in standby by a resource failure"),
                    ));
                }
            }
        }
        if self.truncated {
            out.push((
                Degraded,
                codes::PACEMAKER_TRUNCATED,
                format!(
                    "more nodes, resources or failures than the {} kept; the rest are not judged",
                    Self::MAX_ENTRIES
                ),
            ));
        }
        out
    }

    /// The view's role: `DC` or `member`, with `standby`/`maintenance` when so.
    pub fn role(&self) -> Option<String> {
        if !self.reachable {
            return None;
        }
        let mut role = if self.is_dc() { "DC" } else { "member" }.to_string();
        if let Some(n) = self.my_node() {
            if n.standby {
                role.push_str(",standby");
            }
            if n.maintenance {
                role.push_str(",maintenance");
            }
        }
        Some(role)
    }
}
