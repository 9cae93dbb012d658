//! Two real keepalived 2.2.7 nodes on network-namespace hosts (`tests/lab/keepalived-*.sh`,
//! lab.md §H): one VRRP instance `VI_1` with the VIP [`VIP`] on the VRRP network
//! (10.205.0.0/24), node 1 at priority 150 (MASTER when up), node 2 at 100; a management
//! network (10.205.1.0/24) apart, so a node's VRRP port can be blocked while its agent keeps
//! reporting to the collector at [`COLLECTOR_IP`] in the switch namespace.
//!
//! [`KeepalivedPair::start_tracked`] adds what keepalived's `track_script` needs to use an
//! agent's check endpoint: on each host a tiny real HTTP server (the service the VIP fronts,
//! 127.0.0.1:[`SERVICE_PORT`] in the host's namespace) and a `vrrp_script` asking
//! `http://127.0.0.1:`[`CHECK_PORT`]`/check/<name>` with curl every second; a failing check
//! puts that node in FAULT and the VIP moves.

use super::{script_index, Attempt, Lab, Spec, VersionSet};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// The collector's address on the management bridge (inside [`KeepalivedPair::sw`]).
pub const COLLECTOR_IP: &str = "10.205.1.254";
/// The VRRP instance's virtual address.
pub const VIP: &str = "10.205.0.100";
/// How many nodes the pair has.
pub const NODES: usize = 2;
/// Where each host's agent serves its check endpoint (loopback in the host's namespace).
pub const CHECK_PORT: u16 = 9200;
/// The tracked service's port on each host (loopback in the host's namespace).
pub const SERVICE_PORT: u16 = 8080;

/// A running pair. Torn down (processes, data files, namespaces, directory) on drop.
pub struct KeepalivedPair {
    lab: Lab,
    prefix: String,
}

impl KeepalivedPair {
    /// Creates the namespaces, starts both keepalived and waits until node 1 holds the VIP.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// [`KeepalivedPair::start`] with VI_1 tracking `/check/<check>` on each host's agent
    /// (and each host's service started). Every node starts in FAULT, until its agent
    /// answers: this waits only until both keepalived run.
    pub fn start_tracked(check: &str) -> Result<Self> {
        Self::start_with(Some(check))
    }

    fn start_with(check: Option<&str>) -> Result<Self> {
        let spec = Spec {
            name: "keepalived",
            scripts: "keepalived",
            ports: 0,
            start_timeout: Duration::from_secs(60),
            slack: Duration::from_secs(15),
            // Debian 12's packages only: the second version set covers db and broker.
            set: VersionSet::Debian12,
        };
        let (lab, prefix, detail) = Lab::start(spec, |dir, _| {
            let prefix = super::ns_prefix("srk", dir);
            let mut env = vec![("NODES", NODES.to_string()), ("NS_PREFIX", prefix.clone())];
            if let Some(name) = check {
                env.push(("CHECK_PORT", CHECK_PORT.to_string()));
                env.push(("CHECK_NAME", name.to_string()));
                env.push(("SERVICE_PORT", SERVICE_PORT.to_string()));
            }
            Attempt {
                env,
                logs: (1..=NODES)
                    .map(|i| (dir.join(format!("k{i}/keepalived.log")), 15))
                    .collect(),
                kind: prefix,
            }
        })?;
        lab.ready(&detail);
        Ok(KeepalivedPair { lab, prefix })
    }

    /// The switch namespace, where the collector runs.
    pub fn sw(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Host `i`'s namespace (0-based), where its keepalived and agent run.
    pub fn host(&self, i: usize) -> String {
        format!("{}-h{}", self.prefix, i + 1)
    }

    /// Node `i`'s keepalived pid file.
    pub fn pid_file(&self, i: usize) -> PathBuf {
        self.lab.dir().join(format!("k{}/keepalived.pid", i + 1))
    }

    /// Node `i`'s SIGUSR1 data file (`data_use_instance` names it after the namespace).
    pub fn data_file(&self, i: usize) -> PathBuf {
        PathBuf::from(format!("/tmp/keepalived.{}.data", self.host(i)))
    }

    fn ctl(&self, action: &str, i: usize, extra: &[&str]) -> Result<String> {
        let n = script_index(i, NODES)?;
        let mut args = vec![action, n.as_str()];
        args.extend_from_slice(extra);
        self.lab
            .ctl_ok(&args, Duration::from_secs(30))
            .map_err(|e| self.lab.with_logs(e))
    }

    /// Signals node `i`'s keepalived (and its VRRP child) with `signal` (`TERM`, `KILL`)
    /// and waits until they are gone.
    pub fn stop(&self, i: usize, signal: &str) -> Result<()> {
        self.ctl("stop", i, &[signal]).map(drop)
    }

    /// Starts node `i`'s keepalived again.
    pub fn restart(&self, i: usize) -> Result<()> {
        self.ctl("start", i, &[]).map(drop)
    }

    /// Drops node `i`'s VRRP traffic at the bridge (port state 0, carrier kept: both nodes
    /// become MASTER) when `blocked`, forwards it again otherwise.
    pub fn set_blocked(&self, i: usize, blocked: bool) -> Result<()> {
        self.ctl(if blocked { "isolate" } else { "join" }, i, &[])
            .map(drop)
    }

    /// Stops (`false`, SIGTERM) or starts again node `i`'s tracked service.
    pub fn set_service(&self, i: usize, up: bool) -> Result<()> {
        self.ctl(if up { "service-start" } else { "service-stop" }, i, &[])
            .map(drop)
    }

    /// Whether node `i`'s interfaces carry the VIP (`ip -j addr show` in its namespace).
    pub fn holds_vip(&self, i: usize) -> Result<bool> {
        Ok(self.ctl("addrs", i, &[])?.contains(&format!("\"{VIP}\"")))
    }
}
