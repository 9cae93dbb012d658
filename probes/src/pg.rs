//! PostgreSQL sessions for the probes that log in: `postgres` on a db node and
//! `pg_connect` on a manager.
//!
//! Both connect the same way (TCP, or TLS with `sslmode=require` trusting only the given
//! CA, rustls checking the chain and the host name) and differ only in what they ask
//! once connected and how they word a failure, so that part stays with them.

use crate::net::Secret;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where and as whom to log in.
pub struct Login<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: Option<&'a Secret>,
    pub dbname: &'a str,
    /// Shown in `pg_stat_activity`, so a DBA can tell the probe's session apart.
    pub application_name: &'a str,
    pub connect_timeout: Duration,
    /// TLS with `sslmode=require`, trusting only this CA.
    pub ca_file: Option<&'a Path>,
}

/// Why there is no session.
#[derive(Debug)]
pub enum ConnectError {
    /// The TLS connector could not be built (CA unreadable); reported every cycle.
    TlsSetup(String),
    /// Connect, TLS handshake or login failed.
    Postgres(tokio_postgres::Error),
}

/// A login built once: the driver config and the TLS connector (or why it could not be
/// built).
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<Result<MakeRustlsConnect, String>>,
}

impl Connector {
    pub fn new(login: &Login<'_>) -> Self {
        let tls = login.ca_file.map(tls_connector);
        let mut config = tokio_postgres::Config::new();
        config
            .host(login.host)
            .port(login.port)
            .user(login.user)
            .dbname(login.dbname)
            .application_name(login.application_name)
            .connect_timeout(login.connect_timeout);
        if let Some(p) = login.password {
            config.password(p.expose().as_bytes());
        }
        if tls.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        Connector { config, tls }
    }

    /// A new session. Its connection task ends when the client is dropped or the server
    /// goes away.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ConnectError> {
        match &self.tls {
            None => spawn_session(&self.config, tokio_postgres::NoTls).await,
            Some(Ok(tls)) => spawn_session(&self.config, tls.clone()).await,
            Some(Err(e)) => Err(ConnectError::TlsSetup(e.clone())),
        }
    }
}

/// A session held open by the agent's session watch: the future ends when the server
/// ends the session (killed, restarted, the backend terminated), with why.
pub type Held = std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

impl Connector {
    /// Logs in and returns the session's connection future without spawning it. Nothing is
    /// ever sent on it: the server keeps an idle authenticated session (no
    /// `authentication_timeout`), and `idle_session_timeout`, when set, ends it like any
    /// other close.
    pub async fn hold(&self) -> Result<Held, ConnectError> {
        match &self.tls {
            None => hold_session(&self.config, tokio_postgres::NoTls).await,
            Some(Ok(tls)) => hold_session(&self.config, tls.clone()).await,
            Some(Err(e)) => Err(ConnectError::TlsSetup(e.clone())),
        }
    }
}

async fn hold_session<T>(config: &tokio_postgres::Config, tls: T) -> Result<Held, ConnectError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await.map_err(ConnectError::Postgres)?;
    Ok(Box::pin(async move {
        // The client must outlive the connection: dropping it closes the session.
        let _client = client;
        match connection.await {
            Ok(()) => "the server closed the session".to_string(),
            Err(e) => sr_tls::client::error_chain(&e),
        }
    }))
}

async fn spawn_session<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<tokio_postgres::Client, ConnectError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await.map_err(ConnectError::Postgres)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A TLS connector trusting only `ca`, or why it could not be built.
fn tls_connector(ca: &Path) -> Result<MakeRustlsConnect, String> {
    sr_tls::client_config(ca, None)
        .map(|mut c| {
            // PostgreSQL negotiates TLS in-band; an h2 ALPN offer means nothing to it.
            c.alpn_protocols.clear();
            MakeRustlsConnect::new(c)
        })
        .map_err(|e| e.to_string())
}
