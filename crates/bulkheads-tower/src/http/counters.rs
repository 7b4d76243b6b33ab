//! The response counter: `bulkheads_http_responses_total{dispatcher, status}`, with one handle
//! per status code, registered the first time that code is counted and then reused, so a
//! response costs one increment.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use bulkheads::Dispatcher;
use metrics::{Counter, Unit};

/// `bulkheads_http_responses_total{dispatcher, status}`: HTTP responses of the routes behind a
/// bulkhead layer on `dispatcher` (whatever the handler returned, and the layer's own 503 and
/// 500 responses), and responses made from a [`Rejection`](super::Rejection) of `dispatcher`;
/// `status` is the numeric code, such as `200` or `503`.
pub const RESPONSES: &str = "bulkheads_http_responses_total";

/// Describes [`RESPONSES`] to the installed recorder. Called by every layer made.
pub(crate) fn describe() {
    contained(|| {
        metrics::describe_counter!(
            RESPONSES,
            Unit::Count,
            "HTTP responses of routes behind a bulkhead, by dispatcher and status code."
        );
    });
}

/// The counter handles of one dispatcher, by status code (100 to 599; the codes above, which
/// no standard defines, are registered at each response).
pub(crate) struct StatusCounters {
    /// The `dispatcher` label.
    dispatcher: Arc<str>,
    /// Where a panic of the recorder is reported (its root failure handler).
    home: Dispatcher,
    /// Index `status - 100`; each set by the first response of its status, then reused.
    by_code: Box<[OnceLock<Counter>]>,
}

impl StatusCounters {
    pub(crate) fn new(home: Dispatcher) -> Self {
        StatusCounters {
            dispatcher: home.name().into(),
            home,
            by_code: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts one response of `status`.
    pub(crate) fn count(&self, status: StatusCode) {
        let Some(cell) = self.by_code.get(usize::from(status.as_u16()) - 100) else {
            return count_once(&self.dispatcher, status);
        };
        // Contained like the dispatcher's own calls into the recorder: counted, and reported
        // to the root failure handler.
        self.home
            .contain("in the metrics recorder, counting an HTTP response", || {
                cell.get_or_init(|| register(self.dispatcher.clone(), status))
                    .increment(1);
            });
    }
}

/// Counts one response of `status` for `dispatcher` without a cached handle (a
/// [`Rejection`](super::Rejection) returned by a handler: rare, and no layer to cache in).
pub(crate) fn count_once(dispatcher: &str, status: StatusCode) {
    contained(|| register(Arc::from(dispatcher), status).increment(1));
}

fn register(dispatcher: Arc<str>, status: StatusCode) -> Counter {
    metrics::counter!(RESPONSES, "dispatcher" => dispatcher, "status" => status.as_str().to_owned())
}

/// A metrics recorder is user code: its panic must not take the response with it. (Where no
/// dispatcher is at hand to report it: logged.)
fn contained(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(
            target: "bulkheads_tower",
            "the metrics recorder panicked while counting an HTTP response; the response is unaffected"
        );
    }
}
