//! A loopback HTTPS server that answers as N OpenSearch + MinIO nodes would, from the
//! probe fixtures written from those projects' sources (`probes/fixtures/opensearch-2`,
//! `probes/fixtures/minio-2025-10-15`; neither is installable here, see their READMEs).
//!
//! Each node has its own port (TLS from the suite's CA through [`stand_in_manager`], HTTP/1.1
//! by hyper) serving `/`, `/_cluster/health`, `/_cat/nodes`, `/minio/health/live` and
//! `/minio/health/cluster[?maintenance=true]`. What they answer is a [`Scene`] the suite
//! switches at any time: the cluster's colour, which nodes' MinIO is down (the connection
//! is closed without an answer, as a dead process's port would give nothing), a 503
//! cluster check, a 412 maintenance answer. OpenSearch paths need the Basic auth the
//! server was made with, else the security plugin's 401.

use super::fixtures::stand_in_manager;
use super::Pki;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The OpenSearch cluster's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Yellow,
    Red,
}

/// What every node answers now.
#[derive(Debug, Clone)]
pub struct Scene {
    pub colour: Colour,
    /// Nodes (0-based) whose MinIO is down.
    pub minio_down: BTreeSet<usize>,
    /// `/minio/health/cluster` answers 503 (no write quorum) on every live node.
    pub cluster_503: bool,
    /// `?maintenance=true` answers 412 on every live node.
    pub maintenance_412: bool,
}

impl Default for Scene {
    fn default() -> Self {
        Scene {
            colour: Colour::Green,
            minio_down: BTreeSet::new(),
            cluster_503: false,
            maintenance_412: false,
        }
    }
}

/// The running server: one port per node; stops when dropped.
pub struct FixtureServer {
    scene: Arc<Mutex<Scene>>,
    /// `127.0.0.1:PORT` of node `i`.
    pub addrs: Vec<String>,
    rt: tokio::runtime::Runtime,
}

fn dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("probes/fixtures")
        .join(sub)
}

fn read(sub: &str, file: &str) -> String {
    let p = dir(sub).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

fn json(status: u16, body: String) -> Answer {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

/// A MinIO capture (`.http`: status line, headers, empty line, body) as the response.
fn capture(file: &str) -> Answer {
    let text = read("minio-2025-10-15", file);
    let (head, body) = text.split_once("\r\n\r\n").expect("a capture has a head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut r = Response::builder().status(status);
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        // hyper writes its own Content-Length and Date.
        if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("date") {
            r = r.header(k.trim(), v.trim());
        }
    }
    Ok(r.body(Full::new(Bytes::from(body.to_string()))).unwrap())
}

/// The answer of node `node` to `req` in `scene`.
fn answer(node: usize, auth: &str, scene: &Scene, req: &Request<Incoming>) -> Answer {
    let os = "opensearch-2";
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if path.starts_with("/minio/") {
        if scene.minio_down.contains(&node) {
            return Err(std::io::Error::other("this node's MinIO is down"));
        }
        return match (path, query.contains("maintenance=true")) {
            ("/minio/health/live", _) => capture("live-ok.http"),
            ("/minio/health/cluster", true) if scene.maintenance_412 => {
                capture("maintenance-412.http")
            }
            ("/minio/health/cluster", true) => capture("maintenance-ok.http"),
            ("/minio/health/cluster", false) if scene.cluster_503 => {
                capture("cluster-no-quorum.http")
            }
            ("/minio/health/cluster", false) => capture("cluster-ok.http"),
            _ => json(404, String::new()),
        };
    }
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == auth.as_bytes());
    if !authorized {
        return Ok(Response::builder()
            .status(401)
            .header("www-authenticate", "Basic realm=\"OpenSearch Security\"")
            .header("content-type", "text/plain; charset=UTF-8")
            .body(Full::new(Bytes::from(read(os, "health-401.txt"))))
            .unwrap());
    }
    let two = scene.colour != Colour::Green;
    match path {
        "/" => json(
            200,
            read(os, "root-os1.json").replace("\"os1\"", &format!("\"os{}\"", node + 1)),
        ),
        "/_cluster/health" => json(
            200,
            read(
                os,
                match scene.colour {
                    Colour::Green => "health-green.json",
                    Colour::Yellow => "health-yellow.json",
                    Colour::Red => "health-red.json",
                },
            ),
        ),
        "/_cat/nodes" => json(
            200,
            read(
                os,
                if two {
                    "cat-nodes-2.json"
                } else {
                    "cat-nodes-3.json"
                },
            ),
        ),
        _ => json(404, String::new()),
    }
}

impl FixtureServer {
    /// `nodes` nodes on loopback with a certificate from `pki`; OpenSearch paths require
    /// Basic `user:password`.
    pub fn start(pki: &Pki, nodes: usize, user: &str, password: &str) -> FixtureServer {
        use base64::Engine;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let scene = Arc::new(Mutex::new(Scene::default()));
        let (cert, key) = pki.server("fixture-server");
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let addrs = (0..nodes)
            .map(|node| {
                let (scene, auth) = (scene.clone(), auth.clone());
                stand_in_manager(&rt, (&cert, &key), move |stream| {
                    let (scene, auth) = (scene.clone(), auth.clone());
                    async move {
                        let service = hyper::service::service_fn(move |req| {
                            let now = scene.lock().unwrap().clone();
                            let a = answer(node, &auth, &now, &req);
                            async move { a }
                        });
                        // A closed connection (a node down) ends this task; nothing to report.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                })
            })
            .collect();
        FixtureServer { scene, addrs, rt }
    }

    /// Changes what every node answers from the next request on.
    pub fn set(&self, change: impl FnOnce(&mut Scene)) {
        change(&mut self.scene.lock().unwrap());
    }
}
