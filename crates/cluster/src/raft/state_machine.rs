//! The replicated state machine on redb: io.store's units, users, services, invites, revoked
//! keys, node tags and the process table, plus the last applied log id and membership, all in
//! `cluster.redb`.
//!
//! Entries are applied in one open redb write transaction (`Shared::pending`) that also
//! records the last applied log id and that later applies continue; it is committed *without*
//! fsync after 20 ms or before anything reads the state, and with fsync about once a second:
//! after a crash the state machine is back at some earlier applied id, consistently, and
//! openraft re-applies the committed entries after it from the log (which is always fsynced
//! first). Building or installing a snapshot commits durably, which also makes every earlier
//! apply durable, so the state machine is never behind a purged log. Details: `docs/cluster-state.md`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use plexus_store::{
    save_entry, take_path, Caller, Owner, StoreError, MAX_ENTRY_BYTES, STORED_LIMITS,
};
use plexus_units::{code, Map, Path as UnitPath, Str, Unit};
use redb::{Durability, ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::db::{
    blocking, get_pc, put_pc, sto_err, Changes, DbFail, Shared, FS, INVITES, NODE_META, ONCE,
    PROCS, REVOKED, SERVICES, SETTLE_AFTER, SM_META, SNAPSHOT, UNITS, UNIT_ORDER, UNIT_OWNERS,
    USERS, USER_INVITES, USER_KEYS,
};
use super::node_id_of;
use super::types::{Command, RaftPeer, Response, TypeConfig};

/// Most invites waiting at once.
pub const MAX_INVITES: usize = 10_000;
/// Most services one node may announce.
pub const MAX_SERVICES: usize = 4096;
/// Longest service name, tag key or tag value, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most tags on one node.
pub const MAX_TAGS: usize = 256;

/// The snapshot format version ([`SnapshotState::format`]).
const SNAPSHOT_FORMAT: u32 = 6;

type StoResult<T> = Result<T, StorageError<u64>>;

/// The state machine of one node (its half of `cluster.redb`). Cheap to clone: clones share
/// the database. Built by [`crate::raft::open_storage`].
#[derive(Clone, Debug)]
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

/// Builds snapshots of a [`StateMachine`] (a consistent redb read of every table).
#[derive(Clone, Debug)]
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

/// The whole state machine as a snapshot carries it (postcard). The applied log id and the
/// membership travel in openraft's snapshot meta next to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotState {
    /// [`SNAPSHOT_FORMAT`].
    pub(crate) format: u32,
    /// io.store's entries in order: (encoded key, encoded value).
    pub(crate) units: Vec<(Vec<u8>, Vec<u8>)>,
    /// Users: (name, key), by name.
    pub(crate) users: Vec<(String, [u8; 32])>,
    /// Services: (node, names), by node.
    pub(crate) services: Vec<(u64, Vec<String>)>,
    /// Node tags, by node.
    pub(crate) node_meta: Vec<(u64, BTreeMap<String, String>)>,
    /// Invites: (id, expiry in ms).
    pub(crate) invites: Vec<([u8; 32], u64)>,
    /// Revoked keys.
    pub(crate) revoked: Vec<[u8; 32]>,
    /// User invites: (id, expiry in ms).
    pub(crate) user_invites: Vec<([u8; 32], u64)>,
    /// Which evaluation of each signed message saved: (message, its time, the time the
    /// record is kept by, evaluation).
    pub(crate) once: Vec<([u8; 32], u64, u64, u64)>,
    /// Signed messages at or before this time are refused; the latest message time seen.
    pub(crate) once_marks: (Option<u64>, Option<u64>),
    /// Owners of io.store's entries: (encoded key, `Owner::to_bytes`).
    pub(crate) owners: Vec<(Vec<u8>, Vec<u8>)>,
    /// The process table: encoded records (`plexus_store::ProcRecord::encode`), by id.
    pub(crate) procs: Vec<Vec<u8>>,
    /// The file system's metadata tables.
    pub(crate) fs: plexus_store::fs::FsDump,
}

impl SnapshotState {
    /// Decodes snapshot bytes (from a leader or the disk), refusing other formats.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotState, String> {
        let state: SnapshotState =
            postcard::from_bytes(bytes).map_err(|e| format!("snapshot does not decode: {e}"))?;
        if state.format != SNAPSHOT_FORMAT {
            return Err(format!(
                "snapshot format {} is not the supported {SNAPSHOT_FORMAT}",
                state.format
            ));
        }
        Ok(state)
    }
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The last applied log id and the membership it carries.
type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, RaftPeer>);

/// Decodes a stored or carried unit.
fn decode_unit(bytes: &[u8]) -> Result<Unit, String> {
    plexus_units::decode_bytes_with(Bytes::copy_from_slice(bytes), &STORED_LIMITS)
        .map_err(|e| e.to_string())
}

/// The encoded top-level key for a path's first segment.
fn key_bytes(seg: &Str) -> Vec<u8> {
    plexus_units::encode(&Unit::Str(seg.clone()))
}

/// The part of the state a command changed.
#[derive(Clone, Copy, Debug)]
enum Part {
    Store,
    Users,
    Services,
    Invites,
    Revoked,
    NodeMeta,
    Procs,
    Fs,
}

fn mark(c: &mut Changes, part: Part, index: u64) {
    match part {
        Part::Store => c.store = index,
        Part::Users => c.users = index,
        Part::Services => c.services = index,
        Part::Invites => c.invites = index,
        Part::Revoked => c.revoked = index,
        Part::NodeMeta => c.node_meta = index,
        Part::Procs => c.procs = index,
        Part::Fs => c.fs = index,
    }
}

/// One of the state machine's tables, opened in the write transaction on first use: a
/// batch of saves then opens the three tables a save touches, not all of them.
struct LazyTable<'t, K: redb::Key + 'static, V: redb::Value + 'static> {
    txn: &'t WriteTransaction,
    definition: redb::TableDefinition<'static, K, V>,
    table: Option<redb::Table<'t, K, V>>,
}

impl<'t, K: redb::Key + 'static, V: redb::Value + 'static> LazyTable<'t, K, V> {
    fn new(txn: &'t WriteTransaction, definition: redb::TableDefinition<'static, K, V>) -> Self {
        LazyTable {
            txn,
            definition,
            table: None,
        }
    }

    /// The table, opened now if it was not yet.
    fn table(&mut self) -> Result<&mut redb::Table<'t, K, V>, DbFail> {
        if self.table.is_none() {
            self.table = Some(self.txn.open_table(self.definition)?);
        }
        self.table
            .as_mut()
            .ok_or_else(|| DbFail("a table just opened is missing".to_owned()))
    }
}

/// The state machine's tables, open in one write transaction (each on first use).
struct Tables<'t> {
    txn: &'t WriteTransaction,
    units: LazyTable<'t, &'static [u8], (u64, &'static [u8])>,
    order: LazyTable<'t, u64, &'static [u8]>,
    owners: LazyTable<'t, &'static [u8], &'static [u8]>,
    users: LazyTable<'t, &'static str, &'static [u8; 32]>,
    user_keys: LazyTable<'t, &'static [u8; 32], &'static str>,
    services: LazyTable<'t, u64, &'static [u8]>,
    node_meta: LazyTable<'t, u64, &'static [u8]>,
    invites: LazyTable<'t, &'static [u8; 32], u64>,
    revoked: LazyTable<'t, &'static [u8; 32], ()>,
    user_invites: LazyTable<'t, &'static [u8; 32], u64>,
    /// The once tables, once opened; until then, the memory to open them with.
    once: Result<plexus_store::OpenOnce<'t>, Option<&'t mut plexus_store::OnceMemory>>,
}

impl<'t> Tables<'t> {
    /// The tables of `txn`; `once_memory` is the once-records' memory (`Shared::once`).
    /// Call [`Tables::close`] before committing `txn`.
    fn open(
        txn: &'t WriteTransaction,
        once_memory: &'t mut plexus_store::OnceMemory,
    ) -> Tables<'t> {
        Tables {
            txn,
            units: LazyTable::new(txn, UNITS),
            order: LazyTable::new(txn, UNIT_ORDER),
            owners: LazyTable::new(txn, UNIT_OWNERS),
            users: LazyTable::new(txn, USERS),
            user_keys: LazyTable::new(txn, USER_KEYS),
            services: LazyTable::new(txn, SERVICES),
            node_meta: LazyTable::new(txn, NODE_META),
            invites: LazyTable::new(txn, INVITES),
            revoked: LazyTable::new(txn, REVOKED),
            user_invites: LazyTable::new(txn, USER_INVITES),
            once: Err(Some(once_memory)),
        }
    }

    /// Writes what the once tables kept in memory (`plexus_store::OpenOnce::close`).
    fn close(self) -> Result<(), DbFail> {
        if let Ok(once) = self.once {
            once.close()?;
        }
        Ok(())
    }

    /// The once tables (`plexus_store::OnceTables`), opened now if they were not yet.
    fn once(&mut self) -> Result<&mut plexus_store::OpenOnce<'t>, DbFail> {
        if let Err(memory) = &mut self.once {
            let memory = memory
                .take()
                .ok_or_else(|| DbFail("the once tables failed to open before".to_owned()))?;
            self.once = Ok(ONCE.open(self.txn, memory)?);
        }
        match &mut self.once {
            Ok(once) => Ok(once),
            Err(_) => Err(DbFail("the once tables are not open".to_owned())),
        }
    }

    /// Empties every table.
    fn clear(&mut self) -> Result<(), DbFail> {
        self.units.table()?.retain(|_, _| false)?;
        self.order.table()?.retain(|_, _| false)?;
        self.owners.table()?.retain(|_, _| false)?;
        self.users.table()?.retain(|_, _| false)?;
        self.user_keys.table()?.retain(|_, _| false)?;
        self.services.table()?.retain(|_, _| false)?;
        self.node_meta.table()?.retain(|_, _| false)?;
        self.invites.table()?.retain(|_, _| false)?;
        self.revoked.table()?.retain(|_, _| false)?;
        self.user_invites.table()?.retain(|_, _| false)?;
        Ok(())
    }

    /// Replaces the whole state with `state`.
    fn replace(&mut self, state: &SnapshotState) -> Result<(), String> {
        self.clear()?;
        for (seq, (k, v)) in (0u64..).zip(&state.units) {
            self.order.table()?.insert(seq, k.as_slice()).map_err(s)?;
            self.units
                .table()?
                .insert(k.as_slice(), (seq, v.as_slice()))
                .map_err(s)?;
        }
        for (k, o) in &state.owners {
            self.owners
                .table()?
                .insert(k.as_slice(), o.as_slice())
                .map_err(s)?;
        }
        for (name, key) in &state.users {
            self.users.table()?.insert(name.as_str(), key).map_err(s)?;
            self.user_keys
                .table()?
                .insert(key, name.as_str())
                .map_err(s)?;
        }
        for (node, services) in &state.services {
            let b = postcard::to_allocvec(services).map_err(s)?;
            self.services
                .table()?
                .insert(*node, b.as_slice())
                .map_err(s)?;
        }
        for (node, tags) in &state.node_meta {
            let b = postcard::to_allocvec(tags).map_err(s)?;
            self.node_meta
                .table()?
                .insert(*node, b.as_slice())
                .map_err(s)?;
        }
        for (id, exp) in &state.invites {
            self.invites.table()?.insert(id, *exp).map_err(s)?;
        }
        for key in &state.revoked {
            self.revoked.table()?.insert(key, ()).map_err(s)?;
        }
        for (id, exp) in &state.user_invites {
            self.user_invites.table()?.insert(id, *exp).map_err(s)?;
        }
        let (floor, latest) = state.once_marks;
        let once = plexus_store::OnceState {
            records: state
                .once
                .iter()
                .map(
                    |&(message, time_ms, dated_ms, evaluation)| plexus_store::OnceRecord {
                        message,
                        time_ms,
                        dated_ms,
                        evaluation,
                    },
                )
                .collect(),
            floor,
            latest,
        };
        self.once()?.restore(&once).map_err(s)?;
        PROCS.restore(self.txn, &state.procs).map_err(s)?;
        FS.restore(self.txn, &state.fs).map_err(s)?;
        Ok(())
    }
}

/// Applies one command. The outer error is a storage failure (which aborts the whole batch
/// and stops raft); a refusal is an `Ok(Response::Err)` that changed nothing.
fn apply_command(t: &mut Tables<'_>, cmd: Command) -> Result<(Response, &'static [Part]), DbFail> {
    Ok(match cmd {
        Command::Save { path, value } => (save(t, path, value, None)?, &[Part::Store]),
        Command::SaveBy {
            path,
            value,
            user,
            admin,
            private,
            once,
        } => {
            let by = (Caller { user, admin }, private);
            apply_once(t, once, |t| {
                Ok((save(t, path, value, Some(by))?, &[Part::Store]))
            })?
        }
        Command::Once { once, command } => match *command {
            Command::Batch(_) | Command::Once { .. } => (
                Response::err("arg.bad", "a once command holds one plain command"),
                &[],
            ),
            command => apply_once(t, Some(once), |t| apply_command(t, command))?,
        },
        Command::SetUser { name, key } => (set_user(t, name, key)?, &[Part::Users]),
        Command::RemoveUser { name } => {
            let key = t.users.table()?.remove(name.as_str())?.map(|g| *g.value());
            match key {
                None => (
                    Response::err("not.found", format!("there is no user named {name}")),
                    &[],
                ),
                Some(key) => {
                    t.user_keys.table()?.remove(&key)?;
                    (Response::Ok, &[Part::Users])
                }
            }
        }
        Command::SetServices { node, services } => {
            if services.len() > MAX_SERVICES {
                return Ok((
                    Response::err(
                        "limit",
                        format!("a node provides at most {MAX_SERVICES} services"),
                    ),
                    &[],
                ));
            }
            if services.iter().any(|n| n.len() > MAX_NAME_BYTES) {
                return Ok((
                    Response::err(
                        "limit",
                        format!("a service name has at most {MAX_NAME_BYTES} bytes"),
                    ),
                    &[],
                ));
            }
            if services.is_empty() {
                t.services.table()?.remove(node)?;
            } else {
                let b = postcard::to_allocvec(&services).map_err(|e| DbFail(e.to_string()))?;
                t.services.table()?.insert(node, b.as_slice())?;
            }
            (Response::Ok, &[Part::Services])
        }
        Command::SetNodeMeta { node, tags } => {
            if tags.len() > MAX_TAGS
                || tags
                    .iter()
                    .any(|(k, v)| k.len() > MAX_NAME_BYTES || v.len() > MAX_NAME_BYTES)
            {
                return Ok((
                    Response::err(
                        "limit",
                        format!(
                            "a node has at most {MAX_TAGS} tags, of at most {MAX_NAME_BYTES} bytes each"
                        ),
                    ),
                    &[],
                ));
            }
            if tags.is_empty() {
                t.node_meta.table()?.remove(node)?;
            } else {
                let b = postcard::to_allocvec(&tags).map_err(|e| DbFail(e.to_string()))?;
                t.node_meta.table()?.insert(node, b.as_slice())?;
            }
            (Response::Ok, &[Part::NodeMeta])
        }
        Command::AddInvite { id, expires_ms } => {
            let exists = t.invites.table()?.get(&id)?.is_some();
            if !exists && t.invites.table()?.len()? >= MAX_INVITES as u64 {
                return Ok((
                    Response::err(
                        "limit",
                        format!(
                            "at most {MAX_INVITES} invites may wait at once; prune expired ones"
                        ),
                    ),
                    &[],
                ));
            }
            t.invites.table()?.insert(&id, expires_ms)?;
            (Response::Ok, &[Part::Invites])
        }
        Command::UseInvite { id, now_ms } => {
            let expiry = t.invites.table()?.get(&id)?.map(|g| g.value());
            match expiry {
                None => (
                    Response::err("invite.bad", "unknown or already used invite"),
                    &[],
                ),
                Some(exp) if exp <= now_ms => (Response::err("invite.bad", "expired invite"), &[]),
                Some(_) => {
                    t.invites.table()?.remove(&id)?;
                    t.invites.table()?.retain(|_, exp| exp > now_ms)?;
                    (Response::Ok, &[Part::Invites])
                }
            }
        }
        Command::PruneInvites { now_ms } => {
            t.invites.table()?.retain(|_, exp| exp > now_ms)?;
            (Response::Ok, &[Part::Invites])
        }
        // Batches are taken apart by `apply_batch`; one gets here only inside another.
        Command::Batch(_) => (Response::err("arg.bad", "a batch cannot hold a batch"), &[]),
        Command::PutProc { record } => {
            procs(plexus_store::ProcRecord::decode(&record).and_then(|r| PROCS.put(t.txn, r)))?
        }
        Command::UpdateProc { record } => {
            procs(plexus_store::ProcRecord::decode(&record).and_then(|r| PROCS.update(t.txn, r)))?
        }
        Command::RemoveProc { id } => {
            procs(plexus_store::ProcId::parse(&id).and_then(|id| PROCS.remove(t.txn, &id)))?
        }
        Command::Fs {
            op,
            user,
            admin,
            now_ms,
        } => match FS.apply(t.txn, &plexus_fs::Actor { user, admin }, now_ms, &op) {
            Ok(()) => (Response::Ok, &[Part::Fs]),
            Err(plexus_store::fs::FsError::Store(e)) => return Err(DbFail::from(e)),
            Err(e) => (Response::err(e.code(), e.to_string()), &[]),
        },
        Command::Revoke { key } => {
            t.revoked.table()?.insert(&key, ())?;
            let node = node_id_of(&key);
            t.services.table()?.remove(node)?;
            t.node_meta.table()?.remove(node)?;
            (
                Response::Ok,
                &[Part::Revoked, Part::Services, Part::NodeMeta],
            )
        }
        Command::AddUser { name, key } => {
            let has_name = t.users.table()?.get(name.as_str())?.is_some();
            let owner = t
                .user_keys
                .table()?
                .get(&key)?
                .map(|g| g.value().to_owned());
            match owner {
                Some(owner) if owner == name => (
                    Response::err(
                        "usr.registered",
                        format!("user {name} is already registered with this key"),
                    ),
                    &[],
                ),
                Some(owner) => (
                    Response::err(
                        "usr.key.taken",
                        format!("this key is already registered as {owner}"),
                    ),
                    &[],
                ),
                None if has_name => (
                    Response::err(
                        "usr.name.taken",
                        format!("the name {name} is taken by another key"),
                    ),
                    &[],
                ),
                None => (set_user(t, name, key)?, &[Part::Users]),
            }
        }
        Command::RenameUser { name, to } => {
            if let Err(e) = plexus_identity::validate_name(&to) {
                return Ok((Response::err("arg.bad", e.to_string()), &[]));
            }
            let key = t.users.table()?.get(name.as_str())?.map(|g| *g.value());
            let taken = name != to && t.users.table()?.get(to.as_str())?.is_some();
            match key {
                None => (
                    Response::err("not.found", format!("there is no user named {name}")),
                    &[],
                ),
                Some(_) if taken => (
                    Response::err(
                        "usr.name.taken",
                        format!("the name {to} is taken by another key"),
                    ),
                    &[],
                ),
                Some(key) => {
                    t.users.table()?.remove(name.as_str())?;
                    t.users.table()?.insert(to.as_str(), &key)?;
                    t.user_keys.table()?.insert(&key, to.as_str())?;
                    (Response::Ok, &[Part::Users])
                }
            }
        }
        Command::AddUserInvite { id, expires_ms } => {
            let exists = t.user_invites.table()?.get(&id)?.is_some();
            if !exists && t.user_invites.table()?.len()? >= MAX_INVITES as u64 {
                return Ok((
                    Response::err(
                        "limit",
                        format!(
                            "at most {MAX_INVITES} user invites may wait at once; prune expired ones"
                        ),
                    ),
                    &[],
                ));
            }
            t.user_invites.table()?.insert(&id, expires_ms)?;
            (Response::Ok, &[])
        }
        Command::AddInvitedUser {
            name,
            key,
            invite,
            now_ms,
        } => {
            let expiry = t.user_invites.table()?.get(&invite)?.map(|g| g.value());
            match expiry {
                None => (
                    Response::err("usr.invite.bad", "unknown or already used user invite"),
                    &[],
                ),
                Some(exp) if exp <= now_ms => {
                    (Response::err("usr.invite.bad", "expired user invite"), &[])
                }
                Some(_) => {
                    let added = apply_command(t, Command::AddUser { name, key })?;
                    if added.0.is_ok() {
                        t.user_invites.table()?.remove(&invite)?;
                        t.user_invites.table()?.retain(|_, exp| exp > now_ms)?;
                    }
                    added
                }
            }
        }
    })
}

/// Applies `apply` for the signed message `once` (hash, time, evaluation id), if any: only if
/// no other evaluation of it changed the state before, then records it in the same
/// transaction (`plexus_store::OnceTables`).
fn apply_once<'t>(
    t: &mut Tables<'t>,
    once: Option<([u8; 32], u64, u64)>,
    apply: impl FnOnce(&mut Tables<'t>) -> Result<(Response, &'static [Part]), DbFail>,
) -> Result<(Response, &'static [Part]), DbFail> {
    let once = once.map(|(message, time_ms, evaluation)| plexus_store::Once {
        message,
        time_ms,
        evaluation,
    });
    let checked = match &once {
        Some(once) => match t.once()?.check(once)? {
            Ok(checked) => Some((once, checked)),
            Err(e) => return Ok((store_error(e), &[])),
        },
        None => None,
    };
    let applied = apply(t)?;
    if let (Response::Ok, Some((once, checked))) = (&applied.0, checked) {
        t.once()?.record(once, checked)?;
    }
    Ok(applied)
}

/// A process-table operation's outcome: a storage failure aborts (as every command's does),
/// a refusal is a response that changed nothing.
fn procs<T>(
    outcome: Result<T, plexus_store::ProcError>,
) -> Result<(Response, &'static [Part]), DbFail> {
    match outcome {
        Ok(_) => Ok((Response::Ok, &[Part::Procs])),
        Err(plexus_store::ProcError::Store(e)) => Err(DbFail::from(e)),
        Err(e) => Ok((Response::err(e.code(), e.to_string()), &[])),
    }
}

fn store_error(e: StoreError) -> Response {
    Response::err(e.code(), e.to_string())
}

/// A save; `by` (the caller and the privacy asked for) applies the ownership rules, and a
/// save without it (`Command::Save`, from before owners were recorded) changes no owner.
fn save(
    t: &mut Tables<'_>,
    path: Vec<String>,
    value: Vec<u8>,
    by: Option<(Caller, Option<bool>)>,
) -> Result<Response, DbFail> {
    let Some(path) = UnitPath::new(path.into_iter().map(Str::from).collect()) else {
        return Ok(Response::err(
            code::BAD_ARGUMENT,
            "a save needs a path of at least one segment",
        ));
    };
    let value = match decode_unit(&value) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Response::err(
                code::BAD_ARGUMENT,
                format!("the value to save does not decode: {e}"),
            ))
        }
    };
    let Some(first) = path.segments().first() else {
        return Ok(Response::err(code::BAD_ARGUMENT, "a save needs a path"));
    };
    let key = key_bytes(first);
    let existing = t.units.table()?.get(key.as_slice())?.map(|g| {
        let (seq, v) = g.value();
        (seq, v.to_vec())
    });
    let owner = t
        .owners
        .table()?
        .get(key.as_slice())?
        .and_then(|g| Owner::from_bytes(g.value()));
    let new_owner = match by {
        None => owner,
        Some((caller, private)) => {
            match caller.save_owner(&path, existing.is_some(), owner, private) {
                Ok(o) => o,
                Err(e) => return Ok(store_error(e)),
            }
        }
    };
    let (seq, old) = match existing {
        Some((seq, bytes)) => match decode_unit(&bytes) {
            Ok(u) => (Some(seq), Some(u)),
            Err(e) => {
                return Ok(Response::err(
                    code::STORAGE,
                    format!("the stored entry is damaged: {e}"),
                ))
            }
        },
        None => (None, None),
    };
    let new = match save_entry(old, &path, value) {
        Ok(u) => plexus_units::encode(&u),
        Err(e) => return Ok(store_error(e)),
    };
    if new.len() > MAX_ENTRY_BYTES {
        let entry = UnitPath::new(vec![first.clone()])
            .map(|p| plexus_units::to_text(&Unit::Ref(p)))
            .unwrap_or_default();
        return Ok(Response::err(
            code::LIMIT,
            format!(
                "the store entry {entry} would take {} bytes; an entry holds at most {MAX_ENTRY_BYTES}",
                new.len()
            ),
        ));
    }
    let seq = match seq {
        Some(seq) => seq,
        None => {
            let next = match t.order.table()?.last()? {
                Some((k, _)) => k
                    .value()
                    .checked_add(1)
                    .ok_or_else(|| DbFail("the store's sequence numbers ran out".to_owned()))?,
                None => 0,
            };
            t.order.table()?.insert(next, key.as_slice())?;
            next
        }
    };
    t.units
        .table()?
        .insert(key.as_slice(), (seq, new.as_slice()))?;
    if new_owner != owner {
        if let Some(o) = new_owner {
            t.owners
                .table()?
                .insert(key.as_slice(), o.to_bytes().as_slice())?;
        }
    }
    Ok(Response::Ok)
}

fn set_user(t: &mut Tables<'_>, name: String, key: [u8; 32]) -> Result<Response, DbFail> {
    if let Err(e) = plexus_identity::validate_name(&name) {
        return Ok(Response::err("arg.bad", e.to_string()));
    }
    if let Err(e) = plexus_identity::PublicKey::from_bytes(&key) {
        return Ok(Response::err("arg.bad", e.to_string()));
    }
    let owner = t
        .user_keys
        .table()?
        .get(&key)?
        .map(|g| g.value().to_owned());
    match owner {
        Some(owner) if owner == name => return Ok(Response::Ok),
        Some(owner) => {
            return Ok(Response::err(
                "arg.bad",
                format!("this key is already registered as {owner}"),
            ))
        }
        None => {}
    }
    let old = t
        .users
        .table()?
        .insert(name.as_str(), &key)?
        .map(|g| *g.value());
    if let Some(old) = old {
        t.user_keys.table()?.remove(&old)?;
    }
    t.user_keys.table()?.insert(&key, name.as_str())?;
    Ok(Response::Ok)
}

/// How often applying also makes the state machine durable. Between two such commits the
/// entries are safe in the log; this bounds how much is re-applied after a crash and how much
/// redb holds back (it frees pages only at durable commits).
const SM_DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the next apply should be durable: the last durable one was [`SM_DURABLE_EVERY`]
/// ago (then it counts as done).
fn durable_due(shared: &Shared) -> bool {
    match shared.sm_durable_at.lock() {
        Ok(mut at) if at.elapsed() >= SM_DURABLE_EVERY => {
            *at = std::time::Instant::now();
            true
        }
        _ => false,
    }
}

/// Batches of up to this many commands are applied on the state machine's own task when the
/// apply is not durable (adding to the pending transaction takes µs; committing it, now and
/// then, tens of µs: less than the hand-off to a blocking thread and back); larger or durable
/// ones go to a blocking thread.
const APPLY_INLINE: usize = 64;

/// Applies a batch in the pending transaction ([`Shared::pending`]), which it commits if
/// `durable` (with fsync) or if it has been open for [`SETTLE_AFTER`] (without); gives the
/// responses and the changes. A failure drops the pending transaction with every apply in it;
/// raft stops on that error, and a restart applies them again from the log.
fn apply_batch(
    shared: &Shared,
    entries: Vec<Entry<TypeConfig>>,
    durable: bool,
) -> Result<(Vec<Response>, Changes), String> {
    let mut changes = *shared.changes.borrow();
    let mut slot = shared.pending()?;
    let mut once = shared.once()?;
    let applied = (|| {
        let mut pending = shared.take_pending(&mut slot)?;
        let out = apply_entries(&pending.txn, &mut once, entries, &mut changes)?;
        if durable {
            pending.txn.set_durability(Durability::Immediate);
            pending.txn.commit().map_err(s)?;
        } else if pending.since.elapsed() >= SETTLE_AFTER {
            pending.txn.commit().map_err(s)?;
        } else {
            *slot = Some(pending);
        }
        Ok(out)
    })();
    match applied {
        Ok(out) => Ok((out, changes)),
        Err(e) => {
            once.invalidate();
            Err(e)
        }
    }
}

/// Applies the command of entry `index` and marks the parts it changed.
fn apply_marked(
    t: &mut Tables<'_>,
    cmd: Command,
    index: u64,
    changes: &mut Changes,
) -> Result<Response, DbFail> {
    let (r, parts) = apply_command(t, cmd)?;
    for p in parts {
        mark(changes, *p, index);
    }
    Ok(r)
}

/// Applies `entries` in `txn`, recording the last one as applied.
fn apply_entries(
    txn: &WriteTransaction,
    once: &mut plexus_store::OnceMemory,
    entries: Vec<Entry<TypeConfig>>,
    changes: &mut Changes,
) -> Result<Vec<Response>, String> {
    let mut out = Vec::with_capacity(entries.len());
    let mut t = Tables::open(txn, once);
    let mut meta = txn.open_table(SM_META).map_err(s)?;
    let mut last = None;
    for entry in entries {
        let index = entry.log_id.index;
        let r = match entry.payload {
            EntryPayload::Blank => Response::Ok,
            EntryPayload::Normal(Command::Batch(cmds)) => Response::Batch(
                cmds.into_iter()
                    .map(|cmd| apply_marked(&mut t, cmd, index, changes))
                    .collect::<Result<_, _>>()?,
            ),
            EntryPayload::Normal(cmd) => apply_marked(&mut t, cmd, index, changes)?,
            EntryPayload::Membership(m) => {
                let stored = StoredMembership::new(Some(entry.log_id), m);
                put_pc(&mut meta, "membership", &stored)?;
                Response::Ok
            }
        };
        out.push(r);
        last = Some(entry.log_id);
    }
    if let Some(last) = last {
        put_pc(&mut meta, "applied", &last)?;
        changes.applied = last.index;
    }
    t.close()?;
    Ok(out)
}

/// The last applied log id and membership.
fn applied_state_in(txn: &ReadTransaction) -> Result<AppliedState, String> {
    let meta = txn.open_table(SM_META).map_err(s)?;
    let applied: Option<LogId<u64>> = get_pc(&meta, "applied")?;
    let membership: Option<StoredMembership<u64, RaftPeer>> = get_pc(&meta, "membership")?;
    Ok((applied, membership.unwrap_or_default()))
}

/// Reads the whole state.
fn read_state(txn: &ReadTransaction) -> Result<SnapshotState, String> {
    let mut state = SnapshotState {
        format: SNAPSHOT_FORMAT,
        ..SnapshotState::default()
    };
    let units = txn.open_table(UNITS).map_err(s)?;
    let order = txn.open_table(UNIT_ORDER).map_err(s)?;
    for row in order.iter().map_err(s)? {
        let (_, k) = row.map_err(s)?;
        let k = k.value();
        let v = units
            .get(k)
            .map_err(s)?
            .ok_or("an ordered store key has no entry")?;
        state.units.push((k.to_vec(), v.value().1.to_vec()));
    }
    for row in txn.open_table(USERS).map_err(s)?.iter().map_err(s)? {
        let (name, key) = row.map_err(s)?;
        state.users.push((name.value().to_owned(), *key.value()));
    }
    for row in txn.open_table(SERVICES).map_err(s)?.iter().map_err(s)? {
        let (node, b) = row.map_err(s)?;
        let names: Vec<String> = postcard::from_bytes(b.value()).map_err(s)?;
        state.services.push((node.value(), names));
    }
    for row in txn.open_table(NODE_META).map_err(s)?.iter().map_err(s)? {
        let (node, b) = row.map_err(s)?;
        let tags: BTreeMap<String, String> = postcard::from_bytes(b.value()).map_err(s)?;
        state.node_meta.push((node.value(), tags));
    }
    for row in txn.open_table(INVITES).map_err(s)?.iter().map_err(s)? {
        let (id, exp) = row.map_err(s)?;
        state.invites.push((*id.value(), exp.value()));
    }
    for row in txn.open_table(REVOKED).map_err(s)?.iter().map_err(s)? {
        let (key, _) = row.map_err(s)?;
        state.revoked.push(*key.value());
    }
    for row in txn.open_table(USER_INVITES).map_err(s)?.iter().map_err(s)? {
        let (id, exp) = row.map_err(s)?;
        state.user_invites.push((*id.value(), exp.value()));
    }
    for row in txn.open_table(UNIT_OWNERS).map_err(s)?.iter().map_err(s)? {
        let (k, o) = row.map_err(s)?;
        state.owners.push((k.value().to_vec(), o.value().to_vec()));
    }
    let once = ONCE.dump(txn).map_err(s)?;
    state.once = once
        .records
        .iter()
        .map(|r| (r.message, r.time_ms, r.dated_ms, r.evaluation))
        .collect();
    state.once_marks = (once.floor, once.latest);
    state.procs = PROCS.dump(txn).map_err(s)?;
    state.fs = FS.dump(txn).map_err(s)?;
    Ok(state)
}

/// Stores `meta` and `data` as the current snapshot (durably) unless a newer one is there.
fn store_snapshot(
    txn: &WriteTransaction,
    meta: &SnapshotMeta<u64, RaftPeer>,
    data: &[u8],
) -> Result<(), String> {
    let mut table = txn.open_table(SNAPSHOT).map_err(s)?;
    let current: Option<SnapshotMeta<u64, RaftPeer>> = get_pc(&table, "meta")?;
    if current.is_some_and(|c| c.last_log_id > meta.last_log_id) {
        return Ok(());
    }
    put_pc(&mut table, "meta", meta)?;
    table.insert("data", data).map_err(s)?;
    Ok(())
}

fn snapshot_id(last: Option<LogId<u64>>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    match last {
        Some(l) => format!("{l}-{nanos}"),
        None => format!("empty-{nanos}"),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoResult<Snapshot<TypeConfig>> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, move || {
            let (meta, data) = {
                let txn = shared.read()?;
                let (applied, membership) = applied_state_in(&txn)?;
                let state = read_state(&txn)?;
                let data = postcard::to_allocvec(&state).map_err(s)?;
                let meta = SnapshotMeta {
                    last_log_id: applied,
                    last_membership: membership,
                    snapshot_id: snapshot_id(applied),
                };
                (meta, data)
            };
            // A durable commit: it also makes every apply before it durable, so the state
            // machine on disk is never behind this snapshot (and the log purged after it).
            shared.write(true, |txn| store_snapshot(txn, &meta, &data))?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StoResult<AppliedState> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::StateMachine, ErrorVerb::Read, move || {
            let txn = shared.read()?;
            applied_state_in(&txn)
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> StoResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let durable = durable_due(&self.shared);
        let commands: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(Command::Batch(cmds)) => cmds.len(),
                _ => 1,
            })
            .sum();
        let (responses, changes) = if !durable && commands <= APPLY_INLINE {
            apply_batch(&self.shared, entries, false)
                .map_err(|why| sto_err(ErrorSubject::StateMachine, ErrorVerb::Write, why))?
        } else {
            let shared = self.shared.clone();
            blocking(ErrorSubject::StateMachine, ErrorVerb::Write, move || {
                apply_batch(&shared, entries, durable)
            })
            .await?
        };
        self.shared.changes.send_modify(|c| {
            let (members, leader, term) = (c.members, c.leader, c.term);
            *c = Changes {
                members,
                leader,
                term,
                ..changes
            };
        });
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, RaftPeer>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoResult<()> {
        let data = snapshot.into_inner();
        let sig = Some(meta.signature());
        let state = SnapshotState::decode(&data)
            .map_err(|why| sto_err(ErrorSubject::Snapshot(sig.clone()), ErrorVerb::Read, why))?;
        let shared = self.shared.clone();
        let meta = meta.clone();
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        blocking(ErrorSubject::Snapshot(sig), ErrorVerb::Write, move || {
            // Immediate durability: the log may be purged right after.
            shared.write(true, |txn| {
                {
                    let mut once = shared.once()?;
                    let mut t = Tables::open(txn, &mut once);
                    t.replace(&state)?;
                    t.close()?;
                    let mut sm = txn.open_table(SM_META).map_err(DbFail::from)?;
                    match &meta.last_log_id {
                        Some(l) => put_pc(&mut sm, "applied", l)?,
                        None => {
                            sm.remove("applied").map_err(DbFail::from)?;
                        }
                    }
                    put_pc(&mut sm, "membership", &meta.last_membership)?;
                }
                store_snapshot(txn, &meta, &data)
            })
        })
        .await?;
        self.shared.changes.send_modify(|c| {
            c.applied = index;
            c.store = index;
            c.users = index;
            c.services = index;
            c.invites = index;
            c.revoked = index;
            c.node_meta = index;
            c.procs = index;
            c.fs = index;
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoResult<Option<Snapshot<TypeConfig>>> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Read, move || {
            let txn = shared.read()?;
            let table = txn.open_table(SNAPSHOT).map_err(DbFail::from)?;
            let meta: Option<SnapshotMeta<u64, RaftPeer>> = get_pc(&table, "meta")?;
            let Some(meta) = meta else {
                return Ok(None);
            };
            let data = table
                .get("data")
                .map_err(DbFail::from)?
                .map(|g| g.value().to_vec())
                .unwrap_or_default();
            Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
        })
        .await
    }
}

/// Reads of the local state machine, for [`crate::raft::ClusterRaft`]. Each is one redb read
/// transaction (a consistent view); errors are storage failures as text.
impl Shared {
    /// The whole store as one encoded map (`None` or an empty path), or the encoded unit at
    /// `path` (`None` if nothing is there).
    pub(crate) fn load(&self, path: Option<&[String]>) -> Result<Option<Vec<u8>>, String> {
        self.load_as(path, None)
    }

    /// [`Shared::load`] as `caller` may see it (`None`: everything): others' private
    /// entries are left out of the whole store, and a path inside one is not there.
    pub(crate) fn load_as(
        &self,
        path: Option<&[String]>,
        caller: Option<Caller>,
    ) -> Result<Option<Vec<u8>>, String> {
        let txn = self.read()?;
        let units = txn.open_table(UNITS).map_err(s)?;
        let owners = txn.open_table(UNIT_OWNERS).map_err(s)?;
        let readable = |key: &[u8]| -> Result<bool, String> {
            let Some(caller) = caller else {
                return Ok(true);
            };
            let owner = owners
                .get(key)
                .map_err(s)?
                .and_then(|g| Owner::from_bytes(g.value()));
            Ok(caller.may_read(owner.as_ref()))
        };
        let segs: Vec<Str> = path
            .unwrap_or_default()
            .iter()
            .map(|p| Str::from(p.as_str()))
            .collect();
        let Some(first) = segs.first() else {
            let order = txn.open_table(UNIT_ORDER).map_err(s)?;
            let mut entries = Vec::new();
            for row in order.iter().map_err(s)? {
                let (_, k) = row.map_err(s)?;
                let k = k.value();
                if !readable(k)? {
                    continue;
                }
                let v = units
                    .get(k)
                    .map_err(s)?
                    .ok_or("an ordered store key has no entry")?;
                entries.push((decode_unit(k)?, decode_unit(v.value().1)?));
            }
            let map = Map::from_entries(entries).map_err(s)?;
            return Ok(Some(plexus_units::encode(&Unit::Map(map))));
        };
        let key = key_bytes(first);
        if !readable(&key)? {
            return Ok(None);
        }
        let Some(entry) = units.get(key.as_slice()).map_err(s)? else {
            return Ok(None);
        };
        let bytes = entry.value().1;
        if segs.len() == 1 {
            return Ok(Some(bytes.to_vec()));
        }
        let u = decode_unit(bytes)?;
        Ok(take_path(u, segs.get(1..).unwrap_or_default()).map(|u| plexus_units::encode(&u)))
    }

    /// Users: (name, key), by name.
    pub(crate) fn users(&self) -> Result<Vec<(String, [u8; 32])>, String> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for row in txn.open_table(USERS).map_err(s)?.iter().map_err(s)? {
            let (name, key) = row.map_err(s)?;
            out.push((name.value().to_owned(), *key.value()));
        }
        Ok(out)
    }

    /// The service table.
    pub(crate) fn services(&self) -> Result<BTreeMap<u64, Vec<String>>, String> {
        let txn = self.read()?;
        let mut out = BTreeMap::new();
        for row in txn.open_table(SERVICES).map_err(s)?.iter().map_err(s)? {
            let (node, b) = row.map_err(s)?;
            out.insert(node.value(), postcard::from_bytes(b.value()).map_err(s)?);
        }
        Ok(out)
    }

    /// Node tags.
    pub(crate) fn node_meta(&self) -> Result<BTreeMap<u64, BTreeMap<String, String>>, String> {
        let txn = self.read()?;
        let mut out = BTreeMap::new();
        for row in txn.open_table(NODE_META).map_err(s)?.iter().map_err(s)? {
            let (node, b) = row.map_err(s)?;
            out.insert(node.value(), postcard::from_bytes(b.value()).map_err(s)?);
        }
        Ok(out)
    }

    /// Invites not expired at `now_ms`.
    pub(crate) fn invites(&self, now_ms: u64) -> Result<Vec<[u8; 32]>, String> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for row in txn.open_table(INVITES).map_err(s)?.iter().map_err(s)? {
            let (id, exp) = row.map_err(s)?;
            if exp.value() > now_ms {
                out.push(*id.value());
            }
        }
        Ok(out)
    }

    /// The process table, by id.
    /// The file tree's metadata at `path` for `actor`, from this state machine.
    pub(crate) fn fs_stat(
        &self,
        actor: &plexus_fs::Actor,
        path: &plexus_fs::FsPath,
    ) -> Result<plexus_store::fs::Stat, plexus_store::fs::FsError> {
        let txn = self.read().map_err(StoreError::Storage)?;
        FS.stat(&txn, actor, path)
    }

    /// The entries of the directory at `path` for `actor`, from this state machine.
    pub(crate) fn fs_list(
        &self,
        actor: &plexus_fs::Actor,
        path: &plexus_fs::FsPath,
    ) -> Result<Vec<(String, plexus_store::fs::Stat)>, plexus_store::fs::FsError> {
        let txn = self.read().map_err(StoreError::Storage)?;
        FS.list(&txn, actor, path)
    }

    /// The rows of the chunks `hashes`, from this state machine.
    pub(crate) fn fs_chunk_rows_of(
        &self,
        hashes: &[[u8; 32]],
    ) -> Result<Vec<Option<plexus_store::fs::ChunkRow>>, plexus_store::fs::FsError> {
        let txn = self.read().map_err(StoreError::Storage)?;
        let rows: Result<Vec<_>, StoreError> =
            hashes.iter().map(|h| FS.chunk_row(&txn, h)).collect();
        Ok(rows?)
    }

    /// A page of chunk rows, from this state machine.
    pub(crate) fn fs_chunk_rows(
        &self,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> Result<plexus_store::fs::ChunkPage, plexus_store::fs::FsError> {
        let txn = self.read().map_err(StoreError::Storage)?;
        Ok(FS.chunk_rows(&txn, after, max)?)
    }

    pub(crate) fn procs(&self) -> Result<Vec<plexus_store::ProcRecord>, String> {
        PROCS.list(&self.read()?).map_err(s)
    }

    /// The live (not ended) process records, by id, as of the last committed applies (see
    /// [`Shared::read_committed`]).
    pub(crate) fn live_procs(&self) -> Result<Vec<plexus_store::ProcRecord>, String> {
        PROCS.live(&self.read_committed()?).map_err(s)
    }

    /// Whether a process record has `id`, as of the last committed applies.
    pub(crate) fn has_proc(&self, id: &plexus_store::ProcId) -> Result<bool, String> {
        Ok(PROCS.get(&self.read_committed()?, id).map_err(s)?.is_some())
    }

    /// The process record with `id`, if any.
    pub(crate) fn proc(
        &self,
        id: &plexus_store::ProcId,
    ) -> Result<Option<plexus_store::ProcRecord>, String> {
        PROCS.get(&self.read()?, id).map_err(s)
    }

    /// Revoked keys.
    pub(crate) fn revoked(&self) -> Result<Vec<[u8; 32]>, String> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for row in txn.open_table(REVOKED).map_err(s)?.iter().map_err(s)? {
            let (key, _) = row.map_err(s)?;
            out.push(*key.value());
        }
        Ok(out)
    }
}
