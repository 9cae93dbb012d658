//! Fuzzes the Pacemaker probe's `crm_mon` XML reader and `interpret` over arbitrary
//! documents (`probes/fixtures/pacemaker-2.1` seeds it): it must never panic, the facts stay
//! bounded, and a document that comes out OK was read whole, with quorum and this node online.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::pacemaker::{parse_xml, Config, Pacemaker, Parsed, Raw, FACTS_BUDGET};
use sr_probes::TypedProbe;
use sr_protocol::facts::PacemakerFacts;
use sr_protocol::NodeStatus;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Status(f)) = parse_xml(data) {
        let bytes = serde_json::to_vec(&f).expect("facts serialize").len();
        assert!(bytes <= FACTS_BUDGET, "{bytes} bytes of facts");
        assert!(f.resources.len() <= PacemakerFacts::MAX_ENTRIES);
        assert!(f.nodes.len() <= PacemakerFacts::MAX_ENTRIES);
        assert!(f.reachable && f.error.is_none());
    }
    let cfg = Config { command: vec!["crm_mon".into()], node_name: Some("pc1".into()), timeout_ms: 5000 };
    let raw = Raw::Ran { code: Some(0), stdout: data.to_vec(), stderr: String::new(), host: None };
    let finding = Pacemaker::interpret(&cfg, &raw);
    let p = finding.facts.pacemaker.as_ref().expect("pacemaker facts are always written");
    if finding.status == NodeStatus::Ok {
        assert!(p.reachable && !p.truncated && p.with_quorum == Some(true));
        assert!(p.my_node().is_some_and(|n| n.online));
    } else {
        assert!(!finding.reasons.is_empty());
    }
    if !p.reachable {
        assert!(p.error.as_ref().is_some_and(|e| !e.is_empty() && e.len() <= 260));
    }
});
