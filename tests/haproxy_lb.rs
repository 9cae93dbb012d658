//! Issue 14: a real HAProxy 2.6 seen end to end in `cluster status` (service `lb`).
//!
//! `harness::lab::haproxy` runs HAProxy on 127.0.0.1 with an admin stats socket in front
//! of three tiny real HTTP servers (backend `app`, checked every 500 ms, `fall 2`). A real
//! agent (the `haproxy` probe on that socket, `backends = ["app"]`) pushes every second to
//! a real collector configured with `[services.lb] required = true`. In the scenarios it
//! reports as a `manager` (HAProxy on a Cloudify manager host), so they also show the
//! scope rule: the HAProxy finding counts in `lb` only, never in the node's `manager` row.
//! Scenarios, each waited for by polling `cluster status --json` (exit code checked
//! against the view):
//! 1. every server up: `lb` OK, and the node's `manager` row OK;
//! 2. one server's process killed: Degraded, the reason naming it (`s2 (DOWN L4CON)`);
//! 3. `set server app/s3 state maint`: shown as MAINT (`lb_server_maint`), still Degraded;
//! 4. every server killed: Fail (`lb_backend_down`), exit code 2; the node's `manager` row
//!    still OK with no reason (the overall status is `lb`'s).
//!
//! And the agent's node-local check endpoint (`check_listen`) used by that real HAProxy:
//! backend `checked` has one server checked by `option httpchk GET /check/haproxy` on the
//! agent's port. It goes UP once the agent answers; a Degraded finding (one `app` server
//! down) still answers 200; when the agent's `haproxy` finding fails (every `app` server
//! down) the endpoint answers 503 and HAProxy marks the server DOWN; a server back makes
//! it UP again.
//!
//! Needs haproxy, socat and python3; skips without them unless `CI=true`, which makes it
//! fail. Timings are printed, never asserted.
mod harness;

use harness::lab::{require_services, HaproxyLab};
use harness::{poll, rest, Collector, Pki, Status};
use sr_probes::ProbeConfig;
use sr_protocol::NodeStatus;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const NODE: &str = "lb-1";

fn lb(s: &Status) -> Option<&sr_protocol::view::ServiceTypeView> {
    s.service("lb")
}
fn lb_is(s: &Status, status: NodeStatus) -> bool {
    lb(s).is_some_and(|l| l.status == status && l.nodes.contains_key(NODE))
}
/// The reason with `code` on the `lb` service, if any.
fn reason(s: &Status, code: &str) -> Option<String> {
    lb(s)?
        .reasons
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.message.clone())
}

fn haproxy_probe(lab: &HaproxyLab) -> ProbeConfig {
    ProbeConfig::Haproxy(sr_probes::haproxy::Config {
        socket: lab.socket(),
        backends: vec!["app".into()],
        timeout_ms: 2000,
    })
}

/// A collector on 127.0.0.1 with `[services.lb] required = true` and a `node` token.
fn lb_collector(dir: &std::path::Path) -> Collector {
    let pki = Pki::new(&dir.join("pki"), "haproxy test CA");
    Collector::for_services(
        dir,
        &pki,
        "127.0.0.1:0",
        None,
        "[services.lb]\nrequired = true\n",
    )
}

/// The collector, and a started agent of `node_type` with the `haproxy` probe (and
/// `check_listen`).
fn collector_and_agent(
    dir: &std::path::Path,
    lab: &HaproxyLab,
    check_listen: Option<&str>,
    node_type: &str,
) -> (Collector, harness::Agent) {
    let collector = lb_collector(&dir.join("collector"));
    let mut agent = harness::Agent::for_collector(
        &dir.join(NODE),
        NODE,
        node_type,
        &collector,
        vec![haproxy_probe(lab)],
        None,
    );
    agent.set_check_listen(check_listen);
    agent.start();
    (collector, agent)
}

#[test]
fn haproxy_backend_scenarios_end_to_end() {
    if !require_services(&["haproxy"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lab = HaproxyLab::start("haproxy").expect("start HAProxy and its servers");
    let (collector, _agent) = collector_and_agent(tmp.path(), &lab, None, "manager");
    let manager_row = |s: &Status| {
        s.service("manager")
            .and_then(|m| m.nodes.get(NODE))
            .map(|n| (n.status, n.reasons.len()))
    };

    // 1. Every server up.
    let (s, t) = collector.wait("lb OK", DEADLINE, |s| {
        lb_is(s, NodeStatus::Ok) && manager_row(s).is_some()
    });
    eprintln!("1. lb OK {:.1}s after the agent's start", t.as_secs_f64());
    assert_eq!(s.code, Some(0));
    assert_eq!(s.view.as_ref().unwrap().status, NodeStatus::Ok);
    assert_eq!(
        s.view.as_ref().unwrap().services.keys().collect::<Vec<_>>(),
        ["lb", "manager"],
        "one report, two services"
    );
    assert_eq!(manager_row(&s), Some((NodeStatus::Ok, 0)));

    // 2. One server killed: Degraded, naming it.
    lab.kill(1).unwrap();
    let (s, t) = collector.wait("lb Degraded naming s2", DEADLINE, |s| {
        lb_is(s, NodeStatus::Degraded)
            && reason(s, "lb_server_down").is_some_and(|m| m.contains("s2 (DOWN"))
    });
    eprintln!("2. s2 killed: Degraded in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(1));
    let m = reason(&s, "lb_server_down").unwrap();
    assert!(m.contains("2 of 3 up"), "{m}");
    assert!(!m.contains("s1") && !m.contains("s3"), "{m}");
    assert_eq!(lb(&s).unwrap().nodes[NODE].status, NodeStatus::Degraded);

    // 3. An operator's MAINT is shown as such.
    lab.set_state(2, "maint").unwrap();
    let (s, t) = collector.wait("s3 shown as MAINT", DEADLINE, |s| {
        reason(s, "lb_server_maint").is_some_and(|m| m.contains("s3 (MAINT)"))
    });
    eprintln!("3. s3 MAINT shown in {:.1}s", t.as_secs_f64());
    assert_eq!(lb(&s).unwrap().status, NodeStatus::Degraded);
    assert!(reason(&s, "lb_server_down").is_some_and(|m| m.contains("s2")));
    assert_eq!(lab.server_status("app", "s3").unwrap(), "MAINT");

    // 4. Every server killed: no server up, Fail.
    lab.set_state(2, "ready").unwrap();
    lab.kill(0).unwrap();
    lab.kill(2).unwrap();
    let (s, t) = collector.wait("lb Fail, no server up", DEADLINE, |s| {
        lb_is(s, NodeStatus::Fail)
            && reason(s, "lb_backend_down").is_some_and(|m| m.contains("no server up of 3"))
    });
    eprintln!("4. every server killed: Fail in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(2));
    assert_eq!(s.view.as_ref().unwrap().status, NodeStatus::Fail);
    // Scope per service: the failing HAProxy is `lb`'s, not the manager node's.
    assert_eq!(
        manager_row(&s),
        Some((NodeStatus::Ok, 0)),
        "the manager row counts the host and the manager's own probes only: {}",
        s.describe()
    );
    assert_eq!(s.service("manager").unwrap().status, NodeStatus::Ok);
}

/// HAProxy's own view of `checked/n1` (the server checked against the agent).
fn wait_n1(lab: &HaproxyLab, want: &str) -> Duration {
    poll::poll(DEADLINE, Duration::from_millis(100), || {
        let got = lab
            .server_status("checked", "n1")
            .unwrap_or_else(|e| e.to_string());
        if got == want {
            Ok(())
        } else {
            Err(got)
        }
    })
    .unwrap_or_else(|last| panic!("checked/n1 never {want}; last {last}"))
    .1
}

#[test]
fn haproxy_httpchk_follows_the_agents_check_endpoint() {
    if !require_services(&["haproxy"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lab = HaproxyLab::start("haproxy").expect("start HAProxy and its servers");
    let listen = format!("127.0.0.1:{}", lab.check_port());
    let (collector, _agent) = collector_and_agent(tmp.path(), &lab, Some(&listen), "node");
    let url = |name: &str| format!("http://{listen}/check/{name}");

    // Nothing answered the check before the agent: DOWN, then UP once it answers OK.
    let t = wait_n1(&lab, "UP");
    eprintln!(
        "check: n1 UP {:.1}s after the agent's start",
        t.as_secs_f64()
    );
    let r = rest::get(&url("haproxy"), None).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "haproxy: OK\n"));
    let r = rest::get(&url("nope"), None).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.contains("probes: haproxy"), "{}", r.body);

    // Degraded still serves: 200 with the reason.
    lab.kill(1).unwrap();
    collector.wait("lb Degraded", DEADLINE, |s| lb_is(s, NodeStatus::Degraded));
    let r = rest::get(&url("haproxy"), None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Degraded: lb_server_down"), "{}", r.body);
    let r = rest::get(&format!("{}?strict", url("haproxy")), None).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);

    // The agent's finding fails: 503, and HAProxy marks the server DOWN.
    lab.kill(0).unwrap();
    lab.kill(2).unwrap();
    let t = wait_n1(&lab, "DOWN");
    eprintln!(
        "check: n1 DOWN {:.1}s after the last app server was killed",
        t.as_secs_f64()
    );
    let r = rest::get(&url("haproxy"), None).unwrap();
    assert_eq!(r.status, 503);
    assert!(
        r.body.starts_with("haproxy: Fail: lb_backend_down"),
        "{}",
        r.body
    );
    let stat = lab.cmd("show stat").unwrap();
    let n1 = stat.lines().find(|l| l.starts_with("checked,n1,")).unwrap();
    assert!(
        n1.contains("L7STS"),
        "HAProxy saw the 503 as the check's status: {n1}"
    );

    // A server back: the finding is Degraded again, the check 200, the server UP.
    lab.start_server(0).unwrap();
    let t = wait_n1(&lab, "UP");
    eprintln!(
        "check: n1 UP again {:.1}s after s1 came back",
        t.as_secs_f64()
    );
}
