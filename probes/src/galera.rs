//! `galera`: the local MariaDB Galera node, asked for its wsrep status.
//!
//! One short session per cycle (unix socket, or TCP), bounded by `timeout_ms` as a whole:
//! `SHOW GLOBAL STATUS LIKE 'wsrep_%'` and `SELECT @@read_only`. The answer becomes
//! `facts.galera` (the roll-up's `galera` rule reads it) and the node's own finding from
//! the same reading ([`GaleraFacts::own_verdicts`]). The facts are written also when
//! MariaDB does not answer (`reachable: false`), so the node stays a member and is judged.
//!
//! [`parse_status`] reads the variables from rows and [`parse_tsv`] from `mariadb -N -B`
//! output (the fixtures' form); both are pure and fuzzed.

use crate::net::Secret;
use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::GaleraFacts;
use std::path::PathBuf;
use std::time::Duration;

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "MariaDB Galera";
/// Rows read at most (MariaDB 10.11 has about 70 `wsrep_%` status variables).
pub const MAX_ROWS: usize = 512;
/// Longest value kept; longer values (provider options) are not needed and are dropped.
pub const MAX_VALUE: usize = 1024;
/// Longest error message kept in the facts.
const MAX_ERROR: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's unix socket; when set, `host`/`port` are not used.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// A monitoring user; it needs no privilege to read status variables (`USAGE`).
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Bound on connect and both queries together.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    3306
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.user.trim().is_empty() {
            errors.push("user must not be empty".into());
        }
        if self
            .socket
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            errors.push("socket must not be empty when set".into());
        }
        if self.socket.is_none() && (self.host.trim().is_empty() || self.port == 0) {
            errors.push("host and port (or socket) are required".into());
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// No session or a failed query: refused, timed out, access denied.
    Failed(String),
    /// The status rows (name, value) and `@@read_only` (None if that query gave nothing).
    Answered {
        rows: Vec<(String, String)>,
        read_only: Option<bool>,
    },
}

/// Reads `mariadb -N -B` output: one `name<TAB>value` per line, as the fixtures hold it.
/// A `read_only<TAB>0|1` line (from `SELECT 'read_only', @@read_only`) is kept as a row.
pub fn parse_tsv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} rows"));
        }
        let (name, value) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: no tab between name and value", i + 1))?;
        rows.push((name.to_string(), value.to_string()));
    }
    Ok(rows)
}

fn on_off(v: &str) -> Option<bool> {
    match v {
        "ON" | "1" => Some(true),
        "OFF" | "0" => Some(false),
        _ => None,
    }
}

/// The facts the status rows give (names compared case-insensitively, as MariaDB's are;
/// a value that does not parse is left unknown, never guessed).
pub fn parse_status(rows: &[(String, String)], read_only: Option<bool>) -> GaleraFacts {
    let mut f = GaleraFacts {
        reachable: true,
        read_only,
        ..GaleraFacts::default()
    };
    for (name, value) in rows.iter().take(MAX_ROWS) {
        if value.len() > MAX_VALUE {
            continue;
        }
        let v = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "wsrep_ready" => f.ready = on_off(v),
            "wsrep_connected" => f.connected = on_off(v),
            "wsrep_local_state_comment" => f.local_state = Some(v.to_string()),
            "wsrep_cluster_status" => f.cluster_status = Some(v.to_string()),
            "wsrep_cluster_size" => f.cluster_size = v.parse().ok(),
            "wsrep_cluster_conf_id" => f.conf_id = v.parse().ok(),
            "wsrep_cluster_state_uuid" => {
                f.state_uuid = Some(v.to_string()).filter(|u| !u.is_empty())
            }
            "wsrep_flow_control_paused" => {
                f.flow_control_paused = v.parse::<f64>().ok().filter(|p| p.is_finite() && *p >= 0.0)
            }
            "read_only" if f.read_only.is_none() => f.read_only = on_off(v),
            _ => {}
        }
    }
    f
}

/// The `galera` probe. Stateless: one session per cycle.
pub struct Galera;

impl Galera {
    fn opts(cfg: &Config) -> mysql_async::Opts {
        let mut b = mysql_async::OptsBuilder::default()
            .user(Some(cfg.user.clone()))
            .pass(cfg.password.as_ref().map(|p| p.expose().to_string()))
            .prefer_socket(false)
            .stmt_cache_size(0);
        b = match &cfg.socket {
            Some(s) => b.socket(Some(s.to_string_lossy().into_owned())),
            None => b.ip_or_hostname(cfg.host.clone()).tcp_port(cfg.port),
        };
        b.into()
    }

    async fn ask(cfg: &Config) -> Result<Raw, mysql_async::Error> {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::new(Self::opts(cfg)).await?;
        let rows: Vec<(String, String)> = conn.query("SHOW GLOBAL STATUS LIKE 'wsrep_%'").await?;
        let ro: Option<i64> = conn.query_first("SELECT @@read_only").await?;
        // A failed goodbye does not make the answer wrong.
        let _ = conn.disconnect().await;
        Ok(Raw::Answered {
            rows: rows.into_iter().take(MAX_ROWS).collect(),
            read_only: ro.map(|v| v != 0),
        })
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl TypedProbe for Galera {
    const KIND: &'static str = "galera";
    const STACK: Option<sr_protocol::facts::StackService> =
        Some(sr_protocol::facts::StackService::Galera);
    type Config = Config;
    type Raw = Raw;

    fn new(_cfg: &Config) -> Self {
        Galera
    }

    fn collect_budget(cfg: &Config) -> Duration {
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        match tokio::time::timeout(Self::collect_budget(cfg), Self::ask(cfg)).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => Raw::Failed(cut(e.to_string())),
            Err(_) => Raw::Failed(format!("no answer within {} ms", cfg.timeout_ms)),
        }
    }

    fn interpret(_cfg: &Config, raw: &Raw) -> Finding {
        let facts = match raw {
            Raw::Failed(e) => GaleraFacts {
                reachable: false,
                error: Some(e.clone()),
                ..GaleraFacts::default()
            },
            Raw::Answered { rows, read_only } => parse_status(rows, *read_only),
        };
        let mut f = Finding::ok();
        for (status, code, message) in facts.own_verdicts() {
            f.worsen(status, code, message);
        }
        // The legacy entry: Active while the node serves queries in the Primary component.
        let mut info = serde_json::Map::new();
        for (k, v) in [
            ("wsrep_local_state_comment", facts.local_state.clone()),
            ("wsrep_cluster_status", facts.cluster_status.clone()),
        ] {
            info.insert(k.into(), v.map_or(serde_json::Value::Null, Into::into));
        }
        info.insert("wsrep_cluster_size".into(), facts.cluster_size.into());
        let serving = facts.reachable && facts.primary() && facts.ready == Some(true);
        f.set_service(SERVICE, serving, None, info);
        f.facts.galera = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::NodeStatus;

    fn answered(text: &str) -> Raw {
        Raw::Answered {
            rows: parse_tsv(text).unwrap(),
            read_only: None,
        }
    }

    fn cfg() -> Config {
        toml::from_str("user = \"monitor\"\nsocket = \"/run/mysqld/mysqld.sock\"").unwrap()
    }

    #[test]
    fn tsv_is_bounded_and_malformed_lines_are_errors() {
        assert!(parse_tsv("wsrep_ready ON").unwrap_err().contains("no tab"));
        let many = "a\tb\n".repeat(MAX_ROWS + 1);
        assert!(parse_tsv(&many).unwrap_err().contains("rows"));
        assert_eq!(
            parse_tsv("\n\nx\ty\n").unwrap(),
            vec![("x".into(), "y".into())]
        );
    }

    #[test]
    fn odd_values_stay_unknown() {
        let f = parse_status(
            &parse_tsv("wsrep_cluster_size\t-1\nwsrep_flow_control_paused\tNaN\nwsrep_ready\tmaybe\nwsrep_cluster_state_uuid\t\n").unwrap(),
            None,
        );
        assert_eq!(
            (f.cluster_size, f.flow_control_paused, f.ready, f.state_uuid),
            (None, None, None, None)
        );
        // Truncated input: what is there is read, the rest stays unknown, never OK.
        let finding = Galera::interpret(&cfg(), &answered("wsrep_cluster_status\tPrimary\n"));
        assert_eq!(finding.status, NodeStatus::Fail);
    }

    #[test]
    fn unreachable_is_fail_with_facts() {
        let finding = Galera::interpret(&cfg(), &Raw::Failed("Connection refused".into()));
        assert_eq!(finding.status, NodeStatus::Fail);
        let g = finding.facts.galera.unwrap();
        assert!(!g.reachable);
        assert_eq!(finding.reasons[0].code, "galera_unreachable");
    }

    #[test]
    fn config_rejects_unknown_keys_and_empty_user() {
        assert!(toml::from_str::<Config>("user = \"m\"\nsocet = \"/x\"").is_err());
        let c: Config = toml::from_str("user = \" \"\ntimeout_ms = 0").unwrap();
        assert_eq!(c.validate().len(), 2, "{:?}", c.validate());
    }
}
