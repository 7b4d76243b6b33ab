//! Dedicated Tokio runtimes: the registry's `cpu` pool and the `runtime` kind.
//!
//! Each is a multi-thread runtime with IO and time drivers, its worker threads named
//! `<dispatcher>-<n>`. Blocking closures submitted to it run as tasks on its workers (CPU
//! work); they never escape to Tokio's shared blocking pool. The runtime is owned by the
//! registry and shut down with `shutdown_background`, which neither blocks nor panics inside
//! an async context.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Runtime};

/// Configuration of a `runtime` dispatcher: a dedicated multi-thread Tokio runtime.
///
/// ```
/// use bulkheads::RuntimeConfig;
/// let payments = RuntimeConfig::workers(2);
/// # let _ = payments;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub(crate) workers: usize,
    pub(crate) admission: super::AdmissionConfig,
}

impl RuntimeConfig {
    /// Most worker threads a runtime may have.
    pub const MAX_WORKERS: usize = 1024;

    /// A runtime with `n` worker threads (1 to 1024).
    pub fn workers(n: usize) -> Self {
        RuntimeConfig {
            workers: n,
            admission: super::AdmissionConfig::default(),
        }
    }

    /// Caps admitted, unfinished tasks at `n`; see [`AdmissionConfig`](super::AdmissionConfig).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.admission.max_concurrent = Some(n);
        self
    }

    /// Tasks admitted beyond `max_concurrent`, waiting to start.
    pub fn queue(mut self, n: usize) -> Self {
        self.admission.queue = n;
        self
    }

    /// How long `run*` callers wait for room when full.
    pub fn max_wait(mut self, d: std::time::Duration) -> Self {
        self.admission.max_wait = d;
        self
    }
}

/// Builds a runtime with `workers` threads named `<name>-<n>`, and returns once every worker
/// runs (so `Stats::threads` and the OS agree from the start).
pub(crate) fn build(name: &str, workers: usize) -> std::io::Result<Runtime> {
    let prefix: Arc<str> = name.into();
    let next = Arc::new(AtomicUsize::new(0));
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    let up_tx = std::sync::Mutex::new(up_tx);
    let rt = Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name_fn(move || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            format!("{prefix}-{n}")
        })
        .on_thread_start(move || {
            let _ = crate::sync::lock(&up_tx).send(());
        })
        .enable_all()
        .build()?;
    for _ in 0..workers {
        if up_rx.recv().is_err() {
            break;
        }
    }
    Ok(rt)
}

/// A runtime owned by the registry. Dropping it shuts it down in the background: it neither
/// blocks nor panics, even inside another runtime's async context (where dropping a plain
/// `Runtime` panics).
pub(crate) struct OwnedRuntime(Option<Runtime>);

impl OwnedRuntime {
    pub(crate) fn new(rt: Runtime) -> Self {
        OwnedRuntime(Some(rt))
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
