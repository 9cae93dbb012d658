//! A Patroni cluster in the lab: 1 etcd + N Patroni/PostgreSQL members on 127.0.0.1
//! (`tests/lab/patroni-*.sh`), optionally with TLS on the REST API and on etcd, on either
//! version set ([`VersionSet`]: Patroni 3.0.2/etcd 3.4/PG 15 on the host, or Patroni 4.0 or
//! 4.1/etcd 3.5/PG 17 in the Debian 13 rootfs).

use super::{
    port_list, script_index, Attempt, Lab, Spec, VersionSet, MONITOR_PASSWORD, MONITOR_USER,
};
use crate::harness::poll::wait_until;
use crate::harness::rest::{self, Response, Tls};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options for [`PatroniCluster::start`].
#[derive(Debug, Clone)]
pub struct PatroniOpts {
    /// Number of Patroni/PostgreSQL members (default 3).
    pub members: usize,
    /// Patroni REST API over https with `verify_client: required` (default false).
    pub tls: bool,
    /// etcd client/peer over https with client-cert auth (default false). etcd's plain-http
    /// `/health` + `/metrics` stay available on [`PatroniCluster::etcd_metrics_url`].
    pub etcd_tls: bool,
    /// Patroni DCS `ttl` in seconds (default 10: a killed leader is replaced after ~10 s).
    /// Raised to [`VersionSet::min_ttl`] (20 on Patroni 4, which would raise it itself), so
    /// [`PatroniCluster::opts`] says what the cluster really runs with.
    pub ttl: u32,
    /// Patroni `loop_wait` (default 1).
    pub loop_wait: u32,
    /// Patroni `retry_timeout` (default 3).
    pub retry_timeout: u32,
    /// Patroni scope, i.e. cluster name (default "lab").
    pub scope: String,
    /// Deadline for leader + (members-1) streaming replicas (default 120 s).
    pub start_timeout: Duration,
    /// Which Patroni/etcd/PostgreSQL versions run (default set A, the host's).
    pub set: VersionSet,
}

impl Default for PatroniOpts {
    fn default() -> Self {
        PatroniOpts {
            members: 3,
            tls: false,
            etcd_tls: false,
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 3,
            scope: "lab".into(),
            start_timeout: Duration::from_secs(120),
            set: VersionSet::Debian12,
        }
    }
}

/// TLS material generated for a [`PatroniCluster`] started with `tls` or `etcd_tls`.
/// All EC P-256, PEM (keys PKCS#8). Certificates are valid for 2 days.
#[derive(Debug, Clone)]
pub struct PatroniTls {
    /// The CA that signed `server_cert` and `client_cert` (the REST API's `cafile`).
    pub ca_cert: PathBuf,
    /// Server certificate of every member: CN=localhost, SAN IP:127.0.0.1 + DNS:localhost,
    /// EKU serverAuth+clientAuth (members also use it as their client certificate).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client-only certificate (CN=monitor, EKU clientAuth) signed by `ca_cert`: what the
    /// agent should present.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An unrelated CA: trusting it instead of `ca_cert` must fail server verification.
    pub wrong_ca_cert: PathBuf,
    /// A client certificate signed by `wrong_ca_cert`: the REST API must reject it.
    pub wrong_client_cert: PathBuf,
    pub wrong_client_key: PathBuf,
    /// A server certificate (same SANs) signed by `wrong_ca_cert`, for tests of the client
    /// side against a mock server.
    pub wrong_server_cert: PathBuf,
    pub wrong_server_key: PathBuf,
}

impl PatroniTls {
    fn in_dir(t: &Path) -> Self {
        PatroniTls {
            ca_cert: t.join("ca.crt"),
            server_cert: t.join("server.crt"),
            server_key: t.join("server.key"),
            client_cert: t.join("client.crt"),
            client_key: t.join("client.key"),
            wrong_ca_cert: t.join("wrong-ca.crt"),
            wrong_client_cert: t.join("wrong-client.crt"),
            wrong_client_key: t.join("wrong-client.key"),
            wrong_server_cert: t.join("wrong-server.crt"),
            wrong_server_key: t.join("wrong-server.key"),
        }
    }
}

/// What [`PatroniCluster::status`] sees in the DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatroniStatus {
    /// Index of the member holding the leader key with state `running`.
    pub leader: Option<usize>,
    /// Replicas that the leader's `pg_stat_replication` shows `streaming` under their member name.
    pub streaming: usize,
    /// Member names listed in `/cluster`.
    pub members: Vec<String>,
    /// Replica names listed as running in `/cluster`.
    pub running_replicas: Vec<String>,
}

/// A running Patroni cluster: 1 etcd + `members` Patroni/PostgreSQL 15 members on 127.0.0.1.
/// Torn down (and its directory removed) on drop.
pub struct PatroniCluster {
    lab: Lab,
    opts: PatroniOpts,
    pg_ports: Vec<u16>,
    api_ports: Vec<u16>,
    etcd_client_port: u16,
    etcd_peer_port: u16,
    etcd_metrics_port: u16,
    tls: Option<PatroniTls>,
    started_in: Duration,
}

impl PatroniCluster {
    /// Picks free loopback ports, creates `/tmp/sr-lab-patroni-*` (0755), runs
    /// `tests/lab/patroni-up.sh` and waits (polling, with `opts.start_timeout`) until there is a
    /// leader and `members-1` streaming replicas and the `monitor` role exists everywhere.
    pub fn start(mut opts: PatroniOpts) -> Result<Self> {
        if opts.members == 0 {
            bail!("members must be >= 1");
        }
        opts.ttl = opts.ttl.max(opts.set.min_ttl());
        let n = opts.members;
        let spec = Spec {
            name: "patroni",
            scripts: "patroni",
            ports: 2 * n + 3,
            start_timeout: opts.start_timeout,
            // the script waits for readiness itself; give it some slack on top
            slack: Duration::from_secs(60),
            set: opts.set,
        };
        let (lab, ports, detail) = Lab::start(spec, |dir, ports| Attempt {
            env: vec![
                ("MEMBERS", n.to_string()),
                ("PG_PORTS", port_list(&ports[..n])),
                ("API_PORTS", port_list(&ports[n..2 * n])),
                ("ETCD_CLIENT_PORT", ports[2 * n].to_string()),
                ("ETCD_PEER_PORT", ports[2 * n + 1].to_string()),
                ("ETCD_METRICS_PORT", ports[2 * n + 2].to_string()),
                ("SCOPE", opts.scope.clone()),
                ("TLS", (opts.tls as u8).to_string()),
                ("ETCD_TLS", (opts.etcd_tls as u8).to_string()),
                ("TTL", opts.ttl.to_string()),
                ("LOOP_WAIT", opts.loop_wait.to_string()),
                ("RETRY_TIMEOUT", opts.retry_timeout.to_string()),
            ],
            logs: (1..=n)
                .map(|i| (dir.join(format!("pg{i}/patroni.log")), 15))
                .chain([(dir.join("etcd/etcd.log"), 5)])
                .collect(),
            kind: ports.to_vec(),
        })?;
        let tls = (opts.tls || opts.etcd_tls).then(|| PatroniTls::in_dir(&lab.dir().join("tls")));
        let mut c = PatroniCluster {
            opts,
            pg_ports: ports[..n].to_vec(),
            api_ports: ports[n..2 * n].to_vec(),
            etcd_client_port: ports[2 * n],
            etcd_peer_port: ports[2 * n + 1],
            etcd_metrics_port: ports[2 * n + 2],
            tls,
            started_in: Duration::ZERO,
            lab,
        };
        // confirm from here (cheap: the script only returned once this was true)
        c.wait_ready(Duration::from_secs(30))
            .map_err(|e| c.lab.with_logs(e))?;
        c.started_in = c.lab.ready(&detail);
        Ok(c)
    }

    fn ctl_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        self.lab.ctl_ok(args, timeout)
    }

    fn check_index(&self, i: usize) -> Result<String> {
        script_index(i, self.opts.members)
    }

    // ---- accessors ----

    /// The cluster directory (`/tmp/sr-lab-patroni-*`): `pgN/` (data, patroni.yml, logs),
    /// `etcd/`, `tls/`, `cluster.env`, `patronictl.yml`.
    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }
    pub fn opts(&self) -> &PatroniOpts {
        &self.opts
    }
    /// The version set it runs.
    pub fn set(&self) -> VersionSet {
        self.opts.set
    }
    /// How long [`start`](Self::start) took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }
    /// Number of members.
    pub fn members(&self) -> usize {
        self.opts.members
    }
    pub fn scope(&self) -> &str {
        &self.opts.scope
    }
    /// Patroni member name of member `i` (`pg1` for `i == 0`).
    pub fn member_name(&self, i: usize) -> String {
        format!("pg{}", i + 1)
    }
    pub fn member_names(&self) -> Vec<String> {
        (0..self.opts.members)
            .map(|i| self.member_name(i))
            .collect()
    }
    /// Index of the member called `name` (`"pg2"` -> 1).
    pub fn member_index(&self, name: &str) -> Option<usize> {
        let n: usize = name.strip_prefix("pg")?.parse().ok()?;
        (1..=self.opts.members).contains(&n).then(|| n - 1)
    }
    /// `http` or `https` (TLS).
    pub fn rest_scheme(&self) -> &'static str {
        if self.opts.tls {
            "https"
        } else {
            "http"
        }
    }
    pub fn rest_port(&self, i: usize) -> u16 {
        self.api_ports[i]
    }
    /// Base URL of member `i`'s REST API, e.g. `http://127.0.0.1:41011` (no trailing slash).
    pub fn rest_url(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.rest_scheme(), self.api_ports[i])
    }
    pub fn rest_urls(&self) -> Vec<String> {
        (0..self.opts.members).map(|i| self.rest_url(i)).collect()
    }
    /// PostgreSQL TCP port of member `i` (listens on 127.0.0.1, scram-sha-256).
    pub fn pg_port(&self, i: usize) -> u16 {
        self.pg_ports[i]
    }
    /// Unix socket directory of member `i` (trust auth for every role).
    pub fn pg_socket_dir(&self, i: usize) -> PathBuf {
        self.dir().join(format!("pg{}", i + 1))
    }
    /// libpq/tokio-postgres connection string for the non-superuser `monitor` role on member `i`.
    pub fn pg_monitor_conn_str(&self, i: usize) -> String {
        format!(
            "host=127.0.0.1 port={} user={MONITOR_USER} password={MONITOR_PASSWORD} dbname=postgres",
            self.pg_ports[i]
        )
    }
    /// etcd client URL (`http://127.0.0.1:P`, `https` with `etcd_tls`).
    pub fn etcd_url(&self) -> String {
        let s = if self.opts.etcd_tls { "https" } else { "http" };
        format!("{s}://127.0.0.1:{}", self.etcd_client_port)
    }
    pub fn etcd_client_port(&self) -> u16 {
        self.etcd_client_port
    }
    pub fn etcd_peer_port(&self) -> u16 {
        self.etcd_peer_port
    }
    /// etcd's extra plain-http listener for `/health` and `/metrics` (no client cert needed).
    pub fn etcd_metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_metrics_port)
    }
    /// TLS material when started with `tls` or `etcd_tls`.
    pub fn tls(&self) -> Option<&PatroniTls> {
        self.tls.as_ref()
    }

    // ---- queries ----

    /// Leader, streaming replicas and members from the DCS view (`/cluster` of the first member
    /// that answers, then the leader's `/patroni`). Hangs up to ~2 s per member when etcd is down.
    pub fn status(&self) -> Result<PatroniStatus> {
        let out = self.ctl_ok(&["status"], Duration::from_secs(30))?;
        let line = out.trim();
        let get = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap_or("-")
        };
        let list = |v: &str| -> Vec<String> {
            if v == "-" {
                Vec::new()
            } else {
                v.split(',').map(String::from).collect()
            }
        };
        Ok(PatroniStatus {
            leader: self.member_index(get("leader")),
            streaming: get("streaming")
                .parse()
                .with_context(|| format!("status line {line:?}"))?,
            members: list(get("members")),
            running_replicas: list(get("running")),
        })
    }

    /// Index of the member that holds the leader key and is `running`, per the DCS (`/cluster`).
    /// `None` if there is none or no member answers.
    pub fn leader(&self) -> Option<usize> {
        let out = self.ctl_ok(&["leader"], Duration::from_secs(30)).ok()?;
        self.member_index(out.trim())
    }

    /// Waits until there is a leader and `members-1` replicas stream from it; returns the leader.
    pub fn wait_ready(&self, timeout: Duration) -> Result<usize> {
        let want = self.opts.members - 1;
        let mut leader = None;
        wait_until(
            "patroni leader + streaming replicas",
            timeout,
            Duration::from_millis(250),
            || {
                let s = self.status()?;
                leader = s.leader;
                Ok(s.leader.is_some() && s.streaming >= want)
            },
        )?;
        leader.ok_or_else(|| anyhow!("no leader"))
    }

    /// Waits until the DCS names a running leader that satisfies `pred`; returns it.
    pub fn wait_leader(&self, timeout: Duration, pred: impl Fn(usize) -> bool) -> Result<usize> {
        let mut found = None;
        wait_until(
            "patroni leader",
            timeout,
            Duration::from_millis(200),
            || {
                found = self.leader().filter(|l| pred(*l));
                Ok(found.is_some())
            },
        )?;
        Ok(found.expect("set when the wait succeeded"))
    }

    /// Waits until a member other than `old` is leader; returns it.
    pub fn wait_new_leader(&self, old: usize, timeout: Duration) -> Result<usize> {
        self.wait_leader(timeout, |l| l != old)
    }

    /// `GET path` on member `i`'s REST API (with TLS, presenting the harness' client
    /// certificate). Any status code is `Ok`; no answer at all (refused, reset, timeout) is
    /// `Err`.
    pub fn rest_get(&self, i: usize, path: &str) -> Result<Response> {
        self.rest_request(i, "GET", path, None)
    }

    /// Any method on member `i`'s REST API (e.g. `PATCH /config` with a JSON body).
    pub fn rest_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<Response> {
        self.check_index(i)?;
        let url = format!("{}{path}", self.rest_url(i));
        rest::request(self.client_tls(self.opts.tls), method, &url, &[], json_body)
    }

    /// Request to etcd's client URL (e.g. `("POST", "/v3/maintenance/status", Some("{}"))`).
    pub fn etcd_request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<Response> {
        let url = format!("{}{path}", self.etcd_url());
        rest::request(
            self.client_tls(self.opts.etcd_tls),
            method,
            &url,
            &[],
            json_body,
        )
    }

    /// With `on`, the cluster CA and the client certificate the agent presents; else plain
    /// `http://`.
    fn client_tls(&self, on: bool) -> Tls<'_> {
        if !on {
            return Tls::default();
        }
        let t = self.tls.as_ref().expect("started with TLS");
        Tls {
            ca: Some(&t.ca_cert),
            identity: Some((&t.client_cert, &t.client_key)),
        }
    }

    /// Runs `sql` as the superuser over member `i`'s unix socket; returns psql's `-At` output.
    /// For fault injection only (e.g. `SELECT pg_wal_replay_pause()`); probes use `monitor`.
    pub fn psql(&self, i: usize, sql: &str) -> Result<String> {
        let n = self.check_index(i)?;
        Ok(self
            .ctl_ok(&["psql", &n, sql], Duration::from_secs(60))?
            .trim_end()
            .to_string())
    }

    // ---- control / fault injection ----

    /// `patronictl ARGS` against the cluster (`pause --wait`, `resume --wait`), which must
    /// succeed (the script bounds it at 20 s).
    pub fn patronictl(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["patronictl"];
        all.extend(args);
        self.ctl_ok(&all, Duration::from_secs(30))
    }

    /// `patroni-ctl.sh DIR VERB N` for member `i`, which must succeed within `timeout`.
    fn member_action(&self, verb: &str, i: usize, timeout: Duration) -> Result<()> {
        let n = self.check_index(i)?;
        self.ctl_ok(&[verb, &n], timeout).map(drop)
    }

    /// SIGKILL member `i`'s Patroni. Its PostgreSQL keeps running (an orphaned primary if it
    /// was the leader); another member takes over after ~ttl.
    pub fn kill_patroni(&self, i: usize) -> Result<()> {
        self.member_action("kill-patroni", i, Duration::from_secs(30))
    }
    /// SIGTERM member `i`'s Patroni and wait until it exited (it stops its PostgreSQL and
    /// releases the leader key if it had it).
    pub fn stop_patroni(&self, i: usize) -> Result<()> {
        self.member_action("stop-patroni", i, Duration::from_secs(90))
    }
    /// Start member `i`'s Patroni again (no-op if running). Does not wait for it to rejoin.
    pub fn start_patroni(&self, i: usize) -> Result<()> {
        self.member_action("start-patroni", i, Duration::from_secs(30))
    }
    /// SIGSTOP member `i`'s Patroni: a hung Patroni whose process and TCP connections stay.
    /// Every freeze must be followed by [`PatroniCluster::thaw_patroni`].
    pub fn freeze_patroni(&self, i: usize) -> Result<()> {
        self.member_action("freeze-patroni", i, Duration::from_secs(10))
    }
    /// SIGCONT member `i`'s Patroni.
    pub fn thaw_patroni(&self, i: usize) -> Result<()> {
        self.member_action("thaw-patroni", i, Duration::from_secs(10))
    }
    /// SIGKILL member `i`'s postmaster (Patroni recovers and restarts it).
    pub fn kill_postgres(&self, i: usize) -> Result<()> {
        self.member_action("kill-postgres", i, Duration::from_secs(30))
    }
    /// SIGTERM etcd and wait until it exited.
    pub fn stop_etcd(&self) -> Result<()> {
        self.ctl_ok(&["stop-etcd"], Duration::from_secs(40))
            .map(drop)
    }
    /// Start etcd again and wait until its `/health` is true.
    pub fn start_etcd(&self) -> Result<()> {
        self.ctl_ok(&["start-etcd"], Duration::from_secs(40))
            .map(drop)
    }
}
