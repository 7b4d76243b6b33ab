//! Panics the library meets outside the user's closure or future — dropping a result nobody
//! takes, a metrics recorder, a `tracing` layer — are contained like a task's own panic: they
//! reach the root failure handler, every task still resolves, no worker dies, no slot is lost.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkheads::{BlockingConfig, DispatchError, Dispatcher, Dispatchers, Failure, JoinHandle};
use common::Gate;

const DROP_MARK: &str = "contained-drop-boom";
const RECORDER_MARK: &str = "contained-recorder-boom";
const TRACING_MARK: &str = "contained-tracing-boom";

/// How long anything that should happen at once may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(5);

/// Silences panics whose message is exactly one of this file's markers (the library's own
/// assertion messages, which merely mention a marker, still print).
fn quiet() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = panic_text(info.payload());
            if ![DROP_MARK, RECORDER_MARK, TRACING_MARK].contains(&msg.as_str()) {
                prev(info);
            }
        }));
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Opens `gate` when dropped, so no pool thread stays blocked when an assertion fails first.
struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A root failure handler that forwards every failure's `Display` line.
fn failure_channel() -> (impl Fn(&Failure) + Send + Sync + 'static, Receiver<String>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    (
        move |f: &Failure| {
            let _ = tx.lock().unwrap().send(f.to_string());
        },
        rx,
    )
}

/// Waits for the next failure at the root handler.
fn next_failure(failures: &Receiver<String>, what: &str) -> String {
    failures
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} never reached the root failure handler"))
}

// ----- panics from dropping a result the library drops ---------------------------------------

/// A value whose `Drop` panics (unless the thread is already unwinding).
struct Boom;

impl Drop for Boom {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{DROP_MARK}");
        }
    }
}

/// Runs a blocking job on `d` that returns a [`Boom`], and gives up on it after it started
/// (the `run_blocking` future is dropped: the job is abandoned, its result dropped by the
/// library when the job returns). Panics if the job does not start in time.
async fn abandon_a_boom(d: &Dispatcher, round: usize) {
    let gate = Gate::new();
    let _release = OpenOnDrop(gate.clone());
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let call = tokio::spawn(d.run_blocking(move || {
        let _ = started_tx.send(());
        gate.wait();
        Boom
    }));
    if tokio::time::timeout(HANG, started_rx).await.is_err() {
        call.abort();
        panic!(
            "round {round}: the job never started on '{}': it lost its slot; stats: {:?}",
            d.name(),
            d.stats()
        );
    }
    call.abort();
    // Once the caller's task is gone, the job is abandoned; `_release` then lets it return.
    assert!(
        matches!(call.await, Err(e) if e.is_cancelled()),
        "round {round}: the caller's task was not cancelled"
    );
}

/// Abandoned results whose `Drop` panics, on a `limited(1)` view: each panic reaches the root
/// handler, naming the panic, and the view keeps its only slot (today each such panic kills
/// the view's worker and the view stalls).
#[tokio::test]
async fn a_panicking_drop_of_an_abandoned_result_costs_a_view_no_slot() {
    quiet();
    let (handler, failures) = failure_channel();
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .on_failure(handler)
        .build()
        .unwrap();
    let view = d.cpu().limited(1);
    for round in 0..3 {
        abandon_a_boom(&view, round).await;
    }
    let ran = tokio::time::timeout(HANG, view.run(async { 7 })).await;
    assert_eq!(
        ran.unwrap_or_else(|_| panic!("the view stalled; stats: {:?}", view.stats()))
            .unwrap(),
        7
    );
    for round in 0..3 {
        let line = next_failure(&failures, &format!("drop panic {round}"));
        assert!(line.contains(DROP_MARK), "{line}");
    }
    assert!(
        failures.try_recv().is_err(),
        "each panic reaches the handler once"
    );
}

/// Results whose `Drop` panics, of detached tasks on a `limited(1)` view (the handle dropped
/// before and after the result came): each panic reaches the root handler and the view keeps
/// its slot. (Passes today: these drops are already contained; kept as the detached half of
/// the contract.)
#[tokio::test]
async fn a_panicking_drop_of_a_detached_result_costs_a_view_no_slot() {
    quiet();
    let (handler, failures) = failure_channel();
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .on_failure(handler)
        .build()
        .unwrap();
    let view = d.cpu().limited(1);
    for round in 0..3 {
        let gate = Gate::new();
        let _release = OpenOnDrop(gate.clone());
        let (started_tx, started_rx) = channel();
        let h = view.spawn_blocking({
            let gate = gate.clone();
            move || {
                started_tx.send(()).unwrap();
                gate.wait();
                Boom
            }
        });
        started_rx.recv_timeout(HANG).unwrap_or_else(|_| {
            panic!(
                "round {round}: the view never started the job: it lost its slot; stats: {:?}",
                view.stats()
            )
        });
        if round % 2 == 0 {
            drop(h); // detached while running: the library drops the result when it comes
            gate.open();
        } else {
            gate.open();
            let deadline = std::time::Instant::now() + HANG;
            while !h.is_finished() {
                assert!(std::time::Instant::now() < deadline, "the job never ended");
                std::thread::yield_now();
            }
            drop(h); // detached with the result waiting in it
        }
        let line = next_failure(&failures, &format!("drop panic {round}"));
        assert!(line.contains(DROP_MARK), "{line}");
    }
    let ran = tokio::time::timeout(HANG, view.run(async { 7 })).await;
    assert_eq!(
        ran.unwrap_or_else(|_| panic!("the view stalled; stats: {:?}", view.stats()))
            .unwrap(),
        7
    );
    assert!(failures.try_recv().is_err(), "each panic is reported once");
}

/// An abandoned result whose `Drop` panics on a blocking pool: the panic reaches the root
/// handler (today it is swallowed by the pool thread's guard), and the pool keeps serving.
#[tokio::test]
async fn a_panicking_drop_of_an_abandoned_result_on_a_pool_is_reported() {
    quiet();
    let (handler, failures) = failure_channel();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        // A caller waits for the slot the previous round's job frees as it ends.
        .blocking(
            "cp-droppool",
            BlockingConfig::threads(1).queue(0).max_wait(HANG),
        )
        .on_failure(handler)
        .build()
        .unwrap();
    let pool = d.get("cp-droppool").unwrap();
    for round in 0..3 {
        abandon_a_boom(&pool, round).await;
        let line = next_failure(&failures, &format!("the drop panic of round {round}"));
        assert!(line.contains(DROP_MARK), "{line}");
        assert!(line.contains("cp-droppool"), "{line}");
    }
    let value = tokio::time::timeout(HANG, pool.run_blocking(|| 1))
        .await
        .unwrap_or_else(|_| panic!("the pool no longer serves; stats: {:?}", pool.stats()))
        .unwrap_or_else(|e| panic!("the pool no longer serves: {e}"));
    assert_eq!(value, 1);
    assert!(failures.try_recv().is_err(), "each panic is reported once");
}

// ----- a panicking metrics recorder ------------------------------------------------------------

/// A `metrics` recorder whose handles of the chosen kinds panic on every update.
#[derive(Clone, Copy, Default)]
struct PanickyRecorder {
    counters: bool,
    gauges: bool,
    histograms: bool,
}

struct PanickyHandle {
    armed: bool,
}

impl PanickyHandle {
    fn boom(&self) {
        if self.armed && !std::thread::panicking() {
            panic!("{RECORDER_MARK}");
        }
    }
}

impl metrics::CounterFn for PanickyHandle {
    fn increment(&self, _: u64) {
        self.boom()
    }
    fn absolute(&self, _: u64) {
        self.boom()
    }
}

impl metrics::GaugeFn for PanickyHandle {
    fn increment(&self, _: f64) {
        self.boom()
    }
    fn decrement(&self, _: f64) {
        self.boom()
    }
    fn set(&self, _: f64) {
        self.boom()
    }
}

impl metrics::HistogramFn for PanickyHandle {
    fn record(&self, _: f64) {
        self.boom()
    }
}

impl metrics::Recorder for PanickyRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(PanickyHandle {
            armed: self.counters,
        }))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(Arc::new(PanickyHandle { armed: self.gauges }))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(PanickyHandle {
            armed: self.histograms,
        }))
    }
}

/// Awaits `h`: it must resolve in time with its value or, at worst, as a panic; never a hang,
/// a rejection (a lost slot) or a cancellation.
async fn resolves<T: Send + std::fmt::Debug + PartialEq + 'static>(
    h: JoinHandle<T>,
    expected: T,
    d: &Dispatcher,
    what: &str,
) {
    match tokio::time::timeout(HANG, h).await {
        Err(_) => panic!(
            "{what} never resolved: a worker died or the task was lost; stats: {:?}",
            d.stats()
        ),
        Ok(Ok(v)) => assert_eq!(v, expected, "{what}"),
        Ok(Err(e @ DispatchError::Panicked { .. })) => drop(e),
        Ok(Err(e)) => panic!("{what}: {e}; stats: {:?}", d.stats()),
    }
}

/// Builds a registry under `recorder` (a pool of one thread and no queue, a view of
/// parallelism 1 over cpu), runs three tasks on each one after the other, and checks that
/// every task resolves, no slot is lost and the recorder's panics reach the root handler.
async fn survives_a_panicking_recorder(recorder: PanickyRecorder, prefix: &str) {
    quiet();
    let (handler, failures) = failure_channel();
    let (pool_name, view_name) = (format!("{prefix}-pool"), format!("{prefix}-view"));
    let built = catch_unwind(AssertUnwindSafe(|| {
        metrics::with_local_recorder(&recorder, || {
            Dispatchers::builder()
                .cpu_threads(1)
                .blocking(pool_name.as_str(), BlockingConfig::threads(1).queue(0))
                .limited(view_name.as_str(), "cpu", 1)
                .on_failure(handler)
                .build()
        })
    }));
    let d = match built {
        Ok(built) => built.unwrap(),
        Err(_) => panic!("building the registry panicked: the recorder's panic escaped"),
    };
    let pool = d.get(&pool_name).unwrap();
    let view = d.get(&view_name).unwrap();
    for i in 0..3 {
        let Ok(h) = catch_unwind(AssertUnwindSafe(|| pool.spawn_blocking(move || i))) else {
            panic!(
                "submitting task {i} to the pool panicked: the recorder's panic escaped into the caller"
            );
        };
        resolves(h, i, &pool, &format!("task {i} on the pool")).await;
    }
    for i in 0..3 {
        let Ok(h) = catch_unwind(AssertUnwindSafe(|| view.spawn(async move { i }))) else {
            panic!(
                "submitting task {i} to the view panicked: the recorder's panic escaped into the caller"
            );
        };
        resolves(h, i, &view, &format!("task {i} on the view")).await;
    }
    for d in [&pool, &view] {
        let s = d.stats();
        assert_eq!(s.in_flight, 0, "{s:?}");
        assert!(s.is_balanced(), "{s:?}");
    }
    let line = next_failure(&failures, "the recorder's panic");
    assert!(line.contains(RECORDER_MARK), "{line}");
}

/// A recorder whose gauges panic: building the registry succeeds (today the `threads` gauge
/// set at build panics out of `build`), every task resolves, no slot is lost, and the panic
/// reaches the root handler.
#[tokio::test]
async fn a_panicking_metrics_gauge_breaks_neither_build_nor_workers() {
    let recorder = PanickyRecorder {
        gauges: true,
        ..Default::default()
    };
    survives_a_panicking_recorder(recorder, "cp-gauge").await;
}

/// A recorder whose histograms panic (recorded on the worker as a task starts and ends):
/// every task resolves, the workers and slots survive, the panic reaches the root handler.
#[tokio::test]
async fn a_panicking_metrics_histogram_kills_no_worker_and_costs_no_slot() {
    let recorder = PanickyRecorder {
        histograms: true,
        ..Default::default()
    };
    survives_a_panicking_recorder(recorder, "cp-hist").await;
}

/// A recorder whose counters panic (incremented as a task is submitted and decided): the
/// panic escapes neither into the submitter nor into a worker, and no slot is lost.
#[tokio::test]
async fn a_panicking_metrics_counter_escapes_into_no_caller_and_costs_no_slot() {
    let recorder = PanickyRecorder {
        counters: true,
        ..Default::default()
    };
    survives_a_panicking_recorder(recorder, "cp-count").await;
}

// ----- a panicking tracing layer ---------------------------------------------------------------

/// A `tracing` layer that panics whenever the library's task span is entered.
struct PanicOnTaskEnter;

impl<S> tracing_subscriber::Layer<S> for PanicOnTaskEnter
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let is_task = ctx.span(id).is_some_and(|s| s.name() == "bulkheads.task");
        if is_task && !std::thread::panicking() {
            panic!("{TRACING_MARK}");
        }
    }
}

/// Submits three tasks from inside a span (so each runs under a child span the layer panics
/// on), then one from outside any span: all resolve and the last returns its value, so the
/// dispatcher kept its workers and slots.
async fn survives_a_panicking_layer(
    d: &Dispatcher,
    spawn: impl Fn(&Dispatcher, u32) -> JoinHandle<u32>,
) {
    let request = tracing::info_span!("request");
    for i in 0..3 {
        let h = request.in_scope(|| spawn(d, i));
        resolves(h, i, d, &format!("task {i} submitted in a span")).await;
    }
    let h = spawn(d, 42);
    let after = tokio::time::timeout(HANG, h).await;
    let after = after.unwrap_or_else(|_| {
        panic!(
            "a task submitted outside any span never resolved: '{}' is stuck; stats: {:?}",
            d.name(),
            d.stats()
        )
    });
    assert_eq!(after.unwrap(), 42);
}

/// A layer that panics on entering the task span must not kill a pool thread or lose its slot:
/// the task resolves and the pool serves the next one (today the task hangs forever).
#[tokio::test]
async fn a_panicking_tracing_layer_kills_no_pool_thread() {
    use tracing_subscriber::layer::SubscriberExt;
    quiet();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(PanicOnTaskEnter));
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("cp-tracepool", BlockingConfig::threads(1).queue(0))
        .build()
        .unwrap();
    let pool = d.get("cp-tracepool").unwrap();
    survives_a_panicking_layer(&pool, |p, i| p.spawn_blocking(move || i)).await;
}

/// The same on a view of parallelism 1 over the cpu pool: the view keeps its only slot.
#[tokio::test]
async fn a_panicking_tracing_layer_costs_a_view_no_slot() {
    use tracing_subscriber::layer::SubscriberExt;
    quiet();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(PanicOnTaskEnter));
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .limited("cp-traceview", "cpu", 1)
        .build()
        .unwrap();
    let view = d.get("cp-traceview").unwrap();
    survives_a_panicking_layer(&view, |v, i| v.spawn(async move { i })).await;
}
