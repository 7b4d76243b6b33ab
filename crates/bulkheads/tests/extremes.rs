//! Edges of the API and of the configuration: extreme deadlines, ad-hoc views that are gone
//! by shutdown, environment overrides that do not fit the simple case, limits that a single
//! key's range does not catch, and a parallelism of zero.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bulkheads::{BlockingConfig, Config, DispatcherSection, Dispatchers};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// `shutdown(Duration::MAX)` ("wait as long as it takes") does not panic, and with nothing in
/// flight returns at once (today computing the deadline overflows `Instant`).
#[tokio::test]
async fn shutdown_with_an_unbounded_deadline_does_not_panic() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("ext-max", BlockingConfig::threads(1))
        .build()
        .unwrap();
    // On a task of its own, so that a panic shows as a failed join instead of ending the test.
    let shutdown = tokio::spawn(async move { d.shutdown(Duration::MAX).await });
    let joined = tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown(Duration::MAX) with nothing in flight did not return within 5 s");
    let report = match joined {
        Ok(report) => report,
        Err(e) if e.is_panic() => panic!(
            "shutdown(Duration::MAX) panicked: {}",
            panic_text(&*e.into_panic())
        ),
        Err(e) => panic!("{e}"),
    };
    assert!(!report.deadline_hit, "{report}");
}

/// The shutdown report keeps the lifetime counts of an ad-hoc view whose every handle was
/// dropped before shutdown (today the view is forgotten with its last handle).
#[tokio::test]
async fn the_shutdown_report_keeps_the_counts_of_a_dropped_ad_hoc_view() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let view = d.cpu().limited(2);
    assert_eq!(view.name(), "cpu.limited(2)");
    for i in 0..3 {
        assert_eq!(view.run(async move { i }).await.unwrap(), i);
    }
    drop(view);
    // The cpu pool's only worker ran the view's tasks; a round trip through it makes sure the
    // view's worker has let go of the last task (and with it the view) as it would long
    // before a real shutdown.
    d.cpu().run(async {}).await.unwrap();
    let report = d.shutdown(Duration::from_secs(5)).await;
    let line = report.dispatcher("cpu.limited(2)").unwrap_or_else(|| {
        panic!(
            "the report lost the ad-hoc view 'cpu.limited(2)' whose handle was dropped:\n{report}"
        )
    });
    assert_eq!(
        (line.submitted, line.completed, line.in_flight),
        (3, 3, 0),
        "{report}"
    );
}

const DB: &str = "[dispatchers.db]\nkind = \"blocking\"\nthreads = 4\n";

/// An environment override out of range is reported by `apply_env_from` itself, naming the
/// variable and the valid range (today it passes, and only the build reports it, without the
/// variable).
#[test]
fn an_out_of_range_env_override_names_its_variable() {
    let mut config = Config::from_toml_str(DB).unwrap();
    let applied = config.apply_env_from(env(&[("BULKHEADS__DB__THREADS", "0")]));
    let err = match applied {
        Err(e) => e,
        Ok(()) => {
            let build = Dispatchers::from_config(&config).map(drop);
            panic!(
                "apply_env_from accepted BULKHEADS__DB__THREADS=0; the build then said: {build:?}"
            )
        }
    };
    let msg = err.to_string();
    assert!(msg.contains("BULKHEADS__DB__THREADS"), "{msg}");
    assert!(msg.contains("between 1 and 4096"), "{msg}");
}

/// Two dispatchers whose names map to the same variable name (`legacy-db`, `legacy_db`): an
/// override of that name is ambiguous and is an error naming both (today the first one
/// silently takes it).
#[test]
fn an_env_override_matching_two_dispatchers_is_an_error_naming_both() {
    let mut config = Config::from_toml_str(
        "[dispatchers.legacy-db]\nkind = \"blocking\"\nthreads = 1\n\n\
         [dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 1\n",
    )
    .unwrap();
    let applied = config.apply_env_from(env(&[("BULKHEADS__LEGACY_DB__THREADS", "3")]));
    let err = match applied {
        Err(e) => e,
        Ok(()) => {
            let threads: Vec<_> = config
                .dispatchers
                .iter()
                .map(|(name, s)| match s {
                    DispatcherSection::Blocking(b) => (name.clone(), b.threads),
                    _ => unreachable!(),
                })
                .collect();
            panic!("an ambiguous override was accepted; threads now: {threads:?}")
        }
    };
    let msg = err.to_string();
    assert!(msg.contains("BULKHEADS__LEGACY_DB__THREADS"), "{msg}");
    assert!(
        msg.contains("legacy-db") && msg.contains("legacy_db"),
        "{msg}"
    );
}

/// A dispatcher whose name contains `__` can be overridden: the key is the variable's last
/// `__` segment (today the name is cut at the first `__` and no such dispatcher is found).
#[test]
fn a_dispatcher_named_with_a_double_underscore_can_be_overridden() {
    let mut config =
        Config::from_toml_str("[dispatchers.a__b]\nkind = \"blocking\"\nthreads = 1\n").unwrap();
    config
        .apply_env_from(env(&[("BULKHEADS__A__B__THREADS", "3")]))
        .unwrap_or_else(|e| panic!("the override of a__b was refused: {e}"));
    let DispatcherSection::Blocking(ab) = &config.dispatchers["a__b"] else {
        panic!("a__b is a blocking pool");
    };
    assert_eq!(ab.threads, 3);
}

/// Four pools of 4096 threads each are each within range, but 16384 threads in one registry is
/// refused at validation, naming the thread total (today `check` accepts it; `build` would
/// start them all).
#[test]
fn a_registry_wide_thread_budget_is_enforced_at_validation() {
    let checked = ["a", "b", "c", "d"]
        .into_iter()
        .fold(Dispatchers::builder(), |b, name| {
            b.blocking(name, BlockingConfig::threads(BlockingConfig::MAX_THREADS))
        })
        .check();
    let err = checked.expect_err("four pools of 4096 threads were accepted");
    let msg = err.to_string();
    assert!(msg.contains("thread"), "{msg}");
}

/// `limited(0)` is refused with a panic naming the parallelism and the 0 (today it silently
/// becomes 1).
#[test]
fn a_view_of_parallelism_zero_is_refused() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let made = catch_unwind(AssertUnwindSafe(|| d.cpu().limited(0)));
    let payload = match made {
        Err(payload) => payload,
        Ok(view) => panic!(
            "limited(0) was accepted and made {:?} of parallelism {:?}",
            view.name(),
            view.stats().parallelism
        ),
    };
    let msg = panic_text(&*payload);
    assert!(msg.contains("parallelism") && msg.contains('0'), "{msg}");
}

/// `try_limited` refuses what `limited` panics on, with the message a configuration gets.
#[test]
fn try_limited_refuses_out_of_range_parallelism_with_a_config_error() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    let err = d.cpu().try_limited(0).unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "cpu.limited(0): parallelism must be between 1 and 4096, got 0"
    );
    assert!(d.cpu().try_limited(5000).is_err());
    assert_eq!(d.cpu().try_limited(3).unwrap().name(), "cpu.limited(3)");
}

/// Dropped ad-hoc views with the same name are merged into one line of the report, next to a
/// live one of that name.
#[tokio::test]
async fn dropped_and_live_views_of_one_name_share_one_report_line() {
    let d = Dispatchers::builder().cpu_threads(1).build().unwrap();
    for _ in 0..2 {
        let v = d.cpu().limited(1);
        v.run(async {}).await.unwrap();
    }
    let live = d.cpu().limited(1);
    live.run(async {}).await.unwrap();
    let report = d.shutdown(Duration::from_secs(1)).await;
    let lines: Vec<_> = report
        .dispatchers
        .iter()
        .filter(|l| &*l.name == "cpu.limited(1)")
        .collect();
    assert_eq!(lines.len(), 1, "{report}");
    assert_eq!((lines[0].submitted, lines[0].completed), (3, 3), "{report}");
}

/// A thread budget can be raised or lowered, in code and in a file, and its message names
/// the total and every part.
#[test]
fn the_thread_budget_is_configurable_and_names_its_parts() {
    let err = Dispatchers::builder()
        .cpu_threads(2)
        .cpu_blocking_threads(4)
        .max_threads(20)
        .blocking("a", BlockingConfig::threads(8))
        .check()
        .unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "max_threads: the registry would start 23 threads (control 9, cpu 6, a 8), more than max_threads 20; use fewer threads or raise max_threads (at most 1048576)"
    );
    let err = Config::from_toml_str("max_threads = 10\n[cpu]\nthreads = 2\n").unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "max_threads (line 1, column 15): the registry would start 27 threads (control 9, cpu 18), more than max_threads 10; use fewer threads or raise max_threads (at most 1048576)"
    );
    // Four pools of 4096 threads pass with a budget that covers them.
    let ok = ["a", "b", "c", "d"]
        .into_iter()
        .fold(Dispatchers::builder().max_threads(20_000), |b, name| {
            b.blocking(name, BlockingConfig::threads(4096))
        })
        .check();
    assert!(ok.is_ok(), "{ok:?}");
}

/// `BULKHEADS__MAX_THREADS` overrides the top-level key; a variable that fits no pattern is a
/// problem naming it.
#[test]
fn the_top_level_key_can_be_overridden_and_bad_names_are_reported() {
    let mut config = Config::from_toml_str("[cpu]\nthreads = 1\n").unwrap();
    config
        .apply_env_from(env(&[("BULKHEADS__MAX_THREADS", "100")]))
        .unwrap();
    assert_eq!(config.max_threads, Some(100));
    let err = config
        .apply_env_from(env(&[("BULKHEADS__THREADS", "3")]))
        .unwrap_err();
    assert_eq!(
        err.problems()[0].to_string(),
        "BULKHEADS__THREADS: expected BULKHEADS__<NAME>__<KEY>, such as BULKHEADS__LEGACY_DB__THREADS, or BULKHEADS__MAX_THREADS"
    );
}

#[cfg(unix)]
mod non_utf8 {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use bulkheads::Config;

    fn os(bytes: &[u8]) -> OsString {
        OsString::from_vec(bytes.to_vec())
    }

    /// Variables that are not ours are ignored whatever they hold, even when they are not
    /// UTF-8; ours are reported, naming the variable.
    #[test]
    fn non_utf8_variables_are_ignored_unless_they_are_ours() {
        let mut config =
            Config::from_toml_str("[dispatchers.db]\nkind = \"blocking\"\nthreads = 1\n").unwrap();
        config
            .apply_env_from_os([
                (os(b"LANG\xff"), os(b"C")),
                (os(b"HOME"), os(b"/home/\xfe")),
                (os(b"BULKHEADS__DB__THREADS"), os(b"2")),
            ])
            .unwrap();
        let bulkheads::DispatcherSection::Blocking(db) = &config.dispatchers["db"] else {
            panic!("db is a pool")
        };
        assert_eq!(db.threads, 2);

        let err = config
            .apply_env_from_os([
                (os(b"BULKHEADS__DB__THREADS"), os(b"\xff")),
                (os(b"BULKHEADS__DB\xff__QUEUE"), os(b"1")),
            ])
            .unwrap_err();
        let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "BULKHEADS__DB__THREADS: its value is not valid UTF-8",
                "BULKHEADS__DB\u{fffd}__QUEUE: the variable's name is not valid UTF-8",
            ]
        );
    }
}

/// The errors of environment overrides: the range quoted for a value of the wrong type is the
/// key's own (`cpu.threads` is a runtime's worker count, not a pool's threads), problems caused
/// by a variable that changed a dispatcher's kind name that variable, and a dispatcher's name
/// is matched in a variable whatever its case, as the key is.
#[test]
fn env_override_errors_quote_the_keys_range_and_the_variable_that_caused_them() {
    let messages = |pairs: &[(&str, &str)]| -> Vec<String> {
        let mut config = Config::from_toml_str(DB).unwrap();
        match config.apply_env_from(env(pairs)) {
            Err(bulkheads::ConfigError::Invalid(problems)) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("{pairs:?}: expected problems, got {other:?}"),
        }
    };
    assert_eq!(
        messages(&[("BULKHEADS__CPU__THREADS", "x")]),
        [
            "cpu.threads: expected a whole number between 1 and 1024, got the string \"x\" (set by BULKHEADS__CPU__THREADS)"
        ]
    );
    for problem in messages(&[("BULKHEADS__DB__KIND", "runtime")]) {
        assert!(
            problem.ends_with("(after BULKHEADS__DB__KIND changed its kind)"),
            "{problem}"
        );
    }
    let mut config = Config::from_toml_str(DB).unwrap();
    config
        .apply_env_from(env(&[("BULKHEADS__db__threads", "3")]))
        .unwrap();
    let DispatcherSection::Blocking(db) = &config.dispatchers["db"] else {
        panic!("db is a blocking pool")
    };
    assert_eq!(db.threads, 3);
}
