//! Why a scope failed ([`ScopeError`], [`ScopeFailure`]) and how a scope turns what ended
//! into failures: a child's end recorded (`record`), the body's panic, a first failure handed
//! to the root handler.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::children::Ended;
use super::failure::{Failure, FailureKind};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::task::id::TaskInfo;
use crate::error::{DispatchError, panic_message};

/// Why an all-or-nothing scope failed: its first failure, and those that came after it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ScopeError<E> {
    /// The first failure: it cancelled the rest.
    pub cause: ScopeFailure<E>,
    /// Failures that came after it (children that failed before their cancellation took
    /// effect), in the order they were seen. Cancellations are not failures.
    pub later: Vec<Failure>,
}

/// What failed first in a scope.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScopeFailure<E> {
    /// The body returned `Err`.
    Body(E),
    /// A child returned `Err`.
    Child {
        /// The child.
        task: TaskInfo,
        /// The dispatcher it ran on.
        dispatcher: Arc<str>,
        /// Its error.
        error: E,
    },
    /// A child panicked, was rejected by its dispatcher, or was cancelled by something
    /// other than the scope.
    Dispatch(DispatchError),
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            ScopeFailure::Body(e) => write!(f, "scope failed: {e}")?,
            ScopeFailure::Child {
                task,
                dispatcher,
                error,
            } => write!(
                f,
                "scope failed: {task} on dispatcher '{dispatcher}' failed: {error}"
            )?,
            ScopeFailure::Dispatch(e) => write!(f, "scope failed: {e}")?,
        }
        if !self.later.is_empty() {
            write!(f, " (and {} later failure(s))", self.later.len())?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ScopeError<E> {}

/// The body's panic as a failure of the scope's `body`.
fn body_panic(info: &TaskInfo, cpu: &Dispatcher, payload: &(dyn Any + Send)) -> Failure {
    Failure::new(
        cpu.name().into(),
        info.clone(),
        FailureKind::Panic,
        panic_message(payload),
    )
}

/// A user error's message. Its `Display` is user code: a panic there is contained and becomes
/// the message (a scope records errors while it is polled, and reports them from `Drop`).
fn display<E: fmt::Display>(error: &E) -> String {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| error.to_string())).unwrap_or_else(
        |payload| {
            format!(
                "(the error's Display panicked: {})",
                panic_message(&*payload)
            )
        },
    )
}

/// Drops a user's error. Its `Drop` is user code: a panic there is contained, counted on
/// `dispatcher` and returned as a failure of `task`.
fn drop_error<E>(error: E, dispatcher: &Dispatcher, task: &TaskInfo) -> Option<Failure> {
    let payload = catch_unwind(AssertUnwindSafe(move || drop(error))).err()?;
    dispatcher.count_panic();
    let failure = Failure::new(
        dispatcher.name().into(),
        task.clone(),
        FailureKind::Panic,
        format!(
            "{} (while dropping the task's error)",
            panic_message(&*payload)
        ),
    );
    // Dropping a payload runs its `Drop`: user code too.
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    Some(failure)
}

/// A user's error as the failure of `task` on `dispatcher`, then dropped (contained): the
/// failure, and a panic of its `Drop` if it had one.
fn error_failures<E: fmt::Display>(
    error: E,
    dispatcher: &Dispatcher,
    task: TaskInfo,
) -> (Failure, Option<Failure>) {
    let message = display(&error);
    let dropped = drop_error(error, dispatcher, &task);
    let failure = Failure::new(dispatcher.name().into(), task, FailureKind::Error, message);
    (failure, dropped)
}

/// A scope's first failure as failures for the root handler (two when dropping the user's
/// error panicked).
fn as_failures<E: fmt::Display>(
    cause: ScopeFailure<E>,
    body: &TaskInfo,
    cpu: &Dispatcher,
) -> (Failure, Option<Failure>) {
    match cause {
        ScopeFailure::Body(e) => error_failures(e, cpu, body.clone()),
        ScopeFailure::Child {
            task,
            dispatcher,
            error,
        } => {
            let message = display(&error);
            let dropped = drop_error(error, cpu, &task);
            let failure = Failure::new(dispatcher, task, FailureKind::Error, message);
            (failure, dropped)
        }
        ScopeFailure::Dispatch(e) => (dispatch_failure(e, body.clone()), None),
    }
}

/// A child of a scope dropped before it returned, which ended unseen: its failure, if any,
/// goes to the root handler (cancellations are not failures).
pub(crate) fn lost<E: fmt::Display>(ended: Ended<Result<(), E>>) {
    let Ended {
        info,
        dispatcher,
        result,
    } = ended;
    match result {
        Ok(Ok(())) => {}
        Err(e) if e.is_cancelled() => {}
        Ok(Err(error)) => {
            let (failure, dropped) = error_failures(error, &dispatcher, info);
            dispatcher.report_failure(failure);
            if let Some(dropped) = dropped {
                dispatcher.report_failure(dropped);
            }
        }
        Err(e) => dispatcher.report_failure(dispatch_failure(e, info)),
    }
}

/// Records how a child ended: the first failure is the cause, the others come later;
/// cancellations the scope made are not failures.
pub(crate) fn record<E: fmt::Display>(
    ended: Ended<Result<(), E>>,
    cancelling: bool,
    cause: &mut Option<ScopeFailure<E>>,
    later: &mut Vec<Failure>,
) {
    let Ended {
        info,
        dispatcher,
        result,
    } = ended;
    match result {
        Ok(Ok(())) => {}
        Err(e) if cancelling && e.is_cancelled() => {}
        Ok(Err(error)) if cause.is_none() => {
            *cause = Some(ScopeFailure::Child {
                task: info,
                dispatcher: dispatcher.name().into(),
                error,
            });
        }
        Ok(Err(error)) => {
            let (failure, dropped) = error_failures(error, &dispatcher, info);
            later.push(failure);
            later.extend(dropped);
        }
        Err(e) if cause.is_none() => *cause = Some(ScopeFailure::Dispatch(e)),
        Err(e) => later.push(dispatch_failure(e, info)),
    }
}

/// A dispatcher's error about a child as a [`Failure`], for the failures a scope keeps.
pub(crate) fn dispatch_failure(e: DispatchError, info: TaskInfo) -> Failure {
    let dispatcher: Arc<str> = e.dispatcher().into();
    match e {
        DispatchError::Panicked { task, message, .. } => {
            Failure::new(dispatcher, task, FailureKind::Panic, message)
        }
        other => Failure::new(dispatcher, info, FailureKind::Error, other.to_string()),
    }
}

/// The failures a scope has seen and not yet delivered. Dropped undelivered (the scope's
/// future dropped before it returned, or the body's panic about to resume), they go to the
/// root handler: a failure is never lost.
pub(crate) struct Seen<E: fmt::Display> {
    /// The first failure.
    pub cause: Option<ScopeFailure<E>>,
    /// The failures after it.
    pub later: Vec<Failure>,
    /// The body's panic, when it came first.
    pub panicked: Option<Box<dyn Any + Send>>,
    body: TaskInfo,
    /// The scope's home (`cpu`): reports go through it.
    pub cpu: Dispatcher,
}

impl<E: fmt::Display> Seen<E> {
    pub(crate) fn new(body: TaskInfo, cpu: Dispatcher) -> Self {
        Seen {
            cause: None,
            later: Vec::new(),
            panicked: None,
            body,
            cpu,
        }
    }

    /// The body panicked while it was dropped (cancelled by another failure): counted, and
    /// one of the later failures.
    pub(crate) fn body_panicked_later(&mut self, payload: &(dyn Any + Send)) {
        self.cpu.count_panic();
        self.later.push(body_panic(&self.body, &self.cpu, payload));
    }

    /// Hands the first failure and the later ones to the scope's caller.
    pub(crate) fn deliver(&mut self) -> (Option<ScopeFailure<E>>, Vec<Failure>) {
        (self.cause.take(), std::mem::take(&mut self.later))
    }

    /// Sends everything seen to the root handler (the body's panic too, if it is still here).
    pub(crate) fn report_all(&mut self) {
        if let Some(payload) = self.panicked.take() {
            self.cpu
                .report_failure(body_panic(&self.body, &self.cpu, &*payload));
        }
        if let Some(cause) = self.cause.take() {
            let (failure, dropped) = as_failures(cause, &self.body, &self.cpu);
            self.cpu.report_failure(failure);
            if let Some(dropped) = dropped {
                self.cpu.report_failure(dropped);
            }
        }
        for failure in std::mem::take(&mut self.later) {
            self.cpu.report_failure(failure);
        }
    }
}

impl<E: fmt::Display> Drop for Seen<E> {
    fn drop(&mut self) {
        self.report_all();
    }
}
