//! The parallelism expansion: which nodes are parallel, and the pipes of each edge kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{parallel_nodes, plan, run, Edge, EdgeKind, Effect, Format, Instance, Node};

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        binary: "sh".into(),
        args: vec![format!("{id}.sh")],
        file_arg: Some(0),
        input_format: Format::Raw,
        output_format: Format::Raw,
    }
}

/// An instance from `(id, from, to, kind)` edges over the nodes named.
fn graph(nodes: &[&str], edges: &[(&str, &str, &str, EdgeKind)]) -> Instance {
    Instance {
        graph: "G".into(),
        nodes: nodes.iter().map(|n| node(n)).collect(),
        edges: edges
            .iter()
            .map(|(id, f, t, k)| Edge {
                id: id.to_string(),
                from: f.to_string(),
                to: t.to_string(),
                kind: *k,
            })
            .collect(),
        policy: None,
    }
}

fn pipes(i: &Instance, n: usize) -> Vec<String> {
    plan(i, n)
        .pipes
        .iter()
        .map(|p| format!("{}:{}>{}", p.edge_id, p.from, p.to))
        .collect()
}

fn processes(i: &Instance, n: usize) -> Vec<String> {
    plan(i, n).processes.into_iter().map(|p| p.id).collect()
}

use EdgeKind::{Basic, Merge, Split};

#[test]
fn parallelism_spreads_along_basic_edges_and_stops_at_a_merge() {
    let g = graph(
        &["src", "a", "b", "c", "sink", "after"],
        &[
            ("e1", "src", "a", Split),
            ("e2", "a", "b", Basic),
            ("e3", "b", "c", Basic),
            ("e4", "c", "sink", Merge),
            ("e5", "sink", "after", Basic),
        ],
    );
    let par: Vec<_> = parallel_nodes(&g).into_iter().collect();
    assert_eq!(par, ["a", "b", "c"]);
    assert_eq!(
        pipes(&g, 2),
        [
            "e1:src>a-0",
            "e1:src>a-1",
            "e2:a-0>b-0",
            "e2:a-1>b-1",
            "e3:b-0>c-0",
            "e3:b-1>c-1",
            "e4:c-0>sink",
            "e4:c-1>sink",
            "e5:sink>after",
        ]
    );
}

#[test]
fn declaration_order_does_not_matter() {
    // The edges listed sink first: the spread still reaches the end of the chain.
    let g = graph(
        &["d", "c", "b", "a"],
        &[
            ("e3", "c", "d", Basic),
            ("e2", "b", "c", Basic),
            ("e1", "a", "b", Split),
        ],
    );
    let par: Vec<_> = parallel_nodes(&g).into_iter().collect();
    assert_eq!(par, ["b", "c", "d"]);
}

#[test]
fn a_sink_parallel_for_another_reason_gets_a_pipe_from_everywhere() {
    // `m` is parallel through the split from `s`; the merge from `p`'s replicas and the basic
    // edge from the single `q` each reach every replica of `m`.
    let g = graph(
        &["s", "p", "q", "m"],
        &[
            ("e1", "s", "p", Split),
            ("e2", "s", "m", Split),
            ("e3", "p", "m", Merge),
            ("e4", "q", "m", Basic),
        ],
    );
    assert_eq!(
        pipes(&g, 2),
        [
            "e1:s>p-0",
            "e1:s>p-1",
            "e2:s>m-0",
            "e2:s>m-1",
            "e3:p-0>m-0",
            "e3:p-0>m-1",
            "e3:p-1>m-0",
            "e3:p-1>m-1",
            "e4:q>m-0",
            "e4:q>m-1",
        ]
    );
}

#[test]
fn a_split_after_a_split_feeds_every_replica_from_every_replica() {
    let g = graph(
        &["a", "b", "c"],
        &[("e1", "a", "b", Split), ("e2", "b", "c", Split)],
    );
    assert_eq!(
        pipes(&g, 2),
        [
            "e1:a>b-0",
            "e1:a>b-1",
            "e2:b-0>c-0",
            "e2:b-0>c-1",
            "e2:b-1>c-0",
            "e2:b-1>c-1"
        ]
    );
}

#[test]
fn replica_counts() {
    let g = graph(&["a", "b"], &[("e", "a", "b", Split)]);
    assert_eq!(processes(&g, 0), ["a", "b-0"]);
    assert_eq!(processes(&g, 1), ["a", "b-0"]);
    assert_eq!(processes(&g, 4), ["a", "b-0", "b-1", "b-2", "b-3"]);
    let p = plan(&g, 4);
    assert_eq!(p.processes[3].replica, Some(2));
    assert_eq!(p.processes[0].replica, None);
}

#[test]
fn a_hand_built_instance_with_unknown_ends_is_planned_without_them() {
    let g = graph(
        &["a"],
        &[("e", "a", "ghost", Split), ("f", "ghost", "a", Basic)],
    );
    assert_eq!(processes(&g, 3), ["a"]);
    assert!(pipes(&g, 3).is_empty());
}

#[test]
fn a_script_split_plans_from_its_instance() {
    let effects = run(
        "graph G() { node a: process(\"sh\", \"a\") node b: process(\"sh\", \"b\") \
         node c: process(\"sh\", \"c\") edge e1: a -/> b edge e2: b -*> c } test_spawn(G());",
    )
    .unwrap();
    let Effect::TestSpawn(inst) = &effects[0] else {
        panic!()
    };
    assert_eq!(processes(inst, 2), ["a", "b-0", "b-1", "c"]);
}
