//! Property-test strategies shared by every crate's tests (feature `proptest`, enabled by
//! their dev-dependencies): [`arb_unit`] for any unit, and [`arb_message`] for the messages
//! of a service, made of the leaves and command names that matter to it.

// Strategies build values they have just made valid; a failure is a bug in this module.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use num_bigint::{BigInt, Sign};
use proptest::prelude::*;

use crate::binary::MAX_SCALE;
use crate::{Dec, Int, Map, Path, Str, Stream, Unit};

/// Messages for a service: `leaf` and the `commands` (as strs) nested in pairs, lists and
/// maps, in commands `(cmd x)` and `{cmd:x k:y}`, and in streams `(cmd x)@serv` to
/// `services`, four levels deep at most.
pub fn arb_message(
    leaf: impl Strategy<Value = Unit> + 'static,
    commands: &'static [&'static str],
    services: &'static [&'static str],
) -> BoxedStrategy<Unit> {
    let leaf = if commands.is_empty() {
        leaf.boxed()
    } else {
        prop_oneof![4 => leaf, 1 => arb_word(commands)].boxed()
    };
    leaf.prop_recursive(4, 32, 4, move |inner| {
        let mut shapes = vec![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Unit::pair(a, b))
                .boxed(),
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(Unit::List)
                .boxed(),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4)
                .prop_map(map_of)
                .boxed(),
        ];
        if !commands.is_empty() {
            let cmd = || prop::sample::select(commands).prop_map(Unit::str);
            shapes.push(
                (cmd(), inner.clone())
                    .prop_map(|(c, a)| Unit::pair(c, a))
                    .boxed(),
            );
            shapes.push(
                (cmd(), inner.clone(), "[a-z]{1,4}", inner.clone())
                    .prop_map(|(c, a, k, b)| map_of(vec![(c, a), (Unit::from(k), b)]))
                    .boxed(),
            );
            if !services.is_empty() {
                shapes.push(
                    (cmd(), inner.clone(), prop::sample::select(services))
                        .prop_map(|(c, a, s)| Unit::stream(Unit::pair(c, a), s).unwrap())
                        .boxed(),
                );
            }
        }
        proptest::strategy::Union::new(shapes)
    })
    .boxed()
}

/// Strs from `words` (command names, options, colours…).
pub fn arb_word(words: &'static [&'static str]) -> impl Strategy<Value = Unit> {
    prop::sample::select(words).prop_map(Unit::str)
}

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

/// Strs that look like other literals or need quoting or escaping.
pub fn awkward_str() -> impl Strategy<Value = String> {
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

/// Scalar units of every type: none, bools, bytes, ints (small, 64-bit, edges, big), decs
/// (any scale the codec accepts), awkward strs, bytes and refs.
pub fn arb_leaf() -> impl Strategy<Value = Unit> {
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
pub fn map_of(entries: Vec<(Unit, Unit)>) -> Unit {
    let mut kept: Vec<(Unit, Unit)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        if !kept.iter().any(|(k2, _)| *k2 == k) {
            kept.push((k, v));
        }
    }
    Unit::Map(Map::from_entries(kept).unwrap())
}

/// Any unit: every type, nested, with streams (pinned or not) as map keys and values.
pub fn arb_unit() -> impl Strategy<Value = Unit> {
    arb_leaf().prop_recursive(6, 96, 8, |inner| {
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
