//! Fuzzes the RabbitMQ probe's `interpret` over raw management answers (`/api/overview`,
//! the local-alarms, port-listener and virtual-hosts checks, `/api/nodes` and the
//! certificate-expiration check; see `frame.rs` for the input shape). Bodies go through
//! the same lossy UTF-8 conversion `collect` applies. It must never panic, and a node
//! whose management API did not answer 200 everywhere is never OK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::net::{Fetch, Secret, TlsFiles};
use sr_probes::rabbitmq::{Config, Rabbitmq, Raw, Reply};
use sr_probes::TypedProbe;

#[path = "frame.rs"]
mod frame;

fn reply(slot: frame::Slot<'_>) -> Reply {
    match slot {
        Some((status, body)) => Reply::from(Fetch::Answered {
            status,
            body: body.to_vec(),
        }),
        None => Reply::from(Fetch::ConnectFailed("fuzz: no answer".into())),
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        management_url: "http://127.0.0.1:15672".into(),
        tls: TlsFiles::default(),
        username: "monitor".into(),
        password: Secret::new("monitor"),
        node_name: None,
        amqp_host: "127.0.0.1".into(),
        amqp_port: 5672,
        vhost: "/".into(),
        amqp_every: 0,
        amqp_publish: true,
        amqp_timeout_ms: 5000,
        cert_expiry_days: 30,
        fd_warn_ratio: 0.9,
        timeout_ms: 2000,
        max_body_bytes: 1 << 20,
    };
    let [overview, local_alarms, port_listener, virtual_hosts, nodes, certs, critical, queues, flags] =
        frame::slots::<9>(data);
    let all_200 = [overview, local_alarms, port_listener, virtual_hosts, nodes]
        .iter()
        .all(|s| matches!(s, Some((200, _))));
    let raw = Raw {
        overview: reply(overview),
        local_alarms: reply(local_alarms),
        port_listener: reply(port_listener),
        virtual_hosts: reply(virtual_hosts),
        nodes: reply(nodes),
        certificate_expiration: certs.map(|c| reply(Some(c))),
        amqp: None,
        quorum_critical: critical.map(|c| reply(Some(c))),
        queues: queues.map(|c| reply(Some(c))),
        feature_flags: flags.map(|c| reply(Some(c))),
        reused: Vec::new(),
    };
    let finding = Rabbitmq::interpret(&cfg, &raw);
    if !all_200 {
        assert_ne!(
            finding.status,
            sr_protocol::NodeStatus::Ok,
            "a failed management check came out OK"
        );
    }
});
