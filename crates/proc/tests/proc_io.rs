//! Output while the program runs, stdin and end of file, and flow control of attached readers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use plexus_proc::{ExitStatus, ProcError, Stream};

#[tokio::test]
async fn output_arrives_before_exit_and_stdin_answers() {
    let s = supervisor();
    let (_, mut attached) = s
        .sup
        .spawn_attached("t", &spec("python3", &["-c", "import sys\nprint('first', flush=True)\nline = sys.stdin.readline()\nprint('got', line.strip())"]))
        .await
        .unwrap();
    // The program waits for stdin, so "first" can only have come while it runs.
    read_until(&mut attached.stdout, "first\n").await;
    assert_eq!(s.sup.info("t").unwrap().status, None);
    s.sup.write_stdin("t", b"hello\n").await.unwrap();
    let rest = read_until(&mut attached.stdout, "got hello\n").await;
    assert_eq!(rest, "got hello\n");
    assert_eq!(s.sup.wait("t").await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(
        s.sup.read_log("t", Stream::Stdout).unwrap(),
        b"first\ngot hello\n"
    );
    assert!(
        attached.stdout.recv().await.is_none(),
        "the stream ends with the output"
    );
}

#[tokio::test]
async fn close_stdin_gives_eof() {
    let s = supervisor();
    let (_, mut attached) = s
        .sup
        .spawn_attached("cat", &spec("cat", &[]))
        .await
        .unwrap();
    s.sup.write_stdin("cat", b"one\ntwo\n").await.unwrap();
    read_until(&mut attached.stdout, "one\ntwo\n").await;
    s.sup.close_stdin("cat").await.unwrap();
    assert_eq!(s.sup.wait("cat").await.unwrap(), ExitStatus::Exited(0));
    let err = s.sup.write_stdin("cat", b"late").await.unwrap_err();
    assert!(matches!(err, ProcError::StdinClosed(_)), "{err:?}");
    assert!(matches!(
        s.sup.write_stdin("nope", b"x").await,
        Err(ProcError::Unknown(_))
    ));
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test]
async fn an_ended_program_keeps_no_descriptor_open() {
    const RUNS: usize = 60;
    let s = supervisor();
    // One run first, so that what the supervisor opens once (its journal, the runtime's
    // descriptors) is open before counting.
    s.sup.spawn("warm", &spec("true", &[])).await.unwrap();
    s.sup.wait("warm").await.unwrap();
    let before = open_fds();
    for i in 0..RUNS {
        let id = format!("t{i}");
        s.sup.spawn(&id, &spec("true", &[])).await.unwrap();
        assert_eq!(s.sup.wait(&id).await.unwrap(), ExitStatus::Exited(0));
    }
    let after = open_fds();
    // Each run kept its stdin pipe open before; half a descriptor a run leaves room for what
    // other tests of this binary open meanwhile when they share the process.
    assert!(
        after < before + RUNS / 2,
        "{RUNS} ended programs left {} descriptors open",
        after.saturating_sub(before)
    );
    let err = s.sup.write_stdin("t0", b"late").await.unwrap_err();
    assert!(matches!(err, ProcError::StdinClosed(_)), "{err:?}");
}

/// Size of a stream's log files together.
fn log_bytes(s: &Sup, id: &str) -> u64 {
    ["out", "out.1"]
        .iter()
        .filter_map(|ext| {
            std::fs::metadata(s.dir.path().join(format!("state/logs/{id}.{ext}"))).ok()
        })
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_slow_reader_blocks_the_program() {
    let s = supervisor();
    const TOTAL: usize = 20 * 1024 * 1024;
    let (_, mut attached) = s
        .sup
        .spawn_attached(
            "flood",
            &spec("head", &["-c", &TOTAL.to_string(), "/dev/zero"]),
        )
        .await
        .unwrap();
    // Nobody reads: the log must stop growing far below the total, the program still running.
    let mut last = (u64::MAX, std::time::Instant::now());
    wait_until("the log to stop growing", || {
        let now = log_bytes(&s, "flood");
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        last.1.elapsed() > Duration::from_secs(1)
    })
    .await;
    let stalled = log_bytes(&s, "flood");
    assert!(
        stalled < 4 * 1024 * 1024,
        "logged {stalled} bytes with nobody reading"
    );
    assert_eq!(
        s.sup.info("flood").unwrap().status,
        None,
        "the program is blocked, not done"
    );
    // Reading lets it finish, with every byte delivered in order.
    let (out, err) = drain(&mut attached).await;
    assert_eq!(out.len(), TOTAL);
    assert!(out.iter().all(|b| *b == 0) && err.is_empty());
    assert_eq!(s.sup.wait("flood").await.unwrap(), ExitStatus::Exited(0));
}

#[tokio::test]
async fn a_dropped_reader_unblocks_the_program() {
    let s = supervisor();
    let (_, attached) = s
        .sup
        .spawn_attached("flood", &spec("head", &["-c", "3000000", "/dev/zero"]))
        .await
        .unwrap();
    drop(attached);
    assert_eq!(s.sup.wait("flood").await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(log_bytes(&s, "flood"), 3_000_000);
}

#[tokio::test]
async fn attach_later_sees_new_output() {
    let s = supervisor();
    s.sup.spawn("late", &spec("cat", &[])).await.unwrap();
    let mut attached = s.sup.attach("late").unwrap();
    s.sup.write_stdin("late", b"after attach\n").await.unwrap();
    read_until(&mut attached.stdout, "after attach\n").await;
    s.sup.close_stdin("late").await.unwrap();
    let (out, _) = drain(&mut attached).await;
    assert!(out.is_empty());
    s.sup.wait("late").await.unwrap();
    // Attaching to an ended process gives streams that end at once.
    let mut ended = s.sup.attach("late").unwrap();
    assert_eq!(drain(&mut ended).await, (Vec::new(), Vec::new()));
}

#[tokio::test]
async fn close_stdin_is_not_held_up_by_a_blocked_write() {
    let s = supervisor();
    s.sup
        .spawn("deaf", &spec("sleep", &["1000"]))
        .await
        .unwrap();
    let sup = s.sup.clone();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = std::sync::Arc::clone(&started);
    // More than a pipe holds: the write blocks, as the program never reads. On this
    // single-threaded runtime the writer runs until it blocks before the test goes on.
    let writer = tokio::spawn(async move {
        writing.store(true, std::sync::atomic::Ordering::SeqCst);
        sup.write_stdin("deaf", &vec![b'x'; 1 << 20]).await
    });
    wait_until("the writer to start", || {
        started.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    assert!(!writer.is_finished(), "the write is blocked");
    tokio::time::timeout(DEADLINE, s.sup.close_stdin("deaf"))
        .await
        .expect("close finished")
        .unwrap();
    let written = tokio::time::timeout(DEADLINE, writer)
        .await
        .expect("write gave up")
        .unwrap();
    assert!(
        matches!(written, Err(ProcError::StdinClosed(_))),
        "{written:?}"
    );
    s.sup.stop("deaf", Duration::from_secs(20)).await.unwrap();
}

/// A piped stream is not logged, and once its reader is gone the program's writes fail: a
/// shell gets `SIGPIPE` (killed 13), as in `yes | head -1`.
#[tokio::test]
async fn a_piped_stream_whose_reader_leaves_gives_epipe() {
    let s = supervisor();
    let piped = plexus_proc::Piped {
        stdout: true,
        ..Default::default()
    };
    let (_, mut attached) = s
        .sup
        .spawn_piped("yes", &spec("yes", &[]), piped)
        .await
        .unwrap();
    read_until(&mut attached.stdout, "y\ny\n").await;
    drop(attached.stdout);
    assert_eq!(s.sup.wait("yes").await.unwrap(), ExitStatus::Killed(13));
    assert!(s.sup.read_log("yes", Stream::Stdout).unwrap().is_empty());

    // A program that ignores SIGPIPE sees the write fail with EPIPE and exits by itself.
    let (_, attached) = s
        .sup
        .spawn_piped(
            "py",
            &spec(
                "python3",
                &[
                    "-c",
                    "import sys, signal\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\ntry:\n    while True:\n        sys.stdout.write('x' * 4096)\nexcept BrokenPipeError:\n    sys.stderr.write('epipe\\n')\n    sys.stderr.flush()\n    import os\n    os._exit(3)",
                ],
            ),
            piped,
        )
        .await
        .unwrap();
    let plexus_proc::Attached { stdout, mut stderr } = attached;
    drop(stdout);
    let said = read_until(&mut stderr, "epipe\n").await;
    assert!(said.ends_with("epipe\n"));
    assert_eq!(s.sup.wait("py").await.unwrap(), ExitStatus::Exited(3));
}
