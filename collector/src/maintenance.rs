//! Maintenance windows: what `status-reporter maintenance on|off` sets, and how the view
//! shows them.
//!
//! A window names a node (id or name) or a service (`manager`, `db`, `broker`, and the
//! stack services `galera`, `lb`), with
//! who set it, why, and optionally until when; it ends by itself then. The view shows a
//! reason `maintenance` with all of that on each node concerned, and:
//! - a node in maintenance that is Fail counts as Degraded before the cluster rules run,
//!   so it does not break quorum by itself ([`mark_inputs`]);
//! - a service type in maintenance is at worst Degraded ([`cap_services`]).
//!
//! A Patroni cluster in pause is a window on `db` too, derived from the members' facts
//! ([`patroni_pause`]).
//!
//! What maintenance never hides: a failure of the cluster rules that does not come from
//! the node's own status (no Patroni leader, a RabbitMQ partition) stays Fail.
//!
//! Ending by `until`: [`expire_loop`] checks once a second and commits each expiry with
//! its `expired` event, so watchers see it within about a second of the `until` (the view
//! stops showing the window at `until` exactly: it only reads active windows).
//!
//! Storage: the collector's own store (`maintenance` table), durable across restarts. Like
//! tokens, windows are per collector: an operator runs `maintenance on` against each
//! manager, and each collector applies its own (they are not replicated between managers).

use crate::error::ApiError;
use crate::rollup::{rfc3339_ms, NodeInput, Rows, ViewParts};
use crate::store::MaintenanceRow;
use http::StatusCode;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, NodeType, Reason};

/// Largest request body accepted.
pub const MAX_BODY: usize = 4096;
pub const MAX_REASON: usize = 200;
pub const MAX_BY: usize = 64;
/// The longest window.
pub const MAX_DAYS: i64 = 366;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_parameters_error", message)
}

/// A target: a node id or name, or a service type; `[A-Za-z0-9._-]{1,128}`.
pub fn valid_target(t: &str) -> bool {
    crate::ingest::valid_node_id(t)
}

/// What a refused target is told: the services named from the one list of them.
pub fn target_error() -> String {
    format!(
        "the target must be a node id or name, or a service ({}) ([A-Za-z0-9._-], 1-128 characters)",
        sr_protocol::facts::service_list()
    )
}

fn text(key: &str, v: Option<&serde_json::Value>, max: usize) -> Result<String, ApiError> {
    let s = v
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad(format!("{key} is required (a string)")))?;
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max {
        return Err(bad(format!("{key} must be 1-{max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(format!("{key} must not contain control characters")));
    }
    Ok(s.to_string())
}

/// `{"reason": TEXT, "by": WHO, "until": TIME?}`: the window to set on `target` now.
/// `until` is RFC 3339 or a duration from now (`90m`, `2h`, `1d`), in the future, at most
/// [`MAX_DAYS`] away.
pub fn parse_put(target: &str, body: &[u8], now_ms: i64) -> Result<MaintenanceRow, ApiError> {
    if !valid_target(target) {
        return Err(bad(target_error()));
    }
    if body.len() > MAX_BODY {
        return Err(bad(format!("the body is larger than {MAX_BODY} bytes")));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body must be a JSON object"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["reason", "by", "until"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown key {:?}; known: reason, by, until",
            k.chars().take(40).collect::<String>()
        )));
    }
    let reason = text("reason", obj.get("reason"), MAX_REASON)?;
    let by = text("by", obj.get("by"), MAX_BY)?;
    let until_ms = match obj.get("until") {
        None | Some(serde_json::Value::Null) => None,
        Some(u) => {
            let u = u.as_str().ok_or_else(|| bad("until must be a string"))?;
            // An age counted forward: `2h` is two hours from now.
            let at = match crate::history::parse_time("until", u, 0) {
                Ok(ms) if ms <= 0 && !u.contains('T') => now_ms.saturating_sub(ms),
                Ok(ms) => ms,
                Err(e) => return Err(e),
            };
            if at <= now_ms {
                return Err(bad("until is not in the future"));
            }
            if at - now_ms > MAX_DAYS * 86_400_000 {
                return Err(bad(format!("until is more than {MAX_DAYS} days away")));
            }
            Some(at)
        }
    };
    Ok(MaintenanceRow {
        target: target.to_string(),
        reason,
        by,
        since_ms: now_ms,
        until_ms,
    })
}

/// Who a window derived from Patroni's own pause is by ([`patroni_pause`]).
pub const PATRONI_PAUSE_BY: &str = "Patroni";

/// Patroni's maintenance mode (`patronictl pause`: no automatic failover) as a window on
/// the `db` service, so a paused cluster reads as maintenance and never fails the cluster
/// by itself, like an operator's window. Pause is one flag for the whole Patroni cluster
/// (kept in the DCS); any fresh db node whose latest facts say `pause: true` shows it.
/// Derived from the reports, never stored: it ends when the members report `pause: false`
/// (`patronictl resume`); the members' own transitions (to Degraded with
/// `patroni_paused`, and back) are the events that mark it on the stream.
pub fn patroni_pause(inputs: &[NodeInput]) -> Option<MaintenanceRow> {
    let paused: Vec<&NodeInput> = inputs
        .iter()
        .filter(|n| n.node_type == NodeType::Db && n.fresh)
        .filter(|n| {
            n.facts
                .as_ref()
                .and_then(|f| f.db.as_ref())
                .and_then(|d| d.pause)
                == Some(true)
        })
        .collect();
    let first = paused.first()?;
    let names: Vec<&str> = paused.iter().take(5).map(|n| n.name.as_str()).collect();
    Some(MaintenanceRow {
        target: NodeType::Db.as_str().to_string(),
        reason: format!(
            "Patroni is paused (patronictl pause; reported by {}{}): no automatic failover",
            names.join(", "),
            if paused.len() > names.len() {
                ", ..."
            } else {
                ""
            }
        ),
        by: PATRONI_PAUSE_BY.into(),
        since_ms: first.last_seen_ms.unwrap_or_default(),
        until_ms: None,
    })
}

/// Who a window derived from Pacemaker's `maintenance-mode` is by ([`pacemaker_maintenance_mode`]).
pub const PACEMAKER_BY: &str = "Pacemaker";

/// Pacemaker's cluster-wide `maintenance-mode` (no resource is managed while it is on) as a
/// window on the `pacemaker` service, the same shape as [`patroni_pause`]: any fresh member
/// whose latest facts say `maintenance_mode: true` shows it; derived, never stored, it ends
/// when the members report it off. (A single node's standby is shown by the `pacemaker`
/// rule itself, on that node's row: a window on the node would also mark its other services.)
pub fn pacemaker_maintenance_mode(inputs: &[NodeInput]) -> Option<MaintenanceRow> {
    let on: Vec<&NodeInput> = inputs
        .iter()
        .filter(|n| n.fresh)
        .filter(|n| {
            n.facts
                .as_ref()
                .and_then(|f| f.pacemaker.as_ref())
                .and_then(|p| p.maintenance_mode)
                == Some(true)
        })
        .collect();
    let first = on.first()?;
    let names: Vec<&str> = on.iter().take(5).map(|n| n.name.as_str()).collect();
    Some(MaintenanceRow {
        target: sr_protocol::facts::StackService::Pacemaker
            .as_str()
            .to_string(),
        reason: format!(
            "Pacemaker maintenance-mode is on (reported by {}{}): no resource is managed",
            names.join(", "),
            if on.len() > names.len() { ", ..." } else { "" }
        ),
        by: PACEMAKER_BY.into(),
        since_ms: first.last_seen_ms.unwrap_or_default(),
        until_ms: None,
    })
}

/// The windows the view applies: the stored ones, then Patroni's pause and Pacemaker's
/// maintenance-mode (an operator's window on the same service wins, being found first).
pub fn in_force(mut stored: Vec<MaintenanceRow>, inputs: &[NodeInput]) -> Vec<MaintenanceRow> {
    stored.extend(patroni_pause(inputs));
    stored.extend(pacemaker_maintenance_mode(inputs));
    stored
}

/// The reason shown for `w`.
fn reason_text(w: &MaintenanceRow) -> String {
    if w.by == PATRONI_PAUSE_BY && w.until_ms.is_none() {
        return format!("in maintenance: {} (until patronictl resume)", w.reason);
    }
    if w.by == PACEMAKER_BY && w.until_ms.is_none() {
        return format!(
            "in maintenance: {} (until `crm_attribute --name maintenance-mode --delete`)",
            w.reason
        );
    }
    let until = w
        .until_ms
        .and_then(rfc3339_ms)
        .map(|u| format!("until {u}"))
        .unwrap_or_else(|| "until turned off".into());
    format!(
        "in maintenance: {} (by {}, since {}, {until})",
        w.reason,
        w.by,
        rfc3339_ms(w.since_ms).unwrap_or_default()
    )
}

fn window_for<'a>(
    windows: &'a [MaintenanceRow],
    node_type: NodeType,
    node_id: &str,
    name: &str,
) -> Option<&'a MaintenanceRow> {
    windows
        .iter()
        .find(|w| w.target == node_id || w.target == name)
        .or_else(|| windows.iter().find(|w| w.target == node_type.as_str()))
}

/// Before the rules: each node in maintenance (its own window or its type's) gets the
/// reason, and Fail counts as Degraded.
pub fn mark_inputs(inputs: &mut [NodeInput], windows: &[MaintenanceRow]) {
    for n in inputs {
        let Some(w) = window_for(windows, n.node_type, &n.node_id, &n.name) else {
            continue;
        };
        if n.status == NodeStatus::Fail {
            n.status = NodeStatus::Degraded;
        }
        n.reasons.push(
            codes::MAINTENANCE
                .reason(reason_text(w))
                .on_node(n.name.clone()),
        );
    }
}

/// After the rules: a service type in maintenance is at worst Degraded, and the cluster's
/// status follows its services.
///
/// Each node row of a service also shows the window that concerns it (its own, or the
/// service's), where [`mark_inputs`] has not put it already: the stack services (`galera`,
/// `lb`) judge their members from their own facts, so a window reaches their rows here.
/// A stack service's rule still counts such a member as its facts say; only a window on
/// the service caps it.
pub fn cap_services(view: &mut ViewParts, windows: &[MaintenanceRow]) {
    let mut changed = false;
    for (name, svc) in view.services.iter_mut() {
        let service_window = windows.iter().find(|w| &w.target == name);
        // The window that concerns a row with this node id and key, if it shows none yet.
        let row_window = |node_id: &str, row: &str, shown: &[&[Reason]]| {
            let shows = |r: &Reason| r.code == codes::MAINTENANCE.code;
            if shown.iter().any(|rs| rs.iter().any(shows)) {
                return None;
            }
            let own = windows
                .iter()
                .find(|w| w.target == node_id || w.target == row);
            own.or(service_window)
                .map(|w| codes::MAINTENANCE.reason(reason_text(w)).on_node(row))
        };
        match &mut svc.rows {
            Rows::Judged(rows) => {
                for r in rows {
                    let shown = [r.input.reasons.as_slice(), r.window.as_slice()];
                    if let Some(reason) = row_window(&r.input.node_id, &r.key.key, &shown) {
                        if r.status == NodeStatus::Fail {
                            r.status = NodeStatus::Degraded;
                        }
                        r.window = Some(reason);
                    }
                }
            }
            Rows::Views(views) => {
                for (row, nv) in views.iter_mut() {
                    if let Some(reason) = row_window(&nv.node_id, row, &[&nv.reasons]) {
                        if nv.status == NodeStatus::Fail {
                            nv.status = NodeStatus::Degraded;
                        }
                        nv.reasons.push(reason);
                    }
                }
            }
        }
        let Some(w) = service_window else {
            continue;
        };
        if svc.status == NodeStatus::Fail {
            svc.status = NodeStatus::Degraded;
            changed = true;
        }
        svc.reasons.push(codes::MAINTENANCE.reason(reason_text(w)));
    }
    if changed {
        let worst = view
            .services
            .values()
            .map(|s| s.status)
            .max()
            .unwrap_or(NodeStatus::Fail);
        view.status = worst;
        view.reasons = view
            .services
            .values()
            .filter(|s| s.status != NodeStatus::Ok)
            .flat_map(|s| s.reasons.iter().cloned())
            .collect();
    }
}

/// How often [`expire_loop`] looks for windows past their `until`.
pub const EXPIRY_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Commits the end of each window whose `until` passed (with its event) and wakes the
/// event streams; ends when the collector begins to stop. A window that ended while the
/// collector was down is expired on the first tick after it starts.
pub async fn expire_loop(app: std::sync::Arc<crate::app::App>) {
    let mut closing = app.closing.subscribe();
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        if *closing.borrow() {
            return;
        }
        let app2 = app.clone();
        let done = tokio::task::spawn_blocking(move || {
            app2.history
                .with(&app2, |s| s.expire_maintenance(crate::clock::now_ms()))
        })
        .await;
        match done {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(windows = n, "maintenance ended at its until");
                app.writer.commits.send_modify(|c| *c += 1);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "maintenance expiry: store write failed"),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn windows_are_parsed_with_clear_errors() {
        let w = parse_put(
            "db1",
            br#"{"reason":"disk swap","by":"alice","until":"2h"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(w.until_ms, Some(NOW + 7_200_000));
        assert_eq!(w.by, "alice");
        let w = parse_put("db", br#"{"reason":"upgrade","by":"bob"}"#, NOW).unwrap();
        assert_eq!(w.until_ms, None);
        for (target, body, says) in [
            ("../x", &br#"{"reason":"r","by":"b"}"#[..], "target"),
            ("db1", br#"{"by":"b"}"#, "reason"),
            ("db1", br#"{"reason":"","by":"b"}"#, "reason"),
            ("db1", br#"{"reason":"a\u001b[2Jb","by":"b"}"#, "control"),
            ("db1", br#"{"reason":"r"}"#, "by"),
            (
                "db1",
                br#"{"reason":"r","by":"b","until":"2001-01-01T00:00:00Z"}"#,
                "future",
            ),
            ("db1", br#"{"reason":"r","by":"b","until":"999d"}"#, "days"),
            ("db1", br#"{"reason":"r","by":"b","until":"soon"}"#, "until"),
            ("db1", br#"{"reason":"r","by":"b","until":5}"#, "until"),
            ("db1", br#"{"reason":"r","by":"b","x":1}"#, "unknown key"),
            ("db1", br#"[1]"#, "JSON object"),
            ("db1", b"{", "JSON object"),
        ] {
            let e = parse_put(target, body, NOW).unwrap_err();
            assert!(e.message.contains(says), "{body:?}: {}", e.message);
        }
        let huge = format!(r#"{{"reason":"{}","by":"b"}}"#, "x".repeat(5000));
        assert!(parse_put("db1", huge.as_bytes(), NOW).is_err());
        let long = format!(r#"{{"reason":"{}","by":"b"}}"#, "x".repeat(201));
        assert!(parse_put("db1", long.as_bytes(), NOW)
            .unwrap_err()
            .message
            .contains("reason"));
        // A refused target is told every service, the newest stack services included.
        let e = parse_put("no such/target", br#"{"reason":"r","by":"b"}"#, NOW).unwrap_err();
        for service in [
            "manager",
            "galera",
            "vip",
            "pacemaker",
            "search",
            "objectstore",
        ] {
            assert!(e.message.contains(service), "{service}: {}", e.message);
        }
    }

    /// A db node as the agent reports it, with Patroni's `pause` flag.
    fn db_node(i: usize, status: &str, pause: bool) -> NodeInput {
        let members: serde_json::Map<_, _> = (1..=3)
            .map(|m| {
                let role = if m == 1 { "leader" } else { "replica" };
                (
                    format!("pg{m}"),
                    serde_json::json!({"role": role, "state": "running"}),
                )
            })
            .collect();
        let role = if i == 1 { "leader" } else { "replica" };
        crate::rollup::tests::reporter(
            NodeType::Db,
            &format!("d{i}"),
            &format!("db{i}"),
            status,
            serde_json::json!({"db": {"member": format!("pg{i}"), "role": role,
                "state": "running", "patroni_reachable": true, "dcs_reachable": true,
                "cluster_view_age_s": 1, "cluster_leader": "pg1", "cluster_members": members,
                "pause": pause}}),
        )
    }

    /// What `App::view` does, over `inputs` and the stored `windows`; the types the
    /// inputs have are the required ones.
    fn view(
        mut inputs: Vec<NodeInput>,
        stored: Vec<MaintenanceRow>,
    ) -> sr_protocol::view::ClusterStatus {
        let mut policy = crate::rollup::Policy {
            required_types: vec![NodeType::Db],
            ..Default::default()
        };
        policy
            .required_types
            .retain(|t| inputs.iter().any(|n| n.node_type == *t));
        let windows = in_force(stored, &inputs);
        mark_inputs(&mut inputs, &windows);
        let mut v = crate::rollup::rollup_parts(&inputs, 1_800_000_000_000, &policy);
        cap_services(&mut v, &windows);
        v.into_view()
    }

    fn shows_maintenance(reasons: &[sr_protocol::Reason], says: &str) -> bool {
        reasons
            .iter()
            .any(|r| r.code == codes::MAINTENANCE.code && r.message.contains(says))
    }

    #[test]
    fn a_paused_patroni_is_maintenance_on_db_and_never_fails_the_cluster() {
        let calm = view((1..=3).map(|i| db_node(i, "OK", false)).collect(), vec![]);
        assert!(
            !shows_maintenance(&calm.services["db"].reasons, ""),
            "{calm:#?}"
        );
        assert!(!shows_maintenance(
            &calm.services["db"].nodes["db1"].reasons,
            ""
        ));

        // Paused (the agents report Degraded with patroni_paused), one member failing too.
        let paused = view(
            vec![
                db_node(1, "Degraded", true),
                db_node(2, "Degraded", true),
                db_node(3, "Fail", true),
            ],
            vec![],
        );
        let db = &paused.services["db"];
        assert_ne!(paused.status, NodeStatus::Fail, "{paused:#?}");
        assert_eq!(db.status, NodeStatus::Degraded, "{db:#?}");
        assert!(
            shows_maintenance(&db.reasons, "Patroni is paused"),
            "{db:#?}"
        );
        assert!(shows_maintenance(&db.reasons, "patronictl resume"));
        for (name, row) in &db.nodes {
            assert!(
                shows_maintenance(&row.reasons, "Patroni is paused"),
                "{name}: {row:#?}"
            );
            assert_ne!(row.status, NodeStatus::Fail, "{name}");
        }

        // An operator's window on db wins over the pause's text.
        let both = view(
            vec![db_node(1, "Degraded", true)],
            vec![MaintenanceRow {
                target: "db".into(),
                reason: "failover drill".into(),
                by: "alice".into(),
                since_ms: NOW,
                until_ms: None,
            }],
        );
        assert!(shows_maintenance(
            &both.services["db"].reasons,
            "failover drill"
        ));
        assert!(!shows_maintenance(
            &both.services["db"].reasons,
            "Patroni is paused"
        ));
    }

    /// A galera member as the agent reports it: reachable and synced, or not reachable.
    fn galera_node(i: usize, up: bool) -> NodeInput {
        let facts = if up {
            serde_json::json!({"galera": {"reachable": true, "ready": true, "connected": true,
                "local_state": "Synced", "cluster_status": "Primary", "cluster_size": 3,
                "conf_id": 3, "state_uuid": "u1", "flow_control_paused": 0.0, "read_only": false}})
        } else {
            serde_json::json!({"galera": {"reachable": false, "error": "connection refused"}})
        };
        crate::rollup::tests::reporter(
            NodeType::Node,
            &format!("g{i}"),
            &format!("galera{i}"),
            if up { "OK" } else { "Fail" },
            facts,
        )
    }

    #[test]
    fn the_stack_services_take_windows_like_the_cloudify_types() {
        let window = |target: &str| MaintenanceRow {
            target: target.into(),
            reason: "MariaDB upgrade".into(),
            by: "bob".into(),
            since_ms: NOW,
            until_ms: None,
        };
        for target in ["galera", "lb"] {
            assert!(parse_put(target, br#"{"reason":"r","by":"b"}"#, NOW).is_ok());
        }
        let down = || (1..=3).map(|i| galera_node(i, i == 1)).collect::<Vec<_>>();
        let before = view(down(), vec![]);
        assert_eq!(
            before.services["galera"].status,
            NodeStatus::Fail,
            "{before:#?}"
        );
        assert_eq!(before.status, NodeStatus::Fail);

        let after = view(down(), vec![window("galera")]);
        let g = &after.services["galera"];
        assert_eq!(g.status, NodeStatus::Degraded, "{g:#?}");
        assert_ne!(after.status, NodeStatus::Fail);
        assert!(shows_maintenance(&g.reasons, "MariaDB upgrade"));
        for (name, row) in &g.nodes {
            assert!(
                shows_maintenance(&row.reasons, "by bob"),
                "{name}: {row:#?}"
            );
            assert_ne!(row.status, NodeStatus::Fail, "{name}");
        }

        // A node's own window shows on its row in the stack service; the service's rule
        // still counts it as its facts say (two of three down: Fail).
        let one = view(down(), vec![window("galera2")]);
        let g = &one.services["galera"];
        assert!(shows_maintenance(
            &g.nodes["galera2"].reasons,
            "MariaDB upgrade"
        ));
        assert!(!shows_maintenance(&g.nodes["galera3"].reasons, ""));
        assert_eq!(g.status, NodeStatus::Fail, "{g:#?}");
    }

    /// A Pacemaker member as the agent reports it: the healthy pair, with or without the
    /// cluster's maintenance-mode, or with `dummy` stopped.
    fn pacemaker_node(i: usize, mode: bool, stopped: bool) -> NodeInput {
        let me = format!("pc{i}");
        let dummy = if stopped {
            serde_json::json!({"id": "dummy", "role": "Stopped", "managed": true})
        } else {
            serde_json::json!({"id": "dummy", "role": "Started", "active": true, "managed": true, "nodes": ["pc1"]})
        };
        crate::rollup::tests::reporter(
            NodeType::Node,
            &format!("p{i}"),
            &me,
            "OK",
            serde_json::json!({"pacemaker": {"reachable": true, "me": me, "with_quorum": true,
                "dc_present": true, "dc": "pc1", "maintenance_mode": mode,
                "nodes": {"pc1": {"online": true, "is_dc": true}, "pc2": {"online": true}},
                "resources": [dummy]}}),
        )
    }

    #[test]
    fn pacemaker_maintenance_mode_is_a_window_on_the_service() {
        let calm = view(
            (1..=2).map(|i| pacemaker_node(i, false, false)).collect(),
            vec![],
        );
        assert_eq!(
            calm.services["pacemaker"].status,
            NodeStatus::Ok,
            "{calm:#?}"
        );
        let on = view(
            (1..=2).map(|i| pacemaker_node(i, true, true)).collect(),
            vec![],
        );
        let p = &on.services["pacemaker"];
        assert_eq!(
            p.status,
            NodeStatus::Degraded,
            "a stopped resource under maintenance-mode: {p:#?}"
        );
        assert_ne!(on.status, NodeStatus::Fail);
        assert!(
            shows_maintenance(
                &p.reasons,
                "Pacemaker maintenance-mode is on (reported by pc1, pc2)"
            ),
            "{p:#?}"
        );
        assert!(shows_maintenance(
            &p.reasons,
            "crm_attribute --name maintenance-mode --delete"
        ));
        for (name, row) in &p.nodes {
            assert!(
                shows_maintenance(&row.reasons, "maintenance-mode"),
                "{name}: {row:#?}"
            );
        }
        // Off again: the stopped resource is Fail as the rule says.
        let off = view(
            (1..=2).map(|i| pacemaker_node(i, false, true)).collect(),
            vec![],
        );
        assert_eq!(
            off.services["pacemaker"].status,
            NodeStatus::Fail,
            "{off:#?}"
        );
    }
}
