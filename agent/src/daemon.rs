//! The daemon: the cycle loop, the push tasks it feeds, reload and shutdown.
//!
//! One loop owns the schedule. Each cycle runs the probes, folds the results into a
//! snapshot, records transitions, and puts the snapshot in every manager's latest-wins
//! slot; the push tasks deliver concurrently. The loop never waits on a manager, so a
//! dead or slow manager cannot delay the next cycle or the others' reports.
//!
//! Lifecycle:
//! - reload (SIGHUP in the binary) re-reads the config, CA, token and key, keeping the
//!   boot id, the sequence counter, the transition ring and each manager's acked seq.
//!   An invalid new config is refused and the old one kept;
//! - shutdown stops the schedule, lets in-flight pushes finish for up to
//!   [`SHUTDOWN_GRACE`], then returns;
//! - an event source ([`crate::watch`]) may ask for a cycle before the next tick: it
//!   runs at once within the extra-cycle budget, is pushed only if a status changed, and
//!   leaves the tick grid as it was;
//! - with systemd, READY=1 follows the first complete cycle and WATCHDOG=1 every complete
//!   cycle, so a wedged loop is restarted. Without systemd these are no-ops.

use crate::config::{load_key, AgentConfig, ConfigError, KeyError, ManagerAddr};
use crate::managers::ManagerSet;
use crate::push::{manager_task, Job, PushContext, PushEvent, Shared};
use crate::report::{Identity, Snapshot};
use crate::schedule::{cycle_budget, run_cycle, ProbeResult, Ticker};
use sr_probes::{Probe, ProbeContext};
use sr_tls::HttpsClient;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long in-flight pushes may take after shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The agent's delivery state as last changed, for operators on the node.
pub const HEALTH_FILE: &str = "agent-health.json";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot load the CA: {0}")]
    Tls(#[from] sr_tls::TlsError),
    #[error("cannot load the node key: {0}")]
    Key(#[from] KeyError),
    #[error("check_listen {addr}: {source}")]
    CheckListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Metrics(std::io::Error),
}

/// Builds the probes a config names.
pub fn build_probes(cfg: &AgentConfig) -> Vec<Arc<dyn Probe>> {
    cfg.probes
        .iter()
        .map(|p| Arc::from(sr_probes::build(p)))
        .collect()
}

/// Runs every probe once, as `status-reporter probe` does: no push.
pub async fn probe_once(cfg: &AgentConfig) -> (Snapshot, Vec<ProbeResult>) {
    let probes = build_probes(cfg);
    let period = Duration::from_secs(cfg.reporting_freq.into());
    let start = Instant::now();
    let results = run_cycle(
        &probes,
        &ProbeContext {
            cycle: 0,
            now: crate::unix_now(),
        },
        cycle_budget(period),
    )
    .await;
    let snap = Snapshot::from_results(&results, start.elapsed().as_millis() as u64);
    (snap, results)
}

fn push_context(cfg: &AgentConfig, boot_id: &str) -> Result<PushContext, RunError> {
    let tls = sr_tls::client_config(&cfg.ca_path, None)?;
    // A connect that started while a manager was unreachable must not outlive one
    // interval: SYN retransmits back off to seconds, and a healed manager should get the
    // next cycle's fresh attempt instead of waiting on a stale one.
    let connect_timeout = cfg
        .push_timeout
        .min(Duration::from_secs(3))
        .min(Duration::from_secs(cfg.reporting_freq.into()));
    let client = HttpsClient::new(tls, connect_timeout);
    Ok(PushContext {
        client,
        token: cfg.token.clone(),
        key: load_key(&cfg.key_path)?,
        node_type: cfg.node_type,
        node_id: cfg.node_id.clone(),
        identity: Identity {
            node_name: cfg.node_name.clone(),
            private_ip: cfg.private_ip.clone(),
            reporting_freq: cfg.reporting_freq,
            boot_id: boot_id.to_string(),
        },
        timeout: cfg.push_timeout,
    })
}

/// How often a manager list is fetched after a successful push.
fn refresh_every(reporting_freq: u32) -> Duration {
    Duration::from_secs(u64::from(reporting_freq) * 12).max(Duration::from_secs(10))
}

/// How long a discovered manager may go unnamed by every answer before it is dropped:
/// two refreshes, so one late or failed refresh of the manager that still names it
/// does not drop it.
fn discovery_round(reporting_freq: u32) -> Duration {
    refresh_every(reporting_freq) * 2
}

struct Task {
    slot: watch::Sender<Option<Job>>,
    handle: JoinHandle<()>,
}

/// Everything the loop owns.
struct Daemon {
    cfg: AgentConfig,
    ctx: Arc<PushContext>,
    probes: Vec<Arc<dyn Probe>>,
    managers: ManagerSet,
    tasks: BTreeMap<ManagerAddr, Task>,
    shared: Arc<Shared>,
    events: mpsc::Sender<PushEvent>,
    stop: watch::Sender<bool>,
    last_job: Option<Job>,
    /// Each cycle's findings for the check endpoint, when `check_listen` is set.
    check: Option<Arc<crate::check::CheckBoard>>,
    /// The event sources' watches (rebuilt on reload) and the extra-cycle budget.
    waker: crate::watch::Waker,
    processes: Option<crate::watch::process::ProcessWatch>,
    connections: Option<crate::watch::connection::ConnectionWatch>,
    units: Option<crate::watch::systemd::UnitWatch>,
    sessions: Option<crate::watch::session::SessionWatch>,
    /// Runs on its own timer (not re-armed by cycles); dropping it stops its polls.
    fast_poll: Option<crate::watch::fast_poll::FastPoll>,
    budget: crate::watch::Budget,
}

impl Daemon {
    /// Starts tasks for new managers and stops those no longer listed.
    fn reconcile(&mut self) {
        let want = self.managers.all();
        let gone: Vec<ManagerAddr> = self
            .tasks
            .keys()
            .filter(|a| !want.contains(a))
            .cloned()
            .collect();
        for addr in gone {
            if let Some(t) = self.tasks.remove(&addr) {
                t.handle.abort();
            }
            self.shared.lock().deliveries.remove(&addr);
            self.shared.metrics.forget_manager(&addr.to_string());
            tracing::info!(manager = %addr, "manager removed");
        }
        for addr in want {
            if self.tasks.contains_key(&addr) {
                continue;
            }
            let (slot, rx) = watch::channel(self.last_job.clone());
            let handle = tokio::spawn(manager_task(
                addr.clone(),
                rx,
                Arc::clone(&self.shared),
                self.events.clone(),
                self.stop.subscribe(),
                refresh_every(self.cfg.reporting_freq),
            ));
            tracing::info!(manager = %addr, "manager added");
            self.tasks.insert(addr, Task { slot, handle });
        }
    }

    fn publish(&mut self, job: Job) {
        for t in self.tasks.values() {
            t.slot.send_replace(Some(job.clone()));
        }
        self.last_job = Some(job);
    }

    /// Re-reads everything from the config file; keeps the old state if it is invalid.
    fn reload(&mut self, ticker: &mut Ticker) {
        let cfg = match AgentConfig::load(&self.cfg.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reload refused; keeping the running config");
                return;
            }
        };
        let ctx = match push_context(&cfg, &self.ctx.identity.boot_id) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reload refused; keeping the running config");
                return;
            }
        };
        if cfg.check_listen != self.cfg.check_listen {
            tracing::warn!("check_listen changes take effect on restart");
        }
        if cfg.metrics_listen != self.cfg.metrics_listen {
            tracing::warn!(
                "metrics_listen changed: the metrics listener changes only when the agent restarts"
            );
        }
        if cfg.reporting_freq != self.cfg.reporting_freq {
            ticker.reset(
                Instant::now(),
                Duration::from_secs(cfg.reporting_freq.into()),
            );
            warn_if_watchdog_too_short(cfg.reporting_freq);
        }
        self.probes = build_probes(&cfg);
        (self.processes, self.connections, self.units, self.sessions) =
            event_sources(&cfg, &self.waker);
        self.fast_poll = None;
        self.fast_poll = fast_poll(&cfg, &self.waker);
        self.budget = extra_cycle_budget(&cfg);
        self.ctx = Arc::new(ctx);
        self.managers.set_seeds(cfg.managers.clone());
        self.cfg = cfg;
        self.reconcile();
        tracing::info!(
            managers = self.tasks.len(),
            probes = self.probes.len(),
            "config reloaded"
        );
    }

    fn save_health(&self) {
        let health = self.shared.lock().health();
        let file = self.cfg.state_dir.join(HEALTH_FILE);
        let body = serde_json::to_vec_pretty(&health).expect("health serializes");
        let result = sr_fsutil::create_private_dir(&self.cfg.state_dir)
            .and_then(|_| sr_fsutil::atomic_write(&file, &body, 0o644, None))
            .map_err(|e| format!("cannot save {}: {e}", file.display()));
        let mut st = self.shared.lock();
        if let Err(e) = &result {
            if st.persist_error.as_deref() != Some(e.as_str()) {
                tracing::warn!(error = %e, "cannot persist agent state");
            }
        }
        st.persist_error = result.err();
    }

    fn on_event(&mut self, ev: PushEvent) {
        match ev {
            PushEvent::HealthChanged => self.save_health(),
            PushEvent::Discovered { from, ips } => match self.managers.merge_discovered(
                &ips,
                Instant::now().into_std(),
                discovery_round(self.cfg.reporting_freq),
            ) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(source = %from, managers = ?self.managers.all().iter().map(|a| a.to_string()).collect::<Vec<_>>(), "manager list changed");
                    self.reconcile();
                }
                Err(e) => {
                    self.reconcile();
                    tracing::warn!(error = %e, "cannot persist the manager list");
                    self.shared.lock().persist_error = Some(e);
                }
            },
        }
    }
}

/// `max_extra_cycles` per reporting interval, full at first.
fn extra_cycle_budget(cfg: &AgentConfig) -> crate::watch::Budget {
    crate::watch::Budget::new(
        cfg.events.max_extra_cycles,
        Duration::from_secs(cfg.reporting_freq.into()),
        Instant::now(),
    )
}

/// The event sources `cfg` turns on, none armed yet (each arms after a cycle).
fn event_sources(
    cfg: &AgentConfig,
    waker: &crate::watch::Waker,
) -> (
    Option<crate::watch::process::ProcessWatch>,
    Option<crate::watch::connection::ConnectionWatch>,
    Option<crate::watch::systemd::UnitWatch>,
    Option<crate::watch::session::SessionWatch>,
) {
    use crate::watch::{
        connection::ConnectionWatch, listener, process::ProcessWatch, session,
        session::SessionWatch, systemd::UnitWatch,
    };
    let ev = cfg.events;
    let any = ev.max_extra_cycles > 0;
    let targets = || listener::targets(&cfg.probes);
    (
        (any && ev.process_exit).then(|| ProcessWatch::new(targets(), waker.clone())),
        (any && ev.connection_drop).then(|| ConnectionWatch::new(targets(), waker.clone())),
        (any && ev.unit_state)
            .then(|| UnitWatch::new(&cfg.probes, waker.clone()))
            .flatten(),
        (any && ev.session_end)
            .then(|| session::targets(&cfg.probes))
            .filter(|t| !t.is_empty())
            .map(|t| SessionWatch::new(t, waker.clone())),
    )
}

/// The fast poll, when `[events] fast_poll_ms` is on and a probe has an endpoint for it.
/// Started at once: its first answers are only remembered.
fn fast_poll(
    cfg: &AgentConfig,
    waker: &crate::watch::Waker,
) -> Option<crate::watch::fast_poll::FastPoll> {
    use crate::watch::fast_poll::{targets, FastPoll};
    let ev = cfg.events;
    if ev.max_extra_cycles == 0 || ev.fast_poll_ms == 0 {
        return None;
    }
    let t = targets(&cfg.probes);
    if t.is_empty() {
        return None;
    }
    tracing::info!(
        every_ms = ev.fast_poll_ms,
        targets = t.len(),
        "polling cheap endpoints between cycles"
    );
    Some(FastPoll::new(
        t,
        Duration::from_millis(ev.fast_poll_ms),
        waker.clone(),
    ))
}

/// Runs the agent on the config at `config_path` until `shutdown` completes.
pub async fn run(
    config_path: impl Into<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_reload(config_path, shutdown, None).await
}

/// Like [`run`], and each message on `reload` re-reads the config (SIGHUP).
/// WATCHDOG=1 is sent only after complete cycles, so a systemd `WatchdogSec=` shorter
/// than about two cycles restarts a healthy agent. The unit ships `WatchdogSec=30s`; an
/// operator who raises `reporting_freq` past that must raise it too, so say so loudly.
fn warn_if_watchdog_too_short(reporting_freq: u32) {
    let period = Duration::from_secs(reporting_freq.into());
    if let Some(watchdog) = sd_notify::watchdog_enabled() {
        if watchdog < period * 2 {
            tracing::warn!(
                watchdog_secs = watchdog.as_secs(), reporting_freq,
                "systemd's WatchdogSec is shorter than two reporting intervals, so systemd will restart the agent between cycles: raise WatchdogSec= (systemctl edit status-reporter) or lower reporting_freq"
            );
        }
    }
}

pub async fn run_with_reload(
    config_path: impl Into<PathBuf>,
    shutdown: impl Future<Output = ()>,
    mut reload: Option<mpsc::Receiver<()>>,
) -> Result<(), RunError> {
    let path = config_path.into();
    let cfg = AgentConfig::load(&path)?;
    let boot_id = uuid::Uuid::new_v4().to_string();
    let ctx = Arc::new(push_context(&cfg, &boot_id)?);
    let (events, mut event_rx) = mpsc::channel(64);
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared::default());
    let (waker, mut wake_rx) = crate::watch::channel(shared.metrics.clone());
    let (processes, connections, units, sessions) = event_sources(&cfg, &waker);
    let mut d = Daemon {
        processes,
        connections,
        units,
        sessions,
        fast_poll: fast_poll(&cfg, &waker),
        budget: extra_cycle_budget(&cfg),
        waker,
        probes: build_probes(&cfg),
        managers: ManagerSet::load(cfg.managers.clone(), &cfg.state_dir),
        cfg,
        ctx,
        tasks: BTreeMap::new(),
        shared,
        events,
        stop,
        last_job: None,
        check: None,
    };
    if let Some(addr) = d.cfg.check_listen {
        // Stale after three intervals: a wedged agent must not keep a server in rotation.
        let stale = Duration::from_secs(u64::from(d.cfg.reporting_freq) * 3);
        let board = Arc::new(crate::check::CheckBoard::new(
            d.probes.iter().map(|p| p.name().to_string()),
            stale,
        ));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::CheckListen { addr, source })?;
        tokio::spawn(crate::check::serve(
            listener,
            Arc::clone(&board),
            d.stop.subscribe(),
        ));
        tracing::info!(%addr, "check endpoint listening");
        d.check = Some(board);
    }
    if let Err(e) = sr_fsutil::create_private_dir(&d.cfg.state_dir) {
        d.shared.lock().persist_error =
            Some(format!("cannot create {}: {e}", d.cfg.state_dir.display()));
    }
    // Bound before the first cycle so that a taken port fails the start, not a scrape.
    let metrics_server = match d.cfg.metrics_listen {
        Some(addr) => {
            let listener = crate::metrics::bind(addr)
                .await
                .map_err(RunError::Metrics)?;
            let bound = listener.local_addr().map_err(RunError::Metrics)?;
            tracing::info!(listen = %bound, "metrics listening on http://{bound}/metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                d.shared.clone(),
            )))
        }
        None => None,
    };
    d.reconcile();
    tracing::info!(
        node_type = %d.cfg.node_type, node_id = %d.cfg.node_id, node_name = %d.cfg.node_name,
        boot_id = %boot_id, reporting_freq = d.cfg.reporting_freq, managers = d.tasks.len(), probes = d.probes.len(),
        "agent started"
    );
    warn_if_watchdog_too_short(d.cfg.reporting_freq);
    let mut ticker = Ticker::new(
        Instant::now(),
        Duration::from_secs(d.cfg.reporting_freq.into()),
    );
    let mut next = ticker.next_after(Instant::now());
    let mut cycle = 0u64;
    tokio::pin!(shutdown);
    loop {
        let reload_signal = async {
            match reload.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = reload_signal => match r {
                Some(()) => d.reload(&mut ticker),
                None => reload = None,
            },
            Some(ev) = event_rx.recv() => d.on_event(ev),
            Some(w) = wake_rx.recv() => {
                if on_wake(&mut d, w, &mut wake_rx, cycle, ticker.period()).await {
                    cycle += 1;
                }
            }
            _ = tokio::time::sleep_until(next) => {
                run_one_cycle(&mut d, cycle, ticker.period(), false).await;
                if cycle == 0 {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                cycle += 1;
                next = ticker.next_after(Instant::now());
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping");
    if let Some(m) = metrics_server {
        m.abort();
    }
    let _ = d.stop.send(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    for (addr, t) in std::mem::take(&mut d.tasks) {
        let abort = t.handle.abort_handle();
        if tokio::time::timeout_at(deadline, t.handle).await.is_err() {
            abort.abort();
            tracing::warn!(manager = %addr, "push still in flight at shutdown; abandoned");
        }
    }
    Ok(())
}

/// A wake-up from an event source: one extra cycle for it and every request queued with
/// it, if the budget allows. Returns whether a cycle ran.
async fn on_wake(
    d: &mut Daemon,
    first: crate::watch::Wake,
    queue: &mut mpsc::Receiver<crate::watch::Wake>,
    cycle: u64,
    period: Duration,
) -> bool {
    let metrics = d.shared.metrics.clone();
    let mut wakes = vec![first];
    while let Ok(w) = queue.try_recv() {
        wakes.push(w);
    }
    if !d.budget.try_take(Instant::now()) {
        for w in &wakes {
            metrics.wakeup(w.source.label(), "rate_limited");
        }
        tracing::debug!(probe = %wakes[0].probe, "wake-up over the extra-cycle budget; the next tick covers it");
        return false;
    }
    metrics.wakeup(wakes[0].source.label(), "cycle");
    for w in &wakes[1..] {
        metrics.wakeup(w.source.label(), "coalesced");
    }
    run_one_cycle(d, cycle, period, true).await;
    true
}

/// Runs one cycle and hands its snapshot to the push tasks. An extra cycle (`on_event`)
/// whose statuses did not change is not pushed: the managers hear of it at the next tick.
async fn run_one_cycle(d: &mut Daemon, cycle: u64, period: Duration, on_event: bool) {
    let start = Instant::now();
    let ctx = ProbeContext {
        cycle,
        now: crate::unix_now(),
    };
    let results = run_cycle(&d.probes, &ctx, cycle_budget(period)).await;
    let cycle_ms = start.elapsed().as_millis() as u64;
    if let Some(board) = &d.check {
        board.update(&results, Instant::now().into_std());
    }
    let mut snap = Snapshot::from_results(&results, cycle_ms);
    d.shared.metrics.cycle(&results, snap.node_status);
    {
        let shared = Arc::clone(&d.shared);
        let mut st = d.shared.lock();
        st.tracker
            .observe(&mut snap, crate::unix_now_ms(), || shared.next_seq());
        st.last_cycle_ms = Some(cycle_ms);
    }
    if snap.changed {
        tracing::info!(status = %snap.node_status, reasons = ?snap.reasons.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), "node status changed");
    }
    tracing::debug!(cycle, cycle_ms, on_event, status = %snap.node_status, "cycle complete");
    if let Some(p) = &mut d.processes {
        p.rearm();
    }
    if let Some(c) = &mut d.connections {
        c.rearm();
    }
    if let Some(u) = &mut d.units {
        u.rearm();
    }
    if let Some(s) = &mut d.sessions {
        s.rearm();
    }
    if on_event && !snap.changed {
        return;
    }
    let job = Job {
        snapshot: Arc::new(snap),
        ctx: Arc::clone(&d.ctx),
    };
    d.publish(job);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_probes::{BoxFuture, Finding};
    use sr_protocol::NodeStatus;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A probe whose outcome the test sets, counting its runs.
    #[derive(Default)]
    struct Flip {
        fail: AtomicBool,
        runs: AtomicU64,
    }

    impl Probe for Flip {
        fn name(&self) -> &str {
            "flip"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn run<'a>(&'a self, _ctx: &'a ProbeContext) -> BoxFuture<'a, Finding> {
            Box::pin(async move {
                self.runs.fetch_add(1, Ordering::SeqCst);
                if self.fail.load(Ordering::SeqCst) {
                    Finding::fail(sr_protocol::reasons::PROBE_CRASHED, "flip is down")
                } else {
                    Finding::ok()
                }
            })
        }
    }

    /// A daemon with one [`Flip`] probe and one manager slot the test reads instead of a
    /// push task (a job in the slot is what the push task would send at once).
    fn daemon(
        dir: &std::path::Path,
        max_extra_cycles: u32,
    ) -> (
        Daemon,
        Arc<Flip>,
        watch::Receiver<Option<Job>>,
        mpsc::Receiver<crate::watch::Wake>,
    ) {
        let ca = sr_tls::pki::Ca::new("test ca").unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        let der = sr_protocol::signing::NodeKey::generate_pkcs8().unwrap();
        std::fs::write(
            dir.join("node.key"),
            sr_fsutil::pem_encode(&der, "PRIVATE KEY"),
        )
        .unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(
            &path,
            format!(
                "node_type = \"db\"\nnode_id = \"n1\"\nnode_name = \"db1\"\ntoken = \"t\"\n\
                 ca_path = \"{d}/ca.pem\"\nkey_path = \"{d}/node.key\"\nstate_dir = \"{d}/state\"\n\
                 managers = [\"127.0.0.1\"]\n[events]\nmax_extra_cycles = {max_extra_cycles}\n[[probes]]\nkind = \"host\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let cfg = AgentConfig::load(&path).unwrap();
        let shared = Arc::new(Shared::default());
        let (waker, wake_rx) = crate::watch::channel(shared.metrics.clone());
        let flip = Arc::new(Flip::default());
        let (events, _) = mpsc::channel(8);
        let (slot, rx) = watch::channel(None);
        let mut d = Daemon {
            ctx: Arc::new(push_context(&cfg, "boot").unwrap()),
            probes: vec![flip.clone() as Arc<dyn Probe>],
            managers: ManagerSet::load(cfg.managers.clone(), &cfg.state_dir),
            tasks: BTreeMap::new(),
            shared,
            events,
            stop: watch::channel(false).0,
            last_job: None,
            check: None,
            processes: None,
            connections: None,
            units: None,
            sessions: None,
            fast_poll: None,
            budget: extra_cycle_budget(&cfg),
            waker,
            cfg,
        };
        let manager: ManagerAddr = "127.0.0.1".parse().unwrap();
        d.tasks.insert(
            manager,
            Task {
                slot,
                handle: tokio::spawn(async {}),
            },
        );
        (d, flip, rx, wake_rx)
    }

    fn wake() -> crate::watch::Wake {
        crate::watch::Wake {
            source: crate::watch::Source::ProcessExit,
            probe: "flip".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_wakes_runs_a_bounded_number_of_extra_cycles() {
        sr_tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let (mut d, flip, _rx, mut queue) = daemon(dir.path(), 3);
        let period = Duration::from_secs(5);
        // 50 events one after another, each handled before the next arrives.
        let mut ran = 0;
        for _ in 0..50 {
            if on_wake(&mut d, wake(), &mut queue, 0, period).await {
                ran += 1;
            }
        }
        assert_eq!(ran, 3, "the budget's capacity per interval");
        assert_eq!(flip.runs.load(Ordering::SeqCst), 3);
        // 50 events queued at once coalesce into one cycle (once the budget has refilled).
        tokio::time::advance(period).await;
        for _ in 0..crate::watch::WAKE_QUEUE {
            d.waker.wake(wake());
        }
        let first = queue.recv().await.unwrap();
        assert!(on_wake(&mut d, first, &mut queue, 1, period).await);
        assert_eq!(flip.runs.load(Ordering::SeqCst), 4);
        assert!(queue.try_recv().is_err(), "the queue was drained");
        let text = d.shared.metrics.encode(&d.shared);
        for want in [
            "wakeups_total{source=\"process_exit\",outcome=\"rate_limited\"} 47",
            "wakeups_total{source=\"process_exit\",outcome=\"cycle\"} 4",
            "wakeups_total{source=\"process_exit\",outcome=\"coalesced\"} 15",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_found_by_an_extra_cycle_is_pushed_at_once_and_no_change_is_not() {
        sr_tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let (mut d, flip, mut rx, mut queue) = daemon(dir.path(), 3);
        let period = Duration::from_secs(5);
        run_one_cycle(&mut d, 0, period, false).await;
        assert!(
            rx.has_changed().unwrap(),
            "a tick always hands over its report"
        );
        rx.borrow_and_update();
        // An event, nothing changed: a cycle runs but nothing is pushed.
        assert!(on_wake(&mut d, wake(), &mut queue, 1, period).await);
        assert_eq!(flip.runs.load(Ordering::SeqCst), 2);
        assert!(
            !rx.has_changed().unwrap(),
            "an unchanged extra cycle is not pushed"
        );
        // The service fails: the extra cycle's report is handed over at once, once.
        flip.fail.store(true, Ordering::SeqCst);
        assert!(on_wake(&mut d, wake(), &mut queue, 2, period).await);
        assert!(rx.has_changed().unwrap());
        let job = rx.borrow_and_update().clone().unwrap();
        assert_eq!(job.snapshot.node_status, NodeStatus::Fail);
        assert!(job.snapshot.changed);
        assert!(on_wake(&mut d, wake(), &mut queue, 3, period).await);
        assert!(
            !rx.has_changed().unwrap(),
            "the same failure is not pushed again"
        );
    }
}
