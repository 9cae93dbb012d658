//! Load generator: N simulated nodes against one real collector process, with 1 % garbage
//! requests and 1 % replays, for a bounded time. It checks, while it runs, that every
//! valid report is accepted, every garbage request and replay is refused, and that
//! `cluster status` stays correct; it samples the collector's RSS. Exit 1 on any breach.
//!
//! ```sh
//! cargo build --release                       # the collector binary it starts
//! cargo run --release -p sr-collector --example loadgen -- --nodes 10000 --secs 600
//! ```
//!
//! Options: `--nodes N` (10000), `--secs S` (60), `--freq F` seconds between one node's
//! reports (5, the agent default), `--conns C` concurrent requests (64), `--bin PATH` of
//! `status-reporter` (default: `target/release/status-reporter` next to this example).
//!
//! Every node is a `manager` reporting a fixed status: one in a hundred reports `Fail`,
//! the rest `OK`. So the correct view is known at every instant: each node shows what it
//! reports, nobody is stale or key-mismatched, and the manager type (quorum 1) is
//! Degraded. In 1 % of the nodes' slots a garbage request goes out just before the
//! report, in another 1 % a replay: on top of the report, never instead of it. Garbage
//! rotates through a bad signature, no token, a wrong content type, an oversized body,
//! and a correctly signed body that is not JSON (with the sequence number the report
//! then uses: a refused request must not consume it). A replay resends the node's last
//! accepted report byte for byte.
//!
//! `tests/load.rs` runs [`run`] with 200 nodes for 8 s so this tool cannot rot.

use sr_protocol::signing::NodeKey;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The collector launcher the test harness and the benchmark use too.
#[path = "../../tests/harness/launch.rs"]
mod launch;

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub secs: u64,
    pub freq: f64,
    pub conns: usize,
    pub bin: PathBuf,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub valid_sent: u64,
    pub valid_accepted: u64,
    /// Valid reports answered with anything but 200, by status (must be empty).
    pub valid_refused: Vec<(u16, u64)>,
    pub garbage_sent: u64,
    pub garbage_refused: u64,
    pub replays_sent: u64,
    pub replays_refused: u64,
    /// Requests without any HTTP answer (timeouts, resets).
    pub transport_errors: u64,
    /// Requests the driver could not start on schedule (the collector fell behind).
    pub late_starts: u64,
    pub view_checks: u64,
    pub view_failures: Vec<String>,
    pub peak_rss_kib: u64,
    pub collector_exit_ok: bool,
    pub elapsed: Duration,
}

impl Outcome {
    /// Nothing lost, nothing wrongly accepted, the view always right, a clean exit.
    pub fn clean(&self) -> bool {
        self.valid_refused.is_empty()
            && self.garbage_refused == self.garbage_sent
            && self.replays_refused == self.replays_sent
            && self.view_failures.is_empty()
            && self.transport_errors == 0
            && self.collector_exit_ok
            && self.view_checks > 0
    }

    pub fn print(&self, o: &Options) {
        let rate = self.requests as f64 / self.elapsed.as_secs_f64();
        println!("| figure | value |\n|---|---|");
        println!(
            "| nodes / interval / duration | {} / {} s / {:.0} s |",
            o.nodes,
            o.freq,
            self.elapsed.as_secs_f64()
        );
        println!("| requests | {} ({rate:.0}/s) |", self.requests);
        println!(
            "| valid reports accepted | {} of {} |",
            self.valid_accepted, self.valid_sent
        );
        println!("| valid reports refused | {:?} |", self.valid_refused);
        println!(
            "| garbage refused / sent | {} / {} |",
            self.garbage_refused, self.garbage_sent
        );
        println!(
            "| replays refused / sent | {} / {} |",
            self.replays_refused, self.replays_sent
        );
        println!("| transport errors | {} |", self.transport_errors);
        println!(
            "| late starts (driver behind schedule) | {} |",
            self.late_starts
        );
        println!(
            "| cluster-status checks correct | {} of {} |",
            self.view_checks - self.view_failures.len() as u64,
            self.view_checks
        );
        println!(
            "| peak collector RSS | {:.1} MiB |",
            self.peak_rss_kib as f64 / 1024.0
        );
        println!(
            "| collector clean exit on SIGTERM | {} |",
            self.collector_exit_ok
        );
        for f in self.view_failures.iter().take(5) {
            println!("view failure: {f}");
        }
    }
}

/// One simulated node: its key, its sequence, and its last accepted report for replays.
struct SimNode {
    id: String,
    key: NodeKey,
    fail: bool,
    /// The `reporting_freq` it announces: the collector judges staleness by it.
    freq: u32,
    seq: u64,
    last_accepted: Option<(hyper::body::Bytes, String)>,
}

impl SimNode {
    fn path(&self) -> String {
        format!("/api/v3.1/cluster-status/manager/{}", self.id)
    }

    fn body(&self, seq: u64, now_ms: i64) -> Vec<u8> {
        let status = if self.fail { "Fail" } else { "OK" };
        serde_json::to_vec(&serde_json::json!({
            "reporting_freq": self.freq,
            "timestamp": sr_protocol::timestamp::format_legacy(now_ms / 1000).unwrap_or_default(),
            "report": {"status": status, "services": {}},
            "status_reporter": {
                "version": 1, "node_status": status, "node_name": self.id, "private_ip": "10.9.0.1",
                "agent_version": "loadgen", "boot_id": "load-boot", "seq": seq, "facts": {},
            }
        }))
        .expect("a report serializes")
    }

    fn sign(&self, body: &[u8], seq: u64, now_ms: i64) -> String {
        self.key
            .sign("PUT", &self.path(), body, "load-boot", seq, now_ms)
            .to_header()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A small deterministic generator: the mix is reproducible run to run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The collector under load, started through the real CLI in a temp dir.
struct Collector {
    process: launch::CollectorProcess,
    port: u16,
    ca: PathBuf,
    manager_token: String,
    admin_token: String,
}

fn start_collector(bin: &Path, dir: &Path, nodes: usize) -> Collector {
    let pki = launch::Pki::new(dir, "loadgen CA");
    let tokens = launch::init(bin, dir, "127.0.0.1:0", &pki.cert, &pki.key)
        .unwrap_or_else(|e| panic!("{e} (build it with `cargo build --release`)"));
    launch::set_config_key(
        &launch::config_path(dir),
        "max_nodes",
        &(nodes.max(100) * 2).to_string(),
    );
    // The load measures ingest, not admission: the whole fleet may join in one window.
    launch::set_config_key(
        &launch::config_path(dir),
        "new_nodes_per_window",
        &(nodes.max(100) * 2).to_string(),
    );
    let process = launch::CollectorProcess::start(launch::run_command(
        bin,
        dir,
        &dir.join("collector.log"),
        "warn",
    ))
    .expect("collector run starts and prints its address");
    Collector {
        port: process.addr.port(),
        process,
        ca: pki.ca,
        manager_token: tokens["manager"].as_str().unwrap().to_string(),
        admin_token: tokens["admin"].as_str().unwrap().to_string(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Checks the view against what the nodes report; `None` when right.
///
/// `before` and `after` are the nodes accepted at least once when the request left and
/// when the answer came back: each of `before` must be shown, and no more than `after`.
fn check_view(
    v: &serde_json::Value,
    before: &[(String, bool)],
    after: &[(String, bool)],
) -> Option<String> {
    let Some(nodes) = v["services"]["manager"]["nodes"].as_object() else {
        return Some("no manager nodes in the view".into());
    };
    if nodes.len() < before.len() || nodes.len() > after.len() {
        return Some(format!(
            "{} nodes shown, {}..={} had reported",
            nodes.len(),
            before.len(),
            after.len()
        ));
    }
    let reported = before;
    for (id, fail) in reported {
        let Some(n) = nodes
            .get(id)
            .or_else(|| nodes.values().find(|n| n["node_id"] == id.as_str()))
        else {
            return Some(format!("{id} has reported but is not shown"));
        };
        let want = if *fail { "Fail" } else { "OK" };
        if n["status"] != want || n["key_mismatch"] == true {
            return Some(format!("{id}: shown {n}, reports {want}"));
        }
    }
    // Quorum 1 for managers: Degraded while some fail, OK when none does. (The cluster
    // as a whole is Fail: no db or broker node exists in this test.)
    let any_fail = reported.iter().any(|(_, f)| *f);
    let want = if any_fail { "Degraded" } else { "OK" };
    if v["services"]["manager"]["status"] != want {
        return Some(format!(
            "manager status {} but {want} expected",
            v["services"]["manager"]["status"]
        ));
    }
    None
}

pub fn run(o: &Options) -> Outcome {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut col = start_collector(&o.bin, dir.path(), o.nodes);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let client = sr_tls::HttpsClient::new(
        sr_tls::client_config(&col.ca, None).expect("client TLS"),
        Duration::from_secs(10),
    );
    let base = format!("https://localhost:{}", col.port);
    let nodes: Vec<Arc<Mutex<SimNode>>> = (0..o.nodes)
        .map(|i| {
            Arc::new(Mutex::new(SimNode {
                id: format!("load-{i:05}"),
                key: NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().expect("keygen"))
                    .expect("a key"),
                fail: i % 100 == 7,
                freq: o.freq.ceil() as u32,
                seq: 0,
                last_accepted: None,
            }))
        })
        .collect();
    let c = Arc::new(Counters::default());
    let refused: Arc<Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(o.conns));
    let start = Instant::now();
    let pid = col.process.pid();
    let mut out = Outcome::default();
    let (view_checks, view_failures) = rt.block_on(async {
        // The checker: every 5 s, the view must match what the nodes that have been
        // accepted at least once report.
        let checker = {
            let (client, base, admin, nodes) = (
                client.clone(),
                base.clone(),
                col.admin_token.clone(),
                nodes.clone(),
            );
            let secs = o.secs;
            tokio::spawn(async move {
                let (mut checks, mut failures) = (0u64, Vec::new());
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if start.elapsed() >= Duration::from_secs(secs) {
                        break;
                    }
                    let reported: Vec<(String, bool)> = nodes
                        .iter()
                        .filter_map(|n| {
                            let n = n.lock().unwrap();
                            n.last_accepted.as_ref().map(|_| (n.id.clone(), n.fail))
                        })
                        .collect();
                    if reported.is_empty() {
                        continue;
                    }
                    let r = client
                        .get(
                            &format!("{base}/api/v3.1/cluster-status"),
                            &[(sr_protocol::TOKEN_HEADER, &admin)],
                            Duration::from_secs(30),
                            64 << 20,
                        )
                        .await;
                    checks += 1;
                    // A node accepted after the snapshot may show as well: the list is
                    // taken again when the answer is back.
                    match r {
                        Ok(r) if r.status == 200 => {
                            let v: serde_json::Value =
                                serde_json::from_slice(&r.body).unwrap_or_default();
                            let after: Vec<(String, bool)> = nodes
                                .iter()
                                .filter_map(|n| {
                                    let n = n.lock().unwrap();
                                    n.last_accepted.as_ref().map(|_| (n.id.clone(), n.fail))
                                })
                                .collect();
                            if let Some(e) = check_view(&v, &reported, &after) {
                                failures.push(format!(
                                    "at {:.0} s: {e}",
                                    start.elapsed().as_secs_f64()
                                ));
                            }
                        }
                        Ok(r) => failures.push(format!("cluster status answered {}", r.status)),
                        Err(e) => failures.push(format!("cluster status: {e}")),
                    }
                }
                (checks, failures)
            })
        };
        // The driver: node i is due at i/N of every interval.
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let per_request = Duration::from_secs_f64(o.freq / o.nodes as f64);
        let mut due = Instant::now();
        let mut k: u64 = 0;
        let mut tasks = tokio::task::JoinSet::new();
        while start.elapsed() < Duration::from_secs(o.secs) {
            tokio::time::sleep_until(due.into()).await;
            due += per_request;
            let permit = match Arc::clone(&sem).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    c.late.fetch_add(1, Ordering::Relaxed);
                    Arc::clone(&sem)
                        .acquire_owned()
                        .await
                        .expect("the semaphore stays open")
                }
            };
            let node = Arc::clone(&nodes[(k % o.nodes as u64) as usize]);
            k += 1;
            let roll = rng.next() % 100;
            let (client, base, token, c, refused) = (
                client.clone(),
                base.clone(),
                col.manager_token.clone(),
                Arc::clone(&c),
                Arc::clone(&refused),
            );
            let garbage_kind = rng.next() % 5;
            tasks.spawn(async move {
                let _permit = permit;
                // Garbage and replays come on top of the node's report, never instead of
                // it: a node that skipped its slot three times would rightly go stale.
                if roll < 2 {
                    send_one(
                        &client,
                        &base,
                        &token,
                        &node,
                        roll,
                        garbage_kind,
                        &c,
                        &refused,
                    )
                    .await;
                }
                send_one(&client, &base, &token, &node, VALID, 0, &c, &refused).await;
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        checker.await.expect("the checker runs")
    });
    out.elapsed = start.elapsed();
    out.peak_rss_kib = rss_kib(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    out.collector_exit_ok = col
        .process
        .child
        .wait()
        .map(|s| s.success())
        .unwrap_or(false);
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.requests = g(&c.requests);
    out.valid_sent = g(&c.valid_sent);
    out.valid_accepted = g(&c.valid_accepted);
    out.valid_refused = refused
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    out.garbage_sent = g(&c.garbage_sent);
    out.garbage_refused = g(&c.garbage_refused);
    out.replays_sent = g(&c.replays_sent);
    out.replays_refused = g(&c.replays_refused);
    out.transport_errors = g(&c.transport);
    out.late_starts = g(&c.late);
    out.view_checks = view_checks;
    out.view_failures = view_failures;
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    for t in [&col.manager_token, &col.admin_token] {
        assert!(!log.contains(t.as_str()), "a token in the collector log");
    }
    assert!(!log.contains("panicked"), "the collector panicked:\n{log}");
    out
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    valid_sent: AtomicU64,
    valid_accepted: AtomicU64,
    garbage_sent: AtomicU64,
    garbage_refused: AtomicU64,
    replays_sent: AtomicU64,
    replays_refused: AtomicU64,
    transport: AtomicU64,
    late: AtomicU64,
}

/// `send_one`'s roll for the node's next valid report.
const VALID: u64 = 99;

/// Sends one request for `node`: a replay (roll 0), garbage (roll 1) or its next report.
#[allow(clippy::too_many_arguments)]
async fn send_one(
    client: &sr_tls::HttpsClient,
    base: &str,
    token: &str,
    node: &Mutex<SimNode>,
    roll: u64,
    garbage_kind: u64,
    c: &Counters,
    refused: &Mutex<std::collections::BTreeMap<u16, u64>>,
) {
    enum Kind {
        Valid(u64),
        Garbage,
        Replay,
    }
    let now = now_ms();
    let (kind, path, body, sig, ctype, tok) = {
        let mut n = node.lock().unwrap();
        let path = n.path();
        match (roll, n.last_accepted.clone()) {
            // No accepted report yet: nothing to replay.
            (0, None) => return,
            (0, Some((body, sig))) => (
                Kind::Replay,
                path,
                body,
                sig,
                "application/json",
                token.to_string(),
            ),
            (1, _) => {
                // The next seq, not consumed: a refused request must not advance anything.
                let seq = n.seq + 1;
                let good = n.body(seq, now);
                let sig = n.sign(&good, seq, now);
                let (body, sig, ctype, tok) = match garbage_kind {
                    0 => (
                        good,
                        sig.replace("sig=", "sig=AAAA"),
                        "application/json",
                        token.to_string(),
                    ),
                    1 => (good, sig, "application/json", String::new()),
                    2 => (good, sig, "text/plain", token.to_string()),
                    3 => {
                        let big = vec![b' '; 1 << 20];
                        let s = n.sign(&big, seq, now);
                        (big, s, "application/json", token.to_string())
                    }
                    _ => {
                        let junk = b"{\"reporting_freq\": [not json".to_vec();
                        let s = n.sign(&junk, seq, now);
                        (junk, s, "application/json", token.to_string())
                    }
                };
                (
                    Kind::Garbage,
                    path,
                    hyper::body::Bytes::from(body),
                    sig,
                    ctype,
                    tok,
                )
            }
            _ => {
                n.seq += 1;
                let seq = n.seq;
                let body = n.body(seq, now);
                let sig = n.sign(&body, seq, now);
                (
                    Kind::Valid(seq),
                    path,
                    hyper::body::Bytes::from(body),
                    sig,
                    "application/json",
                    token.to_string(),
                )
            }
        }
    };
    let mut headers = vec![
        ("Content-Type", ctype),
        (sr_protocol::SIGNATURE_HEADER, sig.as_str()),
    ];
    if !tok.is_empty() {
        headers.push((sr_protocol::TOKEN_HEADER, tok.as_str()));
    }
    c.requests.fetch_add(1, Ordering::Relaxed);
    match &kind {
        Kind::Valid(_) => c.valid_sent.fetch_add(1, Ordering::Relaxed),
        Kind::Garbage => c.garbage_sent.fetch_add(1, Ordering::Relaxed),
        Kind::Replay => c.replays_sent.fetch_add(1, Ordering::Relaxed),
    };
    let r = client
        .request(
            http::Method::PUT,
            &format!("{base}{path}"),
            &headers,
            body.clone(),
            Duration::from_secs(30),
            1 << 16,
        )
        .await;
    let status = match r {
        Ok(r) => r.status.as_u16(),
        Err(_) => {
            c.transport.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    match kind {
        Kind::Valid(seq) if status == 200 => {
            c.valid_accepted.fetch_add(1, Ordering::Relaxed);
            let mut n = node.lock().unwrap();
            if n.seq == seq {
                n.last_accepted = Some((body, sig));
            }
        }
        Kind::Valid(_) => *refused.lock().unwrap().entry(status).or_default() += 1,
        Kind::Garbage if status >= 400 => {
            c.garbage_refused.fetch_add(1, Ordering::Relaxed);
        }
        Kind::Replay if status == 409 => {
            c.replays_refused.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[allow(dead_code)] // `tests/load.rs` includes this file for `run` only.
fn main() {
    let default_bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("status-reporter")))
        .unwrap_or_else(|| PathBuf::from("target/release/status-reporter"));
    let o = Options {
        nodes: arg("--nodes").map_or(10_000, |v| v.parse().expect("--nodes N")),
        secs: arg("--secs").map_or(60, |v| v.parse().expect("--secs S")),
        freq: arg("--freq").map_or(5.0, |v| v.parse().expect("--freq F")),
        conns: arg("--conns").map_or(64, |v| v.parse().expect("--conns C")),
        bin: arg("--bin").map_or(default_bin, PathBuf::from),
    };
    eprintln!("loadgen: {o:?}");
    let out = run(&o);
    out.print(&o);
    std::process::exit(if out.clean() { 0 } else { 1 });
}
