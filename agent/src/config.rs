//! The agent's TOML config: parsed strictly (unknown keys are errors), then validated
//! into a checked [`AgentConfig`] with every problem reported at once, by key name.
//!
//! The file is written by `status-reporter configure` and read by `run`, `validate`,
//! `probe` and `show-config`. Example:
//!
//! ```toml
//! node_type = "db"
//! node_id = "3d5d6c8e-4f0b-4d8e-9a57-0c4f1f1f2b11"
//! node_name = "db1"
//! reporting_freq = 5
//! token = "..."                 # or token_file = "/etc/status-reporter/token"
//! ca_path = "/etc/status-reporter/ca.pem"
//! managers = ["10.0.0.11", "10.0.0.12:53333"]
//! key_path = "/etc/status-reporter/node.key"
//! state_dir = "/var/lib/status-reporter"
//!
//! [[probes]]
//! kind = "host"
//! ```

use serde::{Deserialize, Serialize};
use sr_fsutil as fsutil;
use sr_probes::ProbeConfig;
use sr_protocol::signing::NodeKey;
use sr_protocol::NodeType;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where the packaged service looks for its config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/status-reporter/agent.toml";
/// Overrides [`DEFAULT_CONFIG_PATH`] for every node command.
pub const CONFIG_ENV: &str = "STATUS_REPORTER_CONFIG";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/status-reporter";
pub const DEFAULT_REPORTING_FREQ: u32 = 5;
pub const DEFAULT_PUSH_TIMEOUT_MS: u64 = 5_000;
/// Longest token accepted. Cloudify tokens are well under this; the bound keeps a
/// pasted file or binary blob out of every request header.
pub const MAX_TOKEN_LEN: usize = 1024;
/// More managers than this is a typo or a hostile list, not a cluster.
pub const MAX_MANAGERS: usize = 32;
/// Largest config file read; anything bigger is refused unread.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The file as written, before validation. Every field is optional here so that
/// validation can name every missing key at once instead of stopping at the first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The address other nodes know this one by (shown as `private_ip` in cluster status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_freq: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Per-request deadline for a push to one manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeConfig>,
    /// Where the node-local check endpoint listens (`127.0.0.1:9200`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_listen: Option<String>,
    /// `127.0.0.1:PORT` (or `[::1]:PORT`): serve Prometheus metrics there over plain HTTP.
    /// Off when absent. Loopback only: the endpoint has no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// `[events]`: what may wake the agent for a cycle before its next tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<RawEvents>,
}

/// The `[events]` table as written ([`crate::watch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// Watch the local process serving each Patroni, PostgreSQL, RabbitMQ and AMQP probe's
    /// port, and probe at once when it exits. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_exit: Option<bool>,
    /// Hold an idle TCP connection to each of those ports and probe at once when it drops.
    /// Default false: some servers close a silent connection after their handshake
    /// timeout, with a log line each time (docs/operations.md, "Event-driven detection").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_drop: Option<bool>,
    /// Subscribe to systemd's state-change signals of the units each `services` probe
    /// reads, and probe at once when one changes state. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_state: Option<bool>,
    /// Hold one authenticated session per `postgres`/`pg_connect` probe and one AMQP
    /// connection per `amqp`/`rabbitmq` probe, logged in as the probe logs in, and probe at
    /// once when the server ends one. Default true: an authenticated idle session is not
    /// closed by handshake timeouts, so it costs one idle session per server and no log
    /// lines while it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_end: Option<bool>,
    /// Extra cycles allowed per reporting interval (a token bucket); 0 turns event-driven
    /// cycles off. Default [`DEFAULT_MAX_EXTRA_CYCLES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extra_cycles: Option<u32>,
    /// Poll each `patroni` probe's `/patroni` and each `etcd` probe's `/health` every this
    /// many milliseconds and probe at once when the answer's state fields change or it
    /// stops coming ([`crate::watch::fast_poll`]). 0 = off. Default
    /// [`DEFAULT_FAST_POLL_MS`] (off); otherwise [`FAST_POLL_MS`] and shorter than the
    /// interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_poll_ms: Option<u64>,
}

/// Extra cycles per interval when `[events] max_extra_cycles` is not set.
pub const DEFAULT_MAX_EXTRA_CYCLES: u32 = 3;
/// The most extra cycles per interval that may be configured.
pub const MAX_EXTRA_CYCLES: u32 = 20;

/// `[events] fast_poll_ms` when not set: off. Measured against a real Patroni 3.0 over
/// mutual TLS (BENCHMARKS.md, "Fast poll"), a poll every second cost 2.7 ms of agent CPU
/// per second in a debug build (Patroni 3.0 closes each connection: one TLS handshake per
/// poll), 4.5 × the idle agent, over issue 17's bound of 1.5 ×; meeting the bound would take
/// a poll slower than the interval. So it is the operator's choice, per fleet.
pub const DEFAULT_FAST_POLL_MS: u64 = 0;
/// The allowed `[events] fast_poll_ms` other than 0 (off): faster would cost more than a
/// probe cycle; slower than a minute is what the interval is for.
pub const FAST_POLL_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// The checked `[events]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    pub process_exit: bool,
    pub connection_drop: bool,
    pub unit_state: bool,
    pub session_end: bool,
    pub max_extra_cycles: u32,
    /// 0 = off.
    pub fast_poll_ms: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            process_exit: true,
            connection_drop: false,
            unit_state: true,
            session_end: true,
            max_extra_cycles: DEFAULT_MAX_EXTRA_CYCLES,
            fast_poll_ms: DEFAULT_FAST_POLL_MS,
        }
    }
}

/// Where the token comes from; kept so `show-config` and reload know what to re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Inline,
    File(PathBuf),
}

/// A secret that never prints itself: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A validated manager address: an IP or hostname, and a port (default 53333).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManagerAddr {
    pub host: String,
    pub port: u16,
}

impl ManagerAddr {
    /// The base URL for this manager's API (`https://host:port`).
    pub fn base_url(&self) -> String {
        format!("https://{self}")
    }
}

impl fmt::Display for ManagerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ManagerAddr {
    type Err = String;

    /// Accepts `10.0.0.1`, `10.0.0.1:53333`, `mgr1.example`, `mgr1:8443`, `fd00::1` and
    /// `[fd00::1]:53333`.
    fn from_str(s: &str) -> Result<Self, String> {
        let shown: String = s.chars().take(80).collect();
        let bad = |why: &str| format!("{shown:?} is not a valid manager address: {why}");
        if s.is_empty() || s.len() > 260 {
            return Err(bad("expected an IP or hostname, optionally with :port"));
        }
        let parse_port = |p: &str| -> Result<u16, String> {
            // Digits only: `u16::from_str` would also take a leading `+`.
            match p.parse::<u16>() {
                Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
                _ => Err(bad("the port must be 1-65535")),
            }
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("use [IPv6]:port"))?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address"))?;
            return Ok(ManagerAddr {
                host: ip.to_string(),
                port: parse_port(port)?,
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ManagerAddr {
                host: ip.to_string(),
                port: sr_protocol::DEFAULT_PORT,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (s, sr_protocol::DEFAULT_PORT),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            if ip.is_ipv6() {
                return Err(bad("put an IPv6 address in brackets to give a port"));
            }
            return Ok(ManagerAddr {
                host: ip.to_string(),
                port,
            });
        }
        if looks_like_ipv4(host) {
            return Err(bad("not a valid IPv4 address"));
        }
        if !valid_hostname(host) {
            return Err(bad("not a valid IP address or hostname"));
        }
        Ok(ManagerAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// Digits and dots only: meant as an IPv4 address, so `10.0.0.300` is refused rather
/// than looked up as a hostname.
fn looks_like_ipv4(s: &str) -> bool {
    s.contains('.') && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// RFC 1123 hostname: dot-separated labels of letters, digits and inner hyphens.
pub fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Checks a token's shape: what the API header can carry, with no whitespace.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() {
        return Err("the token is empty or only whitespace".into());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "the token is longer than {MAX_TOKEN_LEN} characters"
        ));
    }
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_whitespace() {
            "whitespace".to_string()
        } else {
            format!("the character {c:?}")
        };
        return Err(format!(
            "the token contains {what}; tokens are printable ASCII without spaces"
        ));
    }
    Ok(())
}

/// A node id is used in the report URL path, so it is restricted to URL-safe text.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!(
            "{:?} must be 1-64 characters of letters, digits, '-', '_' or '.' (a UUID)",
            truncate(id, 80)
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("{id:?} is not a valid node id"));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The checked config the daemon runs on.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub node_type: NodeType,
    pub node_id: String,
    pub node_name: String,
    pub private_ip: Option<String>,
    pub reporting_freq: u32,
    pub token: Secret,
    pub token_source: TokenSource,
    pub ca_path: PathBuf,
    /// The operator's seed list, in the order given. Never replaced by discovery.
    pub managers: Vec<ManagerAddr>,
    pub key_path: PathBuf,
    pub state_dir: PathBuf,
    pub push_timeout: Duration,
    pub probes: Vec<ProbeConfig>,
    /// The check endpoint's address ([`crate::check`]), when enabled.
    pub check_listen: Option<std::net::SocketAddr>,
    /// Where to serve Prometheus metrics (loopback), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub events: Events,
}

/// Every problem found in a config file, each naming its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: String },
    #[error("config {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("config {path} has {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

impl RawConfig {
    /// Parses TOML text strictly: unknown keys and wrong types are errors that name the key.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = fsutil::read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| match e {
            fsutil::ReadError::TooLarge => ConfigError::TooLarge {
                path: path.display().to_string(),
            },
            other => ConfigError::Read {
                path: path.display().to_string(),
                source: other.into(),
            },
        })?;
        let text = String::from_utf8(text).map_err(|_| ConfigError::Parse {
            path: path.display().to_string(),
            message: "the file is not UTF-8 text".into(),
        })?;
        Self::parse(&text, path)
    }

    /// The TOML this config is written as.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RawConfig always serializes")
    }

    /// Checks every key and returns the checked config, or every problem at once.
    /// Files the config points at (token file, CA, key) are read and checked too, so
    /// `validate` catches a config that would fail at start.
    pub fn validate(&self, path: &Path, now_unix: i64) -> Result<AgentConfig, ConfigError> {
        let mut problems = Vec::new();
        let node_type = match self.node_type.as_deref() {
            None => {
                problems.push("node_type: missing (manager, db or broker)".to_string());
                None
            }
            Some(t) => t
                .parse::<NodeType>()
                .map_err(|e| problems.push(format!("node_type: {e}")))
                .ok(),
        };
        let node_id = match self.node_id.as_deref() {
            None => {
                problems.push("node_id: missing".to_string());
                None
            }
            Some(id) => check_node_id(id)
                .map_err(|e| problems.push(format!("node_id: {e}")))
                .ok()
                .map(|_| id.to_string()),
        };
        let node_name = match self.node_name.as_deref() {
            None => {
                problems.push("node_name: missing".to_string());
                None
            }
            Some(n)
                if n.trim().is_empty()
                    || n.len() > sr_protocol::report::MAX_NAME_LEN
                    || n.chars().any(char::is_control) =>
            {
                problems.push(format!(
                    "node_name: must be 1-{} printable characters, got {:?}",
                    sr_protocol::report::MAX_NAME_LEN,
                    truncate(n, 80)
                ));
                None
            }
            Some(n) => Some(n.to_string()),
        };
        if let Some(ip) = &self.private_ip {
            if ip.parse::<IpAddr>().is_err() && !valid_hostname(ip) {
                problems.push(format!(
                    "private_ip: {:?} is not an IP address or hostname",
                    truncate(ip, 80)
                ));
            }
        }
        let reporting_freq = self.reporting_freq.unwrap_or(DEFAULT_REPORTING_FREQ);
        if !sr_protocol::report::REPORTING_FREQ_RANGE.contains(&reporting_freq) {
            problems.push(format!(
                "reporting_freq: must be 1-3600 seconds, got {reporting_freq}"
            ));
        }
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                problems.push("token, token_file: give one, not both".to_string());
                None
            }
            (None, None) => {
                problems.push("token: missing (or set token_file)".to_string());
                None
            }
            (Some(t), None) => match check_token(t) {
                Ok(()) => Some((Secret::new(t.clone()), TokenSource::Inline)),
                Err(e) => {
                    problems.push(format!("token: {e}"));
                    None
                }
            },
            (None, Some(file)) => match fsutil::read_bounded(file, MAX_TOKEN_LEN as u64 + 2) {
                Err(e) => {
                    problems.push(format!("token_file: cannot read {}: {e}", file.display()));
                    None
                }
                Ok(bytes) => {
                    // One trailing newline is how editors save files; anything else is content.
                    let text = String::from_utf8_lossy(&bytes);
                    let t = text.strip_suffix('\n').unwrap_or(&text).to_string();
                    match check_token(&t) {
                        Ok(()) => Some((Secret::new(t), TokenSource::File(file.clone()))),
                        Err(e) => {
                            problems.push(format!("token_file: {}: {e}", file.display()));
                            None
                        }
                    }
                }
            },
        };
        let ca_path = match &self.ca_path {
            None => {
                problems.push("ca_path: missing".to_string());
                None
            }
            Some(p) => match check_ca(p, now_unix) {
                Ok(()) => Some(p.clone()),
                Err(e) => {
                    problems.push(format!("ca_path: {e}"));
                    None
                }
            },
        };
        let managers = match &self.managers {
            None => {
                problems.push("managers: missing (a list of manager IPs or hostnames)".to_string());
                Vec::new()
            }
            Some(list) => {
                let (addrs, errs) = parse_managers(list);
                problems.extend(errs.into_iter().map(|e| format!("managers: {e}")));
                addrs
            }
        };
        let config_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let key_path = self
            .key_path
            .clone()
            .unwrap_or_else(|| config_dir.join("node.key"));
        if let Err(e) = load_key(&key_path) {
            problems.push(format!("key_path: {e}"));
        }
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        if state_dir.as_os_str().is_empty() || state_dir.is_relative() {
            problems.push(format!(
                "state_dir: must be an absolute path, got {:?}",
                state_dir.display().to_string()
            ));
        }
        let push_timeout_ms = self.push_timeout_ms.unwrap_or(DEFAULT_PUSH_TIMEOUT_MS);
        if !(100..=60_000).contains(&push_timeout_ms) {
            problems.push(format!(
                "push_timeout_ms: must be 100-60000, got {push_timeout_ms}"
            ));
        }
        if self.probes.is_empty() {
            // With no probe the node would report OK having checked nothing.
            problems.push(
                "probes: at least one [[probes]] table is required (for example kind = \"host\")"
                    .to_string(),
            );
        }
        for (i, p) in self.probes.iter().enumerate() {
            problems.extend(
                p.validate()
                    .into_iter()
                    .map(|e| format!("probes[{i}]: {e}")),
            );
        }
        problems.extend(check_service_names(&self.probes));
        let check_listen =
            self.check_listen
                .as_deref()
                .and_then(|a| match a.parse::<std::net::SocketAddr>() {
                    Ok(addr) if addr.port() != 0 => Some(addr),
                    _ => {
                        problems.push(format!(
                        "check_listen: expected IP:PORT with a port (127.0.0.1:9200), got {a:?}"
                    ));
                        None
                    }
                });
        let metrics_listen = match self.metrics_listen.as_deref().map(check_metrics_listen) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                problems.push(format!("metrics_listen: {e}"));
                None
            }
        };
        let raw_events = self.events.clone().unwrap_or_default();
        let d = Events::default();
        let events = Events {
            process_exit: raw_events.process_exit.unwrap_or(d.process_exit),
            connection_drop: raw_events.connection_drop.unwrap_or(d.connection_drop),
            unit_state: raw_events.unit_state.unwrap_or(d.unit_state),
            session_end: raw_events.session_end.unwrap_or(d.session_end),
            max_extra_cycles: raw_events.max_extra_cycles.unwrap_or(d.max_extra_cycles),
            fast_poll_ms: raw_events.fast_poll_ms.unwrap_or(d.fast_poll_ms),
        };
        if events.max_extra_cycles > MAX_EXTRA_CYCLES {
            problems.push(format!(
                "events.max_extra_cycles: at most {MAX_EXTRA_CYCLES} extra cycles per interval, got {}",
                events.max_extra_cycles
            ));
        }
        if events.fast_poll_ms != 0 {
            if !FAST_POLL_MS.contains(&events.fast_poll_ms) {
                problems.push(format!(
                    "events.fast_poll_ms: 0 (off) or {}..={} ms, got {}",
                    FAST_POLL_MS.start(),
                    FAST_POLL_MS.end(),
                    events.fast_poll_ms
                ));
            } else if events.fast_poll_ms >= u64::from(reporting_freq) * 1000 && reporting_freq > 0
            {
                problems.push(format!(
                    "events.fast_poll_ms: {} ms is not shorter than reporting_freq ({reporting_freq} s): set it lower or 0 (off)",
                    events.fast_poll_ms
                ));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                problems,
            });
        }
        let (token, token_source) = token.expect("checked above");
        Ok(AgentConfig {
            path: path.to_path_buf(),
            node_type: node_type.expect("checked above"),
            node_id: node_id.expect("checked above"),
            node_name: node_name.expect("checked above"),
            private_ip: self.private_ip.clone(),
            reporting_freq,
            token,
            token_source,
            ca_path: ca_path.expect("checked above"),
            managers,
            key_path,
            state_dir,
            push_timeout: Duration::from_millis(push_timeout_ms),
            probes: self.probes.clone(),
            check_listen,
            metrics_listen,
            events,
        })
    }
}

/// `metrics_listen`: a loopback socket address (the agent's metrics are unauthenticated,
/// so they are for a scraper on the node itself). Port 0 picks a free port (tests).
pub fn check_metrics_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
        let shown: String = s.chars().take(64).collect();
        format!("must be IP:PORT such as 127.0.0.1:9464, got {shown:?}")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "must be a loopback address (127.0.0.1 or [::1]): the agent's metrics have no authentication; got {addr}"
        ));
    }
    Ok(addr)
}

impl AgentConfig {
    /// Reads, parses and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        RawConfig::read(path)?.validate(path, crate::unix_now())
    }
}

/// Parses a manager list; returns the valid addresses and one message per problem
/// (bad address, duplicate, too many).
pub fn parse_managers(list: &[String]) -> (Vec<ManagerAddr>, Vec<String>) {
    let mut addrs: Vec<ManagerAddr> = Vec::new();
    let mut errors = Vec::new();
    if list.is_empty() {
        errors.push("the list is empty; give at least one manager".to_string());
    }
    if list.len() > MAX_MANAGERS {
        errors.push(format!(
            "{} managers given; at most {MAX_MANAGERS} are allowed",
            list.len()
        ));
    }
    for s in list.iter().take(MAX_MANAGERS) {
        match s.parse::<ManagerAddr>() {
            Ok(a) if addrs.contains(&a) => errors.push(format!("{s:?} is listed twice (as {a})")),
            Ok(a) => addrs.push(a),
            Err(e) => errors.push(e),
        }
    }
    (addrs, errors)
}

/// The CA must be a parseable PEM certificate that is valid now.
/// Two probes that report the same service display name would overwrite each other in
/// the report (a `services` unit named `Patroni` next to the `patroni` probe loses the
/// Patroni facts): one problem per clash, naming both probes.
fn check_service_names(probes: &[ProbeConfig]) -> Vec<String> {
    let mut first: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut problems = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        for name in p.service_names() {
            match first.get(name) {
                Some(&j) if j != i => problems.push(format!(
                    "probes[{i}] ({}) reports service {name:?}, which probes[{j}] ({}) already reports: \
                     one would overwrite the other; rename one (a services unit's `name`, a tcp/http probe's `name`)",
                    p.kind(),
                    probes[j].kind()
                )),
                Some(_) => problems.push(format!(
                    "probes[{i}] ({}) reports service {name:?} twice",
                    p.kind()
                )),
                None => {
                    first.insert(name, i);
                }
            }
        }
    }
    problems
}

pub fn check_ca(path: &Path, now_unix: i64) -> Result<(), String> {
    let certs = sr_tls::load_certs(path).map_err(|e| e.to_string())?;
    sr_tls::check_validity(path, &certs, now_unix).map_err(|e| e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a PEM \"PRIVATE KEY\" holding an Ed25519 key")]
    Malformed { path: String },
}

/// Loads the node's signing key from its PEM file.
pub fn load_key(path: &Path) -> Result<NodeKey, KeyError> {
    let bytes = fsutil::read_bounded(path, 16 * 1024).map_err(|e| KeyError::Read {
        path: path.display().to_string(),
        source: match e {
            fsutil::ReadError::TooLarge => std::io::Error::other("file too large for a key"),
            other => other.into(),
        },
    })?;
    let der = fsutil::pem_decode(&bytes, "PRIVATE KEY").ok_or_else(|| KeyError::Malformed {
        path: path.display().to_string(),
    })?;
    NodeKey::from_pkcs8(&der).map_err(|_| KeyError::Malformed {
        path: path.display().to_string(),
    })
}

/// The config path in effect: `--config`, else `$STATUS_REPORTER_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// The config as `show-config` prints it: TOML with the token replaced.
pub fn redacted_toml(raw: &RawConfig) -> String {
    let mut shown = raw.clone();
    if shown.token.is_some() {
        shown.token = Some("<redacted>".into());
    }
    let text = shown.to_toml();
    // Probe configs may carry passwords; none is printed.
    redact_secret_keys(&text)
}

/// Replaces the value of any `password`/`secret`/`token` key in TOML text.
fn redact_secret_keys(text: &str) -> String {
    text.lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            let secret = ["password", "secret"]
                .iter()
                .any(|s| key.to_ascii_lowercase().contains(s));
            if secret && line.contains('=') {
                format!("{key} = \"<redacted>\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_addresses_parse_with_default_and_explicit_ports() {
        let ok = [
            ("10.0.0.1", "10.0.0.1:53333"),
            ("10.0.0.1:8443", "10.0.0.1:8443"),
            ("Mgr1.Example", "mgr1.example:53333"),
            ("mgr1:1", "mgr1:1"),
            ("fd00::1", "[fd00::1]:53333"),
            ("[fd00::1]:9", "[fd00::1]:9"),
        ];
        for (input, want) in ok {
            assert_eq!(
                input.parse::<ManagerAddr>().unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in [
            "",
            "10.0.0.300",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "10.0.0.1:",
            "host name",
            "-bad",
            "a..b",
            "fd00::1:99999x",
            "[fd00::1]",
            "http://x",
            "é.example",
        ] {
            assert!(
                bad.parse::<ManagerAddr>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn duplicates_are_found_after_normalising_the_port() {
        let (addrs, errs) = parse_managers(&[
            "10.0.0.1".into(),
            "10.0.0.1:53333".into(),
            "10.0.0.2".into(),
        ]);
        assert_eq!(addrs.len(), 2);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("listed twice"), "{errs:?}");
    }

    #[test]
    fn tokens_must_be_printable_without_spaces() {
        assert!(check_token("abc-DEF_123.=+/").is_ok());
        for bad in [
            "",
            "   ",
            "a b",
            "tab\there",
            "nl\n",
            "é",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn two_probes_reporting_one_service_name_are_refused_naming_both() {
        let text = "[[probes]]\nkind = \"patroni\"\nurl = \"http://127.0.0.1:8008\"\nmember = \"db1\"\n\
                    [[probes]]\nkind = \"services\"\nunits = [{ name = \"Patroni\", unit = \"patroni.service\" }]\n";
        let raw = RawConfig::parse(text, Path::new("x.toml")).unwrap();
        let problems = check_service_names(&raw.probes);
        assert_eq!(problems.len(), 1, "{problems:?}");
        for part in ["probes[1] (services)", "probes[0] (patroni)", "\"Patroni\""] {
            assert!(problems[0].contains(part), "{part}: {}", problems[0]);
        }
        // The same through validate, with the other problems.
        let ConfigError::Invalid { problems, .. } = raw
            .validate(Path::new("/nonexistent/agent.toml"), 0)
            .unwrap_err()
        else {
            panic!("expected Invalid")
        };
        assert!(
            problems.iter().any(|p| p.contains("already reports")),
            "{problems:?}"
        );
        // Distinct names pass.
        let ok = text.replace("name = \"Patroni\"", "name = \"Patroni unit\"");
        let raw = RawConfig::parse(&ok, Path::new("x.toml")).unwrap();
        assert!(check_service_names(&raw.probes).is_empty());
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = RawConfig::parse("node_typ = \"db\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_typ"), "{e}");
        let e = RawConfig::parse("reporting_freq = \"fast\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reporting_freq"), "{e}");
        let e = RawConfig::parse("[[probes]]\nkind = \"nope\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn events_default_on_for_process_exit_and_are_checked() {
        let origin = Path::new("x.toml");
        let e = RawConfig::parse("[events]\nprocess_exits = true\n", origin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("process_exits"), "{e}");
        let e = RawConfig::parse("[events]\nmax_extra_cycles = -1\n", origin)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_extra_cycles"), "{e}");
        let raw = RawConfig::parse("[events]\nmax_extra_cycles = 21\n", origin).unwrap();
        let ConfigError::Invalid { problems, .. } = raw.validate(origin, 0).unwrap_err() else {
            panic!("expected Invalid")
        };
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("events.max_extra_cycles: at most 20")),
            "{problems:?}"
        );
        for bad in [
            "session_end = \"yes\"",
            "session_end = 1",
            "session_end = []",
            "session_ends = true",
            "session_end = true\nsession_end = false",
            "session_end =",
        ] {
            let e = RawConfig::parse(&format!("[events]\n{bad}\n"), origin)
                .unwrap_err()
                .to_string();
            assert!(e.contains("session_end"), "{bad:?}: {e}");
        }
        let raw = RawConfig::parse("[events]\nsession_end = false\n", origin).unwrap();
        assert_eq!(raw.events.unwrap().session_end, Some(false));
        let raw = RawConfig::parse("[events]\nconnection_drop = true\n", origin).unwrap();
        let ev = raw.events.clone().unwrap();
        assert_eq!(ev.connection_drop, Some(true));
        assert_eq!(ev.process_exit, None, "defaults are not written back");
        assert_eq!(
            Events::default(),
            Events {
                process_exit: true,
                connection_drop: false,
                unit_state: true,
                session_end: true,
                max_extra_cycles: DEFAULT_MAX_EXTRA_CYCLES,
                fast_poll_ms: DEFAULT_FAST_POLL_MS,
            }
        );
    }

    #[test]
    fn fast_poll_ms_is_checked() {
        let origin = Path::new("x.toml");
        let base = "node_type = \"db\"\nnode_id = \"n1\"\nnode_name = \"db1\"\ntoken = \"t\"\nmanagers = [\"127.0.0.1\"]\n";
        let events = |freq: u32, table: &str| {
            let text = format!("{base}reporting_freq = {freq}\n[events]\n{table}\n");
            RawConfig::parse(&text, origin)
                .unwrap()
                .validate(origin, 0)
                .map(|c| c.events.fast_poll_ms)
                .map_err(|e| match e {
                    ConfigError::Invalid { problems, .. } => problems,
                    other => vec![other.to_string()],
                })
        };
        let problems_of = |freq, table| events(freq, table).unwrap_err();
        // The ca_path is missing in `base`: every config is invalid for that too, so look
        // only at the fast_poll_ms problems (all reported at once, beside the others).
        let fast = |p: Vec<String>| {
            p.into_iter()
                .filter(|p| p.starts_with("events.fast_poll_ms"))
                .collect::<Vec<_>>()
        };
        assert!(fast(problems_of(5, "")).is_empty());
        assert!(fast(problems_of(5, "fast_poll_ms = 0")).is_empty());
        assert!(fast(problems_of(5, "fast_poll_ms = 100")).is_empty());
        for (freq, bad, says) in [
            (5, "fast_poll_ms = 99", "0 (off) or 100..=60000 ms, got 99"),
            (3600, "fast_poll_ms = 60001", "got 60001"),
            (
                5,
                "fast_poll_ms = 5000",
                "not shorter than reporting_freq (5 s)",
            ),
            (
                1,
                "fast_poll_ms = 1000",
                "not shorter than reporting_freq (1 s)",
            ),
        ] {
            let p = fast(problems_of(freq, bad));
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].contains(says), "{bad}: {p:?}");
        }
        // Both [events] problems at once.
        let p = problems_of(5, "fast_poll_ms = 7\nmax_extra_cycles = 99");
        assert!(
            p.iter().any(|p| p.starts_with("events.fast_poll_ms")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.starts_with("events.max_extra_cycles")),
            "{p:?}"
        );
        // Malformed values and unknown keys are parse errors naming the key.
        for bad in [
            "fast_poll_ms = -1",
            "fast_poll_ms = 1.5",
            "fast_poll_ms = \"1000\"",
            "fast_poll_ms = true",
            "fast_poll_ms = 99999999999999999999",
            "fast_poll = 1000",
            "fast_poll_ms =",
        ] {
            let e = RawConfig::parse(&format!("[events]\n{bad}\n"), origin)
                .unwrap_err()
                .to_string();
            assert!(e.contains("fast_poll"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn fast_poll_ms_is_off_by_default_and_taken_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = sr_tls::pki::Ca::new("test ca").unwrap();
        std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
        let der = sr_protocol::signing::NodeKey::generate_pkcs8().unwrap();
        std::fs::write(d.join("node.key"), fsutil::pem_encode(&der, "PRIVATE KEY")).unwrap();
        let path = d.join("agent.toml");
        let fast_poll_ms = |freq: u32, table: &str| {
            let text = format!(
                "node_type = \"db\"\nnode_id = \"n1\"\nnode_name = \"db1\"\ntoken = \"t\"\n\
                 managers = [\"127.0.0.1\"]\nca_path = \"{d}/ca.pem\"\nkey_path = \"{d}/node.key\"\n\
                 state_dir = \"{d}/state\"\nreporting_freq = {freq}\n[events]\n{table}\n\
                 [[probes]]\nkind = \"host\"\n",
                d = d.display()
            );
            RawConfig::parse(&text, &path)
                .and_then(|raw| raw.validate(&path, crate::unix_now()))
                .unwrap_or_else(|e| panic!("{e}"))
                .events
                .fast_poll_ms
        };
        assert_eq!(fast_poll_ms(5, ""), 0, "off unless asked for");
        assert_eq!(fast_poll_ms(5, "fast_poll_ms = 1000"), 1000);
        assert_eq!(fast_poll_ms(1, "fast_poll_ms = 250"), 250);
        assert_eq!(fast_poll_ms(5, "fast_poll_ms = 0"), 0);
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let raw = RawConfig {
            node_type: Some("database".into()),
            node_id: Some("../etc".into()),
            reporting_freq: Some(0),
            token: Some(" ".into()),
            managers: Some(vec!["10.0.0.1".into(), "10.0.0.1".into(), "nope..x".into()]),
            state_dir: Some("relative".into()),
            check_listen: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let err = raw
            .validate(Path::new("/nonexistent/agent.toml"), 0)
            .unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("expected Invalid")
        };
        let text = problems.join("\n");
        for key in [
            "node_type:",
            "node_id:",
            "node_name:",
            "reporting_freq:",
            "token:",
            "ca_path:",
            "managers:",
            "key_path:",
            "state_dir:",
            "check_listen:",
        ] {
            assert!(text.contains(key), "missing {key} in:\n{text}");
        }
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.starts_with("managers:"))
                .count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn show_config_never_prints_the_token_or_passwords() {
        let raw = RawConfig {
            token: Some("s3cr3t-token".into()),
            ..Default::default()
        };
        let shown = redacted_toml(&raw);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let shown = redact_secret_keys("password = \"hunter2\"\nname = \"x\"");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("name = \"x\""));
    }

    /// The shipped example (`packaging/agent.example.toml`).
    const EXAMPLE: &str = include_str!("../../packaging/agent.example.toml");

    /// Each commented-out `[[probes]]` example of `text`, uncommented: from a `# [[probes]]`
    /// line up to the next line that is not `# ` followed by more (a bare `#`, a blank or an
    /// uncommented line ends it).
    fn commented_probe_blocks(text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let body = line.strip_prefix("# ").filter(|b| !b.trim().is_empty());
            match (&mut current, body) {
                (None, Some("[[probes]]")) => current = Some("[[probes]]\n".into()),
                (Some(block), Some(b)) if b != "[[probes]]" => {
                    block.push_str(b);
                    block.push('\n');
                }
                (Some(_), b) => {
                    blocks.extend(current.take());
                    if b == Some("[[probes]]") {
                        current = Some("[[probes]]\n".into());
                    }
                }
                (None, _) => {}
            }
        }
        blocks.extend(current);
        blocks
    }

    /// The example as shipped, and with every commented probe example uncommented, parses
    /// and passes the whole of `validate` once the files it names exist: the examples cannot
    /// drift from the probes' config structs (unknown keys are errors) or their checks.
    #[test]
    fn the_shipped_example_and_its_commented_probes_validate() {
        let blocks = commented_probe_blocks(EXAMPLE);
        let kinds: Vec<String> = blocks
            .iter()
            .map(|b| {
                let raw = RawConfig::parse(b, Path::new("block.toml"))
                    .unwrap_or_else(|e| panic!("a commented example does not parse: {e}\n{b}"));
                assert_eq!(raw.probes.len(), 1, "{b}");
                raw.probes[0].kind().to_string()
            })
            .collect();
        for kind in [
            "patroni",
            "haproxy",
            "keepalived",
            "galera",
            "pacemaker",
            "opensearch",
            "minio",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "no commented {kind} example: {kinds:?}"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = sr_tls::pki::Ca::new("example ca").unwrap();
        std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
        let der = sr_protocol::signing::NodeKey::generate_pkcs8().unwrap();
        std::fs::write(d.join("node.key"), fsutil::pem_encode(&der, "PRIVATE KEY")).unwrap();
        std::fs::write(d.join("token"), "example-token\n").unwrap();
        // The files it names, here.
        let mut shipped = EXAMPLE.to_string();
        for (from, to) in [
            ("/etc/status-reporter/token", "token"),
            ("/etc/status-reporter/ca.pem", "ca.pem"),
            ("/etc/status-reporter/node.key", "node.key"),
            ("/var/lib/status-reporter", "state"),
        ] {
            shipped = shipped.replace(from, &d.join(to).display().to_string());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let path = d.join("agent.toml");
        let check = |text: &str| {
            RawConfig::parse(text, &path)
                .and_then(|raw| raw.validate(&path, now))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let as_shipped = check(&shipped);
        let all = format!("{shipped}\n{}", blocks.join("\n"));
        let uncommented = check(&all);
        assert_eq!(
            uncommented.probes.len(),
            as_shipped.probes.len() + blocks.len()
        );
        // And the uncommenting is what the examples say, not a block cut short.
        assert!(
            uncommented.probes.iter().any(|p| matches!(
                p,
                ProbeConfig::Minio(m) if m.maintenance
            )),
            "the minio example's keys after the first were lost"
        );
    }

    #[test]
    fn commented_blocks_end_at_a_bare_comment_or_code() {
        let text = "# prose\n# [[probes]]\n# kind = \"a\"\n# x = 1   # note\n#\n# more prose\n\
                    # [[probes]]\n# kind = \"b\"\n# [[probes]]\n# kind = \"c\"\nnode_type = \"db\"\n";
        assert_eq!(
            commented_probe_blocks(text),
            [
                "[[probes]]\nkind = \"a\"\nx = 1   # note\n",
                "[[probes]]\nkind = \"b\"\n",
                "[[probes]]\nkind = \"c\"\n",
            ]
        );
    }
}
