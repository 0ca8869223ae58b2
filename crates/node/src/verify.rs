//! Signature checks of client requests, batched across connections.
//!
//! Verifying `n` signatures together ([`verify_batch`]) costs less than verifying them one by
//! one: for 64, about half as much per message when all authors differ and about a quarter
//! when one author signed them all (`cargo bench -p plexus-identity --bench sign`). Calls that
//! arrive together on one connection (a pipelining client) are checked together
//! ([`Verifier::verify_all`]).
//! Requests from different connections that arrive while signatures are being checked are
//! verified together, without a timer: a connection that finds fewer than
//! [`Verifier::max_active`] verifications running verifies its own request, together with
//! whatever was waiting; one that finds them all busy queues its request, and the next verifier
//! to finish takes the whole queue as its next batch. A request that would be verified alone
//! first yields, so that the other connections ready at that moment queue theirs behind it, and
//! yields again while each round brings more; where the first round gathers nothing (one
//! client), lone requests mostly skip the yield (backing off exponentially), so they are not
//! delayed.
//! No extra task or thread is involved; the requests' own connection tasks do the work.
//!
//! A batch checks what [`SignedMessage::verify`] checks, with the one documented difference
//! of batch verification (`docs/identity.md`, "Batch verification"): a message whose author
//! deliberately crafted a small-order component into their key or nonce may pass in a batch.
//! It never accepts a forgery.

use std::borrow::Borrow;
use std::sync::{Arc, Mutex};

use plexus_identity::{verify_batch, SignedMessage, VerifyError, BATCH_CHUNK};
use tokio::sync::oneshot;

/// Most batches one verifier checks for others before going back to its own request; what is
/// still queued then is handed to a new task.
const MAX_ROUNDS: usize = 4;

/// A request waiting for its signature check.
struct Waiting {
    msg: SignedMessage,
    reply: oneshot::Sender<Result<SignedMessage, VerifyError>>,
}

impl Borrow<SignedMessage> for Waiting {
    fn borrow(&self) -> &SignedMessage {
        &self.msg
    }
}

/// What a request does on arrival: wait for a verifier, or verify (with what was queued).
// A short-lived local; boxing the message would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Turn {
    Wait(oneshot::Receiver<Result<SignedMessage, VerifyError>>),
    Verify(SignedMessage, Vec<Waiting>),
    /// Verify, after giving others a chance to queue.
    Gather(SignedMessage),
}

/// What a group of requests does on arrival: wait for a busy verifier, or verify (with what
/// was queued).
enum GroupTurn {
    Wait(Vec<oneshot::Receiver<Result<SignedMessage, VerifyError>>>),
    Verify(Vec<Waiting>),
}

#[derive(Default)]
struct State {
    /// Requests waiting for a verifier.
    queue: Vec<Waiting>,
    /// Verifications running now.
    active: usize,
    /// Requests to verify without first yielding (see [`Verifier::verify`]).
    skip: u32,
    /// Yields in a row that gathered nothing.
    misses: u32,
    /// The size of each batch verified, for tests.
    #[cfg(test)]
    batches: Vec<usize>,
}

/// Most rounds a lone request lets other connections run to gather requests for its batch
/// (each ends the gathering if it brought none).
const MAX_GATHER_ROUNDS: usize = 16;

/// After this many yields in a row that gathered no other request, a verifier yields before
/// one lone request in 2^this (64).
const MAX_GATHER_BACKOFF: u32 = 6;

/// Checks the signatures of requests from all client connections of a node.
pub(crate) struct Verifier {
    state: Mutex<State>,
    max_active: usize,
}

/// Why a request's signature was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The signature is bad.
    Invalid(VerifyError),
    /// The verifier went away before answering (it cannot, short of a bug).
    Lost,
}

impl Verifier {
    /// A verifier running at most `max_active` verifications at once (at least 1): the number
    /// of threads that should verify in parallel, usually the runtime's worker threads.
    pub(crate) fn new(max_active: usize) -> Verifier {
        Verifier {
            state: Mutex::new(State::default()),
            max_active: max_active.max(1),
        }
    }

    /// Checks `msg`'s signature (as [`SignedMessage::verify`], possibly in a batch with other
    /// connections' requests) and gives it back when it is good.
    pub(crate) async fn verify(
        self: &Arc<Self>,
        msg: SignedMessage,
    ) -> Result<SignedMessage, Refusal> {
        let turn = match self.state.lock() {
            Ok(mut state) if state.active >= self.max_active => {
                let (reply, rx) = oneshot::channel();
                state.queue.push(Waiting { msg, reply });
                Turn::Wait(rx)
            }
            Ok(mut state) => {
                state.active += 1;
                let queued = std::mem::take(&mut state.queue);
                if !queued.is_empty() {
                    Turn::Verify(msg, queued)
                } else if state.skip > 0 {
                    state.skip -= 1;
                    Turn::Verify(msg, queued)
                } else {
                    Turn::Gather(msg)
                }
            }
            // Poisoned (a panic while holding the lock, which nothing here can do).
            Err(_) => return single(msg),
        };
        let (msg, queued) = match turn {
            Turn::Wait(rx) => return waited(rx).await,
            Turn::Verify(msg, queued) => (msg, queued),
            Turn::Gather(msg) => {
                // Alone so far: let the connections that are ready run, so that requests
                // arriving together (many clients answered by one commit, say) queue behind
                // this one and share its batch; again while each round brings more (clients
                // answering a batch's replies send their next requests a few µs apart). When
                // the first round gathers nothing, the next lone requests skip it, more of
                // them after each such miss.
                let mut gathered = 0;
                for _ in 0..MAX_GATHER_ROUNDS {
                    tokio::task::yield_now().await;
                    let now = self.state.lock().map_or(0, |s| s.queue.len());
                    if now == gathered || now + 1 >= BATCH_CHUNK {
                        break;
                    }
                    gathered = now;
                }
                match self.state.lock() {
                    Ok(mut state) => {
                        let queued = std::mem::take(&mut state.queue);
                        if queued.is_empty() {
                            state.misses = (state.misses + 1).min(MAX_GATHER_BACKOFF);
                            state.skip = (1u32 << state.misses) - 1;
                        } else {
                            state.misses = 0;
                        }
                        (msg, queued)
                    }
                    Err(_) => (msg, Vec::new()),
                }
            }
        };
        self.verify_with(vec![msg], queued)
            .pop()
            .unwrap_or(Err(Refusal::Lost))
    }

    /// Checks the signatures of several requests that arrived together (one read of a
    /// pipelining connection), as one batch with whatever was queued, and gives each back when
    /// good, in order. While all verifiers are busy, they queue and join the next batch.
    pub(crate) async fn verify_all(
        self: &Arc<Self>,
        mut msgs: Vec<SignedMessage>,
    ) -> Vec<Result<SignedMessage, Refusal>> {
        if msgs.len() <= 1 {
            return match msgs.pop() {
                Some(msg) => vec![self.verify(msg).await],
                None => Vec::new(),
            };
        }
        let turn = match self.state.lock() {
            Ok(mut state) if state.active >= self.max_active => {
                let mut waits = Vec::with_capacity(msgs.len());
                for msg in msgs.drain(..) {
                    let (reply, rx) = oneshot::channel();
                    state.queue.push(Waiting { msg, reply });
                    waits.push(rx);
                }
                GroupTurn::Wait(waits)
            }
            Ok(mut state) => {
                state.active += 1;
                GroupTurn::Verify(std::mem::take(&mut state.queue))
            }
            Err(_) => return msgs.into_iter().map(single).collect(),
        };
        match turn {
            GroupTurn::Wait(waits) => {
                let mut out = Vec::with_capacity(waits.len());
                for rx in waits {
                    out.push(waited(rx).await);
                }
                out
            }
            GroupTurn::Verify(queued) => self.verify_with(msgs, queued),
        }
    }

    /// Verifies this verifier's own requests (a lone one alone, otherwise first in one batch
    /// with those that were waiting), answers the waiting ones, then goes on with what queued
    /// meanwhile ([`Verifier::drain`]).
    fn verify_with(
        self: &Arc<Self>,
        own: Vec<SignedMessage>,
        queued: Vec<Waiting>,
    ) -> Vec<Result<SignedMessage, Refusal>> {
        let out = if queued.is_empty() && own.len() == 1 {
            own.into_iter().map(single).collect()
        } else {
            let results = {
                let refs: Vec<&SignedMessage> =
                    own.iter().chain(queued.iter().map(|w| &w.msg)).collect();
                self.check_batch(&refs)
            };
            let mut results = results.into_iter();
            let out = own
                .into_iter()
                .map(|msg| match results.next() {
                    Some(Ok(())) => Ok(msg),
                    Some(Err(e)) => Err(Refusal::Invalid(e)),
                    None => Err(Refusal::Lost),
                })
                .collect();
            answer(queued, results);
            out
        };
        self.drain();
        out
    }

    /// [`verify_batch`], noting the batch's size for tests.
    fn check_batch<M: Borrow<SignedMessage>>(&self, msgs: &[M]) -> Vec<Result<(), VerifyError>> {
        #[cfg(test)]
        if let Ok(mut state) = self.state.lock() {
            state.batches.push(msgs.len());
        }
        verify_batch(msgs)
    }

    /// Verifies what was queued meanwhile, batch after batch, then stops being active. After
    /// [`MAX_ROUNDS`] batches a new task carries on, so that this verifier's own request is not
    /// held back any longer.
    fn drain(self: &Arc<Self>) {
        let mut rounds = 0;
        loop {
            let queued = match self.state.lock() {
                Ok(mut state) => {
                    if state.queue.is_empty() {
                        state.active -= 1;
                        return;
                    }
                    std::mem::take(&mut state.queue)
                }
                Err(_) => return,
            };
            let results = self.check_batch(&queued);
            answer(queued, results.into_iter());
            rounds += 1;
            if rounds >= MAX_ROUNDS {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    // The new task takes over this verifier's place among the active ones.
                    let me = self.clone();
                    rt.spawn(async move { me.drain() });
                    return;
                }
            }
        }
    }
}

/// The answer a waiting request gets from the verifier that took it.
async fn waited(
    rx: oneshot::Receiver<Result<SignedMessage, VerifyError>>,
) -> Result<SignedMessage, Refusal> {
    match rx.await {
        Ok(r) => r.map_err(Refusal::Invalid),
        Err(_) => Err(Refusal::Lost),
    }
}

/// One message alone: strict single verification.
fn single(msg: SignedMessage) -> Result<SignedMessage, Refusal> {
    match msg.verify() {
        Ok(()) => Ok(msg),
        Err(e) => Err(Refusal::Invalid(e)),
    }
}

/// Sends each waiting request its result (the requests' order is the results' order).
fn answer(queued: Vec<Waiting>, results: impl Iterator<Item = Result<(), VerifyError>>) {
    for (w, r) in queued.into_iter().zip(results) {
        let _ = w.reply.send(r.map(|()| w.msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_identity::{KeyKind, Keypair};
    use plexus_units::Unit;
    use rand_core::OsRng;

    fn message(i: i64, good: bool) -> SignedMessage {
        let kp = Keypair::from_secret_bytes(KeyKind::User, "alice", &[i as u8; 32]).unwrap();
        let m = SignedMessage::sign(Unit::int(i), &kp, 1_790_000_000_000, &mut OsRng).unwrap();
        if good {
            return m;
        }
        let mut sig = *m.signature();
        sig[40] ^= 1;
        SignedMessage::from_parts(m.body().clone(), m.author(), m.time_ms(), *m.nonce(), sig)
            .unwrap()
    }

    #[tokio::test]
    async fn requests_arriving_together_are_verified_together() {
        let v = Arc::new(Verifier::new(1));
        let msgs: Vec<_> = (0..10).map(|i| message(i, i != 4)).collect();
        let got = v.verify_all(msgs.clone()).await;
        assert_eq!(got.len(), 10);
        for (i, (m, r)) in msgs.into_iter().zip(got).enumerate() {
            if i == 4 {
                assert_eq!(r, Err(Refusal::Invalid(VerifyError::BadSignature)));
            } else {
                assert_eq!(r, Ok(m));
            }
        }
        assert!(v.verify_all(Vec::new()).await.is_empty());
        assert_idle(&v);
    }

    /// Waits until `n` requests queue behind a running verification.
    async fn queued(v: &Verifier, n: usize) {
        while v.state.lock().unwrap().queue.len() < n {
            tokio::task::yield_now().await;
        }
    }

    /// Nothing running, nothing waiting.
    fn assert_idle(v: &Verifier) {
        let state = v.state.lock().unwrap();
        assert_eq!((state.active, state.queue.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_group_arriving_while_busy_joins_the_next_batch() {
        let v = Arc::new(Verifier::new(1));
        v.state.lock().unwrap().active = 1;
        let msgs: Vec<_> = (0..5).map(|i| message(i, i != 2)).collect();
        let group = {
            let v = v.clone();
            let msgs = msgs.clone();
            tokio::spawn(async move { v.verify_all(msgs).await })
        };
        queued(&v, 5).await;
        // The running verification ends: it takes the queue as its next batch.
        v.drain();
        let got = group.await.unwrap();
        assert_eq!(got[2], Err(Refusal::Invalid(VerifyError::BadSignature)));
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 4);
        assert_eq!(v.state.lock().unwrap().active, 0);
    }

    #[tokio::test]
    async fn a_lone_request_is_verified_at_once() {
        let v = Arc::new(Verifier::new(1));
        let m = message(1, true);
        assert_eq!(v.verify(m.clone()).await, Ok(m));
        assert_eq!(
            v.verify(message(2, false)).await,
            Err(Refusal::Invalid(VerifyError::BadSignature))
        );
        assert_idle(&v);
    }

    #[tokio::test]
    async fn requests_arriving_while_busy_are_verified_together() {
        let v = Arc::new(Verifier::new(1));
        // A verification is running: the requests that arrive now wait.
        v.state.lock().unwrap().active = 1;
        let waiting: Vec<_> = (0..6)
            .map(|i| {
                let v = v.clone();
                let m = message(i, i != 3);
                tokio::spawn(async move { (m.clone(), v.verify(m).await) })
            })
            .collect();
        queued(&v, 6).await;
        // It ends; the next request verifies itself with all six in one batch.
        v.state.lock().unwrap().active = 0;
        let own = message(10, true);
        assert_eq!(v.verify(own.clone()).await, Ok(own));
        for (i, w) in waiting.into_iter().enumerate() {
            let (m, got) = w.await.unwrap();
            if i == 3 {
                assert_eq!(got, Err(Refusal::Invalid(VerifyError::BadSignature)));
            } else {
                assert_eq!(got, Ok(m));
            }
        }
        assert_idle(&v);
    }

    /// Requests that arrive one after another while a lone request gathers (clients answering
    /// a batch's replies) all join its batch.
    #[tokio::test]
    async fn a_lone_request_gathers_while_requests_keep_arriving() {
        let v = Arc::new(Verifier::new(1));
        let lone = {
            let v = v.clone();
            tokio::spawn(async move { v.verify(message(0, true)).await })
        };
        let feeder = {
            let v = v.clone();
            tokio::spawn(async move {
                let mut arrivals = Vec::new();
                for i in 1..=5 {
                    let v = v.clone();
                    arrivals.push(tokio::spawn(
                        async move { v.verify(message(i, true)).await },
                    ));
                    tokio::task::yield_now().await;
                }
                arrivals
            })
        };
        assert!(lone.await.unwrap().is_ok());
        for arrival in feeder.await.unwrap() {
            assert!(arrival.await.unwrap().is_ok());
        }
        assert_eq!(v.state.lock().unwrap().batches, [6]);
        assert_idle(&v);
    }

    #[tokio::test]
    async fn a_bad_request_verifying_for_others_is_refused_alone() {
        let v = Arc::new(Verifier::new(1));
        v.state.lock().unwrap().active = 1;
        let good = message(1, true);
        let w = {
            let (v, m) = (v.clone(), good.clone());
            tokio::spawn(async move { v.verify(m).await })
        };
        queued(&v, 1).await;
        v.state.lock().unwrap().active = 0;
        assert_eq!(
            v.verify(message(2, false)).await,
            Err(Refusal::Invalid(VerifyError::BadSignature))
        );
        assert_eq!(w.await.unwrap(), Ok(good));
    }
}
