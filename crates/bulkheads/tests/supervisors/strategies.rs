//! OTP's strategies and restart types, counted per child; start and stop order; supervisors
//! without children; dropping the handle.

use super::Act::*;
use super::*;
use bulkheads::ChildState::{Exited, Removed, Running, Stopped};

#[tokio::test]
async fn one_for_one_restarts_only_the_child_that_failed() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("s")
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[Fail]))
        .child(child(&e, "c", &[]))
        .start(&d)
        .unwrap();
    e.wait("start b", 2).await;
    e.wait("start c", 1).await;
    assert_eq!(starts(&e, &["a", "b", "c"]), [1, 2, 1]);
    assert_eq!(states(&sup), [(Running, 0), (Running, 1), (Running, 0)]);
    sup.shutdown().await;
    let f = failures.lock().unwrap().clone();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].kind, f[0].restarting), (FailureKind::Error, true));
    assert_eq!(f[0].path(), Some("supervisor 's'/child 'b'"));
    assert_eq!(f[0].task.name.as_deref(), Some("b"));
    assert_eq!(f[0].message, "b broke on start 1");
    assert_eq!(&*f[0].dispatcher, "cpu");
    // The spawn site is the line that declared the child, not the library's loop.
    assert!(
        f[0].task.location.file().ends_with("supervisors.rs"),
        "{}",
        f[0].task
    );
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_then_starts_all_in_order() {
    let e = Events::new();
    let (d, _failures) = registry(&e);
    let sup = Supervisor::builder("all")
        .strategy(Strategy::OneForAll)
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[Return, Return]).restart(Restart::Transient))
        .child(child(&e, "t", &[]).restart(Restart::Temporary))
        .child(child(&e, "d", &[FailAfter("stop b")]))
        .start(&d)
        .unwrap();
    e.wait("start d", 2).await;
    e.wait("stop b", 2).await;
    // b had returned (transient: not restarted by itself), yet the group restart starts it
    // again, as OTP does; the temporary t is stopped and removed.
    assert_eq!(starts(&e, &["a", "b", "t", "d"]), [2, 2, 1, 2]);
    let all = e.all();
    let at = all.iter().position(|x| x == "fail d").unwrap();
    let expected = [
        "fail d",
        "stop d",
        "failure d",
        "stop t",
        "stop a",
        "start a",
        "start b",
        "stop b",
        "start d",
    ];
    assert_eq!(all[at..], ev(&expected)[..]);
    settle(
        &sup,
        &[(Running, 1), (Exited, 1), (Removed, 0), (Running, 1)],
    )
    .await;
    sup.shutdown().await;
    assert!(sup.join().await.is_ok());
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let e = Events::new();
    let (d, _failures) = registry(&e);
    let sup = Supervisor::builder("rest")
        .strategy(Strategy::RestForOne)
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[FailAfter("start d")]))
        .child(child(&e, "c", &[]))
        .child(child(&e, "d", &[]))
        .start(&d)
        .unwrap();
    e.wait("start d", 2).await;
    assert_eq!(starts(&e, &["a", "b", "c", "d"]), [1, 2, 2, 2]);
    let all = e.all();
    let at = all.iter().position(|x| x == "fail b").unwrap();
    assert_eq!(
        all[at..],
        ev(&[
            "fail b",
            "stop b",
            "failure b",
            "stop d",
            "stop c",
            "start b",
            "start c",
            "start d"
        ])[..]
    );
    sup.shutdown().await;
    // Shutdown: reverse start order.
    let n = all.len();
    assert_eq!(e.since(n), ev(&["stop d", "stop c", "stop b", "stop a"]));
}

#[tokio::test]
async fn restart_types_decide_what_comes_back() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let sup = Supervisor::builder("types")
        .intensity(10, Duration::from_secs(10))
        .child(child(&e, "perm", &[Return]))
        .child(child(&e, "trans_ok", &[Return]).restart(Restart::Transient))
        .child(child(&e, "trans_err", &[Fail]).restart(Restart::Transient))
        .child(child(&e, "temp_ok", &[Return]).restart(Restart::Temporary))
        .child(child(&e, "temp_err", &[Fail]).restart(Restart::Temporary))
        .child(child(&e, "last", &[]))
        .start(&d)
        .unwrap();
    e.wait("start perm", 2).await;
    e.wait("start trans_err", 2).await;
    e.wait("failure temp_err", 1).await;
    settle(
        &sup,
        &[
            (Running, 1),
            (Exited, 0),
            (Running, 1),
            (Removed, 0),
            (Removed, 0),
            (Running, 0),
        ],
    )
    .await;
    e.wait("start last", 1).await;
    sup.shutdown().await;
    let names = [
        "perm",
        "trans_ok",
        "trans_err",
        "temp_ok",
        "temp_err",
        "last",
    ];
    assert_eq!(starts(&e, &names), [2, 1, 2, 1, 1, 1]);
    assert_eq!(
        states(&sup),
        [
            (Stopped, 1),
            (Exited, 0),
            (Stopped, 1),
            (Removed, 0),
            (Removed, 0),
            (Stopped, 0)
        ]
    );
    let mut f: Vec<_> = failures
        .lock()
        .unwrap()
        .iter()
        .map(|f| (f.task.name.clone().unwrap().to_string(), f.restarting))
        .collect();
    f.sort();
    assert_eq!(f, [("temp_err".into(), false), ("trans_err".into(), true)]);
}

#[tokio::test]
async fn a_supervisor_without_children_runs_until_shut_down() {
    let (d, _) = registry(&Events::new());
    let sup = Supervisor::builder("empty").start(&d).unwrap();
    assert!(sup.children().is_empty());
    assert!(!sup.is_finished());
    sup.shutdown().await;
    assert!(sup.is_finished());
    assert!(sup.join().await.is_ok());
}

#[tokio::test]
async fn shutdown_stops_children_in_reverse_start_order_on_any_dispatcher() {
    let e = Events::new();
    let (d, failures) = registry(&e);
    let pool = d.get("pool").unwrap();
    let view = d.cpu().limited(1);
    let sup = Supervisor::builder("order")
        .child(child(&e, "a", &[]).on(&pool))
        .child(child(&e, "b", &[]).on(&view))
        .child(child(&e, "c", &[]))
        .start(&d)
        .unwrap();
    for name in ["start a", "start b", "start c"] {
        e.wait(name, 1).await;
    }
    let n = e.all().len();
    tokio::time::timeout(GUARD, sup.shutdown()).await.unwrap();
    assert_eq!(e.since(n), ev(&["stop c", "stop b", "stop a"]));
    assert_eq!(states(&sup), [(Stopped, 0); 3]);
    assert!(failures.lock().unwrap().is_empty());
    // A second shutdown, and join, return at once.
    sup.shutdown().await;
    assert!(sup.join().await.is_ok());
    d.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn dropping_the_handle_shuts_the_supervisor_down_in_the_background() {
    let e = Events::new();
    let (d, _) = registry(&e);
    let sup = Supervisor::builder("dropped")
        .child(child(&e, "a", &[]))
        .child(child(&e, "b", &[]))
        .start(&d)
        .unwrap();
    e.wait("start b", 1).await;
    let n = e.all().len();
    drop(sup);
    e.wait("stop a", 1).await;
    assert_eq!(e.since(n), ev(&["stop b", "stop a"]));
}
