//! `--everywhere` groups: one copy of a program on every eligible node.
//!
//! [`reconcile_everywhere`] compares where copies are with where they should be. A node is
//! eligible when it is up and its tags satisfy every expression of the group. Copies are not
//! checked against the nodes' free CPU and memory: a group's copy belongs on every eligible node.

use std::collections::BTreeSet;

use crate::tags::TagExpr;
use crate::view::ClusterView;

/// What to change so that every eligible node holds exactly one copy. Each list is sorted by
/// node name, and a node appears in at most one list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EverywherePlan {
    /// Eligible up nodes without a copy: start one there.
    pub start: Vec<String>,
    /// Up nodes whose copy is no longer eligible (the node lost a tag): stop it.
    pub stop: Vec<String>,
    /// Nodes that are down or gone from the view with a copy: report it lost (nothing can
    /// be stopped there).
    pub lost: Vec<String>,
}

impl EverywherePlan {
    /// Whether nothing needs to change.
    pub fn is_settled(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty() && self.lost.is_empty()
    }
}

/// The changes for a group with these tag expressions, given the nodes holding a copy now.
pub fn reconcile_everywhere(
    view: &ClusterView,
    tags: &[TagExpr],
    holders: &BTreeSet<String>,
) -> EverywherePlan {
    let mut plan = EverywherePlan::default();
    for (name, node) in &view.nodes {
        let eligible = node.up && tags.iter().all(|e| e.matches(&node.tags));
        let holds = holders.contains(name);
        if holds && !node.up {
            plan.lost.push(name.clone());
        } else if holds && !eligible {
            plan.stop.push(name.clone());
        } else if !holds && eligible {
            plan.start.push(name.clone());
        }
    }
    plan.lost.extend(
        holders
            .iter()
            .filter(|h| !view.nodes.contains_key(*h))
            .cloned(),
    );
    plan.lost.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;
    use crate::view::NodeView;

    fn node(up: bool, tags: &[&str]) -> NodeView {
        NodeView {
            up,
            tags: tags
                .iter()
                .map(|t| (t.to_string(), String::new()))
                .collect(),
            ..NodeView::up(Resources::ZERO)
        }
    }

    #[test]
    fn starts_stops_and_loses() {
        let view = ClusterView::new()
            .with_node("a", node(true, &["camera"]))
            .with_node("b", node(true, &[]))
            .with_node("c", node(false, &["camera"]))
            .with_node("d", node(true, &["camera"]))
            .with_node("e", node(false, &["camera"]));
        let holders: BTreeSet<String> = ["b", "c", "d", "gone"].map(String::from).into();
        let tags = match TagExpr::parse("camera") {
            Ok(e) => vec![e],
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            reconcile_everywhere(&view, &tags, &holders),
            EverywherePlan {
                start: vec!["a".into()],
                stop: vec!["b".into()],
                lost: vec!["c".into(), "gone".into()],
            }
        );
        let all_up: BTreeSet<String> = ["a", "b", "d"].map(String::from).into();
        let plan = reconcile_everywhere(&view, &[], &all_up);
        assert!(plan.is_settled(), "{plan:?}");
    }
}
