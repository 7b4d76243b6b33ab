//! Errors: what a task's caller sees ([`DispatchError`]), what building a registry reports
//! ([`ConfigError`]), and what looking up a name reports ([`UnknownDispatcher`]).
//!
//! Every message names the dispatcher or the config key involved, and says what would be valid.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dispatcher::task::id::TaskInfo;

/// Why a task did not produce its value.
///
/// Every variant names the dispatcher. Returned by awaiting a [`JoinHandle`](crate::JoinHandle)
/// or a `run*` future.
///
/// ```
/// # use bulkheads::{DispatchError, RejectReason};
/// fn status(err: &DispatchError) -> u16 {
///     match err {
///         DispatchError::Rejected { .. } => 503,
///         DispatchError::Panicked { .. } | DispatchError::Cancelled { .. } => 500,
///         _ => 500,
///     }
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The dispatcher did not run the task: its queue was full, no room came within
    /// `max_wait`, it is shutting down, or the task waited in the queue past the dispatcher's
    /// queue deadline. The work never started.
    #[error("dispatcher '{dispatcher}' rejected the task: {reason}")]
    Rejected {
        /// The dispatcher that rejected the task.
        dispatcher: Arc<str>,
        /// Why it was rejected.
        reason: RejectReason,
    },
    /// The task panicked. The panic was caught; the dispatcher's threads survive. The payload
    /// is kept: see [`DispatchError::into_panic`].
    #[error("{task} on dispatcher '{dispatcher}' panicked: {message}")]
    Panicked {
        /// The dispatcher the task ran on.
        dispatcher: Arc<str>,
        /// Which task: its id, its name if it has one, and where it was spawned.
        task: TaskInfo,
        /// The panic message, when the payload was a string.
        message: String,
        /// The panic payload, for [`DispatchError::into_panic`].
        payload: PanicPayload,
    },
    /// The task was cancelled (aborted, its `run*` future dropped, or cut by shutdown) before
    /// it produced a value.
    #[error("{task} on dispatcher '{dispatcher}' was cancelled")]
    Cancelled {
        /// The dispatcher the task belonged to.
        dispatcher: Arc<str>,
        /// Which task.
        task: TaskInfo,
    },
}

impl DispatchError {
    /// The dispatcher this error comes from.
    pub fn dispatcher(&self) -> &str {
        match self {
            DispatchError::Rejected { dispatcher, .. }
            | DispatchError::Panicked { dispatcher, .. }
            | DispatchError::Cancelled { dispatcher, .. } => dispatcher,
        }
    }

    /// True for [`DispatchError::Rejected`].
    pub fn is_rejected(&self) -> bool {
        matches!(self, DispatchError::Rejected { .. })
    }

    /// True for [`DispatchError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, DispatchError::Panicked { .. })
    }

    /// True for [`DispatchError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, DispatchError::Cancelled { .. })
    }

    /// The reason of a rejection, if this is one.
    pub fn reject_reason(&self) -> Option<&RejectReason> {
        match self {
            DispatchError::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The panic payload of a [`DispatchError::Panicked`], to re-raise it with
    /// [`std::panic::resume_unwind`]. `None` for other variants.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use bulkheads::{BlockingConfig, Dispatchers};
    /// let d = Dispatchers::builder()
    ///     .blocking("db", BlockingConfig::threads(1))
    ///     .build()
    ///     .unwrap();
    /// # let prev = std::panic::take_hook(); std::panic::set_hook(Box::new(|_| {}));
    /// let err = d.get("db").unwrap().run_blocking(|| -> u32 { panic!("boom") }).await.unwrap_err();
    /// # std::panic::set_hook(prev);
    /// let payload = err.into_panic().unwrap();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// # }
    /// ```
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            DispatchError::Panicked { payload, .. } => payload.take(),
            _ => None,
        }
    }
}

/// Why a dispatcher rejected a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// In-flight cap and queue were full (or `max_wait` is zero). `capacity` is the in-flight
    /// cap plus the queue length.
    QueueFull {
        /// In-flight cap (threads, for a blocking pool) plus queue length.
        capacity: usize,
    },
    /// A `run*` caller waited `max_wait` for room and none came.
    WaitTimeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// The registry is shutting down or was dropped.
    ShuttingDown,
    /// Admitted, but it waited in the queue longer than the dispatcher's `queue_deadline`
    /// before it could start, so it was not started: its caller's time is better spent on a
    /// fast answer than on work that starts too late.
    QueueDeadline {
        /// How long it had waited in the queue.
        waited: Duration,
        /// The dispatcher's queue deadline.
        deadline: Duration,
    },
}

impl RejectReason {
    /// The metric label of this reason (`queue_full`, `wait_timeout`, `shutting_down`,
    /// `queue_deadline`).
    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::QueueFull { .. } => "queue_full",
            RejectReason::WaitTimeout { .. } => "wait_timeout",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::QueueDeadline { .. } => "queue_deadline",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::QueueFull { capacity } => {
                write!(
                    f,
                    "queue full (capacity {capacity}: in-flight cap plus queue)"
                )
            }
            RejectReason::WaitTimeout { waited } => {
                write!(f, "no room within max_wait (waited {waited:?})")
            }
            RejectReason::ShuttingDown => f.write_str("shutting down"),
            RejectReason::QueueDeadline { waited, deadline } => write!(
                f,
                "waited {waited:?} in the queue, past its queue deadline of {deadline:?}"
            ),
        }
    }
}

/// The payload of a caught panic. Kept behind a lock so that [`DispatchError`] stays `Sync`;
/// taken by [`DispatchError::into_panic`].
pub struct PanicPayload(Mutex<Option<Box<dyn Any + Send + 'static>>>);

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        PanicPayload(Mutex::new(Some(payload)))
    }

    fn take(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self.0.into_inner() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PanicPayload(..)")
    }
}

/// The text of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Building a registry failed. Every problem of the configuration is reported at once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration is invalid. Each problem names its key path and what would be valid.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<ConfigProblem>),
    /// The configuration file could not be read.
    #[error("reading bulkheads configuration {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// A dispatcher's threads or runtime could not be started (an OS limit, usually).
    #[error("dispatcher '{dispatcher}': could not start: {source}")]
    Start {
        /// The dispatcher being started.
        dispatcher: String,
        /// The error from the operating system or Tokio.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The problems of an invalid configuration (empty for other variants).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid(p) => p,
            _ => &[],
        }
    }
}

/// One problem in a configuration: where it is and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigProblem {
    /// The key path, such as `dispatchers.legacy_db.threads` (empty for a TOML syntax error).
    pub key: String,
    /// Line and column in the TOML source, when the problem came from one.
    pub position: Option<Position>,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// A 1-based line and column in a configuration source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl ConfigProblem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key.is_empty(), self.position) {
            (false, Some(p)) => write!(
                f,
                "{} (line {}, column {}): {}",
                self.key, p.line, p.column, self.message
            ),
            (false, None) => write!(f, "{}: {}", self.key, self.message),
            (true, Some(p)) => write!(f, "line {}, column {}: {}", p.line, p.column, self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid bulkheads configuration: {one}"),
            many => {
                write!(
                    f,
                    "invalid bulkheads configuration ({} problems):",
                    many.len()
                )?;
                for p in many {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// [`Dispatchers::get`](crate::Dispatchers::get) was given a name that the registry does not
/// have. The message lists the names it has.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown dispatcher '{name}'; known dispatchers: {}", .known.join(", "))]
pub struct UnknownDispatcher {
    /// The name asked for.
    pub name: String,
    /// The names the registry has, sorted.
    pub known: Vec<String>,
}
