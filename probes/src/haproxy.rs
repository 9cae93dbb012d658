//! `haproxy`: the local HAProxy, asked over its stats socket for `show stat`.
//!
//! One connection per cycle to the unix socket (`stats socket PATH` in HAProxy's `global`),
//! bounded by `timeout_ms` as a whole and by [`MAX_ANSWER`] bytes. The CSV becomes
//! `facts.lb` (each backend's servers with status, check status and last change), which the
//! roll-up's `lb` rule reads; the node's own finding comes from the same facts
//! ([`LbFacts::own_verdicts`]), so `/check/haproxy` and the roll-up never disagree. The
//! facts are written also when the socket does not answer (`reachable: false`), so the node
//! stays a member of `lb` and is judged.
//!
//! [`parse_stat`] is pure and fuzzed (`fuzz/fuzz_targets/haproxy_stat.rs`). It finds columns
//! by the header's names, not positions, because HAProxy appends columns in every release.

use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::{LbFacts, LbServer};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "HAProxy";
/// Largest `show stat` answer read. HAProxy 2.6 writes about 1 KiB per line (the header
/// and one line per proxy and server); 1 MiB is about a thousand servers. A larger answer
/// is refused whole rather than judged from a cut list.
pub const MAX_ANSWER: usize = 1024 * 1024;
/// Longest name or status kept; a longer one is cut (facts go to the collector, bounded).
pub const MAX_FIELD: usize = 64;
/// Rough size of the `lb` facts kept, under the report's 16 KiB facts limit with room for
/// other probes' facts: past it, further servers are dropped and `truncated` is set.
pub const FACTS_BUDGET: usize = 8 * 1024;
/// Longest error message kept in the facts.
const MAX_ERROR: usize = 256;
/// HAProxy's `type` column: 2 is a server (0 frontend, 1 backend, 3 listener).
const TYPE_SERVER: &str = "2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stats socket (`stats socket /run/haproxy/admin.sock` in `global`). Any level
    /// answers `show stat`; `level user` is enough.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Only these backends (all when empty): the others are frontends' helpers or not
    /// this deployment's concern.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Bound on connect, command and answer together.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/haproxy/admin.sock")
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.socket.as_os_str().is_empty() || self.socket.is_relative() {
            errors.push(format!(
                "socket must be an absolute path, got {:?}",
                self.socket.display().to_string()
            ));
        }
        for b in &self.backends {
            if b.is_empty() || b.len() > MAX_FIELD || b.contains([',', '\n']) {
                errors.push(format!(
                    "backends: {b:?} is not a backend name (1-{MAX_FIELD} characters, no comma)"
                ));
            }
        }
        if self.backends.len() > LbFacts::MAX_ENTRIES {
            errors.push(format!(
                "backends: at most {} names, got {}",
                LbFacts::MAX_ENTRIES,
                self.backends.len()
            ));
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// No connection, no answer in time, or an answer over [`MAX_ANSWER`].
    Failed(String),
    /// The `show stat` answer as read.
    Answered(String),
}

pub(crate) fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads a `show stat` answer into `lb` facts, keeping the servers of the backends
/// `only` names (all when empty). Errors say what is wrong with the text: no header, no
/// `pxname`/`svname`/`status` column, a malformed line. Bounded: at most
/// [`LbFacts::MAX_ENTRIES`] backends and servers per backend, about [`FACTS_BUDGET`] bytes;
/// past that `truncated` is set.
pub fn parse_stat(text: &str, only: &[String]) -> Result<LbFacts, String> {
    if text.len() > MAX_ANSWER {
        return Err(format!("answer is larger than {MAX_ANSWER} bytes"));
    }
    let header = text.lines().next().unwrap_or("");
    // HAProxy ends every answer with an empty line; without it the answer was cut short,
    // and a cut list could drop exactly the servers that are down.
    let complete = text.ends_with("\n\n") || text.ends_with("\r\n\r\n");
    // HAProxy answers an unknown command or a refused level with a plain-text line.
    let Some(names) = header.strip_prefix("# ") else {
        return Err(format!(
            "not a show stat answer: first line {:?}",
            cut(header.trim(), 80)
        ));
    };
    if !complete {
        return Err("answer ends before HAProxy's closing empty line: cut short".into());
    }
    let columns: Vec<&str> = names.split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return Err("show stat header lacks pxname, svname or status".into());
    };
    let (ty, chk, chg) = (col("type"), col("check_status"), col("lastchg"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(
            text[header.len()..]
                .trim_start_matches(['\r', '\n'])
                .as_bytes(),
        );
    let mut facts = LbFacts {
        reachable: true,
        ..LbFacts::default()
    };
    let mut budget = FACTS_BUDGET;
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("line {}: {e}", i + 2))?;
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        if rec.len() <= px.max(sv).max(st) {
            return Err(format!(
                "line {}: {} fields, the header names {}",
                i + 2,
                rec.len(),
                columns.len()
            ));
        }
        let (backend, server) = (&rec[px], &rec[sv]);
        let is_server = match ty {
            Some(t) => rec.get(t) == Some(TYPE_SERVER),
            None => !matches!(server, "FRONTEND" | "BACKEND"),
        };
        if !is_server || (!only.is_empty() && !only.iter().any(|b| b == backend)) {
            continue;
        }
        let field = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .filter(|v| !v.is_empty())
                .map(|v| cut(v, MAX_FIELD))
        };
        let entry = LbServer {
            status: cut(&rec[st], MAX_FIELD),
            check_status: field(chk),
            last_change_s: field(chg).and_then(|v| v.parse().ok()),
        };
        // Name, status and check status, plus the JSON around them.
        let cost = server.len()
            + entry.status.len()
            + entry.check_status.as_ref().map_or(0, String::len)
            + 64;
        let known = facts.backends.contains_key(backend);
        let full = (!known && facts.backends.len() == LbFacts::MAX_ENTRIES)
            || facts
                .backends
                .get(backend)
                .is_some_and(|b| b.servers.len() == LbFacts::MAX_ENTRIES)
            || budget < cost + if known { 0 } else { backend.len() + 32 };
        if full {
            facts.truncated = true;
            continue;
        }
        budget -= cost + if known { 0 } else { backend.len() + 32 };
        facts
            .backends
            .entry(cut(backend, MAX_FIELD))
            .or_default()
            .servers
            .insert(cut(server, MAX_FIELD), entry);
    }
    Ok(facts)
}

/// The `haproxy` probe. Stateless: one connection per cycle.
pub struct Haproxy;

impl Haproxy {
    async fn ask(cfg: &Config) -> Result<String, String> {
        let mut s = tokio::net::UnixStream::connect(&cfg.socket)
            .await
            .map_err(|e| format!("connect {}: {e}", cfg.socket.display()))?;
        s.write_all(b"show stat\n")
            .await
            .map_err(|e| format!("send: {e}"))?;
        // HAProxy closes the connection after one command (not in interactive mode), so the
        // answer ends at EOF; one byte past the limit says it was too large.
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if buf.len() > MAX_ANSWER {
            return Err(format!("answer is larger than {MAX_ANSWER} bytes"));
        }
        String::from_utf8(buf).map_err(|_| "answer is not UTF-8".into())
    }
}

impl TypedProbe for Haproxy {
    const KIND: &'static str = "haproxy";
    const STACK: Option<sr_protocol::facts::StackService> =
        Some(sr_protocol::facts::StackService::Lb);
    type Config = Config;
    type Raw = Raw;

    fn new(_cfg: &Config) -> Self {
        Haproxy
    }

    fn collect_budget(cfg: &Config) -> Duration {
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        match tokio::time::timeout(Self::collect_budget(cfg), Self::ask(cfg)).await {
            Ok(Ok(text)) => Raw::Answered(text),
            Ok(Err(e)) => Raw::Failed(cut(&e, MAX_ERROR)),
            Err(_) => Raw::Failed(format!("no answer within {} ms", cfg.timeout_ms)),
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let facts = match raw {
            Raw::Failed(e) => Err(e.clone()),
            Raw::Answered(text) => parse_stat(text, &cfg.backends),
        }
        .unwrap_or_else(|e| LbFacts {
            reachable: false,
            error: Some(cut(&e, MAX_ERROR)),
            ..LbFacts::default()
        });
        let mut f = Finding::ok();
        for (status, code, message) in facts.own_verdicts() {
            f.worsen(status, code, message);
        }
        // A configured backend HAProxy does not have is a typo or a reload that dropped it.
        for b in cfg
            .backends
            .iter()
            .filter(|b| facts.reachable && !facts.backends.contains_key(*b))
        {
            f.worsen(
                sr_protocol::NodeStatus::Fail,
                sr_protocol::reasons::LB_BACKEND_DOWN,
                format!("backend {b}: not in HAProxy's show stat"),
            );
        }
        let mut info = serde_json::Map::new();
        info.insert("backends".into(), facts.backends.len().into());
        f.set_service(SERVICE, facts.reachable, None, info);
        f.facts.lb = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# pxname,svname,status,type,check_status,lastchg,\n";

    #[test]
    fn servers_only_by_type_and_columns_by_name() {
        let text = format!(
            "{HEAD}web,FRONTEND,OPEN,0,,,\napp,s1,UP,2,L4OK,12,\napp,s2,DOWN,2,L4CON,3,\napp,BACKEND,UP,1,,12,\n\n"
        );
        let f = parse_stat(&text, &[]).unwrap();
        assert_eq!(f.backends.len(), 1);
        let s2 = &f.backends["app"].servers["s2"];
        assert_eq!(s2.status, "DOWN");
        assert_eq!(s2.check_status.as_deref(), Some("L4CON"));
        assert_eq!(s2.last_change_s, Some(3));
    }

    #[test]
    fn bad_answers_are_errors_that_say_why() {
        assert!(parse_stat("Unknown command.\n", &[])
            .unwrap_err()
            .contains("not a show stat answer"));
        assert!(parse_stat("", &[]).is_err());
        assert!(parse_stat(&format!("{HEAD}app,s1,UP,2,L4OK,1,\n"), &[])
            .unwrap_err()
            .contains("cut short"));
        assert!(parse_stat("# a,b,c\nx,y,z\n\n", &[])
            .unwrap_err()
            .contains("lacks"));
        // A truncated line (cut mid-record) has too few fields for the status column.
        assert!(parse_stat(&format!("{HEAD}app,s1\n\n"), &[])
            .unwrap_err()
            .contains("line 2"));
        let big = format!("{HEAD}{}", "x".repeat(MAX_ANSWER));
        assert!(parse_stat(&big, &[]).unwrap_err().contains("larger"));
    }

    #[test]
    fn many_servers_are_bounded_and_marked_truncated() {
        let mut text = HEAD.to_string();
        for b in 0..100 {
            for s in 0..100 {
                text.push_str(&format!("b{b},s{s},UP,2,L4OK,1,\n"));
            }
        }
        text.push('\n');
        let f = parse_stat(&text, &[]).unwrap();
        assert!(f.truncated);
        let finding = Haproxy::interpret(&toml_like_default(), &Raw::Answered(text.clone()));
        assert_eq!(finding.status, sr_protocol::NodeStatus::Degraded);
        assert!(finding.reasons.iter().any(|r| r.code == "lb_truncated"));
        let json = serde_json::to_vec(&f).unwrap();
        assert!(json.len() <= FACTS_BUDGET + 1024, "{} bytes", json.len());
        assert!(f
            .backends
            .values()
            .all(|b| b.servers.len() <= LbFacts::MAX_ENTRIES));
    }

    #[test]
    fn validate_names_every_problem() {
        let cfg = Config {
            socket: "rel.sock".into(),
            backends: vec!["".into(), "a,b".into()],
            timeout_ms: 0,
        };
        assert_eq!(cfg.validate().len(), 4, "{:?}", cfg.validate());
        let ok: Config = toml_like_default();
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn agent_config_reads_kind_haproxy_strictly() {
        let cfg: crate::ProbeConfig = serde_json::from_value(serde_json::json!({
            "kind": "haproxy", "socket": "/run/haproxy/admin.sock", "backends": ["api"]
        }))
        .unwrap();
        assert_eq!(cfg.kind(), "haproxy");
        assert_eq!(cfg.service_names(), [SERVICE]);
        assert!(cfg.validate().is_empty());
        let typo = serde_json::from_value::<crate::ProbeConfig>(serde_json::json!({
            "kind": "haproxy", "sockt": "/x"
        }));
        assert!(typo.unwrap_err().to_string().contains("sockt"));
        let bad: crate::ProbeConfig =
            serde_json::from_value(serde_json::json!({"kind": "haproxy", "timeout_ms": 0}))
                .unwrap();
        assert_eq!(
            bad.validate(),
            ["probe haproxy: timeout_ms must be 1..=60000, got 0"]
        );
    }

    fn toml_like_default() -> Config {
        serde_json::from_str("{}").unwrap()
    }
}
