//! Node-side commands: `configure`, `run`, `probe`, `show-config`, `remove`, `validate`.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// (not yet built) Run the agent daemon.
    Run,
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<i32> {
    match cmd {
        NodeCommand::Run => anyhow::bail!("the agent is not built yet"),
    }
}
