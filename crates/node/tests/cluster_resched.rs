#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rescheduling on a cluster of real nodes in one process (the in-memory network with a paused
//! clock, `sim/mod.rs`): when a node is declared down, the leader moves its processes and asks
//! their new nodes to start them.

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
    calls: Arc<Mutex<Vec<(String, PublicKey, Unit)>>>,
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
    let calls = Arc::new(Mutex::new(Vec::new()));
    for i in c.live() {
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
    let owner = Keypair::generate(KeyKind::User, "ann", &mut rand::rngs::OsRng).unwrap();
    // On n3 (index 2): one that moves to the other lab node, one that is lost with its node,
    // one that nothing can take, one copy of an everywhere group; and one on n2 left alone.
    let mut mover = record(1, &owner, "n3", RestartPolicy::Always);
    mover.placement.tags = vec!["site=lab".into()];
    mover.placement.mem_bytes = Some(1 << 20);
    let never = record(2, &owner, "n3", RestartPolicy::Never);
    let mut stuck = record(3, &owner, "n3", RestartPolicy::OnFailure);
    stuck.placement.tags = vec!["gpu".into()];
    let mut copy = record(4, &owner, "n3", RestartPolicy::Always);
    copy.everywhere = Some("g1".into());
    let bystander = record(5, &owner, "n2", RestartPolicy::Always);
    let table = c.node(0).cluster().unwrap().procs();
    for r in [&mover, &never, &stuck, &copy, &bystander] {
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
    for (id, node) in [(never.id, "n3"), (stuck.id, "n3"), (copy.id, "n3")] {
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
