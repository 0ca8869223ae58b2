//! End to end: programs run through `sys.proc` on real `plx` nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Plx;

/// Stops the nodes of a home even when a test fails half-way.
struct Down<'a>(&'a Plx);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down"], b"");
    }
}

fn send(plx: &Plx, unit: &str) -> common::Run {
    plx.run(&["send", unit], b"")
}

/// A word no other test's programs carry: this process id and a counter.
fn marker(n: u32) -> String {
    format!("{}.{n}", 1_000_000 + std::process::id())
}

/// Whether a process whose command line holds `word` runs on this machine.
fn running_with(word: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(word))
            .unwrap_or(false)
    })
}

fn until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_single_node_runs_programs_attached_and_stops_them_with_the_node() {
    let plx = Plx::new();
    let down = Down(&plx);
    plx.run(&["up", "--detach"], b"").ok();

    let run = send(
        &plx,
        "{run:[sh -c `echo hello; echo oops >&2; exit 4`] attach:t}@sys.proc",
    );
    let out = run.ok();
    assert!(out.starts_with("hello\n"), "{out}");
    assert!(
        out.contains("state:exited") && out.contains("code:4"),
        "{out}"
    );
    assert!(run.stderr.contains("oops"), "{}", run.stderr);

    let err = send(&plx, "{run:[`/no/such/prog`]}@sys.proc").fails();
    assert!(err.contains("/no/such/prog"), "{err}");

    // A program left running is stopped by `plx down`.
    let word = marker(1);
    let detached = send(&plx, &format!("{{run:[sleep `{word}`]}}@sys.proc")).ok();
    assert!(detached.contains("id:"), "{detached}");
    until("the program to run", 10, || running_with(&word));
    let ps = send(&plx, "{ps:t text:t}@sys.proc").ok();
    assert!(ps.contains("running") && ps.contains(&word), "{ps}");
    plx.run(&["down"], b"").ok();
    until("the program to stop", 10, || !running_with(&word));

    // Its record says it was lost with the node.
    plx.run(&["up", "--detach"], b"").ok();
    let ps = send(&plx, "ps@sys.proc").ok();
    assert!(ps.contains("state:lost"), "{ps}");
    drop(down);
}
