#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mesh over real TLS links on 127.0.0.1.

mod mesh_common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mesh_common::*;
use plexus_identity::Keypair;
use plexus_net::{Allow, LinkConfig, Mesh, MeshConfig, MeshError, TcpTlsTransport};
use tokio::time::{timeout, Instant};

const LONG: Duration = Duration::from_secs(30);

async fn tls_node(kp: &Keypair, allow: &Allow) -> (Mesh<TcpTlsTransport>, SocketAddr, Probe) {
    let t = TcpTlsTransport::new(kp, allow.clone(), LinkConfig::default()).unwrap();
    let (h, probe) = handler();
    let mesh = Mesh::new(t, MeshConfig::default(), h);
    let addr = mesh.listen(&"127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(addr.port(), 0);
    (mesh, addr, probe)
}

#[tokio::test]
async fn calls_and_messages_over_tls() {
    timeout(Duration::from_secs(120), async {
        let (ka, kb) = (keypair("a"), keypair("b"));
        let allow = Allow::with_keys([ka.public(), kb.public()]);
        let (a, a_addr, mut pa) = tls_node(&ka, &allow).await;
        let (b, b_addr, mut pb) = tls_node(&kb, &allow).await;
        a.set_peer(kb.public(), "b".into(), b_addr);
        b.set_peer(ka.public(), "a".into(), a_addr);

        // Concurrent calls on one link.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let (a, to) = (a.clone(), kb.public());
            calls.spawn(async move {
                let body = Bytes::from(vec![(i % 251) as u8; (i as usize) * 37]);
                assert_eq!(a.call(&to, ECHO, body.clone(), LONG).await.unwrap(), body);
            });
        }
        while let Some(r) = calls.join_next().await {
            r.unwrap();
        }
        assert_eq!(a.stats().dials, 1);
        assert!(a.is_connected(&kb.public()));

        // Messages, in order, and the other direction.
        for i in 0..100u32 {
            b.send(&ka.public(), 5, Bytes::from(i.to_le_bytes().to_vec()))
                .unwrap();
        }
        for i in 0..100u32 {
            let (from, channel, body) = next(&mut pa.messages, LONG).await;
            assert_eq!((from.as_str(), channel), ("b", 5));
            assert_eq!(body.as_ref(), i.to_le_bytes());
        }
        let e = b
            .call(&ka.public(), FAIL, Bytes::from_static(b"tls"), LONG)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            MeshError::Remote {
                peer: "a".into(),
                message: "refused tls".into()
            }
        );

        // b dies with a call pending: it fails well before its deadline.
        let pending = {
            let (a, to) = (a.clone(), kb.public());
            tokio::spawn(async move { a.call(&to, HANG, Bytes::from_static(b"x"), LONG).await })
        };
        next(&mut pb.started, LONG).await;
        let t0 = Instant::now();
        b.shutdown();
        let e = pending.await.unwrap().unwrap_err();
        assert!(matches!(e, MeshError::LinkClosed { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        assert_eq!(next(&mut pb.dropped, LONG).await, "x");

        // Nothing listens there any more: unreachable (connection refused), or, if the
        // dial raced b's listener going away, a link that closes at once.
        let e = a
            .call(&kb.public(), ECHO, Bytes::new(), LONG)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                MeshError::Unreachable { .. } | MeshError::LinkClosed { .. }
            ),
            "{e}"
        );
        a.shutdown();
    })
    .await
    .expect("test timed out");
}
