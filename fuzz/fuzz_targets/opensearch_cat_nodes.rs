//! Fuzzes the opensearch probe's `_cat/nodes?format=json` reading over arbitrary bodies
//! (`probes/fixtures/opensearch-2/cat-nodes-*` seed it), beside a green health answer. It
//! must never panic, keep at most `SearchFacts::MAX_NODES` nodes (saying when it cut), and
//! keep the facts within the report's 16 KiB.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::net::Reply;
use sr_probes::opensearch::{parse_cat_nodes, Config, Opensearch, Raw};
use sr_probes::TypedProbe;
use sr_protocol::facts::SearchFacts;

const GREEN: &str = include_str!("../../probes/fixtures/opensearch-2/health-green.json");

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data).into_owned();
    if let Ok(n) = parse_cat_nodes(&body) {
        assert!(n.nodes.len() <= SearchFacts::MAX_NODES);
        if let Some(m) = &n.cluster_manager {
            assert!(m.len() <= 200);
        }
    }
    let cfg: Config = toml::from_str("url = 'http://127.0.0.1:9200'").expect("fuzz config");
    let raw = Raw {
        root: Reply::Failed {
            error: "fuzz".into(),
        },
        health: Reply::Answered {
            status: 200,
            body: GREEN.into(),
        },
        nodes: Reply::Answered { status: 200, body },
    };
    let f = Opensearch::interpret(&cfg, &raw);
    let bytes = serde_json::to_vec(&f.facts).expect("facts serialize").len();
    assert!(bytes <= 16 << 10, "{bytes} bytes of facts");
});
