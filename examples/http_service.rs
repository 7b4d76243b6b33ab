//! An axum service with bulkheads: `/report` pinned to a blocking pool whose handler calls a
//! (simulated) blocking database driver, `/thumbnail` pinned to a CPU view over the shared `cpu`
//! pool, `/health` unpinned, `/metrics` in Prometheus format. Dispatchers come from
//! `examples/http_service.toml`. On shutdown axum stops accepting and finishes its
//! connections, then the bulkheads drain and their report is printed.
//!
//! ```text
//! cargo run --example http_service                  # serves on 127.0.0.1:3000 until Ctrl-C
//! cargo run --example http_service -- --self-test   # 127.0.0.1:0, real requests, then exits
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use bulkheads::Dispatchers;
use bulkheads_tower::http::BulkheadLayer;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How long the simulated database driver holds its thread per report.
const REPORT_TIME: Duration = Duration::from_millis(100);
/// How long the bulkheads may take to drain at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(serde::Deserialize)]
struct ReportQuery {
    id: u64,
}

/// An async handler that calls a blocking driver. Behind the layer it runs on a thread of the
/// `reports` pool, so it never holds one of the server's runtime workers.
async fn report(Query(q): Query<ReportQuery>) -> String {
    std::thread::sleep(REPORT_TIME); // legacy_driver.query(...)
    let thread = std::thread::current();
    format!("report {} from {}\n", q.id, thread.name().unwrap_or("?"))
}

#[derive(serde::Deserialize)]
struct ThumbnailQuery {
    size: u32,
}

/// CPU work: at most 2 of them render at once, on the shared cpu pool.
async fn thumbnail(Query(q): Query<ThumbnailQuery>) -> Result<String, (StatusCode, String)> {
    if !(1..=1024).contains(&q.size) {
        let msg = format!("size must be between 1 and 1024, got {}\n", q.size);
        return Err((StatusCode::BAD_REQUEST, msg));
    }
    let pixels = u64::from(q.size) * u64::from(q.size);
    let checksum = (0..pixels).fold(0u64, |h, p| h.rotate_left(5) ^ p.wrapping_mul(31));
    Ok(format!(
        "thumbnail {0}x{0}, checksum {checksum:016x}\n",
        q.size
    ))
}

fn app(dispatchers: &Dispatchers, prometheus: PrometheusHandle) -> Result<Router, Error> {
    let reports = BulkheadLayer::new(dispatchers.get("reports")?).task_name("GET /report");
    let thumbnails = BulkheadLayer::new(dispatchers.get("thumbnails")?).task_name("GET /thumbnail");
    Ok(Router::new()
        .route("/report", get(report).layer(reports))
        .route("/thumbnail", get(thumbnail).layer(thumbnails))
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(move || async move { prometheus.render() })))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let self_test = std::env::args().any(|a| a == "--self-test");

    // The recorder first: the dispatchers register their metrics when they are built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/http_service.toml");
    let dispatchers = Dispatchers::from_toml_path(path)?;
    let app = app(&dispatchers, prometheus)?;

    let addr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });

    let outcome = if self_test {
        self_test_requests(addr).await
    } else {
        println!("try: curl 'http://{addr}/report?id=1'   (Ctrl-C stops)");
        tokio::signal::ctrl_c().await.map_err(Error::from)
    };

    // Stop accepting, let the connections in progress finish, then drain the bulkheads.
    let _ = stop.send(());
    server.await??;
    let report = dispatchers.shutdown(DRAIN).await;
    print!("{report}");
    outcome
}

/// What the self-test reads of a response.
struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

async fn get_(client: &Client<HttpConnector, Empty<Bytes>>, url: String) -> Result<Reply, Error> {
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse()?))
        .await
        .map_err(|_| format!("no answer from {url} within 10 s"))??;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Real requests through a real client; an unexpected answer is an error (exit code 1).
async fn self_test_requests(addr: SocketAddr) -> Result<(), Error> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let url = |path: &str| format!("http://{addr}{path}");

    let expect = [
        ("/health", StatusCode::OK),
        ("/report?id=1", StatusCode::OK),
        ("/report?id=abc", StatusCode::BAD_REQUEST),
        ("/thumbnail?size=64", StatusCode::OK),
        ("/thumbnail?size=0", StatusCode::BAD_REQUEST),
    ];
    for (path, want) in expect {
        let reply = get_(&client, url(path)).await?;
        let outcome = format!("{} {}", reply.status.as_u16(), reply.body.trim_end());
        show(&format!("GET {path}"), &outcome);
        if reply.status != want {
            return Err(format!("GET {path}: expected {want}, got {}", reply.status).into());
        }
    }

    // Three times the capacity of /report (4 threads + 4 queued) at once: the pool serves
    // what it can hold and rejects the rest at once, with Retry-After.
    let burst = 24;
    let replies = join_all((0..burst).map(|i| {
        let (client, url) = (client.clone(), url(&format!("/report?id={i}")));
        async move { get_(&client, url).await }
    }))
    .await;
    let (mut served, mut rejected) = (0, 0);
    let mut retry_after = None;
    for reply in replies {
        let reply = reply?;
        match reply.status {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE if reply.retry_after.is_some() => {
                rejected += 1;
                retry_after = reply.retry_after;
            }
            other => return Err(format!("burst: unexpected {other}: {}", reply.body).into()),
        }
    }
    let retry_after = retry_after.as_deref().unwrap_or("-");
    show(
        &format!("{burst} x GET /report at once"),
        &format!("{served} served (200), {rejected} rejected (503, Retry-After: {retry_after})"),
    );
    let health = get_(&client, url("/health")).await?;
    show("GET /health", &health.status.as_u16().to_string());

    let metrics = get_(&client, url("/metrics")).await?;
    show("GET /metrics", &metrics.status.as_u16().to_string());
    let lines: Vec<&str> = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("bulkheads_http_responses_total{"))
        .collect();
    if lines.is_empty() {
        return Err("/metrics has no bulkheads_http_responses_total".into());
    }
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

fn show(request: &str, outcome: &str) {
    println!("{request:<26} -> {outcome}");
}

/// Awaits every future, concurrently, each on its own task.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}
