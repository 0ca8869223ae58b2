//! A node as a member of a cluster: links to the other nodes, membership, the replicated
//! cluster state, calls routed across nodes, joining with an invite.
//!
//! [`start`] brings it up for a node on a [`Net`] (TCP with TLS, or an in-memory network for
//! tests): it listens for links on the node's cluster address, opens the replicated state
//! (`cluster.redb`), creates the cluster (`--init`) or joins one with a token (`--join`) or
//! rejoins the one recorded in the data directory, then keeps the node's picture of the
//! cluster ([`View`]) current. What goes over the links is specified in `docs/cluster.md`.

pub mod calls;
pub mod config;
pub mod directory;
pub mod discovery;
pub mod everywhere;
pub mod fs;
pub mod links;
pub mod net;
pub mod procs;
pub mod resched;
pub mod store;
pub(crate) mod swim;
pub mod sys_node;
pub mod token;
pub mod users;
pub mod view;
pub mod wire;

/// A node's link counters and traffic ([`Cluster::link_counters`], [`Cluster::link_traffic`]).
pub use plexus_net::{MeshStats, Traffic};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use plexus_cluster::membership::Health;
use plexus_cluster::raft::{self, ClusterRaft, Command, RaftPeer, RaftTuning, RaftWire, WireError};
use plexus_identity::{KeyCache, Keypair, PublicKey};
use plexus_kernel::Kernel;
use plexus_net::{Allow, Handler, Mesh, MeshConfig, MeshError, PeerInfo, Transport};
use tokio::sync::mpsc;

pub use config::{ClusterConfig, ClusterFile, JoinMode};
pub use net::{Addr, MemNet, Net, TcpNet};
pub use plexus_cluster::membership::Profile;
pub use plexus_cluster::raft::voter_count;
pub use view::{Member, View};

use crate::NodeError;
use calls::{Router, Sessions};
use wire::{JoinReply, JoinRequest, PeerEntry};

/// Longest wait for joining through one member.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// A running cluster member on the network `N`.
pub struct Cluster<N: Net = TcpNet> {
    inner: Arc<Inner<N>>,
}

impl<N: Net> Clone for Cluster<N> {
    fn clone(&self) -> Self {
        Cluster {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner<N: Net> {
    pub(crate) key: PublicKey,
    pub(crate) name: String,
    pub(crate) addr: Addr<N>,
    pub(crate) cluster_id: [u8; 16],
    pub(crate) raft_id: u64,
    pub(crate) mesh: Mesh<N::Transport>,
    pub(crate) raft: ClusterRaft,
    pub(crate) view: Arc<View>,
    pub(crate) allow: Allow,
    pub(crate) sessions: Arc<Sessions>,
    /// Decoded keys of the authors of calls routed here (shared with the client connections).
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) swim: mpsc::Sender<swim::Input>,
    /// What this node measured of its links, advertised in its metadata.
    pub(crate) links: links::Links,
    pub(crate) kernel: Kernel,
    pub(crate) admin: PublicKey,
    pub(crate) admin_name: String,
    /// Whether this start created the cluster (its store gets the seed entries).
    pub(crate) fresh: bool,
    /// The LAN advert (`--mdns`), withdrawn when the node stops.
    pub(crate) advert: std::sync::Mutex<Option<discovery::Advert>>,
    /// The background tasks, stopped by [`Cluster::kill`].
    pub(crate) tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Mesh frames arriving before the cluster is fully up wait for it here.
struct Inbound<N: Net> {
    cluster: OnceLock<Arc<Inner<N>>>,
    swim: mpsc::Sender<swim::Input>,
    raft: OnceLock<ClusterRaft>,
    /// Who is a member: every channel but JOIN is for members only. The allow set rather than
    /// the view, because a joining node must take raft from the leader before its view is up.
    allow: Allow,
}

/// Why a peer may not use a channel.
fn not_open(from: &PeerInfo, channel: u8) -> String {
    format!(
        "channel {channel} is not open to {} ({})",
        from.name,
        from.key.fingerprint()
    )
}

impl<N: Net> Handler for Inbound<N> {
    fn message(&self, from: &PeerInfo, channel: u8, body: Bytes) {
        if channel == wire::SWIM && self.allow.is_member(&from.key) {
            let _ = self.swim.try_send(swim::Input::Packet {
                from: from.key,
                packet: body,
            });
        }
    }

    fn call(
        &self,
        from: &PeerInfo,
        channel: u8,
        body: Bytes,
    ) -> plexus_net::BoxFuture<'static, Result<Bytes, String>> {
        // Decided before the body is looked at: an invite key's link (a node asking to join)
        // may only make a JOIN call.
        let member = self.allow.is_member(&from.key);
        if !member && channel != wire::JOIN {
            return Box::pin(std::future::ready(Err(not_open(from, channel))));
        }
        let from = from.clone();
        let cluster = self.cluster.get().cloned();
        let raft = self.raft.get().cloned();
        Box::pin(async move {
            if channel == wire::RAFT {
                // Raft runs before the rest is up (a joining node must receive the log).
                let raft = raft.ok_or("this node is starting")?;
                return raft.handle_rpc(&body).await.map(Bytes::from);
            }
            let c = cluster.ok_or("this node is starting")?;
            match channel {
                wire::JOIN if member || c.view.is_invite(&from.key) => {
                    handle_join(&c, &from, &body).await
                }
                wire::CALL => {
                    calls::serve_call(c.kernel.clone(), c.mesh.clone(), &c.keys, from.key, body)
                        .await
                }
                wire::TERM => calls::serve_term(c.sessions.clone(), body).await,
                wire::PROBE => Ok(Bytes::new()),
                _ => Err(not_open(&from, channel)),
            }
        })
    }
}

/// The raft wire over mesh links.
struct MeshWire<T: Transport> {
    mesh: Mesh<T>,
}

impl<T: Transport<Addr: FromStr>> RaftWire for MeshWire<T> {
    fn rpc(
        &self,
        _target: u64,
        peer: &RaftPeer,
        body: Vec<u8>,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, WireError>> + Send>>
    {
        let mesh = self.mesh.clone();
        let peer = peer.clone();
        Box::pin(async move {
            let key =
                PublicKey::from_bytes(&peer.key).map_err(|e| WireError::NotSent(e.to_string()))?;
            if let Ok(addr) = peer.addr.parse::<T::Addr>() {
                mesh.set_peer(key, peer.name.clone(), addr);
            }
            mesh.call(&key, wire::RAFT, Bytes::from(body), timeout)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| match e {
                    MeshError::UnknownPeer { .. }
                    | MeshError::Unreachable { .. }
                    | MeshError::Overloaded { .. }
                    | MeshError::TooLarge { .. }
                    | MeshError::Closed => WireError::NotSent(e.to_string()),
                    e => WireError::NoAnswer(e.to_string()),
                })
        })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Config(e.to_string())
}

/// Brings the node into its cluster on the network `net`. The node's recorded cluster
/// membership (`cluster.unit` in `data_dir`) is updated here. `keys` decodes the authors of
/// calls routed here.
// Each argument is a separate part of the node that the cluster joins up; a struct bundling
// them would be built once, at the only call.
#[allow(clippy::too_many_arguments)]
pub async fn start<N: Net>(
    net: N,
    data_dir: &Path,
    key: &Keypair,
    name: &str,
    kernel: &Kernel,
    admin: (PublicKey, String),
    keys: Arc<KeyCache>,
    config: ClusterConfig<Addr<N>>,
) -> Result<Cluster<N>, NodeError> {
    let recorded = ClusterFile::load(data_dir)?;
    let recorded_addr = match &recorded {
        Some(r) => Some(r.addr.parse::<Addr<N>>().map_err(|_| {
            NodeError::Corrupt(format!("{}: bad addr {}", config::CLUSTER_FILE, r.addr))
        })?),
        None => None,
    };
    let raft_id = raft::node_id(&key.public());
    let allow = Allow::with_keys([key.public()]);
    let transport = net.transport(key, allow.clone()).map_err(err)?;
    let (swim_tx, swim_rx) = mpsc::channel(4096);
    let inbound = Arc::new(Inbound {
        cluster: OnceLock::new(),
        swim: swim_tx.clone(),
        raft: OnceLock::new(),
        allow: allow.clone(),
    });
    let mesh = Mesh::new(transport, MeshConfig::default(), inbound.clone());
    let listen = config.listen.clone().or(recorded_addr).ok_or_else(|| {
        NodeError::Config("a cluster node needs an address to listen on (--listen)".into())
    })?;
    let addr = mesh
        .listen(&listen)
        .await
        .map_err(|e| NodeError::Io(format!("cannot listen on {listen}: {e}")))?;
    let me = RaftPeer {
        name: name.to_owned(),
        addr: addr.to_string(),
        key: key.public().to_bytes(),
    };
    let raft = ClusterRaft::open(
        data_dir,
        raft_id,
        me.clone(),
        Arc::new(MeshWire { mesh: mesh.clone() }),
        RaftTuning::default(),
    )
    .await
    .map_err(|e| NodeError::Corrupt(format!("cluster state: {e}")))?;
    let _ = inbound.raft.set(raft.clone());
    // Whoever the replicated state already knows may link to us.
    for (_, peer, _) in raft.members() {
        if let Ok(k) = PublicKey::from_bytes(&peer.key) {
            allow.insert(k);
        }
    }

    let fresh = matches!((&config.mode, &recorded), (JoinMode::Init, None));
    let cluster_id = match (&config.mode, &recorded) {
        (JoinMode::Init, Some(r)) | (JoinMode::Resume, Some(r)) => r.cluster,
        (JoinMode::Init, None) => {
            raft.initialize()
                .await
                .map_err(|e| NodeError::Config(format!("cannot create the cluster: {e}")))?;
            rand::random()
        }
        (JoinMode::Join(token), None) => join(&net, key, name, &addr, token, &mesh, &allow).await?,
        (JoinMode::Join(_), Some(r)) => {
            tracing::warn!("already a member of a cluster; ignoring the join token");
            r.cluster
        }
        (JoinMode::Resume, None) => {
            return Err(NodeError::Config(
                "this node is not part of a cluster: start it with --init or --join TOKEN".into(),
            ))
        }
    };
    let tags = match (&recorded, config.tags.is_empty()) {
        (Some(r), true) => r.tags.clone(),
        _ => config.tags.clone(),
    };
    let profile = config
        .profile
        .or(recorded.as_ref().map(|r| r.profile))
        .unwrap_or(Profile::Default);
    let mdns = config
        .mdns
        .or(recorded.as_ref().map(|r| r.mdns))
        .unwrap_or(false);
    ClusterFile {
        cluster: cluster_id,
        addr: addr.to_string(),
        tags: tags.clone(),
        profile,
        mdns,
    }
    .save(data_dir)?;
    let advert = if mdns {
        net.advertise(&cluster_id, name, &addr)
    } else {
        None
    };

    let view = Arc::new(View::new(key.public()));
    let inner = Arc::new(Inner {
        key: key.public(),
        name: name.to_owned(),
        addr: addr.clone(),
        cluster_id,
        raft_id,
        mesh: mesh.clone(),
        raft: raft.clone(),
        view: view.clone(),
        allow,
        sessions: Arc::new(Sessions::default()),
        keys,
        swim: swim_tx,
        links: links::Links::default(),
        kernel: kernel.clone(),
        admin: admin.0,
        admin_name: admin.1,
        fresh,
        advert: std::sync::Mutex::new(advert),
        tasks: std::sync::Mutex::new(Vec::new()),
    });
    let _ = inbound.cluster.set(inner.clone());
    let cluster = Cluster { inner };
    cluster.sync_state();
    kernel.set_remote(Arc::new(Router {
        view: view.clone(),
        mesh: mesh.clone(),
        sessions: cluster.inner.sessions.clone(),
    }));
    let tasks = [
        swim::spawn(
            cluster.inner.clone(),
            swim_rx,
            profile,
            tags,
            data_dir.to_owned(),
        ),
        tokio::spawn(state_loop(cluster.inner.clone())).abort_handle(),
        tokio::spawn(voter_loop(cluster.inner.clone())).abort_handle(),
        resched::spawn(cluster.inner.clone()),
        links::spawn(cluster.inner.clone()),
    ];
    if let Ok(mut t) = cluster.inner.tasks.lock() {
        t.extend(tasks);
    }
    tracing::info!(%addr, node = name, "cluster member started");
    Ok(cluster)
}

impl<N: Net> Cluster<N> {
    /// The node's picture of the cluster.
    pub fn view(&self) -> &Arc<View> {
        &self.inner.view
    }

    /// The replicated state.
    pub fn raft(&self) -> &ClusterRaft {
        &self.inner.raft
    }

    /// Counters of this node's links: connects made and failed, links accepted, frames
    /// refused.
    pub fn link_counters(&self) -> plexus_net::MeshStats {
        self.inner.mesh.stats()
    }

    /// What this process's links carried ([`plexus_net::traffic`]).
    pub fn link_traffic(&self) -> plexus_net::Traffic {
        plexus_net::traffic()
    }

    /// The cluster address this node listens on.
    pub fn addr(&self) -> Addr<N> {
        self.inner.addr.clone()
    }

    /// The io.store over the replicated state.
    pub fn store(&self) -> Arc<dyn plexus_store::UnitStore> {
        Arc::new(store::ReplicatedStore {
            raft: self.inner.raft.clone(),
        })
    }

    /// The process table over the replicated state.
    pub fn procs(&self) -> Arc<dyn plexus_store::ProcTable> {
        Arc::new(procs::ReplicatedProcs::new(self.inner.raft.clone()))
    }

    /// The file tree over the replicated state.
    pub fn fs(&self) -> Arc<dyn plexus_store::fs::FsMeta> {
        Arc::new(fs::ReplicatedFs::new(self.inner.raft.clone()))
    }

    /// The nodes `sys.proc` places programs on: the roster, up or down, with the tags,
    /// capacity and free memory each advertises.
    pub fn directory(&self) -> Arc<dyn plexus_services::directory::NodeDirectory> {
        Arc::new(directory::ClusterDirectory::new(
            &self.inner.name,
            self.inner.view.clone(),
        ))
    }

    /// sys.usr's registry over the replicated state.
    pub fn users(&self) -> Arc<dyn plexus_services::sys_usr::Registry> {
        Arc::new(users::ReplicatedUsers {
            raft: self.inner.raft.clone(),
        })
    }

    /// Records this node's services and admin in the replicated state (in the background,
    /// retrying until it works): call once every service is registered.
    pub fn announce(&self) {
        let task = tokio::spawn(announce(self.inner.clone())).abort_handle();
        if let Ok(mut t) = self.inner.tasks.lock() {
            t.push(task);
        }
    }

    /// The `sys.node` service for this cluster.
    pub fn service(&self) -> Arc<dyn plexus_kernel::Service> {
        sys_node::service(self.inner.clone())
    }

    fn sync_state(&self) {
        sync_state(&self.inner);
    }

    /// Leaves the cluster's membership gracefully and closes links.
    pub async fn stop(&self) {
        // Withdrawn first: nobody should be pointed at a node that is going.
        if let Ok(mut advert) = self.inner.advert.lock() {
            advert.take();
        }
        let _ = self.inner.swim.send(swim::Input::Leave).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.inner.mesh.shutdown();
        self.inner.raft.shutdown().await;
    }

    /// Stops the member at once, as a crash would: no goodbye to the others, links closed,
    /// background tasks and the replicated state stopped. For tests that kill a node within
    /// a process.
    pub async fn kill(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        self.inner.mesh.shutdown();
        self.inner.raft.shutdown().await;
    }
}

/// Copies the replicated state into the view, the allow set, the mesh's address book, the
/// kernel's user registry.
fn sync_state<N: Net>(c: &Arc<Inner<N>>) {
    let revoked: HashSet<[u8; 32]> = c.raft.revoked().into_iter().collect();
    let mut roster = Vec::new();
    for (id, peer, role) in c.raft.members() {
        let Ok(key) = PublicKey::from_bytes(&peer.key) else {
            continue;
        };
        if revoked.contains(&peer.key) {
            continue;
        }
        c.allow.insert(key);
        if key != c.key {
            if let Ok(addr) = peer.addr.parse::<Addr<N>>() {
                c.mesh.set_peer(key, peer.name.clone(), addr);
            }
        }
        roster.push(Member {
            raft_id: id,
            id: key.fingerprint(),
            name: peer.name.clone(),
            addr: peer.addr.clone(),
            key,
            voter: role == raft::Role::Voter,
        });
    }
    for k in &revoked {
        if let Ok(key) = PublicKey::from_bytes(k) {
            c.allow.remove(&key);
            c.mesh.remove_peer(&key);
            let _ = c.swim.try_send(swim::Input::Remove(key));
        }
    }
    roster.sort_by(|a, b| a.name.cmp(&b.name));
    let invites: HashSet<[u8; 32]> = c.raft.invites(now_ms()).into_iter().collect();
    for k in &invites {
        if let Ok(key) = PublicKey::from_bytes(k) {
            c.allow.insert_invite(key);
        }
    }
    // Invite keys that were used or expired may no longer link.
    for key in c.allow.keys() {
        let b = key.to_bytes();
        if !invites.contains(&b) && !roster.iter().any(|m| m.key == key) && key != c.key {
            c.allow.remove(&key);
        }
    }
    // The replicated registry is the cluster's: removals and renames made on any node apply
    // here too.
    c.kernel.replace_users(
        c.raft
            .users()
            .into_iter()
            .filter_map(|(name, key)| Some((PublicKey::from_bytes(&key).ok()?, name))),
    );
    c.view.set_invites(invites);
    c.view.set_services(c.raft.services());
    c.view.set_leader(c.raft.leader());
    c.view.set_roster(roster);
}

/// Follows the replicated state.
async fn state_loop<N: Net>(c: Arc<Inner<N>>) {
    let mut changes = c.raft.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen = None;
    loop {
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                // io.store's writes change nothing copied here: skip them, so a stream of
                // writes costs no reads of the state.
                let now = roster_parts(&changes.borrow_and_update());
                if seen == Some(now) {
                    continue;
                }
                seen = Some(now);
            }
            _ = tick.tick() => {}
        }
        sync_state(&c);
    }
}

/// What [`sync_state`] depends on: the changes with io.store's, the process table's and the
/// applied index left out.
fn roster_parts(c: &raft::Changes) -> raft::Changes {
    raft::Changes {
        applied: 0,
        store: 0,
        procs: 0,
        ..*c
    }
}

/// Records this node's services and admin in the replicated state until that succeeds.
async fn announce<N: Net>(c: Arc<Inner<N>>) {
    let mut services: Vec<String> = c.kernel.services().iter().map(|s| s.to_string()).collect();
    services.sort();
    let mut commands = vec![
        Command::SetServices {
            node: c.raft_id,
            services,
        },
        Command::SetUser {
            name: c.admin_name.clone(),
            key: c.admin.to_bytes(),
        },
    ];
    if c.fresh {
        // A new cluster's store starts with the same entries as a new node's.
        if let Ok(plexus_units::Unit::Map(seed)) = plexus_units::parse(plexus_services::SEED) {
            for (k, v) in seed.into_entries() {
                if let Some(k) = k.as_str() {
                    commands.push(Command::Save {
                        path: vec![k.to_owned()],
                        value: plexus_units::encode(&v),
                    });
                }
            }
        }
    }
    for cmd in commands {
        let mut wait = Duration::from_millis(100);
        loop {
            match c.raft.write(cmd.clone()).await {
                Ok(raft::Response::Err { code, message }) => {
                    tracing::warn!("cluster refused {cmd:?}: {code}: {message}");
                    break;
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!("cannot record yet ({e}); retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// On the leader: grows the voter set as nodes join (1, 3 or 5 voters) and replaces voters
/// that have been down for a while with live learners.
async fn voter_loop<N: Net>(c: Arc<Inner<N>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut down_since: BTreeMap<u64, tokio::time::Instant> = BTreeMap::new();
    loop {
        tick.tick().await;
        if c.raft.leader() != Some(c.raft_id) {
            down_since.clear();
            continue;
        }
        let roster = c.view.roster();
        let now = tokio::time::Instant::now();
        let mut nodes = Vec::new();
        for m in &roster {
            let alive = c.view.health(&m.key) != Health::Down;
            if alive {
                down_since.remove(&m.raft_id);
            } else {
                down_since.entry(m.raft_id).or_insert(now);
            }
            // A voter counts as live until it has been down for 60 s: a restart must not
            // shrink the voter set.
            let long_down = down_since
                .get(&m.raft_id)
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60));
            nodes.push((m.raft_id, !long_down && (alive || m.voter)));
        }
        let current: BTreeSet<u64> = roster
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.raft_id)
            .collect();
        let settings = c.raft.node_meta();
        let setting = |id: u64| {
            settings
                .get(&id)
                .and_then(|t| t.get(sys_node::VOTER_SETTING))
                .cloned()
        };
        let manual = roster.iter().any(|m| setting(m.raft_id).is_some());
        let wanted = if manual {
            // Voters chosen by hand (`(voters […])@sys.node`) stay until chosen otherwise.
            roster
                .iter()
                .filter(|m| setting(m.raft_id).as_deref() == Some("yes"))
                .map(|m| m.raft_id)
                .collect()
        } else {
            raft::choose_voters(&nodes, &current)
        };
        if wanted != current && !wanted.is_empty() {
            tracing::info!(?current, ?wanted, "changing voters");
            if let Err(e) = c.raft.change_voters(wanted).await {
                tracing::warn!("cannot change voters: {e}");
            }
        }
    }
}

/// Joins a cluster with a token: links with the invite key to a member, asks to be admitted,
/// learns the members.
async fn join<N: Net>(
    net: &N,
    key: &Keypair,
    name: &str,
    addr: &Addr<N>,
    token: &token::JoinToken,
    mesh: &Mesh<N::Transport>,
    allow: &Allow,
) -> Result<[u8; 16], NodeError> {
    token.check(now_ms()).map_err(err)?;
    let invite = token.invite_key().map_err(err)?;
    let proof_bytes = wire::join_proof_bytes(
        &invite.public().to_bytes(),
        &key.public().to_bytes(),
        name,
        &addr.to_string(),
    );
    let request = JoinRequest {
        key: key.public().to_bytes(),
        name: name.to_owned(),
        addr: addr.to_string(),
        invite: invite.public().to_bytes(),
        proof: key.sign_digest(&proof_bytes).to_vec(),
    };
    let body = Bytes::from(wire::encode(&request).map_err(err)?);
    // The seeds are members: whichever of them leads sends us the log before our join call
    // returns, and raft is for members only.
    for seed in &token.seeds {
        if let Ok(k) = PublicKey::from_bytes(&seed.key) {
            allow.insert(k);
        }
    }
    let mut failures = Vec::new();
    for seed in &token.seeds {
        let Ok(seed_key) = PublicKey::from_bytes(&seed.key) else {
            continue;
        };
        let Ok(seed_addr) = seed.addr.parse::<Addr<N>>() else {
            failures.push(format!("{}: not an address", seed.addr));
            continue;
        };
        // A mesh of our own with the invite key as identity, just for this request.
        let invite_allow = Allow::with_keys([seed_key]);
        let transport = net.transport(&invite, invite_allow).map_err(err)?;
        let once = Mesh::new(transport, MeshConfig::default(), Arc::new(NoInbound));
        once.set_peer(seed_key, seed.addr.clone(), seed_addr);
        let reply = once
            .call(&seed_key, wire::JOIN, body.clone(), JOIN_TIMEOUT)
            .await;
        once.shutdown();
        match reply {
            Ok(bytes) => {
                let reply: JoinReply = wire::decode(&bytes).map_err(err)?;
                if reply.cluster != token.cluster {
                    return Err(NodeError::Config(
                        "the member answered for another cluster than the token's".into(),
                    ));
                }
                for p in &reply.peers {
                    if let (Ok(k), Ok(a)) =
                        (PublicKey::from_bytes(&p.key), p.addr.parse::<Addr<N>>())
                    {
                        allow.insert(k);
                        if k != key.public() {
                            mesh.set_peer(k, p.name.clone(), a);
                        }
                    }
                }
                return Ok(reply.cluster);
            }
            // The seed refused the invite key: it is not a pending invite there.
            Err(MeshError::Unreachable { refused: true, .. }) => failures.push(format!(
                "{}: the token's invite is unknown there: it was used already or expired \
                 (make a new token with `plx invite`)",
                seed.addr
            )),
            Err(e) => failures.push(format!("{}: {e}", seed.addr)),
        }
    }
    Err(NodeError::Config(format!(
        "could not join the cluster: {}",
        failures.join("; ")
    )))
}

struct NoInbound;

impl Handler for NoInbound {
    fn message(&self, _: &PeerInfo, _: u8, _: Bytes) {}
    fn call(
        &self,
        _: &PeerInfo,
        _: u8,
        _: Bytes,
    ) -> plexus_net::BoxFuture<'static, Result<Bytes, String>> {
        Box::pin(async { Err("a joining node serves nothing".to_owned()) })
    }
}

/// Admits a node holding a valid invite (on the leader; other members forward).
async fn handle_join<N: Net>(
    c: &Arc<Inner<N>>,
    from: &PeerInfo,
    body: &[u8],
) -> Result<Bytes, String> {
    let request: JoinRequest = wire::decode(body)?;
    // Over an invite link, the invite must be that link's key; members may forward.
    if !c.view.is_member(&from.key) && from.key.to_bytes() != request.invite {
        return Err("the invite does not match the link".into());
    }
    let node_key = PublicKey::from_bytes(&request.key).map_err(|e| e.to_string())?;
    let proof = wire::join_proof_bytes(&request.invite, &request.key, &request.name, &request.addr);
    if !node_key.verify_digest(&proof, &request.proof) {
        return Err("the joining node's proof does not verify".to_owned());
    }
    plexus_identity::validate_name(&request.name).map_err(|e| e.to_string())?;
    let addr: Addr<N> = request
        .addr
        .parse()
        .map_err(|_| format!("{} is not an address", request.addr))?;
    if let Some(m) = c.view.find(&request.name) {
        if m.key != node_key {
            return Err(format!(
                "a node named {} is already in the cluster",
                request.name
            ));
        }
    }
    let leader = c.raft.leader();
    if leader != Some(c.raft_id) {
        let leader = leader
            .and_then(|l| c.view.by_raft_id(l))
            .ok_or("the cluster has no leader right now; try again")?;
        return c
            .mesh
            .call(
                &leader.key,
                wire::JOIN,
                Bytes::copy_from_slice(body),
                JOIN_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string());
    }
    if let raft::Response::Err { message, .. } = c
        .raft
        .write(Command::UseInvite {
            id: request.invite,
            now_ms: now_ms(),
        })
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(message);
    }
    let id = raft::node_id(&node_key);
    c.allow.insert(node_key);
    c.mesh
        .set_peer(node_key, request.name.clone(), addr.clone());
    c.raft
        .add_learner(
            id,
            RaftPeer {
                name: request.name.clone(),
                addr: request.addr.clone(),
                key: request.key,
            },
        )
        .await
        .map_err(|e| format!("cannot add the node: {e}"))?;
    sync_state(c);
    let peers = c
        .view
        .roster()
        .into_iter()
        .map(|m| PeerEntry {
            name: m.name,
            addr: m.addr,
            key: m.key.to_bytes(),
        })
        .collect();
    tracing::info!(node = %request.name, %addr, "node joined");
    wire::encode(&JoinReply {
        cluster: c.cluster_id,
        peers,
    })
    .map(Bytes::from)
}
