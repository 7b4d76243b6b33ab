//! Supervisor scopes: [`Dispatchers::supervisor_scope`](crate::Dispatchers::supervisor_scope),
//! Kotlin's `supervisorScope`.
//!
//! Invariants: a child's failure (its `Err` or panic) is reported to the root failure handler
//! once and recorded in the report, and its siblings go on; the body's own failure (a panic)
//! cancels the children; the scope returns only after every child has ended; a dropped scope
//! cancels its children.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Arc;
use std::task::Poll;

use super::children::{Child, Children, Ended, Watch};
use super::failure::{Failure, FailureKind};
use super::outcome::ChildResult;
use super::scope_error::dispatch_failure;
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::task::id::{TaskId, TaskInfo};
use crate::error::panic_message;
use crate::registry::Dispatchers;

/// What a supervisor scope did; see [`Dispatchers::supervisor_scope`].
///
/// `T` is the body's value; it defaults to `()`, the usual body that only spawns children, so
/// `SupervisorReport` alone names that report.
#[derive(Debug)]
#[non_exhaustive]
pub struct SupervisorReport<T = ()> {
    /// The body's value; `None` when the body panicked in a poll (its panic is in `failed`).
    pub value: Option<T>,
    /// Children that ended successfully.
    pub ok: usize,
    /// Children that failed (each also went to the root failure handler), in the order they
    /// ended, then the body's panic if it panicked.
    pub failed: Vec<Failure>,
    /// Children cancelled because the body failed.
    pub cancelled: usize,
}

/// The handle a supervisor scope's body spawns children with; see
/// [`Dispatchers::supervisor_scope`]. Cheap to clone.
#[derive(Clone)]
pub struct SupervisorScope {
    children: Arc<Children<Option<String>>>,
    cpu: Dispatcher,
}

impl fmt::Debug for SupervisorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorScope")
            .field("path", &self.children.path)
            .finish()
    }
}

impl SupervisorScope {
    /// The scope's path, the parent of its children in failure reports
    /// (`supervisor scope #12`).
    pub fn path(&self) -> &str {
        &self.children.path
    }

    /// Spawns a child on the registry's `cpu` pool. A child returns `()` or
    /// `Result<T, E: Display>` (see [`ChildResult`]); an `Err` or a panic is its failure.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> TaskId
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        let cpu = self.cpu.clone();
        self.spawn_on(&cpu, fut)
    }

    /// Spawns a child on `dispatcher`.
    ///
    /// # Panics
    ///
    /// If the scope has already returned (a `SupervisorScope` kept beyond its body).
    #[track_caller]
    pub fn spawn_on<F>(&self, dispatcher: &Dispatcher, fut: F) -> TaskId
    where
        F: Future + Send + 'static,
        F::Output: ChildResult,
    {
        let location = Location::caller();
        self.add(dispatcher, location, |b| {
            b.spawn(async move { fut.await.error() })
        })
    }

    /// Spawns a blocking closure as a child on `dispatcher`.
    ///
    /// # Panics
    ///
    /// As [`spawn_on`](Self::spawn_on).
    #[track_caller]
    pub fn spawn_blocking_on<F, R>(&self, dispatcher: &Dispatcher, f: F) -> TaskId
    where
        F: FnOnce() -> R + Send + 'static,
        R: ChildResult,
    {
        let location = Location::caller();
        self.add(dispatcher, location, |b| {
            b.spawn_blocking(move || f().error())
        })
    }

    fn add(
        &self,
        dispatcher: &Dispatcher,
        location: &'static Location<'static>,
        spawn: impl FnOnce(
            crate::dispatcher::task_builder::TaskBuilder<'_>,
        ) -> crate::dispatcher::join::JoinHandle<Option<String>>,
    ) -> TaskId {
        assert!(
            !self.children.is_closed(),
            "bulkheads: a child was spawned on {} after the scope returned; spawn children only while the scope's body runs",
            self.children.path
        );
        let handle = spawn(
            dispatcher
                .child(None, self.children.path.clone())
                .at(location),
        );
        let id = handle.id();
        let mut info = TaskInfo::new(id, None, location);
        info.parent = Some(self.children.path.clone());
        let child = Child {
            handle,
            info,
            dispatcher: dispatcher.clone(),
        };
        if let Err(child) = self.children.add(child) {
            child.handle.abort();
        }
        id
    }
}

impl Dispatchers {
    /// Runs `body` in a supervisor scope (Kotlin's `supervisorScope`): children spawned with
    /// the [`SupervisorScope`] it is given run concurrently, and a child's failure (an `Err`
    /// or a panic) goes to the root failure handler, once, while its siblings go on. The
    /// body's own failure (a panic) cancels the children. The scope returns once the body and
    /// every child have ended, with a [`SupervisorReport`] of what succeeded and what failed.
    /// Dropping the returned future cancels every child; a child that had failed unseen by
    /// then, or fails as it is cancelled (as with [`Dispatchers::scope`]), still goes to the
    /// root handler.
    ///
    /// A panic of the body, in a poll or in its `Drop`, is contained: counted in
    /// `bulkheads_failures_total` and listed in the report's `failed` (the latter as
    /// `"<message> (while dropping the scope's body)"`), and it cancels the children.
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let dispatchers = bulkheads::Dispatchers::builder()
    /// #     .cpu_threads(2)
    /// #     .on_failure(|_| {})
    /// #     .build()
    /// #     .unwrap();
    /// let report = dispatchers
    ///     .supervisor_scope(|s| async move {
    ///         for job in 0..4 {
    ///             s.spawn(async move {
    ///                 if job == 2 { Err(format!("job {job} failed")) } else { Ok(()) }
    ///             });
    ///         }
    ///     })
    ///     .await;
    /// assert_eq!(report.ok, 3);
    /// assert_eq!(report.failed.len(), 1);
    /// assert_eq!(report.failed[0].message, "job 2 failed");
    /// # }
    /// ```
    #[track_caller]
    pub fn supervisor_scope<T, F, Fut>(
        &self,
        body: F,
    ) -> impl Future<Output = SupervisorReport<T>> + use<T, F, Fut>
    where
        F: FnOnce(SupervisorScope) -> Fut,
        Fut: Future<Output = T>,
    {
        let location = Location::caller();
        let cpu = self.cpu();
        let id = cpu.next_scope_id();
        let path: Arc<str> = format!("supervisor scope #{id}").into();
        let mut watch: Watch<Option<String>> = Watch::new(path.clone(), cpu.clone(), lost);
        let scope = SupervisorScope {
            children: watch.children.clone(),
            cpu: cpu.clone(),
        };
        let body = body(scope);
        async move {
            let mut body = Some(Box::pin(body));
            let mut report = SupervisorReport {
                value: None,
                ok: 0,
                failed: Vec::new(),
                cancelled: 0,
            };
            let mut body_failed = false;
            poll_fn(|cx| {
                loop {
                    let mut progressed = false;
                    while let Poll::Ready(Some(ended)) = watch.poll_ended(cx) {
                        progressed = true;
                        record(ended, body_failed, &mut report);
                    }
                    if let Some(b) = body.as_mut() {
                        let polled = catch_unwind(AssertUnwindSafe(|| b.as_mut().poll(cx)));
                        if polled.is_err() || matches!(polled, Ok(Poll::Ready(_))) {
                            progressed = true;
                            // Done or failed, the body is dropped: its `Drop` may panic too.
                            let dropped = body.take().and_then(|b| {
                                catch_unwind(AssertUnwindSafe(move || drop(b))).err()
                            });
                            let mut panics = Vec::new();
                            match polled {
                                Ok(Poll::Ready(value)) => report.value = Some(value),
                                Err(payload) => panics.push((payload, "")),
                                Ok(Poll::Pending) => {}
                            }
                            if let Some(payload) = dropped {
                                panics.push((payload, " (while dropping the scope's body)"));
                            }
                            for (payload, context) in &panics {
                                cpu.count_panic();
                                let mut task =
                                    TaskInfo::new(TaskId(id), Some("body".into()), location);
                                task.parent = Some(path.clone());
                                report.failed.push(Failure::new(
                                    cpu.name().into(),
                                    task,
                                    FailureKind::Panic,
                                    format!("{}{context}", panic_message(&**payload)),
                                ));
                            }
                            if !panics.is_empty() && !body_failed {
                                body_failed = true;
                                watch.cancel_all();
                            }
                        }
                    }
                    if body.is_none() && watch.is_empty() {
                        return Poll::Ready(());
                    }
                    if !progressed {
                        return Poll::Pending;
                    }
                }
            })
            .await;
            watch.cancel_all();
            report
        }
    }
}

/// A child of a supervisor scope dropped before it returned, which ended unseen: its failure,
/// if any, goes to the root handler (cancellations are not failures).
fn lost(ended: Ended<Option<String>>) {
    let mut unseen = SupervisorReport {
        value: None::<()>,
        ok: 0,
        failed: Vec::new(),
        cancelled: 0,
    };
    record(ended, true, &mut unseen);
}

/// Records how a child ended; a failure goes to the root handler as well.
fn record(
    ended: Ended<Option<String>>,
    cancelling: bool,
    report: &mut SupervisorReport<impl Sized>,
) {
    let Ended {
        info,
        dispatcher,
        result,
    } = ended;
    let failure = match result {
        Ok(None) => {
            report.ok += 1;
            return;
        }
        Err(e) if cancelling && e.is_cancelled() => {
            report.cancelled += 1;
            return;
        }
        Ok(Some(message)) => {
            Failure::new(dispatcher.name().into(), info, FailureKind::Error, message)
        }
        Err(e) => dispatch_failure(e, info),
    };
    dispatcher.report_child_failure(
        failure.task.clone(),
        failure.kind,
        failure.message.clone(),
        false,
    );
    report.failed.push(failure);
}
