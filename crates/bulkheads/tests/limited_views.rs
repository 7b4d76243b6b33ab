//! Limited-parallelism views: exact caps, parallelism vs concurrency, FIFO, fairness between
//! views, cancellation, panics, accounting, and views over every kind of base.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bulkheads::{
    BlockingConfig, Dispatcher, Dispatchers, LimitedConfig, RejectReason, RuntimeConfig,
};
use common::{Gate, Latch, occupy};

/// Tasks a view's worker runs before it yields to its base, as the docs say.
const BATCH: usize = 16;

/// Counts how many wrapped futures are being polled at this instant, and the peak.
#[derive(Clone, Default)]
struct PollMeter {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl PollMeter {
    fn wrap<F: Future>(&self, fut: F) -> Metered<F> {
        Metered {
            meter: self.clone(),
            fut: Box::pin(fut),
        }
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

struct Metered<F> {
    meter: PollMeter,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let now = self.meter.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.meter.peak.fetch_max(now, Ordering::SeqCst);
        let out = self.fut.as_mut().poll(cx);
        self.meter.now.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn registry(cpu: usize) -> Dispatchers {
    Dispatchers::builder().cpu_threads(cpu).build().unwrap()
}

fn spin(micros: u64) {
    let until = std::time::Instant::now() + Duration::from_micros(micros);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[tokio::test]
async fn never_runs_more_than_parallelism_tasks() {
    let d = registry(4);
    let view = d.cpu().limited(2);
    let meter = PollMeter::default();
    let handles: Vec<_> = (0..10_000u64)
        .map(|i| {
            view.spawn(meter.wrap(async move {
                match i % 3 {
                    0 => tokio::task::yield_now().await,
                    1 => tokio::time::sleep(Duration::from_micros(i % 500)).await,
                    _ => spin(5),
                }
                tokio::task::yield_now().await;
                i
            }))
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, (0..10_000u64).sum::<u64>());
    assert!(meter.peak() <= 2, "peak {}", meter.peak());
    assert!(meter.peak() >= 1);
    let s = view.stats();
    assert_eq!((s.completed, s.in_flight, s.active), (10_000, 0, 0));
    assert_eq!(s.parallelism, Some(2));
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn parked_tasks_hold_no_slot() {
    // Parallelism is not concurrency: n tasks parked on a channel do not stop an (n+1)-th.
    let d = registry(2);
    let view = d.cpu().limited(2);
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let started = Latch::new(2);
    let parked: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = tx.subscribe();
            let started = started.clone();
            view.spawn(async move {
                started.arrive();
                rx.recv().await.unwrap();
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || started.wait())
        .await
        .unwrap();
    assert_eq!(view.stats().in_flight, 2);
    assert_eq!(view.run(async { "third ran" }).await.unwrap(), "third ran");
    tx.send(()).unwrap();
    for h in parked {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn runnable_tasks_start_in_fifo_order() {
    let d = registry(2);
    let view = d.cpu().limited(1);
    let (gate, mut held) = occupy(&view, 1);
    let blocker = held.remove(0);
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let order = order.clone();
            view.spawn(async move { order.lock().unwrap().push(i) })
        })
        .collect();
    gate.open();
    blocker.await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn two_saturated_views_over_a_two_thread_base_both_progress() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("base", RuntimeConfig::workers(2))
        .limited("a", "base", 1)
        .limited("b", "base", 1)
        .build()
        .unwrap();
    let (a, b) = (d.get("a").unwrap(), d.get("b").unwrap());
    // A's first task holds its only slot until B has run all of its tasks.
    let b_done = Gate::new();
    let a_tasks: Vec<_> = (0..10)
        .map(|i| {
            let b_done = b_done.clone();
            a.spawn_blocking(move || {
                if i == 0 {
                    b_done.wait();
                }
            })
        })
        .collect();
    let b_tasks: Vec<_> = (0..10).map(|_| b.spawn_blocking(spin_briefly)).collect();
    for h in b_tasks {
        h.await.unwrap();
    }
    b_done.open();
    for h in a_tasks {
        h.await.unwrap();
    }
}

fn spin_briefly() {
    spin(50)
}

#[test]
fn a_hogging_view_delays_another_view_by_at_most_one_batch() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("one", RuntimeConfig::workers(1))
        .limited("hog", "one", 1)
        .limited("other", "one", 1)
        .build()
        .unwrap();
    let (hog, other) = (d.get("hog").unwrap(), d.get("other").unwrap());
    let log = Arc::new(Mutex::new(Vec::<char>::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A long run of CPU tasks on the hog; wait until it is under way.
    let first = Latch::new(1);
    let hogs: Vec<_> = (0..2000)
        .map(|i| {
            let (log, first) = (log.clone(), first.clone());
            hog.spawn_blocking(move || {
                spin(20);
                log.lock().unwrap().push('h');
                if i == 0 {
                    first.arrive();
                }
            })
        })
        .collect();
    first.wait();
    let submitted_at = {
        let log2 = log.clone();
        let mut l = log.lock().unwrap();
        let at = l.len();
        // Submitted while holding the log: nothing is appended in between.
        let h = other.spawn_blocking(move || log2.lock().unwrap().push('o'));
        l.push('|');
        drop(l);
        (at, h)
    };
    let (_, h) = submitted_at;
    rt.block_on(h).unwrap();
    let l = log.lock().unwrap().clone();
    let mark = l.iter().position(|c| *c == '|').unwrap();
    let ran = l.iter().position(|c| *c == 'o').unwrap();
    let hog_between = l[mark..ran].iter().filter(|c| **c == 'h').count();
    assert!(
        hog_between <= BATCH,
        "{hog_between} hog tasks ran before the other view's task (batch {BATCH})"
    );
    for h in hogs {
        h.abort();
    }
}

#[tokio::test]
async fn a_task_that_never_yields_does_not_stop_other_views_on_the_base() {
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .limited("stuck", "cpu", 1)
        .limited("free", "cpu", 1)
        .build()
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let stuck = d.get("stuck").unwrap().spawn(async move {
        // Never awaits until released: holds one base thread.
        while !r.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
    });
    let free = d.get("free").unwrap();
    for i in 0..100 {
        assert_eq!(free.run(async move { i }).await.unwrap(), i);
    }
    release.store(true, Ordering::SeqCst);
    stuck.await.unwrap();
}

#[tokio::test]
async fn a_panicking_task_keeps_the_view_serving() {
    common::quiet_panics("view-boom");
    let d = registry(2);
    let view = d.cpu().limited(1);
    for _ in 0..50 {
        let r: Result<(), _> = view.run(async { panic!("view-boom") }).await;
        assert!(r.unwrap_err().is_panic());
    }
    assert_eq!(view.run(async { 7 }).await.unwrap(), 7);
    let s = view.stats();
    assert_eq!(
        (s.panicked, s.completed, s.active, s.in_flight),
        (50, 1, 0, 0)
    );
}

#[tokio::test]
async fn abort_and_drop_cancel_view_tasks() {
    let d = registry(2);
    let view = d.cpu().limited(1);
    let (gate, mut held) = occupy(&view, 1);
    let blocker = held.remove(0);
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = ran.clone();
        view.spawn(async move { ran.store(true, Ordering::SeqCst) })
    };
    queued.abort();
    let mut dropped = {
        let ran = ran.clone();
        tokio_test::task::spawn(view.run(async move { ran.store(true, Ordering::SeqCst) }))
    };
    assert!(dropped.poll().is_pending());
    drop(dropped);
    gate.open();
    blocker.await.unwrap();
    // A parked task aborted at its .await.
    let parked = view.spawn(std::future::pending::<()>());
    assert_eq!(view.run(async { 1 }).await.unwrap(), 1);
    parked.abort();
    assert!(parked.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(!ran.load(Ordering::SeqCst));
    let s = view.stats();
    assert_eq!((s.cancelled, s.completed, s.in_flight), (3, 2, 0));
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn a_view_of_a_view_takes_the_smaller_cap() {
    let d = registry(4);
    for (outer, inner, cap) in [(3, 1, 1), (2, 3, 2)] {
        let view = d.cpu().limited(outer).limited(inner);
        let meter = PollMeter::default();
        let hs: Vec<_> = (0..500)
            .map(|_| {
                view.spawn(meter.wrap(async {
                    spin(20);
                    tokio::task::yield_now().await;
                }))
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        assert!(meter.peak() <= cap, "peak {} > {cap}", meter.peak());
    }
}

#[tokio::test]
async fn a_view_over_a_blocking_pool_runs_on_its_threads() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("vpool", BlockingConfig::threads(4).queue(0))
        .limited("vview", "vpool", 2)
        .build()
        .unwrap();
    let view = d.get("vview").unwrap();
    let meter = PollMeter::default();
    let hs: Vec<_> = (0..300)
        .map(|_| {
            view.spawn(meter.wrap(async {
                spin(20);
                tokio::time::sleep(Duration::from_micros(100)).await;
                std::thread::current().name().unwrap_or("").to_owned()
            }))
        })
        .collect();
    for h in hs {
        let name = h.await.unwrap();
        assert!(name.starts_with("vpool-"), "ran on {name}");
    }
    assert!(meter.peak() <= 2);
}

#[tokio::test]
async fn a_view_over_main_runs_on_the_current_runtime() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .limited("onmain", "main", 1)
        .build()
        .unwrap();
    let main_thread = std::thread::current().id();
    let ran_on = d
        .get("onmain")
        .unwrap()
        .run(async { std::thread::current().id() })
        .await
        .unwrap();
    // #[tokio::test] is a current-thread runtime: its only thread is this one.
    assert_eq!(ran_on, main_thread);
}

#[tokio::test]
async fn max_concurrent_caps_in_flight_tasks_and_queues_the_rest_in_order() {
    // One cpu thread: tasks that pass the gate at nearly the same moment are then polled in
    // that order (with two, two threads race to run them, and the order of their first lines
    // says nothing about the gate's).
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .limited(
            "capped",
            "cpu",
            LimitedConfig::parallelism(4).max_concurrent(2).queue(3),
        )
        .build()
        .unwrap();
    let v = d.get("capped").unwrap();
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let two_started = Latch::new(2);
    let spawn = |i: usize| {
        let mut rx = tx.subscribe();
        let (order, started) = (order.clone(), two_started.clone());
        v.spawn(async move {
            order.lock().unwrap().push(i);
            started.arrive();
            let _ = rx.recv().await;
        })
    };
    let hs: Vec<_> = (0..5).map(spawn).collect();
    tokio::task::spawn_blocking(move || two_started.wait())
        .await
        .unwrap();
    // 2 in flight + 3 queued: the sixth is rejected, naming the capacity.
    let err = v.spawn(async {}).await.unwrap_err();
    assert_eq!(
        err.reject_reason(),
        Some(&RejectReason::QueueFull { capacity: 5 })
    );
    let s = v.stats();
    assert_eq!((s.in_flight, s.queued), (5, 3));
    tx.send(()).unwrap();
    for h in hs {
        h.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 5);
    assert_eq!(
        &order[2..],
        &[2, 3, 4],
        "queued tasks start in order: {order:?}"
    );
    assert!(v.stats().is_balanced());
}

#[tokio::test]
async fn accounting_balances_on_a_view_after_a_mixed_run() {
    common::quiet_panics("mixed-view-boom");
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .limited(
            "mixedv",
            "cpu",
            LimitedConfig::parallelism(1).max_concurrent(2).queue(2),
        )
        .build()
        .unwrap();
    let v = d.get("mixedv").unwrap();
    // Cancelled after it started: it stops at its .await, and its handle resolves only once
    // it is gone and its slot is free.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let aborted = v.spawn(async move {
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    started_rx.await.unwrap();
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let (mut rx1, mut rx2) = (tx.subscribe(), tx.subscribe());
    // Both hold their admission slots until the signal.
    let held = v.spawn(async move {
        let _ = rx1.recv().await;
    });
    let panics = v.spawn(async move {
        let _ = rx2.recv().await;
        panic!("mixed-view-boom")
    });
    let queued = v.spawn(async { 5 });
    let ok = v.spawn(async { 6 });
    let rejected = v.spawn(async { 7 });
    tx.send(()).unwrap();
    held.await.unwrap();
    let r: Result<(), _> = panics.await;
    assert!(r.unwrap_err().is_panic());
    assert_eq!(queued.await.unwrap(), 5);
    let ok = ok.await;
    assert!(matches!(ok, Ok(6)), "{ok:?}");
    assert!(rejected.await.unwrap_err().is_rejected());
    let s = v.stats();
    assert_eq!(
        (
            s.submitted,
            s.completed,
            s.panicked,
            s.cancelled,
            s.rejected.total(),
            s.in_flight
        ),
        (6, 3, 1, 1, 1, 0)
    );
    assert!(s.is_balanced(), "{s:?}");
}

#[tokio::test]
async fn dedicated_runtimes_name_their_threads_and_keep_blocking_work_on_their_workers() {
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .runtime("payments", RuntimeConfig::workers(2))
        .build()
        .unwrap();
    let rt = d.get("payments").unwrap();
    assert_eq!(rt.stats().threads, 2);
    assert_eq!(common::os_threads_named("payments-").len(), 2);
    for _ in 0..20 {
        let name = rt
            .run_blocking(|| std::thread::current().name().unwrap_or("").to_owned())
            .await
            .unwrap();
        assert!(name.starts_with("payments-"), "ran on {name}");
    }
    // IO and time drivers are on.
    let slept = rt
        .run(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            std::thread::current().name().unwrap_or("").to_owned()
        })
        .await
        .unwrap();
    assert!(slept.starts_with("payments-"));
    let cpu_name = d
        .cpu()
        .run_blocking(|| std::thread::current().name().unwrap_or("").to_owned())
        .await
        .unwrap();
    assert!(cpu_name.starts_with("cpu-"), "ran on {cpu_name}");
    // Never more threads than configured: Tokio's shared blocking pool was never used.
    assert_eq!(common::os_threads_named("payments-").len(), 2);
}

#[tokio::test]
async fn shutdown_drains_views_before_their_bases_and_balances() {
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .blocking("sdpool", BlockingConfig::threads(1).queue(10))
        .limited("sdview", "sdpool", 1)
        .build()
        .unwrap();
    let view = d.get("sdview").unwrap();
    let adhoc = d.cpu().limited(1);
    let done = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..20)
        .map(|_| {
            let done = done.clone();
            view.spawn(async move {
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let parked = adhoc.spawn(std::future::pending::<()>());
    let report = d.shutdown(Duration::from_millis(200)).await;
    assert_eq!(done.load(Ordering::SeqCst), 20);
    let names: Vec<_> = report
        .dispatchers
        .iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(names, ["cpu.limited(1)", "sdview", "sdpool", "cpu"]);
    assert_eq!(report.dispatcher("sdview").unwrap().completed, 20);
    assert_eq!(report.dispatcher("cpu.limited(1)").unwrap().cancelled, 1);
    for line in &report.dispatchers {
        assert_eq!(line.in_flight, 0, "{line:?}");
        assert_eq!(
            line.submitted,
            line.completed + line.panicked + line.cancelled + line.rejected
        );
    }
    for h in hs {
        h.await.unwrap();
    }
    assert!(parked.await.unwrap_err().is_cancelled());
    assert!(
        adhoc.spawn(async {}).await.unwrap_err().reject_reason()
            == Some(&RejectReason::ShuttingDown)
    );
}

/// The ad-hoc views of a dump, and how many live tasks they show, by name.
fn adhoc_tasks(dump: &bulkheads::Dump, name: &str) -> (usize, usize) {
    let entries: Vec<_> = dump
        .dispatchers
        .iter()
        .filter(|p| &*p.stats.name == name)
        .collect();
    (entries.len(), entries.iter().map(|p| p.tasks.len()).sum())
}

#[tokio::test]
async fn a_dropped_views_running_tasks_stay_in_dumps_and_shutdown_cancels_them() {
    let d = Dispatchers::builder().cpu_threads(2).build().unwrap();
    let (parked_tx, parked_rx) = tokio::sync::oneshot::channel::<()>();
    let (busy_tx, busy_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    {
        let parked = d.cpu().limited(1);
        drop(parked.spawn(async move {
            let _ = parked_tx.send(());
            std::future::pending::<()>().await
        }));
        let busy = d.cpu().limited(1);
        drop(busy.spawn_blocking(move || {
            let _ = busy_tx.send(());
            let _ = release_rx.recv();
        }));
    } // both views dropped here, their tasks running
    parked_rx.await.unwrap();
    busy_rx.recv().unwrap();
    assert_eq!(adhoc_tasks(&d.dump(), "cpu.limited(1)"), (2, 2));

    let report = d.shutdown(Duration::from_millis(50)).await;
    release_tx.send(()).unwrap();
    assert!(report.deadline_hit);
    let line = report.dispatcher("cpu.limited(1)").unwrap();
    assert_eq!(
        (
            line.submitted,
            line.cancelled,
            line.abandoned,
            line.in_flight
        ),
        (2, 2, 1, 0),
        "{report}"
    );
}

#[tokio::test]
async fn a_dropped_views_tasks_that_finish_later_are_counted_once_and_the_view_let_go() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel::<()>();
    let view = d.cpu().limited(2);
    view.run(async {}).await.unwrap();
    let h = view.spawn(async move {
        let _ = waiting_tx.send(());
        go_rx.await.unwrap();
        7
    });
    waiting_rx.await.unwrap();
    drop(view);
    assert_eq!(adhoc_tasks(&d.dump(), "cpu.limited(2)"), (1, 1));
    go_tx.send(()).unwrap();
    assert_eq!(h.await.unwrap(), 7);
    // At rest now: the next look lets it go, and its counts join the retired ones.
    assert_eq!(adhoc_tasks(&d.dump(), "cpu.limited(2)"), (0, 0));
    let report = d.shutdown(Duration::from_secs(5)).await;
    let line = report.dispatcher("cpu.limited(2)").unwrap();
    assert_eq!(
        (
            line.submitted,
            line.completed,
            line.cancelled,
            line.in_flight
        ),
        (2, 2, 0, 0),
        "{report}"
    );
}

#[tokio::test]
async fn dropping_a_registry_with_views_inside_async_code_does_not_panic() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .runtime("droprt2", RuntimeConfig::workers(1))
        .limited("dropv", "droprt2", 1)
        .build()
        .unwrap();
    let v = d.get("dropv").unwrap();
    let parked = v.spawn(std::future::pending::<()>());
    let also: Dispatcher = d.cpu().limited(1);
    drop(d);
    assert!(parked.await.unwrap_err().is_cancelled());
    assert!(also.spawn(async {}).await.unwrap_err().is_rejected());
}
