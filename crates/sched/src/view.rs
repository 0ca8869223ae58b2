//! The cluster as the scheduler sees it: every node, whether it is up, its tags, its capacity
//! and what is already placed on it.

use std::collections::BTreeMap;

use crate::resources::Resources;
use crate::tags::Tags;

/// One node's state for placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Whether membership considers the node alive. Down nodes are never chosen.
    pub up: bool,
    /// The node's tags.
    pub tags: Tags,
    /// Everything the node has: its cores and its memory.
    pub capacity: Resources,
    /// The sum of what the processes already placed on the node reserved.
    pub reserved: Resources,
    /// How many processes run there (reserving or not).
    pub processes: u32,
    /// Free memory the node measured, when known: placement never counts on more than this,
    /// since processes that reserve nothing still use memory.
    pub measured_free_mem: Option<u64>,
    /// Free and total bytes of the disk of the node's data directory, when known (the file
    /// system places chunks by them).
    pub disk: Option<Disk>,
    /// While the node is not up: since when membership has not seen it alive, when known. The
    /// file system's grace period for a down node's copies counts from it.
    pub down_since: Option<std::time::Instant>,
    /// What the node measured of its links to other nodes, by their names.
    pub links: BTreeMap<String, LinkView>,
}

/// A link between two nodes as one of them measured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkView {
    /// Round trip, in microseconds.
    pub rtt_us: u64,
    /// Bytes per second; 0 while unmeasured.
    pub rate: u64,
}

/// A node's disk: free and total bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// Bytes free.
    pub free: u64,
    /// Bytes in all.
    pub total: u64,
}

impl NodeView {
    /// An up node with this capacity, no tags and nothing placed on it.
    pub fn up(capacity: Resources) -> NodeView {
        NodeView {
            up: true,
            capacity,
            ..NodeView::default()
        }
    }

    /// What is left for a new reservation: capacity minus reservations, and for memory at
    /// most what the node measured free.
    pub fn free(&self) -> Resources {
        let mut free = self.capacity.saturating_sub(self.reserved);
        if let Some(measured) = self.measured_free_mem {
            free.mem_bytes = free.mem_bytes.min(measured);
        }
        free
    }

    /// Records a process placed here (what [`crate::reschedule`] does between placements).
    pub fn add_process(&mut self, reserve: Resources) {
        self.reserved = self.reserved.saturating_add(reserve);
        self.processes = self.processes.saturating_add(1);
        if let Some(measured) = self.measured_free_mem.as_mut() {
            *measured = measured.saturating_sub(reserve.mem_bytes);
        }
    }
}

/// Every node of the cluster by name (ordered, so everything derived from it is deterministic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The nodes, by name.
    pub nodes: BTreeMap<String, NodeView>,
}

impl ClusterView {
    /// The link between nodes `a` and `b` as `a` measured it, or else as `b` did.
    pub fn link(&self, a: &str, b: &str) -> Option<LinkView> {
        let measured = |from: &str, to: &str| self.nodes.get(from)?.links.get(to).copied();
        measured(a, b).or_else(|| measured(b, a))
    }

    /// A view without nodes.
    pub fn new() -> ClusterView {
        ClusterView::default()
    }

    /// Adds (or replaces) a node; returns the view for chaining.
    pub fn with_node(mut self, name: impl Into<String>, node: NodeView) -> ClusterView {
        self.nodes.insert(name.into(), node);
        self
    }

    /// Every tag some node (up or down) has, as `name` for bare tags and `name=value`
    /// otherwise, sorted: what an "unknown tag" error lists.
    pub fn known_tags(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .nodes
            .values()
            .flat_map(|n| n.tags.iter())
            .map(|(name, value)| {
                if value.is_empty() {
                    name.clone()
                } else {
                    format!("{name}={value}")
                }
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether some node (up or down) has the tag `name`, with `value` if given.
    pub fn has_tag(&self, name: &str, value: Option<&str>) -> bool {
        self.nodes.values().any(|n| match value {
            None => n.tags.contains_key(name),
            Some(v) => n.tags.get(name).map(String::as_str) == Some(v),
        })
    }
}

impl FromIterator<(String, NodeView)> for ClusterView {
    fn from_iter<I: IntoIterator<Item = (String, NodeView)>>(iter: I) -> ClusterView {
        ClusterView {
            nodes: iter.into_iter().collect(),
        }
    }
}
