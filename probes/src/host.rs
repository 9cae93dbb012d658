//! `host`: the machine itself: load per CPU, memory available, free space on the
//! configured paths, and whether the clock is synchronised.
//!
//! Sources are the kernel's own files under an injectable `proc_root` (`loadavg`,
//! `meminfo`, `stat`), `statvfs(2)` for the paths, and `adjtimex(2)` for the clock.
//! These were preferred to sysinfo: the three reads are cheaper than a sysinfo refresh,
//! and a `proc_root` lets tests run the real collection on fixture trees, as
//! node_exporter does. Clock state matters because every freshness rule depends on
//! clocks; an unsynchronised clock is Degraded, never Fail.

use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Paths whose filesystem's free space is checked (data directories).
    #[serde(default = "default_paths")]
    pub paths: Vec<PathBuf>,
    /// 1-minute load average per CPU at which the node is Degraded / Fail.
    #[serde(default = "default_load_degraded")]
    pub load_per_cpu_degraded: f64,
    #[serde(default = "default_load_fail")]
    pub load_per_cpu_fail: f64,
    /// MemAvailable as a percentage of MemTotal below which the node is Degraded / Fail.
    #[serde(default = "default_mem_degraded")]
    pub mem_available_degraded_pct: f64,
    #[serde(default = "default_mem_fail")]
    pub mem_available_fail_pct: f64,
    /// Free space percentage below which the node is Degraded / Fail.
    #[serde(default = "default_disk_degraded")]
    pub disk_free_degraded_pct: f64,
    #[serde(default = "default_disk_fail")]
    pub disk_free_fail_pct: f64,
    /// Whether an unsynchronised clock makes the node Degraded.
    #[serde(default = "yes")]
    pub require_clock_sync: bool,
    /// Where procfs is mounted; tests point it at a fixture tree.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
}

fn default_paths() -> Vec<PathBuf> {
    vec![PathBuf::from("/")]
}
fn default_load_degraded() -> f64 {
    2.0
}
fn default_load_fail() -> f64 {
    4.0
}
fn default_mem_degraded() -> f64 {
    10.0
}
fn default_mem_fail() -> f64 {
    3.0
}
fn default_disk_degraded() -> f64 {
    10.0
}
fn default_disk_fail() -> f64 {
    3.0
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: default_paths(),
            load_per_cpu_degraded: default_load_degraded(),
            load_per_cpu_fail: default_load_fail(),
            mem_available_degraded_pct: default_mem_degraded(),
            mem_available_fail_pct: default_mem_fail(),
            disk_free_degraded_pct: default_disk_degraded(),
            disk_free_fail_pct: default_disk_fail(),
            require_clock_sync: true,
            proc_root: default_proc_root(),
            timeout_ms: default_ms::<2000>(),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let pair = |name: &str,
                    degraded: f64,
                    fail: f64,
                    lower_is_worse: bool,
                    errors: &mut Vec<String>| {
            if !degraded.is_finite() || !fail.is_finite() || degraded < 0.0 || fail < 0.0 {
                errors.push(format!("{name}: thresholds must be non-negative numbers"));
            } else if lower_is_worse && fail > degraded {
                errors.push(format!(
                    "{name}_fail_pct ({fail}) must not be above {name}_degraded_pct ({degraded})"
                ));
            } else if !lower_is_worse && fail < degraded {
                errors.push(format!(
                    "{name}_fail ({fail}) must not be below {name}_degraded ({degraded})"
                ));
            }
        };
        pair(
            "load_per_cpu",
            self.load_per_cpu_degraded,
            self.load_per_cpu_fail,
            false,
            &mut errors,
        );
        pair(
            "mem_available",
            self.mem_available_degraded_pct,
            self.mem_available_fail_pct,
            true,
            &mut errors,
        );
        pair(
            "disk_free",
            self.disk_free_degraded_pct,
            self.disk_free_fail_pct,
            true,
            &mut errors,
        );
        if self.mem_available_degraded_pct > 100.0 || self.disk_free_degraded_pct > 100.0 {
            errors.push("percentages must be at most 100".into());
        }
        if self.paths.len() > 32 {
            errors.push(format!("paths: at most 32, got {}", self.paths.len()));
        }
        for p in &self.paths {
            if p.is_relative() {
                errors.push(format!(
                    "paths: {:?} must be absolute",
                    p.display().to_string()
                ));
            }
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClockState {
    Synced { max_error_us: i64 },
    Unsynced,
    Unknown(String),
}

/// What `collect` read. A source that could not be read is an `Err` with the cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub cpus: Result<usize, String>,
    pub load1: Result<f64, String>,
    /// (MemTotal, MemAvailable) in kB.
    pub memory_kb: Result<(u64, u64), String>,
    pub disks: Vec<(PathBuf, Result<DiskSpace, String>)>,
    pub clock: ClockState,
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut s = String::new();
    // procfs files report size 0; the cap bounds a hostile or fixture file.
    f.take(256 * 1024)
        .read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(s)
}

pub fn parse_loadavg(text: &str) -> Result<f64, String> {
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| "loadavg: unexpected format".to_string())
}

pub fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("MemTotal"), field("MemAvailable")) {
        (Some(t), Some(a)) if t > 0 => Ok((t, a)),
        _ => Err("meminfo: MemTotal or MemAvailable missing".into()),
    }
}

pub fn parse_cpu_count(stat: &str) -> Result<usize, String> {
    let n = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    if n == 0 {
        Err("stat: no cpu lines".into())
    } else {
        Ok(n)
    }
}

fn disk_space(path: &Path) -> Result<DiskSpace, String> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let frag = s.fragment_size() as u64;
    Ok(DiskSpace {
        total_bytes: s.blocks() as u64 * frag,
        available_bytes: s.blocks_available() as u64 * frag,
    })
}

fn clock_state() -> ClockState {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into a zeroed
    // struct that we own.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    match state {
        -1 => ClockState::Unknown(std::io::Error::last_os_error().to_string()),
        libc::TIME_ERROR => ClockState::Unsynced,
        _ if tx.status & libc::STA_UNSYNC != 0 => ClockState::Unsynced,
        _ => ClockState::Synced {
            max_error_us: tx.maxerror as i64,
        },
    }
}

/// Reads everything; blocking (statvfs can hang on a dead network mount), so the probe
/// runs it on the blocking pool under its timeout.
pub fn read(cfg: &Config) -> Raw {
    let root = &cfg.proc_root;
    Raw {
        cpus: read_small(&root.join("stat")).and_then(|s| parse_cpu_count(&s)),
        load1: read_small(&root.join("loadavg")).and_then(|s| parse_loadavg(&s)),
        memory_kb: read_small(&root.join("meminfo")).and_then(|s| parse_meminfo(&s)),
        disks: cfg
            .paths
            .iter()
            .map(|p| (p.clone(), disk_space(p)))
            .collect(),
        clock: clock_state(),
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The `host` probe; it keeps nothing between cycles.
pub struct Host;

impl TypedProbe for Host {
    const KIND: &'static str = "host";
    type Config = Config;
    /// The readings, or why the blocking task that took them died.
    type Raw = Result<Raw, String>;

    fn new(_config: &Config) -> Self {
        Host
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    /// The reads on the blocking pool have no bound of their own (statvfs on a dead
    /// mount hangs): the scheduler's deadline is theirs, with no margin on top.
    fn deadline(config: &Config) -> Duration {
        Self::collect_budget(config)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Result<Raw, String> {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || read(&cfg))
            .await
            .map_err(|e| e.to_string())
    }

    fn interpret(cfg: &Config, raw: &Result<Raw, String>) -> Finding {
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                return Finding::fail(codes::PROBE_CRASHED, format!("host probe failed: {e}"))
            }
        };
        let mut f = Finding::ok();
        match (&raw.load1, &raw.cpus) {
            (Ok(load), Ok(cpus)) => {
                let per_cpu = load / *cpus as f64;
                let msg = |level: &str| {
                    format!(
                        "load average {load:.2} on {cpus} CPUs is {per_cpu:.2} per CPU ({level})"
                    )
                };
                if per_cpu >= cfg.load_per_cpu_fail {
                    f.worsen(
                        NodeStatus::Fail,
                        codes::HOST_LOAD,
                        msg("fail threshold reached"),
                    );
                } else if per_cpu >= cfg.load_per_cpu_degraded {
                    f.worsen(
                        NodeStatus::Degraded,
                        codes::HOST_LOAD,
                        msg("degraded threshold reached"),
                    );
                }
            }
            (Err(e), _) | (_, Err(e)) => f.worsen(
                NodeStatus::Degraded,
                codes::HOST_UNREADABLE,
                format!("cannot read load: {e}"),
            ),
        }
        match &raw.memory_kb {
            Ok((total, avail)) => {
                let p = pct(*avail, *total);
                let msg = format!(
                    "{p:.1}% of memory available ({} MiB of {} MiB)",
                    avail / 1024,
                    total / 1024
                );
                if p < cfg.mem_available_fail_pct {
                    f.worsen(NodeStatus::Fail, codes::HOST_MEMORY, msg);
                } else if p < cfg.mem_available_degraded_pct {
                    f.worsen(NodeStatus::Degraded, codes::HOST_MEMORY, msg);
                }
            }
            Err(e) => f.worsen(
                NodeStatus::Degraded,
                codes::HOST_UNREADABLE,
                format!("cannot read memory: {e}"),
            ),
        }
        for (path, disk) in &raw.disks {
            match disk {
                Ok(d) => {
                    let p = pct(d.available_bytes, d.total_bytes);
                    let msg = format!(
                        "{p:.1}% free on {} ({} MiB available)",
                        path.display(),
                        d.available_bytes >> 20
                    );
                    if d.total_bytes > 0 && p < cfg.disk_free_fail_pct {
                        f.worsen(NodeStatus::Fail, codes::HOST_DISK, msg);
                    } else if d.total_bytes > 0 && p < cfg.disk_free_degraded_pct {
                        f.worsen(NodeStatus::Degraded, codes::HOST_DISK, msg);
                    }
                }
                Err(e) => f.worsen(
                    NodeStatus::Degraded,
                    codes::HOST_DISK,
                    format!("cannot check free space: {e}"),
                ),
            }
        }
        if cfg.require_clock_sync {
            match &raw.clock {
                ClockState::Synced { .. } => {}
                ClockState::Unsynced => f.worsen(
                    NodeStatus::Degraded,
                    codes::CLOCK_UNSYNCHRONISED,
                    "the system clock is not synchronised (adjtimex)",
                ),
                ClockState::Unknown(e) => f.worsen(
                    NodeStatus::Degraded,
                    codes::CLOCK_UNKNOWN,
                    format!("cannot read the clock state: {e}"),
                ),
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(loadavg: &str, meminfo: &str, cpus: usize) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("loadavg"), loadavg).unwrap();
        std::fs::write(d.path().join("meminfo"), meminfo).unwrap();
        let mut stat = String::from("cpu  1 2 3 4\n");
        for i in 0..cpus {
            stat.push_str(&format!("cpu{i} 1 2 3 4\n"));
        }
        stat.push_str("intr 1\n");
        std::fs::write(d.path().join("stat"), stat).unwrap();
        d
    }

    fn cfg_for(root: &Path) -> Config {
        Config {
            proc_root: root.to_path_buf(),
            paths: vec![PathBuf::from("/")],
            require_clock_sync: false,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_fixture_tree_is_ok() {
        let d = fixture(
            "0.50 0.40 0.30 1/100 42\n",
            "MemTotal: 1000000 kB\nMemFree: 10 kB\nMemAvailable: 500000 kB\n",
            2,
        );
        let cfg = Config {
            disk_free_degraded_pct: 0.0,
            disk_free_fail_pct: 0.0,
            ..cfg_for(d.path())
        };
        let raw = read(&cfg);
        assert_eq!(raw.cpus, Ok(2));
        assert_eq!(raw.load1, Ok(0.5));
        assert_eq!(raw.memory_kb, Ok((1_000_000, 500_000)));
        assert!(raw.disks[0].1.is_ok());
        let f = Host::interpret(&cfg, &Ok(raw.clone()));
        assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    }

    #[test]
    fn thresholds_give_degraded_or_fail_with_reasons() {
        let cfg = Config {
            require_clock_sync: true,
            ..Default::default()
        };
        let base = Raw {
            cpus: Ok(2),
            load1: Ok(1.0),
            memory_kb: Ok((1000, 500)),
            disks: vec![(
                PathBuf::from("/data"),
                Ok(DiskSpace {
                    total_bytes: 100,
                    available_bytes: 50,
                }),
            )],
            clock: ClockState::Synced { max_error_us: 10 },
        };
        assert_eq!(
            Host::interpret(&cfg, &Ok(base.clone())).status,
            NodeStatus::Ok
        );
        let cases = [
            (
                Raw {
                    load1: Ok(5.0),
                    ..base.clone()
                },
                NodeStatus::Degraded,
                "host_load",
            ),
            (
                Raw {
                    load1: Ok(9.0),
                    ..base.clone()
                },
                NodeStatus::Fail,
                "host_load",
            ),
            (
                Raw {
                    memory_kb: Ok((1000, 50)),
                    ..base.clone()
                },
                NodeStatus::Degraded,
                "host_memory",
            ),
            (
                Raw {
                    memory_kb: Ok((1000, 10)),
                    ..base.clone()
                },
                NodeStatus::Fail,
                "host_memory",
            ),
            (
                Raw {
                    disks: vec![(
                        PathBuf::from("/data"),
                        Ok(DiskSpace {
                            total_bytes: 100,
                            available_bytes: 2,
                        }),
                    )],
                    ..base.clone()
                },
                NodeStatus::Fail,
                "host_disk",
            ),
            (
                Raw {
                    disks: vec![(PathBuf::from("/gone"), Err("ENOENT".into()))],
                    ..base.clone()
                },
                NodeStatus::Degraded,
                "host_disk",
            ),
            (
                Raw {
                    clock: ClockState::Unsynced,
                    ..base.clone()
                },
                NodeStatus::Degraded,
                "clock_unsynchronised",
            ),
            (
                Raw {
                    load1: Err("loadavg: unexpected format".into()),
                    ..base.clone()
                },
                NodeStatus::Degraded,
                "host_unreadable",
            ),
        ];
        for (raw, status, code) in cases {
            let f = Host::interpret(&cfg, &Ok(raw.clone()));
            assert_eq!(f.status, status, "{raw:?}");
            assert_eq!(f.reasons[0].code, code, "{raw:?}");
        }
    }

    #[test]
    fn truncated_and_hostile_proc_files_are_reported_not_panicked() {
        let d = fixture("garbage", "MemTotal: lots\n", 0);
        let raw = read(&cfg_for(d.path()));
        assert!(raw.load1.is_err() && raw.memory_kb.is_err() && raw.cpus.is_err());
        let raw = read(&cfg_for(Path::new("/nonexistent-proc")));
        let f = Host::interpret(&cfg_for(Path::new("/nonexistent-proc")), &Ok(raw));
        assert_eq!(f.status, NodeStatus::Degraded);
        assert!(f
            .reasons
            .iter()
            .any(|r| r.message.contains("nonexistent-proc")));
    }

    #[test]
    fn inverted_thresholds_are_config_errors() {
        let c = Config {
            mem_available_fail_pct: 50.0,
            load_per_cpu_fail: 1.0,
            paths: vec!["rel".into()],
            ..Default::default()
        };
        assert_eq!(c.validate().len(), 3, "{:?}", c.validate());
        assert!(Config::default().validate().is_empty());
    }
}
