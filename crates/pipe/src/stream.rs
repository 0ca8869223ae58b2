//! One pipe: a byte stream from a [`Sender`] to a [`Receiver`] with credit, retransmission,
//! end of stream and reset.
//!
//! Bytes are numbered by their offset in the stream, as in TCP. The receiver grants credit as
//! a *limit*: the sender may send bytes below it and no others. The limit is what the consumer
//! has taken plus the window, so the bytes between the two ends (sent and not yet taken) never
//! exceed the window, whatever the transport does. The sender keeps every byte it sent until
//! an [`Ack`] says the receiver has it, and sends it again when the transport says a frame was
//! lost or when no acknowledgement came for a while; the receiver puts frames back in order
//! and drops what it already has, so a transport that loses, repeats or reorders frames still
//! gives the consumer every byte once, in order.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Settings both ends of a pipe agree on when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bytes that may be in flight: sent by the producer's end and not yet taken by the
    /// consumer. The memory a pipe holds at each end is bounded by it.
    pub window: u64,
    /// The most bytes in one data frame.
    pub max_frame: usize,
    /// Milliseconds without an acknowledgement after which unacknowledged bytes are sent again.
    pub retransmit_ms: u64,
}

impl Default for Config {
    /// A 1 MiB window, 256 KiB frames, retransmission after 1 s.
    fn default() -> Config {
        Config {
            window: 1 << 20,
            max_frame: 256 << 10,
            retransmit_ms: 1000,
        }
    }
}

/// What the producer's end sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes of the stream from `offset`.
    Data {
        /// Offset of the first byte.
        offset: u64,
        /// The bytes; never empty.
        bytes: Bytes,
    },
    /// The stream ends after `offset` bytes.
    Eof {
        /// Length of the whole stream.
        offset: u64,
    },
    /// The producer's end gave up: the consumer's input ends with an error.
    Reset {
        /// Why, for people.
        reason: String,
    },
}

/// What the consumer's end answers to every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Bytes received in order: the sender need not send them again.
    pub received: u64,
    /// Bytes the consumer has taken: the sender may forget them.
    pub taken: u64,
    /// The sender may send bytes below this offset.
    pub limit: u64,
    /// The state of the consumer's end.
    pub state: AckState,
}

/// The consumer end's state, as an [`Ack`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// Taking bytes.
    Open,
    /// Every byte up to the end of the stream was taken.
    Finished,
    /// The consumer is gone (it exited or closed its input): send nothing more.
    Closed,
}

/// A frame that breaks the protocol: the peer is broken or hostile, and the pipe ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Data beyond the credit granted.
    #[error("data up to offset {end} beyond the credit granted (limit {limit})")]
    BeyondCredit {
        /// End of the frame's bytes.
        end: u64,
        /// The limit granted.
        limit: u64,
    },
    /// An empty data frame.
    #[error("an empty data frame")]
    Empty,
    /// Two different ends of the stream, or data after it.
    #[error("the stream's end moved: {first} then {second}")]
    EndMoved {
        /// The first end known.
        first: u64,
        /// The contradicting one.
        second: u64,
    },
    /// An acknowledgement of bytes never sent, or of more taken than received.
    #[error("an acknowledgement of {received} bytes when {sent} were sent")]
    BadAck {
        /// Bytes acknowledged.
        received: u64,
        /// Bytes sent.
        sent: u64,
    },
}

/// The state of a pipe's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Carrying bytes.
    Open,
    /// Ended well: every byte reached the consumer, and it saw the end.
    Finished,
    /// The consumer is gone (the producer should get `EPIPE`).
    Closed,
    /// Ended with an error.
    Failed(String),
}

/// The producer's end of a pipe.
#[derive(Debug)]
pub struct Sender {
    config: Config,
    /// Bytes from `taken` to `pushed`, oldest first.
    unacked: VecDeque<Bytes>,
    /// Bytes the consumer has taken (acknowledged): the offset of `unacked`'s first byte.
    taken: u64,
    /// Bytes the receiver has in order.
    received: u64,
    /// Bytes sent at least once.
    sent: u64,
    /// The next byte to send (below `sent` while sending again).
    next: u64,
    /// Bytes pushed by the producer.
    pushed: u64,
    /// The credit limit granted.
    limit: u64,
    /// The producer has no more bytes.
    finishing: bool,
    /// The end of stream was sent and not yet acknowledged.
    eof_sent: bool,
    state: State,
    /// When the oldest unacknowledged frame was sent, or progress last acknowledged.
    last_progress: u64,
    /// A reset to send.
    reset: Option<String>,
}

impl Sender {
    /// A new producer's end; the receiver's first grant is the window.
    pub fn new(config: Config) -> Sender {
        Sender {
            config,
            unacked: VecDeque::new(),
            taken: 0,
            received: 0,
            sent: 0,
            next: 0,
            pushed: 0,
            limit: config.window,
            finishing: false,
            eof_sent: false,
            state: State::Open,
            last_progress: 0,
            reset: None,
        }
    }

    /// Bytes the producer may push now: what the window has room for.
    pub fn credit(&self) -> u64 {
        if self.state != State::Open || self.finishing {
            return 0;
        }
        (self.taken + self.config.window).saturating_sub(self.pushed)
    }

    /// Takes as many of `data`'s bytes as the credit allows (splitting them off its front) and
    /// returns how many.
    pub fn push(&mut self, data: &mut Bytes) -> usize {
        let n = usize::try_from(self.credit())
            .unwrap_or(usize::MAX)
            .min(data.len());
        if n > 0 {
            self.unacked.push_back(data.split_to(n));
            self.pushed += n as u64;
        }
        n
    }

    /// The producer has no more bytes: the end of the stream follows the last one.
    pub fn finish(&mut self) {
        self.finishing = true;
    }

    /// The producer's end gives up with `reason`: the consumer's input ends with an error.
    pub fn reset(&mut self, reason: impl Into<String>) {
        if self.state == State::Open {
            let reason = reason.into();
            self.state = State::Failed(reason.clone());
            self.reset = Some(reason);
            self.unacked.clear();
        }
    }

    /// The next frame to send at time `now` (milliseconds), if any.
    pub fn poll_transmit(&mut self, now: u64) -> Option<Frame> {
        if let Some(reason) = self.reset.take() {
            return Some(Frame::Reset { reason });
        }
        if self.state != State::Open {
            return None;
        }
        let end = self.pushed.min(self.limit);
        if self.next < end {
            let len = (end - self.next).min(self.config.max_frame as u64);
            let bytes = self.bytes_at(self.next, len as usize);
            if self.received == self.sent || self.next == self.received {
                self.last_progress = now;
            }
            let offset = self.next;
            self.next += bytes.len() as u64;
            self.sent = self.sent.max(self.next);
            return Some(Frame::Data { offset, bytes });
        }
        if self.finishing && self.next == self.pushed && !self.eof_sent {
            self.eof_sent = true;
            if self.received == self.pushed {
                self.last_progress = now;
            }
            return Some(Frame::Eof {
                offset: self.pushed,
            });
        }
        None
    }

    /// `len` bytes from `offset`, which lie between `taken` and `pushed`.
    fn bytes_at(&self, offset: u64, len: usize) -> Bytes {
        let mut skip = offset - self.taken;
        for chunk in &self.unacked {
            let size = chunk.len() as u64;
            if skip < size {
                let start = skip as usize;
                let stop = (start + len).min(chunk.len());
                return chunk.slice(start..stop);
            }
            skip -= size;
        }
        Bytes::new()
    }

    /// An acknowledgement arrived at `now`.
    pub fn on_ack(&mut self, ack: &Ack, now: u64) -> Result<(), ProtocolError> {
        if ack.received > self.sent || ack.taken > ack.received || ack.limit < ack.taken {
            return Err(ProtocolError::BadAck {
                received: ack.received,
                sent: self.sent,
            });
        }
        if self.state != State::Open {
            return Ok(());
        }
        if ack.taken > self.taken {
            let mut drop = ack.taken - self.taken;
            while drop > 0 {
                let Some(front) = self.unacked.front_mut() else {
                    break;
                };
                let size = front.len() as u64;
                if size <= drop {
                    drop -= size;
                    self.unacked.pop_front();
                } else {
                    let _ = front.split_to(drop as usize);
                    drop = 0;
                }
            }
            self.taken = ack.taken;
        }
        if ack.received > self.received {
            self.received = ack.received;
            self.next = self.next.max(self.received);
            self.last_progress = now;
        }
        self.limit = self.limit.max(ack.limit);
        match ack.state {
            AckState::Open => {}
            AckState::Finished => {
                if self.finishing && self.taken == self.pushed {
                    self.state = State::Finished;
                }
            }
            AckState::Closed => {
                self.state = State::Closed;
                self.unacked.clear();
            }
        }
        Ok(())
    }

    /// The consumer's end was made again (its process restarted, or moved to another node):
    /// everything the consumer had not taken is sent again, from [`Sender::taken`], to a
    /// receiver that starts there ([`Receiver::starting_at`]).
    pub fn relink(&mut self) {
        if self.state == State::Open {
            self.received = self.taken;
            self.sent = self.taken;
            self.next = self.taken;
            self.limit = self.taken + self.config.window;
            self.eof_sent = false;
        }
    }

    /// The consumer is gone for good (it ended before it took the pipe): the producer
    /// should get `EPIPE`.
    pub fn close(&mut self) {
        if self.state == State::Open {
            self.state = State::Closed;
            self.unacked.clear();
        }
    }

    /// Nothing more to send: the pipe ended and any reset went out.
    pub fn is_quiet(&self) -> bool {
        self.state != State::Open && self.reset.is_none()
    }

    /// The transport lost a frame (a call failed): what was not acknowledged goes again.
    pub fn on_lost(&mut self) {
        self.next = self.received;
        self.eof_sent = false;
    }

    /// When [`Sender::handle_timeout`] should next be called, if anything waits for an
    /// acknowledgement.
    pub fn poll_timeout(&self) -> Option<u64> {
        let waiting = self.sent > self.received || (self.eof_sent && self.state == State::Open);
        (waiting && self.state == State::Open)
            .then(|| self.last_progress + self.config.retransmit_ms)
    }

    /// Time passed: when nothing was acknowledged for the retransmission time, what was not
    /// acknowledged goes again.
    pub fn handle_timeout(&mut self, now: u64) {
        if let Some(at) = self.poll_timeout() {
            if now >= at {
                self.on_lost();
                self.last_progress = now;
            }
        }
    }

    /// The state of this end.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Bytes held for the consumer (pushed and not yet acknowledged).
    pub fn buffered(&self) -> u64 {
        self.pushed - self.taken
    }

    /// Bytes pushed by the producer.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Bytes the consumer has taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

/// The consumer's end of a pipe.
#[derive(Debug)]
pub struct Receiver {
    config: Config,
    /// Bytes handed to the consumer by [`Receiver::read`].
    read: u64,
    /// Bytes the consumer has taken for good ([`Receiver::release`]).
    taken: u64,
    /// Frames after a gap, by offset, each starting after `ready_end`.
    later: BTreeMap<u64, Bytes>,
    /// Bytes in `later`: with `ready`, at most the window (a frame that would pass it is
    /// dropped, and sent again).
    later_bytes: u64,
    /// In-order bytes not yet read.
    ready: VecDeque<Bytes>,
    /// Offset just past `ready`.
    ready_end: u64,
    /// The stream's length, once known.
    end: Option<u64>,
    state: State,
}

impl Receiver {
    /// A new consumer's end.
    pub fn new(config: Config) -> Receiver {
        Receiver {
            config,
            read: 0,
            taken: 0,
            later: BTreeMap::new(),
            later_bytes: 0,
            ready: VecDeque::new(),
            ready_end: 0,
            end: None,
            state: State::Open,
        }
    }

    /// A consumer's end whose stream starts at `offset`: the producer's end was there when
    /// this end was made ([`Sender::relink`]).
    pub fn starting_at(config: Config, offset: u64) -> Receiver {
        Receiver {
            read: offset,
            taken: offset,
            ready_end: offset,
            ..Receiver::new(config)
        }
    }

    /// The credit limit this end grants.
    pub fn limit(&self) -> u64 {
        self.taken + self.config.window
    }

    /// A frame arrived. A frame that breaks the protocol fails the pipe (the error is also
    /// its state).
    pub fn on_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        if self.state != State::Open {
            return Ok(());
        }
        let checked = self.take_frame(frame);
        if let Err(e) = &checked {
            self.fail(e.to_string());
        }
        checked
    }

    fn take_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        match frame {
            Frame::Reset { reason } => {
                self.fail(format!("the producer's end was reset: {reason}"));
                Ok(())
            }
            Frame::Eof { offset } => {
                if let Some(first) = self.end.filter(|&e| e != offset) {
                    return Err(ProtocolError::EndMoved {
                        first,
                        second: offset,
                    });
                }
                let later_end = self.later.iter().map(|(o, b)| o + b.len() as u64).max();
                if offset < self.ready_end
                    || offset > self.limit()
                    || later_end.is_some_and(|e| e > offset)
                {
                    return Err(ProtocolError::EndMoved {
                        first: self.ready_end,
                        second: offset,
                    });
                }
                self.end = Some(offset);
                self.check_finished();
                Ok(())
            }
            Frame::Data { offset, mut bytes } => {
                if bytes.is_empty() {
                    return Err(ProtocolError::Empty);
                }
                let frame_end = offset + bytes.len() as u64;
                if frame_end > self.limit() {
                    return Err(ProtocolError::BeyondCredit {
                        end: frame_end,
                        limit: self.limit(),
                    });
                }
                if let Some(end) = self.end.filter(|&e| frame_end > e) {
                    return Err(ProtocolError::EndMoved {
                        first: end,
                        second: frame_end,
                    });
                }
                if frame_end <= self.ready_end {
                    return Ok(()); // all of it was had before
                }
                if offset > self.ready_end {
                    // After a gap: keep it (bounded by the credit) unless a longer frame from
                    // the same offset is kept already.
                    let had = self.later.get(&offset).map_or(0, |k| k.len() as u64);
                    let len = bytes.len() as u64;
                    if len > had && self.later_bytes - had + len <= self.limit() - self.ready_end {
                        self.later.insert(offset, bytes);
                        self.later_bytes = self.later_bytes - had + len;
                    }
                    return Ok(());
                }
                let _ = bytes.split_to((self.ready_end - offset) as usize);
                self.append(bytes);
                self.drain_later();
                self.trim_later();
                self.check_finished();
                Ok(())
            }
        }
    }

    fn append(&mut self, bytes: Bytes) {
        self.ready_end += bytes.len() as u64;
        self.ready.push_back(bytes);
    }

    /// Moves frames that now follow on from `later` into `ready`.
    fn drain_later(&mut self) {
        while let Some((&offset, _)) = self.later.first_key_value() {
            if offset > self.ready_end {
                break;
            }
            let Some((offset, mut bytes)) = self.later.pop_first() else {
                break;
            };
            self.later_bytes -= bytes.len() as u64;
            let end = offset + bytes.len() as u64;
            if end > self.ready_end {
                let _ = bytes.split_to((self.ready_end - offset) as usize);
                self.append(bytes);
            }
        }
    }

    /// Keeps what this end holds within the window: frames kept after a gap that overlap
    /// may count more than the bytes they cover, so once in-order bytes arrive the furthest
    /// are dropped (the producer's end sends them again).
    fn trim_later(&mut self) {
        while self.ready_end - self.taken + self.later_bytes > self.config.window {
            let Some((_, dropped)) = self.later.pop_last() else {
                break;
            };
            self.later_bytes -= dropped.len() as u64;
        }
    }

    fn check_finished(&mut self) {
        if self.end == Some(self.taken) && self.state == State::Open {
            self.state = State::Finished;
        }
    }

    /// The next in-order bytes for the consumer.
    pub fn read(&mut self) -> Option<Bytes> {
        let bytes = self.ready.pop_front()?;
        self.read += bytes.len() as u64;
        Some(bytes)
    }

    /// The consumer took `n` more of the bytes read (wrote them to the program): that much
    /// credit opens again.
    pub fn release(&mut self, n: u64) {
        self.taken = (self.taken + n).min(self.read);
        self.check_finished();
    }

    /// Every byte of the stream has been read: the consumer's input may close once the bytes
    /// read were written.
    pub fn at_end(&self) -> bool {
        self.end == Some(self.read)
    }

    /// The consumer is gone: the producer is told to stop.
    pub fn close(&mut self) {
        if self.state == State::Open {
            self.state = State::Closed;
            self.ready.clear();
            self.later.clear();
            self.later_bytes = 0;
        }
    }

    /// The pipe failed (a broken frame, the producer's end reset, or its node lost).
    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.state == State::Open {
            self.state = State::Failed(reason.into());
            self.ready.clear();
            self.later.clear();
            self.later_bytes = 0;
        }
    }

    /// The acknowledgement for the producer's end.
    pub fn ack(&self) -> Ack {
        Ack {
            received: self.ready_end,
            taken: self.taken,
            limit: self.limit(),
            state: match self.state {
                State::Open => AckState::Open,
                State::Finished => AckState::Finished,
                State::Closed | State::Failed(_) => AckState::Closed,
            },
        }
    }

    /// The state of this end.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Bytes held: received and not yet taken by the consumer.
    pub fn buffered(&self) -> u64 {
        self.ready_end - self.taken + self.later_bytes
    }

    /// Bytes the consumer has taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            window: 10,
            max_frame: 4,
            retransmit_ms: 100,
        }
    }

    #[test]
    fn credit_bounds_what_is_pushed() {
        let mut s = Sender::new(config());
        let mut data = Bytes::from_static(b"0123456789abcdef");
        assert_eq!(s.push(&mut data), 10);
        assert_eq!(&data[..], b"abcdef");
        assert_eq!(s.credit(), 0);
        let mut r = Receiver::new(config());
        while let Some(f) = s.poll_transmit(0) {
            r.on_frame(f).unwrap();
        }
        let got = r.read().unwrap();
        assert_eq!(&got[..], b"0123");
        r.release(4);
        s.on_ack(&r.ack(), 1).unwrap();
        assert_eq!(s.credit(), 4);
    }

    #[test]
    fn data_beyond_the_credit_fails_the_pipe() {
        let mut r = Receiver::new(config());
        let e = r.on_frame(Frame::Data {
            offset: 8,
            bytes: Bytes::from_static(b"xyz"),
        });
        assert!(matches!(
            e,
            Err(ProtocolError::BeyondCredit { end: 11, .. })
        ));
        assert!(matches!(r.state(), State::Failed(_)));
        assert_eq!(r.ack().state, AckState::Closed);
    }

    #[test]
    fn end_of_stream_after_the_last_byte() {
        let mut s = Sender::new(config());
        let mut data = Bytes::from_static(b"abc");
        s.push(&mut data);
        s.finish();
        let mut r = Receiver::new(config());
        let frames: Vec<Frame> = std::iter::from_fn(|| s.poll_transmit(0)).collect();
        assert_eq!(frames.len(), 2);
        // The end arrives first: the consumer still gets the bytes before it.
        r.on_frame(frames[1].clone()).unwrap();
        assert!(!r.at_end());
        r.on_frame(frames[0].clone()).unwrap();
        assert_eq!(&r.read().unwrap()[..], b"abc");
        assert!(r.at_end());
        r.release(3);
        assert_eq!(r.state(), &State::Finished);
        s.on_ack(&r.ack(), 0).unwrap();
        assert_eq!(s.state(), &State::Finished);
    }

    #[test]
    fn a_closed_consumer_stops_the_producer() {
        let mut s = Sender::new(config());
        let mut r = Receiver::new(config());
        r.close();
        s.on_ack(&r.ack(), 0).unwrap();
        assert_eq!(s.state(), &State::Closed);
        assert_eq!(s.credit(), 0);
    }

    #[test]
    fn a_relinked_sender_sends_again_what_was_not_taken() {
        let mut s = Sender::new(config());
        let mut data = Bytes::from_static(b"abcdef");
        s.push(&mut data);
        let mut r = Receiver::new(config());
        while let Some(f) = s.poll_transmit(0) {
            r.on_frame(f).unwrap();
        }
        let got = r.read().unwrap();
        r.release(2); // the consumer took "ab" and died
        s.on_ack(&r.ack(), 0).unwrap();
        drop(got);
        s.relink();
        let mut fresh = Receiver::starting_at(config(), s.taken());
        let mut again = Vec::new();
        s.finish();
        while let Some(f) = s.poll_transmit(0) {
            fresh.on_frame(f).unwrap();
        }
        while let Some(b) = fresh.read() {
            again.extend_from_slice(&b);
            fresh.release(b.len() as u64);
        }
        assert_eq!(again, b"cdef");
        s.on_ack(&fresh.ack(), 0).unwrap();
        assert_eq!(s.state(), &State::Finished);
    }

    /// Overlapping frames kept after a gap, then the bytes before them: the end still holds
    /// no more than the window (found by the `pipe_stream` fuzz target).
    #[test]
    fn overlapping_frames_after_a_gap_stay_within_the_window() {
        let mut r = Receiver::new(config());
        let data = |offset: u64, text: &'static [u8]| Frame::Data {
            offset,
            bytes: Bytes::from_static(text),
        };
        r.on_frame(data(4, b"efgh")).unwrap();
        r.on_frame(data(5, b"fghij")).unwrap();
        assert_eq!(r.buffered(), 9);
        r.on_frame(data(0, b"abc")).unwrap();
        assert!(r.buffered() <= 10, "{} held", r.buffered());
        r.on_frame(data(3, b"defghij")).unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.read() {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"abcdefghij");
    }

    #[test]
    fn a_lying_ack_is_refused() {
        let mut s = Sender::new(config());
        let ack = Ack {
            received: 5,
            taken: 5,
            limit: 15,
            state: AckState::Open,
        };
        assert!(s.on_ack(&ack, 0).is_err());
    }
}
