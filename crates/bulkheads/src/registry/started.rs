//! What a build has started so far, and how it is taken back when the build fails: pool
//! threads and the control thread are stopped and joined, runtimes shut down, so that a
//! failed build leaves nothing half-started.

use std::sync::Arc;

use super::control::Control;
use crate::dispatcher::executor::Executor;
use crate::dispatcher::kinds::blocking::BlockingPool;
use crate::dispatcher::kinds::runtime::OwnedRuntime;
use crate::error::ConfigError;

/// What a build has started so far; dropped on an early return, it stops all of it.
pub(crate) struct Started {
    /// `None` once handed over to the registry.
    control: Option<Control>,
    /// The cpu runtime first.
    pub(crate) runtimes: Vec<OwnedRuntime>,
    pub(crate) pools: Vec<Arc<BlockingPool>>,
}

impl Started {
    pub(crate) fn start() -> Result<Self, ConfigError> {
        Ok(Started {
            control: Some(Control::start().map_err(start_err("control"))?),
            runtimes: Vec::new(),
            pools: Vec::new(),
        })
    }

    pub(crate) fn control_handle(&self) -> tokio::runtime::Handle {
        match &self.control {
            Some(c) => c.handle().clone(),
            // `start` always sets it; `finish` consumes `self`.
            None => unreachable!("control taken before the build finished"),
        }
    }

    /// Hands what was started to the registry.
    pub(crate) fn finish(mut self) -> (Control, Vec<OwnedRuntime>) {
        let runtimes = std::mem::take(&mut self.runtimes);
        self.pools.clear();
        match self.control.take() {
            Some(control) => (control, runtimes),
            None => unreachable!("control taken before the build finished"),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let Some(control) = self.control.take() else {
            return; // handed over
        };
        for pool in &self.pools {
            pool.close();
            pool.join();
        }
        // Runtimes shut down in the background (dropping one may happen inside an async
        // context, where waiting is not allowed); they run nothing yet, so they exit at once.
        self.runtimes.clear();
        control.stop();
        control.join();
    }
}

/// The error of a dispatcher (or the control thread) that could not start.
pub(crate) fn start_err(dispatcher: &str) -> impl FnOnce(std::io::Error) -> ConfigError {
    let dispatcher = dispatcher.to_owned();
    move |source| ConfigError::Start { dispatcher, source }
}

#[cfg(all(test, not(bulkheads_loom)))]
mod tests {
    use crate::dispatcher::kinds::blocking::BlockingConfig;
    use crate::error::ConfigError;
    use crate::registry::Dispatchers;
    use crate::sync::refusal::refuse_thread_after;

    /// This process's threads whose name starts with `prefix`, as (thread id, name) (Linux;
    /// empty elsewhere).
    fn threads_named(prefix: &str) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    name.trim().to_owned(),
                ))
            })
            .filter(|(_, n)| n.starts_with(prefix))
            .collect()
    }

    #[test]
    fn an_os_refusal_at_build_leaves_nothing_half_started() {
        let _alone = crate::sync::refusal::one_registry_at_a_time();
        // The control thread, the three threads of the first pool and one of the second
        // start; the operating system "refuses" the next.
        refuse_thread_after(1 + 3 + 1);
        // Control threads of registries other tests dropped may still be on their way out
        // (dropping a registry does not wait for its control thread): only new ones count.
        let earlier = threads_named(crate::registry::control::THREAD_NAME);
        let err = Dispatchers::builder()
            .cpu_threads(1)
            .blocking("refused-a", BlockingConfig::threads(3))
            .blocking("refused-b", BlockingConfig::threads(2))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Start { dispatcher, .. } if dispatcher == "refused-b"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("dispatcher 'refused-b': could not start: "),
            "{err}"
        );
        // Pool threads and the control thread were stopped and joined before `build`
        // returned.
        assert_eq!(threads_named("refused-"), Vec::new());
        let started_here: Vec<_> = threads_named(crate::registry::control::THREAD_NAME)
            .into_iter()
            .filter(|t| !earlier.contains(t))
            .collect();
        assert_eq!(started_here, Vec::new());
    }
}
