//! The node database: io.store semantics, persistence, metadata, users, concurrency, and
//! property tests of the merge semantics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plexus_store::{
    merge_with, save_at, size, Caller, MemStore, NodeDb, NodeMeta, SaveBy, StoreError, UnitStore,
    UserConflict, MAX_ENTRY_DEPTH,
};
use plexus_units::testing::arb_message;
use plexus_units::{code, parse, Map, Path, Str, Unit};
use proptest::prelude::*;

mod common;

use common::{by, ADMIN};

fn u(t: &str) -> Unit {
    parse(t).unwrap()
}

fn p(t: &str) -> Path {
    Path::parse_dotted(t).unwrap()
}

fn temp_db() -> (tempfile::TempDir, NodeDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = NodeDb::open(dir.path()).unwrap();
    (dir, db)
}

#[tokio::test]
async fn saves_loads_and_sizes() {
    let (_dir, db) = temp_db();
    assert_eq!(db.load(None, ADMIN).await.unwrap(), u("{}"));
    assert_eq!(db.size(None, ADMIN).await.unwrap(), size(&u("{}")));
    db.save(&p("txt"), u("{hello:hi}"), by(None)).await.unwrap();
    db.save(&p("txt.lang"), u("rust"), by(None)).await.unwrap();
    db.save(&p("a.b.c"), u("[1]"), by(None)).await.unwrap();
    db.save(&p("a.b.c"), u("2"), by(None)).await.unwrap();
    db.save(&p("a.b.c"), u("[3 4]"), by(None)).await.unwrap();
    db.save(&p("txt.hello"), u("bye"), by(None)).await.unwrap();
    let whole = u("{txt:{hello:bye lang:rust} a:{b:{c:[1 2 3 4]}}}");
    assert_eq!(db.load(None, ADMIN).await.unwrap(), whole);
    assert_eq!(db.load(Some(&p("a.b.c.2")), ADMIN).await.unwrap(), u("3"));
    assert_eq!(
        db.load(Some(&p("txt")), ADMIN).await.unwrap(),
        u("{hello:bye lang:rust}")
    );
    assert_eq!(db.size(None, ADMIN).await.unwrap(), size(&whole));
    assert_eq!(
        db.size(Some(&p("txt")), ADMIN).await.unwrap(),
        size(&u("{hello:bye lang:rust}"))
    );
    assert_eq!(
        db.size(Some(&p("a.b")), ADMIN).await.unwrap(),
        size(&u("{c:[1 2 3 4]}"))
    );
}

#[tokio::test]
async fn missing_paths_are_not_found_errors() {
    let (_dir, db) = temp_db();
    db.save(&p("a"), u("{b:1}"), by(None)).await.unwrap();
    for path in ["x", "a.c", "a.b.c", "x.y"] {
        let e = db.load(Some(&p(path)), ADMIN).await.unwrap_err();
        assert_eq!(e.code(), code::NOT_FOUND, "{path}");
        assert_eq!(e.to_string(), format!("nothing at @{path} in the store"));
        assert_eq!(e.path(), Some(&p(path)));
        let e = db.size(Some(&p(path)), ADMIN).await.unwrap_err();
        assert_eq!(e.code(), code::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn saving_through_a_scalar_is_refused_and_changes_nothing() {
    let (_dir, db) = temp_db();
    db.save(&p("a"), u("{b:1 l:[1]}"), by(None)).await.unwrap();
    let e = db.save(&p("a.b.c"), u("2"), by(None)).await.unwrap_err();
    assert_eq!(e.code(), code::BAD_ARGUMENT);
    assert_eq!(
        e.to_string(),
        "cannot save at @a.b.c: @a.b holds an int, not a map"
    );
    let e = db.save(&p("a.l.5"), u("2"), by(None)).await.unwrap_err();
    assert_eq!(e.code(), code::BAD_ARGUMENT);
    assert_eq!(db.load(None, ADMIN).await.unwrap(), u("{a:{b:1 l:[1]}}"));
}

#[tokio::test]
async fn entries_beyond_the_depth_limit_are_refused() {
    let (_dir, db) = temp_db();
    let mut deep = Unit::int(1);
    for _ in 0..MAX_ENTRY_DEPTH {
        deep = Unit::List(vec![deep]);
    }
    db.save(&p("ok"), deep.clone(), by(None)).await.unwrap();
    let e = db
        .save(&p("deep.x"), deep.clone(), by(None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), code::LIMIT);
    assert!(db.load(Some(&p("deep")), ADMIN).await.is_err());
    assert_eq!(db.load(Some(&p("ok")), ADMIN).await.unwrap(), deep);
    // The whole store is still a unit of message depth.
    assert!(db.load(None, ADMIN).await.unwrap().depth() <= plexus_units::Limits::DEFAULT.max_depth);
}

#[test]
fn content_metadata_and_users_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = NodeDb::open(dir.path()).unwrap();
        assert!(db.seed_if_empty(&u("{txt:{hello:hi} n:1}")).unwrap());
        assert!(!db.seed_if_empty(&u("{other:1}")).unwrap());
        db.save_blocking(&p("n"), u("2"), by(None)).unwrap();
        db.save_blocking(&p("z"), u("last"), by(None)).unwrap();
        assert_eq!(db.meta().unwrap(), None);
        db.set_meta(&NodeMeta {
            id: "id-1".into(),
            name: "alpha".into(),
        })
        .unwrap();
        db.add_user([9; 32], "bob", None).unwrap();
        db.add_user([1; 32], "ann", None).unwrap();
        // Open twice in one process is refused, not corrupted.
        assert!(matches!(
            NodeDb::open(dir.path()),
            Err(StoreError::Open { .. })
        ));
    }
    let db = NodeDb::open(dir.path()).unwrap();
    assert_eq!(db.file(), dir.path().join(plexus_store::DB_FILE));
    assert_eq!(
        db.load_blocking(None, ADMIN).unwrap(),
        u("{txt:{hello:hi} n:2 z:last}")
    );
    assert_eq!(
        db.meta().unwrap(),
        Some(NodeMeta {
            id: "id-1".into(),
            name: "alpha".into()
        })
    );
    assert_eq!(
        db.users().unwrap(),
        vec![([1; 32], "ann".to_owned()), ([9; 32], "bob".to_owned())]
    );
}

#[test]
fn a_file_path_opens_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join("x.redb");
    let db = NodeDb::open(&file).unwrap();
    assert_eq!(db.file(), file);
    assert!(file.exists());
}

#[test]
fn seeds_must_be_maps() {
    let (_dir, db) = temp_db();
    assert!(matches!(
        db.seed_if_empty(&u("[1]")),
        Err(StoreError::BadArgument(_))
    ));
}

#[test]
fn user_conflicts_mirror_vnix() {
    let (_dir, db) = temp_db();
    db.add_user([1; 32], "ann", None).unwrap();
    assert!(matches!(
        db.add_user([2; 32], "ann", None),
        Err(StoreError::User(c)) if c == UserConflict::NameTaken {
                name: "ann".into()
            }
    ));
    assert!(matches!(
        db.add_user([1; 32], "ann", None),
        Err(StoreError::User(c)) if c == UserConflict::AlreadyRegistered {
                name: "ann".into()
            }
    ));
    assert!(matches!(
        db.add_user([1; 32], "bob", None),
        Err(StoreError::User(c)) if c == UserConflict::KeyTaken {
                existing: "ann".into()
            }
    ));
    assert_eq!(db.users().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_lose_no_update() {
    let (_dir, db) = temp_db();
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for t in 0..8i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25i64 {
                // The same list (read-modify-write of one entry) and a key of its own.
                db.save(
                    &p("log"),
                    Unit::List(vec![Unit::int(t * 100 + i)]),
                    by(None),
                )
                .await
                .unwrap();
                db.save(
                    &p(&format!("k.t{t}")),
                    Unit::List(vec![Unit::int(i)]),
                    by(None),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = db.load(Some(&p("log")), ADMIN).await.unwrap();
    let mut got: Vec<i64> = log
        .as_list()
        .unwrap()
        .iter()
        .map(|x| x.as_int().unwrap().to_i64().unwrap())
        .collect();
    got.sort();
    let mut want: Vec<i64> = (0..8)
        .flat_map(|t| (0..25).map(move |i| t * 100 + i))
        .collect();
    want.sort();
    assert_eq!(got, want);
    for t in 0..8 {
        let l = db.load(Some(&p(&format!("k.t{t}"))), ADMIN).await.unwrap();
        assert_eq!(l, Unit::List((0..25).map(Unit::int).collect()));
    }
}

#[test]
fn works_outside_a_runtime() {
    let (_dir, db) = temp_db();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Polled by tokio but created here: fine either way.
    rt.block_on(db.save(&p("a"), u("1"), by(None))).unwrap();
    assert_eq!(db.load_blocking(Some(&p("a")), ADMIN).unwrap(), u("1"));
}

#[tokio::test]
async fn mem_store_has_the_same_semantics() {
    let mem = MemStore::new();
    mem.save(&p("a.b"), u("[1]"), by(None)).await.unwrap();
    mem.save(&p("a.b"), u("2"), by(None)).await.unwrap();
    assert_eq!(mem.load(None, ADMIN).await.unwrap(), u("{a:{b:[1 2]}}"));
    assert_eq!(mem.load(Some(&p("a.b.1")), ADMIN).await.unwrap(), u("2"));
    assert_eq!(
        mem.load(Some(&p("a.x")), ADMIN).await.unwrap_err().code(),
        code::NOT_FOUND
    );
    assert_eq!(
        mem.save(&p("a.b.0.x"), u("1"), by(None))
            .await
            .unwrap_err()
            .code(),
        code::BAD_ARGUMENT
    );
    assert_eq!(
        mem.size(None, ADMIN).await.unwrap(),
        size(&u("{a:{b:[1 2]}}"))
    );
}

// ----- properties -----

fn key() -> impl Strategy<Value = Str> {
    prop::sample::select(vec!["a", "b", "c", "d", "0", "1"]).prop_map(Str::from)
}

fn unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        (-3i64..5).prop_map(Unit::int),
        key().prop_map(Unit::Str),
    ];
    arb_message(leaf, &[], &[])
}

fn map_of(u: Unit) -> Map {
    match u {
        Unit::Map(m) => m,
        other => {
            let mut m = Map::new();
            m.insert(Unit::str("v"), other);
            m
        }
    }
}

fn path() -> impl Strategy<Value = Path> {
    prop::collection::vec(key(), 1..4).prop_map(|s| Path::new(s).unwrap())
}

proptest! {
    #[test]
    fn merging_lists_concatenates(a in prop::collection::vec(unit(), 0..5), b in prop::collection::vec(unit(), 0..5)) {
        let got = merge_with(Unit::List(a.clone()), Unit::List(b.clone()));
        if a == b {
            prop_assert_eq!(got, Unit::List(a));
        } else {
            let mut want = a;
            want.extend(b);
            prop_assert_eq!(got, Unit::List(want));
        }
    }

    #[test]
    fn merging_maps_keeps_keys_unique_and_ordered(a in unit().prop_map(map_of), b in unit().prop_map(map_of)) {
        let got = merge_with(Unit::Map(a.clone()), Unit::Map(b.clone()));
        let Unit::Map(got) = got else { panic!("not a map") };
        // Unique keys: rebuilding from the entries succeeds.
        prop_assert!(Map::from_entries(got.entries().to_vec()).is_ok());
        // a's keys first, in a's order, then b's new keys in b's order.
        let mut want_keys: Vec<Unit> = a.keys().cloned().collect();
        want_keys.extend(b.keys().filter(|k| a.get(k).is_none()).cloned());
        prop_assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want_keys);
        for (k, v) in got.iter() {
            let want = match (a.get(k), b.get(k)) {
                (Some(va), Some(vb)) => merge_with(va.clone(), vb.clone()),
                (Some(va), None) => va.clone(),
                (None, Some(vb)) => vb.clone(),
                (None, None) => unreachable!(),
            };
            prop_assert_eq!(v, &want);
        }
    }

    #[test]
    fn a_pair_sets_one_entry_in_place(a in unit().prop_map(map_of), k in key(), v in unit()) {
        let got = merge_with(Unit::Map(a.clone()), Unit::pair(Unit::Str(k.clone()), v.clone()));
        // Set in place: an existing key keeps its position, a new one goes last.
        let mut want = a;
        want.insert(Unit::Str(k), v);
        prop_assert_eq!(got, Unit::Map(want));
    }

    #[test]
    fn merging_equal_units_gives_the_unit(a in unit()) {
        prop_assert_eq!(merge_with(a.clone(), a.clone()), a);
    }

    #[test]
    fn save_at_merges_creates_or_changes_nothing(root in unit(), path in path(), v in unit()) {
        let mut after = root.clone();
        match save_at(&mut after, &path, v.clone()) {
            Ok(()) => {
                let want = match root.find(&path) {
                    Some(old) => merge_with(old.clone(), v),
                    None => v,
                };
                prop_assert_eq!(after.find(&path), Some(&want));
            }
            Err(_) => prop_assert_eq!(after, root),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The database and the memory store agree with each other and with `size`.
    #[test]
    fn node_db_matches_mem_store(saves in prop::collection::vec((path(), unit()), 1..12)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_dir, db) = temp_db();
        let mem = MemStore::new();
        rt.block_on(async {
            for (path, v) in saves {
                let a = db.save(&path, v.clone(), by(None)).await.map_err(|e| e.to_string());
                let b = mem.save(&path, v, by(None)).await.map_err(|e| e.to_string());
                assert_eq!(a, b);
                let whole = db.load(None, ADMIN).await.unwrap();
                assert_eq!(&whole, &mem.load(None, ADMIN).await.unwrap());
                assert_eq!(db.size(None, ADMIN).await.unwrap(), size(&whole));
                assert_eq!(
                    db.load(Some(&path), ADMIN).await.map_err(|e| e.to_string()),
                    mem.load(Some(&path), ADMIN).await.map_err(|e| e.to_string())
                );
                assert_eq!(
                    db.size(Some(&path), ADMIN).await.map_err(|e| e.to_string()),
                    mem.size(Some(&path), ADMIN).await.map_err(|e| e.to_string())
                );
            }
        });
    }
}

#[tokio::test]
async fn a_signed_message_saves_for_one_evaluation_even_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let once = |evaluation| plexus_store::Once {
        message: [1; 32],
        time_ms: 1_000_000,
        evaluation,
    };
    {
        let db = NodeDb::open(dir.path()).unwrap();
        db.save(&p("l"), u("[1]"), by(Some(once(7)))).await.unwrap();
        db.save(&p("l"), u("[2]"), by(Some(once(7)))).await.unwrap();
    }
    let db = NodeDb::open(dir.path()).unwrap();
    let e = db
        .save(&p("l"), u("[3]"), by(Some(once(8))))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Replayed), "{e}");
    assert_eq!(e.code(), code::REPLAYED);
    // Saves for no signed message are not recorded.
    db.save(&p("l"), u("[4]"), by(None)).await.unwrap();
    assert_eq!(db.load(Some(&p("l")), ADMIN).await.unwrap(), u("[1 2 4]"));
}

#[tokio::test]
async fn a_signed_message_changes_users_for_one_evaluation_only() {
    let (_dir, db) = temp_db();
    let once = |message, evaluation| plexus_store::Once {
        message: [message; 32],
        time_ms: 1_000_000,
        evaluation,
    };
    db.add_user([1; 32], "bob", Some(&once(1, 7))).unwrap();
    db.remove_user("bob", None).unwrap();
    let replayed = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Replayed));
    assert!(replayed(db.add_user([1; 32], "bob", Some(&once(1, 8)))));
    // One record covers a message's saves and user changes alike.
    assert!(replayed(
        db.save(&p("l"), u("[1]"), by(Some(once(1, 8)))).await
    ));
    assert!(replayed(db.remove_user("bob", Some(&once(1, 8))).map(drop)));
    assert!(replayed(
        db.rename_user("bob", "rob", Some(&once(1, 8))).map(drop)
    ));
    assert!(replayed(db.add_user_invite(
        [2; 32],
        5_000,
        Some(&once(1, 8))
    )));
    assert!(replayed(db.add_invited_user(
        [1; 32],
        "bob",
        [2; 32],
        1_000,
        Some(&once(1, 8))
    )));
    assert_eq!(db.users().unwrap(), vec![]);
    // A refused change records nothing: another evaluation of its message may still apply.
    db.add_user([3; 32], "ann", None).unwrap();
    assert!(db.add_user([1; 32], "ann", Some(&once(2, 9))).is_err());
    db.add_user([1; 32], "bob", Some(&once(2, 10))).unwrap();
    assert_eq!(db.users().unwrap().len(), 2);
}

#[tokio::test]
async fn entries_belong_to_their_creators_in_every_store() {
    let ann = Caller {
        user: [1; 32],
        admin: false,
    };
    let bob = Caller {
        user: [2; 32],
        admin: false,
    };
    let save_as = |caller, private| SaveBy {
        caller,
        private,
        once: None,
    };
    let (_dir, db) = temp_db();
    let mem = MemStore::new();
    let stores: [&dyn UnitStore; 2] = [&db, &mem];
    for store in stores {
        store.save(&p("seed"), u("1"), by(None)).await.unwrap();
        store
            .save(&p("a.x"), u("[1]"), save_as(ann, None))
            .await
            .unwrap();
        store
            .save(&p("hid"), u("[s]"), save_as(ann, Some(true)))
            .await
            .unwrap();
        for path in ["a.x", "a.y", "hid", "seed"] {
            let e = store
                .save(&p(path), u("2"), save_as(bob, None))
                .await
                .unwrap_err();
            assert_eq!(e.code(), code::DENIED, "{path}: {e}");
        }
        store
            .save(&p("a.x"), u("[2]"), save_as(ann, None))
            .await
            .unwrap();
        // Bob sees the store without Ann's private entry; Ann and the admin see it all.
        assert_eq!(
            store.load(None, bob).await.unwrap(),
            u("{seed:1 a:{x:[1 2]}}")
        );
        assert_eq!(
            store.size(None, bob).await.unwrap(),
            size(&u("{seed:1 a:{x:[1 2]}}"))
        );
        let e = store.load(Some(&p("hid.0")), bob).await.unwrap_err();
        assert_eq!(e.code(), code::NOT_FOUND);
        let all = u("{seed:1 a:{x:[1 2]} hid:[s]}");
        assert_eq!(store.load(None, ann).await.unwrap(), all);
        assert_eq!(store.load(None, ADMIN).await.unwrap(), all);
        // The admin changes anything; making the entry public shows it to Bob.
        store
            .save(
                &p("hid"),
                u("[t]"),
                SaveBy {
                    private: Some(false),
                    ..by(None)
                },
            )
            .await
            .unwrap();
        assert_eq!(store.load(Some(&p("hid")), bob).await.unwrap(), u("[s t]"));
    }
}
