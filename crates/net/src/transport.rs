//! The transport abstraction: how links are set up.

use std::fmt::{Debug, Display};
use std::future::Future;

use plexus_identity::PublicKey;

use crate::{Link, NetError};

/// Which peer a connecting node expects at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this node key (which must also be in the allow set).
    Key(PublicKey),
    /// Any key in the allow set.
    AnyAllowed,
}

/// A way to set up [`Link`]s between nodes: listen and accept, or connect. Every link a
/// transport returns is authenticated: its [`crate::PeerInfo::key`] is a node key the peer
/// has proven to hold and that was in the allow set during the handshake.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Addresses: a socket address, or an endpoint name in memory.
    type Addr: Clone + Debug + Display + Send + Sync + 'static;
    /// What [`Transport::listen`] gives.
    type Listener: Listener<Addr = Self::Addr>;

    /// Starts accepting links on `addr`.
    fn listen(
        &self,
        addr: &Self::Addr,
    ) -> impl Future<Output = Result<Self::Listener, NetError>> + Send;

    /// Sets up a link to the node at `addr`, refusing any peer other than `expect` says.
    fn connect(
        &self,
        addr: &Self::Addr,
        expect: Expect,
    ) -> impl Future<Output = Result<Link, NetError>> + Send;
}

/// Incoming links on one address. Dropping it stops listening.
pub trait Listener: Send + 'static {
    /// Addresses of the transport.
    type Addr;

    /// The address listened on (with the actual port when port 0 was asked for).
    fn local_addr(&self) -> Self::Addr;

    /// The next incoming link. An `Err` is one refused or failed handshake (an unknown key,
    /// a version mismatch…): log it and call again; the listener keeps working. `None` once
    /// the listener has stopped.
    fn accept(&mut self) -> impl Future<Output = Option<Result<Link, NetError>>> + Send;
}
