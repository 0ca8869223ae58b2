//! The length framing of every Plexus byte stream: a 4-byte little-endian length, then that many
//! bytes. Client connections ([`crate::encode_frame`], [`crate::FrameReader`]), node links
//! (`plexus-net`) and the benchmarks' raw baselines all use this module, so the format is
//! written down once.

use bytes::{Buf, Bytes, BytesMut};

/// Length of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest frame the 4-byte length can announce.
pub const MAX_FRAME_LIMIT: usize = u32::MAX as usize;

/// At most this much is reserved ahead for a frame whose bytes have not arrived yet: a peer
/// that announces a large frame gets memory as it sends, not on its word.
const MAX_RESERVE_AHEAD: usize = 1 << 20;

/// A frame over its limit (ours when receiving, the peer's when sending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes exceeds the limit of {max} bytes")]
pub struct FrameTooLarge {
    /// The frame's length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// Appends the length prefix of a frame of `len` bytes to `out`. Fails above `max` (and
/// above [`MAX_FRAME_LIMIT`]).
pub fn encode_header(len: usize, max: usize, out: &mut Vec<u8>) -> Result<(), FrameTooLarge> {
    out.extend_from_slice(&header(len, max)?);
    Ok(())
}

/// The length prefix of a body of `len` bytes, if it is at most `max`.
pub fn header(len: usize, max: usize) -> Result<[u8; HEADER_LEN], FrameTooLarge> {
    if len > max.min(MAX_FRAME_LIMIT) {
        return Err(FrameTooLarge { len, max });
    }
    Ok((len as u32).to_le_bytes())
}

/// The body length a length prefix announces.
pub fn decode_header(header: [u8; HEADER_LEN]) -> usize {
    u32::from_le_bytes(header) as usize
}

/// Appends one whole frame (prefix and `body`) to `out`.
pub fn encode(body: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameTooLarge> {
    encode_header(body.len(), max, out)?;
    out.extend_from_slice(body);
    Ok(())
}

/// Starts a frame whose body the caller then appends to `out` (an encoder that writes in
/// place): reserves the prefix and returns where it is, for [`finish`].
pub fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    at
}

/// Completes the frame started at `at` by [`begin`]: writes its length, or, above `max`,
/// removes the frame from `out` and fails.
pub fn finish(out: &mut Vec<u8>, at: usize, max: usize) -> Result<(), FrameTooLarge> {
    let len = out.len().saturating_sub(at + HEADER_LEN);
    if len > max.min(MAX_FRAME_LIMIT) {
        out.truncate(at);
        return Err(FrameTooLarge { len, max });
    }
    out[at..at + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
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

    /// The next complete frame's body, `Ok(None)` if more bytes are needed. After an error
    /// the stream is out of sync: close it.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameTooLarge> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut len = [0u8; HEADER_LEN];
        len.copy_from_slice(header);
        let len = decode_header(len);
        if len > self.max {
            return Err(FrameTooLarge { len, max: self.max });
        }
        let missing = (HEADER_LEN + len).saturating_sub(self.buf.len());
        if missing > 0 {
            // Room for the rest of this frame, so that a large frame is read in few calls.
            self.buf.reserve(missing.min(MAX_RESERVE_AHEAD));
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
            encode(f, 1000, &mut wire).unwrap();
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
        assert!(encode(&[0; 11], 10, &mut out).is_err());
        assert!(out.is_empty());
        let at = begin(&mut out);
        out.extend_from_slice(&[0; 11]);
        assert_eq!(
            finish(&mut out, at, 10),
            Err(FrameTooLarge { len: 11, max: 10 })
        );
        assert!(out.is_empty());
        let mut d = FrameDecoder::new(10);
        d.push(&11u32.to_le_bytes());
        assert_eq!(d.next_frame(), Err(FrameTooLarge { len: 11, max: 10 }));
        let mut d = FrameDecoder::new(10);
        d.push(&u32::MAX.to_le_bytes());
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn begin_and_finish_frame_a_body_written_in_place() {
        let mut out = b"before".to_vec();
        let at = begin(&mut out);
        out.extend_from_slice(b"body");
        finish(&mut out, at, 10).unwrap();
        let mut d = FrameDecoder::new(10);
        d.push(&out[6..]);
        assert_eq!(d.next_frame().unwrap().as_deref(), Some(&b"body"[..]));
        assert_eq!(decode_header([4, 0, 0, 0]), 4);
    }

    #[test]
    fn a_large_announced_frame_is_not_reserved_before_its_bytes_arrive() {
        // A peer that sends only a header must not make us hold the whole frame's memory.
        let mut d = FrameDecoder::new(64 << 20);
        d.push(&(64u32 << 20).to_le_bytes());
        assert!(d.next_frame().unwrap().is_none());
        assert!(d.buffer().capacity() < 2 << 20, "{}", d.buffer().capacity());
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
            let mut d = FrameDecoder::new(64);
            d.push(&bytes);
            while let Ok(Some(_)) = d.next_frame() {}
        }
    }
}
