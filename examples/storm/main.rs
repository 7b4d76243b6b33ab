//! The storm demo: a real axum service whose `/legacy` route calls a blocking driver, offered
//! ten times what it can serve, measured four ways side by side in one run.
//!
//! ```text
//! cargo run --release --example storm                     # about 45 s on 2 cores
//! cargo run --release --example storm -- --svg storm.svg  # and a chart of latency over time
//! cargo run --release --example storm -- --help
//! ```
//!
//! Each scenario starts a fresh server runtime ([`server`]), measures an idle baseline of
//! `/health` and `/files`, then adds the storm on `/legacy` ([`load`], from runtimes of its
//! own), while a thread samples the process's threads and memory ([`sampler`]). The tables
//! ([`report`], from the figures of [`stats`]) compare each route's p99 under the storm with
//! its own idle p99 in the same scenario, and check W7's targets (docs/performance.md) on the
//! bulkheads scenario. A missed target is printed, not turned into a failure; a broken run
//! (a route silent when idle, the server gone, requests failing) exits with status 1, bad
//! flags with status 2.

mod args;
mod chart;
mod load;
mod progress;
mod report;
mod sampler;
mod server;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use args::{Args, Parsed};
use load::{Generator, Live, Plan, Route, RouteLoad};
use report::Context;
use sampler::Sampler;
use server::{LEGACY_CALL, Pools, Server};
use stats::ScenarioResult;

/// `/health` probes per second.
const HEALTH_RATE: f64 = 500.0;
/// `/files` requests per second: a light, steady load.
const FILES_RATE: f64 = 200.0;
/// Most `/health` requests unanswered at once.
const HEALTH_OUTSTANDING: usize = 64;
/// Most `/files` requests unanswered at once.
const FILES_OUTSTANDING: usize = 128;

/// Most requests unanswered at once on `/health`, `/files` and `/legacy`. `/legacy` gets room
/// for everything a bulkhead holds (running, queued, waiting up to `max_wait`) twice over, and
/// at least 128. Each unanswered request holds a connection, two file descriptors in this
/// process (client and server side): where the open-files limit is known, `/legacy`'s share
/// is cut to fit under it.
fn outstanding(pools: &Pools, legacy_rate: f64) -> [usize; 3] {
    let legacy = &pools.legacy;
    let waiting = (legacy_rate * legacy.max_wait.as_secs_f64()).ceil() as usize;
    let mut legacy_max = (2 * (legacy.threads + legacy.queue + waiting)).max(128);
    if let Some(limit) = sampler::open_files_limit() {
        // Room for the process's other descriptors.
        let room =
            (limit.saturating_sub(64) / 2).saturating_sub(HEALTH_OUTSTANDING + FILES_OUTSTANDING);
        legacy_max = legacy_max.min(room.max(16));
    }
    [HEALTH_OUTSTANDING, FILES_OUTSTANDING, legacy_max]
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("storm: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            progress::clear();
            eprintln!("storm: broken run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let pools = Pools::new(args.threads, args.queue);
    let legacy_rate = args.load * args.threads as f64 / LEGACY_CALL.as_secs_f64();
    let generator = Generator::new().map_err(|e| format!("load generator runtimes: {e}"))?;
    let sampler = Sampler::start().map(Arc::new);
    // Let the generator's threads start before counting the process's own threads.
    generator.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    let ctx = Context {
        pools,
        load: args.load,
        legacy_rate,
        base_threads: sampler::read().map(|s| s.threads),
        quick: args.quick,
    };
    let plan = plan(&args, &pools, legacy_rate);
    print!("{}", report::header(&ctx, &args, &plan));

    let mut results = Vec::new();
    let count = args.scenarios.len();
    for (i, &scenario) in args.scenarios.iter().enumerate() {
        let server = Server::start(scenario, &pools)
            .map_err(|e| format!("{}: starting the server: {e}", scenario.name()))?;
        let live = Arc::new(Live::default());
        let start = std::time::Instant::now();
        // Halfway through the storm, a live dump of the bulkheads (bulkheads scenario).
        let peak = server.dispatchers().map(|d| {
            let at = start + plan.storm_from + (plan.storm_to - plan.storm_from) / 2;
            std::thread::spawn(move || {
                std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                d.dump()
            })
        });
        let label = format!("[{}/{count} {}]", i + 1, scenario.name());
        let records = generator.block_on(async {
            let start = tokio::time::Instant::from_std(start);
            let progress = generator.spawn_aside(progress::show(
                label,
                plan.clone(),
                live.clone(),
                sampler.clone(),
                start,
            ));
            let records = load::run(&generator, server.addr, &plan, live, start).await;
            progress.abort();
            records
        });
        progress::clear();
        let end = std::time::Instant::now();
        let peak_dump = peak.and_then(|h| h.join().ok());
        let alive = server.check_alive();
        let pool_stats = server.pool_stats();
        let service_times = server.legacy_times.sorted();
        server.stop();
        alive.map_err(|e| format!("{}: {e}", scenario.name()))?;

        let proc = sampler
            .as_ref()
            .map_or(Vec::new(), |s| s.between(start, end));
        let result = ScenarioResult::new(
            scenario,
            plan.clone(),
            records,
            start,
            &proc,
            pool_stats,
            &service_times,
        );
        print!("{}", report::scenario_table(&result, &ctx, i + 1, count));
        if let Some(dump) = &peak_dump {
            print!("{}", report::peak_dump(dump));
        }
        results.push(result);
    }

    print!("{}", report::summary(&results, &ctx));
    print!("{}", report::targets(&results, &ctx));
    if let Some(path) = &args.svg {
        let title = format!(
            "storm: /health and /files latency while /legacy is offered {}x its capacity (log scale)",
            args.load
        );
        chart::write(path, &results, &title)?;
        println!("\nchart written to {path}");
    }
    report::check_broken(&results)
}

/// The same timeline and loads for every scenario.
fn plan(args: &Args, pools: &Pools, legacy_rate: f64) -> Plan {
    let idle_from = args.warmup;
    let storm_from = idle_from + args.idle;
    let storm_to = storm_from + args.storm;
    let [health_max, files_max, legacy_max] = outstanding(pools, legacy_rate);
    let steady = |route, rate, max_outstanding| RouteLoad {
        route,
        rate,
        from: Duration::ZERO,
        to: storm_to,
        max_outstanding,
    };
    Plan {
        loads: vec![
            steady(Route::Health, HEALTH_RATE, health_max),
            steady(Route::Files, FILES_RATE, files_max),
            RouteLoad {
                route: Route::Legacy,
                rate: legacy_rate,
                from: storm_from,
                to: storm_to,
                max_outstanding: legacy_max,
            },
        ],
        idle_from,
        storm_from,
        storm_to,
        cutoff: storm_to + args.grace,
    }
}
