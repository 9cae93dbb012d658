//! What the HA quickstart runs, as data: the port layout, Patroni's `patroni.yml`, etcd's
//! command line and each RabbitMQ node's config and environment. Pure functions of the
//! directory, the ports and the generated passwords, so they are unit-tested here and the
//! process code only writes and runs what they return.
//!
//! These follow the test lab (`tests/lab/patroni-up.sh`, `tests/lab/rabbit-up.sh`, measured in
//! the lab notes): etcd3 over plain http on loopback, Patroni with a 10 s ttl and a 1 s loop,
//! RabbitMQ with classic-config peer discovery, a private epmd and every listener on
//! 127.0.0.1. The lab scripts stay the tests' own copy (they also run inside the Debian 13
//! rootfs); the two are kept alike by hand.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How many members each cluster has. Three is the smallest size with a quorum that
/// survives one stopped member, which is what the demo shows.
pub const MEMBERS: usize = 3;

/// Every loopback port the clusters use (the collector's is chosen apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    /// PostgreSQL of pg1..pg3.
    pub pg: [u16; MEMBERS],
    /// Patroni REST API of pg1..pg3.
    pub patroni: [u16; MEMBERS],
    /// The private epmd the three RabbitMQ nodes share (not the system's 4369).
    pub epmd: u16,
    pub amqp: [u16; MEMBERS],
    pub mgmt: [u16; MEMBERS],
    /// Erlang distribution of each RabbitMQ node.
    pub dist: [u16; MEMBERS],
}

/// How many ports [`Ports`] holds.
pub const PORT_COUNT: usize = 3 + 5 * MEMBERS;

impl Ports {
    /// The layout over `p` in a fixed order (etcd client, etcd peer, PostgreSQL ×3,
    /// Patroni ×3, epmd, AMQP ×3, management ×3, distribution ×3): `--port-base N` gives
    /// N, N+1, ... in this order.
    pub fn from_list(p: &[u16; PORT_COUNT]) -> Ports {
        let three = |at: usize| [p[at], p[at + 1], p[at + 2]];
        Ports {
            etcd_client: p[0],
            etcd_peer: p[1],
            pg: three(2),
            patroni: three(5),
            epmd: p[8],
            amqp: three(9),
            mgmt: three(12),
            dist: three(15),
        }
    }

    /// Consecutive ports from `base`; an error if they would pass 65535.
    pub fn consecutive(base: u16) -> Result<Ports, String> {
        let last = u32::from(base) + PORT_COUNT as u32 - 1;
        if base == 0 || last > u32::from(u16::MAX) {
            return Err(format!(
                "--port-base {base}: the clusters need {PORT_COUNT} ports from it, up to 65535"
            ));
        }
        let list: [u16; PORT_COUNT] = std::array::from_fn(|i| base + i as u16);
        Ok(Ports::from_list(&list))
    }

    /// Every port with what uses it, for the busy-port check and the teardown check.
    pub fn all(&self) -> Vec<(u16, String)> {
        let mut v = vec![
            (self.etcd_client, "etcd client".to_string()),
            (self.etcd_peer, "etcd peer".to_string()),
            (self.epmd, "epmd (RabbitMQ)".to_string()),
        ];
        for i in 0..MEMBERS {
            let n = i + 1;
            v.push((self.pg[i], format!("PostgreSQL pg{n}")));
            v.push((self.patroni[i], format!("Patroni REST pg{n}")));
            v.push((self.amqp[i], format!("AMQP rabbit{n}")));
            v.push((self.mgmt[i], format!("RabbitMQ management rabbit{n}")));
            v.push((self.dist[i], format!("Erlang distribution rabbit{n}")));
        }
        v
    }
}

/// Passwords made for this run (random; nothing is reused between runs). The RabbitMQ
/// `guest` user stays as Debian ships it: it is accepted from loopback only.
#[derive(Clone)]
pub struct Secrets {
    pub pg_superuser: String,
    pub pg_replication: String,
    pub pg_rewind: String,
    /// The agents' PostgreSQL role (`pg_monitor`) and RabbitMQ user (tag `monitoring`).
    pub monitor: String,
}

impl Secrets {
    pub fn generate() -> std::io::Result<Secrets> {
        Ok(Secrets {
            pg_superuser: random_hex()?,
            pg_replication: random_hex()?,
            pg_rewind: random_hex()?,
            monitor: random_hex()?,
        })
    }
}

/// 16 random bytes as hex: safe in YAML, SQL literals and URLs without quoting rules.
fn random_hex() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The role name the agents log in with.
pub const MONITOR_USER: &str = "monitor";
/// Patroni's scope (the cluster name the view shows).
pub const SCOPE: &str = "quickstart";

/// Member `n` (1-based) of the Patroni cluster: `pg1`...
pub fn pg_name(n: usize) -> String {
    format!("pg{n}")
}

/// RabbitMQ node `n` (1-based): the agent's name and the Erlang node name. The names can
/// repeat those of another cluster on the host: each cluster has its own epmd.
pub fn rabbit_name(n: usize) -> (String, String) {
    (format!("rabbit{n}"), format!("rabbit{n}@localhost"))
}

/// etcd's command line: one member, loopback only, fast elections (a single member elects
/// itself in well under a second with these timings).
pub fn etcd_args(data_dir: &Path, ports: &Ports) -> Vec<OsString> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let mut v: Vec<OsString> = vec!["--name".into(), "etcd1".into(), "--data-dir".into()];
    v.push(data_dir.as_os_str().to_owned());
    for s in [
        "--listen-client-urls".to_string(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("etcd1={peer}"),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        format!("{SCOPE}-etcd"),
        "--heartbeat-interval".into(),
        "50".into(),
        "--election-timeout".into(),
        "500".into(),
    ] {
        v.push(s.into());
    }
    v
}

/// `patroni.yml` of member `n` (1-based) living in `member_dir`.
pub fn patroni_yml(
    n: usize,
    member_dir: &Path,
    ports: &Ports,
    pg_bin: &Path,
    s: &Secrets,
) -> String {
    let m = member_dir.display();
    let api = ports.patroni[n - 1];
    let pg = ports.pg[n - 1];
    format!(
        r#"# Generated by `status-reporter quickstart --ha`; removed with the cluster.
scope: {SCOPE}
namespace: /service/
name: {name}

log:
  level: INFO

restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}

# etcd 3.4 has its v2 API off by default: etcd3.
etcd3:
  hosts: 127.0.0.1:{etcd}
  protocol: http

bootstrap:
  dcs:
    # A stopped leader releases the key at once; a killed one is replaced after ~ttl s.
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 32MB
  initdb:
    - no-sync
    - encoding: UTF8
    - locale: C.UTF-8
    - auth-host: scram-sha-256
    - auth-local: trust

postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {m}/data
  bin_dir: {bin}
  pgpass: {m}/pgpass
  authentication:
    superuser:
      username: postgres
      password: "{su}"
    replication:
      username: replicator
      password: "{rep}"
    rewind:
      username: rewinder
      password: "{rew}"
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: {m}
    max_connections: 50
    shared_buffers: 32MB
    min_wal_size: 32MB
    max_wal_size: 128MB
    # A throwaway demo: durability traded for a fast start.
    fsync: "off"
    synchronous_commit: "off"
    logging_collector: "on"
    log_directory: {m}/log
    log_filename: postgresql.log

watchdog:
  mode: "off"

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
"#,
        name = pg_name(n),
        etcd = ports.etcd_client,
        bin = pg_bin.display(),
        su = s.pg_superuser,
        rep = s.pg_replication,
        rew = s.pg_rewind,
    )
}

/// `rabbitmq.conf` of node `n` (1-based).
pub fn rabbitmq_conf(n: usize, ports: &Ports) -> String {
    let mut out = format!(
        "# Generated by `status-reporter quickstart --ha`.\n\
         # listeners.tcp.default would bind every interface; .1 = ADDR:PORT binds loopback only.\n\
         listeners.tcp.1 = 127.0.0.1:{amqp}\n\
         management.tcp.ip = 127.0.0.1\n\
         management.tcp.port = {mgmt}\n\
         loopback_users.guest = true\n\
         log.file.level = info\n\
         log.console = false\n\
         cluster_formation.peer_discovery_backend = classic_config\n",
        amqp = ports.amqp[n - 1],
        mgmt = ports.mgmt[n - 1],
    );
    for j in 1..=MEMBERS {
        out.push_str(&format!(
            "cluster_formation.classic_config.nodes.{j} = {}\n",
            rabbit_name(j).1
        ));
    }
    out
}

/// The environment of RabbitMQ node `n` (1-based), whose files are in `node_dir`, with the
/// shared cookie's home in `home`. Every path RabbitMQ would take from `/etc/rabbitmq` or
/// `/var/lib/rabbitmq` is pointed into the node's directory.
pub fn rabbitmq_env(
    n: usize,
    node_dir: &Path,
    home: &Path,
    ports: &Ports,
) -> Vec<(String, OsString)> {
    let p = |name: &str| node_dir.join(name).into_os_string();
    let s = |v: String| OsString::from(v);
    vec![
        ("HOME".into(), home.as_os_str().to_owned()),
        ("ERL_EPMD_PORT".into(), s(ports.epmd.to_string())),
        ("ERL_EPMD_ADDRESS".into(), s("127.0.0.1".into())),
        ("RABBITMQ_NODENAME".into(), s(rabbit_name(n).1)),
        // an empty file: /etc/rabbitmq/rabbitmq-env.conf is not read
        ("RABBITMQ_CONF_ENV_FILE".into(), p("rabbitmq-env.conf")),
        ("RABBITMQ_CONFIG_FILE".into(), p("rabbitmq.conf")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE".into(), p("advanced.config")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE".into(), p("enabled_plugins")),
        ("RABBITMQ_MNESIA_BASE".into(), p("mnesia")),
        ("RABBITMQ_LOG_BASE".into(), p("log")),
        ("RABBITMQ_PID_FILE".into(), p("beam.pid")),
        ("RABBITMQ_NODE_IP_ADDRESS".into(), s("127.0.0.1".into())),
        (
            "RABBITMQ_NODE_PORT".into(),
            s(ports.amqp[n - 1].to_string()),
        ),
        (
            "RABBITMQ_DIST_PORT".into(),
            s(ports.dist[n - 1].to_string()),
        ),
        // the distribution port binds 0.0.0.0 unless told otherwise
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(),
            s("-kernel inet_dist_use_interface {127,0,0,1}".into()),
        ),
        ("ERL_CRASH_DUMP".into(), p("erl_crash.dump")),
    ]
}

/// Debian's PostgreSQL binaries: the newest `/usr/lib/postgresql/N/bin` that has
/// `postgres`, `initdb` and `psql` (under `root`, for tests).
pub fn find_pg_bin(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root.join("usr/lib/postgresql"))
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["postgres", "initdb", "psql", "pg_rewind"]
                .iter()
                .all(|b| bin.join(b).is_file())
                .then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        Ports::consecutive(20000).unwrap()
    }

    #[test]
    fn consecutive_ports_are_distinct_and_bounded() {
        let p = ports();
        let mut all: Vec<u16> = p.all().into_iter().map(|(p, _)| p).collect();
        assert_eq!(all.len(), PORT_COUNT);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), PORT_COUNT, "a port is used twice");
        assert_eq!(*all.first().unwrap(), 20000);
        assert_eq!(*all.last().unwrap(), 20000 + PORT_COUNT as u16 - 1);
        assert!(Ports::consecutive(u16::MAX - 3).is_err());
        assert!(Ports::consecutive(0).is_err());
        assert!(Ports::consecutive(u16::MAX - PORT_COUNT as u16 + 1).is_ok());
    }

    #[test]
    fn patroni_yml_names_its_own_ports_and_paths() {
        let p = ports();
        let s = Secrets::generate().unwrap();
        let y = patroni_yml(
            2,
            Path::new("/d/pg2"),
            &p,
            Path::new("/usr/lib/postgresql/15/bin"),
            &s,
        );
        assert!(y.contains("name: pg2\n"));
        assert!(y.contains(&format!("listen: 127.0.0.1:{}\n", p.patroni[1])));
        assert!(y.contains(&format!("listen: 127.0.0.1:{}\n", p.pg[1])));
        assert!(y.contains(&format!("hosts: 127.0.0.1:{}\n", p.etcd_client)));
        assert!(y.contains("data_dir: /d/pg2/data\n"));
        assert!(y.contains(&format!("password: \"{}\"", s.pg_superuser)));
        assert!(!y.contains(&format!("127.0.0.1:{}", p.patroni[0])));
        assert!(!y.contains("0.0.0.0"), "loopback only");
    }

    #[test]
    fn rabbitmq_binds_loopback_and_lists_every_node() {
        let p = ports();
        let c = rabbitmq_conf(3, &p);
        assert!(c.contains(&format!("listeners.tcp.1 = 127.0.0.1:{}\n", p.amqp[2])));
        assert!(c.contains(&format!("management.tcp.port = {}\n", p.mgmt[2])));
        for j in 1..=MEMBERS {
            assert!(c.contains(&format!("= rabbit{j}@localhost\n")));
        }
        let env = rabbitmq_env(3, Path::new("/d/rabbit3"), Path::new("/d/home"), &p);
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("RABBITMQ_NODENAME"), "rabbit3@localhost");
        assert_eq!(get("ERL_EPMD_PORT"), p.epmd.to_string().as_str());
        assert_eq!(get("RABBITMQ_DIST_PORT"), p.dist[2].to_string().as_str());
        assert_eq!(get("RABBITMQ_PID_FILE"), "/d/rabbit3/beam.pid");
    }

    #[test]
    fn etcd_listens_on_loopback_only() {
        let p = ports();
        let a: Vec<String> = etcd_args(Path::new("/d/etcd"), &p)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert!(a.contains(&format!("http://127.0.0.1:{}", p.etcd_client)));
        assert!(a.iter().all(|s| !s.contains("0.0.0.0")));
    }

    #[test]
    fn pg_bin_is_the_newest_complete_version() {
        let root = tempfile::tempdir().unwrap();
        for (v, complete) in [(13, true), (15, true), (17, false)] {
            let bin = root.path().join(format!("usr/lib/postgresql/{v}/bin"));
            std::fs::create_dir_all(&bin).unwrap();
            let files: &[&str] = if complete {
                &["postgres", "initdb", "psql", "pg_rewind"]
            } else {
                &["psql"]
            };
            for f in files {
                std::fs::write(bin.join(f), "").unwrap();
            }
        }
        assert_eq!(
            find_pg_bin(root.path()).unwrap(),
            root.path().join("usr/lib/postgresql/15/bin")
        );
        assert_eq!(find_pg_bin(Path::new("/nonexistent")), None);
    }
}
