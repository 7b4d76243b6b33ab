//! Per-task async backtraces (the `await-tree` feature): which `.await` each live task is
//! parked on, for dumps.
//!
//! A registry owns one [`Trees`] (in `registry/shared.rs`). The spawn path hands every task's
//! work to [`Trees::instrument`] once: async work gets a tree rooted in a span naming the task
//! and keyed by its [`TaskId`], which the work's own `.instrument_await("...")` futures fill in
//! as they are polled; blocking closures (one poll, no `.await`) are left alone. The tree lives
//! as long as the work: the runner drops the work when the task ends, and the tree goes with
//! it. A dump renders the tree of each task it finds ([`Trees::render`]).
//!
//! Cost: `await-tree`'s registry is one hash map of weak references behind a lock, written once
//! per async task (three small allocations with it). Measured at about 2.3 µs per task on a fan-out
//! of 100k no-op tasks over a view (see the feature's docs in `lib.rs`); a dump reads one entry
//! per task (a read lock and a copy of the tree each), never the whole map under one lock.
//!
//! Without the feature `Trees` is empty, `instrument` returns the work itself (the same type,
//! so the same code as before) and `render` finds nothing.

use std::future::Future;

use crate::dispatcher::task::id::{TaskId, TaskInfo};

/// The async backtraces of one registry's tasks, keyed by task id.
pub(crate) struct Trees {
    #[cfg(feature = "await-tree")]
    registry: await_tree::Registry,
}

impl Trees {
    pub(crate) fn new() -> Self {
        Trees {
            #[cfg(feature = "await-tree")]
            registry: await_tree::Registry::new(await_tree::Config::default()),
        }
    }

    /// The work of a task as it runs: rooted in its own tree when `asynchronous` (and the
    /// feature is on), otherwise untouched.
    #[cfg(feature = "await-tree")]
    pub(crate) fn instrument<F>(
        &self,
        info: &TaskInfo,
        asynchronous: bool,
        work: F,
    ) -> impl Future<Output = F::Output> + Send + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        use futures_util::future::Either;
        if !asynchronous {
            return Either::Right(work);
        }
        let root = match &info.name {
            Some(name) => self.registry.register(info.id, &**name),
            None => self
                .registry
                .register(info.id, await_tree::span!("task {}", info.id)),
        };
        Either::Left(root.instrument(work))
    }

    /// The work of a task as it runs: the work itself (the `await-tree` feature is off).
    #[cfg(not(feature = "await-tree"))]
    #[inline(always)]
    pub(crate) fn instrument<F>(
        &self,
        _info: &TaskInfo,
        _asynchronous: bool,
        work: F,
    ) -> impl Future<Output = F::Output> + Send + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        work
    }

    /// The tree of task `id` now, rendered (one line per span, children indented by two
    /// spaces, each with the time since it was first polled); `None` for a task without one
    /// (blocking work, a caller waiting for admission, a task that has ended, or the feature
    /// off).
    #[cfg(feature = "await-tree")]
    pub(crate) fn render(&self, id: TaskId) -> Option<String> {
        let tree = self.registry.get(id)?;
        let mut text = tree.to_string();
        text.truncate(text.trim_end().len());
        Some(text)
    }

    /// No tree: the `await-tree` feature is off.
    #[cfg(not(feature = "await-tree"))]
    #[inline(always)]
    pub(crate) fn render(&self, _id: TaskId) -> Option<String> {
        None
    }
}
