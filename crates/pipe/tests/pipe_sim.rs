//! Seeded simulation of pipes over a transport that loses, repeats, delays and reorders
//! frames and acknowledgements: every byte arrives once and in order, the end of stream
//! follows the last byte, no end holds more than the window, and a consumer that leaves
//! stops the producer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]

use bytes::Bytes;
use plexus_pipe::{Config, Format, Frame, Inlet, Outlet, Receiver, Sender, Share, State};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A transport of one direction: messages wait a random delay, some are lost or repeated.
struct Wire<T> {
    queue: Vec<(u64, T)>,
    loss: f64,
    repeat: f64,
    max_delay: u64,
}

impl<T: Clone> Wire<T> {
    fn new(rng: &mut StdRng) -> Wire<T> {
        Wire {
            queue: Vec::new(),
            loss: rng.gen_range(0.0..0.3),
            repeat: rng.gen_range(0.0..0.2),
            max_delay: rng.gen_range(0..40),
        }
    }

    fn send(&mut self, rng: &mut StdRng, now: u64, msg: T) {
        if rng.gen_bool(self.loss) {
            return;
        }
        let copies = if rng.gen_bool(self.repeat) { 2 } else { 1 };
        for _ in 0..copies {
            let at = now + rng.gen_range(0..=self.max_delay);
            self.queue.push((at, msg.clone()));
        }
    }

    fn due(&mut self, now: u64) -> Vec<T> {
        let (due, later): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|(at, _)| *at <= now);
        self.queue = later;
        due.into_iter().map(|(_, m)| m).collect()
    }
}

struct Run {
    sent: Vec<u8>,
    got: Vec<u8>,
    sender: State,
    receiver: State,
    most_held: u64,
}

/// Pushes `data` through one pipe; the consumer takes at most `pace` bytes a tick and leaves
/// after `leave_after` bytes when given.
fn run(seed: u64, data: Vec<u8>, window: u64, pace: usize, leave_after: Option<usize>) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let config = Config {
        window,
        max_frame: rng.gen_range(1..=64),
        retransmit_ms: 50,
    };
    let mut tx = Sender::new(config);
    let mut rx = Receiver::new(config);
    let mut frames: Wire<Frame> = Wire::new(&mut rng);
    let mut acks = Wire::new(&mut rng);
    let mut rest = Bytes::from(data.clone());
    let mut got = Vec::new();
    let mut most_held = 0;
    let mut pending: Option<Bytes> = None;
    for now in 0..200_000u64 {
        if !rest.is_empty() {
            let n = rng.gen_range(0..=rest.len().min(100));
            let mut piece = rest.slice(..n);
            let took = tx.push(&mut piece);
            let _ = rest.split_to(took);
        }
        if rest.is_empty() {
            tx.finish();
        }
        tx.handle_timeout(now);
        while let Some(f) = tx.poll_transmit(now) {
            frames.send(&mut rng, now, f);
        }
        for f in frames.due(now) {
            let _ = rx.on_frame(f);
            acks.send(&mut rng, now, rx.ack());
        }
        // The consumer: writes what it has at its pace, then releases it.
        let mut budget = pace;
        while budget > 0 {
            let piece = match pending.take() {
                Some(p) => p,
                None => match rx.read() {
                    Some(p) => p,
                    None => break,
                },
            };
            let n = piece.len().min(budget);
            got.extend_from_slice(&piece[..n]);
            rx.release(n as u64);
            budget -= n;
            if n < piece.len() {
                pending = Some(piece.slice(n..));
            }
        }
        if leave_after.is_some_and(|l| got.len() >= l) {
            rx.close();
        }
        if now % 7 == 0 {
            acks.send(&mut rng, now, rx.ack());
        }
        for a in acks.due(now) {
            tx.on_ack(&a, now).expect("an honest receiver's ack");
        }
        most_held = most_held.max(tx.buffered()).max(rx.buffered());
        if *tx.state() != State::Open && *rx.state() != State::Open {
            break;
        }
    }
    Run {
        sent: data,
        got,
        sender: tx.state().clone(),
        receiver: rx.state().clone(),
        most_held,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_byte_once_in_order_then_the_end(
        seed in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        window in 1u64..512,
        pace in 1usize..200,
    ) {
        let r = run(seed, data, window, pace, None);
        prop_assert_eq!(&r.got, &r.sent);
        prop_assert_eq!(r.sender, State::Finished);
        prop_assert_eq!(r.receiver, State::Finished);
        prop_assert!(r.most_held <= window, "held {} with a window of {}", r.most_held, window);
    }

    #[test]
    fn a_consumer_that_leaves_stops_the_producer(
        seed in any::<u64>(),
        window in 1u64..256,
        leave in 0usize..1000,
    ) {
        let data = vec![b'y'; 5000];
        let r = run(seed, data, window, 50, Some(leave));
        prop_assert_eq!(r.sender, State::Closed);
        prop_assert!(r.got.len() >= leave && r.got.len() < 5000);
        prop_assert!(r.sent.starts_with(&r.got));
    }
}

/// A split over replicas of different speeds, then a merge of their outputs: every record
/// arrives whole, once, and the fast replica takes more.
#[test]
fn split_then_merge_keeps_records_whole() {
    let config = Config {
        window: 256,
        max_frame: 32,
        retransmit_ms: 50,
    };
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("record {i} {}\n", "x".repeat(i % 37)))
        .collect();
    let mut outlet = Outlet::new(config, 2, Share::Split(Format::Raw));
    let mut replicas = [
        Inlet::new(config, 1, Format::Raw),
        Inlet::new(config, 1, Format::Raw),
    ];
    let speeds = [400usize, 40];
    let mut taken = [Vec::<u8>::new(), Vec::new()];
    let mut input = lines.concat().into_bytes();
    let mut now = 0;
    loop {
        now += 1;
        if outlet.wants_input() && !input.is_empty() {
            let n = input.len().min(2000);
            let chunk: Vec<u8> = input.drain(..n).collect();
            outlet.input(Bytes::from(chunk)).unwrap();
            if input.is_empty() {
                outlet.end_input().unwrap();
            }
        }
        for i in 0..2 {
            while let Some(f) = outlet.senders()[i].poll_transmit(now) {
                replicas[i].receivers()[0].on_frame(f).unwrap();
            }
            let mut budget = speeds[i];
            while budget > 0 {
                let Some(p) = replicas[i].next_piece() else {
                    break;
                };
                budget = budget.saturating_sub(p.bytes.len());
                taken[i].extend_from_slice(&p.bytes);
                replicas[i].written(&p);
            }
            let ack = replicas[i].receivers()[0].ack();
            outlet.senders()[i].on_ack(&ack, now).unwrap();
        }
        outlet.pump();
        if outlet.is_done() || now > 100_000 {
            break;
        }
    }
    assert!(outlet.is_done());
    // Merge the two replicas' outputs into one consumer.
    let mut merge = Inlet::new(config, 2, Format::Raw);
    let mut producers = [
        Outlet::new(config, 1, Share::All),
        Outlet::new(config, 1, Share::All),
    ];
    let mut rest = [Bytes::from(taken[0].clone()), Bytes::from(taken[1].clone())];
    let mut merged = Vec::<String>::new();
    for now in 0..100_000u64 {
        for i in 0..2 {
            if producers[i].wants_input() {
                if rest[i].is_empty() {
                    producers[i].end_input().unwrap();
                } else {
                    let n = rest[i].len().min(7 + i * 13);
                    producers[i].input(rest[i].split_to(n)).unwrap();
                }
            }
            while let Some(f) = producers[i].senders()[0].poll_transmit(now) {
                merge.receivers()[i].on_frame(f).unwrap();
            }
        }
        while let Some(p) = merge.next_piece() {
            merged.push(String::from_utf8(p.bytes.to_vec()).unwrap());
            merge.written(&p);
        }
        for i in 0..2 {
            let ack = merge.receivers()[i].ack();
            producers[i].senders()[0].on_ack(&ack, now).unwrap();
            producers[i].pump();
        }
        if merge.at_end() {
            break;
        }
    }
    assert!(merge.at_end());
    assert!(
        taken[0].len() > taken[1].len() * 2,
        "the fast replica takes more: {} against {}",
        taken[0].len(),
        taken[1].len()
    );
    let mut want = lines.clone();
    want.sort();
    merged.sort();
    assert_eq!(merged, want);
}
