//! The collector's network side: a manual rustls accept loop in front of the axum router.
//!
//! Why manual: `axum::serve` has no TLS, and we need control the convenience servers
//! don't give: a hard connection cap (over it the TCP connection is closed at once and
//! counted), a deadline on the TLS handshake and on the request head (slow-loris), an
//! idle deadline for HTTP/1 and HTTP/2 alike (PINGs are not activity), and a structured
//! shutdown (stop accepting → graceful close of connections → deadline → final
//! write-behind flush → writer thread joined).
//!
//! File descriptors: the connection cap is lowered to what `RLIMIT_NOFILE` allows (after
//! raising the soft limit as far as the hard one), keeping [`FD_HEADROOM`] for the store
//! and the runtime, so past the cap a client is refused at accept instead of waiting in
//! the backlog behind `EMFILE`. `accept` failures are counted and logged once per
//! [`crate::app::LOG_PERIOD`].
//!
//! Liveness ([`Lifecycle`]): `on_ready` runs once the store is open and checked (the
//! listener is bound by the caller), and `on_alive` from the accept loop's own tick,
//! only while the writer thread answers a ping: systemd's READY=1 and WATCHDOG=1.

use crate::api::{self, PeerAddr};
use crate::app::{App, BoundCounters};
use crate::config::Config;
use crate::state::{Counters, Memory};
use crate::store::{Store, StoreError};
use crate::writer::Writer;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The latest-report snapshot is written behind at this interval: after a crash the
/// stored snapshot is at most this old (the documented bound is 1 s).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// File descriptors kept free of connections: stdio, the listener, the runtime's epoll
/// and event fds, the store (database, WAL and shared-memory files for the writer and a
/// second connection), and a few transient reads. The unit's `LimitNOFILE` is
/// `max_connections + FD_HEADROOM`.
pub const FD_HEADROOM: usize = 64;

/// What the process around the collector is told, and when (systemd's READY=1 and
/// WATCHDOG=1 in `collector run`). The default tells nobody anything.
pub struct Lifecycle {
    /// Runs once, after the store is open and checked and memory loaded.
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
    /// Runs from the accept loop every `alive_every`, only while the writer thread
    /// answered a ping within the last three periods.
    pub on_alive: Option<Box<dyn Fn() + Send + Sync>>,
    pub alive_every: Duration,
}

impl Lifecycle {
    /// systemd's notify protocol: READY=1 when ready, WATCHDOG=1 while alive, every
    /// half of `WatchdogSec=` (or every 5 s without a watchdog). Outside systemd
    /// (no `NOTIFY_SOCKET`) the messages go nowhere.
    pub fn systemd() -> Lifecycle {
        let every = sd_notify::watchdog_enabled()
            .map(|w| (w / 2).max(Duration::from_millis(100)))
            .unwrap_or(Duration::from_secs(5));
        Lifecycle {
            on_ready: Some(Box::new(|| {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            })),
            on_alive: Some(Box::new(|| {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            })),
            alive_every: every,
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            on_ready: None,
            on_alive: None,
            alive_every: Duration::from_secs(5),
        }
    }
}

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
    serve_with(cfg, listener, shutdown, Lifecycle::default()).await
}

/// [`serve`], telling `lifecycle` when the collector is ready and while it is alive.
pub async fn serve_with(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    lifecycle: Lifecycle,
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
    let max_connections = connection_cap(app.cfg.max_connections, raise_fd_limit());
    tracing::info!(listen = %listener.local_addr()?, tls = acceptor.is_some(), nodes = app.mem.lock().map.len(), max_connections, "collector started");
    if let Some(ready) = lifecycle.on_ready {
        ready();
    }
    let writer_beat = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let pinger = lifecycle.on_alive.as_ref().map(|_| {
        tokio::spawn(ping_writer(
            app.clone(),
            writer_beat.clone(),
            started,
            lifecycle.alive_every,
        ))
    });
    let (conn_stop_tx, conn_stop_rx) = watch::channel(false);
    let mut listener = Listener {
        router: api::router(app.clone()),
        builder: http_builder(&app.cfg),
        permits: Arc::new(Semaphore::new(max_connections)),
        listener,
        acceptor,
        app,
        conn_stop: conn_stop_rx,
        conns: JoinSet::new(),
        on_alive: lifecycle.on_alive,
        alive_every: lifecycle.alive_every,
        writer_beat,
        started,
    };
    listener.run(shutdown).await;
    if let Some(p) = pinger {
        p.abort();
    }
    running.drain(listener, conn_stop_tx).await;
    Ok(())
}

/// Pings the writer thread every `every`, recording when it last answered (ms since
/// `started`), for the accept loop's watchdog tick.
async fn ping_writer(app: Arc<App>, beat: Arc<AtomicU64>, started: Instant, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if app.writer.ping(every).await {
            beat.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in
/// force (`None` if it cannot be read).
fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The connection cap in force: `configured`, lowered so that connections plus
/// [`FD_HEADROOM`] fit in the file-descriptor limit (at least 1). Logs when it lowers.
pub fn connection_cap(configured: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return configured;
    };
    let fits = (limit as usize).saturating_sub(FD_HEADROOM).max(1);
    if fits < configured {
        tracing::warn!(
            configured, fd_limit = limit, in_force = fits,
            "max_connections does not fit the file-descriptor limit: connections past {fits} are refused; raise LimitNOFILE to at least max_connections + {FD_HEADROOM}"
        );
        return fits;
    }
    configured
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
    let retention = crate::store::Retention {
        max_age_ms: cfg.transitions_max_age.as_millis() as i64,
        per_node: cfg.transitions_per_node,
        forget_after_ms: cfg.forget_after.as_millis() as i64,
    };
    let (store, tokens, (nodes, pending), version) =
        tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut s = Store::open(&dir)?;
            // A damaged store must not start and accept writes on top of the damage.
            s.quick_check()?;
            s.set_retention(retention);
            // The writer's own commits are in memory already; what other connections
            // change is journalled from here on (store::changes), before the load.
            s.quiet_own_changes()?;
            let version = (s.data_version()?, s.reset_changes()?);
            let tokens = s.active_token_hashes()?;
            let nodes = (s.load_nodes()?, s.pending_keys()?);
            Ok((s, tokens, nodes, version))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mem = Memory::default();
    mem.set_tokens(tokens);
    mem.reload_nodes(nodes);
    mem.set_pending(pending);
    let (writer, writer_thread) = Writer::start(store, version);
    let app = Arc::new(App::new(cfg, mem, writer));
    let (flush_stop, flush_stop_rx) = watch::channel(false);
    let flusher = tokio::spawn(flush_loop(app.clone(), flush_stop_rx));
    // Ends by itself when the collector begins to stop (`App::closing`).
    tokio::spawn(crate::maintenance::expire_loop(app.clone()));
    crate::alerts::start(&app).map_err(|e| std::io::Error::other(format!("alerts: {e}")))?;
    crate::tier2::start(&app).map_err(|e| std::io::Error::other(format!("tier 2: {e}")))?;
    // The shared store's sync task, on its own store connection; it also ends with
    // `App::closing`. Ingest never waits for it.
    if let crate::shared::StoreKind::Postgres(pg) = &app.cfg.store {
        let (status, _task) = crate::shared::sync::spawn(
            pg.clone(),
            app.cfg.state_dir.clone(),
            retention,
            app.closing.subscribe(),
        );
        let _ = app.shared.set(status);
    }
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
        // Flow control bounds what a peer can push before a handler reads it: one body
        // per stream, and 1 MiB per connection (hyper's default, made explicit).
        .initial_stream_window_size(cfg.max_body_bytes.max(65_535) as u32)
        .initial_connection_window_size(1 << 20)
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
    on_alive: Option<Box<dyn Fn() + Send + Sync>>,
    alive_every: Duration,
    /// When the writer last answered a ping, ms since `started`.
    writer_beat: Arc<AtomicU64>,
    started: Instant,
}

impl Listener {
    /// Accepts connections until `shutdown` completes. Over the cap a connection is
    /// closed at once and counted.
    async fn run(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut alive_tick = tokio::time::interval(self.alive_every);
        alive_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while self.conns.try_join_next().is_some() {}
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                _ = alive_tick.tick(), if self.on_alive.is_some() => {
                    self.tell_alive();
                    continue;
                }
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        let bounds = &self.app.bounds;
                        BoundCounters::bump(&bounds.counters.accept_failures);
                        if let Some(held) = bounds.accept_log.allow() {
                            tracing::warn!(error = %e, since_last_line = held, "accept failed");
                        }
                        // EMFILE and friends: back off briefly instead of spinning.
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

    /// The watchdog tick: this loop is running (it got here), and the writer thread
    /// answered a ping within the last three periods.
    fn tell_alive(&self) {
        let Some(on_alive) = &self.on_alive else {
            return;
        };
        let beat = self.writer_beat.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        let window = 3 * self.alive_every.as_millis() as u64;
        if beat > 0 && now.saturating_sub(beat) <= window {
            on_alive();
        } else if beat > 0 || now > window {
            // Not at start-up, before the first ping had its answer.
            tracing::warn!("store writer has not answered a ping: withholding the watchdog");
        }
    }
}

/// When a connection last had a request in flight, for the idle deadline. HTTP/2 PINGs
/// and SETTINGS never reach the service, so they do not count.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// Held while one request is being served.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection becomes idle for `idle`, if nothing happens before.
    fn idle_at(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            Instant::now() + idle
        } else {
            self.last() + idle
        }
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last().elapsed() >= idle
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
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
    let activity = Activity::new();
    let tracker = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        let in_flight = tracker.begin();
        let answer = router.clone().oneshot(req);
        async move {
            // In flight until the answer's body is sent, not only its head: an event
            // stream is one answer for hours and must not count as an idle connection.
            answer.await.map(|resp| {
                resp.map(|body| {
                    axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                        let _held = &in_flight;
                        f
                    }))
                })
            })
        }
    });
    match acceptor {
        None => drive(&builder, tcp, svc, stop, &app, &activity).await,
        Some(acceptor) => {
            match tokio::time::timeout(app.cfg.header_read_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => drive(&builder, tls, svc, stop, &app, &activity).await,
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
        self.app.closing.send_replace(true);
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

/// Serves one connection until it ends, or closes it gracefully when `stop` fires or
/// when it has had no request in flight for `idle_timeout`.
async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    svc: S,
    mut stop: watch::Receiver<bool>,
    app: &App,
    activity: &Activity,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let idle = app.cfg.idle_timeout;
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    loop {
        let idle_at = tokio::time::Instant::from_std(activity.idle_at(idle));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if !activity.idle_for(idle) {
                    continue;
                }
                BoundCounters::bump(&app.bounds.counters.idle_closed);
                // HTTP/2: GOAWAY, then close (no stream is open); HTTP/1: close. A peer
                // that does not read the GOAWAY is dropped after the header deadline.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(app.cfg.header_read_timeout, conn).await;
                return;
            }
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
                if let Some(tokens) = reload.tokens {
                    app.mem.set_tokens(tokens);
                }
                match reload.nodes {
                    crate::writer::NodeReload::All(all) => app.mem.reload_nodes(all),
                    crate::writer::NodeReload::Some {
                        changed,
                        gone,
                        floors,
                    } => app.mem.reload_some(changed, gone, floors),
                }
                if let Some(pending) = reload.pending {
                    app.mem.set_pending(pending);
                }
                app.mem
                    .counters
                    .nodes_expired
                    .fetch_add(reload.expired as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!("store changed outside the collector: what changed reloaded");
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

#[cfg(test)]
#[path = "server_attacks.rs"]
mod attacks;
