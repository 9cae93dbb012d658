//! `tcp`: a configured local endpoint accepts a TCP connection in time.
//!
//! The simplest probe, and the model for the others' shape: typed config, an I/O
//! `collect` that turns every failure into data, and a pure `interpret`.

use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Display name of the service this endpoint stands for (`Manager Rest-Service`).
    pub name: String,
    /// `host:port`.
    pub address: String,
    #[serde(default = "default_ms::<1000>")]
    pub timeout_ms: u64,
    /// Fail (true, default) or only Degrade (false) the node when it does not answer.
    #[serde(default = "yes")]
    pub critical: bool,
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push("name must not be empty".to_string());
        }
        if self
            .address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            errors.push(format!("address {:?} must be host:port", self.address));
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Connected { latency: Duration },
    Failed { error: String },
}

/// The `tcp` probe; it keeps nothing between cycles.
pub struct Tcp;

impl TypedProbe for Tcp {
    const KIND: &'static str = "tcp";
    type Config = Config;
    type Raw = Raw;

    fn new(_config: &Config) -> Self {
        Tcp
    }

    fn instance(config: &Config) -> Option<&str> {
        Some(&config.name)
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let start = Instant::now();
        match tokio::time::timeout(
            Duration::from_millis(cfg.timeout_ms),
            tokio::net::TcpStream::connect(&cfg.address),
        )
        .await
        {
            Ok(Ok(_)) => Raw::Connected {
                latency: start.elapsed(),
            },
            Ok(Err(e)) => Raw::Failed {
                error: e.to_string(),
            },
            Err(_) => Raw::Failed {
                error: format!("no answer within {} ms", cfg.timeout_ms),
            },
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut finding = Finding::ok();
        if let Raw::Failed { error } = raw {
            let level = if cfg.critical {
                NodeStatus::Fail
            } else {
                NodeStatus::Degraded
            };
            finding.worsen(
                level,
                codes::ENDPOINT_UNREACHABLE,
                format!(
                    "{} ({}) does not accept connections: {error}",
                    cfg.name, cfg.address
                ),
            );
        }
        let mut extra = serde_json::Map::new();
        extra.insert("address".into(), cfg.address.clone().into());
        if let Raw::Connected { latency } = raw {
            extra.insert("connect_ms".into(), (latency.as_secs_f64() * 1000.0).into());
        }
        finding.set_service(
            cfg.name.clone(),
            matches!(raw, Raw::Connected { .. }),
            None,
            extra,
        );
        finding
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::ServiceStatus;

    fn cfg(address: &str, critical: bool) -> Config {
        Config {
            name: "rest".into(),
            address: address.into(),
            timeout_ms: 500,
            critical,
        }
    }

    #[test]
    fn unreachable_is_fail_or_degraded_by_criticality() {
        let raw = Raw::Failed {
            error: "Connection refused".into(),
        };
        let f = Tcp::interpret(&cfg("127.0.0.1:1", true), &raw);
        assert_eq!(f.status, NodeStatus::Fail);
        assert_eq!(f.reasons[0].code, "endpoint_unreachable");
        assert!(f.reasons[0].message.contains("Connection refused"));
        assert_eq!(f.services["rest"].status, ServiceStatus::Inactive);
        assert_eq!(
            Tcp::interpret(&cfg("127.0.0.1:1", false), &raw).status,
            NodeStatus::Degraded
        );
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = Config {
            name: " ".into(),
            address: "nohostport".into(),
            timeout_ms: 0,
            critical: true,
        };
        assert_eq!(c.validate().len(), 3);
    }

    #[tokio::test]
    async fn collect_connects_to_a_real_listener_and_fails_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(matches!(
            Tcp.collect(&cfg(&addr, true), &ProbeContext { cycle: 0, now: 0 })
                .await,
            Raw::Connected { .. }
        ));
        drop(listener);
        assert!(matches!(
            Tcp.collect(&cfg(&addr, true), &ProbeContext { cycle: 0, now: 0 })
                .await,
            Raw::Failed { .. }
        ));
    }
}
