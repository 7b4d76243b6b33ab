//! The control thread of a registry: a current-thread Tokio runtime driven by one OS thread,
//! `bulkheads-ctl`, that runs none of the library's users' tasks.
//!
//! It drives the library's own timers (`max_wait`, the shutdown deadline, the live set's
//! upkeep) and the IO and time drivers of work pinned to blocking pools: a pool thread drives a
//! pinned future with this runtime's `Handle::block_on`, whose timers and sockets this thread
//! serves, and closures on pools run with this runtime entered. A saturated `cpu` pool or any
//! busy dispatcher therefore never delays another dispatcher's rejection, deadline or timers.
//!
//! Caveat, documented for users: a task spawned with `tokio::spawn` from inside work pinned to
//! a pool lands on this runtime, because that is the runtime current there. Spawn such tasks
//! on a dispatcher instead; the control thread warns when it finds tasks of others on it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::sync::lock;

/// The control thread's name (Linux shows 15 characters).
pub(crate) const THREAD_NAME: &str = "bulkheads-ctl";
/// Threads of the control runtime's own Tokio blocking pool (`tokio::fs` and `spawn_blocking`
/// called from work pinned to a pool): bounded, named `bulkheads-ctl-b`.
pub(crate) const BLOCKING_THREADS: usize = 8;
/// How often the control thread tidies up (prunes the live sets, looks for stray tasks).
pub(crate) const UPKEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Control {
    handle: Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Control {
    /// Starts the control thread; returns once its runtime runs.
    pub(crate) fn start() -> std::io::Result<Control> {
        let rt = Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name(format!("{THREAD_NAME}-b"))
            .build()?;
        let handle = rt.handle().clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (arrival, arrivals) = crate::sync::arrivals();
        let thread = crate::sync::spawn_thread(THREAD_NAME.to_owned(), move || {
            rt.block_on(async move {
                arrival.arrive();
                drop(arrival);
                // Until stopped, or until the registry is gone (the sender dropped).
                let _ = stop_rx.await;
            });
            // Never waits: a thread of its blocking pool stuck in user code stays behind.
            rt.shutdown_background();
        })?;
        // An error means the thread died before it ran; `block_on` is then never served, so
        // report it as a start failure.
        if arrivals.wait(1) == 0 {
            return Err(std::io::Error::other(
                "the bulkheads control thread exited at start",
            ));
        }
        Ok(Control {
            handle,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime; returns at once. Timers still pending fire with an error, which the
    /// runners of abandoned work, the only ones left, never read.
    pub(crate) fn stop(&self) {
        if let Some(tx) = lock(&self.stop).take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the control thread to exit (after `stop`): only for a failed build, never
    /// from async code.
    pub(crate) fn join(&self) {
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop();
    }
}
