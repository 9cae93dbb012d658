//! `collector_self`: on a manager, the local collector is ready and its store is writable.
//!
//! Two independent checks, so a report says which one failed:
//! - readiness: `GET <url>` (the collector's `/api/v3.1/ok`, 200 while its store writer
//!   runs, 503 `store_unavailable` when it has stopped), bounded by `timeout_ms`;
//! - store writable: a small file is created, synced and removed in the store's directory,
//!   and the store file itself opens for writing. A full or read-only disk shows here
//!   before the collector starts dropping reports.
//!
//! It fills no legacy service: 5.0.5 has no entry for the status collector.

use crate::net::{fetch, Fetch, TlsFiles};
use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use sr_tls::HttpsClient;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The collector's readiness URL, e.g. `https://127.0.0.1:53333/api/v3.1/ok`.
    pub url: String,
    #[serde(default)]
    pub tls: TlsFiles,
    /// The collector's SQLite store file.
    pub store_path: PathBuf,
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = self.tls.validate(&self.url, "collector");
        if self
            .store_path
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty())
            || !self.store_path.is_absolute()
        {
            errors.push(format!(
                "store_path {:?} must be an absolute file path",
                self.store_path
            ));
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 100..=60_000));
        errors
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub ready: Fetch,
    /// `Err` says why the store is not writable.
    pub store: Result<(), String>,
}

/// Creates, syncs and removes a file next to the store, then opens the store for writing.
fn store_writable(store: &Path) -> Result<(), String> {
    let dir = store.parent().ok_or("store_path has no directory")?;
    let probe = dir.join(format!(
        ".status-reporter-write-check-{}",
        std::process::id()
    ));
    let attempt = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        f.write_all(b"ok")?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    attempt.map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    if store.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(store)
            .map_err(|e| format!("cannot open {} for writing: {e}", store.display()))?;
    }
    Ok(())
}

/// The `collector_self` probe: its HTTP client is built once from the config.
pub struct CollectorSelf {
    client: Result<HttpsClient, String>,
}

impl TypedProbe for CollectorSelf {
    const KIND: &'static str = "collector_self";
    type Config = Config;
    type Raw = Raw;

    fn new(cfg: &Config) -> Self {
        CollectorSelf {
            client: cfg.tls.client(Duration::from_millis(cfg.timeout_ms)),
        }
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = Duration::from_millis(cfg.timeout_ms);
        let store_path = cfg.store_path.clone();
        let store = async {
            match tokio::time::timeout(
                deadline,
                tokio::task::spawn_blocking(move || store_writable(&store_path)),
            )
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(format!("check aborted: {e}")),
                Err(_) => Err(format!(
                    "no answer from the filesystem within {} ms",
                    cfg.timeout_ms
                )),
            }
        };
        let ready = fetch(
            &self.client,
            http::Method::GET,
            &cfg.url,
            None,
            b"",
            deadline,
            64 * 1024,
        );
        let (ready, store) = tokio::join!(ready, store);
        Raw { ready, store }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let mut f = Finding::ok();
        match &raw.ready {
            Fetch::Answered { status: 200, .. } => {}
            other => f.worsen(
                NodeStatus::Fail,
                codes::COLLECTOR_NOT_READY,
                format!(
                    "collector at {} is not ready: {}",
                    cfg.url,
                    other.describe()
                ),
            ),
        }
        if let Err(e) = &raw.store {
            f.worsen(
                NodeStatus::Fail,
                codes::STORE_NOT_WRITABLE,
                format!(
                    "collector store {} is not writable: {e}",
                    cfg.store_path.display()
                ),
            );
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    fn cfg(url: String, store: PathBuf) -> Config {
        Config {
            url,
            tls: TlsFiles::default(),
            store_path: store,
            timeout_ms: 1000,
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = Config {
            url: "ftp://x".into(),
            tls: TlsFiles::default(),
            store_path: "rel.db".into(),
            timeout_ms: 0,
        };
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
    }

    #[tokio::test]
    async fn a_ready_collector_with_a_writable_store_is_ok_and_each_failure_is_named() {
        // A real HTTP endpoint that answers like the collector's `/api/v3.1/ok`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}")
                    .await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("collector.db");
        std::fs::write(&store, b"").unwrap();
        let p = crate::Scheduled::<CollectorSelf>::new(cfg(
            format!("http://{addr}/api/v3.1/ok"),
            store.clone(),
        ));
        let f = p.run(&ProbeContext { cycle: 0, now: 0 }).await;
        assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the check file is removed"
        );

        // The store's directory vanishes: not writable. The endpoint stops: not ready.
        server.abort();
        let _ = server.await;
        let gone = cfg(
            format!("http://{addr}/api/v3.1/ok"),
            dir.path().join("missing/collector.db"),
        );
        let f = crate::Scheduled::<CollectorSelf>::new(gone)
            .run(&ProbeContext { cycle: 1, now: 0 })
            .await;
        assert_eq!(f.status, NodeStatus::Fail);
        let codes: Vec<_> = f.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            ["collector_not_ready", "store_not_writable"],
            "{:?}",
            f.reasons
        );
    }

    #[test]
    fn a_503_from_the_collector_is_not_ready() {
        let c = cfg("http://127.0.0.1:1/api/v3.1/ok".into(), "/tmp/x.db".into());
        let raw = Raw {
            ready: Fetch::Answered {
                status: 503,
                body: b"{}".to_vec(),
            },
            store: Ok(()),
        };
        let f = CollectorSelf::interpret(&c, &raw);
        assert_eq!(f.status, NodeStatus::Fail);
        assert!(f.reasons[0].message.contains("HTTP 503"));
    }
}
