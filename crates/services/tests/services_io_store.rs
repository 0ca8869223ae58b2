//! io.store: examples, every command and error path, durability, random messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plexus_identity::Keypair;
use plexus_kernel::{code, Error, Kernel, Policy};
use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_services::{io_store, test_svc};
use plexus_store::{MemStore, NodeDb, UnitStore};
use plexus_units::testing::{arb_message, arb_word};
use plexus_units::{parse, Path, Unit};
use proptest::prelude::*;

const SEED: &str = "{txt:{hello:`Hello, Plexus!`} n:1}";

fn u(t: &str) -> Unit {
    parse(t).unwrap()
}

/// A kernel with io.store over `store` and test.echo (to make streams).
fn kernel_with(store: Arc<dyn UnitStore>) -> (Kernel, Keypair) {
    let (kernel, admin) = bare_kernel();
    kernel
        .register(io_store::service(store), None, Policy::Anyone)
        .unwrap();
    kernel
        .register(test_svc::echo(), None, Policy::Anyone)
        .unwrap();
    (kernel, admin)
}

fn seeded_db(dir: &std::path::Path) -> Arc<NodeDb> {
    let db = NodeDb::open(dir).unwrap();
    db.seed_if_empty(&u(SEED)).unwrap();
    Arc::new(db)
}

async fn run(k: &Kernel, user: &Keypair, text: &str) -> Result<Option<Unit>, Error> {
    eval_text(k, user, None, text).await
}

async fn value(k: &Kernel, user: &Keypair, text: &str) -> Unit {
    match run(k, user, text).await {
        Ok(Some(v)) => v,
        other => panic!("{text}: {other:?}"),
    }
}

async fn error(k: &Kernel, user: &Keypair, text: &str) -> Error {
    match run(k, user, text).await {
        Err(e) => e,
        other => panic!("{text} should fail: {other:?}"),
    }
}

#[tokio::test]
async fn examples_hold_on_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, admin) = kernel_with(seeded_db(dir.path()));
    let failures = check_examples(&kernel, &admin, "io.store").await;
    assert!(failures.is_empty(), "{failures:#?}");
    // And on a memory store.
    let (kernel, admin) = kernel_with(Arc::new(MemStore::new()));
    let failures = check_examples(&kernel, &admin, "io.store").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn load_save_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let (k, a) = kernel_with(seeded_db(dir.path()));
    assert_eq!(value(&k, &a, "load@io.store").await, u(SEED));
    assert_eq!(
        value(&k, &a, "(load @txt.hello)@io.store").await,
        u("`Hello, Plexus!`")
    );
    assert_eq!(value(&k, &a, "{load:@n}@io.store").await, u("1"));
    assert_eq!(
        value(&k, &a, "(load `txt.hello`)@io.store").await,
        u("`Hello, Plexus!`")
    );
    // Save forms: map and pair; no value.
    assert_eq!(
        run(&k, &a, "{save:{lang:rust} out:@txt}@io.store")
            .await
            .unwrap(),
        None
    );
    assert_eq!(run(&k, &a, "(save (2 @n))@io.store").await.unwrap(), None);
    assert_eq!(
        value(&k, &a, "load@io.store").await,
        u("{txt:{hello:`Hello, Plexus!` lang:rust} n:2}")
    );
    // A new deep path is created.
    run(&k, &a, "{save:[1] out:@a.b.c}@io.store").await.unwrap();
    run(&k, &a, "{save:2 out:@a.b.c}@io.store").await.unwrap();
    assert_eq!(
        value(&k, &a, "(load @a)@io.store").await,
        u("{b:{c:[1 2]}}")
    );
    // Options after the command are allowed in the map form (out may come anywhere).
    run(&k, &a, "{save:x note:ignored out:@s}@io.store")
        .await
        .unwrap();
    assert_eq!(value(&k, &a, "(load @s)@io.store").await, u("x"));
    // Sizes.
    let whole = value(&k, &a, "load@io.store").await;
    assert_eq!(
        value(&k, &a, "get.size@io.store").await,
        Unit::int(plexus_store::size(&whole) as i64)
    );
    assert_eq!(value(&k, &a, "(get.size @a.b.c)@io.store").await, u("4"));
    assert_eq!(value(&k, &a, "{get.size:@a.b.c}@io.store").await, u("4"));
    assert_eq!(
        value(&k, &a, "(get.size.kb @a.b.c)@io.store").await,
        u("0.00390625")
    );
    assert_eq!(
        value(&k, &a, "(get.size.mb @a.b.c)@io.store").await,
        u("0.000003814697265625")
    );
    assert_eq!(
        value(&k, &a, "(get.size.gb @a.b.c)@io.store").await,
        u("0.0000000037252902984619140625")
    );
    let kb = value(&k, &a, "get.size.kb@io.store").await;
    assert!(matches!(kb, Unit::Dec(_)));
}

#[tokio::test]
async fn paths_are_literal_and_values_are_evaluated() {
    let (k, a) = kernel_with(Arc::new(MemStore::new()));
    // Paths that name parts of the message are still store paths.
    run(&k, &a, "{save:5 out:@out}@io.store").await.unwrap();
    run(&k, &a, "{save:6 out:@save}@io.store").await.unwrap();
    run(&k, &a, "(save (7 @0))@io.store").await.unwrap();
    assert_eq!(
        value(&k, &a, "load@io.store").await,
        u("{out:5 save:6 `0`:7}")
    );
    assert_eq!(value(&k, &a, "(load @0)@io.store").await, u("7"));
    // The unit is evaluated: streams run, refs resolve against the message.
    run(&k, &a, "{save:[1 2]@test.echo out:@l}@io.store")
        .await
        .unwrap();
    run(&k, &a, "{save:@x x:9 out:@r}@io.store").await.unwrap();
    run(&k, &a, "(save (x@test.echo @q))@io.store")
        .await
        .unwrap();
    assert_eq!(value(&k, &a, "(load @l)@io.store").await, u("[1 2]"));
    assert_eq!(value(&k, &a, "(load @r)@io.store").await, u("9"));
    assert_eq!(value(&k, &a, "(load @q)@io.store").await, u("x"));
    // Computed paths and commands.
    run(&k, &a, "(save (y @c.d@test.echo))@io.store")
        .await
        .unwrap();
    assert_eq!(value(&k, &a, "(load @c.d)@io.store").await, u("y"));
    assert_eq!(value(&k, &a, "(load @c)@io.store").await, u("{d:y}"));
    assert_eq!(value(&k, &a, "(load c.d@test.echo)@io.store").await, u("y"));
    assert_eq!(
        value(&k, &a, "(load @c.d)@test.echo@io.store").await,
        u("y")
    );
    assert_eq!(
        value(&k, &a, "(load@test.echo @c.d)@io.store").await,
        u("y")
    );
}

#[tokio::test]
async fn errors_are_clear() {
    let (k, a) = kernel_with(Arc::new(MemStore::with(
        u("{a:{b:1 l:[1 2]}}").as_map().unwrap().clone(),
    )));
    let e = error(&k, &a, "(load @x.y)@io.store").await;
    assert_eq!(e.code(), code::NOT_FOUND);
    assert_eq!(e.message(), "nothing at @x.y in the store");
    assert_eq!(e.get("path"), Some(&u("@x.y")));
    assert_eq!(
        error(&k, &a, "(load @a.c)@io.store").await.code(),
        code::NOT_FOUND
    );
    assert_eq!(
        error(&k, &a, "(load @a.l.2)@io.store").await.code(),
        code::NOT_FOUND
    );
    assert_eq!(
        error(&k, &a, "(get.size @zz)@io.store").await.code(),
        code::NOT_FOUND
    );
    // A save through a scalar changes nothing.
    let e = error(&k, &a, "(save (2 @a.b.c))@io.store").await;
    assert_eq!(e.code(), code::BAD_ARGUMENT);
    assert_eq!(
        e.message(),
        "cannot save at @a.b.c: @a.b holds an int, not a map"
    );
    assert_eq!(
        error(&k, &a, "(save (2 @a.l.5))@io.store").await.code(),
        code::BAD_ARGUMENT
    );
    assert_eq!(value(&k, &a, "load@io.store").await, u("{a:{b:1 l:[1 2]}}"));
    // Bad forms.
    for (text, want) in [
        ("save@io.store", code::BAD_ARGUMENT),
        ("{save:1}@io.store", code::BAD_ARGUMENT),
        ("(save 5)@io.store", code::BAD_ARGUMENT),
        ("(save (1 2))@io.store", code::BAD_ARGUMENT),
        ("{save:1 out:5}@io.store", code::BAD_ARGUMENT),
        ("{save:1 out:`a..b`}@io.store", code::BAD_ARGUMENT),
        ("(load 5)@io.store", code::BAD_ARGUMENT),
        ("(load -)@io.store", code::BAD_ARGUMENT),
        ("(load ``)@io.store", code::BAD_ARGUMENT),
        ("(get.size [1])@io.store", code::BAD_ARGUMENT),
        ("get.size.tb@io.store", code::UNKNOWN_COMMAND),
        ("get.sizes@io.store", code::UNKNOWN_COMMAND),
        ("frob@io.store", code::UNKNOWN_COMMAND),
        ("{out:@a save:1}@io.store", code::UNKNOWN_COMMAND),
        ("[load]@io.store", code::UNKNOWN_COMMAND),
        ("5@io.store", code::UNKNOWN_COMMAND),
        ("help.nothing@io.store", code::UNKNOWN_COMMAND),
    ] {
        let e = error(&k, &a, text).await;
        assert_eq!(e.code(), want, "{text}: {e}");
    }
    // An error in the unit to save stops the save.
    let e = error(&k, &a, "{save:x@nowhere out:@e}@io.store").await;
    assert_eq!(e.code(), code::UNKNOWN_SERVICE);
    assert_eq!(
        error(&k, &a, "(load @e)@io.store").await.code(),
        code::NOT_FOUND
    );
    // Help.
    let help = value(&k, &a, "help@io.store").await;
    assert_eq!(help.as_map().unwrap().get_str("name"), Some(&u("io.store")));
    let man = value(&k, &a, "help.man@io.store").await;
    for cmd in ["load", "save", "get.size"] {
        assert!(man.as_map().unwrap().get_str(cmd).is_some(), "{cmd}");
    }
}

#[tokio::test]
async fn saves_survive_the_node() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (k, a) = kernel_with(seeded_db(dir.path()));
        run(&k, &a, "{save:{lang:rust} out:@txt}@io.store")
            .await
            .unwrap();
        run(&k, &a, "{save:[1 2] out:@new.list}@io.store")
            .await
            .unwrap();
        // The kernel (and with it the service and the database) is dropped here.
    }
    let (k, a) = kernel_with(seeded_db(dir.path()));
    assert_eq!(
        value(&k, &a, "load@io.store").await,
        u("{txt:{hello:`Hello, Plexus!` lang:rust} n:1 new:{list:[1 2]}}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_through_the_service_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (k, a) = kernel_with(seeded_db(dir.path()));
    let mut tasks = Vec::new();
    for t in 0..10 {
        let (k, a) = (k.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let text = format!("(save ([{}] @log))@io.store", t * 10 + i);
                run(&k, &a, &text).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = value(&k, &a, "(load @log)@io.store").await;
    let mut got: Vec<i64> = log
        .as_list()
        .unwrap()
        .iter()
        .map(|x| x.as_int().unwrap().to_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

const CMD_NAMES: &[&str] = &[
    "load",
    "save",
    "get.size",
    "get.size.kb",
    "get.size.x",
    "out",
    "x",
];

fn cmd_name() -> impl Strategy<Value = Unit> {
    arb_word(CMD_NAMES)
}

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<i64>().prop_map(Unit::int),
        "[a-c.]{0,4}".prop_map(|s| Unit::str(&s)),
        "[a-c]{1,2}(\\.[a-c0-2]{1,2}){0,2}"
            .prop_map(|s| Unit::Ref(Path::parse_dotted(&s).unwrap())),
        cmd_name(),
    ];
    arb_message(leaf, CMD_NAMES, &[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random messages give a value, nothing or an error: never a panic, and afterwards the
    /// store still loads and its size matches.
    #[test]
    fn random_messages_never_panic(msgs in prop::collection::vec(arb_unit(), 1..6)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (k, a) = kernel_with(Arc::new(MemStore::new()));
            let cx = k.context(a.public(), [0; 32], None, 0);
            for msg in msgs {
                let _ = cx.send("io.store", None, msg).await;
            }
            let whole = cx.send("io.store", None, Unit::str("load")).await.unwrap().unwrap();
            let size = cx.send("io.store", None, Unit::str("get.size")).await.unwrap().unwrap();
            assert_eq!(size, Unit::int(plexus_store::size(&whole) as i64));
        });
    }
}
