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

/// `n` messages from 8 authors.
fn messages(n: usize) -> Vec<SignedMessage> {
    let keys: Vec<Keypair> = (0..8)
        .map(|i| Keypair::generate(KeyKind::User, &format!("user{i}"), &mut OsRng).unwrap())
        .collect();
    (0..n)
        .map(|i| SignedMessage::sign(body(), &keys[i % 8], T + i as u64, &mut OsRng).unwrap())
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
    let batch = messages(64);
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
    let msgs = messages(4096);
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
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "batch-64 verify: {:.1} µs/msg vs single {:.1} µs/msg = {:.2}× (target ≥ 1.8×) over {} messages",
        us(batch),
        us(single),
        us(single) / us(batch),
        msgs.len()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    summary();
}
