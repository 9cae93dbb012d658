//! Fixtures for the hostile suites (`security`, `faults`, `faults_partition`): hand-made
//! reporting nodes that sign like the agent, TCP targets a probe watches, readers of a view
//! and of a store, and the grep that proves no secret reached a log or an output.

use super::{Agent, Collector};
use serde_json::{json, Value};
use sr_collector::store::Store;
use sr_protocol::signing::NodeKey;
use sr_protocol::NodeType;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

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

/// A hand-made reporting node: its own key, boot id and sequence, signing like the agent.
/// [`Node::new`] gives what the hostile suites send (no service, a 5 s reporting period);
/// the other fields are set with struct update syntax where a suite needs more.
pub struct Node {
    pub key: NodeKey,
    pub node_type: &'static str,
    pub id: String,
    /// `status_reporter.node_name`, the name the view shows (the id unless set).
    pub name: String,
    pub boot: String,
    /// The last sequence number used; [`Node::body`] takes the next one.
    pub seq: u64,
    pub reporting_freq: u64,
    pub private_ip: &'static str,
    /// One service in `report.services`, `Active` while the node reports OK, else `Inactive`.
    pub service: Option<&'static str>,
    /// `status_reporter.facts`, for the db and broker cluster rules.
    pub facts: Value,
}

impl Node {
    pub fn new(node_type: &'static str, id: &str) -> Node {
        Node {
            key: NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap()).unwrap(),
            node_type,
            id: id.into(),
            name: id.into(),
            boot: "boot-1".into(),
            seq: 0,
            reporting_freq: 5,
            private_ip: "127.0.0.1",
            service: None,
            facts: json!({}),
        }
    }

    pub fn path(&self) -> String {
        format!("/api/v3.1/cluster-status/{}/{}", self.node_type, self.id)
    }

    /// The body of the next report (consumes a seq), with one transition, sent at
    /// `sent_at_ms`.
    pub fn body(&mut self, status: &str, sent_at_ms: i64) -> Vec<u8> {
        self.seq += 1;
        let legacy = if status == "Fail" { "Fail" } else { "OK" };
        let services = match self.service {
            Some(name) => {
                let state = if legacy == "OK" { "Active" } else { "Inactive" };
                json!({ name: {"status": state, "extra_info": {}} })
            }
            None => json!({}),
        };
        serde_json::to_vec(&json!({
            "reporting_freq": self.reporting_freq,
            "timestamp": sr_protocol::timestamp::format_legacy(sent_at_ms / 1000).unwrap(),
            "report": {"status": legacy, "services": services},
            "status_reporter": {
                "version": 1, "node_status": status, "node_name": self.name, "private_ip": self.private_ip,
                "agent_version": "0.1.0", "boot_id": self.boot, "seq": self.seq, "facts": self.facts,
                "transitions": [{"seq": self.seq, "at_ms": sent_at_ms, "from": "OK", "to": status}]
            }
        }))
        .unwrap()
    }

    /// The signature header for `body` at the current seq, signed at `sent_at_ms`.
    pub fn sign(&self, body: &[u8], sent_at_ms: i64) -> String {
        self.key
            .sign("PUT", &self.path(), body, &self.boot, self.seq, sent_at_ms)
            .to_header()
    }

    /// The next report, signed as sent at `sent_at_ms`: (body, signature header).
    pub fn next(&mut self, status: &str, sent_at_ms: i64) -> (Vec<u8>, String) {
        let body = self.body(status, sent_at_ms);
        let sig = self.sign(&body, sent_at_ms);
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

/// Reports `statuses` from `n` to `c`, one signed report (so one transition) each, and
/// asserts each is accepted.
pub fn report(rt: &tokio::runtime::Runtime, c: &Collector, n: &mut Node, statuses: &[&str]) {
    let token = c.token(n.node_type);
    for s in statuses {
        let (body, sig) = n.next(s, now_ms());
        let (code, v) = rt.block_on(c.put(&n.path(), &report_headers(&token, &sig), body));
        assert_eq!(code, 200, "{v}");
    }
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

/// The TLS stream a stand-in manager serves.
pub type StandInStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// A stand-in manager: a TLS server with `cert` on a loopback port, speaking HTTP/1.1 (ALPN),
/// that hands every connection whose handshake completes within 5 s to its own task running
/// `serve`. It answers whatever way a suite needs (hostile, slow, stating a role); the suite
/// writes only that part. Returns `127.0.0.1:PORT`; it serves until `rt` is dropped.
pub fn stand_in_manager<F, Fut>(
    rt: &tokio::runtime::Runtime,
    (cert, key): (&Path, &Path),
    serve: F,
) -> String
where
    F: Fn(StandInStream) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tls = sr_tls::server_config(cert, key).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp));
                if let Ok(Ok(stream)) = handshake.await {
                    serve(stream).await;
                }
            });
        }
    });
    addr
}

/// The transitions of `nodes` that the store in `held` lacks and the one in `reference` has.
pub fn missing_transitions(
    reference: &Path,
    held: &Path,
    nodes: &[(NodeType, String)],
) -> Vec<(String, String, u64)> {
    let (reference, held) = (transitions(reference, nodes), transitions(held, nodes));
    reference.difference(&held).cloned().collect()
}

/// `to` starts from a copy of `from`'s store and token set, as a cluster's managers do after
/// the installer distributed the tokens. Neither may be running.
pub fn share_tokens(from: &Collector, to: &mut Collector) {
    for e in std::fs::read_dir(to.state()).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    for e in std::fs::read_dir(from.state()).unwrap().flatten() {
        std::fs::copy(e.path(), to.state().join(e.file_name())).unwrap();
    }
    to.tokens = from.tokens.clone();
}

/// The multi-collector suites' five reporting nodes (node id = name).
pub const FLEET: [&str; 5] = ["db1", "db2", "db3", "br1", "br2"];

fn fleet_type(name: &str) -> NodeType {
    if name.starts_with("db") {
        NodeType::Db
    } else {
        NodeType::Broker
    }
}

/// One started agent per [`FLEET`] name in `dir/<name>`, reporting every `freq` s to
/// `managers` with the token `tokens_from` issued for its role, each watching its own
/// [`Target`] with a critical `tcp` probe: (targets, agents), in [`FLEET`] order.
pub fn start_fleet(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    ca: &Path,
    tokens_from: &Collector,
    freq: u32,
    managers: &[String],
) -> (Vec<Target>, Vec<Agent>) {
    let targets: Vec<Target> = FLEET.iter().map(|_| Target::new(rt)).collect();
    let agents = FLEET
        .iter()
        .zip(&targets)
        .map(|(name, t)| {
            let ty = fleet_type(name).as_str();
            let mut agent = Agent::configure(
                &dir.join(name),
                ca,
                &tokens_from.token(ty),
                ty,
                name,
                freq,
                managers,
                vec![tcp_probe("Target", &t.addr())],
            );
            agent.start();
            agent
        })
        .collect();
    (targets, agents)
}

/// (type, id) of every [`FLEET`] node, for [`transitions`].
pub fn fleet_nodes() -> Vec<(NodeType, String)> {
    FLEET
        .iter()
        .map(|n| (fleet_type(n), n.to_string()))
        .collect()
}

/// Every [`FLEET`] node is OK and without a key mismatch in `view`.
pub fn fleet_ok(view: &Value) -> bool {
    let s = statuses(view);
    FLEET
        .iter()
        .all(|n| s.get(*n).is_some_and(|(st, mm)| st == "OK" && !mm))
}
