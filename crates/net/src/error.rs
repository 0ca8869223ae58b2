//! The one error type of node links.

use plexus_identity::PublicKey;

/// Why a link could not be set up, or why it broke.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The local address could not be bound (in use, not permitted, unknown).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The peer's address could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An in-memory endpoint that does not exist or is cut off by a partition.
    #[error("{addr} is unreachable: {why}")]
    Unreachable {
        /// The address.
        addr: String,
        /// Why (no such endpoint, partitioned).
        why: &'static str,
    },
    /// An in-memory endpoint name already listened on.
    #[error("{addr} is already in use on this in-memory network")]
    AddrInUse {
        /// The address.
        addr: String,
    },
    /// The peer's node key is not in our allow set (unknown or revoked node).
    #[error("refused peer with node key {key} ({}): it is not a known member of this cluster (unknown or revoked)", key.fingerprint())]
    UnknownPeer {
        /// The peer's key.
        key: Box<PublicKey>,
    },
    /// The peer proved a node key, but not the one we expected at that address.
    #[error("expected node key {expected} ({}) at this address, the peer has {got} ({})", expected.fingerprint(), got.fingerprint())]
    UnexpectedPeer {
        /// The key we asked for.
        expected: Box<PublicKey>,
        /// The key the peer holds.
        got: Box<PublicKey>,
    },
    /// The peer refused our node key (we are unknown to it or revoked).
    #[error(
        "the peer refused this node: our node key is not in its allow set (unknown or revoked)"
    )]
    RefusedByPeer,
    /// The peer's certificate is not a Plexus node certificate.
    #[error("bad peer certificate: {0}")]
    BadCertificate(String),
    /// The TLS handshake failed for another reason (bad signature, protocol error).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// The peer speaks another link protocol version.
    #[error("link protocol version mismatch: this node speaks version {ours}, the peer {theirs}: run the same Plexus version on every node")]
    VersionMismatch {
        /// Our [`crate::LINK_VERSION`].
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer's first frame is not a valid hello frame.
    #[error("bad hello frame from the peer: {0}")]
    BadHello(&'static str),
    /// Setting up the link took longer than the handshake timeout.
    #[error("link handshake timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// An accepted connection was dropped before it authenticated, to make room for newer
    /// ones (too many connections were waiting to authenticate).
    #[error("dropped before authenticating, to make room for newer connections")]
    Evicted,
    /// A frame larger than the limit (ours when receiving, the peer's when sending).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The link is closed.
    #[error("the link is closed")]
    Closed,
    /// The link's send queue is full (from [`crate::LinkSender::try_send`], which never waits).
    #[error("the link's send queue is full")]
    QueueFull,
    /// A mesh frame that does not decode (see [`crate::mesh::decode_mesh_frame`]).
    #[error("malformed mesh frame: {0}")]
    BadMeshFrame(&'static str),
    /// Reading or writing the link's stream failed.
    #[error("link i/o error: {0}")]
    Io(std::io::Error),
    /// The local node key cannot be used (not a node key, certificate generation failed).
    #[error("unusable node key: {0}")]
    Key(String),
}

impl From<plexus_protocol::frame::FrameTooLarge> for NetError {
    fn from(e: plexus_protocol::frame::FrameTooLarge) -> NetError {
        NetError::FrameTooLarge {
            len: e.len,
            max: e.max,
        }
    }
}
