//! test.echo, test.dump, test.void: examples, behaviour, random messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{Kernel, NodeInfo, Policy};
use plexus_services::test_svc;
use plexus_services::testing::{check_examples, eval_text};
use plexus_units::testing::arb_message;
use plexus_units::{parse, to_text, Unit};
use proptest::prelude::*;

fn u(t: &str) -> Unit {
    parse(t).unwrap()
}

/// A kernel with the test services, administered by the fixed key (secret 0x07…) that
/// test.dump's example shows.
fn kernel() -> (Kernel, Keypair) {
    let admin = Keypair::from_secret_bytes(KeyKind::User, "admin", &[7; 32]).unwrap();
    let node = NodeInfo {
        id: "test-node-id".into(),
        name: "test-node".into(),
    };
    let kernel = Kernel::new(node, admin.public(), "admin");
    for s in [test_svc::echo(), test_svc::dump(), test_svc::void()] {
        kernel.register(s, None, Policy::Anyone).unwrap();
    }
    (kernel, admin)
}

#[tokio::test]
async fn examples_hold() {
    let (k, a) = kernel();
    for s in ["test.echo", "test.dump", "test.void"] {
        let failures = check_examples(&k, &a, s).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }
    // Whoever runs them.
    let (k, a) = plexus_services::testing::bare_kernel();
    for s in [test_svc::echo(), test_svc::dump(), test_svc::void()] {
        k.register(s, None, Policy::Anyone).unwrap();
    }
    for s in ["test.echo", "test.dump", "test.void"] {
        let failures = check_examples(&k, &a, s).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

/// The dump the help's example describes, for the fixed admin key.
#[tokio::test]
async fn the_dump_in_the_help_is_right() {
    let (k, a) = kernel();
    let out = eval_text(&k, &a, None, "hi@test.dump").await.unwrap();
    assert_eq!(
        out,
        Some(u(&format!(
            "{{ath:admin pub:{} size:4 hash:`8a9a617d82c25d539335c130b0e4bfe3aafdb215e3e65bab63420db5fbb2499b` root:`{}` sig:- msg:hi}}",
            to_text(&a.public().to_unit()),
            "0".repeat(64)
        )))
    );
}

#[tokio::test]
async fn echo_gives_its_evaluated_message() {
    let (k, a) = kernel();
    for (text, want) in [
        ("{msg:[1 2] x:y}@test.echo", "{msg:[1 2] x:y}"),
        ("a@test.echo", "a"),
        ("[1 x@test.echo {k:@0}]@test.echo", "[1 x {k:1}]"),
        ("-@test.echo", "-"),
        ("x@test.echo@test.echo", "x"),
    ] {
        assert_eq!(
            eval_text(&k, &a, None, text).await.unwrap(),
            Some(u(want)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn void_gives_nothing_but_runs_its_streams() {
    let (k, a) = kernel();
    assert_eq!(
        eval_text(&k, &a, None, "[1 2]@test.void").await.unwrap(),
        None
    );
    assert_eq!(
        eval_text(&k, &a, None, "x@test.echo@test.void")
            .await
            .unwrap(),
        None
    );
    // A stream inside runs: its error shows.
    let e = eval_text(&k, &a, None, "[x@nowhere]@test.void")
        .await
        .unwrap_err();
    assert_eq!(e.code(), plexus_kernel::code::UNKNOWN_SERVICE);
    // As a value inside another unit, no value reads as none.
    assert_eq!(
        eval_text(&k, &a, None, "[1 x@test.void]").await.unwrap(),
        Some(u("[1 -]"))
    );
}

#[tokio::test]
async fn dump_describes_the_raw_message_and_its_sender() {
    let (k, a) = kernel();
    let msg = u("{say:(x@test.echo y) at:@say}");
    let root = [0xab; 32];
    let sig = [0x5a; 64];
    let cx = k
        .context(a.public(), root, None, 0)
        .with_root_signature(sig);
    let out = cx
        .send("test.dump", None, msg.clone())
        .await
        .unwrap()
        .unwrap();
    let bytes = plexus_units::encode(&msg);
    let want = u(&format!(
        "{{ath:admin pub:{} size:{} hash:`{}` root:`{}` sig:x\"{}\" msg:{}}}",
        to_text(&a.public().to_unit()),
        bytes.len(),
        blake3::hash(&bytes).to_hex(),
        "ab".repeat(32),
        "5a".repeat(64),
        to_text(&msg),
    ));
    assert_eq!(out, want);
    // Not evaluated: the stream and the ref are still there.
    assert_eq!(out.as_map().unwrap().get_str("msg"), Some(&msg));

    // An unregistered sender, without a root signature.
    let stranger = Keypair::from_secret_bytes(KeyKind::User, "stranger", &[1; 32]).unwrap();
    let cx = k.context(stranger.public(), [0; 32], None, 0);
    let out = cx.send("test.dump", None, u("5")).await.unwrap().unwrap();
    let m = out.as_map().unwrap();
    assert_eq!(m.get_str("ath"), Some(&Unit::None));
    assert_eq!(m.get_str("pub"), Some(&stranger.public().to_unit()));
    assert_eq!(m.get_str("sig"), Some(&Unit::None));
    assert_eq!(m.get_str("size"), Some(&u("2")));
    assert_eq!(m.get_str("msg"), Some(&u("5")));
}

#[tokio::test]
async fn kernel_commands_still_work() {
    let (k, a) = kernel();
    for s in ["test.echo", "test.dump", "test.void"] {
        let name = eval_text(&k, &a, None, &format!("help.name@{s}"))
            .await
            .unwrap();
        assert_eq!(name, Some(Unit::str(s)));
        let man = eval_text(&k, &a, None, &format!("help.man@{s}"))
            .await
            .unwrap()
            .unwrap();
        assert!(!man.as_map().unwrap().is_empty());
    }
}

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<i64>().prop_map(Unit::int),
        "[a-z.]{0,6}".prop_map(|s| Unit::str(&s)),
        "[a-c](\\.[a-c0-2]){0,2}"
            .prop_map(|s| Unit::Ref(plexus_units::Path::parse_dotted(&s).unwrap())),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Unit::Bytes(b.into())),
    ];
    arb_message(
        leaf,
        &["test.echo", "test.void", "test.dump", "x"],
        &["test.echo", "test.void", "test.dump"],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_never_panic(msg in arb_unit()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (k, a) = kernel();
            let cx = k.context(a.public(), [0; 32], None, 0);
            let dumped = cx.send("test.dump", None, msg.clone()).await.unwrap().unwrap();
            assert_eq!(dumped.as_map().unwrap().get_str("msg"), Some(&msg));
            let _ = cx.send("test.echo", None, msg.clone()).await;
            let _ = cx.send("test.void", None, msg).await;
        });
    }
}
