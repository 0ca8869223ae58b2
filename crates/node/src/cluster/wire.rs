//! What nodes say to each other over mesh links, by channel. Specified in
//! `docs/cluster.md`; every body is postcard.

use bytes::Bytes;
use plexus_protocol::TermRequest;
use serde::{Deserialize, Serialize};

/// SWIM packets (one-way).
pub const SWIM: u8 = 1;
/// Raft RPCs (calls; bodies are the cluster crate's).
pub const RAFT: u8 = 2;
/// Service calls routed to another node ([`CallRequest`] → `CallResult`).
pub const CALL: u8 = 3;
/// A remote call's requests to its session's terminal ([`TermCall`] → [`TermResponse`](plexus_protocol::TermResponse)).
pub const TERM: u8 = 4;
/// Joining with an invite ([`JoinRequest`] → [`JoinReply`]).
pub const JOIN: u8 = 5;
/// A link probe: any bytes, answered with none ([`super::links`]).
pub const PROBE: u8 = 6;

/// A stream sent to a service on another node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRequest {
    /// The service.
    pub service: String,
    /// The message, unevaluated, in units binary (decoded with
    /// [`plexus_protocol::decode_shared`], it shares the received frame's storage).
    #[serde(with = "plexus_protocol::shared_bytes")]
    pub msg: Bytes,
    /// The user on whose authority the call runs (verified by the entry node).
    pub author: [u8; 32],
    /// Hash of the signed root message.
    pub root_hash: [u8; 32],
    /// Nesting depth so far (the call-depth limit holds across nodes).
    pub depth: u32,
    /// The calling node's session id, when the call has a terminal.
    pub session: Option<u64>,
    /// Which evaluation of the root message the call belongs to: (time in ms, id).
    pub evaluation: Option<(u64, u64)>,
}

impl CallRequest {
    /// The request with `msg` in units binary, encoded as [`encode`] encodes it but in parts:
    /// the message's long byte strings (a pipe's chunk) are parts of their own, not copies
    /// ([`plexus_units::encode_parts`]). `self.msg` is not used.
    pub fn encode_parts(&self, msg: &plexus_units::Unit) -> Result<Vec<Bytes>, String> {
        let msg = plexus_units::encode_parts(msg);
        let msg_len: usize = msg.iter().map(Bytes::len).sum();
        // Postcard writes a struct as its fields in order, and a byte string as its length (a
        // LEB128 varint) then its bytes.
        let mut head = encode(&self.service)?;
        let mut n = msg_len as u64;
        while n >= 0x80 {
            head.push((n as u8) | 0x80);
            n >>= 7;
        }
        head.push(n as u8);
        let tail = encode(&(
            self.author,
            self.root_hash,
            self.depth,
            self.session,
            self.evaluation,
        ))?;
        let mut parts = Vec::with_capacity(msg.len() + 2);
        parts.push(Bytes::from(head));
        parts.extend(msg);
        parts.push(Bytes::from(tail));
        Ok(parts)
    }
}

/// A terminal request from a node running a remote call, to the session's node (answered
/// with a postcard `TermResponse`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TermCall {
    /// The session id from [`CallRequest::session`].
    pub session: u64,
    /// The request.
    pub request: TermRequest,
}

/// A joining node's request, sent over a link authenticated by the invite key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The joining node's key.
    pub key: [u8; 32],
    /// Its name.
    pub name: String,
    /// Its cluster address.
    pub addr: String,
    /// The invite key (the key of the link it arrives on, unless a member forwarded it).
    pub invite: [u8; 32],
    /// Signature by the node key over [`join_proof_bytes`]: proves the joiner holds the key it
    /// asks to be admitted with.
    pub proof: Vec<u8>,
}

/// The bytes a joining node signs.
pub fn join_proof_bytes(invite: &[u8; 32], key: &[u8; 32], name: &str, addr: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("plexus 2026-11 join v1");
    h.update(invite);
    h.update(key);
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(&(addr.len() as u64).to_le_bytes());
    h.update(addr.as_bytes());
    *h.finalize().as_bytes()
}

/// A member, as told to a joining node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Name.
    pub name: String,
    /// Cluster address.
    pub addr: String,
    /// Node key.
    pub key: [u8; 32],
}

/// The answer to a [`JoinRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinReply {
    /// The cluster id.
    pub cluster: [u8; 16],
    /// Every member, the joiner included.
    pub peers: Vec<PeerEntry>,
}

/// Encodes a wire body.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(v).map_err(|e| format!("cannot encode: {e}"))
}

/// Decodes a wire body.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("malformed request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_units::{Map, Unit};

    /// The parts are postcard's encoding of the whole request, and a long byte string of the
    /// message is carried by reference; decoded shared, the message is a slice of the frame.
    #[test]
    fn a_request_in_parts_is_its_encoding() {
        for (len, session, evaluation) in [
            (0usize, None, None),
            (100, Some(7u64), Some((1u64, 2u64))),
            (4096, None, Some((u64::MAX, 0))),
            (300_000, Some(u64::MAX), None),
        ] {
            let chunk = Bytes::from(vec![0xa5u8; len]);
            let mut m = Map::new();
            m.insert(Unit::str("data"), Unit::str("p1"));
            m.insert(Unit::str("bytes"), Unit::Bytes(chunk.clone()));
            let msg = Unit::Map(m);
            let request = CallRequest {
                service: "sys.pipe".repeat(len % 50 + 1),
                msg: Bytes::from(plexus_units::encode(&msg)),
                author: [3; 32],
                root_hash: [9; 32],
                depth: 300,
                session,
                evaluation,
            };
            let parts = request.encode_parts(&msg).unwrap();
            let whole = Bytes::from(parts.concat());
            assert_eq!(&whole[..], &encode(&request).unwrap()[..]);
            if len >= plexus_units::SHARED_PART_MIN {
                assert!(parts.iter().any(|p| p.as_ptr() == chunk.as_ptr()), "shared");
            }
            let back: CallRequest = plexus_protocol::decode_shared(&whole).unwrap();
            assert_eq!(back.msg, request.msg);
            let inside = whole.as_ptr() as usize..whole.as_ptr() as usize + whole.len();
            assert!(inside.contains(&(back.msg.as_ptr() as usize)), "not copied");
        }
    }
}
