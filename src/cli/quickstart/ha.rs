//! `status-reporter quickstart --ha`: a real small HA control plane on this host, on
//! loopback, from the services' own Debian packages: etcd, Patroni ×3 over PostgreSQL,
//! RabbitMQ ×3 with management, an agent per node (3 db, 3 broker, 1 manager) and the
//! collector. It opens on a healthy view with the page URL, a `curl` for `/metrics` and two
//! commands to try, then shows the changes and the recovery live until Ctrl-C.
//!
//! The pieces: [`packages`] (what is needed and installing it), [`services`] (ports and
//! config files, pure), [`cluster`] (start and wait with deadlines), [`procs`] (process
//! groups, restarts, teardown). The collector and the agents run in this process through
//! the same library entry points as the plain quickstart and the daemons.
//!
//! Teardown is one path for every ending: Ctrl-C, SIGTERM or SIGHUP at any moment (the start
//! future is dropped where it stands), a failed start, or `--once`. It stops the agents and
//! the collector, then the services in order (each process group, SIGKILL past a deadline),
//! checks that no port is left bound, and removes a temporary state directory.

mod cluster;
mod packages;
mod procs;
mod services;

use super::QuickstartArgs;
use anyhow::{bail, Context};
use cluster::Cluster;
use procs::{Event, Procs};
use services::{Ports, MEMBERS};
use sr_collector::{setup, Config as CollectorConfig, Role};
use sr_protocol::view::ClusterStatus;
use sr_protocol::NodeStatus;
use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The HA mode's flags (all but `--ha` need it).
#[derive(clap::Args, Debug, Clone)]
pub struct HaArgs {
    /// Bring up a real HA cluster on this host instead: etcd, Patroni ×3 with PostgreSQL,
    /// RabbitMQ ×3, an agent per node and the collector, all on 127.0.0.1.
    #[arg(long)]
    pub ha: bool,
    /// Install missing Debian packages without asking (as root; otherwise the quickstart
    /// asks on a terminal, and stops when there is none).
    #[arg(long, requires = "ha")]
    pub yes: bool,
    /// Use the 18 consecutive ports from N (etcd, PostgreSQL, Patroni, epmd, AMQP,
    /// management, Erlang distribution) instead of free ports the system picks.
    #[arg(long, value_name = "N", requires = "ha")]
    pub port_base: Option<u16>,
    /// Restart a service that stopped after this many seconds, as systemd would (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 10, requires = "ha",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub restart_after: u64,
    /// Give up (and tear everything down) when the cluster is not healthy within this many
    /// seconds.
    #[arg(long, value_name = "SECS", default_value_t = 240, requires = "ha",
          value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub start_timeout: u64,
}

/// What is settled before the runtime starts: the programs (installed if needed) and the
/// user PostgreSQL runs as.
pub struct Prepared {
    tools: packages::Tools,
    pg_user: Option<(u32, u32)>,
    pg_user_note: Option<String>,
}

/// Finds (or installs) the packages and settles the PostgreSQL user. Interactive, so it
/// runs before the runtime and before any signal is caught.
pub fn prepare(args: &HaArgs) -> anyhow::Result<Prepared> {
    let tools = packages::ensure(args.yes)?;
    let (pg_user, pg_user_note) = if nix::unistd::geteuid().is_root() {
        let (uid, gid, created) = postgres_user()?;
        let note = format!(
            "PostgreSQL refuses to run as root: Patroni and PostgreSQL run as the system user \
             `postgres` (uid {uid}{}).",
            if created { ", created now" } else { "" }
        );
        (Some((uid, gid)), Some(note))
    } else {
        (None, None)
    };
    Ok(Prepared {
        tools,
        pg_user,
        pg_user_note,
    })
}

/// Debian's `postgres` user (the postgresql package creates it); created as a system user
/// with no login when missing, as the lab does.
fn postgres_user() -> anyhow::Result<(u32, u32, bool)> {
    let find = || nix::unistd::User::from_name("postgres").ok().flatten();
    let mut created = false;
    if find().is_none() {
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg("postgres")
            .status()
            .context("cannot run useradd")?;
        if !status.success() {
            bail!("useradd postgres failed ({status})");
        }
        created = true;
    }
    let u = find().context("the postgres user is missing after useradd")?;
    Ok((u.uid.as_raw(), u.gid.as_raw(), created))
}

/// Prints a line; a closed terminal (after SIGHUP) must not stop the teardown.
fn say(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout(), "{}", line.as_ref());
}

pub async fn run(args: QuickstartArgs, prep: Prepared) -> anyhow::Result<i32> {
    let stop_signal = super::stop_signals()?;
    let (dir, temp) = state_dir(args.state_dir.as_deref())?;
    let procs = Procs::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<Result<(), String>>> = Vec::new();
    let mut ports_used: Vec<u16> = Vec::new();
    let result = {
        let demo = demo(
            &args,
            prep,
            &dir,
            &procs,
            stop_rx,
            &mut tasks,
            &mut ports_used,
        );
        tokio::select! {
            r = demo => r,
            _ = super::stopped(stop_signal) => Ok(0),
        }
    };
    if let Err(e) = &result {
        say(format!("error: {e:#}"));
    }
    say("Stopping: the agents and the collector, then Patroni, PostgreSQL, etcd, RabbitMQ, epmd ...");
    let t = Instant::now();
    let _ = stop_tx.send(true);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(Err(e))) => say(format!("  {e}")),
            Ok(Err(e)) => say(format!("  a task failed: {e}")),
            Err(_) => say("  an agent or the collector did not stop within 15 s"),
            Ok(Ok(Ok(()))) => {}
        }
    }
    let killed = procs.teardown(Duration::from_secs(30)).await;
    if !killed.is_empty() {
        say(format!("  needed SIGKILL: {}", killed.join(", ")));
    }
    let strays = procs.sweep(&dir).await;
    if !strays.is_empty() {
        say(format!(
            "  killed what was still working in the state directory: {}",
            strays.join(", ")
        ));
    }
    let bound: Vec<String> = ports_used
        .iter()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", **p)).is_err())
        .map(|p| p.to_string())
        .collect();
    if bound.is_empty() {
        say(format!(
            "Stopped every process in {:.1} s; all {} ports are free.",
            t.elapsed().as_secs_f64(),
            ports_used.len()
        ));
    } else {
        say(format!(
            "Stopped every process; ports still bound by another process: {}",
            bound.join(" ")
        ));
    }
    if let Some(temp) = temp {
        // kept from its automatic removal: that one would fail silently
        let path = temp.keep();
        match remove_dir(&path).await {
            Ok(()) => say(format!("Removed {}", dir.display())),
            Err(e) => {
                // stdout may be a closed terminal by now; this must be seen somewhere
                let msg = format!("could not remove {}: {e}", dir.display());
                say(&msg);
                let _ = writeln!(std::io::stderr(), "{msg}");
            }
        }
    }
    // the error was printed above, before the teardown's lines; exit 2 as for any error
    result.or(Ok(2))
}

/// Removes the state directory, a few times if need be: a process that was stopping may
/// still have written a file while the first pass ran.
async fn remove_dir(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The given directory (kept), or a temporary one (removed). PostgreSQL runs as another
/// user and must traverse it: 0755 (its secrets are files of mode 0600 inside).
fn state_dir(given: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    use std::os::unix::fs::PermissionsExt;
    let (dir, temp) = match given {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            if std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "--state-dir {} is not empty: the HA quickstart starts new clusters in an empty directory",
                    d.display()
                );
            }
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("status-reporter-ha-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok((dir, temp))
}

/// The ports: consecutive from `--port-base`, or free ones the system picks (bound all at
/// once, then released); either way each is checked free first.
fn choose_ports(base: Option<u16>) -> anyhow::Result<Ports> {
    let ports = match base {
        Some(b) => Ports::consecutive(b).map_err(anyhow::Error::msg)?,
        None => {
            let listeners = (0..services::PORT_COUNT)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<Vec<_>>>()
                .context("cannot pick free ports on 127.0.0.1")?;
            let list: Vec<u16> = listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<std::io::Result<_>>()?;
            Ports::from_list(&list.try_into().expect("PORT_COUNT ports"))
        }
    };
    let busy: Vec<String> = ports
        .all()
        .into_iter()
        .filter(|(p, _)| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
        .map(|(p, what)| format!("{p} ({what})"))
        .collect();
    if !busy.is_empty() {
        bail!(
            "ports already in use: {} (choose others with --port-base)",
            busy.join(", ")
        );
    }
    Ok(ports)
}

/// Where the state file goes: the processes and ports, for whoever must check them.
const STATE_FILE: &str = "quickstart-ha.json";

fn write_state(dir: &Path, url: &str, ports: &[u16], procs: &Procs) {
    let state = serde_json::json!({
        "dir": dir,
        "collector_url": url,
        "ports": ports,
        "processes": procs
            .snapshot()
            .iter()
            .map(|p| serde_json::json!({
                "name": p.name, "pid": p.pid, "pgid": p.pgid, "running": p.running,
            }))
            .collect::<Vec<_>>(),
    });
    // best effort: the state file is for inspection, the teardown does not read it
    let _ = sr_fsutil::atomic_write(
        &dir.join(STATE_FILE),
        state.to_string().as_bytes(),
        0o644,
        None,
    );
}

/// Everything from the first port to the live view. Dropped where it stands on a signal.
async fn demo(
    args: &QuickstartArgs,
    prep: Prepared,
    dir: &Path,
    procs: &Procs,
    stop_rx: watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<Result<(), String>>>,
    ports_used: &mut Vec<u16>,
) -> anyhow::Result<i32> {
    let t0 = Instant::now();
    let ha = &args.ha;
    let deadline = t0 + Duration::from_secs(ha.start_timeout);
    let ports = choose_ports(ha.port_base)?;

    // ---- the collector, with a token per role ----
    let pki = super::write_pki(dir)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    ports_used.extend(ports.all().iter().map(|(p, _)| *p));
    ports_used.push(addr.port());
    let mut cfg = CollectorConfig::new(dir.join("collector"), &pki.cert, &pki.key);
    cfg.listen = addr;
    // Trying the two commands a few times is the point of the demo; the default damping
    // (4 changes in 10 minutes) would hold those nodes at "flapping".
    cfg.flap_threshold = 12;
    let store_path = cfg.state_dir.join(sr_collector::store::DB_FILE);
    let mut plan = setup::plan(cfg.clone(), setup::Target::InProcess);
    plan.roles = vec![Role::Manager, Role::Db, Role::Broker, Role::Admin];
    let issued = setup::apply(&plan)?;
    let token = |role| {
        issued
            .token(role)
            .map(str::to_string)
            .context("the setup issues a token per role")
    };
    let admin = token(Role::Admin)?;
    let token_file = dir.join("admin-token");
    sr_fsutil::atomic_write(&token_file, admin.as_bytes(), 0o600, None)?;
    let url = format!("https://{addr}");
    let collector_stop = super::stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        sr_collector::serve(cfg, listener, collector_stop)
            .await
            .map_err(|e| format!("collector: {e}"))
    }));

    say(format!("State directory: {}", dir.display()));
    say(format!("Collector URL: {url}"));
    say(format!("CA file: {}", pki.ca.display()));
    say(format!("Admin token: {admin}"));
    if let Some(note) = &prep.pg_user_note {
        say(note);
    }
    say(format!(
        "Starting etcd, Patroni ×3 over PostgreSQL ({}), RabbitMQ ×3 on 127.0.0.1 (about half a minute) ...",
        prep.tools.pg_bin.display()
    ));

    // ---- the services ----
    let cl = Cluster::new(
        dir.to_path_buf(),
        ports,
        prep.tools,
        prep.pg_user,
        procs.clone(),
    )?;
    let all_ports = ports_used.clone();
    cl.start_etcd(deadline).await?;
    say(format!(
        "  etcd healthy ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));
    cl.spawn_patroni()?;
    cl.spawn_rabbit()?;
    write_state(dir, &url, &all_ports, procs);
    let leader = cl.wait_patroni(deadline).await?;
    say(format!(
        "  Patroni: leader pg{leader} and {} streaming replicas ({:.1} s)",
        MEMBERS - 1,
        t0.elapsed().as_secs_f64()
    ));
    cl.create_pg_monitor(leader).await?;
    cl.wait_rabbit(deadline).await?;
    say(format!(
        "  RabbitMQ: {MEMBERS} nodes running in one cluster ({:.1} s)",
        t0.elapsed().as_secs_f64()
    ));
    cl.create_rabbit_monitor().await?;
    write_state(dir, &url, &all_ports, procs);

    // ---- an agent per node ----
    let freq = args.reporting_freq;
    let mut agents = Vec::new();
    for n in 1..=MEMBERS {
        agents.push((
            services::pg_name(n),
            "db",
            token(Role::Db)?,
            db_probes(&cl, n),
        ));
        agents.push((
            services::rabbit_name(n).0,
            "broker",
            token(Role::Broker)?,
            broker_probes(&cl, n),
        ));
    }
    agents.push((
        super::hostname().unwrap_or_else(|| "manager".into()),
        "manager",
        token(Role::Manager)?,
        manager_probes(addr, &pki.ca, &store_path),
    ));
    for (name, node_type, token, probes) in agents {
        let config = super::configure_node(super::NodeSetup {
            base: &dir.join("agents").join(&name),
            node_name: Some(name.clone()),
            node_type,
            token: &token,
            ca: &pki.ca,
            collector: addr,
            reporting_freq: freq,
            probes: super::parse_probes(&probes)?,
        })?;
        let stop = super::stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            sr_agent::run(config, stop)
                .await
                .map_err(|e| format!("agent {name}: {e}"))
        }));
    }
    say(format!(
        "  agents: {MEMBERS} db, {MEMBERS} broker and 1 manager reporting every {freq} s"
    ));

    // ---- the healthy view ----
    let client = sr_tls::HttpsClient::new(
        sr_tls::client_config(&pki.ca, None)?,
        Duration::from_secs(2),
    );
    let view = loop {
        if let Some((name, log, how)) = procs.first_exited() {
            bail!(
                "{name} exited ({how}) before the cluster was healthy{}",
                cluster::tails(&[log])
            );
        }
        let view = super::fetch_view(&client, &url, &admin).await;
        if let Ok(v) = &view {
            if healthy(v) {
                break view?;
            }
        }
        if Instant::now() >= deadline {
            if let Ok(v) = &view {
                super::super::manager::print_view(v);
            }
            bail!(
                "the cluster was not healthy within {} s (the view above says why)",
                ha.start_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The overall status also judges this host (disk, memory): said as it is, with the
    // reasons in the view below when it is not OK.
    say(format!(
        "Healthy: db OK ({MEMBERS} members, leader {}), broker OK ({MEMBERS} nodes) after {:.1} s; overall {}{}",
        leader_of(&view).unwrap_or_else(|| "-".into()),
        t0.elapsed().as_secs_f64(),
        view.status,
        if view.status == NodeStatus::Ok { "" } else { " (reasons below)" }
    ));
    write_state(dir, &url, &all_ports, procs);
    super::super::manager::print_view(&view);
    say("");
    let header = header_lines(&url, &pki.ca, &token_file, dir);
    for l in &header {
        say(l);
    }
    for l in try_lines(&cl, &view, ha.restart_after) {
        say(l);
    }
    if args.once {
        return Ok(0);
    }
    say("");
    say("Live view (Ctrl-C tears everything down):");
    live(
        &cl,
        &client,
        &url,
        &admin,
        freq,
        ha.restart_after,
        header,
        &all_ports,
    )
    .await
}

fn db_probes(cl: &Cluster, n: usize) -> Vec<String> {
    let p = &cl.ports;
    vec![
        format!(
            "kind = \"patroni\"\nurl = \"http://127.0.0.1:{}\"\nmember = \"{}\"\ncluster_every = 2",
            p.patroni[n - 1],
            services::pg_name(n)
        ),
        format!(
            "kind = \"etcd\"\nurl = \"http://127.0.0.1:{}\"",
            p.etcd_client
        ),
        format!(
            "kind = \"postgres\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"",
            p.pg[n - 1],
            services::MONITOR_USER,
            cl.secrets.monitor
        ),
    ]
}

fn broker_probes(cl: &Cluster, n: usize) -> Vec<String> {
    let p = &cl.ports;
    vec![format!(
        "kind = \"rabbitmq\"\nmanagement_url = \"http://127.0.0.1:{}\"\nusername = \"{}\"\n\
         password = \"{}\"\nnode_name = \"{}\"\namqp_port = {}\namqp_every = 2",
        p.mgmt[n - 1],
        services::MONITOR_USER,
        cl.secrets.monitor,
        services::rabbit_name(n).1,
        p.amqp[n - 1]
    )]
}

fn manager_probes(collector: std::net::SocketAddr, ca: &Path, store: &Path) -> Vec<String> {
    vec![
        // Seven nodes' services share this one host, so its load is the demo's own; memory
        // and disk are still judged with the defaults.
        "kind = \"host\"\nrequire_clock_sync = false\nload_per_cpu_degraded = 8.0\nload_per_cpu_fail = 16.0"
            .to_string(),
        format!(
            "kind = \"collector_self\"\nurl = \"https://{collector}/api/v3.1/ok\"\nstore_path = {:?}\ntls = {{ ca_file = {:?} }}",
            store.display().to_string(),
            ca.display().to_string()
        ),
    ]
}

/// db and broker OK with every member reporting, and the manager reporting.
fn healthy(v: &ClusterStatus) -> bool {
    let full = |name: &str, n: usize| {
        v.services.get(name).is_some_and(|s| {
            s.status == NodeStatus::Ok
                && s.nodes.len() == n
                && s.nodes.values().all(|n| n.last_seen.is_some())
        })
    };
    full("db", MEMBERS)
        && full("broker", MEMBERS)
        && v.services
            .get("manager")
            .is_some_and(|s| s.nodes.values().any(|n| n.last_seen.is_some()))
}

/// The db node the view shows as the Patroni leader.
fn leader_of(v: &ClusterStatus) -> Option<String> {
    v.services
        .get("db")?
        .nodes
        .iter()
        .find(|(_, n)| n.role.as_deref() == Some("leader"))
        .map(|(name, _)| name.clone())
}

fn header_lines(url: &str, ca: &Path, token_file: &Path, dir: &Path) -> Vec<String> {
    vec![
        format!("Status page: {url}/"),
        format!(
            "Metrics: curl -s --cacert {} -u admin:\"$(cat {})\" {url}/metrics",
            ca.display(),
            token_file.display()
        ),
        format!(
            "Cluster status: status-reporter cluster status --manager {url} --ca-path {} --token-file {}",
            ca.display(),
            token_file.display()
        ),
        format!("Processes and ports: {}", dir.join(STATE_FILE).display()),
    ]
}

/// The two commands to try, with the pids of now (the leader moves; a restart changes pids).
fn try_lines(cl: &Cluster, v: &ClusterStatus, restart_after: u64) -> Vec<String> {
    let mut out = vec!["Try:".to_string()];
    let leader = leader_of(v).and_then(|name| {
        let n: usize = name.strip_prefix("pg")?.parse().ok()?;
        Some((name, cl.procs.pid(&Cluster::patroni_proc(n))?))
    });
    match leader {
        Some((name, pid)) => {
            out.push(format!(
                "  Stop the Patroni leader ({name}); a replica takes over:"
            ));
            out.push(format!("    kill -TERM {pid}"));
        }
        None => out.push("  (no Patroni leader right now)".into()),
    }
    // the last node whose beam runs: rabbit3 unless it is the one stopped
    match (1..=MEMBERS).rev().find_map(|n| Some((n, cl.beam_pid(n)?))) {
        Some((n, pid)) => {
            out.push(format!(
                "  Stop a RabbitMQ node ({}); the other two carry on:",
                services::rabbit_name(n).0
            ));
            out.push(format!("    kill -TERM {pid}"));
        }
        None => out.push("  (no RabbitMQ node running right now)".into()),
    }
    if restart_after > 0 {
        out.push(format!(
            "  What you stop is started again after {restart_after} s, as systemd would: watch it recover."
        ));
    }
    out
}

/// The statuses the live view compares, by `service` and `service/node`.
fn statuses(v: &ClusterStatus) -> BTreeMap<String, (NodeStatus, String)> {
    let mut m = BTreeMap::new();
    let reasons = |rs: &[sr_protocol::model::Reason]| {
        rs.iter()
            .take(2)
            .map(|r| format!("[{}] {}", r.code, r.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (name, s) in &v.services {
        m.insert(name.clone(), (s.status, reasons(&s.reasons)));
        for (node, n) in &s.nodes {
            m.insert(format!("{name}/{node}"), (n.status, reasons(&n.reasons)));
        }
    }
    m
}

/// Until a signal: the view refreshed every `every` seconds, the supervisor every 250 ms.
/// On a terminal the screen is redrawn with the latest changes under it; otherwise (a pipe,
/// a log) each change is one line.
#[allow(clippy::too_many_arguments)]
async fn live(
    cl: &Cluster,
    client: &sr_tls::HttpsClient,
    url: &str,
    token: &str,
    every: u32,
    restart_after: u64,
    header: Vec<String>,
    ports: &[u16],
) -> anyhow::Result<i32> {
    let tty = std::io::stdout().is_terminal();
    let t0 = Instant::now();
    let delay = if restart_after == 0 {
        Duration::MAX
    } else {
        Duration::from_secs(restart_after)
    };
    let mut prev: Option<BTreeMap<String, (NodeStatus, String)>> = None;
    let mut recent: VecDeque<String> = VecDeque::new();
    let note = |line: String, recent: &mut VecDeque<String>| {
        let line = format!("[+{:6.1} s] {line}", t0.elapsed().as_secs_f64());
        if !tty {
            say(&line);
        }
        recent.push_back(line);
        // bounded: the screen shows the latest few
        while recent.len() > 10 {
            recent.pop_front();
        }
    };
    let mut view_tick = tokio::time::interval(Duration::from_secs(every.into()));
    let mut sup_tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = sup_tick.tick() => {
                let events = cl.procs.supervise_once(delay);
                for e in &events {
                    let line = match e {
                        Event::Exited { name, how } if restart_after > 0 => {
                            format!("{name} stopped ({how}); starting it again in {restart_after} s")
                        }
                        Event::Exited { name, how } => format!("{name} stopped ({how})"),
                        Event::Restarted { name, pid } => format!("{name} started again (pid {pid})"),
                        Event::RestartFailed { name, error } => format!("{name} could not be started again: {error}"),
                    };
                    note(line, &mut recent);
                }
                if !events.is_empty() {
                    write_state(&cl.dir, url, ports, &cl.procs);
                }
            }
            _ = view_tick.tick() => {
                let view = super::fetch_view(client, url, token).await;
                if let Ok(v) = &view {
                    let now = statuses(v);
                    if let Some(before) = &prev {
                        for (key, (st, why)) in &now {
                            let old = before.get(key).map(|(s, _)| *s);
                            if old != Some(*st) {
                                let from = old.map_or("-", |s| s.as_str());
                                let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                                note(format!("{key}: {from} -> {}{why}", st.as_str()), &mut recent);
                            }
                        }
                    }
                    prev = Some(now);
                }
                if tty {
                    // clear the screen and home the cursor, like `watch`
                    let _ = write!(std::io::stdout(), "\x1b[2J\x1b[H");
                    say(format!("{url}  (Ctrl-C tears everything down)"));
                    for l in &header {
                        say(l);
                    }
                    say("");
                    match &view {
                        Ok(v) => {
                            super::super::manager::print_view(v);
                            say("");
                            for l in try_lines(cl, v, restart_after) {
                                say(l);
                            }
                        }
                        Err(e) => say(format!("cannot read cluster status: {e:#}")),
                    }
                    say("");
                    say("Recent changes:");
                    for l in &recent {
                        say(format!("  {l}"));
                    }
                } else if let Err(e) = &view {
                    note(format!("cannot read cluster status: {e:#}"), &mut recent);
                }
            }
        }
    }
}
