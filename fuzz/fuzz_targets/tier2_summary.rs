//! Fuzzes the tier-2 summary parser (`Summary::decode`, what a tier-2 collector applies
//! to a verified body): no panic on any input; what it accepts is within its bounds and
//! round-trips through `encode`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_protocol::summary::{Summary, MAX_MANAGERS, MAX_NODES, MAX_SERVICES};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Summary::decode(data, "east") else {
        return;
    };
    assert!(s.nodes.len() <= MAX_NODES);
    assert!(s.services.len() <= MAX_SERVICES);
    assert!(s.managers.len() <= MAX_MANAGERS);
    assert!(s.reasons.len() <= 17);
    let again = Summary::decode(&s.encode(), "east").expect("an accepted summary re-decodes");
    assert_eq!(again, s);
});
