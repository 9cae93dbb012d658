//! The collector under test, two ways: [`Collector`] is the real binary (`collector init` +
//! `collector run`, through [`super::launch`]), optionally inside a network namespace;
//! [`InProcessCollector`] serves the library on a runtime of the test process, for suites
//! that stop and restart a manager many times or build its store by hand.

use super::launch::{self, CollectorProcess, Pki};
use super::status::Status;
use super::{poll, BIN};
use serde_json::Value;
use sr_collector::store::{Store, TransitionRow};
use sr_protocol::NodeType;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A collector process: `collector init` once, then `collector run` (again after a kill).
/// Its files live in `dir`: `collector.toml`, `state/`, `collector.log` (stderr, debug level).
/// Killed (SIGKILL) on drop.
pub struct Collector {
    pub dir: PathBuf,
    /// The CA that signed its certificate.
    pub ca: PathBuf,
    pub tokens: Value,
    /// Where it listens; `127.0.0.1:1` until the first [`Collector::spawn`].
    pub addr: SocketAddr,
    netns: Option<String>,
    process: Option<CollectorProcess>,
    /// Holds the directory when the harness made it.
    _tmp: Option<tempfile::TempDir>,
}

impl Collector {
    /// [`Collector::addr`] before the first run.
    const NOT_STARTED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        1,
    ));

    /// `collector init --json` in `dir` on `listen` with `pki`'s server certificate (port 0
    /// picks one; the first run's port is then written back so restarts keep it). Not started.
    pub fn init(dir: &Path, pki: &Pki, listen: &str) -> Collector {
        Self::init_with(dir, pki, listen, &[])
    }

    /// [`Collector::init`] with more `collector init` flags.
    pub fn init_with(dir: &Path, pki: &Pki, listen: &str, extra: &[&std::ffi::OsStr]) -> Collector {
        let tokens = launch::init_with(BIN.as_ref(), dir, listen, &pki.cert, &pki.key, extra)
            .unwrap_or_else(|e| panic!("{e}"));
        Collector {
            dir: dir.to_path_buf(),
            ca: pki.ca.clone(),
            tokens,
            addr: Self::NOT_STARTED,
            netns: None,
            process: None,
            _tmp: None,
        }
    }

    /// A running collector for a stack-service suite: `init` on `listen` (inside `netns` if
    /// given), no required Cloudify type, `services` (TOML `[services.<name>]` tables)
    /// appended, a `node` token, no flap damping, a 1 s shutdown grace.
    pub fn for_services(
        dir: &Path,
        pki: &Pki,
        listen: &str,
        netns: Option<&str>,
        services: &str,
    ) -> Collector {
        let mut c = Collector::init(dir, pki, listen);
        if let Some(ns) = netns {
            c.in_netns(ns);
        }
        c.set("flap_threshold", "1000");
        c.set("shutdown_grace_secs", "1");
        c.set("required_types", "[]");
        c.append_config(services);
        c.create_token("node");
        c.spawn();
        c
    }

    /// A CA for `sans`, `init` in `dir` with `overrides` (key, TOML value) applied, then
    /// `run` (inside `netns` if given) until it prints its address.
    pub fn start(
        dir: &Path,
        listen: &str,
        sans: &[&str],
        netns: Option<&str>,
        overrides: &[(&str, &str)],
    ) -> Collector {
        let pki = Pki::with_sans(&dir.join("pki"), "collector test CA", sans);
        let mut c = Collector::init(dir, &pki, listen);
        c.netns = netns.map(str::to_string);
        for (k, v) in overrides {
            c.set(k, v);
        }
        c.spawn();
        c
    }

    /// [`Collector::start`] on loopback in a fresh temp dir removed on drop.
    pub fn start_in_temp_dir(overrides: &[(&str, &str)]) -> Collector {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Collector::start(
            tmp.path(),
            "127.0.0.1:0",
            &["localhost", "127.0.0.1"],
            None,
            overrides,
        );
        c._tmp = Some(tmp);
        c
    }

    /// Runs it inside network namespace `ns` from the next [`Collector::spawn`] on.
    pub fn in_netns(&mut self, ns: &str) {
        self.netns = Some(ns.to_string());
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn config(&self) -> PathBuf {
        launch::config_path(&self.dir)
    }

    pub fn state(&self) -> PathBuf {
        launch::state_path(&self.dir)
    }

    /// The token `init` issued for `role` (`manager`, `db`, `broker`, `admin`).
    pub fn token(&self, role: &str) -> String {
        self.tokens[role]
            .as_str()
            .unwrap_or_else(|| panic!("no {role} token in {}", self.tokens))
            .to_string()
    }

    /// `tokens create ROLE` on its store, for a role `init` does not issue (`node`); kept in
    /// [`Collector::tokens`] so [`Collector::token`] and `Agent::for_collector` find it.
    pub fn create_token(&mut self, role: &str) -> String {
        let out = std::process::Command::new(BIN)
            .args(["tokens", "create", role, "--config"])
            .arg(self.config())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tokens create");
        assert!(
            out.status.success(),
            "tokens create {role}: {}",
            super::text(&out)
        );
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.tokens[role] = secret.clone().into();
        secret
    }

    /// Appends TOML tables (`[services.galera]`, ...) to its config, after every key that
    /// `init` wrote; call before the first [`Collector::spawn`].
    pub fn append_config(&self, tables: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.config())
            .expect("open the collector config");
        write!(f, "\n{tables}").expect("append to the collector config");
    }

    /// Sets `key = value` (a TOML literal) in its config.
    pub fn set(&self, key: &str, value: &str) {
        launch::set_config_key(&self.config(), key, value);
    }

    /// `collector run`; waits for `listening on ADDR`. A restart first pins the address the
    /// first run bound in the config, so it listens where the agents push. (Pinned only then:
    /// rewriting the config under a running collector changed what a suite observed.)
    pub fn spawn(&mut self) {
        if self.addr != Self::NOT_STARTED {
            self.set("listen", &format!("\"{}\"", self.addr));
        }
        let run = launch::run_command(BIN.as_ref(), &self.dir, &self.log_path(), "debug");
        let cmd = match &self.netns {
            Some(ns) => super::in_netns(ns, run),
            None => run,
        };
        let p = CollectorProcess::start(cmd).unwrap_or_else(|e| {
            panic!(
                "collector in {} did not start: {e}\n{}",
                self.dir.display(),
                self.log_tail()
            )
        });
        self.addr = p.addr;
        self.process = Some(p);
    }

    pub fn pid(&self) -> i32 {
        self.process.as_ref().expect("running").pid() as i32
    }

    pub fn kill9(&mut self) {
        // Dropping the process kills it with SIGKILL and reaps it.
        self.process = None;
    }

    /// SIGTERM, and wait (bounded) for it to exit; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut p = self.process.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        poll::poll(super::DEADLINE, Duration::from_millis(20), || {
            p.child.try_wait().unwrap().ok_or_else(String::new)
        })
        .expect("collector did not stop on SIGTERM")
        .0
    }

    /// Whether `collector run` is still running.
    pub fn alive(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.child.try_wait().unwrap().is_none())
    }

    /// `https://localhost:PORT/path` (the certificate names `localhost`).
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn client(&self) -> sr_tls::HttpsClient {
        sr_tls::HttpsClient::new(
            sr_tls::client_config(&self.ca, None).unwrap(),
            Duration::from_secs(5),
        )
    }

    /// GET `path` with these headers: (status, JSON body or `Null`).
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .client()
            .get(&self.url(path), headers, Duration::from_secs(20), 16 << 20)
            .await
            .expect("the collector answers");
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }

    /// PUT `body` with these headers: (status, JSON body or `Null`).
    pub async fn put(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
        let r = self.put_response(path, headers, body).await;
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }

    /// PUT `body` with these headers: the whole response (status, headers, body).
    pub async fn put_response(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> sr_tls::Response {
        self.client()
            .request(
                http::Method::PUT,
                &self.url(path),
                headers,
                body.into(),
                Duration::from_secs(20),
                1 << 20,
            )
            .await
            .expect("the collector answers")
    }

    /// `status-reporter nodes ARGS --config CONFIG` on this collector's store: (exit code,
    /// stdout, stderr).
    pub fn nodes(&self, args: &[&str]) -> (i32, String, String) {
        let config = self.config().display().to_string();
        let mut all = vec!["nodes"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", &config]);
        super::cli(Some(&self.dir), &all, &[])
    }

    /// `GET /api/v3.1/cluster-status` with the admin token, straight over HTTPS.
    pub async fn view(&self) -> Value {
        let (code, v) = self
            .get(
                "/api/v3.1/cluster-status",
                &[(sr_protocol::TOKEN_HEADER, &self.token("admin"))],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    /// A blocking GET of `path` with the admin token, trusting the collector's CA.
    fn admin_get(&self, path: &str) -> anyhow::Result<super::rest::Response> {
        let tls = super::rest::Tls {
            ca: Some(&self.ca),
            identity: None,
        };
        super::rest::request(
            tls,
            "GET",
            &self.url(path),
            &[(sr_protocol::TOKEN_HEADER, &self.token("admin"))],
            None,
        )
    }

    /// [`Collector::view`] for sync suites: `Err` when there is no 200 answer.
    pub fn fetch_view(&self) -> anyhow::Result<Value> {
        let r = self.admin_get("/api/v3.1/cluster-status")?;
        anyhow::ensure!(
            r.status == 200,
            "cluster-status: HTTP {}: {}",
            r.status,
            r.body
        );
        Ok(serde_json::from_str(&r.body)?)
    }

    /// GET `path` with the admin token: the body as text, whatever the status.
    pub fn admin_get_text(&self, path: &str) -> String {
        self.admin_get(path).map(|r| r.body).unwrap_or_default()
    }

    /// GET `path` with the admin token: the JSON answer of a 2xx, else an error with the body.
    pub fn admin_json(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.admin_get(path)?;
        anyhow::ensure!(r.status / 100 == 2, "{path}: HTTP {}: {}", r.status, r.body);
        Ok(serde_json::from_str(&r.body)?)
    }

    /// `status-reporter cluster status ARGS` against it with every connection flag given:
    /// (exit code, stdout, stderr).
    pub fn cluster_status_cli(&self, args: &[&str]) -> (i32, String, String) {
        let manager = format!("localhost:{}", self.addr.port());
        let ca = self.ca.display().to_string();
        let token = self.token("admin");
        let mut all = vec!["cluster", "status", "--manager", &manager, "--ca-path", &ca];
        all.extend_from_slice(args);
        super::cli(Some(&self.dir), &all, &[("STATUS_REPORTER_TOKEN", &token)])
    }

    /// Makes it a tier-1 collector pushing its summary as `cluster` every `interval_secs`
    /// to the running tier-2 collector `tier2` (a `cluster` token made there, kept 0600 in
    /// its directory). Call before [`Collector::spawn`].
    pub fn push_to_tier2(&self, tier2: &mut Collector, cluster: &str, interval_secs: u32) {
        use std::os::unix::fs::PermissionsExt;
        let token = tier2.create_token("cluster");
        let file = self.path("tier2.token");
        std::fs::write(&file, token).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        self.append_config(&format!(
            "[tier2]\ncluster = \"{cluster}\"\nurls = [\"https://localhost:{}\"]\nca_path = \"{}\"\ntoken_file = \"{}\"\ninterval_secs = {interval_secs}\n",
            tier2.addr.port(),
            tier2.ca.display(),
            file.display()
        ));
    }

    /// `status-reporter cluster status --json` with the admin token, as an operator runs it
    /// (in the collector's namespace, if any).
    pub fn status(&self) -> Status {
        let cmd = super::status::command(&self.addr.to_string(), &self.ca, &self.token("admin"));
        let cmd = match &self.netns {
            Some(ns) => super::in_netns(ns, cmd),
            None => cmd,
        };
        Status::run(cmd)
    }

    /// Polls `cluster status` every 200 ms until `pred` holds; panics with the last view
    /// and the log at the deadline. Returns the matching status and the time it took.
    pub fn wait(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Status) -> bool,
    ) -> (Status, Duration) {
        let mut last = String::new();
        poll::poll(limit, Duration::from_millis(200), || {
            let s = self.status();
            if pred(&s) {
                Ok(s)
            } else {
                last = s.describe();
                Err(String::new())
            }
        })
        .unwrap_or_else(|_| {
            panic!(
                "timed out after {limit:?} waiting for {what}\nlast view: {last}\ncollector log:\n{}",
                self.log_tail()
            )
        })
    }

    /// The node-level transitions (not per service) stored for a node, oldest first, read
    /// from its store as `status-reporter` itself would.
    pub fn node_transitions(&self, node_type: NodeType, node_id: &str) -> Vec<TransitionRow> {
        let Ok(store) = Store::open(&self.state()) else {
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

    /// Completed write-behind flushes (`/api/v3.1/status` `collector.flushes`).
    pub fn flushes(&self) -> anyhow::Result<u64> {
        let r = self.admin_get("/api/v3.1/status")?;
        let v: Value = serde_json::from_str(&r.body)?;
        v["collector"]["flushes"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no collector.flushes in {v}"))
    }

    /// Waits until two more flushes completed: a store change committed before the call
    /// (by the CLI or a shared store's sync) is then in the running collector's memory,
    /// since each flush reloads what changed before it began.
    pub fn wait_store_reload(&self) {
        let start = self.flushes().unwrap_or_else(|e| panic!("{e}"));
        poll::poll(super::DEADLINE, Duration::from_millis(50), || {
            match self.flushes() {
                Ok(n) if n >= start + 2 => Ok(()),
                _ => Err(String::new()),
            }
        })
        .unwrap_or_else(|_| panic!("no flush within {:?}\n{}", super::DEADLINE, self.log_tail()));
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("collector.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        super::tail(&self.log_path(), 30)
    }
}

/// On a failing test, shows why from the collector's side before the process is killed.
impl Drop for Collector {
    fn drop(&mut self) {
        if std::thread::panicking() && self.process.is_some() {
            eprintln!(
                "collector in {} (log tail):\n{}",
                self.dir.display(),
                self.log_tail()
            );
        }
    }
}

/// A collector served by the library on `rt` on a fixed loopback port (picked at the first
/// start); stop it and start it again on the same port and store to simulate a manager
/// going away and coming back. Stopped on drop.
pub struct InProcessCollector {
    rt: tokio::runtime::Handle,
    pub state: PathBuf,
    cert: (PathBuf, PathBuf),
    port: u16,
    tune: fn(&mut sr_collector::Config),
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl InProcessCollector {
    /// Not started; `tune` adjusts the config before every start.
    pub fn new(
        rt: &tokio::runtime::Runtime,
        state: PathBuf,
        cert: (PathBuf, PathBuf),
        tune: fn(&mut sr_collector::Config),
    ) -> InProcessCollector {
        std::fs::create_dir_all(&state).unwrap();
        InProcessCollector {
            rt: rt.handle().clone(),
            state,
            cert,
            port: 0,
            tune,
            stop: None,
        }
    }

    pub fn start(&mut self) {
        let mut cfg = sr_collector::Config::new(&self.state, &self.cert.0, &self.cert.1);
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", self.port)))
            .expect("bind collector port");
        self.port = listener.local_addr().unwrap().port();
        cfg.listen = listener.local_addr().unwrap();
        (self.tune)(&mut cfg);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = self.rt.spawn(async move {
            sr_collector::serve(cfg, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("collector runs");
        });
        self.stop = Some((tx, handle));
    }

    /// Graceful stop; returns once the server has drained.
    pub fn stop(&mut self) {
        if let Some((tx, handle)) = self.stop.take() {
            let _ = tx.send(());
            self.rt.block_on(handle).unwrap();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The latest stored report of `node_id`, decoded.
    pub fn latest(&self, node_id: &str) -> Option<sr_protocol::report::ReportBody> {
        let store = Store::open(&self.state).ok()?;
        let node = store
            .load_nodes()
            .ok()?
            .into_iter()
            .find(|n| n.row.node_id == node_id)?;
        Some(
            sr_protocol::report::ReportBody::decode(&node.latest?.body)
                .ok()?
                .body,
        )
    }

    /// The transitions stored for a node (node-level and per service), in store order.
    pub fn transitions(&self, node_type: NodeType, node_id: &str) -> Vec<TransitionRow> {
        Store::open(&self.state)
            .and_then(|s| s.transitions(node_type, node_id, 1000))
            .unwrap_or_default()
    }
}

impl Drop for InProcessCollector {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.stop.take() {
            let _ = tx.send(());
            // Bounded, and never unwrapped: this may run while a failed test unwinds.
            // The timer is made inside the runtime (in the async block), not before it.
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), handle).await });
        }
    }
}
