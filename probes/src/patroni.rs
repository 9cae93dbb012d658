//! `patroni`: the local Patroni member, its view of the cluster and its dynamic config.
//!
//! - `GET /patroni` every cycle: local and cheap (state, role, timeline, xlog, the
//!   leader's `replication[]`, `pause`, `pending_restart`, `dcs_last_seen`,
//!   `cluster_unlocked`).
//! - `GET /cluster` and `GET /config` only every `cluster_every` cycles: `/cluster` forces
//!   a DCS read, and when etcd is unreachable Patroni hangs or closes the connection
//!   without any response, which this probe reports as "DCS unreachable". The last
//!   answers are cached between refreshes and their age is reported.
//!
//! Patroni 3.0.2 speaks HTTP/1.0, one request per connection; `verify_client: required`
//! needs a client certificate on every call; Basic auth only guards unsafe methods, but is
//! sent when configured so a stricter proxy in front also works.
//!
//! Only `interpret` decides; it reads the clock from the raw's `now`.

use crate::net::{self, Fetch, Secret, TlsFiles};
use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::{DbFacts, MemberView, ReplicationView};
use sr_protocol::reasons::{self as codes, ReasonCode};
use sr_protocol::NodeStatus;
use sr_tls::{Acks, HttpsClient};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Service display name on the legacy wire.
pub const SERVICE: &str = "Patroni";
/// Patroni's own default `ttl`, used until `/config` has been read.
const DEFAULT_TTL_S: u64 = 30;
/// Patroni's own default `maximum_lag_on_failover`.
const DEFAULT_MAX_LAG: u64 = 1_048_576;
/// Bound on list entries copied into facts, so a hostile body cannot bloat reports.
const MAX_ENTRIES: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the local REST API, e.g. `https://127.0.0.1:8008`.
    pub url: String,
    /// This member's `name:` in patroni.yml (Patroni 3.0 does not say it in `/patroni`).
    pub member: String,
    #[serde(default)]
    pub tls: TlsFiles,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Deadline for each request.
    #[serde(default = "default_ms::<1000>")]
    pub timeout_ms: u64,
    /// Read `/cluster` and `/config` every this many cycles (1 = every cycle).
    #[serde(default = "default_cluster_every")]
    pub cluster_every: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_cluster_every() -> u64 {
    5
}
fn default_max_body() -> usize {
    256 * 1024
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.tls.validate(&self.url, "patroni");
        if self.member.trim().is_empty() {
            errors.push("member must not be empty".into());
        }
        if self.url.ends_with('/') {
            errors.push(format!("url {:?} must not end with '/'", self.url));
        }
        if self.username.is_some() != self.password.is_some() {
            errors.push("username and password must be set together".into());
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors.extend(range_error("cluster_every", self.cluster_every, 1..=3600));
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            errors.push(format!(
                "max_body_bytes must be 1024..=16777216, got {}",
                self.max_body_bytes
            ));
        }
        errors
    }
}

/// A fetch and when (Unix seconds) it was made: `/cluster` and `/config` are cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub fetch: Fetch,
    pub at: i64,
}

/// Everything `collect` saw in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub patroni: Fetch,
    /// The latest `/cluster` answer; `None` before the first refresh.
    pub cluster: Option<Timed>,
    pub config: Option<Timed>,
    /// Unix seconds at the start of the cycle: the clock ages are judged by.
    pub now: i64,
}

// ---- documents (only the fields we use; Patroni adds keys between versions) ----

#[derive(Debug, Deserialize)]
struct PatroniDoc {
    state: String,
    role: String,
    #[serde(default)]
    timeline: Option<u64>,
    #[serde(default)]
    xlog: Option<Xlog>,
    #[serde(default)]
    replication: Option<Vec<Replication>>,
    #[serde(default)]
    pause: Option<bool>,
    #[serde(default)]
    pending_restart: Option<bool>,
    #[serde(default)]
    dcs_last_seen: Option<i64>,
    #[serde(default)]
    cluster_unlocked: Option<bool>,
    #[serde(default)]
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct Xlog {
    #[serde(default)]
    paused: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Replication {
    application_name: String,
    state: String,
    sync_state: String,
}

#[derive(Debug, Deserialize)]
struct ClusterDoc {
    members: Vec<ClusterMember>,
}

#[derive(Debug, Deserialize)]
struct ClusterMember {
    name: String,
    role: String,
    state: String,
    #[serde(default)]
    timeline: Option<u64>,
    #[serde(default)]
    lag: Option<Lag>,
    #[serde(default)]
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `lag` is a byte count or the string `"unknown"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Lag {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    maximum_lag_on_failover: Option<u64>,
    /// A bool in Patroni 3.x; Patroni 4 also accepts `"quorum"`.
    #[serde(default)]
    synchronous_mode: Option<serde_json::Value>,
}

fn nofailover(tags: &Option<serde_json::Map<String, serde_json::Value>>) -> bool {
    tags.as_ref()
        .and_then(|t| t.get("nofailover"))
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
}

/// Patroni's role names mapped to ours: `master` (3.x) and `primary` (4.x) are `leader`.
pub fn normalise_role(role: &str) -> &str {
    match role {
        "master" | "primary" | "leader" => "leader",
        other => other,
    }
}

/// Patroni's role as a 5.0.5 manager reads it: its roll-up looks for `master`, which
/// Patroni 4 calls `primary`. Every other role is passed on as Patroni says it.
fn legacy_role(role: &str) -> &str {
    match role {
        "primary" => "master",
        other => other,
    }
}

fn state_is_healthy(state: &str) -> bool {
    matches!(state, "running" | "streaming" | "in archive recovery")
}

fn state_is_transitional(state: &str) -> bool {
    matches!(
        state,
        "starting"
            | "stopping"
            | "restarting"
            | "creating replica"
            | "initializing new cluster"
            | "running custom bootstrap script"
    )
}

/// The `/patroni` document, or the code and message of the Fail finding that replaces
/// every other rule when there is none.
fn patroni_document(cfg: &Config, fetch: &Fetch) -> Result<PatroniDoc, (ReasonCode, String)> {
    match fetch {
        Fetch::Answered { status: 200, body } => net::parse_json(body).map_err(|e| {
            (
                codes::PATRONI_BAD_RESPONSE,
                format!("Patroni {}/patroni answered garbage: {e}", cfg.url),
            )
        }),
        Fetch::Answered { status, .. } => Err((
            codes::PATRONI_BAD_RESPONSE,
            format!("Patroni {}/patroni answered HTTP {status}", cfg.url),
        )),
        other => {
            let hint = match other {
                Fetch::ConnectFailed(e) if e.contains("certificate") || e.contains("alert") => {
                    " (TLS refused: check tls.ca_file and the client certificate)"
                }
                _ => "",
            };
            Err((
                codes::PATRONI_UNREACHABLE,
                format!(
                    "Patroni REST API {} is unreachable: {}{hint}",
                    cfg.url,
                    other.describe(),
                ),
            ))
        }
    }
}

/// PostgreSQL's state as Patroni reports it: transitional states degrade, anything else
/// that is not running fails. Returns whether the state is healthy.
fn state_rule(doc: &PatroniDoc, f: &mut Finding) -> bool {
    let healthy_state = state_is_healthy(&doc.state);
    if !healthy_state {
        if state_is_transitional(&doc.state) {
            f.worsen(
                NodeStatus::Degraded,
                codes::POSTGRES_TRANSITIONAL,
                format!("PostgreSQL is {} according to Patroni", doc.state),
            );
        } else {
            f.worsen(
                NodeStatus::Fail,
                codes::POSTGRES_NOT_RUNNING,
                format!(
                    "PostgreSQL is not running: Patroni state is {:?}",
                    doc.state
                ),
            );
        }
    }
    healthy_state
}

/// A role other than leader, replica or standby leader is a change in progress.
fn role_rule(doc: &PatroniDoc, role: &str, f: &mut Finding) {
    if !matches!(role, "leader" | "replica" | "standby_leader") {
        f.worsen(
            NodeStatus::Degraded,
            codes::ROLE_UNSETTLED,
            format!("Patroni role is {:?}", doc.role),
        );
    }
}

/// The member's own flags: paused, pending restart, no leader lock, replay paused.
fn flags_rule(doc: &PatroniDoc, f: &mut Finding) {
    if doc.pause == Some(true) {
        f.worsen(
            NodeStatus::Degraded,
            codes::PATRONI_PAUSED,
            "Patroni is paused (maintenance mode): no automatic failover",
        );
    }
    if doc.pending_restart == Some(true) {
        f.worsen(
            NodeStatus::Degraded,
            codes::PENDING_RESTART,
            "PostgreSQL needs a restart to apply changed settings",
        );
    }
    if doc.cluster_unlocked == Some(true) {
        f.worsen(
            NodeStatus::Degraded,
            codes::NO_LEADER_LOCK,
            "Patroni sees no leader lock in the DCS (cluster_unlocked)",
        );
    }
    if doc.xlog.as_ref().and_then(|x| x.paused) == Some(true) {
        f.worsen(
            NodeStatus::Degraded,
            codes::REPLAY_PAUSED,
            "WAL replay is paused on this replica",
        );
    }
}

/// `/config`: the thresholds (`ttl`, `maximum_lag_on_failover`) and synchronous mode. A
/// bad `/config` must not hide the rest, so it only degrades; defaults apply.
fn config_rule(
    cfg: &Config,
    config: Option<&Timed>,
    facts: &mut DbFacts,
    f: &mut Finding,
) -> (u64, u64) {
    let mut ttl = DEFAULT_TTL_S;
    let mut max_lag = DEFAULT_MAX_LAG;
    if let Some(c) = config {
        match net::parse_answer::<ConfigDoc>(&c.fetch) {
            Ok(doc) => {
                ttl = doc.ttl.unwrap_or(DEFAULT_TTL_S);
                max_lag = doc.maximum_lag_on_failover.unwrap_or(DEFAULT_MAX_LAG);
                facts.ttl = Some(ttl);
                facts.maximum_lag_on_failover = Some(max_lag);
                facts.synchronous_mode = Some(match doc.synchronous_mode {
                    None | Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::Bool(b)) => b,
                    Some(serde_json::Value::String(s)) => !matches!(s.as_str(), "off" | "false"),
                    Some(_) => true,
                });
            }
            Err(e) => f.worsen(
                NodeStatus::Degraded,
                codes::PATRONI_CONFIG_UNAVAILABLE,
                format!("cannot read Patroni {}/config: {e}", cfg.url),
            ),
        }
    }
    (ttl, max_lag)
}

/// Patroni last reached the DCS longer ago than `ttl`. Returns whether it is recent.
fn dcs_last_seen_rule(doc: &PatroniDoc, now: i64, ttl: u64, f: &mut Finding) -> bool {
    let mut dcs_reachable = true;
    if let Some(seen) = doc.dcs_last_seen {
        let age = now.saturating_sub(seen);
        if age > ttl as i64 {
            dcs_reachable = false;
            f.worsen(
                NodeStatus::Degraded,
                codes::DCS_UNREACHABLE,
                format!("DCS unreachable: Patroni last reached etcd {age} s ago (ttl {ttl} s)"),
            );
        }
    }
    dcs_reachable
}

/// `/cluster`: this node's view of every member. Returns this member's lag and whether
/// the DCS answered (Patroni gives no response on `/cluster` when etcd is unreachable).
fn cluster_rule(
    cfg: &Config,
    cluster: Option<&Timed>,
    now: i64,
    role: &str,
    facts: &mut DbFacts,
    f: &mut Finding,
) -> (Option<u64>, bool) {
    let mut own_lag = None;
    let mut dcs_reachable = true;
    if let Some(c) = cluster {
        facts.cluster_view_age_s = Some(now.saturating_sub(c.at).max(0) as u64);
        match &c.fetch {
            Fetch::NoResponse(_) | Fetch::TimedOut { .. } => {
                dcs_reachable = false;
                f.worsen(
                    NodeStatus::Degraded,
                    codes::DCS_UNREACHABLE,
                    format!(
                        "DCS unreachable: Patroni {}/cluster gave no response ({})",
                        cfg.url,
                        c.fetch.describe()
                    ),
                );
            }
            fetch => match net::parse_answer::<ClusterDoc>(fetch) {
                Ok(doc) => {
                    for m in doc.members.iter().take(MAX_ENTRIES) {
                        let view = MemberView {
                            role: normalise_role(&m.role).to_string(),
                            state: m.state.clone(),
                            timeline: m.timeline,
                            lag_bytes: match m.lag {
                                Some(Lag::Bytes(b)) => Some(b),
                                _ => None,
                            },
                            nofailover: nofailover(&m.tags),
                        };
                        if matches!(view.role.as_str(), "leader" | "standby_leader") {
                            facts.cluster_leader = Some(m.name.clone());
                        }
                        if m.name == cfg.member {
                            own_lag = view.lag_bytes;
                            if view.nofailover {
                                facts.nofailover = true;
                            }
                            if let (Some(Lag::Text(t)), "replica") = (&m.lag, role) {
                                let t: String = t.chars().take(32).collect();
                                f.worsen(
                                    NodeStatus::Degraded,
                                    codes::REPLICA_LAG_UNKNOWN,
                                    format!("Patroni reports this replica's lag as {t:?}"),
                                );
                            }
                        }
                        facts.cluster_members.insert(m.name.clone(), view);
                    }
                    if !facts.cluster_members.contains_key(&cfg.member) {
                        f.worsen(
                            NodeStatus::Degraded,
                            codes::MEMBER_NOT_IN_CLUSTER,
                            format!("member {} is not listed in Patroni's /cluster (its DCS key is missing)", cfg.member),
                        );
                    }
                }
                Err(e) => f.worsen(
                    NodeStatus::Degraded,
                    codes::PATRONI_BAD_RESPONSE,
                    format!("cannot read Patroni {}/cluster: {e}", cfg.url),
                ),
            },
        }
    }
    (own_lag, dcs_reachable)
}

/// A replica lagging more than `maximum_lag_on_failover` cannot take over.
fn replica_lag_rule(
    role: &str,
    own_lag: Option<u64>,
    max_lag: u64,
    facts: &mut DbFacts,
    f: &mut Finding,
) {
    if role == "replica" {
        if let Some(lag) = own_lag {
            facts.lag_bytes = Some(lag);
            if lag > max_lag {
                f.worsen(
                    NodeStatus::Degraded,
                    codes::REPLICA_LAG,
                    format!("replica lags {lag} bytes, over maximum_lag_on_failover {max_lag}"),
                );
            }
        }
    }
}

/// Under synchronous mode the leader needs a streaming synchronous standby.
fn sync_standby_rule(role: &str, facts: &DbFacts, replication: &[&Replication], f: &mut Finding) {
    if role == "leader" && facts.synchronous_mode == Some(true) {
        let sync_streaming = replication
            .iter()
            .any(|r| r.state == "streaming" && matches!(r.sync_state.as_str(), "sync" | "quorum"));
        if !sync_streaming {
            f.worsen(
                NodeStatus::Degraded,
                codes::NO_SYNC_STANDBY,
                "synchronous_mode is on but no synchronous standby is streaming",
            );
        }
    }
}

/// The legacy `Patroni` entry, exactly as 5.0.5 reads it. `role` is in 5.0.5's words (see
/// [`legacy_role`]); the facts keep the true role.
fn legacy_entry(
    doc: &PatroniDoc,
    role: &str,
    replication: &[&Replication],
    healthy_state: bool,
    f: &mut Finding,
) {
    let mut status_obj = serde_json::Map::new();
    status_obj.insert("state".into(), doc.state.clone().into());
    status_obj.insert("role".into(), legacy_role(&doc.role).into());
    if role == "leader" {
        let list: Vec<serde_json::Value> = replication
            .iter()
            .map(|r| serde_json::json!({"state": r.state, "sync_state": r.sync_state}))
            .collect();
        status_obj.insert("replications_state".into(), list.into());
    }
    let mut extra = serde_json::Map::new();
    extra.insert("patroni_status".into(), status_obj.into());
    f.set_service(SERVICE, healthy_state, None, extra);
}

/// The member's own facts for the roll-up.
fn member_facts(doc: &PatroniDoc, role: &str, replication: &[&Replication], facts: &mut DbFacts) {
    facts.role = Some(role.to_string());
    facts.state = Some(doc.state.clone());
    facts.timeline = doc.timeline;
    facts.nofailover |= nofailover(&doc.tags);
    facts.pause = doc.pause.or(Some(false));
    facts.pending_restart = doc.pending_restart.or(Some(false));
    facts.cluster_unlocked = doc.cluster_unlocked.or(Some(false));
    facts.replay_paused = doc.xlog.as_ref().and_then(|x| x.paused);
    facts.dcs_last_seen = doc.dcs_last_seen;
    if role == "leader" {
        facts.replication = replication
            .iter()
            .map(|r| {
                (
                    r.application_name.clone(),
                    ReplicationView {
                        state: r.state.clone(),
                        sync_state: r.sync_state.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
    }
}

/// The Fail finding for "no usable `/patroni` answer". The legacy entry still carries an
/// empty `patroni_status`, as the 5.0.5 reporter sent: 5.0.5's `_get_db_cluster_status`
/// indexes it and answers 500 (`KeyError`) when it is missing.
fn unreachable(_cfg: &Config, mut facts: DbFacts, code: ReasonCode, message: String) -> Finding {
    facts.patroni_reachable = Some(false);
    let mut f = Finding::fail(code, message);
    let mut extra = serde_json::Map::new();
    extra.insert("patroni_status".into(), serde_json::Map::new().into());
    f.set_service(SERVICE, false, None, extra);
    f.facts.db = Some(facts);
    f
}

/// The cached slow-path answers.
#[derive(Default)]
struct Cache {
    cluster: Option<Timed>,
    config: Option<Timed>,
}

/// The `patroni` probe: its client, its credentials and the slow-path cache.
pub struct Patroni {
    client: Result<HttpsClient, String>,
    auth: Option<String>,
    cache: Mutex<Cache>,
}

impl Patroni {
    /// The probe with a choice of TCP acknowledgements: the registry builds it with
    /// [`Acks::Quick`] (see [`net::TlsFiles::client_with_acks`]); the db benchmark also
    /// builds it with [`Acks::Delayed`], to measure both in one run.
    pub fn with_acks(cfg: &Config, acks: Acks) -> Self {
        let auth = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(net::basic_auth(u, p)),
            _ => None,
        };
        Patroni {
            client: cfg
                .tls
                .client_with_acks(Duration::from_millis(cfg.timeout_ms), acks),
            auth,
            cache: Mutex::new(Cache::default()),
        }
    }
}

impl TypedProbe for Patroni {
    const KIND: &'static str = "patroni";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        Patroni::with_acks(cfg, Acks::Quick)
    }

    /// The three requests run concurrently, each bounded by timeout_ms.
    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    /// The I/O shell: `/patroni` always, `/cluster` and `/config` when due. Never fails.
    async fn collect(&self, cfg: &Config, ctx: &ProbeContext) -> Raw {
        let due = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.cluster.is_none() || ctx.cycle.is_multiple_of(cfg.cluster_every)
        };
        let (patroni, slow) = if due {
            let (p, c, k) = tokio::join!(
                self.get(cfg, "/patroni"),
                self.get(cfg, "/cluster"),
                self.get(cfg, "/config")
            );
            (p, Some((c, k)))
        } else {
            (self.get(cfg, "/patroni").await, None)
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(patroni, Fetch::Answered { .. }) {
            // Patroni itself is down: its slow-path answers say nothing; refresh them as
            // soon as it is back instead of showing a pre-outage view.
            *cache = Cache::default();
        } else if let Some((cluster, config)) = slow {
            cache.cluster = Some(Timed {
                fetch: cluster,
                at: ctx.now,
            });
            cache.config = Some(Timed {
                fetch: config,
                at: ctx.now,
            });
        }
        Raw {
            patroni,
            cluster: cache.cluster.clone(),
            config: cache.config.clone(),
            now: ctx.now,
        }
    }

    /// The pure decision: node status, reasons, the legacy `Patroni` entry and db facts.
    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut facts = DbFacts {
            member: Some(cfg.member.clone()),
            ..Default::default()
        };
        let doc = match patroni_document(cfg, &raw.patroni) {
            Ok(doc) => doc,
            Err((code, message)) => return unreachable(cfg, facts, code, message),
        };
        facts.patroni_reachable = Some(true);
        let mut f = Finding::ok();
        let role = normalise_role(&doc.role).to_string();
        let healthy_state = state_rule(&doc, &mut f);
        role_rule(&doc, &role, &mut f);
        flags_rule(&doc, &mut f);
        let (ttl, max_lag) = config_rule(cfg, raw.config.as_ref(), &mut facts, &mut f);
        let dcs_seen = dcs_last_seen_rule(&doc, raw.now, ttl, &mut f);
        let (own_lag, cluster_answers) = cluster_rule(
            cfg,
            raw.cluster.as_ref(),
            raw.now,
            &role,
            &mut facts,
            &mut f,
        );
        replica_lag_rule(&role, own_lag, max_lag, &mut facts, &mut f);
        let replication: Vec<&Replication> = doc
            .replication
            .as_deref()
            .unwrap_or_default()
            .iter()
            .take(MAX_ENTRIES)
            .collect();
        sync_standby_rule(&role, &facts, &replication, &mut f);
        legacy_entry(&doc, &role, &replication, healthy_state, &mut f);
        member_facts(&doc, &role, &replication, &mut facts);
        facts.dcs_reachable = Some(dcs_seen && cluster_answers);
        f.facts.db = Some(facts);
        f
    }
}

impl Patroni {
    async fn get(&self, cfg: &Config, path: &str) -> Fetch {
        let url = format!("{}{path}", cfg.url);
        net::fetch(
            &self.client,
            http::Method::GET,
            &url,
            self.auth.as_deref(),
            b"",
            Duration::from_millis(cfg.timeout_ms),
            cfg.max_body_bytes,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            url: "http://127.0.0.1:8008".into(),
            member: "pg1".into(),
            tls: TlsFiles::default(),
            username: None,
            password: None,
            timeout_ms: 500,
            cluster_every: 5,
            max_body_bytes: 65536,
        }
    }

    fn answered(body: &str) -> Fetch {
        Fetch::Answered {
            status: 200,
            body: body.as_bytes().to_vec(),
        }
    }

    /// `interpret` with the clock at `now`.
    fn interpret_at(cfg: &Config, raw: &Raw, now: i64) -> Finding {
        Patroni::interpret(cfg, &Raw { now, ..raw.clone() })
    }

    fn raw(patroni: &str) -> Raw {
        Raw {
            patroni: answered(patroni),
            cluster: None,
            config: None,
            now: 0,
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = cfg();
        c.url = "https://x/".into();
        c.member = "".into();
        c.username = Some("u".into());
        c.timeout_ms = 0;
        c.cluster_every = 0;
        c.max_body_bytes = 1;
        assert_eq!(c.validate().len(), 7, "{:?}", c.validate());
        assert!(cfg().validate().is_empty());
    }

    #[test]
    fn config_rejects_unknown_keys_and_hides_the_password() {
        let bad: Result<Config, _> = toml::from_str("url='http://x:1'\nmember='a'\nbogus=1");
        assert!(bad.is_err());
        let c: Config =
            toml::from_str("url='http://x:1'\nmember='a'\nusername='u'\npassword='hunter2'")
                .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn hostile_bodies_are_reasons_not_panics() {
        let cases = [
            "",
            "{",
            "null",
            "[]",
            r#"{"state": 1, "role": "master"}"#,
            r#"{"state": "running", "role": "master", "timeline": 1e400}"#,
            r#"{"state": "running", "role": "master", "timeline": 99999999999999999999999}"#,
            r#"{"state": "running", "role": "master", "replication": "x"}"#,
            "\u{0}\u{1}garbage",
        ];
        for body in cases {
            let f = interpret_at(&cfg(), &raw(body), 0);
            assert_eq!(f.status, NodeStatus::Fail, "{body:?}");
            assert_eq!(f.reasons[0].code, "patroni_bad_response", "{body:?}");
        }
        let f = interpret_at(
            &cfg(),
            &Raw {
                patroni: Fetch::TooLarge { limit: 65536 },
                cluster: None,
                config: None,
                now: 0,
            },
            0,
        );
        assert!(f.reasons[0].message.contains("larger than 65536"));
    }

    #[test]
    fn stale_dcs_last_seen_degrades_using_the_config_ttl() {
        let body =
            r#"{"state":"running","role":"replica","dcs_last_seen":1000,"xlog":{"paused":false}}"#;
        let mut r = raw(body);
        r.config = Some(Timed {
            fetch: answered(r#"{"ttl":10}"#),
            at: 1000,
        });
        assert_eq!(interpret_at(&cfg(), &r, 1010).status, NodeStatus::Ok);
        let f = interpret_at(&cfg(), &r, 1011);
        assert_eq!(f.status, NodeStatus::Degraded);
        assert_eq!(f.reasons[0].code, "dcs_unreachable");
        assert!(f.reasons[0].message.contains("11 s ago"));
    }

    #[test]
    fn cluster_without_response_is_dcs_unreachable() {
        let mut r = raw(r#"{"state":"running","role":"master","dcs_last_seen":0}"#);
        r.cluster = Some(Timed {
            fetch: Fetch::NoResponse("connection closed before message completed".into()),
            at: 0,
        });
        let f = interpret_at(&cfg(), &r, 5);
        assert_eq!(f.status, NodeStatus::Degraded);
        assert!(f
            .reasons
            .iter()
            .any(|r| r.code == "dcs_unreachable" && r.message.contains("DCS unreachable")));
        assert_eq!(f.facts.db.unwrap().dcs_reachable, Some(false));
    }

    #[test]
    fn lag_unknown_string_and_huge_lag() {
        let mut r = raw(r#"{"state":"running","role":"replica"}"#);
        r.cluster = Some(Timed {
            fetch: answered(
                r#"{"members":[{"name":"pg1","role":"replica","state":"running","lag":"unknown"}]}"#,
            ),
            at: 0,
        });
        let f = interpret_at(&cfg(), &r, 0);
        assert_eq!(f.reasons[0].code, "replica_lag_unknown");
        r.cluster = Some(Timed {
            fetch: answered(
                r#"{"members":[{"name":"pg1","role":"replica","state":"running","lag":18446744073709551615}]}"#,
            ),
            at: 0,
        });
        let f = interpret_at(&cfg(), &r, 0);
        assert_eq!(f.reasons[0].code, "replica_lag");
    }

    /// A one-shot local server: accepts connections and answers each with `reply`
    /// (`None`: closes without a byte, as Patroni does on `/cluster` with etcd down).
    async fn server(reply: Option<Vec<u8>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    if let Some(r) = reply {
                        let _ = sock.write_all(&r).await;
                        let _ = sock.shutdown().await;
                    }
                });
            }
        });
        url
    }

    async fn collect_from(url: String) -> Raw {
        let mut c = cfg();
        c.url = url;
        Patroni::new(&c)
            .collect(&c, &ProbeContext { cycle: 0, now: 0 })
            .await
    }

    #[tokio::test]
    async fn real_sockets_closed_oversized_and_garbage() {
        let url = server(None).await;
        let raw = collect_from(url.clone()).await;
        assert!(
            matches!(raw.patroni, Fetch::NoResponse(_)),
            "{:?}",
            raw.patroni
        );
        assert_eq!(
            raw.cluster, None,
            "a down Patroni drops the cached /cluster view"
        );
        let mut c = cfg();
        c.url = url;
        let cluster = Patroni::new(&c).get(&c, "/cluster").await;
        assert!(matches!(cluster, Fetch::NoResponse(_)), "{cluster:?}");

        let mut big = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b' ', 200_000));
        let raw = collect_from(server(Some(big)).await).await;
        assert_eq!(raw.patroni, Fetch::TooLarge { limit: 65536 });

        let garbage = b"HTTP/1.0 200 OK\r\n\r\n{\"state\": \"running\", \"role\": [1,2".to_vec();
        let raw = collect_from(server(Some(garbage)).await).await;
        let f = interpret_at(&cfg(), &raw, 0);
        assert_eq!(
            (f.status, f.reasons[0].code.as_str()),
            (NodeStatus::Fail, "patroni_bad_response")
        );

        let not_http = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
        let raw = collect_from(server(Some(not_http)).await).await;
        assert_eq!(interpret_at(&cfg(), &raw, 0).status, NodeStatus::Fail);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let raw = collect_from(url).await;
        drop(listener);
        assert_eq!(raw.patroni, Fetch::TimedOut { after_ms: 500 });
    }

    #[test]
    fn sync_mode_without_a_sync_standby_degrades_the_leader() {
        let mut r = raw(
            r#"{"state":"running","role":"primary","replication":[{"application_name":"pg2","state":"streaming","sync_state":"async"}]}"#,
        );
        r.config = Some(Timed {
            fetch: answered(r#"{"synchronous_mode":true}"#),
            at: 0,
        });
        let f = interpret_at(&cfg(), &r, 0);
        assert_eq!(f.reasons[0].code, "no_sync_standby");
        let status = &f.services[SERVICE].extra_info["patroni_status"];
        // Patroni 4's `primary`, in the word a 5.0.5 manager reads (issue 13).
        assert_eq!(status["role"], "master");
        assert_eq!(status["replications_state"][0]["sync_state"], "async");
        assert_eq!(f.facts.db.as_ref().unwrap().role.as_deref(), Some("leader"));
    }
}
