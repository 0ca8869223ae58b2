//! Sans-io framing: length-prefixed frames and the hello frame that opens every link.
//!
//! A frame on the wire is a 4-byte little-endian length followed by that many bytes. The
//! first frame each side sends is a [`Hello`]. See `docs/links.md`.

use bytes::{Buf, Bytes, BytesMut};

use crate::NetError;

/// The link protocol version this build speaks.
pub const LINK_VERSION: u16 = 1;

/// The default largest frame a node accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The largest frame limit that can be configured (the 4-byte length's range).
pub const MAX_FRAME_LIMIT: usize = u32::MAX as usize;

/// The first bytes of a hello frame.
pub const HELLO_MAGIC: [u8; 4] = *b"PLXL";

/// Length of the length prefix.
pub const HEADER_LEN: usize = 4;

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

/// Appends the length prefix of a frame of `len` bytes to `out`. Fails above `max`.
pub fn encode_header(len: usize, max: usize, out: &mut Vec<u8>) -> Result<(), NetError> {
    if len > max.min(MAX_FRAME_LIMIT) {
        return Err(NetError::FrameTooLarge { len, max });
    }
    out.extend_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Appends one whole frame (prefix and body) to `out`.
pub fn encode_frame(frame: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), NetError> {
    encode_header(frame.len(), max, out)?;
    out.extend_from_slice(frame);
    Ok(())
}

/// Cuts a byte stream into frames, refusing any frame over its limit.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read into directly (with room reserved for a read).
    pub fn buffer(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < 8 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        &mut self.buf
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error the
    /// stream is out of sync: close the link.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, NetError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut len = [0u8; HEADER_LEN];
        len.copy_from_slice(header);
        let len = u32::from_le_bytes(len) as usize;
        if len > self.max {
            return Err(NetError::FrameTooLarge { len, max: self.max });
        }
        if self.buf.len() < HEADER_LEN + len {
            // Reserve for the rest of this frame, so that large frames are read in few calls.
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes received but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let frames: Vec<&[u8]> = vec![b"", b"a", b"hello world", &[7u8; 300]];
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(f, 1000, &mut wire).unwrap();
        }
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new(1000);
            let mut got = Vec::new();
            d.push(&wire[..split]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
            d.push(&wire[split..]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn limits() {
        let mut out = Vec::new();
        assert!(encode_frame(&[0; 11], 10, &mut out).is_err());
        assert!(out.is_empty());
        let mut d = FrameDecoder::new(10);
        d.push(&11u32.to_le_bytes());
        assert!(matches!(
            d.next_frame(),
            Err(NetError::FrameTooLarge { len: 11, max: 10 })
        ));
        let mut d = FrameDecoder::new(10);
        d.push(&u32::MAX.to_le_bytes());
        assert!(d.next_frame().is_err());
    }

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
            let mut d = FrameDecoder::new(64);
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
