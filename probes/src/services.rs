//! `services`: local services by systemd unit state, or by process presence.
//!
//! When systemd is PID 1, the probe asks systemd over the D-Bus system bus, in-process
//! (zbus): `Manager.LoadUnit(name)` gives the unit's object path, then
//! `Properties.Get` reads `LoadState`, `ActiveState` and `SubState` of
//! `org.freedesktop.systemd1.Unit` and, for `.service` units, `NRestarts` of
//! `org.freedesktop.systemd1.Service`. One connection is kept across cycles (opened on
//! first use, dropped after a transport error or a timeout and opened again next
//! cycle), so a cycle costs a few small method calls instead of a `systemctl`
//! process. Every failure (bus unreachable, systemd refusing a name, no answer within
//! the probe's timeout) becomes an unknown state with the reason.
//! A rising `NRestarts` between cycles catches crash loops a point-in-time "active"
//! misses.
//!
//! The connection is the process's one system-bus client ([`SystemBus::shared`]): the
//! agent's unit-state watch (`agent/src/watch/systemd.rs`) subscribes to systemd's
//! signals for the probed units on it ([`UnitSignals`]), so an event costs no second
//! connection or handshake.
//!
//! Without systemd (containers, dev machines), units that also name a `process` are
//! checked by scanning `proc_root/*/comm`; units without one are reported as unknown
//! (Degraded), never as healthy.

use crate::{default_ms, range_error, yes, Finding, ProbeContext, TypedProbe};
use serde::{Deserialize, Serialize};
use sr_protocol::reasons as codes;
use sr_protocol::NodeStatus;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use zbus::{Connection, MatchRule, MessageStream, OwnedObjectPath, OwnedVariant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub units: Vec<Unit>,
    #[serde(default = "default_ms::<2000>")]
    pub timeout_ms: u64,
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// Display name in the report (`Patroni`, `Etcd`, `RabbitMQ`, ...).
    pub name: String,
    /// systemd unit (`patroni.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Process name (`comm`, at most 15 characters) to look for without systemd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Fail (true, default) or only Degrade (false) the node when it is down.
    #[serde(default = "yes")]
    pub critical: bool,
}

fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}

impl Config {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.units.is_empty() {
            errors.push("units: give at least one".into());
        }
        if self.units.len() > 32 {
            errors.push(format!("units: at most 32, got {}", self.units.len()));
        }
        for (i, u) in self.units.iter().enumerate() {
            if u.name.trim().is_empty() {
                errors.push(format!("units[{i}].name must not be empty"));
            }
            if u.unit.is_none() && u.process.is_none() {
                errors.push(format!(
                    "units[{i}] ({}): give unit, process or both",
                    u.name
                ));
            }
            if let Some(unit) = &u.unit {
                // The characters systemd allows in unit names (plus the `\` of escaped
                // instance names); anything else is a typo, caught here at configure time
                // rather than as a D-Bus error every cycle.
                let ok = !unit.is_empty()
                    && unit.len() <= 256
                    && !unit.starts_with('-')
                    && unit
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"@._-:\\".contains(&b));
                if !ok {
                    errors.push(format!(
                        "units[{i}].unit {unit:?} is not a valid systemd unit name"
                    ));
                }
            }
            if let Some(p) = &u.process {
                if p.is_empty() || p.len() > 15 || p.contains('/') {
                    errors.push(format!(
                        "units[{i}].process {p:?} must be a process name of 1-15 characters"
                    ));
                }
            }
        }
        errors.extend(range_error("timeout_ms", self.timeout_ms, 1..=60_000));
        errors
    }
}

/// What was seen of one unit.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitRaw {
    Systemd {
        load_state: String,
        active_state: String,
        sub_state: String,
        n_restarts: Option<u64>,
    },
    Process {
        pids: Vec<u32>,
    },
    Unknown(String),
}

/// Whether systemd runs this machine: PID 1's `comm` is `systemd`.
pub fn systemd_is_pid1(proc_root: &Path) -> bool {
    std::fs::read_to_string(proc_root.join("1/comm"))
        .map(|s| s.trim() == "systemd")
        .unwrap_or(false)
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// A system-bus connection, for callers that hold one without depending on zbus.
pub type BusConnection = Connection;

/// The probe's one system-bus connection, kept across cycles so a cycle does not pay
/// for the connect and the authentication handshake.
#[derive(Default)]
pub struct SystemBus {
    /// `None`: the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, or systemd's default socket).
    address: Option<String>,
    conn: tokio::sync::Mutex<Option<Connection>>,
}

impl SystemBus {
    /// A bus at a D-Bus address (`unix:path=...`): the tests' own bus daemons.
    #[cfg(test)]
    fn at(address: &str) -> Self {
        SystemBus {
            address: Some(address.into()),
            conn: Default::default(),
        }
    }

    /// The system bus client of this process, shared by every `services` probe and the
    /// agent's unit-state watch.
    pub fn shared() -> Arc<SystemBus> {
        static SHARED: OnceLock<Arc<SystemBus>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(SystemBus::default())))
    }

    async fn connect(&self) -> zbus::Result<Connection> {
        match &self.address {
            None => Connection::system().await,
            Some(a) => zbus::conn::Builder::address(a.as_str()).build().await,
        }
    }

    /// The kept connection in `slot`, or a new one kept there. A connection the bus
    /// closed since the last use (dbus restarted, say) is replaced now rather than
    /// failing this use.
    async fn kept(&self, slot: &mut Option<Connection>) -> zbus::Result<Connection> {
        match &*slot {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => Ok(slot.insert(self.connect().await?).clone()),
        }
    }

    /// The kept connection, or a new one.
    pub async fn connection(&self) -> zbus::Result<Connection> {
        let mut slot = self.conn.lock().await;
        self.kept(&mut slot).await
    }

    /// Whether `conn` is still the kept connection: one the probe dropped (after a
    /// timeout) or replaced no longer is, and a watch on it is made again on the new one.
    /// While a cycle holds the connection, yes (it is not replaced under a cycle's feet).
    pub fn keeps(&self, conn: &Connection) -> bool {
        match self.conn.try_lock() {
            Ok(slot) => slot
                .as_ref()
                .is_some_and(|c| !c.is_closed() && c.unique_name() == conn.unique_name()),
            Err(_) => true,
        }
    }

    /// The state of each of `units`, in order. A connection that failed is dropped, so
    /// the next call opens a new one.
    async fn unit_states(&self, units: &[&str]) -> Vec<UnitRaw> {
        let mut slot = self.conn.lock().await;
        let conn = match self.kept(&mut slot).await {
            Ok(c) => c,
            Err(e) => {
                let why = format!("system bus unreachable: {}", bounded(&e.to_string()));
                return units
                    .iter()
                    .map(|_| UnitRaw::Unknown(why.clone()))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(units.len());
        for name in units {
            match unit_state(&conn, name).await {
                Ok(raw) => out.push(raw),
                Err(e) if is_reply(&e) => out.push(UnitRaw::Unknown(format!(
                    "systemd answered an error for {name}: {}",
                    bounded(&e.to_string())
                ))),
                Err(e) if conn.is_closed() || matches!(e, zbus::Error::InputOutput(_)) => {
                    *slot = None;
                    let why = format!("system bus connection lost: {}", bounded(&e.to_string()));
                    out.resize(units.len(), UnitRaw::Unknown(why));
                    break;
                }
                Err(e) => out.push(UnitRaw::Unknown(format!(
                    "unexpected reply from systemd for {name}: {}",
                    bounded(&e.to_string())
                ))),
            }
        }
        out
    }

    /// Drops the connection after a timeout: a call that hangs may mean a wedged
    /// connection, and a new one costs one handshake.
    async fn forget(&self) {
        *self.conn.lock().await = None;
    }
}

/// What systemd announced about one watched unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitSignal {
    /// `PropertiesChanged` on the unit's `org.freedesktop.systemd1.Unit` interface: the
    /// new `ActiveState` and `SubState` when the signal carried them, `None` when it only
    /// invalidated them (or did not name them).
    State {
        unit: String,
        active_state: Option<String>,
        sub_state: Option<String>,
        /// The signal invalidated `ActiveState` or `SubState` without a value.
        invalidated: bool,
    },
    /// `JobRemoved` for one of the unit's jobs, with its result (`done`, `failed`,
    /// `canceled`, `timeout`, `dependency`, `skipped`).
    JobRemoved { unit: String, result: String },
}

/// Signals queued per match rule. The shared connection's reader waits while a queue is
/// full (and with it the probe's replies), so [`UnitSignals::next`] is polled without
/// pause by its one reader; the queue only absorbs a burst.
pub const SIGNAL_QUEUE: usize = 64;

/// systemd's state-change signals for a set of units, on the shared connection: after
/// `Manager.Subscribe` (without a subscriber systemd sends none), one match rule per unit
/// for `PropertiesChanged` on its object and one for `JobRemoved` naming it, so the bus
/// delivers nothing about other units.
pub struct UnitSignals {
    conn: Connection,
    streams: Vec<(String, MessageStream)>,
}

impl UnitSignals {
    /// Subscribes on `bus`'s kept connection (opened if needed). The caller bounds it with
    /// a timeout: every step is a call to the bus or to systemd.
    pub async fn subscribe(bus: &SystemBus, units: &[String]) -> zbus::Result<UnitSignals> {
        let conn = bus.connection().await?;
        match conn
            .call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
            .await
        {
            // An error reply (systemd before 233 refuses a second Subscribe from one
            // client) leaves the match rules in place: the signals still come while any
            // client is subscribed, and the next tick covers the rest.
            Ok(_) => {}
            Err(e) if is_reply(&e) => {}
            Err(e) => return Err(e),
        }
        let queue = std::num::NonZeroUsize::new(SIGNAL_QUEUE);
        let mut streams = Vec::with_capacity(units.len() * 2);
        for unit in units {
            let path = load_unit(&conn, unit).await?;
            let changed = MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .sender(SYSTEMD)
                .path(path)
                .interface(PROPERTIES)
                .member("PropertiesChanged")
                .arg(0, UNIT)
                .build()?;
            let removed = MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .sender(SYSTEMD)
                .path(MANAGER_PATH)
                .interface(MANAGER)
                .member("JobRemoved")
                .arg(2, unit.as_str())
                .build()?;
            for rule in [changed, removed] {
                let stream = MessageStream::for_match_rule(rule, &conn, queue).await?;
                streams.push((unit.clone(), stream));
            }
        }
        Ok(UnitSignals { conn, streams })
    }

    /// The connection the signals come on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The next signal about a watched unit; `None` once the connection is closed.
    /// Signals that do not decode are skipped.
    pub async fn next(&mut self) -> Option<UnitSignal> {
        use futures_core::Stream;
        loop {
            let (unit, msg) = std::future::poll_fn(|cx| {
                for (unit, s) in self.streams.iter_mut() {
                    match std::pin::Pin::new(s).poll_next(cx) {
                        std::task::Poll::Ready(Some(m)) => {
                            return std::task::Poll::Ready(Some((unit.clone(), m)))
                        }
                        std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                        std::task::Poll::Pending => {}
                    }
                }
                std::task::Poll::Pending
            })
            .await?;
            if let Some(sig) = msg.ok().and_then(|m| decode_signal(&unit, &m)) {
                return Some(sig);
            }
        }
    }
}

/// One matched signal as a [`UnitSignal`]; `None` when its body is not the documented one.
fn decode_signal(unit: &str, msg: &zbus::Message) -> Option<UnitSignal> {
    let member = msg.header().member()?.to_string();
    let body = msg.body();
    match member.as_str() {
        "PropertiesChanged" => {
            let (_iface, changed, invalidated): (
                String,
                BTreeMap<String, OwnedVariant>,
                Vec<String>,
            ) = body.deserialize().ok()?;
            let text = |k: &str| {
                changed
                    .get(k)
                    .and_then(|v| String::try_from(v.clone()).ok())
                    .map(|s| bounded(&s))
            };
            Some(UnitSignal::State {
                unit: unit.to_string(),
                active_state: text("ActiveState"),
                sub_state: text("SubState"),
                invalidated: invalidated
                    .iter()
                    .any(|p| p == "ActiveState" || p == "SubState"),
            })
        }
        "JobRemoved" => {
            let (_id, _job, name, result): (u32, OwnedObjectPath, String, String) =
                body.deserialize().ok()?;
            (name == unit).then(|| UnitSignal::JobRemoved {
                unit: name,
                result: bounded(&result),
            })
        }
        _ => None,
    }
}

/// An error reply from the peer: the connection itself is fine.
fn is_reply(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(..) | zbus::Error::FDO(_))
}

/// Error texts from the bus are bounded before they go into a report.
fn bounded(s: &str) -> String {
    s.chars().take(256).collect()
}

/// `Manager.LoadUnit(name)`: the unit's object path.
async fn load_unit(conn: &Connection, name: &str) -> zbus::Result<OwnedObjectPath> {
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            MANAGER_PATH,
            Some(MANAGER),
            "LoadUnit",
            &(name,),
        )
        .await?;
    reply.body().deserialize()
}

async fn unit_state(conn: &Connection, name: &str) -> zbus::Result<UnitRaw> {
    let path = load_unit(conn, name).await?;
    let (load_state, active_state, sub_state, n_restarts) = tokio::join!(
        get_property(conn, &path, UNIT, "LoadState"),
        get_property(conn, &path, UNIT, "ActiveState"),
        get_property(conn, &path, UNIT, "SubState"),
        async {
            if name.ends_with(".service") {
                Some(get_property(conn, &path, SERVICE, "NRestarts").await)
            } else {
                None
            }
        },
    );
    let n_restarts = match n_restarts {
        Some(Ok(v)) => Some(u64::from(u32::try_from(v)?)),
        // systemd older than 235 has no NRestarts: the unit state is still known.
        Some(Err(e)) if is_reply(&e) => None,
        Some(Err(e)) => return Err(e),
        None => None,
    };
    let text = |v: zbus::Result<OwnedVariant>| -> zbus::Result<String> {
        Ok(bounded(&String::try_from(v?)?))
    };
    Ok(UnitRaw::Systemd {
        load_state: text(load_state)?,
        active_state: text(active_state)?,
        sub_state: text(sub_state)?,
        n_restarts,
    })
}

async fn get_property(
    conn: &Connection,
    path: &OwnedObjectPath,
    interface: &str,
    property: &str,
) -> zbus::Result<OwnedVariant> {
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            path,
            Some(PROPERTIES),
            "Get",
            &(interface, property),
        )
        .await?;
    reply.body().deserialize()
}

/// Pids per process name, for every name in `names`, from one pass over `proc_root`:
/// the scan opens one file per process, so it is done once per cycle, not once per unit.
pub fn find_processes(
    proc_root: &Path,
    names: &[&str],
) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let entries =
        std::fs::read_dir(proc_root).map_err(|e| format!("{}: {e}", proc_root.display()))?;
    let mut found: BTreeMap<String, Vec<u32>> =
        names.iter().map(|n| (n.to_string(), Vec::new())).collect();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some(comm) = read_comm(&e.path().join("comm")) else {
            continue;
        };
        if let Some(pids) = std::str::from_utf8(&comm)
            .ok()
            .and_then(|c| found.get_mut(c.trim_end_matches('\n')))
        {
            pids.push(pid);
        }
    }
    for pids in found.values_mut() {
        pids.sort_unstable();
    }
    Ok(found)
}

/// A `comm` file's bytes: at most 16 in procfs. Read into a small buffer until the
/// newline, without the size query and growth of `read_to_string`, since this runs
/// for every process on the machine every cycle. Longer content is cut, and then
/// matches no valid process name.
fn read_comm(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(buf[..n].to_vec())
}

/// Every configured unit's state, in config order.
pub async fn read_units(cfg: &Config, bus: &SystemBus) -> Vec<UnitRaw> {
    let systemd = systemd_is_pid1(&cfg.proc_root);
    let mut out: Vec<Option<UnitRaw>> = vec![None; cfg.units.len()];
    let with_unit: Vec<usize> = (0..cfg.units.len())
        .filter(|&i| cfg.units[i].unit.is_some())
        .collect();
    if systemd && !with_unit.is_empty() {
        let names: Vec<&str> = with_unit
            .iter()
            .filter_map(|&i| cfg.units[i].unit.as_deref())
            .collect();
        let states = match tokio::time::timeout(
            Duration::from_millis(cfg.timeout_ms),
            bus.unit_states(&names),
        )
        .await
        {
            Ok(states) => states,
            Err(_) => {
                bus.forget().await;
                let why = format!("systemd did not answer within {} ms", cfg.timeout_ms);
                vec![UnitRaw::Unknown(why); names.len()]
            }
        };
        for (&i, state) in with_unit.iter().zip(states) {
            out[i] = Some(state);
        }
    }
    let wanted: Vec<&str> = cfg
        .units
        .iter()
        .zip(&out)
        .filter(|(_, r)| r.is_none())
        .filter_map(|(u, _)| u.process.as_deref())
        .collect();
    let scan = if wanted.is_empty() {
        Ok(BTreeMap::new())
    } else {
        find_processes(&cfg.proc_root, &wanted)
    };
    for (i, u) in cfg.units.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        out[i] = Some(match &u.process {
            Some(p) => match &scan {
                Ok(found) => UnitRaw::Process {
                    pids: found.get(p.as_str()).cloned().unwrap_or_default(),
                },
                Err(e) => UnitRaw::Unknown(format!("cannot scan processes: {e}")),
            },
            None => {
                UnitRaw::Unknown("systemd is not PID 1 and no process name is configured".into())
            }
        });
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| UnitRaw::Unknown("not collected".into())))
        .collect()
}

/// What one cycle saw, with what the cycle before saw of restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    /// One state per configured unit, in config order.
    pub units: Vec<UnitRaw>,
    /// The `NRestarts` seen last cycle per display name; a rise means the unit crashed
    /// and was restarted in between.
    pub previous_restarts: BTreeMap<String, u64>,
}

/// The `services` probe: its bus connection and the restart counts of the last cycle.
pub struct Services {
    bus: Arc<SystemBus>,
    restarts: Mutex<BTreeMap<String, u64>>,
}

impl TypedProbe for Services {
    const KIND: &'static str = "services";
    type Config = Config;
    type Raw = Raw;

    fn new(_config: &Config) -> Self {
        Services {
            bus: SystemBus::shared(),
            restarts: Mutex::new(BTreeMap::new()),
        }
    }

    fn collect_budget(config: &Config) -> Duration {
        Duration::from_millis(config.timeout_ms)
    }

    async fn collect(&self, cfg: &Config, _ctx: &ProbeContext) -> Raw {
        let units = read_units(cfg, &self.bus).await;
        let mut restarts = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        let previous_restarts = restarts.clone();
        for (u, r) in cfg.units.iter().zip(&units) {
            if let UnitRaw::Systemd {
                n_restarts: Some(n),
                ..
            } = r
            {
                restarts.insert(u.name.clone(), *n);
            }
        }
        Raw {
            units,
            previous_restarts,
        }
    }

    fn interpret(cfg: &Config, raw: &Raw) -> Finding {
        let previous_restarts = &raw.previous_restarts;
        let mut f = Finding::ok();
        for (u, r) in cfg.units.iter().zip(&raw.units) {
            let down = if u.critical {
                NodeStatus::Fail
            } else {
                NodeStatus::Degraded
            };
            let mut extra = serde_json::Map::new();
            let active = match r {
                UnitRaw::Systemd {
                    load_state,
                    active_state,
                    sub_state,
                    n_restarts,
                } => {
                    extra.insert(
                        "systemd".into(),
                        serde_json::json!({
                            "display_name": u.name, "unit_id": u.unit,
                            "instances": [{"Id": u.unit, "LoadState": load_state, "ActiveState": active_state, "SubState": sub_state, "NRestarts": n_restarts}]
                        }),
                    );
                    if load_state == "not-found" {
                        f.worsen(
                            down,
                            codes::UNIT_NOT_FOUND,
                            format!(
                                "{}: unit {} is not installed",
                                u.name,
                                u.unit.as_deref().unwrap_or("?")
                            ),
                        );
                        false
                    } else if active_state == "active" || active_state == "reloading" {
                        if let (Some(now), Some(before)) =
                            (n_restarts, previous_restarts.get(&u.name))
                        {
                            if now > before {
                                f.worsen(
                                    NodeStatus::Degraded,
                                    codes::UNIT_RESTARTING,
                                    format!(
                                        "{}: restarted {} time(s) since the last cycle",
                                        u.name,
                                        now - before
                                    ),
                                );
                            }
                        }
                        true
                    } else {
                        f.worsen(
                            down,
                            codes::UNIT_INACTIVE,
                            format!(
                                "{}: {} is {active_state} ({sub_state})",
                                u.name,
                                u.unit.as_deref().unwrap_or("?")
                            ),
                        );
                        false
                    }
                }
                UnitRaw::Process { pids } => {
                    extra.insert(
                        "pids".into(),
                        pids.iter().take(16).copied().collect::<Vec<_>>().into(),
                    );
                    if pids.is_empty() {
                        f.worsen(
                            down,
                            codes::PROCESS_MISSING,
                            format!(
                                "{}: no process named {} is running",
                                u.name,
                                u.process.as_deref().unwrap_or("?")
                            ),
                        );
                    }
                    !pids.is_empty()
                }
                UnitRaw::Unknown(why) => {
                    f.worsen(
                        NodeStatus::Degraded,
                        codes::SERVICE_UNKNOWN,
                        format!("{}: state unknown: {why}", u.name),
                    );
                    false
                }
            };
            f.set_service(u.name.clone(), active, None, extra);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `interpret` over `units`, after a cycle that saw `previous_restarts`.
    fn interpret_units(
        cfg: &Config,
        units: &[UnitRaw],
        previous_restarts: &BTreeMap<String, u64>,
    ) -> Finding {
        Services::interpret(
            cfg,
            &Raw {
                units: units.to_vec(),
                previous_restarts: previous_restarts.clone(),
            },
        )
    }
    use sr_protocol::ServiceStatus;

    fn unit(name: &str, unit: Option<&str>, process: Option<&str>) -> Unit {
        Unit {
            name: name.into(),
            unit: unit.map(Into::into),
            process: process.map(Into::into),
            critical: true,
        }
    }

    #[test]
    fn states_map_to_statuses_with_reasons() {
        let cfg = Config {
            units: vec![
                unit("Patroni", Some("patroni.service"), None),
                unit("Etcd", Some("etcd.service"), None),
                unit("Web", None, Some("nginx")),
            ],
            timeout_ms: 1000,
            proc_root: "/proc".into(),
        };
        let sd = |a: &str, n: u64| UnitRaw::Systemd {
            load_state: "loaded".into(),
            active_state: a.into(),
            sub_state: "x".into(),
            n_restarts: Some(n),
        };
        let prev = BTreeMap::from([("Patroni".to_string(), 1u64)]);
        let f = interpret_units(
            &cfg,
            &[
                sd("active", 1),
                sd("active", 0),
                UnitRaw::Process { pids: vec![7] },
            ],
            &prev,
        );
        assert_eq!(f.status, NodeStatus::Ok);
        assert_eq!(f.services["Web"].status, ServiceStatus::Active);
        let f = interpret_units(
            &cfg,
            &[
                sd("active", 3),
                sd("failed", 0),
                UnitRaw::Process { pids: vec![] },
            ],
            &prev,
        );
        assert_eq!(f.status, NodeStatus::Fail);
        let codes: Vec<_> = f.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            ["unit_restarting", "unit_inactive", "process_missing"]
        );
        assert_eq!(f.services["Patroni"].status, ServiceStatus::Active);
        assert_eq!(f.services["Etcd"].status, ServiceStatus::Inactive);
        let f = interpret_units(
            &cfg,
            &[
                UnitRaw::Unknown("no systemd".into()),
                sd("active", 0),
                UnitRaw::Process { pids: vec![1] },
            ],
            &prev,
        );
        assert_eq!(f.status, NodeStatus::Degraded, "unknown is never healthy");
    }

    #[tokio::test]
    async fn without_systemd_processes_are_found_in_a_proc_tree() {
        let d = tempfile::tempdir().unwrap();
        for (pid, comm) in [(1, "init"), (42, "patroni"), (43, "patroni")] {
            std::fs::create_dir(d.path().join(pid.to_string())).unwrap();
            std::fs::write(d.path().join(format!("{pid}/comm")), format!("{comm}\n")).unwrap();
        }
        std::fs::create_dir(d.path().join("self")).unwrap();
        let cfg = Config {
            units: vec![
                unit("Patroni", Some("patroni.service"), Some("patroni")),
                unit("Etcd", None, Some("etcd")),
                unit("X", Some("x.service"), None),
            ],
            timeout_ms: 1000,
            proc_root: d.path().to_path_buf(),
        };
        let raw = read_units(&cfg, &SystemBus::default()).await;
        assert_eq!(raw[0], UnitRaw::Process { pids: vec![42, 43] });
        assert_eq!(raw[1], UnitRaw::Process { pids: vec![] });
        assert!(matches!(raw[2], UnitRaw::Unknown(_)));
    }

    #[tokio::test]
    async fn one_scan_serves_every_unit_and_odd_comm_files_match_nothing() {
        let d = tempfile::tempdir().unwrap();
        let long = "x".repeat(100_000);
        let comms: [(u32, &[u8]); 6] = [
            (10, b"etcd\n"),
            (11, b"patroni"), // no newline (a hand-made tree)
            (12, b"patroni\n"),
            (13, b"\xff\xfe\n"), // not UTF-8
            (14, long.as_bytes()),
            (15, b""),
        ];
        for (pid, comm) in comms {
            std::fs::create_dir(d.path().join(pid.to_string())).unwrap();
            std::fs::write(d.path().join(format!("{pid}/comm")), comm).unwrap();
        }
        // A pid directory without a comm file (a process that just exited).
        std::fs::create_dir(d.path().join("16")).unwrap();
        let found = find_processes(d.path(), &["patroni", "etcd", "xxxx"]).unwrap();
        assert_eq!(found["patroni"], vec![11, 12]);
        assert_eq!(found["etcd"], vec![10]);
        assert_eq!(found["xxxx"], Vec::<u32>::new());

        let cfg = Config {
            units: vec![
                unit("Etcd", Some("etcd.service"), Some("etcd")),
                unit("Patroni", None, Some("patroni")),
            ],
            timeout_ms: 1000,
            proc_root: d.path().join("missing"),
        };
        let raw = read_units(&cfg, &SystemBus::default()).await;
        for r in &raw {
            let UnitRaw::Unknown(why) = r else {
                panic!("{r:?}")
            };
            assert!(why.starts_with("cannot scan processes"), "{why}");
        }
    }

    /// A proc tree whose PID 1 is systemd, so `collect` takes the D-Bus path.
    fn systemd_proc_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("1")).unwrap();
        std::fs::write(d.path().join("1/comm"), "systemd\n").unwrap();
        d
    }

    fn unknown_reasons(raw: &[UnitRaw]) -> Vec<String> {
        raw.iter()
            .map(|r| match r {
                UnitRaw::Unknown(why) => why.clone(),
                other => panic!("expected an unknown state, got {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn bus_failures_become_reasons_per_unit() {
        let proc_root = systemd_proc_root();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            units: vec![
                unit("Patroni", Some("patroni.service"), Some("patroni")),
                unit("Etcd", Some("etcd.service"), None),
            ],
            timeout_ms: 2000,
            proc_root: proc_root.path().to_path_buf(),
        };

        // No bus at all.
        let gone = SystemBus::at(&format!("unix:path={}", dir.path().join("none").display()));
        for why in unknown_reasons(&read_units(&cfg, &gone).await) {
            assert!(why.starts_with("system bus unreachable"), "{why}");
        }

        // A real bus daemon without systemd on it: the error reply is per unit, and the
        // connection stays usable for the next cycle.
        // A bus with no activatable services, so nothing answers for systemd's name.
        let sock = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<busconfig><type>custom</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\"/>\
                 <allow receive_sender=\"*\"/><allow own=\"*\"/></policy></busconfig>",
                sock.display()
            ),
        )
        .unwrap();
        let mut daemon = tokio::process::Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile"])
            .arg(format!("--config-file={}", conf.display()))
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon (apt-get install dbus)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "dbus-daemon did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bus = SystemBus::at(&format!("unix:path={}", sock.display()));
        for _ in 0..2 {
            let reasons = unknown_reasons(&read_units(&cfg, &bus).await);
            for (why, name) in reasons.iter().zip(["patroni.service", "etcd.service"]) {
                assert!(
                    why.starts_with(&format!("systemd answered an error for {name}"))
                        && why.contains("ServiceUnknown"),
                    "{why}"
                );
            }
            assert!(
                bus.conn.lock().await.is_some(),
                "an error reply keeps the connection"
            );
        }
        // The bus goes away: the kept connection sees it closed, and the next cycle tries
        // a new one instead of failing on the dead one.
        daemon.kill().await.unwrap();
        let kept = bus.conn.lock().await.clone().unwrap();
        tokio::time::timeout(Duration::from_secs(10), kept.closed())
            .await
            .expect("the connection to a killed bus closes");
        for why in unknown_reasons(&read_units(&cfg, &bus).await) {
            assert!(why.starts_with("system bus unreachable"), "{why}");
        }

        // A socket that accepts and never answers: the probe's timeout, then a new
        // connection next cycle.
        let hung = dir.path().join("hung");
        let _listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
        let cfg = Config {
            timeout_ms: 200,
            ..cfg
        };
        let bus = SystemBus::at(&format!("unix:path={}", hung.display()));
        for why in unknown_reasons(&read_units(&cfg, &bus).await) {
            assert_eq!(why, "systemd did not answer within 200 ms");
        }
        assert!(bus.conn.lock().await.is_none());
    }

    #[test]
    fn unit_names_that_could_be_options_are_refused() {
        let cfg = Config {
            units: vec![unit("A", Some("--all"), None), unit("", None, None)],
            timeout_ms: 0,
            proc_root: "/proc".into(),
        };
        assert_eq!(cfg.validate().len(), 4, "{:?}", cfg.validate());
    }
}
