//! `pg_connect`: on a manager, the PostgreSQL endpoint the manager uses accepts a
//! connection and a write-capable session.
//!
//! Connect (TCP or TLS with `sslmode=require` trusting only the given CA; rustls checks
//! the chain and the host name), authenticate, and ask `pg_is_in_recovery()`: a manager
//! pointed at a read-only replica cannot work, so that is Fail too. Fills the legacy
//! `PostgreSQL` service entry with `is_remote: true`. The db node's own, deeper view of
//! PostgreSQL is the `postgres` probe; this one is only the manager's connectivity.

use crate::db_http::Secret;
use crate::{BoxFuture, Finding, Probe, ProbeContext};
use serde::{Deserialize, Serialize};
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
    #[serde(default = "default_timeout_ms")]
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
fn default_timeout_ms() -> u64 {
    3000
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = crate::amqp::validate_common(
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

pub fn interpret(cfg: &Config, raw: &Raw) -> Finding {
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
                    "db_read_only",
                    format!(
                        "PostgreSQL at {} is a read-only replica; the manager needs the primary",
                        cfg.endpoint()
                    ),
                );
            }
        }
        Raw::Failed(e) => f.worsen(
            NodeStatus::Fail,
            "db_unreachable",
            format!("cannot connect to PostgreSQL at {}: {e}", cfg.endpoint()),
        ),
    }
    let active = f.status == NodeStatus::Ok;
    f.set_service(cfg.name.clone(), active, Some(true), extra);
    f
}

pub struct PgConnectProbe {
    cfg: Config,
    /// The TLS connector, or why it could not be built (reported each cycle).
    tls: Option<Result<tokio_postgres_rustls::MakeRustlsConnect, String>>,
    name: String,
}

impl PgConnectProbe {
    pub fn new(cfg: Config) -> Self {
        let tls = cfg.ca_file.as_deref().map(crate::postgres::tls_connector);
        PgConnectProbe {
            name: format!("pg_connect:{}", cfg.name),
            cfg,
            tls,
        }
    }

    fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.cfg.host)
            .port(self.cfg.port)
            .user(&self.cfg.user)
            .dbname(&self.cfg.dbname)
            .application_name("status-reporter manager check")
            .connect_timeout(Duration::from_millis(self.cfg.timeout_ms));
        if let Some(p) = &self.cfg.password {
            c.password(p.0.as_bytes());
        }
        if self.tls.is_some() {
            c.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        c
    }

    /// The I/O shell; the whole exchange is bounded by `timeout_ms`.
    pub async fn collect(&self) -> Raw {
        let work = async {
            match &self.tls {
                None => ask(self.pg_config(), tokio_postgres::NoTls).await,
                Some(Ok(tls)) => ask(self.pg_config(), tls.clone()).await,
                Some(Err(e)) => Raw::Failed(format!("TLS setup failed: {e}")),
            }
        };
        tokio::time::timeout(Duration::from_millis(self.cfg.timeout_ms), work)
            .await
            .unwrap_or_else(|_| Raw::Failed(format!("no answer within {} ms", self.cfg.timeout_ms)))
    }
}

async fn ask<T>(config: tokio_postgres::Config, tls: T) -> Raw
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let start = Instant::now();
    let (client, connection) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(e) => return Raw::Failed(sr_tls::client::error_chain(&e)),
    };
    let connect_ms = start.elapsed().as_millis() as u64;
    // Ends when `client` is dropped at the end of this function.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    match client.query_one("SELECT pg_is_in_recovery()", &[]).await {
        Ok(row) => Raw::Connected {
            in_recovery: row.get(0),
            connect_ms,
        },
        Err(e) => Raw::Failed(sr_tls::client::error_chain(&e)),
    }
}

impl Probe for PgConnectProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms + 250)
    }
    fn run<'a>(&'a self, _ctx: &'a ProbeContext) -> BoxFuture<'a, Finding> {
        Box::pin(async move { interpret(&self.cfg, &self.collect().await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::ServiceStatus;

    fn cfg(port: u16) -> Config {
        Config {
            name: "PostgreSQL".into(),
            host: "127.0.0.1".into(),
            port,
            user: "cloudify".into(),
            password: Some(Secret("hunter2".into())),
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
        let f = interpret(
            &cfg(5432),
            &Raw::Connected {
                in_recovery: true,
                connect_ms: 3,
            },
        );
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "db_read_only");
        assert_eq!(f.services["PostgreSQL"].is_remote, Some(true));
        let ok = interpret(
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
        let f = PgConnectProbe::new(cfg(port))
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
        let p = PgConnectProbe::new(c);
        let raw = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(p.collect());
        assert!(
            matches!(&raw, Raw::Failed(e) if e.contains("TLS setup failed")),
            "{raw:?}"
        );
    }
}
