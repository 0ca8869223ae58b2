#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rescheduling and `--everywhere` groups on a cluster of real nodes in one process (the
//! in-memory network with a paused clock, `sim/mod.rs`): when a node is declared down, the
//! leader moves its processes and asks their new nodes to start them; a node that joins later
//! gets a copy of each group.

mod sim;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_cluster::membership::Health;
use plexus_identity::{KeyKind, Keypair, PublicKey};
use plexus_kernel::{BoxFuture, Cx, Help, Outcome, Policy, Service};
use plexus_store::{ProcId, ProcRecord, ProcState, RestartPolicy};
use plexus_units::Unit;
use sim::{eventually, SimCluster};

/// A stand-in for the `sys.proc` service: records every call it gets.
struct Recorder {
    help: Help,
    node: String,
    calls: Calls,
}

impl Service for Recorder {
    fn help(&self) -> &Help {
        &self.help
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push((self.node.clone(), *cx.author(), msg.clone()));
            Ok(None)
        })
    }
}

type Calls = Arc<Mutex<Vec<(String, PublicKey, Unit)>>>;

/// Puts a [`Recorder`] as `sys.proc` on node `i`.
fn record_calls(c: &SimCluster, i: usize, calls: &Calls) {
    let recorder = Recorder {
        help: Help {
            name: "sys.proc",
            info: "records calls",
            tut: vec![],
            man: vec![],
        },
        node: c.node(i).name().to_owned(),
        calls: calls.clone(),
    };
    c.node(i)
        .kernel()
        .register(Arc::new(recorder), None, Policy::Anyone)
        .unwrap();
}

/// The id a `{start:ID}` message names.
fn started_id(msg: &Unit) -> Option<&str> {
    msg.as_map()
        .and_then(|m| m.get_str("start"))
        .and_then(Unit::as_str)
}

fn record(n: u32, owner: &Keypair, node: &str, restart: RestartPolicy) -> ProcRecord {
    let mut r = ProcRecord::new(
        ProcId::from_random(n.to_le_bytes()),
        owner.public().to_bytes(),
        node,
        vec!["sleep".into(), "100".into()],
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
    let calls = Calls::default();
    for i in c.live() {
        record_calls(&c, i, &calls);
    }
    let owner = Keypair::generate(KeyKind::User, "ann", &mut rand::rngs::OsRng).unwrap();
    // On n3 (index 2): one that moves to the other lab node, one that is lost with its node,
    // one that nothing can take; and one on n2 left alone.
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
    c.wait_for("a leader among the live nodes", |c| {
        c.leader_among(&live).is_some()
    })
    .await;
    c.wait_for("the live nodes mark n3 down", |c| {
        live.iter().all(|i| c.health(*i, dead) == Health::Down)
    })
    .await;
    let declared = tokio::time::Instant::now();

    let started = |calls: &Mutex<Vec<(String, PublicKey, Unit)>>| calls.lock().unwrap().len();
    eventually("the moved process is started", || {
        let n = started(&calls);
        async move { n > 0 }
    })
    .await;
    assert!(
        declared.elapsed() < Duration::from_secs(2),
        "started {:?} after n3 was down everywhere",
        declared.elapsed()
    );

    let get = |id| {
        let table = table.clone();
        async move { table.get(id).await.unwrap().unwrap() }
    };
    let moved = get(mover.id).await;
    assert_eq!(moved.node, "n4", "the other node tagged site=lab");
    assert_eq!(moved.state, ProcState::Restarting);
    assert_eq!(moved.restarts, 1);
    assert_eq!(moved.command, mover.command);
    for (id, node) in [(never.id, "n3"), (stuck.id, "n3")] {
        let r = get(id).await;
        assert_eq!(
            (r.state, r.node.as_str(), r.restarts),
            (ProcState::Lost, node, 0)
        );
    }
    assert_eq!(get(bystander.id).await.state, ProcState::Running);

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (node, author, msg) = &calls[0];
    assert_eq!(node, "n4");
    assert_eq!(*author, owner.public(), "made on the owner's authority");
    let id = msg.as_map().and_then(|m| m.get_str("start"));
    assert_eq!(
        id.and_then(Unit::as_str),
        Some(mover.id.as_str()),
        "{msg:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_joins_later_gets_a_copy_of_each_group() {
    let mut c = SimCluster::start(2).await;
    let calls = Calls::default();
    for i in c.live() {
        record_calls(&c, i, &calls);
    }
    let owner = Keypair::generate(KeyKind::User, "ann", &mut rand::rngs::OsRng).unwrap();
    let table = c.node(0).cluster().unwrap().procs();
    // Group g1 runs everywhere; g2 only on nodes tagged camera (none yet, but for n3).
    let mut copies = Vec::new();
    for (n, node) in [(1, "n1"), (2, "n2")] {
        let mut r = record(n, &owner, node, RestartPolicy::Always);
        r.everywhere = Some("g1".into());
        copies.push(table.put(r).await.unwrap());
    }
    let mut cam = record(3, &owner, "n1", RestartPolicy::Never);
    cam.everywhere = Some("g2".into());
    cam.placement.tags = vec!["camera".into()];
    // A copy on a node that does not have the tag: stopped once the leader looks.
    table.put(cam.clone()).await.unwrap();

    let n3 = c.join_tagged(&[("camera", "")]).await;
    record_calls(&c, n3, &calls);
    c.wait_settled().await;
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
    for group in ["g1", "g2"] {
        eventually(&format!("n3 has a copy of {group}"), || async {
            on_n3(group).await.is_some()
        })
        .await;
    }
    let copy = on_n3("g1").await.unwrap();
    assert_eq!(copy.state, ProcState::Starting);
    assert_eq!(
        (copy.command, copy.owner),
        (copies[0].command.clone(), copies[0].owner)
    );
    assert_eq!(copy.restart, RestartPolicy::Always);
    let g2 = on_n3("g2").await.unwrap();
    assert_eq!(g2.placement.tags, ["camera"]);
    eventually("both copies on n3 are started there", || {
        let calls = calls.lock().unwrap().clone();
        let want = [copy.id.to_string(), g2.id.to_string()];
        async move {
            want.iter().all(|id| {
                calls
                    .iter()
                    .any(|(node, _, msg)| node == "n3" && started_id(msg) == Some(id))
            })
        }
    })
    .await;
    // g2's copy on n1 (no camera tag) was stopped, and nothing else was.
    let calls = calls.lock().unwrap().clone();
    let kills: Vec<&(String, PublicKey, Unit)> = calls
        .iter()
        .filter(|(_, _, m)| m.as_map().and_then(|m| m.get_str("kill")).is_some())
        .collect();
    assert_eq!(kills.len(), 1, "{calls:?}");
    assert_eq!(kills[0].0, "n1");
    let starts = calls
        .iter()
        .filter(|(_, _, m)| started_id(m).is_some())
        .count();
    assert_eq!(starts, 2, "one start per new copy: {calls:?}");
}
