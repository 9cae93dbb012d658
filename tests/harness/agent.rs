//! The agent under test: a real `status-reporter run` process, configured by the real
//! `configure --no-verify` ([`Agent::configure`], [`Agent::for_collector`]) or from a config
//! file a suite wrote itself ([`Agent::at`]). Optionally inside a network namespace.
//! Killed on drop.

use super::collector::Collector;
use super::BIN;
use sr_agent::config::RawConfig;
use sr_probes::ProbeConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What `configure` is told, and what the harness then writes into the config.
struct Setup<'a> {
    ca: &'a Path,
    token: &'a str,
    node_type: &'a str,
    name: &'a str,
    /// `None`: `configure` makes one up.
    node_id: Option<&'a str>,
    freq: u32,
    managers: &'a [String],
    probes: Vec<ProbeConfig>,
    push_timeout_ms: u64,
}

pub struct Agent {
    /// Its directory (`etc/`, `state/`, `agent.log`, `outputs/`); for [`Agent::at`], the
    /// config file's.
    pub dir: PathBuf,
    /// Its config file.
    pub cfg: PathBuf,
    pub name: String,
    pub node_id: String,
    log: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
}

impl Agent {
    /// A node configured with `configure --no-verify` in `dir` (config `etc/agent.toml`,
    /// node id = `name`, pushes bounded at 2 s), with `probes` swapped in. Not started. The
    /// command's output is recorded under `dir/outputs` for the secret grep.
    // One argument per `configure` flag the hostile suites vary.
    #[allow(clippy::too_many_arguments)]
    pub fn configure(
        dir: &Path,
        ca: &Path,
        token: &str,
        node_type: &str,
        name: &str,
        freq: u32,
        managers: &[String],
        probes: Vec<ProbeConfig>,
    ) -> Agent {
        Agent::set_up(
            dir,
            Setup {
                ca,
                token,
                node_type,
                name,
                node_id: Some(name),
                freq,
                managers,
                probes,
                push_timeout_ms: 2000,
            },
        )
    }

    /// Started agents of node type `node`, one per name, agent `i` in `dir/<name>` with the
    /// probe `probe(i)`, run inside namespace `netns(i)` when it is given.
    pub fn start_nodes(
        dir: &Path,
        names: &[&str],
        collector: &Collector,
        probe: impl Fn(usize) -> ProbeConfig,
        netns: impl Fn(usize) -> Option<String>,
    ) -> Vec<Agent> {
        let mut agents: Vec<Agent> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ns = netns(i);
                Agent::for_collector(
                    &dir.join(name),
                    name,
                    "node",
                    collector,
                    vec![probe(i)],
                    ns.as_deref(),
                )
            })
            .collect();
        for a in &mut agents {
            a.start();
        }
        agents
    }

    /// A node of `node_type` named `name` reporting every second to `collector` (its CA, its
    /// token for that role; pushes bounded at 0.9 s), with `probes`. Not started; `netns` is
    /// where [`Agent::start`] will run it.
    pub fn for_collector(
        dir: &Path,
        name: &str,
        node_type: &str,
        collector: &Collector,
        probes: Vec<ProbeConfig>,
        netns: Option<&str>,
    ) -> Agent {
        let token = collector.token(node_type);
        let mut a = Agent::set_up(
            dir,
            Setup {
                ca: &collector.ca,
                token: &token,
                node_type,
                name,
                node_id: None,
                freq: 1,
                managers: &[collector.addr.to_string()],
                probes,
                push_timeout_ms: 900,
            },
        );
        a.netns = netns.map(str::to_string);
        a
    }

    /// Sets `check_listen` (the node-local check endpoint's address) in its config; call
    /// before [`Agent::start`].
    pub fn set_check_listen(&self, listen: Option<&str>) {
        let mut raw = RawConfig::read(&self.cfg).expect("read the agent config");
        raw.check_listen = listen.map(str::to_string);
        std::fs::write(&self.cfg, raw.to_toml()).expect("write the agent config");
    }

    /// An agent for a config file that already exists; its stderr is appended to `log`.
    pub fn at(cfg: &Path, log: &Path) -> Agent {
        Agent {
            dir: cfg.parent().expect("a config file").to_path_buf(),
            cfg: cfg.to_path_buf(),
            name: String::new(),
            node_id: String::new(),
            log: log.to_path_buf(),
            netns: None,
            child: None,
        }
    }

    fn set_up(dir: &Path, s: Setup<'_>) -> Agent {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("etc/agent.toml");
        let freq = s.freq.to_string();
        let state = dir.join("state");
        let mut args: Vec<&str> = vec![
            "configure",
            "--no-verify",
            "--config",
            cfg.to_str().unwrap(),
            "--token",
            s.token,
            "--ca-path",
            s.ca.to_str().unwrap(),
            "--node-type",
            s.node_type,
            "--node-name",
            s.name,
            "--reporting-freq",
            &freq,
            "--state-dir",
            state.to_str().unwrap(),
        ];
        if let Some(id) = s.node_id {
            args.extend(["--node-id", id]);
        }
        args.push("--managers-ip");
        args.extend(s.managers.iter().map(String::as_str));
        let (code, out, err) = super::cli(Some(dir), &args, &[]);
        assert_eq!(code, 0, "configure {}: {out}{err}", s.name);
        let mut raw = RawConfig::read(&cfg).unwrap();
        raw.probes = s.probes;
        raw.push_timeout_ms = Some(s.push_timeout_ms);
        std::fs::write(&cfg, raw.to_toml()).unwrap();
        Agent {
            node_id: raw.node_id.clone().expect("configure wrote a node id"),
            dir: dir.to_path_buf(),
            cfg,
            name: s.name.to_string(),
            log: dir.join("agent.log"),
            netns: None,
            child: None,
        }
    }

    pub fn config(&self) -> PathBuf {
        self.cfg.clone()
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts `run` with extra environment (e.g. libfaketime's `LD_PRELOAD`); its stderr is
    /// appended to the log, so a restart keeps the earlier lines.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config", self.cfg.to_str().unwrap()])
            .env("STATUS_REPORTER_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut cmd = match &self.netns {
            Some(ns) => super::in_netns(ns, cmd),
            None => cmd,
        };
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Starts `run` as `uid`:`gid`, without privilege over other users' processes (the
    /// packaged agent's situation: its own user, no capabilities). Hands it its directory
    /// and opens the way to `readable` (the collector's CA): search permission on their
    /// parent directories, read on the files.
    pub fn start_as(&mut self, uid: u32, gid: u32, readable: &[&Path]) {
        use std::os::unix::fs::PermissionsExt;
        fn chown_tree(p: &Path, uid: u32, gid: u32) {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
            if p.is_dir() {
                for e in std::fs::read_dir(p).unwrap().flatten() {
                    chown_tree(&e.path(), uid, gid);
                }
            }
        }
        chown_tree(&self.dir, uid, gid);
        let open = |p: &Path, bits: u32| {
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | bits)).unwrap();
        };
        for f in readable.iter().copied().chain([self.dir.as_path()]) {
            if f.is_file() {
                open(f, 0o004);
            }
            for dir in f.ancestors().skip(1) {
                open(dir, 0o001);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(BIN);
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        cmd.args(["run", "--config", self.cfg.to_str().unwrap()])
            .env("STATUS_REPORTER_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.as_ref().expect("agent started").id() as i32),
            sig,
        )
        .unwrap();
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Rewrites the probes in the config and sends SIGHUP, as an operator reloads.
    pub fn reload_with(&mut self, probes: Vec<ProbeConfig>) {
        self.edit_and_reload(|raw| raw.probes = probes);
    }

    /// Rewrites `reporting_freq` in the config and sends SIGHUP.
    pub fn set_reporting_freq(&mut self, freq: u32) {
        self.edit_and_reload(|raw| raw.reporting_freq = Some(freq));
    }

    /// Rewrites `[events] fast_poll_ms` (None: unset, the default) and sends SIGHUP.
    pub fn set_fast_poll_ms(&mut self, ms: Option<u64>) {
        self.edit_and_reload(|raw| raw.events.get_or_insert_default().fast_poll_ms = ms);
    }

    /// Rewrites `reporting_freq` in the config of a stopped agent.
    pub fn set_reporting_freq_offline(&mut self, freq: u32) {
        let mut raw = RawConfig::read(&self.cfg).unwrap();
        raw.reporting_freq = Some(freq);
        std::fs::write(&self.cfg, raw.to_toml()).unwrap();
    }

    /// Edits the config file and sends SIGHUP, as an operator reloads.
    fn edit_and_reload(&mut self, edit: impl FnOnce(&mut RawConfig)) {
        let mut raw = RawConfig::read(&self.cfg).unwrap();
        edit(&mut raw);
        std::fs::write(&self.cfg, raw.to_toml()).unwrap();
        assert!(
            self.alive(),
            "agent {} died:\n{}",
            self.name,
            self.log_tail()
        );
        self.signal(nix::sys::signal::Signal::SIGHUP);
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        super::tail(&self.log, 20)
    }

    /// How long the agent's session watch (agent/src/watch/session.rs) has held its session
    /// for `probe`, by its log: `None` unless the last of its "holding" and "ended" lines is
    /// a "holding". (A session that ends within its first second wakes nothing, by design:
    /// a scenario that means to end one waits until it is older.)
    pub fn session_held_for(&self, probe: &str) -> Option<std::time::Duration> {
        let tag = format!("probe={probe} ");
        let log = self.log();
        let last = log.lines().rev().filter(|l| l.contains(&tag)).find(|l| {
            l.contains("holding a watched session") || l.contains("a watched session ended")
        })?;
        if !last.contains("holding a watched session") {
            return None;
        }
        // `2026-11-29T17:13:04.982150Z  INFO ...`: UTC time of day against the clock's.
        let tod = |hms: &str| -> Option<f64> {
            let mut it = hms.split(':');
            let h: f64 = it.next()?.parse().ok()?;
            let m: f64 = it.next()?.parse().ok()?;
            let s: f64 = it.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        };
        let at = tod(last.get(11..26)?)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            % 86_400.0;
        Some(std::time::Duration::from_secs_f64(
            (now - at).rem_euclid(86_400.0),
        ))
    }

    /// The log lines of the agent's event sources that woke it for `probe` (a session that
    /// ended, a process that exited, a connection that dropped), in order.
    pub fn wake_lines(&self, probe: &str) -> Vec<String> {
        let tag = format!("probe={probe} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&tag) && l.contains("probing now"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
