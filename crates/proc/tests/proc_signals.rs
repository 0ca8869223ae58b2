//! Signals to the process group, stop with a grace, and the exit statuses they give.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use plexus_proc::{ExitStatus, ProcError, Sig};

#[tokio::test]
async fn each_signal_reaches_the_group() {
    let s = supervisor();
    for (sig, number) in [
        (Sig::Term, 15),
        (Sig::Int, 2),
        (Sig::Kill, 9),
        (Sig::Hup, 1),
    ] {
        let id = format!("{sig:?}");
        s.sup.spawn(&id, &spec("sleep", &["1000"])).await.unwrap();
        s.sup.signal(&id, sig).unwrap();
        let status = s.sup.wait(&id).await.unwrap();
        assert_eq!(status, ExitStatus::Killed(number));
        assert_eq!(status.shell_code(), 128 + number);
        let err = s.sup.signal(&id, sig).unwrap_err();
        assert!(matches!(err, ProcError::Ended(_)), "{err:?}");
    }
}

/// `/proc/PID/stat`'s state letter.
fn state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn stop_and_cont() {
    let s = supervisor();
    let pid = s.sup.spawn("sc", &spec("sleep", &["1000"])).await.unwrap();
    s.sup.signal("sc", Sig::Stop).unwrap();
    wait_until("stopped", || state(pid) == "T").await;
    s.sup.signal("sc", Sig::Cont).unwrap();
    wait_until("running again", || state(pid) == "S").await;
    assert_eq!(s.sup.info("sc").unwrap().status, None);
    // stop() wakes a stopped process so TERM can act.
    s.sup.signal("sc", Sig::Stop).unwrap();
    wait_until("stopped", || state(pid) == "T").await;
    assert_eq!(
        s.sup.stop("sc", Duration::from_secs(20)).await.unwrap(),
        ExitStatus::Killed(15)
    );
}

#[tokio::test]
async fn stop_kills_after_the_grace() {
    let s = supervisor();
    let (_, mut attached) = s
        .sup
        .spawn_attached(
            "stubborn",
            &sh("trap '' TERM; echo ready; while :; do sleep 1; done"),
        )
        .await
        .unwrap();
    read_until(&mut attached.stdout, "ready").await;
    drop(attached);
    let started = Instant::now();
    let status = s
        .sup
        .stop("stubborn", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(status, ExitStatus::Killed(9));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "KILL only after the grace"
    );

    s.sup
        .spawn("polite", &spec("sleep", &["1000"]))
        .await
        .unwrap();
    assert_eq!(
        s.sup.stop("polite", Duration::from_secs(20)).await.unwrap(),
        ExitStatus::Killed(15)
    );
    // Stopping an ended process reports how it ended.
    assert_eq!(
        s.sup.stop("polite", Duration::ZERO).await.unwrap(),
        ExitStatus::Killed(15)
    );
}

#[tokio::test]
async fn signals_parse_by_name() {
    for (text, sig) in [
        ("TERM", Sig::Term),
        ("sigint", Sig::Int),
        ("Kill", Sig::Kill),
        ("SIGHUP", Sig::Hup),
        ("stop", Sig::Stop),
        ("CONT", Sig::Cont),
    ] {
        assert_eq!(text.parse::<Sig>().unwrap(), sig);
    }
    assert!("USR1".parse::<Sig>().is_err());
    assert!("".parse::<Sig>().is_err());
}

#[tokio::test]
async fn children_in_the_group_go_with_the_program() {
    let s = supervisor();
    let (_, mut attached) = s
        .sup
        .spawn_attached("tree", &sh("sleep 1000 & echo $!; wait"))
        .await
        .unwrap();
    let line = read_until(&mut attached.stdout, "\n").await;
    let child: u32 = line.trim().parse().unwrap();
    assert!(alive(child));
    s.sup.stop("tree", Duration::from_secs(20)).await.unwrap();
    wait_until("the background child to die", || !alive(child)).await;
}
