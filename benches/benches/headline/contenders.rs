//! What the job workloads run against: the [`Pool`] trait every contender implements, the
//! drivers that submit and await jobs through it, and the choice of contenders per [`Set`]
//! (narrowed by `HEADLINE_CONTENDERS`). The contenders themselves are in `pools` and `views`.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::workloads::{JobWorkload, Shape};
use crate::{pools, views};

/// Which contenders a job workload is run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// Blocking pools (W1, W2, W5).
    Pools,
    /// CPU jobs through a parallelism cap (W3).
    CappedCpu,
    /// No-op async tasks spawned and joined (W4).
    Spawns,
}

/// A pool that runs one job and hands back a future of its result.
pub trait Pool: Send + Sync + 'static {
    type Error: Display;
    type Handle: Future<Output = Result<u64, Self::Error>> + Send + 'static;
    fn submit(&self, job: fn() -> u64) -> Self::Handle;
}

async fn fan_out<P: Pool>(pool: &P, job: fn() -> u64, n: usize) -> Result<u64, String> {
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        handles.push(pool.submit(job));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

async fn round_trips<P: Pool>(pool: &P, job: fn() -> u64, n: usize) -> Result<u64, String> {
    let mut sum = 0;
    for _ in 0..n {
        sum += pool.submit(job).await.map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

pub type Run = Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

/// A pool with its generic drivers behind one object-safe call.
pub trait Runner: Send + Sync {
    fn run(self: Arc<Self>, shape: Shape, job: fn() -> u64, n: usize) -> Run;
}

impl<P: Pool> Runner for P {
    fn run(self: Arc<Self>, shape: Shape, job: fn() -> u64, n: usize) -> Run {
        Box::pin(async move {
            match shape {
                Shape::FanOut => fan_out(&*self, job, n).await,
                Shape::RoundTrip => round_trips(&*self, job, n).await,
            }
        })
    }
}

/// One row of a job workload's table.
pub struct Contender {
    pub label: String,
    pub runner: Arc<dyn Runner>,
}

/// The contenders of `w`, bulkheads first (the ratios are against the first row).
pub fn contenders(w: &JobWorkload, rt: &tokio::runtime::Runtime) -> Result<Vec<Contender>, String> {
    let all = match w.set {
        Set::Pools => pools::pool_contenders(w)?,
        Set::CappedCpu | Set::Spawns => views::capped_contenders(w, rt)?,
    };
    Ok(keep_selected(all, |c| &c.label))
}

/// `HEADLINE_CONTENDERS=bulkheads,crossbeam` keeps only contenders whose label contains one
/// of the words (for profiling one contender alone); unset, keeps all.
pub fn keep_selected<T>(all: Vec<T>, label: impl Fn(&T) -> &str) -> Vec<T> {
    match std::env::var("HEADLINE_CONTENDERS") {
        Ok(words) => all
            .into_iter()
            .filter(|c| words.split(',').any(|w| label(c).contains(w.trim())))
            .collect(),
        Err(_) => all,
    }
}
