#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The replicated file tree on clusters of real nodes in one process (the in-memory network
//! with a paused clock, `sim/mod.rs`): a change acknowledged on one node is seen at once on
//! every other, with the author's rights checked by every node alike.

mod sim;

use std::sync::Arc;

use plexus_fs::{Actor, FsPath};
use plexus_store::fs::{FsMeta, FsOp, Homes, StoredChunk};
use sim::SimCluster;

const ADMIN: Actor = Actor {
    user: [0; 32],
    admin: true,
};
const USER: Actor = Actor {
    user: [6; 32],
    admin: false,
};

fn tree(c: &SimCluster, i: usize) -> Arc<dyn FsMeta> {
    c.node(i).cluster().expect("a cluster member").fs()
}

fn p(text: &str) -> FsPath {
    FsPath::parse(text).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_change_on_one_node_is_seen_at_once_on_every_other() {
    let c = SimCluster::start(3).await;
    let mkdir = |path: &str| FsOp::Mkdir {
        path: path.into(),
        mode: 0o755,
    };
    tree(&c, 0).apply(ADMIN, 1, mkdir("/home")).await.unwrap();
    tree(&c, 1).apply(ADMIN, 2, mkdir("/home/u")).await.unwrap();
    let chown = FsOp::Chown {
        path: "/home/u".into(),
        owner: USER.user,
    };
    tree(&c, 2).apply(ADMIN, 3, chown).await.unwrap();
    let put = FsOp::PutFile {
        path: "/home/u/data.csv".into(),
        mode: 0o644,
        chunks: vec![StoredChunk {
            hash: [9; 32],
            len: 1000,
        }],
        homes: vec![Homes {
            hash: [9; 32],
            add: vec!["n1".into(), "n2".into()],
            drop: Vec::new(),
        }],
    };
    tree(&c, 0).apply(USER, 4, put).await.unwrap();
    for i in 0..3 {
        let listed = tree(&c, i).list(USER, p("/home/u")).await.unwrap();
        assert_eq!(listed.len(), 1, "node {i}");
        assert_eq!(listed[0].0, "data.csv");
        assert_eq!(listed[0].1.inode.size, 1000);
        assert_eq!(listed[0].1.inode.mtime_ms, 4);
    }
    // Refusals come back with their codes from whichever node decided.
    let err = tree(&c, 1)
        .apply(USER, 5, mkdir("/elsewhere"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "denied", "{err}");
    let err = tree(&c, 2).stat(USER, p("/home/u/none")).await.unwrap_err();
    assert_eq!(err.code(), "not.found", "{err}");
    let rename = FsOp::Rename {
        from: "/home/u/data.csv".into(),
        to: "/home/u/old.csv".into(),
    };
    tree(&c, 2).apply(USER, 6, rename).await.unwrap();
    let stat = tree(&c, 1).stat(USER, p("/home/u/old.csv")).await.unwrap();
    assert_eq!(stat.inode.chunks.len(), 1);
    // Where chunks are kept is replicated too; only a node (as admin) changes it.
    let rehome = FsOp::Rehome {
        changes: vec![Homes {
            hash: [9; 32],
            add: vec!["n3".into()],
            drop: vec!["n1".into()],
        }],
    };
    let err = tree(&c, 0)
        .apply(USER, 7, rehome.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "arg.bad", "{err}");
    tree(&c, 1).apply(ADMIN, 7, rehome).await.unwrap();
    // Rows are read from each node's copy without a barrier: wait for the last to apply.
    for i in 0..3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let rows = tree(&c, i).chunk_rows_of(vec![[9; 32]]).await.unwrap();
            let homes = rows[0].as_ref().map(|r| r.homes.clone());
            if homes == Some(vec!["n2".to_owned(), "n3".to_owned()]) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "node {i}: {homes:?}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    let page = tree(&c, 2).chunk_rows(None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0].0, page[0].1.refs, page[0].1.len),
        ([9; 32], 1, 1000)
    );
    assert_eq!(
        usize::from(tree(&c, 0).leads())
            + usize::from(tree(&c, 1).leads())
            + usize::from(tree(&c, 2).leads()),
        1,
        "one node leads"
    );
}
