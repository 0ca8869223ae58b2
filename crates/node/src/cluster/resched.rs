//! Moving the processes of a node declared down (and losing the ones that cannot move).
//!
//! [`plan`] is the decision, pure: given the directory's view, the nodes membership declared
//! down and the process table, it gives the records to write. The driver ([`spawn`]) runs on
//! every node and acts only while the node leads the replicated state, so one node decides:
//! it writes each record (a generation-checked update, so a record another node changed
//! meanwhile is left for the next round) and asks the process's new node to start it with
//! `{start:ID}@sys.proc:NODE`, again each round until that call succeeds or the record
//! changes. The same rounds keep the `--everywhere` groups ([`super::everywhere`]). Calls are
//! made on the authority of the process's owner, as the owner's own `run` would have made
//! them, so `sys.proc` checks them as any other call. A round runs when membership changes
//! (a node declared down wakes the leader at once), and each second while the process table
//! changed or a start is still owed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus_cluster::membership::Health;
use plexus_identity::PublicKey;
use plexus_kernel::Kernel;
use plexus_sched::{
    reschedule, ClusterView, PlacedProcess, Request, RescheduleOutcome, Resources, TagExpr,
};
use plexus_services::directory::NodeDirectory;
use plexus_store::procs::clip_reason;
use plexus_store::{put_with_fresh_id, ProcId, ProcRecord, ProcState, ProcTable};
use plexus_units::{Map, Unit};
use tokio::task::AbortHandle;

use super::directory::ClusterDirectory;
use super::everywhere;
use super::procs::ReplicatedProcs;
use super::{Inner, Net};

/// How often the leader looks again even when membership is quiet: retries after a refused
/// update or an unavailable table.
const RETRY: Duration = Duration::from_secs(1);

/// What the process asked of its node, as the scheduler's request.
fn reserve(record: &ProcRecord) -> Resources {
    Resources::new(
        record.placement.cpu_millis.unwrap_or(0),
        record.placement.mem_bytes.unwrap_or(0),
    )
}

/// Whether the process holds its node: placed there and not over.
fn holds_node(record: &ProcRecord) -> bool {
    !record.state.is_ended() && record.state != ProcState::Lost
}

/// Whether the process was running (or about to) on its node when that node went down.
fn was_live(record: &ProcRecord) -> bool {
    matches!(
        record.state,
        ProcState::Running | ProcState::Starting | ProcState::Restarting
    )
}

/// Whether the process of a down node is for [`plan`]: a live one, or a lost one that should
/// run (its node stopped and marked it lost, or no node could take it before). A lost one is
/// only ever moved: it is lost already.
fn wants_moving(record: &ProcRecord) -> bool {
    was_live(record)
        || (record.state == ProcState::Lost
            && record.restart != plexus_store::RestartPolicy::Never
            && record.everywhere.is_none())
}

/// `view` with what the live processes of `records` reserve and how many run on each node.
pub fn with_reservations(mut view: ClusterView, records: &[ProcRecord]) -> ClusterView {
    for r in records.iter().filter(|r| holds_node(r)) {
        if let Some(node) = view.nodes.get_mut(&r.node) {
            node.add_process(reserve(r));
        }
    }
    view
}

/// A record's placement request; `None` if a stored tag expression no longer parses (the
/// table keeps them as written).
fn request(record: &ProcRecord) -> Option<Request> {
    let tags = record
        .placement
        .tags
        .iter()
        .map(|t| TagExpr::parse(t).ok())
        .collect::<Option<Vec<TagExpr>>>()?;
    Some(Request {
        on: record.placement.on.clone(),
        tags,
        reserve: reserve(record),
        avoid: BTreeSet::new(),
    })
}

/// One record to write, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The record as it should be written (same generation as read: the update checks it).
    pub record: ProcRecord,
    /// Why it changed, for the log: the new node, or why the process is lost.
    pub why: String,
}

impl Change {
    /// Whether the process was moved and its new node must start it.
    pub fn starts(&self) -> bool {
        self.record.state == ProcState::Restarting
    }
}

/// What becomes of the live processes of the nodes in `down`: each `on-failure` or `always`
/// one moves to the node [`reschedule`] chooses on `view` (plus the table's reservations),
/// in state restarting with one more restart; `never` ones, copies of `--everywhere` groups
/// (a group has one copy per node, kept by its own reconciliation) and those no node can take
/// are lost. `on-failure` and `always` processes already lost there (their node marked them
/// lost as it stopped, or no node could take them before) move once a node can take them.
/// Records are taken in id order, down nodes in name order.
pub fn plan(view: &ClusterView, down: &BTreeSet<String>, records: &[ProcRecord]) -> Vec<Change> {
    let mut view = with_reservations(view.clone(), records);
    let mut changes = Vec::new();
    let lost = |r: &ProcRecord, why: String| Change {
        record: ProcRecord {
            state: ProcState::Lost,
            note: Some(clip_reason(&format!("lost: {why}"))),
            ..r.clone()
        },
        why,
    };
    for dead in down {
        if let Some(node) = view.nodes.get_mut(dead) {
            node.up = false;
        }
        let mut movable = Vec::new();
        let mut by_id = std::collections::BTreeMap::new();
        for r in records
            .iter()
            .filter(|r| &r.node == dead && wants_moving(r))
        {
            if r.everywhere.is_some() {
                changes.push(lost(r, format!("its node {dead} is down (a group copy)")));
                continue;
            }
            match request(r) {
                Some(request) => {
                    movable.push(PlacedProcess {
                        id: r.id.to_string(),
                        request,
                        policy: r.restart,
                    });
                    by_id.insert(r.id.to_string(), r);
                }
                None => changes.push(lost(r, format!("its node {dead} is down"))),
            }
        }
        for moved in reschedule(&view, dead, &movable) {
            let Some(r) = by_id.get(&moved.id) else {
                continue;
            };
            match moved.outcome {
                RescheduleOutcome::Moved(placement) => {
                    if let Some(node) = view.nodes.get_mut(&placement.node) {
                        node.add_process(reserve(r));
                    }
                    changes.push(Change {
                        why: format!("moved from {dead} to {}", placement.node),
                        record: ProcRecord {
                            node: placement.node,
                            state: ProcState::Restarting,
                            restarts: r.restarts.saturating_add(1),
                            note: Some(format!("moved from {dead} (its node is down)")),
                            ..(*r).clone()
                        },
                    });
                }
                RescheduleOutcome::Unplaceable(_) if r.state == ProcState::Lost => {}
                RescheduleOutcome::Unplaceable(refusal) => changes.push(lost(
                    r,
                    format!("its node {dead} is down and no node can take it: {refusal}"),
                )),
                RescheduleOutcome::Lost => changes.push(lost(
                    r,
                    format!("its node {dead} is down (restart policy never)"),
                )),
            }
        }
    }
    changes
}

/// Starts the driver of rescheduling and `--everywhere` groups on this node.
pub(crate) fn spawn<N: Net>(c: Arc<Inner<N>>) -> AbortHandle {
    tokio::spawn(run(c)).abort_handle()
}

/// The calls to `sys.proc` the leader made or still has to make.
#[derive(Default)]
struct Calls {
    /// Processes this leader placed (moved, revived or created) whose start has not
    /// succeeded yet, with the record's generation: while the table still has that
    /// generation, the start is tried again each round.
    pending: Arc<Mutex<HashMap<ProcId, u64>>>,
    /// Calls under way (starts and stops), not to be sent twice.
    inflight: Arc<Mutex<HashSet<ProcId>>>,
    /// Copies stopped, with their record's generation then: not stopped again until their
    /// node writes what became of them.
    stopped: Arc<Mutex<HashMap<ProcId, u64>>>,
}

impl Calls {
    fn has_pending(&self) -> bool {
        self.pending.lock().map(|p| !p.is_empty()).unwrap_or(false)
    }

    /// Starts `record` on its node, and again in later rounds until that succeeds.
    fn start(&self, kernel: &Kernel, record: &ProcRecord) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(record.id, record.generation);
        }
        self.send(kernel, "start", record);
    }

    /// Stops `record` on its node, once per generation of its record.
    fn stop(&self, kernel: &Kernel, record: &ProcRecord) {
        let stopped = self
            .stopped
            .lock()
            .ok()
            .and_then(|s| s.get(&record.id).copied());
        if stopped != Some(record.generation) {
            self.send(kernel, "kill", record);
        }
    }

    /// Sends `{VERB:ID}@sys.proc:NODE` for `record` unless one is under way.
    fn send(&self, kernel: &Kernel, verb: &'static str, record: &ProcRecord) {
        let id = record.id;
        if let Ok(mut inflight) = self.inflight.lock() {
            if !inflight.insert(id) {
                return;
            }
        }
        let (inflight, pending) = (self.inflight.clone(), self.pending.clone());
        let stopped = self.stopped.clone();
        let (kernel, record) = (kernel.clone(), record.clone());
        tokio::spawn(async move {
            let done = call(&kernel, verb, &record).await;
            if done && verb == "start" {
                if let Ok(mut pending) = pending.lock() {
                    pending.remove(&id);
                }
            }
            if done && verb == "kill" {
                if let Ok(mut stopped) = stopped.lock() {
                    stopped.insert(id, record.generation);
                }
            }
            if let Ok(mut inflight) = inflight.lock() {
                inflight.remove(&id);
            }
        });
    }

    /// Sends again the starts that failed, for records still as this leader wrote them.
    fn retry(&self, kernel: &Kernel, records: &[ProcRecord]) {
        let by_id: HashMap<ProcId, &ProcRecord> = records.iter().map(|r| (r.id, r)).collect();
        let again: Vec<ProcRecord> = match self.pending.lock() {
            Ok(mut pending) => {
                pending.retain(|id, generation| {
                    by_id
                        .get(id)
                        .is_some_and(|r| r.generation == *generation && was_live(r))
                });
                pending
                    .keys()
                    .filter_map(|id| by_id.get(id).map(|r| (*r).clone()))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for record in &again {
            self.send(kernel, "start", record);
        }
    }
}

async fn run<N: Net>(c: Arc<Inner<N>>) {
    let mut health = c.view.subscribe();
    let state = c.raft.subscribe();
    let mut tick = tokio::time::interval(RETRY);
    let table = ReplicatedProcs::new(c.raft.clone());
    let directory = ClusterDirectory::new(&c.name, c.view.clone());
    let calls = Calls::default();
    // The (process table, membership) changes of the last round that did all it had to:
    // until either changes, another round would decide the same.
    let mut settled = None;
    loop {
        tokio::select! {
            r = health.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        if c.raft.leader() != Some(c.raft_id) {
            settled = None;
            if let Ok(mut pending) = calls.pending.lock() {
                pending.clear();
            }
            if let Ok(mut stopped) = calls.stopped.lock() {
                stopped.clear();
            }
            continue;
        }
        let stamp = (state.borrow().procs, *health.borrow());
        if settled == Some(stamp) && !calls.has_pending() {
            continue;
        }
        // Read through the table: the read barrier confirms this node still leads.
        let records = match table.list().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("rescheduling waits for the process table: {e}");
                continue;
            }
        };
        calls.retry(&c.kernel, &records);
        let down: BTreeSet<String> = c
            .view
            .roster()
            .into_iter()
            .filter(|m| c.view.health(&m.key) == Health::Down)
            .map(|m| m.name)
            .collect();
        let view = directory.view();
        let mut done = true;
        for change in plan(&view, &down, &records) {
            let id = change.record.id;
            match table.update(change.record.clone()).await {
                Ok(record) => {
                    tracing::warn!(process = %id, "process {}", change.why);
                    if change.starts() {
                        calls.start(&c.kernel, &record);
                    }
                }
                // Changed meanwhile (its node answered after all, a user removed it): the
                // next round decides on the new record.
                Err(e) => {
                    done = false;
                    tracing::debug!(process = %id, "not rescheduled now: {e}");
                }
            }
        }
        done &= groups(&c.kernel, &table, &calls, &view, &records).await;
        settled = done.then_some(stamp);
    }
}

/// Applies the plan of the `--everywhere` groups; whether every write succeeded.
async fn groups(
    kernel: &Kernel,
    table: &ReplicatedProcs,
    calls: &Calls,
    view: &ClusterView,
    records: &[ProcRecord],
) -> bool {
    let todo = everywhere::plan(view, records);
    let mut done = true;
    for copy in todo.create {
        let node = copy.node.clone();
        match put_with_fresh_id(table, copy, rand::random).await {
            Ok(record) => {
                tracing::info!(process = %record.id, %node, "new copy of an everywhere group");
                calls.start(kernel, &record);
            }
            Err(e) => {
                done = false;
                tracing::debug!(%node, "no copy of the group now: {e}");
            }
        }
    }
    for copy in todo.revive {
        match table.update(copy).await {
            Ok(record) => calls.start(kernel, &record),
            Err(e) => {
                done = false;
                tracing::debug!("copy not revived now: {e}");
            }
        }
    }
    for copy in todo.stop {
        tracing::info!(process = %copy.id, node = %copy.node, "stopping a copy: its node lost the group's tags");
        calls.stop(kernel, &copy);
    }
    done
}

/// `{VERB:ID}@sys.proc:NODE` on the authority of the process's owner; whether it succeeded.
async fn call(kernel: &Kernel, verb: &str, record: &ProcRecord) -> bool {
    let Ok(owner) = PublicKey::from_bytes(&record.owner) else {
        tracing::warn!(process = %record.id, "cannot {verb} the process: its owner is not a key");
        return false;
    };
    let mut msg = Map::new();
    msg.insert(Unit::str(verb), Unit::str(record.id.as_str()));
    let cx = kernel.context(owner, [0; 32], None, 0);
    match cx
        .send("sys.proc", Some(&record.node), Unit::Map(msg))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(process = %record.id, node = %record.node, "{verb} failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use plexus_sched::NodeView;
    use plexus_store::ProcId;
    use proptest::prelude::*;

    use super::*;

    const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];
    const TAGS: [&str; 4] = ["a", "b", "a||b", "!a"];

    fn arb_node() -> impl Strategy<Value = NodeView> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u64..4,
            0u64..4,
        )
            .prop_map(|(up, a, b, cores, gib)| {
                let mut tags = plexus_sched::Tags::new();
                if a {
                    tags.insert("a".into(), String::new());
                }
                if b {
                    tags.insert("b".into(), String::new());
                }
                NodeView {
                    up,
                    tags,
                    ..NodeView::up(Resources::new(cores * 1000, gib << 30))
                }
            })
    }

    fn arb_state() -> impl Strategy<Value = ProcState> {
        prop_oneof![
            Just(ProcState::Running),
            Just(ProcState::Starting),
            Just(ProcState::Restarting),
            Just(ProcState::Lost),
            Just(ProcState::Exited(0)),
        ]
    }

    fn arb_policy() -> impl Strategy<Value = plexus_store::RestartPolicy> {
        prop_oneof![
            Just(plexus_store::RestartPolicy::Never),
            Just(plexus_store::RestartPolicy::OnFailure),
            Just(plexus_store::RestartPolicy::Always),
        ]
    }

    prop_compose! {
        fn arb_record()(
            seed in any::<u32>(),
            node in 0..NODES.len(),
            state in arb_state(),
            restart in arb_policy(),
            tag in proptest::option::of(0..TAGS.len()),
            on in proptest::option::of(0..NODES.len()),
            mem_mib in proptest::option::of(0u64..1500),
            group in any::<bool>(),
            restarts in 0u32..3,
        ) -> ProcRecord {
            let mut r = ProcRecord::new(
                ProcId::from_random(seed.to_le_bytes()),
                [1; 32],
                NODES[node],
                vec!["sleep".into()],
            );
            r.ended_ms = state.is_ended().then_some(5);
            r.state = state;
            r.restart = restart;
            r.placement.tags = tag.map(|t| TAGS[t].to_owned()).into_iter().collect();
            r.placement.on = on.map(|n| NODES[n].to_owned());
            r.placement.mem_bytes = mem_mib.map(|m| m << 20);
            r.everywhere = group.then(|| "g".to_owned());
            r.restarts = restarts;
            r
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every live process of a down node gets exactly one change, nothing else changes; a
        /// moved one lands on an up node outside `down` that satisfies its tags and its
        /// reservation, with one more restart; `never` ones and group copies are lost.
        #[test]
        fn moves_only_what_it_may_where_it_fits(
            nodes in proptest::collection::vec(arb_node(), NODES.len()),
            down_mask in proptest::collection::vec(any::<bool>(), NODES.len()),
            records in proptest::collection::vec(arb_record(), 0..12),
        ) {
            let mut records: Vec<ProcRecord> = records
                .into_iter()
                .map(|r| (r.id, r))
                .collect::<BTreeMap<_, _>>()
                .into_values()
                .collect();
            records.sort_by_key(|r| r.id);
            let mut view = ClusterView::new();
            let mut down = BTreeSet::new();
            for ((name, mut node), is_down) in NODES.iter().zip(nodes).zip(down_mask) {
                if is_down {
                    node.up = false;
                    down.insert(name.to_string());
                }
                view = view.with_node(*name, node);
            }
            let changes = plan(&view, &down, &records);
            let by_id: BTreeMap<ProcId, &Change> =
                changes.iter().map(|c| (c.record.id, c)).collect();
            prop_assert_eq!(by_id.len(), changes.len(), "one change per process");
            let before = with_reservations(view.clone(), &records);
            let mut after = records.clone();
            for r in after.iter_mut() {
                if let Some(c) = by_id.get(&r.id) {
                    *r = c.record.clone();
                }
            }
            let after_view = with_reservations(view.clone(), &after);
            for r in &records {
                let change = by_id.get(&r.id);
                if !down.contains(&r.node) || !wants_moving(r) {
                    prop_assert!(change.is_none(), "{:?}", r);
                }
                if down.contains(&r.node) && was_live(r) {
                    prop_assert!(change.is_some(), "{:?}", r);
                }
                let Some(change) = change else { continue };
                let new = &change.record;
                if change.starts() {
                    prop_assert!(r.restart != plexus_store::RestartPolicy::Never);
                    prop_assert!(r.everywhere.is_none());
                    let target = &view.nodes[&new.node];
                    prop_assert!(target.up && !down.contains(&new.node));
                    let req = request(r).unwrap();
                    prop_assert!(req.tags.iter().all(|t| t.matches(&target.tags)));
                    prop_assert!(req.on.as_ref().is_none_or(|on| on == &new.node));
                    // What was within capacity before stays within it.
                    let (b, a) = (&before.nodes[&new.node], &after_view.nodes[&new.node]);
                    if b.reserved.mem_bytes <= b.capacity.mem_bytes {
                        prop_assert!(a.reserved.mem_bytes <= a.capacity.mem_bytes);
                    }
                    prop_assert_eq!(new.restarts, r.restarts + 1);
                    let note = format!("moved from {} (its node is down)", r.node);
                    prop_assert_eq!(new.note.as_deref(), Some(note.as_str()));
                    let same = ProcRecord {
                        node: r.node.clone(),
                        state: r.state.clone(),
                        restarts: r.restarts,
                        note: r.note.clone(),
                        ..new.clone()
                    };
                    prop_assert_eq!(&same, r);
                } else {
                    prop_assert!(was_live(r), "a lost process only moves: {:?}", r);
                    prop_assert_eq!(&new.state, &ProcState::Lost);
                    prop_assert_eq!(&new.node, &r.node);
                    prop_assert!(new.note.as_ref().is_some_and(|n| n.starts_with("lost: its node")));
                    let same = ProcRecord { state: r.state.clone(), note: r.note.clone(), ..new.clone() };
                    prop_assert_eq!(&same, r);
                }
            }
        }
    }

    #[test]
    fn a_process_moves_to_the_node_that_fits_and_a_never_one_is_lost() {
        let view = ClusterView::new()
            .with_node("n1", NodeView::up(Resources::new(1000, 1 << 30)))
            .with_node("n2", NodeView::up(Resources::new(1000, 1 << 30)))
            .with_node("n3", NodeView::up(Resources::new(1000, 8 << 30)));
        let mut big = ProcRecord::new(ProcId::from_random([1; 4]), [1; 32], "n2", vec![]);
        big.state = ProcState::Running;
        big.restart = plexus_store::RestartPolicy::OnFailure;
        big.placement.mem_bytes = Some(4 << 30);
        let never = ProcRecord {
            id: ProcId::from_random([2; 4]),
            restart: plexus_store::RestartPolicy::Never,
            ..big.clone()
        };
        let down = BTreeSet::from(["n2".to_owned()]);
        let changes = plan(&view, &down, &[big.clone(), never.clone()]);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let moved = &changes[0];
        assert!(moved.starts());
        assert_eq!(
            (moved.record.node.as_str(), moved.record.restarts),
            ("n3", 1)
        );
        assert_eq!(moved.why, "moved from n2 to n3");
        assert_eq!(changes[1].record.state, ProcState::Lost);
        assert!(!changes[1].starts());
        // Nothing is down: nothing changes.
        assert!(plan(&view, &BTreeSet::new(), &[big.clone(), never.clone()]).is_empty());
        // Lost with their stopped node: the on-failure one moves, the never one stays; one
        // that still fits nowhere is not written again.
        let lost = |r: &ProcRecord| ProcRecord {
            state: ProcState::Lost,
            ..r.clone()
        };
        let huge = ProcRecord {
            id: ProcId::from_random([3; 4]),
            placement: plexus_store::Placement {
                mem_bytes: Some(64 << 30),
                ..Default::default()
            },
            ..lost(&big)
        };
        let changes = plan(&view, &down, &[lost(&big), lost(&never), huge]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].record.id, big.id);
        assert_eq!(changes[0].record.node, "n3");
    }
}
