//! What a scenario measured, in figures: per route and phase, rates and latency percentiles;
//! the process's peaks; the generator's lateness; the legacy call's own time.
//!
//! Latency percentiles are nearest-rank over the requests answered 200 plus those still
//! unanswered at the cutoff, counted at their age then. Such an age is only a lower bound,
//! so a figure that one of them could have lowered is marked (`at_least`) and printed with
//! `>=`. 503 answers are counted, not timed.

use std::time::Duration;

use bulkheads::Stats;

use crate::load::{Outcome, Phase, Plan, Route, RouteRecord};
use crate::sampler::ProcSample;
use crate::server::Scenario;

/// A latency, possibly only a lower bound.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub value: Duration,
    /// Some request unanswered at the cutoff may have taken longer than it shows.
    pub at_least: bool,
}

/// One route in one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseStats {
    pub seconds: f64,
    /// Due: sent or not.
    pub offered: u64,
    pub ok: u64,
    pub rejected: u64,
    pub failed: u64,
    pub unfinished: u64,
    pub unsent: u64,
    pub p50: Option<Latency>,
    pub p99: Option<Latency>,
    pub max: Option<Latency>,
}

impl PhaseStats {
    fn of(record: &RouteRecord, phase: Phase, seconds: f64) -> Self {
        let mut s = PhaseStats {
            seconds,
            unsent: record.unsent(phase),
            ..Default::default()
        };
        // (latency, unanswered at the cutoff)
        let mut timed: Vec<(Duration, bool)> = Vec::new();
        for sample in record.samples.iter().filter(|x| x.phase == phase) {
            match sample.outcome {
                Outcome::Ok => {
                    s.ok += 1;
                    timed.push((sample.latency, false));
                }
                Outcome::Unfinished => {
                    s.unfinished += 1;
                    timed.push((sample.latency, true));
                }
                Outcome::Rejected => s.rejected += 1,
                Outcome::Failed => s.failed += 1,
            }
        }
        s.offered = s.ok + s.rejected + s.failed + s.unfinished + s.unsent;
        timed.sort();
        s.p50 = percentile(&timed, 0.50);
        s.p99 = percentile(&timed, 0.99);
        s.max = percentile(&timed, 1.0);
        s
    }

    /// Per second of the phase.
    pub fn rate(&self, n: u64) -> f64 {
        if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The 1-based nearest rank of percentile `p` (0 to 1) among `n` values; `None` when `n` is 0.
fn rank(n: usize, p: f64) -> Option<usize> {
    (n > 0).then(|| ((p * n as f64).ceil() as usize).clamp(1, n))
}

/// Percentile `p` of `sorted`, nearest rank.
fn nearest_rank(sorted: &[Duration], p: f64) -> Option<Duration> {
    Some(sorted[rank(sorted.len(), p)? - 1])
}

/// Percentile `p` of `sorted` (latency, unfinished), nearest rank; a lower bound when an
/// unfinished request ranks at or below it.
fn percentile(sorted: &[(Duration, bool)], p: f64) -> Option<Latency> {
    let rank = rank(sorted.len(), p)?;
    let value = sorted[rank - 1].0;
    let at_least = sorted[..rank].iter().any(|&(_, unfinished)| unfinished);
    Some(Latency { value, at_least })
}

/// Peaks of the process samples of one phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcPeaks {
    pub threads: Option<u64>,
    pub rss_kib: Option<u64>,
}

impl ProcPeaks {
    fn of(samples: &[ProcSample]) -> Self {
        ProcPeaks {
            threads: samples.iter().map(|s| s.threads).max(),
            rss_kib: samples.iter().map(|s| s.rss_kib).max(),
        }
    }
}

/// Everything one scenario measured.
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub plan: Plan,
    /// By route ([`Route::ALL`] order), then idle and storm.
    pub stats: [[PhaseStats; 2]; 3],
    pub records: [RouteRecord; 3],
    pub idle_proc: ProcPeaks,
    pub storm_proc: ProcPeaks,
    /// RSS at the scenario's first sample.
    pub rss_start_kib: Option<u64>,
    /// How late the generator sent storm-phase requests, all routes: p99 and max.
    pub lateness: Option<(Duration, Duration)>,
    /// The bulkhead pools' stats at the end of the storm (bulkheads scenario).
    pub pools: Vec<Stats>,
    /// p50 and p99 of the time each `/legacy` call held its thread, measured on the server.
    pub service: Option<(Duration, Duration)>,
}

impl ScenarioResult {
    /// `proc` are the process samples taken during the scenario, `start` its time zero.
    pub fn new(
        scenario: Scenario,
        plan: Plan,
        records: [RouteRecord; 3],
        start: std::time::Instant,
        proc: &[ProcSample],
        pools: Vec<Stats>,
        service_times: &[Duration],
    ) -> Self {
        let idle_secs = (plan.storm_from - plan.idle_from).as_secs_f64();
        let storm_secs = (plan.storm_to - plan.storm_from).as_secs_f64();
        let stats = records.each_ref().map(|r| {
            [
                PhaseStats::of(r, Phase::Idle, idle_secs),
                PhaseStats::of(r, Phase::Storm, storm_secs),
            ]
        });
        let in_phase = |from: Duration, to: Duration| -> Vec<ProcSample> {
            proc.iter()
                .filter(|s| {
                    let t = s.at.saturating_duration_since(start);
                    t >= from && t < to
                })
                .copied()
                .collect()
        };
        let idle_proc = ProcPeaks::of(&in_phase(plan.idle_from, plan.storm_from));
        let storm_proc = ProcPeaks::of(&in_phase(plan.storm_from, plan.cutoff));
        let mut late: Vec<Duration> = records
            .iter()
            .flat_map(|r| r.lateness.iter().copied())
            .collect();
        late.sort();
        let lateness = nearest_rank(&late, 0.99).zip(late.last().copied());
        let service = nearest_rank(service_times, 0.5).zip(nearest_rank(service_times, 0.99));
        ScenarioResult {
            scenario,
            plan,
            stats,
            records,
            idle_proc,
            storm_proc,
            rss_start_kib: proc.first().map(|s| s.rss_kib),
            lateness,
            pools,
            service,
        }
    }

    pub fn idle(&self, route: Route) -> &PhaseStats {
        &self.stats[route as usize][0]
    }

    pub fn storm(&self, route: Route) -> &PhaseStats {
        &self.stats[route as usize][1]
    }

    /// Storm p99 over idle p99 of `route`.
    pub fn ratio(&self, route: Route) -> Option<f64> {
        let idle = self.idle(route).p99?.value.as_secs_f64();
        let storm = self.storm(route).p99?.value.as_secs_f64();
        (idle > 0.0).then(|| storm / idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentile_is_nearest_rank_and_a_lower_bound_past_an_unfinished_request() {
        let v: Vec<(Duration, bool)> = (1..=100).map(|i| (ms(i), false)).collect();
        assert_eq!(percentile(&v, 0.5).unwrap().value, ms(50));
        assert_eq!(percentile(&v, 0.99).unwrap().value, ms(99));
        assert_eq!(percentile(&v, 1.0).unwrap().value, ms(100));

        let mut v = v;
        v[99].1 = true; // the slowest was unanswered at the cutoff
        assert!(!percentile(&v, 0.99).unwrap().at_least);
        assert!(percentile(&v, 1.0).unwrap().at_least);
        assert!(percentile(&[], 0.5).is_none());
    }
}
