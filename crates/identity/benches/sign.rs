//! Signing and verification costs, and the batch-verification speedup measured in the same
//! run: `cargo bench -p plexus-identity --bench sign`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use plexus_identity::{verify_batch, KeyKind, Keypair, SignedMessage};
use plexus_units::{parse, Unit};
use rand::rngs::OsRng;

const T: u64 = 1_790_000_000_000;

fn body() -> Unit {
    parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap()
}

/// `n` messages from `authors` authors, in turn.
fn messages(n: usize, authors: usize) -> Vec<SignedMessage> {
    let keys: Vec<Keypair> = (0..authors)
        .map(|i| Keypair::generate(KeyKind::User, &format!("user{i}"), &mut OsRng).unwrap())
        .collect();
    (0..n)
        .map(|i| SignedMessage::sign(body(), &keys[i % authors], T + i as u64, &mut OsRng).unwrap())
        .collect()
}

fn benches(c: &mut Criterion) {
    let kp = Keypair::generate(KeyKind::User, "alice", &mut OsRng).unwrap();
    c.bench_function("sign", |b| {
        b.iter_batched(
            body,
            |u| SignedMessage::sign(u, &kp, T, &mut OsRng).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let one = SignedMessage::sign(body(), &kp, T, &mut OsRng).unwrap();
    let bytes = one.to_bytes();
    c.bench_function("from_bytes", |b| {
        b.iter(|| SignedMessage::from_bytes(black_box(&bytes)).unwrap())
    });
    c.bench_function("verify", |b| b.iter(|| black_box(&one).verify().unwrap()));
    let batch = messages(64, 8);
    let mut g = c.benchmark_group("verify_batch");
    g.throughput(Throughput::Elements(64));
    g.bench_function("64", |b| {
        b.iter(|| {
            let r = verify_batch(black_box(&batch));
            assert!(r.iter().all(Result::is_ok));
        })
    });
    g.finish();
}

/// Per-message cost of `f` over all of `msgs`, best of `rounds`.
fn per_message(msgs: &[SignedMessage], rounds: usize, f: impl Fn(&[SignedMessage])) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f(msgs);
            t.elapsed() / msgs.len() as u32
        })
        .min()
        .unwrap()
}

fn summary() {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    // 64 authors: every key appears once in a batch, the equation has no terms to merge.
    for authors in [64, 8, 1] {
        let msgs = messages(4096, authors);
        let single = per_message(&msgs, 3, |ms| {
            for m in ms {
                m.verify().unwrap();
            }
        });
        let batch = per_message(&msgs, 3, |ms| {
            for chunk in ms.chunks(64) {
                assert!(verify_batch(chunk).iter().all(Result::is_ok));
            }
        });
        // ed25519-dalek's own batch equation on the same chunks, without our prechecks.
        let raw = per_message(&msgs, 3, |ms| {
            for chunk in ms.chunks(64) {
                let hashes: Vec<[u8; 32]> = chunk.iter().map(SignedMessage::hash).collect();
                let refs: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
                let sigs: Vec<ed25519_dalek::Signature> = chunk
                    .iter()
                    .map(|m| ed25519_dalek::Signature::from_bytes(m.signature()))
                    .collect();
                let keys: Vec<ed25519_dalek::VerifyingKey> = chunk
                    .iter()
                    .map(|m| {
                        ed25519_dalek::VerifyingKey::from_bytes(m.author().as_bytes()).unwrap()
                    })
                    .collect();
                ed25519_dalek::verify_batch(&refs, &sigs, &keys).unwrap();
            }
        });
        println!(
            "batch-64 verify, {authors:>2} authors: {:.1} µs/msg vs single {:.1} µs/msg = {:.2}× (target ≥ 1.8×); ed25519-dalek's batch {:.1} µs/msg (keys decoded in it) over {} messages",
            us(batch),
            us(single),
            us(single) / us(batch),
            us(raw),
            msgs.len()
        );
    }
}

/// Small batches of one author, as a node sees them from a few clients with one call in flight
/// each.
fn small_batches() {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let msgs = messages(4096, 1);
    let mut line = String::from("batches of one author:");
    for size in [1, 2, 4, 8, 16] {
        let batch = per_message(&msgs, 3, |ms| {
            for chunk in ms.chunks(size) {
                assert!(verify_batch(chunk).iter().all(Result::is_ok));
            }
        });
        line.push_str(&format!(" {size}: {:.1} µs/msg;", us(batch)));
    }
    println!("{}", line.trim_end_matches(';'));
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    summary();
    small_batches();
}
