//! The command line and environment: which workloads run, how many samples each contender
//! gets, whether this is a test-mode run, and whether tables are also printed as Markdown.

pub struct Plan {
    /// Smaller job workloads (`--quick`, and always in test mode).
    pub quick: bool,
    /// No `--bench` argument: run under `cargo test`, as short as possible.
    pub test_mode: bool,
    pub samples: usize,
    pub warmup: usize,
    /// Lower-cased; a workload runs when its name contains one of them (or there are none).
    pub filters: Vec<String>,
    /// `--markdown`: every table again as Markdown, after the plain one.
    pub markdown: bool,
}

impl Plan {
    /// Whether the workload called `name` is selected by the filters.
    pub fn selects(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

pub const USAGE: &str = "usage: cargo bench -p bulkheads-benches --bench headline -- [--quick] [--markdown] [FILTER...]
  FILTER      run only workloads whose name contains it (case-insensitive), e.g. W1 or I2;
              W1-W5 measure dispatch, W6 the tower layer per call, W8 RSS growth under 1M
              submissions to a held pool (Linux; a child process per sample), W9 dumps,
              I1-I3 the library's own timers with the cpu pool saturated
  --quick     fewer samples (3, 1 warm-up) and W sizes divided by 10: a smoke run of seconds
  --markdown  also print every table as a Markdown table, after the plain one
env:
  HEADLINE_SAMPLES       samples per contender (default 11, or 3 with --quick)
  HEADLINE_CONTENDERS    keep only contenders whose label contains one of these words (comma-separated)
  BLOCKING_MAX_THREADS   read by the `blocking` crate itself (default 500)";

/// Parses the arguments; returns the plan and the arguments to echo in the `command:` line.
pub fn parse_args() -> Result<(Plan, Vec<String>), String> {
    let mut quick = false;
    let mut markdown = false;
    let mut bench_flag = false;
    let mut filters = Vec::new();
    let mut shown = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => bench_flag = true,
            "--quick" => {
                quick = true;
                shown.push(arg);
            }
            "--markdown" => {
                markdown = true;
                shown.push(arg);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            a if a.starts_with('-') => return Err(format!("unknown flag {a}\n{USAGE}")),
            _ => {
                filters.push(arg.to_lowercase());
                shown.push(arg);
            }
        }
    }
    let test_mode = !bench_flag;
    let (mut samples, warmup) = match (test_mode, quick) {
        (true, _) => (1, 0),
        (false, true) => (3, 1),
        (false, false) => (11, 2),
    };
    if let Ok(v) = std::env::var("HEADLINE_SAMPLES") {
        samples = match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "HEADLINE_SAMPLES must be a whole number >= 1, got {v:?}"
                ));
            }
        };
    }
    let plan = Plan {
        quick: quick || test_mode,
        test_mode,
        samples,
        warmup,
        filters,
        markdown,
    };
    Ok((plan, shown))
}
