//! A RabbitMQ cluster in the lab: N nodes with the management plugin on 127.0.0.1,
//! a private epmd and node names unique to its directory (`tests/lab/rabbit-*.sh`), on either
//! version set ([`VersionSet`]: 3.10.8 with Mnesia on the host, or 4.0.5 in the Debian 13
//! rootfs with the Khepri metadata store enabled before the cluster counts as started).

use super::{
    port_list, script_index, Attempt, Lab, Spec, VersionSet, MONITOR_PASSWORD, MONITOR_USER,
};
use crate::harness::poll::wait_until;
use crate::harness::rest::{self, Response};
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Duration;

/// Options for [`RabbitCluster::start`].
#[derive(Debug, Clone)]
pub struct RabbitOpts {
    /// Number of nodes (default 3).
    pub nodes: usize,
    /// Deadline for all nodes booted and clustered (default 180 s); on set B also for
    /// `khepri_db` enabled on every node.
    pub start_timeout: Duration,
    /// Which RabbitMQ runs (default set A, the host's 3.10.8).
    pub set: VersionSet,
}

impl Default for RabbitOpts {
    fn default() -> Self {
        RabbitOpts {
            nodes: 3,
            start_timeout: Duration::from_secs(180),
            set: VersionSet::Debian12,
        }
    }
}

/// A running RabbitMQ 3.10 cluster with the management plugin on 127.0.0.1, with a private
/// epmd and node names unique to its directory. Torn down (and its directory removed) on drop.
pub struct RabbitCluster {
    lab: Lab,
    opts: RabbitOpts,
    names: Vec<String>,
    amqp_ports: Vec<u16>,
    mgmt_ports: Vec<u16>,
    dist_ports: Vec<u16>,
    epmd_port: u16,
    started_in: Duration,
}

impl RabbitCluster {
    /// Picks free loopback ports, creates `/tmp/sr-lab-rabbit-*` (0755), runs
    /// `tests/lab/rabbit-up.sh` and waits until every node's `/api/nodes` shows all nodes
    /// running and the `monitor` user works.
    pub fn start(opts: RabbitOpts) -> Result<Self> {
        if opts.nodes == 0 {
            bail!("nodes must be >= 1");
        }
        let n = opts.nodes;
        let spec = Spec {
            name: "rabbitmq",
            scripts: "rabbit",
            ports: 3 * n + 1,
            start_timeout: opts.start_timeout,
            // set B: in-rootfs.sh enables khepri_db after READY (16-29 s measured), under
            // the same WAIT_TIMEOUT
            slack: Duration::from_secs(if opts.set.khepri() { 90 } else { 30 }),
            set: opts.set,
        };
        let (lab, (names, ports), detail) = Lab::start(spec, |dir, ports| {
            // Erlang node names unique per directory, passed explicitly so Rust knows them.
            let tag = dir
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or("x")
                .rsplit('-')
                .take(3)
                .collect::<Vec<_>>()
                .join("_");
            let prefix = format!("srlab_{tag}_r");
            let names: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}@localhost")).collect();
            Attempt {
                env: vec![
                    ("KHEPRI", (opts.set.khepri() as u8).to_string()),
                    ("NODES", n.to_string()),
                    ("AMQP_PORTS", port_list(&ports[..n])),
                    ("MGMT_PORTS", port_list(&ports[n..2 * n])),
                    ("DIST_PORTS", port_list(&ports[2 * n..3 * n])),
                    ("EPMD_PORT", ports[3 * n].to_string()),
                    ("NODE_PREFIX", prefix),
                ],
                logs: names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (dir.join(format!("rabbit{}/log/{name}.log", i + 1)), 10))
                    .collect(),
                kind: (names, ports.to_vec()),
            }
        })?;
        let mut c = RabbitCluster {
            lab,
            opts,
            names,
            amqp_ports: ports[..n].to_vec(),
            mgmt_ports: ports[n..2 * n].to_vec(),
            dist_ports: ports[2 * n..3 * n].to_vec(),
            epmd_port: ports[3 * n],
            started_in: Duration::ZERO,
        };
        // confirm from here (cheap: the script only returned once this was true)
        for i in 0..n {
            c.wait_running(i, n, Duration::from_secs(30))
                .map_err(|e| c.lab.with_logs(e))?;
        }
        c.started_in = c.lab.ready(&detail);
        Ok(c)
    }

    fn ctl_script_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        self.lab.ctl_ok(args, timeout)
    }

    fn check_index(&self, i: usize) -> Result<String> {
        script_index(i, self.opts.nodes)
    }

    // ---- accessors ----

    /// The cluster directory (`/tmp/sr-lab-rabbit-*`): `rabbitN/` (config, env.sh, ctl.sh,
    /// mnesia, log), `home/.erlang.cookie`, `cluster.env`.
    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
    /// The version set it runs.
    pub fn set(&self) -> VersionSet {
        self.opts.set
    }
    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.opts.nodes
    }
    /// Erlang node name of node `i`, e.g. `srlab_<tag>_r1@localhost` (unique per directory).
    pub fn node_name(&self, i: usize) -> &str {
        &self.names[i]
    }
    pub fn node_names(&self) -> &[String] {
        &self.names
    }
    pub fn amqp_port(&self, i: usize) -> u16 {
        self.amqp_ports[i]
    }
    /// `amqp://monitor:monitor@127.0.0.1:P/%2f` (the monitor user can only read on `/`).
    pub fn amqp_url(&self, i: usize) -> String {
        format!(
            "amqp://{MONITOR_USER}:{MONITOR_PASSWORD}@127.0.0.1:{}/%2f",
            self.amqp_ports[i]
        )
    }
    pub fn mgmt_port(&self, i: usize) -> u16 {
        self.mgmt_ports[i]
    }
    /// Management API base URL of node `i`, e.g. `http://127.0.0.1:42011` (no trailing slash).
    pub fn mgmt_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.mgmt_ports[i])
    }
    pub fn dist_port(&self, i: usize) -> u16 {
        self.dist_ports[i]
    }
    /// The cluster's private epmd port.
    pub fn epmd_port(&self) -> u16 {
        self.epmd_port
    }

    // ---- queries ----

    /// `GET path` on node `i`'s management API as the `monitor` user.
    pub fn mgmt_get(&self, i: usize, path: &str) -> Result<Response> {
        self.mgmt_get_as(i, path, MONITOR_USER, MONITOR_PASSWORD)
    }

    /// `GET path` on node `i`'s management API with the given credentials (`guest`/`guest`
    /// is the administrator, loopback only).
    pub fn mgmt_get_as(
        &self,
        i: usize,
        path: &str,
        user: &str,
        password: &str,
    ) -> Result<Response> {
        self.check_index(i)?;
        rest::get(
            &format!("{}{path}", self.mgmt_url(i)),
            Some((user, password)),
        )
    }

    /// Declares a durable quorum queue `name` on vhost `/` through node `i`'s management API
    /// as the administrator (`guest`); its members are every node of the cluster.
    pub fn declare_quorum_queue(&self, i: usize, name: &str) -> Result<()> {
        self.check_index(i)?;
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "guest:guest")
        );
        let r = rest::request(
            rest::Tls::default(),
            "PUT",
            &format!("{}/api/queues/%2F/{name}", self.mgmt_url(i)),
            &[("Authorization", auth.as_str())],
            Some(r#"{"durable":true,"arguments":{"x-queue-type":"quorum"}}"#),
        )?;
        if !matches!(r.status, 201 | 204) {
            bail!("declaring quorum queue {name}: {} {}", r.status, r.body);
        }
        Ok(())
    }

    /// How many nodes node `i`'s `/api/nodes` reports `running:true` (`None`: no answer).
    pub fn running_seen_by(&self, i: usize) -> Option<usize> {
        let r = self
            .mgmt_get_as(i, "/api/nodes?columns=name,running", "guest", "guest")
            .ok()?;
        (r.status == 200).then(|| r.body.matches("\"running\":true").count())
    }

    /// Waits until node `i` reports at least `n` running nodes.
    pub fn wait_running(&self, i: usize, n: usize, timeout: Duration) -> Result<Duration> {
        wait_until(
            &format!("node {i} to see {n} running nodes"),
            timeout,
            Duration::from_millis(250),
            || Ok(self.running_seen_by(i).is_some_and(|r| r >= n)),
        )
    }

    /// `rabbitmqctl -n <node i> args...` (or `rabbitmq-diagnostics ...` when `args[0]` is
    /// `"rabbitmq-diagnostics"`); returns stdout. Each call boots an Erlang VM (~0.5–1 s).
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<String> {
        let n = self.check_index(i)?;
        let mut a = vec!["ctl", n.as_str()];
        a.extend_from_slice(args);
        self.ctl_script_ok(&a, Duration::from_secs(120))
    }

    // ---- control / fault injection ----

    /// Graceful stop of node `i` (SIGTERM to beam.smp); returns once the process is gone.
    pub fn stop_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["stop-node", &n], Duration::from_secs(120))
            .map(drop)
    }
    /// SIGKILL node `i`'s beam.smp; returns once the process is gone.
    pub fn kill_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["kill-node", &n], Duration::from_secs(60))
            .map(drop)
    }
    /// Start node `i` again and wait (90 s) until it answers and sees every live node running.
    pub fn start_node(&self, i: usize) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_script_ok(&["start-node", &n], Duration::from_secs(30))?;
        self.ctl_script_ok(&["wait-node", &n, "90"], Duration::from_secs(120))
            .map(drop)
    }
    /// `rabbitmqctl stop_app` on node `i` (VM stays up, the broker app stops).
    pub fn stop_app(&self, i: usize) -> Result<()> {
        self.ctl(i, &["stop_app"]).map(drop)
    }
    /// `rabbitmqctl start_app` on node `i`.
    pub fn start_app(&self, i: usize) -> Result<()> {
        self.ctl(i, &["start_app"]).map(drop)
    }
}

/// The RabbitMQ probe of one broker agent in the suites: the monitoring user, AMQP publish
/// every other cycle, and deadlines that fit a 1 s reporting period (the agent cuts a cycle
/// at 0.8 s).
pub fn broker_probe(
    management_url: String,
    amqp_port: u16,
    node_name: &str,
) -> sr_probes::rabbitmq::Config {
    sr_probes::rabbitmq::Config {
        management_url,
        tls: sr_probes::net::TlsFiles::default(),
        username: MONITOR_USER.into(),
        password: sr_probes::net::Secret::new(MONITOR_PASSWORD),
        node_name: Some(node_name.to_string()),
        amqp_host: "127.0.0.1".into(),
        amqp_port,
        vhost: "/".into(),
        amqp_every: 2,
        amqp_publish: true,
        amqp_timeout_ms: 700,
        cert_expiry_days: 30,
        fd_warn_ratio: 0.9,
        timeout_ms: 700,
        max_body_bytes: 1 << 20,
    }
}
