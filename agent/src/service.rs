//! The agent as a process: signals, reload and exit code around [`crate::run_with_reload`],
//! shared by `status-reporter run` and the agent-only `status-reporter-agent` binary, and
//! the latter's command line.
//!
//! `status-reporter-agent` exists to keep the agent's resident memory small: the kernel maps
//! a binary's code 64 KiB around every page the process touches, so the agent's RSS follows
//! the size of the binary, not of the code it runs (BENCHMARKS.md, "Agent footprint"). Its
//! command line (`[run] [--config PATH]`, `--help`, `--version`) is parsed here by hand
//! rather than with clap, which would add a CLI parser to that binary for three flags.

use crate::config::AgentConfig;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What `status-reporter-agent` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Run the agent; `None` means the default config path (or `STATUS_REPORTER_CONFIG`).
    Run(Option<PathBuf>),
    Help,
    Version,
}

/// `status-reporter-agent --help`.
pub const AGENT_USAGE: &str = "\
status-reporter-agent: the status-reporter node agent alone (what `status-reporter run` does),
as the packaged systemd unit runs it. It probes this node and pushes signed reports to every
manager until SIGTERM or SIGINT; SIGHUP re-reads the config.

Usage: status-reporter-agent [run] [--config PATH]

Options:
      --config PATH  Agent config file [default: /etc/status-reporter/agent.toml]
                     [env: STATUS_REPORTER_CONFIG]
  -h, --help         Print this help
  -V, --version      Print the version

Logs go to stderr (journald under systemd); STATUS_REPORTER_LOG sets the level, e.g.
`debug` or `info,sr_agent=debug`. Every other command (configure, validate, probe,
collector, cluster status, ...) is in `status-reporter`.
";

/// Longest piece of an argument quoted back in an error.
const QUOTE_MAX: usize = 64;

/// Parses `status-reporter-agent`'s arguments (without the program name). Errors are one
/// short line; the caller prints the usage after them.
pub fn parse_agent_args<I>(args: I) -> Result<Invocation, String>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let mut config: Option<PathBuf> = None;
    let mut seen_run = false;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return Err(format!(
                "unexpected argument {} (not UTF-8)",
                quote(&arg.to_string_lossy())
            ));
        };
        match text {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "run" if !seen_run && config.is_none() => seen_run = true,
            "--config" => match args.next() {
                Some(value) => set_config(value, &mut config)?,
                None => return Err("--config needs a path".to_string()),
            },
            _ => match text.strip_prefix("--config=") {
                Some(value) => set_config(value.into(), &mut config)?,
                None => return Err(format!("unexpected argument {}", quote(text))),
            },
        }
    }
    Ok(Invocation::Run(config))
}

fn set_config(value: OsString, config: &mut Option<PathBuf>) -> Result<(), String> {
    if value.is_empty() {
        return Err("--config needs a path, not an empty value".to_string());
    }
    if config.replace(PathBuf::from(value)).is_some() {
        return Err("--config given more than once".to_string());
    }
    Ok(())
}

/// `'text'`, cut to [`QUOTE_MAX`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("'{}...'", &text[..cut]),
        None => format!("'{text}'"),
    }
}

/// Runs the agent on the config at `path` on a one-thread runtime until SIGTERM or SIGINT;
/// SIGHUP reloads the config. Returns the process's exit code: 0 after a clean stop, 2
/// when the config or the start-up fails (the error is printed to stderr).
pub fn run_until_signalled(path: &Path) -> u8 {
    // Check the config before starting anything, so a bad file is one clear error.
    if let Err(e) = AgentConfig::load(path) {
        eprintln!("error: {e}");
        return 2;
    }
    // One thread: the agent's work is small and mostly waiting, and a single thread keeps
    // its footprint small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let result = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        let mut hup = handler(SignalKind::hangup(), "SIGHUP")?;
        let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
        let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config");
                // A reload already pending covers this one too.
                let _ = reload_tx.try_send(());
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        crate::run_with_reload(path, shutdown, Some(reload_rx))
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Invocation, String> {
        parse_agent_args(args.iter().map(OsString::from))
    }

    #[test]
    fn the_units_and_the_benchmarks_command_lines_parse() {
        assert_eq!(parse(&[]), Ok(Invocation::Run(None)));
        assert_eq!(parse(&["run"]), Ok(Invocation::Run(None)));
        let want = Ok(Invocation::Run(Some("/etc/a.toml".into())));
        assert_eq!(parse(&["run", "--config", "/etc/a.toml"]), want);
        assert_eq!(parse(&["--config", "/etc/a.toml"]), want);
        assert_eq!(parse(&["--config=/etc/a.toml"]), want);
        assert_eq!(parse(&["--version"]), Ok(Invocation::Version));
        assert_eq!(parse(&["run", "-V"]), Ok(Invocation::Version));
        assert_eq!(parse(&["-h"]), Ok(Invocation::Help));
        assert_eq!(parse(&["--config", "x", "--help"]), Ok(Invocation::Help));
    }

    #[test]
    fn malformed_command_lines_are_one_clear_error() {
        for (args, want) in [
            (&["--config"][..], "--config needs a path"),
            (&["--config="], "--config needs a path, not an empty value"),
            (
                &["--config", ""],
                "--config needs a path, not an empty value",
            ),
            (
                &["--config", "a", "--config", "b"],
                "--config given more than once",
            ),
            (&["run", "run"], "unexpected argument 'run'"),
            (&["--config", "a", "run"], "unexpected argument 'run'"),
            (&["configure"], "unexpected argument 'configure'"),
            (&["-c", "a"], "unexpected argument '-c'"),
            (&["--"], "unexpected argument '--'"),
        ] {
            assert_eq!(parse(args), Err(want.to_string()), "{args:?}");
        }
        // An oversized argument is quoted cut short.
        let long = "x".repeat(10_000);
        let e = parse(&[&long]).unwrap_err();
        assert!(e.len() < 100 && e.ends_with("...'"), "{e}");
    }

    #[test]
    fn paths_need_not_be_utf8_but_flags_must() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'/', 0xff, b'a']);
        assert_eq!(
            parse_agent_args([OsString::from("--config"), odd.clone()]),
            Ok(Invocation::Run(Some(PathBuf::from(odd.clone()))))
        );
        let e = parse_agent_args([odd]).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
