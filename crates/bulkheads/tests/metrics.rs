//! Metrics through the `metrics` facade, checked with metrics-util's debugging recorder.

mod common;

use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

fn find<'a>(
    snapshot: &'a [(
        CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> &'a DebugValue {
    snapshot
        .iter()
        .find(|(k, _, _, _)| {
            k.kind() == kind
                && k.key().name() == name
                && labels
                    .iter()
                    .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
                && k.key().labels().count() == labels.len()
        })
        .map(|(_, _, _, v)| v)
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

#[tokio::test]
async fn pool_metrics_count_every_outcome() {
    common::quiet_panics("metrics-boom");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let d = metrics::with_local_recorder(&recorder, || {
        Dispatchers::builder()
            .cpu_threads(1)
            .blocking("m", BlockingConfig::threads(1).queue(1))
            .build()
            .unwrap()
    });
    let p = d.get("m").unwrap();
    for _ in 0..3 {
        p.run_blocking(|| ()).await.unwrap();
    }
    assert!(p.run_blocking(|| panic!("metrics-boom")).await.is_err());
    // Fill 1 thread + 1 queue, then a rejection.
    let (gate, mut held) = common::occupy(&p, 1);
    let busy = held.remove(0);
    let queued = p.spawn_blocking(|| ());
    assert!(p.spawn_blocking(|| ()).await.unwrap_err().is_rejected());
    queued.abort();
    gate.open();
    busy.await.unwrap();
    d.shutdown(Duration::from_secs(5)).await;

    let snap = snapshotter.snapshot().into_vec();
    let d = ("dispatcher", "m");
    let c = |name, extra: &[(&str, &str)]| {
        let mut labels = vec![d];
        labels.extend_from_slice(extra);
        match find(&snap, MetricKind::Counter, name, &labels) {
            DebugValue::Counter(v) => *v,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(c("bulkheads_tasks_submitted_total", &[]), 7);
    assert_eq!(c("bulkheads_tasks_finished_total", &[("outcome", "ok")]), 4);
    assert_eq!(
        c("bulkheads_tasks_finished_total", &[("outcome", "panicked")]),
        1
    );
    assert_eq!(
        c(
            "bulkheads_tasks_finished_total",
            &[("outcome", "cancelled")]
        ),
        1
    );
    assert_eq!(
        c(
            "bulkheads_tasks_rejected_total",
            &[("reason", "queue_full")]
        ),
        1
    );
    assert_eq!(
        c(
            "bulkheads_tasks_rejected_total",
            &[("reason", "wait_timeout")]
        ),
        0
    );
    assert_eq!(c("bulkheads_failures_total", &[("kind", "panic")]), 1);
    let g = |name| match find(&snap, MetricKind::Gauge, name, &[d]) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{other:?}"),
    };
    assert_eq!(g("bulkheads_in_flight"), 0.0);
    assert_eq!(g("bulkheads_queue_depth"), 0.0);
    assert_eq!(g("bulkheads_active"), 0.0);
    assert_eq!(g("bulkheads_threads"), 1.0);
    let h = |name| match find(&snap, MetricKind::Histogram, name, &[d]) {
        DebugValue::Histogram(v) => v.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(h("bulkheads_queue_wait_seconds"), 5, "every started task");
    assert_eq!(h("bulkheads_run_seconds"), 5);
    // Described once, with units.
    let described = snap
        .iter()
        .find(|(k, _, _, _)| k.key().name() == "bulkheads_queue_wait_seconds")
        .unwrap();
    assert_eq!(described.1, Some(metrics::Unit::Seconds));
    assert!(described.2.is_some());
}

#[tokio::test]
async fn a_scope_bodys_panic_is_counted_in_failures_for_both_kinds_of_scope() {
    common::quiet_panics("scope-body-boom");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let d = metrics::with_local_recorder(&recorder, || {
        Dispatchers::builder()
            .cpu_threads(1)
            .on_failure(|_| {})
            .build()
            .unwrap()
    });
    let report = d
        .supervisor_scope(|_| async { panic!("scope-body-boom") })
        .await;
    assert_eq!(report.failed.len(), 1);
    let scope = d.scope(|_| async { panic!("scope-body-boom") as Result<(), String> });
    assert!(tokio::spawn(scope).await.unwrap_err().is_panic());
    let snap = snapshotter.snapshot().into_vec();
    let counted = match find(
        &snap,
        MetricKind::Counter,
        "bulkheads_failures_total",
        &[("dispatcher", "cpu"), ("kind", "panic")],
    ) {
        DebugValue::Counter(v) => *v,
        other => panic!("{other:?}"),
    };
    assert_eq!(counted, 2, "one per scope body's panic");
}
