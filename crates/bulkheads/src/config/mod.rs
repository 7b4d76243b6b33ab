//! Dispatchers declared in a configuration file.
//!
//! [`Config`] is plain data deriving `serde::Deserialize` and `Serialize`, so a service can embed
//! a `bulkheads` section in the configuration it already loads (figment, config-rs, its own
//! TOML or YAML) and pass it to [`Dispatchers::from_config`](crate::Dispatchers::from_config).
//! Reading TOML with [`Config::from_toml_str`] gives richer errors than serde's first-error
//! stop: every problem of the file at once, each with its key path, its line and column, and
//! what would be valid (an unknown key suggests the nearest valid one).
//!
//! ```toml
//! max_threads = 8192          # all threads of the registry together
//!
//! [cpu]
//! threads = 8                 # default: available parallelism
//!
//! [dispatchers.legacy_db]
//! kind = "blocking"           # blocking | limited | runtime
//! threads = 16
//! queue = 256
//! max_wait = "50ms"
//!
//! [dispatchers.thumbnails]
//! kind = "limited"
//! base = "cpu"                # cpu | main | another dispatcher
//! parallelism = 2
//! max_concurrent = 64
//! queue = 1024
//!
//! [dispatchers.payments]
//! kind = "runtime"
//! workers = 2
//! blocking_threads = 4        # its tokio::fs / spawn_blocking threads; default 16
//! ```
//!
//! Files: `mod.rs` (the serde types), `schema.rs` (the one table of keys), `toml.rs` (the
//! spanned tree), `check.rs` (the walk against the schema), `env.rs` (overrides).
//!
//! Environment overrides (`BULKHEADS__<NAME>__<KEY>=value`, the dispatcher name upper-cased
//! with `-` as `_`; `BULKHEADS__CPU__THREADS` for the cpu pool, `BULKHEADS__MAX_THREADS` for
//! the top-level key) are applied on top by
//! [`Dispatchers::from_toml_str`](crate::Dispatchers::from_toml_str) and
//! [`from_toml_path`](crate::Dispatchers::from_toml_path). To load without them, use
//! [`Config::from_toml_str`] and [`Dispatchers::from_config`](crate::Dispatchers::from_config).
//! Every key, its default and its range: `docs/config.md`.

mod check;
mod env;
mod schema;
mod toml;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) use self::toml::Document;
use crate::error::ConfigError;
use crate::{BlockingConfig, DispatchersBuilder, LimitedConfig, RuntimeConfig};

/// The whole `bulkheads` configuration: the cpu pool and the named dispatchers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Most threads the registry may start, all dispatchers together; default 8192.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_threads: Option<usize>,
    /// The shared CPU pool.
    #[serde(default)]
    pub cpu: CpuSection,
    /// The named dispatchers.
    #[serde(default)]
    pub dispatchers: BTreeMap<String, DispatcherSection>,
}

/// `[cpu]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSection {
    /// Threads of the shared CPU pool, 1 to 1024; default: available parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Threads of the cpu runtime's own Tokio blocking pool, 1 to 4096; default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_threads: Option<usize>,
}

/// `[dispatchers.<name>]`, by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DispatcherSection {
    /// `kind = "blocking"`: a fixed pool of OS threads with a bounded queue.
    Blocking(BlockingSection),
    /// `kind = "limited"`: a limited-parallelism view over a base.
    Limited(LimitedSection),
    /// `kind = "runtime"`: a dedicated Tokio runtime.
    Runtime(RuntimeSection),
}

/// Keys of a `blocking` dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingSection {
    /// Threads, 1 to 4096.
    pub threads: usize,
    /// Jobs waiting for a thread, 0 to 2^24; default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<usize>,
    /// How long `run*` callers wait for room; default `"0s"` (reject at once).
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

/// Keys of a `limited` dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitedSection {
    /// `cpu`, `main` or another dispatcher.
    pub base: String,
    /// Tasks running at once, 1 to 4096.
    pub parallelism: usize,
    /// Admitted, unfinished tasks at most; default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Tasks admitted beyond `max_concurrent`; needs it; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<usize>,
    /// How long `run*` callers wait for room; default `"0s"`.
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

/// Keys of a `runtime` dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Worker threads, 1 to 1024.
    pub workers: usize,
    /// Threads of the runtime's own Tokio blocking pool, 1 to 4096; default 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_threads: Option<usize>,
    /// Admitted, unfinished tasks at most; default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Tasks admitted beyond `max_concurrent`; needs it; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<usize>,
    /// How long `run*` callers wait for room; default `"0s"`.
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

/// Durations as human strings (`"50ms"`, `"2s"`), through `humantime`.
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration '{text}': {e}; write a number and a unit, such as \"50ms\" or \"2s\""
        )
    })
}

impl Config {
    /// Reads a TOML document. Every problem is reported at once, with key paths, positions and
    /// suggestions; nothing is started. Environment overrides are *not* applied (see
    /// [`Config::apply_env`]).
    ///
    /// ```
    /// let err = bulkheads::Config::from_toml_str("[dispatchers.db]\nkind = \"blocking\"\nthreads = 4\nqeue = 8\n")
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid bulkheads configuration: dispatchers.db.qeue (line 4, column 1): \
    ///      unknown key 'qeue' in dispatchers.db; did you mean 'queue'? valid keys: kind, threads, queue, max_wait"
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Ok(Document::parse(text)?.config)
    }

    /// A builder holding this configuration, for code to add to (an `on_failure` handler, say)
    /// before [`build`](DispatchersBuilder::build), which validates everything.
    pub fn to_builder(&self) -> DispatchersBuilder {
        let mut b = crate::Dispatchers::builder();
        if let Some(n) = self.cpu.threads {
            b = b.cpu_threads(n);
        }
        if let Some(n) = self.cpu.blocking_threads {
            b = b.cpu_blocking_threads(n);
        }
        if let Some(n) = self.max_threads {
            b = b.max_threads(n);
        }
        for (name, section) in &self.dispatchers {
            b = match section {
                DispatcherSection::Blocking(s) => {
                    let mut c = BlockingConfig::threads(s.threads);
                    if let Some(q) = s.queue {
                        c = c.queue(q);
                    }
                    if let Some(w) = s.max_wait {
                        c = c.max_wait(w);
                    }
                    b.blocking(name.clone(), c)
                }
                DispatcherSection::Limited(s) => {
                    let mut c = LimitedConfig::parallelism(s.parallelism);
                    c.admission = admission(s.max_concurrent, s.queue, s.max_wait);
                    b.limited(name.clone(), s.base.clone(), c)
                }
                DispatcherSection::Runtime(s) => {
                    let mut c = RuntimeConfig::workers(s.workers);
                    if let Some(n) = s.blocking_threads {
                        c = c.blocking_threads(n);
                    }
                    c.admission = admission(s.max_concurrent, s.queue, s.max_wait);
                    b.runtime(name.clone(), c)
                }
            };
        }
        b
    }
}

fn admission(
    max_concurrent: Option<usize>,
    queue: Option<usize>,
    max_wait: Option<Duration>,
) -> crate::AdmissionConfig {
    crate::AdmissionConfig {
        max_concurrent,
        queue: queue.unwrap_or(0),
        max_wait: max_wait.unwrap_or(Duration::ZERO),
    }
}
