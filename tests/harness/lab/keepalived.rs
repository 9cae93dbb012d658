//! Two real keepalived 2.2.7 nodes on network-namespace hosts (`tests/lab/keepalived-*.sh`,
//! lab.md §H): one VRRP instance `VI_1` with the VIP [`VIP`] on the VRRP network
//! (10.205.0.0/24), node 1 at priority 150 (MASTER when up), node 2 at 100; a management
//! network (10.205.1.0/24) apart, so a node's VRRP port can be blocked while its agent keeps
//! reporting to the collector at [`COLLECTOR_IP`] in the switch namespace.

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

/// A running pair. Torn down (processes, data files, namespaces, directory) on drop.
pub struct KeepalivedPair {
    lab: Lab,
    prefix: String,
}

impl KeepalivedPair {
    /// Creates the namespaces, starts both keepalived and waits until node 1 holds the VIP.
    pub fn start() -> Result<Self> {
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
            // Unique per process and attempt; short, since it names namespaces (and the
            // data files keepalived writes to /tmp).
            let prefix = format!(
                "srk{}{}",
                std::process::id(),
                dir.to_string_lossy().rsplit('-').nth(1).unwrap_or("0")
            );
            Attempt {
                env: vec![("NODES", NODES.to_string()), ("NS_PREFIX", prefix.clone())],
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

    /// Whether node `i`'s interfaces carry the VIP (`ip -j addr show` in its namespace).
    pub fn holds_vip(&self, i: usize) -> Result<bool> {
        Ok(self.ctl("addrs", i, &[])?.contains(&format!("\"{VIP}\"")))
    }
}
