#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three `ClusterRaft` nodes in one process over an in-memory `RaftWire` that can kill nodes
//! and cut links: forming the cluster, forwarded writes, linearizable reads everywhere, the
//! leader killed under a stream of writes, partitions and healing, a restart from disk, a
//! follower catching up from a snapshot that carries the process table.
//!
//! Run with `--nocapture` to see the measured failover times.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_cluster::raft::{
    node_id, ClusterRaft, Command, RaftError, RaftPeer, RaftTuning, RaftWire, Response, Role,
    WireError,
};
use plexus_identity::{KeyKind, Keypair};
use plexus_units::{encode, parse, Unit};
use tokio::time::Instant;

/// The in-memory network: who is up, which links are cut.
#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<u64, ClusterRaft>>,
    down: Mutex<HashSet<u64>>,
    cut: Mutex<HashSet<(u64, u64)>>,
}

impl Net {
    fn linked(&self, a: u64, b: u64) -> bool {
        let down = self.down.lock().unwrap();
        let cut = self.cut.lock().unwrap();
        !down.contains(&a) && !down.contains(&b) && !cut.contains(&(a.min(b), a.max(b)))
    }

    fn cut(&self, a: u64, b: u64) {
        self.cut.lock().unwrap().insert((a.min(b), a.max(b)));
    }

    fn isolate(&self, a: u64, others: &[u64]) {
        for b in others {
            if *b != a {
                self.cut(a, *b);
            }
        }
    }

    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }

    fn node(&self, id: u64) -> Option<ClusterRaft> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }
}

struct Wire {
    from: u64,
    net: Arc<Net>,
}

impl RaftWire for Wire {
    fn rpc(
        &self,
        target: u64,
        _peer: &RaftPeer,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, WireError>> + Send>> {
        let net = self.net.clone();
        let from = self.from;
        Box::pin(async move {
            if !net.linked(from, target) {
                return Err(WireError::NotSent("unreachable".to_owned()));
            }
            let node = net
                .node(target)
                .ok_or_else(|| WireError::NotSent("no such node".to_owned()))?;
            let reply = tokio::time::timeout(timeout, node.handle_rpc(&body))
                .await
                .map_err(|_| "timed out".to_owned())??;
            if !net.linked(from, target) {
                return Err("unreachable (the reply was lost)".to_owned().into());
            }
            Ok(reply)
        })
    }
}

struct Node {
    id: u64,
    peer: RaftPeer,
    dir: PathBuf,
}

struct Cluster {
    _tmp: tempfile::TempDir,
    net: Arc<Net>,
    nodes: Vec<Node>,
    tuning: RaftTuning,
}

fn tuning() -> RaftTuning {
    RaftTuning {
        write_timeout: Duration::from_secs(2),
        ..RaftTuning::default()
    }
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|i| {
                let name = format!("n{i}");
                let kp = Keypair::generate(KeyKind::Node, &name, &mut rand::rngs::OsRng).unwrap();
                Node {
                    id: node_id(&kp.public()),
                    peer: RaftPeer {
                        name: name.clone(),
                        addr: format!("mem:{name}"),
                        key: kp.public().to_bytes(),
                    },
                    dir: tmp.path().join(&name),
                }
            })
            .collect();
        Cluster {
            _tmp: tmp,
            net: Arc::new(Net::default()),
            nodes,
            tuning: tuning(),
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn name(&self, id: u64) -> &str {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.peer.name.as_str())
            .unwrap_or("?")
    }

    /// Opens node `i`'s state (again, after a kill: the file is released once the old
    /// handles are gone) and puts it on the network.
    async fn start(&self, i: usize) -> ClusterRaft {
        let node = &self.nodes[i];
        let wire = Arc::new(Wire {
            from: node.id,
            net: self.net.clone(),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let raft = loop {
            match ClusterRaft::open(
                &node.dir,
                node.id,
                node.peer.clone(),
                wire.clone(),
                self.tuning.clone(),
            )
            .await
            {
                Err(e) if Instant::now() < deadline && e.to_string().contains("already open") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => break r.expect("the node's cluster state opens"),
            }
        };
        self.net.nodes.lock().unwrap().insert(node.id, raft.clone());
        self.net.down.lock().unwrap().remove(&node.id);
        raft
    }

    /// Kills a node: its links fail at once, then its raft stops and its handle goes.
    async fn kill(&self, id: u64) {
        self.net.down.lock().unwrap().insert(id);
        let raft = self.net.nodes.lock().unwrap().remove(&id);
        if let Some(raft) = raft {
            raft.shutdown().await;
        }
    }

    fn raft(&self, id: u64) -> ClusterRaft {
        self.net.node(id).expect("a live node")
    }

    /// Forms a 3-voter cluster: n1 initializes, adds the others as learners, promotes them.
    async fn form(&self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
        let n1 = self.raft(self.nodes[0].id);
        n1.initialize().await.unwrap();
        n1.initialize().await.unwrap();
        for node in &self.nodes[1..] {
            n1.add_learner(node.id, node.peer.clone()).await.unwrap();
        }
        let voters: BTreeSet<u64> = self.ids().into_iter().collect();
        n1.change_voters(voters.clone()).await.unwrap();
        for id in self.ids() {
            let raft = self.raft(id);
            eventually(&format!("{} sees 3 voters", self.name(id)), || {
                let members = raft.members();
                members.len() == 3 && members.iter().all(|(_, _, r)| *r == Role::Voter)
            })
            .await;
        }
    }

    /// Waits until every live node agrees on one live leader, and gives it.
    async fn leader(&self) -> u64 {
        let live: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| self.net.node(*id).is_some())
            .collect();
        let mut found = 0;
        eventually("the live nodes agree on a leader", || {
            let leaders: HashSet<Option<u64>> =
                live.iter().map(|id| self.raft(*id).leader()).collect();
            match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(l)] if live.contains(l) => {
                    found = *l;
                    true
                }
                _ => false,
            }
        })
        .await;
        found
    }
}

/// Polls `f` every 20 ms for up to 30 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn save(path: &[&str], value: &str) -> Command {
    Command::Save {
        path: path.iter().map(|s| s.to_string()).collect(),
        value: encode(&parse(value).unwrap()),
    }
}

/// The unit at `path` on `raft` after a read barrier.
async fn read(raft: &ClusterRaft, path: &[&str]) -> Option<Unit> {
    raft.read_barrier().await.unwrap();
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    raft.load(Some(&path))
        .unwrap()
        .map(|b| plexus_units::decode(&b).unwrap())
}

/// The ints of a list unit.
fn ints(u: Option<Unit>) -> Vec<i64> {
    let Some(u) = u else {
        return Vec::new();
    };
    u.as_list()
        .expect("a list")
        .iter()
        .map(|u| u.as_int().and_then(|i| i.to_i64()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forms_forwards_fails_over_and_restarts() {
    let c = Cluster::new(3);
    c.form().await;
    let leader = c.leader().await;
    assert_eq!(leader, c.nodes[0].id);
    let followers: Vec<u64> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let formed_term = c.raft(leader).metrics().term;

    // A write on a follower is forwarded to the leader; every node reads it.
    let f = c.raft(followers[0]);
    let mut changes = c.raft(followers[1]).subscribe();
    assert_eq!(f.write(save(&["x"], "{a:1}")).await.unwrap(), Response::Ok);
    assert_eq!(f.write(save(&["x", "b"], "2")).await.unwrap(), Response::Ok);
    let r = f.write(save(&["x", "a", "c"], "3")).await.unwrap();
    assert!(
        matches!(r, Response::Err { ref code, .. } if code == "arg.bad"),
        "{r:?}"
    );
    for id in c.ids() {
        assert_eq!(
            read(&c.raft(id), &["x"]).await,
            Some(parse("{a:1 b:2}").unwrap()),
            "on {}",
            c.name(id)
        );
    }
    let whole = c.raft(followers[1]).load(None).unwrap().unwrap();
    assert_eq!(
        plexus_units::decode(&whole).unwrap(),
        parse("{x:{a:1 b:2}}").unwrap()
    );
    eventually("the follower's change feed saw the store change", || {
        changes.borrow_and_update().store > 0
    })
    .await;
    // Users and services replicate too.
    f.write(Command::SetServices {
        node: followers[0],
        services: vec!["math.calc".into()],
    })
    .await
    .unwrap();
    c.raft(leader).read_barrier().await.unwrap();
    assert_eq!(
        c.raft(leader).services().get(&followers[0]),
        Some(&vec!["math.calc".to_owned()])
    );
    // Bad bytes from the network are errors, not panics.
    assert!(f.handle_rpc(&[]).await.is_err());
    assert!(f.handle_rpc(&[0xff; 64]).await.is_err());
    assert!(f.handle_rpc(&[1, 0, 0]).await.is_err());

    // A writer appends to a list through a follower while the leader is killed.
    let writer = c.raft(followers[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let kill_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let task = {
        let (stop, kill_at) = (stop.clone(), kill_at.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut first_after_kill: Option<Duration> = None;
            let mut errors = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                match writer.write(save(&["log"], &format!("[{i}]"))).await {
                    Ok(Response::Ok) => {
                        acked.push(i);
                        let killed = *kill_at.lock().unwrap();
                        if let (None, Some(k)) = (first_after_kill, killed) {
                            first_after_kill = Some(k.elapsed());
                        }
                    }
                    Ok(r) => panic!("write {i} refused: {r:?}"),
                    Err(e) => {
                        errors.push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (acked, first_after_kill, errors)
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Not asserted (timing): a term change here would be a spurious election.
    eprintln!(
        "term {formed_term} after forming, {} before the kill",
        c.raft(leader).metrics().term
    );
    *kill_at.lock().unwrap() = Some(Instant::now());
    c.kill(leader).await;
    let killed = Instant::now();
    let new_leader = c.leader().await;
    let elected = killed.elapsed();
    assert_ne!(new_leader, leader);
    // Writes resume.
    let acked_at_election = {
        let a = c.raft(followers[0]);
        let before = ints(read(&a, &["log"]).await).len();
        eventually("writes resume after the failover", || {
            let list = a.load(Some(&["log".to_owned()])).unwrap();
            ints(list.map(|b| plexus_units::decode(&b).unwrap())).len() >= before + 20
        })
        .await;
        before
    };
    stop.store(true, Ordering::Relaxed);
    let (acked, first_after_kill, errors) = task.await.unwrap();
    eprintln!(
        "failover: leader {} killed; {} leads after {elected:?}; first acknowledged write {:?} after the kill; \
         {} writes acknowledged ({acked_at_election} before the election), {} failed: {:?}",
        c.name(leader),
        c.name(new_leader),
        first_after_kill,
        acked.len(),
        errors.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        first_after_kill.is_some(),
        "no write was acknowledged after the kill"
    );
    // Every acknowledged write is on both survivors, exactly once, in order.
    let mut lists = Vec::new();
    for id in &followers {
        let list = ints(read(&c.raft(*id), &["log"]).await);
        assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "the list on {} has duplicates or is out of order",
            c.name(*id)
        );
        for i in &acked {
            assert!(
                list.contains(i),
                "acknowledged write {i} missing on {}",
                c.name(*id)
            );
        }
        lists.push(list);
    }
    assert_eq!(lists[0], lists[1]);

    // The killed node comes back from its directory and catches up.
    let idx = c.nodes.iter().position(|n| n.id == leader).unwrap();
    let back = c.start(idx).await;
    c.raft(new_leader)
        .write(save(&["after"], "restart"))
        .await
        .unwrap();
    assert_eq!(ints(read(&back, &["log"]).await), lists[0]);
    assert_eq!(
        read(&back, &["after"]).await,
        Some(parse("restart").unwrap())
    );
    assert_eq!(back.members().len(), 3);
    eventually("the restarted node follows the new leader", || {
        back.leader() == Some(new_leader)
    })
    .await;
    let m = back.metrics();
    assert!(
        m.voters.contains(&leader) && m.last_applied.is_some(),
        "{m:?}"
    );
    for id in c.ids() {
        c.raft(id).shutdown().await;
    }
}

/// A leader replicates an entry while its own disk is still flushing it (the patch in
/// `vendor/openraft`), and a write is acknowledged only once a majority holds it durably.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_needs_a_durable_majority_not_the_leaders_own_flush() {
    let c = Cluster::new(3);
    c.form().await;
    let leader = c.leader().await;
    let followers: Vec<u64> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let l = c.raft(leader);

    // The leader's disk stalls: the two followers' flushes are a majority.
    l.hold_log_flushes(true);
    let r = tokio::time::timeout(Duration::from_secs(20), l.write(save(&["d"], "1")))
        .await
        .expect("a write commits while the leader's own flush is held");
    assert_eq!(r.unwrap(), Response::Ok);
    assert_eq!(
        read(&c.raft(followers[0]), &["d"]).await,
        Some(Unit::int(1))
    );

    // The leader and a follower stall: no majority holds the next write durably, so it is not
    // acknowledged until one of them flushes.
    let stalled = c.raft(followers[0]);
    stalled.hold_log_flushes(true);
    let pending = tokio::spawn({
        let l = l.clone();
        async move { l.write(save(&["e"], "2")).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "a write was answered before a majority flushed it: {:?}",
        pending.await
    );
    stalled.hold_log_flushes(false);
    assert_eq!(pending.await.unwrap().unwrap(), Response::Ok);
    l.hold_log_flushes(false);
    for id in c.ids() {
        let raft = c.raft(id);
        let both = (read(&raft, &["d"]).await, read(&raft, &["e"]).await);
        assert_eq!(
            both,
            (Some(Unit::int(1)), Some(Unit::int(2))),
            "{}",
            c.name(id)
        );
    }
    assert_eq!(
        c.leader().await,
        leader,
        "holding flushes changed the leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_writes_fail_clearly_and_partitions_heal() {
    let c = Cluster::new(3);
    c.form().await;
    let old = c.leader().await;
    let ids = c.ids();
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != old).collect();
    c.raft(others[0])
        .write(save(&["k"], "{v:0}"))
        .await
        .unwrap();

    // The leader is cut off: its writes fail (not hang), the majority goes on.
    c.net.isolate(old, &ids);
    let isolated = c.raft(old);
    let t = Instant::now();
    let err = isolated
        .write(save(&["k", "lost"], "1"))
        .await
        .expect_err("a write on the minority side must fail");
    let took = t.elapsed();
    eprintln!("isolated leader's write failed after {took:?}: {err}");
    assert!(took < Duration::from_secs(30));
    assert!(
        matches!(err, RaftError::Timeout { .. } | RaftError::NoLeader { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("1 of 3"), "{text}");
    let err = isolated
        .read_barrier()
        .await
        .expect_err("no linearizable read without a majority");
    eprintln!("isolated leader's read barrier: {err}");

    let new = loop {
        let l = c.raft(others[0]).leader();
        if let Some(l) = l.filter(|l| *l != old && c.raft(others[1]).leader() == Some(*l)) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let follower = if others[0] == new {
        others[1]
    } else {
        others[0]
    };
    c.raft(follower)
        .write(save(&["k", "v"], "1"))
        .await
        .unwrap();

    // Healed: the old leader follows the new one; its lost write is gone.
    c.net.heal();
    for id in &ids {
        let raft = c.raft(*id);
        eventually("everyone follows the new leader", || {
            raft.leader() == Some(new)
        })
        .await;
        assert_eq!(
            read(&raft, &["k"]).await,
            Some(parse("{v:1}").unwrap()),
            "on {}",
            c.name(*id)
        );
    }

    // A follower cut off: its writes fail with a clear error, the others go on.
    c.net.isolate(follower, &ids);
    let cut = c.raft(follower);
    let err = cut
        .write(save(&["k", "w"], "2"))
        .await
        .expect_err("an isolated follower cannot write");
    eprintln!("isolated follower's write: {err}");
    assert!(
        matches!(
            err,
            RaftError::Unconfirmed { .. } | RaftError::NoLeader { .. } | RaftError::Timeout { .. }
        ),
        "{err}"
    );
    // After its election timeout it knows it has no leader and says why.
    eventually("the isolated follower gives up its leader", || {
        cut.leader().is_none()
    })
    .await;
    let err = cut.write(save(&["k", "w"], "2")).await.unwrap_err();
    assert!(err.to_string().contains("majority"), "{err}");
    c.raft(new).write(save(&["k", "w"], "3")).await.unwrap();
    c.net.heal();
    for id in &ids {
        let raft = c.raft(*id);
        eventually("everyone has a leader again", || raft.leader().is_some()).await;
        assert_eq!(
            read(&raft, &["k"]).await,
            Some(parse("{v:1 w:3}").unwrap()),
            "on {}",
            c.name(*id)
        );
    }
    for id in ids {
        c.raft(id).shutdown().await;
    }
}

/// Not a test: write throughput of raft and its storage alone (no links, no clients), to
/// find where io.store's time goes. `cargo test --release -p plexus-cluster --test
/// raft_cluster write_rate -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_only_write_is_never_made_by_another_leader() {
    let mut c = Cluster::new(3);
    // Long enough that the cut-off leader's write is still waiting when it steps down.
    c.tuning.write_timeout = Duration::from_secs(10);
    c.form().await;
    let old = c.leader().await;
    let ids = c.ids();
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != old).collect();
    let err = c
        .raft(others[0])
        .write_leading(save(&["f"], "1"))
        .await
        .expect_err("a follower does not lead");
    assert_eq!(err, RaftError::NotLeader);
    c.raft(old).write_leading(save(&["k"], "0")).await.unwrap();

    // The leader is cut off and still believes it leads: its write waits for a majority.
    c.net.isolate(old, &ids);
    let pending = tokio::spawn({
        let raft = c.raft(old);
        async move { raft.write_leading(save(&["k"], "1")).await }
    });
    eventually("the others elect a leader of their own", || {
        let l = c.raft(others[0]).leader();
        l.is_some_and(|l| l != old) && c.raft(others[1]).leader() == l
    })
    .await;
    // Healed, it steps down and its entry is dropped from its log: the write fails here,
    // rather than going on to the new leader.
    c.net.heal();
    let err = pending
        .await
        .unwrap()
        .expect_err("not made by the new leader");
    assert_eq!(err, RaftError::NotLeader);
    for id in &ids {
        assert_eq!(
            read(&c.raft(*id), &["k"]).await,
            Some(parse("0").unwrap()),
            "on {}",
            c.name(*id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn write_rate() {
    // WRITE_RATE=n:writers limits the run to one case (for profiling).
    let only: Option<(usize, usize)> = std::env::var("WRITE_RATE").ok().and_then(|v| {
        let (n, w) = v.split_once(':')?;
        Some((n.parse().ok()?, w.parse().ok()?))
    });
    for n in [1, 3] {
        if only.is_some_and(|(on, _)| on != n) {
            continue;
        }
        let c = Cluster::new(n);
        if n == 1 {
            c.start(0).await;
            c.raft(c.nodes[0].id).initialize().await.unwrap();
        } else {
            c.form().await;
        }
        let leader = c.raft(c.leader().await);
        for writers in [1usize, 32] {
            if only.is_some_and(|(_, ow)| ow != writers) {
                continue;
            }
            let per = if writers == 1 { 3000 } else { 200 };
            let t = std::time::Instant::now();
            let mut tasks = Vec::new();
            for w in 0..writers {
                let leader = leader.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    for i in 0..per {
                        let t = std::time::Instant::now();
                        let key = format!("w{w}");
                        leader.write(save(&[&key], &i.to_string())).await.unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            lat.sort();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{n} node(s), {writers} writer(s): {:.0} writes/s, p50 {:?}",
                lat.len() as f64 / secs,
                lat[lat.len() / 2]
            );
        }
    }
}

/// A follower that was down while the leader snapshotted and purged its log catches up from
/// the snapshot, which carries the process table (names and retention order included).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_a_snapshot_lists_the_process_table() {
    let mut c = Cluster::new(3);
    c.tuning.snapshot_every = 5;
    c.tuning.keep_logs = 0;
    c.form().await;
    let leader = c.leader().await;
    let behind = c.ids().into_iter().find(|id| *id != leader).unwrap();
    c.kill(behind).await;
    let l = c.raft(leader);
    let mut named = plexus_store::ProcRecord::new(
        plexus_store::ProcId::from_random([1, 2, 3, 4]),
        [6; 32],
        "n2",
        vec!["sleep".into(), "60".into()],
    );
    named.name = Some("sleeper".into());
    let put = Command::PutProc {
        record: named.encode(),
    };
    assert_eq!(l.write(put).await.unwrap(), Response::Ok);
    // Enough entries after it for a snapshot and a purge past it.
    for i in 0..20 {
        l.write(save(&["k"], &i.to_string())).await.unwrap();
    }
    let i = c.nodes.iter().position(|n| n.id == behind).unwrap();
    let back = c.start(i).await;
    let want = l.procs().unwrap();
    assert_eq!(want, vec![named.clone()]);
    eventually("the restarted follower lists the process", || {
        back.procs().ok().as_ref() == Some(&want)
    })
    .await;
    // The name index came with it: the follower's state refuses the name to another process.
    let mut clash = named.clone();
    clash.id = plexus_store::ProcId::from_random([9, 9, 9, 9]);
    let r = back
        .write(Command::PutProc {
            record: clash.encode(),
        })
        .await
        .unwrap();
    assert!(
        matches!(&r, Response::Err { code, .. } if code == "proc.name.taken"),
        "{r:?}"
    );
}
