//! The HA quickstart's processes: each service is spawned in a process group of its own,
//! watched, restarted after a delay when it stops (as `Restart=always` would), and torn
//! down in order with deadlines, whatever state it is in.
//!
//! Why process groups: a service is more than the pid we spawn (`rabbitmq-server` is a shell
//! around `beam.smp`, which starts `erl_child_setup` and `inet_gethost`), and signalling the
//! group reaches them all. PostgreSQL is the exception: Patroni starts the postmaster in a
//! session of its own, so the teardown also reads each data directory's `postmaster.pid`,
//! as `tests/lab/patroni-down.sh` does. A group is only signalled while its leader (a child
//! we spawned, or a postmaster whose command line names our data directory) is ours.
//!
//! If the teardown never ran (a panic, an early return), dropping the registry SIGKILLs every
//! group it knows: nothing outlives the quickstart by accident.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which services stop first: Patroni before etcd (it needs the DCS to release its key and
/// stops PostgreSQL itself), RabbitMQ nodes before their epmd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Patroni,
    Services,
    Epmd,
}

/// One service to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// What messages call it: `Patroni pg1`, `RabbitMQ rabbit2`, `etcd`, `epmd`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// On top of a clean environment (PATH and LANG only): nothing from the caller's
    /// environment leaks into a service (a stray `RABBITMQ_*` or `PG*` variable would).
    pub env: Vec<(String, OsString)>,
    pub cwd: PathBuf,
    /// stdout and stderr, appended.
    pub log: PathBuf,
    /// Run as this (uid, gid) instead of ours (PostgreSQL refuses root).
    pub user: Option<(u32, u32)>,
    pub tier: Tier,
}

struct Entry {
    spec: Spec,
    child: Option<Child>,
    /// The pid of the current (or last) run; also its process group id.
    pid: u32,
    /// When the current run was seen to end (`None` while it runs).
    exited_at: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    /// PostgreSQL data directories whose postmaster (not our child) must also be stopped.
    data_dirs: Vec<PathBuf>,
    /// Set at teardown: nothing is restarted any more.
    stopping: bool,
    torn_down: bool,
}

/// The registry of everything the quickstart started. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Procs {
    inner: Arc<Mutex<Inner>>,
}

/// What the supervisor saw, for the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Exited { name: String, how: String },
    Restarted { name: String, pid: u32 },
    RestartFailed { name: String, error: String },
}

/// A process as the state file and the teardown check name it.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub name: String,
    pub pid: u32,
    pub pgid: u32,
    pub running: bool,
}

impl Procs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // a panic elsewhere while holding it leaves nothing half-written that matters here
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `spec` in a new process group; returns its pid.
    pub fn spawn(&self, spec: Spec) -> std::io::Result<u32> {
        let mut inner = self.lock();
        if inner.stopping {
            return Err(std::io::Error::other("the quickstart is stopping"));
        }
        let child = start(&spec)?;
        let pid = child.id();
        inner.entries.push(Entry {
            spec,
            child: Some(child),
            pid,
            exited_at: None,
        });
        Ok(pid)
    }

    /// Registers a PostgreSQL data directory, whose postmaster the teardown stops too.
    pub fn add_data_dir(&self, dir: PathBuf) {
        self.lock().data_dirs.push(dir);
    }

    /// The running pid of the service called `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .find(|e| e.spec.name == name && e.exited_at.is_none())
            .map(|e| e.pid)
    }

    /// Every process started so far, and the postmasters running now.
    pub fn snapshot(&self) -> Vec<ProcInfo> {
        let inner = self.lock();
        let mut v: Vec<ProcInfo> = inner
            .entries
            .iter()
            .map(|e| ProcInfo {
                name: e.spec.name.clone(),
                pid: e.pid,
                pgid: e.pid,
                running: e.exited_at.is_none(),
            })
            .collect();
        for d in &inner.data_dirs {
            if let Some(pid) = postmaster(d) {
                v.push(ProcInfo {
                    name: format!("postmaster {}", d.display()),
                    pid,
                    pgid: pgid_of(pid).unwrap_or(pid),
                    running: true,
                });
            }
        }
        v
    }

    /// Reaps what ended. During the start a service that stops is a failed start: the
    /// first such service's name and log.
    pub fn first_exited(&self) -> Option<(String, PathBuf, String)> {
        let mut inner = self.lock();
        for e in inner.entries.iter_mut() {
            if let Some(how) = reap(e) {
                return Some((e.spec.name.clone(), e.spec.log.clone(), how));
            }
            if e.exited_at.is_some() {
                return Some((e.spec.name.clone(), e.spec.log.clone(), "ended".into()));
            }
        }
        None
    }

    /// One supervision step: reaps what ended and restarts what has been down for `delay`.
    pub fn supervise_once(&self, delay: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let mut inner = self.lock();
        let stopping = inner.stopping;
        for e in inner.entries.iter_mut() {
            if let Some(how) = reap(e) {
                events.push(Event::Exited {
                    name: e.spec.name.clone(),
                    how,
                });
            }
            let due = e.exited_at.is_some_and(|t| t.elapsed() >= delay);
            if due && !stopping {
                match start(&e.spec) {
                    Ok(child) => {
                        e.pid = child.id();
                        e.child = Some(child);
                        e.exited_at = None;
                        events.push(Event::Restarted {
                            name: e.spec.name.clone(),
                            pid: e.pid,
                        });
                    }
                    Err(err) => {
                        // try again after another delay rather than in a tight loop
                        e.exited_at = Some(Instant::now());
                        events.push(Event::RestartFailed {
                            name: e.spec.name.clone(),
                            error: err.to_string(),
                        });
                    }
                }
            }
        }
        events
    }

    /// Stops everything, in tiers (Patroni, then the postmasters it left, then etcd and the
    /// RabbitMQ nodes, then epmd): SIGTERM to each group, SIGKILL to what outlives `grace`.
    /// Returns what needed a SIGKILL.
    pub async fn teardown(&self, grace: Duration) -> Vec<String> {
        let mut killed = Vec::new();
        self.lock().stopping = true;
        for tier in [Tier::Patroni, Tier::Services, Tier::Epmd] {
            let mut groups = self.groups_of(tier);
            signal_all(&groups, Signal::SIGTERM);
            if tier == Tier::Services {
                // Patroni stopped its PostgreSQL; one it could not stop (or left behind after
                // a SIGKILL) is stopped now, with SIGQUIT: an immediate shutdown.
                let pm = self.postmaster_groups();
                signal_all(&pm, Signal::SIGQUIT);
                groups.extend(pm);
            }
            killed.extend(self.wait_gone(&groups, grace).await);
        }
        // anything of ours still there (a postmaster that started late)
        let rest: Vec<(String, i32)> = self
            .postmaster_groups()
            .into_iter()
            .chain(self.groups_of_all())
            .collect();
        killed.extend(self.wait_gone(&rest, Duration::from_millis(100)).await);
        self.lock().torn_down = true;
        killed
    }

    /// The last sweep before the directory goes: any live process still working in `dir`
    /// (its working directory or command line in it: a PostgreSQL backend or a helper that
    /// a service started in a session of its own while it was being stopped) is SIGKILLed
    /// with its group. Nothing else has a reason to be in a directory the quickstart made.
    pub async fn sweep(&self, dir: &Path) -> Vec<String> {
        let found = in_dir(dir);
        for (pid, _) in &found {
            let g = pgid_of(*pid).map_or(-(*pid as i32), |g| g as i32);
            signal_group(g, Signal::SIGKILL);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && !in_dir(dir).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found
            .into_iter()
            .map(|(pid, cmd)| format!("{cmd} (pid {pid})"))
            .collect()
    }

    /// (name, pgid) of the running children of `tier`.
    fn groups_of(&self, tier: Tier) -> Vec<(String, i32)> {
        let mut inner = self.lock();
        inner
            .entries
            .iter_mut()
            .filter(|e| e.spec.tier == tier)
            .filter_map(|e| {
                reap(e);
                e.child
                    .is_some()
                    .then(|| (e.spec.name.clone(), e.pid as i32))
            })
            .collect()
    }

    fn groups_of_all(&self) -> Vec<(String, i32)> {
        let mut v = Vec::new();
        for t in [Tier::Patroni, Tier::Services, Tier::Epmd] {
            v.extend(self.groups_of(t));
        }
        v
    }

    fn postmaster_groups(&self) -> Vec<(String, i32)> {
        self.lock()
            .data_dirs
            .iter()
            .filter_map(|d| {
                let pid = postmaster(d)?;
                // the postmaster leads its own session (Patroni starts it so); if it did
                // not, signal it alone: its group would be Patroni's
                let g = pgid_of(pid).filter(|g| *g == pid).map(|g| g as i32);
                Some((
                    format!("PostgreSQL {}", d.display()),
                    g.unwrap_or(-(pid as i32)),
                ))
            })
            .collect()
    }

    /// Waits (reaping our children) until no live process is left in `groups`; SIGKILLs the
    /// groups still alive at the deadline and waits a little more.
    async fn wait_gone(&self, groups: &[(String, i32)], grace: Duration) -> Vec<String> {
        let deadline = Instant::now() + grace;
        let mut killed = Vec::new();
        loop {
            self.reap_all();
            let alive: Vec<&(String, i32)> =
                groups.iter().filter(|(_, g)| group_alive(*g)).collect();
            if alive.is_empty() {
                return killed;
            }
            if Instant::now() >= deadline {
                if !killed.is_empty() {
                    // SIGKILLed already and still there: nothing more to do from here
                    return killed;
                }
                for (name, g) in &alive {
                    signal_group(*g, Signal::SIGKILL);
                    killed.push(name.clone());
                }
                return {
                    let until = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < until && groups.iter().any(|(_, g)| group_alive(*g)) {
                        self.reap_all();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    killed
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn reap_all(&self) {
        for e in self.lock().entries.iter_mut() {
            reap(e);
        }
    }
}

/// SIGKILL for everything still known when the registry goes without a teardown.
impl Drop for Inner {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        for e in self.entries.iter_mut() {
            if e.child.is_some() {
                signal_group(e.pid as i32, Signal::SIGKILL);
                if let Some(mut c) = e.child.take() {
                    let _ = c.wait();
                }
            }
        }
        for d in &self.data_dirs {
            if let Some(pid) = postmaster(d) {
                let g = pgid_of(pid).filter(|g| *g == pid).map(|g| g as i32);
                signal_group(g.unwrap_or(-(pid as i32)), Signal::SIGKILL);
            }
        }
    }
}

/// Reaps `e`'s child if it ended: how it ended, the first time it is seen.
fn reap(e: &mut Entry) -> Option<String> {
    let child = e.child.as_mut()?;
    match child.try_wait() {
        Ok(Some(status)) => {
            e.child = None;
            e.exited_at = Some(Instant::now());
            Some(status.to_string())
        }
        Ok(None) => None,
        Err(err) => {
            e.child = None;
            e.exited_at = Some(Instant::now());
            Some(format!("cannot be waited for: {err}"))
        }
    }
}

fn start(spec: &Spec) -> std::io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", spec.log.display())))?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("LANG", "C.UTF-8")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // its own process group: the terminal's Ctrl-C reaches only us, and we stop the
        // services in order; the group reaches every process the service starts
        .process_group(0);
    if let Some((uid, gid)) = spec.user {
        // std drops the supplementary groups (setgroups) before setuid when run as root
        cmd.uid(uid).gid(gid);
    }
    cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot start {} ({}): {e}",
                spec.name,
                spec.program.display()
            ),
        )
    })
}

/// The running postmaster of `data_dir`: the pid in `postmaster.pid`, if that process's
/// command line names the directory (a stale file or a reused pid is not ours).
fn postmaster(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = data_dir.as_os_str().as_encoded_bytes();
    cmdline
        .windows(needle.len().max(1))
        .any(|w| w == needle)
        .then_some(pid)
}

/// The process group of `pid`, from `/proc/PID/stat`.
pub fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // after the command name in parentheses: state, ppid, pgrp
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(2)?.parse().ok()
}

/// Whether a live (not zombie) process is in group `g` (a negative `g` means the single
/// process `-g`). Zombies are skipped: a busy init reaps orphans late, and a zombie holds
/// no port and no file.
pub fn group_alive(g: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let mut f = stat[close + 2..].split(' ');
            let state = f.next().unwrap_or("Z");
            let pgrp: i64 = f.nth(1).and_then(|s| s.parse().ok()).unwrap_or(-1);
            state != "Z"
                && if g > 0 {
                    pgrp == i64::from(g)
                } else {
                    i64::from(pid) == -i64::from(g)
                }
        })
}

/// Live processes whose working directory is under `dir` or whose command line names it.
fn in_dir(dir: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let needle = dir.to_string_lossy().to_string();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            // a zombie has an empty command line and holds nothing
            if cmd.is_empty() {
                return None;
            }
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            (cmd.contains(&needle) || cwd.is_some_and(|c| c.starts_with(dir)))
                .then(|| (pid, cmd.trim().to_string()))
        })
        .collect()
}

fn signal_group(g: i32, sig: Signal) {
    let _ = if g > 0 {
        killpg(Pid::from_raw(g), sig)
    } else {
        nix::sys::signal::kill(Pid::from_raw(-g), sig)
    };
}

fn signal_all(groups: &[(String, i32)], sig: Signal) {
    for (_, g) in groups {
        signal_group(*g, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path, name: &str) -> Spec {
        Spec {
            name: name.into(),
            program: "/bin/sh".into(),
            // a child in the same group, as beam.smp is under rabbitmq-server's shell
            args: vec!["-c".into(), "sleep 600 & wait".into()],
            env: vec![],
            cwd: dir.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            user: None,
            tier: Tier::Services,
        }
    }

    #[tokio::test]
    async fn teardown_stops_the_whole_group() {
        let d = tempfile::tempdir().unwrap();
        let p = Procs::default();
        let pid = p.spawn(sleeper(d.path(), "a")).unwrap();
        assert_eq!(pgid_of(pid), Some(pid), "its own process group");
        assert!(group_alive(pid as i32));
        let killed = p.teardown(Duration::from_secs(10)).await;
        assert!(killed.is_empty(), "SIGTERM was enough: {killed:?}");
        assert!(!group_alive(pid as i32), "the group's `sleep` outlived it");
    }

    #[tokio::test]
    async fn a_stopped_service_is_restarted_after_the_delay_and_not_while_stopping() {
        let d = tempfile::tempdir().unwrap();
        let p = Procs::default();
        let pid = p.spawn(sleeper(d.path(), "a")).unwrap();
        signal_group(pid as i32, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while !seen.iter().any(|e| matches!(e, Event::Restarted { .. })) {
            assert!(Instant::now() < deadline, "not restarted: {seen:?}");
            seen.extend(p.supervise_once(Duration::from_millis(100)));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(&seen[0], Event::Exited { name, .. } if name == "a"));
        let new = p.pid("a").unwrap();
        assert_ne!(new, pid);
        p.teardown(Duration::from_secs(10)).await;
        assert!(p.supervise_once(Duration::ZERO).is_empty());
        assert!(!group_alive(new as i32));
        assert_eq!(p.pid("a"), None);
    }

    #[test]
    fn dropping_without_teardown_kills_everything() {
        let d = tempfile::tempdir().unwrap();
        let p = Procs::default();
        let pid = p.spawn(sleeper(d.path(), "a")).unwrap();
        drop(p);
        // SIGKILL is delivered asynchronously: poll, with a deadline
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_alive(pid as i32) {
            assert!(Instant::now() < deadline, "group {pid} outlived the drop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
