//! The file-system metadata tables: operations, permissions, chunk references, and a
//! model-based property test of random operations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use plexus_fs::{Actor, ChunkRef, FsPath};
use plexus_store::fs::{FsError, FsTables, Homes, Kind};
use proptest::prelude::*;
use redb::backends::InMemoryBackend;
use redb::Database;

const TABLES: FsTables = FsTables::new("fs.inodes", "fs.entries", "fs.chunks", "fs.counters");
const ADMIN: Actor = Actor {
    user: [0; 32],
    admin: true,
};
const ME: Actor = Actor {
    user: [1; 32],
    admin: false,
};
const YOU: Actor = Actor {
    user: [2; 32],
    admin: false,
};

fn db() -> Database {
    let db = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .unwrap();
    let txn = db.begin_write().unwrap();
    TABLES.create(&txn).unwrap();
    txn.commit().unwrap();
    db
}

fn p(text: &str) -> FsPath {
    FsPath::parse(text).unwrap()
}

fn chunk(n: u8, len: u32) -> ChunkRef {
    ChunkRef { hash: [n; 32], len }
}

/// Runs `f` in a write transaction, committed only if it succeeds (as the state machine
/// does: a refused operation changes nothing).
fn write<T>(
    db: &Database,
    f: impl FnOnce(&redb::WriteTransaction) -> Result<T, FsError>,
) -> Result<T, FsError> {
    let txn = db.begin_write().unwrap();
    let out = f(&txn);
    if out.is_ok() {
        txn.commit().unwrap();
    } else {
        txn.abort().unwrap();
    }
    out
}

/// The code of an operation's error.
fn err<T: std::fmt::Debug>(r: Result<T, FsError>) -> String {
    r.unwrap_err().code().to_owned()
}

fn names(db: &Database, actor: &Actor, dir: &str) -> Vec<String> {
    TABLES
        .list(&db.begin_read().unwrap(), actor, &p(dir))
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn files_and_directories_are_made_listed_moved_and_removed() {
    let db = db();
    write(&db, |t| TABLES.mkdir(t, &ADMIN, &p("/data"), 0o777, 10)).unwrap();
    let put = write(&db, |t| {
        TABLES.put_file(
            t,
            &ME,
            &p("/data/a.csv"),
            0o644,
            &[chunk(1, 100), chunk(2, 50)],
            &[],
            20,
        )
    })
    .unwrap();
    assert_eq!(
        (put.inode.kind, put.inode.size, put.inode.owner),
        (Kind::File, 150, ME.user)
    );
    let read = db.begin_read().unwrap();
    let stat = TABLES.stat(&read, &YOU, &p("/data/a.csv")).unwrap();
    assert_eq!(stat, put);
    let data = TABLES.stat(&read, &YOU, &p("/data")).unwrap();
    assert_eq!(
        (data.inode.size, data.inode.mtime_ms),
        (1, 20),
        "a directory counts its entries"
    );
    drop(read);

    // Replacing content keeps the inode, its owner and mode.
    let again = write(&db, |t| {
        TABLES.put_file(t, &ME, &p("/data/a.csv"), 0o600, &[chunk(3, 7)], &[], 30)
    })
    .unwrap();
    assert_eq!(
        (
            again.ino,
            again.inode.size,
            again.inode.mode,
            again.inode.version
        ),
        (put.ino, 7, 0o644, 1)
    );

    write(&db, |t| TABLES.mkdir(t, &ME, &p("/data/sub"), 0o755, 40)).unwrap();
    write(&db, |t| {
        TABLES.rename(t, &ME, &p("/data/a.csv"), &p("/data/sub/b.csv"), 50)
    })
    .unwrap();
    assert_eq!(names(&db, &ME, "/data"), ["sub"]);
    assert_eq!(names(&db, &ME, "/data/sub"), ["b.csv"]);
    assert_eq!(
        err(write(&db, |t| TABLES.remove(t, &ME, &p("/data/sub"), 60))),
        "fs.not.empty"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.mkdir(
            t,
            &ME,
            &p("/data/sub"),
            0o755,
            60
        ))),
        "fs.exists"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.mkdir(
            t,
            &ME,
            &p("/nope/x"),
            0o755,
            60
        ))),
        "not.found"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.mkdir(
            t,
            &ME,
            &p("/data/sub/b.csv/x"),
            0o755,
            60
        ))),
        "fs.not.dir"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.put_file(
            t,
            &ME,
            &p("/data/sub"),
            0o644,
            &[],
            &[],
            60
        ))),
        "fs.is.dir"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.rename(
            t,
            &ME,
            &p("/data"),
            &p("/data/sub/in"),
            60
        ))),
        "arg.bad"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.remove(
            t,
            &ADMIN,
            &FsPath::root(),
            60
        ))),
        "arg.bad"
    );
    assert_eq!(
        err(write(&db, |t| TABLES.mkdir(
            t,
            &ME,
            &p("/data/m"),
            0o1777,
            60
        ))),
        "arg.bad"
    );
    write(&db, |t| TABLES.remove(t, &ME, &p("/data/sub/b.csv"), 70)).unwrap();
    write(&db, |t| TABLES.remove(t, &ME, &p("/data/sub"), 70)).unwrap();
    assert!(names(&db, &ME, "/data").is_empty());
    let data = TABLES
        .stat(&db.begin_read().unwrap(), &YOU, &p("/data"))
        .unwrap();
    assert_eq!(data.inode.size, 0);
}

/// The homes listed for `hash`, or `None` without a row.
fn homes(db: &Database, hash: u8) -> Option<(u64, Vec<String>)> {
    TABLES
        .chunk_row(&db.begin_read().unwrap(), &[hash; 32])
        .unwrap()
        .map(|r| (r.refs, r.homes))
}

fn at(hash: u8, add: &[&str], drop: &[&str]) -> Homes {
    Homes {
        hash: [hash; 32],
        add: add.iter().map(|s| (*s).to_owned()).collect(),
        drop: drop.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn chunk_rows_count_references_and_list_homes_until_no_file_names_them() {
    let db = db();
    write(&db, |t| {
        let chunks = [chunk(1, 1), chunk(2, 1)];
        let placed = [at(1, &["n1", "n2"], &[]), at(2, &["n1"], &[])];
        TABLES.put_file(t, &ADMIN, &p("/a"), 0o644, &chunks, &placed, 1)
    })
    .unwrap();
    write(&db, |t| {
        let placed = [at(2, &["n3", "n1"], &[])];
        TABLES.put_file(t, &ADMIN, &p("/b"), 0o644, &[chunk(2, 1)], &placed, 1)
    })
    .unwrap();
    assert_eq!(homes(&db, 1), Some((1, vec!["n1".into(), "n2".into()])));
    assert_eq!(homes(&db, 2), Some((2, vec!["n1".into(), "n3".into()])));
    // Replaced: chunk 1 is named no more and loses its row.
    write(&db, |t| {
        TABLES.put_file(t, &ADMIN, &p("/a"), 0o644, &[chunk(3, 1)], &[], 2)
    })
    .unwrap();
    assert_eq!(homes(&db, 1), None);
    assert_eq!(homes(&db, 2), Some((1, vec!["n1".into(), "n3".into()])));
    assert_eq!(homes(&db, 3), Some((1, vec![])));
    // Rehoming: drops then adds, each node once, rows of unnamed chunks untouched.
    let txn = db.begin_write().unwrap();
    TABLES
        .rehome(&txn, &[at(2, &["n4", "n3"], &["n1"]), at(1, &["n9"], &[])])
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(homes(&db, 2), Some((1, vec!["n3".into(), "n4".into()])));
    assert_eq!(homes(&db, 1), None);
    let bad = db.begin_write().unwrap();
    let long = "n".repeat(300);
    assert_eq!(
        TABLES
            .rehome(&bad, &[at(2, &[&long], &[])])
            .unwrap_err()
            .code(),
        "arg.bad"
    );
    drop(bad);
    let rows = TABLES
        .chunk_rows(&db.begin_read().unwrap(), None, 10)
        .unwrap();
    assert_eq!(rows.iter().map(|(h, _)| h[0]).collect::<Vec<_>>(), [2, 3]);
    let rest = TABLES
        .chunk_rows(&db.begin_read().unwrap(), Some([2; 32]), 10)
        .unwrap();
    assert_eq!(rest.len(), 1);
    write(&db, |t| TABLES.remove(t, &ADMIN, &p("/b"), 3)).unwrap();
    assert_eq!(homes(&db, 2), None);
}

#[test]
fn owners_and_modes_are_checked_on_every_operation() {
    let db = db();
    write(&db, |t| TABLES.mkdir(t, &ADMIN, &p("/home"), 0o755, 1)).unwrap();
    write(&db, |t| TABLES.mkdir(t, &ADMIN, &p("/home/me"), 0o755, 1)).unwrap();
    write(&db, |t| TABLES.chown(t, &ADMIN, &p("/home/me"), ME.user)).unwrap();
    write(&db, |t| {
        TABLES.put_file(t, &ME, &p("/home/me/notes"), 0o644, &[chunk(1, 5)], &[], 2)
    })
    .unwrap();
    let code = |r: Result<(), FsError>| r.unwrap_err().code().to_owned();
    // Others may read (0o644) but not write, add, remove or rename.
    assert!(TABLES
        .stat(&db.begin_read().unwrap(), &YOU, &p("/home/me/notes"))
        .is_ok());
    assert_eq!(
        code(write(&db, |t| TABLES
            .put_file(t, &YOU, &p("/home/me/notes"), 0o644, &[], &[], 3)
            .map(drop))),
        "denied"
    );
    assert_eq!(
        code(write(&db, |t| TABLES
            .put_file(t, &YOU, &p("/home/me/mine"), 0o644, &[], &[], 3)
            .map(drop))),
        "denied"
    );
    assert_eq!(
        code(write(&db, |t| TABLES.remove(
            t,
            &YOU,
            &p("/home/me/notes"),
            3
        ))),
        "denied"
    );
    assert_eq!(
        code(write(&db, |t| TABLES.rename(
            t,
            &YOU,
            &p("/home/me/notes"),
            &p("/home/x"),
            3
        ))),
        "denied"
    );
    assert_eq!(
        code(write(&db, |t| TABLES
            .chmod(t, &YOU, &p("/home/me/notes"), 0o666)
            .map(drop))),
        "denied"
    );
    assert_eq!(
        code(write(&db, |t| TABLES
            .chown(t, &ME, &p("/home/me/notes"), YOU.user)
            .map(drop))),
        "denied"
    );
    // A private directory keeps even its listing and its files' metadata from others.
    write(&db, |t| TABLES.chmod(t, &ME, &p("/home/me"), 0o700)).unwrap();
    let read = db.begin_read().unwrap();
    assert_eq!(
        TABLES
            .stat(&read, &YOU, &p("/home/me/notes"))
            .unwrap_err()
            .code(),
        "denied"
    );
    assert_eq!(
        TABLES.list(&read, &YOU, &p("/home/me")).unwrap_err().code(),
        "denied"
    );
    // The admin may do anything.
    assert!(TABLES.list(&read, &ADMIN, &p("/home/me")).is_ok());
    drop(read);
    write(&db, |t| TABLES.remove(t, &ADMIN, &p("/home/me/notes"), 4)).unwrap();
}

/// An operation of the property test, on paths of a small tree.
#[derive(Clone, Debug)]
enum Op {
    Mkdir(String),
    Put(String, Vec<u8>),
    Remove(String),
    Rename(String, String),
}

fn path_in_tree() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..4)
        .prop_map(|names| format!("/{}", names.join("/")))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        path_in_tree().prop_map(Op::Mkdir),
        (path_in_tree(), proptest::collection::vec(0u8..6, 0..4)).prop_map(|(p, c)| Op::Put(p, c)),
        path_in_tree().prop_map(Op::Remove),
        (path_in_tree(), path_in_tree()).prop_map(|(a, b)| Op::Rename(a, b)),
    ]
}

/// The model: every path with its kind and, for a file, its chunks.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

fn parent_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_owned(),
        Some((parent, _)) => parent.to_owned(),
    }
}

/// What the model says of `op`: the error code, or the new model.
fn model_apply(
    model: &BTreeMap<String, Node>,
    op: &Op,
) -> Result<BTreeMap<String, Node>, &'static str> {
    let mut m = model.clone();
    let is_dir = |m: &BTreeMap<String, Node>, p: &str| p == "/" || m.get(p) == Some(&Node::Dir);
    // Walking to the parent: the first missing name is not.found, a file on the way not.dir.
    let walk = |m: &BTreeMap<String, Node>, path: &str| -> Result<(), &'static str> {
        let mut at = String::new();
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        for name in &names[..names.len() - 1] {
            at = format!("{at}/{name}");
            match m.get(&at) {
                None => return Err("not.found"),
                Some(Node::File(_)) => return Err("fs.not.dir"),
                Some(Node::Dir) => {}
            }
        }
        Ok(())
    };
    let has_children =
        |m: &BTreeMap<String, Node>, p: &str| m.keys().any(|k| k.starts_with(&format!("{p}/")));
    match op {
        Op::Mkdir(path) => {
            walk(&m, path)?;
            if m.contains_key(path) {
                return Err("fs.exists");
            }
            m.insert(path.clone(), Node::Dir);
        }
        Op::Put(path, chunks) => {
            walk(&m, path)?;
            match m.get(path) {
                Some(Node::Dir) => return Err("fs.is.dir"),
                _ => {
                    m.insert(path.clone(), Node::File(chunks.clone()));
                }
            }
        }
        Op::Remove(path) => {
            walk(&m, path)?;
            match m.get(path) {
                None => return Err("not.found"),
                Some(Node::Dir) if has_children(&m, path) => return Err("fs.not.empty"),
                _ => {
                    m.remove(path);
                }
            }
        }
        Op::Rename(from, to) => {
            if to.starts_with(&format!("{from}/")) {
                return Err("arg.bad");
            }
            walk(&m, from)?;
            let node = m.get(from).cloned().ok_or("not.found")?;
            if from == to {
                return Ok(m);
            }
            walk(&m, to)?;
            if !is_dir(&m, &parent_of(to)) {
                return Err("fs.not.dir");
            }
            match (&node, m.get(to)) {
                (Node::Dir, Some(Node::File(_))) => return Err("fs.not.dir"),
                (Node::File(_), Some(Node::Dir)) => return Err("fs.is.dir"),
                (Node::Dir, Some(Node::Dir)) if has_children(&m, to) => return Err("fs.not.empty"),
                _ => {}
            }
            let moved: Vec<(String, Node)> = m
                .iter()
                .filter(|(k, _)| *k == from || k.starts_with(&format!("{from}/")))
                .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
                .collect();
            m.retain(|k, _| !(k == from || k.starts_with(&format!("{from}/"))));
            m.remove(to);
            m.extend(moved);
        }
    }
    Ok(m)
}

fn tree(db: &Database, dir: &str, out: &mut BTreeMap<String, Node>) {
    let read = db.begin_read().unwrap();
    for (name, stat) in TABLES.list(&read, &ADMIN, &p(dir)).unwrap() {
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        match stat.inode.kind {
            Kind::Dir => {
                out.insert(path.clone(), Node::Dir);
                tree(db, &path, out);
            }
            Kind::File => {
                out.insert(
                    path,
                    Node::File(stat.inode.chunks.iter().map(|c| c.hash[0]).collect()),
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random operations give the model's outcome, one after another, and leave the model's
    /// tree; every chunk's reference count is how many times files name it, and a chunk named
    /// once but no more has no row.
    #[test]
    fn the_tables_follow_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let db = db();
        let mut model = BTreeMap::new();
        let mut ever = BTreeSet::new();
        for (i, op) in ops.iter().enumerate() {
            let now = i as u64;
            let got = write(&db, |t| match op {
                Op::Mkdir(path) => TABLES.mkdir(t, &ADMIN, &p(path), 0o755, now).map(drop),
                Op::Put(path, chunks) => {
                    let refs: Vec<ChunkRef> = chunks.iter().map(|&c| chunk(c, 10)).collect();
                    TABLES.put_file(t, &ADMIN, &p(path), 0o644, &refs, &[], now).map(drop)
                }
                Op::Remove(path) => TABLES.remove(t, &ADMIN, &p(path), now),
                Op::Rename(from, to) => TABLES.rename(t, &ADMIN, &p(from), &p(to), now),
            });
            match (model_apply(&model, op), got) {
                (Ok(next), Ok(())) => {
                    model = next;
                    if let Op::Put(_, chunks) = op {
                        ever.extend(chunks.iter().copied());
                    }
                }
                (Err(code), Err(e)) => prop_assert_eq!(code, e.code(), "{:?}: {}", op, e),
                (want, got) => prop_assert!(false, "{:?}: model {:?}, tables {:?}", op, want.map(|_| ()), got),
            }
        }
        let mut found = BTreeMap::new();
        tree(&db, "/", &mut found);
        prop_assert_eq!(&found, &model);
        let read = db.begin_read().unwrap();
        for c in ever {
            let named = model.values().map(|n| match n {
                Node::File(cs) => cs.iter().filter(|&&x| x == c).count() as u64,
                Node::Dir => 0,
            }).sum::<u64>();
            let row = TABLES.chunk_row(&read, &[c; 32]).unwrap();
            prop_assert_eq!(row.map_or(0, |r| r.refs), named, "chunk {}", c);
        }
        // Every directory counts its entries.
        for (path, node) in model.iter().filter(|(_, n)| **n == Node::Dir) {
            let entries = model.keys().filter(|k| parent_of(k) == *path).count() as u64;
            let stat = TABLES.stat(&read, &ADMIN, &p(path)).unwrap();
            prop_assert_eq!(stat.inode.size, entries, "{} {:?}", path, node);
        }
    }
}

#[test]
fn operations_apply_from_their_log_form_and_tables_dump_and_restore() {
    use plexus_store::fs::{FsOp, StoredChunk};
    let db = db();
    let ops = [
        FsOp::Mkdir {
            path: "/data".into(),
            mode: 0o755,
        },
        FsOp::PutFile {
            path: "/data/a".into(),
            mode: 0o644,
            chunks: vec![StoredChunk {
                hash: [5; 32],
                len: 9,
            }],
            homes: vec![at(5, &["n1"], &[])],
        },
        FsOp::Rename {
            from: "/data/a".into(),
            to: "/data/b".into(),
        },
        FsOp::Chmod {
            path: "/data/b".into(),
            mode: 0o600,
        },
    ];
    for (i, op) in ops.iter().enumerate() {
        write(&db, |t| TABLES.apply(t, &ADMIN, i as u64, op)).unwrap();
    }
    let bad = FsOp::Mkdir {
        path: "data/x".into(),
        mode: 0o755,
    };
    assert_eq!(
        err(write(&db, |t| TABLES.apply(t, &ADMIN, 9, &bad))),
        "arg.bad"
    );
    let rehome = FsOp::Rehome {
        changes: vec![at(5, &["n2"], &[])],
    };
    assert_eq!(
        err(write(&db, |t| TABLES.apply(t, &ME, 9, &rehome))),
        "arg.bad"
    );

    let dump = TABLES.dump(&db.begin_read().unwrap()).unwrap();
    let copy = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .unwrap();
    let txn = copy.begin_write().unwrap();
    TABLES.create(&txn).unwrap();
    TABLES.restore(&txn, &dump).unwrap();
    txn.commit().unwrap();
    assert_eq!(TABLES.dump(&copy.begin_read().unwrap()).unwrap(), dump);
    let stat = TABLES
        .stat(&copy.begin_read().unwrap(), &ADMIN, &p("/data/b"))
        .unwrap();
    assert_eq!((stat.inode.size, stat.inode.mode), (9, 0o600));
    // The restored copy goes on numbering where the original was.
    write(&copy, |t| TABLES.mkdir(t, &ADMIN, &p("/more"), 0o755, 10)).unwrap();
    let more = TABLES
        .stat(&copy.begin_read().unwrap(), &ADMIN, &p("/more"))
        .unwrap();
    assert_eq!(more.ino, dump.next_ino);
}

#[tokio::test]
async fn a_single_node_keeps_its_tree_in_its_database() {
    use plexus_store::fs::{FsMeta, FsOp};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.redb");
    {
        let db = plexus_store::NodeDb::open(&file).unwrap();
        let op = FsOp::Mkdir {
            path: "/data".into(),
            mode: 0o755,
        };
        db.apply(ADMIN, 7, op).await.unwrap();
        let again = FsOp::Mkdir {
            path: "/data".into(),
            mode: 0o755,
        };
        assert_eq!(
            db.apply(ADMIN, 8, again).await.unwrap_err().code(),
            "fs.exists"
        );
    }
    let db = plexus_store::NodeDb::open(&file).unwrap();
    let listed = db.list(ME, FsPath::root()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].0.as_str(), listed[0].1.inode.mtime_ms),
        ("data", 7)
    );
    assert_eq!(
        db.stat(ME, p("/nope")).await.unwrap_err().code(),
        "not.found"
    );
}
