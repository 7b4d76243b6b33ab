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

/// Starts a named OS thread. Every thread the library owns starts here, so that a test can
/// make the operating system "refuse" the n-th one (see `refuse_thread_after`).
pub(crate) fn spawn_thread(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    #[cfg(test)]
    if refusal::refuse_now() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "refused by the test (Resource temporarily unavailable)",
        ));
    }
    std::thread::Builder::new().name(name).spawn(f)
}

#[cfg(test)]
pub(crate) mod refusal {
    use std::cell::Cell;

    thread_local! {
        static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// On this thread, let `n` more threads start, then refuse.
    pub(crate) fn refuse_thread_after(n: usize) {
        LEFT.with(|l| l.set(Some(n)));
    }

    pub(super) fn refuse_now() -> bool {
        LEFT.with(|l| match l.get() {
            Some(0) => true,
            Some(n) => {
                l.set(Some(n - 1));
                false
            }
            None => false,
        })
    }
}
