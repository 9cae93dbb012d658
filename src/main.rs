//! `status-reporter`: one binary for every role (the agent unit runs the agent-only
//! `status-reporter-agent`, src/agent.rs, the same agent in a smaller binary).
//!
//! A thin CLI over the workspace's libraries: node-side commands (`configure`, `run`,
//! `probe`, ...) live in [`cli::node`], manager-side ones (`collector`, `tokens`,
//! `nodes`, `cluster status`) in [`cli::manager`], and the all-in-one demo in
//! [`cli::quickstart`]. Each command returns its exit code; errors print once, here.

mod cli;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "status-reporter",
    version,
    about = "Health reporting for HA control planes (Cloudify 5.0.5 wire-compatible)",
    long_about = "Health reporting for HA control planes.\n\n\
On every db, broker and manager node, `status-reporter run` probes local health and pushes a \
signed report to every manager. On managers, `status-reporter collector run` verifies and \
stores the reports and answers `status-reporter cluster status`.\n\n\
Set a node up with:\n  status-reporter configure --token TOKEN --ca-path /etc/cloudify/ca.pem --managers-ip 10.0.0.11 10.0.0.12\n\n\
Try everything on one host with:\n  status-reporter quickstart",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Node(cli::node::NodeCommand),
    #[command(flatten)]
    Manager(cli::manager::ManagerCommand),
    /// Try it on this host: a collector and an agent, or with --ha a real HA cluster.
    #[command(long_about = cli::quickstart::LONG_ABOUT)]
    Quickstart(cli::quickstart::QuickstartArgs),
    /// Print shell completions to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages into DIR (this binary's and status-reporter-agent's).
    Man { dir: std::path::PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The quickstart draws a live view on the terminal; lifecycle INFO lines would
    // scribble over it, so it logs only warnings unless asked.
    let default_level = if matches!(cli.command, Command::Quickstart(_)) {
        "warn"
    } else {
        "info"
    };
    cli::logging::init(default_level);
    sr_tls::install_default_provider();
    let result = match cli.command {
        Command::Node(cmd) => cli::node::run(cmd),
        Command::Manager(cmd) => cli::manager::run(cmd),
        Command::Quickstart(args) => cli::quickstart::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "status-reporter",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man { dir } => write_man_pages(&dir).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    clap_mangen::generate_to(agent_command(), dir)?;
    Ok(())
}

/// `status-reporter-agent`'s command line, for its man page only: that binary parses its
/// few flags by hand (`sr_agent::service::parse_agent_args`) to stay small.
fn agent_command() -> clap::Command {
    use clap::{Arg, ArgAction};
    clap::Command::new("status-reporter-agent")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The status-reporter node agent alone, as the packaged agent unit runs it")
        .long_about(
            "The node agent alone: what `status-reporter run` does, in a binary without the \
collector and the other commands, so that it keeps less memory resident. It probes this node \
and pushes signed reports to every manager until SIGTERM or SIGINT; SIGHUP re-reads the config. \
The agent unit (status-reporter.service) runs it; `status-reporter run` remains for units \
written before.\n\n\
Logs go to stderr (journald under systemd); STATUS_REPORTER_LOG sets the level as a target \
list, e.g. `debug` or `info,sr_agent=debug`.",
        )
        .arg(Arg::new("run").value_parser(["run"]).help(
            "Accepted for the command line of `status-reporter run`; the agent runs either way",
        ))
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("PATH")
                .env(sr_agent::config::CONFIG_ENV)
                .action(ArgAction::Set)
                .help("Agent config file [default: /etc/status-reporter/agent.toml]"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_agent::service::{parse_agent_args, Invocation};
    use sr_protocol::facts::StackService;

    /// The long help of the subcommand at `path`, as `--help` prints it.
    fn help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        let mut c = &mut cmd;
        for p in path {
            c = c
                .find_subcommand_mut(p)
                .unwrap_or_else(|| panic!("no subcommand {p}"));
        }
        c.render_long_help().to_string()
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Help that enumerates services lists every stack service from the registry
    /// (`StackService::ALL`), so a new service is never missing from it.
    #[test]
    fn help_that_lists_services_names_every_stack_service() {
        for path in [
            &["maintenance"][..],
            &["maintenance", "on"],
            &["maintenance", "off"],
            &["cluster", "status"],
            &["cluster", "history"],
        ] {
            let text = help(path);
            for s in StackService::ALL {
                assert!(
                    text.contains(s.as_str()),
                    "`{}` --help does not name {s}:\n{text}",
                    path.join(" ")
                );
            }
        }
        let on = help(&["maintenance", "on"]);
        assert!(
            on.contains(&sr_protocol::facts::service_list()),
            "the whole list, Cloudify types first: {on}"
        );
    }

    /// The man page describes the flags the agent binary really takes.
    #[test]
    fn the_agent_man_page_matches_its_parser() {
        let cmd = agent_command();
        cmd.clone().debug_assert();
        for args in [
            vec!["run", "--config", "/a.toml"],
            vec!["--config", "/a.toml"],
            vec!["--config=/a.toml"],
        ] {
            let m = cmd
                .clone()
                .try_get_matches_from(std::iter::once("status-reporter-agent").chain(args.clone()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(
                m.get_one::<String>("config").map(String::as_str),
                Some("/a.toml")
            );
            assert_eq!(
                parse_agent_args(args.iter().map(Into::into)),
                Ok(Invocation::Run(Some("/a.toml".into()))),
                "{args:?}"
            );
        }
        for flag in ["--help", "-h", "--version", "-V"] {
            assert!(parse_agent_args([flag.into()]).is_ok(), "{flag}");
        }
    }
}
