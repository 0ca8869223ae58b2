//! Tests of `math.calc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plexus_identity::Keypair;
use plexus_kernel::{code, Kernel, Policy};
use plexus_services::math_calc::service;
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

async fn calc(k: &K, text: &str) -> Unit {
    match eval_text(&k.0, &k.1, None, text).await {
        Ok(Some(v)) => v,
        other => panic!("{text}: {other:?}"),
    }
}

async fn fails(k: &K, text: &str) -> String {
    match eval_text(&k.0, &k.1, None, text).await {
        Err(e) => e.code().to_owned(),
        other => panic!("{text} should fail: {other:?}"),
    }
}

/// `expr` sent to math.calc gives `want` (compared as units, so `3` and `3.0` differ).
async fn is(k: &K, expr: &str, want: &str) {
    let text = format!("{expr}@math.calc");
    let got = calc(k, &text).await;
    assert_eq!(got, parse(want).unwrap(), "{text} gave {}", to_text(&got));
}

async fn err(k: &K, expr: &str, want: &str) {
    let text = format!("{expr}@math.calc");
    assert_eq!(fails(k, &text).await, want, "{text}");
}

#[tokio::test]
async fn help_examples_hold() {
    let k = kernel();
    let failures = check_examples(&k.0, &k.1, "math.calc").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn help_is_complete() {
    let k = kernel();
    let man = calc(&k, "help.man@math.calc").await;
    let man = man.as_map().unwrap();
    for op in [
        "neg", "abs", "inc", "dec", "sqr", "sqrt", "fac", "log", "sum", "sub", "mul", "div", "mod",
        "pow", "min", "max",
    ] {
        assert!(man.get_str(op).is_some(), "no man entry for {op}");
    }
    let info = calc(&k, "help.info@math.calc").await;
    assert!(info.as_str().unwrap().contains("50 significant digits"));
    assert_eq!(
        calc(&k, "help.name@math.calc").await,
        Unit::str("math.calc")
    );
}

#[tokio::test]
async fn the_vnix_example() {
    let k = kernel();
    is(&k, "{mul:[2 {inc:4} (sub (10 3))]}", "70").await;
}

#[tokio::test]
async fn numbers_are_their_own_value() {
    let k = kernel();
    is(&k, "7", "7").await;
    is(&k, "-2.5", "-2.5").await;
    is(
        &k,
        "123456789012345678901234567890",
        "123456789012345678901234567890",
    )
    .await;
}

#[tokio::test]
async fn ints_stay_ints_and_decs_spread() {
    let k = kernel();
    is(&k, "(sum (1 2))", "3").await;
    is(&k, "(sum (1.5 2))", "3.5").await;
    is(&k, "(sum (1.5 1.5))", "3.0").await;
    is(&k, "(sum (2 1.0))", "3.0").await;
    is(&k, "(sum (0 1.0))", "1.0").await;
    is(&k, "(sum (0.0 1))", "1.0").await;
    is(&k, "(mul (2 0.5))", "1.0").await;
    is(&k, "(sub (0.1 0.3))", "-0.2").await;
    is(&k, "(sum (0.1 0.2))", "0.3").await;
    is(
        &k,
        "(sum (1e40 1e-40))",
        "10000000000000000000000000000000000000000.0000000000000000000000000000000000000001",
    )
    .await;
}

#[tokio::test]
async fn folds_go_left_to_right() {
    let k = kernel();
    is(&k, "(sum [1 2 3 4])", "10").await;
    is(&k, "(sub [10 1 2])", "7").await;
    is(&k, "(sub (10 3))", "7").await;
    is(&k, "(mul [2 3 4])", "24").await;
    is(&k, "(div [100 2 5])", "10").await;
    is(&k, "(mod [100 7 3])", "2").await;
    is(&k, "(pow [2 3 2])", "64").await;
    is(&k, "(min [3 -1 2])", "-1").await;
    is(&k, "(max [3 -1 2])", "3").await;
    is(&k, "(sum [5])", "5").await;
    is(&k, "(sum [])", "0").await;
    is(&k, "(mul [])", "1").await;
    err(&k, "(sub [])", code::BAD_ARGUMENT).await;
    err(&k, "(min [])", code::BAD_ARGUMENT).await;
    err(&k, "(sum 5)", code::BAD_ARGUMENT).await;
    err(&k, "(sum {a:1})", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn map_form_nesting_streams_and_refs() {
    let k = kernel();
    is(&k, "{sum:[1 2] note:ignored}", "3").await;
    is(&k, "{sum:({inc:1} (dec 5))}", "6").await;
    is(&k, "(sum ((inc 1)@math.calc 3))", "5").await;
    is(&k, "{sum:[@x 1] x:5}", "6").await;
    is(&k, "(neg (abs (sqr (inc (dec -3)))))", "-9").await;
    is(&k, "(max [(pow (2 10)) (fac 6) {mul:(10 100)}])", "1024").await;
}

#[tokio::test]
async fn unary_ops() {
    let k = kernel();
    is(&k, "(neg 5)", "-5").await;
    is(&k, "(neg -2.5)", "2.5").await;
    is(&k, "(abs -7)", "7").await;
    is(&k, "(abs 7)", "7").await;
    is(&k, "(abs -0.25)", "0.25").await;
    is(&k, "(inc 41)", "42").await;
    is(&k, "(inc 99999999999999999999)", "100000000000000000000").await;
    is(&k, "(inc 0.5)", "1.5").await;
    is(&k, "(dec 0)", "-1").await;
    is(&k, "(dec 0.5)", "-0.5").await;
    is(&k, "(dec -9223372036854775808)", "-9223372036854775809").await;
    is(&k, "(sqr -12)", "144").await;
    is(&k, "(sqr 1.5)", "2.25").await;
    is(
        &k,
        "(sqr 99999999999999999999)",
        "9999999999999999999800000000000000000001",
    )
    .await;
}

#[tokio::test]
async fn division() {
    let k = kernel();
    // ints truncate toward zero
    is(&k, "(div (7 2))", "3").await;
    is(&k, "(div (-7 2))", "-3").await;
    is(&k, "(div (7 -2))", "-3").await;
    is(&k, "(div (-7 -2))", "3").await;
    // decs: exact when the quotient terminates
    is(&k, "(div (1.0 8))", "0.125").await;
    is(&k, "(div (1 4.0))", "0.25").await;
    is(&k, "(div (10.0 4))", "2.5").await;
    is(&k, "(div (1.0 1024))", "0.0009765625").await;
    is(&k, "(div (3.0 -0.012))", "-250.0").await;
    is(&k, "(div (1.0 1e-30))", "1e30").await;
    // …otherwise 50 significant digits, half to even
    is(
        &k,
        "(div (1.0 7))",
        "0.14285714285714285714285714285714285714285714285714",
    )
    .await;
    is(
        &k,
        "(div (-1.0 3))",
        "-0.33333333333333333333333333333333333333333333333333",
    )
    .await;
    is(
        &k,
        "(div (2.0 3))",
        "0.66666666666666666666666666666666666666666666666667",
    )
    .await;
    is(
        &k,
        "(div (1 3.3))",
        "0.3030303030303030303030303030303030303030303030303",
    )
    .await;
    is(
        &k,
        "(div (1e-20 3.0))",
        "3.3333333333333333333333333333333333333333333333333e-21",
    )
    .await;
    err(&k, "(div (1 0))", code::DIVISION_BY_ZERO).await;
    err(&k, "(div (1.5 0.0))", code::DIVISION_BY_ZERO).await;
    err(&k, "(div [1 2 0])", code::DIVISION_BY_ZERO).await;
    err(&k, "(sum [1 (div (1 0))])", code::DIVISION_BY_ZERO).await;
}

#[tokio::test]
async fn remainder_has_the_dividends_sign() {
    let k = kernel();
    is(&k, "(mod (7 3))", "1").await;
    is(&k, "(mod (-7 3))", "-1").await;
    is(&k, "(mod (7 -3))", "1").await;
    is(&k, "(mod (-7 -3))", "-1").await;
    is(&k, "(mod (7.5 2))", "1.5").await;
    is(&k, "(mod (-7.5 2))", "-1.5").await;
    is(&k, "(mod (1 0.3))", "0.1").await;
    err(&k, "(mod (1 0))", code::DIVISION_BY_ZERO).await;
    err(&k, "(mod (1.5 0.0))", code::DIVISION_BY_ZERO).await;
}

#[tokio::test]
async fn powers() {
    let k = kernel();
    is(&k, "(pow (2 10))", "1024").await;
    is(&k, "(pow (-2 3))", "-8").await;
    is(&k, "(pow (2 100))", "1267650600228229401496703205376").await;
    is(&k, "(pow (0 0))", "1").await;
    is(&k, "(pow (0 5))", "0").await;
    is(&k, "(pow (1.5 2))", "2.25").await;
    is(&k, "(pow (0.1 3))", "0.001").await;
    is(&k, "(pow (2.5 0))", "1.0").await;
    is(&k, "(pow (2 -3))", "0.125").await;
    is(&k, "(pow (2.0 -2))", "0.25").await;
    is(
        &k,
        "(pow (3 -1))",
        "0.33333333333333333333333333333333333333333333333333",
    )
    .await;
    is(&k, "(pow (1 123456789012345678901234567890))", "1").await;
    is(&k, "(pow (-1 123456789012345678901234567890))", "1").await;
    is(&k, "(pow (-1 123456789012345678901234567891))", "-1").await;
    is(&k, "(pow (0 123456789012345678901234567891))", "0").await;
    is(&k, "(pow (10.0 1000000000))", "1e1000000000").await;
    err(&k, "(pow (0 -1))", code::DIVISION_BY_ZERO).await;
    err(&k, "(pow (2 1.5))", code::BAD_ARGUMENT).await;
    err(&k, "(pow (10 2000000))", code::LIMIT).await;
    err(&k, "(pow (2 123456789012345678901234567890))", code::LIMIT).await;
    err(&k, "(pow (10.0 4611686018427387905))", code::LIMIT).await;
    err(&k, "(pow (2 -4000000))", code::LIMIT).await;
}

#[tokio::test]
async fn factorials() {
    let k = kernel();
    is(&k, "(fac 0)", "1").await;
    is(&k, "(fac 1)", "1").await;
    is(&k, "(fac 5)", "120").await;
    is(&k, "(fac 25)", "15511210043330985984000000").await;
    let big = calc(&k, "(fac 1000)@math.calc").await;
    assert_eq!(to_text(&big).len(), 2568);
    err(&k, "(fac -1)", code::DOMAIN).await;
    err(&k, "(fac 200001)", code::LIMIT).await;
    err(&k, "(fac 123456789012345678901234567890)", code::LIMIT).await;
    err(&k, "(fac 2.0)", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn square_roots() {
    let k = kernel();
    is(&k, "(sqrt 16)", "4").await;
    is(&k, "(sqrt 17)", "4").await;
    is(&k, "(sqrt 0)", "0").await;
    is(&k, "(sqrt 0.0)", "0.0").await;
    is(&k, "(sqrt 2.25)", "1.5").await;
    is(&k, "(sqrt 0.01)", "0.1").await;
    is(&k, "(sqrt 1e-6)", "0.001").await;
    is(&k, "(sqrt 1e6)", "1000.0").await;
    is(
        &k,
        "(sqrt 1e7)",
        "3162.2776601683793319988935444327185337195551393252",
    )
    .await;
    is(
        &k,
        "(sqrt 2.0)",
        "1.4142135623730950488016887242096980785696718753769",
    )
    .await;
    is(
        &k,
        "(sqrt 2.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001)",
        "1.4142135623730950488016887242096980785696718753769",
    )
    .await;
    is(
        &k,
        "(sqrt 1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345.5)",
        "1.1111111061111110993611110581861108108154842000984e57",
    )
    .await;
    // a perfect square with many digits stays exact
    let exact = calc(&k, "(sqrt (sqr 1234567890123456789012345678901234567890123456789012345678901.23456789))@math.calc").await;
    assert_eq!(
        exact,
        parse("1234567890123456789012345678901234567890123456789012345678901.23456789").unwrap()
    );
    is(
        &k,
        "(sqrt 123456789012345678901234567890)",
        "351364182882014",
    )
    .await;
    err(&k, "(sqrt -4)", code::DOMAIN).await;
    err(&k, "(sqrt -0.5)", code::DOMAIN).await;
}

#[tokio::test]
async fn logarithms() {
    let k = kernel();
    is(&k, "(log 1)", "0.0").await;
    is(&k, "(log 1.0)", "0.0").await;
    is(
        &k,
        "(log 2)",
        "0.69314718055994530941723212145817656807550013436026",
    )
    .await;
    is(
        &k,
        "(log 0.5)",
        "-0.69314718055994530941723212145817656807550013436026",
    )
    .await;
    is(
        &k,
        "(log 3)",
        "1.0986122886681096913952452369225257046474905578227",
    )
    .await;
    is(
        &k,
        "(log 10)",
        "2.3025850929940456840179914546843642076011014886288",
    )
    .await;
    is(
        &k,
        "(log 0.9)",
        "-0.10536051565782630122750098083931279830612037298327",
    )
    .await;
    is(
        &k,
        "(log 1.0000000001)",
        "9.9999999995000000000333333333308333333335333333333e-11",
    )
    .await;
    is(
        &k,
        "(log 1e-30)",
        "-69.077552789821370520539743640530926228033044658863",
    )
    .await;
    is(
        &k,
        "(log 12345678901234567890)",
        "43.959837789202520557386839349491543826659106549270",
    )
    .await;
    is(&k, "(log (2 1024))", "10.0").await;
    is(&k, "(log (10 0.001))", "-3.0").await;
    is(
        &k,
        "(log (3 7))",
        "1.7712437491614222600679283070824577180664713345942",
    )
    .await;
    is(
        &k,
        "(log (7 0.001))",
        "-3.5498839873648149804537856849405774444963335688272",
    )
    .await;
    is(&k, "(log ((inc 1) 8))", "3.0").await;
    is(
        &k,
        "(log (inc 1))",
        "0.69314718055994530941723212145817656807550013436026",
    )
    .await;
    is(&k, "{log:(2 8)}", "3.0").await;
    err(&k, "(log 0)", code::DOMAIN).await;
    err(&k, "(log -1)", code::DOMAIN).await;
    err(&k, "(log -0.5)", code::DOMAIN).await;
    err(&k, "(log (1 5))", code::DOMAIN).await;
    err(&k, "(log (0 5))", code::DOMAIN).await;
    err(&k, "(log (-2 5))", code::DOMAIN).await;
    err(&k, "(log (2 0))", code::DOMAIN).await;
}

#[tokio::test]
async fn min_and_max_keep_operands() {
    let k = kernel();
    is(&k, "(min [3 1.5 2])", "1.5").await;
    is(&k, "(max (3 10))", "10").await;
    is(&k, "(min (1 1.0))", "1").await;
    is(&k, "(max (1 1.0))", "1.0").await;
    is(&k, "(max [-1e100 -2])", "-2").await;
}

#[tokio::test]
async fn errors_are_distinct_from_no_match() {
    let k = kernel();
    err(&k, "(foo 1)", code::UNKNOWN_COMMAND).await;
    err(&k, "{foo:1}", code::UNKNOWN_COMMAND).await;
    err(&k, "[1 2]", code::UNKNOWN_COMMAND).await;
    err(&k, "abc", code::UNKNOWN_COMMAND).await;
    err(&k, "t", code::UNKNOWN_COMMAND).await;
    err(&k, "sum", code::BAD_ARGUMENT).await;
    err(&k, "(sum (a 1))", code::BAD_ARGUMENT).await;
    err(&k, "(sum ((foo 1) 2))", code::BAD_ARGUMENT).await;
    err(&k, "(sum (inc 2))", code::BAD_ARGUMENT).await;
    err(&k, "(inc abc)", code::BAD_ARGUMENT).await;
    err(&k, "(inc [1 2])", code::BAD_ARGUMENT).await;
    err(&k, "(inc -)", code::BAD_ARGUMENT).await;
    err(&k, "(sum (@nowhere 1))", code::BAD_ARGUMENT).await;
    err(&k, "(sum (1e1000000000 1))", code::LIMIT).await;
    err(&k, "(mod (1e1000000000 0.3))", code::LIMIT).await;
    err(
        &k,
        "(mul (1e-4611686018427387903 1e-4611686018427387903))",
        code::LIMIT,
    )
    .await;
    let e = eval_text(&k.0, &k.1, None, "(div (1 0))@math.calc")
        .await
        .unwrap_err();
    assert!(e.message().contains("by zero"), "{e}");
}

#[tokio::test]
async fn deep_nesting_is_a_limit() {
    let k = kernel();
    let mut u = Unit::int(0);
    for _ in 0..300 {
        u = Unit::pair(Unit::str("inc"), u);
    }
    let cx = k.0.context(k.1.public(), [0; 32], None, 0);
    let e = cx.send("math.calc", None, u).await.unwrap_err();
    assert_eq!(e.code(), code::LIMIT);
    let mut u = Unit::int(0);
    for _ in 0..100 {
        u = Unit::pair(Unit::str("inc"), u);
    }
    assert_eq!(
        cx.send("math.calc", None, u).await.unwrap(),
        Some(Unit::int(100))
    );
}

#[tokio::test]
async fn heavy_work_does_not_block_the_runtime() {
    let k = kernel();
    let done = AtomicBool::new(false);
    let work = async {
        let r = eval_text(&k.0, &k.1, None, "(fac 20000)@math.calc").await;
        done.store(true, Ordering::SeqCst);
        r
    };
    let ticker = async {
        let mut ticks = 0u32;
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks += 1;
        }
        ticks
    };
    let (r, ticks) = tokio::join!(work, ticker);
    let v = r.unwrap().unwrap();
    assert_eq!(to_text(&v).len(), 77338);
    assert!(ticks > 0, "the runtime was blocked while computing");
}

// ---------------------------------------------------------------------------------------------
// No input panics

const OPS: &[&str] = &[
    "neg", "abs", "inc", "dec", "sqr", "sqrt", "fac", "log", "sum", "sub", "mul", "div", "mod",
    "pow", "min", "max", "foo",
];

fn leaf() -> impl Strategy<Value = Unit> {
    prop_oneof![
        (-300i64..300).prop_map(Unit::int),
        any::<i64>().prop_map(Unit::int),
        (any::<i64>(), -30i64..30)
            .prop_map(|(m, s)| Unit::Dec(plexus_units::Dec::new(m.into(), s))),
        (any::<i32>(), any::<i64>())
            .prop_map(|(m, s)| Unit::Dec(plexus_units::Dec::new(m.into(), s % (1 << 62)))),
        prop::sample::select(OPS).prop_map(Unit::str),
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<u8>().prop_map(Unit::Byte),
        Just(parse("@a.b").unwrap()),
    ]
}

fn unit() -> impl Strategy<Value = Unit> {
    arb_message(leaf(), OPS, &[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic(op in prop::sample::select(OPS), arg in unit()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let k = kernel();
            let cx = k.0.context(k.1.public(), [0; 32], None, 0);
            let msg = Unit::pair(Unit::str(op), arg);
            let _ = cx.send("math.calc", None, msg.clone()).await;
            let _ = cx.send("math.calc", None, msg).await;
        });
    }
}
