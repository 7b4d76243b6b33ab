//! No job is ever stranded in a pool queue while a thread sleeps (the lost-wakeup race between
//! a submitter and a thread going to sleep), on fresh and on warm pools.

mod common;

use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers};

#[test]
fn every_job_starts_while_threads_are_free() {
    for round in 0..300 {
        let d = Dispatchers::builder()
            .cpu_threads(1)
            .blocking("wake", BlockingConfig::threads(2).queue(0))
            .build()
            .unwrap();
        let p = d.get("wake").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let gate = common::Gate::new();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (tx, gate) = (tx.clone(), gate.clone());
                p.spawn_blocking(move || {
                    tx.send(()).unwrap();
                    gate.wait();
                })
            })
            .collect();
        for k in 0..2 {
            // The timeout only turns a hang into a failure.
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("round {round}: job {k} never started: {:?}", p.stats())
                });
        }
        gate.open();
        drop(hs);
    }
}

#[test]
fn bursts_of_as_many_jobs_as_threads_all_start_on_a_warm_pool() {
    const THREADS: usize = 4;
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("burst", BlockingConfig::threads(THREADS).queue(0))
        .build()
        .unwrap();
    let p = d.get("burst").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for round in 0..500 {
        let (tx, rx) = std::sync::mpsc::channel();
        let gate = common::Gate::new();
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                let (tx, gate) = (tx.clone(), gate.clone());
                p.spawn_blocking(move || {
                    tx.send(()).unwrap();
                    gate.wait();
                })
            })
            .collect();
        // All must run at once: each waits for the gate, which opens only when all started.
        for k in 0..THREADS {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("round {round}: job {k} never started: {:?}", p.stats())
                });
        }
        gate.open();
        for h in hs {
            rt.block_on(h).unwrap();
        }
    }
}
