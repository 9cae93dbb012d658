//! Node-side commands: `configure`, `run`, `probe`, `show-config`, `remove`, `validate`.
//!
//! Exit codes: `configure` 0 done, 1 no manager accepted the token (nothing written),
//! 2 invalid input, or a node type that cannot be taken from the token's role (nothing
//! written). `run` and `validate` 2 on an invalid config.
//! `probe` 0 OK, 1 Degraded, 2 Fail, 3 when the config cannot be used.

use anyhow::Context;
use clap::{Args, Subcommand};
use sr_agent::config::{self, AgentConfig, RawConfig};
use sr_agent::configure::{self, ManagerCheck};
use sr_protocol::NodeStatus;
use std::path::PathBuf;

// `Configure` is much larger than the other variants; the enum is parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Write this node's agent config and signing key, and check that the managers answer.
    Configure(ConfigureCmd),
    /// Run the agent daemon (systemd runs this).
    Run(ConfigArg),
    /// Run every probe once and print what it found; nothing is sent.
    Probe {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the agent config with the token and any password redacted.
    ShowConfig(ConfigArg),
    /// Check the agent config and the files it names (systemd's ExecStartPre runs this).
    Validate(ConfigArg),
    /// Remove the agent config and the node key.
    Remove(ConfigArg),
}

#[derive(Args)]
pub struct ConfigArg {
    /// Agent config file [default: /etc/status-reporter/agent.toml]
    #[arg(long, env = config::CONFIG_ENV)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        config::resolve_path(self.config.as_deref())
    }
}

#[derive(Args)]
pub struct ConfigureCmd {
    /// The reporter token for this node's type (from the manager installer or `tokens create`).
    /// Prefer --token-file: a flag is visible in `ps` while configure runs.
    #[arg(
        long,
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the reporter token, or `-` to read it from standard input.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM). Managers are trusted only if it signed them.
    #[arg(long)]
    pub ca_path: PathBuf,
    /// Manager IPs or hostnames, optionally with :port (default 53333).
    #[arg(long, num_args = 1.., required = true)]
    pub managers_ip: Vec<String>,
    /// db, broker or manager. When omitted: kept from an existing config, else taken from
    /// the token's role as the managers state it (required with --no-verify).
    #[arg(long)]
    pub node_type: Option<String>,
    /// Stable node id; generated once (a UUID) and kept when omitted.
    #[arg(long)]
    pub node_id: Option<String>,
    /// Display name in cluster status [default: the hostname].
    #[arg(long)]
    pub node_name: Option<String>,
    /// Seconds between reports [default: 5].
    #[arg(long)]
    pub reporting_freq: Option<u32>,
    /// Where to keep the node's Ed25519 key [default: node.key next to the config].
    #[arg(long)]
    pub key_path: Option<PathBuf>,
    /// Where the agent keeps its state [default: /var/lib/status-reporter].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Replace the node key (the collectors must then be told to accept the new key).
    #[arg(long)]
    pub rotate_key: bool,
    /// Do not contact the managers.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<i32> {
    match cmd {
        NodeCommand::Configure(c) => configure_cmd(c),
        NodeCommand::Run(c) => run_daemon(&c.path()),
        NodeCommand::Probe { config, json } => probe_cmd(&config.path(), json),
        NodeCommand::ShowConfig(c) => {
            let raw = RawConfig::read(&c.path())?;
            print!("{}", config::redacted_toml(&raw));
            Ok(0)
        }
        NodeCommand::Validate(c) => match AgentConfig::load(&c.path()) {
            Ok(cfg) => {
                println!(
                    "{}: valid ({} {}, {} manager(s), {} probe(s))",
                    cfg.path.display(),
                    cfg.node_type,
                    cfg.node_id,
                    cfg.managers.len(),
                    cfg.probes.len()
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(2)
            }
        },
        NodeCommand::Remove(c) => {
            for line in configure::remove(&c.path()).map_err(anyhow::Error::msg)? {
                println!("{line}");
            }
            println!("stop the service with: systemctl disable --now status-reporter");
            Ok(0)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread, as the agent daemon has (sr_agent::service): the work is small and
    // mostly waiting.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn configure_cmd(c: ConfigureCmd) -> anyhow::Result<i32> {
    let token = match (c.token, &c.token_file) {
        (Some(t), _) => t,
        (None, Some(f)) => match sr_fsutil::read_token_file(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "error: nothing was written; --token-file {}: {e}",
                    f.display()
                );
                return Ok(2);
            }
        },
        (None, None) => anyhow::bail!("give --token-file PATH (or --token)"),
    };
    let args = configure::ConfigureArgs {
        config_path: c.config.path(),
        token,
        ca_path: c.ca_path,
        managers: c.managers_ip,
        node_type: c.node_type,
        node_id: c.node_id,
        node_name: c.node_name,
        reporting_freq: c.reporting_freq,
        key_path: c.key_path,
        state_dir: c.state_dir,
        rotate_key: c.rotate_key,
        infer_node_type: !c.no_verify,
    };
    let mut plan = match configure::plan(&args, sr_agent::unix_now()) {
        Ok(p) => p,
        Err(problems) => {
            eprintln!("error: nothing was written; fix these first:");
            for p in problems {
                eprintln!("  - {p}");
            }
            return Ok(2);
        }
    };
    if c.no_verify {
        println!("not contacting the managers (--no-verify)");
    } else {
        let checks = runtime()?.block_on(configure::verify(&plan, &args.token, &args.ca_path));
        let mut accepted = 0;
        for (m, check) in &checks {
            match check {
                ManagerCheck::Accepted { role } => {
                    accepted += 1;
                    match role {
                        Some(r) => println!("manager {m}: answered, token accepted (role {r})"),
                        None => println!("manager {m}: answered, token accepted"),
                    }
                }
                ManagerCheck::Refused(why) => println!("manager {m}: answered, {why}"),
                ManagerCheck::Unreachable(why) => println!("manager {m}: no answer: {why}"),
            }
        }
        if accepted == 0 {
            if plan.node_type_pending() {
                eprintln!("error: no manager accepted the token, so its role is unknown; nothing was written (give --node-type, with --no-verify to configure anyway)");
            } else {
                eprintln!("error: no manager accepted the token; nothing was written (use --no-verify to configure anyway)");
            }
            return Ok(1);
        }
        match configure::settle_node_type(&mut plan, &checks) {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(problem) => {
                eprintln!("error: nothing was written; fix this first:");
                eprintln!("  - {problem}");
                return Ok(2);
            }
        }
    }
    for line in configure::apply(&plan).map_err(anyhow::Error::msg)? {
        println!("{line}");
    }
    println!("start or restart the agent with: systemctl restart status-reporter");
    Ok(0)
}

fn run_daemon(path: &std::path::Path) -> anyhow::Result<i32> {
    // The same code as the agent-only binary (src/agent.rs): signals, reload, exit code.
    Ok(sr_agent::service::run_until_signalled(path).into())
}

fn probe_cmd(path: &std::path::Path, json: bool) -> anyhow::Result<i32> {
    let cfg = match AgentConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(3);
        }
    };
    let (snap, results) = runtime()?.block_on(sr_agent::probe_once(&cfg));
    // A local check of everything this node runs: the worst probe, stack services included.
    let worst = results
        .iter()
        .map(|r| r.finding.status)
        .fold(snap.node_status, NodeStatus::max);
    if json {
        let probes: Vec<_> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "probe": r.probe, "status": r.finding.status, "duration_ms": r.duration.as_millis() as u64,
                    "reasons": r.finding.reasons, "services": r.finding.services,
                })
            })
            .collect();
        let out = serde_json::json!({
            "node_status": snap.node_status, "reasons": snap.reasons, "cycle_ms": snap.cycle_ms,
            "services": snap.details, "probes": probes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        // The node's own status leaves out its stack services (docs/protocol.md, "Scope of
        // a finding"); this local check says when one of them is worse.
        let stacks = if worst > snap.node_status {
            format!("; a stack service {worst}")
        } else {
            String::new()
        };
        println!(
            "node {} ({}): {}{stacks}   cycle {} ms",
            cfg.node_name, cfg.node_type, snap.node_status, snap.cycle_ms
        );
        println!("{:<24} {:<9} {:>8}  reasons", "probe", "status", "ms");
        for r in &results {
            let reasons: Vec<_> = r
                .finding
                .reasons
                .iter()
                .map(|x| x.message.as_str())
                .collect();
            println!(
                "{:<24} {:<9} {:>8}  {}",
                r.probe,
                r.finding.status.as_str(),
                r.duration.as_millis(),
                reasons.join("; ")
            );
        }
        if !snap.details.is_empty() {
            println!();
            println!("{:<24} {:<9} legacy", "service", "status");
            for (name, d) in &snap.details {
                let legacy = snap
                    .services
                    .get(name)
                    .map(|s| format!("{:?}", s.status))
                    .unwrap_or_default();
                println!("{:<24} {:<9} {legacy}", name, d.status.as_str());
            }
        }
    }
    Ok(match worst {
        NodeStatus::Ok => 0,
        NodeStatus::Degraded => 1,
        NodeStatus::Fail => 2,
    })
}
