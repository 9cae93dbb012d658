//! HTTP(S) plumbing shared by the `patroni`, `etcd`, `rabbitmq` and `collector_self` probes.
//!
//! They talk to a local JSON endpoint that may require TLS with a private CA and a client
//! certificate (Patroni `verify_client: required`, etcd `--client-cert-auth`). This module
//! turns their TLS settings into an [`HttpsClient`] and every exchange into a [`Fetch`]:
//! a failure is data with a category the probes can reason about, never an `Err`.

use super::Secret;
use serde::{Deserialize, Serialize};
use sr_tls::client::ClientError;
use sr_tls::{Acks, ClientIdentity, HttpsClient};
use std::path::PathBuf;
use std::time::Duration;

/// TLS material for an `https://` endpoint. All paths are PEM files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The only CA trusted for the server certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain, for servers that require one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// Problems with these settings for `url`; `what` names the section in messages.
    pub fn validate(&self, url: &str, what: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            errors.push(format!(
                "{what} url {url:?} must start with http:// or https://"
            ));
        }
        if https && self.ca_file.is_none() {
            errors.push(format!("{what} url is https:// but ca_file is not set"));
        }
        if !https && (self.ca_file.is_some() || self.cert_file.is_some()) {
            errors.push(format!("{what} has TLS files but its url is not https://"));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            errors.push(format!(
                "{what}: cert_file and key_file must be set together"
            ));
        }
        errors
    }

    /// A client for this endpoint. Unreadable or invalid TLS files are an error string the
    /// probe reports as its finding each cycle.
    pub fn client(&self, connect_timeout: Duration) -> Result<HttpsClient, String> {
        self.client_with_acks(connect_timeout, Acks::Delayed)
    }

    /// [`TlsFiles::client`] with a choice of acknowledgements. The `patroni` probe asks for
    /// [`Acks::Quick`]: Patroni's REST server writes an answer's headers and body
    /// separately with Nagle on, so with the kernel's delayed ACK every request stalled
    /// ~40–45 ms (BENCHMARKS.md, "db probes"). Patroni 3.0 answers HTTP/1.0 and closes the
    /// connection, so keep-alive cannot help there.
    pub fn client_with_acks(
        &self,
        connect_timeout: Duration,
        acks: Acks,
    ) -> Result<HttpsClient, String> {
        let Some(ca) = &self.ca_file else {
            return Ok(HttpsClient::plain_with_acks(connect_timeout, acks));
        };
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
            _ => None,
        };
        let tls = sr_tls::client_config(ca, identity).map_err(|e| e.to_string())?;
        Ok(HttpsClient::with_acks(tls, connect_timeout, acks))
    }
}

/// One HTTP exchange as the probe saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetch {
    /// The server answered; the body is at most the configured limit.
    Answered {
        status: u16,
        body: Vec<u8>,
    },
    /// TCP or TLS connect failed (refused, unknown CA, missing client certificate).
    ConnectFailed(String),
    /// Connected, but the server closed the connection without an HTTP response, or the
    /// exchange broke half-way. Patroni does this on `/cluster` when etcd is unreachable.
    NoResponse(String),
    TimedOut {
        after_ms: u64,
    },
    TooLarge {
        limit: usize,
    },
    /// The probe could not even build its client (TLS files unreadable).
    Setup(String),
}

impl Fetch {
    /// One line for reasons: what went wrong, without the body.
    pub fn describe(&self) -> String {
        match self {
            Fetch::Answered { status, .. } => format!("HTTP {status}"),
            Fetch::ConnectFailed(e) => format!("cannot connect: {e}"),
            Fetch::NoResponse(e) => format!("connection closed without a response: {e}"),
            Fetch::TimedOut { after_ms } => format!("no answer within {after_ms} ms"),
            Fetch::TooLarge { limit } => format!("response larger than {limit} bytes"),
            Fetch::Setup(e) => format!("TLS setup failed: {e}"),
        }
    }
}

/// GET (or POST with `body`) `url` with Basic auth if given, bounded by `deadline` and
/// `max_body`.
pub async fn fetch(
    client: &Result<HttpsClient, String>,
    method: http::Method,
    url: &str,
    auth_header: Option<&str>,
    body: &'static [u8],
    deadline: Duration,
    max_body: usize,
) -> Fetch {
    match send(client, method, url, auth_header, body, deadline, max_body).await {
        Ok(resp) => Fetch::Answered {
            status: resp.status.as_u16(),
            body: resp.body.to_vec(),
        },
        Err(f) => f,
    }
}

/// Response headers kept by [`fetch_with_headers`] at most, and the longest value kept:
/// a hostile server cannot grow the probe's raw past a few KiB this way.
pub const MAX_KEPT_HEADERS: usize = 16;
pub const MAX_HEADER_VALUE: usize = 128;

/// [`fetch`] (GET) that also keeps the response headers whose lower-case name starts with
/// `prefix` (MinIO answers its health checks in `x-minio-*` headers, with empty bodies):
/// at most [`MAX_KEPT_HEADERS`], values cut to [`MAX_HEADER_VALUE`] bytes, lossily UTF-8.
pub async fn fetch_with_headers(
    client: &Result<HttpsClient, String>,
    url: &str,
    auth_header: Option<&str>,
    deadline: Duration,
    max_body: usize,
    prefix: &str,
) -> (Fetch, Vec<(String, String)>) {
    match send(
        client,
        http::Method::GET,
        url,
        auth_header,
        b"",
        deadline,
        max_body,
    )
    .await
    {
        Ok(resp) => {
            let kept = resp
                .headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with(prefix))
                .take(MAX_KEPT_HEADERS)
                .map(|(k, v)| {
                    let v = String::from_utf8_lossy(v.as_bytes());
                    let mut end = v.len().min(MAX_HEADER_VALUE);
                    while !v.is_char_boundary(end) {
                        end -= 1;
                    }
                    (k.as_str().to_string(), v[..end].to_string())
                })
                .collect();
            let fetch = Fetch::Answered {
                status: resp.status.as_u16(),
                body: resp.body.to_vec(),
            };
            (fetch, kept)
        }
        Err(f) => (f, Vec::new()),
    }
}

/// One exchange: the response, or what went wrong as a [`Fetch`].
async fn send(
    client: &Result<HttpsClient, String>,
    method: http::Method,
    url: &str,
    auth_header: Option<&str>,
    body: &'static [u8],
    deadline: Duration,
    max_body: usize,
) -> Result<sr_tls::client::Response, Fetch> {
    let client = match client {
        Ok(c) => c,
        Err(e) => return Err(Fetch::Setup(e.clone())),
    };
    let mut headers: Vec<(&str, &str)> = vec![("accept", "application/json")];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(a) = auth_header {
        headers.push(("authorization", a));
    }
    client
        .request(
            method,
            url,
            &headers,
            hyper::body::Bytes::from_static(body),
            deadline,
            max_body,
        )
        .await
        .map_err(|e| match e {
            ClientError::Connect(e) => Fetch::ConnectFailed(e),
            ClientError::Timeout(d) => Fetch::TimedOut {
                after_ms: d.as_millis() as u64,
            },
            ClientError::BodyTooLarge(limit) => Fetch::TooLarge { limit },
            ClientError::Url(u) => Fetch::Setup(format!("invalid URL {u:?}")),
            ClientError::Request(e) => classify_request_error(e),
        })
}

/// hyper reports a TLS handshake failure on a fresh connection either as a connect error
/// or as a request error depending on where it surfaced; anything mentioning the
/// certificate is a connect problem for the operator.
fn classify_request_error(e: String) -> Fetch {
    if e.contains("certificate") || e.contains("handshake") || e.contains("alert") {
        Fetch::ConnectFailed(e)
    } else {
        Fetch::NoResponse(e)
    }
}

/// Problems with a probe's base URL `url` (with `tls`) and its per-request `timeout_ms`;
/// `what` names the section. A base URL carries no query or fragment: paths are appended.
pub(crate) fn validate_base(url: &str, tls: &TlsFiles, timeout_ms: u64, what: &str) -> Vec<String> {
    let mut errors = tls.validate(url, what);
    if url.contains(['?', '#']) {
        errors.push("url must not carry a query or fragment".into());
    }
    errors.extend(crate::range_error("timeout_ms", timeout_ms, 100..=60_000));
    errors
}

/// One exchange as a probe's raw keeps it (and as captured fixtures hold it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// The server answered; the body is at most the probe's limit, lossily UTF-8.
    Answered { status: u16, body: String },
    /// No HTTP answer: connect refused, TLS, timeout, oversized body.
    Failed { error: String },
}

impl From<Fetch> for Reply {
    fn from(f: Fetch) -> Self {
        match f {
            Fetch::Answered { status, body } => Reply::Answered {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            other => Reply::Failed {
                error: other.describe(),
            },
        }
    }
}

/// `Basic base64(user:password)`, the header HTTP endpoints take the password in.
pub fn basic_auth(user: &str, password: &Secret) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()))
    )
}

/// A JSON body parsed into `T`, or a short reason. Bodies are already size-limited by
/// [`fetch`]; this adds the type check and keeps the serde message (which says where).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        if body.is_empty() {
            "empty body".to_string()
        } else {
            format!("invalid JSON: {e}")
        }
    })
}

/// A 200 answer's JSON body parsed into `T`, or one line saying why there is none (another
/// status, or the exchange failed).
pub fn parse_answer<T: serde::de::DeserializeOwned>(fetch: &Fetch) -> Result<T, String> {
    match fetch {
        Fetch::Answered { status: 200, body } => parse_json(body),
        Fetch::Answered { status, .. } => Err(format!("unexpected HTTP {status}")),
        other => Err(other.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_checked_together() {
        let t = TlsFiles {
            ca_file: None,
            cert_file: Some("c".into()),
            key_file: None,
        };
        let errs = t.validate("https://127.0.0.1:8008", "patroni");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(TlsFiles::default().validate("ftp://x", "etcd").len(), 1);
    }

    #[test]
    fn unreadable_tls_files_become_a_setup_error() {
        let t = TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = t.client(Duration::from_millis(100)).err().unwrap();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn basic_auth_is_rfc7617() {
        assert_eq!(
            basic_auth("Aladdin", &Secret::new("open sesame")),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
