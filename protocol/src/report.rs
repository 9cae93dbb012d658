//! The report body an agent PUTs to `/api/v3.1/cluster-status/{type}/{node_id}`.
//!
//! The top level is exactly the Cloudify 5.0.5 shape,
//! `{reporting_freq, timestamp, report: {status, services}}`, so an unmodified 5.0.5
//! manager accepts what we send. Our extension lives under one extra top-level key,
//! [`EXTENSION_KEY`], which 5.0.5 stores and otherwise ignores. Any other unknown
//! top-level or `report` key is a 400: a typo must not silently drop data.

use crate::model::{LegacyNodeStatus, NodeStatus, Reason, ServiceStatus};
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
}

impl Facts {
    pub fn is_empty(&self) -> bool {
        self.db.is_none() && self.broker.is_none()
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
}

/// A decoded and checked report, with the reporter's timestamp in Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedReport {
    pub body: ReportBody,
    pub reporter_time: i64,
}

impl ReportBody {
    /// Decodes and validates exact body bytes. Every rule a collector enforces on the
    /// body lives here, so the fuzzer and the collector exercise the same code.
    pub fn decode(bytes: &[u8]) -> Result<DecodedReport, BodyError> {
        let body: ReportBody =
            serde_json::from_slice(bytes).map_err(|e| BodyError::Json(e.to_string()))?;
        let reporter_time = body.validate()?;
        Ok(DecodedReport {
            body,
            reporter_time,
        })
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
