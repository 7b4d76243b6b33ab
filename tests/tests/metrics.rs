//! `bulkheads_http_responses_total{dispatcher, status}` over real HTTP, read from
//! metrics-util's debugging recorder installed for this test binary.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use bulkheads::{BlockingConfig, Dispatcher, Dispatchers};
use bulkheads_e2e::{Client, Server};
use bulkheads_tower::http::{BulkheadLayer, RESPONSES, Rejection};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

type Snapshot = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

fn responses(snapshot: &Snapshot, dispatcher: &str, status: &str) -> u64 {
    snapshot
        .iter()
        .filter(|(k, _, _, _)| k.kind() == MetricKind::Counter && k.key().name() == RESPONSES)
        .filter(|(k, _, _, _)| {
            let labels: Vec<(&str, &str)> =
                k.key().labels().map(|l| (l.key(), l.value())).collect();
            labels.contains(&("dispatcher", dispatcher)) && labels.contains(&("status", status))
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(n) => *n,
            other => panic!("{other:?}"),
        })
        .sum()
}

fn install() -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    snapshotter
}

async fn nested(State(db): State<Dispatcher>) -> Result<&'static str, Rejection> {
    Ok(db.run_blocking(|| "never: the pool is full").await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_is_counted_once_per_dispatcher_and_status() {
    let snapshotter = install();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("mx", BlockingConfig::threads(2).queue(0))
        .blocking("my", BlockingConfig::threads(1).queue(0))
        .build()
        .unwrap();
    let (mx, my) = (d.get("mx").unwrap(), d.get("my").unwrap());
    let layer = BulkheadLayer::new(mx.clone());
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }).layer(layer.clone()))
        .route(
            "/teapot",
            get(|| async { StatusCode::IM_A_TEAPOT }).layer(layer.clone()),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("counted as a 500");
                }
            })
            .layer(layer.clone()),
        )
        // Admission only (one slot of mx), then the handler asks mx for another.
        .route(
            "/nested",
            get(nested).layer(BulkheadLayer::new(mx.clone()).admission_only()),
        )
        // No layer: the handler's own Rejection counts for its dispatcher.
        .route(
            "/unlayered",
            get({
                let my = my.clone();
                move || async move { my.run_blocking(|| "never").await.map_err(Rejection::from) }
            }),
        )
        .with_state(mx.clone());
    let server = Server::start(app).await;
    let client = Client::default();

    for _ in 0..3 {
        assert_eq!(client.get(&server.url("/ok")).await.status, StatusCode::OK);
    }
    assert_eq!(
        client.get(&server.url("/teapot")).await.status,
        StatusCode::IM_A_TEAPOT
    );
    assert_eq!(
        client.get(&server.url("/panic")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // mx: one slot held here, one by /nested itself: its inner call is rejected.
    let held = mx.try_reserve().unwrap();
    assert_eq!(
        client.get(&server.url("/nested")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Both slots held: the layer rejects.
    let held2 = mx.try_reserve().unwrap();
    assert_eq!(
        client.get(&server.url("/ok")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop((held, held2));
    let _busy = my.try_reserve().unwrap();
    assert_eq!(
        client.get(&server.url("/unlayered")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.stop().await;

    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(responses(&snap, "mx", "200"), 3);
    assert_eq!(responses(&snap, "mx", "418"), 1);
    assert_eq!(responses(&snap, "mx", "500"), 1);
    assert_eq!(
        responses(&snap, "mx", "503"),
        2,
        "the nested Rejection and the layer's own 503, each once"
    );
    assert_eq!(responses(&snap, "my", "503"), 1);
    let (_, unit, description, _) = snap
        .iter()
        .find(|(k, _, _, _)| k.key().name() == RESPONSES)
        .unwrap();
    assert_eq!(*unit, Some(metrics::Unit::Count));
    assert_eq!(
        description.as_deref(),
        Some("HTTP responses of routes behind a bulkhead, by dispatcher and status code.")
    );
}
