//! Key files and public identities, written in the units text notation.
//!
//! The formats are specified in `docs/identity.md`. In short:
//!
//! ```text
//! {plexus:key kind:user name:alice public:x"<32 bytes>" secret:x"<32 bytes>"}
//! {plexus:key kind:user name:alice public:x"<32 bytes>"
//!  encrypted:{kdf:argon2id m_cost:19456 t_cost:2 p_cost:1 salt:x"<16 bytes>"
//!             cipher:xchacha20poly1305 nonce:x"<24 bytes>" data:x"<48 bytes>"}}
//! {plexus:identity kind:user name:alice public:x"<32 bytes>"}
//! ```

use std::fmt;

use argon2::{Algorithm, Argon2, Version};
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use plexus_units::{encode, parse_with, to_short, to_text, Limits, Map, ParseError, Unit};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::keys::{validate_name, KeyError, KeyKind, Keypair, PublicKey, SECRET_KEY_LEN};

/// Bounds for parsing key files and identities: they are a few hundred bytes, two levels deep.
const FILE_LIMITS: Limits = Limits {
    max_depth: 4,
    max_size: 16 * 1024,
    max_digits: 24,
};

/// Bytes of random salt written to new encrypted key files.
pub const SALT_LEN: usize = 16;
/// Bytes of the XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Bytes of the encrypted secret: 32 bytes of secret and a 16-byte Poly1305 tag.
pub const SEALED_LEN: usize = SECRET_KEY_LEN + 16;

/// Why a key file or a public identity could not be read, written or unlocked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// The text is not in the units notation.
    #[error("not valid units text: {0}")]
    Syntax(#[from] ParseError),
    /// Valid units text, but not the expected document.
    #[error("not a Plexus {expected}: {why}")]
    NotA {
        /// `key file` or `public identity`.
        expected: &'static str,
        /// What was found instead.
        why: String,
    },
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// The field's name (`encrypted.salt` for a nested one).
        field: &'static str,
    },
    /// A field this format does not have.
    #[error("unknown field `{field}`")]
    UnknownField {
        /// The field's key, shortened for display.
        field: String,
    },
    /// A field with a wrong value.
    #[error("field `{field}`: {problem}")]
    Field {
        /// The field's name (`encrypted.m_cost` for a nested one).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// KDF parameters outside the accepted bounds (see [`KdfParams::new`]).
    #[error("invalid key derivation parameters: {0}")]
    KdfParams(String),
    /// The file is encrypted and no passphrase was given.
    #[error("the key file is encrypted: a passphrase is needed")]
    PassphraseRequired,
    /// Encryption with an empty passphrase was asked for.
    #[error("an empty passphrase cannot protect a key; give a passphrase or none")]
    EmptyPassphrase,
    /// Decryption failed: the passphrase is wrong, or the file was altered.
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// The secret in the file is not the secret of the public key in the file.
    #[error("the secret key does not belong to the public key in the file")]
    SecretMismatch,
    /// Argon2 refused to run (should not happen with checked parameters).
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

impl KdfParams {
    /// The OWASP recommendation for Argon2id: 19 MiB, 2 passes, 1 lane. New key files use it.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 19_456,
        t: 2,
        p: 1,
    };
    /// Largest memory cost accepted, in KiB (1 GiB).
    pub const MAX_M_KIB: u32 = 1 << 20;
    /// Most passes accepted.
    pub const MAX_T: u32 = 64;
    /// Most lanes accepted.
    pub const MAX_P: u32 = 16;

    /// Parameters with memory `m_kib` KiB, `t` passes and `p` lanes. Accepted:
    /// `1 ≤ p ≤ 16`, `8·p ≤ m_kib ≤ 1048576`, `1 ≤ t ≤ 64`. Small values are allowed (for
    /// tests) but weaken the protection of the passphrase.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<KdfParams, KeyFileError> {
        if !(1..=Self::MAX_P).contains(&p) {
            return Err(KeyFileError::KdfParams(format!(
                "p (lanes) is {p}; allowed 1 to {}",
                Self::MAX_P
            )));
        }
        if !(1..=Self::MAX_T).contains(&t) {
            return Err(KeyFileError::KdfParams(format!(
                "t (passes) is {t}; allowed 1 to {}",
                Self::MAX_T
            )));
        }
        if m_kib < 8 * p || m_kib > Self::MAX_M_KIB {
            return Err(KeyFileError::KdfParams(format!(
                "m (memory, KiB) is {m_kib}; allowed 8·p = {} to {}",
                8 * p,
                Self::MAX_M_KIB
            )));
        }
        Ok(KdfParams { m_kib, t, p })
    }

    /// Memory cost in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Number of passes.
    pub fn t(&self) -> u32 {
        self.t
    }

    /// Number of lanes.
    pub fn p(&self) -> u32 {
        self.p
    }
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::DEFAULT
    }
}

#[derive(Clone)]
enum Secret {
    Plain(Zeroizing<[u8; SECRET_KEY_LEN]>),
    Encrypted(Sealed),
}

#[derive(Clone, PartialEq, Eq)]
struct Sealed {
    params: KdfParams,
    salt: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    data: [u8; SEALED_LEN],
}

/// A key file: a key pair's kind, name and public key, and its secret either in the clear
/// or sealed with a passphrase. Parse one with [`KeyFile::parse`], make one with
/// [`KeyFile::from_keypair`], get the key pair back with [`KeyFile::unlock`].
///
/// A plain secret is wiped from memory when the `KeyFile` is dropped, but the strings made
/// by [`KeyFile::to_text`] and read by [`KeyFile::parse`] are the caller's to protect.
#[derive(Clone)]
pub struct KeyFile {
    kind: KeyKind,
    name: String,
    public: PublicKey,
    secret: Secret,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

impl KeyFile {
    /// The key file for `keypair`: in the clear when `passphrase` is `None`, otherwise sealed
    /// with Argon2id ([`KdfParams::DEFAULT`]) and XChaCha20-Poly1305. `rng` gives the salt
    /// and the nonce.
    pub fn from_keypair(
        keypair: &Keypair,
        passphrase: Option<&str>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<KeyFile, KeyFileError> {
        KeyFile::from_keypair_with(keypair, passphrase, KdfParams::DEFAULT, rng)
    }

    /// Like [`KeyFile::from_keypair`] with explicit Argon2id parameters.
    pub fn from_keypair_with(
        keypair: &Keypair,
        passphrase: Option<&str>,
        params: KdfParams,
        rng: &mut impl CryptoRngCore,
    ) -> Result<KeyFile, KeyFileError> {
        let public = keypair.public();
        let secret = keypair.secret_bytes();
        let secret = match passphrase {
            None => Secret::Plain(secret),
            Some("") => return Err(KeyFileError::EmptyPassphrase),
            Some(pass) => {
                let mut salt = vec![0u8; SALT_LEN];
                rng.fill_bytes(&mut salt);
                let mut nonce = [0u8; NONCE_LEN];
                rng.fill_bytes(&mut nonce);
                let key = derive_key(pass, &salt, params)?;
                let aad = associated_data(keypair.kind(), keypair.name(), &public);
                let sealed = XChaCha20Poly1305::new(Key::from_slice(&key[..]))
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &secret[..],
                            aad: &aad,
                        },
                    )
                    .map_err(|_| KeyFileError::Kdf("encryption failed".into()))?;
                let data: [u8; SEALED_LEN] = sealed
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyFileError::Kdf("unexpected sealed length".into()))?;
                Secret::Encrypted(Sealed {
                    params,
                    salt,
                    nonce,
                    data,
                })
            }
        };
        Ok(KeyFile {
            kind: keypair.kind(),
            name: keypair.name().to_owned(),
            public,
            secret,
        })
    }

    /// Reads a key file. Never panics; refuses anything but the exact format, and KDF
    /// parameters beyond [`KdfParams::new`]'s bounds, so a crafted file cannot make
    /// [`KeyFile::unlock`] exhaust the machine.
    pub fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        KeyFile::from_unit(&parse_with(text, &FILE_LIMITS)?)
    }

    /// Reads a key file from its unit form.
    pub fn from_unit(unit: &Unit) -> Result<KeyFile, KeyFileError> {
        let map = document(unit, "key", "key file")?;
        check_keys(
            map,
            &["plexus", "kind", "name", "public", "secret", "encrypted"],
        )?;
        let (kind, name, public) = header(map)?;
        let secret = match (map.get_str("secret"), map.get_str("encrypted")) {
            (Some(_), Some(_)) => {
                return Err(KeyFileError::Field {
                    field: "encrypted",
                    problem: "a key file has `secret` or `encrypted`, not both".into(),
                })
            }
            (None, None) => return Err(KeyFileError::MissingField { field: "secret" }),
            (Some(s), None) => {
                let mut arr = Zeroizing::new([0u8; SECRET_KEY_LEN]);
                arr.copy_from_slice(bytes_field(s, "secret", SECRET_KEY_LEN..=SECRET_KEY_LEN)?);
                Secret::Plain(arr)
            }
            (None, Some(e)) => Secret::Encrypted(sealed(e)?),
        };
        Ok(KeyFile {
            kind,
            name,
            public,
            secret,
        })
    }

    /// The key file as a unit.
    pub fn to_unit(&self) -> Unit {
        let mut entries = header_entries("key", self.kind, &self.name, &self.public);
        match &self.secret {
            Secret::Plain(s) => entries.push((
                Unit::str("secret"),
                Unit::Bytes(Bytes::copy_from_slice(&s[..])),
            )),
            Secret::Encrypted(e) => {
                let sealed = vec![
                    (Unit::str("kdf"), Unit::str("argon2id")),
                    (Unit::str("m_cost"), Unit::int(i64::from(e.params.m_kib))),
                    (Unit::str("t_cost"), Unit::int(i64::from(e.params.t))),
                    (Unit::str("p_cost"), Unit::int(i64::from(e.params.p))),
                    (
                        Unit::str("salt"),
                        Unit::Bytes(Bytes::copy_from_slice(&e.salt)),
                    ),
                    (Unit::str("cipher"), Unit::str("xchacha20poly1305")),
                    (
                        Unit::str("nonce"),
                        Unit::Bytes(Bytes::copy_from_slice(&e.nonce)),
                    ),
                    (
                        Unit::str("data"),
                        Unit::Bytes(Bytes::copy_from_slice(&e.data)),
                    ),
                ];
                entries.push((Unit::str("encrypted"), map_unit(sealed)));
            }
        }
        map_unit(entries)
    }

    /// The key file's text: one line of canonical units notation, without a final newline.
    pub fn to_text(&self) -> String {
        to_text(&self.to_unit())
    }

    /// Whether the secret is sealed with a passphrase.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.secret, Secret::Encrypted(_))
    }

    /// The Argon2id parameters of an encrypted file (to show, or to refuse before unlocking).
    pub fn kdf_params(&self) -> Option<KdfParams> {
        match &self.secret {
            Secret::Plain(_) => None,
            Secret::Encrypted(e) => Some(e.params),
        }
    }

    /// User or node.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The public identity to share: kind, name and public key.
    pub fn identity(&self) -> PublicIdentity {
        PublicIdentity {
            kind: self.kind,
            name: self.name.clone(),
            public: self.public,
        }
    }

    /// The text of [`KeyFile::identity`], to share:
    /// `{plexus:identity kind:… name:… public:x"…"}`.
    pub fn public_identity(&self) -> String {
        self.identity().to_text()
    }

    /// The key pair. An encrypted file needs its passphrase (the Argon2id work happens
    /// here); a plain file ignores `passphrase`. Fails with
    /// [`KeyFileError::WrongPassphrase`] when decryption fails and
    /// [`KeyFileError::SecretMismatch`] when the secret does not give the file's public key.
    pub fn unlock(&self, passphrase: Option<&str>) -> Result<Keypair, KeyFileError> {
        let secret = match &self.secret {
            Secret::Plain(s) => s.clone(),
            Secret::Encrypted(e) => {
                let pass = passphrase.ok_or(KeyFileError::PassphraseRequired)?;
                let key = derive_key(pass, &e.salt, e.params)?;
                let aad = associated_data(self.kind, &self.name, &self.public);
                let plain = Zeroizing::new(
                    XChaCha20Poly1305::new(Key::from_slice(&key[..]))
                        .decrypt(
                            XNonce::from_slice(&e.nonce),
                            Payload {
                                msg: &e.data,
                                aad: &aad,
                            },
                        )
                        .map_err(|_| KeyFileError::WrongPassphrase)?,
                );
                let mut arr = Zeroizing::new([0u8; SECRET_KEY_LEN]);
                if plain.len() != SECRET_KEY_LEN {
                    return Err(KeyFileError::SecretMismatch);
                }
                arr.copy_from_slice(&plain);
                arr
            }
        };
        let keypair = Keypair::from_secret_bytes(self.kind, &self.name, &secret)
            .map_err(|e| name_error(&e))?;
        if keypair.public() != self.public {
            return Err(KeyFileError::SecretMismatch);
        }
        Ok(keypair)
    }
}

/// What a user or node shares so others can recognise it: `{plexus:identity kind name
/// public}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    kind: KeyKind,
    name: String,
    public: PublicKey,
}

impl PublicIdentity {
    /// An identity; fails if `name` breaks the naming rule.
    pub fn try_new(
        kind: KeyKind,
        name: &str,
        public: PublicKey,
    ) -> Result<PublicIdentity, KeyError> {
        validate_name(name)?;
        Ok(PublicIdentity::new(kind, name, public))
    }

    /// For names already checked.
    pub(crate) fn new(kind: KeyKind, name: &str, public: PublicKey) -> PublicIdentity {
        PublicIdentity {
            kind,
            name: name.to_owned(),
            public,
        }
    }

    /// Reads the text form. Never panics.
    pub fn parse(text: &str) -> Result<PublicIdentity, KeyFileError> {
        PublicIdentity::from_unit(&parse_with(text, &FILE_LIMITS)?)
    }

    /// Reads the unit form.
    pub fn from_unit(unit: &Unit) -> Result<PublicIdentity, KeyFileError> {
        let map = document(unit, "identity", "public identity")?;
        check_keys(map, &["plexus", "kind", "name", "public"])?;
        let (kind, name, public) = header(map)?;
        Ok(PublicIdentity { kind, name, public })
    }

    /// The unit form.
    pub fn to_unit(&self) -> Unit {
        map_unit(header_entries(
            "identity",
            self.kind,
            &self.name,
            &self.public,
        ))
    }

    /// The text form: one line of canonical units notation.
    pub fn to_text(&self) -> String {
        to_text(&self.to_unit())
    }

    /// User or node.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }
}

impl fmt::Display for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Argon2id(passphrase, salt) → 32-byte key.
fn derive_key(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The AEAD associated data: the canonical encoding of `{plexus:key kind name public}`, so
/// a sealed secret cannot be moved to a file with another kind, name or public key.
fn associated_data(kind: KeyKind, name: &str, public: &PublicKey) -> Vec<u8> {
    encode(&map_unit(header_entries("key", kind, name, public)))
}

fn header_entries(tag: &str, kind: KeyKind, name: &str, public: &PublicKey) -> Vec<(Unit, Unit)> {
    vec![
        (Unit::str("plexus"), Unit::str(tag)),
        (Unit::str("kind"), Unit::str(kind.name())),
        (Unit::str("name"), Unit::str(name)),
        (Unit::str("public"), public.to_unit()),
    ]
}

fn map_unit(entries: Vec<(Unit, Unit)>) -> Unit {
    // Keys are distinct literals, so this cannot fail; fall back to an empty map regardless.
    Unit::Map(Map::from_entries(entries).unwrap_or_default())
}

/// The map of a document whose `plexus` field is `tag`.
fn document<'a>(
    unit: &'a Unit,
    tag: &str,
    expected: &'static str,
) -> Result<&'a Map, KeyFileError> {
    let not = |why: String| KeyFileError::NotA { expected, why };
    let map = unit
        .as_map()
        .ok_or_else(|| not(format!("expected a map, found a {}", unit.kind())))?;
    match map.get_str("plexus") {
        None => Err(not("no `plexus` field".into())),
        Some(u) if u.as_str() == Some(tag) => Ok(map),
        Some(u) => Err(not(format!(
            "`plexus` is {}, expected {tag}",
            to_short(u, 24)
        ))),
    }
}

fn check_keys(map: &Map, allowed: &[&str]) -> Result<(), KeyFileError> {
    for k in map.keys() {
        match k.as_str() {
            Some(s) if allowed.contains(&s) => {}
            _ => {
                return Err(KeyFileError::UnknownField {
                    field: to_short(k, 32),
                })
            }
        }
    }
    Ok(())
}

fn field<'a>(map: &'a Map, key: &str, label: &'static str) -> Result<&'a Unit, KeyFileError> {
    map.get_str(key)
        .ok_or(KeyFileError::MissingField { field: label })
}

fn bad(field: &'static str, problem: impl Into<String>) -> KeyFileError {
    KeyFileError::Field {
        field,
        problem: problem.into(),
    }
}

fn name_error(e: &KeyError) -> KeyFileError {
    bad("name", e.to_string())
}

fn str_field<'a>(u: &'a Unit, label: &'static str) -> Result<&'a str, KeyFileError> {
    u.as_str()
        .ok_or_else(|| bad(label, format!("expected a string, found a {}", u.kind())))
}

fn bytes_field<'a>(
    u: &'a Unit,
    label: &'static str,
    len: std::ops::RangeInclusive<usize>,
) -> Result<&'a [u8], KeyFileError> {
    match u {
        Unit::Bytes(b) if len.contains(&b.len()) => Ok(b),
        Unit::Bytes(b) => Err(bad(
            label,
            if len.start() == len.end() {
                format!("expected {} bytes, found {}", len.start(), b.len())
            } else {
                format!(
                    "expected {} to {} bytes, found {}",
                    len.start(),
                    len.end(),
                    b.len()
                )
            },
        )),
        other => Err(bad(
            label,
            format!("expected a byte string, found a {}", other.kind()),
        )),
    }
}

fn u32_field(u: &Unit, label: &'static str) -> Result<u32, KeyFileError> {
    let i = u
        .as_int()
        .ok_or_else(|| bad(label, format!("expected an int, found a {}", u.kind())))?;
    i.to_i64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| bad(label, format!("{i} is out of range")))
}

fn header(map: &Map) -> Result<(KeyKind, String, PublicKey), KeyFileError> {
    let kind = str_field(field(map, "kind", "kind")?, "kind")?
        .parse::<KeyKind>()
        .map_err(|e| bad("kind", e.to_string()))?;
    let name = str_field(field(map, "name", "name")?, "name")?;
    validate_name(name).map_err(|e| name_error(&e))?;
    let public = PublicKey::from_unit(field(map, "public", "public")?)
        .map_err(|e| bad("public", e.to_string()))?;
    Ok((kind, name.to_owned(), public))
}

fn sealed(u: &Unit) -> Result<Sealed, KeyFileError> {
    let map = u
        .as_map()
        .ok_or_else(|| bad("encrypted", format!("expected a map, found a {}", u.kind())))?;
    check_keys(
        map,
        &[
            "kdf", "m_cost", "t_cost", "p_cost", "salt", "cipher", "nonce", "data",
        ],
    )?;
    let kdf = str_field(field(map, "kdf", "encrypted.kdf")?, "encrypted.kdf")?;
    if kdf != "argon2id" {
        return Err(bad(
            "encrypted.kdf",
            format!("unsupported {kdf:?}; expected argon2id"),
        ));
    }
    let cipher = str_field(
        field(map, "cipher", "encrypted.cipher")?,
        "encrypted.cipher",
    )?;
    if cipher != "xchacha20poly1305" {
        return Err(bad(
            "encrypted.cipher",
            format!("unsupported {cipher:?}; expected xchacha20poly1305"),
        ));
    }
    let m = u32_field(
        field(map, "m_cost", "encrypted.m_cost")?,
        "encrypted.m_cost",
    )?;
    let t = u32_field(
        field(map, "t_cost", "encrypted.t_cost")?,
        "encrypted.t_cost",
    )?;
    let p = u32_field(
        field(map, "p_cost", "encrypted.p_cost")?,
        "encrypted.p_cost",
    )?;
    let params = KdfParams::new(m, t, p)?;
    let salt = bytes_field(
        field(map, "salt", "encrypted.salt")?,
        "encrypted.salt",
        16..=64,
    )?;
    let nonce = bytes_field(
        field(map, "nonce", "encrypted.nonce")?,
        "encrypted.nonce",
        NONCE_LEN..=NONCE_LEN,
    )?;
    let data = bytes_field(
        field(map, "data", "encrypted.data")?,
        "encrypted.data",
        SEALED_LEN..=SEALED_LEN,
    )?;
    let mut s = Sealed {
        params,
        salt: salt.to_vec(),
        nonce: [0; NONCE_LEN],
        data: [0; SEALED_LEN],
    };
    s.nonce.copy_from_slice(nonce);
    s.data.copy_from_slice(data);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams::new(8, 1, 1).unwrap()
    }

    fn alice() -> Keypair {
        Keypair::from_secret_bytes(KeyKind::User, "alice", &[42u8; 32]).unwrap()
    }

    #[test]
    fn plain_round_trip() {
        let kp = alice();
        let f = KeyFile::from_keypair(&kp, None, &mut rand::rngs::OsRng).unwrap();
        let text = f.to_text();
        assert!(
            text.starts_with("{plexus:key kind:user name:alice public:x\""),
            "{text}"
        );
        let g = KeyFile::parse(&text).unwrap();
        assert!(!g.is_encrypted());
        assert_eq!(g.unlock(None).unwrap().public(), kp.public());
        assert_eq!(g.to_text(), text);
    }

    #[test]
    fn encrypted_round_trip_and_field_binding() {
        let kp = alice();
        let f =
            KeyFile::from_keypair_with(&kp, Some("pw"), cheap(), &mut rand::rngs::OsRng).unwrap();
        let text = f.to_text();
        assert!(
            text.contains("encrypted:{kdf:argon2id m_cost:8 t_cost:1 p_cost:1 salt:x\""),
            "{text}"
        );
        let g = KeyFile::parse(&text).unwrap();
        assert!(g.is_encrypted());
        assert_eq!(g.kdf_params(), Some(cheap()));
        assert_eq!(g.unlock(Some("pw")).unwrap().public(), kp.public());
        assert_eq!(
            g.unlock(Some("px")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
        assert_eq!(
            g.unlock(None).unwrap_err(),
            KeyFileError::PassphraseRequired
        );
        // Renaming or re-kinding the file breaks the seal.
        let renamed = KeyFile::parse(&text.replace("name:alice", "name:mallory")).unwrap();
        assert_eq!(
            renamed.unlock(Some("pw")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
        let rekinded = KeyFile::parse(&text.replace("kind:user", "kind:node")).unwrap();
        assert_eq!(
            rekinded.unlock(Some("pw")).unwrap_err(),
            KeyFileError::WrongPassphrase
        );
    }

    #[test]
    fn kdf_bounds() {
        assert!(KdfParams::new(8, 1, 1).is_ok());
        assert!(KdfParams::new(7, 1, 1).is_err());
        assert!(KdfParams::new(1 << 20, 64, 16).is_ok());
        assert!(KdfParams::new((1 << 20) + 1, 1, 1).is_err());
        assert!(KdfParams::new(64, 65, 1).is_err());
        assert!(KdfParams::new(1024, 1, 17).is_err());
        assert!(KdfParams::new(1024, 0, 1).is_err());
        assert!(KdfParams::new(1024, 1, 0).is_err());
        assert_eq!(KdfParams::default().m_kib(), 19_456);
    }

    #[test]
    fn identity_round_trip() {
        let id = alice().identity();
        let text = id.to_text();
        assert!(text.starts_with("{plexus:identity kind:user name:alice public:x\""));
        assert_eq!(PublicIdentity::parse(&text).unwrap(), id);
        assert_eq!(alice().public_identity(), text);
        assert!(matches!(
            KeyFile::parse(&text),
            Err(KeyFileError::NotA { .. })
        ));
    }
}
