//! Property tests of restart decisions over arbitrary sequences of exits.

use plexus_sched::{
    Exit, ExitEvent, RestartDecision, RestartLimits, RestartPolicy, RestartTracker, StopReason,
};
use proptest::prelude::*;

fn policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Never),
        Just(RestartPolicy::OnFailure),
        Just(RestartPolicy::Always),
    ]
}

fn exit() -> impl Strategy<Value = Exit> {
    prop_oneof![
        (0i32..3).prop_map(Exit::Code),
        prop_oneof![Just(9), Just(15), Just(2)].prop_map(Exit::Signal),
    ]
}

/// A run: how it ended, whether a user killed it, how long it ran, and the pause before it
/// (after the restart delay) in milliseconds.
fn runs() -> impl Strategy<Value = Vec<(Exit, bool, u64, u64)>> {
    proptest::collection::vec(
        (
            exit(),
            proptest::bool::weighted(0.1),
            prop_oneof![0u64..2_000, 0u64..30_000],
            0u64..20_000,
        ),
        1..40,
    )
}

fn limits() -> impl Strategy<Value = RestartLimits> {
    (
        1u64..1_000,
        1u64..60_000,
        0u64..20_000,
        0usize..8,
        1u64..120_000,
    )
        .prop_map(|(first, max, stable, restarts, window)| RestartLimits {
            first_delay_ms: first,
            max_delay_ms: max.max(first),
            stable_after_ms: stable,
            max_restarts: restarts,
            window_ms: window,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decisions_follow_policy_backoff_and_the_crash_loop_limit(
        policy in policy(),
        limits in prop_oneof![Just(RestartLimits::DEFAULT), limits()],
        runs in runs(),
    ) {
        let mut tracker = RestartTracker::with_limits(policy, limits);
        let mut now = 1_000_000u64;
        let mut restarts_at: Vec<u64> = Vec::new();
        let mut previous_delay: Option<u64> = None;
        for (exit, killed_by_user, ran_for, pause) in runs {
            let started_ms = now;
            now += ran_for;
            let event = ExitEvent { exit, killed_by_user, started_ms };
            let decision = tracker.on_exit(&event, now);
            let recent = restarts_at.iter().filter(|&&t| t + limits.window_ms >= now).count();
            match decision {
                RestartDecision::Restart { delay_ms, attempt } => {
                    prop_assert!(!killed_by_user);
                    prop_assert_ne!(policy, RestartPolicy::Never);
                    if policy == RestartPolicy::OnFailure {
                        prop_assert!(exit.is_failure());
                    }
                    prop_assert!(delay_ms <= limits.max_delay_ms);
                    prop_assert!(delay_ms >= limits.first_delay_ms.min(limits.max_delay_ms));
                    // A stable run starts the backoff over; a short run after a restart
                    // waits at least as long as the previous delay.
                    if ran_for >= limits.stable_after_ms {
                        prop_assert_eq!(delay_ms, limits.first_delay_ms);
                    } else if let Some(previous) = previous_delay {
                        prop_assert!(delay_ms >= previous);
                    }
                    prop_assert!(recent < limits.max_restarts, "over the limit in the window");
                    restarts_at.push(now);
                    prop_assert_eq!(attempt as usize, restarts_at.len());
                    previous_delay = Some(delay_ms);
                    now += delay_ms;
                }
                RestartDecision::Stop(reason) => {
                    let want = if killed_by_user {
                        StopReason::KilledByUser
                    } else if policy == RestartPolicy::Never {
                        StopReason::PolicyNever
                    } else if policy == RestartPolicy::OnFailure && !exit.is_failure() {
                        StopReason::Succeeded
                    } else {
                        StopReason::CrashLooping { restarts: recent, window_ms: limits.window_ms }
                    };
                    prop_assert_eq!(reason, want);
                    if matches!(reason, StopReason::CrashLooping { .. }) {
                        prop_assert!(recent >= limits.max_restarts);
                    }
                    previous_delay = None;
                }
            }
            prop_assert_eq!(tracker.restarts() as usize, restarts_at.len());
            now += pause;
        }
    }
}

#[test]
fn default_numbers_are_the_documented_ones() {
    assert_eq!(
        RestartLimits::default(),
        RestartLimits {
            first_delay_ms: 100,
            max_delay_ms: 30_000,
            stable_after_ms: 10_000,
            max_restarts: 5,
            window_ms: 60_000,
        }
    );
}

#[test]
fn huge_limits_do_not_overflow() {
    let limits = RestartLimits {
        first_delay_ms: u64::MAX / 2,
        max_delay_ms: u64::MAX,
        stable_after_ms: u64::MAX,
        max_restarts: usize::MAX,
        window_ms: u64::MAX,
    };
    let mut tracker = RestartTracker::with_limits(RestartPolicy::Always, limits);
    let failed = ExitEvent {
        exit: Exit::Code(1),
        killed_by_user: false,
        started_ms: u64::MAX,
    };
    let delays: Vec<_> = (0..4)
        .map(|_| match tracker.on_exit(&failed, 0) {
            RestartDecision::Restart { delay_ms, .. } => delay_ms,
            stop => panic!("{stop:?}"),
        })
        .collect();
    assert_eq!(delays, [u64::MAX / 2, u64::MAX - 1, u64::MAX, u64::MAX]);
}
