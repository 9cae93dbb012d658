//! `keepalived`: the local keepalived's VRRP instances and whether this node holds their VIPs.
//!
//! Each cycle signals keepalived (`SIGUSR1` to the pid in its pid file), which makes its
//! VRRP process rewrite its data file (`/tmp/keepalived.data`, or `/tmp/keepalived.NAME.data`
//! with `data_use_instance`), and waits for that file's mtime to change, polling until
//! `timeout_ms`; a file not rewritten since the signal is never read, so an old dump from a
//! dead keepalived cannot pass for a live one. The read is bounded by [`MAX_DATA`]. The
//! node's own addresses come from `getifaddrs(3)` (netlink inside libc; no subprocess), and
//! are read also when keepalived does not answer: a SIGKILLed keepalived leaves its VIP on
//! the interface (lab.md §H), which the roll-up must see to call the split brain.
//!
//! The facts become `facts.vip` (the roll-up's `vip` rule reads them) and the node's own
//! finding ([`VipFacts::own_verdicts`]). [`parse_data`] is pure and fuzzed
//! (`fuzz/fuzz_targets/keepalived_data.rs`). The JSON dump is not used: keepalived 2.2 writes
//! it to one fixed `/tmp/keepalived.json` for every instance on the host.

use crate::haproxy::cut;
use crate::{default_ms, range_error, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::facts::{VipFacts, VrrpInstance};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The legacy service name this probe reports under.
pub const SERVICE: &str = "keepalived";
/// Largest data file read. keepalived 2.2 writes about 5 KiB for one instance and three
/// interfaces; 512 KiB is hundreds of instances. A larger file is refused whole.
pub const MAX_DATA: usize = 512 * 1024;
/// Longest instance name or state kept (keepalived's own limit on names is lower).
pub const MAX_FIELD: usize = 64;
/// Rough size of the `vip` facts kept, under the report's 16 KiB facts limit with room for
/// other probes' facts: past it, further instances and VIPs are dropped and `truncated` set.
pub const FACTS_BUDGET: usize = 6 * 1024;
/// Longest error message kept in the facts.
const MAX_ERROR: usize = 256;
/// How often the data file's mtime is looked at while waiting for the rewrite.
const POLL: Duration = Duration::from_millis(20);
const TOPOLOGY: &str = "------< VRRP Topology >------";
const SECTION: &str = "------<";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// keepalived's main pid file (`-p`; `/run/keepalived.pid` by default). The agent
    /// must be allowed to signal it (root, or the same user).
    #[serde(default = "default_pid_file")]
    pub pid_file: PathBuf,
    /// The data file keepalived writes on SIGUSR1: `/tmp/keepalived.data`, or
    /// `/tmp/keepalived.INSTANCE.data` with `data_use_instance` (INSTANCE is the `-i`
    /// name, or the network namespace of `-s`).
    #[serde(default = "default_data_file")]
    pub data_file: PathBuf,
    /// VIPs to look for on this node's interfaces besides those the dump names, so a VIP
    /// left behind by a dead keepalived is still seen.
    #[serde(default)]
    pub vips: Vec<String>,
    /// Bound on signal, rewrite and read together.
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

fn default_pid_file() -> PathBuf {
    PathBuf::from("/run/keepalived.pid")
}
fn default_data_file() -> PathBuf {
    PathBuf::from("/tmp/keepalived.data")
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for (name, p) in [("pid_file", &self.pid_file), ("data_file", &self.data_file)] {
            if p.as_os_str().is_empty() || p.is_relative() {
                errors.push(format!(
                    "{name} must be an absolute path, got {:?}",
                    p.display().to_string()
                ));
            }
        }
        for v in &self.vips {
            if v.parse::<IpAddr>().is_err() {
                errors.push(format!(
                    "vips: {:?} is not an IP address (no prefix length)",
                    cut(v, MAX_FIELD)
                ));
            }
        }
        if self.vips.len() > VipFacts::MAX_ENTRIES {
            errors.push(format!(
                "vips: at most {} addresses, got {}",
                VipFacts::MAX_ENTRIES,
                self.vips.len()
            ));
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What `collect` saw: the data file (or why not), and this node's addresses (or why not).
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub data: Result<String, String>,
    pub addrs: Result<Vec<IpAddr>, String>,
}

/// Reads keepalived's data dump into its VRRP instances: state, effective priority and
/// virtual addresses (normalised, prefix length dropped). Errors say what is wrong: no
/// `VRRP Topology` section, a dump cut before the section after it (keepalived was still
/// writing, or the file was truncated), an instance without a `State`, an oversized file.
/// Bounded: at most [`VipFacts::MAX_ENTRIES`] instances and VIPs per instance, about
/// [`FACTS_BUDGET`] bytes; the bool is true when more were cut.
pub fn parse_data(text: &str) -> Result<(Vec<(String, VrrpInstance)>, bool), String> {
    if text.len() > MAX_DATA {
        return Err(format!("data file is larger than {MAX_DATA} bytes"));
    }
    let mut lines = text.lines().skip_while(|l| l.trim_end() != TOPOLOGY);
    if lines.next().is_none() {
        return Err(format!(
            "no {TOPOLOGY:?} section: not a keepalived data file, or no vrrp_instance"
        ));
    }
    let mut out: Vec<(String, VrrpInstance)> = Vec::new();
    let mut truncated = false;
    let mut in_vips = false;
    let mut ended = false;
    let mut skip = false;
    let mut budget = FACTS_BUDGET;
    for line in lines {
        if line.starts_with(SECTION) {
            ended = true;
            break;
        }
        let depth = line.len() - line.trim_start_matches(' ').len();
        let body = line.trim();
        if depth == 1 {
            in_vips = false;
            if let Some(name) = body.strip_prefix("VRRP Instance = ") {
                // The name, a state, a priority and the JSON around them.
                let cost = name.len().min(MAX_FIELD) + MAX_FIELD + 64;
                if out.len() == VipFacts::MAX_ENTRIES || budget < cost {
                    truncated = true;
                    skip = true;
                    continue;
                }
                budget -= cost;
                skip = false;
                out.push((cut(name.trim(), MAX_FIELD), VrrpInstance::default()));
            }
            continue;
        }
        let Some((_, inst)) = out.last_mut().filter(|_| !skip) else {
            continue;
        };
        if depth == 3 {
            in_vips = body.starts_with("Virtual IP (");
            if let Some(state) = body.strip_prefix("State = ") {
                inst.state = cut(state.trim(), MAX_FIELD);
            } else if let Some(p) = body.strip_prefix("Effective priority = ") {
                inst.priority = p.trim().parse().ok();
            }
        } else if depth == 5 && in_vips {
            let addr = body.split([' ', '/']).next().unwrap_or("");
            match addr.parse::<IpAddr>() {
                // Twice: the address may be in `held` as well.
                Ok(ip) if inst.vips.len() < VipFacts::MAX_ENTRIES && budget >= 2 * 44 => {
                    budget -= 2 * 44;
                    inst.vips.push(ip.to_string())
                }
                Ok(_) => truncated = true,
                Err(_) => return Err(format!("not a virtual address: {:?}", cut(body, 80))),
            }
        } else if depth < 5 {
            in_vips = false;
        }
    }
    if !ended {
        return Err("data file ends inside the VRRP Topology section: cut short".into());
    }
    if let Some((name, _)) = out.iter().find(|(_, i)| i.state.is_empty()) {
        return Err(format!("instance {name} has no State line"));
    }
    Ok((out, truncated))
}

/// The `keepalived` probe. Stateless: one signal and one read per cycle.
pub struct Keepalived;

impl Keepalived {
    fn mtime(path: &Path) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// Signals keepalived and reads the data file once it has been rewritten and holds a
    /// whole topology section, until the deadline.
    async fn dump(cfg: &Config, deadline: tokio::time::Instant) -> Result<String, String> {
        let before = Self::mtime(&cfg.data_file);
        let pid = read_pid(&cfg.pid_file)?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .map_err(|e| format!("signal keepalived pid {pid}: {e}"))?;
        let mut last = "data file not rewritten".to_string();
        loop {
            let now = Self::mtime(&cfg.data_file);
            if now.is_some() && now != before {
                match read_bounded(&cfg.data_file) {
                    // keepalived may still be writing: a cut-short dump is read again.
                    Ok(text) => match parse_data(&text) {
                        Ok(_) => return Ok(text),
                        Err(e) => last = e,
                    },
                    Err(e) => last = e,
                }
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Err(format!(
                    "{} after SIGUSR1 to pid {pid} within {} ms: {last}",
                    cfg.data_file.display(),
                    cfg.timeout_ms
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn read_pid(path: &Path) -> Result<i32, String> {
    use std::io::Read;
    let mut buf = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(32).read_to_string(&mut buf))
        .map_err(|e| format!("pid file {}: {e}", path.display()))?;
    match buf.trim().parse::<i32>() {
        Ok(p) if p > 1 => Ok(p),
        _ => Err(format!(
            "pid file {}: not a pid: {:?}",
            path.display(),
            cut(buf.trim(), 32)
        )),
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DATA as u64 + 1).read_to_end(&mut buf))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() > MAX_DATA {
        return Err(format!("data file is larger than {MAX_DATA} bytes"));
    }
    String::from_utf8(buf).map_err(|_| "data file is not UTF-8".into())
}

/// This network namespace's interface addresses (`getifaddrs(3)`).
fn local_addrs() -> Result<Vec<IpAddr>, String> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list it owns; it is walked read-only and freed
    // once with freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(format!("getifaddrs: {}", std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() && out.len() < 4096 {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(u32::from_be(sa.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sa.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The facts of one reading: the dump's instances, and which of their VIPs (and the
/// configured ones) this node holds.
pub fn facts(cfg: &Config, raw: &Raw) -> VipFacts {
    let mut f = VipFacts::default();
    match raw
        .data
        .as_deref()
        .map_err(Clone::clone)
        .and_then(parse_data)
    {
        Ok((instances, truncated)) => {
            f.reachable = true;
            f.truncated = truncated;
            f.instances = instances.into_iter().collect();
        }
        Err(e) => f.error = Some(cut(&e, MAX_ERROR)),
    }
    let mut wanted: Vec<String> = cfg
        .vips
        .iter()
        .filter_map(|v| v.parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        .collect();
    wanted.extend(f.instances.values().flat_map(|i| i.vips.iter().cloned()));
    wanted.sort();
    wanted.dedup();
    match &raw.addrs {
        Ok(addrs) => {
            f.held = wanted
                .into_iter()
                .filter(|w| addrs.iter().any(|a| a.to_string() == *w))
                .collect();
        }
        Err(e) => {
            f.reachable = false;
            f.error = Some(cut(&format!("interface addresses: {e}"), MAX_ERROR));
        }
    }
    f
}

impl TypedProbe for Keepalived {
    const KIND: &'static str = "keepalived";
    const STACK: Option<sr_protocol::facts::StackService> =
        Some(sr_protocol::facts::StackService::Vip);
    type Config = Config;
    type Raw = Raw;

    fn new(_cfg: &Config) -> Self {
        Keepalived
    }

    fn collect_budget(cfg: &Config) -> Duration {
        Duration::from_millis(cfg.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let deadline = tokio::time::Instant::now() + Self::collect_budget(cfg);
        let data = Self::dump(cfg, deadline)
            .await
            .map_err(|e| cut(&e, MAX_ERROR));
        Raw {
            data,
            addrs: local_addrs(),
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let facts = facts(cfg, raw);
        let mut f = Finding::ok();
        for (status, code, message) in facts.own_verdicts() {
            f.worsen(status, code, message);
        }
        let mut info = serde_json::Map::new();
        info.insert("instances".into(), facts.instances.len().into());
        info.insert("held".into(), facts.held.len().into());
        f.set_service(SERVICE, facts.reachable, None, info);
        f.facts.vip = Some(facts);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(instances: &str) -> String {
        format!("------< Global definitions >------\n Router ID = x\n{TOPOLOGY}\n{instances}------< Interfaces >------\n")
    }
    const ONE: &str = " VRRP Instance = VI_1\n   State = MASTER\n   Effective priority = 150\n   Virtual IP (2):\n     10.0.0.100/24 dev eth0 scope global set\n     fd00::0:1/64 dev eth0 scope global\n   Interface = eth0\n";

    #[test]
    fn instances_states_priorities_and_vips() {
        let (v, truncated) = parse_data(&dump(ONE)).unwrap();
        assert!(!truncated);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "VI_1");
        assert_eq!(v[0].1.state, "MASTER");
        assert_eq!(v[0].1.priority, Some(150));
        assert_eq!(v[0].1.vips, ["10.0.0.100", "fd00::1"]);
    }

    #[test]
    fn bad_dumps_are_errors_that_say_why() {
        assert!(parse_data("")
            .unwrap_err()
            .contains("no \"------< VRRP Topology"));
        assert!(parse_data("garbage\n").is_err());
        // Cut inside the topology section (keepalived still writing).
        let whole = dump(ONE);
        let cut_at = whole.find("------< Interfaces").unwrap();
        assert!(parse_data(&whole[..cut_at])
            .unwrap_err()
            .contains("cut short"));
        assert!(
            parse_data(&dump(" VRRP Instance = VI_1\n   Priority = 1\n"))
                .unwrap_err()
                .contains("no State")
        );
        assert!(parse_data(&dump(" VRRP Instance = VI_1\n   State = MASTER\n   Virtual IP (1):\n     nonsense dev eth0\n"))
            .unwrap_err()
            .contains("not a virtual address"));
        let big = format!("{TOPOLOGY}\n{}", "x".repeat(MAX_DATA));
        assert!(parse_data(&big).unwrap_err().contains("larger"));
    }

    #[test]
    fn many_instances_are_bounded_and_marked_truncated() {
        let many: String = (0..200)
            .map(|i| format!(" VRRP Instance = VI_{i}\n   State = BACKUP\n"))
            .collect();
        let (v, truncated) = parse_data(&dump(&many)).unwrap();
        assert!(truncated);
        assert!(
            v.len() <= VipFacts::MAX_ENTRIES && v.len() > 16,
            "{}",
            v.len()
        );
        let raw = Raw {
            data: Ok(dump(&many)),
            addrs: Ok(vec![]),
        };
        let finding = Keepalived::interpret(&default_cfg(), &raw);
        assert!(finding.reasons.iter().any(|r| r.code == "vip_truncated"));
        // Many VIPs: the facts stay within their budget.
        let vips: String = (0..64)
            .map(|i| format!("     fd00:aaaa:bbbb:cccc:dddd:eeee:ffff:{i:x}/64 dev eth0\n"))
            .collect();
        let many: String = (0..64)
            .map(|i| {
                format!(" VRRP Instance = VI_{i}\n   State = BACKUP\n   Virtual IP (64):\n{vips}")
            })
            .collect();
        let (v, truncated) = parse_data(&dump(&many)).unwrap();
        assert!(truncated);
        let json = serde_json::to_vec(&v).unwrap();
        assert!(json.len() <= FACTS_BUDGET + 1024, "{} bytes", json.len());
    }

    #[test]
    fn held_vips_come_from_the_addresses_even_without_a_dump() {
        let mut cfg = default_cfg();
        cfg.vips = vec!["10.0.0.100".into()];
        let raw = Raw {
            data: Err("pid file /run/keepalived.pid: No such file".into()),
            addrs: Ok(vec![
                "10.0.0.1".parse().unwrap(),
                "10.0.0.100".parse().unwrap(),
            ]),
        };
        let f = facts(&cfg, &raw);
        assert!(!f.reachable);
        assert_eq!(f.held, ["10.0.0.100"]);
        let finding = Keepalived::interpret(&cfg, &raw);
        assert_eq!(finding.status, sr_protocol::NodeStatus::Fail);
        assert_eq!(finding.reasons[0].code, "vip_unreachable");
        // A MASTER without its VIP on an interface is Degraded.
        let raw = Raw {
            data: Ok(dump(ONE)),
            addrs: Ok(vec!["10.0.0.100".parse().unwrap()]),
        };
        let finding = Keepalived::interpret(&cfg, &raw);
        assert_eq!(finding.status, sr_protocol::NodeStatus::Degraded);
        assert_eq!(finding.reasons[0].code, "vip_not_held");
    }

    #[test]
    fn validate_names_every_problem() {
        let cfg = Config {
            pid_file: "rel.pid".into(),
            data_file: "".into(),
            vips: vec!["10.0.0.1/24".into()],
            timeout_ms: 0,
        };
        assert_eq!(cfg.validate().len(), 4, "{:?}", cfg.validate());
        assert!(default_cfg().validate().is_empty());
        let typo = serde_json::from_value::<crate::ProbeConfig>(serde_json::json!({
            "kind": "keepalived", "pidfile": "/x"
        }));
        assert!(typo.unwrap_err().to_string().contains("pidfile"));
    }

    #[tokio::test]
    async fn a_missing_pid_file_or_dead_pid_is_an_error_not_an_old_dump() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("k.data");
        std::fs::write(&data, dump(ONE)).unwrap();
        let mut cfg = default_cfg();
        cfg.data_file = data;
        cfg.pid_file = dir.path().join("none.pid");
        cfg.timeout_ms = 200;
        let raw = Keepalived
            .collect(&cfg, &ProbeContext { cycle: 0, now: 0 })
            .await;
        assert!(raw.data.unwrap_err().contains("pid file"));
        // A live process that never rewrites the file: the old dump is not read. (SIGUSR1
        // would end this test process; a child that ignores it stands in for keepalived.)
        let ready = dir.path().join("ready");
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("trap '' USR1; : > {}; sleep 5", ready.display()),
            ])
            .spawn()
            .unwrap();
        std::fs::write(&cfg.pid_file, child.id().to_string()).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            assert!(std::time::Instant::now() < until, "the child set no trap");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let raw = Keepalived
            .collect(&cfg, &ProbeContext { cycle: 0, now: 0 })
            .await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(raw.data.unwrap_err().contains("within 200 ms"));
        assert!(raw.addrs.unwrap().iter().any(|a| a.is_loopback()));
    }

    fn default_cfg() -> Config {
        serde_json::from_str("{}").unwrap()
    }
}
