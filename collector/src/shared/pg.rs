//! The connection pool to the shared PostgreSQL store: deadpool over tokio-postgres,
//! rustls 0.23 with the ring provider passed explicitly (through `sr-tls`) and only the
//! operator's CA, every host of `[store] hosts` tried in order for a read-write session.
//!
//! Failover: tokio-postgres tries the hosts in order with `target_session_attrs =
//! read-write`, so a new connection lands on the Patroni leader. A pooled connection is
//! checked before each use by a statement that fails on a server in recovery, so a
//! connection to a demoted leader is dropped, not reused; and a connection that saw any
//! error is taken out of the pool ([`discard`]). Every statement is bounded twice: by the
//! session's `statement_timeout` and by a client-side deadline around each sync step.

use super::config::{read_password, PgStore, PgTls};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::config::{SslMode, TargetSessionAttrs};

/// Why the shared store cannot be reached or used.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("{0}")]
    Config(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    /// With the driver's error chain: its top message alone ("error performing TLS
    /// handshake") does not say that the CA was wrong or that the server has no TLS.
    #[error("pool: {0}")]
    Pool(String),
    #[error("postgres: {}", sr_tls::client::error_chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("the shared store is at schema version {found}, newer than this collector knows ({known}): upgrade the collector")]
    NewerSchema { found: i32, known: i32 },
    #[error("local store: {0}")]
    Local(String),
}

/// Runs on every pooled connection before use: an error on a server in recovery (a
/// replica, or a leader demoted by a failover) makes the pool drop the connection.
const RECYCLE_CHECK: &str = "DO $$ BEGIN IF pg_is_in_recovery() THEN \
    RAISE EXCEPTION 'server is in recovery (not the leader)'; END IF; END $$";

/// The driver configuration `cfg` describes, with the password read now.
pub fn driver_config(cfg: &PgStore) -> Result<tokio_postgres::Config, SharedError> {
    let password = read_password(&cfg.password_file).map_err(SharedError::Config)?;
    let mut pc = tokio_postgres::Config::new();
    for (host, port) in &cfg.hosts {
        pc.host(host).port(*port);
    }
    pc.dbname(&cfg.dbname)
        .user(&cfg.user)
        .password(password.as_bytes())
        .application_name("status-reporter-collector")
        .connect_timeout(cfg.connect_timeout)
        .target_session_attrs(TargetSessionAttrs::ReadWrite)
        .options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            cfg.query_timeout.as_millis(),
            cfg.query_timeout.as_millis()
        ))
        .ssl_mode(match cfg.tls {
            PgTls::Ca(_) => SslMode::Require,
            PgTls::Plaintext => SslMode::Disable,
        });
    Ok(pc)
}

/// A TLS connector trusting only `ca` (rustls, ring), without an ALPN offer: PostgreSQL
/// negotiates TLS in-band.
pub fn tls_connector(
    ca: &std::path::Path,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, SharedError> {
    let mut c = sr_tls::client_config(ca, None).map_err(|e| SharedError::Tls(e.to_string()))?;
    c.alpn_protocols.clear();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(c))
}

/// The pool. Connections are made lazily, so this succeeds while PostgreSQL is down.
pub fn pool(cfg: &PgStore) -> Result<Pool, SharedError> {
    let pc = driver_config(cfg)?;
    let mc = ManagerConfig {
        recycling_method: RecyclingMethod::Custom(RECYCLE_CHECK.into()),
    };
    let manager = match &cfg.tls {
        PgTls::Ca(ca) => Manager::from_config(pc, tls_connector(ca)?, mc),
        PgTls::Plaintext => Manager::from_config(pc, tokio_postgres::NoTls, mc),
    };
    // One host after another may each take connect_timeout.
    let create = cfg.connect_timeout * cfg.hosts.len().max(1) as u32;
    Pool::builder(manager)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(create))
        .create_timeout(Some(create))
        .recycle_timeout(Some(cfg.query_timeout))
        .build()
        .map_err(|e| SharedError::Pool(e.to_string()))
}

/// A connection from the pool, bounded by the pool's own timeouts.
pub async fn get(pool: &Pool) -> Result<Object, SharedError> {
    pool.get()
        .await
        .map_err(|e| SharedError::Pool(sr_tls::client::error_chain(&e)))
}

/// Takes a connection that saw an error out of the pool: it may point at a demoted
/// leader or be half-broken; the next `get` connects afresh (to the new leader).
pub fn discard(client: Object) {
    drop(Object::take(client));
}

/// Runs `fut` under `limit`, the client-side half of "every query has a timeout".
pub async fn bounded<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, SharedError>>,
) -> Result<T, SharedError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| SharedError::Timeout(limit))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_config_names_every_host_read_write_and_bounds_statements() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = PgStore {
            hosts: vec![("10.0.0.1".into(), 5432), ("10.0.0.2".into(), 5433)],
            dbname: "sr".into(),
            user: "sr".into(),
            password_file: pw.clone(),
            tls: PgTls::Plaintext,
            connect_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_millis(1500),
            pool_size: 2,
            journal_max: 100,
        };
        let pc = driver_config(&cfg).unwrap();
        assert_eq!(pc.get_ports(), &[5432, 5433]);
        assert_eq!(pc.get_hosts().len(), 2);
        assert_eq!(pc.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(pc.get_password(), Some(&b"secret"[..]));
        assert!(pc.get_options().unwrap().contains("statement_timeout=1500"));
        assert!(pool(&cfg).is_ok(), "the pool is lazy: no server needed");
        // A CA that cannot be read fails the pool at once, with the reason.
        let bad = PgStore {
            tls: PgTls::Ca(dir.path().join("missing.pem")),
            ..cfg.clone()
        };
        assert!(matches!(pool(&bad), Err(SharedError::Tls(_))));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(driver_config(&cfg), Err(SharedError::Config(_))));
    }
}
