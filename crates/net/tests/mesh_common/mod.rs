//! Shared by the mesh tests: a handler whose behaviour depends on the channel, and nodes on
//! an in-memory network.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plexus_identity::{KeyKind, Keypair, PublicKey};
use plexus_net::{
    Allow, BoxFuture, Channel, Handler, LinkConfig, MemNetwork, MemTransport, Mesh, MeshConfig,
    NetError, PeerInfo,
};
use tokio::sync::mpsc;

/// Replies with the body.
pub const ECHO: Channel = 0;
/// Fails with `refused <body>`.
pub const FAIL: Channel = 1;
/// Never answers; reports when it starts (on `started`) and when its future is dropped (on
/// `dropped`), with the call's body.
pub const HANG: Channel = 2;
/// Replies with as many bytes as the u32 LE in the body says.
pub const BIG: Channel = 3;

pub fn keypair(name: &str) -> Keypair {
    Keypair::generate(KeyKind::Node, name, &mut rand::rngs::OsRng).unwrap()
}

struct DropGuard {
    body: Bytes,
    dropped: mpsc::UnboundedSender<Bytes>,
    running: Arc<AtomicUsize>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        let _ = self.dropped.send(self.body.clone());
    }
}

pub struct TestHandler {
    messages: mpsc::UnboundedSender<(String, Channel, Bytes)>,
    started: mpsc::UnboundedSender<Bytes>,
    dropped: mpsc::UnboundedSender<Bytes>,
    running: Arc<AtomicUsize>,
}

/// What a node's handler saw.
pub struct Probe {
    /// One-way messages: sender's name, channel, body.
    pub messages: mpsc::UnboundedReceiver<(String, Channel, Bytes)>,
    /// Bodies of HANG calls that started.
    pub started: mpsc::UnboundedReceiver<Bytes>,
    /// Bodies of HANG calls whose future was dropped.
    pub dropped: mpsc::UnboundedReceiver<Bytes>,
    /// HANG futures alive.
    pub running: Arc<AtomicUsize>,
}

pub fn handler() -> (Arc<TestHandler>, Probe) {
    let (mt, mr) = mpsc::unbounded_channel();
    let (st, sr) = mpsc::unbounded_channel();
    let (dt, dr) = mpsc::unbounded_channel();
    let running = Arc::new(AtomicUsize::new(0));
    (
        Arc::new(TestHandler {
            messages: mt,
            started: st,
            dropped: dt,
            running: running.clone(),
        }),
        Probe {
            messages: mr,
            started: sr,
            dropped: dr,
            running,
        },
    )
}

impl Handler for TestHandler {
    fn message(&self, from: &PeerInfo, channel: Channel, body: Bytes) {
        let _ = self.messages.send((from.name.clone(), channel, body));
    }

    fn call(
        &self,
        _from: &PeerInfo,
        channel: Channel,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, String>> {
        match channel {
            ECHO => Box::pin(async move { Ok(body) }),
            FAIL => {
                Box::pin(async move { Err(format!("refused {}", String::from_utf8_lossy(&body))) })
            }
            HANG => {
                self.running.fetch_add(1, Ordering::SeqCst);
                let guard = DropGuard {
                    body: body.clone(),
                    dropped: self.dropped.clone(),
                    running: self.running.clone(),
                };
                let _ = self.started.send(body);
                Box::pin(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok(Bytes::new())
                })
            }
            BIG => Box::pin(async move {
                let n = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
                Ok(Bytes::from(vec![7u8; n]))
            }),
            _ => Box::pin(async move { Err(format!("no channel {channel}")) }),
        }
    }
}

/// A node on an in-memory network.
pub struct MemNode {
    pub kp: Keypair,
    pub mesh: Mesh<MemTransport>,
    pub probe: Probe,
}

impl MemNode {
    pub fn key(&self) -> PublicKey {
        self.kp.public()
    }

    pub fn name(&self) -> String {
        self.kp.name().to_owned()
    }

    /// Puts `other` in this node's address book at its name.
    pub fn know(&self, other: &MemNode) {
        self.mesh.set_peer(other.key(), other.name(), other.name());
    }
}

/// A node named after its key pair, listening at its name (retrying while the name is still
/// held by a node that was just shut down).
pub async fn mem_node(
    net: &MemNetwork,
    kp: &Keypair,
    allow: &Allow,
    config: MeshConfig,
    link: LinkConfig,
) -> MemNode {
    let t = net.transport(kp.name(), kp, allow.clone(), link);
    let (h, probe) = handler();
    let mesh = Mesh::new(t, config, h);
    let name = kp.name().to_owned();
    let mut tries = 0;
    loop {
        match mesh.listen(&name).await {
            Err(NetError::AddrInUse { .. }) if tries < 1000 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => {
                assert_eq!(other.unwrap(), name);
                break;
            }
        }
    }
    MemNode {
        kp: kp.clone(),
        mesh,
        probe,
    }
}

/// Two nodes `a` and `b` that know each other, with default settings.
pub async fn pair(seed: u64) -> (MemNetwork, MemNode, MemNode) {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let allow = Allow::with_keys([ka.public(), kb.public()]);
    let net = MemNetwork::new(seed);
    let a = mem_node(
        &net,
        &ka,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    let b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    a.know(&b);
    b.know(&a);
    (net, a, b)
}

/// The next item of a probe channel, failing the test if none comes within `within`.
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, within: Duration) -> T {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("nothing came in time")
        .expect("channel closed")
}
