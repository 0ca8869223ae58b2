//! Where chunks live: how many copies each needs, which nodes take a new copy, what repair does
//! when nodes are lost, and what a node's sweep does with a copy of its own.
//!
//! Every decision is a pure function of the chunk's listed homes and a [`Nodes`] picture (the
//! roster with each node's health, how long it has been down and its free disk), so the
//! leader's repair, each node's sweep and `status` agree, and a seeded simulation
//! (`tests/fs_repair.rs`) runs them over many failures.
//!
//! A listed home is **live** while its node is up, **waiting** while it has been down for less
//! than the grace period (it may come back with its disk), and **lost** once it has been down
//! longer, or left the roster. A chunk needs R = min([`REPLICAS`], nodes not lost) copies
//! that are live or waiting.

use std::collections::BTreeMap;

/// Copies of each chunk a cluster of three or more nodes keeps.
pub const REPLICAS: usize = 3;

/// Room a node keeps free on its disk: a new copy goes to a node with at least this much
/// more than the chunk.
pub const DISK_RESERVE: u64 = 64 << 20;

/// One node of the roster, as replica decisions see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// Whether membership sees it alive.
    pub up: bool,
    /// How long it has been down, in ms (0 while up).
    pub down_ms: u64,
    /// Free bytes on the disk of its data directory, when known.
    pub free: Option<u64>,
}

impl NodeState {
    /// An up node with `free` bytes free.
    pub fn up(free: Option<u64>) -> NodeState {
        NodeState {
            up: true,
            down_ms: 0,
            free,
        }
    }

    /// A node down for `down_ms`.
    pub fn down(down_ms: u64) -> NodeState {
        NodeState {
            up: false,
            down_ms,
            free: None,
        }
    }
}

/// How a listed home of a chunk counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Its node is up.
    Live,
    /// Its node has been down for less than the grace period.
    Waiting,
    /// Its node has been down longer, or is not in the roster.
    Lost,
}

/// The roster at one moment, with the grace period a down node gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nodes {
    nodes: BTreeMap<String, NodeState>,
    grace_ms: u64,
}

impl Nodes {
    /// No nodes yet; down nodes count as lost after `grace_ms`.
    pub fn new(grace_ms: u64) -> Nodes {
        Nodes {
            nodes: BTreeMap::new(),
            grace_ms,
        }
    }

    /// Adds (or replaces) a node; returns the picture for chaining.
    pub fn with(mut self, name: impl Into<String>, state: NodeState) -> Nodes {
        self.insert(name, state);
        self
    }

    /// Adds (or replaces) a node.
    pub fn insert(&mut self, name: impl Into<String>, state: NodeState) {
        self.nodes.insert(name.into(), state);
    }

    /// The nodes by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &NodeState)> {
        self.nodes.iter()
    }

    /// How a home on the node `name` counts.
    pub fn standing(&self, name: &str) -> Standing {
        match self.nodes.get(name) {
            Some(n) if n.up => Standing::Live,
            Some(n) if n.down_ms < self.grace_ms => Standing::Waiting,
            _ => Standing::Lost,
        }
    }

    /// Whether `name` is in the roster (up or down).
    pub fn is_member(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// How many copies each chunk needs by the roster alone, whatever the nodes' health:
    /// `REPLICAS`, or every member of a smaller cluster (at least one).
    pub fn roster_target(&self) -> usize {
        self.nodes.len().clamp(1, REPLICAS)
    }

    /// R: how many live or waiting copies each chunk needs, `REPLICAS` or every node not lost
    /// of a smaller cluster (at least one).
    pub fn target(&self) -> usize {
        let standing = self
            .nodes
            .keys()
            .filter(|n| self.standing(n) != Standing::Lost)
            .count();
        standing.clamp(1, REPLICAS)
    }

    /// Up to `n` up nodes, none of `exclude`, to take a new copy of the chunk `hash` of `len`
    /// bytes, best first. Each node with room for it (more than the chunk and
    /// [`DISK_RESERVE`] free, or free unknown) competes with a weighted rendezvous score: a
    /// hash of the chunk and the node's name, weighted by its free space, so copies spread
    /// over the nodes, a node with twice the free space gets about twice the chunks, and
    /// every node computes the same order.
    pub fn choose(&self, hash: &[u8; 32], len: u64, n: usize, exclude: &[&str]) -> Vec<String> {
        let known: Vec<u64> = self.nodes.values().filter_map(|s| s.free).collect();
        // A node whose free space is unknown weighs as the average of the others.
        let unknown_weight = if known.is_empty() {
            1.0
        } else {
            known.iter().map(|&f| f as f64).sum::<f64>() / known.len() as f64
        };
        let mut scored: Vec<(f64, &String)> = self
            .nodes
            .iter()
            .filter(|(name, s)| s.up && !exclude.contains(&name.as_str()))
            .filter(|(_, s)| s.free.is_none_or(|f| f >= len.saturating_add(DISK_RESERVE)))
            .map(|(name, s)| {
                let weight = s.free.map_or(unknown_weight, |f| f as f64).max(1.0);
                (rendezvous_key(hash, name, weight), name)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(n)
            .map(|(_, name)| name.clone())
            .collect()
    }
}

/// Efraimidis–Spirakis key `-ln(u) / weight`, with `u` in (0, 1) from a hash of the chunk and
/// the node: the smallest keys win.
fn rendezvous_key(hash: &[u8; 32], node: &str, weight: f64) -> f64 {
    let mut h = blake3::Hasher::new();
    h.update(hash);
    h.update(node.as_bytes());
    let digest = h.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest.as_bytes()[..8]);
    let u = (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64;
    let u = u.max(f64::MIN_POSITIVE);
    -u.ln() / weight
}

/// A chunk's listed homes, sorted by standing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    /// Homes on up nodes.
    pub live: Vec<String>,
    /// Homes on nodes down for less than the grace period.
    pub waiting: Vec<String>,
    /// Homes on nodes down longer, or gone from the roster.
    pub lost: Vec<String>,
}

impl Copies {
    /// The homes that count: live and waiting.
    pub fn counted(&self) -> usize {
        self.live.len() + self.waiting.len()
    }
}

/// Sorts `homes` by how they count in `nodes`.
pub fn copies(homes: &[String], nodes: &Nodes) -> Copies {
    let mut out = Copies::default();
    for home in homes {
        match nodes.standing(home) {
            Standing::Live => out.live.push(home.clone()),
            Standing::Waiting => out.waiting.push(home.clone()),
            Standing::Lost => out.lost.push(home.clone()),
        }
    }
    out
}

/// What repair does for one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// It has R copies that count, and lists no lost home.
    Enough,
    /// Too few copies count, but none is live: wait for a down node to come back.
    Wait,
    /// No listed home is live or waiting: nothing can be copied.
    Lost,
    /// Copy it from one of `from` (live homes) to each of `to`, then stop listing `drop`.
    Copy {
        /// Live homes to copy from, in the order to try them.
        from: Vec<String>,
        /// The nodes to copy to.
        to: Vec<String>,
        /// Lost homes to stop listing once the copies are made.
        drop: Vec<String>,
    },
    /// It has enough copies: stop listing its lost homes.
    Forget {
        /// The lost homes.
        drop: Vec<String>,
    },
    /// Too few copies count and no up node can take one (all hold it, or are full).
    Stuck,
}

/// What repair does for the chunk `hash` of `len` bytes listed on `homes`.
pub fn plan(hash: &[u8; 32], len: u64, homes: &[String], nodes: &Nodes) -> Repair {
    let c = copies(homes, nodes);
    let target = nodes.target();
    if c.counted() >= target {
        return if c.lost.is_empty() {
            Repair::Enough
        } else {
            Repair::Forget { drop: c.lost }
        };
    }
    if c.live.is_empty() {
        return if c.waiting.is_empty() {
            Repair::Lost
        } else {
            Repair::Wait
        };
    }
    let exclude: Vec<&str> = homes.iter().map(String::as_str).collect();
    let to = nodes.choose(hash, len, target - c.counted(), &exclude);
    if to.is_empty() {
        return if c.lost.is_empty() {
            Repair::Stuck
        } else {
            Repair::Forget { drop: c.lost }
        };
    }
    Repair::Copy {
        from: c.live,
        to,
        drop: c.lost,
    }
}

/// What a node's sweep does with a copy in its own store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// It is a listed home, the copy is too new to judge, or the chunk looks short of copies
    /// from here only: keep it.
    Keep,
    /// The chunk is referenced, not listed here, and short of copies, by the roster as well:
    /// list this node.
    Register,
    /// Nothing needs the copy: delete it.
    Delete,
}

/// What the node `me` does with its copy of a chunk: `homes` is `None` when no file names
/// the chunk; `old` says the copy is older than a write could take to commit, so a chunk
/// staged by a write in progress is never deleted.
///
/// A chunk short of copies in `nodes` is listed here only if it also lists fewer homes on
/// members than the roster needs ([`Nodes::roster_target`]), whatever their health: this
/// node's picture of the others' health may be behind (a node just back from a partition
/// still sees the others down, past the grace period, until membership hears from them,
/// while the leader already answers it), and nothing would ever unlist the surplus copy.
/// Where the roster lists enough homes, the leader's repair makes the copies the chunk lacks
/// (and a node with a copy is listed if it is chosen); until then this copy is kept.
pub fn sweep(me: &str, homes: Option<&[String]>, old: bool, nodes: &Nodes) -> Sweep {
    let delete = if old { Sweep::Delete } else { Sweep::Keep };
    let Some(homes) = homes else {
        return delete;
    };
    if homes.iter().any(|h| h == me) {
        return Sweep::Keep;
    }
    if copies(homes, nodes).counted() >= nodes.target() {
        return delete;
    }
    let on_members = homes.iter().filter(|h| nodes.is_member(h)).count();
    if on_members < nodes.roster_target() {
        Sweep::Register
    } else {
        Sweep::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn three_up() -> Nodes {
        Nodes::new(30_000)
            .with("n1", NodeState::up(Some(100 << 30)))
            .with("n2", NodeState::up(Some(100 << 30)))
            .with("n3", NodeState::up(Some(100 << 30)))
    }

    #[test]
    fn standing_follows_health_grace_and_roster() {
        let nodes = Nodes::new(30_000)
            .with("up", NodeState::up(None))
            .with("brief", NodeState::down(29_999))
            .with("long", NodeState::down(30_000));
        assert_eq!(nodes.standing("up"), Standing::Live);
        assert_eq!(nodes.standing("brief"), Standing::Waiting);
        assert_eq!(nodes.standing("long"), Standing::Lost);
        assert_eq!(nodes.standing("gone"), Standing::Lost);
        assert_eq!(nodes.target(), 2);
        assert_eq!(Nodes::new(1).target(), 1);
        assert_eq!(three_up().with("n4", NodeState::up(None)).target(), 3);
    }

    #[test]
    fn choose_skips_down_excluded_and_full_nodes_and_is_deterministic() {
        let nodes = three_up()
            .with("full", NodeState::up(Some(DISK_RESERVE)))
            .with("down", NodeState::down(1));
        let chosen = nodes.choose(&[7; 32], 1 << 20, 5, &["n2"]);
        assert_eq!(chosen.len(), 2);
        assert!(chosen.iter().all(|n| n == "n1" || n == "n3"));
        assert_eq!(chosen, nodes.choose(&[7; 32], 1 << 20, 5, &["n2"]));
    }

    #[test]
    fn choose_spreads_by_free_space() {
        let nodes = Nodes::new(1)
            .with("big", NodeState::up(Some(300 << 30)))
            .with("small", NodeState::up(Some(100 << 30)));
        let firsts = (0..2000u32)
            .filter(|i| {
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&i.to_le_bytes());
                nodes.choose(&hash, 1, 1, &[]) == ["big"]
            })
            .count();
        // Weighted 3:1, `big` should be first about 75% of the time.
        assert!((1350..1650).contains(&firsts), "{firsts}");
    }

    #[test]
    fn plans_for_each_case() {
        let hash = [1; 32];
        let nodes = three_up()
            .with("n4", NodeState::up(Some(1 << 40)))
            .with("n5", NodeState::down(1_000))
            .with("n6", NodeState::down(60_000));
        assert_eq!(
            plan(&hash, 10, &names(&["n1", "n2", "n3"]), &nodes),
            Repair::Enough
        );
        assert_eq!(
            plan(&hash, 10, &names(&["n1", "n2", "n5"]), &nodes),
            Repair::Enough,
            "a waiting home counts"
        );
        assert_eq!(
            plan(&hash, 10, &names(&["n1", "n2", "n3", "n6"]), &nodes),
            Repair::Forget {
                drop: names(&["n6"])
            }
        );
        match plan(&hash, 10, &names(&["n1", "n6", "gone"]), &nodes) {
            Repair::Copy { from, to, drop } => {
                assert_eq!(from, names(&["n1"]));
                assert_eq!(to.len(), 2);
                assert!(to.iter().all(|n| ["n2", "n3", "n4"].contains(&n.as_str())));
                assert_eq!(drop, names(&["n6", "gone"]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plan(&hash, 10, &names(&["n5"]), &nodes), Repair::Wait);
        assert_eq!(
            plan(&hash, 10, &names(&["n6", "gone"]), &nodes),
            Repair::Lost
        );
        assert_eq!(plan(&hash, 10, &[], &nodes), Repair::Lost);
        let two = Nodes::new(1)
            .with("n1", NodeState::up(None))
            .with("n2", NodeState::up(Some(1)));
        assert_eq!(plan(&hash, 10, &names(&["n1"]), &two), Repair::Stuck);
    }

    #[test]
    fn sweeps_keep_register_or_delete() {
        let nodes = three_up();
        let homes = names(&["n1", "n2", "n3"]);
        assert_eq!(sweep("n1", Some(&homes), true, &nodes), Sweep::Keep);
        assert_eq!(sweep("n4", Some(&homes), true, &nodes), Sweep::Delete);
        assert_eq!(sweep("n4", Some(&homes), false, &nodes), Sweep::Keep);
        assert_eq!(
            sweep("n3", Some(&homes[..2]), true, &nodes),
            Sweep::Register
        );
        assert_eq!(sweep("n3", Some(&[]), false, &nodes), Sweep::Register);
        assert_eq!(sweep("n1", None, true, &nodes), Sweep::Delete);
        assert_eq!(sweep("n1", None, false, &nodes), Sweep::Keep);
        // Homes on nodes lost past the grace period: listed here only once they leave the
        // roster (repair copies the chunk meanwhile, and a down node may yet come back).
        let lost = three_up()
            .with("n4", NodeState::down(60_000))
            .with("n5", NodeState::down(60_000));
        let homes = names(&["n1", "n4", "n5"]);
        assert_eq!(sweep("n2", Some(&homes), true, &lost), Sweep::Keep);
        assert_eq!(sweep("n2", Some(&homes[..2]), true, &lost), Sweep::Register);
        let removed = three_up().with("n4", NodeState::down(60_000));
        assert_eq!(sweep("n2", Some(&homes), true, &removed), Sweep::Register);
    }

    #[test]
    fn a_node_back_from_a_partition_does_not_list_copies_replaced_meanwhile() {
        // Repair replaced n1's copy while it was cut off: the chunk is on n2, n3 and n4.
        let homes = names(&["n2", "n3", "n4"]);
        // Back, n1 answers the leader before membership hears from the others again: it still
        // sees them down past the grace period, or some of them.
        let behind = Nodes::new(30_000)
            .with("n1", NodeState::up(None))
            .with("n2", NodeState::down(60_000))
            .with("n3", NodeState::down(60_000))
            .with("n4", NodeState::down(60_000));
        assert_eq!(sweep("n1", Some(&homes), true, &behind), Sweep::Keep);
        let partly = behind.clone().with("n2", NodeState::up(None));
        assert_eq!(sweep("n1", Some(&homes), true, &partly), Sweep::Keep);
        // Once it sees them up, its copy goes.
        let now = three_up().with("n4", NodeState::up(None));
        assert_eq!(sweep("n1", Some(&homes), true, &now), Sweep::Delete);
    }
}
