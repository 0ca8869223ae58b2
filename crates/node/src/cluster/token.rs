//! Join tokens: what `plx invite` prints and `plx node --join` takes.
//!
//! A token is `plx-join-` followed by the unpadded base64url encoding of a postcard-encoded
//! [`JoinToken`]. It carries the cluster id, where to reach members (address and node key, so
//! the joiner can check who answers), an expiry, and a one-time invite secret: the ed25519 seed
//! of an *invite key*. The cluster admits links authenticated by a pending invite key, but
//! only for one request: joining. Using the invite consumes it cluster-wide.

use base64::Engine;
use plexus_identity::{KeyError, KeyKind, Keypair, PublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The text every token starts with.
pub const PREFIX: &str = "plx-join-";

/// Longest token accepted (a token lists a handful of members).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A member to contact when joining.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The member's cluster address (`host:port`).
    pub addr: String,
    /// The member's node key.
    pub key: [u8; 32],
}

/// The content of a join token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// Format version (1).
    pub version: u8,
    /// The cluster's id.
    pub cluster: [u8; 16],
    /// Members to contact, in order of preference.
    pub seeds: Vec<Seed>,
    /// The invite key's secret seed.
    pub secret: [u8; 32],
    /// When the token expires, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a join token at all.
    #[error("not a join token (tokens start with {PREFIX}; get one with `plx invite` on a cluster node)")]
    NotAToken,
    /// Damaged: bad base64 or content.
    #[error("damaged join token ({0}); copy it again from `plx invite`")]
    Damaged(String),
    /// Made by a newer Plexus.
    #[error("join token version {0} is not supported by this plx (it knows version 1)")]
    Version(u8),
    /// Past its expiry.
    #[error("this join token expired; make a new one with `plx invite`")]
    Expired,
}

impl JoinToken {
    /// The token as text.
    pub fn encode(&self) -> String {
        // Serializing plain structs of arrays, strings and ints cannot fail.
        let bytes = Zeroizing::new(postcard::to_allocvec(self).unwrap_or_default());
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*bytes)
        )
    }

    /// Reads a token (surrounding whitespace ignored). Expiry is checked by [`JoinToken::check`].
    pub fn decode(text: &str) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Damaged(format!(
                "{} characters, more than any token",
                text.len()
            )));
        }
        let body = text.strip_prefix(PREFIX).ok_or(TokenError::NotAToken)?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|e| TokenError::Damaged(e.to_string()))?,
        );
        let version = *bytes
            .first()
            .ok_or_else(|| TokenError::Damaged("empty".into()))?;
        if version != 1 {
            return Err(TokenError::Version(version));
        }
        let token: JoinToken =
            postcard::from_bytes(&bytes).map_err(|e| TokenError::Damaged(e.to_string()))?;
        if token.seeds.is_empty() {
            return Err(TokenError::Damaged("no member to contact".into()));
        }
        for seed in &token.seeds {
            PublicKey::from_bytes(&seed.key)
                .map_err(|e| TokenError::Damaged(format!("member key: {e}")))?;
        }
        Ok(token)
    }

    /// Refuses an expired token.
    pub fn check(&self, now_ms: u64) -> Result<(), TokenError> {
        if now_ms >= self.expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// The invite key the token's secret stands for.
    pub fn invite_key(&self) -> Result<Keypair, KeyError> {
        invite_keypair(&self.secret)
    }
}

/// The invite key pair for a secret seed.
pub fn invite_keypair(secret: &[u8; 32]) -> Result<Keypair, KeyError> {
    Keypair::from_secret_bytes(KeyKind::Node, "invite", secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JoinToken {
        JoinToken {
            version: 1,
            cluster: [3; 16],
            seeds: vec![Seed {
                addr: "127.0.0.2:7700".into(),
                key: Keypair::generate(KeyKind::Node, "a", &mut rand_core::OsRng)
                    .unwrap()
                    .public()
                    .to_bytes(),
            }],
            secret: [9; 32],
            expires_ms: 1_000,
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let text = t.encode();
        assert!(text.starts_with(PREFIX));
        assert_eq!(JoinToken::decode(&format!("  {text}\n")).unwrap(), t);
        assert_eq!(t.check(999), Ok(()));
        assert_eq!(t.check(1_000), Err(TokenError::Expired));
        assert_eq!(
            t.invite_key().unwrap().public(),
            invite_keypair(&[9; 32]).unwrap().public()
        );
    }

    #[test]
    fn damaged_tokens_are_refused() {
        let text = sample().encode();
        assert_eq!(JoinToken::decode("hello"), Err(TokenError::NotAToken));
        assert!(matches!(
            JoinToken::decode(&text[..text.len() - 5]),
            Err(TokenError::Damaged(_))
        ));
        assert!(matches!(
            JoinToken::decode(&format!("{PREFIX}!!!")),
            Err(TokenError::Damaged(_))
        ));
        let mut t = sample();
        t.version = 2;
        assert_eq!(JoinToken::decode(&t.encode()), Err(TokenError::Version(2)));
        let mut t = sample();
        t.seeds.clear();
        assert!(matches!(
            JoinToken::decode(&t.encode()),
            Err(TokenError::Damaged(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = JoinToken::decode(&s);
            let _ = JoinToken::decode(&format!("{PREFIX}{s}"));
        }
    }
}
