//! Fuzzes the haproxy probe's `show stat` CSV parser and `interpret` over arbitrary answers
//! (`probes/fixtures/haproxy-2.6` seeds it): it must never panic, the facts stay bounded,
//! and an answer that comes out OK names only servers that serve.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::haproxy::{parse_stat, Config, Haproxy, Raw, FACTS_BUDGET};
use sr_probes::TypedProbe;
use sr_protocol::NodeStatus;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(f) = parse_stat(text, &[]) {
        let bytes = serde_json::to_vec(&f).expect("facts serialize").len();
        assert!(bytes <= FACTS_BUDGET + 2048, "{bytes} bytes of facts");
    }
    let cfg: Config = toml::from_str("").expect("the fuzz config parses");
    let finding = Haproxy::interpret(&cfg, &Raw::Answered(text.to_string()));
    let lb = finding.facts.lb.as_ref().expect("lb facts are always written");
    if finding.status == NodeStatus::Ok {
        assert!(lb.reachable);
        assert!(lb.backends.values().flat_map(|b| b.servers.values()).all(|s| s.serving()));
    }
});
