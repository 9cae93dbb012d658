//! Fuzzes `accepts_gzip`, the collector's reading of a client's `Accept-Encoding` for
//! `GET /cluster-status`: any string, never a panic, and the answer does not depend on case.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_collector::view_cache::accepts_gzip;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(accepts_gzip(value), accepts_gzip(&value.to_ascii_uppercase()), "{value:?}");
});
