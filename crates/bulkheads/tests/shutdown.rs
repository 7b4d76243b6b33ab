//! Shutdown stops admission, lets work finish until the deadline, then cancels what is left
//! and reports every accepted task.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, RejectReason, RuntimeConfig};
use common::occupy;

#[tokio::test]
async fn queued_work_finishes_when_the_deadline_allows() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("drain", BlockingConfig::threads(2).queue(100))
        .build()
        .unwrap();
    let p = d.get("drain").unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let done = done.clone();
            p.spawn_blocking(move || done.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let report = d.shutdown(Duration::from_secs(30)).await;
    assert!(!report.deadline_hit);
    assert_eq!(done.load(Ordering::SeqCst), 100);
    let line = report.dispatcher("drain").unwrap();
    assert_eq!(
        (
            line.submitted,
            line.completed,
            line.cancelled,
            line.in_flight
        ),
        (100, 100, 0, 0)
    );
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn at_the_deadline_queued_work_is_cancelled_and_running_work_abandoned() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("stuck", BlockingConfig::threads(1).queue(10))
        .runtime("rt", RuntimeConfig::workers(1))
        .build()
        .unwrap();
    let p = d.get("stuck").unwrap();
    let rt = d.get("rt").unwrap();
    p.run_blocking(|| ()).await.unwrap(); // one completed before shutdown
    let (gate, mut held) = occupy(&p, 1);
    let stuck = held.remove(0);
    let queued: Vec<_> = (0..4).map(|_| p.spawn_blocking(|| ())).collect();
    let parked = rt.spawn(std::future::pending::<()>());
    let report = d.shutdown(Duration::from_millis(20)).await;
    assert!(report.deadline_hit);
    let pool = report.dispatcher("stuck").unwrap();
    assert_eq!(
        (
            pool.submitted,
            pool.completed,
            pool.cancelled,
            pool.abandoned,
            pool.in_flight
        ),
        (6, 1, 5, 1, 0)
    );
    let rt_line = report.dispatcher("rt").unwrap();
    assert_eq!(
        (
            rt_line.submitted,
            rt_line.cancelled,
            rt_line.abandoned,
            rt_line.in_flight
        ),
        (1, 1, 0, 0),
        "an async task parked at an .await stops there"
    );
    for line in &report.dispatchers {
        assert_eq!(
            line.submitted,
            line.completed + line.panicked + line.cancelled + line.rejected,
            "{line:?}"
        );
    }
    assert!(stuck.await.unwrap_err().is_cancelled());
    for h in queued {
        assert!(h.await.unwrap_err().is_cancelled());
    }
    assert!(parked.await.unwrap_err().is_cancelled());
    let text = report.to_string();
    assert!(
        text.contains("stuck") && text.contains("deadline hit"),
        "{text}"
    );
    gate.open();
}

#[tokio::test]
async fn submissions_after_shutdown_are_rejected_and_counted() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("closed", BlockingConfig::threads(1))
        .build()
        .unwrap();
    let p = d.get("closed").unwrap();
    let first = d.shutdown(Duration::from_secs(1)).await;
    for err in [
        p.spawn_blocking(|| ()).await.unwrap_err(),
        p.run_blocking(|| ()).await.unwrap_err(),
        p.spawn(async {}).await.unwrap_err(),
        d.cpu().run(async {}).await.unwrap_err(),
    ] {
        assert_eq!(
            err.reject_reason(),
            Some(&RejectReason::ShuttingDown),
            "{err}"
        );
    }
    let s = p.stats();
    assert_eq!(s.rejected.shutting_down, 3);
    assert!(s.is_balanced());
    // A second call returns the first report.
    assert_eq!(d.shutdown(Duration::from_secs(1)).await, first);
}

#[tokio::test]
async fn waiters_are_released_with_shutting_down() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "waiters",
            BlockingConfig::threads(1)
                .queue(0)
                .max_wait(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let p = d.get("waiters").unwrap();
    let (gate, mut held) = occupy(&p, 1);
    let busy = held.remove(0);
    let mut waiter = tokio_test::task::spawn(p.run_blocking(|| ()));
    assert!(waiter.poll().is_pending());
    let report = d.shutdown(Duration::from_millis(10)).await;
    let err = waiter.await.unwrap_err();
    assert_eq!(err.reject_reason(), Some(&RejectReason::ShuttingDown));
    assert!(busy.await.unwrap_err().is_cancelled());
    assert_eq!(report.dispatcher("waiters").unwrap().abandoned, 1);
    // A waiter is counted when it learns its fate.
    let s = p.stats();
    assert_eq!(s.rejected.shutting_down, 1);
    assert!(s.is_balanced(), "{s:?}");
    gate.open();
}

/// A detached task's panic reaches the root handler before shutdown counts the task as done:
/// once `shutdown` returns, every failure of the work it drained has been reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_after_the_failures_of_what_it_drained_were_reported() {
    for round in 0..200 {
        let reported = Arc::new(AtomicUsize::new(0));
        let r = reported.clone();
        let d = Dispatchers::builder()
            .cpu_threads(1)
            .blocking("failing", BlockingConfig::threads(1))
            .on_failure(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        drop(d.get("failing").unwrap().spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = go.recv();
            panic!("round failed");
        }));
        started.recv().unwrap();
        go_tx.send(()).unwrap();
        let report = d.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.dispatcher("failing").unwrap().panicked, 1);
        assert_eq!(
            reported.load(Ordering::SeqCst),
            1,
            "round {round}: shutdown returned before the failure was reported"
        );
    }
}
