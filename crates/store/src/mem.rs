//! A unit store in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use plexus_units::{Map, Path, Str, Unit};

use crate::{save_entry, size, take_path, BoxFuture, Caller, Owner, SaveBy, StoreError, UnitStore};

/// A [`UnitStore`] kept in memory, with the same semantics and limits as [`crate::NodeDb`]
/// but no durability: for tests and throw-away nodes.
#[derive(Debug, Default)]
pub struct MemStore {
    root: Mutex<(Map, HashMap<Str, Owner>)>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A store holding `content`.
    pub fn with(content: Map) -> MemStore {
        MemStore {
            root: Mutex::new((content, HashMap::new())),
        }
    }

    fn root(&self) -> std::sync::MutexGuard<'_, (Map, HashMap<Str, Owner>)> {
        // A panic while holding the lock cannot leave the map half-changed (each change is
        // one insert), so a poisoned lock is still usable.
        self.root.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_now(&self, path: Option<&Path>, caller: Caller) -> Result<Unit, StoreError> {
        let root = self.root();
        let (map, owners) = &*root;
        let readable = |k: &Str| caller.may_read(owners.get(k));
        let Some(path) = path else {
            let visible = map
                .iter()
                .filter(|(k, _)| k.as_str().is_none_or(|k| readable(&Str::from(k))))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return Map::from_entries(visible)
                .map(Unit::Map)
                .map_err(|e| StoreError::Corrupt(e.to_string()));
        };
        let segs = path.segments();
        let entry = segs
            .first()
            .filter(|k| readable(k))
            .and_then(|k| map.get_str(k))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(path.clone()))?;
        drop(root);
        take_path(entry, segs.get(1..).unwrap_or_default())
            .ok_or_else(|| StoreError::NotFound(path.clone()))
    }

    fn save_now(&self, path: &Path, value: Unit, by: SaveBy) -> Result<(), StoreError> {
        let Some(first) = path.segments().first() else {
            return Ok(());
        };
        let key = Unit::Str(first.clone());
        let mut root = self.root();
        let (map, owners) = &mut *root;
        let existing = map.get(&key).cloned();
        let owner = owners.get(first).copied();
        let new_owner = by
            .caller
            .save_owner(path, existing.is_some(), owner, by.private)?;
        let new = save_entry(existing, path, value)?;
        crate::check_encoded(&plexus_units::encode(&new), path.segments())?;
        map.insert(key, new);
        if let Some(o) = new_owner {
            owners.insert(first.clone(), o);
        }
        Ok(())
    }
}

impl UnitStore for MemStore {
    fn load<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<Unit, StoreError>> {
        Box::pin(async move { self.load_now(path, caller) })
    }

    fn save<'a>(
        &'a self,
        path: &'a Path,
        value: Unit,
        by: SaveBy,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.save_now(path, value, by) })
    }

    fn size<'a>(
        &'a self,
        path: Option<&'a Path>,
        caller: Caller,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { self.load_now(path, caller).map(|u| size(&u)) })
    }
}
