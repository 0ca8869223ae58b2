//! SWIM membership and failure detection for Plexus nodes, on foca, sans-io.
//!
//! [`Membership`] is a state machine: time comes in as [`Instant`] arguments, packets come in
//! as bytes with the node key their link proved ([`Membership::handle_packet`]), and what to
//! send and what happened come out of [`Membership::poll`] as [`Output`]s. It owns no socket,
//! no clock and no task; the node drives it from one async task:
//!
//! 1. feed it packets ([`Membership::handle_packet`]) and the timer tick
//!    ([`Membership::handle_timers`] when [`Membership::next_deadline`] is reached), and calls
//!    from the node ([`Membership::join`], [`Membership::set_meta`], …);
//! 2. after each call, drain [`Membership::poll`]: send each [`Output::Send`] over the link to
//!    its node (opening one to `addr` if needed) and act on each [`Output::Event`];
//! 3. ask [`Membership::next_deadline`] again.
//!
//! **Authentication.** Links between nodes are mutually authenticated TLS, so membership has
//! no crypto of its own, but it checks that every SWIM packet's sender identity (decoded from
//! the foca header before anything else) carries the node key the link proved, and refuses the
//! packet ([`MembershipError::SenderMismatch`]) otherwise: a node cannot speak for another.
//! Gossip *about* other nodes (who is up, who is down, their metadata) is relayed by members and
//! taken on their word, as SWIM requires.
//!
//! **Identity.** In foca a node is `(key, addr, session)`, with the key as foca's address: one
//! identity per key, and a higher session wins. A restarted node (new session, higher than the
//! last one: use the start time in milliseconds) replaces its old self at once and is reported
//! as [`Event::Rejoined`]; a live node declared down (after a partition) renews itself with
//! `session + 1` and rejoins on its own.
//!
//! **Metadata** ([`Meta`]) is versioned per node by `(session, version)`, newer wins. A node
//! pushes its record directly to every live member when it changes ([`Membership::set_meta`])
//! and to each member it sees come up; every `meta_sync_period` it sends a digest of the
//! versions it holds to one random member, which answers with the records it holds newer and,
//! if the sender holds newer ones, with its own digest so they come back (push-pull
//! anti-entropy: this repairs lost pushes). A member is reported ([`Event::Up`],
//! [`Membership::members`]) once its metadata is known.
//!
//! **Two guards around foca 2.0.0.** While foca is not connected (alone, or after it changed
//! identity until a member talks to the new one) this node announces itself to known members
//! every `rejoin_period`; without it a renewed node whose one gossip got lost would wait
//! forever. And foca's "you are down" message sent when a down timer fires is dropped when the
//! member refuted the suspicion in time (foca sends it either way, which would make every
//! refuted member throw its identity away).
//!
//! The profiles' numbers and the rest of the design are in `docs/membership.md`.

mod meta;
mod profile;
mod wire;

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use foca::{
    Codec, Foca, Member, NoCustomBroadcast, Notification, OwnedNotification, PostcardCodec,
    Runtime, State, Timer,
};
use plexus_identity::PublicKey;
use rand_foca::rngs::StdRng;
use rand_foca::SeedableRng;
use serde::{Deserialize, Serialize};

pub use meta::{
    LinkFigures, Meta, MetaError, MAX_ADDR_LEN, MAX_LINKS, MAX_NAME_LEN, MAX_SHORT_LEN, MAX_TAGS,
    MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN,
};
pub use profile::{Profile, Timing, MAX_SWIM_PACKET};
pub use wire::MAX_PACKET;

use wire::{short_hex, DigestEntry, MetaMsg, MetaRecord, NodeId, KIND_META, KIND_SWIM};

/// Most other nodes this node keeps track of (members, and metadata records of nodes foca
/// has not reported yet).
pub const MAX_PEERS: usize = 1024;

/// Most join seeds kept for retries.
const MAX_SEEDS: usize = 16;

/// How many known members an isolated node contacts per retry.
const REJOIN_FANOUT: usize = 2;

/// The random source foca runs on.
///
/// foca 2 draws from `rand` 0.10 (`rand_foca` in the workspace, used by this crate only):
/// its seeded ChaCha12 `StdRng`. It only shuffles the probe order and picks gossip targets;
/// being seeded keeps simulations reproducible.
type SwimRng = StdRng;

/// foca as configured here: postcard on the wire, no custom broadcasts (metadata has its own
/// packets).
type Swim = Foca<NodeId, PostcardCodec, SwimRng, NoCustomBroadcast>;

/// How a member is doing, as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Health {
    /// Answering probes.
    Alive,
    /// Failed a probe cycle; it has a short while to refute before it is declared down.
    Suspect,
    /// Declared down (failed, left, or removed).
    Down,
}

/// A member as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// The node key.
    pub key: PublicKey,
    /// Its last known metadata.
    pub meta: Meta,
    /// Its health.
    pub health: Health,
    /// Its session (which run of the node this is): higher after a restart or a rejoin.
    pub incarnation: u64,
}

/// A change in membership, for the node to act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A member is alive: first seen (with its metadata), or cleared of suspicion.
    Up(MemberView),
    /// A member is down: it failed, left, or was removed.
    Down {
        /// The node key.
        key: PublicKey,
        /// Its name.
        name: String,
    },
    /// A member failed a probe cycle and is suspected; it is still treated as alive.
    Suspect {
        /// The node key.
        key: PublicKey,
        /// Its name.
        name: String,
    },
    /// A member advertised new metadata.
    MetaChanged(MemberView),
    /// A member came back with a new session (a restart, or a rejoin after it was declared
    /// down). Its metadata is the last known until the new run's arrives
    /// ([`Event::MetaChanged`]).
    Rejoined(MemberView),
}

/// What the node must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `packet` to node `to` over its link (at `addr` if a link must be opened). Loss
    /// is tolerated: a packet that cannot be sent may be dropped.
    Send {
        /// The node key of the receiver.
        to: PublicKey,
        /// Its cluster address.
        addr: String,
        /// The bytes, to hand to [`Membership::handle_packet`] on the other side.
        packet: Vec<u8>,
    },
    /// Something changed.
    Event(Event),
}

/// Why a packet or a call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// An empty packet.
    #[error("empty membership packet")]
    Empty,
    /// A packet over the size limit.
    #[error("membership packet of {len} bytes is over the limit of {max}")]
    TooBig {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A packet of an unknown kind.
    #[error("unknown membership packet kind {0:#04x}")]
    UnknownKind(u8),
    /// A packet that does not decode or breaks the protocol.
    #[error("bad membership packet: {0}")]
    BadPacket(String),
    /// A SWIM packet whose sender identity is not the node its link proved.
    #[error(
        "membership packet on the link of node {link} ({}) claims to come from node {claimed}…",
        link.fingerprint()
    )]
    SenderMismatch {
        /// The key the link proved.
        link: Box<PublicKey>,
        /// The first bytes (hex) of the key the packet claims.
        claimed: String,
    },
    /// A join address over the limit.
    #[error("address of {len} bytes is over the limit of {max}")]
    AddrTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A packet from, or a join to, a removed node.
    #[error("node {} ({}) was removed from the cluster", .0, .0.fingerprint())]
    Removed(Box<PublicKey>),
    /// A packet from this node's own key, or a join to itself.
    #[error("a membership packet or join names this node itself")]
    ItsMe,
    /// This node has left the cluster.
    #[error("this node has left the cluster")]
    Left,
    /// foca refused the operation.
    #[error("membership protocol error: {0}")]
    Protocol(String),
}

/// What this node knows about another node.
#[derive(Debug)]
struct Peer {
    key: PublicKey,
    /// Its current identity in foca (`None` while only its metadata is known).
    id: Option<NodeId>,
    health: Health,
    /// Its SWIM incarnation in foca.
    incarnation: u16,
    /// Since when this node has seen it suspect.
    suspect_since: Option<Instant>,
    record: Option<MetaRecord>,
    /// The record's metadata changed since the last events.
    meta_changed: bool,
    /// The health and session last reported in events (`None`: never reported).
    reported: Option<(Health, u64)>,
}

impl Peer {
    fn view(&self) -> Option<MemberView> {
        let id = self.id.as_ref()?;
        let record = self.record.as_ref()?;
        Some(MemberView {
            key: self.key,
            meta: record.meta.clone(),
            health: self.health,
            incarnation: id.session,
        })
    }

    fn name(&self) -> String {
        self.record
            .as_ref()
            .map(|r| r.meta.name.clone())
            .unwrap_or_default()
    }
}

/// A foca timer and when it is due.
struct Due {
    at: Instant,
    seq: u64,
    timer: Timer<NodeId>,
}

impl Ord for Due {
    /// By time, then in foca's order for timers due together, then as scheduled.
    fn cmp(&self, other: &Due) -> Ordering {
        self.at
            .cmp(&other.at)
            .then_with(|| self.timer.cmp(&other.timer))
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

/// Collects what foca asks for during one call.
#[derive(Default)]
struct Collect {
    sends: Vec<(NodeId, Vec<u8>)>,
    timers: Vec<(Duration, Timer<NodeId>)>,
    notes: Vec<OwnedNotification<NodeId>>,
}

impl Runtime<NodeId> for Collect {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        let mut packet = Vec::with_capacity(data.len().saturating_add(1));
        packet.push(KIND_SWIM);
        packet.extend_from_slice(data);
        self.sends.push((to, packet));
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// SplitMix64: membership's own small choices (digest and rejoin targets).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n).unwrap_or(0)
        }
    }
}

/// `now + d`, or `None` past the end of time.
fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// SWIM membership of one node: failure detection, the member list and everyone's metadata.
/// See the [module documentation](self).
pub struct Membership {
    key: PublicKey,
    session: u64,
    meta: Meta,
    meta_version: u64,
    profile: Profile,
    timing: Timing,
    swim: Swim,
    timers: BinaryHeap<Reverse<Due>>,
    timer_seq: u64,
    next_sync: Instant,
    next_rejoin: Instant,
    peers: BTreeMap<[u8; 32], Peer>,
    /// Byte strings seen in identities that are not public keys.
    not_keys: BTreeSet<[u8; 32]>,
    banned: BTreeSet<[u8; 32]>,
    seeds: Vec<(PublicKey, NodeId)>,
    outputs: VecDeque<Output>,
    rng: SplitMix,
    left: bool,
    defunct: bool,
    /// Whether foca is connected (probing): false alone, and after an identity change until
    /// a member answers the new identity.
    connected: bool,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("key", &self.key)
            .field("session", &self.session)
            .field("profile", &self.profile)
            .field("members", &self.swim.num_members())
            .field("peers", &self.peers.len())
            .field("timers", &self.timers.len())
            .field("connected", &self.connected)
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A node alone, with key `key`, session `session` (must grow across restarts of the same
    /// key: use the start time in milliseconds), metadata `meta` (cut to the limits, see
    /// [`Meta::sanitized`]; `meta.addr` is where other nodes reach it), detection profile
    /// `profile`, and `seed` for its random choices (probe order, gossip targets).
    pub fn new(
        key: PublicKey,
        session: u64,
        meta: Meta,
        profile: Profile,
        seed: u64,
        now: Instant,
    ) -> Membership {
        let meta = meta.sanitized();
        let id = NodeId {
            key: key.to_bytes(),
            addr: meta.addr.clone(),
            session,
        };
        let mut material = Vec::with_capacity(48);
        material.extend_from_slice(&seed.to_le_bytes());
        material.extend_from_slice(key.as_bytes());
        material.extend_from_slice(&session.to_le_bytes());
        let rng_seed = blake3::derive_key("plexus membership 2026 foca rng", &material);
        let rng = StdRng::from_seed(rng_seed);
        let timing = profile.timing();
        let swim = Foca::new(id, profile.foca_config(), rng, PostcardCodec);
        Membership {
            key,
            session,
            meta,
            meta_version: 1,
            profile,
            timing,
            swim,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            next_sync: later(now, timing.meta_sync_period).unwrap_or(now),
            next_rejoin: later(now, timing.rejoin_period).unwrap_or(now),
            peers: BTreeMap::new(),
            not_keys: BTreeSet::new(),
            banned: BTreeSet::new(),
            seeds: Vec::new(),
            outputs: VecDeque::new(),
            rng: SplitMix(seed ^ 0x6d65_6d62_6572_7368),
            left: false,
            defunct: false,
            connected: false,
        }
    }

    /// This node's key.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// This node's current session (it grows by one when the node rejoins after being
    /// declared down).
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The detection profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Contacts a known member (from a join token or the persisted roster) to join its
    /// cluster. Known members and join seeds are contacted again every `rejoin_period` while
    /// this node is not connected (no member answered yet, or all of them are down).
    pub fn join(
        &mut self,
        key: PublicKey,
        addr: String,
        now: Instant,
    ) -> Result<(), MembershipError> {
        if self.left {
            return Err(MembershipError::Left);
        }
        if key == self.key {
            return Err(MembershipError::ItsMe);
        }
        if self.banned.contains(key.as_bytes()) {
            return Err(MembershipError::Removed(Box::new(key)));
        }
        if addr.len() > MAX_ADDR_LEN {
            return Err(MembershipError::AddrTooLong {
                len: addr.len(),
                max: MAX_ADDR_LEN,
            });
        }
        // Session 0: foca takes an announce addressed to any session of the key.
        let id = NodeId {
            key: key.to_bytes(),
            addr,
            session: 0,
        };
        self.seeds.retain(|(k, _)| *k != key);
        if self.seeds.len() >= MAX_SEEDS {
            self.seeds.remove(0);
        }
        self.seeds.push((key, id.clone()));
        let mut rt = Collect::default();
        let result = self.swim.announce(id, &mut rt);
        self.after(rt, now);
        result.map_err(foca_error)
    }

    /// A packet that arrived over a link whose proven peer key is `from`.
    ///
    /// Errors say why the packet was refused (the node may log them and go on); no packet,
    /// however malformed, can make this panic.
    pub fn handle_packet(
        &mut self,
        from: &PublicKey,
        packet: &[u8],
        now: Instant,
    ) -> Result<(), MembershipError> {
        if self.left {
            return Err(MembershipError::Left);
        }
        if *from == self.key {
            return Err(MembershipError::ItsMe);
        }
        if self.banned.contains(from.as_bytes()) {
            return Err(MembershipError::Removed(Box::new(*from)));
        }
        if packet.len() > MAX_PACKET {
            return Err(MembershipError::TooBig {
                len: packet.len(),
                max: MAX_PACKET,
            });
        }
        let (&kind, body) = packet.split_first().ok_or(MembershipError::Empty)?;
        match kind {
            KIND_SWIM => self.handle_swim(from, body, now),
            KIND_META => self.handle_meta(from, body, now),
            other => Err(MembershipError::UnknownKind(other)),
        }
    }

    fn handle_swim(
        &mut self,
        from: &PublicKey,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MembershipError> {
        if body.len() > MAX_SWIM_PACKET {
            return Err(MembershipError::TooBig {
                len: body.len(),
                max: MAX_SWIM_PACKET,
            });
        }
        // Authenticate before foca sees anything: the sender identity must be the link's.
        let header: foca::Header<NodeId> = Codec::<NodeId>::decode_header(&mut PostcardCodec, body)
            .map_err(|e| MembershipError::BadPacket(e.to_string()))?;
        if header.src.key != *from.as_bytes() {
            return Err(MembershipError::SenderMismatch {
                link: Box::new(*from),
                claimed: short_hex(&header.src.key),
            });
        }
        if header.src.addr.len() > MAX_ADDR_LEN {
            return Err(MembershipError::BadPacket(format!(
                "sender address longer than {MAX_ADDR_LEN} bytes"
            )));
        }
        let mut rt = Collect::default();
        let result = self.swim.handle_data(body, &mut rt);
        self.after(rt, now);
        result.map_err(foca_error)
    }

    fn handle_meta(
        &mut self,
        from: &PublicKey,
        body: &[u8],
        now: Instant,
    ) -> Result<(), MembershipError> {
        let msg = MetaMsg::from_body(body).map_err(MembershipError::BadPacket)?;
        match msg {
            MetaMsg::Push(records) => {
                let mut refused = None;
                for record in records {
                    if let Err(e) = self.take_record(record) {
                        refused.get_or_insert(e);
                    }
                }
                self.reconcile(now);
                refused.map_or(Ok(()), Err)
            }
            MetaMsg::Digest(entries) => {
                self.answer_digest(from, &entries, true);
                Ok(())
            }
            MetaMsg::DigestReply(entries) => {
                self.answer_digest(from, &entries, false);
                Ok(())
            }
        }
    }

    /// Keeps `record` if it is newer than what this node holds.
    fn take_record(&mut self, record: MetaRecord) -> Result<(), MembershipError> {
        if record.key == *self.key.as_bytes() || self.banned.contains(&record.key) {
            return Ok(());
        }
        record
            .meta
            .validate()
            .map_err(|e| MembershipError::BadPacket(e.to_string()))?;
        if let Some(peer) = self.peers.get_mut(&record.key) {
            let newer = peer
                .record
                .as_ref()
                .is_none_or(|old| record.stamp() > old.stamp());
            if newer {
                let changed = peer
                    .record
                    .as_ref()
                    .is_none_or(|old| old.meta != record.meta);
                peer.record = Some(record);
                peer.meta_changed |= changed;
            }
            return Ok(());
        }
        if self.peers.len() >= MAX_PEERS {
            return Ok(());
        }
        let Some(key) = self.resolve(&record.key) else {
            return Err(MembershipError::BadPacket(
                "metadata for bytes that are not a node key".into(),
            ));
        };
        self.peers.insert(
            record.key,
            Peer {
                key,
                id: None,
                health: Health::Down,
                incarnation: 0,
                suspect_since: None,
                record: Some(record),
                meta_changed: false,
                reported: None,
            },
        );
        Ok(())
    }

    /// This node's own metadata record.
    fn own_record(&self) -> MetaRecord {
        MetaRecord {
            key: self.key.to_bytes(),
            session: self.session,
            version: self.meta_version,
            meta: self.meta.clone(),
        }
    }

    /// Every record this node holds, its own first.
    fn records(&self) -> impl Iterator<Item = MetaRecord> + '_ {
        std::iter::once(self.own_record())
            .chain(self.peers.values().filter_map(|p| p.record.clone()))
    }

    /// Answers a digest from `from` with the records it lacks; with `reply`, also with this
    /// node's own digest when `from` holds records newer than this node's.
    fn answer_digest(&mut self, from: &PublicKey, entries: &[DigestEntry], reply: bool) {
        let Some(addr) = self.addr_of(from) else {
            return;
        };
        let theirs: BTreeMap<[u8; 32], (u64, u64)> = entries
            .iter()
            .map(|e| (e.key, (e.session, e.version)))
            .collect();
        let mut answer = Vec::new();
        let mut size = 16usize;
        for record in self.records() {
            if record.key == *from.as_bytes() {
                continue;
            }
            if theirs
                .get(&record.key)
                .is_some_and(|s| *s >= record.stamp())
            {
                continue;
            }
            let len = postcard::to_allocvec(&record).map_or(usize::MAX, |v| v.len());
            size = size.saturating_add(len);
            if size > MAX_PACKET {
                break;
            }
            answer.push(record);
        }
        if !answer.is_empty() {
            self.send_meta(*from, addr.clone(), &MetaMsg::Push(answer));
        }
        if reply {
            let own = *self.key.as_bytes();
            let they_have_newer = entries.iter().any(|e| {
                e.key != own
                    && !self.banned.contains(&e.key)
                    && self
                        .stamp_of(&e.key)
                        .is_none_or(|s| s < (e.session, e.version))
            });
            if they_have_newer {
                self.send_meta(*from, addr, &MetaMsg::DigestReply(self.digest()));
            }
        }
    }

    /// The `(session, version)` of the record held about `key`.
    fn stamp_of(&self, key: &[u8; 32]) -> Option<(u64, u64)> {
        self.peers
            .get(key)
            .and_then(|p| p.record.as_ref())
            .map(MetaRecord::stamp)
    }

    /// The digest of every record this node holds.
    fn digest(&self) -> Vec<DigestEntry> {
        self.records()
            .map(|r| DigestEntry {
                key: r.key,
                session: r.session,
                version: r.version,
            })
            .collect()
    }

    /// The best known cluster address of `key`.
    fn addr_of(&self, key: &PublicKey) -> Option<String> {
        let bytes = key.as_bytes();
        if let Some(peer) = self.peers.get(bytes) {
            if let Some(id) = &peer.id {
                return Some(id.addr.clone());
            }
            if let Some(record) = &peer.record {
                return Some(record.meta.addr.clone());
            }
        }
        self.seeds
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, id)| id.addr.clone())
    }

    fn send_meta(&mut self, to: PublicKey, addr: String, msg: &MetaMsg) {
        if let Some(packet) = msg.to_packet() {
            self.outputs.push_back(Output::Send { to, addr, packet });
        }
    }

    /// The public key for identity bytes, if they are one.
    fn resolve(&mut self, bytes: &[u8; 32]) -> Option<PublicKey> {
        if let Some(peer) = self.peers.get(bytes) {
            return Some(peer.key);
        }
        if let Some((key, _)) = self.seeds.iter().find(|(k, _)| k.as_bytes() == bytes) {
            return Some(*key);
        }
        if self.not_keys.contains(bytes) {
            return None;
        }
        match PublicKey::from_bytes(bytes) {
            Ok(key) => Some(key),
            Err(_) => {
                if self.not_keys.len() >= MAX_PEERS {
                    self.not_keys.clear();
                }
                self.not_keys.insert(*bytes);
                None
            }
        }
    }

    fn schedule(&mut self, now: Instant, after: Duration, timer: Timer<NodeId>) {
        match later(now, after) {
            Some(at) => {
                self.timer_seq = self.timer_seq.wrapping_add(1);
                self.timers.push(Reverse(Due {
                    at,
                    seq: self.timer_seq,
                    timer,
                }));
            }
            None => tracing::warn!(?timer, ?after, "membership timer past the end of time"),
        }
    }

    fn send_to_id(&mut self, to: &NodeId, packet: Vec<u8>) {
        if self.banned.contains(&to.key) || to.key == *self.key.as_bytes() {
            return;
        }
        if let Some(key) = self.resolve(&to.key) {
            self.outputs.push_back(Output::Send {
                to: key,
                addr: to.addr.clone(),
                packet,
            });
        }
    }

    /// Sends and schedules what foca asked for.
    fn absorb_io(
        &mut self,
        sends: Vec<(NodeId, Vec<u8>)>,
        timers: Vec<(Duration, Timer<NodeId>)>,
        now: Instant,
    ) {
        for (after, timer) in timers {
            self.schedule(now, after, timer);
        }
        for (to, packet) in sends {
            self.send_to_id(&to, packet);
        }
    }

    /// Acts on what foca asked for during one call, then brings the member table and the
    /// events up to date.
    fn after(&mut self, rt: Collect, now: Instant) {
        let Collect {
            sends,
            timers,
            notes,
        } = rt;
        self.absorb_io(sends, timers, now);
        let mut push_to: Vec<NodeId> = Vec::new();
        let mut renewed = false;
        for note in notes {
            match note {
                OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id) => {
                    push_to.push(id);
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(
                        session = id.session,
                        "declared down while alive: rejoining with a new session"
                    );
                    self.session = id.session;
                    self.defunct = false;
                    self.identity_changed(now);
                    renewed = true;
                }
                OwnedNotification::Defunct => {
                    self.defunct = true;
                    self.connected = false;
                }
                OwnedNotification::Active => {
                    self.defunct = false;
                    self.connected = true;
                }
                OwnedNotification::Idle => self.connected = false,
                _ => {}
            }
        }
        if renewed {
            push_to.extend(self.swim.iter_members().map(|m| m.id().clone()));
        }
        if !push_to.is_empty() {
            push_to.sort_by_key(|id| id.key);
            push_to.dedup_by(|a, b| a.key == b.key);
            let msg = MetaMsg::Push(vec![self.own_record()]);
            if let Some(packet) = msg.to_packet() {
                for id in &push_to {
                    self.send_to_id(id, packet.clone());
                }
            }
        }
        self.reconcile(now);
    }

    /// Brings the member table in line with foca's, forces removed nodes down, and emits the
    /// events for what changed.
    fn reconcile(&mut self, now: Instant) {
        let mut to_down: Vec<NodeId> = Vec::new();
        let mut fresh: Vec<(NodeId, Health, u16)> = Vec::new();
        let mut stale: Vec<Member<NodeId>> = Vec::new();
        let t = self.timing;
        let stale_after = t
            .suspect_to_down_after
            .saturating_add(t.probe_period.saturating_mul(2));
        for m in self.swim.iter_membership_state() {
            let id = m.id();
            if self.banned.contains(&id.key) {
                if m.state() != State::Down {
                    to_down.push(id.clone());
                }
                continue;
            }
            let health = match m.state() {
                State::Alive => Health::Alive,
                State::Suspect => Health::Suspect,
                State::Down => Health::Down,
            };
            let incarnation = m.incarnation();
            match self.peers.get_mut(&id.key) {
                Some(peer) => {
                    peer.health = health;
                    peer.incarnation = incarnation;
                    if peer.id.as_ref() != Some(id) {
                        peer.id = Some(id.clone());
                    }
                    if health != Health::Suspect {
                        peer.suspect_since = None;
                    } else {
                        let since = *peer.suspect_since.get_or_insert(now);
                        // Suspect for longer than foca's own down timer would take: that
                        // timer was dropped (an identity change resets foca's timers) and the
                        // suspect, alive, never heard of the suspicion. Clear it locally; if
                        // the member is really dead, the next probe suspects it again.
                        if now.saturating_duration_since(since) > stale_after {
                            if let Some(next) = incarnation.checked_add(1) {
                                stale.push(Member::new(id.clone(), next, State::Alive));
                                peer.health = Health::Alive;
                                peer.incarnation = next;
                                peer.suspect_since = None;
                            }
                        }
                    }
                }
                None => fresh.push((id.clone(), health, incarnation)),
            }
        }
        for (id, health, incarnation) in fresh {
            if self.peers.len() >= MAX_PEERS {
                break;
            }
            if let Some(key) = self.resolve(&id.key) {
                self.peers.insert(
                    id.key,
                    Peer {
                        key,
                        id: Some(id),
                        health,
                        incarnation,
                        suspect_since: None,
                        record: None,
                        meta_changed: false,
                        reported: None,
                    },
                );
            }
        }
        if !to_down.is_empty() || !stale.is_empty() {
            let mut rt = Collect::default();
            if let Err(e) =
                self.swim
                    .apply_many(to_down.into_iter().map(Member::down), true, &mut rt)
            {
                tracing::debug!(error = %e, "forcing removed nodes down");
            }
            if let Err(e) = self.swim.apply_many(stale.into_iter(), false, &mut rt) {
                tracing::debug!(error = %e, "clearing stale suspicions");
            }
            self.absorb_io(rt.sends, rt.timers, now);
        }
        self.emit_events();
    }

    fn emit_events(&mut self) {
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            Up,
            Rejoined,
            Suspect,
            Down,
            MetaChanged,
        }
        let mut events = Vec::new();
        for peer in self.peers.values_mut() {
            let (Some(id), true) = (&peer.id, peer.record.is_some()) else {
                continue;
            };
            let (health, session) = (peer.health, id.session);
            let mut kinds: [Option<Kind>; 3] = [None; 3];
            let alive_kind = |first: Kind| match health {
                Health::Suspect => [Some(first), Some(Kind::Suspect), None],
                _ => [Some(first), None, None],
            };
            match peer.reported {
                None if health != Health::Down => {
                    kinds = alive_kind(Kind::Up);
                    peer.reported = Some((health, session));
                }
                None => {}
                Some((was, was_session)) if was_session != session => {
                    if health != Health::Down {
                        kinds = alive_kind(Kind::Rejoined);
                    } else if was != Health::Down {
                        kinds[0] = Some(Kind::Down);
                    }
                    peer.reported = Some((health, session));
                }
                Some((was, _)) if was != health => {
                    kinds[0] = Some(match health {
                        Health::Alive => Kind::Up,
                        Health::Suspect => Kind::Suspect,
                        Health::Down => Kind::Down,
                    });
                    peer.reported = Some((health, session));
                }
                Some(_) => {}
            }
            if peer.meta_changed {
                let carried = matches!(kinds[0], Some(Kind::Up | Kind::Rejoined));
                if peer.reported.is_some() && !carried {
                    kinds[2] = Some(Kind::MetaChanged);
                }
                peer.meta_changed = false;
            }
            if kinds.iter().all(Option::is_none) {
                continue;
            }
            let Some(view) = peer.view() else {
                continue;
            };
            for kind in kinds.into_iter().flatten() {
                let (key, name) = (peer.key, view.meta.name.clone());
                events.push(match kind {
                    Kind::Up => Event::Up(view.clone()),
                    Kind::Rejoined => Event::Rejoined(view.clone()),
                    Kind::MetaChanged => Event::MetaChanged(view.clone()),
                    Kind::Suspect => Event::Suspect { key, name },
                    Kind::Down => Event::Down { key, name },
                });
            }
        }
        self.outputs.extend(events.into_iter().map(Output::Event));
    }

    /// Fires every timer due at `now`: foca's probes and gossip, the metadata digest, and
    /// join retries while this node has no live member.
    pub fn handle_timers(&mut self, now: Instant) {
        if self.left {
            return;
        }
        loop {
            let due = matches!(self.timers.peek(), Some(Reverse(d)) if d.at <= now);
            if !due {
                break;
            }
            let Some(Reverse(due)) = self.timers.pop() else {
                break;
            };
            let suspect = match &due.timer {
                Timer::ChangeSuspectToDown { member_id, .. } => Some(member_id.clone()),
                _ => None,
            };
            let mut rt = Collect::default();
            if let Err(e) = self.swim.handle_timer(due.timer, &mut rt) {
                tracing::debug!(error = %e, "membership timer");
            }
            if let Some(id) = suspect {
                // foca 2.0.0 sends its "you are down" courtesy message (TurnUndead) when the
                // down timer fires even if the suspect refuted in time (the incarnation check
                // failed and nothing was applied): the suspect, alive, would then throw its
                // identity away and rejoin. Drop it while the member is still active here.
                let refuted = self
                    .swim
                    .iter_membership_state()
                    .any(|m| m.id() == &id && m.state() != State::Down);
                if refuted {
                    rt.sends.retain(|(to, _)| to != &id);
                }
            }
            self.after(rt, now);
        }
        if now >= self.next_sync {
            self.next_sync = later(now, self.timing.meta_sync_period).unwrap_or(now);
            if self.swim.num_members() > 0 {
                self.send_digest();
            }
        }
        if now >= self.next_rejoin {
            self.next_rejoin = later(now, self.timing.rejoin_period).unwrap_or(now);
            if !self.connected && !self.defunct {
                self.retry_join(now);
            }
        }
    }

    /// Sends the digest of the records this node holds to one random live member.
    fn send_digest(&mut self) {
        let live: Vec<NodeId> = self
            .swim
            .iter_members()
            .map(|m| m.id().clone())
            .filter(|id| !self.banned.contains(&id.key))
            .collect();
        if live.is_empty() {
            return;
        }
        let target = live[self.rng.below(live.len())].clone();
        if let Some(packet) = MetaMsg::Digest(self.digest()).to_packet() {
            self.send_to_id(&target, packet);
        }
    }

    /// foca reset itself for a new identity: it stays disconnected (no probes) until a member
    /// talks to the new identity, and its pending down timers are void. Contact members at
    /// once, and again every `rejoin_period` until connected.
    fn identity_changed(&mut self, now: Instant) {
        self.connected = false;
        self.next_rejoin = now;
    }

    /// Candidates to contact while foca is not connected: live members first (when there are
    /// some, only them), else every known member and the seeds.
    fn rejoin_candidates(&self) -> Vec<NodeId> {
        let live: Vec<NodeId> = self
            .swim
            .iter_members()
            .map(|m| m.id().clone())
            .filter(|id| !self.banned.contains(&id.key))
            .collect();
        if !live.is_empty() {
            return live;
        }
        let mut out: Vec<NodeId> = self
            .peers
            .values()
            .filter_map(|p| p.id.clone())
            .filter(|id| !self.banned.contains(&id.key))
            .collect();
        for (_, id) in &self.seeds {
            if !out.iter().any(|o| o.key == id.key) && !self.banned.contains(&id.key) {
                out.push(id.clone());
            }
        }
        out
    }

    fn retry_join(&mut self, now: Instant) {
        let mut candidates = self.rejoin_candidates();
        let mut rt = Collect::default();
        for _ in 0..REJOIN_FANOUT {
            if candidates.is_empty() {
                break;
            }
            let pick = self.rng.below(candidates.len());
            let id = candidates.swap_remove(pick);
            if let Err(e) = self.swim.announce(id, &mut rt) {
                tracing::debug!(error = %e, "membership rejoin");
            }
        }
        self.after(rt, now);
    }

    /// When [`Membership::handle_timers`] should next be called (`None`: no timer pending).
    /// Ask again after every other call.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let mut next = self.timers.peek().map(|Reverse(d)| d.at);
        let mut periodic = Vec::with_capacity(2);
        if self.swim.num_members() > 0 {
            periodic.push(self.next_sync);
        }
        if !self.connected && !self.defunct && !self.rejoin_candidates().is_empty() {
            periodic.push(self.next_rejoin);
        }
        for p in periodic {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        next
    }

    /// Changes this node's advertised metadata (cut to the limits, see [`Meta::sanitized`]):
    /// it is pushed to every live member at once, and reaches the others through the digest
    /// exchange. Metadata equal to the current one changes nothing. A new `addr` also gives
    /// this node a new session (its identity includes the address), which others see as
    /// [`Event::Rejoined`].
    pub fn set_meta(&mut self, meta: Meta, now: Instant) {
        let meta = meta.sanitized();
        if meta == self.meta {
            return;
        }
        let new_addr = (meta.addr != self.meta.addr).then(|| meta.addr.clone());
        self.meta = meta;
        self.meta_version = self.meta_version.saturating_add(1);
        if self.left {
            return;
        }
        if let Some(addr) = new_addr {
            if let Some(session) = self.session.checked_add(1) {
                let id = NodeId {
                    key: self.key.to_bytes(),
                    addr,
                    session,
                };
                let mut rt = Collect::default();
                match self.swim.change_identity(id, &mut rt) {
                    Ok(()) => {
                        self.session = session;
                        self.identity_changed(now);
                    }
                    Err(e) => tracing::warn!(error = %e, "membership address change"),
                }
                self.after(rt, now);
            }
        }
        let live: Vec<NodeId> = self.swim.iter_members().map(|m| m.id().clone()).collect();
        if let Some(packet) = MetaMsg::Push(vec![self.own_record()]).to_packet() {
            for id in &live {
                self.send_to_id(id, packet.clone());
            }
        }
    }

    /// Leaves the cluster gracefully: a few members are told at once and spread the word, so
    /// the others mark this node down quickly. Send the pending outputs before shutting down.
    /// Afterwards this node ignores packets and timers.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let mut rt = Collect::default();
        if let Err(e) = self.swim.leave_cluster(&mut rt) {
            tracing::debug!(error = %e, "membership leave");
        }
        self.after(rt, now);
        self.left = true;
        self.timers.clear();
    }

    /// Hint from the link layer that `key`'s link broke. It never marks the node down by
    /// itself: if the node is believed alive, it is sent an announce (which opens a new link
    /// and, if the node is alive, brings back its member list); the probes decide.
    pub fn link_broken(&mut self, key: &PublicKey, now: Instant) {
        if self.left || self.banned.contains(key.as_bytes()) {
            return;
        }
        let Some(id) = self
            .peers
            .get(key.as_bytes())
            .filter(|p| p.health != Health::Down)
            .and_then(|p| p.id.clone())
        else {
            return;
        };
        let mut rt = Collect::default();
        if let Err(e) = self.swim.announce(id, &mut rt) {
            tracing::debug!(error = %e, "membership link hint");
        }
        self.after(rt, now);
    }

    /// Forgets a removed node (`plx node remove`) and bans its key: it is declared down (and
    /// the cluster told), its packets are refused, nothing is sent to it, and gossip about it
    /// is ignored until [`Membership::unban`]. Emits [`Event::Down`] if it was reported alive.
    pub fn remove(&mut self, key: &PublicKey, now: Instant) {
        let bytes = key.to_bytes();
        self.banned.insert(bytes);
        self.seeds.retain(|(k, _)| k != key);
        if let Some(peer) = self.peers.remove(&bytes) {
            if peer.reported.is_some_and(|(h, _)| h != Health::Down) {
                self.outputs.push_back(Output::Event(Event::Down {
                    key: *key,
                    name: peer.name(),
                }));
            }
        }
        self.outputs
            .retain(|o| !matches!(o, Output::Send { to, .. } if to == key));
        self.reconcile(now);
    }

    /// Lets a removed node back in (it must join again).
    pub fn unban(&mut self, key: &PublicKey) {
        self.banned.remove(key.as_bytes());
    }

    /// Whether `key` is banned ([`Membership::remove`]).
    pub fn is_removed(&self, key: &PublicKey) -> bool {
        self.banned.contains(key.as_bytes())
    }

    /// The next output to act on; `None` when drained.
    pub fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Every known member whose metadata is known, this node included, by key.
    pub fn members(&self) -> Vec<MemberView> {
        let mut out: Vec<MemberView> = self.peers.values().filter_map(Peer::view).collect();
        out.push(self.local());
        out.sort_by_key(|v| v.key);
        out
    }

    /// One member's view, if known (this node's own included).
    pub fn member(&self, key: &PublicKey) -> Option<MemberView> {
        if *key == self.key {
            return Some(self.local());
        }
        self.peers.get(key.as_bytes()).and_then(Peer::view)
    }

    /// This node: its metadata, `Alive` (or `Down` once it has left or was declared down
    /// without a way to rejoin), and its session.
    pub fn local(&self) -> MemberView {
        MemberView {
            key: self.key,
            meta: self.meta.clone(),
            health: if self.left || self.defunct {
                Health::Down
            } else {
                Health::Alive
            },
            incarnation: self.session,
        }
    }

    /// How many members are alive or suspect, this node excluded.
    pub fn live_count(&self) -> usize {
        self.swim.num_members()
    }
}

fn foca_error(e: foca::Error) -> MembershipError {
    match e {
        foca::Error::Decode(_)
        | foca::Error::MalformedPacket
        | foca::Error::CustomBroadcast(_)
        | foca::Error::IndirectForOurselves
        | foca::Error::DataFromOurselves
        | foca::Error::DataTooBig => MembershipError::BadPacket(e.to_string()),
        other => MembershipError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
