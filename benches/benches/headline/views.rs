//! Contenders of W3 and W4, where work is capped or spawned rather than sent to a pool:
//! bulkheads' limited view, `tokio::spawn` with and without a `Semaphore`, a rayon pool, and
//! the poll-gate prototype (the alternative shape a view could have taken).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulkheads::{DispatchError, Dispatcher, Dispatchers};

use crate::contenders::{Contender, Pool, Runner, Set};
use crate::workloads::JobWorkload;

/// bulkheads: a limited view of the given parallelism over `main` (the runtime current at
/// build). CPU jobs go through `spawn_blocking` (run on the base's workers), async ones
/// through `spawn`.
struct BulkheadsView {
    view: Dispatcher,
    asynchronous: bool,
    _registry: Dispatchers,
}

impl BulkheadsView {
    fn new(parallelism: usize, asynchronous: bool, track_tasks: bool) -> Result<Self, String> {
        let registry = Dispatchers::builder()
            .cpu_threads(1)
            .track_tasks(track_tasks)
            .limited("view", "main", parallelism)
            .build()
            .map_err(|e| format!("bulkheads build: {e}"))?;
        let view = registry
            .get("view")
            .map_err(|e| format!("bulkheads get: {e}"))?;
        Ok(BulkheadsView {
            view,
            asynchronous,
            _registry: registry,
        })
    }
}

impl Pool for BulkheadsView {
    type Error = DispatchError;
    type Handle = bulkheads::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        if self.asynchronous {
            self.view.spawn(async move { job() })
        } else {
            self.view.spawn_blocking(job)
        }
    }
}

/// `tokio::spawn` with a `Semaphore` permit held around the work: what people use today to
/// cap a subsystem (it caps concurrency; for CPU jobs that is parallelism).
struct TokioSemaphore(Arc<tokio::sync::Semaphore>);

impl Pool for TokioSemaphore {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let sem = self.0.clone();
        tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            job()
        })
    }
}

/// A rayon pool with a Tokio oneshot per job.
struct RayonPool(rayon::ThreadPool);

impl RayonPool {
    fn new(n: usize) -> Result<Self, String> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("rayon-{i}"))
            .build()
            .map(RayonPool)
            .map_err(|e| format!("rayon pool: {e}"))
    }
}

impl Pool for RayonPool {
    type Error = tokio::sync::oneshot::error::RecvError;
    type Handle = tokio::sync::oneshot::Receiver<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.spawn(move || {
            let _ = tx.send(job());
        });
        rx
    }
}

/// Plain `tokio::spawn` on the timing runtime.
struct TokioSpawn;

impl Pool for TokioSpawn {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::spawn(async move { job() })
    }
}

/// The alternative shape a view could have taken (a prototype, measured next to the view): a
/// plain `tokio::spawn` whose every poll must hold one of n permits of a fair semaphore,
/// instead of the view's own queue drained by workers holding its slots. Keeps Tokio's task
/// identity; pays a wasted wake per denied poll. It carries none of bulkheads' bookkeeping
/// (no live set, accounting or cancellation), so it bounds what the shape could gain.
struct PollGatePeer(Arc<tokio::sync::Semaphore>);

struct PollGated<F> {
    fut: Pin<Box<F>>,
    sem: Arc<tokio::sync::Semaphore>,
    acquire: Option<Pin<Box<AcquireFuture>>>,
}

type AcquireFuture = dyn Future<Output = Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError>>
    + Send;

impl<F: Future> Future for PollGated<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let permit = match this.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let sem = this.sem.clone();
                let acquire = this
                    .acquire
                    .get_or_insert_with(|| Box::pin(sem.acquire_owned()));
                match acquire.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(p)) => {
                        this.acquire = None;
                        p
                    }
                    Poll::Ready(Err(_)) => return Poll::Pending,
                }
            }
        };
        let out = this.fut.as_mut().poll(cx);
        drop(permit);
        out
    }
}

impl Pool for PollGatePeer {
    type Error = tokio::task::JoinError;
    type Handle = tokio::task::JoinHandle<u64>;
    fn submit(&self, job: fn() -> u64) -> Self::Handle {
        tokio::spawn(PollGated {
            fut: Box::pin(async move { job() }),
            sem: self.0.clone(),
            acquire: None,
        })
    }
}

pub fn capped_contenders(
    w: &JobWorkload,
    rt: &tokio::runtime::Runtime,
) -> Result<Vec<Contender>, String> {
    let n = w.threads;
    let c = |label: String, runner: Arc<dyn Runner>| Contender { label, runner };
    // Views over `main`: the timing runtime itself, the same 2 workers every peer here uses.
    let asynchronous = w.set == Set::Spawns;
    let view = {
        let _ctx = rt.enter();
        BulkheadsView::new(n, asynchronous, true)?
    };
    let mut all = vec![c(
        format!("bulkheads view (parallelism {n}, over main)"),
        Arc::new(view),
    )];
    if w.name == "W4" {
        // W9: what timing every poll for dumps costs (the default is on).
        let untracked = {
            let _ctx = rt.enter();
            BulkheadsView::new(n, asynchronous, false)?
        };
        all.push(c(
            format!("bulkheads view (parallelism {n}), track_tasks off"),
            Arc::new(untracked),
        ));
    }
    match w.set {
        Set::CappedCpu => {
            all.push(c(
                format!("tokio::spawn + Semaphore({n})"),
                Arc::new(TokioSemaphore(Arc::new(tokio::sync::Semaphore::new(n)))),
            ));
            all.push(c(
                format!("rayon pool ({n} threads) + oneshot"),
                Arc::new(RayonPool::new(n)?),
            ));
        }
        _ => all.push(c("tokio::spawn".to_owned(), Arc::new(TokioSpawn))),
    }
    all.push(c(
        format!("poll gate prototype ({n} permits)"),
        Arc::new(PollGatePeer(Arc::new(tokio::sync::Semaphore::new(n)))),
    ));
    Ok(all)
}
