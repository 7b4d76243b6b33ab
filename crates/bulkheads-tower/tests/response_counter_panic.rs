//! A metrics recorder that panics while an HTTP layer counts a response: the response is
//! unaffected, and the panic reaches the root failure handler of the layer's dispatcher.
#![cfg(feature = "axum")]

use std::sync::{Mutex, mpsc};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::{Router, routing::get};
use bulkheads::{BlockingConfig, Dispatchers, FailureKind};
use bulkheads_tower::http::{BulkheadLayer, RESPONSES};
use tower::ServiceExt;

/// A recorder whose response counter panics when it is registered; every other metric is a
/// no-op.
struct ResponsesPanic;

impl metrics::Recorder for ResponsesPanic {
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
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == RESPONSES {
            panic!("response-recorder-boom");
        }
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[tokio::test]
async fn a_panicking_response_counter_reaches_the_root_handler_and_spares_the_response() {
    metrics::set_global_recorder(ResponsesPanic).unwrap();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("response-recorder-boom") {
            prev(info);
        }
    }));
    let (tx, failures) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("counted", BlockingConfig::threads(1))
        .on_failure(move |f| {
            let _ = tx.lock().unwrap().send(f.clone());
        })
        .build()
        .unwrap();
    let app = Router::new().route(
        "/rows",
        get(|| async { "rows" }).layer(BulkheadLayer::new(d.get("counted").unwrap())),
    );
    let response = app
        .oneshot(Request::get("/rows").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 64)
        .await
        .unwrap();
    assert_eq!(body, "rows");
    let failure = failures.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(failure.kind, FailureKind::Panic);
    assert_eq!(failure.dispatcher.as_ref(), "counted");
    assert_eq!(
        failure.message,
        "response-recorder-boom (in the metrics recorder, counting an HTTP response)"
    );
    assert!(failures.try_recv().is_err(), "reported once");
}
