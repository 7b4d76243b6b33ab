//! What a run measured, as tables: the setup, one table per scenario, a summary comparing
//! them with a verdict each, and the check of W7's targets (docs/performance.md). Also what
//! makes a run broken rather than merely slow.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Plan, Route};
use crate::server::{LEGACY_CALL, Pools, Scenario, WORKERS};
use crate::stats::{Latency, ScenarioResult};

/// W7: `/health` and `/files` p99 under the storm at most this many times their idle p99.
pub const TARGET_RATIO: f64 = 1.5;
/// A `/health` or `/files` p99 this long is no longer "slower": callers are stuck.
const STALLED: Duration = Duration::from_millis(100);

/// What the whole run shares: the pools' shapes, the load, the thread baseline.
pub struct Context {
    pub pools: Pools,
    pub load: f64,
    pub legacy_rate: f64,
    /// Threads of the process before any server ran: main, the generator, the sampler.
    pub base_threads: Option<u64>,
    pub quick: bool,
}

impl Context {
    /// Threads beyond the process's own and the server's workers: those of blocking work
    /// (and in the bulkheads scenario, of the registry: pools, control thread, `cpu`).
    pub fn extra_threads(&self, peak: Option<u64>) -> Option<u64> {
        Some(peak?.saturating_sub(self.base_threads? + WORKERS as u64))
    }

    /// max_wait + queue deadline + `service` time of `/legacy`.
    pub fn legacy_bound(&self, service: Duration) -> Duration {
        self.pools.legacy.max_wait + self.pools.legacy.queue_deadline + service
    }
}

/// What is measured and how, before the first scenario.
pub fn header(ctx: &Context, args: &crate::args::Args, plan: &Plan) -> String {
    let legacy = &ctx.pools.legacy;
    let capacity = legacy.threads as f64 / LEGACY_CALL.as_secs_f64();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "storm: one axum service; /legacy (a blocking driver call of {} ms) is offered {:.0} req/s, {}x its capacity \
         ({} threads / {} ms = {:.0} req/s),",
        LEGACY_CALL.as_millis(),
        ctx.legacy_rate,
        fmt_factor(ctx.load),
        legacy.threads,
        LEGACY_CALL.as_millis(),
        capacity
    );
    let _ = writeln!(
        s,
        "while /health (answers at once) gets {:.0} req/s and /files (1 ms of blocking work) {:.0} req/s.",
        plan.load(Route::Health).map_or(0.0, |l| l.rate),
        plan.load(Route::Files).map_or(0.0, |l| l.rate)
    );
    let _ = writeln!(
        s,
        "Each scenario: a fresh server runtime ({WORKERS} workers), {:.1} s warm-up (not counted), {:.1} s idle \
         baseline (no /legacy), {:.1} s storm.",
        args.warmup.as_secs_f64(),
        args.idle.as_secs_f64(),
        args.storm.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "Load generator: open-loop HTTP/1 on runtimes of its own ({} threads: one for the probes of /health and \
         /files, one for the storm), at most {} / {} / {} requests unanswered on /health, /files, /legacy (a request \
         due beyond that is not sent, and counted).",
        crate::load::Generator::THREADS,
        max_outstanding(plan, Route::Health),
        max_outstanding(plan, Route::Files),
        max_outstanding(plan, Route::Legacy),
    );
    let _ = writeln!(
        s,
        "Latency: from send to the end of the answer, 200 answers only. Machine: {} cores, load average {} at the start.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if ctx.quick {
        let _ = writeln!(
            s,
            "--quick: phases of about a second; too few requests for a p99 to mean much."
        );
    }
    s
}

fn max_outstanding(plan: &Plan, route: Route) -> usize {
    plan.load(route).map_or(0, |l| l.max_outstanding)
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".into())
}

/// The table of one scenario.
pub fn scenario_table(r: &ScenarioResult, ctx: &Context, number: usize, of: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n[{number}/{of}] {}: {}",
        r.scenario.name(),
        r.scenario.describe(&ctx.pools)
    );
    let _ = writeln!(
        s,
        "  {:<8} {:<6} {:>9} {:>8} {:>8} {:>10} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "route",
        "phase",
        "offered/s",
        "200/s",
        "503/s",
        "not sent/s",
        "unanswered/s",
        "p50",
        "p99",
        "max",
        "p99/idle"
    );
    for route in Route::ALL {
        for (phase, st) in [("idle", r.idle(route)), ("storm", r.storm(route))] {
            if st.offered == 0 {
                continue;
            }
            let ratio = match phase {
                "storm" if r.idle(route).offered > 0 => ratio_text(r, route),
                _ => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<8} {:<6} {:>9.1} {:>8.1} {:>8.1} {:>10.1} {:>12.1} {:>10} {:>10} {:>10} {:>9}",
                route.path(),
                phase,
                st.rate(st.offered),
                st.rate(st.ok),
                st.rate(st.rejected),
                st.rate(st.unsent),
                st.rate(st.unfinished),
                fmt_latency(st.p50),
                fmt_latency(st.p99),
                fmt_latency(st.max),
                ratio
            );
        }
    }
    for (route, rec) in Route::ALL.iter().zip(&r.records) {
        let failed: u64 = r.stats[*route as usize].iter().map(|p| p.failed).sum();
        if failed > 0 {
            let first = rec.first_failure.as_deref().unwrap_or("?");
            let _ = writeln!(
                s,
                "  {} failed {failed} times; first: {first}",
                route.path()
            );
        }
    }
    for p in &r.pools {
        let _ = writeln!(
            s,
            "  pool '{}': completed {}, rejected {} (no room within max_wait {}, queue full {}, queue deadline {})",
            p.name,
            p.completed,
            p.rejected.total(),
            p.rejected.wait_timeout,
            p.rejected.queue_full,
            p.rejected.queue_deadline
        );
    }
    if let Some((p50, p99)) = r.service {
        let _ = writeln!(
            s,
            "  the /legacy call on its thread (server side): p50 {}, p99 {}",
            fmt_duration(p50),
            fmt_duration(p99)
        );
    }
    let _ = writeln!(
        s,
        "  process: threads peak {} in the storm ({} idle; {} beyond the generator's and the server's {WORKERS} workers), \
         RSS peak {} in the storm ({} at the start)",
        fmt_opt(r.storm_proc.threads),
        fmt_opt(r.idle_proc.threads),
        ctx.extra_threads(r.storm_proc.threads)
            .map_or("n/a".into(), |n| n.to_string()),
        fmt_kib(r.storm_proc.rss_kib),
        fmt_kib(r.rss_start_kib)
    );
    if let Some((p99, max)) = r.lateness {
        let _ = writeln!(
            s,
            "  load generator in the storm: requests sent late by p99 {}, max {} (its timers tick every 1 ms); load average now {}",
            fmt_duration(p99),
            fmt_duration(max),
            load_average()
        );
    }
    s
}

/// The side-by-side table, one line per scenario, and its legend.
pub fn summary(results: &[ScenarioResult], ctx: &Context) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nsummary, /legacy offered {}x its capacity ((xN) = N times the route's idle p99 in the same scenario):",
        fmt_factor(ctx.load)
    );
    let _ = writeln!(
        s,
        "  {:<10} {:>19} {:>19} {:>13} {:>6} {:>11} {:>7} {:>9}  verdict",
        "scenario",
        "/health p99",
        "/files p99",
        "/legacy 200/s",
        "503/s",
        "p99 of 200",
        "threads",
        "RSS"
    );
    for r in results {
        let legacy = r.storm(Route::Legacy);
        let _ = writeln!(
            s,
            "  {:<10} {:>19} {:>19} {:>13.0} {:>6.0} {:>11} {:>7} {:>9}  {}",
            r.scenario.name(),
            with_ratio(r, Route::Health),
            with_ratio(r, Route::Files),
            legacy.rate(legacy.ok),
            legacy.rate(legacy.rejected),
            fmt_latency(legacy.p99),
            fmt_opt(r.storm_proc.threads),
            fmt_kib(r.storm_proc.rss_kib),
            verdict(r, ctx)
        );
    }
    let _ = writeln!(
        s,
        "  All figures under the storm. threads, RSS: peaks of the whole process (generator included), sampled every {} ms; \
         RSS is sampled VmRSS (VmHWM cannot be reset between scenarios), and memory an earlier scenario freed may still count.",
        crate::sampler::PERIOD.as_millis()
    );
    s
}

/// A few words that a reader of the summary alone can act on: whether `/health` and `/files`
/// kept their idle latency, and at what cost.
fn verdict(r: &ScenarioResult, ctx: &Context) -> String {
    let stalled = |route| r.storm(route).p99.is_some_and(|p| p.value >= STALLED);
    let mut parts = Vec::new();
    if stalled(Route::Health) {
        let health = r.storm(Route::Health);
        let unsent = match health.offered {
            0 => String::new(),
            n if health.unsent * 10 > n => format!(
                ", {:.0}% of probes not even sent",
                100.0 * health.unsent as f64 / n as f64
            ),
            _ => String::new(),
        };
        parts.push(format!(
            "FAILS: the whole service stalls (/health p99 {} idle{unsent})",
            ratio_text(r, Route::Health)
        ));
    } else if stalled(Route::Files) {
        parts.push(format!(
            "FAILS: /files queues behind /legacy (p99 {} idle)",
            ratio_text(r, Route::Files)
        ));
    }
    for route in [Route::Health, Route::Files] {
        let over = r.ratio(route).is_some_and(|x| x > TARGET_RATIO);
        if over && !stalled(route) {
            parts.push(format!(
                "{} p99 {} idle (target {TARGET_RATIO}x)",
                route.path(),
                ratio_text(r, route)
            ));
        }
    }
    if parts.is_empty() {
        parts.push("isolated".into());
    }
    let budget = ctx.pools.total_threads() as u64;
    if let Some(extra) = ctx.extra_threads(r.storm_proc.threads) {
        if extra > 2 * budget {
            parts.push(format!(
                "{extra} threads for blocking work (pools: {budget})"
            ));
        }
    }
    if r.storm(Route::Legacy).rejected > 0 {
        parts.push("the excess /legacy load answered 503".into());
    }
    parts.join("; ")
}

/// W7's targets, checked on the bulkheads scenario of this run.
pub fn targets(results: &[ScenarioResult], ctx: &Context) -> String {
    let mut s = String::from("\ntargets (W7 in docs/performance.md), on the bulkheads scenario:\n");
    let Some(r) = results.iter().find(|r| r.scenario == Scenario::Bulkheads) else {
        s.push_str("  not checked: the bulkheads scenario was not run\n");
        return s;
    };
    if (ctx.load - 10.0).abs() > f64::EPSILON {
        let _ = writeln!(
            s,
            "  (the targets are stated for 10x overload; this run offered {}x)",
            fmt_factor(ctx.load)
        );
    }
    for route in [Route::Health, Route::Files] {
        let target = format!("{} p99 <= {TARGET_RATIO}x idle", route.path());
        let measured = format!(
            "{} in the storm, {} idle: {}",
            fmt_latency(r.storm(route).p99),
            fmt_latency(r.idle(route).p99),
            ratio_text(r, route)
        );
        let met = r.ratio(route).map(|x| x <= TARGET_RATIO);
        let _ = writeln!(s, "  {target:<34} {measured:<42} {}", fmt_met(met));
    }
    let legacy = &ctx.pools.legacy;
    let bound = ctx.legacy_bound(LEGACY_CALL);
    let target = format!("admitted /legacy p99 <= {} ms", bound.as_millis());
    let measured = format!(
        "{} (max_wait {} + queue_deadline {} + service {} ms)",
        fmt_latency(r.storm(Route::Legacy).p99),
        legacy.max_wait.as_millis(),
        legacy.queue_deadline.as_millis(),
        LEGACY_CALL.as_millis()
    );
    let met = r.storm(Route::Legacy).p99.map(|p| p.value <= bound);
    let _ = writeln!(s, "  {target:<34} {measured:<42} {}", fmt_met(met));
    if let Some((_, service_p99)) = r.service {
        let _ = writeln!(
            s,
            "  (the /legacy call itself took p99 {} on its thread: with that as the service time the bound is {})",
            fmt_duration(service_p99),
            fmt_duration(ctx.legacy_bound(service_p99))
        );
    }
    if let Some((p99, max)) = r.lateness {
        let _ = writeln!(
            s,
            "  (the load generator shares the cores: it sent requests late by p99 {}, max {})",
            fmt_duration(p99),
            fmt_duration(max)
        );
    }
    s.push_str(
        "  A missed target is reported here, not turned into a failure: timing on a shared machine is noisy.\n",
    );
    s
}

/// `Err` naming what broke when the run measured nothing worth reading: a route silent when
/// idle, no `/legacy` request served in a storm, more than 1% of a route's requests failed
/// (a status other than 200 or 503, or a connection error).
pub fn check_broken(results: &[ScenarioResult]) -> Result<(), String> {
    for r in results {
        let name = r.scenario.name();
        // Under the storm, a stalled /health is a finding (naive), not a broken run; idle,
        // every route must answer.
        for route in [Route::Health, Route::Files] {
            if r.idle(route).ok == 0 {
                return Err(format!(
                    "{name}: no {} request answered 200 in the idle phase",
                    route.path()
                ));
            }
        }
        if r.storm(Route::Legacy).ok == 0 {
            return Err(format!(
                "{name}: no /legacy request answered 200 during the storm"
            ));
        }
        for (route, rec) in Route::ALL.iter().zip(&r.records) {
            let phases = &r.stats[*route as usize];
            let sent: u64 = phases.iter().map(|p| p.offered - p.unsent).sum();
            let failed: u64 = phases.iter().map(|p| p.failed).sum();
            if failed * 100 > sent {
                return Err(format!(
                    "{name}: {failed} of {sent} {} requests failed; first: {}",
                    route.path(),
                    rec.first_failure.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    Ok(())
}

/// [`ScenarioResult::ratio`] for display, such as `x1.31`; `>=x2005` when the storm's p99 is
/// only a lower bound; `n/a` when there is none.
pub fn ratio_text(r: &ScenarioResult, route: Route) -> String {
    match r.ratio(route) {
        None => "n/a".into(),
        Some(x) if r.storm(route).p99.is_some_and(|p| p.at_least) => {
            format!(">={}", fmt_ratio(x))
        }
        Some(x) => fmt_ratio(x),
    }
}

/// The storm's p99 of `route`, and its ratio to idle.
fn with_ratio(r: &ScenarioResult, route: Route) -> String {
    let p99 = fmt_latency(r.storm(route).p99);
    match r.ratio(route) {
        Some(_) => format!("{p99} ({})", ratio_text(r, route)),
        None => p99,
    }
}

fn fmt_met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

pub fn fmt_latency(l: Option<Latency>) -> String {
    match l {
        None => "-".into(),
        Some(l) => {
            let d = fmt_duration(l.value);
            if l.at_least { format!(">={d}") } else { d }
        }
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub fn fmt_ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("x{x:.0}")
    } else if x >= 10.0 {
        format!("x{x:.1}")
    } else {
        format!("x{x:.2}")
    }
}

fn fmt_factor(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

fn fmt_opt(n: Option<u64>) -> String {
    n.map_or("n/a".into(), |n| n.to_string())
}

fn fmt_kib(k: Option<u64>) -> String {
    k.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Task lines shown per dispatcher in the peak dump.
const DUMP_LINES: usize = 3;
/// What the peak dump's suspects are judged against.
const SUSPECT_THRESHOLD: Duration = Duration::from_millis(100);

/// The live dump taken halfway through the bulkheads scenario's storm: each dispatcher's
/// summary and its oldest few tasks, then the suspects.
pub fn peak_dump(dump: &bulkheads::Dump) -> String {
    let mut out = format!(
        "  live dump halfway through the storm (Dispatchers::dump, {} tasks, taken in {:.2} ms; oldest {} per dispatcher shown):\n",
        dump.len(),
        dump.took.as_secs_f64() * 1e3,
        DUMP_LINES
    );
    for d in &dump.dispatchers {
        out.push_str(&format!("    {d}\n"));
        for t in d.tasks.iter().take(DUMP_LINES) {
            out.push_str(&format!("      {t}\n"));
        }
        if d.tasks.len() > DUMP_LINES {
            out.push_str(&format!(
                "      ... and {} more\n",
                d.tasks.len() - DUMP_LINES
            ));
        }
    }
    let suspects = dump.suspects(SUSPECT_THRESHOLD);
    if suspects.is_empty() {
        out.push_str(&format!(
            "  suspects (threshold {} ms): none (no ghost, zombie, long blocking job or long poll)\n",
            SUSPECT_THRESHOLD.as_millis()
        ));
    } else {
        out.push_str(&format!(
            "  suspects (threshold {} ms):\n",
            SUSPECT_THRESHOLD.as_millis()
        ));
        for s in suspects.iter().take(DUMP_LINES * 2) {
            out.push_str(&format!("    {s}\n"));
        }
    }
    out
}
