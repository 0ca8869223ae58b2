//! An in-memory transport with fault injection, for tests and the deterministic simulator.
//!
//! Endpoints are named and live in a shared [`MemNetwork`]. Links check node keys against the
//! endpoints' [`Allow`] sets as the TLS transport does, but carry frames through channels.
//! Faults are set at run time, per direction between two endpoint names:
//!
//! - **delay**: every frame is delivered that long after it was sent (order is kept);
//! - **loss**: every frame is dropped with a probability, drawn from a random generator
//!   seeded from the network's seed, the two names and the link's number, so a run is
//!   reproducible whatever the interleaving of other links;
//! - **partition**: frames between the two sides are dropped (links stay open, frames sent
//!   meanwhile are lost, as by a network that discards packets; new connections fail with
//!   [`NetError::Unreachable`]). [`MemNetwork::heal`] lets frames through again.
//!
//! Loss and partitions make a link unreliable on purpose: layers above must cope with lost
//! frames (timeouts, retries), as they must with a real link that breaks.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use plexus_identity::{Keypair, PublicKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Allow, Expect, Link, LinkConfig, Listener, NetError, OutFrame, PeerInfo, Transport};

/// Faults on the frames from one endpoint to another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Time from sending a frame to its delivery.
    pub delay: Duration,
    /// Probability (0 to 1) that a frame is lost.
    pub loss: f64,
}

/// Counts of frames, over the whole network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Frames given to links.
    pub sent: u64,
    /// Frames delivered to receivers.
    pub delivered: u64,
    /// Frames dropped by the loss probability.
    pub lost: u64,
    /// Frames dropped by a partition.
    pub blocked: u64,
}

struct Endpoint {
    key: PublicKey,
    node_name: String,
    max_frame: usize,
    allow: Allow,
    incoming: mpsc::Sender<Result<Link, NetError>>,
}

#[derive(Default)]
struct State {
    seed: u64,
    links: u64,
    endpoints: HashMap<String, Endpoint>,
    default_faults: Faults,
    faults: HashMap<(String, String), Faults>,
    /// Pairs of sides that cannot talk.
    partitions: Vec<(BTreeSet<String>, BTreeSet<String>)>,
    stats: MemStats,
}

impl State {
    fn faults(&self, from: &str, to: &str) -> Faults {
        self.faults
            .get(&(from.to_owned(), to.to_owned()))
            .copied()
            .unwrap_or(self.default_faults)
    }

    fn partitioned(&self, a: &str, b: &str) -> bool {
        self.partitions
            .iter()
            .any(|(x, y)| (x.contains(a) && y.contains(b)) || (x.contains(b) && y.contains(a)))
    }
}

/// A network of in-memory endpoints and the faults between them. Clone it to share it.
#[derive(Clone, Default)]
pub struct MemNetwork {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNetwork").finish_non_exhaustive()
    }
}

/// splitmix64: mixes a value into well-spread bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mix_str(mut h: u64, s: &str) -> u64 {
    for b in s.bytes() {
        h = mix(h ^ u64::from(b));
    }
    mix(h ^ 0xff)
}

impl MemNetwork {
    /// An empty network whose loss decisions derive from `seed`.
    pub fn new(seed: u64) -> MemNetwork {
        let net = MemNetwork::default();
        net.lock().seed = seed;
        net
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A transport for the node `node`, known on this network as `name`, accepting the
    /// peers in `allow`.
    pub fn transport(
        &self,
        name: &str,
        node: &Keypair,
        allow: Allow,
        config: LinkConfig,
    ) -> MemTransport {
        MemTransport {
            net: self.clone(),
            name: name.to_owned(),
            node_name: node.name().to_owned(),
            key: node.public(),
            allow,
            config,
        }
    }

    /// Sets the faults from `from` to `to` (one direction).
    pub fn set_faults(&self, from: &str, to: &str, faults: Faults) {
        self.lock()
            .faults
            .insert((from.to_owned(), to.to_owned()), faults);
    }

    /// Sets the faults between every pair without faults of its own.
    pub fn set_default_faults(&self, faults: Faults) {
        self.lock().default_faults = faults;
    }

    /// Removes every per-direction fault and the default ones.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.faults.clear();
        s.default_faults = Faults::default();
    }

    /// Cuts every endpoint in `a` off from every endpoint in `b`, both ways.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        let side = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let mut s = self.lock();
        s.partitions.push((side(a), side(b)));
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().partitions.clear();
    }

    /// Whether `a` and `b` are cut off from each other.
    pub fn is_partitioned(&self, a: &str, b: &str) -> bool {
        self.lock().partitioned(a, b)
    }

    /// Frame counts so far.
    pub fn stats(&self) -> MemStats {
        self.lock().stats
    }

    /// Starts moving frames from `from` to `to`: drops them per the faults, delays them,
    /// hands them on in order.
    fn spawn_pump(
        &self,
        from: String,
        to: String,
        link_no: u64,
        mut out_rx: mpsc::Receiver<OutFrame>,
        in_tx: mpsc::Sender<Result<Bytes, NetError>>,
        queue: usize,
    ) {
        let seed = {
            let s = self.lock();
            mix_str(mix_str(mix(s.seed ^ mix(link_no)), &from), &to)
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let (stage_tx, mut stage_rx) = mpsc::channel::<(Instant, Bytes)>(queue.max(1));
        let net = self.clone();
        let (f2, t2) = (from.clone(), to.clone());
        // Intake: decide each frame's fate when it is sent.
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                let frame = frame.into_bytes();
                let deliver_at = {
                    let mut s = net.lock();
                    s.stats.sent += 1;
                    let faults = s.faults(&from, &to);
                    if s.partitioned(&from, &to) {
                        s.stats.blocked += 1;
                        continue;
                    }
                    if faults.loss > 0.0 && rng.gen_bool(faults.loss.clamp(0.0, 1.0)) {
                        s.stats.lost += 1;
                        continue;
                    }
                    Instant::now() + faults.delay
                };
                if stage_tx.send((deliver_at, frame)).await.is_err() {
                    return;
                }
            }
        });
        // Delivery: each frame at its time, in order.
        let net = self.clone();
        tokio::spawn(async move {
            while let Some((at, frame)) = stage_rx.recv().await {
                tokio::time::sleep_until(at).await;
                {
                    let mut s = net.lock();
                    if s.partitioned(&f2, &t2) {
                        s.stats.blocked += 1;
                        continue;
                    }
                    s.stats.delivered += 1;
                }
                if in_tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One node's access to a [`MemNetwork`]. Addresses are endpoint names.
#[derive(Clone, Debug)]
pub struct MemTransport {
    net: MemNetwork,
    name: String,
    node_name: String,
    key: PublicKey,
    allow: Allow,
    config: LinkConfig,
}

impl MemTransport {
    /// This endpoint's name on the network.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The allow set (a shared handle).
    pub fn allow(&self) -> &Allow {
        &self.allow
    }
}

/// Incoming in-memory links on one endpoint name. Dropping it frees the name.
#[derive(Debug)]
pub struct MemListener {
    net: MemNetwork,
    name: String,
    links: mpsc::Receiver<Result<Link, NetError>>,
}

impl Drop for MemListener {
    fn drop(&mut self) {
        self.net.lock().endpoints.remove(&self.name);
    }
}

impl Listener for MemListener {
    type Addr = String;

    fn local_addr(&self) -> String {
        self.name.clone()
    }

    async fn accept(&mut self) -> Option<Result<Link, NetError>> {
        self.links.recv().await
    }
}

impl Transport for MemTransport {
    type Addr = String;
    type Listener = MemListener;

    async fn listen(&self, addr: &String) -> Result<MemListener, NetError> {
        let mut s = self.net.lock();
        if s.endpoints.contains_key(addr) {
            return Err(NetError::AddrInUse { addr: addr.clone() });
        }
        let (incoming, links) = mpsc::channel(64);
        s.endpoints.insert(
            addr.clone(),
            Endpoint {
                key: self.key,
                node_name: self.node_name.clone(),
                max_frame: self.config.max_frame,
                allow: self.allow.clone(),
                incoming,
            },
        );
        Ok(MemListener {
            net: self.net.clone(),
            name: addr.clone(),
            links,
        })
    }

    async fn connect(&self, addr: &String, expect: Expect) -> Result<Link, NetError> {
        let (server_key, server_name, server_max, server_allow, incoming, link_no) = {
            let mut s = self.net.lock();
            if s.partitioned(&self.name, addr) {
                return Err(NetError::Unreachable {
                    addr: addr.clone(),
                    why: "partitioned",
                });
            }
            let Some(ep) = s.endpoints.get(addr) else {
                return Err(NetError::Unreachable {
                    addr: addr.clone(),
                    why: "no endpoint listens there",
                });
            };
            let out = (
                ep.key,
                ep.node_name.clone(),
                ep.max_frame,
                ep.allow.clone(),
                ep.incoming.clone(),
                s.links,
            );
            s.links += 1;
            out
        };
        // As in TLS: the server checks the client's key, the client the server's.
        if !server_allow.contains(&self.key) {
            let _ = incoming
                .send(Err(NetError::UnknownPeer {
                    key: Box::new(self.key),
                }))
                .await;
            return Err(NetError::RefusedByPeer);
        }
        if let Expect::Key(expected) = expect {
            if expected != server_key {
                return Err(NetError::UnexpectedPeer {
                    expected: Box::new(expected),
                    got: Box::new(server_key),
                });
            }
        }
        if !self.allow.contains(&server_key) {
            return Err(NetError::UnknownPeer {
                key: Box::new(server_key),
            });
        }
        let queue = self.config.queue;
        let (client, c_out, c_in) = Link::from_channels(
            PeerInfo {
                key: server_key,
                name: server_name,
                max_frame: server_max,
                addr: addr.clone(),
            },
            queue,
        );
        let (server, s_out, s_in) = Link::from_channels(
            PeerInfo {
                key: self.key,
                name: self.node_name.clone(),
                max_frame: self.config.max_frame,
                addr: self.name.clone(),
            },
            queue,
        );
        self.net
            .spawn_pump(self.name.clone(), addr.clone(), link_no, c_out, s_in, queue);
        self.net
            .spawn_pump(addr.clone(), self.name.clone(), link_no, s_out, c_in, queue);
        incoming
            .send(Ok(server))
            .await
            .map_err(|_| NetError::Unreachable {
                addr: addr.clone(),
                why: "the listener stopped",
            })?;
        Ok(client)
    }
}
