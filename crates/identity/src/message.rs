//! Signed messages: a unit, its author, a time, a nonce and an ed25519 signature.
//!
//! The exact signed bytes are specified in `docs/identity.md`: the canonical units encoding
//! of `{author:x"…" time:<int> nonce:x"…" body:<unit>}`, hashed with BLAKE3 in key
//! derivation mode under [`MESSAGE_CONTEXT`]; the signature is pure Ed25519 over that
//! 32-byte digest.

use std::borrow::Borrow;

use bytes::Bytes;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
use plexus_units::{decode, encode, to_short, DecodeError, Kind, Limits, Map, Unit};
use rand_core::CryptoRngCore;

use crate::keys::{is_canonical_point, KeyCache, KeyError, Keypair, PublicKey};

/// The BLAKE3 key derivation context of message digests. Part of the format: changing it
/// makes a new, incompatible message version.
pub const MESSAGE_CONTEXT: &str = "plexus 2026-11 message v1";

/// Bytes of a message nonce.
pub const NONCE_LEN: usize = 16;

/// Bytes of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Latest time a message can carry: `time` is an int in `0..=i64::MAX` milliseconds.
pub const MAX_TIME_MS: u64 = i64::MAX as u64;

/// Messages per call of the underlying batch verification in [`verify_batch`].
pub const BATCH_CHUNK: usize = 64;

/// The keys of a message's unit form, in their required order.
const ENVELOPE_KEYS: [&str; 5] = ["author", "time", "nonce", "body", "sig"];

/// Bytes the `sig` entry adds to the encoding of the signed map: the key `sig` (4 bytes)
/// and a 64-byte byte string (tag, length, contents: 66 bytes).
const SIG_ENTRY_LEN: usize = 70;

/// The canonical encodings of the eight points of small order (the 8-torsion subgroup) of
/// edwards25519. A signature whose `R` is one of them is refused, as `verify_strict` does.
const SMALL_ORDER: [[u8; 32]; 8] = [
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0,
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 && 2 * i + 1 < b.len() {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Why a message could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The time does not fit the format (`0..=i64::MAX` ms).
    #[error("time {time_ms} ms is beyond the largest message time {MAX_TIME_MS}")]
    TimeOutOfRange {
        /// The refused time.
        time_ms: u64,
    },
    /// The body is nested too deeply for receivers to decode the message.
    #[error("body nesting depth {depth} exceeds the limit of {limit}")]
    TooDeep {
        /// The body's depth.
        depth: usize,
        /// The deepest body receivers accept.
        limit: usize,
    },
    /// The message would be too large for receivers to decode.
    #[error("encoded message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The message's encoded size.
        size: usize,
        /// The largest encoding receivers accept.
        limit: usize,
    },
}

/// Why bytes or a unit are not a well-formed signed message (before any signature check).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a canonical units encoding.
    #[error("not a canonical unit encoding: {0}")]
    Decode(#[from] DecodeError),
    /// The unit is not a map.
    #[error("a signed message is a map, found a {found}")]
    NotAMap {
        /// The unit's kind.
        found: Kind,
    },
    /// The map does not have exactly the keys `author time nonce body sig`, in that order.
    #[error("a signed message has exactly the keys author, time, nonce, body, sig in this order; found {found}")]
    Keys {
        /// The keys found, in order, shortened for display.
        found: String,
    },
    /// One field has the wrong type or size.
    #[error("field `{field}`: {problem}")]
    Field {
        /// `author`, `time`, `nonce` or `sig`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VerifyError {
    /// The author's key has small order: signatures by it prove nothing.
    #[error("the author's public key is weak (small order)")]
    WeakKey,
    /// The signature is not a valid strict Ed25519 signature of the message digest by the
    /// author.
    #[error("the signature does not match the message and its author")]
    BadSignature,
}

/// A unit signed by its author.
///
/// The author, time and nonce are signed with the body, so none of them can be changed or
/// moved to another message. [`SignedMessage::hash`] is the message's identity. A
/// `SignedMessage` is well formed but not necessarily valid: call
/// [`SignedMessage::verify`] (or [`verify_batch`]) before trusting it, and a
/// [`crate::ReplayGuard`] after that to refuse replays.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedMessage {
    body: Unit,
    author: PublicKey,
    time_ms: u64,
    nonce: [u8; NONCE_LEN],
    signature: [u8; SIGNATURE_LEN],
    hash: [u8; 32],
}

impl SignedMessage {
    /// Signs `body` as `key`, at `now_ms` (milliseconds since the Unix epoch), with a random
    /// nonce from `rng`. Fails when receivers could not decode the result: a time beyond
    /// [`MAX_TIME_MS`], or a body deeper or larger than the default [`Limits`] allow.
    pub fn sign(
        body: Unit,
        key: &Keypair,
        now_ms: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<SignedMessage, SignError> {
        if now_ms > MAX_TIME_MS {
            return Err(SignError::TimeOutOfRange { time_ms: now_ms });
        }
        let limits = Limits::DEFAULT;
        let depth = body.depth();
        if depth >= limits.max_depth {
            return Err(SignError::TooDeep {
                depth,
                limit: limits.max_depth - 1,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let author = key.public();
        let (signed, body) = signed_bytes(&author, now_ms, &nonce, body);
        let size = signed.len() + SIG_ENTRY_LEN;
        if size > limits.max_size {
            return Err(SignError::TooLarge {
                size,
                limit: limits.max_size,
            });
        }
        let hash = blake3::derive_key(MESSAGE_CONTEXT, &signed);
        let signature = key.signing_key().sign(&hash).to_bytes();
        Ok(SignedMessage {
            body,
            author,
            time_ms: now_ms,
            nonce,
            signature,
            hash,
        })
    }

    /// A message from its parts, as received some other way than [`SignedMessage::from_unit`].
    /// Nothing is checked: call [`SignedMessage::verify`].
    pub fn from_parts(
        body: Unit,
        author: PublicKey,
        time_ms: u64,
        nonce: [u8; NONCE_LEN],
        signature: [u8; SIGNATURE_LEN],
    ) -> Result<SignedMessage, MessageError> {
        if time_ms > MAX_TIME_MS {
            return Err(MessageError::Field {
                field: "time",
                problem: format!("{time_ms} is beyond {MAX_TIME_MS}"),
            });
        }
        let (signed, body) = signed_bytes(&author, time_ms, &nonce, body);
        Ok(SignedMessage {
            body,
            author,
            time_ms,
            nonce,
            signature,
            hash: blake3::derive_key(MESSAGE_CONTEXT, &signed),
        })
    }

    /// The signed unit.
    pub fn body(&self) -> &Unit {
        &self.body
    }

    /// The signed unit, by value.
    pub fn into_body(self) -> Unit {
        self.body
    }

    /// Who signed it.
    pub fn author(&self) -> PublicKey {
        self.author
    }

    /// When the author says it was signed, in milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// The random nonce that makes equal bodies sent at the same millisecond distinct.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The ed25519 signature (`R ‖ S`).
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The digest that is signed: BLAKE3 (key derivation mode, [`MESSAGE_CONTEXT`]) of the
    /// canonical encoding of `{author time nonce body}`. It identifies the message (replay
    /// detection, caches of verified messages) and does not cover the signature.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Checks the signature: the author's key must not be weak, and the signature must be a
    /// strict Ed25519 signature (as `verify_strict` defines it) of [`SignedMessage::hash`] by
    /// the author.
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.precheck()?;
        self.check_equation()
    }

    /// The signature equation alone, for a message that passed [`SignedMessage::precheck`].
    fn check_equation(&self) -> Result<(), VerifyError> {
        // `precheck` has done what `verify_strict` adds to the plain check (a weak key, an `R`
        // of small order), without decompressing `R`: a seventh of the time. `R` is canonical,
        // so the plain check's comparison of encodings is the comparison of points.
        self.author
            .verifying_key()
            .verify(&self.hash, &Signature::from_bytes(&self.signature))
            .map_err(|_| VerifyError::BadSignature)
    }

    /// The checks that batch verification skips, done first on both paths so both refuse
    /// the same messages: a weak author key, and an `R` that is not canonically encoded or
    /// has small order.
    fn precheck(&self) -> Result<(), VerifyError> {
        if self.author.is_weak() {
            return Err(VerifyError::WeakKey);
        }
        let mut r = [0u8; 32];
        r.copy_from_slice(&self.signature[..32]);
        if !is_canonical_point(&r) || SMALL_ORDER.contains(&r) {
            return Err(VerifyError::BadSignature);
        }
        Ok(())
    }

    /// The unit form `{author:x"…" time:<int> nonce:x"…" body:<unit> sig:x"…"}`.
    pub fn to_unit(&self) -> Unit {
        envelope(
            &self.author,
            self.time_ms,
            &self.nonce,
            self.body.clone(),
            Some(&self.signature),
        )
    }

    /// Reads the unit form strictly: exactly the keys `author time nonce body sig` in this
    /// order, a 32-byte canonical public key, an int time in `0..=i64::MAX`, a 16-byte nonce
    /// and a 64-byte signature. Does not check the signature.
    pub fn from_unit(unit: &Unit) -> Result<SignedMessage, MessageError> {
        SignedMessage::read_unit(unit, PublicKey::from_unit)
    }

    /// [`SignedMessage::from_unit`], decoding the author's key through `keys` (the same
    /// result, without decompressing a key the cache already holds).
    pub fn from_unit_with(unit: &Unit, keys: &KeyCache) -> Result<SignedMessage, MessageError> {
        SignedMessage::read_unit(unit, |u| keys.decode_unit(u))
    }

    fn read_unit(
        unit: &Unit,
        author_key: impl FnOnce(&Unit) -> Result<PublicKey, KeyError>,
    ) -> Result<SignedMessage, MessageError> {
        let map = unit
            .as_map()
            .ok_or(MessageError::NotAMap { found: unit.kind() })?;
        let keys_ok = map.len() == ENVELOPE_KEYS.len()
            && map
                .keys()
                .zip(ENVELOPE_KEYS)
                .all(|(k, want)| k.as_str() == Some(want));
        if !keys_ok {
            let found: Vec<String> = map.keys().take(8).map(|k| to_short(k, 16)).collect();
            let more = if map.len() > 8 { " …" } else { "" };
            return Err(MessageError::Keys {
                found: format!("[{}{more}]", found.join(" ")),
            });
        }
        let e = map.entries();
        let author = author_key(&e[0].1).map_err(|err| MessageError::Field {
            field: "author",
            problem: err.to_string(),
        })?;
        let time_ms = match &e[1].1 {
            Unit::Int(i) => i
                .to_i64()
                .and_then(|t| u64::try_from(t).ok())
                .ok_or_else(|| MessageError::Field {
                    field: "time",
                    problem: format!("{i} is outside 0..={MAX_TIME_MS}"),
                })?,
            other => {
                return Err(MessageError::Field {
                    field: "time",
                    problem: format!("expected an int, found a {}", other.kind()),
                })
            }
        };
        let nonce: [u8; NONCE_LEN] = fixed_bytes(&e[2].1, "nonce")?;
        let signature: [u8; SIGNATURE_LEN] = fixed_bytes(&e[4].1, "sig")?;
        SignedMessage::from_parts(e[3].1.clone(), author, time_ms, nonce, signature)
    }

    /// The canonical binary form: `plexus_units::encode(&self.to_unit())`.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&self.to_unit())
    }

    /// Reads the binary form: a canonical units encoding (default [`Limits`]) of the unit
    /// form. Never panics, whatever the input. Does not check the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedMessage, MessageError> {
        SignedMessage::from_unit(&decode(bytes)?)
    }

    /// [`SignedMessage::from_bytes`], decoding the author's key through `keys`.
    pub fn from_bytes_with(bytes: &[u8], keys: &KeyCache) -> Result<SignedMessage, MessageError> {
        SignedMessage::from_unit_with(&decode(bytes)?, keys)
    }
}

fn fixed_bytes<const N: usize>(u: &Unit, field: &'static str) -> Result<[u8; N], MessageError> {
    match u {
        Unit::Bytes(b) => b.as_ref().try_into().map_err(|_| MessageError::Field {
            field,
            problem: format!("expected {N} bytes, found {}", b.len()),
        }),
        other => Err(MessageError::Field {
            field,
            problem: format!("expected a byte string, found a {}", other.kind()),
        }),
    }
}

/// The map `{author time nonce body [sig]}`.
fn envelope(
    author: &PublicKey,
    time_ms: u64,
    nonce: &[u8; NONCE_LEN],
    body: Unit,
    sig: Option<&[u8; SIGNATURE_LEN]>,
) -> Unit {
    // time_ms ≤ MAX_TIME_MS is an invariant of every SignedMessage.
    let time = i64::try_from(time_ms).unwrap_or(i64::MAX);
    let mut entries = vec![
        (Unit::str("author"), author.to_unit()),
        (Unit::str("time"), Unit::int(time)),
        (
            Unit::str("nonce"),
            Unit::Bytes(Bytes::copy_from_slice(nonce)),
        ),
        (Unit::str("body"), body),
    ];
    if let Some(sig) = sig {
        entries.push((Unit::str("sig"), Unit::Bytes(Bytes::copy_from_slice(sig))));
    }
    // The keys are distinct literals, so `from_entries` cannot fail.
    Unit::Map(Map::from_entries(entries).unwrap_or_default())
}

/// The signed bytes, and the body back (it is moved through the map rather than cloned).
fn signed_bytes(
    author: &PublicKey,
    time_ms: u64,
    nonce: &[u8; NONCE_LEN],
    body: Unit,
) -> (Vec<u8>, Unit) {
    let unit = envelope(author, time_ms, nonce, body, None);
    let bytes = encode(&unit);
    let body = match unit {
        Unit::Map(m) => m.into_entries().pop().map(|(_, b)| b).unwrap_or_default(),
        _ => Unit::None,
    };
    (bytes, body)
}

/// Verifies many messages at once; the result for each message is what
/// [`SignedMessage::verify`] would say about it.
///
/// Weak keys and malformed `R` values are refused first (batch verification does not check
/// them); the rest are checked with the batch equation (`docs/identity.md`, "Batch
/// verification") in chunks of [`BATCH_CHUNK`], except a lone message, which is verified alone.
/// When a chunk fails, each of its messages is verified alone to find which.
///
/// Batch verification uses the cofactorless equation with random weights, so a message
/// whose *author* deliberately put a small-order component into their key or nonce point
/// can pass a batch that strict single verification would refuse (see `docs/identity.md`,
/// "Batch verification"). No one but the key's owner can make such a message.
pub fn verify_batch<M: Borrow<SignedMessage>>(messages: &[M]) -> Vec<Result<(), VerifyError>> {
    let mut out = vec![Ok(()); messages.len()];
    let mut idx = Vec::with_capacity(BATCH_CHUNK);
    for (c, chunk) in messages.chunks(BATCH_CHUNK).enumerate() {
        idx.clear();
        let mut entries = Vec::with_capacity(chunk.len());
        for (j, m) in chunk.iter().enumerate() {
            let m = m.borrow();
            let i = c * BATCH_CHUNK + j;
            match m.precheck() {
                Err(e) => out[i] = Err(e),
                Ok(()) => {
                    idx.push(i);
                    entries.push((m.author.verifying_key(), &m.signature, &m.hash[..]));
                }
            }
        }
        // A batch of one costs more than the single check (the batch equation decompresses
        // `R` and multiplies three points; the single check, two).
        if let [i] = idx[..] {
            out[i] = messages[i].borrow().check_equation();
        } else if !idx.is_empty() && !crate::batch::holds(&entries) {
            for &i in &idx {
                out[i] = messages[i].borrow().check_equation();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;
    use std::collections::HashSet;

    #[test]
    fn small_order_table_is_the_8_torsion() {
        for e in &SMALL_ORDER {
            assert!(is_canonical_point(e));
            assert!(ed25519_dalek::VerifyingKey::from_bytes(e)
                .unwrap()
                .is_weak());
        }
        let p = ed25519_dalek::VerifyingKey::from_bytes(&SMALL_ORDER[4])
            .unwrap()
            .to_edwards();
        let mut acc = p;
        let mut seen = HashSet::new();
        for _ in 0..8 {
            seen.insert(acc.compress().to_bytes());
            acc += p;
        }
        assert_eq!(seen, SMALL_ORDER.iter().copied().collect::<HashSet<_>>());
    }

    #[test]
    fn sig_entry_len_is_exact() {
        let kp = Keypair::from_secret_bytes(KeyKind::User, "a", &[1; 32]).unwrap();
        for body in [Unit::None, Unit::str(&"x".repeat(300)), Unit::int(1 << 40)] {
            let m = SignedMessage::sign(body.clone(), &kp, 5, &mut rand::rngs::OsRng).unwrap();
            let (signed, _) = signed_bytes(&m.author(), 5, m.nonce(), body);
            assert_eq!(m.to_bytes().len(), signed.len() + SIG_ENTRY_LEN);
        }
    }

    #[test]
    fn body_depth_limit() {
        let kp = Keypair::from_secret_bytes(KeyKind::User, "a", &[1; 32]).unwrap();
        let mut body = Unit::None;
        for _ in 0..127 {
            body = Unit::List(vec![body]);
        }
        let m = SignedMessage::sign(body.clone(), &kp, 5, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(SignedMessage::from_bytes(&m.to_bytes()).unwrap(), m);
        let deeper = Unit::List(vec![body]);
        assert!(matches!(
            SignedMessage::sign(deeper, &kp, 5, &mut rand::rngs::OsRng),
            Err(SignError::TooDeep { .. })
        ));
    }

    #[test]
    fn reading_through_a_key_cache_is_the_same() {
        let kp = Keypair::from_secret_bytes(KeyKind::User, "a", &[1; 32]).unwrap();
        let keys = KeyCache::default();
        for i in 0..3 {
            let m = SignedMessage::sign(Unit::int(i), &kp, 5, &mut rand::rngs::OsRng).unwrap();
            let bytes = m.to_bytes();
            let got = SignedMessage::from_bytes_with(&bytes, &keys).unwrap();
            assert_eq!(got, m);
            got.verify().unwrap();
            assert_eq!(keys.len(), 1);
        }
        // Errors are the same too.
        let mut bad = SignedMessage::sign(Unit::None, &kp, 5, &mut rand::rngs::OsRng)
            .unwrap()
            .to_unit();
        if let Unit::Map(m) = &mut bad {
            let mut entries = m.clone().into_entries();
            entries[0].1 = Unit::Bytes(Bytes::from_static(&[0xff; 32]));
            *m = Map::from_entries(entries).unwrap();
        }
        assert_eq!(
            SignedMessage::from_unit_with(&bad, &keys),
            SignedMessage::from_unit(&bad)
        );
        assert!(SignedMessage::from_unit(&bad).is_err());
    }

    #[test]
    fn time_limit() {
        let kp = Keypair::from_secret_bytes(KeyKind::User, "a", &[1; 32]).unwrap();
        let m = SignedMessage::sign(Unit::None, &kp, MAX_TIME_MS, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(SignedMessage::from_bytes(&m.to_bytes()).unwrap(), m);
        m.verify().unwrap();
        assert!(
            SignedMessage::sign(Unit::None, &kp, MAX_TIME_MS + 1, &mut rand::rngs::OsRng).is_err()
        );
    }
}
