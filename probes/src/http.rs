//! `http`: a configured local HTTP(S) endpoint answers with the expected status in time.
//!
//! HTTPS endpoints are verified against the configured CA only, like every TLS client
//! in this project. The response body is read up to a small limit and ignored: this
//! probe checks that the service answers, not what it says.

use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use sr_tls::client::{ClientError, HttpsClient};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Display name of the service this endpoint stands for.
    pub name: String,
    /// `http://...` or `https://...`.
    pub url: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// CA to verify an `https://` endpoint with (required for https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_path: Option<PathBuf>,
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
    #[serde(default = "yes")]
    pub critical: bool,
}

fn default_status() -> u16 {
    200
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push("name must not be empty".to_string());
        }
        match self.url.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") || u.scheme_str() == Some("https") => {
                if u.scheme_str() == Some("https") && self.ca_path.is_none() {
                    errors.push(format!(
                        "url {:?} is https: set ca_path to the CA that signs it",
                        self.url
                    ));
                }
                if u.host().is_none() {
                    errors.push(format!("url {:?} has no host", self.url));
                }
            }
            _ => errors.push(format!(
                "url {:?} must be an http:// or https:// URL",
                self.url.chars().take(200).collect::<String>()
            )),
        }
        errors.extend(range_error(
            "expect_status",
            u64::from(self.expect_status),
            100..=599,
        ));
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Answered { status: u16, latency: Duration },
    Failed { error: String },
}

/// One bounded GET through `client`.
async fn get(cfg: &Config, client: &HttpsClient) -> Raw {
    let start = Instant::now();
    match client
        .get(
            &cfg.url,
            &[],
            Duration::from_millis(cfg.timeout_ms),
            MAX_BODY,
        )
        .await
    {
        Ok(r) => Raw::Answered {
            status: r.status.as_u16(),
            latency: start.elapsed(),
        },
        Err(ClientError::Timeout(_)) => Raw::Failed {
            error: format!("timed out: no answer within {} ms", cfg.timeout_ms),
        },
        // A status line arrived but the body was huge: the service answered.
        Err(ClientError::BodyTooLarge(n)) => Raw::Failed {
            error: format!("response body larger than {n} bytes"),
        },
        Err(e) => Raw::Failed {
            error: e.to_string(),
        },
    }
}

/// The `http` probe: its client is built once from the config.
pub struct Http {
    /// An unloadable CA makes every run a Fail with the cause.
    client: Result<HttpsClient, String>,
}

impl TypedProbe for Http {
    const KIND: &'static str = "http";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        let connect = Duration::from_millis(cfg.timeout_ms);
        let client = match &cfg.ca_path {
            Some(ca) => sr_tls::client_config(ca, None)
                .map(|tls| HttpsClient::new(tls, connect))
                .map_err(|e| e.to_string()),
            None => Ok(HttpsClient::plain(connect)),
        };
        Http { client }
    }

    fn instance(config: &Config) -> Option<&str> {
        Some(&config.name)
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        match &self.client {
            Ok(c) => get(cfg, c).await,
            Err(e) => Raw::Failed {
                error: format!("cannot set up TLS: {e}"),
            },
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let down = if cfg.critical {
            NodeStatus::Fail
        } else {
            NodeStatus::Degraded
        };
        let mut f = Finding::ok();
        let mut extra = serde_json::Map::new();
        extra.insert("url".into(), cfg.url.clone().into());
        let active = match raw {
            Raw::Answered { status, latency } => {
                extra.insert("http_status".into(), (*status).into());
                extra.insert("latency_ms".into(), (latency.as_secs_f64() * 1000.0).into());
                if *status == cfg.expect_status {
                    true
                } else {
                    f.worsen(
                        down,
                        codes::UNEXPECTED_STATUS,
                        format!(
                            "{} ({}) answered {status}, expected {}",
                            cfg.name, cfg.url, cfg.expect_status
                        ),
                    );
                    false
                }
            }
            Raw::Failed { error } => {
                let code = if error.starts_with("timed out") {
                    codes::ENDPOINT_TIMEOUT
                } else {
                    codes::ENDPOINT_UNREACHABLE
                };
                f.worsen(down, code, format!("{} ({}): {error}", cfg.name, cfg.url));
                false
            }
        };
        f.set_service(cfg.name.clone(), active, None, extra);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::ServiceStatus;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn cfg(url: &str) -> Config {
        Config {
            name: "web".into(),
            url: url.into(),
            expect_status: 200,
            ca_path: None,
            timeout_ms: 300,
            critical: true,
        }
    }

    #[test]
    fn statuses_and_failures_are_interpreted() {
        let c = cfg("http://127.0.0.1:1/");
        assert_eq!(
            Http::interpret(
                &c,
                &Raw::Answered {
                    status: 200,
                    latency: Duration::ZERO
                }
            )
            .status,
            NodeStatus::Ok
        );
        let f = Http::interpret(
            &c,
            &Raw::Answered {
                status: 503,
                latency: Duration::ZERO,
            },
        );
        assert_eq!(
            (f.status, f.reasons[0].code.as_str()),
            (NodeStatus::Fail, "unexpected_status")
        );
        assert_eq!(f.services["web"].status, ServiceStatus::Inactive);
        let f = Http::interpret(
            &Config {
                critical: false,
                ..c
            },
            &Raw::Failed {
                error: "timed out: x".into(),
            },
        );
        assert_eq!(
            (f.status, f.reasons[0].code.as_str()),
            (NodeStatus::Degraded, "endpoint_timeout")
        );
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for bad in ["ftp://x/", "not a url", "https://x/"] {
            assert!(!cfg(bad).validate().is_empty(), "{bad}");
        }
        assert!(cfg("http://127.0.0.1:8008/health").validate().is_empty());
    }

    #[tokio::test]
    async fn a_server_that_accepts_and_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                held.push(s);
            }
        });
        let c = cfg(&format!("http://{addr}/"));
        let raw = get(&c, &HttpsClient::plain(Duration::from_secs(1))).await;
        assert!(
            matches!(&raw, Raw::Failed { error } if error.starts_with("timed out")),
            "{raw:?}"
        );
        hold.abort();
    }

    #[tokio::test]
    async fn a_real_http_answer_is_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let c = Config {
            expect_status: 204,
            ..cfg(&format!("http://{addr}/"))
        };
        let raw = get(&c, &HttpsClient::plain(Duration::from_secs(1))).await;
        assert!(matches!(raw, Raw::Answered { status: 204, .. }), "{raw:?}");
    }
}
