//! Local health probes.
//!
//! Every probe lives in its own file under this crate and has the same shape, stated by
//! the [`TypedProbe`] trait:
//! - a typed `Config` (serde, unknown keys rejected) with `validate() -> Vec<String>`;
//! - `collect`, the I/O shell: it never panics and never returns `Err`; every failure
//!   becomes data in its raw result;
//! - `interpret(config, raw) -> Finding`, a pure function most tests target;
//! - its collect budget;
//! - one line in the [`registry`].
//!
//! [`Scheduled`] turns any of them into the [`Probe`] the scheduler (in `sr-agent`) runs;
//! the scheduler wraps every [`Probe::run`] in its own hard timeout and turns a timeout
//! into a Fail finding with a reason, so one hung endpoint never delays the report.
//! Plumbing shared by several probes lives apart from them: [`net`] (HTTP, AMQP, the
//! one `Secret`) and [`pg`] (PostgreSQL sessions).

pub mod amqp;
pub mod collector_self;
pub mod etcd;
pub mod galera;
pub mod haproxy;
pub mod host;
pub mod http;
pub mod keepalived;
pub mod minio;
pub mod net;
pub mod opensearch;
pub mod pacemaker;
pub mod patroni;
pub mod pg;
pub mod pg_connect;
pub mod postgres;
mod probe;
pub mod rabbitmq;
pub mod registry;
pub mod services;
pub mod tcp;

use sr_protocol::reasons::ReasonCode;
use sr_protocol::report::{Facts, ServiceEntry};
use sr_protocol::{NodeStatus, Reason, ServiceStatus};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

pub use probe::{BoxFuture, Probe, ProbeContext, Scheduled, TypedProbe, SCHEDULING_MARGIN};
pub use registry::{build, stack_service_of, ProbeConfig};

/// What one probe concluded in one cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub status: NodeStatus,
    pub reasons: Vec<Reason>,
    /// Legacy `report.services` entries this probe fills, keyed by display name
    /// (`Patroni`, `Etcd`, `RabbitMQ`, ...).
    pub services: BTreeMap<String, ServiceEntry>,
    /// Structured facts for the collector's cluster rules; merged across probes.
    pub facts: Facts,
}

impl Finding {
    /// A finding with no reasons yet. There is deliberately no `Default`: a probe must
    /// say what it found, never fall back to "healthy".
    pub fn new(status: NodeStatus) -> Self {
        Finding {
            status,
            reasons: Vec::new(),
            services: BTreeMap::new(),
            facts: Facts::default(),
        }
    }

    pub fn ok() -> Self {
        Self::new(NodeStatus::Ok)
    }

    /// A Fail finding with one reason.
    pub fn fail(code: ReasonCode, message: impl Into<String>) -> Self {
        let mut f = Self::new(NodeStatus::Fail);
        f.reasons.push(Reason::new(code, message));
        f
    }

    /// Lowers the status to at least `status` and records why.
    pub fn worsen(&mut self, status: NodeStatus, code: ReasonCode, message: impl Into<String>) {
        self.status = self.status.max(status);
        self.reasons.push(Reason::new(code, message));
    }

    /// Records the legacy `report.services` entry `name`: `Active` when the probe found
    /// the service working, `Inactive` otherwise (the only two states Cloudify shows).
    /// A finding from a facts type's own verdicts (status, code, message): OK with none.
    pub fn judged(verdicts: Vec<(NodeStatus, ReasonCode, String)>) -> Self {
        let mut f = Self::ok();
        for (status, code, message) in verdicts {
            f.worsen(status, code, message);
        }
        f
    }

    pub fn set_service(
        &mut self,
        name: impl Into<String>,
        active: bool,
        is_remote: Option<bool>,
        extra_info: serde_json::Map<String, serde_json::Value>,
    ) {
        let status = if active {
            ServiceStatus::Active
        } else {
            ServiceStatus::Inactive
        };
        self.services.insert(
            name.into(),
            ServiceEntry {
                status,
                is_remote,
                extra_info,
            },
        );
    }
}

/// The config error for a numeric `field` outside `range`, worded the same by every probe.
pub(crate) fn range_error(field: &str, value: u64, range: RangeInclusive<u64>) -> Option<String> {
    (!range.contains(&value)).then(|| {
        format!(
            "{field} must be {}..={}, got {value}",
            range.start(),
            range.end()
        )
    })
}

/// A serde default of `MS` milliseconds: `#[serde(default = "default_ms::<2000>")]`.
pub(crate) fn default_ms<const MS: u64>() -> u64 {
    MS
}

/// A serde default of `true`, for switches that are on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

/// Merges the facts of several findings: later non-null fields override earlier ones,
/// objects merge key by key. Patroni and etcd both contribute to `facts.db`.
pub fn merge_facts(findings: &[Finding]) -> Facts {
    let mut acc = serde_json::Value::Object(Default::default());
    for f in findings {
        if let Ok(v) = serde_json::to_value(&f.facts) {
            deep_merge(&mut acc, v);
        }
    }
    serde_json::from_value(acc).unwrap_or_default()
}

fn deep_merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    continue;
                }
                match a.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}
