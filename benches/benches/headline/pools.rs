//! Blocking-pool contenders of W1, W2 and W5: bulkheads' `blocking` dispatcher, Tokio's
//! `spawn_blocking` (default and sized), the `blocking` crate, `threadpool`, and a hand-rolled
//! crossbeam-channel pool.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulkheads::{BlockingConfig, DispatchError, Dispatcher, Dispatchers};

use crate::contenders::{Contender, Pool, Runner};
use crate::workloads::JobWorkload;

/// Tokio's default `max_blocking_threads`.
pub const TOKIO_DEFAULT_MAX_BLOCKING: usize = 512;
/// The `blocking` crate's default thread limit when `BLOCKING_MAX_THREADS` is unset.
const BLOCKING_CRATE_DEFAULT_MAX: usize = 500;

/// Adapts a future that cannot fail to the `Result` that [`Pool::Handle`] wants.
struct AlwaysOk<F>(F);

impl<F: Future + Unpin> Future for AlwaysOk<F> {
    type Output = Result<F::Output, Infallible>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}

/// Contender 1: bulkheads: a `blocking` dispatcher with a queue that holds the whole fan-out.
struct Bulkheads {
    pool: Dispatcher,
    _registry: Dispatchers,
}

impl Bulkheads {
    fn new(threads: usize, queue: usize, track_tasks: bool) -> Result<Self, String> {
        let registry = Dispatchers::builder()
            .cpu_threads(1)
            .track_tasks(track_tasks)
            .blocking("pool", BlockingConfig::threads(threads).queue(queue))
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let pool = registry
            .get("pool")
            .map_err(|e| format!("bulkheads get: {e}"))?;
        Ok(Bulkheads {
            pool,
            _registry: registry,
        })
    }
}

impl Pool for Bulkheads {
    type Error = DispatchError;
    type Handle = bulkheads::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        self.pool.spawn_blocking(job)
    }
}

/// Contender 2: `tokio::task::spawn_blocking` on the timing runtime (default limit, 512 threads).
struct TokioDefault;

impl Pool for TokioDefault {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::task::spawn_blocking(job)
    }
}

/// Contender 3: `spawn_blocking` on a separate runtime, its blocking pool sized to the workload.
struct TokioSized {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl TokioSized {
    fn new(threads: usize) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads)
            .thread_name("tokio-sized")
            .build()
            .map_err(|e| format!("tokio sized runtime: {e}"))?;
        let handle = runtime.handle().clone();
        Ok(TokioSized {
            runtime: Some(runtime),
            handle,
        })
    }
}

impl Drop for TokioSized {
    fn drop(&mut self) {
        // Never blocks, so dropping is safe from any context.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Pool for TokioSized {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        self.handle.spawn_blocking(job)
    }
}

/// Contender 4: `blocking::unblock`: the `blocking` crate's global pool, at its own default size.
struct BlockingCrate;

impl Pool for BlockingCrate {
    type Error = Infallible;
    type Handle = AlwaysOk<blocking::Task<u64>>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        AlwaysOk(blocking::unblock(job))
    }
}

/// Contender 5: `threadpool::ThreadPool` with a Tokio oneshot per job.
struct ThreadPoolPeer(threadpool::ThreadPool);

impl Pool for ThreadPoolPeer {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.execute(move || {
            let _ = tx.send(job());
        });
        rx
    }
}

type BoxedJob = Box<dyn FnOnce() + Send + 'static>;

/// Contender 6: A hand-rolled pool: N threads receiving boxed closures from one unbounded crossbeam
/// channel, with a Tokio oneshot per job.
struct CrossbeamPool {
    tx: Option<crossbeam_channel::Sender<BoxedJob>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CrossbeamPool {
    fn new(n: usize) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::unbounded::<BoxedJob>();
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rx = rx.clone();
            let t = std::thread::Builder::new()
                .name(format!("crossbeam-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| format!("crossbeam pool thread: {e}"))?;
            threads.push(t);
        }
        Ok(CrossbeamPool {
            tx: Some(tx),
            threads,
        })
    }
}

impl Drop for CrossbeamPool {
    fn drop(&mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Pool for CrossbeamPool {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(pool) = &self.tx {
            // On failure the closure, and with it `tx`, is dropped: `rx` then reports it.
            let _ = pool.send(Box::new(move || {
                let _ = tx.send(job());
            }));
        }
        rx
    }
}

pub fn pool_contenders(w: &JobWorkload) -> Result<Vec<Contender>, String> {
    let n = w.threads;
    // Headroom over the fan-out so that a permit released a moment late never rejects.
    let queue = w.jobs + n;
    let c = |label: String, runner: Arc<dyn Runner>| Contender { label, runner };
    let mut all = vec![
        c(
            format!("bulkheads ({n} threads)"),
            Arc::new(Bulkheads::new(n, queue, true)?),
        ),
        c(
            format!("tokio spawn_blocking default ({TOKIO_DEFAULT_MAX_BLOCKING} max)"),
            Arc::new(TokioDefault),
        ),
        c(
            format!("tokio spawn_blocking sized ({n} max)"),
            Arc::new(TokioSized::new(n)?),
        ),
        c(
            format!("blocking::unblock ({} max)", blocking_crate_max()),
            Arc::new(BlockingCrate),
        ),
        c(
            format!("threadpool + oneshot ({n} threads)"),
            Arc::new(ThreadPoolPeer(threadpool::ThreadPool::new(n))),
        ),
        c(
            format!("crossbeam pool + oneshot ({n} threads)"),
            Arc::new(CrossbeamPool::new(n)?),
        ),
    ];
    if w.name == "W1" {
        // W9: what timing every poll for dumps costs (the default is on).
        all.insert(
            1,
            c(
                format!("bulkheads ({n} threads), track_tasks off"),
                Arc::new(Bulkheads::new(n, queue, false)?),
            ),
        );
    }
    Ok(all)
}

/// The `blocking` crate's thread limit as it will read it (only reading the variable here).
pub fn blocking_crate_max() -> String {
    match std::env::var("BLOCKING_MAX_THREADS") {
        Ok(v) => format!("BLOCKING_MAX_THREADS={v}"),
        Err(_) => format!("default {BLOCKING_CRATE_DEFAULT_MAX}"),
    }
}
