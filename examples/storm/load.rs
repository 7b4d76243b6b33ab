//! The load generator: open-loop HTTP requests on a schedule, from a Tokio runtime that is not
//! the server's.
//!
//! Each route has a rate and a window of time. Request `n` is due at `from + n / rate`
//! whether or not earlier ones were answered, so a slow server shows as latency, not as less
//! load offered. Each route may have at most `max_outstanding` requests unanswered (one HTTP/1
//! connection each); a request due while that many are out is not sent and is counted as
//! unsent, so the generator cannot run away with memory or sockets when the server stalls.
//!
//! Latency is measured from the moment a request is handed to the client to the end of its
//! response body. How late the generator itself sent each request ("lateness": its own
//! runtime busy, or the machine's cores taken) is recorded too, as a check on the
//! measurement. Requests still unanswered at the cutoff (the end of the storm plus a grace
//! period) are dropped and recorded as unfinished, with their age at the cutoff: a lower
//! bound of their latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The routes, in the order of every table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Files,
    Legacy,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Health, Route::Files, Route::Legacy];

    pub fn path(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Files => "/files",
            Route::Legacy => "/legacy",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which part of a scenario a request was due in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connections open, threads start: not counted.
    Warmup,
    /// `/health` and `/files` only: the baseline.
    Idle,
    /// `/legacy` offered its load as well.
    Storm,
}

impl Phase {
    fn index(self) -> usize {
        self as usize
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200.
    Ok,
    /// 503: the server shed it.
    Rejected,
    /// Any other status, or a connection error.
    Failed,
    /// No answer by the cutoff; its latency is its age then.
    Unfinished,
}

/// One request sent.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was sent, in seconds since the scenario started.
    pub at: f64,
    pub phase: Phase,
    pub latency: Duration,
    pub outcome: Outcome,
}

/// The load on one route.
#[derive(Debug, Clone, Copy)]
pub struct RouteLoad {
    pub route: Route,
    /// Requests per second.
    pub rate: f64,
    /// First request due at, since the scenario started.
    pub from: Duration,
    /// No request due at or after this.
    pub to: Duration,
    pub max_outstanding: usize,
}

/// A scenario's timeline and its loads.
#[derive(Debug, Clone)]
pub struct Plan {
    pub loads: Vec<RouteLoad>,
    /// End of the warm-up, start of the idle baseline.
    pub idle_from: Duration,
    /// End of the idle baseline, start of the storm.
    pub storm_from: Duration,
    pub storm_to: Duration,
    /// Unanswered requests are given up on at this time.
    pub cutoff: Duration,
}

impl Plan {
    pub fn load(&self, route: Route) -> Option<&RouteLoad> {
        self.loads.iter().find(|l| l.route == route)
    }

    pub fn phase_at(&self, t: Duration) -> Phase {
        if t < self.idle_from {
            Phase::Warmup
        } else if t < self.storm_from {
            Phase::Idle
        } else {
            Phase::Storm
        }
    }
}

/// Everything recorded for one route in one scenario.
#[derive(Debug, Default)]
pub struct RouteRecord {
    pub samples: Vec<Sample>,
    /// Due but not sent (too many outstanding), by phase.
    pub unsent: [u64; 3],
    /// How late each storm-phase request was sent, after it was due.
    pub lateness: Vec<Duration>,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
}

impl RouteRecord {
    pub fn unsent(&self, phase: Phase) -> u64 {
        self.unsent[phase.index()]
    }
}

/// Counters read while the scenario runs, for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// By route: sent, answered 200, answered 503, unsent.
    counts: [[AtomicU64; 4]; 3],
}

impl Live {
    // Relaxed everywhere: these are statistics for display, read in no particular order.
    fn add(&self, route: Route, what: usize) {
        self.counts[route.index()][what].fetch_add(1, Ordering::Relaxed);
    }

    /// `(sent, ok, rejected, unsent)` of `route` so far.
    pub fn get(&self, route: Route) -> [u64; 4] {
        let c = &self.counts[route.index()];
        [0, 1, 2, 3].map(|i| c[i].load(Ordering::Relaxed))
    }
}

const SENT: usize = 0;
const OK: usize = 1;
const REJECTED: usize = 2;
const UNSENT: usize = 3;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What every driver and request task of a scenario shares.
struct Shared {
    start: Instant,
    cutoff: Instant,
    records: [Mutex<RouteRecord>; 3],
    live: Arc<Live>,
}

impl Shared {
    fn record(&self, route: Route, f: impl FnOnce(&mut RouteRecord)) {
        // A poisoned lock means a request task panicked mid-push: keep what is there.
        let mut r = match self.records[route.index()].lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        f(&mut r);
    }
}

/// The generator's two runtimes, both apart from the server's: one for the probes of
/// `/health` and `/files`, one for the storm on `/legacy`. Each has one worker thread.
///
/// Apart, so that the probes' answers are never read late because the same thread is busy
/// reading storm answers: a server that answers every storm request at once (with a 503)
/// would otherwise slow its own probes down more than one that leaves the storm unanswered.
pub struct Generator {
    probes: tokio::runtime::Runtime,
    storm: tokio::runtime::Runtime,
}

impl Generator {
    /// Threads the generator runs on.
    pub const THREADS: usize = 2;

    pub fn new() -> std::io::Result<Self> {
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .enable_all()
                .build()
        };
        Ok(Generator {
            probes: runtime("load-probes")?,
            storm: runtime("load-storm")?,
        })
    }

    /// Runs `f` to completion from the calling thread (not a runtime's), with the probes'
    /// runtime as the current one.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.probes.block_on(f)
    }

    /// Spawns `f` on the storm's runtime, away from the probes.
    pub fn spawn_aside<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.storm.spawn(f)
    }

    fn handle(&self, route: Route) -> &tokio::runtime::Handle {
        match route {
            Route::Legacy => self.storm.handle(),
            Route::Health | Route::Files => self.probes.handle(),
        }
    }
}

/// Runs `plan` against the server at `addr` on `generator`, with `start` as the scenario's
/// time zero, and returns what each route recorded, in [`Route::ALL`] order. Returns at the
/// cutoff at the latest.
pub async fn run(
    generator: &Generator,
    addr: SocketAddr,
    plan: &Plan,
    live: Arc<Live>,
    start: Instant,
) -> [RouteRecord; 3] {
    let shared = Arc::new(Shared {
        start,
        cutoff: start + plan.cutoff,
        records: Default::default(),
        live,
    });

    let drivers: Vec<_> = plan
        .loads
        .iter()
        .map(|load| {
            let uri = format!("http://{addr}{}", load.route.path());
            generator
                .handle(load.route)
                .spawn(drive(*load, uri, plan.clone(), shared.clone()))
        })
        .collect();
    for d in drivers {
        if let Err(e) = d.await {
            shared.record(Route::Health, |r| {
                r.first_failure
                    .get_or_insert_with(|| format!("a load driver failed: {e}"));
            });
        }
    }
    shared
        .records
        .each_ref()
        .map(|m| std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner())))
}

/// Sends `load`'s requests on its schedule, from a client of its own (its connections live on
/// the current runtime), then waits until none is outstanding.
async fn drive(load: RouteLoad, uri: String, plan: Plan, shared: Arc<Shared>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let uri: Uri = match uri.parse() {
        Ok(u) => u,
        Err(e) => {
            shared.record(load.route, |r| {
                r.first_failure = Some(format!("{uri}: {e}"))
            });
            return;
        }
    };
    let period = Duration::from_secs_f64(1.0 / load.rate);
    let outstanding = Arc::new(Semaphore::new(load.max_outstanding));
    for n in 0u32.. {
        let due_offset = load.from + period * n;
        if due_offset >= load.to {
            break;
        }
        let due = shared.start + due_offset;
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let lateness = Instant::now().saturating_duration_since(due);
        let phase = plan.phase_at(due_offset);
        if phase == Phase::Storm {
            shared.record(load.route, |r| r.lateness.push(lateness));
        }
        match outstanding.clone().try_acquire_owned() {
            Ok(permit) => {
                shared.live.add(load.route, SENT);
                let (client, uri, shared) = (client.clone(), uri.clone(), shared.clone());
                tokio::spawn(async move {
                    request(&client, load.route, phase, uri, &shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                shared.live.add(load.route, UNSENT);
                shared.record(load.route, |r| r.unsent[phase.index()] += 1);
            }
        }
    }
    // Every request task ends by the cutoff, giving its permit back.
    let _ = outstanding.acquire_many(load.max_outstanding as u32).await;
}

/// One request, recorded.
async fn request(client: &HttpClient, route: Route, phase: Phase, uri: Uri, shared: &Shared) {
    let sent = Instant::now();
    let exchange = async {
        let response = client.get(uri).await.map_err(chain)?;
        let status = response.status();
        response.into_body().collect().await.map_err(chain)?;
        Ok::<_, String>(status)
    };
    let result = tokio::time::timeout_at(shared.cutoff, exchange).await;
    let latency = sent.elapsed();
    let (outcome, failure) = match result {
        Err(_) => (Outcome::Unfinished, None),
        Ok(Ok(StatusCode::OK)) => (Outcome::Ok, None),
        Ok(Ok(StatusCode::SERVICE_UNAVAILABLE)) => (Outcome::Rejected, None),
        Ok(Ok(status)) => (Outcome::Failed, Some(format!("answered {status}"))),
        Ok(Err(e)) => (Outcome::Failed, Some(e)),
    };
    match outcome {
        Outcome::Ok => shared.live.add(route, OK),
        Outcome::Rejected => shared.live.add(route, REJECTED),
        _ => {}
    }
    let at = (sent - shared.start).as_secs_f64();
    shared.record(route, |r| {
        r.samples.push(Sample {
            at,
            phase,
            latency,
            outcome,
        });
        if let Some(f) = failure {
            r.first_failure
                .get_or_insert_with(|| format!("GET {}: {f}", route.path()));
        }
    });
}

/// An error and its sources, on one line.
fn chain(e: impl std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
