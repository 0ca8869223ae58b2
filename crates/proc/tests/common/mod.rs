//! Helpers for the supervisor tests: a supervisor in a temporary directory, waiting on
//! conditions with a deadline, and looking processes up in /proc.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use plexus_proc::{Attached, Config, Spec, Supervisor};

/// Generous: the machine running the tests is slow and shared.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Sup {
    pub sup: Supervisor,
    pub dir: tempfile::TempDir,
}

pub fn supervisor() -> Sup {
    let dir = tempfile::tempdir().expect("temp dir");
    supervisor_with(dir, |_| {})
}

pub fn supervisor_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Sup {
    let mut config = Config::new(dir.path().join("state"));
    tweak(&mut config);
    let (sup, lost) = Supervisor::start(config).expect("start supervisor");
    assert!(lost.is_empty(), "fresh state has nothing lost: {lost:?}");
    Sup { sup, dir }
}

pub fn spec(program: &str, args: &[&str]) -> Spec {
    Spec {
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Spec::default()
    }
}

pub fn sh(script: &str) -> Spec {
    spec("sh", &["-c", script])
}

/// Polls `check` until it is true; fails the test after [`DEADLINE`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True while `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Reads an attached stream until `needle` has appeared; returns everything read.
pub async fn read_until(
    rx: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>,
    needle: &str,
) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(DEADLINE, async {
        while !seen.contains(needle) {
            match rx.recv().await {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => return false,
            }
        }
        true
    })
    .await;
    assert_eq!(found, Ok(true), "{needle:?} never came; got {seen:?}");
    seen
}

/// Drains both attached streams to their end.
pub async fn drain(attached: &mut Attached) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            chunk = attached.stdout.recv(), if out_open => match chunk {
                Some(c) => out.extend_from_slice(&c),
                None => out_open = false,
            },
            chunk = attached.stderr.recv(), if err_open => match chunk {
                Some(c) => err.extend_from_slice(&c),
                None => err_open = false,
            },
        }
    }
    (out, err)
}
