//! The replicated cluster state: io.store's units, users, the service table, invites,
//! revoked node keys and node tags, kept by raft (openraft 0.9) on every voter and learner,
//! stored in one redb file per node (`cluster.redb`).
//!
//! - [`ClusterRaft`]: one node's handle: open it on a data directory, [`ClusterRaft::write`]
//!   [`Command`]s (forwarded to the leader automatically), [`ClusterRaft::read_barrier`]
//!   before linearizable reads of the local copy ([`ClusterRaft::load`], [`ClusterRaft::users`],
//!   …), change the membership, follow changes ([`ClusterRaft::subscribe`]).
//! - [`RaftWire`]: what the node layer provides to carry RPCs between nodes; the receiving
//!   node passes them to [`ClusterRaft::handle_rpc`].
//! - [`choose_voters`]: how many voters (1, 3 or 5) and which.
//!
//! Commands, tables, snapshot format and tuning: `docs/cluster-state.md`; durability:
//! `docs/storage.md` ("Cluster state").

mod batch;
mod db;
mod handle;
mod log_store;
mod network;
mod state_machine;
mod types;
mod wal;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use plexus_identity::PublicKey;

pub use db::{Changes, CLUSTER_DB_FILE};
pub use handle::{ClusterMetrics, ClusterRaft, Role};
pub use log_store::LogStore;
pub use network::{RaftWire, WireError};
pub use state_machine::{
    SnapshotBuilder, StateMachine, MAX_INVITES, MAX_NAME_BYTES, MAX_SERVICES, MAX_TAGS,
};
pub use types::{Command, RaftPeer, Response, TypeConfig};

/// A node's raft id: the first 8 bytes of the BLAKE3 hash of its public key, little endian.
pub fn node_id(key: &PublicKey) -> u64 {
    node_id_of(key.as_bytes())
}

/// [`node_id`] of raw key bytes.
pub(crate) fn node_id_of(key: &[u8; 32]) -> u64 {
    let h = blake3::hash(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// Opens the log store and state machine in `dir/cluster.redb` for node `id` (what
/// [`ClusterRaft::open`] runs on), for openraft's storage test suite and tools. Blocking.
pub fn open_storage(dir: &Path, id: u64) -> Result<(LogStore, StateMachine), RaftError> {
    let shared = db::open_db(dir, id)?;
    Ok((
        LogStore {
            shared: shared.clone(),
        },
        StateMachine { shared },
    ))
}

/// Why a cluster-state operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// The state's file cannot be opened, read or written.
    #[error("cluster state storage: {0}")]
    Storage(String),
    /// Settings openraft refuses.
    #[error("bad raft settings: {0}")]
    Config(String),
    /// No leader could be found before the deadline.
    #[error("{}", no_leader_text(*reachable, *voters))]
    NoLeader {
        /// Voters this node reached lately (itself included if it is one).
        reachable: usize,
        /// Voters in the membership.
        voters: usize,
    },
    /// The operation did not complete in time; a write may or may not be applied.
    #[error("the {what} did not complete within {after:?} ({reachable} of {voters} voters reachable); {outcome}")]
    Timeout {
        /// What timed out (`write`, `read barrier`, …).
        what: String,
        /// How long it waited.
        after: Duration,
        /// Voters reached lately.
        reachable: usize,
        /// Voters in the membership.
        voters: usize,
        /// What is known of the outcome.
        outcome: String,
    },
    /// A write only the leader may make ([`ClusterRaft::write_leading`]), on a node that does
    /// not lead, or stopped leading before the write committed: it was not made.
    #[error("this node does not lead the cluster (any more), and the write was for its leader only; it was not made")]
    NotLeader,
    /// A request forwarded to the leader got no answer: a write may or may not be applied.
    #[error("the {what} was sent to the leader {leader:016x} ({name}) but no answer came back ({why}); it may or may not have been applied")]
    Unconfirmed {
        /// What was forwarded.
        what: String,
        /// The leader's raft id.
        leader: u64,
        /// The leader's name.
        name: String,
        /// The wire's error.
        why: String,
    },
    /// The leader could not do it.
    #[error("the leader {leader:016x} failed the {what}: {why}")]
    Remote {
        /// What was forwarded.
        what: String,
        /// The leader's raft id.
        leader: u64,
        /// Its error.
        why: String,
    },
    /// A membership change raft refused (another change in progress, unknown node, no
    /// voters left…).
    #[error("membership change refused: {0}")]
    Membership(#[from] MembershipError),
    /// This node's raft was shut down.
    #[error("the cluster state on this node is shut down")]
    Shutdown,
    /// raft stopped on an unrecoverable error (storage failure…).
    #[error("raft failed: {0}")]
    Fatal(String),
    /// A malformed message from another node.
    #[error("malformed raft message: {0}")]
    Protocol(String),
}

/// Why raft refused a membership change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Raft refused the change: another change is in progress, or a new voter is not a
    /// learner yet, or the change leaves no voter.
    #[error(transparent)]
    Change(#[from] openraft::error::ChangeMembershipError<u64>),
    /// Raft refused to create the cluster.
    #[error(transparent)]
    Initialize(#[from] openraft::error::InitializeError<u64, RaftPeer>),
    /// The voters asked for are none.
    #[error("a cluster needs at least one voter")]
    NoVoters,
}

impl MembershipError {
    /// Whether another membership change was still in progress (trying again later may work).
    pub fn is_in_progress(&self) -> bool {
        matches!(
            self,
            MembershipError::Change(openraft::error::ChangeMembershipError::InProgress(_))
        )
    }
}

fn no_leader_text(reachable: usize, voters: usize) -> String {
    if voters == 0 {
        "no leader: this node is not part of an initialized cluster yet".to_owned()
    } else if reachable * 2 > voters {
        format!(
            "no leader: the voters have not elected one yet ({reachable} of {voters} reachable)"
        )
    } else {
        format!(
            "no leader: this node cannot reach a majority of voters ({reachable} of {voters} reachable)"
        )
    }
}

/// Raft timing. The defaults aim at fast failover on a LAN: after the leader dies, a new
/// leader commits writes within about 0.5 s, while a follower must hear nothing for
/// 300–400 ms (4 or 5 heartbeats in a row) before it stands for election, and the other
/// voters refuse to depose a leader they heard from within 200 ms (no spurious leader
/// changes under CPU load). Derivation and measurements: `docs/cluster-state.md` ("Tuning").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTuning {
    /// How often the leader sends heartbeats, in ms (openraft sends them on its 1.5×
    /// heartbeat tick), and the deadline of one AppendEntries RPC. Default 50.
    pub heartbeat_ms: u64,
    /// The election timeout is random in `election_min_ms..election_max_ms` (ms), counted
    /// after the leader's lease (`election_max_ms`) ran out. Defaults 100 and 200.
    pub election_min_ms: u64,
    /// See [`RaftTuning::election_min_ms`].
    pub election_max_ms: u64,
    /// Longest wait for a write, a read barrier or a membership change before it fails with
    /// a clear error (no leader, no majority). Default 5 s.
    pub write_timeout: Duration,
    /// Longest wait for a new learner to catch up in [`ClusterRaft::add_learner`]. Default
    /// 60 s.
    pub catch_up_timeout: Duration,
    /// Longest time to send and install a whole snapshot on a follower. Default 30 s.
    pub snapshot_timeout: Duration,
    /// Entries applied between snapshots (after which the log before them is purged, but
    /// `keep_logs` entries are kept for slow followers). Default 5000.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot. Default 1000.
    pub keep_logs: u64,
}

impl Default for RaftTuning {
    fn default() -> RaftTuning {
        RaftTuning {
            heartbeat_ms: 50,
            election_min_ms: 100,
            election_max_ms: 200,
            write_timeout: Duration::from_secs(5),
            catch_up_timeout: Duration::from_secs(60),
            snapshot_timeout: Duration::from_secs(30),
            snapshot_every: 5000,
            keep_logs: 1000,
        }
    }
}

impl RaftTuning {
    fn config(&self) -> Result<openraft::Config, RaftError> {
        let config = openraft::Config {
            cluster_name: "plexus".to_owned(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: u64::try_from(self.snapshot_timeout.as_millis())
                .unwrap_or(u64::MAX),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: self.keep_logs,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))
    }
}

/// How many of a cluster's `members` vote once [`choose_voters`] has chosen: 1 of 1 or 2, 3 of
/// 3 or 4, 5 of 5 or more (0 of none).
pub fn voter_count(members: usize) -> usize {
    match members {
        0 => 0,
        1 | 2 => 1,
        3 | 4 => 3,
        _ => 5,
    }
}

/// Picks the voters: 1 of 1 or 2 nodes, 3 of 3 or 4, 5 of 5 or more. `nodes` are the
/// cluster's members with whether each is alive (healthy enough to vote); `current` the
/// voters now.
///
/// Current voters that are alive stay; then live non-voters join, in id order; if there are
/// not enough live nodes, current voters that are down keep their seats rather than shrink
/// the voter set (which would not make a quorum easier to reach). Members not in `nodes` are
/// never chosen. With no nodes at all, `current` is returned.
pub fn choose_voters(nodes: &[(u64, bool)], current: &BTreeSet<u64>) -> BTreeSet<u64> {
    let known: BTreeSet<u64> = nodes.iter().map(|(id, _)| *id).collect();
    if known.is_empty() {
        return current.clone();
    }
    let target = voter_count(known.len());
    let alive: BTreeSet<u64> = nodes
        .iter()
        .filter(|(_, alive)| *alive)
        .map(|(id, _)| *id)
        .collect();
    let mut out = BTreeSet::new();
    let live_voters = current.iter().filter(|id| alive.contains(id));
    let live_others = alive.iter().filter(|id| !current.contains(id));
    let down_voters = current
        .iter()
        .filter(|id| known.contains(id) && !alive.contains(id));
    for id in live_voters.chain(live_others).chain(down_voters) {
        if out.len() == target {
            break;
        }
        out.insert(*id);
    }
    out
}

#[cfg(test)]
mod tests;
