//! The axum layer over real HTTP: a server on 127.0.0.1:0, hyper-util's client (and a raw
//! socket for a client that gives up). Handlers hold their threads on a [`Gate`] until the
//! test opens it; nothing waits by sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use bulkheads::{BlockingConfig, Dispatcher, Dispatchers};
use bulkheads_e2e::{Client, Gate, HANG, Server, eventually, within};
use bulkheads_tower::http::{BulkheadLayer, Rejection, default_response};
use tokio::io::AsyncWriteExt;

fn registry(name: &str, config: BlockingConfig) -> (Dispatchers, Dispatcher) {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(name, config)
        .build()
        .unwrap();
    let pool = d.get(name).unwrap();
    (d, pool)
}

/// `/report` behind `layer`, blocking its thread on `gate` (a slow blocking driver), then
/// answering with that thread's name; `/health` unpinned.
fn report_app(layer: BulkheadLayer, gate: Gate) -> Router {
    Router::new()
        .route(
            "/report",
            get(move || async move {
                gate.wait();
                std::thread::current().name().unwrap_or("").to_owned()
            })
            .layer(layer),
        )
        .route("/health", get(|| async { "ok" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_times_capacity_serves_capacity_and_rejects_the_rest_with_retry_after() {
    let (threads, queue) = (2, 2);
    let capacity = threads + queue;
    let (d, pool) = registry("report", BlockingConfig::threads(threads).queue(queue));
    let (gate, mut entered) = Gate::new();
    let server = Server::start(report_app(BulkheadLayer::new(pool.clone()), gate.clone())).await;
    let client = Client::default();
    let health = server.url("/health");
    assert_eq!(client.get(&health).await.status, StatusCode::OK);

    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..10 * capacity {
        let (client, url, tx) = (client.clone(), server.url("/report"), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(client.get(&url).await);
        });
    }
    // Every request beyond the capacity is answered at once, while the admitted ones are held.
    for _ in 0..9 * capacity {
        let reply = within(HANG, replies.recv()).await.unwrap();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
        assert_eq!(reply.body, "service unavailable (queue_full)\n");
        let after = reply.retry_after().expect("a Retry-After header");
        assert!((1..=60).contains(&after), "{after}");
    }
    // Both threads are held by handlers; the health check does not care.
    for _ in 0..threads {
        within(HANG, entered.recv()).await.unwrap();
    }
    let s = pool.stats();
    assert_eq!((s.active, s.queued), (threads, queue), "{s:?}");
    assert_eq!(client.get(&health).await.status, StatusCode::OK);

    gate.open();
    for _ in 0..capacity {
        let reply = within(HANG, replies.recv()).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert!(reply.body.starts_with("report-"), "{}", reply.body);
    }
    assert_eq!(client.get(&health).await.status, StatusCode::OK);
    let s = pool.stats();
    assert_eq!(s.completed, capacity as u64, "{s:?}");
    assert_eq!(s.rejected.queue_full, 9 * capacity as u64, "{s:?}");
    assert!(s.is_balanced(), "{s:?}");
    server.stop().await;
    let report = d.shutdown(HANG).await;
    assert!(!report.deadline_hit);
}

/// Sends a request on a raw socket and returns the socket, without reading the answer.
async fn send_raw(server: &Server, path: &str) -> tokio::net::TcpStream {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", server.addr);
    socket.write_all(request.as_bytes()).await.unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_while_queued_frees_its_place() {
    let (_d, pool) = registry("giveup", BlockingConfig::threads(1).queue(1));
    let (gate, mut entered) = Gate::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let g = gate.clone();
    let app = Router::new().route(
        "/report",
        get(move || async move {
            r.fetch_add(1, Ordering::SeqCst);
            g.wait();
            "done"
        })
        .layer(BulkheadLayer::new(pool.clone())),
    );
    let server = Server::start(app).await;
    let client = Client::default();

    // A holds the only thread.
    let first = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/report"));
        async move { client.get(&url).await }
    });
    within(HANG, entered.recv()).await.unwrap();
    // B waits in the queue's only place, on a socket we control.
    let queued = send_raw(&server, "/report").await;
    eventually("the second request is queued", || pool.stats().queued == 1).await;
    assert_eq!(
        client.get(&server.url("/report")).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue is full while B waits"
    );
    // B's client goes away: its place is free, and the next request is admitted.
    drop(queued);
    eventually("the abandoned request is cancelled", || {
        let s = pool.stats();
        s.cancelled == 1 && s.queued == 0
    })
    .await;
    let next = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/report"));
        async move { client.get(&url).await }
    });
    eventually("the next request is queued", || pool.stats().queued == 1).await;
    gate.open();
    assert_eq!(within(HANG, first).await.unwrap().status, StatusCode::OK);
    let reply = within(HANG, next).await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "done")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the abandoned request never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_pool_serves_the_next() {
    let (_d, pool) = registry("panicky", BlockingConfig::threads(1).queue(0));
    let layer = BulkheadLayer::new(pool.clone());
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("the driver exploded");
                }
                "unreachable"
            })
            .layer(layer.clone()),
        )
        .route(
            "/ok",
            get(|| async { std::thread::current().name().unwrap_or("").to_owned() }).layer(layer),
        );
    let server = Server::start(app).await;
    let client = Client::default();
    let reply = client.get(&server.url("/panic")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body, "internal server error\n",
        "no panic message to clients"
    );
    let reply = client.get(&server.url("/ok")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "panicky-0", "the pool's one thread survived");
    assert_eq!(pool.stats().panicked, 1);
}

/// The task the request was called from (the connection's), put in the request by a layer
/// outside the bulkhead.
#[derive(Clone, Copy)]
struct CallerTask(tokio::task::Id);

async fn where_am_i(req: Request) -> String {
    let caller = req.extensions().get::<CallerTask>().unwrap().0;
    format!(
        "{} {}",
        std::thread::current().name().unwrap_or(""),
        if tokio::task::try_id() == Some(caller) {
            "caller-task"
        } else {
            "elsewhere"
        }
    )
}

fn mark_caller(mut req: Request) -> Request {
    req.extensions_mut().insert(CallerTask(tokio::task::id()));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_handlers_run_on_pool_threads_and_admission_only_ones_in_the_callers_task() {
    let (_d, pool) = registry("where", BlockingConfig::threads(2).queue(0));
    let app = Router::new()
        .route(
            "/pinned",
            get(where_am_i).layer(BulkheadLayer::new(pool.clone())),
        )
        .route(
            "/here",
            get(where_am_i).layer(BulkheadLayer::new(pool.clone()).admission_only()),
        )
        .layer(tower::util::MapRequestLayer::new(mark_caller));
    let server = Server::start(app).await;
    let client = Client::default();

    let pinned = client.get(&server.url("/pinned")).await.body;
    let (thread, task) = pinned.split_once(' ').unwrap();
    assert!(thread.starts_with("where-"), "{pinned}");
    assert_eq!(task, "elsewhere");

    let here = client.get(&server.url("/here")).await.body;
    let (thread, task) = here.split_once(' ').unwrap();
    assert!(!thread.starts_with("where-"), "{here}");
    assert_eq!(task, "caller-task", "{here}");
    // Both counted by the dispatcher.
    assert_eq!(pool.stats().completed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_deadline_turns_stale_queued_requests_into_503() {
    let deadline = Duration::from_millis(50);
    let (_d, pool) = registry(
        "stale",
        BlockingConfig::threads(1).queue(4).queue_deadline(deadline),
    );
    let (gate, mut entered) = Gate::new();
    let server = Server::start(report_app(BulkheadLayer::new(pool.clone()), gate.clone())).await;
    let client = Client::default();
    let first = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/report"));
        async move { client.get(&url).await }
    });
    within(HANG, entered.recv()).await.unwrap();
    // Queued behind a held thread: rejected at its deadline, while the thread is still held.
    let stale = client.get(&server.url("/report")).await;
    assert_eq!(stale.status, StatusCode::SERVICE_UNAVAILABLE, "{stale:?}");
    assert_eq!(stale.body, "service unavailable (queue_deadline)\n");
    assert!(stale.retry_after().is_some());
    gate.open();
    assert_eq!(within(HANG, first).await.unwrap().status, StatusCode::OK);
    let s = pool.stats();
    assert_eq!((s.completed, s.rejected.queue_deadline), (1, 1), "{s:?}");
}

async fn rows(State(db): State<Dispatcher>) -> Result<String, Rejection> {
    Ok(db.run_blocking(|| "3 rows".to_owned()).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_uses_question_mark_with_rejection() {
    let (_d, db) = registry("rows", BlockingConfig::threads(1).queue(0));
    let app = Router::new()
        .route("/rows", get(rows))
        .with_state(db.clone());
    let server = Server::start(app).await;
    let client = Client::default();
    assert_eq!(client.get(&server.url("/rows")).await.body, "3 rows");
    let held = db.try_reserve().unwrap();
    let reply = client.get(&server.url("/rows")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after(), Some(1));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_layer_on_rejects_with_custom_responses_and_a_fixed_retry_after() {
    let (_d, db) = registry("custom", BlockingConfig::threads(1).queue(0));
    let layer = BulkheadLayer::new(db.clone())
        .retry_after(Duration::from_millis(2500))
        .on_reject(|err| {
            if err.is_rejected() {
                (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response()
            } else {
                default_response(err)
            }
        });
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route_layer(layer);
    let server = Server::start(app).await;
    let client = Client::default();
    assert_eq!(client.get(&server.url("/a")).await.body, "a");
    let held = db.try_reserve().unwrap();
    let reply = client.get(&server.url("/a")).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.body, "slow down");
    assert_eq!(
        reply.retry_after(),
        Some(3),
        "the fixed value, rounded up, added by the layer"
    );
    drop(held);
    // An unknown route is not behind the route layer (axum's 404).
    assert_eq!(
        client.get(&server.url("/b")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_on_reject_gets_the_default_response_and_the_server_serves_on() {
    let (_d, db) = registry("reject-panics", BlockingConfig::threads(1).queue(0));
    let layer = BulkheadLayer::new(db.clone()).on_reject(|_| panic!("on_reject is broken"));
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route_layer(layer);
    let server = Server::start(app).await;
    let client = Client::default();
    let held = db.try_reserve().unwrap();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let reply = client.get(&server.url("/a")).await;
    std::panic::set_hook(prev);
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.retry_after().is_some());
    drop(held);
    assert_eq!(client.get(&server.url("/a")).await.body, "a");
}
