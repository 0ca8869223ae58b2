//! Tests of `dat.gen`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::Keypair;
use plexus_kernel::{code, Kernel, Policy};
use plexus_services::dat_gen::service;
use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_units::testing::arb_message;
use plexus_units::{parse, to_text, Unit};
use proptest::prelude::*;

type K = (Kernel, Keypair);

fn kernel() -> K {
    let (kernel, user) = bare_kernel();
    kernel.register(service(), None, Policy::Anyone).unwrap();
    (kernel, user)
}

async fn run(k: &K, text: &str) -> Unit {
    match eval_text(&k.0, &k.1, None, text).await {
        Ok(Some(v)) => v,
        other => panic!("{text}: {other:?}"),
    }
}

async fn is(k: &K, msg: &str, want: &str) {
    let text = format!("{msg}@dat.gen");
    let got = run(k, &text).await;
    assert_eq!(got, parse(want).unwrap(), "{text} gave {}", to_text(&got));
}

async fn err(k: &K, msg: &str, want: &str) {
    let text = format!("{msg}@dat.gen");
    match eval_text(&k.0, &k.1, None, &text).await {
        Err(e) => assert_eq!(e.code(), want, "{text}: {e}"),
        other => panic!("{text} should fail: {other:?}"),
    }
}

fn ints(u: &Unit) -> Vec<i64> {
    u.as_list()
        .unwrap()
        .iter()
        .map(|e| e.as_int().unwrap().to_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn help_examples_hold() {
    let k = kernel();
    let failures = check_examples(&k.0, &k.1, "dat.gen").await;
    assert!(failures.is_empty(), "{failures:#?}");
    let man = run(&k, "help.man@dat.gen").await;
    for c in ["lin.int", "lin.byte", "rnd.int", "rnd.byte"] {
        assert!(
            man.as_map().unwrap().get_str(c).is_some(),
            "no man entry for {c}"
        );
    }
}

#[tokio::test]
async fn int_ranges() {
    let k = kernel();
    is(&k, "(lin.int (-2 2))", "[-2 -1 0 1 2]").await;
    is(&k, "(lin.int (3 1))", "[3 2 1]").await;
    is(&k, "(lin.int (5 5))", "[5]").await;
    is(&k, "{lin.int:(1 3)}", "[1 2 3]").await;
    is(&k, "{lin.int:(0 10) step:5}", "[0 5 10]").await;
    is(&k, "{lin.int:(0 9) step:5}", "[0 5]").await;
    is(&k, "{lin.int:(10 0) step:3}", "[10 7 4 1]").await;
    is(
        &k,
        "(lin.int (99999999999999999999 100000000000000000001))",
        "[99999999999999999999 100000000000000000000 100000000000000000001]",
    )
    .await;
    is(
        &k,
        "(lin.int (9223372036854775806 9223372036854775808))",
        "[9223372036854775806 9223372036854775807 9223372036854775808]",
    )
    .await;
    let big = run(&k, "(lin.int (1 100000))@dat.gen").await;
    assert_eq!(big.as_list().unwrap().len(), 100_000);
    err(&k, "(lin.int (0 10000000))", code::LIMIT).await;
    err(
        &k,
        "(lin.int (0 123456789012345678901234567890))",
        code::LIMIT,
    )
    .await;
    err(&k, "{lin.int:(0 10) step:0}", code::BAD_ARGUMENT).await;
    err(&k, "{lin.int:(0 10) step:-1}", code::BAD_ARGUMENT).await;
    err(&k, "{lin.int:(0 10) step:a}", code::BAD_ARGUMENT).await;
    err(&k, "(lin.int (0 1.5))", code::BAD_ARGUMENT).await;
    err(&k, "(lin.int [0 1])", code::BAD_ARGUMENT).await;
    err(&k, "lin.int", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn byte_ranges() {
    let k = kernel();
    is(&k, "(lin.byte (0x0e 0x11))", "[0x0e 0x0f 0x10 0x11]").await;
    is(&k, "(lin.byte (0x02 0x00))", "[0x02 0x01 0x00]").await;
    let all = run(&k, "(lin.byte (0x00 0xff))@dat.gen").await;
    assert_eq!(all.as_list().unwrap().len(), 256);
    let down = run(&k, "(lin.byte (0xff 0x00))@dat.gen").await;
    assert_eq!(down.as_list().unwrap().first(), Some(&Unit::Byte(0xff)));
    err(&k, "(lin.byte (0 1))", code::BAD_ARGUMENT).await;
    err(&k, "(lin.byte 0x01)", code::BAD_ARGUMENT).await;
    err(&k, "lin.byte", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn random_ints() {
    let k = kernel();
    is(&k, "(rnd.int (7 7))", "7").await;
    is(&k, "(rnd.int (3 (1 1)))", "[1 1 1]").await;
    is(&k, "(rnd.int (0 (1 5)))", "[]").await;
    let v = ints(&run(&k, "(rnd.int (2000 (-3 3)))@dat.gen").await);
    assert_eq!(v.len(), 2000);
    assert!(v.iter().all(|x| (-3..=3).contains(x)));
    for x in -3..=3 {
        assert!(v.contains(&x), "{x} never drawn in 2000 draws");
    }
    // bounds in either order
    let v = ints(&run(&k, "(rnd.int (200 (5 1)))@dat.gen").await);
    assert!(v.iter().all(|x| (1..=5).contains(x)));
    // big ranges
    let u = run(
        &k,
        "(rnd.int (100000000000000000000 100000000000000000009))@dat.gen",
    )
    .await;
    let b = u.as_int().unwrap().to_bigint();
    assert!(b >= "100000000000000000000".parse().unwrap());
    assert!(b <= "100000000000000000009".parse().unwrap());
    let u = run(&k, "rnd.int@dat.gen").await;
    assert!(u.as_int().unwrap().to_i64().is_some());
    let a = run(&k, "(rnd.int (20 (0 1000000000)))@dat.gen").await;
    let b = run(&k, "(rnd.int (20 (0 1000000000)))@dat.gen").await;
    assert_ne!(a, b);
    err(&k, "(rnd.int (-1 (1 2)))", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.int (10000001 (1 2)))", code::LIMIT).await;
    err(&k, "(rnd.int (1 a))", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.int 5)", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.int (0x01 0x02))", code::BAD_ARGUMENT).await;
    let huge = "(rnd.int (0 (pow (2 70000))@math.calc))";
    let (kernel2, user2) = bare_kernel();
    kernel2.register(service(), None, Policy::Anyone).unwrap();
    kernel2
        .register(plexus_services::math_calc::service(), None, Policy::Anyone)
        .unwrap();
    let e = eval_text(&kernel2, &user2, None, &format!("{huge}@dat.gen"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), code::LIMIT);
}

#[tokio::test]
async fn random_bytes() {
    let k = kernel();
    assert!(matches!(run(&k, "rnd.byte@dat.gen").await, Unit::Byte(_)));
    is(&k, "(rnd.byte (0x2a 0x2a))", "0x2a").await;
    is(&k, "(rnd.byte (2 (0xff 0xff)))", "[0xff 0xff]").await;
    let l = run(&k, "(rnd.byte 500)@dat.gen").await;
    let l = l.as_list().unwrap();
    assert_eq!(l.len(), 500);
    assert!(l.iter().all(|b| matches!(b, Unit::Byte(_))));
    let l = run(&k, "(rnd.byte (300 (0x10 0x0e)))@dat.gen").await;
    assert!(l
        .as_list()
        .unwrap()
        .iter()
        .all(|b| matches!(b, Unit::Byte(0x0e..=0x10))));
    is(&k, "(rnd.byte 0)", "[]").await;
    err(&k, "(rnd.byte -1)", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.byte 10000001)", code::LIMIT).await;
    err(&k, "(rnd.byte (1 2))", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.byte (1 (1 2)))", code::BAD_ARGUMENT).await;
    err(&k, "(rnd.byte a)", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn unknown_commands() {
    let k = kernel();
    err(&k, "(lin.dec (1 2))", code::UNKNOWN_COMMAND).await;
    err(&k, "{foo:1}", code::UNKNOWN_COMMAND).await;
    err(&k, "foo", code::UNKNOWN_COMMAND).await;
    err(&k, "[1 2]", code::UNKNOWN_COMMAND).await;
    err(&k, "5", code::UNKNOWN_COMMAND).await;
}

// ---------------------------------------------------------------------------------------------
// No input panics

const CMDS: &[&str] = &["lin.int", "lin.byte", "rnd.int", "rnd.byte", "step", "nope"];

fn leaf() -> impl Strategy<Value = Unit> {
    prop_oneof![
        (-20i64..20).prop_map(Unit::int),
        any::<i64>().prop_map(Unit::int),
        prop::sample::select(CMDS).prop_map(Unit::str),
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<u8>().prop_map(Unit::Byte),
        Just(parse("1.5").unwrap()),
        Just(parse("123456789012345678901234567890").unwrap()),
    ]
}

fn unit() -> impl Strategy<Value = Unit> {
    arb_message(leaf(), CMDS, &[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic(c in prop::sample::select(CMDS), arg in unit(), step in leaf(), form in 0u8..3) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let k = kernel();
            let cx = k.0.context(k.1.public(), [0; 32], None, 0);
            let msg = match form {
                0 => Unit::pair(Unit::str(c), arg),
                1 => {
                    let mut m = plexus_units::Map::new();
                    m.insert(Unit::str(c), arg);
                    m.insert(Unit::str("step"), step);
                    Unit::Map(m)
                }
                _ => Unit::str(c),
            };
            let _ = cx.send("dat.gen", None, msg).await;
        });
    }
}
