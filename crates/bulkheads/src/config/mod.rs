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
//! queue_deadline = "100ms"    # admitted work still queued after this is rejected, not started
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
//! Files: `types.rs` (the serde types), `schema.rs` (the one table of keys), `toml.rs` (the
//! spanned tree), `check.rs` (the walk against the schema), `env.rs` (overrides), and this
//! one (reading a document, and the builder a configuration declares).
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
pub(crate) mod types;

use std::collections::BTreeMap;
use std::time::Duration;

use self::check::Checker;
use self::toml::{LineIndex, Node};
pub use self::types::{
    BlockingSection, Config, CpuSection, DispatcherSection, LimitedSection, RuntimeSection,
};
use crate::dispatcher::admission::AdmissionConfig;
use crate::dispatcher::kinds::blocking::BlockingConfig;
use crate::dispatcher::kinds::limited::LimitedConfig;
use crate::dispatcher::kinds::runtime::RuntimeConfig;
use crate::error::{ConfigError, ConfigProblem, Position};
use crate::registry::Dispatchers;
use crate::registry::builder::DispatchersBuilder;

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
    ///      unknown key 'qeue' in dispatchers.db; did you mean 'queue'? valid keys: kind, threads, queue, max_wait, queue_deadline"
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Ok(Document::parse(text)?.config)
    }

    /// A builder holding this configuration, for code to add to (an `on_failure` handler, say)
    /// before [`build`](DispatchersBuilder::build), which validates everything.
    pub fn to_builder(&self) -> DispatchersBuilder {
        let mut b = Dispatchers::builder();
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
                    if let Some(d) = s.queue_deadline {
                        c = c.queue_deadline(d);
                    }
                    b.blocking(name.clone(), c)
                }
                DispatcherSection::Limited(s) => {
                    let mut c = LimitedConfig::parallelism(s.parallelism);
                    c.admission =
                        admission(s.max_concurrent, s.queue, s.max_wait, s.queue_deadline);
                    b.limited(name.clone(), s.base.clone(), c)
                }
                DispatcherSection::Runtime(s) => {
                    let mut c = RuntimeConfig::workers(s.workers);
                    if let Some(n) = s.blocking_threads {
                        c = c.blocking_threads(n);
                    }
                    c.admission =
                        admission(s.max_concurrent, s.queue, s.max_wait, s.queue_deadline);
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
    queue_deadline: Option<Duration>,
) -> AdmissionConfig {
    AdmissionConfig {
        max_concurrent,
        queue: queue.unwrap_or(0),
        max_wait: max_wait.unwrap_or(Duration::ZERO),
        queue_deadline,
    }
}

/// A parsed document: the typed configuration and where each key stood.
pub(crate) struct Document {
    pub config: Config,
    positions: BTreeMap<String, Position>,
}

impl Document {
    /// Reads and checks a document: syntax, the schema, and the builder's checks (ranges,
    /// names, bases, cycles, the thread budget), every problem at once, in file order.
    pub(crate) fn parse(text: &str) -> Result<Document, ConfigError> {
        let lines = LineIndex::new(text);
        let (table, errors) = ::toml::de::DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(
                errors
                    .iter()
                    .map(|e| {
                        let position = e.span().map(|s| lines.position(s.start));
                        // The parser's message ("duplicate key") names no key: quote the line.
                        let line = position
                            .and_then(|at| text.lines().nth(at.line - 1))
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && l.chars().count() <= 80);
                        let message = match line {
                            Some(line) => format!("{} in `{line}`", e.message().trim()),
                            None => e.message().trim().to_owned(),
                        };
                        let mut p = ConfigProblem::new("", message);
                        p.position = position;
                        p
                    })
                    .collect(),
            ));
        }
        if table.get_ref().is_empty() {
            // Most likely the wrong file, or a truncated deploy: say so rather than start a
            // registry with nothing declared.
            return Err(ConfigError::Invalid(vec![ConfigProblem::new(
                "",
                "the configuration is empty: declare [cpu] or at least one [dispatchers.<name>] table",
            )]));
        }
        let tree = Node::from_detable(table.get_ref(), table.span(), &lines);
        let mut checker = Checker::default();
        let config = checker.config(&tree);
        let doc = Document {
            config,
            positions: checker.positions,
        };
        let mut problems = checker.problems;
        if let Err(ConfigError::Invalid(more)) = doc.locate(doc.config.to_builder().check()) {
            problems.extend(more);
        }
        if problems.is_empty() {
            return Ok(doc);
        }
        problems.sort_by_key(|p| {
            p.position
                .map_or((usize::MAX, usize::MAX), |at| (at.line, at.column))
        });
        Err(ConfigError::Invalid(problems))
    }

    /// Adds positions to problems found later (by the builder) on keys of this document.
    pub(crate) fn locate<T>(&self, result: Result<T, ConfigError>) -> Result<T, ConfigError> {
        result.map_err(|err| match err {
            ConfigError::Invalid(problems) => ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|mut p| {
                        if p.position.is_none() {
                            p.position = self.positions.get(&p.key).copied();
                        }
                        p
                    })
                    .collect(),
            ),
            other => other,
        })
    }
}

impl Dispatchers {
    /// Builds the registry a TOML document declares, with `BULKHEADS__<NAME>__<KEY>`
    /// environment overrides applied on top. Every problem of the document is reported at
    /// once, with key paths, lines and columns; nothing starts unless all is valid. See
    /// [`Config`] and `docs/config.md`.
    ///
    /// ```
    /// # fn main() -> Result<(), bulkheads::ConfigError> {
    /// let d = bulkheads::Dispatchers::from_toml_str(r#"
    ///     [cpu]
    ///     threads = 2
    ///
    ///     [dispatchers.legacy_db]
    ///     kind = "blocking"
    ///     threads = 4
    ///     queue = 16
    ///     max_wait = "50ms"
    ///
    ///     [dispatchers.thumbnails]
    ///     kind = "limited"
    ///     base = "cpu"
    ///     parallelism = 2
    /// "#)?;
    /// assert_eq!(d.get("legacy_db").unwrap().stats().capacity, Some(20));
    /// # Ok(()) }
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Dispatchers, ConfigError> {
        let doc = Document::parse(text)?;
        let mut config = doc.config.clone();
        // Problems of overrides name their variable, not a line of the file.
        config.apply_env()?;
        doc.locate(config.to_builder().build())
    }

    /// [`from_toml_str`](Self::from_toml_str) on a file's contents.
    pub fn from_toml_path(path: impl AsRef<std::path::Path>) -> Result<Dispatchers, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Builds the registry a [`Config`] declares (embedded in a service's own
    /// configuration, say). No environment overrides are applied; call
    /// [`Config::apply_env`] first for them.
    pub fn from_config(config: &Config) -> Result<Dispatchers, ConfigError> {
        config.to_builder().build()
    }
}
