//! Fuzzes the minio probe's capture reading (`parse_capture`) and `interpret` over
//! arbitrary answers to `/minio/health/live`, `/minio/health/cluster` and
//! `?maintenance=true`: three response heads separated by NUL bytes (a missing one did not
//! answer), seeded from `probes/fixtures/minio-2025-10-15/*.http`. It must never panic,
//! the facts stay small, and an OK finding means live 200 and cluster 200 with a
//! readable write quorum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::minio::{parse_capture, Answer, Config, Minio, Raw};
use sr_probes::TypedProbe;
use sr_protocol::NodeStatus;

fn answer(part: Option<&[u8]>) -> Answer {
    let Some(bytes) = part else {
        return Answer::Failed {
            error: "fuzz: no answer".into(),
        };
    };
    parse_capture(&String::from_utf8_lossy(bytes)).unwrap_or_else(|e| Answer::Failed { error: e })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (live, cluster, maintenance) = (parts.next(), parts.next(), parts.next());
    let cfg: Config = toml::from_str("maintenance = true").expect("fuzz config");
    let raw = Raw {
        live: answer(live),
        cluster: answer(cluster),
        maintenance: maintenance.map(|m| answer(Some(m))),
    };
    let f = Minio::interpret(&cfg, &raw);
    let o = f
        .facts
        .objectstore
        .as_ref()
        .expect("objectstore facts are always written");
    let bytes = serde_json::to_vec(&f.facts).expect("facts serialize").len();
    assert!(bytes <= 4096, "{bytes} bytes of facts");
    if f.status == NodeStatus::Ok {
        assert!(o.serving() && o.write_quorum.is_some());
        assert!(matches!(raw.live, Answer::Answered { status: 200, .. }));
    }
});
