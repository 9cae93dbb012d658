//! The `pacemaker` probe's pure `interpret`, driven by `crm_mon --output-as=xml` documents
//! captured from a real two-node Pacemaker 2.1.5 cluster (`fixtures/pacemaker-2.1`, captured
//! by `tests/lab/pacemaker-ctl.sh DIR xml N`, see that directory's README) and by hostile
//! variants of them.
//!
//! Every captured scenario has a golden finding (`golden/pacemaker/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test pacemaker_interpret` refreshes them.
//! The asserts next to each golden say what must hold whatever the golden says.

mod common;

use sr_probes::pacemaker::{parse_xml, Config, Pacemaker, Parsed, Raw, MAX_OUTPUT};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::facts::PacemakerFacts;
use sr_protocol::NodeStatus;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pacemaker-2.1")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cfg(me: &str) -> Config {
    Config {
        command: vec!["crm_mon".into()],
        node_name: Some(me.into()),
        timeout_ms: 5000,
    }
}

fn ran(code: i32, stdout: Vec<u8>) -> Raw {
    Raw::Ran {
        code: Some(code),
        stdout,
        stderr: String::new(),
        host: None,
    }
}

/// Interprets fixture `name` (`<scenario>-<node>.xml`) as node `me` saw it.
fn interpret(name: &str, me: &str) -> Finding {
    Pacemaker::interpret(&cfg(me), &ran(0, fixture(&format!("{name}.xml"))))
}

fn facts(f: &Finding) -> &PacemakerFacts {
    f.facts
        .pacemaker
        .as_ref()
        .expect("pacemaker facts are always written")
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn a_healthy_pair_is_ok_with_every_resource_running() {
    for me in ["pc1", "pc2"] {
        let f = interpret(&format!("healthy-{me}"), me);
        common::golden("pacemaker", &format!("healthy-{me}"), &f);
        assert_eq!(f.status, NodeStatus::Ok, "{me}: {:?}", f.reasons);
        let p = facts(&f);
        assert_eq!(
            (p.with_quorum, p.dc.as_deref(), p.dc_present),
            (Some(true), Some("pc2"), Some(true))
        );
        assert_eq!(p.is_dc(), me == "pc2");
        assert_eq!(
            (p.maintenance_mode, p.stonith_enabled),
            (Some(false), Some(false))
        );
        assert!(p.nodes.values().all(|n| n.online && !n.standby));
        assert_eq!(p.resources.len(), 3, "dummy and two dummy-clone copies");
        assert!(p.resources.iter().all(|r| r.running()));
        let copies: Vec<&str> = p
            .resources
            .iter()
            .filter(|r| r.unit() == "dummy-clone")
            .flat_map(|r| r.nodes.iter().map(String::as_str))
            .collect();
        assert_eq!(copies, ["pc1", "pc2"]);
        assert_eq!(p.resources[0].agent.as_deref(), Some("ocf:pacemaker:Dummy"));
        assert!(p.failed_actions.is_empty() && p.fail_counts.is_empty());
        assert!(!p.truncated);
    }
}

#[test]
fn failed_actions_and_fail_counts_name_resource_and_node() {
    let f = interpret("failed-pc1", "pc1");
    common::golden("pacemaker", "failed-pc1", &f);
    // The node itself is fine: the failures are the roll-up's to judge, once for all.
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let p = facts(&f);
    assert_eq!(p.failed_actions.len(), 1);
    let a = &p.failed_actions[0];
    assert_eq!(
        (a.resource.as_str(), a.task.as_str(), a.node.as_str()),
        ("dummy", "asyncmon", "pc1")
    );
    assert_eq!(a.reason.as_deref(), Some("Simulated failure"));
    assert_eq!(p.fail_counts.len(), 1);
    assert_eq!(
        (
            p.fail_counts[0].resource.as_str(),
            p.fail_counts[0].node.as_str()
        ),
        ("dummy", "pc1")
    );
    assert!(p.fail_counts[0].count >= 1);

    let f = interpret("failed-clone-pc2", "pc2");
    common::golden("pacemaker", "failed-clone-pc2", &f);
    let p = facts(&f);
    let named: Vec<(&str, &str)> = p
        .failed_actions
        .iter()
        .map(|a| (a.resource.as_str(), a.node.as_str()))
        .collect();
    assert_eq!(named, [("dummy", "pc1"), ("dummy-c", "pc2")]);
    assert_eq!(p.fail_counts.len(), 2);
}

#[test]
fn standby_maintenance_disabled_and_a_lost_peer_are_read() {
    let f = interpret("standby-pc2", "pc2");
    common::golden("pacemaker", "standby-pc2", &f);
    let p = facts(&f);
    assert!(p.my_node().unwrap().standby);
    assert_eq!(
        f.status,
        NodeStatus::Ok,
        "standby is the roll-up's maintenance"
    );
    assert_eq!(p.role().as_deref(), Some("DC,standby"));
    let stopped: Vec<_> = p.resources.iter().filter(|r| !r.running()).collect();
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        (stopped[0].id.as_str(), stopped[0].unit()),
        ("dummy-c", "dummy-clone")
    );

    let f = interpret("maintenance-mode-pc1", "pc1");
    common::golden("pacemaker", "maintenance-mode-pc1", &f);
    assert_eq!(facts(&f).maintenance_mode, Some(true));

    let f = interpret("disabled-pc1", "pc1");
    common::golden("pacemaker", "disabled-pc1", &f);
    let r = &facts(&f).resources[0];
    assert_eq!(
        (r.id.as_str(), r.role.as_str(), r.target_role.as_deref()),
        ("dummy", "Stopped", Some("Stopped"))
    );
    assert!(r.held() && !r.running());

    let f = interpret("peer-killed-pc1", "pc1");
    common::golden("pacemaker", "peer-killed-pc1", &f);
    assert_eq!(f.status, NodeStatus::Ok, "pc1 itself is fine");
    let p = facts(&f);
    assert!(!p.nodes["pc2"].online);
    assert_eq!((p.with_quorum, p.dc.as_deref()), (Some(true), Some("pc1")));
}

#[test]
fn not_connected_is_unreachable_with_crm_mons_own_words() {
    let xml = fixture("not-connected.xml");
    assert!(matches!(parse_xml(&xml), Ok(Parsed::Refused(_))));
    let f = Pacemaker::interpret(&cfg("pc1"), &ran(102, xml));
    common::golden("pacemaker", "not-connected", &f);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["pacemaker_unreachable"]);
    let why = facts(&f).error.as_deref().unwrap();
    assert!(
        why.contains("102") && why.contains("Not connected") && why.contains("Connection refused"),
        "{why}"
    );
}

#[test]
fn a_node_without_quorum_or_dc_is_fail() {
    let xml = String::from_utf8(fixture("healthy-pc1.xml")).unwrap();
    let lost = xml.replace(
        r#"present="true" version="2.1.5-a3f44794f94" name="pc2" id="2" with_quorum="true""#,
        r#"present="true" version="2.1.5-a3f44794f94" name="pc1" id="1" with_quorum="false""#,
    );
    assert_ne!(lost, xml);
    let f = Pacemaker::interpret(&cfg("pc1"), &ran(0, lost.into_bytes()));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["pacemaker_no_quorum"]);
    assert_eq!(
        f.services["Pacemaker"].status,
        sr_protocol::ServiceStatus::Inactive
    );

    let no_dc = xml.replace(
        r#"<current_dc present="true" version="2.1.5-a3f44794f94" name="pc2" id="2" with_quorum="true" mixed_version="false"/>"#,
        r#"<current_dc present="false"/>"#,
    );
    let f = Pacemaker::interpret(&cfg("pc1"), &ran(0, no_dc.into_bytes()));
    assert_eq!(
        f.status,
        NodeStatus::Fail,
        "quorum unknown is never assumed"
    );
    assert_eq!(codes(&f), ["pacemaker_no_quorum", "pacemaker_no_dc"]);
}

/// Every prefix of a real document is refused (the root is never closed) or is the whole.
#[test]
fn every_cut_of_a_real_document_is_refused() {
    for name in [
        "healthy-pc1.xml",
        "failed-clone-pc2.xml",
        "not-connected.xml",
    ] {
        let xml = fixture(name);
        let whole = parse_xml(&xml).unwrap();
        let end_of_root = xml.len() - b"</pacemaker-result>\n".len();
        for end in 0..xml.len() {
            match parse_xml(&xml[..end]) {
                Ok(p) => {
                    assert!(
                        end >= end_of_root + b"</pacemaker-result>".len(),
                        "{name} cut at {end} accepted"
                    );
                    assert_eq!(p, whole);
                }
                Err(e) => assert!(!e.is_empty()),
            }
            // And whatever the cut, interpret says Fail with a reason, or the whole status.
            let f = Pacemaker::interpret(&cfg("pc1"), &ran(0, xml[..end].to_vec()));
            if end < end_of_root {
                assert_eq!(f.status, NodeStatus::Fail, "{name} cut at {end}");
                assert_eq!(codes(&f), ["pacemaker_unreachable"]);
            }
        }
    }
}

#[test]
fn hostile_documents_are_errors_not_panics() {
    let xml = String::from_utf8(fixture("healthy-pc1.xml")).unwrap();
    let deep = format!(
        "<pacemaker-result>{}{}</pacemaker-result>",
        "<a>".repeat(100),
        "</a>".repeat(100)
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        (
            "<html><body>502</body></html>".into(),
            "root element <html>",
        ),
        (xml.replace("online=\"true\"", "online=\"yes\""), "online="),
        (xml.replace("</nodes>", "</nodez>"), "malformed"),
        (
            xml.replace("<summary>", "<!DOCTYPE x [<!ENTITY a \"b\">]><summary>"),
            "DOCTYPE",
        ),
        (format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{xml}"), "DOCTYPE"),
        (
            xml.replace(
                "name=\"pc1\" id=\"1\" online",
                "name=\"&bogus;\" id=\"1\" online",
            ),
            "attribute",
        ),
        (
            xml.replace("fail-count", "x").replace(
                "migration-threshold=\"1000000\"",
                "migration-threshold=\"1000000\" fail-count=\"-3\"",
            ),
            "fail-count",
        ),
        (deep, "nested deeper"),
        (format!("{xml}<pacemaker-result/>"), "second root"),
        (
            xml.replace("<summary>", "").replace("</summary>", ""),
            "no <summary>",
        ),
        (
            "<crm_mon><summary><current_dc present=\"maybe\"/></summary></crm_mon>".into(),
            "present=",
        ),
    ];
    for (i, (c, says)) in cases.iter().enumerate() {
        let e = match parse_xml(c.as_bytes()) {
            Err(e) => e,
            Ok(p) => panic!("case {i} accepted: {p:?}"),
        };
        assert!(e.contains(says), "case {i}: {e}");
        let f = Pacemaker::interpret(&cfg("pc1"), &ran(0, c.clone().into_bytes()));
        assert_eq!(f.status, NodeStatus::Fail, "case {i}");
        assert_eq!(codes(&f), ["pacemaker_unreachable"], "case {i}");
        assert!(facts(&f).error.as_ref().unwrap().len() <= 260, "case {i}");
    }
    // Not UTF-8.
    assert!(parse_xml(b"<crm_mon>\xff</crm_mon>")
        .unwrap_err()
        .contains("UTF-8"));
    // Escaped attribute values are read as text.
    let amp = xml.replace(
        "name=\"pc1\" id=\"1\" online",
        "name=\"pc&amp;1\" id=\"1\" online",
    );
    let Ok(Parsed::Status(p)) = parse_xml(amp.as_bytes()) else {
        panic!("escaped name refused")
    };
    assert!(p.nodes.contains_key("pc&1"));
    // A failed run with a stderr line says it.
    let f = Pacemaker::interpret(
        &cfg("pc1"),
        &Raw::Ran {
            code: Some(1),
            stdout: vec![],
            stderr: "\nnsenter: cannot open /proc/999/ns/net: No such file\n".into(),
            host: None,
        },
    );
    assert!(
        facts(&f)
            .error
            .as_deref()
            .unwrap()
            .starts_with("exit code 1: nsenter: cannot open"),
        "{:?}",
        facts(&f).error
    );
}

/// An oversized document is refused whole; a huge cluster is cut to the bound with every
/// problem kept, and says so.
#[test]
fn oversized_documents_and_huge_clusters_are_bounded() {
    let big = vec![b' '; MAX_OUTPUT + 1];
    assert!(parse_xml(&big).unwrap_err().contains("larger than"));

    let healthy = r#"<resource id="r{i}" resource_agent="ocf:pacemaker:Dummy" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" failure_ignored="false" nodes_running_on="1"><node name="pc1" id="1" cached="true"/></resource>"#;
    let mut resources: String = (0..3000)
        .map(|i| healthy.replace("{i}", &i.to_string()))
        .collect();
    resources.push_str(r#"<resource id="broken" resource_agent="ocf:pacemaker:Dummy" role="Stopped" active="false" orphaned="false" blocked="false" managed="true" failed="true" failure_ignored="false" nodes_running_on="0"/>"#);
    let failures: String = (0..200)
        .map(|i| format!(r#"<failure op_key="r{i}_monitor_10000" node="pc1" exitstatus="error" exitreason="x" exitcode="1" call="1" status="complete" task="monitor"/>"#))
        .collect();
    let xml = String::from_utf8(fixture("healthy-pc1.xml"))
        .unwrap()
        .replace(
            "</resources>",
            &format!("{resources}</resources><failures>{failures}</failures>"),
        );
    let Ok(Parsed::Status(p)) = parse_xml(xml.as_bytes()) else {
        panic!("refused")
    };
    assert!(p.truncated);
    assert!(p.resources.len() <= PacemakerFacts::MAX_ENTRIES);
    assert!(p.failed_actions.len() <= PacemakerFacts::MAX_ENTRIES);
    assert!(
        p.resources.iter().any(|r| r.id == "broken"),
        "the failed resource is never the one dropped"
    );
    let size = serde_json::to_vec(&p).unwrap().len();
    assert!(size <= sr_probes::pacemaker::FACTS_BUDGET, "{size}");
    let f = Pacemaker::interpret(&cfg("pc1"), &ran(0, xml.into_bytes()));
    assert!(
        codes(&f).contains(&"pacemaker_truncated"),
        "{:?}",
        f.reasons
    );
}
