//! Who may use a cluster node's channels: a link authenticated by an unused invite key may
//! make a JOIN call and nothing else (no raft, no calls, no terminal, no SWIM, no unknown
//! channel), and none of its attempts changes the cluster state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use plexus_cluster::raft::{self, Command};
use plexus_identity::{KeyKind, Keypair};
use plexus_net::{
    Allow, BoxFuture, Handler, LinkConfig, Mesh, MeshConfig, MeshError, PeerInfo, TcpTlsTransport,
};
use plexus_node::cluster::{self, wire, ClusterConfig, JoinMode};
use plexus_node::{Node, NodeConfig};
use serde::Serialize;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A loopback address no other test process uses (127.x.y.1 from the process id), any port.
fn fresh_ip(n: u8) -> std::net::SocketAddr {
    let pid = std::process::id();
    format!("127.{}.{}.{n}:0", (pid % 200) + 20, (pid / 200) % 250 + 1)
        .parse()
        .unwrap()
}

/// The raft RPC envelope as it travels (postcard): version 1, the target's raft id, the RPC.
/// Only the variant index of `ClientWrite` (the fifth) matters here.
#[derive(Serialize)]
struct Envelope {
    version: u8,
    to: u64,
    rpc: Rpc,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum Rpc {
    AppendEntries(()),
    Vote(()),
    InstallSnapshot(()),
    FullSnapshot(()),
    ClientWrite(Command),
}

struct Nothing;

impl Handler for Nothing {
    fn message(&self, _: &PeerInfo, _: u8, _: Bytes) {}
    fn call(&self, _: &PeerInfo, _: u8, _: Bytes) -> BoxFuture<'static, Result<Bytes, String>> {
        Box::pin(async { Err("nothing here".to_owned()) })
    }
}

async fn write_until_ok(raft: &raft::ClusterRaft, cmd: Command) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match raft.write(cmd.clone()).await {
            Ok(raft::Response::Err { code, message }) => panic!("{code}: {message}"),
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "cannot write: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_invite_key_may_only_join() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Keypair::generate(KeyKind::User, "admin", &mut rand::rngs::OsRng).unwrap();
    let mut config = NodeConfig::new(dir.path().join("n1"), admin.public(), "admin");
    config.name = Some("n1".into());
    config.cluster = Some(ClusterConfig {
        mode: JoinMode::Init,
        listen: Some(fresh_ip(1)),
        tags: Default::default(),
        profile: None,
        mdns: None,
    });
    let node = Node::start(config).await.unwrap();
    let c = node.cluster().unwrap().clone();
    let node_key = *c.view().me();
    let raft = c.raft().clone();

    // An invite, as `plx invite` makes it; its secret is what a token carries.
    let secret: [u8; 32] = rand::random();
    let invite = cluster::token::invite_keypair(&secret).unwrap();
    write_until_ok(
        &raft,
        Command::AddInvite {
            id: invite.public().to_bytes(),
            expires_ms: now_ms() + 3_600_000,
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.view().is_invite(&invite.public()) {
        assert!(Instant::now() < deadline, "the invite never became known");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The stranger's mesh, with the invite key as its TLS identity.
    let transport =
        TcpTlsTransport::new(&invite, Allow::with_keys([node_key]), LinkConfig::default()).unwrap();
    let stranger = Mesh::new(transport, MeshConfig::default(), Arc::new(Nothing));
    stranger.set_peer(node_key, "n1".into(), c.addr());
    let timeout = Duration::from_secs(10);
    let invites_before = raft.invites(now_ms());

    // JOIN is open: a malformed request reaches the join handler and is answered.
    let join = stranger
        .call(&node_key, wire::JOIN, Bytes::from_static(b"\xff"), timeout)
        .await;
    assert!(
        matches!(&join, Err(MeshError::Remote { message, .. }) if !message.contains("not open")),
        "{join:?}"
    );

    let own_invite: Keypair =
        Keypair::generate(KeyKind::Node, "mine", &mut rand::rngs::OsRng).unwrap();
    let raft_write = |cmd: Command| {
        Bytes::from(
            postcard::to_allocvec(&Envelope {
                version: 1,
                to: raft::node_id(&node_key),
                rpc: Rpc::ClientWrite(cmd),
            })
            .unwrap(),
        )
    };
    let store_call = wire::encode(&wire::CallRequest {
        service: "io.store".into(),
        msg: plexus_units::encode(&plexus_units::parse("{save:call out:@pwned.call}").unwrap())
            .into(),
        author: admin.public().to_bytes(),
        root_hash: [7; 32],
        depth: 0,
        session: None,
        evaluation: None,
    })
    .unwrap();
    let attempts: Vec<(&str, u8, Bytes)> = vec![
        (
            "raft add-invite",
            wire::RAFT,
            raft_write(Command::AddInvite {
                id: own_invite.public().to_bytes(),
                expires_ms: 4_102_444_800_000,
            }),
        ),
        (
            "raft save",
            wire::RAFT,
            raft_write(Command::Save {
                path: vec!["pwned".into()],
                value: plexus_units::encode(&plexus_units::Unit::Bool(true)),
            }),
        ),
        ("call", wire::CALL, Bytes::from(store_call)),
        ("term", wire::TERM, Bytes::from_static(b"\x00\x00")),
        ("unknown", 99, Bytes::from_static(b"hello")),
    ];
    for (what, channel, body) in attempts {
        let got = stranger.call(&node_key, channel, body, timeout).await;
        assert!(
            matches!(&got, Err(MeshError::Remote { message, .. }) if message.contains("not open")),
            "{what} over an invite link: {got:?}"
        );
    }
    // SWIM is one-way: whatever it carries must be dropped unread. A ping's worth of bytes.
    stranger
        .send(&node_key, wire::SWIM, Bytes::from_static(&[0u8; 64]))
        .unwrap();

    // Nothing changed: no new invite, nothing stored, the invite still unused, one member.
    // A write through the leader orders this check after anything the stranger sent.
    write_until_ok(
        &raft,
        Command::Save {
            path: vec!["marker".into()],
            value: plexus_units::encode(&plexus_units::Unit::Bool(true)),
        },
    )
    .await;
    assert_eq!(raft.invites(now_ms()), invites_before);
    assert!(!raft
        .invites(now_ms())
        .contains(&own_invite.public().to_bytes()));
    assert_eq!(raft.load(Some(&["pwned".to_owned()])).unwrap(), None);
    let stored = raft.load(None).unwrap().unwrap_or_default();
    let stored = plexus_units::decode(&stored).unwrap();
    assert!(
        !plexus_units::to_text(&stored).contains("pwned"),
        "{stored:?}"
    );
    assert_eq!(raft.members().len(), 1);
    assert!(c.view().is_invite(&invite.public()));
    stranger.shutdown();
    c.stop().await;
}
