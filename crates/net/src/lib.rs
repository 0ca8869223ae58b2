//! Plexus node links: authenticated, ordered streams of frames between nodes.
//!
//! A tour:
//!
//! - [`Transport`] sets up [`Link`]s: [`Transport::listen`] then [`Listener::accept`], or
//!   [`Transport::connect`] expecting a given node key ([`Expect`]). Every link knows its
//!   peer's proven node key ([`PeerInfo`]); peers not in the [`Allow`] set (the cluster's
//!   known members, updatable at run time) are refused.
//! - [`Link`]: send and receive frames (opaque [`bytes::Bytes`], at most the receiver's
//!   limit). Senders clone ([`LinkSender`]), so many calls can share one link; frames queued
//!   together are written together.
//! - [`TcpTlsTransport`]: TCP with mutual TLS 1.3 (rustls, ring); each node presents a
//!   self-signed certificate for its ed25519 node key. This crate is the only one that
//!   names rustls.
//! - [`accept`]: what keeps an accept loop going under a flood: [`Admission`] makes room for
//!   new connections by dropping the oldest unauthenticated ones, [`AcceptErrors`] backs off
//!   failed accepts and logs them once per burst.
//! - [`MemTransport`] on a [`MemNetwork`]: the same in memory, with delay, seeded loss and
//!   partitions set at run time, for tests and simulation.
//! - [`frame`]: the sans-io wire format (length-prefixed frames, the [`frame::Hello`]).
//! - [`Mesh`]: a node's peer manager on top of a transport: an address book of peers, one
//!   link dialed per peer on demand (re-dialed with exponential backoff), many concurrent
//!   [`Mesh::call`]s (deadlines, cancellation) and one-way [`Mesh::send`]s multiplexed on it;
//!   what peers send goes to a [`Handler`]. Its frames ([`MeshFrame`], decoded by the sans-io
//!   [`decode_mesh_frame`]) travel inside link frames.
//!
//! The handshake and wire format (link frames and mesh frames) are specified in
//! `docs/links.md`.
//!
//! ```
//! use bytes::Bytes;
//! use plexus_identity::{KeyKind, Keypair};
//! use plexus_net::{Allow, Expect, LinkConfig, Listener, MemNetwork, Transport};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! rt.block_on(async {
//!     let a = Keypair::generate(KeyKind::Node, "a", &mut rand::rngs::OsRng).unwrap();
//!     let b = Keypair::generate(KeyKind::Node, "b", &mut rand::rngs::OsRng).unwrap();
//!     let allow = Allow::with_keys([a.public(), b.public()]);
//!     let net = MemNetwork::new(7);
//!     let ta = net.transport("a", &a, allow.clone(), LinkConfig::default());
//!     let tb = net.transport("b", &b, allow, LinkConfig::default());
//!     let mut listener = tb.listen(&"b".to_string()).await.unwrap();
//!     let link = ta.connect(&"b".to_string(), Expect::Key(b.public())).await.unwrap();
//!     let mut incoming = listener.accept().await.unwrap().unwrap();
//!     assert_eq!(incoming.peer().key, a.public());
//!     link.send(Bytes::from_static(b"ping")).await.unwrap();
//!     assert_eq!(incoming.recv().await.unwrap(), "ping");
//! });
//! ```

pub mod accept;
pub mod allow;
pub mod error;
pub mod frame;
pub mod link;
pub mod mem;
pub mod mesh;
pub mod tls;
pub mod transport;

pub use accept::{AcceptErrors, Admission, AdmissionLimits, AfterFailure, Ticket};
pub use allow::Allow;
pub use error::NetError;
pub use frame::{OutFrame, DEFAULT_MAX_FRAME, LINK_VERSION};
pub use link::{traffic, Link, LinkConfig, LinkReceiver, LinkSender, PeerInfo, Traffic};
pub use mem::{Faults, MemListener, MemNetwork, MemStats, MemTransport};
pub use mesh::{
    decode_mesh_frame, BoxFuture, Channel, Handler, Mesh, MeshConfig, MeshError, MeshFrame,
    MeshStats,
};
pub use tls::{TcpTlsListener, TcpTlsTransport};
pub use transport::{Expect, Listener, Transport};
