//! The real, unmodified Cloudify 5.0.5.1 CLI (`cfy`) against a real collector process.
//!
//! The README promises that the collector answers `cfy` as a 5.0.5 manager does. These tests
//! keep that promise honest: `tests/cfy/ensure-venv.sh` installs `cloudify==5.0.5.1` (Python
//! 2.7) into a cached venv outside the repo, and each test runs `cfy` as a subprocess with
//! its own `HOME` (its profiles live in `~/.cloudify`), asserting on what it prints and on
//! its exit code. Three cases:
//!
//! - an empty cluster (no node has reported): `profiles use` must still work, which 5.0.5
//!   only does with non-empty node lists;
//! - a populated one: real agents (`status-reporter run`) report as manager, db and broker
//!   nodes, and every list, `cluster status` and `cluster remove` must show true values
//!   (the names, ids and addresses the agents reported, and the statuses our own
//!   `status-reporter cluster status` shows);
//! - a stack service (`galera`) beside the three types: `cfy cluster status` prints it as
//!   one more row (issue 14).
//!
//! Processes come from the one test harness (`tests/harness/`). Waits poll with a
//! deadline; nothing sleeps to synchronise. Skips when the venv cannot be made (no Python
//! 2.7.18), and fails instead under `CI=true`.
mod harness;

use harness::{Agent, Collector};
use sr_probes::ProbeConfig;
use sr_protocol::NodeStatus;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `cfy` executable, installing it when missing; `None` (skip) only outside CI.
fn cfy_executable() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cfy/ensure-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if harness::ci() {
            panic!("CI=true: cannot install the cfy 5.0.5.1 CLI:\n{stderr}");
        }
        eprintln!("SKIP: cannot install the cfy 5.0.5.1 CLI:\n{stderr}");
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "ensure-venv.sh printed {path:?}");
    Some(path)
}

/// One `cfy` user: the CLI with a `HOME` of its own.
struct Cfy {
    exe: PathBuf,
    home: PathBuf,
}

/// What one `cfy` command did.
struct Run {
    code: Option<i32>,
    stdout: String,
    /// stdout and stderr together: `cfy` logs to both.
    all: String,
}

impl Cfy {
    fn new(exe: PathBuf, home: PathBuf) -> Cfy {
        std::fs::create_dir_all(&home).unwrap();
        Cfy { exe, home }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.exe)
            .args(args)
            .env("HOME", &self.home)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .output()
            .expect("cfy runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Run {
            code: out.status.code(),
            stdout,
            all,
        }
    }

    /// Runs `args`, asserting exit 0 and no Python traceback; returns the output.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "cfy {}:\n{}", args.join(" "), r.all);
        assert!(
            !r.all.contains("Traceback") && !r.all.contains("Error"),
            "cfy {}:\n{}",
            args.join(" "),
            r.all
        );
        r.all
    }

    /// `cfy profiles use` as the issue shows it: HTTPS, the collector's CA, user `admin`
    /// whose password is the admin token.
    fn use_collector(&self, c: &Collector) -> String {
        let port = c.addr.port().to_string();
        let (token, ca) = (c.token("admin"), c.ca.clone());
        self.ok(&[
            "profiles",
            "use",
            "127.0.0.1",
            "-u",
            "admin",
            "-p",
            &token,
            "-t",
            "default_tenant",
            "--ssl",
            "--rest-port",
            &port,
            "--rest-certificate",
            ca.to_str().unwrap(),
        ])
    }
}

/// The cells of the table row whose first cell is `first` (a `print_data` table).
fn row(out: &str, first: &str) -> Option<Vec<String>> {
    out.lines().find_map(|l| {
        let cells: Vec<String> = l
            .trim()
            .strip_prefix('|')?
            .strip_suffix('|')?
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        (cells.first().map(String::as_str) == Some(first)).then_some(cells)
    })
}

/// The column names of the first table in `out`, to read rows by name.
fn header(out: &str) -> Vec<String> {
    row(out, "name")
        .or_else(|| row(out, "hostname"))
        .or_else(|| row(out, "service"))
        .unwrap_or_else(|| panic!("no table header in:\n{out}"))
}

fn cell(out: &str, first: &str, column: &str) -> String {
    let h = header(out);
    let i = h
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column} in:\n{out}"));
    let r = row(out, first).unwrap_or_else(|| panic!("no row {first} in:\n{out}"));
    r[i].clone()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn start_collector(dir: &Path) -> Collector {
    Collector::start(
        &dir.join("collector"),
        "127.0.0.1:0",
        &["127.0.0.1", "localhost"],
        None,
        &[("shutdown_grace_secs", "1")],
    )
}

#[test]
fn cfy_against_an_empty_cluster() {
    let Some(exe) = cfy_executable() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let collector = start_collector(tmp.path());
    let cfy = Cfy::new(exe, tmp.path().join("home"));

    // 5.0.5 raises KeyError on an empty broker or db list; each list holds the collector
    // itself instead, with one node id: 5.0.5's all-in-one shape, so no cluster profile.
    let out = cfy.use_collector(&collector);
    assert!(out.contains("Using manager 127.0.0.1"), "{out}");

    let out = cfy.ok(&["status"]);
    assert_eq!(
        cell(&out, "Status Reporter Collector", "status"),
        "Active",
        "{out}"
    );

    // No node has reported: every type is Fail, and so is the cluster.
    let out = cfy.ok(&["cluster", "status"]);
    assert!(out.contains("Current cluster status is Fail:"), "{out}");
    for t in ["manager", "db", "broker"] {
        assert_eq!(cell(&out, t, "status"), "Fail", "{out}");
    }
    let r = cfy.run(&["cluster", "status", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.all);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect(&r.all);
    assert_eq!(v["status"], "Fail", "{v}");
    assert_eq!(v["services"]["db"]["nodes"], serde_json::json!({}), "{v}");

    let me = hostname();
    let stand_in = format!("collector-{me}");
    let out = cfy.ok(&["cluster", "managers", "list"]);
    assert_eq!(cell(&out, &me, "node_id"), stand_in, "{out}");
    assert_eq!(cell(&out, &me, "private_ip"), "127.0.0.1", "{out}");
    let out = cfy.ok(&["cluster", "brokers", "list"]);
    assert_eq!(cell(&out, &me, "host"), "127.0.0.1", "{out}");
    assert_eq!(cell(&out, &me, "port"), "5671", "{out}");
    assert_eq!(
        cell(&out, &me, "networks"),
        r#"{"default": "127.0.0.1"}"#,
        "{out}"
    );
    let out = cfy.ok(&["cluster", "db-nodes", "list"]);
    assert_eq!(cell(&out, &me, "host"), "127.0.0.1", "{out}");
    assert_eq!(cell(&out, &me, "is_external"), "False", "{out}");

    let out = cfy.ok(&["cluster", "update-profile"]);
    assert!(out.contains("Profile is up to date with 3 nodes"), "{out}");

    // The stand-in is no reported node: there is nothing to remove.
    let r = cfy.run(&["cluster", "remove", &me]);
    assert_eq!(r.code, Some(1), "{}", r.all);
    assert!(r.all.contains("has reported"), "{}", r.all);
}

/// A critical TCP probe of the collector itself: healthy while the collector runs, and
/// needs no other service on the test host.
fn probe(collector: &Collector) -> Vec<ProbeConfig> {
    vec![ProbeConfig::Tcp(sr_probes::tcp::Config {
        name: "collector".into(),
        address: collector.addr.to_string(),
        timeout_ms: 500,
        critical: true,
    })]
}

#[test]
fn cfy_against_a_reporting_cluster() {
    let Some(exe) = cfy_executable() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let collector = start_collector(tmp.path());
    let nodes = [
        ("manager", "mgr-1"),
        ("db", "db-1"),
        ("db", "db-2"),
        ("broker", "broker-1"),
        ("broker", "broker-2"),
    ];
    let mut agents: Vec<Agent> = nodes
        .iter()
        .map(|(t, name)| {
            let mut a = Agent::for_collector(
                &tmp.path().join(name),
                name,
                t,
                &collector,
                probe(&collector),
                None,
            );
            a.start();
            a
        })
        .collect();
    let (status, _) = collector.wait("every node to report", Duration::from_secs(60), |s| {
        nodes.iter().all(|(t, name)| {
            s.service(t)
                .and_then(|v| v.nodes.get(*name))
                .is_some_and(|n| n.last_seen.is_some())
        })
    });
    let view = status.view.expect("a view");
    let id = |name: &str| {
        agents
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.node_id.clone())
            .unwrap()
    };

    let cfy = Cfy::new(exe, tmp.path().join("home"));
    let out = cfy.use_collector(&collector);
    for t in ["manager", "broker", "db"] {
        assert!(
            out.contains(&format!(
                "Adding cluster node 127.0.0.1 to local profile {t} cluster"
            )),
            "{out}"
        );
    }
    assert!(out.contains("Profile is up to date with 5 nodes"), "{out}");

    cfy.ok(&["status"]);

    // cfy shows the statuses our own reader shows. The db and broker types have no
    // Patroni or RabbitMQ facts here, so their exact verdict is the roll-up's business;
    // the two readers must only agree.
    let out = cfy.ok(&["cluster", "status"]);
    let now = collector.status().view.expect("a view");
    assert!(
        out.contains(&format!("Current cluster status is {}:", now.status))
            || out.contains(&format!("Current cluster status is {}:", view.status)),
        "{out}"
    );
    for t in ["manager", "db", "broker"] {
        let shown = cell(&out, t, "status");
        assert!(
            [view.services[t].status, now.services[t].status]
                .iter()
                .any(|s| s.to_string() == shown),
            "{t}: cfy shows {shown}:\n{out}"
        );
    }
    let r = cfy.run(&["cluster", "status", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.all);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect(&r.all);
    assert_eq!(v["services"]["db"]["nodes"]["db-2"]["node_id"], id("db-2"));
    assert_eq!(v["services"]["manager"]["nodes"]["mgr-1"]["status"], "OK");

    let out = cfy.ok(&["cluster", "managers", "list"]);
    assert_eq!(cell(&out, "mgr-1", "node_id"), id("mgr-1"), "{out}");
    assert_eq!(cell(&out, "mgr-1", "private_ip"), "127.0.0.1", "{out}");
    assert_eq!(cell(&out, "mgr-1", "version"), env!("CARGO_PKG_VERSION"));
    assert!(
        !out.contains("collector-"),
        "no stand-in once a manager reported:\n{out}"
    );

    let out = cfy.ok(&["cluster", "brokers", "list"]);
    for b in ["broker-1", "broker-2"] {
        assert_eq!(cell(&out, b, "node_id"), id(b), "{out}");
        assert_eq!(cell(&out, b, "host"), "127.0.0.1", "{out}");
        assert_eq!(cell(&out, b, "port"), "5671", "{out}");
        assert_eq!(cell(&out, b, "is_external"), "False", "{out}");
    }
    let out = cfy.ok(&["cluster", "brokers", "get", "broker-2"]);
    assert!(out.contains("Broker \"broker-2\":"), "{out}");
    assert!(out.contains(&id("broker-2")), "{out}");
    assert!(out.contains(r#"{"default": "127.0.0.1"}"#), "{out}");
    let r = cfy.run(&["cluster", "brokers", "get", "broker-9"]);
    assert_eq!(r.code, Some(1), "{}", r.all);
    assert!(r.all.contains("broker-9 is not a broker"), "{}", r.all);

    let out = cfy.ok(&["cluster", "db-nodes", "list"]);
    for d in ["db-1", "db-2"] {
        assert_eq!(cell(&out, d, "node_id"), id(d), "{out}");
        assert_eq!(cell(&out, d, "host"), "127.0.0.1", "{out}");
    }

    let out = cfy.ok(&["cluster", "update-profile"]);
    assert!(out.contains("Profile is up to date with 5 nodes"), "{out}");

    // Remove the manager node: stop its agent first, or its next report brings it back.
    agents.retain(|a| a.name != "mgr-1");
    let out = cfy.ok(&["cluster", "remove", "mgr-1"]);
    assert!(
        out.contains("Node mgr-1 was removed successfully!"),
        "{out}"
    );
    let out = cfy.ok(&["cluster", "managers", "list"]);
    assert!(row(&out, "mgr-1").is_none(), "{out}");
    collector.wait("mgr-1 to leave the view", Duration::from_secs(10), |s| {
        s.service("manager")
            .is_some_and(|m| !m.nodes.contains_key("mgr-1"))
    });
    let out = cfy.ok(&["cluster", "update-profile"]);
    assert!(out.contains("Profile is up to date with 5 nodes"), "{out}");
}

/// Issue 14: a stack service (`galera`, fed by a `node` host's facts) sits in `services`
/// beside the three Cloudify types; the unmodified 5.0.5 `cfy cluster status` prints it as
/// one more row and `--json` carries it, and nothing of the three types changes.
#[test]
fn cfy_tolerates_a_stack_service_beside_the_three_types() {
    let Some(exe) = cfy_executable() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut collector = start_collector(tmp.path());
    collector.create_token("node");
    // A galera probe on a socket nothing listens on: the member reports `reachable: false`.
    let galera = ProbeConfig::Galera(sr_probes::galera::Config {
        socket: Some(tmp.path().join("no-mariadb.sock")),
        host: "127.0.0.1".into(),
        port: 3306,
        user: "monitor".into(),
        password: None,
        timeout_ms: 500,
    });
    let mut agent = Agent::for_collector(
        &tmp.path().join("galera-1"),
        "galera-1",
        "node",
        &collector,
        vec![galera],
        None,
    );
    agent.start();
    let (status, _) = collector.wait("a galera service", Duration::from_secs(60), |s| {
        s.service("galera")
            .is_some_and(|g| g.nodes.contains_key("galera-1"))
    });
    let g = status.service("galera").unwrap();
    assert_eq!(
        g.status,
        NodeStatus::Fail,
        "an unreachable MariaDB is never OK"
    );
    // A `node` host is in no Cloudify view and no 5.0.5 list.
    for t in ["manager", "db", "broker"] {
        assert!(status.service(t).unwrap().nodes.is_empty(), "{t}");
    }

    let cfy = Cfy::new(exe, tmp.path().join("home"));
    cfy.use_collector(&collector);
    let out = cfy.ok(&["cluster", "status"]);
    assert_eq!(cell(&out, "galera", "status"), "Fail", "{out}");
    for t in ["manager", "db", "broker"] {
        assert_eq!(cell(&out, t, "status"), "Fail", "no node of {t}: {out}");
    }
    let r = cfy.run(&["cluster", "status", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.all);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect(&r.all);
    assert_eq!(
        v["services"]["galera"]["nodes"]["galera-1"]["status"], "Fail",
        "{v}"
    );
    let out = cfy.ok(&["cluster", "db-nodes", "list"]);
    assert!(!out.contains("galera-1"), "{out}");
}
