//! The README's main job: `status-reporter quickstart` brings the whole system up on this
//! host, and the URL, CA file and admin token it prints really work.

mod harness;

use harness::BIN;
use nix::sys::signal::Signal;
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
