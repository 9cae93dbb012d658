//! The `keepalived` probe's pure `interpret`, driven by data dumps and `ip -j addr show`
//! outputs captured from a real keepalived 2.2.7 pair (`fixtures/keepalived-2.2`, captured
//! by `tests/lab/keepalived-ctl.sh DIR dump N` / `addrs N`, see that directory's README) and
//! by hostile variants of them.
//!
//! Every captured scenario has a golden finding (`golden/keepalived/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test keepalived_interpret` refreshes them.
//! The asserts next to each golden say what must hold whatever the golden says.

mod common;

use sr_probes::keepalived::{parse_data, Config, Keepalived, Raw, MAX_DATA};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::NodeStatus;
use std::net::IpAddr;
use std::path::PathBuf;

const VIP: &str = "10.205.0.100";

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keepalived-2.2")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The addresses of an `ip -j addr show` capture (what getifaddrs gives the probe).
fn addrs(name: &str) -> Vec<IpAddr> {
    let v: serde_json::Value = serde_json::from_str(&fixture(&format!("{name}.json"))).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["addr_info"].as_array().unwrap().iter())
        .map(|a| a["local"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn cfg() -> Config {
    serde_json::from_str("{}").unwrap()
}

fn interpret(data: &str, addrs_of: &str) -> Finding {
    let raw = Raw {
        data: Ok(fixture(&format!("{data}.txt"))),
        addrs: Ok(addrs(addrs_of)),
    };
    Keepalived::interpret(&cfg(), &raw)
}

fn state(f: &Finding) -> &str {
    &f.facts.vip.as_ref().unwrap().instances["VI_1"].state
}

fn held(f: &Finding) -> &[String] {
    &f.facts.vip.as_ref().unwrap().held
}

#[test]
fn master_holds_the_vip_backup_does_not() {
    let m = interpret("data-master", "addrs-master");
    common::golden("keepalived", "master", &m);
    assert_eq!(m.status, NodeStatus::Ok, "{:?}", m.reasons);
    assert_eq!(state(&m), "MASTER");
    assert_eq!(held(&m), [VIP]);
    let vi = &m.facts.vip.as_ref().unwrap().instances["VI_1"];
    assert_eq!(
        (vi.priority, vi.vips.as_slice()),
        (Some(150), [VIP.to_string()].as_slice())
    );

    let b = interpret("data-backup", "addrs-backup");
    common::golden("keepalived", "backup", &b);
    assert_eq!(b.status, NodeStatus::Ok, "{:?}", b.reasons);
    assert_eq!(state(&b), "BACKUP");
    assert!(held(&b).is_empty());
}

#[test]
fn after_the_peer_is_terminated_the_backup_is_master() {
    let f = interpret("data-master-after-peer-term", "addrs-split-node2");
    assert_eq!(state(&f), "MASTER");
    assert_eq!(f.status, NodeStatus::Ok);
    // The terminated node: no keepalived, and SIGTERM took its VIP away.
    let dead = Keepalived::interpret(
        &Config {
            vips: vec![VIP.into()],
            ..cfg()
        },
        &Raw {
            data: Err("signal keepalived pid 4680: ESRCH: No such process".into()),
            addrs: Ok(addrs("addrs-after-term")),
        },
    );
    common::golden("keepalived", "terminated", &dead);
    assert_eq!(dead.status, NodeStatus::Fail);
    assert_eq!(dead.reasons[0].code, "vip_unreachable");
    assert!(held(&dead).is_empty());
}

#[test]
fn in_a_split_brain_each_node_is_a_master_holding_the_vip() {
    for n in ["node1", "node2"] {
        let addrs_of = if n == "node1" {
            "addrs-master"
        } else {
            "addrs-split-node2"
        };
        let f = interpret(&format!("data-split-{n}"), addrs_of);
        common::golden("keepalived", &format!("split-{n}"), &f);
        // Each node alone looks healthy: only the roll-up sees two MASTERs.
        assert_eq!(f.status, NodeStatus::Ok, "{n}");
        assert_eq!(state(&f), "MASTER");
        assert_eq!(held(&f), [VIP]);
    }
}

#[test]
fn fault_is_degraded() {
    let f = interpret("data-fault", "addrs-backup");
    common::golden("keepalived", "fault", &f);
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(f.reasons[0].code, "vip_fault");
    assert_eq!(state(&f), "FAULT");
}

#[test]
fn every_truncation_of_a_real_dump_is_refused_or_complete() {
    let text = fixture("data-master.txt");
    let whole = parse_data(&text).unwrap().0;
    let topology_end = text.find("------< VRRP Sockpool").unwrap();
    for end in (0..text.len()).filter(|e| text.is_char_boundary(*e)) {
        match parse_data(&text[..end]) {
            // Past the section after the topology, the instances are whole.
            Ok((v, _)) => {
                assert!(end > topology_end, "cut at {end} accepted");
                assert_eq!(v, whole);
            }
            Err(e) => assert!(end <= topology_end + 7, "cut at {end}: {e}"),
        }
    }
}

#[test]
fn hostile_dumps_are_errors_not_panics() {
    let text = fixture("data-master.txt");
    let cases = [
        text.replace("   State = MASTER\n", ""),
        text.replace("10.205.0.100/24", "10.205.0.999/24"),
        text.replace(
            "------< VRRP Topology >------",
            "------< VRRP Topologie >------",
        ),
        format!("{text}{}", " ".repeat(MAX_DATA)),
        "\u{0}\u{feff}------< VRRP Topology >------\n VRRP Instance = \n".into(),
    ];
    for (i, c) in cases.iter().enumerate() {
        let f = Keepalived::interpret(
            &cfg(),
            &Raw {
                data: Ok(c.clone()),
                addrs: Ok(vec![]),
            },
        );
        assert_eq!(f.status, NodeStatus::Fail, "case {i}");
        assert_eq!(f.reasons[0].code, "vip_unreachable", "case {i}");
        assert!(f.facts.vip.as_ref().unwrap().error.is_some(), "case {i}");
    }
}
