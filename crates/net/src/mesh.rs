//! The mesh: a node's peer manager. It keeps an address book of peers, dials one link per
//! peer on demand (re-dialing after it closes, with exponential backoff after failures), and
//! multiplexes many concurrent calls and one-way messages over it.
//!
//! - Calls and messages from this node to a peer go on the link this node dialed; the peer
//!   replies on the same link. A peer's calls arrive on the link it dialed, accepted by
//!   [`Mesh::listen`], and are answered by the [`Handler`], one task per call.
//! - A call has a deadline: the caller stops waiting when it passes, and the callee, told in
//!   the call frame how much time is left, drops the handler's future then too. A caller that
//!   drops its call future sends a cancel frame, which aborts the handler's task.
//! - A link that closes fails the calls waiting on it at once ([`MeshError::LinkClosed`]); the
//!   next call dials again. A failed dial makes calls fail fast ([`MeshError::Unreachable`])
//!   until the backoff (doubling from [`MeshConfig::reconnect_min`] up to
//!   [`MeshConfig::reconnect_max`], with jitter) has passed, or until the peer connects to this
//!   node, which proves it is up and ends the backoff.
//! - Each link frame carries one mesh frame ([`MeshFrame`], decoded by the sans-io
//!   [`decode_mesh_frame`]); a peer that sends a malformed one has its link closed.
//!
//! The frame format is specified in `docs/links.md`, section "Mesh frames".

mod link;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use plexus_identity::PublicKey;
use rand::Rng;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use wire::{
    decode_mesh_frame, Channel, MeshFrame, CALL_HEADER, KIND_CALL, KIND_CANCEL, KIND_MESSAGE,
    KIND_OVERLOADED, KIND_REPLY_ERR, KIND_REPLY_OK, MESSAGE_HEADER, REPLY_HEADER,
};

use crate::frame::MAX_FRAME_LIMIT;
use crate::{Expect, Link, LinkReceiver, Listener, NetError, OutFrame, PeerInfo, Transport};
use link::{CallGuard, Closing, LinkCtx, Start};

/// One-way messages queued per peer while its link is being set up; more are dropped.
pub const CONNECT_QUEUE: usize = 128;

/// A boxed, sendable future (what [`Handler::call`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Settings of a [`Mesh`].
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// The backoff after a first failed connect (default 50 ms); it doubles with each
    /// further failure.
    pub reconnect_min: Duration,
    /// The largest backoff (default 2 s). A backoff is shortened by a random jitter of up
    /// to a quarter, so that nodes do not retry in step.
    pub reconnect_max: Duration,
    /// Calls from peers running at once in this mesh (default 4096); calls beyond are
    /// answered at once with [`MeshError::Overloaded`].
    pub max_inbound_calls: usize,
}

impl Default for MeshConfig {
    fn default() -> MeshConfig {
        MeshConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            max_inbound_calls: 4096,
        }
    }
}

/// What a node does with frames that arrive from peers.
pub trait Handler: Send + Sync + 'static {
    /// A one-way message (e.g. a SWIM packet). Must not block: hand work off.
    fn message(&self, from: &PeerInfo, channel: Channel, body: Bytes);

    /// A call; its result is sent back as the reply (`Err(message)` reaches the caller as
    /// [`MeshError::Remote`]). If the caller cancels (drops its call future) or its deadline
    /// passes, the future is dropped (the mesh aborts the task running it).
    fn call(
        &self,
        from: &PeerInfo,
        channel: Channel,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>>;
}

/// Why a call or message failed. Each error names the peer (its name in the address book if
/// it has one, else its key's fingerprint).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// No address is known for that key (never added with [`Mesh::set_peer`], or removed).
    #[error("unknown peer {peer}: no address is known for it")]
    UnknownPeer {
        /// The peer.
        peer: String,
    },
    /// Connecting failed, or failed recently and the backoff has not passed (calls fail fast
    /// instead of hammering the peer).
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: String,
        /// Why the last connect failed.
        reason: String,
        /// Whether the peer refused this node's key ([`NetError::RefusedByPeer`]: it does not
        /// know this node, or revoked it).
        refused: bool,
    },
    /// The call's deadline passed.
    #[error("call to {peer} timed out after {after:?}")]
    Timeout {
        /// The peer.
        peer: String,
        /// The call's timeout.
        after: Duration,
    },
    /// The link closed while the call was pending (the peer went away, was removed, its
    /// address changed…).
    #[error("the link to {peer} closed: {reason}")]
    LinkClosed {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The peer's handler returned an error.
    #[error("{peer} answered with an error: {message}")]
    Remote {
        /// The peer.
        peer: String,
        /// The handler's error message.
        message: String,
    },
    /// The peer has too many calls in progress and refused this one.
    #[error("peer {peer} is overloaded: too many calls in progress")]
    Overloaded {
        /// The peer.
        peer: String,
    },
    /// The body is larger than a frame the peer accepts.
    #[error("a body of {size} bytes is too large for {peer}, which accepts at most {max}")]
    TooLarge {
        /// The peer.
        peer: String,
        /// The body's length.
        size: usize,
        /// The largest body the peer accepts.
        max: usize,
    },
    /// This mesh was shut down.
    #[error("the mesh is shut down")]
    Closed,
}

/// Counters of a mesh, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshStats {
    /// Connects attempted (dials).
    pub dials: u64,
    /// Connects that failed.
    pub dial_failures: u64,
    /// Links accepted from peers.
    pub accepted: u64,
    /// Links closed because the peer sent a malformed mesh frame.
    pub malformed: u64,
    /// Calls from peers refused because too many were running.
    pub overloaded: u64,
}

#[derive(Default)]
struct Counters {
    dials: AtomicU64,
    dial_failures: AtomicU64,
    accepted: AtomicU64,
    malformed: AtomicU64,
    overloaded: AtomicU64,
}

type Waiter = oneshot::Sender<Result<Arc<LinkCtx>, MeshError>>;

/// The state of this node's own link to a peer.
enum Out {
    Idle,
    Connecting {
        /// Which connect attempt (a stale one's result is dropped).
        attempt: u64,
        waiters: Vec<Waiter>,
        queued: VecDeque<Bytes>,
    },
    Up(Arc<LinkCtx>),
}

struct Peer<A> {
    name: String,
    addr: A,
    out: Out,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
    /// Whether the last connect failed because the peer refused this node's key.
    last_refused: bool,
    attempts: u64,
}

fn label(name: &str, key: &PublicKey) -> String {
    if name.is_empty() {
        key.fingerprint()
    } else {
        name.to_owned()
    }
}

impl<A> Peer<A> {
    fn label(&self, key: &PublicKey) -> String {
        label(&self.name, key)
    }

    /// Ends the current link or connect attempt, returning what must be failed or closed.
    fn reset(&mut self) -> (Vec<Waiter>, Option<Arc<LinkCtx>>) {
        match std::mem::replace(&mut self.out, Out::Idle) {
            Out::Idle => (Vec::new(), None),
            Out::Connecting { waiters, .. } => (waiters, None),
            Out::Up(ctx) => (Vec::new(), Some(ctx)),
        }
    }
}

struct State<A> {
    closed: bool,
    peers: HashMap<PublicKey, Peer<A>>,
    /// Every open link, dialed or accepted, by id.
    links: HashMap<u64, Arc<LinkCtx>>,
}

struct Inner<T: Transport> {
    transport: T,
    config: MeshConfig,
    handler: Arc<dyn Handler>,
    state: Mutex<State<T::Addr>>,
    next_call: AtomicU64,
    next_link: AtomicU64,
    inbound_calls: Arc<AtomicUsize>,
    counters: Counters,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Handle>,
}

/// Shuts the mesh down when the last [`Mesh`] handle is dropped (background tasks hold the
/// inner state, not this).
struct Owner<T: Transport>(Arc<Inner<T>>);

impl<T: Transport> Drop for Owner<T> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// A node's peer manager: calls and messages to peers over authenticated links, dialed on
/// demand, multiplexed, with deadlines, cancellation and reconnection (see the
/// [module documentation](self)).
///
/// Cheap to clone (clones share one mesh). Dropping the last clone shuts it down, as
/// [`Mesh::shutdown`] does (a [`Handler`] holding a clone keeps it alive: call `shutdown`).
/// Must be used within a Tokio runtime.
pub struct Mesh<T: Transport> {
    inner: Arc<Inner<T>>,
    _owner: Arc<Owner<T>>,
}

impl<T: Transport> Clone for Mesh<T> {
    fn clone(&self) -> Self {
        Mesh {
            inner: self.inner.clone(),
            _owner: self._owner.clone(),
        }
    }
}

impl<T: Transport> std::fmt::Debug for Mesh<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Mesh")
            .field("closed", &st.closed)
            .field("peers", &st.peers.len())
            .field("links", &st.links.len())
            .finish_non_exhaustive()
    }
}

/// The time left until `deadline`, in whole milliseconds rounded up, for a call frame.
fn deadline_ms(deadline: Option<Instant>) -> u32 {
    let Some(deadline) = deadline else {
        return u32::MAX;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    u32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

/// The backoff after `failures` failed connects in a row (at least 1).
fn backoff(config: &MeshConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let base = config
        .reconnect_min
        .checked_mul(1u32 << doublings)
        .unwrap_or(config.reconnect_max)
        .min(config.reconnect_max);
    let jitter: f64 = rand::thread_rng().gen_range(0.0..=0.25);
    base.mul_f64(1.0 - jitter)
}

impl<T: Transport> Mesh<T> {
    /// A mesh that sets up links with `transport` and hands frames from peers to `handler`.
    /// It has no peers and does not listen yet.
    pub fn new(transport: T, config: MeshConfig, handler: Arc<dyn Handler>) -> Mesh<T> {
        let inner = Arc::new(Inner {
            transport,
            config,
            handler,
            state: Mutex::new(State {
                closed: false,
                peers: HashMap::new(),
                links: HashMap::new(),
            }),
            next_call: AtomicU64::new(1),
            next_link: AtomicU64::new(1),
            inbound_calls: Arc::new(AtomicUsize::new(0)),
            counters: Counters::default(),
            shutdown: watch::Sender::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
        });
        Mesh {
            _owner: Arc::new(Owner(inner.clone())),
            inner,
        }
    }

    /// Starts accepting links on `addr` (spawns the accept loop); returns the bound address.
    /// Calls and messages from peers on those links go to the handler.
    pub async fn listen(&self, addr: &T::Addr) -> Result<T::Addr, NetError> {
        if self.inner.lock().closed {
            return Err(NetError::Closed);
        }
        let mut listener = self.inner.transport.listen(addr).await?;
        let local = listener.local_addr();
        let inner = self.inner.clone();
        let mut stop = inner.shutdown.subscribe();
        let task = async move {
            loop {
                let next = tokio::select! {
                    next = listener.accept() => next,
                    _ = stop.wait_for(|stopped| *stopped) => break,
                };
                match next {
                    None => break,
                    Some(Ok(link)) => inner.adopt_inbound(link),
                    Some(Err(e)) => tracing::debug!("refused an incoming link: {e}"),
                }
            }
        };
        if self.inner.spawn(task).is_none() {
            return Err(NetError::Closed);
        }
        Ok(local)
    }

    /// Adds or updates a peer in the address book: its node key, its name (for error
    /// messages), its address. A changed address closes this node's link to it (calls
    /// pending on it fail with [`MeshError::LinkClosed`]) and forgets its backoff.
    pub fn set_peer(&self, key: PublicKey, name: String, addr: T::Addr) {
        let (waiters, old, who) = {
            let mut st = self.inner.lock();
            if st.closed {
                return;
            }
            let State { peers, links, .. } = &mut *st;
            match peers.get_mut(&key) {
                None => {
                    peers.insert(
                        key,
                        Peer {
                            name,
                            addr,
                            out: Out::Idle,
                            failures: 0,
                            retry_at: None,
                            last_error: String::new(),
                            last_refused: false,
                            attempts: 0,
                        },
                    );
                    return;
                }
                Some(peer) => {
                    peer.name = name;
                    if peer.addr.to_string() == addr.to_string() {
                        return;
                    }
                    peer.addr = addr;
                    peer.failures = 0;
                    peer.retry_at = None;
                    let (waiters, old) = peer.reset();
                    let who = peer.label(&key);
                    if let Some(ctx) = &old {
                        links.remove(&ctx.id);
                    }
                    (waiters, old, who)
                }
            }
        };
        let reason = "the peer's address changed".to_owned();
        if let Some(ctx) = old {
            ctx.close(Closing::Link(reason.clone()));
        }
        for w in waiters {
            let _ = w.send(Err(MeshError::LinkClosed {
                peer: who.clone(),
                reason: reason.clone(),
            }));
        }
    }

    /// Forgets a peer: closes the links to and from it; calls pending on them fail with
    /// [`MeshError::LinkClosed`], later ones with [`MeshError::UnknownPeer`]. (Whether the
    /// peer may link again is the transport's [`crate::Allow`] set's business.)
    pub fn remove_peer(&self, key: &PublicKey) {
        let (waiters, links, who) = {
            let mut st = self.inner.lock();
            let (waiters, who) = match st.peers.remove(key) {
                Some(mut peer) => (peer.reset().0, peer.label(key)),
                None => (Vec::new(), key.fingerprint()),
            };
            let ids: Vec<u64> = st
                .links
                .values()
                .filter(|c| c.peer.key == *key)
                .map(|c| c.id)
                .collect();
            let links: Vec<Arc<LinkCtx>> =
                ids.iter().filter_map(|id| st.links.remove(id)).collect();
            (waiters, links, who)
        };
        let reason = "the peer was removed".to_owned();
        for ctx in links {
            ctx.close(Closing::Link(reason.clone()));
        }
        for w in waiters {
            let _ = w.send(Err(MeshError::LinkClosed {
                peer: who.clone(),
                reason: reason.clone(),
            }));
        }
    }

    /// Best-effort one-way message; never blocks. When no link is up, starts connecting in
    /// the background and queues the message (up to [`CONNECT_QUEUE`] per peer), or drops
    /// it (queue full, link's send queue full, peer in backoff). Fails only for
    /// [`MeshError::UnknownPeer`], [`MeshError::TooLarge`] and [`MeshError::Closed`]; the
    /// peer's frame limit is known once a link is up, so a message too large for it queued
    /// while connecting is dropped instead.
    pub fn send(&self, to: &PublicKey, channel: Channel, body: Bytes) -> Result<(), MeshError> {
        let limit = MAX_FRAME_LIMIT.saturating_sub(MESSAGE_HEADER);
        if body.len() > limit {
            return Err(MeshError::TooLarge {
                peer: self.inner.label_of(to),
                size: body.len(),
                max: limit,
            });
        }
        let frame = Bytes::from(
            MeshFrame::Message {
                channel,
                body: &body,
            }
            .encode(),
        );
        match self.inner.route(to, Want::Queue(frame.clone()))? {
            Route::Ready(ctx) => {
                let max = ctx.peer.max_frame.saturating_sub(MESSAGE_HEADER);
                if body.len() > max {
                    return Err(MeshError::TooLarge {
                        peer: ctx.label.clone(),
                        size: body.len(),
                        max,
                    });
                }
                if let Err(e) = ctx.try_send(frame) {
                    tracing::debug!(peer = %ctx.label, "message dropped: {e}");
                }
            }
            Route::Queued => {}
            Route::Dropped(why) => {
                tracing::debug!(peer = %self.inner.label_of(to), "message dropped: {why}");
            }
            Route::Waiting(_) => {}
        }
        Ok(())
    }

    /// A call with a deadline: sends `body` to the peer's handler on `channel` and waits for
    /// its reply, at most `timeout` (connecting included). Connects if needed (respecting
    /// the backoff). Dropping the future cancels the call on the peer.
    /// The body may come in parts ([`OutFrame`]): a long part is written from where it is.
    pub async fn call(
        &self,
        to: &PublicKey,
        channel: Channel,
        body: impl Into<OutFrame>,
        timeout: Duration,
    ) -> Result<Bytes, MeshError> {
        let deadline = Instant::now().checked_add(timeout);
        let call = self.inner.call(to, channel, body.into(), deadline, timeout);
        match deadline {
            None => call.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
                Ok(result) => result,
                Err(_) => Err(MeshError::Timeout {
                    peer: self.inner.label_of(to),
                    after: timeout,
                }),
            },
        }
    }

    /// Whether this node's link to `to` is currently up.
    pub fn is_connected(&self, to: &PublicKey) -> bool {
        let st = self.inner.lock();
        matches!(st.peers.get(to), Some(Peer { out: Out::Up(ctx), .. }) if ctx.is_open())
    }

    /// Closes every link and stops the accept loops; pending calls fail with
    /// [`MeshError::Closed`], and so does everything after.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Counters since the mesh was made.
    pub fn stats(&self) -> MeshStats {
        let c = &self.inner.counters;
        MeshStats {
            dials: c.dials.load(Ordering::Relaxed),
            dial_failures: c.dial_failures.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.inner.transport
    }
}

/// What a caller of [`Inner::route`] wants when no link is up.
enum Want {
    /// To wait for the link (a call).
    Wait,
    /// To queue this frame for it (a message).
    Queue(Bytes),
}

/// Where [`Inner::route`] leaves a call or message.
enum Route {
    /// The link is up.
    Ready(Arc<LinkCtx>),
    /// A connect is in progress; its outcome comes here.
    Waiting(oneshot::Receiver<Result<Arc<LinkCtx>, MeshError>>),
    /// The message was queued for the link being set up.
    Queued,
    /// The message was dropped, for this reason.
    Dropped(&'static str),
}

/// Decrements the count of running incoming calls when a call's task ends or is aborted.
struct CallSlot(Arc<AtomicUsize>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T: Transport> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T::Addr>> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn spawn<F>(&self, task: F) -> Option<JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt.spawn(task)),
            Err(_) => match &self.runtime {
                Some(rt) => Some(rt.spawn(task)),
                None => {
                    tracing::error!("the mesh is used outside a Tokio runtime");
                    None
                }
            },
        }
    }

    fn label_of(&self, key: &PublicKey) -> String {
        match self.lock().peers.get(key) {
            Some(peer) => peer.label(key),
            None => key.fingerprint(),
        }
    }

    /// Finds this node's link to `to`, or starts setting it up.
    fn route(self: &Arc<Self>, to: &PublicKey, want: Want) -> Result<Route, MeshError> {
        let mut st = self.lock();
        if st.closed {
            return Err(MeshError::Closed);
        }
        let Some(peer) = st.peers.get_mut(to) else {
            return Err(MeshError::UnknownPeer {
                peer: to.fingerprint(),
            });
        };
        if let Out::Up(ctx) = &peer.out {
            if ctx.is_open() {
                return Ok(Route::Ready(ctx.clone()));
            }
            // Closed, its reader not done yet: dial again.
            peer.out = Out::Idle;
        }
        if let Out::Connecting {
            waiters, queued, ..
        } = &mut peer.out
        {
            return Ok(match want {
                Want::Wait => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Route::Waiting(rx)
                }
                Want::Queue(frame) if queued.len() < CONNECT_QUEUE => {
                    queued.push_back(frame);
                    Route::Queued
                }
                Want::Queue(_) => Route::Dropped("too many messages queued while connecting"),
            });
        }
        let now = Instant::now();
        if let Some(at) = peer.retry_at.filter(|at| *at > now) {
            return match want {
                Want::Wait => Err(MeshError::Unreachable {
                    peer: peer.label(to),
                    reason: format!(
                        "{} (next attempt in {:?})",
                        peer.last_error,
                        at.saturating_duration_since(now)
                    ),
                    refused: peer.last_refused,
                }),
                Want::Queue(_) => Ok(Route::Dropped("the peer is unreachable (in backoff)")),
            };
        }
        peer.attempts = peer.attempts.wrapping_add(1);
        let attempt = peer.attempts;
        let (waiters, queued, route) = match want {
            Want::Wait => {
                let (tx, rx) = oneshot::channel();
                (vec![tx], VecDeque::new(), Route::Waiting(rx))
            }
            Want::Queue(frame) => (Vec::new(), VecDeque::from([frame]), Route::Queued),
        };
        peer.out = Out::Connecting {
            attempt,
            waiters,
            queued,
        };
        let addr = peer.addr.clone();
        if self
            .spawn(self.clone().connect(*to, addr, attempt))
            .is_none()
        {
            let reason = "no Tokio runtime to connect in".to_owned();
            peer.out = Out::Idle;
            return Err(MeshError::Unreachable {
                peer: peer.label(to),
                reason,
                refused: false,
            });
        }
        Ok(route)
    }

    /// Dials a peer (one attempt) and hands the link to whoever waits for it.
    async fn connect(self: Arc<Self>, key: PublicKey, addr: T::Addr, attempt: u64) {
        self.counters.dials.fetch_add(1, Ordering::Relaxed);
        let result = self.transport.connect(&addr, Expect::Key(key)).await;
        if result.is_err() {
            self.counters.dial_failures.fetch_add(1, Ordering::Relaxed);
        }
        let (waiters, outcome) = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let next_link = &self.next_link;
            let State { peers, links, .. } = &mut *st;
            let Some(peer) = peers.get_mut(&key) else {
                return;
            };
            if !matches!(&peer.out, Out::Connecting { attempt: a, .. } if *a == attempt) {
                // The address changed or the peer was removed meanwhile.
                return;
            }
            let Out::Connecting {
                waiters, queued, ..
            } = std::mem::replace(&mut peer.out, Out::Idle)
            else {
                return;
            };
            let who = peer.label(&key);
            match result {
                Ok(link) => {
                    peer.failures = 0;
                    peer.retry_at = None;
                    let id = next_link.fetch_add(1, Ordering::Relaxed);
                    let info = link.peer().clone();
                    let (sender, receiver) = link.split();
                    let ctx = Arc::new(LinkCtx::new(id, info, who, true, sender));
                    tracing::debug!(peer = %ctx.label, %addr, "link dialed");
                    for frame in queued {
                        if let Err(e) = ctx.try_send(frame) {
                            tracing::debug!(peer = %ctx.label, "queued message dropped: {e}");
                        }
                    }
                    peer.out = Out::Up(ctx.clone());
                    links.insert(id, ctx.clone());
                    if self
                        .spawn(self.clone().read_link(ctx.clone(), receiver))
                        .is_none()
                    {
                        ctx.close(Closing::Link("no Tokio runtime".to_owned()));
                    }
                    (waiters, Ok(ctx))
                }
                Err(e) => {
                    peer.failures = peer.failures.saturating_add(1);
                    let delay = backoff(&self.config, peer.failures);
                    peer.retry_at = Instant::now().checked_add(delay);
                    peer.last_error = e.to_string();
                    peer.last_refused = matches!(e, NetError::RefusedByPeer);
                    tracing::debug!(peer = %who, %addr, ?delay, "connect failed: {e}");
                    (
                        waiters,
                        Err(MeshError::Unreachable {
                            peer: who,
                            reason: e.to_string(),
                            refused: peer.last_refused,
                        }),
                    )
                }
            }
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }

    /// Takes an accepted link into the mesh.
    fn adopt_inbound(self: &Arc<Self>, link: Link) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let info = link.peer().clone();
        let who = match st.peers.get_mut(&info.key) {
            Some(peer) => {
                // The peer just proved it is up (the link is authenticated): dial it at the next
                // need instead of waiting out a backoff from failures while it was down, such as
                // those of a node that started before the peer it calls.
                peer.failures = 0;
                peer.retry_at = None;
                peer.label(&info.key)
            }
            None => label(&info.name, &info.key),
        };
        tracing::debug!(peer = %who, addr = %info.addr, "link accepted");
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = link.split();
        let ctx = Arc::new(LinkCtx::new(id, info, who, false, sender));
        st.links.insert(id, ctx.clone());
        drop(st);
        if self
            .spawn(self.clone().read_link(ctx.clone(), receiver))
            .is_none()
        {
            ctx.close(Closing::Link("no Tokio runtime".to_owned()));
            self.forget_link(&ctx);
        }
    }

    /// Reads a link until it closes, dispatching its frames.
    async fn read_link(self: Arc<Self>, ctx: Arc<LinkCtx>, mut rx: LinkReceiver) {
        let mut closed = ctx.closed_watch();
        let why = loop {
            let frame = tokio::select! {
                frame = rx.recv() => frame,
                _ = closed.wait_for(|c| *c) => break None,
            };
            let Some(frame) = frame else {
                let reason = rx
                    .close_reason()
                    .unwrap_or_else(|| "the peer closed the link".to_owned());
                break Some(reason);
            };
            if let Err(e) = self.dispatch(&ctx, frame).await {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %ctx.label, addr = %ctx.peer.addr, "{e}; closing the link");
                break Some(e.to_string());
            }
        };
        if let Some(why) = why {
            tracing::debug!(peer = %ctx.label, dialed = ctx.dialed, "link closed: {why}");
            ctx.close(Closing::Link(why));
        }
        self.forget_link(&ctx);
    }

    /// Removes a closed link from the registry and from its peer's entry.
    fn forget_link(&self, ctx: &Arc<LinkCtx>) {
        let mut st = self.lock();
        st.links.remove(&ctx.id);
        if let Some(peer) = st.peers.get_mut(&ctx.peer.key) {
            if matches!(&peer.out, Out::Up(c) if c.id == ctx.id) {
                peer.out = Out::Idle;
            }
        }
    }

    /// Handles one frame from a link. An error means the peer broke the protocol.
    async fn dispatch(&self, ctx: &Arc<LinkCtx>, frame: Bytes) -> Result<(), NetError> {
        match decode_mesh_frame(&frame)? {
            MeshFrame::Message { channel, body } => {
                self.handler
                    .message(&ctx.peer, channel, frame.slice_ref(body));
            }
            MeshFrame::Call {
                channel,
                id,
                deadline_ms,
                body,
            } => {
                let body = frame.slice_ref(body);
                self.start_call(ctx, channel, id, deadline_ms, body).await?;
            }
            MeshFrame::ReplyOk { id, body, .. } => {
                if let Some(tx) = ctx.take_pending(id) {
                    let _ = tx.send(Ok(frame.slice_ref(body)));
                }
            }
            MeshFrame::ReplyErr { id, message, .. } => {
                if let Some(tx) = ctx.take_pending(id) {
                    let _ = tx.send(Err(MeshError::Remote {
                        peer: ctx.label.clone(),
                        message: message.to_owned(),
                    }));
                }
            }
            MeshFrame::Overloaded { id, .. } => {
                if let Some(tx) = ctx.take_pending(id) {
                    let _ = tx.send(Err(MeshError::Overloaded {
                        peer: ctx.label.clone(),
                    }));
                }
            }
            MeshFrame::Cancel { id, .. } => ctx.cancel_inbound(id),
        }
        Ok(())
    }

    /// Runs a call from the peer in a task of its own.
    async fn start_call(
        &self,
        ctx: &Arc<LinkCtx>,
        channel: Channel,
        id: u64,
        deadline_ms: u32,
        body: Bytes,
    ) -> Result<(), NetError> {
        let max = self.config.max_inbound_calls;
        let taken = self
            .inbound_calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then(|| n.saturating_add(1))
            });
        if taken.is_err() {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            if let Some(sender) = ctx.sender() {
                let reply = MeshFrame::Overloaded { channel, id }.encode();
                let _ = sender.send(Bytes::from(reply)).await;
            }
            return Ok(());
        }
        let slot = CallSlot(self.inbound_calls.clone());
        let handler = self.handler.clone();
        let task_ctx = ctx.clone();
        let task = async move {
            let _slot = slot;
            let work = handler.call(&task_ctx.peer, channel, body);
            let limit = Duration::from_millis(u64::from(deadline_ms));
            let reply = match tokio::time::timeout(limit, work).await {
                // The caller has given up: nobody wants the reply.
                Err(_) => None,
                Ok(Ok(body)) => {
                    let max = task_ctx.peer.max_frame.saturating_sub(REPLY_HEADER);
                    if body.len() > max {
                        let message = format!(
                            "the reply of {} bytes is larger than the caller accepts ({max})",
                            body.len()
                        );
                        Some(
                            MeshFrame::ReplyErr {
                                channel,
                                id,
                                message: &message,
                            }
                            .encode(),
                        )
                    } else {
                        Some(
                            MeshFrame::ReplyOk {
                                channel,
                                id,
                                body: &body,
                            }
                            .encode(),
                        )
                    }
                }
                Ok(Err(message)) => Some(
                    MeshFrame::ReplyErr {
                        channel,
                        id,
                        message: &message,
                    }
                    .encode(),
                ),
            };
            if let (Some(reply), Some(sender)) = (reply, task_ctx.sender()) {
                let _ = sender.send(Bytes::from(reply)).await;
            }
            task_ctx.finish_inbound(id);
        };
        match ctx.start_inbound(id, || self.spawn(task).map(|h| h.abort_handle())) {
            Start::Started | Start::Closed => Ok(()),
            Start::Duplicate => Err(NetError::BadMeshFrame(
                "a call id that is already in progress",
            )),
        }
    }

    /// One call, without its deadline (the caller applies it).
    async fn call(
        self: &Arc<Self>,
        to: &PublicKey,
        channel: Channel,
        body: OutFrame,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Bytes, MeshError> {
        let ctx = match self.route(to, Want::Wait)? {
            Route::Ready(ctx) => ctx,
            Route::Waiting(rx) => rx.await.unwrap_or(Err(MeshError::Closed))?,
            Route::Queued | Route::Dropped(_) => return Err(MeshError::Closed),
        };
        let max = ctx.peer.max_frame.saturating_sub(CALL_HEADER);
        if body.len() > max {
            return Err(MeshError::TooLarge {
                peer: ctx.label.clone(),
                size: body.len(),
                max,
            });
        }
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        ctx.register(id, tx)?;
        let mut guard = CallGuard {
            ctx: ctx.clone(),
            id,
            channel,
            sent: false,
            armed: true,
            patience: timeout,
        };
        let header = MeshFrame::Call {
            channel,
            id,
            deadline_ms: deadline_ms(deadline),
            body: &[],
        }
        .encode();
        let frame = OutFrame::from_parts(
            std::iter::once(Bytes::from(header))
                .chain(body.into_parts())
                .collect(),
        );
        let Some(sender) = ctx.sender() else {
            return Err(ctx.closed_error());
        };
        tokio::select! {
            // The link closed while waiting for room in its queue.
            early = &mut rx => {
                guard.armed = false;
                return early.unwrap_or_else(|_| Err(ctx.closed_error()));
            }
            sent = sender.send(frame) => {
                if sent.is_err() {
                    return Err(ctx.closed_error());
                }
            }
        }
        drop(sender);
        guard.sent = true;
        let result = rx.await;
        guard.armed = false;
        result.unwrap_or_else(|_| Err(ctx.closed_error()))
    }

    fn shutdown(&self) {
        let (links, waiters) = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            let links: Vec<Arc<LinkCtx>> = st.links.drain().map(|(_, c)| c).collect();
            let mut waiters = Vec::new();
            for peer in st.peers.values_mut() {
                waiters.extend(peer.reset().0);
            }
            (links, waiters)
        };
        self.shutdown.send_replace(true);
        for ctx in links {
            ctx.close(Closing::Shutdown);
        }
        for w in waiters {
            let _ = w.send(Err(MeshError::Closed));
        }
    }
}
