//! The status-reporter node agent.
//!
//! Code map:
//! - [`check`]: the opt-in node-local `GET /check/<probe>` endpoint (`check_listen`);
//! - [`config`]: the TOML config, parsed strictly and validated into [`config::AgentConfig`];
//! - [`configure`]: what `status-reporter configure` does (check, key, atomic write, verify);
//! - [`schedule`]: the jittered cycle grid and one bounded cycle of probes;
//! - [`report`]: snapshot, transition ring and the exact report bytes;
//! - [`push`]: per-manager delivery with retry classification, backoff and a breaker;
//! - [`managers`]: seed list plus discovered managers, persisted when changed;
//! - [`daemon`]: the loop tying them together, reload and shutdown;
//! - [`service`]: the daemon as a process (signals, runtime, exit code), shared by
//!   `status-reporter run` and the agent-only `status-reporter-agent` binary;
//! - [`metrics`]: Prometheus metrics on `metrics_listen` (off by default);
//! - [`watch`]: event sources (a watched process exiting) that wake the loop for an
//!   extra, rate-limited cycle before its next tick.
//!
//! Deliberately absent: the agent never reads reports from other nodes, never decides
//! cluster health (the collector does), and never follows redirects.
//!
//! Running the agent in-process: [`run`]`(config_path, shutdown_future)`.

pub mod check;
pub mod config;
pub mod configure;
pub mod daemon;
pub mod managers;
pub mod metrics;
pub mod push;
pub mod report;
pub mod schedule;
pub mod service;
pub mod watch;

pub use daemon::{probe_once, run, run_with_reload, RunError};

/// Wall-clock Unix seconds; only stamps and freshness use it, never scheduling.
pub fn unix_now() -> i64 {
    unix_now_ms() / 1000
}

pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
