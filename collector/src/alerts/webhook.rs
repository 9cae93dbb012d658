//! The webhook sink: one JSON body per change, POSTed with an HMAC-SHA256 signature over
//! the timestamp and the exact body bytes.
//!
//! Headers: `X-Status-Reporter-Timestamp: <unix seconds>` and
//! `X-Status-Reporter-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`.
//! The timestamp is inside the MAC, so a receiver that refuses timestamps older than a few
//! minutes (and remembers the `id`s it saw for that long) cannot be replayed to. Each
//! attempt is signed afresh, so a retry carries a fresh timestamp and the same `id`.

use super::config::{Secret, WebhookSink};
use super::delivery::{deliver, Retry};
use super::{Alert, SinkQueue};
use hyper::body::Bytes;
use ring::hmac;
use sr_tls::HttpsClient;
use std::sync::Arc;

pub const SIGNATURE_HEADER: &str = "X-Status-Reporter-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Status-Reporter-Timestamp";
/// The body's `version`: a receiver checks it before reading the rest.
pub const BODY_VERSION: u32 = 1;
/// Answers are read up to this size and thrown away.
const MAX_ANSWER: usize = 64 * 1024;

/// The body of one alert (documented in docs/operations.md, "Alerts").
pub fn body(cluster: &str, a: &Alert) -> Vec<u8> {
    let c = &a.change;
    let status = |s: Option<sr_protocol::NodeStatus>| s.map(|s| s.as_str());
    let v = serde_json::json!({
        "version": BODY_VERSION,
        "id": a.id,
        "event_id": a.event_id,
        "cluster": cluster,
        "kind": c.target.kind.as_str(),
        "target": c.target.name(),
        "service": c.target.service,
        "node": c.target.node,
        "from": status(c.from),
        "to": status(c.to),
        "firing": c.firing(),
        "reasons": c.reasons,
        "at": crate::rollup::rfc3339_ms(c.at_ms),
    });
    v.to_string().into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex>` over `"<timestamp>." + body`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex(ctx.sign().as_ref()))
}

/// What a receiver does (the recipe in docs/operations.md): the timestamp within
/// `tolerance_s` of `now_s`, and the MAC compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now_s - ts).abs() > tolerance_s {
        return false;
    }
    let Some(given) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = unhex(given) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(body);
    hmac::verify(&key, &msg, &given).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The sink's task: takes alerts from its queue one at a time and delivers each, so a
/// slow or dead receiver holds only this task. Ends when the collector begins to stop.
pub async fn run(
    sink: WebhookSink,
    cluster: Arc<str>,
    retry: Retry,
    client: HttpsClient,
    q: Arc<SinkQueue>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let log = crate::app::LogLimiter::new(crate::app::LOG_PERIOD);
    loop {
        let a = tokio::select! {
            a = q.queue.take() => a,
            _ = closing.changed() => return,
        };
        q.metrics.queued.set(q.queue.len() as i64);
        let body = Bytes::from(body(&cluster, &a));
        let send = deliver(retry, &q.metrics, a.queued_at, || {
            post(&client, &sink, &sink.secret, body.clone())
        });
        let done = tokio::select! {
            d = send => d,
            _ = closing.changed() => return,
        };
        if let Err(cause) = done {
            if let Some(held) = log.allow() {
                tracing::warn!(sink = %sink.name, %cause, alert = %a.id, held_back = held, "webhook: alert not delivered");
            }
        }
    }
}

async fn post(
    client: &HttpsClient,
    sink: &WebhookSink,
    secret: &Secret,
    body: Bytes,
) -> Result<sr_tls::Response, sr_tls::client::ClientError> {
    let ts = crate::clock::now_ms() / 1000;
    let sig = sign(secret.expose(), ts, &body);
    let ts = ts.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", "status-reporter-collector"),
        (TIMESTAMP_HEADER, ts.as_str()),
        (SIGNATURE_HEADER, sig.as_str()),
    ];
    client
        .request(
            http::Method::POST,
            &sink.url,
            &headers,
            body,
            sink.delivery.timeout,
            MAX_ANSWER,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_fresh_timestamp() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let body = br#"{"version":1}"#;
        let sig = sign(secret, 1_800_000_000, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert!(verify(secret, "1800000000", &sig, body, 1_800_000_010, 300));
        assert!(
            !verify(
                secret,
                "1800000000",
                &sig,
                br#"{"version":2}"#,
                1_800_000_010,
                300
            ),
            "body changed"
        );
        assert!(!verify(
            b"another secret, 32 bytes long...",
            "1800000000",
            &sig,
            body,
            1_800_000_010,
            300
        ));
        assert!(
            !verify(secret, "1800000001", &sig, body, 1_800_000_010, 300),
            "timestamp is in the MAC"
        );
        assert!(
            !verify(secret, "1800000000", &sig, body, 1_800_000_400, 300),
            "too old: a replay"
        );
        for bad in ["", "sha256=", "sha1=00", "sha256=zz", "sha256=0"] {
            assert!(
                !verify(secret, "1800000000", bad, body, 1_800_000_000, 300),
                "{bad:?}"
            );
        }
        assert!(!verify(secret, "x", &sig, body, 1_800_000_000, 300));
    }

    #[test]
    fn the_signature_matches_an_independent_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = b"Jefe";
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Ours is the same MAC over "<ts>." + body.
        let ours = sign(key, 7, b"what do ya want for nothing?");
        let direct = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            b"7.what do ya want for nothing?",
        );
        assert_eq!(ours, format!("sha256={}", hex(direct.as_ref())));
    }
}
