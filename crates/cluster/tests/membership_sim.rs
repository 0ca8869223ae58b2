#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A deterministic, seeded simulation of SWIM membership: many [`Membership`] instances on a
//! virtual clock, a network model that delivers their packets with seeded random delay, loss,
//! partitions and killed nodes, run event by event (the next delivery or the next deadline).
//!
//! Every scenario runs over [`SEEDS`] seeds for both profiles; every assertion is on virtual
//! time, so a failure is reproduced exactly by its seed (kept below as a named regression case
//! when one was found). Run with `--nocapture` to see the measured times.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use plexus_cluster::membership::{
    Event, Health, MemberView, Membership, MembershipError, Meta, Output, Profile,
};
use plexus_identity::{KeyKind, Keypair, PublicKey};

/// Seeds per scenario and profile (`MEMBERSHIP_SIM_SEEDS` overrides it, for longer hunts).
const SEEDS: u64 = 20;

fn seeds() -> std::ops::Range<u64> {
    let n = std::env::var("MEMBERSHIP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    0..n
}

/// The simulation's random source: SplitMix64 (fast, and enough for a network model).
struct SimRng(u64);

impl SimRng {
    fn new(seed: u64) -> SimRng {
        SimRng(seed ^ 0x5EED_5EED_5EED_5EED)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration uniform in `lo..=hi`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.next_u64() % (span + 1))
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How packets travel.
#[derive(Clone, Copy, Debug)]
struct Net {
    /// Usual one-way delay, uniform in this range.
    delay: (Duration, Duration),
    /// Probability that a packet is slow instead (a loaded CPU, a busy link).
    slow_prob: f64,
    /// A slow packet's delay, uniform in this range.
    slow: (Duration, Duration),
    /// Probability that a packet is lost.
    loss: f64,
}

impl Net {
    /// A LAN: 0.1–5 ms, 5 % of packets 10–40 ms, no loss.
    fn lan() -> Net {
        Net {
            delay: (Duration::from_micros(100), ms(5)),
            slow_prob: 0.05,
            slow: (ms(10), ms(40)),
            loss: 0.0,
        }
    }

    /// A loaded, lossy network: 5 % loss, delays 0.1–`max` ms (uniform).
    fn lossy(max: Duration) -> Net {
        Net {
            delay: (Duration::from_micros(100), max),
            slow_prob: 0.0,
            slow: (max, max),
            loss: 0.05,
        }
    }
}

struct Packet {
    at: Duration,
    seq: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

impl PartialEq for Packet {
    fn eq(&self, other: &Packet) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Packet) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Packet {
    fn cmp(&self, other: &Packet) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct SimNode {
    key: PublicKey,
    name: String,
    session: u64,
    m: Option<Membership>,
    /// Partition group: packets only flow within a group.
    group: u32,
    /// Every event with its virtual time.
    events: Vec<(Duration, Event)>,
}

struct Sim {
    seed: u64,
    profile: Profile,
    base: Instant,
    now: Duration,
    rng: SimRng,
    net: Net,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    /// Refusals that would be bugs (bad packets, sender mismatches).
    bad: Vec<String>,
    delivered: u64,
}

fn meta_for(i: usize, load: f32) -> Meta {
    let mut tags = std::collections::BTreeMap::new();
    tags.insert(format!("rack{}", i % 3), String::new());
    tags.insert("site".to_owned(), "lab".to_owned());
    Meta {
        name: format!("n{i}"),
        addr: format!("10.0.0.{i}:7070"),
        cores: 4 + (i as u32 % 4),
        mem_total: 8 << 30,
        mem_avail: 4 << 30,
        load,
        disk_total: 256 << 30,
        disk_avail: 128 << 30,
        arch: "x86_64".into(),
        os: "linux".into(),
        version: "0.1.0".into(),
        tags,
        links: Default::default(),
    }
}

impl Sim {
    /// `n` nodes, all started (alone) at time 0.
    fn new(seed: u64, profile: Profile, net: Net, n: usize) -> Sim {
        let mut rng = SimRng::new(seed);
        let mut nodes = Vec::new();
        for i in 0..n {
            let secret = rng.bytes32();
            let key = Keypair::from_secret_bytes(KeyKind::Node, "n", &secret)
                .unwrap()
                .public();
            nodes.push(SimNode {
                key,
                name: format!("n{i}"),
                session: 1_000,
                m: None,
                group: 0,
                events: Vec::new(),
            });
        }
        let mut sim = Sim {
            seed,
            profile,
            base: Instant::now(),
            now: Duration::ZERO,
            rng,
            net,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            bad: Vec::new(),
            delivered: 0,
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Starts (or restarts) node `i` with its current session.
    fn start(&mut self, i: usize) {
        let now = self.instant();
        let node = &mut self.nodes[i];
        let seed = self
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(i as u64 * 7 + node.session);
        node.m = Some(Membership::new(
            node.key,
            node.session,
            meta_for(i, 0.5),
            self.profile,
            seed,
            now,
        ));
    }

    fn m(&mut self, i: usize) -> &mut Membership {
        self.nodes[i].m.as_mut().expect("node is running")
    }

    /// Node `i` joins through node `via`.
    fn join(&mut self, i: usize, via: usize) {
        let now = self.instant();
        let (key, addr) = (self.nodes[via].key, meta_for(via, 0.0).addr);
        self.m(i).join(key, addr, now).unwrap();
        self.flush(i);
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].m = None;
    }

    fn restart(&mut self, i: usize, via: usize) {
        self.nodes[i].session += 1_000;
        self.start(i);
        self.join(i, via);
    }

    fn running(&self, i: usize) -> bool {
        self.nodes[i].m.is_some()
    }

    /// Drains node `i`'s outputs into the network and its event log.
    fn flush(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].m.as_mut().and_then(Membership::poll) {
            match out {
                Output::Event(e) => self.nodes[i].events.push((self.now, e)),
                Output::Send { to, addr, packet } => {
                    let j = self
                        .nodes
                        .iter()
                        .position(|n| n.key == to)
                        .expect("send to an unknown key");
                    assert_eq!(addr, format!("10.0.0.{j}:7070"), "wrong address for n{j}");
                    self.send(i, j, packet);
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if self.rng.chance(self.net.loss) || self.nodes[from].group != self.nodes[to].group {
            return;
        }
        let (lo, hi) = if self.rng.chance(self.net.slow_prob) {
            self.net.slow
        } else {
            self.net.delay
        };
        let delay = self.rng.between(lo, hi);
        self.seq += 1;
        self.queue.push(Reverse(Packet {
            at: self.now + delay,
            seq: self.seq,
            from,
            to,
            bytes,
        }));
    }

    /// The next node deadline: (time, node).
    fn next_deadline(&self) -> Option<(Duration, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let d = n.m.as_ref()?.next_deadline()?;
                Some((d.saturating_duration_since(self.base).max(self.now), i))
            })
            .min()
    }

    /// Runs every delivery and timer up to `until` (virtual), then sets the clock to it.
    fn run_until(&mut self, until: Duration) {
        loop {
            let packet_at = self.queue.peek().map(|Reverse(p)| p.at);
            let timer = self.next_deadline();
            let next = match (packet_at, timer) {
                (Some(p), Some((t, _))) => p.min(t),
                (Some(p), None) => p,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if packet_at == Some(next) {
                let Reverse(p) = self.queue.pop().unwrap();
                self.deliver(p);
            } else if let Some((_, i)) = timer {
                let now = self.instant();
                self.m(i).handle_timers(now);
                self.flush(i);
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, p: Packet) {
        if self.nodes[p.from].group != self.nodes[p.to].group {
            return;
        }
        let from = self.nodes[p.from].key;
        let now = self.instant();
        let Some(m) = self.nodes[p.to].m.as_mut() else {
            return;
        };
        self.delivered += 1;
        match m.handle_packet(&from, &p.bytes, now) {
            Ok(()) | Err(MembershipError::Left | MembershipError::Removed(_)) => {}
            Err(e) => self.bad.push(format!("n{} from n{}: {e}", p.to, p.from)),
        }
        self.flush(p.to);
    }

    /// What running node `i` knows of node `j`.
    fn view(&self, i: usize, j: usize) -> Option<MemberView> {
        self.nodes[i].m.as_ref()?.member(&self.nodes[j].key)
    }

    /// Whether every running node sees every other running node alive, with its current
    /// metadata and session.
    fn converged(&self) -> bool {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.running(i)).collect();
        live.iter().all(|&i| {
            live.iter().all(|&j| {
                if i == j {
                    return true;
                }
                let want = self.nodes[j].m.as_ref().unwrap().local();
                self.view(i, j).is_some_and(|v| {
                    v.health == Health::Alive
                        && v.meta == want.meta
                        && v.incarnation == want.incarnation
                })
            })
        })
    }

    /// Runs until converged (checking every 10 ms), for at most `limit`; returns the time it
    /// took.
    fn converge(&mut self, limit: Duration) -> Result<Duration, String> {
        let start = self.now;
        while !self.converged() {
            if self.now - start > limit {
                return Err(format!(
                    "not converged after {limit:?}: {}",
                    self.describe()
                ));
            }
            self.run_for(ms(10));
        }
        Ok(self.now - start)
    }

    /// All nodes join through node 0, one every 10 ms, and the cluster converges.
    fn form(&mut self, limit: Duration) -> Result<Duration, String> {
        for i in 1..self.nodes.len() {
            self.join(i, 0);
            self.run_for(ms(10));
        }
        self.converge(limit)
    }

    /// When node `i` first had an event matching `pred` at or after `since`.
    fn first_event(
        &self,
        i: usize,
        since: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Duration> {
        self.nodes[i]
            .events
            .iter()
            .find(|(t, e)| *t >= since && pred(e))
            .map(|(t, _)| *t)
    }

    /// The Down events since `since`, as (observer, subject name).
    fn downs_since(&self, since: Duration) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (t, e) in &n.events {
                if let Event::Down { name, .. } = e {
                    if *t >= since {
                        out.push((n.name.clone(), name.clone()));
                    }
                }
            }
        }
        out
    }

    /// The Rejoined events since `since`, as (observer, subject name).
    fn rejoins_since(&self, since: Duration) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (t, e) in &n.events {
                if let Event::Rejoined(v) = e {
                    if *t >= since {
                        out.push((n.name.clone(), v.meta.name.clone()));
                    }
                }
            }
        }
        out
    }

    /// Suspicions since `since`: how many (per observer), and the longest time from a
    /// Suspect event to the Up that cleared it.
    fn suspicions(&self, since: Duration) -> (usize, Duration) {
        let mut count = 0;
        let mut longest = Duration::ZERO;
        for n in &self.nodes {
            let mut open: Vec<(PublicKey, Duration)> = Vec::new();
            for (t, e) in n.events.iter().filter(|(t, _)| *t >= since) {
                match e {
                    Event::Suspect { key, .. } => {
                        count += 1;
                        open.push((*key, *t));
                    }
                    Event::Up(v) | Event::Rejoined(v) => {
                        if let Some(i) = open.iter().position(|(k, _)| *k == v.key) {
                            longest = longest.max(*t - open.swap_remove(i).1);
                        }
                    }
                    _ => {}
                }
            }
        }
        (count, longest)
    }

    fn describe(&self) -> String {
        let mut s = format!("t={:?}", self.now);
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.m else {
                s += &format!("\n  n{i}: dead");
                continue;
            };
            s += &format!("\n  n{i} {m:?}: ");
            for v in m.members() {
                s += &format!("{}:{:?}#{} ", v.meta.name, v.health, v.incarnation);
            }
        }
        s
    }

    fn check_clean(&self) -> Result<(), String> {
        if self.bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} refused packets, first: {:?}",
                self.bad.len(),
                &self.bad[..self.bad.len().min(3)]
            ))
        }
    }
}

fn is_down_of(key: PublicKey) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Down { key: k, .. } if *k == key)
}

/// Runs `scenario` over the seeds; fails listing every failing seed.
///
/// Seeds run on parallel threads (each run is deterministic by itself); results are reported
/// in seed order.
fn over_seeds(
    name: &str,
    profile: Profile,
    seeds: std::ops::Range<u64>,
    scenario: impl Fn(u64, Profile) -> Result<Duration, String> + Sync,
) {
    let seeds: Vec<u64> = seeds.collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let mut results: Vec<(u64, Result<Duration, String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&seed) = seeds.get(i) else {
                            break mine;
                        };
                        mine.push((seed, scenario(seed, profile)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("scenario thread panicked"))
            .collect()
    });
    results.sort_by_key(|(seed, _)| *seed);
    let mut failures = Vec::new();
    let mut measured = Vec::new();
    for (seed, result) in results {
        if std::env::var_os("MEMBERSHIP_SIM_VERBOSE").is_some() {
            eprintln!("{name} {profile:?} seed {seed}: {result:?}");
        }
        match result {
            Ok(d) => measured.push(d),
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    measured.sort();
    if let (Some(min), Some(max)) = (measured.first(), measured.last()) {
        let mean = measured.iter().sum::<Duration>() / measured.len() as u32;
        eprintln!(
            "{name} {profile:?}: min {min:?} mean {mean:?} max {max:?} over {} seeds",
            measured.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{name} {profile:?} failed for {} seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn join_bound(n: usize) -> Duration {
    if n <= 5 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(4)
    }
}

/// (a) `n` nodes join through one seed node and converge: returns the time to converge.
fn scenario_join(n: usize) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        let took = sim.form(join_bound(n))?;
        // And it stays converged, with no one ever reported down.
        sim.run_for(Duration::from_secs(5));
        if !sim.converged() {
            return Err(format!("diverged: {}", sim.describe()));
        }
        let downs = sim.downs_since(Duration::ZERO);
        let rejoins = sim.rejoins_since(Duration::ZERO);
        if !downs.is_empty() || !rejoins.is_empty() {
            return Err(format!("false downs: {downs:?}, rejoins: {rejoins:?}"));
        }
        sim.check_clean()?;
        Ok(took)
    }
}

/// (b) A node of a formed cluster dies: every survivor marks it down within the profile's
/// bound; returns the slowest survivor's detection time.
fn scenario_kill(n: usize) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        sim.run_for(Duration::from_secs(2));
        let victim = sim.rng.below(n);
        let key = sim.nodes[victim].key;
        let killed_at = sim.now;
        sim.kill(victim);
        let bound = profile.timing().detection_bound;
        sim.run_for(bound + Duration::from_secs(1));
        let mut slowest = Duration::ZERO;
        for i in (0..n).filter(|&i| i != victim) {
            match sim.first_event(i, killed_at, is_down_of(key)) {
                Some(t) if t - killed_at <= bound => slowest = slowest.max(t - killed_at),
                Some(t) => {
                    return Err(format!(
                        "n{i} marked n{victim} down after {:?} (bound {bound:?})",
                        t - killed_at
                    ))
                }
                None => return Err(format!("n{i} never marked n{victim} down")),
            }
        }
        let downs = sim.downs_since(Duration::ZERO);
        if downs.iter().any(|(_, who)| *who != format!("n{victim}")) {
            return Err(format!("false downs: {downs:?}"));
        }
        sim.check_clean()?;
        Ok(slowest)
    }
}

/// (c) 5 % loss and delays up to `max_delay` for `span`: no node is ever marked down.
/// Returns the longest suspicion (Suspect to Up at one observer): it must stay under
/// `suspect_to_down_after` with room to spare.
fn scenario_lossy(
    n: usize,
    max_delay: Duration,
    span: Duration,
) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        sim.net = Net::lossy(max_delay);
        let from = sim.now;
        sim.run_for(span);
        let downs = sim.downs_since(Duration::ZERO);
        if !downs.is_empty() {
            return Err(format!("false downs: {downs:?}"));
        }
        // A node that renewed its identity was declared down somewhere (maybe so briefly
        // that no one reported it): that is a false down too.
        let rejoins = sim.rejoins_since(from);
        if !rejoins.is_empty() {
            return Err(format!("nodes rejoined (declared down): {rejoins:?}"));
        }
        sim.net = Net::lan();
        sim.converge(Duration::from_secs(3))?;
        sim.check_clean()?;
        let (count, longest) = sim.suspicions(from);
        if std::env::var_os("MEMBERSHIP_SIM_VERBOSE").is_some() {
            eprintln!("seed {seed}: {count} suspicions, longest {longest:?}");
        }
        Ok(longest)
    }
}

/// (c') Packets delayed by up to `max_delay` (a loaded CPU), no loss, for a virtual minute: no
/// node is ever even suspected. Returns the longest delay seen (the bound).
fn scenario_slow(
    n: usize,
    max_delay: Duration,
) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        sim.net = Net {
            delay: (Duration::from_micros(100), max_delay),
            slow_prob: 0.0,
            slow: (max_delay, max_delay),
            loss: 0.0,
        };
        let from = sim.now;
        sim.run_for(Duration::from_secs(60));
        let (count, _) = sim.suspicions(from);
        if count > 0 {
            return Err(format!("{count} suspicions"));
        }
        sim.check_clean()?;
        Ok(max_delay)
    }
}

/// (d) A node dies, is marked down, then restarts with the same key and a new session: every
/// node sees it alive again (Rejoined) with its new session. With `fast`, it restarts before
/// anyone noticed it died. Returns the time from restart to convergence.
fn scenario_restart(fast: bool) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let n = 5;
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        sim.run_for(Duration::from_secs(1));
        let victim = sim.rng.below(n);
        let key = sim.nodes[victim].key;
        sim.kill(victim);
        if fast {
            sim.run_for(ms(50));
        } else {
            sim.run_for(profile.timing().detection_bound + ms(200));
            for i in (0..n).filter(|&i| i != victim) {
                if sim.view(i, victim).map(|v| v.health) != Some(Health::Down) {
                    return Err(format!(
                        "n{i} did not mark n{victim} down: {}",
                        sim.describe()
                    ));
                }
            }
        }
        let restarted_at = sim.now;
        let via = if victim == 0 { 1 } else { 0 };
        sim.restart(victim, via);
        let took = sim.converge(Duration::from_secs(3))?;
        for i in (0..n).filter(|&i| i != victim) {
            let rejoined = sim.first_event(
                i,
                restarted_at,
                |e| matches!(e, Event::Rejoined(v) if v.key == key && v.health == Health::Alive),
            );
            if rejoined.is_none() {
                return Err(format!("n{i} saw no Rejoined for n{victim}"));
            }
        }
        let downs = sim.downs_since(restarted_at);
        if !downs.is_empty() {
            return Err(format!("downs after the restart: {downs:?}"));
        }
        sim.check_clean()?;
        Ok(took)
    }
}

/// (e) A node changes its metadata (load, memory, a tag): every node sees it, with one
/// MetaChanged event each. With `loss`, pushes get lost and the digest exchange repairs.
/// Returns the time until everyone has it.
fn scenario_meta(loss: f64) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let n = 5;
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        sim.net.loss = loss;
        let who = sim.rng.below(n);
        let mut meta = meta_for(who, 3.5);
        meta.mem_avail = 1 << 30;
        meta.tags.insert("gpu".into(), "a100".into());
        let changed_at = sim.now;
        let now = sim.instant();
        sim.m(who).set_meta(meta.clone(), now);
        sim.flush(who);
        let bound = if loss > 0.0 {
            profile.timing().meta_sync_period * 12
        } else {
            ms(100)
        };
        let took = sim.converge(bound)?;
        let key = sim.nodes[who].key;
        for i in (0..n).filter(|&i| i != who) {
            let got = sim.view(i, who).unwrap().meta;
            if got != meta {
                return Err(format!("n{i} has {got:?}"));
            }
            let changes = sim.nodes[i]
                .events
                .iter()
                .filter(|(t, e)| {
                    *t >= changed_at
                        && matches!(e, Event::MetaChanged(v) if v.key == key && v.meta == meta)
                })
                .count();
            if changes != 1 {
                return Err(format!("n{i} saw {changes} MetaChanged events"));
            }
        }
        sim.check_clean()?;
        Ok(took)
    }
}

/// (f) One node is cut off from the other four for `cut`, then the partition heals: the
/// cluster converges again. Returns the time from heal to convergence.
fn scenario_partition(cut: Duration) -> impl Fn(u64, Profile) -> Result<Duration, String> {
    move |seed, profile| {
        let n = 5;
        let mut sim = Sim::new(seed, profile, Net::lan(), n);
        sim.form(join_bound(n))?;
        let lonely = sim.rng.below(n);
        sim.nodes[lonely].group = 1;
        sim.run_for(cut);
        if cut > profile.timing().detection_bound {
            for i in (0..n).filter(|&i| i != lonely) {
                if sim.view(i, lonely).map(|v| v.health) != Some(Health::Down) {
                    return Err(format!("n{i} did not mark n{lonely} down during the cut"));
                }
            }
        }
        sim.nodes[lonely].group = 0;
        let took = sim.converge(Duration::from_secs(10))?;
        sim.run_for(Duration::from_secs(3));
        if !sim.converged() {
            return Err(format!("diverged after healing: {}", sim.describe()));
        }
        sim.check_clean()?;
        Ok(took)
    }
}

/// (g) A node leaves gracefully: every other node marks it down quickly. Returns the slowest.
fn scenario_leave(seed: u64, profile: Profile) -> Result<Duration, String> {
    let n = 5;
    let mut sim = Sim::new(seed, profile, Net::lan(), n);
    sim.form(join_bound(n))?;
    sim.run_for(Duration::from_secs(1));
    let who = sim.rng.below(n);
    let key = sim.nodes[who].key;
    let left_at = sim.now;
    let now = sim.instant();
    sim.m(who).leave(now);
    assert_eq!(sim.m(who).local().health, Health::Down);
    sim.flush(who);
    // The node stops once its last packets are out.
    sim.kill(who);
    let bound = profile.timing().probe_period * 2;
    sim.run_for(bound + Duration::from_secs(1));
    let mut slowest = Duration::ZERO;
    for i in (0..n).filter(|&i| i != who) {
        match sim.first_event(i, left_at, is_down_of(key)) {
            Some(t) if t - left_at <= bound => slowest = slowest.max(t - left_at),
            other => return Err(format!("n{i} marked the leaver down at {other:?}")),
        }
    }
    let downs = sim.downs_since(Duration::ZERO);
    if downs.len() != n - 1 {
        return Err(format!("unexpected downs: {downs:?}"));
    }
    sim.check_clean()?;
    Ok(slowest)
}

/// (h) A node is removed (every other node applies the removal, a few ms apart, as from the
/// replicated roster) while it keeps running, then it restarts and tries to join again: it is
/// never readmitted. Returns the time until all others saw it down.
fn scenario_remove(seed: u64, profile: Profile) -> Result<Duration, String> {
    let n = 5;
    let mut sim = Sim::new(seed, profile, Net::lan(), n);
    sim.form(join_bound(n))?;
    let who = 1 + sim.rng.below(n - 1);
    let key = sim.nodes[who].key;
    let removed_at = sim.now;
    let mut removed = vec![Duration::ZERO; n];
    for i in (0..n).filter(|&i| i != who) {
        let now = sim.instant();
        removed[i] = sim.now;
        sim.m(i).remove(&key, now);
        sim.flush(i);
        sim.run_for(ms(7));
    }
    sim.run_for(Duration::from_secs(5));
    sim.restart(who, 0);
    sim.run_for(Duration::from_secs(5));
    let mut slowest = Duration::ZERO;
    for i in (0..n).filter(|&i| i != who) {
        if let Some(v) = sim.view(i, who) {
            return Err(format!("n{i} still lists the removed node: {v:?}"));
        }
        // Nodes that had not applied the removal yet may have seen it come back (it renews
        // itself when declared down); after its own removal, a node never does.
        let back = sim.first_event(i, removed[i], |e| match e {
            Event::Up(v) | Event::Rejoined(v) | Event::MetaChanged(v) => v.key == key,
            Event::Suspect { key: k, .. } => *k == key,
            Event::Down { .. } => false,
        });
        if let Some(t) = back {
            let what = sim.nodes[i].events.iter().find(|(at, _)| *at == t);
            return Err(format!(
                "n{i} readmitted the removed node at {t:?}: {what:?}"
            ));
        }
        let down = sim
            .first_event(i, removed_at, is_down_of(key))
            .ok_or(format!("n{i}: no Down event"))?;
        slowest = slowest.max(down - removed_at);
    }
    // The others still see each other.
    sim.kill(who);
    sim.converge(Duration::from_secs(1))?;
    Ok(slowest)
}

#[test]
fn a_five_nodes_join_and_converge() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("join 5", p, seeds(), scenario_join(5));
    }
}

#[test]
fn a_sixteen_nodes_join_and_converge() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("join 16", p, seeds(), scenario_join(16));
    }
}

#[test]
fn b_dead_node_is_down_everywhere_within_the_bound() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("kill 5", p, seeds(), scenario_kill(5));
    }
}

#[test]
fn b_dead_node_in_sixteen_is_down_everywhere_within_the_bound() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("kill 16", p, seeds(), scenario_kill(16));
    }
}

#[test]
fn c_no_false_down_with_loss_and_delay_default() {
    over_seeds(
        "lossy 5 (50 ms)",
        Profile::Default,
        seeds(),
        scenario_lossy(5, ms(50), Duration::from_secs(300)),
    );
}

#[test]
fn c_no_false_down_with_loss_and_delay_local() {
    over_seeds(
        "lossy 5 (50 ms)",
        Profile::Local,
        seeds(),
        scenario_lossy(5, ms(50), Duration::from_secs(300)),
    );
}

#[test]
fn c_no_false_down_with_loss_and_delay_sixteen_nodes() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds(
            "lossy 16 (50 ms)",
            p,
            0..SEEDS / 4,
            scenario_lossy(16, ms(50), Duration::from_secs(60)),
        );
    }
}

#[test]
fn c_no_suspicion_when_packets_are_slow() {
    over_seeds(
        "slow 5 (80 ms)",
        Profile::Default,
        seeds(),
        scenario_slow(5, ms(80)),
    );
    over_seeds(
        "slow 5 (40 ms)",
        Profile::Local,
        seeds(),
        scenario_slow(5, ms(40)),
    );
}

#[test]
fn d_restarted_node_rejoins() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("restart", p, seeds(), scenario_restart(false));
        over_seeds("fast restart", p, seeds(), scenario_restart(true));
    }
}

#[test]
fn e_metadata_change_reaches_everyone() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("meta", p, seeds(), scenario_meta(0.0));
        over_seeds("meta 30% loss", p, seeds(), scenario_meta(0.3));
    }
}

#[test]
fn f_partition_heals() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds(
            "partition 5 s",
            p,
            seeds(),
            scenario_partition(Duration::from_secs(5)),
        );
        over_seeds("partition 300 ms", p, seeds(), scenario_partition(ms(300)));
    }
}

#[test]
fn g_graceful_leave() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("leave", p, seeds(), scenario_leave);
    }
}

#[test]
fn h_removed_node_is_not_readmitted() {
    for p in [Profile::Default, Profile::Local] {
        over_seeds("remove", p, seeds(), scenario_remove);
    }
}

#[test]
fn runs_are_deterministic() {
    let run = || {
        let mut sim = Sim::new(7, Profile::Default, Net::lossy(ms(20)), 5);
        sim.form(Duration::from_secs(5)).unwrap();
        sim.kill(3);
        sim.run_for(Duration::from_secs(3));
        let log: Vec<String> = sim
            .nodes
            .iter()
            .flat_map(|n| n.events.iter().map(|(t, e)| format!("{t:?} {e:?}")))
            .collect();
        (log, sim.delivered)
    };
    assert_eq!(run(), run());
}

// Regression cases: seeds that failed during development, kept by name. Each ran under the
// numbers of its time, so they now replay different runs, but they stay as fixed extra seeds.

/// A node renewed its identity (declared down under 30 % loss) and foca's one gossip about the
/// new identity was lost: it stayed disconnected with a full member list and no one ever
/// talked to the new identity. Fixed by retrying announces while foca is disconnected.
#[test]
fn regression_meta_30_loss_default_seed_2() {
    scenario_meta(0.3)(2, Profile::Default).unwrap();
}

/// After a short partition the lonely node renewed its identity, which voided its pending
/// down timer for a member it suspected; that member, alive, never heard of the suspicion and
/// stayed Suspect there forever. Fixed by clearing suspicions older than foca's timer.
#[test]
fn regression_partition_300ms_local_seeds_9_10_16() {
    for seed in [9, 10, 16] {
        scenario_partition(ms(300))(seed, Profile::Local).unwrap();
    }
}

/// Nobody probed the dead node for 5 probe periods (130 ms then): detection took 1.14 s.
/// Fixed by a shorter probe period.
#[test]
fn regression_kill_16_local_seeds_25_33() {
    for seed in [25, 33] {
        scenario_kill(16)(seed, Profile::Local).unwrap();
    }
}

/// One survivor never received the Down broadcast (8 transmissions per node then) and found
/// out by itself 1.5 s later. Fixed by 12 transmissions.
#[test]
fn regression_kill_16_local_seed_174() {
    scenario_kill(16)(174, Profile::Local).unwrap();
}

/// Detection took 1.99 s and 1.96 s (300 ms probe period and 500 ms suspicion then), at the
/// edge of the 2 s bound. Fixed by a shorter probe period; now it must keep a clear margin.
#[test]
fn regression_kill_16_default_seeds_11_12() {
    for seed in [11, 12] {
        let took = scenario_kill(16)(seed, Profile::Default).unwrap();
        assert!(took < Duration::from_millis(1_700), "seed {seed}: {took:?}");
    }
}

/// foca sent "you are down" (TurnUndead) to members that had refuted their suspicion in time;
/// each renewed its identity, and under loss the churn ended in a false down of n15. Fixed by
/// dropping that message while the member is still active.
#[test]
fn regression_lossy_16_local_seed_0() {
    scenario_lossy(16, ms(50), Duration::from_secs(60))(0, Profile::Local).unwrap();
}
