//! The set of node keys allowed to link with this node.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use plexus_identity::PublicKey;

/// What an allowed key may do once linked. Transports accept both; the layers above decide
/// what each may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// A member of the cluster.
    Member,
    /// A pending invite: its link may only ask to join.
    Invite,
}

/// The node keys this node accepts links with: the known members of its cluster, and the
/// invite keys of nodes that may ask to join it.
///
/// Cloning gives another handle on the same set, so the membership layer can add joining
/// nodes and remove revoked ones while transports use it. A change applies to links set up
/// afterwards; links already up are the owner's to close.
#[derive(Clone, Debug, Default)]
pub struct Allow {
    keys: Arc<RwLock<BTreeMap<PublicKey, Standing>>>,
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

    /// Allows `key` as a member (an invite key becomes a member). Returns whether it was not
    /// allowed before.
    pub fn insert(&self, key: PublicKey) -> bool {
        self.write(|k| k.insert(key, Standing::Member).is_none())
    }

    /// Allows `key` as an invite, whose links may only ask to join; a member stays a member.
    /// Returns whether it was not allowed before.
    pub fn insert_invite(&self, key: PublicKey) -> bool {
        self.write(|k| {
            let new = !k.contains_key(&key);
            if new {
                k.insert(key, Standing::Invite);
            }
            new
        })
    }

    /// Revokes `key`. Returns whether it was there.
    pub fn remove(&self, key: &PublicKey) -> bool {
        self.write(|k| k.remove(key).is_some())
    }

    /// Whether `key` may link (as a member or an invite). Weak keys never may.
    pub fn contains(&self, key: &PublicKey) -> bool {
        !key.is_weak() && self.read(|k| k.contains_key(key))
    }

    /// Whether `key` is allowed as a member (not just as an invite).
    pub fn is_member(&self, key: &PublicKey) -> bool {
        !key.is_weak() && self.read(|k| k.get(key) == Some(&Standing::Member))
    }

    /// The allowed keys (members and invites), in byte order.
    pub fn keys(&self) -> Vec<PublicKey> {
        self.read(|k| k.keys().copied().collect())
    }

    /// How many keys are allowed.
    pub fn len(&self) -> usize {
        self.read(|k| k.len())
    }

    /// Whether no key is allowed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read<R>(&self, f: impl FnOnce(&BTreeMap<PublicKey, Standing>) -> R) -> R {
        match self.keys.read() {
            Ok(k) => f(&k),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut BTreeMap<PublicKey, Standing>) -> R) -> R {
        match self.keys.write() {
            Ok(mut k) => f(&mut k),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_identity::{KeyKind, Keypair};

    fn key() -> PublicKey {
        Keypair::generate(KeyKind::Node, "k", &mut rand::rngs::OsRng)
            .unwrap()
            .public()
    }

    #[test]
    fn invites_may_link_but_are_not_members() {
        let allow = Allow::new();
        let (member, invite) = (key(), key());
        assert!(allow.insert(member));
        assert!(allow.insert_invite(invite));
        assert!(allow.contains(&invite) && !allow.is_member(&invite));
        assert!(allow.contains(&member) && allow.is_member(&member));
        // A member never becomes an invite; an invite can become a member.
        assert!(!allow.insert_invite(member));
        assert!(allow.is_member(&member));
        assert!(!allow.insert(invite));
        assert!(allow.is_member(&invite));
        assert!(allow.remove(&invite));
        assert!(!allow.contains(&invite) && !allow.is_member(&invite));
    }
}
