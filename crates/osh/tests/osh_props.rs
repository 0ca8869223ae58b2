//! Properties: no input makes the crate panic, errors point inside the input, and a valid
//! instance printed as a script evaluates back to itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{
    plan, run, CmpOp, Directive, DirectiveKind, Edge, EdgeKind, Effect, Format, Instance, Node,
    NumericConstraint, OshError, Placement, Policy,
};
use plexus_sched::TagExpr;
use proptest::prelude::*;

/// The error's line and column lie inside `src`, its span too, and it renders.
fn check_error(src: &str, e: &OshError) {
    let lines: Vec<&str> = src.split('\n').collect();
    assert!(e.span.line >= 1 && e.span.line <= lines.len(), "{e:?}");
    let mut line = lines[e.span.line - 1];
    if e.span.line == 1 {
        line = line.strip_prefix('\u{feff}').unwrap_or(line);
    }
    assert!(
        e.span.column >= 1 && e.span.column <= line.chars().count() + 1,
        "{e:?}"
    );
    assert!(
        e.span.start <= e.span.end && e.span.end <= src.len(),
        "{e:?}"
    );
    assert!(src.is_char_boundary(e.span.start) && src.is_char_boundary(e.span.end));
    let r = e.render("f.osh", src);
    assert!(r.starts_with(&format!("f.osh:{e}")), "{r}");
    assert_eq!(r.lines().count(), 3, "{r:?}");
}

fn exercise(src: &str) {
    match run(src) {
        Ok(effects) => {
            for e in effects {
                if let Effect::Spawn(i) | Effect::TestSpawn(i) = e {
                    let _ = plan(&i, 3);
                }
            }
        }
        Err(e) => check_error(src, &e),
    }
}

/// Pieces of scripts, so that random sequences reach past the first token.
const VOCABULARY: &[&str] = &[
    "graph",
    "G",
    "H",
    "(",
    ")",
    "{",
    "}",
    "node",
    "edge",
    "a",
    "b",
    ":",
    ";",
    ",",
    "process",
    "\"sh\"",
    "\"x y\"",
    "\"json\"",
    "->",
    "-/>",
    "-*>",
    "policy",
    "P",
    "for",
    "place",
    "#gpu",
    "&&",
    "||",
    "!",
    "==",
    "\"lab\"",
    "always",
    "console",
    "max_rate",
    "min_rate",
    "order_by",
    "checkpoint",
    "1",
    "5.5",
    "spawn",
    "with",
    "print",
    "let",
    "const",
    "x",
    "=",
    "+",
    "-",
    "*",
    "init",
    "test_spawn",
    "\n",
    "\r\n",
    "//c\n",
    "/*c*/",
    "\u{feff}",
    "{\"inputFormat\": \"json\"}",
    "(m) => m.i",
    "e",
    "null",
    "true",
    ".",
    "@in",
    "if",
    "\"",
    "é",
    "\t",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec((0..VOCABULARY.len(), prop::bool::ANY), 0..60).prop_map(|parts| {
        let mut s = String::new();
        for (i, space) in parts {
            s.push_str(VOCABULARY[i]);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,5}"
}

fn tag_expr() -> impl Strategy<Value = TagExpr> {
    let leaf = prop_oneof![
        name().prop_map(TagExpr::Has),
        (name(), "[A-Za-z0-9_.:/-]{1,8}").prop_map(|(n, v)| TagExpr::Equals(n, v)),
    ];
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| TagExpr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(TagExpr::And),
            prop::collection::vec(inner, 2..4).prop_map(TagExpr::Or),
        ]
    })
}

fn placement() -> impl Strategy<Value = Placement> {
    let op = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ];
    let numeric = (name(), op, -1.0e6..1.0e6f64).prop_map(|(tag, op, value)| NumericConstraint {
        tag,
        op,
        value,
    });
    (
        prop::option::of(tag_expr()),
        prop::collection::vec(numeric, 0..3),
    )
        .prop_filter("something to place by", |(t, n)| {
            t.is_some() || !n.is_empty()
        })
        .prop_map(|(tags, numeric)| Placement { tags, numeric })
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Raw), Just(Format::Segment), Just(Format::Json)]
}

fn edge_kind() -> impl Strategy<Value = EdgeKind> {
    prop_oneof![
        Just(EdgeKind::Basic),
        Just(EdgeKind::Split),
        Just(EdgeKind::Merge)
    ]
}

/// A valid instance: a DAG (edges go from lower to higher node index) whose edges join equal
/// formats, and maybe a policy whose directives fit their operands.
fn instance() -> impl Strategy<Value = Instance> {
    let node = (
        "[a-z/]{1,6}( [a-z]{1,3})?",
        prop::collection::vec("[A-Za-z0-9_./\\\\\"'-]{1,8}", 0..4),
        format(),
        format(),
    );
    let nodes = prop::collection::vec(node, 1..7);
    let edges = prop::collection::vec((0..7usize, 0..7usize, edge_kind()), 0..10);
    let directive = (
        0..8usize,
        placement(),
        0.001..1.0e6f64,
        0.001..1.0e6f64,
        0..3usize,
        0..16usize,
    );
    let directives = prop::collection::vec(directive, 0..8);
    (name(), nodes, edges, prop::option::of((name(), directives))).prop_map(
        |(gname, nodes, edges, policy)| {
            let nodes: Vec<Node> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (binary, args, input, output))| Node {
                    id: format!("n{i}"),
                    binary,
                    file_arg: if args.is_empty() { None } else { Some(0) },
                    args,
                    input_format: input,
                    output_format: output,
                })
                .collect();
            let mut kept = Vec::new();
            for (a, b, kind) in edges {
                let (a, b) = (a % nodes.len(), b % nodes.len());
                let (from, to) = (a.min(b), a.max(b));
                if from != to && nodes[from].output_format == nodes[to].input_format {
                    kept.push(Edge {
                        id: format!("e{}", kept.len()),
                        from: nodes[from].id.clone(),
                        to: nodes[to].id.clone(),
                        kind,
                    });
                }
            }
            let policy = policy.map(|(pname, directives)| {
                let mut used = std::collections::HashSet::new();
                let mut out = Vec::new();
                for (which, place, x, y, order, pick) in directives {
                    let kind = match which {
                        0 => DirectiveKind::Place(place),
                        1 => DirectiveKind::Always,
                        2 => DirectiveKind::Console,
                        3 => DirectiveKind::Checkpoint { seconds: x },
                        4 => DirectiveKind::MinRate {
                            mb_per_s: x.min(1000.0),
                        },
                        5 => DirectiveKind::MaxRate {
                            mb_per_s: y.max(1000.0),
                        },
                        6 => DirectiveKind::MaxLatency { ms: x },
                        _ => DirectiveKind::OrderBy {
                            function: ["(m) => m.index", "index", "(msg) => msg.seq + 1"][order]
                                .into(),
                        },
                    };
                    let ids: Vec<&String> = if kind.on_nodes() {
                        nodes.iter().map(|n| &n.id).collect()
                    } else {
                        kept.iter().map(|e| &e.id).collect()
                    };
                    if ids.is_empty() {
                        continue;
                    }
                    let id = ids[pick % ids.len()].clone();
                    if used.insert((kind.name(), id.clone())) {
                        out.push(Directive {
                            kind,
                            operands: vec![id],
                        });
                    }
                }
                Policy {
                    name: format!("P{pname}"),
                    directives: out,
                }
            });
            Instance {
                graph: format!("G{gname}"),
                nodes,
                edges: kept,
                policy,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        exercise(&src);
    }

    #[test]
    fn token_soup_never_panics(src in soup()) {
        exercise(&src);
    }

    #[test]
    fn printing_an_instance_gives_it_back(inst in instance()) {
        let text = inst.to_osh();
        match run(&text) {
            Ok(effects) => prop_assert_eq!(effects, vec![Effect::Spawn(inst.clone())], "{}", text),
            Err(e) => prop_assert!(false, "{}\n{}", e.render("printed.osh", &text), text),
        }
        let p = plan(&inst, 3);
        let ids: std::collections::HashSet<&str> =
            p.processes.iter().map(|p| p.id.as_str()).collect();
        prop_assert_eq!(ids.len(), p.processes.len());
        for pipe in &p.pipes {
            prop_assert!(ids.contains(pipe.from.as_str()) && ids.contains(pipe.to.as_str()));
        }
    }
}
