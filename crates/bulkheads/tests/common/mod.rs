//! Helpers shared by the integration tests: gates to hold pool threads, and OS thread names.
#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex};

/// A one-shot gate: jobs `wait()` until the test `open()`s it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn wait(&self) {
        let (open, cv) = &*self.0;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
    }
    pub fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Counts down to zero; `wait()` returns once `n` parties called `arrive()`.
#[derive(Clone)]
pub struct Latch(Arc<(Mutex<usize>, Condvar)>);

impl Latch {
    pub fn new(n: usize) -> Self {
        Latch(Arc::new((Mutex::new(n), Condvar::new())))
    }
    pub fn arrive(&self) {
        let (left, cv) = &*self.0;
        let mut g = left.lock().unwrap();
        *g = g.saturating_sub(1);
        cv.notify_all();
    }
    pub fn wait(&self) {
        let (left, cv) = &*self.0;
        let mut g = left.lock().unwrap();
        while *g > 0 {
            g = cv.wait(g).unwrap();
        }
    }
}

/// Occupies `n` slots of `d` with blocking jobs that wait for the returned gate; returns once
/// all `n` run at the same time.
pub fn occupy(d: &bulkheads::Dispatcher, n: usize) -> (Gate, Vec<bulkheads::JoinHandle<()>>) {
    let gate = Gate::new();
    let started = Latch::new(n);
    let handles = (0..n)
        .map(|_| {
            let (gate, started) = (gate.clone(), started.clone());
            d.spawn_blocking(move || {
                started.arrive();
                gate.wait();
            })
        })
        .collect();
    started.wait();
    (gate, handles)
}

/// Names of this process's OS threads that start with `prefix` (Linux; empty elsewhere).
pub fn os_threads_named(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Replaces the panic hook with one that stays quiet for panics whose message contains
/// `marker`, so tests that panic on purpose do not flood the output.
pub fn quiet_panics(marker: &'static str) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains(marker) {
            prev(info);
        }
    }));
}
