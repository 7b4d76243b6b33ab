//! Per-task async backtraces in dumps (the `await-tree` feature): each async task's tree, keyed
//! by its id, named after it, filled in by the awaits it marks, gone when it ends; blocking
//! work has none.
#![cfg(feature = "await-tree")]

mod common;

use bulkheads::await_tree::{InstrumentAwait, Registry, span};
use bulkheads::{BlockingConfig, Dispatchers, TaskDump, TaskId, TaskState};
use common::occupy;
use tokio::sync::oneshot;

fn registry() -> Dispatchers {
    Dispatchers::builder()
        .cpu_threads(1)
        .blocking("tree-pool", BlockingConfig::threads(1).queue(8))
        .build()
        .unwrap()
}

/// A round trip through the one cpu thread: every task spawned on cpu before it has been
/// polled.
async fn cpu_settles(d: &Dispatchers) {
    d.cpu().run(async {}).await.unwrap();
}

fn task_named(d: &Dispatchers, name: &str) -> TaskDump {
    d.dump()
        .tasks()
        .find(|t| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no task '{name}' in {}", d.dump()))
        .clone()
}

/// The tree the registry's await-tree registry holds for `id` now, read from inside a task
/// (where the registry is the current one).
async fn registered_tree(d: &Dispatchers, id: TaskId) -> Option<String> {
    d.cpu()
        .run(async move { Registry::current().get(id).map(|t| t.to_string()) })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_parked_task_shows_the_await_it_is_parked_on() {
    let d = registry();
    let (reply_tx, reply_rx) = oneshot::channel::<u32>();
    let task = d.cpu().task("fetch-user").spawn(async move {
        async { reply_rx.instrument_await("waiting for the reply").await }
            .instrument_await("fetching")
            .await
    });
    cpu_settles(&d).await;

    let t = task_named(&d, "fetch-user");
    assert_eq!(t.state, TaskState::Idle);
    let tree = t.await_tree.as_deref().expect("an async task has a tree");
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert!(
        lines[0].starts_with("fetch-user ["),
        "root names the task: {tree}"
    );
    assert!(lines[1].starts_with("  fetching ["), "{tree}");
    assert!(
        lines[2].starts_with("    waiting for the reply ["),
        "{tree}"
    );
    assert!(!tree.ends_with('\n'));

    // The dump's text shows the tree under the task's line, indented.
    let text = d.dump().to_string();
    let at = text.find("'fetch-user' idle at an await").unwrap();
    let mut below = text[at..].lines().skip(1);
    assert!(
        below.next().unwrap().starts_with("      fetch-user ["),
        "{text}"
    );
    assert!(
        below.next().unwrap().starts_with("        fetching ["),
        "{text}"
    );
    assert!(
        below
            .next()
            .unwrap()
            .starts_with("          waiting for the reply ["),
        "{text}"
    );

    #[cfg(feature = "serde")]
    {
        let json = d.dump().to_json();
        assert!(json.contains("\"await_tree\": \"fetch-user ["), "{json}");
        assert!(json.contains("\\n    waiting for the reply ["), "{json}");
    }

    reply_tx.send(7).unwrap();
    assert_eq!(task.await.unwrap(), Ok(7));
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn tasks_from_one_spawn_site_each_have_their_own_tree() {
    let d = registry();
    let cpu = d.cpu();
    let mut replies = Vec::new();
    let mut handles = Vec::new();
    for i in 0..3 {
        let (tx, rx) = oneshot::channel::<()>();
        replies.push(tx);
        handles.push(cpu.spawn(async move {
            let _ = rx.instrument_await(span!("reply {i}")).await;
        }));
    }
    cpu_settles(&d).await;

    let dump = d.dump();
    for (i, h) in handles.iter().enumerate() {
        let t = dump.tasks().find(|t| t.id == h.id()).unwrap();
        let tree = t.await_tree.as_deref().unwrap();
        assert!(
            tree.starts_with(&format!("task {} [", h.id())),
            "an unnamed task's root is its id: {tree}"
        );
        for j in 0..3 {
            assert_eq!(
                tree.contains(&format!("reply {j} [")),
                i == j,
                "task {i} shows only its own await: {tree}"
            );
        }
    }
    drop(replies);
    for h in handles {
        h.await.unwrap();
    }
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn a_finished_task_leaves_no_tree() {
    let d = registry();
    let cpu = d.cpu();
    let (tx, rx) = oneshot::channel::<()>();
    let done = cpu.spawn(async move {
        let _ = rx.instrument_await("waiting").await;
    });
    let (_keep, never) = oneshot::channel::<()>();
    let aborted = cpu.spawn(async move {
        let _ = never.instrument_await("never answered").await;
    });
    cpu_settles(&d).await;
    let (done_id, aborted_id) = (done.id(), aborted.id());
    assert!(
        registered_tree(&d, done_id)
            .await
            .unwrap()
            .contains("waiting [")
    );
    assert!(
        registered_tree(&d, aborted_id)
            .await
            .unwrap()
            .contains("never answered [")
    );

    tx.send(()).unwrap();
    done.await.unwrap();
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    // The runner drops the work (and its tree root) before the result is published.
    assert_eq!(registered_tree(&d, done_id).await, None);
    assert_eq!(registered_tree(&d, aborted_id).await, None);
    assert!(d.dump().tasks().all(|t| t.await_tree.is_none()));
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn blocking_work_has_no_tree_and_async_work_on_a_pool_has_one() {
    let d = registry();
    let cpu = d.cpu();
    let pool = d.get("tree-pool").unwrap();

    // A closure on cpu, and one holding the pool's thread.
    let (release_cpu, hold_cpu) = std::sync::mpsc::channel::<()>();
    let (cpu_started, started) = std::sync::mpsc::channel::<()>();
    let on_cpu = cpu.task("closure-on-cpu").spawn_blocking(move || {
        cpu_started.send(()).unwrap();
        hold_cpu.recv().unwrap();
    });
    started.recv().unwrap();
    let (gate, held) = occupy(&pool, 1);
    let dump = d.dump();
    let blocking: Vec<&TaskDump> = dump.tasks().filter(|t| t.blocking).collect();
    assert_eq!(blocking.len(), 2, "{dump}");
    for t in blocking {
        assert_eq!(t.state, TaskState::RunningBlocking);
        assert_eq!(t.await_tree, None, "{t}");
    }
    release_cpu.send(()).unwrap();
    on_cpu.await.unwrap();
    gate.open();
    for h in held {
        h.await.unwrap();
    }

    // Async work pinned to the pool runs in its tree on the pool's thread; the signal is sent
    // from inside the marked future, so the span is in the tree by then.
    let (reply_tx, reply_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let on_pool = pool.task("future-on-pool").spawn(async move {
        async move {
            started_tx.send(()).unwrap();
            let _ = reply_rx.await;
        }
        .instrument_await("pool wait")
        .await
    });
    started_rx.await.unwrap();
    let t = task_named(&d, "future-on-pool");
    assert!(!t.blocking);
    let tree = t.await_tree.as_deref().unwrap();
    assert!(tree.starts_with("future-on-pool ["), "{tree}");
    assert!(tree.contains("\n  pool wait ["), "{tree}");
    reply_tx.send(()).unwrap();
    on_pool.await.unwrap();
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn work_run_inline_or_here_has_its_own_tree_not_its_callers() {
    let d = registry();
    let pool = d.get("tree-pool").unwrap();
    let (inner_tx, inner_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    // A job on the pool's one thread running more work on the same pool: inline.
    let inner_pool = pool.clone();
    let outer = pool.task("outer").spawn(async move {
        inner_pool
            .task("inner")
            .run(
                async move {
                    started_tx.send(()).unwrap();
                    let _ = inner_rx.await;
                }
                .instrument_await("inner wait"),
            )
            .instrument_await("running inner")
            .await
            .unwrap()
    });
    started_rx.await.unwrap();
    let outer_tree = task_named(&d, "outer").await_tree.unwrap();
    let inner_tree = task_named(&d, "inner").await_tree.unwrap();
    assert!(outer_tree.contains("\n  running inner ["), "{outer_tree}");
    assert!(!outer_tree.contains("inner wait"), "{outer_tree}");
    assert!(inner_tree.starts_with("inner ["), "{inner_tree}");
    assert!(inner_tree.contains("\n  inner wait ["), "{inner_tree}");
    assert!(!inner_tree.contains("running inner"), "{inner_tree}");
    inner_tx.send(()).unwrap();
    outer.await.unwrap();

    // `run_here`: the work runs in the caller's task, in a tree of its own.
    let (here_tx, here_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let slot = d.cpu().try_reserve().unwrap().named("here");
    let here = tokio::spawn(
        slot.run_here(
            async move {
                started_tx.send(()).unwrap();
                let _ = here_rx.await;
            }
            .instrument_await("here wait"),
        ),
    );
    started_rx.await.unwrap();
    let tree = task_named(&d, "here").await_tree.unwrap();
    assert!(tree.starts_with("here ["), "{tree}");
    assert!(tree.contains("\n  here wait ["), "{tree}");
    here_tx.send(()).unwrap();
    here.await.unwrap().unwrap();
    bulkheads::testing::assert_no_leaks(&d).await;
}
