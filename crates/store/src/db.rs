//! The node database on redb. Layout and durability: `docs/storage.md`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use plexus_units::{Map, Path, Str, Unit};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use crate::error::DbResult;
use crate::size::map_header_len;
use crate::{
    check_encoded, save_entry, size, take_path, BoxFuture, Caller, Once, OnceMemory, OnceTables,
    Owner, ProcError, ProcId, ProcRecord, ProcTable, ProcTables, SaveBy, StoreError, UnitStore,
    UserConflict,
};

/// The database file's name inside a data directory.
pub const DB_FILE: &str = "node.redb";

/// The layout version written in `meta` under `format`.
const FORMAT: i64 = 1;

/// io.store's entries in order: sequence number → encoded key.
const ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("store.order");
/// io.store's entries: encoded key → (sequence number, encoded value).
const ENTRIES: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("store.entries");
/// Node metadata: name → encoded unit.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Users: public key → name.
const USERS: TableDefinition<&[u8; 32], &str> = TableDefinition::new("users");
/// Owners of io.store's entries: encoded key → [`Owner::to_bytes`]. An entry without a row
/// belongs to the admins and is public.
const OWNERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("store.owners");
/// Which evaluation of each signed message saved ([`crate::OnceTables`]).
const ONCE: OnceTables = OnceTables::new(
    "store.once.rows",
    "store.once.marks",
    &[
        "store.once",
        "store.once.by_time",
        "store.once.by_age",
        "store.once.by_message",
        "store.once.renewed",
        "store.once.renewed.by_age",
    ],
);
/// Users by name: name → public key.
const USER_NAMES: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("users.by_name");
/// User invites: id (the hash of a one-time token) → expiry in ms since the Unix epoch.
const USER_INVITES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("users.invites");

/// The process table ([`crate::ProcTables`]).
const PROCS: ProcTables = ProcTables::new("procs", "procs.ended", "procs.by_name", "procs.live");
/// The file tree of a single node (`docs/fs.md`).
const FS: crate::fs::FsTables =
    crate::fs::FsTables::new("fs.inodes", "fs.entries", "fs.chunks", "fs.counters");

/// Memory redb may keep for a database's pages (read cache and unwritten pages together), for
/// `node.redb` and `cluster.redb` alike. redb's default (1 GiB) let it grow with every write:
/// each transaction writes the pages it changes anew, and the cache kept them (7.8 MB after 200
/// processes were started, heaptrack). The files are small, and the operating system caches
/// them too: `plx bench store` gave the same writes/s with 1 and 4 MiB, while each running
/// process cost its node 3–5 KiB more with 4 (`plx bench proc` (c)).
pub const CACHE_BYTES: usize = 1 << 20;

/// Most user invites waiting at once.
pub const MAX_USER_INVITES: u64 = 10_000;

/// The node's persistent identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMeta {
    /// Persistent id, chosen once.
    pub id: String,
    /// Name, unique in the cluster.
    pub name: String,
}

/// The node's database: io.store's content, the node's metadata and its user registry, in
/// one redb file. Cheap to clone (a shared handle).
///
/// Every write is a committed redb transaction with immediate durability (fsynced) before
/// the call returns. The `*_blocking` methods and the metadata and user methods do blocking
/// I/O; the [`UnitStore`] methods run it on tokio's blocking threads (or inline outside a
/// tokio runtime).
#[derive(Clone)]
pub struct NodeDb {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    file: PathBuf,
    /// Saves waiting for the next write transaction.
    queue: Mutex<Vec<SaveRequest>>,
    /// Held by the task that commits the next batch of saves.
    writer: tokio::sync::Mutex<()>,
    /// The once-records in memory ([`crate::OnceMemory`]).
    once: Mutex<OnceMemory>,
}

struct SaveRequest {
    path: Path,
    value: Unit,
    by: SaveBy,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl std::fmt::Debug for NodeDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDb")
            .field("file", &self.inner.file)
            .finish()
    }
}

impl NodeDb {
    /// Opens (creating if needed) the node database. `path` is a data directory (the file is
    /// [`DB_FILE`] inside it; the directory is created if missing) or, if it ends in
    /// `.redb`, the database file itself. A database left by a crash is recovered on open.
    /// Fails if another process has it open.
    pub fn open(path: impl AsRef<FsPath>) -> Result<NodeDb, StoreError> {
        let path = path.as_ref();
        let open_err = |why: String| StoreError::Open {
            path: path.display().to_string(),
            why,
        };
        let file = if path.extension().is_some_and(|e| e == "redb") && !path.is_dir() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| open_err(e.to_string()))?;
            }
            path.to_path_buf()
        } else {
            std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
            path.join(DB_FILE)
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
            .map_err(|e| {
                let why = e.to_string();
                open_err(if matches!(e, redb::DatabaseError::DatabaseAlreadyOpen) {
                    format!("{why} (is another node running on this data directory?)")
                } else {
                    why
                })
            })?;
        let node = NodeDb {
            inner: Arc::new(Inner {
                db,
                file,
                queue: Mutex::new(Vec::new()),
                writer: tokio::sync::Mutex::new(()),
                once: Mutex::new(OnceMemory::default()),
            }),
        };
        node.init().map_err(|e| open_err(e.to_string()))?;
        Ok(node)
    }

    /// The database file.
    pub fn file(&self) -> &FsPath {
        &self.inner.file
    }

    /// Creates the tables and checks the layout version.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().db()?;
        {
            txn.open_table(ORDER).db()?;
            txn.open_table(ENTRIES).db()?;
            txn.open_table(USERS).db()?;
            txn.open_table(USER_NAMES).db()?;
            ONCE.create(&txn)?;
            txn.open_table(OWNERS).db()?;
            PROCS.create(&txn)?;
            FS.create(&txn)?;
            let mut meta = txn.open_table(META).db()?;
            let found = meta
                .get("format")
                .db()?
                .map(|g| decode(g.value()))
                .transpose()?;
            match found {
                None => {
                    meta.insert(
                        "format",
                        plexus_units::encode(&Unit::int(FORMAT)).as_slice(),
                    )
                    .db()?;
                }
                Some(Unit::Int(i)) if i.to_i64() == Some(FORMAT) => {}
                Some(other) => {
                    return Err(StoreError::Corrupt(format!(
                        "store format {} is not {FORMAT}, the format this build reads",
                        plexus_units::to_text(&other)
                    )))
                }
            }
        }
        txn.commit().db()
    }

    // ----- io.store content -----

    /// The whole store (`None`) or the unit at `path`, as `caller` may see it; blocking.
    pub fn load_blocking(&self, path: Option<&Path>, caller: Caller) -> Result<Unit, StoreError> {
        let txn = self.inner.db.begin_read().db()?;
        let entries = txn.open_table(ENTRIES).db()?;
        let owners = txn.open_table(OWNERS).db()?;
        let readable = |key: &[u8]| -> Result<bool, StoreError> {
            let owner = owners
                .get(key)
                .db()?
                .and_then(|g| Owner::from_bytes(g.value()));
            Ok(caller.may_read(owner.as_ref()))
        };
        let Some(path) = path else {
            let order = txn.open_table(ORDER).db()?;
            let mut out = Vec::with_capacity(usize::try_from(order.len().db()?).unwrap_or(0));
            for row in order.iter().db()? {
                let (_, key) = row.db()?;
                let key = key.value();
                if !readable(key)? {
                    continue;
                }
                let entry = entries
                    .get(key)
                    .db()?
                    .ok_or_else(|| StoreError::Corrupt("an ordered key has no entry".to_owned()))?;
                out.push((decode(key)?, decode(entry.value().1)?));
            }
            return Map::from_entries(out)
                .map(Unit::Map)
                .map_err(|e| StoreError::Corrupt(e.to_string()));
        };
        let segs = path.segments();
        let entry = match segs.first().map(key_bytes) {
            Some(k) if readable(&k)? => entries.get(k.as_slice()).db()?,
            _ => None,
        };
        let entry = entry.ok_or_else(|| StoreError::NotFound(path.clone()))?;
        let value = decode(entry.value().1)?;
        take_path(value, segs.get(1..).unwrap_or_default())
            .ok_or_else(|| StoreError::NotFound(path.clone()))
    }

    /// The size ([`size`]) of the whole store or of the unit at `path`; blocking. The whole
    /// store's size and a top-level entry's size are computed from the stored bytes without
    /// decoding them.
    pub fn size_blocking(&self, path: Option<&Path>, caller: Caller) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read().db()?;
        let entries = txn.open_table(ENTRIES).db()?;
        let owners = txn.open_table(OWNERS).db()?;
        let readable = |key: &[u8]| -> Result<bool, StoreError> {
            let owner = owners
                .get(key)
                .db()?
                .and_then(|g| Owner::from_bytes(g.value()));
            Ok(caller.may_read(owner.as_ref()))
        };
        match path {
            None => {
                // A document: version byte, map header, then each key and value without
                // their own version bytes.
                let mut count = 0;
                let mut total = 0;
                for row in entries.iter().db()? {
                    let (k, v) = row.db()?;
                    if !readable(k.value())? {
                        continue;
                    }
                    count += 1;
                    total += k.value().len() as u64 - 1 + v.value().1.len() as u64 - 1;
                }
                Ok(1 + map_header_len(count) + total)
            }
            Some(path) => {
                let segs = path.segments();
                let entry = match segs.first().map(key_bytes) {
                    Some(k) if readable(&k)? => entries.get(k.as_slice()).db()?,
                    _ => None,
                };
                let entry = entry.ok_or_else(|| StoreError::NotFound(path.clone()))?;
                let bytes = entry.value().1;
                if segs.len() == 1 {
                    return Ok(bytes.len() as u64);
                }
                take_path(decode(bytes)?, segs.get(1..).unwrap_or_default())
                    .map(|u| size(&u))
                    .ok_or_else(|| StoreError::NotFound(path.clone()))
            }
        }
    }

    /// Saves `value` at `path` with merge semantics ([`crate::save_at`]) in its own committed
    /// transaction; blocking. Concurrent callers are serialized by the database.
    pub fn save_blocking(&self, path: &Path, value: Unit, by: SaveBy) -> Result<(), StoreError> {
        let mut out = self.save_batch(vec![(path.clone(), value, by)])?;
        out.pop().unwrap_or(Ok(()))
    }

    /// Applies saves in order in one write transaction, committed once. A save that fails
    /// (bad path, limit) changes nothing and the others still apply; a storage failure fails
    /// them all. Gives each save's result.
    fn save_batch(
        &self,
        saves: Vec<(Path, Unit, SaveBy)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.with_once(|txn, once| {
            let mut results = Vec::with_capacity(saves.len());
            let mut once_tables = ONCE.open(txn, once)?;
            let mut order = txn.open_table(ORDER).db()?;
            let mut entries = txn.open_table(ENTRIES).db()?;
            let mut owners = txn.open_table(OWNERS).db()?;
            for (path, value, by) in saves {
                let checked = match &by.once {
                    Some(once) => match once_tables.check(once)? {
                        Ok(checked) => Some((once, checked)),
                        Err(e) => {
                            results.push(Err(e));
                            continue;
                        }
                    },
                    None => None,
                };
                let result = save_one(&mut order, &mut entries, &mut owners, &path, value, &by)?;
                if let (Ok(()), Some((once, checked))) = (&result, checked) {
                    once_tables.record(once, checked)?;
                }
                results.push(result);
            }
            once_tables.close()?;
            Ok(results)
        })
    }

    /// Runs `work` in a write transaction with the once-records' memory, and commits it. If
    /// anything fails nothing is committed, and the memory is rebuilt from the file next
    /// time ([`OnceMemory::invalidate`]).
    fn with_once<T>(
        &self,
        work: impl FnOnce(&WriteTransaction, &mut OnceMemory) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut memory = self
            .inner
            .once
            .lock()
            .map_err(|_| StoreError::Storage("a write failed midway".to_owned()))?;
        let txn = self.inner.db.begin_write().db()?;
        let out = work(&txn, &mut memory).and_then(|out| {
            txn.commit().db()?;
            Ok(out)
        });
        if out.is_err() {
            memory.invalidate();
        }
        out
    }

    /// Writes `seed` as io.store's content if the store has no entries (a node's first
    /// start). Gives whether it did. `seed` must be a map.
    pub fn seed_if_empty(&self, seed: &Unit) -> Result<bool, StoreError> {
        let Unit::Map(seed) = seed else {
            return Err(StoreError::BadArgument(
                "the store's seed must be a map".to_owned(),
            ));
        };
        let txn = self.inner.db.begin_write().db()?;
        {
            let mut order = txn.open_table(ORDER).db()?;
            let mut entries = txn.open_table(ENTRIES).db()?;
            if !entries.is_empty().db()? {
                return Ok(false);
            }
            for (seq, (k, v)) in (0u64..).zip(seed.iter()) {
                let key = plexus_units::encode(k);
                let value = plexus_units::encode(v);
                let name = [Str::from(plexus_units::to_short(k, 40))];
                if v.depth() > crate::MAX_ENTRY_DEPTH {
                    return Err(StoreError::Limit(format!(
                        "the seed entry {} is deeper than {} levels",
                        name[0],
                        crate::MAX_ENTRY_DEPTH
                    )));
                }
                check_encoded(&value, &name)?;
                order.insert(seq, key.as_slice()).db()?;
                entries
                    .insert(key.as_slice(), (seq, value.as_slice()))
                    .db()?;
            }
        }
        txn.commit().db()?;
        Ok(true)
    }

    // ----- node metadata -----

    /// The node's persistent id and name, if set.
    pub fn meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        let txn = self.inner.db.begin_read().db()?;
        let meta = txn.open_table(META).db()?;
        let Some(found) = meta.get("node").db()? else {
            return Ok(None);
        };
        let u = decode(found.value())?;
        let field = |k: &str| u.as_map().and_then(|m| m.get_str(k)).and_then(Unit::as_str);
        match (field("id"), field("name")) {
            (Some(id), Some(name)) => Ok(Some(NodeMeta {
                id: id.to_owned(),
                name: name.to_owned(),
            })),
            _ => Err(StoreError::Corrupt(
                "the node metadata is not {id:… name:…}".to_owned(),
            )),
        }
    }

    /// Sets the node's persistent id and name.
    pub fn set_meta(&self, node: &NodeMeta) -> Result<(), StoreError> {
        let mut m = Map::new();
        m.insert(Unit::str("id"), Unit::str(&node.id));
        m.insert(Unit::str("name"), Unit::str(&node.name));
        let bytes = plexus_units::encode(&Unit::Map(m));
        let txn = self.inner.db.begin_write().db()?;
        {
            let mut meta = txn.open_table(META).db()?;
            meta.insert("node", bytes.as_slice()).db()?;
        }
        txn.commit().db()
    }

    // ----- users -----

    /// Runs `change` in its own committed write transaction, for the signed message `once`
    /// (if any) only if no other evaluation of it changed the store before, then records it
    /// ([`crate::OnceTables`]), as saves do. A refused change is rolled back.
    fn change_once<T>(
        &self,
        once: Option<&Once>,
        change: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_once(|txn, memory| match once {
            Some(once) => {
                let mut once_tables = ONCE.open(txn, memory)?;
                let checked = once_tables.check(once)??;
                let out = change(txn)?;
                once_tables.record(once, checked)?;
                once_tables.close()?;
                Ok(out)
            }
            None => change(txn),
        })
    }

    // ----- the process table -----

    /// Runs a process-table change in its own committed write transaction (rolled back if
    /// refused).
    fn change_procs<T>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, ProcError>,
    ) -> Result<T, ProcError> {
        let txn = self.inner.db.begin_write().db()?;
        let out = change(&txn)?;
        txn.commit().db()?;
        Ok(out)
    }

    /// Adds a process record ([`ProcTables::put`]); blocking.
    pub fn put_proc(&self, record: ProcRecord) -> Result<ProcRecord, ProcError> {
        self.change_procs(|txn| PROCS.put(txn, record))
    }

    /// Replaces a process record read at `record.generation` ([`ProcTables::update`]);
    /// blocking.
    pub fn update_proc(&self, record: ProcRecord) -> Result<ProcRecord, ProcError> {
        self.change_procs(|txn| PROCS.update(txn, record))
    }

    /// Removes a process record, giving it (`None` if there was none); blocking.
    pub fn remove_proc(&self, id: &ProcId) -> Result<Option<ProcRecord>, ProcError> {
        self.change_procs(|txn| PROCS.remove(txn, id))
    }

    /// The process record with `id`; blocking.
    pub fn proc(&self, id: &ProcId) -> Result<Option<ProcRecord>, ProcError> {
        PROCS.get(&self.inner.db.begin_read().db()?, id)
    }

    /// Every process record, by id; blocking.
    pub fn procs(&self) -> Result<Vec<ProcRecord>, ProcError> {
        PROCS.list(&self.inner.db.begin_read().db()?)
    }

    /// The live (not ended) process records, by id.
    pub fn live_procs(&self) -> Result<Vec<ProcRecord>, ProcError> {
        PROCS.live(&self.inner.db.begin_read().db()?)
    }

    // ----- users -----

    /// The registered users (public key bytes, name), ordered by key.
    pub fn users(&self) -> Result<Vec<([u8; 32], String)>, StoreError> {
        let txn = self.inner.db.begin_read().db()?;
        let users = txn.open_table(USERS).db()?;
        let mut out = Vec::new();
        for row in users.iter().db()? {
            let (k, n) = row.db()?;
            out.push((*k.value(), n.value().to_owned()));
        }
        Ok(out)
    }

    /// Registers `key` under `name`. Fails with [`UserConflict`] if the name belongs to another key
    /// or the key is already registered (under this or another name); checks and write are one
    /// transaction; for the signed message `once`: `msg.replay` if another evaluation of it changed
    /// the store ([`crate::OnceTables`]).
    pub fn add_user(
        &self,
        key: [u8; 32],
        name: &str,
        once: Option<&Once>,
    ) -> Result<(), StoreError> {
        self.change_once(once, |txn| insert_user(txn, key, name))
    }

    /// Removes user `name`; gives the key it had, `None` if there is no such user. For the signed
    /// message `once`: `msg.replay` if another evaluation of it changed the store
    /// ([`crate::OnceTables`]).
    pub fn remove_user(
        &self,
        name: &str,
        once: Option<&Once>,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        self.change_once(once, |txn| {
            let mut users = txn.open_table(USERS).db()?;
            let mut names = txn.open_table(USER_NAMES).db()?;
            let key = names.remove(name).db()?.map(|k| *k.value());
            if let Some(key) = &key {
                users.remove(key).db()?;
            }
            Ok(key)
        })
    }

    /// Renames user `name` to `to`, keeping its key; gives that key, `None` if there is no user
    /// `name`. Fails with [`UserConflict::NameTaken`] if `to` is another user's name. For the
    /// signed message `once`: `msg.replay` if another evaluation of it changed the store
    /// ([`crate::OnceTables`]).
    pub fn rename_user(
        &self,
        name: &str,
        to: &str,
        once: Option<&Once>,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        self.change_once(once, |txn| {
            let mut users = txn.open_table(USERS).db()?;
            let mut names = txn.open_table(USER_NAMES).db()?;
            if name != to && names.get(to).db()?.is_some() {
                return Err(UserConflict::NameTaken {
                    name: to.to_owned(),
                }
                .into());
            }
            let key = names.remove(name).db()?.map(|k| *k.value());
            if let Some(key) = &key {
                names.insert(to, key).db()?;
                users.insert(key, to).db()?;
            }
            Ok(key)
        })
    }

    /// Records a one-time user invite `id`, valid until `expires_ms` (ms since the epoch). Fails
    /// with [`StoreError::Limit`] while [`MAX_USER_INVITES`] wait. For the signed message `once`:
    /// `msg.replay` if another evaluation of it changed the store ([`crate::OnceTables`]).
    pub fn add_user_invite(
        &self,
        id: [u8; 32],
        expires_ms: u64,
        once: Option<&Once>,
    ) -> Result<(), StoreError> {
        self.change_once(once, |txn| {
            let mut invites = txn.open_table(USER_INVITES).db()?;
            if invites.get(&id).db()?.is_none() && invites.len().db()? >= MAX_USER_INVITES {
                return Err(StoreError::Limit(format!(
                    "at most {MAX_USER_INVITES} user invites may wait at once"
                )));
            }
            invites.insert(&id, expires_ms).db()?;
            Ok(())
        })
    }

    /// Registers `key` under `name` as [`NodeDb::add_user`] does, using up user invite `invite`
    /// (and dropping every invite expired at `now_ms`), in one transaction. Fails with
    /// [`UserConflict::BadInvite`] if the invite is unknown, used or expired; a refused
    /// registration leaves the invite unused. For the signed message `once`: `msg.replay` if
    /// another evaluation of it changed the store ([`crate::OnceTables`]).
    pub fn add_invited_user(
        &self,
        key: [u8; 32],
        name: &str,
        invite: [u8; 32],
        now_ms: u64,
        once: Option<&Once>,
    ) -> Result<(), StoreError> {
        self.change_once(once, |txn| {
            let mut invites = txn.open_table(USER_INVITES).db()?;
            let expiry = invites.get(&invite).db()?.map(|g| g.value());
            match expiry {
                None => return Err(UserConflict::BadInvite { expired: false }.into()),
                Some(exp) if exp <= now_ms => {
                    return Err(UserConflict::BadInvite { expired: true }.into())
                }
                Some(_) => {}
            }
            insert_user(txn, key, name)?;
            invites.remove(&invite).db()?;
            invites.retain(|_, exp| exp > now_ms).db()?;
            Ok(())
        })
    }

    // ----- async plumbing -----

    /// Runs the queued saves as one batch, if there are any. Called with the writer lock.
    fn run_queue(&self) {
        let batch = std::mem::take(&mut *self.queue());
        if batch.is_empty() {
            return;
        }
        let (saves, done): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|r| ((r.path, r.value, r.by), r.done))
            .unzip();
        match self.save_batch(saves) {
            Ok(results) => {
                for (tx, r) in done.into_iter().zip(results) {
                    // The caller may have gone away; its save still happened.
                    let _ = tx.send(r);
                }
            }
            Err(e) => {
                for tx in done {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<SaveRequest>> {
        // Pushing and taking cannot leave the queue half-changed, so a poisoned lock is
        // still usable.
        self.inner.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One save inside a write transaction: the outer error is a storage failure (which aborts
/// the transaction), the inner one this save's own failure (which changes nothing).
fn save_one(
    order: &mut redb::Table<'_, u64, &'static [u8]>,
    entries: &mut redb::Table<'_, &'static [u8], (u64, &'static [u8])>,
    owners: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    path: &Path,
    value: Unit,
    by: &SaveBy,
) -> Result<Result<(), StoreError>, StoreError> {
    let segs = path.segments();
    let Some(first) = segs.first() else {
        return Ok(Ok(()));
    };
    let key = key_bytes(first);
    let exists = entries.get(key.as_slice()).db()?.is_some();
    let owner = owners
        .get(key.as_slice())
        .db()?
        .and_then(|g| Owner::from_bytes(g.value()));
    let new_owner = match by.caller.save_owner(path, exists, owner, by.private) {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    let existing = entries
        .get(key.as_slice())
        .db()?
        .map(|g| {
            let (seq, v) = g.value();
            decode(v).map(|v| (seq, v))
        })
        .transpose();
    let existing = match existing {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    let (seq, old) = match existing {
        Some((seq, v)) => (Some(seq), Some(v)),
        None => (None, None),
    };
    let new = match save_entry(old, path, value) {
        Ok(v) => plexus_units::encode(&v),
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = check_encoded(&new, &segs[..1]) {
        return Ok(Err(e));
    }
    let seq = match seq {
        Some(seq) => seq,
        None => {
            let next = match order.last().db()? {
                Some((k, _)) => k.value().checked_add(1).ok_or_else(|| {
                    StoreError::Storage("the store's sequence numbers ran out".to_owned())
                })?,
                None => 0,
            };
            order.insert(next, key.as_slice()).db()?;
            next
        }
    };
    entries.insert(key.as_slice(), (seq, new.as_slice())).db()?;
    if new_owner != owner {
        if let Some(o) = new_owner {
            owners
                .insert(key.as_slice(), o.to_bytes().as_slice())
                .db()?;
        }
    }
    Ok(Ok(()))
}

/// The encoded top-level key for a path's first segment.
fn key_bytes(seg: &Str) -> Vec<u8> {
    plexus_units::encode(&Unit::Str(seg.clone()))
}

fn decode(bytes: &[u8]) -> Result<Unit, StoreError> {
    plexus_units::decode_bytes_with(Bytes::copy_from_slice(bytes), &crate::STORED_LIMITS)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Runs blocking work on tokio's blocking threads, or inline outside a tokio runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Storage(format!("storage task failed: {e}"))),
        Err(_) => Ok(f()),
    }
}

impl UnitStore for NodeDb {
    fn load<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<Unit, StoreError>> {
        let db = self.clone();
        let path = path.cloned();
        Box::pin(async move { blocking(move || db.load_blocking(path.as_ref(), caller)).await? })
    }

    /// Saves are batched: each joins a queue, and whoever holds the writer lock commits
    /// everything queued in one transaction (one fsync for many concurrent saves). Each save
    /// returns once the transaction holding it is committed.
    fn save<'a>(
        &'a self,
        path: &'a Path,
        value: Unit,
        by: SaveBy,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.queue().push(SaveRequest {
                path: path.clone(),
                value,
                by,
                done: tx,
            });
            {
                let _turn = self.inner.writer.lock().await;
                if !self.queue().is_empty() {
                    let db = self.clone();
                    blocking(move || db.run_queue()).await?;
                }
            }
            rx.await.map_err(|_| {
                StoreError::Storage("the save was dropped by the store's writer".to_owned())
            })?
        })
    }

    fn size<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let db = self.clone();
        let path = path.cloned();
        Box::pin(async move { blocking(move || db.size_blocking(path.as_ref(), caller)).await? })
    }
}

/// Registers `key` under `name` in `txn`, unless the key or the name is taken.
impl ProcTable for NodeDb {
    fn put(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.put_proc(record)).await? })
    }

    fn update(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.update_proc(record)).await? })
    }

    fn remove(&self, id: ProcId) -> BoxFuture<'_, Result<(), ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.remove_proc(&id).map(drop)).await? })
    }

    fn get(&self, id: ProcId) -> BoxFuture<'_, Result<Option<ProcRecord>, ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.proc(&id)).await? })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.procs()).await? })
    }

    fn live_local(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>> {
        let db = self.clone();
        Box::pin(async move { blocking(move || db.live_procs()).await? })
    }
}

impl crate::fs::FsMeta for NodeDb {
    fn apply(
        &self,
        actor: plexus_fs::Actor,
        now_ms: u64,
        op: crate::fs::FsOp,
    ) -> BoxFuture<'_, Result<(), crate::fs::FsError>> {
        let db = self.clone();
        Box::pin(async move {
            blocking(move || {
                let txn = db.inner.db.begin_write().db()?;
                FS.apply(&txn, &actor, now_ms, &op)?;
                txn.commit().db()?;
                Ok(())
            })
            .await?
        })
    }

    fn stat(
        &self,
        actor: plexus_fs::Actor,
        path: plexus_fs::FsPath,
    ) -> BoxFuture<'_, Result<crate::fs::Stat, crate::fs::FsError>> {
        let db = self.clone();
        Box::pin(async move {
            blocking(move || FS.stat(&db.inner.db.begin_read().db()?, &actor, &path)).await?
        })
    }

    fn list(
        &self,
        actor: plexus_fs::Actor,
        path: plexus_fs::FsPath,
    ) -> BoxFuture<'_, Result<Vec<(String, crate::fs::Stat)>, crate::fs::FsError>> {
        let db = self.clone();
        Box::pin(async move {
            blocking(move || FS.list(&db.inner.db.begin_read().db()?, &actor, &path)).await?
        })
    }

    fn chunk_rows_of(
        &self,
        hashes: Vec<[u8; 32]>,
    ) -> BoxFuture<'_, Result<Vec<Option<crate::fs::ChunkRow>>, crate::fs::FsError>> {
        let db = self.clone();
        Box::pin(async move {
            blocking(move || {
                let txn = db.inner.db.begin_read().db()?;
                let rows: Result<Vec<_>, StoreError> =
                    hashes.iter().map(|h| FS.chunk_row(&txn, h)).collect();
                Ok(rows?)
            })
            .await?
        })
    }

    fn chunk_rows(
        &self,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> BoxFuture<'_, Result<crate::fs::ChunkPage, crate::fs::FsError>> {
        let db = self.clone();
        Box::pin(async move {
            blocking(move || Ok(FS.chunk_rows(&db.inner.db.begin_read().db()?, after, max)?))
                .await?
        })
    }

    fn leads(&self) -> bool {
        true
    }
}

fn insert_user(txn: &WriteTransaction, key: [u8; 32], name: &str) -> Result<(), StoreError> {
    let mut users = txn.open_table(USERS).db()?;
    let mut names = txn.open_table(USER_NAMES).db()?;
    if let Some(existing) = users.get(&key).db()? {
        let existing = existing.value().to_owned();
        return Err(if existing == name {
            UserConflict::AlreadyRegistered { name: existing }
        } else {
            UserConflict::KeyTaken { existing }
        }
        .into());
    }
    if names.get(name).db()?.is_some() {
        return Err(UserConflict::NameTaken {
            name: name.to_owned(),
        }
        .into());
    }
    users.insert(&key, name).db()?;
    names.insert(name, &key).db()?;
    Ok(())
}
