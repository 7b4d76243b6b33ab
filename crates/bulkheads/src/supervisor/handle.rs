//! What the owner of a running supervisor holds: [`SupervisorHandle`], the states of its
//! children ([`ChildStatus`]) and how it ended ([`SupervisorError`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::sync::lock;

/// Why a supervisor did not start, or why it stopped other than by
/// [`SupervisorHandle::shutdown`]. Every variant names the supervisor.
///
/// ```
/// # let d = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
/// use bulkheads::{Child, Supervisor, SupervisorError};
/// use std::time::Duration;
///
/// let err = Supervisor::builder("ingest")
///     .intensity(3, Duration::ZERO)
///     .child(Child::new("poller", || async {}))
///     .start(&d)
///     .unwrap_err();
/// assert!(matches!(err, SupervisorError::Invalid { .. }));
/// assert_eq!(
///     err.to_string(),
///     "supervisor 'ingest' cannot start: the intensity period must be above zero"
/// );
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The declaration was refused at [`start`](crate::SupervisorBuilder::start): a zero
    /// intensity period, duplicate or empty child names, a backoff out of range.
    #[error("supervisor '{supervisor}' cannot start: {problem}")]
    Invalid {
        /// The supervisor (a nested one names itself).
        supervisor: Arc<str>,
        /// What is wrong.
        problem: String,
    },
    /// More restarts were needed than its [`Intensity`](crate::Intensity) allows: it stopped
    /// every child and gave up.
    #[error(
        "supervisor '{supervisor}' gave up: more than {max_restarts} restart(s) within {period:?}; child '{child}' {last_failure}"
    )]
    GaveUp {
        /// The supervisor.
        supervisor: Arc<str>,
        /// Its intensity: restarts allowed...
        max_restarts: u32,
        /// ...within this period.
        period: Duration,
        /// The child whose ending asked for one restart too many.
        child: Arc<str>,
        /// How that child ended (`failed: ...`, `panicked: ...`, `returned`).
        last_failure: String,
    },
    /// The registry it runs in shut down (or was dropped) while it ran, or before it started.
    #[error("supervisor '{supervisor}' stopped: its registry is shutting down")]
    RegistryClosed {
        /// The supervisor.
        supervisor: Arc<str>,
    },
    /// The supervisor's own loop panicked (a bug in this library, or a panicking tracing
    /// subscriber): its children were cancelled and the panic reported.
    #[error("supervisor '{supervisor}' crashed: {message}")]
    Crashed {
        /// The supervisor.
        supervisor: Arc<str>,
        /// The panic message.
        message: String,
    },
}

impl SupervisorError {
    /// The supervisor the error is about.
    pub fn supervisor(&self) -> &str {
        match self {
            SupervisorError::Invalid { supervisor, .. }
            | SupervisorError::GaveUp { supervisor, .. }
            | SupervisorError::RegistryClosed { supervisor }
            | SupervisorError::Crashed { supervisor, .. } => supervisor,
        }
    }
}

/// How a supervisor ended: `Ok` when shut down on request.
pub(crate) type Outcome = Result<(), SupervisorError>;

/// What a child of a supervisor is doing, as [`SupervisorHandle::children`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildState {
    /// Declared, not started yet (the supervisor starts its children right after `start`).
    Starting,
    /// Its task (or nested supervisor) is running.
    Running,
    /// Ended and waiting out its [`Backoff`](crate::Backoff) delay before a restart.
    Restarting,
    /// Ended and not restarted: a [`Restart::Transient`](crate::Restart::Transient) child
    /// that returned normally. A group restart would start it again.
    Exited,
    /// A [`Restart::Temporary`](crate::Restart::Temporary) child that ended or was stopped:
    /// never started again.
    Removed,
    /// Stopped by the supervisor (shutdown, or giving up).
    Stopped,
    /// Did not stop within its shutdown timeout after it was cancelled: the supervisor gave
    /// up on it. Blocking code cannot be interrupted, so its task may still be running; a
    /// failure it has later goes to the root failure handler.
    Abandoned,
}

/// One child of a supervisor: its name, what it is doing, and how often it was restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildStatus {
    /// The child's name.
    pub name: Arc<str>,
    /// What it is doing.
    pub state: ChildState,
    /// How many times it was started again (alone or with its group).
    pub restarts: u64,
}

/// The children's states, shared by the loop (writer) and the handle (reader).
pub(crate) type Statuses = Arc<Mutex<Vec<ChildStatus>>>;

/// The handle of a running supervisor, from
/// [`SupervisorBuilder::start`](crate::SupervisorBuilder::start).
///
/// [`shutdown`](Self::shutdown) and [`join`](Self::join) take `&self`: each may be called
/// any number of times, in any order, also concurrently (wrap the handle in an `Arc` to share
/// it). `join` after the supervisor ended returns its outcome at once.
///
/// **Dropping the handle shuts the supervisor down in the background**: it stops its
/// children in reverse start order with their shutdown timeouts, as `shutdown` would, but
/// nobody waits for it. A supervisor never runs on unowned; keep the handle for as long as
/// its children should run.
///
/// Shut supervisors down before their registry: [`Dispatchers::shutdown`] waits for their
/// children (in flight) until its deadline, then cancels them in no particular order, and the
/// supervisors end with [`SupervisorError::RegistryClosed`].
///
/// [`Dispatchers::shutdown`]: crate::Dispatchers::shutdown
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build()?;
/// use bulkheads::{Child, ChildState, Supervisor};
///
/// async fn tick() {
///     loop { tokio::time::sleep(std::time::Duration::from_millis(5)).await; }
/// }
///
/// let sup = Supervisor::builder("ticker")
///     .child(Child::new("tick", tick))
///     .start(&dispatchers)?;
/// sup.shutdown().await;                 // cancels `tick`, waits for it to stop
/// assert!(sup.join().await.is_ok());    // shut down on request: Ok
/// assert_eq!(sup.children()[0].state, ChildState::Stopped);
/// # Ok(()) }
/// ```
#[must_use = "dropping a SupervisorHandle shuts the supervisor down"]
pub struct SupervisorHandle {
    name: Arc<str>,
    stop: watch::Sender<bool>,
    done: watch::Receiver<Option<Outcome>>,
    statuses: Statuses,
}

impl std::fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorHandle")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl SupervisorHandle {
    pub(crate) fn new(
        name: Arc<str>,
        stop: watch::Sender<bool>,
        done: watch::Receiver<Option<Outcome>>,
        statuses: Statuses,
    ) -> Self {
        SupervisorHandle {
            name,
            stop,
            done,
            statuses,
        }
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the supervisor: its children are stopped one by one in reverse start order,
    /// each cancelled (async work stops at its next `.await`) and given its
    /// [`shutdown`](crate::Child::shutdown) timeout to end, then abandoned (reported as
    /// [`ChildState::Abandoned`] and logged); returns once the last child is done with.
    /// Pending restarts are dropped. Does nothing more if the supervisor already ended.
    pub async fn shutdown(&self) {
        self.request_stop();
        let _ = self.join().await;
    }

    /// Waits for the supervisor to end and returns how: `Ok(())` when it was shut down,
    /// [`SupervisorError::GaveUp`] when it exceeded its intensity,
    /// [`SupervisorError::RegistryClosed`] when its registry shut down under it. Does not stop
    /// it.
    pub async fn join(&self) -> Result<(), SupervisorError> {
        outcome(self.done.clone(), self.name.clone()).await
    }

    /// True once the supervisor has ended (its children are all stopped or abandoned).
    pub fn is_finished(&self) -> bool {
        self.done.borrow().is_some() || self.stop.is_closed()
    }

    /// The children, in start order, with their states and restart counts.
    pub fn children(&self) -> Vec<ChildStatus> {
        lock(&self.statuses).clone()
    }

    /// Asks the loop to stop; returns at once.
    pub(crate) fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// A receiver of the outcome, for a parent supervisor to await.
    pub(crate) fn done(&self) -> watch::Receiver<Option<Outcome>> {
        self.done.clone()
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        self.request_stop();
    }
}

/// Waits on `done` for a supervisor's outcome. A loop that is gone without one was dropped
/// with its runtime: its registry shut down.
pub(crate) async fn outcome(mut done: watch::Receiver<Option<Outcome>>, name: Arc<str>) -> Outcome {
    loop {
        if let Some(outcome) = done.borrow_and_update().clone() {
            return outcome;
        }
        if done.changed().await.is_err() {
            return done
                .borrow()
                .clone()
                .unwrap_or(Err(SupervisorError::RegistryClosed { supervisor: name }));
        }
    }
}

/// Compile-time check of what the docs promise: the handle crosses threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<SupervisorHandle>();
    send_sync::<SupervisorError>();
};
