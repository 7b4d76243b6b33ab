//! Who a task is: its id, its name and where it was spawned. The lowest floor of the crate:
//! errors and failures name tasks with these, so this file imports nothing from the crate.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A task's identity, unique within its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who a task is: id, optional name, and where it was spawned. Shown in errors and failure
/// reports as `task 'name' (#42, spawned at src/main.rs:10:5)`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The name given with [`Dispatcher::task`](crate::Dispatcher::task), if any.
    pub name: Option<Cow<'static, str>>,
    /// The spawn site.
    pub location: &'static Location<'static>,
    /// The scope or supervisor the task belongs to, as a path (`supervisor 'ingest'/child
    /// 'poller'`, `scope #12`); `None` for a task spawned on its own.
    pub parent: Option<Arc<str>>,
}

impl TaskInfo {
    pub(crate) fn new(
        id: TaskId,
        name: Option<Cow<'static, str>>,
        location: &'static Location<'static>,
    ) -> Self {
        TaskInfo {
            id,
            name,
            location,
            parent: None,
        }
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location;
        match &self.name {
            Some(name) => write!(
                f,
                "task '{name}' ({}, spawned at {}:{}:{})",
                self.id,
                loc.file(),
                loc.line(),
                loc.column()
            )?,
            None => write!(
                f,
                "task {} (spawned at {}:{}:{})",
                self.id,
                loc.file(),
                loc.line(),
                loc.column()
            )?,
        }
        match &self.parent {
            Some(parent) => write!(f, " in {parent}"),
            None => Ok(()),
        }
    }
}

/// Hands out the task ids of one registry.
#[derive(Debug)]
pub(crate) struct TaskIds(AtomicU64);

impl TaskIds {
    pub(crate) fn new() -> Self {
        TaskIds(AtomicU64::new(1))
    }

    pub(crate) fn next(&self) -> TaskId {
        // Relaxed: uniqueness needs atomicity only. One shared counter: ids grow in submission
        // order across threads, which dumps and logs read naturally.
        TaskId(self.0.fetch_add(1, Ordering::Relaxed))
    }
}
