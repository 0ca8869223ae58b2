//! End to end: pipes, shell pipelines and `.osh` graphs across the nodes of `plx up --nodes
//! 3`, real programs at both ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_up_port, kill9, node_logs, node_pid, signal, until, Down, Plx};

fn up(plx: &Plx, tags: &[&str]) {
    let port = free_up_port().to_string();
    let mut args = vec!["up", "--nodes", "3", "--detach", "--port", &port];
    for t in tags {
        args.extend(["--tag", t]);
    }
    plx.run(&args, b"").ok();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn shell(line: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", line])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Waits (a minute at most) for the `plx osh` in `child` to end well, and gives its output.
/// A graph that does not end fails the test with what the cluster shows of it.
fn graph_output(plx: &Plx, mut child: std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            let show = |args: &[&str]| plx.run(args, b"").out();
            panic!(
                "the graph did not end\nits output:\n{}\n{}\nps:\n{}\npipes:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                show(&["ps", "--long"]),
                show(&["pipes"]),
                node_logs(plx, 60),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// [`graph_output`] of `surveillance.osh`: the banner first and the last frame's alarm last.
fn surveillance_output(plx: &Plx, child: std::process::Child) -> String {
    let out = graph_output(plx, child);
    assert!(out.starts_with("watching 200 frames\n"), "{out}");
    assert!(out.ends_with("ALARM 200\n"), "{out}");
    out
}

/// Starts `plx osh` on the fixture `script` and waits until its process `stage` runs: the
/// running `plx osh`, and the process's id and node.
fn osh_running(plx: &Plx, script: &str, stage: &str) -> (std::process::Child, String, String) {
    let child = plx
        .command(&["osh", fixtures().join(script).to_str().unwrap()])
        .spawn()
        .unwrap();
    let mut line = String::new();
    until(&format!("{stage} to run"), 30, || {
        line = ps_line(plx, stage).unwrap_or_default();
        line.contains("running")
    });
    let words: Vec<&str> = line.split_whitespace().collect();
    (child, words[0].to_owned(), words[3].to_owned())
}

/// How many children of process `node` run (a copy of) Plexus process `id`: their
/// environment says so.
fn copies_running(node: i32, id: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mark = format!("PLX_PROCESS={id}\0");
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            let path = e.path();
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // pid (comm) state ppid …: the comm may hold spaces, the fields after it do not.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            let environ = std::fs::read(path.join("environ")).unwrap_or_default();
            ppid == Some(node) && String::from_utf8_lossy(&environ).contains(&mark)
        })
        .count()
}

/// The line of `plx ps` of a stage (`Surveillance:detect`) or name.
fn ps_line(plx: &Plx, stage: &str) -> Option<String> {
    let ps = plx.run(&["ps"], b"").ok();
    ps.lines().find(|l| l.contains(stage)).map(str::to_owned)
}

/// The graph a line of `plx ps` belongs to, by its process's stage name (`pipeline:2`).
fn node_of(plx: &Plx, stage: &str) -> String {
    let ps = plx.run(&["ps"], b"").ok();
    ps.lines()
        .find(|l| l.contains(stage) && l.contains("running"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no running {stage} in\n{ps}"))
        .to_owned()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/osh")
}

#[test]
fn pipelines_span_three_nodes_end_well_and_fail_clearly() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &[]);

    // Three machines, one line: the output is the single-machine shell's.
    let dir = tempfile::tempdir().unwrap();
    let nums = dir.path().join("nums.txt");
    std::fs::write(&nums, shell("seq 1 200000")).unwrap();
    let line = format!(
        "cat {} @n1 | grep 7 @n2 | sort -rn | tail -5 @n3",
        nums.display()
    );
    let got = plx.run(&["run", &line], b"").ok();
    let want = shell(&format!(
        "cat {} | grep 7 | sort -rn | tail -5",
        nums.display()
    ));
    assert_eq!(got, want);

    // End of file follows the last byte across every hop.
    let wc = plx.run(&["run", "printf 'a\\nb\\n' @n1 | cat @n2 | wc -l @n3"], b"");
    assert_eq!(wc.ok().trim(), "2");

    // pipefail: the last failure's status; every stage's stderr comes here.
    let failed = plx.run(
        &[
            "run",
            "seq 1 3 @n1 | sh -c 'cat >/dev/null; echo gone >&2; exit 7' @n2 | cat @n3",
        ],
        b"",
    );
    assert_eq!(failed.code, 7, "{}", failed.stderr);
    assert!(failed.stderr.contains("gone"), "{}", failed.stderr);

    // The terminal's input is the first stage's.
    let piped_in = plx.run(&["run", "tr a-z A-Z @n2 | cat @n3"], b"hello\n");
    assert_eq!(piped_in.ok(), "HELLO\n");

    // A consumer that leaves: the producer gets SIGPIPE (141), or EPIPE if it ignores it.
    let yes = plx.run(&["run", "yes @n2 | head -2 @n3"], b"");
    assert_eq!((yes.code, yes.out().as_str()), (141, "y\ny\n"));
    let writer = "import signal, sys\nsignal.signal(signal.SIGPIPE, signal.SIG_IGN)\ntry:\n    \
                  while True:\n        sys.stdout.write('x' * 4096)\n        sys.stdout.flush()\n\
                  except BrokenPipeError:\n    sys.stderr.write('EPIPE\\n')\n    sys.stderr.flush()\n    \
                  import os\n    os._exit(5)";
    let epipe = plx.run(
        &[
            "run",
            &format!("python3 -c \"{writer}\" @n1 | head -c 10 @n3"),
        ],
        b"",
    );
    assert_eq!(epipe.code, 5, "{}", epipe.stderr);
    assert!(epipe.stderr.contains("EPIPE"), "{}", epipe.stderr);
    assert_eq!(epipe.out(), "x".repeat(10));

    // Split across replicas and merged again: every record whole, once.
    let src = "seq 1 30000 | sed 's/$/ and a tail of text to make the record longer/'";
    let graph = format!(
        "{{graph:{{procs:[{{stage:src run:[sh -c {src:?}] on:n1 split:t}} \
         {{stage:fast run:[cat] on:n2}} {{stage:slow run:[sh -c `while read l; do echo \"$l\"; done`] on:n3}} \
         {{stage:sink run:[sort -n] on:n1 console:t}}] \
         pipes:[{{from:src to:fast}} {{from:src to:slow}} {{from:fast to:sink}} {{from:slow to:sink}}]}} attach:t}}@sys.proc"
    );
    let merged = plx.run(&["send", &graph], b"").ok();
    let want: String = (1..=30000)
        .map(|i| format!("{i} and a tail of text to make the record longer\n"))
        .collect();
    if !merged.starts_with(&want) {
        let at = merged
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(merged.len().min(want.len()));
        let from = merged[..at].rfind('\n').map_or(0, |i| i + 1);
        let tail = merged.len().saturating_sub(600).max(from);
        panic!(
            "the merged records differ at byte {at} of {} (want {}):\n{}\n…\n{}",
            merged.len(),
            want.len(),
            &merged[from..merged.len().min(from + 600)],
            &merged[tail..]
        );
    }
    assert!(
        merged[want.len()..].contains("code:0"),
        "{}",
        &merged[want.len()..]
    );

    // Bad pipelines say why and start nothing.
    let err = plx.run(&["run", "cat f @n1 @n2 | sort"], b"").fails();
    assert!(err.contains("two nodes"), "{err}");
    let err = plx.run(&["run", "cat f @nowhere | sort"], b"").fails();
    assert!(err.contains("nowhere"), "{err}");

    // A pipe to a node that dies mid-stream ends with an error both ends show.
    let started = plx
        .run(
            &[
                "run",
                "--detach",
                "yes @n1 | python3 -c 'import sys, time\nwhile True:\n    sys.stdin.buffer.read(1024)\n    time.sleep(0.1)' @n3",
            ],
            b"",
        )
        .ok();
    let graph = started.trim().to_owned();
    until("the pipe to carry bytes", 20, || {
        plx.run(&["pipes", "--graph", &graph], b"")
            .ok()
            .contains("open")
    });
    kill9(node_pid(&plx, "n3"));
    until("the pipe to fail", 30, || {
        plx.run(&["pipes", "--graph", &graph], b"")
            .ok()
            .contains("failed")
    });
    until("the producer to stop", 30, || {
        plx.run(&["graphs"], b"")
            .ok()
            .lines()
            .any(|l| l.contains(" n1 ") && (l.contains("killed") || l.contains("exited")))
    });
    let pipes = plx.run(&["pipes", "--graph", &graph], b"").ok();
    assert!(pipes.contains("failed"), "{pipes}");
    let ps = plx.run(&["ps"], b"").ok();
    let producer = ps
        .lines()
        .find(|l| l.contains("pipeline:1") && l.contains(" n1 ") && l.contains("yes"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let log = plx.run(&["logs", "--stderr", &producer], b"").ok();
    assert!(log.contains("[plexus: pipe") && log.contains("n3"), "{log}");
}

#[test]
fn a_slow_consumer_holds_its_producer_back_with_flat_memory() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &[]);
    let started = plx
        .run(
            &[
                "run",
                "--detach",
                "yes @n1 | python3 -c 'import sys, time\nwhile True:\n    sys.stdin.buffer.read(1024)\n    time.sleep(1)' @n2",
            ],
            b"",
        )
        .ok();
    let graph = started.trim().to_owned();
    let n1 = node_pid(&plx, "n1");
    // Past the start: the window and the programs' pipes fill in the first moments.
    std::thread::sleep(Duration::from_secs(3));
    let mut samples = Vec::new();
    for _ in 0..30 {
        samples.push(rss_kib(n1));
        std::thread::sleep(Duration::from_secs(1));
    }
    let (lo, hi) = (
        samples.iter().min().copied().unwrap(),
        samples.iter().max().copied().unwrap(),
    );
    assert!(
        hi - lo <= 2048,
        "n1's memory moved {} KiB while its producer was held back: {samples:?}",
        hi - lo
    );
    let raw = plx.run(&["pipes", "--graph", &graph, "--raw"], b"").ok();
    let backlog: u64 = raw
        .split("backlog:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.trim_end_matches('}').parse().ok())
        .unwrap();
    assert!(
        backlog <= 1 << 20,
        "backlog {backlog} over the 1 MiB window: {raw}"
    );
    // The consumer took about 1 KiB a second (plus what its pipe buffer holds).
    let pipes = plx.run(&["pipes", "--graph", &graph], b"").ok();
    assert!(pipes.contains("open"), "{pipes}");
    plx.run(&["kill", &graph, "--grace", "100"], b"").ok();
}

fn no_fuse() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    None
}

#[test]
fn osh_scripts_run_as_oneos_wrote_them() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &["n1:camera", "n1:desk", "n2:worker", "n3:worker"]);
    let osh = fixtures();

    // Caret errors, and nothing starts.
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, text: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let run = plx.run(&["osh", path.to_str().unwrap()], b"");
        run.fails()
    };
    let graph = "graph G () { node a: process(\"sh\", \"x.sh\", \"json\"); \
                 node b: process(\"sh\", \"y.sh\");\n edge e: a -> b; }\n";
    let err = bad("formats.osh", &format!("{graph}spawn G();\n"));
    assert!(err.contains("formats.osh:") && err.contains('^'), "{err}");
    let err = bad(
        "unknown.osh",
        "graph G () { node a: process(\"sh\", \"x\");\nedge e: a -> zz; }\n",
    );
    assert!(err.contains("zz") && err.contains('^'), "{err}");
    let err = bad(
        "cycle.osh",
        "graph G () { node a: process(\"sh\", \"x\"); node b: process(\"sh\", \"y\");\n\
         edge e1: a -> b; edge e2: b -> a; }\nspawn G();\n",
    );
    assert!(err.contains("cycle") && err.contains('^'), "{err}");
    let two_place = "graph G () { node a: process(\"sh\", \"x\"); }\n\
                     policy P () for G { place (#camera) a;\n place (#desk) a; }\nspawn G() with P();\n";
    assert!(bad("place.osh", two_place).contains('^'));
    let rates = "graph G () { node a: process(\"sh\", \"x\"); node b: process(\"sh\", \"y\"); edge e: a -> b; }\n\
                 policy P () for G { min_rate (5) e; max_rate (1) e; }\nspawn G() with P();\n";
    assert!(bad("rates.osh", rates).contains('^'));
    let other = "graph G () { node a: process(\"sh\", \"x\"); }\ngraph H () { node a: process(\"sh\", \"x\"); }\n\
                 policy P () for H { }\nspawn G() with P();\n";
    assert!(bad("other.osh", other).contains('^'));
    let nowhere = "graph G () { node a: process(\"sh\", \"x\"); }\n\
                   policy P () for G {\n  place (#camera && #worker) a; }\nspawn G() with P();\n";
    let err = bad("nowhere.osh", nowhere);
    assert!(
        err.contains("nowhere.osh:3:3:") && err.contains("^^^^^"),
        "{err}"
    );
    for node in ["n1", "n2", "n3"] {
        assert!(err.contains(node), "each node and why: {err}");
    }
    let ps = plx.run(&["ps"], b"").ok();
    assert_eq!(ps.lines().count(), 1, "nothing started: {ps}");

    // test_spawn shows the schedule and starts nothing.
    let test = dir.path().join("test.osh");
    std::fs::write(
        &test,
        std::fs::read_to_string(osh.join("surveillance.osh"))
            .unwrap()
            .replace(
                "spawn Surveillance() with Watch();",
                "test_spawn(Surveillance(), Watch());",
            ),
    )
    .unwrap();
    let schedule = plx.run(&["osh", test.to_str().unwrap()], b"").ok();
    assert!(
        schedule.contains("camera: ") && schedule.contains("on n1"),
        "{schedule}"
    );
    assert_eq!(plx.run(&["ps"], b"").ok().lines().count(), 1);

    // The word count of OneOS's DSPBench, verbatim, with stand-ins for its programs: its
    // data and writer are in the cluster's tree, as in OneOS.
    match no_fuse() {
        Some(why) => eprintln!("SKIPPED the word count: {why}"),
        None => {
            let words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"];
            let text: Vec<&str> = (0..20_000).map(|i| words[(i * 7 + i / 3) % 8]).collect();
            let books = dir.path().join("books.dat");
            std::fs::write(&books, text.join(" ")).unwrap();
            for d in ["/home", "/home/root", "/wc"] {
                let _ = plx.run(&["fs", "mkdir", d], b"");
            }
            let writer = osh.join("writer.js");
            plx.run(
                &[
                    "fs",
                    "put",
                    writer.to_str().unwrap(),
                    "/home/root/writer.js",
                ],
                b"",
            )
            .ok();
            plx.run(
                &["fs", "put", books.to_str().unwrap(), "/wc/books.dat"],
                b"",
            )
            .ok();
            let script = osh.join("wordcount.osh");
            let run = plx.run(&["osh", "--cwd", "/wc", script.to_str().unwrap()], b"");
            assert_eq!(run.ok(), "Starting DSPBench - wordcount\n");
            let out = plx.run(&["fs", "cat", "/wc/wordcount.out"], b"").ok();
            for w in words {
                let want = text.iter().filter(|t| **t == w).count();
                let line = format!("{{\"word\":\"{w}\",\"count\":{want}}}");
                assert!(out.contains(&line), "{line} in {out}");
            }
        }
    }

    // The surveillance graph: the camera where the camera is, the alarm on this console, and
    // the detector kept alive through a kill -9 of its machine.
    let child = plx
        .command(&["osh", osh.join("surveillance.osh").to_str().unwrap()])
        .spawn()
        .unwrap();
    until("the detector and the camera to run", 30, || {
        let ps = plx.run(&["ps"], b"").ok();
        ["Surveillance:detect", "Surveillance:camera"]
            .iter()
            .all(|stage| {
                ps.lines()
                    .any(|l| l.contains(stage) && l.contains("running"))
            })
    });
    let first = node_of(&plx, "Surveillance:detect");
    assert!(first == "n2" || first == "n3", "placed by its tag: {first}");
    assert_eq!(node_of(&plx, "Surveillance:camera"), "n1");
    std::thread::sleep(Duration::from_secs(2));
    kill9(node_pid(&plx, &first));
    let out = surveillance_output(&plx, child);
    assert!(out.contains("ALARM 5\n"), "{out}");
    let ps = plx.run(&["ps", "--long"], b"").ok();
    let detect = ps
        .lines()
        .find(|l| l.contains("Surveillance:detect"))
        .unwrap();
    assert_ne!(
        detect.split_whitespace().nth(3),
        Some(first.as_str()),
        "moved off {first}: {detect}"
    );
    assert!(detect.contains("moved from"), "{detect}");
}

/// A node that stops answering for a while (a busy machine, a laptop's lid) is declared down:
/// its `always` process moves and its pinned one is lost. When it answers again it stops its
/// copy of the moved one, whose pipes find the new copy, and runs the pinned one again.
#[test]
fn a_node_thought_down_gives_its_processes_back() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &["n1:camera", "n1:desk", "n2:worker", "n3:worker"]);
    let (child, detect, frozen) = osh_running(&plx, "surveillance.osh", "Surveillance:detect");
    plx.run(
        &[
            "run", "--detach", "--on", &frozen, "--name", "pinned", "--", "sleep", "600",
        ],
        b"",
    )
    .ok();
    let node = node_pid(&plx, &frozen);
    assert_eq!(copies_running(node, &detect), 1);
    signal(node, "STOP");
    let moved = std::panic::catch_unwind(|| {
        until(
            "the detector to move and the pinned process to be lost",
            30,
            || {
                let detect = ps_line(&plx, "Surveillance:detect").unwrap_or_default();
                let pinned = ps_line(&plx, "pinned").unwrap_or_default();
                detect.contains("running")
                    && detect.split_whitespace().nth(3) != Some(frozen.as_str())
                    && pinned.contains("lost")
            },
        )
    });
    signal(node, "CONT");
    if let Err(e) = moved {
        std::panic::resume_unwind(e);
    }
    until(
        "the frozen node to stop its copy of the detector",
        30,
        || copies_running(node, &detect) == 0,
    );
    surveillance_output(&plx, child);
    until("the pinned process to run again on its node", 30, || {
        ps_line(&plx, "pinned")
            .is_some_and(|l| l.contains("running") && l.split_whitespace().nth(3) == Some(&frozen))
    });
}

/// `min_rate` and `max_latency` place an edge's consumer only on a node whose measured link
/// from its producer's node meets them; none that does is a caret error naming each node.
#[test]
fn osh_edges_are_placed_by_measured_links() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &["n1:camera", "n2:worker", "n3:worker"]);
    until(
        "every link's round trip and rate to be measured",
        60,
        || {
            let links = plx.run(&["nodes", "--links"], b"").ok();
            links.lines().filter(|l| l.ends_with("MB/s")).count() == 6
        },
    );
    let dir = tempfile::tempdir().unwrap();
    for program in ["x.sh", "y.sh"] {
        std::fs::write(dir.path().join(program), "cat\n").unwrap();
    }
    let schedule = |policy: &str| {
        let path = dir.path().join("links.osh");
        let script = format!(
            "graph G () {{ node a: process(\"sh\", \"x.sh\"); node b: process(\"sh\", \"y.sh\");\n\
             edge e: a -> b; }}\n\
             policy P () for G {{ place (#camera) a; place (#worker) b;\n  {policy} }}\n\
             test_spawn(G(), P());\n"
        );
        std::fs::write(&path, script).unwrap();
        plx.run(&["osh", path.to_str().unwrap()], b"")
    };
    // Links that meet the needs: the consumer goes to a worker.
    let within = schedule("max_latency (5000) e; min_rate (0.001) e;").ok();
    let b = within.lines().find(|l| l.starts_with("b: ")).unwrap_or("");
    assert!(b.ends_with("on n2") || b.ends_with("on n3"), "{within}");
    // No link is that fast: refused, each worker with its link's figure.
    let err = schedule("max_latency (0.0001) e;").fails();
    assert!(err.contains("round trip") && err.contains('^'), "{err}");
    for worker in ["n2", "n3"] {
        assert!(
            err.lines()
                .any(|l| l.contains(worker) && l.contains("its link to n1")),
            "{worker} and why: {err}"
        );
    }
    let err = schedule("min_rate (1000000000) e;").fails();
    assert!(err.contains("its link to n1 carries"), "{err}");
    assert_eq!(
        plx.run(&["ps"], b"").ok().lines().count(),
        1,
        "nothing started"
    );
}

/// `checkpoint`: a program that saves its state to `$PLX_CHECKPOINT` goes on from it after
/// its machine dies and it restarts on another.
#[test]
fn a_checkpointed_program_restarts_from_its_saved_state() {
    let plx = Plx::new();
    let _down = Down(&plx);
    up(&plx, &["n1:desk", "n2:worker", "n3:worker"]);
    let (child, id, first) = osh_running(&plx, "counter.osh", "Counter:count");
    until("the cluster to keep a count of 10 or more", 30, || {
        let kept = plx.run(&["fs", "cat", &format!("/.plexus/checkpoints/{id}")], b"");
        kept.code == 0 && kept.out().trim().parse::<u64>().is_ok_and(|n| n >= 10)
    });
    kill9(node_pid(&plx, &first));
    let out = graph_output(&plx, child);
    let starts: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 2, "one start, one restart: {out}");
    assert_eq!(starts[0], 0, "{out}");
    assert!(starts[1] >= 10, "went on from the saved count: {out}");
    assert!(out.ends_with("60\n"), "{out}");
    // The restart's log says what it was given.
    let logs = plx.run(&["logs", "--stderr", &id], b"").ok();
    assert!(
        logs.contains("checkpoint: restored the state saved last"),
        "{logs}"
    );
}
