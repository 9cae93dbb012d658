//! Real-process helpers for the hostile suites (`tests/security.rs`, `tests/faults.rs`,
//! `tests/faults_partition.rs`):
//! collectors run as `status-reporter collector run`, agents as `status-reporter run`,
//! both configured through the real CLI, on loopback with a throwaway rcgen CA.
//!
//! Every log and every `--json` output a suite produces lands under the suite's temp
//! directory, so [`assert_no_secrets`] can grep all of it at the end. Waits poll with a
//! deadline; nothing sleeps to synchronise.

#![allow(dead_code)] // Each suite uses a different subset.

use serde_json::{json, Value};
use sr_collector::store::Store;
use sr_protocol::signing::NodeKey;
use sr_protocol::NodeType;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_status-reporter");
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A suite's temp dir, kept for inspection when `KEEP_TMP` is set.
pub trait KeepIfAsked {
    fn keep_if_asked(self) -> Self;
}

impl KeepIfAsked for tempfile::TempDir {
    fn keep_if_asked(mut self) -> Self {
        if std::env::var_os("KEEP_TMP").is_some() {
            eprintln!("temp dir kept: {}", self.path().display());
            self.disable_cleanup(true);
        }
        self
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The operator's CA and one loopback server certificate, as PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = sr_tls::pki::Ca::new("hostile-suite CA").unwrap();
        let leaf = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        let p = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        std::fs::write(&p.ca, ca.cert_pem()).unwrap();
        std::fs::write(&p.cert, &leaf.cert_pem).unwrap();
        std::fs::write(&p.key, &leaf.key_pem).unwrap();
        p
    }

    pub fn client(&self) -> sr_tls::HttpsClient {
        sr_tls::HttpsClient::new(
            sr_tls::client_config(&self.ca, None).unwrap(),
            Duration::from_secs(5),
        )
    }
}

/// Runs the CLI, records its output as `outputs/<n>.out` under `record_dir` (for the
/// secret grep; `None` only for the commands whose job is to print a new token once:
/// `collector init`, `tokens create`), and returns (exit code, stdout, stderr).
pub fn cli(
    record_dir: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("STATUS_REPORTER_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    if let Some(dir) = record_dir {
        let outputs = dir.join("outputs");
        std::fs::create_dir_all(&outputs).unwrap();
        let n = std::fs::read_dir(&outputs).unwrap().count();
        let mut recorded = out.stdout.clone();
        recorded.extend_from_slice(&out.stderr);
        std::fs::write(outputs.join(format!("{n}.out")), recorded).unwrap();
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A collector process: `collector init` once, then `collector run` (again after a kill).
pub struct Collector {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub tokens: Value,
    pub ca: PathBuf,
}

impl Collector {
    /// `collector init --json` in `dir` on `listen` (port 0 picks one; the first run's
    /// port is then written back so restarts keep it).
    pub fn init(dir: &Path, pki: &Pki, listen: &str) -> Collector {
        std::fs::create_dir_all(dir).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        let (code, out, err) = cli(
            None,
            &[
                "collector",
                "init",
                "--json",
                "--listen",
                listen,
                "--config",
                &p("collector.toml"),
                "--state-dir",
                &p("state"),
                "--cert",
                &pki.cert.display().to_string(),
                "--key",
                &pki.key.display().to_string(),
            ],
            &[],
        );
        assert_eq!(code, 0, "collector init: {err}");
        Collector {
            child: None,
            addr: "127.0.0.1:1".parse().unwrap(),
            dir: dir.to_path_buf(),
            tokens: serde_json::from_str(&out).unwrap(),
            ca: pki.ca.clone(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("collector.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn token(&self, role: &str) -> String {
        self.tokens[role].as_str().unwrap().to_string()
    }

    /// Replaces `key = ...` in the config (or appends it).
    pub fn set(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let line = format!("{key} = {value}");
        let mut found = false;
        let mut out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    found = true;
                    line.clone()
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !found {
            // Top-level keys must come before the first table.
            let at = out
                .iter()
                .position(|l| l.starts_with('['))
                .unwrap_or(out.len());
            out.insert(at, line);
        }
        std::fs::write(self.config(), out.join("\n") + "\n").unwrap();
    }

    /// `collector run`; waits for `listening on ADDR`. After the first run the port is
    /// pinned in the config so a restart listens where the agents push.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("collector.log"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args([
                "collector",
                "run",
                "--config",
                &self.config().display().to_string(),
            ])
            .env("STATUS_REPORTER_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let line = first_line(child.stdout.take().unwrap())
            .recv_timeout(DEADLINE)
            .expect("collector did not print its address");
        self.addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        self.set("listen", &format!("\"{}\"", self.addr));
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn client(&self) -> sr_tls::HttpsClient {
        sr_tls::HttpsClient::new(
            sr_tls::client_config(&self.ca, None).unwrap(),
            Duration::from_secs(5),
        )
    }

    /// `GET /api/v3.1/cluster-status` with the admin token, straight over HTTPS.
    pub async fn view(&self) -> Value {
        let r = self
            .client()
            .get(
                &self.url("/api/v3.1/cluster-status"),
                &[(sr_protocol::TOKEN_HEADER, &self.token("admin"))],
                Duration::from_secs(10),
                16 << 20,
            )
            .await
            .expect("cluster status answers");
        assert_eq!(
            r.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).unwrap()
    }

    /// PUT a report body with these headers; returns (status, JSON body).
    pub async fn put(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client()
            .request(
                http::Method::PUT,
                &self.url(path),
                headers,
                body.into(),
                Duration::from_secs(20),
                1 << 20,
            )
            .await
            .expect("the collector answers");
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The node of a view by node id: (type, name, node JSON).
pub fn find_node<'a>(view: &'a Value, node_id: &str) -> Option<(&'a str, &'a Value)> {
    view["services"].as_object()?.iter().find_map(|(ty, s)| {
        s["nodes"]
            .as_object()?
            .values()
            .find(|n| n["node_id"] == node_id)
            .map(|n| (ty.as_str(), n))
    })
}

/// A critical `tcp` probe of `address`: the one probe the hostile suites give agents,
/// so a test can flip a node's status by opening or closing a listener.
pub fn tcp_probe(name: &str, address: &str) -> sr_probes::ProbeConfig {
    sr_probes::ProbeConfig::Tcp(sr_probes::tcp::Config {
        name: name.into(),
        address: address.into(),
        timeout_ms: 500,
        critical: true,
    })
}

/// An agent configured with the real `configure --no-verify`, with `probes` swapped in.
pub struct Agent {
    pub child: Option<Child>,
    pub dir: PathBuf,
}

impl Agent {
    // One argument per `configure` flag the suites vary; the broker suites call it too, so
    // the signature stays as it is rather than becoming a builder.
    #[allow(clippy::too_many_arguments)]
    pub fn configure(
        dir: &Path,
        ca: &Path,
        token: &str,
        node_type: &str,
        name: &str,
        freq: u32,
        managers: &[String],
        probes: Vec<sr_probes::ProbeConfig>,
    ) -> Agent {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("etc/agent.toml");
        let mut args: Vec<String> = [
            "configure",
            "--no-verify",
            "--config",
            cfg.to_str().unwrap(),
            "--token",
            token,
            "--ca-path",
            ca.to_str().unwrap(),
            "--node-type",
            node_type,
            "--node-name",
            name,
            "--node-id",
            name,
            "--reporting-freq",
            &freq.to_string(),
            "--state-dir",
            dir.join("state").to_str().unwrap(),
            "--managers-ip",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(managers.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = cli(Some(dir), &args, &[]);
        assert_eq!(code, 0, "configure: {out}{err}");
        let mut raw = sr_agent::config::RawConfig::read(&cfg).unwrap();
        raw.probes = probes;
        raw.push_timeout_ms = Some(2000);
        std::fs::write(&cfg, raw.to_toml()).unwrap();
        Agent {
            child: None,
            dir: dir.to_path_buf(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("etc/agent.toml")
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts the agent with extra environment (e.g. libfaketime's `LD_PRELOAD`).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        self.child = Some(
            Command::new(BIN)
                .args(["run", "--config", self.config().to_str().unwrap()])
                .env("STATUS_REPORTER_LOG", "info")
                .env("NO_COLOR", "1")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32),
            sig,
        )
        .unwrap();
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
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

/// A hand-made reporting node: its own key, boot id and sequence, signing like the agent.
pub struct Node {
    pub key: NodeKey,
    pub node_type: &'static str,
    pub id: String,
    pub boot: String,
    pub seq: u64,
}

impl Node {
    pub fn new(node_type: &'static str, id: &str) -> Node {
        Node {
            key: NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap()).unwrap(),
            node_type,
            id: id.into(),
            boot: "boot-1".into(),
            seq: 0,
        }
    }

    pub fn path(&self) -> String {
        format!("/api/v3.1/cluster-status/{}/{}", self.node_type, self.id)
    }

    /// The next report (consumes a seq), with one transition, signed as sent at
    /// `sent_at_ms`: (body, signature header).
    pub fn next(&mut self, status: &str, sent_at_ms: i64) -> (Vec<u8>, String) {
        self.seq += 1;
        let legacy = if status == "Fail" { "Fail" } else { "OK" };
        let body = serde_json::to_vec(&json!({
            "reporting_freq": 5,
            "timestamp": sr_protocol::timestamp::format_legacy(sent_at_ms / 1000).unwrap(),
            "report": {"status": legacy, "services": {}},
            "status_reporter": {
                "version": 1, "node_status": status, "node_name": self.id, "private_ip": "127.0.0.1",
                "agent_version": "0.1.0", "boot_id": self.boot, "seq": self.seq, "facts": {},
                "transitions": [{"seq": self.seq, "at_ms": sent_at_ms, "from": "OK", "to": status}]
            }
        }))
        .unwrap();
        let sig = self
            .key
            .sign("PUT", &self.path(), &body, &self.boot, self.seq, sent_at_ms)
            .to_header();
        (body, sig)
    }
}

/// The headers of a signed report.
pub fn report_headers<'a>(token: &'a str, sig: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("Content-Type", "application/json"),
        (sr_protocol::TOKEN_HEADER, token),
        (sr_protocol::SIGNATURE_HEADER, sig),
    ]
}

/// Greps every file under `root` (logs, recorded CLI outputs, configs excepted) for each
/// secret. Config files and the key itself are where secrets are meant to live.
pub fn assert_no_secrets(root: &Path, secrets: &[(&str, String)]) -> usize {
    let mut checked = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let is_output = p.parent().is_some_and(|d| d.ends_with("outputs"));
            if !(name.ends_with(".log") || is_output) {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).to_string();
            for (what, secret) in secrets {
                assert!(!secret.is_empty());
                assert!(
                    !text.contains(secret.as_str()),
                    "{what} found in {}",
                    p.display()
                );
            }
            checked += 1;
        }
    }
    checked
}

/// A TCP endpoint a `tcp` probe watches; closing it fails the node, opening it heals it.
pub struct Target {
    rt: tokio::runtime::Handle,
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Target {
    pub fn new(rt: &tokio::runtime::Runtime) -> Target {
        let mut t = Target {
            rt: rt.handle().clone(),
            port: 0,
            task: None,
        };
        t.open();
        t
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn open(&mut self) {
        let l = self
            .rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", self.port)))
            .expect("rebind the target port");
        self.port = l.local_addr().unwrap().port();
        self.task = Some(self.rt.spawn(async move {
            // Accept and drop, so the backlog never fills.
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }));
    }

    pub fn close(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = self.rt.block_on(t);
        }
    }
}

/// node_id → (status, key_mismatch) as one collector shows it.
pub fn statuses(view: &Value) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for s in view["services"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for n in s["nodes"].as_object().into_iter().flat_map(|m| m.values()) {
            out.insert(
                n["node_id"].as_str().unwrap_or_default().to_string(),
                (
                    n["status"].as_str().unwrap_or_default().to_string(),
                    n["key_mismatch"] == true,
                ),
            );
        }
    }
    out
}

/// Every stored transition of these nodes: (node, boot, seq).
pub fn transitions(state: &Path, nodes: &[(NodeType, String)]) -> BTreeSet<(String, String, u64)> {
    let store = Store::open(state).expect("the store opens");
    let mut out = BTreeSet::new();
    for (ty, id) in nodes {
        for t in store.transitions(*ty, id, 1_000_000).unwrap() {
            out.insert((id.clone(), t.boot_id, t.seq));
        }
    }
    out
}

/// Sends the first line a process prints (a collector's `listening on ADDR`), then keeps
/// draining its stdout so the process never blocks on a full pipe.
pub fn first_line(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    rx
}
