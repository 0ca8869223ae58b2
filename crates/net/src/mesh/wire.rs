//! Sans-io mesh frames: what goes inside one link frame between two meshes.
//!
//! ```text
//! message    = 0x01 ‖ channel:u8 ‖ body
//! call       = 0x02 ‖ channel:u8 ‖ id:u64 LE ‖ deadline_ms:u32 LE ‖ body
//! reply-ok   = 0x03 ‖ channel:u8 ‖ id:u64 LE ‖ body
//! reply-err  = 0x04 ‖ channel:u8 ‖ id:u64 LE ‖ message (UTF-8)
//! cancel     = 0x05 ‖ channel:u8 ‖ id:u64 LE
//! overloaded = 0x06 ‖ channel:u8 ‖ id:u64 LE
//! ```
//!
//! The body runs to the end of the link frame. Decoding is strict (a cancel or overloaded
//! frame with trailing bytes, an error message that is not UTF-8, an unknown kind are
//! refused), so every frame that decodes encodes back to the same bytes. See `docs/links.md`,
//! section "Mesh frames".

use crate::NetError;

/// Which upper-layer protocol a frame belongs to (raft, swim, calls…); opaque to the mesh.
pub type Channel = u8;

/// Kind byte of a one-way message.
pub const KIND_MESSAGE: u8 = 0x01;
/// Kind byte of a call.
pub const KIND_CALL: u8 = 0x02;
/// Kind byte of a successful reply.
pub const KIND_REPLY_OK: u8 = 0x03;
/// Kind byte of an error reply (the handler returned an error).
pub const KIND_REPLY_ERR: u8 = 0x04;
/// Kind byte of a cancellation of a call by its caller.
pub const KIND_CANCEL: u8 = 0x05;
/// Kind byte of a refusal of a call because the callee has too many calls in progress.
pub const KIND_OVERLOADED: u8 = 0x06;

/// Length of the header of a message frame (kind, channel).
pub const MESSAGE_HEADER: usize = 2;
/// Length of the header of a call frame (kind, channel, id, deadline).
pub const CALL_HEADER: usize = 14;
/// Length of the header of a reply, cancel or overloaded frame (kind, channel, id).
pub const REPLY_HEADER: usize = 10;

/// One decoded mesh frame, borrowing its body from the link frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshFrame<'a> {
    /// A one-way message.
    Message {
        /// Its channel.
        channel: Channel,
        /// Its body.
        body: &'a [u8],
    },
    /// A call: the callee answers with a reply (ok or err) or overloaded, with the same id.
    Call {
        /// Its channel.
        channel: Channel,
        /// The caller's id for it, unique among the caller's calls in progress on the link.
        id: u64,
        /// Milliseconds left until the caller gives up (when the caller sent it).
        deadline_ms: u32,
        /// Its body.
        body: &'a [u8],
    },
    /// The successful result of a call.
    ReplyOk {
        /// The call's channel.
        channel: Channel,
        /// The call's id.
        id: u64,
        /// The result.
        body: &'a [u8],
    },
    /// The handler of a call returned an error.
    ReplyErr {
        /// The call's channel.
        channel: Channel,
        /// The call's id.
        id: u64,
        /// The error message.
        message: &'a str,
    },
    /// The caller no longer wants the result of a call (it gave up or timed out).
    Cancel {
        /// The call's channel.
        channel: Channel,
        /// The call's id.
        id: u64,
    },
    /// The callee refused a call: too many calls in progress.
    Overloaded {
        /// The call's channel.
        channel: Channel,
        /// The call's id.
        id: u64,
    },
}

impl MeshFrame<'_> {
    /// The frame's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            MeshFrame::Message { .. } => KIND_MESSAGE,
            MeshFrame::Call { .. } => KIND_CALL,
            MeshFrame::ReplyOk { .. } => KIND_REPLY_OK,
            MeshFrame::ReplyErr { .. } => KIND_REPLY_ERR,
            MeshFrame::Cancel { .. } => KIND_CANCEL,
            MeshFrame::Overloaded { .. } => KIND_OVERLOADED,
        }
    }

    /// The frame's channel.
    pub fn channel(&self) -> Channel {
        match *self {
            MeshFrame::Message { channel, .. }
            | MeshFrame::Call { channel, .. }
            | MeshFrame::ReplyOk { channel, .. }
            | MeshFrame::ReplyErr { channel, .. }
            | MeshFrame::Cancel { channel, .. }
            | MeshFrame::Overloaded { channel, .. } => channel,
        }
    }

    /// The call id, for every kind but a message.
    pub fn id(&self) -> Option<u64> {
        match *self {
            MeshFrame::Message { .. } => None,
            MeshFrame::Call { id, .. }
            | MeshFrame::ReplyOk { id, .. }
            | MeshFrame::ReplyErr { id, .. }
            | MeshFrame::Cancel { id, .. }
            | MeshFrame::Overloaded { id, .. } => Some(id),
        }
    }

    /// The header length of this kind of frame.
    pub fn header_len(&self) -> usize {
        match self {
            MeshFrame::Message { .. } => MESSAGE_HEADER,
            MeshFrame::Call { .. } => CALL_HEADER,
            _ => REPLY_HEADER,
        }
    }

    fn payload(&self) -> &[u8] {
        match *self {
            MeshFrame::Message { body, .. }
            | MeshFrame::Call { body, .. }
            | MeshFrame::ReplyOk { body, .. } => body,
            MeshFrame::ReplyErr { message, .. } => message.as_bytes(),
            MeshFrame::Cancel { .. } | MeshFrame::Overloaded { .. } => &[],
        }
    }

    /// The length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        self.header_len().saturating_add(self.payload().len())
    }

    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.kind());
        out.push(self.channel());
        if let Some(id) = self.id() {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if let MeshFrame::Call { deadline_ms, .. } = self {
            out.extend_from_slice(&deadline_ms.to_le_bytes());
        }
        out.extend_from_slice(self.payload());
    }

    /// The encoded frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

fn bad(why: &'static str) -> NetError {
    NetError::BadMeshFrame(why)
}

/// Reads the call id at `rest[..8]`, returning it and what follows.
fn take_id(rest: &[u8]) -> Result<(u64, &[u8]), NetError> {
    let (id, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(bad("truncated call id"))?;
    Ok((u64::from_le_bytes(*id), rest))
}

/// Decodes one mesh frame (the body of one link frame). Never panics; any input that is not
/// exactly a frame as encoded by [`MeshFrame::encode`] is an error
/// ([`NetError::BadMeshFrame`]).
pub fn decode_mesh_frame(frame: &[u8]) -> Result<MeshFrame<'_>, NetError> {
    let [kind, channel, rest @ ..] = frame else {
        return Err(bad("shorter than its kind and channel bytes"));
    };
    let channel = *channel;
    match *kind {
        KIND_MESSAGE => Ok(MeshFrame::Message {
            channel,
            body: rest,
        }),
        KIND_CALL => {
            let (id, rest) = take_id(rest)?;
            let (deadline, body) = rest
                .split_first_chunk::<4>()
                .ok_or(bad("truncated call deadline"))?;
            Ok(MeshFrame::Call {
                channel,
                id,
                deadline_ms: u32::from_le_bytes(*deadline),
                body,
            })
        }
        KIND_REPLY_OK => {
            let (id, body) = take_id(rest)?;
            Ok(MeshFrame::ReplyOk { channel, id, body })
        }
        KIND_REPLY_ERR => {
            let (id, body) = take_id(rest)?;
            let message =
                std::str::from_utf8(body).map_err(|_| bad("error message is not UTF-8"))?;
            Ok(MeshFrame::ReplyErr {
                channel,
                id,
                message,
            })
        }
        KIND_CANCEL | KIND_OVERLOADED => {
            let (id, rest) = take_id(rest)?;
            if !rest.is_empty() {
                return Err(bad("trailing bytes after a cancel or overloaded frame"));
            }
            Ok(if *kind == KIND_CANCEL {
                MeshFrame::Cancel { channel, id }
            } else {
                MeshFrame::Overloaded { channel, id }
            })
        }
        _ => Err(bad("unknown frame kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_round_trip() {
        let frames = [
            MeshFrame::Message {
                channel: 7,
                body: b"swim",
            },
            MeshFrame::Call {
                channel: 1,
                id: 0x0102_0304_0506_0708,
                deadline_ms: 30_000,
                body: b"",
            },
            MeshFrame::ReplyOk {
                channel: 1,
                id: 9,
                body: b"ok",
            },
            MeshFrame::ReplyErr {
                channel: 1,
                id: 9,
                message: "no such thing: λ",
            },
            MeshFrame::Cancel { channel: 3, id: 4 },
            MeshFrame::Overloaded { channel: 3, id: 5 },
        ];
        for f in frames {
            let enc = f.encode();
            assert_eq!(enc.len(), f.encoded_len());
            assert_eq!(decode_mesh_frame(&enc).unwrap(), f);
            for cut in 0..f.header_len() {
                assert!(
                    decode_mesh_frame(&enc[..cut]).is_err(),
                    "{f:?} cut at {cut}"
                );
            }
        }
        let call = MeshFrame::Call {
            channel: 0xab,
            id: 1,
            deadline_ms: 2,
            body: b"xy",
        }
        .encode();
        assert_eq!(call, b"\x02\xab\x01\0\0\0\0\0\0\0\x02\0\0\0xy");
    }

    #[test]
    fn refusals() {
        assert!(decode_mesh_frame(b"").is_err());
        assert!(decode_mesh_frame(b"\x01").is_err());
        assert!(decode_mesh_frame(b"\x00\x00").is_err());
        assert!(decode_mesh_frame(b"\x07\x00").is_err());
        assert!(decode_mesh_frame(b"\x05\x00\x01\0\0\0\0\0\0\0x").is_err());
        assert!(decode_mesh_frame(b"\x04\x00\x01\0\0\0\0\0\0\0\xff").is_err());
        // An empty message is fine.
        assert_eq!(
            decode_mesh_frame(b"\x01\x09").unwrap(),
            MeshFrame::Message {
                channel: 9,
                body: b""
            }
        );
    }
}
