//! Figures of each service's calls on this node, for the node's metrics: how many reached the
//! service, how many of those failed, and how long they took. A call adds to a few relaxed
//! atomic counters of its service's entry, beside the mailbox permit it already takes there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus' `le`); a call
/// slower than the last is counted only in the total.
pub const LATENCY_BOUNDS: [f64; 10] =
    [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// The running figures of one service.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    calls: AtomicU64,
    errors: AtomicU64,
    nanos: AtomicU64,
    /// Calls whose time fell in each bucket (not cumulative).
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
}

/// What one service's calls on this node came to since the node started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFigures {
    /// Calls that reached the service.
    pub calls: u64,
    /// Those that ended in an error.
    pub errors: u64,
    /// Their total time, in seconds.
    pub seconds: f64,
    /// Calls that took at most each of [`LATENCY_BOUNDS`] (cumulative, as Prometheus counts).
    pub within: [u64; LATENCY_BOUNDS.len()],
}

impl CallStats {
    /// Counts a call that took `took` and failed or not.
    pub(crate) fn record(&self, took: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|bound| secs <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The figures now.
    pub(crate) fn figures(&self) -> CallFigures {
        let mut within = [0; LATENCY_BOUNDS.len()];
        let mut so_far = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            so_far += bucket.load(Ordering::Relaxed);
            within[i] = so_far;
        }
        CallFigures {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
            within,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_into_cumulative_buckets() {
        let stats = CallStats::default();
        stats.record(Duration::from_micros(50), false);
        stats.record(Duration::from_millis(3), true);
        stats.record(Duration::from_secs(9), false);
        let f = stats.figures();
        assert_eq!((f.calls, f.errors), (3, 1));
        assert_eq!(f.within, [1, 1, 1, 2, 2, 2, 2, 2, 2, 2]);
        assert!((f.seconds - 9.00305).abs() < 1e-9, "{}", f.seconds);
    }
}
