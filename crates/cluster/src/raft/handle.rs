//! [`ClusterRaft`]: one node's handle on the replicated cluster state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, Fatal, InitializeError, RaftError as OrError,
};
use openraft::metrics::WaitError;
use openraft::{ChangeMembers, RaftMetrics, Snapshot};
use tokio::sync::watch;
use tokio::time::Instant;

use super::batch::{Batcher, Outcome};
use super::db::{open_db, Changes, Shared};
use super::log_store::LogStore;
use super::network::{
    call, Envelope, Network, RaftWire, Reach, Reply, Rpc, WireError, RPC_VERSION,
};
use super::state_machine::{SnapshotState, StateMachine};
use super::types::{Command, RaftPeer, Response, TypeConfig};
use super::{MembershipError, RaftError, RaftTuning};

/// A member's role in the raft membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Votes in elections and counts toward the commit quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
}

/// A summary of this node's raft state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMetrics {
    /// This node's raft id.
    pub id: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    /// The current term.
    pub term: u64,
    /// The current leader, if known.
    pub leader: Option<u64>,
    /// The index of the last entry in the local log.
    pub last_log: Option<u64>,
    /// The index of the last entry applied to the local state machine.
    pub last_applied: Option<u64>,
    /// The voters.
    pub voters: BTreeSet<u64>,
    /// The learners.
    pub learners: BTreeSet<u64>,
    /// On the leader: milliseconds since a majority last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
}

/// One node's handle on the replicated cluster state: the raft node, its storage
/// (`cluster.redb`) and its link to the other nodes. Cheap to clone.
///
/// Writes go through the leader (a follower forwards them over the [`RaftWire`]) and return
/// once a majority of voters committed them and this node's leader applied them. Reads
/// ([`ClusterRaft::load`], [`ClusterRaft::users`], …) read the local copy, which may lag the
/// leader: call [`ClusterRaft::read_barrier`] first for a linearizable read.
#[derive(Clone)]
pub struct ClusterRaft {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    me: RaftPeer,
    raft: openraft::Raft<TypeConfig>,
    shared: Arc<Shared>,
    wire: Arc<dyn RaftWire>,
    reach: Arc<Reach>,
    tuning: RaftTuning,
    batcher: Batcher,
}

impl std::fmt::Debug for ClusterRaft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRaft")
            .field("id", &format_args!("{:016x}", self.inner.id))
            .field("me", &self.inner.me)
            .finish()
    }
}

/// Where a leader-only request goes.
enum Route {
    Local,
    Remote(u64, RaftPeer),
}

/// A membership change.
#[derive(Clone, Debug)]
enum MemberOp {
    AddLearner { id: u64, peer: RaftPeer },
    ChangeVoters(BTreeSet<u64>),
    RemoveNode(u64),
}

impl MemberOp {
    fn what(&self) -> &'static str {
        match self {
            MemberOp::AddLearner { .. } => "add-learner",
            MemberOp::ChangeVoters(_) => "voter change",
            MemberOp::RemoveNode(_) => "node removal",
        }
    }

    fn rpc(&self) -> Rpc {
        match self.clone() {
            MemberOp::AddLearner { id, peer } => Rpc::AddLearner { id, peer },
            MemberOp::ChangeVoters(v) => Rpc::ChangeVoters(v),
            MemberOp::RemoveNode(id) => Rpc::RemoveNode(id),
        }
    }
}

pub(crate) fn fatal(f: Fatal<u64>) -> RaftError {
    match f {
        Fatal::Stopped => RaftError::Shutdown,
        f => RaftError::Fatal(f.to_string()),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Keeps the leader, term and membership of [`Changes`] current from raft's metrics.
async fn follow_metrics(mut rx: watch::Receiver<RaftMetrics<u64, RaftPeer>>, shared: Weak<Shared>) {
    loop {
        let (leader, term, members, fault) = {
            let m = rx.borrow_and_update();
            (
                m.current_leader,
                m.current_term,
                m.membership_config.log_id().map(|l| l.index).unwrap_or(0),
                match &m.running_state {
                    Err(f) if !matches!(f, Fatal::Stopped) => Some(f.to_string()),
                    _ => None,
                },
            )
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.changes.send_if_modified(|c| {
            let changed = c.leader != leader || c.term != term || c.members != members;
            c.leader = leader;
            c.term = term;
            c.members = members;
            changed
        });
        if fault.is_some() && shared.fault.borrow().is_none() {
            shared.fault.send_replace(fault);
        }
        drop(shared);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Basic sanity of an AppendEntries from the network: consecutive entries right after
/// `prev_log_id`.
fn check_append(r: &openraft::raft::AppendEntriesRequest<TypeConfig>) -> Result<(), String> {
    let mut next = r
        .prev_log_id
        .map(|l| l.index.saturating_add(1))
        .unwrap_or(0);
    for e in &r.entries {
        if e.log_id.index != next {
            return Err(format!(
                "append-entries with entry {} where {next} was due",
                e.log_id.index
            ));
        }
        next = next.saturating_add(1);
    }
    Ok(())
}

impl ClusterRaft {
    /// Opens (creating if needed) this node's cluster state in `dir` (`dir/cluster.redb`) as
    /// raft node `id` (which must be [`crate::raft::node_id`] of the node's key, and the id
    /// the directory was created with), and starts raft. `me` is how the other nodes reach
    /// this one; `wire` carries RPCs to them.
    ///
    /// A new directory holds an uninitialized node: it either creates a cluster
    /// ([`ClusterRaft::initialize`]) or waits to be added to one by its leader. An existing
    /// one resumes where it was (catching up from the leader).
    pub async fn open(
        dir: &Path,
        id: u64,
        me: RaftPeer,
        wire: Arc<dyn RaftWire>,
        tuning: RaftTuning,
    ) -> Result<ClusterRaft, RaftError> {
        let config = Arc::new(tuning.config()?);
        let d = dir.to_owned();
        let shared = tokio::task::spawn_blocking(move || open_db(&d, id))
            .await
            .map_err(|e| RaftError::Storage(format!("opening failed: {e}")))??;
        let reach = Arc::new(Reach::default());
        let network = Network {
            wire: wire.clone(),
            reach: reach.clone(),
            backoff: Duration::from_millis(tuning.heartbeat_ms.max(10)),
            append_timeout: Duration::from_millis(tuning.election_max_ms.saturating_mul(2)),
        };
        let raft = openraft::Raft::new(
            id,
            config,
            network,
            LogStore {
                shared: shared.clone(),
            },
            StateMachine {
                shared: shared.clone(),
            },
        )
        .await
        .map_err(fatal)?;
        // Let raft report its recovered state once, so members() and leader() are right
        // from the start.
        let mut rx = raft.metrics();
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.changed()).await;
        tokio::spawn(follow_metrics(raft.metrics(), Arc::downgrade(&shared)));
        tracing::info!(id = %format_args!("{id:016x}"), file = %shared.file.display(), "cluster state open");
        Ok(ClusterRaft {
            inner: Arc::new(Inner {
                id,
                me,
                raft,
                shared,
                wire,
                reach,
                tuning,
                batcher: Batcher::default(),
            }),
        })
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// This node's peer record.
    pub fn me(&self) -> &RaftPeer {
        &self.inner.me
    }

    /// The tuning this node runs with.
    pub fn tuning(&self) -> &RaftTuning {
        &self.inner.tuning
    }

    /// Creates a cluster whose only voter is this node. Does nothing on a node that is
    /// already part of a cluster (initialized before, or added by a leader).
    pub async fn initialize(&self) -> Result<(), RaftError> {
        let raft = &self.inner.raft;
        if raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        let mut members = BTreeMap::new();
        members.insert(self.inner.id, self.inner.me.clone());
        match raft.initialize(members).await {
            Ok(()) | Err(OrError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(OrError::APIError(e)) => Err(MembershipError::from(e).into()),
            Err(OrError::Fatal(f)) => Err(fatal(f)),
        }
    }

    /// Commits `cmd` as [`Self::write`] does, but only while this node leads: never forwarded
    /// to another leader, it fails with [`RaftError::NotLeader`] on a follower, and when this
    /// node stops leading before the entry commits. For a command decided from what this node
    /// saw as the leader: a leader cut off from the others still believes it leads, and its
    /// write, dropped from its log when it steps down, would otherwise be sent on to the new
    /// leader, which does not share that picture.
    pub async fn write_leading(&self, cmd: Command) -> Result<Response, RaftError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        if self.leader() != Some(self.inner.id) {
            return Err(RaftError::NotLeader);
        }
        self.write_local(cmd, deadline)
            .await?
            .ok_or(RaftError::NotLeader)
    }

    /// Commits `cmd` and gives the state machine's response. Returns once a majority of
    /// voters has the entry and the leader applied it. On a follower the write is forwarded
    /// to the leader. Fails within [`RaftTuning::write_timeout`] when there is no leader or
    /// no majority: [`RaftError::NoLeader`] (nothing was written), [`RaftError::Timeout`] or
    /// [`RaftError::Unconfirmed`] (the write may or may not be applied; it is not retried, as
    /// commands such as list appends are not idempotent).
    pub async fn write(&self, cmd: Command) -> Result<Response, RaftError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        let mut last: Option<String> = None;
        loop {
            // After a failed send, look again soon: the next leader is usually known within
            // a few heartbeats of the old one going away.
            let mut step = self.retry_step();
            let route = match self.route(deadline).await {
                Ok(r) => r,
                Err(e) => return Err(self.with_last("write", e, last)),
            };
            match route {
                Route::Local => {
                    if let Some(r) = self.write_local(cmd.clone(), deadline).await? {
                        return Ok(r);
                    }
                }
                Route::Remote(leader, peer) => {
                    let reply = self
                        .call(
                            leader,
                            &peer,
                            Rpc::ClientWrite(cmd.clone()),
                            remaining(deadline),
                        )
                        .await;
                    match reply {
                        Ok(Reply::Written(r)) => return Ok(r),
                        Ok(Reply::NotLeader { .. }) => {}
                        Ok(Reply::Failed(why)) => {
                            return Err(RaftError::Remote {
                                what: format!("{} write", cmd.name()),
                                leader,
                                why,
                            })
                        }
                        Ok(other) => {
                            return Err(RaftError::Protocol(format!(
                                "unexpected reply to a write: {other:?}"
                            )))
                        }
                        // Certainly not delivered (the leader is gone or unreachable): safe
                        // to send again, to whichever node leads by then.
                        Err(WireError::NotSent(why)) => {
                            last = Some(format!("cannot reach the leader {} ({why})", peer.name));
                            step = Duration::from_millis(10);
                        }
                        Err(WireError::NoAnswer(why)) => {
                            return Err(RaftError::Unconfirmed {
                                what: format!("{} write", cmd.name()),
                                leader,
                                name: peer.name,
                                why,
                            })
                        }
                    }
                }
            }
            if let Err(e) = self.pause_for(deadline, step).await {
                return Err(self.with_last("write", e, last));
            }
        }
    }

    /// Waits until the local state machine reflects every write committed before the call
    /// (a linearizable read point): the leader confirms its leadership with a majority and
    /// gives its commit index, and this node waits until it applied that far. Fails within
    /// [`RaftTuning::write_timeout`] without a leader or majority.
    pub async fn read_barrier(&self) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        let mut last: Option<String> = None;
        loop {
            let route = match self.route(deadline).await {
                Ok(r) => r,
                Err(e) => return Err(self.with_last("read barrier", e, last)),
            };
            match route {
                Route::Local => {
                    let r =
                        tokio::time::timeout_at(deadline, self.inner.raft.ensure_linearizable())
                            .await;
                    match r {
                        Err(_) => {
                            return Err(self.timeout_error(
                                "read barrier",
                                last.unwrap_or_else(|| "no majority confirmed the leader".into()),
                            ))
                        }
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(OrError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {}
                        Ok(Err(OrError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                            last = Some(self.quorum_text(&e));
                        }
                        Ok(Err(OrError::Fatal(f))) => return Err(fatal(f)),
                    }
                }
                Route::Remote(leader, peer) => {
                    match self
                        .call(leader, &peer, Rpc::ReadLinearizable, remaining(deadline))
                        .await
                    {
                        Ok(Reply::ReadIndex(index)) => {
                            return self.wait_applied(index, deadline).await
                        }
                        Ok(Reply::NotLeader { .. }) => {}
                        Ok(Reply::Failed(why)) => {
                            last = Some(format!("the leader {}: {why}", peer.name))
                        }
                        Ok(other) => {
                            return Err(RaftError::Protocol(format!(
                                "unexpected reply to a read index request: {other:?}"
                            )))
                        }
                        Err(why) => {
                            last = Some(format!("cannot reach the leader {} ({why})", peer.name))
                        }
                    }
                }
            }
            if let Err(e) = self.pause(deadline).await {
                return Err(self.with_last("read barrier", e, last));
            }
        }
    }

    /// Adds node `id` as a learner (or updates its peer record), on the leader (forwarded
    /// there from a follower), and waits until it has caught up with the log up to that
    /// change (at most [`RaftTuning::catch_up_timeout`]). Adding a member again is harmless.
    pub async fn add_learner(&self, id: u64, peer: RaftPeer) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.tuning.catch_up_timeout;
        self.member_op(MemberOp::AddLearner { id, peer }, deadline)
            .await
    }

    /// Makes `voters` the voter set (through joint consensus); each must already be a member
    /// (a learner or a voter). Voters left out stay as learners.
    pub async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        self.member_op(MemberOp::ChangeVoters(voters), deadline)
            .await
    }

    /// Removes node `id` from the membership (voter or learner). Removing a node that is not
    /// a member does nothing. Revoke its key as well ([`Command::Revoke`]) to keep it out.
    pub async fn remove_node(&self, id: u64) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.tuning.write_timeout;
        self.member_op(MemberOp::RemoveNode(id), deadline).await
    }

    /// Handles one RPC from another node's [`RaftWire`] and gives the encoded reply. A
    /// malformed body, or one meant for another node, is an error (never a panic).
    pub async fn handle_rpc(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let env: Envelope =
            postcard::from_bytes(body).map_err(|e| format!("malformed raft rpc: {e}"))?;
        if env.version != RPC_VERSION {
            return Err(format!(
                "raft rpc version {} is not the supported {RPC_VERSION}",
                env.version
            ));
        }
        if env.to != self.inner.id {
            return Err(format!(
                "this is raft node {:016x}, not {:016x}",
                self.inner.id, env.to
            ));
        }
        let raft = &self.inner.raft;
        let reply = match env.rpc {
            Rpc::AppendEntries(r) => {
                check_append(&r)?;
                Reply::AppendEntries(raft.append_entries(r).await)
            }
            Rpc::Vote(r) => Reply::Vote(raft.vote(r).await),
            Rpc::InstallSnapshot(r) => {
                if r.offset != 0 || !r.done {
                    return Err("only whole snapshots are accepted, not chunks".to_owned());
                }
                SnapshotState::decode(&r.data)?;
                let snapshot = Snapshot {
                    meta: r.meta,
                    snapshot: Box::new(Cursor::new(r.data)),
                };
                Reply::InstallSnapshot(
                    raft.install_full_snapshot(r.vote, snapshot)
                        .await
                        .map(Into::into)
                        .map_err(OrError::Fatal),
                )
            }
            Rpc::FullSnapshot { vote, meta, data } => {
                SnapshotState::decode(&data)?;
                let snapshot = Snapshot {
                    meta,
                    snapshot: Box::new(Cursor::new(data)),
                };
                Reply::FullSnapshot(raft.install_full_snapshot(vote, snapshot).await)
            }
            Rpc::ClientWrite(cmd) => {
                let deadline = Instant::now() + self.inner.tuning.write_timeout;
                match self.write_local(cmd, deadline).await {
                    Ok(Some(r)) => Reply::Written(r),
                    Ok(None) => Reply::NotLeader {
                        leader: self.leader(),
                    },
                    Err(e) => Reply::Failed(e.to_string()),
                }
            }
            Rpc::ReadLinearizable => {
                let r =
                    tokio::time::timeout(self.inner.tuning.write_timeout, raft.get_read_log_id())
                        .await;
                match r {
                    Err(_) => {
                        Reply::Failed("no majority confirmed the leadership in time".to_owned())
                    }
                    Ok(Ok((read, _))) => Reply::ReadIndex(read.map(|l| l.index)),
                    Ok(Err(OrError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                        Reply::NotLeader {
                            leader: self.leader(),
                        }
                    }
                    Ok(Err(OrError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                        Reply::Failed(self.quorum_text(&e))
                    }
                    Ok(Err(OrError::Fatal(f))) => Reply::Failed(fatal(f).to_string()),
                }
            }
            Rpc::AddLearner { id, peer } => {
                let deadline = Instant::now() + self.inner.tuning.catch_up_timeout;
                self.serve_member(MemberOp::AddLearner { id, peer }, deadline)
                    .await
            }
            Rpc::ChangeVoters(v) => {
                let deadline = Instant::now() + self.inner.tuning.write_timeout;
                self.serve_member(MemberOp::ChangeVoters(v), deadline).await
            }
            Rpc::RemoveNode(id) => {
                let deadline = Instant::now() + self.inner.tuning.write_timeout;
                self.serve_member(MemberOp::RemoveNode(id), deadline).await
            }
        };
        postcard::to_allocvec(&reply).map_err(|e| format!("cannot encode a raft reply: {e}"))
    }

    /// The whole store as one encoded map (`path` `None`), or the encoded unit at `path`
    /// (`None` if nothing is there), from the local state machine. Paths are read as
    /// `plexus_store::take_path` reads them.
    pub fn load(&self, path: Option<&[String]>) -> Result<Option<Vec<u8>>, RaftError> {
        self.inner.shared.load(path).map_err(RaftError::Storage)
    }

    /// [`ClusterRaft::load`] as `caller` may see it: others' private entries are left out
    /// of the whole store, and a path inside one is not there (`docs/storage.md`,
    /// "Ownership").
    pub fn load_as(
        &self,
        path: Option<&[String]>,
        caller: plexus_store::Caller,
    ) -> Result<Option<Vec<u8>>, RaftError> {
        self.inner
            .shared
            .load_as(path, Some(caller))
            .map_err(RaftError::Storage)
    }

    /// The size of the whole store or of the unit at `path` (its encoded length, as
    /// `plexus_store::size` counts), from the local state machine; `None` if nothing is
    /// there.
    pub fn size(&self, path: Option<&[String]>) -> Result<Option<u64>, RaftError> {
        Ok(self.load(path)?.map(|b| b.len() as u64))
    }

    /// The users (name, public key), by name, from the local state machine.
    pub fn users(&self) -> Vec<(String, [u8; 32])> {
        self.local("users", self.inner.shared.users())
    }

    /// Which node provides which services, from the local state machine.
    pub fn services(&self) -> BTreeMap<u64, Vec<String>> {
        self.local("services", self.inner.shared.services())
    }

    /// Node tags, from the local state machine.
    pub fn node_meta(&self) -> BTreeMap<u64, BTreeMap<String, String>> {
        self.local("node tags", self.inner.shared.node_meta())
    }

    /// The file tree's metadata at `path` for `actor`, from the local state machine (call
    /// [`ClusterRaft::read_barrier`] first for a linearizable read).
    pub fn fs_stat(
        &self,
        actor: &plexus_fs::Actor,
        path: &plexus_fs::FsPath,
    ) -> Result<plexus_store::fs::Stat, plexus_store::fs::FsError> {
        self.inner.shared.fs_stat(actor, path)
    }

    /// The entries of the directory at `path` for `actor`, from the local state machine
    /// (call [`ClusterRaft::read_barrier`] first for a linearizable read).
    pub fn fs_list(
        &self,
        actor: &plexus_fs::Actor,
        path: &plexus_fs::FsPath,
    ) -> Result<Vec<(String, plexus_store::fs::Stat)>, plexus_store::fs::FsError> {
        self.inner.shared.fs_list(actor, path)
    }

    /// The rows of the chunks `hashes` (`None` for a chunk no file names), from the local
    /// state machine.
    pub fn fs_chunk_rows_of(
        &self,
        hashes: &[[u8; 32]],
    ) -> Result<Vec<Option<plexus_store::fs::ChunkRow>>, plexus_store::fs::FsError> {
        self.inner.shared.fs_chunk_rows_of(hashes)
    }

    /// Up to `max` chunk rows after `after`, in hash order, from the local state machine.
    pub fn fs_chunk_rows(
        &self,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> Result<plexus_store::fs::ChunkPage, plexus_store::fs::FsError> {
        self.inner.shared.fs_chunk_rows(after, max)
    }

    /// The process table, by id, from the local state machine (call
    /// [`ClusterRaft::read_barrier`] first for a linearizable read).
    pub fn procs(&self) -> Result<Vec<plexus_store::ProcRecord>, RaftError> {
        self.inner.shared.procs().map_err(RaftError::Storage)
    }

    /// The live (not ended) process records, from the local state machine; it may miss
    /// what was applied in the last few milliseconds.
    pub fn live_procs(&self) -> Result<Vec<plexus_store::ProcRecord>, RaftError> {
        self.inner.shared.live_procs().map_err(RaftError::Storage)
    }

    /// Whether the local state machine has a process record with `id`; it may miss what
    /// was applied in the last few milliseconds.
    pub fn has_proc(&self, id: &plexus_store::ProcId) -> Result<bool, RaftError> {
        self.inner.shared.has_proc(id).map_err(RaftError::Storage)
    }

    /// The process record with `id`, from the local state machine.
    pub fn proc(
        &self,
        id: &plexus_store::ProcId,
    ) -> Result<Option<plexus_store::ProcRecord>, RaftError> {
        self.inner.shared.proc(id).map_err(RaftError::Storage)
    }

    /// Revoked node keys, from the local state machine.
    pub fn revoked(&self) -> Vec<[u8; 32]> {
        self.local("revoked keys", self.inner.shared.revoked())
    }

    /// Invites not expired at `now_ms`, from the local state machine.
    pub fn invites(&self, now_ms: u64) -> Vec<[u8; 32]> {
        self.local("invites", self.inner.shared.invites(now_ms))
    }

    /// The members raft knows (the latest membership, committed or not), with their roles.
    pub fn members(&self) -> Vec<(u64, RaftPeer, Role)> {
        let rx = self.inner.raft.metrics();
        let m = rx.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, p)| {
                let role = if voters.contains(id) {
                    Role::Voter
                } else {
                    Role::Learner
                };
                (*id, p.clone(), role)
            })
            .collect()
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// A summary of this node's raft state.
    pub fn metrics(&self) -> ClusterMetrics {
        let rx = self.inner.raft.metrics();
        let m = rx.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        ClusterMetrics {
            id: m.id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            voters,
            learners,
            millis_since_quorum_ack: m.millis_since_quorum_ack,
        }
    }

    /// Follows changes: the value says which parts changed at which log index, and the
    /// current leader and term; it changes after every applied batch and leader or
    /// membership change.
    pub fn subscribe(&self) -> watch::Receiver<Changes> {
        self.inner.shared.changes.subscribe()
    }

    /// Fault injection for tests: while `hold` is true, this node's log appends are written
    /// (so a leader still replicates them) but neither made durable nor reported flushed, as
    /// on a node whose disk stalls. Not for production use.
    #[doc(hidden)]
    pub fn hold_log_flushes(&self, hold: bool) {
        self.inner.shared.flush_gate.hold(hold);
    }

    /// Stops raft on this node (for good: open the directory again to restart). Reads of the
    /// local state keep working while a handle exists; the file closes when the last handle
    /// is dropped.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft did not stop cleanly: {e}");
        }
    }

    fn local<T: Default>(&self, what: &str, r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| {
            tracing::error!("cannot read the {what} of the cluster state: {e}");
            T::default()
        })
    }

    async fn call(
        &self,
        target: u64,
        peer: &RaftPeer,
        rpc: Rpc,
        timeout: Duration,
    ) -> Result<Reply, WireError> {
        call(
            &*self.inner.wire,
            &self.inner.reach,
            target,
            peer,
            rpc,
            timeout,
        )
        .await
    }

    /// Voters this node reached lately (itself included), and all voters.
    fn quorum_view(&self) -> (usize, usize) {
        let rx = self.inner.raft.metrics();
        let voters: BTreeSet<u64> = rx
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let within = Duration::from_millis(self.inner.tuning.election_max_ms.saturating_mul(10))
            .max(Duration::from_secs(2));
        let reachable = voters
            .iter()
            .filter(|v| **v == self.inner.id || self.inner.reach.reachable(**v, within))
            .count();
        (reachable, voters.len())
    }

    /// A short text for openraft's quorum error (its own names every peer record).
    fn quorum_text(&self, e: &openraft::error::QuorumNotEnough<u64>) -> String {
        let (_, voters) = self.quorum_view();
        format!(
            "the leader heard from only {} of {voters} voters",
            e.got.len()
        )
    }

    fn no_leader(&self) -> RaftError {
        let (reachable, voters) = self.quorum_view();
        RaftError::NoLeader { reachable, voters }
    }

    fn timeout_error(&self, what: &str, outcome: impl Into<String>) -> RaftError {
        let (reachable, voters) = self.quorum_view();
        RaftError::Timeout {
            what: what.to_owned(),
            after: self.inner.tuning.write_timeout,
            reachable,
            voters,
            outcome: outcome.into(),
        }
    }

    /// `e` (a deadline error), or a timeout naming the last error seen if there was one.
    fn with_last(&self, what: &str, e: RaftError, last: Option<String>) -> RaftError {
        match (e, last) {
            (RaftError::NoLeader { .. }, Some(last)) => {
                self.timeout_error(what, format!("last problem: {last}"))
            }
            (e, _) => e,
        }
    }

    /// Resolves, with the reason, once this node's cluster state has stopped for a fault (a
    /// storage error such as a full disk): from then on it answers nothing but that error,
    /// until the node starts again. Pending forever while it runs, or after a shutdown asked
    /// for.
    pub async fn faulted(&self) -> String {
        let mut fault = self.inner.shared.fault.subscribe();
        let why = fault
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|f| f.clone());
        match why {
            Some(why) => why,
            // The sender lives as long as this handle: never while it is used.
            None => std::future::pending().await,
        }
    }

    /// Waits until a leader is known (this node or another member), until `deadline`.
    async fn route(&self, deadline: Instant) -> Result<Route, RaftError> {
        let mut rx = self.inner.raft.metrics();
        loop {
            {
                let m = rx.borrow_and_update();
                if let Err(f) = &m.running_state {
                    return Err(fatal(f.clone()));
                }
                if let Some(l) = m.current_leader {
                    if l == self.inner.id {
                        return Ok(Route::Local);
                    }
                    if let Some(p) = m.membership_config.membership().get_node(&l) {
                        return Ok(Route::Remote(l, p.clone()));
                    }
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(self.no_leader()),
                Ok(Err(_)) => return Err(RaftError::Shutdown),
                Ok(Ok(())) => {}
            }
        }
    }

    /// A short wait before trying the leader again; the deadline error once it passed.
    async fn pause(&self, deadline: Instant) -> Result<(), RaftError> {
        self.pause_for(deadline, self.retry_step()).await
    }

    /// How long [`Self::pause`] waits: a heartbeat.
    fn retry_step(&self) -> Duration {
        Duration::from_millis(self.inner.tuning.heartbeat_ms.max(10))
    }

    /// [`Self::pause`] of `step`.
    async fn pause_for(&self, deadline: Instant, step: Duration) -> Result<(), RaftError> {
        if Instant::now() >= deadline {
            return Err(self.no_leader());
        }
        tokio::time::sleep(step.min(remaining(deadline))).await;
        Ok(())
    }

    /// A write on this node as the leader: `Ok(None)` if it is not the leader (nothing was
    /// appended).
    async fn write_local(
        &self,
        cmd: Command,
        deadline: Instant,
    ) -> Result<Option<Response>, RaftError> {
        let inner = &self.inner;
        let outcome = inner
            .batcher
            .write(&inner.raft, inner.tuning.write_timeout, cmd, deadline)
            .await;
        match outcome {
            Outcome::TimedOut => Err(self.timeout_error(
                "write",
                "it was not committed and may or may not be applied later",
            )),
            Outcome::Done(r) => Ok(Some(r)),
            Outcome::NotLeader => Ok(None),
            Outcome::Failed(e) => Err(e),
        }
    }

    /// Waits until the local state machine applied `index`.
    async fn wait_applied(&self, index: Option<u64>, deadline: Instant) -> Result<(), RaftError> {
        let Some(index) = index else {
            return Ok(());
        };
        let r = self
            .inner
            .raft
            .wait(Some(remaining(deadline)))
            .applied_index_at_least(Some(index), "read barrier")
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(..)) => Err(self.timeout_error(
                "read barrier",
                format!("this node has not applied the leader's index {index} yet"),
            )),
            Err(WaitError::ShuttingDown) => Err(RaftError::Shutdown),
        }
    }

    /// A membership change, on the leader or forwarded to it; retried (it is idempotent)
    /// until `deadline`.
    async fn member_op(&self, op: MemberOp, deadline: Instant) -> Result<(), RaftError> {
        let mut last: Option<String> = None;
        loop {
            let route = match self.route(deadline).await {
                Ok(r) => r,
                Err(e) => return Err(self.with_last(op.what(), e, last)),
            };
            match route {
                Route::Local => match self.member_local(&op, deadline).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(RaftError::Membership(m)) if m.is_in_progress() => {
                        last = Some(m.to_string())
                    }
                    Err(e) => return Err(e),
                },
                Route::Remote(leader, peer) => {
                    match self
                        .call(leader, &peer, op.rpc(), remaining(deadline))
                        .await
                    {
                        Ok(Reply::Done) => return Ok(()),
                        Ok(Reply::NotLeader { .. }) => {}
                        Ok(Reply::Failed(why)) => {
                            return Err(RaftError::Remote {
                                what: op.what().to_owned(),
                                leader,
                                why,
                            })
                        }
                        Ok(other) => {
                            return Err(RaftError::Protocol(format!(
                                "unexpected reply to a membership change: {other:?}"
                            )))
                        }
                        Err(why) => {
                            last = Some(format!("cannot reach the leader {} ({why})", peer.name))
                        }
                    }
                }
            }
            if let Err(e) = self.pause(deadline).await {
                return Err(self.with_last(op.what(), e, last));
            }
        }
    }

    async fn serve_member(&self, op: MemberOp, deadline: Instant) -> Reply {
        loop {
            match self.member_local(&op, deadline).await {
                Ok(true) => return Reply::Done,
                Ok(false) => {
                    return Reply::NotLeader {
                        leader: self.leader(),
                    }
                }
                Err(RaftError::Membership(m)) if m.is_in_progress() => {
                    if Instant::now() >= deadline {
                        return Reply::Failed(m.to_string());
                    }
                }
                Err(e) => return Reply::Failed(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(
                self.inner.tuning.heartbeat_ms.max(10),
            ))
            .await;
        }
    }

    /// A membership change on this node as the leader: `Ok(false)` if it is not the leader.
    async fn member_local(&self, op: &MemberOp, deadline: Instant) -> Result<bool, RaftError> {
        let raft = &self.inner.raft;
        let (change, catch_up) = {
            let rx = raft.metrics();
            let m = rx.borrow();
            let membership = m.membership_config.membership();
            match op {
                MemberOp::AddLearner { id, peer } => {
                    let mut nodes = BTreeMap::new();
                    nodes.insert(*id, peer.clone());
                    let change = match membership.get_node(id) {
                        Some(p) if p == peer => None,
                        Some(_) => Some(ChangeMembers::SetNodes(nodes)),
                        None => Some(ChangeMembers::AddNodes(nodes)),
                    };
                    (change, Some(*id))
                }
                MemberOp::ChangeVoters(voters) => {
                    if voters.is_empty() {
                        return Err(MembershipError::NoVoters.into());
                    }
                    let current: BTreeSet<u64> = membership.voter_ids().collect();
                    if &current == voters && membership.get_joint_config().len() == 1 {
                        (None, None)
                    } else {
                        (Some(ChangeMembers::ReplaceAllVoters(voters.clone())), None)
                    }
                }
                MemberOp::RemoveNode(id) => {
                    let mut ids = BTreeSet::new();
                    ids.insert(*id);
                    if membership.get_node(id).is_none() {
                        (None, None)
                    } else if membership.voter_ids().any(|v| v == *id) {
                        (Some(ChangeMembers::RemoveVoters(ids)), None)
                    } else {
                        (Some(ChangeMembers::RemoveNodes(ids)), None)
                    }
                }
            }
        };
        if raft.metrics().borrow().current_leader != Some(self.inner.id) {
            return Ok(false);
        }
        let mut at = raft
            .metrics()
            .borrow()
            .membership_config
            .log_id()
            .map(|l| l.index);
        if let Some(change) = change {
            // Voters removed by a voter change stay as learners; a removed node goes.
            let retain = matches!(op, MemberOp::ChangeVoters(_));
            let r = tokio::time::timeout_at(deadline, raft.change_membership(change, retain)).await;
            match r {
                Err(_) => {
                    return Err(self.timeout_error(
                        op.what(),
                        "it was not committed and may or may not take effect later",
                    ))
                }
                Ok(Ok(resp)) => at = Some(resp.log_id.index),
                Ok(Err(OrError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    return Ok(false)
                }
                Ok(Err(OrError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(MembershipError::from(e).into());
                }
                Ok(Err(OrError::Fatal(f))) => return Err(fatal(f)),
            }
        }
        if let (Some(id), Some(at)) = (catch_up, at) {
            if id != self.inner.id {
                let me = self.inner.id;
                let r = raft
                    .wait(Some(remaining(deadline)))
                    .metrics(
                        |m| {
                            m.current_leader != Some(me)
                                || m.replication
                                    .as_ref()
                                    .and_then(|r| r.get(&id).copied().flatten())
                                    .is_some_and(|l| l.index >= at)
                        },
                        "new learner caught up",
                    )
                    .await;
                match r {
                    Ok(_) => {}
                    Err(WaitError::Timeout(..)) => {
                        return Err(RaftError::Timeout {
                            what: "catch-up of the new learner".to_owned(),
                            after: self.inner.tuning.catch_up_timeout,
                            reachable: 0,
                            voters: 0,
                            outcome: "it is a member and still catching up".to_owned(),
                        })
                    }
                    Err(WaitError::ShuttingDown) => return Err(RaftError::Shutdown),
                }
            }
        }
        Ok(true)
    }
}
