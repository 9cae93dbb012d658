//! Blocking HTTP(S) for the sync suites (the lab clusters' REST APIs), through the
//! workspace's own client (`sr_tls::HttpsClient`: a deadline and a body limit on every
//! exchange). Each call runs on a private current-thread runtime on its own thread, so it
//! works from a plain `#[test]` and from inside another runtime alike.

use anyhow::{bail, Context, Result};
use base64::Engine;
use std::path::Path;
use std::time::Duration;

/// How long one exchange may take, connect to last body byte.
const EXCHANGE: Duration = Duration::from_secs(10);
/// Enough for any management or REST API answer the suites read.
const MAX_BODY: usize = 16 << 20;

/// A complete answer: any status is `Ok`; no answer at all (refused, reset, timeout, TLS
/// failure) is `Err`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Who the client trusts and presents: nothing (plain `http://`), or a CA file and an
/// optional client certificate for mutual TLS.
#[derive(Clone, Copy, Default)]
pub struct Tls<'a> {
    pub ca: Option<&'a Path>,
    pub identity: Option<(&'a Path, &'a Path)>,
}

/// `GET url` with optional HTTP Basic credentials, plain `http://` on loopback.
pub fn get(url: &str, basic_auth: Option<(&str, &str)>) -> Result<Response> {
    let auth = basic_auth.map(|(user, password)| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b64}")
    });
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(Tls::default(), "GET", url, &headers, None)
}

/// Any method with an optional JSON body. Refuses non-loopback hosts: tests never send
/// traffic elsewhere.
pub fn request(
    tls: Tls<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    json_body: Option<&str>,
) -> Result<Response> {
    let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    if !matches!(uri.host(), Some("127.0.0.1" | "localhost")) {
        bail!("refusing non-loopback URL {url}");
    }
    let client = match tls.ca {
        None => sr_tls::HttpsClient::plain(EXCHANGE),
        Some(ca) => {
            let identity = tls
                .identity
                .map(|(cert, key)| sr_tls::ClientIdentity { cert, key });
            sr_tls::HttpsClient::new(sr_tls::client_config(ca, identity)?, EXCHANGE)
        }
    };
    let mut headers = headers.to_vec();
    if json_body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let method: http::Method = method.parse().context("HTTP method")?;
    let body = json_body.unwrap_or_default().to_string();
    let url = url.to_string();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(client.request(method, &url, &headers, body.into(), EXCHANGE, MAX_BODY))
        })
        .join()
        .expect("the HTTP thread does not panic")
    })
    .with_context(|| url.clone())?;
    Ok(Response {
        status: r.status.as_u16(),
        body: String::from_utf8_lossy(&r.body).into_owned(),
    })
}
