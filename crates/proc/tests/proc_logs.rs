//! Logs: rotation with the dropped-output marker, tail, follow, and a flood that keeps the log
//! and the node's memory bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use plexus_proc::{dropped_marker, ExitStatus, Stream};

fn file_len(s: &Sup, name: &str) -> u64 {
    std::fs::metadata(s.dir.path().join("state/logs").join(name))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// `seq 1 N` as the program prints it.
fn numbers(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[tokio::test]
async fn rotation_keeps_the_tail_with_a_marker() {
    const LIMIT: u64 = 64 * 1024;
    let s = supervisor_with(tempfile::tempdir().unwrap(), |c| c.log_limit = LIMIT);
    s.sup
        .spawn("seq", &spec("seq", &["1", "100000"]))
        .await
        .unwrap();
    assert_eq!(s.sup.wait("seq").await.unwrap(), ExitStatus::Exited(0));
    assert!(file_len(&s, "seq.out") <= LIMIT / 2 && file_len(&s, "seq.out.1") <= LIMIT / 2);
    let all = numbers(100_000);
    let log = String::from_utf8(s.sup.read_log("seq", Stream::Stdout).unwrap()).unwrap();
    let (marker, kept) = log.split_at(log.find('\n').unwrap() + 1);
    assert!(
        all.ends_with(kept),
        "the retained log is the end of the output"
    );
    assert!(kept.len() as u64 > LIMIT / 2);
    assert_eq!(marker, dropped_marker((all.len() - kept.len()) as u64));
    assert!(marker.starts_with("[plexus: ") && marker.ends_with(" bytes of output dropped]\n"));
}

#[tokio::test]
async fn tail_gives_the_last_lines() {
    let s = supervisor();
    s.sup
        .spawn("seq", &spec("seq", &["1", "1000"]))
        .await
        .unwrap();
    s.sup.wait("seq").await.unwrap();
    assert_eq!(
        s.sup.tail("seq", Stream::Stdout, 3).unwrap(),
        b"998\n999\n1000\n"
    );
    assert_eq!(
        s.sup.tail("seq", Stream::Stdout, 5000).unwrap(),
        numbers(1000).as_bytes()
    );
    assert_eq!(s.sup.tail("seq", Stream::Stdout, 0).unwrap(), b"");
    assert_eq!(s.sup.tail("seq", Stream::Stderr, 3).unwrap(), b"");
}

#[tokio::test]
async fn follow_streams_until_the_end() {
    let s = supervisor();
    s.sup.spawn("f", &spec("cat", &[])).await.unwrap();
    let mut follow = s.sup.follow("f", Stream::Stdout, 0).unwrap();
    s.sup.write_stdin("f", b"one\n").await.unwrap();
    let first = tokio::time::timeout(DEADLINE, follow.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        &first[..],
        b"one\n",
        "followed output arrives while the program runs"
    );
    s.sup.write_stdin("f", b"two\n").await.unwrap();
    s.sup.close_stdin("f").await.unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(DEADLINE, follow.next()).await.unwrap() {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"two\n");
    assert_eq!(follow.offset(), 8);
    // From an offset, after the end: the rest, then the end.
    let mut late = s.sup.follow("f", Stream::Stdout, 4).unwrap();
    assert_eq!(&late.next().await.unwrap().unwrap()[..], b"two\n");
    assert!(late.next().await.is_none());
}

#[tokio::test]
async fn a_follower_behind_the_log_gets_a_marker() {
    const LIMIT: u64 = 8 * 1024;
    let s = supervisor_with(tempfile::tempdir().unwrap(), |c| c.log_limit = LIMIT);
    s.sup
        .spawn("seq", &spec("seq", &["1", "20000"]))
        .await
        .unwrap();
    s.sup.wait("seq").await.unwrap();
    let mut follow = s.sup.follow("seq", Stream::Stdout, 0).unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = follow.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, s.sup.read_log("seq", Stream::Stdout).unwrap());
    assert!(got.starts_with(b"[plexus: "));
}

/// Resident memory of this test process.
fn own_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_without_readers_stays_bounded() {
    const LIMIT: u64 = 1024 * 1024;
    let s = supervisor_with(tempfile::tempdir().unwrap(), |c| c.log_limit = LIMIT);
    let before = own_rss();
    s.sup.spawn("yes", &spec("yes", &[])).await.unwrap();
    s.sup
        .spawn("zero", &spec("head", &["-c", "2G", "/dev/zero"]))
        .await
        .unwrap();
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < Duration::from_secs(3) {
        peak = peak.max(own_rss());
        for id in ["yes", "zero"] {
            let logged = file_len(&s, &format!("{id}.out")) + file_len(&s, &format!("{id}.out.1"));
            assert!(logged <= LIMIT, "{id} logged {logged} bytes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let growth = peak.saturating_sub(before);
    assert!(growth < 64 * 1024 * 1024, "RSS grew by {growth} bytes");
    s.sup.shutdown(Duration::from_secs(5)).await;
    let log = s.sup.read_log("yes", Stream::Stdout).unwrap();
    assert!(
        log.starts_with(b"[plexus: "),
        "megabytes of output were rotated away"
    );
    assert!(log.len() as u64 <= LIMIT + 64);
}
