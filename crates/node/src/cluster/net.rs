//! How a node's cluster part reaches other nodes: TCP with mutual TLS ([`TcpNet`]) for real
//! nodes, or an in-memory network with fault injection ([`MemNet`]) for running several nodes
//! in one process.

use std::net::SocketAddr;
use std::str::FromStr;

use plexus_identity::Keypair;
use plexus_net::{
    Allow, LinkConfig, MemNetwork, MemTransport, NetError, TcpTlsTransport, Transport,
};

use super::discovery;

/// A cluster network: makes the transports a node links with. The replicated roster, SWIM and
/// join tokens carry addresses as text, so the transport's addresses parse from text.
pub trait Net: Send + Sync + 'static {
    /// The links between nodes.
    type Transport: Transport<Addr: FromStr>;

    /// A transport presenting `key` and accepting the peers in `allow`: the node's own, or the
    /// one a joining node links with under its invite key.
    fn transport(&self, key: &Keypair, allow: Allow) -> Result<Self::Transport, NetError>;

    /// Starts advertising the node on the local network, when the network has such a thing.
    fn advertise(
        &self,
        _cluster: &[u8; 16],
        _name: &str,
        _addr: &Addr<Self>,
    ) -> Option<discovery::Advert> {
        None
    }
}

/// The addresses of a network's transport.
pub type Addr<N> = <<N as Net>::Transport as Transport>::Addr;

/// TCP with mutual TLS on the node keys: the network of real nodes.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpNet;

impl Net for TcpNet {
    type Transport = TcpTlsTransport;

    fn transport(&self, key: &Keypair, allow: Allow) -> Result<TcpTlsTransport, NetError> {
        TcpTlsTransport::new(key, allow, link_config())
    }

    fn advertise(
        &self,
        cluster: &[u8; 16],
        name: &str,
        addr: &SocketAddr,
    ) -> Option<discovery::Advert> {
        // Discovery is a convenience: a LAN without multicast must not stop the node.
        match discovery::Advert::start(cluster, name, *addr) {
            Ok(a) => {
                tracing::info!("advertising the cluster on the LAN (mDNS)");
                Some(a)
            }
            Err(e) => {
                tracing::warn!("cannot advertise the cluster on the LAN: {e}");
                None
            }
        }
    }
}

/// One node's place on an in-memory [`MemNetwork`]: its endpoint name there, which is also
/// its cluster address. Faults and partitions set on the network apply to every link the
/// node makes, its join included.
#[derive(Clone, Debug)]
pub struct MemNet {
    /// The shared network.
    pub network: MemNetwork,
    /// The node's endpoint name.
    pub name: String,
}

impl Net for MemNet {
    type Transport = MemTransport;

    fn transport(&self, key: &Keypair, allow: Allow) -> Result<MemTransport, NetError> {
        Ok(self
            .network
            .transport(&self.name, key, allow, link_config()))
    }
}

/// Links between members carry any call and reply a client connection can (units up to
/// [`plexus_units::Limits::WIRE`]'s size, with room for the frames' own fields).
fn link_config() -> LinkConfig {
    LinkConfig {
        max_frame: plexus_units::Limits::WIRE.max_size + (64 << 10),
        ..LinkConfig::default()
    }
}
