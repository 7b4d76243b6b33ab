//! A configuration as a small tree that knows where each value stood: read from TOML with
//! spans (`toml::de::DeTable`), or from a typed [`Config`] (for environment overrides laid over
//! it), and turned back into a `toml::Value` that serde reads into a [`Config`].

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::types::Config;
use crate::error::{ConfigError, ConfigProblem, Position};

/// Byte offsets to 1-based line and column (in characters).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        LineIndex { text }
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
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
pub(crate) enum Node {
    Table(BTreeMap<String, Entry>, Option<Position>),
    Integer(i128, Option<Position>),
    Str(String, Option<Position>),
    /// Another TOML type, named for the error message.
    Other(&'static str, Option<Position>),
}

/// A table entry: where its key stood, and its value.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key_at: Option<Position>,
    pub node: Node,
}

impl Entry {
    pub(crate) fn new(node: Node) -> Self {
        Entry { key_at: None, node }
    }
}

impl Node {
    pub(crate) fn position(&self) -> Option<Position> {
        match self {
            Node::Table(_, p) | Node::Integer(_, p) | Node::Str(_, p) | Node::Other(_, p) => *p,
        }
    }

    /// What the node is, for error messages.
    pub(crate) fn what(&self) -> String {
        match self {
            Node::Table(..) => "a table".to_owned(),
            Node::Integer(n, _) => format!("the integer {n}"),
            Node::Str(s, _) => format!("the string \"{s}\""),
            Node::Other(what, _) => (*what).to_owned(),
        }
    }

    pub(crate) fn from_detable(
        table: &DeTable<'_>,
        span: Range<usize>,
        lines: &LineIndex<'_>,
    ) -> Node {
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

    /// A typed configuration as a tree (through serde), to lay overrides over.
    pub(crate) fn from_config(config: &Config) -> Result<Node, ConfigError> {
        toml::Value::try_from(config)
            .map(|v| Node::from_value(&v))
            .map_err(|e| {
                ConfigError::Invalid(vec![ConfigProblem::new(
                    "",
                    format!("the configuration cannot be written as TOML: {e}"),
                )])
            })
    }

    fn from_value(v: &toml::Value) -> Node {
        match v {
            toml::Value::Table(t) => Node::Table(
                t.iter()
                    .map(|(k, v)| (k.clone(), Entry::new(Node::from_value(v))))
                    .collect(),
                None,
            ),
            toml::Value::Integer(n) => Node::Integer(i128::from(*n), None),
            toml::Value::String(s) => Node::Str(s.clone(), None),
            toml::Value::Float(_) => Node::Other("a float", None),
            toml::Value::Boolean(_) => Node::Other("a boolean", None),
            toml::Value::Datetime(_) => Node::Other("a datetime", None),
            toml::Value::Array(_) => Node::Other("an array", None),
        }
    }

    /// A value from the environment: an integer if it reads as one, else a string (quotes
    /// optional).
    pub(crate) fn from_env_value(value: &str) -> Node {
        let v = value.trim();
        match v.parse::<i128>() {
            Ok(n) => Node::Integer(n, None),
            Err(_) => Node::Str(v.trim_matches('"').to_owned(), None),
        }
    }

    /// Sets the value at `path`, creating tables on the way.
    pub(crate) fn set(&mut self, path: &[&str], value: Node) {
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

    /// The entries of a table node.
    pub(crate) fn entries(&self) -> Option<&BTreeMap<String, Entry>> {
        match self {
            Node::Table(t, _) => Some(t),
            _ => None,
        }
    }
}
