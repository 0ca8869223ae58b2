//! `plx node`, `plx send`, `plx up`, `plx down`: running a node and talking to it.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plexus_identity::SignedMessage;
use plexus_node::cluster::config::{parse_profile, parse_tag};
use plexus_node::cluster::token::JoinToken;
use plexus_node::cluster::{ClusterConfig, JoinMode};
use plexus_node::{files, threads_per_node, ClientLimits, Node, NodeConfig};
use plexus_units::{parse, to_pretty, to_text, Unit};

use crate::cli_io::read_input;
pub use crate::client::sign_with;
use crate::client::{Client, Reply, StdTerminal};
use crate::home::Home;

/// Options of `plx node`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// Manage the cluster's nodes instead of running one.
    #[command(subcommand)]
    pub action: Option<NodeAction>,
    /// Data directory [default: $PLX_HOME/node].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Node name on first start [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Client socket [default: DIR/node.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Create a new cluster with this node as its first member (a node already in a cluster
    /// just resumes it).
    #[arg(long, conflicts_with = "join")]
    pub init: bool,
    /// Join the cluster of a token from `plx invite` (also read from $PLX_JOIN).
    #[arg(long, value_name = "TOKEN", env = "PLX_JOIN", hide_env_values = true)]
    pub join: Option<String>,
    /// Address to listen on for other nodes, host:port [default: the recorded one; needed
    /// with --init and --join].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// A tag advertised to the cluster: `camera` or `site=lab` (repeat for more).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Failure detection: `default` (a dead node is marked down within 2 s) or `local` (1 s,
    /// for nodes on one machine or one quiet LAN).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Advertise the cluster on the LAN over multicast DNS, so that `plx discover` on other
    /// machines lists it (remembered across restarts; joining still needs a token).
    #[arg(long, conflicts_with = "no_mdns")]
    pub mdns: bool,
    /// Stop advertising the cluster on the LAN.
    #[arg(long)]
    pub no_mdns: bool,
    /// Let any key register itself with `(reg name)@sys.usr` (self-service). Without it, only
    /// the node's admin registers users: `{reg:name pub:KEY}@sys.usr`.
    #[arg(long)]
    pub open_registration: bool,
    /// Worker threads of the node's runtime [default: one per core, or $TOKIO_WORKER_THREADS;
    /// `plx up --nodes N` gives each of its nodes an equal share of the cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Memory budget of each message's evaluation, in MiB: the units a message builds (in all
    /// the calls it makes on this node) may take at most this much, beyond it the message
    /// fails with a `limit` error.
    #[arg(long, value_name = "MIB", default_value_t = plexus_node::DEFAULT_EVAL_MEMORY >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub eval_memory: u64,
    /// How many clients the node's socket serves at once; beyond it, a new client is refused
    /// with the reason (connections that have not said Hello yet make room first).
    #[arg(long, value_name = "N", default_value_t = ClientLimits::default().max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub max_clients: usize,
    /// Do not show the cluster's files to the programs this node runs: without it, a
    /// program, argument or working directory under /fs/ (`plx run --cwd /fs/home/me -- python3
    /// /fs/code/x.py`) is the cluster's file there, through a view of the tree this node
    /// mounts for the program's user (under DIR/fs) when first needed.
    #[arg(long)]
    pub no_mount_fs: bool,
    /// Serve the web desktop on this address, host:port (`plx web` prints a login link);
    /// 127.0.0.1:7780 keeps it to this machine.
    #[arg(long, value_name = "ADDR")]
    pub web: Option<std::net::SocketAddr>,
    /// Also serve the node's Prometheus metrics at http://ADDR/metrics to anyone who reaches
    /// ADDR (on the desktop, /metrics needs a session).
    #[arg(long, value_name = "ADDR", requires = "web")]
    pub metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub fs: FsArgs,
}

/// Timings of the cluster file system's repair and sweep.
#[derive(Args, Debug, Clone)]
pub struct FsArgs {
    /// Seconds a down node's copies of file chunks still count; after that, chunks it kept
    /// are copied to other nodes. A node taken out with `plx node remove` counts at once.
    #[arg(long, value_name = "SECS", default_value_t = 30, env = "PLX_FS_GRACE",
          value_parser = clap::value_parser!(u64).range(0..=86_400 * 365))]
    pub fs_grace: u64,
    /// Most MiB a second the leader copies when it repairs chunks short of copies.
    #[arg(long, value_name = "MIB", default_value_t = 64, env = "PLX_FS_REPAIR_RATE",
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub fs_repair_rate: u64,
    /// Seconds between sweeps of the node's chunk store (for tests).
    #[arg(long, value_name = "SECS", default_value_t = 60, env = "PLX_FS_SWEEP_EVERY",
          hide = true, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub fs_sweep_every: u64,
    /// Seconds after which a chunk copy nothing lists is deleted (for tests).
    #[arg(long, value_name = "SECS", default_value_t = 3600, env = "PLX_FS_UNLISTED_AGE",
          hide = true, value_parser = clap::value_parser!(u64).range(0..=86_400 * 365))]
    pub fs_unlisted_age: u64,
}

impl FsArgs {
    /// The node's file-system timings.
    pub fn tuning(&self) -> plexus_services::io_fs::FsTuning {
        use std::time::Duration;
        plexus_services::io_fs::FsTuning {
            grace: Duration::from_secs(self.fs_grace),
            repair_rate: self.fs_repair_rate << 20,
            sweep_every: Duration::from_secs(self.fs_sweep_every),
            unlisted_age: Duration::from_secs(self.fs_unlisted_age),
            ..Default::default()
        }
    }
}

/// `plx node` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NodeAction {
    /// Take a node out of the cluster: it stops voting, leaves the roster and its key is
    /// revoked. Run it on any other node.
    Remove {
        /// The node's name.
        name: String,
        /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// Options of `plx send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The message in units notation; read from -f FILE or standard input when omitted.
    pub unit: Option<String>,
    /// Read the message from FILE (`-` for standard input).
    #[arg(short, long, value_name = "FILE", conflicts_with = "unit")]
    pub file: Option<PathBuf>,
    /// Sign as this user instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the result indented.
    #[arg(long)]
    pub pretty: bool,
}

/// Options of `plx up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// How many nodes to start: 1 runs a single node; more start a cluster of separate
    /// processes on 127.0.0.11, 127.0.0.12, … (data in $PLX_HOME/node and
    /// $PLX_HOME/cluster/nI).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub nodes: u32,
    /// Cluster port of every node (each has its own 127.0.0.x address).
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Failure-detection profile of the nodes (default or local).
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Return once the node answers instead of opening the shell; stop it with `plx down`.
    #[arg(long)]
    pub detach: bool,
    /// Node name on first start [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Let any key register itself with `(reg name)@sys.usr` on the nodes started (see
    /// `plx node --open-registration`).
    #[arg(long)]
    pub open_registration: bool,
    /// Seconds a down node's copies of file chunks still count (see `plx node --fs-grace`).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400 * 365))]
    pub fs_grace: Option<u64>,
    /// A tag for one node of a local cluster: `n2:camera` or `n3:site=lab` (repeat for
    /// more; see `plx node --tag`). Taken on a node's first start.
    #[arg(long = "tag", value_name = "NODE:TAG")]
    pub tags: Vec<String>,
    /// Port of the web desktops: the first node's on 127.0.0.1, the others' (with --nodes)
    /// on their own 127.0.0.x; 0 picks free ports.
    #[arg(long, value_name = "PORT", env = "PLX_WEB_PORT",
          default_value_t = crate::cmd_web::DEFAULT_WEB_PORT)]
    pub web_port: u16,
    /// Serve no web desktop.
    #[arg(long)]
    pub no_web: bool,
}

/// The default data directory of the local node.
pub fn default_data_dir(home: &Home) -> PathBuf {
    home.root().join("node")
}

/// The socket `plx send` and the shell use: `--socket`, `$PLX_SOCKET`, or the local node's.
pub fn socket_path(home: &Home, flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("PLX_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| default_data_dir(home).join(files::SOCKET))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// A runtime with `threads` workers (tokio's default when `None`).
fn runtime_with(threads: Option<u16>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(usize::from(n));
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `plx node`: runs a node in the foreground until SIGINT or SIGTERM.
pub fn run_node(home: &Home, args: NodeArgs) -> Result<()> {
    if let Some(NodeAction::Remove { name, socket }) = args.action {
        return crate::cmd_cluster::run_remove(home, &name, socket);
    }
    crate::give_large_blocks_back();
    let cluster = cluster_config(&args)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    raise_open_files_limit(args.max_clients);
    let admin_name = home.acting_user(None)?;
    let admin = home.load(&admin_name)?.public();
    let mut config = NodeConfig::new(
        args.data.unwrap_or_else(|| default_data_dir(home)),
        admin,
        &admin_name,
    );
    config.name = args.name;
    config.socket = args.socket;
    config.cluster = cluster;
    if args.open_registration {
        config.registration = plexus_services::sys_usr::Registration::Open;
    }
    // What the node creates (its database, the cluster state, their journals) is its owner's
    // alone, whoever created the data directory.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    config.eval_memory = args.eval_memory << 20;
    config.clients.max_connections = args.max_clients;
    config.fs = args.fs.tuning();
    runtime_with(args.threads)?.block_on(async move {
        // Listening for TERM and INT before the socket exists: whoever sees the socket may
        // stop the node, and must find it stopping cleanly.
        let stop = shutdown_signal()?;
        // The desktop's port is taken before the node starts: a port in use stops it at once.
        let listen = crate::cmd_web::listen;
        let web = args.web.map(|a| listen(a, "the web desktop")).transpose()?;
        let open_metrics = args.metrics.map(|a| listen(a, "metrics")).transpose()?;
        let node = Node::start(config).await?;
        let web = match web {
            Some(listener) => Some(start_web(&node, listener, open_metrics)?),
            None => None,
        };
        let mounts = (!args.no_mount_fs).then(|| {
            let mounts = Arc::new(plexus_mount::NodeMounts::new(
                node.kernel().clone(),
                tokio::runtime::Handle::current(),
                node.data_dir().join("fs"),
                node.data_dir().join("fs-spill"),
                node.processes(),
                crate::cmd_mount::CALL_DEADLINE,
            ));
            node.processes().set_cluster_files(mounts.clone());
            mounts
        });
        eprintln!(
            "plx: node {} ({}) listening on {}{}",
            node.identity().name,
            node.identity().id,
            node.socket_path().display(),
            node.cluster()
                .map(|c| format!(", cluster address {}", c.addr()))
                .unwrap_or_default()
        );
        let data_dir = node.data_dir().to_owned();
        let served = node.serve(stop).await;
        if let Some((stop_web, served_web)) = web {
            let _ = std::fs::remove_file(data_dir.join(crate::cmd_web::WEB_ADDR_FILE));
            let _ = stop_web.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), served_web).await;
        }
        // The node's programs have stopped: the views of the tree go.
        if let Some(mounts) = mounts {
            tokio::task::spawn_blocking(move || mounts.stop())
                .await
                .ok();
        }
        served?;
        Ok(())
    })
}

/// Serves the node's web desktop on `listener` until the returned sender fires, and records
/// its address in the data directory (before the node answers on its socket, so that
/// `plx up` finds it once the node answers).
fn start_web(
    node: &Node,
    listener: tokio::net::TcpListener,
    open_metrics: Option<tokio::net::TcpListener>,
) -> Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let addr = listener.local_addr()?;
    if let Some(m) = &open_metrics {
        eprintln!("plx: metrics at http://{}/metrics", m.local_addr()?);
    }
    let figures = crate::cmd_web::figures(node);
    crate::cmd_web::record(node.data_dir(), addr)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kernel = node.kernel().clone();
    let served = tokio::spawn(async move {
        let until = async {
            let _ = stopped.await;
        };
        if let Err(e) = plexus_web::serve(
            listener,
            kernel,
            figures,
            crate::shell::web_commands(),
            open_metrics,
            until,
        )
        .await
        {
            tracing::error!("the web desktop stopped: {e}");
        }
    });
    eprintln!("plx: web desktop at {}", crate::cmd_web::url(addr));
    Ok((stop, served))
}

/// File descriptors the node needs besides its clients' (database, logs, cluster links).
const OWN_FILES: u64 = 256;

/// Raises the soft limit on open files to the hard limit: each client takes a descriptor, and
/// a common soft limit (1,024) leaves too few for the default cap of clients.
fn raise_open_files_limit(max_clients: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            limit.current = Some(hard);
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}");
            }
        }
    }
    // `None` is unlimited.
    let Some(soft) = getrlimit(Resource::Nofile).current else {
        tracing::debug!("open files: unlimited");
        return;
    };
    tracing::debug!("open files: at most {soft}");
    if soft < max_clients as u64 + OWN_FILES {
        tracing::warn!(
            "the open-files limit ({soft}) is too low for {max_clients} clients: raise it \
             (ulimit -n) or lower --max-clients"
        );
    }
}

/// The cluster part of `plx node`'s options.
fn cluster_config(args: &NodeArgs) -> Result<Option<ClusterConfig>> {
    let mut tags = std::collections::BTreeMap::new();
    for t in &args.tags {
        let (k, v) = parse_tag(t).map_err(|e| anyhow!("{e}"))?;
        tags.insert(k, v);
    }
    let profile = args
        .profile
        .as_deref()
        .map(parse_profile)
        .transpose()
        .map_err(|e| anyhow!("{e}"))?;
    let mode = if args.init {
        JoinMode::Init
    } else if let Some(token) = &args.join {
        let token = JoinToken::decode(token).map_err(|e| anyhow!("{e}"))?;
        JoinMode::Join(token)
    } else if args.listen.is_some()
        || !tags.is_empty()
        || profile.is_some()
        || args.mdns
        || args.no_mdns
    {
        JoinMode::Resume
    } else {
        return Ok(None);
    };
    if !matches!(mode, JoinMode::Resume) && args.listen.is_none() {
        bail!("--init and --join need --listen ADDR (host:port other nodes can reach)");
    }
    Ok(Some(ClusterConfig {
        mode,
        listen: args.listen,
        tags,
        profile,
        mdns: match (args.mdns, args.no_mdns) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    }))
}

/// Resolves at the first SIGTERM or SIGINT; both are caught from the call on.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Signs `body` as `user` (the current user by default).
pub fn sign(home: &Home, user: Option<&str>, body: Unit) -> Result<SignedMessage> {
    let name = home.acting_user(user)?;
    Ok(sign_with(&home.unlock(&name)?, body)?)
}

/// `plx send`: evaluates one message and prints its result.
pub fn run_send(home: &Home, args: SendArgs) -> Result<i32> {
    let text = match (&args.unit, &args.file) {
        (Some(t), _) => t.clone(),
        (None, file) => {
            let input = read_input(file.as_deref())?;
            input.text()?.to_owned()
        }
    };
    let body = parse(&text).map_err(|e| anyhow!("{e}"))?;
    let msg = sign(home, args.user.as_deref(), body)?;
    let socket = socket_path(home, args.socket);
    runtime()?.block_on(async move {
        let mut client = Client::connect(&socket).await?;
        let term = StdTerminal::new();
        let reply = client
            .call(&msg, Some(&term), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(print_reply(&reply, args.pretty))
    })
}

/// Prints a reply as `plx send` does and gives the exit code.
pub fn print_reply(reply: &Reply, pretty: bool) -> i32 {
    use std::io::Write;
    match reply {
        Reply::Value(v) => {
            let text = if pretty { to_pretty(v, 2) } else { to_text(v) };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
            0
        }
        Reply::Nothing => 0,
        Reply::Error(e) => {
            eprintln!("plx: {}", to_text(&e.to_unit()));
            1
        }
    }
}

/// Whether a node answers at `socket`.
async fn answers(socket: &Path) -> bool {
    Client::connect(socket).await.is_ok()
}

/// How one node of `plx up` is started.
struct Launch<'a> {
    data: PathBuf,
    name: Option<String>,
    cluster: Vec<String>,
    join: Option<&'a str>,
    open_registration: bool,
    fs_grace: Option<u64>,
    /// Where the node serves its web desktop, if it does.
    web: Option<std::net::SocketAddr>,
}

/// Starts `plx node` in the background on `launch.data` (logging to `node.log` there) and
/// waits until it answers on its socket.
fn launch(
    home: &Home,
    rt: &tokio::runtime::Runtime,
    launch: Launch<'_>,
) -> Result<std::process::Child> {
    let data = &launch.data;
    let socket = data.join(files::SOCKET);
    // Private like `plx node --data` makes them: the log and the data are the owner's alone.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("cannot create {}", data.display()))?;
    let log_path = data.join("node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the plx executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(home.root())
        .arg("node")
        .arg("--data")
        .arg(data)
        .args(&launch.cluster)
        .env_remove("PLX_JOIN")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(name) = &launch.name {
        cmd.arg("--name").arg(name);
    }
    if let Some(secs) = launch.fs_grace {
        cmd.arg("--fs-grace").arg(secs.to_string());
    }
    if launch.open_registration {
        cmd.arg("--open-registration");
    }
    if let Some(addr) = launch.web {
        cmd.arg("--web").arg(addr.to_string());
    }
    if let Some(token) = launch.join {
        // In the environment, not the arguments: other users can read a process's arguments.
        cmd.env("PLX_JOIN", token);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("cannot start the node")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if rt.block_on(answers(&socket)) {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            bail!(
                "the node exited ({status}) before answering; last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the node did not answer within 30 s (see {})",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Where node `i` (from 1) of `plx up` serves its web desktop: the first on the loopback
/// address the users type, the others on their own cluster addresses (distinct
/// hosts, so that browsers keep their cookies apart).
fn web_addr(args: &UpArgs, i: u32) -> Option<std::net::SocketAddr> {
    if args.no_web {
        return None;
    }
    let ip = if i == 1 {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(10 + i).ok()?)
    };
    Some((ip, args.web_port).into())
}

/// Tells where the desktop of the node of `data` is, if it serves one.
fn print_desktop(data: &Path) {
    if let Some(addr) = crate::cmd_web::recorded(data) {
        eprintln!(
            "plx: web desktop at {} (`plx web` prints a login link)",
            crate::cmd_web::url(addr)
        );
    }
}

/// Data directories of the extra nodes `plx up --nodes N` starts.
pub fn cluster_dirs(home: &Home) -> PathBuf {
    home.root().join("cluster")
}

/// `plx up`: starts the local node in the background (unless one runs), then opens the shell
/// (stopping the node when the shell ends) or, with `--detach`, returns.
pub fn run_up(home: &Home, args: UpArgs) -> Result<i32> {
    if args.nodes > 1 {
        return run_up_cluster(home, args);
    }
    if !args.tags.is_empty() {
        bail!("--tag is for the nodes of a local cluster (--nodes 2 or more); a single node takes plx node --tag");
    }
    let data = default_data_dir(home);
    let socket = data.join(files::SOCKET);
    let rt = runtime()?;
    let already = rt.block_on(answers(&socket));
    let mut started = None;
    if already {
        eprintln!("plx: a node is already running ({})", socket.display());
    } else {
        // Create the user now, in the foreground, so its announcement is seen.
        home.acting_user(None)?;
        let child = launch(
            home,
            &rt,
            Launch {
                data: data.clone(),
                name: args.name.clone(),
                cluster: Vec::new(),
                join: None,
                open_registration: args.open_registration,
                fs_grace: args.fs_grace,
                web: web_addr(&args, 1),
            },
        )?;
        eprintln!(
            "plx: node up (data {}, log {})",
            data.display(),
            data.join("node.log").display()
        );
        started = Some(child);
    }
    print_desktop(&data);
    drop(rt);
    if args.detach {
        return Ok(0);
    }
    let code = crate::shell::run(home, None)?;
    if let Some(mut child) = started {
        stop_pid(child.id())?;
        let _ = child.wait();
    }
    Ok(code)
}

/// `plx up --nodes N`: a cluster of N node processes on this machine.
fn run_up_cluster(home: &Home, args: UpArgs) -> Result<i32> {
    home.acting_user(None)?;
    parse_profile(&args.profile).map_err(|e| anyhow!("{e}"))?;
    let mut node_tags: Vec<(String, String)> = Vec::new();
    for t in &args.tags {
        let (node, tag) = t
            .split_once(':')
            .ok_or_else(|| anyhow!("--tag {t:?}: NODE:TAG, such as n2:camera"))?;
        parse_tag(tag).map_err(|e| anyhow!("--tag {t:?}: {e}"))?;
        let known =
            (1..=args.nodes).any(|i| format!("n{i}") == node) || args.name.as_deref() == Some(node);
        if !known {
            bail!(
                "--tag {t:?}: {node} is not one of the nodes started (n1 to n{})",
                args.nodes
            );
        }
        node_tags.push((node.to_owned(), tag.to_owned()));
    }
    let rt = runtime()?;
    let mut started = Vec::new();
    let result = (|| -> Result<()> {
        for i in 1..=args.nodes {
            let data = if i == 1 {
                default_data_dir(home)
            } else {
                cluster_dirs(home).join(format!("n{i}"))
            };
            let socket = data.join(files::SOCKET);
            if rt.block_on(answers(&socket)) {
                eprintln!("plx: node {i} already runs ({})", data.display());
                continue;
            }
            let addr = format!("127.0.0.{}:{}", 10 + i, args.port);
            let recorded = data
                .join(plexus_node::cluster::config::CLUSTER_FILE)
                .exists();
            let token = if i == 1 || recorded {
                None
            } else {
                let first = default_data_dir(home).join(files::SOCKET);
                let t = rt.block_on(crate::cmd_cluster::ask(
                    home,
                    &first,
                    "(invite 600)@sys.node",
                ))?;
                Some(
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("no token from node 1"))?,
                )
            };
            let mut cluster = vec![
                "--listen".to_owned(),
                addr.clone(),
                "--profile".to_owned(),
                args.profile.clone(),
                "--threads".to_owned(),
                threads_per_node(args.nodes as usize).to_string(),
            ];
            if i == 1 {
                cluster.push("--init".to_owned());
            }
            let name = match (&args.name, i) {
                (Some(n), 1) => n.clone(),
                _ => format!("n{i}"),
            };
            for (_, tag) in node_tags.iter().filter(|(n, _)| *n == name) {
                cluster.push("--tag".to_owned());
                cluster.push(tag.clone());
            }
            let child = launch(
                home,
                &rt,
                Launch {
                    data: data.clone(),
                    name: Some(name),
                    cluster,
                    join: token.as_deref(),
                    open_registration: args.open_registration,
                    fs_grace: args.fs_grace,
                    web: web_addr(&args, i),
                },
            )?;
            eprintln!("plx: node {i} up on {addr} (data {})", data.display());
            started.push(child);
        }
        wait_for_members(home, &rt, args.nodes)?;
        print_desktop(&default_data_dir(home));
        Ok(())
    })();
    if let Err(e) = result {
        for child in &mut started {
            let _ = stop_pid(child.id());
            let _ = child.wait();
        }
        return Err(e);
    }
    drop(rt);
    if args.detach {
        return Ok(0);
    }
    let code = crate::shell::run(home, None)?;
    for child in &mut started {
        stop_pid(child.id())?;
        let _ = child.wait();
    }
    Ok(code)
}

/// Waits until node 1 sees `n` live members, a leader and all the voters the cluster will
/// choose (so that losing any one node leaves a quorum), then prints the table.
fn wait_for_members(home: &Home, rt: &tokio::runtime::Runtime, n: u32) -> Result<()> {
    let socket = default_data_dir(home).join(files::SOCKET);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = rt.block_on(crate::cmd_cluster::ask(home, &socket, "nodes@sys.node"));
        if let Ok(view @ Unit::List(_)) = &nodes {
            let rows = plexus_client::members(view);
            let alive = rows.iter().filter(|r| r.health == "alive").count();
            let voters = rows.iter().filter(|r| r.role == "voter").count();
            let want = plexus_node::cluster::voter_count(n as usize);
            if alive >= n as usize && voters >= want && rows.iter().any(|r| r.leader) {
                eprint!("{}", crate::cmd_cluster::nodes_table(view));
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not form within 30 s: {}",
                match nodes {
                    Ok(u) => to_text(&u),
                    Err(e) => e.to_string(),
                }
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `plx down`: stops the local node started by `plx up`, and the other nodes of a local
/// cluster started by `plx up --nodes N`.
pub fn run_down(home: &Home) -> Result<()> {
    let mut dirs = vec![default_data_dir(home)];
    if let Ok(entries) = std::fs::read_dir(cluster_dirs(home)) {
        let mut extra: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        extra.sort();
        dirs.extend(extra);
    }
    for data in dirs.iter().rev() {
        stop_dir(data)?;
    }
    Ok(())
}

fn stop_dir(data: &Path) -> Result<()> {
    let pid_path = data.join(files::PID);
    let pid: u32 = match std::fs::read_to_string(&pid_path) {
        Ok(p) => p
            .trim()
            .parse()
            .map_err(|_| anyhow!("{} is damaged", pid_path.display()))?,
        Err(_) => {
            eprintln!("plx: no node is running ({})", data.display());
            return Ok(());
        }
    };
    if !node_holds_lock(data) {
        let _ = std::fs::remove_file(&pid_path);
        eprintln!("plx: no node is running ({})", data.display());
        undo_views_left(data);
        return Ok(());
    }
    stop_pid(pid)?;
    eprintln!("plx: node stopped ({})", data.display());
    Ok(())
}

/// Undoes the views of the tree a killed node left mounted in `data` (they would stay, dead,
/// until the node starts again).
fn undo_views_left(data: &Path) {
    let undone = plexus_mount::undo_views_left(&data.join("fs"));
    if undone > 0 {
        eprintln!("plx: unmounted {undone} view(s) of the tree that node left behind");
    }
}

/// Whether a running process holds the data directory's lock.
fn node_holds_lock(data: &Path) -> bool {
    match std::fs::OpenOptions::new()
        .write(true)
        .open(data.join(files::LOCK))
    {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Sends SIGTERM and waits up to 10 s, then SIGKILL.
fn stop_pid(pid: u32) -> Result<()> {
    use rustix::process::{kill_process, test_kill_process, Pid, Signal};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| anyhow!("invalid pid {pid}"))?;
    if kill_process(pid, Signal::TERM).is_err() {
        return Ok(()); // already gone
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if test_kill_process(pid).is_err() || is_zombie(pid.as_raw_nonzero().get()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill_process(pid, Signal::KILL);
    Ok(())
}

/// A child we have not reaped yet still "exists"; its state in /proc says it is finished.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
