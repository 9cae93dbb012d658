//! Fuzzes the agent's config file parser and validator (`RawConfig::parse`, then
//! `validate`), the path `status-reporter run` and `validate` take: never a panic, and
//! whatever parses must survive the `to_toml` round trip `configure` relies on when it
//! rewrites the file. Paths in the config are pointed at a directory that does not exist,
//! so validation reports them unreadable instead of opening arbitrary files (a FIFO or
//! `/dev/stdin` would block the fuzzer, not the agent, which runs as a service).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_agent::config::RawConfig;
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/fuzz/agent.toml");
    let Ok(raw) = RawConfig::parse(text, origin) else {
        return;
    };
    let written = raw.to_toml();
    let again = RawConfig::parse(&written, origin).expect("to_toml output parses");
    // Compared as text: a NaN threshold is legal TOML but never equal to itself.
    assert_eq!(
        again.to_toml(),
        written,
        "to_toml round trip changed the config"
    );
    let mut contained = raw;
    let nowhere = |p: &mut Option<PathBuf>| {
        if p.is_some() {
            *p = Some(PathBuf::from("/nonexistent-fuzz-dir/file"));
        }
    };
    nowhere(&mut contained.token_file);
    nowhere(&mut contained.ca_path);
    nowhere(&mut contained.key_path);
    nowhere(&mut contained.state_dir);
    let _ = contained.validate(origin, 1_700_000_000);
});
