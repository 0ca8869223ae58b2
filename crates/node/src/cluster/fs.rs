//! The file tree's metadata on the replicated cluster state: a change is acknowledged once a
//! majority of voters committed it; reads are linearizable (a read barrier first), so every
//! node sees the same tree.

use std::sync::Arc;

use plexus_cluster::raft::{ClusterRaft, Command, RaftError, Response};
use plexus_fs::{Actor, FsPath};
use plexus_store::fs::{ChunkRow, FsError, FsMeta, FsOp, Stat};
use plexus_store::{BoxFuture, StoreError};

/// The cluster-wide file tree.
pub struct ReplicatedFs {
    raft: ClusterRaft,
}

impl ReplicatedFs {
    /// The tree over `raft`'s replicated state.
    pub fn new(raft: ClusterRaft) -> ReplicatedFs {
        ReplicatedFs { raft }
    }
}

fn unavailable(e: RaftError) -> FsError {
    FsError::Store(StoreError::Unavailable(Arc::new(e)))
}

/// The cluster-state command that applies `op` for `actor` at `now_ms`.
fn command(actor: Actor, now_ms: u64, op: FsOp) -> Command {
    Command::Fs {
        op,
        user: actor.user,
        admin: actor.admin,
        now_ms,
    }
}

/// A change's outcome from the state machine's answer.
fn answered(response: Response) -> Result<(), FsError> {
    match response {
        Response::Err { code, message } => Err(FsError::Refused { code, message }),
        _ => Ok(()),
    }
}

impl FsMeta for ReplicatedFs {
    fn apply(&self, actor: Actor, now_ms: u64, op: FsOp) -> BoxFuture<'_, Result<(), FsError>> {
        Box::pin(async move {
            let written = self.raft.write(command(actor, now_ms, op)).await;
            answered(written.map_err(unavailable)?)
        })
    }

    fn stat(&self, actor: Actor, path: FsPath) -> BoxFuture<'_, Result<Stat, FsError>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(unavailable)?;
            self.raft.fs_stat(&actor, &path)
        })
    }

    fn stat_here(&self, actor: Actor, path: FsPath) -> BoxFuture<'_, Result<Stat, FsError>> {
        Box::pin(async move { self.raft.fs_stat(&actor, &path) })
    }

    fn list(
        &self,
        actor: Actor,
        path: FsPath,
    ) -> BoxFuture<'_, Result<Vec<(String, Stat)>, FsError>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(unavailable)?;
            self.raft.fs_list(&actor, &path)
        })
    }

    fn chunk_rows_of(
        &self,
        hashes: Vec<[u8; 32]>,
    ) -> BoxFuture<'_, Result<Vec<Option<ChunkRow>>, FsError>> {
        Box::pin(async move { self.raft.fs_chunk_rows_of(&hashes) })
    }

    fn chunk_rows(
        &self,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> BoxFuture<'_, Result<plexus_store::fs::ChunkPage, FsError>> {
        Box::pin(async move { self.raft.fs_chunk_rows(after, max) })
    }

    fn leads(&self) -> bool {
        self.raft.leader() == Some(self.raft.id())
    }

    fn apply_leading(
        &self,
        actor: Actor,
        now_ms: u64,
        op: FsOp,
    ) -> BoxFuture<'_, Result<(), FsError>> {
        Box::pin(async move {
            let written = self.raft.write_leading(command(actor, now_ms, op)).await;
            answered(written.map_err(unavailable)?)
        })
    }
}
