//! Samples the process's OS threads and resident memory from `/proc/self/status` on a thread
//! of its own, every [`PERIOD`], for the whole run.
//!
//! Peaks are peaks of samples: `VmHWM` (the kernel's own peak) cannot be reset between
//! scenarios, so `VmRSS` is sampled instead, and a burst shorter than the period can be
//! missed. Where `/proc` does not exist (not Linux), there are no samples and the tables say
//! `n/a`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time between two samples.
pub const PERIOD: Duration = Duration::from_millis(20);

/// One reading of `/proc/self/status`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    /// `Threads:`.
    pub threads: u64,
    /// `VmRSS:`, in KiB.
    pub rss_kib: u64,
}

/// The sampling thread; stops when dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<ProcSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling. `None` where `/proc/self/status` cannot be read.
    pub fn start() -> Option<Sampler> {
        read()?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sampler".into())
                .spawn(move || {
                    // Relaxed: the flag carries no data; the join in `drop` orders the rest.
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(s) = read() {
                            if let Ok(mut v) = samples.lock() {
                                v.push(s);
                            }
                        }
                        std::thread::sleep(PERIOD);
                    }
                })
                .ok()?
        };
        Some(Sampler {
            samples,
            stop,
            thread: Some(thread),
        })
    }

    /// The samples taken from `from` to `to`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<ProcSample> {
        match self.samples.lock() {
            Ok(v) => v
                .iter()
                .filter(|s| s.at >= from && s.at <= to)
                .copied()
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<ProcSample> {
        self.samples.lock().ok()?.last().copied()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads `/proc/self/status` now.
pub fn read() -> Option<ProcSample> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(ProcSample {
        at: Instant::now(),
        threads: field("Threads:")?,
        rss_kib: field("VmRSS:")?,
    })
}

/// The soft limit on open files, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
