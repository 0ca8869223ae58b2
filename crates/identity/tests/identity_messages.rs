//! Signed messages: the pinned format, tampering, strict decoding, replays.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_identity::{
    KeyKind, Keypair, MessageError, ReplayConfig, ReplayError, ReplayGuard, SignedMessage,
    VerifyError, MESSAGE_CONTEXT,
};
use plexus_units::{encode, parse, Unit};
use rand::rngs::OsRng;

/// A deterministic "RNG" that counts up from a start byte, to pin test vectors.
struct Counting(u8);

impl rand_core::RngCore for Counting {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Counting {}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn alice() -> Keypair {
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
    Keypair::from_secret_bytes(KeyKind::User, "alice", &secret).unwrap()
}

fn bob() -> Keypair {
    Keypair::from_secret_bytes(KeyKind::User, "bob", &[9u8; 32]).unwrap()
}

fn calc() -> Unit {
    parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap()
}

const T: u64 = 1_790_000_000_000;

/// The test vector of `docs/identity.md`: if this changes, the format changed.
#[test]
fn test_vector_is_stable() {
    let m = SignedMessage::sign(calc(), &alice(), T, &mut Counting(0xa0)).unwrap();
    assert_eq!(
        hex(alice().public().as_bytes()),
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    );
    assert_eq!(
        alice().public().to_string(),
        "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
    );
    assert_eq!(alice().public().fingerprint(), "98ba8530");
    let signed = "01d486617574686f720a2003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc86\
                  64125531b88474696d650480d8c1a28c34856e6f6e63650a10a0a1a2a3a4a5a6a7a8a9aaabac\
                  adaeaf84626f64790cd1836d756cc342d183696e63440e837375620e4a43096d6174682e63616c63";
    // The signed bytes are the canonical encoding of the unit written below.
    let signed_unit = parse(&format!(
        "{{author:x\"{}\" time:{T} nonce:x\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\" body:{}}}",
        hex(alice().public().as_bytes()),
        plexus_units::to_text(&calc())
    ))
    .unwrap();
    assert_eq!(hex(&encode(&signed_unit)), signed);
    assert_eq!(
        m.hash(),
        blake3::derive_key("plexus 2026-11 message v1", &encode(&signed_unit))
    );
    assert_eq!(MESSAGE_CONTEXT, "plexus 2026-11 message v1");
    assert_eq!(
        hex(&m.hash()),
        "acac15847db129f49aeba9bbfe164327a170cd3dd94c80055ccf7752eced9f92"
    );
    assert_eq!(
        hex(m.signature()),
        "58d030843f3aaf7994164f7e61ca05dc69c5deaaa13e3961517a98b0c36590cb\
         e5c780c8a4fb3e13db5c8b5bbde44e3b83a13582e892a25f3065c8b19cfa2202"
    );
    let bytes = m.to_bytes();
    assert_eq!(hex(&bytes[..2]), "01d5");
    assert_eq!(bytes[2..bytes.len() - 70], hex_decode(signed)[2..]);
    assert_eq!(
        plexus_units::to_text(&m.to_unit()),
        format!(
            "{{author:x\"{}\" time:{T} nonce:x\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\" \
             body:{{mul:[2 {{inc:4}} (sub (10 3))]}}@math.calc sig:x\"{}\"}}",
            hex(alice().public().as_bytes()),
            hex(m.signature())
        )
    );
    m.verify().unwrap();
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn round_trip_through_bytes_and_unit() {
    let m = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    let b = SignedMessage::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(b, m);
    assert_eq!(b.hash(), m.hash());
    b.verify().unwrap();
    assert_eq!(SignedMessage::from_unit(&m.to_unit()).unwrap(), m);
    assert_eq!(b.body(), &calc());
    assert_eq!(b.time_ms(), T);
    assert_eq!(b.author(), alice().public());
}

#[test]
fn equal_bodies_get_distinct_hashes() {
    let a = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    let b = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    assert_ne!(a.nonce(), b.nonce());
    assert_ne!(a.hash(), b.hash());
}

/// Flips every byte of a small encoded message with each of 9 masks (the 8 single bits and
/// all bits): every result is refused by `from_bytes` or by `verify`.
#[test]
fn any_single_byte_flip_is_caught() {
    let m = SignedMessage::sign(Unit::int(7), &alice(), T, &mut OsRng).unwrap();
    let bytes = m.to_bytes();
    let mut decoded_but_refused = 0;
    for pos in 0..bytes.len() {
        for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[pos] ^= mask;
            if let Ok(x) = SignedMessage::from_bytes(&b) {
                assert_ne!(
                    x, m,
                    "flip at {pos} mask {mask:#04x} decoded to the same message"
                );
                assert!(
                    x.verify().is_err(),
                    "flip at {pos} mask {mask:#04x} still verifies"
                );
                decoded_but_refused += 1;
            }
        }
    }
    // Most flips in the fixed-size fields decode fine and must be caught by the signature.
    assert!(decoded_but_refused > 100, "{decoded_but_refused}");
}

#[test]
fn wrong_key_swapped_body_time_or_nonce_fail() {
    let m = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    let with = |body: Unit, author, time, nonce| {
        SignedMessage::from_parts(body, author, time, nonce, *m.signature()).unwrap()
    };
    let a = alice().public();
    let other_nonce = [0u8; 16];
    assert_eq!(
        with(calc(), bob().public(), T, *m.nonce()).verify(),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        with(Unit::int(1), a, T, *m.nonce()).verify(),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        with(calc(), a, T + 1, *m.nonce()).verify(),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        with(calc(), a, T, other_nonce).verify(),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(with(calc(), a, T, *m.nonce()).verify(), Ok(()));
    // A signature moved from another message fails too.
    let n = SignedMessage::sign(Unit::int(1), &alice(), T, &mut OsRng).unwrap();
    let moved = SignedMessage::from_parts(calc(), a, T, *m.nonce(), *n.signature()).unwrap();
    assert_eq!(moved.verify(), Err(VerifyError::BadSignature));
}

fn field_error(u: &str) -> MessageError {
    SignedMessage::from_unit(&parse(u).unwrap()).unwrap_err()
}

#[test]
fn strict_unit_form_names_the_bad_field() {
    let m = SignedMessage::sign(Unit::int(1), &alice(), T, &mut OsRng).unwrap();
    let text = plexus_units::to_text(&m.to_unit());
    let a = hex(alice().public().as_bytes());
    let n = hex(m.nonce());
    let s = hex(m.signature());
    let field = |e: MessageError| match e {
        MessageError::Field { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    };
    assert!(matches!(field_error("[1 2]"), MessageError::NotAMap { .. }));
    // Missing, extra, renamed and reordered keys.
    let missing = text.replace(" body:1", "");
    assert!(matches!(field_error(&missing), MessageError::Keys { .. }));
    let extra = text.replace('}', " x:1}");
    assert!(matches!(field_error(&extra), MessageError::Keys { .. }));
    let reordered = format!("{{time:{T} author:x\"{a}\" nonce:x\"{n}\" body:1 sig:x\"{s}\"}}");
    let e = field_error(&reordered);
    assert!(matches!(e, MessageError::Keys { .. }));
    assert!(
        e.to_string().contains("[time author nonce body sig]"),
        "{e}"
    );
    // Wrong types and sizes.
    let short_author = format!(
        "{{author:x\"{}\" time:{T} nonce:x\"{n}\" body:1 sig:x\"{s}\"}}",
        &a[2..]
    );
    assert_eq!(field(field_error(&short_author)), "author");
    let str_author = format!("{{author:alice time:{T} nonce:x\"{n}\" body:1 sig:x\"{s}\"}}");
    assert_eq!(field(field_error(&str_author)), "author");
    let neg_time = format!("{{author:x\"{a}\" time:-1 nonce:x\"{n}\" body:1 sig:x\"{s}\"}}");
    assert_eq!(field(field_error(&neg_time)), "time");
    let big_time =
        format!("{{author:x\"{a}\" time:9223372036854775808 nonce:x\"{n}\" body:1 sig:x\"{s}\"}}");
    assert_eq!(field(field_error(&big_time)), "time");
    let dec_time = format!("{{author:x\"{a}\" time:1.5 nonce:x\"{n}\" body:1 sig:x\"{s}\"}}");
    assert_eq!(field(field_error(&dec_time)), "time");
    let short_nonce = format!(
        "{{author:x\"{a}\" time:{T} nonce:x\"{}\" body:1 sig:x\"{s}\"}}",
        &n[2..]
    );
    assert_eq!(field(field_error(&short_nonce)), "nonce");
    let long_sig = format!("{{author:x\"{a}\" time:{T} nonce:x\"{n}\" body:1 sig:x\"{s}00\"}}");
    let e = field_error(&long_sig);
    assert!(e.to_string().contains("expected 64 bytes, found 65"), "{e}");
    assert_eq!(field(e), "sig");
    // A non-canonical public key encoding (y = p + 1) is refused.
    let noncanon = format!(
        "{{author:x\"ee{}7f\" time:{T} nonce:x\"{n}\" body:1 sig:x\"{s}\"}}",
        "ff".repeat(30)
    );
    assert_eq!(field(field_error(&noncanon)), "author");
}

#[test]
fn from_bytes_refuses_garbage_and_truncation() {
    let m = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    let bytes = m.to_bytes();
    for len in 0..bytes.len() {
        assert!(
            SignedMessage::from_bytes(&bytes[..len]).is_err(),
            "prefix {len}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        SignedMessage::from_bytes(&trailing),
        Err(MessageError::Decode(_))
    ));
    assert!(SignedMessage::from_bytes(b"hello").is_err());
    assert!(SignedMessage::from_bytes(&encode(&Unit::int(5))).is_err());
}

#[test]
fn replay_and_clock_skew() {
    let mut guard = ReplayGuard::new(ReplayConfig {
        max_age_ms: 60_000,
        max_future_ms: 5_000,
        max_entries: 1000,
    });
    let fresh = SignedMessage::sign(calc(), &alice(), T, &mut OsRng).unwrap();
    fresh.verify().unwrap();
    assert_eq!(guard.check_message(&fresh, T + 10), Ok(()));
    // The same message again, even re-encoded, is a replay.
    let again = SignedMessage::from_bytes(&fresh.to_bytes()).unwrap();
    assert_eq!(
        guard.check_message(&again, T + 20),
        Err(ReplayError::Replayed)
    );
    // Too old and too far ahead (the guard's time is now T + 20).
    let old = SignedMessage::sign(calc(), &alice(), T + 20 - 60_001, &mut OsRng).unwrap();
    assert!(matches!(
        guard.check_message(&old, T),
        Err(ReplayError::TooOld { .. })
    ));
    let ahead = SignedMessage::sign(calc(), &alice(), T + 20 + 5_001, &mut OsRng).unwrap();
    assert!(matches!(
        guard.check_message(&ahead, T),
        Err(ReplayError::TooNew { .. })
    ));
    let skewed = SignedMessage::sign(calc(), &alice(), T + 20 + 5_000, &mut OsRng).unwrap();
    assert_eq!(guard.check_message(&skewed, T), Ok(()));
    // Once outside the window, the old message is refused as too old, not accepted again.
    assert!(matches!(
        guard.check_message(&fresh, T + 120_000),
        Err(ReplayError::TooOld { .. })
    ));
}

#[test]
fn bounded_memory_never_readmits() {
    let mut guard = ReplayGuard::new(ReplayConfig {
        max_age_ms: 1_000_000,
        max_future_ms: 0,
        max_entries: 50,
    });
    let msgs: Vec<SignedMessage> = (0..200)
        .map(|i| SignedMessage::sign(Unit::int(i), &alice(), T + i as u64, &mut OsRng).unwrap())
        .collect();
    for m in &msgs {
        guard.check_message(m, m.time_ms()).unwrap();
        assert!(guard.len() <= 50);
    }
    for m in &msgs {
        assert!(guard.check_message(m, T + 200).is_err());
    }
}
