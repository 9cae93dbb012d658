//! Fuzzes the collector's config file parser and validator (`Config::from_toml`, the path
//! `collector run` and `collector validate` take): never a panic, every rejection names at
//! least one problem, and an accepted config survives the `to_toml` round trip that
//! `collector init` writes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_collector::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(cfg) => {
            let again =
                Config::from_toml(&cfg.to_toml()).expect("to_toml output is a valid config");
            assert_eq!(again, cfg, "to_toml round trip changed the config");
        }
        Err(e) => assert!(!e.0.is_empty(), "a rejection without a reason"),
    }
});
