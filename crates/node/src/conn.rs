//! One client connection: handshake, calls, cancellation and the session terminal.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use plexus_identity::{KeyCache, ReplayGuard, SignedMessage};
use plexus_kernel::{code, BoxFuture, Error, Evaluation, Kernel, Meter, Outcome, Terminal};
use plexus_net::Ticket;
use plexus_protocol::{
    encode_frame, CallResult, ClientFrame, FrameReader, NodeFrame, TermRequest, TermResponse,
    PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, Mutex as AsyncMutex, Notify};

use crate::verify::{Refusal, Verifier};

/// Bytes of replies a client may leave unread before the node stops reading its requests.
pub(crate) const MAX_UNREAD_REPLIES: u64 = 64 << 20;

/// The writing side of a client connection. Whoever has a frame writes it directly (no hop to
/// a writer task); a client that does not read makes the writers wait, which slows only its
/// own calls.
#[derive(Clone)]
struct Outbox {
    writer: Arc<AsyncMutex<Option<OwnedWriteHalf>>>,
    /// The connection's memory account: its calls' budgets are within it, and frames waiting
    /// to be written are charged to it.
    meter: Meter,
    /// Bytes of frames encoded and not yet written (the client is not reading them).
    unread: Arc<AtomicU64>,
    /// Told whenever a frame has been written (or dropped).
    written: Arc<Notify>,
}

impl Outbox {
    fn new(writer: OwnedWriteHalf, meter: Meter) -> Outbox {
        Outbox {
            writer: Arc::new(AsyncMutex::new(Some(writer))),
            meter,
            unread: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Writes one frame; fails once the connection is closed.
    async fn send(&self, frame: NodeFrame) -> Result<(), ()> {
        let mut buf = Vec::new();
        if let Err(e) = encode_frame(&frame, &mut buf) {
            tracing::warn!("dropping an unencodable frame: {e}");
            return Err(());
        }
        let bytes = buf.len() as u64;
        self.meter.force(bytes);
        self.unread.fetch_add(bytes, Ordering::Relaxed);
        let sent = self.write(&buf).await;
        drop(buf);
        self.meter.release(bytes);
        self.unread.fetch_sub(bytes, Ordering::Relaxed);
        self.written.notify_waiters();
        sent
    }

    async fn write(&self, buf: &[u8]) -> Result<(), ()> {
        let mut guard = self.writer.lock().await;
        let Some(w) = guard.as_mut() else {
            return Err(());
        };
        if w.write_all(buf).await.is_err() {
            *guard = None;
            return Err(());
        }
        Ok(())
    }

    /// Returns once fewer than [`MAX_UNREAD_REPLIES`] bytes wait for the client to read them.
    async fn room_for_replies(&self) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.unread.load(Ordering::Relaxed) < MAX_UNREAD_REPLIES {
                return;
            }
            written.await;
        }
    }

    /// Closes the writing side.
    async fn close(&self) {
        if let Some(mut w) = self.writer.lock().await.take() {
            let _ = w.shutdown().await;
        }
    }
}

/// State shared by all connections of a node.
pub(crate) struct Shared {
    pub(crate) kernel: Kernel,
    pub(crate) replay: Mutex<ReplayGuard>,
    /// Decoded keys of recent authors: a known author's key is not decompressed again.
    pub(crate) keys: Arc<KeyCache>,
    /// Checks the requests' signatures, in batches when several arrive at once.
    pub(crate) verifier: Arc<Verifier>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<TermResponse>>>>;

/// The terminal of a client session, reached through its connection.
struct RemoteTerminal {
    call: u64,
    outbox: Outbox,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

impl Terminal for RemoteTerminal {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>> {
        Box::pin(async move {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if let Ok(mut p) = self.pending.lock() {
                p.insert(id, tx);
            }
            let gone = || Error::new(code::TERMINAL, "the session's terminal went away");
            self.outbox
                .send(NodeFrame::Term {
                    id,
                    call: self.call,
                    request,
                })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        })
    }
}

/// Bytes a client connection's socket may hold on their way to the client: a few large
/// replies (file reads of 1 MiB), so that one is written in a few steps rather than in the
/// socket's default 208 KiB with a wake-up of each side at each (the kernel caps it at
/// `net.core.wmem_max`).
const SEND_BUFFER: usize = 4 << 20;

/// Gives `stream` room for [`SEND_BUFFER`] bytes in flight to the client.
pub(crate) fn size_send_buffer(stream: &tokio::net::UnixStream) {
    if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(stream, SEND_BUFFER) {
        tracing::debug!("cannot size a client socket's send buffer: {e}");
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn error_result(e: &Error) -> CallResult {
    CallResult::Error(plexus_units::encode(&e.to_unit()))
}

fn outcome_result(out: Outcome) -> CallResult {
    match out.and_then(|v| v.as_ref().map(encode_value).transpose()) {
        Ok(Some(bytes)) => CallResult::Value(bytes.into()),
        Ok(None) => CallResult::Nothing,
        Err(e) => error_result(&e),
    }
}

/// A call's value in binary form, or a `limit` error if no client or node could decode it
/// (beyond [`plexus_units::Limits::WIRE`]): a reply is always delivered.
pub(crate) fn encode_value(v: &plexus_units::Unit) -> Result<Vec<u8>, Error> {
    let bytes = plexus_units::encode(v);
    let limit = plexus_units::Limits::WIRE.max_size;
    if bytes.len() > limit {
        return Err(Error::new(
            code::LIMIT,
            format!(
                "the result takes {} bytes, more than a reply may carry ({limit})",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Turns a client away with a reason: the node serves as many as it may.
pub(crate) async fn turn_away(mut stream: UnixStream, reason: String) {
    let mut buf = Vec::new();
    // A few bytes into a new connection's empty buffer: the write does not wait.
    if encode_frame(&NodeFrame::Refused { reason }, &mut buf).is_ok() {
        let _ = stream.write_all(&buf).await;
    }
}

/// Serves one client until it disconnects. Until the client says Hello, its connection is
/// closed at `hello_by` or when `place` is evicted to make room for a newer connection.
pub(crate) async fn serve(
    stream: UnixStream,
    shared: Arc<Shared>,
    mut place: Ticket<()>,
    hello_by: tokio::time::Instant,
) {
    let (mut rd, wr) = stream.into_split();
    // The connection's calls share twice a message's budget: one message can use all of its
    // own while the replies of others wait to be read.
    let meter = Meter::new(shared.kernel.eval_memory().saturating_mul(2));
    let outbox = Outbox::new(wr, meter);

    let pending: Pending = Arc::default();
    let next_term = Arc::new(AtomicU64::new(1));
    let calls = Calls::default();
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut greeted = false;

    // Calls read together, started together: their signatures are checked as one batch.
    let mut arrived: Vec<Arrived> = Vec::new();
    'conn: loop {
        // A client that does not read its replies gets no more requests read.
        outbox.room_for_replies().await;
        let read = rd.read(&mut buf);
        let read = if greeted {
            read.await
        } else {
            tokio::select! {
                r = read => r,
                () = place.evicted() => {
                    tracing::debug!("closing a client connection without Hello to make room");
                    break;
                }
                () = tokio::time::sleep_until(hello_by) => {
                    tracing::debug!("closing a client connection that did not say Hello in time");
                    break;
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        reader.push(&buf[..n]);
        loop {
            let frame = match reader.next_frame::<ClientFrame>() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("closing a client connection: {e}");
                    break 'conn;
                }
            };
            if !matches!(frame, ClientFrame::Call { .. }) && !arrived.is_empty() {
                // Calls start before what follows them (a Cancel may name one).
                start_calls(&shared, &mut arrived, &outbox, &calls).await;
            }
            match frame {
                ClientFrame::Hello { version, client } => {
                    if version != PROTOCOL_VERSION {
                        let _ = outbox
                            .send(NodeFrame::Refused {
                                reason: format!(
                                    "protocol version {version} is not supported (this node speaks {PROTOCOL_VERSION}): use the same plx version for node and client"
                                ),
                            })
                            .await;
                        break 'conn;
                    }
                    if !place.authenticated() {
                        break 'conn;
                    }
                    tracing::debug!(client, "client connected");
                    greeted = true;
                    let node = shared.kernel.node();
                    let _ = outbox
                        .send(NodeFrame::Welcome {
                            version: PROTOCOL_VERSION,
                            node_id: node.id.clone(),
                            node_name: node.name.clone(),
                        })
                        .await;
                }
                _ if !greeted => break 'conn,
                ClientFrame::Call {
                    id,
                    message,
                    terminal,
                } => {
                    let session: Option<Arc<dyn Terminal>> = terminal.then(|| {
                        Arc::new(RemoteTerminal {
                            call: id,
                            outbox: outbox.clone(),
                            pending: pending.clone(),
                            next_id: next_term.clone(),
                        }) as Arc<dyn Terminal>
                    });
                    arrived.push(Arrived {
                        id,
                        message,
                        session,
                    });
                }
                ClientFrame::Cancel { id } => {
                    let task = calls.ids.lock().ok().and_then(|c| c.get(&id).copied());
                    if let Some(task) = task {
                        if let Ok(mut c) = calls.cancelled.lock() {
                            c.insert(id);
                        }
                        let _ = shared.kernel.kill(task);
                    }
                }
                ClientFrame::Term { id, response } => {
                    let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
                    if let Some(w) = waiter {
                        let _ = w.send(response);
                    }
                }
            }
        }
        start_calls(&shared, &mut arrived, &outbox, &calls).await;
    }
    // The client is gone: its calls can no longer be answered.
    let tasks: Vec<u64> = calls
        .ids
        .lock()
        .map(|c| c.values().copied().collect())
        .unwrap_or_default();
    for t in tasks {
        let _ = shared.kernel.kill(t);
    }
    outbox.close().await;
}

/// A call read from the connection, not started yet.
struct Arrived {
    id: u64,
    message: Vec<u8>,
    session: Option<Arc<dyn Terminal>>,
}

/// Most calls in flight on one connection; beyond that, calls are refused at once (answering
/// them waits for the client to read, which is the backpressure a flooding client gets).
pub(crate) const MAX_CALLS_IN_FLIGHT: usize = 1024;

/// Admits the calls of `arrived` (their signatures checked together) and starts each, or
/// answers it with why it was refused.
async fn start_calls(
    shared: &Arc<Shared>,
    arrived: &mut Vec<Arrived>,
    outbox: &Outbox,
    calls: &Calls,
) {
    let mut room = MAX_CALLS_IN_FLIGHT.saturating_sub(calls.in_flight.load(Ordering::Relaxed));
    let mut decoded = Vec::with_capacity(arrived.len());
    let mut kept = Vec::with_capacity(arrived.len());
    for call in arrived.drain(..) {
        if room == 0 {
            let e = Error::new(
                code::LIMIT,
                format!(
                    "too many calls in flight on this connection (at most {MAX_CALLS_IN_FLIGHT}): \
                     wait for replies before sending more"
                ),
            );
            refuse(outbox, call.id, &e).await;
            continue;
        }
        room -= 1;
        match SignedMessage::from_bytes_with(&call.message, &shared.keys) {
            Ok(msg) => {
                decoded.push(msg);
                kept.push(call);
            }
            Err(e) => {
                let e = Error::new("msg.bad", format!("malformed message: {e}"));
                refuse(outbox, call.id, &e).await;
            }
        }
    }
    let verified = shared.verifier.verify_all(decoded).await;
    for (call, verified) in kept.into_iter().zip(verified) {
        let id_taken = calls
            .ids
            .lock()
            .map(|ids| ids.contains_key(&call.id))
            .unwrap_or(false);
        match verified
            .map_err(|r| match r {
                Refusal::Invalid(e) => {
                    Error::new("msg.signature", format!("signature check failed: {e}"))
                }
                Refusal::Lost => Error::internal("the signature check was lost"),
            })
            .and_then(|msg| {
                if id_taken {
                    Err(Error::bad_argument(format!(
                        "call id {} is already in flight on this connection",
                        call.id
                    )))
                } else {
                    not_replayed(shared, msg)
                }
            }) {
            Ok((msg, hash)) => {
                start_call(shared, call.id, (msg, hash), call.session, outbox, calls)
            }
            Err(e) => refuse(outbox, call.id, &e).await,
        }
    }
}

async fn refuse(outbox: &Outbox, id: u64, e: &Error) {
    let reply = NodeFrame::Reply {
        id,
        result: error_result(e),
    };
    let _ = outbox.send(reply).await;
}

/// A verified message and its hash, unless it is a replay.
fn not_replayed(shared: &Shared, msg: SignedMessage) -> Result<(SignedMessage, [u8; 32]), Error> {
    let mut guard = shared
        .replay
        .lock()
        .map_err(|_| Error::internal("replay guard poisoned"))?;
    let hash = msg.hash();
    guard
        .check(&hash, msg.time_ms(), now_ms())
        .map_err(|e| Error::new(code::REPLAYED, e.to_string()))?;
    drop(guard);
    Ok((msg, hash))
}

fn start_call(
    shared: &Arc<Shared>,
    id: u64,
    (msg, hash): (SignedMessage, [u8; 32]),
    session: Option<Arc<dyn Terminal>>,
    outbox: &Outbox,
    calls: &Calls,
) {
    let author = msg.author();
    let signature = *msg.signature();
    let evaluation = Evaluation {
        time_ms: msg.time_ms(),
        id: rand::random(),
    };
    let body = msg.into_body();
    let kernel = shared.kernel.clone();
    let meter = outbox.meter.within(kernel.eval_memory());
    let guard = ReplyGuard {
        id,
        outbox: outbox.clone(),
        calls: calls.clone(),
        meter: meter.clone(),
        sent: false,
    };
    calls.in_flight.fetch_add(1, Ordering::Relaxed);
    let ids = calls.ids.clone();
    // The call's own task sends its reply: no extra task hop per call. The call is recorded
    // before its task can run (so a quick call cannot end before it is recorded, which would
    // leave it recorded for ever).
    shared.kernel.spawn_task(None, "msg", author, move |task| {
        if let Ok(mut c) = ids.lock() {
            c.insert(id, task);
        }
        async move {
            let mut guard = guard;
            let cx = kernel
                .context_metered(author, hash, session, task, meter)
                .with_root_signature(signature)
                .with_evaluation(evaluation);
            let out = cx.run(body).await;
            guard.forget_call();
            let result = outcome_result(out);
            // The call's units are gone; its reply is charged while it waits to be read.
            guard.release_budget();
            let _ = guard.outbox.send(NodeFrame::Reply { id, result }).await;
            guard.sent = true;
            Ok(None)
        }
    });
}

/// Answers a call whose task was stopped before it could answer (killed or cancelled), and
/// counts the call out of its connection's calls in flight however it ends.
struct ReplyGuard {
    id: u64,
    outbox: Outbox,
    calls: Calls,
    /// The call's memory budget, within the connection's.
    meter: Meter,
    sent: bool,
}

/// A connection's calls in flight.
#[derive(Clone, Default)]
struct Calls {
    /// Call id → the id of the task running it.
    ids: Arc<Mutex<HashMap<u64, u64>>>,
    /// Calls asked to stop by the client (their reply says `cancelled`, not `killed`).
    cancelled: Arc<Mutex<HashSet<u64>>>,
    /// Calls started and not yet ended (counted apart from `ids`, which a client could keep
    /// small by reusing an id).
    in_flight: Arc<AtomicUsize>,
}

impl ReplyGuard {
    fn release_budget(&self) {
        self.meter.release(self.meter.used());
    }

    fn forget_call(&self) {
        if let Ok(mut c) = self.calls.ids.lock() {
            c.remove(&self.id);
        }
    }
}

impl Drop for ReplyGuard {
    fn drop(&mut self) {
        self.calls.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.release_budget();
        if self.sent {
            return;
        }
        self.forget_call();
        let was_cancelled = self
            .calls
            .cancelled
            .lock()
            .map(|mut c| c.remove(&self.id))
            .unwrap_or(false);
        let e = if was_cancelled {
            Error::new(code::CANCELLED, "cancelled by the caller")
        } else {
            Error::new(code::KILLED, "the call's task was killed")
        };
        let frame = NodeFrame::Reply {
            id: self.id,
            result: error_result(&e),
        };
        let outbox = self.outbox.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = outbox.send(frame).await;
            });
        }
    }
}
