//! Raft RPCs over a wire the node layer provides ([`RaftWire`]).
//!
//! Every RPC is one request and one reply, both postcard: an [`Envelope`] holding an
//! [`Rpc`], answered by a [`Reply`]. Besides openraft's own RPCs (append entries, vote,
//! snapshots) the same wire carries the requests a follower forwards to the leader: client
//! writes, linearizable-read index requests and membership changes. The receiving node hands
//! the body to [`crate::raft::ClusterRaft::handle_rpc`].

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError as OrError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Snapshot, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::types::{Command, RaftPeer, Response, TypeConfig};

/// How the node layer carries raft RPCs between nodes (over its authenticated links).
pub trait RaftWire: Send + Sync + 'static {
    /// Sends one encoded raft RPC to `target` and returns its encoded reply.
    ///
    /// `peer` is what raft's membership records about the target (name, address, key);
    /// `timeout` bounds the whole exchange. An error says whether the request can have
    /// been delivered ([`WireError`]); its text is for logs and users.
    fn rpc(
        &self,
        target: u64,
        peer: &RaftPeer,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, WireError>> + Send>>;
}

/// The version of the RPC encoding ([`Envelope::version`]).
pub(crate) const RPC_VERSION: u8 = 1;

/// One RPC as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// [`RPC_VERSION`].
    pub(crate) version: u8,
    /// The raft id it is meant for (a node refuses RPCs for another id).
    pub(crate) to: u64,
    /// The request.
    pub(crate) rpc: Rpc,
}

/// A request from one node's raft to another's.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Rpc {
    /// openraft's AppendEntries (also the heartbeat).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft's RequestVote.
    Vote(VoteRequest<u64>),
    /// One chunk of a snapshot (only single-chunk snapshots are accepted).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A whole snapshot.
    FullSnapshot {
        /// The sending leader's vote.
        vote: Vote<u64>,
        /// The snapshot's meta.
        meta: SnapshotMeta<u64, RaftPeer>,
        /// The serialized state machine.
        data: Vec<u8>,
    },
    /// A client write forwarded to the leader.
    ClientWrite(Command),
    /// A follower asks the leader for the log index a linearizable read must wait for.
    ReadLinearizable,
    /// Add a learner (forwarded to the leader); the reply comes once it caught up.
    AddLearner {
        /// Its raft id.
        id: u64,
        /// Its peer record.
        peer: RaftPeer,
    },
    /// Set the voters (forwarded to the leader).
    ChangeVoters(BTreeSet<u64>),
    /// Remove a node from the membership (forwarded to the leader).
    RemoveNode(u64),
}

impl Rpc {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Rpc::AppendEntries(_) => "append-entries",
            Rpc::Vote(_) => "vote",
            Rpc::InstallSnapshot(_) => "install-snapshot",
            Rpc::FullSnapshot { .. } => "snapshot",
            Rpc::ClientWrite(_) => "write",
            Rpc::ReadLinearizable => "read-index",
            Rpc::AddLearner { .. } => "add-learner",
            Rpc::ChangeVoters(_) => "change-voters",
            Rpc::RemoveNode(_) => "remove-node",
        }
    }
}

/// The answer to an [`Rpc`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// To [`Rpc::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<u64>, OrError<u64>>),
    /// To [`Rpc::Vote`].
    Vote(Result<VoteResponse<u64>, OrError<u64>>),
    /// To [`Rpc::InstallSnapshot`].
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, OrError<u64, InstallSnapshotError>>),
    /// To [`Rpc::FullSnapshot`].
    FullSnapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    /// A forwarded write was committed and applied, with this response.
    Written(Response),
    /// The leader's read index (`None`: nothing to wait for).
    ReadIndex(Option<u64>),
    /// A forwarded membership change is done.
    Done,
    /// The receiver is not the leader (and did nothing); its idea of the leader.
    NotLeader {
        /// The leader it knows of.
        leader: Option<u64>,
    },
    /// The receiver failed to do it (a forwarded write's outcome is then unknown).
    Failed(String),
}

/// A wire failure as an error type openraft can carry.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireText(pub(crate) String);

/// Why a [`RaftWire::rpc`] failed: whether the request can have reached the target matters,
/// since a write that certainly was not delivered can be sent again safely.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The request certainly did not reach the target: no link could be made (connection
    /// refused, the peer is unknown or waiting out a reconnect backoff), or it could not be
    /// encoded.
    #[error("{0}")]
    NotSent(String),
    /// The request may have reached the target, but no valid answer came back (timeout,
    /// the link closed while waiting, a malformed reply, a refusal by the target).
    #[error("{0}")]
    NoAnswer(String),
}

impl From<String> for WireError {
    /// Text alone says nothing about delivery: taken as [`WireError::NoAnswer`].
    fn from(why: String) -> WireError {
        WireError::NoAnswer(why)
    }
}

/// When each peer last answered or failed, to explain a missing quorum.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    last: Mutex<HashMap<u64, (bool, Instant)>>,
}

impl Reach {
    pub(crate) fn record(&self, target: u64, ok: bool) {
        let mut m = self.last.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(target, (ok, Instant::now()));
    }

    /// Whether `target`'s last RPC, within `within`, succeeded.
    pub(crate) fn reachable(&self, target: u64, within: Duration) -> bool {
        let m = self.last.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&target)
            .is_some_and(|(ok, at)| *ok && at.elapsed() <= within)
    }
}

/// Records a failure for an RPC abandoned before its answer.
struct Pending<'a> {
    reach: &'a Reach,
    target: u64,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.reach.record(self.target, false);
        }
    }
}

/// Sends one RPC over `wire` and decodes the reply; records reachability.
pub(crate) async fn call(
    wire: &dyn RaftWire,
    reach: &Reach,
    target: u64,
    peer: &RaftPeer,
    rpc: Rpc,
    timeout: Duration,
) -> Result<Reply, WireError> {
    let what = rpc.name();
    let body = postcard::to_allocvec(&Envelope {
        version: RPC_VERSION,
        to: target,
        rpc,
    })
    .map_err(|e| WireError::NotSent(format!("cannot encode a {what} rpc: {e}")))?;
    // Counts as a failure if the caller gives up (drops this future) before the answer.
    let mut pending = Pending {
        reach,
        target,
        done: false,
    };
    let res = match tokio::time::timeout(timeout, wire.rpc(target, peer, body, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(WireError::NoAnswer(format!("no answer within {timeout:?}"))),
    };
    pending.done = true;
    reach.record(target, res.is_ok());
    let bytes = res?;
    postcard::from_bytes(&bytes)
        .map_err(|e| WireError::NoAnswer(format!("malformed {what} reply from {}: {e}", peer.name)))
}

/// openraft's network factory over a [`RaftWire`].
pub(crate) struct Network {
    pub(crate) wire: Arc<dyn RaftWire>,
    pub(crate) reach: Arc<Reach>,
    /// How long to wait before retrying an unreachable peer.
    pub(crate) backoff: Duration,
    /// The shortest deadline of an AppendEntries RPC (see [`PeerClient::append_timeout`]).
    pub(crate) append_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &RaftPeer) -> PeerClient {
        PeerClient {
            target,
            peer: node.clone(),
            wire: self.wire.clone(),
            reach: self.reach.clone(),
            backoff: self.backoff,
            append_timeout: self.append_timeout,
        }
    }
}

/// openraft's connection to one peer.
pub(crate) struct PeerClient {
    target: u64,
    peer: RaftPeer,
    wire: Arc<dyn RaftWire>,
    reach: Arc<Reach>,
    backoff: Duration,
    /// openraft 0.9 gives AppendEntries the heartbeat interval as its deadline, and a
    /// timeout stops that follower's replication for a backoff. A follower answers after its
    /// fsync, which on a busy disk takes tens of ms now and then: waiting a little longer
    /// costs nothing (the other followers go on) and avoids the stall.
    append_timeout: Duration,
}

fn unreachable<E: std::error::Error>(why: String) -> RPCError<u64, RaftPeer, E> {
    RPCError::Unreachable(Unreachable::new(&WireText(why)))
}

fn unexpected<E: std::error::Error>(reply: &Reply) -> RPCError<u64, RaftPeer, E> {
    RPCError::Network(NetworkError::new(&WireText(format!(
        "unexpected reply {reply:?}"
    ))))
}

impl PeerClient {
    async fn call(&self, rpc: Rpc, timeout: Duration) -> Result<Reply, String> {
        call(
            &*self.wire,
            &self.reach,
            self.target,
            &self.peer,
            rpc,
            timeout,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, RaftPeer, OrError<u64>>> {
        let timeout = option.hard_ttl().max(self.append_timeout);
        match self.call(Rpc::AppendEntries(rpc), timeout).await {
            Err(why) => Err(unreachable(why)),
            Ok(Reply::AppendEntries(Ok(r))) => Ok(r),
            Ok(Reply::AppendEntries(Err(e))) => Err(RPCError::RemoteError(
                RemoteError::new_with_node(self.target, self.peer.clone(), e),
            )),
            Ok(other) => Err(unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, RaftPeer, OrError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(Rpc::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Err(why) => Err(unreachable(why)),
            Ok(Reply::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(Reply::InstallSnapshot(Err(e))) => Err(RPCError::RemoteError(
                RemoteError::new_with_node(self.target, self.peer.clone(), e),
            )),
            Ok(other) => Err(unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, RaftPeer, OrError<u64>>> {
        match self.call(Rpc::Vote(rpc), option.hard_ttl()).await {
            Err(why) => Err(unreachable(why)),
            Ok(Reply::Vote(Ok(r))) => Ok(r),
            Ok(Reply::Vote(Err(e))) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.peer.clone(),
                e,
            ))),
            Ok(other) => Err(unexpected(&other)),
        }
    }

    /// Sends the whole snapshot in one RPC (the state is small enough to be held in memory
    /// anyway), instead of openraft's chunks.
    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let data = Cursor::into_inner(*snapshot.snapshot);
        let rpc = Rpc::FullSnapshot {
            vote,
            meta: snapshot.meta,
            data,
        };
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = self.call(rpc, option.hard_ttl()) => r,
        };
        match reply {
            Err(why) => Err(StreamingError::Unreachable(Unreachable::new(&WireText(
                why,
            )))),
            Ok(Reply::FullSnapshot(Ok(r))) => Ok(r),
            Ok(Reply::FullSnapshot(Err(e))) => Err(StreamingError::RemoteError(
                RemoteError::new_with_node(self.target, self.peer.clone(), e),
            )),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&WireText(
                format!("unexpected reply {other:?}"),
            )))),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
