//! Tower middleware that puts a service behind a [`bulkheads`] dispatcher.
//!
//! # The problem
//!
//! A request handler that calls a blocking driver (a legacy database client, a file API, a
//! compression library) holds the runtime worker that polls it. Under load every worker is
//! held, and the health check, the fast endpoints and the timers stop with the slow one. A
//! bulkhead gives that handler its own threads and a bounded queue: when they are full, its
//! callers get a fast, clear rejection (HTTP 503 with `Retry-After`), and the rest of the
//! service keeps running.
//!
//! [`BulkheadLayer`] does this for any tower [`Service`](tower_service::Service):
//!
//! - **Admission.** `poll_ready` takes a slot of the dispatcher's capacity, or its rejection:
//!   at once when the dispatcher has room or no `max_wait`, otherwise after waiting at most
//!   `max_wait`, in FIFO order. No caller ever waits without bound. A rejection is returned
//!   as the response future's error ([`BulkheadError::Dispatch`]); the inner service is not
//!   called.
//! - **Pinned (the default).** The inner service's response future runs *on* the dispatcher:
//!   on a `blocking` pool it is driven to its end on one pool thread, so an async handler
//!   that calls a blocking driver holds a pool thread, never one of the caller's runtime
//!   workers; on a `runtime` or a `limited` view it is a task there.
//! - **Admission only** ([`BulkheadLayer::admission_only`]). The response future stays in the
//!   caller's task; only the dispatcher's admission, its queue deadline and in-flight gate
//!   where it has them, and its counts and metrics apply.
//! - **Cancellation.** Dropping the response future (the client went away) cancels the work:
//!   work not started never starts and its slot is free at once for the next request; async
//!   work stops at its next `.await`.
//!
//! # Compared with tower's `ConcurrencyLimit`
//!
//! `tower::limit::ConcurrencyLimit` caps how many requests are in flight, and that is all:
//! a caller over the limit waits in `poll_ready` for as long as it takes (without bound,
//! behind every other waiter), and the handler runs where it was, on the caller's workers. A
//! slow blocking call under it still holds a runtime worker. A bulkhead rejects at once or
//! within `max_wait`, can reject admitted work that waited past a queue deadline, moves the
//! handler onto threads of its own, catches its panics, and counts everything through the
//! `metrics` facade.
//!
//! # Example
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulkheads::{BlockingConfig, Dispatchers};
//! use bulkheads_tower::BulkheadLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! let dispatchers = Dispatchers::builder()
//!     .blocking("legacy_db", BlockingConfig::threads(2).queue(0))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(BulkheadLayer::new(dispatchers.get("legacy_db")?))
//!     .service(service_fn(|id: u64| async move {
//!         // A blocking driver, called from async code: fine here, this runs on a pool thread.
//!         std::thread::sleep(std::time::Duration::from_millis(1));
//!         let thread = std::thread::current().name().map(str::to_owned);
//!         Ok::<_, std::io::Error>((id, thread))
//!     }));
//!
//! let (id, thread) = svc.ready().await?.call(7).await?;
//! assert_eq!(id, 7);
//! assert!(thread.unwrap().starts_with("legacy_db-")); // pool threads are `<dispatcher>-<n>`
//! # Ok(()) }
//! ```
//!
//! A full dispatcher rejects, and the response future says so:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bulkheads::{BlockingConfig, Dispatchers, RejectReason};
//! use bulkheads_tower::BulkheadLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let dispatchers = Dispatchers::builder()
//!     .blocking("legacy_db", BlockingConfig::threads(1).queue(0))
//!     .build()?;
//! let db = dispatchers.get("legacy_db")?;
//! let svc = BulkheadLayer::new(db.clone())
//!     .layer(service_fn(|()| async { Ok::<_, std::io::Error>("rows") }));
//!
//! let held = db.try_reserve()?; // the pool's only slot, taken elsewhere
//! let err = svc.clone().oneshot(()).await.unwrap_err();
//! assert_eq!(err.reject_reason(), Some(&RejectReason::QueueFull { capacity: 1 }));
//!
//! drop(held);
//! assert_eq!(svc.oneshot(()).await?, "rows");
//! # Ok(()) }
//! ```
//!
//! # HTTP
//!
//! With the `axum` feature, `http::BulkheadLayer` (same constructor) makes a layer for axum
//! routes: its error type is `Infallible`, rejections become `503 Service
//! Unavailable` with a `Retry-After` header, a handler's panic a `500`, and every response is
//! counted per dispatcher. Its `Rejection` lets handlers that call a dispatcher themselves use
//! `?`.
#![cfg_attr(feature = "axum", doc = "\nSee the [`http`] module for an example.")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
pub mod future;
mod layer;
mod service;

#[cfg(feature = "axum")]
pub mod http;

#[cfg(test)]
mod tests;

pub use crate::error::BulkheadError;
pub use crate::layer::BulkheadLayer;
pub use crate::service::Bulkhead;
