//! One `status-reporter cluster status --json` answer, read as an operator reads it, with
//! the accessors the broker suites assert on and a one-screen description for failures.

use serde_json::Value;
use sr_protocol::view::{ClusterStatus, NodeView, ServiceTypeView};
use sr_protocol::NodeStatus;
use std::path::Path;
use std::process::{Command, Stdio};

/// One `cluster status` answer.
pub struct Status {
    pub code: Option<i32>,
    pub view: Option<ClusterStatus>,
    /// The view as printed (`Null` when none was), for fields the typed view does not name.
    pub json: Value,
    pub stderr: String,
}

/// `status-reporter cluster status --json` against `manager` (`HOST:PORT`), trusting `ca`,
/// with an admin token, as an operator runs it.
pub fn command(manager: &str, ca: &Path, admin_token: &str) -> Command {
    let mut cmd = Command::new(super::BIN);
    cmd.args(["cluster", "status", "--json", "--timeout", "5"])
        .args(["--manager", manager, "--ca-path"])
        .arg(ca)
        .env("STATUS_REPORTER_TOKEN", admin_token);
    cmd
}

impl Status {
    /// Runs `cmd` (a `cluster status --json` command line). Checks that the exit code is the
    /// one the printed status implies.
    pub fn run(mut cmd: Command) -> Status {
        let out = cmd
            .env("STATUS_REPORTER_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let view: Option<ClusterStatus> = serde_json::from_slice(&out.stdout).ok();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let code = out.status.code();
        if let Some(v) = &view {
            assert_eq!(
                code,
                Some(v.status.exit_code()),
                "cluster status exit code vs its own JSON: {}",
                super::text(&out)
            );
        } else {
            // Only an unreachable collector may print no view, and then the code says so.
            assert_eq!(
                code,
                Some(3),
                "cluster status printed no view: {}",
                super::text(&out)
            );
        }
        Status {
            code,
            view,
            json,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The node shown as `name`, in whichever service type it reports, as printed.
    pub fn node_json(&self, name: &str) -> Option<&Value> {
        self.json["services"]
            .as_object()?
            .values()
            .find_map(|svc| svc["nodes"].get(name))
    }

    pub fn service(&self, t: &str) -> Option<&ServiceTypeView> {
        self.view.as_ref()?.services.get(t)
    }
    pub fn broker(&self) -> Option<&ServiceTypeView> {
        self.service("broker")
    }
    pub fn broker_status(&self) -> Option<NodeStatus> {
        self.broker().map(|b| b.status)
    }
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.broker()?.nodes.get(name)
    }
    pub fn node_status(&self, name: &str) -> Option<NodeStatus> {
        self.node(name).map(|n| n.status)
    }
    /// A broker-level reason with this code on this node (agent name).
    pub fn has_reason(&self, code: &str, node: &str) -> bool {
        self.broker().is_some_and(|b| {
            b.reasons
                .iter()
                .any(|r| r.code == code && r.node.as_deref() == Some(node))
        })
    }
    /// The node's own reasons with this code.
    pub fn node_reasons(&self, name: &str, code: &str) -> Vec<String> {
        self.node(name)
            .map(|n| {
                n.reasons
                    .iter()
                    .filter(|r| r.code == code)
                    .map(|r| r.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
    /// The node's legacy `RabbitMQ` service `extra_info`.
    pub fn rabbit_info(&self, name: &str) -> Option<&serde_json::Map<String, Value>> {
        self.node(name)?
            .services
            .get("RabbitMQ")?
            .get("extra_info")?
            .as_object()
    }
    /// One line per node plus the broker reasons, for failure messages.
    pub fn describe(&self) -> String {
        let Some(b) = self.broker() else {
            // Other suites' services: the printed view, cut to one screen.
            let json: String = self.json.to_string().chars().take(4000).collect();
            return format!(
                "exit {:?}, no broker view: {json}; stderr: {}",
                self.code,
                self.stderr.trim()
            );
        };
        let nodes: Vec<String> = b
            .nodes
            .iter()
            .map(|(k, n)| {
                let rs: Vec<String> = n
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.code, r.message))
                    .collect();
                format!("  {k} {} [{}]", n.status, rs.join(" | "))
            })
            .collect();
        let rs: Vec<String> = b
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{}@{}: {}",
                    r.code,
                    r.node.as_deref().unwrap_or("-"),
                    r.message
                )
            })
            .collect();
        format!(
            "exit {:?}, broker {}\n{}\n  reasons: {}",
            self.code,
            b.status,
            nodes.join("\n"),
            rs.join(" | ")
        )
    }
}
