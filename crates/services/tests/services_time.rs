//! time.chrono: examples, waits in every form, uptime, benchmarks, errors, random messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use plexus_identity::Keypair;
use plexus_kernel::{code, Error, Kernel, Policy};
use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_services::{test_svc, time_chrono};
use plexus_units::testing::{arb_message, arb_word};
use plexus_units::{parse, Unit};
use proptest::prelude::*;

fn kernel() -> (Kernel, Keypair) {
    let (kernel, admin) = bare_kernel();
    kernel
        .register(time_chrono::service(), None, Policy::Anyone)
        .unwrap();
    kernel
        .register(test_svc::echo(), None, Policy::Anyone)
        .unwrap();
    (kernel, admin)
}

async fn run(k: &Kernel, user: &Keypair, text: &str) -> Result<Option<Unit>, Error> {
    eval_text(k, user, None, text).await
}

async fn int(k: &Kernel, user: &Keypair, text: &str) -> u128 {
    match run(k, user, text).await {
        Ok(Some(Unit::Int(i))) => i.to_bigint().try_into().unwrap(),
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
async fn examples_hold() {
    let (k, a) = kernel();
    let failures = check_examples(&k, &a, "time.chrono").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every form of wait sleeps as long as it says (on tokio's paused clock) and gives no value.
#[tokio::test(start_paused = true)]
async fn waits_in_every_form() {
    let (k, a) = kernel();
    for (text, want) in [
        ("2@time.chrono", Duration::from_secs(2)),
        ("0.5@time.chrono", Duration::from_millis(500)),
        ("(wait 3)@time.chrono", Duration::from_secs(3)),
        ("{wait:1}@time.chrono", Duration::from_secs(1)),
        ("(wait.sec 4)@time.chrono", Duration::from_secs(4)),
        ("{wait.sec:0.25}@time.chrono", Duration::from_millis(250)),
        ("(wait.ms 15)@time.chrono", Duration::from_millis(15)),
        ("{wait.ms:20}@time.chrono", Duration::from_millis(20)),
        ("(wait.mcs 700)@time.chrono", Duration::from_micros(700)),
        ("{wait.mcs:30}@time.chrono", Duration::from_micros(30)),
        ("(wait.min 2)@time.chrono", Duration::from_secs(120)),
        ("(wait.hour 1)@time.chrono", Duration::from_secs(3600)),
        ("(wait.day 1.5)@time.chrono", Duration::from_secs(36 * 3600)),
        (
            "(wait.week 1)@time.chrono",
            Duration::from_secs(7 * 24 * 3600),
        ),
        ("(wait 0)@time.chrono", Duration::ZERO),
        // The argument may be computed.
        ("(wait 2@test.echo)@time.chrono", Duration::from_secs(2)),
        ("(wait 1)@test.echo@time.chrono", Duration::from_secs(1)),
    ] {
        let start = tokio::time::Instant::now();
        assert_eq!(run(&k, &a, text).await.unwrap(), None, "{text}");
        // tokio's timer has millisecond resolution.
        let took = start.elapsed();
        assert!(
            took >= want && took <= want + Duration::from_millis(1),
            "{text}: {took:?}"
        );
    }
}

#[tokio::test]
async fn wait_errors() {
    let (k, a) = kernel();
    for (text, want) in [
        ("(wait -1)@time.chrono", code::BAD_ARGUMENT),
        ("-0.5@time.chrono", code::BAD_ARGUMENT),
        ("(wait abc)@time.chrono", code::BAD_ARGUMENT),
        ("(wait [1])@time.chrono", code::BAD_ARGUMENT),
        ("wait@time.chrono", code::BAD_ARGUMENT),
        ("(wait.week 2)@time.chrono", code::LIMIT),
        ("(wait.year 1)@time.chrono", code::LIMIT),
        ("604801@time.chrono", code::LIMIT),
        ("1e30@time.chrono", code::LIMIT),
        (
            "(wait 99999999999999999999999999999999)@time.chrono",
            code::LIMIT,
        ),
        ("(wait.fortnight 1)@time.chrono", code::UNKNOWN_COMMAND),
        ("waits@time.chrono", code::UNKNOWN_COMMAND),
    ] {
        let e = error(&k, &a, text).await;
        assert_eq!(e.code(), want, "{text}: {e}");
    }
    let e = error(&k, &a, "(wait.week 2)@time.chrono").await;
    assert_eq!(
        e.message(),
        "wait is limited to one week (604800 seconds); 2 is longer"
    );
}

#[tokio::test]
async fn uptime_in_every_unit() {
    let (k, a) = kernel();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mcs = int(&k, &a, "get.up.mcs@time.chrono").await;
    let ms = int(&k, &a, "get.up.ms@time.chrono").await;
    assert!(mcs >= 20_000, "{mcs}");
    assert!(ms >= 20 && ms <= mcs / 1000 + 1000, "{ms} {mcs}");
    let sec = int(&k, &a, "get.up.sec@time.chrono").await;
    assert!(sec <= ms / 1000 + 1);
    assert_eq!(int(&k, &a, "get.up@time.chrono").await, sec);
    for unit in ["min", "hour", "day", "week", "mnh", "year"] {
        assert_eq!(
            int(&k, &a, &format!("get.up.{unit}@time.chrono")).await,
            0,
            "{unit}"
        );
    }
    for text in [
        "get.up.fortnight@time.chrono",
        "(get.up 5)@time.chrono",
        "get@time.chrono",
        "[get.up]@time.chrono",
    ] {
        let e = error(&k, &a, text).await;
        assert_eq!(e.code(), code::UNKNOWN_COMMAND, "{text}: {e}");
    }
}

#[tokio::test]
async fn benchmarks_time_the_evaluation() {
    let (k, a) = kernel();
    let ms = int(&k, &a, "(bch (wait.ms 30)@time.chrono)@time.chrono").await;
    assert!((30..5000).contains(&ms), "{ms}");
    let ms = int(
        &k,
        &a,
        "(bch.ms [(wait.ms 10)@time.chrono (wait.ms 10)@time.chrono])@time.chrono",
    )
    .await;
    assert!((20..5000).contains(&ms), "{ms}");
    let mcs = int(&k, &a, "{bch.mcs:(wait.ms 5)@time.chrono}@time.chrono").await;
    assert!((5_000..5_000_000).contains(&mcs), "{mcs}");
    assert_eq!(int(&k, &a, "(bch.sec x@test.echo)@time.chrono").await, 0);
    assert_eq!(int(&k, &a, "(bch.year 1)@time.chrono").await, 0);
    // An error in the benchmarked unit is the result.
    let e = error(&k, &a, "(bch x@nowhere)@time.chrono").await;
    assert_eq!(e.code(), code::UNKNOWN_SERVICE);
    let e = error(&k, &a, "(bch (wait -1)@time.chrono)@time.chrono").await;
    assert_eq!(e.code(), code::BAD_ARGUMENT);
    assert_eq!(
        error(&k, &a, "bch@time.chrono").await.code(),
        code::BAD_ARGUMENT
    );
    assert_eq!(
        error(&k, &a, "(bch.fortnight 1)@time.chrono").await.code(),
        code::UNKNOWN_COMMAND
    );
}

const WORDS: &[&str] = &[
    "wait",
    "wait.ms",
    "wait.mcs",
    "wait.min",
    "wait.week",
    "get.up",
    "get.up.mnh",
    "bch",
    "bch.mcs",
    "x",
];

fn arb_unit() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<i64>().prop_map(Unit::int),
        "-?[0-9]{1,3}\\.[0-9]{1,3}(e-?[0-9]{1,2})?".prop_map(|s| parse(&s).unwrap()),
        arb_word(WORDS),
    ];
    arb_message(leaf, &[], &[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// On a paused clock (long waits pass at once), random messages never panic.
    #[test]
    fn random_messages_never_panic(msgs in prop::collection::vec(arb_unit(), 1..6)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let (k, a) = kernel();
            let cx = k.context(a.public(), [0; 32], None, 0);
            for msg in msgs {
                let _ = cx.send("time.chrono", None, msg).await;
            }
        });
    }
}
