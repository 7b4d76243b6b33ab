//! Dumps on `SIGUSR1` (the `signal` feature, Unix): a dump from a running process with no
//! change to its request path.
//!
//! The listener is a thread of its own running a one-thread Tokio runtime for the signal
//! stream: a saturated `cpu` pool or a stuck runtime cannot delay the dump, which is when it is
//! wanted most.

use std::fmt;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use super::dump::{Dump, dump_of};
use crate::dispatcher::handle::Dispatcher;
use crate::registry::Dispatchers;
use crate::sync::spawn_thread;

/// Listens for `SIGUSR1` while it lives; see [`Dispatchers::dump_on_sigusr1`]. Dropping it
/// stops the listener (without waiting for its thread).
#[must_use = "dumps on SIGUSR1 stop when this guard is dropped"]
pub struct DumpOnSignal {
    stop: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for DumpOnSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpOnSignal")
            .field(
                "listening",
                &self.stop.as_ref().is_some_and(|s| !s.is_closed()),
            )
            .finish()
    }
}

impl Drop for DumpOnSignal {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Dispatchers {
    /// On every `SIGUSR1`, takes a [`Dump`] and hands it to `on_dump` (the `signal` feature,
    /// Unix only): `kill -USR1 <pid>` shows what a running service is doing without any change
    /// to its handlers. The listener runs on a thread of its own (`bulkheads-sig`), so it
    /// answers even when every pool is saturated; it stops when the returned guard is dropped.
    ///
    /// Installing the handler replaces `SIGUSR1`'s default action (terminating the process)
    /// for the rest of the process's life, as Tokio's signal handling does. A panic in
    /// `on_dump` is caught and logged; the listener goes on.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dispatchers = bulkheads::Dispatchers::builder().build()?;
    /// use std::time::Duration;
    /// let _dumps = dispatchers.dump_on_sigusr1(|dump| {
    ///     eprintln!("{dump}");
    ///     for suspect in dump.suspects(Duration::from_secs(30)) {
    ///         eprintln!("{suspect}");
    ///     }
    /// })?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The listener's thread or its signal handler could not be set up; the error says which.
    pub fn dump_on_sigusr1<F>(&self, on_dump: F) -> std::io::Result<DumpOnSignal>
    where
        F: Fn(&Dump) + Send + 'static,
    {
        let declared: Arc<[Dispatcher]> = self.declared().into();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| context(e, "building the listener's runtime"))?;
        // Registered here, so that a signal sent once this returns is seen.
        let mut signals = {
            let _entered = rt.enter();
            signal(SignalKind::user_defined1())
                .map_err(|e| context(e, "installing the SIGUSR1 handler"))?
        };
        let (stop, mut stopped) = oneshot::channel();
        spawn_thread("bulkheads-sig".into(), move || {
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        // A stop request wins over a signal that arrived with it.
                        biased;
                        _ = &mut stopped => break,
                        got = signals.recv() => {
                            if got.is_none() {
                                break;
                            }
                            let dump = dump_of(&declared);
                            let shown = std::panic::catch_unwind(
                                std::panic::AssertUnwindSafe(|| on_dump(&dump)),
                            );
                            if shown.is_err() {
                                tracing::error!(
                                    "bulkheads: the SIGUSR1 dump handler panicked; listening on"
                                );
                            }
                        }
                    }
                }
            });
        })
        .map_err(|e| context(e, "starting thread bulkheads-sig"))?;
        Ok(DumpOnSignal { stop: Some(stop) })
    }
}

fn context(e: std::io::Error, doing: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("bulkheads dump on SIGUSR1: {doing}: {e}"))
}
