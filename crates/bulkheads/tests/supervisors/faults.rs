//! Faults: a child that hangs on shutdown, panics in `Drop`, in its future or its factory, a
//! start its dispatcher refuses, the registry shutting down underneath.

use super::Act::*;
use super::*;
use bulkheads::ChildState::{Abandoned, Stopped};

/// Panics when dropped (unless already unwinding).
struct Boom;

impl Drop for Boom {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{MARK}: boom in drop");
        }
    }
}

#[tokio::test]
async fn a_hanging_child_is_abandoned_after_its_timeout_and_shutdown_returns() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let gate = Gate::new();
    let (g, ev2) = (gate.clone(), e.clone());
    // Blocking code inside a future on a pool: cancelling cannot interrupt it.
    let stuck = Child::new("stuck", move || {
        let (g, e) = (g.clone(), ev2.clone());
        async move {
            e.push("start stuck");
            g.wait();
        }
    })
    .on(&d.get("pool").unwrap())
    .shutdown(Duration::from_millis(50));
    let sup = Supervisor::builder("hang")
        .child(child(&e, "first", &[]))
        .child(stuck)
        .child(child(&e, "last", &[]))
        .start(&d)
        .unwrap();
    e.wait("start stuck", 1).await;
    e.wait("start last", 1).await;
    let n = e.all().len();
    let t = Instant::now();
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(e.since(n), ev(&["stop last", "stop first"]));
    assert_eq!(states(&sup), [(Stopped, 0), (Abandoned, 0), (Stopped, 0)]);
    assert!(sup.join().await.is_ok());
    gate.open();
    d.shutdown(Duration::from_secs(5)).await;
    assert!(failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_panic_in_drop_while_stopping_is_contained_and_reported() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let ev2 = e.clone();
    let boom = Child::new("boom", move || {
        let e = ev2.clone();
        async move {
            let _boom = Boom;
            e.push("start boom");
            std::future::pending::<()>().await
        }
    });
    let sup = Supervisor::builder("dropper")
        .child(boom)
        .start(&d)
        .unwrap();
    e.wait("start boom", 1).await;
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert_eq!(states(&sup), [(Stopped, 0)]);
    e.wait("failure boom", 1).await;
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Panic, false));
    assert!(f[0].message.contains("boom in drop"), "{}", f[0]);
    assert_eq!(f[0].path(), Some("supervisor 'dropper'/child 'boom'"));
}

#[tokio::test]
async fn panics_in_a_child_or_in_its_factory_are_failures() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let calls = Arc::new(AtomicUsize::new(0));
    let (c2, ev2) = (calls.clone(), e.clone());
    // The factory itself panics on its first call (a child that fails on start).
    let factory = Child::new("factory", move || {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("{MARK}: no connection");
        }
        let e = ev2.clone();
        async move {
            e.push("start factory");
            std::future::pending::<()>().await
        }
    });
    let sup = Supervisor::builder("p")
        .intensity(5, Duration::from_secs(60))
        .child(child(&e, "a", &[Panic]).on(&d.get("pool").unwrap()))
        .child(factory)
        .start(&d)
        .unwrap();
    e.wait("start a", 2).await;
    e.wait("start factory", 1).await;
    sup.shutdown().await;
    assert_eq!(states(&sup), [(Stopped, 1), (Stopped, 1)]);
    let mut f = failures.lock().unwrap().clone();
    f.sort_by_key(|f| f.task.name.clone());
    let seen: Vec<_> = f
        .iter()
        .map(|f| {
            let name = f.task.name.as_deref().unwrap().to_owned();
            (name, f.kind, f.restarting, f.dispatcher.to_string())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a".into(), FailureKind::Panic, true, "pool".into()),
            ("factory".into(), FailureKind::Panic, true, "cpu".into())
        ]
    );
    assert!(f[0].message.contains("a panicked on start 1"), "{}", f[0]);
    assert!(f[1].message.contains("no connection"), "{}", f[1]);
    assert_eq!(f[1].path(), Some("supervisor 'p'/child 'factory'"));
    // The failure's one line says it all.
    let line = f[0].to_string();
    assert!(
        line.contains("in supervisor 'p'/child 'a'") && line.ends_with("(restarting)"),
        "{line}"
    );
}

#[tokio::test]
async fn a_refused_start_is_a_failure() {
    common::quiet_panics(MARK);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = failures.clone();
    let d = Dispatchers::builder()
        .cpu_threads(1)
        .blocking("tiny", BlockingConfig::threads(1).queue(0))
        .on_failure(move |f: &Failure| sink.lock().unwrap().push(f.clone()))
        .build()
        .unwrap();
    let tiny = d.get("tiny").unwrap();
    let (gate, held) = common::occupy(&tiny, 1);
    let e = Events::new();
    let sup = Supervisor::builder("full")
        .intensity(0, Duration::from_secs(1))
        .child(child(&e, "x", &[]).on(&tiny))
        .start(&d)
        .unwrap();
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("could not start: dispatcher 'tiny' rejected the task: queue full"),
        "{err}"
    );
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Error, false));
    assert_eq!(f[0].path(), Some("supervisor 'full'/child 'x'"));
    assert_eq!(&*f[0].dispatcher, "tiny");
    assert_eq!(starts(&e, &["x"]), [0]);
    gate.open();
    for h in held {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn a_registry_shutdown_ends_its_supervisors() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("tenant")
        .child(child(&e, "a", &[]))
        .start(&d)
        .unwrap();
    e.wait("start a", 1).await;
    d.shutdown(Duration::from_millis(50)).await;
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, SupervisorError::RegistryClosed { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "supervisor 'tenant' stopped: its registry is shutting down"
    );
    e.wait("stop a", 1).await;
    assert_eq!(starts(&e, &["a"]), [1]);
    assert!(failures.lock().unwrap().is_empty());
    // Its children read as stopped, not as running.
    let states: Vec<_> = sup.children().iter().map(|c| c.state).collect();
    assert_eq!(states, [Stopped]);
}

/// Children written as bare blocks that never return: under Rust 2024 (this crate's edition)
/// the output of `async { loop { .. } }` and of `async { panic!(..) }` is the never type `!`,
/// which a child may have. The looping one runs until shut down; the panicking one is a
/// failure like any other (here it exceeds an intensity of 0 and the supervisor gives up).
#[tokio::test]
async fn children_that_never_return_compile_as_bare_blocks_and_behave() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let ev2 = e.clone();
    let looping = Child::new("looping", move || {
        let e = ev2.clone();
        async move {
            e.push("start looping");
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let sup = Supervisor::builder("loops")
        .child(looping)
        .start(&d)
        .unwrap();
    e.wait("start looping", 1).await;
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert_eq!(states(&sup), [(Stopped, 0)]);
    assert!(sup.join().await.is_ok());

    let crashing = Child::new("crashing", || async { panic!("{MARK}: bare panic") });
    let sup = Supervisor::builder("crashes")
        .intensity(0, Duration::from_secs(60))
        .child(crashing)
        .start(&d)
        .unwrap();
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("bare panic"), "{err}");
    let f = failures.lock().unwrap().clone();
    let child_failure = f
        .iter()
        .find(|f| f.path() == Some("supervisor 'crashes'/child 'crashing'"))
        .unwrap_or_else(|| panic!("no failure of the child: {f:?}"));
    assert_eq!(
        (child_failure.kind, child_failure.restarting),
        (FailureKind::Panic, false)
    );

    // The same in a supervisor scope.
    let report = d
        .supervisor_scope(|s| async move {
            s.spawn(async { panic!("{MARK}: bare panic in a scope") });
        })
        .await;
    assert_eq!((report.ok, report.failed.len()), (0, 1));
    assert!(report.failed[0].message.contains("bare panic in a scope"));
}
