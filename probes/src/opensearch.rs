//! `opensearch`: the local OpenSearch node, asked for the cluster's health and members.
//!
//! Three GETs per cycle, concurrent, each bounded by `timeout_ms` and `max_body_bytes`,
//! over HTTPS with our CA and Basic auth (the security plugin's usual setup; a user with
//! `cluster_monitor` is enough):
//! - `/`: this node's name, the cluster's name and UUID, the version;
//! - `/_cluster/health`: `status` (green/yellow/red), `number_of_nodes`,
//!   `number_of_data_nodes`, `unassigned_shards`, `active_shards_percent_as_number`,
//!   `timed_out`, `cluster_name` (field names as `ClusterHealthResponse.toXContent` writes
//!   them; 408 when `timed_out`, with the same document);
//! - `/_cat/nodes?format=json&h=name,node.role,master`: every node's name, its role
//!   letters, and `*` on the elected cluster manager (`master` is the column's name on 1.x
//!   and an alias of `cluster_manager` on 2.x, and `_cat` JSON keys are the names asked).
//!
//! The answers become `facts.search` (the roll-up's `search` rule reads them) and the
//! node's own finding from the same reading ([`SearchFacts::own_verdicts`]). The facts are
//! written also when OpenSearch does not answer (`reachable: false`), so the node stays a
//! member. A 401/403 (the security plugin refusing the probe's user) is reported as such,
//! not as a dead server. [`parse_health`], [`parse_cat_nodes`] and [`parse_root`] are pure
//! and fuzzed.

use crate::net::{basic_auth, fetch, validate_base, Reply, Secret, TlsFiles};
use crate::{default_ms, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::SearchFacts;
use std::collections::BTreeMap;
use std::time::Duration;

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "OpenSearch";
/// Longest name (node, cluster, UUID, version) kept; longer ones are cut.
pub const MAX_NAME: usize = 128;
/// Longest error text kept in the facts.
const MAX_ERROR: usize = 256;
/// The `_cat/nodes` columns asked.
pub const CAT_NODES: &str = "/_cat/nodes?format=json&h=name,node.role,master";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's REST endpoint, `https://127.0.0.1:9200`.
    #[serde(default = "default_url")]
    pub url: String,
    /// TLS for an `https://` URL: the CA that signed OpenSearch's HTTP certificate.
    #[serde(default)]
    pub tls: TlsFiles,
    /// A user with `cluster_monitor`; none when the security plugin is off.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Deadline of each request.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
    /// Largest answer read; `_cat/nodes` with our three columns is ~60 bytes a node.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_url() -> String {
    "https://127.0.0.1:9200".into()
}
fn default_max_body() -> usize {
    256 << 10
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = validate_base(&self.url, &self.tls, self.timeout_ms, "opensearch");
        if self.username.is_some() != self.password.is_some() {
            errors.push("username and password must be set together".into());
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.contains(':'))
        {
            errors.push("username must be non-empty and without ':' (Basic auth)".into());
        }
        if !(1024..=16 << 20).contains(&self.max_body_bytes) {
            errors.push(format!(
                "max_body_bytes must be 1024..=16777216, got {}",
                self.max_body_bytes
            ));
        }
        errors
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }
}

/// Everything `collect` saw: one [`Reply`] per request (fixtures are these bodies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub root: Reply,
    pub health: Reply,
    pub nodes: Reply,
}

/// `/_cluster/health` as read: the fields the rule needs. `status` and `cluster_name`
/// are required (a document without them is not a health answer); the counts are optional
/// and never negative.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Health {
    pub cluster_name: String,
    pub status: String,
    #[serde(default)]
    pub timed_out: Option<bool>,
    #[serde(default)]
    pub number_of_nodes: Option<u32>,
    #[serde(default)]
    pub number_of_data_nodes: Option<u32>,
    #[serde(default)]
    pub unassigned_shards: Option<u64>,
    #[serde(default)]
    pub active_shards_percent_as_number: Option<f64>,
}

/// `GET /` as read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Root {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cluster_name: Option<String>,
    #[serde(default)]
    pub cluster_uuid: Option<String>,
    #[serde(default)]
    pub version: Option<RootVersion>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RootVersion {
    #[serde(default)]
    pub number: Option<String>,
}

/// One `_cat/nodes` row; every `_cat` value is a string or null.
#[derive(Debug, Deserialize)]
struct CatNode {
    name: Option<String>,
    #[serde(rename = "node.role", default)]
    role: Option<String>,
    #[serde(default)]
    master: Option<String>,
}

/// What `_cat/nodes` lists: name → role letters (at most [`SearchFacts::MAX_NODES`]), the
/// elected cluster manager, and whether rows were cut.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatNodes {
    pub nodes: BTreeMap<String, String>,
    pub cluster_manager: Option<String>,
    pub truncated: bool,
}

/// `s` cut to `max` bytes on a char boundary, marked with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads a health document. A finite percentage in 0–100 is kept, anything else is
/// unknown.
pub fn parse_health(body: &str) -> Result<Health, String> {
    let mut h: Health = serde_json::from_str(body).map_err(|e| {
        if body.trim().is_empty() {
            "empty body".to_string()
        } else {
            cut(&format!("not a health document: {e}"), MAX_ERROR)
        }
    })?;
    h.cluster_name = cut(&h.cluster_name, MAX_NAME);
    h.status = cut(&h.status, 16);
    h.active_shards_percent_as_number = h
        .active_shards_percent_as_number
        .filter(|p| p.is_finite() && (0.0..=100.0).contains(p));
    Ok(h)
}

/// Reads `GET /`.
pub fn parse_root(body: &str) -> Result<Root, String> {
    let mut r: Root = serde_json::from_str(body)
        .map_err(|e| cut(&format!("not OpenSearch's root document: {e}"), MAX_ERROR))?;
    for s in [&mut r.name, &mut r.cluster_name, &mut r.cluster_uuid] {
        *s = s.as_deref().map(|v| cut(v, MAX_NAME));
    }
    if let Some(v) = r.version.as_mut() {
        v.number = v.number.as_deref().map(|n| cut(n, 32));
    }
    Ok(r)
}

/// Reads `_cat/nodes?format=json`: rows without a name are skipped; at most
/// [`SearchFacts::MAX_NODES`] are kept, the rest counted by `truncated`.
pub fn parse_cat_nodes(body: &str) -> Result<CatNodes, String> {
    let rows: Vec<CatNode> = serde_json::from_str(body)
        .map_err(|e| cut(&format!("not a _cat/nodes JSON array: {e}"), MAX_ERROR))?;
    let mut out = CatNodes::default();
    for row in rows {
        let Some(name) = row.name.as_deref().map(|n| cut(n, MAX_NAME)) else {
            continue;
        };
        if row.master.as_deref() == Some("*") {
            out.cluster_manager = Some(name.clone());
        }
        if out.nodes.len() == SearchFacts::MAX_NODES && !out.nodes.contains_key(&name) {
            out.truncated = true;
            continue;
        }
        let role = cut(row.role.as_deref().unwrap_or("-"), 32);
        out.nodes.insert(name, role);
    }
    Ok(out)
}

/// One line for a refusal: the status and what OpenSearch said (the `error.type` and
/// `error.reason` of its JSON error, or the first line of a text body such as the
/// security plugin's `Unauthorized`).
pub fn describe_refusal(status: u16, body: &str) -> String {
    let said = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            match (e.get("type"), e.get("reason")) {
                (Some(t), Some(r)) => Some(format!(
                    "{}: {}",
                    t.as_str().unwrap_or("?"),
                    r.as_str().unwrap_or("?")
                )),
                _ => e.as_str().map(str::to_string),
            }
        })
        .unwrap_or_else(|| body.lines().next().unwrap_or("").trim().to_string());
    let said = cut(&said, 160);
    if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {said}")
    }
}

/// The facts the three answers give. The health answer decides `reachable`; the root
/// and node list only add names.
pub fn facts(raw: &Raw) -> SearchFacts {
    let mut f = SearchFacts::default();
    match &raw.health {
        // 408 carries the same document with `timed_out: true`.
        Reply::Answered {
            status: 200 | 408,
            body,
        } => match parse_health(body) {
            Ok(h) => {
                f.reachable = true;
                f.cluster_name = Some(h.cluster_name);
                f.status = Some(h.status);
                f.timed_out = h.timed_out;
                f.number_of_nodes = h.number_of_nodes;
                f.number_of_data_nodes = h.number_of_data_nodes;
                f.unassigned_shards = h.unassigned_shards;
                f.active_shards_percent = h.active_shards_percent_as_number;
            }
            Err(e) => f.error = Some(e),
        },
        Reply::Answered { status, body } => {
            f.http_status = Some(*status);
            f.error = Some(describe_refusal(*status, body));
        }
        Reply::Failed { error } => f.error = Some(cut(error, MAX_ERROR)),
    }
    if let Reply::Answered { status: 200, body } = &raw.root {
        if let Ok(r) = parse_root(body) {
            f.node_name = r.name;
            f.cluster_uuid = r.cluster_uuid;
            f.version = r.version.and_then(|v| v.number);
            if f.cluster_name.is_none() {
                f.cluster_name = r.cluster_name;
            }
        }
    }
    match &raw.nodes {
        Reply::Answered { status: 200, body } => match parse_cat_nodes(body) {
            Ok(n) => {
                f.nodes = n.nodes;
                f.cluster_manager = n.cluster_manager;
                f.truncated = n.truncated;
            }
            Err(e) => f.nodes_error = Some(e),
        },
        Reply::Answered { status, body } => f.nodes_error = Some(describe_refusal(*status, body)),
        Reply::Failed { error } => f.nodes_error = Some(cut(error, MAX_ERROR)),
    }
    f
}

/// The `opensearch` probe: its HTTPS client and Basic auth header, built once.
pub struct Opensearch {
    client: Result<sr_tls::HttpsClient, String>,
    auth: Option<String>,
}

impl TypedProbe for Opensearch {
    const KIND: &'static str = "opensearch";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        let auth = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(basic_auth(u, p)),
            _ => None,
        };
        Opensearch {
            client: cfg.tls.client(Duration::from_millis(cfg.timeout_ms)),
            auth,
        }
    }

    fn collect_budget(cfg: &Config) -> Duration {
        // The three requests run concurrently, each within the deadline.
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let base = cfg.base();
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                Reply::from(
                    fetch(
                        &self.client,
                        http::Method::GET,
                        &url,
                        self.auth.as_deref(),
                        b"",
                        deadline,
                        cfg.max_body_bytes,
                    )
                    .await,
                )
            }
        };
        let (root, health, nodes) = tokio::join!(get("/"), get("/_cluster/health"), get(CAT_NODES));
        Raw {
            root,
            health,
            nodes,
        }
    }

    fn interpret(_cfg: &Config, raw: &Raw) -> Finding {
        let facts = facts(raw);
        let mut f = Finding::judged(facts.own_verdicts());
        let mut info = serde_json::Map::new();
        info.insert(
            "cluster_name".into(),
            facts
                .cluster_name
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
        info.insert(
            "status".into(),
            facts
                .status
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
        info.insert("number_of_nodes".into(), facts.number_of_nodes.into());
        // Active while the node answers and the cluster serves searches (red loses data).
        let serving =
            facts.reachable && matches!(facts.status.as_deref(), Some("green" | "yellow"));
        f.set_service(SERVICE, serving, None, info);
        f.facts.search = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_auth_tls_and_bounds_together() {
        let c: Config =
            toml::from_str("url = 'https://127.0.0.1:9200?x=1'\nusername = 'a:b'\ntimeout_ms = 1")
                .unwrap();
        let errs = c.validate();
        // no ca_file for https, a query, username without password, ':' in it, timeout.
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(toml::from_str::<Config>("urll = 'x'").is_err());
        let ok: Config = toml::from_str("url = 'http://127.0.0.1:9200'").unwrap();
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
    }

    /// The agent.toml example in docs/operations.md ("Chef/Cinc HA") parses and validates.
    #[test]
    fn the_documented_example_is_valid() {
        let c: crate::ProbeConfig = toml::from_str(
            "kind = \"opensearch\"\nurl = \"https://127.0.0.1:9200\"\ntls = { ca_file = \"/etc/status-reporter/opensearch-ca.pem\" }\nusername = \"monitor\"\npassword = \"...\"\ntimeout_ms = 2000\nmax_body_bytes = 262144",
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let c: crate::ProbeConfig = toml::from_str(
            "kind = \"minio\"\nurl = \"https://127.0.0.1:9000\"\ntls = { ca_file = \"/etc/status-reporter/minio-ca.pem\" }\nmaintenance = true\ntimeout_ms = 2000",
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn refusals_say_what_opensearch_said() {
        assert_eq!(
            describe_refusal(401, "Unauthorized"),
            "HTTP 401: Unauthorized"
        );
        let body = r#"{"error":{"root_cause":[],"type":"security_exception","reason":"no permissions for [cluster:monitor/health]"},"status":403}"#;
        assert_eq!(
            describe_refusal(403, body),
            "HTTP 403: security_exception: no permissions for [cluster:monitor/health]"
        );
        assert_eq!(describe_refusal(502, ""), "HTTP 502");
        assert!(describe_refusal(500, &"x".repeat(10_000)).len() < 200);
    }

    #[test]
    fn cat_nodes_are_bounded_and_nameless_rows_skipped() {
        let many: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"name":"n{i}","node.role":"dimr","master":"-"}}"#))
            .collect();
        let n = parse_cat_nodes(&format!("[{}]", many.join(","))).unwrap();
        assert_eq!(n.nodes.len(), SearchFacts::MAX_NODES);
        assert!(n.truncated);
        let n = parse_cat_nodes(r#"[{"name":null},{"name":"a","node.role":null,"master":"*"}]"#)
            .unwrap();
        assert_eq!(n.nodes["a"], "-");
        assert_eq!(n.cluster_manager.as_deref(), Some("a"));
        assert!(parse_cat_nodes("{}").is_err());
    }
}
