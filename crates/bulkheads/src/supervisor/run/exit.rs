//! A running child ([`Live`]: a task's handle or a nested supervisor's) and how it ended
//! ([`Exit`]): the dispatcher's verdict turned into the supervisor's terms.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::dispatcher::join::JoinHandle;
use crate::dispatcher::task::id::TaskInfo;
use crate::error::{DispatchError, RejectReason};
use crate::supervisor::failure::FailureKind;
use crate::supervisor::handle::{Outcome, SupervisorError, SupervisorHandle};

/// A running child.
pub(super) enum Live {
    Task(JoinHandle<Option<String>>),
    Nested {
        handle: SupervisorHandle,
        done: Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>,
    },
}

/// How a child ended.
pub(super) enum Exit {
    Normal,
    Failed(Failed),
    /// Cancelled by someone else, or refused because its registry shuts down.
    Closed,
}

/// A failure of a child, as reported to the root handler.
pub(super) struct Failed {
    pub kind: FailureKind,
    pub message: String,
    pub task: TaskInfo,
}

impl Live {
    /// How the child ended, once it has; `task` is its incarnation's identity.
    pub(super) fn poll_exit(
        &mut self,
        task: &Option<TaskInfo>,
        cx: &mut Context<'_>,
    ) -> Poll<Exit> {
        match self {
            Live::Task(h) => Pin::new(h).poll(cx).map(|r| task_exit(r, task.clone())),
            Live::Nested { done, .. } => {
                done.as_mut().poll(cx).map(|r| nested_exit(r, task.clone()))
            }
        }
    }
}

/// How a child's task ended. `task` is the incarnation's identity (for an `Err` it returned).
pub(super) fn task_exit(
    result: Result<Option<String>, DispatchError>,
    task: Option<TaskInfo>,
) -> Exit {
    let failed = |kind, message| match task {
        Some(task) => Exit::Failed(Failed {
            kind,
            message,
            task,
        }),
        None => Exit::Closed,
    };
    match result {
        Ok(None) => Exit::Normal,
        Ok(Some(message)) => failed(FailureKind::Error, message),
        Err(DispatchError::Panicked { task, message, .. }) => Exit::Failed(Failed {
            kind: FailureKind::Panic,
            message,
            task,
        }),
        Err(DispatchError::Rejected {
            reason: RejectReason::ShuttingDown,
            ..
        }) => Exit::Closed,
        Err(e @ DispatchError::Rejected { .. }) => {
            failed(FailureKind::Error, format!("could not start: {e}"))
        }
        Err(_) => Exit::Closed,
    }
}

/// How a nested supervisor ended: shut down by its parent (normal), gave up (a failure), or
/// its registry closed.
pub(super) fn nested_exit(result: Outcome, task: Option<TaskInfo>) -> Exit {
    match (result, task) {
        (Ok(()), _) => Exit::Normal,
        (Err(SupervisorError::RegistryClosed { .. }), _) | (Err(_), None) => Exit::Closed,
        (Err(e), Some(task)) => Exit::Failed(Failed {
            kind: FailureKind::Error,
            message: e.to_string(),
            task,
        }),
    }
}
