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
    /// The watched processes (one, or those found by owner and name) and their tasks.
    watches: Vec<(i32, JoinHandle<()>)>,
    skip: u32,
}

impl Slot {
    /// Holding while every watched process runs: when one exits, the others are dropped
    /// and the target resolved again after the cycle its exit caused.
    fn holding(&self) -> bool {
        !self.watches.is_empty() && self.watches.iter().all(|(_, h)| !h.is_finished())
    }

    fn drop_watches(&mut self) {
        for (_, h) in self.watches.drain(..) {
            h.abort();
        }
    }
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
                    watches: Vec::new(),
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
            .filter(|s| s.holding())
            .flat_map(|s| {
                s.watches
                    .iter()
                    .map(|(pid, _)| (s.target.probe.clone(), *pid))
            })
            .collect()
    }

    /// Arms every watch that is not holding. Called after each cycle.
    pub fn rearm(&mut self) {
        for slot in &mut self.slots {
            if slot.holding() {
                continue;
            }
            slot.drop_watches();
            if slot.skip > 0 {
                slot.skip -= 1;
                continue;
            }
            let pids = match listener::resolve(&self.proc_root, &slot.target) {
                Resolved::NotListening => continue,
                Resolved::Hidden => {
                    tracing::debug!(probe = %slot.target.probe, port = slot.target.port, "the process serving the port is not visible; not watched");
                    slot.skip = HIDDEN_RETRY_CYCLES;
                    continue;
                }
                Resolved::Pids(pids) => pids,
            };
            for pid in pids {
                match watch_exit(pid, &slot.target.probe, &self.waker) {
                    Ok(h) => {
                        // Info: rare (start, reload, after each exit), and it tells an
                        // operator which process the agent will react to.
                        tracing::info!(probe = %slot.target.probe, pid, "watching the process serving the probe");
                        slot.watches.push((pid, h));
                    }
                    Err(e) => {
                        tracing::debug!(probe = %slot.target.probe, pid, error = %e, "cannot watch the process");
                        slot.drop_watches();
                        slot.skip = HIDDEN_RETRY_CYCLES;
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for ProcessWatch {
    fn drop(&mut self) {
        for s in &mut self.slots {
            s.drop_watches();
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
        // A real process serving a port, named by a unique argv[0] (bash's `exec -a`) for
        // the lookup by name below. Debian's /usr/bin/python3: a pyenv shim would re-exec
        // and lose that argv[0].
        let name = format!("sr-watch-test-{}", std::process::id());
        let Ok(mut child) = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("exec -a {name} /usr/bin/python3 -c \"$0\""),
                "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            panic!("bash is needed");
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
            names: &[],
        };
        let mut w = ProcessWatch::new(vec![target], waker);
        w.rearm();
        assert_eq!(w.watched(), [("postgres".to_string(), child.id() as i32)]);
        // What an agent that may not read the child's fds finds: the socket owner's
        // processes by name, the test's python child among them.
        let uid = std::fs::metadata(format!("/proc/{}", child.id()))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap();
        let by_name =
            listener::by_owner_and_name(std::path::Path::new("/proc"), uid, &[name.as_str()]);
        assert!(by_name.contains(&(child.id() as i32)), "{by_name:?}");
        assert!(
            listener::by_owner_and_name(std::path::Path::new("/proc"), uid, &["no-such-name"])
                .is_empty()
        );
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
