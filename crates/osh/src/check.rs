//! Checks that need no evaluation, made once for every graph and policy of a script, spawned
//! or not: names, ids, edge ends, cycles, policy operands and repeated directives.

use std::collections::{HashMap, HashSet};

use crate::ast::{GraphDef, Ident, Param, PolicyDef};
use crate::error::{ErrorKind, Fault, IdKind};

/// The builtins, which graphs and policies may not be named after.
pub(crate) const BUILTINS: &[&str] = &["print", "process", "test_spawn", "lambda"];

fn at(kind: ErrorKind, id: &Ident) -> Fault {
    Fault::new(kind, id.sp.start, id.sp.end)
}

/// All static checks, in declaration order: graph and policy names first, then each graph,
/// then each policy.
pub(crate) fn check(graphs: &[GraphDef], policies: &[PolicyDef]) -> Result<(), Fault> {
    let mut names = HashSet::new();
    for name in graphs
        .iter()
        .map(|g| &g.name)
        .chain(policies.iter().map(|p| &p.name))
    {
        if BUILTINS.contains(&name.name.as_str()) || !names.insert(name.name.as_str()) {
            return Err(at(
                ErrorKind::Redefined {
                    name: name.name.clone(),
                },
                name,
            ));
        }
    }
    let mut checked = HashMap::new();
    for g in graphs {
        checked.insert(g.name.name.as_str(), (g, check_graph(g)?));
    }
    for p in policies {
        check_policy(p, &checked)?;
    }
    Ok(())
}

fn check_params(params: &[Param]) -> Result<(), Fault> {
    let mut seen = HashSet::new();
    for p in params {
        if !seen.insert(p.name.name.as_str()) {
            return Err(at(
                ErrorKind::DuplicateParam {
                    name: p.name.name.clone(),
                },
                &p.name,
            ));
        }
    }
    Ok(())
}

/// A graph's ids, each a node or an edge.
type Ids<'a> = HashMap<&'a str, IdKind>;

/// Each id of a graph and whether it is a node.
fn ids(g: &GraphDef) -> Result<Ids<'_>, Fault> {
    let mut ids = HashMap::new();
    let all = g
        .nodes
        .iter()
        .map(|n| (&n.id, IdKind::Node))
        .chain(g.edges.iter().map(|e| (&e.id, IdKind::Edge)));
    for (id, kind) in all {
        if ids.insert(id.name.as_str(), kind).is_some() {
            return Err(at(
                ErrorKind::DuplicateId {
                    graph: g.name.name.clone(),
                    id: id.name.clone(),
                },
                id,
            ));
        }
    }
    Ok(ids)
}

/// Checks a graph; returns its ids.
fn check_graph(g: &GraphDef) -> Result<Ids<'_>, Fault> {
    check_params(&g.params)?;
    let ids = ids(g)?;
    for e in &g.edges {
        for end in [&e.from, &e.to] {
            if ids.get(end.name.as_str()) != Some(&IdKind::Node) {
                return Err(at(
                    ErrorKind::UnknownId {
                        graph: g.name.name.clone(),
                        id: end.name.clone(),
                        expected: IdKind::Node,
                    },
                    end,
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(g) {
        let first = cycle.iter().copied().min().unwrap_or(0);
        let sp = g.edges.get(first).map_or(g.name.sp, |e| e.sp);
        return Err(Fault::new(
            ErrorKind::Cycle {
                graph: g.name.name.clone(),
                edges: cycle
                    .iter()
                    .filter_map(|&i| g.edges.get(i))
                    .map(|e| e.id.name.clone())
                    .collect(),
            },
            sp.start,
            sp.end,
        ));
    }
    Ok(ids)
}

/// A cycle of edges (indexes into `g.edges`, in cycle order from the first declared), found
/// by an iterative depth-first search so that long graphs take no stack.
fn find_cycle(g: &GraphDef) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.name.as_str(), i))
        .collect();
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); g.nodes.len()];
    for (ei, e) in g.edges.iter().enumerate() {
        if let (Some(&f), Some(&t)) = (
            index.get(e.from.name.as_str()),
            index.get(e.to.name.as_str()),
        ) {
            out[f].push((ei, t));
        }
    }
    // 0 = not seen, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; g.nodes.len()];
    for root in 0..g.nodes.len() {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        let mut path: Vec<usize> = Vec::new();
        state[root] = 1;
        while let Some(top) = stack.last_mut() {
            let (v, i) = *top;
            if let Some(&(edge, w)) = out[v].get(i) {
                top.1 += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                        path.push(edge);
                    }
                    1 => {
                        let from = stack.iter().position(|&(n, _)| n == w).unwrap_or(0);
                        let mut cycle: Vec<usize> = path.get(from..).unwrap_or(&[]).to_vec();
                        cycle.push(edge);
                        let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                        cycle.rotate_left(first);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

fn check_policy(p: &PolicyDef, graphs: &HashMap<&str, (&GraphDef, Ids<'_>)>) -> Result<(), Fault> {
    check_params(&p.params)?;
    let Some((g, ids)) = graphs.get(p.graph.name.as_str()) else {
        return Err(at(
            ErrorKind::UnknownGraph {
                name: p.graph.name.clone(),
            },
            &p.graph,
        ));
    };
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for d in &p.directives {
        let want = if d.on_nodes() {
            IdKind::Node
        } else {
            IdKind::Edge
        };
        for op in &d.operands {
            match ids.get(op.name.as_str()) {
                None => {
                    return Err(at(
                        ErrorKind::UnknownId {
                            graph: g.name.name.clone(),
                            id: op.name.clone(),
                            expected: want,
                        },
                        op,
                    ))
                }
                Some(&kind) if kind != want => {
                    return Err(at(
                        ErrorKind::WrongOperand {
                            directive: d.name.name.clone(),
                            id: op.name.clone(),
                            expected: want,
                        },
                        op,
                    ))
                }
                Some(_) => {}
            }
            if !seen.insert((d.name.name.as_str(), op.name.as_str())) {
                return Err(at(
                    ErrorKind::DuplicateDirective {
                        directive: d.name.name.clone(),
                        id: op.name.clone(),
                    },
                    op,
                ));
            }
        }
    }
    Ok(())
}
