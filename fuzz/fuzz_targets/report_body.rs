//! Fuzzes the report body decoder (legacy and extended shapes): it must never panic, and
//! whatever it accepts must re-encode and decode to the same report.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_protocol::report::ReportBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = ReportBody::decode(data) {
        let again = serde_json::to_vec(&decoded.body).expect("a decoded body re-encodes");
        let round = ReportBody::decode(&again).expect("a re-encoded body decodes");
        assert_eq!(round.body, decoded.body);
    }
});
