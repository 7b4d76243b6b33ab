//! Live dumps and their suspects: ghosts, zombies, long blocking jobs, children that outlived
//! their scope; `testing::assert_no_leaks`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bulkheads::{BlockingConfig, Dispatchers, SuspectReason, TaskState};
use common::{Gate, occupy};

fn registry() -> Dispatchers {
    Dispatchers::builder()
        .cpu_threads(1)
        .blocking("dump-pool", BlockingConfig::threads(2).queue(8))
        .build()
        .unwrap()
}

/// A round trip through the one cpu thread: every task spawned on cpu before it has been
/// polled (cpu tasks spawned from outside run in order).
async fn cpu_settles(d: &Dispatchers) {
    d.cpu().run(async {}).await.unwrap();
}

#[tokio::test]
async fn a_detached_parked_task_becomes_a_ghost_after_the_threshold() {
    let d = registry();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(d.cpu().task("forgotten").spawn(async move {
        let _ = rx.await;
    }));
    cpu_settles(&d).await;
    let dump = d.dump();
    let t = dump
        .tasks()
        .find(|t| t.name.as_deref() == Some("forgotten"))
        .unwrap();
    assert_eq!(t.state, TaskState::Idle);
    assert!(t.detached);
    assert_eq!(t.polls, 1);
    assert!(dump.suspects(Duration::from_secs(60)).is_empty(), "not yet");
    // Time passing is what is tested here, not synchronisation.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let suspects = d.dump().suspects(Duration::from_millis(20));
    assert_eq!(suspects.len(), 1, "{suspects:?}");
    assert_eq!(suspects[0].reason, SuspectReason::DetachedIdle);
    let line = suspects[0].to_string();
    assert!(
        line.starts_with("ghost: detached and idle at an await for "),
        "{line}"
    );
    assert!(line.contains("on dispatcher 'cpu': #"), "{line}");
    assert!(line.contains("'forgotten' idle at an await"), "{line}");
    assert!(line.contains("dumps.rs"), "{line}");
    drop(tx);
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn a_task_cancelled_in_blocking_code_is_a_zombie_until_it_returns() {
    let d = registry();
    let pool = d.get("dump-pool").unwrap();
    let (gate, mut held) = occupy(&pool, 1);
    let stuck = held.remove(0);
    let dump = d.dump();
    let t = dump.dispatcher("dump-pool").unwrap().tasks[0].clone();
    assert_eq!(t.state, TaskState::RunningBlocking);
    assert!(t.blocking);
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    let dump = d.dump();
    let pool_dump = dump.dispatcher("dump-pool").unwrap();
    assert_eq!(pool_dump.tasks.len(), 1, "still running: still in the dump");
    assert_eq!(pool_dump.tasks[0].state, TaskState::Abandoned);
    assert!(
        pool_dump.tasks[0].cancel_requested,
        "abandoned: it was asked to stop"
    );
    let suspects = dump.suspects(Duration::from_secs(60));
    assert_eq!(suspects.len(), 1);
    assert_eq!(suspects[0].reason, SuspectReason::Zombie);
    assert!(
        dump.to_string().contains("1 abandoned still running"),
        "{dump}"
    );
    gate.open();
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn a_task_that_never_yields_is_shown_running() {
    let d = registry();
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let s = stop.clone();
    let spinner = d.cpu().task("spinner").spawn(async move {
        started_tx.send(()).unwrap();
        while !s.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    started_rx.recv().unwrap();
    let dump = d.dump();
    let t = dump
        .tasks()
        .find(|t| t.name.as_deref() == Some("spinner"))
        .unwrap();
    assert_eq!(
        t.state,
        TaskState::Running,
        "a busy task is running, never idle"
    );
    assert!(!t.blocking);
    assert!(dump.to_string().contains("1 running, 0 idle"), "{dump}");
    // The poll under way counts as busy, and a thread held that long is a suspect.
    assert_eq!(t.busy, t.since_last_poll.unwrap(), "{t:?}");
    let suspects = dump.suspects(Duration::ZERO);
    assert!(
        suspects
            .iter()
            .any(|s| s.reason == SuspectReason::LongPoll && s.task.id == t.id),
        "{suspects:?}"
    );
    assert!(
        suspects
            .iter()
            .map(|s| s.to_string())
            .any(|line| line.starts_with("long poll: in one poll for ")),
        "{suspects:?}"
    );
    assert!(dump.suspects(Duration::from_secs(3600)).is_empty());
    stop.store(true, Ordering::Relaxed);
    spinner.await.unwrap();
    assert!(d.dump().is_empty());
}

#[tokio::test]
async fn queued_tasks_and_scope_nesting_show_in_the_tree() {
    let d = registry();
    let pool = d.get("dump-pool").unwrap();
    let (gate, held) = occupy(&pool, 2);
    let queued = pool.task("queued-job").spawn_blocking(|| ());
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (dumped_tx, dumped_rx) = tokio::sync::oneshot::channel::<String>();
    let registry = Arc::new(d);
    let r = registry.clone();
    let scope = registry.scope(|s| async move {
        s.spawn(async move {
            let _ = release_rx.await;
            Ok::<_, String>(())
        });
        r.cpu().run(async {}).await.unwrap();
        dumped_tx.send(r.dump().to_string()).unwrap();
        Ok::<_, String>(())
    });
    let scope = tokio::spawn(scope);
    let text = dumped_rx.await.unwrap();
    assert!(text.starts_with("bulkheads dump: "), "{text}");
    assert!(
        text.contains("dispatcher 'dump-pool' (blocking, 2 threads): 2 running, 0 idle, 1 queued"),
        "{text}"
    );
    assert!(text.contains("'queued-job' queued, "), "{text}");
    let scope_line = text
        .lines()
        .find(|l| l.starts_with("  scope #"))
        .unwrap_or_else(|| panic!("{text}"));
    let child = text
        .lines()
        .skip_while(|l| *l != scope_line)
        .nth(1)
        .unwrap();
    assert!(
        child.starts_with("    #") && child.contains("idle at an await"),
        "{text}"
    );
    release_tx.send(()).unwrap();
    scope.await.unwrap().unwrap();
    gate.open();
    for h in held {
        h.await.unwrap();
    }
    queued.await.unwrap();
    bulkheads::testing::assert_no_leaks(&registry).await;
}

#[tokio::test]
async fn an_abandoned_blocking_child_is_seen_outliving_its_scope() {
    let d = registry();
    let pool = d.get("dump-pool").unwrap();
    let gate = Gate::new();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let g = gate.clone();
    let err = d
        .scope(|s| async move {
            let tx = started_tx.lock().unwrap().clone();
            s.spawn_blocking_on(&pool, move || {
                tx.send(()).unwrap();
                g.wait();
                Ok::<_, String>(())
            });
            tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
                .await
                .unwrap();
            Err::<(), _>("give up".to_owned())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("give up"), "{err}");
    let suspects = d.dump().suspects(Duration::from_secs(60));
    let reasons: Vec<_> = suspects.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [SuspectReason::Zombie, SuspectReason::OutlivedScope],
        "{suspects:?}"
    );
    gate.open();
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn assert_no_leaks_fails_with_the_dump() {
    common::quiet_panics("still alive");
    let d = Arc::new(registry());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(d.cpu().task("leaky").spawn(async move {
        let _ = rx.await;
    }));
    let r = d.clone();
    let checked = tokio::spawn(async move {
        bulkheads::testing::assert_no_leaks_within(&r, Duration::from_millis(20)).await
    })
    .await;
    let panic = checked.unwrap_err().into_panic();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(
        msg.starts_with("bulkheads: 1 task(s) still alive after 20ms:"),
        "{msg}"
    );
    assert!(msg.contains("'leaky' idle at an await"), "{msg}");
    drop(tx);
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[test]
fn dumps_taken_while_tasks_churn_neither_deadlock_nor_panic() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = Arc::new(registry());
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..2)
        .map(|_| {
            let (d, stop) = (d.clone(), stop.clone());
            rt.spawn(async move {
                let pool = d.get("dump-pool").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let a = d.cpu().spawn(async { tokio::task::yield_now().await });
                    let b = pool.spawn_blocking(|| ());
                    let c = d.cpu().limited(1).spawn(async {});
                    let _ = (a.await, b.await, c.await);
                }
            })
        })
        .collect();
    let mut seen = 0;
    for _ in 0..200 {
        let dump = d.dump();
        seen += dump.len();
        let _ = dump.to_string();
        let _ = dump.suspects(Duration::ZERO);
    }
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        rt.block_on(c).unwrap();
    }
    let _ = seen;
    rt.block_on(bulkheads::testing::assert_no_leaks(&d));
}

#[tokio::test]
async fn a_caller_waiting_for_room_shows_as_waiting_for_admission() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking(
            "narrow",
            BlockingConfig::threads(1)
                .queue(0)
                .max_wait(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    let narrow = d.get("narrow").unwrap();
    let (gate, held) = occupy(&narrow, 1);
    let caller = {
        let narrow = narrow.clone();
        tokio::spawn(async move { narrow.task("patient").run_blocking(|| 7).await })
    };
    while narrow.stats().waiting == 0 {
        tokio::task::yield_now().await;
    }
    let dump = d.dump();
    let waiting: Vec<_> = dump
        .tasks()
        .filter(|t| t.state == TaskState::WaitingForAdmission)
        .collect();
    assert_eq!(waiting.len(), 1, "{dump}");
    assert_eq!(waiting[0].name.as_deref(), Some("patient"));
    assert!(waiting[0].blocking);
    assert!(
        dump.to_string()
            .contains("'patient' waiting for admission, "),
        "{dump}"
    );
    gate.open();
    for h in held {
        h.await.unwrap();
    }
    assert_eq!(caller.await.unwrap().unwrap(), 7);
    let after = d.dump();
    assert!(
        after
            .tasks()
            .all(|t| t.state != TaskState::WaitingForAdmission),
        "{after}"
    );
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn untracked_registries_still_dump_states_without_timings() {
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .track_tasks(false)
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(d.cpu().task("untimed").spawn(async move {
        let _ = rx.await;
    }));
    cpu_settles(&d).await;
    let dump = d.dump();
    let t = dump.tasks().next().unwrap();
    assert_eq!(t.state, TaskState::Idle);
    assert_eq!(t.polls, 1);
    assert_eq!(t.since_last_poll, None);
    assert_eq!(t.busy, Duration::ZERO);
    let suspects = dump.suspects(Duration::ZERO);
    assert_eq!(suspects.len(), 1);
    assert_eq!(suspects[0].reason, SuspectReason::DetachedIdle);
    assert!(
        suspects[0]
            .to_string()
            .starts_with("ghost: detached and idle at an await (polls not timed; "),
        "{}",
        suspects[0]
    );
    drop(tx);
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn unnamed_tasks_get_a_name_derived_from_their_spawn_site() {
    let d = registry();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let line = line!() + 1;
    let unnamed = d.cpu().spawn(async move {
        let _ = rx.await;
    });
    let named = d.cpu().task("given").spawn(std::future::pending::<()>());
    cpu_settles(&d).await;
    let dump = d.dump();
    let mut names: Vec<(Option<String>, String)> = dump
        .tasks()
        .map(|t| {
            (
                t.name.as_deref().map(str::to_owned),
                t.display_name().into_owned(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            (None, format!("dumps.rs:{line}")),
            (Some("given".to_owned()), "given".to_owned()),
        ]
    );
    named.abort();
    tx.send(()).unwrap();
    unnamed.await.unwrap();
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn dumps_and_suspects_render_as_json() {
    let d = registry();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(d.cpu().task("json-ghost").spawn(async move {
        let _ = rx.await;
    }));
    cpu_settles(&d).await;
    let dump = d.dump();
    let json = dump.to_json();
    for field in [
        "\"live_tasks\": 1",
        "\"name\": \"json-ghost\"",
        "\"state\": \"idle at an await\"",
        "\"detached\": true",
        "\"polls\": 1",
        "\"dispatcher\": \"cpu\"",
        "dumps.rs:",
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    let suspects = dump.suspects(Duration::ZERO);
    let one = suspects[0].to_json();
    assert!(one.contains("\"reason\": \"ghost\""), "{one}");
    assert!(one.contains("\"summary\": \"ghost: detached"), "{one}");
    drop(tx);
    bulkheads::testing::assert_no_leaks(&d).await;
}

#[tokio::test]
async fn supervisor_nesting_shows_in_the_tree() {
    use bulkheads::{Child, Supervisor};
    let d = registry();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let sup = Supervisor::builder("outer")
        .child(Child::supervisor(Supervisor::builder("inner").child(
            Child::new("worker", move || {
                let started_tx = started_tx.clone();
                async move {
                    let _ = started_tx.send(());
                    std::future::pending::<()>().await;
                }
            }),
        )))
        .start(&d)
        .unwrap();
    started.recv().await.unwrap();
    cpu_settles(&d).await; // the worker's first poll has ended: it is idle
    let dump = d.dump();
    let worker = dump
        .tasks()
        .find(|t| t.name.as_deref() == Some("worker"))
        .unwrap_or_else(|| panic!("no worker in {dump}"));
    assert_eq!(worker.state, TaskState::Idle, "{dump}");
    assert_eq!(
        worker.parent.as_deref(),
        Some("supervisor 'outer'/supervisor 'inner'/child 'worker'")
    );
    // The supervisor holds its child's handle: an idle supervised child is no ghost.
    assert!(!worker.detached);
    assert!(dump.suspects(Duration::ZERO).is_empty(), "{dump}");
    let text = dump.to_string();
    assert!(
        text.contains("\n  supervisor 'outer'/supervisor 'inner'/child 'worker'\n    #"),
        "{text}"
    );
    sup.shutdown().await;
    sup.join().await.unwrap();
    bulkheads::testing::assert_no_leaks(&d).await;
}
