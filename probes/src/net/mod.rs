//! Network plumbing the probes share, apart from any one probe: HTTP(S) exchanges as data
//! ([`http`]), the AMQP round trip ([`amqp`]), the one [`Secret`] type, and the checks
//! every `host`/`port`/`user` endpoint setting gets.

pub mod amqp;
pub mod http;
mod secret;

pub(crate) use http::validate_base;
pub use http::{
    basic_auth, fetch, fetch_with_headers, parse_answer, parse_json, Fetch, Reply, TlsFiles,
    MAX_HEADER_VALUE, MAX_KEPT_HEADERS,
};
pub use secret::Secret;

use crate::range_error;

/// Problems with a `host:port` endpoint a probe logs in to as `username`, bounded by
/// `timeout_ms`; `what` names the section in messages (`amqp`, `postgresql`).
pub(crate) fn validate_endpoint(
    host: &str,
    port: u16,
    username: &str,
    timeout_ms: u64,
    what: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    if host.trim().is_empty() || host.contains(['/', ' ', '@']) {
        errors.push(format!(
            "{what} host {host:?} must be a bare host name or IP"
        ));
    }
    if port == 0 {
        errors.push(format!("{what} port must not be 0"));
    }
    if username.is_empty() {
        errors.push(format!("{what} username must not be empty"));
    }
    errors.extend(range_error(
        &format!("{what} timeout_ms"),
        timeout_ms,
        100..=60_000,
    ));
    errors
}
