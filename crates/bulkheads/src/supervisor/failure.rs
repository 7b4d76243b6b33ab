//! Failures nobody else observes, and the root handler they go to.
//!
//! A panic reaches exactly one place: the caller awaiting the task's
//! [`JoinHandle`](crate::JoinHandle) or `run*` future when there is one, the root handler set
//! with [`DispatchersBuilder::on_failure`](crate::DispatchersBuilder::on_failure) when there is
//! none (the handle was dropped, the `run*` future was dropped after the work started, the work
//! was abandoned). Without a handler, the failure is logged through `tracing` at `ERROR`.
//! Never silent, never twice.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::dispatcher::task::id::TaskInfo;

/// A task failure that reached the root handler. `Display` gives one line with all it knows.
///
/// ```
/// use bulkheads::{BlockingConfig, Dispatchers, Failure};
/// use std::sync::mpsc;
///
/// let (tx, rx) = mpsc::channel::<String>();
/// let tx = std::sync::Mutex::new(tx);
/// let d = Dispatchers::builder()
///     .blocking("jobs", BlockingConfig::threads(1))
///     .on_failure(move |f: &Failure| { let _ = tx.lock().unwrap().send(f.to_string()); })
///     .build()
///     .unwrap();
/// # let prev = std::panic::take_hook(); std::panic::set_hook(Box::new(|_| {}));
/// // Dropping the handle detaches the task: its panic goes to the root handler.
/// drop(d.get("jobs").unwrap().task("nightly").spawn_blocking(|| panic!("disk full")));
/// let line = rx.recv().unwrap();
/// # std::panic::set_hook(prev);
/// assert!(line.contains("'nightly'"), "{line}");
/// assert!(line.contains("dispatcher 'jobs'"), "{line}");
/// assert!(line.contains("disk full"), "{line}");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Failure {
    /// The dispatcher the task ran on.
    pub dispatcher: Arc<str>,
    /// The task: id, name, spawn site.
    pub task: TaskInfo,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The panic message or the error's `Display`.
    pub message: String,
    /// True when a supervisor will restart the task after this failure.
    pub restarting: bool,
}

impl Failure {
    /// A failure of `task` on `dispatcher` that nobody else observes (restarting: false).
    pub(crate) fn new(
        dispatcher: Arc<str>,
        task: TaskInfo,
        kind: FailureKind,
        message: String,
    ) -> Self {
        Failure {
            dispatcher,
            task,
            kind,
            message,
            restarting: false,
        }
    }

    /// The scope or supervisor the task belongs to (its [`TaskInfo::parent`]).
    pub fn path(&self) -> Option<&str> {
        self.task.parent.as_deref()
    }
}

/// What kind of failure a [`Failure`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The task panicked.
    Panic,
    /// The work returned an error: a supervised child or a scope's child that returned
    /// `Err`.
    Error,
}

impl FailureKind {
    /// The metric label (`panic`, `error`).
    pub fn label(&self) -> &'static str {
        match self {
            FailureKind::Panic => "panic",
            FailureKind::Error => "error",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FailureKind::Panic => "panicked",
            FailureKind::Error => "failed",
        };
        write!(
            f,
            "{} on dispatcher '{}' {what}: {}",
            self.task, self.dispatcher, self.message
        )?;
        if self.restarting {
            f.write_str(" (restarting)")?;
        }
        Ok(())
    }
}

/// The root failure handler, as the builder stores it.
pub(crate) type FailureHandler = Arc<dyn Fn(&Failure) + Send + Sync + 'static>;

/// Where the failures nobody observes go: the root handler when there is one, the log
/// otherwise. Shared by every dispatcher of a registry.
pub(crate) struct FailureSink {
    handler: Option<FailureHandler>,
}

impl FailureSink {
    pub(crate) fn new(handler: Option<FailureHandler>) -> Self {
        FailureSink { handler }
    }

    /// Hands `failure` to the handler, or logs it when there is none. A handler that panics
    /// is contained and logged: the failure is not lost and the calling thread survives.
    pub(crate) fn report(&self, failure: &Failure) {
        match &self.handler {
            Some(h) => {
                if catch_unwind(AssertUnwindSafe(|| h(failure))).is_err() {
                    log(
                        failure,
                        "the root failure handler panicked while handling this failure",
                    );
                }
            }
            None => log(failure, "task failed and nobody awaited it"),
        }
    }
}

/// Logs through `tracing`. A subscriber that panics is contained too; then the failure goes
/// to standard error, the last place left, so that it is never silent.
fn log(failure: &Failure, what: &'static str) {
    let logged = catch_unwind(AssertUnwindSafe(|| {
        tracing::error!(target: "bulkheads", %failure, "{what}");
    }));
    if logged.is_err() {
        eprintln!(
            "bulkheads: {what}: {failure} (the tracing subscriber panicked while logging it)"
        );
    }
}
