//! The one schema table: every key of a configuration, its type, whether it is required, and
//! its default as the docs state it. The checker walks documents against it, error messages
//! list valid keys from it, and `docs/config.md` mirrors it.

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// A whole number; its range comes from `validate::limits` by the key's name.
    Count,
    /// A duration string such as `"50ms"`.
    Duration,
    /// A dispatcher name.
    Name,
    /// `kind`: one of [`KINDS`].
    Kind,
    /// A table (only at the top level).
    Table,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub name: &'static str,
    pub ty: Type,
    pub required: bool,
}

const fn key(name: &'static str, ty: Type, required: bool) -> Key {
    Key { name, ty, required }
}

/// The top level.
pub(crate) const TOP: &[Key] = &[
    key("cpu", Type::Table, false),
    key("dispatchers", Type::Table, false),
    key("max_threads", Type::Count, false),
];

/// `[cpu]`.
pub(crate) const CPU: &[Key] = &[
    key("threads", Type::Count, false),
    key("blocking_threads", Type::Count, false),
];

/// `[dispatchers.<name>]`, by kind.
pub(crate) const KINDS: &[(&str, &[Key])] = &[
    (
        "blocking",
        &[
            key("kind", Type::Kind, true),
            key("threads", Type::Count, true),
            key("queue", Type::Count, false),
            key("max_wait", Type::Duration, false),
            key("queue_deadline", Type::Duration, false),
        ],
    ),
    (
        "limited",
        &[
            key("kind", Type::Kind, true),
            key("base", Type::Name, true),
            key("parallelism", Type::Count, true),
            key("max_concurrent", Type::Count, false),
            key("queue", Type::Count, false),
            key("max_wait", Type::Duration, false),
            key("queue_deadline", Type::Duration, false),
        ],
    ),
    (
        "runtime",
        &[
            key("kind", Type::Kind, true),
            key("workers", Type::Count, true),
            key("blocking_threads", Type::Count, false),
            key("max_concurrent", Type::Count, false),
            key("queue", Type::Count, false),
            key("max_wait", Type::Duration, false),
            key("queue_deadline", Type::Duration, false),
        ],
    ),
];

/// The keys of a dispatcher kind.
pub(crate) fn kind(name: &str) -> Option<&'static [Key]> {
    KINDS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, keys)| *keys)
}

pub(crate) fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

pub(crate) fn names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|k| k.name).collect()
}
