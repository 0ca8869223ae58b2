#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Clusters of real nodes in one process, on the in-memory network with a paused clock (see
//! `sim/mod.rs`): joining, routed calls, a killed node, a partition and its healing, users
//! replicated to every node's kernel, five nodes on slow links losing two.

mod sim;

use plexus_cluster::membership::Health;
use plexus_cluster::raft::{Command, Response};
use plexus_identity::{KeyKind, Keypair};
use sim::{eventually, SimCluster};

fn text(outcome: &plexus_kernel::Outcome) -> String {
    match outcome {
        Ok(Some(u)) => plexus_units::to_text(u),
        Ok(None) => "-".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_join_with_invites_and_all_see_each_other() {
    let mut c = SimCluster::start(3).await;
    let names: Vec<String> = c
        .node(2)
        .cluster()
        .unwrap()
        .view()
        .roster()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    // A node joining later gets in through any member's invite.
    let n4 = c.join().await;
    c.wait_settled().await;
    assert_eq!(c.node(n4).cluster().unwrap().view().roster().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn calls_are_routed_to_the_named_node() {
    let c = SimCluster::start(3).await;
    let out = c
        .node(0)
        .call("[me@sys.node:n3 (inc 1)@math.calc:n2 me@sys.node]")
        .await;
    assert_eq!(text(&out), "[n3 2 n1]");
    // A routed call's error comes back as the service's own error.
    let out = c.node(1).call("(div (1 0))@math.calc:n3").await;
    assert_eq!(out.unwrap_err().code(), "math.div0");
}

#[tokio::test(start_paused = true)]
async fn a_killed_leader_is_replaced_and_marked_down() {
    let mut c = SimCluster::start(3).await;
    let leader = c.leader_among(&[0, 1, 2]).unwrap();
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    c.kill(leader).await;
    c.wait_for("the others elect a new leader", |c| {
        c.leader_among(&rest).is_some()
    })
    .await;
    c.wait_for("the others mark the killed node down", |c| {
        rest.iter().all(|i| c.health(*i, leader) == Health::Down)
    })
    .await;
    let out = c.node(rest[0]).call("{save:7 out:@k}@io.store").await;
    assert!(out.is_ok(), "{}", text(&out));
    let out = c.node(rest[1]).call("(load @k)@io.store").await;
    assert_eq!(text(&out), "7");
    // Calls to the dead node fail at once with a clear error.
    let dead = c.node(leader).name().to_owned();
    let out = c.node(rest[0]).call(&format!("me@sys.node:{dead}")).await;
    assert_eq!(out.unwrap_err().code(), "node.down", "calling {dead}");
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_minority_cannot_write_and_healing_reconciles() {
    let c = SimCluster::start(3).await;
    // The leader is cut off: the minority side has the most to lose.
    let minority = c.leader_among(&[0, 1, 2]).unwrap();
    let majority: Vec<usize> = (0..3).filter(|i| *i != minority).collect();
    c.partition(&[minority], &majority);
    c.wait_for("the majority elects a leader of its own", |c| {
        c.leader_among(&majority).is_some()
    })
    .await;
    let out = c
        .node(majority[0])
        .call("{save:1 out:@side.big}@io.store")
        .await;
    assert!(out.is_ok(), "{}", text(&out));
    let out = c
        .node(minority)
        .call("{save:1 out:@side.small}@io.store")
        .await;
    assert_eq!(
        out.map_err(|e| e.code().to_owned()),
        Err("cluster.unavailable".to_owned()),
        "the minority's write"
    );

    c.heal();
    c.wait_settled().await;
    let m = c.node(minority);
    eventually("the healed node has the majority's write", || async {
        text(&m.call("(load @side)@io.store").await) == "{big:1}"
    })
    .await;
    // The write the minority could not commit is gone everywhere.
    for i in 0..3 {
        let out = c.node(i).call("(load @side)@io.store").await;
        assert_eq!(text(&out), "{big:1}", "on n{}", i + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn users_in_the_cluster_state_reach_every_kernel() {
    let mut c = SimCluster::start(3).await;
    let bob = Keypair::generate(KeyKind::User, "bob", &mut rand::rngs::OsRng).unwrap();
    let written = c
        .node(1)
        .cluster()
        .unwrap()
        .raft()
        .write(Command::SetUser {
            name: "bob".into(),
            key: bob.public().to_bytes(),
        })
        .await
        .unwrap();
    assert!(!matches!(written, Response::Err { .. }), "{written:?}");
    c.wait_for("every node knows bob", |c| {
        c.live()
            .all(|i| c.node(i).kernel().user_name(&bob.public()).as_deref() == Some("bob"))
    })
    .await;
    // Bob may now use what registered users may, on any node.
    let out = c
        .node(2)
        .call_as(bob.public(), "{save:1 out:@bobs}@io.store")
        .await;
    assert!(out.is_ok(), "{}", text(&out));
    // A node that joins later learns bob from the state it catches up on.
    let n4 = c.join().await;
    c.wait_for("the new node knows bob", |c| {
        c.node(n4).kernel().user_name(&bob.public()).as_deref() == Some("bob")
    })
    .await;
    let out = c
        .node(n4)
        .call_as(bob.public(), "(load @bobs)@io.store")
        .await;
    assert_eq!(text(&out), "1");
}

#[tokio::test(start_paused = true)]
async fn five_nodes_on_slow_links_outlive_two_dead_ones() {
    let mut c = SimCluster::start(5).await;
    c.network().set_default_faults(plexus_net::Faults {
        delay: std::time::Duration::from_millis(20),
        loss: 0.0,
    });
    let leader = c.leader_among(&[0, 1, 2, 3, 4]).unwrap();
    let other = (leader + 1) % 5;
    c.kill(leader).await;
    c.kill(other).await;
    let rest: Vec<usize> = c.live().collect();
    c.wait_for("three of five voters elect a leader", |c| {
        c.leader_among(&rest).is_some()
    })
    .await;
    let out = c.node(rest[0]).call("{save:5 out:@five}@io.store").await;
    assert!(out.is_ok(), "{}", text(&out));
    let last = c.node(rest[2]).name().to_owned();
    let out = c
        .node(rest[1])
        .call(&format!("(load @five)@io.store:{last}"))
        .await;
    assert_eq!(text(&out), "5");
}
