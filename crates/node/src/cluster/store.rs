//! `io.store` on the replicated cluster state: a save is acknowledged once a majority of
//! voters committed it; loads are linearizable.

use std::sync::Arc;

use plexus_cluster::raft::{ClusterRaft, Command, RaftError, Response};
use plexus_kernel::{code, Error};
use plexus_store::{BoxFuture, Caller, SaveBy, StoreError, UnitStore};
use plexus_units::{Path, Unit};

/// Largest encoded value one save may carry in a cluster (it travels in one raft entry).
pub const MAX_CLUSTER_SAVE: usize = 8 << 20;

/// The cluster-wide unit store.
pub struct ReplicatedStore {
    pub(crate) raft: ClusterRaft,
}

fn segments(path: &Path) -> Vec<String> {
    path.segments().iter().map(|s| s.to_string()).collect()
}

/// A raft failure as a kernel error.
pub fn raft_error(e: RaftError) -> Error {
    Error::new(code::NO_QUORUM, e.to_string())
}

fn unavailable(e: RaftError) -> StoreError {
    StoreError::Unavailable(Arc::new(e))
}

/// The leader's refusal of a save (a store error it turned into its code and message) as a
/// store error again.
fn refusal(code: &str, message: String, path: &Path) -> StoreError {
    match code {
        code::LIMIT => StoreError::Limit(message),
        code::NOT_FOUND => StoreError::NotFound(path.clone()),
        code::STORAGE => StoreError::Storage(message),
        code::REPLAYED => StoreError::Replayed,
        code::DENIED => StoreError::Denied(path.clone()),
        _ => StoreError::BadArgument(message),
    }
}

impl UnitStore for ReplicatedStore {
    fn load<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<Unit, StoreError>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(unavailable)?;
            let segs = path.map(segments);
            let bytes = self
                .raft
                .load_as(segs.as_deref(), caller)
                .map_err(unavailable)?;
            match (bytes, path) {
                (Some(b), _) => plexus_units::decode_bytes_with(
                    bytes::Bytes::from(b),
                    &plexus_store::STORED_LIMITS,
                )
                .map_err(|e| StoreError::Corrupt(format!("damaged store entry: {e}"))),
                (None, Some(p)) => Err(StoreError::NotFound(p.clone())),
                (None, None) => Ok(Unit::Map(plexus_units::Map::new())),
            }
        })
    }

    fn save<'a>(
        &'a self,
        path: &'a Path,
        value: Unit,
        by: SaveBy,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let value = plexus_units::encode(&value);
            if value.len() > MAX_CLUSTER_SAVE {
                return Err(StoreError::Limit(format!(
                    "a cluster save carries at most {MAX_CLUSTER_SAVE} encoded bytes; this one has {}",
                    value.len()
                )));
            }
            let cmd = Command::SaveBy {
                path: segments(path),
                value,
                user: by.caller.user,
                admin: by.caller.admin,
                private: by.private,
                once: by.once.map(|o| (o.message, o.time_ms, o.evaluation)),
            };
            match self.raft.write(cmd).await.map_err(unavailable)? {
                Response::Err { code, message } => Err(refusal(&code, message, path)),
                _ => Ok(()),
            }
        })
    }

    fn size<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let u = self.load(path, caller).await?;
            Ok(plexus_store::size(&u))
        })
    }
}
