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
//! ```
//!
//! Environment overrides (`BULKHEADS__<NAME>__<KEY>=value`, the dispatcher name upper-cased
//! with `-` as `_`; `BULKHEADS__CPU__THREADS` for the cpu pool) are applied on top by
//! [`Dispatchers::from_toml_str`](crate::Dispatchers::from_toml_str) and
//! [`from_toml_path`](crate::Dispatchers::from_toml_path). To load without them, use
//! [`Config::from_toml_str`] and [`Dispatchers::from_config`](crate::Dispatchers::from_config).
//! Every key, its default and its range: `docs/config.md`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ConfigProblem, Position};
use crate::{BlockingConfig, DispatchersBuilder, LimitedConfig, RuntimeConfig};

/// The whole `bulkheads` configuration: the cpu pool and the named dispatchers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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

fn parse_duration(text: &str) -> Result<Duration, String> {
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

    /// Applies `BULKHEADS__<NAME>__<KEY>=value` overrides from the process environment.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env_from(std::env::vars())
    }

    /// Applies overrides from `vars` (name, value) pairs; names not starting with
    /// `BULKHEADS__` are ignored. Values are read as in TOML (`32`, `"50ms"` or `50ms`).
    /// Every bad override is reported at once, naming the variable.
    ///
    /// ```
    /// let mut config = bulkheads::Config::from_toml_str(
    ///     "[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 16\n",
    /// ).unwrap();
    /// config.apply_env_from([("BULKHEADS__LEGACY_DB__THREADS".to_owned(), "32".to_owned())]).unwrap();
    /// let bulkheads::DispatcherSection::Blocking(db) = &config.dispatchers["legacy_db"] else { panic!() };
    /// assert_eq!(db.threads, 32);
    /// ```
    pub fn apply_env_from(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut tree = Node::from_config(self);
        let mut problems = Vec::new();
        let mut overridden = Vec::new();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((who, key)) = rest.split_once("__") else {
                problems.push(ConfigProblem::new(
                    var.clone(),
                    format!(
                        "expected {ENV_PREFIX}<NAME>__<KEY>, such as {ENV_PREFIX}LEGACY_DB__THREADS"
                    ),
                ));
                continue;
            };
            let key = key.to_ascii_lowercase();
            let value = Node::from_env_value(&value);
            if who == "CPU" {
                tree.set(&["cpu", &key], value);
                overridden.push((format!("cpu.{key}"), var));
                continue;
            }
            let names: Vec<String> = self.dispatchers.keys().cloned().collect();
            match names.iter().find(|n| env_name(n) == who) {
                Some(name) => {
                    tree.set(&["dispatchers", name, &key], value);
                    overridden.push((format!("dispatchers.{name}.{key}"), var));
                }
                None => problems.push(ConfigProblem::new(
                    var.clone(),
                    format!(
                        "no dispatcher named '{}' to override; known: cpu{}",
                        who.to_ascii_lowercase(),
                        names.iter().map(|n| format!(", {n}")).collect::<String>()
                    ),
                )),
            }
        }
        let mut checked = Checker::default();
        let config = checked.config(&tree);
        problems.extend(checked.problems.into_iter().map(|mut p| {
            if let Some((_, var)) = overridden
                .iter()
                .find(|(k, _)| p.key.starts_with(k.as_str()))
            {
                p.message = format!("{} (set by {var})", p.message);
            }
            p
        }));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        *self = config;
        Ok(())
    }

    /// A builder holding this configuration, for code to add to (an `on_failure` handler, say)
    /// before [`build`](DispatchersBuilder::build), which validates everything.
    pub fn to_builder(&self) -> DispatchersBuilder {
        let mut b = crate::Dispatchers::builder();
        if let Some(n) = self.cpu.threads {
            b = b.cpu_threads(n);
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

const ENV_PREFIX: &str = "BULKHEADS__";

/// A dispatcher name as it appears in an environment variable.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A parsed document: the typed configuration and where each key stood.
pub(crate) struct Document {
    pub config: Config,
    positions: BTreeMap<String, Position>,
}

impl Document {
    pub(crate) fn parse(text: &str) -> Result<Document, ConfigError> {
        let lines = LineIndex::new(text);
        let (table, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(
                errors
                    .iter()
                    .map(|e| {
                        let mut p = ConfigProblem::new("", e.message().trim().to_owned());
                        p.position = e.span().map(|s| lines.position(s.start));
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
        // The builder's checks (ranges, names, bases, cycles) too, so that one pass reports
        // every problem of the file, in the order of the file.
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
        result.map_err(|e| self.locate_err(e))
    }

    fn locate_err(&self, err: ConfigError) -> ConfigError {
        match err {
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
        }
    }
}

/// Byte offsets to 1-based line and column (in characters).
struct LineIndex<'a> {
    text: &'a str,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        LineIndex { text }
    }

    fn position(&self, offset: usize) -> Position {
        let upto = self
            .text
            .get(..offset.min(self.text.len()))
            .unwrap_or(self.text);
        let line = upto.matches('\n').count() + 1;
        let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Position { line, column }
    }
}

/// A document as a small tree: TOML tables, or environment overrides laid over one. Each
/// node knows where its value stood; each table entry also where its key stood.
#[derive(Clone, Debug)]
enum Node {
    Table(BTreeMap<String, Entry>, Option<Position>),
    Integer(i128, Option<Position>),
    Str(String, Option<Position>),
    /// Another TOML type, named for the error message.
    Other(&'static str, Option<Position>),
}

/// A table entry: where its key stood, and its value.
#[derive(Clone, Debug)]
struct Entry {
    key_at: Option<Position>,
    node: Node,
}

impl Entry {
    fn new(node: Node) -> Self {
        Entry { key_at: None, node }
    }
}

impl Node {
    fn position(&self) -> Option<Position> {
        match self {
            Node::Table(_, p) | Node::Integer(_, p) | Node::Str(_, p) | Node::Other(_, p) => *p,
        }
    }

    fn from_detable(table: &DeTable<'_>, span: Range<usize>, lines: &LineIndex<'_>) -> Node {
        let entries = table
            .iter()
            .map(|(k, v)| {
                let entry = Entry {
                    key_at: Some(lines.position(k.span().start)),
                    node: Node::from_devalue(v.get_ref(), v.span(), lines),
                };
                (k.get_ref().to_string(), entry)
            })
            .collect();
        Node::Table(entries, Some(lines.position(span.start)))
    }

    fn from_devalue(v: &DeValue<'_>, span: Range<usize>, lines: &LineIndex<'_>) -> Node {
        let at = Some(lines.position(span.start));
        match v {
            DeValue::Table(t) => Node::from_detable(t, span, lines),
            DeValue::String(s) => Node::Str(s.to_string(), at),
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Node::Integer(n, at),
                Err(_) => Node::Other("an integer too large", at),
            },
            DeValue::Float(_) => Node::Other("a float", at),
            DeValue::Boolean(_) => Node::Other("a boolean", at),
            DeValue::Datetime(_) => Node::Other("a datetime", at),
            DeValue::Array(_) => Node::Other("an array", at),
        }
    }

    /// A value from the environment: an integer if it reads as one, else a string (quotes
    /// optional).
    fn from_env_value(value: &str) -> Node {
        let v = value.trim();
        match v.parse::<i128>() {
            Ok(n) => Node::Integer(n, None),
            Err(_) => Node::Str(v.trim_matches('"').to_owned(), None),
        }
    }

    fn from_config(c: &Config) -> Node {
        let mut root = BTreeMap::new();
        let mut cpu = BTreeMap::new();
        if let Some(n) = c.cpu.threads {
            cpu.insert(
                "threads".to_owned(),
                Entry::new(Node::Integer(n as i128, None)),
            );
        }
        root.insert("cpu".to_owned(), Entry::new(Node::Table(cpu, None)));
        let mut ds = BTreeMap::new();
        for (name, section) in &c.dispatchers {
            let mut t = BTreeMap::new();
            let int = |n: usize| Entry::new(Node::Integer(n as i128, None));
            let dur = |d: Duration| {
                Entry::new(Node::Str(humantime::format_duration(d).to_string(), None))
            };
            let (kind, max_concurrent, queue, max_wait) = match section {
                DispatcherSection::Blocking(s) => {
                    t.insert("threads".to_owned(), int(s.threads));
                    ("blocking", None, s.queue, s.max_wait)
                }
                DispatcherSection::Limited(s) => {
                    t.insert(
                        "base".to_owned(),
                        Entry::new(Node::Str(s.base.clone(), None)),
                    );
                    t.insert("parallelism".to_owned(), int(s.parallelism));
                    ("limited", s.max_concurrent, s.queue, s.max_wait)
                }
                DispatcherSection::Runtime(s) => {
                    t.insert("workers".to_owned(), int(s.workers));
                    ("runtime", s.max_concurrent, s.queue, s.max_wait)
                }
            };
            t.insert(
                "kind".to_owned(),
                Entry::new(Node::Str(kind.to_owned(), None)),
            );
            if let Some(n) = max_concurrent {
                t.insert("max_concurrent".to_owned(), int(n));
            }
            if let Some(n) = queue {
                t.insert("queue".to_owned(), int(n));
            }
            if let Some(d) = max_wait {
                t.insert("max_wait".to_owned(), dur(d));
            }
            ds.insert(name.clone(), Entry::new(Node::Table(t, None)));
        }
        root.insert("dispatchers".to_owned(), Entry::new(Node::Table(ds, None)));
        Node::Table(root, None)
    }

    /// Sets the value at `path`, creating tables on the way.
    fn set(&mut self, path: &[&str], value: Node) {
        let Node::Table(entries, _) = self else {
            return;
        };
        match path {
            [] => {}
            [last] => {
                entries.insert((*last).to_owned(), Entry::new(value));
            }
            [first, rest @ ..] => entries
                .entry((*first).to_owned())
                .or_insert_with(|| Entry::new(Node::Table(BTreeMap::new(), None)))
                .node
                .set(rest, value),
        }
    }
}

const TOP_KEYS: &[&str] = &["cpu", "dispatchers"];
const CPU_KEYS: &[&str] = &["threads"];
const KINDS: &[&str] = &["blocking", "limited", "runtime"];
const BLOCKING_KEYS: &[&str] = &["kind", "threads", "queue", "max_wait"];
const LIMITED_KEYS: &[&str] = &[
    "kind",
    "base",
    "parallelism",
    "max_concurrent",
    "queue",
    "max_wait",
];
const RUNTIME_KEYS: &[&str] = &["kind", "workers", "max_concurrent", "queue", "max_wait"];

/// Walks a document against the schema: collects every problem, remembers where every key
/// stood, and builds the typed configuration from what is valid. Ranges, names, bases and
/// cycles are left to the builder, which checks configurations made in code the same way.
#[derive(Default)]
struct Checker {
    problems: Vec<ConfigProblem>,
    positions: BTreeMap<String, Position>,
}

impl Checker {
    fn problem(&mut self, key: &str, position: Option<Position>, message: impl Into<String>) {
        let mut p = ConfigProblem::new(key, message);
        p.position = position;
        self.problems.push(p);
    }

    fn config(&mut self, root: &Node) -> Config {
        let mut config = Config::default();
        let Some(entries) = self.table("", root, None) else {
            return config;
        };
        self.unknown_keys("", entries, TOP_KEYS);
        if let Some(cpu) = entries.get("cpu") {
            if let Some(t) = self.table("cpu", &cpu.node, cpu.key_at) {
                self.unknown_keys("cpu", t, CPU_KEYS);
                config.cpu.threads = self.count("cpu.threads", get(t, "threads"));
            }
        }
        if let Some(ds) = entries.get("dispatchers") {
            if let Some(ds) = self.table("dispatchers", &ds.node, ds.key_at) {
                for (name, entry) in ds {
                    let key = format!("dispatchers.{name}");
                    if let Some(section) = self.dispatcher(&key, entry) {
                        config.dispatchers.insert(name.clone(), section);
                    }
                }
            }
        }
        config
    }

    fn dispatcher(&mut self, key: &str, entry: &Entry) -> Option<DispatcherSection> {
        let t = self.table(key, &entry.node, entry.key_at)?;
        // Problems of the whole section point at its name.
        let at = entry.key_at;
        let kind = match get(t, "kind") {
            None => {
                self.problem(
                    key,
                    at,
                    "missing key 'kind'; valid kinds: blocking, limited, runtime",
                );
                return None;
            }
            Some(k) => self.string(&format!("{key}.kind"), Some(k))?,
        };
        let sub = |k: &str| format!("{key}.{k}");
        match kind.as_str() {
            "blocking" => {
                self.unknown_keys(key, t, BLOCKING_KEYS);
                let threads = self.required_count(key, t, "threads", at);
                let queue = self.count(&sub("queue"), get(t, "queue"));
                let max_wait = self.duration(&sub("max_wait"), get(t, "max_wait"));
                Some(DispatcherSection::Blocking(BlockingSection {
                    // A placeholder where the value was bad (already reported), so the
                    // builder's checks of the rest of the file still run.
                    threads: threads.unwrap_or(1),
                    queue,
                    max_wait,
                }))
            }
            "limited" => {
                self.unknown_keys(key, t, LIMITED_KEYS);
                let base = match get(t, "base") {
                    Some(b) => self.string(&sub("base"), Some(b)),
                    None => {
                        self.problem(key, at, format!("missing key 'base' in {key}; write base = \"cpu\", \"main\" or another dispatcher's name"));
                        None
                    }
                };
                let parallelism = self.required_count(key, t, "parallelism", at);
                let max_concurrent = self.count(&sub("max_concurrent"), get(t, "max_concurrent"));
                let queue = self.count(&sub("queue"), get(t, "queue"));
                let max_wait = self.duration(&sub("max_wait"), get(t, "max_wait"));
                Some(DispatcherSection::Limited(LimitedSection {
                    base: base.unwrap_or_else(|| crate::validate::CPU.to_owned()),
                    parallelism: parallelism.unwrap_or(1),
                    max_concurrent,
                    queue,
                    max_wait,
                }))
            }
            "runtime" => {
                self.unknown_keys(key, t, RUNTIME_KEYS);
                let workers = self.required_count(key, t, "workers", at);
                let max_concurrent = self.count(&sub("max_concurrent"), get(t, "max_concurrent"));
                let queue = self.count(&sub("queue"), get(t, "queue"));
                let max_wait = self.duration(&sub("max_wait"), get(t, "max_wait"));
                Some(DispatcherSection::Runtime(RuntimeSection {
                    workers: workers.unwrap_or(1),
                    max_concurrent,
                    queue,
                    max_wait,
                }))
            }
            other => {
                let k = sub("kind");
                let pos = get(t, "kind").and_then(Node::position);
                self.problem(
                    &k,
                    pos,
                    format!(
                        "unknown kind '{other}'{}",
                        crate::validate::suggest(other, KINDS, "kinds")
                    ),
                );
                None
            }
        }
    }

    /// `key_at` is where the table's name stood: problems of the table point there.
    fn table<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
        key_at: Option<Position>,
    ) -> Option<&'n BTreeMap<String, Entry>> {
        match node {
            Node::Table(t, _) => {
                if let Some(at) = key_at {
                    self.positions.insert(key.to_owned(), at);
                }
                Some(t)
            }
            other => {
                let what = what(other);
                self.problem(
                    key,
                    other.position(),
                    format!("expected a table, got {what}"),
                );
                None
            }
        }
    }

    fn unknown_keys(&mut self, key: &str, t: &BTreeMap<String, Entry>, valid: &[&str]) {
        for (k, entry) in t {
            if !valid.contains(&k.as_str()) {
                let path = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                let within = if key.is_empty() {
                    "the top level".to_owned()
                } else {
                    key.to_owned()
                };
                self.problem(
                    &path,
                    entry.key_at,
                    format!(
                        "unknown key '{k}' in {within}{}",
                        crate::validate::suggest(k, valid, "keys")
                    ),
                );
            }
        }
    }

    fn required_count(
        &mut self,
        key: &str,
        t: &BTreeMap<String, Entry>,
        name: &str,
        at: Option<Position>,
    ) -> Option<usize> {
        match get(t, name) {
            Some(v) => self.count(&format!("{key}.{name}"), Some(v)),
            None => {
                let (min, max) = crate::validate::limits(name);
                self.problem(
                    key,
                    at,
                    format!(
                        "missing key '{name}' in {key}; a whole number between {min} and {max}"
                    ),
                );
                None
            }
        }
    }

    fn count(&mut self, key: &str, node: Option<&Node>) -> Option<usize> {
        let node = node?;
        if let Some(at) = node.position() {
            self.positions.insert(key.to_owned(), at);
        }
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let (min, max) = crate::validate::limits(leaf);
        match node {
            Node::Integer(n, _) => match usize::try_from(*n) {
                // The builder checks the range, for code and files alike.
                Ok(n) => Some(n),
                Err(_) => {
                    self.problem(
                        key,
                        node.position(),
                        format!("must be between {min} and {max}, got {n}"),
                    );
                    None
                }
            },
            other => {
                let what = what(other);
                self.problem(
                    key,
                    other.position(),
                    format!("expected a whole number between {min} and {max}, got {what}"),
                );
                None
            }
        }
    }

    fn string(&mut self, key: &str, node: Option<&Node>) -> Option<String> {
        let node = node?;
        if let Some(at) = node.position() {
            self.positions.insert(key.to_owned(), at);
        }
        match node {
            Node::Str(s, _) => Some(s.clone()),
            other => {
                let what = what(other);
                self.problem(
                    key,
                    other.position(),
                    format!("expected a string, got {what}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &str, node: Option<&Node>) -> Option<Duration> {
        let node = node?;
        if let Some(at) = node.position() {
            self.positions.insert(key.to_owned(), at);
        }
        match node {
            Node::Str(s, at) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.problem(key, *at, e);
                    None
                }
            },
            other => {
                let what = what(other);
                self.problem(
                    key,
                    other.position(),
                    format!("expected a duration string such as \"50ms\" or \"2s\", got {what}"),
                );
                None
            }
        }
    }
}

fn get<'n>(t: &'n BTreeMap<String, Entry>, key: &str) -> Option<&'n Node> {
    t.get(key).map(|e| &e.node)
}

fn what(node: &Node) -> String {
    match node {
        Node::Table(..) => "a table".to_owned(),
        Node::Integer(n, _) => format!("the integer {n}"),
        Node::Str(s, _) => format!("the string \"{s}\""),
        Node::Other(what, _) => (*what).to_owned(),
    }
}
