//! Pipes and graphs on one node: a real kernel, supervisor and node database, real programs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use plexus_kernel::Error;
use plexus_services::testing::TestTerminal;
use plexus_units::{to_text, Unit};

mod common;

use common::{field, Node};

/// The node's admin runs everything here.
async fn node() -> Node {
    common::node().await
}

async fn call(
    n: &Node,
    term: Option<std::sync::Arc<TestTerminal>>,
    text: &str,
) -> Result<Unit, Error> {
    n.call(&n.admin, term, text).await
}

/// `sh -c SCRIPT` as a graph process.
fn sh(stage: &str, script: &str, extra: &str) -> String {
    format!("{{stage:{stage} run:[sh -c {:?}] {extra}}}", script)
}

async fn graph(node: &Node, procs: &[String], pipes: &[(&str, &str)]) -> (Unit, String) {
    let term = TestTerminal::new();
    let pipes: Vec<String> = pipes
        .iter()
        .map(|(a, b)| format!("{{from:{a} to:{b}}}"))
        .collect();
    let msg = format!(
        "{{graph:{{name:test procs:[{}] pipes:[{}]}} attach:t}}@sys.proc",
        procs.join(" "),
        pipes.join(" ")
    );
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        call(node, Some(term.clone()), &msg),
    )
    .await
    .expect("the graph ends")
    .unwrap();
    (reply, term.output())
}

#[tokio::test]
async fn a_pipeline_gives_what_the_shell_gives() {
    let n = node().await;
    let (reply, out) = graph(
        &n,
        &[
            sh("1", "seq 1 20000", ""),
            sh("2", "grep 7", ""),
            sh("3", "sort -r | head -3", "console:t"),
        ],
        &[("1", "2"), ("2", "3")],
    )
    .await;
    let want = std::process::Command::new("sh")
        .args(["-c", "seq 1 20000 | grep 7 | sort -r | head -3"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(out, String::from_utf8(want).unwrap());
    assert_eq!(field(&reply, "code"), "0", "{}", to_text(&reply));
}

#[tokio::test]
async fn exit_status_follows_pipefail_and_stderr_reaches_the_terminal() {
    let n = node().await;
    let (reply, out) = graph(
        &n,
        &[
            sh("1", "echo hi; echo oops >&2; exit 3", ""),
            sh("2", "cat", "console:t"),
        ],
        &[("1", "2")],
    )
    .await;
    assert_eq!(field(&reply, "code"), "3");
    assert!(out.contains("hi\n"), "{out}");
    assert!(out.contains("<err>oops\n"), "{out}");
}

#[tokio::test]
async fn a_consumer_that_leaves_gives_its_producer_epipe() {
    let n = node().await;
    let (reply, out) = graph(
        &n,
        &[sh("1", "yes", ""), sh("2", "head -2", "console:t")],
        &[("1", "2")],
    )
    .await;
    assert_eq!(out, "y\ny\n");
    // yes dies of SIGPIPE: 128 + 13, as bash's pipefail reports it.
    assert_eq!(field(&reply, "code"), "141", "{}", to_text(&reply));
}

#[tokio::test]
async fn fan_out_split_and_merge_keep_records_whole() {
    let n = node().await;
    // One producer split over two replicas, merged into one consumer: every line once.
    let (reply, out) = graph(
        &n,
        &[
            sh(
                "src",
                "seq 1 5000 | sed 's/$/ padding-to-make-the-line-longer/'",
                "split:t",
            ),
            sh("a", "cat", ""),
            sh("b", "cat", ""),
            sh("sink", "sort -n", "console:t"),
        ],
        &[("src", "a"), ("src", "b"), ("a", "sink"), ("b", "sink")],
    )
    .await;
    assert_eq!(field(&reply, "code"), "0");
    let want: String = (1..=5000)
        .map(|i| format!("{i} padding-to-make-the-line-longer\n"))
        .collect();
    assert_eq!(out, want);

    // Fan-out: every consumer gets every byte.
    let (_, out) = graph(
        &n,
        &[
            sh("src", "seq 1 3000", ""),
            sh("a", "wc -l", "console:t"),
            sh("b", "wc -l", "console:t"),
        ],
        &[("src", "a"), ("src", "b")],
    )
    .await;
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["3000", "3000"]);
}

#[tokio::test]
async fn bad_graphs_are_refused_before_anything_starts() {
    let n = node().await;
    let cases = [
        ("{graph:{procs:[{stage:a run:[cat]} {stage:b run:[cat]}] pipes:[{from:a to:b} {from:b to:a}]}}", "cycle"),
        ("{graph:{procs:[{stage:a run:[cat] out:json} {stage:b run:[cat]}] pipes:[{from:a to:b}]}}", "writes json"),
        ("{graph:{procs:[{stage:a run:[cat]}] pipes:[{from:a to:zz}]}}", "zz"),
        ("{graph:{procs:[{stage:a run:[cat]} {stage:a run:[cat]}]}}", "two processes named a"),
        ("{graph:{procs:[{stage:a run:[cat] on:nowhere}]}}", "nowhere"),
        ("{graph:{procs:[{stage:a run:[cat] links:[{from:zz min_rate:1}]}]}}", "links from zz"),
        ("{graph:{procs:[{stage:a run:[cat] links:[{min_rate:1}]}]}}", "names the stage"),
        ("{graph:{procs:[{stage:a run:[cat] links:[{from:a min_rate:0}]}]}}", "min_rate must be positive"),
        ("{graph:{procs:[{stage:a run:[cat] links:x}]}}", "a list of"),
    ];
    for (msg, says) in cases {
        let e = call(&n, None, &format!("{msg}@sys.proc"))
            .await
            .unwrap_err();
        assert!(e.message().contains(says), "{msg}: {}", e.message());
    }
    let ps = call(&n, None, "ps@sys.proc").await.unwrap();
    assert_eq!(to_text(&ps), "[]", "nothing started");
}

#[tokio::test]
async fn graphs_and_pipes_are_listed_and_a_graph_is_killed_whole() {
    let n = node().await;
    let started = n
        .call(
            &n.admin,
            None,
            &format!(
                "{{graph:{{name:slow procs:[{} {}] pipes:[{{from:1 to:2}}]}}}}@sys.proc",
                sh("1", "yes", ""),
                sh("2", "sleep 600", "")
            ),
        )
        .await
        .unwrap();
    let graph = field(&started, "graph");
    // The consumer never reads: the producer fills the window and blocks.
    let mut listed = String::new();
    for _ in 0..100 {
        listed = to_text(&call(&n, None, "{pipes:t text:t}@sys.proc").await.unwrap());
        if listed.contains("1.0M") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed.contains(&format!("{graph}.1")), "{listed}");
    let graphs = to_text(&call(&n, None, "{graphs:t text:t}@sys.proc").await.unwrap());
    assert!(
        graphs.contains("slow") && graphs.contains("running (2 of 2)"),
        "{graphs}"
    );
    let killed = n
        .call(
            &n.admin,
            None,
            &format!("{{kill:{graph} grace:100}}@sys.proc"),
        )
        .await
        .unwrap();
    assert_eq!(field(&killed, "graph"), graph);
    let graphs = to_text(&call(&n, None, "{graphs:t text:t}@sys.proc").await.unwrap());
    assert!(graphs.contains("ended"), "{graphs}");
}

#[tokio::test]
async fn order_by_restores_the_order_of_merged_records() {
    let n = node().await;
    // Odd indexes from one producer, even from the other, each slow at times.
    let odd = r#"for i in $(seq 1 2 99); do echo "{\"index\": $i, \"v\": \"o$i\"}"; done"#;
    let even = r#"for i in $(seq 2 2 100); do echo "{\"index\": $i}"; if [ $i = 50 ]; then sleep 0.3; fi; done"#;
    let (reply, out) = graph(
        &n,
        &[
            sh("odd", odd, "out:json"),
            sh("even", even, "out:json"),
            sh("sink", "cat", "in:json order_by:index console:t"),
        ],
        &[("odd", "sink"), ("even", "sink")],
    )
    .await;
    assert_eq!(field(&reply, "code"), "0");
    let indexes: Vec<i64> = out
        .lines()
        .map(|l| {
            let u = plexus_units::json::from_json(l.trim()).unwrap();
            u.as_map()
                .unwrap()
                .get_str("index")
                .unwrap()
                .as_int()
                .unwrap()
                .to_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn named_channels_carry_what_the_program_writes_to_them() {
    let n = node().await;
    let term = TestTerminal::new();
    let msg = format!(
        "{{graph:{{procs:[{} {}] pipes:[{{from:cam to:view out:video in:frames}}]}} attach:t}}@sys.proc",
        sh("cam", "echo frame-1 > \"$PLX_OUT_VIDEO\"; echo on-stdout", ""),
        sh("view", "cat \"$PLX_IN_FRAMES\"; cat", "console:t"),
    );
    let reply = tokio::time::timeout(Duration::from_secs(60), call(&n, Some(term.clone()), &msg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&reply, "code"), "0", "{}", to_text(&reply));
    // The named output reached the named input; standard output went to its log, not the pipe.
    assert_eq!(term.output(), "frame-1\n");

    // A producer that never opens its channel: the consumer's input ends all the same.
    let msg = format!(
        "{{graph:{{procs:[{} {}] pipes:[{{from:cam to:view out:video in:frames}}]}} attach:t}}@sys.proc",
        sh("cam", "true", ""),
        sh("view", "cat \"$PLX_IN_FRAMES\"; echo done", "console:t"),
    );
    let term = TestTerminal::new();
    let reply = tokio::time::timeout(Duration::from_secs(60), call(&n, Some(term.clone()), &msg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(term.output(), "done\n", "{}", to_text(&reply));

    // A consumer that never opens its named input: the producer gets SIGPIPE.
    let msg = format!(
        "{{graph:{{procs:[{} {}] pipes:[{{from:cam to:view out:video in:frames}}]}} attach:t}}@sys.proc",
        sh("cam", "yes > \"$PLX_OUT_VIDEO\"", ""),
        sh("view", "sleep 0.5", "console:t"),
    );
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        call(&n, Some(TestTerminal::new()), &msg),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(field(&reply, "code"), "141", "{}", to_text(&reply));

    // Bad channel names are refused.
    let e = n.call(&n.admin, None,
            "{graph:{procs:[{stage:a run:[echo]} {stage:b run:[echo]}] pipes:[{from:a to:b out:`Bad-Name`}]}}@sys.proc",
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("Bad-Name"), "{}", e.message());
}
