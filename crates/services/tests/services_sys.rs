//! sys.usr and sys.hw: examples, every command and error path, random messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{code, Error, Kernel, Policy};
use plexus_services::sys_usr::Registration;
use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_services::{sys_hw, sys_usr};
use plexus_store::NodeDb;
use plexus_units::testing::{arb_message, arb_word};
use plexus_units::{parse, to_text, Unit};
use proptest::prelude::*;

fn u(t: &str) -> Unit {
    parse(t).unwrap()
}

fn user(name: &str) -> Keypair {
    Keypair::generate(KeyKind::User, name, &mut rand::rngs::OsRng).unwrap()
}

struct Node {
    kernel: Kernel,
    admin: Keypair,
    db: Arc<NodeDb>,
    dir: tempfile::TempDir,
}

/// A node whose admin registers users.
fn node() -> Node {
    node_with(Registration::Admin)
}

/// A node where keys may register themselves.
fn open_node() -> Node {
    node_with(Registration::Open)
}

fn node_with(registration: Registration) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(NodeDb::open(dir.path()).unwrap());
    let (kernel, admin) = bare_kernel();
    kernel
        .register(
            sys_usr::service(db.clone(), registration),
            None,
            Policy::Anyone,
        )
        .unwrap();
    kernel
        .register(
            sys_hw::service(dir.path().to_path_buf()),
            None,
            Policy::Anyone,
        )
        .unwrap();
    Node {
        kernel,
        admin,
        db,
        dir,
    }
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

fn entry(name: &str, key: &Keypair) -> Unit {
    u(&format!(
        "{{ath:{name} pub:{}}}",
        to_text(&key.public().to_unit())
    ))
}

fn pub_text(key: &Keypair) -> String {
    to_text(&key.public().to_unit())
}

// ----- sys.usr -----

#[tokio::test]
async fn usr_examples_hold() {
    let n = node();
    let failures = check_examples(&n.kernel, &n.admin, "sys.usr").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn usr_registers_the_callers_own_key() {
    let n = open_node();
    let (k, admin) = (&n.kernel, &n.admin);
    let carol = user("carol");
    // Unregistered: who has no name.
    assert_eq!(
        value(k, &carol, "who@sys.usr").await,
        u(&format!("{{ath:- pub:{}}}", pub_text(&carol)))
    );
    assert_eq!(
        value(k, &carol, "(reg carol)@sys.usr").await,
        entry("carol", &carol)
    );
    assert_eq!(
        value(k, &carol, "who@sys.usr").await,
        entry("carol", &carol)
    );
    assert_eq!(value(k, admin, "who@sys.usr").await, entry("admin", admin));
    assert_eq!(k.user_name(&carol.public()).as_deref(), Some("carol"));
    // The map form without pub, and with the caller's own key, need no admin.
    let dave = user("dave");
    assert_eq!(
        value(k, &dave, "{reg:dave}@sys.usr").await,
        entry("dave", &dave)
    );
    let erin = user("erin");
    let text = format!("{{reg:erin pub:{}}}@sys.usr", pub_text(&erin));
    assert_eq!(value(k, &erin, &text).await, entry("erin", &erin));
    // Listed (by key, like the kernel's registry) and persisted.
    let list = value(k, admin, "get@sys.usr").await;
    let mut want: Vec<(Vec<u8>, Unit)> = vec![
        (admin.public().to_bytes().to_vec(), entry("admin", admin)),
        (carol.public().to_bytes().to_vec(), entry("carol", &carol)),
        (dave.public().to_bytes().to_vec(), entry("dave", &dave)),
        (erin.public().to_bytes().to_vec(), entry("erin", &erin)),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(list, Unit::List(want.into_iter().map(|(_, e)| e).collect()));
    assert_eq!(value(k, admin, "list@sys.usr").await, list);
    let mut stored = n.db.users().unwrap();
    stored.sort();
    let mut want: Vec<([u8; 32], String)> = vec![
        (carol.public().to_bytes(), "carol".into()),
        (dave.public().to_bytes(), "dave".into()),
        (erin.public().to_bytes(), "erin".into()),
    ];
    want.sort();
    assert_eq!(stored, want);
    // Lookups.
    assert_eq!(
        value(k, admin, "(get carol)@sys.usr").await,
        entry("carol", &carol)
    );
    let text = format!("(get {})@sys.usr", pub_text(&carol));
    assert_eq!(value(k, admin, &text).await, entry("carol", &carol));
    assert_eq!(
        value(k, admin, "{get:dave}@sys.usr").await,
        entry("dave", &dave)
    );
}

#[tokio::test]
async fn usr_registration_is_the_admins_by_default() {
    let n = node();
    let (k, admin) = (&n.kernel, &n.admin);
    let eve = user("eve");
    for text in [
        "(reg eve)@sys.usr".to_owned(),
        "{reg:eve}@sys.usr".to_owned(),
        format!("{{reg:eve pub:{}}}@sys.usr", pub_text(&eve)),
    ] {
        let e = error(k, &eve, &text).await;
        assert_eq!(e.code(), code::DENIED, "{text}: {e}");
        assert!(e.message().contains("admin"), "{e}");
    }
    assert!(k.user_name(&eve.public()).is_none());
    assert_eq!(n.db.users().unwrap(), vec![]);
    let text = format!("{{reg:eve pub:{}}}@sys.usr", pub_text(&eve));
    assert_eq!(value(k, admin, &text).await, entry("eve", &eve));
}

#[tokio::test]
async fn usr_removes_and_renames_by_the_admin_or_the_user() {
    let n = node();
    let (k, admin) = (&n.kernel, &n.admin);
    let (lea, max) = (user("lea"), user("max"));
    for (name, key) in [("lea", &lea), ("max", &max)] {
        let text = format!("{{reg:{name} pub:{}}}@sys.usr", pub_text(key));
        value(k, admin, &text).await;
    }
    // Others may not; the admin stays.
    assert_eq!(
        error(k, &max, "(del lea)@sys.usr").await.code(),
        code::DENIED
    );
    let e = error(k, &max, "{ren:lea to:x}@sys.usr").await;
    assert_eq!(e.code(), code::DENIED);
    assert_eq!(
        error(k, admin, "(del admin)@sys.usr").await.code(),
        code::DENIED
    );
    assert_eq!(
        error(k, admin, "(del nobody)@sys.usr").await.code(),
        code::NOT_FOUND
    );
    let e = error(k, admin, "{ren:lea to:max}@sys.usr").await;
    assert_eq!(e.code(), sys_usr::NAME_TAKEN);
    for (text, want) in [
        ("(ren lea)@sys.usr", code::BAD_ARGUMENT),
        ("{ren:lea to:`no spaces`}@sys.usr", code::BAD_ARGUMENT),
        ("(del 5)@sys.usr", code::BAD_ARGUMENT),
        ("{ren:nobody to:x}@sys.usr", code::NOT_FOUND),
    ] {
        assert_eq!(error(k, admin, text).await.code(), want, "{text}");
    }
    // A user renames itself; the admin removes another.
    assert_eq!(
        value(k, &lea, "{ren:lea to:leah}@sys.usr").await,
        entry("leah", &lea)
    );
    assert_eq!(k.user_name(&lea.public()).as_deref(), Some("leah"));
    value(k, admin, "(del max)@sys.usr").await;
    assert!(k.user_name(&max.public()).is_none());
    assert_eq!(
        n.db.users().unwrap(),
        vec![(lea.public().to_bytes(), "leah".into())]
    );
    // The user removes itself.
    value(k, &lea, "(del leah)@sys.usr").await;
    assert!(k.user_name(&lea.public()).is_none());
    assert_eq!(n.db.users().unwrap(), vec![]);
}

#[tokio::test]
async fn usr_invites_register_a_key_once() {
    let n = node();
    let (k, admin) = (&n.kernel, &n.admin);
    let (quinn, ray) = (user("quinn"), user("ray"));
    assert_eq!(
        error(k, &quinn, "invite@sys.usr").await.code(),
        code::DENIED
    );
    let Unit::Str(token) = value(k, admin, "invite@sys.usr").await else {
        panic!("invite gives a token");
    };
    let with = |name: &str, token: &str| format!("{{reg:{name} inv:{token}}}@sys.usr");
    assert_eq!(
        value(k, &quinn, &with("quinn", &token)).await,
        entry("quinn", &quinn)
    );
    assert_eq!(k.user_name(&quinn.public()).as_deref(), Some("quinn"));
    // Used up.
    let e = error(k, &ray, &with("ray", &token)).await;
    assert_eq!(e.code(), sys_usr::INVITE_BAD, "{e}");
    let e = error(k, &ray, &with("ray", "inv_0123")).await;
    assert_eq!(e.code(), sys_usr::INVITE_BAD, "{e}");
    // A refused registration leaves the invite for a good one.
    let Unit::Str(second) = value(k, admin, "(invite 60)@sys.usr").await else {
        panic!("invite gives a token");
    };
    let e = error(k, &ray, &with("quinn", &second)).await;
    assert_eq!(e.code(), sys_usr::NAME_TAKEN, "{e}");
    // Someone else's key cannot be registered with an invite.
    let text = format!("{{reg:ray inv:{second} pub:{}}}@sys.usr", pub_text(&quinn));
    assert_eq!(error(k, &ray, &text).await.code(), code::DENIED);
    assert_eq!(
        value(k, &ray, &with("ray", &second)).await,
        entry("ray", &ray)
    );
    for text in [
        "(invite 0)@sys.usr",
        "(invite -5)@sys.usr",
        "(invite 99999999)@sys.usr",
    ] {
        assert_eq!(
            error(k, admin, text).await.code(),
            code::BAD_ARGUMENT,
            "{text}"
        );
    }
    assert_eq!(
        error(k, admin, "{reg:x inv:5}@sys.usr").await.code(),
        code::BAD_ARGUMENT
    );
    // An expired invite is refused (the database's clock is the caller's).
    let id = sys_usr::invite_id("inv_old");
    n.db.add_user_invite(id, 1_000, None).unwrap();
    let e =
        n.db.add_invited_user(user("sam").public().to_bytes(), "sam", id, 1_000, None)
            .unwrap_err();
    assert_eq!(e.to_string(), "expired user invite");
}

#[tokio::test]
async fn usr_open_registration_lets_keys_register_themselves() {
    let n = open_node();
    let k = &n.kernel;
    let (oz, pat) = (user("oz"), user("pat"));
    assert_eq!(value(k, &oz, "(reg oz)@sys.usr").await, entry("oz", &oz));
    // Still not someone else's key.
    let text = format!("{{reg:pat pub:{}}}@sys.usr", pub_text(&pat));
    assert_eq!(error(k, &oz, &text).await.code(), code::DENIED);
}

#[tokio::test]
async fn usr_admin_registers_other_keys_others_may_not() {
    let n = node();
    let (k, admin) = (&n.kernel, &n.admin);
    let frank = user("frank");
    let mallory = user("mallory");
    let text = format!("{{reg:frank pub:{}}}@sys.usr", pub_text(&frank));
    let e = error(k, &mallory, &text).await;
    assert_eq!(e.code(), code::DENIED);
    assert!(k.user_name(&frank.public()).is_none());
    assert_eq!(value(k, admin, &text).await, entry("frank", &frank));
    assert_eq!(
        value(k, &frank, "who@sys.usr").await,
        entry("frank", &frank)
    );
}

#[tokio::test]
async fn usr_conflicts_have_their_own_codes() {
    let n = open_node();
    let (k, admin) = (&n.kernel, &n.admin);
    let gina = user("gina");
    let hal = user("hal");
    value(k, &gina, "(reg gina)@sys.usr").await;
    // Same name, other key.
    let e = error(k, &hal, "(reg gina)@sys.usr").await;
    assert_eq!(e.code(), sys_usr::NAME_TAKEN);
    assert_eq!(e.message(), "the name gina is taken by another key");
    // Same name, same key.
    let e = error(k, &gina, "(reg gina)@sys.usr").await;
    assert_eq!(e.code(), sys_usr::ALREADY_REGISTERED);
    // Other name, same key.
    let e = error(k, &gina, "(reg gina2)@sys.usr").await;
    assert_eq!(e.code(), sys_usr::KEY_TAKEN);
    assert_eq!(e.message(), "this key is already registered as gina");
    // The admin is in the kernel's registry (not the database): still a conflict.
    assert_eq!(
        error(k, admin, "(reg boss)@sys.usr").await.code(),
        sys_usr::KEY_TAKEN
    );
    assert_eq!(
        error(k, &hal, "(reg admin)@sys.usr").await.code(),
        sys_usr::NAME_TAKEN
    );
    // A registration only in the database (say, from an earlier run that the node did not
    // load) is a conflict too, and the kernel is left alone.
    let ivy = user("ivy");
    n.db.add_user(ivy.public().to_bytes(), "ivy", None).unwrap();
    assert_eq!(
        error(k, &hal, "(reg ivy)@sys.usr").await.code(),
        sys_usr::NAME_TAKEN
    );
    assert!(k.user_name(&hal.public()).is_none());
}

#[tokio::test]
async fn usr_refuses_private_keys_and_bad_input() {
    let n = node();
    let (k, admin) = (&n.kernel, &n.admin);
    let jo = user("jo");
    let text = format!("{{ath:jo pub:{} priv:x\"00\"}}@sys.usr", pub_text(&jo));
    let e = error(k, &jo, &text).await;
    assert_eq!(e.code(), code::BAD_ARGUMENT);
    assert!(e.message().contains("private key never leaves"), "{e}");
    let e = error(k, &jo, "{reg:jo priv:secret}@sys.usr").await;
    assert!(e.message().contains("private key never leaves"), "{e}");
    // vnix's user creation and login forms point to (reg name).
    let e = error(k, &jo, "{ath:jo}@sys.usr").await;
    assert!(e.message().contains("(reg name)"), "{e}");
    for (text, want) in [
        ("(reg `no spaces`)@sys.usr", code::BAD_ARGUMENT),
        ("(reg ``)@sys.usr", code::BAD_ARGUMENT),
        ("(reg 5)@sys.usr", code::BAD_ARGUMENT),
        ("{reg:x pub:x\"00\"}@sys.usr", code::BAD_ARGUMENT),
        ("{reg:x pub:abc}@sys.usr", code::BAD_ARGUMENT),
        // A weak (small-order) key.
        (
            "{reg:x pub:x\"0100000000000000000000000000000000000000000000000000000000000000\"}@sys.usr",
            code::BAD_ARGUMENT,
        ),
        ("(get nobody)@sys.usr", code::NOT_FOUND),
        ("(get 5)@sys.usr", code::BAD_ARGUMENT),
        ("reg@sys.usr", code::UNKNOWN_COMMAND),
        ("(who x)@sys.usr", code::UNKNOWN_COMMAND),
        ("jo@sys.usr", code::UNKNOWN_COMMAND),
        ("[1 2]@sys.usr", code::UNKNOWN_COMMAND),
    ] {
        let e = error(k, admin, text).await;
        assert_eq!(e.code(), want, "{text}: {e}");
    }
    assert_eq!(n.db.users().unwrap(), vec![]);
}

#[tokio::test]
async fn usr_registrations_survive_a_restart() {
    let n = open_node();
    let kim = user("kim");
    value(&n.kernel, &kim, "(reg kim)@sys.usr").await;
    // A new kernel on the same database.
    let (kernel, admin) = bare_kernel();
    kernel
        .register(
            sys_usr::service(n.db.clone(), Registration::Open),
            None,
            Policy::Anyone,
        )
        .unwrap();
    assert_eq!(sys_usr::load_users(&kernel, &n.db).unwrap(), 1);
    assert_eq!(
        value(&kernel, &kim, "who@sys.usr").await,
        entry("kim", &kim)
    );
    assert_eq!(
        value(&kernel, &admin, "(get kim)@sys.usr").await,
        entry("kim", &kim)
    );
    // Loading again adds nothing.
    assert_eq!(sys_usr::load_users(&kernel, &n.db).unwrap(), 0);
}

// ----- sys.hw -----

#[tokio::test]
async fn hw_examples_hold() {
    let n = node();
    let failures = check_examples(&n.kernel, &n.admin, "sys.hw").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

fn int(u: &Unit) -> i64 {
    u.as_int()
        .and_then(|i| i.to_i64())
        .unwrap_or_else(|| panic!("not an int: {u:?}"))
}

#[tokio::test]
async fn hw_describes_the_machine() {
    let n = node();
    let (k, a) = (&n.kernel, &n.admin);
    let all = value(k, a, "get@sys.hw").await;
    let m = all.as_map().unwrap();
    let keys: Vec<String> = m.keys().map(to_text).collect();
    assert_eq!(keys, ["cpu", "mem", "disk", "arch", "os", "up"]);
    let cpu = value(k, a, "get.cpu@sys.hw").await;
    assert!(int(cpu.as_map().unwrap().get_str("count").unwrap()) >= 1);
    assert_eq!(
        value(k, a, "get.cpu.count@sys.hw").await,
        *cpu.as_map().unwrap().get_str("count").unwrap()
    );
    let load = value(k, a, "get.cpu.load@sys.hw").await;
    assert_eq!(load.as_list().unwrap().len(), 3);
    value(k, a, "get.cpu.model@sys.hw").await;
    value(k, a, "get.cpu.cores@sys.hw").await;
    // Memory: total = free + used.
    let mem = value(k, a, "get.mem@sys.hw").await;
    let mm = mem.as_map().unwrap();
    let (total, free, used) = (
        int(mm.get_str("total").unwrap()),
        int(mm.get_str("free").unwrap()),
        int(mm.get_str("used").unwrap()),
    );
    assert!(total > 0);
    assert_eq!(total, free + used);
    assert_eq!(int(&value(k, a, "get.mem.total@sys.hw").await), total);
    let free_now = int(&value(k, a, "get.mem.free@sys.hw").await);
    assert!(free_now > 0);
    int(&value(k, a, "get.mem.used@sys.hw").await);
    // Scaled: exact decimals, no wrap-around.
    assert_eq!(
        value(k, a, "get.mem.total.kb@sys.hw").await,
        plexus_store::SizeUnit::Kb.scale(total as u64)
    );
    assert_eq!(
        value(k, a, "get.mem.total.gb@sys.hw").await,
        plexus_store::SizeUnit::Gb.scale(total as u64)
    );
    assert!(matches!(
        value(k, a, "get.mem.free.mb@sys.hw").await,
        Unit::Dec(_)
    ));
    assert!(matches!(
        value(k, a, "get.mem.free.gb@sys.hw").await,
        Unit::Dec(_)
    ));
    let mem_mb = value(k, a, "get.mem.mb@sys.hw").await;
    assert_eq!(
        mem_mb.as_map().unwrap().get_str("total"),
        Some(&plexus_store::SizeUnit::Mb.scale(total as u64))
    );
    // Disk of the data directory.
    let disk = value(k, a, "get.disk@sys.hw").await;
    let dm = disk.as_map().unwrap();
    assert_eq!(
        dm.get_str("path"),
        Some(&Unit::str(&n.dir.path().display().to_string()))
    );
    if let Some(Unit::Int(_)) = dm.get_str("total") {
        let total = int(dm.get_str("total").unwrap());
        let free = int(dm.get_str("free").unwrap());
        assert_eq!(total, free + int(dm.get_str("used").unwrap()));
        assert!(matches!(
            value(k, a, "get.disk.free.gb@sys.hw").await,
            Unit::Dec(_)
        ));
        let disk_kb = value(k, a, "get.disk.kb@sys.hw").await;
        assert_eq!(
            disk_kb.as_map().unwrap().get_str("path"),
            dm.get_str("path")
        );
    }
    // arch, os, uptimes.
    let arch = value(k, a, "get.arch@sys.hw").await;
    assert_eq!(arch, Unit::str(std::env::consts::ARCH));
    let os = value(k, a, "get.os@sys.hw").await;
    assert!(os.as_map().unwrap().get_str("kernel").is_some());
    value(k, a, "get.os.name@sys.hw").await;
    let up = value(k, a, "get.up@sys.hw").await;
    let um = up.as_map().unwrap();
    assert!(int(um.get_str("host").unwrap()) >= int(um.get_str("node").unwrap()));
    assert!(int(&value(k, a, "get.up.node@sys.hw").await) < 3600);
    int(&value(k, a, "get.up.host@sys.hw").await);
    assert_eq!(
        value(k, a, "keys@sys.hw").await,
        u("[cpu mem disk arch os up]")
    );
}

#[tokio::test]
async fn hw_unknown_queries_are_errors() {
    let n = node();
    let (k, a) = (&n.kernel, &n.admin);
    for text in [
        "get.foo@sys.hw",
        "get.cpu.kb@sys.hw",
        "get.arch.gb@sys.hw",
        "get.mem.foo@sys.hw",
        "get.mem.free.tb@sys.hw",
        "get.mem.free.kb.kb@sys.hw",
        "get.disk.path.kb@sys.hw",
        "get.kb@sys.hw",
        "get.mem.total.x.y@sys.hw",
        "getmem@sys.hw",
        "(get mem)@sys.hw",
        "{get:mem}@sys.hw",
        "(keys 1)@sys.hw",
        "5@sys.hw",
        "mem@sys.hw",
    ] {
        let e = error(k, a, text).await;
        assert_eq!(e.code(), code::UNKNOWN_COMMAND, "{text}: {e}");
    }
}

// ----- random messages -----

const WORDS: &[&str] = &[
    "get",
    "list",
    "who",
    "reg",
    "pub",
    "priv",
    "ath",
    "keys",
    "get.mem.free.kb",
    "get.up",
    "get.arch",
    "get.cpu.count",
    "x",
    "a-b",
    "",
];

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<i64>().prop_map(Unit::int),
        arb_word(WORDS),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Unit::Bytes(b.into())),
    ];
    arb_message(leaf, &[], &[])
}

proptest! {
    // Each case opens a database (tens of milliseconds): fewer cases, more messages each.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_never_panic(msgs in prop::collection::vec(arb_unit(), 1..10)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let n = node();
            let stranger = user("stranger");
            for (i, msg) in msgs.into_iter().enumerate() {
                let who = if i % 2 == 0 { &n.admin } else { &stranger };
                let cx = n.kernel.context(who.public(), [0; 32], None, 0);
                let _ = cx.send("sys.usr", None, msg.clone()).await;
                let _ = cx.send("sys.hw", None, msg).await;
            }
            // The registry and the database agree on everyone but the admin.
            let mut stored: Vec<[u8; 32]> = n.db.users().unwrap().into_iter().map(|(k, _)| k).collect();
            stored.sort();
            let mut kernel: Vec<[u8; 32]> = n.kernel.users().into_iter()
                .filter(|(k, _)| k != &n.admin.public())
                .map(|(k, _)| k.to_bytes())
                .collect();
            kernel.sort();
            assert_eq!(stored, kernel);
        });
    }
}
