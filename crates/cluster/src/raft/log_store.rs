//! The raft log: entries in segment files (`wal.rs`), the vote and last purged id in redb's
//! `raft.meta`.
//!
//! Every write that raft needs durable (vote, appended entries, truncation, purge) is on disk
//! (fsynced) before the call returns or, for appends, before the flush callback fires. Appends
//! use group commit: each is written at once without fsync, so readers see it, and a commit on
//! tokio's blocking threads (`Shared::flush_later`) fsyncs everything queued with one
//! `fdatasync` before firing the callbacks, so concurrent writes share an fsync.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader, StorageError,
    Vote,
};

use super::db::{blocking, get_pc, put_pc, sto_err, DbFail, Shared, RAFT_META};
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
            let txn = shared.read()?;
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
            shared.write(durable, |txn| {
                let mut meta = txn.open_table(RAFT_META).map_err(DbFail::from)?;
                put_pc(&mut meta, key, &value)
            })
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
        let payloads = self
            .shared
            .wal
            .read(bounds)
            .map_err(|why| sto_err(ErrorSubject::Logs, ErrorVerb::Read, why))?;
        let mut entries = Vec::with_capacity(payloads.len());
        for p in &payloads {
            let entry =
                decode_entry(p).map_err(|why| sto_err(ErrorSubject::Logs, ErrorVerb::Read, why))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoResult<LogState<TypeConfig>> {
        let purged: Option<LogId<u64>> = self.read_meta("purged", ErrorSubject::Logs).await?;
        let read = |why| sto_err(ErrorSubject::Logs, ErrorVerb::Read, why);
        let last = match self.shared.wal.last().map_err(read)? {
            Some(bytes) => Some(decode_entry(&bytes).map_err(read)?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
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

    // The committed pointer is not saved (openraft's default): writing it on every commit
    // cost a redb transaction per write, and without it a restarted node only waits for the
    // leader to tell it what is committed before applying the entries after its durable
    // applied point.

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
        // A write into the page cache, no fsync: readable at once, durable with the
        // next group commit.
        let res = self
            .shared
            .wal
            .append(&rows)
            .map_err(|why| sto_err(ErrorSubject::Logs, ErrorVerb::Write, why));
        match res {
            Ok(()) => {
                self.shared.flush_later(callback);
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
            shared.wal.truncate(log_id.index)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StoResult<()> {
        // The pointer first (durably): segments a crash leaves behind are skipped on opening.
        self.write_meta("purged", log_id, ErrorSubject::Logs, true)
            .await?;
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            shared.wal.purge(log_id.index)
        })
        .await
    }
}
