//! End to end: programs run through `sys.proc` on real `plx` nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{free_up_port, until, Down, Plx};

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

#[test]
fn a_cluster_streams_a_remote_program_and_lists_processes_alike_everywhere() {
    use std::io::BufRead;

    let plx = Plx::new();
    let port = free_up_port().to_string();
    let down = Down(&plx);
    plx.run(&["up", "--nodes", "3", "--detach", "--port", &port], b"")
        .ok();

    // Sent to n1's socket, placed on n2 (`on:`) and run by n2's sys.proc: its first line
    // reaches this terminal while the program still runs.
    let word = marker(2);
    let mut child = plx
        .command(&[
            "send",
            &format!("{{run:[sh -c `echo first; sleep {word}`] on:n2 attach:t}}@sys.proc"),
        ])
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "first\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the program still runs"
    );

    // Every node lists the same processes (the running one included).
    let lists: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| {
            let ps = send(&plx, &format!("{{ps:t text:f}}@sys.proc:{n}")).ok();
            // n2 measures its program for whoever asks.
            assert!(ps.contains("rss:"), "{n}: {ps}");
            // Live figures are measured at each call; the rest must agree.
            ps.split(' ')
                .filter(|f| !f.starts_with("cpu:") && !f.starts_with("rss:"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(
        lists[0].contains("node:n2") && lists[0].contains("state:running"),
        "{}",
        lists[0]
    );
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0], lists[2]);

    // `plx down` leaves no program behind, and the caller learns its program ended.
    plx.run(&["down"], b"").ok();
    until("the program to stop", 15, || !running_with(&word));
    let _ = child.kill();
    let _ = child.wait();
    drop(down);
}
