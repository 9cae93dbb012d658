//! Build script of the `status-reporter` binary: only a link flag for the packaged build.
//!
//! The packaged binary is static-pie (`packaging/build.sh`: `+crt-static`). At every start
//! glibc relocates it in place from `.rela.dyn`: ~390 KiB of 24-byte entries, all read and
//! then left mapped for the life of the process, which is ~5 % of the agent's resident
//! memory (BENCHMARKS.md, "Agent footprint"). `-z pack-relative-relocs` stores the same
//! relative relocations as DT_RELR bitmaps, a few KiB. glibc handles DT_RELR from 2.36 on
//! (also in static-pie self-relocation), and the binary carries the build host's glibc, so
//! the flag is used only when that glibc is new enough; the binary still runs on older
//! systems (tests/packaging.rs, `runs_on_older_glibc`). Dynamic builds are left alone: there
//! the flag would make the binary need glibc 2.36 at run time.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|f| f == "crt-static");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !(static_crt && gnu_linux) {
        return;
    }
    match host_glibc() {
        Some((major, minor)) if (major, minor) >= (2, 36) => {
            println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        }
        other => println!(
            "cargo:warning=glibc {other:?} on the build host is older than 2.36: static binary keeps its .rela.dyn (no DT_RELR)"
        ),
    }
}

/// The build host's glibc version (`getconf GNU_LIBC_VERSION` prints `glibc 2.36`).
fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
