//! The operator's reads beyond `cluster status`: `cluster history` (stored transitions)
//! and `cluster watch` (the event stream, followed across reconnects without a gap).
//!
//! Same connection flags and token sources as `cluster status`. Exit codes: 0 success,
//! 2 invalid input (a flag, or the collector answered 400), 3 unreachable or unauthorized.
//! Everything a node sent is printed through [`clean`], so a hostile node name or reason
//! cannot rewrite the terminal.

use super::manager::{clean, StatusArgs, EXIT_UNREACHABLE};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

const EXIT_INVALID: i32 = 2;

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub conn: StatusArgs,
    /// Only this node (its id or its name).
    #[arg(long)]
    pub node: Option<String>,
    #[arg(long, help = service_filter_help())]
    pub service: Option<String>,
    /// Received at or after: RFC 3339 (2026-11-29T07:00:00Z) or an age (90s, 15m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Received at or before: RFC 3339 or an age.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many transitions, newest first (1-1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The error message of a Cloudify-style error body, cleaned for the terminal.
fn api_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(clean))
        .unwrap_or_default()
}

/// GET `path_and_query` from the collector with the admin token: the JSON answer, or the
/// exit code after printing why not.
pub fn get_json(conn: &StatusArgs, path_and_query: &str) -> Result<Value, i32> {
    call(conn, http::Method::GET, path_and_query, None)
}

/// One request to the collector with the admin token (and a JSON body if given).
pub fn call(
    conn: &StatusArgs,
    method: http::Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<Value, i32> {
    let fail = |msg: String, code: i32| {
        eprintln!("error: {msg}");
        code
    };
    if !(conn.timeout.is_finite() && conn.timeout > 0.0 && conn.timeout <= 600.0) {
        return Err(fail(
            "--timeout must be between 0 and 600 seconds".into(),
            EXIT_INVALID,
        ));
    }
    let deadline = Duration::from_secs_f64(conn.timeout);
    let super::conn::Conn {
        base_url,
        tls,
        token,
    } = super::conn::resolve(conn).map_err(|e| fail(e, EXIT_UNREACHABLE))?;
    let url = format!("{base_url}{path_and_query}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string(), EXIT_UNREACHABLE))?;
    let resp = rt
        .block_on(async {
            let mut headers = vec![(sr_protocol::TOKEN_HEADER, token.as_str())];
            if body.is_some() {
                headers.push(("Content-Type", "application/json"));
            }
            let bytes = body.map(|b| b.to_string()).unwrap_or_default();
            sr_tls::HttpsClient::new(tls, deadline)
                .request(method, &url, &headers, bytes.into(), deadline, 16 << 20)
                .await
        })
        .map_err(|e| fail(format!("cannot reach {url}: {e}"), EXIT_UNREACHABLE))?;
    if resp.status == http::StatusCode::BAD_REQUEST {
        return Err(fail(
            format!(
                "the collector refused the request: {}",
                api_message(&resp.body)
            ),
            EXIT_INVALID,
        ));
    }
    if !resp.status.is_success() {
        return Err(fail(
            format!(
                "{url} answered {}: {}",
                resp.status,
                api_message(&resp.body)
            ),
            EXIT_UNREACHABLE,
        ));
    }
    serde_json::from_slice(&resp.body).map_err(|e| {
        fail(
            format!("{url} answered something that is not JSON: {e}"),
            EXIT_UNREACHABLE,
        )
    })
}

/// The history query string for these flags.
pub fn history_query(args: &HistoryArgs) -> String {
    let mut q = vec![format!("limit={}", args.limit)];
    for (k, v) in [
        ("node", &args.node),
        ("service", &args.service),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    format!("/api/v3.1/history?{}", q.join("&"))
}

pub fn history(args: HistoryArgs) -> anyhow::Result<i32> {
    if !(1..=1000).contains(&args.limit) {
        eprintln!("error: --limit must be from 1 to 1000");
        return Ok(EXIT_INVALID);
    }
    let answer = match get_json(&args.conn, &history_query(&args)) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    if args.conn.json {
        println!("{answer}");
        return Ok(0);
    }
    let items = answer["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("No transitions match.");
    } else {
        println!(
            "{:<8} {:<24} {:<8} {:<24} {:<10} {:<9} {:<9} REASONS",
            "ID", "RECEIVED", "TYPE", "NODE", "SERVICE", "FROM", "TO"
        );
        for t in &items {
            println!("{}", transition_line(t));
        }
    }
    let r = &answer["retention"];
    println!(
        "\n{} shown, newest first. Kept: {} days, {} per node.",
        items.len(),
        r["max_age_days"].as_f64().unwrap_or_default(),
        r["per_node"].as_u64().unwrap_or_default()
    );
    Ok(0)
}

/// One transition as a table row.
pub fn transition_line(t: &Value) -> String {
    let s = |v: &Value| v.as_str().map(clean).unwrap_or_else(|| "-".into());
    let node = t["node_name"]
        .as_str()
        .or_else(|| t["node_id"].as_str())
        .map(clean)
        .unwrap_or_default();
    let reasons: Vec<String> = t["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| format!("{}: {}", s(&r["code"]), s(&r["message"])))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{:<8} {:<24} {:<8} {:<24} {:<10} {:<9} {:<9} {}",
        t["id"].as_i64().unwrap_or_default(),
        s(&t["received_at"]),
        s(&t["node_type"]),
        node,
        s(&t["service"]),
        s(&t["from"]),
        s(&t["to"]),
        reasons.join("; ")
    )
}

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: StatusArgs,
    /// Start after this event id (as `cluster history` shows); default: new events only.
    #[arg(long)]
    pub after: Option<i64>,
    /// Exit after this many events; default: until interrupted.
    #[arg(long)]
    pub count: Option<u64>,
}

/// A stream silent for this long (no event, no keep-alive) is taken for dead.
const WATCH_IDLE: Duration = Duration::from_secs(45);
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// Most bytes of an error answer read.
const ERROR_BODY: usize = 64 * 1024;

/// How one connection ended.
enum Ended {
    /// Reconnect (from the last id); `true` when this connection had been accepted, so
    /// the backoff starts over.
    Retry(String, bool),
    /// Stop with this exit code.
    Exit(i32),
}

pub fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    if args.after.is_some_and(|a| a < 0) {
        eprintln!("error: --after must be an event id (0 or more)");
        return Ok(EXIT_INVALID);
    }
    if args.count == Some(0) {
        eprintln!("error: --count must be 1 or more");
        return Ok(EXIT_INVALID);
    }
    if !(args.conn.timeout.is_finite() && args.conn.timeout > 0.0 && args.conn.timeout <= 600.0) {
        eprintln!("error: --timeout must be between 0 and 600 seconds");
        return Ok(EXIT_INVALID);
    }
    let super::conn::Conn {
        base_url,
        tls,
        token,
    } = match super::conn::resolve(&args.conn) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    let head = Duration::from_secs_f64(args.conn.timeout);
    let client = sr_tls::HttpsClient::new(tls, head);
    let url = format!("{base_url}/api/v3.1/events");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut last = args.after;
    let mut shown = 0u64;
    let mut delay = RECONNECT_FIRST;
    if !args.conn.json {
        println!(
            "{:<8} {:<24} {:<8} {:<24} {:<10} {:<9} {:<9} REASONS",
            "ID", "RECEIVED", "TYPE", "NODE", "SERVICE", "FROM", "TO"
        );
    }
    loop {
        let ended = rt.block_on(follow(
            &client, &url, &token, head, &args, &mut last, &mut shown,
        ));
        match ended {
            Ended::Exit(code) => return Ok(code),
            Ended::Retry(why, connected) => {
                if connected {
                    delay = RECONNECT_FIRST;
                }
                let from = last
                    .map(|l| format!(" after event {l}"))
                    .unwrap_or_default();
                eprintln!("watch: {why}; reconnecting{from} in {} s", delay.as_secs());
                std::thread::sleep(delay);
                delay = (delay * 2).min(RECONNECT_CAP);
            }
        }
    }
}

/// One connection: prints events until it ends; `last` and `shown` carry across.
async fn follow(
    client: &sr_tls::HttpsClient,
    url: &str,
    token: &str,
    head: Duration,
    args: &WatchArgs,
    last: &mut Option<i64>,
    shown: &mut u64,
) -> Ended {
    use http_body_util::BodyExt;
    let last_header = last.map(|l| l.to_string());
    let mut headers = vec![
        (sr_protocol::TOKEN_HEADER, token),
        ("Accept", "text/event-stream"),
    ];
    if let Some(l) = &last_header {
        headers.push(("Last-Event-ID", l.as_str()));
    }
    let (status, _, mut body) = match client.open_stream(url, &headers, head).await {
        Ok(r) => r,
        Err(e) => return Ended::Retry(format!("cannot reach {url}: {e}"), false),
    };
    if !status.is_success() {
        let bytes = http_body_util::Limited::new(body, ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = api_message(&bytes);
        return match status.as_u16() {
            400 => {
                eprintln!("error: the collector refused the request: {msg}");
                Ended::Exit(EXIT_INVALID)
            }
            401 | 403 => {
                eprintln!("error: {url} answered {status}: {msg}");
                Ended::Exit(EXIT_UNREACHABLE)
            }
            _ => Ended::Retry(format!("{url} answered {status}: {msg}"), false),
        };
    }
    let mut parser = sr_protocol::sse::SseParser::new();
    loop {
        let frame = match tokio::time::timeout(WATCH_IDLE, body.frame()).await {
            Err(_) => return Ended::Retry(format!("nothing for {} s", WATCH_IDLE.as_secs()), true),
            Ok(None) => return Ended::Retry("the stream ended".into(), true),
            Ok(Some(Err(e))) => return Ended::Retry(format!("the stream broke: {e}"), true),
            Ok(Some(Ok(f))) => f,
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for ev in parser.feed(data) {
            // Transitions and maintenance changes share the table's columns.
            if ev.event != "transition" && ev.event != "maintenance" {
                continue;
            }
            if args.conn.json {
                println!("{}", ev.data);
            } else {
                match serde_json::from_str::<Value>(&ev.data) {
                    Ok(v) => println!("{}", transition_line(&v)),
                    Err(_) => println!(
                        "(unreadable event {})",
                        clean(ev.id.as_deref().unwrap_or("?"))
                    ),
                }
            }
            if let Some(id) = ev.id.as_deref().and_then(|i| i.parse().ok()) {
                *last = Some(id);
            }
            *shown += 1;
            if args.count.is_some_and(|c| *shown >= c) {
                return Ended::Exit(0);
            }
        }
    }
}

/// `history --service`: the node types, and every service a maintenance event can name
/// (from the one list of services, so a new service shows here by itself).
fn service_filter_help() -> String {
    use sr_protocol::NodeType;
    let types = [
        NodeType::Manager,
        NodeType::Db,
        NodeType::Broker,
        NodeType::Node,
    ]
    .map(NodeType::as_str)
    .join(", ");
    format!(
        "Only this node type ({types}) or a service a node reports (`Patroni`, `MariaDB Galera`; \
         any case); maintenance events match by their target, which may be any service: {}.",
        sr_protocol::facts::service_list()
    )
}

/// What `maintenance on|off` may name, from the one list of services.
fn target_help() -> String {
    format!(
        "A node id or name, or a service: {}.",
        sr_protocol::facts::service_list()
    )
}

/// `maintenance on`'s one-line help.
fn on_about() -> String {
    format!(
        "Put a node (id or name) or a service ({}) in maintenance.",
        sr_protocol::facts::service_list()
    )
}

/// `maintenance --help`: what a window does, on what, and how it ends.
pub fn maintenance_long_about() -> String {
    format!(
        "Maintenance windows: a node (id or name) or a service ({}) in maintenance shows a \
`maintenance` reason with who, why and until when; a Fail node in maintenance counts as Degraded \
for the cluster rules and a service in maintenance is at worst Degraded. It ends at --until or \
with `off`. Windows are per collector: run the command against each manager.\n\n\
Exit codes: 0 done, 2 invalid input, 3 unreachable or unauthorized (off: 3 also when nothing was \
in maintenance).\n\nExamples:\n  \
status-reporter maintenance on db2 --reason 'disk swap' --until 2h --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token\n  \
status-reporter maintenance on galera --reason 'rolling upgrade' --until 1h\n  \
status-reporter maintenance off db2 --manager 10.0.0.11 --ca-path ca.pem --token-file admin.token",
        sr_protocol::facts::service_list()
    )
}

/// `status-reporter maintenance on|off|list`.
#[derive(clap::Subcommand)]
pub enum MaintenanceCommand {
    // Its help names every service: `on_about`.
    #[command(about = on_about())]
    On {
        #[arg(help = target_help())]
        target: String,
        /// Why (shown in the view): 1-200 characters.
        #[arg(long)]
        reason: String,
        /// When it ends by itself: RFC 3339 or a duration from now (90m, 2h, 1d); default: at `off`.
        #[arg(long)]
        until: Option<String>,
        /// Who (shown in the view); default: $SUDO_USER, else $USER.
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        conn: StatusArgs,
    },
    /// End a maintenance window.
    Off {
        #[arg(help = target_help())]
        target: String,
        #[command(flatten)]
        conn: StatusArgs,
    },
    /// List the active maintenance windows.
    List {
        #[command(flatten)]
        conn: StatusArgs,
    },
}

pub fn maintenance(cmd: MaintenanceCommand) -> anyhow::Result<i32> {
    let path = |t: &str| format!("/api/v3.1/maintenance-windows/{}", encode(t));
    let (conn, answer) = match &cmd {
        MaintenanceCommand::On {
            target,
            reason,
            until,
            by,
            conn,
        } => {
            let by = by
                .clone()
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let body = serde_json::json!({"reason": reason, "by": by, "until": until});
            (
                conn,
                call(conn, http::Method::PUT, &path(target), Some(&body)),
            )
        }
        MaintenanceCommand::Off { target, conn } => {
            (conn, call(conn, http::Method::DELETE, &path(target), None))
        }
        MaintenanceCommand::List { conn } => {
            (conn, get_json(conn, "/api/v3.1/maintenance-windows"))
        }
    };
    let answer = match answer {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    if conn.json {
        println!("{answer}");
        return Ok(0);
    }
    let line = |w: &Value| {
        let s = |k: &str| w[k].as_str().map(clean).unwrap_or_else(|| "-".into());
        format!(
            "{:<24} {:<16} {:<26} {:<26} {}",
            s("target"),
            s("by"),
            s("since"),
            w["until"]
                .as_str()
                .map(clean)
                .unwrap_or_else(|| "until off".into()),
            s("reason")
        )
    };
    match cmd {
        MaintenanceCommand::On { .. } => println!("In maintenance: {}", line(&answer)),
        MaintenanceCommand::Off { .. } => println!("Maintenance ended: {}", line(&answer)),
        MaintenanceCommand::List { .. } => {
            let items = answer["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("Nothing is in maintenance.");
            } else {
                println!(
                    "{:<24} {:<16} {:<26} {:<26} REASON",
                    "TARGET", "BY", "SINCE", "UNTIL"
                );
                for w in &items {
                    println!("{}", line(w));
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("db-1.x_y~"), "db-1.x_y~");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(
            encode("2026-11-29T07:00:00+01:00"),
            "2026-11-29T07%3A00%3A00%2B01%3A00"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }
}
