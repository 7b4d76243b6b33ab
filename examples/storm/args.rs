//! The command line, parsed by hand: every flag has a default, and a bad value is an error that
//! names the flag, what it got and what would be valid.

use std::time::Duration;

use crate::server::Scenario;

pub const USAGE: &str = "\
storm: a real axum service under a storm on one route, four ways, measured side by side

usage: cargo run --release --example storm -- [flags]

  --duration SECS    length of each scenario's storm (default 6; 0.5 to 600); the idle
                     baseline before it lasts half as long, at most 3 s
  --load FACTOR      /legacy offered load as a multiple of its capacity (default 10)
  --threads N        threads of the /legacy pool, and the capacity the load is a multiple of
                     (default 8; 1 to 256)
  --queue N          queue of the /legacy pool (default 16; 0 to 100000)
  --scenarios LIST   which to run, comma-separated, in this order
                     (default naive,default,sized,bulkheads)
  --quick            short phases, a few seconds in all (for CI; figures are rough)
  --svg FILE         write a chart of /health and /files latency over time (SVG)
  --help             this text
";

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Args {
    /// The storm phase of each scenario.
    pub storm: Duration,
    /// The idle baseline before it.
    pub idle: Duration,
    /// Requests before the idle baseline, not counted: connections open, threads start.
    pub warmup: Duration,
    /// How long requests still unanswered at the end of the storm are waited for.
    pub grace: Duration,
    /// `/legacy` offered load over its capacity.
    pub load: f64,
    /// Threads of the `/legacy` pool.
    pub threads: usize,
    /// Queue of the `/legacy` pool.
    pub queue: usize,
    /// In the order given.
    pub scenarios: Vec<Scenario>,
    /// `--quick` was given.
    pub quick: bool,
    /// Where to write the chart.
    pub svg: Option<String>,
}

/// What `parse` returns besides arguments to run with.
pub enum Parsed {
    Run(Args),
    Help,
}

const FLAGS: [&str; 8] = [
    "--duration",
    "--load",
    "--threads",
    "--queue",
    "--scenarios",
    "--quick",
    "--svg",
    "--help",
];

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut storm = None;
    let mut load = 10.0;
    let mut threads = 8;
    let mut queue = 16;
    let mut scenarios = Scenario::ALL.to_vec();
    let mut quick = false;
    let mut svg = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--flag=value` and `--flag value` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{flag}: expected {what} after it")),
            }
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--quick" => quick = true,
            "--duration" => {
                let v = value("a number of seconds")?;
                let secs = number(&flag, &v, 0.5, 600.0, "a number of seconds")?;
                storm = Some(Duration::from_secs_f64(secs));
            }
            "--load" => {
                let v = value("a factor")?;
                load = number(&flag, &v, 0.1, 100.0, "a factor")?;
            }
            "--threads" => {
                let v = value("a number of threads")?;
                threads = whole(&flag, &v, 1, 256)?;
            }
            "--queue" => {
                let v = value("a queue length")?;
                queue = whole(&flag, &v, 0, 100_000)?;
            }
            "--scenarios" => scenarios = scenario_list(&value("a list of scenarios")?)?,
            "--svg" => {
                let v = value("a file name")?;
                if v.is_empty() || v.starts_with("--") {
                    return Err(format!("--svg: expected a file name, got '{v}'"));
                }
                svg = Some(v);
            }
            other if other.starts_with('-') => return Err(unknown_flag(other)),
            other => {
                return Err(format!(
                    "unexpected argument '{other}' (flags start with --; see --help)"
                ));
            }
        }
    }

    let storm_default = if quick { 1.0 } else { 6.0 };
    let storm = storm.unwrap_or(Duration::from_secs_f64(storm_default));
    let idle_cap = if quick { 0.8 } else { 3.0 };
    let idle = Duration::from_secs_f64((storm.as_secs_f64() / 2.0).min(idle_cap));
    let (warmup, grace) = if quick { (0.2, 0.5) } else { (0.5, 1.0) };
    Ok(Parsed::Run(Args {
        storm,
        idle,
        warmup: Duration::from_secs_f64(warmup),
        grace: Duration::from_secs_f64(grace),
        load,
        threads,
        queue,
        scenarios,
        quick,
        svg,
    }))
}

fn number(flag: &str, v: &str, min: f64, max: f64, what: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        _ => Err(format!(
            "{flag}: expected {what} from {min} to {max}, got '{v}'"
        )),
    }
}

fn whole(flag: &str, v: &str, min: usize, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        _ => Err(format!(
            "{flag}: expected a whole number from {min} to {max}, got '{v}'"
        )),
    }
}

fn scenario_list(v: &str) -> Result<Vec<Scenario>, String> {
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(s) = Scenario::ALL.iter().find(|s| s.name() == name) else {
            let valid: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            return Err(format!(
                "--scenarios: unknown scenario '{name}'; valid: {}",
                valid.join(", ")
            ));
        };
        if out.contains(s) {
            return Err(format!("--scenarios: '{name}' given twice"));
        }
        out.push(*s);
    }
    if out.is_empty() {
        return Err(
            "--scenarios: expected at least one of naive, default, sized, bulkheads".into(),
        );
    }
    Ok(out)
}

fn unknown_flag(flag: &str) -> String {
    let close = FLAGS
        .iter()
        .find(|f| f.starts_with(flag) || flag.starts_with(*f));
    match close {
        Some(f) => format!("unknown flag '{flag}'; did you mean '{f}'? (see --help)"),
        None => format!(
            "unknown flag '{flag}'; valid: {} (see --help)",
            FLAGS.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_(args: &[&str]) -> Result<Args, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(a) => Ok(a),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse_(&["--threads", "0"]).unwrap_err();
        assert_eq!(
            e,
            "--threads: expected a whole number from 1 to 256, got '0'"
        );
        let e = parse_(&["--scenarios=naive,fast"]).unwrap_err();
        assert!(e.starts_with("--scenarios: unknown scenario 'fast'"), "{e}");
        let e = parse_(&["--thread", "4"]).unwrap_err();
        assert!(e.contains("did you mean '--threads'"), "{e}");
        let e = parse_(&["--svg"]).unwrap_err();
        assert_eq!(e, "--svg: expected a file name after it");
    }

    #[test]
    fn idle_baseline_is_half_the_storm_at_most_three_seconds() {
        let a = parse_(&["--duration", "2"]).unwrap();
        assert_eq!(a.idle, Duration::from_secs(1));
        let a = parse_(&[]).unwrap();
        assert_eq!(a.idle, Duration::from_secs(3));
        assert_eq!(a.scenarios, Scenario::ALL.to_vec());
    }
}
