//! `amqp`: on a manager, the broker the manager uses takes an AMQP client.
//!
//! Runs the round trip of [`crate::net::amqp`] and fills the legacy `RabbitMQ` service
//! entry with `is_remote: true`. The broker node's own, deeper view is the `rabbitmq`
//! probe, which runs the same round trip.

use crate::net::amqp::{
    default_port, default_vhost, round_trip, round_trip_budget, Outcome, Target,
};
use crate::net::{validate_endpoint, Secret};
use crate::{default_ms, Finding};
use crate::{ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::time::Duration;

/// The manager-side probe: can this manager reach the broker it uses over AMQP?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Legacy display name; `RabbitMQ` on a manager.
    #[serde(default = "default_name")]
    pub name: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub username: String,
    pub password: Secret,
    /// A connect + channel is enough to know the broker takes clients; publishing also
    /// proves queues and confirms work.
    #[serde(default)]
    pub publish: bool,
    #[serde(default = "default_ms::<5000>")]
    pub timeout_ms: u64,
}

fn default_name() -> String {
    "RabbitMQ".into()
}
impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = validate_endpoint(
            &self.host,
            self.port,
            &self.username,
            self.timeout_ms,
            "amqp",
        );
        if self.name.trim().is_empty() {
            errors.push("name must not be empty".into());
        }
        errors
    }

    /// Where and as whom the round trip connects (also the agent's connection watch).
    pub fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port,
            vhost: self.vhost.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            publish: self.publish,
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// The manager-side AMQP probe; it keeps nothing between cycles.
pub struct Amqp;

impl TypedProbe for Amqp {
    const KIND: &'static str = "amqp";
    type Config = Config;
    type Raw = Outcome;

    fn new(_config: &Config) -> Self {
        Amqp
    }

    fn instance(config: &Config) -> Option<&str> {
        Some(&config.name)
    }

    fn collect_budget(config: &Config) -> Duration {
        round_trip_budget(Duration::from_millis(config.timeout_ms))
    }

    /// The round trip's budget already carries slack past its deadline.
    fn deadline(config: &Config) -> Duration {
        Self::collect_budget(config)
    }

    async fn collect(&self, config: &Config, _ctx: &ProbeContext) -> Outcome {
        round_trip(&config.target()).await
    }

    /// The manager's view: unreachable broker → Fail (the manager cannot dispatch work).
    fn interpret(cfg: &Config, outcome: &Outcome) -> Finding {
        let target = cfg.target().describe();
        let mut f = Finding::ok();
        if let Some(msg) = outcome.describe_failure(&target) {
            f.worsen(NodeStatus::Fail, codes::AMQP_UNREACHABLE, msg);
        }
        let mut extra = serde_json::Map::new();
        extra.insert("endpoint".into(), target.into());
        extra.insert(
            "amqp".into(),
            serde_json::to_value(outcome).unwrap_or_default(),
        );
        f.set_service(cfg.name.clone(), outcome.ok(), Some(true), extra);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::amqp::Step;
    use sr_protocol::ServiceStatus;

    fn cfg(port: u16) -> Config {
        Config {
            name: "RabbitMQ".into(),
            host: "127.0.0.1".into(),
            port,
            vhost: "/".into(),
            username: "monitor".into(),
            password: Secret::new("hunter2"),
            publish: false,
            timeout_ms: 2000,
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = cfg(0);
        c.host = "amqp://x".into();
        c.username.clear();
        c.timeout_ms = 0;
        c.name = " ".into();
        assert_eq!(c.validate().len(), 5, "{:?}", c.validate());
        assert!(cfg(5672).validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected_and_the_password_never_prints() {
        let err = serde_json::from_str::<Config>(
            r#"{"host":"h","username":"u","password":"p","passwd":"x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("passwd"), "{err}");
        assert!(!format!("{:?}", cfg(1)).contains("hunter2"));
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_connect_with_the_os_error_and_fills_the_remote_entry() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = cfg(port);
        let out = round_trip(&c.target()).await;
        assert_eq!(out.failed_step, Some(Step::Connect));
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains("refused"),
            "{out:?}"
        );
        let f = Amqp::interpret(&c, &out);
        assert_eq!(f.status, NodeStatus::Fail);
        assert!(
            f.reasons[0]
                .message
                .contains("connect/authenticate/open vhost"),
            "{:?}",
            f.reasons
        );
        assert!(!f.reasons[0].message.contains("hunter2"));
        let entry = &f.services["RabbitMQ"];
        assert_eq!(entry.is_remote, Some(true));
        assert_eq!(entry.status, ServiceStatus::Inactive);
    }

    #[tokio::test]
    async fn a_server_that_never_speaks_amqp_hits_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and hold the socket without answering the protocol header.
        let holder = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let mut c = cfg(port);
        c.timeout_ms = 300;
        let out = round_trip(&c.target()).await;
        assert_eq!(out.failed_step, Some(Step::Connect), "{out:?}");
        assert!(
            out.error.as_deref().unwrap_or("").contains("deadline"),
            "{out:?}"
        );
        holder.abort();
    }
}
