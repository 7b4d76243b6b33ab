//! `--svg FILE`: `/health` and `/files` latency over time, one panel per scenario, drawn with
//! `plotters` (SVG backend).
//!
//! Each point is the slowest request sent in a window of [`WINDOW`] (answered 200, or still
//! unanswered at the cutoff, at its age then). The latency axis is logarithmic and the same in
//! every panel, so that seconds and fractions of a millisecond show side by side; the storm
//! phase is shaded.

use std::time::Duration;

use plotters::prelude::*;

use crate::load::{Outcome, Route};
use crate::stats::ScenarioResult;

/// The width of a point's window.
pub const WINDOW: Duration = Duration::from_millis(250);

const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 280;
const HEALTH: RGBColor = RGBColor(31, 119, 180);
const FILES: RGBColor = RGBColor(230, 120, 20);
const STORM: RGBColor = RGBColor(214, 39, 40);

/// Writes the chart of `results` to `path`.
pub fn write(path: &str, results: &[ScenarioResult], title: &str) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("--svg {path}: {e}");
    let series: Vec<[Vec<(f64, f64)>; 2]> = results
        .iter()
        .map(|r| {
            [
                worst_per_window(r, Route::Health),
                worst_per_window(r, Route::Files),
            ]
        })
        .collect();
    let (lo, hi) = y_range(&series);
    let x_max = results
        .iter()
        .map(|r| r.plan.cutoff.as_secs_f64())
        .fold(1.0, f64::max);

    let height = 40 + PANEL_HEIGHT * results.len() as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 18))
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((results.len(), 1));

    for ((r, [health, files]), panel) in results.iter().zip(&series).zip(&panels) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: {}", r.scenario.name(), caption(r)),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            // A hair beyond whole decades, so that both ends get their labels.
            .build_cartesian_2d(0.0..x_max, (lo * 0.999..hi * 1.001).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds since the scenario started")
            .y_desc("latency")
            .y_label_formatter(&|ms| label_ms(*ms))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;

        let second = |d: Duration| d.as_secs_f64();
        chart
            .draw_series([Rectangle::new(
                [(0.0, lo), (second(r.plan.idle_from), hi)],
                BLACK.mix(0.06).filled(),
            )])
            .map_err(|e| err(&e))?
            .label("warm-up, not counted")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLACK.mix(0.12).filled())
            });
        chart
            .draw_series([Rectangle::new(
                [
                    (second(r.plan.storm_from), lo),
                    (second(r.plan.storm_to), hi),
                ],
                STORM.mix(0.08).filled(),
            )])
            .map_err(|e| err(&e))?
            .label("storm: /legacy offered its load")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], STORM.mix(0.2).filled())
            });
        chart
            .draw_series(LineSeries::new(
                health.iter().copied(),
                HEALTH.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("/health, slowest per 250 ms")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], HEALTH.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                files.iter().copied(),
                FILES.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("/files, slowest per 250 ms")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], FILES.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The panel's caption: the storm's p99s as multiples of idle.
fn caption(r: &ScenarioResult) -> String {
    let ratio = |route| crate::report::ratio_text(r, route);
    format!(
        "p99 under the storm: /health {} idle, /files {} idle",
        ratio(Route::Health),
        ratio(Route::Files)
    )
}

/// `(window start in seconds, slowest latency in ms)` of `route`'s timed requests.
fn worst_per_window(r: &ScenarioResult, route: Route) -> Vec<(f64, f64)> {
    let width = WINDOW.as_secs_f64();
    let windows = (r.plan.cutoff.as_secs_f64() / width).ceil() as usize;
    let mut worst = vec![None::<f64>; windows];
    for s in &r.records[route as usize].samples {
        if !matches!(s.outcome, Outcome::Ok | Outcome::Unfinished) {
            continue;
        }
        let i = ((s.at / width) as usize).min(windows.saturating_sub(1));
        let ms = s.latency.as_secs_f64() * 1e3;
        if let Some(w) = worst.get_mut(i) {
            *w = Some(w.map_or(ms, |m: f64| m.max(ms)));
        }
    }
    worst
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.map(|ms| ((i as f64 + 0.5) * width, ms)))
        .collect()
}

/// Whole decades around every point, in ms.
fn y_range(series: &[[Vec<(f64, f64)>; 2]]) -> (f64, f64) {
    let all = series.iter().flatten().flatten().map(|&(_, ms)| ms);
    let (min, max) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if min > max {
        return (0.01, 1000.0);
    }
    let lo = 10f64.powf(min.max(1e-3).log10().floor());
    let hi = 10f64.powf(max.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

fn label_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms} ms")
    } else {
        format!("{ms:.2} ms")
    }
}
