//! The lexical and syntactic leniencies: BOM, CRLF, comments, optional semicolons, escapes,
//! operators written without spaces, and the expression language of `let` and `print`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plexus_osh::{run, DirectiveKind, Effect, Format, Instance};
use plexus_sched::TagExpr;

fn prints(src: &str) -> Vec<String> {
    run(src)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Print(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn spawned(src: &str) -> Instance {
    match run(src).unwrap().pop() {
        Some(Effect::Spawn(i)) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn print_joins_with_tabs_and_formats_values() {
    assert_eq!(
        prints("print(\"a\", 1, 2.5, true, null, {\"k\": \"v\", n: 1}, 7 / 2, 0.1 + 0.2);"),
        ["a\t1\t2.5\ttrue\tnull\t{\"k\": \"v\", \"n\": 1}\t3.5\t0.30000000000000004"]
    );
    assert_eq!(prints("print();"), [""]);
    assert_eq!(
        prints("print(1 / 0, -1 / 0, -0);"),
        ["Infinity\t-Infinity\t0"]
    );
}

#[test]
fn plus_concatenates_when_a_string_is_involved() {
    assert_eq!(
        prints("let n = 2; const s = \"x\"; print(n + s, s + n, n + n, 1 + 2 + s, s + 1 + 2);"),
        ["2x\tx2\t4\t3x\tx12"]
    );
    assert_eq!(prints("print((1 + 2) * 3 - -1, 7 % 4);"), ["10\t3"]);
    assert_eq!(prints("print(\"ab\" + null + true);"), ["abnulltrue"]);
}

#[test]
fn operators_without_spaces() {
    assert_eq!(prints("let x=-1;print(x*-2);"), ["2"]);
    let inst = spawned(
        "graph G(){node a:process(\"sh\",\"a\") node b:process(\"sh\",\"b\") edge e:a-/>b}spawn G()",
    );
    assert_eq!(inst.edges[0].kind, plexus_osh::EdgeKind::Split);
}

#[test]
fn strings_take_escaped_quotes_and_backslashes_and_single_quotes() {
    assert_eq!(
        prints(r#"print("say \"hi\"", "C:\dir\\x", 'it\'s', "a\nb");"#),
        [r#"say "hi"	C:\dir\x	it's	a\nb"#]
    );
}

#[test]
fn comments_of_both_kinds() {
    let src = "// leading\nprint(1 /* inline */, 2); // trailing\n/* block\n over lines */ print(3);//end";
    assert_eq!(prints(src), ["1\t2", "3"]);
}

#[test]
fn bom_crlf_and_tabs() {
    let src = "\u{feff}let a = \"x\";\r\n\tprint(a);\r\n";
    assert_eq!(prints(src), ["x"]);
    let err = run("\u{feff}\tprint(b);\r\n").unwrap_err();
    assert_eq!((err.span.line, err.span.column), (1, 8));
    assert_eq!(
        err.render("t.osh", "\u{feff}\tprint(b);\r\n"),
        "t.osh:1:8: `b` is not defined\n\tprint(b);\n\t      ^"
    );
}

#[test]
fn graphs_without_parameter_lists_and_trailing_commas() {
    let inst = spawned(
        "graph G { node a: process(\"sh\", \"a\",) }; policy P for G { always () a }; spawn G() with P();",
    );
    assert_eq!(inst.nodes.len(), 1);
    assert_eq!(
        inst.policy.unwrap().directives[0].kind,
        DirectiveKind::Always
    );
}

#[test]
fn defaults_see_earlier_parameters_and_globals() {
    let src = "let dir = \"/data/\";\n\
               graph G(name, file = dir + name + \".txt\") {\n\
                 init { let tool = \"cat\"; print(tool, file); }\n\
                 node a: process(\"sh\", tool + \".sh \" + file);\n\
               }\n\
               spawn G(\"log\");";
    let effects = run(src).unwrap();
    assert_eq!(effects[0], Effect::Print("cat\t/data/log.txt".into()));
    let Effect::Spawn(inst) = &effects[1] else {
        panic!()
    };
    assert_eq!(inst.nodes[0].args, ["cat.sh", "/data/log.txt"]);
}

#[test]
fn options_may_come_from_variables_and_members() {
    let src = "const fmt = {\"in\": \"json\", \"out\": {\"f\": \"segment\"}};\n\
               graph G() { node a: process(\"python\", \"a.py\", {\"inputFormat\": fmt.in, outputFormat: fmt.out.f}) }\n\
               spawn G();";
    let n = &spawned(src).nodes[0];
    assert_eq!(
        (n.input_format, n.output_format),
        (Format::Json, Format::Segment)
    );
}

#[test]
fn process_arguments_split_on_any_whitespace() {
    let n = &spawned(
        "graph G() { node a: process(\"/usr/bin/env\", \"  x.py \\t --n  3 \") } spawn G();",
    )
    .nodes[0];
    // `\t` is no escape: it stays two characters.
    assert_eq!(n.args, ["x.py", "\\t", "--n", "3"]);
    assert_eq!(n.file_arg, Some(0));
    let n = &spawned("graph G() { node a: process(\"ls\") } spawn G();").nodes[0];
    assert!(n.args.is_empty());
    assert_eq!(n.file_arg, None);
}

#[test]
fn place_as_one_string_and_bare_tags() {
    let inst = spawned(
        "graph G() { node a: process(\"sh\", \"a\") }\n\
         policy P() for G { place (\"#camera && #site == 'lab'\") a; }\n\
         spawn G() with P();",
    );
    let DirectiveKind::Place(p) = &inst.policy.unwrap().directives[0].kind else {
        panic!()
    };
    assert_eq!(p.tags, Some(TagExpr::parse("camera&&site=lab").unwrap()));
    let inst = spawned(
        "graph G() { node a: process(\"sh\", \"a\") }\n\
         policy P() for G { place (gpu&&!laptop) a; }\n\
         spawn G() with P();",
    );
    let DirectiveKind::Place(p) = &inst.policy.unwrap().directives[0].kind else {
        panic!()
    };
    assert_eq!(p.tags, Some(TagExpr::parse("gpu&&!laptop").unwrap()));
}

#[test]
fn an_empty_script_does_nothing() {
    assert_eq!(run("").unwrap(), vec![]);
    assert_eq!(run("\u{feff}\r\n// nothing\n;;").unwrap(), vec![]);
}
