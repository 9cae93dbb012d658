//! The catalog of reason codes: every `code` a probe, the agent's scheduler or the
//! collector's roll-up puts in a [`Reason`], with its meaning and, where it is fixed, the
//! status it implies.
//!
//! Probes and the roll-up name codes only through these constants, never as literals, and
//! `docs/operations.md` carries the table [`markdown_table`] renders (a test in this
//! module fails when the two differ). A new code is one line here.

use crate::model::{NodeStatus, Reason};

/// One reason code and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonCode {
    /// The machine-readable code on the wire.
    pub code: &'static str,
    /// The status this reason sets, when that is fixed; `None` when it depends on the
    /// setting or the count that raised it (a probe's `critical`, a quorum).
    pub implies: Option<NodeStatus>,
    /// Who raises it: a probe kind, `agent` or `roll-up`.
    pub raised_by: &'static str,
    /// One line for operators.
    pub meaning: &'static str,
}

impl ReasonCode {
    /// A reason with this code.
    pub fn reason(self, message: impl Into<String>) -> Reason {
        Reason::new(self.code, message)
    }
}

impl From<ReasonCode> for String {
    fn from(c: ReasonCode) -> String {
        c.code.to_string()
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

const FAIL: Option<NodeStatus> = Some(NodeStatus::Fail);
const DEGRADED: Option<NodeStatus> = Some(NodeStatus::Degraded);
const VARIES: Option<NodeStatus> = None;

macro_rules! catalog {
    ($($name:ident = $code:literal, $implies:expr, $by:literal, $meaning:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $name: ReasonCode = ReasonCode {
                code: $code,
                implies: $implies,
                raised_by: $by,
                meaning: $meaning,
            };
        )*
        /// Every code, in catalog order.
        pub const ALL: &[ReasonCode] = &[$($name),*];
    };
}

catalog! {
    // ---- agent: the scheduler ----
    PROBE_TIMEOUT = "probe_timeout", FAIL, "agent", "a probe did not finish within its deadline or the cycle budget";
    PROBE_CRASHED = "probe_crashed", FAIL, "agent", "a probe panicked or its worker died; the report still went out";

    // ---- any node ----
    ENDPOINT_UNREACHABLE = "endpoint_unreachable", VARIES, "tcp, http", "a configured endpoint does not accept connections (Fail if `critical`, else Degraded)";
    ENDPOINT_TIMEOUT = "endpoint_timeout", VARIES, "http", "an HTTP endpoint did not answer in time (Fail if `critical`, else Degraded)";
    UNEXPECTED_STATUS = "unexpected_status", VARIES, "http", "an HTTP endpoint answered another status than `expect_status`";
    HOST_UNREADABLE = "host_unreadable", DEGRADED, "host", "a kernel file or filesystem the host probe reads could not be read";
    HOST_LOAD = "host_load", VARIES, "host", "load per CPU above the Degraded or Fail threshold";
    HOST_MEMORY = "host_memory", VARIES, "host", "memory in use above the Degraded or Fail threshold";
    HOST_DISK = "host_disk", VARIES, "host", "a checked path's filesystem is fuller than the Degraded or Fail threshold";
    CLOCK_UNSYNCHRONISED = "clock_unsynchronised", DEGRADED, "host", "the kernel says the clock is not synchronised";
    CLOCK_UNKNOWN = "clock_unknown", DEGRADED, "host", "the clock's synchronisation state could not be read";
    UNIT_NOT_FOUND = "unit_not_found", VARIES, "services", "a configured systemd unit is not installed";
    UNIT_INACTIVE = "unit_inactive", VARIES, "services", "a systemd unit is not active";
    UNIT_RESTARTING = "unit_restarting", DEGRADED, "services", "a systemd unit restarted since the last cycle (crash loop)";
    PROCESS_MISSING = "process_missing", VARIES, "services", "without systemd, no process of the configured name runs";
    SERVICE_UNKNOWN = "service_unknown", DEGRADED, "services", "a service's state could not be learnt (bus unreachable, no process name)";

    // ---- db node: Patroni ----
    PATRONI_UNREACHABLE = "patroni_unreachable", FAIL, "patroni", "the local Patroni REST API gave no answer";
    PATRONI_BAD_RESPONSE = "patroni_bad_response", VARIES, "patroni", "Patroni answered something unusable (Fail for `/patroni`, Degraded for `/cluster`)";
    PATRONI_PAUSED = "patroni_paused", DEGRADED, "patroni", "the cluster is in maintenance mode: no automatic failover";
    PATRONI_CONFIG_UNAVAILABLE = "patroni_config_unavailable", DEGRADED, "patroni", "Patroni's dynamic `/config` could not be read; defaults are assumed";
    PENDING_RESTART = "pending_restart", DEGRADED, "patroni", "PostgreSQL needs a restart for a changed setting";
    POSTGRES_NOT_RUNNING = "postgres_not_running", FAIL, "patroni, postgres", "PostgreSQL is not running or does not accept connections";
    POSTGRES_TRANSITIONAL = "postgres_transitional", DEGRADED, "patroni", "PostgreSQL is starting, stopping or restarting";
    ROLE_UNSETTLED = "role_unsettled", DEGRADED, "patroni", "the member's role is changing (promotion or demotion in progress)";
    NO_LEADER_LOCK = "no_leader_lock", DEGRADED, "patroni", "Patroni sees no leader lock in the DCS";
    DCS_UNREACHABLE = "dcs_unreachable", DEGRADED, "patroni, roll-up", "Patroni cannot reach etcd, or has not for longer than its TTL";
    MEMBER_NOT_IN_CLUSTER = "member_not_in_cluster", DEGRADED, "patroni", "this member is missing from Patroni's `/cluster` view";
    REPLICA_LAG = "replica_lag", DEGRADED, "patroni, roll-up", "a replica lags more than `maximum_lag_on_failover`";
    REPLICA_LAG_UNKNOWN = "replica_lag_unknown", DEGRADED, "patroni, roll-up", "a replica's lag is unknown (not streaming, or stopped)";
    REPLAY_PAUSED = "replay_paused", DEGRADED, "patroni, postgres", "WAL replay is paused on a replica";
    NO_SYNC_STANDBY = "no_sync_standby", DEGRADED, "patroni, roll-up", "synchronous mode is on but no standby is synchronous";

    // ---- db node: PostgreSQL and etcd ----
    POSTGRES_LOGIN_REFUSED = "postgres_login_refused", DEGRADED, "postgres", "PostgreSQL refused the monitoring role's login";
    POSTGRES_QUERY_FAILED = "postgres_query_failed", DEGRADED, "postgres", "a monitoring query failed or timed out";
    MONITORING_ROLE_IS_SUPERUSER = "monitoring_role_is_superuser", DEGRADED, "postgres", "the probe logs in as a superuser; use a role with pg_monitor";
    REPLAY_LAG = "replay_lag", DEGRADED, "postgres", "a replica has received more WAL than it replayed, beyond `max_replay_gap_bytes`";
    WAL_RECEIVER_NOT_STREAMING = "wal_receiver_not_streaming", DEGRADED, "postgres", "a replica's WAL receiver is not streaming";
    REPLICATION_SLOT_LOST = "replication_slot_lost", DEGRADED, "postgres", "a replication slot on the primary is lost or invalidated (`wal_status` lost; PostgreSQL 17 also says why in `invalidation_reason`): its consumer cannot resume from it";
    ETCD_UNREACHABLE = "etcd_unreachable", VARIES, "etcd", "the local etcd member gave no answer (Fail if `critical`, else Degraded)";
    ETCD_BAD_RESPONSE = "etcd_bad_response", VARIES, "etcd", "the local etcd member answered something unusable";
    ETCD_NO_LEADER = "etcd_no_leader", DEGRADED, "etcd", "the local etcd member knows no raft leader";
    ETCD_ALARM = "etcd_alarm", DEGRADED, "etcd", "the etcd member reports errors (active alarms such as NOSPACE, `no leader`)";
    ETCD_APPLY_BACKLOG = "etcd_apply_backlog", DEGRADED, "etcd", "committed raft entries wait to be applied beyond `max_apply_backlog`";
    ETCD_DB_SIZE = "etcd_db_size", DEGRADED, "etcd", "the etcd backend is above 80 % of its quota";
    ETCD_UNHEALTHY = "etcd_unhealthy", DEGRADED, "etcd", "etcd's `/health` (a quorum read) fails";

    // ---- broker node: RabbitMQ ----
    MANAGEMENT_UNREACHABLE = "management_unreachable", FAIL, "rabbitmq", "no management API call got an answer";
    MANAGEMENT_ERROR = "management_error", FAIL, "rabbitmq", "the management API gave unusable answers";
    LOCAL_ALARM = "local_alarm", FAIL, "rabbitmq", "a memory or disk alarm is in effect on this node: publishers are blocked";
    AMQP_LISTENER_MISSING = "amqp_listener_missing", FAIL, "rabbitmq", "no AMQP listener on the configured port";
    VHOSTS_DOWN = "vhosts_down", FAIL, "rabbitmq", "virtual hosts are not running on this node";
    CERTIFICATE_EXPIRING = "certificate_expiring", DEGRADED, "rabbitmq", "a TLS listener's certificate expires within `cert_expiry_days`";
    PARTITION = "partition", FAIL, "rabbitmq", "a member reports a network partition";
    FD_USAGE = "fd_usage", DEGRADED, "rabbitmq", "file descriptor use above `fd_warn_ratio`";
    PEER_DOWN = "peer_down", DEGRADED, "rabbitmq", "another cluster member is not running, as this node sees it";
    AMQP_FAILED = "amqp_failed", FAIL, "rabbitmq", "the AMQP round trip failed on this node";
    QUORUM_CRITICAL = "quorum_critical", DEGRADED, "rabbitmq", "stopping this node now would lose the majority of a quorum queue or (Khepri) of the metadata store";
    QUORUM_QUEUE_MINORITY = "quorum_queue_minority", FAIL, "rabbitmq", "a quorum queue with a member on this node has no majority of its members online: it takes no publishes";
    CLUSTER_MINORITY = "cluster_minority", FAIL, "rabbitmq", "with Khepri, this node sees no more than half of the members running: the metadata store has no majority here";

    // ---- manager node ----
    AMQP_UNREACHABLE = "amqp_unreachable", FAIL, "amqp", "the manager cannot complete an AMQP round trip with its broker";
    DB_UNREACHABLE = "db_unreachable", FAIL, "pg_connect", "the manager cannot connect to its PostgreSQL";
    DB_READ_ONLY = "db_read_only", FAIL, "pg_connect", "the manager's PostgreSQL endpoint is a read-only replica";
    COLLECTOR_NOT_READY = "collector_not_ready", FAIL, "collector_self", "the local collector is not ready (its store writer stopped, or no answer)";
    STORE_NOT_WRITABLE = "store_not_writable", FAIL, "collector_self", "the collector's store directory or file is not writable";

    // ---- roll-up: nodes ----
    NO_REPORT = "no_report", FAIL, "roll-up", "an expected node has never reported";
    STALE = "stale", FAIL, "roll-up", "no report for `stale_after`, judged by the collector's clock";
    REPORTED_UNHEALTHY = "reported_unhealthy", VARIES, "roll-up", "the node itself reports Degraded or Fail";
    CLOCK_SKEW = "clock_skew", VARIES, "roll-up", "the node's clock differs from the collector's (the status is unchanged)";
    KEY_MISMATCH = "key_mismatch", FAIL, "roll-up", "a report signed by another key than the pinned one was refused";
    FLAPPING = "flapping", DEGRADED, "roll-up", "the node changed status too often within the window";

    // ---- roll-up: service types ----
    NO_NODES = "no_nodes", FAIL, "roll-up", "no node of a required type (or none at all) has reported";
    NODE_UNHEALTHY = "node_unhealthy", VARIES, "roll-up", "a node counted against the quorum is not OK";
    MAINTENANCE = "maintenance", DEGRADED, "roll-up", "an operator put the node or its service type in maintenance (`status-reporter maintenance on`): shown, never Fail by itself";
    DEGRADED_MEMBERS = "degraded", DEGRADED, "roll-up", "some nodes are not OK but a quorum is";
    QUORUM_LOST = "quorum_lost", FAIL, "roll-up", "fewer healthy nodes than a quorum";
    SPLIT_BRAIN = "split_brain", FAIL, "roll-up", "two leaders (db) or disagreeing partitions (broker)";
    LEADER_VIEWS_DISAGREE = "leader_views_disagree", DEGRADED, "roll-up", "db members name different leaders";
    NO_LEADER = "no_leader", FAIL, "roll-up", "no db member is the leader";
    LEADER_NOT_REPORTING = "leader_not_reporting", DEGRADED, "roll-up", "the leader the members name has no fresh report";
    ROGUE_PRIMARY = "rogue_primary", DEGRADED, "roll-up", "PostgreSQL runs read-write on a member that is not the Patroni leader";
    REPLICA_NOT_STREAMING = "replica_not_streaming", DEGRADED, "roll-up", "a replica does not stream from the leader";
    TIMELINE_MISMATCH = "timeline_mismatch", DEGRADED, "roll-up", "a replica is on another timeline than the leader";
    NO_FAILOVER_CANDIDATE = "no_failover_candidate", DEGRADED, "roll-up", "no replica could take over if the leader failed";
    ETCD_CLUSTER_ID_MISMATCH = "etcd_cluster_id_mismatch", FAIL, "roll-up", "etcd members report different cluster ids";
    ETCD_LEADER_DISAGREEMENT = "etcd_leader_disagreement", DEGRADED, "roll-up", "etcd members name different raft leaders";
    ETCD_UNAVAILABLE = "etcd_unavailable", FAIL, "roll-up", "no etcd member is healthy";
    ETCD_QUORUM = "etcd_quorum", DEGRADED, "roll-up", "fewer healthy etcd members than a quorum, as the db nodes report them";
    ETCD_MEMBER_DOWN = "etcd_member_down", DEGRADED, "roll-up", "an etcd member is down while the quorum holds";

    // ---- roll-up: membership (issue 12) ----
    UNVOUCHED = "unvouched", DEGRADED, "roll-up", "a reporter that no member's view of the service lists: shown, but counted for nothing";
    DUPLICATE_NAME = "duplicate_name", VARIES, "roll-up", "another node of the type has the same or a confusable name; the row is keyed by name and short node id (the status is unchanged)";
    MEMBERSHIP_EXCEEDS = "membership_exceeds", FAIL, "roll-up", "more members than the configured `expected_size`: impostors, or the setting is out of date";
    GALERA_UNREACHABLE = "galera_unreachable", FAIL, "galera", "MariaDB did not answer the wsrep status query";
    GALERA_NON_PRIMARY = "galera_non_primary", FAIL, "galera", "the node is in a non-Primary component: cut off from the quorum";
    GALERA_NOT_READY = "galera_not_ready", FAIL, "galera", "wsrep_ready is OFF: the node refuses queries";
    GALERA_DONOR = "galera_donor", DEGRADED, "galera", "the node is a donor or desynced: it serves, but may lag";
    GALERA_NOT_SYNCED = "galera_not_synced", DEGRADED, "galera", "the node is joining or joined, not synced yet";
    GALERA_FLOW_CONTROL = "galera_flow_control", DEGRADED, "galera", "replication was paused by flow control over 10 % of the time";
    GALERA_READ_ONLY = "galera_read_only", DEGRADED, "galera", "read_only is ON: the node refuses writes";
    GALERA_SPLIT = "galera_split", FAIL, "roll-up", "reporters are in different Primary components or have different state UUIDs";
    GALERA_MEMBER_MISSING = "galera_member_missing", DEGRADED, "roll-up", "the Primary component has fewer members than configured";
    LB_UNREACHABLE = "lb_unreachable", FAIL, "haproxy", "the HAProxy stats socket did not answer";
    LB_SERVER_DOWN = "lb_server_down", DEGRADED, "haproxy, roll-up", "some servers of a backend are down";
    LB_BACKEND_DOWN = "lb_backend_down", FAIL, "haproxy, roll-up", "no server of a backend is up (or a configured backend is missing)";
    LB_SERVER_MAINT = "lb_server_maint", DEGRADED, "haproxy, roll-up", "a server is in MAINT or DRAIN (an operator's choice)";
    LB_TRUNCATED = "lb_truncated", DEGRADED, "haproxy", "more backends or servers than the facts keep: those cut are not judged";
    VIP_UNREACHABLE = "vip_unreachable", FAIL, "keepalived", "keepalived wrote no data file (not running, or no answer to SIGUSR1 in time)";
    VIP_FAULT = "vip_fault", DEGRADED, "keepalived, roll-up", "a VRRP instance is in FAULT on this node (its interface or a tracked check is down)";
    VIP_NOT_HELD = "vip_not_held", DEGRADED, "keepalived", "keepalived says MASTER but this node's interfaces lack the instance's VIP";
    VIP_NO_MASTER = "vip_no_master", FAIL, "roll-up", "no node is MASTER of a VRRP instance, or no node holds its VIP";
    VIP_SPLIT_BRAIN = "vip_split_brain", FAIL, "roll-up", "two or more nodes are MASTER of one VRRP instance or hold one VIP";
    VIP_TRUNCATED = "vip_truncated", DEGRADED, "keepalived", "more VRRP instances or VIPs than the facts keep: those cut are not judged";
    SEARCH_UNREACHABLE = "search_unreachable", FAIL, "opensearch", "OpenSearch did not answer `/_cluster/health` with a health document (refused, timeout, TLS, not JSON)";
    SEARCH_AUTH = "search_auth", FAIL, "opensearch", "OpenSearch refused the probe's credentials (401) or its permissions (403)";
    SEARCH_RED = "search_red", FAIL, "opensearch, roll-up", "the OpenSearch cluster is red: some primary shard is unassigned";
    SEARCH_YELLOW = "search_yellow", DEGRADED, "opensearch, roll-up", "the OpenSearch cluster is yellow: some replica shard is unassigned";
    SEARCH_HEALTH_TIMED_OUT = "search_health_timed_out", DEGRADED, "opensearch", "`/_cluster/health` answered `timed_out: true` (408): its answer may be stale";
    SEARCH_NODES_MISSING = "search_nodes_missing", DEGRADED, "roll-up", "the OpenSearch cluster has fewer nodes than configured (`size`) or than members reporting";
    SEARCH_SPLIT = "search_split", FAIL, "roll-up", "members report different OpenSearch cluster names or UUIDs: two clusters";
    OBJECTSTORE_UNREACHABLE = "objectstore_unreachable", FAIL, "minio", "this node's MinIO did not answer `/minio/health/live` with 200";
    OBJECTSTORE_OFFLINE = "objectstore_offline", FAIL, "minio", "MinIO answers but says it is not initialised (`X-Minio-Server-Status`)";
    OBJECTSTORE_NO_QUORUM = "objectstore_no_quorum", FAIL, "minio, roll-up", "`/minio/health/cluster` answered 503: the cluster lacks write quorum as this node sees it";
    OBJECTSTORE_BAD_ANSWER = "objectstore_bad_answer", FAIL, "minio", "`/minio/health/cluster` gave no usable answer (unexpected status, bad quorum header, no answer)";
    OBJECTSTORE_MAINTENANCE = "objectstore_maintenance", DEGRADED, "minio", "`?maintenance=true` answered 412: taking this node down would lose quorum";
    OBJECTSTORE_HEALING = "objectstore_healing", DEGRADED, "minio", "MinIO reports drives healing (`X-Minio-Healing-Drives`)";
    OBJECTSTORE_MEMBERS_MISSING = "objectstore_members_missing", DEGRADED, "roll-up", "fewer MinIO members report than configured (`size`)";
    PACEMAKER_UNREACHABLE = "pacemaker_unreachable", FAIL, "pacemaker", "`crm_mon` gave no cluster status (not connected, timed out, or malformed or oversized XML)";
    PACEMAKER_NO_QUORUM = "pacemaker_no_quorum", FAIL, "pacemaker, roll-up", "the node's partition has no quorum (no member with quorum: the service is Fail)";
    PACEMAKER_NO_DC = "pacemaker_no_dc", DEGRADED, "pacemaker", "no Designated Controller is elected: the cluster cannot act on resources";
    PACEMAKER_NODE_OFFLINE = "pacemaker_node_offline", DEGRADED, "pacemaker, roll-up", "a Pacemaker node is offline or pending while the quorum holds";
    PACEMAKER_NODE_UNCLEAN = "pacemaker_node_unclean", DEGRADED, "pacemaker, roll-up", "a Pacemaker node is unclean: lost and not fenced, its resources' state unknown";
    PACEMAKER_STANDBY_ONFAIL = "pacemaker_standby_onfail", DEGRADED, "pacemaker, roll-up", "a node was put in standby by a resource failure (`on-fail=standby`), not by an operator";
    PACEMAKER_RESOURCE_STOPPED = "pacemaker_resource_stopped", VARIES, "roll-up", "a resource is stopped or failed: Fail when no copy runs anywhere, Degraded while a clone copy still runs";
    PACEMAKER_RESOURCE_BLOCKED = "pacemaker_resource_blocked", DEGRADED, "roll-up", "Pacemaker cannot act on a resource (blocked: a failed stop without fencing)";
    PACEMAKER_FAILED_ACTION = "pacemaker_failed_action", DEGRADED, "roll-up", "an operation failed on a node (until `crm_resource --cleanup` or `failure-timeout`)";
    PACEMAKER_FAIL_COUNT = "pacemaker_fail_count", DEGRADED, "roll-up", "a resource has a fail count on a node with no failed action listed";
    PACEMAKER_SPLIT = "pacemaker_split", FAIL, "roll-up", "members name different DCs, or two partitions each have quorum (split brain)";
    PACEMAKER_TRUNCATED = "pacemaker_truncated", DEGRADED, "pacemaker", "more nodes, resources or failures than the facts keep: those cut are not judged";
    PACEMAKER_MAINTENANCE_MODE = "pacemaker_maintenance_mode", DEGRADED, "pacemaker", "the cluster property maintenance-mode is on: no resource is managed (the service shows it as maintenance)";

    // ---- tier 2 (issue 16) ----
    CLUSTER_UNREACHABLE = "cluster_unreachable", FAIL, "tier 2", "no summary from the cluster's collectors for `unreachable_after_secs` (shown as Unreachable; no heal runs)";
}

/// The markdown table of every code, as `docs/operations.md` carries it.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | status | raised by | meaning |\n|---|---|---|---|\n");
    for c in ALL {
        let status = match c.implies {
            Some(s) => s.as_str().to_string(),
            None => "varies".to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {status} | {} | {} |\n",
            c.code, c.raised_by, c.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DOCS: &str = include_str!("../../docs/operations.md");
    const BEGIN: &str = "<!-- reason-codes:begin (generated from protocol/src/reasons.rs) -->\n";
    const END: &str = "<!-- reason-codes:end -->";

    #[test]
    fn codes_are_unique() {
        let codes: BTreeSet<_> = ALL.iter().map(|c| c.code).collect();
        assert_eq!(codes.len(), ALL.len());
    }

    /// The docs' table is this catalog's: no code missing, none unknown.
    #[test]
    fn operations_md_lists_exactly_the_catalog() {
        let start = DOCS
            .find(BEGIN)
            .expect("docs/operations.md has the reason-codes markers");
        let end = DOCS.find(END).expect("end marker");
        let table = &DOCS[start + BEGIN.len()..end];
        assert_eq!(
            table,
            markdown_table(),
            "docs/operations.md's reason table is out of date; paste markdown_table()'s output"
        );
    }

    /// Every code the hand-written part of the docs names (in backticks, in the "Reading
    /// reasons" section) is in the catalog; `etcd_*` must match at least one.
    #[test]
    fn operations_md_names_no_unknown_code() {
        let section = DOCS
            .split("## Reading reasons")
            .nth(1)
            .and_then(|s| s.split(BEGIN).next())
            .expect("a Reading reasons section");
        let known: BTreeSet<_> = ALL.iter().map(|c| c.code).collect();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap_or("");
            for named in first_cell.split('`').skip(1).step_by(2) {
                let ok = match named.strip_suffix('*') {
                    Some(prefix) => known.iter().any(|k| k.starts_with(prefix)),
                    None => known.contains(named),
                };
                assert!(ok, "docs/operations.md names unknown reason code {named:?}");
            }
        }
    }
}
