//! Ingest benchmark: N nodes send signed reports over TLS keep-alive to one collector.
//!
//! Run: `cargo run --release -p sr-collector --bin collector-bench -- [--nodes 10000]
//! [--rounds 3] [--conns 64]`. It prints a Markdown table (see BENCHMARKS.md).
//! `-- --micro` instead times the hot steps alone, in process: Ed25519 verification as
//! ingest does it, the store's durable first-contact pins and its write-behind of
//! 10,000 latest rows; verification is timed with ring and with ed25519-dalek (the
//! product's verifier), interleaved.
//!
//! Method: the collector runs in a child process (this binary with `--serve-collector`) so
//! its RSS is its own; the driver pre-signs every report (signing is the agents' cost, not
//! the collector's), then `--conns` HTTP/1.1 keep-alive TLS connections send them as fast as
//! the collector answers. Round 1 is first contact (every node's key is pinned durably
//! before its 200); later rounds are steady state. The same steady-state load is then sent
//! to a bare hyper + rustls server (`--serve-bare`) that reads the body and answers 200, and
//! the ratio of the two rates is reported. Roll-up time is measured twice: in-process on
//! 10,000 synthetic records (pure compute) and end to end as `GET /cluster-status`.
//! CPU time of the collector (or bare server) process and of this driver is read from
//! `/proc/<pid>/stat` around every round, to show which side uses the shared cores.
//!
//! `--idle-secs N` adds the collector's CPU over N seconds at rest after the rounds (every
//! node held, nothing received): with `COLLECTOR_BENCH_STORE`, the shared store's own cost.
//!
//! `--count` counts instructions instead of timing ([`count`]): the collector and the bare
//! server each run under `valgrind --tool=callgrind`, and one steady round is counted.
//!
//! `--operator` adds what the operator's side costs at the same node count ([`Operator`]):
//! `GET /metrics` alone and beside an ingest round, and the event stream with
//! `--watchers` (default 100) SSE clients while a round of reports each stores a transition,
//! and the status page: one page load (`/`, its script and stylesheet) and the view fetch
//! the page makes per burst of events, alone and back to back beside an ingest round.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sr_collector::rollup::{rollup, LatestReport, NodeInput, NodeRecord, Policy};
use sr_collector::store::{Role, Store};
use sr_collector::Config;
use sr_protocol::signing::NodeKey;
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

// `--tier2`: a tier-2 collector's summary ingest (issue 16).
#[path = "bench/tier2.rs"]
mod tier2;

// The collector launcher the test harness and the load generator use too.
#[path = "../../../tests/harness/launch.rs"]
mod launch;

// `--count`: instructions per report under callgrind.
#[path = "bench/count.rs"]
mod count;

// `--view-stages`: the cost of one view, stage by stage, in process.
#[path = "bench/view.rs"]
mod view;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-collector") {
        return serve_collector(Path::new(&args[i + 1]));
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-bare") {
        return serve_bare(Path::new(&args[i + 1]));
    }
    sr_tls::install_default_provider();
    if args.iter().any(|a| a == "--micro") {
        return micro();
    }
    if args.iter().any(|a| a == "--count") {
        return count::run(arg("--nodes", 2_000), arg("--conns", 4));
    }
    if args.iter().any(|a| a == "--view-stages") {
        view::run(arg("--nodes", 10_000));
        return Ok(());
    }
    if args.iter().any(|a| a == "--tier2") {
        let dir = std::env::temp_dir().join(format!("collector-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let result = tier2::drive(
            &dir,
            arg("--clusters", 100),
            arg("--nodes-per-cluster", 100),
            arg("--rounds", 5).max(2),
            arg("--conns", 16),
        );
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    let nodes = arg("--nodes", 10_000);
    let rounds = arg("--rounds", 3).max(2);
    let conns = arg("--conns", 64);
    let dir = std::env::temp_dir().join(format!("collector-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = drive(&dir, nodes, rounds, conns);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `ca.pem`, `cert.pem` and `key.pem` in `dir`, where [`collector_config`] reads them.
fn pki(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    launch::Pki::new(dir, "bench CA");
    Ok(())
}

fn collector_config(dir: &Path) -> Config {
    let mut cfg = Config::new(dir.join("state"), dir.join("cert.pem"), dir.join("key.pem"));
    cfg.listen = "127.0.0.1:0".parse().expect("valid address");
    // The benchmark measures ingest, not admission: every node may join in one window.
    cfg.new_nodes_per_window = cfg.max_nodes;
    if dir.join(tier2::MARKER).exists() {
        cfg.fleet = Some(sr_collector::tier2::config::FleetConfig {
            unreachable_after: Duration::from_secs(30),
            max_clusters: 100_000,
            max_summary_bytes: sr_protocol::summary::DEFAULT_MAX_SUMMARY_BYTES,
            heal: None,
        });
    }
    // `COLLECTOR_BENCH_STORE=FILE`: a `[store]` table (a shared PostgreSQL store) for the
    // collector under test, to compare ingest with and without it (BENCHMARKS.md).
    if let Ok(file) = std::env::var("COLLECTOR_BENCH_STORE") {
        let table = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("COLLECTOR_BENCH_STORE={file}: {e}"));
        let parsed = Config::from_toml(&format!("state_dir = \"/\"\nplain_http = true\n{table}"))
            .unwrap_or_else(|e| panic!("COLLECTOR_BENCH_STORE={file}: {e}"));
        cfg.store = parsed.store;
    }
    cfg
}

fn serve_collector(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // `COLLECTOR_BENCH_VERIFIER=ring`: the collector under test verifies with ring, to
    // compare it with the product's verifier (dalek) in one build.
    if std::env::var("COLLECTOR_BENCH_VERIFIER").as_deref() == Ok("ring") {
        sr_protocol::signing::set_verifier(sr_protocol::signing::Verifier::Ring);
    }
    let cfg = collector_config(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        // Runs until the driver kills it: the benchmark measures ingest, not shutdown.
        sr_collector::serve(cfg, listener, std::future::pending()).await?;
        Ok(())
    })
}

fn serve_bare(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(sr_tls::server_config(
        &dir.join("cert.pem"),
        &dir.join("key.pem"),
    )?));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from_static(
                            b"{}",
                        ))))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// This binary in `--serve-collector` or `--serve-bare` mode; killed on drop.
struct Child {
    server: launch::CollectorProcess,
    addr: std::net::SocketAddr,
}

impl Child {
    fn spawn(mode: &str, dir: &Path) -> Result<Child, Box<dyn std::error::Error>> {
        Child::spawn_with(
            std::process::Command::new(std::env::current_exe()?),
            mode,
            dir,
        )
    }

    /// This binary in `mode`, run by `cmd` (the binary itself, or a wrapper such as
    /// valgrind whose last argument is the binary).
    fn spawn_with(
        mut cmd: std::process::Command,
        mode: &str,
        dir: &Path,
    ) -> Result<Child, Box<dyn std::error::Error>> {
        cmd.args([mode, &dir.display().to_string()])
            .env("STATUS_REPORTER_LOG", "warn");
        let server = launch::CollectorProcess::start(cmd)?;
        Ok(Child {
            addr: server.addr,
            server,
        })
    }

    /// Resident and peak resident memory, in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }
}

/// One pre-signed request.
struct Prepared {
    path: String,
    signature: String,
    body: Bytes,
}

fn prepare(keys: &[NodeKey], round: u64) -> Vec<Prepared> {
    prepare_with(keys, round, false)
}

/// `transition`: each report is Degraded and carries one transition (OK -> Degraded), so
/// that it stores one event for the stream.
fn prepare_with(keys: &[NodeKey], round: u64, transition: bool) -> Vec<Prepared> {
    prepare_from(keys, 0, round, transition)
}

/// [`prepare_with`] for the keys of nodes `first..` (`keys[0]` is node `first`).
fn prepare_from(keys: &[NodeKey], first: usize, round: u64, transition: bool) -> Vec<Prepared> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    // `--view-shape skew`: every reporter's clock 10 s behind the collector's, so every
    // row of the view carries a `clock_skew` reason (issue 17: the view's two shapes).
    let now = match view_shape() {
        Some(ViewShape::Skew) => now - Duration::from_secs(10),
        _ => now,
    };
    let ts = sr_protocol::timestamp::format_legacy(now.as_secs() as i64).expect("valid time");
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let i = first + i;
            let node_type = NodeType::ALL[i % 3];
            let path = sr_protocol::report_path(node_type, &format!("n{i}"));
            let mut doc = serde_json::json!({
                "reporting_freq": 60,
                "timestamp": ts,
                "report": {"status": "OK", "services": {"Service": {"status": "Active", "extra_info": {}}}},
                "status_reporter": {"version": 1, "node_status": "OK", "node_name": format!("node{i}"),
                    "private_ip": "10.1.2.3", "agent_version": "bench", "boot_id": "bench-boot", "seq": round}
            });
            if transition {
                let ext = &mut doc["status_reporter"];
                ext["node_status"] = "Degraded".into();
                ext["transitions"] = serde_json::json!([{"seq": round,
                    "at_ms": now.as_millis() as i64, "from": "OK", "to": "Degraded"}]);
            }
            let body = serde_json::to_vec(&doc).expect("JSON serialises");
            let env = key.sign("PUT", &path, &body, "bench-boot", round, now.as_millis() as i64);
            Prepared { path, signature: env.to_header(), body: body.into() }
        })
        .collect()
}

/// `--view-shape skew|plain`: which shape the view under test has, chosen instead of left
/// to timing. Without it, the later rounds are signed before the rounds start and carry a
/// `clock_skew` reason when they reach the collector more than 2 s later, else none.
#[derive(Clone, Copy, PartialEq)]
enum ViewShape {
    /// Every report signed 10 s behind: every row has a `clock_skew` reason.
    Skew,
    /// Each round signed just before it is sent, 1,000 reports at a time (a whole round
    /// takes over 2 s on a loaded machine): no row has a reason. The steady rounds' figures
    /// are then per 1,000 reports.
    Plain,
}

fn view_shape() -> Option<ViewShape> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--view-shape")?;
    match args.get(i + 1).map(String::as_str) {
        Some("skew") => Some(ViewShape::Skew),
        Some("plain") => Some(ViewShape::Plain),
        _ => panic!("--view-shape takes skew or plain"),
    }
}

struct RunStats {
    reports_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    /// CPU seconds per 1,000 requests: the server process, and this driver.
    server_cpu_ms_per_k: f64,
    driver_cpu_ms_per_k: f64,
    /// CPU used by both processes over the wall time, in cores (this machine has 2).
    cores_busy: f64,
}

/// User + system CPU seconds of a whole process (all threads), from `/proc/<pid>/stat`.
/// Linux reports these in USER_HZ ticks, 100 per second on x86_64.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// CPU time of every thread of a process so far, in ns (`/proc/<pid>/task/*/schedstat`:
/// nanosecond resolution, where `stat`'s ticks are 10 ms).
fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Sends every prepared request once over `conns` keep-alive HTTP/1.1 TLS connections.
async fn run_load(
    server_pid: u32,
    addr: std::net::SocketAddr,
    ca: &Path,
    tokens: &[String; 3],
    reqs: Arc<Vec<Prepared>>,
    conns: usize,
) -> RunStats {
    let mut tls = sr_tls::client_config(ca, None).expect("CA loads");
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server_pid = server_pid.to_string();
    let (server_cpu0, driver_cpu0) = (cpu_secs(&server_pid), cpu_secs("self"));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (connector, reqs, next, tokens) = (
            connector.clone(),
            reqs.clone(),
            next.clone(),
            tokens.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("valid name");
            let stream = connector.connect(name, tcp).await.expect("TLS handshake");
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("HTTP handshake");
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(r) = reqs.get(i) else { break };
                let req = http::Request::put(&r.path)
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .header(sr_protocol::TOKEN_HEADER, &tokens[i % 3])
                    .header(sr_protocol::SIGNATURE_HEADER, &r.signature)
                    .body(Full::new(r.body.clone()))
                    .expect("valid request");
                let t0 = Instant::now();
                match send.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == 200;
                        let _ = resp.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                lat.push(t0.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("load task");
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    let server_cpu = cpu_secs(&server_pid) - server_cpu0;
    let driver_cpu = cpu_secs("self") - driver_cpu0;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    RunStats {
        reports_per_s: reqs.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        server_cpu_ms_per_k: server_cpu * 1e6 / reqs.len() as f64,
        driver_cpu_ms_per_k: driver_cpu * 1e6 / reqs.len() as f64,
        cores_busy: (server_cpu + driver_cpu) / elapsed.as_secs_f64(),
    }
}

/// Pure roll-up time for `n` synthetic fresh records, spread over the three types.
fn rollup_time(n: usize) -> Duration {
    let body = sr_protocol::report::ReportBody::decode(
        br#"{"reporting_freq":60,"timestamp":"20261122160000+0000","report":{"status":"OK","services":{"Service":{"status":"Active","extra_info":{}}}}}"#,
    )
    .expect("valid body")
    .body;
    let now = 1_800_000_000_000;
    let records: Vec<NodeRecord> = (0..n)
        .map(|i| NodeRecord {
            node_type: NodeType::ALL[i % 3],
            node_id: format!("n{i}"),
            name: format!("node{i}"),
            private_ip: Some("10.1.2.3".into()),
            key_mismatch: false,
            latest: Some(Arc::new(LatestReport {
                body: body.clone(),
                received_ms: now - 1000,
                skew_ms: 0,
                signed: true,
            })),
            status_changes_ms: Vec::new(),
        })
        .collect();
    let policy = Policy::default();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let mut inputs: Vec<NodeInput> = records
            .iter()
            .map(|r| NodeInput::from_record(r, now, &policy))
            .collect();
        inputs.sort_by_key(|n| n.node_type);
        let view = rollup(&inputs, now, &policy);
        std::hint::black_box(&view);
        best = best.min(t0.elapsed());
    }
    best
}

/// What every mode that drives a collector prepares before its first request.
struct Setup {
    /// Reporter tokens for manager, db and broker nodes.
    tokens: [String; 3],
    admin: String,
    keys: Vec<NodeKey>,
    /// Round `r` (from 1) is `rounds_prepared[r - 1]`.
    rounds_prepared: Vec<Arc<Vec<Prepared>>>,
    ca: PathBuf,
}

impl Setup {
    /// PKI and tokens in `dir`, `nodes` keys and `rounds` rounds of signed reports.
    fn new(dir: &Path, nodes: usize, rounds: usize) -> Result<Setup, Box<dyn std::error::Error>> {
        pki(dir)?;
        let store = Store::open(&collector_config(dir).state_dir)?;
        let tokens = [
            store.create_token(Role::Manager)?,
            store.create_token(Role::Db)?,
            store.create_token(Role::Broker)?,
        ];
        let admin = store.create_token(Role::Admin)?;
        drop(store);
        eprintln!("generating {nodes} node keys and {rounds} rounds of signed reports...");
        let keys: Vec<NodeKey> = (0..nodes)
            .map(|_| NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().expect("keygen")).expect("key"))
            .collect();
        let rounds_prepared = (1..=rounds as u64)
            .map(|r| Arc::new(prepare(&keys, r)))
            .collect();
        Ok(Setup {
            tokens,
            admin,
            keys,
            rounds_prepared,
            ca: dir.join("ca.pem"),
        })
    }
}

fn drive(
    dir: &Path,
    nodes: usize,
    rounds: usize,
    conns: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let Setup {
        tokens,
        admin,
        keys,
        rounds_prepared,
        ca,
    } = Setup::new(dir, nodes, rounds)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // `--server-bin PATH`: the collector under test is that build's (an earlier one, to
    // compare with in one run); this binary still drives it.
    let args: Vec<String> = std::env::args().collect();
    let collector = match args.iter().position(|a| a == "--server-bin") {
        Some(i) => Child::spawn_with(
            std::process::Command::new(args.get(i + 1).ok_or("--server-bin takes a path")?),
            "--serve-collector",
            dir,
        )?,
        None => Child::spawn("--serve-collector", dir)?,
    };
    let mut steady = Vec::new();
    let first = rt.block_on(run_load(
        collector.server.pid(),
        collector.addr,
        &ca,
        &tokens,
        rounds_prepared[0].clone(),
        conns,
    ));
    for (i, r) in rounds_prepared[1..].iter().enumerate() {
        if view_shape() == Some(ViewShape::Plain) {
            for first in (0..keys.len()).step_by(1000) {
                let end = (first + 1000).min(keys.len());
                let chunk = prepare_from(&keys[first..end], first, i as u64 + 2, false);
                steady.push(rt.block_on(run_load(
                    collector.server.pid(),
                    collector.addr,
                    &ca,
                    &tokens,
                    Arc::new(chunk),
                    conns,
                )));
            }
            continue;
        }
        steady.push(rt.block_on(run_load(
            collector.server.pid(),
            collector.addr,
            &ca,
            &tokens,
            r.clone(),
            conns,
        )));
    }
    let (rss, hwm) = collector.rss_mib();
    let client =
        sr_tls::HttpsClient::new(sr_tls::client_config(&ca, None)?, Duration::from_secs(5));
    let url = format!(
        "https://localhost:{}/api/v3.1/cluster-status",
        collector.addr.port()
    );
    // GET /cluster-status: a cold one 0.3 s after the load (the view computed for it; the
    // cache keeps a view at most 100 ms), then three back to back (served from the cached
    // bytes), then three asking for gzip; each (ms, bytes).
    let get = |extra: &[(&str, &str)]| -> Result<(f64, usize), Box<dyn std::error::Error>> {
        let mut headers = vec![(sr_protocol::TOKEN_HEADER, admin.as_str())];
        headers.extend_from_slice(extra);
        let t0 = Instant::now();
        let resp = rt.block_on(client.get(&url, &headers, Duration::from_secs(60), 256 << 20))?;
        assert_eq!(resp.status, 200, "cluster-status failed");
        Ok((t0.elapsed().as_secs_f64() * 1000.0, resp.body.len()))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (cold_ms, view_bytes) = get(&[])?;
    let mut get_ms = f64::MAX;
    for _ in 0..3 {
        get_ms = get_ms.min(get(&[])?.0);
    }
    let (mut gzip_ms, mut gzip_bytes) = (f64::MAX, 0);
    for _ in 0..3 {
        let (ms, bytes) = get(&[("accept-encoding", "gzip")])?;
        (gzip_ms, gzip_bytes) = (gzip_ms.min(ms), bytes);
    }
    // The first GET after one report (issue 17): one node reports (a change counted), then
    // the view is fetched at once, so it is computed for that GET; 5 times, the median.
    let (mut after_one, mut after_one_cpu) = (Vec::new(), Vec::new());
    let server_pid = collector.server.pid().to_string();
    for r in 1..=5u64 {
        let one = Arc::new(prepare(&keys[..1], rounds as u64 + r));
        let s = rt.block_on(run_load(
            collector.server.pid(),
            collector.addr,
            &ca,
            &tokens,
            one,
            1,
        ));
        assert_eq!(s.errors, 0, "the one report was refused");
        let cpu0 = cpu_ns(&server_pid);
        after_one.push(get(&[])?.0);
        after_one_cpu.push((cpu_ns(&server_pid) - cpu0) as f64 / 1e6);
    }
    let after_one_ms = median(after_one);
    let after_one_cpu_ms = median(after_one_cpu);
    let (rss_after, hwm_after) = collector.rss_mib();
    // `--idle-secs N`: the collector's CPU while it holds every node and receives nothing,
    // which is what the shared store's sync task and the write-behind's reloads cost alone.
    let idle_secs = arg("--idle-secs", 0);
    let idle = (idle_secs > 0).then(|| {
        let pid = collector.server.pid().to_string();
        let before = cpu_secs(&pid);
        std::thread::sleep(Duration::from_secs(idle_secs as u64));
        (cpu_secs(&pid) - before) * 1000.0 / idle_secs as f64
    });
    let operator = std::env::args().any(|a| a == "--operator").then(|| {
        let best = steady.iter().map(|s| s.reports_per_s).fold(0.0, f64::max);
        let o = Operator {
            rt: &rt,
            collector: &collector,
            ca: &ca,
            admin: &admin,
            tokens: &tokens,
            keys: &keys,
            conns,
            // Node 0 sent rounds + 1 ..= rounds + 5 above.
            next_round: rounds as u64 + 6,
        };
        o.figures(best)
    });
    drop(collector);

    let bare = Child::spawn("--serve-bare", dir)?;
    let bare_stats = rt.block_on(run_load(
        bare.server.pid(),
        bare.addr,
        &ca,
        &tokens,
        rounds_prepared[1].clone(),
        conns,
    ));
    drop(bare);

    let pure = rollup_time(10_000);
    let best = steady
        .iter()
        .max_by(|a, b| a.reports_per_s.total_cmp(&b.reports_per_s))
        .expect("at least one steady round");
    let errors: usize = first.errors + steady.iter().map(|s| s.errors).sum::<usize>();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| nodes / rounds / connections | {nodes} / {rounds} / {conns} |");
    let cpu = |s: &RunStats| {
        format!(
            "CPU per report: server {:.0} µs, driver {:.0} µs; {:.2} cores busy",
            s.server_cpu_ms_per_k, s.driver_cpu_ms_per_k, s.cores_busy
        )
    };
    println!("| first contact (pin committed before 200), reports/s | {:.0} (p50 {:.2} ms, p99 {:.2} ms; {}) |", first.reports_per_s, first.p50_ms, first.p99_ms, cpu(&first));
    for (i, s) in steady.iter().enumerate() {
        println!(
            "| steady round {}, verified reports/s | {:.0} (p50 {:.2} ms, p99 {:.2} ms; {}) |",
            i + 2,
            s.reports_per_s,
            s.p50_ms,
            s.p99_ms,
            cpu(s)
        );
    }
    println!(
        "| bare hyper+rustls 200 server, reports/s | {:.0} (p50 {:.2} ms, p99 {:.2} ms; {}) |",
        bare_stats.reports_per_s,
        bare_stats.p50_ms,
        bare_stats.p99_ms,
        cpu(&bare_stats)
    );
    println!(
        "| ratio collector / bare (best steady round) | {:.2} |",
        best.reports_per_s / bare_stats.reports_per_s
    );
    println!("| collector RSS after load (peak) | {rss:.1} MiB ({hwm:.1} MiB) |");
    println!(
        "| roll-up of 10,000 nodes, in process (best of 5) | {:.1} ms |",
        pure.as_secs_f64() * 1000.0
    );
    println!("| GET /cluster-status, {nodes} nodes, end to end, cold (view computed for it) | {cold_ms:.1} ms ({:.1} MB JSON) |", view_bytes as f64 / 1e6);
    println!("| GET /cluster-status, {nodes} nodes, end to end, back to back (best of 3) | {get_ms:.1} ms |");
    println!("| GET /cluster-status, {nodes} nodes, end to end, first GET after one report (median of 5) | {after_one_ms:.1} ms, collector CPU {after_one_cpu_ms:.1} ms (RSS then {rss_after:.1} MiB, peak {hwm_after:.1}) |");
    println!(
        "| the same with Accept-Encoding: gzip (best of 3) | {gzip_ms:.1} ms ({:.2} MB gzip) |",
        gzip_bytes as f64 / 1e6
    );
    println!("| non-200 answers | {errors} |");
    if let Some(ms) = idle {
        println!("| collector CPU at rest after the rounds, {nodes} nodes held, {idle_secs} s | {ms:.1} ms per s |");
    }
    if let Some(rows) = operator {
        println!("\n| operator side, beside ingest | value |\n|---|---|");
        for r in rows {
            println!("{r}");
        }
    }
    Ok(())
}

/// `--micro`: the two hot steps of ingest, timed alone in this process.
fn micro() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 2_000;
    let keys: Vec<NodeKey> = (0..N)
        .map(|_| NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().expect("keygen")).expect("key"))
        .collect();
    let reqs = prepare(&keys, 1);
    let envs: Vec<sr_protocol::signing::SignedEnvelope> = reqs
        .iter()
        .map(|r| sr_protocol::signing::SignedEnvelope::parse_header(&r.signature).expect("header"))
        .collect();
    // Verification exactly as ingest calls it, with each verifier.
    use sr_protocol::signing::{set_verifier, Verifier};
    let (envs, reqs) = (&envs, &reqs);
    let verify = |v: Verifier| {
        move |i: usize| {
            set_verifier(v);
            envs[i].verify("PUT", &reqs[i].path, &reqs[i].body).is_ok()
        }
    };
    let time_us = |f: &dyn Fn(usize) -> bool| {
        let t0 = Instant::now();
        for i in 0..N {
            assert!(f(i), "a genuine signature failed to verify");
        }
        t0.elapsed().as_secs_f64() * 1e6 / N as f64
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Interleaved, five times each, so background load hits both verifiers alike; the
    // median is kept.
    let (mut ring_us, mut dalek_us) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ring_us.push(time_us(&verify(Verifier::Ring)));
        dalek_us.push(time_us(&verify(Verifier::Dalek)));
    }
    set_verifier(Verifier::Dalek);
    let (ring_us, dalek_us) = (median(&mut ring_us), median(&mut dalek_us));
    #[cfg(target_arch = "x86_64")]
    let ifma = std::arch::is_x86_feature_detected!("avx512ifma");
    #[cfg(not(target_arch = "x86_64"))]
    let ifma = false;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| one verify (`SignedEnvelope::verify`), ring 0.17 (median of 5 × {N}) | {ring_us:.1} µs |");
    println!("| one verify, ed25519-dalek 3, the product's (median of 5 × {N}; CPU has AVX-512 IFMA: {ifma}) | {dalek_us:.1} µs |");
    println!("| ring time / dalek time | {:.2} |", ring_us / dalek_us);

    // Write-behind: 10,000 pinned nodes, their latest rows written as one flush would.
    let dir = std::env::temp_dir().join(format!("collector-bench-micro-{}", std::process::id()));
    let mut store = Store::open(&dir)?;
    const ROWS: usize = 10_000;
    let pins: Vec<sr_collector::store::DurableWrite> = (0..ROWS)
        .map(|i| sr_collector::store::DurableWrite::Pin {
            node_type: NodeType::ALL[i % 3],
            node_id: format!("n{i}"),
            name: format!("node{i}"),
            key: Some(format!("key{i}")),
            private_ip: Some("10.1.2.3".into()),
            at_ms: 1,
        })
        .collect();
    let t0 = Instant::now();
    for chunk in pins.chunks(500) {
        store.commit_durable(chunk)?;
    }
    let pin_us = t0.elapsed().as_secs_f64() * 1e6 / ROWS as f64;
    let body = reqs[0].body.to_vec();
    let mut flush_us = Vec::new();
    for round in 1..=5u64 {
        let rows: Vec<sr_collector::store::LatestRow> = (0..ROWS)
            .map(|i| sr_collector::store::LatestRow {
                node_type: NodeType::ALL[i % 3],
                node_id: format!("n{i}"),
                name: format!("node{i}"),
                private_ip: Some("10.1.2.3".into()),
                received_ms: round as i64,
                skew_ms: 0,
                signed: true,
                body: body.clone(),
                boot_id: Some("bench-boot".into()),
                seq: round,
            })
            .collect();
        let t0 = Instant::now();
        store.write_latest(&rows)?;
        flush_us.push(t0.elapsed().as_secs_f64() * 1e6 / ROWS as f64);
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    println!("| first-contact pin, durable, batches of 500 | {pin_us:.1} µs per node |");
    println!(
        "| write-behind of {ROWS} latest rows (median of 5 flushes) | {:.1} µs per row |",
        median(&mut flush_us)
    );
    Ok(())
}

/// `--operator`: `/metrics` and the event stream at the benchmark's node count.
struct Operator<'a> {
    rt: &'a tokio::runtime::Runtime,
    collector: &'a Child,
    ca: &'a Path,
    admin: &'a str,
    tokens: &'a [String; 3],
    keys: &'a [NodeKey],
    conns: usize,
    next_round: u64,
}

/// What one SSE client has read.
#[derive(Default)]
struct WatchCount {
    events: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * 0.99) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

impl Operator<'_> {
    fn pid(&self) -> String {
        self.collector.server.pid().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.collector.addr.port())
    }

    fn client(&self) -> sr_tls::HttpsClient {
        sr_tls::HttpsClient::new(
            sr_tls::client_config(self.ca, None).expect("CA loads"),
            Duration::from_secs(5),
        )
    }

    /// One `GET /metrics`: (latency, bytes).
    async fn scrape(&self, client: &sr_tls::HttpsClient) -> (Duration, usize) {
        self.fetch(client, "/metrics").await
    }

    /// One reader's `GET path`: (latency, bytes).
    async fn fetch(&self, client: &sr_tls::HttpsClient, path: &str) -> (Duration, usize) {
        let t0 = Instant::now();
        let resp = client
            .get(
                &self.url(path),
                &[(sr_protocol::TOKEN_HEADER, self.admin)],
                Duration::from_secs(60),
                256 << 20,
            )
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status, 200, "GET {path}");
        (t0.elapsed(), resp.body.len())
    }

    /// `GET path` back to back while one steady ingest round runs: the round's figures and
    /// the latencies (ms).
    fn back_to_back(&mut self, client: &sr_tls::HttpsClient, path: &str) -> (RunStats, Vec<f64>) {
        let reqs = self.round(false);
        self.rt.block_on(async {
            let load = tokio::spawn(self.load(reqs));
            let mut lat = Vec::new();
            while !load.is_finished() {
                lat.push(ms(self.fetch(client, path).await.0));
            }
            (load.await.expect("load task"), lat)
        })
    }

    /// The status page: what a page load costs, and the view fetch it makes per burst of
    /// events, alone and back to back beside an ingest round.
    fn page_figures(&mut self, steady_best: f64) -> Vec<String> {
        let mut rows = Vec::new();
        let n = self.keys.len();
        let client = self.client();
        let files = ["/", "/ui/app.js", "/ui/app.css"];
        const LOADS: usize = 200;
        let cpu0 = cpu_secs(&self.pid());
        let (mut lat, mut bytes) = (Vec::new(), 0);
        for _ in 0..LOADS {
            let t0 = Instant::now();
            bytes = 0;
            for f in files {
                bytes += self.rt.block_on(self.fetch(&client, f)).1;
            }
            lat.push(ms(t0.elapsed()));
        }
        let cpu = (cpu_secs(&self.pid()) - cpu0) / LOADS as f64;
        rows.push(format!(
            "| page load (GET /, app.js, app.css; {LOADS} loads) | p50 {:.2} ms; {:.1} KB; collector CPU {:.2} ms per load |",
            median(lat), bytes as f64 / 1e3, cpu * 1e3
        ));
        const FETCHES: usize = 10;
        let cpu0 = cpu_secs(&self.pid());
        let (mut lat, mut bytes) = (Vec::new(), 0);
        for _ in 0..FETCHES {
            let (d, b) = self
                .rt
                .block_on(self.fetch(&client, "/api/v3.1/cluster-status"));
            lat.push(ms(d));
            bytes = b;
        }
        let cpu = (cpu_secs(&self.pid()) - cpu0) / FETCHES as f64;
        rows.push(format!(
            "| the page's view fetch per event burst, {n} nodes, idle collector ({FETCHES} fetches) | p50 {:.1} ms, p99 {:.1} ms; {:.1} MB; collector CPU {:.1} ms per fetch |",
            median(lat.clone()), p99(lat), bytes as f64 / 1e6, cpu * 1e3
        ));
        let (stats, lat) = self.back_to_back(&client, "/api/v3.1/cluster-status");
        rows.push(format!(
            "| the view fetch back to back during an ingest round (a page refetching without pause) | {} fetches, p50 {:.1} ms, p99 {:.1} ms; ingest {:.0} reports/s beside them (best steady round alone {:.0}), p99 {:.1} ms |",
            lat.len(), median(lat.clone()), p99(lat), stats.reports_per_s, steady_best, stats.p99_ms
        ));
        rows
    }

    fn round(&mut self, transition: bool) -> Arc<Vec<Prepared>> {
        let r = self.next_round;
        self.next_round += 1;
        Arc::new(prepare_with(self.keys, r, transition))
    }

    fn load(&self, reqs: Arc<Vec<Prepared>>) -> impl std::future::Future<Output = RunStats> {
        let (pid, addr, ca, tokens, conns) = (
            self.collector.server.pid(),
            self.collector.addr,
            self.ca.to_path_buf(),
            self.tokens.clone(),
            self.conns,
        );
        async move { run_load(pid, addr, &ca, &tokens, reqs, conns).await }
    }

    fn figures(mut self, steady_best: f64) -> Vec<String> {
        let mut rows = self.page_figures(steady_best);
        let n = self.keys.len();
        let client = self.client();
        // /metrics with nothing else running.
        let cpu0 = cpu_secs(&self.pid());
        let mut lat = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let (d, b) = self.rt.block_on(self.scrape(&client));
            lat.push(ms(d));
            bytes = b;
        }
        let cpu = (cpu_secs(&self.pid()) - cpu0) / 20.0;
        rows.push(format!(
            "| GET /metrics, {n} nodes, idle collector (20 scrapes) | p50 {:.1} ms, p99 {:.1} ms; {:.1} KB; collector CPU {:.1} ms per scrape |",
            median(lat.clone()), p99(lat), bytes as f64 / 1e3, cpu * 1e3
        ));

        // /metrics back to back while a steady ingest round runs.
        let (stats, lat) = self.back_to_back(&client, "/metrics");
        rows.push(format!(
            "| GET /metrics back to back during an ingest round | {} scrapes, p50 {:.1} ms, p99 {:.1} ms; ingest {:.0} reports/s beside them (best steady round alone {:.0}), p99 {:.1} ms |",
            lat.len(), median(lat.clone()), p99(lat), stats.reports_per_s, steady_best, stats.p99_ms
        ));

        // The stream: a round storing one transition per report, without watchers...
        let reqs = self.round(true);
        let alone = self.rt.block_on(self.load(reqs));
        rows.push(format!(
            "| ingest round storing one transition per report, no watcher | {:.0} reports/s, p99 {:.1} ms; collector CPU {:.0} µs per report |",
            alone.reports_per_s, alone.p99_ms, alone.server_cpu_ms_per_k
        ));
        // ... and with the watchers, each on its own connection, reading as fast as it can.
        let want = arg("--watchers", 100);
        let counts: Vec<Arc<WatchCount>> = (0..want).map(|_| Arc::default()).collect();
        let mut refused = 0;
        let mut readers = Vec::new();
        for c in &counts {
            let client = self.client();
            let (status, _, body) = self
                .rt
                .block_on(client.open_stream(
                    &self.url("/api/v3.1/events"),
                    &[(sr_protocol::TOKEN_HEADER, self.admin)],
                    Duration::from_secs(20),
                ))
                .expect("open the event stream");
            if status != 200 {
                refused += 1;
                continue;
            }
            let c = c.clone();
            readers.push(self.rt.spawn(async move {
                let _client = client;
                let mut body = body;
                let mut parser = sr_protocol::sse::SseParser::new();
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        c.bytes
                            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        let got = parser
                            .feed(data)
                            .iter()
                            .filter(|e| e.event == "transition")
                            .count();
                        c.events
                            .fetch_add(got as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        let open = readers.len();
        let total = |f: fn(&WatchCount) -> u64| -> u64 { counts.iter().map(|c| f(c)).sum() };
        let events = |c: &WatchCount| c.events.load(std::sync::atomic::Ordering::Relaxed);
        let wait_all = |target: u64, deadline: Duration| -> Option<Duration> {
            let t0 = Instant::now();
            while t0.elapsed() < deadline {
                if counts.iter().take(open).all(|c| events(c) >= target) || open == 0 {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        };
        let reqs = self.round(true);
        let cpu0 = cpu_secs(&self.pid());
        let t0 = Instant::now();
        let with = self.rt.block_on(self.load(reqs));
        let ingest_done = t0.elapsed();
        let drained = wait_all(n as u64, Duration::from_secs(120));
        let cpu = cpu_secs(&self.pid()) - cpu0;
        let delivered = total(events);
        let bytes = total(|c| c.bytes.load(std::sync::atomic::Ordering::Relaxed));
        let extra_cpu_us = (cpu * 1e6 - alone.server_cpu_ms_per_k * n as f64).max(0.0);
        rows.push(format!(
            "| the same round with {open} watchers ({refused} refused) | ingest {:.0} reports/s, p99 {:.1} ms; every watcher had all {n} events {} after the round began (round took {:.1} s) |",
            with.reports_per_s,
            with.p99_ms,
            drained
                .map(|d| format!("{:.1} s", d.as_secs_f64() + ingest_done.as_secs_f64()))
                .unwrap_or_else(|| "NOT within 120 s".into()),
            ingest_done.as_secs_f64()
        ));
        rows.push(format!(
            "| stream cost, that round | {delivered} events delivered, {:.0} bytes each; collector CPU {:.0} ms over the round and drain, {:.1} µs per event delivered beyond the round without watchers |",
            bytes as f64 / delivered.max(1) as f64,
            cpu * 1e3,
            extra_cpu_us / delivered.max(1) as f64
        ));

        // Latency: one report at a time, from its 200 to every watcher having its event.
        let mut lags = Vec::new();
        for k in 0..20 {
            // Node n0 (prepare_with names nodes by their index in the slice), a new seq each.
            let one = Arc::new(prepare_with(&self.keys[..1], self.next_round + k, true));
            let before: Vec<u64> = counts.iter().map(|c| events(c)).collect();
            self.rt.block_on(self.load_one(one));
            let t0 = Instant::now();
            let deadline = Duration::from_secs(30);
            while t0.elapsed() < deadline
                && !counts
                    .iter()
                    .zip(&before)
                    .take(open)
                    .all(|(c, b)| events(c) > *b)
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            lags.push(ms(t0.elapsed()));
        }
        rows.push(format!(
            "| one transition, from its report's 200 to all {open} watchers having it ({} reports) | p50 {:.1} ms, max {:.1} ms |",
            lags.len(), median(lags.clone()), lags.iter().copied().fold(0.0, f64::max)
        ));
        for r in readers {
            r.abort();
        }
        rows
    }

    fn load_one(&self, reqs: Arc<Vec<Prepared>>) -> impl std::future::Future<Output = RunStats> {
        let (pid, addr, ca, tokens) = (
            self.collector.server.pid(),
            self.collector.addr,
            self.ca.to_path_buf(),
            self.tokens.clone(),
        );
        async move { run_load(pid, addr, &ca, &tokens, reqs, 1).await }
    }
}
