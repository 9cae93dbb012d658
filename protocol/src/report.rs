//! The report body an agent PUTs to `/api/v3.1/cluster-status/{type}/{node_id}`.
//!
//! The top level is exactly the Cloudify 5.0.5 shape,
//! `{reporting_freq, timestamp, report: {status, services}}`, so an unmodified 5.0.5
//! manager accepts what we send. Our extension lives under one extra top-level key,
//! [`EXTENSION_KEY`], which 5.0.5 stores and otherwise ignores. Any other unknown
//! top-level or `report` key is a 400: a typo must not silently drop data.

use crate::model::{is_hidden_char, LegacyNodeStatus, NodeStatus, Reason, ServiceStatus};
use crate::timestamp::{parse_legacy, TimestampError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The one top-level key our extension uses.
pub const EXTENSION_KEY: &str = "status_reporter";
/// Current version of [`Extension`].
pub const EXTENSION_VERSION: u32 = 1;
/// Accepted range for `reporting_freq`, in seconds.
pub const REPORTING_FREQ_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;
/// Bounds that keep one report from bloating the store.
pub const MAX_SERVICES: usize = 64;
pub const MAX_TRANSITIONS: usize = 256;
pub const MAX_NAME_LEN: usize = 128;
/// Reasons kept per list (a node's, a service's, a transition's); more are dropped and
/// replaced by one [`REASONS_TRUNCATED`] reason that says how many.
pub const MAX_REASONS: usize = 16;
/// Serialized bytes of one service's `extra_info` kept; a larger object is replaced by
/// `{"truncated": true, "bytes": N}` (5.0.5 shows `extra_info` as opaque JSON).
pub const MAX_EXTRA_INFO_BYTES: usize = 2048;
/// Serialized bytes of `facts` accepted; more is refused (400), not cut: the cluster
/// rules read facts, and a cut list of members would change a verdict.
pub const MAX_FACTS_BYTES: usize = 16 * 1024;
/// Code of the reason that stands for dropped reasons.
pub const REASONS_TRUNCATED: &str = "reasons_truncated";

/// The bounds, chosen at decode time: text and lists a reporter controls are cut with a
/// marker (the report still counts; what was cut is said), names are refused. So what
/// the collector keeps and shows per node is bounded whatever is sent (docs/security.md).

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pub reporting_freq: u32,
    /// `%Y%m%d%H%M%S+0000`, the reporter's clock. Used only to measure skew.
    pub timestamp: String,
    pub report: LegacyReport,
    #[serde(
        default,
        rename = "status_reporter",
        skip_serializing_if = "Option::is_none"
    )]
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyReport {
    pub status: LegacyNodeStatus,
    pub services: BTreeMap<String, ServiceEntry>,
}

/// One service on the legacy wire. Display names matter to 5.0.5: `Patroni`, `Etcd`,
/// `RabbitMQ`, `PostgreSQL`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub status: ServiceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_remote: Option<bool>,
    #[serde(default)]
    pub extra_info: serde_json::Map<String, serde_json::Value>,
}

/// Our extension. Unknown keys inside it are ignored so a newer agent can report to an
/// older collector; `version` says which fields to expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub version: u32,
    /// The node's own status, including Degraded, which the legacy wire cannot carry.
    pub node_status: NodeStatus,
    pub node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    pub agent_version: String,
    pub boot_id: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Per-service detail keyed like `report.services`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceDetail>,
    /// Structured facts the collector's cluster rules read (db and broker roll-up).
    #[serde(default, skip_serializing_if = "Facts::is_empty")]
    pub facts: Facts,
    #[serde(default)]
    pub agent_health: AgentHealth,
    /// Status transitions this manager has not acknowledged yet, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
    /// Transitions that fell off the agent's bounded ring since it started.
    #[serde(default)]
    pub transitions_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDetail {
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    pub duration_ms: u64,
}

/// Facts for the cluster-level rules. Each probe family owns its part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<crate::facts::DbFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<crate::facts::BrokerFacts>,
    /// Stack services (docs/protocol.md, "Stack services"): a node with a section is a
    /// member of that service, whatever its node type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub galera: Option<crate::facts::GaleraFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<crate::facts::LbFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<crate::facts::VipFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<crate::facts::SearchFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectstore: Option<crate::facts::ObjectstoreFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacemaker: Option<crate::facts::PacemakerFacts>,
}

impl Facts {
    pub fn is_empty(&self) -> bool {
        self.db.is_none()
            && self.broker.is_none()
            && self.galera.is_none()
            && self.lb.is_none()
            && self.vip.is_none()
            && self.search.is_none()
            && self.objectstore.is_none()
            && self.pacemaker.is_none()
    }
}

/// The agent's view of its own delivery, so operators see a rejected token or an
/// unreachable manager in `cluster status` instead of in a log on the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentHealth {
    #[serde(default)]
    pub managers: Vec<ManagerDelivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cycle_ms: Option<u64>,
    /// Why the agent cannot persist state (full disk, read-only config dir), if it can't.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagerDelivery {
    pub manager: String,
    /// `ok`, `http 401`, `connect: ...`, `timeout`, ...
    pub last_result: String,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default)]
    pub acked_seq: u64,
}

/// One change of the node's (or one service's) status, as seen by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Monotonic per boot; the collector keeps each `(boot_id, seq)` once.
    pub seq: u64,
    /// Agent clock, Unix milliseconds.
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub from: NodeStatus,
    pub to: NodeStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed report body: {0}")]
    Json(String),
    #[error("reporting_freq must be between 1 and 3600 seconds, got {0}")]
    ReportingFreq(u32),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    #[error("too many services: {0} (limit {MAX_SERVICES})")]
    TooManyServices(usize),
    #[error("too many transitions: {0} (limit {MAX_TRANSITIONS})")]
    TooManyTransitions(usize),
    #[error("{0} is longer than {MAX_NAME_LEN} bytes")]
    TooLong(&'static str),
    #[error("unsupported extension version {0} (this collector speaks {EXTENSION_VERSION})")]
    ExtensionVersion(u32),
    #[error("{0} contains control or invisible formatting characters (e.g. U+200B, U+202E)")]
    HiddenCharacters(&'static str),
    #[error("facts are {0} bytes (limit {MAX_FACTS_BYTES})")]
    FactsTooLarge(usize),
}

/// A decoded and checked report, with the reporter's timestamp in Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedReport {
    pub body: ReportBody,
    pub reporter_time: i64,
    /// How many reasons, reason fields and `extra_info` objects were cut to the bounds.
    pub truncated: usize,
}

impl ReportBody {
    /// Decodes and validates exact body bytes. Every rule a collector enforces on the
    /// body lives here, so the fuzzer and the collector exercise the same code.
    pub fn decode(bytes: &[u8]) -> Result<DecodedReport, BodyError> {
        let mut body: ReportBody =
            serde_json::from_slice(bytes).map_err(|e| BodyError::Json(e.to_string()))?;
        let reporter_time = body.validate()?;
        let truncated = body.bound();
        Ok(DecodedReport {
            body,
            reporter_time,
            truncated,
        })
    }

    /// Cuts what a reporter controls to the bounds; returns how many things were cut.
    fn bound(&mut self) -> usize {
        let mut cut = 0;
        for entry in self.report.services.values_mut() {
            let bytes = serde_json::to_vec(&entry.extra_info).map_or(0, |v| v.len());
            if bytes > MAX_EXTRA_INFO_BYTES {
                entry.extra_info = serde_json::Map::from_iter([
                    ("truncated".to_string(), serde_json::Value::Bool(true)),
                    ("bytes".to_string(), serde_json::Value::from(bytes)),
                ]);
                cut += 1;
            }
        }
        if let Some(ext) = &mut self.extension {
            cut += bound_reasons(&mut ext.reasons);
            for detail in ext.services.values_mut() {
                cut += bound_reasons(&mut detail.reasons);
            }
            for t in &mut ext.transitions {
                cut += bound_reasons(&mut t.reasons);
            }
        }
        cut
    }

    fn validate(&self) -> Result<i64, BodyError> {
        if !REPORTING_FREQ_RANGE.contains(&self.reporting_freq) {
            return Err(BodyError::ReportingFreq(self.reporting_freq));
        }
        let t = parse_legacy(&self.timestamp)?;
        if self.report.services.len() > MAX_SERVICES {
            return Err(BodyError::TooManyServices(self.report.services.len()));
        }
        if self.report.services.keys().any(|k| k.len() > MAX_NAME_LEN) {
            return Err(BodyError::TooLong("a service name"));
        }
        if self
            .report
            .services
            .keys()
            .any(|k| k.chars().any(is_hidden_char))
        {
            return Err(BodyError::HiddenCharacters("a service name"));
        }
        if let Some(ext) = &self.extension {
            if ext.version != EXTENSION_VERSION {
                return Err(BodyError::ExtensionVersion(ext.version));
            }
            if ext.transitions.len() > MAX_TRANSITIONS {
                return Err(BodyError::TooManyTransitions(ext.transitions.len()));
            }
            if ext.node_name.len() > MAX_NAME_LEN {
                return Err(BodyError::TooLong("node_name"));
            }
            if ext.boot_id.len() > MAX_NAME_LEN {
                return Err(BodyError::TooLong("boot_id"));
            }
            if ext.node_name.chars().any(is_hidden_char) {
                return Err(BodyError::HiddenCharacters("node_name"));
            }
            if ext.services.len() > MAX_SERVICES {
                return Err(BodyError::TooManyServices(ext.services.len()));
            }
            let facts = serde_json::to_vec(&ext.facts).map_or(0, |v| v.len());
            if facts > MAX_FACTS_BYTES {
                return Err(BodyError::FactsTooLarge(facts));
            }
        }
        Ok(t)
    }

    /// The node's status: the extension's when present (it can say Degraded), else the
    /// legacy OK/Fail.
    pub fn node_status(&self) -> NodeStatus {
        match &self.extension {
            Some(ext) => ext.node_status,
            None => self.report.status.into(),
        }
    }
}

/// Bounds one list of reasons: each field cut and its hidden characters marked, at most
/// [`MAX_REASONS`] kept, and the rest replaced by one reason that counts them.
pub(crate) fn bound_reasons(reasons: &mut Vec<Reason>) -> usize {
    let mut cut = reasons.iter_mut().map(|r| usize::from(r.bound())).sum();
    if reasons.len() > MAX_REASONS {
        let dropped = reasons.len() - MAX_REASONS;
        reasons.truncate(MAX_REASONS);
        reasons.push(Reason::new(
            REASONS_TRUNCATED,
            format!("{dropped} more reasons were dropped (limit {MAX_REASONS})"),
        ));
        cut += dropped;
    }
    cut
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use serde_json::json;

    fn body(ext: serde_json::Value, extra_info: serde_json::Value) -> Vec<u8> {
        let mut b = json!({
            "reporting_freq": 5,
            "timestamp": "20260101000000+0000",
            "report": {"status": "OK", "services": {"Patroni": {"status": "Active", "extra_info": extra_info}}},
        });
        if !ext.is_null() {
            b["status_reporter"] = ext;
        }
        serde_json::to_vec(&b).unwrap()
    }

    fn ext(name: &str, reasons: serde_json::Value) -> serde_json::Value {
        json!({"version": 1, "node_status": "Fail", "node_name": name, "agent_version": "x",
               "boot_id": "b", "seq": 1, "reasons": reasons})
    }

    #[test]
    fn hostile_reasons_and_extra_info_are_cut_with_a_marker() {
        let reasons: Vec<_> = (0..3001)
            .map(|i| json!({"code": "c", "message": "m".repeat(50_000), "node": format!("n{i}")}))
            .collect();
        let d = ReportBody::decode(&body(
            ext("db1", json!(reasons)),
            json!({"blob": "x".repeat(250_000)}),
        ))
        .unwrap();
        let ext = d.body.extension.unwrap();
        assert_eq!(ext.reasons.len(), MAX_REASONS + 1);
        assert_eq!(ext.reasons[MAX_REASONS].code, REASONS_TRUNCATED);
        assert!(ext
            .reasons
            .iter()
            .all(|r| r.message.len() <= crate::model::MAX_REASON_LEN + 3));
        let info = &d.body.report.services["Patroni"].extra_info;
        assert_eq!(info["truncated"], true);
        assert!(d.truncated >= 3001);
    }

    #[test]
    fn names_with_invisible_characters_are_refused_and_reason_text_is_marked() {
        for name in ["db1\u{200B}", "\u{202E}1bd", "db\u{2066}1", "db1\u{FEFF}"] {
            assert_eq!(
                ReportBody::decode(&body(ext(name, json!([])), json!({}))),
                Err(BodyError::HiddenCharacters("node_name")),
                "{name:?}"
            );
        }
        let d = ReportBody::decode(&body(
            ext(
                "db1",
                json!([{"code": "x", "message": "all fine\u{202E}", "node": "db1\u{200B}"}]),
            ),
            json!({}),
        ))
        .unwrap();
        let r = &d.body.extension.unwrap().reasons[0];
        assert_eq!(r.message, "all fine<U+202E>");
        assert_eq!(r.node.as_deref(), Some("db1<U+200B>"));
    }

    #[test]
    fn oversized_facts_are_refused() {
        let mut e = ext("db1", json!([]));
        let partitions: Vec<String> = (0..400)
            .map(|i| format!("rabbit@peer-{i:04}-{}", "x".repeat(40)))
            .collect();
        e["facts"] = json!({"broker": {"partitions": partitions}});
        assert!(matches!(
            ReportBody::decode(&body(e, json!({}))),
            Err(BodyError::FactsTooLarge(_))
        ));
    }
}
