//! The README's main job: `status-reporter quickstart` brings the whole system up on this
//! host, and the URL, CA file and admin token it prints really work.

mod harness;

use harness::BIN;
use nix::sys::signal::Signal;
use sr_protocol::NodeStatus;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn once_shows_a_view_with_this_host_and_cleans_up() {
    let out = Command::new(BIN)
        .args(["quickstart", "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "Collector URL: https://127.0.0.1:",
        "CA file: ",
        "Admin token: srt_",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(label)),
            "missing {label:?} line in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("manager ("),
        "no manager section in:\n{stdout}"
    );
    let ca = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CA file: "))
        .unwrap();
    assert!(
        !std::path::Path::new(ca).exists(),
        "temporary state dir was not removed: {ca}"
    );
}

#[test]
fn printed_credentials_work_for_cluster_status_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["quickstart", "--reporting-freq", "1", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut field = |label: &str| -> String {
        loop {
            let line = lines
                .next()
                .expect("quickstart closed stdout early")
                .unwrap();
            if let Some(v) = line.strip_prefix(label) {
                return v.to_string();
            }
        }
    };
    let url = field("Collector URL: ");
    let ca = field("CA file: ");
    let token = field("Admin token: ");
    // Keep draining the live view so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());

    // `cluster status` through the printed URL, CA and token: poll until this host's
    // report is in (exit 3 would mean unreachable or unauthorized).
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let out = Command::new(BIN)
            .args([
                "cluster",
                "status",
                "--json",
                "--manager",
                &url,
                "--ca-path",
                &ca,
                "--token",
                &token,
            ])
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(3),
            "unreachable or unauthorized: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let reported = v["services"]["manager"]["nodes"]
            .as_object()
            .is_some_and(|n| n.values().any(|n| n["last_seen"].is_string()));
        if reported {
            // db and broker have no nodes in a one-host quickstart, and no nodes is never OK.
            assert_eq!(out.status.code(), Some(2));
            break v;
        }
        assert!(Instant::now() < deadline, "no report within 30 s: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(view["services"]["db"]["status"], "Fail");

    // The admin token is also the `admin` user's password for HTTP Basic, as cfy uses it.
    // curl, as an operator's script would: the status the collector answers for `password`.
    let status_with = |password: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", &ca, "-u", &format!("admin:{password}")])
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{url}/api/v3.1/cluster-status"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status_with(&token), "200");
    assert_eq!(status_with("wrong"), "401");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "quickstart did not stop cleanly on Ctrl-C: {status}"
    );
    drain.join().unwrap();
    assert!(
        dir.path().join("agent.toml").exists(),
        "--state-dir content must be kept"
    );
}

/// Starts `quickstart` with its temporary state dir, sends `signal` once the dir is
/// printed, and checks that it exits cleanly and leaves no keys or tokens behind.
fn check_signal_removes_the_temporary_dir(signal: Signal) {
    let mut child = Command::new(BIN)
        .args(["quickstart", "--reporting-freq", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ca = loop {
        let line = lines
            .next()
            .expect("quickstart closed stdout early")
            .unwrap();
        if let Some(ca) = line.strip_prefix("CA file: ") {
            break PathBuf::from(ca);
        }
    };
    let dir = ca.parent().unwrap().to_path_buf();
    assert!(
        ca.exists(),
        "the state dir exists before the signal: {}",
        dir.display()
    );
    // Keep draining the live view so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = harness::wait_for(
        &format!("quickstart to exit on {signal}"),
        Duration::from_secs(30),
        || child.try_wait().unwrap(),
    );
    drain.join().unwrap();
    assert!(
        status.success(),
        "quickstart did not stop cleanly on {signal}: {status}"
    );
    assert!(
        !dir.exists(),
        "{signal} left the temporary state dir (keys and tokens) behind: {}",
        dir.display()
    );
}

#[test]
fn sigint_sigterm_and_sighup_remove_the_temporary_state_dir() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        check_signal_removes_the_temporary_dir(signal);
    }
}

// ---- quickstart --ha: a real HA control plane on this host ----

/// The HA quickstart's stdout, read on a thread so a wait can have a deadline; every line
/// is kept for failure messages.
struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn new(out: std::process::ChildStdout) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now) for which `f` gives a value, within `limit`.
    fn wait<T>(&mut self, what: &str, limit: Duration, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let v = f(&line);
                    self.seen.push(line);
                    if let Some(v) = v {
                        return v;
                    }
                }
                Err(e) => panic!(
                    "no line for {what} within {limit:?} ({e}); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The command printed on the line after the one containing `label` (the quickstart's
    /// "Try:" block: a label line, then the command alone, indented).
    fn command_after(&mut self, label: &str) -> String {
        let mut next_is_command = false;
        self.wait(label, Duration::from_secs(10), |l| {
            if next_is_command {
                return Some(l.trim().to_string());
            }
            next_is_command = l.contains(label);
            None
        })
    }

    /// Whether a line so far, or one within `limit`, satisfies `f`.
    fn saw(&mut self, limit: Duration, f: impl Fn(&str) -> bool) -> bool {
        if self.seen.iter().any(|l| f(l)) {
            return true;
        }
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let hit = f(&line);
            self.seen.push(line);
            if hit {
                return true;
            }
        }
        false
    }
}

/// Live (not zombie) processes: (pid, pgid, command line).
fn processes() -> Vec<(u32, u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut f = stat[stat.rfind(')')? + 2..].split(' ');
            let state = f.next()?;
            let pgid: u32 = f.nth(1)?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (state != "Z").then_some((pid, pgid, cmd))
        })
        .collect()
}

#[test]
fn ha_mode_is_healthy_shows_a_failover_and_its_recovery_and_leaves_nothing_behind() {
    if !harness::lab::require_services(&["patroni", "etcd", "postgres", "rabbitmq"]) {
        return;
    }
    let _one_cluster = harness::lab::exclusive();
    let logs = tempfile::tempdir().unwrap();
    let stderr = logs.path().join("quickstart-ha.stderr");
    let mut child = Command::new(BIN)
        .args([
            "quickstart",
            "--ha",
            "--reporting-freq",
            "1",
            "--restart-after",
            "5",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // Whatever fails below, the quickstart gets its Ctrl-C (and tears its clusters down).
    // On a failed assertion it also waits (bounded) for the teardown, so no cluster outlives
    // the test binary.
    struct Interrupt(u32);
    impl Drop for Interrupt {
        fn drop(&mut self) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), Signal::SIGINT);
            if std::thread::panicking() {
                let deadline = Instant::now() + Duration::from_secs(90);
                while Instant::now() < deadline && processes().iter().any(|(p, _, _)| *p == self.0)
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let _interrupt = Interrupt(child.id());
    let mut out = Lines::new(child.stdout.take().unwrap());
    let field = |label: &'static str| move |l: &str| l.strip_prefix(label).map(str::to_string);
    let dir = PathBuf::from(out.wait(
        "the state directory",
        Duration::from_secs(30),
        field("State directory: "),
    ));
    let url = out.wait(
        "the collector URL",
        Duration::from_secs(10),
        field("Collector URL: "),
    );
    let ca = PathBuf::from(out.wait("the CA file", Duration::from_secs(10), field("CA file: ")));
    let token = out.wait(
        "the admin token",
        Duration::from_secs(10),
        field("Admin token: "),
    );
    let t0 = Instant::now();
    out.wait("the healthy line", Duration::from_secs(150), |l| {
        l.starts_with("Healthy: ").then_some(())
    });
    eprintln!(
        "quickstart --ha: healthy after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let page = out.wait(
        "the status page URL",
        Duration::from_secs(10),
        field("Status page: "),
    );
    assert_eq!(page, format!("{url}/"));
    let metrics = out.wait(
        "the metrics curl",
        Duration::from_secs(10),
        field("Metrics: "),
    );
    assert!(
        metrics.starts_with("curl ") && metrics.ends_with(&format!("{url}/metrics")),
        "{metrics}"
    );
    let stop_leader = out.command_after("Stop the Patroni leader");
    let stop_rabbit = out.command_after("Stop a RabbitMQ node");
    assert!(stop_leader.starts_with("kill -TERM "), "{stop_leader}");
    assert!(stop_rabbit.starts_with("kill -TERM "), "{stop_rabbit}");

    // ---- the collector's view: db and broker OK with 3 members each ----
    let status = || harness::Status::run(harness::status::command(&url, &ca, &token));
    let s = status();
    for svc in ["db", "broker"] {
        let v = s
            .service(svc)
            .unwrap_or_else(|| panic!("no {svc} in {}", s.describe()));
        assert_eq!(v.status, NodeStatus::Ok, "{svc}: {}", s.describe());
        assert_eq!(v.nodes.len(), 3, "{svc}: {}", s.describe());
    }
    let leader = s
        .service("db")
        .unwrap()
        .nodes
        .iter()
        .find(|(_, n)| n.role.as_deref() == Some("leader"))
        .map(|(name, _)| name.clone())
        .expect("a leader in the view");

    // ---- the printed command stops the leader: Degraded with a reason, then recovery ----
    let ran = Command::new("sh")
        .args(["-c", &stop_leader])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{stop_leader}: {}",
        harness::text(&ran)
    );
    let degraded = harness::wait_for("db Degraded with a reason", Duration::from_secs(60), || {
        let s = status();
        let db = s.service("db")?;
        (db.status == NodeStatus::Degraded && !db.reasons.is_empty()).then(|| db.reasons.clone())
    });
    eprintln!("quickstart --ha: after `{stop_leader}` ({leader}): db Degraded: {degraded:?}");
    let recovered = harness::wait_for(
        "db OK again with 3 members",
        Duration::from_secs(120),
        || {
            let s = status();
            let db = s.service("db")?;
            (db.status == NodeStatus::Ok
                && db.nodes.len() == 3
                && db.nodes.values().all(|n| n.status == NodeStatus::Ok))
            .then(|| s.describe())
        },
    );
    eprintln!("quickstart --ha: recovered:\n{recovered}");
    // the live view said so too, one line per change
    assert!(
        out.saw(Duration::from_secs(10), |l| l
            .contains("db: OK -> Degraded"))
            && out.saw(Duration::from_secs(10), |l| l
                .contains("db: Degraded -> OK")),
        "the live view did not show the change and the recovery:\n{}",
        out.seen.join("\n")
    );
    assert!(out.saw(Duration::from_secs(10), |l| l
        .contains(&format!("Patroni {leader} started again"))));

    // ---- Ctrl-C: every process group gone, every port free, the directory removed ----
    let traces = Traces::before_stop(&dir);
    assert_eq!(
        traces.ports.len(),
        19,
        "18 service ports and the collector's: {:?}",
        traces.ports
    );
    assert!(
        traces.groups.len() >= 11,
        "etcd, 3 Patroni, 3 postmasters, epmd, 3 RabbitMQ: {:?}",
        traces.groups
    );
    stop_and_check(&mut child, Signal::SIGINT, &stderr, &traces);
    assert!(out.saw(Duration::from_secs(10), |l| l
        .starts_with("Stopped every process")
        && l.contains("all 19 ports are free")));
    eprintln!(
        "quickstart --ha: whole test {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

/// What a running HA quickstart has on this host: the process groups (from its state file,
/// and of every process naming its directory, such as the postmasters in sessions of their
/// own) and its ports.
struct Traces {
    dir: PathBuf,
    groups: std::collections::BTreeSet<u32>,
    ports: Vec<u16>,
}

impl Traces {
    fn before_stop(dir: &std::path::Path) -> Traces {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("quickstart-ha.json")).unwrap())
                .unwrap();
        let ports = state["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u16)
            .collect();
        let marker = dir.to_string_lossy().to_string();
        let mut groups: std::collections::BTreeSet<u32> = state["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pgid"].as_u64().unwrap() as u32)
            .collect();
        // (not the test's own group: the quickstart runs in it, and so does a `psql` it
        // starts, whose command line names the directory)
        let own = nix::unistd::getpgrp().as_raw() as u32;
        groups.extend(
            processes()
                .into_iter()
                .filter(|(_, g, c)| c.contains(&marker) && *g != own)
                .map(|(_, g, _)| g),
        );
        Traces {
            dir: dir.to_path_buf(),
            groups,
            ports,
        }
    }
}

/// Sends `signal`, waits for a clean exit, then checks that nothing of the quickstart is
/// left: no live process in its groups or naming its directory, no port bound, no directory.
fn stop_and_check(
    child: &mut std::process::Child,
    signal: Signal,
    stderr: &std::path::Path,
    t: &Traces,
) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = harness::wait_for(
        &format!("quickstart --ha to exit on {signal}"),
        Duration::from_secs(90),
        || child.try_wait().unwrap(),
    );
    assert!(
        status.success(),
        "exit {status} on {signal}; stderr: {}",
        harness::tail(stderr, 20)
    );
    let marker = t.dir.to_string_lossy().to_string();
    let left: Vec<(u32, u32, String)> = processes()
        .into_iter()
        .filter(|(_, g, c)| t.groups.contains(g) || c.contains(&marker))
        .collect();
    assert!(
        left.is_empty(),
        "processes left behind after {signal}: {left:?}"
    );
    let bound: Vec<u16> = t
        .ports
        .iter()
        .copied()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect();
    assert!(
        bound.is_empty(),
        "ports still bound after {signal}: {bound:?}"
    );
    assert!(!t.dir.exists(), "{} was not removed", t.dir.display());
}

#[test]
fn ha_mode_sigterm_in_the_middle_of_the_start_leaves_nothing_behind() {
    if !harness::lab::require_services(&["patroni", "etcd", "postgres", "rabbitmq"]) {
        return;
    }
    let _one_cluster = harness::lab::exclusive();
    let logs = tempfile::tempdir().unwrap();
    let stderr = logs.path().join("quickstart-ha.stderr");
    let mut child = Command::new(BIN)
        .args(["quickstart", "--ha"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut out = Lines::new(child.stdout.take().unwrap());
    let dir = PathBuf::from(
        out.wait("the state directory", Duration::from_secs(30), |l| {
            l.strip_prefix("State directory: ").map(str::to_string)
        }),
    );
    // Patroni is up and RabbitMQ is still booting (it takes 10-25 s longer): half-way.
    out.wait("the Patroni line", Duration::from_secs(90), |l| {
        l.starts_with("  Patroni: leader").then_some(())
    });
    assert!(
        !out.seen
            .iter()
            .any(|l| l.contains("RabbitMQ: 3 nodes running")),
        "RabbitMQ was already up: not half-way"
    );
    let traces = Traces::before_stop(&dir);
    assert!(
        traces.groups.len() >= 11,
        "etcd, 3 Patroni, 3 postmasters, epmd, 3 RabbitMQ: {:?}",
        traces.groups
    );
    stop_and_check(&mut child, Signal::SIGTERM, &stderr, &traces);
}

#[test]
fn ha_only_flags_need_ha() {
    let out = Command::new(BIN)
        .args(["quickstart", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ha"),
        "{}",
        harness::text(&out)
    );
}
