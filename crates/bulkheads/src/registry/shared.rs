//! What a registry shares with each of its dispatchers: task ids and the control runtime. Low in the crate (it names no dispatcher), so that the
//! spawn path can hold it.

use std::sync::Arc;

use tokio::runtime::Handle;

use crate::dispatcher::task::id::TaskIds;

pub(crate) struct Shared {
    pub ids: TaskIds,
    /// The control runtime: its clock measures admission waits and shutdown deadlines, and
    /// its drivers serve work pinned to blocking pools.
    pub control: Handle,
}

impl Shared {
    pub(crate) fn new(control: Handle) -> Arc<Self> {
        Arc::new(Shared {
            ids: TaskIds::new(),
            control,
        })
    }
}
