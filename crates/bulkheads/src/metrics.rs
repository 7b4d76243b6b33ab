//! Metric names, their descriptions, and the per-dispatcher handles. One place.
//!
//! Handles are registered once per dispatcher when the registry is built, so the hot path
//! never builds a key or allocates a label; with no recorder installed each update is a
//! branch on an empty handle. Install your recorder *before* building the registry: handles
//! registered earlier stay bound to the no-op recorder.
//!
//! Gauges move by increments and decrements, never by `set` from a value read a moment
//! earlier: with many threads finishing tasks together, the last `set` could carry a stale
//! value, while a sum of increments is exact at rest. A recorder is user code: every call into
//! it is made inside `catch_unwind` by the dispatcher's accounts (`dispatcher/stats.rs`).

use metrics::{Counter, Gauge, Histogram, Unit};

/// `bulkheads_tasks_submitted_total{dispatcher}`: tasks offered to a dispatcher (admitted or
/// rejected).
pub const TASKS_SUBMITTED: &str = "bulkheads_tasks_submitted_total";
/// `bulkheads_tasks_finished_total{dispatcher, outcome}`: admitted tasks that ended;
/// `outcome` is `ok`, `panicked` or `cancelled`.
pub const TASKS_FINISHED: &str = "bulkheads_tasks_finished_total";
/// `bulkheads_tasks_rejected_total{dispatcher, reason}`: `reason` is `queue_full`,
/// `wait_timeout`, `shutting_down` or `queue_deadline`.
pub const TASKS_REJECTED: &str = "bulkheads_tasks_rejected_total";
/// `bulkheads_tasks_abandoned_total{dispatcher}`: tasks whose caller gave up while they ran and
/// could not stop (a blocking job, or async work inside a poll that then completed); they ran to
/// their end and their result was dropped (counted as cancelled too).
pub const TASKS_ABANDONED: &str = "bulkheads_tasks_abandoned_total";
/// `bulkheads_queue_depth{dispatcher}`: admitted tasks not started yet.
pub const QUEUE_DEPTH: &str = "bulkheads_queue_depth";
/// `bulkheads_in_flight{dispatcher}`: admitted tasks not finished yet (queued or started).
pub const IN_FLIGHT: &str = "bulkheads_in_flight";
/// `bulkheads_active{dispatcher}`: tasks being polled or run at this instant.
pub const ACTIVE: &str = "bulkheads_active";
/// `bulkheads_threads{dispatcher}`: OS threads the dispatcher owns.
pub const THREADS: &str = "bulkheads_threads";
/// `bulkheads_queue_wait_seconds{dispatcher}`: from submission to start.
pub const QUEUE_WAIT: &str = "bulkheads_queue_wait_seconds";
/// `bulkheads_run_seconds{dispatcher}`: from start to end.
pub const RUN_TIME: &str = "bulkheads_run_seconds";
/// `bulkheads_failures_total{dispatcher, kind}`: `kind` is `panic` or `error`.
pub const FAILURES: &str = "bulkheads_failures_total";
/// `bulkheads_supervisor_restarts_total{supervisor, child}`: children a supervisor restarted.
pub const SUPERVISOR_RESTARTS: &str = "bulkheads_supervisor_restarts_total";
/// `bulkheads_supervisor_escalations_total{supervisor}`: times a supervisor gave up (more
/// restarts than its intensity allows) and stopped, escalating to its parent or the root
/// failure handler.
pub const SUPERVISOR_ESCALATIONS: &str = "bulkheads_supervisor_escalations_total";

/// Describes every metric with its unit. Called at each registry build, so whichever recorder
/// is installed then learns the descriptions.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        TASKS_SUBMITTED,
        Unit::Count,
        "Tasks offered to a dispatcher, admitted or rejected."
    );
    describe_counter!(
        TASKS_FINISHED,
        Unit::Count,
        "Admitted tasks that ended, by outcome (ok, panicked, cancelled)."
    );
    describe_counter!(
        TASKS_REJECTED,
        Unit::Count,
        "Tasks rejected, by reason (queue_full, wait_timeout, shutting_down at admission; queue_deadline when admitted work waited too long to start)."
    );
    describe_counter!(
        TASKS_ABANDONED,
        Unit::Count,
        "Tasks cancelled while they ran and could not stop (a blocking job, or async work inside a poll): they ran on and their result was dropped."
    );
    describe_gauge!(QUEUE_DEPTH, Unit::Count, "Admitted tasks waiting to start.");
    describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Admitted tasks not finished (queued or started)."
    );
    describe_gauge!(
        ACTIVE,
        Unit::Count,
        "Tasks being polled or run at this instant."
    );
    describe_gauge!(THREADS, Unit::Count, "OS threads owned by the dispatcher.");
    describe_histogram!(QUEUE_WAIT, Unit::Seconds, "Time from submission to start.");
    describe_histogram!(RUN_TIME, Unit::Seconds, "Time from start to end.");
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Task failures, by kind (panic, error)."
    );
    describe_counter!(
        SUPERVISOR_RESTARTS,
        Unit::Count,
        "Children restarted by a supervisor."
    );
    describe_counter!(
        SUPERVISOR_ESCALATIONS,
        Unit::Count,
        "Times a supervisor gave up after too many restarts and stopped."
    );
}

/// The handles of one dispatcher, registered once at build.
pub(crate) struct DispatcherMetrics {
    pub submitted: Counter,
    pub finished_ok: Counter,
    pub finished_panicked: Counter,
    pub finished_cancelled: Counter,
    pub rejected_queue_full: Counter,
    pub rejected_wait_timeout: Counter,
    pub rejected_shutting_down: Counter,
    pub rejected_queue_deadline: Counter,
    pub abandoned: Counter,
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    pub active: Gauge,
    pub threads: Gauge,
    pub queue_wait: Histogram,
    pub run_time: Histogram,
    pub failures_panic: Counter,
    pub failures_error: Counter,
}

impl DispatcherMetrics {
    /// Handles that record nothing: used when registering with the recorder panicked.
    pub(crate) fn noop() -> Self {
        DispatcherMetrics {
            submitted: Counter::noop(),
            finished_ok: Counter::noop(),
            finished_panicked: Counter::noop(),
            finished_cancelled: Counter::noop(),
            rejected_queue_full: Counter::noop(),
            rejected_wait_timeout: Counter::noop(),
            rejected_shutting_down: Counter::noop(),
            rejected_queue_deadline: Counter::noop(),
            abandoned: Counter::noop(),
            queue_depth: Gauge::noop(),
            in_flight: Gauge::noop(),
            active: Gauge::noop(),
            threads: Gauge::noop(),
            queue_wait: Histogram::noop(),
            run_time: Histogram::noop(),
            failures_panic: Counter::noop(),
            failures_error: Counter::noop(),
        }
    }

    pub(crate) fn register(dispatcher: &str) -> Self {
        let d = dispatcher.to_owned();
        DispatcherMetrics {
            submitted: metrics::counter!(TASKS_SUBMITTED, "dispatcher" => d.clone()),
            finished_ok: metrics::counter!(TASKS_FINISHED, "dispatcher" => d.clone(), "outcome" => "ok"),
            finished_panicked: metrics::counter!(TASKS_FINISHED, "dispatcher" => d.clone(), "outcome" => "panicked"),
            finished_cancelled: metrics::counter!(TASKS_FINISHED, "dispatcher" => d.clone(), "outcome" => "cancelled"),
            rejected_queue_full: metrics::counter!(TASKS_REJECTED, "dispatcher" => d.clone(), "reason" => "queue_full"),
            rejected_wait_timeout: metrics::counter!(TASKS_REJECTED, "dispatcher" => d.clone(), "reason" => "wait_timeout"),
            rejected_shutting_down: metrics::counter!(TASKS_REJECTED, "dispatcher" => d.clone(), "reason" => "shutting_down"),
            rejected_queue_deadline: metrics::counter!(TASKS_REJECTED, "dispatcher" => d.clone(), "reason" => "queue_deadline"),
            abandoned: metrics::counter!(TASKS_ABANDONED, "dispatcher" => d.clone()),
            queue_depth: metrics::gauge!(QUEUE_DEPTH, "dispatcher" => d.clone()),
            in_flight: metrics::gauge!(IN_FLIGHT, "dispatcher" => d.clone()),
            active: metrics::gauge!(ACTIVE, "dispatcher" => d.clone()),
            threads: metrics::gauge!(THREADS, "dispatcher" => d.clone()),
            queue_wait: metrics::histogram!(QUEUE_WAIT, "dispatcher" => d.clone()),
            run_time: metrics::histogram!(RUN_TIME, "dispatcher" => d.clone()),
            failures_panic: metrics::counter!(FAILURES, "dispatcher" => d.clone(), "kind" => "panic"),
            failures_error: metrics::counter!(FAILURES, "dispatcher" => d, "kind" => "error"),
        }
    }
}
