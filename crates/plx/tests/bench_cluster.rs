//! Smoke tests of `plx bench rr|detect|failover|store|proc|fs|pipe` with minimal sizes: each
//! starts its own cluster, prints one JSON object with the expected fields, and cleans up after
//! itself. No timing is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use plexus_units::json::from_json;
use plexus_units::{to_text, Unit};

/// Runs `plx bench ARGS` with a private temporary directory; checks that it succeeded and
/// left nothing behind there, and gives its JSON output as a unit.
fn bench(args: &[&str]) -> Unit {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plx"))
        .arg("bench")
        .args(args)
        .env("TMPDIR", tmp.path())
        .env("PLX_HOME", tmp.path().join("home"))
        .env_remove("PLX_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "plx bench {args:?} failed: {stdout}\n{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {stdout}");
    from_json(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The value at `path` (keys separated by dots).
fn at<'a>(u: &'a Unit, path: &str) -> &'a Unit {
    path.split('.').fold(u, |u, k| {
        u.as_map()
            .and_then(|m| m.get_str(k))
            .unwrap_or_else(|| panic!("no field {path} in {}", to_text(u)))
    })
}

fn number(u: &Unit, path: &str) -> f64 {
    let v = at(u, path);
    to_text(v)
        .parse()
        .unwrap_or_else(|_| panic!("{path} is not a number: {}", to_text(v)))
}

/// Asserts that each field is a positive number.
fn positive(u: &Unit, paths: &[&str]) {
    for p in paths {
        let n = number(u, p);
        assert!(n > 0.0, "{p} = {n} in {}", to_text(u));
    }
}

/// Asserts that each field is a bool.
fn verdicts(u: &Unit, paths: &[&str]) {
    for p in paths {
        assert!(matches!(at(u, p), Unit::Bool(_)), "{p} in {}", to_text(u));
    }
}

#[test]
fn rr() {
    let j = bench(&["rr", "--requests", "60", "--json"]);
    assert_eq!(at(&j, "bench").as_str(), Some("rr"));
    positive(
        &j,
        &[
            "request_response.p50_us",
            "request_response.p99_us",
            "request_response.baseline_tcp_p50_us",
            "request_response.baseline_relay_p50_us",
            "request_response.floor_p50_us",
            "request_response.ratio",
            "node_to_node_calls.calls",
            "node_to_node_calls.calls_per_sec",
            "client_requests.requests",
            "client_requests.requests_per_sec",
            "client_requests.node_threads",
            "client_requests.one_outstanding_requests",
            "client_requests.one_outstanding_requests_per_sec",
            "memory.idle_rss_mb.n1",
            "memory.rest_rss_mb.n2",
            "memory.max_rest_rss_mb",
        ],
    );
    verdicts(
        &j,
        &[
            "request_response.met",
            "node_to_node_calls.met",
            "client_requests.met",
            "memory.met",
        ],
    );
}

#[test]
fn detect() {
    let j = bench(&["detect", "--runs", "1", "--json"]);
    assert_eq!(at(&j, "bench").as_str(), Some("detect"));
    for profile in ["default", "local"] {
        positive(
            &j,
            &[
                &format!("{profile}.median_ms"),
                &format!("{profile}.max_ms"),
                &format!("{profile}.baseline_poll_rtt_p50_ms"),
                &format!("{profile}.target_ms"),
            ],
        );
        verdicts(&j, &[&format!("{profile}.met")]);
        let runs = at(&j, &format!("{profile}.runs_ms")).as_list().unwrap();
        assert_eq!(runs.len(), 1);
    }
}

#[test]
fn failover() {
    let j = bench(&["failover", "--runs", "1", "--json"]);
    assert_eq!(at(&j, "bench").as_str(), Some("failover"));
    positive(
        &j,
        &["median_ms", "max_ms", "baseline_write_p50_ms", "target_ms"],
    );
    verdicts(&j, &["met"]);
    assert_eq!(at(&j, "runs_ms").as_list().unwrap().len(), 1);
}

#[test]
fn store() {
    let j = bench(&["store", "--writes", "40", "--json"]);
    assert_eq!(at(&j, "bench").as_str(), Some("store"));
    for cluster in ["three_nodes", "one_node"] {
        positive(
            &j,
            &[
                &format!("{cluster}.one_client.p50_us"),
                &format!("{cluster}.one_client.writes_per_sec"),
                &format!("{cluster}.clients_32.writes"),
                &format!("{cluster}.clients_32.writes_per_sec"),
                &format!("{cluster}.baseline_fsync.p50_us"),
                &format!("{cluster}.baseline_fsync.per_sec"),
                &format!("{cluster}.ratio_one_client_p50_to_fsync_p50"),
                &format!("{cluster}.ratio_32_clients_to_fsync_rate"),
            ],
        );
    }
    verdicts(
        &j,
        &[
            "three_nodes.met_writes_per_sec_32",
            "three_nodes.met_p50_one_client",
        ],
    );
}

#[test]
fn proc() {
    let j = bench(&[
        "proc", "--spawns", "5", "--runs", "16", "--procs", "9", "--kills", "1", "--json",
    ]);
    assert_eq!(at(&j, "bench").as_str(), Some("proc"));
    positive(
        &j,
        &[
            "remote_spawn.p50_us",
            "remote_spawn.p99_us",
            "remote_spawn.baseline_local_spawn_p50_us",
            "remote_spawn.baseline_rr_p50_us",
            "remote_spawn.baseline_p50_us",
            "remote_spawn.ratio",
            "spawn_rate.runs_per_sec",
            "spawn_rate.baseline_raw_spawn_wait_per_sec",
            "spawn_rate.ratio",
            "many_processes.ps_text_median_ms",
            "many_processes.baseline_empty_ps_text_median_ms",
            "rescheduling.median_ms",
        ],
    );
    verdicts(
        &j,
        &[
            "remote_spawn.met",
            "spawn_rate.met",
            "many_processes.rss_met",
            "many_processes.ps_met",
            "rescheduling.met",
        ],
    );
    assert_eq!(number(&j, "spawn_rate.runs"), 16.0);
    assert_eq!(number(&j, "spawn_rate.failed_runs"), 0.0);
    assert_eq!(number(&j, "many_processes.started"), 9.0);
    assert_eq!(number(&j, "many_processes.failed_starts"), 0.0);
    // Every sleep is one row of the table, and each node ran a third of them.
    assert_eq!(number(&j, "many_processes.ps_rows"), 9.0);
    for node in ["n1", "n2", "n3"] {
        assert_eq!(
            number(&j, &format!("many_processes.per_node.{node}.processes")),
            3.0
        );
    }
    assert_eq!(at(&j, "rescheduling.available"), &Unit::Bool(true));
    assert_eq!(at(&j, "rescheduling.runs_ms").as_list().unwrap().len(), 1);
}

#[test]
fn help_describes_every_bench() {
    for sub in ["rr", "detect", "failover", "store", "proc", "pipe"] {
        let out = Command::new(env!("CARGO_BIN_EXE_plx"))
            .args(["bench", sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--json"), "{text}");
    }
}

#[test]
fn fs() {
    let j = bench(&[
        "fs", "--mib", "8", "--files", "64", "--listed", "64", "--stats", "10", "--json",
    ]);
    assert_eq!(at(&j, "bench").as_str(), Some("fs"));
    positive(
        &j,
        &[
            "raw_write_mb_s",
            "raw_write_3_copies_mb_s",
            "raw_read_cold_mb_s",
            "put_mb_s",
            "get_mb_s",
            "put_ratio",
            "get_ratio",
            "small_files_per_sec",
            "fsync_per_sec",
            "ls_ms",
            "stat_p50_ms",
        ],
    );
    verdicts(
        &j,
        &["put_met", "get_met", "small_met", "ls_met", "stat_met"],
    );
    assert_eq!(number(&j, "file_bytes"), 8.0 * 1024.0 * 1024.0);
    assert_eq!(number(&j, "small_files"), 64.0);
    assert_eq!(number(&j, "small_failed"), 0.0);
    assert_eq!(number(&j, "ls_files"), 64.0);
}

#[test]
fn web() {
    if !["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        // scripts/test installs Chromium and its driver; a bare cargo test may lack them.
        eprintln!("skipped: chromedriver is not installed");
        return;
    }
    let j = bench(&["web", "--loads", "2", "--watch", "1", "--json"]);
    assert_eq!(at(&j, "bench").as_str(), Some("web"));
    positive(
        &j,
        &[
            "overview.tti_ms",
            "overview.dom_interactive_ms",
            "overview.load_event_ms",
            "overview.baseline_static_page_ms",
            "assets.transferred_bytes",
            "assets.resources",
            "assets.embedded_bytes",
            "down.shown_ms",
            "down.baseline_detected_ms",
            "cpu.nodes_cores",
            "cpu.baseline_nodes_no_page_cores",
        ],
    );
    // The page shows a node down after the membership detects it, never before.
    let lag = number(&j, "down.lag_ms");
    assert!(
        lag >= 0.0,
        "the page showed n3 down before n1 knew: {lag} ms"
    );
    assert_eq!(number(&j, "overview.loads"), 2.0);
    verdicts(&j, &["overview.met", "assets.met", "down.met"]);
}

#[test]
fn pipe() {
    let j = bench(&[
        "pipe",
        "--bytes",
        "4194304",
        "--runs",
        "1",
        "--lines",
        "2000",
        "--latency-lines",
        "20",
        "--stall",
        "1",
        "--json",
    ]);
    assert_eq!(at(&j, "bench").as_str(), Some("pipe"));
    positive(
        &j,
        &[
            "throughput.mb_s",
            "throughput.wall_mb_s",
            "throughput.baseline_relay_mb_s",
            "throughput.baseline_tls_relay_mb_s",
            "throughput.baseline_tcp_mb_s",
            "throughput.ratio",
            "throughput.ratio_to_tls_relay",
            "throughput.ratio_to_tcp",
            "lines.records_per_sec",
            "lines.baseline_local_records_per_sec",
            "lines.ratio",
            "latency.p50_us",
            "latency.p99_us",
            "latency.baseline_local_p50_us",
            "latency.baseline_tcp_rtt_p50_us",
            "latency.ratio",
            "stalled.backlog_bytes",
            "stalled.producer_node_rss_before_mb",
            "stalled.producer_node_rss_end_mb",
            "stalled.consumer_node_rss_end_mb",
        ],
    );
    verdicts(&j, &["throughput.met", "stalled.met"]);
    assert_eq!(number(&j, "throughput.bytes"), 4194304.0);
    assert_eq!(at(&j, "throughput.runs_mb_s").as_list().unwrap().len(), 1);
    assert_eq!(number(&j, "lines.lines"), 2000.0);
    assert_eq!(number(&j, "latency.lines"), 20.0);
    // Flow control, not timing: a consumer that never reads holds at most the window.
    assert_eq!(number(&j, "stalled.window_bytes"), 1048576.0);
    assert!(number(&j, "stalled.max_backlog_bytes") <= 1048576.0);
}
