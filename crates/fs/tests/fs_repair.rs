//! A seeded simulation of chunk repair: nodes go down, come back with their disks, and leave the
//! roster, while the leader's repair ([`plan`]) and each node's sweep ([`sweep`]) run every
//! step, as the `io.fs` service runs them. Checked at every step: the metadata never lists a
//! copy that is not on its node's disk, and no chunk is lost while at most two nodes are down
//! at once; once the failures stop, every chunk has R copies that count, and no disk keeps a
//! copy the metadata does not list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use plexus_fs::replicas::{plan, sweep, NodeState, Nodes, Repair, Sweep};

const GRACE_MS: u64 = 30_000;
const STEP_MS: u64 = 5_000;

/// xorshift64*: a small deterministic generator, so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Machine {
    /// `Some(since)` while down.
    down_since: Option<u64>,
    disk: BTreeSet<[u8; 32]>,
}

struct Sim {
    now: u64,
    machines: BTreeMap<String, Machine>,
    /// The metadata: each chunk's listed homes.
    homes: BTreeMap<[u8; 32], Vec<String>>,
    /// Copies repair made, and nodes that left the roster.
    copied: usize,
    removed: usize,
}

impl Sim {
    fn new(nodes: usize, chunks: u32) -> Sim {
        let mut sim = Sim {
            now: 0,
            machines: (1..=nodes)
                .map(|i| {
                    let m = Machine {
                        down_since: None,
                        disk: BTreeSet::new(),
                    };
                    (format!("n{i}"), m)
                })
                .collect(),
            homes: BTreeMap::new(),
            copied: 0,
            removed: 0,
        };
        for c in 0..chunks {
            let hash = *blake3::hash(&c.to_le_bytes()).as_bytes();
            let picture = sim.picture();
            let homes = picture.choose(&hash, 1 << 20, picture.target(), &[]);
            for h in &homes {
                sim.machines.get_mut(h).unwrap().disk.insert(hash);
            }
            sim.homes.insert(hash, homes);
        }
        sim
    }

    fn picture(&self) -> Nodes {
        let mut nodes = Nodes::new(GRACE_MS);
        for (name, m) in &self.machines {
            let state = match m.down_since {
                None => NodeState::up(Some(100 << 30)),
                Some(since) => NodeState::down(self.now - since),
            };
            nodes.insert(name.clone(), state);
        }
        nodes
    }

    fn down(&self) -> Vec<String> {
        self.machines
            .iter()
            .filter(|(_, m)| m.down_since.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn event(&mut self, rng: &mut Rng) {
        let down = self.down();
        match rng.below(10) {
            0 | 1 if down.len() < 2 => {
                let up: Vec<String> = self
                    .machines
                    .iter()
                    .filter(|(_, m)| m.down_since.is_none())
                    .map(|(n, _)| n.clone())
                    .collect();
                let victim = &up[rng.below(up.len() as u64) as usize];
                self.machines.get_mut(victim).unwrap().down_since = Some(self.now);
            }
            2 if !down.is_empty() => {
                let back = &down[rng.below(down.len() as u64) as usize];
                self.machines.get_mut(back).unwrap().down_since = None;
            }
            3 if !down.is_empty() && self.machines.len() > 4 => {
                let gone = down[rng.below(down.len() as u64) as usize].clone();
                self.machines.remove(&gone);
                self.removed += 1;
            }
            _ => {}
        }
    }

    /// The leader's repair pass, then every up node's sweep.
    fn duties(&mut self) {
        let picture = self.picture();
        let hashes: Vec<[u8; 32]> = self.homes.keys().copied().collect();
        for hash in &hashes {
            let homes = self.homes[hash].clone();
            match plan(hash, 1 << 20, &homes, &picture) {
                Repair::Copy { from, to, drop } => {
                    let source = from.iter().find(|n| {
                        self.machines
                            .get(*n)
                            .is_some_and(|m| m.down_since.is_none() && m.disk.contains(hash))
                    });
                    assert!(source.is_some(), "a live home without the chunk");
                    let listed = self.homes.get_mut(hash).unwrap();
                    for target in &to {
                        self.machines.get_mut(target).unwrap().disk.insert(*hash);
                        listed.push(target.clone());
                        self.copied += 1;
                    }
                    listed.retain(|h| !drop.contains(h));
                }
                Repair::Forget { drop } => {
                    self.homes
                        .get_mut(hash)
                        .unwrap()
                        .retain(|h| !drop.contains(h));
                }
                Repair::Enough | Repair::Wait | Repair::Stuck => {}
                Repair::Lost => panic!("chunk lost with at most two nodes down"),
            }
        }
        let picture = self.picture();
        for (name, machine) in self.machines.iter_mut() {
            if machine.down_since.is_some() {
                continue;
            }
            let held: Vec<[u8; 32]> = machine.disk.iter().copied().collect();
            for hash in held {
                let homes = self.homes.get(&hash).map(Vec::as_slice);
                match sweep(name, homes, true, &picture) {
                    Sweep::Keep => {}
                    Sweep::Delete => {
                        machine.disk.remove(&hash);
                    }
                    Sweep::Register => self.homes.get_mut(&hash).unwrap().push(name.clone()),
                }
            }
        }
    }

    fn check_listed_copies_exist(&self) {
        for (hash, homes) in &self.homes {
            for home in homes {
                if let Some(m) = self.machines.get(home) {
                    assert!(m.disk.contains(hash), "{home} is listed without the chunk");
                }
            }
            let held = self
                .machines
                .values()
                .filter(|m| m.disk.contains(hash))
                .count();
            assert!(held > 0, "a chunk is on no disk");
        }
    }
}

/// Runs one seed; gives (copies made, nodes removed).
fn run(seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut sim = Sim::new(6, 60);
    for _ in 0..200 {
        sim.now += STEP_MS;
        sim.event(&mut rng);
        sim.duties();
        sim.check_listed_copies_exist();
    }
    // The failures stop; down nodes stay down past the grace period.
    for _ in 0..(GRACE_MS / STEP_MS + 3) {
        sim.now += STEP_MS;
        sim.duties();
        sim.check_listed_copies_exist();
    }
    let picture = sim.picture();
    let target = picture.target();
    for (hash, homes) in &sim.homes {
        assert_eq!(
            plan(hash, 1 << 20, homes, &picture),
            Repair::Enough,
            "seed {seed}"
        );
        assert_eq!(homes.len(), target, "seed {seed}: {homes:?}");
    }
    for (name, m) in &sim.machines {
        if m.down_since.is_none() {
            for hash in &m.disk {
                assert!(
                    sim.homes[hash].contains(name),
                    "seed {seed}: {name} keeps an unlisted copy"
                );
            }
        }
    }
    (sim.copied, sim.removed)
}

#[test]
fn repair_keeps_every_chunk_through_random_failures() {
    let (mut copied, mut removed) = (0, 0);
    for seed in 1..=30 {
        let (c, r) = run(seed);
        copied += c;
        removed += r;
    }
    // The seeds exercise what they are meant to.
    println!("{copied} copies, {removed} removals");
    assert!(
        copied > 1000 && removed > 20,
        "{copied} copies, {removed} removals"
    );
}
