//! The one list of probe kinds. A probe is configured as a `[[probes]]` table whose
//! `kind` picks the variant; unknown kinds and unknown keys are errors.
//!
//! Each kind is one line of [`probe_kinds!`]: the variant, and the [`TypedProbe`] whose
//! config it holds. The config enum, validation and building all come from that line.

use crate::{Probe, Scheduled, TypedProbe};
use serde::{Deserialize, Serialize};

macro_rules! probe_kinds {
    ($($variant:ident => $probe:ty,)*) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum ProbeConfig {
            $($variant(<$probe as TypedProbe>::Config),)*
        }

        impl ProbeConfig {
            /// The `kind` of this entry, as the probe names itself.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(ProbeConfig::$variant(_) => <$probe as TypedProbe>::KIND,)*
                }
            }

            /// Every problem with this probe's settings, prefixed with its kind.
            pub fn validate(&self) -> Vec<String> {
                let errors = match self {
                    $(ProbeConfig::$variant(c) => c.validate(),)*
                };
                errors
                    .into_iter()
                    .map(|e| format!("probe {}: {e}", self.kind()))
                    .collect()
            }
        }

        /// The stack service a probe's findings belong to, by the probe's name in a
        /// result (`KIND`, or `KIND:instance`); `None` for the host's and the Cloudify
        /// roles' probes, and for names no probe has.
        pub fn stack_service_of(name: &str) -> Option<sr_protocol::facts::StackService> {
            let kind = name.split(':').next().unwrap_or(name);
            $(if kind == <$probe as TypedProbe>::KIND {
                return <$probe as TypedProbe>::STACK;
            })*
            None
        }

        /// Builds the probe instance for one config entry.
        pub fn build(cfg: &ProbeConfig) -> Box<dyn Probe> {
            match cfg {
                $(ProbeConfig::$variant(c) => Box::new(Scheduled::<$probe>::new(c.clone())),)*
            }
        }
    };
}

probe_kinds! {
    Tcp => crate::tcp::Tcp,
    Host => crate::host::Host,
    Services => crate::services::Services,
    Http => crate::http::Http,
    Patroni => crate::patroni::Patroni,
    Etcd => crate::etcd::Etcd,
    Postgres => crate::postgres::Postgres,
    Rabbitmq => crate::rabbitmq::Rabbitmq,
    Amqp => crate::amqp::Amqp,
    CollectorSelf => crate::collector_self::CollectorSelf,
    PgConnect => crate::pg_connect::PgConnect,
    Galera => crate::galera::Galera,
    Haproxy => crate::haproxy::Haproxy,
    Keepalived => crate::keepalived::Keepalived,
    Opensearch => crate::opensearch::Opensearch,
    Minio => crate::minio::Minio,
    Pacemaker => crate::pacemaker::Pacemaker,
}

impl ProbeConfig {
    /// The legacy service display names this probe puts in the report. Two probes naming
    /// the same service would overwrite each other's entry, so the agent refuses that.
    pub fn service_names(&self) -> Vec<&str> {
        match self {
            ProbeConfig::Tcp(c) => vec![c.name.as_str()],
            ProbeConfig::Http(c) => vec![c.name.as_str()],
            ProbeConfig::Amqp(c) => vec![c.name.as_str()],
            ProbeConfig::PgConnect(c) => vec![c.name.as_str()],
            ProbeConfig::Services(c) => c.units.iter().map(|u| u.name.as_str()).collect(),
            ProbeConfig::Patroni(_) => vec![crate::patroni::SERVICE],
            ProbeConfig::Etcd(_) => vec![crate::etcd::SERVICE],
            ProbeConfig::Rabbitmq(_) => vec![crate::rabbitmq::SERVICE],
            ProbeConfig::Galera(_) => vec![crate::galera::SERVICE],
            ProbeConfig::Haproxy(_) => vec![crate::haproxy::SERVICE],
            ProbeConfig::Keepalived(_) => vec![crate::keepalived::SERVICE],
            ProbeConfig::Opensearch(_) => vec![crate::opensearch::SERVICE],
            ProbeConfig::Minio(_) => vec![crate::minio::SERVICE],
            ProbeConfig::Pacemaker(_) => vec![crate::pacemaker::SERVICE],
            ProbeConfig::Host(_) | ProbeConfig::Postgres(_) | ProbeConfig::CollectorSelf(_) => {
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde tag a config is read under is the kind the probe reports itself as.
    #[test]
    fn every_kind_tag_is_the_probes_own_kind() {
        let host = ProbeConfig::Host(crate::host::Config::default());
        let tag = serde_json::to_value(&host).unwrap()["kind"].clone();
        assert_eq!(tag, host.kind());
        for toml in [
            "kind = 'tcp'\nname = 'x'\naddress = 'h:1'",
            "kind = 'collector_self'\nurl = 'http://h/'\nstore_path = '/s'",
            "kind = 'pg_connect'\nhost = 'h'\nuser = 'u'",
            "kind = 'amqp'\nhost = 'h'\nusername = 'u'\npassword = 'p'",
        ] {
            let cfg: ProbeConfig = toml::from_str(toml).unwrap();
            assert!(
                toml.starts_with(&format!("kind = '{}'", cfg.kind())),
                "{toml}"
            );
        }
    }

    #[test]
    fn only_the_stack_probes_belong_to_a_stack_service() {
        use sr_protocol::facts::StackService;
        assert_eq!(stack_service_of("galera"), Some(StackService::Galera));
        assert_eq!(stack_service_of("haproxy"), Some(StackService::Lb));
        assert_eq!(stack_service_of("keepalived"), Some(StackService::Vip));
        for name in [
            "host", "patroni", "etcd", "rabbitmq", "tcp:rest", "services", "nope",
        ] {
            assert_eq!(stack_service_of(name), None, "{name}");
        }
    }

    #[test]
    fn service_names_are_what_the_probes_report() {
        let cfg: ProbeConfig = toml::from_str(
            "kind = 'services'\nunits = [{ name = 'Patroni', unit = 'patroni.service' }, { name = 'Etcd', unit = 'etcd.service' }]",
        )
        .unwrap();
        assert_eq!(cfg.service_names(), ["Patroni", "Etcd"]);
        let cfg: ProbeConfig =
            toml::from_str("kind = 'patroni'\nurl = 'http://127.0.0.1:8008'\nmember = 'db1'")
                .unwrap();
        assert_eq!(cfg.service_names(), [crate::patroni::SERVICE]);
        let cfg: ProbeConfig =
            toml::from_str("kind = 'tcp'\nname = 'PG'\naddress = 'h:1'").unwrap();
        assert_eq!(cfg.service_names(), ["PG"]);
    }
}
