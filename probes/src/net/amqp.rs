//! The AMQP 0-9-1 round trip the way real clients take it, with lapin.
//!
//! Connect (TCP + SASL PLAIN + `connection.open` of the vhost), open a channel, and
//! optionally publish one message with publisher confirms to a server-named exclusive
//! queue and get it back. Every step has its own share of one hard deadline, the
//! connection is closed cleanly, and the outcome says which step failed.
//!
//! Used by two probes: `rabbitmq` on broker nodes, at a lower rate than the management
//! checks, and `amqp` on manager nodes (the broker the manager uses).
//!
//! Plain `amqp://` only: lapin is built with `default-features = false, features = ["tokio"]`.
//! Its TLS stack adds about 47 crates and cannot be told to trust *only* the private CA
//! (it adds the CA to a public root set), so `amqps://` is deliberately not offered.
//!
//! Under a resource alarm RabbitMQ blocks a publishing connection (`connection.blocked`)
//! and stops reading from it; the confirm then never comes. That is reported as
//! `blocked`, not as a timeout. The blocked connection's close is not read by the broker
//! until the alarm clears, so at most one probe connection per AMQP cycle lingers while an
//! alarm lasts; that is why the broker probe runs this step at a low rate.

use super::Secret;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// Where and how to run the round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    pub password: Secret,
    /// Publish with confirms and get the message back (needs configure/write/read
    /// permission on `^amq\.gen-.*` and write on `amq.default`).
    pub publish: bool,
    /// Hard deadline for the whole round trip, close included.
    pub timeout: Duration,
}

impl Target {
    /// `host:port vhost` for messages; never the credentials.
    pub fn describe(&self) -> String {
        format!("amqp://{}:{} vhost {:?}", self.host, self.port, self.vhost)
    }
}

/// The step of the round trip that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// TCP connect, authentication and opening the vhost (lapin does them as one).
    Connect,
    Channel,
    Declare,
    Publish,
    Confirm,
    Get,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect/authenticate/open vhost",
            Step::Channel => "open channel",
            Step::Declare => "declare exclusive queue",
            Step::Publish => "publish",
            Step::Confirm => "publisher confirm",
            Step::Get => "get the message back",
        })
    }
}

/// What one round trip saw. Serializable so captured outcomes can drive `interpret` tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// `None` when every step succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The broker sent `connection.blocked` (a resource alarm somewhere in the cluster).
    #[serde(default)]
    pub blocked: bool,
    /// Time to an open connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Time from publish to the message coming back, when publishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trip_ms: Option<u64>,
    /// Whether the connection closed cleanly within the deadline.
    #[serde(default)]
    pub closed_cleanly: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed_step.is_none()
    }

    /// One line for reasons.
    pub fn describe_failure(&self, target: &str) -> Option<String> {
        let step = self.failed_step?;
        let err = self.error.as_deref().unwrap_or("failed");
        Some(format!("AMQP {step} on {target} failed: {err}"))
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// The longest a round trip with `timeout` takes: the close runs up to 200 ms past the
/// deadline, and lapin's teardown gets the rest.
pub(crate) fn round_trip_budget(timeout: Duration) -> Duration {
    timeout + Duration::from_millis(500)
}

/// The AMQP port when none is configured.
pub(crate) fn default_port() -> u16 {
    5672
}
/// The vhost when none is configured.
pub(crate) fn default_vhost() -> String {
    "/".into()
}

/// Connects (TCP, SASL PLAIN, `connection.open` of the vhost) with the heartbeat every
/// client of this module negotiates: 10 s, so a half-dead connection is noticed and dropped.
async fn connect(t: &Target, name: &str) -> Result<Connection, lapin::Error> {
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: t.username.clone(),
                password: t.password.expose().to_string(),
            },
            host: t.host.clone(),
            port: t.port,
        },
        vhost: t.vhost.clone(),
        query: AMQPQueryString {
            heartbeat: Some(HEARTBEAT_SECS),
            ..Default::default()
        },
    };
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_uri(uri, props).await
}

/// The heartbeat asked for (the broker may lower it).
pub const HEARTBEAT_SECS: u16 = 10;

/// An open connection held by the agent's connection watch; see [`hold`].
pub type Held = std::pin::Pin<Box<dyn Future<Output = String> + Send>>;

/// How often a held connection's state is also read, in case it ended without an event.
pub const STATE_CHECK: Duration = Duration::from_secs(10);

/// Opens a connection as the round trip does (within `t.timeout`) and returns a future
/// that ends, with why, when the connection ends: lapin's error event comes at once for a
/// failed socket (a killed broker, `stop_app`: `Connection reset by peer`), for a broker's
/// `connection.close` (`close_connection`: `CONNECTION_FORCED`) and for lost heartbeats.
/// The connection's state is also read every [`STATE_CHECK`], so that an end lapin
/// reported no event for cannot leave the watch holding a dead connection for ever. It
/// opens no channel and sends nothing but heartbeats.
pub async fn hold(t: &Target) -> Result<Held, String> {
    use futures_core::Stream;
    let deadline = Instant::now() + t.timeout;
    let conn = bounded(deadline, connect(t, "status-reporter watch")).await?;
    let mut events = Box::pin(conn.events_listener());
    Ok(Box::pin(async move {
        let mut check = tokio::time::interval(STATE_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)) => match ev {
                    Some(lapin::Event::Error(e)) => return e.to_string(),
                    Some(_) => continue,
                    None => return "the connection's event stream ended".to_string(),
                },
                _ = check.tick() => {
                    let s = conn.status();
                    if !s.connected() {
                        return if s.errored() {
                            "the connection failed".to_string()
                        } else {
                            "the broker closed the connection".to_string()
                        };
                    }
                }
            }
        }
    }))
}

/// Runs one bounded round trip. Never panics, never returns `Err`.
pub async fn round_trip(t: &Target) -> Outcome {
    let deadline = Instant::now() + t.timeout;
    let mut out = Outcome {
        failed_step: None,
        error: None,
        blocked: false,
        connect_ms: None,
        round_trip_ms: None,
        closed_cleanly: false,
    };
    let start = Instant::now();
    let conn = match bounded(deadline, connect(t, "status-reporter probe")).await {
        Ok(c) => c,
        Err(e) => {
            out.failed_step = Some(Step::Connect);
            out.error = Some(e);
            return out;
        }
    };
    out.connect_ms = Some(ms(start.elapsed()));
    if let Err((step, e)) = exchange(&conn, t, deadline, &mut out).await {
        out.failed_step = Some(step);
        out.error = Some(e);
    }
    out.blocked |= conn.status().blocked();
    if out.blocked && out.failed_step.is_some() {
        out.error = Some(format!(
            "connection blocked by the broker (resource alarm): {}",
            out.error.take().unwrap_or_default()
        ));
    }
    // Closing is part of behaving like a good client, but a blocked connection's close is
    // not read by the broker, so it gets a short bound of its own.
    let close_by = deadline.max(Instant::now() + Duration::from_millis(200));
    out.closed_cleanly = bounded(
        close_by,
        conn.close(200, "status-reporter probe done".into()),
    )
    .await
    .is_ok();
    out
}

async fn exchange(
    conn: &Connection,
    t: &Target,
    deadline: Instant,
    out: &mut Outcome,
) -> Result<(), (Step, String)> {
    let ch = bounded(deadline, conn.create_channel())
        .await
        .map_err(|e| (Step::Channel, e))?;
    if !t.publish {
        let _ = bounded(deadline, ch.close(200, "done".into())).await;
        return Ok(());
    }
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = bounded(
        deadline,
        ch.queue_declare("".into(), opts, FieldTable::default()),
    )
    .await
    .map_err(|e| (Step::Declare, e))?;
    bounded(deadline, ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .map_err(|e| (Step::Declare, e))?;
    let payload = b"status-reporter round trip";
    let sent = Instant::now();
    let confirm = bounded(
        deadline,
        ch.basic_publish(
            "".into(),
            queue.name().clone(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            BasicProperties::default(),
        ),
    )
    .await
    .map_err(|e| (Step::Publish, e))?;
    match tokio::time::timeout_at(deadline.into(), confirm).await {
        Ok(Ok(c)) if c.is_ack() => {}
        Ok(Ok(_)) => return Err((Step::Confirm, "the broker nacked the message".into())),
        Ok(Err(e)) => return Err((Step::Confirm, e.to_string())),
        Err(_) => {
            out.blocked = conn.status().blocked();
            return Err((Step::Confirm, "no confirm before the deadline".into()));
        }
    }
    let got = bounded(
        deadline,
        ch.basic_get(queue.name().clone(), BasicGetOptions::default()),
    )
    .await
    .map_err(|e| (Step::Get, e))?;
    match got {
        Some(m) if m.delivery.data == payload => {
            out.round_trip_ms = Some(ms(sent.elapsed()));
            let _ = bounded(deadline, m.delivery.acker.ack(BasicAckOptions::default())).await;
        }
        Some(_) => return Err((Step::Get, "got a different message back".into())),
        None => {
            return Err((
                Step::Get,
                "the confirmed message was not in the queue".into(),
            ))
        }
    }
    let _ = bounded(deadline, ch.close(200, "done".into())).await;
    Ok(())
}

/// Awaits `f` until `deadline`, turning lapin errors and the timeout into text.
async fn bounded<T, E: fmt::Display>(
    deadline: Instant,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline.into(), f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer before the deadline".into()),
    }
}
