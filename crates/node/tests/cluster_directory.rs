#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The node directory `sys.proc` places programs with, on clusters of real nodes in one
//! process (the in-memory network with a paused clock, `sim/mod.rs`): every node sees the same
//! nodes with their tags and capacity, and a killed node as down.

mod sim;

use plexus_cluster::membership::Health;
use plexus_sched::ClusterView;
use sim::SimCluster;

fn view(c: &SimCluster, i: usize) -> ClusterView {
    c.node(i).cluster().unwrap().directory().view()
}

/// The view without the figures each node measures for itself now and then.
fn stable(mut v: ClusterView) -> ClusterView {
    for node in v.nodes.values_mut() {
        node.measured_free_mem = None;
    }
    v
}

#[tokio::test(start_paused = true)]
async fn every_node_sees_the_same_directory_with_tags_capacity_and_deaths() {
    let mut c = SimCluster::start(2).await;
    let lab = c.join_tagged(&[("site", "lab"), ("camera", "")]).await;
    c.wait_settled().await;
    c.wait_for("every node has every node's figures", |c| {
        c.live().all(|i| {
            let v = view(c, i);
            v.nodes.len() == 3 && v.nodes.values().all(|n| n.up && n.capacity.cpu_millis > 0)
        })
    })
    .await;
    let first = stable(view(&c, 0));
    for i in 1..3 {
        assert_eq!(stable(view(&c, i)), first, "as n{} sees it", i + 1);
    }
    let n3 = &first.nodes["n3"];
    assert_eq!(n3.tags.get("site").map(String::as_str), Some("lab"));
    assert!(n3.tags.contains_key("camera"));
    assert!(first.nodes["n1"].tags.is_empty());
    for node in first.nodes.values() {
        assert!(node.capacity.mem_bytes > 0);
        assert_eq!(node.processes, 0, "the directory counts no processes");
    }
    assert!(view(&c, 0).nodes["n2"].measured_free_mem.is_some());
    assert_eq!(c.node(lab).cluster().unwrap().directory().local(), "n3");

    c.kill(lab).await;
    c.wait_for("the others mark n3 down", |c| {
        (0..2).all(|i| c.health(i, lab) == Health::Down)
    })
    .await;
    for i in 0..2 {
        let v = view(&c, i);
        let n3 = &v.nodes["n3"];
        assert!(!n3.up, "n3 as n{} sees it", i + 1);
        assert_eq!(n3.tags.get("site").map(String::as_str), Some("lab"), "kept");
        assert!(v.nodes["n1"].up && v.nodes["n2"].up);
    }
}
