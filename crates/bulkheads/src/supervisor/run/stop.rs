//! Stopping: one child (cancel it, wait up to its shutdown timeout, then give up on it), all
//! of them in reverse start order, and giving up when the intensity is exceeded.

use std::future::Future;
use std::time::Duration;

use super::Run;
use super::contain::log;
use super::exit::{Exit, Live, nested_exit, task_exit};
use crate::supervisor::failure::FailureKind;
use crate::supervisor::handle::{ChildState, Outcome, SupervisorError};
use crate::supervisor::spec::bump;

/// Timeouts this long are waited out without a timer (the timer wheel's horizon is shorter).
const FOREVER: Duration = Duration::from_secs(60 * 60 * 24 * 365);

impl Run {
    /// Stops child `j` if it runs: cancels it (async work stops at its next `.await`) and
    /// waits up to its shutdown timeout for it to end, then abandons it (blocking code cannot
    /// be interrupted). A failure it had meanwhile is reported; `restarting` says whether a
    /// group restart will start it again.
    pub(super) async fn stop_child(&mut self, j: usize, restarting: bool) {
        self.slots[j].due = None;
        let Some(live) = self.slots[j].live.take() else {
            return;
        };
        let timeout = self.place.plan.children[j].shutdown;
        let task = self.slots[j].task.clone();
        let exit = match live {
            Live::Task(mut handle) => {
                handle.abort();
                within(timeout, &mut handle)
                    .await
                    .map(|r| task_exit(r, task))
            }
            Live::Nested { handle, mut done } => {
                handle.request_stop();
                within(timeout, done.as_mut())
                    .await
                    .map(|r| nested_exit(r, task))
            }
        };
        match exit {
            Some(Exit::Failed(failed)) => {
                self.report(j, failed, restarting);
                self.set(j, ChildState::Stopped);
            }
            Some(Exit::Normal | Exit::Closed) => self.set(j, ChildState::Stopped),
            None => {
                let child = &self.place.plan.children[j];
                log(|| {
                    tracing::warn!(
                        target: "bulkheads",
                        supervisor = %self.place.path,
                        child = %child.name,
                        "child did not stop within its shutdown timeout of {timeout:?}: abandoned (it may still be running)"
                    )
                });
                self.set(j, ChildState::Abandoned);
            }
        }
    }

    /// Stops every child in reverse start order; pending restarts are dropped.
    pub(super) async fn stop_all(&mut self) {
        for j in (0..self.slots.len()).rev() {
            match self.slots[j].state {
                ChildState::Running => self.stop_child(j, false).await,
                ChildState::Starting | ChildState::Restarting => {
                    self.slots[j].due = None;
                    self.set(j, ChildState::Stopped);
                }
                _ => {}
            }
        }
    }

    /// Too many restarts (child `i` ended `how`): stops every child, counts the escalation
    /// and, at the top, reports it to the root handler; a nested supervisor's parent reports
    /// it as its child's failure instead.
    pub(super) async fn give_up(&mut self, i: usize, how: String) -> Outcome {
        let plan = self.place.plan.clone();
        let err = SupervisorError::GaveUp {
            supervisor: plan.name.clone(),
            max_restarts: plan.intensity.max_restarts,
            period: plan.intensity.period,
            child: plan.children[i].label.clone(),
            last_failure: how,
        };
        log(|| tracing::error!(target: "bulkheads", supervisor = %self.place.path, "{err}"));
        self.stop_all().await;
        bump(&plan.escalations);
        if !self.place.nested {
            self.place.home.report_child_failure(
                self.place.info.clone(),
                FailureKind::Error,
                err.to_string(),
                false,
            );
        }
        Err(err)
    }
}

/// `fut`'s output if it comes within `limit`.
async fn within<F: Future + Unpin>(limit: Duration, fut: F) -> Option<F::Output> {
    if limit >= FOREVER {
        return Some(fut.await);
    }
    tokio::time::timeout(limit, fut).await.ok()
}
