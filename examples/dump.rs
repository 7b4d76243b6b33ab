//! A live dump of a small service with problems: a forgotten task (a ghost), a blocking job that
//! runs long, a job cancelled while it runs blocking code (a zombie), a scope with children at
//! work, jobs queued behind a full pool and a caller waiting for room. Prints the dump and its
//! suspects, then checks that nothing is left once everything has ended.
//!
//! ```text
//! cargo run --example dump            # the dump as text, then the suspects
//! cargo run --example dump -- --json  # the dump as JSON (bulkheads' `serde` feature)
//! ```

use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json = std::env::args().any(|a| a == "--json");
    let dispatchers = Dispatchers::builder()
        .cpu_threads(2)
        .blocking(
            "legacy",
            BlockingConfig::threads(2)
                .queue(2)
                .max_wait(Duration::from_secs(5)),
        )
        .build()?;
    let cpu = dispatchers.cpu();
    let legacy = dispatchers.get("legacy")?;

    // A ghost: its handle is dropped and it waits for a message that never comes.
    let (never_tx, never) = tokio::sync::oneshot::channel::<()>();
    drop(cpu.task("forgotten-listener").spawn(async move {
        let _ = never.await;
    }));

    // A long blocking job, and a zombie: cancelled while it runs blocking code.
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let release = std::sync::Arc::new(std::sync::Mutex::new(release));
    let hold = |r: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
        move || {
            let _ = r.lock().map(|r| r.recv());
        }
    };
    let vacuum = legacy
        .task("nightly-vacuum")
        .spawn_blocking(hold(release.clone()));
    let export = legacy
        .task("report-export")
        .spawn_blocking(hold(release.clone()));
    // Two more, queued behind them, and a caller waiting for room.
    let queued: Vec<_> = (0..2)
        .map(|_| legacy.task("thumbnail").spawn_blocking(|| ()))
        .collect();
    let waiting = tokio::spawn({
        let legacy = legacy.clone();
        async move { legacy.task("late-report").run_blocking(|| ()).await }
    });

    // A scope whose children are at work.
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let scope = tokio::spawn(dispatchers.scope(move |s| async move {
        for _ in 0..2 {
            let mut done = done.clone();
            s.spawn(async move {
                let _ = done.wait_for(|d| *d).await;
                Ok::<_, String>(())
            });
        }
        Ok::<_, String>(())
    }));

    // Let things settle and age a little: the point here is time passing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    export.abort();

    let dump = dispatchers.dump();
    if json {
        println!("{}", dump.to_json());
    } else {
        println!("{dump}");
        println!("suspects (threshold 200ms):");
        for suspect in dump.suspects(Duration::from_millis(200)) {
            println!("  {suspect}");
        }
    }

    // Let everything end, then check that nothing is left.
    for _ in 0..2 {
        let _ = release_tx.send(());
    }
    let _ = done_tx.send(true);
    drop(never_tx);
    let _ = vacuum.await;
    for q in queued {
        let _ = q.await;
    }
    let _ = waiting.await;
    let _ = scope.await;
    bulkheads::testing::assert_no_leaks(&dispatchers).await;
    if !json {
        println!("\nonce everything has ended: no live task left");
    }
    Ok(())
}
