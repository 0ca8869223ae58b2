//! What membership puts on the wire: the foca identity and the metadata messages.
//!
//! Every packet starts with one kind byte: [`KIND_SWIM`] (a foca packet, postcard-encoded
//! header and cluster updates) or [`KIND_META`] (a postcard [`MetaMsg`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::meta::Meta;

/// The kind byte of a foca (SWIM) packet.
pub(crate) const KIND_SWIM: u8 = 0x01;
/// The kind byte of a metadata packet.
pub(crate) const KIND_META: u8 = 0x02;

/// The largest packet of any kind, in bytes.
pub const MAX_PACKET: usize = 64 * 1024;

/// A node's identity in foca: its node key, its cluster address and its session.
///
/// Foca's `Addr` is the key, so foca keeps one identity per key; when two identities share a
/// key, the higher session wins (then the address, to break ties deterministically). A node
/// that restarts with a higher session therefore replaces its old self at once, and a node
/// declared down while alive renews itself with `session + 1`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeId {
    /// The node key's 32 bytes (checked to be a key only when used: the link layer proves the
    /// sender, and sending to bytes that are not a key is dropped).
    #[serde(with = "key_bytes")]
    pub(crate) key: [u8; 32],
    /// The cluster address, where links to the node go.
    pub(crate) addr: String,
    /// The session: higher is newer.
    pub(crate) session: u64,
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeId({}…@{}#{})",
            short_hex(&self.key),
            self.addr,
            self.session
        )
    }
}

/// The first 4 bytes of `key` in hex, for logs.
pub(crate) fn short_hex(key: &[u8; 32]) -> String {
    key.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl foca::Identity for NodeId {
    type Addr = [u8; 32];

    fn renew(&self) -> Option<NodeId> {
        self.session.checked_add(1).map(|session| NodeId {
            key: self.key,
            addr: self.addr.clone(),
            session,
        })
    }

    fn addr(&self) -> [u8; 32] {
        self.key
    }

    fn win_addr_conflict(&self, adversary: &NodeId) -> bool {
        (self.session, &self.addr) > (adversary.session, &adversary.addr)
    }
}

/// One node's metadata at one version. Newer is the higher `(session, version)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetaRecord {
    /// Whose metadata.
    #[serde(with = "key_bytes")]
    pub(crate) key: [u8; 32],
    /// The session of the node when it set this metadata.
    pub(crate) session: u64,
    /// Counts the node's metadata changes within the session.
    pub(crate) version: u64,
    /// The metadata.
    pub(crate) meta: Meta,
}

impl MetaRecord {
    /// The order of records about one node.
    pub(crate) fn stamp(&self) -> (u64, u64) {
        (self.session, self.version)
    }
}

/// What a digest says a node holds about one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DigestEntry {
    /// The member.
    #[serde(with = "key_bytes")]
    pub(crate) key: [u8; 32],
    /// The record's session.
    pub(crate) session: u64,
    /// The record's version.
    pub(crate) version: u64,
}

/// A metadata packet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum MetaMsg {
    /// Records the receiver should take when they are newer than what it holds: the sender's
    /// own (after a change, or to a member just seen up) or others' (answering a digest).
    Push(Vec<MetaRecord>),
    /// The `(session, version)` of every record the sender holds; the receiver answers with a
    /// [`MetaMsg::Push`] of the ones it holds newer (or the sender lacks), and, when the sender
    /// holds some newer, with its own digest as a [`MetaMsg::DigestReply`].
    Digest(Vec<DigestEntry>),
    /// A digest sent in answer to a [`MetaMsg::Digest`]: answered with a push only.
    DigestReply(Vec<DigestEntry>),
}

impl MetaMsg {
    /// The packet: the kind byte and the postcard encoding.
    pub(crate) fn to_packet(&self) -> Option<Vec<u8>> {
        let out = vec![KIND_META];
        postcard::to_extend(self, out).ok()
    }

    /// Decodes the body of a metadata packet (after the kind byte); trailing bytes are an
    /// error.
    pub(crate) fn from_body(body: &[u8]) -> Result<MetaMsg, String> {
        let (msg, rest) = postcard::take_from_bytes::<MetaMsg>(body).map_err(|e| e.to_string())?;
        if rest.is_empty() {
            Ok(msg)
        } else {
            Err(format!("{} trailing bytes", rest.len()))
        }
    }
}

/// A 32-byte key as a byte string (postcard: a length byte and the bytes, copied at once)
/// rather than a tuple of 32 numbers.
mod key_bytes {
    use std::fmt;

    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(key)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        d.deserialize_bytes(KeyVisitor)
    }

    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = [u8; 32];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("32 key bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
            let mut key = [0u8; 32];
            for (i, b) in key.iter_mut().enumerate() {
                *b = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            Ok(key)
        }
    }
}
