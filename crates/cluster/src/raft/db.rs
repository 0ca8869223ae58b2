//! The cluster state's redb file: table definitions, opening, and the plumbing shared by the
//! log store and the state machine. Layout and durability: `docs/cluster-state.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use openraft::storage::LogFlushed;

use super::types::TypeConfig;
use super::wal::{Wal, WAL_DIR};
use super::RaftError;

/// The database file's name inside a node's data directory.
pub const CLUSTER_DB_FILE: &str = "cluster.redb";

/// The layout version written in `raft.meta` under `format`: 2 since the log moved to its own
/// segment files (`wal.rs`); a format-1 file's log is moved there when it is opened.
pub(crate) const FORMAT: u32 = 2;

/// Format 1's raft log entries: index → postcard `Entry`. Empty in format 2.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft.log");
/// Log store metadata: `format`, `node`, `vote`, `purged` → postcard (format 1 also kept
/// `committed`, no longer read).
pub(crate) const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft.meta");
/// State machine metadata: `applied` (last applied log id), `membership` → postcard.
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm.meta");
/// io.store's entries: encoded top-level key → (sequence number, encoded value).
pub(crate) const UNITS: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("sm.units");
/// io.store's order: sequence number → encoded top-level key.
pub(crate) const UNIT_ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("sm.units.order");
/// Users: name → public key.
pub(crate) const USERS: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("sm.users");
/// Users by key: public key → name.
pub(crate) const USER_KEYS: TableDefinition<&[u8; 32], &str> =
    TableDefinition::new("sm.users.by_key");
/// Services: node id → postcard `Vec<String>`.
pub(crate) const SERVICES: TableDefinition<u64, &[u8]> = TableDefinition::new("sm.services");
/// Node tags: node id → postcard `BTreeMap<String, String>`.
pub(crate) const NODE_META: TableDefinition<u64, &[u8]> = TableDefinition::new("sm.node_meta");
/// Invites: id → expiry (ms since the epoch).
pub(crate) const INVITES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("sm.invites");
/// User invites (sys.usr's one-time registrations): id → expiry (ms since the epoch).
pub(crate) const USER_INVITES: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("sm.user_invites");
/// Revoked node keys.
pub(crate) const REVOKED: TableDefinition<&[u8; 32], ()> = TableDefinition::new("sm.revoked");
/// The current snapshot: `meta` → postcard `SnapshotMeta`, `data` → its bytes.
/// Owners of io.store's entries: encoded key → `plexus_store::Owner::to_bytes`.
pub(crate) const UNIT_OWNERS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("sm.units.owners");
/// Which evaluation of each signed message saved (`plexus_store::OnceTables`).
pub(crate) const ONCE: plexus_store::OnceTables = plexus_store::OnceTables::new(
    "sm.once.rows",
    "sm.once.marks",
    &[
        "sm.once",
        "sm.once.by_time",
        "sm.once.by_age",
        "sm.once.by_message",
        "sm.once.renewed",
        "sm.once.renewed.by_age",
    ],
);
/// The process table (`plexus_store::ProcTables`).
pub(crate) const PROCS: plexus_store::ProcTables = plexus_store::ProcTables::new(
    "sm.procs",
    "sm.procs.ended",
    "sm.procs.by_name",
    "sm.procs.live",
);
/// The cluster file system's metadata (`plexus_store::fs::FsTables`).
pub(crate) const FS: plexus_store::fs::FsTables = plexus_store::fs::FsTables::new(
    "sm.fs.inodes",
    "sm.fs.entries",
    "sm.fs.chunks",
    "sm.fs.counters",
);
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("sm.snapshot");

/// Which parts of the cluster state changed last, as the log index of the entry that
/// changed them (0: not since this node opened its state), plus the leader and term as raft
/// last reported them. Follow it with [`crate::raft::ClusterRaft::subscribe`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The last log index applied to the local state machine.
    pub applied: u64,
    /// io.store's content.
    pub store: u64,
    /// The users.
    pub users: u64,
    /// The service table.
    pub services: u64,
    /// The invites.
    pub invites: u64,
    /// The revoked keys.
    pub revoked: u64,
    /// Node tags.
    pub node_meta: u64,
    /// The process table.
    pub procs: u64,
    /// The file system's metadata.
    pub fs: u64,
    /// The log index of the latest membership raft knows (applied or not).
    pub members: u64,
    /// The current leader, if known.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
}

/// What the log store, the state machine and the handle share: the database and the change
/// feed.
pub(crate) struct Shared {
    /// Open transactions only through [`Shared::read`], [`Shared::write`] and
    /// [`Shared::pending`]: a write transaction begun past them would wait forever for the
    /// pending one.
    db: Database,
    /// Applies not committed yet: one open write transaction that later applies continue, so
    /// a redb commit (several page writes) is paid once per [`SETTLE_AFTER`] rather than once
    /// per write. Readers and other writers commit it first ([`Shared::read`],
    /// [`Shared::write`]). Losing it in a crash loses nothing: the entries are in the log, and
    /// the applied log id recorded with them goes back too, so they are applied again.
    pending: Mutex<Option<Pending>>,
    /// The once-records in memory (`plexus_store::OnceMemory`), matching the pending
    /// transaction. Lock it after `pending`. Whatever drops a transaction that used it
    /// without committing invalidates it, so the next apply rebuilds it from the file.
    pub(crate) once: Mutex<plexus_store::OnceMemory>,
    pub(crate) file: PathBuf,
    pub(crate) changes: watch::Sender<Changes>,
    /// Why the raft core stopped for a fault, once it has ([`crate::raft::ClusterRaft::faulted`]):
    /// a watch of its own, so that waiting for a fault wakes nobody at each raft event.
    pub(crate) fault: watch::Sender<Option<String>>,
    /// The raft log.
    pub(crate) wal: Wal,
    /// When applying last committed the state machine durably.
    pub(crate) sm_durable_at: Mutex<std::time::Instant>,
    /// Appends waiting for the next group commit (see [`Shared::flush_later`]).
    flushes: Mutex<Flushes>,
    /// Holds the group commit back (fault injection for tests).
    pub(crate) flush_gate: Arc<FlushGate>,
}

/// The flush callbacks of appends not yet durable, and whether a group commit runs.
#[derive(Default)]
struct Flushes {
    waiting: Vec<LogFlushed<TypeConfig>>,
    running: bool,
}

/// Fault injection: while held, appends are written (and readable, so replicated) but neither
/// made durable nor reported flushed, as on a node whose disk stalls.
#[derive(Default)]
pub(crate) struct FlushGate {
    held: Mutex<bool>,
    released: Condvar,
}

impl FlushGate {
    pub(crate) fn hold(&self, hold: bool) {
        if let Ok(mut held) = self.held.lock() {
            *held = hold;
        }
        self.released.notify_all();
    }

    /// Returns when the gate is open, or when `shared` is gone.
    fn pass(&self, shared: &Weak<Shared>) {
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        while *held && shared.strong_count() > 0 {
            match self
                .released
                .wait_timeout(held, std::time::Duration::from_millis(50))
            {
                Ok((guard, _)) => held = guard,
                Err(_) => return,
            }
        }
    }
}

/// The state machine's open write transaction (see [`Shared::pending`]).
pub(crate) struct Pending {
    pub(crate) txn: WriteTransaction,
    /// When its first apply began.
    pub(crate) since: Instant,
}

/// How long applies may stay pending before one of them commits them.
pub(crate) const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

impl Shared {
    /// The pending applies, locked: continue them or commit them.
    pub(crate) fn pending(&self) -> Result<MutexGuard<'_, Option<Pending>>, String> {
        self.pending
            .lock()
            .map_err(|_| "a state machine transaction failed midway".to_owned())
    }

    /// Takes the pending transaction out of `slot` (locked by [`Shared::pending`]) to
    /// continue it, or begins one without fsync.
    pub(crate) fn take_pending(&self, slot: &mut Option<Pending>) -> Result<Pending, String> {
        if let Some(p) = slot.take() {
            return Ok(p);
        }
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(redb::Durability::None);
        Ok(Pending {
            txn,
            since: Instant::now(),
        })
    }

    /// The once-records' memory (lock it after [`Shared::pending`]).
    pub(crate) fn once(&self) -> Result<MutexGuard<'_, plexus_store::OnceMemory>, String> {
        self.once
            .lock()
            .map_err(|_| "a state machine transaction failed midway".to_owned())
    }

    /// A read transaction that sees every apply so far (pending ones are committed first,
    /// without fsync).
    pub(crate) fn read(&self) -> Result<ReadTransaction, String> {
        let mut pending = self.pending()?;
        self.settle(&mut pending)?;
        self.db.begin_read().map_err(|e| e.to_string())
    }

    /// The file system's metadata tables, whole.
    #[cfg(test)]
    pub(crate) fn fs_dump(&self) -> Result<plexus_store::fs::FsDump, String> {
        FS.dump(&self.read()?).map_err(|e| e.to_string())
    }

    /// A read transaction that sees the applies committed so far: without the pending ones
    /// (at most [`SETTLE_AFTER`] of them), and without the cost of committing them.
    pub(crate) fn read_committed(&self) -> Result<ReadTransaction, String> {
        self.db.begin_read().map_err(|e| e.to_string())
    }

    /// Runs `f` in a write transaction of its own after committing pending applies, and
    /// commits it: durably if `durable`, else without fsync. If `f` fails nothing of it is
    /// committed.
    pub(crate) fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&WriteTransaction) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut pending = self.pending()?;
        self.settle(&mut pending)?;
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        if !durable {
            txn.set_durability(redb::Durability::None);
        }
        let out = f(&txn).and_then(|out| {
            txn.commit().map_err(|e| e.to_string())?;
            Ok(out)
        });
        if out.is_err() {
            self.once()?.invalidate();
        }
        out
    }

    /// Commits the pending applies, if any, without fsync.
    pub(crate) fn settle(&self, pending: &mut Option<Pending>) -> Result<(), String> {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        p.txn.commit().map_err(|e| {
            if let Ok(mut once) = self.once.lock() {
                once.invalidate();
            }
            e.to_string()
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing commits what is pending, so a clean stop re-applies nothing.
        if let Ok(mut pending) = self.pending.lock() {
            if let Err(e) = self.settle(&mut pending) {
                tracing::warn!("pending applies not committed at close: {e}");
            }
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("file", &self.file).finish()
    }
}

/// Opens (creating if needed) `dir/cluster.redb` for node `id`. A file written for another
/// node id is refused.
pub(crate) fn open_db(dir: &Path, id: u64) -> Result<Arc<Shared>, RaftError> {
    let open_err =
        |why: String| RaftError::Storage(format!("cannot open {}: {why}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
    let file = dir.join(CLUSTER_DB_FILE);
    let db = Database::builder()
        .set_cache_size(plexus_store::CACHE_BYTES)
        .create(&file)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                open_err("the cluster state is already open (is another node running here?)".into())
            }
            e => open_err(e.to_string()),
        })?;
    let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
    {
        let mut meta = txn
            .open_table(RAFT_META)
            .map_err(|e| open_err(e.to_string()))?;
        let format: Option<u32> = get_pc(&meta, "format").map_err(open_err)?;
        match format {
            None => {
                put_pc(&mut meta, "format", &FORMAT).map_err(open_err)?;
            }
            Some(FORMAT) | Some(1) => {}
            Some(f) => {
                return Err(open_err(format!(
                    "layout format {f} is not the supported format {FORMAT}"
                )))
            }
        }
        let node: Option<u64> = get_pc(&meta, "node").map_err(open_err)?;
        match node {
            None => put_pc(&mut meta, "node", &id).map_err(open_err)?,
            Some(n) if n == id => {}
            Some(n) => {
                return Err(open_err(format!(
                    "this cluster state belongs to node {n:016x}, not {id:016x}"
                )))
            }
        }
        // Create every table, so readers never meet a missing one.
        let e = |e: redb::TableError| open_err(e.to_string());
        txn.open_table(LOG).map_err(e)?;
        txn.open_table(SM_META).map_err(e)?;
        txn.open_table(UNITS).map_err(e)?;
        txn.open_table(UNIT_ORDER).map_err(e)?;
        txn.open_table(USERS).map_err(e)?;
        txn.open_table(USER_KEYS).map_err(e)?;
        txn.open_table(SERVICES).map_err(e)?;
        txn.open_table(NODE_META).map_err(e)?;
        txn.open_table(INVITES).map_err(e)?;
        txn.open_table(REVOKED).map_err(e)?;
        txn.open_table(USER_INVITES).map_err(e)?;
        txn.open_table(SNAPSHOT).map_err(e)?;
        ONCE.create(&txn).map_err(|e| open_err(e.to_string()))?;
        txn.open_table(UNIT_OWNERS).map_err(e)?;
        PROCS.create(&txn).map_err(|e| open_err(e.to_string()))?;
        FS.create(&txn).map_err(|e| open_err(e.to_string()))?;
    }
    txn.commit().map_err(|e| open_err(e.to_string()))?;
    let (purged, applied) = {
        let txn = db.begin_read().map_err(|e| open_err(e.to_string()))?;
        let table = |def| txn.open_table(def).map_err(|e| open_err(e.to_string()));
        let purged: Option<openraft::LogId<u64>> =
            get_pc(&table(RAFT_META)?, "purged").map_err(open_err)?;
        let applied: Option<openraft::LogId<u64>> =
            get_pc(&table(SM_META)?, "applied").map_err(open_err)?;
        (purged, applied.map(|l| l.index).unwrap_or(0))
    };
    let wal = Wal::open(&dir.join(WAL_DIR), purged.map(|p| p.index)).map_err(open_err)?;
    migrate_log(&db, &wal).map_err(open_err)?;
    let (changes, _) = watch::channel(Changes {
        applied,
        ..Changes::default()
    });
    let flush_gate = Arc::new(FlushGate::default());
    Ok(Arc::new(Shared {
        db,
        pending: Mutex::new(None),
        once: Mutex::default(),
        file,
        changes,
        fault: watch::Sender::new(None),
        wal,
        sm_durable_at: Mutex::new(std::time::Instant::now()),
        flushes: Mutex::default(),
        flush_gate,
    }))
}

/// Moves a format-1 file's log entries (in redb's `raft.log`) to the segment files, durably,
/// then records format 2. Nothing to do for a format-2 file.
fn migrate_log(db: &Database, wal: &Wal) -> Result<(), String> {
    let (format, rows) = {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let meta = txn.open_table(RAFT_META).map_err(|e| e.to_string())?;
        let format: Option<u32> = get_pc(&meta, "format")?;
        let log = txn.open_table(LOG).map_err(|e| e.to_string())?;
        let mut rows: Vec<(u64, Vec<u8>)> = Vec::new();
        for row in log.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            rows.push((k.value(), v.value().to_vec()));
        }
        (format, rows)
    };
    if format == Some(FORMAT) && rows.is_empty() {
        return Ok(());
    }
    if let Some((first, _)) = rows.first() {
        // Whatever the segments hold from an interrupted migration is replaced.
        wal.truncate(*first)?;
        wal.append(&rows)?;
        wal.sync()?;
    }
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut meta = txn.open_table(RAFT_META).map_err(|e| e.to_string())?;
        put_pc(&mut meta, "format", &FORMAT)?;
        let mut log = txn.open_table(LOG).map_err(|e| e.to_string())?;
        log.retain(|_, _| false).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

impl Shared {
    /// Group commit of the raft log. `append` writes its entries without fsync (readable at
    /// once) and queues its flush callback here. Unless a commit is running, one starts on
    /// tokio's blocking threads: it takes every callback queued so far, makes everything
    /// written before durable with one `fdatasync`, fires them all, and goes on while more
    /// are queued. So concurrent writes share one fsync on each node, and raft never hears an
    /// entry is flushed before it is on disk. Being a blocking task of the runtime (not a
    /// thread of its own), a commit in progress also holds a paused test clock still.
    pub(crate) fn flush_later(self: &Arc<Self>, callback: LogFlushed<TypeConfig>) {
        let start = {
            let mut f = lock_flushes(self);
            f.waiting.push(callback);
            !std::mem::replace(&mut f.running, true)
        };
        if start {
            let shared = Arc::downgrade(self);
            tokio::task::spawn_blocking(move || group_commit(&shared));
        }
    }
}

fn lock_flushes(shared: &Shared) -> MutexGuard<'_, Flushes> {
    match shared.flushes.lock() {
        Ok(f) => f,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Runs group commits until no flush waits. It holds only a weak reference between commits,
/// so closing and reopening a node's state never waits for it (callbacks of a closed state
/// are told so).
fn group_commit(weak: &Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let gate = shared.flush_gate.clone();
        let batch = {
            let mut f = lock_flushes(&shared);
            if f.waiting.is_empty() {
                f.running = false;
                return;
            }
            std::mem::take(&mut f.waiting)
        };
        drop(shared);
        gate.pass(weak);
        let outcome = match weak.upgrade() {
            Some(shared) => shared.wal.sync(),
            None => Err("the cluster state was closed before the log was flushed".into()),
        };
        for callback in batch {
            callback.log_io_completed(match &outcome {
                Ok(()) => Ok(()),
                Err(why) => Err(std::io::Error::other(why.clone())),
            });
        }
    }
}

/// Reads a postcard value from a `&str → &[u8]` table.
pub(crate) fn get_pc<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, String> {
    match table.get(key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(v) => postcard::from_bytes(v.value())
            .map(Some)
            .map_err(|e| format!("stored {key} does not decode: {e}")),
    }
}

/// Writes a postcard value into a `&str → &[u8]` table.
pub(crate) fn put_pc<T: Serialize>(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), String> {
    let bytes = postcard::to_allocvec(value).map_err(|e| e.to_string())?;
    table
        .insert(key, bytes.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// An openraft storage error about `subject`.
pub(crate) fn sto_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    why: impl std::fmt::Display,
) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::error(why)),
    }
}

/// Runs blocking storage work on tokio's blocking threads; its error becomes openraft's
/// storage error about `subject` (which stops raft: the storage can no longer be trusted).
#[allow(clippy::result_large_err)] // openraft's storage traits return this error type
pub(crate) async fn blocking<T: Send + 'static>(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, StorageError<u64>> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(why)) => Err(sto_err(subject, verb, why)),
        Err(e) => Err(sto_err(subject, verb, format!("storage task failed: {e}"))),
    }
}

/// A storage failure inside a transaction, as text (redb's own error is large).
#[derive(Debug)]
pub(crate) struct DbFail(pub(crate) String);

macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for DbFail {
            fn from(e: $t) -> DbFail {
                DbFail(e.to_string())
            }
        })*
    };
}

from_redb!(
    plexus_store::StoreError,
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

impl From<DbFail> for String {
    fn from(e: DbFail) -> String {
        e.0
    }
}
