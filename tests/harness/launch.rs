//! Starting a collector process: the one launcher shared by the test harness, the ingest
//! benchmark (`collector/src/bin/collector-bench.rs`) and the load generator
//! (`collector/examples/loadgen.rs`).
//!
//! It holds the steps every caller repeated: a throwaway CA and loopback server certificate
//! ([`Pki`]), `collector init --json` ([`init`]), editing one key of the generated TOML
//! ([`set_config_key`]), and starting a process that announces itself with
//! `listening on ADDR` on its first stdout line ([`spawn_listening`]).
//!
//! The benchmark and the load generator include this file with `#[path]`, so it uses only
//! what the `sr-collector` crate already depends on (std, serde_json, sr-tls) and nothing
//! from the test harness around it.
#![allow(dead_code)] // Each includer uses a different subset.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The first line a collector (or the benchmark's child server) prints: its bound address.
pub const LISTENING_PREFIX: &str = "listening on ";

/// How long a starting process may take to print its address.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// An operator CA and one loopback server certificate (`localhost`, `127.0.0.1`), as PEM
/// files `ca.pem`, `cert.pem`, `key.pem` in `dir`. More server certificates signed by the same
/// CA come from [`Pki::server`].
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    authority: sr_tls::pki::Ca,
}

impl Pki {
    pub fn new(dir: &Path, common_name: &str) -> Pki {
        Pki::with_sans(dir, common_name, &["localhost", "127.0.0.1"])
    }

    /// As [`Pki::new`], with the default server certificate valid for `sans`.
    pub fn with_sans(dir: &Path, common_name: &str, sans: &[&str]) -> Pki {
        std::fs::create_dir_all(dir).expect("create the PKI directory");
        let authority = sr_tls::pki::Ca::new(common_name).expect("a CA");
        let leaf = authority.server(sans).expect("a server certificate");
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            authority,
        };
        std::fs::write(&pki.ca, pki.authority.cert_pem()).expect("write ca.pem");
        std::fs::write(&pki.cert, &leaf.cert_pem).expect("write cert.pem");
        std::fs::write(&pki.key, &leaf.key_pem).expect("write key.pem");
        pki
    }

    /// Another loopback server certificate from the same CA: `<name>.crt`, `<name>.key`.
    pub fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let leaf = self
            .authority
            .server(&["127.0.0.1", "localhost"])
            .expect("a server certificate");
        let (cert, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, leaf.cert_pem).expect("write the certificate");
        std::fs::write(&key, leaf.key_pem).expect("write the key");
        (cert, key)
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    /// An HTTPS client that trusts only this CA.
    pub fn client(&self) -> sr_tls::HttpsClient {
        sr_tls::HttpsClient::new(
            sr_tls::client_config(&self.ca, None).expect("the CA file loads"),
            Duration::from_secs(5),
        )
    }
}

/// Where `collector init` puts a collector's files inside its directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("collector.toml")
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// `BIN collector init --json` into `dir` (config `collector.toml`, store `state/`) with the
/// given certificate; returns the tokens it printed (`{"manager": ..., "admin": ...}`).
pub fn init(
    bin: &Path,
    dir: &Path,
    listen: &str,
    cert: &Path,
    key: &Path,
) -> Result<serde_json::Value, String> {
    init_with(bin, dir, listen, cert, key, &[])
}

/// [`init`] with more `collector init` flags (`--ca-path CA` for the client file).
pub fn init_with(
    bin: &Path,
    dir: &Path,
    listen: &str,
    cert: &Path,
    key: &Path,
    extra: &[&std::ffi::OsStr],
) -> Result<serde_json::Value, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = Command::new(bin)
        .args(["collector", "init", "--json", "--listen", listen])
        .arg("--config")
        .arg(config_path(dir))
        .arg("--state-dir")
        .arg(state_path(dir))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(extra)
        .env("STATUS_REPORTER_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "collector init: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("init --json printed no tokens: {e}"))
}

/// Sets top-level `key = value` (a TOML literal) in `config`: replaces the line or inserts it
/// before the first table, where top-level keys must be.
pub fn set_config_key(config: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(config).expect("read the collector config");
    let line = format!("{key} = {value}");
    let prefix = format!("{key} = ");
    let mut found = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        let at = lines
            .iter()
            .position(|l| l.starts_with('['))
            .unwrap_or(lines.len());
        lines.insert(at, line);
    }
    std::fs::write(config, lines.join("\n") + "\n").expect("write the collector config");
}

/// Waits up to `deadline` for the `listening on ADDR` line on `stdout`, then keeps draining
/// it on a thread so the process never blocks on a full pipe. `Err` carries what it printed.
pub fn read_listening(stdout: ChildStdout, deadline: Duration) -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(deadline)
        .map_err(|_| format!("nothing printed within {deadline:?}"))?;
    line.trim()
        .strip_prefix(LISTENING_PREFIX)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line {line:?}"))
}

/// Spawns `cmd` with stdout piped and waits for its address; the child is killed when it
/// does not announce one.
pub fn spawn_listening(
    cmd: &mut Command,
    deadline: Duration,
) -> Result<(Child, SocketAddr), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    match read_listening(stdout, deadline) {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// `BIN collector run --config DIR/collector.toml` with its stderr appended to `log`.
pub fn run_command(bin: &Path, dir: &Path, log: &Path, log_level: &str) -> Command {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the collector log");
    let mut cmd = Command::new(bin);
    cmd.args(["collector", "run", "--config"])
        .arg(config_path(dir))
        .env("STATUS_REPORTER_LOG", log_level)
        .env("NO_COLOR", "1")
        .stderr(stderr);
    cmd
}

/// A running collector process, killed (SIGKILL) when dropped.
pub struct CollectorProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl CollectorProcess {
    /// Runs `cmd` (from [`run_command`], possibly wrapped) until it prints its address.
    pub fn start(mut cmd: Command) -> Result<CollectorProcess, String> {
        let (child, addr) = spawn_listening(&mut cmd, START_DEADLINE)?;
        Ok(CollectorProcess { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
