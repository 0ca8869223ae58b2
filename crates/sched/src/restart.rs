//! Restart decisions: whether a process that ended starts again, and after what delay.
//!
//! A [`RestartTracker`] per process remembers its recent restarts; [`RestartTracker::on_exit`]
//! takes the exit and the time and returns a [`RestartDecision`]. The rules:
//!
//! - a process killed by a user (`plx kill`) never restarts;
//! - `never` never restarts; `on-failure` restarts after a non-zero exit code or a signal;
//!   `always` restarts after any exit;
//! - the delay doubles from [`RestartLimits::first_delay_ms`] (100 ms) up to
//!   [`RestartLimits::max_delay_ms`] (30 s), and starts over after a run that lasted at least
//!   [`RestartLimits::stable_after_ms`] (10 s);
//! - a process that would restart more than [`RestartLimits::max_restarts`] (5) times within
//!   [`RestartLimits::window_ms`] (60 s) is given up: it is crash-looping.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// When a process that ended is started again (`--restart`). Process records store it (as
/// its variant's index: keep the order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    Never,
    /// After a non-zero exit code or a death by signal, or when its node is lost.
    OnFailure,
    /// After any exit, or when its node is lost.
    Always,
}

impl RestartPolicy {
    /// The CLI spelling: `never`, `on-failure`, `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--restart` value that is none of the policies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown restart policy {given:?}; use never, on-failure or always")]
pub struct UnknownRestartPolicy {
    /// What was given.
    pub given: String,
}

impl FromStr for RestartPolicy {
    type Err = UnknownRestartPolicy;

    fn from_str(text: &str) -> Result<RestartPolicy, UnknownRestartPolicy> {
        match text {
            "never" => Ok(RestartPolicy::Never),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "always" => Ok(RestartPolicy::Always),
            _ => Err(UnknownRestartPolicy {
                given: text.to_string(),
            }),
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl Exit {
    /// Whether this counts as a failure for `on-failure`.
    pub fn is_failure(self) -> bool {
        self != Exit::Code(0)
    }
}

/// One end of a process run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitEvent {
    /// How it ended.
    pub exit: Exit,
    /// Whether a user's kill ended it (then it is not restarted whatever the policy).
    pub killed_by_user: bool,
    /// When this run started, in milliseconds on the same clock as `now_ms`.
    pub started_ms: u64,
}

/// The numbers behind backoff and the crash-loop limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RestartLimits {
    /// The delay before the first restart.
    pub first_delay_ms: u64,
    /// The longest delay.
    pub max_delay_ms: u64,
    /// A run at least this long resets the delay to `first_delay_ms`.
    pub stable_after_ms: u64,
    /// The most restarts allowed within `window_ms`; one more is a crash loop.
    pub max_restarts: usize,
    /// The window for `max_restarts`.
    pub window_ms: u64,
}

impl RestartLimits {
    /// 100 ms doubling to 30 s, reset after 10 s up; more than 5 restarts in 60 s give up.
    pub const DEFAULT: RestartLimits = RestartLimits {
        first_delay_ms: 100,
        max_delay_ms: 30_000,
        stable_after_ms: 10_000,
        max_restarts: 5,
        window_ms: 60_000,
    };
}

impl Default for RestartLimits {
    fn default() -> RestartLimits {
        RestartLimits::DEFAULT
    }
}

/// Why a process stays stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// Its policy is `never`.
    PolicyNever,
    /// It exited with status 0 under `on-failure`.
    Succeeded,
    /// A user killed it.
    KilledByUser,
    /// It restarted `restarts` times within the window and ended again: given up.
    CrashLooping {
        /// Restarts within the window.
        restarts: usize,
        /// The window.
        window_ms: u64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::PolicyNever => f.write_str("restart policy is never"),
            StopReason::Succeeded => f.write_str("exited successfully (restart on-failure)"),
            StopReason::KilledByUser => f.write_str("killed by a user"),
            StopReason::CrashLooping {
                restarts,
                window_ms,
            } => write!(
                f,
                "crash-looping: restarted {restarts} times within {} s",
                window_ms / 1000
            ),
        }
    }
}

/// What to do about a process that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartDecision {
    /// Start it again on its node after `delay_ms`.
    Restart {
        /// How long to wait.
        delay_ms: u64,
        /// This restart's number over the process's life (1 for the first).
        attempt: u32,
    },
    /// Leave it stopped.
    Stop(StopReason),
}

/// The restart state of one process: its policy, limits, and recent restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartTracker {
    policy: RestartPolicy,
    limits: RestartLimits,
    /// Times of the restarts within the window, oldest first (at most `max_restarts`).
    recent: VecDeque<u64>,
    /// Consecutive short runs: the exponent of the next delay.
    backoff_step: u32,
    total_restarts: u32,
}

impl RestartTracker {
    /// A tracker with [`RestartLimits::DEFAULT`].
    pub fn new(policy: RestartPolicy) -> RestartTracker {
        RestartTracker::with_limits(policy, RestartLimits::DEFAULT)
    }

    /// A tracker with other limits (tests, or a configured node).
    pub fn with_limits(policy: RestartPolicy, limits: RestartLimits) -> RestartTracker {
        RestartTracker {
            policy,
            limits,
            recent: VecDeque::new(),
            backoff_step: 0,
            total_restarts: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Restarts decided over the process's life (what `ps` shows).
    pub fn restarts(&self) -> u32 {
        self.total_restarts
    }

    /// Decides about a run that ended at `now_ms`, and records a restart if it decides one.
    pub fn on_exit(&mut self, event: &ExitEvent, now_ms: u64) -> RestartDecision {
        if event.killed_by_user {
            return RestartDecision::Stop(StopReason::KilledByUser);
        }
        match self.policy {
            RestartPolicy::Never => return RestartDecision::Stop(StopReason::PolicyNever),
            RestartPolicy::OnFailure if !event.exit.is_failure() => {
                return RestartDecision::Stop(StopReason::Succeeded)
            }
            RestartPolicy::OnFailure | RestartPolicy::Always => {}
        }
        let window_start = now_ms.saturating_sub(self.limits.window_ms);
        while self.recent.front().is_some_and(|&t| t < window_start) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limits.max_restarts {
            return RestartDecision::Stop(StopReason::CrashLooping {
                restarts: self.recent.len(),
                window_ms: self.limits.window_ms,
            });
        }
        if now_ms.saturating_sub(event.started_ms) >= self.limits.stable_after_ms {
            self.backoff_step = 0;
        }
        let delay_ms = self
            .limits
            .first_delay_ms
            .checked_shl(self.backoff_step)
            .filter(|d| d >> self.backoff_step == self.limits.first_delay_ms)
            .unwrap_or(u64::MAX)
            .min(self.limits.max_delay_ms);
        // Past 63 the shift overflows anyway; stopping there keeps a zero first delay zero.
        if delay_ms < self.limits.max_delay_ms && self.backoff_step < 63 {
            self.backoff_step += 1;
        }
        self.recent.push_back(now_ms);
        self.total_restarts = self.total_restarts.saturating_add(1);
        RestartDecision::Restart {
            delay_ms,
            attempt: self.total_restarts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_at(started_ms: u64) -> ExitEvent {
        ExitEvent {
            exit: Exit::Code(1),
            killed_by_user: false,
            started_ms,
        }
    }

    #[test]
    fn policies_parse_from_their_cli_spelling() {
        for policy in [
            RestartPolicy::Never,
            RestartPolicy::OnFailure,
            RestartPolicy::Always,
        ] {
            assert_eq!(policy.to_string().parse(), Ok(policy));
        }
        assert_eq!(
            "sometimes"
                .parse::<RestartPolicy>()
                .map_err(|e| e.to_string()),
            Err("unknown restart policy \"sometimes\"; use never, on-failure or always".into())
        );
    }

    #[test]
    fn the_delay_doubles_then_resets_after_a_stable_run() {
        let limits = RestartLimits {
            max_restarts: 100,
            ..RestartLimits::DEFAULT
        };
        let mut tracker = RestartTracker::with_limits(RestartPolicy::Always, limits);
        let mut now = 1_000_000;
        let mut delays = Vec::new();
        for _ in 0..11 {
            match tracker.on_exit(&failed_at(now - 10), now) {
                RestartDecision::Restart { delay_ms, .. } => delays.push(delay_ms),
                stop => panic!("{stop:?}"),
            }
            now += 10_000;
        }
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        let decision = tracker.on_exit(&failed_at(now - 10_000), now);
        assert_eq!(
            decision,
            RestartDecision::Restart {
                delay_ms: 100,
                attempt: 12
            }
        );
        assert_eq!(tracker.restarts(), 12);
    }

    #[test]
    fn gives_up_after_the_crash_loop_limit() {
        let mut tracker = RestartTracker::new(RestartPolicy::OnFailure);
        for attempt in 1..=5 {
            assert!(matches!(
                tracker.on_exit(&failed_at(attempt * 1000), attempt * 1000 + 5),
                RestartDecision::Restart { attempt: a, .. } if u64::from(a) == attempt
            ));
        }
        assert_eq!(
            tracker.on_exit(&failed_at(6000), 6005),
            RestartDecision::Stop(StopReason::CrashLooping {
                restarts: 5,
                window_ms: 60_000
            })
        );
        // Once the first restarts leave the window, restarting is allowed again.
        assert!(matches!(
            tracker.on_exit(&failed_at(62_000), 62_005),
            RestartDecision::Restart { attempt: 6, .. }
        ));
    }

    #[test]
    fn user_kills_and_successes_do_not_restart() {
        let mut always = RestartTracker::new(RestartPolicy::Always);
        let killed = ExitEvent {
            exit: Exit::Signal(15),
            killed_by_user: true,
            started_ms: 0,
        };
        assert_eq!(
            always.on_exit(&killed, 5),
            RestartDecision::Stop(StopReason::KilledByUser)
        );
        let success = ExitEvent {
            exit: Exit::Code(0),
            killed_by_user: false,
            started_ms: 0,
        };
        assert!(matches!(
            always.on_exit(&success, 5),
            RestartDecision::Restart { .. }
        ));
        let mut on_failure = RestartTracker::new(RestartPolicy::OnFailure);
        assert_eq!(
            on_failure.on_exit(&success, 5),
            RestartDecision::Stop(StopReason::Succeeded)
        );
        let signalled = ExitEvent {
            exit: Exit::Signal(9),
            ..success
        };
        assert!(matches!(
            on_failure.on_exit(&signalled, 5),
            RestartDecision::Restart { .. }
        ));
        let mut never = RestartTracker::new(RestartPolicy::Never);
        assert_eq!(
            never.on_exit(&failed_at(0), 5),
            RestartDecision::Stop(StopReason::PolicyNever)
        );
    }
}
