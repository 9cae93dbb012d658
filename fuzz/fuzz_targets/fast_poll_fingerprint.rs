//! Fuzzes the fast poll's answer readers (agent/src/watch/fast_poll.rs): `/patroni` and
//! etcd `/health` bodies reduced to their state fields. Never a panic, and a fingerprint
//! stays small whatever the body holds (each field and the replica list are capped).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_agent::watch::fast_poll::{etcd_health_fields, patroni_fields, MAX_FIELD, MAX_REPLICAS};

fuzz_target!(|data: &[u8]| {
    if let Some(f) = patroni_fields(data) {
        // 9 fields and the replica list: each replica is three fields and two colons.
        assert!(f.len() <= 9 * (MAX_FIELD + 24) + MAX_REPLICAS * (3 * MAX_FIELD + 3), "{}", f.len());
    }
    if let Some(f) = etcd_health_fields(data) {
        assert!(f.len() <= 2 * MAX_FIELD + 16, "{}", f.len());
    }
});
