//! The ed25519 batch equation, with the terms of a key that signed several messages merged.
//!
//! For signatures `(R_i, s_i)` by keys `A_i` over messages `M_i`, with `k_i = H(R_i ‖ A_i ‖ M_i)`
//! and random 128-bit weights `z_i`, every signature holds (cofactorless, as single
//! verification) only if, barring a chance of 2^-128,
//!
//! ```text
//! −(∑ z_i s_i) B + ∑ z_i R_i + ∑_A (∑_{i: A_i = A} z_i k_i) A = 0
//! ```
//!
//! `ed25519_dalek::verify_batch` computes the same sum with one term per signature for the keys;
//! summing the coefficients of equal keys first gives the same point with fewer terms. A client
//! sending many requests signs them all with one key, so a batch of `n` of its requests needs
//! `n + 2` points instead of `2n + 1`: the multiscalar multiplication, most of the work, about
//! halves.
//!
//! The weights come from BLAKE3 over fresh randomness and every input, so a signer cannot know
//! them when signing.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};

/// The key derivation context of the weights.
const WEIGHT_CONTEXT: &str = "plexus 2026-12 batch weights";

/// One signature to check: the key, the 64-byte signature `R ‖ s`, the signed bytes.
pub(crate) type Entry<'a> = (&'a VerifyingKey, &'a [u8; 64], &'a [u8]);

/// Whether the batch equation holds for all of `entries`. `false` means at least one signature
/// is bad (or malformed: `s` not canonical, `R` not a point); the caller then checks them one by
/// one to say which.
pub(crate) fn holds(entries: &[Entry<'_>]) -> bool {
    let mut seed = [0u8; 32];
    if OsRng.try_fill_bytes(&mut seed).is_err() {
        return false;
    }
    let mut weights = blake3::Hasher::new_derive_key(WEIGHT_CONTEXT);
    weights.update(&seed);
    let mut rs = Vec::with_capacity(entries.len());
    let mut ss = Vec::with_capacity(entries.len());
    let mut ks = Vec::with_capacity(entries.len());
    for (key, sig, msg) in entries {
        let (r_bytes, s_bytes) = sig.split_at(32);
        let mut r = [0u8; 32];
        r.copy_from_slice(r_bytes);
        let mut s = [0u8; 32];
        s.copy_from_slice(s_bytes);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let Some(r_point) = CompressedEdwardsY(r).decompress() else {
            return false;
        };
        let k: [u8; 64] = Sha512::new()
            .chain_update(r)
            .chain_update(key.as_bytes())
            .chain_update(msg)
            .finalize()
            .into();
        // k covers R, A and the message; the signature covers s.
        weights.update(&k);
        weights.update(&sig[..]);
        rs.push(r_point);
        ss.push(s);
        ks.push(Scalar::from_bytes_mod_order_wide(&k));
    }
    let mut weights = weights.finalize_xof();
    let mut b_coefficient = Scalar::ZERO;
    let mut zs = Vec::with_capacity(entries.len());
    // (key bytes, point, coefficient): batches hold few distinct keys, so a list is enough.
    let mut keys: Vec<(&[u8; 32], EdwardsPoint, Scalar)> = Vec::new();
    for (i, (key, _, _)) in entries.iter().enumerate() {
        let mut z = [0u8; 16];
        weights.fill(&mut z);
        let z = Scalar::from(u128::from_le_bytes(z));
        b_coefficient += z * ss[i];
        let zk = z * ks[i];
        match keys
            .iter_mut()
            .find(|(bytes, _, _)| *bytes == key.as_bytes())
        {
            Some((_, _, c)) => *c += zk,
            None => keys.push((key.as_bytes(), key.to_edwards(), zk)),
        }
        zs.push(z);
    }
    let scalars = std::iter::once(-b_coefficient)
        .chain(zs)
        .chain(keys.iter().map(|(_, _, c)| *c));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(rs)
        .chain(keys.iter().map(|(_, p, _)| *p));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}
