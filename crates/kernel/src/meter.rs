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
    /// An account that every charge also goes to (a client connection's, for the messages
    /// it sends).
    parent: Option<Arc<Account>>,
}

impl Account {
    /// Charges `bytes` here and in every parent account, or nowhere; on failure, the
    /// account that was full and what it had used.
    fn charge(&self, bytes: u64) -> Result<(), (&Account, u64)> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map_err(|used| (self, used))?;
        if let Some(parent) = &self.parent {
            if let Err(full) = parent.charge(bytes) {
                // Undone here only: the parents have not been charged.
                self.used.fetch_sub(bytes, Ordering::Relaxed);
                return Err(full);
            }
        }
        Ok(())
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
        if let Some(parent) = &self.parent {
            parent.release(bytes);
        }
    }
}

impl Meter {
    /// A fresh account of `limit` bytes, not cancelled.
    pub fn new(limit: u64) -> Meter {
        Meter {
            account: Arc::new(Account {
                limit,
                used: AtomicU64::new(0),
                parent: None,
            }),
            cancelled: Arc::default(),
        }
    }

    /// A fresh account of `limit` bytes whose charges also go to this meter's account (and
    /// fail when it is full): a root message's budget within its connection's.
    pub fn within(&self, limit: u64) -> Meter {
        Meter {
            account: Arc::new(Account {
                limit,
                used: AtomicU64::new(0),
                parent: Some(self.account.clone()),
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
        self.account.charge(bytes).map_err(|(full, used)| {
            let whose = if std::ptr::eq(full, &*self.account) {
                "the message's evaluation"
            } else {
                "the calls in flight on this connection, with their unread replies,"
            };
            Error::new(
                code::LIMIT,
                format!(
                    "{whose} would use more than the memory budget of {} (already used {}, \
                     asked for {})",
                    mib(full.limit),
                    mib(used),
                    mib(bytes)
                ),
            )
            .with("budget", limit_unit(full.limit))
        })
    }

    /// Charges `bytes` that are already there and must be kept (a reply waiting to be read),
    /// whatever the budget.
    pub fn force(&self, bytes: u64) {
        let mut account = Some(&*self.account);
        while let Some(a) = account {
            let _ = a
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    Some(used.saturating_add(bytes))
                });
            account = a.parent.as_deref();
        }
    }

    /// Gives back `bytes` charged earlier for units that are gone (a loop's turn, or all of
    /// a message's charges once it has been answered).
    pub fn release(&self, bytes: u64) {
        self.account.release(bytes);
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

    #[test]
    fn a_charge_goes_to_the_parent_account_too_or_nowhere() {
        let conn = Meter::new(100);
        let a = conn.within(80);
        let b = conn.within(80);
        a.charge(60).unwrap();
        assert_eq!(conn.used(), 60);
        let e = b.charge(50).unwrap_err();
        assert_eq!(e.code(), code::LIMIT);
        assert!(e.message().contains("connection"), "{e}");
        assert_eq!((b.used(), conn.used()), (0, 60));
        assert!(a.charge(30).unwrap_err().message().contains("message"));
        a.release(a.used());
        assert_eq!(conn.used(), 0);
        conn.force(500);
        assert_eq!(conn.used(), 500);
    }
}
