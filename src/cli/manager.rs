//! Manager-side commands: `collector init|run`, `tokens`, `nodes`, `cluster status`.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ManagerCommand {
    /// (not yet built) Collector commands.
    Collector,
}

pub fn run(cmd: ManagerCommand) -> anyhow::Result<i32> {
    match cmd {
        ManagerCommand::Collector => anyhow::bail!("the collector is not built yet"),
    }
}
