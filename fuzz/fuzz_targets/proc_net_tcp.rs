//! Fuzzes the agent's process watch parsers (agent/src/watch/listener.rs): the
//! `/proc/net/tcp{,6}` table reader and the URL host:port split. Never a panic; every row
//! read is a LISTEN row, and a URL's host never holds the path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_agent::watch::listener::{host_port_of_url, parse_table};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rows = parse_table(text);
    assert!(rows.len() <= text.lines().count());
    if let Some((host, _)) = host_port_of_url(text) {
        assert!(!host.contains('/'), "{host:?}");
    }
});
