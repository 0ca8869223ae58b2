//! The cluster's nodes as `sys.proc` places programs on them ([`NodeDirectory`]).
//!
//! Everything comes from what membership already gossips: each node advertises its cores,
//! total and available memory and its `--tag`s in its SWIM metadata (refreshed every few
//! seconds, see `swim.rs`), and the roster comes from the replicated state. So capacity needs
//! no extra publishing, every node converges on the same picture, and the measured free memory
//! is at most a refresh old. A node is up while membership says it is alive (suspect and down
//! nodes take no new processes); a down node keeps the figures it last advertised, and says
//! since when membership has not seen it alive.

use std::sync::Arc;
use std::time::Instant;

use plexus_cluster::membership::{Health, Meta};
use plexus_sched::{ClusterView, Disk, LinkView, NodeView, Resources};
use plexus_services::directory::NodeDirectory;

use super::view::View;

/// The nodes of the roster, with health and figures from membership.
pub struct ClusterDirectory {
    name: String,
    view: Arc<View>,
}

impl ClusterDirectory {
    /// The directory of the node `name` over its picture of the cluster.
    pub fn new(name: &str, view: Arc<View>) -> ClusterDirectory {
        ClusterDirectory {
            name: name.to_owned(),
            view,
        }
    }
}

impl NodeDirectory for ClusterDirectory {
    fn local(&self) -> String {
        self.name.clone()
    }

    fn view(&self) -> ClusterView {
        self.view
            .roster()
            .into_iter()
            .map(|m| {
                let (health, since) = self.view.health_since(&m.key);
                let node = node_view(health, since, self.view.meta(&m.key).as_ref());
                (m.name, node)
            })
            .collect()
    }
}

/// One node as the scheduler sees it, from its health (and `since` when it has had it, as
/// [`View::health_since`] gives it) and last advertised metadata. A node never heard from has
/// no tags and no capacity, and does not count as up: its tags unknown, `--everywhere` groups
/// would otherwise stop its copies.
pub fn node_view(health: Health, since: Instant, meta: Option<&Meta>) -> NodeView {
    let up = health == Health::Alive;
    let down_since = (!up).then_some(since);
    let Some(meta) = meta else {
        return NodeView {
            down_since: Some(since),
            ..NodeView::default()
        };
    };
    NodeView {
        up,
        down_since,
        tags: meta.tags.clone(),
        capacity: Resources::new(u64::from(meta.cores).saturating_mul(1000), meta.mem_total),
        // A down node's figure is stale, and nothing is placed there anyway.
        measured_free_mem: up.then_some(meta.mem_avail),
        disk: (meta.disk_total > 0).then_some(Disk {
            free: meta.disk_avail,
            total: meta.disk_total,
        }),
        links: meta
            .links
            .iter()
            .map(|(peer, l)| {
                let link = LinkView {
                    rtt_us: u64::from(l.rtt_us),
                    rate: l.rate,
                };
                (peer.clone(), link)
            })
            .collect(),
        ..NodeView::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            name: "n2".into(),
            cores: 4,
            mem_total: 8 << 30,
            mem_avail: 3 << 30,
            tags: [("site".to_owned(), "lab".to_owned())].into(),
            ..Meta::default()
        }
    }

    #[test]
    fn an_alive_node_has_its_tags_capacity_and_free_memory() {
        let node = node_view(Health::Alive, Instant::now(), Some(&meta()));
        assert!(node.up);
        assert_eq!(node.down_since, None);
        assert_eq!(node.capacity, Resources::new(4000, 8 << 30));
        assert_eq!(node.measured_free_mem, Some(3 << 30));
        assert_eq!(node.tags.get("site").map(String::as_str), Some("lab"));
        assert_eq!((node.reserved, node.processes), (Resources::ZERO, 0));
    }

    #[test]
    fn suspect_and_down_nodes_are_not_up_and_keep_their_tags() {
        let since = Instant::now();
        for health in [Health::Suspect, Health::Down] {
            let node = node_view(health, since, Some(&meta()));
            assert!(!node.up, "{health:?}");
            assert_eq!(node.down_since, Some(since), "{health:?}");
            assert_eq!(node.measured_free_mem, None);
            assert!(node.tags.contains_key("site"));
        }
        let unknown = node_view(Health::Alive, since, None);
        assert!(!unknown.up, "its tags are unknown");
        assert_eq!(unknown.down_since, Some(since));
        assert_eq!(unknown.capacity, Resources::ZERO);
    }
}
