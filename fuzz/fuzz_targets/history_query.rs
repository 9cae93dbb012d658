//! Fuzzes the history query checker (`sr_collector::history::parse`), what
//! `GET /api/v3.1/history` and the event stream's `?after=` run on an outsider's query:
//! never a panic, a bounded error message, and any accepted filter within its bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_collector::history::{parse, MAX_LIMIT};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `k=v&k=v`, as the query decoder hands it over (already percent-decoded).
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    match parse(&pairs, 1_800_000_000_000) {
        Ok(f) => {
            assert!((1..=MAX_LIMIT).contains(&f.limit));
            assert!(f.after_id.is_none_or(|a| a >= 0));
            if let (Some(s), Some(u)) = (f.since_ms, f.until_ms) {
                assert!(s <= u);
            }
        }
        Err(e) => assert!(e.message.len() < 400, "unbounded message"),
    }
});
