//! Unit tests of the generic service: the poll_ready/call contract, Clone, cancellation, modes.

use std::convert::Infallible;
use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, Dispatcher, Dispatchers, RejectReason};
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::{Bulkhead, BulkheadError, BulkheadLayer};

/// Generous: only a hang fails on it.
const HANG: Duration = Duration::from_secs(10);

fn pool(name: &str, threads: usize, queue: usize, max_wait: Duration) -> (Dispatchers, Dispatcher) {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            name,
            BlockingConfig::threads(threads)
                .queue(queue)
                .max_wait(max_wait),
        )
        .build()
        .unwrap();
    let p = d.get(name).unwrap();
    (d, p)
}

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|n: u32| async move { Ok::<_, Infallible>(n) })
}

fn poll_ready_once<S: Service<R>, R>(svc: &mut S) -> Poll<Result<(), S::Error>> {
    svc.poll_ready(&mut Context::from_waker(Waker::noop()))
}

const _: () = {
    const fn send_sync_clone<T: Send + Sync + Clone>() {}
    const fn send<T: Send>() {}
    send_sync_clone::<Bulkhead<tower::util::BoxCloneSyncService<u32, u32, Infallible>>>();
    send_sync_clone::<BulkheadLayer>();
    send::<crate::future::ResponseFuture<u32, Infallible>>();
};

#[tokio::test]
async fn a_clone_does_not_share_the_reserved_slot() {
    let (_d, db) = pool("clone", 1, 0, Duration::ZERO);
    let mut first = Bulkhead::new(echo(), db.clone());
    assert!(poll_ready_once(&mut first).is_ready()); // holds the only slot
    let mut second = first.clone();
    // The clone starts with no slot, and there is none left: rejected, as a response.
    assert!(matches!(poll_ready_once(&mut second), Poll::Ready(Ok(()))));
    let err = second.call(2).await.unwrap_err();
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 1 })
    );
    // The first spends its own slot.
    assert_eq!(first.call(1).await.unwrap(), 1);
    assert_eq!(second.ready().await.unwrap().call(3).await.unwrap(), 3);
}

#[tokio::test]
async fn call_without_poll_ready_runs_nothing_and_takes_no_slot() {
    let (_d, db) = pool("not-ready", 1, 0, Duration::ZERO);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut svc = Bulkhead::new(
        service_fn(move |n: u32| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(n) }
        }),
        db.clone(),
    );
    let err = svc.call(1).await.unwrap_err();
    assert!(matches!(err, BulkheadError::NotReady { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bulkhead 'not-ready' was called without a successful poll_ready first; the request was not run"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(db.stats().submitted, 0);
    // The service is not broken by it.
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
}

#[tokio::test]
async fn a_rejection_is_the_response_and_the_inner_service_is_not_called() {
    let (_d, db) = pool("reject", 1, 0, Duration::ZERO);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let svc = BulkheadLayer::new(db.clone()).layer(service_fn(move |n: u32| {
        c.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(n) }
    }));
    let held = db.try_reserve().unwrap();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(err.dispatcher(), "reject");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(held);
    assert_eq!(svc.oneshot(2).await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn poll_ready_waits_within_max_wait_then_rejects() {
    let (_d, db) = pool("wait", 1, 0, Duration::from_millis(50));
    let held = db.try_reserve().unwrap();
    let mut svc = Bulkhead::new(echo(), db.clone());
    // No room: pending, waiting in the dispatcher's queue.
    assert!(poll_ready_once(&mut svc).is_pending());
    assert_eq!(db.stats().waiting, 1);
    // Room comes: admitted.
    drop(held);
    tokio::time::timeout(HANG, svc.ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(svc.call(5).await.unwrap(), 5);

    // No room within max_wait: rejected, as the response, after about max_wait.
    let held = db.try_reserve().unwrap();
    let started = Instant::now();
    tokio::time::timeout(HANG, svc.ready())
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    let err = svc.call(6).await.unwrap_err();
    assert!(
        matches!(err.reject_reason(), Some(RejectReason::WaitTimeout { .. })),
        "{err}"
    );
    drop(held);
}

#[tokio::test]
async fn a_service_dropped_while_waiting_leaves_the_queue() {
    let (_d, db) = pool("leave", 1, 0, Duration::from_secs(3600));
    let held = db.try_reserve().unwrap();
    let mut svc = Bulkhead::new(echo(), db.clone());
    assert!(poll_ready_once(&mut svc).is_pending());
    assert_eq!(db.stats().waiting, 1);
    drop(svc);
    assert_eq!(db.stats().waiting, 0);
    drop(held);
    assert!(db.try_reserve().is_ok());
}

#[tokio::test]
async fn an_inner_poll_ready_error_takes_no_slot() {
    #[derive(Clone)]
    struct Broken;
    impl Service<u32> for Broken {
        type Response = u32;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<u32, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Err(std::io::Error::other("backend gone")))
        }
        fn call(&mut self, n: u32) -> Self::Future {
            std::future::ready(Ok(n))
        }
    }
    let (_d, db) = pool("broken", 1, 0, Duration::ZERO);
    let mut svc = Bulkhead::new(Broken, db.clone());
    let err = match poll_ready_once(&mut svc) {
        Poll::Ready(Err(e)) => e,
        other => panic!("expected the inner error, got {other:?}"),
    };
    assert_eq!(
        err.to_string(),
        "the service behind bulkhead 'broken' failed: backend gone"
    );
    assert_eq!(err.source().unwrap().to_string(), "backend gone");
    assert_eq!(err.inner().unwrap().kind(), std::io::ErrorKind::Other);
    assert!(db.try_reserve().is_ok(), "no slot may be held");
}

#[tokio::test]
async fn the_inner_services_error_is_kept_apart() {
    let (_d, db) = pool("inner-err", 1, 0, Duration::ZERO);
    let svc = Bulkhead::new(
        service_fn(
            |n: u32| async move { Err::<u32, _>(std::io::Error::other(format!("no row {n}"))) },
        ),
        db.clone(),
    );
    let err = svc.oneshot(4).await.unwrap_err();
    assert!(!err.is_rejected() && err.dispatch_error().is_none());
    assert_eq!(err.dispatcher(), "inner-err");
    assert_eq!(err.into_inner().unwrap().to_string(), "no row 4");
    // An inner error is a completed task for the dispatcher: the handler ran to its end.
    assert_eq!(db.stats().completed, 1);
}

#[tokio::test]
async fn dropping_a_queued_response_future_frees_its_slot_at_once() {
    let (_d, db) = pool("drop", 1, 1, Duration::ZERO);
    // The only thread, held until released.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = db.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv_timeout(HANG).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut svc = Bulkhead::new(
        service_fn(move |n: u32| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(n)
            }
        }),
        db.clone(),
    );
    let mut queued = svc.ready().await.unwrap().call(1);
    assert!(
        std::pin::Pin::new(&mut queued)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(db.stats().queued, 1);
    // The queue's one place is taken: a second request is rejected...
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(err.is_rejected());
    // ...until the first one's client goes away: its place is free at once.
    drop(queued);
    let next = svc.ready().await.unwrap().call(3);
    release_tx.send(()).unwrap();
    assert_eq!(tokio::time::timeout(HANG, next).await.unwrap().unwrap(), 3);
    holder.await.unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the dropped request never ran"
    );
    assert_eq!(db.stats().cancelled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_mode_runs_the_response_future_on_the_pool() {
    let (_d, db) = pool("pinned", 2, 0, Duration::ZERO);
    let svc = BulkheadLayer::new(db).layer(service_fn(|()| async {
        Ok::<_, Infallible>(std::thread::current().name().map(str::to_owned))
    }));
    let thread = svc.oneshot(()).await.unwrap().unwrap();
    assert!(thread.starts_with("pinned-"), "{thread}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_only_mode_runs_the_response_future_in_the_callers_task() {
    let (_d, db) = pool("adm", 1, 0, Duration::ZERO);
    let svc = BulkheadLayer::new(db.clone())
        .admission_only()
        .layer(service_fn(|()| async {
            Ok::<_, Infallible>((
                tokio::task::id(),
                std::thread::current().name().map(str::to_owned),
            ))
        }));
    let caller = tokio::spawn(async move {
        let here = tokio::task::id();
        let (task, thread) = svc.oneshot(()).await.unwrap();
        (here, task, thread)
    });
    let (here, task, thread) = caller.await.unwrap();
    assert_eq!(here, task, "the handler ran in the caller's own task");
    assert!(!thread.unwrap_or_default().starts_with("adm-"));
    // Admitted and counted by the dispatcher all the same.
    let s = db.stats();
    assert_eq!((s.submitted, s.completed, s.in_flight), (1, 1, 0), "{s:?}");
}

#[tokio::test]
async fn a_panicking_handler_is_a_dispatch_error_and_the_pool_serves_the_next() {
    let (_d, db) = pool("panics", 1, 0, Duration::ZERO);
    let made_at = line!() + 1;
    let svc = BulkheadLayer::new(db.clone())
        .task_name("handler")
        .layer(service_fn(|n: u32| async move {
            if n == 0 {
                panic!("division by zero");
            }
            Ok::<_, Infallible>(100 / n)
        }));
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let err = svc.clone().oneshot(0).await.unwrap_err();
    std::panic::set_hook(prev);
    let dispatch = err.dispatch_error().unwrap();
    assert!(dispatch.is_panic());
    let text = err.to_string();
    assert!(text.starts_with("task 'handler' (#"), "{text}");
    // The spawn site is the line that made the layer, not a line of this crate's service.
    assert!(
        text.contains(&format!(
            "spawned at crates/bulkheads-tower/src/tests.rs:{made_at}:"
        )),
        "{text}"
    );
    assert!(
        text.ends_with("on dispatcher 'panics' panicked: division by zero"),
        "{text}"
    );
    assert_eq!(svc.oneshot(4).await.unwrap(), 25);
}

#[tokio::test]
async fn the_layer_works_in_a_service_builder_with_boxed_errors() {
    let (_d, db) = pool("boxed", 1, 0, Duration::ZERO);
    let svc = tower::ServiceBuilder::new()
        .map_err(|e: BulkheadError<Infallible>| -> tower::BoxError { Box::new(e) })
        .layer(BulkheadLayer::new(db.clone()))
        .service(echo());
    assert_eq!(svc.clone().oneshot(9).await.unwrap(), 9);
    let held = db.try_reserve().unwrap();
    let err = svc.oneshot(9).await.unwrap_err();
    let err = err.downcast::<BulkheadError<Infallible>>().unwrap();
    assert!(err.is_rejected());
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_only_rejects_work_that_waited_at_the_gate_past_the_queue_deadline() {
    use bulkheads::RuntimeConfig;
    use tokio::sync::oneshot;

    enum Req {
        /// Tells the test it started, then holds the dispatcher's only in-flight place.
        Hold(oneshot::Sender<()>, oneshot::Receiver<()>),
        Quick,
    }
    let deadline = Duration::from_millis(30);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "gated",
            RuntimeConfig::workers(1)
                .max_concurrent(1)
                .queue(1)
                .queue_deadline(deadline),
        )
        .build()
        .unwrap();
    let rt = d.get("gated").unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let svc = BulkheadLayer::new(rt.clone())
        .admission_only()
        .layer(service_fn(move |req: Req| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                if let Req::Hold(started, release) = req {
                    started.send(()).unwrap();
                    release.await.unwrap();
                }
                Ok::<_, Infallible>(())
            }
        }));
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let holder = tokio::spawn(svc.clone().oneshot(Req::Hold(started_tx, release_rx)));
    tokio::time::timeout(HANG, started_rx)
        .await
        .unwrap()
        .unwrap();
    // Admitted (the queue's place), waiting at the in-flight gate in the caller's task.
    let waiter = tokio::spawn(svc.oneshot(Req::Quick));
    // The condition under test: time passing beyond the deadline while it waits.
    tokio::time::sleep(deadline * 2).await;
    release_tx.send(()).unwrap();
    tokio::time::timeout(HANG, holder)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let err = tokio::time::timeout(HANG, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err.reject_reason(),
            Some(RejectReason::QueueDeadline { .. })
        ),
        "{err}"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the stale request never ran");
    assert_eq!(rt.stats().rejected.queue_deadline, 1);
}
