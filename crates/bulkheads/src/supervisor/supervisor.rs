//! Declaring supervisors: [`Supervisor::builder`], [`SupervisorBuilder`] and [`Child`]. A
//! declaration is checked and turned into a plan (`spec.rs`) when it starts; the loop that
//! runs it is `run.rs`'s, its policy types `policy.rs`'s.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use super::handle::{SupervisorError, SupervisorHandle};
use super::outcome::ChildResult;
use super::policy::{Backoff, Intensity, Restart, Strategy};
use super::run::{Place, launch};
use super::spec::{ChildPlan, Factory, Incarnation, Plan, Work};
use super::spec::{escalations_counter, restarts_counter};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::task::id::TaskInfo;
use crate::registry::Dispatchers;

/// Restarting supervisors, after Erlang/OTP's: a named set of children, each a future made
/// anew by a factory for every (re)start, restarted by a [`Strategy`] when they end, within an
/// [`Intensity`], after an optional [`Backoff`].
///
/// A child's `Err` or panic (also one in its factory) is a failure: it reaches the root
/// failure handler once, with [`Failure::restarting`](crate::Failure::restarting) saying
/// whether it will be restarted and [`Failure::path`](crate::Failure::path) naming it
/// (`supervisor 'ingest'/child 'poller'`). Too many restarts: the supervisor stops every
/// child and fails, escalating to its parent supervisor (as that child's failure) or, at the
/// top, to [`SupervisorHandle::join`] and the root failure handler (once, as a failure named
/// after the supervisor, with its path, on the registry's `cpu`: the dispatcher a supervisor
/// defaults its children to).
///
/// The supervisor's loop runs on the registry's control thread, which runs no user work, so
/// a saturated pool never delays supervision; the children run on their dispatchers (`cpu`
/// unless [`Child::on`] says otherwise).
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{Backoff, BlockingConfig, Child, Dispatchers, Restart, Strategy, Supervisor};
/// use std::time::Duration;
///
/// async fn poll_loop() -> Result<(), std::io::Error> {
///     loop { tokio::time::sleep(Duration::from_millis(10)).await; }
/// }
/// async fn flush() -> Result<(), String> { Ok(()) }
///
/// let dispatchers = Dispatchers::builder()
///     .blocking("io", BlockingConfig::threads(2))
///     .build()?;
/// let io = dispatchers.get("io")?;
///
/// let sup = Supervisor::builder("ingest")
///     .strategy(Strategy::OneForOne)
///     .intensity(5, Duration::from_secs(10))
///     .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)).jitter(0.2))
///     .child(Child::new("poller", poll_loop).restart(Restart::Permanent).on(&io))
///     .child(Child::new("flusher", flush).restart(Restart::Transient).shutdown(Duration::from_secs(5)))
///     // A supervisor is a child too: its giving up is this child's failure.
///     .child(Child::supervisor(
///         Supervisor::builder("sinks")
///             .strategy(Strategy::RestForOne)
///             .child(Child::new("connect", || async { Ok::<_, String>(()) }).restart(Restart::Transient)),
///     ))
///     .start(&dispatchers)?;
///
/// assert_eq!(sup.children().len(), 3);
/// sup.shutdown().await;   // reverse start order, each within its shutdown timeout
/// sup.join().await?;      // Ok: shut down on request (Err if it gave up)
/// dispatchers.shutdown(Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Supervisor {
    _private: (),
}

impl Supervisor {
    /// Starts declaring a supervisor called `name`: [`Strategy::OneForOne`], OTP's default
    /// intensity (1 restart in 5 s), no backoff, no children yet.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> SupervisorBuilder {
        SupervisorBuilder {
            name: name.into(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            backoff: None,
            children: Vec::new(),
        }
    }
}

/// A supervisor being declared; see [`Supervisor`]. Started with [`start`](Self::start), or
/// nested in another with [`Child::supervisor`].
pub struct SupervisorBuilder {
    name: Cow<'static, str>,
    strategy: Strategy,
    intensity: Intensity,
    backoff: Option<Backoff>,
    children: Vec<Child>,
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("backoff", &self.backoff)
            .field("children", &self.children)
            .finish()
    }
}

impl SupervisorBuilder {
    /// Which children restart together (default [`Strategy::OneForOne`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Gives up when a restart would make more than `max_restarts` within `period` (default
    /// 1 in 5 s). `max_restarts` 0 gives up at the first restart; a zero `period` is refused
    /// by [`start`](Self::start).
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = Intensity::new(max_restarts, period);
        self
    }

    /// Waits before restarts (default: restart at once).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Adds a child; children start in the order they are added and stop in reverse.
    pub fn child(mut self, child: Child) -> Self {
        self.children.push(child);
        self
    }

    /// Checks the declaration and starts the supervisor: its loop on the registry's control
    /// thread, then its children in order, on their dispatchers (`dispatchers.cpu()` unless
    /// set). Returns at once; a child that fails from the start is handled like any failure.
    ///
    /// A supervisor without children is valid: it runs until shut down.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Invalid`] for a zero intensity period, an empty name, two children
    /// of one supervisor with the same name, or a backoff out of range (nested supervisors
    /// are checked too); [`SupervisorError::RegistryClosed`] when `dispatchers` is shutting
    /// down.
    #[track_caller]
    pub fn start(self, dispatchers: &Dispatchers) -> Result<SupervisorHandle, SupervisorError> {
        let location = Location::caller();
        let home = dispatchers.cpu();
        let plan = self.plan()?;
        if home.core.admission.is_closed() {
            return Err(SupervisorError::RegistryClosed {
                supervisor: plan.name.clone(),
            });
        }
        let path: Arc<str> = format!("supervisor '{}'", plan.name).into();
        let id = home.core.shared.ids.next();
        let mut info = TaskInfo::new(id, Some(plan.name.to_string().into()), location);
        info.parent = Some(path.clone());
        Ok(launch(Place {
            plan,
            path,
            home,
            info,
            nested: false,
        }))
    }

    /// Checks this declaration and the nested ones, and registers their metric handles (with
    /// the calling thread's recorder).
    fn plan(self) -> Result<Arc<Plan>, SupervisorError> {
        let name: Arc<str> = self.name.as_ref().into();
        let invalid = |problem: String| SupervisorError::Invalid {
            supervisor: name.clone(),
            problem,
        };
        if name.is_empty() {
            return Err(invalid("a supervisor's name must not be empty".to_owned()));
        }
        if let Some(problem) = self.intensity.problem() {
            return Err(invalid(problem));
        }
        if let Some(problem) = self.backoff.as_ref().and_then(Backoff::problem) {
            return Err(invalid(problem));
        }
        let mut seen = HashSet::new();
        let mut children = Vec::with_capacity(self.children.len());
        for child in self.children {
            if child.name.is_empty() {
                return Err(invalid("a child's name must not be empty".to_owned()));
            }
            if !seen.insert(child.name.clone()) {
                return Err(invalid(format!("two children are named '{}'", child.name)));
            }
            let (work, shutdown) = match child.work {
                ChildWork::Task { factory, on } => {
                    (Work::Task { factory, on }, Child::DEFAULT_SHUTDOWN)
                }
                ChildWork::Supervisor { builder, on } => {
                    let plan = builder.plan()?;
                    (Work::Nested { plan, on }, Duration::MAX)
                }
            };
            children.push(ChildPlan {
                label: child.name.as_ref().into(),
                restarts: restarts_counter(&name, &child.name),
                name: child.name,
                work,
                restart: child.restart,
                shutdown: child.shutdown.unwrap_or(shutdown),
                location: child.location,
            });
        }
        Ok(Arc::new(Plan {
            escalations: escalations_counter(&name),
            name,
            strategy: self.strategy,
            intensity: self.intensity,
            backoff: self.backoff,
            children,
        }))
    }
}

/// A child of a supervisor: a name, a factory that makes its future for every (re)start,
/// its [`Restart`] type (default [`Restart::Permanent`]), its shutdown timeout (default
/// [`Child::DEFAULT_SHUTDOWN`], 5 s, for a nested supervisor unlimited, as OTP's) and its dispatcher
/// (default the registry's `cpu`).
///
/// ```
/// use bulkheads::{Child, Restart};
/// use std::time::Duration;
/// let child = Child::new("flusher", || async { Ok::<_, std::io::Error>(()) })
///     .restart(Restart::Transient)
///     .shutdown(Duration::from_secs(1));
/// assert_eq!(child.name(), "flusher");
/// ```
pub struct Child {
    name: Cow<'static, str>,
    work: ChildWork,
    restart: Restart,
    shutdown: Option<Duration>,
    location: &'static Location<'static>,
}

enum ChildWork {
    Task {
        factory: Factory,
        on: Option<Dispatcher>,
    },
    Supervisor {
        builder: Box<SupervisorBuilder>,
        on: Option<Dispatcher>,
    },
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Child");
        d.field("name", &self.name);
        match &self.work {
            ChildWork::Task { on, .. } => d.field("on", &on.as_ref().map(Dispatcher::name)),
            ChildWork::Supervisor { builder, .. } => d.field("supervisor", builder),
        };
        d.field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

impl Child {
    /// How long a child gets to end once cancelled, unless set (OTP's 5000 ms for workers).
    pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

    /// A child called `name` whose every start runs the future `factory` returns. The future
    /// returns `()` or a `Result` whose `Err` is a failure (see [`ChildResult`]). The factory
    /// is called on the child's dispatcher, so a panic in it is the child's failure. The
    /// line calling `new` is the spawn site its tasks report.
    ///
    /// A child that never returns can be a bare block: the output of `async { loop { .. } }`
    /// (or of a block that only panics) is the never type `!` under Rust 2024, which is a
    /// [`ChildResult`] too.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// use bulkheads::{Child, Dispatchers, Supervisor};
    /// use std::time::Duration;
    /// let dispatchers = Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let ticker = Child::new("ticker", || async {
    ///     loop {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///     }
    /// });
    /// let sup = Supervisor::builder("clock").child(ticker).start(&dispatchers).unwrap();
    /// sup.shutdown().await;
    /// assert!(sup.join().await.is_ok());
    /// # }
    /// ```
    #[track_caller]
    pub fn new<F, Fut>(name: impl Into<Cow<'static, str>>, factory: F) -> Child
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ChildResult,
    {
        let factory = Arc::new(factory);
        let make: Factory = Arc::new(move || -> Incarnation {
            let factory = factory.clone();
            Box::pin(async move { factory().await.error() })
        });
        Child {
            name: name.into(),
            work: ChildWork::Task {
                factory: make,
                on: None,
            },
            restart: Restart::default(),
            shutdown: None,
            location: Location::caller(),
        }
    }

    /// A nested supervisor as a child, named as the supervisor. Each (re)start starts it
    /// afresh; when it gives up, that is this child's failure, handled by the parent's
    /// policy. Its shutdown timeout is unlimited unless set: it stops its own children within
    /// theirs.
    #[track_caller]
    pub fn supervisor(builder: SupervisorBuilder) -> Child {
        Child {
            name: builder.name.clone(),
            work: ChildWork::Supervisor {
                builder: Box::new(builder),
                on: None,
            },
            restart: Restart::default(),
            shutdown: None,
            location: Location::caller(),
        }
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the child is restarted (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long the child gets to end once cancelled before it is abandoned (default 5 s,
    /// unlimited for a nested supervisor). `Duration::ZERO` does not wait (OTP's
    /// `brutal_kill`): a child not already ended is reported abandoned, although async work
    /// still stops at its next `.await`.
    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = Some(timeout);
        self
    }

    /// Runs the child on `dispatcher` (default: the registry's `cpu`); for a nested
    /// supervisor, the default dispatcher of its children.
    pub fn on(mut self, dispatcher: &Dispatcher) -> Self {
        match &mut self.work {
            ChildWork::Task { on, .. } | ChildWork::Supervisor { on, .. } => {
                *on = Some(dispatcher.clone());
            }
        }
        self
    }
}
