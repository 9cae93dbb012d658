//! Starting the HA quickstart's clusters and waiting until each is really up: etcd healthy,
//! a Patroni leader with every replica streaming, every RabbitMQ node seeing all three
//! running, and the agents' monitoring logins created. Every wait has a deadline and fails
//! early, with the service's log tail, when a service it waits for has exited.

use super::packages::Tools;
use super::procs::{Procs, Spec, Tier};
use super::services::{self, Ports, Secrets, MEMBERS, MONITOR_USER};
use anyhow::{anyhow, bail, Context};
use hyper::body::Bytes;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest answer read from a service's API while waiting (`/api/nodes` with two columns
/// and `/cluster` are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// The clusters of one quickstart run.
pub struct Cluster {
    pub dir: PathBuf,
    pub ports: Ports,
    pub secrets: Secrets,
    pub tools: Tools,
    /// The (uid, gid) Patroni and PostgreSQL run as; `None`: ours (not root).
    pub pg_user: Option<(u32, u32)>,
    pub procs: Procs,
    http: sr_tls::HttpsClient,
}

impl Cluster {
    pub fn new(
        dir: PathBuf,
        ports: Ports,
        tools: Tools,
        pg_user: Option<(u32, u32)>,
        procs: Procs,
    ) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            dir,
            ports,
            secrets: Secrets::generate().context("cannot read random bytes for the passwords")?,
            tools,
            pg_user,
            procs,
            http: sr_tls::HttpsClient::plain(Duration::from_secs(2)),
        })
    }

    pub fn member_dir(&self, n: usize) -> PathBuf {
        self.dir.join("db").join(services::pg_name(n))
    }

    pub fn rabbit_dir(&self, n: usize) -> PathBuf {
        self.dir.join("broker").join(services::rabbit_name(n).0)
    }

    /// `Patroni pg1`, the registry's name of member `n`.
    pub fn patroni_proc(n: usize) -> String {
        format!("Patroni {}", services::pg_name(n))
    }

    /// `RabbitMQ rabbit1`.
    pub fn rabbit_proc(n: usize) -> String {
        format!("RabbitMQ {}", services::rabbit_name(n).0)
    }

    /// beam.smp's pid from the node's pid file (the process a clean stop signals), if
    /// it is running.
    pub fn beam_pid(&self, n: usize) -> Option<u32> {
        let text = std::fs::read_to_string(self.rabbit_dir(n).join("beam.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// etcd, then its health.
    pub async fn start_etcd(&self, deadline: Instant) -> anyhow::Result<()> {
        let d = self.dir.join("etcd");
        std::fs::create_dir_all(&d)?;
        self.procs.spawn(Spec {
            name: "etcd".into(),
            program: self.tools.etcd.clone(),
            args: services::etcd_args(&d.join("data"), &self.ports),
            env: vec![("HOME".into(), d.clone().into_os_string())],
            cwd: d.clone(),
            log: d.join("etcd.log"),
            user: None,
            tier: Tier::Services,
        })?;
        let url = format!("http://127.0.0.1:{}/health", self.ports.etcd_client);
        self.wait(
            "etcd to be healthy",
            deadline,
            &[d.join("etcd.log")],
            || async {
                let r = self.get(&url, None).await?;
                let healthy = String::from_utf8_lossy(&r).contains(r#""health":"true""#);
                Ok(healthy.then_some(()))
            },
        )
        .await
    }

    /// Writes each member's files (owned by the PostgreSQL user) and starts its Patroni.
    pub fn spawn_patroni(&self) -> anyhow::Result<()> {
        let db = self.dir.join("db");
        std::fs::create_dir_all(&db)?;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755))?;
        for n in 1..=MEMBERS {
            let m = self.member_dir(n);
            std::fs::create_dir_all(m.join("data"))?;
            std::fs::create_dir_all(m.join("log"))?;
            std::fs::set_permissions(m.join("data"), std::fs::Permissions::from_mode(0o700))?;
            let yml = m.join("patroni.yml");
            let text = services::patroni_yml(n, &m, &self.ports, &self.tools.pg_bin, &self.secrets);
            sr_fsutil::atomic_write(&yml, text.as_bytes(), 0o600, None)?;
            if let Some((uid, gid)) = self.pg_user {
                for p in [m.clone(), m.join("data"), m.join("log"), yml.clone()] {
                    nix::unistd::chown(&p, Some(uid.into()), Some(gid.into()))
                        .with_context(|| format!("cannot give {} to uid {uid}", p.display()))?;
                }
            }
            self.procs.add_data_dir(m.join("data"));
            self.procs.spawn(Spec {
                name: Self::patroni_proc(n),
                program: self.tools.patroni.clone(),
                args: vec![yml.into_os_string()],
                env: vec![("HOME".into(), m.clone().into_os_string())],
                cwd: m.clone(),
                log: m.join("patroni.log"),
                user: self.pg_user,
                tier: Tier::Patroni,
            })?;
        }
        Ok(())
    }

    /// Waits for a running leader whose `pg_stat_replication` shows every other member
    /// streaming (pg_basebackup's own stream is also "streaming" while a replica is cloned:
    /// only member names count). Returns the leader's member number.
    pub async fn wait_patroni(&self, deadline: Instant) -> anyhow::Result<usize> {
        let logs: Vec<PathBuf> = (1..=MEMBERS)
            .map(|n| self.member_dir(n).join("patroni.log"))
            .collect();
        self.wait(
            "a Patroni leader and 2 streaming replicas",
            deadline,
            &logs,
            || async {
                let mut cluster = None;
                for p in self.ports.patroni {
                    if let Ok(b) = self
                        .get(&format!("http://127.0.0.1:{p}/cluster"), None)
                        .await
                    {
                        cluster = Some(serde_json::from_slice::<serde_json::Value>(&b)?);
                        break;
                    }
                }
                let Some(c) = cluster else {
                    return Err(anyhow!("no Patroni REST API answers yet"));
                };
                let members = c["members"].as_array().cloned().unwrap_or_default();
                let running = |role: &str| {
                    members
                        .iter()
                        // Patroni 3 says a replica is "running", Patroni 4 "streaming"
                        .filter(move |m| {
                            m["role"] == role
                                && (m["state"] == "running" || m["state"] == "streaming")
                        })
                        .filter_map(|m| m["name"].as_str().map(String::from))
                        .collect::<Vec<_>>()
                };
                let Some(leader) = running("leader").into_iter().next() else {
                    return Err(anyhow!("no leader yet"));
                };
                let replicas = running("replica");
                let n: usize = leader
                    .strip_prefix("pg")
                    .and_then(|s| s.parse().ok())
                    .filter(|n| (1..=MEMBERS).contains(n))
                    .ok_or_else(|| anyhow!("unexpected leader name {leader:?}"))?;
                let body = self
                    .get(
                        &format!("http://127.0.0.1:{}/patroni", self.ports.patroni[n - 1]),
                        None,
                    )
                    .await?;
                let p: serde_json::Value = serde_json::from_slice(&body)?;
                let streaming = p["replication"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter(|r| {
                                r["state"] == "streaming"
                                    && r["application_name"]
                                        .as_str()
                                        .is_some_and(|a| replicas.iter().any(|x| x == a))
                            })
                            .count()
                    })
                    .unwrap_or(0);
                if streaming + 1 < MEMBERS {
                    return Err(anyhow!("leader {leader}, {streaming} replicas streaming"));
                }
                Ok(Some(n))
            },
        )
        .await
    }

    /// The agents' PostgreSQL role (`pg_monitor`, no superuser), created on the leader over
    /// its unix socket (trusted locally, as the lab does) with Debian's `psql`.
    pub async fn create_pg_monitor(&self, leader: usize) -> anyhow::Result<()> {
        let pw = &self.secrets.monitor;
        let sql = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MONITOR_USER}') \
             THEN CREATE ROLE {MONITOR_USER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{pw}'; \
             END IF; END $$; GRANT pg_monitor TO {MONITOR_USER};"
        );
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(self.tools.pg_bin.join("psql"))
                .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.member_dir(leader))
                .args(["-p", &self.ports.pg[leader - 1].to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-c", &sql])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| anyhow!("psql did not finish within 30 s"))?
        .context("cannot run psql")?;
        if !out.status.success() {
            bail!(
                "creating the monitoring role failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The private epmd and the three RabbitMQ nodes.
    pub fn spawn_rabbit(&self) -> anyhow::Result<()> {
        let b = self.dir.join("broker");
        let home = b.join("home");
        std::fs::create_dir_all(&home)?;
        // one cookie for the three nodes (clustering needs the same one), random per run
        let cookie = Secrets::generate()?.monitor;
        sr_fsutil::atomic_write(&home.join(".erlang.cookie"), cookie.as_bytes(), 0o400, None)?;
        self.procs.spawn(Spec {
            name: "epmd".into(),
            program: self.tools.epmd.clone(),
            args: vec![
                "-port".into(),
                self.ports.epmd.to_string().into(),
                "-address".into(),
                "127.0.0.1".into(),
            ],
            env: vec![],
            cwd: b.clone(),
            log: b.join("epmd.log"),
            user: None,
            tier: Tier::Epmd,
        })?;
        for n in 1..=MEMBERS {
            let d = self.rabbit_dir(n);
            std::fs::create_dir_all(d.join("mnesia"))?;
            std::fs::create_dir_all(d.join("log"))?;
            std::fs::write(d.join("rabbitmq-env.conf"), "")?;
            std::fs::write(
                d.join("rabbitmq.conf"),
                services::rabbitmq_conf(n, &self.ports),
            )?;
            std::fs::write(d.join("enabled_plugins"), "[rabbitmq_management].\n")?;
            self.procs.spawn(Spec {
                name: Self::rabbit_proc(n),
                program: self.tools.rabbitmq_server.clone(),
                args: vec![],
                env: services::rabbitmq_env(n, &d, &home, &self.ports),
                // erl_crash.dump lands in the working directory: the node's own
                cwd: d.clone(),
                log: d.join("stdout.log"),
                user: None,
                tier: Tier::Services,
            })?;
        }
        Ok(())
    }

    /// Waits until every node's management API answers and lists all three running.
    pub async fn wait_rabbit(&self, deadline: Instant) -> anyhow::Result<()> {
        let logs: Vec<PathBuf> = (1..=MEMBERS)
            .flat_map(|n| {
                let d = self.rabbit_dir(n);
                [
                    d.join("stdout.log"),
                    d.join("log")
                        .join(format!("{}.log", services::rabbit_name(n).1)),
                ]
            })
            .collect();
        self.wait(
            "3 RabbitMQ nodes running in one cluster",
            deadline,
            &logs,
            || async {
                for (i, p) in self.ports.mgmt.iter().enumerate() {
                    let url = format!("http://127.0.0.1:{p}/api/nodes?columns=name,running");
                    let b = self
                        .get(&url, Some(("guest", "guest")))
                        .await
                        .map_err(|e| anyhow!("rabbit{}: {e:#}", i + 1))?;
                    let v: serde_json::Value = serde_json::from_slice(&b)?;
                    let running = v
                        .as_array()
                        .map(|a| a.iter().filter(|n| n["running"] == true).count())
                        .unwrap_or(0);
                    if running < MEMBERS {
                        return Err(anyhow!("rabbit{} sees {running} nodes running", i + 1));
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// The agents' RabbitMQ user: tag `monitoring` for the management API, and on vhost `/`
    /// only what the AMQP round trip needs: its server-named queue (`amq.gen-*`) and the
    /// default exchange. Users live in the cluster's metadata store: one node is enough.
    pub async fn create_rabbit_monitor(&self) -> anyhow::Result<()> {
        let base = format!("http://127.0.0.1:{}", self.ports.mgmt[0]);
        let user = serde_json::json!({"password": self.secrets.monitor, "tags": "monitoring"});
        let perms = serde_json::json!({
            "configure": r"^amq\.gen-.*",
            "write": r"^amq\.(gen-.*|default)$",
            "read": r"^amq\.gen-.*",
        });
        for (path, body) in [
            (format!("/api/users/{MONITOR_USER}"), user),
            (format!("/api/permissions/%2F/{MONITOR_USER}"), perms),
        ] {
            let r = self
                .http
                .request(
                    http::Method::PUT,
                    &format!("{base}{path}"),
                    &[
                        ("authorization", &basic("guest", "guest")),
                        ("content-type", "application/json"),
                    ],
                    Bytes::from(body.to_string()),
                    Duration::from_secs(10),
                    MAX_BODY,
                )
                .await
                .map_err(|e| anyhow!("PUT {path}: {e}"))?;
            if !r.status.is_success() {
                bail!(
                    "PUT {path} answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
        }
        Ok(())
    }

    /// A GET that must answer 200; its body.
    async fn get(&self, url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<Bytes> {
        let header = auth.map(|(u, p)| basic(u, p));
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let r = self
            .http
            .get(url, &headers, Duration::from_secs(3), MAX_BODY)
            .await
            .map_err(|e| anyhow!("{url}: {e}"))?;
        if !r.status.is_success() {
            bail!("{url} answered {}", r.status);
        }
        Ok(r.body)
    }

    /// Polls `attempt` every 250 ms until it gives a value; an error at `deadline` (with the
    /// last reason and the tails of `logs`), or as soon as a service of ours has exited.
    async fn wait<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        logs: &[PathBuf],
        mut attempt: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
    {
        let mut last = String::from("no answer yet");
        loop {
            if let Some((name, log, how)) = self.procs.first_exited() {
                bail!(
                    "{name} exited ({how}) while waiting for {what}{}",
                    tails(&[log])
                );
            }
            match attempt().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!("timed out waiting for {what} (last: {last}){}", tails(logs));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The last lines of each log, for an error message.
pub fn tails(logs: &[PathBuf]) -> String {
    logs.iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(12)..].join("\n");
            Some(format!("\n--- {} (last lines)\n{tail}", p.display()))
        })
        .collect()
}
