//! Environment overrides: `BULKHEADS__<NAME>__<KEY>=value` laid over a configuration.
//!
//! `<NAME>` is a dispatcher's name upper-cased with `-` read as `_` (`CPU` for the cpu pool);
//! `<KEY>` is the variable's last `__`-separated part, so names that contain `__` work too.
//! `BULKHEADS__MAX_THREADS` sets the top-level key. Overrides are laid over the tree of the
//! configuration and checked exactly like a file (the schema, then `validate.rs`), and every
//! problem names the variable that caused it. Variables that do not start with `BULKHEADS__`
//! are ignored, whatever they hold; one that does but is not valid UTF-8 is a problem.

use std::ffi::OsString;

use super::check::Checker;
use super::schema::{self, Type};
use super::toml::Node;
use super::types::Config;
use crate::error::{ConfigError, ConfigProblem};

const ENV_PREFIX: &str = "BULKHEADS__";

/// A dispatcher name as it appears in an environment variable.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

impl Config {
    /// Applies `BULKHEADS__<NAME>__<KEY>=value` overrides from the process environment.
    /// Other variables are ignored, whatever they hold.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env_from_os(std::env::vars_os())
    }

    /// Applies overrides from `vars` (name, value) pairs; names not starting with
    /// `BULKHEADS__` are ignored. Values are read as in TOML (`32`, `"50ms"` or `50ms`).
    /// Every bad override is reported at once, naming the variable; nothing is applied then.
    ///
    /// ```
    /// let mut config = bulkheads::Config::from_toml_str(
    ///     "[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 16\n",
    /// ).unwrap();
    /// config.apply_env_from([("BULKHEADS__LEGACY_DB__THREADS".to_owned(), "32".to_owned())]).unwrap();
    /// let bulkheads::DispatcherSection::Blocking(db) = &config.dispatchers["legacy_db"] else { panic!() };
    /// assert_eq!(db.threads, 32);
    ///
    /// let err = config
    ///     .apply_env_from([("BULKHEADS__LEGACY_DB__THREADS".to_owned(), "0".to_owned())])
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid bulkheads configuration: dispatchers.legacy_db.threads: must be between 1 and 4096, got 0 (set by BULKHEADS__LEGACY_DB__THREADS)"
    /// );
    /// ```
    pub fn apply_env_from(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        self.apply_env_from_os(
            vars.into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
    }

    /// [`apply_env_from`](Self::apply_env_from) for variables as the operating system gives
    /// them (`std::env::vars_os`): a `BULKHEADS__` variable whose name or value is not valid
    /// UTF-8 is reported, naming it; any other variable is ignored.
    pub fn apply_env_from_os(
        &mut self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<(), ConfigError> {
        let mut tree = Node::from_config(self)?;
        let names: Vec<String> = self.dispatchers.keys().cloned().collect();
        let mut problems = Vec::new();
        // (key path, variable) of every override applied.
        let mut overridden: Vec<(String, String)> = Vec::new();
        for (var, value) in vars {
            let Some(var) = var.to_str() else {
                let lossy = var.to_string_lossy();
                if lossy.starts_with(ENV_PREFIX) {
                    problems.push(ConfigProblem::new(
                        lossy.into_owned(),
                        "the variable's name is not valid UTF-8",
                    ));
                }
                continue;
            };
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some(value) = value.to_str() else {
                problems.push(ConfigProblem::new(var, "its value is not valid UTF-8"));
                continue;
            };
            match target(rest, &names) {
                Ok(path) => {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    tree.set(&path, Node::from_env_value(value));
                    overridden.push((path.join("."), var.to_owned()));
                }
                Err(why) => problems.push(ConfigProblem::new(var, why)),
            }
        }
        let mut checker = Checker::default();
        let config = checker.config(&tree);
        problems.extend(checker.problems);
        if let Err(ConfigError::Invalid(more)) = config.to_builder().check() {
            problems.extend(more);
        }
        let problems: Vec<ConfigProblem> = problems
            .into_iter()
            .map(|mut p| {
                if let Some((_, var)) = overridden
                    .iter()
                    .find(|(k, _)| p.key == *k || p.key.starts_with(&format!("{k}.")))
                {
                    p.message = format!("{} (set by {var})", p.message);
                    p.position = None;
                } else if let Some((_, var)) = overridden.iter().find(|(k, _)| {
                    // A kind changed by a variable makes the table's other keys wrong.
                    k.strip_suffix(".kind").is_some_and(|table| {
                        p.key == table || p.key.starts_with(&format!("{table}."))
                    })
                }) {
                    p.message = format!("{} (after {var} changed its kind)", p.message);
                }
                p
            })
            .collect();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        *self = config;
        Ok(())
    }
}

/// The key path a variable (without its prefix) sets, or why it sets none.
fn target(rest: &str, names: &[String]) -> Result<Vec<String>, String> {
    let Some((who, key)) = rest.rsplit_once("__") else {
        let key = rest.to_ascii_lowercase();
        if schema::TOP
            .iter()
            .any(|k| k.name == key && k.ty != Type::Table)
        {
            return Ok(vec![key]);
        }
        return Err(format!(
            "expected {ENV_PREFIX}<NAME>__<KEY>, such as {ENV_PREFIX}LEGACY_DB__THREADS, or {ENV_PREFIX}MAX_THREADS"
        ));
    };
    let key = key.to_ascii_lowercase();
    // Names, like keys, are matched whatever their case in the variable.
    let who = who.to_ascii_uppercase();
    if who == "CPU" {
        return Ok(vec!["cpu".to_owned(), key]);
    }
    let matching: Vec<&String> = names.iter().filter(|n| env_name(n) == who).collect();
    match matching.as_slice() {
        [name] => Ok(vec!["dispatchers".to_owned(), (*name).clone(), key]),
        [] => Err(format!(
            "no dispatcher named '{}' to override; known: cpu{}",
            who.to_ascii_lowercase(),
            names.iter().map(|n| format!(", {n}")).collect::<String>()
        )),
        many => Err(format!(
            "matches dispatchers {} alike (each reads as {who} in a variable name); rename one of them to override it",
            many.iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}
