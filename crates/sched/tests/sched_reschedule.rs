//! Rescheduling the processes of a dead node: unit tests of the outcomes, and properties over
//! arbitrary clusters (never onto a down node, never beyond a node's capacity, `never` lost).

mod common;

use std::collections::BTreeMap;

use plexus_sched::{
    place, reschedule, ClusterView, NodeView, PlacedProcess, Reason, Refusal, Request,
    RescheduleOutcome, Resources, RestartPolicy, TagExpr, Verdict,
};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn process(id: &str, policy: RestartPolicy, request: Request) -> PlacedProcess {
    PlacedProcess {
        id: id.to_string(),
        request,
        policy,
    }
}

fn cluster() -> ClusterView {
    let mut n1 = NodeView::up(Resources::new(2000, 2 * GIB));
    n1.reserved = Resources::new(1000, GIB);
    n1.processes = 2;
    let mut camera = NodeView::up(Resources::new(2000, 2 * GIB));
    camera.tags.insert("camera".into(), String::new());
    ClusterView::new()
        .with_node("n1", n1)
        .with_node("n2", NodeView::up(Resources::new(2000, 2 * GIB)))
        .with_node("n3", camera)
}

#[test]
fn each_policy_gets_its_outcome() {
    let one_core = Request {
        reserve: Resources::new(1000, 0),
        ..Request::default()
    };
    let camera = Request {
        tags: vec![TagExpr::Has("camera".into())],
        ..Request::default()
    };
    let pinned = Request {
        on: Some("n3".into()),
        ..Request::default()
    };
    let processes = [
        process("a", RestartPolicy::Always, one_core.clone()),
        process("b", RestartPolicy::OnFailure, one_core.clone()),
        process("c", RestartPolicy::Never, one_core.clone()),
        process("d", RestartPolicy::Always, one_core.clone()),
        process("g", RestartPolicy::OnFailure, one_core),
        process("e", RestartPolicy::Always, camera),
        process("f", RestartPolicy::Always, pinned),
    ];
    let outcomes = reschedule(&cluster(), "n3", &processes);
    let summary: Vec<(&str, String)> = outcomes
        .iter()
        .map(|r| {
            let what = match &r.outcome {
                RescheduleOutcome::Moved(p) => format!("moved to {}", p.node),
                RescheduleOutcome::Unplaceable(Refusal::NoFit { .. }) => "no fit".into(),
                RescheduleOutcome::Unplaceable(other) => format!("refused: {other}"),
                RescheduleOutcome::Lost => "lost".into(),
            };
            (r.id.as_str(), what)
        })
        .collect();
    // n2 has two free cores and runs nothing, n1 one free core: a and b go to n2 (less loaded,
    // then as loaded as n1 but running fewer), d takes n1's last core, and e (camera) and f
    // (pinned to n3) fit nowhere once n3 is down, nor g: every core is taken.
    assert_eq!(
        summary,
        [
            ("a", "moved to n2".to_string()),
            ("b", "moved to n2".to_string()),
            ("c", "lost".to_string()),
            ("d", "moved to n1".to_string()),
            ("g", "no fit".to_string()),
            ("e", "no fit".to_string()),
            ("f", "no fit".to_string()),
        ]
    );
    let RescheduleOutcome::Unplaceable(Refusal::NoFit { candidates }) = &outcomes[6].outcome else {
        panic!("{:?}", outcomes[6]);
    };
    let n3 = candidates
        .iter()
        .find(|c| c.node == "n3")
        .map(|c| &c.verdict);
    assert_eq!(
        n3,
        Some(&Verdict::Unfit(vec![Reason::Down, Reason::Avoided]))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn moves_respect_down_nodes_capacity_and_policies(
        view in common::view(),
        down in common::node_name(),
        processes in proptest::collection::vec(
            (common::request(), prop_oneof![
                Just(RestartPolicy::Never),
                Just(RestartPolicy::OnFailure),
                Just(RestartPolicy::Always),
            ]),
            0..8,
        ),
    ) {
        let processes: Vec<PlacedProcess> = processes
            .into_iter()
            .enumerate()
            .map(|(i, (request, policy))| process(&format!("p{i}"), policy, request))
            .collect();
        let outcomes = reschedule(&view, &down, &processes);
        prop_assert_eq!(outcomes.len(), processes.len());
        let mut added: BTreeMap<String, Resources> = BTreeMap::new();
        for (process, outcome) in processes.iter().zip(&outcomes) {
            prop_assert_eq!(&outcome.id, &process.id);
            match &outcome.outcome {
                RescheduleOutcome::Lost => prop_assert_eq!(process.policy, RestartPolicy::Never),
                RescheduleOutcome::Moved(placement) => {
                    prop_assert_ne!(process.policy, RestartPolicy::Never);
                    prop_assert_ne!(&placement.node, &down);
                    let node = &view.nodes[&placement.node];
                    prop_assert!(node.up);
                    prop_assert!(process.request.tags.iter().all(|e| e.matches(&node.tags)));
                    let total = added.entry(placement.node.clone()).or_default();
                    *total = total.saturating_add(process.request.reserve);
                }
                RescheduleOutcome::Unplaceable(_) => {
                    prop_assert_ne!(process.policy, RestartPolicy::Never);
                }
            }
        }
        // The batch as a whole fits: nothing beyond what each node had free.
        for (name, total) in &added {
            let free = view.nodes[name].free();
            prop_assert!(total.cpu_millis <= free.cpu_millis && total.mem_bytes <= free.mem_bytes,
                "{} overfilled: {:?} placed, {:?} free", name, total, free);
        }
    }

    #[test]
    fn a_single_process_moves_where_place_would_put_it(
        view in common::view(),
        down in common::node_name(),
        request in common::request(),
    ) {
        let moving = process("p", RestartPolicy::Always, request.clone());
        let outcomes = reschedule(&view, &down, &[moving]);
        let mut dead = view.clone();
        if let Some(node) = dead.nodes.get_mut(&down) {
            node.up = false;
        }
        let mut avoiding = request;
        avoiding.avoid.insert(down);
        let expected = match place(&dead, &avoiding) {
            Ok(p) => RescheduleOutcome::Moved(p),
            Err(r) => RescheduleOutcome::Unplaceable(r),
        };
        prop_assert_eq!(&outcomes[0].outcome, &expected);
    }
}
