//! `plx bench pipe`: pipes between processes on different nodes (`sys.pipe`, a graph of
//! `sys.proc`), each figure next to a baseline measured in the same run (`docs/benchmarks.md`).
//!
//! The programs at the ends are hidden `plx bench` helpers run by the nodes: `pipe-source`
//! writes zeros in 64 KiB blocks, `pipe-sink` reads everything and says how much came and
//! when, `pipe-lines` writes 100-byte lines each carrying its send time (`CLOCK_REALTIME`,
//! which every process of this machine shares), `pipe-count` counts them and, for the
//! latency, takes each line's send time from its receive time. The baselines run the very
//! same programs joined by a raw relay (`pipe-relay`: plain blocking reads and writes),
//! by TCP, or by OS pipes on this machine.
//!
//! The phases run in the order (c), (a), (b): (c) first, so that the producer's node starts
//! from its memory at rest rather than from what the large transfers left in its allocator.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::fd::AsFd;
use std::process::ChildStdout;
use std::time::{SystemTime, UNIX_EPOCH};

use plexus_protocol::{OutputStream, TermRequest, TermResponse};
use plexus_units::Map;

use super::*;

/// Bytes a source writes at a time, and a sink or relay reads at most at a time.
const BLOCK: usize = 64 << 10;
/// Bytes of one line of `pipe-lines`, its newline included.
const LINE: usize = 100;
/// Where a line's sequence number and send time sit.
const SEQ: std::ops::Range<usize> = 0..12;
const SENT: std::ops::Range<usize> = 13..33;
/// The pace of the latency lines: one every 5 ms.
const LINE_EVERY: Duration = Duration::from_millis(5);
/// The two ends of the relay baseline's TCP connection (as two nodes' addresses would be).
const RELAY_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const RELAY_TO: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
/// The window of the stalled pipe: the default of a graph
/// (`plexus_services::sys_proc`'s `DEFAULT_WINDOW`), written out so that the bound is the one
/// configured.
const WINDOW: u64 = 1 << 20;
/// How long the stalled pipe runs before it is first read.
const SETTLE: Duration = Duration::from_secs(3);
/// The longest one measured transfer may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Round trips of the TCP baseline of the latency.
const RTT_COUNT: usize = 10_000;

/// Options of `plx bench pipe`.
#[derive(Args, Debug)]
pub struct PipeArgs {
    /// Print one JSON object (figures, baselines, ratios, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Bytes each throughput run of (a) moves, through the pipe and through each baseline.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1 << 20..=1 << 40))]
    pub bytes: u64,
    /// Runs of each throughput measurement of (a) and (b); the figures are their medians.
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=20))]
    pub runs: u64,
    /// 100-byte lines each run of (b) sends through the 3-stage pipeline.
    #[arg(long, default_value_t = 2_000_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1_000..=1_000_000_000))]
    pub lines: u64,
    /// Lines of (b)'s latency measurement, one every 5 ms.
    #[arg(long, default_value_t = 400, value_name = "N",
          value_parser = clap::value_parser!(u64).range(10..=100_000))]
    pub latency_lines: u64,
    /// Seconds (c) watches the stalled pipe after it settled (3 s).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub stall: u64,
    /// The window of (a)'s pipe: bytes sent and not yet taken by the sink, at most (a
    /// graph's default when not given).
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1 << 16..=1 << 30))]
    pub window: Option<u64>,
}

/// What (a) measured: MB/s of each run.
struct Throughput {
    plexus: Vec<f64>,
    /// The Plexus runs, from sending the graph to its reply (placement and starts included).
    plexus_wall: Vec<f64>,
    relay: Vec<f64>,
    /// The relay whose connection is a Plexus link (mutual TLS 1.3, as between nodes).
    tls_relay: Vec<f64>,
    tcp: Vec<f64>,
}

/// What (b) measured.
struct LineFigures {
    /// Records/s of each run.
    plexus: Vec<f64>,
    local: Vec<f64>,
    /// Latency of the paced lines, µs.
    latency: Latency,
    local_latency: Latency,
    tcp: Figures,
}

/// Delays of lines, as `pipe-count --latency` reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// What (c) measured.
struct Stall {
    /// Backlog of the pipe once settled, and the most seen while watching it, bytes.
    settled_backlog: u64,
    max_backlog: u64,
    /// Bytes the consumer took once settled and at the end.
    settled_bytes: u64,
    end_bytes: u64,
    state: String,
    /// The producer's node (n1) and the consumer's (n2): VmRSS before the graph, once
    /// settled, and at the end, MB.
    producer_mb: [f64; 3],
    consumer_mb: [f64; 3],
    /// The kill's answer.
    killed: String,
}

/// `plx bench pipe`.
pub fn pipe(args: PipeArgs) -> Result<()> {
    let say = progress(args.json);
    let (t, l, s) = run(pipe_measure(&args, &say))?;
    let mb = median(&t.plexus);
    let relay = median(&t.relay);
    let tls_relay = median(&t.tls_relay);
    let tcp = median(&t.tcp);
    let ratio = mb / relay.max(1e-9);
    let tls_ratio = mb / tls_relay.max(1e-9);
    let tcp_ratio = mb / tcp.max(1e-9);
    let rec = median(&l.plexus);
    let local_rec = median(&l.local);
    let rec_ratio = rec / local_rec.max(1e-9);
    let lat_ratio = l.latency.p50_us / l.tcp.p50_us.max(1e-9);
    let [p_before, p_settled, p_end] = s.producer_mb;
    let [c_before, _, c_end] = s.consumer_mb;
    let held_met = s.max_backlog <= WINDOW;
    if args.json {
        let j = cluster_report(
            "pipe",
            3,
            [
            (
                "throughput",
                Json::obj([
                    (
                        "what",
                        "pipe-source on n1 writes 64 KiB blocks into pipe-sink on n2 through a \
                         pipe of {graph:… attach:t}@sys.proc; MB/s from the sink's first byte \
                         to its last"
                            .into(),
                    ),
                    ("bytes", args.bytes.into()),
                    ("runs", args.runs.into()),
                    ("mb_s", mb.into()),
                    ("runs_mb_s", Json::nums(&t.plexus)),
                    ("wall_mb_s", median(&t.plexus_wall).into()),
                    ("baseline_relay_mb_s", relay.into()),
                    ("baseline_relay_runs_mb_s", Json::nums(&t.relay)),
                    ("baseline_tls_relay_mb_s", tls_relay.into()),
                    ("baseline_tls_relay_runs_mb_s", Json::nums(&t.tls_relay)),
                    ("ratio_to_tls_relay", tls_ratio.into()),
                    ("baseline_tcp_mb_s", tcp.into()),
                    ("baseline_tcp_runs_mb_s", Json::nums(&t.tcp)),
                    ("ratio", ratio.into()),
                    ("ratio_to_tcp", tcp_ratio.into()),
                    ("target_ratio", 0.7.into()),
                    ("met", (ratio >= 0.7).into()),
                ]),
            ),
            (
                "lines",
                Json::obj([
                    (
                        "what",
                        "100-byte lines: pipe-lines on n1 → cat on n2 → pipe-count on n3, from \
                         the first line sent to the last received"
                            .into(),
                    ),
                    ("lines", args.lines.into()),
                    ("runs", args.runs.into()),
                    ("records_per_sec", rec.into()),
                    ("runs_records_per_sec", Json::nums(&l.plexus)),
                    ("baseline_local_records_per_sec", local_rec.into()),
                    ("baseline_local_runs_records_per_sec", Json::nums(&l.local)),
                    ("ratio", rec_ratio.into()),
                ]),
            ),
            (
                "latency",
                Json::obj([
                    (
                        "what",
                        "the same pipeline, one line every 5 ms; receive time minus send time at \
                         pipe-count"
                            .into(),
                    ),
                    ("lines", args.latency_lines.into()),
                    ("interval_ms", (LINE_EVERY.as_secs_f64() * 1e3).into()),
                    ("p50_us", l.latency.p50_us.into()),
                    ("p99_us", l.latency.p99_us.into()),
                    ("max_us", l.latency.max_us.into()),
                    ("baseline_local_p50_us", l.local_latency.p50_us.into()),
                    ("baseline_local_p99_us", l.local_latency.p99_us.into()),
                    ("baseline_tcp_rtt_p50_us", l.tcp.p50_us.into()),
                    ("baseline_tcp_rtt_p99_us", l.tcp.p99_us.into()),
                    ("ratio", lat_ratio.into()),
                ]),
            ),
            (
                "stalled",
                Json::obj([
                    (
                        "what",
                        "yes on n1 into sleep 600 on n2 (never reads); {pipes:t graph:ID}@sys.proc \
                         after 3 s and each second after"
                            .into(),
                    ),
                    ("window_bytes", WINDOW.into()),
                    ("backlog_bytes", s.settled_backlog.into()),
                    ("max_backlog_bytes", s.max_backlog.into()),
                    ("consumer_bytes", s.end_bytes.into()),
                    ("watch_s", args.stall.into()),
                    ("producer_node_rss_before_mb", p_before.into()),
                    ("producer_node_rss_settled_mb", p_settled.into()),
                    ("producer_node_rss_end_mb", p_end.into()),
                    ("producer_node_rss_change_mb", (p_end - p_settled).into()),
                    ("consumer_node_rss_before_mb", c_before.into()),
                    ("consumer_node_rss_end_mb", c_end.into()),
                    ("target_bytes", WINDOW.into()),
                    ("met", held_met.into()),
                ]),
            ),
        ]);
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench pipe: 3-node cluster (profile {PROFILE}, {} build)",
        build_profile()
    );
    println!();
    println!(
        "(a) throughput across nodes: pipe-source on n1 writes {} MiB in 64 KiB blocks into pipe-sink on n2 (medians of {} runs)",
        args.bytes >> 20,
        args.runs
    );
    println!(
        "    plexus     {mb:>8.0} MB/s   runs [{}]   through a pipe of {{graph:… attach:t}}@sys.proc ({:.0} MB/s from the call to its reply)",
        runs_list(&t.plexus),
        median(&t.plexus_wall)
    );
    println!(
        "    relay      {relay:>8.0} MB/s   runs [{}]   source → relay → TCP {RELAY_FROM} → {RELAY_TO} → relay → sink, blocking reads and writes",
        runs_list(&t.relay)
    );
    println!(
        "    TLS relay  {tls_relay:>8.0} MB/s   runs [{}]   the same relays over a Plexus link (mutual TLS 1.3, as between nodes)",
        runs_list(&t.tls_relay)
    );
    println!(
        "    raw TCP    {tcp:>8.0} MB/s   runs [{}]   source → TCP → sink",
        runs_list(&t.tcp)
    );
    println!(
        "    ratio {ratio:.2} to the relay — target ≥ 0.70: {}; {tls_ratio:.2} to the TLS relay; {tcp_ratio:.2} to raw TCP",
        verdict(ratio >= 0.7)
    );
    println!();
    println!(
        "(b) 100-byte lines through 3 nodes: pipe-lines on n1 → cat on n2 → pipe-count on n3 ({} lines, medians of {} runs)",
        args.lines, args.runs
    );
    println!(
        "    plexus     {rec:>10.0} records/s   runs [{}]",
        runs_list(&l.plexus)
    );
    println!(
        "    local      {local_rec:>10.0} records/s   runs [{}]   the same programs joined by OS pipes here",
        runs_list(&l.local)
    );
    println!("    ratio {rec_ratio:.2} to the local pipeline");
    println!(
        "    latency, one line every {} ms, {} lines: receive time at pipe-count minus send time",
        LINE_EVERY.as_millis(),
        args.latency_lines
    );
    println!(
        "    plexus     p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        l.latency.p50_us, l.latency.p99_us, l.latency.max_us
    );
    println!(
        "    local      p50 {:>8.1} µs   p99 {:>8.1} µs   the same programs joined by OS pipes here",
        l.local_latency.p50_us, l.local_latency.p99_us
    );
    println!(
        "    TCP rtt    p50 {:>8.1} µs   p99 {:>8.1} µs   raw TCP ping-pong, 127.0.0.1, two processes, {LINE}-byte frames",
        l.tcp.p50_us, l.tcp.p99_us
    );
    println!("    ratio {lat_ratio:.1}× the TCP round trip (p50)");
    println!();
    println!(
        "(c) stalled consumer: yes on n1 into sleep 600 on n2 (never reads), window {WINDOW} bytes"
    );
    println!(
        "    backlog {} bytes after {} s, at most {} bytes over the next {} s — target ≤ {WINDOW}: {}",
        s.settled_backlog,
        SETTLE.as_secs(),
        s.max_backlog,
        args.stall,
        verdict(held_met)
    );
    println!(
        "    the consumer took {} bytes after {} s, {} at the end (the OS pipe into sleep); pipe state {}",
        s.settled_bytes,
        SETTLE.as_secs(),
        s.end_bytes,
        s.state
    );
    println!(
        "    n1 (producer's node) VmRSS {p_before:.1} MB before, {p_settled:.1} MB after {} s, {p_end:.1} MB {} s later: {:+.1} MB while stalled ({:+.1} MB in all)",
        SETTLE.as_secs(),
        args.stall,
        p_end - p_settled,
        p_end - p_before
    );
    println!(
        "    n2 (consumer's node) VmRSS {c_before:.1} MB before, {c_end:.1} MB at the end; graph killed: {}",
        s.killed
    );
    Ok(())
}

async fn pipe_measure(
    args: &PipeArgs,
    say: &dyn Fn(&str),
) -> Result<(Throughput, LineFigures, Stall)> {
    say("starting a 3-node cluster");
    let cluster = LocalCluster::start(3, PROFILE).await?;
    let r = pipe_on(&cluster, args, say).await;
    cluster.explain(r)
}

async fn pipe_on(
    cluster: &LocalCluster,
    args: &PipeArgs,
    say: &dyn Fn(&str),
) -> Result<(Throughput, LineFigures, Stall)> {
    let runs = usize::try_from(args.runs)?;
    let stall = stalled(cluster, Duration::from_secs(args.stall), say).await?;
    let t = throughput(cluster, args.bytes, args.window, runs, say).await?;
    let l = lines(cluster, args.lines, args.latency_lines, runs, say).await?;
    Ok((t, l, stall))
}

// ------------------------------------------------------------------------------------------
// The measurements

/// One stage of a graph: its name, program and node, and whether its output comes to the
/// caller.
struct Step<'a> {
    name: &'a str,
    argv: Vec<String>,
    on: &'a str,
    console: bool,
}

/// `{graph:{name procs pipes window} attach}` of `steps`, each piped into the next.
fn graph_body(name: &str, steps: &[Step<'_>], attach: bool, window: Option<u64>) -> Unit {
    let s = |t: &str| Unit::str(t);
    let procs = steps
        .iter()
        .map(|st| {
            let mut m = Map::new();
            m.insert(s("stage"), s(st.name));
            m.insert(s("run"), Unit::List(st.argv.iter().map(|a| s(a)).collect()));
            m.insert(s("on"), s(st.on));
            if st.console {
                m.insert(s("console"), Unit::Bool(true));
            }
            Unit::Map(m)
        })
        .collect();
    let pipes = steps
        .windows(2)
        .map(|w| {
            let mut m = Map::new();
            m.insert(s("from"), s(w[0].name));
            m.insert(s("to"), s(w[1].name));
            Unit::Map(m)
        })
        .collect();
    let mut graph = Map::new();
    graph.insert(s("name"), s(name));
    graph.insert(s("procs"), Unit::List(procs));
    graph.insert(s("pipes"), Unit::List(pipes));
    if let Some(w) = window {
        graph.insert(s("window"), int(w));
    }
    let mut body = Map::new();
    body.insert(s("graph"), Unit::Map(graph));
    if attach {
        body.insert(s("attach"), Unit::Bool(true));
    }
    Unit::Map(body)
}

fn int(n: u64) -> Unit {
    Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What an attached graph gave: the standard output of its console stage, and the time from
/// the call to the reply.
struct Ran {
    stdout: String,
    wall: Duration,
}

/// Runs graph `body` attached from a client of n1, collecting the terminal's output, and
/// checks that it ended with 0.
async fn run_attached(cluster: &LocalCluster, body: &str) -> Result<Ran> {
    let msg = sign_with(&cluster.admin, parse(body)?)?;
    let mut client = Client::connect(&cluster.node(0)?.socket()).await?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let call = client.call_with(
        &msg,
        |request| {
            let response = match request {
                TermRequest::Output { stream, bytes } => {
                    match stream {
                        OutputStream::Stdout => out.extend_from_slice(&bytes),
                        OutputStream::Stderr => err.extend_from_slice(&bytes),
                    }
                    TermResponse::Done
                }
                TermRequest::Process { .. } => TermResponse::Done,
                _ => TermResponse::Unsupported("the bench has no terminal".into()),
            };
            async move { response }
        },
        std::future::pending(),
    );
    let reply = tokio::time::timeout(RUN_TIMEOUT, call)
        .await
        .map_err(|_| anyhow!("the graph did not end within {} s", RUN_TIMEOUT.as_secs()))??;
    let wall = start.elapsed();
    let code = match &reply {
        Reply::Value(v) => v.as_map().and_then(|m| m.get_str("code")).map(to_text),
        _ => None,
    };
    if code.as_deref() != Some("0") {
        bail!(
            "the graph ended otherwise: {}; its standard error: {}",
            describe(&reply),
            String::from_utf8_lossy(&err).trim()
        );
    }
    Ok(Ran {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        wall,
    })
}

/// The text of the `{graph:…}@sys.proc` call of `steps`.
fn graph_call(name: &str, steps: &[Step<'_>], attach: bool, window: Option<u64>) -> String {
    format!(
        "{}@sys.proc",
        to_text(&graph_body(name, steps, attach, window))
    )
}

fn exe(cluster: &LocalCluster) -> Result<String> {
    cluster
        .exe
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the plx executable's path is not UTF-8"))
}

/// `plx bench ARGS…` as a graph stage's program.
fn helper_argv(exe: &str, args: &[&str]) -> Vec<String> {
    [exe, "bench"]
        .iter()
        .chain(args)
        .map(|a| (*a).to_owned())
        .collect()
}

/// (a): `runs` times each, interleaved: through a Plexus pipe, the relay, raw TCP.
async fn throughput(
    cluster: &LocalCluster,
    bytes: u64,
    window: Option<u64>,
    runs: usize,
    say: &dyn Fn(&str),
) -> Result<Throughput> {
    let exe = exe(cluster)?;
    let count = bytes.to_string();
    let call = graph_call(
        "bench-bytes",
        &[
            Step {
                name: "source",
                argv: helper_argv(&exe, &["pipe-source", &count]),
                on: "n1",
                console: false,
            },
            Step {
                name: "sink",
                argv: helper_argv(&exe, &["pipe-sink"]),
                on: "n2",
                console: true,
            },
        ],
        true,
        window,
    );
    let mut t = Throughput {
        plexus: Vec::new(),
        plexus_wall: Vec::new(),
        relay: Vec::new(),
        tls_relay: Vec::new(),
        tcp: Vec::new(),
    };
    for run in 1..=runs {
        say(&format!(
            "(a) run {run}/{runs}: {} MiB n1 → n2 through a pipe",
            bytes >> 20
        ));
        let ran = run_attached(cluster, &call).await?;
        let got = report(&ran.stdout)?;
        check_bytes(&got, bytes)?;
        t.plexus.push(sink_rate(&got)?);
        t.plexus_wall
            .push(bytes as f64 / 1e6 / ran.wall.as_secs_f64().max(1e-9));
        say(&format!("(a) run {run}/{runs}: baseline, the raw relay"));
        let got = relay_run(&cluster.exe, bytes, false)?;
        check_bytes(&got, bytes)?;
        t.relay.push(sink_rate(&got)?);
        say(&format!(
            "(a) run {run}/{runs}: baseline, the relay over a Plexus link"
        ));
        let got = relay_run(&cluster.exe, bytes, true)?;
        check_bytes(&got, bytes)?;
        t.tls_relay.push(sink_rate(&got)?);
        say(&format!("(a) run {run}/{runs}: baseline, raw TCP"));
        let got = tcp_run(&cluster.exe, bytes)?;
        check_bytes(&got, bytes)?;
        t.tcp.push(sink_rate(&got)?);
    }
    Ok(t)
}

fn check_bytes(got: &BTreeMap<String, u64>, want: u64) -> Result<()> {
    let n = field(got, "bytes")?;
    if n != want {
        bail!("the sink got {n} bytes of {want}");
    }
    Ok(())
}

/// MB/s of a `pipe-sink` report: its bytes over the time from its first byte to its last.
fn sink_rate(got: &BTreeMap<String, u64>) -> Result<f64> {
    let ns = field(got, "last_ns")?.saturating_sub(field(got, "first_ns")?);
    Ok(field(got, "bytes")? as f64 / 1e6 / (ns as f64 / 1e9).max(1e-9))
}

/// (b): the 3-stage pipeline `runs` times as fast as it goes, each followed by the local
/// one; then the paced lines through both, and the TCP round trip.
async fn lines(
    cluster: &LocalCluster,
    count: u64,
    paced: u64,
    runs: usize,
    say: &dyn Fn(&str),
) -> Result<LineFigures> {
    let exe = exe(cluster)?;
    let (n, every) = (count.to_string(), LINE_EVERY.as_micros().to_string());
    let steps = |lines: Vec<String>, counter: Vec<String>| {
        vec![
            Step {
                name: "lines",
                argv: lines,
                on: "n1",
                console: false,
            },
            Step {
                name: "cat",
                argv: vec!["cat".to_owned()],
                on: "n2",
                console: false,
            },
            Step {
                name: "count",
                argv: counter,
                on: "n3",
                console: true,
            },
        ]
    };
    let fast = graph_call(
        "bench-lines",
        &steps(
            helper_argv(&exe, &["pipe-lines", &n]),
            helper_argv(&exe, &["pipe-count"]),
        ),
        true,
        None,
    );
    let mut plexus = Vec::new();
    let mut local = Vec::new();
    for run in 1..=runs {
        say(&format!(
            "(b) run {run}/{runs}: {count} lines n1 → n2 → n3 through pipes"
        ));
        let got = report(&run_attached(cluster, &fast).await?.stdout)?;
        plexus.push(line_rate(&got, count)?);
        say(&format!("(b) run {run}/{runs}: baseline, OS pipes here"));
        let got = local_lines(&cluster.exe, &["pipe-lines", &n], &["pipe-count"])?;
        local.push(line_rate(&got, count)?);
    }
    let m = paced.to_string();
    say(&format!(
        "(b) latency: {paced} lines, one every {} ms, through pipes",
        LINE_EVERY.as_millis()
    ));
    let slow = graph_call(
        "bench-latency",
        &steps(
            helper_argv(&exe, &["pipe-lines", &m, "--every-us", &every]),
            helper_argv(&exe, &["pipe-count", "--latency"]),
        ),
        true,
        None,
    );
    let got = report(&run_attached(cluster, &slow).await?.stdout)?;
    let latency = latency_of(&got, paced)?;
    say("(b) latency baseline: OS pipes here");
    let got = local_lines(
        &cluster.exe,
        &["pipe-lines", &m, "--every-us", &every],
        &["pipe-count", "--latency"],
    )?;
    let local_latency = latency_of(&got, paced)?;
    say("(b) latency baseline: raw TCP ping-pong between two processes");
    let tcp = tcp_ping_pong(LINE, RTT_COUNT)?;
    Ok(LineFigures {
        plexus,
        local,
        latency,
        local_latency,
        tcp,
    })
}

/// Records/s of a `pipe-count` report: its lines over the time from the first one's sending
/// to the last one's arrival.
fn line_rate(got: &BTreeMap<String, u64>, want: u64) -> Result<f64> {
    let lines = field(got, "lines")?;
    if lines != want {
        bail!("pipe-count got {lines} lines of {want}");
    }
    let ns = field(got, "last_ns")?.saturating_sub(field(got, "first_sent_ns")?);
    Ok(lines as f64 / (ns as f64 / 1e9).max(1e-9))
}

fn latency_of(got: &BTreeMap<String, u64>, want: u64) -> Result<Latency> {
    let lines = field(got, "lines")?;
    if lines != want {
        bail!("pipe-count got {lines} lines of {want}");
    }
    let us = |k: &str| field(got, k).map(|ns| ns as f64 / 1e3);
    Ok(Latency {
        p50_us: us("p50_ns")?,
        p99_us: us("p99_ns")?,
        max_us: us("max_ns")?,
    })
}

/// (c): `yes` on n1 into `sleep 600` on n2; the pipe and the nodes' memory after [`SETTLE`],
/// then each second for `watch`; the graph is killed in any case.
async fn stalled(cluster: &LocalCluster, watch: Duration, say: &dyn Fn(&str)) -> Result<Stall> {
    let rss = |i: usize| -> Result<f64> {
        let pid = cluster
            .node(i)?
            .process
            .0
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        rss_mb(pid)
    };
    let before = (rss(0)?, rss(1)?);
    say("(c) yes on n1 into sleep 600 on n2, which never reads");
    let call = graph_call(
        "bench-stall",
        &[
            Step {
                name: "yes",
                argv: vec!["yes".to_owned()],
                on: "n1",
                console: false,
            },
            Step {
                name: "stall",
                argv: vec!["sleep".to_owned(), "600".to_owned()],
                on: "n2",
                console: false,
            },
        ],
        false,
        Some(WINDOW),
    );
    let started = cluster.ask(0, &call).await?;
    let graph = started
        .as_map()
        .and_then(|m| m.get_str("graph"))
        .and_then(Unit::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the graph gave no id: {}", to_text(&started)))?;
    let pipe = format!("{graph}.1");
    let look = format!("{{pipes:t graph:{}}}@sys.proc", to_text(&Unit::str(&graph)));
    let result = async {
        tokio::time::sleep(SETTLE).await;
        let first = pipe_stat(&cluster.ask(0, &look).await?, &pipe)?;
        let settled = (rss(0)?, rss(1)?);
        say(&format!(
            "(c) settled: backlog {} bytes; watching for {} s",
            first.backlog,
            watch.as_secs()
        ));
        let mut max_backlog = first.backlog;
        let mut last = first.clone();
        let end = Instant::now() + watch;
        while Instant::now() < end {
            tokio::time::sleep(
                Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
            )
            .await;
            last = pipe_stat(&cluster.ask(0, &look).await?, &pipe)?;
            max_backlog = max_backlog.max(last.backlog);
        }
        let end = (rss(0)?, rss(1)?);
        anyhow::Ok(Stall {
            settled_backlog: first.backlog,
            max_backlog,
            settled_bytes: first.bytes,
            end_bytes: last.bytes,
            state: last.state,
            producer_mb: [before.0, settled.0, end.0],
            consumer_mb: [before.1, settled.1, end.1],
            killed: String::new(),
        })
    }
    .await;
    say("(c) killing the graph");
    let killed = cluster
        .ask(
            0,
            &format!(
                "{{kill:{} grace:100}}@sys.proc",
                to_text(&Unit::str(&graph))
            ),
        )
        .await;
    let mut stall = result?;
    stall.killed = killed_summary(&killed?);
    Ok(stall)
}

/// The states of a graph's kill reply: `stage states` as `yes killed, sleep killed`.
fn killed_summary(reply: &Unit) -> String {
    let states: Vec<String> = reply
        .as_map()
        .and_then(|m| m.get_str("procs"))
        .and_then(Unit::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(Unit::as_map)
        .map(|m| {
            m.get_str("state")
                .and_then(Unit::as_str)
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    if states.is_empty() {
        to_text(reply)
    } else {
        states.join(", ")
    }
}

/// One pipe as `{pipes:t graph:ID}@sys.proc` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PipeStat {
    backlog: u64,
    bytes: u64,
    state: String,
}

/// The row of pipe `pipe` in a `pipes` reply.
fn pipe_stat(reply: &Unit, pipe: &str) -> Result<PipeStat> {
    let row = reply
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Unit::as_map)
        .find(|m| m.get_str("pipe").and_then(Unit::as_str) == Some(pipe))
        .ok_or_else(|| anyhow!("pipes lists no {pipe}: {}", to_text(reply)))?;
    let n = |k: &str| -> Result<u64> {
        row.get_str(k)
            .and_then(Unit::as_int)
            .and_then(|i| i.to_i64())
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| anyhow!("pipe {pipe} has no {k}: {}", to_text(reply)))
    };
    Ok(PipeStat {
        backlog: n("backlog")?,
        bytes: n("bytes")?,
        state: row
            .get_str("state")
            .and_then(Unit::as_str)
            .unwrap_or("?")
            .to_owned(),
    })
}

// ------------------------------------------------------------------------------------------
// The baselines: the same programs, joined without Plexus

/// A process of a baseline, killed when dropped.
struct Proc {
    name: String,
    child: Reaper,
}

/// `plx bench ARGS…` as a command of this executable.
fn helper(exe: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("bench").args(args);
    cmd
}

/// Starts `cmds` with each one's standard output into the next one's standard input (the
/// first reads nothing, the last's output is piped here).
fn spawn_chain(cmds: Vec<Command>) -> Result<Vec<Proc>> {
    let mut procs: Vec<Proc> = Vec::new();
    let mut input: Option<ChildStdout> = None;
    for mut cmd in cmds {
        let name = cmd
            .get_args()
            .nth(1)
            .unwrap_or_else(|| cmd.get_program())
            .to_string_lossy()
            .into_owned();
        cmd.stdin(input.take().map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        input = child.stdout.take();
        procs.push(Proc {
            name,
            child: Reaper(Some(child)),
        });
    }
    if let Some(c) = procs.last_mut().and_then(|p| p.child.0.as_mut()) {
        c.stdout = input;
    }
    Ok(procs)
}

/// Waits until every process has exited with 0 (at most [`RUN_TIMEOUT`]); the report the
/// last one printed.
fn finish(procs: &mut [Proc]) -> Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut running: Vec<usize> = (0..procs.len()).collect();
    while !running.is_empty() {
        let mut still = Vec::new();
        for i in running {
            let p = &mut procs[i];
            let child = p
                .child
                .0
                .as_mut()
                .ok_or_else(|| anyhow!("{} is gone", p.name))?;
            match child.try_wait()? {
                Some(status) if status.success() => {}
                Some(status) => bail!("{} ended with {status}", p.name),
                None => still.push(i),
            }
        }
        running = still;
        if Instant::now() > deadline {
            bail!(
                "the baseline did not end within {} s",
                RUN_TIMEOUT.as_secs()
            );
        }
        if !running.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut text = String::new();
    if let Some(out) = procs
        .last_mut()
        .and_then(|p| p.child.0.as_mut())
        .and_then(|c| c.stdout.as_mut())
    {
        out.read_to_string(&mut text)?;
    }
    report(&text)
}

/// The relay baseline: `pipe-source | pipe-relay --to` → TCP → `pipe-relay --listen |
/// pipe-sink`; the sink's report.
/// With `tls`, the relays' connection is a Plexus link instead ([`pipe_tls_relay`]).
fn relay_run(exe: &Path, bytes: u64, tls: bool) -> Result<BTreeMap<String, u64>> {
    let to = SocketAddr::from((RELAY_TO, free_port(RELAY_TO)?)).to_string();
    let from = RELAY_FROM.to_string();
    let count = bytes.to_string();
    let mut listen = vec!["pipe-relay", "--listen", &to];
    let mut send = vec!["pipe-relay", "--to", &to, "--from", &from];
    if tls {
        listen.push("--tls");
        send.push("--tls");
    }
    let mut back = spawn_chain(vec![helper(exe, &listen), helper(exe, &["pipe-sink"])])?;
    let mut front = spawn_chain(vec![
        helper(exe, &["pipe-source", &count]),
        helper(exe, &send),
    ])?;
    front.append(&mut back);
    finish(&mut front)
}

/// The raw TCP baseline: `pipe-source --to` → TCP → `pipe-sink --listen`; the sink's report.
fn tcp_run(exe: &Path, bytes: u64) -> Result<BTreeMap<String, u64>> {
    let to = SocketAddr::from((RELAY_TO, free_port(RELAY_TO)?)).to_string();
    let from = RELAY_FROM.to_string();
    let count = bytes.to_string();
    let mut back = spawn_chain(vec![helper(exe, &["pipe-sink", "--listen", &to])])?;
    let mut front = spawn_chain(vec![helper(
        exe,
        &["pipe-source", &count, "--to", &to, "--from", &from],
    )])?;
    front.append(&mut back);
    finish(&mut front)
}

/// The local baseline of (b): `pipe-lines … | cat | pipe-count …` on OS pipes.
fn local_lines(exe: &Path, lines: &[&str], count: &[&str]) -> Result<BTreeMap<String, u64>> {
    let mut procs = spawn_chain(vec![
        helper(exe, lines),
        Command::new("cat"),
        helper(exe, count),
    ])?;
    finish(&mut procs)
}

// ------------------------------------------------------------------------------------------
// The programs (hidden `plx bench` subcommands)

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`: one clock for every process here).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// This process's standard input or output as a file: plain `read` and `write` calls, no
/// buffering.
fn raw_stdin() -> Result<std::fs::File> {
    Ok(std::io::stdin().as_fd().try_clone_to_owned()?.into())
}

fn raw_stdout() -> Result<std::fs::File> {
    Ok(std::io::stdout().as_fd().try_clone_to_owned()?.into())
}

/// Connects to `to` over TCP, from address `from` if given, trying for up to 10 s (the peer
/// may not listen yet).
fn connect(to: SocketAddr, from: Option<IpAddr>) -> Result<TcpStream> {
    let attempt = || -> std::io::Result<TcpStream> {
        let Some(ip) = from else {
            return TcpStream::connect(to);
        };
        let family = if ip.is_ipv4() {
            rustix::net::AddressFamily::INET
        } else {
            rustix::net::AddressFamily::INET6
        };
        let fd = rustix::net::socket(family, rustix::net::SocketType::STREAM, None)?;
        rustix::net::bind(&fd, &SocketAddr::new(ip, 0))?;
        rustix::net::connect(&fd, &to)?;
        Ok(TcpStream::from(fd))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match attempt() {
            Ok(s) => return Ok(s),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e).with_context(|| format!("cannot connect to {to}")),
        }
    }
}

/// Accepts the first connection on `addr`.
fn accept(addr: SocketAddr) -> Result<TcpStream> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    Ok(listener.accept()?.0)
}

/// `plx bench pipe-source`: `bytes` zero bytes in 64 KiB blocks to standard output, or to a
/// TCP connection to `to`.
pub(crate) fn pipe_source(bytes: u64, to: Option<SocketAddr>, from: Option<IpAddr>) -> Result<()> {
    let mut out: Box<dyn Write> = match to {
        Some(addr) => Box::new(connect(addr, from)?),
        None => Box::new(raw_stdout()?),
    };
    let block = vec![0u8; BLOCK];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// `plx bench pipe-sink`: reads standard input (or the first connection on `listen`) to its
/// end and prints `bytes=N first_ns=T last_ns=T`: what came, when the first read returned
/// and when the last one with bytes did.
pub(crate) fn pipe_sink(listen: Option<SocketAddr>) -> Result<()> {
    let mut input: Box<dyn Read> = match listen {
        Some(addr) => Box::new(accept(addr)?),
        None => Box::new(raw_stdin()?),
    };
    let mut buf = vec![0u8; BLOCK];
    let (mut bytes, mut first, mut last) = (0u64, 0u64, 0u64);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        last = now_ns();
        if bytes == 0 {
            first = last;
        }
        bytes += n as u64;
    }
    writeln!(
        raw_stdout()?,
        "bytes={bytes} first_ns={first} last_ns={last}"
    )?;
    Ok(())
}

/// `plx bench pipe-relay`: standard input to a TCP connection to `to` (from `from`), or the
/// first connection on `listen` to standard output; blocking reads of up to 64 KiB, each
/// written whole before the next.
pub(crate) fn pipe_relay(
    listen: Option<SocketAddr>,
    to: Option<SocketAddr>,
    from: Option<IpAddr>,
) -> Result<()> {
    let (mut input, mut output): (Box<dyn Read>, Box<dyn Write>) = match (listen, to) {
        (Some(addr), None) => (Box::new(accept(addr)?), Box::new(raw_stdout()?)),
        (None, Some(addr)) => (Box::new(raw_stdin()?), Box::new(connect(addr, from)?)),
        _ => bail!("pipe-relay takes one of --listen and --to"),
    };
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        output.write_all(&buf[..n])?;
    }
}

/// The keys of the two ends of [`pipe_tls_relay`]: made from fixed seeds, so that each end
/// knows the other's (a benchmark's link on loopback, nothing to keep secret).
fn tls_relay_keys() -> Result<[plexus_identity::Keypair; 2]> {
    let key = |name: &str, seed: u8| {
        plexus_identity::Keypair::from_secret_bytes(
            plexus_identity::KeyKind::Node,
            name,
            &[seed; 32],
        )
    };
    Ok([key("relay-to", 1)?, key("relay-listen", 2)?])
}

/// `plx bench pipe-relay --tls`: [`pipe_relay`] whose TCP connection is a Plexus link, the mutual
/// TLS 1.3 link nodes talk over (`plexus_net`): each read is sent as one frame, and an empty
/// frame ends the stream. What encrypting the hop costs, without the calls and pipes above it.
pub(crate) fn pipe_tls_relay(listen: Option<SocketAddr>, to: Option<SocketAddr>) -> Result<()> {
    use plexus_net::{Allow, Expect, LinkConfig, Listener, TcpTlsTransport, Transport};
    let [sender_key, listener_key] = tls_relay_keys()?;
    let allow = Allow::with_keys([sender_key.public(), listener_key.public()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match (listen, to) {
            (Some(addr), None) => {
                let transport = TcpTlsTransport::new(&listener_key, allow, LinkConfig::default())?;
                let mut listener = transport.listen(&addr).await?;
                let mut link = match listener.accept().await {
                    Some(link) => link?,
                    None => bail!("the listener on {addr} stopped"),
                };
                let mut out = raw_stdout()?;
                while let Some(frame) = link.recv().await {
                    if frame.is_empty() {
                        break;
                    }
                    out.write_all(&frame)?;
                }
                Ok(())
            }
            (None, Some(addr)) => {
                let transport = TcpTlsTransport::new(&sender_key, allow, LinkConfig::default())?;
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut link = loop {
                    match transport
                        .connect(&addr, Expect::Key(listener_key.public()))
                        .await
                    {
                        Ok(link) => break link,
                        Err(_) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => return Err(e).with_context(|| format!("cannot link to {addr}")),
                    }
                };
                // Blocking reads on a thread of their own, as the other relay makes them.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                let reader = std::thread::spawn(move || -> Result<()> {
                    let mut input = raw_stdin()?;
                    loop {
                        let mut buf = vec![0u8; BLOCK];
                        let n = input.read(&mut buf)?;
                        buf.truncate(n);
                        if tx.blocking_send(buf).is_err() || n == 0 {
                            return Ok(());
                        }
                    }
                });
                while let Some(block) = rx.recv().await {
                    link.send(block).await?;
                }
                // The listening end closes the link once it has the empty frame.
                while link.recv().await.is_some() {}
                reader
                    .join()
                    .map_err(|_| anyhow!("the reading thread panicked"))?
            }
            _ => bail!("pipe-relay takes one of --listen and --to"),
        }
    })
}

/// A line of `pipe-lines` before its stamp: filler, spaces after the sequence number and the
/// send time, a newline.
fn line_template() -> [u8; LINE] {
    let mut line = [b'x'; LINE];
    line[SEQ.end] = b' ';
    line[SENT.end] = b' ';
    line[LINE - 1] = b'\n';
    line
}

/// Writes `n` in decimal into `out`, zero-padded to its width (its lowest digits if longer).
fn put_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Puts sequence number `seq` and send time `ns` into `line`.
fn stamp(line: &mut [u8; LINE], seq: u64, ns: u64) {
    put_digits(&mut line[SEQ], seq);
    put_digits(&mut line[SENT], ns);
}

/// The send time a line carries, if it is one of `pipe-lines`.
fn sent_ns(line: &[u8]) -> Option<u64> {
    let digits = line.get(SENT)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    }))
}

/// `plx bench pipe-lines`: `count` lines of [`LINE`] bytes, each carrying its sequence number
/// and send time; as fast as they go in blocks of up to 64 KiB of whole lines or, with
/// `every_us`, one line a write at that interval.
pub(crate) fn pipe_lines(count: u64, every_us: Option<u64>) -> Result<()> {
    let mut out = raw_stdout()?;
    let mut line = line_template();
    match every_us {
        None => {
            let mut block = Vec::with_capacity(BLOCK);
            for seq in 0..count {
                if block.len() + LINE > BLOCK {
                    out.write_all(&block)?;
                    block.clear();
                }
                stamp(&mut line, seq, now_ns());
                block.extend_from_slice(&line);
            }
            out.write_all(&block)?;
        }
        Some(us) => {
            let start = Instant::now();
            for seq in 0..count {
                let due = start + Duration::from_micros(us.saturating_mul(seq));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                stamp(&mut line, seq, now_ns());
                out.write_all(&line)?;
            }
        }
    }
    Ok(())
}

/// The value at quantile `q` of sorted `values`, as [`figures`] picks it (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q) as usize)
        .copied()
        .unwrap_or(0)
}

/// `plx bench pipe-count`: counts the lines of standard input and prints `lines=N bytes=N
/// first_sent_ns=T first_ns=T last_ns=T` (the first line's send time, when the first and the
/// last bytes came); with `latency`, also `p50_ns p99_ns max_ns` of each line's arrival less
/// its send time.
pub(crate) fn pipe_count(latency: bool) -> Result<()> {
    let mut input = raw_stdin()?;
    let mut buf = vec![0u8; BLOCK];
    // The start of the line being read, as far as its stamp, while stamps are read.
    let mut head: Vec<u8> = Vec::with_capacity(SENT.end);
    let (mut lines, mut bytes, mut first, mut last) = (0u64, 0u64, 0u64, 0u64);
    let mut first_sent: Option<u64> = None;
    let mut delays = Vec::new();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        last = now_ns();
        if bytes == 0 {
            first = last;
        }
        bytes += n as u64;
        let chunk = &buf[..n];
        if latency || first_sent.is_none() {
            for piece in chunk.split_inclusive(|&b| b == b'\n') {
                let room = SENT.end.saturating_sub(head.len()).min(piece.len());
                head.extend_from_slice(&piece[..room]);
                if piece.last() == Some(&b'\n') {
                    lines += 1;
                    if let Some(sent) = sent_ns(&head) {
                        first_sent.get_or_insert(sent);
                        if latency {
                            delays.push(last.saturating_sub(sent));
                        }
                    }
                    head.clear();
                }
            }
        } else {
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    let mut text = format!(
        "lines={lines} bytes={bytes} first_sent_ns={} first_ns={first} last_ns={last}",
        first_sent.unwrap_or(first)
    );
    if latency {
        delays.sort_unstable();
        text.push_str(&format!(
            " p50_ns={} p99_ns={} max_ns={}",
            percentile(&delays, 0.5),
            percentile(&delays, 0.99),
            delays.last().copied().unwrap_or(0)
        ));
    }
    writeln!(raw_stdout()?, "{text}")?;
    Ok(())
}

/// The `key=value` fields (unsigned ints) of the last line of `text` that has any: what
/// `pipe-sink` and `pipe-count` print.
fn report(text: &str) -> Result<BTreeMap<String, u64>> {
    text.lines()
        .rev()
        .map(|line| {
            line.split_whitespace()
                .filter_map(|w| {
                    let (k, v) = w.split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect::<BTreeMap<String, u64>>()
        })
        .find(|m| !m.is_empty())
        .ok_or_else(|| anyhow!("the program printed no report: {:?}", text.trim()))
}

fn field(report: &BTreeMap<String, u64>, key: &str) -> Result<u64> {
    report
        .get(key)
        .copied()
        .ok_or_else(|| anyhow!("the report has no {key}: {report:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_report_is_the_last_line_with_fields() {
        let r = report("starting\nbytes=1024 first_ns=5 last_ns=17\n\n").unwrap();
        assert_eq!(field(&r, "bytes").unwrap(), 1024);
        assert_eq!(sink_rate(&r).unwrap(), 1024.0 / 1e6 / 12e-9);
        assert!(field(&r, "lines").is_err());
        let r = report("lines=3 bytes=300\nwarning: x=y\n").unwrap();
        assert_eq!(field(&r, "lines").unwrap(), 3);
        assert!(report("").is_err());
        assert!(report("no fields here\n").is_err());
        assert!(check_bytes(&report("bytes=5").unwrap(), 6).is_err());
    }

    #[test]
    fn line_rate_and_latency_check_the_count() {
        let r = report(
            "lines=4 first_sent_ns=1000 last_ns=2000001000 p50_ns=1500 p99_ns=9000 max_ns=12000",
        )
        .unwrap();
        assert_eq!(line_rate(&r, 4).unwrap(), 2.0);
        assert!(line_rate(&r, 5).is_err());
        let l = latency_of(&r, 4).unwrap();
        assert_eq!(
            l,
            Latency {
                p50_us: 1.5,
                p99_us: 9.0,
                max_us: 12.0
            }
        );
        assert!(latency_of(&r, 3).is_err());
    }

    #[test]
    fn percentiles_pick_as_figures_does() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        let f = figures(
            v.iter().map(|&n| Duration::from_micros(n)).collect(),
            Duration::from_secs(1),
        );
        assert_eq!(f.p50_us, 50.0);
        assert_eq!(f.p99_us, 99.0);
    }

    #[test]
    fn a_line_carries_its_number_and_send_time() {
        let mut line = line_template();
        stamp(&mut line, 42, 1_765_000_000_123_456_789);
        assert_eq!(line.len(), LINE);
        assert_eq!(line[LINE - 1], b'\n');
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.starts_with(b"000000000042 01765000000123456789 xxx"));
        assert_eq!(sent_ns(&line), Some(1_765_000_000_123_456_789));
        assert_eq!(sent_ns(&line[..SENT.end]), Some(1_765_000_000_123_456_789));
        assert_eq!(sent_ns(&line[..SENT.end - 1]), None);
        assert_eq!(sent_ns(b"y\n"), None);
        let mut small = [0u8; 3];
        put_digits(&mut small, 12_345);
        assert_eq!(&small, b"345");
    }

    #[test]
    fn the_pipes_reply_gives_the_row_of_the_pipe() {
        let reply = parse(
            r#"[{pipe:"g1.yes.err" graph:g1 backlog:0 bytes:0 state:open}
                {pipe:"g1.1" graph:g1 from:a1 from_node:n1 to:a2 to_node:n2 bytes:65536
                 bytes_s:0 records:0 records_s:0 backlog:1048576 lost:0 state:open}]"#,
        )
        .unwrap();
        assert_eq!(
            pipe_stat(&reply, "g1.1").unwrap(),
            PipeStat {
                backlog: 1_048_576,
                bytes: 65_536,
                state: "open".into()
            }
        );
        assert!(pipe_stat(&reply, "g1.2").is_err());
        assert!(pipe_stat(&parse("[{pipe:\"g1.1\"}]").unwrap(), "g1.1").is_err());
        assert!(pipe_stat(&Unit::None, "g1.1").is_err());
    }

    #[test]
    fn graphs_are_chains_of_their_steps() {
        let steps = [
            Step {
                name: "a",
                argv: vec!["/bin/x".into(), "pipe-source".into()],
                on: "n1",
                console: false,
            },
            Step {
                name: "b",
                argv: vec!["cat".into()],
                on: "n2",
                console: false,
            },
            Step {
                name: "c",
                argv: vec!["wc".into()],
                on: "n3",
                console: true,
            },
        ];
        let text = graph_call("g", &steps, true, Some(4096));
        let u = parse(&text).unwrap();
        assert_eq!(to_text(&u), text);
        let expected = parse(
            r#"{graph:{name:g
                 procs:[{stage:a run:["/bin/x" "pipe-source"] on:n1}
                        {stage:b run:[cat] on:n2}
                        {stage:c run:[wc] on:n3 console:t}]
                 pipes:[{from:a to:b} {from:b to:c}]
                 window:4096}
                attach:t}@sys.proc"#,
        )
        .unwrap();
        assert_eq!(u, expected);
        let detached = parse(&graph_call("g", &steps[..2], false, None)).unwrap();
        assert!(!to_text(&detached).contains("attach"));
        assert!(!to_text(&detached).contains("window"));
    }

    #[test]
    fn the_kill_reply_is_summed_up_by_states() {
        let reply = parse("{graph:g1 procs:[{id:a1 state:killed} {id:a2 state:killed}]}").unwrap();
        assert_eq!(killed_summary(&reply), "killed, killed");
        assert_eq!(killed_summary(&Unit::None), to_text(&Unit::None));
    }
}
