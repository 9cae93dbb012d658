//! `minio`: the local MinIO server of a distributed (erasure-coded) deployment, through
//! its unauthenticated health checks.
//!
//! Per cycle, concurrent, each bounded by `timeout_ms`:
//! - `GET /minio/health/live`: 200 while this server runs (and answers at all); a server
//!   not yet initialised still says 200 but adds `X-Minio-Server-Status: offline`;
//! - `GET /minio/health/cluster`: 200 when the cluster has write quorum, 503 when not,
//!   with `X-Minio-Write-Quorum` (and `X-Minio-Healing-Drives` while drives heal);
//! - `GET /minio/health/cluster?maintenance=true`, when `maintenance = true`: the same
//!   question with this server's drives left out: 412 means taking this node down would
//!   lose quorum.
//!
//! MinIO answers these with empty bodies; everything is in the status and the `x-minio-*`
//! headers, which are the only ones kept (bounded, see [`crate::net::fetch_with_headers`]).
//! The answers become `facts.objectstore` and the node's own finding
//! ([`ObjectstoreFacts::own_verdicts`]); whether one node down leaves quorum is the
//! roll-up's question. [`facts`] and [`parse_capture`] (the fixtures' form: a raw HTTP
//! response head) are pure and fuzzed.

use crate::net::{
    fetch_with_headers, validate_base, Fetch, TlsFiles, MAX_HEADER_VALUE, MAX_KEPT_HEADERS,
};
use crate::{default_ms, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::ObjectstoreFacts;
use std::time::Duration;

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "MinIO";
/// Largest body read: MinIO's health answers are empty, a busy server's is a short XML
/// error.
pub const MAX_BODY: usize = 64 << 10;
/// Header lines read at most from a capture.
pub const MAX_CAPTURE_HEADERS: usize = 64;
/// The headers kept: MinIO's own.
const PREFIX: &str = "x-minio-";
/// Largest write quorum believed (drives per erasure set are at most 16).
const MAX_QUORUM: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This server's S3 endpoint, `https://127.0.0.1:9000`.
    #[serde(default = "default_url")]
    pub url: String,
    #[serde(default)]
    pub tls: TlsFiles,
    /// Also ask `?maintenance=true` (whether this node may be taken down).
    #[serde(default)]
    pub maintenance: bool,
    /// Deadline of each request.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

fn default_url() -> String {
    "http://127.0.0.1:9000".into()
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        validate_base(&self.url, &self.tls, self.timeout_ms, "minio")
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }
}

/// One health check's answer: its status and MinIO's headers, or why there was none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Answered {
        status: u16,
        /// `x-minio-*` headers, lower-case names, bounded.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    Failed {
        error: String,
    },
}

impl Answer {
    fn from_fetch((fetch, headers): (Fetch, Vec<(String, String)>)) -> Self {
        match fetch {
            Fetch::Answered { status, .. } => Answer::Answered { status, headers },
            other => Answer::Failed {
                error: other.describe(),
            },
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        match self {
            Answer::Answered { headers, .. } => headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            Answer::Failed { .. } => None,
        }
    }
}

/// Everything `collect` saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub live: Answer,
    pub cluster: Answer,
    /// Only when `maintenance = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Answer>,
}

/// Reads a captured response head (`HTTP/1.1 503 Service Unavailable`, header lines, an
/// empty line, an ignored body), as the fixtures hold them. Header names are compared
/// case-insensitively; only `x-minio-*` are kept, bounded as a live answer's are.
pub fn parse_capture(text: &str) -> Result<Answer, String> {
    // The head ends at the first empty line; a capture without one was cut.
    let head = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) => &text[..a.min(b)],
        (Some(a), None) | (None, Some(a)) => &text[..a],
        (None, None) => return Err("truncated: no empty line after the headers".into()),
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/") {
        return Err("no HTTP status line".into());
    }
    let status: u16 = code
        .parse()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| "status code is not 100..=599".to_string())?;
    let mut headers = Vec::new();
    for (i, line) in lines.enumerate() {
        if i == MAX_CAPTURE_HEADERS {
            return Err(format!("more than {MAX_CAPTURE_HEADERS} header lines"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {} has no ':'", i + 1))?;
        let name = name.trim().to_ascii_lowercase();
        if name.starts_with(PREFIX) && headers.len() < MAX_KEPT_HEADERS {
            let value = value.trim();
            let mut end = value.len().min(MAX_HEADER_VALUE);
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            headers.push((name, value[..end].to_string()));
        }
    }
    Ok(Answer::Answered { status, headers })
}

/// A count header: plain decimal digits within `max`, else unreadable.
fn count(value: &str, max: u32) -> Option<u32> {
    (!value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
        .filter(|n| *n <= max)
}

/// Printable text of a header value for reasons (control characters dropped).
fn printable(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// The facts the answers give.
pub fn facts(raw: &Raw) -> ObjectstoreFacts {
    let mut f = ObjectstoreFacts::default();
    match &raw.live {
        Answer::Answered { status: 200, .. } => f.reachable = true,
        Answer::Answered { status, .. } => f.error = Some(format!("HTTP {status}")),
        Answer::Failed { error } => f.error = Some(error.clone()),
    }
    f.server_status = raw
        .live
        .header("x-minio-server-status")
        .or_else(|| raw.cluster.header("x-minio-server-status"))
        .map(printable)
        .filter(|s| !s.is_empty());
    match &raw.cluster {
        Answer::Answered { status, .. } => {
            f.cluster_status = Some(*status);
            let quorum = raw.cluster.header("x-minio-write-quorum");
            f.write_quorum = quorum.and_then(|q| count(q, MAX_QUORUM)).filter(|q| *q > 0);
            f.healing_drives = raw
                .cluster
                .header("x-minio-healing-drives")
                .and_then(|h| count(h, 100_000));
            if matches!(status, 200 | 503) && f.server_status.is_none() && f.write_quorum.is_none()
            {
                // MinIO sets the quorum on every answer of an initialised server: without
                // it the answer is not MinIO's cluster check (a proxy, a stub).
                f.cluster_error = Some(match quorum {
                    Some(q) => format!(
                        "HTTP {status} with an unreadable X-Minio-Write-Quorum {:?}",
                        printable(q)
                    ),
                    None => format!("HTTP {status} without X-Minio-Write-Quorum"),
                });
            }
        }
        Answer::Failed { error } => f.cluster_error = Some(error.clone()),
    }
    match &raw.maintenance {
        None => {}
        Some(Answer::Answered { status, .. }) => f.maintenance_status = Some(*status),
        Some(Answer::Failed { error }) => f.maintenance_error = Some(error.clone()),
    }
    f
}

/// The `minio` probe: its HTTP(S) client, built once.
pub struct Minio {
    client: Result<sr_tls::HttpsClient, String>,
}

impl TypedProbe for Minio {
    const KIND: &'static str = "minio";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        Minio {
            client: cfg.tls.client(Duration::from_millis(cfg.timeout_ms)),
        }
    }

    fn collect_budget(cfg: &Config) -> Duration {
        // The requests run concurrently, each within the deadline.
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let base = cfg.base();
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                Answer::from_fetch(
                    fetch_with_headers(&self.client, &url, None, deadline, MAX_BODY, PREFIX).await,
                )
            }
        };
        let maintenance = async {
            match cfg.maintenance {
                true => Some(get("/minio/health/cluster?maintenance=true").await),
                false => None,
            }
        };
        let (live, cluster, maintenance) = tokio::join!(
            get("/minio/health/live"),
            get("/minio/health/cluster"),
            maintenance
        );
        Raw {
            live,
            cluster,
            maintenance,
        }
    }

    fn interpret(_cfg: &Config, raw: &Raw) -> Finding {
        let facts = facts(raw);
        let mut f = Finding::judged(facts.own_verdicts());
        let mut info = serde_json::Map::new();
        info.insert("cluster_status".into(), facts.cluster_status.into());
        info.insert("write_quorum".into(), facts.write_quorum.into());
        f.set_service(SERVICE, facts.serving(), None, info);
        f.facts.objectstore = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_queries_unknown_keys_and_https_without_ca() {
        let c: Config =
            toml::from_str("url = 'https://127.0.0.1:9000/?a'\ntimeout_ms = 0").unwrap();
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
        assert!(toml::from_str::<Config>("maintenence = true").is_err());
        assert!(Config {
            url: default_url(),
            tls: TlsFiles::default(),
            maintenance: true,
            timeout_ms: 2000
        }
        .validate()
        .is_empty());
    }

    #[test]
    fn counts_are_plain_bounded_decimals() {
        for bad in ["", "-1", "+3", "0x10", "3 ", "99999999999", "٣"] {
            assert_eq!(count(bad, MAX_QUORUM), None, "{bad:?}");
        }
        assert_eq!(count("3", MAX_QUORUM), Some(3));
        assert_eq!(count("1025", MAX_QUORUM), None);
    }

    #[test]
    fn captures_must_be_whole_and_bounded() {
        assert!(parse_capture("HTTP/1.1 200 OK\r\nX-Minio-Write-Quorum: 3\r\n").is_err());
        assert!(parse_capture("200 OK\r\n\r\n").is_err());
        assert!(parse_capture("HTTP/1.1 999 X\r\n\r\n").is_err());
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "A: b\r\n".repeat(100));
        assert!(parse_capture(&many).unwrap_err().contains("more than"));
        let a =
            parse_capture("HTTP/1.1 200 OK\nX-MINIO-WRITE-QUORUM:  3 \nServer: MinIO\n\n").unwrap();
        assert_eq!(a.header("x-minio-write-quorum"), Some("3"));
        assert_eq!(a.header("server"), None);
    }
}
