//! `rabbitmq`: the local RabbitMQ node on a broker, through its management API and AMQP.
//!
//! Fast path, every cycle, all requests concurrent (HTTP or HTTPS, Basic auth; a
//! `monitoring`-tagged user is enough):
//! - `/api/overview?columns=node,cluster_name,listeners`: this node's name and listeners;
//! - `/api/health/checks/local-alarms`: alarms on *this* node. The cluster-wide
//!   `/api/health/checks/alarms` fails on every node when any node has an alarm, so it is
//!   never used as a node signal;
//! - `/api/health/checks/port-listener/<amqp port>` and `/virtual-hosts`;
//! - `/api/health/checks/certificate-expiration/<n>/days`, only when this node has TLS
//!   listeners;
//! - `/api/nodes?columns=...`: this node's view of every member (`running`, `partitions`,
//!   alarm flags, fd/socket/memory/disk). Right after a boot the metric fields are absent
//!   for 5 s or more, so every one of them is optional.
//!
//! The deprecated `/api/healthchecks/node` is not used (it logs a warning on every call
//! and is a no-op from 3.13).
//!
//! Slow path, every `amqp_every` cycles (and at once after a cycle in which the management
//! API failed, so "management down but AMQP fine" is reported from fresh data): the AMQP
//! round trip in [`crate::net::amqp`]. Between runs the last outcome is reused with its age.
//!
//! `interpret` is pure: a local alarm, a partition, the management API or AMQP being
//! unreachable → Fail; certificates expiring within N days, fd use over the threshold, a
//! peer not running → Degraded. Every reason says which path (management or AMQP) saw it.

use crate::net::amqp::{self, Outcome};
use crate::net::{basic_auth, fetch, validate_endpoint, Secret, TlsFiles};
use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::BrokerFacts;
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The legacy display name 5.0.5 reads on a broker node.
pub const SERVICE: &str = "RabbitMQ";

/// RabbitMQ node names are Erlang atoms, at most 255 characters.
const MAX_NODE_NAME: usize = 255;
/// More members than any real cluster has: the answer is not trusted.
const MAX_MEMBERS: usize = 64;

/// Quorum queues asked of `/api/queues` per cycle (one page): a minority queue names
/// itself, so the first page is enough to see that something is wrong on big clusters.
const QUEUE_PAGE: usize = 200;
/// Queues named in one reason; the rest are counted.
const QUEUES_NAMED: usize = 5;

/// Columns asked of `/api/nodes`: everything the probe reads, nothing of the ~90 others.
const NODE_COLUMNS: &str =
    "name,running,partitions,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit,fd_used,fd_total,sockets_used,sockets_total,uptime";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of this node's management API, `http://127.0.0.1:15672` or `https://...`.
    #[serde(default = "default_management_url")]
    pub management_url: String,
    /// TLS for an `https://` management URL.
    #[serde(default)]
    pub tls: TlsFiles,
    /// A `monitoring`-tagged user is enough; admin credentials don't belong on the node.
    pub username: String,
    pub password: Secret,
    /// This node's RabbitMQ name (`rabbit@host`), used in reasons when the management API
    /// is down and cannot tell it. Learnt from `/api/overview` otherwise.
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default = "default_amqp_host")]
    pub amqp_host: String,
    #[serde(default = "amqp::default_port")]
    pub amqp_port: u16,
    #[serde(default = "amqp::default_vhost")]
    pub vhost: String,
    /// Run the AMQP round trip every this many cycles; 0 turns it off.
    #[serde(default = "default_amqp_every")]
    pub amqp_every: u64,
    /// Publish with confirms and get the message back, not just connect.
    #[serde(default = "yes")]
    pub amqp_publish: bool,
    #[serde(default = "default_ms::<5000>")]
    pub amqp_timeout_ms: u64,
    /// Degraded when a TLS listener's certificate expires within this many days.
    #[serde(default = "default_cert_days")]
    pub cert_expiry_days: u32,
    /// Degraded when `fd_used / fd_total` exceeds this.
    #[serde(default = "default_fd_ratio")]
    pub fd_warn_ratio: f64,
    /// Deadline of each management request.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
    /// Largest management response read; `/api/nodes` with our columns is ~1 KB a node.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_management_url() -> String {
    "http://127.0.0.1:15672".into()
}
fn default_amqp_host() -> String {
    "127.0.0.1".into()
}
fn default_amqp_every() -> u64 {
    6
}
fn default_cert_days() -> u32 {
    30
}
fn default_fd_ratio() -> f64 {
    0.9
}
fn default_max_body() -> usize {
    1 << 20
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.tls.validate(&self.management_url, "management");
        if self.management_url.trim_end_matches('/').contains('?') {
            errors.push("management_url must not carry a query".into());
        }
        errors.extend(validate_endpoint(
            &self.amqp_host,
            self.amqp_port,
            &self.username,
            self.amqp_timeout_ms,
            "amqp",
        ));
        errors.extend(range_error("timeout_ms", self.timeout_ms, 100..=60_000));
        errors.extend(range_error(
            "cert_expiry_days",
            u64::from(self.cert_expiry_days),
            1..=3650,
        ));
        if !(self.fd_warn_ratio > 0.0 && self.fd_warn_ratio <= 1.0) {
            errors.push(format!(
                "fd_warn_ratio must be in (0, 1], got {}",
                self.fd_warn_ratio
            ));
        }
        if !(1024..=64 << 20).contains(&self.max_body_bytes) {
            errors.push(format!(
                "max_body_bytes must be 1024..=67108864, got {}",
                self.max_body_bytes
            ));
        }
        errors
    }

    fn base(&self) -> &str {
        self.management_url.trim_end_matches('/')
    }

    pub fn amqp_target(&self) -> amqp::Target {
        amqp::Target {
            host: self.amqp_host.clone(),
            port: self.amqp_port,
            vhost: self.vhost.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            publish: self.amqp_publish,
            timeout: Duration::from_millis(self.amqp_timeout_ms),
        }
    }
}

/// One management exchange as stored in `Raw` (and in captured fixtures).
pub use crate::net::Reply;

/// The AMQP outcome the probe holds, and how many cycles old it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSeen {
    pub outcome: Outcome,
    #[serde(default)]
    pub cycles_ago: u64,
}

/// Everything `collect` saw. Serializable: fixtures captured from a real cluster are
/// exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub overview: Reply,
    pub local_alarms: Reply,
    pub port_listener: Reply,
    pub virtual_hosts: Reply,
    pub nodes: Reply,
    /// Only asked when this node has TLS listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiration: Option<Reply>,
    /// `None` until the first AMQP round trip (or when it is turned off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp: Option<AmqpSeen>,
    /// `/api/health/checks/node-is-quorum-critical`; 404 where the build lacks it. `None`
    /// in captures taken before the probe asked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_critical: Option<Reply>,
    /// One page of `/api/queues` (name, vhost, type, state, members, online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Reply>,
    /// `/api/feature-flags`: whether the metadata store is Khepri (a Raft majority) or
    /// Mnesia. An answer other than 200 leaves it unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<Reply>,
    /// Management calls that got no answer within the deadline this cycle, while others
    /// did, and were read from the last clean cycle's answers instead ([`bridge_stalls`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reused: Vec<String>,
}

/// How old (seconds) the last clean answers may be to stand in for stalled calls: the
/// 5 s hold measured on 4.0.5, plus a cycle of slack.
pub const STALL_GRACE_S: i64 = 6;

/// RabbitMQ 4.0.5's management API holds about 1 in 30 `/api/overview` and 1 in 100
/// `/api/nodes` requests for 5 s before answering (measured on the lab's 3-node cluster,
/// with and without Khepri, fresh or kept-alive connections; 3.10.8 showed none in the same
/// suite). With any deadline under 5 s such a cycle would Fail a healthy node, and at a 1 s
/// period several cycles in a row fall into one hold. So when some calls of a cycle timed
/// out while at least one answered, the timed-out ones are taken from the last cycle that had
/// every answer, if that is at most [`STALL_GRACE_S`] old (the caller checks the age; named in
/// `raw.reused`, shown in the finding's `management_reused`). A stall that outlasts it is
/// reported. Returns whether `raw` had no timed-out call (then it may serve later cycles).
pub fn bridge_stalls(raw: &mut Raw, previous: Option<&Raw>) -> bool {
    fn timed_out(r: &Reply) -> bool {
        matches!(r, Reply::Failed { error } if error.starts_with("no answer within"))
    }
    let answered = [
        &raw.overview,
        &raw.local_alarms,
        &raw.port_listener,
        &raw.virtual_hosts,
        &raw.nodes,
    ]
    .into_iter()
    .chain(raw.quorum_critical.as_ref())
    .chain(raw.queues.as_ref())
    .chain(raw.feature_flags.as_ref())
    .any(|r| matches!(r, Reply::Answered { .. }));
    let mut reused = Vec::new();
    let mut clean = true;
    {
        let mut bridge = |name: &str, now: Option<&mut Reply>, before: Option<&Reply>| {
            let Some(now) = now else { return };
            if !timed_out(now) {
                return;
            }
            clean = false;
            if let Some(before @ Reply::Answered { .. }) = before.filter(|_| answered) {
                *now = before.clone();
                reused.push(name.to_string());
            }
        };
        let p = previous;
        bridge(
            "/api/overview",
            Some(&mut raw.overview),
            p.map(|p| &p.overview),
        );
        bridge(
            "/api/health/checks/local-alarms",
            Some(&mut raw.local_alarms),
            p.map(|p| &p.local_alarms),
        );
        bridge(
            "/api/health/checks/port-listener",
            Some(&mut raw.port_listener),
            p.map(|p| &p.port_listener),
        );
        bridge(
            "/api/health/checks/virtual-hosts",
            Some(&mut raw.virtual_hosts),
            p.map(|p| &p.virtual_hosts),
        );
        bridge("/api/nodes", Some(&mut raw.nodes), p.map(|p| &p.nodes));
        bridge(
            "/api/health/checks/node-is-quorum-critical",
            raw.quorum_critical.as_mut(),
            p.and_then(|p| p.quorum_critical.as_ref()),
        );
        bridge(
            "/api/queues",
            raw.queues.as_mut(),
            p.and_then(|p| p.queues.as_ref()),
        );
        bridge(
            "/api/feature-flags",
            raw.feature_flags.as_mut(),
            p.and_then(|p| p.feature_flags.as_ref()),
        );
    }
    raw.reused = reused;
    clean
}

/// The management requests of one cycle, concurrently. TLS listeners found in the
/// overview add the certificate check as a second step.
pub async fn collect_management(
    cfg: &Config,
    client: &Result<sr_tls::HttpsClient, String>,
    auth: &str,
) -> Raw {
    let deadline = Duration::from_millis(cfg.timeout_ms);
    let base = cfg.base();
    let get = |path: String| {
        let url = format!("{base}{path}");
        async move {
            Reply::from(
                fetch(
                    client,
                    http::Method::GET,
                    &url,
                    Some(auth),
                    b"",
                    deadline,
                    cfg.max_body_bytes,
                )
                .await,
            )
        }
    };
    let (
        overview,
        local_alarms,
        port_listener,
        virtual_hosts,
        nodes,
        quorum_critical,
        queues,
        feature_flags,
    ) = tokio::join!(
        get("/api/overview?columns=node,cluster_name,listeners".into()),
        get("/api/health/checks/local-alarms".into()),
        get(format!(
            "/api/health/checks/port-listener/{}",
            cfg.amqp_port
        )),
        get("/api/health/checks/virtual-hosts".into()),
        get(format!("/api/nodes?columns={NODE_COLUMNS}")),
        get("/api/health/checks/node-is-quorum-critical".into()),
        get(format!(
            "/api/queues?page=1&page_size={QUEUE_PAGE}&columns=name,vhost,type,state,members,online"
        )),
        get("/api/feature-flags".into()),
    );
    let certificate_expiration = if parse_overview(&overview)
        .map(|o| o.has_tls_listener())
        .unwrap_or(false)
    {
        Some(
            get(format!(
                "/api/health/checks/certificate-expiration/{}/days",
                cfg.cert_expiry_days
            ))
            .await,
        )
    } else {
        None
    };
    Raw {
        overview,
        local_alarms,
        port_listener,
        virtual_hosts,
        nodes,
        certificate_expiration,
        amqp: None,
        quorum_critical: Some(quorum_critical),
        queues: Some(queues),
        feature_flags: Some(feature_flags),
        reused: Vec::new(),
    }
}

// ---- parsing (pure) ----------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Overview {
    node: String,
    #[serde(default)]
    listeners: Vec<Listener>,
}

#[derive(Debug, Deserialize)]
struct Listener {
    node: String,
    protocol: String,
}

impl Overview {
    fn has_tls_listener(&self) -> bool {
        self.listeners
            .iter()
            .any(|l| l.node == self.node && (l.protocol.ends_with("/ssl") || l.protocol == "https"))
    }
}

/// One member as this node sees it. Everything but `name` may be missing (a down node
/// has only `name`/`type`/`running`; a just-booted one lacks the metrics).
#[derive(Debug, Deserialize)]
struct NodeEntry {
    name: String,
    #[serde(default)]
    running: Option<bool>,
    #[serde(default)]
    partitions: Option<Vec<String>>,
    #[serde(default)]
    mem_alarm: Option<bool>,
    #[serde(default)]
    disk_free_alarm: Option<bool>,
    #[serde(default)]
    mem_used: Option<u64>,
    #[serde(default)]
    mem_limit: Option<u64>,
    #[serde(default)]
    disk_free: Option<u64>,
    #[serde(default)]
    disk_free_limit: Option<u64>,
    #[serde(default)]
    fd_used: Option<u64>,
    #[serde(default)]
    fd_total: Option<u64>,
    #[serde(default)]
    sockets_used: Option<u64>,
    #[serde(default)]
    sockets_total: Option<u64>,
    #[serde(default)]
    uptime: Option<u64>,
}

/// `{"status":"ok"|"failed","reason":...,"alarms":[...]}` from `/api/health/checks/*`.
#[derive(Debug, Deserialize)]
struct Check {
    status: String,
    #[serde(default)]
    reason: Option<serde_json::Value>,
    #[serde(default)]
    alarms: Option<Vec<AlarmEntry>>,
}

/// A queue `node-is-quorum-critical` lists: a quorum queue, or with Khepri the metadata
/// store itself (`rabbitmq_metadata`, type `process`).
#[derive(Debug, Deserialize)]
struct CriticalEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    readable_name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The name Khepri's Raft cluster has in `node-is-quorum-critical`.
const METADATA_STORE: &str = "rabbitmq_metadata";

#[derive(Debug, Deserialize)]
struct CriticalCheck {
    #[serde(default)]
    queues: Vec<CriticalEntry>,
}

/// One queue of `/api/queues` as far as the quorum rule reads it.
#[derive(Debug, Deserialize)]
struct QueueEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    vhost: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    online: Vec<String>,
}

/// `/api/queues` is a plain list, or with `page=` an object holding `items`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum QueueList {
    Page { items: Vec<QueueEntry> },
    Plain(Vec<QueueEntry>),
}

#[derive(Debug, Deserialize)]
struct FeatureFlag {
    name: String,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlarmEntry {
    #[serde(default)]
    resource: Option<String>,
}

/// Why a management reply cannot be used, as text for a reason.
fn reply_problem(r: &Reply) -> Option<String> {
    match r {
        Reply::Failed { error } => Some(error.clone()),
        Reply::Answered { status: 401, .. } => {
            Some("HTTP 401: the management API rejected the credentials".into())
        }
        Reply::Answered { status: 403, .. } => {
            Some("HTTP 403: the user lacks the monitoring tag".into())
        }
        Reply::Answered { .. } => None,
    }
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, String> {
    if body.trim().is_empty() {
        return Err("empty body".into());
    }
    serde_json::from_str(body).map_err(|e| format!("invalid JSON: {e}"))
}

fn parse_overview(r: &Reply) -> Result<Overview, String> {
    match r {
        Reply::Answered { status: 200, body } => parse_json(body),
        Reply::Answered { status, .. } => {
            Err(reply_problem(r).unwrap_or_else(|| format!("HTTP {status}")))
        }
        Reply::Failed { error } => Err(error.clone()),
    }
}

/// A health check's verdict: `Ok(None)` passed, `Ok(Some(check))` failed, `Err` unusable.
fn parse_check(r: &Reply) -> Result<Option<Check>, String> {
    if let Some(p) = reply_problem(r) {
        return Err(p);
    }
    let Reply::Answered { status, body } = r else {
        unreachable!("reply_problem covers Failed")
    };
    if *status != 200 && *status != 503 {
        return Err(format!("HTTP {status}"));
    }
    let check: Check = parse_json(body)?;
    match (check.status.as_str(), *status) {
        ("ok", 200) => Ok(None),
        ("failed", 503) => Ok(Some(check)),
        (s, code) => Err(format!(
            "HTTP {code} with status {:?}",
            s.chars().take(32).collect::<String>()
        )),
    }
}

fn check_reason(c: &Check) -> String {
    match &c.reason {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "no reason given".into(),
    }
}

fn ratio(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 / t as f64),
        _ => None,
    }
}

// ---- interpret (pure) --------------------------------------------------------------

// ---- the rules (pure) --------------------------------------------------------------

/// One cycle's verdict as the rules build it: each rule reads one observation, adds its
/// reasons and facts, and files a management call it could not use under `mgmt_errors`
/// for [`Judgement::management`] to report once.
struct Judgement<'a> {
    cfg: &'a Config,
    f: Finding,
    facts: BrokerFacts,
    extra: serde_json::Map<String, serde_json::Value>,
    mgmt_errors: Vec<String>,
    /// This node's name, from the overview or the config.
    node: Option<String>,
    /// How reasons name this node.
    me: String,
    /// The metadata store is Khepri (a Raft majority); `None` when the feature flags could
    /// not be read (they may need more than the `monitoring` tag).
    khepri: Option<bool>,
}

impl<'a> Judgement<'a> {
    /// Starts from the overview, which names this node.
    fn new(cfg: &'a Config, raw: &Raw) -> Self {
        let mut mgmt_errors = Vec::new();
        let node = match parse_overview(&raw.overview) {
            Ok(o) => Some(o.node),
            Err(e) => {
                mgmt_errors.push(format!("/api/overview: {e}"));
                cfg.node_name.clone()
            }
        };
        let facts = BrokerFacts {
            node_name: node.clone(),
            ..Default::default()
        };
        Judgement {
            cfg,
            f: Finding::ok(),
            facts,
            extra: serde_json::Map::new(),
            mgmt_errors,
            me: node.clone().unwrap_or_else(|| "this node".into()),
            node,
            khepri: None,
        }
    }

    /// Local alarms: the authoritative, live node signal. Returns whether it reported one.
    fn local_alarms(&mut self, reply: &Reply) -> bool {
        match parse_check(reply) {
            Ok(None) => self.facts.local_alarm = Some(false),
            Ok(Some(c)) => {
                self.facts.local_alarm = Some(true);
                let resources: Vec<String> = c
                    .alarms
                    .iter()
                    .flatten()
                    .filter_map(|a| a.resource.clone())
                    .collect();
                let what = if resources.is_empty() {
                    check_reason(&c)
                } else {
                    resources.join(", ")
                };
                self.f.worsen(
                    NodeStatus::Fail,
                    codes::LOCAL_ALARM,
                    format!(
                        "resource alarm in effect on {}: {what} (publishers are blocked)",
                        self.me
                    ),
                );
                return true;
            }
            Err(e) => self
                .mgmt_errors
                .push(format!("/api/health/checks/local-alarms: {e}")),
        }
        false
    }

    /// The AMQP port has a listener.
    fn port_listener(&mut self, reply: &Reply) {
        let port = self.cfg.amqp_port;
        match parse_check(reply) {
            Ok(None) => {}
            Ok(Some(c)) => self.f.worsen(
                NodeStatus::Fail,
                codes::AMQP_LISTENER_MISSING,
                format!(
                    "no AMQP listener on port {port} on {} (management API: {})",
                    self.me,
                    check_reason(&c)
                ),
            ),
            Err(e) => self
                .mgmt_errors
                .push(format!("/api/health/checks/port-listener/{port}: {e}")),
        }
    }

    /// Every virtual host runs on this node.
    fn virtual_hosts(&mut self, reply: &Reply) {
        match parse_check(reply) {
            Ok(None) => {}
            Ok(Some(c)) => self.f.worsen(
                NodeStatus::Fail,
                codes::VHOSTS_DOWN,
                format!(
                    "virtual hosts not running on {}: {}",
                    self.me,
                    check_reason(&c)
                ),
            ),
            Err(e) => self
                .mgmt_errors
                .push(format!("/api/health/checks/virtual-hosts: {e}")),
        }
    }

    /// No TLS listener certificate expires within `cert_expiry_days`.
    fn certificates(&mut self, reply: &Reply) {
        match parse_check(reply) {
            Ok(None) => {}
            Ok(Some(c)) => self.f.worsen(
                NodeStatus::Degraded,
                codes::CERTIFICATE_EXPIRING,
                format!(
                    "a TLS listener certificate on {} expires within {} days: {}",
                    self.me,
                    self.cfg.cert_expiry_days,
                    check_reason(&c)
                ),
            ),
            Err(e) => self
                .mgmt_errors
                .push(format!("/api/health/checks/certificate-expiration: {e}")),
        }
    }

    /// This node's view of the cluster from `/api/nodes`: partitions, peers down and its
    /// own alarms, fd use and metrics. Returns the legacy `cluster_status` map.
    fn cluster_view(
        &mut self,
        reply: &Reply,
        alarm_reported: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut cluster_status = serde_json::Map::new();
        let nodes: Result<Vec<NodeEntry>, String> = match reply {
            Reply::Answered { status: 200, body } => parse_json(body),
            r => Err(reply_problem(r).unwrap_or_else(|| "unexpected status".into())),
        };
        let nodes = match nodes {
            Err(e) => return self.unusable_nodes(format!("/api/nodes: {e}"), cluster_status),
            Ok(nodes) if nodes.is_empty() => {
                return self.unusable_nodes("/api/nodes: empty list".into(), cluster_status)
            }
            Ok(nodes) if nodes.len() > MAX_MEMBERS => {
                let e = format!(
                    "/api/nodes: {} members, more than {MAX_MEMBERS}",
                    nodes.len()
                );
                return self.unusable_nodes(e, cluster_status);
            }
            Ok(nodes)
                if nodes
                    .iter()
                    .any(|n| n.name.is_empty() || n.name.len() > MAX_NODE_NAME) =>
            {
                let e = format!(
                    "/api/nodes: a node name is empty or longer than {MAX_NODE_NAME} bytes"
                );
                return self.unusable_nodes(e, cluster_status);
            }
            Ok(nodes) => nodes,
        };
        for n in &nodes {
            let running = n.running == Some(true);
            self.facts.cluster_view.insert(n.name.clone(), running);
            cluster_status.insert(n.name.clone(), if running { "OK" } else { "Fail" }.into());
            let is_me = self.node.as_deref() == Some(n.name.as_str());
            self.partitions(n, is_me);
            if is_me {
                self.own_entry(n, alarm_reported);
            } else if !running {
                self.peer_down(n);
            }
        }
        if let Some(me_name) = &self.node {
            if !self.facts.cluster_view.contains_key(me_name) {
                self.mgmt_errors
                    .push(format!("/api/nodes does not list this node ({me_name})"));
            }
        }
        cluster_status
    }

    fn unusable_nodes(
        &mut self,
        error: String,
        cluster_status: serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.mgmt_errors.push(error);
        cluster_status
    }

    /// A member that reports a partition splits the cluster.
    fn partitions(&mut self, n: &NodeEntry, is_me: bool) {
        let parts = n.partitions.clone().unwrap_or_default();
        if parts.is_empty() {
            return;
        }
        if is_me {
            self.facts.partitions = parts.clone();
        }
        self.f.worsen(
            NodeStatus::Fail,
            codes::PARTITION,
            format!(
                "{} reports a network partition with {} (as seen from {})",
                n.name,
                parts.join(", "),
                self.me
            ),
        );
    }

    /// This node's own entry: alarms (only when the live check could not be read), fd
    /// use, and its metrics for the legacy entry.
    fn own_entry(&mut self, n: &NodeEntry, alarm_reported: bool) {
        let alarms: Vec<&str> = [(n.mem_alarm, "memory"), (n.disk_free_alarm, "disk space")]
            .into_iter()
            .filter(|(flag, _)| *flag == Some(true))
            .map(|(_, what)| what)
            .collect();
        // `/api/nodes` lags the live check by up to 5 s; it only adds a reason
        // when the live check could not be read.
        if !alarms.is_empty() && !alarm_reported && self.facts.local_alarm != Some(false) {
            self.facts.local_alarm = Some(true);
            self.f.worsen(
                NodeStatus::Fail,
                codes::LOCAL_ALARM,
                format!(
                    "resource alarm in effect on {}: {}",
                    self.me,
                    alarms.join(", ")
                ),
            );
        }
        if let Some(r) = ratio(n.fd_used, n.fd_total) {
            if r > self.cfg.fd_warn_ratio {
                self.f.worsen(
                    NodeStatus::Degraded,
                    codes::FD_USAGE,
                    format!(
                        "{} uses {:.0}% of its file descriptors ({}/{})",
                        self.me,
                        r * 100.0,
                        n.fd_used.unwrap_or(0),
                        n.fd_total.unwrap_or(0)
                    ),
                );
            }
        }
        let metrics: serde_json::Map<String, serde_json::Value> = [
            ("mem_used", n.mem_used),
            ("mem_limit", n.mem_limit),
            ("disk_free", n.disk_free),
            ("disk_free_limit", n.disk_free_limit),
            ("fd_used", n.fd_used),
            ("fd_total", n.fd_total),
            ("sockets_used", n.sockets_used),
            ("sockets_total", n.sockets_total),
            ("uptime_ms", n.uptime),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.into())))
        .collect();
        self.extra.insert("metrics".into(), metrics.into());
    }

    /// Which metadata store the cluster runs, from the feature flags. Unreadable flags are
    /// no error: the rule that needs them ([`Self::minority`]) just does not apply.
    fn metadata_store(&mut self, reply: Option<&Reply>) {
        let Some(Reply::Answered { status: 200, body }) = reply else {
            return;
        };
        let Ok(flags) = parse_json::<Vec<FeatureFlag>>(body) else {
            return;
        };
        let khepri = flags
            .iter()
            .any(|f| f.name == "khepri_db" && f.state.as_deref() == Some("enabled"));
        self.khepri = Some(khepri);
        let store = if khepri { "khepri" } else { "mnesia" };
        self.extra.insert("metadata_store".into(), store.into());
    }

    /// With Khepri, a node that sees no more than half of the members running (itself
    /// included) is in a minority: the metadata store and every quorum queue lose their
    /// majority there, whether the others stopped or a link was cut (from inside, the two
    /// look the same). With Mnesia a lone survivor still serves classic queues, so the
    /// rule does not apply.
    fn minority(&mut self) {
        let Some(me_name) = self.node.clone() else {
            return;
        };
        if self.khepri != Some(true) || self.facts.cluster_view.get(&me_name) != Some(&true) {
            return;
        }
        let total = self.facts.cluster_view.len();
        let running = self.facts.cluster_view.values().filter(|up| **up).count();
        if running * 2 <= total && total > 1 {
            self.f.worsen(
                NodeStatus::Fail,
                codes::CLUSTER_MINORITY,
                format!(
                    "{} sees only {running} of {total} cluster members running (itself included): \
                     it is in a minority, where the Khepri metadata store and quorum queues have no majority",
                    self.me
                ),
            );
        }
    }

    /// `node-is-quorum-critical`: stopping this node now would lose a Raft majority.
    /// With Khepri the metadata store (`rabbitmq_metadata`) is listed as soon as any
    /// member of a 3-node cluster is down; it is reported too, named as what it is,
    /// because stopping this node would then stop every definition change cluster-wide.
    fn quorum_critical(&mut self, reply: Option<&Reply>) {
        let Some(reply) = reply else { return };
        // 404: the build has no such check; nothing to read, nothing wrong.
        if matches!(reply, Reply::Answered { status: 404, .. }) {
            return;
        }
        let body = match parse_check(reply) {
            Ok(None) => return,
            Ok(Some(_)) => match reply {
                Reply::Answered { body, .. } => body,
                Reply::Failed { .. } => return,
            },
            Err(e) => {
                self.mgmt_errors
                    .push(format!("/api/health/checks/node-is-quorum-critical: {e}"));
                return;
            }
        };
        let entries = parse_json::<CriticalCheck>(body)
            .map(|c| c.queues)
            .unwrap_or_default();
        let mut named: Vec<String> = entries
            .iter()
            .map(|q| {
                if q.name == METADATA_STORE && q.kind.as_deref() != Some("rabbit_quorum_queue") {
                    "the metadata store (Khepri)".to_string()
                } else {
                    q.readable_name
                        .clone()
                        .unwrap_or_else(|| format!("queue '{}'", q.name))
                }
            })
            .collect();
        let more = named.len().saturating_sub(QUEUES_NAMED);
        named.truncate(QUEUES_NAMED);
        let what = if named.is_empty() {
            "a quorum queue".to_string()
        } else if more > 0 {
            format!("{} (+{more} more)", named.join(", "))
        } else {
            named.join(", ")
        };
        self.f.worsen(
            NodeStatus::Degraded,
            codes::QUORUM_CRITICAL,
            format!(
                "{} is quorum-critical: stopping it now would lose the majority of {what}",
                self.me
            ),
        );
    }

    /// Quorum queues with a member on this node that have no majority of their members
    /// online (`state: "minority"`): they take no publishes and deliver nothing.
    fn quorum_queues(&mut self, reply: Option<&Reply>) {
        let Some(reply) = reply else { return };
        let list = match reply {
            Reply::Answered { status: 200, body } => parse_json::<QueueList>(body),
            r => Err(reply_problem(r).unwrap_or_else(|| "unexpected status".into())),
        };
        let queues = match list {
            Ok(QueueList::Page { items }) | Ok(QueueList::Plain(items)) => items,
            Err(e) => {
                self.mgmt_errors.push(format!("/api/queues: {e}"));
                return;
            }
        };
        let mine = |q: &QueueEntry| match &self.node {
            Some(n) => q.members.contains(n),
            None => true,
        };
        let lost: Vec<String> = queues
            .iter()
            .filter(|q| q.kind.as_deref() == Some("quorum") && mine(q))
            .filter(|q| {
                q.state.as_deref() == Some("minority")
                    || (!q.members.is_empty() && q.online.len() * 2 <= q.members.len())
            })
            .map(|q| {
                format!(
                    "'{}' in vhost '{}' ({} of {} members online: {})",
                    q.name,
                    q.vhost,
                    q.online.len(),
                    q.members.len(),
                    q.online.join(", ")
                )
            })
            .collect();
        if lost.is_empty() {
            return;
        }
        let more = lost.len().saturating_sub(QUEUES_NAMED);
        let mut msg = if lost.len() == 1 {
            format!("quorum queue {} has no majority", lost[0])
        } else {
            format!(
                "quorum queues without a majority: {}",
                lost[..lost.len().min(QUEUES_NAMED)].join("; ")
            )
        };
        if more > 0 {
            msg.push_str(&format!(" (+{more} more)"));
        }
        msg.push_str(": it takes no publishes and delivers nothing");
        self.f
            .worsen(NodeStatus::Fail, codes::QUORUM_QUEUE_MINORITY, msg);
    }

    /// Another member not running, as this node sees it: Degraded, on that member.
    fn peer_down(&mut self, n: &NodeEntry) {
        self.f.reasons.push(
            codes::PEER_DOWN
                .reason(format!(
                    "cluster member {} is not running (as seen from {})",
                    n.name, self.me
                ))
                .on_node(n.name.clone()),
        );
        self.f.status = self.f.status.max(NodeStatus::Degraded);
    }

    /// Management calls that could not be used: one Fail reason saying which, and
    /// whether AMQP still works.
    fn management(&mut self, raw: &Raw) {
        self.facts.management_ok = Some(self.mgmt_errors.is_empty());
        if self.mgmt_errors.is_empty() {
            return;
        }
        let base = self.cfg.base();
        let all_unreachable = [
            &raw.overview,
            &raw.local_alarms,
            &raw.port_listener,
            &raw.virtual_hosts,
            &raw.nodes,
        ]
        .iter()
        .all(|r| matches!(r, Reply::Failed { .. }));
        let (code, head) = if all_unreachable {
            (
                codes::MANAGEMENT_UNREACHABLE,
                format!("management API {base} unreachable"),
            )
        } else {
            (
                codes::MANAGEMENT_ERROR,
                format!("management API {base} gave unusable answers"),
            )
        };
        let amqp_note = match &raw.amqp {
            Some(seen) if seen.outcome.ok() => format!(
                "; AMQP on port {} still works ({} cycles ago)",
                self.cfg.amqp_port, seen.cycles_ago
            ),
            Some(_) => String::new(),
            None => "; AMQP not checked yet".into(),
        };
        let mut msg = format!("{head}: {}{amqp_note}", self.mgmt_errors[0]);
        if self.mgmt_errors.len() > 1 {
            msg.push_str(&format!(
                " (+{} more failed management calls)",
                self.mgmt_errors.len() - 1
            ));
        }
        self.f.worsen(NodeStatus::Fail, code, msg);
    }

    /// AMQP, the path real clients take.
    fn amqp(&mut self, seen: &AmqpSeen) {
        let target = self.cfg.amqp_target().describe();
        self.facts.amqp_ok = Some(seen.outcome.ok());
        self.facts.amqp_blocked = Some(seen.outcome.blocked);
        if let Some(msg) = seen.outcome.describe_failure(&target) {
            // A connection blocked by an alarm on another node is that node's fault; this
            // node is judged by its own local alarm check above.
            if !(seen.outcome.blocked && self.facts.local_alarm == Some(false)) {
                let mgmt_note = if self.facts.management_ok == Some(true) {
                    "; management API answers"
                } else {
                    ""
                };
                self.f.worsen(
                    NodeStatus::Fail,
                    codes::AMQP_FAILED,
                    format!("{msg}{mgmt_note}"),
                );
            }
        }
        let mut a = serde_json::to_value(&seen.outcome).unwrap_or_default();
        if let Some(obj) = a.as_object_mut() {
            obj.insert("cycles_ago".into(), seen.cycles_ago.into());
        }
        self.extra.insert("amqp".into(), a);
    }

    /// The legacy shape: node_status like the health check 5.0.5 used, cluster_status as
    /// this node sees the members.
    fn finish(mut self, cluster_status: serde_json::Map<String, serde_json::Value>) -> Finding {
        let mut f = self.f;
        let node_status = if f.status == NodeStatus::Fail {
            serde_json::json!({"status": "failed", "reason": f.reasons.first().map(|r| r.message.clone()).unwrap_or_default()})
        } else {
            serde_json::json!({"status": "ok"})
        };
        self.extra.insert("node_status".into(), node_status);
        self.extra
            .insert("cluster_status".into(), cluster_status.into());
        if let Some(n) = &self.node {
            self.extra.insert("node_name".into(), n.clone().into());
        }
        let active = f.status != NodeStatus::Fail;
        f.set_service(SERVICE, active, None, self.extra);
        f.facts.broker = Some(self.facts);
        f
    }
}

/// The `rabbitmq` probe: its management client and credentials, the last AMQP outcome,
/// and whether the last management API answers were usable.
pub struct Rabbitmq {
    client: Result<sr_tls::HttpsClient, String>,
    auth: String,
    /// The last AMQP outcome and the cycle it was taken in.
    last_amqp: Mutex<Option<(u64, Outcome)>>,
    /// The previous cycle's management API failed: run AMQP now rather than when due.
    mgmt_failed: AtomicBool,
    /// The last management answers none of which timed out, with their cycle's time
    /// (unix seconds): what [`bridge_stalls`] may read a stalled call from, for
    /// [`STALL_GRACE_S`].
    last_clean: Mutex<Option<(i64, Raw)>>,
}

impl TypedProbe for Rabbitmq {
    const KIND: &'static str = "rabbitmq";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        Rabbitmq {
            client: cfg.tls.client(Duration::from_millis(cfg.timeout_ms)),
            auth: basic_auth(&cfg.username, &cfg.password),
            last_amqp: Mutex::new(None),
            mgmt_failed: AtomicBool::new(false),
            last_clean: Mutex::new(None),
        }
    }

    /// Management (two sequential steps at most) and AMQP run concurrently.
    fn collect_budget(cfg: &Config) -> Duration {
        Duration::from_millis(2 * cfg.timeout_ms).max(amqp::round_trip_budget(
            Duration::from_millis(cfg.amqp_timeout_ms),
        ))
    }

    /// One full collection for `ctx.cycle`.
    async fn collect(&self, cfg: &Config, ctx: &ProbeContext) -> Raw {
        let due = cfg.amqp_every > 0
            && (ctx.cycle.is_multiple_of(cfg.amqp_every)
                || self.mgmt_failed.load(Ordering::Relaxed)
                || self.last_amqp.lock().map(|g| g.is_none()).unwrap_or(true));
        let amqp_fut = async {
            if due {
                Some(amqp::round_trip(&cfg.amqp_target()).await)
            } else {
                None
            }
        };
        let (mut raw, fresh) =
            tokio::join!(collect_management(cfg, &self.client, &self.auth), amqp_fut);
        {
            let mut clean = self.last_clean.lock().unwrap_or_else(|p| p.into_inner());
            let previous = clean
                .as_ref()
                .filter(|(at, _)| (0..=STALL_GRACE_S).contains(&(ctx.now - at)))
                .map(|(_, r)| r);
            if bridge_stalls(&mut raw, previous) {
                *clean = Some((ctx.now, raw.clone()));
            }
        }
        let mut last = self.last_amqp.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = fresh {
            *last = Some((ctx.cycle, o));
        }
        raw.amqp = last.as_ref().map(|(at, o)| AmqpSeen {
            outcome: o.clone(),
            cycles_ago: ctx.cycle.saturating_sub(*at),
        });
        raw
    }

    /// The node's status from one cycle's observations.
    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut j = Judgement::new(cfg, raw);
        let alarm_reported = j.local_alarms(&raw.local_alarms);
        j.port_listener(&raw.port_listener);
        j.virtual_hosts(&raw.virtual_hosts);
        if let Some(cert) = &raw.certificate_expiration {
            j.certificates(cert);
        }
        j.metadata_store(raw.feature_flags.as_ref());
        let cluster_status = j.cluster_view(&raw.nodes, alarm_reported);
        j.minority();
        j.quorum_critical(raw.quorum_critical.as_ref());
        j.quorum_queues(raw.queues.as_ref());
        j.management(raw);
        if !raw.reused.is_empty() {
            j.extra
                .insert("management_reused".into(), raw.reused.clone().into());
        }
        if let Some(seen) = &raw.amqp {
            j.amqp(seen);
        }
        j.finish(cluster_status)
    }

    fn remember(&self, finding: &Finding) {
        let mgmt_ok = finding.facts.broker.as_ref().and_then(|b| b.management_ok) == Some(true);
        self.mgmt_failed.store(!mgmt_ok, Ordering::Relaxed);
    }
}
