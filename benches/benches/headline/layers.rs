//! W6: what the tower layer costs per call, on a trivial service that answers at once.
//!
//! [`CLIENTS`] client tasks on the timing runtime each send their share of the calls one after
//! another, as a server's connections do (`ready().await`, `call`, await the response), each
//! through its own clone of the service stack. Contenders: no layer; tower's
//! `ConcurrencyLimit`; bulkheads' layer on a `runtime` dispatcher, pinned (each call's future
//! is a task on the dispatcher's runtime) and admission only (the future stays in the
//! client's task); the core's floor under both (a hand-written service that only takes a
//! reservation and spends it: the layer's own cost is the difference); and pinned to a
//! `limited` view over `main` (the timing runtime itself). The dispatchers admit up to [`CAP`]
//! in flight, as the limit does, so nothing ever waits for room.
//!
//! Targets: pinned at most 1.5x `ConcurrencyLimit`, admission only at most 1.1x (the `vs
//! limit` column).

use std::convert::Infallible;
use std::fmt::Display;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bulkheads::{
    DispatchError, Dispatcher, Dispatchers, LimitedConfig, Reservation, Running, RuntimeConfig,
};
use bulkheads_tower::BulkheadLayer;
use tokio::runtime::Runtime;
use tower::limit::ConcurrencyLimitLayer;
use tower::util::ServiceFn;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::contenders::keep_selected;
use crate::measure::{Human, rounds, summarize};
use crate::plan::Plan;
use crate::report::{self, Table};
use crate::workloads::Workload;

/// Client tasks sending calls at the same time.
const CLIENTS: usize = 8;
/// In-flight cap of `ConcurrencyLimit` and of the dispatchers (never reached).
const CAP: usize = 1024;
/// Workers of the `runtime` dispatcher.
const WORKERS: usize = 2;

/// The trivial service: answers its request at once.
type Trivial = ServiceFn<fn(u64) -> Ready<Result<u64, Infallible>>>;

fn trivial() -> Trivial {
    service_fn(|n: u64| ready(Ok(n)))
}

/// W6 (one workload; its rows are the contenders).
pub struct LayerCost {
    calls: usize,
}

pub fn workloads(quick: bool) -> Vec<Box<dyn Workload>> {
    let calls = if quick { 20_000 } else { 200_000 };
    vec![Box::new(LayerCost { calls })]
}

/// A service stack, sent `calls` calls by [`CLIENTS`] client tasks.
trait Stack: Send + Sync {
    fn run(&self, rt: &Runtime, calls: usize) -> Result<(Duration, u64), String>;
}

struct Cloned<S>(S);

impl<S> Stack for Cloned<S>
where
    S: Service<u64, Response = u64> + Clone + Send + Sync + 'static,
    S::Error: Display + Send,
    S::Future: Send,
{
    fn run(&self, rt: &Runtime, calls: usize) -> Result<(Duration, u64), String> {
        let per_client = calls / CLIENTS;
        let clients: Vec<S> = (0..CLIENTS).map(|_| self.0.clone()).collect();
        // The awaiting side is a task on a runtime worker, as in a server.
        let task = rt.spawn(async move {
            let start = Instant::now();
            let handles: Vec<_> = clients
                .into_iter()
                .map(|svc| tokio::spawn(client(svc, per_client)))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.map_err(|e| format!("client task: {e}"))??;
            }
            Ok::<_, String>((start.elapsed(), sum))
        });
        rt.block_on(task)
            .map_err(|e| format!("timing task failed: {e}"))?
    }
}

async fn client<S>(mut svc: S, calls: usize) -> Result<u64, String>
where
    S: Service<u64, Response = u64>,
    S::Error: Display,
{
    let mut sum = 0;
    for _ in 0..calls {
        let ready = svc.ready().await.map_err(|e| e.to_string())?;
        sum += ready.call(1).await.map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

/// The core's floor under the layer: a hand-written service that takes a slot with
/// `try_reserve` in `poll_ready` and spends it with `run` or `run_here` in `call`, and does
/// nothing else. The layer's own cost is its row minus this one.
struct Floor {
    dispatcher: Dispatcher,
    here: bool,
    /// Taken by `poll_ready`, spent by `call`.
    reserved: Option<Reservation>,
}

impl Clone for Floor {
    /// Without the slot, which belongs to one call.
    fn clone(&self) -> Self {
        Floor {
            dispatcher: self.dispatcher.clone(),
            here: self.here,
            reserved: None,
        }
    }
}

impl Service<u64> for Floor {
    type Response = u64;
    type Error = DispatchError;
    type Future = Running<u64>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DispatchError>> {
        if self.reserved.is_none() {
            self.reserved = Some(self.dispatcher.try_reserve()?);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Running<u64> {
        let reserved = self.reserved.take().expect("poll_ready first");
        if self.here {
            reserved.run_here(ready(n))
        } else {
            reserved.run(ready(n))
        }
    }
}

struct Contender {
    label: String,
    stack: Box<dyn Stack>,
    /// Keeps the dispatchers alive; dropped after the stack.
    _registry: Option<Arc<Dispatchers>>,
}

fn contenders(rt: &Runtime) -> Result<Vec<Contender>, String> {
    // The view's base is `main`: the runtime current at build, the timing runtime.
    let _ctx = rt.enter();
    let registry = Dispatchers::builder()
        .cpu_threads(1)
        .runtime(
            "w6-runtime",
            RuntimeConfig::workers(WORKERS).max_concurrent(CAP),
        )
        .limited(
            "w6-view",
            "main",
            LimitedConfig::parallelism(report::TIMING_WORKERS).max_concurrent(CAP),
        )
        .build()
        .map_err(|e| format!("bulkheads build: {e}"))?;
    let get = |name| {
        registry
            .get(name)
            .map_err(|e| format!("bulkheads get: {e}"))
    };
    let (runtime, view) = (get("w6-runtime")?, get("w6-view")?);
    let registry = Arc::new(registry);
    let c = |label: &str, stack: Box<dyn Stack>, registry: Option<&Arc<Dispatchers>>| Contender {
        label: label.to_owned(),
        stack,
        _registry: registry.cloned(),
    };
    let floor = |here| Floor {
        dispatcher: runtime.clone(),
        here,
        reserved: None,
    };
    let (floor_pinned, floor_here) = (floor(false), floor(true));
    let pinned = BulkheadLayer::new(runtime.clone()).layer(trivial());
    let admission = BulkheadLayer::new(runtime)
        .admission_only()
        .layer(trivial());
    let on_view = BulkheadLayer::new(view).layer(trivial());
    let limit = ConcurrencyLimitLayer::new(CAP).layer(trivial());
    Ok(vec![
        c(
            "bulkheads pinned (runtime, 2 workers)",
            Box::new(Cloned(pinned)),
            Some(&registry),
        ),
        c(
            "bulkheads admission only (runtime)",
            Box::new(Cloned(admission)),
            Some(&registry),
        ),
        c(
            "core floor: try_reserve + run (runtime)",
            Box::new(Cloned(floor_pinned)),
            Some(&registry),
        ),
        c(
            "core floor: try_reserve + run_here (runtime)",
            Box::new(Cloned(floor_here)),
            Some(&registry),
        ),
        c(
            "bulkheads pinned (view over main)",
            Box::new(Cloned(on_view)),
            Some(&registry),
        ),
        c("tower ConcurrencyLimit", Box::new(Cloned(limit)), None),
        c("no layer", Box::new(Cloned(trivial())), None),
    ])
}

impl Workload for LayerCost {
    fn name(&self) -> &'static str {
        "W6"
    }

    fn heading(&self) -> String {
        format!(
            "W6: {} calls of a service that answers at once, from {CLIENTS} client tasks \
             (ready, call, await; one clone of the stack each), through each layer\n    \
             targets (vs limit = median / ConcurrencyLimit median): pinned <= 1.5, \
             admission only <= 1.1",
            self.calls
        )
    }

    fn measure(&self, rt: &Runtime, plan: &Plan) -> Result<Table, String> {
        let entries = keep_selected(contenders(rt)?, |c| c.label.as_str());
        let calls = self.calls - self.calls % CLIENTS;
        let times = rounds(entries.len(), plan, |i| {
            let c = &entries[i];
            let (elapsed, sum) = c
                .stack
                .run(rt, calls)
                .map_err(|e| format!("W6 / {}: {e}", c.label))?;
            if sum != calls as u64 {
                return Err(format!("W6 / {}: sum {sum}, expected {calls}", c.label));
            }
            Ok(elapsed)
        })?;
        let summaries: Vec<_> = times.into_iter().map(summarize).collect();
        let base = summaries.first().map(|s| s.median);
        let limit = entries
            .iter()
            .zip(&summaries)
            .find(|(c, _)| c.label.contains("ConcurrencyLimit"))
            .map(|(_, s)| s.median);
        let mut table = Table::new("W6", report::LAYER_COLUMNS);
        for (c, s) in entries.iter().zip(&summaries) {
            table.row(vec![
                c.label.clone(),
                Human(s.median).to_string(),
                report::ratio(s.median, base),
                Human(s.median / calls as u32).to_string(),
                report::ratio(s.median, limit),
                Human(s.min).to_string(),
                Human(s.max).to_string(),
            ]);
        }
        // Stacks and registries are dropped here, outside any runtime context.
        drop(entries);
        Ok(table)
    }
}
