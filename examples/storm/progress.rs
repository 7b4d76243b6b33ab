//! The progress line on stderr while a scenario runs: one line updated in place on a
//! terminal, one line a second otherwise (a CI log).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::load::{Live, Phase, Plan, Route};
use crate::sampler::Sampler;

/// The most a line takes on a terminal.
const WIDTH: usize = 100;

/// Prints until aborted. `label` names the scenario, such as `[2/4 default]`.
pub async fn show(
    label: String,
    plan: Plan,
    live: Arc<Live>,
    sampler: Option<Arc<Sampler>>,
    start: tokio::time::Instant,
) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval_at(start + every, every);
    loop {
        tick.tick().await;
        let t = start.elapsed();
        let phase = match plan.phase_at(t) {
            Phase::Warmup => "warm-up",
            Phase::Idle => "idle",
            Phase::Storm if t < plan.storm_to => "storm",
            Phase::Storm => "waiting for answers",
        };
        let [_, health, ..] = live.get(Route::Health);
        let [_, ok, rejected, unsent] = live.get(Route::Legacy);
        let threads = sampler
            .as_ref()
            .and_then(|s| s.latest())
            .map_or("n/a".into(), |s| s.threads.to_string());
        let mut line = format!(
            "{label} {phase} {:.1}/{:.1} s | /legacy {ok} ok, {rejected} 503, {unsent} not sent | /health {health} ok | threads {threads}",
            t.as_secs_f64(),
            plan.storm_to.as_secs_f64(),
        );
        if tty {
            // A line wider than the terminal wraps, and `\r` would leave its first part behind.
            // The line is ASCII, so any length is a char boundary.
            line.truncate(WIDTH);
        }
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r\x1b[K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

/// Clears the line left by [`show`] on a terminal.
pub fn clear() {
    if std::io::stderr().is_terminal() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}
