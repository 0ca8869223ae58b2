//! Differential fuzzing of batch verification: valid messages from three authors, changed by
//! the input (bits flipped, signatures swapped or copied, authors replaced, small-order nonce
//! points, non-canonical scalars), must get from `verify_batch` exactly what single
//! verification says of each.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use plexus_identity::{verify_batch, KeyKind, Keypair, PublicKey, SignedMessage};
use plexus_units::Unit;
use rand_core::{CryptoRng, RngCore};

/// A deterministic generator, so that a failing input reproduces exactly.
struct Counter(u64);

impl RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Counter {}

const MESSAGES: usize = 16;

fn valid() -> &'static (Vec<SignedMessage>, Vec<PublicKey>) {
    static VALID: OnceLock<(Vec<SignedMessage>, Vec<PublicKey>)> = OnceLock::new();
    VALID.get_or_init(|| {
        let keys: Vec<Keypair> = (0..3u8)
            .map(|i| Keypair::from_secret_bytes(KeyKind::User, "fuzz", &[i + 1; 32]).unwrap())
            .collect();
        let mut rng = Counter(7);
        let msgs = (0..MESSAGES)
            .map(|i| {
                SignedMessage::sign(
                    Unit::int(i as i64),
                    &keys[i % 3],
                    1_790_000_000_000 + i as u64,
                    &mut rng,
                )
                .unwrap()
            })
            .collect();
        (msgs, keys.iter().map(Keypair::public).collect())
    })
}

fn rebuild(m: &SignedMessage, author: PublicKey, sig: [u8; 64]) -> SignedMessage {
    SignedMessage::from_parts(m.body().clone(), author, m.time_ms(), *m.nonce(), sig).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let (valid, authors) = valid();
    let Some((&n, ops)) = data.split_first() else {
        return;
    };
    let n = 1 + usize::from(n) % MESSAGES;
    let mut msgs: Vec<SignedMessage> = valid[..n].to_vec();
    for op in ops.chunks_exact(3) {
        let i = usize::from(op[0]) % n;
        let j = usize::from(op[2]) % n;
        let m = &msgs[i];
        let mut sig = *m.signature();
        let mut author = m.author();
        match op[1] % 6 {
            0 => sig[usize::from(op[2]) % 64] ^= 1 << (op[1] / 6 % 8),
            1 => {
                let other = *msgs[j].signature();
                msgs[j] = rebuild(&msgs[j], msgs[j].author(), sig);
                sig = other;
            }
            2 => sig = *msgs[j].signature(),
            3 => author = authors[usize::from(op[2]) % authors.len()],
            4 => {
                // R of small order: the identity, or the point of order 2.
                let mut r = [0u8; 32];
                if op[2] % 2 == 0 {
                    r[0] = 1;
                } else {
                    r = [0xff; 32];
                    r[0] = 0xec;
                    r[31] = 0x7f;
                }
                sig[..32].copy_from_slice(&r);
            }
            _ => {
                // s + ℓ: the same scalar, not reduced.
                const L: [u8; 32] = [
                    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde,
                    0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                ];
                let mut carry = 0u16;
                for k in 0..32 {
                    let v = u16::from(sig[32 + k]) + u16::from(L[k]) + carry;
                    sig[32 + k] = v as u8;
                    carry = v >> 8;
                }
            }
        }
        msgs[i] = rebuild(&msgs[i], author, sig);
    }
    let batch = verify_batch(&msgs);
    let singles: Vec<_> = msgs.iter().map(SignedMessage::verify).collect();
    assert_eq!(batch, singles);
});
