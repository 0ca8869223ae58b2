//! The process table on the replicated cluster state: a write is acknowledged once a
//! majority of voters committed it; reads are linearizable (a read barrier first), so every
//! node lists the same records.

use std::sync::Arc;

use plexus_cluster::raft::{ClusterRaft, Command, RaftError, Response};
use plexus_store::procs::proc_code;
use plexus_store::{BoxFuture, ProcError, ProcId, ProcRecord, ProcTable, StoreError};
use plexus_units::code;

/// The cluster-wide process table.
pub struct ReplicatedProcs {
    pub(crate) raft: ClusterRaft,
}

impl ReplicatedProcs {
    /// The table over `raft`'s replicated state.
    pub fn new(raft: ClusterRaft) -> ReplicatedProcs {
        ReplicatedProcs { raft }
    }

    /// Proposes `cmd`; a refusal becomes the error the table's rules name, rebuilt from its
    /// code (`fallback` gives the record-specific ones).
    async fn write(
        &self,
        cmd: Command,
        fallback: impl FnOnce(&str) -> Option<ProcError>,
    ) -> Result<(), ProcError> {
        match self.raft.write(cmd).await.map_err(unavailable)? {
            Response::Err { code, message } => {
                Err(fallback(&code).unwrap_or(match code.as_str() {
                    code::LIMIT => ProcError::Limit(message),
                    code::STORAGE => ProcError::Store(StoreError::Storage(message)),
                    _ => ProcError::Invalid(message),
                }))
            }
            _ => Ok(()),
        }
    }
}

fn unavailable(e: RaftError) -> ProcError {
    ProcError::Store(StoreError::Unavailable(Arc::new(e)))
}

/// The refusals a write of `record` may get, as the table names them.
fn record_refusal(record: &ProcRecord, code: &str) -> Option<ProcError> {
    match code {
        proc_code::EXISTS => Some(ProcError::Exists(record.id)),
        proc_code::NAME_TAKEN => Some(ProcError::NameTaken(
            record.name.clone().unwrap_or_default(),
        )),
        code::NOT_FOUND => Some(ProcError::NotFound(record.id)),
        _ => None,
    }
}

impl ProcTable for ReplicatedProcs {
    fn put(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>> {
        Box::pin(async move {
            let record = ProcRecord {
                generation: 0,
                ..record
            };
            // Checked here too, so a bad record never becomes a log entry.
            record.validate()?;
            let cmd = Command::PutProc {
                record: record.encode_checked()?,
            };
            self.write(cmd, |c| record_refusal(&record, c)).await?;
            Ok(record)
        })
    }

    fn update(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>> {
        Box::pin(async move {
            record.validate()?;
            let cmd = Command::UpdateProc {
                record: record.encode_checked()?,
            };
            let expected = record.generation;
            let refused = self
                .write(cmd, |c| {
                    (c == proc_code::CONFLICT)
                        .then_some(ProcError::Conflict {
                            id: record.id,
                            expected,
                            found: expected,
                        })
                        .or_else(|| record_refusal(&record, c))
                })
                .await;
            match refused {
                // The generation the leader found: read after a barrier, so at least as new.
                Err(ProcError::Conflict { id, expected, .. }) => Err(ProcError::Conflict {
                    id,
                    expected,
                    found: self.get(id).await?.map_or(expected, |r| r.generation),
                }),
                Err(e) => Err(e),
                Ok(()) => Ok(ProcRecord {
                    generation: expected.saturating_add(1),
                    ..record
                }),
            }
        })
    }

    fn remove(&self, id: ProcId) -> BoxFuture<'_, Result<(), ProcError>> {
        Box::pin(async move {
            let cmd = Command::RemoveProc { id: id.to_string() };
            self.write(cmd, |_| None).await
        })
    }

    fn get(&self, id: ProcId) -> BoxFuture<'_, Result<Option<ProcRecord>, ProcError>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(unavailable)?;
            self.raft.proc(&id).map_err(unavailable)
        })
    }

    fn get_local(&self, id: ProcId) -> BoxFuture<'_, Result<Option<ProcRecord>, ProcError>> {
        Box::pin(async move { self.raft.proc(&id).map_err(unavailable) })
    }

    fn live_local(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>> {
        Box::pin(async move { self.raft.live_procs().map_err(unavailable) })
    }

    fn has_local(&self, id: ProcId) -> BoxFuture<'_, Result<bool, ProcError>> {
        Box::pin(async move { self.raft.has_proc(&id).map_err(unavailable) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>> {
        Box::pin(async move {
            self.raft.read_barrier().await.map_err(unavailable)?;
            self.raft.procs().map_err(unavailable)
        })
    }
}
