#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The replicated process table on clusters of real nodes in one process (the in-memory
//! network with a paused clock, `sim/mod.rs`): the same records listed on every node, racing
//! updates from two nodes, ids drawn at once on two nodes, and a node that joins later.

mod sim;

use std::sync::Arc;

use plexus_store::{put_with_fresh_id, ProcError, ProcId, ProcRecord, ProcState, ProcTable};
use sim::{eventually, SimCluster};

fn table(c: &SimCluster, i: usize) -> Arc<dyn ProcTable> {
    c.node(i).cluster().expect("a cluster member").procs()
}

fn record(n: u32, node: &str) -> ProcRecord {
    let mut r = ProcRecord::new(
        ProcId::from_random(n.to_le_bytes()),
        [4; 32],
        node,
        vec!["python3".into(), "-c".into(), "print('hi')".into()],
    );
    r.env = vec![("K".into(), "v".into())];
    r
}

/// Waits until every live node lists exactly `want`.
async fn listed_everywhere(c: &SimCluster, want: &[ProcRecord]) {
    for i in c.live() {
        let t = table(c, i);
        eventually(&format!("{} lists the records", c.node(i).name()), || {
            let t = t.clone();
            async move { t.list().await.ok().as_deref() == Some(want) }
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_put_on_one_node_is_listed_identically_on_all() {
    let c = SimCluster::start(3).await;
    let mut named = record(1, "n2");
    named.name = Some("crawler".into());
    let a = table(&c, 0).put(named).await.unwrap();
    let b = table(&c, 2).put(record(2, "n3")).await.unwrap();
    let mut want = vec![a.clone(), b];
    want.sort_by_key(|r| r.id);
    listed_everywhere(&c, &want).await;
    // Lists are linearizable: a put acknowledged on one node is at once in another's list,
    // and the name it holds is refused on any node.
    let mut clash = record(3, "n1");
    clash.name = Some("crawler".into());
    let err = table(&c, 1).put(clash).await.unwrap_err();
    assert!(
        matches!(&err, ProcError::NameTaken(n) if n == "crawler"),
        "{err}"
    );
    assert_eq!(table(&c, 1).get(a.id).await.unwrap(), Some(a));
}

#[tokio::test(start_paused = true)]
async fn updates_racing_from_two_nodes_do_not_regress_a_record() {
    let c = SimCluster::start(3).await;
    let base = table(&c, 0).put(record(1, "n2")).await.unwrap();
    // n2 (the process's node) says it runs; n3 (which thinks n2 died) says it is lost. Both
    // made their update from generation 0.
    let mut running = base.clone();
    running.state = ProcState::Running;
    running.started_ms = 1_000;
    let mut lost = base.clone();
    lost.state = ProcState::Lost;
    let (t1, t2) = (table(&c, 1), table(&c, 2));
    let (r1, r2) = tokio::join!(t1.update(running.clone()), t2.update(lost.clone()));
    let (winner, loser) = match (r1, r2) {
        (Ok(w), Err(e)) => (w, (e, t2.clone(), lost)),
        (Err(e), Ok(w)) => (w, (e, t1.clone(), running)),
        other => panic!("exactly one update must win: {other:?}"),
    };
    assert_eq!(winner.generation, 1);
    let (err, loser_table, mut retry) = loser;
    assert!(
        matches!(
            err,
            ProcError::Conflict {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    listed_everywhere(&c, std::slice::from_ref(&winner)).await;
    // The loser reads again and updates from the winner's generation.
    retry.generation = loser_table.get(base.id).await.unwrap().unwrap().generation;
    let after = loser_table.update(retry).await.unwrap();
    assert_eq!(after.generation, 2);
    listed_everywhere(&c, &[after]).await;
}

#[tokio::test(start_paused = true)]
async fn ids_drawn_at_once_on_two_nodes_end_up_distinct() {
    let c = SimCluster::start(3).await;
    let (t0, t1) = (table(&c, 0), table(&c, 1));
    // Both draw the same first id; each has its own second draw.
    let mut draws0 = [5u32, 7].into_iter();
    let mut draws1 = [5u32, 8].into_iter();
    let (a, b) = tokio::join!(
        put_with_fresh_id(&*t0, record(0, "n1"), move || draws0
            .next()
            .unwrap_or(70)
            .to_le_bytes()),
        put_with_fresh_id(&*t1, record(0, "n2"), move || draws1
            .next()
            .unwrap_or(80)
            .to_le_bytes()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.id, b.id);
    let mut want = vec![a, b];
    want.sort_by_key(|r| r.id);
    assert!(want
        .iter()
        .any(|r| r.id == ProcId::from_random(5u32.to_le_bytes())));
    listed_everywhere(&c, &want).await;
}

#[tokio::test(start_paused = true)]
async fn a_node_that_joins_later_lists_the_records() {
    let mut c = SimCluster::start(3).await;
    let t = table(&c, 0);
    let live = t.put(record(1, "n1")).await.unwrap();
    let ended = t.put(record(2, "n2")).await.unwrap();
    let mut exited = ended.clone();
    exited.state = ProcState::Exited(3);
    exited.ended_ms = Some(2_000);
    let exited = t.update(exited).await.unwrap();
    let removed = t.put(record(3, "n3")).await.unwrap();
    t.remove(removed.id).await.unwrap();
    let n4 = c.join().await;
    c.wait_settled().await;
    let mut want = vec![live, exited];
    want.sort_by_key(|r| r.id);
    listed_everywhere(&c, &want).await;
    assert_eq!(table(&c, n4).list().await.unwrap(), want);
}
