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

mod common;

#[tokio::test]
async fn a_panicking_response_counter_reaches_the_root_handler_and_spares_the_response() {
    // The response counter panics at every increment; every other metric is a no-op.
    metrics::set_global_recorder(common::PanickingCounter {
        name: RESPONSES,
        message: "response-recorder-boom",
    })
    .unwrap();
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
