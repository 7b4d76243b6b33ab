//! The config loader never panics: arbitrary strings and arbitrary TOML documents built from
//! the real vocabulary (and junk) get a result or an error, always. Bounded: a few hundred
//! cases each, well under a second.

use bulkheads::{Config, ConfigError};
use proptest::prelude::*;

/// Loads and validates without starting any thread.
fn load(text: &str) {
    match Config::from_toml_str(text) {
        Ok(config) => {
            // Validation of what parsed must not panic either; it may reject.
            let checked = config.to_builder().check();
            if let Err(e) = &checked {
                assert!(!e.to_string().is_empty());
            }
            // And environment overrides on top of it.
            let mut c = config;
            let _ = c.apply_env_from([
                ("BULKHEADS__CPU__THREADS".to_owned(), "0".to_owned()),
                ("BULKHEADS__X__QUEUE".to_owned(), "-1".to_owned()),
            ]);
        }
        Err(ConfigError::Invalid(problems)) => assert!(!problems.is_empty()),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kind".to_owned()),
        Just("threads".to_owned()),
        Just("queue".to_owned()),
        Just("max_wait".to_owned()),
        Just("base".to_owned()),
        Just("parallelism".to_owned()),
        Just("max_concurrent".to_owned()),
        Just("workers".to_owned()),
        "[a-z_]{1,8}",
    ]
}

fn leaf() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        (-3i64..5000).prop_map(toml::Value::Integer),
        prop_oneof![
            Just("blocking"),
            Just("limited"),
            Just("runtime"),
            Just("cpu"),
            Just("main"),
            Just("a"),
            Just("50ms"),
            Just("5 parsecs"),
            Just("99999999999y"),
            Just(""),
        ]
        .prop_map(|s| toml::Value::String(s.to_owned())),
        ".{0,12}".prop_map(toml::Value::String),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ]
}

fn value() -> impl Strategy<Value = toml::Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = String> {
    let dispatcher = prop::collection::btree_map(key(), value(), 0..7);
    let dispatchers = prop::collection::btree_map(
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            "[a-zA-Z_ -]{1,6}"
        ],
        dispatcher,
        0..4,
    );
    (
        prop::option::of(prop::collection::btree_map(key(), value(), 0..3)),
        dispatchers,
        prop::option::of(prop::collection::btree_map(key(), value(), 0..2)),
    )
        .prop_map(|(cpu, ds, junk)| {
            let mut root = toml::Table::new();
            if let Some(cpu) = cpu {
                root.insert(
                    "cpu".to_owned(),
                    toml::Value::Table(cpu.into_iter().collect()),
                );
            }
            let ds: toml::Table = ds
                .into_iter()
                .map(|(k, v)| (k, toml::Value::Table(v.into_iter().collect())))
                .collect();
            root.insert("dispatchers".to_owned(), toml::Value::Table(ds));
            if let Some(junk) = junk {
                root.extend(junk);
            }
            toml::to_string(&root).unwrap_or_default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in ".{0,200}") {
        load(&text);
    }

    #[test]
    fn arbitrary_toml_shaped_strings_never_panic(text in "[\\[\\]a-z_.=\" 0-9\\n-]{0,200}") {
        load(&text);
    }

    #[test]
    fn arbitrary_documents_never_panic(text in document()) {
        load(&text);
    }
}
