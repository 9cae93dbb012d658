//! Smoke test of the real-cluster harness (`tests/harness/lab/` + `tests/lab/*.sh`):
//! a Patroni ×3 + etcd + PostgreSQL 15 cluster with a failover, a TLS Patroni cluster, and a
//! RabbitMQ ×3 cluster. One test function per cluster; the three run in parallel.
//!
//! Skips (prints `SKIP: ...`) when the services are not installed, fails under `CI=true`.
//! Run: `cargo test --test lab_smoke -- --nocapture`
mod harness;

use harness::lab::{
    require_services, PatroniCluster, PatroniOpts, RabbitCluster, RabbitOpts, MONITOR_USER,
};
use harness::wait_until;
use std::time::{Duration, Instant};

#[test]
fn patroni_cluster_failover() {
    if !require_services(&["patroni", "etcd", "postgres"]) {
        return;
    }
    let c = PatroniCluster::start(PatroniOpts::default()).expect("start patroni cluster");
    eprintln!("patroni: started in {:.1}s", c.started_in().as_secs_f64());

    let leader = c.leader().expect("a leader");
    let r = c
        .rest_get(leader, "/patroni")
        .expect("GET /patroni on the leader");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"].as_str(), Some("master"), "{}", r.body);
    assert_eq!(r.json()["state"].as_str(), Some("running"), "{}", r.body);
    for i in (0..c.members()).filter(|&i| i != leader) {
        let r = c
            .rest_get(i, "/patroni")
            .expect("GET /patroni on a replica");
        assert_eq!(r.json()["role"].as_str(), Some("replica"), "{}", r.body);
        // `/primary` answers 503 with the same JSON body on a replica
        assert_eq!(c.rest_get(i, "/primary").unwrap().status, 503);
    }
    // the monitoring role exists everywhere, can log in, and is not a superuser
    for i in 0..c.members() {
        let q = format!("SELECT rolsuper, pg_has_role('{MONITOR_USER}', 'pg_monitor', 'member') FROM pg_roles WHERE rolname = '{MONITOR_USER}'");
        assert_eq!(c.psql(i, &q).unwrap(), "f|t", "member {i}");
    }
    let etcd = harness::rest::get(&format!("{}/health", c.etcd_url()), None).unwrap();
    assert_eq!(
        (etcd.status, etcd.json()["health"].as_str()),
        (200, Some("true")),
        "{}",
        etcd.body
    );

    // failover: SIGKILL the leader's Patroni; another member must take over within 40 s
    let t0 = Instant::now();
    c.kill_patroni(leader).expect("kill leader's patroni");
    let new = c
        .wait_new_leader(leader, Duration::from_secs(40))
        .expect("new leader within 40 s");
    eprintln!(
        "patroni: {} killed, new leader {} after {:.1}s",
        c.member_name(leader),
        c.member_name(new),
        t0.elapsed().as_secs_f64()
    );
    // The leader key moves before the promotion finishes: `/patroni` says `replica`
    // until PostgreSQL has left recovery, so poll for the role with a deadline.
    let mut last = String::new();
    let promoted = wait_until(
        "the new leader to report role master",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let r = c.rest_get(new, "/patroni")?;
            let is_master = r.json()["role"].as_str() == Some("master");
            last = r.body;
            Ok(is_master)
        },
    );
    assert!(promoted.is_ok(), "{promoted:?}: {last}");
}

#[test]
fn patroni_tls_client_cert() {
    if !require_services(&["patroni", "etcd", "postgres"]) {
        return;
    }
    let c = PatroniCluster::start(PatroniOpts {
        tls: true,
        ..Default::default()
    })
    .expect("start TLS patroni cluster");
    eprintln!(
        "patroni (TLS): started in {:.1}s",
        c.started_in().as_secs_f64()
    );
    let tls = c.tls().expect("TLS material");
    for f in [
        &tls.ca_cert,
        &tls.client_cert,
        &tls.client_key,
        &tls.wrong_ca_cert,
        &tls.wrong_client_cert,
    ] {
        assert!(f.is_file(), "{}", f.display());
    }
    assert!(c.rest_url(0).starts_with("https://127.0.0.1:"));
    let leader = c.leader().expect("a leader");
    // with the harness' client certificate (through curl)
    let r = c.rest_get(leader, "/patroni").unwrap();
    assert_eq!(
        (r.status, r.json()["role"].as_str()),
        (200, Some("master")),
        "{}",
        r.body
    );
    // plain http to the https port gets no HTTP answer
    assert!(harness::rest::get(
        &format!("http://127.0.0.1:{}/patroni", c.rest_port(leader)),
        None
    )
    .is_err());
    // verify_client: required -> no cert / a cert from another CA is rejected; a wrong CA
    // fails server verification
    let url = format!("{}/patroni", c.rest_url(leader));
    let curl = |extra: &[&std::path::Path]| -> String {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"]);
        let names = ["--cacert", "--cert", "--key"];
        for (n, p) in names.iter().zip(extra) {
            cmd.arg(n).arg(p);
        }
        String::from_utf8_lossy(&cmd.arg(&url).output().unwrap().stdout).into_owned()
    };
    assert_eq!(
        curl(&[&tls.ca_cert, &tls.client_cert, &tls.client_key]),
        "200"
    );
    assert_eq!(
        curl(&[&tls.ca_cert]),
        "000",
        "no client cert must be refused"
    );
    assert_eq!(
        curl(&[&tls.ca_cert, &tls.wrong_client_cert, &tls.wrong_client_key]),
        "000"
    );
    assert_eq!(
        curl(&[&tls.wrong_ca_cert, &tls.client_cert, &tls.client_key]),
        "000"
    );
}

#[test]
fn rabbitmq_cluster_nodes() {
    if !require_services(&["rabbitmq"]) {
        return;
    }
    let c = RabbitCluster::start(RabbitOpts::default()).expect("start rabbitmq cluster");
    eprintln!(
        "rabbitmq: started in {:.1}s, nodes {:?}",
        c.started_in().as_secs_f64(),
        c.node_names()
    );
    for i in 0..c.nodes() {
        // as the monitoring user, from every node
        let r = c
            .mgmt_get(i, "/api/nodes?columns=name,running")
            .expect("GET /api/nodes");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body.matches("\"running\":true").count(), 3, "{}", r.body);
        for name in c.node_names() {
            assert!(
                r.body.contains(&format!("\"name\":\"{name}\"")),
                "{name} missing: {}",
                r.body
            );
        }
        let who = c.mgmt_get(i, "/api/whoami").unwrap();
        assert_eq!(
            who.json()["name"].as_str(),
            Some(MONITOR_USER),
            "{}",
            who.body
        );
        assert!(who.body.contains("monitoring"), "{}", who.body);
        let alarms = c.mgmt_get(i, "/api/health/checks/local-alarms").unwrap();
        assert_eq!(
            (alarms.status, alarms.json()["status"].as_str()),
            (200, Some("ok")),
            "{}",
            alarms.body
        );
    }
    // wrong password -> 401
    assert_eq!(
        c.mgmt_get_as(0, "/api/nodes", MONITOR_USER, "wrong")
            .unwrap()
            .status,
        401
    );
    // the CLI works against our private epmd
    let status = c
        .ctl(0, &["cluster_status", "--formatter", "json"])
        .unwrap();
    assert!(status.contains(c.node_name(2)), "{status}");
}
