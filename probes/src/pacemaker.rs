//! `pacemaker`: the local Pacemaker node, asked with `crm_mon --output-as=xml`.
//!
//! One child process per cycle, run without a shell: the configured `command` (`crm_mon`,
//! or a wrapper such as `nsenter -t PID -n -m -u crm_mon` that reaches a node in other
//! namespaces) plus `--output-as=xml`; when that option is refused (Pacemaker 1.1 knows only
//! `--as-xml`) the same command again with `--as-xml`, and the probe keeps using it. The
//! child is bounded: `timeout_ms` for the whole run (killed on expiry), stdout at
//! [`MAX_OUTPUT`] (a larger answer is refused whole, never judged from a cut document),
//! stderr at [`MAX_STDERR`]. stdin is closed: `crm_mon` never waits on a terminal.
//!
//! The XML becomes `facts.pacemaker` (quorum, DC, nodes, resources with clone and group
//! parents, failed actions, fail counts, maintenance-mode, stonith-enabled, and which node
//! is this one); the roll-up's `pacemaker` rule reads it. The node's own finding comes from
//! the same facts ([`PacemakerFacts::own_verdicts`]). The facts are written also when
//! `crm_mon` does not answer (`reachable: false`), so the node stays a member.
//!
//! [`parse_xml`] is pure and fuzzed (`fuzz/fuzz_targets/pacemaker_xml.rs`): quick-xml's pull
//! reader, with the depth and every list bounded; a document that ends early, nests wrongly
//! or has an unknown root is an error, never a partial status.

use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::{PacemakerFacts, PcmkFailCount, PcmkFailedAction, PcmkNode, PcmkResource};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "Pacemaker";
/// Largest `crm_mon` XML read. A two-node cluster with three resources writes about 4 KiB;
/// the node history grows with resources × nodes × operations, so 4 MiB leaves room for
/// large clusters while bounding what a broken `crm_mon` can make the agent hold.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// stderr kept (the first lines explain a refusal).
pub const MAX_STDERR: usize = 4096;
/// Element nesting read at most (`crm_mon` nests about 6 deep: bundle/replica/resource/node).
pub const MAX_DEPTH: usize = 32;
/// Entries of each list read before the facts are cut ([`PacemakerFacts::MAX_ENTRIES`] kept).
const MAX_READ: usize = 4096;
/// Longest name or id kept; a longer one is cut.
pub const MAX_FIELD: usize = 128;
/// Rough size of the `pacemaker` facts kept, under the report's 16 KiB facts limit with room
/// for other probes' facts: past it, healthy resources are dropped first and `truncated` set.
pub const FACTS_BUDGET: usize = 10 * 1024;
/// Longest error message kept in the facts.
const MAX_ERROR: usize = 256;
/// `crm_mon`'s exit code for a usage error (`CRM_EX_USAGE`): an unknown option.
const EX_USAGE: i32 = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The program and its first arguments, run without a shell; the probe appends
    /// `--output-as=xml` (or `--as-xml`). `["crm_mon"]` on a cluster node; a wrapper such
    /// as `["nsenter", "-t", "PID", "-n", "-m", "-u", "crm_mon"]` where the node runs in
    /// other namespaces.
    #[serde(default = "default_command")]
    pub command: Vec<String>,
    /// This node's Pacemaker name (corosync's `nodelist` name); the host name when unset.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Bound on the whole run (both attempts); the child is killed past it.
    #[serde(default = "default_ms::<5000>")]
    pub timeout_ms: u64,
}

fn default_command() -> Vec<String> {
    vec!["crm_mon".into()]
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        match self.command.first() {
            None => errors.push("command must name a program".into()),
            Some(p) if p.trim().is_empty() => errors.push("command must name a program".into()),
            Some(_) => {}
        }
        if self.command.len() > 32 || self.command.iter().any(|a| a.len() > 4096) {
            errors.push("command: at most 32 arguments of 4096 bytes".into());
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            errors.push("command: an argument contains a NUL byte".into());
        }
        if let Some(n) = &self.node_name {
            if n.is_empty() || n.len() > MAX_FIELD || n.chars().any(char::is_control) {
                errors.push(format!(
                    "node_name must be 1-{MAX_FIELD} characters without control characters"
                ));
            }
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What `collect` saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// No usable run: the program did not start, timed out, or wrote too much.
    Failed(String),
    /// The run ended: its exit code, stdout and the start of stderr; `host` is this host's
    /// name (the node's name when `node_name` is unset).
    Ran {
        code: Option<i32>,
        stdout: Vec<u8>,
        stderr: String,
        host: Option<String>,
    },
}

/// What the XML says: a cluster status, or `crm_mon`'s own error (`<status code!=0>`).
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Status(PacemakerFacts),
    Refused(String),
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn bool_attr(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{name}={:?} is not true or false", cut(v, 40))),
    }
}

/// The attributes of one element, unescaped, names and values bounded.
fn attrs(e: &BytesStart) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let key = a.key.as_ref().to_string();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute {}: {e}", cut(&key, 40)))?;
        out.push((cut(&key, MAX_FIELD), cut(&value, MAX_FIELD)));
    }
    Ok(out)
}

fn get<'a>(a: &'a [(String, String)], name: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn flag(a: &[(String, String)], name: &str) -> Result<bool, String> {
    get(a, name).map_or(Ok(false), |v| bool_attr(name, v))
}

/// The resource an `op_key` (`<rsc>_<task>_<interval>`) names.
fn op_resource(op_key: &str) -> &str {
    let mut parts = op_key.rsplitn(3, '_');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(rsc)) if !rsc.is_empty() => rsc,
        _ => op_key,
    }
}

/// Reads `crm_mon --output-as=xml` (root `<pacemaker-result>`, Pacemaker 2.x/3.x) or
/// `--as-xml` (root `<crm_mon>`, 1.1) into facts (with `reachable: true`, no `me`), or
/// `crm_mon`'s own refusal. Bounded as the module says; lists past
/// [`PacemakerFacts::MAX_ENTRIES`] are cut by [`bound`].
pub fn parse_xml(xml: &[u8]) -> Result<Parsed, String> {
    if xml.len() > MAX_OUTPUT {
        return Err(format!("output larger than {MAX_OUTPUT} bytes"));
    }
    let text = std::str::from_utf8(xml).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut f = PacemakerFacts {
        reachable: true,
        ..PacemakerFacts::default()
    };
    let mut stack: Vec<String> = Vec::new();
    // Enclosing clone/group/bundle ids while inside <resources>, with whether each copies.
    let mut containers: Vec<(String, bool)> = Vec::new();
    let mut resource: Option<PcmkResource> = None;
    let mut history_node: Option<String> = None;
    let mut root_seen = false;
    let mut summary_seen = false;
    let mut status: Option<(String, String)> = None;
    let mut errors: Vec<String> = Vec::new();
    let mut error_text: Option<String> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.error_position()))?;
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                match name.as_str() {
                    "resource" if stack.iter().any(|s| s == "resources") => {
                        if let Some(r) = resource.take() {
                            push_bounded(&mut f.resources, r, &mut f.truncated);
                        }
                    }
                    "clone" | "group" | "bundle" if stack.iter().any(|s| s == "resources") => {
                        containers.pop();
                    }
                    "node" if stack.last().is_some_and(|s| s == "node_history") => {
                        history_node = None;
                    }
                    "error" => {
                        if let Some(t) = error_text.take() {
                            if errors.len() < 8 {
                                errors.push(cut(t.trim(), 200));
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Text(t) => {
                if let Some(buf) = error_text.as_mut() {
                    if buf.len() < 400 {
                        buf.push_str(t.as_ref());
                    }
                }
                continue;
            }
            Event::GeneralRef(_)
            | Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_) => continue,
            Event::DocType(_) => return Err("a DOCTYPE: not crm_mon output".into()),
            Event::Eof => break,
        };
        let Some(e) = start else { continue };
        let name = e.name().as_ref().to_string();
        if stack.is_empty() {
            if root_seen {
                return Err(format!("a second root element <{}>", cut(&name, 40)));
            }
            if name != "pacemaker-result" && name != "crm_mon" {
                return Err(format!(
                    "root element <{}>: not crm_mon XML",
                    cut(&name, 40)
                ));
            }
            root_seen = true;
        }
        if stack.len() >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        let parent = stack.last().map(String::as_str).unwrap_or("");
        let in_resources = stack.iter().any(|s| s == "resources");
        let a = attrs(&e)?;
        match (parent, name.as_str()) {
            ("summary", "current_dc") => {
                summary_seen = true;
                let present = flag(&a, "present")?;
                f.dc_present = Some(present);
                if present {
                    f.dc = get(&a, "name").map(str::to_string);
                }
                // Absent when no DC is elected: quorum is then unknown, never assumed.
                f.with_quorum = get(&a, "with_quorum")
                    .map(|v| bool_attr("with_quorum", v))
                    .transpose()?;
            }
            ("summary", "cluster_options") => {
                f.maintenance_mode = get(&a, "maintenance-mode")
                    .map(|v| bool_attr("maintenance-mode", v))
                    .transpose()?;
                f.stonith_enabled = get(&a, "stonith-enabled")
                    .map(|v| bool_attr("stonith-enabled", v))
                    .transpose()?;
            }
            ("nodes", "node") => {
                let node = get(&a, "name")
                    .ok_or("a <node> without a name")?
                    .to_string();
                let n = PcmkNode {
                    online: flag(&a, "online")?,
                    standby: flag(&a, "standby")?,
                    standby_onfail: flag(&a, "standby_onfail")?,
                    maintenance: flag(&a, "maintenance")?,
                    unclean: flag(&a, "unclean")?,
                    pending: flag(&a, "pending")?,
                    is_dc: flag(&a, "is_dc")?,
                };
                if f.nodes.len() < MAX_READ || f.nodes.contains_key(&node) {
                    f.nodes.insert(node, n);
                } else {
                    f.truncated = true;
                }
            }
            (_, "clone" | "group" | "bundle") if in_resources && !empty => {
                let id = get(&a, "id").ok_or("a clone, group or bundle without an id")?;
                containers.push((id.to_string(), name != "group"));
            }
            (_, "resource") if in_resources => {
                if resource.is_some() {
                    return Err("a <resource> inside a <resource>".into());
                }
                let id = get(&a, "id")
                    .ok_or("a <resource> without an id")?
                    .to_string();
                let r = PcmkResource {
                    id,
                    parent: (!containers.is_empty()).then(|| {
                        containers
                            .iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join("/")
                    }),
                    cloned: containers.first().is_some_and(|(_, copies)| *copies),
                    agent: get(&a, "resource_agent").map(str::to_string),
                    role: get(&a, "role").unwrap_or("Unknown").to_string(),
                    target_role: get(&a, "target_role").map(str::to_string),
                    active: flag(&a, "active")?,
                    failed: flag(&a, "failed")?,
                    blocked: flag(&a, "blocked")?,
                    managed: get(&a, "managed").map_or(Ok(true), |v| bool_attr("managed", v))?,
                    nodes: Vec::new(),
                };
                if empty {
                    push_bounded(&mut f.resources, r, &mut f.truncated);
                } else {
                    resource = Some(r);
                }
            }
            ("resource", "node") if in_resources => {
                if let (Some(r), Some(n)) = (resource.as_mut(), get(&a, "name")) {
                    if r.nodes.len() < 64 {
                        r.nodes.push(n.to_string());
                    }
                }
            }
            ("node_history", "node") => {
                history_node = Some(
                    get(&a, "name")
                        .ok_or("a history <node> without a name")?
                        .to_string(),
                );
            }
            ("node", "resource_history") => {
                let count = match get(&a, "fail-count") {
                    None => 0,
                    // INFINITY is Pacemaker's 1000000.
                    Some("INFINITY") => 1_000_000,
                    Some(v) => v
                        .parse::<u32>()
                        .map_err(|_| format!("fail-count={:?} is not a count", cut(v, 40)))?,
                };
                if let (Some(node), true) = (&history_node, count > 0) {
                    let fc = PcmkFailCount {
                        resource: get(&a, "id")
                            .ok_or("a <resource_history> without an id")?
                            .to_string(),
                        node: node.clone(),
                        count,
                        threshold: get(&a, "migration-threshold").and_then(|v| v.parse().ok()),
                    };
                    push_bounded(&mut f.fail_counts, fc, &mut f.truncated);
                }
            }
            ("failures", "failure") => {
                let op_key = get(&a, "op_key").unwrap_or("");
                let resource = get(&a, "resource").unwrap_or_else(|| op_resource(op_key));
                let fa = PcmkFailedAction {
                    resource: resource.to_string(),
                    task: get(&a, "task").unwrap_or("unknown").to_string(),
                    node: get(&a, "node").unwrap_or("unknown").to_string(),
                    reason: get(&a, "exitreason")
                        .filter(|r| !r.is_empty())
                        .or_else(|| get(&a, "exitstatus"))
                        .map(str::to_string),
                };
                push_bounded(&mut f.failed_actions, fa, &mut f.truncated);
            }
            ("pacemaker-result", "status") => {
                status = Some((
                    get(&a, "code").unwrap_or("").to_string(),
                    get(&a, "message").unwrap_or("").to_string(),
                ));
            }
            ("errors", "error") if !empty => error_text = Some(String::new()),
            _ => {}
        }
        if !empty {
            stack.push(name);
        }
    }
    if !root_seen {
        return Err("no XML element: empty or not crm_mon output".into());
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "the document ends inside <{}>: cut short",
            cut(open, 40)
        ));
    }
    if let Some((code, message)) = status.filter(|(c, _)| c != "0") {
        let mut why = format!("status {code} {message}");
        if !errors.is_empty() {
            why.push_str(": ");
            why.push_str(&errors.join("; "));
        }
        return Ok(Parsed::Refused(cut(&why, MAX_ERROR)));
    }
    if !summary_seen {
        return Err("no <summary><current_dc>: not a cluster status".into());
    }
    bound(&mut f);
    Ok(Parsed::Status(f))
}

fn push_bounded<T>(list: &mut Vec<T>, item: T, truncated: &mut bool) {
    if list.len() < MAX_READ {
        list.push(item);
    } else {
        *truncated = true;
    }
}

/// Cuts the facts to [`PacemakerFacts::MAX_ENTRIES`] per list and to [`FACTS_BUDGET`]
/// bytes, dropping healthy resources (running, or stopped on purpose) before any other
/// entry, so what is kept always holds the problems.
pub fn bound(f: &mut PacemakerFacts) {
    let max = PacemakerFacts::MAX_ENTRIES;
    if f.nodes.len() > max {
        let keep: Vec<String> = f.nodes.keys().take(max).cloned().collect();
        f.nodes.retain(|k, _| keep.contains(k));
        f.truncated = true;
    }
    for list_len in [f.failed_actions.len(), f.fail_counts.len()] {
        if list_len > max {
            f.truncated = true;
        }
    }
    f.failed_actions.truncate(max);
    f.fail_counts.truncate(max);
    let healthy = |r: &PcmkResource| r.running() || r.held();
    if f.resources.len() > max {
        // Every problem first (in order), then healthy ones while room is left.
        let problems = f.resources.iter().filter(|r| !healthy(r)).count();
        let mut room = max.saturating_sub(problems);
        let mut kept_problems = 0;
        f.resources.retain(|r| {
            if healthy(r) {
                let keep = room > 0;
                room = room.saturating_sub(1);
                keep
            } else {
                kept_problems += 1;
                kept_problems <= max
            }
        });
        f.truncated = true;
    }
    loop {
        let size = serde_json::to_vec(&*f).map_or(usize::MAX, |v| v.len());
        if f.resources.len() <= max && size <= FACTS_BUDGET {
            break;
        }
        f.truncated = true;
        // The last healthy resource goes first; then the last of any kind.
        match f.resources.iter().rposition(healthy) {
            Some(i) => {
                f.resources.remove(i);
            }
            None if !f.resources.is_empty() => {
                f.resources.pop();
            }
            None if !f.fail_counts.is_empty() => {
                f.fail_counts.pop();
            }
            None if !f.failed_actions.is_empty() => {
                f.failed_actions.pop();
            }
            None => break,
        }
    }
}

/// The facts a run gives: the parsed status with `me` set, or `reachable: false` with why.
pub fn facts(cfg: &Config, raw: &Raw) -> PacemakerFacts {
    let unreachable = |why: String| PacemakerFacts {
        reachable: false,
        error: Some(cut(&why, MAX_ERROR)),
        me: cfg.node_name.clone(),
        ..PacemakerFacts::default()
    };
    match raw {
        Raw::Failed(e) => unreachable(e.clone()),
        Raw::Ran {
            code,
            stdout,
            stderr,
            host,
        } => {
            let exit = || match code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            };
            let first_stderr = stderr.lines().find(|l| !l.trim().is_empty());
            match parse_xml(stdout) {
                Ok(Parsed::Status(mut f)) => {
                    f.me = cfg.node_name.clone().or_else(|| host.clone());
                    f
                }
                Ok(Parsed::Refused(why)) => unreachable(why),
                Err(e) if *code == Some(0) => unreachable(format!("unreadable XML: {e}")),
                Err(e) => unreachable(match first_stderr {
                    Some(l) => format!("{}: {}", exit(), l.trim()),
                    None => format!("{}, unreadable XML: {e}", exit()),
                }),
            }
        }
    }
}

/// The `pacemaker` probe. Remembers whether this `crm_mon` needs `--as-xml`.
pub struct Pacemaker {
    legacy: AtomicBool,
}

/// One bounded read: the bytes, and whether there were more than `max`.
async fn read_bounded<R: AsyncRead + Unpin>(r: R, max: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let _ = r.take(max as u64 + 1).read_to_end(&mut buf).await;
    let over = buf.len() > max;
    buf.truncate(max);
    (buf, over)
}

/// The host's name (Pacemaker's default node name), bounded.
fn host_name() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let s = s.trim();
    (!s.is_empty() && s.len() <= MAX_FIELD).then(|| s.to_string())
}

/// How one run ended.
enum Run {
    Done {
        code: Option<i32>,
        stdout: Vec<u8>,
        stderr: String,
    },
    Failed(String),
}

impl Pacemaker {
    /// Runs `command` + `flag` until `deadline`: killed at the deadline or when stdout passes
    /// [`MAX_OUTPUT`].
    async fn run(cfg: &Config, flag: &str, deadline: tokio::time::Instant) -> Run {
        use std::process::Stdio;
        let Some((program, args)) = cfg.command.split_first() else {
            return Run::Failed("no command configured".into());
        };
        let mut child = match tokio::process::Command::new(program)
            .args(args)
            .arg(flag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return Run::Failed(cut(&format!("cannot run {program}: {e}"), MAX_ERROR)),
        };
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Run::Failed("no pipes to the child".into());
        };
        let work = async {
            let stdout = read_bounded(out, MAX_OUTPUT);
            // stderr past its bound is drained, not kept, so the child never blocks on it.
            let stderr = async {
                let mut err = err;
                let mut kept = Vec::new();
                let _ = (&mut err)
                    .take(MAX_STDERR as u64)
                    .read_to_end(&mut kept)
                    .await;
                let _ = tokio::io::copy(&mut err, &mut tokio::io::sink()).await;
                kept
            };
            let ((stdout, over), stderr) = tokio::join!(stdout, stderr);
            (stdout, over, stderr)
        };
        let (stdout, over, stderr) = match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Run::Failed(format!("no answer within {} ms: killed", cfg.timeout_ms));
            }
        };
        if over {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Run::Failed(format!(
                "output larger than {MAX_OUTPUT} bytes: refused whole"
            ));
        }
        let code = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(s)) => s.code(),
            Ok(Err(e)) => return Run::Failed(cut(&format!("wait: {e}"), MAX_ERROR)),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Run::Failed(format!("no exit within {} ms: killed", cfg.timeout_ms));
            }
        };
        Run::Done {
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Whether a run refused `--output-as=xml` as an unknown option (Pacemaker 1.1).
fn refused_option(code: Option<i32>, stderr: &str) -> bool {
    code == Some(EX_USAGE)
        || stderr.contains("unrecognized option")
        || stderr.contains("invalid option")
}

impl TypedProbe for Pacemaker {
    const KIND: &'static str = "pacemaker";
    type Config = Config;
    type Raw = Raw;

    fn new(_cfg: &Config) -> Self {
        Pacemaker {
            legacy: AtomicBool::new(false),
        }
    }

    fn collect_budget(cfg: &Config) -> Duration {
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = tokio::time::Instant::now() + Self::collect_budget(cfg);
        let legacy = self.legacy.load(Ordering::Relaxed);
        let mut run = Self::run(
            cfg,
            if legacy {
                "--as-xml"
            } else {
                "--output-as=xml"
            },
            deadline,
        )
        .await;
        if let Run::Done { code, stderr, .. } = &run {
            if !legacy && refused_option(*code, stderr) {
                run = Self::run(cfg, "--as-xml", deadline).await;
                if matches!(&run, Run::Done { code: Some(0), .. }) {
                    self.legacy.store(true, Ordering::Relaxed);
                }
            }
        }
        match run {
            Run::Failed(e) => Raw::Failed(e),
            Run::Done {
                code,
                stdout,
                stderr,
            } => Raw::Ran {
                code,
                stdout,
                stderr,
                host: if cfg.node_name.is_none() {
                    host_name()
                } else {
                    None
                },
            },
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let facts = facts(cfg, raw);
        let mut f = Finding::ok();
        for (status, code, message) in facts.own_verdicts() {
            f.worsen(status, code, message);
        }
        // The legacy entry: Active while this node is an online member with quorum.
        let mut info = serde_json::Map::new();
        info.insert(
            "dc".into(),
            facts.dc.clone().map_or(serde_json::Value::Null, Into::into),
        );
        info.insert(
            "with_quorum".into(),
            facts
                .with_quorum
                .map_or(serde_json::Value::Null, Into::into),
        );
        let serving = facts.reachable
            && facts.with_quorum == Some(true)
            && facts.my_node().is_none_or(|n| n.online);
        f.set_service(SERVICE, serving, None, info);
        f.facts.pacemaker = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::NodeStatus;

    fn cfg() -> Config {
        toml::from_str("node_name = \"pc1\"").unwrap()
    }

    #[test]
    fn op_keys_name_their_resource() {
        assert_eq!(op_resource("dummy_asyncmon_0"), "dummy");
        assert_eq!(op_resource("my_rsc_monitor_10000"), "my_rsc");
        assert_eq!(op_resource("odd"), "odd");
        assert_eq!(op_resource("_monitor_0"), "_monitor_0");
    }

    #[test]
    fn config_rejects_unknown_keys_and_empty_commands() {
        assert!(toml::from_str::<Config>("comand = [\"x\"]").is_err());
        let c: Config = toml::from_str("command = []\ntimeout_ms = 0\nnode_name = \"\"").unwrap();
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
        assert!(cfg().validate().is_empty());
    }

    #[test]
    fn a_failed_run_is_fail_with_facts() {
        let f = Pacemaker::interpret(&cfg(), &Raw::Failed("no answer within 5000 ms".into()));
        assert_eq!(f.status, NodeStatus::Fail);
        let p = f.facts.pacemaker.unwrap();
        assert!(!p.reachable);
        assert_eq!(p.me.as_deref(), Some("pc1"));
        assert_eq!(f.reasons[0].code, "pacemaker_unreachable");
    }

    #[test]
    fn the_usage_exit_means_the_old_option() {
        assert!(refused_option(Some(64), ""));
        assert!(refused_option(
            Some(1),
            "crm_mon: unrecognized option '--output-as=xml'"
        ));
        assert!(!refused_option(Some(102), "Not connected"));
    }

    #[tokio::test]
    async fn a_child_is_bounded_in_time_and_output() {
        let sh = |script: &str, timeout_ms| Config {
            command: vec!["sh".into(), "-c".into(), script.into(), "sh".into()],
            node_name: Some("pc1".into()),
            timeout_ms,
        };
        let p = Pacemaker::new(&cfg());
        let ctx = ProbeContext { cycle: 0, now: 0 };
        // Hangs: killed at the deadline.
        let t0 = std::time::Instant::now();
        let raw = p.collect(&sh("sleep 30", 300), &ctx).await;
        assert!(
            matches!(&raw, Raw::Failed(e) if e.contains("no answer within 300 ms")),
            "{raw:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(10));
        // Writes without end: refused whole at MAX_OUTPUT.
        let raw = p.collect(&sh("yes '<x>'", 20_000), &ctx).await;
        assert!(
            matches!(&raw, Raw::Failed(e) if e.contains("larger than")),
            "{raw:?}"
        );
        // The flag is appended; stderr is kept bounded; the exit code is data.
        let raw = p
            .collect(
                &sh(
                    "echo \"$1\"; head -c 100000 /dev/zero | tr '\\0' e >&2; exit 3",
                    5000,
                ),
                &ctx,
            )
            .await;
        match raw {
            Raw::Ran {
                code,
                stdout,
                stderr,
                ..
            } => {
                assert_eq!(code, Some(3));
                assert_eq!(stdout, b"--output-as=xml\n");
                assert_eq!(stderr.len(), MAX_STDERR);
            }
            other => panic!("{other:?}"),
        }
        // A missing program is a clear failure.
        let raw = p
            .collect(
                &Config {
                    command: vec!["/nonexistent/crm_mon".into()],
                    ..cfg()
                },
                &ctx,
            )
            .await;
        assert!(
            matches!(&raw, Raw::Failed(e) if e.contains("cannot run /nonexistent/crm_mon")),
            "{raw:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_option_falls_back_to_as_xml_and_stays_there() {
        // A crm_mon 1.1 stand-in: refuses --output-as with the usage exit code.
        let cfg = Config {
            command: vec![
                "sh".into(),
                "-c".into(),
                "case \"$1\" in --as-xml) echo '<crm_mon version=\"1.1.24\"><summary><current_dc present=\"true\" name=\"pc1\" with_quorum=\"true\"/></summary><nodes><node name=\"pc1\" id=\"1\" online=\"true\"/></nodes></crm_mon>';; *) echo \"crm_mon: unrecognized option '$1'\" >&2; exit 64;; esac".into(),
                "sh".into(),
            ],
            node_name: Some("pc1".into()),
            timeout_ms: 5000,
        };
        let p = Pacemaker::new(&cfg);
        let ctx = ProbeContext { cycle: 0, now: 0 };
        let raw = p.collect(&cfg, &ctx).await;
        let f = Pacemaker::interpret(&cfg, &raw);
        assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
        assert!(p.legacy.load(Ordering::Relaxed));
        assert_eq!(f.facts.pacemaker.unwrap().dc.as_deref(), Some("pc1"));
    }
}
