//! Fuzzes the signature header parser and the verifier: no panic on any header, and a
//! parsed header round-trips through `to_header`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_protocol::signing::SignedEnvelope;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(env) = SignedEnvelope::parse_header(header) {
        assert_eq!(
            SignedEnvelope::parse_header(&env.to_header()).as_ref(),
            Ok(&env)
        );
        // The verifier must reject (not panic on) arbitrary signatures.
        let _ = env.verify("PUT", "/api/v3.1/cluster-status/db/n1", data);
    }
});
