//! The word-count benchmark of OneOS, verbatim from its repository: what it evaluates to,
//! its plan, and the same script with a BOM, CRLF line ends and `test_spawn`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{plan, run, EdgeKind, Effect, Format, Instance, Node, Policy, Script};

const WORDCOUNT: &str = include_str!("scripts/wordcount.osh");

fn node(id: &str, args: &[&str]) -> Node {
    Node {
        id: id.into(),
        binary: "node".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        file_arg: Some(0),
        input_format: Format::Raw,
        output_format: Format::Raw,
    }
}

fn expected_instance() -> Instance {
    Instance {
        graph: "DSP_wordcount".into(),
        nodes: vec![
            node("split", &["SplitSentence.js", "books.dat"]),
            node("count", &["WordCount.js"]),
            node("sink", &["/home/root/writer.js", "wordcount.out"]),
        ],
        edges: vec![
            plexus_osh::Edge {
                id: "e1".into(),
                from: "split".into(),
                to: "count".into(),
                kind: EdgeKind::Basic,
            },
            plexus_osh::Edge {
                id: "e2".into(),
                from: "count".into(),
                to: "sink".into(),
                kind: EdgeKind::Basic,
            },
        ],
        policy: Some(Policy {
            name: "BasicPolicy".into(),
            directives: vec![],
        }),
    }
}

#[test]
fn the_verbatim_script_prints_then_spawns() {
    let effects = run(WORDCOUNT).unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::Print("Starting DSPBench - wordcount".into()),
            Effect::Spawn(expected_instance()),
        ]
    );
}

#[test]
fn the_script_lists_its_graphs_and_policies() {
    let script = Script::parse(WORDCOUNT).unwrap();
    assert_eq!(script.graphs().collect::<Vec<_>>(), ["DSP_wordcount"]);
    assert_eq!(script.policies().collect::<Vec<_>>(), ["BasicPolicy"]);
    // Evaluating twice gives the same effects: nothing is kept between runs.
    assert_eq!(script.evaluate().unwrap(), script.evaluate().unwrap());
}

#[test]
fn a_pipeline_without_split_plans_one_process_per_node() {
    let p = plan(&expected_instance(), 5);
    let ids: Vec<_> = p.processes.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["split", "count", "sink"]);
    assert!(p.processes.iter().all(|p| p.replica.is_none()));
    let pipes: Vec<_> = p
        .pipes
        .iter()
        .map(|p| (p.edge_id.as_str(), p.from.as_str(), p.to.as_str()))
        .collect();
    assert_eq!(pipes, [("e1", "split", "count"), ("e2", "count", "sink")]);
}

#[test]
fn bom_and_crlf_change_nothing() {
    let crlf = format!("\u{feff}{}", WORDCOUNT.replace('\n', "\r\n"));
    assert_eq!(run(&crlf).unwrap(), run(WORDCOUNT).unwrap());
}

#[test]
fn errors_in_a_crlf_script_with_bom_point_at_the_right_column() {
    let src = "\u{feff}graph G() {\r\n  node a: 5;\r\n}\r\nspawn G();\r\n";
    let err = run(src).unwrap_err();
    assert_eq!((err.span.line, err.span.column), (2, 11));
    assert_eq!(
        err.render("g.osh", src),
        "g.osh:2:11: node `a` must be a process(…), found a number\n  node a: 5;\n          ^"
    );
    let src = "\u{feff}spawn H();";
    let err = run(src).unwrap_err();
    assert_eq!((err.span.line, err.span.column), (1, 7));
    assert_eq!(
        err.render("g.osh", src),
        "g.osh:1:7: no graph `H`\nspawn H();\n      ^"
    );
}

#[test]
fn test_spawn_shows_without_spawning() {
    let script = WORDCOUNT.replace("// test_spawn", "test_spawn").replace(
        "spawn DSP_wordcount(\"books.dat\", \"wordcount.out\") with",
        "// spawn",
    );
    let effects = run(&script).unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::Print("Starting DSPBench - wordcount".into()),
            Effect::TestSpawn(expected_instance()),
        ]
    );
}

#[test]
fn the_instance_prints_back_to_a_script_of_itself() {
    let inst = expected_instance();
    let text = inst.to_osh();
    assert_eq!(run(&text).unwrap(), vec![Effect::Spawn(inst)]);
}
