//! Output: the header of a run, and the tables, printed plain (fixed-width columns, one row
//! per contender prefixed with the workload's name, so rows can be grepped) and, with
//! `--markdown`, again as Markdown tables for the docs.

use std::time::Duration;

use crate::plan::Plan;
use crate::pools::{TOKIO_DEFAULT_MAX_BLOCKING, blocking_crate_max};

/// Worker threads of the runtime that drives every workload.
pub const TIMING_WORKERS: usize = 2;

/// One column of a table: its title, its width in the plain table, and its alignment.
pub struct Column {
    pub title: &'static str,
    pub width: usize,
    pub left: bool,
}

const fn left(title: &'static str, width: usize) -> Column {
    Column {
        title,
        width,
        left: true,
    }
}

const fn right(title: &'static str, width: usize) -> Column {
    Column {
        title,
        width,
        left: false,
    }
}

/// Columns of the job workloads (W1–W5).
pub const JOB_COLUMNS: &[Column] = &[
    left("contender", 44),
    right("median", 10),
    right("ratio", 7),
    right("per job", 10),
    right("min", 10),
    right("max", 10),
];

/// Columns of the layer workload (W6): `vs limit` is median / tower `ConcurrencyLimit` median.
pub const LAYER_COLUMNS: &[Column] = &[
    left("contender", 44),
    right("median", 10),
    right("ratio", 7),
    right("per call", 10),
    right("vs limit", 9),
    right("min", 10),
    right("max", 10),
];

/// Columns of the isolation workloads (I1–I3): what each contender's contract promises
/// (`expected`) and how far its median is from it (`vs expected`, median / expected).
pub const ISOLATION_COLUMNS: &[Column] = &[
    left("contender", 44),
    right("median", 10),
    right("ratio", 7),
    right("expected", 10),
    right("vs expected", 11),
    right("min", 10),
    right("max", 10),
];

/// One workload's results: a row of cells per contender, the first cell its label, and notes
/// printed after the rows.
pub struct Table {
    name: &'static str,
    columns: &'static [Column],
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    pub fn new(name: &'static str, columns: &'static [Column]) -> Table {
        Table {
            name,
            columns,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a line printed after the rows (what a column cannot say).
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Adds a row; it has one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The plain table: a title line, then one line per contender starting with the name.
    pub fn print(&self) {
        let titles: Vec<&str> = self.columns.iter().map(|c| c.title).collect();
        println!("{}", self.line("", &titles));
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            println!("{}", self.line(self.name, &cells));
        }
        if self.rows.is_empty() && self.notes.is_empty() {
            println!(
                "{:<4} (no contender matches HEADLINE_CONTENDERS)",
                self.name
            );
        }
        for note in &self.notes {
            println!("{:<4} note: {note}", self.name);
        }
    }

    fn line(&self, name: &str, cells: &[&str]) -> String {
        let mut line = format!("{name:<4}");
        for (c, cell) in self.columns.iter().zip(cells) {
            let w = c.width;
            if c.left {
                line.push_str(&format!(" {cell:<w$}"));
            } else {
                line.push_str(&format!(" {cell:>w$}"));
            }
        }
        line
    }

    /// The same table as Markdown (the workload's name is left out: it heads the section the
    /// table is pasted into).
    pub fn print_markdown(&self) {
        let titles: Vec<&str> = self.columns.iter().map(|c| c.title).collect();
        println!("| {} |", titles.join(" | "));
        let rule: Vec<&str> = self
            .columns
            .iter()
            .map(|c| if c.left { ":--" } else { "--:" })
            .collect();
        println!("| {} |", rule.join(" | "));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            println!("| {} |", cells.join(" | "));
        }
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("{note}");
            }
        }
    }
}

/// `median / base` with two decimals (`NaN` without a positive base).
pub fn ratio(median: Duration, base: Option<Duration>) -> String {
    let r = match base {
        Some(b) if b > Duration::ZERO => median.as_secs_f64() / b.as_secs_f64(),
        _ => f64::NAN,
    };
    format!("{r:.2}")
}

/// The header of a run: what was run, on what, and how to read the tables.
pub fn print_header(plan: &Plan, shown: &[String]) {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let mut command = String::new();
    if let Ok(v) = std::env::var("HEADLINE_SAMPLES") {
        command.push_str(&format!("HEADLINE_SAMPLES={v} "));
    }
    if let Ok(v) = std::env::var("BLOCKING_MAX_THREADS") {
        command.push_str(&format!("BLOCKING_MAX_THREADS={v} "));
    }
    command.push_str("cargo bench -p bulkheads-benches --bench headline");
    if !shown.is_empty() {
        command.push_str(" -- ");
        command.push_str(&shown.join(" "));
    }

    println!("headline: bulkheads side by side with its peers");
    println!("command:  {command}");
    if plan.test_mode {
        println!("mode:     test mode (no --bench argument): quick sizes, 1 sample, no warm-up");
    }
    println!(
        "machine:  {cores} cores (available_parallelism), {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "driver:   tokio multi-thread runtime, {TIMING_WORKERS} workers; \
         each sample awaited from a task on it"
    );
    println!(
        "samples:  {} per contender after {} warm-up round(s), contenders interleaved round-robin",
        plan.samples, plan.warmup
    );
    println!("ratio:    contender median / bulkheads median (above 1: bulkheads is faster)");
    println!("note:     tokio default and blocking::unblock are not sized to the workload:");
    println!(
        "          tokio default uses the driving runtime's blocking pool \
         ({TOKIO_DEFAULT_MAX_BLOCKING} max);"
    );
    println!(
        "          blocking::unblock uses its own global pool ({}), \
         set only through the environment",
        blocking_crate_max()
    );
}
