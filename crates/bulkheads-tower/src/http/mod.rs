//! The HTTP flavour (feature `axum`): a bulkhead layer for axum routes, whose rejections are
//! responses.
//!
//! [`BulkheadLayer::new(dispatcher)`](BulkheadLayer::new) goes straight on a route with
//! `.layer(...)` (or `.route_layer(...)`): its error type is `Infallible`. The dispatcher's
//! rejections become `503 Service Unavailable` with a `Retry-After` header, a handler's panic
//! a `500 Internal Server Error`; [`BulkheadLayer::on_reject`] changes that. Handlers that
//! call a dispatcher themselves return [`Rejection`] with `?`. Every response is counted per
//! dispatcher in [`RESPONSES`].
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use bulkheads::{BlockingConfig, Dispatchers};
//! use bulkheads_tower::http::BulkheadLayer;
//! use tower::ServiceExt;
//!
//! let dispatchers = Dispatchers::builder()
//!     .blocking("reports", BlockingConfig::threads(1).queue(0))
//!     .build()?;
//! let reports = dispatchers.get("reports")?;
//!
//! async fn report() -> String {
//!     // A blocking driver, called from an async handler: this handler runs on a pool thread.
//!     std::thread::sleep(Duration::from_millis(1));
//!     format!("report from {}", std::thread::current().name().unwrap_or("?"))
//! }
//!
//! let app = Router::new()
//!     .route("/report", get(report).layer(BulkheadLayer::new(reports.clone())))
//!     .route("/health", get(|| async { "ok" }));
//!
//! let get_ = |uri| Request::get(uri).body(Body::empty());
//! let ok = app.clone().oneshot(get_("/report")?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! let body = axum::body::to_bytes(ok.into_body(), 1024).await?;
//! assert_eq!(body, "report from reports-0");
//!
//! // The pool's only slot taken elsewhere: /report answers 503 at once, /health still 200.
//! let held = reports.try_reserve()?;
//! let busy = app.clone().oneshot(get_("/report")?).await?;
//! assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(busy.headers()["retry-after"], "1");
//! let body = axum::body::to_bytes(busy.into_body(), 1024).await?;
//! assert_eq!(body, "service unavailable (queue_full)\n");
//! assert_eq!(app.oneshot(get_("/health")?).await?.status(), StatusCode::OK);
//! # drop(held);
//! # Ok(()) }
//! ```

mod counters;
mod future;
mod layer;
mod rejection;
mod retry_after;
mod service;

pub use self::counters::RESPONSES;
pub use self::future::ResponseFuture;
pub use self::layer::BulkheadLayer;
pub use self::rejection::{Rejection, default_response};
pub use self::service::Bulkhead;
