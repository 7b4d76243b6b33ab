//! [`Rejection`]: a [`DispatchError`] as an HTTP response, and the default mapping the layer
//! uses: rejected or cancelled → 503 with `Retry-After`, panicked → 500.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkheads::DispatchError;

use super::counters;

/// The `Retry-After` of a [`Rejection`] made from a [`DispatchError`] alone, in seconds.
pub(crate) const DEFAULT_RETRY_AFTER: u64 = 1;

/// A [`DispatchError`] as an HTTP response, for handlers that call a dispatcher themselves:
/// `From<DispatchError>` lets them use `?`.
///
/// Its response is the one the layer gives by default: `503 Service Unavailable` with a
/// `Retry-After` header for a rejection or a cancelled task (1 second unless set with
/// [`retry_after`](Self::retry_after)), `500 Internal Server Error` for a panic (which is also
/// logged, with its message, as a `tracing` error). Bodies are short plain text that names no
/// dispatcher and no panic message: `service unavailable (queue_full)`,
/// `service unavailable (cancelled)`, `internal server error`. The response is counted in
/// `bulkheads_http_responses_total` under the error's dispatcher, once, also when a bulkhead
/// layer of the same dispatcher passes it on.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, extract::State, routing::get};
/// use bulkheads::{BlockingConfig, Dispatcher, Dispatchers};
/// use bulkheads_tower::http::Rejection;
///
/// async fn rows(State(db): State<Dispatcher>) -> Result<String, Rejection> {
///     Ok(db.run_blocking(|| "3 rows".to_owned()).await?)
/// }
///
/// let d = Dispatchers::builder()
///     .blocking("legacy_db", BlockingConfig::threads(1).queue(0))
///     .build()?;
/// let db = d.get("legacy_db")?;
/// let app: Router = Router::new().route("/rows", get(rows)).with_state(db.clone());
///
/// use axum::{body::Body, http::{Request, StatusCode}};
/// use tower::ServiceExt;
/// let ok = app.clone().oneshot(Request::get("/rows").body(Body::empty())?).await?;
/// assert_eq!(ok.status(), StatusCode::OK);
///
/// let held = db.try_reserve()?; // the only slot, taken elsewhere
/// let busy = app.oneshot(Request::get("/rows").body(Body::empty())?).await?;
/// assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(busy.headers()["retry-after"], "1");
/// # drop(held);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Rejection {
    error: DispatchError,
    /// Set by [`Rejection::retry_after`]; [`DEFAULT_RETRY_AFTER`] otherwise.
    retry_after: Option<u64>,
}

impl Rejection {
    /// The response of `error`.
    pub fn new(error: DispatchError) -> Self {
        Rejection {
            error,
            retry_after: None,
        }
    }

    /// The `Retry-After` to send with a 503, rounded up to whole seconds.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(whole_seconds(after));
        self
    }

    /// The status the response will have: 503 for a rejection or a cancelled task, 500
    /// otherwise.
    pub fn status(&self) -> StatusCode {
        status_of(&self.error)
    }

    /// The error.
    pub fn error(&self) -> &DispatchError {
        &self.error
    }

    /// The error, by value.
    pub fn into_error(self) -> DispatchError {
        self.error
    }
}

impl From<DispatchError> for Rejection {
    fn from(error: DispatchError) -> Self {
        Rejection::new(error)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        log_failure(&self.error);
        let mut response = response_of(&self.error, || {
            self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER)
        });
        let dispatcher = self.error.dispatcher();
        counters::count_once(dispatcher, response.status());
        response
            .extensions_mut()
            .insert(Counted(Arc::from(dispatcher)));
        response
    }
}

/// Marks a response already counted for a dispatcher, so that a layer of the same dispatcher
/// does not count it again.
#[derive(Debug, Clone)]
pub(crate) struct Counted(pub(crate) Arc<str>);

/// 503 for a rejection or a cancelled task, 500 for anything else.
pub(crate) fn status_of(error: &DispatchError) -> StatusCode {
    if error.is_rejected() || error.is_cancelled() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// The response a [`BulkheadLayer`](super::BulkheadLayer) gives by default for `error`,
/// without its `Retry-After` header (the layer adds one to a 503 that has none): for an
/// [`on_reject`](super::BulkheadLayer::on_reject) function to fall back on. It neither logs
/// nor counts.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::http::StatusCode;
/// use bulkheads::{BlockingConfig, Dispatchers};
/// use bulkheads_tower::http::default_response;
///
/// let d = Dispatchers::builder().blocking("db", BlockingConfig::threads(1).queue(0)).build()?;
/// let db = d.get("db")?;
/// let _held = db.try_reserve()?;
/// let err = db.run_blocking(|| ()).await.unwrap_err();
/// let response = default_response(&err);
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// let body = axum::body::to_bytes(response.into_body(), 100).await?;
/// assert_eq!(body, "service unavailable (queue_full)\n");
/// # Ok(()) }
/// ```
pub fn default_response(error: &DispatchError) -> Response {
    let status = status_of(error);
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return (status, "internal server error\n").into_response();
    }
    let what = match error.reject_reason() {
        Some(reason) => reason.label(),
        None => "cancelled",
    };
    (status, format!("service unavailable ({what})\n")).into_response()
}

/// The default response of `error`, with `Retry-After` on a 503 (seconds, asked for only
/// then).
pub(crate) fn response_of(error: &DispatchError, retry_after: impl FnOnce() -> u64) -> Response {
    let mut response = default_response(error);
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        set_retry_after(&mut response, retry_after());
    }
    response
}

pub(crate) fn set_retry_after(response: &mut Response, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// A panic becomes a bare 500: its message goes to the log instead of to the client.
pub(crate) fn log_failure(error: &DispatchError) {
    if error.is_panic() {
        tracing::error!(target: "bulkheads_tower", "{error}");
    }
}

pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
