//! Dedicated Tokio runtimes: the registry's `cpu` pool and the `runtime` kind (and `main`, the
//! runtime current at build, which views can sit on but the registry does not own).
//!
//! Each owned runtime is a multi-thread runtime with IO and time drivers, its worker threads
//! named `<dispatcher>-<n>`. Blocking closures submitted to it run as tasks on its workers (CPU
//! work); they never escape to a blocking pool. The runtime's own Tokio blocking pool (used by
//! `tokio::fs`, DNS lookups and `spawn_blocking` inside it) is bounded (`blocking_threads`,
//! default [`RuntimeConfig::DEFAULT_BLOCKING_THREADS`]) and its threads are named
//! `<dispatcher>-blk-<n>`; its queue is Tokio's, which has no bound (put work that needs one
//! on a `blocking` dispatcher). The registry shuts owned runtimes down with
//! `shutdown_background`, which neither blocks nor panics inside an async context.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::runtime::{Builder, Handle, Runtime};

use crate::dispatcher::admission::AdmissionConfig;
use crate::dispatcher::executor::{Executor, Holding, Worker, WorkerHost};
use crate::dispatcher::task::NewTask;
use crate::dispatcher::task::cell::{Carrier, TaskCell};

/// Configuration of a `runtime` dispatcher: a dedicated multi-thread Tokio runtime.
///
/// ```
/// use bulkheads::RuntimeConfig;
/// // Two workers; its `tokio::fs` and `spawn_blocking` calls get at most 4 threads.
/// let payments = RuntimeConfig::workers(2).blocking_threads(4);
/// # let _ = payments;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub(crate) workers: usize,
    pub(crate) blocking_threads: usize,
    pub(crate) admission: AdmissionConfig,
}

impl RuntimeConfig {
    /// Most worker threads a runtime may have.
    pub const MAX_WORKERS: usize = 1024;
    /// Threads of a runtime's own Tokio blocking pool, unless set.
    pub const DEFAULT_BLOCKING_THREADS: usize = 16;
    /// Most threads a runtime's own Tokio blocking pool may have.
    pub const MAX_BLOCKING_THREADS: usize = 4096;

    /// A runtime with `n` worker threads (1 to 1024).
    pub fn workers(n: usize) -> Self {
        RuntimeConfig {
            workers: n,
            blocking_threads: Self::DEFAULT_BLOCKING_THREADS,
            admission: AdmissionConfig::default(),
        }
    }

    /// Threads of the runtime's own Tokio blocking pool (1 to 4096), which runs `tokio::fs`,
    /// DNS lookups and `tokio::task::spawn_blocking` called from its tasks. Default
    /// [`DEFAULT_BLOCKING_THREADS`](Self::DEFAULT_BLOCKING_THREADS).
    pub fn blocking_threads(mut self, n: usize) -> Self {
        self.blocking_threads = n;
        self
    }

    crate::dispatcher::admission::admission_setters!();
}

/// Builds a runtime with `workers` threads named `<name>-<n>` and a blocking pool of at most
/// `blocking_threads` threads named `<name>-blk-<n>`, and returns once every worker runs (so
/// `Stats::threads` and the OS agree from the start).
pub(crate) fn build(
    name: &str,
    workers: usize,
    blocking_threads: usize,
) -> std::io::Result<Runtime> {
    let prefix: Arc<str> = name.into();
    let spawned = Arc::new(AtomicUsize::new(0));
    let (arrival, arrivals) = crate::sync::arrivals();
    let rt = Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(blocking_threads)
        // Tokio starts the workers first, one by one, when it builds the runtime; every
        // thread after them belongs to the blocking pool.
        .thread_name_fn(move || {
            let n = spawned.fetch_add(1, Ordering::Relaxed);
            if n < workers {
                format!("{prefix}-{n}")
            } else {
                format!("{prefix}-blk-{}", n - workers)
            }
        })
        .on_thread_start(move || arrival.arrive())
        .enable_all()
        .build()?;
    arrivals.wait(workers);
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

/// Tasks on a Tokio runtime: the cpu pool, a `runtime` dispatcher, or `main`.
pub(crate) struct TokioRuntime {
    handle: Handle,
    /// Its tasks hold a slot of an in-flight gate (`max_concurrent`) while they run: a task
    /// then marks its thread as holding this runtime during each of its polls, so that a
    /// `run*` it awaits on the same dispatcher runs inline instead of waiting at the gate
    /// behind its own caller (see `holds_current_thread`).
    gated: bool,
}

impl TokioRuntime {
    pub(crate) fn new(handle: Handle) -> Arc<Self> {
        Arc::new(TokioRuntime {
            handle,
            gated: false,
        })
    }

    /// A runtime dispatcher with an in-flight gate.
    pub(crate) fn gated(handle: Handle) -> Arc<Self> {
        Arc::new(TokioRuntime {
            handle,
            gated: true,
        })
    }
}

pin_project_lite::pin_project! {
    /// A gated runtime's task: its thread holds the runtime while it is polled.
    struct HeldWhilePolled<F> {
        runtime: usize,
        #[pin]
        task: F,
    }
}

impl<F: Future> Future for HeldWhilePolled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _holding = Holding::of(*this.runtime);
        this.task.poll(cx)
    }
}

impl Executor for TokioRuntime {
    fn submit<F>(&self, task: NewTask<F>) -> Arc<TaskCell<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (cell, runner) = task.runner();
        // Our cell is the task's identity; it keeps Tokio's handle only so that the task's
        // memory is freed where the cell is (see `Carrier`). On a runtime that has shut down
        // the runner is dropped at once, which decides the task as cancelled.
        let tokio_task = if self.gated {
            self.handle.spawn(HeldWhilePolled {
                runtime: Holding::id(self),
                task: runner,
            })
        } else {
            self.handle.spawn(runner)
        };
        cell.carry(Carrier::Tokio(tokio_task));
        cell
    }

    fn threads(&self) -> usize {
        self.handle.metrics().num_workers()
    }

    /// A runtime's workers never wait for the runtime's own tasks by blocking (Tokio refuses
    /// `block_on` there), but a task of a gated runtime holds a gate slot while it awaits: a
    /// `run*` it awaits on the same runtime runs inline (it would wait at the gate behind its
    /// own caller). Ungated runtimes run nothing inline.
    fn holds_current_thread(&self) -> bool {
        self.gated && Holding::held(self)
    }

    fn host(self: &Arc<Self>) -> Arc<dyn WorkerHost> {
        self.clone()
    }

    /// The registry owns the runtime and shuts it down itself.
    fn close(&self) {}
}

impl WorkerHost for TokioRuntime {
    fn spawn_worker(self: Arc<Self>, worker: Worker) {
        drop(self.handle.spawn(worker));
    }
}
