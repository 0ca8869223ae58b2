//! Plexus node: the daemon that hosts a kernel and its services and serves clients.
//!
//! [`Node::start`] locks a data directory (a second node on the same directory is refused),
//! loads or creates the node's identity and key, opens its database, registers the built-in
//! services and listens on a Unix socket (`<data dir>/node.sock`, mode 0600). [`Node::serve`]
//! answers clients until the shutdown future completes. Every request is a signed message,
//! verified (and checked against replays) before anything is evaluated; the protocol is in
//! `docs/protocol.md`.
//!
//! A node's [`cluster`] part is generic over the network it links on ([`cluster::Net`]): real
//! nodes use TCP with TLS ([`cluster::TcpNet`], what [`Node::start`] picks), and
//! [`Node::start_on`] with [`cluster::MemNet`] starts a node on an in-memory network with fault
//! injection. Several such nodes run in one process on a paused tokio clock; the test harness
//! `tests/sim/mod.rs` (`SimCluster`) does that, and `docs/cluster.md` ("Testing a cluster in
//! one process") describes it.
//!
//! ```no_run
//! # async fn demo(admin: plexus_identity::PublicKey) -> Result<(), plexus_node::NodeError> {
//! let config = plexus_node::NodeConfig::new("/tmp/plexus-node".into(), admin, "alice");
//! let node = plexus_node::Node::start(config).await?;
//! println!("listening on {}", node.socket_path().display());
//! node.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod cluster;
mod conn;
pub mod datadir;
mod verify;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use plexus_identity::{KeyCache, PublicKey, ReplayConfig, ReplayGuard};
use plexus_kernel::{Kernel, NodeInfo};
use plexus_net::{AcceptErrors, Admission, AdmissionLimits};
use tokio::net::UnixListener;

pub use datadir::{files, DataDir, Identity};
/// The default memory budget of a root message (`NodeConfig::eval_memory`).
pub use plexus_kernel::DEFAULT_EVAL_MEMORY;

/// How often a serving node forgets replay-guard entries that left the replay window.
const REPLAY_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Another node runs on the data directory.
    #[error("another plx node is already running on {}{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The other node's process id, if known.
        pid: Option<u32>,
    },
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A file in the data directory is damaged.
    #[error("damaged data directory: {0}")]
    Corrupt(String),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The cluster state stopped for a fault, so the node stopped.
    #[error("the cluster state stopped ({0}); this node stopped too: start it again once the cause is mended (a full disk freed)")]
    ClusterStateStopped(String),
}

/// How to start a node whose cluster addresses are of type `A`.
#[derive(Clone, Debug)]
pub struct NodeConfig<A = std::net::SocketAddr> {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node's name on first start (later starts keep the stored name); the host name by
    /// default.
    pub name: Option<String>,
    /// The administrator on first start (later starts keep the stored one).
    pub admin: PublicKey,
    /// The administrator's name.
    pub admin_name: String,
    /// The socket path; `<data dir>/node.sock` by default.
    pub socket: Option<PathBuf>,
    /// Cluster membership: `None` runs a single node, unless the data directory records a
    /// cluster (then the node rejoins it).
    pub cluster: Option<cluster::ClusterConfig<A>>,
    /// Limits on the client socket's connections.
    pub clients: ClientLimits,
    /// Who may register keys with this node's `sys.usr`: its admin by default.
    pub registration: plexus_services::sys_usr::Registration,
    /// The memory budget of each root message, in bytes (`docs/evaluation.md`).
    pub eval_memory: u64,
    /// Timings of the file system's repair and sweep (`docs/fs.md`).
    pub fs: plexus_services::io_fs::FsTuning,
}

/// Limits on the connections to a node's client socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Connections open at once. At the cap, the oldest connection that has not said Hello
    /// yet is closed to make room; when every connection has, a new one is refused.
    pub max_connections: usize,
    /// How long a new connection may take to say Hello before it is closed.
    pub hello_timeout: std::time::Duration,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            max_connections: 512,
            hello_timeout: std::time::Duration::from_secs(5),
        }
    }
}

impl<A> NodeConfig<A> {
    /// A configuration with defaults.
    pub fn new(data_dir: PathBuf, admin: PublicKey, admin_name: &str) -> NodeConfig<A> {
        NodeConfig {
            data_dir,
            name: None,
            admin,
            admin_name: admin_name.to_owned(),
            socket: None,
            cluster: None,
            clients: ClientLimits::default(),
            registration: Default::default(),
            eval_memory: plexus_kernel::DEFAULT_EVAL_MEMORY,
            fs: Default::default(),
        }
    }
}

/// A started node, linked to other nodes over the network `N`.
pub struct Node<N: cluster::Net = cluster::TcpNet> {
    data: DataDir,
    identity: Identity,
    kernel: Kernel,
    listener: UnixListener,
    socket: PathBuf,
    cluster: Option<cluster::Cluster<N>>,
    /// Decoded public keys of recent authors, for client requests and routed calls.
    keys: Arc<KeyCache>,
    /// The process service, which stops this node's programs when the node stops.
    sys_proc: Arc<plexus_services::sys_proc::SysProc>,
    clients: ClientLimits,
}

impl Node {
    /// Starts a node: lock, identity, database, services, socket.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Node::start_on(cluster::TcpNet, config).await
    }
}

impl<N: cluster::Net> Node<N> {
    /// Starts a node whose cluster links go over `net` (see [`Node::start`]).
    pub async fn start_on(
        net: N,
        config: NodeConfig<cluster::Addr<N>>,
    ) -> Result<Node<N>, NodeError> {
        let data = DataDir::lock(&config.data_dir)?;
        let default_name = config.name.clone().unwrap_or_else(host_name);
        let key = data.node_key(&default_name)?;
        let identity = data.identity(&key, &default_name, (config.admin, &config.admin_name))?;
        let kernel = Kernel::new(
            NodeInfo {
                id: identity.id.clone(),
                name: identity.name.clone(),
            },
            identity.admin,
            &identity.admin_name,
        );
        kernel.set_eval_memory(config.eval_memory);
        let db = plexus_services::open_db(&data.path().join(files::DB))
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        let cluster_config = match config.cluster.clone() {
            Some(c) => Some(c),
            None if cluster::ClusterFile::load(data.path())?.is_some() => {
                Some(cluster::ClusterConfig {
                    mode: cluster::JoinMode::Resume,
                    listen: None,
                    tags: Default::default(),
                    profile: None,
                    mdns: None,
                })
            }
            None => None,
        };
        let keys = Arc::new(KeyCache::default());
        let cluster = match cluster_config {
            Some(c) => Some(
                cluster::start(
                    net,
                    data.path(),
                    &key,
                    &identity.name,
                    &kernel,
                    (identity.admin, identity.admin_name.clone()),
                    keys.clone(),
                    c,
                )
                .await?,
            ),
            None => None,
        };
        let backing = match &cluster {
            Some(c) => plexus_services::Backing {
                store: c.store(),
                users: c.users(),
                procs: c.procs(),
                registration: config.registration,
            },
            None => plexus_services::Backing {
                registration: config.registration,
                ..plexus_services::Backing::local(db.clone())
            },
        };
        let procs = backing.procs.clone();
        plexus_services::register_all_with(&kernel, backing, data.path())
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        let directory = match &cluster {
            Some(c) => c.directory(),
            None => {
                plexus_services::directory::SingleNode::shared(&identity.name, Default::default())
            }
        };
        let tree: Arc<dyn plexus_store::fs::FsMeta> = match &cluster {
            Some(c) => c.fs(),
            None => db.clone(),
        };
        let chunks = plexus_store::chunks::ChunkStore::open(data.path().join(files::CHUNKS))
            .map_err(|e| NodeError::Io(e.to_string()))?;
        let io_fs = plexus_services::io_fs::IoFs::new(tree, chunks, directory.clone(), config.fs);
        io_fs.start(kernel.clone());
        kernel
            .register(io_fs, None, plexus_kernel::Policy::Registered)
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        let sys_proc = start_sys_proc(data.path(), directory, procs).await?;
        kernel
            .register(sys_proc.clone(), None, plexus_kernel::Policy::Registered)
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        kernel
            .register(
                sys_proc.pipe_service(),
                None,
                plexus_kernel::Policy::Registered,
            )
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        // A cluster's users come with its replicated state; a single node keeps its own.
        if cluster.is_none() {
            plexus_services::sys_usr::load_users(&kernel, &db)
                .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        }
        let sys_node = match &cluster {
            Some(c) => c.service(),
            None => cluster::sys_node::single_service(&identity.name, &identity.id, data.path()),
        };
        kernel
            .register(sys_node, None, plexus_kernel::Policy::Anyone)
            .map_err(|e| NodeError::Corrupt(e.to_string()))?;
        if let Some(c) = &cluster {
            c.announce();
        }
        let socket = config
            .socket
            .clone()
            .unwrap_or_else(|| data.path().join(files::SOCKET));
        // A socket file left by a node that died is stale: we hold the lock.
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|e| NodeError::Io(format!("cannot listen on {}: {e}", socket.display())))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| NodeError::Io(format!("cannot protect {}: {e}", socket.display())))?;
        tracing::info!(
            node = %identity.name,
            id = %identity.id,
            socket = %socket.display(),
            services = kernel.services().len(),
            "node started"
        );
        Ok(Node {
            data,
            identity,
            kernel,
            listener,
            socket,
            cluster,
            keys,
            clients: config.clients,
            sys_proc,
        })
    }

    /// The client socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The process service of this node.
    pub fn processes(&self) -> &Arc<plexus_services::sys_proc::SysProc> {
        &self.sys_proc
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The node's cluster, when it is a member of one.
    pub fn cluster(&self) -> Option<&cluster::Cluster<N>> {
        self.cluster.as_ref()
    }

    /// Serves clients until `shutdown` completes, then removes the socket and unlocks.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        let shared = Arc::new(conn::Shared {
            kernel: self.kernel.clone(),
            replay: Mutex::new(ReplayGuard::new(ReplayConfig::default())),
            keys: self.keys.clone(),
            verifier: Arc::new(verify::Verifier::new(verifiers())),
        });
        let admission = Admission::new(AdmissionLimits {
            max_connections: self.clients.max_connections,
            max_waiting_per_source: usize::MAX,
        });
        let mut accept_errors = AcceptErrors::default();
        tokio::pin!(shutdown);
        // A member whose cluster state has stopped (its disk filled up) answers nothing useful:
        // it stops, so that the others see it down and repair around it, and a restart (once
        // the cause is mended) brings it back.
        let faulted = async {
            match &self.cluster {
                Some(c) => c.raft().faulted().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(faulted);
        let mut fault = None;
        // Checks forget stale replay entries only when messages arrive: prune now and then too,
        // so that the memory of a burst is given back once its window has passed.
        let mut prune = tokio::time::interval(REPLAY_PRUNE_INTERVAL);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                why = &mut faulted => {
                    tracing::error!("the cluster state stopped: {why}; stopping this node");
                    fault = Some(why);
                    break;
                }
                _ = prune.tick() => {
                    if let Ok(mut guard) = shared.replay.lock() {
                        guard.prune(conn::now_ms());
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        conn::size_send_buffer(&stream);
                        if let Some(n) = accept_errors.succeeded() {
                            tracing::warn!("accepting clients again after {n} failures");
                        }
                        match admission.admit(()) {
                            Some(place) => {
                                let hello_by =
                                    tokio::time::Instant::now() + self.clients.hello_timeout;
                                tokio::spawn(conn::serve(stream, shared.clone(), place, hello_by));
                            }
                            None => {
                                let reason = format!(
                                    "this node serves {} clients at once, and has that many",
                                    self.clients.max_connections
                                );
                                tokio::spawn(conn::turn_away(stream, reason));
                            }
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: pause, and log once per burst.
                        let after = accept_errors.failed();
                        if after.first {
                            tracing::warn!(
                                "accepting a client failed: {e}; retrying, further failures counted"
                            );
                        }
                        tokio::time::sleep(after.pause).await;
                    }
                },
            }
        }
        tracing::info!(node = %self.identity.name, "node stopping");
        // No program outlives its node: stopped before the cluster links go, so their
        // records can still be marked lost.
        self.sys_proc.shutdown(PROCESS_STOP_GRACE).await;
        if let Some(c) = &self.cluster {
            c.stop().await;
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(self.data.path().join(files::PID));
        match fault {
            Some(why) => Err(NodeError::ClusterStateStopped(why)),
            None => Ok(()),
        }
    }
}

/// How long the node's programs get between TERM and KILL when the node stops (`plx down`
/// waits 10 s for the node).
const PROCESS_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Starts the process supervisor (state and logs in `<data dir>/procs`) and the `sys.proc`
/// service over `procs`; the records of programs a previous run left are marked lost.
async fn start_sys_proc(
    data_dir: &Path,
    directory: Arc<dyn plexus_services::directory::NodeDirectory>,
    procs: Arc<dyn plexus_store::ProcTable>,
) -> Result<Arc<plexus_services::sys_proc::SysProc>, NodeError> {
    let (supervisor, lost) =
        plexus_proc::Supervisor::start(plexus_proc::Config::new(data_dir.join(files::PROCS)))
            .map_err(|e| NodeError::Io(e.to_string()))?;
    if !lost.is_empty() {
        tracing::warn!(count = lost.len(), "stopped programs a previous run left");
    }
    let sys_proc = plexus_services::sys_proc::SysProc::new(procs, directory, Arc::new(supervisor));
    sys_proc.recover_in_background();
    Ok(sys_proc)
}

/// How many client requests' signatures are checked at once: one fewer than the runtime's
/// worker threads (one per core), at least one. A request that finds them all busy waits and is
/// checked in the next batch; with as many verifiers as workers, no request would ever find
/// them busy (the workers would all be verifying) and no batch would form.
fn verifiers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// This machine's host name, or `node`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| plexus_identity::validate_name(h).is_ok())
        .unwrap_or_else(|| "node".to_owned())
}

/// Worker threads for each of `nodes` nodes sharing this machine: an equal share of its cores,
/// at least one. Nodes on one machine that each ran a worker per core would wake each other's
/// threads across cores for every hand-off (on 2 cores, 2 nodes with 1 worker each make
/// ~1.5× the calls/s between them of 2 nodes with 2 each: `docs/benchmarks.md`).
pub fn threads_per_node(nodes: usize) -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u16::try_from(cores / nodes.max(1))
        .unwrap_or(u16::MAX)
        .clamp(1, 1024)
}
