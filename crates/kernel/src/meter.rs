//! The memory budget and the cancellation of a root message's evaluation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::code;
use crate::Error;

/// The memory budget of one root message when the node sets none: 256 MiB.
pub const DEFAULT_EVAL_MEMORY: u64 = 256 << 20;

/// What a call may still spend, and whether it must stop.
///
/// One root message has one memory account, shared by every call it makes (nested calls,
/// loops, tasks it starts): the bytes of the units built while evaluating it
/// ([`plexus_units::Unit::footprint`]) are charged to it, and a charge beyond the budget is a
/// `limit` error. Each task has its own cancellation flag, raised when the task is killed or
/// cancelled: long loops in services check it ([`Meter::check`]) because killing a task only
/// stops it at its next await.
///
/// Cheap to clone and `'static`, so work moved to the blocking pool takes it along.
#[derive(Clone, Debug)]
pub struct Meter {
    account: Arc<Account>,
    cancelled: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Account {
    limit: u64,
    used: AtomicU64,
}

impl Meter {
    /// A fresh account of `limit` bytes, not cancelled.
    pub fn new(limit: u64) -> Meter {
        Meter {
            account: Arc::new(Account {
                limit,
                used: AtomicU64::new(0),
            }),
            cancelled: Arc::default(),
        }
    }

    /// The same account with a cancellation flag of its own (for a task started by the call).
    pub(crate) fn for_task(&self) -> Meter {
        Meter {
            account: self.account.clone(),
            cancelled: Arc::default(),
        }
    }

    /// Charges `bytes` about to be built, or fails with `limit` (charging nothing) if the
    /// budget would be exceeded, or with `cancelled` if the task was stopped.
    pub fn charge(&self, bytes: u64) -> Result<(), Error> {
        self.check()?;
        let limit = self.account.limit;
        self.account
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|used| {
                Error::new(
                    code::LIMIT,
                    format!(
                        "the message's evaluation would use more than its memory budget of {} \
                         (already used {}, asked for {})",
                        mib(limit),
                        mib(used),
                        mib(bytes)
                    ),
                )
                .with("budget", limit_unit(limit))
            })
    }

    /// Gives back `bytes` charged earlier for units that are gone (a loop's turn).
    pub fn release(&self, bytes: u64) {
        let _ = self
            .account
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.account.used.load(Ordering::Relaxed)
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.account.limit
    }

    /// A `cancelled` error once the task was killed or cancelled.
    pub fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() {
            return Err(Error::new(code::CANCELLED, "the call was cancelled"));
        }
        Ok(())
    }

    /// Whether the task was killed or cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Asks the work metered by this meter's task to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

fn limit_unit(bytes: u64) -> plexus_units::Unit {
    plexus_units::Unit::int(i64::try_from(bytes).unwrap_or(i64::MAX))
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_beyond_the_budget_is_a_limit_error_that_charges_nothing() {
        let m = Meter::new(100);
        m.charge(60).unwrap();
        let e = m.charge(41).unwrap_err();
        assert_eq!(e.code(), code::LIMIT);
        assert_eq!(m.used(), 60);
        m.charge(40).unwrap();
        assert_eq!(m.charge(u64::MAX).unwrap_err().code(), code::LIMIT);
        m.release(30);
        assert_eq!(m.used(), 70);
    }

    #[test]
    fn tasks_share_the_account_but_not_the_cancellation() {
        let root = Meter::new(100);
        let child = root.for_task();
        child.charge(80).unwrap();
        assert!(root.charge(30).is_err());
        child.cancel();
        assert_eq!(child.check().unwrap_err().code(), code::CANCELLED);
        assert!(root.check().is_ok());
    }
}
