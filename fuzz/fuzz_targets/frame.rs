//! The input framing shared by the probe `interpret` targets.
//!
//! A probe's raw input is several HTTP answers (Patroni's `/patroni`, `/cluster`,
//! `/config`; etcd's status and health; RabbitMQ's five management checks). One fuzz input
//! carries all of them: byte 0 is a status mask (bit `i` set: slot `i` answered 200,
//! clear: it answered 503, the other code these services use for the same JSON shape),
//! and the rest is the slots' bodies separated by NUL bytes, which JSON text never
//! contains. A slot past the last body did not answer at all. `fuzz/run-all.sh` builds
//! seeds in this shape from the captured fixtures.

/// One slot: `Some((status, body))` when it answered, `None` when it did not.
pub type Slot<'a> = Option<(u16, &'a [u8])>;

/// Splits `data` into `N` slots.
pub fn slots<const N: usize>(data: &[u8]) -> [Slot<'_>; N] {
    let mut out = [None; N];
    let Some((&mask, rest)) = data.split_first() else {
        return out;
    };
    for (i, body) in rest.splitn(N, |&b| b == 0).enumerate() {
        let status = if mask & (1 << i) != 0 { 200 } else { 503 };
        out[i] = Some((status, body));
    }
    out
}
