//! The lab-cluster core: real services (Patroni + etcd + PostgreSQL 15, RabbitMQ, and the
//! clusters still to come) on free loopback ports, each under its own directory in `/tmp`.
//!
//! A cluster kind is one small file ([`patroni`], [`rabbitmq`]) that names its scripts
//! (`tests/lab/<kind>-up.sh`, `-ctl.sh`, `-down.sh`), says how many ports it needs, which
//! environment its up script reads and which logs explain a failure. [`Lab`] does the rest:
//! picks the ports, creates the directory, runs the up script (again with new ports when
//! one got taken in between: exit code 2), runs `ctl` commands with deadlines, adds log tails
//! to errors, and tears the cluster down in `Drop`, also when the test panicked. The up
//! scripts additionally start a watchdog that tears the cluster down if the test process
//! dies without running `Drop` (SIGKILL, Ctrl-C).
//!
//! Member/node indices are **0-based** in the kinds' APIs; the scripts and the data
//! directories number them from 1 (`pg1`, `rabbit1`, ...).
//!
//! Version sets ([`VersionSet`]): every kind runs either the host's Debian 12 packages (set A)
//! or the cached Debian 13 rootfs (set B: Patroni 4.0 / etcd 3.5 / PostgreSQL 17 / RabbitMQ 4.0
//! with Khepri on, or the same with the Patroni 4.1 venv), through
//! `tests/lab/versions/in-rootfs.sh`, which runs the **same** scripts inside the rootfs. A suite
//! writes each scenario once and runs it per set; [`exclusive`] keeps the sets of one test
//! binary from running their clusters at the same time (2 cores).
//!
//! Environment knobs:
//! - `CI=true`: [`require_services`] / [`require_set`] panic instead of skipping when a service
//!   (or the rootfs) is missing.
//! - `ROOTFS=DIR`: where the Debian 13 rootfs is cached (default
//!   `/var/cache/status-reporter/rootfs-trixie`; `tests/run.sh` builds it when missing).
//! - `LAB_KEEP=1`: keep the cluster directory (logs, data) after teardown, for debugging.
//!   Processes are stopped regardless.
//!
//! Requirements: Debian packages `patroni etcd-server etcd-client python3-idna postgresql-15
//! rabbitmq-server`, plus `bash curl iproute2 (ss) util-linux (setpriv) openssl`. The Patroni
//! cluster must be started as root (PostgreSQL runs as `postgres` through `setpriv`).

pub mod galera;
pub mod haproxy;
pub mod keepalived;
pub mod pacemaker;
pub mod patroni;
pub mod rabbitmq;

pub use galera::GaleraCluster;
pub use haproxy::HaproxyLab;
pub use keepalived::KeepalivedPair;
pub use pacemaker::PacemakerPair;
pub use patroni::{PatroniCluster, PatroniOpts};
pub use rabbitmq::{RabbitCluster, RabbitOpts};

use anyhow::{bail, Context, Result};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Non-superuser PostgreSQL role (member of `pg_monitor`) and RabbitMQ user (tag `monitoring`,
/// read-only on vhost `/`) created by the harness.
pub const MONITOR_USER: &str = "monitor";
/// Password of [`MONITOR_USER`].
pub const MONITOR_PASSWORD: &str = "monitor";
/// PostgreSQL superuser (use only for fault injection, through [`PatroniCluster::psql`]).
pub const PG_SUPERUSER: &str = "postgres";
/// Debian's PostgreSQL 15 binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";
/// Where `tests/lab/versions/trixie-rootfs.sh` caches the Debian 13 rootfs unless `ROOTFS` is set.
const ROOTFS_DEFAULT: &str = "/var/cache/status-reporter/rootfs-trixie";

/// Which versions of the services a lab cluster runs. Scenarios are written once and run
/// per set; where a version legitimately answers differently the suite states the expectation
/// per set, in one place, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSet {
    /// Set A, the host's Debian 12 packages: Patroni 3.0.2, etcd 3.4.23, PostgreSQL 15,
    /// RabbitMQ 3.10.8 (Mnesia).
    Debian12,
    /// Set B, the Debian 13 rootfs: Patroni 4.0.7, etcd 3.5.16, PostgreSQL 17, RabbitMQ 4.0.5
    /// with the Khepri metadata store enabled.
    Trixie,
    /// Set B with Patroni 4.1.x from PyPI (the rootfs's venv) instead of Debian's 4.0.7.
    TrixiePatroni41,
}

impl VersionSet {
    /// Short name for messages and `BENCH[...]` lines.
    pub fn label(self) -> &'static str {
        match self {
            VersionSet::Debian12 => "A",
            VersionSet::Trixie => "B",
            VersionSet::TrixiePatroni41 => "B+Patroni4.1",
        }
    }
    /// The versions it runs, for the start message.
    pub fn versions(self) -> &'static str {
        match self {
            VersionSet::Debian12 => "Patroni 3.0.2, etcd 3.4, PG 15, RabbitMQ 3.10",
            VersionSet::Trixie => "Patroni 4.0.7, etcd 3.5, PG 17, RabbitMQ 4.0.5 with Khepri",
            VersionSet::TrixiePatroni41 => "Patroni 4.1 (PyPI), etcd 3.5, PG 17",
        }
    }
    /// Whether the services run inside the Debian 13 rootfs.
    pub fn in_rootfs(self) -> bool {
        self != VersionSet::Debian12
    }
    /// Whether RabbitMQ runs with the Khepri metadata store (set B): no Mnesia partitions,
    /// and metadata needs a majority of the nodes.
    pub fn khepri(self) -> bool {
        self.in_rootfs()
    }
    /// The `PATRONI=` value `in-rootfs.sh` takes.
    fn patroni_build(self) -> &'static str {
        match self {
            VersionSet::TrixiePatroni41 => "4.1",
            _ => "4.0",
        }
    }
    /// The smallest DCS `ttl` Patroni accepts: 4.x raises anything lower to 20 (its
    /// `config.py`), so a failover there takes ~20 s, not ~10 s.
    pub fn min_ttl(self) -> u32 {
        if self.in_rootfs() {
            20
        } else {
            1
        }
    }
    /// The PostgreSQL binaries the scripts use (inside the rootfs for set B).
    pub fn pg_bin(self) -> &'static str {
        if self.in_rootfs() {
            "/usr/lib/postgresql/17/bin"
        } else {
            PG_BIN
        }
    }
}

/// The cached Debian 13 rootfs (`ROOTFS`, else the default cache path).
pub fn rootfs() -> PathBuf {
    std::env::var_os("ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ROOTFS_DEFAULT))
}

/// [`require_services`] for a version set. Set B needs root (mount namespace, chroot),
/// `unshare` and the built rootfs (with the Patroni 4.1 venv for
/// [`VersionSet::TrixiePatroni41`]); `tests/run.sh` builds it, and so does
/// `tests/lab/versions/trixie-rootfs.sh`. Missing pieces skip, or panic under `CI=true`.
pub fn require_set(set: VersionSet, names: &[&str]) -> bool {
    if !set.in_rootfs() {
        return require_services(names);
    }
    let r = rootfs();
    let mut missing = Vec::new();
    if !r.join(".status-reporter-stamp").is_file() {
        missing.push(format!("the Debian 13 rootfs at {}", r.display()));
    }
    if set == VersionSet::TrixiePatroni41
        && !is_executable_path(&r.join("opt/patroni-4.1/bin/patroni"))
    {
        missing.push("the Patroni 4.1 venv in the rootfs".to_string());
    }
    if !is_root() {
        missing.push("root privileges (mount namespace and chroot)".to_string());
    }
    for tool in ["unshare", "chroot", "bash"] {
        if which(tool).is_none() {
            missing.push(format!("{tool} (on PATH)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "version set {} unavailable, missing: {}. Build it with tests/lab/versions/trixie-rootfs.sh \
         (tests/run.sh does)",
        set.label(),
        missing.join(", ")
    );
    if crate::harness::ci() {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIP: {msg}");
    false
}

fn is_executable_path(p: &Path) -> bool {
    p.to_str().is_some_and(is_executable)
}

/// Held by a suite's test for as long as its cluster runs: the per-set tests of one test
/// binary then run their clusters one after another (the harness runs tests on threads, and
/// two real clusters on 2 shared cores turn every deadline into a coin toss).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // a panicked earlier set leaves it poisoned; the lock itself guards nothing else
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `<repo>/tests/lab`, where the cluster scripts live.
pub fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("lab")
}

/// [`require_services`] for a suite whose hosts are network namespaces: also false (with a
/// SKIP line) when namespaces cannot be made here, a panic under `CI=true`.
pub fn require_netns_services(names: &[&str]) -> bool {
    if !require_services(names) {
        return false;
    }
    if let Err(e) = super::netlab::available() {
        if super::ci() {
            panic!("CI=true and network namespaces are unavailable (needs root and iproute2): {e}");
        }
        eprintln!("SKIP: network namespaces unavailable: {e}");
        return false;
    }
    true
}

/// Checks that everything needed for the named services is installed (`"patroni"`, `"etcd"`,
/// `"postgres"`, `"rabbitmq"`; any other name is looked up as an executable on `PATH`).
///
/// Returns `true` if all are present. Otherwise: with `CI=true` (or `CI=1`) it **panics** (a
/// missing service is a CI failure); without it, it prints `SKIP: ...` and returns `false`, so
/// a test can `if !require_services(&[...]) { return; }`.
pub fn require_services(names: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    fn need(missing: &mut Vec<String>, what: &str, path: &str) {
        if !is_executable(path) {
            missing.push(format!("{what} ({path})"));
        }
    }
    let m = &mut missing;
    for &name in names {
        match name {
            "patroni" => {
                need(m, "patroni", "/usr/bin/patroni");
                need(
                    m,
                    "Debian python3 (patroni's interpreter)",
                    "/usr/bin/python3",
                );
                need(m, "setpriv (util-linux)", "/usr/bin/setpriv");
                need(m, "postgres", &format!("{PG_BIN}/postgres"));
                need(m, "psql", &format!("{PG_BIN}/psql"));
            }
            "etcd" => {
                need(m, "etcd", "/usr/bin/etcd");
            }
            "postgres" | "postgresql" => {
                need(m, "postgres", &format!("{PG_BIN}/postgres"));
                need(m, "initdb", &format!("{PG_BIN}/initdb"));
                need(m, "psql", &format!("{PG_BIN}/psql"));
            }
            "galera" | "mariadb" => {
                need(m, "mariadbd (mariadb-server)", "/usr/sbin/mariadbd");
                need(m, "mariadb client", "/usr/bin/mariadb");
                need(m, "mariadb-install-db", "/usr/bin/mariadb-install-db");
                if !Path::new("/usr/lib/galera/libgalera_smm.so").is_file() {
                    m.push("galera-4 (/usr/lib/galera/libgalera_smm.so)".into());
                }
                need(m, "rsync (Galera SST)", "/usr/bin/rsync");
                need(m, "ip (iproute2)", "/usr/sbin/ip");
            }
            "haproxy" => {
                need(m, "haproxy", "/usr/sbin/haproxy");
                need(m, "socat (stats socket client)", "/usr/bin/socat");
                need(m, "python3 (the backend servers)", "/usr/bin/python3");
            }
            "pacemaker" => {
                need(m, "pacemakerd", "/usr/sbin/pacemakerd");
                need(m, "corosync", "/usr/sbin/corosync");
                need(m, "crm_mon", "/usr/sbin/crm_mon");
                need(m, "crm_resource", "/usr/sbin/crm_resource");
                need(m, "crm_attribute", "/usr/sbin/crm_attribute");
                need(m, "corosync-keygen", "/usr/sbin/corosync-keygen");
                need(m, "nsenter (util-linux)", "/usr/bin/nsenter");
                need(m, "unshare (util-linux)", "/usr/bin/unshare");
                if !Path::new("/usr/lib/ocf/resource.d/pacemaker/Dummy").is_file() {
                    m.push("the ocf:pacemaker:Dummy agent (pacemaker)".into());
                }
                need(m, "ip (iproute2)", "/usr/sbin/ip");
            }
            "keepalived" => {
                need(m, "keepalived", "/usr/sbin/keepalived");
                need(m, "ip (iproute2)", "/usr/sbin/ip");
                need(m, "bridge (iproute2)", "/usr/sbin/bridge");
            }
            "rabbitmq" | "rabbitmq-server" => {
                need(
                    m,
                    "rabbitmq-server",
                    &format!("{RABBIT_BIN}/rabbitmq-server"),
                );
                need(m, "rabbitmqctl", &format!("{RABBIT_BIN}/rabbitmqctl"));
                need(m, "epmd", "/usr/bin/epmd");
            }
            other => {
                if which(other).is_none() {
                    m.push(other.to_string());
                }
            }
        }
    }
    for tool in ["bash", "curl", "ss", "openssl", "awk"] {
        if which(tool).is_none() {
            missing.push(format!("{tool} (on PATH)"));
        }
    }
    if names.contains(&"patroni") && !is_root() {
        missing.push(
            "root privileges (the Patroni harness runs PostgreSQL as `postgres` via setpriv)"
                .into(),
        );
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "services {names:?} unavailable, missing: {}. Install with: apt-get install -y \
         --no-install-recommends patroni etcd-server etcd-client python3-idna postgresql-15 \
         rabbitmq-server curl iproute2 openssl",
        missing.join(", ")
    );
    if crate::harness::ci() {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIP: {msg}");
    false
}

fn is_executable(path: &str) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.to_str().is_some_and(is_executable))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn keep_dirs() -> bool {
    std::env::var("LAB_KEEP")
        .map(|v| v == "1" || v == "true")
        .unwrap_or(false)
}

/// Creates a fresh directory `/tmp/sr-lab-<kind>-<pid>-<n>-<nanos>` with mode 0755 (PostgreSQL
/// runs as `postgres` and must traverse it).
fn make_temp_dir(kind: &str) -> Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = PathBuf::from(format!(
        "/tmp/sr-lab-{kind}-{}-{}-{nanos:09}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// Space-separated ports, as the up scripts read lists.
fn port_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` distinct free TCP ports on 127.0.0.1 (all bound at once to port 0, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Result of running a harness script.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// Exit code (`None`: killed by a signal or by the harness on timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `bash tests/lab/<script> args...` with `env`, stdout/stderr captured through files in
/// `scratch` (never pipes: the scripts start daemons), killing the script if it runs past
/// `timeout`. Waits by polling `try_wait`.
fn run_script(
    set: VersionSet,
    scratch: &Path,
    script: &str,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<ScriptOutput> {
    static N: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(scratch)?;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("{script}.{n}.out"));
    let err_path = scratch.join(format!("{script}.{n}.err"));
    let path = lab_dir().join(script);
    let mut cmd = Command::new("bash");
    if set.in_rootfs() {
        // the same script, run inside the rootfs (it records ROOTFS/PATRONI in DIR/rootfs.env
        // at `up`, which later ctl/down calls read back)
        cmd.arg(lab_dir().join("versions/in-rootfs.sh"))
            .arg(script)
            .env("ROOTFS", rootfs())
            .env("PATRONI", set.patroni_build());
    } else {
        cmd.arg(&path);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("spawning bash {}", path.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // our own child (the script's bash); anything it started is stopped by the down script
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = ScriptOutput {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    if status.is_none() {
        bail!(
            "{script} {args:?} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    Ok(out)
}

fn check_ok(what: &str, out: ScriptOutput) -> Result<ScriptOutput> {
    if out.success() {
        Ok(out)
    } else {
        bail!(
            "{what} failed (exit {:?})\nstdout: {}\nstderr: {}",
            out.code,
            out.stdout.trim(),
            out.stderr.trim()
        )
    }
}

/// What a cluster kind tells [`Lab::start`].
pub struct Spec {
    /// Names the temp dir and the messages (`patroni`, `rabbitmq`).
    pub name: &'static str,
    /// Script prefix: `tests/lab/<scripts>-up.sh`, `-ctl.sh`, `-down.sh`.
    pub scripts: &'static str,
    /// How many free loopback ports the cluster needs.
    pub ports: usize,
    /// The up script's own readiness deadline (`WAIT_TIMEOUT`).
    pub start_timeout: Duration,
    /// What the harness allows on top of it before killing the script.
    pub slack: Duration,
    /// Which service versions run the scripts.
    pub set: VersionSet,
}

/// What a kind computes for one attempt, from its directory and its ports.
pub struct Attempt<T> {
    /// The up script's environment, on top of what every cluster gets (`WAIT_TIMEOUT`,
    /// `MONITOR_USER`, `MONITOR_PASSWORD`, `OWNER_PID`, `WATCHDOG_RM_DIR`).
    pub env: Vec<(&'static str, String)>,
    /// Log files worth showing when something fails, with how many lines of each.
    pub logs: Vec<(PathBuf, usize)>,
    /// The kind's own state (its port assignment, node names).
    pub kind: T,
}

/// A running lab cluster: its directory, its scripts and its logs. Torn down by its down
/// script (and its directory removed) on drop.
pub struct Lab {
    set: VersionSet,
    spec_name: &'static str,
    scripts: &'static str,
    dir: PathBuf,
    logs: Vec<(PathBuf, usize)>,
    started: Instant,
}

impl Lab {
    /// Runs the up script until it succeeds (up to 3 attempts when it exits 2: a port got
    /// taken in between). Returns the cluster, the kind's state and the script's stdout.
    /// The kind confirms readiness from its side, then calls [`Lab::ready`].
    pub fn start<T>(
        spec: Spec,
        mut attempt: impl FnMut(&Path, &[u16]) -> Attempt<T>,
    ) -> Result<(Lab, T, String)> {
        for n in 1.. {
            let ports = free_ports(spec.ports)?;
            let dir = make_temp_dir(spec.name)?;
            let a = attempt(&dir, &ports);
            let lab = Lab {
                set: spec.set,
                spec_name: spec.name,
                scripts: spec.scripts,
                dir,
                logs: a.logs,
                started: Instant::now(),
            };
            let mut env: Vec<(String, String)> =
                a.env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            env.extend([
                (
                    "WAIT_TIMEOUT".into(),
                    spec.start_timeout.as_secs().max(1).to_string(),
                ),
                ("MONITOR_USER".into(), MONITOR_USER.into()),
                ("MONITOR_PASSWORD".into(), MONITOR_PASSWORD.into()),
                ("OWNER_PID".into(), std::process::id().to_string()),
                (
                    "WATCHDOG_RM_DIR".into(),
                    if keep_dirs() { "0" } else { "1" }.into(),
                ),
            ]);
            let up = lab.script("up");
            let out = run_script(
                lab.set,
                &lab.scratch(),
                &up,
                &[lab.dir_str()],
                &env,
                spec.start_timeout + spec.slack,
            )
            .map_err(|e| lab.with_logs(e))?;
            match out.code {
                Some(0) => return Ok((lab, a.kind, out.stdout.trim().to_string())),
                Some(2) if n < 3 => {
                    eprintln!(
                        "lab: {up}: {} (retrying with other ports)",
                        out.stderr.trim()
                    );
                    // `lab` is dropped: tears down and removes its directory.
                }
                _ => return Err(lab.with_logs(check_ok(&up, out).unwrap_err())),
            }
        }
        unreachable!("the loop returns by the third attempt")
    }

    /// Prints how long the start took; returns it.
    pub fn ready(&self, detail: &str) -> Duration {
        let took = self.started.elapsed();
        eprintln!(
            "lab: {} cluster (set {}: {}) ready in {:.1}s ({detail}) dir={}",
            self.spec_name,
            self.set.label(),
            self.set.versions(),
            took.as_secs_f64(),
            self.dir.display()
        );
        took
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version set it runs.
    pub fn set(&self) -> VersionSet {
        self.set
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("temp dir path is UTF-8")
    }

    fn script(&self, verb: &str) -> String {
        format!("{}-{verb}.sh", self.scripts)
    }

    /// Where the scripts' captured output goes while they run.
    fn scratch(&self) -> PathBuf {
        self.dir.join("harness")
    }

    /// `tests/lab/<kind>-ctl.sh DIR args...`, killed past `timeout`.
    pub fn ctl(&self, args: &[&str], timeout: Duration) -> Result<ScriptOutput> {
        let mut a = vec![self.dir_str()];
        a.extend_from_slice(args);
        run_script(
            self.set,
            &self.scratch(),
            &self.script("ctl"),
            &a,
            &[],
            timeout,
        )
    }

    /// [`Lab::ctl`] that must succeed; returns its stdout.
    pub fn ctl_ok(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.ctl(args, timeout)?;
        Ok(check_ok(&format!("{} {args:?}", self.script("ctl")), out)?.stdout)
    }

    /// `e` with the tails of the cluster's logs.
    pub fn with_logs(&self, e: anyhow::Error) -> anyhow::Error {
        e.context(format!(
            "{} cluster in {}{}",
            self.spec_name,
            self.dir.display(),
            self.log_tails()
        ))
    }

    fn log_tails(&self) -> String {
        self.logs
            .iter()
            .map(|(path, lines)| {
                format!(
                    "\n--- {} (tail)\n{}",
                    path.display(),
                    crate::harness::tail(path, *lines)
                )
            })
            .collect()
    }
}

/// Stops the cluster with its down script and removes its directory (kept with
/// `LAB_KEEP=1`). It reports problems instead of failing; when the test is panicking it
/// first prints the cluster's log tails.
impl Drop for Lab {
    fn drop(&mut self) {
        let what = self.spec_name;
        if std::thread::panicking() {
            eprintln!("lab: test panicked; {what} logs:{}", self.log_tails());
        }
        let t0 = Instant::now();
        let env = vec![(
            "PURGE".to_string(),
            if keep_dirs() { "0" } else { "1" }.to_string(),
        )];
        let down = self.script("down");
        match run_script(
            self.set,
            &self.scratch(),
            &down,
            &[self.dir_str()],
            &env,
            Duration::from_secs(150),
        ) {
            Ok(o) if o.success() => {}
            Ok(o) => eprintln!("lab: {down} failed: {:?} {} {}", o.code, o.stdout, o.stderr),
            Err(e) => eprintln!("lab: {down}: {e:#}"),
        }
        if keep_dirs() {
            eprintln!("lab: LAB_KEEP=1, kept {}", self.dir.display());
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("lab: removing {}: {e}", self.dir.display());
        }
        eprintln!(
            "lab: {what} cluster torn down in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// Checks a member/node index (0-based) and returns the scripts' 1-based number.
/// The namespace prefix of one start attempt of a network-namespace lab (`NS_PREFIX` for its
/// scripts): `tag`, this process and the attempt's temp dir, so two suites or two attempts
/// never share a namespace; short, since it names namespaces (and keepalived's /tmp files).
fn ns_prefix(tag: &str, dir: &Path) -> String {
    format!(
        "{tag}{}{}",
        std::process::id(),
        dir.to_string_lossy().rsplit('-').nth(1).unwrap_or("0")
    )
}

fn script_index(i: usize, count: usize) -> Result<String> {
    if i >= count {
        bail!("index {i} out of range (0..{count})");
    }
    Ok((i + 1).to_string())
}
