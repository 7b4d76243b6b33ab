//! Scopes: all-or-nothing (`Dispatchers::scope`) and supervisor scopes
//! (`Dispatchers::supervisor_scope`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, Failure, FailureKind, ScopeFailure};

/// A registry whose root failure handler sends every failure it gets to the returned channel.
fn registry() -> (Dispatchers, mpsc::Receiver<Failure>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .blocking("scope-pool", BlockingConfig::threads(2))
        .on_failure(move |f| {
            let _ = tx.lock().unwrap().send(f.clone());
        })
        .build()
        .unwrap();
    (d, rx)
}

/// Sends on drop: proves a child's future was dropped (cancelled or done).
struct Dropped(Option<mpsc::Sender<()>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_scope_returns_its_value_after_every_child_has_ended() {
    let (d, failures) = registry();
    let pool = d.get("scope-pool").unwrap();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let ended = Arc::new(AtomicUsize::new(0));
    let e = ended.clone();
    let scope = d.scope(|s| async move {
        let a = s.spawn(async { Ok::<_, String>(20) });
        let b = s.spawn_blocking_on(&pool, || Ok(22));
        // A child the body does not await: the scope still waits for it.
        s.spawn(async move {
            let _ = release_rx.await;
            e.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        Ok::<_, String>(a.await? + b.await?)
    });
    let scope = tokio::spawn(scope);
    tokio::task::yield_now().await;
    assert!(!scope.is_finished(), "a child still runs");
    release_tx.send(()).unwrap();
    assert_eq!(scope.await.unwrap().unwrap(), 42);
    assert_eq!(
        ended.load(Ordering::SeqCst),
        1,
        "returned only after the last child"
    );
    assert!(failures.try_recv().is_err(), "nothing failed");
    assert_eq!(d.cpu().stats().in_flight, 0);
}

/// A user's own error type, as a service would have.
#[derive(Debug, PartialEq)]
struct AppError(&'static str);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "app error: {}", self.0)
    }
}

/// Children are awaited with `?` in a body of the user's own error type; a child's `Err`
/// cancels the body at that `.await` (it never resumes with the error) and is what the scope
/// returns.
#[tokio::test]
async fn children_are_awaited_with_question_mark_and_a_childs_error_is_the_scopes() {
    let (d, failures) = registry();
    let cpu = d.cpu();
    let (a, b) = d
        .scope(|s| async move {
            let a = s.spawn_on(&cpu, async { Ok::<_, AppError>(6) });
            let b = s.spawn(async { Ok::<_, AppError>("seven") });
            Ok::<_, AppError>((a.await?, b.await?))
        })
        .await
        .unwrap();
    assert_eq!((a, b), (6, "seven"));

    let resumed = Arc::new(AtomicUsize::new(0));
    let r = resumed.clone();
    let err = d
        .scope(|s| async move {
            let failing = s.spawn(async { Err::<u32, _>(AppError("parse")) });
            let value = failing.await?;
            // Never reached: the failure cancels the body at the `.await` above.
            r.fetch_add(1, Ordering::SeqCst);
            Ok::<_, AppError>(value)
        })
        .await
        .unwrap_err();
    match &err.cause {
        ScopeFailure::Child { error, .. } => assert_eq!(error, &AppError("parse")),
        other => panic!("expected the child's error, got {other:?}"),
    }
    assert!(err.later.is_empty(), "{:?}", err.later);
    assert_eq!(
        resumed.load(Ordering::SeqCst),
        0,
        "the body resumed after the failure"
    );
    assert!(
        err.to_string().ends_with("failed: app error: parse"),
        "{err}"
    );
    // Observed by the caller: nothing reaches the root handler.
    assert!(failures.try_recv().is_err());
}

#[tokio::test]
async fn the_first_failure_cancels_the_rest_and_later_ones_are_attached() {
    let (d, failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let (signal_tx, signal_rx) = mpsc::channel::<()>();
    let signal_tx = Mutex::new(signal_tx);
    let err = d
        .scope(|s| {
            let tx1 = signal_tx.lock().unwrap().clone();
            let tx2 = signal_tx.lock().unwrap().clone();
            async move {
                // Waits forever: cancelled by the first failure.
                let guard = Dropped(Some(cancelled_tx));
                s.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<Result<(), String>>().await
                });
                s.spawn(async move {
                    tx1.send(()).unwrap();
                    Err::<(), _>("first".to_owned())
                });
                s.spawn(async move {
                    tx2.send(()).unwrap();
                    Err::<(), _>("second".to_owned())
                });
                // Both failing children have returned (or are returning) before the scope
                // looks at its children again.
                signal_rx.recv().unwrap();
                signal_rx.recv().unwrap();
                std::future::pending::<Result<(), String>>().await
            }
        })
        .await
        .unwrap_err();
    let first = match &err.cause {
        ScopeFailure::Child { error, task, .. } => {
            assert!(
                task.parent.as_deref().unwrap().starts_with("scope #"),
                "{task}"
            );
            error.clone()
        }
        other => panic!("expected a child's error, got {other:?}"),
    };
    assert_eq!(err.later.len(), 1, "{err:?}");
    let second = &err.later[0];
    assert_eq!(second.kind, FailureKind::Error);
    let mut both = [first, second.message.clone()];
    both.sort();
    assert_eq!(both, ["first".to_owned(), "second".to_owned()]);
    cancelled_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiting child was cancelled");
    assert!(
        failures.try_recv().is_err(),
        "observed failures never reach the root handler"
    );
    assert_eq!(d.cpu().stats().in_flight, 0, "no child outlives its scope");
}

#[tokio::test]
async fn a_child_panic_fails_the_scope() {
    common::quiet_panics("scope-boom");
    let (d, failures) = registry();
    let err = d
        .scope(|s| async move {
            s.spawn(async { panic!("scope-boom") as Result<(), String> });
            std::future::pending::<Result<(), String>>().await
        })
        .await
        .unwrap_err();
    match &err.cause {
        ScopeFailure::Dispatch(e) => assert!(e.is_panic() && e.to_string().contains("scope-boom")),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(err.to_string().contains("panicked: scope-boom"), "{err}");
    assert!(failures.try_recv().is_err());
}

/// A body awaiting a child that failed may be polled again before the scope cancels it (woken
/// by another child): the child's handle stays pending, and the scope returns the failure
/// (Tokio's oneshot used to panic there, "called after complete", in the caller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_polled_again_after_its_awaited_child_failed_still_gets_the_scope_error() {
    common::quiet_panics("scope-boom");
    let (d, failures) = registry();
    let d = Arc::new(d);
    let pool = d.get("scope-pool").unwrap();
    for _ in 0..300 {
        let (dd, pool) = (d.clone(), pool.clone());
        let joined = tokio::spawn(async move {
            dd.scope(|s| async move {
                let a = s.spawn_blocking_on(&pool, || Ok::<u32, String>(1));
                let b = s.spawn(async {
                    tokio::task::yield_now().await;
                    panic!("scope-boom") as Result<u32, String>
                });
                let c = s.spawn(async { Ok(3u32) });
                Ok::<_, String>(a.await? + b.await? + c.await?)
            })
            .await
        })
        .await;
        let err = joined
            .expect("the scope's caller must not panic")
            .unwrap_err();
        assert!(err.to_string().contains("scope-boom"), "{err}");
    }
    assert!(
        failures.try_recv().is_err(),
        "observed failures stay observed"
    );
}

/// An error type whose `Display` panics.
struct BadDisplay;

impl std::fmt::Display for BadDisplay {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("scope-boom in Display")
    }
}

/// The scope formats the errors it keeps as failures; a `Display` that panics is contained
/// (it aborted the process: the panic unwound through the scope, whose drop formatted again).
#[tokio::test]
async fn an_error_whose_display_panics_is_contained() {
    common::quiet_panics("scope-boom");
    let (d, failures) = registry();
    let (both_failed_tx, both_failed) = tokio::sync::oneshot::channel::<()>();
    let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
    let err = d
        .scope(|s| async move {
            s.spawn(async move {
                let _ = first_tx.send(());
                Err::<(), _>(BadDisplay)
            });
            s.spawn(async move {
                // Fails once the first has, before its cancellation can reach it.
                let _ = first.await;
                let _ = both_failed_tx.send(());
                Err::<(), _>(BadDisplay)
            });
            let _ = both_failed.await;
            Ok::<(), BadDisplay>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err.cause, ScopeFailure::Child { .. }));
    for f in &err.later {
        assert_eq!(
            f.message,
            "(the error's Display panicked: scope-boom in Display)"
        );
    }
    assert!(
        failures.try_recv().is_err(),
        "observed failures stay observed"
    );
    // A scope dropped with a failure seen (waiting for a child stuck in a poll) hands it to the
    // root handler, formatted the same way.
    struct OnDrop(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.take().map(|tx| tx.send(()));
        }
    }
    let (release_tx, release) = mpsc::channel::<()>();
    let (body_dropped_tx, body_dropped) = tokio::sync::oneshot::channel::<()>();
    // The stuck child tells a plain thread, which lets the failing child go: a wake-up from
    // the stuck worker itself would park the failing child in that worker's own slot.
    let (stuck_tx, stuck) = mpsc::channel::<()>();
    let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
    let relay = std::thread::spawn(move || {
        if stuck.recv().is_ok() {
            let _ = go_tx.send(());
        }
    });
    let scope = d.scope(|s| async move {
        let _guard = OnDrop(Some(body_dropped_tx));
        s.spawn(async move {
            let _ = stuck_tx.send(());
            let _ = release.recv(); // stuck in its poll until released
            Ok(())
        });
        s.spawn(async move {
            // Fails once the other is stuck (not merely queued, which a cancel would end).
            let _ = go.await;
            Err::<(), _>(BadDisplay)
        });
        std::future::pending::<Result<(), BadDisplay>>().await
    });
    tokio::select! {
        r = scope => panic!("the scope waits for its stuck child: {:?}", r.is_ok()),
        _ = body_dropped => {} // the failure was seen: it cancelled the body
    }
    let reported = failures.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        reported.message,
        "(the error's Display panicked: scope-boom in Display)"
    );
    release_tx.send(()).unwrap();
    relay.join().unwrap();
}

#[tokio::test]
async fn the_bodys_error_cancels_every_child() {
    let (d, _failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let err = d
        .scope(|s| async move {
            for _ in 0..3 {
                let guard = Dropped(Some(cancelled_tx.clone()));
                s.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<Result<(), String>>().await
                });
            }
            Err::<(), _>("body gave up".to_owned())
        })
        .await
        .unwrap_err();
    assert!(matches!(&err.cause, ScopeFailure::Body(e) if e == "body gave up"));
    assert!(
        err.later.is_empty(),
        "cancellations are not failures: {err:?}"
    );
    for _ in 0..3 {
        cancelled_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    assert_eq!(d.cpu().stats().in_flight, 0);
}

#[tokio::test]
async fn dropping_a_scope_cancels_its_children() {
    let (d, _failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let scope = d.scope::<(), String, _, _>(|s| async move {
        let guard = Dropped(Some(cancelled_tx));
        s.spawn(async move {
            let _guard = guard;
            std::future::pending::<Result<(), String>>().await
        });
        started_tx.send(()).unwrap();
        std::future::pending::<Result<(), String>>().await
    });
    tokio::select! {
        _ = scope => unreachable!("the scope never ends by itself"),
        _ = started_rx => {}
    }
    cancelled_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the child of a dropped scope is cancelled");
    let report = d.shutdown(Duration::from_secs(5)).await;
    assert!(!report.deadline_hit, "{report}");
    assert_eq!(report.dispatcher("cpu").unwrap().cancelled, 1, "{report}");
}

#[tokio::test]
async fn a_supervisor_scope_reports_child_failures_and_lets_siblings_go_on() {
    common::quiet_panics("sup-boom");
    let (d, failures) = registry();
    let pool = d.get("scope-pool").unwrap();
    let report = d
        .supervisor_scope(|s| async move {
            s.spawn(async { Err::<(), _>("disk full") });
            s.spawn_blocking_on(&pool, || -> () { panic!("sup-boom") });
            for _ in 0..3 {
                s.spawn(async {});
            }
            s.spawn_blocking_on(&pool, || Ok::<_, String>(1));
            "done"
        })
        .await;
    assert_eq!(report.value, Some("done"));
    assert_eq!(report.ok, 4);
    assert_eq!(report.cancelled, 0);
    let mut kinds: Vec<_> = report
        .failed
        .iter()
        .map(|f| (f.kind, f.message.clone()))
        .collect();
    kinds.sort_by_key(|(_, m)| m.clone());
    assert_eq!(
        kinds,
        [
            (FailureKind::Error, "disk full".to_owned()),
            (FailureKind::Panic, "sup-boom".to_owned()),
        ]
    );
    // Each went to the root handler exactly once, with its path.
    let mut got: Vec<Failure> = (0..2)
        .map(|_| failures.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert!(
        failures.recv_timeout(Duration::from_millis(50)).is_err(),
        "exactly once"
    );
    got.sort_by_key(|f| f.message.clone());
    for f in &got {
        assert!(f.path().unwrap().starts_with("supervisor scope #"), "{f}");
        assert!(!f.restarting);
    }
    assert!(
        got[0].to_string().contains("failed: disk full"),
        "{}",
        got[0]
    );
}

#[tokio::test]
async fn a_supervisor_scopes_body_panic_cancels_its_children() {
    common::quiet_panics("body-boom");
    let (d, failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let report = d
        .supervisor_scope(|s| async move {
            let guard = Dropped(Some(cancelled_tx));
            s.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
            tokio::task::yield_now().await;
            panic!("body-boom");
        })
        .await;
    // `SupervisorReport` alone is the report of a body that returns `()`.
    let report: bulkheads::SupervisorReport = report;
    assert_eq!(report.value, None);
    assert_eq!(report.cancelled, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].kind, FailureKind::Panic);
    assert_eq!(report.failed[0].message, "body-boom");
    cancelled_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        failures.try_recv().is_err(),
        "the body's panic is the caller's, in the report"
    );
}

#[tokio::test]
async fn a_child_failing_after_the_body_returned_still_cancels_its_siblings() {
    let (d, _failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<()>();
    let err = d
        .scope(|s| async move {
            let guard = Dropped(Some(cancelled_tx));
            s.spawn(async move {
                let _guard = guard;
                std::future::pending::<Result<(), String>>().await
            });
            // Fails only once the body has returned.
            s.spawn(async move {
                let _ = fail_rx.await;
                Err::<(), _>("late failure".to_owned())
            });
            let _ = fail_tx.send(());
            Ok::<_, String>(7)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err.cause, ScopeFailure::Child { error, .. } if error == "late failure"),
        "{err:?}"
    );
    cancelled_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiting child was cancelled");
    assert_eq!(d.cpu().stats().in_flight, 0, "no child outlives its scope");
}

/// Sends on drop, then panics: a body whose cancellation panics.
struct PanicsOnDrop(Option<mpsc::Sender<()>>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        panic!("the body's value panicked on drop");
    }
}

#[tokio::test]
async fn a_body_panicking_while_cancelled_is_a_later_failure_and_the_first_one_is_returned() {
    let (d, failures) = registry();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let err = d
        .scope(|s| async move {
            let _guard = PanicsOnDrop(Some(dropped_tx));
            s.spawn(async { Err::<(), _>("child err".to_owned()) });
            std::future::pending::<Result<(), String>>().await
        })
        .await
        .unwrap_err();
    dropped_rx.recv().unwrap();
    assert!(
        matches!(&err.cause, ScopeFailure::Child { error, .. } if error == "child err"),
        "{err:?}"
    );
    assert_eq!(err.later.len(), 1, "{err:?}");
    assert_eq!(err.later[0].kind, FailureKind::Panic);
    assert_eq!(err.later[0].message, "the body's value panicked on drop");
    assert!(
        failures.try_recv().is_err(),
        "observed: not for the root handler"
    );
}

#[tokio::test]
async fn a_body_panic_cancels_the_children_then_resumes_in_the_caller() {
    let (d, failures) = registry();
    let (cancelled_tx, cancelled_rx) = mpsc::channel();
    let (running_tx, running_rx) = tokio::sync::oneshot::channel::<()>();
    let scope = d.scope::<(), String, _, _>(|s| async move {
        let guard = Dropped(Some(cancelled_tx));
        s.spawn(async move {
            let _guard = guard;
            let _ = running_tx.send(());
            std::future::pending::<Result<(), String>>().await
        });
        let _ = running_rx.await;
        panic!("the body gave up");
    });
    let joined = tokio::spawn(scope).await;
    let panic = joined.unwrap_err();
    assert!(panic.is_panic());
    let message = panic.into_panic();
    assert_eq!(
        message.downcast_ref::<&str>().copied(),
        Some("the body gave up")
    );
    cancelled_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the child was cancelled");
    assert_eq!(d.cpu().stats().in_flight, 0, "no child outlives its scope");
    assert!(
        failures.try_recv().is_err(),
        "the panic went to the caller only"
    );
}

#[tokio::test]
async fn a_scope_dropped_after_its_body_panicked_reports_the_panic() {
    let (d, failures) = registry();
    let pool = d.get("scope-pool").unwrap();
    let gate = common::Gate::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (panicking_tx, panicking_rx) = mpsc::channel::<()>();
    let g = gate.clone();
    let scope = d.scope::<(), String, _, _>(move |s| async move {
        // A child stuck inside one poll on a pool thread: the scope must wait for it.
        s.spawn_on(&pool, async move {
            let _ = started_tx.send(());
            g.wait();
            Ok(())
        });
        let _ = started_rx.await;
        panicking_tx.send(()).unwrap();
        panic!("the body gave up while a child was stuck");
    });
    let mut scope = Box::pin(scope);
    // Poll the scope until its body has panicked (in that same poll, the scope caught it).
    while panicking_rx.try_recv().is_err() {
        tokio::select! {
            biased;
            _ = &mut scope => panic!("the scope returned while a child was stuck"),
            _ = tokio::task::yield_now() => {}
        }
    }
    drop(scope); // e.g. a timeout around it fired
    let failure = failures.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(failure.kind, FailureKind::Panic);
    assert_eq!(failure.message, "the body gave up while a child was stuck");
    assert_eq!(failure.task.name.as_deref(), Some("body"));
    gate.open();
}
