//! Small synchronisation helpers shared by the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning: no critical section in this crate runs user code, so a
/// poisoned lock still guards consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Atomics that loom models (`--cfg bulkheads_loom`) explore; std's otherwise.
pub(crate) mod atomic {
    #[cfg(bulkheads_loom)]
    pub(crate) use loom::sync::atomic::AtomicU8;
    #[cfg(not(bulkheads_loom))]
    pub(crate) use std::sync::atomic::AtomicU8;
}
