//! The service under test: a real axum server on 127.0.0.1, on a Tokio runtime of its own,
//! built four ways.
//!
//! Every scenario gets a fresh runtime with the same number of workers ([`WORKERS`]) and the
//! same three routes; only where the blocking calls run changes:
//!
//! | scenario | `/legacy` and `/files` run | blocking threads |
//! |---|---|---|
//! | naive | inline in the async handler, on a runtime worker | none |
//! | default | `tokio::task::spawn_blocking`, Tokio's default pool | up to 512, one shared FIFO queue, unbounded |
//! | sized | `spawn_blocking`, `max_blocking_threads` = both pools' threads | as many as the bulkheads, one shared queue, unbounded |
//! | bulkheads | behind `BulkheadLayer`, each route on its own pool | the pools' threads, bounded queues, `max_wait`, queue deadline |
//!
//! `/health` answers at once on the runtime's workers in every scenario.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use bulkheads::{BlockingConfig, Dispatchers, Stats};
use bulkheads_tower::http::BulkheadLayer;

/// Runtime workers of the server, in every scenario.
pub const WORKERS: usize = 2;
/// How long the simulated legacy driver blocks its thread per call.
pub const LEGACY_CALL: Duration = Duration::from_millis(20);
/// How long the light blocking work of `/files` takes.
pub const FILES_CALL: Duration = Duration::from_millis(1);

/// One way of running the blocking calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Naive,
    Default,
    Sized,
    Bulkheads,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Naive,
        Scenario::Default,
        Scenario::Sized,
        Scenario::Bulkheads,
    ];

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Naive => "naive",
            Scenario::Default => "default",
            Scenario::Sized => "sized",
            Scenario::Bulkheads => "bulkheads",
        }
    }

    /// One line: what this scenario is.
    pub fn describe(self, pools: &Pools) -> String {
        match self {
            Scenario::Naive => "the blocking calls inline in the async handlers".into(),
            Scenario::Default => {
                "spawn_blocking on Tokio's default blocking pool (up to 512 threads)".into()
            }
            Scenario::Sized => format!(
                "spawn_blocking, max_blocking_threads = {} (sized like the bulkheads, one shared queue)",
                pools.total_threads()
            ),
            Scenario::Bulkheads => format!(
                "BulkheadLayer, each route on a pool of its own: /legacy {}; /files {}",
                pools.legacy.describe(),
                pools.files.describe()
            ),
        }
    }
}

/// The shape of one bulkhead pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape {
    pub threads: usize,
    pub queue: usize,
    pub max_wait: Duration,
    pub queue_deadline: Duration,
}

impl PoolShape {
    fn config(&self) -> BlockingConfig {
        BlockingConfig::threads(self.threads)
            .queue(self.queue)
            .max_wait(self.max_wait)
            .queue_deadline(self.queue_deadline)
    }

    fn describe(&self) -> String {
        format!(
            "{} threads + queue {}, max_wait {:?}, queue_deadline {:?}",
            self.threads, self.queue, self.max_wait, self.queue_deadline
        )
    }
}

/// The two pools of the bulkheads scenario; the sized scenario's shared pool has as many
/// threads as both.
#[derive(Debug, Clone, Copy)]
pub struct Pools {
    pub legacy: PoolShape,
    pub files: PoolShape,
}

impl Pools {
    pub fn new(legacy_threads: usize, legacy_queue: usize) -> Self {
        Pools {
            legacy: PoolShape {
                threads: legacy_threads,
                queue: legacy_queue,
                max_wait: Duration::from_millis(20),
                queue_deadline: Duration::from_millis(50),
            },
            files: PoolShape {
                threads: 2,
                queue: 16,
                max_wait: Duration::from_millis(20),
                queue_deadline: Duration::from_millis(50),
            },
        }
    }

    pub fn total_threads(&self) -> usize {
        self.legacy.threads + self.files.threads
    }
}

/// A running server: its runtime, its address, and for the bulkheads scenario its pools.
pub struct Server {
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    dispatchers: Option<Arc<Dispatchers>>,
    /// Every `/legacy` call's time on its thread.
    pub legacy_times: ServiceTimes,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

impl Server {
    /// Builds the runtime, binds 127.0.0.1:0 and starts serving.
    pub fn start(scenario: Scenario, pools: &Pools) -> Result<Server, Error> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(WORKERS)
            .thread_name("server")
            .enable_all();
        if scenario == Scenario::Sized {
            builder.max_blocking_threads(pools.total_threads());
        }
        let runtime = builder
            .build()
            .map_err(|e| format!("server runtime: {e}"))?;

        let dispatchers = match scenario {
            Scenario::Bulkheads => Some(
                Dispatchers::builder()
                    .blocking("legacy", pools.legacy.config())
                    .blocking("files", pools.files.config())
                    .build()
                    .map(Arc::new)?,
            ),
            _ => None,
        };
        let legacy_times = ServiceTimes::default();
        let app = app(scenario, dispatchers.as_deref(), &legacy_times)?;

        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("binding 127.0.0.1:0: {e}"))?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            // Small requests and answers: never wait for Nagle.
            let _ = tcp.set_nodelay(true);
        });
        let serve = runtime.spawn(async move { axum::serve(listener, app).await });
        Ok(Server {
            addr,
            runtime,
            serve,
            dispatchers,
            legacy_times,
        })
    }

    /// The bulkhead pools' stats, in the bulkheads scenario.
    pub fn pool_stats(&self) -> Vec<Stats> {
        match &self.dispatchers {
            Some(d) => d
                .stats()
                .into_iter()
                .filter(|s| &*s.name != "cpu")
                .collect(),
            None => Vec::new(),
        }
    }

    /// The bulkhead pools' registry, in the bulkheads scenario (for a live dump).
    pub fn dispatchers(&self) -> Option<Arc<Dispatchers>> {
        self.dispatchers.clone()
    }

    /// `Err` when the server stopped by itself (it serves until shut down).
    pub fn check_alive(&self) -> Result<(), String> {
        if self.serve.is_finished() {
            return Err("the server stopped serving before the scenario ended".into());
        }
        Ok(())
    }

    /// Stops accepting, drains the pools (bulkheads scenario), then stops the runtime,
    /// waiting up to a few seconds for blocking work in progress, so that the next scenario
    /// starts with none of this one's threads. Called outside any runtime.
    pub fn stop(self) {
        self.serve.abort();
        if let Some(d) = &self.dispatchers {
            let _ = self.runtime.block_on(d.shutdown(Duration::from_secs(3)));
        }
        self.runtime.shutdown_timeout(Duration::from_secs(3));
    }
}

/// How long each call of the legacy driver actually held its thread, measured on the server:
/// on a busy machine a 20 ms sleep takes longer, and the bound on admitted latency counts on
/// the service time.
#[derive(Debug, Clone, Default)]
pub struct ServiceTimes(Arc<Mutex<Vec<Duration>>>);

impl ServiceTimes {
    fn record(&self, d: Duration) {
        if let Ok(mut v) = self.0.lock() {
            v.push(d);
        }
    }

    /// The times recorded so far, sorted.
    pub fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        v.sort();
        v
    }
}

/// The simulated legacy driver: holds its thread for [`LEGACY_CALL`].
fn legacy_call(times: &ServiceTimes) -> &'static str {
    let start = Instant::now();
    std::thread::sleep(LEGACY_CALL);
    times.record(start.elapsed());
    "legacy row\n"
}

/// The light blocking work of another subsystem: holds its thread for [`FILES_CALL`].
fn files_call() -> &'static str {
    std::thread::sleep(FILES_CALL);
    "file\n"
}

/// `spawn_blocking` and await it; a panic in the closure would be a 500.
async fn on_tokio_pool<F>(f: F) -> Result<&'static str, StatusCode>
where
    F: FnOnce() -> &'static str + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

fn app(
    scenario: Scenario,
    dispatchers: Option<&Dispatchers>,
    times: &ServiceTimes,
) -> Result<Router, Error> {
    let health = get(|| async { "ok\n" });
    let t = times.clone();
    let router = match (scenario, dispatchers) {
        (Scenario::Naive, _) => Router::new()
            .route(
                "/legacy",
                get(move || {
                    let t = t.clone();
                    async move { legacy_call(&t) }
                }),
            )
            .route("/files", get(|| async { files_call() })),
        (Scenario::Default | Scenario::Sized, _) => Router::new()
            .route(
                "/legacy",
                get(move || {
                    let t = t.clone();
                    on_tokio_pool(move || legacy_call(&t))
                }),
            )
            .route("/files", get(|| on_tokio_pool(files_call))),
        (Scenario::Bulkheads, Some(d)) => {
            // Pinned: each handler's whole future runs on a thread of its route's pool, so the
            // same inline blocking call as in `naive` never touches the server's workers.
            let legacy = BulkheadLayer::new(d.get("legacy")?).task_name("GET /legacy");
            let files = BulkheadLayer::new(d.get("files")?).task_name("GET /files");
            Router::new()
                .route(
                    "/legacy",
                    get(move || {
                        let t = t.clone();
                        async move { legacy_call(&t) }
                    })
                    .layer(legacy),
                )
                .route("/files", get(|| async { files_call() }).layer(files))
        }
        (Scenario::Bulkheads, None) => return Err("bulkheads scenario without its pools".into()),
    };
    Ok(router.route("/health", health))
}
