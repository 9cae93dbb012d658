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
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
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
    let app = Arc::new(App::new(cfg.clone(), mem, writer));
    let router = api::router(app.clone());
    tracing::info!(listen = %listener.local_addr()?, tls = acceptor.is_some(), nodes = app.mem.lock().map.len(), "collector started");

    let (flush_stop_tx, flush_stop_rx) = watch::channel(false);
    let flusher = tokio::spawn(flush_loop(app.clone(), flush_stop_rx));

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

    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let (conn_stop_tx, conn_stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            Counters::bump(&app.mem.counters.connections_refused);
            tracing::debug!(%peer, "connection refused: max_connections reached");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (router, builder, acceptor, app, stop) = (
            router.clone(),
            builder.clone(),
            acceptor.clone(),
            app.clone(),
            conn_stop_rx.clone(),
        );
        conns.spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                router.clone().oneshot(req)
            });
            match acceptor {
                None => drive(&builder, tcp, svc, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(app.cfg.header_read_timeout, acceptor.accept(tcp))
                        .await
                    {
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
        });
    }

    tracing::info!("collector stopping: draining connections");
    drop(listener);
    let _ = conn_stop_tx.send(true);
    let drained = tokio::time::timeout(cfg.shutdown_grace, async {
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
    let _ = flush_stop_tx.send(true);
    let _ = flusher.await;
    drop(router);
    drop(app);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    tracing::info!("collector stopped");
    Ok(())
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
