//! A real MariaDB 10.11 Galera cluster on network-namespace hosts (`tests/lab/galera-*.sh`):
//! one host per node with the Galera network (10.204.0.0/24) and a management network
//! (10.204.1.0/24) apart, so cutting a node's Galera link partitions it while its agent
//! keeps reporting to the collector at [`COLLECTOR_IP`] in the switch namespace.
//!
//! With `lb`, a real HAProxy in the switch namespace fronts the three MariaDB servers
//! (`listen galera`, servers `g1`..`g3`), each checked by `option httpchk GET
//! /check/galera?strict` on the node's management address, port [`CHECK_PORT`]: where the
//! node's agent serves its check endpoint (OpenStack's clustercheck pattern).

use super::{script_index, Attempt, Lab, Spec, VersionSet};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// The collector's address on the management bridge (inside [`GaleraCluster::sw`]).
pub const COLLECTOR_IP: &str = "10.204.1.254";

/// The port HAProxy's health checks ask on each node's management address (clustercheck's).
pub const CHECK_PORT: u16 = 9200;

/// A running cluster. Torn down (processes, namespaces, directory) on drop.
pub struct GaleraCluster {
    lab: Lab,
    prefix: String,
    nodes: usize,
}

impl GaleraCluster {
    /// Creates the namespaces, installs and starts `nodes` MariaDB servers and waits until
    /// all are Synced in one Primary component of `nodes`; with `lb`, HAProxy in front.
    pub fn start(nodes: usize, lb: bool) -> Result<Self> {
        let spec = Spec {
            name: "galera",
            scripts: "galera",
            ports: 0,
            start_timeout: Duration::from_secs(150),
            slack: Duration::from_secs(30),
            // Debian 12's packages only: the second version set covers db and broker.
            set: VersionSet::Debian12,
        };
        let (lab, prefix, detail) = Lab::start(spec, |dir, _| {
            let prefix = super::ns_prefix("srg", dir);
            let mut env = vec![("NODES", nodes.to_string()), ("NS_PREFIX", prefix.clone())];
            let mut logs: Vec<_> = (1..=nodes)
                .map(|i| (dir.join(format!("g{i}/error.log")), 15))
                .collect();
            if lb {
                env.push(("LB_CHECK_PORT", CHECK_PORT.to_string()));
                logs.push((dir.join("haproxy.log"), 15));
            }
            Attempt {
                env,
                logs,
                kind: prefix,
            }
        })?;
        lab.ready(&detail);
        Ok(GaleraCluster { lab, prefix, nodes })
    }

    /// The switch namespace, where the collector runs.
    pub fn sw(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// Host `i`'s namespace (0-based), where its agent runs.
    pub fn host(&self, i: usize) -> String {
        format!("{}-h{}", self.prefix, i + 1)
    }

    /// Node `i`'s management address (where its agent's check endpoint listens).
    pub fn mgmt_ip(&self, i: usize) -> String {
        format!("10.204.1.{}", i + 1)
    }

    /// HAProxy's admin stats socket (with `lb`).
    pub fn lb_socket(&self) -> PathBuf {
        self.lab.dir().join("haproxy.sock")
    }

    /// HAProxy's own `status` of server `g<i+1>` in `galera` (UP, DOWN, ...).
    pub fn lb_server_status(&self, i: usize) -> Result<String> {
        let stat = super::haproxy::stats_command(&self.lb_socket(), "show stat")?;
        super::haproxy::status_in_stat(&stat, "galera", &format!("g{}", i + 1))
    }

    /// Node `i`'s unix socket (sockets work across network namespaces).
    pub fn socket(&self, i: usize) -> PathBuf {
        self.lab.dir().join(format!("g{}/mysqld.sock", i + 1))
    }

    fn ctl(&self, action: &str, i: usize, extra: &[&str]) -> Result<String> {
        let n = script_index(i, self.nodes)?;
        let mut args = vec![action, n.as_str()];
        args.extend_from_slice(extra);
        self.lab
            .ctl_ok(&args, Duration::from_secs(30))
            .map_err(|e| self.lab.with_logs(e))
    }

    /// SIGKILL node `i`'s mariadbd.
    pub fn kill(&self, i: usize) -> Result<()> {
        self.ctl("kill", i, &[]).map(drop)
    }

    /// Takes node `i`'s Galera link down (`false`) or up.
    pub fn set_link(&self, i: usize, up: bool) -> Result<()> {
        self.ctl(if up { "heal" } else { "cut" }, i, &[]).map(drop)
    }

    /// `SET GLOBAL wsrep_desync` on node `i`.
    pub fn desync(&self, i: usize, on: bool) -> Result<()> {
        self.ctl("desync", i, &[if on { "on" } else { "off" }])
            .map(drop)
    }

    /// Node `i`'s wsrep status, tab-separated (the fixtures' form).
    pub fn status(&self, i: usize) -> Result<String> {
        self.ctl("status", i, &[])
    }
}
