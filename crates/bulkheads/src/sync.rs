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

/// The shard of the calling thread among `shards`: threads are spread round-robin as they
/// first ask, so a thread keeps its shard (and its cache lines) for its whole life.
pub(crate) fn thread_shard(shards: usize) -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A process-wide counter of threads, not state of any registry.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut n = i.get();
        if n == usize::MAX {
            n = NEXT.fetch_add(1, Ordering::Relaxed);
            i.set(n);
        }
        n % shards
    })
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

/// Threads report that they run, and a starter waits until enough have: a pool or a runtime
/// returns from its start once every thread exists (and carries its OS name), so that
/// `Stats::threads` and the operating system agree from the first instant.
pub(crate) fn arrivals() -> (Arrival, Arrivals) {
    let (tx, rx) = std::sync::mpsc::channel();
    (Arrival(Mutex::new(tx)), Arrivals(rx))
}

/// What a starting thread holds to report that it runs. Cloned once per thread.
pub(crate) struct Arrival(Mutex<std::sync::mpsc::Sender<()>>);

impl Arrival {
    pub(crate) fn arrive(&self) {
        let _ = lock(&self.0).send(());
    }
}

impl Clone for Arrival {
    // A `Sender` behind a lock (so `Arrival` is `Sync`, as Tokio's thread hooks need): the
    // clone is a new sender of the same channel, not a shared one.
    fn clone(&self) -> Self {
        Arrival(Mutex::new(lock(&self.0).clone()))
    }
}

/// The starter's side of [`arrivals`].
pub(crate) struct Arrivals(std::sync::mpsc::Receiver<()>);

impl Arrivals {
    /// Waits for `n` arrivals, or until every `Arrival` is dropped (a thread died before it
    /// reported: nothing more to wait for). Returns how many arrived.
    pub(crate) fn wait(self, n: usize) -> usize {
        (0..n).take_while(|_| self.0.recv().is_ok()).count()
    }
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

    /// Held by the unit tests that start registries: one of them counts the process's
    /// threads by name, so they must not overlap.
    pub(crate) static REGISTRIES: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Takes [`REGISTRIES`] (a failed test that held it does not poison the others).
    pub(crate) fn one_registry_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        REGISTRIES.lock().unwrap_or_else(|e| e.into_inner())
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
