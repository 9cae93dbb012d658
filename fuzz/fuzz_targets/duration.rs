//! Fuzzes `parse_duration`, the parser of `nodes forget --stale-for DURATION`: never a
//! panic, every rejection says why in a short message, and an accepted duration is at
//! most 100 years.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_collector::config::parse_duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_duration(text) {
        Ok(d) => assert!(d.as_secs() <= 100 * 365 * 86_400),
        Err(e) => assert!(!e.is_empty() && e.len() < 200, "{e}"),
    }
});
