//! Property tests: hostile input never panics; signing round-trips for any body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::{
    KdfParams, KeyFile, KeyKind, Keypair, PublicIdentity, PublicKey, SignedMessage,
};
use plexus_units::{Map, Unit};
use proptest::prelude::*;
use rand::rngs::OsRng;

fn alice() -> Keypair {
    Keypair::from_secret_bytes(KeyKind::User, "alice", &[5u8; 32]).unwrap()
}

fn sample_message() -> Vec<u8> {
    let body = plexus_units::parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap();
    SignedMessage::sign(body, &alice(), 1_790_000_000_000, &mut OsRng)
        .unwrap()
        .to_bytes()
}

fn sample_key_files() -> Vec<String> {
    let kp = alice();
    vec![
        KeyFile::from_keypair(&kp, None, &mut OsRng)
            .unwrap()
            .to_text(),
        KeyFile::from_keypair_with(
            &kp,
            Some("pw"),
            KdfParams::new(8, 1, 1).unwrap(),
            &mut OsRng,
        )
        .unwrap()
        .to_text(),
        kp.public_identity(),
    ]
}

/// Simple bodies: none, bools, ints, strings, bytes, and lists, pairs and maps of them.
fn body() -> impl Strategy<Value = Unit> {
    let leaf = prop_oneof![
        Just(Unit::None),
        any::<bool>().prop_map(Unit::Bool),
        any::<i64>().prop_map(Unit::int),
        "\\PC{0,12}".prop_map(|s: String| Unit::str(&s)),
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|b| Unit::Bytes(bytes::Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Unit::List),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Unit::pair(a, b)),
            proptest::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(Unit::str(&k), v);
                }
                Unit::Map(m)
            }),
        ]
    })
}

/// Applies byte edits (position, new value) and a truncation to `base`.
fn mutate(base: &[u8], edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = v;
        }
    }
    b.truncate(keep.max(1));
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn message_from_bytes_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = SignedMessage::from_bytes(&input);
    }

    #[test]
    fn mutated_messages_never_panic_and_never_verify(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        keep in 0usize..400,
    ) {
        let base = sample_message();
        let input = mutate(&base, &edits, keep);
        if let Ok(m) = SignedMessage::from_bytes(&input) {
            if input != base {
                prop_assert!(m.verify().is_err());
            }
        }
    }

    #[test]
    fn key_file_parse_never_panics(text in "\\PC{0,200}") {
        let _ = KeyFile::parse(&text);
        let _ = PublicIdentity::parse(&text);
        let _ = text.parse::<PublicKey>();
    }

    #[test]
    fn mutated_key_files_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), 0x20u8..0x7f), 1..4),
        keep in 0usize..600,
    ) {
        let base = sample_key_files().swap_remove(which);
        let input = String::from_utf8(mutate(base.as_bytes(), &edits, keep)).unwrap();
        if let Ok(f) = KeyFile::parse(&input) {
            // Unlocking a mutated file may fail, but must not panic. Its KDF parameters are
            // bounded; skip ones that would make the test slow.
            if f.kdf_params().is_none_or(|p| p.m_kib() <= 4096 && p.t() <= 4) {
                let _ = f.unlock(Some("pw"));
            }
        }
        let _ = PublicIdentity::parse(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn sign_encode_decode_verify(body in body(), time in 0u64..=i64::MAX as u64) {
        let kp = alice();
        let m = SignedMessage::sign(body.clone(), &kp, time, &mut OsRng).unwrap();
        let back = SignedMessage::from_bytes(&m.to_bytes()).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.body(), &body);
        prop_assert_eq!(back.time_ms(), time);
        prop_assert!(back.verify().is_ok());
        prop_assert_eq!(plexus_identity::verify_batch(&[back]), vec![Ok(())]);
    }
}
