#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mesh under faults: peers that die and come back, unreachable peers and backoff,
//! partitions, peers that send garbage.

mod mesh_common;

use std::time::Duration;

use bytes::Bytes;
use mesh_common::*;
use plexus_identity::Keypair;
use plexus_net::mesh::{decode_mesh_frame, MeshFrame};
use plexus_net::{Allow, Expect, Faults, LinkConfig, MemNetwork, MeshConfig, MeshError, Transport};
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn a_killed_peer_fails_pending_calls_promptly_and_comes_back() {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let allow = Allow::with_keys([ka.public(), kb.public()]);
    let net = MemNetwork::new(11);
    let a = mem_node(
        &net,
        &ka,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    let mut b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    a.know(&b);

    for round in 0..2 {
        let mesh = a.mesh.clone();
        let to = b.key();
        let pending = tokio::spawn(async move {
            mesh.call(&to, HANG, Bytes::from_static(b"doomed"), LONG)
                .await
        });
        next(&mut b.probe.started, LONG).await;
        let t0 = Instant::now();
        if round == 0 {
            drop(b.mesh); // dropping the last handle shuts the mesh down
        } else {
            b.mesh.shutdown();
        }
        let e = pending.await.unwrap().unwrap_err();
        assert!(
            matches!(&e, MeshError::LinkClosed { peer, .. } if peer == "b"),
            "round {round}: {e}"
        );
        assert!(e.to_string().contains("the link to b closed"), "{e}");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "failed promptly, not at the deadline"
        );
        assert_eq!(next(&mut b.probe.dropped, LONG).await, "doomed");
        assert!(!a.mesh.is_connected(&kb.public()));

        // b comes back (same key, same address): calls work again.
        b = mem_node(
            &net,
            &kb,
            &allow,
            MeshConfig::default(),
            LinkConfig::default(),
        )
        .await;
        let ok = a
            .mesh
            .call(&b.key(), ECHO, Bytes::from_static(b"again"), LONG)
            .await
            .unwrap();
        assert_eq!(ok, "again");
        assert!(a.mesh.is_connected(&b.key()));
    }
    assert_eq!(a.mesh.stats().dials, 3);
}

/// Node "a" (reconnect backoff from 10 s) after its first call to "b" failed, nobody
/// listening at "b" yet: a, b's key pair, the network, the keys allowed, and that failure.
async fn a_failing_to_reach_b(seed: u64) -> (MemNode, Keypair, MemNetwork, Allow, MeshError) {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let allow = Allow::with_keys([ka.public(), kb.public()]);
    let net = MemNetwork::new(seed);
    let config = MeshConfig {
        reconnect_min: Duration::from_secs(10),
        reconnect_max: Duration::from_secs(60),
        ..MeshConfig::default()
    };
    let a = mem_node(&net, &ka, &allow, config, LinkConfig::default()).await;
    a.mesh.set_peer(kb.public(), "b".into(), "b".into());
    let e = a
        .mesh
        .call(&kb.public(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    (a, kb, net, allow, e)
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_peer_fails_fast_during_backoff_then_reconnects() {
    let (a, kb, net, allow, e) = a_failing_to_reach_b(12).await;
    assert!(
        matches!(&e, MeshError::Unreachable { peer, .. } if peer == "b"),
        "{e}"
    );
    assert!(e.to_string().contains("unreachable"), "{e}");
    assert_eq!(a.mesh.stats().dials, 1);
    assert_eq!(a.mesh.stats().dial_failures, 1);

    // Within the backoff: fail fast, no new dial, messages dropped quietly.
    let t0 = Instant::now();
    let e = a
        .mesh
        .call(&kb.public(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MeshError::Unreachable { reason, .. } if reason.contains("next attempt")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    a.mesh.send(&kb.public(), 0, Bytes::new()).unwrap();
    assert_eq!(a.mesh.stats().dials, 1);

    // b comes up; still within the backoff.
    let b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    assert!(a
        .mesh
        .call(&b.key(), ECHO, Bytes::new(), LONG)
        .await
        .is_err());
    assert_eq!(a.mesh.stats().dials, 1);

    // After the first backoff (at most 10 s): a new dial, which works.
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"hi"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "hi");
    assert_eq!(a.mesh.stats().dials, 2);

    // Failures in a row back off longer: b goes away for good.
    drop(b);
    tokio::task::yield_now().await;
    let mut dials = a.mesh.stats().dials;
    let mut waited = Vec::new();
    for _ in 0..3 {
        // Wait until the next dial happens, polling every 100 ms.
        let t0 = Instant::now();
        loop {
            let _ = a.mesh.call(&kb.public(), ECHO, Bytes::new(), LONG).await;
            if a.mesh.stats().dials > dials {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        dials = a.mesh.stats().dials;
        waited.push(t0.elapsed());
    }
    // The first of these dials is at once (the link had just closed), then 7.5-10 s, then
    // 15-20 s (jitter takes up to a quarter off).
    assert!(waited[0] < Duration::from_secs(1), "{waited:?}");
    assert!(
        waited[1] >= Duration::from_millis(7_500) && waited[1] <= Duration::from_millis(10_200),
        "{waited:?}"
    );
    assert!(
        waited[2] >= Duration::from_secs(15) && waited[2] <= Duration::from_millis(20_200),
        "{waited:?}"
    );
}

/// A peer that connects to us is up: the backoff from failed dials to it while it was down
/// ends at once, so our next call dials it instead of failing with "next attempt in …".
#[tokio::test(start_paused = true)]
async fn a_peer_that_connects_ends_its_backoff() {
    let (a, kb, net, allow, _) = a_failing_to_reach_b(13).await;
    let e = a
        .mesh
        .call(&kb.public(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("next attempt"), "{e}");
    assert_eq!(a.mesh.stats().dials, 1);

    // b comes up and calls a: a accepts b's link, and its next call to b dials at once.
    let b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    b.know(&a);
    let t0 = Instant::now();
    let hi = b
        .mesh
        .call(&a.key(), ECHO, Bytes::from_static(b"hi"), LONG)
        .await
        .unwrap();
    assert_eq!(hi, "hi");
    let back = a
        .mesh
        .call(&kb.public(), ECHO, Bytes::from_static(b"back"), LONG)
        .await
        .unwrap();
    assert_eq!(back, "back");
    assert_eq!(a.mesh.stats().dials, 2);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_partition_then_heal_recovers() {
    let (ka, kb, kc) = (keypair("a"), keypair("b"), keypair("c"));
    let allow = Allow::with_keys([ka.public(), kb.public(), kc.public()]);
    let net = MemNetwork::new(13);
    let config = MeshConfig {
        reconnect_min: Duration::from_secs(1),
        reconnect_max: Duration::from_secs(4),
        ..MeshConfig::default()
    };
    let link = LinkConfig::default;
    let a = mem_node(&net, &ka, &allow, config.clone(), link()).await;
    let b = mem_node(&net, &kb, &allow, config.clone(), link()).await;
    let c = mem_node(&net, &kc, &allow, config, link()).await;
    a.know(&b);
    a.know(&c);
    a.mesh
        .call(&b.key(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap();

    net.partition(&["a"], &["b", "c"]);
    // The link to b stays open but carries nothing: the call times out.
    let e = a
        .mesh
        .call(&b.key(), ECHO, Bytes::new(), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, MeshError::Timeout { .. }), "{e}");
    // No link to c yet: dialing across the partition fails.
    let e = a
        .mesh
        .call(&c.key(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MeshError::Unreachable { reason, .. } if reason.contains("partitioned")),
        "{e}"
    );

    net.heal();
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"b"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "b");
    // c after its backoff.
    let t0 = Instant::now();
    let ok = loop {
        match a
            .mesh
            .call(&c.key(), ECHO, Bytes::from_static(b"c"), LONG)
            .await
        {
            Ok(r) => break r,
            Err(MeshError::Unreachable { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(ok, "c");
    assert!(t0.elapsed() < LONG);
    assert_eq!(a.mesh.stats().dials, 3);
}

#[tokio::test(start_paused = true)]
async fn lossy_links_lose_calls_not_the_mesh() {
    let (net, a, b) = pair(14).await;
    net.set_default_faults(Faults {
        delay: Duration::from_millis(5),
        loss: 0.3,
    });
    let (mut ok, mut timeouts) = (0, 0);
    for i in 0..100u32 {
        match a
            .mesh
            .call(
                &b.key(),
                ECHO,
                Bytes::from(i.to_string()),
                Duration::from_millis(500),
            )
            .await
        {
            Ok(r) => {
                assert_eq!(r, i.to_string());
                ok += 1;
            }
            Err(MeshError::Timeout { .. }) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok > 20 && timeouts > 10, "ok {ok}, timeouts {timeouts}");
    net.clear_faults();
    for _ in 0..10 {
        a.mesh
            .call(&b.key(), ECHO, Bytes::new(), LONG)
            .await
            .unwrap();
    }
    assert_eq!(a.mesh.stats().dials, 1);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_frame_closes_that_link_only() {
    let (ka, kb, evil_kp) = (keypair("a"), keypair("b"), keypair("evil"));
    let allow = Allow::with_keys([ka.public(), kb.public(), evil_kp.public()]);
    let net = MemNetwork::new(15);
    let a = mem_node(
        &net,
        &ka,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    let mut b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    a.know(&b);
    let evil = net.transport("evil", &evil_kp, allow.clone(), LinkConfig::default());

    // A well-formed call by hand: the frame format as specified.
    let mut raw = evil
        .connect(&"b".to_string(), Expect::Key(kb.public()))
        .await
        .unwrap();
    let call = MeshFrame::Call {
        channel: ECHO,
        id: 7,
        deadline_ms: 30_000,
        body: b"by hand",
    };
    raw.send(Bytes::from(call.encode())).await.unwrap();
    let reply = raw.recv().await.unwrap();
    assert_eq!(
        decode_mesh_frame(&reply).unwrap(),
        MeshFrame::ReplyOk {
            channel: ECHO,
            id: 7,
            body: b"by hand"
        }
    );
    // A cancel for a call that is not running is ignored.
    let cancel = MeshFrame::Cancel { channel: 0, id: 99 };
    raw.send(Bytes::from(cancel.encode())).await.unwrap();
    // Garbage: b closes the link.
    raw.send(Bytes::from_static(b"\xff\x00garbage"))
        .await
        .unwrap();
    assert_eq!(tokio::time::timeout(LONG, raw.recv()).await.unwrap(), None);
    assert_eq!(b.mesh.stats().malformed, 1);

    // A call id reused while the call runs: also a protocol violation. The running call is
    // aborted with the link.
    let mut raw = evil
        .connect(&"b".to_string(), Expect::Key(kb.public()))
        .await
        .unwrap();
    let hang = MeshFrame::Call {
        channel: HANG,
        id: 1,
        deadline_ms: 600_000,
        body: b"twice",
    };
    raw.send(Bytes::from(hang.encode())).await.unwrap();
    assert_eq!(next(&mut b.probe.started, LONG).await, "twice");
    raw.send(Bytes::from(hang.encode())).await.unwrap();
    assert_eq!(tokio::time::timeout(LONG, raw.recv()).await.unwrap(), None);
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "twice");
    assert_eq!(b.mesh.stats().malformed, 2);

    // b keeps serving everyone else.
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"fine"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "fine");
    b.know(&a);
    let ok = b
        .mesh
        .call(&a.key(), ECHO, Bytes::from_static(b"too"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "too");
}

#[tokio::test(start_paused = true)]
async fn a_call_frame_past_its_deadline_is_dropped_by_the_callee() {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let evil_kp = keypair("evil");
    let allow = Allow::with_keys([ka.public(), kb.public(), evil_kp.public()]);
    let net = MemNetwork::new(16);
    let mut b = mem_node(
        &net,
        &kb,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    let evil = net.transport("evil", &evil_kp, allow.clone(), LinkConfig::default());
    let mut raw = evil
        .connect(&"b".to_string(), Expect::Key(kb.public()))
        .await
        .unwrap();
    let t0 = Instant::now();
    let hang = MeshFrame::Call {
        channel: HANG,
        id: 1,
        deadline_ms: 1500,
        body: b"short",
    };
    raw.send(Bytes::from(hang.encode())).await.unwrap();
    assert_eq!(next(&mut b.probe.started, LONG).await, "short");
    // No cancel is sent: b drops the call by itself when the deadline in the frame passes.
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "short");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Nothing is sent back for it; the link stays up.
    let echo = MeshFrame::Call {
        channel: ECHO,
        id: 2,
        deadline_ms: 1000,
        body: b"",
    };
    raw.send(Bytes::from(echo.encode())).await.unwrap();
    let reply = raw.recv().await.unwrap();
    assert!(matches!(
        decode_mesh_frame(&reply).unwrap(),
        MeshFrame::ReplyOk { id: 2, .. }
    ));
}
