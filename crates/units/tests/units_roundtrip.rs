//! Property tests: every unit survives its text, pretty and binary forms; the binary form is
//! canonical and deterministic; the order is total and consistent with equality; hostile text
//! and bytes never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use num_bigint::BigInt;
use plexus_units::testing::{arb_leaf, arb_unit};
use plexus_units::{
    decode, decode_bytes, decode_ref, encode, encode_parts, parse, to_pretty, to_short, to_text,
    Arena, Dec, Unit, SHARED_PART_MIN,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

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
    fn text_round_trip(u in arb_unit()) {
        check_text(&u)?;
    }

    #[test]
    fn pretty_round_trip(u in arb_unit(), step in 0usize..5) {
        let text = to_pretty(&u, step);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        prop_assert_eq!(back, u, "pretty:\n{}", text);
    }

    #[test]
    fn binary_round_trip(u in arb_unit()) {
        check_binary(&u)?;
    }

    /// The parts concatenate to the encoding, and each byte string of `SHARED_PART_MIN` bytes
    /// or more is a part that shares the unit's storage.
    #[test]
    fn parts_concatenate_to_the_encoding(
        u in arb_unit(),
        big in proptest::collection::vec(any::<u8>(), SHARED_PART_MIN - 1..SHARED_PART_MIN + 300),
        at in 0usize..3,
    ) {
        let big = bytes::Bytes::from(big);
        let mut items = vec![u.clone(), u];
        items.insert(at.min(items.len()), Unit::Bytes(big.clone()));
        let whole = Unit::List(vec![Unit::List(items), Unit::Bytes(big.clone())]);
        for unit in [&whole, &Unit::Bytes(big.clone())] {
            let parts = encode_parts(unit);
            prop_assert_eq!(parts.concat(), encode(unit));
            let shared = parts.iter().filter(|p| p.as_ptr() == big.as_ptr()).count();
            prop_assert_eq!(shared > 0, big.len() >= SHARED_PART_MIN);
        }
    }

    #[test]
    fn short_form_never_panics(u in arb_unit(), n in 0usize..40) {
        let short = to_short(&u, n);
        if n >= 1 && to_text(&u).chars().count() <= n {
            // Nothing to cut: short form of a small scalar is its text.
            if !matches!(u, Unit::List(_) | Unit::Map(_) | Unit::Pair(_) | Unit::Stream(_)) {
                prop_assert_eq!(short, to_text(&u));
            }
        }
    }

    #[test]
    fn order_is_total_and_consistent(a in arb_unit(), b in arb_unit(), c in arb_unit()) {
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
    fn sorting_gives_a_chain(mut v in prop::collection::vec(prop_oneof![close_unit(), arb_leaf()], 0..24)) {
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
        u in arb_unit(),
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
        u in arb_unit(),
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
