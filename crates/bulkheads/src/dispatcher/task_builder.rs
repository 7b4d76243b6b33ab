//! The four calls, once: [`TaskBuilder`] carries an optional name, and every call of
//! [`Dispatcher`](crate::Dispatcher) goes through it. `#[track_caller]` all the way down keeps the user's call site
//! as the spawn site.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use super::join::JoinHandle;
use super::running::Running;
use super::spawn::{DispatcherCore, Meta};
use super::task::cell::WorkKind;
use super::task::runner::ClosureFuture;
use crate::error::{DispatchError, RejectReason};

/// A task about to be submitted with a name; see
/// [`Dispatcher::task`](crate::Dispatcher::task). Offers the same four calls as
/// [`Dispatcher`](crate::Dispatcher).
pub struct TaskBuilder<'a> {
    core: &'a Arc<DispatcherCore>,
    name: Option<Cow<'static, str>>,
    /// The scope or supervisor path the task belongs to (set by scopes and supervisors).
    parent: Option<Arc<str>>,
    /// The spawn site, when the caller knows it better than `#[track_caller]` can (a scope's
    /// spawn, whose caller's site passes through a closure).
    location: Option<&'static Location<'static>>,
}

impl fmt::Debug for TaskBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("dispatcher", self.core.name())
            .field("name", &self.name)
            .finish()
    }
}

impl<'a> TaskBuilder<'a> {
    pub(crate) fn new(core: &'a Arc<DispatcherCore>, name: Option<Cow<'static, str>>) -> Self {
        TaskBuilder {
            core,
            name,
            parent: None,
            location: None,
        }
    }

    /// Records `location` as the spawn site.
    pub(crate) fn at(mut self, location: &'static Location<'static>) -> Self {
        self.location = Some(location);
        self
    }

    /// Marks the task as a child of the scope or supervisor at `path`.
    pub(crate) fn in_parent(mut self, path: Arc<str>) -> Self {
        self.parent = Some(path);
        self
    }

    /// [`Dispatcher::spawn`](crate::Dispatcher::spawn) with this task's name.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_work(WorkKind::Async, fut)
    }

    /// [`Dispatcher::spawn_blocking`](crate::Dispatcher::spawn_blocking) with this task's name.
    #[track_caller]
    pub fn spawn_blocking<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_work(WorkKind::Blocking, ClosureFuture::new(f))
    }

    /// [`Dispatcher::run`](crate::Dispatcher::run) with this task's name.
    #[track_caller]
    pub fn run<F>(
        self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, DispatchError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.run_work(WorkKind::Async, fut)
    }

    /// [`Dispatcher::run_blocking`](crate::Dispatcher::run_blocking) with this task's name.
    #[track_caller]
    pub fn run_blocking<F, T>(
        self,
        f: F,
    ) -> impl Future<Output = Result<T, DispatchError>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_work(WorkKind::Blocking, ClosureFuture::new(f))
    }

    #[track_caller]
    fn meta(&self) -> Meta {
        // Not `unwrap_or_else(Location::caller)`: through a function pointer, `#[track_caller]`
        // would report the call site inside `Option`, not the user's.
        let location = match self.location {
            Some(location) => location,
            None => Location::caller(),
        };
        let mut meta = self.core.meta(self.name.clone(), location);
        meta.info.parent = self.parent.clone();
        meta
    }

    #[track_caller]
    fn spawn_work<F>(self, work: WorkKind, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let core = self.core;
        let meta = self.meta();
        let id = meta.info.id;
        match core.try_admit(&meta) {
            Ok(slot) => {
                let (id, task) = core.spawn(meta, work, fut, slot);
                JoinHandle::attached(id, task)
            }
            Err(reason) => JoinHandle::rejected(id, core.rejection(reason)),
        }
    }

    #[track_caller]
    fn run_work<F>(
        self,
        work: WorkKind,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, DispatchError>> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = self.meta();
        let core = self.core.clone();
        async move {
            if core.runs_inline() {
                if core.admission.is_closed() {
                    let reason = RejectReason::ShuttingDown;
                    core.accounts.rejected(&meta.info, &reason);
                    return Err(core.rejection(reason));
                }
                let ((id, task), runner) = core.spawn_inline(meta, work, fut);
                // Never queued, so no deadline to arm.
                let running = Running::inline(JoinHandle::attached(id, task));
                runner.await;
                return running.await;
            }
            match core.admit(&meta, work == WorkKind::Blocking).await {
                Ok(slot) => {
                    let (id, task) = core.spawn(meta, work, fut, slot);
                    Running::new(JoinHandle::attached(id, task), &core.shared.control).await
                }
                Err(reason) => Err(core.rejection(reason)),
            }
        }
    }
}
