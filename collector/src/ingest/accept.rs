//! Step 2, accept: what needs the node's state, then the body. A node id the collector
//! does not know must fit under `max_nodes` (or `max_pending`) and its token's new-node
//! budget, its pin and replay state must admit the report (a key mismatch is flagged
//! durably), and only then is the body decoded and its fields checked. With
//! `admission = "approve"` a node id not admitted yet is marked to be held, not committed.

use super::trust::{check_pin_and_replay, refuse_mismatch};
use super::verify::Verified;
use super::Refusal;
use crate::app::App;
use crate::config::Admission;
use crate::state::Counters;
use sr_protocol::report::ReportBody;
use std::net::IpAddr;

/// A verified report the node's state admits, decoded and checked.
pub(super) struct Accepted {
    pub verified: Verified,
    pub body: ReportBody,
    pub name: String,
    pub private_ip: Option<String>,
    /// Reporter clock minus collector clock at receipt, ms.
    pub skew_ms: i64,
    /// First contact, or the first signed report of an unpinned (legacy) node: the key,
    /// if any, is pinned durably before the 200.
    pub pinning: bool,
    /// A node id not admitted under `admission = "approve"`: held, not committed.
    pub held: bool,
}

pub(super) async fn accept(
    app: &App,
    verified: Verified,
    peer: Option<IpAddr>,
) -> Result<Accepted, Refusal> {
    let (pinning, held) = admit(app, &verified).await?;
    let decoded = ReportBody::decode(&verified.bytes).map_err(Refusal::Undecodable)?;
    let body = decoded.body;
    let ext = body.extension.as_ref();
    if let (Some(env), Some(ext)) = (&verified.envelope, ext) {
        if env.boot_id != ext.boot_id || env.seq != ext.seq {
            return Err(Refusal::EnvelopeDisagrees);
        }
    }
    let name = ext
        .map(|e| e.node_name.clone())
        .unwrap_or_else(|| verified.key.1.clone());
    if name.is_empty() || name.chars().any(sr_protocol::model::is_hidden_char) {
        return Err(Refusal::BadNodeName);
    }
    let reported = match ext.and_then(|e| e.private_ip.as_deref()) {
        Some(text) => Some((
            text.parse::<IpAddr>().map_err(|_| Refusal::BadPrivateIp)?,
            text,
        )),
        None => None,
    };
    // Formatting addresses showed in the instruction count (two per report), so neither is
    // formatted when the answer is known without it: an IPv4 address parses only from its
    // canonical text (no leading zeros, no spaces), which is what `listed_address` would
    // give back for it; and the collector's own host matters only without a reported one.
    let private_ip = match reported {
        Some((IpAddr::V4(_), text)) => Some(text.to_owned()),
        _ => {
            let listen = app.cfg.listen.ip();
            let own_host =
                (reported.is_none() && !listen.is_unspecified()).then(|| listen.to_string());
            listed_address(reported.map(|r| r.0), peer, own_host)
        }
    };
    let reporter_ms = match &verified.envelope {
        Some(env) => env.sent_at_ms,
        None => decoded.reporter_time.saturating_mul(1000),
    };
    let skew_ms = reporter_ms.saturating_sub(verified.received_ms);
    Ok(Accepted {
        verified,
        body,
        name,
        private_ip,
        skew_ms,
        pinning,
        held,
    })
}

/// The address a node is listed at (its `private_ip`, what `GET /managers` hands to
/// reporters), by the rule in docs/protocol.md ("Lists"): the address the report gives for
/// itself; else the connection's peer address; but a loopback peer only says the node shares
/// the collector's host, and an address that only that host can use must not reach remote
/// nodes, so then `own_host` (the address the collector is reached by: its configured listen
/// address, or at read time the one the reader used) wins when it is known and not loopback.
pub(crate) fn listed_address(
    reported: Option<IpAddr>,
    peer: Option<IpAddr>,
    own_host: Option<String>,
) -> Option<String> {
    if let Some(ip) = reported {
        return Some(ip.to_string());
    }
    let peer = peer.map(|p| p.to_canonical())?;
    if !peer.is_loopback() {
        return Some(peer.to_string());
    }
    let is_loopback_host = |h: &str| {
        h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    Some(
        own_host
            .filter(|h| !h.is_empty() && !is_loopback_host(h))
            .unwrap_or_else(|| peer.to_string()),
    )
}

/// Whether the node's state admits the report: (a pin is to be written, the report is
/// to be held for approval).
async fn admit(app: &App, v: &Verified) -> Result<(bool, bool), Refusal> {
    let checked = {
        let nodes = app.mem.lock();
        let entry = nodes.map.get(&v.key);
        let held = entry.is_none() && app.cfg.admission == Admission::Approve;
        if entry.is_none() && !nodes.pending.contains(&v.key) {
            new_node_room(app, held, nodes.map.len(), nodes.pending.len())?;
            new_node_budget(app, v)?;
        }
        check_pin_and_replay(
            entry,
            v.envelope.as_ref(),
            v.key_id.as_deref(),
            v.received_ms,
        )
        .map(|()| {
            let pinning = entry.is_none_or(|e| v.key_id.is_some() && e.pinned.is_none());
            (pinning, held)
        })
    };
    match checked {
        Err(Refusal::KeyMismatch) => Err(refuse_mismatch(app, &v.key, v.key_id.as_deref()).await),
        other => other,
    }
}

/// Room for one more node id: under `max_nodes`, or under `max_pending` when it is to
/// be held.
fn new_node_room(app: &App, held: bool, known: usize, pending: usize) -> Result<(), Refusal> {
    if held && pending >= app.cfg.max_pending {
        Counters::bump(&app.mem.counters.pending_refused);
        return Err(Refusal::TooManyPending {
            max_pending: app.cfg.max_pending,
        });
    }
    if !held && known >= app.cfg.max_nodes {
        Counters::bump(&app.mem.counters.nodes_refused);
        return Err(Refusal::TooManyNodes {
            max_nodes: app.cfg.max_nodes,
        });
    }
    Ok(())
}

/// One new node id from the token's budget (`new_nodes_per_window`).
fn new_node_budget(app: &App, v: &Verified) -> Result<(), Refusal> {
    let window_ms = app.cfg.new_node_window.as_millis() as i64;
    let per_window = app.cfg.new_nodes_per_window;
    let taken = app
        .mem
        .new_nodes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take(v.token, v.received_ms, per_window, window_ms);
    taken.map_err(|retry_after_secs| {
        Counters::bump(&app.mem.counters.new_nodes_throttled);
        Refusal::NewNodeBudget {
            per_window,
            window_secs: app.cfg.new_node_window.as_secs().max(1),
            retry_after_secs,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::listed_address;
    use std::net::IpAddr;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn host(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// `accept` lists a reported IPv4 address by its text, unformatted: that is the same
    /// only because the parser takes nothing but the canonical text.
    #[test]
    fn a_parsed_ipv4_address_is_its_canonical_text() {
        for ok in ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.100.7"] {
            let ip: IpAddr = ok.parse().unwrap();
            assert_eq!(listed_address(Some(ip), None, None).as_deref(), Some(ok));
        }
        for bad in [
            "010.0.0.1",
            " 10.0.0.1",
            "10.0.0.1 ",
            "10.0.0.01",
            "+10.0.0.1",
            "10.0.0",
        ] {
            assert!(bad.parse::<std::net::Ipv4Addr>().is_err(), "{bad:?}");
            assert!(bad.parse::<IpAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_reports_own_address_wins() {
        let got = listed_address(ip("10.0.0.11"), ip("127.0.0.1"), host("10.0.0.5"));
        assert_eq!(got.as_deref(), Some("10.0.0.11"));
        // Even a loopback address the node states itself: it is the node's own claim.
        let got = listed_address(ip("127.0.0.1"), ip("10.0.0.7"), host("10.0.0.5"));
        assert_eq!(got.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn a_remote_peer_is_listed_at_its_peer_address() {
        let got = listed_address(None, ip("10.0.0.7"), host("10.0.0.5"));
        assert_eq!(got.as_deref(), Some("10.0.0.7"));
        let mapped = listed_address(None, ip("::ffff:10.0.0.7"), None);
        assert_eq!(mapped.as_deref(), Some("10.0.0.7"));
    }

    #[test]
    fn a_loopback_peer_is_listed_at_the_collectors_own_address() {
        for peer in ["127.0.0.1", "127.0.1.1", "::1", "::ffff:127.0.0.1"] {
            let got = listed_address(None, ip(peer), host("10.0.0.5"));
            assert_eq!(got.as_deref(), Some("10.0.0.5"), "peer {peer}");
            let named = listed_address(None, ip(peer), host("manager1.example"));
            assert_eq!(named.as_deref(), Some("manager1.example"), "peer {peer}");
        }
    }

    #[test]
    fn a_loopback_peer_stays_when_nothing_better_is_known() {
        for own in [
            None,
            host("127.0.0.1"),
            host("::1"),
            host("LOCALHOST"),
            host(""),
        ] {
            let got = listed_address(None, ip("127.0.0.1"), own.clone());
            assert_eq!(got.as_deref(), Some("127.0.0.1"), "own {own:?}");
        }
        assert_eq!(listed_address(None, None, host("10.0.0.5")), None);
    }
}
