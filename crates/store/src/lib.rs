//! Plexus node storage: the unit store behind `io.store`, node metadata and users.
//!
//! - [`merge_with`] and [`save_at`]: vnix's merge semantics as pure functions (no I/O), fixed
//!   so that saving to a new path creates it;
//! - [`size`] and [`SizeUnit`]: sizes as canonical encoded bytes;
//! - [`UnitStore`]: what `io.store` needs from a store (load, save with merge semantics,
//!   size). A single node uses [`NodeDb`]; a replicated store can implement the same trait;
//!   [`MemStore`] keeps everything in memory (tests, throw-away nodes);
//! - [`NodeDb`]: the node's database on redb, in the node's data directory: the unit store,
//!   the node's persistent id and name ([`NodeMeta`]) and the user registry. Every write is a
//!   committed, fsynced transaction before it returns. Layout and guarantees:
//!   `docs/storage.md`;
//! - [`procs`]: the process table ([`ProcRecord`], kept in [`ProcTables`], served through the
//!   [`ProcTable`] trait by [`NodeDb`] and the cluster), and [`PsTable`], its `plx ps` view;
//! - [`chunks`]: a node's store of file-system content chunks, one checked file per chunk;
//! - [`fs`]: the cluster file system's metadata ([`fs::FsTables`]: directories, files and
//!   their chunk lists, with owners and modes checked on every operation).
//!
//! ```
//! use plexus_store::{merge_with, save_at};
//! use plexus_units::{parse, Path};
//!
//! let mut root = parse("{txt:{hello:hi}}").unwrap();
//! save_at(&mut root, &Path::parse_dotted("txt.lang").unwrap(), parse("rust").unwrap()).unwrap();
//! save_at(&mut root, &Path::parse_dotted("new.list").unwrap(), parse("[1]").unwrap()).unwrap();
//! assert_eq!(root, parse("{txt:{hello:hi lang:rust} new:{list:[1]}}").unwrap());
//! assert_eq!(merge_with(parse("[1 2]").unwrap(), parse("[3]").unwrap()), parse("[1 2 3]").unwrap());
//! ```

pub mod chunks;
mod db;
mod error;
pub mod fs;
mod mem;
mod merge;
mod once;
mod owner;
pub mod procs;
mod ps;
mod size;

pub use db::{NodeDb, NodeMeta, CACHE_BYTES, DB_FILE};
pub use error::{StoreError, UserConflict};
pub use mem::MemStore;
pub use merge::{merge_with, save_at, SaveError};
pub use once::{
    Checked, Once, OnceMemory, OnceRecord, OnceState, OnceTables, OpenOnce, MAX_ONCE_RECORDS,
    ONCE_RETENTION_MS,
};
pub use owner::{Caller, Owner, SaveBy};
pub use procs::{
    put_with_fresh_id, unused_id, Enforced, Incoming, Outgoing, PipeTarget, Placement, ProcError,
    ProcId, ProcRecord, ProcState, ProcTable, ProcTables, RestartPolicy, Wiring,
};
pub use ps::{bytes_short, ps_order, LiveFigures, PsTable};
pub use size::{size, SizeUnit};

use std::future::Future;
use std::pin::Pin;

use plexus_units::{Path, Str, Unit};

/// A boxed future that can move between threads: what [`UnitStore`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Deepest value one top-level store entry may hold: one less than the default message
/// depth, so the whole store (a map of entries) is still a unit any node accepts.
pub const MAX_ENTRY_DEPTH: usize = plexus_units::Limits::DEFAULT.max_depth - 1;

/// Largest encoded size of one top-level store entry (a save that would grow an entry beyond
/// it is refused).
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

/// Limits for decoding what the store wrote itself: the limits of units in binary form
/// ([`plexus_units::Limits::WIRE`]), for entries up to [`MAX_ENTRY_BYTES`]. A replicated
/// store decodes its stored entries (and the values carried by its log) with the same limits.
pub const STORED_LIMITS: plexus_units::Limits = plexus_units::Limits {
    max_size: MAX_ENTRY_BYTES + 1,
    ..plexus_units::Limits::WIRE
};

/// A store of units addressed by paths: the interface `io.store` uses.
///
/// The store's content is one map; a path's first segment names a top-level key.
/// Implementations: [`NodeDb`] (one node, durable), [`MemStore`] (memory); a replicated store
/// will implement it for the cluster.
pub trait UnitStore: Send + Sync + 'static {
    /// The whole store (`None`) or the unit at `path`, as `caller` may see it: others'
    /// private entries are left out of the whole store, and loading a path inside one is
    /// [`StoreError::NotFound`], as is a path that is not in the store.
    fn load<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<Unit, StoreError>>;

    /// Saves `value` at `path` with merge semantics ([`save_at`]): an existing unit there
    /// becomes `merge_with(old, value)`; a missing path is created. Durable when it returns
    /// `Ok`. A path through a scalar is [`StoreError::Save`] and changes nothing; an entry
    /// beyond [`MAX_ENTRY_DEPTH`] or [`MAX_ENTRY_BYTES`] is [`StoreError::Limit`].
    ///
    /// The save is made by `by.caller`, under the ownership rules of [`Caller::save_owner`]
    /// ([`StoreError::Denied`] otherwise). A save made for a signed message carries its
    /// [`Once`]: a durable store applies it only if no other evaluation of that message saved
    /// before ([`StoreError::Replayed`] otherwise; see [`OnceTables`]). [`MemStore`] keeps no
    /// such records.
    fn save<'a>(
        &'a self,
        path: &'a Path,
        value: Unit,
        by: SaveBy,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The size ([`size`]) of the whole store or of the unit at `path`, in bytes, as
    /// `caller` may see it ([`UnitStore::load`]).
    fn size<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// The new value of a top-level entry after saving `value` at `path` (whose first segment
/// names the entry), given the entry's current value (`None` if the store has no such
/// entry): [`save_at`] below the first segment, or the value nested in new maps for a new
/// entry. Checked against [`MAX_ENTRY_DEPTH`]; the caller checks the encoded size against
/// [`MAX_ENTRY_BYTES`].
///
/// Every store (this crate's and the replicated one's state machine) applies a save with
/// this function, so a save means the same everywhere. On error (`Save` for a path through
/// a scalar, `Limit`) nothing is returned and the caller keeps the old entry.
pub fn save_entry(existing: Option<Unit>, path: &Path, value: Unit) -> Result<Unit, StoreError> {
    let segs = path.segments();
    let new = match existing {
        Some(mut v) => {
            merge::save_in(&mut v, path, 1, value)?;
            v
        }
        None => merge::nest(segs.get(1..).unwrap_or_default(), value),
    };
    check_entry(&new, path)?;
    Ok(new)
}

/// Checks a top-level entry against [`MAX_ENTRY_DEPTH`] (the size is checked when encoded).
pub(crate) fn check_entry(v: &Unit, path: &Path) -> Result<(), StoreError> {
    if v.depth() > MAX_ENTRY_DEPTH {
        return Err(StoreError::Limit(format!(
            "saving at {} would nest the store entry {} deeper than {MAX_ENTRY_DEPTH} levels",
            merge::ref_text(path.segments()),
            merge::ref_text(path.segments().get(..1).unwrap_or_default()),
        )));
    }
    Ok(())
}

/// Checks an encoded top-level entry against [`MAX_ENTRY_BYTES`].
pub(crate) fn check_encoded(bytes: &[u8], key: &[Str]) -> Result<(), StoreError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(StoreError::Limit(format!(
            "the store entry {} would take {} bytes; an entry holds at most {MAX_ENTRY_BYTES}",
            merge::ref_text(key),
            bytes.len()
        )));
    }
    Ok(())
}

/// The unit at `segs` inside `u`, moved out (no copy); `None` if the path is not there.
/// Segments are read as [`Unit::find`] reads them. Loading a path from a store is
/// `take_path(entry, &path[1..])` on the top-level entry named by `path[0]`.
pub fn take_path(mut u: Unit, segs: &[Str]) -> Option<Unit> {
    for seg in segs {
        u = match u {
            Unit::Pair(p) => match &**seg {
                "0" => p.0,
                "1" => p.1,
                _ => return None,
            },
            Unit::List(l) => {
                let i = seg.parse::<usize>().ok()?;
                l.into_iter().nth(i)?
            }
            Unit::Map(m) => m
                .into_entries()
                .into_iter()
                .find(|(k, _)| k.as_str() == Some(&**seg))
                .map(|(_, v)| v)?,
            _ => return None,
        };
    }
    Some(u)
}
