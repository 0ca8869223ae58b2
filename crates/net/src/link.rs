//! Links: ordered, reliable streams of frames between two authenticated nodes.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use plexus_identity::PublicKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame::{
    encode, header, FrameDecoder, FrameTooLarge, Hello, OutFrame, DEFAULT_MAX_FRAME, HEADER_LEN,
    LINK_VERSION,
};
use crate::tls::map_io_error;
use crate::NetError;

/// Settings shared by the links of a transport.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Largest frame this node accepts (announced to peers in the hello frame).
    pub max_frame: usize,
    /// Frames queued for sending (and received but not yet taken) per link before `send`
    /// waits: a slow peer slows its senders instead of exhausting memory.
    pub queue: usize,
    /// Small frames queued together are written in one write of at most this many bytes.
    pub batch_bytes: usize,
    /// Longest time for connecting, the TLS handshake and the hello exchange.
    pub handshake_timeout: Duration,
    /// Longest time an accepted connection may take to authenticate (the TLS handshake and
    /// the hello exchange): shorter than `handshake_timeout`, so that connections that never
    /// authenticate do not stay long.
    pub accept_timeout: Duration,
    /// Accepted connections that have not authenticated yet, at most. At the limit, the
    /// oldest of them is dropped to make room for a new one.
    pub max_unauthenticated: usize,
    /// The same, for the connections from one IP address.
    pub max_unauthenticated_per_source: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            max_frame: DEFAULT_MAX_FRAME,
            queue: 1024,
            batch_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            accept_timeout: Duration::from_secs(3),
            max_unauthenticated: 256,
            max_unauthenticated_per_source: 32,
        }
    }
}

/// Who is at the other end of a link, as established by its handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node key, proven during the handshake.
    pub key: PublicKey,
    /// The node name the peer announced (informative: the key is what authenticates).
    pub name: String,
    /// The largest frame the peer accepts.
    pub max_frame: usize,
    /// The peer's address, as text.
    pub addr: String,
}

type CloseReason = Arc<Mutex<Option<NetError>>>;

/// The sending half of a [`Link`]. Clone it to send from many tasks (calls multiplexed on
/// one link); frames from one sender arrive in the order sent.
#[derive(Clone, Debug)]
pub struct LinkSender {
    tx: mpsc::Sender<OutFrame>,
    peer: Arc<PeerInfo>,
}

impl LinkSender {
    /// Queues one frame. Waits while the queue is full; fails at once for a frame larger
    /// than the peer accepts, or when the link is closed.
    pub async fn send(&self, frame: impl Into<OutFrame>) -> Result<(), NetError> {
        let frame = frame.into();
        if frame.len() > self.peer.max_frame {
            return Err(NetError::FrameTooLarge {
                len: frame.len(),
                max: self.peer.max_frame,
            });
        }
        self.tx.send(frame).await.map_err(|_| NetError::Closed)
    }

    /// Queues one frame if the queue has room, without waiting: fails with
    /// [`NetError::QueueFull`] when it has none, and as [`LinkSender::send`] does otherwise.
    pub fn try_send(&self, frame: impl Into<OutFrame>) -> Result<(), NetError> {
        let frame = frame.into();
        if frame.len() > self.peer.max_frame {
            return Err(NetError::FrameTooLarge {
                len: frame.len(),
                max: self.peer.max_frame,
            });
        }
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => NetError::Closed,
        })
    }

    /// The peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Whether the link is closed for sending.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving half of a [`Link`].
#[derive(Debug)]
pub struct LinkReceiver {
    rx: mpsc::Receiver<Result<Bytes, NetError>>,
    reason: CloseReason,
    done: bool,
}

impl LinkReceiver {
    /// The next frame, `None` once the link is closed (see [`LinkReceiver::close_reason`]).
    pub async fn recv(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(Ok(frame)) => Some(frame),
            Some(Err(e)) => {
                self.done = true;
                if let Ok(mut r) = self.reason.lock() {
                    r.get_or_insert(e);
                }
                None
            }
            None => {
                self.done = true;
                None
            }
        }
    }

    /// Why the link closed, once [`LinkReceiver::recv`] returned `None`: `None` for an
    /// orderly close by the peer, else the error that broke it.
    pub fn close_reason(&self) -> Option<String> {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|e| e.to_string()))
    }
}

/// A link to another node: a bidirectional, ordered, reliable stream of frames, each at most
/// the receiver's frame limit. Dropping both halves closes it.
///
/// Frames are opaque bytes: multiplexing calls (an id in each frame) and message encodings
/// belong to the layers above. Frames queued while the writer is busy are written together
/// in one write, so many small frames cost few system calls and TLS records.
#[derive(Debug)]
pub struct Link {
    sender: LinkSender,
    receiver: LinkReceiver,
}

impl Link {
    /// The peer, as authenticated by the handshake.
    pub fn peer(&self) -> &PeerInfo {
        self.sender.peer()
    }

    /// Queues one frame (see [`LinkSender::send`]).
    pub async fn send(&self, frame: impl Into<OutFrame>) -> Result<(), NetError> {
        self.sender.send(frame).await
    }

    /// The next frame, `None` once the link is closed.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.receiver.recv().await
    }

    /// Why the link closed (see [`LinkReceiver::close_reason`]).
    pub fn close_reason(&self) -> Option<String> {
        self.receiver.close_reason()
    }

    /// A sender that can be cloned into many tasks.
    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// The two halves, to send and receive from different tasks.
    pub fn split(self) -> (LinkSender, LinkReceiver) {
        (self.sender, self.receiver)
    }

    /// A link made of channels: frames given to the returned link's senders come out of the
    /// first receiver; frames (or a closing error) pushed into the second sender come out of
    /// the link's receiver. Used by in-memory transports.
    pub(crate) fn from_channels(
        peer: PeerInfo,
        queue: usize,
    ) -> (
        Link,
        mpsc::Receiver<OutFrame>,
        mpsc::Sender<Result<Bytes, NetError>>,
    ) {
        let (out_tx, out_rx) = mpsc::channel(queue.max(1));
        let (in_tx, in_rx) = mpsc::channel(queue.max(1));
        let link = Link {
            sender: LinkSender {
                tx: out_tx,
                peer: Arc::new(peer),
            },
            receiver: LinkReceiver {
                rx: in_rx,
                reason: CloseReason::default(),
                done: false,
            },
        };
        (link, out_rx, in_tx)
    }
}

/// Exchanges hello frames on a fresh, authenticated stream: sends ours, reads the peer's.
/// Returns the peer's hello and the bytes read past it.
pub(crate) async fn exchange_hello<S>(
    stream: &mut S,
    name: &str,
    config: &LinkConfig,
) -> Result<(Hello, FrameDecoder), NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours = Hello {
        version: LINK_VERSION,
        max_frame: config.max_frame.min(u32::MAX as usize) as u32,
        name: name.to_owned(),
    };
    let mut wire = Vec::new();
    encode(&ours.encode(), usize::MAX, &mut wire)?;
    stream.write_all(&wire).await.map_err(map_io_error)?;
    stream.flush().await.map_err(map_io_error)?;
    // A hello is small whatever our frame limit: refuse a huge first frame early.
    let mut decoder = FrameDecoder::new(4096);
    let hello = loop {
        if let Some(frame) = decoder.next_frame()? {
            break Hello::decode(&frame)?;
        }
        let n = stream
            .read_buf(decoder.buffer())
            .await
            .map_err(map_io_error)?;
        if n == 0 {
            return Err(NetError::Closed);
        }
    };
    let mut rest = FrameDecoder::new(config.max_frame);
    let pending = decoder.buffer().split();
    rest.push(&pending);
    Ok((hello, rest))
}

/// What the stream links of this process carried since it started: every mesh of a process
/// counts here (a node runs one), for its metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes written to links, frame headers included (before encryption).
    pub bytes_out: u64,
    /// Bytes read from links (after decryption).
    pub bytes_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Frames read.
    pub frames_in: u64,
}

static BYTES_OUT: AtomicU64 = AtomicU64::new(0);
static BYTES_IN: AtomicU64 = AtomicU64::new(0);
static FRAMES_OUT: AtomicU64 = AtomicU64::new(0);
static FRAMES_IN: AtomicU64 = AtomicU64::new(0);

/// The [`Traffic`] of this process's links so far.
pub fn traffic() -> Traffic {
    Traffic {
        bytes_out: BYTES_OUT.load(Ordering::Relaxed),
        bytes_in: BYTES_IN.load(Ordering::Relaxed),
        frames_out: FRAMES_OUT.load(Ordering::Relaxed),
        frames_in: FRAMES_IN.load(Ordering::Relaxed),
    }
}

/// Runs a link over a byte stream whose handshake is done: one task writes queued frames
/// (coalescing them), one reads frames.
pub(crate) fn spawn_stream_link<S>(
    stream: S,
    peer: PeerInfo,
    decoder: FrameDecoder,
    config: &LinkConfig,
) -> Link
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (link, out_rx, in_tx) = Link::from_channels(peer, config.queue);
    let (rd, wr) = tokio::io::split(stream);
    tokio::spawn(write_loop(wr, out_rx, config.batch_bytes));
    tokio::spawn(read_loop(rd, in_tx, decoder));
    link
}

/// After this many yields in a row that found nothing to add, a link yields before one write
/// in 2^this (64).
const MAX_COALESCE_BACKOFF: u32 = 6;

/// Parts of a frame at least this long are written from where they are; shorter ones are
/// copied into the batch, which costs less than a slice of their own.
const BORROWED_PART_MIN: usize = 4096;

/// The most slices handed to one vectored write.
const MAX_SLICES: usize = 64;

async fn write_loop<W>(mut wr: W, mut out_rx: mpsc::Receiver<OutFrame>, batch_bytes: usize)
where
    W: AsyncWrite + Unpin,
{
    let mut batch = Batch::default();
    // Yielding before a write (see below) pays on a busy link only: after a yield that found
    // nothing to add, the next `skip` writes go without, `skip` doubling with each such yield.
    let mut skip = 0u32;
    let mut misses = 0u32;
    'link: while let Some(first) = out_rx.recv().await {
        let mut next = Some(first);
        let mut yielded = false;
        loop {
            let Some(frame) = next else {
                // Let the tasks that are ready run once before writing: those about to send
                // (the other calls in flight on a busy link) then share this write, its TLS
                // record and its system call.
                if yielded || batch.len() >= batch_bytes {
                    break;
                }
                if skip > 0 {
                    skip -= 1;
                    break;
                }
                yielded = true;
                tokio::task::yield_now().await;
                next = out_rx.try_recv().ok();
                if next.is_none() {
                    misses = (misses + 1).min(MAX_COALESCE_BACKOFF);
                    skip = (1u32 << misses) - 1;
                    break;
                }
                misses = 0;
                continue;
            };
            // Sizes were checked by the sender against the peer's limit.
            if batch.add(frame).is_err() {
                break 'link;
            }
            next = if batch.len() < batch_bytes {
                out_rx.try_recv().ok()
            } else {
                None
            };
        }
        if batch.write_to(&mut wr).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    // Every sender is gone (or the stream broke): close our direction in order.
    let _ = wr.shutdown().await;
}

/// Frames gathered for one vectored write: each frame's header and its short parts copied
/// together, its long parts (a pipe's chunk) held where they are.
#[derive(Default)]
struct Batch {
    /// What to write, in order, but for `short`.
    pieces: VecDeque<Bytes>,
    /// Short parts since the last long one.
    short: BytesMut,
    len: usize,
    /// Frames in it.
    frames: u64,
}

impl Batch {
    fn len(&self) -> usize {
        self.len
    }

    fn add(&mut self, frame: OutFrame) -> Result<(), FrameTooLarge> {
        self.short
            .extend_from_slice(&header(frame.len(), usize::MAX)?);
        self.len += HEADER_LEN + frame.len();
        self.frames += 1;
        for part in frame.parts() {
            if part.len() >= BORROWED_PART_MIN {
                self.seal();
                self.pieces.push_back(part.clone());
            } else {
                self.short.extend_from_slice(part);
            }
        }
        Ok(())
    }

    /// Ends the run of short parts.
    fn seal(&mut self) {
        if !self.short.is_empty() {
            self.pieces.push_back(self.short.split().freeze());
        }
    }

    /// Writes everything gathered, in as few vectored writes as the writer takes.
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<()> {
        self.seal();
        while !self.pieces.is_empty() {
            let written = {
                let slices: Vec<IoSlice<'_>> = self
                    .pieces
                    .iter()
                    .take(MAX_SLICES)
                    .map(|p| IoSlice::new(p))
                    .collect();
                wr.write_vectored(&slices).await?
            };
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.consume(written);
        }
        BYTES_OUT.fetch_add(self.len as u64, Ordering::Relaxed);
        FRAMES_OUT.fetch_add(self.frames, Ordering::Relaxed);
        self.len = 0;
        self.frames = 0;
        Ok(())
    }

    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.pieces.pop_front();
        }
    }
}

async fn read_loop<R>(
    mut rd: R,
    in_tx: mpsc::Sender<Result<Bytes, NetError>>,
    mut decoder: FrameDecoder,
) where
    R: AsyncRead + Unpin,
{
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    BYTES_IN.fetch_add((HEADER_LEN + frame.len()) as u64, Ordering::Relaxed);
                    FRAMES_IN.fetch_add(1, Ordering::Relaxed);
                    if in_tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = in_tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
        let read = tokio::select! {
            r = rd.read_buf(decoder.buffer()) => r,
            // The receiver was dropped: nobody wants more frames.
            _ = in_tx.closed() => return,
        };
        match read {
            Ok(0) => {
                if decoder.pending() > 0 {
                    let _ = in_tx
                        .send(Err(NetError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the link closed in the middle of a frame",
                        ))))
                        .await;
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = in_tx.send(Err(map_io_error(e))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A writer that takes at most `most` bytes a call, from as many slices as that spans.
    struct Trickle {
        got: Vec<u8>,
        most: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = self.most;
            for buf in bufs {
                let n = buf.len().min(left);
                self.got.extend_from_slice(&buf[..n]);
                left -= n;
            }
            Poll::Ready(Ok(self.most - left))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Whatever the writer takes per call, a batch writes each frame's header and parts once,
    /// in order, long parts and short ones alike.
    #[tokio::test]
    async fn a_batch_is_written_whole_through_partial_writes() {
        let part = |n: usize, seed: u8| Bytes::from(vec![seed; n]);
        let frames = [
            vec![part(3, 1), part(BORROWED_PART_MIN, 2), part(10, 3)],
            vec![],
            vec![
                part(BORROWED_PART_MIN * 3 + 1, 4),
                part(BORROWED_PART_MIN - 1, 5),
            ],
        ];
        let mut want = Vec::new();
        for parts in &frames {
            let len: usize = parts.iter().map(Bytes::len).sum();
            want.extend_from_slice(&(len as u32).to_le_bytes());
            for p in parts {
                want.extend_from_slice(p);
            }
        }
        for most in [1, 7, 4096, 5000, 1 << 20] {
            let mut batch = Batch::default();
            for parts in &frames {
                batch.add(OutFrame::from_parts(parts.clone())).unwrap();
            }
            assert_eq!(batch.len(), want.len());
            let mut out = Trickle {
                got: Vec::new(),
                most,
            };
            batch.write_to(&mut out).await.unwrap();
            assert_eq!(out.got, want, "{most} bytes a write");
            assert_eq!(batch.len(), 0);
        }
    }
}
