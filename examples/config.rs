//! Loads `examples/bulkheads.toml`, runs one task on every dispatcher, and shuts down.
//!
//! Run: `cargo run --example config` (environment overrides such as
//! `BULKHEADS__LEGACY_DB__THREADS=16` apply on top of the file).

use std::time::Duration;

use bulkheads::Dispatchers;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bulkheads.toml");
    let dispatchers = match Dispatchers::from_toml_path(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    for d in dispatchers.iter() {
        let name = d.name().to_owned();
        let ran_on = d
            .run_blocking(|| std::thread::current().name().unwrap_or("?").to_owned())
            .await?;
        let s = d.stats();
        println!(
            "{name:<12} kind {:<8} threads {:<2} parallelism {:<4} capacity {:<8} ran on {ran_on}",
            s.kind.to_string(),
            s.threads,
            s.parallelism.map_or("-".to_owned(), |p| p.to_string()),
            s.capacity.map_or("unbounded".to_owned(), |c| c.to_string()),
        );
    }
    print!("{}", dispatchers.shutdown(Duration::from_secs(5)).await);
    Ok(())
}
