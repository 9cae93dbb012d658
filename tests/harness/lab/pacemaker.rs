//! Two real Pacemaker 2.1.5 + Corosync 3 nodes on network-namespace hosts
//! (`tests/lab/pacemaker-*.sh`, lab.md §H), without systemd: each node in its own network,
//! mount and UTS namespace, Corosync knet on the ring network (10.207.0.0/24) with
//! `two_node: 1`, and the CIB written before start (`stonith-enabled=false`,
//! `dc-deadtime=2s`) with two `ocf:pacemaker:Dummy` resources: the primitive [`PRIMITIVE`] and
//! the clone [`CLONE`] (of [`CLONED`]). A management network (10.207.1.0/24) carries the
//! agents' reports to the collector at [`COLLECTOR_IP`] in the switch namespace.
//!
//! Clients reach a node's Pacemaker by entering its namespaces: [`PacemakerPair::crm_mon`] is
//! the command an agent's `pacemaker` probe runs (`nsenter -t <pacemakerd> -n -m -u crm_mon`).

use super::{script_index, Attempt, Lab, Spec, VersionSet};
use anyhow::{Context, Result};
use std::time::Duration;

/// The collector's address on the management bridge (inside [`PacemakerPair::sw`]).
pub const COLLECTOR_IP: &str = "10.207.1.254";
/// How many nodes the pair has.
pub const NODES: usize = 2;
/// The primitive resource.
pub const PRIMITIVE: &str = "dummy";
/// The clone and the primitive it copies to every node.
pub const CLONE: &str = "dummy-clone";
pub const CLONED: &str = "dummy-c";

/// A running pair. Torn down (every process of both nodes, namespaces, directory) on drop.
pub struct PacemakerPair {
    lab: Lab,
    prefix: String,
}

impl PacemakerPair {
    /// Creates the namespaces, starts Corosync and Pacemaker on both nodes and waits until
    /// both are online, a DC is elected and the three resource copies run.
    pub fn start() -> Result<Self> {
        let spec = Spec {
            name: "pacemaker",
            scripts: "pacemaker",
            ports: 0,
            start_timeout: Duration::from_secs(90),
            slack: Duration::from_secs(15),
            // Debian 12's packages only (Pacemaker 2.1.5).
            set: VersionSet::Debian12,
        };
        let (lab, prefix, detail) = Lab::start(spec, |dir, _| {
            let prefix = super::ns_prefix("srm", dir);
            Attempt {
                env: vec![("NS_PREFIX", prefix.clone())],
                logs: (1..=NODES)
                    .flat_map(|i| {
                        [
                            (dir.join(format!("n{i}/start.log")), 10),
                            (dir.join(format!("n{i}/corosync.log")), 15),
                            (dir.join(format!("n{i}/log-pacemaker/pacemaker.log")), 25),
                        ]
                    })
                    .collect(),
                kind: prefix,
            }
        })?;
        lab.ready(&detail);
        Ok(PacemakerPair { lab, prefix })
    }

    /// The switch namespace, where the collector runs.
    pub fn sw(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Host `i`'s namespace (0-based), where its agent runs.
    pub fn host(&self, i: usize) -> String {
        format!("{}-h{}", self.prefix, i + 1)
    }

    /// Node `i`'s Pacemaker name (`pc1`, `pc2`).
    pub fn node_name(&self, i: usize) -> String {
        format!("pc{}", i + 1)
    }

    fn ctl(&self, action: &str, i: usize, extra: &[&str]) -> Result<String> {
        let n = script_index(i, NODES)?;
        let mut args = vec![action, n.as_str()];
        args.extend_from_slice(extra);
        self.lab
            .ctl_ok(&args, Duration::from_secs(30))
            .map_err(|e| self.lab.with_logs(e))
    }

    /// The command an agent's `pacemaker` probe runs to reach node `i`'s Pacemaker.
    pub fn crm_mon(&self, i: usize) -> Result<Vec<String>> {
        let pid = self.ctl("pid", i, &[])?;
        let pid = pid.trim();
        pid.parse::<u32>()
            .with_context(|| format!("pacemakerd pid {pid:?}"))?;
        Ok(["nsenter", "-t", pid, "-n", "-m", "-u", "crm_mon"]
            .map(str::to_string)
            .to_vec())
    }

    /// Node `i`'s `crm_mon --output-as=xml`.
    pub fn xml(&self, i: usize) -> Result<String> {
        self.ctl("xml", i, &[])
    }

    /// `crm_resource --fail` on `resource`'s monitor on node `i`.
    pub fn fail(&self, i: usize, resource: &str) -> Result<()> {
        self.ctl("fail", i, &[resource]).map(drop)
    }

    /// `crm_resource --cleanup`: failures forgotten.
    pub fn cleanup(&self, i: usize) -> Result<()> {
        self.ctl("cleanup", i, &[]).map(drop)
    }

    /// Node `i` in standby (`on`) or out of it.
    pub fn standby(&self, i: usize, on: bool) -> Result<()> {
        self.ctl("standby", i, &[if on { "on" } else { "off" }])
            .map(drop)
    }

    /// The cluster's `maintenance-mode`, set through node `i`.
    pub fn maintenance_mode(&self, i: usize, on: bool) -> Result<()> {
        self.ctl("maintenance", i, &[if on { "on" } else { "off" }])
            .map(drop)
    }

    /// SIGKILLs every process of node `i` (Corosync, pacemakerd and its daemons).
    pub fn kill(&self, i: usize) -> Result<()> {
        self.ctl("kill", i, &[]).map(drop)
    }
}
