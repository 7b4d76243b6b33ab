//! [`BulkheadLayer`] for HTTP routes, and the [`Responder`] its services share.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::Response;
use bulkheads::{DispatchError, Dispatcher};
use tower_layer::Layer;

use super::counters::{self, StatusCounters};
use super::rejection::{self, Counted};
use super::retry_after::RetryAfter;
use super::service::Bulkhead;

type OnReject = dyn Fn(&DispatchError) -> Response + Send + Sync;

/// Puts HTTP services (axum routes and handlers) behind a [`Dispatcher`], like
/// [`crate::BulkheadLayer`], with `Infallible` as the error type: what the dispatcher decides
/// becomes a response.
///
/// | the dispatcher | response |
/// |---|---|
/// | rejected the request (full, no room within `max_wait`, queue deadline, shutting down) | `503 Service Unavailable`, `Retry-After`, body `service unavailable (<reason>)` |
/// | cancelled the work (shutdown's deadline) | `503 Service Unavailable`, `Retry-After`, body `service unavailable (cancelled)` |
/// | the handler panicked | `500 Internal Server Error`, body `internal server error`; the panic is logged as a `tracing` error |
///
/// `<reason>` is the rejection's metric label: `queue_full`, `wait_timeout`, `queue_deadline`
/// or `shutting_down`. [`on_reject`](Self::on_reject) replaces the whole mapping.
///
/// **`Retry-After`** is estimated from the dispatcher's drain rate: when a response needs one
/// and the estimate is more than a second old, the layer reads the dispatcher's `Stats`,
/// takes the tasks finished since its previous reading over the time between them, and gives
/// the time to drain the queued tasks and waiting callers (plus this one) at that rate, in
/// whole seconds from 1 to 60 (1 until two readings exist; twice the previous estimate when
/// nothing finished). Admitted requests pay nothing for it. [`retry_after`](Self::retry_after)
/// sets a fixed value instead.
///
/// Every response (the handler's, whatever its status, and the layer's own) is counted in
/// `bulkheads_http_responses_total{dispatcher, status}`: see [`RESPONSES`](super::RESPONSES).
#[derive(Clone)]
pub struct BulkheadLayer {
    /// Admission and mode: set by `new`, `admission_only` and `task_name`.
    generic: crate::BulkheadLayer,
    /// Responses and counts: set by `new`, `retry_after` and `on_reject`; a clone in an `Arc`
    /// goes to every service made.
    responder: Responder,
}

impl fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("generic", &self.generic)
            .field("retry_after", &self.responder.fixed)
            .field("on_reject", &self.responder.on_reject.is_some())
            .finish()
    }
}

impl BulkheadLayer {
    /// A layer that runs every request's handler on `dispatcher` (pinned mode): on a blocking
    /// pool, driven to its end on one pool thread.
    #[track_caller]
    pub fn new(dispatcher: Dispatcher) -> Self {
        counters::describe();
        let name: Arc<str> = Arc::from(dispatcher.name());
        BulkheadLayer {
            responder: Responder {
                fixed: None,
                on_reject: None,
                retry_after: Arc::new(RetryAfter::new(dispatcher.clone())),
                counters: Arc::new(StatusCounters::new(dispatcher.clone())),
                name,
            },
            generic: crate::BulkheadLayer::new(dispatcher),
        }
    }

    /// Keeps handlers where they are and applies only the dispatcher's admission; see
    /// [`crate::BulkheadLayer::admission_only`].
    pub fn admission_only(mut self) -> Self {
        self.generic = self.generic.admission_only();
        self
    }

    /// Names every request's task; see [`crate::BulkheadLayer::task_name`].
    pub fn task_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.generic = self.generic.task_name(name);
        self
    }

    /// Sends this `Retry-After` (rounded up to whole seconds) instead of the estimate.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.responder.fixed = Some(rejection::whole_seconds(after));
        self
    }

    /// Makes the response of every [`DispatchError`] (rejected, panicked, cancelled) with `f`
    /// instead of the table above. A `503` or `429` response of `f` without a `Retry-After`
    /// header gets the layer's. A panic is still logged. [`default_response`](super::default_response)
    /// gives the default response, for the cases `f` leaves alone. If `f` itself panics, the
    /// panic is logged and the default response is sent.
    ///
    /// ```
    /// use axum::{http::StatusCode, response::IntoResponse};
    /// use bulkheads_tower::http::{BulkheadLayer, default_response};
    /// # let d = bulkheads::Dispatchers::builder().build().unwrap();
    /// let layer = BulkheadLayer::new(d.cpu()).on_reject(|err| {
    ///     if err.is_rejected() {
    ///         (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response()
    ///     } else {
    ///         default_response(err)
    ///     }
    /// });
    /// # drop(layer);
    /// ```
    pub fn on_reject<F>(mut self, f: F) -> Self
    where
        F: Fn(&DispatchError) -> Response + Send + Sync + 'static,
    {
        self.responder.on_reject = Some(Arc::new(f));
        self
    }

    /// The dispatcher requests are admitted by.
    pub fn dispatcher(&self) -> &Dispatcher {
        self.generic.dispatcher()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(self.generic.layer(inner), Arc::new(self.responder.clone()))
    }
}

/// How a layer's services answer and count: shared by every service of one layer.
#[derive(Clone)]
pub(crate) struct Responder {
    /// Seconds; set by [`BulkheadLayer::retry_after`].
    fixed: Option<u64>,
    /// Set by [`BulkheadLayer::on_reject`].
    on_reject: Option<Arc<OnReject>>,
    /// The estimate, made by `BulkheadLayer::new`; read by every 503 without a fixed value.
    retry_after: Arc<RetryAfter>,
    /// Made by `BulkheadLayer::new`; counts every response.
    counters: Arc<StatusCounters>,
    /// The dispatcher's name.
    pub(crate) name: Arc<str>,
}

impl Responder {
    /// The response of a request the dispatcher did not answer with the handler's.
    pub(crate) fn respond(&self, error: &DispatchError) -> Response {
        rejection::log_failure(error);
        match &self.on_reject {
            None => rejection::response_of(error, || self.retry_after_seconds()),
            Some(f) => {
                // The service's own code, called in the response path: a panic there is
                // logged and answered with the default response, not unwound into the server.
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(error)));
                let mut response = match made {
                    Ok(response) => response,
                    Err(payload) => {
                        let message = payload
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a non-string panic".to_owned());
                        tracing::error!(
                            target: "bulkheads_tower",
                            dispatcher = %self.name,
                            "the on_reject function panicked ({message}); the default response was sent"
                        );
                        return rejection::response_of(error, || self.retry_after_seconds());
                    }
                };
                let status = response.status();
                if (status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::TOO_MANY_REQUESTS)
                    && !response.headers().contains_key(header::RETRY_AFTER)
                {
                    rejection::set_retry_after(&mut response, self.retry_after_seconds());
                }
                response
            }
        }
    }

    fn retry_after_seconds(&self) -> u64 {
        match self.fixed {
            Some(seconds) => seconds,
            None => self.retry_after.seconds(),
        }
    }

    /// Counts `response`, unless a `Rejection` of this same dispatcher counted it already.
    pub(crate) fn count(&self, response: &Response) {
        if let Some(Counted(by)) = response.extensions().get::<Counted>() {
            if **by == *self.name {
                return;
            }
        }
        self.counters.count(response.status());
    }
}
