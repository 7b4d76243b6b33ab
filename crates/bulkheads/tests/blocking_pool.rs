//! The `blocking` kind: admission, queueing, cancellation, thread caps, FIFO, accounting.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bulkheads::{BlockingConfig, DispatchError, Dispatcher, Dispatchers, RejectReason};
use common::{Gate, Latch, occupy, os_threads_named};

fn pool(name: &str, config: BlockingConfig) -> (Dispatchers, Dispatcher) {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(name, config)
        .build()
        .unwrap();
    let p = d.get(name).unwrap();
    (d, p)
}

#[tokio::test]
async fn queue_full_rejects_at_once_naming_capacity() {
    let (_d, p) = pool("qfull", BlockingConfig::threads(2).queue(3));
    let (gate, busy) = occupy(&p, 2);
    let queued: Vec<_> = (0..3).map(|_| p.spawn_blocking(|| ())).collect();
    let rejected = p.spawn_blocking(|| ());
    assert!(rejected.is_finished(), "a rejection is immediate");
    let err = rejected.await.unwrap_err();
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 5 })
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'qfull'") && msg.contains("capacity 5"),
        "{msg}"
    );
    // max_wait is zero: run_blocking rejects at once too.
    let err = p.run_blocking(|| ()).await.unwrap_err();
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 5 })
    );
    gate.open();
    for h in busy.into_iter().chain(queued) {
        h.await.unwrap();
    }
    let s = p.stats();
    assert_eq!(s.rejected.queue_full, 2);
    assert_eq!(s.completed, 5);
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn run_blocking_waits_up_to_max_wait_then_times_out() {
    let max_wait = Duration::from_millis(30);
    let (_d, p) = pool(
        "wait",
        BlockingConfig::threads(1).queue(0).max_wait(max_wait),
    );
    let (gate, busy) = occupy(&p, 1);
    let err = p.run_blocking(|| ()).await.unwrap_err();
    match err.reject_reason() {
        Some(RejectReason::WaitTimeout { waited }) => assert!(*waited >= max_wait, "{waited:?}"),
        other => panic!("expected WaitTimeout, got {other:?}"),
    }
    assert!(err.to_string().contains("'wait'"), "{err}");
    assert_eq!(p.stats().waiting, 0);
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    // Room again: admitted at once.
    assert_eq!(p.run_blocking(|| 7).await.unwrap(), 7);
    let s = p.stats();
    assert_eq!(s.rejected.wait_timeout, 1);
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn waiter_gets_the_slot_freed_while_it_waits() {
    let (_d, p) = pool(
        "handoff",
        BlockingConfig::threads(1)
            .queue(0)
            .max_wait(Duration::from_secs(30)),
    );
    let (gate, busy) = occupy(&p, 1);
    let mut waiter = tokio_test::task::spawn(p.run_blocking(|| "ran"));
    assert!(waiter.poll().is_pending());
    assert_eq!(p.stats().waiting, 1);
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    assert_eq!(waiter.await.unwrap(), "ran");
}

#[tokio::test]
async fn dropped_waiter_frees_its_place_and_leaks_no_permit() {
    let (_d, p) = pool(
        "dropwait",
        BlockingConfig::threads(1)
            .queue(1)
            .max_wait(Duration::from_secs(30)),
    );
    let (gate, busy) = occupy(&p, 1);
    let filler = p.spawn_blocking(|| ());
    // Three waiters line up; the first two give up.
    let mut w1 = tokio_test::task::spawn(p.run_blocking(|| 1));
    let mut w2 = tokio_test::task::spawn(p.run_blocking(|| 2));
    let mut w3 = tokio_test::task::spawn(p.run_blocking(|| 3));
    assert!(w1.poll().is_pending());
    assert!(w2.poll().is_pending());
    assert!(w3.poll().is_pending());
    assert_eq!(p.stats().waiting, 3);
    drop(w1);
    drop(w2);
    assert_eq!(p.stats().waiting, 1);
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    filler.await.unwrap();
    assert_eq!(w3.await.unwrap(), 3);
    // Every permit came back: the full capacity (1 thread + 1 queue) is admitted again.
    let (gate, busy) = occupy(&p, 1);
    let queued = p.spawn_blocking(|| ());
    assert!(!queued.is_finished());
    let over = p.spawn_blocking(|| ());
    assert!(over.await.unwrap_err().is_rejected());
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    queued.await.unwrap();
    let s = p.stats();
    assert_eq!(
        s.cancelled, 2,
        "the dropped waiters count as cancelled submissions"
    );
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn dropped_caller_never_starts_job() {
    let (_d, p) = pool("dropcall", BlockingConfig::threads(1).queue(4));
    let (gate, busy) = occupy(&p, 1);
    let ran = Arc::new(AtomicBool::new(false));
    let mut call = {
        let ran = ran.clone();
        tokio_test::task::spawn(p.run_blocking(move || ran.store(true, Ordering::SeqCst)))
    };
    // Admitted and queued behind the busy thread.
    assert!(call.poll().is_pending());
    assert_eq!(p.stats().queued, 1);
    drop(call);
    assert_eq!(p.stats().queued, 0, "its place is freed at once");
    let aborted_ran = Arc::new(AtomicBool::new(false));
    let aborted = {
        let ran = aborted_ran.clone();
        p.spawn_blocking(move || ran.store(true, Ordering::SeqCst))
    };
    aborted.abort();
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    // Anything queued after them runs; they never did.
    p.run_blocking(|| ()).await.unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert!(!aborted_ran.load(Ordering::SeqCst));
    assert!(aborted.await.unwrap_err().is_cancelled());
    let s = p.stats();
    assert_eq!((s.cancelled, s.abandoned), (2, 0));
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn aborting_a_running_job_abandons_it() {
    let (_d, p) = pool("abandon", BlockingConfig::threads(1).queue(1));
    let gate = Gate::new();
    let started = Latch::new(1);
    let finished = Arc::new(AtomicBool::new(false));
    let h = {
        let (gate, started, finished) = (gate.clone(), started.clone(), finished.clone());
        p.spawn_blocking(move || {
            started.arrive();
            gate.wait();
            finished.store(true, Ordering::SeqCst);
            "dropped"
        })
    };
    started.wait();
    h.abort();
    // The caller learns at once; the closure is still running.
    assert!(h.is_finished());
    assert!(h.await.unwrap_err().is_cancelled());
    assert!(!finished.load(Ordering::SeqCst));
    let s = p.stats();
    assert_eq!((s.cancelled, s.abandoned, s.in_flight), (1, 1, 0));
    assert_eq!(s.active, 1, "the thread is still busy with it");
    gate.open();
    p.run_blocking(|| ()).await.unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert!(p.stats().is_balanced());
}

#[tokio::test]
async fn never_runs_more_than_threads_jobs_and_never_more_threads() {
    const THREADS: usize = 3;
    let (_d, p) = pool("tcap", BlockingConfig::threads(THREADS).queue(2000));
    assert_eq!(p.stats().threads, THREADS);
    assert_eq!(os_threads_named("tcap-").len(), THREADS);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..2000)
        .map(|i| {
            let (running, peak) = (running.clone(), peak.clone());
            p.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let name = std::thread::current().name().unwrap_or("").to_owned();
                std::hint::black_box((0..200).sum::<u64>());
                running.fetch_sub(1, Ordering::SeqCst);
                (i, name)
            })
        })
        .collect();
    for h in handles {
        let (_, name) = h.await.unwrap();
        assert!(name.starts_with("tcap-"), "ran on {name}");
    }
    assert!(peak.load(Ordering::SeqCst) <= THREADS);
    assert_eq!(p.stats().threads, THREADS);
    assert_eq!(os_threads_named("tcap-").len(), THREADS);
}

#[tokio::test]
async fn queued_jobs_start_in_fifo_order() {
    let (_d, p) = pool("fifo", BlockingConfig::threads(1).queue(100));
    let (gate, busy) = occupy(&p, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let order = order.clone();
            p.spawn_blocking(move || order.lock().unwrap().push(i))
        })
        .collect();
    gate.open();
    for h in busy.into_iter().chain(handles) {
        h.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn waiters_are_admitted_in_fifo_order() {
    let (_d, p) = pool(
        "fifowait",
        BlockingConfig::threads(1)
            .queue(0)
            .max_wait(Duration::from_secs(30)),
    );
    let (gate, busy) = occupy(&p, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters: Vec<_> = (0..5)
        .map(|i| {
            let order = order.clone();
            tokio_test::task::spawn(p.run_blocking(move || order.lock().unwrap().push(i)))
        })
        .collect();
    for w in &mut waiters {
        assert!(w.poll().is_pending());
    }
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn spawn_does_not_barge_ahead_of_waiters() {
    let (_d, p) = pool(
        "nobarge",
        BlockingConfig::threads(1)
            .queue(0)
            .max_wait(Duration::from_secs(30)),
    );
    let (gate, busy) = occupy(&p, 1);
    let mut waiter = tokio_test::task::spawn(p.run_blocking(|| "waiter"));
    assert!(waiter.poll().is_pending());
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    // The freed slot was handed to the waiter, even before it is polled again.
    let barger = p.spawn_blocking(|| "barger");
    assert!(barger.await.unwrap_err().is_rejected());
    assert_eq!(waiter.await.unwrap(), "waiter");
}

#[tokio::test]
async fn accounting_balances_after_a_mixed_run() {
    common::quiet_panics("accounting-boom");
    let (_d, p) = pool(
        "mixed",
        BlockingConfig::threads(2)
            .queue(6)
            .max_wait(Duration::from_millis(5)),
    );
    let (gate, busy) = occupy(&p, 2);
    let ok: Vec<_> = (0..2).map(|i| p.spawn_blocking(move || i)).collect();
    let panics: Vec<_> = (0..2)
        .map(|_| p.spawn_blocking(|| -> i32 { panic!("accounting-boom") }))
        .collect();
    let cancelled: Vec<_> = (0..2).map(|_| p.spawn_blocking(|| 0)).collect();
    for h in &cancelled {
        h.abort();
    }
    // 2 busy + 4 queued of capacity 8 (the 2 cancelled freed theirs): 2 more fit, then full.
    let fill: Vec<_> = (0..2).map(|_| p.spawn_blocking(|| 1)).collect();
    let rejected: Vec<_> = (0..3).map(|_| p.spawn_blocking(|| 0)).collect();
    let timed_out = p.run_blocking(|| 0).await;
    assert!(matches!(
        timed_out.unwrap_err().reject_reason(),
        Some(RejectReason::WaitTimeout { .. })
    ));
    gate.open();
    for h in busy {
        h.await.unwrap();
    }
    for h in ok.into_iter().chain(fill) {
        h.await.unwrap();
    }
    for h in panics {
        assert!(h.await.unwrap_err().is_panic());
    }
    for h in cancelled {
        assert!(h.await.unwrap_err().is_cancelled());
    }
    for h in rejected {
        assert!(h.await.unwrap_err().is_rejected());
    }
    let s = p.stats();
    assert_eq!(s.submitted, 2 + 2 + 2 + 2 + 2 + 3 + 1);
    assert_eq!(s.completed, 2 + 2 + 2);
    assert_eq!(s.panicked, 2);
    assert_eq!(s.cancelled, 2);
    assert_eq!(s.rejected.queue_full, 3);
    assert_eq!(s.rejected.wait_timeout, 1);
    assert_eq!(s.in_flight, 0);
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn async_work_on_a_pool_is_pinned_to_a_pool_thread_with_timers() {
    let (_d, p) = pool("pinned", BlockingConfig::threads(1).queue(4));
    let name = p
        .run(async {
            let before = std::thread::current().name().map(str::to_owned);
            tokio::time::sleep(Duration::from_millis(1)).await;
            let after = std::thread::current().name().map(str::to_owned);
            (before, after)
        })
        .await
        .unwrap();
    assert_eq!(name.0.as_deref(), Some("pinned-0"));
    assert_eq!(name.1.as_deref(), Some("pinned-0"));
}

#[tokio::test]
async fn aborted_async_work_on_a_pool_stops_at_its_await_and_frees_the_thread() {
    let (_d, p) = pool("asyncabort", BlockingConfig::threads(1).queue(0));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = p.spawn(async move {
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    started_rx.await.unwrap();
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    // The thread is free again (queue is 0: this would be rejected otherwise).
    assert_eq!(p.run_blocking(|| 5).await.unwrap(), 5);
    let s = p.stats();
    assert_eq!((s.cancelled, s.abandoned), (1, 0));
    assert!(s.is_balanced(), "{s:?}");
}

#[test]
fn builds_and_runs_outside_any_runtime() {
    let (d, p) = pool("plain", BlockingConfig::threads(1));
    let h = p.spawn_blocking(|| 3);
    let v = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(h)
        .unwrap();
    assert_eq!(v, 3);
    drop(d);
}

#[tokio::test]
async fn handles_outliving_the_registry_are_rejected_as_shutting_down() {
    let (d, p) = pool("orphan", BlockingConfig::threads(1));
    drop(d);
    let err = p.run_blocking(|| ()).await.unwrap_err();
    assert_eq!(err.reject_reason(), Some(&RejectReason::ShuttingDown));
    assert!(
        matches!(err, DispatchError::Rejected { ref dispatcher, .. } if &**dispatcher == "orphan")
    );
}

#[tokio::test]
async fn dropping_the_registry_in_async_context_cancels_queued_work_without_blocking() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("dropq", BlockingConfig::threads(1).queue(4))
        .runtime("droprt", bulkheads::RuntimeConfig::workers(1))
        .build()
        .unwrap();
    let p = d.get("dropq").unwrap();
    let (gate, busy) = occupy(&p, 1);
    let queued = p.spawn_blocking(|| ());
    let rt_task = d.get("droprt").unwrap().spawn(std::future::pending::<()>());
    drop(d); // inside #[tokio::test]'s runtime: must neither panic nor block
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(
        busy.into_iter()
            .next()
            .unwrap()
            .await
            .unwrap_err()
            .is_cancelled()
    );
    assert!(rt_task.await.unwrap_err().is_cancelled());
    gate.open();
    let s = p.stats();
    assert_eq!((s.cancelled, s.abandoned), (2, 1));
    assert!(s.is_balanced(), "{s:?}");
}

#[test]
fn unknown_dispatcher_lists_known_names() {
    let (d, _) = pool("known", BlockingConfig::threads(1));
    let err = d.get("unknown").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown dispatcher 'unknown'; known dispatchers: cpu, known"
    );
}

#[tokio::test]
async fn task_names_and_spawn_sites_show_in_errors() {
    common::quiet_panics("named-boom");
    let (_d, p) = pool("names", BlockingConfig::threads(1));
    let err = p
        .task("nightly-vacuum")
        .run_blocking(|| -> () { panic!("named-boom") })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("task 'nightly-vacuum' (#"), "{msg}");
    assert!(msg.contains("blocking_pool.rs"), "{msg}");
    assert!(
        msg.ends_with("on dispatcher 'names' panicked: named-boom"),
        "{msg}"
    );
    let _ = Poll::<()>::Pending;
}
