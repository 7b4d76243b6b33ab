//! [`BulkheadError`]: what a [`Bulkhead`](crate::Bulkhead)'s response future fails with.

use std::sync::Arc;

use bulkheads::{DispatchError, RejectReason};

/// The error of a service behind a [`Bulkhead`](crate::Bulkhead): the inner service's own
/// error and the dispatcher's verdict are kept apart, so a caller can answer "overloaded"
/// (retry later) and "failed" (do not) differently.
///
/// Every message names the dispatcher:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{BlockingConfig, Dispatchers};
/// use bulkheads_tower::{BulkheadError, BulkheadLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let d = Dispatchers::builder()
///     .blocking("legacy_db", BlockingConfig::threads(1).queue(0))
///     .build()?;
/// let db = d.get("legacy_db")?;
/// let svc = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(db.clone()))
///     .service(service_fn(|n: u32| async move {
///         if n == 0 { Err("zero is not a row id") } else { Ok(n * 2) }
///     }));
///
/// // The inner service's error, behind the dispatcher's name.
/// let err = svc.clone().oneshot(0).await.unwrap_err();
/// assert_eq!(err.to_string(), "the service behind bulkhead 'legacy_db' failed: zero is not a row id");
/// assert_eq!(err.inner(), Some(&"zero is not a row id"));
///
/// // The dispatcher's rejection: its only thread is taken.
/// let held = db.try_reserve()?;
/// let err = svc.oneshot(1).await.unwrap_err();
/// assert!(err.is_rejected());
/// assert_eq!(
///     err.to_string(),
///     "dispatcher 'legacy_db' rejected the task: queue full (capacity 1: in-flight cap plus queue)"
/// );
/// # drop(held);
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkheadError<E> {
    /// The inner service failed (in `poll_ready` or in its response future). Its error is the
    /// [`source`](std::error::Error::source).
    #[error("the service behind bulkhead '{dispatcher}' failed: {source}")]
    Inner {
        /// The dispatcher of the bulkhead.
        dispatcher: Arc<str>,
        /// The inner service's error.
        #[source]
        source: E,
    },
    /// The dispatcher did not produce a response: it rejected the request (full, no room
    /// within `max_wait`, past its queue deadline, shutting down), the handler panicked, or
    /// the work was cancelled (by shutdown). The message is the [`DispatchError`]'s own, which
    /// names the dispatcher.
    #[error(transparent)]
    Dispatch(DispatchError),
    /// `call` was made without a `poll_ready` that returned `Ready(Ok(()))` first, which
    /// [`Service`](tower_service::Service) forbids. The request was not run; no slot was
    /// taken.
    #[error(
        "bulkhead '{dispatcher}' was called without a successful poll_ready first; the request was not run"
    )]
    NotReady {
        /// The dispatcher of the bulkhead.
        dispatcher: Arc<str>,
    },
}

impl<E> BulkheadError<E> {
    /// The dispatcher this error comes from.
    pub fn dispatcher(&self) -> &str {
        match self {
            BulkheadError::Inner { dispatcher, .. } | BulkheadError::NotReady { dispatcher } => {
                dispatcher
            }
            BulkheadError::Dispatch(e) => e.dispatcher(),
        }
    }

    /// The inner service's error, if this is one.
    pub fn inner(&self) -> Option<&E> {
        match self {
            BulkheadError::Inner { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The inner service's error, if this is one; otherwise `self` back.
    pub fn into_inner(self) -> Result<E, Self> {
        match self {
            BulkheadError::Inner { source, .. } => Ok(source),
            other => Err(other),
        }
    }

    /// The dispatcher's error, if this is one.
    pub fn dispatch_error(&self) -> Option<&DispatchError> {
        match self {
            BulkheadError::Dispatch(e) => Some(e),
            _ => None,
        }
    }

    /// True when the dispatcher rejected the request: the inner service was never called, and
    /// the right answer is "overloaded, retry later".
    pub fn is_rejected(&self) -> bool {
        matches!(self, BulkheadError::Dispatch(e) if e.is_rejected())
    }

    /// The reason of a rejection, if this is one.
    pub fn reject_reason(&self) -> Option<&RejectReason> {
        self.dispatch_error().and_then(DispatchError::reject_reason)
    }
}

impl<E> From<DispatchError> for BulkheadError<E> {
    fn from(e: DispatchError) -> Self {
        BulkheadError::Dispatch(e)
    }
}
