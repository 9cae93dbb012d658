//! A small HTTP(S) client with a hard deadline and a body limit on every exchange.
//!
//! Used by the agent's push tasks, its probes and the `cluster status` reader. It never
//! follows redirects (hyper does not), so a compromised or misconfigured endpoint cannot
//! bounce a token somewhere else.

use crate::quickack::QuickAckConnector;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(usize),
}

impl ClientError {
    /// Whether trying again later could succeed (connect errors and timeouts can;
    /// a malformed URL cannot).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ClientError::Url(_))
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the client's sockets acknowledge what they receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// The kernel's default: delayed ACKs.
    Delayed,
    /// TCP_QUICKACK re-armed after every read, for servers that split an answer into
    /// several writes with Nagle on (Patroni); see [`crate::quickack`].
    Quick,
}

#[derive(Clone)]
pub struct HttpsClient {
    inner: Client<HttpsConnector<QuickAckConnector>, Full<Bytes>>,
}

impl HttpsClient {
    /// A client for `https://` (verified with `tls`) and plain `http://` URLs.
    /// `connect_timeout` bounds the TCP connect; the whole exchange is bounded per call.
    pub fn new(tls: ClientConfig, connect_timeout: Duration) -> Self {
        Self::with_acks(tls, connect_timeout, Acks::Delayed)
    }

    /// [`HttpsClient::new`] with a choice of acknowledgements.
    pub fn with_acks(mut tls: ClientConfig, connect_timeout: Duration, acks: Acks) -> Self {
        // hyper-rustls sets ALPN from enable_http1/enable_http2 and panics if the config
        // already has some (client_config() offers h2 and http/1.1 for other users).
        tls.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(QuickAckConnector {
                inner: http,
                quick: acks == Acks::Quick,
            });
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4)
            .build(connector);
        HttpsClient { inner }
    }

    /// A client for plain-HTTP endpoints only: `https://` URLs fail verification,
    /// because it trusts no CA at all.
    pub fn plain(connect_timeout: Duration) -> Self {
        Self::plain_with_acks(connect_timeout, Acks::Delayed)
    }

    /// [`HttpsClient::plain`] with a choice of acknowledgements.
    pub fn plain_with_acks(connect_timeout: Duration, acks: Acks) -> Self {
        Self::with_acks(crate::trust_nothing_config(), connect_timeout, acks)
    }

    /// One request, bounded by `deadline` end to end (connect, headers, body) and by
    /// `max_body` bytes of response.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        deadline: Duration,
        max_body: usize,
    ) -> Result<Response, ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.to_string()))?;
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                if e.is_connect() {
                    ClientError::Connect(error_chain(&e))
                } else {
                    ClientError::Request(error_chain(&e))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_body).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ClientError::BodyTooLarge(max_body)
                } else {
                    ClientError::Request(e.to_string())
                }
            })?;
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body: body.to_bytes(),
            })
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| ClientError::Timeout(deadline))?
    }

    /// A GET whose body is read as it arrives (an event stream): the status, headers and
    /// unread body, once the head came within `head_deadline`. The caller bounds the body
    /// reads (how long, how much).
    pub async fn open_stream(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        head_deadline: Duration,
    ) -> Result<(StatusCode, HeaderMap, hyper::body::Incoming), ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.to_string()))?;
        let mut req = http::Request::builder().method(Method::GET).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let resp = tokio::time::timeout(head_deadline, self.inner.request(req))
            .await
            .map_err(|_| ClientError::Timeout(head_deadline))?
            .map_err(|e| {
                if e.is_connect() {
                    ClientError::Connect(error_chain(&e))
                } else {
                    ClientError::Request(error_chain(&e))
                }
            })?;
        let (parts, body) = resp.into_parts();
        Ok((parts.status, parts.headers, body))
    }

    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Duration,
        max_body: usize,
    ) -> Result<Response, ClientError> {
        self.request(Method::GET, url, headers, Bytes::new(), deadline, max_body)
            .await
    }
}

/// The error and its sources on one line: hyper's top-level messages alone
/// ("client error (Connect)") don't tell an operator what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        src = s.source();
    }
    out
}
