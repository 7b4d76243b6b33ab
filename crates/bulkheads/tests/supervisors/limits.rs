//! Intensity (giving up, escalating once, counted), backoff (delays, reset), nesting, and
//! declarations refused at start.

use super::Act::*;
use super::*;
use bulkheads::ChildState::{Running, Stopped};

#[tokio::test]
async fn intensity_exceeded_stops_every_child_and_escalates_once() {
    let e = Events::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (d, failures, sup) = metrics::with_local_recorder(&recorder, || {
        let (d, failures) = registry(&e);
        let sup = Supervisor::builder("ingest")
            .intensity(2, Duration::from_secs(60))
            .child(child(&e, "steady", &[]))
            .child(child(&e, "bad", &[Fail, Fail, Fail]))
            .start(&d)
            .unwrap();
        (d, failures, sup)
    });
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "supervisor 'ingest' gave up: more than 2 restart(s) within 60s; child 'bad' failed: bad broke on start 3"
    );
    assert!(matches!(
        &err,
        SupervisorError::GaveUp { supervisor, max_restarts: 2, child, .. }
            if &**supervisor == "ingest" && &**child == "bad"
    ));
    // Every child was stopped before the supervisor failed.
    assert_eq!(e.count("stop steady"), 1);
    assert_eq!(states(&sup), [(Stopped, 0), (Stopped, 2)]);
    let f = failures.lock().unwrap().clone();
    let flags: Vec<_> = f
        .iter()
        .map(|f| (f.task.name.as_deref().unwrap().to_owned(), f.restarting))
        .collect();
    assert_eq!(
        flags,
        [
            ("bad".into(), true),
            ("bad".into(), true),
            ("bad".into(), false),
            ("ingest".into(), false)
        ]
    );
    let escalation = &f[3];
    assert_eq!(escalation.kind, FailureKind::Error);
    assert_eq!(escalation.message, err.to_string());
    assert_eq!(escalation.path(), Some("supervisor 'ingest'"));
    let snap = snapshotter.snapshot().into_vec();
    let c = |name, labels: &[(&str, &str)]| counter(&snap, name, labels);
    assert_eq!(
        c(
            "bulkheads_supervisor_escalations_total",
            &[("supervisor", "ingest")]
        ),
        1
    );
    let bad = [("supervisor", "ingest"), ("child", "bad")];
    assert_eq!(c("bulkheads_supervisor_restarts_total", &bad), 2);
    let steady = [("supervisor", "ingest"), ("child", "steady")];
    assert_eq!(c("bulkheads_supervisor_restarts_total", &steady), 0);
    let errors = [("dispatcher", "cpu"), ("kind", "error")];
    assert_eq!(c("bulkheads_failures_total", &errors), 4);
    // Shutting down an ended supervisor changes nothing.
    sup.shutdown().await;
    assert!(matches!(
        sup.join().await,
        Err(SupervisorError::GaveUp { .. })
    ));
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn intensity_zero_gives_up_at_the_first_restart() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    // A permanent child that returns normally asks for a restart too (OTP).
    let sup = Supervisor::builder("strict")
        .intensity(0, Duration::from_secs(1))
        .child(child(&e, "once", &[Return]))
        .start(&d)
        .unwrap();
    let err = sup.join().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "supervisor 'strict' gave up: more than 0 restart(s) within 1s; child 'once' returned"
    );
    assert_eq!(starts(&e, &["once"]), [1]);
    let names: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.task.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["strict"]);
}

#[tokio::test]
async fn a_child_failing_in_a_tight_loop_is_stopped_by_intensity_without_busy_looping() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let ms = Duration::from_millis;
    let t = Instant::now();
    let sup = Supervisor::builder("tight")
        .intensity(3, Duration::from_secs(60))
        .backoff(Backoff::exponential(ms(10), ms(1_000)))
        .child(child(&e, "x", &[Fail, Fail, Fail, Fail, Fail]))
        .start(&d)
        .unwrap();
    let err = tokio::time::timeout(GUARD, sup.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            SupervisorError::GaveUp {
                max_restarts: 3,
                ..
            }
        ),
        "{err}"
    );
    // Three restarts, 10 + 20 + 40 ms apart at least; the fourth failure gives up.
    assert_eq!(starts(&e, &["x"]), [4]);
    assert!(t.elapsed() >= ms(70), "{:?}", t.elapsed());
    let flags: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| f.restarting)
        .collect();
    assert_eq!(flags, [true, true, true, false, false]);
}

#[tokio::test]
async fn backoff_delays_restarts_and_resets_after_a_quiet_period() {
    let e = Events::new();
    let (d, _) = registry(&e);
    let ms = Duration::from_millis;
    // Delays 20 ms, 200 ms, 2 s...; reset once a child ran 100 ms without failing.
    let backoff = Backoff::exponential(ms(20), ms(5_000))
        .factor(10.0)
        .reset_after(ms(100));
    let sup = Supervisor::builder("slow")
        .intensity(100, Duration::from_secs(60))
        .backoff(backoff)
        .child(child(&e, "x", &[Fail, Fail, FailIn(300)]))
        .start(&d)
        .unwrap();
    e.wait("start x", 4).await;
    let gap = |n| e.at("start x", n + 1).duration_since(e.at("fail x", n));
    assert!(gap(1) >= ms(20), "{:?}", gap(1));
    assert!(gap(2) >= ms(200), "{:?}", gap(2));
    // The third run lasted 300 ms: the delay went back to 20 ms instead of 2 s.
    assert!(gap(3) >= ms(20) && gap(3) < ms(1_500), "{:?}", gap(3));
    assert_eq!(states(&sup), [(Running, 3)]);
    sup.shutdown().await;
}

#[tokio::test]
async fn nested_supervisor_escalates_to_its_parent() {
    let e = Events::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (d, failures, outer) = metrics::with_local_recorder(&recorder, || {
        let (d, failures) = registry(&e);
        let inner = Supervisor::builder("inner")
            .intensity(0, Duration::from_secs(1))
            .child(child(&e, "flaky", &[Fail, Fail]));
        let outer = Supervisor::builder("outer")
            .intensity(1, Duration::from_secs(60))
            .child(child(&e, "steady", &[]))
            .child(Child::supervisor(inner))
            .start(&d)
            .unwrap();
        (d, failures, outer)
    });
    let err = tokio::time::timeout(GUARD, outer.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::GaveUp { supervisor, child, .. }
            if &**supervisor == "outer" && &**child == "inner"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("child 'inner' failed: supervisor 'inner' gave up"),
        "{err}"
    );
    assert_eq!(starts(&e, &["steady", "flaky"]), [1, 2]);
    assert_eq!(e.count("stop steady"), 1);
    assert_eq!(states(&outer), [(Stopped, 0), (Stopped, 1)]);
    let f = failures.lock().unwrap().clone();
    let seen: Vec<_> = f
        .iter()
        .map(|f| (f.path().unwrap().to_owned(), f.restarting))
        .collect();
    let flaky = "supervisor 'outer'/supervisor 'inner'/child 'flaky'";
    let inner = "supervisor 'outer'/supervisor 'inner'";
    assert_eq!(
        seen,
        [
            (flaky.into(), false),
            (inner.into(), true),
            (flaky.into(), false),
            (inner.into(), false),
            ("supervisor 'outer'".into(), false),
        ]
    );
    let snap = snapshotter.snapshot().into_vec();
    let esc = |s| {
        counter(
            &snap,
            "bulkheads_supervisor_escalations_total",
            &[("supervisor", s)],
        )
    };
    assert_eq!((esc("inner"), esc("outer")), (2, 1));
    let restarts = [("supervisor", "outer"), ("child", "inner")];
    assert_eq!(
        counter(&snap, "bulkheads_supervisor_restarts_total", &restarts),
        1
    );
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_declarations_are_refused_naming_the_supervisor() {
    let (d, _) = registry(&Events::new());
    let e = Events::new();
    let refuse = |b: bulkheads::SupervisorBuilder| b.start(&d).unwrap_err().to_string();
    assert_eq!(
        refuse(Supervisor::builder("p").intensity(1, Duration::ZERO)),
        "supervisor 'p' cannot start: the intensity period must be above zero"
    );
    assert_eq!(
        refuse(
            Supervisor::builder("dup")
                .child(child(&e, "x", &[]))
                .child(child(&e, "x", &[]))
        ),
        "supervisor 'dup' cannot start: two children are named 'x'"
    );
    assert_eq!(
        refuse(Supervisor::builder("").child(child(&e, "x", &[]))),
        "supervisor '' cannot start: a supervisor's name must not be empty"
    );
    let ms = Duration::from_millis;
    assert_eq!(
        refuse(Supervisor::builder("b").backoff(Backoff::exponential(ms(10), ms(5)))),
        "supervisor 'b' cannot start: the maximum backoff (5ms) is below the minimum (10ms)"
    );
    assert_eq!(
        refuse(Supervisor::builder("j").backoff(Backoff::exponential(ms(1), ms(5)).jitter(2.0))),
        "supervisor 'j' cannot start: the backoff jitter must be between 0 and 1, got 2"
    );
    // Nested declarations are checked with the rest, and name themselves; a nested
    // supervisor shares its parent's namespace of child names.
    let inner = Supervisor::builder("inner").intensity(1, Duration::ZERO);
    assert_eq!(
        refuse(Supervisor::builder("outer").child(Child::supervisor(inner))),
        "supervisor 'inner' cannot start: the intensity period must be above zero"
    );
    let clash = Supervisor::builder("x");
    assert_eq!(
        refuse(
            Supervisor::builder("o")
                .child(child(&e, "x", &[]))
                .child(Child::supervisor(clash))
        ),
        "supervisor 'o' cannot start: two children are named 'x'"
    );
    // After the registry shut down, nothing starts.
    d.shutdown(Duration::from_secs(5)).await;
    let late = Supervisor::builder("late").start(&d).unwrap_err();
    assert!(
        matches!(late, SupervisorError::RegistryClosed { .. }),
        "{late}"
    );
    assert_eq!(e.all(), Vec::<String>::new());
}
