//! Manager-side commands: `collector init|run|validate`, `tokens`, `nodes`, `cluster status`.
//!
//! A thin shell over sr-collector: the store and the server live in the library; this
//! file parses flags, prints, and maps outcomes to fixed exit codes.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use sr_collector::store::{Approval, ForgetOutcome, NodeRow, PendingRow, Role, Store, TokenInfo};
use sr_collector::{setup, Config};
use sr_protocol::view::ClusterStatus;
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_CONFIG: &str = "/etc/status-reporter/collector.toml";

#[derive(Subcommand)]
pub enum ManagerCommand {
    /// Set up, run or check the collector (the manager-side service).
    #[command(
        subcommand,
        long_about = "Set up, run or check the collector: the manager-side service that verifies, stores and \
rolls up node reports on port 53333.\n\nA first setup:\n  status-reporter collector init --cert cert.pem --key key.pem\n  \
status-reporter collector validate\n  status-reporter collector run"
    )]
    Collector(CollectorCommand),
    /// Create, list and revoke API tokens (reporter roles manager/db/broker, and admin).
    #[command(
        subcommand,
        long_about = "Create, list and revoke API tokens. Reporter tokens (manager, db, broker) may report only \
their own node type; admin tokens read the cluster status. Secrets are printed once and stored as \
SHA-256 hashes.\n\nExamples:\n  status-reporter tokens create db\n  status-reporter tokens list\n  status-reporter tokens revoke 3"
    )]
    Tokens(TokensCommand),
    /// List, forget, approve or reject nodes (pinned keys, pending new nodes).
    #[command(
        subcommand,
        long_about = "List the nodes the collector knows with their pinned Ed25519 keys, forget one so its \
next report pins a new key (after a reinstall), forget many (stale, unvouched, pending), and, with \
admission = \"approve\", approve or reject new nodes.\n\nExamples:\n  status-reporter nodes list\n  \
status-reporter nodes forget db2\n  status-reporter nodes forget --stale-for 7d --yes\n  \
status-reporter nodes pending\n  status-reporter nodes approve 3d5d0c1e --fingerprint SHA256:3q2x..."
    )]
    Nodes(NodesCommand),
    /// Read a collector's view of the cluster.
    #[command(
        subcommand,
        long_about = "Read a collector's view of the cluster (exit 0 OK, 1 Degraded, 2 Fail, 3 unreachable).\n\n\
Example:\n  status-reporter cluster status --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token"
    )]
    Cluster(ClusterCommand),
    /// Put a node or service type in maintenance, end it, or list it (shown in the view, never Fail by itself).
    #[command(
        subcommand,
        long_about = super::operator::maintenance_long_about()
    )]
    Maintenance(super::operator::MaintenanceCommand),
}

#[derive(Args)]
pub struct ConfigArg {
    /// Collector configuration file.
    #[arg(long, env = "STATUS_REPORTER_COLLECTOR_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Use this state directory instead of the one in the configuration file.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<Store> {
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => Config::load(&self.config.config)?.state_dir,
        };
        Store::open(&dir).with_context(|| format!("opening the store in {}", dir.display()))
    }
}

#[derive(Subcommand)]
pub enum CollectorCommand {
    /// Write a configuration, create the store, and print one token per role ONCE.
    #[command(
        long_about = "Write a collector configuration, create its store, and issue tokens.\n\n\
Creates one reporter token per role (manager, db, broker) and one admin token, and a reader \
user `admin` whose password is the admin token (for HTTP Basic, as `cfy` uses). The tokens \
are printed once and stored only as SHA-256 hashes: save them now.\n\n\
Refuses to overwrite an existing configuration unless --force is given; --force writes the \
configuration again and issues a new set of tokens (the old ones stay valid until revoked).\n\n\
Example:\n  status-reporter collector init --state-dir /var/lib/status-reporter \\\n      \
--cert /etc/cloudify/ssl/cloudify_internal_cert.pem --key /etc/cloudify/ssl/cloudify_internal_key.pem"
    )]
    Init(InitArgs),
    /// Run the collector until SIGTERM or SIGINT.
    #[command(
        long_about = "Run the collector in the foreground until SIGTERM or SIGINT.\n\n\
On a signal it stops accepting, lets in-flight requests finish (shutdown_grace_secs), writes \
the latest reports to the store and exits 0. Prints `listening on ADDR` once bound.\n\n\
Example:\n  status-reporter collector run --config /etc/status-reporter/collector.toml"
    )]
    Run(ConfigArg),
    /// Check a configuration file and print every problem; exit 0 when valid.
    #[command(
        long_about = "Parse and validate a configuration, reporting every problem at once, and check \
that the certificate and key load. Meant for `ExecStartPre=` in the systemd unit.\n\n\
Example:\n  status-reporter collector validate --config /etc/status-reporter/collector.toml"
    )]
    Validate(ConfigArg),
    /// Copy this collector's SQLite store into the PostgreSQL store its `[store]` names.
    #[command(
        name = "migrate-store",
        long_about = "Copy the local SQLite store (tokens, reader users, nodes and pins, key \
tombstones and approvals, transitions, maintenance windows) into the shared PostgreSQL store \
configured by `[store] kind = \"postgres\"`, and print the counts. Idempotent: rows are keyed \
(tokens by hash, nodes by type and id, transitions by node, boot id and seq), so running it \
again, or on every manager, copies nothing twice. --dry-run prints what would be copied and \
connects to nothing.\n\nExample:\n  status-reporter collector migrate-store --to postgres \
--config /etc/status-reporter/collector.toml --dry-run"
    )]
    MigrateStore(MigrateStoreArgs),
}

#[derive(Args)]
pub struct MigrateStoreArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The store to copy into (only `postgres`: the `[store]` of the configuration).
    #[arg(long, default_value = "postgres", value_parser = ["postgres"])]
    pub to: String,
    /// Count what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Directory for the SQLite store.
    #[arg(long, default_value = "/var/lib/status-reporter")]
    pub state_dir: PathBuf,
    /// Server certificate chain (PEM), signed by the cluster CA.
    #[arg(long, required_unless_present = "plain_http")]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, required_unless_present = "plain_http")]
    pub key: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:53333")]
    pub listen: std::net::SocketAddr,
    /// Accept unsigned reports from the Python 5.0.5 reporter.
    #[arg(long)]
    pub allow_unsigned_legacy: bool,
    /// Serve plain HTTP (loopback tests only; never in production).
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    pub plain_http: bool,
    /// Overwrite an existing configuration and issue new tokens.
    #[arg(long)]
    pub force: bool,
    /// Print the tokens as JSON ({"manager": ..., "db": ..., "broker": ..., "admin": ...}).
    #[arg(long)]
    pub json: bool,
    /// The CA that signed --cert. With it (or --plain-http), `client.toml` is written beside
    /// the config (0640, root and the service group) with this collector's address, the CA
    /// and the admin token, so `cluster status` on this host needs no flags.
    #[arg(long, value_name = "CA")]
    pub ca_path: Option<PathBuf>,
    /// The address `client.toml` names (host:port or URL; default: the --listen address,
    /// on loopback when it is 0.0.0.0 or [::]). The certificate must name it.
    #[arg(long, value_name = "ADDR")]
    pub client_manager: Option<String>,
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token for ROLE and print it once.
    #[command(
        long_about = "Create a token and print its secret once; only its SHA-256 is stored.\n\n\
Roles: manager, db, broker (reporters: each may report only its own node type and read \
/managers) and admin (reads cluster status); node (a host that feeds only stack services) and \
cluster (a tier-1 collector pushing its summary to this tier-2 collector).\n\nExample:\n  status-reporter tokens create db"
    )]
    Create {
        role: Role,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens: id, role, created, revoked. Secrets are never shown.
    #[command(
        long_about = "List tokens like Cloudify's `get-tokens`, without secrets (only hashes are stored).\n\n\
Example:\n  status-reporter tokens list --json"
    )]
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke token ID (see `tokens list`). A running collector stops accepting it within a second.
    #[command(
        long_about = "Revoke a token by id. A running collector notices within one flush interval (0.5 s).\n\n\
Example:\n  status-reporter tokens revoke 3"
    )]
    Revoke {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum NodesCommand {
    /// List known nodes with their pinned keys and key-mismatch flags.
    #[command(
        long_about = "List the nodes the collector has pinned, with key-mismatch flags.\n\n\
Example:\n  status-reporter nodes list"
    )]
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Forget NODE (id or name), or many (--stale-for, --unvouched, --pending).
    #[command(
        long_about = "Forget a node by id or name: its pinned key, key-mismatch flag, latest report and \
replay state. Its old key is remembered as forgotten and cannot pin again unless named with \
--accept-key. With --accept-key FINGERPRINT (printed by `configure` on the node), only that key \
may pin next; without it, the next signed report pins its key afresh (trust on first use), \
which anyone holding the role token could win. Do this after checking why the node's key \
changed (reinstall, restored disk). A name shared by several nodes is refused: give the node id.\n\n\
In bulk: --stale-for DURATION (no report for that long), --unvouched (no member of the service vouches \
for them) or --pending (held for approval) forget every node that matches, printing each; more than one \
needs --yes.\n\n\
Examples:\n  status-reporter nodes forget db2 --type db --accept-key SHA256:3q2x...\n  \
status-reporter nodes forget --stale-for 7d --yes"
    )]
    #[command(group(clap::ArgGroup::new("which").required(true).args(["node", "stale_for", "unvouched", "pending"])))]
    Forget {
        node: Option<String>,
        /// Only nodes of this type.
        #[arg(long = "type")]
        node_type: Option<NodeType>,
        /// Accept only this key next: its fingerprint (`SHA256:...`, printed by the node's
        /// `configure`) or its key id. Without it, any key not forgotten before may pin.
        #[arg(long, value_name = "FINGERPRINT", requires = "node")]
        accept_key: Option<String>,
        /// Every node with no report for this long (`90s`, `30m`, `12h`, `7d`), and every
        /// node that never reported for this long since first contact.
        #[arg(long, value_name = "DURATION", value_parser = sr_collector::config::parse_duration)]
        stale_for: Option<Duration>,
        /// Every node no member of its service vouches for, as the view shows it now.
        #[arg(long)]
        unvouched: bool,
        /// Every node id held for approval (their keys are refused from now on).
        #[arg(long)]
        pending: bool,
        /// Needed to forget more than one node; without it the list is printed and nothing
        /// is removed.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List new nodes held for approval (`admission = "approve"`).
    #[command(
        long_about = "List the node ids held for an operator's approval (admission = \"approve\" in the collector \
config): id, name, type, key fingerprint (compare it with what `configure` printed on the node), first and \
last report, source address. They are not in the view and do not count until approved.\n\n\
Example:\n  status-reporter nodes pending"
    )]
    Pending {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Admit a pending node: pins the key it reported; its next report enters the view.
    #[command(
        long_about = "Admit a node held for approval. Its reported key is pinned and its next report is \
accepted into the view. Give --fingerprint (printed by `configure` on the node) to make sure the key is \
the node's own: it is required when two keys reported for the same node id.\n\n\
Example:\n  status-reporter nodes approve 3d5d0c1e --fingerprint SHA256:3q2x..."
    )]
    Approve {
        node_id: String,
        #[arg(long = "type")]
        node_type: Option<NodeType>,
        #[arg(long, value_name = "FINGERPRINT")]
        fingerprint: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Refuse a pending node: drops it and refuses its key(s) from now on.
    #[command(
        long_about = "Drop a node held for approval and tombstone every key it reported, so \
they cannot be held or pinned again unless named with `nodes forget --accept-key`.\n\n\
Example:\n  status-reporter nodes reject evil-1"
    )]
    Reject {
        node_id: String,
        #[arg(long = "type")]
        node_type: Option<NodeType>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Print the cluster status. Exit 0 OK, 1 Degraded, 2 Fail, 3 unreachable/unauthorized.
    #[command(long_about = cluster_status_long_about())]
    Status(super::tier2::ClusterStatusArgs),
    /// Print stored status transitions (GET /api/v3.1/history), newest first.
    #[command(
        long_about = "Read the transitions the collector stored (GET /api/v3.1/history), newest first: \
when each node or service changed status, from what to what, and why.\n\n\
Kept for transitions_max_age_days (default 90) and at most transitions_per_node (default 1000) per node.\n\n\
Exit codes: 0 shown, 2 invalid flags, 3 unreachable or unauthorized.\n\nExamples:\n  \
status-reporter cluster history --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token --since 2h\n  \
status-reporter cluster history --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token --node db1 --json"
    )]
    History(super::operator::HistoryArgs),
    /// Follow status transitions as they happen (GET /api/v3.1/events), reconnecting with the last event id.
    #[command(
        long_about = "Print each status transition as the collector stores it, from its event stream \
(GET /api/v3.1/events, Server-Sent Events). When the connection drops (a collector restart, \
a network blip) it reconnects with the last event id it printed, so no event is missed or \
printed twice while the collector's retention still holds it.\n\n\
Exit codes: 0 after --count events, 2 invalid flags, 3 unauthorized. Runs until interrupted otherwise.\n\nExamples:\n  \
status-reporter cluster watch --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token\n  \
status-reporter cluster watch --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token --after 1200 --json"
    )]
    Watch(super::operator::WatchArgs),
}

/// `cluster status --help`, naming the services a view can show from the one list of them.
fn cluster_status_long_about() -> String {
    use sr_protocol::facts::StackService;
    format!(
        "Read GET /api/v3.1/cluster-status from a collector and print the overall status, \
a table per service and one row per node (status, role, last seen, skew, reasons). The services \
are the Cloudify types (manager, db, broker) and the stack services that have members or are \
required in the collector's config ({}).\n\n\
Exit codes (usable as a Nagios check): 0 OK, 1 Degraded, 2 Fail, 3 unreachable or unauthorized.\n\n\
The token comes from --token, else $STATUS_REPORTER_TOKEN, else --token-file; it must be an \
admin token. On a manager set up with `collector init --ca-path`, no flag is needed: what no flag \
or variable names is read from /etc/status-reporter/client.toml (see below).\n\nExamples:\n  \
status-reporter cluster status\n  status-reporter cluster status --manager 10.0.0.11 --ca-path /etc/cloudify/ssl/cloudify_internal_ca_cert.pem --token-file /root/admin.token\n  \
STATUS_REPORTER_TOKEN=srt_... status-reporter cluster status --manager https://10.0.0.11:53333 --ca-path ca.pem --json\n\n\
At a tier-2 collector ([fleet]): --clusters lists every cluster (2 for Fail or Unreachable), --cluster NAME \
shows one cluster's summary, --heal-history the heal decisions.",
        StackService::ALL.map(StackService::as_str).join(", ")
    )
}

/// The connection flags of every command that talks to a collector (`cluster status`,
/// `history`, `watch`, `maintenance`). Each may be left out on a manager: what is missing
/// comes from the client file ([`super::conn`]).
#[derive(Args)]
#[command(after_help = super::conn::WHERE_IT_LOOKS)]
pub struct StatusArgs {
    /// Collector address: `host`, `host:port` or an https:// URL (default port 53333).
    /// Default: `manager` in the client file.
    #[arg(long, env = "STATUS_REPORTER_MANAGER")]
    pub manager: Option<String>,
    /// CA certificate (PEM) the collector's certificate is verified against; nothing else is
    /// trusted. Default: `ca_path` in the client file.
    #[arg(long, env = "STATUS_REPORTER_CA_PATH")]
    pub ca_path: Option<PathBuf>,
    /// Admin token (prefer the env var or --token-file: flags show up in `ps`).
    #[arg(long, env = "STATUS_REPORTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the admin token. Default: `token` in the client file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the raw API JSON.
    #[arg(long)]
    pub json: bool,
    /// Deadline for the whole request, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

pub fn run(cmd: ManagerCommand) -> anyhow::Result<i32> {
    match cmd {
        ManagerCommand::Collector(CollectorCommand::Init(args)) => init(args),
        ManagerCommand::Collector(CollectorCommand::Run(args)) => run_collector(&args.config),
        ManagerCommand::Collector(CollectorCommand::Validate(args)) => validate(&args.config),
        ManagerCommand::Collector(CollectorCommand::MigrateStore(args)) => migrate_store(args),
        ManagerCommand::Tokens(cmd) => tokens(cmd),
        ManagerCommand::Nodes(cmd) => nodes(cmd),
        ManagerCommand::Cluster(ClusterCommand::Status(args)) => super::tier2::status(args),
        ManagerCommand::Maintenance(cmd) => super::operator::maintenance(cmd),
        ManagerCommand::Cluster(ClusterCommand::History(args)) => super::operator::history(args),
        ManagerCommand::Cluster(ClusterCommand::Watch(args)) => super::operator::watch(args),
    }
}

fn init(args: InitArgs) -> anyhow::Result<i32> {
    let path = &args.config.config;
    if path.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it and issue new tokens",
            path.display()
        );
    }
    let mut cfg = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => {
            sr_tls::server_config(c, k).context("checking the certificate and key")?;
            Config::new(&args.state_dir, c, k)
        }
        _ => {
            let mut c = Config::new(&args.state_dir, "", "");
            c.tls = None;
            c.plain_http = true;
            c
        }
    };
    cfg.listen = args.listen;
    cfg.allow_unsigned_legacy = args.allow_unsigned_legacy;
    if let Some(ca) = &args.ca_path {
        sr_tls::roots_from(ca).with_context(|| format!("checking --ca-path {}", ca.display()))?;
    }
    if args.client_manager.is_some() && args.ca_path.is_none() && !args.plain_http {
        bail!("--client-manager names the address client.toml is written with: give --ca-path too");
    }
    if let Some(m) = &args.client_manager {
        // The file is checked as `cluster status` will read it, before anything is written.
        let probe = sr_collector::client_file::ClientFile {
            manager: m.clone(),
            ca_path: args.ca_path.clone(),
            token: "x".into(),
        };
        if let Err(errs) = sr_collector::client_file::ClientFile::from_toml(&probe.to_toml()) {
            bail!("--client-manager / --ca-path: {}", errs.join("; "));
        }
    }
    // Port 0 is chosen when the collector runs: no address to write down yet.
    let port_known = args.listen.port() != 0 || args.client_manager.is_some();
    let client =
        (port_known && (args.ca_path.is_some() || args.plain_http)).then(|| setup::ClientTarget {
            ca_path: args.ca_path.clone(),
            manager: args.client_manager.clone(),
        });
    let plan = setup::plan(
        cfg,
        setup::Target::Service {
            config_path: path.clone(),
            client,
        },
    );
    let issued = setup::apply(&plan)?;
    let issued: serde_json::Map<String, serde_json::Value> = issued
        .tokens
        .into_iter()
        .map(|(role, token)| (role.as_str().to_string(), token.into()))
        .collect();
    if args.json {
        println!("{}", serde_json::Value::Object(issued));
    } else {
        println!(
            "Wrote {} and created the store in {}.",
            path.display(),
            plan.cfg.state_dir.display()
        );
        println!("Tokens (shown ONCE; only hashes are stored):");
        for (role, token) in &issued {
            println!("  {role:<8} {}", token.as_str().unwrap_or_default());
        }
        println!("Reader user `admin` has the admin token as its password (HTTP Basic).");
        match &plan.client {
            Some(c) => println!(
                "Wrote {} (manager {}): `status-reporter cluster status` on this host needs no flags.",
                c.path.display(),
                c.manager
            ),
            None if !port_known => println!(
                "No client file written: --listen port 0 is chosen at run time (give --client-manager)."
            ),
            None => println!(
                "No client file written (give --ca-path to have `cluster status` here need no flags)."
            ),
        }
    }
    Ok(0)
}

fn validate(path: &Path) -> anyhow::Result<i32> {
    let cfg = Config::load(path)?;
    if let Some(t) = &cfg.tls {
        sr_tls::server_config(&t.cert_path, &t.key_path)
            .context("loading the certificate and key")?;
    }
    drop(Store::preflight(&cfg.state_dir)?);
    let needed = cfg.max_connections + sr_collector::server::FD_HEADROOM;
    if let Some(limit) = fd_limit().filter(|l| *l < needed as u64) {
        // Not an error: the collector still runs, refusing connections past what fits.
        eprintln!(
            "warning: the file-descriptor limit ({limit}) is below max_connections + {} = {needed}: \
             connections past {} will be refused; raise LimitNOFILE",
            sr_collector::server::FD_HEADROOM,
            limit.saturating_sub(sr_collector::server::FD_HEADROOM as u64)
        );
    }
    println!("{}: valid", path.display());
    Ok(0)
}

/// `collector migrate-store`: the local store's counts, then (unless a dry run) the copy
/// and the shared store's counts after it.
fn migrate_store(args: MigrateStoreArgs) -> anyhow::Result<i32> {
    use sr_collector::shared::{copy, StoreKind};
    let cfg = Config::load(&args.config.config)?;
    let StoreKind::Postgres(pg) = &cfg.store else {
        bail!(
            "{} has no [store] kind = \"postgres\": nothing to migrate to",
            args.config.config.display()
        );
    };
    if args.dry_run {
        let store = Store::preflight(&cfg.state_dir)?;
        println!("would copy: {}", copy::local_counts(&store)?);
        println!("dry run: nothing written");
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (local, shared) = rt.block_on(copy::copy(pg, &cfg.state_dir))?;
    println!("copied: {local}");
    println!("shared store now holds: {shared}");
    Ok(0)
}

fn run_collector(path: &Path) -> anyhow::Result<i32> {
    let cfg = Config::load(path)?;
    // A configured collector's store was made by `collector init`: refuse a damaged,
    // empty or missing one before binding, with the recovery path in the error.
    drop(Store::preflight(&cfg.state_dir)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        println!("listening on {}", listener.local_addr()?);
        let deadline = cfg.shutdown_grace + Duration::from_secs(10);
        let signalled = std::sync::Arc::new(tokio::sync::Notify::new());
        let notify = signalled.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: shutting down");
            notify.notify_waiters();
            notify.notify_one();
        });
        let gate = signalled.clone();
        let serve = sr_collector::server::serve_with(
            cfg,
            listener,
            async move { gate.notified().await },
            sr_collector::server::Lifecycle::systemd(),
        );
        tokio::pin!(serve);
        tokio::select! {
            r = &mut serve => r.map(|_| 0).map_err(anyhow::Error::from),
            _ = async { signalled.notified().await; tokio::time::sleep(deadline).await } => {
                bail!("shutdown did not finish within {deadline:?}")
            }
        }
    })
}

/// The hard `RLIMIT_NOFILE` (the collector raises its soft limit to it), read from
/// /proc so the binary needs no FFI for it.
fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn fmt_ms(ms: i64) -> String {
    sr_collector::rollup::rfc3339_ms(ms).unwrap_or_else(|| ms.to_string())
}

fn tokens(cmd: TokensCommand) -> anyhow::Result<i32> {
    match cmd {
        TokensCommand::Create { role, store } => {
            let (id, secret) = store.open()?.create_token_with_id(role)?;
            println!("{secret}");
            eprintln!("token {id} ({role}) created; the secret above is shown once");
        }
        TokensCommand::List { json, store } => {
            let list: Vec<TokenInfo> = store.open()?.list_tokens()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<6} {:<8} {:<26} REVOKED", "ID", "ROLE", "CREATED");
                for t in list {
                    let revoked = t.revoked_ms.map(fmt_ms).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<6} {:<8} {:<26} {revoked}",
                        t.id,
                        t.role,
                        fmt_ms(t.created_ms)
                    );
                }
            }
        }
        TokensCommand::Revoke { id, store } => {
            if !store.open()?.revoke_token(id)? {
                bail!("no active token with id {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(0)
}

fn nodes(cmd: NodesCommand) -> anyhow::Result<i32> {
    match cmd {
        NodesCommand::List { json, store } => {
            let list = store.open()?.list_nodes()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<8} {:<24} {:<38} {:<16} {:<9} KEY",
                    "TYPE", "NAME", "NODE ID", "PRIVATE IP", "MISMATCH"
                );
                for n in list {
                    println!(
                        "{:<8} {:<24} {:<38} {:<16} {:<9} {}",
                        n.node_type,
                        clean(&n.name),
                        n.node_id,
                        n.private_ip.unwrap_or_else(|| "-".into()),
                        if n.key_mismatch { "YES" } else { "no" },
                        n.pinned_key.unwrap_or_else(|| "(unsigned)".into())
                    );
                }
            }
        }
        NodesCommand::Forget {
            node: None,
            node_type,
            stale_for,
            unvouched,
            pending,
            yes,
            store,
            ..
        } => return forget_many(&store, node_type, stale_for, unvouched, pending, yes),
        NodesCommand::Pending { json, store } => {
            let rows = store.open()?.list_pending()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_pending(&rows);
            }
        }
        NodesCommand::Approve {
            node_id,
            node_type,
            fingerprint,
            store,
        } => {
            let fp = fingerprint_arg("--fingerprint", fingerprint.as_deref())?;
            let now = sr_collector::clock::now_ms();
            match store.open()?.approve_pending(&node_id, node_type, fp.as_deref(), now)? {
                Approval::Approved(r) => println!(
                    "approved {} node {} ({}); pinned key {}; its next report enters the view",
                    r.node_type,
                    clean(&r.node_id),
                    clean(&r.name),
                    r.fingerprint.as_deref().unwrap_or("(unsigned)")
                ),
                Approval::NoMatch => bail!("no pending node with id {:?} (see `status-reporter nodes pending`)", clean(&node_id)),
                Approval::Ambiguous(rows) => bail!(
                    "{} pending nodes have id {:?}; nothing was approved: give --type",
                    rows.len(),
                    clean(&node_id)
                ),
                Approval::FingerprintNeeded(r) => bail!(
                    "nothing was approved: {} reported with key {}{}; give --fingerprint with the one `configure` printed on the node",
                    clean(&r.node_id),
                    r.fingerprint.as_deref().unwrap_or("(unsigned)"),
                    r.other_fingerprint
                        .as_deref()
                        .map(|o| format!(" and also with key {o}"))
                        .unwrap_or_default()
                ),
            }
        }
        NodesCommand::Reject {
            node_id,
            node_type,
            store,
        } => {
            let now = sr_collector::clock::now_ms();
            let rows = store.open()?.reject_pending(&node_id, node_type, now)?;
            match rows.as_slice() {
                [] => bail!("no pending node with id {:?}", clean(&node_id)),
                [r] => println!(
                    "rejected {} node {} ({}); key {} refused from now on",
                    r.node_type,
                    clean(&r.node_id),
                    clean(&r.name),
                    r.fingerprint.as_deref().unwrap_or("(unsigned)")
                ),
                many => bail!(
                    "{} pending nodes have id {:?}; nothing was rejected: give --type",
                    many.len(),
                    clean(&node_id)
                ),
            }
        }
        NodesCommand::Forget {
            node: Some(node),
            node_type,
            accept_key,
            store,
            ..
        } => {
            let accept = fingerprint_arg("--accept-key", accept_key.as_deref())?;
            let outcome = store.open()?.forget_one(
                &node,
                node_type,
                accept.as_deref(),
                sr_collector::clock::now_ms(),
            )?;
            match outcome {
                ForgetOutcome::NoMatch => bail!("no node with id or name {:?}", clean(&node)),
                ForgetOutcome::Ambiguous(rows) => {
                    let ids: Vec<String> = rows
                        .iter()
                        .map(|r| format!("{} {}", r.node_type, clean(&r.node_id)))
                        .collect();
                    bail!(
                        "{:?} names {} nodes ({}); nothing was forgotten: give the node id (and --type)",
                        clean(&node),
                        rows.len(),
                        ids.join(", ")
                    )
                }
                ForgetOutcome::Forgotten(f) => {
                    let old = f.fingerprint.as_deref().unwrap_or("(unsigned)");
                    match &accept {
                        Some(fp) => println!(
                            "forgot {} node {}; old key {old} refused from now on; only key {fp} may pin next",
                            f.row.node_type,
                            clean(&f.row.node_id)
                        ),
                        None => println!(
                            "forgot {} node {}; old key {old} refused from now on; the next signed report pins its key (use --accept-key to name it)",
                            f.row.node_type,
                            clean(&f.row.node_id)
                        ),
                    }
                }
            }
        }
    }
    Ok(0)
}

/// A `--fingerprint`/`--accept-key` value in its canonical form, or why it is neither a
/// fingerprint nor a key id.
fn fingerprint_arg(flag: &str, given: Option<&str>) -> anyhow::Result<Option<String>> {
    given
        .map(|g| {
            sr_protocol::signing::parse_fingerprint(g).with_context(|| {
                format!(
                    "{flag} {:?} is neither a key fingerprint (SHA256:...) nor a key id",
                    clean(g)
                )
            })
        })
        .transpose()
}

fn print_pending(rows: &[PendingRow]) {
    println!(
        "{:<8} {:<24} {:<38} {:<52} {:<24} {:<24} SOURCE",
        "TYPE", "NAME", "NODE ID", "KEY FINGERPRINT", "FIRST SEEN", "LAST SEEN"
    );
    for r in rows {
        let mut fp = r.fingerprint.clone().unwrap_or_else(|| "(unsigned)".into());
        if let Some(other) = &r.other_fingerprint {
            fp.push_str(&format!(" (also {other})"));
        }
        println!(
            "{:<8} {:<24} {:<38} {:<52} {:<24} {:<24} {}",
            r.node_type,
            clean(&r.name),
            clean(&r.node_id),
            fp,
            fmt_ms(r.first_seen_ms),
            fmt_ms(r.last_seen_ms),
            r.source.as_deref().map(clean).unwrap_or_else(|| "-".into())
        );
    }
}

/// `nodes forget --stale-for | --unvouched | --pending`: prints what it removes (or would),
/// and removes more than one node only with `--yes`.
fn forget_many(
    store_args: &StoreArgs,
    node_type: Option<NodeType>,
    stale_for: Option<Duration>,
    unvouched: bool,
    pending: bool,
    yes: bool,
) -> anyhow::Result<i32> {
    let store = store_args.open()?;
    let now = sr_collector::clock::now_ms();
    let of_type = |t: &str| node_type.is_none_or(|nt| nt.as_str() == t);
    if pending {
        let rows: Vec<PendingRow> = store
            .list_pending()?
            .into_iter()
            .filter(|r| of_type(&r.node_type))
            .collect();
        for r in &rows {
            println!(
                "pending {} {} ({}) key {} from {}",
                r.node_type,
                clean(&r.node_id),
                clean(&r.name),
                r.fingerprint.as_deref().unwrap_or("(unsigned)"),
                r.source.as_deref().map(clean).unwrap_or_else(|| "-".into())
            );
        }
        if !confirmed(rows.len(), yes) {
            return Ok(1);
        }
        for r in &rows {
            store.reject_pending(&r.node_id, Some(r.node_type.parse()?), now)?;
        }
        println!(
            "rejected {} pending node(s); their keys are refused from now on",
            rows.len()
        );
        return Ok(0);
    }
    let all: Vec<NodeRow> = store
        .list_nodes()?
        .into_iter()
        .filter(|r| of_type(&r.node_type))
        .collect();
    let chosen: Vec<NodeRow> = if let Some(d) = stale_for {
        let cutoff = now.saturating_sub(d.as_millis() as i64);
        all.into_iter()
            .filter(|r| r.last_seen_ms.unwrap_or(r.first_seen_ms) < cutoff)
            .collect()
    } else {
        debug_assert!(unvouched);
        let cfg = Config::load(&store_args.config.config).ok();
        let policy = cfg.map(|c| c.rollup_policy()).unwrap_or_default();
        let records = sr_collector::state::Memory::records_of(store.load_nodes()?);
        let inputs: Vec<sr_collector::NodeInput> = records
            .iter()
            .map(|r| sr_collector::NodeInput::from_record(r, now, &policy))
            .collect();
        let flagged = sr_collector::rollup::membership::unvouched(&inputs);
        all.into_iter()
            .filter(|r| {
                flagged
                    .iter()
                    .any(|(t, id)| t.as_str() == r.node_type && *id == r.node_id)
            })
            .collect()
    };
    for r in &chosen {
        println!(
            "{} {} ({}) last report {}",
            r.node_type,
            clean(&r.node_id),
            clean(&r.name),
            r.last_seen_ms.map(fmt_ms).unwrap_or_else(|| "never".into())
        );
    }
    if !confirmed(chosen.len(), yes) {
        return Ok(1);
    }
    store.forget_rows(&chosen, now)?;
    println!(
        "forgot {} node(s); their keys are refused from now on",
        chosen.len()
    );
    Ok(0)
}

/// More than one node goes only with `--yes`.
fn confirmed(n: usize, yes: bool) -> bool {
    if n > 1 && !yes {
        eprintln!("{n} nodes match; nothing was removed: add --yes to remove them all");
        return false;
    }
    true
}

/// Makes control and invisible formatting characters visible (`<U+200B>`) so a hostile
/// node name cannot rewrite the terminal or pass for another node's name.
pub(crate) fn clean(s: &str) -> String {
    sr_protocol::model::mark_hidden(s)
        .chars()
        .take(128)
        .collect()
}

pub(crate) const EXIT_UNREACHABLE: i32 = 3;

pub(crate) fn manager_url(manager: &str) -> String {
    let base = if manager.contains("://") {
        manager.to_string()
    } else {
        format!("https://{manager}")
    };
    let base = base.trim_end_matches('/').to_string();
    // Add the default port when none is given (an IPv6 literal ends with `]`).
    let authority = base.split("://").nth(1).unwrap_or_default();
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.contains(':') || h.ends_with(']'))
    });
    if has_port || !base.starts_with("https://") {
        base
    } else {
        format!("{base}:{}", sr_protocol::DEFAULT_PORT)
    }
}

pub(crate) fn cluster_status(args: StatusArgs) -> anyhow::Result<i32> {
    let conn = match super::conn::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    let token = conn.token;
    let tls = conn.tls;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        bail!("--timeout must be between 0 and 600 seconds");
    }
    let deadline = Duration::from_secs_f64(args.timeout);
    let url = format!("{}/api/v3.1/cluster-status", conn.base_url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt.block_on(async {
        let client = sr_tls::HttpsClient::new(tls, deadline);
        client
            .get(
                &url,
                &[
                    (sr_protocol::TOKEN_HEADER, token.as_str()),
                    (sr_protocol::TENANT_HEADER, "default_tenant"),
                ],
                deadline,
                16 << 20,
            )
            .await
    });
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    if !resp.status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(clean))
            .unwrap_or_default();
        eprintln!("error: {url} answered {}: {msg}", resp.status);
        return Ok(EXIT_UNREACHABLE);
    }
    let view: ClusterStatus = match serde_json::from_slice(&resp.body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {url} answered something that is not a cluster status: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    if args.json {
        println!("{}", String::from_utf8_lossy(&resp.body));
    } else {
        print_view(&view);
    }
    Ok(view.status.exit_code())
}

pub(crate) fn print_view(view: &ClusterStatus) {
    println!("Cluster status: {}", view.status);
    for r in &view.reasons {
        println!(
            "  - [{}] {}{}",
            clean(&r.code),
            clean(&r.message),
            r.node
                .as_deref()
                .map(|n| format!(" ({})", clean(n)))
                .unwrap_or_default()
        );
    }
    println!();
    println!("{:<10} STATUS", "SERVICE");
    for (name, svc) in &view.services {
        println!("{:<10} {}", clean(name), svc.status);
    }
    for (name, svc) in &view.services {
        println!();
        println!("{} ({}):", clean(name), svc.status);
        if svc.nodes.is_empty() {
            println!("  (no nodes)");
            continue;
        }
        println!(
            "  {:<24} {:<9} {:<12} {:<26} {:>9}  REASONS",
            "NODE", "STATUS", "ROLE", "LAST SEEN", "SKEW"
        );
        for (node, v) in &svc.nodes {
            let mut flags = Vec::new();
            if v.flapping {
                flags.push("flapping");
            }
            if v.key_mismatch {
                flags.push("KEY MISMATCH");
            }
            if v.unvouched {
                flags.push("UNVOUCHED");
            }
            if !v.signed && v.last_seen.is_some() {
                flags.push("unsigned");
            }
            let reasons: Vec<String> = v
                .reasons
                .iter()
                .map(|r| format!("{}: {}", clean(&r.code), clean(&r.message)))
                .collect();
            let mut notes = flags.join(", ");
            if !reasons.is_empty() {
                if !notes.is_empty() {
                    notes.push_str("; ");
                }
                notes.push_str(&reasons.join("; "));
            }
            println!(
                "  {:<24} {:<9} {:<12} {:<26} {:>9}  {}",
                clean(node),
                v.status.as_str(),
                v.role.as_deref().map(clean).unwrap_or_else(|| "-".into()),
                v.last_seen
                    .as_deref()
                    .map(clean)
                    .unwrap_or_else(|| "never".into()),
                v.skew_ms
                    .map(|s| format!("{s}ms"))
                    .unwrap_or_else(|| "-".into()),
                notes
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::manager_url;

    #[test]
    fn manager_urls_get_https_and_the_default_port() {
        assert_eq!(manager_url("10.0.0.11"), "https://10.0.0.11:53333");
        assert_eq!(manager_url("10.0.0.11:8443"), "https://10.0.0.11:8443");
        assert_eq!(manager_url("https://m1/"), "https://m1:53333");
        assert_eq!(manager_url("https://[::1]"), "https://[::1]:53333");
        assert_eq!(manager_url("https://[::1]:1234"), "https://[::1]:1234");
        assert_eq!(manager_url("http://127.0.0.1:80"), "http://127.0.0.1:80");
    }
}
