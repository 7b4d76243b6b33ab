//! The generic layer under other services than axum handlers, served over real HTTP: a plain
//! `tower::service_fn`, and a tonic-style service (a generic `Service<Request<B>>` whose error
//! is a status with a code), its errors mapped to responses the way a gRPC server does.

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, Response, StatusCode};
use bulkheads::{BlockingConfig, Dispatcher, Dispatchers};
use bulkheads_e2e::{Client, Server};
use bulkheads_tower::{BulkheadError, BulkheadLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn registry(name: &str) -> (Dispatchers, Dispatcher) {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(name, BlockingConfig::threads(1).queue(0))
        .build()
        .unwrap();
    let pool = d.get(name).unwrap();
    (d, pool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_fn_behind_the_generic_layer_over_http() {
    let (_d, pool) = registry("svcfn");
    let svc = ServiceBuilder::new()
        // What an HTTP stack must do with the generic layer's error: answer it.
        .layer(HandleErrorLayer::new(
            |e: BulkheadError<Infallible>| async move {
                let status = if e.is_rejected() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                (status, e.to_string())
            },
        ))
        .layer(BulkheadLayer::new(pool.clone()))
        .service(service_fn(|_req: Request<Body>| async {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            Ok::<_, Infallible>(Response::new(Body::from(thread)))
        }));
    let server = Server::start(Router::new().route_service("/fn", svc)).await;
    let client = Client::default();
    let reply = client.get(&server.url("/fn")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "svcfn-0");
    let held = pool.try_reserve().unwrap();
    let reply = client.get(&server.url("/fn")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body,
        "dispatcher 'svcfn' rejected the task: queue full (capacity 1: in-flight cap plus queue)"
    );
    drop(held);
}

/// A gRPC-like status: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    code: u8,
    message: String,
}

impl Status {
    const NOT_FOUND: u8 = 5;
    const UNAVAILABLE: u8 = 14;
    const INTERNAL: u8 = 13;
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

/// A tonic-style service: generic over the request body, an error that is a `Status`.
#[derive(Clone)]
struct Greeter;

impl<B: Send + 'static> Service<Request<B>> for Greeter {
    type Response = Response<Body>;
    type Error = Status;
    type Future = Ready<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(match req.uri().path().strip_prefix("/greet/") {
            Some(name) if !name.is_empty() => {
                Ok(Response::new(Body::from(format!("hello {name}"))))
            }
            _ => Err(Status {
                code: Status::NOT_FOUND,
                message: "whom?".into(),
            }),
        })
    }
}

/// As a gRPC server answers an error: HTTP 200 with the status code in a `grpc-status`
/// header; a rejection is `UNAVAILABLE`, the service's own status is kept.
async fn grpc_answer(e: BulkheadError<Status>) -> Response<Body> {
    let status = match e.into_inner() {
        Ok(status) => status,
        Err(e) if e.is_rejected() => Status {
            code: Status::UNAVAILABLE,
            message: e.to_string(),
        },
        Err(e) => Status {
            code: Status::INTERNAL,
            message: e.to_string(),
        },
    };
    Response::builder()
        .header("grpc-status", status.code.to_string())
        .body(Body::from(status.message))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_style_service_keeps_its_status_errors_apart_from_rejections() {
    let (_d, pool) = registry("greeter");
    let layered = BulkheadLayer::new(pool.clone()).admission_only();
    // In process first: the error type is the service's status behind the dispatcher's name.
    let err = ServiceBuilder::new()
        .layer(layered.clone())
        .service(Greeter)
        .oneshot(Request::get("/greet/").body(()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.inner().map(|s| s.code), Some(Status::NOT_FOUND));
    assert_eq!(
        err.to_string(),
        "the service behind bulkhead 'greeter' failed: status 5: whom?"
    );

    let svc = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(grpc_answer))
        .layer(layered)
        .service(Greeter);
    let server = Server::start(Router::new().fallback_service(svc)).await;
    let client = Client::default();
    let reply = client.get(&server.url("/greet/ada")).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "hello ada")
    );
    assert!(reply.headers.get("grpc-status").is_none());
    let reply = client.get(&server.url("/greet/")).await;
    assert_eq!(reply.headers["grpc-status"], "5");

    let held = pool.try_reserve().unwrap();
    let reply = client.get(&server.url("/greet/ada")).await;
    assert_eq!(reply.headers["grpc-status"], "14");
    assert!(reply.body.contains("rejected the task"), "{}", reply.body);
    drop(held);
    let s = pool.stats();
    assert_eq!(s.rejected.queue_full, 1, "{s:?}");
    assert_eq!(s.completed, 3, "{s:?}");
}
