//! Dumps as JSON (the `serde` feature): plain records with durations in milliseconds and spawn
//! sites as `file:line:column`, for admin endpoints and log shippers.

use serde::Serialize;

use super::dump::{DispatcherDump, Dump};
use super::suspects::Suspect;
use super::task::TaskDump;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Serialize)]
struct JsonDump<'a> {
    live_tasks: usize,
    took_ms: f64,
    open_scopes: Vec<&'a str>,
    dispatchers: Vec<JsonDispatcher<'a>>,
}

#[derive(Serialize)]
struct JsonDispatcher<'a> {
    name: &'a str,
    kind: String,
    threads: usize,
    parallelism: Option<usize>,
    capacity: Option<usize>,
    queued: usize,
    active: usize,
    in_flight: usize,
    waiting: usize,
    oldest_ms: Option<f64>,
    tasks: Vec<JsonTask<'a>>,
}

#[derive(Serialize)]
struct JsonTask<'a> {
    id: u64,
    name: Option<&'a str>,
    dispatcher: &'a str,
    parent: Option<&'a str>,
    state: &'static str,
    blocking: bool,
    detached: bool,
    cancel_requested: bool,
    spawned_at: String,
    age_ms: f64,
    since_last_poll_ms: Option<f64>,
    polls: u32,
    busy_ms: f64,
}

#[derive(Serialize)]
struct JsonSuspect<'a> {
    reason: &'static str,
    summary: String,
    task: JsonTask<'a>,
}

fn task(t: &TaskDump) -> JsonTask<'_> {
    let loc = t.location;
    JsonTask {
        id: t.id.as_u64(),
        name: t.name.as_deref(),
        dispatcher: &t.dispatcher,
        parent: t.parent.as_deref(),
        state: t.state.label(),
        blocking: t.blocking,
        detached: t.detached,
        cancel_requested: t.cancel_requested,
        spawned_at: format!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
        age_ms: ms(t.age),
        since_last_poll_ms: t.since_last_poll.map(ms),
        polls: t.polls,
        busy_ms: ms(t.busy),
    }
}

fn dispatcher(d: &DispatcherDump) -> JsonDispatcher<'_> {
    let s = &d.stats;
    JsonDispatcher {
        name: &s.name,
        kind: s.kind.to_string(),
        threads: s.threads,
        parallelism: s.parallelism,
        capacity: s.capacity,
        queued: s.queued,
        active: s.active,
        in_flight: s.in_flight,
        waiting: s.waiting,
        oldest_ms: d.oldest().map(ms),
        tasks: d.tasks.iter().map(task).collect(),
    }
}

fn render<T: Serialize>(value: &T) -> String {
    // Plain records of strings, numbers, options and vectors: serialising them cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

impl Dump {
    /// The dump as pretty-printed JSON (the `serde` feature): `live_tasks`, `took_ms`,
    /// `open_scopes` and `dispatchers`, each with its gauges and its `tasks` (`id`, `name`,
    /// `dispatcher`, `parent`, `state`, `blocking`, `detached`, `cancel_requested`,
    /// `spawned_at`, `age_ms`, `since_last_poll_ms`, `polls`, `busy_ms`). Durations are
    /// milliseconds; `state` is [`TaskState::label`](crate::TaskState::label).
    ///
    /// ```
    /// # #[tokio::main] async fn main() {
    /// let dispatchers = bulkheads::Dispatchers::builder().cpu_threads(1).build().unwrap();
    /// let json = dispatchers.dump().to_json();
    /// assert!(json.contains("\"live_tasks\": 0"));
    /// # }
    /// ```
    pub fn to_json(&self) -> String {
        render(&JsonDump {
            live_tasks: self.len(),
            took_ms: ms(self.took),
            open_scopes: self.open_scopes.iter().map(|s| &**s).collect(),
            dispatchers: self.dispatchers.iter().map(dispatcher).collect(),
        })
    }
}

impl Suspect {
    /// The suspect as pretty-printed JSON (the `serde` feature): `reason` (its label),
    /// `summary` (its `Display` line) and `task` (as in [`Dump::to_json`]).
    pub fn to_json(&self) -> String {
        render(&JsonSuspect {
            reason: self.reason.label(),
            summary: self.to_string(),
            task: task(&self.task),
        })
    }
}
