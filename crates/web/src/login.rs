//! Login links, sans-io: what `plx web` makes and the desktop's `/api/login` takes.
//!
//! A token is `plx-web-` followed by the unpadded base64url encoding of a postcard-encoded
//! [`Token`]: the user's public key, the desktop it is for (the address the node's web server
//! listens on, so a link for one node's desktop does not open another's), an expiry, a random
//! nonce, and the user's ed25519 signature over all of that (a domain-separated BLAKE3 digest,
//! so no other Plexus signature can pass for one). [`Logins`] accepts each nonce once and a
//! token only within [`TTL_MS`] of being made: a link logs in once, within a minute.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use plexus_identity::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The text every token starts with.
pub const PREFIX: &str = "plx-web-";
/// How long a login link lasts, in milliseconds.
pub const TTL_MS: u64 = 60_000;
/// How far the clocks of the machine that made a link and the node may disagree.
pub const SKEW_MS: u64 = 5_000;
/// Longest token read (a real one is about 230 characters).
pub const MAX_TOKEN_LEN: usize = 1024;
/// Most links a desktop remembers as used at once: their nonces are kept until they expire,
/// so this bounds logins a minute (beyond it a login is refused, never a used link accepted).
pub const MOST_REMEMBERED: usize = 4096;
/// The signature's domain: a digest made for anything else never matches.
const CONTEXT: &str = "plexus web login v1";
/// The format version.
const VERSION: u8 = 1;

/// What the user's key signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Format version ([`VERSION`]).
    pub version: u8,
    /// The user's public key.
    pub user: [u8; 32],
    /// The desktop the link is for: the node's web address, `host:port`.
    pub desktop: String,
    /// When the link expires, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// Makes each link unique, and is how a used link is known again.
    pub nonce: [u8; 16],
}

/// A token as it travels: claims and signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// What is signed.
    pub claims: Claims,
    /// The user's signature over [`Claims::digest`] (64 bytes).
    pub signature: Vec<u8>,
}

impl Claims {
    /// The digest the user signs.
    fn digest(&self) -> [u8; 32] {
        // Encoding a struct of ints, arrays and a string cannot fail.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(&bytes);
        *hasher.finalize().as_bytes()
    }
}

impl Token {
    /// A new login token for `desktop`, signed by `key`, expiring [`TTL_MS`] after `now_ms`.
    pub fn issue(
        key: &Keypair,
        desktop: &str,
        now_ms: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Token {
        let mut nonce = [0; 16];
        rng.fill_bytes(&mut nonce);
        let claims = Claims {
            version: VERSION,
            user: key.public().to_bytes(),
            desktop: desktop.to_owned(),
            expires_ms: now_ms.saturating_add(TTL_MS),
            nonce,
        };
        let signature = key.sign_digest(&claims.digest()).to_vec();
        Token { claims, signature }
    }

    /// The token as text.
    pub fn encode(&self) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a token (surrounding whitespace ignored), checking only its form: the
    /// signature, desktop and expiry are [`Token::check`]'s.
    pub fn decode(text: &str) -> Result<Token, Error> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(Error::Damaged(format!(
                "{} characters, too long",
                text.len()
            )));
        }
        let body = text.strip_prefix(PREFIX).ok_or(Error::NotAToken)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| Error::Damaged(e.to_string()))?;
        match bytes.first() {
            None => return Err(Error::Damaged("empty".into())),
            Some(&VERSION) => {}
            Some(&other) => return Err(Error::Version(other)),
        }
        let (token, rest): (Token, &[u8]) =
            postcard::take_from_bytes(&bytes).map_err(|e| Error::Damaged(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::Damaged("bytes after the token".into()));
        }
        Ok(token)
    }

    /// Checks that the token is for `desktop`, signed by its user, and not expired at
    /// `now_ms` (nor claiming to last longer than a link does); gives the user's key.
    pub fn check(&self, desktop: &str, now_ms: u64) -> Result<PublicKey, Error> {
        let c = &self.claims;
        if c.desktop != desktop {
            return Err(Error::WrongDesktop(c.desktop.clone()));
        }
        let user = PublicKey::from_bytes(&c.user).map_err(|_| Error::BadSignature)?;
        if !user.verify_digest(&c.digest(), &self.signature) {
            return Err(Error::BadSignature);
        }
        let latest = now_ms.saturating_add(TTL_MS + SKEW_MS);
        if now_ms >= c.expires_ms || c.expires_ms > latest {
            return Err(Error::Expired);
        }
        Ok(user)
    }
}

/// The login link for the desktop listening on `desktop`: `http://HOST:PORT/login#TOKEN`,
/// with a token signed by `key`. The token is in the fragment, which browsers never send
/// to a server: it stays out of logs and `Referer` headers, and a link previewer that
/// fetches the URL cannot use it up (the page posts it). A desktop listening on every
/// address is reached on the loopback one ([`reachable`]).
pub fn link(
    key: &Keypair,
    desktop: std::net::SocketAddr,
    now_ms: u64,
    rng: &mut impl rand_core::CryptoRngCore,
) -> String {
    let token = Token::issue(key, &desktop.to_string(), now_ms, rng).encode();
    format!("http://{}/login#{token}", reachable(desktop))
}

/// Where a browser on this machine reaches a desktop listening on `addr`: the loopback
/// address for a desktop on every address, else `addr`.
pub fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut host = addr;
    if host.ip().is_unspecified() {
        host.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    host
}

/// The logins of one desktop: checks tokens and accepts each once.
#[derive(Debug)]
pub struct Logins {
    desktop: String,
    /// Nonces of the links used, with their expiry (then they are refused anyway).
    used: HashMap<[u8; 16], u64>,
    most: usize,
}

impl Logins {
    /// The logins of the desktop at `desktop` (`host:port`).
    pub fn new(desktop: &str) -> Logins {
        Logins::with_room(desktop, MOST_REMEMBERED)
    }

    /// [`Logins::new`] remembering at most `most` used links at once.
    pub fn with_room(desktop: &str, most: usize) -> Logins {
        Logins {
            desktop: desktop.to_owned(),
            used: HashMap::new(),
            most,
        }
    }

    /// The desktop's address, as links for it name it.
    pub fn desktop(&self) -> &str {
        &self.desktop
    }

    /// Accepts the token `text` at `now_ms` once: gives the user it logs in.
    pub fn accept(&mut self, text: &str, now_ms: u64) -> Result<PublicKey, Error> {
        let token = Token::decode(text)?;
        let user = token.check(&self.desktop, now_ms)?;
        self.used.retain(|_, expires| *expires > now_ms);
        if self.used.contains_key(&token.claims.nonce) {
            return Err(Error::Used);
        }
        if self.used.len() >= self.most {
            return Err(Error::TooManyLogins);
        }
        self.used
            .insert(token.claims.nonce, token.claims.expires_ms);
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use plexus_identity::KeyKind;
    use proptest::prelude::*;
    use rand_core::OsRng;

    const DESK: &str = "127.0.0.1:7780";
    const NOW: u64 = 1_800_000_000_000;

    fn key() -> Keypair {
        Keypair::from_secret_bytes(KeyKind::User, "me", &[7; 32]).unwrap()
    }

    #[test]
    fn a_link_logs_in_once() {
        let text = Token::issue(&key(), DESK, NOW, &mut OsRng).encode();
        assert!(text.starts_with(PREFIX));
        let mut logins = Logins::new(DESK);
        assert_eq!(logins.accept(&text, NOW + 1).unwrap(), key().public());
        assert!(matches!(logins.accept(&text, NOW + 2), Err(Error::Used)));
        // A second link of the same user is another login.
        let again = Token::issue(&key(), DESK, NOW, &mut OsRng).encode();
        assert!(logins.accept(&again, NOW + 3).is_ok());
    }

    #[test]
    fn expired_early_and_foreign_links_are_refused() {
        let mut logins = Logins::new(DESK);
        let text = Token::issue(&key(), DESK, NOW, &mut OsRng).encode();
        assert!(matches!(
            logins.accept(&text, NOW + TTL_MS),
            Err(Error::Expired)
        ));
        // Made "in the future" beyond the allowed skew: it would last too long.
        let early = Token::issue(&key(), DESK, NOW + SKEW_MS + 1, &mut OsRng).encode();
        assert!(matches!(logins.accept(&early, NOW), Err(Error::Expired)));
        let other = Token::issue(&key(), "127.0.0.12:7780", NOW, &mut OsRng).encode();
        assert!(matches!(
            logins.accept(&other, NOW),
            Err(Error::WrongDesktop(d)) if d == "127.0.0.12:7780"
        ));
        assert!(matches!(logins.accept("hello", NOW), Err(Error::NotAToken)));
        assert!(matches!(
            logins.accept(&format!("{PREFIX}!!"), NOW),
            Err(Error::Damaged(_))
        ));
    }

    #[test]
    fn a_link_with_changed_claims_is_refused() {
        let mut token = Token::issue(&key(), DESK, NOW, &mut OsRng);
        token.claims.expires_ms += 1;
        assert!(matches!(token.check(DESK, NOW), Err(Error::BadSignature)));
        let mut token = Token::issue(&key(), DESK, NOW, &mut OsRng);
        token.claims.user = Keypair::generate(KeyKind::User, "eve", &mut OsRng)
            .unwrap()
            .public()
            .to_bytes();
        assert!(matches!(token.check(DESK, NOW), Err(Error::BadSignature)));
    }

    #[test]
    fn used_links_are_remembered_within_bounds() {
        let mut logins = Logins::with_room(DESK, 2);
        for i in 0..2 {
            let t = Token::issue(&key(), DESK, NOW + i, &mut OsRng).encode();
            logins.accept(&t, NOW + i).unwrap();
        }
        let third = Token::issue(&key(), DESK, NOW, &mut OsRng).encode();
        assert!(matches!(
            logins.accept(&third, NOW + 2),
            Err(Error::TooManyLogins)
        ));
        // Once the first two have expired, there is room again.
        let later = Token::issue(&key(), DESK, NOW + TTL_MS + 1, &mut OsRng).encode();
        assert!(logins.accept(&later, NOW + TTL_MS + 1).is_ok());
    }

    proptest! {
        /// Any change to a token's bytes makes it refused (or, if it still decodes to the
        /// same token, accepted as that one).
        #[test]
        fn tampered_tokens_are_refused(at in 0usize..400, bit in 0u8..8) {
            let token = Token::issue(&key(), DESK, NOW, &mut OsRng);
            let mut bytes = postcard::to_allocvec(&token).unwrap();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
            let mut logins = Logins::new(DESK);
            if let Ok(user) = logins.accept(&text, NOW + 1) {
                prop_assert_eq!(Token::decode(&text).unwrap(), token);
                prop_assert_eq!(user, key().public());
            }
        }

        /// A token is accepted exactly when it is fresh, and then only once.
        #[test]
        fn expired_and_reused_tokens_are_refused(made in 0u64..200_000, seen in 0u64..200_000) {
            let text = Token::issue(&key(), DESK, NOW + made, &mut OsRng).encode();
            let now = NOW + seen;
            let fresh = now < NOW + made + TTL_MS && NOW + made <= now + SKEW_MS;
            let mut logins = Logins::new(DESK);
            prop_assert_eq!(logins.accept(&text, now).is_ok(), fresh);
            prop_assert!(logins.accept(&text, now).is_err());
        }

        #[test]
        fn decoding_never_panics(s in ".{0,300}") {
            let _ = Token::decode(&s);
            let _ = Token::decode(&format!("{PREFIX}{s}"));
        }
    }
}
