//! LAN discovery: cluster members that opt in (`plx node --mdns`) advertise themselves over
//! multicast DNS, and `plx discover` lists the clusters it hears about.
//!
//! An advert says only where a cluster can be reached: the service type is
//! `_plexus._tcp.local.`, the port is the node's cluster port, and the TXT record holds
//! `cluster` (the cluster id, 32 hex digits), `node` (the node's name) and `v` (the Plexus
//! version). It grants nothing: joining still takes a token from `plx invite`, and links are
//! still mutual TLS on node keys. Adverts that do not have this shape are ignored.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

/// The DNS-SD service type of Plexus cluster members.
pub const SERVICE_TYPE: &str = "_plexus._tcp.local.";

/// Longest node name accepted from an advert (node names are at most 64 bytes).
const MAX_NAME: usize = 64;

/// Why discovery could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The multicast DNS responder failed (no usable network interface, a socket error…).
    #[error("multicast DNS: {0}")]
    Mdns(String),
}

fn mdns_error(e: mdns_sd::Error) -> DiscoveryError {
    DiscoveryError::Mdns(e.to_string())
}

/// This node's advert; withdrawn (a goodbye packet) when dropped.
pub struct Advert {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Advert {
    /// Starts advertising that node `name` of cluster `cluster` listens at `addr`. An
    /// unspecified address (`0.0.0.0`) advertises every address of the machine.
    pub fn start(
        cluster: &[u8; 16],
        name: &str,
        addr: SocketAddr,
    ) -> Result<Advert, DiscoveryError> {
        let daemon = ServiceDaemon::new().map_err(mdns_error)?;
        let id = hex(cluster);
        // Unique per node and cluster; readable in generic mDNS browsers.
        let instance = format!("{name}-{}", &id[..8]);
        let host = format!("{name}-{}.local.", &id[..8]);
        let props = [
            ("cluster", id.as_str()),
            ("node", name),
            ("v", env!("CARGO_PKG_VERSION")),
        ];
        let info = if addr.ip().is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", addr.port(), &props[..])
                .map(ServiceInfo::enable_addr_auto)
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance,
                &host,
                addr.ip(),
                addr.port(),
                &props[..],
            )
        }
        .map_err(mdns_error)?;
        let fullname = info.get_fullname().to_owned();
        daemon.register(info).map_err(mdns_error)?;
        Ok(Advert { daemon, fullname })
    }
}

impl Drop for Advert {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// A cluster heard on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCluster {
    /// The cluster id, 32 hex digits.
    pub cluster: String,
    /// Its members that answered: name, cluster addresses, version.
    pub nodes: Vec<FoundNode>,
}

/// A member of a [`FoundCluster`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundNode {
    /// The node's name.
    pub name: String,
    /// Where it listens for links.
    pub addrs: Vec<SocketAddr>,
    /// Its Plexus version.
    pub version: String,
}

/// Listens for `wait` and gives the clusters heard, ordered by id, members by name.
pub fn discover(wait: Duration) -> Result<Vec<FoundCluster>, DiscoveryError> {
    let daemon = ServiceDaemon::new().map_err(mdns_error)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(mdns_error)?;
    let deadline = Instant::now() + wait;
    let mut clusters: BTreeMap<String, BTreeMap<String, FoundNode>> = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        if let ServiceEvent::ServiceResolved(s) = event {
            let addrs: Vec<IpAddr> = s.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
            let found = advert(
                s.get_property_val_str("cluster"),
                s.get_property_val_str("node"),
                s.get_property_val_str("v"),
                &addrs,
                s.get_port(),
            );
            if let Some((cluster, node)) = found {
                clusters
                    .entry(cluster)
                    .or_default()
                    .insert(node.name.clone(), node);
            }
        }
    }
    let _ = daemon.shutdown();
    Ok(clusters
        .into_iter()
        .map(|(cluster, nodes)| FoundCluster {
            cluster,
            nodes: nodes.into_values().collect(),
        })
        .collect())
}

/// An advert's fields, if they have the documented shape.
fn advert(
    cluster: Option<&str>,
    node: Option<&str>,
    version: Option<&str>,
    ips: &[IpAddr],
    port: u16,
) -> Option<(String, FoundNode)> {
    let cluster = cluster?;
    if cluster.len() != 32 || !cluster.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = node?;
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return None;
    }
    let version = version.unwrap_or("?");
    if version.len() > 32 || version.chars().any(char::is_control) || port == 0 {
        return None;
    }
    let mut addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    addrs.sort();
    Some((
        cluster.to_ascii_lowercase(),
        FoundNode {
            name: name.to_owned(),
            addrs,
            version: version.to_owned(),
        },
    ))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adverts_of_the_wrong_shape_are_ignored() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let id = "00112233445566778899aabbccddeeff";
        let (c, n) = advert(Some(id), Some("n1"), Some("0.1.0"), &[ip], 7700).unwrap();
        assert_eq!(c, id);
        assert_eq!(n.addrs, vec!["10.0.0.1:7700".parse().unwrap()]);
        assert!(advert(None, Some("n1"), None, &[ip], 7700).is_none());
        assert!(advert(Some("xyz"), Some("n1"), None, &[ip], 7700).is_none());
        assert!(advert(Some(&id.replace('0', "g")), Some("n1"), None, &[ip], 7700).is_none());
        assert!(advert(Some(id), None, None, &[ip], 7700).is_none());
        assert!(advert(Some(id), Some(""), None, &[ip], 7700).is_none());
        assert!(advert(Some(id), Some(&"x".repeat(65)), None, &[ip], 7700).is_none());
        assert!(advert(Some(id), Some("a\nb"), None, &[ip], 7700).is_none());
        assert!(advert(Some(id), Some("n1"), None, &[ip], 0).is_none());
        assert_eq!(hex(&[0, 0xab, 0x1f]), "00ab1f");
    }
}
