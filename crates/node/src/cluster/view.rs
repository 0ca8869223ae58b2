//! What this node knows of the cluster: the roster (from the replicated state), health and
//! metadata (from membership), which node provides what.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;
use std::time::Instant;

use plexus_cluster::membership::{Health, Meta};
use plexus_identity::PublicKey;
use tokio::sync::watch;

/// A member of the roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Raft node id.
    pub raft_id: u64,
    /// Node id (the key's fingerprint).
    pub id: String,
    /// Name.
    pub name: String,
    /// Cluster address.
    pub addr: String,
    /// Node key.
    pub key: PublicKey,
    /// Voter (or learner).
    pub voter: bool,
}

/// What membership last said of a member.
struct Seen {
    health: Health,
    meta: Option<Meta>,
    /// Since when it has been alive, or since when it has not (suspect and down are one
    /// stretch: a member is gone from the time it stopped answering).
    since: Instant,
}

/// The shared picture of the cluster.
pub struct View {
    me: PublicKey,
    /// When this view was made: members not heard from count as suspect since then.
    made: Instant,
    roster: RwLock<Vec<Member>>,
    health: RwLock<HashMap<PublicKey, Seen>>,
    services: RwLock<BTreeMap<u64, Vec<String>>>,
    invites: RwLock<HashSet<[u8; 32]>>,
    leader: RwLock<Option<u64>>,
    changes: watch::Sender<u64>,
}

impl View {
    /// An empty view for the node with key `me`.
    pub fn new(me: PublicKey) -> View {
        View {
            me,
            made: Instant::now(),
            roster: RwLock::default(),
            health: RwLock::default(),
            services: RwLock::default(),
            invites: RwLock::default(),
            leader: RwLock::default(),
            changes: watch::channel(0).0,
        }
    }

    /// This node's key.
    pub fn me(&self) -> &PublicKey {
        &self.me
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Notified on every change of health or roster.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replaces the roster.
    pub fn set_roster(&self, members: Vec<Member>) {
        if let Ok(mut r) = self.roster.write() {
            *r = members;
        }
        self.bump();
    }

    /// Replaces the service table.
    pub fn set_services(&self, services: BTreeMap<u64, Vec<String>>) {
        if let Ok(mut s) = self.services.write() {
            *s = services;
        }
    }

    /// Replaces the pending invite keys.
    pub fn set_invites(&self, invites: HashSet<[u8; 32]>) {
        if let Ok(mut s) = self.invites.write() {
            *s = invites;
        }
    }

    /// Records the current raft leader.
    pub fn set_leader(&self, leader: Option<u64>) {
        if let Ok(mut l) = self.leader.write() {
            *l = leader;
        }
    }

    /// The current raft leader's id.
    pub fn leader(&self) -> Option<u64> {
        self.leader.read().ok().and_then(|l| *l)
    }

    /// Records a member's health and metadata.
    pub fn set_health(&self, key: PublicKey, health: Health, meta: Option<Meta>) {
        if let Ok(mut h) = self.health.write() {
            let entry = h.entry(key).or_insert(Seen {
                health: Health::Suspect,
                meta: None,
                since: self.made,
            });
            if (entry.health == Health::Alive) != (health == Health::Alive) {
                entry.since = Instant::now();
            }
            entry.health = health;
            if meta.is_some() {
                entry.meta = meta;
            }
        }
        self.bump();
    }

    /// The roster.
    pub fn roster(&self) -> Vec<Member> {
        self.roster.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// Whether `key` is in the roster.
    pub fn is_member(&self, key: &PublicKey) -> bool {
        self.roster
            .read()
            .map(|r| r.iter().any(|m| m.key == *key))
            .unwrap_or(false)
    }

    /// Whether `key` is a pending invite key.
    pub fn is_invite(&self, key: &PublicKey) -> bool {
        self.invites
            .read()
            .map(|i| i.contains(key.as_bytes()))
            .unwrap_or(false)
    }

    /// A member by name, id (full or a prefix of at least 8 characters) or raft id.
    pub fn find(&self, name_or_id: &str) -> Option<Member> {
        let roster = self.roster();
        roster
            .iter()
            .find(|m| m.name == name_or_id || m.id == name_or_id)
            .or_else(|| {
                (name_or_id.len() >= 8)
                    .then(|| roster.iter().find(|m| m.id.starts_with(name_or_id)))
                    .flatten()
            })
            .cloned()
    }

    /// A member by key.
    pub fn by_key(&self, key: &PublicKey) -> Option<Member> {
        self.roster().into_iter().find(|m| m.key == *key)
    }

    /// A member by raft id.
    pub fn by_raft_id(&self, id: u64) -> Option<Member> {
        self.roster().into_iter().find(|m| m.raft_id == id)
    }

    /// A member's health (this node is always alive; unknown members are suspect until
    /// membership says otherwise).
    pub fn health(&self, key: &PublicKey) -> Health {
        self.health_since(key).0
    }

    /// A member's health, and since when it has been alive or, if it is not, since when it
    /// has not been (a suspect member that goes down has been gone since it became suspect;
    /// unknown members since this view was made).
    pub fn health_since(&self, key: &PublicKey) -> (Health, Instant) {
        if *key == self.me {
            return (Health::Alive, self.made);
        }
        self.health
            .read()
            .ok()
            .and_then(|h| h.get(key).map(|e| (e.health, e.since)))
            .unwrap_or((Health::Suspect, self.made))
    }

    /// A member's last advertised metadata.
    pub fn meta(&self, key: &PublicKey) -> Option<Meta> {
        self.health
            .read()
            .ok()
            .and_then(|h| h.get(key).and_then(|e| e.meta.clone()))
    }

    /// The services each member provides, by member.
    pub fn services(&self) -> Vec<(Member, Vec<String>)> {
        let services = self.services.read().map(|s| s.clone()).unwrap_or_default();
        self.roster()
            .into_iter()
            .filter_map(|m| services.get(&m.raft_id).map(|s| (m, s.clone())))
            .collect()
    }

    /// Live members that provide `service`, least loaded first (load per core).
    pub fn providers(&self, service: &str) -> Vec<Member> {
        let mut found: Vec<(f64, Member)> = self
            .services()
            .into_iter()
            .filter(|(m, s)| s.iter().any(|x| x == service) && self.health(&m.key) == Health::Alive)
            .map(|(m, _)| {
                let load = self
                    .meta(&m.key)
                    .map(|meta| f64::from(meta.load) / f64::from(meta.cores.max(1)))
                    .unwrap_or(f64::MAX);
                (load, m)
            })
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        found.into_iter().map(|(_, m)| m).collect()
    }

    /// Waits until `key` is marked down (or forever).
    pub async fn wait_down(&self, key: &PublicKey) {
        let mut rx = self.subscribe();
        loop {
            if self.health(key) == Health::Down {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use plexus_identity::{KeyKind, Keypair};

    fn key() -> PublicKey {
        Keypair::generate(KeyKind::Node, "n", &mut rand_core::OsRng)
            .unwrap()
            .public()
    }

    fn meta(name: &str, cores: u32, load: f32) -> Meta {
        Meta {
            name: name.into(),
            cores,
            load,
            ..Meta::default()
        }
    }

    fn member(i: u64, name: &str, key: PublicKey) -> Member {
        Member {
            raft_id: i,
            id: key.fingerprint(),
            name: name.into(),
            addr: format!("127.0.0.{i}:7700"),
            key,
            voter: true,
        }
    }

    #[test]
    fn providers_are_live_and_least_loaded_first() {
        let keys: Vec<PublicKey> = (0..4).map(|_| key()).collect();
        let view = View::new(keys[0]);
        view.set_roster(vec![
            member(1, "a", keys[0]),
            member(2, "b", keys[1]),
            member(3, "c", keys[2]),
            member(4, "d", keys[3]),
        ]);
        view.set_services(
            [
                (1, vec!["calc".to_owned()]),
                (2, vec!["calc".to_owned(), "cam".to_owned()]),
                (3, vec!["calc".to_owned()]),
                (4, vec!["calc".to_owned()]),
            ]
            .into(),
        );
        view.set_health(keys[0], Health::Alive, Some(meta("a", 2, 1.8)));
        view.set_health(keys[1], Health::Alive, Some(meta("b", 8, 2.0)));
        view.set_health(keys[2], Health::Suspect, Some(meta("c", 8, 0.0)));
        view.set_health(keys[3], Health::Down, Some(meta("d", 8, 0.0)));
        let names = |v: Vec<Member>| v.into_iter().map(|m| m.name).collect::<Vec<_>>();
        // b: 0.25 per core, a: 0.9; c is suspect and d is down.
        assert_eq!(names(view.providers("calc")), ["b", "a"]);
        assert_eq!(names(view.providers("cam")), ["b"]);
        assert!(view.providers("nothing").is_empty());
        view.set_health(keys[2], Health::Alive, None);
        assert_eq!(names(view.providers("calc")), ["c", "b", "a"]);
    }

    #[test]
    fn members_are_found_by_name_id_or_long_prefix() {
        let k = key();
        let view = View::new(k);
        view.set_roster(vec![member(1, "a", k)]);
        let id = k.fingerprint();
        assert_eq!(view.find("a").map(|m| m.raft_id), Some(1));
        assert_eq!(view.find(&id).map(|m| m.raft_id), Some(1));
        assert_eq!(view.find(&id[..8]).map(|m| m.raft_id), Some(1));
        assert_eq!(view.find(&id[..4]), None);
        assert_eq!(view.find("b"), None);
        assert!(view.is_member(&k));
        assert_eq!(view.health(&k), Health::Alive, "this node is always alive");
        assert_eq!(view.health(&key()), Health::Suspect);
    }

    #[test]
    fn a_member_is_gone_since_it_stopped_being_alive() {
        let view = View::new(key());
        let other = key();
        let (health, made) = view.health_since(&other);
        assert_eq!(health, Health::Suspect, "not heard from yet");
        view.set_health(other, Health::Down, None);
        assert_eq!(
            view.health_since(&other),
            (Health::Down, made),
            "gone since the view was made, when nothing was known of it"
        );
        let before = Instant::now();
        view.set_health(other, Health::Alive, None);
        let (_, alive) = view.health_since(&other);
        assert!(alive >= before, "alive since now");
        view.set_health(other, Health::Alive, None);
        assert_eq!(view.health_since(&other), (Health::Alive, alive));
        let before = Instant::now();
        view.set_health(other, Health::Suspect, None);
        let (_, suspect) = view.health_since(&other);
        assert!(suspect >= before, "suspect since now");
        view.set_health(other, Health::Down, None);
        assert_eq!(
            view.health_since(&other),
            (Health::Down, suspect),
            "down since it became suspect"
        );
    }

    #[tokio::test]
    async fn wait_down_returns_when_the_member_goes_down() {
        let k = key();
        let other = key();
        let view = std::sync::Arc::new(View::new(k));
        view.set_health(other, Health::Alive, None);
        let waiter = {
            let view = view.clone();
            tokio::spawn(async move { view.wait_down(&other).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        view.set_health(other, Health::Down, None);
        waiter.await.unwrap();
    }
}
