//! Keeping an accept loop going under load: room for new connections made by dropping the
//! oldest ones that have not authenticated yet ([`Admission`]), and accept errors (out of
//! file descriptors and the like) backed off and logged once per burst ([`AcceptErrors`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// How many connections an [`Admission`] lets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections open at once (waiting or authenticated).
    pub max_connections: usize,
    /// Connections waiting to authenticate from one source at once.
    pub max_waiting_per_source: usize,
}

/// Counts connections from their acceptance on, keeping the ones that have not
/// authenticated yet in order of arrival. When a new connection would pass a limit, the
/// oldest waiting connection (from the same source, for the per-source limit) is evicted
/// to make room for it: a flood of connections that never authenticate cannot keep a real
/// peer out, it only shortens the time each of them gets. When every connection has
/// authenticated, a new one is refused instead.
///
/// `S` tells sources apart (an IP address; `()` when there is only one kind).
pub struct Admission<S> {
    limits: AdmissionLimits,
    state: Arc<Mutex<State<S>>>,
}

struct State<S> {
    next: u64,
    authenticated: usize,
    /// Waiting connections by arrival; dropping the sender evicts the connection.
    waiting: BTreeMap<u64, (S, oneshot::Sender<()>)>,
}

impl<S> State<S> {
    fn open(&self) -> usize {
        self.authenticated + self.waiting.len()
    }
}

fn lock<S>(state: &Mutex<State<S>>) -> MutexGuard<'_, State<S>> {
    match state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl<S: PartialEq> Admission<S> {
    /// An admission with these limits.
    pub fn new(limits: AdmissionLimits) -> Admission<S> {
        Admission {
            limits,
            state: Arc::new(Mutex::new(State {
                next: 0,
                authenticated: 0,
                waiting: BTreeMap::new(),
            })),
        }
    }

    /// Lets a new connection from `source` in, evicting the oldest waiting one if a limit is
    /// reached; `None` when it is reached by authenticated connections only.
    pub fn admit(&self, source: S) -> Option<Ticket<S>> {
        let mut st = lock(&self.state);
        let from_source = st.waiting.values().filter(|(s, _)| *s == source).count();
        let victim = if from_source >= self.limits.max_waiting_per_source {
            st.waiting
                .iter()
                .find(|(_, (s, _))| *s == source)
                .map(|(id, _)| *id)
        } else if st.open() >= self.limits.max_connections {
            st.waiting.keys().next().copied()
        } else {
            None
        };
        match victim {
            Some(id) => {
                st.waiting.remove(&id);
            }
            None if st.open() >= self.limits.max_connections => return None,
            None => {}
        }
        let id = st.next;
        st.next += 1;
        let (evict, evicted) = oneshot::channel();
        st.waiting.insert(id, (source, evict));
        Some(Ticket {
            id,
            state: self.state.clone(),
            evicted,
            authenticated: false,
        })
    }

    /// Connections open now (waiting or authenticated).
    pub fn open(&self) -> usize {
        lock(&self.state).open()
    }
}

/// A connection's place in an [`Admission`]; dropping it frees the place.
pub struct Ticket<S> {
    id: u64,
    state: Arc<Mutex<State<S>>>,
    evicted: oneshot::Receiver<()>,
    authenticated: bool,
}

impl<S> Ticket<S> {
    /// Completes when the connection is evicted to make room for a newer one. Only for a
    /// connection still waiting: after [`Ticket::authenticated`] it completes at once.
    pub async fn evicted(&mut self) {
        let _ = (&mut self.evicted).await;
    }

    /// Marks the connection authenticated: it keeps its place and is never evicted. Returns
    /// false if it was evicted already.
    pub fn authenticated(&mut self) -> bool {
        let mut st = lock(&self.state);
        if st.waiting.remove(&self.id).is_none() {
            return false;
        }
        st.authenticated += 1;
        self.authenticated = true;
        true
    }
}

impl<S> Drop for Ticket<S> {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if self.authenticated {
            st.authenticated = st.authenticated.saturating_sub(1);
        } else {
            st.waiting.remove(&self.id);
        }
    }
}

/// The shortest and longest pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Failed accepts in a row. Running out of file descriptors makes every accept fail until
/// one is freed: the loop pauses longer after each failure (10 ms doubling up to 1 s), and
/// such a burst is logged twice, when it starts and when it ends, instead of once per failure.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    in_a_row: u32,
}

/// What to do after a failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct AfterFailure {
    /// Whether it starts a burst (log it; the others are counted).
    pub first: bool,
    /// How long to pause before accepting again.
    pub pause: Duration,
}

impl AcceptErrors {
    /// Records a failed accept.
    pub fn failed(&mut self) -> AfterFailure {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let doublings = (self.in_a_row - 1).min(16);
        AfterFailure {
            first: self.in_a_row == 1,
            pause: FIRST_PAUSE
                .saturating_mul(1 << doublings)
                .min(LONGEST_PAUSE),
        }
    }

    /// Records a successful accept; returns how many failed in a row before it, if any (log
    /// that the burst ended).
    pub fn succeeded(&mut self) -> Option<u32> {
        let failed = std::mem::take(&mut self.in_a_row);
        (failed > 0).then_some(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_waiting_per_source: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_connections,
            max_waiting_per_source,
        }
    }

    #[tokio::test]
    async fn the_oldest_waiting_connection_makes_room() {
        let admission = Admission::new(limits(3, 10));
        let mut a = admission.admit(1).unwrap();
        let mut b = admission.admit(2).unwrap();
        let mut c = admission.admit(3).unwrap();
        assert!(a.authenticated());
        let _d = admission.admit(4).unwrap();
        // b was the oldest still waiting; a authenticated and keeps its place.
        b.evicted().await;
        assert!(!b.authenticated());
        assert_eq!(admission.open(), 3);
        drop(b);
        assert_eq!(admission.open(), 3);
        assert!(c.authenticated());
        drop(a);
        assert_eq!(admission.open(), 2);
    }

    #[test]
    fn when_all_have_authenticated_new_connections_are_refused() {
        let admission = Admission::new(limits(2, 10));
        let mut tickets: Vec<_> = (0..2).map(|_| admission.admit(()).unwrap()).collect();
        for t in &mut tickets {
            assert!(t.authenticated());
        }
        assert!(admission.admit(()).is_none());
        tickets.pop();
        assert!(admission.admit(()).is_some());
    }

    #[tokio::test]
    async fn one_source_only_evicts_its_own() {
        let admission = Admission::new(limits(100, 2));
        let mut other = admission.admit("other").unwrap();
        let mut first = admission.admit("flood").unwrap();
        let _second = admission.admit("flood").unwrap();
        let _third = admission.admit("flood").unwrap();
        first.evicted().await;
        assert_eq!(admission.open(), 3);
        assert!(other.authenticated());
    }

    #[test]
    fn a_burst_of_accept_errors_is_logged_once_and_backed_off() {
        let mut errors = AcceptErrors::default();
        assert_eq!(errors.succeeded(), None);
        let burst: Vec<AfterFailure> = (0..20).map(|_| errors.failed()).collect();
        assert!(burst[0].first);
        assert!(burst[1..].iter().all(|f| !f.first));
        assert_eq!(burst[0].pause, FIRST_PAUSE);
        assert_eq!(burst[1].pause, FIRST_PAUSE * 2);
        assert!(burst.windows(2).all(|w| w[0].pause <= w[1].pause));
        assert_eq!(burst[19].pause, LONGEST_PAUSE);
        assert_eq!(errors.succeeded(), Some(20));
        assert_eq!(errors.succeeded(), None);
        assert!(errors.failed().first);
    }
}
