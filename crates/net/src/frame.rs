//! Sans-io framing: length-prefixed frames and the hello frame that opens every link.
//!
//! A frame on the wire is a 4-byte little-endian length followed by that many bytes, the
//! framing of every Plexus byte stream ([`plexus_protocol::frame`], re-exported here). The
//! first frame each side sends is a [`Hello`]. See `docs/links.md`.

use bytes::{Buf, Bytes};
pub use plexus_protocol::frame::{
    encode, encode_header, header, FrameDecoder, FrameTooLarge, HEADER_LEN, MAX_FRAME_LIMIT,
};

use crate::NetError;

/// The link protocol version this build speaks.
pub const LINK_VERSION: u16 = 1;

/// The default largest frame a node accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The first bytes of a hello frame.
pub const HELLO_MAGIC: [u8; 4] = *b"PLXL";

/// A frame to send, in parts: the link writes their concatenation. A large body (a pipe's
/// chunk) stays in the buffer its producer filled until TLS copies it while encrypting it,
/// instead of being copied into each layer's envelope on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutFrame {
    parts: Vec<Bytes>,
    len: usize,
}

impl OutFrame {
    /// The frame made of `parts`, in order.
    pub fn from_parts(parts: Vec<Bytes>) -> OutFrame {
        let len = parts.iter().map(Bytes::len).sum();
        OutFrame { parts, len }
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The parts, to be sent in order.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The frame as one buffer: its part if it has one, else a copy of them all.
    pub fn into_bytes(mut self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts.pop().unwrap_or_default();
        }
        let mut out = Vec::with_capacity(self.len);
        for part in &self.parts {
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

impl From<Bytes> for OutFrame {
    fn from(frame: Bytes) -> OutFrame {
        OutFrame {
            len: frame.len(),
            parts: vec![frame],
        }
    }
}

impl From<Vec<u8>> for OutFrame {
    fn from(frame: Vec<u8>) -> OutFrame {
        OutFrame::from(Bytes::from(frame))
    }
}

/// The first frame each side of a link sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's [`LINK_VERSION`].
    pub version: u16,
    /// The largest frame the sender accepts.
    pub max_frame: u32,
    /// The sender's node name (for logs and people; the node key is what authenticates).
    pub name: String,
}

impl Hello {
    /// The frame body: magic, version (u16 LE), max frame (u32 LE), name length (u8), name.
    /// The magic and version come first in every version, so that any build can read them.
    pub fn encode(&self) -> Bytes {
        let name = self.name.as_bytes();
        let name = &name[..name.len().min(255)];
        let mut out = Vec::with_capacity(11 + name.len());
        out.extend_from_slice(&HELLO_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.max_frame.to_le_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        Bytes::from(out)
    }

    /// Reads a hello frame body. A version other than [`LINK_VERSION`] is reported as
    /// [`NetError::VersionMismatch`] as soon as the version is read, whatever follows.
    pub fn decode(mut body: &[u8]) -> Result<Hello, NetError> {
        if body.len() < 6 || body[..4] != HELLO_MAGIC {
            return Err(NetError::BadHello("missing the PLXL magic"));
        }
        body.advance(4);
        let version = body.get_u16_le();
        if version != LINK_VERSION {
            return Err(NetError::VersionMismatch {
                ours: LINK_VERSION,
                theirs: version,
            });
        }
        if body.len() < 5 {
            return Err(NetError::BadHello("truncated"));
        }
        let max_frame = body.get_u32_le();
        let len = body.get_u8() as usize;
        if body.len() != len {
            return Err(NetError::BadHello("wrong name length"));
        }
        let name =
            std::str::from_utf8(body).map_err(|_| NetError::BadHello("name is not UTF-8"))?;
        Ok(Hello {
            version,
            max_frame,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_refusals() {
        let h = Hello {
            version: LINK_VERSION,
            max_frame: 1234,
            name: "node-a".into(),
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        let mut other = h.clone();
        other.version = LINK_VERSION + 1;
        let e = Hello::decode(&other.encode()).unwrap_err();
        assert!(matches!(e, NetError::VersionMismatch { .. }), "{e}");
        assert!(e.to_string().contains("version"));
        // Only magic and version: still a clear version error.
        let mut short = HELLO_MAGIC.to_vec();
        short.extend_from_slice(&9u16.to_le_bytes());
        assert!(matches!(
            Hello::decode(&short),
            Err(NetError::VersionMismatch { theirs: 9, .. })
        ));
        assert!(Hello::decode(b"GET / HTTP/1.1").is_err());
        let enc = h.encode();
        for cut in 0..enc.len() {
            assert!(Hello::decode(&enc[..cut]).is_err());
        }
        let mut long = enc.to_vec();
        long.push(b'x');
        assert!(Hello::decode(&long).is_err());
    }

    #[test]
    fn out_frames_are_their_parts_concatenated() {
        let parts = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ];
        let frame = OutFrame::from_parts(parts);
        assert_eq!(frame.len(), 5);
        assert_eq!(frame.into_bytes(), Bytes::from_static(b"abcde"));
        let one = Bytes::from(vec![7u8; 100]);
        let frame = OutFrame::from(one.clone());
        assert_eq!(
            frame.into_bytes().as_ptr(),
            one.as_ptr(),
            "one part is not copied"
        );
        assert!(OutFrame::from_parts(Vec::new()).into_bytes().is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            let _ = Hello::decode(&bytes);
        }
    }
}
