//! Fuzzes `parse_agent_args`, the hand-written command line of `status-reporter-agent`: the
//! input is split at NUL bytes into arguments (non-UTF-8 included). Never a panic; a
//! rejection is one short line; an accepted `--config` is a non-empty path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_agent::service::{parse_agent_args, Invocation};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args = data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec()));
    match parse_agent_args(args) {
        Ok(Invocation::Run(Some(path))) => assert!(!path.as_os_str().is_empty()),
        Ok(_) => {}
        Err(e) => assert!(!e.is_empty() && e.len() < 200 && !e.contains('\n'), "{e}"),
    }
});
