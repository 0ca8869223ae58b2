//! Tests of `dat.proc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use base64::Engine as _;
use plexus_identity::Keypair;
use plexus_kernel::{code, Kernel, Policy};
use plexus_services::testing::{bare_kernel, check_examples, eval_text};
use plexus_services::{dat_gen, dat_proc, math_calc};
use plexus_units::testing::arb_message;
use plexus_units::{parse, to_text, Unit};
use proptest::prelude::*;

type K = (Kernel, Keypair);

fn kernel() -> K {
    let (kernel, user) = bare_kernel();
    kernel
        .register(dat_proc::service(), None, Policy::Anyone)
        .unwrap();
    kernel
        .register(math_calc::service(), None, Policy::Anyone)
        .unwrap();
    kernel
        .register(dat_gen::service(), None, Policy::Anyone)
        .unwrap();
    (kernel, user)
}

async fn run(k: &K, text: &str) -> Unit {
    match eval_text(&k.0, &k.1, None, text).await {
        Ok(Some(v)) => v,
        other => panic!("{text}: {other:?}"),
    }
}

/// `msg` sent to dat.proc gives `want`.
async fn is(k: &K, msg: &str, want: &str) {
    let text = format!("{msg}@dat.proc");
    let got = run(k, &text).await;
    assert_eq!(got, parse(want).unwrap(), "{text} gave {}", to_text(&got));
}

async fn err(k: &K, msg: &str, want: &str) -> String {
    let text = format!("{msg}@dat.proc");
    match eval_text(&k.0, &k.1, None, &text).await {
        Err(e) => {
            assert_eq!(e.code(), want, "{text}: {e}");
            e.message().to_owned()
        }
        other => panic!("{text} should fail: {other:?}"),
    }
}

#[tokio::test]
async fn help_examples_hold() {
    let k = kernel();
    let failures = check_examples(&k.0, &k.1, "dat.proc").await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn help_is_complete() {
    let k = kernel();
    let man = run(&k, "help.man@dat.proc").await;
    let man = man.as_map().unwrap();
    for c in [
        "len",
        "sort",
        "rev",
        "enum",
        "map",
        "fold",
        "scn",
        "dup",
        "cat",
        "cat.zip",
        "prod",
        "split",
        "split.uz",
        "make",
        "keys",
        "take",
        "cut",
        "grp",
        "flat",
        "get",
        "fst",
        "last",
        "in",
        "zip",
        "unzip",
        "hash",
        "size",
        "ser.str",
        "prs.str",
        "ser.bytes",
        "prs.bytes",
    ] {
        assert!(man.get_str(c).is_some(), "no man entry for {c}");
    }
}

#[tokio::test]
async fn the_vnix_example() {
    let k = kernel();
    is(&k, "(scn (mul [2 3 4])@math.calc)", "[6 24]").await;
}

#[tokio::test]
async fn both_forms() {
    let k = kernel();
    is(&k, "{prs.str:`123`}", "123").await;
    is(&k, "(prs.str `123`)", "123").await;
    is(&k, "{len:[1 2] other:ignored}", "2").await;
    is(&k, "{map:(inc [1 2])@math.calc}", "[2 3]").await;
}

#[tokio::test]
async fn len_sort_rev_enum() {
    let k = kernel();
    is(&k, "(len `héllo☯`)", "6").await;
    is(&k, "(len ``)", "0").await;
    is(&k, "(len [1 2 3])", "3").await;
    is(&k, "(len (a b))", "2").await;
    is(&k, "(len {a:1})", "1").await;
    is(&k, "(len x\"00ff\")", "2").await;
    err(&k, "(len 5)", code::BAD_ARGUMENT).await;
    is(
        &k,
        "(sort [b 2 a 1.5 t - [1] (1 2) 0x01])",
        "[- t 0x01 1.5 2 a b (1 2) [1]]",
    )
    .await;
    is(&k, "(sort [ab b aa])", "[aa ab b]").await;
    is(&k, "(sort (2 1))", "(1 2)").await;
    is(&k, "(sort [])", "[]").await;
    err(&k, "(sort abc)", code::BAD_ARGUMENT).await;
    is(&k, "(rev [1 2 3])", "[3 2 1]").await;
    is(&k, "(rev (1 2))", "(2 1)").await;
    is(&k, "(rev abc)", "cba").await;
    err(&k, "(rev 1)", code::BAD_ARGUMENT).await;
    is(&k, "(enum [a b])", "[(0 a) (1 b)]").await;
    is(&k, "(enum (a b))", "[(0 a) (1 b)]").await;
    is(&k, "(enum [])", "[]").await;
    err(&k, "(enum 1)", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn map_fold_scn() {
    let k = kernel();
    is(&k, "(map (inc [1 2 3])@math.calc)", "[2 3 4]").await;
    is(&k, "(map (neg (1 2))@math.calc)", "(-1 -2)").await;
    is(&k, "(map (sqr {a:2 b:3})@math.calc)", "{a:4 b:9}").await;
    is(&k, "(map (inc [])@math.calc)", "[]").await;
    // the data is evaluated first, streams included
    is(&k, "(map (inc (rev [1 2])@dat.proc)@math.calc)", "[3 2]").await;
    // a service of dat.proc itself
    is(&k, "(map (len [[1 2] [3] abc])@dat.proc)", "[2 1 3]").await;
    is(&k, "(fold (sum [1 2 3 4])@math.calc)", "10").await;
    is(&k, "(fold (sub (10 3))@math.calc)", "7").await;
    is(&k, "(fold (sum [5])@math.calc)", "5").await;
    is(&k, "(fold (cat [[1] [2] [3]])@dat.proc)", "[1 2 3]").await;
    is(&k, "(scn (mul [2 3 4])@math.calc)", "[6 24]").await;
    is(&k, "(scn (sum [1 2 3 4])@math.calc)", "[3 6 10]").await;
    is(&k, "(scn (sum [1])@math.calc)", "[]").await;
    // a literal stream argument is always taken apart, never run…
    err(
        &k,
        "(map (prs.str `(inc [1 2])@math.calc`)@dat.proc)",
        code::BAD_ARGUMENT,
    )
    .await;
    // …but a command computed by a stream is handled after evaluation
    let v = run(
        &k,
        "(prs.str `(map (inc [1 2])@math.calc)`)@dat.proc@dat.proc",
    )
    .await;
    assert_eq!(v, parse("[2 3]").unwrap());
    let v = run(
        &k,
        "(prs.str `{fold:(mul [2 3 4])@math.calc}`)@dat.proc@dat.proc",
    )
    .await;
    assert_eq!(v, Unit::int(24));
    // refs in the stream's message resolve against it
    is(&k, "(map (inc [@1.1 5])@math.calc)", "[6 6]").await;
    err(&k, "(fold (sum [])@math.calc)", code::BAD_ARGUMENT).await;
    err(&k, "(scn (sum 5)@math.calc)", code::BAD_ARGUMENT).await;
    err(&k, "(map (inc 5)@math.calc)", code::BAD_ARGUMENT).await;
    err(&k, "(map [1 2])", code::BAD_ARGUMENT).await;
    err(&k, "(map inc@math.calc)", code::BAD_ARGUMENT).await;
    err(&k, "map", code::BAD_ARGUMENT).await;
    // errors of the calls reach the caller
    err(&k, "(map (inc [1 a])@math.calc)", code::BAD_ARGUMENT).await;
    err(&k, "(fold (div [1 0])@math.calc)", code::DIVISION_BY_ZERO).await;
    err(&k, "(map (inc [1])@no.such)", code::UNKNOWN_SERVICE).await;
}

#[tokio::test]
async fn dup_cat_zip_prod() {
    let k = kernel();
    is(&k, "(dup (3 x))", "[x x x]").await;
    is(&k, "(dup (0 x))", "[]").await;
    err(&k, "(dup (-1 x))", code::BAD_ARGUMENT).await;
    err(&k, "(dup (10000001 x))", code::LIMIT).await;
    err(&k, "(dup (5000000 [1 2]))", code::LIMIT).await;
    err(&k, "(dup x)", code::BAD_ARGUMENT).await;
    is(&k, "(cat (ab cd))", "abcd").await;
    is(&k, "(cat (x\"01\" x\"02\"))", "x\"0102\"").await;
    is(&k, "(cat ([1 2] [3]))", "[1 2 3]").await;
    is(&k, "(cat (0 [1 2]))", "[0 1 2]").await;
    is(&k, "(cat ([1 2] 3))", "[1 2 3]").await;
    is(&k, "(cat [a b c])", "abc").await;
    is(&k, "(cat [[1] [] [2 3]])", "[1 2 3]").await;
    is(&k, "(cat [x\"01\" x\"02\"])", "x\"0102\"").await;
    is(&k, "(cat [])", "``").await;
    err(&k, "(cat (1 2))", code::BAD_ARGUMENT).await;
    err(&k, "(cat [a 1])", code::BAD_ARGUMENT).await;
    err(&k, "(cat 1)", code::BAD_ARGUMENT).await;
    is(
        &k,
        "(cat.zip ([1 2 3 4] [a b]))",
        "[(1 a) (2 b) (3 a) (4 b)]",
    )
    .await;
    is(&k, "(cat.zip ([1] [a b c]))", "[(1 a) (1 b) (1 c)]").await;
    is(&k, "(cat.zip ([1 2] (a b)))", "[(1 a) (2 b)]").await;
    is(&k, "(cat.zip ([] [a b]))", "[]").await;
    err(&k, "(cat.zip ([1] x))", code::BAD_ARGUMENT).await;
    is(&k, "(prod ([1 2] (a b)))", "[(1 a) (1 b) (2 a) (2 b)]").await;
    is(&k, "(prod ([] [a]))", "[]").await;
    err(&k, "(prod [1 2])", code::BAD_ARGUMENT).await;
    // 4000 × 4000 pairs is over the limit
    err(
        &k,
        "(prod ((lin.int (1 4000))@dat.gen (lin.int (1 4000))@dat.gen))",
        code::LIMIT,
    )
    .await;
    err(
        &k,
        "(cat.zip ([(dup (4000 x))@dat.proc] (lin.int (1 4000))@dat.gen))",
        code::LIMIT,
    )
    .await;
}

#[tokio::test]
async fn split_make_keys() {
    let k = kernel();
    is(&k, "(split (`,` `a,b,c`))", "[a b c]").await;
    is(&k, "(split (`, ` `a, b,c`))", "[a `b,c`]").await;
    is(&k, "(split (`,` `a,,b,`))", "[a `` b ``]").await;
    is(&k, "(split (`,` abc))", "[abc]").await;
    is(&k, "(split (`,` ``))", "[``]").await;
    is(&k, "(split (`` `a☯c`))", "[a `☯` c]").await;
    err(&k, "(split (1 abc))", code::BAD_ARGUMENT).await;
    err(&k, "(split abc)", code::BAD_ARGUMENT).await;
    is(&k, "(split.uz [(1 a) (2 b)])", "([1 2] [a b])").await;
    is(&k, "(split.uz [[1 a] (2 b)])", "([1 2] [a b])").await;
    is(&k, "(split.uz [])", "([] [])").await;
    err(&k, "(split.uz [(1 a) 2])", code::BAD_ARGUMENT).await;
    err(&k, "(split.uz 2)", code::BAD_ARGUMENT).await;
    is(&k, "(make (pair [a b]))", "(a b)").await;
    is(&k, "(make (pair (a b)))", "(a b)").await;
    err(&k, "(make (pair [a b c]))", code::BAD_ARGUMENT).await;
    is(&k, "(make (lst (a b)))", "[a b]").await;
    is(&k, "(make (lst {k:v k2:v2}))", "[(k v) (k2 v2)]").await;
    is(&k, "(make (lst [a]))", "[a]").await;
    err(&k, "(make (lst a))", code::BAD_ARGUMENT).await;
    is(&k, "(make (map (a b)))", "{a:b}").await;
    is(&k, "(make (map [(a 1) (b 2)]))", "{a:1 b:2}").await;
    is(&k, "(make (map {a:1}))", "{a:1}").await;
    is(&k, "(make (map []))", "{}").await;
    let m = err(&k, "(make (map [(a 1) (a 2)]))", code::BAD_ARGUMENT).await;
    assert!(m.contains("unique"), "{m}");
    err(&k, "(make (map [a]))", code::BAD_ARGUMENT).await;
    err(&k, "(make (map a))", code::BAD_ARGUMENT).await;
    err(&k, "(make (set [a]))", code::BAD_ARGUMENT).await;
    err(&k, "(make (1 [a]))", code::BAD_ARGUMENT).await;
    err(&k, "(make a)", code::BAD_ARGUMENT).await;
    is(&k, "(keys {a:1 b:2})", "[a b]").await;
    is(&k, "(keys {})", "[]").await;
    err(&k, "(keys [a])", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn take_cut_grp_flat() {
    let k = kernel();
    is(&k, "(take (2 [a b c]))", "[a b]").await;
    is(&k, "(take (5 [a b c]))", "[a b c]").await;
    is(&k, "(take (0 [a b c]))", "[]").await;
    is(&k, "(take (1 (a b)))", "[a]").await;
    is(&k, "(take (2 `h☯llo`))", "`h☯`").await;
    is(&k, "(cut (2 [a b c]))", "[c]").await;
    is(&k, "(cut (5 [a b c]))", "[]").await;
    is(&k, "(cut (2 `h☯llo`))", "llo").await;
    err(&k, "(take (-1 [a]))", code::BAD_ARGUMENT).await;
    err(&k, "(take ([a] 1))", code::BAD_ARGUMENT).await;
    err(&k, "(cut (1 5))", code::BAD_ARGUMENT).await;
    is(&k, "(grp (2 [1 2 3 4]))", "[(1 2) (3 4)]").await;
    is(&k, "(grp (3 [1 2 3 4 5 6]))", "[[1 2 3] [4 5 6]]").await;
    is(&k, "(grp (1 [1 2]))", "[[1] [2]]").await;
    is(&k, "(grp (2 []))", "[]").await;
    let m = err(&k, "(grp (0 [1 2]))", code::BAD_ARGUMENT).await;
    assert!(m.contains("at least 1"), "{m}");
    err(&k, "(grp (2 [1 2 3]))", code::BAD_ARGUMENT).await;
    err(&k, "(grp (2 abc))", code::BAD_ARGUMENT).await;
    is(&k, "(flat [1 [2 3] (4 5) [[6]]])", "[1 2 3 4 5 [6]]").await;
    is(&k, "(flat ([1] 2))", "[1 2]").await;
    is(&k, "(flat [])", "[]").await;
    err(&k, "(flat 1)", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn get_fst_last_in() {
    let k = kernel();
    is(&k, "(get (@a.1 {a:[x y]}))", "y").await;
    is(&k, "{get:(@a.1 {a:[x y]})}", "y").await;
    is(&k, "(get (@0 [x y]))", "x").await;
    is(&k, "(get (@1 (x y)))", "y").await;
    is(&k, "(get (a.b {a:{b:c}}))", "c").await;
    // the source is evaluated, the path is not
    is(&k, "(get (@1 (rev [x y])@dat.proc))", "x").await;
    // refs inside the source still resolve against the message
    is(&k, "{get:(@0 [@v]) v:vv}", "vv").await;
    let e = eval_text(&k.0, &k.1, None, "(get (@a.z {a:[x y]}))@dat.proc")
        .await
        .unwrap_err();
    assert_eq!(e.code(), code::NOT_FOUND);
    assert_eq!(e.get("path"), Some(&parse("@a.z").unwrap()));
    err(&k, "(get (1 [x]))", code::BAD_ARGUMENT).await;
    err(&k, "(get (`a..b` [x]))", code::BAD_ARGUMENT).await;
    err(&k, "(get @a)", code::BAD_ARGUMENT).await;
    is(&k, "(fst [1 2 3])", "1").await;
    is(&k, "(fst (a b))", "a").await;
    is(&k, "(last [1 2 3])", "3").await;
    is(&k, "(last (a b))", "b").await;
    err(&k, "(fst [])", code::BAD_ARGUMENT).await;
    err(&k, "(last [])", code::BAD_ARGUMENT).await;
    err(&k, "(fst a)", code::BAD_ARGUMENT).await;
    is(&k, "(in (2 [1 2 3]))", "t").await;
    is(&k, "(in (4 [1 2 3]))", "f").await;
    is(&k, "(in (2 (1 2)))", "t").await;
    is(&k, "(in (k {k:v}))", "t").await;
    is(&k, "(in (v {k:v}))", "f").await;
    is(&k, "(in (ell hello))", "t").await;
    is(&k, "(in (2 []))", "f").await;
    err(&k, "(in (1 2))", code::BAD_ARGUMENT).await;
    err(&k, "(in [1])", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn zip_and_unzip() {
    let k = kernel();
    for u in [
        "[1 2 3]",
        "{a:`text` b:x\"00ff\" c:1.5}",
        "-",
        "123456789012345678901234567890",
    ] {
        let zipped = run(&k, &format!("(zip {u})@dat.proc")).await;
        assert!(zipped.as_str().is_some());
        let back = run(&k, &format!("(unzip {})@dat.proc", to_text(&zipped))).await;
        assert_eq!(back, parse(u).unwrap());
    }
    // streams in the argument run before zipping
    is(&k, "(unzip (zip ((inc 1)@math.calc b))@dat.proc)", "(2 b)").await;
    is(&k, "(unzip (zip [1 2 3])@dat.proc)", "[1 2 3]").await;
    let m = err(&k, "(unzip `not base64!`)", code::BAD_ARGUMENT).await;
    assert!(m.contains("base64"), "{m}");
    let m = err(&k, "(unzip `aGVsbG8=`)", code::BAD_ARGUMENT).await;
    assert!(m.contains("gzip"), "{m}");
    err(&k, "(unzip 5)", code::BAD_ARGUMENT).await;
    // gzip of bytes that are not a unit
    let gz = gzip(b"\x01\xff\xff");
    err(&k, &format!("(unzip `{gz}`)"), code::BAD_ARGUMENT).await;
    // a zip bomb: 65 MiB of zeros
    let bomb = gzip(&vec![0u8; (64 << 20) + 1024]);
    err(&k, &format!("(unzip `{bomb}`)"), code::LIMIT).await;
}

fn gzip(data: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

#[tokio::test]
async fn hash_and_size() {
    let k = kernel();
    let h = run(&k, "(hash abc)@dat.proc").await;
    let expected = blake3::hash(&plexus_units::encode(&Unit::str("abc")));
    assert_eq!(h, Unit::str(expected.to_hex().as_str()));
    let h = h.as_str().unwrap();
    assert_eq!(h.len(), 64);
    assert!(h
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let h1 = run(&k, "(hash {a:1 b:2})@dat.proc").await;
    let h2 = run(&k, "(hash {b:2 a:1})@dat.proc").await;
    assert_ne!(h1, h2, "maps are ordered");
    is(&k, "(size 1)", "2").await;
    is(&k, "(size [1 2])", "4").await;
    is(&k, "(size abc)", "5").await;
    is(&k, "(size.kb [1 2])", "0").await;
    is(&k, "(size.kb (dup (600 abcd))@dat.proc)", "2").await;
    is(&k, "(size.mb (dup (600 abcd))@dat.proc)", "0").await;
    is(&k, "(size.gb 1)", "0").await;
    let n = run(&k, "(size (dup (600 abcd))@dat.proc)@dat.proc").await;
    assert_eq!(n, Unit::int(1 + 1 + 2 + 600 * 5));
}

#[tokio::test]
async fn text_and_bytes() {
    let k = kernel();
    is(&k, "(ser.str {a:[1 2]})", "`{a:[1 2]}`").await;
    is(&k, "(ser.str `123`)", "`\\`123\\``").await;
    is(
        &k,
        "(prs.str (ser.str {a:[1 2.5 `x y`]})@dat.proc)",
        "{a:[1 2.5 `x y`]}",
    )
    .await;
    is(&k, "(prs.str `  [1 2] // comment`)", "[1 2]").await;
    // a parsed stream is a value, not run
    let s = run(&k, "(prs.str `(inc 1)@math.calc`)@dat.proc").await;
    assert_eq!(s, parse("(inc 1)@math.calc").unwrap());
    let m = err(&k, "(prs.str `[1 2`)", code::BAD_ARGUMENT).await;
    assert!(m.starts_with("prs.str: "), "{m}");
    assert!(m.len() > "prs.str: ".len() + 5, "{m}");
    err(&k, "(prs.str `a b`)", code::BAD_ARGUMENT).await;
    err(&k, "(prs.str 5)", code::BAD_ARGUMENT).await;
    is(&k, "(ser.bytes 1)", "x\"0141\"").await;
    is(&k, "(prs.bytes x\"0141\")", "1").await;
    is(&k, "(prs.bytes [0x01 0x41])", "1").await;
    is(
        &k,
        "(prs.bytes (ser.bytes {a:[1 -2.5 x\"ff\"]})@dat.proc)",
        "{a:[1 -2.5 x\"ff\"]}",
    )
    .await;
    err(&k, "(prs.bytes x\"02\")", code::BAD_ARGUMENT).await;
    err(&k, "(prs.bytes x\"\")", code::BAD_ARGUMENT).await;
    err(&k, "(prs.bytes [0x01 1])", code::BAD_ARGUMENT).await;
    err(&k, "(prs.bytes abc)", code::BAD_ARGUMENT).await;
}

#[tokio::test]
async fn messages_are_evaluated_first() {
    let k = kernel();
    is(&k, "(len (lin.int (1 5))@dat.gen)", "5").await;
    is(&k, "{len:@x x:[1 2 3]}", "3").await;
    // a stream as the whole message (x@a@dat.proc): evaluated, then handled
    is(&k, "(prs.str `(len [1 2])`)@dat.proc", "2").await;
}

#[tokio::test]
async fn unknown_commands_and_errors() {
    let k = kernel();
    err(&k, "(foo 1)", code::UNKNOWN_COMMAND).await;
    err(&k, "{foo:1}", code::UNKNOWN_COMMAND).await;
    err(&k, "foo", code::UNKNOWN_COMMAND).await;
    err(&k, "[1 2]", code::UNKNOWN_COMMAND).await;
    err(&k, "5", code::UNKNOWN_COMMAND).await;
    err(&k, "len", code::BAD_ARGUMENT).await;
    err(&k, "(len (1 0))@math.calc", code::UNKNOWN_COMMAND).await;
}

// ---------------------------------------------------------------------------------------------
// No input panics

const CMDS: &[&str] = &[
    "len",
    "sort",
    "rev",
    "enum",
    "map",
    "fold",
    "scn",
    "dup",
    "cat",
    "cat.zip",
    "prod",
    "split",
    "split.uz",
    "make",
    "keys",
    "take",
    "cut",
    "grp",
    "flat",
    "get",
    "fst",
    "last",
    "in",
    "zip",
    "unzip",
    "hash",
    "size",
    "size.kb",
    "size.mb",
    "size.gb",
    "ser.str",
    "prs.str",
    "ser.bytes",
    "prs.bytes",
    "pair",
    "lst",
    "map",
    "inc",
    "sum",
    "nope",
];

fn leaf() -> impl Strategy<Value = Unit> {
    prop_oneof![
        (-5i64..50).prop_map(Unit::int),
        any::<i64>().prop_map(Unit::int),
        prop::sample::select(CMDS).prop_map(Unit::str),
        "[a-z,]{0,6}".prop_map(|s| Unit::str(&s)),
        "\\PC{0,8}".prop_map(|s| Unit::str(&s)),
        Just(Unit::str("H4sIAAAAAAAA/2NkYGBgBAAv6v0LBAAAAA==")),
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<u8>().prop_map(Unit::Byte),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|v| Unit::Bytes(v.into())),
        Just(parse("@a.0").unwrap()),
        Just(parse("1.5").unwrap()),
    ]
}

fn unit() -> impl Strategy<Value = Unit> {
    arb_message(leaf(), CMDS, &["math.calc", "dat.proc"])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic(c in prop::sample::select(CMDS), arg in unit(), as_map in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let k = kernel();
            let cx = k.0.context(k.1.public(), [0; 32], None, 0);
            let msg = if as_map {
                let mut m = plexus_units::Map::new();
                m.insert(Unit::str(c), arg);
                Unit::Map(m)
            } else {
                Unit::pair(Unit::str(c), arg)
            };
            let _ = cx.send("dat.proc", None, msg).await;
        });
    }
}
