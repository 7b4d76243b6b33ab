//! A request that waits for room, or is turned away, is the task the layer's user made: its
//! name and spawn site (the line that made the layer) are in dumps and in rejections.

use std::convert::Infallible;
use std::sync::{Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, TaskState};
use tower::{Layer, Service, service_fn};

use bulkheads_tower::BulkheadLayer;

mod common;

/// A recorder whose `bulkheads_tasks_rejected_total` panics; every other metric is a no-op.
fn rejections_panic() -> common::PanickingCounter {
    common::PanickingCounter {
        name: "bulkheads_tasks_rejected_total",
        message: "recorder-boom",
    }
}

fn poll_ready_once<S: Service<R>, R>(svc: &mut S) -> Poll<Result<(), S::Error>> {
    svc.poll_ready(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn a_request_waiting_for_room_shows_in_dumps_as_the_layers_named_task() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "sites-wait",
            BlockingConfig::threads(1)
                .queue(0)
                .max_wait(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    let pool = d.get("sites-wait").unwrap();
    let made_at = line!() + 1;
    let layer = BulkheadLayer::new(pool).task_name("GET /rows");
    let handler = service_fn(|n: u32| async move { Ok::<_, Infallible>(n) });
    let mut holder = layer.layer(handler);
    let mut waiter = holder.clone();
    assert!(matches!(poll_ready_once(&mut holder), Poll::Ready(Ok(()))));
    assert!(
        poll_ready_once(&mut waiter).is_pending(),
        "the only slot is held"
    );

    let dump = d.dump();
    let waiting: Vec<_> = dump
        .dispatchers
        .iter()
        .flat_map(|dd| dd.tasks.iter())
        .filter(|t| t.state == TaskState::WaitingForAdmission)
        .collect();
    assert_eq!(waiting.len(), 1, "{dump}");
    let task = waiting[0];
    assert_eq!(task.name.as_deref(), Some("GET /rows"));
    assert!(
        task.location.file().ends_with("admission_sites.rs"),
        "{dump}"
    );
    assert_eq!(task.location.line(), made_at, "{dump}");
    drop(waiter);
    drop(holder);
}

#[tokio::test]
async fn a_rejected_request_is_reported_as_the_layers_named_task() {
    let (tx, failures) = mpsc::channel();
    let tx = Mutex::new(tx);
    let d = metrics::with_local_recorder(&rejections_panic(), || {
        Dispatchers::builder()
            .cpu_threads(1)
            .blocking("sites-reject", BlockingConfig::threads(1).queue(0))
            .on_failure(move |f| {
                let _ = tx.lock().unwrap().send(f.clone());
            })
            .build()
            .unwrap()
    });
    let pool = d.get("sites-reject").unwrap();
    let made_at = line!() + 1;
    let layer = BulkheadLayer::new(pool).task_name("GET /rows");
    let handler = service_fn(|n: u32| async move { Ok::<_, Infallible>(n) });
    let mut holder = layer.layer(handler);
    let mut refused = holder.clone();
    assert!(matches!(poll_ready_once(&mut holder), Poll::Ready(Ok(()))));
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // No waiting allowed: decided at once, and the refusal is the response.
    let ready = poll_ready_once(&mut refused);
    std::panic::set_hook(prev);
    assert!(matches!(ready, Poll::Ready(Ok(()))));
    let err = refused.call(1).await.unwrap_err();
    assert!(err.dispatch_error().unwrap().is_rejected(), "{err}");
    // Counting the refusal panicked in the recorder: reported as the refused request's task.
    let failure = failures.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(failure.message.contains("recorder-boom"), "{failure}");
    assert_eq!(failure.task.name.as_deref(), Some("GET /rows"), "{failure}");
    assert!(
        failure.task.location.file().ends_with("admission_sites.rs"),
        "{failure}"
    );
    assert_eq!(failure.task.location.line(), made_at, "{failure}");
}
