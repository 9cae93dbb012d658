//! The one test harness every integration suite includes with `mod harness;`.
//!
//! - [`launch`]: a throwaway PKI, `collector init`, config edits and the `listening on ADDR`
//!   reader; shared with the ingest benchmark and the load generator.
//! - [`collector`]: the collector as a real process ([`Collector`]) or served in process.
//! - [`agent`]: the agent as a real process ([`Agent`]).
//! - [`status`]: one `cluster status --json` answer as the operator reads it.
//! - [`poll`]: waiting with a deadline; nothing in the suites sleeps to synchronise.
//! - [`fixtures`]: hand-made reporting nodes, probe targets and the secret grep.
//! - [`metrics`]: `/metrics` scrapes, `promtool check metrics`, sample values.
//! - [`rest`]: blocking HTTP(S) through the workspace client (`sr-tls`), for sync suites.
//! - [`netlab`]: network namespaces for the partition suites.
//! - [`alertmanager`]: a real Alertmanager for the alerts suite.
//! - [`lab`]: real service clusters (Patroni, RabbitMQ) on one lifecycle core.
//! - [`browser`]: headless Chromium through chromedriver, for the status page.
//! - [`fixture_server`]: loopback HTTPS nodes answering OpenSearch/MinIO fixtures.
//!
//! Every process the harness starts is stopped on drop, also when a test panics.
#![allow(dead_code, unused_imports)] // Each suite uses a different subset.

pub mod agent;
pub mod alertmanager;
pub mod browser;
pub mod collector;
pub mod fixture_server;
pub mod fixtures;
pub mod lab;
pub mod launch;
pub mod metrics;
pub mod netlab;
pub mod poll;
pub mod rest;
pub mod status;

pub use agent::Agent;
pub use collector::{Collector, InProcessCollector};
pub use launch::Pki;
pub use poll::{eventually, wait_for, wait_until};
pub use status::Status;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_status-reporter");

/// The default limit for a wait.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Whether this is a CI run (`CI=true` or `CI=1`): then a missing service or privilege fails a
/// suite instead of skipping it.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `cmd` wrapped in `ip netns exec NS`, which execs it: the child's pid is the program's
/// own, so killing the child kills the program. Environment and stdio carry over.
pub fn in_netns(ns: &str, cmd: Command) -> Command {
    let mut wrapped = Command::new(ip_bin());
    wrapped
        .args(["netns", "exec", ns])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

/// The `ip` binary (root's PATH has /usr/sbin; a test runner's may not).
pub fn ip_bin() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// stdout then stderr of a finished command, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The last `lines` lines of a log file (empty if it is missing).
pub fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Runs the CLI, records its output as `outputs/<n>.out` under `record_dir` (for the
/// secret grep; `None` only for the commands whose job is to print a new token once:
/// `collector init`, `tokens create`), and returns (exit code, stdout, stderr).
pub fn cli(
    record_dir: Option<&Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("STATUS_REPORTER_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    if let Some(dir) = record_dir {
        let outputs = dir.join("outputs");
        std::fs::create_dir_all(&outputs).unwrap();
        let n = std::fs::read_dir(&outputs).unwrap().count();
        let mut recorded = out.stdout.clone();
        recorded.extend_from_slice(&out.stderr);
        std::fs::write(outputs.join(format!("{n}.out")), recorded).unwrap();
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
