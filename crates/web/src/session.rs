//! Browser sessions, sans-io: the table behind the session cookie.
//!
//! A session is opened by a login and names the user the browser acts as. Its id (32 random
//! bytes, base64url) travels only in an `HttpOnly; SameSite=Strict` cookie; the table keys
//! sessions by the id's BLAKE3 hash, so looking one up reveals nothing through timing. Each
//! session has its own CSRF token, which the page reads from `/api/me` and sends back in the
//! [`crate::CSRF_HEADER`] header of every request that changes state. The table is bounded:
//! when full, the session closest to its end makes room.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use plexus_identity::PublicKey;

/// How long a session lasts, in milliseconds (12 hours).
pub const SESSION_MS: u64 = 12 * 3600 * 1000;
/// Most sessions one desktop keeps.
pub const MOST_SESSIONS: usize = 1024;

/// Who a browser session acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user's key: every call of the session is made as this user.
    pub user: PublicKey,
    /// The user's registered name.
    pub name: String,
    /// The token state-changing requests must carry.
    pub csrf: String,
    /// When the session ends, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

impl Session {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The open sessions of one desktop.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<[u8; 32], Session>,
}

fn hashed(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

fn random_text(rng: &mut impl rand_core::CryptoRngCore) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// Opens a session for `user` at `now_ms`; gives its id (the cookie's value) and the
    /// session.
    pub fn open(
        &mut self,
        user: PublicKey,
        name: &str,
        now_ms: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> (String, Session) {
        self.by_id.retain(|_, s| s.expires_ms > now_ms);
        if self.by_id.len() >= MOST_SESSIONS {
            let soonest = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| *k);
            if let Some(k) = soonest {
                self.by_id.remove(&k);
            }
        }
        let id = random_text(rng);
        let session = Session {
            user,
            name: name.to_owned(),
            csrf: random_text(rng),
            expires_ms: now_ms.saturating_add(SESSION_MS),
        };
        self.by_id.insert(hashed(&id), session.clone());
        (id, session)
    }

    /// The session of `id`, if open at `now_ms`.
    pub fn get(&self, id: &str, now_ms: u64) -> Option<Session> {
        self.by_id
            .get(&hashed(id))
            .filter(|s| s.expires_ms > now_ms)
            .cloned()
    }

    /// Ends the session of `id` (logout).
    pub fn close(&mut self, id: &str) {
        self.by_id.remove(&hashed(id));
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use plexus_identity::{KeyKind, Keypair};
    use rand_core::OsRng;

    fn user() -> PublicKey {
        Keypair::from_secret_bytes(KeyKind::User, "me", &[7; 32])
            .unwrap()
            .public()
    }

    #[test]
    fn sessions_open_expire_and_close() {
        let mut sessions = Sessions::default();
        let (id, s) = sessions.open(user(), "me", 1_000, &mut OsRng);
        assert_eq!(sessions.get(&id, 1_001), Some(s.clone()));
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches("nope"));
        assert!(!s.csrf_matches(""));
        assert_eq!(sessions.get(&id, 1_000 + SESSION_MS), None);
        assert_eq!(sessions.get("another", 1_001), None);
        sessions.close(&id);
        assert_eq!(sessions.get(&id, 1_001), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut sessions = Sessions::default();
        let (first, _) = sessions.open(user(), "me", 0, &mut OsRng);
        for i in 1..=MOST_SESSIONS as u64 {
            sessions.open(user(), "me", i, &mut OsRng);
        }
        assert_eq!(sessions.len(), MOST_SESSIONS);
        // The oldest made room.
        assert_eq!(sessions.get(&first, 10), None);
    }
}
