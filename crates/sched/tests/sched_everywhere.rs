//! Property tests of `--everywhere` reconciliation: applying the plan leaves exactly one copy
//! on every eligible node and none elsewhere.

mod common;

use std::collections::BTreeSet;

use plexus_sched::reconcile_everywhere;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn applying_the_plan_settles_the_group(
        view in common::view(),
        tags in proptest::collection::vec(common::tag_expr(), 0..3),
        holders in proptest::collection::btree_set(
            prop_oneof![common::node_name(), Just("gone".to_string())],
            0..7,
        ),
    ) {
        let plan = reconcile_everywhere(&view, &tags, &holders);
        let eligible: BTreeSet<&String> = view
            .nodes
            .iter()
            .filter(|(_, n)| n.up && tags.iter().all(|e| e.matches(&n.tags)))
            .map(|(name, _)| name)
            .collect();

        for name in &plan.start {
            prop_assert!(eligible.contains(name) && !holders.contains(name));
        }
        for name in &plan.stop {
            prop_assert!(holders.contains(name) && !eligible.contains(name));
            prop_assert!(view.nodes[name].up, "a down node's copy is lost, not stopped");
        }
        for name in &plan.lost {
            prop_assert!(holders.contains(name));
            prop_assert!(view.nodes.get(name).is_none_or(|n| !n.up));
        }
        let mentioned: Vec<&String> =
            plan.start.iter().chain(&plan.stop).chain(&plan.lost).collect();
        let distinct: BTreeSet<&String> = mentioned.iter().copied().collect();
        prop_assert_eq!(mentioned.len(), distinct.len(), "a node in two lists");
        for list in [&plan.start, &plan.stop, &plan.lost] {
            prop_assert!(list.windows(2).all(|w| w[0] < w[1]), "not sorted: {:?}", list);
        }

        let mut after: BTreeSet<String> = holders.clone();
        for name in plan.stop.iter().chain(&plan.lost) {
            after.remove(name);
        }
        after.extend(plan.start.iter().cloned());
        let after_refs: BTreeSet<&String> = after.iter().collect();
        prop_assert_eq!(&after_refs, &eligible);
        prop_assert!(reconcile_everywhere(&view, &tags, &after).is_settled());
    }
}
