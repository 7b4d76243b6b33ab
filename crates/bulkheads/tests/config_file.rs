//! Dispatchers declared in a TOML file: exact messages for representative mistakes, every
//! problem at once with positions, environment overrides, embedding, and a round trip through
//! the example file.

use std::time::Duration;

use bulkheads::{Config, ConfigError, DispatcherSection, Dispatchers};

fn messages(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Err(ConfigError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(c) => panic!("expected an error, got {c:?}"),
    }
}

fn build_messages(text: &str) -> Vec<String> {
    match Dispatchers::from_toml_str(text) {
        Err(ConfigError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn an_unknown_key_suggests_the_nearest_valid_one() {
    assert_eq!(
        messages("[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 4\nqeue = 8\n"),
        [
            "dispatchers.legacy_db.qeue (line 4, column 1): unknown key 'qeue' in dispatchers.legacy_db; did you mean 'queue'? valid keys: kind, threads, queue, max_wait, queue_deadline"
        ]
    );
    assert_eq!(
        messages("[cpus]\nthreads = 2\n"),
        [
            "cpus (line 1, column 2): unknown key 'cpus' in the top level; did you mean 'cpu'? valid keys: cpu, dispatchers, max_threads"
        ]
    );
}

#[test]
fn wrong_types_negative_and_huge_numbers_are_named() {
    assert_eq!(
        messages(concat!(
            "[dispatchers.a]\nkind = \"blocking\"\nthreads = \"four\"\n",
            "[dispatchers.b]\nkind = \"blocking\"\nthreads = -3\n",
            "[dispatchers.c]\nkind = \"blocking\"\nthreads = 99999999999999999999999\n",
            "[dispatchers.d]\nkind = \"runtime\"\nworkers = 1.5\n",
        )),
        [
            "dispatchers.a.threads (line 3, column 11): expected a whole number between 1 and 4096, got the string \"four\"",
            "dispatchers.b.threads (line 6, column 11): must be between 1 and 4096, got -3",
            "dispatchers.c.threads (line 9, column 11): must be between 1 and 4096, got 99999999999999999999999",
            "dispatchers.d.workers (line 12, column 11): expected a whole number between 1 and 1024, got a float",
        ]
    );
}

#[test]
fn ranges_are_checked_with_positions() {
    assert_eq!(
        build_messages("[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 0\n"),
        ["dispatchers.legacy_db.threads (line 3, column 11): must be between 1 and 4096, got 0"]
    );
}

#[test]
fn unknown_kinds_and_missing_keys() {
    assert_eq!(
        messages(concat!(
            "[dispatchers.a]\nkind = \"blockng\"\n",
            "[dispatchers.b]\nthreads = 2\n",
            "[dispatchers.c]\nkind = \"limited\"\n",
        )),
        [
            "dispatchers.a.kind (line 2, column 8): unknown kind 'blockng'; did you mean 'blocking'? valid kinds: blocking, limited, runtime",
            "dispatchers.b (line 3, column 14): missing key 'kind'; valid kinds: blocking, limited, runtime",
            "dispatchers.c (line 5, column 14): missing key 'base' in dispatchers.c; write base = \"cpu\", \"main\" or another dispatcher's name",
            "dispatchers.c (line 5, column 14): missing key 'parallelism' in dispatchers.c; a whole number between 1 and 4096",
        ]
    );
}

#[test]
fn durations_are_human_strings() {
    assert_eq!(
        messages("[dispatchers.a]\nkind = \"blocking\"\nthreads = 1\nmax_wait = \"5 parsecs\"\n"),
        [
            "dispatchers.a.max_wait (line 4, column 12): invalid duration '5 parsecs': unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations); write a number and a unit, such as \"50ms\" or \"2s\""
        ]
    );
    assert_eq!(
        messages("[dispatchers.a]\nkind = \"blocking\"\nthreads = 1\nmax_wait = 50\n"),
        [
            "dispatchers.a.max_wait (line 4, column 12): expected a duration string such as \"50ms\" or \"2s\", got the integer 50"
        ]
    );
    let c = Config::from_toml_str(
        "[dispatchers.a]\nkind = \"blocking\"\nthreads = 1\nmax_wait = \"1s 500ms\"\n",
    )
    .unwrap();
    let DispatcherSection::Blocking(a) = &c.dispatchers["a"] else {
        panic!()
    };
    assert_eq!(a.max_wait, Some(Duration::from_millis(1500)));
    assert_eq!(
        build_messages("[dispatchers.a]\nkind = \"blocking\"\nthreads = 1\nmax_wait = \"2h\"\n"),
        ["dispatchers.a.max_wait (line 4, column 12): must be at most 1h, got 2h"]
    );
}

#[test]
fn syntax_errors_duplicate_tables_and_empty_files() {
    let dup = messages(
        "[dispatchers.a]\nkind = \"blocking\"\nthreads = 1\n[dispatchers.a]\nkind = \"runtime\"\n",
    );
    assert_eq!(
        dup,
        [
            "line 4, column 14: duplicate key in `[dispatchers.a]`",
            "line 5, column 1: duplicate key in `kind = \"runtime\"`"
        ]
    );
    assert_eq!(
        messages(""),
        ["the configuration is empty: declare [cpu] or at least one [dispatchers.<name>] table"]
    );
    let broken = messages("[dispatchers.a\nkind = ");
    assert!(
        !broken.is_empty() && broken.iter().all(|m| m.starts_with("line ")),
        "{broken:?}"
    );
}

#[test]
fn a_view_naming_itself_and_unknown_bases_are_located() {
    assert_eq!(
        build_messages(
            "[dispatchers.loop]\nkind = \"limited\"\nbase = \"loop\"\nparallelism = 1\n"
        ),
        [
            "dispatchers.loop.base (line 3, column 8): views form a cycle: loop -> loop; a view's base must lead to cpu, main, a blocking pool or a runtime"
        ]
    );
    assert_eq!(
        build_messages(
            "[dispatchers.v]\nkind = \"limited\"\nbase = \"legacy\"\nparallelism = 1\n[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 1\n"
        ),
        [
            "dispatchers.v.base (line 3, column 8): unknown base 'legacy'; did you mean 'legacy_db'? valid bases: cpu, main, legacy_db"
        ]
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let all = build_messages(concat!(
        "[cpu]\nthreads = 0\n",
        "[dispatchers.db]\nkind = \"blocking\"\nthreads = 5000\nqueue = 10\n",
        "[dispatchers.v]\nkind = \"limited\"\nbase = \"cpu\"\nparallelism = 0\nqueue = 5\n",
    ));
    assert_eq!(
        all,
        [
            "cpu.threads (line 2, column 11): must be between 1 and 1024, got 0",
            "dispatchers.db.threads (line 5, column 11): must be between 1 and 4096, got 5000",
            "dispatchers.v.parallelism (line 10, column 15): must be between 1 and 4096, got 0",
            "dispatchers.v.queue (line 11, column 9): needs max_concurrent: the queue holds tasks admitted beyond the in-flight cap",
        ]
    );
}

#[test]
fn environment_overrides_apply_on_top_and_name_the_variable() {
    let text = "[dispatchers.legacy-db]\nkind = \"blocking\"\nthreads = 4\n";
    let mut c = Config::from_toml_str(text).unwrap();
    c.apply_env_from([
        ("BULKHEADS__LEGACY_DB__THREADS".to_owned(), "32".to_owned()),
        (
            "BULKHEADS__LEGACY_DB__MAX_WAIT".to_owned(),
            "25ms".to_owned(),
        ),
        ("BULKHEADS__CPU__THREADS".to_owned(), "3".to_owned()),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ])
    .unwrap();
    let DispatcherSection::Blocking(db) = &c.dispatchers["legacy-db"] else {
        panic!()
    };
    assert_eq!(
        (db.threads, db.max_wait),
        (32, Some(Duration::from_millis(25)))
    );
    assert_eq!(c.cpu.threads, Some(3));

    let mut c = Config::from_toml_str(text).unwrap();
    let err = c
        .apply_env_from([
            ("BULKHEADS__LEGACY_DB__THREDS".to_owned(), "8".to_owned()),
            ("BULKHEADS__NOPE__THREADS".to_owned(), "8".to_owned()),
            (
                "BULKHEADS__LEGACY_DB__MAX_WAIT".to_owned(),
                "soon".to_owned(),
            ),
        ])
        .unwrap_err();
    let msgs: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "BULKHEADS__NOPE__THREADS: no dispatcher named 'nope' to override; known: cpu, legacy-db",
            "dispatchers.legacy-db.threds: unknown key 'threds' in dispatchers.legacy-db; did you mean 'threads'? valid keys: kind, threads, queue, max_wait, queue_deadline (set by BULKHEADS__LEGACY_DB__THREDS)",
            "dispatchers.legacy-db.max_wait: invalid duration 'soon': expected number at 0; write a number and a unit, such as \"50ms\" or \"2s\" (set by BULKHEADS__LEGACY_DB__MAX_WAIT)",
        ]
    );
}

#[test]
fn the_config_embeds_in_a_service_config_through_serde() {
    #[derive(serde::Deserialize)]
    struct ServiceConfig {
        #[allow(dead_code)]
        listen: String,
        bulkheads: Config,
    }
    let service: ServiceConfig = toml::from_str(concat!(
        "listen = \"127.0.0.1:8080\"\n",
        "[bulkheads.cpu]\nthreads = 1\n",
        "[bulkheads.dispatchers.db]\nkind = \"blocking\"\nthreads = 2\nmax_wait = \"20ms\"\n",
    ))
    .unwrap();
    let d = Dispatchers::from_config(&service.bulkheads).unwrap();
    assert_eq!(d.get("db").unwrap().stats().threads, 2);
    // And back: serialising gives a document that reads the same.
    let text = toml::to_string(&service.bulkheads).unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), service.bulkheads);
}

#[tokio::test]
async fn the_example_file_loads_serves_every_dispatcher_and_shuts_down_cleanly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bulkheads.toml");
    let d = Dispatchers::from_toml_path(path).unwrap();
    let names: Vec<String> = d.iter().map(|x| x.name().to_owned()).collect();
    assert_eq!(
        names,
        [
            "cpu",
            "files",
            "legacy_db",
            "payments",
            "reports",
            "thumbnails"
        ]
    );
    for x in d.iter() {
        assert_eq!(x.run(async { 1 }).await.unwrap(), 1, "{}", x.name());
        assert_eq!(x.run_blocking(|| 2).await.unwrap(), 2, "{}", x.name());
    }
    let report = d.shutdown(Duration::from_secs(5)).await;
    assert!(!report.deadline_hit);
    assert_eq!(report.dispatchers.len(), 6);
    for line in &report.dispatchers {
        assert_eq!(
            (
                line.submitted,
                line.completed,
                line.cancelled,
                line.rejected,
                line.in_flight
            ),
            (2, 2, 0, 0, 0),
            "{line:?}"
        );
    }
    // Views first, then their bases, cpu last.
    let order: Vec<&str> = report.dispatchers.iter().map(|l| &*l.name).collect();
    let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
    assert!(pos("reports") < pos("legacy_db"));
    assert!(pos("thumbnails") < pos("cpu"));
    assert_eq!(order.last(), Some(&"cpu"));
}

#[test]
fn a_missing_file_names_its_path() {
    let err = Dispatchers::from_toml_path("/nonexistent/bulkheads.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("reading bulkheads configuration /nonexistent/bulkheads.toml: "),
        "{err}"
    );
}

#[test]
fn schema_and_range_problems_come_together_in_file_order() {
    let err = Config::from_toml_str(concat!(
        "[dispatchers.legacy_db]\nkind = \"blocking\"\nthreads = 0\nqeue = 4\n",
        "[dispatchers.thumbs]\nkind = \"limited\"\nbase = \"gpu\"\nparallelism = 2\n",
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid bulkheads configuration (3 problems):\n  \
         dispatchers.legacy_db.threads (line 3, column 11): must be between 1 and 4096, got 0\n  \
         dispatchers.legacy_db.qeue (line 4, column 1): unknown key 'qeue' in dispatchers.legacy_db; did you mean 'queue'? valid keys: kind, threads, queue, max_wait, queue_deadline\n  \
         dispatchers.thumbs.base (line 7, column 8): unknown base 'gpu'; did you mean 'cpu'? valid bases: cpu, main, legacy_db"
    );
}
