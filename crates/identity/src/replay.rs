//! Replay protection: refuse messages outside a time window and messages already seen.
//!
//! Sans-io: the caller passes the current time. The rules are specified in
//! `docs/identity.md`, "Replay rules".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::message::SignedMessage;

/// How a [`ReplayGuard`] judges times, and how much it may remember.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayConfig {
    /// Oldest accepted message, in ms before the guard's current time.
    pub max_age_ms: u64,
    /// Latest accepted message, in ms after the guard's current time (allowed clock skew).
    pub max_future_ms: u64,
    /// Most messages remembered. When more are needed, the oldest are forgotten and
    /// the window's lower edge moves up past them (messages at or before their time are
    /// refused as too old), so a forgotten message can never be accepted again.
    pub max_entries: usize,
}

impl ReplayConfig {
    /// Two minutes back, thirty seconds ahead, 100 000 messages (about 3.3 MB when full:
    /// 16 bytes in a heap and 8 in a hash set per message, with the tables' slack).
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

/// Tables of at most this many entries are never shrunk (they take a few KB).
const MIN_SHRINK_CAPACITY: usize = 256;

/// The 64-bit fingerprint of a message hash that a guard remembers: its first 8 bytes.
fn fingerprint(hash: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(b)
}

/// Remembers the accepted messages for as long as their time is inside the window, and refuses
/// repeats and messages outside the window. Memory is bounded by
/// [`ReplayConfig::max_entries`].
///
/// Check a message only *after* verifying its signature: otherwise a forged copy (same
/// content, bad signature) would be remembered and the genuine message refused.
///
/// The guard's current time is the latest `now_ms` it was given: if the caller's clock
/// steps back, the guard keeps judging by the later time, so entries it has forgotten stay
/// outside the window.
///
/// **Memory.** A message is remembered by a 64-bit fingerprint of its hash (the hash's first
/// 8 bytes), kept in a hash set and, with its time, in a min-heap by time: about 24 bytes per
/// message plus the tables' slack (33 bytes on average), where full 32-byte hashes in a hash
/// set and an ordered set took about 130. Entries are forgotten when a check or
/// [`ReplayGuard::prune`] finds them outside the window, and the tables give memory back
/// when they fall below a quarter of their capacity, so a guard that has seen a burst
/// returns to a few KB once the window has passed: call [`ReplayGuard::prune`] now and then
/// when messages may stop arriving.
///
/// **Fingerprint collisions.** Two different messages with the same fingerprint are taken
/// for one: the second is refused as replayed while the first is remembered. That never
/// accepts anything twice; it can only refuse a genuine message, and the sender's retry (a
/// new nonce, so a new hash) goes through. For a fresh message the chance is `n / 2^64` with
/// `n` messages remembered: at most 5.4·10⁻¹⁵ with the default 100 000 entries, so on average
/// less than one false refusal per 10¹⁴ messages. Forcing one on purpose takes a second
/// preimage of 64 bits of BLAKE3 (about 2⁶⁴ hashes) for a message the attacker can see before
/// this guard does, and a key this node accepts; and it refuses a single message.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    config: ReplayConfig,
    now_ms: u64,
    /// Messages at or before this time are refused (raised when entries are evicted).
    floor_ms: Option<u64>,
    /// The fingerprints of the remembered messages.
    seen: HashSet<u64>,
    /// The same entries as `seen`, as `(time, fingerprint)`, the oldest on top.
    by_time: BinaryHeap<Reverse<(u64, u64)>>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new(config: ReplayConfig) -> ReplayGuard {
        ReplayGuard {
            config,
            now_ms: 0,
            floor_ms: None,
            seen: HashSet::new(),
            by_time: BinaryHeap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Number of messages remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no message is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// How many messages the guard's tables can hold without allocating (the smaller of its
    /// two tables' capacities): what its memory is sized for.
    pub fn capacity(&self) -> usize {
        self.seen.capacity().min(self.by_time.capacity())
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
        let fp = fingerprint(hash);
        if !self.seen.insert(fp) {
            return Err(ReplayError::Replayed);
        }
        self.by_time.push(Reverse((time_ms, fp)));
        while self.seen.len() > self.config.max_entries {
            match self.by_time.pop() {
                Some(Reverse((t, f))) => {
                    self.seen.remove(&f);
                    self.floor_ms = Some(self.floor_ms.map_or(t, |old| old.max(t)));
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

    /// Moves the guard's time forward to `now_ms` (never back), forgets the messages that fell
    /// out of the window and gives memory back when the tables are mostly empty, without
    /// checking a message. Returns how many messages were forgotten. Nothing it forgets can
    /// be accepted again (it is too old). Checks do the same, so calling this is needed only
    /// to free memory when no message may arrive for a while.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let before = self.seen.len();
        self.advance(now_ms);
        before - self.seen.len()
    }

    /// Moves the guard's time forward (never back) and forgets what fell out of the window.
    fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let oldest = self.oldest_accepted_ms();
        let mut forgot = false;
        while let Some(&Reverse((t, f))) = self.by_time.peek() {
            if t >= oldest {
                break;
            }
            self.by_time.pop();
            self.seen.remove(&f);
            forgot = true;
        }
        if forgot {
            self.shrink();
        }
    }

    /// Gives memory back when the entries fill less than a quarter of a table, keeping room
    /// for twice as many as now (so that shrinking and growing do not alternate).
    fn shrink(&mut self) {
        let len = self.seen.len();
        if self.seen.capacity() > MIN_SHRINK_CAPACITY && len < self.seen.capacity() / 4 {
            self.seen.shrink_to(2 * len);
        }
        if self.by_time.capacity() > MIN_SHRINK_CAPACITY && len < self.by_time.capacity() / 4 {
            self.by_time.shrink_to(2 * len);
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
    fn prune_forgets_by_time_without_a_message() {
        let mut g = ReplayGuard::new(cfg(10));
        g.check(&[1; 32], 1000, 1000).unwrap();
        g.check(&[2; 32], 1050, 1050).unwrap();
        g.check(&[3; 32], 1060, 1050).unwrap();
        assert_eq!(g.prune(1099), 0);
        assert_eq!(g.len(), 3);
        // At 1101 the oldest accepted time is 1001: the first message is forgotten ...
        assert_eq!(g.prune(1101), 1);
        assert_eq!(g.len(), 2);
        // ... and still refused (too old), and the others still refused as replays.
        assert!(matches!(
            g.check(&[1; 32], 1000, 1101),
            Err(ReplayError::TooOld { .. })
        ));
        assert_eq!(g.check(&[2; 32], 1050, 1101), Err(ReplayError::Replayed));
        // Pruning at an earlier time does not move the guard's time back.
        assert_eq!(g.prune(0), 0);
        assert_eq!(g.oldest_accepted_ms(), 1001);
        assert_eq!(g.prune(2000), 2);
        assert!(g.is_empty());
        assert!(matches!(
            g.check(&[3; 32], 1060, 2000),
            Err(ReplayError::TooOld { .. })
        ));
    }

    #[test]
    fn memory_is_given_back_when_the_window_has_passed() {
        let mut g = ReplayGuard::new(ReplayConfig {
            max_age_ms: 1000,
            max_future_ms: 0,
            max_entries: 100_000,
        });
        let hash = |i: u64| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_le_bytes());
            h
        };
        for i in 0..20_000u64 {
            g.check(&hash(i), 10_000 + i / 100, 10_000 + i / 100)
                .unwrap();
        }
        assert_eq!(g.len(), 20_000);
        assert!(g.capacity() >= 20_000);
        // A burst later, a few messages remain: the tables shrink to fit them.
        for i in 0..10u64 {
            g.check(&hash(1_000_000 + i), 11_150, 11_150).unwrap();
        }
        // The window (1 s) now starts at 10 150: the first 15 000 are forgotten.
        assert_eq!(g.len(), 5_000 + 10);
        g.prune(12_149);
        assert_eq!(g.len(), 10);
        assert!(
            g.capacity() >= 10 && g.capacity() < 1_000,
            "{}",
            g.capacity()
        );
        assert_eq!(
            g.check(&hash(1_000_000), 11_150, 12_149),
            Err(ReplayError::Replayed)
        );
        assert_eq!(g.prune(20_000), 10);
        assert!(g.is_empty());
        assert!(g.capacity() <= MIN_SHRINK_CAPACITY, "{}", g.capacity());
        // Still judging: stale messages refused, fresh ones accepted once.
        assert!(matches!(
            g.check(&hash(5), 10_000, 20_000),
            Err(ReplayError::TooOld { .. })
        ));
        assert_eq!(g.check(&hash(7), 20_000, 20_000), Ok(()));
        assert_eq!(
            g.check(&hash(7), 20_000, 20_000),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn zero_capacity_accepts_only_newer_messages() {
        let mut g = ReplayGuard::new(cfg(0));
        g.check(&[1; 32], 1000, 1000).unwrap();
        assert!(g.check(&[1; 32], 1000, 1000).is_err());
        assert!(g.is_empty());
    }
}
