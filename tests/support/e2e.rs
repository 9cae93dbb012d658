//! End-to-end plumbing for the broker suites: the real `status-reporter` binary as a
//! collector (`collector init` + `collector run`, TLS from a throwaway rcgen CA), as agents
//! (`configure` + `run`, one per broker node) and as the reader (`cluster status --json`).
//!
//! Every process can be started inside a network namespace (`ip netns exec NS ...`), so
//! the partition suite runs the same plumbing on its own test hosts. Included by the
//! broker suites with `#[path = "support/e2e.rs"] mod e2e;` (not through `support/mod.rs`,
//! so the other suites do not compile it). Waits poll with deadlines; nothing sleeps to
//! synchronise.
#![allow(dead_code)]

use serde_json::Value;
use sr_agent::config::RawConfig;
use sr_collector::store::{Store, TransitionRow};
use sr_probes::ProbeConfig;
use sr_protocol::view::{ClusterStatus, NodeView, ServiceTypeView};
use sr_protocol::{NodeStatus, NodeType};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_status-reporter");

/// `program` as is, or wrapped in `ip netns exec NS` (which execs it: the child's pid is
/// the program's own, so killing the child kills the program).
fn command(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            // root's PATH has /usr/sbin; a test runner's may not.
            let ip = ["/usr/sbin/ip", "/sbin/ip"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("ip");
            let mut c = Command::new(ip);
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A real collector process with its own CA, certificate, config and store.
pub struct Collector {
    child: Option<Child>,
    dir: PathBuf,
    netns: Option<String>,
    /// `host:port` it listens on.
    pub addr: String,
    tokens: Value,
}

impl Collector {
    /// `collector init` (certificate for `sans`), the `overrides` applied to its TOML, then
    /// `collector run` (inside `netns` if given) until it prints its address.
    pub fn start(
        dir: &Path,
        listen: &str,
        sans: &[&str],
        netns: Option<&str>,
        overrides: &[(&str, &str)],
    ) -> Collector {
        std::fs::create_dir_all(dir).unwrap();
        let ca = sr_tls::pki::Ca::new("broker e2e CA").unwrap();
        let leaf = ca.server(sans).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &leaf.key_pem).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        let out = Command::new(BIN)
            .args(["collector", "init", "--json", "--listen", listen])
            .args(["--config", &p("collector.toml"), "--state-dir", &p("state")])
            .args(["--cert", &p("cert.pem"), "--key", &p("key.pem")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "collector init failed: {}",
            text(&out)
        );
        let tokens: Value =
            serde_json::from_slice(&out.stdout).expect("init --json prints the tokens");
        let cfg_path = dir.join("collector.toml");
        let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
        for (k, v) in overrides {
            let prefix = format!("{k} = ");
            cfg = cfg
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect::<String>();
            cfg.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut child = command(netns, BIN)
            .args(["collector", "run", "--config", &p("collector.toml")])
            .env("STATUS_REPORTER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("collector.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "collector did not start: {line:?}\n{}",
                    tail(&dir.join("collector.log"), 20)
                )
            })
            .to_string();
        Collector {
            child: Some(child),
            dir: dir.to_path_buf(),
            netns: netns.map(str::to_string),
            addr,
            tokens,
        }
    }

    /// The token `init` issued for `role` (`manager`, `db`, `broker`, `admin`).
    pub fn token(&self, role: &str) -> String {
        self.tokens[role]
            .as_str()
            .expect("init issued this role")
            .to_string()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn log_tail(&self) -> String {
        tail(&self.dir.join("collector.log"), 30)
    }

    /// `status-reporter cluster status --json` with the admin token, as an operator runs it.
    /// Checks on every call that the exit code is the one the printed status implies.
    pub fn status(&self) -> Status {
        let out = command(self.netns.as_deref(), BIN)
            .args(["cluster", "status", "--json", "--timeout", "5"])
            .args([
                "--manager",
                &self.addr,
                "--ca-path",
                self.ca_path().to_str().unwrap(),
            ])
            .env("STATUS_REPORTER_TOKEN", self.token("admin"))
            .env("STATUS_REPORTER_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let view: Option<ClusterStatus> = serde_json::from_slice(&out.stdout).ok();
        let code = out.status.code();
        if let Some(v) = &view {
            assert_eq!(
                code,
                Some(v.status.exit_code()),
                "cluster status exit code vs its own JSON: {}",
                text(&out)
            );
        } else {
            // Only an unreachable collector may print no view, and then the code says so.
            assert_eq!(
                code,
                Some(3),
                "cluster status printed no view: {}",
                text(&out)
            );
        }
        Status {
            code,
            view,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Polls `cluster status` every 200 ms until `pred` holds; panics with the last view at
    /// the deadline. Returns the matching status and the time it took.
    pub fn wait(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> (Status, Duration) {
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if pred(&s) {
                return (s, t0.elapsed());
            }
            if t0.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}\nlast view: {}\ncollector log:\n{}",
                    s.describe(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node-level transitions (not per service) the collector stored for a node,
    /// oldest first, read from its store as `status-reporter` itself would.
    pub fn node_transitions(&self, node_type: NodeType, node_id: &str) -> Vec<TransitionRow> {
        let Ok(store) = Store::open(&self.state_dir()) else {
            return Vec::new();
        };
        let mut rows: Vec<TransitionRow> = store
            .transitions(node_type, node_id, 1000)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.service.is_none())
            .collect();
        rows.sort_by_key(|t| t.seq);
        rows
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first: the collector flushes its store and exits 0.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One `cluster status` answer.
pub struct Status {
    pub code: Option<i32>,
    pub view: Option<ClusterStatus>,
    pub stderr: String,
}

impl Status {
    pub fn service(&self, t: &str) -> Option<&ServiceTypeView> {
        self.view.as_ref()?.services.get(t)
    }
    pub fn broker(&self) -> Option<&ServiceTypeView> {
        self.service("broker")
    }
    pub fn broker_status(&self) -> Option<NodeStatus> {
        self.broker().map(|b| b.status)
    }
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.broker()?.nodes.get(name)
    }
    pub fn node_status(&self, name: &str) -> Option<NodeStatus> {
        self.node(name).map(|n| n.status)
    }
    /// A broker-level reason with this code on this node (agent name).
    pub fn has_reason(&self, code: &str, node: &str) -> bool {
        self.broker().is_some_and(|b| {
            b.reasons
                .iter()
                .any(|r| r.code == code && r.node.as_deref() == Some(node))
        })
    }
    /// The node's own reasons with this code.
    pub fn node_reasons(&self, name: &str, code: &str) -> Vec<String> {
        self.node(name)
            .map(|n| {
                n.reasons
                    .iter()
                    .filter(|r| r.code == code)
                    .map(|r| r.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The node's legacy `RabbitMQ` service `extra_info`.
    pub fn rabbit_info(&self, name: &str) -> Option<&serde_json::Map<String, Value>> {
        self.node(name)?
            .services
            .get("RabbitMQ")?
            .get("extra_info")?
            .as_object()
    }
    /// One line per node plus the broker reasons, for failure messages.
    pub fn describe(&self) -> String {
        let Some(b) = self.broker() else {
            return format!(
                "exit {:?}, no broker view; stderr: {}",
                self.code,
                self.stderr.trim()
            );
        };
        let nodes: Vec<String> = b
            .nodes
            .iter()
            .map(|(k, n)| {
                let rs: Vec<String> = n
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.code, r.message))
                    .collect();
                format!("  {k} {} [{}]", n.status, rs.join(" | "))
            })
            .collect();
        let rs: Vec<String> = b
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{}@{}: {}",
                    r.code,
                    r.node.as_deref().unwrap_or("-"),
                    r.message
                )
            })
            .collect();
        format!(
            "exit {:?}, broker {}\n{}\n  reasons: {}",
            self.code,
            b.status,
            nodes.join("\n"),
            rs.join(" | ")
        )
    }
}

/// A real agent process (`status-reporter run`), configured by the real `configure`.
pub struct Agent {
    child: Option<Child>,
    pub cfg: PathBuf,
    pub node_id: String,
    pub name: String,
    log: PathBuf,
    netns: Option<String>,
}

impl Agent {
    /// `configure --no-verify` for a node of `node_type` named `name` reporting every
    /// second to `collector` (its CA, its token for that role), then the probes written
    /// into its config. Not started; `netns` is where `start` will run it.
    pub fn configure(
        dir: &Path,
        name: &str,
        node_type: &str,
        collector: &Collector,
        probes: Vec<ProbeConfig>,
        netns: Option<&str>,
    ) -> Agent {
        let (ca, token) = (collector.ca_path(), collector.token(node_type));
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("agent.toml");
        let out = Command::new(BIN)
            .args([
                "configure",
                "--no-verify",
                "--config",
                cfg.to_str().unwrap(),
            ])
            .args(["--token", &token, "--ca-path", ca.to_str().unwrap()])
            .args([
                "--node-type",
                node_type,
                "--node-name",
                name,
                "--reporting-freq",
                "1",
            ])
            .args([
                "--state-dir",
                dir.join("state").to_str().unwrap(),
                "--managers-ip",
            ])
            .arg(&collector.addr)
            .env("STATUS_REPORTER_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "configure {name}: {}",
            text(&out)
        );
        let mut raw = RawConfig::read(&cfg).unwrap();
        raw.probes = probes;
        raw.push_timeout_ms = Some(900);
        std::fs::write(&cfg, raw.to_toml()).unwrap();
        Agent {
            child: None,
            node_id: raw.node_id.clone().expect("configure wrote a node id"),
            cfg,
            name: name.to_string(),
            log: dir.join("agent.log"),
            netns: netns.map(str::to_string),
        }
    }

    pub fn start(&mut self) {
        let child = command(self.netns.as_deref(), BIN)
            .args(["run", "--config", self.cfg.to_str().unwrap()])
            .env("STATUS_REPORTER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Rewrites the probes in the config and sends SIGHUP, as an operator reloads.
    pub fn reload_with(&mut self, probes: Vec<ProbeConfig>) {
        let mut raw = RawConfig::read(&self.cfg).unwrap();
        raw.probes = probes;
        std::fs::write(&self.cfg, raw.to_toml()).unwrap();
        let child = self.child.as_mut().expect("agent started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "agent {} died:\n{}",
            self.name,
            self.log_tail()
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 20)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
