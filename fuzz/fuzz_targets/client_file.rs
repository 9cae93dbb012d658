//! Fuzzes the operator's client file parser (`ClientFile::from_toml`, what `cluster status`
//! reads from /etc/status-reporter/client.toml when no flag is given): never a panic, every
//! rejection names at least one problem, and an accepted file survives the `to_toml`
//! round trip that `collector init` writes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_collector::client_file::ClientFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientFile::from_toml(text) {
        Ok(f) => {
            let again = ClientFile::from_toml(&f.to_toml()).expect("to_toml output is valid");
            assert_eq!(again, f, "to_toml round trip changed the file");
        }
        Err(e) => assert!(!e.is_empty(), "a rejection without a reason"),
    }
});
