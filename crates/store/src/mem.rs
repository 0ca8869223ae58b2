//! A unit store in memory.

use std::sync::Mutex;

use plexus_units::{Map, Path, Unit};

use crate::{save_entry, size, take_path, BoxFuture, Once, StoreError, UnitStore};

/// A [`UnitStore`] kept in memory, with the same semantics and limits as [`crate::NodeDb`]
/// but no durability: for tests and throw-away nodes.
#[derive(Debug, Default)]
pub struct MemStore {
    root: Mutex<Map>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A store holding `content`.
    pub fn with(content: Map) -> MemStore {
        MemStore {
            root: Mutex::new(content),
        }
    }

    fn root(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave the map half-changed (each change is
        // one insert), so a poisoned lock is still usable.
        self.root.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load_now(&self, path: Option<&Path>) -> Result<Unit, StoreError> {
        let root = self.root();
        let Some(path) = path else {
            return Ok(Unit::Map(root.clone()));
        };
        let segs = path.segments();
        let entry = segs
            .first()
            .and_then(|k| root.get_str(k))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(path.clone()))?;
        drop(root);
        take_path(entry, segs.get(1..).unwrap_or_default())
            .ok_or_else(|| StoreError::NotFound(path.clone()))
    }

    fn save_now(&self, path: &Path, value: Unit) -> Result<(), StoreError> {
        let Some(key) = path.segments().first() else {
            return Ok(());
        };
        let key = Unit::Str(key.clone());
        let mut root = self.root();
        let new = save_entry(root.get(&key).cloned(), path, value)?;
        crate::check_encoded(&plexus_units::encode(&new), path.segments())?;
        root.insert(key, new);
        Ok(())
    }
}

impl UnitStore for MemStore {
    fn load<'a>(&'a self, path: Option<&'a Path>) -> BoxFuture<'a, Result<Unit, StoreError>> {
        Box::pin(async move { self.load_now(path) })
    }

    fn save<'a>(
        &'a self,
        path: &'a Path,
        value: Unit,
        _once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.save_now(path, value) })
    }

    fn size<'a>(&'a self, path: Option<&'a Path>) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { self.load_now(path).map(|u| size(&u)) })
    }
}
