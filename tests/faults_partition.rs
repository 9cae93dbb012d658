//! Issue 7, fault 1b: three collectors and five agents, one collector partitioned from
//! every agent by a real network cut, then healed. Afterwards every collector's view is
//! the same, and the returning collector holds every status transition that happened
//! while it was away. Prints `FIGURE name=value` lines that RELIABILITY.md quotes.
//!
//! Topology: collectors A and B listen on 127.0.0.1; collector C runs (`ip netns exec`)
//! inside its own network namespace `srf<pid>-c`, reachable from the root namespace over
//! one veth pair with a private /30 derived from this process id (10.204.x.y, so
//! concurrent runs never collide). The five agents run in the root namespace, push to all
//! three, and each watches a TCP listener this test opens and closes to force status
//! changes. The cut is the namespace side of the veth going down: the root side keeps its
//! route (no carrier, `ignore_routes_with_linkdown` is off by default), so pushes to C fall
//! into a black hole and time out, as in a real partition. An `unreachable` route with a
//! high metric for the same /30 guarantees that, whatever the kernel does with the
//! connected route, nothing addressed to the test network ever leaves by the default route.
//!
//! Only the namespace and link this test creates are touched; they are deleted at the end,
//! also on panic (`Drop`), and leftovers of a killed run (its pid gone) are removed first.
//! Needs root and iproute2: skips without them, unless `CI=true`, which makes it fail.
//! Waits poll with deadlines; timings are printed, never asserted.

mod harness;

use harness::fixtures::*;
use harness::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NS_PREFIX: &str = "srf";
/// How long the partition lasts: long enough for several forced status changes.
const PARTITION: Duration = Duration::from_secs(20);
const FREQ: u32 = 1;

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(ip_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running ip {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// SIGKILL every process in `ns` (each was started by this test), then delete it; the
/// veth pair goes with it.
fn destroy_ns(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pids: Vec<i32> = ip(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Err(e) = ip(&["netns", "del", ns]) {
        eprintln!("faults_partition: {e}");
    }
}

/// The pid in one of our names (`srf<pid>-c` or `srf<pid>`), when its process is gone.
fn dead_owner(name: &str) -> Option<u32> {
    name.strip_prefix(NS_PREFIX)
        .map(|rest| rest.split('-').next().unwrap_or(rest))
        .and_then(|pid| pid.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && !pid_alive(pid))
}

/// Removes what a killed run left: its namespace (and with it the veth pair) and its
/// fallback route. Only names and routes of our own pattern are touched.
fn remove_leftovers() {
    for ns in ip(&["netns", "list"]).unwrap_or_default().lines() {
        let ns = ns.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = dead_owner(ns) {
            eprintln!("faults_partition: removing {ns}, left by a run that no longer exists");
            destroy_ns(ns);
            let _ = ip(&[
                "route",
                "del",
                "unreachable",
                &net_of(pid),
                "metric",
                "4000",
            ]);
        }
    }
    for line in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
        // "7: srf123@if2: <...>"
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or_default();
        if dead_owner(name).is_some() {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// The /30 of a run: 10.204.a.b/30, from its pid, so concurrent runs differ and a
/// killed run's fallback route can be found again.
fn subnet(pid: u32) -> [u8; 3] {
    let block = pid % 16384;
    [204, (block / 64) as u8, ((block % 64) * 4) as u8]
}

fn net_of(pid: u32) -> String {
    let [b, c, d] = subnet(pid);
    format!("10.{b}.{c}.{d}/30")
}

/// Collector C's host: a namespace joined to the root namespace by one veth pair.
struct Host {
    ns: String,
    veth: String,
    net: String,
    root_ip: String,
    ns_ip: String,
    route: bool,
    made: bool,
}

impl Host {
    fn create() -> Result<Host, String> {
        remove_leftovers();
        let pid = std::process::id();
        let [b, c, d] = subnet(pid);
        let mut h = Host {
            ns: format!("{NS_PREFIX}{pid}-c"),
            veth: format!("{NS_PREFIX}{pid}"),
            net: net_of(pid),
            root_ip: format!("10.{b}.{c}.{}", d + 1),
            ns_ip: format!("10.{b}.{c}.{}", d + 2),
            route: false,
            made: false,
        };
        ip(&["netns", "add", &h.ns])?;
        h.made = true;
        let ns = h.ns.clone();
        ip(&[
            "link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["addr", "add", &format!("{}/30", h.root_ip), "dev", &h.veth])?;
        ip(&["link", "set", &h.veth, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/30", h.ns_ip),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        // Never the default route for the test network, even if the connected one goes.
        ip(&["route", "add", "unreachable", &h.net, "metric", "4000"])?;
        h.route = true;
        Ok(h)
    }

    /// Cuts or heals C's only link, on the namespace side.
    fn set_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.route {
            let _ = ip(&["route", "del", "unreachable", &self.net, "metric", "4000"]);
        }
        if self.made {
            destroy_ns(&self.ns);
        }
        // Normally gone with the namespace; this is for a half-made pair.
        let _ = ip(&["link", "del", &self.veth]);
    }
}

/// `GET /api/v3.1/cluster-status` at the collector's own address (C's is in its
/// namespace). An error is "not yet": right after the heal C can be briefly unreachable
/// (the root side's neighbour entry for it failed during the cut), and the waits poll on.
async fn view(col: &Collector) -> Result<Value, String> {
    let r = col
        .client()
        .get(
            &format!("https://{}/api/v3.1/cluster-status", col.addr),
            &[(sr_protocol::TOKEN_HEADER, &col.token("admin"))],
            Duration::from_secs(5),
            16 << 20,
        )
        .await
        .map_err(|e| format!("cluster status at {}: {e}", col.addr))?;
    assert_eq!(
        r.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    Ok(serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn partitioned_collector_converges_and_holds_every_transition_after_heal() {
    let host = match Host::create() {
        Ok(h) => h,
        Err(e) if !ci() => {
            eprintln!("skipped: network namespaces unavailable (needs root and iproute2): {e}");
            return;
        }
        Err(e) => panic!("CI=true: network namespaces are required: {e}"),
    };
    let tmp = tempfile::tempdir().unwrap().keep_if_asked();
    let d = tmp.path();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // One server certificate for all three, naming C's address too.
    let pki = Pki::with_sans(
        &d.join("pki"),
        "partition-suite CA",
        &["localhost", "127.0.0.1", &host.ns_ip],
    );

    // Three collectors sharing one token set: B and C start from a copy of A's store.
    let mut a = Collector::init(&d.join("a"), &pki, "127.0.0.1:0");
    let mut b = Collector::init(&d.join("b"), &pki, "127.0.0.1:0");
    let mut c = Collector::init(&d.join("c"), &pki, &format!("{}:0", host.ns_ip));
    for other in [&mut b, &mut c] {
        share_tokens(&a, other);
    }
    for col in [&a, &b, &c] {
        // Flap damping would hold a toggled node at Degraded; here every change must show.
        col.set("flap_threshold", "1000");
    }
    a.spawn();
    b.spawn();
    c.in_netns(&host.ns);
    c.spawn();
    assert_eq!(c.addr.ip().to_string(), host.ns_ip);
    let managers: Vec<String> = [&a, &b, &c].iter().map(|c| c.addr.to_string()).collect();

    // Five agents in the root namespace, each watching its own target endpoint.
    let (mut targets, mut agents) = start_fleet(&rt, d, &pki.ca, &a, FREQ, &managers);
    let nodes = fleet_nodes();
    // Every view, or `None` (with the reason printed) while one collector does not answer.
    let views = |cols: &[&Collector]| -> Option<Vec<Value>> {
        rt.block_on(async {
            let mut out = Vec::with_capacity(cols.len());
            for col in cols {
                match view(col).await {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        eprintln!("not yet: {e}");
                        return None;
                    }
                }
            }
            Some(out)
        })
    };
    wait_for("every collector to see five OK nodes", DEADLINE, || {
        views(&[&a, &b, &c])?.iter().all(fleet_ok).then_some(())
    });
    // Transitions C already holds from the start-up (first reports) are not "missed".
    wait_for("C to hold every transition A holds", DEADLINE, || {
        transitions(&a.state(), &nodes)
            .is_subset(&transitions(&c.state(), &nodes))
            .then_some(())
    });

    // The cut: C's link goes down while it keeps running. Statuses change meanwhile.
    host.set_link(false);
    let cut = Instant::now();
    let mut rounds = 0;
    while cut.elapsed() < PARTITION {
        for i in [0, 3] {
            targets[i].close();
        }
        wait_for("A and B to see db1 and br1 fail", DEADLINE, || {
            views(&[&a, &b])?
                .iter()
                .all(|v| {
                    let s = statuses(v);
                    s["db1"].0 == "Fail" && s["br1"].0 == "Fail"
                })
                .then_some(())
        });
        for i in [0, 3] {
            targets[i].open();
        }
        wait_for("A and B to see db1 and br1 OK again", DEADLINE, || {
            views(&[&a, &b])?.iter().all(fleet_ok).then_some(())
        });
        rounds += 1;
    }
    // Each round fails and heals two nodes: at least four node transitions.
    let forced = rounds * 4;
    let partition_ms = cut.elapsed().as_millis();
    // What A stored that C has not: the transitions of the partition. C's store is read
    // while it still runs, cut off; if the cut leaked, this set would be empty.
    let during: BTreeSet<_> = missing_transitions(&a.state(), &c.state(), &nodes)
        .into_iter()
        .collect();
    assert!(
        during.len() >= forced,
        "{forced} status changes during the partition but only {} transitions \
         missing at C before the heal",
        during.len()
    );
    assert!(c.alive(), "C died");

    host.set_link(true);
    let healed = Instant::now();
    // Wall time of the heal, to line up with the agents' and collectors' logs.
    eprintln!("healed at unix ms {}", now_ms());
    // When each half of convergence was first seen, for the figures.
    let (mut views_agree_ms, mut transitions_held_ms) = (None, None);
    let converged_ms = wait_for(
        "every view to agree and C to hold every transition of the partition",
        DEADLINE,
        || {
            let v = views(&[&a, &b, &c])?;
            let (sa, sb, sc) = (statuses(&v[0]), statuses(&v[1]), statuses(&v[2]));
            let same = sa == sb && sb == sc && v.iter().all(fleet_ok);
            let held = during.is_subset(&transitions(&c.state(), &nodes));
            let now = healed.elapsed().as_millis();
            if same {
                views_agree_ms.get_or_insert(now);
            }
            if held {
                transitions_held_ms.get_or_insert(now);
            }
            (same && held).then_some(now)
        },
    );
    let missing = missing_transitions(&a.state(), &c.state(), &nodes);
    assert!(
        missing.is_empty(),
        "C misses transitions A holds: {missing:?}"
    );
    eprintln!("FIGURE partition_ms={partition_ms}");
    eprintln!("FIGURE partition_status_changes_forced={forced}");
    eprintln!("FIGURE partition_transitions_during={}", during.len());
    eprintln!("FIGURE partition_transitions_missing={}", missing.len());
    eprintln!("FIGURE partition_convergence_ms={converged_ms} (reporting interval {FREQ} s)");
    eprintln!(
        "FIGURE partition_views_agree_ms={} partition_transitions_held_ms={}",
        views_agree_ms.unwrap_or(converged_ms),
        transitions_held_ms.unwrap_or(converged_ms)
    );

    for ag in &mut agents {
        assert!(ag.alive(), "an agent died:\n{}", ag.log());
    }
    for t in &mut targets {
        t.close();
    }
    for col in [&a, &b, &c] {
        assert!(!col.log().contains("panicked"), "{}", col.log());
    }
    // C (in the namespace) stops before the namespace goes.
    drop(agents);
    c.kill9();
}
