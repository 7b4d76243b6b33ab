//! Edges found in review: views made during or after shutdown, abandoned async work, abort
//! storms on capped views, submission-order at an in-flight cap, concurrent shutdowns, panics
//! from a cancelled future's `Drop`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, LimitedConfig, RejectReason, RuntimeConfig};
use common::{Latch, occupy};

#[tokio::test]
async fn views_made_after_shutdown_or_drop_reject_instead_of_queueing() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("edgepool", BlockingConfig::threads(1))
        .build()
        .unwrap();
    let cpu = d.cpu();
    let pool = d.get("edgepool").unwrap();
    let before = cpu.limited(1);
    d.shutdown(Duration::from_secs(1)).await;
    for view in [
        before,
        cpu.limited(1),
        pool.limited(1),
        cpu.limited(2).limited(1),
    ] {
        let err = view.run(async { 1 }).await.unwrap_err();
        assert_eq!(
            err.reject_reason(),
            Some(&RejectReason::ShuttingDown),
            "{err}"
        );
        let s = view.stats();
        assert_eq!((s.in_flight, s.rejected.shutting_down), (0, 1), "{s:?}");
    }
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let cpu = d.cpu();
    drop(d);
    let err = cpu.limited(1).spawn(async {}).await.unwrap_err();
    assert_eq!(err.reject_reason(), Some(&RejectReason::ShuttingDown));
}

#[tokio::test]
async fn async_work_abandoned_by_shutdown_stops_at_its_next_await() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("hogpool", BlockingConfig::threads(1))
        .build()
        .unwrap();
    let pool = d.get("hogpool").unwrap();
    let in_long_poll = Latch::new(1);
    let release = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
    struct OnDrop(std::sync::mpsc::Sender<()>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let h = {
        let (in_long_poll, release, ticks) = (in_long_poll.clone(), release.clone(), ticks.clone());
        pool.spawn(async move {
            let _guard = OnDrop(dropped_tx);
            in_long_poll.arrive();
            // One poll that outlasts the shutdown deadline and its grace.
            while !release.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    tokio::task::spawn_blocking(move || in_long_poll.wait())
        .await
        .unwrap();
    let report = d.shutdown(Duration::from_millis(10)).await;
    assert_eq!(report.dispatcher("hogpool").unwrap().abandoned, 1);
    assert!(h.await.unwrap_err().is_cancelled());
    release.store(true, Ordering::SeqCst);
    // The long poll ends at its first .await; the next poll drops the future.
    dropped_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("abandoned future was never dropped");
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
    let s = pool.stats();
    assert_eq!((s.active, s.in_flight, s.abandoned), (0, 0, 1), "{s:?}");
}

#[tokio::test]
async fn an_abort_storm_on_a_capped_view_stays_within_capacity() {
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .limited(
            "stormy",
            "cpu",
            LimitedConfig::parallelism(1).max_concurrent(2),
        )
        .build()
        .unwrap();
    let v = d.get("stormy").unwrap();
    let (gate, mut held) = occupy(&v, 1);
    let hog = held.remove(0);
    let created = Arc::new(AtomicUsize::new(0));
    let mut admitted = 0;
    for _ in 0..1000 {
        let created = created.clone();
        let h = v.spawn(async move {
            created.fetch_add(1, Ordering::SeqCst);
        });
        if !h.is_finished() {
            admitted += 1;
        }
        h.abort();
    }
    // The worker is busy: cancelled tasks keep their slots until it drops them, so only one
    // fits beside the hog; the rest are rejected instead of piling up.
    assert_eq!(admitted, 1);
    assert_eq!(v.stats().rejected.queue_full, 999);
    gate.open();
    hog.await.unwrap();
    assert_eq!(v.run(async { 3 }).await.unwrap(), 3);
    assert_eq!(
        created.load(Ordering::SeqCst),
        0,
        "no aborted task ever ran"
    );
    let s = v.stats();
    assert_eq!((s.cancelled, s.completed, s.in_flight), (1, 2, 0), "{s:?}");
    assert!(s.is_balanced());
}

#[tokio::test]
async fn tasks_pass_an_in_flight_cap_in_submission_order() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "ordered",
            RuntimeConfig::workers(1).max_concurrent(1).queue(16),
        )
        .build()
        .unwrap();
    let rt = d.get("ordered").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let inner = rt.clone();
    let o = order.clone();
    // Spawned from the runtime's own worker while holding the only permit: Tokio would run the
    // newest first; the cap must let them start in the order they were submitted.
    let handles = rt
        .run(async move {
            (0..5)
                .map(|i| {
                    let o = o.clone();
                    inner.spawn(async move { o.lock().unwrap().push(i) })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn concurrent_shutdowns_return_one_report() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("twice", BlockingConfig::threads(1))
        .build()
        .unwrap();
    let p = d.get("twice").unwrap();
    for _ in 0..3 {
        p.run_blocking(|| ()).await.unwrap();
    }
    let (a, b) = tokio::join!(
        d.shutdown(Duration::from_secs(1)),
        d.shutdown(Duration::from_secs(1))
    );
    assert_eq!(a, b);
    assert_eq!(a.dispatcher("twice").unwrap().completed, 3);
}

#[tokio::test]
async fn a_panic_from_a_cancelled_futures_drop_reaches_the_root_handler() {
    common::quiet_panics("drop-boom");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .on_failure(move |f| {
            let _ = tx.lock().unwrap().send(f.to_string());
        })
        .build()
        .unwrap();
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("drop-boom");
        }
    }
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = d.cpu().spawn(async move {
        let _bomb = Bomb;
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    started_rx.await.unwrap();
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        line.contains("panicked: drop-boom (while dropping the task's work or result)"),
        "{line}"
    );
    assert_eq!(d.cpu().run(async { 1 }).await.unwrap(), 1);
}

/// Async work whose caller left while it was inside a poll that then completes (a blocking
/// call inside an async handler whose client left) had no `.await` to stop at: it is cancelled
/// and abandoned, its value dropped, like a blocking job (it was counted as completed).
#[tokio::test]
async fn async_work_that_completes_in_the_poll_its_caller_left_is_abandoned() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("mid-poll", BlockingConfig::threads(1).queue(4))
        .runtime("mid-poll-rt", RuntimeConfig::workers(1))
        .build()
        .unwrap();
    for name in ["mid-poll", "mid-poll-rt"] {
        let p = d.get(name).unwrap();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let value_dropped = Arc::new(AtomicBool::new(false));
        struct Value(Arc<AtomicBool>);
        impl Drop for Value {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = value_dropped.clone();
        let call = p.run(async move {
            let _ = started_tx.send(());
            let _ = release.recv(); // a blocking driver call, inside this poll
            Value(flag)
        });
        tokio::select! {
            _ = call => panic!("{name}: the call was released only after its caller left"),
            _ = started => {} // the caller leaves while the work is inside its poll
        }
        release_tx.send(()).unwrap();
        // A second call runs after the first has ended: its decision is counted by then.
        p.run(async {}).await.unwrap();
        let s = p.stats();
        assert_eq!(
            (s.completed, s.cancelled, s.abandoned, s.in_flight),
            (1, 1, 1, 0),
            "{name}: {s:?}"
        );
        assert!(value_dropped.load(Ordering::SeqCst), "{name}");

        // An aborted handle still held is different: its holder reads the value, as with
        // Tokio's `JoinHandle` (a scope cancelling its children reads their ends this way).
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let h = p.spawn(async move {
            let _ = started_tx.send(());
            let _ = release.recv();
            7
        });
        started.await.unwrap();
        h.abort();
        release_tx.send(()).unwrap();
        assert_eq!(h.await.unwrap(), 7, "{name}");
        let s = p.stats();
        assert_eq!(
            (s.completed, s.cancelled, s.abandoned),
            (2, 1, 1),
            "{name}: {s:?}"
        );
    }
}
