//! All-or-nothing scopes: [`Dispatchers::scope`](crate::Dispatchers::scope), Kotlin's
//! `coroutineScope`, Java's `ShutdownOnFailure`, Go's `errgroup`.
//!
//! Invariants: the scope returns only after every child it spawned has ended; the first
//! failure (a child's `Err` or panic, or the body's `Err`) cancels the body and every other
//! child and is what the scope returns, with the failures that came after it attached; a
//! dropped scope cancels its children. Failures go to the caller of the scope, never to the
//! root failure handler: they are observed. The one exception is a panic of the body itself
//! when it comes first: it resumes in the caller (as inline code's panic would), and the
//! failures the children had meanwhile go to the root handler rather than nowhere. Two more
//! reach the root handler because no caller will see them: those of a scope dropped before it
//! returned, and a panic in the `Drop` of a cancelled child's work (the child itself ends as
//! cancelled; its task reports the panic). The error types and the recording of failures are
//! `scope_error.rs`.

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::children::{Child, Watch};
use super::scope_error::{ScopeError, ScopeFailure, Seen, lost, record};
use crate::dispatcher::handle::Dispatcher;
use crate::dispatcher::join::JoinHandle;
use crate::dispatcher::task::id::{TaskId, TaskInfo};
use crate::dispatcher::task_builder::TaskBuilder;
use crate::registry::Dispatchers;

/// The handle a scope's body spawns children with; see [`Dispatchers::scope`]. Cheap to clone;
/// clones may be moved into the scope's children, which may spawn siblings.
pub struct Scope<E> {
    children: Arc<super::children::Children<Result<(), E>>>,
    cpu: Dispatcher,
}

impl<E> Clone for Scope<E> {
    // Not derived: `E` need not be `Clone`, and a clone shares the scope.
    fn clone(&self) -> Self {
        Scope {
            children: self.children.clone(),
            cpu: self.cpu.clone(),
        }
    }
}

impl<E> fmt::Debug for Scope<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("path", &self.children.path)
            .finish()
    }
}

/// A child of a scope, awaited by the scope's body: resolves to `Ok` with the child's value.
///
/// Its output is the child's own `Result<T, E>`, so the body reads as code awaiting the
/// child's future would (`a.await?`). A child that fails (its `Err` or a panic) cancels the
/// body before the body can see the failure, and the scope returns it as its
/// [`ScopeError`]: inside the body, the `Err` branch is never taken (the error type need not
/// be `Clone`, and the scope keeps it). Await a `ScopeTask` only inside its scope's body or
/// its children: elsewhere, a failed child's task never resolves. Dropping it does not cancel
/// the child (the scope watches it).
///
/// ```
/// # #[tokio::main] async fn main() {
/// # let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(2).build().unwrap();
/// let (a, b) = dispatchers
///     .scope(|s| async move {
///         let a = s.spawn(async { Ok::<_, String>(20) });
///         let b = s.spawn(async { Ok::<_, String>(22) });
///         Ok::<_, String>((a.await?, b.await?))
///     })
///     .await
///     .unwrap();
/// assert_eq!(a + b, 42);
/// # }
/// ```
pub struct ScopeTask<T, E> {
    /// `None` once it has answered.
    value: Option<oneshot::Receiver<T>>,
    /// The child's error type (never sent here: the scope keeps the error). `fn() -> E`, so
    /// that the task is `Send` and `Sync` whatever `E` is.
    error: PhantomData<fn() -> E>,
}

impl<T, E> ScopeTask<T, E> {
    fn new(value: oneshot::Receiver<T>) -> Self {
        ScopeTask {
            value: Some(value),
            error: PhantomData,
        }
    }
}

impl<T, E> fmt::Debug for ScopeTask<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeTask")
    }
}

// Not structural: the receiver is `Unpin`, and `E` is only a marker.
impl<T, E> Unpin for ScopeTask<T, E> {}

impl<T, E> Future for ScopeTask<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        // A receiver that has answered must not be polled again (Tokio's oneshot panics).
        let Some(value) = self.value.as_mut() else {
            return Poll::Pending;
        };
        match Pin::new(value).poll(cx) {
            Poll::Ready(Ok(value)) => {
                self.value = None;
                Poll::Ready(Ok(value))
            }
            // Failed or cancelled: the scope is cancelling the body that awaits this, and may
            // poll the body again before it does; this handle stays pending from now on.
            Poll::Ready(Err(_)) => {
                self.value = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<E: fmt::Display + Send + 'static> Scope<E> {
    /// The scope's path, the parent of its children in failure reports (`scope #12`).
    pub fn path(&self) -> &str {
        &self.children.path
    }

    /// Spawns a child on the registry's `cpu` pool.
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> ScopeTask<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let cpu = self.cpu.clone();
        self.spawn_on(&cpu, fut)
    }

    /// Spawns a child on `dispatcher`.
    ///
    /// # Panics
    ///
    /// If the scope has already returned (a `Scope` kept beyond its body): its children would
    /// be watched by nobody.
    #[track_caller]
    pub fn spawn_on<T, F>(&self, dispatcher: &Dispatcher, fut: F) -> ScopeTask<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, value) = oneshot::channel();
        let child = async move {
            let t = fut.await?;
            // A body that stopped waiting is no failure.
            let _ = tx.send(t);
            Ok(())
        };
        self.add(dispatcher, Location::caller(), |b| b.spawn(child));
        ScopeTask::new(value)
    }

    /// Spawns a blocking closure as a child on `dispatcher`.
    ///
    /// # Panics
    ///
    /// As [`spawn_on`](Self::spawn_on).
    #[track_caller]
    pub fn spawn_blocking_on<T, F>(&self, dispatcher: &Dispatcher, f: F) -> ScopeTask<T, E>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, value) = oneshot::channel();
        let child = move || {
            let t = f()?;
            let _ = tx.send(t);
            Ok(())
        };
        self.add(dispatcher, Location::caller(), |b| b.spawn_blocking(child));
        ScopeTask::new(value)
    }

    fn add(
        &self,
        dispatcher: &Dispatcher,
        location: &'static Location<'static>,
        spawn: impl FnOnce(TaskBuilder<'_>) -> JoinHandle<Result<(), E>>,
    ) {
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
        let mut info = TaskInfo::new(handle.id(), None, location);
        info.parent = Some(self.children.path.clone());
        let child = Child {
            handle,
            info,
            dispatcher: dispatcher.clone(),
        };
        if let Err(child) = self.children.add(child) {
            // Closed between the check and the add (the scope is failing or done): cancel it.
            child.handle.abort();
        }
    }
}

impl Dispatchers {
    /// Runs `body` in an all-or-nothing scope (Kotlin's `coroutineScope`): children spawned
    /// with the [`Scope`] it is given (`s.spawn(..)` on `cpu`, `s.spawn_on(&d, ..)` on any
    /// dispatcher) run concurrently; the first failure — a child's `Err` or panic, or the
    /// body's `Err` — cancels the body and every other child, and the scope returns it as a
    /// [`ScopeError`] once every child has ended, with later failures attached. Otherwise it
    /// returns the body's value once every child has ended. Dropping the returned future
    /// cancels every child: none is left running unwatched (a blocking closure already running
    /// cannot be interrupted; it is abandoned, as with `abort`).
    ///
    /// A panic in the body cancels every child too; once they have ended, the panic resumes in
    /// the scope's caller, as it would have in code awaited inline (failures the children had
    /// by then go to the root handler). A body that panics while it is being cancelled by
    /// another failure (in a `Drop`) is one of the scope's `later` failures, as is a panic in
    /// the `Drop` of a later child's error, which the scope drops. A scope dropped before it
    /// returns hands the failures it had seen to the root handler, and so do the children
    /// that failed and were not seen yet, or that fail as they are being cancelled (async
    /// work that returns an `Err` before the `.await` where it stops; a running blocking
    /// closure is abandoned at once and its result dropped; nothing is reported once the
    /// registry has shut down).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// # let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(2).build().unwrap();
    /// let cpu = dispatchers.cpu();
    /// let sum = dispatchers
    ///     .scope(|s| async move {
    ///         let a = s.spawn_on(&cpu, async { Ok::<_, String>(20) });
    ///         let b = s.spawn(async { Ok(22) });
    ///         Ok::<_, String>(a.await? + b.await?)
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(sum, 42);
    ///
    /// let failed = dispatchers
    ///     .scope(|s| async move {
    ///         s.spawn(async { Err::<(), _>("no such file".to_owned()) });
    ///         std::future::pending::<Result<(), String>>().await // cancelled by the failure
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(failed.to_string().ends_with("failed: no such file"), "{failed}");
    /// # }
    /// ```
    #[track_caller]
    pub fn scope<T, E, F, Fut>(
        &self,
        body: F,
    ) -> impl Future<Output = Result<T, ScopeError<E>>> + use<T, E, F, Fut>
    where
        F: FnOnce(Scope<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + Send + 'static,
    {
        let location = Location::caller();
        let cpu = self.cpu();
        let id = cpu.next_scope_id();
        let path: Arc<str> = format!("scope #{id}").into();
        let mut body_info = TaskInfo::new(TaskId(id), Some("body".into()), location);
        body_info.parent = Some(path.clone());
        let watch: Watch<Result<(), E>> = Watch::new(path, cpu.clone(), lost::<E>);
        let scope = Scope {
            children: watch.children.clone(),
            cpu: cpu.clone(),
        };
        run_scope(watch, body(scope), body_info, cpu)
    }
}

/// The scope's loop: children first, then the body, until both are done.
///
/// A panic of the body (in a poll, or while it is dropped, finished or cancelled) is contained
/// here. After another failure it is one of the `later` failures. As the first failure it
/// cancels the children, and once they have ended it resumes in the scope's caller, as a panic
/// of code awaited inline would; failures the children had by then go to the root handler.
async fn run_scope<T, E, Fut>(
    mut watch: Watch<Result<(), E>>,
    body: Fut,
    body_info: TaskInfo,
    cpu: Dispatcher,
) -> Result<T, ScopeError<E>>
where
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display + Send + 'static,
{
    let mut body = Some(Box::pin(body));
    let mut value: Option<T> = None;
    // Failures seen so far; reported to the root handler if the scope is dropped before it
    // returns them (a timeout around it, its task aborted), never lost.
    let mut seen = Seen::new(body_info, cpu);
    let mut cancelled = false;
    poll_fn(|cx| {
        loop {
            // Children first: a failure cancels the body before it can poll a failed
            // child's task.
            let mut progressed = false;
            while let Poll::Ready(Some(ended)) = watch.poll_ended(cx) {
                progressed = true;
                let failing = seen.cause.is_some() || seen.panicked.is_some();
                record(ended, failing, &mut seen.cause, &mut seen.later);
            }
            // A failure cancels the body and every other child, also when the body has
            // already returned its value.
            if seen.cause.is_some() && !cancelled {
                cancelled = true;
                if let Some(b) = body.take() {
                    // Dropped: the body is cancelled. Its `Drop` may panic too.
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(b))) {
                        seen.body_panicked_later(&*payload);
                    }
                }
                watch.cancel_all();
                continue;
            }
            if let Some(b) = body.as_mut() {
                match catch_unwind(AssertUnwindSafe(|| b.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => {}
                    Ok(Poll::Ready(out)) => {
                        progressed = true;
                        // The finished body is dropped: its `Drop` may panic.
                        let dropped = body
                            .take()
                            .and_then(|b| catch_unwind(AssertUnwindSafe(move || drop(b))).err());
                        match out {
                            Ok(t) => value = Some(t),
                            Err(e) => {
                                seen.cause = Some(ScopeFailure::Body(e));
                                cancelled = true;
                                watch.cancel_all();
                            }
                        }
                        match dropped {
                            None => {}
                            Some(payload) if seen.cause.is_some() => {
                                seen.body_panicked_later(&*payload);
                            }
                            // The body's first failure: as a panic in its poll.
                            Some(payload) => {
                                seen.cpu.count_panic();
                                cancelled = true;
                                watch.cancel_all();
                                seen.panicked = Some(payload);
                            }
                        }
                    }
                    Err(payload) => {
                        progressed = true;
                        cancelled = true;
                        seen.cpu.count_panic();
                        if let Some(b) = body.take() {
                            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(b))) {
                                seen.body_panicked_later(&*again);
                            }
                        }
                        watch.cancel_all();
                        seen.panicked = Some(payload);
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
    // Nothing can be spawned any more.
    watch.cancel_all();
    if let Some(payload) = seen.panicked.take() {
        // The body's panic came first (a failure before it would have cancelled the body):
        // what the children had goes to the root handler, the panic to the caller.
        seen.report_all();
        std::panic::resume_unwind(payload);
    }
    let (cause, later) = seen.deliver();
    match (cause, value) {
        (Some(cause), _) => Err(ScopeError { cause, later }),
        (None, Some(value)) => Ok(value),
        // The body ended without a value only by failing or panicking, handled above.
        (None, None) => unreachable!("a scope's body ended without a value or a failure"),
    }
}
