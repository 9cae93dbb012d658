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
//!
//! The agent binary (`status-reporter-agent`) is also linked with the functions a real run
//! executes placed first and together (`packaging/agent-hot.order`, made by
//! `packaging/scripts/hot-symbols.sh`): the kernel maps text 64 KiB around each fault, so
//! the agent's resident text follows how far apart the code it runs is spread, not how much
//! it runs (BENCHMARKS.md, "Agent footprint"). The order file is advice to the linker: a
//! symbol it names that no longer exists is skipped silently, so a stale file only loses
//! benefit. The link map written beside it lets `packaging/build.sh` report how many of the
//! ordered symbols still match, and is what `hot-symbols.sh` maps addresses back to names with.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_ORDER}");
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
    hot_order();
}

/// The agent's hot-code order file, relative to the package root.
const HOT_ORDER: &str = "packaging/agent-hot.order";

/// Links `status-reporter-agent` with its hot functions first (`--symbol-ordering-file`, an
/// lld option: rustc's default linker for this target is its bundled `rust-lld`) and writes
/// its link map to `OUT_DIR/status-reporter-agent.map`. Skipped, with a warning, when the
/// build names another linker, which may not know the option.
fn hot_order() {
    let agent = "cargo:rustc-link-arg-bin=status-reporter-agent";
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = flags
        .split('\x1f')
        .any(|f| f.contains("linker") || f.contains("link-self-contained"))
        || std::env::vars().any(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER"));
    if other_linker {
        println!("cargo:warning=a linker is named in RUSTFLAGS or CARGO_TARGET_*_LINKER: {HOT_ORDER} not applied");
        return;
    }
    if let Ok(out) = std::env::var("OUT_DIR") {
        // Mangled names, as the order file needs them (lld demangles in maps by default).
        println!("{agent}=-Wl,-Map={out}/status-reporter-agent.map");
        println!("{agent}=-Wl,--no-demangle");
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&manifest).join(HOT_ORDER);
    if order.is_file() {
        println!("{agent}=-Wl,--symbol-ordering-file={}", order.display());
        println!("{agent}=-Wl,--no-warn-symbol-ordering");
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
