//! [`BulkheadLayer`]: puts services behind a dispatcher.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use bulkheads::Dispatcher;
use tower_layer::Layer;

use crate::service::Bulkhead;

/// Where the inner service's response future runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On the dispatcher: `Reservation::run`.
    Pinned,
    /// In the caller's task, admitted and counted by the dispatcher: `Reservation::run_here`.
    AdmissionOnly,
}

/// Puts the services it wraps behind a [`Dispatcher`]: each request takes a slot of the
/// dispatcher's capacity in `poll_ready` (at once, or within its `max_wait`), and its response
/// future runs on the dispatcher (pinned, the default) or where it is
/// ([`admission_only`](Self::admission_only)).
///
/// Cloning the layer is cheap (two `Arc`s); every service it makes shares the dispatcher.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bulkheads::{BlockingConfig, Dispatchers};
/// use bulkheads_tower::BulkheadLayer;
/// use tower::{ServiceBuilder, service_fn};
///
/// let d = Dispatchers::builder()
///     .blocking("legacy_db", BlockingConfig::threads(4).queue(16))
///     .build()?;
/// let svc = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(d.get("legacy_db")?).task_name("query"))
///     .service(service_fn(|sql: &'static str| async move {
///         Ok::<_, std::io::Error>(sql.len())
///     }));
/// # drop(svc);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BulkheadLayer {
    /// Set by `new`; a clone goes to every service made.
    dispatcher: Dispatcher,
    /// The dispatcher's name, made once by `new` and shared by every error that names it.
    name: Arc<str>,
    /// `Pinned` from `new`; set to `AdmissionOnly` by `admission_only`.
    mode: Mode,
    /// Where the layer was made (the route's declaration): every request's spawn site.
    location: &'static Location<'static>,
    /// Set by `task_name`; cloned onto every request's reservation.
    task_name: Option<Cow<'static, str>>,
}

impl fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("dispatcher", &self.name)
            .field("mode", &self.mode)
            .field("task_name", &self.task_name)
            .finish()
    }
}

impl BulkheadLayer {
    /// A layer that runs every request's response future on `dispatcher` (pinned mode). On a
    /// blocking pool the future is driven to its end on one pool thread, so a handler that
    /// calls a blocking driver holds a pool thread, never one of the caller's runtime workers.
    ///
    /// Every request's task records the line that made the layer as its spawn site (in
    /// errors, failure reports and dumps).
    #[track_caller]
    pub fn new(dispatcher: Dispatcher) -> Self {
        BulkheadLayer {
            name: Arc::from(dispatcher.name()),
            dispatcher,
            mode: Mode::Pinned,
            location: Location::caller(),
            task_name: None,
        }
    }

    /// Keeps each response future where the caller polls it (its own task, on its own
    /// runtime) and applies only the dispatcher's admission: its capacity and `max_wait`, its
    /// in-flight gate and queue deadline where it has one, its counts and metrics. For async
    /// handlers that need the bulkhead's limits, not its threads.
    pub fn admission_only(mut self) -> Self {
        self.mode = Mode::AdmissionOnly;
        self
    }

    /// Names every request's task, as shown in the dispatcher's errors and failure reports
    /// (`task 'query' (#42, spawned at ...)`). A `&'static str` costs nothing per request; an
    /// owned `String` is cloned for each.
    pub fn task_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.task_name = Some(name.into());
        self
    }

    /// The dispatcher requests are admitted by.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::from_parts(
            inner,
            self.dispatcher.clone(),
            self.name.clone(),
            self.mode,
            self.location,
            self.task_name.clone(),
        )
    }
}
