//! The parallelism expansion of OneOS's scheduler (B.5): which nodes run as several replicas,
//! and the pipes between the processes.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::model::{EdgeKind, Instance};

/// One process to start: a node, or one replica of a parallel node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedProcess {
    /// The process id: the node's id, or `<node id>-<replica>` for a replica.
    pub id: String,
    /// The node it runs.
    pub node_id: String,
    /// Which replica (from 0), for a parallel node.
    pub replica: Option<usize>,
}

/// One pipe between two processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPipe {
    /// The edge it comes from.
    pub edge_id: String,
    /// The source process's id.
    pub from: String,
    /// The sink process's id.
    pub to: String,
    /// The edge's kind.
    pub kind: EdgeKind,
}

/// Processes and pipes of an expanded instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In node order; a parallel node's replicas in replica order.
    pub processes: Vec<PlannedProcess>,
    /// In edge order; within an edge by source, then by sink.
    pub pipes: Vec<PlannedPipe>,
}

/// The ids of the parallel nodes: those with an incoming split edge, and (transitively) those
/// with an incoming basic edge from a parallel node. Merge edges stop the spread.
pub fn parallel_nodes(instance: &Instance) -> BTreeSet<String> {
    let index: HashMap<&str, usize> = instance
        .nodes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut basic_out: Vec<Vec<usize>> = vec![Vec::new(); instance.nodes.len()];
    let mut parallel = vec![false; instance.nodes.len()];
    let mut queue = VecDeque::new();
    for e in &instance.edges {
        let (Some(&f), Some(&t)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
            continue;
        };
        match e.kind {
            EdgeKind::Split => {
                if !parallel[t] {
                    parallel[t] = true;
                    queue.push_back(t);
                }
            }
            EdgeKind::Basic => basic_out[f].push(t),
            EdgeKind::Merge => {}
        }
    }
    while let Some(v) = queue.pop_front() {
        for &w in &basic_out[v] {
            if !parallel[w] {
                parallel[w] = true;
                queue.push_back(w);
            }
        }
    }
    instance
        .nodes
        .iter()
        .zip(&parallel)
        .filter(|(_, &p)| p)
        .map(|(n, _)| n.id.clone())
        .collect()
}

/// Expands an instance with `replicas` replicas per parallel node (OneOS used the number of
/// runtimes; 0 counts as 1). Replica `i` of node `x` is the process `x-i`.
///
/// Pipes per edge: split, from each source process to every replica of the sink; merge, from
/// every replica of the source to each sink process; basic between two parallel nodes, replica
/// `i` to replica `i`; any other basic edge, from each source process to each sink process
/// (one pipe when neither end is parallel). Edges naming unknown nodes are skipped.
pub fn plan(instance: &Instance, replicas: usize) -> Plan {
    let n = replicas.max(1);
    let parallel = parallel_nodes(instance);
    let mut processes = Vec::new();
    let mut of_node: HashMap<&str, Vec<String>> = HashMap::new();
    for node in &instance.nodes {
        if of_node.contains_key(node.id.as_str()) {
            continue;
        }
        let ids: Vec<String> = if parallel.contains(&node.id) {
            (0..n).map(|i| format!("{}-{i}", node.id)).collect()
        } else {
            vec![node.id.clone()]
        };
        for (i, id) in ids.iter().enumerate() {
            processes.push(PlannedProcess {
                id: id.clone(),
                node_id: node.id.clone(),
                replica: parallel.contains(&node.id).then_some(i),
            });
        }
        of_node.insert(node.id.as_str(), ids);
    }
    let mut pipes = Vec::new();
    for e in &instance.edges {
        let (Some(froms), Some(tos)) = (of_node.get(e.from.as_str()), of_node.get(e.to.as_str()))
        else {
            continue;
        };
        let pipe = |from: &String, to: &String| PlannedPipe {
            edge_id: e.id.clone(),
            from: from.clone(),
            to: to.clone(),
            kind: e.kind,
        };
        let both_parallel = parallel.contains(&e.from) && parallel.contains(&e.to);
        if e.kind == EdgeKind::Basic && both_parallel {
            pipes.extend(froms.iter().zip(tos).map(|(f, t)| pipe(f, t)));
        } else {
            for f in froms {
                pipes.extend(tos.iter().map(|t| pipe(f, t)));
            }
        }
    }
    Plan { processes, pipes }
}
