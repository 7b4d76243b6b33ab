//! `Dispatchers::dump_on_sigusr1` (the `signal` feature): a real SIGUSR1 sent to this process.
#![cfg(all(unix, feature = "signal"))]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, TaskState};
use common::occupy;

fn send_sigusr1() {
    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigusr1_hands_a_dump_to_the_handler_even_with_every_pool_saturated() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("saturated", BlockingConfig::threads(1).queue(0))
        .build()
        .unwrap();
    let pool = d.get("saturated").unwrap();
    let (gate, held) = occupy(&pool, 1);
    // The one cpu worker thread is stuck too (async code that blocks), until the gate opens.
    let cpu_gate = gate.clone();
    let (cpu_busy_tx, cpu_busy) = mpsc::channel();
    let hog = d.cpu().spawn(async move {
        cpu_busy_tx.send(()).unwrap();
        cpu_gate.wait();
    });
    cpu_busy.recv().unwrap();

    let (tx, rx) = mpsc::channel();
    let guard = d
        .dump_on_sigusr1(move |dump| {
            let states: Vec<TaskState> = dump.tasks().map(|t| t.state).collect();
            tx.send((dump.len(), states, dump.to_string())).unwrap();
        })
        .unwrap();
    send_sigusr1();
    // A bound for a failing run, not synchronisation: the handler answers within it.
    let (len, states, text) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(len, 2, "{text}");
    assert!(states.contains(&TaskState::RunningBlocking), "{text}");
    assert!(states.contains(&TaskState::Running), "{text}");
    assert!(text.contains("dispatcher 'saturated'"), "{text}");

    // A second signal, a second dump.
    send_sigusr1();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();

    drop(guard);
    gate.open();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for h in held {
            h.await.unwrap();
        }
        hog.await.unwrap();
    });
}
