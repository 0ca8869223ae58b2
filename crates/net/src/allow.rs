//! The set of node keys allowed to link with this node.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use plexus_identity::PublicKey;

/// The node keys this node accepts links with: the known members of its cluster.
///
/// Cloning gives another handle on the same set, so the membership layer can add joining
/// nodes and remove revoked ones while transports use it. A change applies to links set up
/// afterwards; links already up are the owner's to close.
#[derive(Clone, Debug, Default)]
pub struct Allow {
    keys: Arc<RwLock<BTreeSet<PublicKey>>>,
}

impl Allow {
    /// An empty set: every peer is refused.
    pub fn new() -> Allow {
        Allow::default()
    }

    /// A set holding `keys`.
    pub fn with_keys(keys: impl IntoIterator<Item = PublicKey>) -> Allow {
        let allow = Allow::new();
        for k in keys {
            allow.insert(k);
        }
        allow
    }

    /// Allows `key`. Returns whether it was newly added.
    pub fn insert(&self, key: PublicKey) -> bool {
        match self.keys.write() {
            Ok(mut k) => k.insert(key),
            Err(poisoned) => poisoned.into_inner().insert(key),
        }
    }

    /// Revokes `key`. Returns whether it was there.
    pub fn remove(&self, key: &PublicKey) -> bool {
        match self.keys.write() {
            Ok(mut k) => k.remove(key),
            Err(poisoned) => poisoned.into_inner().remove(key),
        }
    }

    /// Whether `key` is allowed. Weak keys never are.
    pub fn contains(&self, key: &PublicKey) -> bool {
        if key.is_weak() {
            return false;
        }
        match self.keys.read() {
            Ok(k) => k.contains(key),
            Err(poisoned) => poisoned.into_inner().contains(key),
        }
    }

    /// The allowed keys, in byte order.
    pub fn keys(&self) -> Vec<PublicKey> {
        match self.keys.read() {
            Ok(k) => k.iter().copied().collect(),
            Err(poisoned) => poisoned.into_inner().iter().copied().collect(),
        }
    }

    /// How many keys are allowed.
    pub fn len(&self) -> usize {
        match self.keys.read() {
            Ok(k) => k.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Whether no key is allowed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
