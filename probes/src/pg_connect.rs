//! `pg_connect`: on a manager, the PostgreSQL endpoint the manager uses accepts a
//! connection and a write-capable session.
//!
//! Connect (TCP or TLS with `sslmode=require` trusting only the given CA; rustls checks
//! the chain and the host name), authenticate, and ask `pg_is_in_recovery()`: a manager
//! pointed at a read-only replica cannot work, so that is Fail too. Fills the legacy
//! `PostgreSQL` service entry with `is_remote: true`. The db node's own, deeper view of
//! PostgreSQL is the `postgres` probe; this one is only the manager's connectivity.

use crate::net::{validate_endpoint, Secret};
use crate::pg::{ConnectError, Connector, Login};
use crate::{default_ms, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Legacy display name; `PostgreSQL` on a manager.
    #[serde(default = "default_name")]
    pub name: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default = "default_dbname")]
    pub dbname: String,
    /// TLS with `sslmode=require`, trusting only this CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_ms::<3000>")]
    pub timeout_ms: u64,
}

fn default_name() -> String {
    "PostgreSQL".into()
}
fn default_port() -> u16 {
    5432
}
fn default_dbname() -> String {
    "postgres".into()
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = validate_endpoint(
            &self.host,
            self.port,
            &self.user,
            self.timeout_ms,
            "postgresql",
        );
        if self.name.trim().is_empty() {
            errors.push("name must not be empty".into());
        }
        if self.dbname.is_empty() {
            errors.push("dbname must not be empty".into());
        }
        errors
    }

    /// How the probe logs in; the agent's session watch logs in the same way.
    pub fn login(&self) -> Login<'_> {
        Login {
            host: &self.host,
            port: self.port,
            user: &self.user,
            password: self.password.as_ref(),
            dbname: &self.dbname,
            application_name: "status-reporter manager check",
            connect_timeout: Duration::from_millis(self.timeout_ms),
            ca_file: self.ca_file.as_deref(),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Connected { in_recovery: bool, connect_ms: u64 },
    Failed(String),
}

/// The `pg_connect` probe: its login is built once, a session is opened per cycle.
pub struct PgConnect {
    connector: Connector,
}

impl TypedProbe for PgConnect {
    const KIND: &'static str = "pg_connect";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        let connector = Connector::new(&cfg.login());
        PgConnect { connector }
    }

    fn instance(config: &Config) -> Option<&str> {
        Some(&config.name)
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    /// The whole exchange is bounded by `timeout_ms`.
    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), self.ask())
            .await
            .unwrap_or_else(|_| Raw::Failed(format!("no answer within {} ms", cfg.timeout_ms)))
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut f = Finding::ok();
        let mut extra = serde_json::Map::new();
        extra.insert("endpoint".into(), cfg.endpoint().into());
        match raw {
            Raw::Connected {
                in_recovery,
                connect_ms,
            } => {
                extra.insert("connect_ms".into(), (*connect_ms).into());
                extra.insert("in_recovery".into(), (*in_recovery).into());
                if *in_recovery {
                    f.worsen(
                        NodeStatus::Fail,
                        codes::DB_READ_ONLY,
                        format!(
                            "PostgreSQL at {} is a read-only replica; the manager needs the primary",
                            cfg.endpoint()
                        ),
                    );
                }
            }
            Raw::Failed(e) => f.worsen(
                NodeStatus::Fail,
                codes::DB_UNREACHABLE,
                format!("cannot connect to PostgreSQL at {}: {e}", cfg.endpoint()),
            ),
        }
        let active = f.status == NodeStatus::Ok;
        f.set_service(cfg.name.clone(), active, Some(true), extra);
        f
    }
}

impl PgConnect {
    /// Connect, then ask whether this is a read-only replica.
    async fn ask(&self) -> Raw {
        let start = Instant::now();
        let client = match self.connector.connect().await {
            Ok(client) => client,
            Err(ConnectError::TlsSetup(e)) => return Raw::Failed(format!("TLS setup failed: {e}")),
            Err(ConnectError::Postgres(e)) => return Raw::Failed(sr_tls::client::error_chain(&e)),
        };
        let connect_ms = start.elapsed().as_millis() as u64;
        match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
            Ok(row) => Raw::Connected {
                in_recovery: row.get(0),
                connect_ms,
            },
            Err(e) => Raw::Failed(sr_tls::client::error_chain(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;
    use sr_protocol::ServiceStatus;

    fn cfg(port: u16) -> Config {
        Config {
            name: "PostgreSQL".into(),
            host: "127.0.0.1".into(),
            port,
            user: "cloudify".into(),
            password: Some(Secret::new("hunter2")),
            dbname: "cloudify_db".into(),
            ca_file: None,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = cfg(0);
        c.user.clear();
        c.dbname.clear();
        c.name = "".into();
        assert_eq!(c.validate().len(), 4, "{:?}", c.validate());
    }

    #[test]
    fn a_replica_endpoint_fails_and_the_entry_is_remote() {
        let f = PgConnect::interpret(
            &cfg(5432),
            &Raw::Connected {
                in_recovery: true,
                connect_ms: 3,
            },
        );
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "db_read_only");
        assert_eq!(f.services["PostgreSQL"].is_remote, Some(true));
        let ok = PgConnect::interpret(
            &cfg(5432),
            &Raw::Connected {
                in_recovery: false,
                connect_ms: 3,
            },
        );
        assert_eq!(ok.status, NodeStatus::Ok);
        assert_eq!(ok.services["PostgreSQL"].status, ServiceStatus::Active);
    }

    #[tokio::test]
    async fn a_closed_port_is_db_unreachable_without_the_password() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let f = crate::Scheduled::<PgConnect>::new(cfg(port))
            .run(&ProbeContext { cycle: 0, now: 0 })
            .await;
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "db_unreachable");
        assert!(!f.reasons[0].message.contains("hunter2"));
        assert_eq!(f.services["PostgreSQL"].status, ServiceStatus::Inactive);
        assert_eq!(f.services["PostgreSQL"].is_remote, Some(true));
    }

    #[test]
    fn unreadable_ca_is_reported_each_cycle() {
        let mut c = cfg(5432);
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let p = PgConnect::new(&c);
        let raw = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(p.collect(&c, &ProbeContext { cycle: 0, now: 0 }));
        assert!(
            matches!(&raw, Raw::Failed(e) if e.contains("TLS setup failed")),
            "{raw:?}"
        );
    }
}
