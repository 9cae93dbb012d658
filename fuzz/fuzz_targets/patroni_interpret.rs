//! Fuzzes the Patroni probe's `interpret` over raw `/patroni`, `/cluster` and `/config`
//! answers (see `frame.rs` for the input shape), exactly as `collect` hands them over:
//! it must never panic, and a `/patroni` that did not answer 200 is never OK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::net::{Fetch, TlsFiles};
use sr_probes::patroni::{Config, Patroni, Raw, Timed};
use sr_probes::TypedProbe;

#[path = "frame.rs"]
mod frame;

const NOW: i64 = 1_700_000_000;

fn fetch(slot: frame::Slot<'_>) -> Fetch {
    match slot {
        Some((status, body)) => Fetch::Answered {
            status,
            body: body.to_vec(),
        },
        None => Fetch::NoResponse("fuzz: no answer".into()),
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        url: "http://127.0.0.1:8008".into(),
        member: "pg1".into(),
        tls: TlsFiles::default(),
        username: None,
        password: None,
        timeout_ms: 500,
        cluster_every: 5,
        max_body_bytes: 65536,
    };
    let [patroni, cluster, config] = frame::slots::<3>(data);
    let patroni_ok = matches!(patroni, Some((200, _)));
    // `collect` only caches the slow answers when `/patroni` answered at all.
    let timed = |s: frame::Slot<'_>| {
        s.map(|s| Timed {
            fetch: fetch(Some(s)),
            at: NOW - 3,
        })
    };
    let raw = Raw {
        patroni: fetch(patroni),
        cluster: timed(cluster),
        config: timed(config),
        now: NOW,
    };
    let finding = Patroni::interpret(&cfg, &raw);
    if !patroni_ok {
        assert_ne!(
            finding.status,
            sr_protocol::NodeStatus::Ok,
            "a non-200 /patroni came out OK"
        );
    }
});
