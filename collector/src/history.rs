//! `GET /api/v3.1/history`: the stored status transitions, filtered and bounded.
//!
//! Parameters (all optional; anything else, or one given twice, is a 400 naming it):
//! - `node`: a node id or node name;
//! - `service`: a service type as `cluster status` names it (`manager`, `db`, `broker`),
//!   or a service a node reports (`Patroni`, `RabbitMQ`; case-insensitive);
//! - `since`, `until`: RFC 3339 (`2026-11-29T07:00:00Z`) or an age (`90s`, `15m`, `2h`,
//!   `7d`), compared with the collector's receive time;
//! - `limit`: 1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`]; more is a 400, not a clamp, so a
//!   client never mistakes a cut answer for the whole;
//! - `after`: an event id: only later transitions, oldest first (how the event stream and
//!   a paging client resume).
//!
//! The answer is newest first (oldest first with `after`), each item with its event `id`.
//! What is kept is bounded by the store's retention (`transitions_max_age_days`,
//! `transitions_per_node`), shown in the answer's `retention`.
//!
//! Reads go through a second SQLite connection ([`Reader`]), never the writer thread, so
//! a long read never delays ingest.

use crate::app::App;
use crate::error::ApiError;
use crate::rollup::rfc3339_ms;
use crate::store::{HistoryFilter, HistoryRow, Store, StoreError};
use http::StatusCode;
use std::sync::Mutex;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Longest `node` or `service` value accepted.
const MAX_NAME: usize = 128;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_parameters_error", message)
}

/// A name parameter: 1..=128 characters, none of them control characters.
fn name_param(key: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.chars().count() > MAX_NAME {
        return Err(bad(format!("{key} must be 1-{MAX_NAME} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(format!("{key} must not contain control characters")));
    }
    Ok(value.to_string())
}

/// `since`/`until`: RFC 3339, or an age before `now_ms` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_time(key: &str, value: &str, now_ms: i64) -> Result<i64, ApiError> {
    let shown: String = value.chars().take(40).collect();
    let err = || {
        bad(format!(
            "{key} must be an RFC 3339 time (2026-11-29T07:00:00Z) or an age such as 15m, 2h, 7d; got {shown:?}"
        ))
    };
    if let Some(unit) = value.chars().last().filter(|c| "smhd".contains(*c)) {
        let digits = &value[..value.len() - 1];
        if !digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = digits.parse().map_err(|_| err())?;
            let per = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                _ => 86_400_000,
            };
            return Ok(now_ms.saturating_sub(n.saturating_mul(per)));
        }
    }
    if value.len() > 64 {
        return Err(err());
    }
    let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| err())?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Checks the query's pairs into a filter. `now_ms` anchors ages.
pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<HistoryFilter, ApiError> {
    let mut f = HistoryFilter {
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        if seen.contains(&k.as_str()) {
            return Err(bad(format!("{} is given more than once", shown_key(k))));
        }
        match k.as_str() {
            "node" => f.node = Some(name_param("node", v)?),
            "service" => f.service = Some(name_param("service", v)?),
            "since" => f.since_ms = Some(parse_time("since", v, now_ms)?),
            "until" => f.until_ms = Some(parse_time("until", v, now_ms)?),
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?
            }
            "after" => {
                f.after_id =
                    Some(v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                        bad("after must be an event id (a whole number, 0 or more)")
                    })?)
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {}; known: node, service, since, until, limit, after",
                    shown_key(other)
                )))
            }
        }
        seen.push(k);
    }
    if let (Some(s), Some(u)) = (f.since_ms, f.until_ms) {
        if s > u {
            return Err(bad("since is later than until"));
        }
    }
    Ok(f)
}

/// A parameter name as quoted in an error: bounded, control characters escaped.
fn shown_key(k: &str) -> String {
    format!("{:?}", k.chars().take(40).collect::<String>())
}

/// One row as the API shows it: a transition, or a maintenance event.
pub fn item(r: &HistoryRow) -> serde_json::Value {
    if r.node_type == crate::store::MAINTENANCE_EVENT {
        return maintenance_item(r);
    }
    let reasons: serde_json::Value =
        serde_json::from_str(&r.reasons_json).unwrap_or_else(|_| serde_json::json!([]));
    serde_json::json!({
        "id": r.id,
        "node_type": r.node_type,
        "node_id": r.node_id,
        "node_name": r.node_name,
        "service": r.service,
        "from": r.from,
        "to": r.to,
        "at": rfc3339_ms(r.at_ms),
        "received_at": rfc3339_ms(r.received_ms),
        "reasons": reasons,
        "boot_id": r.boot_id,
        "seq": r.seq,
        "kind": "transition",
    })
}

/// A maintenance on/off/expiry: the columns a transition has (so `cluster history` and
/// `cluster watch` print it in the same table: type `maintenance`, node the target, from
/// and to `on`/`off`, one `maintenance` reason) and the window's own fields.
fn maintenance_item(r: &HistoryRow) -> serde_json::Value {
    let w: Option<crate::store::WindowEvent> = serde_json::from_str(&r.reasons_json).ok();
    let (action, reason, by, since, until) = match &w {
        Some(w) => (
            w.action.as_str(),
            w.reason.as_str(),
            w.by.as_str(),
            rfc3339_ms(w.since_ms),
            w.until_ms.and_then(rfc3339_ms),
        ),
        None => ("unknown", "", "", None, None),
    };
    let message = match action {
        "on" => format!(
            "maintenance on: {reason} (by {by}, {})",
            until
                .as_deref()
                .map(|u| format!("until {u}"))
                .unwrap_or_else(|| "until turned off".into())
        ),
        "off" => format!("maintenance off (was: {reason}, by {by})"),
        "expired" => format!("maintenance ended at its until (was: {reason}, by {by})"),
        other => format!("maintenance {other}"),
    };
    serde_json::json!({
        "id": r.id,
        "kind": "maintenance",
        "node_type": r.node_type,
        "node_id": r.node_id,
        "node_name": serde_json::Value::Null,
        "service": serde_json::Value::Null,
        "from": r.from,
        "to": r.to,
        "at": rfc3339_ms(r.at_ms),
        "received_at": rfc3339_ms(r.received_ms),
        "reasons": [{"code": sr_protocol::reasons::MAINTENANCE.code, "message": message}],
        "target": r.node_id,
        "action": action,
        "reason": reason,
        "by": by,
        "since": since,
        "until": until,
    })
}

/// The store beside the writer thread, opened on first use: reads, and the maintenance
/// windows' small writes (so they never wait behind ingest).
#[derive(Default)]
pub struct Reader {
    store: Mutex<Option<Store>>,
}

impl Reader {
    /// Runs `f` on the reader's connection (blocking: call from `spawn_blocking`).
    pub fn with<T>(
        &self,
        app: &App,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let mut s = Store::open(&app.cfg.state_dir)?;
            // Maintenance events are written here and bounded per target like transitions.
            s.set_retention(crate::store::Retention {
                max_age_ms: app.cfg.transitions_max_age.as_millis() as i64,
                per_node: app.cfg.transitions_per_node,
                forget_after_ms: app.cfg.forget_after.as_millis() as i64,
            });
            *guard = Some(s);
        }
        let result = f(guard.as_ref().expect("opened above"));
        if result.is_err() {
            // A broken connection is reopened next time rather than kept.
            *guard = None;
        }
        result
    }
}

/// The answer to a checked query.
pub fn answer(app: &App, f: &HistoryFilter) -> Result<serde_json::Value, ApiError> {
    let rows = app.history.with(app, |s| s.history(f)).map_err(|e| {
        tracing::warn!(error = %e, "history read failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the collector's store is unavailable",
        )
    })?;
    let items: Vec<_> = rows.iter().map(item).collect();
    Ok(serde_json::json!({
        "items": items,
        "metadata": {
            "returned": items.len(),
            "limit": f.limit,
            "order": if f.after_id.is_some() { "oldest_first" } else { "newest_first" },
        },
        "retention": {
            "max_age_days": app.cfg.transitions_max_age.as_secs_f64() / 86_400.0,
            "per_node": app.cfg.transitions_per_node,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn good_queries_become_filters() {
        let f = parse(
            &q(&[
                ("node", "db1"),
                ("service", "db"),
                ("since", "2h"),
                ("limit", "5"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(f.node.as_deref(), Some("db1"));
        assert_eq!(f.since_ms, Some(NOW - 7_200_000));
        assert_eq!(f.limit, 5);
        let f = parse(
            &q(&[("until", "2026-11-29T07:00:00Z"), ("after", "42")]),
            NOW,
        )
        .unwrap();
        assert_eq!(f.until_ms, Some(1_795_935_600_000));
        assert_eq!(f.after_id, Some(42));
        assert_eq!(parse(&[], NOW).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn hostile_queries_are_clear_400s() {
        for (pairs, says) in [
            (q(&[("limit", "0")]), "limit"),
            (q(&[("limit", "1001")]), "limit"),
            (q(&[("limit", "99999999999999999999999")]), "limit"),
            (q(&[("limit", "-1")]), "limit"),
            (q(&[("limit", "1e3")]), "limit"),
            (q(&[("after", "-5")]), "after"),
            (q(&[("after", "abc")]), "after"),
            (q(&[("since", "yesterday")]), "since"),
            (q(&[("since", "99999999999d")]), "since"),
            (q(&[("until", &"9".repeat(10_000))]), "until"),
            (q(&[("since", "1h"), ("until", "2h")]), "later"),
            (q(&[("node", "")]), "node"),
            (q(&[("node", &"x".repeat(129))]), "node"),
            (q(&[("node", "a\nb")]), "node"),
            (q(&[("service", "\u{1b}[2J")]), "service"),
            (q(&[("node", "a"), ("node", "b")]), "more than once"),
            (q(&[("nodes", "a")]), "unknown parameter"),
            (q(&[(&"k".repeat(5000), "a")]), "unknown parameter"),
        ] {
            let e = parse(&pairs, NOW).unwrap_err();
            let (status, msg) = (e.status, e.message.clone());
            assert_eq!(status, StatusCode::BAD_REQUEST, "{pairs:?}");
            assert!(msg.contains(says), "{pairs:?}: {msg}");
            assert!(msg.len() < 300, "bounded message: {}", msg.len());
        }
    }

    #[test]
    fn ages_do_not_overflow() {
        assert_eq!(
            parse_time("since", "999999999d", 0).unwrap(),
            -86_399_999_913_600_000
        );
        assert!(parse_time("since", "1w", NOW).is_err());
        assert!(parse_time("since", "d", NOW).is_err());
    }
}
