//! Real-cluster test harness: Patroni ×N + etcd + PostgreSQL 15, and RabbitMQ ×N with the
//! management plugin, all on `127.0.0.1` with free ports, each cluster under its own temporary
//! directory in `/tmp`.
//!
//! The heavy lifting is done by the shell scripts in `tests/lab/` (located through
//! `CARGO_MANIFEST_DIR`, so nothing outside the repository is needed at run time); this module
//! picks the ports, runs the scripts, polls with deadlines, and tears everything down in `Drop`
//! (also when the test panicked). The scripts additionally start a watchdog that tears the
//! cluster down if the test process dies without running `Drop` (SIGKILL, Ctrl-C).
//!
//! Only `std` and `anyhow`. JSON is not parsed here: the scripts reduce what the harness needs
//! to plain text, and [`json_field`] is a deliberately dumb helper for flat string fields in
//! smoke checks (real tests should parse bodies with their own JSON library).
//!
//! Member/node indices are **0-based** in this API (`0..members`); the scripts and the data
//! directories number them from 1 (`pg1`, `rabbit1`, ...).
//!
//! Environment knobs:
//! - `CI=true`: [`require_services`] panics instead of skipping when a service is missing.
//! - `LAB_KEEP=1`: keep the cluster directory (logs, data) after teardown, for debugging.
//!   Processes are stopped regardless.
//!
//! Requirements: Debian packages `patroni etcd-server etcd-client python3-idna postgresql-15
//! rabbitmq-server`, plus `bash curl iproute2 (ss) util-linux (setpriv) openssl`. The Patroni
//! cluster must be started as root (PostgreSQL runs as `postgres` through `setpriv`).
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Non-superuser PostgreSQL role (member of `pg_monitor`) and RabbitMQ user (tag `monitoring`,
/// read-only on vhost `/`) created by the harness.
pub const MONITOR_USER: &str = "monitor";
/// Password of [`MONITOR_USER`].
pub const MONITOR_PASSWORD: &str = "monitor";
/// PostgreSQL superuser (use only for fault injection, through [`PatroniCluster::psql`]).
pub const PG_SUPERUSER: &str = "postgres";
/// Debian's PostgreSQL 15 binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

/// `<repo>/tests/lab`, where the harness scripts live.
pub fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("lab")
}

// ---------------------------------------------------------------------------------------------
// require_services
// ---------------------------------------------------------------------------------------------

/// Checks that everything needed for the named services is installed (`"patroni"`, `"etcd"`,
/// `"postgres"`, `"rabbitmq"`; any other name is looked up as an executable on `PATH`).
///
/// Returns `true` if all are present. Otherwise: with `CI=true` (or `CI=1`) it **panics** (a
/// missing service is a CI failure); without it, it prints `SKIP: ...` and returns `false`, so
/// a test can `if !require_services(&[...]) { return; }`.
pub fn require_services(names: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    fn need(missing: &mut Vec<String>, what: &str, path: &str) {
        if !is_executable(path) {
            missing.push(format!("{what} ({path})"));
        }
    }
    let m = &mut missing;
    for &name in names {
        match name {
            "patroni" => {
                need(m, "patroni", "/usr/bin/patroni");
                need(
                    m,
                    "Debian python3 (patroni's interpreter)",
                    "/usr/bin/python3",
                );
                need(m, "setpriv (util-linux)", "/usr/bin/setpriv");
                need(m, "postgres", &format!("{PG_BIN}/postgres"));
                need(m, "psql", &format!("{PG_BIN}/psql"));
            }
            "etcd" => {
                need(m, "etcd", "/usr/bin/etcd");
            }
            "postgres" | "postgresql" => {
                need(m, "postgres", &format!("{PG_BIN}/postgres"));
                need(m, "initdb", &format!("{PG_BIN}/initdb"));
                need(m, "psql", &format!("{PG_BIN}/psql"));
            }
            "rabbitmq" | "rabbitmq-server" => {
                need(
                    m,
                    "rabbitmq-server",
                    &format!("{RABBIT_BIN}/rabbitmq-server"),
                );
                need(m, "rabbitmqctl", &format!("{RABBIT_BIN}/rabbitmqctl"));
                need(m, "epmd", "/usr/bin/epmd");
            }
            other => {
                if which(other).is_none() {
                    m.push(other.to_string());
                }
            }
        }
    }
    for tool in ["bash", "curl", "ss", "openssl", "awk"] {
        if which(tool).is_none() {
            missing.push(format!("{tool} (on PATH)"));
        }
    }
    if names.contains(&"patroni") && !is_root() {
        missing.push(
            "root privileges (the Patroni harness runs PostgreSQL as `postgres` via setpriv)"
                .into(),
        );
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "services {names:?} unavailable, missing: {}. Install with: apt-get install -y \
         --no-install-recommends patroni etcd-server etcd-client python3-idna postgresql-15 \
         rabbitmq-server curl iproute2 openssl",
        missing.join(", ")
    );
    if ci() {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIP: {msg}");
    false
}

fn ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

fn is_executable(path: &str) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.to_str().is_some_and(is_executable))
}

fn is_root() -> bool {
    // effective uid = 2nd field of "Uid:" in /proc/self/status
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn keep_dirs() -> bool {
    std::env::var("LAB_KEEP")
        .map(|v| v == "1" || v == "true")
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// small helpers: ports, temp dirs, polling, scripts
// ---------------------------------------------------------------------------------------------

/// `n` distinct free TCP ports on 127.0.0.1 (all bound at once to port 0, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Creates a fresh directory `/tmp/sr-lab-<kind>-<pid>-<n>-<nanos>` with mode 0755 (PostgreSQL
/// runs as `postgres` and must traverse it).
fn make_temp_dir(kind: &str) -> Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = PathBuf::from(format!(
        "/tmp/sr-lab-{kind}-{}-{}-{nanos:09}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// Polls `check` every `every` until it returns `Ok(true)`, or fails after `timeout` with the
/// last error / "still false". `check` errors do not abort the wait.
pub fn wait_until<F>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<Duration>
where
    F: FnMut() -> Result<bool>,
{
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    loop {
        let last = match check() {
            Ok(true) => return Ok(t0.elapsed()),
            Ok(false) => "condition still false".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        std::thread::sleep(every);
    }
}

/// Result of running a harness script.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// Exit code (`None`: killed by a signal or by the harness on timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `bash tests/lab/<script> args...` with `env`, stdout/stderr captured through files in
/// `scratch` (never pipes: the scripts start daemons), killing the script if it runs past
/// `timeout`. Waits by polling `try_wait`.
fn run_script(
    scratch: &Path,
    script: &str,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<ScriptOutput> {
    static N: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(scratch)?;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("{script}.{n}.out"));
    let err_path = scratch.join(format!("{script}.{n}.err"));
    let path = lab_dir().join(script);
    let mut child = Command::new("bash")
        .arg(&path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning bash {}", path.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // our own child (the script's bash); anything it started is stopped by the down script
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = ScriptOutput {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    if status.is_none() {
        bail!(
            "{script} {args:?} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    Ok(out)
}

fn check_ok(what: &str, out: ScriptOutput) -> Result<ScriptOutput> {
    if out.success() {
        Ok(out)
    } else {
        bail!(
            "{what} failed (exit {:?})\nstdout: {}\nstderr: {}",
            out.code,
            out.stdout.trim(),
            out.stderr.trim()
        )
    }
}

/// Parses the scripts' `HTTP <code>\n<body>` output.
fn parse_script_http(out: &ScriptOutput) -> Result<HttpResponse> {
    let (first, body) = out
        .stdout
        .split_once('\n')
        .unwrap_or((out.stdout.as_str(), ""));
    let code: u16 = first
        .strip_prefix("HTTP ")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "unexpected script output: {:?} / {}",
                out.stdout,
                out.stderr.trim()
            )
        })?;
    if code == 0 {
        bail!("no HTTP answer (connection refused/reset, TLS failure or timeout)");
    }
    Ok(HttpResponse {
        status: code,
        headers: Vec::new(),
        body: body.to_string(),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// minimal HTTP/1.0 client (loopback only)
// ---------------------------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-cased header names (empty when the request went through a script/curl).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url` (plain `http://` on 127.0.0.1/localhost only), optional HTTP Basic credentials.
pub fn http_get(url: &str, basic_auth: Option<(&str, &str)>) -> Result<HttpResponse> {
    http_request("GET", url, basic_auth, None)
}

/// Any method, optional JSON body. HTTP/1.0 with `Connection: close`, 10 s timeouts. Refuses
/// non-loopback hosts (tests must never send traffic elsewhere).
pub fn http_request(
    method: &str,
    url: &str,
    basic_auth: Option<(&str, &str)>,
    json_body: Option<&str>,
) -> Result<HttpResponse> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs are supported here: {url}"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("URL needs an explicit port: {url}"))?;
    let port: u16 = port.parse().with_context(|| format!("bad port in {url}"))?;
    if host != "127.0.0.1" && host != "localhost" {
        bail!("refusing non-loopback host {host:?}");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(10);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: sr-lab-harness\r\n\
         Accept: */*\r\nConnection: close\r\n"
    );
    if let Some((u, p)) = basic_auth {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{u}:{p}").as_bytes())
        ));
    }
    if let Some(b) = json_body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = json_body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading response from {url}"))?;
    parse_http_response(&raw).with_context(|| format!("parsing response from {url}"))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size {size_str:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// First `"key": "string"` / `"key": literal` value in a JSON text, without parsing it. Good
/// enough for flat fields in smoke checks (`json_field(body, "role") == Some("master")`); use a
/// real JSON parser for anything else.
pub fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\"");
    let mut from = 0;
    while let Some(pos) = json[from..].find(&pat) {
        let after = &json[from + pos + pat.len()..];
        let t = after.trim_start();
        if let Some(v) = t.strip_prefix(':') {
            let v = v.trim_start();
            return if let Some(s) = v.strip_prefix('"') {
                s.find('"').map(|e| &s[..e])
            } else {
                let e = v.find([',', '}', ']']).unwrap_or(v.len());
                Some(v[..e].trim())
            };
        }
        from += pos + pat.len();
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Patroni
// ---------------------------------------------------------------------------------------------

/// Options for [`PatroniCluster::start`].
#[derive(Debug, Clone)]
pub struct PatroniOpts {
    /// Number of Patroni/PostgreSQL members (default 3).
    pub members: usize,
    /// Patroni REST API over https with `verify_client: required` (default false).
    pub tls: bool,
    /// etcd client/peer over https with client-cert auth (default false). etcd's plain-http
    /// `/health` + `/metrics` stay available on [`PatroniCluster::etcd_metrics_url`].
    pub etcd_tls: bool,
    /// Patroni DCS `ttl` in seconds (default 10: a killed leader is replaced after ~10 s).
    pub ttl: u32,
    /// Patroni `loop_wait` (default 1).
    pub loop_wait: u32,
    /// Patroni `retry_timeout` (default 3).
    pub retry_timeout: u32,
    /// Patroni scope, i.e. cluster name (default "lab").
    pub scope: String,
    /// Deadline for leader + (members-1) streaming replicas (default 120 s).
    pub start_timeout: Duration,
}

impl Default for PatroniOpts {
    fn default() -> Self {
        PatroniOpts {
            members: 3,
            tls: false,
            etcd_tls: false,
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            scope: "lab".into(),
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// TLS material generated for a [`PatroniCluster`] started with `tls` or `etcd_tls`.
/// All EC P-256, PEM (keys PKCS#8). Certificates are valid for 2 days.
#[derive(Debug, Clone)]
pub struct PatroniTls {
    /// The CA that signed `server_cert` and `client_cert` (the REST API's `cafile`).
    pub ca_cert: PathBuf,
    /// Server certificate of every member: CN=localhost, SAN IP:127.0.0.1 + DNS:localhost,
    /// EKU serverAuth+clientAuth (members also use it as their client certificate).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client-only certificate (CN=monitor, EKU clientAuth) signed by `ca_cert`: what the
    /// agent should present.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An unrelated CA: trusting it instead of `ca_cert` must fail server verification.
    pub wrong_ca_cert: PathBuf,
    /// A client certificate signed by `wrong_ca_cert`: the REST API must reject it.
    pub wrong_client_cert: PathBuf,
    pub wrong_client_key: PathBuf,
    /// A server certificate (same SANs) signed by `wrong_ca_cert`, for tests of the client
    /// side against a mock server.
    pub wrong_server_cert: PathBuf,
    pub wrong_server_key: PathBuf,
}

impl PatroniTls {
    fn in_dir(t: &Path) -> Self {
        PatroniTls {
            ca_cert: t.join("ca.crt"),
            server_cert: t.join("server.crt"),
            server_key: t.join("server.key"),
            client_cert: t.join("client.crt"),
            client_key: t.join("client.key"),
            wrong_ca_cert: t.join("wrong-ca.crt"),
            wrong_client_cert: t.join("wrong-client.crt"),
            wrong_client_key: t.join("wrong-client.key"),
            wrong_server_cert: t.join("wrong-server.crt"),
            wrong_server_key: t.join("wrong-server.key"),
        }
    }
}

/// What [`PatroniCluster::status`] sees in the DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatroniStatus {
    /// Index of the member holding the leader key with state `running`.
    pub leader: Option<usize>,
    /// Replicas that the leader's `pg_stat_replication` shows `streaming` under their member name.
    pub streaming: usize,
    /// Member names listed in `/cluster`.
    pub members: Vec<String>,
    /// Replica names listed as running in `/cluster`.
    pub running_replicas: Vec<String>,
}

/// A running Patroni cluster: 1 etcd + `members` Patroni/PostgreSQL 15 members on 127.0.0.1.
/// Torn down (and its directory removed) on drop.
pub struct PatroniCluster {
    dir: PathBuf,
    opts: PatroniOpts,
    pg_ports: Vec<u16>,
    api_ports: Vec<u16>,
    etcd_client_port: u16,
    etcd_peer_port: u16,
    etcd_metrics_port: u16,
    tls: Option<PatroniTls>,
    started_in: Duration,
}

impl PatroniCluster {
    /// Picks free loopback ports, creates `/tmp/sr-lab-patroni-*` (0755), runs
    /// `tests/lab/patroni-up.sh` and waits (polling, with `opts.start_timeout`) until there is a
    /// leader and `members-1` streaming replicas and the `monitor` role exists everywhere.
    /// Retries with new ports (up to 3 times) if a port got taken in between.
    pub fn start(opts: PatroniOpts) -> Result<Self> {
        if opts.members == 0 {
            bail!("members must be >= 1");
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let n = opts.members;
            let ports = free_ports(2 * n + 3)?;
            let mut c = PatroniCluster {
                dir: make_temp_dir("patroni")?,
                opts: opts.clone(),
                pg_ports: ports[..n].to_vec(),
                api_ports: ports[n..2 * n].to_vec(),
                etcd_client_port: ports[2 * n],
                etcd_peer_port: ports[2 * n + 1],
                etcd_metrics_port: ports[2 * n + 2],
                tls: None,
                started_in: Duration::ZERO,
            };
            let t0 = Instant::now();
            let env = c.up_env();
            // the script waits for readiness itself (WAIT_TIMEOUT); give it some slack on top
            let timeout = opts.start_timeout + Duration::from_secs(60);
            let out = run_script(&c.scratch(), "patroni-up.sh", &[c.dir_str()], &env, timeout)
                .map_err(|e| c.with_logs(e))?;
            match out.code {
                Some(0) => {}
                Some(2) if attempt < 3 => {
                    eprintln!(
                        "lab: patroni-up: {} (retrying with other ports)",
                        out.stderr.trim()
                    );
                    continue; // `c` is dropped: tears down and removes its directory
                }
                _ => return Err(c.with_logs(check_ok("patroni-up.sh", out).unwrap_err())),
            }
            if opts.tls || opts.etcd_tls {
                c.tls = Some(PatroniTls::in_dir(&c.dir.join("tls")));
            }
            // confirm from here (cheap: the script only returned once this was true)
            c.wait_ready(Duration::from_secs(30))
                .map_err(|e| c.with_logs(e))?;
            c.started_in = t0.elapsed();
            eprintln!(
                "lab: patroni cluster ready in {:.1}s ({}) dir={}",
                c.started_in.as_secs_f64(),
                out.stdout.trim(),
                c.dir.display()
            );
            return Ok(c);
        }
    }

    fn up_env(&self) -> Vec<(String, String)> {
        let join = |v: &[u16]| {
            v.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let o = &self.opts;
        let env: Vec<(String, String)> = vec![
            ("MEMBERS".into(), o.members.to_string()),
            ("PG_PORTS".into(), join(&self.pg_ports)),
            ("API_PORTS".into(), join(&self.api_ports)),
            ("ETCD_CLIENT_PORT".into(), self.etcd_client_port.to_string()),
            ("ETCD_PEER_PORT".into(), self.etcd_peer_port.to_string()),
            (
                "ETCD_METRICS_PORT".into(),
                self.etcd_metrics_port.to_string(),
            ),
            ("SCOPE".into(), o.scope.clone()),
            ("TLS".into(), (o.tls as u8).to_string()),
            ("ETCD_TLS".into(), (o.etcd_tls as u8).to_string()),
            ("TTL".into(), o.ttl.to_string()),
            ("LOOP_WAIT".into(), o.loop_wait.to_string()),
            ("RETRY_TIMEOUT".into(), o.retry_timeout.to_string()),
            (
                "WAIT_TIMEOUT".into(),
                o.start_timeout.as_secs().max(1).to_string(),
            ),
            ("MONITOR_USER".into(), MONITOR_USER.into()),
            ("MONITOR_PASSWORD".into(), MONITOR_PASSWORD.into()),
            ("OWNER_PID".into(), std::process::id().to_string()),
            (
                "WATCHDOG_RM_DIR".into(),
                if keep_dirs() { "0" } else { "1" }.into(),
            ),
        ];
        env
    }

    fn scratch(&self) -> PathBuf {
        self.dir.join("harness")
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("temp dir path is UTF-8")
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        let mut s = String::new();
        for i in 1..=self.opts.members {
            s += &format!(
                "\n--- pg{i}/patroni.log (tail)\n{}",
                tail(&self.dir.join(format!("pg{i}/patroni.log")), 15)
            );
        }
        s += &format!(
            "\n--- etcd/etcd.log (tail)\n{}",
            tail(&self.dir.join("etcd/etcd.log"), 5)
        );
        e.context(format!("patroni cluster in {}{s}", self.dir.display()))
    }

    fn ctl(&self, args: &[&str], timeout: Duration) -> Result<ScriptOutput> {
        let mut a = vec![self.dir_str()];
        a.extend_from_slice(args);
        run_script(&self.scratch(), "patroni-ctl.sh", &a, &[], timeout)
    }

    fn ctl_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.ctl(args, timeout)?;
        Ok(check_ok(&format!("patroni-ctl.sh {args:?}"), out)?.stdout)
    }

    fn check_index(&self, i: usize) -> Result<String> {
        if i >= self.opts.members {
            bail!("member index {i} out of range (0..{})", self.opts.members);
        }
        Ok((i + 1).to_string())
    }

    // ---- accessors ----

    /// The cluster directory (`/tmp/sr-lab-patroni-*`): `pgN/` (data, patroni.yml, logs),
    /// `etcd/`, `tls/`, `cluster.env`, `patronictl.yml`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn opts(&self) -> &PatroniOpts {
        &self.opts
    }
    /// How long [`start`](Self::start) took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
    /// Number of members.
    pub fn members(&self) -> usize {
        self.opts.members
    }
    pub fn scope(&self) -> &str {
        &self.opts.scope
    }
    /// Patroni member name of member `i` (`pg1` for `i == 0`).
    pub fn member_name(&self, i: usize) -> String {
        format!("pg{}", i + 1)
    }
    pub fn member_names(&self) -> Vec<String> {
        (0..self.opts.members)
            .map(|i| self.member_name(i))
            .collect()
    }
    /// Index of the member called `name` (`"pg2"` -> 1).
    pub fn member_index(&self, name: &str) -> Option<usize> {
        let n: usize = name.strip_prefix("pg")?.parse().ok()?;
        (1..=self.opts.members).contains(&n).then(|| n - 1)
    }
    /// `http` or `https` (TLS).
    pub fn rest_scheme(&self) -> &'static str {
        if self.opts.tls {
            "https"
        } else {
            "http"
        }
    }
    pub fn rest_port(&self, i: usize) -> u16 {
        self.api_ports[i]
    }
    /// Base URL of member `i`'s REST API, e.g. `http://127.0.0.1:41011` (no trailing slash).
    pub fn rest_url(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.rest_scheme(), self.api_ports[i])
    }
    pub fn rest_urls(&self) -> Vec<String> {
        (0..self.opts.members).map(|i| self.rest_url(i)).collect()
    }
    /// PostgreSQL TCP port of member `i` (listens on 127.0.0.1, scram-sha-256).
    pub fn pg_port(&self, i: usize) -> u16 {
        self.pg_ports[i]
    }
    /// Unix socket directory of member `i` (trust auth for every role).
    pub fn pg_socket_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("pg{}", i + 1))
    }
    /// libpq/tokio-postgres connection string for the non-superuser `monitor` role on member `i`.
    pub fn pg_monitor_conn_str(&self, i: usize) -> String {
        format!(
            "host=127.0.0.1 port={} user={MONITOR_USER} password={MONITOR_PASSWORD} dbname=postgres",
            self.pg_ports[i]
        )
    }
    /// etcd client URL (`http://127.0.0.1:P`, `https` with `etcd_tls`).
    pub fn etcd_url(&self) -> String {
        let s = if self.opts.etcd_tls { "https" } else { "http" };
        format!("{s}://127.0.0.1:{}", self.etcd_client_port)
    }
    pub fn etcd_client_port(&self) -> u16 {
        self.etcd_client_port
    }
    pub fn etcd_peer_port(&self) -> u16 {
        self.etcd_peer_port
    }
    /// etcd's extra plain-http listener for `/health` and `/metrics` (no client cert needed).
    pub fn etcd_metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_metrics_port)
    }
    /// TLS material when started with `tls` or `etcd_tls`.
    pub fn tls(&self) -> Option<&PatroniTls> {
        self.tls.as_ref()
    }

    // ---- queries ----

    /// Leader, streaming replicas and members from the DCS view (`/cluster` of the first member
    /// that answers, then the leader's `/patroni`). Hangs up to ~2 s per member when etcd is down.
    pub fn status(&self) -> Result<PatroniStatus> {
        let out = self.ctl_ok(&["status"], Duration::from_secs(30))?;
        let line = out.trim();
        let get = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("-")
        };
        let list = |v: &str| -> Vec<String> {
            if v == "-" {
                Vec::new()
            } else {
                v.split(',').map(String::from).collect()
            }
        };
        Ok(PatroniStatus {
            leader: self.member_index(get("leader")),
            streaming: get("streaming")
                .parse()
                .with_context(|| format!("status line {line:?}"))?,
            members: list(get("members")),
            running_replicas: list(get("running")),
        })
    }

    /// Index of the member that holds the leader key and is `running`, per the DCS (`/cluster`).
    /// `None` if there is none or no member answers.
    pub fn leader(&self) -> Option<usize> {
        let out = self.ctl_ok(&["leader"], Duration::from_secs(30)).ok()?;
        self.member_index(out.trim())
    }

    /// Waits until there is a leader and `members-1` replicas stream from it; returns the leader.
    pub fn wait_ready(&self, timeout: Duration) -> Result<usize> {
        let want = self.opts.members - 1;
        let mut leader = None;
        wait_until(
            "patroni leader + streaming replicas",
            timeout,
            Duration::from_millis(250),
            || {
                let s = self.status()?;
                leader = s.leader;
                Ok(s.leader.is_some() && s.streaming >= want)
            },
        )?;
        leader.ok_or_else(|| anyhow!("no leader"))
    }

    /// Waits until the DCS names a running leader that satisfies `pred`; returns it.
    pub fn wait_leader(&self, timeout: Duration, pred: impl Fn(usize) -> bool) -> Result<usize> {
        let mut found = None;
        wait_until(
            "patroni leader",
            timeout,
            Duration::from_millis(200),
            || {
                found = self.leader().filter(|l| pred(*l));
                Ok(found.is_some())
            },
        )?;
        Ok(found.expect("set when the wait succeeded"))
    }

    /// Waits until a member other than `old` is leader; returns it.
    pub fn wait_new_leader(&self, old: usize, timeout: Duration) -> Result<usize> {
        self.wait_leader(timeout, |l| l != old)
    }

    /// `GET path` on member `i`'s REST API. Plain http goes through [`http_get`]; with TLS it
    /// goes through curl with the harness' client certificate. Any status code is `Ok`; no
    /// answer at all (refused, reset, timeout) is `Err`.
    pub fn rest_get(&self, i: usize, path: &str) -> Result<HttpResponse> {
        self.rest_request(i, "GET", path, None)
    }

    /// Any method on member `i`'s REST API (e.g. `PATCH /config` with a JSON body).
    pub fn rest_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<HttpResponse> {
        let n = self.check_index(i)?;
        if !self.opts.tls {
            return http_request(
                method,
                &format!("{}{path}", self.rest_url(i)),
                None,
                json_body,
            );
        }
        let mut args = vec!["request", n.as_str(), method, path];
        if let Some(b) = json_body {
            args.push(b);
        }
        parse_script_http(&self.ctl(&args, Duration::from_secs(30))?)
    }

    /// Request to etcd's client URL (e.g. `("POST", "/v3/maintenance/status", Some("{}"))`).
    pub fn etcd_request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<HttpResponse> {
        if !self.opts.etcd_tls {
            return http_request(
                method,
                &format!("{}{path}", self.etcd_url()),
                None,
                json_body,
            );
        }
        let mut args = vec!["etcd", method, path];
        if let Some(b) = json_body {
            args.push(b);
        }
        parse_script_http(&self.ctl(&args, Duration::from_secs(30))?)
    }

    /// Runs `sql` as the superuser over member `i`'s unix socket; returns psql's `-At` output.
    /// For fault injection only (e.g. `SELECT pg_wal_replay_pause()`); probes use `monitor`.
    pub fn psql(&self, i: usize, sql: &str) -> Result<String> {
        let n = self.check_index(i)?;
        Ok(self
            .ctl_ok(&["psql", &n, sql], Duration::from_secs(60))?
            .trim_end()
            .to_string())
    }

    // ---- control / fault injection ----

    /// SIGKILL member `i`'s Patroni. Its PostgreSQL keeps running (an orphaned primary if it
    /// was the leader); another member takes over after ~ttl.
    pub fn kill_patroni(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_ok(&["kill-patroni", &n], Duration::from_secs(30))
            .map(drop)
    }
    /// SIGTERM member `i`'s Patroni and wait until it exited (it stops its PostgreSQL and
    /// releases the leader key if it had it).
    pub fn stop_patroni(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_ok(&["stop-patroni", &n], Duration::from_secs(90))
            .map(drop)
    }
    /// Start member `i`'s Patroni again (no-op if running). Does not wait for it to rejoin.
    pub fn start_patroni(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_ok(&["start-patroni", &n], Duration::from_secs(30))
            .map(drop)
    }
    /// SIGKILL member `i`'s postmaster (Patroni recovers and restarts it).
    pub fn kill_postgres(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_ok(&["kill-postgres", &n], Duration::from_secs(30))
            .map(drop)
    }
    /// SIGTERM etcd and wait until it exited.
    pub fn stop_etcd(&self) -> Result<()> {
        self.ctl_ok(&["stop-etcd"], Duration::from_secs(40))
            .map(drop)
    }
    /// Start etcd again and wait until its `/health` is true.
    pub fn start_etcd(&self) -> Result<()> {
        self.ctl_ok(&["start-etcd"], Duration::from_secs(40))
            .map(drop)
    }
}

/// Stops a lab cluster with its down script and removes its directory (kept with
/// `LAB_KEEP=1`). Runs from `Drop`, so it reports problems instead of failing; when the
/// test is panicking it first prints the cluster's log tails.
fn tear_down(what: &str, script: &str, scratch: &Path, dir: &Path, logs: impl FnOnce() -> String) {
    if std::thread::panicking() {
        eprintln!("lab: test panicked; {what} logs:{}", logs().trim());
    }
    let t0 = Instant::now();
    let env = vec![(
        "PURGE".to_string(),
        if keep_dirs() { "0" } else { "1" }.to_string(),
    )];
    let dir_arg = dir.to_string_lossy();
    match run_script(scratch, script, &[&dir_arg], &env, Duration::from_secs(150)) {
        Ok(o) if o.success() => {}
        Ok(o) => eprintln!(
            "lab: {script} failed: {:?} {} {}",
            o.code, o.stdout, o.stderr
        ),
        Err(e) => eprintln!("lab: {script}: {e:#}"),
    }
    if keep_dirs() {
        eprintln!("lab: LAB_KEEP=1, kept {}", dir.display());
    } else if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("lab: removing {}: {e}", dir.display());
    }
    eprintln!(
        "lab: {what} cluster torn down in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        tear_down(
            "patroni",
            "patroni-down.sh",
            &self.scratch(),
            &self.dir,
            || self.with_logs(anyhow!("")).to_string(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------------------------

/// Options for [`RabbitCluster::start`].
#[derive(Debug, Clone)]
pub struct RabbitOpts {
    /// Number of nodes (default 3).
    pub nodes: usize,
    /// Deadline for all nodes booted and clustered (default 180 s).
    pub start_timeout: Duration,
}

impl Default for RabbitOpts {
    fn default() -> Self {
        RabbitOpts {
            nodes: 3,
            start_timeout: Duration::from_secs(180),
        }
    }
}

/// A running RabbitMQ 3.10 cluster with the management plugin on 127.0.0.1, with a private
/// epmd and node names unique to its directory. Torn down (and its directory removed) on drop.
pub struct RabbitCluster {
    dir: PathBuf,
    opts: RabbitOpts,
    names: Vec<String>,
    amqp_ports: Vec<u16>,
    mgmt_ports: Vec<u16>,
    dist_ports: Vec<u16>,
    epmd_port: u16,
    started_in: Duration,
}

impl RabbitCluster {
    /// Picks free loopback ports, creates `/tmp/sr-lab-rabbit-*` (0755), runs
    /// `tests/lab/rabbit-up.sh` and waits until every node's `/api/nodes` shows all nodes
    /// running and the `monitor` user works. Retries with new ports (up to 3 times) if a port
    /// got taken in between.
    pub fn start(opts: RabbitOpts) -> Result<Self> {
        if opts.nodes == 0 {
            bail!("nodes must be >= 1");
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let n = opts.nodes;
            let ports = free_ports(3 * n + 1)?;
            let dir = make_temp_dir("rabbit")?;
            // unique per directory (the script's default is derived from DIR the same way in
            // spirit; we pass it explicitly so Rust knows the names)
            let tag = dir
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or("x")
                .rsplit('-')
                .take(3)
                .collect::<Vec<_>>()
                .join("_");
            let prefix = format!("srlab_{tag}_r");
            let mut c = RabbitCluster {
                dir,
                opts: opts.clone(),
                names: (1..=n).map(|i| format!("{prefix}{i}@localhost")).collect(),
                amqp_ports: ports[..n].to_vec(),
                mgmt_ports: ports[n..2 * n].to_vec(),
                dist_ports: ports[2 * n..3 * n].to_vec(),
                epmd_port: ports[3 * n],
                started_in: Duration::ZERO,
            };
            let join = |v: &[u16]| {
                v.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let env: Vec<(String, String)> = vec![
                ("NODES".into(), n.to_string()),
                ("AMQP_PORTS".into(), join(&c.amqp_ports)),
                ("MGMT_PORTS".into(), join(&c.mgmt_ports)),
                ("DIST_PORTS".into(), join(&c.dist_ports)),
                ("EPMD_PORT".into(), c.epmd_port.to_string()),
                ("NODE_PREFIX".into(), prefix.clone()),
                ("MONITOR_USER".into(), MONITOR_USER.into()),
                ("MONITOR_PASSWORD".into(), MONITOR_PASSWORD.into()),
                (
                    "WAIT_TIMEOUT".into(),
                    opts.start_timeout.as_secs().max(1).to_string(),
                ),
                ("OWNER_PID".into(), std::process::id().to_string()),
                (
                    "WATCHDOG_RM_DIR".into(),
                    if keep_dirs() { "0" } else { "1" }.into(),
                ),
            ];
            let t0 = Instant::now();
            let timeout = opts.start_timeout + Duration::from_secs(30);
            let out = run_script(&c.scratch(), "rabbit-up.sh", &[c.dir_str()], &env, timeout)
                .map_err(|e| c.with_logs(e))?;
            match out.code {
                Some(0) => {}
                Some(2) if attempt < 3 => {
                    eprintln!(
                        "lab: rabbit-up: {} (retrying with other ports)",
                        out.stderr.trim()
                    );
                    continue;
                }
                _ => return Err(c.with_logs(check_ok("rabbit-up.sh", out).unwrap_err())),
            }
            // confirm from here (cheap: the script only returned once this was true)
            for i in 0..n {
                c.wait_running(i, n, Duration::from_secs(30))
                    .map_err(|e| c.with_logs(e))?;
            }
            c.started_in = t0.elapsed();
            eprintln!(
                "lab: rabbitmq cluster ready in {:.1}s ({}) dir={}",
                c.started_in.as_secs_f64(),
                out.stdout.trim(),
                c.dir.display()
            );
            return Ok(c);
        }
    }

    fn scratch(&self) -> PathBuf {
        self.dir.join("harness")
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("temp dir path is UTF-8")
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        let mut s = String::new();
        for i in 1..=self.opts.nodes {
            let log = self
                .dir
                .join(format!("rabbit{i}/log/{}.log", self.names[i - 1]));
            s += &format!("\n--- {} (tail)\n{}", log.display(), tail(&log, 10));
        }
        e.context(format!("rabbitmq cluster in {}{s}", self.dir.display()))
    }

    fn ctl_script(&self, args: &[&str], timeout: Duration) -> Result<ScriptOutput> {
        let mut a = vec![self.dir_str()];
        a.extend_from_slice(args);
        run_script(&self.scratch(), "rabbit-ctl.sh", &a, &[], timeout)
    }

    fn ctl_script_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.ctl_script(args, timeout)?;
        Ok(check_ok(&format!("rabbit-ctl.sh {args:?}"), out)?.stdout)
    }

    fn check_index(&self, i: usize) -> Result<String> {
        if i >= self.opts.nodes {
            bail!("node index {i} out of range (0..{})", self.opts.nodes);
        }
        Ok((i + 1).to_string())
    }

    // ---- accessors ----

    /// The cluster directory (`/tmp/sr-lab-rabbit-*`): `rabbitN/` (config, env.sh, ctl.sh,
    /// mnesia, log), `home/.erlang.cookie`, `cluster.env`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.opts.nodes
    }
    /// Erlang node name of node `i`, e.g. `srlab_<tag>_r1@localhost` (unique per directory).
    pub fn node_name(&self, i: usize) -> &str {
        &self.names[i]
    }
    pub fn node_names(&self) -> &[String] {
        &self.names
    }
    pub fn amqp_port(&self, i: usize) -> u16 {
        self.amqp_ports[i]
    }
    /// `amqp://monitor:monitor@127.0.0.1:P/%2f` (the monitor user can only read on `/`).
    pub fn amqp_url(&self, i: usize) -> String {
        format!(
            "amqp://{MONITOR_USER}:{MONITOR_PASSWORD}@127.0.0.1:{}/%2f",
            self.amqp_ports[i]
        )
    }
    pub fn mgmt_port(&self, i: usize) -> u16 {
        self.mgmt_ports[i]
    }
    /// Management API base URL of node `i`, e.g. `http://127.0.0.1:42011` (no trailing slash).
    pub fn mgmt_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.mgmt_ports[i])
    }
    pub fn dist_port(&self, i: usize) -> u16 {
        self.dist_ports[i]
    }
    /// The cluster's private epmd port.
    pub fn epmd_port(&self) -> u16 {
        self.epmd_port
    }

    // ---- queries ----

    /// `GET path` on node `i`'s management API as the `monitor` user.
    pub fn mgmt_get(&self, i: usize, path: &str) -> Result<HttpResponse> {
        self.mgmt_get_as(i, path, MONITOR_USER, MONITOR_PASSWORD)
    }

    /// `GET path` on node `i`'s management API with the given credentials (`guest`/`guest`
    /// is the administrator, loopback only).
    pub fn mgmt_get_as(
        &self,
        i: usize,
        path: &str,
        user: &str,
        password: &str,
    ) -> Result<HttpResponse> {
        self.check_index(i)?;
        http_get(
            &format!("{}{path}", self.mgmt_url(i)),
            Some((user, password)),
        )
    }

    /// How many nodes node `i`'s `/api/nodes` reports `running:true` (`None`: no answer).
    pub fn running_seen_by(&self, i: usize) -> Option<usize> {
        let r = self
            .mgmt_get_as(i, "/api/nodes?columns=name,running", "guest", "guest")
            .ok()?;
        (r.status == 200).then(|| r.body.matches("\"running\":true").count())
    }

    /// Waits until node `i` reports at least `n` running nodes.
    pub fn wait_running(&self, i: usize, n: usize, timeout: Duration) -> Result<Duration> {
        wait_until(
            &format!("node {i} to see {n} running nodes"),
            timeout,
            Duration::from_millis(250),
            || Ok(self.running_seen_by(i).is_some_and(|r| r >= n)),
        )
    }

    /// `rabbitmqctl -n <node i> args...` (or `rabbitmq-diagnostics ...` when `args[0]` is
    /// `"rabbitmq-diagnostics"`); returns stdout. Each call boots an Erlang VM (~0.5–1 s).
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<String> {
        let n = self.check_index(i)?;
        let mut a = vec!["ctl", n.as_str()];
        a.extend_from_slice(args);
        self.ctl_script_ok(&a, Duration::from_secs(120))
    }

    // ---- control / fault injection ----

    /// Graceful stop of node `i` (SIGTERM to beam.smp); returns once the process is gone.
    pub fn stop_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["stop-node", &n], Duration::from_secs(120))
            .map(drop)
    }
    /// SIGKILL node `i`'s beam.smp; returns once the process is gone.
    pub fn kill_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["kill-node", &n], Duration::from_secs(60))
            .map(drop)
    }
    /// Start node `i` again and wait (90 s) until it answers and sees every live node running.
    pub fn start_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["start-node", &n], Duration::from_secs(30))?;
        self.ctl_script_ok(&["wait-node", &n, "90"], Duration::from_secs(120))
            .map(drop)
    }
    /// `rabbitmqctl stop_app` on node `i` (VM stays up, the broker app stops).
    pub fn stop_app(&self, i: usize) -> Result<()> {
        self.ctl(i, &["stop_app"]).map(drop)
    }
    /// `rabbitmqctl start_app` on node `i`.
    pub fn start_app(&self, i: usize) -> Result<()> {
        self.ctl(i, &["start_app"]).map(drop)
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        tear_down(
            "rabbitmq",
            "rabbit-down.sh",
            &self.scratch(),
            &self.dir,
            || self.with_logs(anyhow!("")).to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"monitor:monitor"), "bW9uaXRvcjptb25pdG9y");
    }

    #[test]
    fn parses_http_and_chunked() {
        let r = parse_http_response(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "{\"a\":1}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn json_field_flat() {
        let b = r#"{"state": "running", "role": "master", "timeline": 1, "x": {"role": "inner"}}"#;
        assert_eq!(json_field(b, "role"), Some("master"));
        assert_eq!(json_field(b, "timeline"), Some("1"));
        assert_eq!(json_field(b, "nope"), None);
    }
}
