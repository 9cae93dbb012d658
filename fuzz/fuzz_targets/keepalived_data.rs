//! Fuzzes the keepalived probe's data-file parser and `interpret` over arbitrary dumps
//! (`probes/fixtures/keepalived-2.2` seeds it): it must never panic, the facts stay bounded,
//! and a dump that comes out OK was read whole, with every MASTER holding its VIPs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::keepalived::{parse_data, Config, Keepalived, Raw, FACTS_BUDGET};
use sr_probes::TypedProbe;
use sr_protocol::NodeStatus;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((v, _)) = parse_data(text) {
        let bytes = serde_json::to_vec(&v).expect("facts serialize").len();
        assert!(bytes <= FACTS_BUDGET + 2048, "{bytes} bytes of facts");
        assert!(v.iter().all(|(_, i)| !i.state.is_empty()));
    }
    let cfg: Config = toml::from_str("").expect("the fuzz config parses");
    let raw = Raw { data: Ok(text.to_string()), addrs: Ok(vec!["10.205.0.100".parse().unwrap()]) };
    let finding = Keepalived::interpret(&cfg, &raw);
    let vip = finding.facts.vip.as_ref().expect("vip facts are always written");
    if finding.status == NodeStatus::Ok {
        assert!(vip.reachable && !vip.truncated);
        assert!(vip.instances.values().filter(|i| i.state == "MASTER").all(|i| i.vips.iter().all(|v| vip.holds(v))));
    }
});
