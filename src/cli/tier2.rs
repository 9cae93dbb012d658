//! `cluster status` at a tier-2 collector (issue 16): `--clusters` lists every cluster
//! with its status and reasons, `--cluster NAME` shows one cluster's whole summary,
//! `--heal-history` the heal decisions. Without these flags `cluster status` is the
//! collector's own view, as before. Exit codes as `cluster status`: the worst cluster's
//! (0 OK, 1 Degraded, 2 Fail or Unreachable, or no cluster at all), 3 unreachable or
//! unauthorized.

use super::manager::{clean, StatusArgs};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    pub conn: StatusArgs,
    /// At a tier-2 collector: every cluster, its status and reasons (GET /api/tier2/v1/clusters).
    #[arg(long, conflicts_with_all = ["cluster", "heal_history"])]
    pub clusters: bool,
    /// At a tier-2 collector: one cluster's status and whole summary.
    #[arg(long, value_name = "NAME", conflicts_with = "heal_history")]
    pub cluster: Option<String>,
    /// At a tier-2 collector: the newest heal decisions (run, suppressed and why, outcome).
    #[arg(long)]
    pub heal_history: bool,
}

pub fn status(args: ClusterStatusArgs) -> anyhow::Result<i32> {
    if let Some(name) = &args.cluster {
        if !sr_protocol::summary::valid_cluster_name(name) {
            eprintln!("error: --cluster must be 1-64 of A-Z a-z 0-9 . _ -");
            return Ok(2);
        }
        return Ok(one(&args.conn, name));
    }
    if args.clusters {
        return Ok(list(&args.conn));
    }
    if args.heal_history {
        return Ok(heal_history(&args.conn));
    }
    super::manager::cluster_status(args.conn)
}

fn exit_of(status: &str) -> i32 {
    match status {
        "OK" => 0,
        "Degraded" => 1,
        _ => 2,
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn reasons_text(v: &Value) -> String {
    v.get("reasons")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let node = r
                        .get("node")
                        .and_then(Value::as_str)
                        .map(|n| format!(" ({})", clean(n)));
                    format!(
                        "{}: {}{}",
                        clean(s(r, "code")),
                        clean(s(r, "message")),
                        node.unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn list(conn: &StatusArgs) -> i32 {
    let v = match super::operator::get_json(conn, "/api/tier2/v1/clusters") {
        Ok(v) => v,
        Err(code) => return code,
    };
    let empty = serde_json::Map::new();
    let clusters = v
        .get("clusters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let worst = clusters
        .values()
        .map(|c| exit_of(s(c, "status")))
        .max()
        // No data is never healthy: a tier-2 collector that heard from no cluster.
        .unwrap_or(2);
    if conn.json {
        println!("{v}");
        return worst;
    }
    if clusters.is_empty() {
        println!("No cluster has sent a summary.");
        return worst;
    }
    println!(
        "{:<24} {:<12} {:>7} {:>6} {:>6}  REASONS",
        "CLUSTER", "STATUS", "AGE", "NODES", "SILENT"
    );
    for (name, c) in clusters {
        let age = c.get("age_ms").and_then(Value::as_i64).unwrap_or(0) / 1000;
        println!(
            "{:<24} {:<12} {:>6}s {:>6} {:>6}  {}",
            clean(name),
            clean(s(c, "status")),
            age,
            c.get("nodes_total").and_then(Value::as_u64).unwrap_or(0),
            c.get("nodes_silent").and_then(Value::as_u64).unwrap_or(0),
            reasons_text(c)
        );
    }
    worst
}

fn one(conn: &StatusArgs, name: &str) -> i32 {
    let v = match super::operator::get_json(conn, &format!("/api/tier2/v1/clusters/{name}")) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let code = exit_of(s(&v, "status"));
    if conn.json {
        println!("{v}");
        return code;
    }
    println!("Cluster {}: {}", clean(name), clean(s(&v, "status")));
    let why = reasons_text(&v);
    if !why.is_empty() {
        println!("  {why}");
    }
    println!(
        "Last summary: {} ({} s ago)",
        clean(s(&v, "received_at")),
        v.get("age_ms").and_then(Value::as_i64).unwrap_or(0) / 1000
    );
    let summary = &v["summary"];
    let managers: Vec<String> = summary["managers"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).map(clean).collect())
        .unwrap_or_default();
    println!(
        "Managers: {}",
        if managers.is_empty() {
            "-".into()
        } else {
            managers.join(", ")
        }
    );
    println!();
    println!("{:<14} {:<10} REASONS", "SERVICE", "STATUS");
    if let Some(services) = summary["services"].as_object() {
        for (svc, sv) in services {
            println!(
                "{:<14} {:<10} {}",
                clean(svc),
                clean(s(sv, "status")),
                reasons_text(sv)
            );
        }
    }
    let nodes = summary["nodes"].as_array().cloned().unwrap_or_default();
    println!();
    if nodes.is_empty() {
        println!("Every node is OK ({} nodes).", summary["nodes_total"]);
        return code;
    }
    println!(
        "{:<24} {:<14} {:<9} {:<7} {:>10}  REASONS",
        "NODE", "SERVICE", "STATUS", "SILENT", "LAST SEEN"
    );
    for n in &nodes {
        let seen = n["last_seen_age_ms"]
            .as_u64()
            .map(|ms| format!("{} s ago", ms / 1000))
            .unwrap_or_else(|| "never".into());
        println!(
            "{:<24} {:<14} {:<9} {:<7} {:>10}  {}",
            clean(s(n, "name")),
            clean(s(n, "service")),
            clean(s(n, "status")),
            if n["silent"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            seen,
            reasons_text(n)
        );
    }
    if let Some(o) = summary["nodes_omitted"].as_u64().filter(|o| *o > 0) {
        println!("({o} more nodes not OK were left out of the summary)");
    }
    code
}

fn heal_history(conn: &StatusArgs) -> i32 {
    let v = match super::operator::get_json(conn, "/api/tier2/v1/heal-history") {
        Ok(v) => v,
        Err(code) => return code,
    };
    if conn.json {
        println!("{v}");
        return 0;
    }
    println!(
        "{:<26} {:<16} {:<20} {:<11} {:<20} DETAIL",
        "AT", "CLUSTER", "NODE", "DECISION", "WHY"
    );
    for r in v["items"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<26} {:<16} {:<20} {:<11} {:<20} {}",
            clean(s(&r, "at")),
            clean(s(&r, "cluster")),
            clean(s(&r, "node")),
            clean(s(&r, "decision")),
            clean(s(&r, "why")),
            clean(s(&r, "detail"))
        );
    }
    0
}
