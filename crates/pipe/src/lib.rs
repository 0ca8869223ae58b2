//! Plexus pipes: byte streams between processes on any nodes, ordered, lossless,
//! flow-controlled and closed properly. Everything here is pure (sans-io): frames and
//! acknowledgements go in and out as values and time comes in as milliseconds, so a seeded
//! simulation drives both ends over a transport that loses, repeats and reorders frames
//! (`tests/pipe_sim.rs`). The node carries the frames over its links (`sys.pipe`), reads the
//! producer's output and writes the consumer's input. The protocol: `docs/pipes.md`.
//!
//! - [`Sender`] and [`Receiver`]: one pipe. Bytes are numbered by offset; the receiver grants
//!   credit as a limit (what the consumer took plus the window), the sender never sends past
//!   it, keeps what it sent until acknowledged and sends it again when it was lost. End of
//!   stream ([`Frame::Eof`]) follows the last byte; a consumer that is gone answers
//!   [`AckState::Closed`], which the producer turns into `EPIPE`.
//! - [`Framer`]: cuts a stream into whole records: lines, length-prefixed segments or JSON
//!   values ([`Format`], OneOS's `raw`, `segment`, `json`).
//! - [`Outlet`]: one producer into several pipes, every byte to each (the slowest sets the
//!   pace) or each record to the pipe with the most credit (a split across replicas).
//! - [`Inlet`]: several pipes into one consumer, handing on whole records only.
//!
//! ```
//! use bytes::Bytes;
//! use plexus_pipe::{Config, Receiver, Sender, State};
//!
//! let config = Config { window: 8, ..Config::default() };
//! let (mut tx, mut rx) = (Sender::new(config), Receiver::new(config));
//! let mut data = Bytes::from_static(b"hello, world");
//! assert_eq!(tx.push(&mut data), 8); // the window's worth; the rest waits for credit
//! let mut got = Vec::new();
//! while !data.is_empty() || *tx.state() == State::Open {
//!     tx.push(&mut data);
//!     if data.is_empty() { tx.finish(); }
//!     while let Some(frame) = tx.poll_transmit(0) { rx.on_frame(frame).unwrap(); }
//!     while let Some(bytes) = rx.read() { got.extend_from_slice(&bytes); rx.release(bytes.len() as u64); }
//!     tx.on_ack(&rx.ack(), 0).unwrap();
//! }
//! assert_eq!(got, b"hello, world");
//! assert_eq!(*tx.state(), State::Finished);
//! ```

mod record;
mod spread;
mod stream;

pub use record::{Format, Framer, RecordError, UnknownFormat, MAX_JSON_DEPTH};
pub use spread::{Inlet, Outlet, Piece, Share};
pub use stream::{Ack, AckState, Config, Frame, ProtocolError, Receiver, Sender, State};
