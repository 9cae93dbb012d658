//! The one list of probe kinds. A probe is configured as a `[[probes]]` table whose
//! `kind` picks the variant; unknown kinds and unknown keys are errors.

use crate::Probe;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeConfig {
    Tcp(crate::tcp::Config),
    Host(crate::host::Config),
    Services(crate::services::Config),
    Http(crate::http::Config),
    Patroni(crate::patroni::Config),
    Etcd(crate::etcd::Config),
    Postgres(crate::postgres::Config),
    Rabbitmq(crate::rabbitmq::Config),
    Amqp(crate::amqp::Config),
    CollectorSelf(crate::collector_self::Config),
    PgConnect(crate::pg_connect::Config),
}

impl ProbeConfig {
    /// Every problem with this probe's settings, prefixed with its kind.
    pub fn validate(&self) -> Vec<String> {
        let (kind, errors) = match self {
            ProbeConfig::Tcp(c) => ("tcp", c.validate()),
            ProbeConfig::Host(c) => ("host", c.validate()),
            ProbeConfig::Services(c) => ("services", c.validate()),
            ProbeConfig::Http(c) => ("http", c.validate()),
            ProbeConfig::Patroni(c) => ("patroni", c.validate()),
            ProbeConfig::Etcd(c) => ("etcd", c.validate()),
            ProbeConfig::Postgres(c) => ("postgres", c.validate()),
            ProbeConfig::Rabbitmq(c) => ("rabbitmq", c.validate()),
            ProbeConfig::Amqp(c) => ("amqp", c.validate()),
            ProbeConfig::CollectorSelf(c) => ("collector_self", c.validate()),
            ProbeConfig::PgConnect(c) => ("pg_connect", c.validate()),
        };
        errors
            .into_iter()
            .map(|e| format!("probe {kind}: {e}"))
            .collect()
    }
}

/// Builds the probe instance for one config entry.
pub fn build(cfg: &ProbeConfig) -> Box<dyn Probe> {
    match cfg {
        ProbeConfig::Tcp(c) => Box::new(crate::tcp::TcpProbe::new(c.clone())),
        ProbeConfig::Host(c) => Box::new(crate::host::HostProbe::new(c.clone())),
        ProbeConfig::Services(c) => Box::new(crate::services::ServicesProbe::new(c.clone())),
        ProbeConfig::Http(c) => Box::new(crate::http::HttpProbe::new(c.clone())),
        ProbeConfig::Patroni(c) => Box::new(crate::patroni::PatroniProbe::new(c.clone())),
        ProbeConfig::Etcd(c) => Box::new(crate::etcd::EtcdProbe::new(c.clone())),
        ProbeConfig::Postgres(c) => Box::new(crate::postgres::PostgresProbe::new(c.clone())),
        ProbeConfig::Rabbitmq(c) => Box::new(crate::rabbitmq::RabbitmqProbe::new(c.clone())),
        ProbeConfig::Amqp(c) => Box::new(crate::amqp::AmqpProbe::new(c.clone())),
        ProbeConfig::CollectorSelf(c) => {
            Box::new(crate::collector_self::CollectorSelfProbe::new(c.clone()))
        }
        ProbeConfig::PgConnect(c) => Box::new(crate::pg_connect::PgConnectProbe::new(c.clone())),
    }
}
