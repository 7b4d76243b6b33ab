//! The queue deadline (admitted work that waited too long to start is rejected, not started)
//! and reservations (a slot taken before the work exists).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bulkheads::{BlockingConfig, Dispatchers, LimitedConfig, RejectReason, RuntimeConfig};
use common::occupy;

/// A `run*` caller whose work is still queued at the queue deadline is rejected then (not when
/// a thread frees up); a spawned job that waited past it is rejected when a thread reaches it;
/// neither runs, and both are counted as rejected by the queue deadline.
#[tokio::test]
async fn work_queued_past_the_deadline_is_rejected_and_never_runs() {
    let deadline = Duration::from_millis(30);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "qd-pool",
            BlockingConfig::threads(1).queue(4).queue_deadline(deadline),
        )
        .build()
        .unwrap();
    let pool = d.get("qd-pool").unwrap();
    let (gate, held) = occupy(&pool, 1);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let spawned = pool.spawn_blocking(move || r.store(true, Ordering::SeqCst));
    let r = ran.clone();
    let started = Instant::now();
    let err = pool
        .run_blocking(move || r.store(true, Ordering::SeqCst))
        .await
        .unwrap_err();
    // Rejected at the deadline while the thread is still held (generous bound: the point is
    // that it did not wait for the gate, which opens only below).
    assert!(started.elapsed() < Duration::from_secs(5));
    match err.reject_reason() {
        Some(RejectReason::QueueDeadline {
            waited,
            deadline: d,
        }) => {
            assert!(*waited >= deadline, "{waited:?}");
            assert_eq!(*d, deadline);
        }
        other => panic!("expected QueueDeadline, got {other:?}: {err}"),
    }
    assert!(
        err.to_string()
            .starts_with("dispatcher 'qd-pool' rejected the task: waited "),
        "{err}"
    );
    assert!(
        err.to_string().contains("past its queue deadline of 30ms"),
        "{err}"
    );
    gate.open();
    for h in held {
        h.await.unwrap();
    }
    let err = spawned.await.unwrap_err();
    assert!(
        matches!(
            err.reject_reason(),
            Some(RejectReason::QueueDeadline { .. })
        ),
        "{err}"
    );
    assert!(!ran.load(Ordering::SeqCst), "expired work must never run");
    let s = pool.stats();
    assert_eq!(s.rejected.queue_deadline, 2, "{s:?}");
    assert_eq!((s.submitted, s.completed, s.in_flight), (3, 1, 0), "{s:?}");
    assert!(s.is_balanced(), "{s:?}");
    // Work that starts in time is not touched.
    assert_eq!(pool.run_blocking(|| 7).await.unwrap(), 7);
}

/// The same on a capped runtime and a capped view: work waiting at the in-flight cap past the
/// deadline is rejected.
#[tokio::test]
async fn the_deadline_applies_at_an_in_flight_cap_too() {
    let deadline = Duration::from_millis(20);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "qd-rt",
            RuntimeConfig::workers(1)
                .max_concurrent(1)
                .queue(2)
                .queue_deadline(deadline),
        )
        .limited(
            "qd-view",
            "cpu",
            LimitedConfig::parallelism(1)
                .max_concurrent(1)
                .queue(2)
                .queue_deadline(deadline),
        )
        .build()
        .unwrap();
    for name in ["qd-rt", "qd-view"] {
        let disp = d.get(name).unwrap();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let holder = disp.spawn(async move {
            let _ = release_rx.await;
        });
        let err = disp.run(async { 1 }).await.unwrap_err();
        assert!(
            matches!(
                err.reject_reason(),
                Some(RejectReason::QueueDeadline { .. })
            ),
            "{name}: {err}"
        );
        release_tx.send(()).unwrap();
        holder.await.unwrap();
        assert_eq!(disp.run(async { 2 }).await.unwrap(), 2);
        let s = disp.stats();
        assert_eq!(s.rejected.queue_deadline, 1, "{s:?}");
        assert!(s.is_balanced(), "{s:?}");
    }
}

/// Reservations: refused like `spawn*` when full, waiting like `run*`, the slot given back when
/// dropped unused, and spent work counted like any task.
#[tokio::test]
async fn reservations_take_and_give_back_slots() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "res",
            BlockingConfig::threads(1)
                .queue(0)
                .max_wait(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let pool = d.get("res").unwrap();
    let slot = pool.try_reserve().unwrap();
    assert_eq!(slot.dispatcher(), "res");
    let err = pool.try_reserve().unwrap_err();
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 1 })
    );
    let err = pool.reserve().await.unwrap_err();
    assert!(matches!(
        err.reject_reason(),
        Some(RejectReason::WaitTimeout { .. })
    ));
    drop(slot);
    // Given back: spent on work run on the pool's thread.
    let name = pool
        .try_reserve()
        .unwrap()
        .named("reserved")
        .run(async { std::thread::current().name().map(str::to_owned) })
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("res-0"));
    // Run here: in the awaiting task, not on a pool thread, holding the slot meanwhile.
    let reservation = pool.reserve().await.unwrap();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (polled_tx, polled_rx) = tokio::sync::oneshot::channel::<()>();
    let here = tokio::spawn(reservation.run_here(async move {
        polled_tx.send(()).unwrap();
        let _ = release_rx.await;
        std::thread::current().name().map(str::to_owned)
    }));
    polled_rx.await.unwrap();
    assert!(
        pool.try_reserve().is_err(),
        "the slot is held while the work runs here"
    );
    assert_eq!(pool.stats().active, 0, "suspended at an await: not active");
    release_tx.send(()).unwrap();
    let ran_on = here.await.unwrap().unwrap();
    assert_ne!(ran_on.as_deref(), Some("res-0"), "not on the pool's thread");
    let s = pool.stats();
    assert_eq!(s.completed, 2, "{s:?}");
    assert_eq!(s.rejected.total(), 3, "{s:?}");
    assert!(s.is_balanced(), "{s:?}");
}

/// Work run here (admission only) that waits at an in-flight gate is rejected at the queue
/// deadline itself, while the gate is still held; the dispatcher's `max_wait` and
/// `queue_deadline` can be read; a reservation spent `at` a location reports that spawn site.
#[tokio::test]
async fn run_here_is_rejected_at_the_deadline_while_the_gate_is_held() {
    let deadline = Duration::from_millis(20);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "qd-here",
            RuntimeConfig::workers(1)
                .max_concurrent(1)
                .queue(1)
                .max_wait(Duration::from_millis(5))
                .queue_deadline(deadline),
        )
        .build()
        .unwrap();
    let disp = d.get("qd-here").unwrap();
    assert_eq!(disp.max_wait(), Duration::from_millis(5));
    assert_eq!(disp.queue_deadline(), Some(deadline));
    assert_eq!(d.cpu().max_wait(), Duration::ZERO);
    assert_eq!(d.cpu().queue_deadline(), None);

    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(disp.try_reserve().unwrap().run_here(async move {
        started_tx.send(()).unwrap();
        let _ = release_rx.await;
    }));
    started_rx.await.unwrap();
    let site = std::panic::Location::caller();
    let waiter = disp.try_reserve().unwrap().at(site).run_here(async { 1 });
    let id = waiter.id();
    let dump = d.dump();
    let queued = dump.tasks().find(|t| t.id == id).unwrap();
    assert_eq!(queued.location.line(), site.line(), "{dump}");
    // Rejected while the holder still holds the gate: the deadline's own timer.
    let err = waiter.await.unwrap_err();
    assert!(
        matches!(
            err.reject_reason(),
            Some(RejectReason::QueueDeadline { .. })
        ),
        "{err}"
    );
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let s = disp.stats();
    assert_eq!(s.rejected.queue_deadline, 1, "{s:?}");
    assert!(s.is_balanced(), "{s:?}");
}

/// `queue_deadline` in a file, and what is refused.
#[test]
fn the_queue_deadline_is_a_config_key_with_a_range() {
    let d = Dispatchers::from_toml_str(
        "[cpu]\nthreads = 1\n[dispatchers.db]\nkind = \"blocking\"\nthreads = 1\nqueue_deadline = \"50ms\"\n",
    )
    .unwrap();
    drop(d);
    let err = bulkheads::Config::from_toml_str(
        "[dispatchers.db]\nkind = \"blocking\"\nthreads = 1\nqueue_deadline = \"0s\"\n\n[dispatchers.v]\nkind = \"limited\"\nbase = \"cpu\"\nparallelism = 1\nqueue_deadline = \"2h\"\n",
    )
    .unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        [
            "dispatchers.db.queue_deadline (line 4, column 18): must be more than 0s (a zero deadline would reject every queued task); leave it out for no deadline",
            "dispatchers.v.queue_deadline (line 10, column 18): must be at most 1h, got 2h",
        ]
    );
}
