//! Saves that take effect once per signed message, across restarts and nodes.
//!
//! A node's replay guard refuses a signed message it has already accepted, but it forgets on
//! restart and other nodes never saw it. So every save made while evaluating a signed message
//! carries a [`Once`]: the message's hash and time, and the id of the evaluation (chosen at
//! random by the node that verified the message). The store remembers, in the same
//! transaction as the save, which evaluation of each message saved first; a save from another
//! evaluation of the same message is a replay and is refused. Records are kept for
//! [`ONCE_RETENTION_MS`] of message time, longer than any node's replay window accepts a
//! message; older ones are forgotten and the store's floor rises past them, so a message at or
//! before the floor is refused as too old to tell. The rules: `docs/identity.md`.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::error::DbResult;
use crate::StoreError;

/// How long (in message time) a store remembers which evaluation of a message saved: the
/// replay window (two minutes back, thirty seconds ahead) plus thirty seconds of clock
/// difference between nodes, with room to spare.
pub const ONCE_RETENTION_MS: u64 = 240_000;

/// Most messages a store remembers; beyond it the oldest are forgotten early (and the floor
/// rises past them), which bounds the tables under any load.
pub const MAX_ONCE_RECORDS: u64 = 200_000;

/// Which evaluation of which signed message a save belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Once {
    /// The signed root message's hash.
    pub message: [u8; 32],
    /// Its time, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The evaluation's id.
    pub evaluation: u64,
}

/// The tables (in a redb file) where a store keeps its once-records. A node's database and
/// the cluster's state machine each have their own, named by the owner.
///
/// Both record tables are keyed by time first: message times arrive roughly in order, so a
/// new record lands on the B-tree's right edge and a commit copies a page or two, where a
/// table keyed by hash alone would dirty a random leaf per save.
#[derive(Clone, Copy)]
pub struct OnceTables {
    /// (message time, message hash) → (dated, evaluation), where `dated` is the time the
    /// record is kept by (the message's, or its evaluation's latest save).
    applied: TableDefinition<'static, (u64, &'static [u8; 32]), (u64, u64)>,
    /// (dated, message hash) → message time: the records by age.
    by_time: TableDefinition<'static, (u64, &'static [u8; 32]), u64>,
    /// `floor` (messages at or before it are refused) and `latest` (the latest message time
    /// recorded).
    marks: TableDefinition<'static, &'static str, u64>,
    /// Tables of an earlier layout (keyed by hash alone), deleted on [`OnceTables::create`].
    retired: &'static [&'static str],
}

impl OnceTables {
    /// The tables with these names (static, as redb needs), and the names of an earlier
    /// layout's tables to delete.
    pub const fn new(
        applied: &'static str,
        by_time: &'static str,
        marks: &'static str,
        retired: &'static [&'static str],
    ) -> OnceTables {
        OnceTables {
            applied: TableDefinition::new(applied),
            by_time: TableDefinition::new(by_time),
            marks: TableDefinition::new(marks),
            retired,
        }
    }

    /// Creates the tables if missing, and deletes an earlier layout's. Its records are
    /// dropped with the floor kept, so a message it knew of is refused as too old rather than
    /// applied twice.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut dropped = false;
        for name in self.retired {
            dropped |= txn
                .delete_table(TableDefinition::<(), ()>::new(name))
                .db()?;
        }
        if dropped {
            let mut marks = txn.open_table(self.marks).db()?;
            let latest = marks.get("latest").db()?.map(|g| g.value());
            if let Some(latest) = latest {
                marks.insert("floor", latest).db()?;
            }
        }
        txn.open_table(self.applied).db()?;
        txn.open_table(self.by_time).db()?;
        txn.open_table(self.marks).db()?;
        Ok(())
    }

    /// Whether a save with `once` may apply: `Ok(Ok(()))` if this evaluation saved before or
    /// the message is new, `Ok(Err(Replayed))` if another evaluation of it saved, or the
    /// message is at or before the floor. The outer error is a storage failure.
    pub fn check(
        &self,
        txn: &WriteTransaction,
        once: &Once,
    ) -> Result<Result<(), StoreError>, StoreError> {
        let applied = txn.open_table(self.applied).db()?;
        if let Some(found) = applied.get((once.time_ms, &once.message)).db()? {
            let (_, evaluation) = found.value();
            return Ok(if evaluation == once.evaluation {
                Ok(())
            } else {
                Err(StoreError::Replayed)
            });
        }
        let marks = txn.open_table(self.marks).db()?;
        let floor = marks.get("floor").db()?.map(|g| g.value());
        Ok(match floor {
            Some(floor) if once.time_ms <= floor => Err(StoreError::TooOld {
                time_ms: once.time_ms,
                floor_ms: floor,
            }),
            _ => Ok(()),
        })
    }

    /// Records that `once`'s evaluation saved (after [`OnceTables::check`] allowed it and
    /// the save applied), and forgets the records that fell out of the retention or the
    /// count bound, raising the floor past them.
    pub fn record(&self, txn: &WriteTransaction, once: &Once) -> Result<(), StoreError> {
        let mut applied = txn.open_table(self.applied).db()?;
        let mut by_time = txn.open_table(self.by_time).db()?;
        let mut marks = txn.open_table(self.marks).db()?;
        let latest = marks
            .get("latest")
            .db()?
            .map_or(0, |g| g.value())
            .max(once.time_ms);
        marks.insert("latest", latest).db()?;
        let key = (once.time_ms, &once.message);
        let found = applied.get(key).db()?.map(|g| g.value().0);
        if let Some(dated) = found {
            // The evaluation that saved first saves again (a long-running task): its record
            // is dated by its latest save, so it lives as long as the evaluation keeps saving.
            // Its floor, once forgotten, is then at or past the message's own time.
            if dated < latest {
                by_time.remove((dated, &once.message)).db()?;
                by_time.insert((latest, &once.message), once.time_ms).db()?;
                applied.insert(key, (latest, once.evaluation)).db()?;
            }
            return Ok(());
        }
        applied.insert(key, (once.time_ms, once.evaluation)).db()?;
        by_time
            .insert((once.time_ms, &once.message), once.time_ms)
            .db()?;
        let mut floor = marks.get("floor").db()?.map(|g| g.value());
        let oldest_kept = latest.saturating_sub(ONCE_RETENTION_MS);
        loop {
            let Some((time, message, message_time)) = by_time
                .first()
                .db()?
                .map(|(k, v)| (k.value().0, *k.value().1, v.value()))
            else {
                break;
            };
            if time >= oldest_kept && applied.len().db()? <= MAX_ONCE_RECORDS {
                break;
            }
            by_time.remove((time, &message)).db()?;
            applied.remove((message_time, &message)).db()?;
            floor = Some(floor.map_or(time, |f| f.max(time)));
        }
        if let Some(floor) = floor {
            marks.insert("floor", floor).db()?;
        }
        Ok(())
    }

    /// Every record (message, time, evaluation) and the floor and latest time: what a
    /// snapshot of the store carries.
    pub fn dump(&self, txn: &ReadTransaction) -> Result<OnceState, StoreError> {
        let applied = txn.open_table(self.applied).db()?;
        let marks = txn.open_table(self.marks).db()?;
        let mut records = Vec::new();
        for row in applied.iter().db()? {
            let (k, v) = row.db()?;
            let (message_time, message) = k.value();
            let (dated, evaluation) = v.value();
            records.push(OnceRecord {
                message: *message,
                time_ms: message_time,
                dated_ms: dated,
                evaluation,
            });
        }
        Ok(OnceState {
            records,
            floor: marks.get("floor").db()?.map(|g| g.value()),
            latest: marks.get("latest").db()?.map(|g| g.value()),
        })
    }

    /// Replaces every record with `state` (installing a snapshot).
    pub fn restore(&self, txn: &WriteTransaction, state: &OnceState) -> Result<(), StoreError> {
        txn.delete_table(self.applied).db()?;
        txn.delete_table(self.by_time).db()?;
        txn.delete_table(self.marks).db()?;
        let mut applied = txn.open_table(self.applied).db()?;
        let mut by_time = txn.open_table(self.by_time).db()?;
        let mut marks = txn.open_table(self.marks).db()?;
        for r in &state.records {
            applied
                .insert((r.time_ms, &r.message), (r.dated_ms, r.evaluation))
                .db()?;
            by_time.insert((r.dated_ms, &r.message), r.time_ms).db()?;
        }
        if let Some(floor) = state.floor {
            marks.insert("floor", floor).db()?;
        }
        if let Some(latest) = state.latest {
            marks.insert("latest", latest).db()?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for OnceTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceTables")
            .field("applied", &self.applied.to_string())
            .finish()
    }
}

/// A store's once-records as a snapshot carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnceState {
    /// The records, by message time and hash.
    pub records: Vec<OnceRecord>,
    /// Messages at or before this time are refused.
    pub floor: Option<u64>,
    /// The latest message time recorded.
    pub latest: Option<u64>,
}

/// One message's once-record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnceRecord {
    /// The signed message's hash.
    pub message: [u8; 32],
    /// Its time, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The time the record is kept by: the message's, or its evaluation's latest save.
    pub dated_ms: u64,
    /// The evaluation that saved.
    pub evaluation: u64,
}
