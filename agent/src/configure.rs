//! `status-reporter configure`: turns command-line settings into a config file and a
//! node key, safely.
//!
//! Three steps, so nothing is written unless everything is right:
//! 1. [`plan`] checks every input and the target directories and reports all problems
//!    at once;
//! 2. [`verify`] (unless `--no-verify`) asks each manager for `GET /api/v3.1/managers`
//!    with the token, over TLS trusting only the given CA; the collectors answer with the
//!    token's role ([`sr_protocol::ROLE_HEADER`]), and [`settle_node_type`] takes the node
//!    type from it when the operator gave none, or refuses a type the token cannot report as;
//! 3. [`apply`] generates the key once (mode 0600, kept unless `--rotate-key`) and writes
//!    the config atomically (mode 0600, owned by the service user when it exists), and
//!    skips any write whose content would not change, so running it twice changes
//!    nothing.

use crate::config::{
    check_ca, check_node_id, check_token, load_key, parse_managers, ManagerAddr, RawConfig,
    DEFAULT_REPORTING_FREQ,
};
use sr_fsutil::{self as fsutil, SERVICE_USER};
use sr_probes::ProbeConfig;
use sr_protocol::signing::NodeKey;
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct ConfigureArgs {
    pub config_path: PathBuf,
    pub token: String,
    pub ca_path: PathBuf,
    pub managers: Vec<String>,
    pub node_type: Option<String>,
    pub node_id: Option<String>,
    pub node_name: Option<String>,
    pub reporting_freq: Option<u32>,
    pub key_path: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub rotate_key: bool,
    /// The managers will be asked (no `--no-verify`), so a missing node type may be taken
    /// from the token's role by [`settle_node_type`] instead of being an error.
    pub infer_node_type: bool,
}

/// A checked plan: what [`apply`] will write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config_path: PathBuf,
    pub raw: RawConfig,
    pub key_path: PathBuf,
    pub generate_key: bool,
    pub managers: Vec<ManagerAddr>,
}

/// The first existing ancestor of `dir` must be a writable directory, so that `dir`
/// can be created and written.
fn check_dir_for(file: &Path, what: &str) -> Result<(), String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut probe = dir;
    while !probe.exists() {
        match probe.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe = p,
            _ => break,
        }
    }
    fsutil::check_writable_dir(probe)
        .map_err(|e| format!("{what}: {} cannot be written: {e}", file.display()))
}

/// Checks every input; returns the plan or every problem found.
pub fn plan(args: &ConfigureArgs, now_unix: i64) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    // An existing valid config supplies what was not given, so re-running configure
    // keeps the node's identity and the operator's probe settings.
    let existing = RawConfig::read(&args.config_path).ok();
    let old = existing.clone().unwrap_or_default();

    if let Err(e) = check_token(&args.token) {
        problems.push(format!("--token: {e}"));
    }
    if let Err(e) = check_ca(&args.ca_path, now_unix) {
        problems.push(format!("--ca-path: {e}"));
    }
    let (managers, errs) = parse_managers(&args.managers);
    problems.extend(errs.into_iter().map(|e| format!("--managers-ip: {e}")));

    let node_type = args.node_type.clone().or(old.node_type.clone());
    match &node_type {
        // Filled in from the managers' answer by `settle_node_type`.
        None if args.infer_node_type => {}
        None => problems.push(
            "--node-type: required with --no-verify (db, broker or manager); without --no-verify it is taken from the token's role"
                .into(),
        ),
        Some(t) => {
            if let Err(e) = t.parse::<NodeType>() {
                problems.push(format!("--node-type: {e}"));
            }
        }
    }
    let node_id = args
        .node_id
        .clone()
        .or(old.node_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Err(e) = check_node_id(&node_id) {
        problems.push(format!("--node-id: {e}"));
    }
    let node_name = args
        .node_name
        .clone()
        .or(old.node_name.clone())
        .unwrap_or_else(local_hostname);
    if node_name.trim().is_empty()
        || node_name.len() > sr_protocol::report::MAX_NAME_LEN
        || node_name.chars().any(char::is_control)
    {
        problems.push(format!(
            "--node-name: must be 1-{} printable characters",
            sr_protocol::report::MAX_NAME_LEN
        ));
    }
    let reporting_freq = args
        .reporting_freq
        .or(old.reporting_freq)
        .unwrap_or(DEFAULT_REPORTING_FREQ);
    if !sr_protocol::report::REPORTING_FREQ_RANGE.contains(&reporting_freq) {
        problems.push(format!(
            "--reporting-freq: must be 1-3600 seconds, got {reporting_freq}"
        ));
    }

    if let Err(e) = check_dir_for(&args.config_path, "--config") {
        problems.push(e);
    }
    let config_dir = args
        .config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let key_path = args
        .key_path
        .clone()
        .or(old.key_path.clone())
        .unwrap_or_else(|| config_dir.join("node.key"));
    let generate_key = args.rotate_key || !key_path.exists();
    if generate_key {
        if let Err(e) = check_dir_for(&key_path, "key") {
            problems.push(e);
        }
    } else if let Err(e) = load_key(&key_path) {
        problems.push(format!("key: {e}; give --rotate-key to replace it"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let probes = if old.probes.is_empty() {
        let node_type = node_type.as_deref().and_then(|t| t.parse().ok());
        default_probes(node_type, &node_name, listening_locally)
    } else {
        old.probes.clone()
    };
    let raw = RawConfig {
        node_type,
        node_id: Some(node_id),
        node_name: Some(node_name),
        private_ip: old.private_ip.clone(),
        reporting_freq: Some(reporting_freq),
        token: Some(args.token.clone()),
        token_file: None,
        ca_path: Some(absolute(&args.ca_path)),
        managers: Some(args.managers.clone()),
        key_path: Some(absolute(&key_path)),
        state_dir: args.state_dir.clone().or(old.state_dir.clone()),
        push_timeout_ms: old.push_timeout_ms,
        probes,
        check_listen: old.check_listen.clone(),
        // An operator's metrics listener survives a re-configure.
        metrics_listen: old.metrics_listen.clone(),
        events: old.events.clone(),
    };
    Ok(Plan {
        config_path: args.config_path.clone(),
        raw,
        key_path,
        generate_key,
        managers,
    })
}

/// Every node gets the host probe, plus a probe for each service its type implies that
/// answers on loopback, found as the quickstart finds local services (a TCP connect):
/// Patroni (8008) and etcd (2379) on a db node, RabbitMQ's AMQP (5672) and management
/// (15672) ports on a broker. Without them a 5.0.5 manager sees no Patroni master.
/// The Patroni member is taken to be the node name; RabbitMQ gets TCP probes because its
/// own probe needs a monitoring user's credentials, which only the operator has.
fn default_probes(
    node_type: Option<NodeType>,
    node_name: &str,
    listening: impl Fn(u16) -> bool,
) -> Vec<ProbeConfig> {
    let mut probes = vec![ProbeConfig::Host(Default::default())];
    let implied: Vec<(u16, String)> = match node_type {
        Some(NodeType::Db) => vec![
            (
                8008,
                format!(
                    "kind = \"patroni\"\nurl = \"http://127.0.0.1:8008\"\nmember = {node_name:?}"
                ),
            ),
            (
                2379,
                "kind = \"etcd\"\nurl = \"http://127.0.0.1:2379\"".into(),
            ),
        ],
        Some(NodeType::Broker) => vec![
            (
                5672,
                "kind = \"tcp\"\nname = \"RabbitMQ AMQP\"\naddress = \"127.0.0.1:5672\"".into(),
            ),
            (
                15672,
                "kind = \"tcp\"\nname = \"RabbitMQ management\"\naddress = \"127.0.0.1:15672\""
                    .into(),
            ),
        ],
        _ => vec![],
    };
    for (port, table) in implied {
        if listening(port) {
            // The tables are fixed here and the node name was checked: they parse.
            if let Ok(p) = toml::from_str::<ProbeConfig>(&table) {
                probes.push(p);
            }
        }
    }
    probes
}

/// The type was inferred after [`plan`] chose host-only defaults: add the probes the
/// type implies, unless the operator's config already lists probes of its own.
fn add_implied_probes(plan: &mut Plan, node_type: NodeType) {
    let host_only =
        matches!(plan.raw.probes.as_slice(), [ProbeConfig::Host(h)] if *h == Default::default());
    if host_only {
        let name = plan.raw.node_name.clone().unwrap_or_default();
        plan.raw.probes = default_probes(Some(node_type), &name, listening_locally);
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port` within 300 ms.
fn listening_locally(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).is_ok()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The kernel's hostname (what `hostname` prints), the default node name.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// How one manager answered the verification request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerCheck {
    /// It answered and accepted the token; `role` is the token's role as the collector
    /// stated it (`None`: it did not say, e.g. an older collector or a Cloudify manager).
    Accepted { role: Option<String> },
    /// It answered but refused the token (401/403) or answered with another status.
    Refused(String),
    /// No answer: connection, TLS or timeout error.
    Unreachable(String),
}

/// Asks every manager for its manager list, concurrently, with a deadline each.
pub async fn verify(plan: &Plan, token: &str, ca_path: &Path) -> Vec<(ManagerAddr, ManagerCheck)> {
    let tls = match sr_tls::client_config(ca_path, None) {
        Ok(t) => t,
        Err(e) => {
            return plan
                .managers
                .iter()
                .map(|m| (m.clone(), ManagerCheck::Unreachable(e.to_string())))
                .collect()
        }
    };
    let client = sr_tls::HttpsClient::new(tls, Duration::from_secs(3));
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in plan.managers.iter().enumerate() {
        let (client, m, token) = (client.clone(), m.clone(), token.to_string());
        set.spawn(async move {
            let url = format!("{}{}/managers", m.base_url(), sr_protocol::API_PREFIX);
            let headers = [
                (sr_protocol::TOKEN_HEADER, token.as_str()),
                (sr_protocol::TENANT_HEADER, "default_tenant"),
            ];
            let check = match client
                .get(
                    &url,
                    &headers,
                    Duration::from_secs(5),
                    crate::push::MAX_RESPONSE_BYTES,
                )
                .await
            {
                Ok(r) if r.status == http::StatusCode::OK => ManagerCheck::Accepted {
                    role: role_header(&r.headers),
                },
                Ok(r) if r.status == 401 || r.status == 403 => ManagerCheck::Refused(format!(
                    "the token was refused (http {})",
                    r.status.as_u16()
                )),
                Ok(r) => ManagerCheck::Refused(format!("answered http {}", r.status.as_u16())),
                Err(e) => ManagerCheck::Unreachable(e.to_string()),
            };
            (i, m, check)
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(r)) = set.join_next().await {
        out.push(r);
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, m, c)| (m, c)).collect()
}

/// Longest role header value taken from a manager; anything longer is ignored.
const MAX_ROLE_LEN: usize = 16;

/// The token's role as a manager stated it: short lowercase ASCII, else ignored (a
/// hostile or broken answer must not end up in the config or flood the terminal).
fn role_header(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(sr_protocol::ROLE_HEADER)?.to_str().ok()?.trim();
    let ok = !v.is_empty()
        && v.len() <= MAX_ROLE_LEN
        && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    ok.then(|| v.to_string())
}

impl Plan {
    /// True while the node type is still to come from the token's role.
    pub fn node_type_pending(&self) -> bool {
        self.raw.node_type.is_none()
    }
}

/// Reconciles the node type with the role the accepting managers stated for the token.
///
/// With no node type given (nor kept from an existing config), every accepting manager
/// must state the same reporter role, which becomes the node type. A given node type must
/// not contradict a stated role: the token could not report as it (403 on every push).
/// Returns a line for the operator when the type was inferred; an error names the
/// managers and asks for `--node-type`.
pub fn settle_node_type(
    plan: &mut Plan,
    checks: &[(ManagerAddr, ManagerCheck)],
) -> Result<Option<String>, String> {
    let accepted: Vec<(&ManagerAddr, Option<&str>)> = checks
        .iter()
        .filter_map(|(m, c)| match c {
            ManagerCheck::Accepted { role } => Some((m, role.as_deref())),
            _ => None,
        })
        .collect();
    let pending = plan.node_type_pending();
    if accepted.is_empty() {
        return if pending {
            Err("--node-type: no manager accepted the token, so its role is unknown; give --node-type".into())
        } else {
            Ok(None)
        };
    }
    let silent: Vec<String> = accepted
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(m, _)| m.to_string())
        .collect();
    let mut roles: Vec<&str> = accepted.iter().filter_map(|(_, r)| *r).collect();
    roles.sort_unstable();
    roles.dedup();
    if roles.len() > 1 {
        let said: Vec<String> = accepted
            .iter()
            .map(|(m, r)| format!("{m} says {}", r.unwrap_or("nothing")))
            .collect();
        return Err(format!(
            "--node-type: the managers disagree about the token's role ({}); give --node-type",
            said.join(", ")
        ));
    }
    let role = match roles.first() {
        Some(r) => *r,
        None if pending => {
            return Err(format!(
                "--node-type: the manager(s) {} accepted the token but did not state its role (an older collector or a Cloudify manager); give --node-type",
                silent.join(", ")
            ))
        }
        None => return Ok(None),
    };
    if pending && !silent.is_empty() {
        return Err(format!(
            "--node-type: manager(s) {} did not state the token's role, so agreement cannot be checked; give --node-type",
            silent.join(", ")
        ));
    }
    let Ok(role_type) = role.parse::<NodeType>() else {
        return Err(format!(
            "--token: the managers say this token's role is {role}, which cannot report; use the db, broker or manager token for this node"
        ));
    };
    match plan.raw.node_type.as_deref().map(str::parse::<NodeType>) {
        None => {
            plan.raw.node_type = Some(role_type.as_str().to_string());
            add_implied_probes(plan, role_type);
            Ok(Some(format!(
                "node type {role_type}, from the token's role as the managers stated it"
            )))
        }
        Some(Ok(t)) if t == role_type => Ok(None),
        Some(_) => Err(format!(
            "--node-type: {} given, but the managers say this token's role is {role_type}: every report would be refused (403); use the {} token or --node-type {role_type}",
            plan.raw.node_type.as_deref().unwrap_or_default(),
            plan.raw.node_type.as_deref().unwrap_or_default()
        )),
    }
}

/// Writes the key (when needed) and the config (when changed). Returns what it did.
pub fn apply(plan: &Plan) -> Result<Vec<String>, String> {
    if plan.node_type_pending() {
        return Err("the node type is not known yet: settle_node_type must run first".into());
    }
    let mut done = Vec::new();
    let owner = Some(SERVICE_USER);
    for dir in [plan.config_path.parent(), plan.key_path.parent()]
        .into_iter()
        .flatten()
    {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            done.push(format!("created directory {}", dir.display()));
        }
    }
    if plan.generate_key {
        let der = NodeKey::generate_pkcs8().map_err(|e| e.to_string())?;
        let key = NodeKey::from_pkcs8(&der).map_err(|e| e.to_string())?;
        let pem = fsutil::pem_encode(&der, "PRIVATE KEY");
        fsutil::atomic_write(&plan.key_path, pem.as_bytes(), 0o600, owner)
            .map_err(|e| format!("cannot write the key {}: {e}", plan.key_path.display()))?;
        done.push(format!(
            "generated node key {} (public key {}, fingerprint {})",
            plan.key_path.display(),
            key.key_id(),
            key.fingerprint()
        ));
    } else {
        let key = load_key(&plan.key_path).map_err(|e| e.to_string())?;
        done.push(format!(
            "kept node key {} (public key {}, fingerprint {})",
            plan.key_path.display(),
            key.key_id(),
            key.fingerprint()
        ));
    }
    let text = plan.raw.to_toml();
    let unchanged = std::fs::read(&plan.config_path)
        .map(|b| b == text.as_bytes())
        .unwrap_or(false);
    if unchanged {
        done.push(format!("config {} unchanged", plan.config_path.display()));
    } else {
        fsutil::atomic_write(&plan.config_path, text.as_bytes(), 0o600, owner).map_err(|e| {
            format!(
                "cannot write the config {}: {e}",
                plan.config_path.display()
            )
        })?;
        done.push(format!("wrote config {}", plan.config_path.display()));
    }
    Ok(done)
}

/// `status-reporter remove`: deletes the config and the key it names. Returns what was
/// removed; missing files are not an error.
pub fn remove(config_path: &Path) -> Result<Vec<String>, String> {
    let key_path = RawConfig::read(config_path)
        .ok()
        .and_then(|r| r.key_path)
        .unwrap_or_else(|| {
            config_path
                .parent()
                .unwrap_or(Path::new("."))
                .join("node.key")
        });
    let mut done = Vec::new();
    for (what, p) in [("config", config_path), ("node key", key_path.as_path())] {
        match std::fs::remove_file(p) {
            Ok(()) => done.push(format!("removed {what} {}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                done.push(format!("{what} {} was not there", p.display()))
            }
            Err(e) => return Err(format!("cannot remove {what} {}: {e}", p.display())),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_file(dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, sr_tls::pki::Ca::new("test").unwrap().cert_pem()).unwrap();
        p
    }

    fn args(dir: &Path) -> ConfigureArgs {
        ConfigureArgs {
            config_path: dir.join("etc/agent.toml"),
            token: "tok-123".into(),
            ca_path: ca_file(dir),
            managers: vec!["127.0.0.1:4000".into()],
            node_type: Some("db".into()),
            state_dir: Some(dir.join("state")),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_probe_what_the_node_type_implies_when_it_listens() {
        let kinds = |t, up: &[u16]| -> Vec<&'static str> {
            let up = up.to_vec();
            default_probes(t, "db1", move |p| up.contains(&p))
                .iter()
                .map(|p| p.kind())
                .collect()
        };
        assert_eq!(
            kinds(Some(NodeType::Db), &[8008, 2379]),
            ["host", "patroni", "etcd"]
        );
        assert_eq!(kinds(Some(NodeType::Db), &[2379]), ["host", "etcd"]);
        assert_eq!(kinds(Some(NodeType::Db), &[]), ["host"]);
        assert_eq!(
            kinds(Some(NodeType::Broker), &[5672, 15672, 8008]),
            ["host", "tcp", "tcp"]
        );
        assert_eq!(kinds(Some(NodeType::Manager), &[8008, 5672]), ["host"]);
        assert_eq!(kinds(None, &[8008]), ["host"]);
        let db = default_probes(Some(NodeType::Db), "db1", |_| true);
        let ProbeConfig::Patroni(p) = &db[1] else {
            panic!("{db:?}")
        };
        assert_eq!(p.member, "db1");
        // What configure writes validates, with no service name reported twice.
        for p in &db {
            assert!(p.validate().is_empty(), "{:?}", p.validate());
        }
        let broker = default_probes(Some(NodeType::Broker), "b1", |_| true);
        let names: Vec<_> = broker.iter().flat_map(|p| p.service_names()).collect();
        assert_eq!(names, ["RabbitMQ AMQP", "RabbitMQ management"]);
    }

    #[test]
    fn configure_is_idempotent_and_keeps_the_key_and_node_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path());
        let p = plan(&a, crate::unix_now()).unwrap();
        assert!(p.generate_key);
        apply(&p).unwrap();
        let config1 = std::fs::read(&a.config_path).unwrap();
        let key1 = std::fs::read(&p.key_path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p.key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&a.config_path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );

        let p2 = plan(&a, crate::unix_now()).unwrap();
        assert!(!p2.generate_key);
        let done = apply(&p2).unwrap();
        assert!(done.iter().any(|d| d.contains("unchanged")), "{done:?}");
        assert_eq!(std::fs::read(&a.config_path).unwrap(), config1);
        assert_eq!(std::fs::read(&p.key_path).unwrap(), key1);

        // The written config validates as the daemon will read it.
        let cfg = crate::config::AgentConfig::load(&a.config_path).unwrap();
        assert_eq!(cfg.node_type, NodeType::Db);

        let rotated = plan(
            &ConfigureArgs {
                rotate_key: true,
                ..a.clone()
            },
            crate::unix_now(),
        )
        .unwrap();
        apply(&rotated).unwrap();
        assert_ne!(std::fs::read(&p.key_path).unwrap(), key1);
    }

    fn checks(answers: &[ManagerCheck]) -> Vec<(ManagerAddr, ManagerCheck)> {
        let ips: Vec<String> = (1..=answers.len()).map(|i| format!("10.0.0.{i}")).collect();
        let (addrs, errs) = parse_managers(&ips);
        assert!(errs.is_empty());
        addrs.into_iter().zip(answers.iter().cloned()).collect()
    }

    fn said(role: &str) -> ManagerCheck {
        ManagerCheck::Accepted {
            role: Some(role.into()),
        }
    }

    #[test]
    fn node_type_comes_from_the_role_all_accepting_managers_state() {
        let dir = tempfile::tempdir().unwrap();
        let a = ConfigureArgs {
            node_type: None,
            infer_node_type: true,
            ..args(dir.path())
        };
        let mut p = plan(&a, crate::unix_now()).unwrap();
        assert!(p.node_type_pending());
        assert!(apply(&p).is_err(), "apply must refuse an unsettled plan");
        let unreachable = ManagerCheck::Unreachable("refused".into());
        let line = settle_node_type(
            &mut p,
            &checks(&[said("broker"), unreachable, said("broker")]),
        )
        .unwrap()
        .unwrap();
        assert!(line.contains("broker"), "{line}");
        assert_eq!(p.raw.node_type.as_deref(), Some("broker"));
        apply(&p).unwrap();
        let cfg = crate::config::AgentConfig::load(&a.config_path).unwrap();
        assert_eq!(cfg.node_type, NodeType::Broker);
    }

    #[test]
    fn unknown_or_contradicting_roles_ask_for_node_type() {
        let dir = tempfile::tempdir().unwrap();
        let pending = || {
            plan(
                &ConfigureArgs {
                    node_type: None,
                    infer_node_type: true,
                    ..args(dir.path())
                },
                crate::unix_now(),
            )
            .unwrap()
        };
        let silent = ManagerCheck::Accepted { role: None };
        let refused = ManagerCheck::Refused("http 401".into());
        for (answers, want) in [
            (vec![said("db"), said("broker")], "disagree"),
            (vec![silent.clone()], "did not state"),
            (vec![said("db"), silent.clone()], "did not state"),
            (vec![refused.clone()], "no manager accepted"),
            (vec![said("admin")], "role is admin"),
        ] {
            let mut p = pending();
            let e = settle_node_type(&mut p, &checks(&answers)).unwrap_err();
            assert!(e.contains(want) && e.contains("--"), "{answers:?}: {e}");
            assert!(p.node_type_pending());
        }
        // A given node type is checked against the stated role, and kept when a manager
        // does not say.
        let mut given = plan(&args(dir.path()), crate::unix_now()).unwrap();
        let e = settle_node_type(&mut given, &checks(&[said("broker")])).unwrap_err();
        assert!(e.contains("403") && e.contains("--node-type broker"), "{e}");
        assert_eq!(
            settle_node_type(&mut given, &checks(&[said("db"), silent])),
            Ok(None)
        );
        assert_eq!(given.raw.node_type.as_deref(), Some("db"));
        // Without verification there is nothing to infer from.
        let problems = plan(
            &ConfigureArgs {
                node_type: None,
                ..args(dir.path())
            },
            crate::unix_now(),
        )
        .unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--node-type: required with --no-verify")),
            "{problems:?}"
        );
    }

    #[test]
    fn role_headers_are_taken_only_when_short_and_plain() {
        let mut h = http::HeaderMap::new();
        assert_eq!(role_header(&h), None);
        for (value, want) in [
            ("db", Some("db")),
            (" broker ", Some("broker")),
            ("DB", None),
            ("db; rm -rf", None),
            ("", None),
            ("a_very_long_role_name", None),
        ] {
            h.insert(
                sr_protocol::ROLE_HEADER,
                http::HeaderValue::from_str(value).unwrap(),
            );
            assert_eq!(role_header(&h).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn every_bad_input_is_reported_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let expired = dir.path().join("expired.pem");
        std::fs::write(
            &expired,
            sr_tls::pki::Ca::with_validity("old", Some(((2000, 1, 1), (2001, 1, 1))))
                .unwrap()
                .cert_pem(),
        )
        .unwrap();
        let a = ConfigureArgs {
            token: "  ".into(),
            ca_path: expired,
            managers: vec!["10.0.0.1".into(), "10.0.0.1".into(), "999.1.1.1".into()],
            node_type: Some("database".into()),
            ..args(dir.path())
        };
        let problems = plan(&a, crate::unix_now()).unwrap_err();
        let text = problems.join("\n");
        for want in [
            "--token",
            "expired",
            "listed twice",
            "999.1.1.1",
            "--node-type",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
        assert!(!a.config_path.exists());
    }
}
