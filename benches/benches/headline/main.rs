//! `headline`: bulkheads side by side with its peers, in one run on one machine.
//!
//! ```text
//! cargo bench -p bulkheads-benches --bench headline                # full run
//! cargo bench -p bulkheads-benches --bench headline -- W1          # only workloads matching "W1"
//! cargo bench -p bulkheads-benches --bench headline -- W6          # only the tower layer's cost
//! cargo bench -p bulkheads-benches --bench headline -- W8          # only the overload memory
//! cargo bench -p bulkheads-benches --bench headline -- I1 I2 I3    # only the isolation workloads
//! cargo bench -p bulkheads-benches --bench headline -- --quick     # smoke run, seconds
//! cargo bench -p bulkheads-benches --bench headline -- --markdown  # tables also as Markdown
//! HEADLINE_SAMPLES=21 cargo bench -p bulkheads-benches --bench headline
//! HEADLINE_CONTENDERS=bulkheads,crossbeam cargo bench -p bulkheads-benches --bench headline
//! ```
//!
//! The job workloads W1–W5 measure the cost of dispatching: every workload is driven from a
//! task on a Tokio multi-thread runtime with 2 workers (the awaiting side is async); every
//! result is awaited and summed, and the sum is checked against the job count. W6 measures the
//! tower layer (`bulkheads-tower`) per call on a service that answers at once, next to tower's
//! `ConcurrencyLimit` and no layer, from client tasks on the same runtime. W8 measures the RSS
//! growth of 1M submissions offered to a pool whose threads are all held, bulkheads rejecting
//! them next to Tokio's `spawn_blocking` queueing them, each sample in a process of its own
//! (the binary runs itself again with a hidden `--w8-child` argument; Linux only). W9 times
//! dumps of many live tasks. The isolation workloads I1–I3 measure the library's own timers
//! (`max_wait`, the shutdown deadline, timers of futures pinned to a pool) while the registry's
//! `cpu` pool is saturated by CPU work, next to plain Tokio whose timers share a runtime
//! saturated the same way (see `isolation.rs`).
//!
//! Each contender runs the workload `HEADLINE_SAMPLES` times (default 11, after 2 warm-up
//! rounds); contenders are interleaved round-robin within each round, with the starting
//! contender rotated per round, so machine noise hits all of them alike. The table shows the
//! median wall time, the ratio contender median / bulkheads median (above 1 means bulkheads is
//! faster), and min and max; `--markdown` prints each table again as Markdown.
//!
//! Without `--bench` (what `cargo bench` passes, and `cargo test --benches` does not) the binary
//! runs in test mode: quick sizes, one sample, no warm-up, so a test run stays short.
//!
//! Layout: `plan` (arguments), `workloads` (the workload table, W1–W5), `contenders`, `pools`
//! and `views` (what W1–W5 run against), `layers` (W6), `overload` (W8, and its child
//! processes), `diag` (W9), `isolation` (I1–I3), `measure` (rounds, medians), `report` (header
//! and tables).

mod contenders;
mod diag;
mod isolation;
mod layers;
mod measure;
mod overload;
mod plan;
mod pools;
mod report;
mod views;
mod workloads;

use workloads::Workload;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1) {
        Some(flag) if flag == overload::CHILD_FLAG => overload::child(&args[2..]),
        _ => run(),
    };
    match result {
        Ok(()) => {}
        Err(e) => {
            eprintln!("headline: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let (plan, shown) = plan::parse_args()?;

    let selected: Vec<Box<dyn Workload>> = workloads::all(plan.quick)
        .into_iter()
        .filter(|w| plan.selects(w.name()))
        .collect();
    if selected.is_empty() {
        return Err(format!("no workload matches {:?}", plan.filters));
    }

    report::print_header(&plan, &shown);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(report::TIMING_WORKERS)
        .thread_name("headline")
        .enable_all()
        .build()
        .map_err(|e| format!("timing runtime: {e}"))?;

    for w in &selected {
        println!();
        println!("{}", w.heading());
        let table = w.measure(&rt, &plan)?;
        table.print();
        if plan.markdown {
            println!();
            table.print_markdown();
        }
    }
    Ok(())
}
