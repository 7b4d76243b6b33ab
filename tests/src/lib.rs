//! Support for the end-to-end tests in `tests/`: a server on 127.0.0.1:0, a real HTTP client,
//! a gate that holds handlers on their threads until a test opens it, and a bounded wait for a
//! condition (hang detection, never a synchronisation by sleeping).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest wait for anything expected to happen "soon": only a hang fails on it.
pub const HANG: Duration = Duration::from_secs(10);

/// An axum server on an ephemeral port of 127.0.0.1, stopped gracefully when dropped or
/// [`stop`](Server::stop)ped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Serves `app` on 127.0.0.1:0 from a task of the current runtime.
    pub async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, waits for the connections in progress to finish (within [`HANG`]).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(HANG, task)
                .await
                .expect("server did not stop")
                .expect("server task panicked")
                .expect("server failed");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What a test reads of a response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The `Retry-After` header as seconds, if there is one.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

/// A real HTTP/1 client (hyper-util's), cheap to clone.
#[derive(Clone)]
pub struct Client(HyperClient<HttpConnector, Empty<Bytes>>);

impl Default for Client {
    fn default() -> Self {
        Client(HyperClient::builder(TokioExecutor::new()).build_http())
    }
}

impl Client {
    /// `GET url`, body read to its end; fails the test after [`HANG`].
    pub async fn get(&self, url: &str) -> Reply {
        let uri = url.parse().expect("a valid URL");
        within(HANG, async {
            let response = self.0.get(uri).await.expect("request failed");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        })
        .await
    }
}

/// `fut`, or a test failure naming the wait after `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("no progress within {limit:?}: hang"),
    }
}

/// Waits until `cond` holds, looking again every millisecond; fails the test after [`HANG`].
/// For conditions no event announces (a gauge of the dispatcher).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not true after {HANG:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A gate that blocks the threads calling [`wait`](Gate::wait) until [`open`](Gate::open):
/// handlers hold their pool threads (as a slow blocking driver would) until a test lets them
/// go. Each waiter announces itself on the channel given to [`Gate::new`] first.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<(Mutex<bool>, Condvar)>,
    entered: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Gate {
    /// A closed gate, and the receiver of the names of the threads that reach it.
    pub fn new() -> (Gate, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (entered, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Gate {
                inner: Arc::new((Mutex::new(false), Condvar::new())),
                entered,
            },
            rx,
        )
    }

    /// Announces the calling thread, then blocks it until the gate opens.
    pub fn wait(&self) {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        let _ = self.entered.send(name);
        let (open, cv) = &*self.inner;
        let mut open = open.lock().expect("gate lock");
        while !*open {
            open = cv.wait(open).expect("gate lock");
        }
    }

    /// Lets every waiter (and every later one) through.
    pub fn open(&self) {
        let (open, cv) = &*self.inner;
        *open.lock().expect("gate lock") = true;
        cv.notify_all();
    }
}
