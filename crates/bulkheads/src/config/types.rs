//! The configuration as plain data: serde types a service can embed in its own
//! configuration, and how durations are written (`"50ms"`, `"2s"`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Admitted work still queued after this is rejected instead of started; default: none.
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_deadline: Option<Duration>,
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
    /// Admitted work still queued after this is rejected instead of started; default: none.
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_deadline: Option<Duration>,
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
    /// Admitted work still queued after this is rejected instead of started; default: none.
    #[serde(
        default,
        with = "human_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_deadline: Option<Duration>,
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
        crate::config::types::parse_duration(&text)
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
