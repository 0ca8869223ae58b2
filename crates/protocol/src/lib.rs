//! Plexus protocol: the frames a client (`plx send`, the λ shell) and a node exchange.
//!
//! The protocol is sans-io: [`encode_frame`] turns a frame into bytes and [`FrameReader`]
//! turns received bytes back into frames; sockets are the caller's business. The format is
//! specified in `docs/protocol.md`.
//!
//! A connection starts with [`ClientFrame::Hello`] answered by [`NodeFrame::Welcome`] (or
//! [`NodeFrame::Refused`] on a version mismatch). The client then sends calls, each a signed
//! message with an id of the client's choosing; the node answers each with a
//! [`NodeFrame::Reply`]. While a call runs, the node may ask the client's terminal to do
//! things ([`NodeFrame::Term`]: print, read a line…), which the client answers with
//! [`ClientFrame::Term`]. Many calls may be in flight on one connection.
//!
//! ```
//! use plexus_protocol::{encode_frame, ClientFrame, FrameReader, PROTOCOL_VERSION};
//!
//! let mut wire = Vec::new();
//! encode_frame(&ClientFrame::Hello { version: PROTOCOL_VERSION, client: "doc".into() }, &mut wire)
//!     .unwrap();
//! let mut reader = FrameReader::new();
//! reader.push(&wire);
//! let frame: ClientFrame = reader.next_frame().unwrap().unwrap();
//! assert!(matches!(frame, ClientFrame::Hello { version: PROTOCOL_VERSION, .. }));
//! ```

pub mod frame;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use frame::{FrameDecoder, FrameTooLarge};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest frame accepted (a 64 MiB unit plus envelope).
pub const MAX_FRAME: usize = (64 << 20) + 4096;

/// A frame from a client to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// First frame of a connection.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u16,
        /// Free-form client description, for logs (`plx send`, `plx shell`).
        client: String,
    },
    /// Evaluate a signed message (`plexus_identity::SignedMessage::to_bytes`).
    Call {
        /// Chosen by the client, unique among its calls in flight.
        id: u64,
        /// The signed message bytes.
        #[serde(with = "byte_string")]
        message: Vec<u8>,
        /// Whether the node may use this connection's terminal for the call.
        terminal: bool,
    },
    /// Stop a call in flight (its reply is an error with code `cancelled`).
    Cancel {
        /// The call's id.
        id: u64,
    },
    /// The answer to a [`NodeFrame::Term`] request.
    Term {
        /// The request's id.
        id: u64,
        /// What happened.
        response: TermResponse,
    },
}

/// A frame from a node to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeFrame {
    /// Answer to [`ClientFrame::Hello`].
    Welcome {
        /// [`PROTOCOL_VERSION`] of the node.
        version: u16,
        /// The node's persistent id.
        node_id: String,
        /// The node's name.
        node_name: String,
    },
    /// The connection is refused (version mismatch, node shutting down).
    Refused {
        /// Why, for people.
        reason: String,
    },
    /// The result of a call.
    Reply {
        /// The call's id.
        id: u64,
        /// Its outcome.
        result: CallResult,
    },
    /// A request to the client's terminal on behalf of a call.
    Term {
        /// Request id, echoed in the client's [`ClientFrame::Term`].
        id: u64,
        /// The call it belongs to.
        call: u64,
        /// What to do.
        request: TermRequest,
    },
}

/// How a call ended. Units travel in their canonical binary encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallResult {
    /// A value (its bytes share the received frame's storage, see [`decode_shared`]).
    Value(#[serde(with = "shared_bytes")] bytes::Bytes),
    /// The call was done for its effect and has no value.
    Nothing,
    /// An error unit `{err:… msg:…}`.
    Error(#[serde(with = "byte_string")] Vec<u8>),
}

/// Something a call asks of the session's terminal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TermRequest {
    /// Print text as it is (no line break added).
    Say {
        /// The text.
        text: String,
    },
    /// Print a prompt and read a line.
    ReadLine {
        /// Printed before reading.
        prompt: String,
        /// Do not echo what is typed.
        secret: bool,
        /// Keep at most this many characters.
        limit: Option<u32>,
    },
    /// Read one key press.
    ReadKey,
    /// Report the terminal's size.
    Size,
    /// Clear the screen.
    Clear,
    /// Show an image (RGB pixels, row by row).
    Image {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width × height × 3` bytes.
        #[serde(with = "byte_string")]
        rgb: Vec<u8>,
    },
    /// Write a program's output as it is (bytes, not necessarily UTF-8) to the terminal's
    /// standard output or error, and answer once written: a slow terminal holds the program
    /// back instead of growing a buffer.
    Output {
        /// Where to write.
        stream: OutputStream,
        /// The bytes.
        #[serde(with = "byte_string")]
        bytes: Vec<u8>,
    },
    /// The call started process `id` (sys.proc), whose output follows: the terminal may
    /// address it (say, to interrupt it on Ctrl-C) while the call runs.
    Process {
        /// The process id.
        id: String,
    },
}

/// Which output stream of a terminal [`TermRequest::Output`] writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The terminal's answer to a [`TermRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TermResponse {
    /// Done (say, clear, image).
    Done,
    /// The line read; `None` at end of input.
    Line(Option<String>),
    /// The key pressed: a character, or `UP` `DOWN` `LEFT` `RIGHT` `ESC` `ENTER` `BACKSPACE`
    /// `TAB` `UNKNOWN`.
    Key(String),
    /// The terminal's size in characters and, when known, in pixels.
    Size {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
        /// Width in pixels (0 when unknown).
        width_px: u32,
        /// Height in pixels (0 when unknown).
        height_px: u32,
    },
    /// The terminal cannot do this (no image support, not a terminal…).
    Unsupported(String),
    /// Input was interrupted (Ctrl-C) or the terminal failed.
    Failed(String),
}

/// A frame that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame announces more than [`MAX_FRAME`] bytes.
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
    /// The frame's bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Appends `frame` to `out` as a length-prefixed frame ([`frame`]): a 4-byte little-endian
/// length, then the postcard encoding.
pub fn encode_frame<T: Serialize>(frame: &T, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let at = frame::begin(out);
    *out = postcard::to_extend(frame, std::mem::take(out))?;
    frame::finish(out, at, MAX_FRAME)?;
    Ok(())
}

/// Reassembles frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader {
    frames: FrameDecoder,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader {
            frames: FrameDecoder::new(MAX_FRAME),
        }
    }
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.frames.push(bytes);
    }

    /// The buffer to read received bytes into directly (room is reserved for a read: for
    /// the rest of a large frame once its header is in).
    pub fn buffer(&mut self) -> &mut bytes::BytesMut {
        self.frames.buffer()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error the
    /// stream is out of sync: close the connection.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtocolError> {
        match self.frames.next_frame()? {
            Some(body) => Ok(Some(decode_shared(&body)?)),
            None => Ok(None),
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.frames.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A byte-string field is the same bytes in postcard as the derived `Vec<u8>` form:
        /// frames stay as they were on the wire, only faster to read.
        #[test]
        fn byte_strings_are_the_derived_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            #[derive(Serialize, Deserialize, PartialEq, Debug)]
            struct Derived(Vec<u8>);
            let frame = CallResult::Value(bytes.clone().into());
            let ours = postcard::to_allocvec(&frame).unwrap();
            // Variant 0, then the vector as the derived form writes it.
            let mut derived = vec![0u8];
            derived.extend(postcard::to_allocvec(&Derived(bytes.clone())).unwrap());
            prop_assert_eq!(&ours, &derived);
            prop_assert_eq!(postcard::from_bytes::<CallResult>(&derived).unwrap(), frame);
        }
    }

    #[test]
    fn a_value_decoded_shared_is_cut_from_its_frame() {
        let value = bytes::Bytes::from(vec![7u8; 100_000]);
        let frame = NodeFrame::Reply {
            id: 3,
            result: CallResult::Value(value.clone()),
        };
        let body = bytes::Bytes::from(postcard::to_allocvec(&frame).unwrap());
        let NodeFrame::Reply {
            result: CallResult::Value(got),
            ..
        } = decode_shared::<NodeFrame>(&body).unwrap()
        else {
            panic!("not a reply")
        };
        assert_eq!(got, value);
        let inside = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(
            inside.contains(&(got.as_ptr() as usize)),
            "shared, not copied"
        );
        // Outside `decode_shared`, the same body is copied, and decodes alike.
        let copied: NodeFrame = postcard::from_bytes(&body).unwrap();
        assert_eq!(copied, frame);
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let frames = vec![
            NodeFrame::Welcome {
                version: 1,
                node_id: "n1".into(),
                node_name: "a".into(),
            },
            NodeFrame::Reply {
                id: 7,
                result: CallResult::Value(vec![1, 0x45].into()),
            },
            NodeFrame::Term {
                id: 1,
                call: 7,
                request: TermRequest::ReadLine {
                    prompt: "λ ".into(),
                    secret: false,
                    limit: Some(10),
                },
            },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(f, &mut wire).unwrap();
        }
        for split in 0..wire.len() {
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            r.push(&wire[..split]);
            while let Some(f) = r.next_frame::<NodeFrame>().unwrap() {
                got.push(f);
            }
            r.push(&wire[split..]);
            while let Some(f) = r.next_frame::<NodeFrame>().unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames);
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut r = FrameReader::new();
        r.push(&u32::MAX.to_le_bytes());
        assert!(matches!(
            r.next_frame::<ClientFrame>(),
            Err(ProtocolError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut r = FrameReader::new();
            r.push(&bytes);
            for _ in 0..10 {
                match r.next_frame::<ClientFrame>() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}

/// Decodes a postcard body whose [`shared_bytes`] fields (a call's value) are cut from
/// `body` itself rather than copied: a large reply is not copied on its way to its reader.
pub fn decode_shared<T: DeserializeOwned>(body: &bytes::Bytes) -> Result<T, postcard::Error> {
    shared_bytes::FRAME.with(|frame| *frame.borrow_mut() = Some(body.clone()));
    let decoded = postcard::from_bytes(body);
    shared_bytes::FRAME.with(|frame| *frame.borrow_mut() = None);
    decoded
}

/// Serde for a [`bytes::Bytes`] field: the same bytes on the wire as [`byte_string`]; read
/// inside [`decode_shared`], it shares the frame's storage (else it is copied).
pub mod shared_bytes {
    use std::cell::RefCell;

    use bytes::Bytes;
    use serde::{de, Deserializer, Serializer};

    thread_local! {
        /// The body [`super::decode_shared`] is decoding on this thread.
        pub(crate) static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    }

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads a byte string: a slice of the frame being decoded when it lies in it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_bytes(SharedBytes)
    }

    struct SharedBytes;

    impl<'de> de::Visitor<'de> for SharedBytes {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
            let shared = FRAME.with(|frame| {
                let frame = frame.borrow();
                let frame = frame.as_ref()?;
                let (start, end) = (
                    frame.as_ptr() as usize,
                    frame.as_ptr() as usize + frame.len(),
                );
                let at = v.as_ptr() as usize;
                (at >= start && at + v.len() <= end).then(|| frame.slice_ref(v))
            });
            Ok(shared.unwrap_or_else(|| Bytes::copy_from_slice(v)))
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Bytes, A::Error> {
            super::byte_string::ByteString
                .visit_seq(seq)
                .map(Bytes::from)
        }
    }
}

/// Serde of a `Vec<u8>` field as one byte string (`#[serde(with = "byte_string")]`). In
/// postcard it is the same bytes as the derived form (a length, then each byte), but read and
/// written whole: the derived form visits each byte as a sequence element, which made
/// decoding a 1 MiB frame cost more than sending it.
pub mod byte_string {
    use serde::{de, Deserializer, Serializer};

    /// Writes the bytes as one byte string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads a byte string (or a sequence of bytes, from formats that write one).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(ByteString)
    }

    pub(crate) struct ByteString;

    impl<'de> de::Visitor<'de> for ByteString {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Bounded by what the format says is there, at most a frame's worth up front.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}
