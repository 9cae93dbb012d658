//! `status-reporter quickstart`: the whole system on this host, on embedded defaults.
//!
//! It makes a throwaway CA and collector certificate in a state directory, starts a
//! collector on loopback, creates tokens, configures an agent for this host (as a manager
//! node, with the local services it finds listening), runs it, and shows `cluster status`
//! until Ctrl-C. Everything runs in this one process, through the same library entry
//! points the daemons use (`sr_collector::serve`, `sr_agent::configure`, `sr_agent::run`),
//! so the quickstart exercises the real path, TLS and signatures included.
//!
//! The temporary state directory holds a CA key and tokens, so it must go however the
//! quickstart is stopped: SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager) and SIGHUP
//! (the terminal closed) are all caught from the start, and each stops the agent and the
//! collector before the directory is removed (so neither can write into it again).

use anyhow::{bail, Context};
use sr_collector::{setup, Config as CollectorConfig, Role};
use sr_protocol::view::ClusterStatus;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `quickstart --help`. Set on the subcommand in main.rs: a doc comment there would win over
/// the struct's own attribute.
pub const LONG_ABOUT: &str =
    "Run a throwaway collector and an agent for this host, and watch `cluster status`.\n\n\
Prints the collector URL, the CA file and an admin token (also the password of the `admin` \
user for HTTP Basic), each on its own line, so curl or `cfy` can be pointed at it:\n\n  \
curl --cacert CA_FILE -H \"API-Authentication-Token: TOKEN\" URL/api/v3.1/cluster-status\n\n\
Nothing is installed and nothing outside the state directory is written; a temporary state \
directory is removed on exit. This host alone has no db or broker nodes, so the view shows \
Fail.\n\n\
With --ha it brings up a real small HA control plane on this host instead, on 127.0.0.1 \
only: etcd, Patroni ×3 over PostgreSQL, RabbitMQ ×3 with management, an agent per node \
(3 db, 3 broker, 1 manager) and the collector. It needs Debian's packages patroni, \
etcd-server, postgresql and rabbitmq-server: as root it says which are missing and installs \
them with apt-get (with --yes, or after asking on a terminal); as another user it prints the \
apt-get command and stops. PostgreSQL refuses to run as root, so as root Patroni and \
PostgreSQL run as the system user `postgres`. It prints a healthy view, the status page URL, \
a curl for /metrics and two commands to try (stop the Patroni leader, stop a RabbitMQ node), \
then shows the change and the recovery live; what you stop is started again after \
--restart-after seconds. Ctrl-C, SIGTERM or SIGHUP tear everything down at any moment, as \
does a failed start: every process group stopped, every port freed, the temporary directory \
removed. The state directory's quickstart-ha.json lists the processes and ports.\n\n  \
sudo status-reporter quickstart --ha            # asks before installing anything\n  \
sudo status-reporter quickstart --ha --yes --once   # install, show the healthy view, tear down";

#[derive(clap::Args)]
pub struct QuickstartArgs {
    /// Show the view once after the first report (with --ha: once healthy), then stop.
    #[arg(long)]
    pub once: bool,
    /// Keep everything in DIR (created if missing) instead of a temporary directory that
    /// is removed on exit.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Collector port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seconds between agent reports.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub reporting_freq: u32,
    #[command(flatten)]
    pub ha: ha::HaArgs,
}

mod ha;

/// Well-known local services the quickstart looks for, as (display name, port).
const WELL_KNOWN: &[(&str, u16)] = &[
    ("PostgreSQL", 5432),
    ("RabbitMQ AMQP", 5672),
    ("RabbitMQ management", 15672),
    ("Patroni REST", 8008),
    ("etcd", 2379),
];

/// How long the first report may take before the quickstart gives up.
const FIRST_REPORT_DEADLINE: Duration = Duration::from_secs(30);

pub fn run(args: QuickstartArgs) -> anyhow::Result<i32> {
    // Before the runtime: it may ask on the terminal and run apt-get.
    let prepared = args.ha.ha.then(|| ha::prepare(&args.ha)).transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match prepared {
        Some(p) => rt.block_on(ha::run(args, p)),
        None => rt.block_on(quickstart(args)),
    }
}

async fn quickstart(args: QuickstartArgs) -> anyhow::Result<i32> {
    // Before the directory exists: a signal during setup is then only recorded, and the
    // view returns as soon as it starts, through the same shutdown as a later signal.
    let stop_signal = stop_signals()?;
    let (dir, _temp_guard) = match &args.state_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("status-reporter-quickstart-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };

    let pki = write_pki(&dir)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    let mut collector_cfg = CollectorConfig::new(dir.join("collector"), &pki.cert, &pki.key);
    collector_cfg.listen = addr;
    let store_path = collector_cfg.state_dir.join(sr_collector::store::DB_FILE);
    let (manager_token, admin_token) = create_tokens(&collector_cfg)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let collector = tokio::spawn(sr_collector::serve(
        collector_cfg,
        listener,
        stopped(stop_rx.clone()),
    ));

    let agent_config = configure_agent(
        &dir,
        &pki.ca,
        addr,
        &manager_token,
        &store_path,
        args.reporting_freq,
    )
    .await?;
    let agent = tokio::spawn(sr_agent::run(agent_config.clone(), stopped(stop_rx)));

    let url = format!("https://{addr}");
    println!("Collector URL: {url}");
    println!("CA file: {}", pki.ca.display());
    println!("Admin token: {admin_token}");
    println!("Agent config: {}", agent_config.display());
    println!();

    let outcome = watch_view(
        &url,
        &pki.ca,
        &admin_token,
        args.once,
        args.reporting_freq,
        stop_signal,
    )
    .await;

    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        let a = agent.await;
        let c = collector.await;
        (a, c)
    })
    .await;
    match drained {
        Ok((Ok(Err(e)), _)) => eprintln!("agent stopped with an error: {e}"),
        Ok((_, Ok(Err(e)))) => eprintln!("collector stopped with an error: {e}"),
        Err(_) => eprintln!("shutdown did not finish within 15 s"),
        _ => {}
    }
    if args.state_dir.is_none() {
        // After SIGHUP the terminal may be gone; the removal (on return) matters more
        // than this line, so a failed write must not panic.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "Removed {}", dir.display());
    }
    outcome
}

/// Catches SIGINT, SIGTERM and SIGHUP from now on; the receiver turns true at the first.
fn stop_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

struct PkiFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pki(dir: &Path) -> anyhow::Result<PkiFiles> {
    let ca =
        sr_tls::pki::Ca::new("status-reporter quickstart CA").context("cannot create the CA")?;
    let leaf = ca
        .server(&["localhost", "127.0.0.1"])
        .context("cannot issue the collector certificate")?;
    let files = PkiFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("collector.pem"),
        key: dir.join("collector.key"),
    };
    std::fs::write(&files.ca, ca.cert_pem())?;
    std::fs::write(&files.cert, &leaf.cert_pem)?;
    sr_fsutil::atomic_write(&files.key, leaf.key_pem.as_bytes(), 0o600, None)?;
    Ok(files)
}

/// A manager-role token for this host's agent, and an admin token that is also the
/// password of the `admin` user: the collector setup step, for an in-process collector.
fn create_tokens(cfg: &CollectorConfig) -> anyhow::Result<(String, String)> {
    let issued = setup::apply(&setup::plan(cfg.clone(), setup::Target::InProcess))?;
    let token = |role| {
        issued
            .token(role)
            .map(str::to_string)
            .context("the setup issues manager and admin tokens")
    };
    Ok((token(Role::Manager)?, token(Role::Admin)?))
}

/// Configures the agent through the same plan/apply steps as `status-reporter configure`,
/// then adds probes for what this host runs.
async fn configure_agent(
    dir: &Path,
    ca: &Path,
    collector: SocketAddr,
    token: &str,
    store_path: &Path,
    reporting_freq: u32,
) -> anyhow::Result<PathBuf> {
    configure_node(NodeSetup {
        base: dir,
        node_name: hostname(),
        node_type: "manager",
        token,
        ca,
        collector,
        reporting_freq,
        probes: local_probes(collector, ca, store_path).await?,
    })
}

/// One quickstart agent: its files go in `base` (`agent.toml`, `node.key`, `agent/`).
struct NodeSetup<'a> {
    base: &'a Path,
    node_name: Option<String>,
    node_type: &'static str,
    token: &'a str,
    ca: &'a Path,
    collector: SocketAddr,
    reporting_freq: u32,
    probes: Vec<sr_probes::ProbeConfig>,
}

/// Writes an agent's config and key through `sr_agent::configure` (plan, then apply), with
/// the given probes instead of the inferred ones. Returns the config path.
fn configure_node(n: NodeSetup<'_>) -> anyhow::Result<PathBuf> {
    let config_path = n.base.join("agent.toml");
    let args = sr_agent::configure::ConfigureArgs {
        config_path: config_path.clone(),
        token: n.token.to_string(),
        ca_path: n.ca.to_path_buf(),
        managers: vec![n.collector.to_string()],
        node_type: Some(n.node_type.into()),
        node_name: n.node_name,
        reporting_freq: Some(n.reporting_freq),
        key_path: Some(n.base.join("node.key")),
        state_dir: Some(n.base.join("agent")),
        ..Default::default()
    };
    let mut plan = sr_agent::configure::plan(&args, sr_agent::unix_now()).map_err(|errors| {
        anyhow::anyhow!("cannot configure the agent:\n  {}", errors.join("\n  "))
    })?;
    plan.raw.probes = n.probes;
    sr_agent::configure::apply(&plan)
        .map_err(|e| anyhow::anyhow!("cannot write the agent config: {e}"))?;
    Ok(config_path)
}

/// Built-in probe tables (TOML), checked by the probes' own parser.
fn parse_probes(tables: &[String]) -> anyhow::Result<Vec<sr_probes::ProbeConfig>> {
    tables
        .iter()
        .map(|t| {
            toml::from_str::<sr_probes::ProbeConfig>(t)
                .with_context(|| format!("built-in probe config is invalid: {t}"))
        })
        .collect()
}

/// The host probe, the collector we just started, and a TCP probe for every well-known
/// service that answers on this host.
async fn local_probes(
    collector: SocketAddr,
    ca: &Path,
    store_path: &Path,
) -> anyhow::Result<Vec<sr_probes::ProbeConfig>> {
    let mut tables = vec![
        // The quickstart runs on developer machines, whose clocks are often not NTP-synced;
        // that is worth a line in the docs, not a Degraded demo.
        "kind = \"host\"\nrequire_clock_sync = false".to_string(),
        format!(
            "kind = \"collector_self\"\nurl = \"https://{collector}/api/v3.1/ok\"\nstore_path = {:?}\ntls = {{ ca_file = {:?} }}",
            store_path.display().to_string(),
            ca.display().to_string()
        ),
    ];
    let checks = WELL_KNOWN.iter().map(|(name, port)| async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        let up = matches!(
            tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr)
            )
            .await,
            Ok(Ok(_))
        );
        (name, addr, up)
    });
    for (name, addr, up) in futures_join_all(checks).await {
        if up {
            tables.push(format!(
                "kind = \"tcp\"\nname = {name:?}\naddress = \"{addr}\""
            ));
        }
    }
    parse_probes(&tables)
}

/// Runs the futures concurrently and keeps their order (a handful of connects; not worth
/// a dependency).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("probe-discovery task does not panic"));
    }
    out
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Shows the view: once after the first report with `once`, else refreshed until a stop
/// signal (which also ends the wait for the first report).
async fn watch_view(
    url: &str,
    ca: &Path,
    token: &str,
    once: bool,
    every_secs: u32,
    stop_signal: watch::Receiver<bool>,
) -> anyhow::Result<i32> {
    let client = sr_tls::HttpsClient::new(sr_tls::client_config(ca, None)?, Duration::from_secs(2));
    let stop = stopped(stop_signal);
    tokio::pin!(stop);
    let started = Instant::now();
    let first = loop {
        match fetch_view(&client, url, token).await {
            Ok(view) if has_reported_node(&view) => break view,
            Ok(_) | Err(_) if started.elapsed() < FIRST_REPORT_DEADLINE => {
                tokio::select! {
                    _ = &mut stop => return Ok(0),
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Ok(_) => bail!("no report reached the collector within {FIRST_REPORT_DEADLINE:?}"),
            Err(e) => return Err(e.context("the collector does not answer")),
        }
    };
    if once {
        super::manager::print_view(&first);
        return Ok(0);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs.into()));
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(0),
            _ = tick.tick() => {
                // Clear the screen and home the cursor, like `watch`.
                print!("\x1b[2J\x1b[H");
                println!("{url}  (Ctrl-C to stop)\n");
                match fetch_view(&client, url, token).await {
                    Ok(view) => super::manager::print_view(&view),
                    Err(e) => println!("cannot read cluster status: {e:#}"),
                }
            }
        }
    }
}

fn has_reported_node(view: &ClusterStatus) -> bool {
    view.services
        .values()
        .flat_map(|s| s.nodes.values())
        .any(|n| n.last_seen.is_some())
}

async fn fetch_view(
    client: &sr_tls::HttpsClient,
    url: &str,
    token: &str,
) -> anyhow::Result<ClusterStatus> {
    let resp = client
        .get(
            &format!("{url}/api/v3.1/cluster-status"),
            &[(sr_protocol::TOKEN_HEADER, token)],
            Duration::from_secs(5),
            16 << 20,
        )
        .await?;
    // 500 is the legacy answer for a Fail cluster only with ?summary=true; anything but
    // 200 here is an error worth showing.
    if !resp.status.is_success() {
        bail!("cluster-status answered {}", resp.status);
    }
    Ok(serde_json::from_slice(&resp.body)?)
}
