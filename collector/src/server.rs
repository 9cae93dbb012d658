//! The collector's network side: a manual rustls accept loop in front of the axum router.
//!
//! Why manual: `axum::serve` has no TLS, and we need control the convenience servers
//! don't give: a hard connection cap (over it the TCP connection is closed at once and
//! counted), a deadline on the TLS handshake and on the request head (slow-loris), and a
//! structured shutdown (stop accepting → graceful close of connections → deadline →
//! final write-behind flush → writer thread joined).

use crate::api::{self, PeerAddr};
use crate::app::App;
use crate::config::Config;
use crate::state::{Counters, Memory};
use crate::store::{Store, StoreError};
use crate::writer::Writer;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The latest-report snapshot is written behind at this interval: after a crash the
/// stored snapshot is at most this old (the documented bound is 1 s).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] sr_tls::TlsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs a collector on `listener` until `shutdown` completes, then drains and returns.
/// Tests and the quickstart call this in-process; `status-reporter collector run` wraps it.
///
/// Four named pieces: [`bootstrap`] (store → memory → writer thread → app),
/// [`Listener::run`] (the accept loop), [`handle`] (one connection) and [`Running::drain`]
/// (stop accepting, close connections within the grace, final flush, join the writer).
pub async fn serve(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let acceptor = match &cfg.tls {
        Some(t) => Some(TlsAcceptor::from(Arc::new(sr_tls::server_config(
            &t.cert_path,
            &t.key_path,
        )?))),
        None => None,
    };
    let running = bootstrap(cfg).await?;
    let app = running.app.clone();
    tracing::info!(listen = %listener.local_addr()?, tls = acceptor.is_some(), nodes = app.mem.lock().map.len(), "collector started");
    let (conn_stop_tx, conn_stop_rx) = watch::channel(false);
    let mut listener = Listener {
        router: api::router(app.clone()),
        builder: http_builder(&app.cfg),
        permits: Arc::new(Semaphore::new(app.cfg.max_connections)),
        listener,
        acceptor,
        app,
        conn_stop: conn_stop_rx,
        conns: JoinSet::new(),
    };
    listener.run(shutdown).await;
    running.drain(listener, conn_stop_tx).await;
    Ok(())
}

/// A bootstrapped collector: memory loaded from the store, the writer thread and the
/// write-behind flusher running.
struct Running {
    app: Arc<App>,
    writer_thread: std::thread::JoinHandle<()>,
    flusher: tokio::task::JoinHandle<()>,
    flush_stop: watch::Sender<bool>,
}

/// Opens the store, loads tokens and nodes into memory, and starts the writer thread and
/// the flusher. Memory is the source of truth from here on; the store is its mirror.
async fn bootstrap(cfg: Config) -> Result<Running, ServeError> {
    let dir = cfg.state_dir.clone();
    let (store, tokens, nodes, version) =
        tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let s = Store::open(&dir)?;
            let tokens = s.active_token_hashes()?;
            let nodes = s.load_nodes()?;
            let version = s.data_version()?;
            Ok((s, tokens, nodes, version))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mem = Memory::default();
    mem.set_tokens(tokens);
    mem.reload_nodes(nodes);
    let (writer, writer_thread) = Writer::start(store, version);
    let app = Arc::new(App::new(cfg, mem, writer));
    let (flush_stop, flush_stop_rx) = watch::channel(false);
    let flusher = tokio::spawn(flush_loop(app.clone(), flush_stop_rx));
    Ok(Running {
        app,
        writer_thread,
        flusher,
        flush_stop,
    })
}

/// HTTP/1.1 and HTTP/2 settings: the header deadline (slow-loris) and HTTP/2 bounds.
fn http_builder(cfg: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// The accept loop's state: what every connection gets a clone of, and the connections.
struct Listener {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: axum::Router,
    builder: auto::Builder<TokioExecutor>,
    app: Arc<App>,
    /// One permit per open connection: the hard `max_connections` cap.
    permits: Arc<Semaphore>,
    /// Fires when the drain begins: each connection closes gracefully.
    conn_stop: watch::Receiver<bool>,
    conns: JoinSet<()>,
}

impl Listener {
    /// Accepts connections until `shutdown` completes. Over the cap a connection is
    /// closed at once and counted.
    async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            while self.conns.try_join_next().is_some() {}
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                Counters::bump(&self.app.mem.counters.connections_refused);
                tracing::debug!(%peer, "connection refused: max_connections reached");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let conn = handle(
                tcp,
                peer,
                self.router.clone(),
                self.builder.clone(),
                self.acceptor.clone(),
                self.app.clone(),
                self.conn_stop.clone(),
            );
            self.conns.spawn(async move {
                let _permit = permit;
                conn.await
            });
        }
    }
}

/// One connection: the TLS handshake under the header deadline, then HTTP until the
/// peer closes or the drain begins.
async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    builder: auto::Builder<TokioExecutor>,
    acceptor: Option<TlsAcceptor>,
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) {
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        router.clone().oneshot(req)
    });
    match acceptor {
        None => drive(&builder, tcp, svc, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(app.cfg.header_read_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => drive(&builder, tls, svc, stop).await,
                Ok(Err(e)) => {
                    Counters::bump(&app.mem.counters.tls_handshake_failures);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    Counters::bump(&app.mem.counters.tls_handshake_failures);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

impl Running {
    /// Stops accepting, closes connections gracefully within `shutdown_grace` (then
    /// aborts the rest), flushes once more and joins the writer thread.
    async fn drain(self, listener: Listener, conn_stop: watch::Sender<bool>) {
        tracing::info!("collector stopping: draining connections");
        let Listener {
            listener: socket,
            router,
            app: listener_app,
            mut conns,
            ..
        } = listener;
        drop(socket);
        let _ = conn_stop.send(true);
        let drained = tokio::time::timeout(self.app.cfg.shutdown_grace, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = conns.len(),
                "shutdown grace over: closing remaining connections"
            );
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        }
        let _ = self.flush_stop.send(true);
        let _ = self.flusher.await;
        // The writer thread ends when the last `Writer` (inside the app) is dropped.
        drop(router);
        drop(listener_app);
        drop(self.app);
        let writer_thread = self.writer_thread;
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        tracing::info!("collector stopped");
    }
}

/// Serves one connection until it ends, or closes it gracefully when `stop` fires.
async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    svc: S,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Writes the latest reports behind every [`FLUSH_INTERVAL`], picks up store changes
/// made by the CLI, and flushes once more when stopped.
async fn flush_loop(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => flush_once(&app).await,
            _ = stop.changed() => break,
        }
    }
    flush_once(&app).await;
}

async fn flush_once(app: &App) {
    let rows = app.mem.take_dirty();
    let keys: Vec<_> = rows
        .iter()
        .map(|r| (r.node_type, r.node_id.clone()))
        .collect();
    match app.writer.flush(rows).await {
        Ok(reload) => {
            Counters::bump(&app.mem.counters.flushes);
            if let Some(reload) = reload {
                app.mem.set_tokens(reload.tokens);
                app.mem.reload_nodes(reload.nodes);
                tracing::debug!("store changed outside the collector: tokens and nodes reloaded");
            }
        }
        Err(e) => {
            Counters::bump(&app.mem.counters.flush_errors);
            tracing::warn!(error = %e, rows = keys.len(), "write-behind flush failed; will retry");
            let mut nodes = app.mem.lock();
            for k in keys {
                if nodes.map.contains_key(&k) {
                    nodes.dirty.insert(k);
                }
            }
        }
    }
}
