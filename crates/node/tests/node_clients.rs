//! The client socket's limits: connections that never say Hello are closed after a deadline,
//! and at the connection cap the oldest of them make room for a new client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use plexus_identity::{KeyKind, Keypair};
use plexus_node::{ClientLimits, Node, NodeConfig};
use plexus_protocol::{encode_frame, ClientFrame, FrameReader, NodeFrame, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

/// Longest wait for anything in these tests (far longer than any deadline they set).
const PATIENCE: Duration = Duration::from_secs(20);

/// Starts a node with `limits` and serves it until the returned sender is dropped.
async fn serve(dir: &Path, limits: ClientLimits) -> (std::path::PathBuf, oneshot::Sender<()>) {
    let admin = Keypair::generate(KeyKind::User, "admin", &mut rand::rngs::OsRng).unwrap();
    let mut config = NodeConfig::new(dir.join("node"), admin.public(), "admin");
    config.clients = limits;
    let node = Node::start(config).await.unwrap();
    let socket = node.socket_path().to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(node.serve(async move {
        let _ = stopped.await;
    }));
    (socket, stop)
}

/// Waits until the node closes `conn` (end of stream or reset).
async fn closed(conn: &mut UnixStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(PATIENCE, conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Says Hello and reads the node's answer.
async fn hello(conn: &mut UnixStream) -> NodeFrame {
    let mut out = Vec::new();
    encode_frame(
        &ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            client: "test".into(),
        },
        &mut out,
    )
    .unwrap();
    // A node that refuses the connection may have closed it already; its answer is still
    // there to read.
    let _ = conn.write_all(&out).await;
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = reader.next_frame::<NodeFrame>().unwrap() {
            return frame;
        }
        let n = tokio::time::timeout(PATIENCE, conn.read(&mut buf))
            .await
            .expect("an answer to Hello")
            .unwrap();
        assert!(n > 0, "the node closed the connection instead of answering");
        reader.push(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_says_hello_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        hello_timeout: Duration::from_millis(200),
        ..ClientLimits::default()
    };
    let (socket, _stop) = serve(dir.path(), limits).await;
    let mut silent = UnixStream::connect(&socket).await.unwrap();
    assert!(closed(&mut silent).await, "a silent connection stayed open");
    // A client that greets is served as before.
    let mut client = UnixStream::connect(&socket).await.unwrap();
    assert!(matches!(
        hello(&mut client).await,
        NodeFrame::Welcome { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_silent_connections_make_room_for_clients() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        max_connections: 3,
        hello_timeout: Duration::from_secs(600),
    };
    let (socket, _stop) = serve(dir.path(), limits).await;
    let mut greeted = UnixStream::connect(&socket).await.unwrap();
    assert!(matches!(
        hello(&mut greeted).await,
        NodeFrame::Welcome { .. }
    ));
    let mut oldest = UnixStream::connect(&socket).await.unwrap();
    let mut newer = UnixStream::connect(&socket).await.unwrap();
    // The cap is reached: a new client is served, and the oldest silent connection goes.
    let mut client = UnixStream::connect(&socket).await.unwrap();
    assert!(matches!(
        hello(&mut client).await,
        NodeFrame::Welcome { .. }
    ));
    assert!(
        closed(&mut oldest).await,
        "the oldest silent connection stayed open"
    );
    // With every connection greeted, a new one is refused with a reason.
    assert!(matches!(hello(&mut newer).await, NodeFrame::Welcome { .. }));
    let mut extra = UnixStream::connect(&socket).await.unwrap();
    assert!(
        matches!(hello(&mut extra).await, NodeFrame::Refused { .. }),
        "a fourth connection was served beyond the cap of 3"
    );
    // Closing a client frees its place.
    drop(greeted);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut again = UnixStream::connect(&socket).await.unwrap();
        if matches!(hello(&mut again).await, NodeFrame::Welcome { .. }) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no place freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
