//! Scopes at their edges: a scope dropped before it saw a child's failure, user errors whose
//! `Drop` panics, a supervisor scope's body that panics while it is dropped.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bulkheads::{Dispatchers, Failure, FailureKind, ScopeFailure};

const MARKER: &str = "scope-edge-boom";

/// A registry whose root failure handler sends every failure it gets to the returned channel.
fn registry() -> (Dispatchers, mpsc::Receiver<Failure>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .on_failure(move |f| {
            let _ = tx.lock().unwrap().send(f.clone());
        })
        .build()
        .unwrap();
    (d, rx)
}

/// Spins (yielding the thread) until `cpu` has decided `n` tasks: a condition, not a delay.
fn until_cpu_decided(d: &Dispatchers, n: u64) {
    let cpu = d.cpu();
    while cpu.stats().completed < n {
        std::thread::yield_now();
    }
}

/// Polls `fut` once, with a waker nobody listens to.
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn a_scope_dropped_before_it_saw_a_childs_error_reports_it_to_the_root_handler() {
    let (d, failures) = registry();
    let scope = d.scope(|s| async move {
        s.spawn(async { Err::<(), _>("unseen child error".to_string()) });
        std::future::pending::<Result<(), String>>().await
    });
    let mut scope = Box::pin(scope);
    assert!(poll_once(scope.as_mut()).is_pending());
    until_cpu_decided(&d, 1);
    // As a timeout around the scope would: dropped, never polled again.
    drop(scope);
    let failure = failures.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(failure.message, "unseen child error");
    assert_eq!(failure.kind, FailureKind::Error);
    assert_eq!(failure.dispatcher.as_ref(), "cpu");
    assert!(failures.try_recv().is_err(), "reported once");
}

#[tokio::test]
async fn a_supervisor_scope_dropped_before_it_saw_a_childs_error_reports_it_to_the_root_handler() {
    let (d, failures) = registry();
    let scope = d.supervisor_scope(|s| async move {
        s.spawn(async { Err::<(), _>("unseen supervised error".to_string()) });
        std::future::pending::<()>().await
    });
    let mut scope = Box::pin(scope);
    assert!(poll_once(scope.as_mut()).is_pending());
    until_cpu_decided(&d, 1);
    drop(scope);
    let failure = failures.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(failure.message, "unseen supervised error");
    assert_eq!(failure.kind, FailureKind::Error);
    assert!(failures.try_recv().is_err(), "reported once");
}

/// An error whose `Drop` panics.
#[derive(Debug)]
struct PanickyError(&'static str);

impl std::fmt::Display for PanickyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Drop for PanickyError {
    fn drop(&mut self) {
        panic!("{MARKER}: error dropped");
    }
}

#[tokio::test]
async fn a_later_childs_error_whose_drop_panics_is_contained_and_reported_with_the_scope() {
    common::quiet_panics(MARKER);
    let (d, failures) = registry();
    let probe = d.cpu();
    let result = d
        .scope(|s| async move {
            s.spawn(async { Err::<(), _>(PanickyError("first")) });
            s.spawn(async { Err::<(), _>(PanickyError("second")) });
            // Both children end before the scope looks at either: one is the cause, the
            // other a later failure whose error the scope drops.
            while probe.stats().completed < 2 {
                std::thread::yield_now();
            }
            std::future::pending::<Result<(), PanickyError>>().await
        })
        .await;
    let err = result.unwrap_err();
    let mut later: Vec<_> = err
        .later
        .iter()
        .map(|f| (f.kind, f.message.clone()))
        .collect();
    later.sort_by(|a, b| a.1.cmp(&b.1));
    let cause_message = match &err.cause {
        ScopeFailure::Child { error, .. } => error.0,
        other => panic!("the cause is a child's error, not {other:?}"),
    };
    let other = if cause_message == "first" {
        "second"
    } else {
        "first"
    };
    assert_eq!(
        later,
        vec![
            (
                FailureKind::Panic,
                format!("{MARKER}: error dropped (while dropping the task's error)")
            ),
            (FailureKind::Error, other.to_string()),
        ]
    );
    assert!(
        failures.try_recv().is_err(),
        "a scope's failures go to its caller"
    );
    // The cause is the caller's to drop: its `Drop` would panic here.
    std::mem::forget(err);
}

/// A body whose poll panics and whose `Drop` panics too.
struct PanickyBody;

impl Future for PanickyBody {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        panic!("{MARKER}: body polled");
    }
}

impl Drop for PanickyBody {
    fn drop(&mut self) {
        panic!("{MARKER}: body dropped");
    }
}

#[tokio::test]
async fn a_supervisor_scope_reports_its_bodys_panic_and_the_panic_of_its_drop() {
    common::quiet_panics(MARKER);
    let (d, _failures) = registry();
    let report = d.supervisor_scope(|_| PanickyBody).await;
    assert!(report.value.is_none());
    let messages: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.kind, f.message.clone()))
        .collect();
    assert_eq!(
        messages,
        vec![
            (FailureKind::Panic, format!("{MARKER}: body polled")),
            (
                FailureKind::Panic,
                format!("{MARKER}: body dropped (while dropping the scope's body)")
            ),
        ]
    );
}

/// A body that finishes, and whose `Drop` then panics.
struct DropPanicsAfterReady;

impl Future for DropPanicsAfterReady {
    type Output = Result<u32, String>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(7))
    }
}

impl Drop for DropPanicsAfterReady {
    fn drop(&mut self) {
        panic!("{MARKER}: finished body dropped");
    }
}

#[tokio::test]
async fn a_scopes_finished_body_whose_drop_panics_fails_like_a_body_panic() {
    common::quiet_panics(MARKER);
    let (d, failures) = registry();
    let scope = d.scope(|_| DropPanicsAfterReady);
    let joined = tokio::spawn(scope).await;
    let panic = joined.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(message, format!("{MARKER}: finished body dropped"));
    assert!(failures.try_recv().is_err(), "the panic went to the caller");
}

#[tokio::test]
async fn a_scope_dropped_on_a_busy_pools_thread_never_starts_its_queued_child() {
    let d = std::sync::Arc::new(
        Dispatchers::builder()
            .cpu_threads(1)
            .blocking("edge-db", bulkheads::BlockingConfig::threads(1).queue(4))
            .build()
            .unwrap(),
    );
    let db = d.get("edge-db").unwrap();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d2, db2, ran2) = (d.clone(), db.clone(), ran.clone());
    // On the pool's only thread: the scope's child is queued behind us, and the scope is
    // dropped (as a timeout would) from this thread.
    db.run_blocking(move || {
        let scope = d2.scope(|s| async move {
            s.spawn_blocking_on(&db2, move || {
                ran2.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<(), String>(())
            });
            std::future::pending::<Result<(), String>>().await
        });
        let mut scope = Box::pin(scope);
        assert!(poll_once(scope.as_mut()).is_pending());
        drop(scope);
    })
    .await
    .unwrap();
    let stats = db.stats();
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "work dropped before it started must not start"
    );
    assert_eq!((stats.cancelled, stats.in_flight), (1, 0), "{stats:?}");
}
