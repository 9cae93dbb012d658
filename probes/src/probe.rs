//! The one shape every probe has, and the one adapter that turns it into what the agent's
//! scheduler runs.
//!
//! A probe is written as a [`TypedProbe`]: its typed config, what its `collect` saw (the
//! raw type), the I/O shell `collect` and the pure `interpret`, plus the time `collect`
//! takes at most. [`Scheduled`] is the only implementation of the scheduler-facing
//! [`Probe`] trait for probes: it names the instance, adds the scheduling margin to the
//! deadline and composes `collect` with `interpret`, so no probe repeats that part.

use crate::Finding;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Added to a probe's own collect budget to make the scheduler's hard deadline: the time
/// `interpret` and the task hand-over take, so a probe that honours its own bounds always
/// reports its own, more specific, finding instead of a bare timeout.
pub const SCHEDULING_MARGIN: Duration = Duration::from_millis(250);

/// Per-cycle context handed to every probe.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// Cycle counter since start, for probes that do some work at a lower rate
    /// (Patroni `/cluster`, the AMQP round trip).
    pub cycle: u64,
    /// Unix seconds at the start of the cycle (injected so `interpret` stays pure).
    pub now: i64,
}

/// What the scheduler runs: a named, deadline-bounded producer of findings. Probes get it
/// from [`Scheduled`]; only test doubles implement it by hand.
pub trait Probe: Send + Sync {
    /// Stable name used in reports and logs (`host`, `patroni`, `tcp:rest`, ...).
    fn name(&self) -> &str;
    /// The hard deadline the scheduler enforces on [`Probe::run`].
    fn timeout(&self) -> Duration;
    /// One collection plus interpretation. Must not panic; failures are findings.
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Finding>;
}

/// A probe as written: typed config, raw observation, I/O shell and pure verdict.
///
/// `Self` holds what lives across cycles (HTTP clients, a kept database session, the
/// slow-path cache); stateless probes are unit structs.
pub trait TypedProbe: Send + Sync + Sized + 'static {
    /// The `kind` in `[[probes]]`, and the name in reports unless [`Self::instance`] adds one.
    const KIND: &'static str;
    /// The stack service this probe's findings belong to (`galera`, `lb`, `vip`, ...), or
    /// `None` for the host's and the Cloudify roles' probes. A stack probe's finding counts
    /// only in its stack service, never in the node's own status (docs/protocol.md,
    /// "Scope of a finding").
    const STACK: Option<sr_protocol::facts::StackService> = None;
    /// The typed, validated settings.
    type Config: Send + Sync + 'static;
    /// Everything `collect` saw; the only input of `interpret` besides the config.
    type Raw: Send;

    /// Builds what lives across cycles. Must not fail: a client that cannot be built is
    /// kept as its error and reported by every cycle.
    fn new(config: &Self::Config) -> Self;

    /// The instance name for kinds configured several times (`tcp:rest`); `None` when one
    /// instance per node is the rule.
    fn instance(_config: &Self::Config) -> Option<&str> {
        None
    }

    /// The longest `collect` takes, by its own bounds.
    fn collect_budget(config: &Self::Config) -> Duration;

    /// The scheduler's hard deadline. Probes whose `collect` bounds itself keep the
    /// default; the others say why not.
    fn deadline(config: &Self::Config) -> Duration {
        Self::collect_budget(config) + SCHEDULING_MARGIN
    }

    /// The I/O shell: never panics, never fails; every failure becomes data in the raw.
    fn collect(
        &self,
        config: &Self::Config,
        ctx: &ProbeContext,
    ) -> impl Future<Output = Self::Raw> + Send;

    /// The pure verdict: no I/O, no clock (time comes in the raw).
    fn interpret(config: &Self::Config, raw: &Self::Raw) -> Finding;

    /// What the probe keeps of its own verdict for the next `collect` (the RabbitMQ probe
    /// runs AMQP early after a cycle whose management API failed). Most keep nothing.
    fn remember(&self, _finding: &Finding) {}
}

/// The scheduler-facing form of a [`TypedProbe`]: the common part, written once.
pub struct Scheduled<T: TypedProbe> {
    name: String,
    config: T::Config,
    probe: T,
}

impl<T: TypedProbe> Scheduled<T> {
    pub fn new(config: T::Config) -> Self {
        let name = match T::instance(&config) {
            Some(instance) => format!("{}:{instance}", T::KIND),
            None => T::KIND.to_string(),
        };
        Scheduled {
            name,
            probe: T::new(&config),
            config,
        }
    }

    /// Like [`Scheduled::new`], around a probe built otherwise (benchmarks compare two
    /// builds of one probe on the same config).
    pub fn with_probe(config: T::Config, probe: T) -> Self {
        let mut s = Scheduled::new(config);
        s.probe = probe;
        s
    }
}

impl<T: TypedProbe> Probe for Scheduled<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn timeout(&self) -> Duration {
        T::deadline(&self.config)
    }
    fn run<'a>(&'a self, ctx: &'a ProbeContext) -> BoxFuture<'a, Finding> {
        Box::pin(async move {
            let raw = self.probe.collect(&self.config, ctx).await;
            let finding = T::interpret(&self.config, &raw);
            self.probe.remember(&finding);
            finding
        })
    }
}
