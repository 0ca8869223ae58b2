//! `plx bench local`, the raw baseline peers the benchmarks spawn, and the helpers every
//! benchmark shares (figures, memory, JSON).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plexus_identity::{KeyKind, Keypair, SignedMessage};
use plexus_protocol::frame as framing;
use plexus_units::{parse, Unit};

use plexus_client::{sign_with, Client, Reply};

/// Options of `plx bench local`.
#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds to spend on each measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

/// Latency percentiles and throughput of one measurement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    /// Median latency, µs.
    pub(crate) p50_us: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: f64,
    /// Operations per second over the whole measurement.
    pub(crate) per_sec: f64,
}

/// Percentiles of `samples` and their rate over `total`.
pub(crate) fn figures(mut samples: Vec<Duration>, total: Duration) -> Figures {
    samples.sort();
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Figures {
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        per_sec: samples.len() as f64 / total.as_secs_f64().max(1e-9),
    }
}

/// `plx bench local`.
pub(crate) fn local(args: LocalArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds.clamp(0.1, 60.0));
    let progress = |s: &str| {
        if !args.json {
            eprintln!("… {s}");
        }
    };

    progress("kernel round trip (inc 1)@math.calc vs tokio channel round trip");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (channel, kernel_rt, kernel_tput) = rt.block_on(kernel_round_trip(budget))?;

    progress("signed requests over the node socket vs raw Unix-socket ping-pong + one verify");
    let dir = tempfile_dir()?;
    let (mut node, socket) = start_node(&dir)?;
    let result = (|| -> Result<(Figures, Figures, f64, f64)> {
        let user = Keypair::generate(KeyKind::User, "bench", &mut rand_core::OsRng)
            .map_err(|e| anyhow!("{e}"))?;
        let signed = rt.block_on(signed_requests(&socket, &user, budget))?;
        let sample = sign_with(&user, parse("(inc 1)@math.calc")?)?;
        let frame_len = sample.to_bytes().len() + 16;
        let raw = raw_ping_pong(&dir, frame_len, budget, usize::MAX)?;
        let verify_us = verify_cost(&sample, 2000);
        std::thread::sleep(Duration::from_millis(300));
        let rss_mb = rss_mb(node.id())?;
        Ok((signed, raw, verify_us, rss_mb))
    })();
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (signed, raw, verify_us, rss_mb) = result?;

    let baseline_b = raw.p50_us + verify_us;
    let ratio_a = kernel_rt.p50_us / channel.p50_us.max(1e-9);
    let ratio_b = signed.p50_us / baseline_b.max(1e-9);
    if args.json {
        println!(
            "{{\"kernel_round_trip\":{{\"p50_us\":{:.3},\"p99_us\":{:.3},\"calls_per_sec\":{:.0},\"baseline_channel_p50_us\":{:.3},\"ratio\":{:.3},\"target_ratio\":3.0,\"target_calls_per_sec\":300000}},\"signed_request\":{{\"p50_us\":{:.3},\"p99_us\":{:.3},\"requests_per_sec\":{:.0},\"baseline_raw_p50_us\":{:.3},\"baseline_verify_us\":{:.3},\"baseline_p50_us\":{:.3},\"ratio\":{:.3},\"target_ratio\":1.5}},\"node_rss_mb\":{{\"value\":{:.2},\"target\":20}}}}",
            kernel_rt.p50_us,
            kernel_rt.p99_us,
            kernel_tput,
            channel.p50_us,
            ratio_a,
            signed.p50_us,
            signed.p99_us,
            signed.per_sec,
            raw.p50_us,
            verify_us,
            baseline_b,
            ratio_b,
            rss_mb
        );
        return Ok(());
    }
    let ok = |pass: bool| if pass { "ok" } else { "MISSED" };
    println!(
        "plx bench local ({} s per measurement)",
        budget.as_secs_f64()
    );
    println!();
    println!("(a) kernel round trip (inc 1)@math.calc, inside the node");
    println!(
        "    plexus     p50 {:>8.2} µs   p99 {:>8.2} µs   {:>10.0} calls/s (4 concurrent callers)",
        kernel_rt.p50_us, kernel_rt.p99_us, kernel_tput
    );
    println!(
        "    baseline   p50 {:>8.2} µs   p99 {:>8.2} µs   tokio mpsc + oneshot round trip",
        channel.p50_us, channel.p99_us
    );
    println!(
        "    ratio {:.2}× (target ≤ 3×: {}), throughput target ≥ 300000/s: {}",
        ratio_a,
        ok(ratio_a <= 3.0),
        ok(kernel_tput >= 300_000.0)
    );
    println!();
    println!("(b) signed request from a client over the node's Unix socket");
    println!(
        "    plexus     p50 {:>8.2} µs   p99 {:>8.2} µs   {:>10.0} requests/s (1 outstanding)",
        signed.p50_us, signed.p99_us, signed.per_sec
    );
    println!(
        "    baseline   p50 {:>8.2} µs = raw Unix-socket ping-pong {:.2} µs + one ed25519 verify {:.2} µs",
        baseline_b, raw.p50_us, verify_us
    );
    println!(
        "    ratio {:.2}× (target ≤ 1.5×: {})",
        ratio_b,
        ok(ratio_b <= 1.5)
    );
    println!();
    println!(
        "(c) node memory at rest: {:.1} MB RSS (target < 20 MB: {})",
        rss_mb,
        ok(rss_mb < 20.0)
    );
    Ok(())
}

async fn kernel_round_trip(budget: Duration) -> Result<(Figures, Figures, f64)> {
    // Baseline: a request over an mpsc channel answered through a oneshot.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, tokio::sync::oneshot::Sender<u64>)>(64);
    tokio::spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v + 1);
        }
    });
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        let (otx, orx) = tokio::sync::oneshot::channel();
        tx.send((1, otx))
            .await
            .map_err(|_| anyhow!("channel closed"))?;
        let _ = orx.await?;
        samples.push(t.elapsed());
    }
    let channel = figures(samples, start.elapsed());

    let admin = Keypair::generate(KeyKind::User, "bench", &mut rand_core::OsRng)
        .map_err(|e| anyhow!("{e}"))?;
    let kernel = plexus_kernel::Kernel::new(
        plexus_kernel::NodeInfo {
            id: "bench".into(),
            name: "bench".into(),
        },
        admin.public(),
        "bench",
    );
    kernel
        .register(
            plexus_services::math_calc::service(),
            None,
            plexus_kernel::Policy::Anyone,
        )
        .map_err(|e| anyhow!("{e}"))?;
    let msg = parse("(inc 1)@math.calc")?;
    let expected = Some(Unit::int(2));
    let cx = kernel.context(admin.public(), [0; 32], None, 0);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        let out = cx.run(msg.clone()).await.map_err(|e| anyhow!("{e}"))?;
        samples.push(t.elapsed());
        if out != expected {
            bail!("unexpected result {out:?}");
        }
    }
    let kernel_rt = figures(samples, start.elapsed());

    // Throughput: four callers in parallel on the two worker threads. Each has its own
    // context, as each client message has: a context carries its message's memory account,
    // and no two real callers share one.
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let cx = kernel.context(admin.public(), [0; 32], None, 0);
        let msg = msg.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < budget {
                for _ in 0..64 {
                    if cx.run(msg.clone()).await.is_ok() {
                        n += 1;
                    }
                }
            }
            n
        }));
    }
    let mut calls = 0;
    for w in workers {
        calls += w.await?;
    }
    let tput = calls as f64 / start.elapsed().as_secs_f64();
    Ok((channel, kernel_rt, tput))
}

async fn signed_requests(socket: &Path, user: &Keypair, budget: Duration) -> Result<Figures> {
    let mut client = Client::connect(socket).await?;
    let body = parse("(inc 1)@math.calc")?;
    // Sign ahead of time: the figure is the request, not the client's signing.
    let mut batch: Vec<SignedMessage> = Vec::new();
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        if batch.is_empty() {
            for _ in 0..256 {
                batch.push(sign_with(user, body.clone())?);
            }
        }
        let Some(msg) = batch.pop() else { break };
        let t = Instant::now();
        let reply = client.call(&msg, None, std::future::pending()).await?;
        samples.push(t.elapsed());
        if !matches!(reply, Reply::Value(Unit::Int(_))) {
            bail!("unexpected reply {reply:?}");
        }
    }
    Ok(figures(samples, start.elapsed()))
}

/// The raw baseline: a separate process echoes each frame back on a Unix socket.
/// At most `count` round trips, within `budget`.
fn raw_ping_pong(dir: &Path, frame_len: usize, budget: Duration, count: usize) -> Result<Figures> {
    let socket = dir.join("echo.sock");
    let exe = std::env::current_exe()?;
    let mut peer = Command::new(exe)
        .args(["bench", "echo-peer"])
        .arg(&socket)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start the echo peer")?;
    let result = connect_retry(&socket)
        .and_then(|mut stream| ping_pong(&mut stream, frame_len, budget, count));
    let _ = peer.kill();
    let _ = peer.wait();
    result
}

/// Round trips of `frame_len`-byte frames ([`framing`]: the length, then filler) on `stream`, whose
/// peer echoes each frame: as many as fit in `budget`, at most `count`.
pub(crate) fn ping_pong<S: Read + Write>(
    stream: &mut S,
    frame_len: usize,
    budget: Duration,
    count: usize,
) -> Result<Figures> {
    let body = vec![7u8; frame_len.saturating_sub(framing::HEADER_LEN)];
    let mut frame = Vec::with_capacity(framing::HEADER_LEN + body.len());
    framing::encode(&body, framing::MAX_FRAME_LIMIT, &mut frame)?;
    let frame_len = frame.len();
    let mut back = vec![0u8; frame_len];
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget && samples.len() < count {
        let t = Instant::now();
        stream.write_all(&frame)?;
        stream.read_exact(&mut back)?;
        samples.push(t.elapsed());
    }
    Ok(figures(samples, start.elapsed()))
}

pub(crate) fn connect_retry(socket: &Path) -> Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e).context("cannot reach the echo peer"),
        }
    }
}

pub(crate) fn echo_peer(socket: &Path) -> Result<()> {
    let listener = UnixListener::bind(socket)?;
    let (stream, _) = listener.accept()?;
    echo_frames(stream)
}

/// The raw TCP baseline peer: connects to `addr` (with `TCP_NODELAY`) and echoes frames.
pub(crate) fn tcp_echo_peer(addr: std::net::SocketAddr) -> Result<()> {
    let stream = std::net::TcpStream::connect(addr)
        .with_context(|| format!("cannot connect to the bench at {addr}"))?;
    stream.set_nodelay(true)?;
    echo_frames(stream)
}

/// Keeps one core busy until the process is killed.
pub(crate) fn busy_loop() -> Result<()> {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// The raw relay: a client on `socket`, an echo peer on `addr` (TCP, `TCP_NODELAY`); each
/// frame from the client goes to the echo peer and its answer back, one at a time, as a node
/// relays a client's call to another node.
pub(crate) fn relay_peer(socket: &Path, addr: std::net::SocketAddr) -> Result<()> {
    // The bench starts the echo peer once it can connect to `socket`: `addr` is bound first.
    let tcp = std::net::TcpListener::bind(addr)?;
    let unix = UnixListener::bind(socket)?;
    let (mut client, _) = unix.accept()?;
    let (mut echo, _) = tcp.accept()?;
    echo.set_nodelay(true)?;
    let mut frame = Vec::new();
    while read_frame(&mut client, &mut frame)? {
        echo.write_all(&frame)?;
        if !read_frame(&mut echo, &mut frame)? {
            break;
        }
        client.write_all(&frame)?;
    }
    Ok(())
}

/// Echoes length-prefixed frames ([`framing`]) until the peer closes.
fn echo_frames<S: Read + Write>(mut stream: S) -> Result<()> {
    let mut frame = Vec::new();
    while read_frame(&mut stream, &mut frame)? {
        stream.write_all(&frame)?;
    }
    Ok(())
}

/// Reads one frame, length prefix included, into `frame`; `false` when the peer has closed.
fn read_frame(stream: &mut impl Read, frame: &mut Vec<u8>) -> Result<bool> {
    let mut header = [0u8; framing::HEADER_LEN];
    if stream.read_exact(&mut header).is_err() {
        return Ok(false);
    }
    frame.clear();
    frame.extend_from_slice(&header);
    frame.resize(
        framing::decode_header(header).saturating_add(framing::HEADER_LEN),
        0,
    );
    stream.read_exact(&mut frame[framing::HEADER_LEN..])?;
    Ok(true)
}

/// Median time of one strict ed25519 verification of `msg` over `count` tries, in µs.
pub(crate) fn verify_cost(msg: &SignedMessage, count: usize) -> f64 {
    let mut samples: Vec<f64> = (0..count.max(1))
        .map(|_| {
            let t = Instant::now();
            let _ = msg.verify();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("plx-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts `plx node` in a private home and waits for its socket.
fn start_node(dir: &Path) -> Result<(Child, PathBuf)> {
    let home = dir.join("home");
    let data = dir.join("node");
    let socket = data.join(plexus_node::files::SOCKET);
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--home")
        .arg(&home)
        .args(["node", "--name", "bench", "--data"])
        .arg(&data)
        .env("USER", "bench")
        .env("PLX_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start a node")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !socket.exists() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            bail!("the benchmark node did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, socket))
}

/// Resident memory of a process, in MB.
pub(crate) fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("cannot read the node's memory (Linux /proc)")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// How a target fared, as printed: `met` or `missed`.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Which build this is, for the record: `release` or `debug`.
pub(crate) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// A JSON value, for `--json` output. Numbers that are not finite are written as `null`.
#[derive(Clone, Debug)]
pub(crate) enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, fields in order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object of `fields`, in order.
    pub(crate) fn obj<const N: usize>(fields: [(&str, Json); N]) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// An array of numbers.
    pub(crate) fn nums(values: &[f64]) -> Json {
        Json::Arr(values.iter().map(|v| Json::Num(*v)).collect())
    }
}

impl From<f64> for Json {
    fn from(v: f64) -> Json {
        Json::Num(v)
    }
}

impl From<usize> for Json {
    fn from(v: usize) -> Json {
        Json::Num(v as f64)
    }
}

impl From<u64> for Json {
    fn from(v: u64) -> Json {
        Json::Num(v as f64)
    }
}

impl From<bool> for Json {
    fn from(v: bool) -> Json {
        Json::Bool(v)
    }
}

impl From<&str> for Json {
    fn from(v: &str) -> Json {
        Json::Str(v.to_owned())
    }
}

impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(n) if !n.is_finite() => f.write_str("null"),
            Json::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Json::Num(n) => {
                let text = format!("{n:.3}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                // A tiny value that rounds to nothing still reads as a number.
                f.write_str(if text.is_empty() || text == "-" {
                    "0"
                } else {
                    text
                })
            }
            Json::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Json::Obj(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", Json::Str(k.clone()))?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output() {
        let j = Json::obj([
            ("a", 1.5.into()),
            ("b", Json::nums(&[2.0, f64::NAN, 0.0001])),
            ("c", "x\"y\\z\n\u{1}".into()),
            ("d", true.into()),
            ("e", Json::obj([])),
        ]);
        assert_eq!(
            j.to_string(),
            r#"{"a":1.5,"b":[2,null,0],"c":"x\"y\\z\n\u0001","d":true,"e":{}}"#
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(verdict(true), "met");
    }
}
