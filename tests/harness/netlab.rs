//! A RabbitMQ cluster on separate network hosts: one network namespace per node, so
//! a link can really be cut (lab.md §E). Used by `tests/broker_partition.rs`, on either
//! version set: the host's RabbitMQ 3.10.8 (set A), or 4.0.5 from the Debian 13 rootfs with
//! the Khepri metadata store enabled once the cluster formed (set B; each node and CLI call
//! runs through `tests/lab/versions/in-rootfs.sh --exec` inside its host's namespace).
//!
//! Topology, all inside namespaces this module creates (named `srp<pid>-...`, so
//! concurrent runs never share one) and nothing in the root namespace:
//! - `srp<pid>-sw`: the "switch". Bridge `brc` is the cluster network 10.203.0.0/24 (RabbitMQ
//!   distribution and epmd); bridge `brm` is the management network 10.203.1.0/24 and
//!   carries 10.203.1.254 itself, where the collector listens.
//! - `srp<pid>-h<i>`: host i, with `eth0` = 10.203.0.i on `brc` and `eth1` = 10.203.1.i on
//!   `brm` (each a veth whose other end, `c<i>`/`m<i>`, is a port of the bridge in `sw`).
//!
//! Cutting host i's cluster link (`c<i>` down) partitions RabbitMQ while its agent keeps
//! reporting over the management network, so the collector sees both sides.
//!
//! Node i runs as `srp<i>@10.203.0.<i>` (long names), on the default ports (each host
//! has its own port space), with `net_ticktime` lowered to 10 s so a partition is
//! detected within a test's budget, and the default `cluster_partition_handling = ignore`:
//! a healed partition stays visible in `/api/nodes` `partitions`.
//!
//! Teardown (also on panic, through `Drop`): SIGKILL to every process inside our host
//! namespaces (`ip netns pids`; each was started by this module), then `ip netns del`.
//! A run killed before `Drop` leaves namespaces named after its dead pid; the next run
//! removes those first. Only namespaces with that name pattern are ever touched.
#![allow(dead_code)]

use super::lab::VersionSet;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";
/// Test-only private networks; they exist only inside the namespaces made here.
pub const CLUSTER_NET: &str = "10.203.0";
pub const MGMT_NET: &str = "10.203.1";
/// The collector's address on the management bridge.
pub const COLLECTOR_IP: &str = "10.203.1.254";
const NS_PREFIX: &str = "srp";

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(super::ip_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {args:?}"))?;
    if !out.status.success() {
        bail!(
            "ip {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args` inside namespace `ns` with `env`, returning stdout.
fn ns_exec(
    ns: &str,
    program: &str,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<String> {
    let mut child = Command::new(super::ip_bin())
        .args(["netns", "exec", ns, program])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {program} in {ns}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} {args:?} in {ns} timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} in {ns} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// Our namespaces (by name pattern `srp<pid>-...`) whose creating test process is gone.
fn leftovers() -> Vec<String> {
    let list = run(&["netns", "list"]).unwrap_or_default();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            name.strip_prefix(NS_PREFIX)
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != std::process::id() && !pid_alive(pid))
        })
        .map(str::to_string)
        .collect()
}

/// SIGKILL every process in `ns`, wait until none is left, then delete it.
fn destroy(ns: &str) {
    let t0 = Instant::now();
    loop {
        let pids: Vec<i32> = run(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || t0.elapsed() > Duration::from_secs(20) {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = run(&["netns", "del", ns]) {
        eprintln!("netlab: {e:#}");
    }
}

/// Whether this machine can make network namespaces (root, iproute2, netns support).
pub fn available() -> std::result::Result<(), String> {
    let probe = format!("{NS_PREFIX}{}-probe", std::process::id());
    run(&["netns", "add", &probe]).map_err(|e| format!("{e:#}"))?;
    let r =
        run(&["-n", &probe, "link", "add", "brx", "type", "bridge"]).map_err(|e| format!("{e:#}"));
    destroy(&probe);
    r.map(drop)
}

/// Three (or `n`) RabbitMQ hosts in network namespaces. Torn down on drop.
pub struct NetLab {
    pub dir: PathBuf,
    set: VersionSet,
    n: usize,
    created: Vec<String>,
    names: Vec<String>,
    started_in: Duration,
}

impl NetLab {
    /// Creates the namespaces and links, then boots and clusters RabbitMQ on every host and
    /// creates the `monitor` user. Fails after `timeout`.
    pub fn start(
        dir: &Path,
        set: VersionSet,
        n: usize,
        monitor: (&str, &str),
        timeout: Duration,
    ) -> Result<NetLab> {
        for ns in leftovers() {
            eprintln!("netlab: removing {ns}, left by a test run that no longer exists");
            destroy(&ns);
        }
        let t0 = Instant::now();
        let mut lab = NetLab {
            dir: dir.to_path_buf(),
            set,
            n,
            created: Vec::new(),
            names: (1..=n)
                .map(|i| format!("srp{i}@{CLUSTER_NET}.{i}"))
                .collect(),
            started_in: Duration::ZERO,
        };
        lab.make_network().context("building the namespaces")?;
        lab.boot_rabbits(timeout).map_err(|e| lab.with_logs(e))?;
        if set.khepri() {
            lab.enable_khepri(timeout).map_err(|e| lab.with_logs(e))?;
        }
        lab.add_user(monitor.0, monitor.1)
            .map_err(|e| lab.with_logs(e))?;
        lab.started_in = t0.elapsed();
        Ok(lab)
    }

    fn prefix(&self) -> String {
        format!("{NS_PREFIX}{}", std::process::id())
    }
    /// The switch namespace (bridges, collector).
    pub fn sw(&self) -> String {
        format!("{}-sw", self.prefix())
    }
    /// Host namespace of node `i` (0-based).
    pub fn host(&self, i: usize) -> String {
        format!("{}-h{}", self.prefix(), i + 1)
    }
    pub fn node_name(&self, i: usize) -> &str {
        &self.names[i]
    }
    pub fn node_names(&self) -> &[String] {
        &self.names
    }
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
    /// The version set it runs.
    pub fn set(&self) -> VersionSet {
        self.set
    }

    /// `program args` as run on a host: the path itself (set A), or inside the rootfs
    /// through `in-rootfs.sh --exec` with the lab directory mounted (set B).
    fn program(&self, program: &str) -> Vec<String> {
        if !self.set.in_rootfs() {
            return vec![program.to_string()];
        }
        vec![
            "bash".into(),
            super::lab::lab_dir()
                .join("versions/in-rootfs.sh")
                .display()
                .to_string(),
            "--exec".into(),
            self.dir.display().to_string(),
            program.to_string(),
        ]
    }

    /// Enables `khepri_db` (RabbitMQ 4.0: opt-in) through node 1 and waits until every
    /// node's `/api/feature-flags` says enabled.
    fn enable_khepri(&self, timeout: Duration) -> Result<()> {
        let ctl = self.program(&format!("{RABBIT_BIN}/rabbitmqctl"));
        let mut args: Vec<&str> = ctl[1..].iter().map(String::as_str).collect();
        args.extend([
            "-n",
            &self.names[0],
            "enable_feature_flag",
            "--opt-in",
            "khepri_db",
        ]);
        ns_exec(&self.host(0), &ctl[0], &args, &self.env(0), timeout)?;
        let t0 = Instant::now();
        for i in 0..self.n {
            loop {
                let on = self.mgmt_get(i, "/api/feature-flags").is_ok_and(|b| {
                    b.split('{').any(|f| {
                        f.contains(r#""name":"khepri_db""#) && f.contains(r#""state":"enabled""#)
                    })
                });
                if on {
                    break;
                }
                if t0.elapsed() > timeout {
                    bail!("khepri_db not enabled on node {} within {timeout:?}", i + 1);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        Ok(())
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        run(&["netns", "add", ns])?;
        self.created.push(ns.to_string());
        run(&["-n", ns, "link", "set", "lo", "up"]).map(drop)
    }

    fn make_network(&mut self) -> Result<()> {
        let sw = self.sw();
        self.add_ns(&sw)?;
        for br in ["brc", "brm"] {
            run(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
        }
        run(&[
            "-n",
            &sw,
            "addr",
            "add",
            &format!("{COLLECTOR_IP}/24"),
            "dev",
            "brm",
        ])?;
        for br in ["brc", "brm"] {
            run(&["-n", &sw, "link", "set", br, "up"])?;
        }
        for i in 0..self.n {
            let h = self.host(i);
            self.add_ns(&h)?;
            for (port, dev, br, net) in [
                ("c", "eth0", "brc", CLUSTER_NET),
                ("m", "eth1", "brm", MGMT_NET),
            ] {
                let port = format!("{port}{}", i + 1);
                run(&[
                    "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", dev, "netns",
                    &h,
                ])?;
                run(&["-n", &sw, "link", "set", &port, "master", br, "up"])?;
                run(&[
                    "-n",
                    &h,
                    "addr",
                    "add",
                    &format!("{net}.{}/24", i + 1),
                    "dev",
                    dev,
                ])?;
                run(&["-n", &h, "link", "set", dev, "up"])?;
            }
        }
        Ok(())
    }

    /// Cuts (`up == false`) or restores host `i`'s cluster link, at the switch port.
    pub fn set_cluster_link(&self, i: usize, up: bool) -> Result<()> {
        run(&[
            "-n",
            &self.sw(),
            "link",
            "set",
            &format!("c{}", i + 1),
            if up { "up" } else { "down" },
        ])
        .map(drop)
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("rabbit{}", i + 1))
    }

    /// Environment shared by node `i`'s server and CLI.
    fn env(&self, i: usize) -> Vec<(String, String)> {
        let d = self.node_dir(i);
        let p = |f: &str| d.join(f).display().to_string();
        [
            ("HOME", self.dir.join("home").display().to_string()),
            ("RABBITMQ_NODENAME", self.names[i].clone()),
            ("RABBITMQ_USE_LONGNAME", "true".into()),
            // ignore /etc/rabbitmq/rabbitmq-env.conf
            ("RABBITMQ_CONF_ENV_FILE", p("rabbitmq-env.conf")),
            ("RABBITMQ_CONFIG_FILE", p("rabbitmq.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", p("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins")),
            ("RABBITMQ_MNESIA_BASE", p("mnesia")),
            ("RABBITMQ_LOG_BASE", p("log")),
            ("RABBITMQ_PID_FILE", p("beam.pid")),
            // Ticks every 10 s / 4: a silent peer is down after 10-15 s instead of 60-75 s.
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel net_ticktime 10".into(),
            ),
            ("ERL_CRASH_DUMP", p("erl_crash.dump")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn boot_rabbits(&self, timeout: Duration) -> Result<()> {
        let home = self.dir.join("home");
        std::fs::create_dir_all(&home)?;
        let mut raw = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)?;
        let cookie: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let cookie_path = home.join(".erlang.cookie");
        std::fs::write(&cookie_path, cookie)?;
        std::fs::set_permissions(
            &cookie_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )?;
        for i in 0..self.n {
            let d = self.node_dir(i);
            std::fs::create_dir_all(d.join("mnesia"))?;
            std::fs::create_dir_all(d.join("log"))?;
            std::fs::write(d.join("rabbitmq-env.conf"), "")?;
            std::fs::write(d.join("enabled_plugins"), "[rabbitmq_management].\n")?;
            let mut conf = String::from(
                "listeners.tcp.default = 5672\nmanagement.tcp.port = 15672\nloopback_users.guest = true\n\
                 log.file.level = info\nlog.console = false\ncluster_partition_handling = ignore\n\
                 cluster_formation.peer_discovery_backend = classic_config\n",
            );
            for (j, name) in self.names.iter().enumerate() {
                conf.push_str(&format!(
                    "cluster_formation.classic_config.nodes.{} = {name}\n",
                    j + 1
                ));
            }
            std::fs::write(d.join("rabbitmq.conf"), conf)?;
            let log = std::fs::File::create(d.join("stdout.log"))?;
            Command::new(super::ip_bin())
                .args(["netns", "exec", &self.host(i)])
                .args(self.program(&format!("{RABBIT_BIN}/rabbitmq-server")))
                .envs(self.env(i))
                .current_dir(&d)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting rabbitmq-server in {}", self.host(i)))?;
        }
        let t0 = Instant::now();
        for i in 0..self.n {
            loop {
                if self.running_seen_by(i).is_some_and(|r| r == self.n) {
                    break;
                }
                if t0.elapsed() > timeout {
                    bail!(
                        "node {} did not see {} running nodes within {timeout:?}",
                        i + 1,
                        self.n
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        Ok(())
    }

    /// `GET path` on node `i`'s management API from inside its host, as guest (loopback
    /// there). Returns the body of a 2xx answer.
    pub fn mgmt_get(&self, i: usize, path: &str) -> Result<String> {
        ns_exec(
            &self.host(i),
            "curl",
            &[
                "-fsS",
                "-m",
                "3",
                "-u",
                "guest:guest",
                &format!("http://127.0.0.1:15672{path}"),
            ],
            &[],
            Duration::from_secs(10),
        )
    }

    fn mgmt_put(&self, path: &str, body: &str) -> Result<()> {
        ns_exec(
            &self.host(0),
            "curl",
            &[
                "-fsS",
                "-m",
                "5",
                "-u",
                "guest:guest",
                "-H",
                "content-type: application/json",
                "-X",
                "PUT",
                &format!("http://127.0.0.1:15672{path}"),
                "-d",
                body,
            ],
            &[],
            Duration::from_secs(10),
        )
        .map(drop)
    }

    /// How many members node `i`'s `/api/nodes` shows running (`None`: no answer).
    pub fn running_seen_by(&self, i: usize) -> Option<usize> {
        let body = self.mgmt_get(i, "/api/nodes?columns=name,running").ok()?;
        Some(body.matches("\"running\":true").count())
    }

    /// A `monitoring` user that may also run the probe's AMQP round trip (a server-named
    /// queue on the default exchange).
    fn add_user(&self, user: &str, password: &str) -> Result<()> {
        self.mgmt_put(
            &format!("/api/users/{user}"),
            &format!(r#"{{"password":"{password}","tags":"monitoring"}}"#),
        )?;
        self.mgmt_put(
            &format!("/api/permissions/%2F/{user}"),
            r#"{"configure":"^amq\\.gen-.*","write":"^amq\\.(gen-.*|default)$","read":"^amq\\.gen-.*"}"#,
        )
    }

    fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        let mut s = String::new();
        for i in 0..self.n {
            let log = self.node_dir(i).join(format!("log/{}.log", self.names[i]));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s += &format!(
                "\n--- {} (tail)\n{}",
                log.display(),
                lines[lines.len().saturating_sub(10)..].join("\n")
            );
        }
        e.context(format!(
            "netns rabbitmq cluster in {}{s}",
            self.dir.display()
        ))
    }

    /// The tail of node `i`'s RabbitMQ log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = self.node_dir(i).join(format!("log/{}.log", self.names[i]));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let v: Vec<&str> = text.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let t0 = Instant::now();
        // Hosts first (their processes), the switch last.
        for ns in self.created.iter().rev() {
            destroy(ns);
        }
        eprintln!(
            "netlab: {} namespaces removed in {:.1}s",
            self.created.len(),
            t0.elapsed().as_secs_f64()
        );
    }
}
