//! `plx bench rr`, `detect`, `failover`, `store`: figures of a local cluster of real `plx node`
//! processes, each printed with its target and, where one applies, a baseline measured in the
//! same run.
//!
//! Every bench starts its own cluster: `plx node` processes of this very executable, in a
//! temporary directory (their own Plexus home with a fresh administrator key, data directories
//! and logs), listening on fresh loopback addresses `127.A.B.1`, `127.A.B.2`, … (A from 220 to
//! 254, B and the port random, checked free first), so they never meet a user's cluster. The
//! nodes are killed and the directory removed when the bench ends, also when it fails (the
//! cluster's `Drop`); with `PLX_BENCH_KEEP` set the directory, logs included, is kept. A bench
//! that fails shows the last lines of every node's log.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plexus_identity::{KeyFile, KeyKind, Keypair, SignedMessage};
use plexus_node::cluster::config::parse_profile;
use plexus_node::files;
use plexus_units::{parse, to_text, Unit};
use rand_core::RngCore;

use plexus_client::home::Home;
use plexus_client::{members, sign_with, Client, Reply};
use plexus_node::threads_per_node;

mod fs;
mod pipe;
mod proc;
mod web;

pub use self::fs::{fs, FsArgs};
pub use self::pipe::{pipe, PipeArgs};
pub(crate) use self::pipe::{
    pipe_count, pipe_lines, pipe_relay, pipe_sink, pipe_source, pipe_tls_relay,
};
pub use self::proc::{proc, ProcArgs};
pub use self::web::{web, WebArgs};

use crate::local::{
    build_profile, connect_retry, figures, median, ping_pong, rss_mb, verdict, verify_cost,
    Figures, Json,
};

/// When set, a bench keeps its cluster's directory (data and logs) instead of removing it.
const KEEP_ENV: &str = "PLX_BENCH_KEEP";

/// Failure-detection profile of the clusters of `rr`, `failover` and `store` (as `plx up`).
const PROFILE: &str = "local";

/// A cluster bench's JSON report: the bench, the build, how many nodes and their profile,
/// then `fields`.
fn cluster_report<const N: usize>(bench: &str, nodes: usize, fields: [(&str, Json); N]) -> Json {
    let head = [
        ("bench", bench.into()),
        ("build", build_profile().into()),
        ("nodes", nodes.into()),
        ("profile", PROFILE.into()),
    ];
    Json::Obj(
        head.into_iter()
            .chain(fields)
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Longest wait for a node to answer or a cluster to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for a detection or a failover before the bench gives up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `detect` asks each survivor for its view.
const POLL: Duration = Duration::from_millis(10);

/// Outstanding calls of the in-node throughput measurement of `rr`.
const INNER_TASKS: usize = 64;

/// Client connections of the signed-request throughput measurement of `rr`.
const CLIENT_CONNS: usize = 8;

/// Calls in flight per client connection in the pipelined part of that measurement: 64 in all,
/// as many as the node-to-node calls have.
const CLIENT_DEPTH: usize = 8;

/// Concurrent clients of the throughput measurement of `store`.
const STORE_CLIENTS: usize = 32;

/// Options of `plx bench rr`.
#[derive(Args, Debug)]
pub struct RrArgs {
    /// Print one JSON object (figures, baselines, ratios, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Requests timed one at a time for the latency figures (the TCP baseline makes as many
    /// round trips); the 8-connection measurement sends twice as many requests and the
    /// 64-outstanding one makes four times as many calls.
    #[arg(long, default_value_t = 20_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(10..=30_000))]
    pub requests: u64,
    /// Seconds to wait after the load before reading the nodes' memory at rest.
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub rest: u64,
}

/// Options of `plx bench detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Print one JSON object (figures, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Kills per profile; the killed node is restarted from its data directory between runs.
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
    /// Afterwards, run a 3-node cluster this many seconds with one core kept busy by another
    /// process, and count every suspect or down mark and every leader change any node shows
    /// (all spurious); 0 skips it.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub soak: u64,
    /// Failure-detection profile of the soak's cluster (default or local).
    #[arg(long, default_value = "local", value_name = "PROFILE")]
    pub soak_profile: String,
}

/// Options of `plx bench failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// Print one JSON object (figures, baseline, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Leader kills; the killed node is restarted from its data directory between runs.
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
}

/// Options of `plx bench store`.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Print one JSON object (figures, baselines, ratios, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Writes of the 1-client measurement (and fsyncs of the baseline); the 32 clients make
    /// four times as many in all.
    #[arg(long, default_value_t = 2_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(10..=15_000))]
    pub writes: u64,
}

// ------------------------------------------------------------------------------------------
// The local cluster

/// A child process that is killed (SIGKILL) and reaped when dropped.
struct Reaper(Option<Child>);

impl Reaper {
    /// Starts `plx bench ARGS` (a hidden helper).
    fn helper(args: &[&str]) -> Result<Reaper> {
        let exe = std::env::current_exe().context("cannot find the plx executable")?;
        let child = Command::new(exe)
            .arg("bench")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a helper process")?;
        Ok(Reaper(Some(child)))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `plx node` process of a bench cluster.
struct BenchNode {
    name: String,
    data: PathBuf,
    log: PathBuf,
    process: Reaper,
}

impl BenchNode {
    fn socket(&self) -> PathBuf {
        self.data.join(files::SOCKET)
    }

    fn running(&self) -> bool {
        self.process.0.is_some()
    }

    /// Kills the node like `kill -9` and reaps it.
    fn kill9(&mut self) {
        self.process.kill();
    }
}

/// A cluster of `plx node` processes in a temporary directory, on fresh loopback addresses.
/// Dropping it kills the nodes and removes the directory.
struct LocalCluster {
    dir: PathBuf,
    home: PathBuf,
    exe: PathBuf,
    admin: Keypair,
    nodes: Vec<BenchNode>,
    /// Worker threads of each node: the nodes share this machine's cores.
    threads: u16,
    /// Where n1 serves its web desktop, if it does.
    web: Option<SocketAddr>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("plx: {KEEP_ENV} is set: kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl LocalCluster {
    /// Starts `n` nodes with detection profile `profile`: n1 creates the cluster, the others
    /// join with invites; returns once every node sees all of them alive, the voters there
    /// should be and a leader.
    async fn start(n: usize, profile: &str) -> Result<LocalCluster> {
        Self::start_serving(n, profile, None).await
    }

    /// [`LocalCluster::start`], n1 serving its web desktop on `web` when given.
    async fn start_serving(
        n: usize,
        profile: &str,
        web: Option<SocketAddr>,
    ) -> Result<LocalCluster> {
        let exe = std::env::current_exe().context("cannot find the plx executable")?;
        let admin = Keypair::generate(KeyKind::User, "bench", &mut rand_core::OsRng)
            .map_err(|e| anyhow!("{e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "plx-bench-{}-{:08x}",
            std::process::id(),
            rand_core::OsRng.next_u32()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut cluster = LocalCluster {
            home: dir.join("home"),
            dir,
            exe,
            admin,
            nodes: Vec::new(),
            threads: threads_per_node(n),
            web,
        };
        let home = Home::locate(Some(cluster.home.clone()))?;
        let file = KeyFile::from_keypair(&cluster.admin, None, &mut rand_core::OsRng)
            .map_err(|e| anyhow!("{e}"))?;
        home.save("bench", &file)?;
        home.set_current("bench")?;
        let r = cluster.form(n, profile).await;
        cluster.explain(r)?;
        Ok(cluster)
    }

    /// The rest of [`LocalCluster::start`].
    async fn form(&mut self, n: usize, profile: &str) -> Result<()> {
        for (i, addr) in fresh_addrs(n)?.into_iter().enumerate() {
            let name = format!("n{}", i + 1);
            let token = if i == 0 {
                None
            } else {
                let t = self.ask(0, "(invite 600)@sys.node").await?;
                Some(
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("n1 gave no join token: {}", to_text(&t)))?,
                )
            };
            let mut args = vec![
                "--name".to_owned(),
                name.clone(),
                "--listen".to_owned(),
                addr.to_string(),
                "--profile".to_owned(),
                profile.to_owned(),
            ];
            if i == 0 {
                args.push("--init".to_owned());
                if let Some(web) = self.web {
                    args.extend(["--web".to_owned(), web.to_string()]);
                }
            }
            let data = self.dir.join(&name);
            let log = self.dir.join(format!("{name}.log"));
            let process = self.spawn(&data, &log, &args, token.as_deref())?;
            self.nodes.push(BenchNode {
                name,
                data,
                log,
                process,
            });
            self.wait_answers(i).await?;
        }
        self.wait_formed().await
    }

    /// `r`, with the last lines of every node's log added to an error.
    fn explain<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| {
            let mut text = format!("{e:#}");
            for n in &self.nodes {
                text.push_str(&format!(
                    "\n--- last lines of {}'s log ({}):\n{}",
                    n.name,
                    n.log.display(),
                    log_tail(&n.log)
                ));
            }
            anyhow!(text)
        })
    }

    /// Starts `plx node` on `data`, its standard error appended to `log`.
    fn spawn(
        &self,
        data: &Path,
        log: &Path,
        args: &[String],
        join: Option<&str>,
    ) -> Result<Reaper> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--home")
            .arg(&self.home)
            .arg("node")
            .arg("--data")
            .arg(data)
            .arg("--threads")
            .arg(self.threads.to_string())
            .args(args)
            .env("USER", "bench")
            .env("PLX_LOG", "warn")
            .env_remove("PLX_JOIN")
            .env_remove("PLX_SOCKET")
            .env_remove("PLX_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(token) = join {
            // In the environment, not the arguments, as `plx up` does.
            cmd.env("PLX_JOIN", token);
        }
        Ok(Reaper(Some(cmd.spawn().context("cannot start a node")?)))
    }

    /// The process ids of the running nodes.
    fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.0.as_ref().map(Child::id))
            .collect()
    }

    /// Kills node `i` like `kill -9`.
    fn kill_node(&mut self, i: usize) -> Result<()> {
        self.nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("no node {}", i + 1))?
            .kill9();
        Ok(())
    }

    fn node(&self, i: usize) -> Result<&BenchNode> {
        self.nodes
            .get(i)
            .ok_or_else(|| anyhow!("no node {}", i + 1))
    }

    /// Waits until node `i` answers on its socket.
    async fn wait_answers(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let node = self
                .nodes
                .get_mut(i)
                .ok_or_else(|| anyhow!("no node {}", i + 1))?;
            if Client::connect(&node.socket()).await.is_ok() {
                return Ok(());
            }
            let exited = match node.process.0.as_mut() {
                Some(child) => child.try_wait()?,
                None => bail!("node {} is not running", node.name),
            };
            if let Some(status) = exited {
                node.process.0 = None;
                bail!(
                    "node {} exited ({status}) before answering; its log:\n{}",
                    node.name,
                    log_tail(&node.log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not answer within {} s; its log:\n{}",
                    node.name,
                    FORM_TIMEOUT.as_secs(),
                    log_tail(&node.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Restarts a killed node from its data directory, with no cluster flags, and waits until
    /// it answers.
    async fn restart(&mut self, i: usize) -> Result<()> {
        let node = self.node(i)?;
        let process = self.spawn(&node.data.clone(), &node.log.clone(), &[], None)?;
        if let Some(node) = self.nodes.get_mut(i) {
            node.process = process;
        }
        self.wait_answers(i).await
    }

    /// Waits until every running node sees every node alive, the voters the cluster should
    /// have and a leader.
    async fn wait_formed(&self) -> Result<()> {
        let n = self.nodes.len();
        let voters = plexus_node::cluster::voter_count(n);
        let deadline = Instant::now() + FORM_TIMEOUT;
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.running() {
                continue;
            }
            loop {
                let view = self.ask(i, "nodes@sys.node").await;
                if let Ok(u) = &view {
                    let rows = members(u);
                    let alive = rows.iter().filter(|r| r.health == "alive").count();
                    let v = rows.iter().filter(|r| r.role == "voter").count();
                    if rows.len() == n && alive == n && v == voters && rows.iter().any(|r| r.leader)
                    {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    bail!(
                        "the cluster did not form within {} s: {} sees {}",
                        FORM_TIMEOUT.as_secs(),
                        node.name,
                        match view {
                            Ok(u) => to_text(&u),
                            Err(e) => e.to_string(),
                        }
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Sends `text` to node `i` on a new connection and gives its value.
    async fn ask(&self, i: usize, text: &str) -> Result<Unit> {
        let mut client = Client::connect(&self.node(i)?.socket()).await?;
        ask(&mut client, &self.admin, text).await
    }

    /// The index of the leader, as the first running node sees it.
    async fn leader(&self) -> Result<usize> {
        let asker = self
            .nodes
            .iter()
            .position(BenchNode::running)
            .ok_or_else(|| anyhow!("no node is running"))?;
        let name = self.ask(asker, "leader@sys.node").await?;
        let name = name.as_str().unwrap_or_default();
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| anyhow!("the leader is unknown ({name:?})"))
    }

    /// Resident memory of each running node, in MB.
    fn rss(&self) -> Result<Vec<(String, f64)>> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.0.as_ref().map(|c| (n.name.clone(), c.id())))
            .map(|(name, pid)| Ok((name, rss_mb(pid)?)))
            .collect()
    }
}

/// The last lines of a node's log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// `n` free addresses 127.A.B.1, 127.A.B.2, … on one port: A from 220 to 254, B and the port
/// random (`plx up` uses 127.0.0.x, the end-to-end tests 127.20–219.x.x).
fn fresh_addrs(n: usize) -> Result<Vec<SocketAddr>> {
    let n = u8::try_from(n).context("too many nodes")?;
    for _ in 0..50 {
        let r = rand_core::OsRng.next_u64();
        let a = 220 + (r % 35) as u8;
        let b = 1 + ((r >> 8) % 254) as u8;
        let port = 20_000 + ((r >> 16) % 40_000) as u16;
        let addrs: Vec<SocketAddr> = (1..=n)
            .map(|i| SocketAddr::from(([127, a, b, i], port)))
            .collect();
        if addrs.iter().all(|a| TcpListener::bind(a).is_ok()) {
            return Ok(addrs);
        }
    }
    bail!("found no free loopback addresses for the bench cluster")
}

/// Signs `text` as `key`, sends it on `client` and gives its value; an error unit is an error.
async fn ask(client: &mut Client, key: &Keypair, text: &str) -> Result<Unit> {
    let msg = sign_with(key, parse(text)?)?;
    match client.call(&msg, None, std::future::pending()).await? {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => bail!("{text}: {}", to_text(&e.to_unit())),
    }
}

/// `n` messages with body `body`, signed as `key` (ahead of time: the figures are of the
/// requests, not of the client's signing).
fn sign_many(
    key: &Keypair,
    n: usize,
    body: impl Fn(usize) -> Result<Unit>,
) -> Result<Vec<SignedMessage>> {
    (0..n).map(|i| Ok(sign_with(key, body(i)?)?)).collect()
}

/// A reply `rr` accepts: an int.
fn expect_int(reply: &Reply) -> Result<()> {
    match reply {
        Reply::Value(Unit::Int(_)) => Ok(()),
        other => bail!("unexpected reply {}", describe(other)),
    }
}

/// A reply `store` accepts: anything but an error.
fn expect_done(reply: &Reply) -> Result<()> {
    match reply {
        Reply::Error(_) => bail!("the write failed: {}", describe(reply)),
        _ => Ok(()),
    }
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Value(v) => to_text(v),
        Reply::Nothing => "(nothing)".to_owned(),
        Reply::Error(e) => to_text(&e.to_unit()),
    }
}

/// What [`drive`] saw.
struct Driven {
    /// Latency of every call answered as expected.
    samples: Vec<Duration>,
    /// From the first send to the last reply.
    wall: Duration,
    /// Calls answered otherwise (an error unit, another value).
    failed: usize,
    /// The first of those answers.
    first_error: Option<String>,
}

impl Driven {
    /// Calls answered as expected, per second.
    fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Sends each pool of messages in order on a connection of its own to `socket`, with up to
/// `depth` calls in flight per connection ([`Client::pipeline`]; 1: each waits for the one
/// before). A reply that `check` refuses is counted and the calls go on; a broken connection is
/// an error.
async fn drive(
    socket: &Path,
    pools: Vec<Vec<SignedMessage>>,
    depth: usize,
    check: fn(&Reply) -> Result<()>,
) -> Result<Driven> {
    let mut clients = Vec::new();
    for _ in &pools {
        clients.push(Client::connect(socket).await?);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (mut client, pool) in clients.into_iter().zip(pools) {
        tasks.spawn(async move { client.pipeline(&pool, depth).await });
    }
    let mut out = Driven {
        samples: Vec::new(),
        wall: Duration::ZERO,
        failed: 0,
        first_error: None,
    };
    while let Some(done) = tasks.join_next().await {
        for (took, reply) in done?? {
            match check(&reply) {
                Ok(()) => out.samples.push(took),
                Err(e) => {
                    out.failed += 1;
                    out.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
    }
    out.wall = start.elapsed();
    Ok(out)
}

/// Runs `fut` to its end, or until SIGINT or SIGTERM: then it is dropped, and with it its
/// clusters, which kills their nodes.
fn run<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    runtime()?.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            r = fut => r,
            _ = term.recv() => bail!("stopped by SIGTERM"),
            _ = int.recv() => bail!("interrupted"),
        }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Progress lines on standard error with the seconds since the start, unless the output is
/// JSON.
fn progress(json: bool) -> impl Fn(&str) {
    let start = Instant::now();
    move |s: &str| {
        if !json {
            eprintln!("… [{:>5.1} s] {s}", start.elapsed().as_secs_f64());
        }
    }
}

fn mb_list(rss: &[(String, f64)]) -> String {
    rss.iter()
        .map(|(n, mb)| format!("{n} {mb:.1} MB"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mb_json(rss: &[(String, f64)]) -> Json {
    Json::Obj(
        rss.iter()
            .map(|(n, mb)| (n.clone(), Json::Num(*mb)))
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------
// plx bench rr

/// What `rr` measured.
struct RrFigures {
    latency: Figures,
    tcp: Figures,
    /// Round trips through a raw relay process to an echo process, same frames
    /// ([`relay_ping_pong`]).
    relay: Figures,
    /// One strict ed25519 verification of the request, µs.
    verify_us: f64,
    frame_len: usize,
    inner_calls: usize,
    inner_secs: f64,
    idle_mb: Vec<(String, f64)>,
    rest_mb: Vec<(String, f64)>,
    /// Requests answered with an error or an unexpected value (not counted in the figures).
    failed: usize,
    first_error: Option<String>,
}

/// What `rr` measured of signed client requests on a node of its own.
struct ClientFigures {
    /// Worker threads of that node.
    threads: u16,
    /// One request in flight per connection.
    one: Driven,
    /// [`CLIENT_DEPTH`] requests in flight per connection.
    piped: Driven,
    /// The node's RSS after the load, as long after it as the 2-node cluster's.
    rest_mb: Vec<(String, f64)>,
}

/// `plx bench rr`.
pub fn rr(args: RrArgs) -> Result<()> {
    let say = progress(args.json);
    let n = usize::try_from(args.requests)?;
    let (f, c) = run(rr_measure(n, Duration::from_secs(args.rest), &say))?;
    let ratio = f.latency.p50_us / f.tcp.p50_us.max(1e-9);
    // The least the path could take: the same three processes passing the bytes on, and the one
    // signature check.
    let floor_us = f.relay.p50_us + f.verify_us;
    let floor_ratio = f.latency.p50_us / floor_us.max(1e-9);
    let inner_rate = f.inner_calls as f64 / f.inner_secs.max(1e-9);
    let one_rate = c.one.rate();
    let piped_rate = c.piped.rate();
    let piped_p50_us = figures(c.piped.samples.clone(), c.piped.wall).p50_us;
    let failed = f.failed + c.one.failed + c.piped.failed;
    let first_error = f
        .first_error
        .as_deref()
        .or(c.one.first_error.as_deref())
        .or(c.piped.first_error.as_deref());
    let rest_max = f.rest_mb.iter().map(|(_, mb)| *mb).fold(0.0, f64::max);
    if args.json {
        let j = cluster_report(
            "rr",
            2,
            [
                ("failed_requests", failed.into()),
                ("first_error", first_error.map_or(Json::Null, Json::from)),
                (
                    "request_response",
                    Json::obj([
                        (
                            "what",
                            "signed (inc 1)@math.calc:n2 from a client of n1, 1 outstanding".into(),
                        ),
                        ("requests", n.into()),
                        ("p50_us", f.latency.p50_us.into()),
                        ("p99_us", f.latency.p99_us.into()),
                        ("requests_per_sec", f.latency.per_sec.into()),
                        ("baseline_tcp_p50_us", f.tcp.p50_us.into()),
                        ("baseline_tcp_p99_us", f.tcp.p99_us.into()),
                        ("baseline_frame_bytes", f.frame_len.into()),
                        ("ratio", ratio.into()),
                        ("baseline_relay_p50_us", f.relay.p50_us.into()),
                        ("baseline_relay_p99_us", f.relay.p99_us.into()),
                        ("baseline_verify_us", f.verify_us.into()),
                        ("floor_p50_us", floor_us.into()),
                        ("ratio_to_floor", floor_ratio.into()),
                        ("target_ratio", 2.0.into()),
                        ("met", (ratio <= 2.0).into()),
                    ]),
                ),
                (
                    "node_to_node_calls",
                    Json::obj([
                        (
                            "what",
                            "64 tasks on n1, each looping (inc 1)@math.calc:n2 (64 outstanding)"
                                .into(),
                        ),
                        ("calls", f.inner_calls.into()),
                        ("seconds", f.inner_secs.into()),
                        ("calls_per_sec", inner_rate.into()),
                        ("target_calls_per_sec", 100_000usize.into()),
                        ("met", (inner_rate >= 100_000.0).into()),
                    ]),
                ),
                (
                    "client_requests",
                    Json::obj([
                        (
                            "what",
                            Json::from(
                                format!(
                                    "signed (inc 1)@math.calc to a 1-node cluster from \
                                 {CLIENT_CONNS} connections, {CLIENT_DEPTH} outstanding each"
                                )
                                .as_str(),
                            ),
                        ),
                        ("node_threads", usize::from(c.threads).into()),
                        ("requests", c.piped.samples.len().into()),
                        ("seconds", c.piped.wall.as_secs_f64().into()),
                        ("requests_per_sec", piped_rate.into()),
                        ("p50_us", piped_p50_us.into()),
                        ("target_requests_per_sec", 40_000usize.into()),
                        ("met", (piped_rate >= 40_000.0).into()),
                        ("one_outstanding_requests", c.one.samples.len().into()),
                        ("one_outstanding_seconds", c.one.wall.as_secs_f64().into()),
                        ("one_outstanding_requests_per_sec", one_rate.into()),
                    ]),
                ),
                (
                    "memory",
                    Json::obj([
                        ("idle_rss_mb", mb_json(&f.idle_mb)),
                        ("rest_rss_mb", mb_json(&f.rest_mb)),
                        ("rest_after_s", args.rest.into()),
                        ("client_node_rest_rss_mb", mb_json(&c.rest_mb)),
                        ("max_rest_rss_mb", rest_max.into()),
                        ("target_mb", 20usize.into()),
                        ("met", (rest_max < 20.0).into()),
                    ]),
                ),
            ],
        );
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench rr: 2-node cluster (profile {PROFILE}, {} build)",
        build_profile()
    );
    println!();
    println!(
        "(a) request/response across nodes, 1 outstanding: a client signs (inc 1)@math.calc:n2,"
    );
    println!("    n1 verifies it and routes it over its TLS link to n2, which answers through n1");
    println!(
        "    plexus     p50 {:>8.1} µs   p99 {:>8.1} µs   {} requests",
        f.latency.p50_us, f.latency.p99_us, n
    );
    println!(
        "    baseline   p50 {:>8.1} µs   p99 {:>8.1} µs   raw TCP ping-pong, 127.0.0.1, TCP_NODELAY, two processes, {}-byte frames",
        f.tcp.p50_us, f.tcp.p99_us, f.frame_len
    );
    println!(
        "    ratio {ratio:.2}× — target ≤ 2×: {}",
        verdict(ratio <= 2.0)
    );
    println!(
        "    relay      p50 {:>8.1} µs   p99 {:>8.1} µs   raw relay: this process → relay process (Unix socket) → echo process (TCP) and back, blocking I/O ({:.2}× raw TCP)",
        f.relay.p50_us,
        f.relay.p99_us,
        f.relay.p50_us / f.tcp.p50_us.max(1e-9)
    );
    println!(
        "    floor      p50 {:>8.1} µs = raw relay + one ed25519 verify {:.1} µs; ratio to it {:.2}×",
        floor_us, f.verify_us, floor_ratio
    );
    println!();
    println!("(b) calls from inside n1 to n2, 64 outstanding: 64 tasks on n1 each loop (inc 1)@math.calc:n2");
    println!(
        "    {:>10.0} calls/s ({} calls in {:.2} s) — target ≥ 100000/s: {}",
        inner_rate,
        f.inner_calls,
        f.inner_secs,
        verdict(inner_rate >= 100_000.0)
    );
    println!();
    println!(
        "(c) signed client requests ((inc 1)@math.calc) to a 1-node cluster ({} worker threads), {CLIENT_CONNS} connections",
        c.threads
    );
    println!(
        "    {:>10.0} requests/s ({} requests in {:.2} s, p50 {:.0} µs) with {CLIENT_DEPTH} outstanding on each connection — target ≥ 40000/s: {}",
        piped_rate,
        c.piped.samples.len(),
        c.piped.wall.as_secs_f64(),
        piped_p50_us,
        verdict(piped_rate >= 40_000.0)
    );
    println!(
        "    {:>10.0} requests/s ({} requests in {:.2} s) with 1 outstanding on each connection (bound by the round trip: at most {CLIENT_CONNS} requests to batch)",
        one_rate,
        c.one.samples.len(),
        c.one.wall.as_secs_f64(),
    );
    println!();
    println!(
        "(d) node memory (VmRSS): idle before the load {}; at rest {} s after it {} — target < 20 MB: {}",
        mb_list(&f.idle_mb),
        args.rest,
        mb_list(&f.rest_mb),
        verdict(rest_max < 20.0)
    );
    println!(
        "    (c)'s node {} s after its load: {} (it keeps the nonces of the last 2 minutes' signed requests, up to 100,000, to refuse replays)",
        args.rest,
        mb_list(&c.rest_mb),
    );
    if failed > 0 {
        println!();
        println!(
            "{failed} requests failed (left out of the figures); the first: {}",
            first_error.unwrap_or("?")
        );
    }
    Ok(())
}

async fn rr_measure(
    n: usize,
    rest: Duration,
    say: &dyn Fn(&str),
) -> Result<(RrFigures, ClientFigures)> {
    say("starting a 2-node cluster");
    let mut pair = LocalCluster::start(2, PROFILE).await?;
    let r = rr_on(&mut pair, n, rest, say).await;
    let figures = pair.explain(r)?;
    drop(pair);
    // A node serves client requests with all of its machine's cores; the two nodes above share
    // this machine's, and n2 would sit idle while n1 served the requests with half of them.
    say("starting a 1-node cluster");
    let single = LocalCluster::start(1, PROFILE).await?;
    let r = client_requests_on(&single, n, rest, say).await;
    let clients = single.explain(r)?;
    Ok((figures, clients))
}

async fn rr_on(
    cluster: &mut LocalCluster,
    n: usize,
    rest: Duration,
    say: &dyn Fn(&str),
) -> Result<RrFigures> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_mb = cluster.rss()?;
    let socket = cluster.node(0)?.socket();
    let key = &cluster.admin;

    say("request/response: client → n1 → n2, 1 outstanding");
    let body = parse("(inc 1)@math.calc:n2")?;
    let warm = sign_many(key, n.div_ceil(10).clamp(10, 200), |_| Ok(body.clone()))?;
    drive(&socket, vec![warm], 1, expect_int).await?;
    let msgs = sign_many(key, n, |_| Ok(body.clone()))?;
    let frame_len = msgs.first().map_or(64, |m| m.to_bytes().len() + 16);
    let sample = msgs.first().cloned();
    let one = drive(&socket, vec![msgs], 1, expect_int).await?;
    let (failed, first_error) = (one.failed, one.first_error.clone());
    let latency = figures(one.samples, one.wall);

    say("baseline: raw TCP ping-pong between two processes");
    let tcp = tcp_ping_pong(frame_len, n)?;
    say("the path's floor: a raw relay and one signature check");
    let relay = relay_ping_pong(&cluster.dir, frame_len, n)?;
    let verify_us = match sample.as_ref() {
        Some(m) => verify_cost(m, (n / 4).clamp(20, 2000)),
        None => 0.0,
    };

    let per_task = (4 * n).div_ceil(INNER_TASKS);
    say(&format!(
        "calls from n1 to n2, {INNER_TASKS} outstanding ({} calls)",
        per_task * INNER_TASKS
    ));
    let inner_secs = inner_calls(cluster, per_task).await?;

    say(&format!(
        "memory at rest, {} s after the load",
        rest.as_secs()
    ));
    tokio::time::sleep(rest).await;
    let rest_mb = cluster.rss()?;
    Ok(RrFigures {
        latency,
        tcp,
        relay,
        verify_us,
        frame_len,
        inner_calls: per_task * INNER_TASKS,
        inner_secs,
        idle_mb,
        rest_mb,
        failed,
        first_error,
    })
}

/// Signed `(inc 1)@math.calc` requests from [`CLIENT_CONNS`] connections to the cluster's first
/// node: `2 n` of them with one in flight per connection, then as many with [`CLIENT_DEPTH`].
async fn client_requests_on(
    cluster: &LocalCluster,
    n: usize,
    rest: Duration,
    say: &dyn Fn(&str),
) -> Result<ClientFigures> {
    let socket = cluster.node(0)?.socket();
    let key = &cluster.admin;
    let body = parse("(inc 1)@math.calc")?;
    let per_conn = (2 * n).div_ceil(CLIENT_CONNS);
    let pools = || {
        (0..CLIENT_CONNS)
            .map(|_| sign_many(key, per_conn, |_| Ok(body.clone())))
            .collect::<Result<Vec<_>>>()
    };
    let warm = sign_many(key, n.div_ceil(10).clamp(10, 200), |_| Ok(body.clone()))?;
    drive(&socket, vec![warm], 1, expect_int).await?;
    say(&format!(
        "signed client requests from {CLIENT_CONNS} connections, 1 outstanding each"
    ));
    let one = drive(&socket, pools()?, 1, expect_int).await?;
    say(&format!(
        "signed client requests from {CLIENT_CONNS} connections, {CLIENT_DEPTH} outstanding each"
    ));
    let piped = drive(&socket, pools()?, CLIENT_DEPTH, expect_int).await?;
    tokio::time::sleep(rest).await;
    Ok(ClientFigures {
        threads: cluster.threads,
        one,
        piped,
        rest_mb: cluster.rss()?,
    })
}

/// Round trips of `frame_len`-byte frames over TCP on 127.0.0.1 between this process and a
/// helper process that echoes them, both with `TCP_NODELAY`.
fn tcp_ping_pong(frame_len: usize, count: usize) -> Result<Figures> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let _peer = Reaper::helper(&["tcp-echo-peer", &addr.to_string()])?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("the TCP echo peer did not connect"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    ping_pong(&mut stream, frame_len, Duration::from_secs(5), 200)?;
    ping_pong(&mut stream, frame_len, Duration::from_secs(120), count)
}

/// Round trips of `frame_len`-byte frames from this process through a relay process (over a
/// Unix socket) to an echo process (over TCP on 127.0.0.1, `TCP_NODELAY`) and back: rr (a)'s
/// path with nothing done on it but passing bytes, with blocking reads and writes.
fn relay_ping_pong(dir: &Path, frame_len: usize, count: usize) -> Result<Figures> {
    let addr = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
    let socket = dir.join("relay.sock");
    let socket_arg = socket
        .to_str()
        .context("the bench directory is not UTF-8")?;
    let _relay = Reaper::helper(&["relay-peer", socket_arg, &addr.to_string()])?;
    let mut stream = connect_retry(&socket)?;
    let _echo = Reaper::helper(&["tcp-echo-peer", &addr.to_string()])?;
    ping_pong(&mut stream, frame_len, Duration::from_secs(5), 200)?;
    ping_pong(&mut stream, frame_len, Duration::from_secs(120), count)
}

/// Starts 64 tasks on n1, each looping `per_task` calls `(inc 1)@math.calc:n2`, and gives the
/// seconds until all of them are done.
///
/// No service waits for 64 concurrent calls, so each task is
/// `(task.que [LOOP (task.que [(wait 3600)@time.chrono])@sys.task])@sys.task`, started with
/// `task.sim`: a task whose loop succeeded parks in the inner `task.que`, one whose loop
/// failed ends. Polling `get.all@sys.task` every 5 ms tells which; the parked tasks are killed
/// afterwards.
async fn inner_calls(cluster: &LocalCluster, per_task: usize) -> Result<f64> {
    let key = &cluster.admin;
    let socket = cluster.node(0)?.socket();
    let one = format!(
        "(task.que [(task.loop ({per_task} (inc 1)@math.calc:n2))@sys.task (task.que [(wait 3600)@time.chrono])@sys.task])@sys.task"
    );
    let text = format!("(task.sim [{}])@sys.task", vec![one; INNER_TASKS].join(" "));
    let mut client = Client::connect(&socket).await?;
    let mut poller = Client::connect(&socket).await?;
    let start = Instant::now();
    let started = ask(&mut client, key, &text).await?;
    let ids: HashSet<String> = started
        .as_map()
        .and_then(|m| m.get_str("task"))
        .and_then(Unit::as_list)
        .unwrap_or_default()
        .iter()
        .map(to_text)
        .collect();
    let result = async {
        if ids.len() != INNER_TASKS {
            bail!("task.sim answered {}", to_text(&started));
        }
        loop {
            let all = ask(&mut poller, key, "get.all@sys.task").await?;
            let rows: Vec<(String, String, String)> = all
                .as_list()
                .unwrap_or_default()
                .iter()
                .filter_map(Unit::as_map)
                .map(|m| {
                    let f = |k: &str| m.get_str(k).map(to_text).unwrap_or_default();
                    (f("id"), f("name"), f("par.id"))
                })
                .collect();
            let names: HashMap<&str, &str> = rows
                .iter()
                .map(|(id, name, _)| (id.as_str(), name.as_str()))
                .collect();
            let alive = rows.iter().filter(|(id, _, _)| ids.contains(id)).count();
            if alive < INNER_TASKS {
                bail!(
                    "{} of the {INNER_TASKS} loops failed (see the node's log)",
                    INNER_TASKS - alive
                );
            }
            let parked = rows
                .iter()
                .filter(|(_, name, parent)| {
                    name == "task.que" && names.get(parent.as_str()) == Some(&"task.que")
                })
                .count();
            if parked >= INNER_TASKS {
                return Ok(start.elapsed().as_secs_f64());
            }
            if start.elapsed() > Duration::from_secs(600) {
                bail!("the 64 loops did not finish within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    .await;
    let kills: Vec<String> = ids
        .iter()
        .map(|id| format!("(task.try (kill {id}))@sys.task"))
        .collect();
    let _ = ask(&mut client, key, &format!("[{}]", kills.join(" "))).await;
    result
}

// ------------------------------------------------------------------------------------------
// plx bench detect

/// What `detect` measured for one profile.
struct DetectRuns {
    /// Kill to the last survivor showing the node down, per run, ms.
    times_ms: Vec<f64>,
    /// Round trips of the polls (`nodes@sys.node`), ms: the measurement's resolution with the
    /// 10 ms poll interval.
    poll_ms: Vec<f64>,
}

/// What the soak counted.
struct Soak {
    profile: String,
    secs: u64,
    polls: u64,
    suspect_marks: u64,
    down_marks: u64,
    /// Times a node's view of the leader moved from one node to another or to none (the
    /// failover bench's "no spurious leader change" under load).
    leader_changes: u64,
    events: Vec<String>,
}

/// `plx bench detect`.
pub fn detect(args: DetectArgs) -> Result<()> {
    parse_profile(&args.soak_profile).map_err(|e| anyhow!("{e}"))?;
    let say = progress(args.json);
    let runs = usize::try_from(args.runs)?;
    let (results, soak) = run(async {
        let mut results = Vec::new();
        for (profile, target_ms) in [("default", 2000.0), ("local", 1000.0)] {
            say(&format!("profile {profile}: starting a 3-node cluster"));
            let r = detect_profile(profile, runs, &say).await?;
            results.push((profile, target_ms, r));
        }
        let soak = if args.soak > 0 {
            Some(soak(args.soak, &args.soak_profile, &say).await?)
        } else {
            None
        };
        Ok((results, soak))
    })?;
    if args.json {
        let mut fields = vec![
            ("bench".to_owned(), "detect".into()),
            ("build".to_owned(), build_profile().into()),
            ("nodes".to_owned(), 3usize.into()),
            ("runs".to_owned(), runs.into()),
        ];
        for (profile, target_ms, r) in &results {
            let med = median(&r.times_ms);
            let max = r.times_ms.iter().copied().fold(0.0, f64::max);
            fields.push((
                (*profile).to_owned(),
                Json::obj([
                    ("runs_ms", Json::nums(&r.times_ms)),
                    ("median_ms", med.into()),
                    ("max_ms", max.into()),
                    ("baseline_poll_rtt_p50_ms", median(&r.poll_ms).into()),
                    ("poll_interval_ms", (POLL.as_millis() as f64).into()),
                    ("ratio_max_to_target", (max / target_ms).into()),
                    ("target_ms", (*target_ms).into()),
                    ("met", (max <= *target_ms).into()),
                ]),
            ));
        }
        if let Some(s) = &soak {
            fields.push((
                "soak".to_owned(),
                Json::obj([
                    ("profile", s.profile.as_str().into()),
                    ("seconds", s.secs.into()),
                    ("polls", s.polls.into()),
                    ("suspect_marks", s.suspect_marks.into()),
                    ("down_marks", s.down_marks.into()),
                    ("leader_changes", s.leader_changes.into()),
                    ("target_marks", 0usize.into()),
                    ("target_leader_changes", 0usize.into()),
                    (
                        "met",
                        (s.suspect_marks + s.down_marks + s.leader_changes == 0).into(),
                    ),
                ]),
            ));
        }
        println!("{}", Json::Obj(fields));
        return Ok(());
    }
    println!(
        "plx bench detect: 3-node clusters, a non-leader killed with SIGKILL, {runs} run(s) per profile ({} build)",
        build_profile()
    );
    println!("time from the kill until every survivor's nodes@sys.node shows it health:down");
    println!();
    for (profile, target_ms, r) in &results {
        let med = median(&r.times_ms);
        let max = r.times_ms.iter().copied().fold(0.0, f64::max);
        let runs: Vec<String> = r.times_ms.iter().map(|t| format!("{t:.0}")).collect();
        println!(
            "  {profile:<8} median {med:>6.0} ms   max {max:>6.0} ms   runs [{}] ms",
            runs.join(" ")
        );
        println!(
            "           target ≤ {target_ms:.0} ms: {} (max/target {:.2}); measured by polling every {} ms, poll round trip p50 {:.2} ms",
            verdict(max <= *target_ms),
            max / target_ms,
            POLL.as_millis(),
            median(&r.poll_ms)
        );
    }
    if let Some(s) = &soak {
        println!();
        println!(
            "  soak ({} profile, one core busy, {} s, {} polls): {} suspect and {} down marks, {} leader changes — target 0: {}",
            s.profile,
            s.secs,
            s.polls,
            s.suspect_marks,
            s.down_marks,
            s.leader_changes,
            verdict(s.suspect_marks + s.down_marks + s.leader_changes == 0)
        );
        for e in s.events.iter().take(20) {
            println!("    {e}");
        }
    }
    Ok(())
}

async fn detect_profile(profile: &str, runs: usize, say: &dyn Fn(&str)) -> Result<DetectRuns> {
    let mut cluster = LocalCluster::start(3, profile).await?;
    let r = detect_on(&mut cluster, profile, runs, say).await;
    cluster.explain(r)
}

async fn detect_on(
    cluster: &mut LocalCluster,
    profile: &str,
    runs: usize,
    say: &dyn Fn(&str),
) -> Result<DetectRuns> {
    let mut times_ms = Vec::new();
    let mut poll_ms = Vec::new();
    for run in 0..runs {
        let leader = cluster.leader().await?;
        let others: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != leader).collect();
        let victim = others
            .get(run % others.len().max(1))
            .copied()
            .ok_or_else(|| anyhow!("no node to kill"))?;
        let name = cluster.node(victim)?.name.clone();
        let mut watchers = tokio::task::JoinSet::new();
        let mut clients = Vec::new();
        for (i, node) in cluster.nodes.iter().enumerate() {
            if i != victim && node.running() {
                clients.push(Client::connect(&node.socket()).await?);
            }
        }
        let killed_at = Instant::now();
        if let Some(node) = cluster.nodes.get_mut(victim) {
            node.kill9();
        }
        for mut client in clients {
            let key = cluster.admin.clone();
            let name = name.clone();
            watchers.spawn(async move {
                let mut rtts = Vec::new();
                loop {
                    let t = Instant::now();
                    let view = ask(&mut client, &key, "nodes@sys.node").await?;
                    rtts.push(t.elapsed().as_secs_f64() * 1e3);
                    if members(&view)
                        .iter()
                        .any(|m| m.name == name && m.health == "down")
                    {
                        return Ok::<_, anyhow::Error>((killed_at.elapsed(), rtts));
                    }
                    if killed_at.elapsed() > EVENT_TIMEOUT {
                        bail!(
                            "{} was not marked down within {} s: {}",
                            name,
                            EVENT_TIMEOUT.as_secs(),
                            to_text(&view)
                        );
                    }
                    tokio::time::sleep(POLL).await;
                }
            });
        }
        let mut slowest = Duration::ZERO;
        while let Some(done) = watchers.join_next().await {
            let (t, rtts) = done??;
            slowest = slowest.max(t);
            poll_ms.extend(rtts);
        }
        let ms = slowest.as_secs_f64() * 1e3;
        say(&format!(
            "profile {profile}, run {}: {name} killed, down everywhere after {ms:.0} ms",
            run + 1
        ));
        times_ms.push(ms);
        if run + 1 < runs {
            cluster.restart(victim).await?;
            cluster.wait_formed().await?;
        }
    }
    Ok(DetectRuns { times_ms, poll_ms })
}

async fn soak(secs: u64, profile: &str, say: &dyn Fn(&str)) -> Result<Soak> {
    say(&format!(
        "soak: 3-node cluster (profile {profile}), one core busy, {secs} s"
    ));
    let mut cluster = LocalCluster::start(3, profile).await?;
    let r = soak_on(&mut cluster, profile, secs).await;
    cluster.explain(r)
}

async fn soak_on(cluster: &mut LocalCluster, profile: &str, secs: u64) -> Result<Soak> {
    let _busy = Reaper::helper(&["busy-loop"])?;
    let mut clients = Vec::new();
    for node in &cluster.nodes {
        clients.push(Client::connect(&node.socket()).await?);
    }
    let mut last: HashMap<(usize, String), String> = HashMap::new();
    let mut s = Soak {
        profile: profile.to_owned(),
        secs,
        polls: 0,
        suspect_marks: 0,
        down_marks: 0,
        leader_changes: 0,
        events: Vec::new(),
    };
    let mut leaders: HashMap<usize, String> = HashMap::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        for (i, client) in clients.iter_mut().enumerate() {
            let view = ask(client, &cluster.admin, "nodes@sys.node").await?;
            s.polls += 1;
            let seen = members(&view);
            let leader = seen
                .iter()
                .find(|m| m.leader)
                .map(|m| m.name.clone())
                .unwrap_or_default();
            if let Some(before) = leaders.insert(i, leader.clone()) {
                if before != leader && !before.is_empty() {
                    s.leader_changes += 1;
                    s.events.push(format!(
                        "{:.2} s: n{} sees leader {} instead of {before}",
                        start.elapsed().as_secs_f64(),
                        i + 1,
                        if leader.is_empty() { "none" } else { &leader },
                    ));
                }
            }
            for m in seen {
                let prev = last.insert((i, m.name.clone()), m.health.clone());
                if prev.as_deref() == Some(m.health.as_str()) {
                    continue;
                }
                match m.health.as_str() {
                    "suspect" => s.suspect_marks += 1,
                    "down" => s.down_marks += 1,
                    _ => {}
                }
                if m.health != "alive" {
                    s.events.push(format!(
                        "{:.2} s: n{} shows {} {}",
                        start.elapsed().as_secs_f64(),
                        i + 1,
                        m.name,
                        m.health
                    ));
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(s)
}

// ------------------------------------------------------------------------------------------
// plx bench failover

/// One write of the failover writer.
struct WriteRecord {
    start: Instant,
    end: Instant,
    ok: bool,
    /// Why it failed.
    error: Option<String>,
}

/// What one failover run measured.
struct FailoverRun {
    /// Kill to the acknowledgement of the first write sent after the kill, ms.
    ms: f64,
    /// Kill to the first acknowledgement of any write (one in flight at the kill may be
    /// acknowledged by the old leader's commit), ms.
    any_ack_ms: f64,
    /// Median latency of the acknowledged writes before the kill, ms.
    write_p50_ms: f64,
    /// Writes that failed in the run.
    failed: usize,
    /// The first failure's message.
    first_error: Option<String>,
    /// The last failure's message.
    last_error: Option<String>,
}

/// `plx bench failover`.
pub fn failover(args: FailoverArgs) -> Result<()> {
    let say = progress(args.json);
    let runs = usize::try_from(args.runs)?;
    let r = run(failover_measure(runs, &say))?;
    let times: Vec<f64> = r.iter().map(|r| r.ms).collect();
    let med = median(&times);
    let max = times.iter().copied().fold(0.0, f64::max);
    let write_p50 = median(&r.iter().map(|r| r.write_p50_ms).collect::<Vec<_>>());
    let target = 600.0;
    if args.json {
        let j = cluster_report(
            "failover",
            3,
            [
                ("runs", runs.into()),
                ("runs_ms", Json::nums(&times)),
                (
                    "first_ack_any_write_ms",
                    Json::nums(&r.iter().map(|r| r.any_ack_ms).collect::<Vec<_>>()),
                ),
                ("median_ms", med.into()),
                ("max_ms", max.into()),
                ("baseline_write_p50_ms", write_p50.into()),
                ("ratio_median_to_target", (med / target).into()),
                (
                    "failed_writes",
                    r.iter().map(|r| r.failed).sum::<usize>().into(),
                ),
                ("target_ms", target.into()),
                ("met", (med <= target).into()),
            ],
        );
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench failover: 3-node cluster (profile {PROFILE}, {} build), {runs} run(s)",
        build_profile()
    );
    println!("a client writes {{save:i out:@foN}}@io.store in a loop through a follower; the leader is killed with SIGKILL");
    println!();
    for (i, run) in r.iter().enumerate() {
        println!(
            "  run {}: first write sent after the kill acknowledged {:>5.0} ms after it (first ack of any write {:>5.0} ms; {} writes failed)",
            i + 1,
            run.ms,
            run.any_ack_ms,
            run.failed
        );
        // The failures are of the same kinds in every run: show them once.
        if i == 0 {
            if let Some(e) = &run.first_error {
                println!("         first failure: {e}");
            }
            if let Some(e) = run.last_error.as_ref().filter(|_| run.failed > 1) {
                println!("         last failure:  {e}");
            }
        }
    }
    println!(
        "  median {med:.0} ms, max {max:.0} ms — target ≤ {target:.0} ms (median): {}",
        verdict(med <= target)
    );
    println!("  baseline: a write through the same follower takes {write_p50:.2} ms (p50, before the kill)");
    Ok(())
}

async fn failover_measure(runs: usize, say: &dyn Fn(&str)) -> Result<Vec<FailoverRun>> {
    say("starting a 3-node cluster");
    let mut cluster = LocalCluster::start(3, PROFILE).await?;
    let r = failover_on(&mut cluster, runs, say).await;
    cluster.explain(r)
}

async fn failover_on(
    cluster: &mut LocalCluster,
    runs: usize,
    say: &dyn Fn(&str),
) -> Result<Vec<FailoverRun>> {
    let mut out = Vec::new();
    for run in 0..runs {
        let leader = cluster.leader().await?;
        let n = cluster.nodes.len();
        let via = (leader + 1 + run % 2) % n;
        let socket = cluster.node(via)?.socket();
        let log: Arc<Mutex<Vec<WriteRecord>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_loop(
            socket,
            cluster.admin.clone(),
            log.clone(),
            stop.clone(),
            run,
        ));
        let result = async {
            let deadline = Instant::now() + EVENT_TIMEOUT;
            while acked(&log) < 20 {
                if Instant::now() > deadline || writer.is_finished() {
                    bail!("the writer got no 20 writes acknowledged before the kill");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let killed_at = Instant::now();
            if let Some(node) = cluster.nodes.get_mut(leader) {
                node.kill9();
            }
            let deadline = killed_at + EVENT_TIMEOUT;
            loop {
                {
                    let log = lock(&log);
                    if let Some(w) = log.iter().find(|w| w.ok && w.start >= killed_at) {
                        let any = log
                            .iter()
                            .find(|w| w.ok && w.end >= killed_at)
                            .map_or(w.end, |a| a.end);
                        let before: Vec<f64> = log
                            .iter()
                            .filter(|w| w.ok && w.end < killed_at)
                            .map(|w| (w.end - w.start).as_secs_f64() * 1e3)
                            .collect();
                        return Ok(FailoverRun {
                            ms: (w.end - killed_at).as_secs_f64() * 1e3,
                            any_ack_ms: (any - killed_at).as_secs_f64() * 1e3,
                            write_p50_ms: median(&before),
                            failed: log.iter().filter(|w| !w.ok).count(),
                            first_error: log.iter().find_map(|w| w.error.clone()),
                            last_error: log.iter().rev().find_map(|w| w.error.clone()),
                        });
                    }
                }
                if Instant::now() > deadline || writer.is_finished() {
                    bail!(
                        "no write was acknowledged within {} s of killing the leader",
                        EVENT_TIMEOUT.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        let written = writer.await;
        let r = result?;
        written??;
        say(&format!(
            "run {}: leader {} killed, first new write acknowledged after {:.0} ms",
            run + 1,
            cluster.node(leader)?.name,
            r.ms
        ));
        out.push(r);
        if run + 1 < runs {
            cluster.restart(leader).await?;
            cluster.wait_formed().await?;
            // A read through the restarted node waits until it applied everything committed:
            // the next run starts with its log caught up.
            cluster
                .ask(leader, &format!("(load @fo{run})@io.store"))
                .await?;
        }
    }
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn acked(log: &Mutex<Vec<WriteRecord>>) -> usize {
    lock(log).iter().filter(|w| w.ok).count()
}

/// Writes `{save:i out:@foRUN}@io.store` through `socket`, one at a time, recording each,
/// until `stop`.
async fn write_loop(
    socket: PathBuf,
    key: Keypair,
    log: Arc<Mutex<Vec<WriteRecord>>>,
    stop: Arc<AtomicBool>,
    run: usize,
) -> Result<()> {
    let mut client = Client::connect(&socket).await?;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let msg = sign_with(&key, parse(&format!("{{save:{i} out:@fo{run}}}@io.store"))?)?;
        let start = Instant::now();
        let reply = client.call(&msg, None, std::future::pending()).await;
        let end = Instant::now();
        let error = match &reply {
            Ok(Reply::Nothing | Reply::Value(_)) => None,
            Ok(r) => Some(describe(r)),
            Err(e) => Some(format!("{e:#}")),
        };
        let ok = error.is_none();
        lock(&log).push(WriteRecord {
            start,
            end,
            ok,
            error,
        });
        if reply.is_err() {
            // The connection broke (the node this writer talks to is not the one killed, so
            // this is unexpected); reconnect once.
            client = Client::connect(&socket).await?;
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        i += 1;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// plx bench store

/// What `store` measured on one cluster.
struct StoreFigures {
    nodes: usize,
    via: String,
    one: Figures,
    many_writes: usize,
    many_per_sec: f64,
    fsync: Figures,
    /// Writes answered with an error (not counted in the figures).
    failed: usize,
    first_error: Option<String>,
    /// Whether another node led the cluster at the end.
    leader_changed: bool,
}

/// `plx bench store`.
pub fn store(args: StoreArgs) -> Result<()> {
    let say = progress(args.json);
    let writes = usize::try_from(args.writes)?;
    let results = run(async {
        let mut results = Vec::new();
        for nodes in [3, 1] {
            results.push(store_measure(nodes, writes, &say).await?);
        }
        Ok(results)
    })?;
    let (tput_target, p50_target_us) = (10_000.0, 1000.0);
    if args.json {
        let mut fields = vec![
            ("bench".to_owned(), "store".into()),
            ("build".to_owned(), build_profile().into()),
            ("profile".to_owned(), PROFILE.into()),
            ("writes".to_owned(), writes.into()),
        ];
        for r in &results {
            let mut obj = vec![
                ("via".to_owned(), r.via.as_str().into()),
                ("failed_writes".to_owned(), r.failed.into()),
                (
                    "first_error".to_owned(),
                    r.first_error.as_deref().map_or(Json::Null, Json::from),
                ),
                ("leader_changed".to_owned(), r.leader_changed.into()),
                (
                    "one_client".to_owned(),
                    Json::obj([
                        ("p50_us", r.one.p50_us.into()),
                        ("p99_us", r.one.p99_us.into()),
                        ("writes_per_sec", r.one.per_sec.into()),
                    ]),
                ),
                (
                    "clients_32".to_owned(),
                    Json::obj([
                        ("writes", r.many_writes.into()),
                        ("writes_per_sec", r.many_per_sec.into()),
                    ]),
                ),
                (
                    "baseline_fsync".to_owned(),
                    Json::obj([
                        (
                            "what",
                            "4 KiB pwrite + fdatasync in a loop, same filesystem".into(),
                        ),
                        ("p50_us", r.fsync.p50_us.into()),
                        ("p99_us", r.fsync.p99_us.into()),
                        ("per_sec", r.fsync.per_sec.into()),
                    ]),
                ),
                (
                    "ratio_one_client_p50_to_fsync_p50".to_owned(),
                    (r.one.p50_us / r.fsync.p50_us.max(1e-9)).into(),
                ),
                (
                    "ratio_32_clients_to_fsync_rate".to_owned(),
                    (r.many_per_sec / r.fsync.per_sec.max(1e-9)).into(),
                ),
            ];
            if r.nodes == 3 {
                obj.push(("target_writes_per_sec_32".to_owned(), tput_target.into()));
                obj.push(("target_p50_us_one_client".to_owned(), p50_target_us.into()));
                obj.push((
                    "met_writes_per_sec_32".to_owned(),
                    (r.many_per_sec >= tput_target).into(),
                ));
                obj.push((
                    "met_p50_one_client".to_owned(),
                    (r.one.p50_us < p50_target_us).into(),
                ));
            }
            let name = if r.nodes == 3 {
                "three_nodes"
            } else {
                "one_node"
            };
            fields.push((name.to_owned(), Json::Obj(obj)));
        }
        println!("{}", Json::Obj(fields));
        return Ok(());
    }
    println!(
        "plx bench store: durable io.store writes (profile {PROFILE}, {} build), {writes} writes by 1 client, {} by {STORE_CLIENTS}",
        build_profile(),
        results.first().map_or(0, |r| r.many_writes)
    );
    for r in &results {
        println!();
        println!(
            "{}-node cluster, clients connected to the leader ({}):",
            r.nodes, r.via
        );
        println!(
            "    1 client     p50 {:>8.3} ms   p99 {:>8.3} ms   {:>8.0} writes/s{}",
            r.one.p50_us / 1e3,
            r.one.p99_us / 1e3,
            r.one.per_sec,
            if r.nodes == 3 {
                format!(
                    "   target p50 < 1 ms: {}",
                    verdict(r.one.p50_us < p50_target_us)
                )
            } else {
                String::new()
            }
        );
        println!(
            "    {STORE_CLIENTS} clients                                      {:>8.0} writes/s{}",
            r.many_per_sec,
            if r.nodes == 3 {
                format!(
                    "   target ≥ 10000/s: {}",
                    verdict(r.many_per_sec >= tput_target)
                )
            } else {
                String::new()
            }
        );
        println!(
            "    baseline     p50 {:>8.3} ms   p99 {:>8.3} ms   {:>8.0} fsyncs/s (4 KiB pwrite + fdatasync, same filesystem)",
            r.fsync.p50_us / 1e3,
            r.fsync.p99_us / 1e3,
            r.fsync.per_sec
        );
        println!(
            "    ratios       1-client p50 / fsync p50 = {:.2}; {STORE_CLIENTS}-client writes/s / fsyncs/s = {:.2}",
            r.one.p50_us / r.fsync.p50_us.max(1e-9),
            r.many_per_sec / r.fsync.per_sec.max(1e-9)
        );
        if r.failed > 0 {
            println!(
                "    {} writes failed (left out of the figures); the first: {}",
                r.failed,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
        if r.leader_changed {
            println!("    the leader changed during the measurements");
        }
    }
    Ok(())
}

async fn store_measure(n: usize, writes: usize, say: &dyn Fn(&str)) -> Result<StoreFigures> {
    say(&format!("starting a {n}-node cluster"));
    let mut cluster = LocalCluster::start(n, PROFILE).await?;
    let r = store_on(&mut cluster, n, writes, say).await;
    cluster.explain(r)
}

async fn store_on(
    cluster: &mut LocalCluster,
    n: usize,
    writes: usize,
    say: &dyn Fn(&str),
) -> Result<StoreFigures> {
    let leader = cluster.leader().await?;
    let via = cluster.node(leader)?.name.clone();
    let socket = cluster.node(leader)?.socket();
    let key = &cluster.admin;

    say("baseline: fsync rate of the data directory's filesystem");
    let fsync = fsync_rate(&cluster.dir, writes)?;

    say(&format!("{n}-node cluster: 1 client"));
    let save = |client: usize| {
        move |i: usize| Ok(parse(&format!("{{save:{i} out:@s{client}}}@io.store"))?)
    };
    let warm = sign_many(key, (writes / 10).clamp(5, 50), save(0))?;
    drive(&socket, vec![warm], 1, expect_done).await?;
    let pool = sign_many(key, writes, save(0))?;
    let single = drive(&socket, vec![pool], 1, expect_done).await?;
    let (failed, first_error) = (single.failed, single.first_error.clone());
    let one = figures(single.samples, single.wall);

    say(&format!("{n}-node cluster: {STORE_CLIENTS} clients"));
    let per_client = (4 * writes).div_ceil(STORE_CLIENTS);
    let pools = (0..STORE_CLIENTS)
        .map(|c| sign_many(key, per_client, save(c)))
        .collect::<Result<Vec<_>>>()?;
    let many = drive(&socket, pools, 1, expect_done).await?;
    let leader_after = cluster.leader().await.ok();
    Ok(StoreFigures {
        nodes: n,
        via,
        one,
        many_writes: many.samples.len(),
        many_per_sec: many.rate(),
        fsync,
        failed: failed + many.failed,
        first_error: first_error.or(many.first_error),
        leader_changed: leader_after != Some(leader),
    })
}

/// This filesystem's fsync rate: a 4 KiB block written at the start of a file in `dir`, then
/// `fdatasync`, `count` times (at most 10 s).
fn fsync_rate(dir: &Path, count: usize) -> Result<Figures> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync.bench");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = [0x5au8; 4096];
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    while samples.len() < count && start.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        file.write_all_at(&block, 0)?;
        file.sync_data()?;
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(figures(samples, total))
}

/// The figures of each run, as a report lists them: `812 790 845`.
fn runs_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A free TCP port on `ip` (bound, then let go: the caller binds it next).
fn free_port(ip: std::net::Ipv4Addr) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0))
        .with_context(|| format!("cannot listen on {ip}"))?
        .local_addr()?
        .port())
}
