//! A supervisor as its loop reads it: the checked declaration ([`Plan`]) with the metric
//! handles registered when it started. Built by `supervisor.rs` from the builder, read by
//! `run.rs`; nested supervisors are plans inside a plan.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;

use super::policy::{Backoff, Intensity, Restart, Strategy};
use crate::dispatcher::handle::Dispatcher;
use crate::metrics::{SUPERVISOR_ESCALATIONS, SUPERVISOR_RESTARTS};

/// One incarnation of a child: calls the user's factory when first polled (so a factory
/// that panics is the child's panic, on the child's dispatcher) and gives its error, if any.
pub(crate) type Incarnation = Pin<Box<dyn Future<Output = Option<String>> + Send + 'static>>;

/// Makes incarnations of a child.
pub(crate) type Factory = Arc<dyn Fn() -> Incarnation + Send + Sync + 'static>;

/// What a child runs.
pub(crate) enum Work {
    /// A task on a dispatcher (`None`: the supervisor's default).
    Task {
        factory: Factory,
        on: Option<Dispatcher>,
    },
    /// A nested supervisor; `on` is the default dispatcher of its children.
    Nested {
        plan: Arc<Plan>,
        on: Option<Dispatcher>,
    },
}

/// A checked child declaration.
pub(crate) struct ChildPlan {
    pub name: Cow<'static, str>,
    /// The same name, for statuses and metric labels.
    pub label: Arc<str>,
    pub work: Work,
    pub restart: Restart,
    pub shutdown: Duration,
    /// Where the child was declared: the spawn site of its tasks.
    pub location: &'static Location<'static>,
    /// `bulkheads_supervisor_restarts_total{supervisor, child}`.
    pub restarts: Counter,
}

/// A checked supervisor declaration.
pub(crate) struct Plan {
    pub name: Arc<str>,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Option<Backoff>,
    pub children: Vec<ChildPlan>,
    /// `bulkheads_supervisor_escalations_total{supervisor}`.
    pub escalations: Counter,
}

/// Registers `bulkheads_supervisor_restarts_total{supervisor, child}` with the recorder of the
/// calling thread (a recorder that panics is contained: the handle then records nothing).
pub(crate) fn restarts_counter(supervisor: &str, child: &str) -> Counter {
    let (s, c) = (supervisor.to_owned(), child.to_owned());
    catch_unwind(AssertUnwindSafe(
        || metrics::counter!(SUPERVISOR_RESTARTS, "supervisor" => s, "child" => c),
    ))
    .unwrap_or_else(|_| Counter::noop())
}

/// Registers `bulkheads_supervisor_escalations_total{supervisor}`, contained likewise.
pub(crate) fn escalations_counter(supervisor: &str) -> Counter {
    let s = supervisor.to_owned();
    catch_unwind(AssertUnwindSafe(
        || metrics::counter!(SUPERVISOR_ESCALATIONS, "supervisor" => s),
    ))
    .unwrap_or_else(|_| Counter::noop())
}

/// Adds one to `counter`, containing a recorder that panics.
pub(crate) fn bump(counter: &Counter) {
    let _ = catch_unwind(AssertUnwindSafe(|| counter.increment(1)));
}
