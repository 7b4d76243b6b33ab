//! [`Suspect`]s: the live tasks a dump finds suspicious — ghosts (detached and idle), zombies
//! (asked to stop, still running), long blocking jobs, long polls (async work that does not
//! yield), and children that outlived their scope.
//!
//! Why a child that outlived its scope is always also a zombie: a scope that returns has waited
//! for every child, so a child can only outlive a scope that failed and gave up on a blocking
//! child, or whose future was dropped. Either way the child was cancelled: a blocking closure
//! already running cannot be interrupted (it is abandoned and runs on), and async work stuck
//! inside one poll runs on until its next `.await`.

use std::fmt;
use std::time::Duration;

use super::dump::Dump;
use super::task::{Short, TaskDump, TaskState};

/// A live task a [`Dump`] finds suspicious; see [`Dump::suspects`]. `Display` gives one line.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Suspect {
    /// The task.
    pub task: TaskDump,
    /// Why it is suspicious.
    pub reason: SuspectReason,
}

/// Why a task is a [`Suspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SuspectReason {
    /// Detached (nobody awaits it) and idle at an `.await` for longer than the threshold: a
    /// ghost that may never be woken.
    DetachedIdle,
    /// Asked to stop and still running: abandoned while it ran blocking code, or cancelled
    /// async work that has not reached an `.await` for longer than the threshold.
    Zombie,
    /// A blocking closure running for longer than the threshold.
    LongBlocking,
    /// Async work inside one poll for longer than the threshold: it does not reach an
    /// `.await`, and holds its worker thread meanwhile (blocking code, or a long computation,
    /// in async code).
    LongPoll,
    /// A child of a scope that has already returned.
    OutlivedScope,
}

impl SuspectReason {
    /// A short label (`ghost`, `zombie`, `long blocking`, `long poll`, `outlived its scope`).
    pub fn label(&self) -> &'static str {
        match self {
            SuspectReason::DetachedIdle => "ghost",
            SuspectReason::Zombie => "zombie",
            SuspectReason::LongBlocking => "long blocking",
            SuspectReason::LongPoll => "long poll",
            SuspectReason::OutlivedScope => "outlived its scope",
        }
    }
}

impl fmt::Display for Suspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.task;
        write!(f, "{}: ", self.reason.label())?;
        let idle = t.since_last_poll.map(Short);
        match (self.reason, idle) {
            (SuspectReason::DetachedIdle, Some(idle)) => {
                write!(f, "detached and idle at an await for {idle}")?
            }
            (SuspectReason::DetachedIdle, None) => write!(
                f,
                "detached and idle at an await (polls not timed; {} old)",
                Short(t.age)
            )?,
            (SuspectReason::Zombie, _) => f.write_str("asked to stop, still running")?,
            (SuspectReason::LongBlocking, Some(idle)) => {
                write!(f, "running blocking code for {idle}")?
            }
            (SuspectReason::LongPoll, Some(busy)) => {
                write!(f, "in one poll for {busy}, holding its thread")?
            }
            (SuspectReason::LongPoll, None) => write!(
                f,
                "in one poll, holding its thread (polls not timed; {} old)",
                Short(t.age)
            )?,
            (SuspectReason::LongBlocking, None) => write!(
                f,
                "running blocking code (polls not timed; {} old)",
                Short(t.age)
            )?,
            (SuspectReason::OutlivedScope, _) => write!(
                f,
                "{} has returned",
                t.parent.as_deref().unwrap_or("its scope")
            )?,
        }
        write!(f, " on dispatcher '{}': {t}", t.dispatcher)
    }
}

fn is_scope(path: &str) -> bool {
    path.starts_with("scope #") || path.starts_with("supervisor scope #")
}

impl Dump {
    /// The suspicious tasks, `threshold` telling how long is too long: ghosts (detached and
    /// idle at an `.await` for at least `threshold`), zombies (abandoned while running blocking
    /// code, or cancelled async work still in a poll after `threshold`), blocking jobs running
    /// for at least `threshold`, async work inside one poll for at least `threshold` (it holds
    /// its worker), and children of scopes that have returned. A task may be
    /// suspect for several reasons; each is listed. On a registry built with
    /// [`track_tasks(false)`](crate::DispatchersBuilder::track_tasks) idle and blocking times
    /// are not known, and a task's age stands in for them.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// use std::time::Duration;
    /// // A task whose handle is dropped and which waits for a wake-up that never comes.
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// let cpu = dispatchers.cpu();
    /// drop(cpu.task("forgotten").spawn(async move { let _ = rx.await; }));
    /// cpu.run(async {}).await.unwrap(); // the one cpu thread has polled it by now
    /// let suspects = dispatchers.dump().suspects(Duration::ZERO);
    /// assert_eq!(suspects.len(), 1);
    /// assert!(suspects[0].to_string().starts_with("ghost: detached and idle at an await for "));
    /// # drop(tx);
    /// # }
    /// ```
    pub fn suspects(&self, threshold: Duration) -> Vec<Suspect> {
        let mut found = Vec::new();
        for t in self.tasks() {
            // Untimed polls (`track_tasks(false)`): the task's age bounds its idle time.
            let idle_for = t.since_last_poll.unwrap_or(t.age);
            let mut suspect = |reason| {
                found.push(Suspect {
                    task: t.clone(),
                    reason,
                })
            };
            if t.detached && t.state == TaskState::Idle && idle_for >= threshold {
                suspect(SuspectReason::DetachedIdle);
            }
            let stuck_after_cancel = t.cancel_requested
                && matches!(t.state, TaskState::Running | TaskState::RunningBlocking)
                && idle_for >= threshold;
            if t.state == TaskState::Abandoned || stuck_after_cancel {
                suspect(SuspectReason::Zombie);
            }
            if t.state == TaskState::RunningBlocking && idle_for >= threshold {
                suspect(SuspectReason::LongBlocking);
            }
            if t.state == TaskState::Running && !t.cancel_requested && idle_for >= threshold {
                suspect(SuspectReason::LongPoll);
            }
            if let Some(parent) = &t.parent {
                if is_scope(parent) && !self.open_scopes.contains(parent) {
                    suspect(SuspectReason::OutlivedScope);
                }
            }
        }
        found
    }
}
