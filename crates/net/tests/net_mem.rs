#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The in-memory transport: links, refusals, delay, seeded loss, partitions.

use std::time::Duration;

use bytes::Bytes;
use plexus_identity::{KeyKind, Keypair};
use plexus_net::{
    Allow, Expect, Faults, Link, LinkConfig, Listener, MemListener, MemNetwork, MemTransport,
    NetError, Transport,
};
use tokio::time::{timeout, Instant};

fn node(name: &str) -> Keypair {
    Keypair::generate(KeyKind::Node, name, &mut rand::rngs::OsRng).unwrap()
}

struct Pair {
    net: MemNetwork,
    a: Keypair,
    b: Keypair,
    ta: MemTransport,
    lb: MemListener,
}

async fn pair(seed: u64) -> Pair {
    let (a, b) = (node("a"), node("b"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let net = MemNetwork::new(seed);
    let ta = net.transport("a", &a, allow.clone(), LinkConfig::default());
    let tb = net.transport("b", &b, allow, LinkConfig::default());
    let lb = tb.listen(&"b".to_string()).await.unwrap();
    Pair { net, a, b, ta, lb }
}

async fn link(p: &mut Pair) -> (Link, Link) {
    let client =
        p.ta.connect(&"b".into(), Expect::Key(p.b.public()))
            .await
            .unwrap();
    let server = p.lb.accept().await.unwrap().unwrap();
    (client, server)
}

/// Receives frames until none comes for `quiet` (virtual time).
async fn drain(link: &mut Link, quiet: Duration) -> Vec<Bytes> {
    let mut got = Vec::new();
    while let Ok(Some(f)) = timeout(quiet, link.recv()).await {
        got.push(f);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn links_carry_frames_and_know_their_peer() {
    let mut p = pair(1).await;
    let (mut c, mut s) = link(&mut p).await;
    assert_eq!(c.peer().key, p.b.public());
    assert_eq!(c.peer().name, "b");
    assert_eq!(s.peer().key, p.a.public());
    assert_eq!(s.peer().name, "a");
    for i in 0..100u32 {
        c.send(Bytes::from(i.to_le_bytes().to_vec())).await.unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(
            s.recv().await.unwrap(),
            Bytes::from(i.to_le_bytes().to_vec())
        );
    }
    s.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), "back");
    // A second listener on the same name is refused; the name is free once dropped.
    let tb2 = p
        .net
        .transport("b", &p.b, Allow::new(), LinkConfig::default());
    assert!(matches!(
        tb2.listen(&"b".into()).await,
        Err(NetError::AddrInUse { .. })
    ));
    // Dropping one end closes the other.
    drop(s);
    assert!(c.recv().await.is_none());
    // No such endpoint.
    assert!(matches!(
        p.ta.connect(&"nowhere".into(), Expect::AnyAllowed).await,
        Err(NetError::Unreachable { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn unknown_keys_and_frame_limits() {
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let net = MemNetwork::new(0);
    let small = LinkConfig {
        max_frame: 1000,
        ..LinkConfig::default()
    };
    let ta = net.transport(
        "a",
        &a,
        Allow::with_keys([b.public()]),
        LinkConfig::default(),
    );
    let tb = net.transport("b", &b, Allow::with_keys([a.public(), b.public()]), small);
    let tc = net.transport(
        "c",
        &c,
        Allow::with_keys([b.public()]),
        LinkConfig::default(),
    );
    let mut lb = tb.listen(&"b".into()).await.unwrap();
    // c is unknown to b: both sides are told.
    let e = tc
        .connect(&"b".into(), Expect::AnyAllowed)
        .await
        .unwrap_err();
    assert!(matches!(e, NetError::RefusedByPeer), "{e}");
    let e = lb.accept().await.unwrap().unwrap_err();
    assert!(
        matches!(&e, NetError::UnknownPeer { key } if **key == c.public()),
        "{e}"
    );
    // The wrong expected key.
    let e = ta
        .connect(&"b".into(), Expect::Key(c.public()))
        .await
        .unwrap_err();
    assert!(matches!(e, NetError::UnexpectedPeer { .. }), "{e}");
    // b revoked by a.
    ta.allow().remove(&b.public());
    let e = ta
        .connect(&"b".into(), Expect::AnyAllowed)
        .await
        .unwrap_err();
    assert!(matches!(e, NetError::UnknownPeer { .. }), "{e}");
    ta.allow().insert(b.public());
    // Frame limits are b's.
    let l = ta.connect(&"b".into(), Expect::AnyAllowed).await.unwrap();
    let mut s = lb.accept().await.unwrap().unwrap();
    l.send(Bytes::from(vec![1; 1000])).await.unwrap();
    assert!(matches!(
        l.send(Bytes::from(vec![1; 1001])).await,
        Err(NetError::FrameTooLarge {
            len: 1001,
            max: 1000
        })
    ));
    assert_eq!(s.recv().await.unwrap().len(), 1000);
}

#[tokio::test(start_paused = true)]
async fn delay_is_per_direction_and_keeps_order() {
    let mut p = pair(2).await;
    p.net.set_faults(
        "a",
        "b",
        Faults {
            delay: Duration::from_millis(50),
            loss: 0.0,
        },
    );
    let (mut c, mut s) = link(&mut p).await;
    let t0 = Instant::now();
    for i in 0..10u8 {
        c.send(Bytes::from(vec![i])).await.unwrap();
    }
    for i in 0..10u8 {
        assert_eq!(s.recv().await.unwrap()[0], i);
    }
    let took = t0.elapsed();
    // All ten were sent at once, so they arrive together, 50 ms later.
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_millis(60),
        "{took:?}"
    );
    let t1 = Instant::now();
    s.send(Bytes::from_static(b"fast")).await.unwrap();
    c.recv().await.unwrap();
    assert!(t1.elapsed() < Duration::from_millis(5));
    // Changed at run time.
    p.net.clear_faults();
    let t2 = Instant::now();
    c.send(Bytes::from_static(b"now")).await.unwrap();
    s.recv().await.unwrap();
    assert!(t2.elapsed() < Duration::from_millis(5));
}

async fn lossy_run(seed: u64) -> (usize, Vec<Bytes>) {
    let mut p = pair(seed).await;
    p.net.set_default_faults(Faults {
        delay: Duration::from_millis(1),
        loss: 0.3,
    });
    let (c, mut s) = link(&mut p).await;
    for i in 0..1000u32 {
        c.send(Bytes::from(i.to_le_bytes().to_vec())).await.unwrap();
    }
    let got = drain(&mut s, Duration::from_millis(100)).await;
    let stats = p.net.stats();
    assert_eq!(stats.sent, 1000);
    assert_eq!(stats.lost + stats.delivered, 1000);
    assert_eq!(stats.delivered as usize, got.len());
    (got.len(), got)
}

#[tokio::test(start_paused = true)]
async fn loss_is_seeded_and_reproducible() {
    let (n1, f1) = lossy_run(42).await;
    let (n2, f2) = lossy_run(42).await;
    let (n3, f3) = lossy_run(43).await;
    assert_eq!(n1, n2);
    assert_eq!(f1, f2, "the same seed loses the same frames");
    assert_ne!(f1, f3, "another seed loses others");
    for n in [n1, n3] {
        assert!((600..=800).contains(&n), "about 70% delivered, got {n}");
    }
    // What arrives is in order.
    let idx: Vec<u32> = f1
        .iter()
        .map(|f| u32::from_le_bytes(f[..4].try_into().unwrap()))
        .collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test(start_paused = true)]
async fn partitions_drop_frames_until_healed() {
    let mut p = pair(3).await;
    let (mut c, mut s) = link(&mut p).await;
    p.net.partition(&["a"], &["b", "x"]);
    assert!(p.net.is_partitioned("b", "a"));
    c.send(Bytes::from_static(b"lost-1")).await.unwrap();
    s.send(Bytes::from_static(b"lost-2")).await.unwrap();
    assert!(drain(&mut s, Duration::from_millis(200)).await.is_empty());
    assert!(drain(&mut c, Duration::from_millis(200)).await.is_empty());
    // New links cannot be made across it.
    assert!(matches!(
        p.ta.connect(&"b".into(), Expect::AnyAllowed).await,
        Err(NetError::Unreachable {
            why: "partitioned",
            ..
        })
    ));
    assert_eq!(p.net.stats().blocked, 2);
    p.net.heal();
    c.send(Bytes::from_static(b"after")).await.unwrap();
    s.send(Bytes::from_static(b"after-2")).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), "after");
    assert_eq!(c.recv().await.unwrap(), "after-2");
    let (_c2, _s2) = link(&mut p).await;

    // A frame in flight when the partition starts is dropped too.
    p.net.set_default_faults(Faults {
        delay: Duration::from_millis(100),
        loss: 0.0,
    });
    c.send(Bytes::from_static(b"in-flight")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    p.net.partition(&["a"], &["b"]);
    assert!(drain(&mut s, Duration::from_millis(300)).await.is_empty());
}
