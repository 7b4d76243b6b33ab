//! Walks a document against the schema table (`schema.rs`): collects every problem (unknown
//! keys with a suggestion, missing keys, wrong types, numbers that fit no range, bad
//! durations), remembers where every key stood, and builds the typed [`Config`] from what is
//! valid, through serde. Ranges, names, bases, cycles and the thread budget are left to
//! `validate.rs`, which checks configurations made in code the same way.
//!
//! A section with a bad value still yields a section, with a placeholder in the bad value's
//! place, so that the later checks run on the rest of the file: one pass reports every problem.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::schema::{self, Key, Type};
use super::toml::{Entry, Node};
use super::types::{Config, parse_duration};
use crate::error::{ConfigProblem, Position};
use crate::validate::{CPU, limits, limits_at, suggest};

#[derive(Default)]
pub(crate) struct Checker {
    pub problems: Vec<ConfigProblem>,
    pub positions: BTreeMap<String, Position>,
}

impl Checker {
    fn problem(&mut self, key: &str, position: Option<Position>, message: impl Into<String>) {
        let mut p = ConfigProblem::new(key, message);
        p.position = position;
        self.problems.push(p);
    }

    /// The typed configuration of `root`; problems are collected in `self`.
    pub(crate) fn config(&mut self, root: &Node) -> Config {
        let mut top = toml::Table::new();
        if let Some(entries) = self.table("", root, None) {
            self.unknown_keys("", entries, schema::TOP);
            for key in schema::TOP {
                let Some(entry) = entries.get(key.name) else {
                    continue;
                };
                let value = match key.name {
                    "cpu" => self
                        .table("cpu", &entry.node, entry.key_at)
                        .map(|t| toml::Value::Table(self.section("cpu", t, schema::CPU, None))),
                    "dispatchers" => self
                        .table("dispatchers", &entry.node, entry.key_at)
                        .map(|ds| toml::Value::Table(self.dispatchers(ds))),
                    _ => self.value(key.name, key, &entry.node),
                };
                if let Some(v) = value {
                    top.insert(key.name.to_owned(), v);
                }
            }
        }
        match Config::deserialize(toml::Value::Table(top)) {
            Ok(config) => config,
            Err(e) => {
                // The schema and the serde types disagree: a bug, reported as such.
                self.problem(
                    "",
                    None,
                    format!("bulkheads internal error: a checked configuration did not read back: {e}; please report it"),
                );
                Config::default()
            }
        }
    }

    fn dispatchers(&mut self, ds: &BTreeMap<String, Entry>) -> toml::Table {
        let mut out = toml::Table::new();
        for (name, entry) in ds {
            let key = format!("dispatchers.{name}");
            if let Some(section) = self.dispatcher(&key, entry) {
                out.insert(name.clone(), toml::Value::Table(section));
            }
        }
        out
    }

    fn dispatcher(&mut self, key: &str, entry: &Entry) -> Option<toml::Table> {
        let t = self.table(key, &entry.node, entry.key_at)?;
        // Problems of the whole section point at its name.
        let at = entry.key_at;
        let kinds = schema::kind_names();
        let kind = match t.get("kind").map(|e| &e.node) {
            None => {
                self.problem(
                    key,
                    at,
                    format!("missing key 'kind'; valid kinds: {}", kinds.join(", ")),
                );
                return None;
            }
            Some(Node::Str(s, pos)) => {
                if let Some(p) = pos {
                    self.positions.insert(format!("{key}.kind"), *p);
                }
                s.clone()
            }
            Some(other) => {
                self.problem(
                    &format!("{key}.kind"),
                    other.position(),
                    format!("expected a string, got {}", other.what()),
                );
                return None;
            }
        };
        let Some(keys) = schema::kind(&kind) else {
            let pos = t.get("kind").and_then(|e| e.node.position());
            self.problem(
                &format!("{key}.kind"),
                pos,
                format!("unknown kind '{kind}'{}", suggest(&kind, &kinds, "kinds")),
            );
            return None;
        };
        Some(self.section(key, t, keys, at))
    }

    /// One section: unknown keys, then every key of the schema in order.
    fn section(
        &mut self,
        key: &str,
        t: &BTreeMap<String, Entry>,
        keys: &[Key],
        at: Option<Position>,
    ) -> toml::Table {
        self.unknown_keys(key, t, keys);
        let mut out = toml::Table::new();
        for k in keys {
            let path = format!("{key}.{}", k.name);
            let value = match t.get(k.name) {
                Some(entry) => self.value(&path, k, &entry.node),
                None if k.required => {
                    self.missing(key, k, at);
                    None
                }
                None => continue,
            };
            let value = match value {
                Some(v) => Some(v),
                // A placeholder where a required value was bad or missing (already reported).
                None if k.required => placeholder(k),
                None => None,
            };
            if let Some(v) = value {
                out.insert(k.name.to_owned(), v);
            }
        }
        out
    }

    fn missing(&mut self, key: &str, k: &Key, at: Option<Position>) {
        let name = k.name;
        let message = match k.ty {
            Type::Name => format!(
                "missing key '{name}' in {key}; write {name} = \"cpu\", \"main\" or another dispatcher's name"
            ),
            Type::Count => {
                let (min, max) = limits(name);
                format!("missing key '{name}' in {key}; a whole number between {min} and {max}")
            }
            _ => format!("missing key '{name}' in {key}"),
        };
        self.problem(key, at, message);
    }

    /// A checked value, or `None` after reporting why not.
    fn value(&mut self, path: &str, k: &Key, node: &Node) -> Option<toml::Value> {
        if let Some(at) = node.position() {
            self.positions.insert(path.to_owned(), at);
        }
        match (k.ty, node) {
            (Type::Count, Node::Integer(n, _)) => match usize::try_from(*n) {
                // The builder checks the range, for code and files alike.
                Ok(v) => i64::try_from(v).ok().map(toml::Value::Integer).or_else(|| {
                    self.out_of_range(path, node, *n);
                    None
                }),
                Err(_) => {
                    self.out_of_range(path, node, *n);
                    None
                }
            },
            (Type::Count, other) => {
                let (min, max) = limits_at(path);
                self.problem(
                    path,
                    other.position(),
                    format!(
                        "expected a whole number between {min} and {max}, got {}",
                        other.what()
                    ),
                );
                None
            }
            (Type::Duration, Node::Str(s, at)) => match parse_duration(s) {
                Ok(_) => Some(toml::Value::String(s.clone())),
                Err(e) => {
                    self.problem(path, *at, e);
                    None
                }
            },
            (Type::Duration, other) => {
                self.problem(
                    path,
                    other.position(),
                    format!(
                        "expected a duration string such as \"50ms\" or \"2s\", got {}",
                        other.what()
                    ),
                );
                None
            }
            (Type::Name | Type::Kind, Node::Str(s, _)) => Some(toml::Value::String(s.clone())),
            (Type::Name | Type::Kind, other) => {
                self.problem(
                    path,
                    other.position(),
                    format!("expected a string, got {}", other.what()),
                );
                None
            }
            (Type::Table, _) => None,
        }
    }

    fn out_of_range(&mut self, path: &str, node: &Node, n: i128) {
        let (min, max) = limits_at(path);
        self.problem(
            path,
            node.position(),
            format!("must be between {min} and {max}, got {n}"),
        );
    }

    /// `key_at` is where the table's name stood: problems of the table point there.
    fn table<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
        key_at: Option<Position>,
    ) -> Option<&'n BTreeMap<String, Entry>> {
        match node.entries() {
            Some(t) => {
                if let Some(at) = key_at {
                    self.positions.insert(key.to_owned(), at);
                }
                Some(t)
            }
            None => {
                self.problem(
                    key,
                    node.position(),
                    format!("expected a table, got {}", node.what()),
                );
                None
            }
        }
    }

    fn unknown_keys(&mut self, key: &str, t: &BTreeMap<String, Entry>, valid: &[Key]) {
        let valid = schema::names(valid);
        for (k, entry) in t {
            if valid.contains(&k.as_str()) {
                continue;
            }
            let (path, within) = if key.is_empty() {
                (k.clone(), "the top level".to_owned())
            } else {
                (format!("{key}.{k}"), key.to_owned())
            };
            self.problem(
                &path,
                entry.key_at,
                format!(
                    "unknown key '{k}' in {within}{}",
                    suggest(k, &valid, "keys")
                ),
            );
        }
    }
}

/// What stands in for a bad or missing required value.
fn placeholder(k: &Key) -> Option<toml::Value> {
    match k.ty {
        Type::Count => i64::try_from(limits(k.name).0)
            .ok()
            .map(toml::Value::Integer),
        Type::Name => Some(toml::Value::String(CPU.to_owned())),
        _ => None,
    }
}
