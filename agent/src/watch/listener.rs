//! Which local process serves a probed TCP port: the probe configs name the service's
//! address, `/proc/net/tcp{,6}` names the listening socket's inode and owner, and
//! `/proc/PID/fd` names the process holding it (the Patroni process for its REST port, the
//! postmaster for PostgreSQL's, `beam.smp` for AMQP).
//!
//! The packaged agent runs as its own user without capabilities, so it cannot read another
//! user's `/proc/PID/fd`. Then the process is found by what every user may read: the
//! socket's owner (the uid in the table), the owner of `/proc/PID`, and the process's name
//! ([`Target::names`]); of those, the ones whose parent is not one of them (the
//! postmaster, not its backends). A pidfd needs no privilege over the process.
//!
//! Read only when a watch is (re)armed, never per tick while it holds. The parsers take
//! what the kernel writes and skip any line they do not understand; the input is bounded
//! ([`MAX_TABLE_BYTES`], [`MAX_PROCS`], [`MAX_FDS`]) because a busy host can have large
//! tables and the agent must not stall on them.

use sr_probes::ProbeConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Largest `/proc/net/tcp{,6}` read; past it the rest of the table is not looked at.
pub const MAX_TABLE_BYTES: u64 = 4 * 1024 * 1024;
/// Processes looked at per resolution.
pub const MAX_PROCS: usize = 65_536;
/// File descriptors looked at per resolution, over all processes.
pub const MAX_FDS: usize = 262_144;
/// Processes holding the one socket that are kept to choose from (a postmaster's
/// listening socket is inherited by every backend it forks).
const MAX_HOLDERS: usize = 64;

/// A probed service reachable over TCP, by the probe that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub probe: String,
    /// The addresses the probe connects to: one IP literal, or both loopbacks for
    /// `localhost`. Other host names are not watched (no DNS in a watcher).
    pub ips: Vec<IpAddr>,
    pub port: u16,
    /// Names the serving process goes by (its `comm`, or the base name of its first two
    /// arguments: `python3 /usr/bin/patroni`), for when its fds cannot be read.
    pub names: &'static [&'static str],
}

/// The targets of the probes that know a local process: Patroni (REST), PostgreSQL,
/// RabbitMQ (AMQP) and AMQP.
pub fn targets(probes: &[ProbeConfig]) -> Vec<Target> {
    let mut out = Vec::new();
    for p in probes {
        const BEAM: &[&str] = &["beam.smp"];
        let hp = match p {
            ProbeConfig::Patroni(c) => host_port_of_url(&c.url).map(|hp| (hp, &["patroni"][..])),
            ProbeConfig::Postgres(c) => {
                Some(((c.host.clone(), c.port), &["postgres", "postmaster"][..]))
            }
            ProbeConfig::Rabbitmq(c) => Some(((c.amqp_host.clone(), c.amqp_port), BEAM)),
            ProbeConfig::Amqp(c) => Some(((c.host.clone(), c.port), BEAM)),
            _ => None,
        };
        let Some(((host, port), names)) = hp else {
            continue;
        };
        let ips = host_ips(&host);
        if !ips.is_empty() && port != 0 {
            out.push(Target {
                probe: p.kind().to_string(),
                ips,
                port,
                names,
            });
        }
    }
    out
}

fn host_ips(host: &str) -> Vec<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| vec![ip])
        .unwrap_or_default()
}

/// `scheme://host[:port]/...` → host and port (the scheme's default when absent).
pub fn host_port_of_url(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.split_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

/// One listening socket from a `/proc/net/tcp{,6}` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub addr: IpAddr,
    pub port: u16,
    /// The socket's owner.
    pub uid: u32,
    pub inode: u64,
}

/// The LISTEN rows of a `/proc/net/tcp` or `/proc/net/tcp6` table. Lines that do not
/// parse are skipped.
pub fn parse_table(text: &str) -> Vec<Listening> {
    text.lines().skip(1).filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<Listening> {
    let f: Vec<&str> = line.split_ascii_whitespace().take(10).collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (addr, port) = f[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address as a host-order integer.
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    let addr = match addr.len() {
        8 => IpAddr::from(word(addr)?),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    let uid = f[7].parse().ok()?;
    let inode = f[9].parse().ok()?;
    Some(Listening {
        addr,
        port,
        uid,
        inode,
    })
}

/// The socket listening for `target`: on one of its addresses, or on the unspecified
/// address (which serves them all).
pub fn listening<'a>(rows: &'a [Listening], target: &Target) -> Option<&'a Listening> {
    rows.iter().find(|r| {
        r.port == target.port
            && r.inode != 0
            && (r.addr.is_unspecified() || target.ips.contains(&r.addr))
    })
}

fn read_bounded(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_TABLE_BYTES)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// What a resolution found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// No local socket listens for the target (the service is down or remote).
    NotListening,
    /// A socket listens but no process could be named for it.
    Hidden,
    /// The process holding the socket, or (when fds cannot be read) the processes of the
    /// socket's owner that go by the target's names: at most [`MAX_BY_NAME`].
    Pids(Vec<i32>),
}

/// Processes watched for one target when found by owner and name (a host running several
/// instances of one service as one user, as the lab does).
pub const MAX_BY_NAME: usize = 8;

/// Finds the process serving `target` under `proc_root` (`/proc`).
pub fn resolve(proc_root: &Path, target: &Target) -> Resolved {
    let mut rows = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Some(text) = read_bounded(&proc_root.join(table)) {
            rows.extend(parse_table(&text));
        }
    }
    let Some(sock) = listening(&rows, target) else {
        return Resolved::NotListening;
    };
    if let Some(pid) = holder(proc_root, sock.inode) {
        return Resolved::Pids(vec![pid]);
    }
    let pids = by_owner_and_name(proc_root, sock.uid, target.names);
    if pids.is_empty() {
        Resolved::Hidden
    } else {
        Resolved::Pids(pids)
    }
}

/// The processes of `uid` named one of `names`, without those whose parent is one of
/// them; at most [`MAX_BY_NAME`].
pub fn by_owner_and_name(proc_root: &Path, uid: u32, names: &[&str]) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let base = |s: &str| s.rsplit('/').next().unwrap_or("").to_string();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return found;
    };
    for entry in dir.flatten().take(MAX_PROCS) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if !entry.metadata().is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .take(2)
            .map(|a| base(&String::from_utf8_lossy(a)))
            .collect();
        if names
            .iter()
            .any(|n| comm.trim() == *n || args.iter().any(|a| a == n))
        {
            found.push(pid);
        }
    }
    found
        .iter()
        .copied()
        .filter(|p| parent(proc_root, *p).is_none_or(|pp| !found.contains(&pp)))
        .take(MAX_BY_NAME)
        .collect()
}

/// A process's parent, from `/proc/PID/stat`.
fn parent(proc_root: &Path, pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The process holding socket `inode` that did not inherit it from another holder.
fn holder(proc_root: &Path, inode: u64) -> Option<i32> {
    let want = format!("socket:[{inode}]");
    let mut holders = Vec::new();
    let mut fds_seen = 0usize;
    let dir = std::fs::read_dir(proc_root).ok()?;
    'procs: for entry in dir.flatten().take(MAX_PROCS) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            fds_seen += 1;
            if fds_seen > MAX_FDS {
                break 'procs;
            }
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                holders.push(pid);
                if holders.len() >= MAX_HOLDERS {
                    break 'procs;
                }
                break;
            }
        }
    }
    holders
        .iter()
        .copied()
        .find(|p| parent(proc_root, *p).is_none_or(|pp| !holders.contains(&pp)))
        .or_else(|| holders.iter().copied().min())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F48 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 777 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F48 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1628 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 80 1 0000000000000000 100 0 0 10 0
";

    fn target(ip: &str, port: u16) -> Target {
        Target {
            probe: "x".into(),
            ips: host_ips(ip),
            port,
            names: &[],
        }
    }

    #[test]
    fn listen_rows_parse_and_match_their_target() {
        let mut rows = parse_table(TCP);
        assert_eq!(rows.len(), 2, "only LISTEN rows: {rows:?}");
        assert_eq!(rows[0].addr, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(rows[0].port, 8008);
        rows.extend(parse_table(TCP6));
        assert_eq!(rows[2].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(rows[2].port, 5672);
        assert_eq!(rows[3].addr, IpAddr::from([127, 0, 0, 1]), "v4-mapped");
        let inode = |ip, port| listening(&rows, &target(ip, port)).map(|r| r.inode);
        assert_eq!(inode("127.0.0.1", 8008), Some(4242));
        assert_eq!(
            listening(&rows, &target("127.0.0.1", 8008)).unwrap().uid,
            1000
        );
        assert_eq!(inode("10.1.2.3", 8008), None);
        assert_eq!(
            inode("10.1.2.3", 5432),
            Some(777),
            "0.0.0.0 serves every address"
        );
        assert_eq!(inode("localhost", 5672), Some(31337));
        assert_eq!(inode("127.0.0.1", 5672), None);
    }

    #[test]
    fn malformed_truncated_and_oversized_tables_are_skipped_not_fatal() {
        for bad in [
            "",
            "header only",
            "h\n 0: 0100007F:1F48",
            "h\n 0: 0100007F 00000000:0000 0A a b c d e 1",
            "h\n 0: 0100007FF:1F48 0:0 0A a b c d e 1",
            "h\n 0: 0100007F:1F48FFFF 0:0 0A a b c d e 1",
            "h\n 0: 0100007F:1F48 0:0 0A a b c d e -1",
            "h\n 0: 0000000000000000FFFF0000010000é:1F48 0:0 0A a b c d e 1",
        ] {
            assert!(parse_table(bad).is_empty(), "{bad:?}");
        }
        let big = format!("h\n{}", "x".repeat(1_000_000));
        assert!(parse_table(&big).is_empty());
    }

    #[test]
    fn urls_give_host_and_port() {
        let hp = |u| host_port_of_url(u);
        assert_eq!(
            hp("https://127.0.0.1:8008/patroni"),
            Some(("127.0.0.1".into(), 8008))
        );
        assert_eq!(hp("http://localhost"), Some(("localhost".into(), 80)));
        assert_eq!(hp("https://u:p@[::1]:8443/"), Some(("::1".into(), 8443)));
        assert_eq!(hp("https://[::1]"), Some(("::1".into(), 443)));
        for bad in [
            "",
            "8008",
            "ftp://x:1",
            "http://x:99999",
            "http://[::1",
            "http://[::1]x",
        ] {
            assert_eq!(hp(bad), None, "{bad:?}");
        }
    }

    /// A /proc tree whose fds cannot be read (none are there), as the packaged agent sees
    /// other users' processes: the socket's owner and the processes' names decide.
    #[test]
    fn without_readable_fds_the_owners_processes_are_found_by_name_roots_only() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
        std::fs::create_dir(p.join("net")).unwrap();
        std::fs::write(
            p.join("net/tcp"),
            format!("h\n 0: 0100007F:1F48 00000000:0000 0A 0:0 0:0 0 {uid} 0 42 1\n 1: 0100007F:1538 00000000:0000 0A 0:0 0:0 0 {uid} 0 43 1\n"),
        )
        .unwrap();
        let proc = |pid: u32, comm: &str, args: &[&str], ppid: u32| {
            let d = p.join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("cmdline"), args.join("\0")).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} ({comm}) S {ppid} 1 1")).unwrap();
        };
        proc(
            100,
            "patroni",
            &["/usr/bin/python3", "/usr/bin/patroni", "a.yml"],
            1,
        );
        proc(101, "python3", &["python3", "/opt/venv/bin/patroni"], 1);
        proc(102, "python3", &["python3", "/usr/bin/other"], 1);
        proc(
            200,
            "postgres",
            &["/usr/lib/postgresql/17/bin/postgres", "-D", "x"],
            100,
        );
        proc(201, "postgres", &["postgres: checkpointer"], 200);
        proc(202, "postgres", &["postgres: walwriter"], 200);
        let t = |port, names| Target {
            probe: "x".into(),
            ips: host_ips("127.0.0.1"),
            port,
            names,
        };
        let mut got = match resolve(p, &t(8008, &["patroni"])) {
            Resolved::Pids(pids) => pids,
            other => panic!("{other:?}"),
        };
        got.sort();
        assert_eq!(got, [100, 101], "by comm and by the script's name");
        assert_eq!(
            resolve(p, &t(5432, &["postgres", "postmaster"])),
            Resolved::Pids(vec![200]),
            "the postmaster, not its children"
        );
        assert_eq!(resolve(p, &t(5432, &["beam.smp"])), Resolved::Hidden);
        assert_eq!(resolve(p, &t(5672, &["beam.smp"])), Resolved::NotListening);
        // Another user's socket: that user's processes only.
        std::fs::write(
            p.join("net/tcp"),
            format!(
                "h\n 0: 0100007F:1F48 00000000:0000 0A 0:0 0:0 0 {} 0 42 1\n",
                uid + 1
            ),
        )
        .unwrap();
        assert_eq!(resolve(p, &t(8008, &["patroni"])), Resolved::Hidden);
    }

    #[test]
    fn a_listening_socket_of_this_process_resolves_to_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = resolve(Path::new("/proc"), &target("127.0.0.1", port));
        assert_eq!(got, Resolved::Pids(vec![std::process::id() as i32]));
        drop(l);
        assert_eq!(
            resolve(Path::new("/proc"), &target("127.0.0.1", port)),
            Resolved::NotListening
        );
    }
}
