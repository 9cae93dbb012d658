//! The collector's TOML configuration: parsed strictly, then validated into [`Config`].
//!
//! Parsing rejects unknown keys (a typo must not silently fall back to a default) and
//! validation collects *every* problem before failing, so an operator fixes the file in
//! one pass. Defaults follow Cloudify 5.0.5 where it had one (port 53333) and are
//! conservative elsewhere (unsigned legacy reports and plain HTTP are off unless asked for).

use crate::rollup::stack::ServicePolicy;
use crate::rollup::Policy;
use serde::Deserialize;
use sr_protocol::facts::StackService;
use sr_protocol::NodeType;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A checked configuration. Fields are public so the quickstart and tests can build one
/// directly with [`Config::new`] and adjust it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Server certificate chain and key (PEM). `None` only when `plain_http` is set.
    pub tls: Option<TlsFiles>,
    /// Directory holding `collector.db` (SQLite, WAL).
    pub state_dir: PathBuf,
    /// Accept reports without a signature header, as the Python 5.0.5 reporter sends them.
    pub allow_unsigned_legacy: bool,
    pub max_body_bytes: usize,
    /// Concurrent connections; one more is closed at accept and counted.
    pub max_connections: usize,
    /// Known nodes kept in memory; a first report from one more node is refused with 507
    /// and counted, so a leaked token cannot grow the store without bound.
    pub max_nodes: usize,
    /// Bounds the TLS handshake and the wait for a complete request head (slow-loris).
    pub header_read_timeout: Duration,
    /// Bounds reading a request body once the head has arrived.
    pub body_read_timeout: Duration,
    /// A node is stale after this many of its own `reporting_freq` periods without a report.
    pub stale_after_factor: u32,
    /// More than `flap_threshold` status changes within `flap_window` marks a node flapping.
    pub flap_window: Duration,
    pub flap_threshold: usize,
    /// Service types this deployment must have (default all three). An absent required
    /// type is Fail (`no_nodes`); an absent type not listed is left out of the view and
    /// of the overall status, so a brokers-only deployment can be OK.
    pub required_types: Vec<NodeType>,
    /// The stack services this deployment has (`[services.galera]`, `[services.lb]`):
    /// whether each is required and its configured size.
    pub services: BTreeMap<StackService, ServicePolicy>,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// A connection (HTTP/1 or HTTP/2) with no request in flight for this long is closed
    /// (HTTP/2: GOAWAY). HTTP/2 PINGs do not count as activity, so an idle client that
    /// answers them cannot hold a connection slot forever.
    pub idle_timeout: Duration,
    /// Request-body bytes that may be in flight at once across every connection and
    /// stream (each body counts its declared length, or `max_body_bytes` if undeclared).
    /// One more is answered 503 at once and counted, so memory for bodies is bounded by
    /// this, not by `max_connections` x streams x `max_body_bytes`.
    pub max_inflight_body_bytes: usize,
    /// Transitions older than this are deleted by the store.
    pub transitions_max_age: Duration,
    /// The store keeps at most this many transitions per node (the newest).
    pub transitions_per_node: usize,
    /// Serve HTTP without TLS. Only for a loopback-only test setup; never the default.
    pub plain_http: bool,
    /// Members each service type should have (`[expected_size]`, issue 12): the quorum is
    /// taken of at least this many whatever reports, and more members than this is Fail.
    /// A type not listed is sized by its members' own views.
    pub expected_size: BTreeMap<NodeType, usize>,
    /// New node ids one token may introduce per `new_node_window` (issue 12); one more is
    /// answered 429 with `Retry-After` and counted, so a leaked token cannot fill
    /// `max_nodes` in seconds.
    pub new_nodes_per_window: usize,
    pub new_node_window: Duration,
    /// The store forgets a node silent this long, and one that never completed a valid
    /// report after `min(forget_after, 1 h)`, so node ids a leaked token made up do not
    /// hold `max_nodes` forever.
    pub forget_after: Duration,
    /// `open`: a new node id is admitted by its first valid report (trust on first use).
    /// `approve`: it is held in a pending list until an operator runs `nodes approve`.
    pub admission: Admission,
    /// Node ids held pending at most; one more is refused 507 and counted.
    pub max_pending: usize,
    /// `[store]`: the local SQLite only, or shared through PostgreSQL (issue 16).
    pub store: crate::shared::StoreKind,
    /// `[alerts]`: hold-down, webhooks and Alertmanagers (no sink: nothing is sent).
    pub alerts: crate::alerts::config::AlertsConfig,
    /// `[metrics]`: what `/metrics` exposes.
    pub metrics: MetricsConfig,
    /// `[tier2]`: push this cluster's summary to tier-2 collectors (issue 16).
    pub tier2: Option<crate::tier2::config::PushConfig>,
    /// `[fleet]`: this collector is a tier-2 view over clusters, with optional healing.
    pub fleet: Option<crate::tier2::config::FleetConfig>,
}

/// `[metrics]` in `collector.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// The per-node series (`node_status`, `node_reason`, `node_clock_skew_seconds`): one
    /// label value per node, which a large fleet's Prometheus may not want to store. Off,
    /// `/metrics` keeps the cluster, service and count series (default on).
    pub per_node_series: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            per_node_series: true,
        }
    }
}

/// How a new node id enters the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Open,
    Approve,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Open => "open",
            Admission::Approve => "approve",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_NODES: usize = 20_000;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 64 << 20;
pub const DEFAULT_TRANSITIONS_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
pub const DEFAULT_TRANSITIONS_PER_NODE: usize = 1000;
pub const DEFAULT_NEW_NODES_PER_WINDOW: usize = 100;
pub const DEFAULT_NEW_NODE_WINDOW: Duration = Duration::from_secs(60);
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(30 * 86_400);
pub const DEFAULT_MAX_PENDING: usize = 1000;

impl Config {
    /// A configuration with every default, serving TLS from `cert_path`/`key_path`.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], sr_protocol::DEFAULT_PORT)),
            tls: Some(TlsFiles {
                cert_path: cert_path.into(),
                key_path: key_path.into(),
            }),
            state_dir: state_dir.into(),
            allow_unsigned_legacy: false,
            max_body_bytes: sr_protocol::DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_nodes: DEFAULT_MAX_NODES,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            stale_after_factor: 3,
            flap_window: Duration::from_secs(600),
            flap_threshold: 4,
            required_types: NodeType::ALL.to_vec(),
            services: BTreeMap::new(),
            shutdown_grace: Duration::from_secs(10),
            plain_http: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            transitions_max_age: DEFAULT_TRANSITIONS_MAX_AGE,
            transitions_per_node: DEFAULT_TRANSITIONS_PER_NODE,
            expected_size: BTreeMap::new(),
            new_nodes_per_window: DEFAULT_NEW_NODES_PER_WINDOW,
            new_node_window: DEFAULT_NEW_NODE_WINDOW,
            forget_after: DEFAULT_FORGET_AFTER,
            admission: Admission::Open,
            max_pending: DEFAULT_MAX_PENDING,
            store: crate::shared::StoreKind::Sqlite,
            metrics: MetricsConfig::default(),
            alerts: Default::default(),
            tier2: None,
            fleet: None,
        }
    }

    /// The roll-up's tunables taken from this config. The conversion lives here, not in the
    /// roll-up, so the roll-up imports nothing of the collector's config.
    pub fn rollup_policy(&self) -> Policy {
        Policy {
            stale_after_factor: self.stale_after_factor,
            flap_window_ms: self.flap_window.as_millis() as i64,
            flap_threshold: self.flap_threshold,
            required_types: self.required_types.clone(),
            expected_size: self.expected_size.clone(),
            services: self.services.clone(),
            ..Policy::default()
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Bounded, regular files only: `validate` runs before every start.
        let bytes = sr_fsutil::read_bounded(path, 1 << 20)
            .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError(vec![format!("{} is not UTF-8 text", path.display())]))?;
        let cfg = Config::from_toml(&text)?;
        // The checks that read files (the store's password file), after the shape checks.
        if let crate::shared::StoreKind::Postgres(pg) = &cfg.store {
            let errs = crate::shared::config::check_files(pg);
            if !errs.is_empty() {
                return Err(ConfigError(errs));
            }
        }
        Ok(cfg)
    }

    /// Parses and validates TOML text, reporting every problem at once.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError(vec![e.to_string().trim_end().to_string()]))?;
        raw.validate()
    }

    /// The TOML `collector init` writes: every key, with comments, so the file documents itself.
    pub fn to_toml(&self) -> String {
        let (cert, key) = match &self.tls {
            Some(t) => (
                t.cert_path.display().to_string(),
                t.key_path.display().to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        out.push_str("# status-reporter collector configuration. Unknown keys are errors.\n");
        out.push_str(&format!("listen = {}\n", q(&self.listen.to_string())));
        if self.tls.is_some() {
            out.push_str(&format!(
                "cert_path = {}\nkey_path = {}\n",
                q(&cert),
                q(&key)
            ));
        }
        out.push_str(&format!(
            "state_dir = {}\n",
            q(&self.state_dir.display().to_string())
        ));
        out.push_str("# Accept unsigned reports from the Python 5.0.5 reporter.\n");
        out.push_str(&format!(
            "allow_unsigned_legacy = {}\n",
            self.allow_unsigned_legacy
        ));
        out.push_str(&format!("max_body_bytes = {}\n", self.max_body_bytes));
        out.push_str(&format!("max_connections = {}\n", self.max_connections));
        out.push_str(&format!("max_nodes = {}\n", self.max_nodes));
        out.push_str(&format!(
            "header_read_timeout_secs = {}\n",
            self.header_read_timeout.as_secs_f64()
        ));
        out.push_str(&format!(
            "body_read_timeout_secs = {}\n",
            self.body_read_timeout.as_secs_f64()
        ));
        out.push_str(
            "# A node is stale after this many of its reporting periods without a report.\n",
        );
        out.push_str(&format!(
            "stale_after_factor = {}\n",
            self.stale_after_factor
        ));
        out.push_str(&format!(
            "flap_window_secs = {}\n",
            self.flap_window.as_secs_f64()
        ));
        out.push_str(&format!("flap_threshold = {}\n", self.flap_threshold));
        out.push_str(
            "# Service types that must exist (manager, db, broker). A required type with no\n",
        );
        out.push_str(
            "# node is Fail (no_nodes); a type not listed is shown only once it has nodes.\n",
        );
        let types: Vec<String> = self.required_types.iter().map(|t| q(t.as_str())).collect();
        out.push_str(&format!("required_types = [{}]\n", types.join(", ")));
        out.push_str(&format!(
            "shutdown_grace_secs = {}\n",
            self.shutdown_grace.as_secs_f64()
        ));
        out.push_str(
            "# A connection with no request in flight this long is closed (HTTP/2 PINGs do\n",
        );
        out.push_str("# not count as activity).\n");
        out.push_str(&format!(
            "idle_timeout_secs = {}\n",
            self.idle_timeout.as_secs_f64()
        ));
        out.push_str(
            "# Request-body bytes in flight across all connections; one more is answered 503.\n",
        );
        out.push_str(&format!(
            "max_inflight_body_bytes = {}\n",
            self.max_inflight_body_bytes
        ));
        out.push_str("# Transition history retention, enforced by the store.\n");
        out.push_str(&format!(
            "transitions_max_age_days = {}\n",
            self.transitions_max_age.as_secs_f64() / 86_400.0
        ));
        out.push_str(&format!(
            "transitions_per_node = {}\n",
            self.transitions_per_node
        ));
        if self.plain_http {
            out.push_str("plain_http = true\n");
        }
        out.push_str(
            "# Members per service type; the quorum is taken of at least this many, and more is\n",
        );
        out.push_str("# Fail. Unset types are sized by their members' own views.\n");
        let sizes: Vec<String> = self
            .expected_size
            .iter()
            .map(|(t, n)| format!("{t} = {n}"))
            .collect();
        out.push_str(&format!("expected_size = {{ {} }}\n", sizes.join(", ")));
        out.push_str(
            "# New node ids one token may introduce per window; one more is answered 429.\n",
        );
        out.push_str(&format!(
            "new_nodes_per_window = {}\n",
            self.new_nodes_per_window
        ));
        out.push_str(&format!(
            "new_node_window_secs = {}\n",
            self.new_node_window.as_secs_f64()
        ));
        out.push_str("# Nodes silent this long are forgotten by the store.\n");
        out.push_str(&format!(
            "forget_after_days = {}\n",
            self.forget_after.as_secs_f64() / 86_400.0
        ));
        out.push_str(
            "# \"open\": a new node id joins with its first valid report; \"approve\": it waits in\n",
        );
        out.push_str("# `status-reporter nodes pending` until `nodes approve ID`.\n");
        out.push_str(&format!("admission = \"{}\"\n", self.admission.as_str()));
        out.push_str(&format!("max_pending = {}\n", self.max_pending));
        out.push_str(&format!(
            "# Stack services ({}): [services.galera] required = true, size = 3\n",
            StackService::ALL.map(StackService::as_str).join(", ")
        ));
        for (service, p) in &self.services {
            out.push_str(&format!(
                "\n[services.{service}]\nrequired = {}\n",
                p.required
            ));
            if let Some(size) = p.size {
                out.push_str(&format!("size = {size}\n"));
            }
        }
        out.push_str(&crate::shared::config::to_toml(&self.store));
        out.push_str(
            "\n# What /metrics exposes: per_node_series = false leaves out the series with a\n",
        );
        out.push_str("# node label (node_status, node_reason, node_clock_skew_seconds).\n");
        out.push_str(&format!(
            "[metrics]\nper_node_series = {}\n",
            self.metrics.per_node_series
        ));
        out.push_str(&self.alerts.to_toml());
        out.push_str(&crate::tier2::config::to_toml(&self.tier2, &self.fleet));
        out
    }
}

/// A duration as operators type it: a whole number and a unit, `s`, `m`, `h` or `d`
/// (`90s`, `30m`, `12h`, `7d`), at most 100 years. Used by `nodes forget --stale-for`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    // Bounded after escaping: 32 control characters would be 192 bytes of `\u{1c}`.
    let shown: String = t
        .chars()
        .take(32)
        .flat_map(char::escape_debug)
        .take(64)
        .collect();
    let unit_at = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("\"{shown}\" has no unit: add s, m, h or d (e.g. 7d)"))?;
    let (digits, unit) = t.split_at(unit_at);
    let secs_per: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "\"{shown}\": the unit must be s, m, h or d (e.g. 7d)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("\"{shown}\" does not start with a whole number (e.g. 7d)"))?;
    n.checked_mul(secs_per)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("\"{shown}\" is longer than 100 years"))
}

/// Every problem found in a configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid collector configuration:")?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    cert_path: Option<PathBuf>,
    key_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    allow_unsigned_legacy: Option<bool>,
    max_body_bytes: Option<i64>,
    max_connections: Option<i64>,
    max_nodes: Option<i64>,
    header_read_timeout_secs: Option<f64>,
    body_read_timeout_secs: Option<f64>,
    stale_after_factor: Option<i64>,
    flap_window_secs: Option<f64>,
    flap_threshold: Option<i64>,
    required_types: Option<Vec<String>>,
    shutdown_grace_secs: Option<f64>,
    plain_http: Option<bool>,
    idle_timeout_secs: Option<f64>,
    max_inflight_body_bytes: Option<i64>,
    transitions_max_age_days: Option<f64>,
    transitions_per_node: Option<i64>,
    expected_size: Option<BTreeMap<String, i64>>,
    new_nodes_per_window: Option<i64>,
    new_node_window_secs: Option<f64>,
    forget_after_days: Option<f64>,
    admission: Option<String>,
    max_pending: Option<i64>,
    services: Option<BTreeMap<String, RawService>>,
    store: Option<crate::shared::config::RawStore>,
    alerts: Option<crate::alerts::config::RawAlerts>,
    metrics: Option<RawMetrics>,
    tier2: Option<crate::tier2::config::RawPush>,
    fleet: Option<crate::tier2::config::RawFleet>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    per_node_series: Option<bool>,
}

/// `[services.<name>]`: one stack service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    required: Option<bool>,
    size: Option<i64>,
}

/// Each table a known stack service with a size in range; every bad entry is reported.
fn services(
    errs: &mut Vec<String>,
    v: Option<BTreeMap<String, RawService>>,
) -> BTreeMap<StackService, ServicePolicy> {
    let mut out = BTreeMap::new();
    for (name, raw) in v.unwrap_or_default() {
        let service = match name.parse::<StackService>() {
            Ok(s) => s,
            Err(e) => {
                errs.push(format!(
                    "[services.{}]: {e}",
                    name.chars().take(64).collect::<String>()
                ));
                continue;
            }
        };
        let size = raw.size.and_then(|s| {
            if (1..=64).contains(&s) {
                Some(s as u32)
            } else {
                errs.push(format!(
                    "[services.{name}] size = {s} is out of range 1..=64"
                ));
                None
            }
        });
        out.insert(
            service,
            ServicePolicy {
                required: raw.required.unwrap_or(false),
                size,
            },
        );
    }
    out
}

pub(crate) fn int_in(
    errs: &mut Vec<String>,
    name: &str,
    v: Option<i64>,
    default: usize,
    range: std::ops::RangeInclusive<i64>,
) -> usize {
    match v {
        None => default,
        Some(v) if range.contains(&v) => v as usize,
        Some(v) => {
            errs.push(format!(
                "{name} = {v} is out of range {}..={}",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

pub(crate) fn secs_in(
    errs: &mut Vec<String>,
    name: &str,
    v: Option<f64>,
    default: Duration,
    min: f64,
    max: f64,
) -> Duration {
    match v {
        None => default,
        Some(v) if v.is_finite() && v >= min && v <= max => Duration::from_secs_f64(v),
        Some(v) => {
            errs.push(format!(
                "{name} = {v} must be between {min} and {max} seconds"
            ));
            default
        }
    }
}

/// Each key a service type, each size 1..=1000; every bad entry is reported.
fn expected_size(
    errs: &mut Vec<String>,
    v: Option<BTreeMap<String, i64>>,
) -> BTreeMap<NodeType, usize> {
    let mut sizes = BTreeMap::new();
    for (name, n) in v.unwrap_or_default() {
        let Ok(t) = name.parse::<NodeType>() else {
            errs.push(format!(
                "expected_size: {:?} is not a service type (manager, db or broker)",
                name.chars().take(64).collect::<String>()
            ));
            continue;
        };
        sizes.insert(
            t,
            int_in(errs, &format!("expected_size.{t}"), Some(n), 1, 1..=1000),
        );
    }
    sizes
}

/// Each entry a known type, none twice; every bad entry is reported.
fn required_types(errs: &mut Vec<String>, v: Option<Vec<String>>) -> Vec<NodeType> {
    let Some(names) = v else {
        return NodeType::ALL.to_vec();
    };
    let mut types = Vec::new();
    for name in names {
        match name.parse::<NodeType>() {
            Ok(NodeType::Node) => errs.push(
                "required_types: \"node\" is not a Cloudify type; require stack services in [services.<name>]".into(),
            ),
            Ok(t) if types.contains(&t) => {
                errs.push(format!("required_types lists {name:?} twice"))
            }
            Ok(t) => types.push(t),
            Err(_) => errs.push(format!(
                "required_types: {:?} is not a service type (manager, db or broker)",
                name.chars().take(64).collect::<String>()
            )),
        }
    }
    types
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let mut errs = Vec::new();
        let state_dir = match self.state_dir {
            Some(p) if p.as_os_str().is_empty() => {
                errs.push("state_dir must not be empty".to_string());
                PathBuf::new()
            }
            Some(p) => p,
            None => {
                errs.push("state_dir is required".to_string());
                PathBuf::new()
            }
        };
        let d = Config::new(state_dir, "", "");
        let listen = match self.listen {
            None => d.listen,
            Some(s) => s.parse().unwrap_or_else(|_| {
                errs.push(format!(
                    "listen = {s:?} is not an address:port such as 0.0.0.0:53333"
                ));
                d.listen
            }),
        };
        let plain_http = self.plain_http.unwrap_or(false);
        let tls = match (self.cert_path, self.key_path, plain_http) {
            (Some(c), Some(k), false) => Some(TlsFiles {
                cert_path: c,
                key_path: k,
            }),
            (None, None, true) => None,
            (_, _, true) => {
                errs.push(
                    "plain_http = true serves no TLS: remove cert_path and key_path".to_string(),
                );
                None
            }
            (c, k, false) => {
                if c.is_none() {
                    errs.push("cert_path is required (or set plain_http = true for a loopback test setup)".to_string());
                }
                if k.is_none() {
                    errs.push(
                        "key_path is required (or set plain_http = true for a loopback test setup)"
                            .to_string(),
                    );
                }
                None
            }
        };
        let cfg = Config {
            listen,
            tls,
            state_dir: d.state_dir.clone(),
            allow_unsigned_legacy: self.allow_unsigned_legacy.unwrap_or(false),
            max_body_bytes: int_in(
                &mut errs,
                "max_body_bytes",
                self.max_body_bytes,
                d.max_body_bytes,
                1024..=16 << 20,
            ),
            max_connections: int_in(
                &mut errs,
                "max_connections",
                self.max_connections,
                d.max_connections,
                1..=1_000_000,
            ),
            max_nodes: int_in(
                &mut errs,
                "max_nodes",
                self.max_nodes,
                d.max_nodes,
                1..=10_000_000,
            ),
            header_read_timeout: secs_in(
                &mut errs,
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                d.header_read_timeout,
                0.1,
                600.0,
            ),
            body_read_timeout: secs_in(
                &mut errs,
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                d.body_read_timeout,
                0.1,
                600.0,
            ),
            stale_after_factor: int_in(
                &mut errs,
                "stale_after_factor",
                self.stale_after_factor,
                3,
                1..=100,
            ) as u32,
            flap_window: secs_in(
                &mut errs,
                "flap_window_secs",
                self.flap_window_secs,
                d.flap_window,
                1.0,
                86_400.0,
            ),
            flap_threshold: int_in(
                &mut errs,
                "flap_threshold",
                self.flap_threshold,
                d.flap_threshold,
                1..=1000,
            ),
            required_types: required_types(&mut errs, self.required_types),
            services: services(&mut errs, self.services),
            shutdown_grace: secs_in(
                &mut errs,
                "shutdown_grace_secs",
                self.shutdown_grace_secs,
                d.shutdown_grace,
                0.0,
                600.0,
            ),
            plain_http,
            idle_timeout: secs_in(
                &mut errs,
                "idle_timeout_secs",
                self.idle_timeout_secs,
                d.idle_timeout,
                0.1,
                3600.0,
            ),
            max_inflight_body_bytes: int_in(
                &mut errs,
                "max_inflight_body_bytes",
                self.max_inflight_body_bytes,
                d.max_inflight_body_bytes,
                // A semaphore counts at most u32::MAX permits.
                1024..=u32::MAX as i64,
            ),
            // Days on the wire, a duration inside; the range check reuses `secs_in`.
            transitions_max_age: match self.transitions_max_age_days {
                None => d.transitions_max_age,
                Some(days) => secs_in(
                    &mut errs,
                    "transitions_max_age_days",
                    Some(days),
                    Duration::ZERO,
                    1.0 / 24.0,
                    3650.0,
                )
                .mul_f64(86_400.0)
                .max(Duration::from_secs(3600)),
            },
            transitions_per_node: int_in(
                &mut errs,
                "transitions_per_node",
                self.transitions_per_node,
                d.transitions_per_node,
                10..=1_000_000,
            ),
            expected_size: expected_size(&mut errs, self.expected_size),
            new_nodes_per_window: int_in(
                &mut errs,
                "new_nodes_per_window",
                self.new_nodes_per_window,
                d.new_nodes_per_window,
                1..=1_000_000,
            ),
            new_node_window: secs_in(
                &mut errs,
                "new_node_window_secs",
                self.new_node_window_secs,
                d.new_node_window,
                0.1,
                86_400.0,
            ),
            forget_after: match self.forget_after_days {
                None => d.forget_after,
                Some(days) => secs_in(
                    &mut errs,
                    "forget_after_days",
                    Some(days),
                    Duration::ZERO,
                    // 1 s .. 10 years, in days.
                    1.0 / 86_400.0,
                    3650.0,
                )
                .mul_f64(86_400.0),
            },
            admission: match self.admission.as_deref() {
                None | Some("open") => Admission::Open,
                Some("approve") => Admission::Approve,
                Some(other) => {
                    errs.push(format!(
                        "admission = {:?} must be \"open\" or \"approve\"",
                        other.chars().take(64).collect::<String>()
                    ));
                    Admission::Open
                }
            },
            max_pending: int_in(
                &mut errs,
                "max_pending",
                self.max_pending,
                d.max_pending,
                1..=100_000,
            ),
            store: crate::shared::config::validate(&mut errs, self.store),
            metrics: MetricsConfig {
                per_node_series: self.metrics.and_then(|m| m.per_node_series).unwrap_or(true),
            },
            alerts: crate::alerts::config::validate(&mut errs, self.alerts),
            tier2: crate::tier2::config::validate_push(&mut errs, self.tier2),
            fleet: crate::tier2::config::validate_fleet(&mut errs, self.fleet),
        };
        if cfg.max_inflight_body_bytes < cfg.max_body_bytes {
            errs.push(format!(
                "max_inflight_body_bytes = {} is below max_body_bytes = {}: no report could be read",
                cfg.max_inflight_body_bytes, cfg.max_body_bytes
            ));
        }
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(errs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = Config::from_toml(
            "state_dir = \"/var/lib/sr\"\ncert_path = \"c.pem\"\nkey_path = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 53333);
        assert!(!c.allow_unsigned_legacy);
        assert!(!c.plain_http);
        assert_eq!(c.max_body_bytes, 256 * 1024);
        assert_eq!(c.stale_after_factor, 3);
        assert_eq!(c.required_types, NodeType::ALL.to_vec());
    }

    #[test]
    fn required_types_are_checked_and_reach_the_policy() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        let c = Config::from_toml(&format!("{base}required_types = [\"broker\"]\n")).unwrap();
        assert_eq!(c.required_types, vec![NodeType::Broker]);
        assert_eq!(c.rollup_policy().required_types, vec![NodeType::Broker]);
        let none = Config::from_toml(&format!("{base}required_types = []\n")).unwrap();
        assert!(none.required_types.is_empty());
        let err = Config::from_toml(&format!(
            "{base}required_types = [\"db\", \"database\", \"db\", \"{}\"]\nmax_nodes = 0\n",
            "x".repeat(10_000)
        ))
        .unwrap_err();
        let all = err.to_string();
        assert!(all.contains("\"database\" is not a service type"), "{all}");
        assert!(all.contains("lists \"db\" twice"), "{all}");
        assert!(all.contains("max_nodes"), "every error at once: {all}");
        assert!(all.len() < 1000, "a hostile value is cut short: {all}");
        assert_eq!(err.0.len(), 4, "{all}");
        for wrong in [
            "required_types = \"db\"",
            "required_types = [1]",
            "required_types = [[]]",
        ] {
            let err = Config::from_toml(&format!("{base}{wrong}\n")).unwrap_err();
            assert!(err.to_string().contains("required_types"), "{wrong}: {err}");
        }
    }

    #[test]
    fn expected_sizes_are_checked_and_reach_the_policy() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        let c = Config::from_toml(&format!("{base}expected_size = {{ db = 3, broker = 3 }}\n"))
            .unwrap();
        assert_eq!(c.rollup_policy().expected_size[&NodeType::Db], 3);
        assert!(!c.expected_size.contains_key(&NodeType::Manager));
        // What `init` writes reads back the same.
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
        let err = Config::from_toml(&format!(
            "{base}expected_size = {{ db = 0, dbs = 3, broker = 100000 }}\n"
        ))
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(
            err.to_string().contains("\"dbs\" is not a service type"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0m"), Ok(Duration::ZERO));
        for bad in [
            "",
            "d",
            "7",
            "7 d",
            "7days",
            "-1d",
            "1.5h",
            "7D",
            "１d",
            "99999999999999999999d",
            "36501d",
            &"9".repeat(10_000),
            // Found by the fuzzer: escaping made 32 control characters a 200-byte message.
            &format!("{}7\u{6}7d", "\u{1c}".repeat(27)),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.len() < 120, "{bad:?} gives a short error: {err}");
        }
    }

    #[test]
    fn admission_and_node_bounds_are_checked() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        let c = Config::from_toml(base).unwrap();
        assert_eq!(
            c.admission,
            Admission::Open,
            "quickstart and Cloudify flows"
        );
        let c = Config::from_toml(&format!(
            "{base}admission = \"approve\"\nnew_nodes_per_window = 5\nnew_node_window_secs = 2\nforget_after_days = 0.5\nmax_pending = 10\n"
        ))
        .unwrap();
        assert_eq!(c.admission, Admission::Approve);
        assert_eq!(c.new_node_window, Duration::from_secs(2));
        assert_eq!(c.forget_after, Duration::from_secs(43_200));
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
        let err = Config::from_toml(&format!(
            "{base}admission = \"closed\"\nnew_nodes_per_window = 0\nforget_after_days = -1\nmax_pending = 0\n"
        ))
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let err = Config::from_toml(
            "listen = \"nowhere\"\nmax_body_bytes = 0\nstale_after_factor = -1\nheader_read_timeout_secs = 1e9\n",
        )
        .unwrap_err();
        let all = err.to_string();
        for needle in [
            "state_dir is required",
            "listen",
            "max_body_bytes",
            "stale_after_factor",
            "header_read_timeout_secs",
            "cert_path is required",
            "key_path is required",
        ] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
        assert_eq!(err.0.len(), 7, "{all}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_with_a_location() {
        let err = Config::from_toml("state_dir = \"/x\"\nplain_htpt = true\n").unwrap_err();
        assert!(err.to_string().contains("plain_htpt"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err =
            Config::from_toml("state_dir = \"/x\"\nmax_connections = \"many\"\n").unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
    }

    #[test]
    fn plain_http_is_explicit_and_exclusive_with_tls() {
        let c = Config::from_toml("state_dir = \"/x\"\nplain_http = true\n").unwrap();
        assert!(c.tls.is_none());
        let err = Config::from_toml(
            "state_dir = \"/x\"\nplain_http = true\ncert_path = \"c\"\nkey_path = \"k\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("plain_http"));
    }

    #[test]
    fn stack_services_are_parsed_then_validated_all_errors_at_once() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        let c = Config::from_toml(&format!(
            "{base}[services.galera]\nrequired = true\nsize = 3\n[services.lb]\n"
        ))
        .unwrap();
        let galera = &c.rollup_policy().services[&StackService::Galera];
        assert!(galera.required);
        assert_eq!(galera.size, Some(3));
        assert_eq!(c.services[&StackService::Lb], ServicePolicy::default());
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);

        // Every problem at once: an unknown service, a size out of range, and `node` in
        // required_types (not a Cloudify type).
        let err = Config::from_toml(&format!(
            "{base}required_types = [\"node\"]\n[services.elastic]\n[services.galera]\nsize = 0\n"
        ))
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let text = err.to_string();
        for want in ["elastic", "size = 0", "\"node\""] {
            assert!(text.contains(want), "{want}: {text}");
        }
        // An unknown key inside a service table is an error.
        let err = Config::from_toml(&format!("{base}[services.galera]\nsise = 3\n")).unwrap_err();
        assert!(err.to_string().contains("sise"), "{err}");
    }

    #[test]
    fn written_config_parses_back_identically() {
        let mut c = Config::new(
            "/var/lib/status-reporter",
            "/etc/sr/cert.pem",
            "/etc/sr/key \"q\".pem",
        );
        c.allow_unsigned_legacy = true;
        c.header_read_timeout = Duration::from_millis(1500);
        c.required_types = vec![NodeType::Db, NodeType::Broker];
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
        c.idle_timeout = Duration::from_millis(2500);
        c.max_inflight_body_bytes = 8 << 20;
        c.transitions_max_age = Duration::from_secs(7 * 86_400);
        c.transitions_per_node = 50;
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn per_node_series_are_on_by_default_and_can_be_left_out() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        assert!(Config::from_toml(base).unwrap().metrics.per_node_series);
        let c = Config::from_toml(&format!("{base}[metrics]\nper_node_series = false\n")).unwrap();
        assert!(!c.metrics.per_node_series);
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
        // Unknown keys and wrong types are errors, as everywhere.
        for bad in [
            "[metrics]\nper_node_seris = false\n",
            "[metrics]\nper_node_series = \"no\"\n",
            "metrics = 3\n",
        ] {
            let err = Config::from_toml(&format!("{base}{bad}")).unwrap_err();
            assert!(
                err.to_string().contains("per_node_seri") || err.to_string().contains("metrics"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_bounds_have_defaults_and_ranges() {
        let base = "state_dir = \"/x\"\nplain_http = true\n";
        let c = Config::from_toml(base).unwrap();
        assert_eq!(c.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(c.max_inflight_body_bytes, 64 << 20);
        assert_eq!(c.transitions_max_age, Duration::from_secs(90 * 86_400));
        assert_eq!(c.transitions_per_node, 1000);
        let c = Config::from_toml(&format!(
            "{base}idle_timeout_secs = 5\ntransitions_max_age_days = 0.5\n"
        ))
        .unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.transitions_max_age, Duration::from_secs(43_200));
        let err = Config::from_toml(&format!(
            "{base}idle_timeout_secs = 0\nmax_inflight_body_bytes = 2048\ntransitions_per_node = 1\ntransitions_max_age_days = 99999\n"
        ))
        .unwrap_err();
        let all = err.to_string();
        for needle in [
            "idle_timeout_secs",
            "below max_body_bytes",
            "transitions_per_node",
            "transitions_max_age_days",
        ] {
            assert!(all.contains(needle), "{needle} missing: {all}");
        }
    }
}
