//! `plx bench proc`: running programs through `sys.proc` on a 3-node cluster, each figure next
//! to a baseline measured in the same run (`docs/benchmarks.md`).
//!
//! The phases run in the order (c), (a), (b), (d): (c) first, so that `ps` lists exactly the
//! processes it started and no ended ones of the other phases.

use std::io::Read;

use plexus_protocol::{TermRequest, TermResponse};

use super::*;

/// Concurrent clients of the spawn-rate measurement: enough attached runs in flight that the
/// node's spawn path, not one client's round trip, bounds the rate.
const RATE_CLIENTS: usize = 8;

/// Detached runs and kills in flight at once while starting and stopping the (c) processes.
const START_DEPTH: usize = 16;

/// `ps` calls timed for (c), with the table full and with it empty.
const PS_CALLS: usize = 10;

/// How often (d) asks for the process table while waiting for the rescheduled process.
const RESCHED_POLL: Duration = Duration::from_millis(20);

/// Options of `plx bench proc`.
#[derive(Args, Debug)]
pub struct ProcArgs {
    /// Print one JSON object (figures, baselines, ratios, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Remote spawns timed for (a); its baselines make as many local spawns and request–replies.
    #[arg(long, default_value_t = 200, value_name = "N",
          value_parser = clap::value_parser!(u64).range(3..=10_000))]
    pub spawns: u64,
    /// `/bin/true` runs of (b) through the node, and of the raw loop it is compared with.
    #[arg(long, default_value_t = 1_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(8..=100_000))]
    pub runs: u64,
    /// Concurrently running `sleep` processes of (c), spread evenly over the 3 nodes.
    #[arg(long, default_value_t = 1_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(3..=5_000))]
    pub procs: u64,
    /// Node kills of (d); the killed node is restarted from its data directory between runs.
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=20))]
    pub kills: u64,
}

/// What (a) measured.
struct SpawnFigures {
    remote: Figures,
    local: Figures,
    rr: Figures,
}

/// What (b) measured.
struct RateFigures {
    node: Driven,
    raw_per_sec: f64,
}

/// What (c) measured.
struct ManyFigures {
    started: usize,
    /// Per node: its name, processes it ran, RSS before and after them in MB.
    nodes: Vec<(String, usize, f64, f64)>,
    ps_ms: Vec<f64>,
    ps_rows: usize,
    empty_ps_ms: Vec<f64>,
    failed: usize,
    first_error: Option<String>,
}

/// What `proc` measured.
struct ProcFigures {
    spawn: SpawnFigures,
    rate: RateFigures,
    many: ManyFigures,
    /// Kill to running elsewhere, ms per run; or why it could not be measured.
    resched: std::result::Result<Vec<f64>, String>,
}

/// `plx bench proc`.
pub fn proc(args: ProcArgs) -> Result<()> {
    let say = progress(args.json);
    let f = run(proc_measure(&args, &say))?;
    let s = &f.spawn;
    let spawn_base = s.local.p50_us + s.rr.p50_us;
    let spawn_ratio = s.remote.p50_us / spawn_base.max(1e-9);
    let node_rate = f.rate.node.rate();
    let rate_ratio = node_rate / f.rate.raw_per_sec.max(1e-9);
    let m = &f.many;
    let growth: Vec<(String, f64)> = m
        .nodes
        .iter()
        .map(|(n, count, before, after)| {
            (
                n.clone(),
                (after - before) * 1024.0 / (*count).max(1) as f64,
            )
        })
        .collect();
    let growth_max = growth.iter().map(|(_, k)| *k).fold(f64::MIN, f64::max);
    let ps_med = median(&m.ps_ms);
    let ps_empty = median(&m.empty_ps_ms);
    if args.json {
        let resched = match &f.resched {
            Ok(times) => Json::obj([
                ("available", true.into()),
                (
                    "what",
                    "{run:[sleep] restart:always}, its node killed with SIGKILL, until ps shows \
                     it running on another node"
                        .into(),
                ),
                ("runs_ms", Json::nums(times)),
                ("median_ms", median(times).into()),
                ("target_ms", 2_000usize.into()),
                ("met", (median(times) <= 2_000.0).into()),
            ]),
            Err(why) => Json::obj([("available", false.into()), ("reason", why.as_str().into())]),
        };
        let j = cluster_report(
            "proc",
            3,
            [
            (
                "remote_spawn",
                Json::obj([
                    (
                        "what",
                        "signed {run:[/bin/echo x] on:n2 attach:t}@sys.proc from a client of n1, \
                         until the first byte of output"
                            .into(),
                    ),
                    ("spawns", args.spawns.into()),
                    ("p50_us", s.remote.p50_us.into()),
                    ("p99_us", s.remote.p99_us.into()),
                    ("baseline_local_spawn_p50_us", s.local.p50_us.into()),
                    ("baseline_local_spawn_p99_us", s.local.p99_us.into()),
                    ("baseline_rr_p50_us", s.rr.p50_us.into()),
                    ("baseline_rr_p99_us", s.rr.p99_us.into()),
                    ("baseline_p50_us", spawn_base.into()),
                    ("ratio", spawn_ratio.into()),
                    ("target_ratio", 2.0.into()),
                    ("met", (spawn_ratio <= 2.0).into()),
                ]),
            ),
            (
                "spawn_rate",
                Json::obj([
                    (
                        "what",
                        Json::from(
                            format!(
                                "{{run:[/bin/true] on:n1 attach:t}}@sys.proc from {RATE_CLIENTS} \
                                 clients of n1, one run in flight each"
                            )
                            .as_str(),
                        ),
                    ),
                    ("runs", f.rate.node.samples.len().into()),
                    ("failed_runs", f.rate.node.failed.into()),
                    (
                        "first_error",
                        f.rate
                            .node
                            .first_error
                            .as_deref()
                            .map_or(Json::Null, Json::from),
                    ),
                    ("runs_per_sec", node_rate.into()),
                    ("baseline_raw_spawn_wait_per_sec", f.rate.raw_per_sec.into()),
                    ("ratio", rate_ratio.into()),
                    ("target_ratio", 0.3.into()),
                    ("met", (rate_ratio >= 0.3).into()),
                ]),
            ),
            (
                "many_processes",
                Json::obj([
                    ("what", "detached sleeps spread over n1, n2, n3".into()),
                    ("started", m.started.into()),
                    ("failed_starts", m.failed.into()),
                    (
                        "first_error",
                        m.first_error.as_deref().map_or(Json::Null, Json::from),
                    ),
                    (
                        "per_node",
                        Json::Obj(
                            m.nodes
                                .iter()
                                .zip(&growth)
                                .map(|((n, count, before, after), (_, kib))| {
                                    (
                                        n.clone(),
                                        Json::obj([
                                            ("processes", (*count).into()),
                                            ("baseline_rss_mb", (*before).into()),
                                            ("rss_mb", (*after).into()),
                                            ("kib_per_process", (*kib).into()),
                                        ]),
                                    )
                                })
                                .collect(),
                        ),
                    ),
                    ("max_kib_per_process", growth_max.into()),
                    ("target_kib_per_process", 20usize.into()),
                    ("rss_met", (growth_max <= 20.0).into()),
                    ("ps_rows", m.ps_rows.into()),
                    ("ps_text_ms", Json::nums(&m.ps_ms)),
                    ("ps_text_median_ms", ps_med.into()),
                    ("baseline_empty_ps_text_median_ms", ps_empty.into()),
                    ("ps_ratio", (ps_med / ps_empty.max(1e-9)).into()),
                    ("target_ps_ms", 100usize.into()),
                    ("ps_met", (ps_med < 100.0).into()),
                ]),
            ),
            ("rescheduling", resched),
        ]);
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench proc: 3-node cluster (profile {PROFILE}, {} build)",
        build_profile()
    );
    println!();
    println!("(a) remote spawn: a client of n1 signs {{run:[/bin/echo x] on:n2 attach:t}}@sys.proc and waits for the first byte of output");
    println!(
        "    plexus     p50 {:>8.1} µs   p99 {:>8.1} µs   {} spawns",
        s.remote.p50_us, s.remote.p99_us, args.spawns
    );
    println!(
        "    local      p50 {:>8.1} µs   p99 {:>8.1} µs   posix_spawn of /bin/echo x here, until its first byte",
        s.local.p50_us, s.local.p99_us
    );
    println!(
        "    rr         p50 {:>8.1} µs   p99 {:>8.1} µs   signed (inc 1)@math.calc:n2, as plx bench rr (a)",
        s.rr.p50_us, s.rr.p99_us
    );
    println!(
        "    ratio {spawn_ratio:.2}× to local + rr ({spawn_base:.1} µs) — target ≤ 2×: {}",
        verdict(spawn_ratio <= 2.0)
    );
    println!();
    println!("(b) spawn rate: {RATE_CLIENTS} clients of n1 each run {{run:[/bin/true] on:n1 attach:t}}@sys.proc (started, reaped, recorded), one at a time");
    println!(
        "    plexus     {:>8.0} runs/s ({} runs in {:.2} s)",
        node_rate,
        f.rate.node.samples.len(),
        f.rate.node.wall.as_secs_f64()
    );
    println!(
        "    baseline   {:>8.0} runs/s   spawn + wait of /bin/true in a loop in this process",
        f.rate.raw_per_sec
    );
    println!(
        "    ratio {:.0}% — target ≥ 30%: {}",
        rate_ratio * 100.0,
        verdict(rate_ratio >= 0.3)
    );
    if let Some(e) = &f.rate.node.first_error {
        println!(
            "    {} runs failed (left out); the first: {e}",
            f.rate.node.failed
        );
    }
    println!();
    println!("(c) {} concurrently running sleeps over 3 nodes", m.started);
    for ((n, count, before, after), (_, kib)) in m.nodes.iter().zip(&growth) {
        println!(
            "    {n}: {count} processes, VmRSS {before:.1} MB before, {after:.1} MB with them: {kib:.1} KiB per process"
        );
    }
    println!(
        "    max {growth_max:.1} KiB per process — target ≤ 20 KiB: {}",
        verdict(growth_max <= 20.0)
    );
    println!(
        "    {{ps:t text:t}}@sys.proc with {} rows: median {ps_med:.1} ms (empty table: {ps_empty:.1} ms) — target < 100 ms: {}",
        m.ps_rows,
        verdict(ps_med < 100.0)
    );
    if let Some(e) = &m.first_error {
        println!("    {} starts failed; the first: {e}", m.failed);
    }
    println!();
    println!("(d) rescheduling: {{run:[sleep] restart:always}}, its node killed with SIGKILL, until ps shows the process running on another node");
    match &f.resched {
        Ok(times) => {
            let med = median(times);
            let list: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
            println!(
                "    runs {} ms; median {med:.0} ms — target ≤ 2000 ms: {}",
                list.join(", "),
                verdict(med <= 2_000.0)
            );
        }
        Err(why) => println!("    unavailable: {why}"),
    }
    Ok(())
}

async fn proc_measure(args: &ProcArgs, say: &dyn Fn(&str)) -> Result<ProcFigures> {
    say("starting a 3-node cluster");
    let mut cluster = LocalCluster::start(3, PROFILE).await?;
    let r = proc_on(&mut cluster, args, say).await;
    cluster.explain(r)
}

async fn proc_on(
    cluster: &mut LocalCluster,
    args: &ProcArgs,
    say: &dyn Fn(&str),
) -> Result<ProcFigures> {
    let many = many_processes(cluster, usize::try_from(args.procs)?, say).await?;
    let spawn = remote_spawn(cluster, usize::try_from(args.spawns)?, say).await?;
    let rate = spawn_rate(cluster, usize::try_from(args.runs)?, say).await?;
    let resched = rescheduling(cluster, usize::try_from(args.kills)?, say)
        .await
        .map_err(|e| format!("{e:#}"));
    Ok(ProcFigures {
        spawn,
        rate,
        many,
        resched,
    })
}

/// Answers a terminal request of an attached run as a terminal that discards the output would.
fn discard(request: &TermRequest) -> TermResponse {
    match request {
        TermRequest::Output { .. } | TermRequest::Process { .. } => TermResponse::Done,
        _ => TermResponse::Unsupported("the bench has no terminal".into()),
    }
}

/// The reply of an attached run of a program that exited with 0, or an error.
fn expect_exited(reply: &Reply) -> Result<()> {
    let ok = match reply {
        Reply::Value(v) => v.as_map().is_some_and(|m| {
            m.get_str("state").and_then(Unit::as_str) == Some("exited")
                && m.get_str("code").map(to_text).as_deref() == Some("0")
        }),
        _ => false,
    };
    if !ok {
        bail!("the run ended otherwise: {}", describe(reply));
    }
    Ok(())
}

/// (a): remote spawns until the first byte and the two baselines, in [`ROUNDS`] rounds of a
/// share of each: a machine whose speed drifts (a shared host, a CPU changing its clock) then
/// slows the figure and its baselines alike, instead of whichever ran while it was slow.
async fn remote_spawn(
    cluster: &LocalCluster,
    n: usize,
    say: &dyn Fn(&str),
) -> Result<SpawnFigures> {
    let socket = cluster.node(0)?.socket();
    let key = &cluster.admin;
    say(&format!(
        "(a) remote spawn: {n} runs of /bin/echo x on n2 from a client of n1, with as many \
         local spawns and request–replies, in {ROUNDS} rounds"
    ));
    let spawn = parse(r#"{run:["/bin/echo" x] on:n2 attach:t}@sys.proc"#)?;
    let inc = parse("(inc 1)@math.calc:n2")?;
    let warm = n.div_ceil(10);
    let mut spawns = sign_many(key, n + warm, |_| Ok(spawn.clone()))?.into_iter();
    let mut incs = sign_many(key, n + warm, |_| Ok(inc.clone()))?;
    let mut client = Client::connect(&socket).await?;
    // The first tenth of each warms its path up.
    for msg in spawns.by_ref().take(warm) {
        remote_first_byte(&mut client, &msg).await?;
    }
    drive(&socket, vec![incs.drain(..warm).collect()], 1, expect_int).await?;
    let (mut remote, mut local, mut rr) = (Vec::new(), Vec::new(), Vec::new());
    let mut walls = [Duration::ZERO; 3];
    let per_round = n.div_ceil(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for msg in spawns.by_ref().take(per_round) {
            remote.push(remote_first_byte(&mut client, &msg).await?);
        }
        walls[0] += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_round.min(n - local.len()) {
            local.push(local_first_byte()?);
        }
        walls[1] += start.elapsed();
        let round: Vec<_> = incs.drain(..per_round.min(incs.len())).collect();
        if round.is_empty() {
            break;
        }
        let one = drive(&socket, vec![round], 1, expect_int).await?;
        if let Some(e) = one.first_error {
            bail!("the request/response baseline failed: {e}");
        }
        rr.extend(one.samples);
        walls[2] += one.wall;
    }
    Ok(SpawnFigures {
        remote: figures(remote, walls[0]),
        local: figures(local, walls[1]),
        rr: figures(rr, walls[2]),
    })
}

/// One attached `/bin/echo x` on n2 through `client`: the time until its first byte.
async fn remote_first_byte(client: &mut Client, msg: &SignedMessage) -> Result<Duration> {
    let sent = Instant::now();
    let mut first = None;
    let reply = client
        .call_with(
            msg,
            |request| {
                if matches!(request, TermRequest::Output { .. }) && first.is_none() {
                    first = Some(sent.elapsed());
                }
                let response = discard(&request);
                async move { response }
            },
            std::future::pending(),
        )
        .await?;
    expect_exited(&reply)?;
    first.ok_or_else(|| anyhow!("/bin/echo x on n2 wrote nothing"))
}

/// Starts `/bin/echo x` with its output on a pipe, as `std::process::Command` does it
/// (posix_spawn), and gives the time until its first byte; then reaps it.
fn local_first_byte() -> Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new("/bin/echo")
        .arg("x")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start /bin/echo")?;
    let mut byte = [0u8; 1];
    child
        .stdout
        .take()
        .context("/bin/echo has no output pipe")?
        .read_exact(&mut byte)
        .context("/bin/echo wrote nothing")?;
    let took = start.elapsed();
    child.wait()?;
    Ok(took)
}

/// Rounds of (a).
const ROUNDS: usize = 10;

/// (b): attached `/bin/true` runs on n1 from [`RATE_CLIENTS`] clients, then the raw loop.
async fn spawn_rate(cluster: &LocalCluster, n: usize, say: &dyn Fn(&str)) -> Result<RateFigures> {
    let socket = cluster.node(0)?.socket();
    let body = parse(r#"{run:["/bin/true"] on:n1 attach:t}@sys.proc"#)?;
    let per_client = n.div_ceil(RATE_CLIENTS);
    say(&format!(
        "(b) spawn rate: {} runs of /bin/true on n1 from {RATE_CLIENTS} clients",
        per_client * RATE_CLIENTS
    ));
    let mut pools = Vec::new();
    for _ in 0..RATE_CLIENTS {
        pools.push((
            Client::connect(&socket).await?,
            sign_many(&cluster.admin, per_client, |_| Ok(body.clone()))?,
        ));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (mut client, pool) in pools {
        tasks.spawn(async move {
            let mut out = Vec::new();
            for msg in &pool {
                let sent = Instant::now();
                let reply = client
                    .call_with(
                        msg,
                        |request| {
                            let response = discard(&request);
                            async move { response }
                        },
                        std::future::pending(),
                    )
                    .await?;
                out.push((sent.elapsed(), expect_exited(&reply)));
            }
            anyhow::Ok(out)
        });
    }
    let mut node = Driven {
        samples: Vec::new(),
        wall: Duration::ZERO,
        failed: 0,
        first_error: None,
    };
    while let Some(done) = tasks.join_next().await {
        for (took, checked) in done?? {
            match checked {
                Ok(()) => node.samples.push(took),
                Err(e) => {
                    node.failed += 1;
                    node.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
    }
    node.wall = start.elapsed();

    say(&format!(
        "(b) baseline: {n} spawns + waits of /bin/true in this process"
    ));
    let start = Instant::now();
    for _ in 0..n {
        let status = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("cannot run /bin/true")?;
        if !status.success() {
            bail!("/bin/true ended with {status}");
        }
    }
    let raw_per_sec = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
    Ok(RateFigures { node, raw_per_sec })
}

/// Sends `msgs` to `socket` with [`START_DEPTH`] in flight and gives each reply, in order of
/// arrival; a node that takes longer than [`FORM_TIMEOUT`] for them all is an error.
async fn batch(socket: &Path, msgs: &[SignedMessage]) -> Result<Vec<Reply>> {
    let mut client = Client::connect(socket).await?;
    let replies = tokio::time::timeout(FORM_TIMEOUT, client.pipeline(msgs, START_DEPTH))
        .await
        .map_err(|_| {
            anyhow!(
                "{} calls took over {} s",
                msgs.len(),
                FORM_TIMEOUT.as_secs()
            )
        })??;
    Ok(replies.into_iter().map(|(_, r)| r).collect())
}

/// Times `{ps:t text:t}@sys.proc` on n1 [`PS_CALLS`] times; gives the times in ms and the rows
/// of the last table (its lines but the heading).
async fn time_ps(cluster: &LocalCluster) -> Result<(Vec<f64>, usize)> {
    let mut client = Client::connect(&cluster.node(0)?.socket()).await?;
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..PS_CALLS {
        let start = Instant::now();
        let table = ask(&mut client, &cluster.admin, "{ps:t text:t}@sys.proc").await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        let text = table
            .as_str()
            .ok_or_else(|| anyhow!("ps gave no text: {}", to_text(&table)))?;
        rows = text.lines().count().saturating_sub(1);
    }
    Ok((times, rows))
}

/// (c): `n` detached sleeps over the 3 nodes; each node's RSS before and with them, and `ps`.
async fn many_processes(
    cluster: &LocalCluster,
    n: usize,
    say: &dyn Fn(&str),
) -> Result<ManyFigures> {
    let socket = cluster.node(0)?.socket();
    say("(c) baseline: ps of the empty table, each node's memory");
    let (empty_ps_ms, _) = time_ps(cluster).await?;
    let before = cluster.rss()?;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    say(&format!("(c) starting {n} sleeps over the 3 nodes"));
    let msgs = sign_many(&cluster.admin, n, |i| {
        let on = names.get(i % names.len()).map_or("n1", String::as_str);
        Ok(parse(&format!("{{run:[sleep 3600] on:{on}}}@sys.proc"))?)
    })?;
    let replies = batch(&socket, &msgs).await?;
    let mut ids = Vec::new();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    let (mut failed, mut first_error) = (0, None);
    for reply in &replies {
        let started = match reply {
            Reply::Value(v) => v.as_map().and_then(|m| {
                let id = m.get_str("id").and_then(Unit::as_str)?;
                let node = m.get_str("node").and_then(Unit::as_str)?;
                Some((id.to_owned(), node.to_owned()))
            }),
            _ => None,
        };
        match started {
            Some((id, node)) => {
                ids.push(id);
                *per_node.entry(node).or_default() += 1;
            }
            None => {
                failed += 1;
                first_error.get_or_insert_with(|| describe(reply));
            }
        }
    }
    let result = async {
        // The nodes settle (allocator, table replication) before their memory is read, as the
        // rr bench waits before reading memory at rest.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = cluster.rss()?;
        say(&format!("(c) ps with {} processes running", ids.len()));
        let (ps_ms, ps_rows) = time_ps(cluster).await?;
        let nodes = before
            .iter()
            .zip(&after)
            .map(|((name, b), (_, a))| {
                let count = per_node.get(name).copied().unwrap_or(0);
                (name.clone(), count, *b, *a)
            })
            .collect();
        anyhow::Ok(ManyFigures {
            started: ids.len(),
            nodes,
            ps_ms,
            ps_rows,
            empty_ps_ms,
            failed,
            first_error,
        })
    }
    .await;
    say(&format!("(c) killing the {} sleeps", ids.len()));
    let kills = sign_many(&cluster.admin, ids.len(), |i| {
        let id = ids.get(i).map_or("", String::as_str);
        Ok(parse(&format!("{{kill:\"{id}\" signal:KILL}}@sys.proc"))?)
    })?;
    let killed = batch(&socket, &kills).await?;
    let many = result?;
    if let Some(r) = killed.iter().find(|r| matches!(r, Reply::Error(_))) {
        bail!("a sleep could not be killed: {}", describe(r));
    }
    // The next phase measures a settled cluster, not the recording of these ends.
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let rows = cluster.ask(0, "ps@sys.proc").await?;
        let running = rows
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(Unit::as_map)
            .filter(|row| row.get_str("state").and_then(Unit::as_str) == Some("running"))
            .count();
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{running} sleeps still show running {} s after their kill",
                FORM_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(many)
}

/// The node and state `ps` on node `asker` shows for process `id`.
async fn placed(
    cluster: &LocalCluster,
    asker: usize,
    id: &str,
) -> Result<Option<(String, String)>> {
    let rows = cluster.ask(asker, "ps@sys.proc").await?;
    Ok(rows
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Unit::as_map)
        .find(|m| m.get_str("id").and_then(Unit::as_str) == Some(id))
        .map(|m| {
            let f = |k: &str| {
                m.get_str(k)
                    .and_then(Unit::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (f("node"), f("state"))
        }))
}

/// (d): a `restart:always` sleep placed by the scheduler, its node killed, until `ps` on
/// another node shows it running elsewhere; `runs` times, the killed node restarted between
/// runs. The sleep is not pinned with `on:`: a pinned process cannot move
/// (docs/scheduler.md, "Rescheduling").
async fn rescheduling(
    cluster: &mut LocalCluster,
    runs: usize,
    say: &dyn Fn(&str),
) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for run in 0..runs {
        let started = cluster
            .ask(0, "{run:[sleep 3600] restart:always}@sys.proc")
            .await?;
        let field = |k: &str| {
            started
                .as_map()
                .and_then(|m| m.get_str(k))
                .and_then(Unit::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("run gave no {k}: {}", to_text(&started)))
        };
        let (id, victim_name) = (field("id")?, field("node")?);
        let victim = cluster
            .nodes
            .iter()
            .position(|n| n.name == victim_name)
            .ok_or_else(|| anyhow!("run placed {id} on unknown node {victim_name}"))?;
        let asker = (victim + 1) % cluster.nodes.len();
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while placed(cluster, asker, &id).await?
            != Some((victim_name.clone(), "running".to_owned()))
        {
            if Instant::now() > deadline {
                bail!("process {id} did not start on {victim_name}");
            }
            tokio::time::sleep(RESCHED_POLL).await;
        }
        let killed_at = Instant::now();
        if let Some(node) = cluster.nodes.get_mut(victim) {
            node.kill9();
        }
        let deadline = killed_at + EVENT_TIMEOUT;
        let mut seen;
        let moved = loop {
            // The asker may lose its leader with the killed node and not answer for a while:
            // keep asking.
            match placed(cluster, asker, &id).await {
                Ok(Some((node, state))) if node != victim_name && state == "running" => break node,
                Ok(Some((node, state))) => seen = format!("{state} on {node}"),
                Ok(None) => seen = "not listed".to_owned(),
                Err(e) => seen = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                bail!(
                    "process {id} was not running on another node within {} s of killing \
                     {victim_name} (ps showed: {seen})",
                    EVENT_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(RESCHED_POLL).await;
        };
        let ms = killed_at.elapsed().as_secs_f64() * 1e3;
        say(&format!(
            "(d) run {}: {victim_name} killed, {id} running on {moved} after {ms:.0} ms",
            run + 1
        ));
        times.push(ms);
        cluster
            .ask(asker, &format!("{{kill:\"{id}\" signal:KILL}}@sys.proc"))
            .await?;
        cluster.restart(victim).await?;
        cluster.wait_formed().await?;
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn value(text: &str) -> Reply {
        Reply::Value(parse(text).unwrap())
    }

    #[test]
    fn only_a_run_that_exited_with_0_counts() {
        assert!(expect_exited(&value("{id:a1 node:n1 state:exited code:0}")).is_ok());
        for other in [
            value("{id:a1 node:n1 state:exited code:1}"),
            value("{id:a1 node:n1 state:killed signal:9 code:137}"),
            value("{id:a1 node:n1}"),
            value("[]"),
            Reply::Nothing,
        ] {
            assert!(expect_exited(&other).is_err(), "{}", describe(&other));
        }
    }

    #[test]
    fn output_and_the_process_id_are_answered_done_and_nothing_else() {
        let output = TermRequest::Output {
            stream: plexus_protocol::OutputStream::Stdout,
            bytes: b"x".to_vec(),
        };
        assert!(matches!(discard(&output), TermResponse::Done));
        let id = TermRequest::Process { id: "a1".into() };
        assert!(matches!(discard(&id), TermResponse::Done));
        assert!(matches!(
            discard(&TermRequest::Clear),
            TermResponse::Unsupported(_)
        ));
    }
}
