//! Report ingest: `PUT /api/v3.1/cluster-status/{manager|db|broker}/{node_id}`.
//!
//! The order is the security argument, cheapest and least trusting first:
//! 1. size: a declared `Content-Length` over the limit is refused before any byte is read;
//! 2. content type exactly `application/json` (415);
//! 3. token: unknown or revoked 401, wrong role for the node type 403;
//! 4. path: node type and node id (`[A-Za-z0-9._-]{1,128}`, not `.`/`..`);
//! 5. the body, read under a byte limit and a deadline;
//! 6. the signature over the exact bytes, **before** the body is parsed; unsigned
//!    reports only with `allow_unsigned_legacy`, and never for a node with a pinned key;
//! 7. the pin (trust on first use) and replay state `(boot_id, seq)`;
//! 8. only then `ReportBody::decode`;
//! 9. pins and transitions are committed durably, then memory is updated and 200 sent;
//!    under `admission = "approve"` a node id not admitted yet is held in the store's
//!    pending list instead ([`hold`]: 202, not in the view).
//!
//! Freshness and skew use the collector's receive time only.
//!
//! The steps are typed, each taking the previous one's output: [`verify`] (1–6) →
//! [`accept`] (7–8) → [`commit`] (9) → [`answer`]. Each refusal is a [`Refusal`]
//! variant, which maps to the HTTP status and `{message, error_code}`.

mod accept;
mod budget;
mod commit;
mod hold;
mod refusal;
pub(crate) mod trust;
mod verify;

pub use budget::NewNodeBudget;
pub use refusal::Refusal;

use crate::app::App;
use crate::rollup::rfc3339_ms;
use crate::state::Counters;
use axum::body::Body;
use commit::Committed;
use http::HeaderMap;
use std::net::IpAddr;

pub(crate) use accept::listed_address;

/// A node id is 1–128 characters of `[A-Za-z0-9._-]` and not `.` or `..`: it names rows
/// and appears in paths, so nothing that could traverse or inject is accepted.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Handles one report. Returns the 200 body or a refusal; never panics on input.
pub async fn handle(
    app: &App,
    node_type: &str,
    node_id: &str,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    peer: Option<IpAddr>,
) -> Result<Answer, Refusal> {
    let result = async {
        let verified = verify::verify(app, node_type, node_id, path, headers, body).await?;
        let accepted = accept::accept(app, verified, peer).await?;
        if accepted.held {
            return Err(hold::hold(app, accepted, peer).await);
        }
        commit::commit(app, accepted).await
    }
    .await;
    match result {
        Ok(committed) => {
            Counters::bump(&app.mem.counters.accepted);
            Ok(answer(committed))
        }
        Err(Refusal::HeldForApproval) => {
            Counters::bump(&app.mem.counters.reports_held);
            Err(Refusal::HeldForApproval)
        }
        Err(refusal) => {
            Counters::bump(&app.mem.counters.rejected);
            // The token is never logged: only the outcome and the node.
            tracing::debug!(node_type, node_id = %node_id.chars().take(128).collect::<String>(), status = refusal.status().as_u16(), code = refusal.code(), "report refused");
            Err(refusal)
        }
    }
}

/// The 200 body, which tells the agent what is now durable. Serialised straight from
/// this struct (no `serde_json::Value` map in between); the fields are in alphabetical
/// order, so the bytes are those the map used to give.
#[derive(Debug, serde::Serialize)]
pub struct Answer {
    acked_seq: Option<u64>,
    boot_id: Option<String>,
    key_pinned: bool,
    node_id: String,
    received_at: Option<String>,
    skew_ms: i64,
    status: &'static str,
    transitions_acked: Option<u64>,
}

impl Answer {
    /// The bytes `serde_json` gives for this struct (tested), written by hand: with the
    /// keys as literals this costs a fraction of the generic serialiser's instructions per
    /// report (collector-bench --count). Strings go through serde_json's escaping.
    pub fn to_json(&self) -> Vec<u8> {
        fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
            serde_json::to_writer(out, v).expect("a string or number always serialises");
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"acked_seq\":");
        json(&mut out, &self.acked_seq);
        out.extend_from_slice(b",\"boot_id\":");
        json(&mut out, &self.boot_id);
        out.extend_from_slice(if self.key_pinned {
            b",\"key_pinned\":true,\"node_id\":"
        } else {
            b",\"key_pinned\":false,\"node_id\":"
        });
        json(&mut out, &self.node_id);
        out.extend_from_slice(b",\"received_at\":");
        json(&mut out, &self.received_at);
        out.extend_from_slice(b",\"skew_ms\":");
        json(&mut out, &self.skew_ms);
        out.extend_from_slice(b",\"status\":");
        json(&mut out, self.status);
        out.extend_from_slice(b",\"transitions_acked\":");
        json(&mut out, &self.transitions_acked);
        out.push(b'}');
        out
    }
}

/// The 200 answer, `Content-Type: application/json` as `axum::Json` gives it.
impl axum::response::IntoResponse for Answer {
    fn into_response(self) -> axum::response::Response {
        let mut response = axum::response::Response::new(axum::body::Body::from(self.to_json()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Step 4, answer.
fn answer(c: Committed) -> Answer {
    Answer {
        acked_seq: c.acked_seq,
        boot_id: c.boot_id,
        key_pinned: c.key_pinned,
        received_at: rfc3339_ms(c.received_ms),
        node_id: c.node_id,
        skew_ms: c.skew_ms,
        status: "accepted",
        transitions_acked: c.transitions_acked,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_node_id;

    #[test]
    fn the_answer_is_the_json_the_map_gave() {
        for (boot, seq, acked) in [
            (Some("b1"), Some(7), Some(3)),
            (None, None, None),
            (Some("b\"1\\\u{1}é\u{2028}</"), Some(u64::MAX), Some(0)),
        ] {
            let c = super::Committed {
                node_id: "n1".into(),
                boot_id: boot.map(String::from),
                acked_seq: seq,
                transitions_acked: acked,
                received_ms: 1_800_000_000_123,
                skew_ms: -42,
                key_pinned: boot.is_some(),
            };
            let map = serde_json::json!({
                "status": "accepted",
                "node_id": c.node_id,
                "acked_seq": c.acked_seq,
                "boot_id": c.boot_id,
                "transitions_acked": c.transitions_acked,
                "received_at": super::rfc3339_ms(c.received_ms),
                "skew_ms": c.skew_ms,
                "key_pinned": c.key_pinned,
            });
            let answer = super::answer(c);
            let got = serde_json::to_string(&answer).unwrap();
            assert_eq!(got, serde_json::to_string(&map).unwrap());
            // The hand-written bytes the 200 carries are the same, typed as axum's Json did.
            assert_eq!(String::from_utf8(answer.to_json()).unwrap(), got);
            let response = axum::response::IntoResponse::into_response(answer);
            assert_eq!(response.status(), http::StatusCode::OK);
            assert_eq!(
                response.headers().get(http::header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            assert_eq!(response.headers().len(), 1);
        }
    }

    #[test]
    fn node_ids_with_path_tricks_are_refused() {
        for ok in ["3d5d-uuid", "db1.example.com", "a_b", &"x".repeat(128)] {
            assert!(valid_node_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a%2Fb",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0b",
            "a\\b",
        ] {
            assert!(!valid_node_id(bad), "{bad:?}");
        }
    }
}
