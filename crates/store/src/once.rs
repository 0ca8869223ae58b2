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
//!
//! Every signed save checks and records, so the records are kept in memory
//! ([`OnceMemory`]: a map by message hash and a set by age) and written to the file once per
//! transaction, as one row holding the records that transaction made or renewed. Rows are
//! rewritten or deleted as their records are forgotten or renewed into a later row, so the
//! rows always hold exactly the live records; the memory is rebuilt from them when it may
//! not match the file (first use, or a transaction that did not finish).

use std::collections::{BTreeSet, HashMap};

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::error::DbResult;
use crate::StoreError;

/// How long (in message time) a store remembers which evaluation of a message saved: the
/// replay window (two minutes back, thirty seconds ahead) plus thirty seconds of clock
/// difference between nodes, with room to spare.
pub const ONCE_RETENTION_MS: u64 = 240_000;

/// Most messages a store remembers; beyond it the oldest are forgotten early (and the floor
/// rises past them), which bounds the memory and the tables under any load.
pub const MAX_ONCE_RECORDS: u64 = 200_000;

/// Bytes of one record in a row: message hash, then message time, dated and evaluation as
/// little-endian u64s.
const RECORD_BYTES: usize = 56;

/// Most records written in one row when a snapshot is restored.
const RESTORE_ROW_RECORDS: usize = 4096;

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
#[derive(Clone, Copy)]
pub struct OnceTables {
    /// Row id → the records (each [`RECORD_BYTES`]) that the transaction writing the row made
    /// or renewed and that are still live there. Row ids grow.
    rows: TableDefinition<'static, u64, &'static [u8]>,
    /// `floor` (messages at or before it are refused) and `latest` (the latest message time
    /// recorded).
    marks: TableDefinition<'static, &'static str, u64>,
    /// Tables of an earlier layout, deleted on [`OnceTables::create`].
    retired: &'static [&'static str],
}

/// A store's once-records in memory: what [`OnceTables::open`] checks and records against.
/// Keep one per database, next to it, and pass it to every transaction that opens the
/// tables; it rebuilds itself from the file when it may not match it.
#[derive(Debug, Default)]
pub struct OnceMemory {
    /// Whether the memory matches the file as the last transaction that opened the tables
    /// left it. False at first, and while a transaction that opened them has not closed
    /// them ([`OpenOnce::close`]).
    in_sync: bool,
    records: HashMap<[u8; 32], Kept>,
    /// (dated, message) of every record: the order they are forgotten in.
    by_age: BTreeSet<(u64, [u8; 32])>,
    floor: Option<u64>,
    latest: Option<u64>,
    /// The id the next written row gets.
    next_row: u64,
}

/// One live record in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kept {
    time_ms: u64,
    dated_ms: u64,
    evaluation: u64,
    /// The row holding it (`next_row` for one made in the open transaction).
    row: u64,
}

/// What [`OpenOnce::check`] found of a message: what [`OpenOnce::record`] then updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The message's dated time, if this evaluation saved before.
    found: Option<u64>,
}

impl OnceTables {
    /// The tables with these names (static, as redb needs), and the names of an earlier
    /// layout's tables to delete.
    pub const fn new(
        rows: &'static str,
        marks: &'static str,
        retired: &'static [&'static str],
    ) -> OnceTables {
        OnceTables {
            rows: TableDefinition::new(rows),
            marks: TableDefinition::new(marks),
            retired,
        }
    }

    /// Creates the tables if missing, and deletes an earlier layout's. Its records are
    /// dropped with the floor raised to the latest time, so a message it knew of is refused
    /// as too old rather than applied twice.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut dropped = false;
        for name in self.retired {
            dropped |= txn
                .delete_table(TableDefinition::<(), ()>::new(name))
                .db()?;
        }
        txn.open_table(self.rows).db()?;
        let mut marks = txn.open_table(self.marks).db()?;
        if dropped {
            let latest = marks.get("latest").db()?.map(|g| g.value());
            if let Some(latest) = latest {
                marks.insert("floor", latest).db()?;
            }
        }
        Ok(())
    }

    /// Opens the tables in `txn` for checks and records against `memory` (rebuilt from the
    /// file first if it may not match it). Call [`OpenOnce::close`] before committing `txn`:
    /// that writes what the checks and records changed.
    pub fn open<'t>(
        &self,
        txn: &'t WriteTransaction,
        memory: &'t mut OnceMemory,
    ) -> Result<OpenOnce<'t>, StoreError> {
        let rows = txn.open_table(self.rows).db()?;
        let marks = txn.open_table(self.marks).db()?;
        if !memory.in_sync {
            *memory = OnceMemory::load(&rows, &marks)?;
        }
        memory.in_sync = false;
        Ok(OpenOnce {
            rows,
            marks,
            marks_at_open: (memory.floor, memory.latest),
            memory,
            fresh: Vec::new(),
            emptied: BTreeSet::new(),
        })
    }

    /// Every record and the floor and latest time: what a snapshot of the store carries.
    pub fn dump(&self, txn: &ReadTransaction) -> Result<OnceState, StoreError> {
        let rows = txn.open_table(self.rows).db()?;
        let marks = txn.open_table(self.marks).db()?;
        let memory = OnceMemory::load(&rows, &marks)?;
        let mut records: Vec<OnceRecord> = memory
            .records
            .iter()
            .map(|(message, kept)| OnceRecord {
                message: *message,
                time_ms: kept.time_ms,
                dated_ms: kept.dated_ms,
                evaluation: kept.evaluation,
            })
            .collect();
        records.sort_by_key(|r| (r.dated_ms, r.message));
        Ok(OnceState {
            records,
            floor: memory.floor,
            latest: memory.latest,
        })
    }
}

impl OnceMemory {
    /// Marks the memory as possibly not matching the file, so the next transaction to open
    /// the tables rebuilds it: call it when a transaction that opened them does not commit.
    pub fn invalidate(&mut self) {
        self.in_sync = false;
    }

    /// The records the tables hold.
    fn load(
        rows: &impl ReadableTable<u64, &'static [u8]>,
        marks: &impl ReadableTable<&'static str, u64>,
    ) -> Result<OnceMemory, StoreError> {
        let mut memory = OnceMemory {
            floor: marks.get("floor").db()?.map(|g| g.value()),
            latest: marks.get("latest").db()?.map(|g| g.value()),
            ..OnceMemory::default()
        };
        for row in rows.iter().db()? {
            let (id, bytes) = row.db()?;
            let id = id.value();
            for (message, mut kept) in decode_row(bytes.value())? {
                kept.row = id;
                if let Some(old) = memory.records.insert(message, kept) {
                    memory.by_age.remove(&(old.dated_ms, message));
                }
                memory.by_age.insert((kept.dated_ms, message));
            }
            memory.next_row = id.saturating_add(1);
        }
        Ok(memory)
    }

    /// Memory for `records` as one restore writes them, in rows of [`RESTORE_ROW_RECORDS`].
    fn restored(state: &OnceState) -> OnceMemory {
        let mut memory = OnceMemory {
            floor: state.floor,
            latest: state.latest,
            ..OnceMemory::default()
        };
        for (i, r) in state.records.iter().enumerate() {
            let kept = Kept {
                time_ms: r.time_ms,
                dated_ms: r.dated_ms,
                evaluation: r.evaluation,
                row: (i / RESTORE_ROW_RECORDS) as u64,
            };
            if let Some(old) = memory.records.insert(r.message, kept) {
                memory.by_age.remove(&(old.dated_ms, r.message));
            }
            memory.by_age.insert((r.dated_ms, r.message));
        }
        memory.next_row = state.records.len().div_ceil(RESTORE_ROW_RECORDS) as u64;
        memory
    }
}

/// Decodes one row's records (their `row` left 0).
fn decode_row(bytes: &[u8]) -> Result<Vec<([u8; 32], Kept)>, StoreError> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(StoreError::Corrupt(format!(
            "a once-record row has {} bytes, not a multiple of {RECORD_BYTES}",
            bytes.len()
        )));
    }
    let u64_at = |chunk: &[u8], at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&chunk[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(bytes
        .chunks_exact(RECORD_BYTES)
        .map(|chunk| {
            let mut message = [0u8; 32];
            message.copy_from_slice(&chunk[..32]);
            let kept = Kept {
                time_ms: u64_at(chunk, 32),
                dated_ms: u64_at(chunk, 40),
                evaluation: u64_at(chunk, 48),
                row: 0,
            };
            (message, kept)
        })
        .collect())
}

/// Appends one record to a row's bytes.
fn encode_record(out: &mut Vec<u8>, message: &[u8; 32], kept: &Kept) {
    out.extend_from_slice(message);
    out.extend_from_slice(&kept.time_ms.to_le_bytes());
    out.extend_from_slice(&kept.dated_ms.to_le_bytes());
    out.extend_from_slice(&kept.evaluation.to_le_bytes());
}

/// A store's once tables open in one write transaction ([`OnceTables::open`]).
pub struct OpenOnce<'t> {
    rows: Table<'t, u64, &'static [u8]>,
    marks: Table<'t, &'static str, u64>,
    memory: &'t mut OnceMemory,
    /// The floor and latest time as the file has them.
    marks_at_open: (Option<u64>, Option<u64>),
    /// Messages made or renewed in this transaction (their row is `memory.next_row`);
    /// may repeat, and may since have been forgotten.
    fresh: Vec<[u8; 32]>,
    /// Earlier rows that lost a record in this transaction: rewritten or deleted on close.
    emptied: BTreeSet<u64>,
}

impl OpenOnce<'_> {
    /// Whether a save with `once` may apply: `Ok(Ok(_))` if this evaluation saved before or
    /// the message is new (pass it on to [`OpenOnce::record`]), `Ok(Err(Replayed))` if
    /// another evaluation of it saved, `Ok(Err(TooOld))` if the message is at or before the
    /// floor. The outer error is a storage failure.
    pub fn check(&self, once: &Once) -> Result<Result<Checked, StoreError>, StoreError> {
        if let Some(kept) = self.memory.records.get(&once.message) {
            return Ok(if kept.evaluation == once.evaluation {
                Ok(Checked {
                    found: Some(kept.dated_ms),
                })
            } else {
                Err(StoreError::Replayed)
            });
        }
        Ok(match self.memory.floor {
            Some(floor) if once.time_ms <= floor => Err(StoreError::TooOld {
                time_ms: once.time_ms,
                floor_ms: floor,
            }),
            _ => Ok(Checked { found: None }),
        })
    }

    /// Records that `once`'s evaluation saved (after [`OpenOnce::check`] allowed it, as
    /// `checked`, and the save applied, in the same transaction), and forgets the records
    /// that fell out of the retention or the count bound, raising the floor past them.
    pub fn record(&mut self, once: &Once, checked: Checked) -> Result<(), StoreError> {
        let memory = &mut *self.memory;
        let latest = memory.latest.map_or(once.time_ms, |l| l.max(once.time_ms));
        memory.latest = Some(latest);
        let row = memory.next_row;
        match checked.found {
            // The evaluation that saved first saves again (a long-running task): its record
            // is dated by its latest save, so it lives as long as the evaluation keeps saving.
            // Its floor, once forgotten, is then at or past the message's own time.
            Some(dated) if dated >= latest => return Ok(()),
            Some(dated) => {
                let Some(kept) = memory.records.get_mut(&once.message) else {
                    return Err(StoreError::Storage(
                        "a once-record checked in this transaction is missing".to_owned(),
                    ));
                };
                memory.by_age.remove(&(dated, once.message));
                memory.by_age.insert((latest, once.message));
                if kept.row != row {
                    self.emptied.insert(kept.row);
                }
                kept.dated_ms = latest;
                kept.row = row;
                self.fresh.push(once.message);
                return Ok(());
            }
            None => {}
        }
        memory.records.insert(
            once.message,
            Kept {
                time_ms: once.time_ms,
                dated_ms: once.time_ms,
                evaluation: once.evaluation,
                row,
            },
        );
        memory.by_age.insert((once.time_ms, once.message));
        self.fresh.push(once.message);
        // The oldest records, while out of the retention or over the count bound.
        let oldest_kept = latest.saturating_sub(ONCE_RETENTION_MS);
        while let Some(&(dated, message)) = memory.by_age.first() {
            if dated >= oldest_kept && memory.records.len() as u64 <= MAX_ONCE_RECORDS {
                break;
            }
            memory.by_age.pop_first();
            if let Some(kept) = memory.records.remove(&message) {
                if kept.row != row {
                    self.emptied.insert(kept.row);
                }
            }
            memory.floor = Some(memory.floor.map_or(dated, |f| f.max(dated)));
        }
        Ok(())
    }

    /// Replaces every record with `state` (installing a snapshot).
    pub fn restore(&mut self, state: &OnceState) -> Result<(), StoreError> {
        self.rows.retain(|_, _| false).db()?;
        *self.memory = OnceMemory::restored(state);
        self.fresh.clear();
        self.emptied.clear();
        let mut bytes = Vec::new();
        for (i, chunk) in state.records.chunks(RESTORE_ROW_RECORDS).enumerate() {
            bytes.clear();
            for r in chunk {
                if self.memory.records.get(&r.message).map(|k| k.row) == Some(i as u64) {
                    let kept = Kept {
                        time_ms: r.time_ms,
                        dated_ms: r.dated_ms,
                        evaluation: r.evaluation,
                        row: i as u64,
                    };
                    encode_record(&mut bytes, &r.message, &kept);
                }
            }
            if !bytes.is_empty() {
                self.rows.insert(i as u64, bytes.as_slice()).db()?;
            }
        }
        // Whatever the file had, write both marks.
        self.marks_at_open = (None, None);
        if state.floor.is_none() {
            self.marks.remove("floor").db()?;
        }
        if state.latest.is_none() {
            self.marks.remove("latest").db()?;
        }
        Ok(())
    }

    /// Writes what this transaction changed: one row with the records it made or renewed,
    /// the rows that lost records rewritten (or deleted when empty), and the marks.
    pub fn close(mut self) -> Result<(), StoreError> {
        let memory = &mut *self.memory;
        let row = memory.next_row;
        let mut bytes = Vec::new();
        self.fresh.sort_unstable();
        self.fresh.dedup();
        for message in &self.fresh {
            if let Some(kept) = memory.records.get(message).filter(|k| k.row == row) {
                encode_record(&mut bytes, message, kept);
            }
        }
        if !bytes.is_empty() {
            self.rows.insert(row, bytes.as_slice()).db()?;
            memory.next_row = row.saturating_add(1);
        }
        for &id in &self.emptied {
            let stored = self.rows.get(id).db()?.map(|g| g.value().to_vec());
            let Some(stored) = stored else { continue };
            bytes.clear();
            for (message, _) in decode_row(&stored)? {
                if let Some(live) = memory.records.get(&message).filter(|k| k.row == id) {
                    encode_record(&mut bytes, &message, live);
                }
            }
            if bytes.is_empty() {
                self.rows.remove(id).db()?;
            } else {
                self.rows.insert(id, bytes.as_slice()).db()?;
            }
        }
        let (floor, latest) = self.marks_at_open;
        if memory.floor != floor {
            if let Some(f) = memory.floor {
                self.marks.insert("floor", f).db()?;
            }
        }
        if memory.latest != latest {
            if let Some(l) = memory.latest {
                self.marks.insert("latest", l).db()?;
            }
        }
        memory.in_sync = true;
        Ok(())
    }
}

impl std::fmt::Debug for OnceTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnceTables")
            .field("rows", &self.rows.to_string())
            .finish()
    }
}

/// A store's once-records as a snapshot carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnceState {
    /// The records: renewed ones by hash, then the others by message time and hash.
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use redb::{Database, ReadableTableMetadata, TableHandle};

    use super::*;

    const TABLES: OnceTables = OnceTables::new("rows", "m", &["old"]);

    /// A write transaction that commits without fsync: these tests do not crash.
    fn begin(db: &Database) -> redb::WriteTransaction {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(redb::Durability::None);
        txn
    }

    /// A database in memory.
    fn db() -> Database {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = begin(&db);
        TABLES.create(&txn).unwrap();
        txn.commit().unwrap();
        db
    }

    /// The rules as `docs/identity.md` 7.1 states them, over a map: a record lives while its
    /// latest save is within the retention of the latest message time; forgetting one raises
    /// the floor to that save's time.
    #[derive(Clone, Default)]
    struct Model {
        records: HashMap<[u8; 32], (u64, u64)>,
        floor: Option<u64>,
        latest: u64,
    }

    impl Model {
        fn save(&mut self, once: &Once) -> Result<(), StoreError> {
            match self.records.get_mut(&once.message) {
                Some((_, evaluation)) if *evaluation != once.evaluation => {
                    return Err(StoreError::Replayed)
                }
                Some((dated, _)) => {
                    // The same evaluation saves again: its record is dated by this save.
                    self.latest = self.latest.max(once.time_ms);
                    *dated = (*dated).max(self.latest);
                    return Ok(());
                }
                None => {}
            }
            if let Some(floor) = self.floor.filter(|&f| once.time_ms <= f) {
                return Err(StoreError::TooOld {
                    time_ms: once.time_ms,
                    floor_ms: floor,
                });
            }
            self.latest = self.latest.max(once.time_ms);
            self.records
                .insert(once.message, (once.time_ms, once.evaluation));
            let oldest_kept = self.latest.saturating_sub(ONCE_RETENTION_MS);
            let floor = &mut self.floor;
            self.records.retain(|_, &mut (dated, _)| {
                let keep = dated >= oldest_kept;
                if !keep {
                    *floor = Some(floor.map_or(dated, |f| f.max(dated)));
                }
                keep
            });
            Ok(())
        }
    }

    /// A save's result, comparable: `None` for success, else (replayed, floor if too old).
    fn outcome(r: Result<(), StoreError>) -> Option<(bool, Option<u64>)> {
        match r {
            Ok(()) => None,
            Err(StoreError::Replayed) => Some((true, None)),
            Err(StoreError::TooOld { floor_ms, .. }) => Some((false, Some(floor_ms))),
            Err(e) => Some((false, Some(u64::MAX))).filter(|_| panic!("unexpected {e}")),
        }
    }

    /// Checks and records `once` in open tables, as a store's save does.
    fn save_in(tables: &mut OpenOnce<'_>, once: &Once) -> Result<(), StoreError> {
        match tables.check(once).unwrap() {
            Ok(checked) => {
                tables.record(once, checked).unwrap();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A save in a transaction of its own, with memory kept from earlier ones.
    fn save(db: &Database, memory: &mut OnceMemory, once: &Once) -> Result<(), StoreError> {
        let txn = begin(db);
        let mut tables = TABLES.open(&txn, memory).unwrap();
        let out = save_in(&mut tables, once);
        tables.close().unwrap();
        txn.commit().unwrap();
        out
    }

    #[test]
    fn a_long_running_evaluation_keeps_its_record_past_the_retention() {
        let db = db();
        let mut memory = OnceMemory::default();
        let task = Once {
            message: [1; 32],
            time_ms: 1_000,
            evaluation: 7,
        };
        save(&db, &mut memory, &task).unwrap();
        // Other messages move time on far past the retention; the task saves now and then.
        for step in 1..=20u64 {
            let other = Once {
                message: [2 + step as u8; 32],
                time_ms: 1_000 + step * 60_000,
                evaluation: 1,
            };
            save(&db, &mut memory, &other).unwrap();
            save(&db, &mut memory, &task).unwrap();
        }
        let replay = Once {
            evaluation: 8,
            ..task
        };
        assert!(matches!(
            save(&db, &mut memory, &replay),
            Err(StoreError::Replayed)
        ));
        // The task stops; once its last save is out of the retention, it is forgotten and
        // its message refused as too old.
        save(
            &db,
            &mut memory,
            &Once {
                message: [99; 32],
                time_ms: 1_000 + 30 * 60_000,
                evaluation: 1,
            },
        )
        .unwrap();
        assert!(matches!(
            save(&db, &mut memory, &replay),
            Err(StoreError::TooOld { .. })
        ));
        assert!(matches!(
            save(&db, &mut memory, &task),
            Err(StoreError::TooOld { .. })
        ));
    }

    #[test]
    fn a_renewed_or_forgotten_record_leaves_no_copy_in_the_file() {
        let db = db();
        let mut memory = OnceMemory::default();
        let once = |message: u8, time_ms: u64| Once {
            message: [message; 32],
            time_ms,
            evaluation: 1,
        };
        // Each save is its own transaction, so its own row.
        save(&db, &mut memory, &once(1, 1_000)).unwrap();
        save(&db, &mut memory, &once(2, 61_000)).unwrap();
        save(&db, &mut memory, &once(1, 1_000)).unwrap(); // renewed: dated 61 s
        let state = TABLES.dump(&db.begin_read().unwrap()).unwrap();
        let dated: Vec<_> = state
            .records
            .iter()
            .map(|r| (r.message[0], r.dated_ms))
            .collect();
        assert_eq!(dated, [(1, 61_000), (2, 61_000)]);
        // Past the retention of both: both forgotten, and the file holds only the new one.
        save(&db, &mut memory, &once(3, 302_000)).unwrap();
        let state = TABLES.dump(&db.begin_read().unwrap()).unwrap();
        let kept: Vec<_> = state.records.iter().map(|r| r.message[0]).collect();
        assert_eq!(kept, [3]);
        assert_eq!(state.floor, Some(61_000));
        let rows = db
            .begin_read()
            .unwrap()
            .open_table(TABLES.rows)
            .unwrap()
            .len()
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn an_earlier_layout_is_dropped_with_the_floor_raised() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("once.redb")).unwrap();
        let txn = begin(&db);
        {
            let mut old = txn
                .open_table(TableDefinition::<&[u8; 32], (u64, u64)>::new("old"))
                .unwrap();
            old.insert(&[1; 32], (5_000, 7)).unwrap();
            let mut marks = txn.open_table(TABLES.marks).unwrap();
            marks.insert("latest", 5_000).unwrap();
        }
        TABLES.create(&txn).unwrap();
        txn.commit().unwrap();
        let mut memory = OnceMemory::default();
        let old = Once {
            message: [1; 32],
            time_ms: 5_000,
            evaluation: 8,
        };
        assert!(matches!(
            save(&db, &mut memory, &old),
            Err(StoreError::TooOld { .. })
        ));
        let txn = db.begin_read().unwrap();
        assert!(txn.list_tables().unwrap().all(|t| t.name() != "old"));
    }

    /// What a property run does next.
    #[derive(Clone, Debug)]
    enum Step {
        /// A save of message k (signed k × 40 s into the run) by evaluation e.
        Save(u8, u64),
        /// Commits the open transaction.
        Commit,
        /// Drops the open transaction without committing it.
        Abort,
        /// Commits, dumps the tables and restores the dump into a fresh store.
        Snapshot,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (0u8..12, 0u64..3).prop_map(|(m, e)| Step::Save(m, e)),
            2 => Just(Step::Commit),
            1 => Just(Step::Abort),
            1 => Just(Step::Snapshot),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Saves of a few messages (each with its own time), by a few evaluations, as time
        /// moves on, several to a transaction, with transactions committed, dropped, and
        /// snapshots restored (as on another node): the tables answer as the rules do, and what they
        /// hold (read afresh from the file) is what the rules keep.
        #[test]
        fn tables_follow_the_rules(steps in prop::collection::vec(step(), 1..200)) {
            let db = self::db();
            let mut memory = OnceMemory::default();
            let mut model = Model::default();
            let mut committed = model.clone();
            let mut txn = begin(&db);
            for step in steps {
                match step {
                    Step::Save(message, evaluation) => {
                        // The run spans more than the retention, and messages come out of
                        // order.
                        let once = Once {
                            message: [message; 32],
                            time_ms: 1_000_000 + u64::from(message) * 40_000,
                            evaluation,
                        };
                        let mut tables = TABLES.open(&txn, &mut memory).unwrap();
                        let out = save_in(&mut tables, &once);
                        tables.close().unwrap();
                        prop_assert_eq!(outcome(out), outcome(model.save(&once)));
                    }
                    Step::Commit => {
                        txn.commit().unwrap();
                        committed = model.clone();
                        txn = begin(&db);
                    }
                    Step::Abort => {
                        drop(txn);
                        memory.invalidate();
                        model = committed.clone();
                        txn = begin(&db);
                    }
                    Step::Snapshot => {
                        txn.commit().unwrap();
                        committed = model.clone();
                        let state = TABLES.dump(&db.begin_read().unwrap()).unwrap();
                        // Restored on another node: a new memory, tables replaced.
                        memory = OnceMemory::default();
                        txn = begin(&db);
                        let mut tables = TABLES.open(&txn, &mut memory).unwrap();
                        tables.restore(&state).unwrap();
                        tables.close().unwrap();
                        txn.commit().unwrap();
                        txn = begin(&db);
                    }
                }
            }
            txn.commit().unwrap();
            let state = TABLES.dump(&db.begin_read().unwrap()).unwrap();
            prop_assert_eq!(state.floor, model.floor);
            let mut kept: Vec<_> = state.records.iter().map(|r| (r.message, r.dated_ms, r.evaluation)).collect();
            kept.sort();
            let mut want: Vec<_> = model.records.iter().map(|(m, &(d, e))| (*m, d, e)).collect();
            want.sort();
            prop_assert_eq!(kept, want);
        }
    }
}
