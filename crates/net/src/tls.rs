//! TCP with mutual TLS 1.3: each node presents a self-signed certificate for its ed25519
//! node key and accepts a peer by that key alone, against the [`Allow`] set.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use plexus_identity::{KeyKind, Keypair, PublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme,
};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use zeroize::Zeroizing;

use crate::accept::{AcceptErrors, Admission, AdmissionLimits};
use crate::link::{exchange_hello, spawn_stream_link};
use crate::{Allow, Expect, Link, LinkConfig, Listener, NetError, PeerInfo, Transport};

/// The DER prefix of a PKCS#8 v1 ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The DER prefix of an ed25519 SubjectPublicKeyInfo; the 32-byte key follows.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The name in every node certificate, and the TLS server name a connecting node asks for.
/// It carries no meaning: peers are recognised by key.
pub const CERT_NAME: &str = "plexus-node";

/// The PKCS#8 DER encoding of a key pair's secret (wiped when dropped).
fn pkcs8_der(node: &Keypair) -> Zeroizing<Vec<u8>> {
    let secret = node.secret_bytes();
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(&secret[..]);
    der
}

/// A self-signed X.509 certificate for `node`'s ed25519 key, as DER. Its subject and its
/// one DNS name are [`CERT_NAME`]; it is valid from 1975 to 4096 (validity is not checked:
/// the key is what matters).
pub fn node_certificate(node: &Keypair) -> Result<CertificateDer<'static>, NetError> {
    let der = pkcs8_der(node);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(&der[..]),
        &rcgen::PKCS_ED25519,
    )
    .map_err(|e| NetError::Key(format!("cannot load the node key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(vec![CERT_NAME.to_owned()])
        .map_err(|e| NetError::Key(format!("cannot make certificate parameters: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_NAME);
    let cert = params
        .self_signed(&key)
        .map_err(|e| NetError::Key(format!("cannot make the node certificate: {e}")))?;
    Ok(cert.der().clone())
}

/// The ed25519 node key a certificate is for. Only the certificate's key is read: names,
/// dates and the certificate's own signature do not matter (the TLS handshake signature
/// proves possession of the key).
pub fn certificate_key(cert: &CertificateDer<'_>) -> Result<PublicKey, NetError> {
    let parsed = ParsedCertificate::try_from(cert)
        .map_err(|e| NetError::BadCertificate(format!("not an X.509 certificate: {e}")))?;
    let spki = parsed.subject_public_key_info();
    let raw = spki
        .strip_prefix(&SPKI_ED25519_PREFIX[..])
        .filter(|k| k.len() == 32)
        .ok_or_else(|| NetError::BadCertificate("the certificate's key is not ed25519".into()))?;
    let key = PublicKey::from_slice(raw)
        .map_err(|e| NetError::BadCertificate(format!("bad ed25519 key: {e}")))?;
    if key.is_weak() {
        return Err(NetError::BadCertificate("weak ed25519 key".into()));
    }
    Ok(key)
}

/// Why our verifier refused the peer, kept for the error returned to the caller.
#[derive(Debug)]
enum Refusal {
    Unknown(PublicKey),
    Unexpected { expected: PublicKey, got: PublicKey },
    BadCert(String),
}

/// Accepts a peer certificate by its ed25519 key alone. One per handshake, so that a
/// refusal can be reported precisely.
#[derive(Debug)]
struct KeyVerifier {
    allow: Allow,
    expect: Option<PublicKey>,
    algorithms: WebPkiSupportedAlgorithms,
    refusal: Mutex<Option<Refusal>>,
}

impl KeyVerifier {
    fn new(allow: Allow, expect: Option<PublicKey>, provider: &CryptoProvider) -> KeyVerifier {
        KeyVerifier {
            allow,
            expect,
            algorithms: provider.signature_verification_algorithms,
            refusal: Mutex::new(None),
        }
    }

    fn refuse(&self, why: Refusal, error: CertificateError) -> rustls::Error {
        if let Ok(mut r) = self.refusal.lock() {
            *r = Some(why);
        }
        rustls::Error::InvalidCertificate(error)
    }

    fn take_refusal(&self) -> Option<Refusal> {
        self.refusal.lock().ok().and_then(|mut r| r.take())
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(self.refuse(
                Refusal::BadCert("a node presents exactly one certificate".into()),
                CertificateError::BadEncoding,
            ));
        }
        let key = match certificate_key(end_entity) {
            Ok(k) => k,
            Err(e) => {
                return Err(self.refuse(
                    Refusal::BadCert(e.to_string()),
                    CertificateError::BadEncoding,
                ))
            }
        };
        if let Some(expected) = self.expect {
            if expected != key {
                return Err(self.refuse(
                    Refusal::Unexpected { expected, got: key },
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        if !self.allow.contains(&key) {
            return Err(self.refuse(
                Refusal::Unknown(key),
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(())
    }

    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

fn no_tls12() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for KeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Turns an i/o error from a TLS stream into the clearest [`NetError`].
pub(crate) fn map_io_error(e: std::io::Error) -> NetError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(AlertDescription::AccessDenied)) => {
            NetError::RefusedByPeer
        }
        Some(rustls::Error::InvalidCertificate(CertificateError::BadSignature)) => {
            NetError::Handshake(
                "the peer's handshake signature does not match its certificate: it does not hold \
                 that node key"
                    .into(),
            )
        }
        Some(other) => NetError::Handshake(other.to_string()),
        None => NetError::Io(e),
    }
}

/// Maps a failed handshake, preferring what our own verifier recorded.
fn handshake_error(e: std::io::Error, verifier: &KeyVerifier) -> NetError {
    match verifier.take_refusal() {
        Some(Refusal::Unknown(key)) => NetError::UnknownPeer { key: Box::new(key) },
        Some(Refusal::Unexpected { expected, got }) => NetError::UnexpectedPeer {
            expected: Box::new(expected),
            got: Box::new(got),
        },
        Some(Refusal::BadCert(why)) => NetError::BadCertificate(why),
        None => map_io_error(e),
    }
}

/// The verified key of the peer of an established TLS connection.
fn peer_key(certs: Option<&[CertificateDer<'static>]>) -> Result<PublicKey, NetError> {
    match certs.and_then(|c| c.first()) {
        Some(cert) => certificate_key(cert),
        None => Err(NetError::BadCertificate(
            "the peer presented no certificate".into(),
        )),
    }
}

struct TlsInner {
    name: String,
    certified: Arc<CertifiedKey>,
    provider: Arc<CryptoProvider>,
    allow: Allow,
    config: LinkConfig,
}

/// How many encrypted bytes a link's TLS session holds for the socket. rustls's default (64
/// KiB) made a 256 KiB frame (a pipe's chunk) four rounds of encrypting then writing; with
/// this, a frame is encrypted whole and goes out in one vectored write.
const TLS_SEND_BUFFER: usize = 1 << 20;

/// Bytes read from a link's socket at a time. rustls reads 4 KiB at a time, so a 16 KiB
/// record took five system calls and a 256 KiB frame about eighty; rustls takes its reads
/// from this buffer instead.
const TLS_READ_BUFFER: usize = 64 * 1024;

/// Links over TCP with mutual TLS 1.3 (rustls, ring provider), authenticated by node keys.
///
/// Both sides present a self-signed certificate for their node key ([`node_certificate`])
/// and accept the other only if its key is in the [`Allow`] set (and is the expected one,
/// when connecting with [`Expect::Key`]). The peer's TLS 1.3 CertificateVerify signature is
/// checked with ring's ed25519, so a peer must hold the private key of the certificate it
/// presents. See `docs/links.md`.
#[derive(Clone)]
pub struct TcpTlsTransport {
    inner: Arc<TlsInner>,
}

impl std::fmt::Debug for TcpTlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTlsTransport")
            .field("name", &self.inner.name)
            .field("allowed", &self.inner.allow.len())
            .finish_non_exhaustive()
    }
}

impl TcpTlsTransport {
    /// A transport for the node with key pair `node` (which must be a node key), accepting
    /// the peers in `allow`.
    pub fn new(node: &Keypair, allow: Allow, config: LinkConfig) -> Result<Self, NetError> {
        if node.kind() != KeyKind::Node {
            return Err(NetError::Key(format!(
                "{} is a {} key: links need a node key",
                node.name(),
                node.kind()
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = node_certificate(node)?;
        let der = pkcs8_der(node);
        let signing =
            rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(&der[..]))
                .map_err(|e| NetError::Key(format!("cannot load the node key into TLS: {e}")))?;
        let certified = Arc::new(CertifiedKey::new(vec![cert], signing));
        Ok(TcpTlsTransport {
            inner: Arc::new(TlsInner {
                name: node.name().to_owned(),
                certified,
                provider,
                allow,
                config,
            }),
        })
    }

    /// The allow set (a shared handle: changes apply to later handshakes).
    pub fn allow(&self) -> &Allow {
        &self.inner.allow
    }

    fn server_config(
        inner: &TlsInner,
        verifier: Arc<KeyVerifier>,
    ) -> Result<rustls::ServerConfig, NetError> {
        let config = rustls::ServerConfig::builder_with_provider(inner.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Handshake(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(inner.certified.clone())));
        Ok(config)
    }

    fn client_config(
        inner: &TlsInner,
        verifier: Arc<KeyVerifier>,
    ) -> Result<rustls::ClientConfig, NetError> {
        let config = rustls::ClientConfig::builder_with_provider(inner.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::Handshake(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(inner.certified.clone())));
        Ok(config)
    }

    async fn accept_one(
        inner: Arc<TlsInner>,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<Link, NetError> {
        let _ = tcp.set_nodelay(true);
        let tcp = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
        let verifier = Arc::new(KeyVerifier::new(inner.allow.clone(), None, &inner.provider));
        let acceptor = TlsAcceptor::from(Arc::new(Self::server_config(&inner, verifier.clone())?));
        let mut tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| handshake_error(e, &verifier))?;
        tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
        let key = peer_key(tls.get_ref().1.peer_certificates())?;
        let (hello, decoder) = exchange_hello(&mut tls, &inner.name, &inner.config).await?;
        let peer = PeerInfo {
            key,
            name: hello.name,
            max_frame: hello.max_frame as usize,
            addr: addr.to_string(),
        };
        tracing::debug!(peer = %peer.name, key = %key.fingerprint(), %addr, "link accepted");
        Ok(spawn_stream_link(tls, peer, decoder, &inner.config))
    }

    async fn connect_inner(&self, addr: SocketAddr, expect: Expect) -> Result<Link, NetError> {
        let inner = &self.inner;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| NetError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tcp = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
        let expected = match expect {
            Expect::Key(k) => Some(k),
            Expect::AnyAllowed => None,
        };
        let verifier = Arc::new(KeyVerifier::new(
            inner.allow.clone(),
            expected,
            &inner.provider,
        ));
        let connector = TlsConnector::from(Arc::new(Self::client_config(inner, verifier.clone())?));
        let name =
            ServerName::try_from(CERT_NAME).map_err(|e| NetError::Handshake(e.to_string()))?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(e, &verifier))?;
        tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
        let key = peer_key(tls.get_ref().1.peer_certificates())?;
        // In TLS 1.3 the server checks our certificate after we finish: a refusal of our key
        // arrives as an alert while the hello frames are exchanged.
        let (hello, decoder) = exchange_hello(&mut tls, &inner.name, &inner.config).await?;
        let peer = PeerInfo {
            key,
            name: hello.name,
            max_frame: hello.max_frame as usize,
            addr: addr.to_string(),
        };
        tracing::debug!(peer = %peer.name, key = %key.fingerprint(), %addr, "link connected");
        Ok(spawn_stream_link(tls, peer, decoder, &inner.config))
    }
}

/// Incoming TLS links on a TCP port. Handshakes run concurrently, each bounded by the
/// accept timeout, and at most [`LinkConfig::max_unauthenticated`] at once (fewer from one
/// address): a new connection makes the oldest unfinished handshake give way, so a slow or
/// hostile peer cannot hold up others.
#[derive(Debug)]
pub struct TcpTlsListener {
    local: SocketAddr,
    links: mpsc::Receiver<Result<Link, NetError>>,
    task: JoinHandle<()>,
}

impl Drop for TcpTlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener for TcpTlsListener {
    type Addr = SocketAddr;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn accept(&mut self) -> Option<Result<Link, NetError>> {
        self.links.recv().await
    }
}

impl Transport for TcpTlsTransport {
    type Addr = SocketAddr;
    type Listener = TcpTlsListener;

    async fn listen(&self, addr: &SocketAddr) -> Result<TcpTlsListener, NetError> {
        let bind_err = |source| NetError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let (tx, links) = mpsc::channel(64);
        let inner = self.inner.clone();
        let admission = Admission::new(AdmissionLimits {
            max_connections: inner.config.max_unauthenticated,
            max_waiting_per_source: inner.config.max_unauthenticated_per_source,
        });
        // The loop only accepts: handshakes run in tasks of their own, so that connections
        // that never authenticate cannot hold up the ones behind them.
        let task = tokio::spawn(async move {
            let mut errors = AcceptErrors::default();
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, and log once per burst.
                        let after = errors.failed();
                        if after.first {
                            tracing::warn!(
                                "accepting a TCP connection failed: {e}; retrying, further \
                                 failures counted"
                            );
                        }
                        tokio::time::sleep(after.pause).await;
                        continue;
                    }
                };
                if let Some(n) = errors.succeeded() {
                    tracing::warn!("accepting TCP connections again after {n} failures");
                }
                // Never refused: no connection here stays admitted once it authenticated, so
                // there is always a waiting one to evict.
                let Some(mut ticket) = admission.admit(addr.ip()) else {
                    continue;
                };
                let inner = inner.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let timeout = inner.config.accept_timeout;
                    let result = tokio::select! {
                        r = tokio::time::timeout(timeout, Self::accept_one(inner, tcp, addr)) => {
                            r.unwrap_or(Err(NetError::Timeout(timeout)))
                        }
                        () = ticket.evicted() => Err(NetError::Evicted),
                    };
                    drop(ticket);
                    let _ = tx.send(result).await;
                });
            }
        });
        Ok(TcpTlsListener { local, links, task })
    }

    async fn connect(&self, addr: &SocketAddr, expect: Expect) -> Result<Link, NetError> {
        let timeout = self.inner.config.handshake_timeout;
        tokio::time::timeout(timeout, self.connect_inner(*addr, expect))
            .await
            .unwrap_or(Err(NetError::Timeout(timeout)))
    }
}
