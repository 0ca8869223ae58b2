//! Batch verification says exactly what single verification says, message by message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::{Add, Mul};

use ed25519_dalek::{Digest, Sha512, Signature, VerifyingKey};
use plexus_identity::{verify_batch, KeyKind, Keypair, PublicKey, SignedMessage, VerifyError};
use plexus_units::{parse, Unit};
use rand::rngs::OsRng;

const T: u64 = 1_790_000_000_000;

fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| Keypair::generate(KeyKind::User, &format!("u{i}"), &mut OsRng).unwrap())
        .collect()
}

fn body(i: usize) -> Unit {
    parse(&format!("{{mul:[{i} {{inc:4}} (sub (10 3))]}}@math.calc")).unwrap()
}

fn messages(n: usize) -> Vec<SignedMessage> {
    let ks = keys(4);
    (0..n)
        .map(|i| SignedMessage::sign(body(i), &ks[i % 4], T + i as u64, &mut OsRng).unwrap())
        .collect()
}

/// Single verification of each message, checked against ed25519-dalek's `verify_strict`
/// (which ours must agree with while taking a shorter path).
fn singles(ms: &[SignedMessage]) -> Vec<Result<(), VerifyError>> {
    ms.iter()
        .map(|m| {
            let got = m.verify();
            let strict = VerifyingKey::from_bytes(m.author().as_bytes())
                .unwrap()
                .verify_strict(&m.hash(), &Signature::from_bytes(m.signature()));
            assert_eq!(
                got.is_ok(),
                strict.is_ok(),
                "{got:?} vs verify_strict {strict:?}"
            );
            got
        })
        .collect()
}

fn with_signature(m: &SignedMessage, author: PublicKey, sig: [u8; 64]) -> SignedMessage {
    SignedMessage::from_parts(m.body().clone(), author, m.time_ms(), *m.nonce(), sig).unwrap()
}

/// The eight points of small order, as public keys.
fn small_order_keys() -> Vec<PublicKey> {
    let t8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";
    let bytes: [u8; 32] =
        core::array::from_fn(|i| u8::from_str_radix(&t8[2 * i..2 * i + 2], 16).unwrap());
    let p = VerifyingKey::from_bytes(&bytes).unwrap().to_edwards();
    let mut acc = p;
    (0..8)
        .map(|_| {
            let k = PublicKey::from_bytes(&acc.compress().to_bytes()).unwrap();
            acc += p;
            k
        })
        .collect()
}

/// `bytes` (little-endian) reduced mod ℓ, in the scalar type of `template`.
fn reduce<S>(template: &S, bytes: &[u8]) -> S
where
    S: From<u64> + Copy + Mul<Output = S> + Add<Output = S>,
{
    let _ = template;
    let base = S::from(256);
    bytes
        .iter()
        .rev()
        .fold(S::from(0), |acc, &b| acc * base + S::from(u64::from(b)))
}

#[test]
fn batch_of_64_names_the_bad_message() {
    let mut ms = messages(64);
    // Message 37 gets the signature of message 12.
    let stolen = *ms[12].signature();
    ms[37] = with_signature(&ms[37], ms[37].author(), stolen);
    let got = verify_batch(&ms);
    for (i, r) in got.iter().enumerate() {
        if i == 37 {
            assert_eq!(*r, Err(VerifyError::BadSignature));
        } else {
            assert_eq!(*r, Ok(()), "message {i}");
        }
    }
    assert_eq!(got, singles(&ms));
    // References work too.
    let refs: Vec<&SignedMessage> = ms.iter().collect();
    assert_eq!(verify_batch(&refs), got);
}

/// Requests from one client share its key: the batch equation merges that key's terms, which
/// must not let a bad signature hide among the good ones.
#[test]
fn one_author_batch_names_the_bad_messages() {
    let kp = keys(1).remove(0);
    let mut ms: Vec<SignedMessage> = (0..64)
        .map(|i| SignedMessage::sign(body(i), &kp, T + i as u64, &mut OsRng).unwrap())
        .collect();
    // The signature of another message by the same key, and two signatures swapped.
    let stolen = *ms[5].signature();
    ms[20] = with_signature(&ms[20], kp.public(), stolen);
    let (a, b) = (*ms[40].signature(), *ms[41].signature());
    ms[40] = with_signature(&ms[40], kp.public(), b);
    ms[41] = with_signature(&ms[41], kp.public(), a);
    let got = verify_batch(&ms);
    assert_eq!(got, singles(&ms));
    let bad: Vec<usize> = (0..64).filter(|&i| got[i].is_err()).collect();
    assert_eq!(bad, [20, 40, 41]);
    // Every message good: one batch, all accepted.
    let good: Vec<SignedMessage> = (0..200)
        .map(|i| SignedMessage::sign(body(i), &kp, T + i as u64, &mut OsRng).unwrap())
        .collect();
    assert!(verify_batch(&good).iter().all(Result::is_ok));
}

/// Keys repeated in any order, each message with a random flaw or none: the batch says what
/// single verification says.
#[test]
fn parity_with_repeated_keys_in_any_order() {
    let ks = keys(3);
    for round in 0..8u8 {
        let mut batch = Vec::new();
        for i in 0..24usize {
            let pick = (i * 7 + usize::from(round) * 3) % 5 % 3;
            let m = SignedMessage::sign(body(i), &ks[pick], T + i as u64, &mut OsRng).unwrap();
            let mut sig = *m.signature();
            if (i + usize::from(round)) % 11 == 0 {
                sig[33 + i % 30] ^= 1 << (usize::from(round) % 8);
            }
            batch.push(with_signature(&m, m.author(), sig));
        }
        let got = verify_batch(&batch);
        assert_eq!(got, singles(&batch), "round {round}");
    }
}

#[test]
fn all_good_and_empty_batches() {
    assert!(verify_batch::<SignedMessage>(&[]).is_empty());
    for n in [1, 2, 63, 64, 65, 130] {
        let ms = messages(n);
        assert!(verify_batch(&ms).iter().all(Result::is_ok), "{n}");
    }
}

/// With the identity point as key, `R` = identity and `S` = 0 satisfy the cofactorless
/// equation for every message: raw batch verification accepts it. Both our paths must say
/// `WeakKey`, for every small-order key.
#[test]
fn weak_keys_are_refused_by_both_paths() {
    let good = messages(20);
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1; // R = identity, S = 0
    let weak = small_order_keys();
    assert!(weak.iter().all(PublicKey::is_weak));
    let identity = weak.iter().find(|k| k.as_bytes()[0] == 1).copied().unwrap();
    let forged = with_signature(&good[0], identity, forged_sig);
    // What the raw batch verifier does with it:
    assert!(ed25519_dalek::verify_batch(
        &[&forged.hash()[..]],
        &[Signature::from_bytes(&forged_sig)],
        &[VerifyingKey::from_bytes(identity.as_bytes()).unwrap()],
    )
    .is_ok());
    let mut batch = good.clone();
    let mut weak_at = Vec::new();
    for (j, k) in weak.iter().enumerate() {
        let at = 2 * j + 1;
        batch[at] = with_signature(&good[at], *k, forged_sig);
        weak_at.push(at);
    }
    let got = verify_batch(&batch);
    assert_eq!(got, singles(&batch));
    for (i, r) in got.iter().enumerate() {
        if weak_at.contains(&i) {
            assert_eq!(*r, Err(VerifyError::WeakKey), "message {i}");
        } else {
            assert_eq!(*r, Ok(()), "message {i}");
        }
    }
}

/// An honest key's owner can sign with `R` = the identity point (or a non-canonical
/// encoding of a point) so the cofactorless equation holds; `verify_strict` refuses such
/// signatures, raw batch verification accepts them, and ours must refuse them on both paths.
#[test]
fn crafted_nonce_points_are_refused_by_both_paths() {
    let kp = Keypair::generate(KeyKind::User, "mallory", &mut OsRng).unwrap();
    let sk = ed25519_dalek::SigningKey::from_bytes(&kp.secret_bytes());
    let a = sk.to_scalar();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut noncanonical_identity = [0xffu8; 32]; // y = p + 1
    noncanonical_identity[0] = 0xee;
    noncanonical_identity[31] = 0x7f;
    let mut batch = messages(10);
    for (slot, r) in [(3, identity), (7, noncanonical_identity)] {
        let template = SignedMessage::sign(Unit::int(slot as i64), &kp, T, &mut OsRng).unwrap();
        let h = template.hash();
        let k = reduce(
            &a,
            &Sha512::new()
                .chain_update(r)
                .chain_update(kp.public().as_bytes())
                .chain_update(h)
                .finalize(),
        );
        let s = k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(&s.to_bytes());
        let crafted = with_signature(&template, kp.public(), sig);
        let vk = VerifyingKey::from_bytes(kp.public().as_bytes()).unwrap();
        assert!(
            ed25519_dalek::verify_batch(&[&h[..]], &[Signature::from_bytes(&sig)], &[vk]).is_ok(),
            "the raw batch verifier accepts the crafted signature"
        );
        assert!(vk.verify_strict(&h, &Signature::from_bytes(&sig)).is_err());
        batch[slot] = crafted;
    }
    let got = verify_batch(&batch);
    assert_eq!(got, singles(&batch));
    assert_eq!(got[3], Err(VerifyError::BadSignature));
    assert_eq!(got[7], Err(VerifyError::BadSignature));
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 8);
}

#[test]
fn parity_over_corrupted_signatures() {
    let ms = messages(70);
    let mut batch = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let mut sig = *m.signature();
        match i % 7 {
            0 => sig[i % 32] ^= 1 << (i % 8),         // R
            1 => sig[32 + i % 32] ^= 1 << (i % 8),    // S
            2 => sig[63] |= 0xe0,                     // S not reduced
            3 => sig[..32].copy_from_slice(&[0; 32]), // R of small order
            _ => {}
        }
        batch.push(with_signature(m, m.author(), sig));
    }
    let got = verify_batch(&batch);
    assert_eq!(got, singles(&batch));
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 30);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// Any mix of authors and flipped signature bits: the batch says what single
        /// verification says, message by message.
        #[test]
        fn batch_agrees_with_singles(
            plan in proptest::collection::vec((0usize..3, proptest::option::of((0usize..64, 0u8..8))), 1..12)
        ) {
            let ks = keys(3);
            let batch: Vec<SignedMessage> = plan
                .iter()
                .enumerate()
                .map(|(i, (author, flaw))| {
                    let m = SignedMessage::sign(body(i), &ks[*author], T + i as u64, &mut OsRng)
                        .unwrap();
                    let mut sig = *m.signature();
                    if let Some((byte, bit)) = flaw {
                        sig[*byte] ^= 1 << bit;
                    }
                    with_signature(&m, m.author(), sig)
                })
                .collect();
            let got = verify_batch(&batch);
            prop_assert_eq!(&got, &singles(&batch));
            for (r, (_, flaw)) in got.iter().zip(&plan) {
                prop_assert_eq!(r.is_ok(), flaw.is_none());
            }
        }
    }
}
