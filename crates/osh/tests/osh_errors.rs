//! Every refusal: what kind, where, and for a few the exact rendering with carets. A script
//! with an error yields no effect at all, even those before the error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{run, ErrorKind, IdKind, OshError, Script};

fn err(src: &str) -> OshError {
    match run(src) {
        Ok(effects) => panic!("{src:?} should fail, gave {effects:?}"),
        Err(e) => e,
    }
}

/// The error's kind and the text its span covers.
fn kind_at(src: &str) -> (ErrorKind, String) {
    let e = err(src);
    (e.kind, src[e.span.start..e.span.end].to_string())
}

fn rendered(src: &str) -> String {
    err(src).render("app.osh", src)
}

const TWO: &str = "graph G(a, b = 1) {\n  node x: process(\"sh\", \"x.sh\");\n  node y: process(\"sh\", \"y.sh\");\n  edge e: x -> y;\n}\n";

#[test]
fn syntax_errors_say_what_was_expected() {
    assert_eq!(
        rendered("graph G() {\n  node a process(\"sh\", \"a\");\n}\n"),
        "app.osh:2:10: expected `:`, found `process`\n  node a process(\"sh\", \"a\");\n         ^^^^^^^"
    );
    assert_eq!(
        rendered("graph G() {\n  edge e: a => b;\n}"),
        "app.osh:2:13: expected `->`, `-/>` or `-*>`, found `=>`\n  edge e: a => b;\n            ^^"
    );
    assert_eq!(
        rendered("spawn G(\"a\""),
        "app.osh:1:12: expected `,` or `)`, found the end of the script\nspawn G(\"a\"\n           ^"
    );
    let (kind, _) = kind_at("let s = \"abc;\n");
    assert_eq!(kind, ErrorKind::UnterminatedString);
    let (kind, at) = kind_at("let s = 1 $ 2;");
    assert_eq!(
        (kind, at.as_str()),
        (ErrorKind::UnexpectedChar { ch: '$' }, "$")
    );
    let (kind, _) = kind_at("/* never closed");
    assert_eq!(kind, ErrorKind::UnterminatedComment);
    let (kind, at) = kind_at("while (true) {}");
    assert!(matches!(kind, ErrorKind::Unsupported { .. }));
    assert_eq!(at, "while");
}

#[test]
fn an_edge_between_formats_that_differ_points_at_the_edge() {
    let src = "graph G() {\n  node a: process(\"sh\", \"a\", \"json\");\n  node b: process(\"sh\", \"b\");\n  edge e1: a -> b;\n}\nspawn G();\n";
    assert_eq!(
        rendered(src),
        "app.osh:4:3: edge `e1` joins `a`, whose output format is json, to `b`, whose input format is raw\n  edge e1: a -> b;\n  ^^^^^^^^^^^^^^^"
    );
    // Options objects set each side.
    let ok = src.replace(
        "process(\"sh\", \"b\")",
        "process(\"sh\", \"b\", {\"inputFormat\": \"json\", \"outputFormat\": \"segment\"})",
    );
    assert!(run(&ok).is_ok());
}

#[test]
fn unknown_formats_and_options() {
    let (kind, at) = kind_at("graph G() { node a: process(\"sh\", \"a\", \"xml\") }\nspawn G();");
    assert_eq!(
        kind,
        ErrorKind::UnknownFormat {
            format: "xml".into()
        }
    );
    assert_eq!(at, "\"xml\"");
    let (kind, _) = kind_at(
        "graph G() { node a: process(\"sh\", \"a\", {\"inputformat\": \"json\"}) }\nspawn G();",
    );
    assert_eq!(
        kind,
        ErrorKind::UnknownOption {
            key: "inputformat".into()
        }
    );
    let (kind, _) = kind_at("graph G() { node a: process(\"\", \"a\") }\nspawn G();");
    assert_eq!(kind, ErrorKind::EmptyBinary);
    let (kind, _) = kind_at("graph G() { node a: \"sh a\" }\nspawn G();");
    assert_eq!(
        kind,
        ErrorKind::NotAProcess {
            node: "a".into(),
            found: "a string"
        }
    );
}

#[test]
fn unknown_ids_in_edges_and_policies() {
    let (kind, at) = kind_at("graph G() { node a: process(\"sh\", \"a\"); edge e: a -> b; }");
    assert_eq!(
        kind,
        ErrorKind::UnknownId {
            graph: "G".into(),
            id: "b".into(),
            expected: IdKind::Node
        }
    );
    assert_eq!(at, "b");
    // An edge is no node to connect.
    let (kind, _) = kind_at(&format!(
        "{TWO}graph H() {{ node z: process(\"sh\", \"z\"); edge f: z -> f; }}"
    ));
    assert!(matches!(kind, ErrorKind::UnknownId { ref id, .. } if id == "f"));
    let src = format!("{TWO}policy P() for G {{\n  always () x, w;\n}}\n");
    assert_eq!(
        rendered(&src),
        "app.osh:7:16: graph `G` has no node `w`\n  always () x, w;\n               ^"
    );
}

#[test]
fn directives_on_the_wrong_kind_of_id() {
    let src = format!("{TWO}policy P() for G {{\n  place (#gpu) e;\n}}\n");
    assert_eq!(
        rendered(&src),
        "app.osh:7:16: `place` applies to nodes, and `e` is an edge\n  place (#gpu) e;\n               ^"
    );
    let (kind, at) = kind_at(&format!("{TWO}policy P() for G {{ max_rate (1) x }}"));
    assert_eq!(
        kind,
        ErrorKind::WrongOperand {
            directive: "max_rate".into(),
            id: "x".into(),
            expected: IdKind::Edge
        }
    );
    assert_eq!(at, "x");
}

#[test]
fn repeated_directives() {
    let src = format!("{TWO}policy P() for G {{\n  place (#a) x;\n  place (#b) y, x;\n}}\n");
    assert_eq!(
        rendered(&src),
        "app.osh:8:17: a second `place` for `x`\n  place (#b) y, x;\n                ^"
    );
    for d in ["min_rate", "max_rate"] {
        let (kind, _) = kind_at(&format!(
            "{TWO}policy P() for G {{ {d} (1) e; {d} (2) e; }}"
        ));
        assert_eq!(
            kind,
            ErrorKind::DuplicateDirective {
                directive: d.into(),
                id: "e".into()
            }
        );
    }
    // One of each is fine.
    let ok = format!(
        "{TWO}policy P() for G {{ min_rate (1) e; max_rate (2) e; }}\nspawn G(0) with P();"
    );
    assert!(run(&ok).is_ok());
}

#[test]
fn min_rate_above_max_rate() {
    let src = format!("{TWO}policy P(lo) for G {{\n  max_rate (2) e;\n  min_rate (lo) e;\n}}\nspawn G(0) with P(5);\n");
    assert_eq!(
        rendered(&src),
        "app.osh:8:17: edge `e` has min_rate 5 MB/s above its max_rate 2 MB/s\n  min_rate (lo) e;\n                ^"
    );
    let ok = src.replace("P(5)", "P(2)");
    assert!(run(&ok).is_ok());
}

#[test]
fn bad_directive_arguments() {
    for (d, arg) in [
        ("max_rate", "0"),
        ("min_rate", "-1"),
        ("checkpoint", "\"5\""),
        ("max_latency", "1/0"),
    ] {
        let (kind, at) = kind_at(&format!(
            "{TWO}policy P() for G {{ {d} ({arg}) {} }}\nspawn G(1) with P();",
            if d == "checkpoint" { "x" } else { "e" }
        ));
        assert!(
            matches!(kind, ErrorKind::BadDirectiveArgument { ref directive, .. } if directive == d),
            "{d}: {kind:?}"
        );
        assert_eq!(at, arg);
    }
    let (kind, _) = kind_at(&format!("{TWO}policy P() for G {{ place () x }}"));
    assert!(matches!(kind, ErrorKind::BadDirectiveArgument { .. }));
    let (kind, _) = kind_at(&format!(
        "{TWO}policy P() for G {{ place (#a || #cores > 2) x }}"
    ));
    assert_eq!(kind, ErrorKind::NumericNotTopLevel);
    let (kind, at) = kind_at(&format!("{TWO}policy P() for G {{ place (#a & #b) x }}"));
    assert!(matches!(kind, ErrorKind::Expected { .. }));
    assert_eq!(at, "&");
}

#[test]
fn a_policy_for_another_graph() {
    let src = format!("{TWO}graph H() {{ node z: process(\"sh\", \"z\") }}\npolicy P() for H {{ always () z }}\nspawn G(1) with P();\n");
    assert_eq!(
        rendered(&src),
        "app.osh:8:17: policy `P` is for graph `H`, not `G`\nspawn G(1) with P();\n                ^^^"
    );
    let (kind, _) = kind_at(&format!("{TWO}graph H() {{ node z: process(\"sh\", \"z\") }}\npolicy P() for H {{ }}\ntest_spawn(G(1), P());"));
    assert!(matches!(kind, ErrorKind::PolicyForOtherGraph { .. }));
}

#[test]
fn unknown_names_and_argument_counts() {
    assert_eq!(
        kind_at("spawn Nope();"),
        (
            ErrorKind::UnknownGraph {
                name: "Nope".into()
            },
            "Nope".into()
        )
    );
    assert_eq!(
        kind_at(&format!("{TWO}spawn G(1) with Nope();")),
        (
            ErrorKind::UnknownPolicy {
                name: "Nope".into()
            },
            "Nope".into()
        )
    );
    assert_eq!(
        kind_at("policy P() for Nope { }"),
        (
            ErrorKind::UnknownGraph {
                name: "Nope".into()
            },
            "Nope".into()
        )
    );
    assert_eq!(
        rendered(&format!("{TWO}spawn G(1, 2, 3);")),
        "app.osh:6:15: `G` takes at most 2 arguments, given 3\nspawn G(1, 2, 3);\n              ^"
    );
    assert_eq!(
        rendered(&format!("{TWO}spawn G();")),
        "app.osh:6:7: `G` needs an argument for `a`\nspawn G();\n      ^^^"
    );
    assert_eq!(
        kind_at("print(x);"),
        (ErrorKind::UnknownName { name: "x".into() }, "x".into())
    );
    assert_eq!(
        kind_at("launch(1);"),
        (
            ErrorKind::UnknownFunction {
                name: "launch".into()
            },
            "launch".into()
        )
    );
    let (kind, _) = kind_at("let x = 1; const x = 2;");
    assert_eq!(kind, ErrorKind::Redeclared { name: "x".into() });
    let (kind, _) = kind_at(&format!("{TWO}policy G() for G {{ }}"));
    assert_eq!(kind, ErrorKind::Redefined { name: "G".into() });
    let (kind, _) = kind_at("graph print() { }");
    assert_eq!(
        kind,
        ErrorKind::Redefined {
            name: "print".into()
        }
    );
    let (kind, _) = kind_at("graph G(a, a) { }");
    assert_eq!(kind, ErrorKind::DuplicateParam { name: "a".into() });
    let (kind, _) = kind_at("graph G() { init { } init { } }");
    assert_eq!(kind, ErrorKind::DuplicateInit { graph: "G".into() });
}

#[test]
fn a_cycle_names_its_edges() {
    let src = "graph Loop() {\n  node a: process(\"sh\", \"a\");\n  node b: process(\"sh\", \"b\");\n  node c: process(\"sh\", \"c\");\n  edge e1: a -> b;\n  edge e2: b -> c;\n  edge e3: c -> b;\n}\n";
    assert_eq!(
        rendered(src),
        "app.osh:6:3: graph `Loop` has a cycle: edges `e2`, `e3`\n  edge e2: b -> c;\n  ^^^^^^^^^^^^^^^"
    );
    let (kind, _) = kind_at("graph L() { node a: process(\"sh\", \"a\"); edge s: a -> a; }");
    assert_eq!(
        kind,
        ErrorKind::Cycle {
            graph: "L".into(),
            edges: vec!["s".into()]
        }
    );
    // Through split and merge edges too: a graph is a DAG.
    let (kind, _) = kind_at("graph L() { node a: process(\"sh\", \"a\"); node b: process(\"sh\", \"b\"); edge s: a -/> b; edge m: b -*> a; }");
    assert_eq!(
        kind,
        ErrorKind::Cycle {
            graph: "L".into(),
            edges: vec!["s".into(), "m".into()]
        }
    );
}

#[test]
fn duplicate_ids_and_unknown_directives() {
    assert_eq!(
        rendered("graph G() {\n  node a: process(\"sh\", \"a\");\n  edge a: a -> a;\n}"),
        "app.osh:3:8: graph `G` already has a node or edge `a`\n  edge a: a -> a;\n       ^"
    );
    let (kind, _) =
        kind_at("graph G() { node a: process(\"sh\", \"a\"); node a: process(\"sh\", \"b\") }");
    assert_eq!(
        kind,
        ErrorKind::DuplicateId {
            graph: "G".into(),
            id: "a".into()
        }
    );
    assert_eq!(
        rendered(&format!("{TWO}policy P() for G {{\n  min_latency (5) e;\n}}")),
        "app.osh:7:3: unknown directive `min_latency` (known: place, always, console, checkpoint, min_rate, max_rate, max_latency, order_by)\n  min_latency (5) e;\n  ^^^^^^^^^^^"
    );
}

#[test]
fn types_and_nesting() {
    let (kind, _) = kind_at("let x = \"a\" - 1;");
    assert_eq!(
        kind,
        ErrorKind::TypeMismatch {
            expected: "a number",
            found: "a string"
        }
    );
    let (kind, _) = kind_at("let x = {\"a\": 1} + \"b\";");
    assert!(matches!(
        kind,
        ErrorKind::TypeMismatch {
            found: "an object",
            ..
        }
    ));
    let (kind, _) = kind_at("let o = {\"a\": 1}; print(o.b);");
    assert_eq!(kind, ErrorKind::UnknownKey { key: "b".into() });
    let (kind, _) = kind_at(&format!(
        "{TWO}graph H() {{ init {{ let g = G(1); }} }}\nspawn H();"
    ));
    assert_eq!(kind, ErrorKind::NestedInstance);
    let (kind, _) = kind_at("test_spawn(1);");
    assert!(matches!(
        kind,
        ErrorKind::TypeMismatch {
            found: "a number",
            ..
        }
    ));
}

#[test]
fn no_effect_survives_an_error() {
    let src = format!("print(\"before\");\n{TWO}spawn G(1);\nspawn G(1, 2, 3);\n");
    assert!(run(&src).is_err());
    // The same script without the bad spawn runs.
    let ok = src.replace("spawn G(1, 2, 3);\n", "");
    assert_eq!(run(&ok).unwrap().len(), 2);
}

#[test]
fn limits_are_errors() {
    let big = " ".repeat(plexus_osh::MAX_SCRIPT_BYTES + 1);
    let e = Script::parse(&big).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }));
    assert_eq!((e.span.line, e.span.column), (1, 1));
    // Doubling a string 30 times would make a gigabyte.
    let mut src = String::from("let s0 = \"xxxxxxxxxxxxxxxx\";\n");
    for i in 1..=30 {
        src.push_str(&format!("let s{i} = s{} + s{};\n", i - 1, i - 1));
    }
    assert_eq!(
        err(&src).kind,
        ErrorKind::StringTooLong {
            max: plexus_osh::MAX_STRING_BYTES
        }
    );
    // Printing a big string many times runs into the output budget.
    let mut src = String::from("let s = \"x\";\n");
    for i in 1..=20 {
        src.push_str(&format!(
            "let s{i} = {};\n",
            if i == 1 {
                "s + s".to_string()
            } else {
                format!("s{} + s{}", i - 1, i - 1)
            }
        ));
    }
    src.push_str(&"print(s19);\n".repeat(40));
    assert_eq!(
        err(&src).kind,
        ErrorKind::OutputTooLarge {
            max: plexus_osh::MAX_OUTPUT_BYTES
        }
    );
}
