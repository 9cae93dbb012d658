//! A real HAProxy 2.6 on 127.0.0.1 (`tests/lab/haproxy-*.sh`): backend `app` of three tiny
//! real HTTP servers (`python3 -m http.server`) checked every 500 ms, an admin stats socket
//! in the lab directory, and optionally a backend `checked` whose one server is checked by
//! `option httpchk GET /check/<name>` against an agent's check endpoint.

use super::{script_index, Attempt, Lab, Spec, VersionSet};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// Servers in backend `app` (`s1`..`s3`).
pub const SERVERS: usize = 3;

/// A running HAProxy with its servers. Torn down (processes, directory) on drop.
pub struct HaproxyLab {
    lab: Lab,
    check_port: u16,
}

impl HaproxyLab {
    /// Starts the servers and HAProxy and waits until every `app` server is UP. `check`
    /// names the probe whose `/check/<name>` the `checked` backend asks on
    /// [`HaproxyLab::check_port`] (where the test's agent is to listen).
    pub fn start(check: &str) -> Result<Self> {
        let spec = Spec {
            name: "haproxy",
            scripts: "haproxy",
            ports: SERVERS + 2,
            start_timeout: Duration::from_secs(30),
            slack: Duration::from_secs(15),
            // Debian 12's packages only: the second version set covers db and broker.
            set: VersionSet::Debian12,
        };
        let check = check.to_string();
        let (lab, check_port, detail) = Lab::start(spec, |dir, ports| Attempt {
            env: vec![
                ("SERVERS", SERVERS.to_string()),
                (
                    "PORTS",
                    ports[..=SERVERS]
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                ("CHECK_PORT", ports[SERVERS + 1].to_string()),
                ("CHECK_NAME", check.clone()),
            ],
            logs: vec![(dir.join("haproxy.log"), 15)],
            kind: ports[SERVERS + 1],
        })?;
        lab.ready(&detail);
        Ok(HaproxyLab { lab, check_port })
    }

    /// The admin stats socket.
    pub fn socket(&self) -> PathBuf {
        self.lab.dir().join("haproxy.sock")
    }

    /// The port the `checked` backend's health check asks (`127.0.0.1`).
    pub fn check_port(&self) -> u16 {
        self.check_port
    }

    fn ctl(&self, args: &[&str]) -> Result<String> {
        self.lab
            .ctl_ok(args, Duration::from_secs(15))
            .map_err(|e| self.lab.with_logs(e))
    }

    /// SIGKILL server `i` (0-based) of `app`.
    pub fn kill(&self, i: usize) -> Result<()> {
        self.ctl(&["kill", &script_index(i, SERVERS)?]).map(drop)
    }

    /// Starts server `i`'s HTTP server again after [`HaproxyLab::kill`].
    pub fn start_server(&self, i: usize) -> Result<()> {
        self.ctl(&["start", &script_index(i, SERVERS)?]).map(drop)
    }

    /// `set server app/s<i+1> state <state>` (`ready`, `maint`, `drain`).
    pub fn set_state(&self, i: usize, state: &str) -> Result<()> {
        self.ctl(&["state", &script_index(i, SERVERS)?, state])
            .map(drop)
    }

    /// Any stats socket command's answer (`show stat`).
    pub fn cmd(&self, command: &str) -> Result<String> {
        let mut args = vec!["cmd"];
        args.extend(command.split(' '));
        self.ctl(&args)
    }

    /// HAProxy's own `status` of `backend/server`, from `show stat`.
    pub fn server_status(&self, backend: &str, server: &str) -> Result<String> {
        status_in_stat(&self.cmd("show stat")?, backend, server)
    }
}

/// The `status` column of `backend/server` in a `show stat` answer.
pub fn status_in_stat(stat: &str, backend: &str, server: &str) -> Result<String> {
    let header = stat.lines().next().unwrap_or("");
    let col = header
        .trim_start_matches("# ")
        .split(',')
        .position(|c| c == "status")
        .ok_or_else(|| anyhow::anyhow!("no status column in {header:?}"))?;
    let prefix = format!("{backend},{server},");
    stat.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.split(',').nth(col))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{backend}/{server} not in show stat"))
}

/// One command on an HAProxy stats socket (any namespace: unix sockets cross them), its
/// whole answer; bounded by a 5 s timeout and 1 MiB.
pub fn stats_command(socket: &std::path::Path, command: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| anyhow::anyhow!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    let mut out = String::new();
    s.take(1 << 20).read_to_string(&mut out)?;
    Ok(out)
}
