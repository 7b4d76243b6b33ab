//! Context follows the work: a task submitted inside a `tracing` span runs inside a child of it
//! on the dispatcher's thread, whatever the kind, so a pinned handler's logs keep their request
//! id.

use std::sync::{Arc, Mutex};

use bulkheads::{BlockingConfig, Dispatchers, RuntimeConfig};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Records, for every event, its thread, the names of the spans around it, and its message.
#[derive(Clone, Default)]
struct Scopes(Arc<Mutex<Vec<Seen>>>);

/// One event: its thread, the names of the spans around it (root first), its message.
type Seen = (String, Vec<String>, String);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Scopes {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let names = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push((thread, names, message.0));
    }
}

/// The process-wide subscriber of this test binary, installed once.
fn scopes() -> &'static Scopes {
    static SCOPES: std::sync::OnceLock<Scopes> = std::sync::OnceLock::new();
    SCOPES.get_or_init(|| {
        let scopes = Scopes::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(scopes.clone()),
        )
        .unwrap();
        scopes
    })
}

#[test]
fn a_view_wider_than_its_base_is_allowed_and_logged() {
    let scopes = scopes();
    let d = Dispatchers::builder()
        .cpu_threads(2)
        .limited("wideview", "cpu", 8)
        .build()
        .unwrap();
    assert_eq!(d.get("wideview").unwrap().stats().parallelism, Some(8));
    let seen = scopes.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(_, _, m)| m
            == "dispatchers.wideview.parallelism is 8 but its base 'cpu' runs at most 2 at once; the view's cap will never bind"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn work_runs_inside_a_child_of_the_submitters_span() {
    let scopes = scopes();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("ctxpool", BlockingConfig::threads(1))
        .runtime("ctxrt", RuntimeConfig::workers(1))
        .build()
        .unwrap();
    let view = d.cpu().limited(1);
    let span = tracing::info_span!("request", request_id = 42);
    let _entered = span.enter();
    d.get("ctxpool")
        .unwrap()
        .run_blocking(|| tracing::info!("pool"))
        .await
        .unwrap();
    d.get("ctxpool")
        .unwrap()
        .run(async { tracing::info!("pinned") })
        .await
        .unwrap();
    d.get("ctxrt")
        .unwrap()
        .run(async { tracing::info!("runtime") })
        .await
        .unwrap();
    view.run(async { tracing::info!("view") }).await.unwrap();
    d.cpu()
        .run_blocking(|| tracing::info!("cpu"))
        .await
        .unwrap();
    let seen: Vec<_> = scopes
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, m)| ["pool", "pinned", "runtime", "view", "cpu"].contains(&m.as_str()))
        .cloned()
        .collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let threads: Vec<&str> = seen.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(threads[0], "ctxpool-0");
    assert_eq!(threads[1], "ctxpool-0");
    assert_eq!(threads[2], "ctxrt-0");
    assert!(
        threads[3].starts_with("cpu-") && threads[4].starts_with("cpu-"),
        "{threads:?}"
    );
    for (thread, names, _) in &seen {
        assert_eq!(
            names,
            &["request".to_owned(), "bulkheads.task".to_owned()],
            "on {thread}"
        );
    }
}
