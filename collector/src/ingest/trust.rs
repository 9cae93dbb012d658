//! The pin (trust on first use) and replay rules, checked when a report is accepted and
//! re-checked when it is committed (the node may have changed while the commit ran).
//!
//! Replay refusal has three layers, so that it holds across forgets, restarts and any
//! number of boots (docs/security.md, "Replay and pinning"):
//! 1. within a remembered boot, `(boot_id, seq)` must be new: each seq is accepted once;
//! 2. a signature that opens a boot the collector does not remember (first contact,
//!    after `nodes forget`, a new agent start, or a boot that fell out of the
//!    [`crate::store::BOOTS_KEPT`] remembered) must carry a send time within
//!    [`SIGNATURE_WINDOW_MS`] of the collector's receive time, **and** later than every
//!    send time already accepted from the node. A captured report is thus useless once
//!    the window has passed, and a report from any earlier boot is older than the
//!    node's newest one, however many boots ago it was;
//! 3. a key forgotten by `nodes forget` is tombstoned in the store and cannot re-pin
//!    unless the operator names it (`nodes forget NODE --accept-key FINGERPRINT`),
//!    checked durably when the pin is written ([`crate::store::PinRefused`]).
//!
//! The window judges whether a *signature* may open a boot; whether the *data* is fresh
//! is still judged by receive time alone.

use super::Refusal;
use crate::app::App;
use crate::state::{NodeEntry, NodeKey};
use crate::store::DurableWrite;
use sr_protocol::signing::SignedEnvelope;

/// How far (either way) a signed send time may be from the collector's receive time
/// when the signature opens a boot: 5 minutes, the tolerance Kerberos uses for clock
/// skew. Nodes are expected to run NTP; one whose clock is further off is refused with
/// `stale_signature` until its clock is fixed (reports inside a known boot are not
/// affected: their freshness is judged by receive time).
pub const SIGNATURE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Refuses a report whose key differs from the pin, or whose `(boot_id, seq)` is not new,
/// or whose signature would open a boot without a fresh, newer send time.
pub(super) fn check_pin_and_replay(
    entry: Option<&NodeEntry>,
    env: Option<&SignedEnvelope>,
    key_id: Option<&str>,
    received_ms: i64,
) -> Result<(), Refusal> {
    if let Some(entry) = entry {
        match (env, &entry.pinned) {
            (None, Some(_)) => return Err(Refusal::UnsignedForPinnedNode),
            (Some(_), Some(pinned)) if Some(pinned.as_str()) != key_id => {
                return Err(Refusal::KeyMismatch)
            }
            _ => {}
        }
    }
    let Some(env) = env else { return Ok(()) };
    if let Some(e) = entry {
        check_floor(&e.floor, env)?;
    }
    let boots = entry.map(|e| &e.boots);
    match boots.and_then(|b| b.iter().position(|x| x.0 == env.boot_id).map(|p| (b, p))) {
        Some((boots, pos)) => {
            if pos + 1 != boots.len() {
                return Err(Refusal::EarlierBoot);
            }
            let last = boots[pos].1;
            if env.seq <= last {
                return Err(Refusal::SeqAlreadySeen { seq: env.seq, last });
            }
            Ok(())
        }
        None => check_opens_boot(entry.and_then(|e| e.sent_high_ms), env, received_ms),
    }
}

/// Across managers (a shared store): a report below the newest seq any manager accepted
/// in its boot, or from a boot older than the newest any manager saw, is a replay even
/// here. Equal is accepted: each manager receives its own copy of every report.
fn check_floor(floor: &[(String, u64)], env: &SignedEnvelope) -> Result<(), Refusal> {
    let Some(pos) = floor.iter().position(|b| b.0 == env.boot_id) else {
        return Ok(());
    };
    if pos + 1 != floor.len() {
        return Err(Refusal::EarlierBoot);
    }
    let last = floor[pos].1;
    if env.seq < last {
        return Err(Refusal::SeqAlreadySeen { seq: env.seq, last });
    }
    Ok(())
}

/// Layer 2: a signature that opens a boot must be fresh and newer than the node's newest.
fn check_opens_boot(
    sent_high_ms: Option<i64>,
    env: &SignedEnvelope,
    received_ms: i64,
) -> Result<(), Refusal> {
    let sent = env.sent_at_ms;
    if sent.abs_diff(received_ms) > SIGNATURE_WINDOW_MS.unsigned_abs() {
        return Err(Refusal::StaleSignature {
            sent_at_ms: sent,
            received_ms,
        });
    }
    match sent_high_ms {
        Some(high) if sent <= high => Err(Refusal::EarlierBoot),
        _ => Ok(()),
    }
}

/// Records a key mismatch durably (so it survives a restart) and in memory, outside the
/// memory lock; a no-op when already flagged. Then refuses the report as a mismatch.
pub(super) async fn refuse_mismatch(app: &App, key: &NodeKey, key_id: Option<&str>) -> Refusal {
    match flag_mismatch(app, key, key_id).await {
        Ok(()) => Refusal::KeyMismatch,
        Err(store_refusal) => store_refusal,
    }
}

async fn flag_mismatch(app: &App, key: &NodeKey, key_id: Option<&str>) -> Result<(), Refusal> {
    let Some(key_id) = key_id else { return Ok(()) };
    let needs_flag = {
        let nodes = app.mem.lock();
        nodes
            .map
            .get(key)
            .is_some_and(|e| e.pinned.as_deref().is_some_and(|p| p != key_id) && !e.key_mismatch)
    };
    if needs_flag {
        app.writer
            .durable(vec![DurableWrite::FlagMismatch {
                node_type: key.0,
                node_id: key.1.clone(),
                key: key_id.to_string(),
            }])
            .await
            .map_err(|_| Refusal::StoreUnavailable)?;
        if let Some(e) = app.mem.lock().map.get_mut(key) {
            e.key_mismatch = true;
        }
        tracing::warn!(node_type = %key.0, node_id = %key.1, presented_key = key_id, "key mismatch: report signed by an unpinned key refused");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::signing::NodeKey as SigningKey;

    const NOW: i64 = 1_800_000_000_000;

    fn env(boot: &str, seq: u64, ts: i64) -> SignedEnvelope {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        key.sign("PUT", "/p", b"{}", boot, seq, ts)
    }

    fn entry(boots: &[(&str, u64)], high: i64) -> NodeEntry {
        NodeEntry {
            boots: boots.iter().map(|(b, s)| (b.to_string(), *s)).collect(),
            sent_high_ms: Some(high),
            ..NodeEntry::default()
        }
    }

    fn check(entry: Option<&NodeEntry>, e: &SignedEnvelope) -> Result<(), &'static str> {
        check_pin_and_replay(entry, Some(e), None, NOW).map_err(|r| r.code())
    }

    #[test]
    fn first_contact_needs_a_send_time_inside_the_window() {
        assert_eq!(check(None, &env("b", 1, NOW)), Ok(()));
        assert_eq!(check(None, &env("b", 1, NOW - SIGNATURE_WINDOW_MS)), Ok(()));
        assert_eq!(check(None, &env("b", 1, NOW + SIGNATURE_WINDOW_MS)), Ok(()));
        for ts in [
            0,
            NOW - SIGNATURE_WINDOW_MS - 1,
            NOW + SIGNATURE_WINDOW_MS + 1,
            i64::MAX,
        ] {
            assert_eq!(
                check(None, &env("b", 1, ts)),
                Err("stale_signature"),
                "ts={ts}"
            );
        }
    }

    #[test]
    fn a_new_boot_must_be_newer_than_every_send_time_seen() {
        let e = entry(&[("b2", 5)], NOW - 10);
        // A boot the collector no longer remembers, sent before the newest report.
        assert_eq!(
            check(Some(&e), &env("b1", 9, NOW - 20)),
            Err("replayed_report")
        );
        assert_eq!(
            check(Some(&e), &env("b1", 9, NOW - 10)),
            Err("replayed_report")
        );
        // A genuinely new boot.
        assert_eq!(check(Some(&e), &env("b3", 1, NOW - 9)), Ok(()));
        // Inside the current boot only the sequence counts, not the send time.
        assert_eq!(check(Some(&e), &env("b2", 6, 0)), Ok(()));
        assert_eq!(check(Some(&e), &env("b2", 5, NOW)), Err("replayed_report"));
    }

    #[test]
    fn the_shared_floor_refuses_what_another_manager_accepted_before_but_not_an_equal_copy() {
        let mut e = entry(&[], NOW - 1000);
        e.floor = vec![("old".into(), 9), ("b".into(), 5)];
        assert_eq!(check(Some(&e), &env("b", 4, NOW)), Err("replayed_report"));
        assert_eq!(
            check(Some(&e), &env("b", 5, NOW)),
            Ok(()),
            "this manager's own copy"
        );
        assert_eq!(check(Some(&e), &env("b", 6, NOW)), Ok(()));
        assert_eq!(
            check(Some(&e), &env("old", 10, NOW)),
            Err("replayed_report")
        );
        assert_eq!(
            check(Some(&e), &env("new", 1, NOW)),
            Ok(()),
            "a boot nobody saw yet"
        );
    }
}
