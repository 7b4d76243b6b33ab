//! What a registry shares with each of its dispatchers: task ids, the control runtime, and
//! the scopes running now. Low in the crate (it names no dispatcher), so that the
//! spawn path can hold it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

use crate::dispatcher::task::id::TaskIds;
use crate::sync::lock;

pub(crate) struct Shared {
    pub ids: TaskIds,
    /// The control runtime: its clock measures admission waits and shutdown deadlines, and
    /// its drivers serve work pinned to blocking pools.
    pub control: Handle,
    /// Paths of the scopes running now: a task whose scope is not among them outlived it.
    open_scopes: Mutex<BTreeSet<Arc<str>>>,
}

impl Shared {
    pub(crate) fn new(control: Handle) -> Arc<Self> {
        Arc::new(Shared {
            ids: TaskIds::new(),
            control,
            open_scopes: Mutex::new(BTreeSet::new()),
        })
    }

    pub(crate) fn scope_opened(&self, path: &Arc<str>) {
        lock(&self.open_scopes).insert(path.clone());
    }

    pub(crate) fn scope_closed(&self, path: &Arc<str>) {
        lock(&self.open_scopes).remove(path);
    }

    pub(crate) fn open_scopes(&self) -> Vec<Arc<str>> {
        lock(&self.open_scopes).iter().cloned().collect()
    }
}
