//! `postgres`: the local PostgreSQL, asked directly with a monitoring role.
//!
//! Patroni's own view can lag (its `/cluster` lag is written to the DCS every
//! `loop_wait`) or be missing (a SIGKILLed Patroni leaves PostgreSQL running read-write),
//! so this probe asks PostgreSQL itself:
//! - `pg_is_in_recovery()`;
//! - on a primary, `pg_stat_replication` with the exact replay lag in bytes
//!   (`pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`), and the replication slots that
//!   are lost or invalidated (`pg_replication_slots`: `wal_status = 'lost'` from
//!   PostgreSQL 13, `invalidation_reason` from 17, read through `to_jsonb` so the one query
//!   runs on both);
//! - on a replica, receive and replay positions, `pg_is_wal_replay_paused()` and the WAL
//!   receiver status.
//!
//! It must run as a role with `pg_monitor`, never a superuser: `validate` refuses the
//! user `postgres` unless `allow_superuser_name` is set, and a superuser login is reported
//! as Degraded at run time whatever its name.

use crate::net::Secret;
use crate::pg::{ConnectError, Connector, Login};
use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::DbFacts;
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::path::PathBuf;
use std::time::Duration;

/// Most standbys copied into facts.
const MAX_STANDBYS: usize = 32;
/// Most lost slots asked for (and named) per cycle.
const MAX_LOST_SLOTS: i64 = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_host")]
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default = "default_dbname")]
    pub dbname: String,
    /// When set, connect with TLS (`sslmode=require`) trusting only this CA; rustls
    /// verifies the chain and the host name.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Bound on connect and on all queries together.
    #[serde(default = "default_ms::<1000>")]
    pub timeout_ms: u64,
    /// On a replica, received-but-not-replayed bytes tolerated before Degraded.
    #[serde(default = "default_max_replay_gap")]
    pub max_replay_gap_bytes: u64,
    /// Lets `user = "postgres"` through validation (it is still reported if it really is
    /// a superuser).
    #[serde(default)]
    pub allow_superuser_name: bool,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_dbname() -> String {
    "postgres".into()
}
fn default_max_replay_gap() -> u64 {
    1_048_576
}

impl Config {
    /// How the probe logs in; the agent's session watch (agent/src/watch/session.rs) logs
    /// in the same way, under its own `application_name`.
    pub fn login(&self) -> Login<'_> {
        Login {
            host: &self.host,
            port: self.port,
            user: &self.user,
            password: self.password.as_ref(),
            dbname: &self.dbname,
            application_name: "status-reporter",
            connect_timeout: Duration::from_millis(self.timeout_ms),
            ca_file: self.ca_file.as_deref(),
        }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.host.trim().is_empty() {
            errors.push("host must not be empty".into());
        }
        if self.port == 0 {
            errors.push("port must not be 0".into());
        }
        if self.user.trim().is_empty() {
            errors.push("user must not be empty".into());
        }
        if self.user == "postgres" && !self.allow_superuser_name {
            errors.push("user \"postgres\" is a superuser: use a monitoring role with pg_monitor (or set allow_superuser_name)".into());
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// A row of `pg_replication_slots` that can no longer be used.
#[derive(Debug, Clone, PartialEq)]
pub struct LostSlot {
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    /// `wal_status` (`lost`; `None` for a slot that never reserved WAL).
    pub wal_status: Option<String>,
    /// PostgreSQL 17's `invalidation_reason` (`wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`, ...); `None` before 17.
    pub invalidation_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Standby {
    pub application_name: String,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    /// `None` while the standby has replayed nothing yet.
    pub lag_bytes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// No connection: refused, timed out, TLS failure.
    ConnectFailed(String),
    /// PostgreSQL answered but refused the login (bad password, no such role, pg_hba).
    LoginRefused(String),
    /// Connected, but a query failed or timed out.
    QueryFailed(String),
    Primary {
        superuser: bool,
        standbys: Vec<Standby>,
        /// Replication slots that are lost or invalidated (at most [`MAX_LOST_SLOTS`]).
        lost_slots: Vec<LostSlot>,
    },
    Replica {
        superuser: bool,
        receive_lsn: Option<String>,
        replay_lsn: Option<String>,
        replay_gap_bytes: Option<i64>,
        paused: bool,
        receiver_status: Option<String>,
    },
}

fn superuser_check(cfg: &Config, superuser: bool) -> Finding {
    let mut f = Finding::ok();
    if superuser {
        f.worsen(
            NodeStatus::Degraded,
            codes::MONITORING_ROLE_IS_SUPERUSER,
            format!(
                "the monitoring role {:?} is a superuser; use a pg_monitor role",
                cfg.user
            ),
        );
    }
    f
}

/// The `postgres` probe and the session it keeps.
pub struct Postgres {
    connector: Connector,
    /// The monitoring connection, kept between cycles: a SCRAM login per cycle costs more
    /// than all the queries together, and one idle session is kinder to the server. A
    /// closed or failed connection is dropped and the next attempt reconnects, so a
    /// stopped PostgreSQL still shows within one cycle.
    conn: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl TypedProbe for Postgres {
    const KIND: &'static str = "postgres";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        let connector = Connector::new(&cfg.login());
        Postgres {
            connector,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    /// The whole exchange is bounded by `timeout_ms`.
    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let work = async {
            let mut slot = self.conn.lock().await;
            if let Some(client) = slot.take().filter(|c| !c.is_closed()) {
                let raw = query(&client).await;
                if !matches!(raw, Raw::QueryFailed(_)) {
                    *slot = Some(client);
                    return raw;
                }
                // A failed query on an old session: judge on a fresh one instead.
            }
            match self.connect().await {
                Ok(client) => {
                    let raw = query(&client).await;
                    if !matches!(raw, Raw::QueryFailed(_)) {
                        *slot = Some(client);
                    }
                    raw
                }
                Err(raw) => raw,
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(raw) => raw,
            Err(_) => {
                // The session may be wedged: never reuse it.
                *self.conn.lock().await = None;
                Raw::ConnectFailed(format!("no answer within {} ms", cfg.timeout_ms))
            }
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut facts = DbFacts::default();
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        let mut f = match raw {
            Raw::ConnectFailed(e) => {
                facts.postgres_running = Some(false);
                Finding::fail(
                    codes::POSTGRES_NOT_RUNNING,
                    format!("PostgreSQL at {endpoint} does not accept connections: {e}"),
                )
            }
            Raw::LoginRefused(e) => {
                facts.postgres_running = Some(true);
                let mut f = Finding::ok();
                f.worsen(
                    NodeStatus::Degraded,
                    codes::POSTGRES_LOGIN_REFUSED,
                    format!(
                        "PostgreSQL at {endpoint} refused the monitoring login as {:?}: {e}",
                        cfg.user
                    ),
                );
                f
            }
            Raw::QueryFailed(e) => {
                facts.postgres_running = Some(true);
                let mut f = Finding::ok();
                f.worsen(
                    NodeStatus::Degraded,
                    codes::POSTGRES_QUERY_FAILED,
                    format!(
                        "PostgreSQL at {endpoint} accepted the login but a health query failed: {e}"
                    ),
                );
                f
            }
            Raw::Primary {
                superuser,
                standbys,
                lost_slots,
            } => {
                facts.postgres_running = Some(true);
                facts.in_recovery = Some(false);
                for s in standbys.iter().take(MAX_STANDBYS) {
                    if let Some(lag) = s.lag_bytes {
                        facts
                            .replica_lag_bytes
                            .insert(s.application_name.clone(), lag.max(0) as u64);
                    }
                }
                let mut f = superuser_check(cfg, *superuser);
                for slot in lost_slots {
                    let why = match (&slot.invalidation_reason, &slot.wal_status) {
                        (Some(r), _) => format!("invalidated ({r})"),
                        (None, Some(w)) => format!("wal_status {w}"),
                        (None, None) => "invalidated".to_string(),
                    };
                    f.worsen(
                        NodeStatus::Degraded,
                        codes::REPLICATION_SLOT_LOST,
                        format!(
                            "replication slot {:?} ({}) is {why}: the WAL it held is gone, its \
                             consumer cannot resume from it (re-clone that replica, or drop and \
                             recreate the slot)",
                            slot.name, slot.kind
                        ),
                    );
                }
                f
            }
            Raw::Replica {
                superuser,
                replay_gap_bytes,
                paused,
                receiver_status,
                ..
            } => {
                facts.postgres_running = Some(true);
                facts.in_recovery = Some(true);
                facts.replay_paused = Some(*paused);
                let mut f = superuser_check(cfg, *superuser);
                if *paused {
                    f.worsen(
                        NodeStatus::Degraded,
                        codes::REPLAY_PAUSED,
                        "pg_is_wal_replay_paused() is true: this replica does not apply WAL",
                    );
                }
                if let Some(gap) =
                    replay_gap_bytes.filter(|g| *g > 0 && *g as u64 > cfg.max_replay_gap_bytes)
                {
                    f.worsen(
                        NodeStatus::Degraded,
                        codes::REPLAY_LAG,
                        format!(
                            "{gap} bytes received but not replayed (limit {})",
                            cfg.max_replay_gap_bytes
                        ),
                    );
                }
                match receiver_status.as_deref() {
                    Some("streaming") => {}
                    Some(other) => f.worsen(
                        NodeStatus::Degraded,
                        codes::WAL_RECEIVER_NOT_STREAMING,
                        format!("WAL receiver is {other:?}, not streaming"),
                    ),
                    None => f.worsen(
                        NodeStatus::Degraded,
                        codes::WAL_RECEIVER_NOT_STREAMING,
                        "no WAL receiver: this replica is not streaming from a primary",
                    ),
                }
                f
            }
        };
        f.facts.db = Some(facts);
        f
    }
}

impl Postgres {
    /// A new session, or the raw that says why there is none: a refused login
    /// (SQLSTATE class 28) apart from every other failure.
    async fn connect(&self) -> Result<tokio_postgres::Client, Raw> {
        self.connector.connect().await.map_err(|e| match e {
            ConnectError::TlsSetup(e) => Raw::ConnectFailed(format!("TLS setup failed: {e}")),
            ConnectError::Postgres(e) => {
                let login = e
                    .as_db_error()
                    .is_some_and(|d| d.code().code().starts_with("28"));
                let msg = error_text(&e);
                if login {
                    Raw::LoginRefused(msg)
                } else {
                    Raw::ConnectFailed(msg)
                }
            }
        })
    }
}

async fn query(client: &tokio_postgres::Client) -> Raw {
    let failed = |e: tokio_postgres::Error| Raw::QueryFailed(error_text(&e));
    let row = match client
        .query_one(
            "SELECT pg_is_in_recovery(), COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let (in_recovery, superuser): (bool, bool) = (row.get(0), row.get(1));
    if !in_recovery {
        let sql = "SELECT application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint \
                   FROM pg_stat_replication ORDER BY application_name LIMIT 64";
        let standbys = match client.query(sql, &[]).await {
            Ok(rows) => rows
                .iter()
                .map(|r| Standby {
                    application_name: r.get(0),
                    state: r.get(1),
                    sync_state: r.get(2),
                    lag_bytes: r.get(3),
                })
                .collect(),
            Err(e) => return failed(e),
        };
        // pg_replication_slots is readable by every role; invalidation_reason exists only
        // from 17, hence to_jsonb rather than naming the column.
        let slots = "SELECT slot_name::text, slot_type, wal_status, to_jsonb(s) ->> 'invalidation_reason' \
                     FROM pg_replication_slots s \
                     WHERE wal_status = 'lost' OR to_jsonb(s) ->> 'invalidation_reason' IS NOT NULL \
                     ORDER BY slot_name LIMIT $1";
        match client.query(slots, &[&MAX_LOST_SLOTS]).await {
            Ok(rows) => Raw::Primary {
                superuser,
                standbys,
                lost_slots: rows
                    .iter()
                    .map(|r| LostSlot {
                        name: r.get(0),
                        kind: r.get(1),
                        wal_status: r.get(2),
                        invalidation_reason: r.get(3),
                    })
                    .collect(),
            },
            Err(e) => failed(e),
        }
    } else {
        let sql = "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
                   pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint, \
                   pg_is_wal_replay_paused(), (SELECT status FROM pg_stat_wal_receiver LIMIT 1)";
        match client.query_one(sql, &[]).await {
            Ok(r) => Raw::Replica {
                superuser,
                receive_lsn: r.get(0),
                replay_lsn: r.get(1),
                replay_gap_bytes: r.get(2),
                paused: r.get(3),
                receiver_status: r.get(4),
            },
            Err(e) => failed(e),
        }
    }
}

/// tokio-postgres' top-level message ("db error") hides the server's text; join the chain.
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => sr_tls::client::error_chain(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        toml::from_str("port = 5433\nuser = 'monitor'\npassword = 'monitor'").unwrap()
    }

    #[test]
    fn validate_refuses_the_superuser_name_unless_allowed() {
        let mut c = cfg();
        c.user = "postgres".into();
        assert_eq!(c.validate().len(), 1);
        c.allow_superuser_name = true;
        assert!(c.validate().is_empty());
        let bad: Result<Config, _> = toml::from_str("port = 1\nuser = 'm'\nsslmode = 'x'");
        assert!(bad.is_err());
        let c: Config = toml::from_str("port = 1\nuser = 'm'\npassword = 'sekrit'").unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    #[test]
    fn not_running_is_fail_and_login_refused_is_degraded() {
        let f = Postgres::interpret(&cfg(), &Raw::ConnectFailed("Connection refused".into()));
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "postgres_not_running");
        let f = Postgres::interpret(
            &cfg(),
            &Raw::LoginRefused("28P01: password authentication failed".into()),
        );
        assert_eq!(f.status, NodeStatus::Degraded);
    }

    #[test]
    fn replica_rules() {
        let raw = Raw::Replica {
            superuser: true,
            receive_lsn: Some("0/5000000".into()),
            replay_lsn: Some("0/4000000".into()),
            replay_gap_bytes: Some(16 * 1024 * 1024),
            paused: true,
            receiver_status: None,
        };
        let f = Postgres::interpret(&cfg(), &raw);
        let codes: Vec<_> = f.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "monitoring_role_is_superuser",
                "replay_paused",
                "replay_lag",
                "wal_receiver_not_streaming"
            ]
        );
        assert_eq!(f.facts.db.unwrap().replay_paused, Some(true));
    }

    #[test]
    fn primary_reports_lag_per_standby() {
        let raw = Raw::Primary {
            superuser: false,
            standbys: vec![
                Standby {
                    application_name: "pg2".into(),
                    state: Some("streaming".into()),
                    sync_state: Some("async".into()),
                    lag_bytes: Some(120),
                },
                Standby {
                    application_name: "pg3".into(),
                    state: Some("startup".into()),
                    sync_state: None,
                    lag_bytes: None,
                },
            ],
            lost_slots: Vec::new(),
        };
        let f = Postgres::interpret(&cfg(), &raw);
        assert_eq!(f.status, NodeStatus::Ok);
        let db = f.facts.db.unwrap();
        assert_eq!(db.in_recovery, Some(false));
        assert_eq!(db.replica_lag_bytes.len(), 1);
        assert_eq!(db.replica_lag_bytes["pg2"], 120);
    }

    /// A lost slot is named with PostgreSQL 17's reason, or 15's `wal_status`.
    #[test]
    fn lost_replication_slots_are_reported() {
        let slot = |name: &str, reason: Option<&str>| LostSlot {
            name: name.into(),
            kind: "physical".into(),
            wal_status: Some("lost".into()),
            invalidation_reason: reason.map(String::from),
        };
        let raw = Raw::Primary {
            superuser: false,
            standbys: Vec::new(),
            lost_slots: vec![
                slot("pg17_slot", Some("wal_removed")),
                slot("pg15_slot", None),
            ],
        };
        let f = Postgres::interpret(&cfg(), &raw);
        assert_eq!(f.status, NodeStatus::Degraded);
        let msgs: Vec<&str> = f
            .reasons
            .iter()
            .filter(|r| r.code == "replication_slot_lost")
            .map(|r| r.message.as_str())
            .collect();
        assert_eq!(msgs.len(), 2, "{:?}", f.reasons);
        assert!(
            msgs[0].contains("\"pg17_slot\" (physical) is invalidated (wal_removed)"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].contains("\"pg15_slot\" (physical) is wal_status lost"),
            "{}",
            msgs[1]
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_postgres_not_running() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut c = cfg();
        c.port = port;
        let raw = Postgres::new(&c)
            .collect(&c, &ProbeContext { cycle: 0, now: 0 })
            .await;
        assert!(matches!(raw, Raw::ConnectFailed(_)), "{raw:?}");
    }
}
