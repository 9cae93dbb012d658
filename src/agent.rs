//! `status-reporter-agent`: the node agent alone, as the packaged agent unit runs it.
//!
//! The same agent as `status-reporter run` (both call [`sr_agent::service`]), in a binary
//! without the collector, the operator's CLI and their libraries: the kernel keeps most of a
//! binary's code resident once the process touches it here and there, so a smaller binary is
//! a smaller agent (BENCHMARKS.md, "Agent footprint"). No clap and no `EnvFilter` (regex) for
//! the same reason: the command line is three flags, and `STATUS_REPORTER_LOG` is read as a
//! target list (`info,sr_agent=debug`), which covers what operators set.

use sr_agent::service::{self, Invocation};
use std::process::ExitCode;

fn main() -> ExitCode {
    match service::parse_agent_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Help) => {
            print!("{}", service::AGENT_USAGE);
            ExitCode::SUCCESS
        }
        Ok(Invocation::Version) => {
            println!("status-reporter-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Invocation::Run(config)) => {
            init_logging();
            sr_tls::install_default_provider();
            let path = sr_agent::config::resolve_path(config.as_deref());
            ExitCode::from(service::run_until_signalled(&path))
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", service::AGENT_USAGE);
            ExitCode::from(2)
        }
    }
}

/// Logging as `status-reporter` sets it up (src/cli/logging.rs), with a target filter in
/// place of `EnvFilter`: an unreadable `STATUS_REPORTER_LOG` is reported and `info` used.
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, bad) = match std::env::var("STATUS_REPORTER_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match spec.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (
                Targets::new().with_default(tracing::Level::INFO),
                Some((spec, e)),
            ),
        },
        // lapin logs every closed AMQP connection at ERROR; see src/cli/logging.rs.
        _ => (
            Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("lapin", tracing_subscriber::filter::LevelFilter::OFF),
            None,
        ),
    };
    // Under systemd, journald stamps each line itself; a second timestamp is noise.
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    if under_journald {
        registry.with(layer.without_time().with_ansi(false)).init();
    } else {
        registry.with(layer).init();
    }
    if let Some((spec, e)) = bad {
        tracing::warn!("STATUS_REPORTER_LOG={spec:?} is not a target list ({e}): logging at info");
    }
}
