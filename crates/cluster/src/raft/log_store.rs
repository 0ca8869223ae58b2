//! The raft log on redb: vote, committed pointer, entries by index, last purged id.
//!
//! Every write that raft needs durable (vote, appended entries, truncation, purge) is a redb
//! transaction committed with immediate durability (fsync) before the call returns or, for
//! appends, before the flush callback fires. The committed pointer is optional in openraft
//! and written without fsync: it becomes durable with the next durable commit, and losing it
//! only means re-applying fewer entries at start-up.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader, StorageError,
    Vote,
};
use redb::ReadableTable;

use super::db::{blocking, get_pc, put_pc, sto_err, DbFail, Shared, LOG, RAFT_META};
use super::types::TypeConfig;

/// The raft log store of one node (its half of `cluster.redb`). Cheap to clone: clones share
/// the database. Built by [`crate::raft::open_storage`]; [`crate::raft::ClusterRaft`] owns one.
#[derive(Clone, Debug)]
pub struct LogStore {
    pub(crate) shared: Arc<Shared>,
}

type StoResult<T> = Result<T, StorageError<u64>>;

fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("a stored log entry does not decode: {e}"))
}

impl LogStore {
    async fn read_meta<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &'static str,
        subject: ErrorSubject<u64>,
    ) -> StoResult<Option<T>> {
        let shared = self.shared.clone();
        blocking(subject, ErrorVerb::Read, move || {
            let txn = shared.db.begin_read().map_err(DbFail::from)?;
            let meta = txn.open_table(RAFT_META).map_err(DbFail::from)?;
            get_pc(&meta, key)
        })
        .await
    }

    /// Writes `key` in `raft.meta`, durably unless `durable` is false.
    async fn write_meta<T: serde::Serialize + Send + 'static>(
        &self,
        key: &'static str,
        value: T,
        subject: ErrorSubject<u64>,
        durable: bool,
    ) -> StoResult<()> {
        let shared = self.shared.clone();
        blocking(subject, ErrorVerb::Write, move || {
            let mut txn = shared.db.begin_write().map_err(DbFail::from)?;
            if !durable {
                txn.set_durability(redb::Durability::None);
            }
            {
                let mut meta = txn.open_table(RAFT_META).map_err(DbFail::from)?;
                put_pc(&mut meta, key, &value)?;
            }
            txn.commit().map_err(DbFail::from)?;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoResult<Vec<Entry<TypeConfig>>> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (range.start_bound().cloned(), range.end_bound().cloned());
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            let txn = shared.db.begin_read().map_err(DbFail::from)?;
            let log = txn.open_table(LOG).map_err(DbFail::from)?;
            let mut out = Vec::new();
            for row in log.range(bounds).map_err(DbFail::from)? {
                let (_, v) = row.map_err(DbFail::from)?;
                out.push(decode_entry(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoResult<LogState<TypeConfig>> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            let txn = shared.db.begin_read().map_err(DbFail::from)?;
            let meta = txn.open_table(RAFT_META).map_err(DbFail::from)?;
            let purged: Option<LogId<u64>> = get_pc(&meta, "purged")?;
            let log = txn.open_table(LOG).map_err(DbFail::from)?;
            let last = match log.last().map_err(DbFail::from)? {
                Some((_, v)) => Some(decode_entry(v.value())?.log_id),
                None => None,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last.or(purged),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StoResult<()> {
        self.write_meta("vote", *vote, ErrorSubject::Vote, true)
            .await
    }

    async fn read_vote(&mut self) -> StoResult<Option<Vote<u64>>> {
        self.read_meta("vote", ErrorSubject::Vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StoResult<()> {
        self.write_meta("committed", committed, ErrorSubject::Store, false)
            .await
    }

    async fn read_committed(&mut self) -> StoResult<Option<LogId<u64>>> {
        Ok(self
            .read_meta::<Option<LogId<u64>>>("committed", ErrorSubject::Store)
            .await?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for e in entries {
            let bytes = postcard::to_allocvec(&e)
                .map_err(|why| sto_err(ErrorSubject::Log(e.log_id), ErrorVerb::Write, why))?;
            rows.push((e.log_id.index, bytes));
        }
        let shared = self.shared.clone();
        let res = blocking(ErrorSubject::Logs, ErrorVerb::Write, move || {
            let txn = shared.db.begin_write().map_err(DbFail::from)?;
            {
                let mut log = txn.open_table(LOG).map_err(DbFail::from)?;
                for (index, bytes) in &rows {
                    log.insert(*index, bytes.as_slice()).map_err(DbFail::from)?;
                }
            }
            // Immediate durability (redb's default): fsynced when commit returns.
            txn.commit().map_err(DbFail::from)?;
            Ok(())
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StoResult<()> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            let txn = shared.db.begin_write().map_err(DbFail::from)?;
            {
                let mut log = txn.open_table(LOG).map_err(DbFail::from)?;
                log.retain_in(log_id.index.., |_, _| false)
                    .map_err(DbFail::from)?;
            }
            txn.commit().map_err(DbFail::from)?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoResult<()> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            let txn = shared.db.begin_write().map_err(DbFail::from)?;
            {
                let mut meta = txn.open_table(RAFT_META).map_err(DbFail::from)?;
                put_pc(&mut meta, "purged", &log_id)?;
                let mut log = txn.open_table(LOG).map_err(DbFail::from)?;
                log.retain_in(..=log_id.index, |_, _| false)
                    .map_err(DbFail::from)?;
            }
            txn.commit().map_err(DbFail::from)?;
            Ok(())
        })
        .await
    }
}
