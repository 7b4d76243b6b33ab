//! Bad input gets a clear error naming the key and what would be valid; all at once.

use bulkheads::{BlockingConfig, ConfigError, Dispatchers, RuntimeConfig};

fn problems(b: bulkheads::DispatchersBuilder) -> Vec<String> {
    match b.build() {
        Err(ConfigError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn zero_threads_names_the_key_and_the_range() {
    assert_eq!(
        problems(Dispatchers::builder().blocking("legacy_db", BlockingConfig::threads(0))),
        ["dispatchers.legacy_db.threads: must be between 1 and 4096, got 0"]
    );
}

#[test]
fn too_many_threads_is_rejected() {
    assert_eq!(
        problems(Dispatchers::builder().blocking("big", BlockingConfig::threads(5000))),
        ["dispatchers.big.threads: must be between 1 and 4096, got 5000"]
    );
}

#[test]
fn duplicate_names_are_rejected() {
    assert_eq!(
        problems(
            Dispatchers::builder()
                .blocking("db", BlockingConfig::threads(1))
                .runtime("db", RuntimeConfig::workers(1))
        ),
        ["dispatchers.db: dispatcher 'db' is declared twice; names must be unique"]
    );
}

#[test]
fn names_are_checked() {
    assert_eq!(
        problems(Dispatchers::builder().blocking("Legacy DB", BlockingConfig::threads(1))),
        [
            "dispatchers.Legacy DB: invalid character 'L' in dispatcher name 'Legacy DB'; use a-z, 0-9, '_' and '-'"
        ]
    );
    assert_eq!(
        problems(Dispatchers::builder().runtime("cpu", RuntimeConfig::workers(1))),
        [
            "dispatchers.cpu: 'cpu' is reserved (the shared cpu pool, the current runtime); choose another name"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Dispatchers::builder()
        .cpu_threads(0)
        .blocking("a", BlockingConfig::threads(0))
        .runtime("b", RuntimeConfig::workers(0))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid bulkheads configuration (3 problems):\n  \
         cpu.threads: must be between 1 and 1024, got 0\n  \
         dispatchers.a.threads: must be between 1 and 4096, got 0\n  \
         dispatchers.b.workers: must be between 1 and 1024, got 0"
    );
    assert_eq!(err.problems().len(), 3);
}

#[tokio::test]
async fn builds_inside_a_runtime_too() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("inside", BlockingConfig::threads(1))
        .build()
        .unwrap();
    assert_eq!(
        d.get("inside").unwrap().run_blocking(|| 1).await.unwrap(),
        1
    );
}

#[test]
fn view_problems_name_the_key_and_what_is_valid() {
    use bulkheads::LimitedConfig;
    assert_eq!(
        problems(Dispatchers::builder().limited("thumbs", "cpu", 0)),
        ["dispatchers.thumbs.parallelism: must be between 1 and 4096, got 0"]
    );
    assert_eq!(
        problems(
            Dispatchers::builder()
                .blocking("db", BlockingConfig::threads(1))
                .limited("thumbs", "gpu", 2)
        ),
        [
            "dispatchers.thumbs.base: unknown base 'gpu'; did you mean 'cpu'? valid bases: cpu, main, db"
        ]
    );
    assert_eq!(
        problems(Dispatchers::builder().limited("thumbs", "storage", 2)),
        ["dispatchers.thumbs.base: unknown base 'storage'; valid bases: cpu, main"]
    );
    assert_eq!(
        problems(Dispatchers::builder().limited("selfish", "selfish", 1)),
        [
            "dispatchers.selfish.base: views form a cycle: selfish -> selfish; a view's base must lead to cpu, main, a blocking pool or a runtime"
        ]
    );
    assert_eq!(
        problems(
            Dispatchers::builder()
                .limited("b", "a", 1)
                .limited("a", "b", 1)
                .limited("c", "a", 1)
        ),
        [
            "dispatchers.a.base: views form a cycle: a -> b -> a; a view's base must lead to cpu, main, a blocking pool or a runtime"
        ]
    );
    assert_eq!(
        problems(Dispatchers::builder().limited(
            "q",
            "cpu",
            LimitedConfig::parallelism(1).queue(10)
        )),
        [
            "dispatchers.q.queue: needs max_concurrent: the queue holds tasks admitted beyond the in-flight cap"
        ]
    );
    assert_eq!(
        problems(Dispatchers::builder().runtime("rt", RuntimeConfig::workers(0))),
        ["dispatchers.rt.workers: must be between 1 and 1024, got 0"]
    );
}

#[test]
fn a_view_over_main_needs_a_current_runtime() {
    assert_eq!(
        problems(Dispatchers::builder().limited("m", "main", 1)),
        [
            "dispatchers.m.base: 'main' is the Tokio runtime current when the registry is built, and there is none: build inside a runtime, or use 'cpu'"
        ]
    );
}
