//! `io.store` on the replicated cluster state: a save is acknowledged once a majority of
//! voters committed it; loads are linearizable.

use plexus_cluster::raft::{ClusterRaft, RaftError, Response};
use plexus_kernel::{code, BoxFuture, Error};
use plexus_store::UnitStore;
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

fn not_found(path: &Path) -> Error {
    Error::new(
        code::NOT_FOUND,
        format!("nothing is stored at {}", Unit::Ref(path.clone())),
    )
    .with("path", Unit::Ref(path.clone()))
}

impl UnitStore for ReplicatedStore {
    fn load<'a>(&'a self, path: Option<&'a Path>) -> BoxFuture<'a, Result<Unit, Error>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(raft_error)?;
            let segs = path.map(segments);
            let bytes = self.raft.load(segs.as_deref()).map_err(raft_error)?;
            match (bytes, path) {
                (Some(b), _) => plexus_units::decode_bytes_with(
                    bytes::Bytes::from(b),
                    &plexus_store::STORED_LIMITS,
                )
                .map_err(|e| Error::new(code::STORAGE, format!("damaged store entry: {e}"))),
                (None, Some(p)) => Err(not_found(p)),
                (None, None) => Ok(Unit::Map(plexus_units::Map::new())),
            }
        })
    }

    fn save<'a>(&'a self, path: &'a Path, value: Unit) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let value = plexus_units::encode(&value);
            if value.len() > MAX_CLUSTER_SAVE {
                return Err(Error::new(
                    code::LIMIT,
                    format!(
                        "a cluster save carries at most {MAX_CLUSTER_SAVE} encoded bytes; this one has {}",
                        value.len()
                    ),
                ));
            }
            let cmd = plexus_cluster::raft::Command::Save {
                path: segments(path),
                value,
            };
            match self.raft.write(cmd).await.map_err(raft_error)? {
                Response::Err { code, message } => Err(Error::new(&code, message)),
                _ => Ok(()),
            }
        })
    }

    fn size<'a>(&'a self, path: Option<&'a Path>) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let u = self.load(path).await?;
            Ok(plexus_store::size(&u))
        })
    }
}
