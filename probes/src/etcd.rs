//! `etcd`: the local etcd member (Patroni's DCS).
//!
//! - `POST /v3/maintenance/status` with `{}` is answered from the member's local state, so
//!   it works without quorum: member id, leader, raft and applied index, db size, errors
//!   (active alarms, `etcdserver: no leader`) and learner flag. The grpc-gateway sends
//!   every 64-bit value as a JSON string and omits zero, false and empty fields.
//! - `GET /health` does a quorum read: `{"health":"true"}` (200) or `"false"` (503).
//!
//! Cluster-wide judgement (one leader, one cluster id, healthy ≥ quorum) is the roll-up's
//! job; this probe reports the member's own facts and its local problems.

use crate::net::{self, Fetch, TlsFiles};
use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Deserializer, Serialize};
use sr_protocol::facts::{DbFacts, EtcdFacts};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use sr_tls::HttpsClient;
use std::time::Duration;

/// Service display name on the legacy wire.
pub const SERVICE: &str = "Etcd";
/// Most errors copied into facts and reasons.
const MAX_ERRORS: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Client URL of the local member, e.g. `https://127.0.0.1:2379`.
    pub url: String,
    #[serde(default)]
    pub tls: TlsFiles,
    #[serde(default = "default_ms::<1000>")]
    pub timeout_ms: u64,
    /// Fail (default) or only Degrade the node when the local member does not answer.
    #[serde(default = "yes")]
    pub critical: bool,
    /// Committed-but-unapplied raft entries tolerated before Degraded.
    #[serde(default = "default_max_apply_backlog")]
    pub max_apply_backlog: u64,
    /// The backend quota (`--quota-backend-bytes`, 2 GiB by default); Degraded above 80 %.
    #[serde(default = "default_quota")]
    pub quota_bytes: u64,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_max_apply_backlog() -> u64 {
    5000
}
fn default_quota() -> u64 {
    2 * 1024 * 1024 * 1024
}
fn default_max_body() -> usize {
    64 * 1024
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.tls.validate(&self.url, "etcd");
        if self.url.ends_with('/') {
            errors.push(format!("url {:?} must not end with '/'", self.url));
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        if self.quota_bytes == 0 {
            errors.push("quota_bytes must be > 0".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            errors.push(format!(
                "max_body_bytes must be 1024..=16777216, got {}",
                self.max_body_bytes
            ));
        }
        errors
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub status: Fetch,
    pub health: Fetch,
}

/// A 64-bit value the grpc-gateway sends as a string (etcdctl sends a bare number).
fn u64_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Str(s)) => s.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("{s:?} is not a 64-bit unsigned number"))
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusDoc {
    header: Header,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, deserialize_with = "u64_str")]
    db_size: Option<u64>,
    #[serde(default, deserialize_with = "u64_str")]
    leader: Option<u64>,
    #[serde(default, deserialize_with = "u64_str")]
    raft_index: Option<u64>,
    #[serde(default, deserialize_with = "u64_str")]
    raft_applied_index: Option<u64>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    is_learner: bool,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "u64_str")]
    cluster_id: Option<u64>,
    #[serde(default, deserialize_with = "u64_str")]
    member_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct HealthDoc {
    health: String,
    /// Why it is unhealthy, from etcd 3.5 on (`"RAFT NO LEADER"`, `"ALARM NOSPACE"`);
    /// `""` when healthy, absent on 3.4.
    #[serde(default)]
    reason: Option<String>,
}

/// The `etcd` probe: its HTTP client is built once from the config.
pub struct Etcd {
    client: Result<HttpsClient, String>,
}

impl TypedProbe for Etcd {
    const KIND: &'static str = "etcd";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        Etcd {
            client: cfg.tls.client(Duration::from_millis(cfg.timeout_ms)),
        }
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let status_url = format!("{}/v3/maintenance/status", cfg.url);
        let health_url = format!("{}/health", cfg.url);
        let (status, health) = tokio::join!(
            net::fetch(
                &self.client,
                http::Method::POST,
                &status_url,
                None,
                b"{}",
                deadline,
                cfg.max_body_bytes
            ),
            net::fetch(
                &self.client,
                http::Method::GET,
                &health_url,
                None,
                b"",
                deadline,
                cfg.max_body_bytes
            ),
        );
        Raw { status, health }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let doc = match net::parse_answer::<StatusDoc>(&raw.status) {
            Ok(d) => d,
            Err(e) => return no_status(cfg, &raw.status, &e),
        };
        let mut f = Finding::ok();
        let mut etcd = member_facts(&doc);
        leader_rule(cfg, &etcd, &mut f);
        errors_rule(&etcd, &mut f);
        apply_backlog_rule(cfg, &etcd, &mut f);
        db_size_rule(cfg, &doc, &mut f);
        etcd.healthy = Some(health_rule(&raw.health, &mut f));
        legacy_entry(&doc, &etcd, &mut f);
        f.facts.db = Some(DbFacts {
            etcd: Some(etcd),
            ..Default::default()
        });
        f
    }
}

/// No usable `/v3/maintenance/status`: the member is unreachable (or answers nonsense),
/// and nothing else can be judged.
fn no_status(cfg: &Config, status: &Fetch, error: &str) -> Finding {
    let level = if cfg.critical {
        NodeStatus::Fail
    } else {
        NodeStatus::Degraded
    };
    let mut f = Finding::ok();
    let code = if matches!(status, Fetch::Answered { .. }) {
        codes::ETCD_BAD_RESPONSE
    } else {
        codes::ETCD_UNREACHABLE
    };
    // etcd (Go, TLS 1.3) checks the client certificate after the handshake, so a
    // refused certificate shows only as a connection closed on the first request.
    let hint = if matches!(status, Fetch::NoResponse(_)) && cfg.url.starts_with("https://") {
        " (with --client-cert-auth this usually means the client certificate was refused: check tls.cert_file)"
    } else {
        ""
    };
    f.worsen(
        level,
        code,
        format!(
            "etcd member {} does not answer /v3/maintenance/status: {error}{hint}",
            cfg.url
        ),
    );
    let etcd = EtcdFacts {
        reachable: Some(false),
        healthy: Some(false),
        ..Default::default()
    };
    f.set_service(SERVICE, false, None, Default::default());
    f.facts.db = Some(DbFacts {
        etcd: Some(etcd),
        ..Default::default()
    });
    f
}

/// The member's own facts from its status document; `healthy` is set by [`health_rule`].
fn member_facts(doc: &StatusDoc) -> EtcdFacts {
    EtcdFacts {
        reachable: Some(true),
        cluster_id: doc.header.cluster_id.map(|v| v.to_string()),
        member_id: doc.header.member_id.map(|v| v.to_string()),
        leader: doc.leader.filter(|l| *l != 0).map(|v| v.to_string()),
        errors: doc.errors.iter().take(MAX_ERRORS).cloned().collect(),
        db_size: doc.db_size,
        is_learner: Some(doc.is_learner),
        apply_backlog: match (doc.raft_index, doc.raft_applied_index) {
            (Some(i), Some(a)) => Some(i.saturating_sub(a)),
            (Some(i), None) => Some(i),
            _ => None,
        },
        ..Default::default()
    }
}

/// A member that knows no raft leader cannot serve writes.
fn leader_rule(cfg: &Config, etcd: &EtcdFacts, f: &mut Finding) {
    if etcd.leader.is_none() {
        f.worsen(
            NodeStatus::Degraded,
            codes::ETCD_NO_LEADER,
            format!("etcd member {} sees no raft leader", cfg.url),
        );
    }
}

/// Errors the member reports itself (alarms, `no leader`).
fn errors_rule(etcd: &EtcdFacts, f: &mut Finding) {
    if !etcd.errors.is_empty() {
        f.worsen(
            NodeStatus::Degraded,
            codes::ETCD_ALARM,
            format!("etcd reports errors: {}", etcd.errors.join("; ")),
        );
    }
}

/// Committed entries waiting to be applied beyond `max_apply_backlog`.
fn apply_backlog_rule(cfg: &Config, etcd: &EtcdFacts, f: &mut Finding) {
    if let Some(b) = etcd.apply_backlog.filter(|b| *b > cfg.max_apply_backlog) {
        f.worsen(
            NodeStatus::Degraded,
            codes::ETCD_APPLY_BACKLOG,
            format!("etcd has {b} committed raft entries not yet applied"),
        );
    }
}

/// The backend over 80 % of its quota (etcd raises NOSPACE at 100 %).
fn db_size_rule(cfg: &Config, doc: &StatusDoc, f: &mut Finding) {
    if let Some(size) = doc
        .db_size
        .filter(|s| *s as f64 > cfg.quota_bytes as f64 * 0.8)
    {
        f.worsen(
            NodeStatus::Degraded,
            codes::ETCD_DB_SIZE,
            format!(
                "etcd db is {size} bytes, over 80% of the {} byte quota",
                cfg.quota_bytes
            ),
        );
    }
}

/// The most of etcd's `/health` `reason` copied into a reason message.
const MAX_HEALTH_REASON: usize = 200;

/// `/health` (a quorum read): whether the member is healthy.
fn health_rule(health: &Fetch, f: &mut Finding) -> bool {
    let healthy = match health {
        Fetch::Answered { status, body } => match net::parse_json::<HealthDoc>(body) {
            Ok(h) => Ok((*status == 200 && h.health == "true", h.reason)),
            Err(e) => Err(format!("/health answered HTTP {status}: {e}")),
        },
        other => Err(format!("/health: {}", other.describe())),
    };
    match healthy {
        Ok((true, _)) => true,
        Ok((false, said)) => {
            // etcd's own reason when it gives one (3.5+); the 3.4 wording otherwise.
            let why = match said.as_deref().map(str::trim) {
                Some(r) if !r.is_empty() => r.chars().take(MAX_HEALTH_REASON).collect(),
                _ => "no quorum or an active alarm".to_string(),
            };
            f.worsen(
                NodeStatus::Degraded,
                codes::ETCD_UNHEALTHY,
                format!("etcd /health is false: {why}"),
            );
            false
        }
        Err(e) => {
            f.worsen(
                NodeStatus::Degraded,
                codes::ETCD_UNHEALTHY,
                format!("etcd health unknown: {e}"),
            );
            false
        }
    }
}

/// The legacy `Etcd` entry: active when healthy.
fn legacy_entry(doc: &StatusDoc, etcd: &EtcdFacts, f: &mut Finding) {
    let mut extra = serde_json::Map::new();
    extra.insert("health".into(), etcd.healthy.unwrap_or(false).into());
    if let Some(v) = &doc.version {
        extra.insert(
            "version".into(),
            v.chars().take(32).collect::<String>().into(),
        );
    }
    if let Some(m) = &etcd.member_id {
        extra.insert("member_id".into(), m.clone().into());
    }
    extra.insert(
        "is_leader".into(),
        (etcd.leader.is_some() && etcd.leader == etcd.member_id).into(),
    );
    f.set_service(SERVICE, etcd.healthy == Some(true), None, extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        toml::from_str("url = 'http://127.0.0.1:2379'").unwrap()
    }

    fn ans(status: u16, body: &str) -> Fetch {
        Fetch::Answered {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    const STATUS: &str = r#"{"header":{"cluster_id":"995718836706496667","member_id":"11342670795761701468","revision":"26","raft_term":"2"},"version":"3.4.23","dbSize":"36864","leader":"11342670795761701468","raftIndex":"40","raftTerm":"2","raftAppliedIndex":"40","dbSizeInUse":"36864"}"#;

    #[test]
    fn ids_above_i64_max_survive_as_strings_and_numbers() {
        let f = Etcd::interpret(
            &cfg(),
            &Raw {
                status: ans(200, STATUS),
                health: ans(200, r#"{"health":"true"}"#),
            },
        );
        assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
        let e = f.facts.db.unwrap().etcd.unwrap();
        assert_eq!(e.member_id.as_deref(), Some("11342670795761701468"));
        assert_eq!(e.leader, e.member_id);
        assert_eq!(e.apply_backlog, Some(0));
        let numeric = r#"{"header":{"cluster_id":995718836706496667,"member_id":11342670795761701468},"leader":11342670795761701468}"#;
        let f = Etcd::interpret(
            &cfg(),
            &Raw {
                status: ans(200, numeric),
                health: ans(200, r#"{"health":"true"}"#),
            },
        );
        assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    }

    #[test]
    fn alarms_no_leader_and_unhealthy_degrade() {
        let body = r#"{"header":{"cluster_id":"1","member_id":"2"},"errors":["memberID:2 alarm:NOSPACE"]}"#;
        let f = Etcd::interpret(
            &cfg(),
            &Raw {
                status: ans(200, body),
                health: ans(503, r#"{"health":"false"}"#),
            },
        );
        assert_eq!(f.status, NodeStatus::Degraded);
        let codes: Vec<_> = f.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["etcd_no_leader", "etcd_alarm", "etcd_unhealthy"]);
        assert!(f.reasons[1].message.contains("NOSPACE"));
    }

    #[test]
    fn hostile_status_bodies() {
        for body in [
            "",
            "{",
            r#"{"header":{"member_id":"-1"}}"#,
            r#"{"header":{"member_id":"99999999999999999999999"}}"#,
            r#"{"header":5}"#,
        ] {
            let f = Etcd::interpret(
                &cfg(),
                &Raw {
                    status: ans(200, body),
                    health: ans(200, "{}"),
                },
            );
            assert_eq!(f.status, NodeStatus::Fail, "{body}");
            assert_eq!(f.reasons[0].code, "etcd_bad_response");
        }
        let f = Etcd::interpret(
            &cfg(),
            &Raw {
                status: ans(200, STATUS),
                health: ans(200, "garbage"),
            },
        );
        assert_eq!(f.reasons[0].code, "etcd_unhealthy");
    }

    #[test]
    fn unreachable_member_is_fail_unless_not_critical() {
        let raw = Raw {
            status: Fetch::ConnectFailed("Connection refused".into()),
            health: Fetch::ConnectFailed("x".into()),
        };
        let f = Etcd::interpret(&cfg(), &raw);
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "etcd_unreachable");
        let mut c = cfg();
        c.critical = false;
        assert_eq!(Etcd::interpret(&c, &raw).status, NodeStatus::Degraded);
    }
}
