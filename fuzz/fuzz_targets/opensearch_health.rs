//! Fuzzes the opensearch probe's `/_cluster/health` reading and `interpret` over arbitrary
//! answers (`probes/fixtures/opensearch-2/health-*` seed it). Byte 0 picks the HTTP status
//! (200, 408, 401, 403, 503, 502), the rest is the body, lossily UTF-8 as `collect` keeps
//! it. It must never panic, the facts stay within the report's 16 KiB, reasons stay short,
//! and an OK finding means a readable green document.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::net::Reply;
use sr_probes::opensearch::{parse_health, Config, Opensearch, Raw};
use sr_probes::TypedProbe;
use sr_protocol::NodeStatus;

const STATUSES: [u16; 6] = [200, 408, 401, 403, 503, 502];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[pick as usize % STATUSES.len()];
    let body = String::from_utf8_lossy(body).into_owned();
    let _ = parse_health(&body);
    let cfg: Config = toml::from_str("url = 'http://127.0.0.1:9200'").expect("fuzz config");
    let raw = Raw {
        root: Reply::Failed {
            error: "fuzz".into(),
        },
        health: Reply::Answered { status, body },
        nodes: Reply::Failed {
            error: "fuzz".into(),
        },
    };
    let f = Opensearch::interpret(&cfg, &raw);
    let s = f
        .facts
        .search
        .as_ref()
        .expect("search facts are always written");
    let bytes = serde_json::to_vec(&f.facts).expect("facts serialize").len();
    assert!(bytes <= 16 << 10, "{bytes} bytes of facts");
    assert!(f.reasons.iter().all(|r| r.message.len() <= 1024));
    if f.status == NodeStatus::Ok {
        assert!(s.reachable && s.status.as_deref() == Some("green"));
        assert!(matches!(status, 200 | 408));
    }
});
