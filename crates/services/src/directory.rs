//! The nodes `sys.proc` can place programs on: this node alone, or a cluster's members as the
//! node's membership and replicated state know them.

use std::sync::Arc;

use plexus_sched::{ClusterView, NodeView, Resources, Tags};

/// What the process service knows of the nodes it places programs on.
pub trait NodeDirectory: Send + Sync + 'static {
    /// This node's name.
    fn local(&self) -> String;

    /// Every node (this one included) as the scheduler sees it: up or down, tags, capacity
    /// and measured free memory. Reservations and process counts are left at zero: the
    /// process service adds those from its table.
    fn view(&self) -> ClusterView;
}

/// A node on its own: a directory of one, always up.
#[derive(Clone, Debug)]
pub struct SingleNode {
    name: String,
    tags: Tags,
    capacity: Resources,
}

impl SingleNode {
    /// The node `name` with `tags`, its capacity measured now (cores and memory).
    pub fn new(name: &str, tags: Tags) -> SingleNode {
        SingleNode {
            name: name.to_owned(),
            tags,
            capacity: measured_capacity(),
        }
    }

    /// As [`SingleNode::new`] behind the trait.
    pub fn shared(name: &str, tags: Tags) -> Arc<dyn NodeDirectory> {
        Arc::new(SingleNode::new(name, tags))
    }
}

impl NodeDirectory for SingleNode {
    fn local(&self) -> String {
        self.name.clone()
    }

    fn view(&self) -> ClusterView {
        let mut node = NodeView::up(self.capacity);
        node.tags = self.tags.clone();
        node.measured_free_mem = Some(measured_free_memory());
        ClusterView::new().with_node(self.name.clone(), node)
    }
}

/// This machine's cores (in thousandths) and memory (bytes).
pub fn measured_capacity() -> Resources {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    Resources {
        cpu_millis: cores * 1000,
        mem_bytes: sys.total_memory(),
    }
}

/// This machine's available memory (bytes).
pub fn measured_free_memory() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_lists_itself_up_with_its_capacity() {
        let dir = SingleNode::new("n1", Tags::from([("camera".to_owned(), String::new())]));
        assert_eq!(dir.local(), "n1");
        let view = dir.view();
        let node = &view.nodes["n1"];
        assert!(node.up);
        assert!(node.capacity.cpu_millis >= 1000);
        assert!(node.capacity.mem_bytes > 0);
        assert!(node.tags.contains_key("camera"));
        assert_eq!(view.nodes.len(), 1);
    }
}
