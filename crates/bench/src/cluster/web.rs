//! `plx bench web`: the web desktop of a 3-node cluster in headless Chromium, driven over
//! WebDriver (`chromedriver`, a plain HTTP client here), each figure next to a baseline
//! measured in the same run (`docs/benchmarks.md`):
//!
//! - the overview's time to interactive: from the navigation's start until the page shows
//!   the cluster's three nodes (its live socket's first answer drawn), with the Navigation
//!   Timing API's own marks; baseline, a static page of the same server (the notice a
//!   browser without a session gets);
//! - the bytes the overview transferred (its assets, compressed as served);
//! - a node killed with SIGKILL until the overview shows it down; baseline, the membership's
//!   own detection (`nodes@sys.node` of n1, asked every 10 ms);
//! - CPU with the overview open on the 3-node cluster: the browser's processes and the nodes;
//!   baseline, the nodes over as long with no page open.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The largest WebDriver answer read.
const MAX_ANSWER: usize = 64 << 20;
/// How long a page may take to show the cluster.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `plx bench web`.
#[derive(Args, Debug)]
pub struct WebArgs {
    /// Print one JSON object (figures, baselines, targets) instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Loads of the overview (and of the static page) timed; the figures are their medians.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub loads: u32,
    /// Seconds the CPU of the browser and the nodes is measured, with the overview open and
    /// with no page open.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: u64,
    /// The chromedriver to run [default: /usr/bin/chromedriver, or chromedriver in PATH].
    #[arg(long, value_name = "PATH")]
    pub chromedriver: Option<PathBuf>,
}

/// What the run measured.
struct WebFigures {
    tti_ms: Vec<f64>,
    interactive_ms: Vec<f64>,
    loaded_ms: Vec<f64>,
    static_ms: Vec<f64>,
    transferred: u64,
    resources: u64,
    embedded: u64,
    browser_cores: f64,
    nodes_cores: f64,
    idle_nodes_cores: f64,
    shown_down_ms: f64,
    detected_down_ms: f64,
}

/// `plx bench web`.
pub fn web(args: WebArgs) -> Result<()> {
    let say = progress(args.json);
    let f = run(web_measure(&args, &say))?;
    let tti = median(&f.tti_ms);
    let stat = median(&f.static_ms);
    let lag = f.shown_down_ms - f.detected_down_ms;
    if args.json {
        let j = cluster_report(
            "web",
            3,
            [
                (
                    "overview",
                    Json::obj([
                        (
                            "what",
                            "navigation start until the overview shows the 3 nodes, headless \
                         Chromium at 1280x800, median of the loads"
                                .into(),
                        ),
                        ("loads", f.tti_ms.len().into()),
                        ("tti_ms", tti.into()),
                        ("runs_tti_ms", Json::nums(&f.tti_ms)),
                        ("dom_interactive_ms", median(&f.interactive_ms).into()),
                        ("load_event_ms", median(&f.loaded_ms).into()),
                        ("baseline_static_page_ms", stat.into()),
                        ("target_tti_ms", 500.0.into()),
                        ("met", (tti < 500.0).into()),
                    ]),
                ),
                (
                    "assets",
                    Json::obj([
                        ("transferred_bytes", f.transferred.into()),
                        ("resources", f.resources.into()),
                        ("embedded_bytes", f.embedded.into()),
                        ("target_bytes", 400_000u64.into()),
                        ("met", (f.transferred < 400_000).into()),
                    ]),
                ),
                (
                    "down",
                    Json::obj([
                        ("shown_ms", f.shown_down_ms.into()),
                        ("baseline_detected_ms", f.detected_down_ms.into()),
                        ("lag_ms", lag.into()),
                        ("target_ms", 3000.0.into()),
                        ("met", (f.shown_down_ms <= 3000.0).into()),
                    ]),
                ),
                (
                    "cpu",
                    Json::obj([
                        ("watch_s", args.watch.into()),
                        ("browser_cores", f.browser_cores.into()),
                        ("nodes_cores", f.nodes_cores.into()),
                        ("baseline_nodes_no_page_cores", f.idle_nodes_cores.into()),
                    ]),
                ),
            ],
        );
        println!("{j}");
        return Ok(());
    }
    println!(
        "plx bench web: 3-node cluster (profile {PROFILE}, {} build), n1's desktop in headless Chromium",
        build_profile()
    );
    println!();
    println!("overview: navigation start until the page shows the 3 nodes");
    println!(
        "    plexus     {tti:>8.1} ms   runs [{}]   (DOM interactive {:.1} ms, load event {:.1} ms)",
        runs_list(&f.tti_ms),
        median(&f.interactive_ms),
        median(&f.loaded_ms)
    );
    println!("    static     {stat:>8.1} ms   the server's static notice page, load event");
    println!("    target < 500 ms: {}", verdict(tti < 500.0));
    println!(
        "assets: {} bytes in {} files, the page and its assets as served (compressed; {} bytes embedded) — target < 400,000: {}",
        f.transferred,
        f.resources,
        f.embedded,
        verdict(f.transferred < 400_000)
    );
    println!("n3 killed with SIGKILL, until the overview shows it down");
    println!(
        "    shown      {:>8.0} ms   membership detected it (nodes@sys.node of n1) at {:.0} ms: the page {lag:.0} ms after — target ≤ 3,000 ms: {}",
        f.shown_down_ms,
        f.detected_down_ms,
        verdict(f.shown_down_ms <= 3000.0)
    );
    println!("CPU over {} s with the overview open", args.watch);
    println!(
        "    browser    {:.3} cores; nodes {:.3} cores (no page open: {:.3})",
        f.browser_cores, f.nodes_cores, f.idle_nodes_cores
    );
    Ok(())
}

async fn web_measure(args: &WebArgs, say: &dyn Fn(&str)) -> Result<WebFigures> {
    let driver = Driver::start(args.chromedriver.as_deref()).await?;
    say("starting a 3-node cluster, n1 serving its desktop");
    let desk = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)?));
    let mut cluster = LocalCluster::start_serving(3, PROFILE, Some(desk)).await?;
    let r = web_on(&mut cluster, &driver, desk, args, say).await;
    cluster.explain(r)
}

async fn web_on(
    cluster: &mut LocalCluster,
    driver: &Driver,
    desk: SocketAddr,
    args: &WebArgs,
    say: &dyn Fn(&str),
) -> Result<WebFigures> {
    let profile = cluster.dir.join("chromium");
    let session = driver.session(&profile).await?;
    // The static baseline first, without a session: the notice page.
    say("static page: the notice a browser without a session gets");
    let mut static_ms = Vec::new();
    for _ in 0..args.loads {
        session.goto(&format!("http://{desk}/")).await?;
        let loaded = session
            .js("return performance.getEntriesByType('navigation')[0].loadEventEnd;")
            .await?;
        static_ms.push(loaded.as_f64().unwrap_or(f64::NAN));
    }
    say("logging in with a link of plx web");
    let link =
        plexus_web::login::link(&cluster.admin, desk, now_ms() as u64, &mut rand_core::OsRng);
    session.goto(&link).await?;
    session.until_nodes_shown(3).await?;
    say(&format!("overview: {} loads", args.loads));
    let (mut tti_ms, mut interactive_ms, mut loaded_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut transferred, mut resources) = (0, 0);
    for _ in 0..args.loads {
        session.goto(&format!("http://{desk}/")).await?;
        let shown = session.until_nodes_shown(3).await?;
        let marks = session
            .js("const n = performance.getEntriesByType('navigation')[0];
                 const r = performance.getEntriesByType('resource')
                   .filter(e => new URL(e.name).pathname.startsWith('/assets/'));
                 return [n.domInteractive, n.loadEventEnd,
                         n.encodedBodySize + r.reduce((s, e) => s + e.encodedBodySize, 0),
                         1 + r.length];")
            .await?;
        let mark = |i: usize| marks.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
        tti_ms.push(shown);
        interactive_ms.push(mark(0));
        loaded_ms.push(mark(1));
        // The page and its assets as served (compressed), cached or not.
        transferred = transferred.max(mark(2) as u64);
        resources = resources.max(mark(3) as u64);
    }
    say(&format!("CPU: {} s with the overview open", args.watch));
    let watch = Duration::from_secs(args.watch);
    let nodes = cluster.pids();
    let browser = descendants(driver.pid());
    let (nodes_cores, browser_cores) = cpu_over(&nodes, &browser, watch).await;
    say(&format!("CPU: {} s with no page open", args.watch));
    session.goto("about:blank").await?;
    let (idle_nodes_cores, _) = cpu_over(&nodes, &[], watch).await;
    say("killing n3 with the overview open");
    session.goto(&format!("http://{desk}/")).await?;
    session.until_nodes_shown(3).await?;
    // The page notes when it first draws n3 as down (its own clock: epoch milliseconds).
    session
        .js("window.__downAt = null;
             const seen = () => {
               const row = document.querySelector('#nodes tbody tr[data-node=\"n3\"]');
               if (!window.__downAt && row && row.cells[1].textContent.includes('down')) {
                 window.__downAt = performance.timeOrigin + performance.now();
               }
             };
             new MutationObserver(seen).observe(document.body,
               { subtree: true, childList: true, characterData: true });
             return true;")
        .await?;
    let killed_at = now_ms();
    cluster.kill_node(2)?;
    let socket = cluster.node(0)?.socket();
    let detected = detected_down(&cluster.admin, &socket, "n3").await?;
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let shown = loop {
        let at = session.js("return window.__downAt;").await?;
        if let Some(at) = at.as_f64() {
            break at;
        }
        if Instant::now() > deadline {
            bail!(
                "the overview did not show n3 down within {} s",
                PAGE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    session.close().await;
    Ok(WebFigures {
        tti_ms,
        interactive_ms,
        loaded_ms,
        static_ms,
        transferred,
        resources,
        embedded: plexus_web::total_bytes() as u64,
        browser_cores,
        nodes_cores,
        idle_nodes_cores,
        shown_down_ms: shown - killed_at,
        detected_down_ms: detected - killed_at,
    })
}

/// When (epoch milliseconds) n1's `nodes@sys.node` first says `node` is down.
async fn detected_down(key: &Keypair, socket: &Path, node: &str) -> Result<f64> {
    let mut client = Client::connect(socket).await?;
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let msg = sign_with(key, parse("nodes@sys.node")?)?;
        if let Reply::Value(v) = client.call(&msg, None, std::future::pending()).await? {
            let down = v.as_list().unwrap_or_default().iter().any(|n| {
                let m = n.as_map();
                let field = |k: &str| m.and_then(|m| m.get_str(k)).and_then(Unit::as_str);
                field("name") == Some(node) && field("health") == Some("down")
            });
            if down {
                return Ok(now_ms());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "n1 did not mark {node} down within {} s",
                PAGE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Epoch milliseconds, as the page's `Date.now()` counts them.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The fields of `/proc/PID/stat` after the command's closing parenthesis (state first), if
/// `pid` runs.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system) of `pid` in clock ticks, if it runs.
fn cpu_ticks(pid: u32) -> Option<u64> {
    // State is field 3 of the line, utime 14, stime 15.
    let fields = stat_fields(pid)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The processes below `root` (its children, theirs, …), `root` included.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let ppid = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found: HashSet<u32> = HashSet::from([root]);
    loop {
        let before = found.len();
        for (pid, ppid) in &parent_of {
            if found.contains(ppid) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found.into_iter().collect()
}

/// Cores used by `a` and by `b` over `window` (CPU seconds over wall seconds).
async fn cpu_over(a: &[u32], b: &[u32], window: Duration) -> (f64, f64) {
    let ticks = |pids: &[u32]| pids.iter().filter_map(|&p| cpu_ticks(p)).sum::<u64>();
    let (a0, b0) = (ticks(a), ticks(b));
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let (a1, b1) = (ticks(a), ticks(b));
    let wall = start.elapsed().as_secs_f64().max(1e-9);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let cores = |t0: u64, t1: u64| t1.saturating_sub(t0) as f64 / hz / wall;
    (cores(a0, a1), cores(b0, b1))
}

/// chromedriver on a free loopback port, in its own process group with the browsers it
/// starts; killed with them when dropped.
struct Driver {
    child: Reaper,
    addr: SocketAddr,
}

impl Driver {
    async fn start(exe: Option<&Path>) -> Result<Driver> {
        let exe = match exe {
            Some(exe) => exe.to_owned(),
            None => ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("chromedriver")),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)?));
        let mut cmd = Command::new(&exe);
        cmd.arg(format!("--port={}", addr.port()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {}: plx bench web drives Chromium through chromedriver \
                 (Debian: apt-get install chromium chromium-driver; --chromedriver PATH)",
                exe.display()
            )
        })?;
        let driver = Driver {
            child: Reaper(Some(child)),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver.call("GET", "/status", None).await.is_err() {
            if Instant::now() > deadline {
                bail!("{} did not answer within 20 s", exe.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(driver)
    }

    fn pid(&self) -> u32 {
        self.child.0.as_ref().map_or(0, Child::id)
    }

    /// One WebDriver request; gives the answer's `value`.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(self.addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        // chromedriver keeps the connection open: its answer ends where its length says.
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 << 10];
        let (head, length) = loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                bail!("chromedriver closed {method} {path} without an answer");
            }
            answer.extend_from_slice(&buf[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).into_owned();
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        anyhow!("chromedriver answered {method} {path} without a length")
                    })?;
                answer.drain(..end + 4);
                break (head, length);
            }
            if answer.len() > MAX_ANSWER {
                bail!("chromedriver's answer to {method} {path} has no end of headers");
            }
        };
        if length > MAX_ANSWER {
            bail!("chromedriver's answer to {method} {path} is {length} bytes");
        }
        while answer.len() < length {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                bail!("chromedriver cut its answer to {method} {path} short");
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8_lossy(&answer[..length]).into_owned();
        let body = body.as_str();
        let status = head.split_whitespace().nth(1).unwrap_or("?");
        let v: Value = serde_json::from_str(body)
            .with_context(|| format!("chromedriver answered {method} {path}: {body}"))?;
        if status != "200" {
            bail!("chromedriver: {method} {path}: {status} {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    /// A headless Chromium session with its profile in `profile`.
    async fn session(&self, profile: &Path) -> Result<Session<'_>> {
        let mut options = json!({ "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,800",
            format!("--user-data-dir={}", profile.display()),
        ]});
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": options } } });
        let v = self.call("POST", "/session", Some(&caps)).await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver gave no session: {v}"))?
            .to_owned();
        Ok(Session { driver: self, id })
    }
}

/// A browser session.
struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    /// Navigates to `url`, waiting for its load event.
    async fn goto(&self, url: &str) -> Result<()> {
        self.driver
            .call(
                "POST",
                &format!("/session/{}/url", self.id),
                Some(&json!({ "url": url })),
            )
            .await
            .map(drop)
    }

    async fn js(&self, script: &str) -> Result<Value> {
        self.driver
            .call(
                "POST",
                &format!("/session/{}/execute/sync", self.id),
                Some(&json!({ "script": script, "args": [] })),
            )
            .await
    }

    /// Waits until the overview shows `n` nodes; gives when it first drew the cluster, in
    /// milliseconds from the navigation's start (the page marks it: `plx-nodes-shown`).
    async fn until_nodes_shown(&self, n: usize) -> Result<f64> {
        let script = format!(
            "const shown = performance.getEntriesByName('plx-nodes-shown')[0];
             const rows = document.querySelectorAll('#nodes tbody tr').length;
             return shown && rows >= {n} ? shown.startTime : null;"
        );
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if let Some(at) = self.js(&script).await?.as_f64() {
                return Ok(at);
            }
            if Instant::now() > deadline {
                bail!(
                    "the overview did not show {n} nodes within {} s",
                    PAGE_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn close(self) {
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.id), None)
            .await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self
            .child
            .0
            .as_ref()
            .and_then(|c| rustix::process::Pid::from_raw(i32::try_from(c.id()).ok()?))
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}
