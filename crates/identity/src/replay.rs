//! Replay protection: refuse messages outside a time window and messages already seen.
//!
//! Sans-io: the caller passes the current time. The rules are specified in
//! `docs/identity.md`, "Replay rules".

use std::collections::{BTreeSet, HashSet};

use crate::message::SignedMessage;

/// How a [`ReplayGuard`] judges times, and how much it may remember.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayConfig {
    /// Oldest accepted message, in ms before the guard's current time.
    pub max_age_ms: u64,
    /// Latest accepted message, in ms after the guard's current time (allowed clock skew).
    pub max_future_ms: u64,
    /// Most message hashes remembered. When more are needed, the oldest are forgotten and
    /// the window's lower edge moves up past them (messages at or before their time are
    /// refused as too old), so a forgotten message can never be accepted again.
    pub max_entries: usize,
}

impl ReplayConfig {
    /// Two minutes back, thirty seconds ahead, 100 000 hashes (roughly 10 to 15 MB when full).
    pub const DEFAULT: ReplayConfig = ReplayConfig {
        max_age_ms: 120_000,
        max_future_ms: 30_000,
        max_entries: 100_000,
    };
}

impl Default for ReplayConfig {
    fn default() -> ReplayConfig {
        ReplayConfig::DEFAULT
    }
}

/// Why a [`ReplayGuard`] refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReplayError {
    /// The message is older than the window.
    #[error("message time {time_ms} ms is too old: the oldest accepted now is {oldest_ms} ms")]
    TooOld {
        /// The message's time.
        time_ms: u64,
        /// The oldest time accepted at this moment.
        oldest_ms: u64,
    },
    /// The message is further in the future than the allowed clock skew.
    #[error(
        "message time {time_ms} ms is too far ahead: the latest accepted now is {latest_ms} ms"
    )]
    TooNew {
        /// The message's time.
        time_ms: u64,
        /// The latest time accepted at this moment.
        latest_ms: u64,
    },
    /// A message with this hash was already accepted.
    #[error("replayed message (this hash was already accepted)")]
    Replayed,
}

/// Remembers the hashes of accepted messages for as long as their time is inside the window,
/// and refuses repeats and messages outside the window. Memory is bounded by
/// [`ReplayConfig::max_entries`].
///
/// Check a message only *after* verifying its signature: otherwise a forged copy (same
/// content, bad signature) would be remembered and the genuine message refused.
///
/// The guard's current time is the latest `now_ms` it was given: if the caller's clock
/// steps back, the guard keeps judging by the later time, so entries it has forgotten stay
/// outside the window.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    config: ReplayConfig,
    now_ms: u64,
    /// Messages at or before this time are refused (raised when entries are evicted).
    floor_ms: Option<u64>,
    seen: HashSet<[u8; 32]>,
    by_time: BTreeSet<(u64, [u8; 32])>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new(config: ReplayConfig) -> ReplayGuard {
        ReplayGuard {
            config,
            now_ms: 0,
            floor_ms: None,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Number of hashes remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no hash is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The oldest message time accepted at the guard's current time.
    pub fn oldest_accepted_ms(&self) -> u64 {
        let by_age = self.now_ms.saturating_sub(self.config.max_age_ms);
        match self.floor_ms {
            Some(f) => by_age.max(f.saturating_add(1)),
            None => by_age,
        }
    }

    /// Accepts a message (remembering its hash) or says why not: its time must be within
    /// `[now − max_age, now + max_future]` and its hash not already accepted.
    pub fn check(&mut self, hash: &[u8; 32], time_ms: u64, now_ms: u64) -> Result<(), ReplayError> {
        self.advance(now_ms);
        let oldest_ms = self.oldest_accepted_ms();
        if time_ms < oldest_ms {
            return Err(ReplayError::TooOld { time_ms, oldest_ms });
        }
        let latest_ms = self.now_ms.saturating_add(self.config.max_future_ms);
        if time_ms > latest_ms {
            return Err(ReplayError::TooNew { time_ms, latest_ms });
        }
        if !self.seen.insert(*hash) {
            return Err(ReplayError::Replayed);
        }
        self.by_time.insert((time_ms, *hash));
        while self.seen.len() > self.config.max_entries {
            match self.by_time.pop_first() {
                Some((t, h)) => {
                    self.seen.remove(&h);
                    self.floor_ms = Some(self.floor_ms.map_or(t, |f| f.max(t)));
                }
                None => break,
            }
        }
        // With max_entries == 0 the message just inserted may itself be evicted: it is still
        // accepted once, and the floor now refuses it (and anything as old) from here on.
        Ok(())
    }

    /// [`ReplayGuard::check`] with a message's hash and time. Verify the message first.
    pub fn check_message(&mut self, msg: &SignedMessage, now_ms: u64) -> Result<(), ReplayError> {
        self.check(&msg.hash(), msg.time_ms(), now_ms)
    }

    /// Moves the guard's time forward (never back) and forgets what fell out of the window.
    fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let oldest = self.oldest_accepted_ms();
        while let Some(&(t, h)) = self.by_time.first() {
            if t >= oldest {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&h);
        }
    }
}

impl Default for ReplayGuard {
    fn default() -> ReplayGuard {
        ReplayGuard::new(ReplayConfig::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_entries: usize) -> ReplayConfig {
        ReplayConfig {
            max_age_ms: 100,
            max_future_ms: 10,
            max_entries,
        }
    }

    #[test]
    fn window_and_repeats() {
        let mut g = ReplayGuard::new(cfg(10));
        assert_eq!(g.check(&[1; 32], 1000, 1000), Ok(()));
        assert_eq!(g.check(&[1; 32], 1000, 1000), Err(ReplayError::Replayed));
        assert_eq!(g.check(&[2; 32], 900, 1000), Ok(()));
        assert!(matches!(
            g.check(&[3; 32], 899, 1000),
            Err(ReplayError::TooOld { .. })
        ));
        assert_eq!(g.check(&[4; 32], 1010, 1000), Ok(()));
        assert!(matches!(
            g.check(&[5; 32], 1011, 1000),
            Err(ReplayError::TooNew { .. })
        ));
        // Entries expire with the window.
        assert_eq!(g.check(&[6; 32], 1095, 1095), Ok(()));
        assert_eq!(g.len(), 3);
        assert_eq!(g.check(&[1; 32], 1000, 1095), Err(ReplayError::Replayed));
    }

    #[test]
    fn clock_stepping_back_does_not_reopen_the_window() {
        let mut g = ReplayGuard::new(cfg(10));
        g.check(&[1; 32], 1000, 1000).unwrap();
        g.check(&[2; 32], 2000, 2000).unwrap();
        assert_eq!(g.len(), 1);
        assert!(matches!(
            g.check(&[1; 32], 1000, 1000),
            Err(ReplayError::TooOld { .. })
        ));
    }

    #[test]
    fn full_guard_raises_its_floor() {
        let mut g = ReplayGuard::new(cfg(2));
        g.check(&[1; 32], 1000, 1000).unwrap();
        g.check(&[2; 32], 1001, 1001).unwrap();
        g.check(&[3; 32], 1002, 1002).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.oldest_accepted_ms(), 1001);
        // The forgotten message is refused as too old, not accepted again.
        assert!(matches!(
            g.check(&[1; 32], 1000, 1002),
            Err(ReplayError::TooOld { .. })
        ));
        assert_eq!(g.check(&[2; 32], 1001, 1002), Err(ReplayError::Replayed));
        assert_eq!(g.check(&[4; 32], 1002, 1002), Ok(()));
    }

    #[test]
    fn zero_capacity_accepts_only_newer_messages() {
        let mut g = ReplayGuard::new(cfg(0));
        g.check(&[1; 32], 1000, 1000).unwrap();
        assert!(g.check(&[1; 32], 1000, 1000).is_err());
        assert!(g.is_empty());
    }
}
