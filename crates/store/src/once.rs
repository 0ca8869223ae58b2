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
/// Records are keyed by message time first: message times arrive roughly in order, so a new
/// record is appended at the B-tree's right edge (in place, within a transaction) and the
/// oldest are forgotten from its left edge, where a table keyed by hash would copy a random
/// leaf per save. A record whose evaluation keeps saving (a long-running task) is kept by
/// its latest save rather than its message's time; when such a record reaches the left edge
/// still wanted, it moves to the small `renewed` tables, so the common path touches one
/// table.
#[derive(Clone, Copy)]
pub struct OnceTables {
    /// (message time, message hash) → (dated, evaluation), where `dated` is the time the
    /// record is kept by (the message's, or its evaluation's latest save).
    applied: TableDefinition<'static, (u64, &'static [u8; 32]), (u64, u64)>,
    /// Message hash → (message time, dated, evaluation): records older than the retention
    /// whose evaluation saved since.
    renewed: TableDefinition<'static, &'static [u8; 32], (u64, u64, u64)>,
    /// (dated, message hash) → (): the renewed records by age.
    renewed_by_age: TableDefinition<'static, (u64, &'static [u8; 32]), ()>,
    /// `floor` (messages at or before it are refused) and `latest` (the latest message time
    /// recorded).
    marks: TableDefinition<'static, &'static str, u64>,
    /// Tables of an earlier layout, deleted on [`OnceTables::create`].
    retired: &'static [&'static str],
}

/// What [`OnceTables::check`] found of a message: what [`OnceTables::record`] then updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The message's record, if this evaluation saved before: (dated, whether it is among
    /// the renewed records).
    found: Option<(u64, bool)>,
}

impl OnceTables {
    /// The tables with these names (static, as redb needs; `renewed` and `renewed.by_age`
    /// hold the renewed records), and the names of an earlier layout's tables to delete.
    pub const fn new(
        applied: &'static str,
        renewed: &'static str,
        renewed_by_age: &'static str,
        marks: &'static str,
        retired: &'static [&'static str],
    ) -> OnceTables {
        OnceTables {
            applied: TableDefinition::new(applied),
            renewed: TableDefinition::new(renewed),
            renewed_by_age: TableDefinition::new(renewed_by_age),
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
        txn.open_table(self.applied).db()?;
        txn.open_table(self.renewed).db()?;
        txn.open_table(self.renewed_by_age).db()?;
        let mut marks = txn.open_table(self.marks).db()?;
        if dropped {
            let latest = marks.get("latest").db()?.map(|g| g.value());
            if let Some(latest) = latest {
                marks.insert("floor", latest).db()?;
            }
        }
        Ok(())
    }

    /// Whether a save with `once` may apply: `Ok(Ok(_))` if this evaluation saved before or
    /// the message is new (pass it on to [`OnceTables::record`]), `Ok(Err(Replayed))` if
    /// another evaluation of it saved, `Ok(Err(TooOld))` if the message is at or before the
    /// floor. The outer error is a storage failure.
    pub fn check(
        &self,
        txn: &WriteTransaction,
        once: &Once,
    ) -> Result<Result<Checked, StoreError>, StoreError> {
        let applied = txn.open_table(self.applied).db()?;
        let mut found = applied
            .get((once.time_ms, &once.message))
            .db()?
            .map(|g| (g.value().0, g.value().1, false));
        if found.is_none() {
            let renewed = txn.open_table(self.renewed).db()?;
            if !renewed.is_empty().db()? {
                found = renewed
                    .get(&once.message)
                    .db()?
                    .map(|g| (g.value().1, g.value().2, true));
            }
        }
        if let Some((dated, evaluation, renewed)) = found {
            return Ok(if evaluation == once.evaluation {
                Ok(Checked {
                    found: Some((dated, renewed)),
                })
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
            _ => Ok(Checked { found: None }),
        })
    }

    /// Records that `once`'s evaluation saved (after [`OnceTables::check`] allowed it, as
    /// `checked`, and the save applied, in the same transaction), and forgets the records
    /// that fell out of the retention or the count bound, raising the floor past them.
    pub fn record(
        &self,
        txn: &WriteTransaction,
        once: &Once,
        checked: Checked,
    ) -> Result<(), StoreError> {
        let mut marks = txn.open_table(self.marks).db()?;
        let known = marks.get("latest").db()?.map(|g| g.value());
        let latest = known.map_or(once.time_ms, |l| l.max(once.time_ms));
        if known != Some(latest) {
            marks.insert("latest", latest).db()?;
        }
        let mut applied = txn.open_table(self.applied).db()?;
        match checked.found {
            // The evaluation that saved first saves again (a long-running task): its record
            // is dated by its latest save, so it lives as long as the evaluation keeps saving.
            // Its floor, once forgotten, is then at or past the message's own time.
            Some((dated, _)) if dated >= latest => return Ok(()),
            Some((_, false)) => {
                applied
                    .insert((once.time_ms, &once.message), (latest, once.evaluation))
                    .db()?;
                return Ok(());
            }
            Some((dated, true)) => {
                let mut renewed = txn.open_table(self.renewed).db()?;
                let mut by_age = txn.open_table(self.renewed_by_age).db()?;
                by_age.remove((dated, &once.message)).db()?;
                by_age.insert((latest, &once.message), ()).db()?;
                renewed
                    .insert(&once.message, (once.time_ms, latest, once.evaluation))
                    .db()?;
                return Ok(());
            }
            None => {}
        }
        applied
            .insert(
                (once.time_ms, &once.message),
                (once.time_ms, once.evaluation),
            )
            .db()?;
        let oldest_kept = latest.saturating_sub(ONCE_RETENTION_MS);
        let known_floor = marks.get("floor").db()?.map(|g| g.value());
        let mut floor = known_floor;
        let mut renewed = txn.open_table(self.renewed).db()?;
        let mut by_age = txn.open_table(self.renewed_by_age).db()?;
        let mut count = applied.len().db()? + renewed.len().db()?;
        // The oldest messages, from the left edge; a wanted one moves to the renewed tables.
        loop {
            let Some(((time, message), (dated, evaluation))) = applied
                .first()
                .db()?
                .map(|(k, v)| ((k.value().0, *k.value().1), v.value()))
            else {
                break;
            };
            if time >= oldest_kept && count <= MAX_ONCE_RECORDS {
                break;
            }
            applied.remove((time, &message)).db()?;
            if dated >= oldest_kept && count <= MAX_ONCE_RECORDS {
                renewed.insert(&message, (time, dated, evaluation)).db()?;
                by_age.insert((dated, &message), ()).db()?;
            } else {
                count -= 1;
                floor = Some(floor.map_or(dated, |f| f.max(dated)));
            }
        }
        // The renewed records whose evaluation stopped saving.
        loop {
            let Some((dated, message)) = by_age
                .first()
                .db()?
                .map(|(k, _)| (k.value().0, *k.value().1))
            else {
                break;
            };
            if dated >= oldest_kept && count <= MAX_ONCE_RECORDS {
                break;
            }
            by_age.remove((dated, &message)).db()?;
            renewed.remove(&message).db()?;
            count -= 1;
            floor = Some(floor.map_or(dated, |f| f.max(dated)));
        }
        if floor != known_floor {
            if let Some(floor) = floor {
                marks.insert("floor", floor).db()?;
            }
        }
        Ok(())
    }

    /// Every record and the floor and latest time: what a snapshot of the store carries.
    pub fn dump(&self, txn: &ReadTransaction) -> Result<OnceState, StoreError> {
        let applied = txn.open_table(self.applied).db()?;
        let renewed = txn.open_table(self.renewed).db()?;
        let marks = txn.open_table(self.marks).db()?;
        let mut records = Vec::new();
        for row in renewed.iter().db()? {
            let (k, v) = row.db()?;
            let (time_ms, dated_ms, evaluation) = v.value();
            records.push(OnceRecord {
                message: *k.value(),
                time_ms,
                dated_ms,
                evaluation,
            });
        }
        for row in applied.iter().db()? {
            let (k, v) = row.db()?;
            let (time_ms, message) = k.value();
            let (dated_ms, evaluation) = v.value();
            records.push(OnceRecord {
                message: *message,
                time_ms,
                dated_ms,
                evaluation,
            });
        }
        Ok(OnceState {
            records,
            floor: marks.get("floor").db()?.map(|g| g.value()),
            latest: marks.get("latest").db()?.map(|g| g.value()),
        })
    }

    /// Replaces every record with `state` (installing a snapshot). Every record goes to the
    /// main table; the next record made moves the renewed ones back.
    pub fn restore(&self, txn: &WriteTransaction, state: &OnceState) -> Result<(), StoreError> {
        txn.delete_table(self.applied).db()?;
        txn.delete_table(self.renewed).db()?;
        txn.delete_table(self.renewed_by_age).db()?;
        txn.delete_table(self.marks).db()?;
        txn.open_table(self.renewed).db()?;
        txn.open_table(self.renewed_by_age).db()?;
        let mut applied = txn.open_table(self.applied).db()?;
        let mut marks = txn.open_table(self.marks).db()?;
        for r in &state.records {
            applied
                .insert((r.time_ms, &r.message), (r.dated_ms, r.evaluation))
                .db()?;
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
    use redb::{Database, TableHandle};

    use super::*;

    const TABLES: OnceTables = OnceTables::new("a", "r", "r.age", "m", &["old"]);

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("once.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        TABLES.create(&txn).unwrap();
        txn.commit().unwrap();
        (dir, db)
    }

    /// The rules as `docs/identity.md` 7.1 states them, over a map: a record lives while its
    /// latest save is within the retention of the latest message time; forgetting one raises
    /// the floor to that save's time.
    #[derive(Default)]
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

    fn save(db: &Database, once: &Once) -> Result<(), StoreError> {
        let txn = db.begin_write().unwrap();
        let out = match TABLES.check(&txn, once).unwrap() {
            Ok(checked) => {
                TABLES.record(&txn, once, checked).unwrap();
                Ok(())
            }
            Err(e) => Err(e),
        };
        txn.commit().unwrap();
        out
    }

    #[test]
    fn a_long_running_evaluation_keeps_its_record_past_the_retention() {
        let (_dir, db) = db();
        let task = Once {
            message: [1; 32],
            time_ms: 1_000,
            evaluation: 7,
        };
        save(&db, &task).unwrap();
        // Other messages move time on far past the retention; the task saves now and then.
        for step in 1..=20u64 {
            let other = Once {
                message: [2 + step as u8; 32],
                time_ms: 1_000 + step * 60_000,
                evaluation: 1,
            };
            save(&db, &other).unwrap();
            save(&db, &task).unwrap();
        }
        let replay = Once {
            evaluation: 8,
            ..task
        };
        assert!(matches!(save(&db, &replay), Err(StoreError::Replayed)));
        // The task stops; once its last save is out of the retention, it is forgotten and
        // its message refused as too old.
        save(
            &db,
            &Once {
                message: [99; 32],
                time_ms: 1_000 + 30 * 60_000,
                evaluation: 1,
            },
        )
        .unwrap();
        assert!(matches!(save(&db, &replay), Err(StoreError::TooOld { .. })));
        assert!(matches!(save(&db, &task), Err(StoreError::TooOld { .. })));
    }

    #[test]
    fn an_earlier_layout_is_dropped_with_the_floor_raised() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("once.redb")).unwrap();
        let txn = db.begin_write().unwrap();
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
        let old = Once {
            message: [1; 32],
            time_ms: 5_000,
            evaluation: 8,
        };
        assert!(matches!(save(&db, &old), Err(StoreError::TooOld { .. })));
        let txn = db.begin_read().unwrap();
        assert!(txn.list_tables().unwrap().all(|t| t.name() != "old"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Saves of a few messages (each with its own time), by a few evaluations, as time
        /// moves on: the tables answer as the rules do, and survive a snapshot.
        #[test]
        fn tables_follow_the_rules(
            steps in prop::collection::vec((0u8..12, 0u64..3), 1..150),
        ) {
            let (_dir, db) = db();
            let mut model = Model::default();
            for (message, evaluation) in steps {
                // A message's time is fixed: message k was signed k × 40 s into the run, so
                // the run spans more than the retention and messages come out of order.
                let once = Once {
                    message: [message; 32],
                    time_ms: 1_000_000 + u64::from(message) * 40_000,
                    evaluation,
                };
                prop_assert_eq!(outcome(save(&db, &once)), outcome(model.save(&once)));
            }
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
