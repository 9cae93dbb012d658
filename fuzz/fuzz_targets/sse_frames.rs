//! Fuzzes the event-stream framing a `cluster watch` client reads from the network
//! (`sr_protocol::sse::SseParser`): never a panic, and the same events whether the bytes
//! come at once or one by one (a stream splits anywhere).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_protocol::sse::{SseParser, MAX_DATA};

fuzz_target!(|data: &[u8]| {
    let mut whole = SseParser::new();
    let at_once = whole.feed(data);
    let mut bytewise = SseParser::new();
    let mut one_by_one = Vec::new();
    for b in data {
        one_by_one.extend(bytewise.feed(std::slice::from_ref(b)));
    }
    assert_eq!(at_once, one_by_one);
    assert!(at_once.iter().all(|e| e.data.len() <= MAX_DATA));
});
