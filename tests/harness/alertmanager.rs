//! A real Alertmanager (Debian's `prometheus-alertmanager`) on a free loopback port with
//! its own storage in a temp dir and gossip off (`--cluster.listen-address=`), for the
//! alerts suite. One route to a receiver that notifies nothing: the suite reads what
//! Alertmanager holds through its own API (`GET /api/v2/alerts`). Killed on drop.

use super::lab::free_ports;
use super::poll::wait_for;
use super::rest;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

const CONFIG: &str = r#"route:
  receiver: nowhere
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: nowhere
"#;

impl Alertmanager {
    /// `None` when the package is missing outside CI (under CI its absence fails).
    pub fn start(dir: &Path) -> Option<Alertmanager> {
        if !Path::new(BIN).exists() {
            assert!(
                !super::ci(),
                "{BIN} is missing (apt-get install prometheus-alertmanager; tests/run.sh does it)"
            );
            eprintln!("SKIP: {BIN} is not installed");
            return None;
        }
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("alertmanager.yml"), CONFIG).unwrap();
        let port = free_ports(1).unwrap()[0];
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new(BIN)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        let am = Alertmanager {
            port,
            dir: dir.to_path_buf(),
            child,
        };
        wait_for("Alertmanager to be ready", super::DEADLINE, || {
            rest::get(&am.url("/-/ready"), None)
                .ok()
                .filter(|r| r.status == 200)
        });
        Some(am)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /api/v2/alerts`: the alerts it holds that have not ended (resolved ones are
    /// left out by Alertmanager itself).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let r = rest::get(&self.url("/api/v2/alerts"), None).expect("GET /api/v2/alerts");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json().as_array().cloned().unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long Alertmanager may take to show a posted alert: it answers the POST once the
/// alert is stored, so this only bounds a slow machine.
pub const SHOWN_WITHIN: Duration = Duration::from_secs(60);
