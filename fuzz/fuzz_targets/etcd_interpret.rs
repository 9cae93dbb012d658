//! Fuzzes the etcd probe's `interpret` over raw `/v3/maintenance/status` and `/health`
//! answers (see `frame.rs` for the input shape): it must never panic, and any answer
//! that is not a well-formed healthy pair must not come out OK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::etcd::{Config, Etcd, Raw};
use sr_probes::net::Fetch;
use sr_probes::TypedProbe;

#[path = "frame.rs"]
mod frame;

fn fetch(slot: frame::Slot<'_>) -> Fetch {
    match slot {
        Some((status, body)) => Fetch::Answered {
            status,
            body: body.to_vec(),
        },
        None => Fetch::ConnectFailed("fuzz: no answer".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg: Config =
        toml::from_str("url = 'http://127.0.0.1:2379'").expect("the fuzz config parses");
    let [status, health] = frame::slots::<2>(data);
    let healthy_codes = matches!((status, health), (Some((200, _)), Some((200, _))));
    let finding = Etcd::interpret(
        &cfg,
        &Raw {
            status: fetch(status),
            health: fetch(health),
        },
    );
    if !healthy_codes {
        assert_ne!(
            finding.status,
            sr_protocol::NodeStatus::Ok,
            "a missing or non-200 answer came out OK"
        );
    }
});
