//! `status-reporter quickstart`: the whole system on this host, on embedded defaults.

#[derive(clap::Args)]
pub struct QuickstartArgs {
    /// Show the view once after the first report, then stop.
    #[arg(long)]
    pub once: bool,
}

pub fn run(_args: QuickstartArgs) -> anyhow::Result<i32> {
    anyhow::bail!("quickstart is not built yet")
}
