//! One live task as a dump shows it: plain data, read from the task's header and probe.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatcher::task::id::TaskId;

/// What a live task is doing, as far as its dispatcher can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Not admitted yet: its caller waits for room in a full dispatcher (`run*` and
    /// `reserve` wait up to `max_wait`). The work does not exist as a task yet; its id is the
    /// one the task will have.
    WaitingForAdmission,
    /// Admitted, waiting for a thread (or for its turn at an in-flight cap).
    Queued,
    /// Being polled now (async work).
    Running,
    /// Async work suspended at an `.await`, holding no thread.
    Idle,
    /// A blocking closure running on its thread.
    RunningBlocking,
    /// Cancelled while it ran blocking code, which cannot be interrupted: its caller has its
    /// answer, the code still runs on its thread.
    Abandoned,
}

impl TaskState {
    /// A short label (`waiting for admission`, `queued`, `running`, `idle at an await`,
    /// `running blocking code`, `abandoned, still running`).
    pub fn label(&self) -> &'static str {
        match self {
            TaskState::WaitingForAdmission => "waiting for admission",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Idle => "idle at an await",
            TaskState::RunningBlocking => "running blocking code",
            TaskState::Abandoned => "abandoned, still running",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One live task in a [`Dump`](crate::Dump).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskDump {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it was given one.
    pub name: Option<Cow<'static, str>>,
    /// The dispatcher it belongs to.
    pub dispatcher: Arc<str>,
    /// The scope or supervisor it belongs to (`scope #12`, `supervisor 'ingest'/...`), if any.
    pub parent: Option<Arc<str>>,
    /// True when its join handle was dropped: nobody awaits it.
    pub detached: bool,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// What it is doing.
    pub state: TaskState,
    /// True for a blocking closure, false for async work.
    pub blocking: bool,
    /// True when it was asked to stop (cancelled) but has not stopped yet.
    pub cancel_requested: bool,
    /// Time since it was submitted.
    pub age: Duration,
    /// Time since its last poll began (for blocking work: since it started); `None` before
    /// it first ran.
    pub since_last_poll: Option<Duration>,
    /// Times it was polled (1 for a blocking closure that started).
    pub polls: u32,
    /// Time spent being polled (or running, for blocking work).
    pub busy: Duration,
}

impl fmt::Display for TaskDump {
    /// One line: `#42 'nightly-vacuum' running blocking code for 1.2s, 1.2s old, busy 1.2s, 1
    /// poll, detached, spawned at src/main.rs:10:5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " '{name}'")?;
        }
        write!(f, " {}", self.state)?;
        match (self.state, self.since_last_poll) {
            (TaskState::Queued | TaskState::WaitingForAdmission, _) | (_, None) => {}
            (_, Some(d)) => write!(f, " for {}", Short(d))?,
        }
        write!(f, ", {} old, busy {}", Short(self.age), Short(self.busy))?;
        write!(
            f,
            ", {} poll{}",
            self.polls,
            if self.polls == 1 { "" } else { "s" }
        )?;
        if self.cancel_requested {
            f.write_str(", asked to stop")?;
        }
        if self.detached {
            f.write_str(", detached")?;
        }
        let loc = self.location;
        write!(
            f,
            ", spawned at {}:{}:{}",
            loc.file(),
            loc.line(),
            loc.column()
        )
    }
}

/// A duration with three significant digits and a unit that fits.
pub(crate) struct Short(pub Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s >= 1.0 {
            write!(f, "{s:.2}s")
        } else if s >= 1e-3 {
            write!(f, "{:.1}ms", s * 1e3)
        } else {
            write!(f, "{:.0}µs", s * 1e6)
        }
    }
}
