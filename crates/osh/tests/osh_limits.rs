//! Inputs near the size limit finish quickly and without deep recursion: long chains, wide
//! objects, big graphs, many spawns, long operator runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use plexus_osh::{plan, run, Effect, ErrorKind, MAX_SCRIPT_BYTES};

/// Runs `src` (which must fit the limit) and returns the result, checking it took little time.
fn timed(src: &str) -> Result<Vec<Effect>, plexus_osh::OshError> {
    assert!(src.len() <= MAX_SCRIPT_BYTES, "{} bytes", src.len());
    let start = Instant::now();
    let r = run(src);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    r
}

#[test]
fn a_long_chain_and_a_wide_object() {
    let src = format!("let x = {}1; print(x);", "1 + ".repeat(200_000));
    assert_eq!(timed(&src).unwrap(), vec![Effect::Print("200001".into())]);
    let keys: String = (0..40_000)
        .map(|i| format!("k{}: {i},", i % 20_000))
        .collect();
    let reads: String = (0..20_000).map(|i| format!("o.k{i},")).collect();
    let src = format!("let o = {{{keys}}}; print({reads});");
    let effects = timed(&src).unwrap();
    let Effect::Print(line) = &effects[0] else {
        panic!()
    };
    assert!(line.starts_with("20000\t20001\t"));
}

#[test]
fn a_big_graph_with_a_policy() {
    let n = 8_000;
    let mut src = String::from("graph G() {\n");
    for i in 0..n {
        src.push_str(&format!("node n{i}: process(\"sh\", \"s{i}.sh\");\n"));
    }
    for i in 1..n {
        src.push_str(&format!("edge e{i}: n{} -> n{i};\n", i - 1));
    }
    src.push_str("}\npolicy P() for G {\n");
    for i in 1..n {
        src.push_str(&format!("place (#t{i}) n{i}; max_rate ({i}) e{i};\n"));
    }
    src.push_str("}\nspawn G() with P();\n");
    let effects = timed(&src).unwrap();
    let Effect::Spawn(inst) = &effects[0] else {
        panic!()
    };
    assert_eq!(inst.nodes.len(), n);
    let p = plan(inst, 64);
    assert_eq!(p.processes.len(), n);
    // The same graph with the first edge a split: everything after it has 64 replicas.
    let split = src.replacen("edge e1: n0 -> n1;", "edge e1: n0 -/> n1;", 1);
    let Effect::Spawn(inst) = &timed(&split).unwrap()[0] else {
        panic!()
    };
    let p = plan(inst, 64);
    assert_eq!(p.processes.len(), 1 + (n - 1) * 64);
    assert_eq!(p.pipes.len(), (n - 1) * 64);
}

#[test]
fn a_long_cycle_is_found_without_recursion() {
    let n = 15_000;
    let mut src = String::from("graph G() {\n");
    for i in 0..n {
        src.push_str(&format!("node n{i}: process(\"sh\");\n"));
    }
    for i in 0..n {
        src.push_str(&format!("edge e{i}: n{i} -> n{};\n", (i + 1) % n));
    }
    src.push_str("}\n");
    let err = timed(&src).unwrap_err();
    let ErrorKind::Cycle { edges, .. } = err.kind else {
        panic!("{err}")
    };
    assert_eq!(edges.len(), n);
    assert_eq!(edges[0], "e0");
}

#[test]
fn many_spawns_run_into_the_output_budget() {
    let mut src = String::from("graph G() {\n");
    for i in 0..2_000 {
        src.push_str(&format!("node n{i}: process(\"sh\", \"a.sh b c d\");\n"));
    }
    src.push_str("}\n");
    src.push_str(&"spawn G();".repeat(20_000));
    let err = timed(&src).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::OutputTooLarge {
            max: plexus_osh::MAX_OUTPUT_BYTES
        }
    );
}

#[test]
fn a_big_expression_evaluated_many_times_runs_into_the_step_budget() {
    let src = format!(
        "graph G() {{ node a: process(\"sh\", {}1) }}\n{}",
        "1 + ".repeat(100_000),
        "G();".repeat(100_000)
    );
    let err = timed(&src).unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::TooMuchWork {
            max: plexus_osh::MAX_STEPS
        }
    );
}

#[test]
fn long_runs_of_operators_and_nesting() {
    let src = format!("let x = 1 {} 2;", "-".repeat(500_000));
    assert!(timed(&src).is_err());
    let src = format!("let x = {}1;", "(".repeat(500_000));
    assert_eq!(
        timed(&src).unwrap_err().kind,
        ErrorKind::TooDeep { max: 64 }
    );
    let src = format!(
        "graph G() {{ node a: process(\"sh\") }} policy P() for G {{ place ({}#a) a }}",
        "!".repeat(500_000)
    );
    assert_eq!(
        timed(&src).unwrap_err().kind,
        ErrorKind::TooDeep { max: 64 }
    );
    let src = format!("print({});", "\"ab\",".repeat(150_000));
    assert!(timed(&src).is_ok());
}
