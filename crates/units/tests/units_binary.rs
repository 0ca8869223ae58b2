//! The binary form is canonical: every non-canonical variant of every tag is refused, and
//! damaged or truncated documents fail cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use num_bigint::BigInt;
use plexus_units::binary::{FORMAT_VERSION, MAX_SCALE};
use plexus_units::{
    decode, decode_bytes, decode_bytes_with, decode_ref, decode_ref_with, encode, parse, Arena,
    Dec, DecodeError, Int, Limits, Unit,
};

const NONE: u8 = 0x00;
const BYTE: u8 = 0x03;
const INT_POS: u8 = 0x04;
const INT_NEG: u8 = 0x05;
const BIG_POS: u8 = 0x06;
const BIG_NEG: u8 = 0x07;
const DEC: u8 = 0x08;
const STR: u8 = 0x09;
const BYTES: u8 = 0x0a;
const REF: u8 = 0x0b;
const STREAM: u8 = 0x0c;
const STREAM_PINNED: u8 = 0x0d;
const PAIR: u8 = 0x0e;
const LIST: u8 = 0x0f;
const MAP: u8 = 0x10;
const POS_SMALL: u8 = 0x40;
const STR_SHORT: u8 = 0x80;
const LIST_SHORT: u8 = 0xc0;
const MAP_SHORT: u8 = 0xd0;

/// A document: the version byte, then `body`.
fn doc(body: &[u8]) -> Vec<u8> {
    let mut d = vec![FORMAT_VERSION];
    d.extend_from_slice(body);
    d
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn p(text: &str) -> Unit {
    parse(text).unwrap()
}

/// Decodes `body` (after the version byte) successfully, and checks it is canonical.
fn accepts(body: &[u8]) -> Unit {
    let d = doc(body);
    let u = decode(&d).unwrap_or_else(|e| panic!("{body:02x?} should decode: {e}"));
    let arena = Arena::new();
    let borrowed = decode_ref(&d, &arena).unwrap_or_else(|e| panic!("{body:02x?} borrowed: {e}"));
    assert_eq!(borrowed.to_unit(), u, "the borrowed decoder agrees");
    assert_eq!(
        encode(&u),
        d,
        "accepted bytes must be the canonical encoding"
    );
    u
}

fn rejects(body: &[u8]) -> DecodeError {
    let d = doc(body);
    match decode(&d) {
        Ok(u) => panic!("{body:02x?} should be refused, decoded {u:?}"),
        Err(e) => {
            // All decoders agree.
            assert_eq!(decode_ref(&d, &Arena::new()).err(), Some(e.clone()));
            assert_eq!(decode_bytes(Bytes::from(d)), Err(e.clone()));
            e
        }
    }
}

fn non_canonical(body: &[u8], why: &str) {
    match rejects(body) {
        DecodeError::NonCanonical { why: w, .. } => {
            assert!(w.contains(why), "{body:02x?}: {w:?} lacks {why:?}")
        }
        e => panic!("{body:02x?}: expected NonCanonical({why}), got {e:?}"),
    }
}

fn invalid_text(body: &[u8]) {
    let e = rejects(body);
    assert!(
        matches!(e, DecodeError::InvalidText { .. }),
        "{body:02x?}: {e:?}"
    );
}

fn truncated(body: &[u8]) {
    let e = rejects(body);
    assert!(
        matches!(e, DecodeError::Truncated { .. }),
        "{body:02x?}: {e:?}"
    );
}

#[test]
fn version_byte() {
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated {
            offset: 0,
            expected: "the format version byte"
        })
    );
    for v in [0u8, 2, 0xff] {
        assert_eq!(decode(&[v, NONE]), Err(DecodeError::Version { version: v }));
    }
    assert_eq!(
        decode(&[0, NONE]).unwrap_err().to_string(),
        "unsupported format version 0 (this build reads version 1)"
    );
    truncated(&[]);
}

#[test]
fn trailing_bytes() {
    assert_eq!(
        decode(&doc(&[NONE, NONE, NONE])),
        Err(DecodeError::Trailing {
            offset: 2,
            count: 2
        })
    );
    assert!(matches!(
        decode(&doc(&[0xc1, 0x40, 0x40])),
        Err(DecodeError::Trailing { .. })
    ));
    assert_eq!(
        decode(&doc(&[NONE, 7])).unwrap_err().to_string(),
        "1 unexpected bytes after the unit at byte 2"
    );
}

#[test]
fn unknown_tags() {
    for t in (0x11..=0x1f).chain(0xe0..=0xff) {
        assert_eq!(
            decode(&doc(&[t])),
            Err(DecodeError::UnknownTag { tag: t, offset: 1 }),
            "tag {t:#04x}"
        );
    }
    // Inside a container too.
    assert_eq!(
        decode(&doc(&[0xc2, 0x40, 0xe7])),
        Err(DecodeError::UnknownTag {
            tag: 0xe7,
            offset: 3
        })
    );
}

#[test]
fn fixed_size_scalars() {
    assert_eq!(accepts(&[NONE]), Unit::None);
    assert_eq!(accepts(&[0x01]), Unit::Bool(false));
    assert_eq!(accepts(&[0x02]), Unit::Bool(true));
    assert_eq!(accepts(&[BYTE, 0x00]), Unit::Byte(0));
    assert_eq!(accepts(&[BYTE, 0xff]), Unit::Byte(0xff));
    truncated(&[BYTE]);
}

#[test]
fn small_ints_have_one_byte_forms() {
    for v in 0..=63u8 {
        assert_eq!(accepts(&[POS_SMALL + v]), Unit::int(i64::from(v)));
        non_canonical(&[INT_POS, v], "int fits the one-byte form");
    }
    for v in 0..=31u8 {
        assert_eq!(accepts(&[0x20 + v]), Unit::int(-1 - i64::from(v)));
        non_canonical(&[INT_NEG, v], "int fits the one-byte form");
    }
    assert_eq!(accepts(&[INT_POS, 64]), Unit::int(64));
    assert_eq!(accepts(&[INT_NEG, 32]), Unit::int(-33));
    truncated(&[INT_POS]);
    truncated(&[INT_NEG, 0x80]);
}

#[test]
fn varints_are_minimal() {
    // 64 with a redundant continuation.
    non_canonical(&[INT_POS, 0xc0, 0x00], "redundant zero byte");
    non_canonical(&[INT_POS, 0xc0, 0x80, 0x00], "redundant zero byte");
    non_canonical(&[INT_NEG, 0xa0, 0x80, 0x80, 0x00], "redundant zero byte");
    // 16384 needs exactly three bytes.
    assert_eq!(accepts(&[INT_POS, 0x80, 0x80, 0x01]), Unit::int(16384));
    // u64::MAX is ten bytes, the last one 0x01.
    let max = cat(&[&[INT_POS], &[0xff; 9], &[0x01]]);
    assert_eq!(accepts(&max), Unit::Int(Int::from(BigInt::from(u64::MAX))));
    // A tenth byte above 1 overflows 64 bits; an eleventh byte is never allowed.
    non_canonical(
        &cat(&[&[INT_POS], &[0xff; 9], &[0x02]]),
        "longer than 64 bits",
    );
    non_canonical(
        &cat(&[&[INT_POS], &[0xff; 9], &[0x81, 0x00]]),
        "longer than 64 bits",
    );
    non_canonical(
        &cat(&[&[INT_POS], &[0x80; 10], &[0x00]]),
        "longer than 64 bits",
    );
    // Lengths and counts are varints too.
    non_canonical(&[BYTES, 0x80, 0x00], "redundant zero byte");
    non_canonical(&[BYTES, 0x81, 0x00, 0xaa], "redundant zero byte");
    non_canonical(&[REF, 0x81, 0x00, 0x00], "redundant zero byte");
    non_canonical(&[REF, 0x01, 0x80, 0x00], "redundant zero byte");
    non_canonical(&[LIST, 0x90, 0x00], "redundant zero byte");
    non_canonical(&[DEC, 0x80, 0x00, 0x41], "redundant zero byte");
    non_canonical(&[STREAM, NONE, 0x81, 0x00, b's'], "redundant zero byte");
}

#[test]
fn i64_and_u64_edges() {
    for v in [
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
        64,
        -33,
        1 << 40,
        -(1 << 40),
    ] {
        let d = encode(&Unit::int(v));
        assert_eq!(decode(&d).unwrap(), Unit::int(v));
    }
    // i64::MIN is INT_NEG of i64::MAX.
    assert_eq!(
        accepts(&cat(&[&[INT_NEG], &varint(i64::MAX as u64)])),
        Unit::int(i64::MIN)
    );
    // -2^64 is the most negative INT_NEG.
    let neg_2_64 = -(BigInt::from(u64::MAX) + 1u8);
    assert_eq!(
        accepts(&cat(&[&[INT_NEG], &varint(u64::MAX)])),
        Unit::Int(Int::from(neg_2_64))
    );
}

#[test]
fn big_ints_are_minimal() {
    // 2^64: nine magnitude bytes, little-endian.
    let two_64 = BigInt::from(u64::MAX) + 1u8;
    let mag = [0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        accepts(&cat(&[&[BIG_POS, 9], &mag])),
        Unit::Int(Int::from(two_64.clone()))
    );
    // -(2^64 + 1) is the least BIG_NEG magnitude.
    let mag1 = [1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        accepts(&cat(&[&[BIG_NEG, 9], &mag1])),
        Unit::Int(Int::from(-(two_64.clone() + 1u8)))
    );
    // Leading zero magnitude bytes (the last ones, little-endian), and the empty magnitude.
    non_canonical(&cat(&[&[BIG_POS, 10], &mag, &[0]]), "leading zero");
    non_canonical(&cat(&[&[BIG_NEG, 10], &mag1, &[0]]), "leading zero");
    non_canonical(&[BIG_POS, 0], "leading zero");
    non_canonical(&[BIG_NEG, 0], "leading zero");
    // Values that fit a varint.
    non_canonical(&[BIG_POS, 1, 5], "fits a varint");
    non_canonical(&[BIG_POS, 1, 0x80], "fits a varint");
    non_canonical(&cat(&[&[BIG_POS, 8], &[0xff; 8]]), "fits a varint");
    non_canonical(&[BIG_NEG, 1, 1], "fits a varint");
    // -2^64 is INT_NEG u64::MAX, not BIG_NEG 2^64.
    non_canonical(&cat(&[&[BIG_NEG, 9], &mag]), "fits a varint");
    non_canonical(&cat(&[&[BIG_NEG, 8], &[0xff; 8]]), "fits a varint");
    // Truncated magnitude and length.
    truncated(&[BIG_POS, 9, 0, 0]);
    truncated(&[BIG_POS]);
    // Too many magnitude bytes for the digit limit (of the binary limits, `Limits::WIRE`).
    let over = Limits::WIRE.max_digits / 2 + 2;
    let e = rejects(&cat(&[&[BIG_POS], &varint(over as u64), &vec![1; over]]));
    assert!(
        matches!(
            e,
            DecodeError::Limit {
                what: "big int size in bytes",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn decimals_are_normalized() {
    let scale = |s: i64| varint(zigzag(s));
    // 1.5 = 15 × 10^-1.
    assert_eq!(
        accepts(&cat(&[&[DEC], &scale(1), &[POS_SMALL + 15]])),
        p("1.5")
    );
    assert_eq!(
        accepts(&cat(&[&[DEC], &scale(-3), &[POS_SMALL + 1]])),
        p("1e3")
    );
    assert_eq!(accepts(&[DEC, 0, POS_SMALL]), p("0.0"));
    assert_eq!(accepts(&cat(&[&[DEC], &scale(2), &[0x20 + 4]])), p("-0.05"));
    // A trailing zero digit in the mantissa (1.50, 10e0, -20e-1).
    non_canonical(
        &cat(&[&[DEC], &scale(2), &[INT_POS, 150, 1]]),
        "not normalized",
    );
    non_canonical(
        &cat(&[&[DEC], &scale(0), &[POS_SMALL + 10]]),
        "not normalized",
    );
    non_canonical(&cat(&[&[DEC], &scale(-1), &[0x20 + 19]]), "not normalized");
    let ten_2_64 = BigInt::from(u64::MAX) * 10u8 + 10u8;
    let (_, mag) = ten_2_64.to_bytes_le();
    non_canonical(
        &cat(&[
            &[DEC],
            &scale(0),
            &[BIG_POS],
            &varint(mag.len() as u64),
            &mag,
        ]),
        "not normalized",
    );
    // Zero has scale 0.
    non_canonical(&cat(&[&[DEC], &scale(1), &[POS_SMALL]]), "not normalized");
    non_canonical(&cat(&[&[DEC], &scale(-1), &[POS_SMALL]]), "not normalized");
    // The mantissa is an int in its canonical form.
    non_canonical(
        &cat(&[&[DEC], &scale(1), &[STR_SHORT]]),
        "mantissa is not an int",
    );
    non_canonical(
        &cat(&[&[DEC], &scale(1), &[NONE]]),
        "mantissa is not an int",
    );
    non_canonical(
        &cat(&[&[DEC], &scale(1), &[DEC, 0, POS_SMALL + 1]]),
        "mantissa is not an int",
    );
    non_canonical(&cat(&[&[DEC], &scale(1), &[INT_POS, 5]]), "one-byte form");
    non_canonical(&cat(&[&[DEC], &scale(1), &[INT_NEG, 5]]), "one-byte form");
    non_canonical(
        &cat(&[&[DEC], &scale(1), &[BIG_POS, 1, 7]]),
        "fits a varint",
    );
    // The scale range.
    let max = Unit::Dec(Dec::new(BigInt::from(7), MAX_SCALE));
    assert_eq!(
        accepts(&cat(&[&[DEC], &scale(MAX_SCALE), &[POS_SMALL + 7]])),
        max
    );
    accepts(&cat(&[&[DEC], &scale(-MAX_SCALE), &[POS_SMALL + 7]]));
    for s in [MAX_SCALE + 1, -MAX_SCALE - 1, i64::MAX, i64::MIN] {
        let e = rejects(&cat(&[&[DEC], &scale(s), &[POS_SMALL + 7]]));
        assert!(
            matches!(
                e,
                DecodeError::Limit {
                    what: "decimal scale",
                    ..
                }
            ),
            "{s}: {e:?}"
        );
    }
    truncated(&[DEC]);
    truncated(&[DEC, 2]);
}

#[test]
fn strings() {
    assert_eq!(accepts(&[STR_SHORT]), Unit::str(""));
    assert_eq!(accepts(&[STR_SHORT + 2, b'h', b'i']), Unit::str("hi"));
    let s63 = "a".repeat(63);
    let s64 = "a".repeat(64);
    assert_eq!(
        accepts(&cat(&[&[STR_SHORT + 63], s63.as_bytes()])),
        Unit::str(&s63)
    );
    assert_eq!(
        accepts(&cat(&[&[STR, 64], s64.as_bytes()])),
        Unit::str(&s64)
    );
    // Long form where the short one fits.
    non_canonical(&[STR, 0], "fits the short form");
    non_canonical(&cat(&[&[STR, 63], s63.as_bytes()]), "fits the short form");
    non_canonical(&[STR, 2, b'h', b'i'], "fits the short form");
    // Invalid UTF-8: a lone continuation byte, an overlong encoding, a surrogate, truncation.
    for bad in [
        &[0x80][..],
        &[0xc0, 0x80],
        &[0xed, 0xa0, 0x80],
        &[0xe2, 0x82],
        &[0xff],
    ] {
        invalid_text(&cat(&[&[STR_SHORT + bad.len() as u8], bad]));
        let mut long = vec![b'a'; 64];
        long.extend_from_slice(bad);
        invalid_text(&cat(&[&[STR], &varint(long.len() as u64), &long]));
    }
    truncated(&[STR_SHORT + 3, b'a']);
    truncated(&[STR, 100, b'a']);
    truncated(&[STR]);
}

#[test]
fn byte_strings() {
    assert_eq!(accepts(&[BYTES, 0]), Unit::Bytes(Bytes::new()));
    assert_eq!(
        accepts(&[BYTES, 2, 0xff, 0x00]),
        Unit::Bytes(vec![0xff, 0].into())
    );
    // Not UTF-8 is fine in bytes.
    accepts(&[BYTES, 1, 0xff]);
    truncated(&[BYTES, 3, 1, 2]);
    truncated(&cat(&[&[BYTES], &varint(u64::MAX)]));
    truncated(&[BYTES]);
}

#[test]
fn refs() {
    assert_eq!(accepts(&[REF, 2, 1, b'a', 1, b'0']), p("@a.0"));
    assert_eq!(accepts(&[REF, 1, 0]), p("@``"));
    invalid_text(&[REF, 0]);
    invalid_text(&[REF, 1, 1, 0xff]);
    invalid_text(&[REF, 2, 1, b'a', 2, 0xc3, 0x28]);
    truncated(&[REF, 2, 1, b'a']);
    truncated(&[REF, 1, 5, b'a']);
    truncated(&cat(&[&[REF], &varint(u64::MAX)]));
}

#[test]
fn streams() {
    assert_eq!(accepts(&[STREAM, POS_SMALL + 1, 1, b'm']), p("1@m"));
    assert_eq!(
        accepts(&[STREAM_PINNED, NONE, 1, b'm', 3, b'a', b' ', b'b']),
        p("-@m:`a b`")
    );
    assert_eq!(
        accepts(&[STREAM, STREAM_PINNED, NONE, 1, b'a', 1, b'n', 1, b'b']),
        p("-@a:n@b")
    );
    // Service names are non-empty words.
    for bad in [&b""[..], b"a b", b"a:b", b"a@b", b"a/b", b"`a`", b"\n"] {
        let e = rejects(&cat(&[&[STREAM, NONE], &varint(bad.len() as u64), bad]));
        assert!(
            matches!(e, DecodeError::InvalidText { .. }),
            "{bad:?}: {e:?}"
        );
    }
    invalid_text(&[STREAM, NONE, 1, 0xff]);
    // λ is a word character.
    accepts(&[STREAM, NONE, 2, 0xce, 0xbb]);
    // Node names are non-empty UTF-8 (any characters).
    invalid_text(&[STREAM_PINNED, NONE, 1, b's', 0]);
    invalid_text(&[STREAM_PINNED, NONE, 1, b's', 1, 0x80]);
    accepts(&[STREAM_PINNED, NONE, 1, b's', 2, b'@', b':']);
    truncated(&[STREAM, NONE]);
    truncated(&[STREAM_PINNED, NONE, 1, b's']);
    truncated(&[STREAM]);
}

#[test]
fn pairs_lists_and_maps() {
    assert_eq!(accepts(&[PAIR, POS_SMALL + 1, POS_SMALL + 2]), p("(1 2)"));
    truncated(&[PAIR, POS_SMALL]);
    assert_eq!(accepts(&[LIST_SHORT]), p("[]"));
    assert_eq!(accepts(&[MAP_SHORT]), p("{}"));
    let fifteen: Vec<u8> = (0..15).map(|i| POS_SMALL + i).collect();
    let sixteen: Vec<u8> = (0..16).map(|i| POS_SMALL + i).collect();
    accepts(&cat(&[&[LIST_SHORT + 15], &fifteen]));
    accepts(&cat(&[&[LIST, 16], &sixteen]));
    // Long forms where the short form fits.
    non_canonical(&cat(&[&[LIST, 15], &fifteen]), "fits the short form");
    non_canonical(&[LIST, 0], "fits the short form");
    non_canonical(&[MAP, 0], "fits the short form");
    non_canonical(&[MAP, 1, POS_SMALL, NONE], "fits the short form");
    let entries = |n: u8| -> Vec<u8> { (0..n).flat_map(|i| [POS_SMALL + i, NONE]).collect() };
    accepts(&cat(&[&[MAP_SHORT + 15], &entries(15)]));
    accepts(&cat(&[&[MAP, 16], &entries(16)]));
    non_canonical(&cat(&[&[MAP, 15], &entries(15)]), "fits the short form");
    // Counts larger than the input.
    truncated(&[LIST_SHORT + 3, NONE, NONE]);
    truncated(&[MAP_SHORT + 1, NONE]);
    truncated(&cat(&[&[LIST], &varint(u64::MAX)]));
    truncated(&cat(&[&[MAP], &varint(1 << 40), &[NONE; 4]]));
}

#[test]
fn duplicate_map_keys() {
    // Short map: `{a:- a:-}`.
    assert_eq!(
        decode(&doc(&[
            MAP_SHORT + 2,
            STR_SHORT + 1,
            b'a',
            NONE,
            STR_SHORT + 1,
            b'a',
            POS_SMALL
        ])),
        Err(DecodeError::DuplicateKey { offset: 1 })
    );
    // Equal after decoding: a dec key twice, a list key twice.
    let d15 = [DEC, 2, POS_SMALL + 15];
    assert!(matches!(
        rejects(&cat(&[&[MAP_SHORT + 2], &d15, &[NONE], &d15, &[NONE]])),
        DecodeError::DuplicateKey { .. }
    ));
    let l = [LIST_SHORT + 1, NONE];
    assert!(matches!(
        rejects(&cat(&[&[0xc1, MAP_SHORT + 2], &l, &[NONE], &l, &[NONE]])),
        DecodeError::DuplicateKey { offset: 2 }
    ));
    // Int 1 and dec 1 are different keys.
    accepts(&[
        MAP_SHORT + 2,
        POS_SMALL + 1,
        NONE,
        DEC,
        0,
        POS_SMALL + 1,
        NONE,
    ]);
    // Long map (hashing path): 40 keys, the last repeating the first.
    let mut body = vec![MAP, 40];
    for i in 0..39u8 {
        body.extend_from_slice(&[STR_SHORT + 1, b'A' + i, NONE]);
    }
    body.extend_from_slice(&[STR_SHORT + 1, b'A', NONE]);
    assert!(matches!(rejects(&body), DecodeError::DuplicateKey { .. }));
}

#[test]
fn limits() {
    // Depth: lists, pairs, maps and streams each count one level.
    let nest = |n: usize, opener: &[u8], closer: &[u8]| {
        let mut body = Vec::new();
        for _ in 0..n {
            body.extend_from_slice(opener);
        }
        body.push(NONE);
        for _ in 0..n {
            body.extend_from_slice(closer);
        }
        body
    };
    accepts(&nest(128, &[0xc1], &[]));
    accepts(&nest(128, &[STREAM], &[1, b's']));
    accepts(&nest(128, &[PAIR], &[NONE]));
    accepts(&nest(128, &[MAP_SHORT + 1, NONE], &[]));
    for (open, close) in [
        (&[0xc1][..], &[][..]),
        (&[STREAM], &[1, b's']),
        (&[PAIR], &[NONE]),
        (&[MAP_SHORT + 1, NONE], &[]),
    ] {
        let e = rejects(&nest(129, open, close));
        assert!(
            matches!(
                e,
                DecodeError::Limit {
                    what: "nesting depth",
                    limit: 128,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Size.
    let small = Limits {
        max_size: 10,
        ..Limits::DEFAULT
    };
    let d = Bytes::from(doc(&[BYTES, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(matches!(
        decode_bytes_with(d.clone(), &small),
        Err(DecodeError::Limit {
            what: "input size",
            ..
        })
    ));
    assert!(decode_bytes(d).is_ok());
    // Digits: the limit on magnitude bytes is max_digits / 2 + 1.
    let few = Limits {
        max_digits: 20,
        ..Limits::DEFAULT
    };
    let big = Bytes::from(doc(&cat(&[&[BIG_POS, 11], &[1; 11]])));
    assert!(decode_bytes_with(big.clone(), &few).is_ok());
    assert!(decode_ref_with(&big, &Arena::new(), &few).is_ok());
    let bigger = Bytes::from(doc(&cat(&[&[BIG_POS, 12], &[1; 12]])));
    assert!(matches!(
        decode_bytes_with(bigger, &few),
        Err(DecodeError::Limit { .. })
    ));
}

/// Binary decoding without explicit limits uses [`Limits::WIRE`]: a number of a million digits
/// (the longest a service computes) decodes (`big_ints_are_minimal` checks one beyond).
#[test]
fn binary_decoding_takes_numbers_of_a_million_digits() {
    let million_digits = Int::from(BigInt::from(10u32).pow(999_999));
    let u = Unit::Int(million_digits);
    let bytes = encode(&u);
    assert_eq!(decode(&bytes).unwrap(), u);
    assert_eq!(decode_bytes(Bytes::from(bytes.clone())).unwrap(), u);
    assert!(decode_ref(&bytes, &Arena::new()).is_ok());
}

/// A document using every tag and both forms of every length.
fn varied() -> Unit {
    p(&format!(
        "{{a:[- t f 0x00 0xff 0 63 64 -32 -33 9223372036854775807 -9223372036854775808 \
         18446744073709551616 -18446744073709551617 123456789012345678901234567890 \
         1.5 -0.05 1e40 1.5e-40 0.0 `` `{long}` x\"\" x\"00ff\" @a.`b c`.0] \
         (1 (2 3)):{{k@s:n: v@t}} `{long}`:{{{map16}}} [{list16}]:[x@y z@w:`n m`] \
         λ:`é\\n\\u{{0}}`}}",
        long = "L".repeat(70),
        map16 = (0..16)
            .map(|i| format!("k{i}:{i}"))
            .collect::<Vec<_>>()
            .join(" "),
        list16 = (0..16).map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
    ))
}

#[test]
fn every_prefix_is_truncated() {
    let full = encode(&varied());
    assert!(full.len() > 300, "{}", full.len());
    assert_eq!(decode(&full).unwrap(), varied());
    for cut in 0..full.len() {
        match decode(&full[..cut]) {
            Err(DecodeError::Truncated { offset, .. }) => assert!(offset <= cut),
            other => panic!("prefix of {cut} bytes: {other:?}"),
        }
        assert!(decode_bytes(Bytes::copy_from_slice(&full[..cut])).is_err());
        assert!(decode_ref(&full[..cut], &Arena::new()).is_err());
    }
}

#[test]
fn every_single_byte_change_is_refused_or_canonical() {
    let full = encode(&varied());
    for at in 0..full.len() {
        for b in 0..=255u8 {
            if b == full[at] {
                continue;
            }
            let mut d = full.clone();
            d[at] = b;
            let decoded = decode(&d);
            assert_eq!(
                decode_ref(&d, &Arena::new()).map(|r| r.to_unit()),
                decoded,
                "byte {at} set to {b:#04x}"
            );
            if let Ok(u) = decoded {
                assert_eq!(encode(&u), d, "byte {at} set to {b:#04x}");
            }
        }
    }
}

#[test]
fn decode_bytes_shares_storage() {
    let u = p("[`a long enough string to be worth sharing` x\"00112233445566778899\"]");
    let d = Bytes::from(encode(&u));
    let range = d.as_ptr() as usize..d.as_ptr() as usize + d.len();
    let back = decode_bytes(d.clone()).unwrap();
    assert_eq!(back, u);
    let Unit::List(items) = back else { panic!() };
    let (Unit::Str(s), Unit::Bytes(b)) = (&items[0], &items[1]) else {
        panic!()
    };
    assert!(range.contains(&(s.as_bytes().as_ptr() as usize)));
    assert!(range.contains(&(b.as_ptr() as usize)));
}

#[test]
fn decoded_big_ints_equal_built_ones() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    let hash = |u: &Unit| {
        let mut h = DefaultHasher::new();
        u.hash(&mut h);
        h.finish()
    };
    let texts = [
        "18446744073709551616",
        "-18446744073709551617",
        "-18446744073709551616",
        "9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890123456789012345678901234567890",
        "-123456789012345678901234567890123456789012345678901234567890",
    ];
    for text in texts {
        let n: BigInt = text.parse().unwrap();
        let built = Unit::Int(Int::from(n.clone()));
        let parsed = p(text);
        let decoded = decode_bytes(Bytes::from(encode(&built))).unwrap();
        assert_eq!(parsed, built, "{text}");
        assert_eq!(decoded, built, "{text}");
        assert_eq!(hash(&decoded), hash(&built), "{text}");
        assert_eq!(hash(&parsed), hash(&built), "{text}");
        let Unit::Int(i) = &decoded else {
            panic!("{text}: not an int")
        };
        assert_eq!(i.to_bigint(), n);
        assert_eq!(i.to_string(), text);
        assert_eq!(i.is_negative(), text.starts_with('-'));
    }
    // Ordering across sizes and signs, as for the values.
    let mut values: Vec<BigInt> = texts.iter().map(|t| t.parse().unwrap()).collect();
    values.extend([0, 1, -1, i64::MAX, i64::MIN].map(BigInt::from));
    let mut units: Vec<Unit> = values
        .iter()
        .map(|v| decode(&encode(&Unit::Int(Int::from(v.clone())))).unwrap())
        .collect();
    units.sort();
    values.sort();
    let sorted: Vec<BigInt> = units
        .iter()
        .map(|u| u.as_int().unwrap().to_bigint())
        .collect();
    assert_eq!(sorted, values);
}

#[test]
fn decimals_have_one_representation() {
    // Mantissas that fit an i64 and those that do not, built every way, compare and hash alike.
    let big: BigInt = "123456789012345678901234567".parse().unwrap();
    let cases = [
        (BigInt::from(150), 2, BigInt::from(15), 1),
        (BigInt::from(-70), 1, BigInt::from(-7), 0),
        (BigInt::from(0), 9, BigInt::from(0), 0),
        (big.clone() * 100u8, 5, big.clone(), 3),
        (BigInt::from(i64::MAX) * 10u8, 1, BigInt::from(i64::MAX), 0),
    ];
    for (m1, s1, m2, s2) in cases {
        let a = Unit::Dec(Dec::new(m1.clone(), s1));
        let b = Unit::Dec(Dec::new(m2.clone(), s2));
        assert_eq!(a, b, "{m1}e-{s1}");
        let decoded = decode(&encode(&a)).unwrap();
        assert_eq!(decoded, b);
        assert_eq!(p(&plexus_units::to_text(&a)), b);
        let Unit::Dec(d) = &decoded else {
            panic!("not a dec")
        };
        assert_eq!((d.mantissa(), d.scale()), (m2.clone(), s2));
        assert_eq!(
            d.to_big_decimal(),
            bigdecimal::BigDecimal::new(m2.clone(), s2)
        );
    }
}
