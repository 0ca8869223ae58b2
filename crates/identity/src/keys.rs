//! Key pairs, public keys, key kinds and names.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::{SigningKey, VerifyingKey};
use plexus_units::Unit;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::keyfile::PublicIdentity;

/// Longest key name, in characters (all of them ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length of a secret key (the ed25519 seed) in bytes.
pub const SECRET_KEY_LEN: usize = 32;

/// Why a key, a key name or a key kind was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A name that breaks the naming rule (see [`validate_name`]).
    #[error("invalid key name {name:?}: {why}")]
    InvalidName {
        /// The refused name (cut to 80 characters).
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A key kind other than `user` and `node`.
    #[error("unknown key kind {kind:?}: expected `user` or `node`")]
    UnknownKind {
        /// The refused kind (cut to 80 characters).
        kind: String,
    },
    /// Bytes or text that are not an ed25519 public key.
    #[error("invalid public key: {why}")]
    InvalidPublicKey {
        /// What is wrong.
        why: &'static str,
    },
}

/// Checks a key name: 1 to [`MAX_NAME_LEN`] characters, each an ASCII letter, an ASCII digit,
/// `.`, `_` or `-`.
pub fn validate_name(name: &str) -> Result<(), KeyError> {
    let refuse = |why| {
        Err(KeyError::InvalidName {
            name: name.chars().take(80).collect(),
            why,
        })
    };
    if name.is_empty() {
        return refuse("a name cannot be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return refuse("a name has at most 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return refuse("a name may only use ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// What a key belongs to: a person or a node (one running daemon).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// A user's key: signs the messages that user sends.
    User,
    /// A node's key: authenticates the node's links.
    Node,
}

impl KeyKind {
    /// `user` or `node`, as written in key files.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Node => "node",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyKind {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<KeyKind, KeyError> {
        match s {
            "user" => Ok(KeyKind::User),
            "node" => Ok(KeyKind::Node),
            other => Err(KeyError::UnknownKind {
                kind: other.chars().take(80).collect(),
            }),
        }
    }
}

/// Whether 32 bytes are the canonical encoding of an edwards25519 point: the y coordinate is
/// below the field prime 2^255 - 19, and the sign bit is clear when x is zero (y = 1 or -1).
pub(crate) fn is_canonical_point(b: &[u8; 32]) -> bool {
    // y >= p exactly when the low 255 bits are 0x7fff…ffed or above.
    let y_too_big = b[31] & 0x7f == 0x7f && b[1..31].iter().all(|&x| x == 0xff) && b[0] >= 0xed;
    if y_too_big {
        return false;
    }
    let mut neg_identity = [0u8; 32];
    neg_identity[0] = 0x01;
    neg_identity[31] = 0x80;
    let mut neg_minus_one = [0xffu8; 32];
    neg_minus_one[0] = 0xec;
    *b != neg_identity && *b != neg_minus_one
}

/// An ed25519 public key: 32 bytes, the canonical encoding of a curve point.
///
/// Text form (`Display`, `FromStr`): unpadded base64url, 43 characters. Unit form: a
/// [`Unit::Bytes`] of 32 bytes. Weak (small-order) keys can be held, so that messages
/// carrying them can be decoded and refused by name, but never verify (see
/// [`PublicKey::is_weak`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key from its 32 bytes. Fails unless they are the canonical encoding of a point.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, KeyError> {
        if !is_canonical_point(bytes) {
            return Err(KeyError::InvalidPublicKey {
                why: "not the canonical encoding of a curve point",
            });
        }
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::InvalidPublicKey {
                why: "not a point on the ed25519 curve",
            })
    }

    /// The key from a slice, which must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(key_bytes(bytes)?)
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The key as a [`Unit::Bytes`].
    pub fn to_unit(&self) -> Unit {
        Unit::Bytes(Bytes::copy_from_slice(self.as_bytes()))
    }

    /// The key from a [`Unit::Bytes`] of 32 bytes.
    pub fn from_unit(unit: &Unit) -> Result<PublicKey, KeyError> {
        PublicKey::from_slice(unit_key_bytes(unit)?)
    }

    /// A short id for showing to people: the first 8 hex digits of the BLAKE3 hash of the
    /// 32 key bytes. It is *not* a security check: anyone can make a key with a given
    /// fingerprint in hours. Compare full keys to authenticate.
    pub fn fingerprint(&self) -> String {
        let h = blake3::hash(self.as_bytes());
        h.as_bytes()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether this is a weak key: a point of small order, for which a signature can be valid
    /// for many messages. Such keys never verify here.
    pub fn is_weak(&self) -> bool {
        self.0.is_weak()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Checks a signature made by [`Keypair::sign_digest`] over `digest` (strict ed25519
    /// verification: weak keys and malleable signatures are refused). Returns `false` for a
    /// signature of the wrong length.
    pub fn verify_digest(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        !self.0.is_weak() && self.0.verify_strict(digest, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    /// Parses the 43-character unpadded base64url form (canonical: no padding, no stray bits).
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        if s.len() != 43 {
            return Err(KeyError::InvalidPublicKey {
                why: "the text form is 43 characters of unpadded base64url",
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| KeyError::InvalidPublicKey {
                why: "not canonical unpadded base64url",
            })?;
        PublicKey::from_slice(&bytes)
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &PublicKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    /// By bytes.
    fn cmp(&self, other: &PublicKey) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl From<PublicKey> for Unit {
    fn from(k: PublicKey) -> Unit {
        k.to_unit()
    }
}

/// `bytes` as a key's 32 bytes, if that is their length.
fn key_bytes(bytes: &[u8]) -> Result<&[u8; PUBLIC_KEY_LEN], KeyError> {
    bytes.try_into().map_err(|_| KeyError::InvalidPublicKey {
        why: "a public key is exactly 32 bytes",
    })
}

/// The bytes of a key unit (a byte string).
fn unit_key_bytes(unit: &Unit) -> Result<&[u8], KeyError> {
    match unit {
        Unit::Bytes(b) => Ok(b),
        _ => Err(KeyError::InvalidPublicKey {
            why: "a public key unit is a byte string",
        }),
    }
}

/// Public keys decoded from their 32 bytes, remembered so that a key seen again is not decoded
/// again.
///
/// Decoding a key ([`PublicKey::from_bytes`]) decompresses an Edwards point, a field
/// exponentiation of 10–15 µs; a lookup here costs well under a microsecond. A node sees the
/// same few authors over and over (every signed request and every routed call carries its
/// author's 32 bytes), so it keeps one cache for all of them.
///
/// Bounded: at most [`KeyCache::capacity`] keys (about 250 bytes each). When full, an
/// arbitrary key is forgotten for each new one (the table's iteration order, which follows
/// the keys' randomly seeded hashes). Only valid keys are remembered; bytes that are not a key
/// are refused each time, as [`PublicKey::from_bytes`] refuses them. Shared between threads
/// (a lookup holds a mutex for the time of one hash-table operation).
#[derive(Debug)]
pub struct KeyCache {
    capacity: usize,
    keys: Mutex<HashMap<[u8; PUBLIC_KEY_LEN], PublicKey>>,
}

impl KeyCache {
    /// The capacity of [`KeyCache::default`]: 1024 keys (about 250 KB when full).
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// An empty cache that remembers at most `capacity` keys (0 remembers none).
    pub fn new(capacity: usize) -> KeyCache {
        KeyCache {
            capacity,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The most keys remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`PublicKey::from_bytes`], from the cache when these bytes were decoded before.
    pub fn decode(&self, bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, KeyError> {
        if let Some(key) = self.keys.lock().ok().and_then(|k| k.get(bytes).copied()) {
            return Ok(key);
        }
        let key = PublicKey::from_bytes(bytes)?;
        if self.capacity > 0 {
            if let Ok(mut keys) = self.keys.lock() {
                if keys.len() >= self.capacity {
                    if let Some(old) = keys.keys().next().copied() {
                        keys.remove(&old);
                    }
                }
                keys.insert(*bytes, key);
            }
        }
        Ok(key)
    }

    /// [`PublicKey::from_slice`] through the cache.
    pub fn decode_slice(&self, bytes: &[u8]) -> Result<PublicKey, KeyError> {
        self.decode(key_bytes(bytes)?)
    }

    /// [`PublicKey::from_unit`] through the cache.
    pub fn decode_unit(&self, unit: &Unit) -> Result<PublicKey, KeyError> {
        self.decode_slice(unit_key_bytes(unit)?)
    }

    /// Forgets every key.
    pub fn clear(&self) {
        if let Ok(mut keys) = self.keys.lock() {
            *keys = HashMap::new();
        }
    }
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(KeyCache::DEFAULT_CAPACITY)
    }
}

/// An ed25519 key pair with its kind and name. The secret is wiped from memory when the
/// key pair is dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    kind: KeyKind,
    name: String,
}

impl Keypair {
    /// A new random key pair. Fails only if `name` breaks the naming rule
    /// ([`validate_name`]).
    pub fn generate(
        kind: KeyKind,
        name: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Keypair, KeyError> {
        validate_name(name)?;
        Ok(Keypair {
            signing: SigningKey::generate(rng),
            kind,
            name: name.to_owned(),
        })
    }

    /// The key pair for a known 32-byte secret (the ed25519 seed).
    pub fn from_secret_bytes(
        kind: KeyKind,
        name: &str,
        secret: &[u8; SECRET_KEY_LEN],
    ) -> Result<Keypair, KeyError> {
        validate_name(name)?;
        Ok(Keypair {
            signing: SigningKey::from_bytes(secret),
            kind,
            name: name.to_owned(),
        })
    }

    /// User or node.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// What to share with others: kind, name and public key.
    pub fn identity(&self) -> PublicIdentity {
        PublicIdentity::new(self.kind, &self.name, self.public())
    }

    /// The text of [`Keypair::identity`]: `{plexus:identity kind:… name:… public:x"…"}`.
    pub fn public_identity(&self) -> String {
        self.identity().to_text()
    }

    /// A copy of the 32-byte secret (the ed25519 seed), wiped when dropped. Handle with
    /// care: it is everything needed to act as this key.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Signs a 32-byte digest. The digest must be a domain-separated hash made for one purpose
    /// (for example `blake3::Hasher::new_derive_key("plexus … v1")`), so a signature made for
    /// one purpose can never be taken for another. Signed messages use
    /// [`crate::SignedMessage`] instead.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(digest).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("node-1.lab_A").is_ok());
        assert!(validate_name(&"a".repeat(64)).is_ok());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("al ice").is_err());
        assert!(validate_name("alicé").is_err());
        assert!(validate_name("a#b").is_err());
        let e = validate_name("x y").unwrap_err().to_string();
        assert!(e.contains("ASCII letters"), "{e}");
    }

    #[test]
    fn kinds() {
        assert_eq!("user".parse::<KeyKind>().unwrap(), KeyKind::User);
        assert_eq!("node".parse::<KeyKind>().unwrap(), KeyKind::Node);
        assert!("admin".parse::<KeyKind>().is_err());
        assert_eq!(KeyKind::Node.to_string(), "node");
    }

    #[test]
    fn public_key_text_and_unit() {
        let kp = Keypair::generate(KeyKind::User, "alice", &mut rand::rngs::OsRng).unwrap();
        let pk = kp.public();
        let text = pk.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
        assert_eq!(PublicKey::from_unit(&pk.to_unit()).unwrap(), pk);
        assert_eq!(pk.fingerprint().len(), 8);
        assert!(!pk.is_weak());
        // Padding, wrong lengths, stray trailing bits and the wrong alphabet are refused.
        assert!(format!("{text}=").parse::<PublicKey>().is_err());
        assert!(text[..42].parse::<PublicKey>().is_err());
        let mut stray = text.clone().into_bytes();
        let last = stray[42];
        stray[42] = if last == b'A' { b'B' } else { b'A' };
        let stray = String::from_utf8(stray).unwrap();
        // Either a different (valid or invalid) key or a refusal, never the same key.
        assert_ne!(stray.parse::<PublicKey>().ok(), Some(pk));
        assert!(PublicKey::from_unit(&Unit::str("x")).is_err());
        assert!(PublicKey::from_slice(&[0u8; 31]).is_err());
    }

    #[test]
    fn non_canonical_points_are_refused() {
        // y = p + 1 (a non-canonical encoding of the identity) and y = 1 with the sign bit.
        let mut y_p1 = [0xffu8; 32];
        y_p1[0] = 0xee;
        y_p1[31] = 0x7f;
        assert!(!is_canonical_point(&y_p1));
        assert!(PublicKey::from_bytes(&y_p1).is_err());
        let mut neg_id = [0u8; 32];
        neg_id[0] = 1;
        neg_id[31] = 0x80;
        assert!(PublicKey::from_bytes(&neg_id).is_err());
        // The canonical identity is a point, but a weak one.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(PublicKey::from_bytes(&id).unwrap().is_weak());
    }

    #[test]
    fn key_cache_decodes_like_from_bytes_and_stays_bounded() {
        let cache = KeyCache::new(3);
        let keys: Vec<PublicKey> = (0..5u8)
            .map(|i| {
                Keypair::from_secret_bytes(KeyKind::User, "k", &[i; 32])
                    .unwrap()
                    .public()
            })
            .collect();
        for k in &keys {
            assert_eq!(cache.decode(k.as_bytes()).unwrap(), *k);
            assert_eq!(cache.decode(k.as_bytes()).unwrap(), *k);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        // The last key is remembered; every key still decodes, remembered or not.
        assert!(cache.keys.lock().unwrap().contains_key(keys[4].as_bytes()));
        for k in &keys {
            assert_eq!(cache.decode_unit(&k.to_unit()).unwrap(), *k);
        }
        // Invalid bytes are refused every time and never remembered.
        let mut y_p1 = [0xffu8; 32];
        y_p1[0] = 0xee;
        y_p1[31] = 0x7f;
        assert!(cache.decode(&y_p1).is_err());
        assert!(cache.decode(&y_p1).is_err());
        assert!(!cache.keys.lock().unwrap().contains_key(&y_p1));
        assert!(cache.decode_slice(&[0u8; 31]).is_err());
        assert!(cache.decode_unit(&Unit::str("x")).is_err());
        // Weak keys decode (and are refused later, by verification), as with from_bytes.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(cache.decode(&id).unwrap().is_weak());
        cache.clear();
        assert!(cache.is_empty());
        let none = KeyCache::new(0);
        assert_eq!(none.decode(keys[0].as_bytes()).unwrap(), keys[0]);
        assert!(none.is_empty());
    }

    #[test]
    fn debug_hides_the_secret() {
        let kp = Keypair::from_secret_bytes(KeyKind::Node, "n1", &[7u8; 32]).unwrap();
        let d = format!("{kp:?}");
        assert!(!d.contains("secret") && d.contains("n1"), "{d}");
        assert_eq!(*kp.secret_bytes(), [7u8; 32]);
    }
}
