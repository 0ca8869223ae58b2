//! Property tests: every unit survives its text, pretty and binary forms; the binary form is
//! canonical and deterministic; the order is total and consistent with equality; hostile text
//! and bytes never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use num_bigint::{BigInt, Sign};
use plexus_units::binary::MAX_SCALE;
use plexus_units::{
    decode, decode_bytes, decode_ref, encode, parse, to_pretty, to_short, to_text, Arena, Dec, Int,
    Map, Path, Str, Stream, Unit,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Strings that look like other literals, need quoting or escaping, or are otherwise awkward.
const AWKWARD: &[&str] = &[
    "",
    "123",
    "-7",
    "00",
    "t",
    "f",
    "true",
    "false",
    "-",
    "--",
    "-a",
    "0x1f",
    "0x1",
    "0x",
    "0xzz",
    "0X1F",
    "1.5",
    "1.",
    ".5",
    "1e5",
    "1E5",
    "1e",
    "1e-",
    "1e-5",
    "-1.5e-3",
    "1-2",
    "1.2.3",
    "x",
    "x\"00\"",
    "`",
    "'",
    "\"",
    "``",
    "`a`",
    "'a'",
    "\"a\"",
    "\\",
    "\\n",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "\u{7}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "a b",
    " ",
    "@x",
    "@",
    "a:b",
    ":",
    "a@b:c",
    "#ff0000",
    "λ_#x.y",
    "a.b",
    ".",
    "..",
    "_",
    "#",
    "é",
    "e\u{301}",
    "😀",
    "١٢٣",
    "²",
    "Ⅻ",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "[]",
    "//",
    "/*",
    "*/",
    "a//b",
    "\\u{41}",
    "Ω≈ç√",
];

fn awkward_str() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(AWKWARD).prop_map(str::to_owned);
    prop_oneof![
        3 => fixed.clone(),
        2 => "[a-zA-Z0-9#._-]{1,10}",
        2 => "(?s).{0,12}",
        1 => "[\\\\`'\"\n\r\t\u{0}\u{1}-\u{1f} a-c]{0,10}",
        2 => prop::collection::vec(fixed, 0..4).prop_map(|v| v.concat()),
    ]
}

fn big_int(min_bytes: usize, max_bytes: usize) -> impl Strategy<Value = BigInt> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), min_bytes..max_bytes),
    )
        .prop_map(|(neg, mag)| {
            BigInt::from_bytes_le(if neg { Sign::Minus } else { Sign::Plus }, &mag)
        })
}

fn int_value() -> impl Strategy<Value = BigInt> {
    let edges = prop::sample::select(vec![
        BigInt::from(0),
        BigInt::from(63),
        BigInt::from(64),
        BigInt::from(-32),
        BigInt::from(-33),
        BigInt::from(i64::MAX),
        BigInt::from(i64::MIN),
        BigInt::from(i64::MAX) + 1,
        BigInt::from(i64::MIN) - 1,
        BigInt::from(u64::MAX),
        BigInt::from(u64::MAX) + 1,
        -BigInt::from(u64::MAX),
        -BigInt::from(u64::MAX) - 1,
        -BigInt::from(u64::MAX) - 2,
    ]);
    prop_oneof![
        3 => (-100i64..100).prop_map(BigInt::from),
        3 => any::<i64>().prop_map(BigInt::from),
        2 => edges,
        2 => big_int(8, 24),
        1 => big_int(24, 80),
    ]
}

fn int() -> impl Strategy<Value = Unit> {
    int_value().prop_map(|i| Unit::Int(Int::from(i)))
}

fn dec() -> impl Strategy<Value = Unit> {
    // Normalization lowers the scale by the mantissa's trailing zeros (at most ~200 here), and
    // the codec accepts scales within ±MAX_SCALE.
    let scale = prop_oneof![
        4 => -30i64..30,
        2 => -2000i64..2000,
        1 => (-MAX_SCALE + 300)..(-MAX_SCALE + 400),
        1 => (MAX_SCALE - 100)..=MAX_SCALE,
        1 => any::<i32>().prop_map(i64::from),
        1 => (-(1i64 << 61))..(1i64 << 61),
    ];
    (int_value(), scale).prop_map(|(m, s)| Unit::Dec(Dec::new(m, s)))
}

fn segment() -> impl Strategy<Value = Str> {
    awkward_str().prop_map(Str::from)
}

fn leaf() -> impl Strategy<Value = Unit> {
    prop_oneof![
        1 => Just(Unit::None),
        1 => any::<bool>().prop_map(Unit::Bool),
        1 => any::<u8>().prop_map(Unit::Byte),
        3 => int(),
        3 => dec(),
        5 => awkward_str().prop_map(Unit::from),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Unit::Bytes(Bytes::from(b))),
        2 => prop::collection::vec(segment(), 1..4)
            .prop_map(|s| Unit::Ref(Path::new(s).unwrap())),
    ]
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9._#-]{0,10}",
        1 => prop::sample::select(vec!["-", "0x1f", "1.5", "t", "12", "λ", "a-b", "#", ".", "_x"])
            .prop_map(str::to_owned),
    ]
}

fn node() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => "[a-z0-9-]{1,8}".prop_map(Some),
        1 => awkward_str()
            .prop_filter("a node is not empty", |s| !s.is_empty())
            .prop_map(Some),
    ]
}

fn stream_of(inner: impl Strategy<Value = Unit>) -> impl Strategy<Value = Unit> {
    (inner, service(), node())
        .prop_map(|(u, s, n)| Unit::Stream(Box::new(Stream::new(u, &s, n.as_deref()).unwrap())))
}

/// A map from entries, dropping any entry whose key repeats an earlier one.
fn map_of(entries: Vec<(Unit, Unit)>) -> Unit {
    let mut kept: Vec<(Unit, Unit)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        if !kept.iter().any(|(k2, _)| *k2 == k) {
            kept.push((k, v));
        }
    }
    Unit::Map(Map::from_entries(kept).unwrap())
}

/// Any unit: every type, nested, with streams (pinned or not) as map keys and values.
fn unit() -> impl Strategy<Value = Unit> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            2 => stream_of(inner.clone()),
            // Streams of streams: `a@b:n@c`.
            1 => stream_of(stream_of(inner.clone())),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| Unit::pair(a, b)),
            2 => prop::collection::vec(inner.clone(), 0..8).prop_map(Unit::List),
            2 => prop::collection::vec((inner.clone(), inner.clone()), 0..6).prop_map(map_of),
            // Stream keys next to all kinds of values.
            2 => prop::collection::vec((stream_of(inner.clone()), inner), 0..5).prop_map(map_of),
        ]
    })
}

/// Small numbers and strings that often tie or interleave, to exercise the order.
fn close_unit() -> impl Strategy<Value = Unit> {
    let num = prop_oneof![
        (-3i64..3).prop_map(Unit::int),
        ((-30i64..30), (-2i64..3)).prop_map(|(m, s)| Unit::Dec(Dec::new(BigInt::from(m), s))),
    ];
    prop_oneof![
        4 => num,
        2 => "[ab]{0,2}".prop_map(Unit::from),
        1 => any::<bool>().prop_map(Unit::Bool),
        1 => Just(Unit::None),
        1 => prop::collection::vec((-1i64..2).prop_map(Unit::int), 0..3).prop_map(Unit::List),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks shared by several properties
// ---------------------------------------------------------------------------------------------

fn hash_of(u: &Unit) -> u64 {
    let mut h = DefaultHasher::new();
    u.hash(&mut h);
    h.finish()
}

fn check_text(u: &Unit) -> Result<(), TestCaseError> {
    let text = to_text(u);
    let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
    prop_assert_eq!(&back, u, "text {:?}", text);
    prop_assert_eq!(hash_of(&back), hash_of(u));
    // The canonical text is a fixed point.
    prop_assert_eq!(to_text(&back), text);
    Ok(())
}

fn check_binary(u: &Unit) -> Result<(), TestCaseError> {
    let bytes = encode(u);
    prop_assert_eq!(&encode(&u.clone()), &bytes, "encode is deterministic");
    let back = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{bytes:02x?}: {e}")))?;
    prop_assert_eq!(&back, u);
    let shared = decode_bytes(Bytes::from(bytes.clone()))
        .map_err(|e| TestCaseError::fail(format!("decode_bytes: {e}")))?;
    prop_assert_eq!(&shared, &back);
    let arena = Arena::new();
    let borrowed =
        decode_ref(&bytes, &arena).map_err(|e| TestCaseError::fail(format!("decode_ref: {e}")))?;
    prop_assert_eq!(&borrowed.to_unit(), &back);
    prop_assert_eq!(&encode(&back), &bytes);
    Ok(())
}

fn check_order(a: &Unit, b: &Unit) -> Result<(), TestCaseError> {
    let ab = a.cmp(b);
    prop_assert_eq!(ab, b.cmp(a).reverse(), "antisymmetry");
    prop_assert_eq!(ab == Ordering::Equal, a == b, "cmp == Equal iff ==");
    prop_assert_eq!(a.partial_cmp(b), Some(ab));
    prop_assert_eq!(a.cmp(a), Ordering::Equal);
    Ok(())
}

fn check_transitive(a: &Unit, b: &Unit, c: &Unit) -> Result<(), TestCaseError> {
    for (x, y, z) in [
        (a, b, c),
        (a, c, b),
        (b, a, c),
        (b, c, a),
        (c, a, b),
        (c, b, a),
    ] {
        if x <= y && y <= z {
            prop_assert!(x <= z, "{} <= {} <= {} but not {} <= {}", x, y, z, x, z);
        }
        if x == y && y == z {
            prop_assert_eq!(x, z);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn text_round_trip(u in unit()) {
        check_text(&u)?;
    }

    #[test]
    fn pretty_round_trip(u in unit(), step in 0usize..5) {
        let text = to_pretty(&u, step);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(back, u, "pretty:\n{}", text);
    }

    #[test]
    fn binary_round_trip(u in unit()) {
        check_binary(&u)?;
    }

    #[test]
    fn short_form_never_panics(u in unit(), n in 0usize..40) {
        let short = to_short(&u, n);
        if n >= 1 && to_text(&u).chars().count() <= n {
            // Nothing to cut: short form of a small scalar is its text.
            if !matches!(u, Unit::List(_) | Unit::Map(_) | Unit::Pair(_) | Unit::Stream(_)) {
                prop_assert_eq!(short, to_text(&u));
            }
        }
    }

    #[test]
    fn order_is_total_and_consistent(a in unit(), b in unit(), c in unit()) {
        check_order(&a, &b)?;
        check_order(&b, &c)?;
        check_order(&a, &a.clone())?;
        check_transitive(&a, &b, &c)?;
    }

    #[test]
    fn order_of_close_values(a in close_unit(), b in close_unit(), c in close_unit()) {
        check_order(&a, &b)?;
        check_order(&a, &c)?;
        check_order(&b, &c)?;
        check_transitive(&a, &b, &c)?;
    }

    #[test]
    fn sorting_gives_a_chain(mut v in prop::collection::vec(prop_oneof![close_unit(), leaf()], 0..24)) {
        v.sort();
        for i in 0..v.len() {
            for j in i..v.len() {
                prop_assert!(v[i] <= v[j], "{} > {} after sorting", v[i], v[j]);
            }
        }
    }
}

/// An alphabet that reaches every corner of the grammar.
const GRAMMAR_CHARS: &str = "[\\[\\]{}()@:.`'\"\\\\x0-9a-fA-FtuneE\n /*#λ_-]{0,48}";

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn parsing_any_text_never_panics(s in prop_oneof!["(?s).{0,64}", GRAMMAR_CHARS]) {
        if let Ok(u) = parse(&s) {
            // Whatever parses also prints back to itself.
            check_text(&u)?;
            check_binary(&u)?;
        }
    }

    #[test]
    fn parsing_mutated_text_never_panics(
        u in unit(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..4),
    ) {
        let mut chars: Vec<char> = to_text(&u).chars().collect();
        for (at, c, op) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => { chars.remove(i); }
                _ => chars.truncate(i),
            }
        }
        let s: String = chars.into_iter().collect();
        if let Ok(u) = parse(&s) {
            check_text(&u)?;
            check_binary(&u)?;
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(
        mut bytes in prop::collection::vec(any::<u8>(), 0..64),
        versioned in any::<bool>(),
    ) {
        if versioned && !bytes.is_empty() {
            bytes[0] = 1;
        }
        let decoded = decode(&bytes);
        prop_assert_eq!(decode_ref(&bytes, &Arena::new()).map(|r| r.to_unit()), decoded.clone());
        if let Ok(u) = decoded {
            // Anything accepted is the one canonical encoding of its unit.
            prop_assert_eq!(encode(&u), bytes);
            check_text(&u)?;
        }
    }

    #[test]
    fn decoding_mutated_bytes_never_panics(
        u in unit(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
    ) {
        let mut bytes = encode(&u);
        for (at, b, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, b),
                1 if i < bytes.len() => bytes[i] = b,
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        let decoded = decode(&bytes);
        prop_assert_eq!(decode_ref(&bytes, &Arena::new()).map(|r| r.to_unit()), decoded.clone());
        if let Ok(u) = decoded {
            prop_assert_eq!(encode(&u), bytes);
            check_text(&u)?;
        }
    }
}
