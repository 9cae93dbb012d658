//! Event source: a watched process exiting. For each [`Target`] the process serving it
//! is found ([`listener::resolve`]) and a pidfd opened on it; the pidfd turns readable
//! when the process exits, and the watch wakes the daemon once and ends. It is re-armed
//! after a later cycle, once something listens on the port again.
//!
//! Cost: nothing while a watch holds (one idle fd in the reactor); `/proc/net/tcp{,6}`
//! per cycle while the service is down; the `/proc/*/fd` scan only when a listener is
//! found, and at most once every [`HIDDEN_RETRY_CYCLES`] cycles when the process cannot
//! be seen (another user's, without the privilege to look).

use super::listener::{self, Resolved, Target};
use super::{Source, Wake, Waker};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

/// Cycles skipped before looking again for a process that could not be seen.
pub const HIDDEN_RETRY_CYCLES: u32 = 12;

struct Slot {
    target: Target,
    watch: Option<(i32, JoinHandle<()>)>,
    skip: u32,
}

/// The process watches of one config.
pub struct ProcessWatch {
    proc_root: PathBuf,
    slots: Vec<Slot>,
    waker: Waker,
}

impl ProcessWatch {
    pub fn new(targets: Vec<Target>, waker: Waker) -> Self {
        ProcessWatch {
            proc_root: PathBuf::from("/proc"),
            slots: targets
                .into_iter()
                .map(|target| Slot {
                    target,
                    watch: None,
                    skip: 0,
                })
                .collect(),
            waker,
        }
    }

    /// The pids watched now, by probe.
    pub fn watched(&self) -> Vec<(String, i32)> {
        self.slots
            .iter()
            .filter_map(|s| match &s.watch {
                Some((pid, h)) if !h.is_finished() => Some((s.target.probe.clone(), *pid)),
                _ => None,
            })
            .collect()
    }

    /// Arms every watch that is not holding. Called after each cycle.
    pub fn rearm(&mut self) {
        for slot in &mut self.slots {
            if slot.watch.as_ref().is_some_and(|(_, h)| !h.is_finished()) {
                continue;
            }
            slot.watch = None;
            if slot.skip > 0 {
                slot.skip -= 1;
                continue;
            }
            match listener::resolve(&self.proc_root, &slot.target) {
                Resolved::NotListening => {}
                Resolved::Hidden => {
                    tracing::debug!(probe = %slot.target.probe, port = slot.target.port, "the process serving the port is not visible; not watched");
                    slot.skip = HIDDEN_RETRY_CYCLES;
                }
                Resolved::Pid(pid) => match watch_exit(pid, &slot.target.probe, &self.waker) {
                    Ok(h) => {
                        // Info: rare (start, reload, after each exit), and it tells an
                        // operator which process the agent will react to.
                        tracing::info!(probe = %slot.target.probe, pid, "watching the process serving the probe");
                        slot.watch = Some((pid, h));
                    }
                    Err(e) => {
                        tracing::debug!(probe = %slot.target.probe, pid, error = %e, "cannot watch the process");
                        slot.skip = HIDDEN_RETRY_CYCLES;
                    }
                },
            }
        }
    }
}

impl Drop for ProcessWatch {
    fn drop(&mut self) {
        for s in &self.slots {
            if let Some((_, h)) = &s.watch {
                h.abort();
            }
        }
    }
}

/// Opens a pidfd on `pid` and spawns the task that wakes the daemon when it exits.
pub fn watch_exit(pid: i32, probe: &str, waker: &Waker) -> std::io::Result<JoinHandle<()>> {
    let fd = pidfd(pid)?;
    // SAFETY: `fd` is an `OwnedFd` moved into the `AsyncFd`: it stays open and is the
    // same descriptor until the `AsyncFd` is dropped, and nothing else can close it.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let waker = waker.clone();
    let probe = probe.to_string();
    Ok(tokio::spawn(async move {
        // Readable means exited; an error from the reactor ends the watch the same way
        // (the next cycle re-arms it), so a lost watch costs one cycle, not a stuck one.
        let _ = afd.readable().await;
        tracing::info!(%probe, pid, "a watched process exited; probing now");
        waker.wake(Wake {
            source: Source::ProcessExit,
            probe,
        });
    }))
}

fn pidfd(pid: i32) -> std::io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::NONBLOCK,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AgentMetrics;
    use std::time::Duration;

    #[tokio::test]
    async fn a_watched_child_exiting_wakes_the_daemon_once() {
        let (waker, mut rx) = super::super::channel(AgentMetrics::default());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let h = watch_exit(child.id() as i32, "patroni", &waker).unwrap();
        // Nothing while it runs.
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err());
        child.kill().unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake within 10 s")
            .unwrap();
        assert_eq!(got.source, Source::ProcessExit);
        assert_eq!(got.probe, "patroni");
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .unwrap()
            .unwrap();
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_listener_process_is_found_watched_and_rearmed_after_it_exits() {
        // A real process serving a port: python is on every lab host; without it the
        // resolution is still covered by listener's own test.
        let Ok(mut child) = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            assert!(std::env::var("CI").is_err(), "python3 is needed under CI");
            return;
        };
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        let (waker, mut rx) = super::super::channel(AgentMetrics::default());
        let target = Target {
            probe: "postgres".into(),
            ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            port,
        };
        let mut w = ProcessWatch::new(vec![target], waker);
        w.rearm();
        assert_eq!(w.watched(), [("postgres".to_string(), child.id() as i32)]);
        child.kill().unwrap();
        child.wait().unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake within 10 s")
            .unwrap();
        assert_eq!(got.probe, "postgres");
        // Wait for the watch task to finish: it ends right after its wake.
        crate::watch::until(|| w.watched().is_empty()).await;
        w.rearm();
        assert!(w.watched().is_empty(), "nothing listens any more");
    }
}
