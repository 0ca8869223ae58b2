#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS links between nodes on 127.0.0.1: frames, refusals, impostors, limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plexus_identity::{KeyKind, Keypair};
use plexus_net::frame::{encode, FrameDecoder, Hello, LINK_VERSION};
use plexus_net::tls::{certificate_key, node_certificate, CERT_NAME};
use plexus_net::{
    Allow, Expect, Link, LinkConfig, Listener, NetError, OutFrame, TcpTlsListener, TcpTlsTransport,
    Transport,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn node(name: &str) -> Keypair {
    Keypair::generate(KeyKind::Node, name, &mut rand::rngs::OsRng).unwrap()
}

fn transport(kp: &Keypair, allow: &Allow) -> TcpTlsTransport {
    TcpTlsTransport::new(kp, allow.clone(), LinkConfig::default()).unwrap()
}

async fn listen(t: &TcpTlsTransport) -> (TcpTlsListener, SocketAddr) {
    let l = t.listen(&"127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = l.local_addr();
    (l, addr)
}

async fn accept(l: &mut TcpTlsListener) -> Result<Link, NetError> {
    timeout(T, l.accept())
        .await
        .expect("accept timed out")
        .expect("listener stopped")
}

#[tokio::test]
async fn frames_flow_both_ways() {
    let (a, b) = (node("a"), node("b"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let (ta, tb) = (transport(&a, &allow), transport(&b, &allow));
    let (mut lb, addr) = listen(&tb).await;
    let (client, server) =
        tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.peer().key, b.public());
    assert_eq!(client.peer().name, "b");
    assert_eq!(server.peer().key, a.public());
    assert_eq!(server.peer().name, "a");

    // Many small frames from several senders (coalesced by the writer), order per sender.
    let mut tasks = Vec::new();
    for s in 0..4u8 {
        let tx = client.sender();
        tasks.push(tokio::spawn(async move {
            for i in 0..500u32 {
                let mut f = vec![s];
                f.extend_from_slice(&i.to_le_bytes());
                tx.send(Bytes::from(f)).await.unwrap();
            }
        }));
    }
    let mut next = [0u32; 4];
    for _ in 0..2000 {
        let f = timeout(T, server.recv()).await.unwrap().unwrap();
        let s = f[0] as usize;
        let i = u32::from_le_bytes(f[1..5].try_into().unwrap());
        assert_eq!(i, next[s], "frames from one sender arrive in order");
        next[s] += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    // And back, including an empty frame.
    server.send(Bytes::new()).await.unwrap();
    server.send(Bytes::from_static(b"pong")).await.unwrap();
    assert_eq!(timeout(T, client.recv()).await.unwrap().unwrap(), "");
    assert_eq!(timeout(T, client.recv()).await.unwrap().unwrap(), "pong");

    // Closing one end ends the other's stream in order.
    drop(server);
    assert!(timeout(T, client.recv()).await.unwrap().is_none());
    assert_eq!(client.close_reason(), None);
}

#[tokio::test]
async fn any_allowed_peer_is_accepted_and_wrong_expected_key_refused() {
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let allow = Allow::with_keys([a.public(), b.public(), c.public()]);
    let (ta, tb) = (transport(&a, &allow), transport(&b, &allow));
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::AnyAllowed), accept(&mut lb));
    assert_eq!(l.unwrap().peer().key, b.public());
    assert_eq!(r.unwrap().peer().key, a.public());

    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(c.public())), accept(&mut lb));
    let e = l.unwrap_err();
    assert!(
        matches!(&e, NetError::UnexpectedPeer { expected, got } if **expected == c.public() && **got == b.public()),
        "{e}"
    );
    assert!(matches!(r.unwrap_err(), NetError::RefusedByPeer));
}

#[tokio::test]
async fn unknown_keys_are_refused_both_ways() {
    let (a, b) = (node("a"), node("b"));
    // b does not know a: a's connection is refused by b.
    let ta = transport(&a, &Allow::with_keys([b.public()]));
    let tb = transport(&b, &Allow::with_keys([b.public()]));
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    let (le, re) = (l.unwrap_err(), r.unwrap_err());
    assert!(matches!(le, NetError::RefusedByPeer), "{le}");
    assert!(
        matches!(&re, NetError::UnknownPeer { key } if **key == a.public()),
        "{re}"
    );
    assert!(re.to_string().contains("not a known member"), "{re}");
    assert!(le.to_string().contains("refused"), "{le}");

    // a does not know b: a refuses b's certificate.
    let ta = transport(&a, &Allow::with_keys([a.public()]));
    let tb = transport(&b, &Allow::with_keys([a.public()]));
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::AnyAllowed), accept(&mut lb));
    let (le, re) = (l.unwrap_err(), r.unwrap_err());
    assert!(
        matches!(&le, NetError::UnknownPeer { key } if **key == b.public()),
        "{le}"
    );
    assert!(matches!(re, NetError::RefusedByPeer), "{re}");
}

#[tokio::test]
async fn revoked_keys_are_refused() {
    let (a, b) = (node("a"), node("b"));
    let allow_a = Allow::with_keys([a.public(), b.public()]);
    let allow_b = Allow::with_keys([a.public(), b.public()]);
    let (ta, tb) = (transport(&a, &allow_a), transport(&b, &allow_b));
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    let (_keep_l, _keep_r) = (l.unwrap(), r.unwrap());

    // b revokes a (the shared handle is what the transport uses).
    assert!(tb.allow().remove(&a.public()));
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    assert!(matches!(l.unwrap_err(), NetError::RefusedByPeer));
    assert!(matches!(r.unwrap_err(), NetError::UnknownPeer { .. }));

    // Re-admitted, then a revokes b.
    allow_b.insert(a.public());
    allow_a.remove(&b.public());
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    assert!(matches!(l.unwrap_err(), NetError::UnknownPeer { .. }));
    assert!(matches!(r.unwrap_err(), NetError::RefusedByPeer));
}

#[tokio::test]
async fn user_keys_cannot_make_a_transport() {
    let u = Keypair::generate(KeyKind::User, "alice", &mut rand::rngs::OsRng).unwrap();
    let e = TcpTlsTransport::new(&u, Allow::new(), LinkConfig::default()).unwrap_err();
    assert!(e.to_string().contains("node key"), "{e}");
}

#[test]
fn certificates_carry_the_node_key() {
    let a = node("a");
    let cert = node_certificate(&a).unwrap();
    assert_eq!(certificate_key(&cert).unwrap(), a.public());
    assert!(certificate_key(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
}

#[tokio::test]
async fn large_frames_up_to_the_limit() {
    let (a, b) = (node("a"), node("b"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let small = LinkConfig {
        max_frame: 1 << 20,
        ..LinkConfig::default()
    };
    let ta = TcpTlsTransport::new(&a, allow.clone(), LinkConfig::default()).unwrap();
    let tb = TcpTlsTransport::new(&b, allow, small).unwrap();
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    let (mut client, mut server) = (l.unwrap(), r.unwrap());
    assert_eq!(client.peer().max_frame, 1 << 20);

    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    client.send(big.clone()).await.unwrap();
    let e = client
        .send(Bytes::from(vec![0u8; (1 << 20) + 1]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, NetError::FrameTooLarge { len, max } if len == (1 << 20) + 1 && max == 1 << 20)
    );
    client.send(Bytes::from_static(b"after")).await.unwrap();
    assert_eq!(timeout(T, server.recv()).await.unwrap().unwrap(), big);
    assert_eq!(timeout(T, server.recv()).await.unwrap().unwrap(), "after");
    // The other way the limit is a's default (16 MiB).
    let bigger = Bytes::from(vec![9u8; 3 << 20]);
    server.send(bigger.clone()).await.unwrap();
    assert_eq!(timeout(T, client.recv()).await.unwrap().unwrap(), bigger);
}

/// Frames in parts, long parts (written from where they are) between short ones (copied into
/// the batch), many queued at once so that they share writes: each arrives whole, in order.
#[tokio::test]
async fn frames_in_parts_arrive_whole_and_in_order() {
    let (a, b) = (node("a"), node("b"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let ta = transport(&a, &allow);
    let tb = transport(&b, &allow);
    let (mut lb, addr) = listen(&tb).await;
    let (l, r) = tokio::join!(ta.connect(&addr, Expect::Key(b.public())), accept(&mut lb));
    let (client, mut server) = (l.unwrap(), r.unwrap());
    let part = |n: usize, seed: usize| {
        Bytes::from((0..n).map(|i| (i * 7 + seed) as u8).collect::<Vec<_>>())
    };
    let frames: Vec<Vec<Bytes>> = (0..60)
        .map(|i| match i % 4 {
            0 => vec![part(14, i), part(300_000, i), part(3, i)],
            1 => vec![part(5, i)],
            2 => vec![part(4096, i), part(4095, i), part(70_000, i), Bytes::new()],
            _ => vec![],
        })
        .collect();
    let sender = client.sender();
    let sent = frames.clone();
    let sending = tokio::spawn(async move {
        for parts in sent {
            sender.send(OutFrame::from_parts(parts)).await.unwrap();
        }
    });
    for (i, parts) in frames.iter().enumerate() {
        let got = timeout(T, server.recv()).await.unwrap().unwrap();
        assert_eq!(got, parts.concat(), "frame {i}");
    }
    sending.await.unwrap();
}

// ---- A hand-made TLS peer, to break the rules the real transport keeps. ----

#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn signing_key(kp: &Keypair) -> Arc<dyn rustls::sign::SigningKey> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&kp.secret_bytes()[..]);
    rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(der)).unwrap()
}

/// A TLS client presenting `cert_of`'s certificate but signing with `signer`'s key.
async fn raw_client(
    addr: SocketAddr,
    cert_of: &Keypair,
    signer: &Keypair,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let certified = CertifiedKey::new(
        vec![node_certificate(cert_of).unwrap()],
        signing_key(signer),
    );
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnything))
    .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(CERT_NAME).unwrap(), tcp)
        .await
}

/// Sends a hello of `version` and reads the peer's hello frame body.
async fn send_hello<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    version: u16,
) -> std::io::Result<Option<Bytes>> {
    let hello = Hello {
        version,
        max_frame: 1 << 20,
        name: "raw".into(),
    };
    let mut wire = Vec::new();
    encode(&hello.encode(), usize::MAX, &mut wire).unwrap();
    s.write_all(&wire).await?;
    s.flush().await?;
    let mut d = FrameDecoder::new(4096);
    loop {
        if let Some(f) = d.next_frame().unwrap() {
            return Ok(Some(f));
        }
        if s.read_buf(d.buffer()).await? == 0 {
            return Ok(None);
        }
    }
}

#[tokio::test]
async fn version_mismatch_is_refused_clearly() {
    let (a, b) = (node("a"), node("b"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let tb = transport(&b, &allow);
    let (mut lb, addr) = listen(&tb).await;
    let mut raw = raw_client(addr, &a, &a).await.unwrap();
    let theirs = send_hello(&mut raw, LINK_VERSION + 1)
        .await
        .unwrap()
        .unwrap();
    // The raw peer reads b's hello, whose version it can compare with its own.
    assert_eq!(Hello::decode(&theirs).unwrap().version, LINK_VERSION);
    let e = accept(&mut lb).await.unwrap_err();
    assert!(
        matches!(e, NetError::VersionMismatch { ours: LINK_VERSION, theirs } if theirs == LINK_VERSION + 1),
        "{e}"
    );
    assert!(e.to_string().contains("same Plexus version"), "{e}");

    // The same raw peer with the right version gets a working link.
    let mut raw = raw_client(addr, &a, &a).await.unwrap();
    let theirs = send_hello(&mut raw, LINK_VERSION).await.unwrap().unwrap();
    assert_eq!(Hello::decode(&theirs).unwrap().name, "b");
    let mut link = accept(&mut lb).await.unwrap();
    let mut wire = Vec::new();
    encode(b"hi", usize::MAX, &mut wire).unwrap();
    raw.write_all(&wire).await.unwrap();
    raw.flush().await.unwrap();
    assert_eq!(timeout(T, link.recv()).await.unwrap().unwrap(), "hi");

    // A frame over b's limit closes the link with a clear reason.
    let mut wire = Vec::new();
    wire.extend_from_slice(&((16u32 << 20) + 1).to_le_bytes());
    raw.write_all(&wire).await.unwrap();
    raw.flush().await.unwrap();
    assert!(timeout(T, link.recv()).await.unwrap().is_none());
    let why = link.close_reason().unwrap();
    assert!(why.contains("exceeds the limit"), "{why}");
}

#[tokio::test]
async fn a_certificate_without_its_private_key_is_refused() {
    let (a, b, mallory) = (node("a"), node("b"), node("mallory"));
    let allow = Allow::with_keys([a.public(), b.public()]);
    let tb = transport(&b, &allow);
    let (mut lb, addr) = listen(&tb).await;
    // Mallory presents a's certificate but can only sign with her own key.
    let client = async {
        match raw_client(addr, &a, &mallory).await {
            // TLS 1.3: the client may finish first; the refusal then comes on first read.
            Ok(mut s) => send_hello(&mut s, LINK_VERSION).await.map(|_| ()),
            Err(e) => Err(e),
        }
    };
    let (c, r) = tokio::join!(client, accept(&mut lb));
    assert!(c.is_err(), "the impostor must not get through");
    let e = r.unwrap_err();
    assert!(matches!(e, NetError::Handshake(_)), "{e}");
    assert!(e.to_string().contains("does not hold that node key"), "{e}");

    // Mallory as a server presenting b's certificate: a refuses her.
    let certified = CertifiedKey::new(vec![node_certificate(&b).unwrap()], signing_key(&mallory));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = tcp.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = tcp.accept().await.unwrap();
        let _ = tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(s)
            .await;
    });
    let ta = transport(&a, &allow);
    let e = ta
        .connect(&fake_addr, Expect::Key(b.public()))
        .await
        .unwrap_err();
    assert!(matches!(e, NetError::Handshake(_)), "{e}");
    assert!(e.to_string().contains("does not hold that node key"), "{e}");
    server.await.unwrap();
}
