//! Measurement only (BENCHMARKS.md, "Agent footprint"): `status-reporter run` without the
//! rest of the binary (collector, SQLite, axum, clap, the CLI), to see how much of the
//! agent's resident memory is the code of other roles sharing its pages.
//! Usage: agent-only [run --config] CONFIG (the last argument is the config, so benchmark
//! scripts start it as they start `status-reporter run --config CONFIG`). SIGTERM/SIGINT
//! stop it, SIGHUP reloads; logs are not set up.

fn main() {
    let path = std::env::args()
        .skip(1)
        .last()
        .expect("usage: agent-only [run --config] CONFIG");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT");
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reload_tx.try_send(());
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        sr_agent::run_with_reload(path, shutdown, Some(reload_rx)).await
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
