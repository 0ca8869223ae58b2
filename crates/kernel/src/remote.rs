//! Routing of streams to other nodes of a cluster.

use crate::service::{BoxFuture, Outcome};
use crate::{Cx, Error};
use plexus_units::Unit;

/// A node of the cluster that a call can go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// The node's persistent id.
    pub id: String,
    /// The node's name.
    pub name: String,
}

/// Sends streams to other nodes. A kernel without one (a single node) handles every stream
/// itself; a cluster node installs one with [`crate::Kernel::set_remote`].
///
/// The kernel asks it only when a stream cannot or must not run here: the stream is pinned to
/// another node (`u@serv:node`) or this node does not provide the service. Session-scoped
/// services (`io.term`) never go through it: they stay with the session.
pub trait Remote: Send + Sync + 'static {
    /// The node that should handle `service`; `node` is the stream's pin (a name or id), and
    /// `local` says whether this node provides the service. `Ok(None)` means this node. An
    /// unknown node or a service no node provides is an error (`node.unknown`,
    /// `serv.unknown`).
    fn route(
        &self,
        service: &str,
        node: Option<&str>,
        local: bool,
    ) -> Result<Option<NodeRef>, Error>;

    /// Sends `msg`, unevaluated, to `service` on `node` on the authority of `cx`'s author, and
    /// returns its outcome. The message is evaluated there (its streams run from that node);
    /// the session's terminal stays the caller's.
    fn call<'a>(
        &'a self,
        cx: &'a Cx,
        node: &'a NodeRef,
        service: &'a str,
        msg: Unit,
    ) -> BoxFuture<'a, Outcome>;
}
