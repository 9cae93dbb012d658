//! Logging setup: tracing to stderr, journald-friendly.
//!
//! Level meanings: ERROR = the process cannot do its job (will exit or restart);
//! WARN = a report or a probe failed and the operator should know (send failures, rejected
//! tokens); INFO = lifecycle (start, reload, stop, manager list changes); DEBUG = per-cycle
//! detail. Secrets (tokens, passwords, keys) are never logged at any level.

use tracing_subscriber::EnvFilter;

/// Starts logging at `default_level` unless `STATUS_REPORTER_LOG` says otherwise.
pub fn init(default_level: &str) {
    // lapin logs every closed AMQP connection at ERROR (a broker restart, the session
    // watch's held connection ending): expected events the probes and the watch report
    // themselves, so it is silenced unless asked for.
    let filter = EnvFilter::try_from_env("STATUS_REPORTER_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},lapin=off")));
    // Under systemd, journald stamps each line itself; a second timestamp is noise.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if under_journald {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}
