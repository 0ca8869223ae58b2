//! Property tests of placement against a plain restatement of its rules (`common::may_take`):
//! the chosen node always may take the process, a node is found whenever one may, the choice is
//! the lowest score, and the same input always gives the same answer.

mod common;

use plexus_sched::{judge, place, ClusterView, NodeView, Refusal, Request, Resources, Verdict};
use proptest::prelude::*;

/// Whether the request names a node or tag the view lacks (then `place` refuses early).
fn names_unknown(view: &ClusterView, request: &Request) -> bool {
    request
        .on
        .as_ref()
        .is_some_and(|on| !view.nodes.contains_key(on))
        || request
            .tags
            .iter()
            .flat_map(|e| e.mentioned())
            .any(|(name, value)| !view.has_tag(name, value))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_chosen_node_may_take_the_process(
        view in common::view(),
        request in common::request(),
    ) {
        if let Ok(placement) = place(&view, &request) {
            let node = &view.nodes[&placement.node];
            prop_assert!(node.up, "chose a down node");
            prop_assert!(common::may_take(&placement.node, node, &request));
        }
    }

    #[test]
    fn a_node_is_found_whenever_one_may_take_it(
        view in common::view(),
        request in common::request(),
    ) {
        let some_fit = view.nodes.iter().any(|(name, node)| common::may_take(name, node, &request));
        let result = place(&view, &request);
        match &result {
            Ok(_) => prop_assert!(some_fit),
            Err(Refusal::NoFit { .. }) => prop_assert!(!some_fit),
            Err(Refusal::NoNodes) => prop_assert!(view.nodes.is_empty()),
            Err(Refusal::UnknownNode { .. } | Refusal::UnknownTag { .. }) => {
                prop_assert!(names_unknown(&view, &request));
                prop_assert!(!some_fit);
            }
        }
    }

    #[test]
    fn every_node_is_judged_and_the_best_score_wins(
        view in common::view(),
        request in common::request(),
    ) {
        let candidates = match place(&view, &request) {
            Ok(placement) => {
                let best = view
                    .nodes
                    .iter()
                    .filter_map(|(name, node)| match judge(name, node, &request) {
                        Verdict::Fits { score, .. } => Some((score, name.clone())),
                        Verdict::Unfit(_) => None,
                    })
                    .min();
                prop_assert_eq!(best.map(|(_, name)| name), Some(placement.node.clone()));
                prop_assert_eq!(&placement.candidates[0].node, &placement.node);
                placement.candidates
            }
            Err(Refusal::NoFit { candidates }) => candidates,
            Err(_) => return Ok(()),
        };
        let mut judged: Vec<&str> = candidates.iter().map(|c| c.node.as_str()).collect();
        judged.sort_unstable();
        let all: Vec<&str> = view.nodes.keys().map(String::as_str).collect();
        prop_assert_eq!(judged, all);
        for c in &candidates {
            let fits = matches!(c.verdict, Verdict::Fits { .. });
            prop_assert_eq!(fits, common::may_take(&c.node, &view.nodes[&c.node], &request));
            if let Verdict::Unfit(reasons) = &c.verdict {
                prop_assert!(!reasons.is_empty());
            }
        }
    }

    #[test]
    fn the_same_input_gives_the_same_answer(
        view in common::view(),
        request in common::request(),
    ) {
        // Rebuilt from its nodes in reverse order: insertion order must not matter either.
        let rebuilt: ClusterView = view.nodes.clone().into_iter().rev().collect();
        let first = place(&view, &request);
        prop_assert_eq!(&first, &place(&rebuilt, &request));
        prop_assert_eq!(
            first.as_ref().map(ToString::to_string).map_err(ToString::to_string),
            place(&view, &request).map(|p| p.to_string()).map_err(|e| e.to_string())
        );
    }

    #[test]
    fn spreading_prefers_the_node_running_fewer(
        processes in proptest::collection::vec(0u32..50, 2..6),
    ) {
        // Equal nodes, nothing reserved: the fewest processes win, ties to the first name.
        let view: ClusterView = processes
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                let mut node = NodeView::up(Resources::new(4000, 1 << 30));
                node.processes = count;
                (format!("n{i}"), node)
            })
            .collect();
        let fewest = processes.iter().min().copied();
        let expected = processes.iter().position(|&p| Some(p) == fewest).map(|i| format!("n{i}"));
        prop_assert_eq!(place(&view, &Request::default()).ok().map(|p| p.node), expected);
    }
}

/// Measured links between the view's nodes: some pairs, either direction.
fn with_links(mut view: ClusterView, figures: Vec<(usize, usize, u64, u64)>) -> ClusterView {
    let names: Vec<String> = view.nodes.keys().cloned().collect();
    if names.is_empty() {
        return view;
    }
    for (a, b, rtt_us, rate) in figures {
        let (a, b) = (&names[a % names.len()], &names[b % names.len()]);
        if a != b {
            if let Some(node) = view.nodes.get_mut(a) {
                node.links
                    .insert(b.clone(), plexus_sched::LinkView { rtt_us, rate });
            }
        }
    }
    view
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A process with link needs goes where `place` would put it among the nodes whose link
    /// to the peer meets them (the peer's own node always does), or nowhere if none fits.
    #[test]
    fn a_linked_process_goes_only_over_links_that_meet_its_needs(
        view in common::view(),
        request in common::request(),
        figures in proptest::collection::vec((0usize..6, 0usize..6, 1u64..5_000, 0u64..1 << 30), 0..12),
        peer in 0usize..6,
        min_rate in proptest::option::of(1u64..1 << 30),
        max_rtt_us in proptest::option::of(1u64..5_000),
    ) {
        let view = with_links(view, figures);
        let Some(peer) = view.nodes.keys().nth(peer % view.nodes.len().max(1)).cloned() else {
            return Ok(());
        };
        let need = plexus_sched::LinkNeed { peer: peer.clone(), min_rate, max_rtt_us };
        let meets = |name: &str| {
            name == peer
                || view.link(name, &peer).is_some_and(|l| {
                    min_rate.is_none_or(|r| l.rate >= r) && max_rtt_us.is_none_or(|m| l.rtt_us <= m)
                })
        };
        let narrowed = ClusterView {
            nodes: view
                .nodes
                .iter()
                .filter(|(name, _)| meets(name))
                .map(|(name, node)| (name.clone(), node.clone()))
                .collect(),
        };
        let linked = plexus_sched::place_linked(&view, &request, std::slice::from_ref(&need));
        match place(&narrowed, &request) {
            Ok(want) => prop_assert_eq!(linked.map(|p| p.node).ok(), Some(want.node)),
            Err(_) => prop_assert!(linked.is_err()),
        }
    }
}

/// Equal up nodes `names`, with links `(from, to, rtt_us, rate)` as `from` measured them.
fn linked_nodes(names: &[&str], links: &[(&str, &str, u64, u64)]) -> ClusterView {
    let mut view = ClusterView::default();
    for name in names {
        view.nodes.insert(
            (*name).to_owned(),
            NodeView::up(Resources::new(4000, 8 << 30)),
        );
    }
    for &(from, to, rtt_us, rate) in links {
        if let Some(node) = view.nodes.get_mut(from) {
            node.links
                .insert(to.to_owned(), plexus_sched::LinkView { rtt_us, rate });
        }
    }
    view
}

#[test]
fn links_that_fall_short_are_the_reasons() {
    // n4 → n1 is measured by n4 only: either end's figure counts.
    let view = linked_nodes(
        &["n1", "n2", "n3", "n4"],
        &[
            ("n1", "n2", 3_000, 100 << 20),
            ("n1", "n3", 200, 1 << 20),
            ("n4", "n1", 300, 50 << 20),
        ],
    );
    let need = plexus_sched::LinkNeed {
        peer: "n1".to_owned(),
        min_rate: Some(10 << 20),
        max_rtt_us: Some(1_000),
    };
    let avoid_n1 = Request {
        avoid: ["n1".to_owned()].into(),
        ..Request::default()
    };
    let placed = plexus_sched::place_linked(&view, &avoid_n1, std::slice::from_ref(&need)).unwrap();
    assert_eq!(placed.node, "n4");
    let text = plexus_sched::place_linked(
        &view,
        &Request {
            avoid: ["n1".to_owned(), "n4".to_owned()].into(),
            ..Request::default()
        },
        &[need],
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("its link to n1 has a 3.00 ms round trip, at most 1.00 ms allowed"),
        "{text}"
    );
    assert!(
        text.contains("its link to n1 carries 1 MiB/s, needs 10 MiB/s"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A process reading from several placed processes goes beside one of them when that
    /// node fits it and its links to the others meet their needs; otherwise wherever
    /// `place_linked` puts it.
    #[test]
    fn a_process_near_its_producers_goes_beside_one_where_it_fits(
        view in common::view(),
        request in common::request(),
        figures in proptest::collection::vec((0usize..6, 0usize..6, 1u64..5_000, 0u64..1 << 30), 0..12),
        needs in proptest::collection::vec(
            (0usize..6, proptest::option::of(1u64..1 << 30), proptest::option::of(1u64..5_000)),
            0..4,
        ),
    ) {
        let view = with_links(view, figures);
        let names: Vec<String> = view.nodes.keys().cloned().collect();
        if names.is_empty() {
            return Ok(());
        }
        let needs: Vec<plexus_sched::LinkNeed> = needs
            .into_iter()
            .map(|(peer, min_rate, max_rtt_us)| plexus_sched::LinkNeed {
                peer: names[peer % names.len()].clone(),
                min_rate,
                max_rtt_us,
            })
            .collect();
        let near = plexus_sched::place_near(&view, &request, &needs);
        let anywhere = plexus_sched::place_linked(&view, &request, &needs);
        // It fits wherever it goes: every link need met, and bound nodes kept.
        let fits_on = |node: &str| {
            let bound = Request { on: Some(node.to_owned()), ..request.clone() };
            plexus_sched::place_linked(&view, &bound, &needs).is_ok()
        };
        if let Ok(p) = &near {
            prop_assert!(fits_on(&p.node));
            if let Some(on) = &request.on {
                prop_assert_eq!(&p.node, on);
            }
        }
        // It finds a node exactly when one exists.
        prop_assert_eq!(near.is_ok(), anywhere.is_ok());
        // The first producer's node that fits is taken before any other.
        let beside = needs.iter().find(|n| request.on.is_none() && fits_on(&n.peer));
        if let Some(first) = beside {
            prop_assert_eq!(near.map(|p| p.node).ok(), Some(first.peer.clone()));
        }
    }
}

#[test]
fn two_producers_a_slow_link_to_one_rules_its_peers_out() {
    // n1 ↔ n2 is slow; n3 reaches both fast.
    let view = linked_nodes(
        &["n1", "n2", "n3"],
        &[
            ("n1", "n2", 300, 1 << 20),
            ("n1", "n3", 300, 500 << 20),
            ("n2", "n3", 300, 500 << 20),
        ],
    );
    let needs = ["n1", "n2"].map(|peer| plexus_sched::LinkNeed {
        peer: peer.to_owned(),
        min_rate: Some(100 << 20),
        max_rtt_us: None,
    });
    // Beside either producer, the link to the other is too slow: the merge goes to n3.
    let placed = plexus_sched::place_near(&view, &Request::default(), &needs).unwrap();
    assert_eq!(placed.node, "n3");
    // Only the first edge held (as before): beside n1, against the second edge's need.
    let first_only = plexus_sched::place_near(&view, &Request::default(), &needs[..1]).unwrap();
    assert_eq!(first_only.node, "n1");
}
