#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mesh on the in-memory transport: calls multiplexed on one link, messages, errors,
//! deadlines, cancellation, limits, the address book, shutdown.

mod mesh_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use mesh_common::*;
use plexus_net::{Allow, LinkConfig, MemNetwork, MeshConfig, MeshError};
use tokio::task::JoinSet;
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn many_concurrent_calls_share_one_link() {
    let (_net, a, b) = pair(1).await;
    let mut calls = JoinSet::new();
    for i in 0..1000u32 {
        let mesh = a.mesh.clone();
        let to = b.key();
        calls.spawn(async move {
            let body = Bytes::from(format!("call {i}"));
            let reply = mesh.call(&to, ECHO, body.clone(), LONG).await.unwrap();
            assert_eq!(reply, body);
        });
    }
    let mut done = 0;
    while let Some(r) = calls.join_next().await {
        r.unwrap();
        done += 1;
    }
    assert_eq!(done, 1000);
    assert!(a.mesh.is_connected(&b.key()));
    assert_eq!(a.mesh.stats().dials, 1, "one link dialed for all calls");
    assert_eq!(b.mesh.stats().accepted, 1);
    assert!(!b.mesh.is_connected(&a.key()), "b has not dialed a");

    // The other way: b dials its own link; a's link is unaffected.
    let mut calls = JoinSet::new();
    for i in 0..100u32 {
        let mesh = b.mesh.clone();
        let to = a.key();
        calls.spawn(async move {
            let reply = mesh
                .call(&to, ECHO, Bytes::from(i.to_string()), LONG)
                .await
                .unwrap();
            assert_eq!(reply, i.to_string());
        });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap();
    }
    assert_eq!(b.mesh.stats().dials, 1);
    assert_eq!(a.mesh.stats().accepted, 1);
    assert_eq!(a.mesh.stats().dials, 1);
    assert!(a.mesh.is_connected(&b.key()) && b.mesh.is_connected(&a.key()));
}

#[tokio::test(start_paused = true)]
async fn messages_arrive_in_order() {
    let (_net, a, mut b) = pair(2).await;
    // Sent before any link is up: queued while connecting.
    for i in 0..50u32 {
        a.mesh
            .send(&b.key(), 9, Bytes::from(i.to_le_bytes().to_vec()))
            .unwrap();
    }
    for i in 0..50u32 {
        let (from, channel, body) = next(&mut b.probe.messages, LONG).await;
        assert_eq!((from.as_str(), channel), ("a", 9));
        assert_eq!(body.as_ref(), i.to_le_bytes());
    }
    assert!(a.mesh.is_connected(&b.key()));
    // On the link that is up, interleaved with calls.
    for i in 50..600u32 {
        a.mesh
            .send(&b.key(), 9, Bytes::from(i.to_le_bytes().to_vec()))
            .unwrap();
        if i % 100 == 0 {
            a.mesh
                .call(&b.key(), ECHO, Bytes::new(), LONG)
                .await
                .unwrap();
        }
    }
    for i in 50..600u32 {
        let (_, _, body) = next(&mut b.probe.messages, LONG).await;
        assert_eq!(body.as_ref(), i.to_le_bytes(), "message {i} in order");
    }
    // Empty messages are messages too.
    a.mesh.send(&b.key(), 0, Bytes::new()).unwrap();
    let (_, channel, body) = next(&mut b.probe.messages, LONG).await;
    assert_eq!((channel, body.len()), (0, 0));
    assert_eq!(a.mesh.stats().dials, 1);
}

#[tokio::test(start_paused = true)]
async fn remote_errors_are_propagated() {
    let (_net, a, b) = pair(3).await;
    let e = a
        .mesh
        .call(&b.key(), FAIL, Bytes::from_static(b"this"), LONG)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MeshError::Remote {
            peer: "b".into(),
            message: "refused this".into()
        }
    );
    assert!(
        e.to_string()
            .contains("b answered with an error: refused this"),
        "{e}"
    );
    let e = a
        .mesh
        .call(&b.key(), 77, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert!(matches!(&e, MeshError::Remote { message, .. } if message == "no channel 77"));
    // The link is fine afterwards.
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"x"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "x");
}

#[tokio::test(start_paused = true)]
async fn timeout_drops_the_callee_future() {
    let (_net, a, mut b) = pair(4).await;
    let t0 = Instant::now();
    let e = a
        .mesh
        .call(
            &b.key(),
            HANG,
            Bytes::from_static(b"slow"),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MeshError::Timeout {
            peer: "b".into(),
            after: Duration::from_secs(2)
        }
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert_eq!(next(&mut b.probe.started, LONG).await, "slow");
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "slow");
    assert_eq!(b.probe.running.load(Ordering::SeqCst), 0);
    // The link still works.
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"y"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "y");
    assert_eq!(a.mesh.stats().dials, 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_it_on_the_peer() {
    let (_net, a, mut b) = pair(5).await;
    let t0 = Instant::now();
    let mesh = a.mesh.clone();
    let to = b.key();
    // A deadline far away: only the cancel frame can end the call on b before it.
    let call = tokio::spawn(async move {
        mesh.call(
            &to,
            HANG,
            Bytes::from_static(b"cancel me"),
            Duration::from_secs(600),
        )
        .await
    });
    assert_eq!(next(&mut b.probe.started, LONG).await, "cancel me");
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "cancel me");
    assert!(
        t0.elapsed() < Duration::from_secs(300),
        "dropped by the cancel, not by the deadline"
    );
    assert_eq!(b.probe.running.load(Ordering::SeqCst), 0);

    // Dropping the future inside a select (no task) works the same.
    let bk = b.key();
    let sent = tokio::select! {
        r = a.mesh.call(&bk, HANG, Bytes::from_static(b"second"), Duration::from_secs(600)) => Some(r),
        body = b.probe.started.recv() => { assert_eq!(body.unwrap(), "second"); None }
    };
    assert!(sent.is_none());
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "second");
    assert!(t0.elapsed() < Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn overloaded_callee_refuses_calls_beyond_its_limit() {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let allow = Allow::with_keys([ka.public(), kb.public()]);
    let net = MemNetwork::new(6);
    let a = mem_node(
        &net,
        &ka,
        &allow,
        MeshConfig::default(),
        LinkConfig::default(),
    )
    .await;
    let config = MeshConfig {
        max_inbound_calls: 2,
        ..MeshConfig::default()
    };
    let mut b = mem_node(&net, &kb, &allow, config, LinkConfig::default()).await;
    a.know(&b);
    let mut hanging = Vec::new();
    for i in 0..2 {
        let mesh = a.mesh.clone();
        let to = b.key();
        hanging.push(tokio::spawn(async move {
            mesh.call(&to, HANG, Bytes::from(format!("h{i}")), LONG)
                .await
        }));
        next(&mut b.probe.started, LONG).await;
    }
    let e = a
        .mesh
        .call(&b.key(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert_eq!(e, MeshError::Overloaded { peer: "b".into() });
    assert!(e.to_string().contains("overloaded"));
    assert_eq!(b.mesh.stats().overloaded, 1);
    // Cancelling the running calls frees their places.
    for h in hanging {
        h.abort();
    }
    next(&mut b.probe.dropped, LONG).await;
    next(&mut b.probe.dropped, LONG).await;
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"room"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "room");
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_peer_limit_are_too_large() {
    let (ka, kb) = (keypair("a"), keypair("b"));
    let allow = Allow::with_keys([ka.public(), kb.public()]);
    let net = MemNetwork::new(7);
    let small = LinkConfig {
        max_frame: 1024,
        ..LinkConfig::default()
    };
    let a = mem_node(&net, &ka, &allow, MeshConfig::default(), small.clone()).await;
    let b = mem_node(&net, &kb, &allow, MeshConfig::default(), small).await;
    a.know(&b);
    let e = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from(vec![0u8; 2000]), LONG)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MeshError::TooLarge {
            peer: "b".into(),
            size: 2000,
            max: 1024 - 14
        }
    );
    // The largest body that fits.
    let fits = Bytes::from(vec![1u8; 1024 - 14]);
    let reply = a
        .mesh
        .call(&b.key(), ECHO, fits.clone(), LONG)
        .await
        .unwrap();
    assert_eq!(reply, fits);
    // A reply larger than the caller accepts: the callee says so.
    let e = a
        .mesh
        .call(
            &b.key(),
            BIG,
            Bytes::from(5000u32.to_le_bytes().to_vec()),
            LONG,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MeshError::Remote { message, .. } if message.contains("5000 bytes")),
        "{e}"
    );
    let e = a
        .mesh
        .send(&b.key(), 1, Bytes::from(vec![0u8; 1023]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            MeshError::TooLarge {
                size: 1023,
                max: 1022,
                ..
            }
        ),
        "{e}"
    );
    assert!(a.mesh.is_connected(&b.key()));
}

#[tokio::test(start_paused = true)]
async fn unknown_and_removed_peers() {
    let (_net, a, mut b) = pair(8).await;
    let stranger = keypair("stranger").public();
    let e = a
        .mesh
        .call(&stranger, ECHO, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MeshError::UnknownPeer {
            peer: stranger.fingerprint()
        }
    );
    assert!(e.to_string().contains(&stranger.fingerprint()));
    assert!(matches!(
        a.mesh.send(&stranger, 0, Bytes::new()),
        Err(MeshError::UnknownPeer { .. })
    ));

    let t0 = Instant::now();
    let mesh = a.mesh.clone();
    let to = b.key();
    let pending = tokio::spawn(async move {
        mesh.call(
            &to,
            HANG,
            Bytes::from_static(b"p"),
            Duration::from_secs(600),
        )
        .await
    });
    next(&mut b.probe.started, LONG).await;
    a.mesh.remove_peer(&b.key());
    let e = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(&e, MeshError::LinkClosed { peer, .. } if peer == "b"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(300));
    // The link closed on b's side too: its handler future is dropped.
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "p");
    assert!(!a.mesh.is_connected(&b.key()));
    assert!(matches!(
        a.mesh.call(&b.key(), ECHO, Bytes::new(), LONG).await,
        Err(MeshError::UnknownPeer { .. })
    ));
    assert!(matches!(
        a.mesh.send(&b.key(), 0, Bytes::new()),
        Err(MeshError::UnknownPeer { .. })
    ));
    // Known again: works again.
    a.know(&b);
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"back"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "back");
}

#[tokio::test(start_paused = true)]
async fn an_address_change_closes_the_old_link() {
    let (net, a, mut b) = pair(9).await;
    // b also listens at a second name.
    assert_eq!(b.mesh.listen(&"b2".to_string()).await.unwrap(), "b2");
    a.mesh
        .call(&b.key(), ECHO, Bytes::new(), LONG)
        .await
        .unwrap();
    let mesh = a.mesh.clone();
    let to = b.key();
    let pending =
        tokio::spawn(async move { mesh.call(&to, HANG, Bytes::from_static(b"old"), LONG).await });
    next(&mut b.probe.started, LONG).await;
    // The same address: nothing happens.
    a.mesh.set_peer(b.key(), "b".into(), "b".into());
    assert!(a.mesh.is_connected(&b.key()));
    a.mesh.set_peer(b.key(), "bee".into(), "b2".into());
    let e = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(&e, MeshError::LinkClosed { reason, .. } if reason.contains("address")),
        "{e}"
    );
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "old");
    // Cut the old address off: the new link must go to b2.
    net.partition(&["a"], &["b"]);
    let ok = a
        .mesh
        .call(&b.key(), ECHO, Bytes::from_static(b"new"), LONG)
        .await
        .unwrap();
    assert_eq!(ok, "new");
    assert_eq!(a.mesh.stats().dials, 2);
    assert_eq!(b.mesh.stats().accepted, 2);
    // Errors use the new name.
    let e = a
        .mesh
        .call(&b.key(), FAIL, Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MeshError::Remote { peer, .. } if peer == "bee"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_everything_with_closed() {
    let (_net, a, mut b) = pair(10).await;
    let mesh = a.mesh.clone();
    let to = b.key();
    let pending = tokio::spawn(async move {
        mesh.call(
            &to,
            HANG,
            Bytes::from_static(b"s"),
            Duration::from_secs(600),
        )
        .await
    });
    next(&mut b.probe.started, LONG).await;
    let t0 = Instant::now();
    a.mesh.shutdown();
    assert_eq!(pending.await.unwrap().unwrap_err(), MeshError::Closed);
    assert!(t0.elapsed() < Duration::from_secs(300));
    assert_eq!(next(&mut b.probe.dropped, LONG).await, "s");
    assert_eq!(
        a.mesh.call(&b.key(), ECHO, Bytes::new(), LONG).await,
        Err(MeshError::Closed)
    );
    assert_eq!(
        a.mesh.send(&b.key(), 0, Bytes::new()),
        Err(MeshError::Closed)
    );
    assert!(!a.mesh.is_connected(&b.key()));
    assert!(a.mesh.listen(&"a-again".to_string()).await.is_err());
    a.mesh.shutdown(); // twice is fine
    assert_eq!(MeshError::Closed.to_string(), "the mesh is shut down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_cancels_and_timeouts_race_on_many_threads() {
    let names = ["n0", "n1", "n2"];
    let kps: Vec<_> = names.iter().map(|n| keypair(n)).collect();
    let allow = Allow::with_keys(kps.iter().map(|k| k.public()));
    let net = MemNetwork::new(17);
    let mut nodes = Vec::new();
    for kp in &kps {
        nodes.push(
            mem_node(
                &net,
                kp,
                &allow,
                MeshConfig::default(),
                LinkConfig::default(),
            )
            .await,
        );
    }
    for x in &nodes {
        for y in &nodes {
            if x.key() != y.key() {
                x.know(y);
            }
        }
    }
    let mut tasks = JoinSet::new();
    for (i, from) in nodes.iter().enumerate() {
        for (j, to) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            for k in 0..300u32 {
                let (mesh, to) = (from.mesh.clone(), to.key());
                tasks.spawn(async move {
                    let body = Bytes::from(format!("{i}->{j} {k}"));
                    match k % 4 {
                        0 | 1 => {
                            let r = mesh.call(&to, ECHO, body.clone(), LONG).await.unwrap();
                            assert_eq!(r, body);
                        }
                        2 => {
                            let e = mesh.call(&to, FAIL, body, LONG).await.unwrap_err();
                            assert!(matches!(e, MeshError::Remote { .. }), "{e}");
                        }
                        _ => {
                            // Either times out, or is dropped (cancelled) before.
                            let call = mesh.call(&to, HANG, body, Duration::from_millis(50));
                            if k % 8 == 3 {
                                let _ = tokio::time::timeout(Duration::from_millis(10), call).await;
                            } else {
                                let e = call.await.unwrap_err();
                                assert!(matches!(e, MeshError::Timeout { .. }), "{e}");
                            }
                        }
                    }
                });
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Every hanging handler future is dropped in the end.
    let t0 = std::time::Instant::now();
    while nodes
        .iter()
        .any(|n| n.probe.running.load(Ordering::SeqCst) > 0)
    {
        assert!(t0.elapsed() < LONG, "handler futures still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in &nodes {
        assert_eq!(n.mesh.stats().dials, 2);
        assert_eq!(n.mesh.stats().accepted, 2);
    }
}
