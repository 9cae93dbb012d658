//! Pure: the pin and replay rule for a cluster's summaries at a tier-2 collector, the
//! node reports' rule (`ingest/trust.rs`) for one sender per cluster: the first valid
//! signature pins the key; within a boot each `seq` must be higher than the last; a new
//! boot must carry a send time within the signature window of the receive time and later
//! than every one accepted before, so a captured summary is useless once the window has
//! passed and an older boot can never come back.

use crate::ingest::trust::SIGNATURE_WINDOW_MS;
use sr_protocol::signing::SignedEnvelope;

/// What is remembered of a cluster's last accepted summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub key_id: String,
    pub boot_id: String,
    pub seq: u64,
    pub sent_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    KeyMismatch,
    SeqAlreadySeen { seq: u64, last: u64 },
    OlderBoot,
    StaleSignature { skew_ms: i64 },
}

/// `Ok(true)`: accepted, and this summary pins the key (first contact).
pub fn judge(pin: Option<&Pin>, env: &SignedEnvelope, received_ms: i64) -> Result<bool, Distrust> {
    let opens_boot = |after_ms: Option<i64>| {
        let skew = env.sent_at_ms.saturating_sub(received_ms);
        if skew.abs() > SIGNATURE_WINDOW_MS {
            return Err(Distrust::StaleSignature { skew_ms: skew });
        }
        if after_ms.is_some_and(|t| env.sent_at_ms <= t) {
            return Err(Distrust::OlderBoot);
        }
        Ok(())
    };
    let Some(pin) = pin else {
        opens_boot(None)?;
        return Ok(true);
    };
    if pin.key_id != env.key_id() {
        return Err(Distrust::KeyMismatch);
    }
    if pin.boot_id == env.boot_id {
        if env.seq <= pin.seq {
            return Err(Distrust::SeqAlreadySeen {
                seq: env.seq,
                last: pin.seq,
            });
        }
        return Ok(false);
    }
    opens_boot(Some(pin.sent_ms))?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(key: u8, boot: &str, seq: u64, ts: i64) -> SignedEnvelope {
        SignedEnvelope {
            public_key: [key; 32],
            boot_id: boot.into(),
            seq,
            sent_at_ms: ts,
            signature: [0; 64],
        }
    }

    #[test]
    fn first_contact_pins_then_only_that_key_and_newer_seqs_pass() {
        let now = 1_800_000_000_000;
        assert_eq!(judge(None, &env(1, "b1", 1, now), now), Ok(true));
        assert_eq!(
            judge(None, &env(1, "b1", 1, now - SIGNATURE_WINDOW_MS - 1), now),
            Err(Distrust::StaleSignature {
                skew_ms: -SIGNATURE_WINDOW_MS - 1
            })
        );
        let pin = Pin {
            key_id: env(1, "", 0, 0).key_id(),
            boot_id: "b1".into(),
            seq: 5,
            sent_ms: now,
        };
        assert_eq!(judge(Some(&pin), &env(1, "b1", 6, now), now), Ok(false));
        assert_eq!(
            judge(Some(&pin), &env(1, "b1", 5, now), now),
            Err(Distrust::SeqAlreadySeen { seq: 5, last: 5 })
        );
        assert_eq!(
            judge(Some(&pin), &env(2, "b1", 6, now), now),
            Err(Distrust::KeyMismatch)
        );
        // A new boot: later and fresh passes; an older send time is an old boot replayed.
        assert_eq!(judge(Some(&pin), &env(1, "b2", 1, now + 1), now), Ok(false));
        assert_eq!(
            judge(Some(&pin), &env(1, "b0", 99, now - 1), now),
            Err(Distrust::OlderBoot)
        );
    }
}
