//! Plexus identity: who is acting, and proof of it.
//!
//! A user or a node is an ed25519 [`Keypair`] with a [`KeyKind`] and a name. This crate is
//! pure: no files, no clock, no global randomness. Times come in as `now_ms` (milliseconds
//! since the Unix epoch) and randomness as `&mut impl rand_core::CryptoRngCore`.
//!
//! - **Keys** ([`keys`]): [`Keypair::generate`], [`PublicKey`] (base64url text, a 32-byte
//!   [`plexus_units::Unit::Bytes`] as a unit, a short [`PublicKey::fingerprint`]), and a
//!   bounded [`KeyCache`] of decoded keys for receivers that see the same authors often.
//! - **Key files** ([`keyfile`]): [`KeyFile`] writes a key pair as units text, in the clear
//!   or sealed with a passphrase (Argon2id + XChaCha20-Poly1305), and [`PublicIdentity`] is
//!   the part to share.
//! - **Signed messages** ([`message`]): [`SignedMessage::sign`] signs a unit with its author,
//!   time and nonce; [`SignedMessage::from_bytes_with`] reads one decoding its author through
//!   a [`KeyCache`]; [`SignedMessage::verify`] and [`verify_batch`] check signatures;
//!   [`SignedMessage::hash`] is the message's identity.
//! - **Replays** ([`replay`]): [`ReplayGuard`] refuses stale, future and repeated messages.
//!
//! The formats are specified in `docs/identity.md`.
//!
//! ```
//! use plexus_identity::{
//!     KdfParams, KeyFile, KeyKind, Keypair, PublicIdentity, ReplayGuard, SignedMessage,
//! };
//! use plexus_units::parse;
//! use rand_core::OsRng;
//!
//! let alice = Keypair::generate(KeyKind::User, "alice", &mut OsRng).unwrap();
//!
//! // Sign a message, send its bytes, check it on arrival.
//! let now_ms = 1_790_000_000_000;
//! let body = parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap();
//! let msg = SignedMessage::sign(body, &alice, now_ms, &mut OsRng).unwrap();
//! let wire = msg.to_bytes();
//!
//! let got = SignedMessage::from_bytes(&wire).unwrap();
//! got.verify().unwrap();
//! assert_eq!(got.author(), alice.public());
//! let mut guard = ReplayGuard::default();
//! guard.check_message(&got, now_ms + 5).unwrap();
//! assert!(guard.check_message(&got, now_ms + 6).is_err()); // a replay
//!
//! // Keep the key in a file sealed with a passphrase (cheap KDF parameters for the example;
//! // `KeyFile::from_keypair` uses the OWASP defaults).
//! let params = KdfParams::new(64, 1, 1).unwrap();
//! let file = KeyFile::from_keypair_with(&alice, Some("correct horse"), params, &mut OsRng)
//!     .unwrap();
//! let text = file.to_text();
//! let again = KeyFile::parse(&text).unwrap().unlock(Some("correct horse")).unwrap();
//! assert_eq!(again.public(), alice.public());
//!
//! // Share the public identity.
//! let shared = file.public_identity(); // {plexus:identity kind:user name:alice public:x"…"}
//! let id = PublicIdentity::parse(&shared).unwrap();
//! assert_eq!((id.name(), id.public()), ("alice", alice.public()));
//! ```

mod batch;
pub mod keyfile;
pub mod keys;
pub mod message;
pub mod replay;

pub use keyfile::{KdfParams, KeyFile, KeyFileError, PublicIdentity};
pub use keys::{validate_name, KeyCache, KeyError, KeyKind, Keypair, PublicKey};
pub use message::{
    verify_batch, MessageError, SignError, SignedMessage, VerifyError, BATCH_CHUNK, MESSAGE_CONTEXT,
};
pub use replay::{ReplayConfig, ReplayError, ReplayGuard};
