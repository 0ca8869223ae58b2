//! One link as the mesh uses it: the calls waiting for replies on it (outgoing side) and the
//! calls running for its peer (incoming side).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use super::MeshError;
use crate::{LinkSender, NetError, PeerInfo};

/// Where the result of a call goes.
pub(super) type ReplyTx = oneshot::Sender<Result<Bytes, MeshError>>;

/// Why a link was closed by this node or found closed.
#[derive(Clone, Debug)]
pub(super) enum Closing {
    /// The link broke or was closed (the peer went away, was removed, sent garbage…).
    Link(String),
    /// This mesh was shut down.
    Shutdown,
}

#[derive(Default)]
struct LinkState {
    /// The only long-lived sender of the link: taking it out (and aborting the incoming
    /// calls, which borrow it briefly to reply) closes the link.
    sender: Option<LinkSender>,
    closed: Option<Closing>,
    /// Our calls on this link waiting for their reply, by call id.
    pending: HashMap<u64, ReplyTx>,
    /// The peer's calls running here, by call id.
    inbound: HashMap<u64, AbortHandle>,
}

/// A link in use by the mesh.
pub(super) struct LinkCtx {
    /// Unique within the mesh.
    pub(super) id: u64,
    /// The peer as authenticated by the link's handshake.
    pub(super) peer: PeerInfo,
    /// How errors name the peer.
    pub(super) label: String,
    /// Whether this node dialed the link (else it accepted it).
    pub(super) dialed: bool,
    state: Mutex<LinkState>,
    /// Becomes `true` when the link is closed; its reader stops then.
    close_tx: watch::Sender<bool>,
}

/// What a refusal to register a new duplicate inbound call id means.
#[derive(Debug)]
pub(super) enum Start {
    /// The call was registered and its task spawned.
    Started,
    /// The link is closed: nothing to do.
    Closed,
    /// A call with that id is already running: the peer breaks the protocol.
    Duplicate,
}

impl LinkCtx {
    pub(super) fn new(
        id: u64,
        peer: PeerInfo,
        label: String,
        dialed: bool,
        sender: LinkSender,
    ) -> LinkCtx {
        LinkCtx {
            id,
            peer,
            label,
            dialed,
            state: Mutex::new(LinkState {
                sender: Some(sender),
                ..LinkState::default()
            }),
            close_tx: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A sender, unless the link is closed.
    pub(super) fn sender(&self) -> Option<LinkSender> {
        self.lock().sender.clone()
    }

    /// Whether the link can still carry frames (as far as this node knows).
    pub(super) fn is_open(&self) -> bool {
        let st = self.lock();
        st.closed.is_none() && st.sender.as_ref().is_some_and(|s| !s.is_closed())
    }

    /// Queues a frame without waiting; drops it (and says why) when it cannot.
    pub(super) fn try_send(&self, frame: Bytes) -> Result<(), NetError> {
        match self.sender() {
            Some(s) => s.try_send(frame),
            None => Err(NetError::Closed),
        }
    }

    /// The error for calls on this link once it is closed.
    pub(super) fn closed_error(&self) -> MeshError {
        let closing = self.lock().closed.clone();
        self.error_for(closing.as_ref())
    }

    fn error_for(&self, closing: Option<&Closing>) -> MeshError {
        match closing {
            Some(Closing::Shutdown) => MeshError::Closed,
            Some(Closing::Link(reason)) => MeshError::LinkClosed {
                peer: self.label.clone(),
                reason: reason.clone(),
            },
            None => MeshError::LinkClosed {
                peer: self.label.clone(),
                reason: "the link closed".to_owned(),
            },
        }
    }

    /// Registers a call waiting for its reply; fails once the link is closed.
    pub(super) fn register(&self, id: u64, tx: ReplyTx) -> Result<(), MeshError> {
        let mut st = self.lock();
        if let Some(closing) = &st.closed {
            let closing = closing.clone();
            drop(st);
            return Err(self.error_for(Some(&closing)));
        }
        st.pending.insert(id, tx);
        Ok(())
    }

    /// Takes the waiting call `id`, if it still waits.
    pub(super) fn take_pending(&self, id: u64) -> Option<ReplyTx> {
        self.lock().pending.remove(&id)
    }

    /// Registers an incoming call and spawns its task with `spawn`, under the lock so that
    /// the task cannot finish (and unregister) before it is registered.
    pub(super) fn start_inbound(
        &self,
        id: u64,
        spawn: impl FnOnce() -> Option<AbortHandle>,
    ) -> Start {
        let mut st = self.lock();
        if st.closed.is_some() {
            return Start::Closed;
        }
        if st.inbound.contains_key(&id) {
            return Start::Duplicate;
        }
        if let Some(handle) = spawn() {
            st.inbound.insert(id, handle);
        }
        Start::Started
    }

    /// An incoming call finished.
    pub(super) fn finish_inbound(&self, id: u64) {
        self.lock().inbound.remove(&id);
    }

    /// The caller cancelled incoming call `id`: abort it (its future is dropped).
    pub(super) fn cancel_inbound(&self, id: u64) {
        let handle = self.lock().inbound.remove(&id);
        if let Some(h) = handle {
            h.abort();
        }
    }

    /// Closes the link (idempotent): drops its sender, aborts the calls running for the
    /// peer, fails the calls waiting for replies, stops the reader.
    pub(super) fn close(&self, why: Closing) {
        let (sender, pending, inbound) = {
            let mut st = self.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(why.clone());
            (
                st.sender.take(),
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.inbound),
            )
        };
        drop(sender);
        for (_, h) in inbound {
            h.abort();
        }
        for (_, tx) in pending {
            let _ = tx.send(Err(self.error_for(Some(&why))));
        }
        self.close_tx.send_replace(true);
    }

    /// Watches for the link being closed by this node.
    pub(super) fn closed_watch(&self) -> watch::Receiver<bool> {
        self.close_tx.subscribe()
    }
}

impl std::fmt::Debug for LinkCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCtx")
            .field("id", &self.id)
            .field("peer", &self.label)
            .field("dialed", &self.dialed)
            .finish_non_exhaustive()
    }
}

/// Cancels a call whose future is dropped before its reply came: forgets it and, if the
/// call frame was sent, tells the peer.
pub(super) struct CallGuard {
    pub(super) ctx: Arc<LinkCtx>,
    pub(super) id: u64,
    pub(super) channel: u8,
    /// Whether the call frame was queued on the link.
    pub(super) sent: bool,
    /// Cleared once the call has its result.
    pub(super) armed: bool,
    /// How long a cancel frame may wait for room in a full queue.
    pub(super) patience: std::time::Duration,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let was_pending = self.ctx.take_pending(self.id).is_some();
        if !self.sent || !was_pending {
            return;
        }
        let frame = Bytes::from(
            super::MeshFrame::Cancel {
                channel: self.channel,
                id: self.id,
            }
            .encode(),
        );
        match self.ctx.try_send(frame.clone()) {
            Ok(()) | Err(NetError::Closed) => {}
            Err(_) => {
                // The queue is full: send it when there is room, within the call's deadline
                // (after which the peer drops the call anyway).
                let (Some(sender), Ok(rt)) =
                    (self.ctx.sender(), tokio::runtime::Handle::try_current())
                else {
                    return;
                };
                let patience = self.patience;
                rt.spawn(async move {
                    let _ = tokio::time::timeout(patience, sender.send(frame)).await;
                });
            }
        }
    }
}
