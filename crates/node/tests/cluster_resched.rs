#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rescheduling and `--everywhere` groups on a cluster of real nodes in one process (the
//! in-memory network with a paused clock, `sim/mod.rs`): when a node is declared down, the
//! leader moves its processes and their new nodes' `sys.proc` starts them (real programs); a
//! node that joins later gets a copy of each group, started there.

mod sim;

use std::sync::Arc;
use std::time::Duration;

use plexus_cluster::membership::Health;
use plexus_identity::Keypair;
use plexus_store::{ProcId, ProcRecord, ProcState, ProcTable, RestartPolicy};
use sim::{eventually, SimCluster};

/// Waits until the record `id` is running on `node`; gives it.
async fn running_on(table: &Arc<dyn ProcTable>, id: ProcId, node: &str) -> ProcRecord {
    eventually(&format!("{id} runs on {node}"), || async {
        let r = table.get(id).await.unwrap().unwrap();
        r.node == node && r.state == ProcState::Running
    })
    .await;
    table.get(id).await.unwrap().unwrap()
}

fn record(n: u32, owner: &Keypair, node: &str, restart: RestartPolicy) -> ProcRecord {
    let mut r = ProcRecord::new(
        ProcId::from_random(n.to_le_bytes()),
        owner.public().to_bytes(),
        node,
        vec!["sleep".into(), "30".into()],
    );
    r.state = ProcState::Running;
    r.started_ms = 1_000;
    r.restart = restart;
    r
}

#[tokio::test(start_paused = true)]
async fn the_leader_moves_the_processes_of_a_killed_node() {
    let mut c = SimCluster::start(2).await;
    c.join_tagged(&[("site", "lab")]).await;
    c.join_tagged(&[("site", "lab")]).await;
    c.wait_settled().await;
    // The administrator owns them: sys.proc serves registered users.
    let owner = c.admin().clone();
    // On n3 (index 2): one that moves to the other lab node, one that is lost with its node,
    // one that nothing can take; and one on n2 left alone. (Records only: no program runs.)
    let mut mover = record(1, &owner, "n3", RestartPolicy::Always);
    mover.placement.tags = vec!["site=lab".into()];
    mover.placement.mem_bytes = Some(1 << 20);
    let never = record(2, &owner, "n3", RestartPolicy::Never);
    let mut stuck = record(3, &owner, "n3", RestartPolicy::OnFailure);
    stuck.placement.tags = vec!["gpu".into()];
    let bystander = record(5, &owner, "n2", RestartPolicy::Always);
    let table = c.node(0).cluster().unwrap().procs();
    for r in [&mover, &never, &stuck, &bystander] {
        table.put(r.clone()).await.unwrap();
    }

    let dead = 2;
    c.kill(dead).await;
    let live: Vec<usize> = c.live().collect();
    c.wait_for("the live nodes mark n3 down", |c| {
        live.iter().all(|i| c.health(*i, dead) == Health::Down)
    })
    .await;
    let declared = tokio::time::Instant::now();
    eventually("the process is moved", || async {
        table.get(mover.id).await.unwrap().unwrap().node != "n3"
    })
    .await;
    assert!(
        declared.elapsed() < Duration::from_secs(2),
        "moved {:?} after n3 was down everywhere",
        declared.elapsed()
    );
    // n4's sys.proc starts it: a real program, running there.
    let moved = running_on(&table, mover.id, "n4").await;
    assert_eq!(moved.restarts, 1);
    assert_eq!(moved.command, mover.command);
    for id in [never.id, stuck.id] {
        let r = table.get(id).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.node.as_str(), r.restarts),
            (ProcState::Lost, "n3", 0)
        );
    }
    assert_eq!(
        table.get(bystander.id).await.unwrap().unwrap().state,
        ProcState::Running
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_joins_later_gets_a_copy_of_each_group() {
    let mut c = SimCluster::start(2).await;
    let owner = c.admin().clone();
    let table = c.node(0).cluster().unwrap().procs();
    // Group g1 runs everywhere, g2 on nodes tagged camera. (Records only on n1 and n2.)
    let mut copies = Vec::new();
    for (n, node) in [(1, "n1"), (2, "n2")] {
        let mut r = record(n, &owner, node, RestartPolicy::Always);
        r.everywhere = Some("g1".into());
        copies.push(table.put(r).await.unwrap());
    }
    // Placed while n1 had the tag, say: its copy stays until n1's tags change.
    let mut cam = record(3, &owner, "n1", RestartPolicy::Never);
    cam.everywhere = Some("g2".into());
    cam.placement.tags = vec!["camera".into()];

    let n3 = c.join_tagged(&[("camera", "")]).await;
    c.wait_settled().await;
    assert_eq!(c.node(n3).name(), "n3");
    let on_n3 = |group: &'static str| {
        let table = table.clone();
        async move {
            table
                .list()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.node == "n3" && r.everywhere.as_deref() == Some(group))
        }
    };
    eventually("n3 has a copy of g1", || async {
        on_n3("g1").await.is_some()
    })
    .await;
    let copy = on_n3("g1").await.unwrap();
    assert_eq!(
        (&copy.command, copy.owner, copy.restart),
        (&copies[0].command, copies[0].owner, RestartPolicy::Always)
    );
    running_on(&table, copy.id, "n3").await;
    assert!(on_n3("g2").await.is_none(), "g2 has no live copy yet");

    table.put(cam).await.unwrap();
    eventually("n3 has a copy of g2", || async {
        on_n3("g2").await.is_some()
    })
    .await;
    let g2 = on_n3("g2").await.unwrap();
    assert_eq!(g2.placement.tags, ["camera"]);
    running_on(&table, g2.id, "n3").await;
    // One copy per node: nothing more was made.
    let all = table.list().await.unwrap();
    assert_eq!(all.len(), 5, "{all:?}");
}
