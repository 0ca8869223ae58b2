//! `--everywhere` groups: one copy of a program on every eligible node.
//!
//! A group is the set of process records sharing an `everywhere` id; there is no record of
//! the group itself. [`plan`] (pure) compares where the copies are with where
//! [`plexus_sched::reconcile_everywhere`] wants them, for every group with a copy that is not
//! over (a group whose copies all ended, for instance killed by their owner, is left alone):
//!
//! - an eligible up node with no record of the group gets a new copy (a record made from one
//!   of the group's, state starting);
//! - an eligible up node whose copy is `lost` (its node was down and came back) gets it back:
//!   the record goes to restarting with one more restart;
//! - a node whose copy is running but that no longer satisfies the group's tags has it
//!   stopped.
//!
//! A copy that ended on its node (exited, killed, failed) is not started again here: its
//! restart policy and its owner decide. Copies on down nodes are made lost by rescheduling
//! ([`super::resched`]), which never moves them.

use std::collections::{BTreeMap, BTreeSet};

use plexus_sched::{reconcile_everywhere, ClusterView, TagExpr};
use plexus_store::{Enforced, ProcRecord, ProcState};

/// What to do for the groups of the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// New copies to put (under a fresh id) and start; their `id` is a placeholder.
    pub create: Vec<ProcRecord>,
    /// Lost copies to write back as restarting (same generation as read) and start.
    pub revive: Vec<ProcRecord>,
    /// Running copies to stop: their node lost the group's tags.
    pub stop: Vec<ProcRecord>,
}

/// Whether the copy holds its node: placed there and not over.
fn live(record: &ProcRecord) -> bool {
    !record.state.is_ended() && record.state != ProcState::Lost
}

/// The plan for every group of `records` on `view` (whose down nodes are marked down).
pub fn plan(view: &ClusterView, records: &[ProcRecord]) -> GroupPlan {
    let mut groups: BTreeMap<&str, Vec<&ProcRecord>> = BTreeMap::new();
    for r in records {
        if let Some(g) = &r.everywhere {
            groups.entry(g.as_str()).or_default().push(r);
        }
    }
    let mut out = GroupPlan::default();
    for copies in groups.values() {
        // A live copy is the template: it is what the group runs now.
        let Some(template) = copies.iter().find(|r| live(r)).copied() else {
            continue;
        };
        let Some(tags) = template
            .placement
            .tags
            .iter()
            .map(|t| TagExpr::parse(t).ok())
            .collect::<Option<Vec<TagExpr>>>()
        else {
            continue;
        };
        let holders: BTreeSet<String> = copies
            .iter()
            .filter(|r| live(r))
            .map(|r| r.node.clone())
            .collect();
        let decided = reconcile_everywhere(view, &tags, &holders);
        for node in &decided.start {
            let mut on_node = copies.iter().filter(|r| &r.node == node);
            match on_node.next() {
                None => out.create.push(ProcRecord {
                    name: None,
                    node: node.clone(),
                    state: ProcState::Starting,
                    started_ms: 0,
                    ended_ms: None,
                    restarts: 0,
                    limits: Enforced::None,
                    generation: 0,
                    ..template.clone()
                }),
                Some(r) if r.state == ProcState::Lost => out.revive.push(ProcRecord {
                    state: ProcState::Restarting,
                    restarts: r.restarts.saturating_add(1),
                    ..(*r).clone()
                }),
                Some(_) => {}
            }
        }
        for node in &decided.stop {
            out.stop.extend(
                copies
                    .iter()
                    .filter(|r| &r.node == node && live(r))
                    .map(|r| (*r).clone()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use plexus_sched::{NodeView, Resources};
    use plexus_store::ProcId;

    use super::*;

    fn node(up: bool, tags: &[&str]) -> NodeView {
        NodeView {
            up,
            tags: tags
                .iter()
                .map(|t| (t.to_string(), String::new()))
                .collect(),
            ..NodeView::up(Resources::new(1000, 1 << 30))
        }
    }

    fn copy(n: u8, node: &str, state: ProcState) -> ProcRecord {
        let mut r = ProcRecord::new(ProcId::from_random([n; 4]), [1; 32], node, vec!["x".into()]);
        r.ended_ms = state.is_ended().then_some(9);
        r.state = state;
        r.everywhere = Some("g".into());
        r.placement.tags = vec!["cam".into()];
        r.restart = plexus_store::RestartPolicy::Always;
        r.generation = 3;
        r
    }

    #[test]
    fn new_nodes_get_copies_lost_ones_come_back_untagged_ones_stop() {
        let view = ClusterView::new()
            .with_node("n1", node(true, &["cam"]))
            .with_node("n2", node(true, &["cam"]))
            .with_node("n3", node(true, &[]))
            .with_node("n4", node(true, &["cam"]))
            .with_node("n5", node(false, &["cam"]))
            .with_node("n6", node(true, &["cam"]));
        let records = [
            copy(1, "n1", ProcState::Running),
            copy(2, "n2", ProcState::Lost),
            copy(3, "n3", ProcState::Running),
            copy(5, "n5", ProcState::Lost),
            copy(6, "n6", ProcState::Killed(15)),
        ];
        let p = plan(&view, &records);
        assert_eq!(p.create.len(), 1, "{p:?}");
        let new = &p.create[0];
        assert_eq!(
            (new.node.as_str(), &new.state),
            ("n4", &ProcState::Starting)
        );
        assert_eq!((new.restarts, new.generation, new.started_ms), (0, 0, 0));
        assert_eq!(new.command, records[0].command);
        assert_eq!(new.everywhere.as_deref(), Some("g"));
        assert_eq!(p.revive.len(), 1);
        assert_eq!(p.revive[0].id, records[1].id);
        assert_eq!(p.revive[0].state, ProcState::Restarting);
        assert_eq!((p.revive[0].restarts, p.revive[0].generation), (1, 3));
        assert_eq!(p.stop, vec![records[2].clone()]);
    }

    #[test]
    fn a_group_whose_copies_all_ended_is_left_alone() {
        let view = ClusterView::new()
            .with_node("n1", node(true, &["cam"]))
            .with_node("n2", node(true, &["cam"]));
        let records = [
            copy(1, "n1", ProcState::Killed(9)),
            copy(2, "n2", ProcState::Lost),
        ];
        assert_eq!(plan(&view, &records), GroupPlan::default());
        let settled = [
            copy(1, "n1", ProcState::Running),
            copy(2, "n2", ProcState::Starting),
        ];
        assert_eq!(plan(&view, &settled), GroupPlan::default());
    }
}
