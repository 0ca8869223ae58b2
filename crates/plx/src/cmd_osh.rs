//! `plx osh FILE`: runs a OneOS `.osh` graph script (`docs/osh.md`).
//!
//! The script is parsed, checked and evaluated here (`plexus-osh`); any error prints
//! `file:line:col: message` with the line and a caret, and nothing starts. `print` prints;
//! `test_spawn(G(…), P(…))` shows where each process would run; `spawn G(…) with P(…)` expands
//! the graph (a parallel node gets one replica per up node) and sends it to `sys.proc` as one
//! graph of processes and pipes. A node's program file named relative to the script (or an
//! absolute local path) is shipped to the node that runs it, as `plx run --copy` does; a path
//! under `/fs/` is the cluster's. Policy directives become placement and pipe settings:
//! `place` the node's tags, `always` restart on failure (placed again on another node when
//! its node dies, its pipes relinked),
//! `console` its output to this terminal, `max_rate` its producer's pace, `order_by` the
//! order its merged records are written in, `min_rate` and `max_latency` the edge's consumer
//! on its producer's node where that node can take it (a pipe within a node crosses no link),
//! and elsewhere only on a node whose measured link to the producer's node meets them (`plx
//! nodes --links`), and `checkpoint` the period at which the state a program saves to
//! `$PLX_CHECKPOINT` is kept in the cluster, to be put back when it restarts anywhere.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use plexus_osh::{DirectiveKind, EdgeKind, Effect, Instance};
use plexus_units::{Map, Unit};

use plexus_client::attached::{Controls, Input, PROC_SERVICE};
use plexus_client::sign_with;

use crate::client::{Client, Reply, StdTerminal};
use plexus_identity::Keypair;
use tokio::sync::mpsc;

use crate::cmd_proc::Common;

/// Options of `plx osh`.
#[derive(Args, Debug, Clone, Default)]
pub struct OshArgs {
    /// Start the graphs and print their ids instead of staying attached until they end.
    #[arg(short, long)]
    pub detach: bool,
    /// Replicas of a parallel node (downstream of a split edge) [default: one per up node].
    #[arg(long, value_name = "N")]
    pub replicas: Option<usize>,
    /// The working directory of the graph's processes in the cluster's file tree (`/data`):
    /// they start there (as `/fs/data` on their nodes), and file arguments that are not local
    /// files are taken from there.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    #[command(flatten)]
    pub common: Common,
    /// The script.
    pub file: PathBuf,
}

/// The script's effects, or its error rendered with a caret.
pub fn effects(path: &Path, source: &str) -> Result<Vec<Effect>> {
    plexus_osh::run(source).map_err(|e| {
        anyhow!(
            "{}",
            e.render(&path.display().to_string(), source).trim_end()
        )
    })
}

/// What the script's directives need the user to know when it runs.
fn notes(instance: &Instance) -> Vec<String> {
    let Some(policy) = &instance.policy else {
        return Vec::new();
    };
    policy
        .directives
        .iter()
        .filter_map(|d| {
            let on = d.operands.join(", ");
            match &d.kind {
                DirectiveKind::Checkpoint { seconds } => Some(format!(
                    "checkpoint({seconds}) {on}: a restart starts from the state the program \
                     saved to $PLX_CHECKPOINT; one that saves none starts from its beginning \
                     (its log says which)"
                )),
                _ => None,
            }
        })
        .collect()
}

/// A `min_rate` (bytes/s) or `max_latency` (µs) as the graph unit's whole number, at least 1.
fn link_figure(value: f64, directive: &str) -> Result<i64> {
    let rounded = value.round().max(1.0);
    if !(1.0..9e18).contains(&rounded) {
        bail!("{directive}: not a usable figure");
    }
    Ok(rounded as i64)
}

/// `order_by`'s function as a field path: `(m) => m.index`, `m => m.a.b`, `function (m) {
/// return m["index"]; }` give `index`, `a.b`, `index`.
pub fn order_path(function: &str) -> Result<String> {
    let refuse = || {
        anyhow!(
            "order_by({function}): Plexus orders by a field of the JSON record, written as \
             (m) => m.field or (m) => m.a.b"
        )
    };
    let f = function.trim();
    let (param, body) = if let Some(rest) = f.strip_prefix("function") {
        let rest = rest.trim_start();
        let open = rest.find('(').ok_or_else(refuse)?;
        let close = rest.find(')').ok_or_else(refuse)?;
        let param = rest.get(open + 1..close).ok_or_else(refuse)?;
        let body = rest[close + 1..]
            .trim()
            .strip_prefix('{')
            .and_then(|b| b.trim_end().strip_suffix('}'))
            .ok_or_else(refuse)?
            .trim()
            .strip_prefix("return")
            .ok_or_else(refuse)?;
        (param.trim(), body.trim().trim_end_matches(';').trim())
    } else {
        let (param, body) = f.split_once("=>").ok_or_else(refuse)?;
        let param = param.trim();
        let param = param
            .strip_prefix('(')
            .and_then(|p| p.strip_suffix(')'))
            .unwrap_or(param);
        (param.trim(), body.trim())
    };
    let mut rest = body.strip_prefix(param).ok_or_else(refuse)?;
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            if end == 0 {
                return Err(refuse());
            }
            path.push(r[..end].to_owned());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").ok_or_else(refuse)?;
            path.push(r[..end].to_owned());
            rest = &r[end + 2..];
        } else {
            return Err(refuse());
        }
    }
    if param.is_empty() || path.is_empty() || path.iter().any(|p| p.contains('.')) {
        return Err(refuse());
    }
    Ok(path.join("."))
}

/// The program and arguments of a node, and the local program file to ship if there is one.
///
/// The file argument (the first) is, in order: a path of the cluster's tree when it starts
/// with `/fs/`; a local file (relative to the script's directory) when one exists, shipped to
/// the node when it is the program's script and given by its local path otherwise; else a
/// path of the cluster's tree, as in OneOS (`/home/root/writer.js` is `/fs/home/root/writer.js`,
/// `x.js` is `x.js` in the tree's working directory `cwd`, or left as it is without one).
fn command_of(
    node: &plexus_osh::Node,
    base: &Path,
    cwd: Option<&str>,
) -> Result<(Vec<String>, Option<PathBuf>)> {
    let interpreter = match node.binary.as_str() {
        "python" | "python3" => Some("python3"),
        "node" => Some("node"),
        "sh" => Some("sh"),
        _ => None,
    };
    let mut args = node.args.clone();
    let mut copy = None;
    if let Some(i) = node.file_arg {
        if let Some(arg) = args.get_mut(i) {
            let local = if Path::new(arg.as_str()).is_absolute() {
                PathBuf::from(arg.as_str())
            } else {
                base.join(arg.as_str())
            };
            let cluster = arg.starts_with("/fs/");
            if !cluster && local.is_file() {
                let ships = i == 0
                    && interpreter.is_some()
                    && plexus_proc::interpreter_for(&local) == interpreter;
                if ships {
                    copy = Some(local);
                } else {
                    *arg = local.display().to_string();
                }
            } else if !cluster && arg.starts_with('/') {
                *arg = format!("/fs{arg}");
            } else if let (false, Some(dir)) = (cluster, cwd) {
                *arg = format!("/fs{}/{arg}", dir.trim_end_matches('/'));
            }
        }
    }
    let mut argv = Vec::with_capacity(args.len() + 1);
    if copy.is_none() {
        argv.push(interpreter.unwrap_or(node.binary.as_str()).to_owned());
    }
    argv.extend(args);
    Ok((argv, copy))
}

/// The `{graph:…}` body of a spawn of `instance`, its parallel nodes as `replicas` copies.
pub fn graph_body(
    instance: &Instance,
    replicas: usize,
    base: &Path,
    cwd: Option<&str>,
    attach: bool,
    dry: bool,
) -> Result<Unit> {
    let plan = plexus_osh::plan(instance, replicas);
    let policy = instance.policy.as_ref();
    let directives = |id: &str| -> Vec<DirectiveKind> {
        policy
            .map(|p| p.directives_for(id).map(|d| d.kind.clone()).collect())
            .unwrap_or_default()
    };
    let mut procs = Vec::with_capacity(plan.processes.len());
    for p in &plan.processes {
        let node = instance
            .node(&p.node_id)
            .ok_or_else(|| anyhow!("the plan names node {} that the graph lacks", p.node_id))?;
        let (argv, copy) = command_of(node, base, cwd)?;
        let mut m = Map::new();
        let mut put = |k: &str, v: Unit| {
            m.insert(Unit::str(k), v);
        };
        put("stage", Unit::str(&p.id));
        let run = argv.iter().map(|a| Unit::str(a));
        match &copy {
            Some(path) => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?;
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
                put(
                    "run",
                    Unit::List(
                        std::iter::once(Unit::str(name))
                            .chain(run.skip(1))
                            .collect(),
                    ),
                );
                put("copy", Unit::Bytes(bytes.into()));
            }
            None => put("run", Unit::List(run.collect())),
        }
        if let Some(dir) = cwd {
            put(
                "cwd",
                Unit::from(format!("/fs{}", dir.trim_end_matches('/'))),
            );
        }
        put("in", Unit::str(node.input_format.name()));
        put("out", Unit::str(node.output_format.name()));
        for d in directives(&p.node_id) {
            match d {
                DirectiveKind::Place(place) => {
                    if let Some(c) = place.numeric.first() {
                        bail!(
                            "place on {}: numeric constraints ({} {} {}) are not supported; \
                             give the nodes tags instead",
                            p.node_id,
                            c.tag,
                            c.op.symbol(),
                            c.value
                        );
                    }
                    if let Some(tags) = &place.tags {
                        put("tag", Unit::List(vec![Unit::from(tags.to_string())]));
                    }
                }
                // A standby takes over when the node's machine dies (or the program fails);
                // a program that ended well is not started again: its input has ended.
                DirectiveKind::Always => put("restart", Unit::str("on-failure")),
                DirectiveKind::Checkpoint { seconds } => {
                    let every = seconds.ceil().clamp(1.0, 86_400.0) as i64;
                    put("checkpoint", Unit::int(every));
                }
                DirectiveKind::Console if attach || dry => put("console", Unit::Bool(true)),
                _ => {}
            }
        }
        let outgoing: Vec<_> = instance
            .edges
            .iter()
            .filter(|e| e.from == p.node_id)
            .collect();
        if outgoing.iter().any(|e| e.kind == EdgeKind::Split) {
            put("split", Unit::Bool(true));
        }
        let rate = outgoing
            .iter()
            .flat_map(|e| directives(&e.id))
            .filter_map(|d| match d {
                DirectiveKind::MaxRate { mb_per_s } => Some(mb_per_s),
                _ => None,
            })
            .reduce(f64::min);
        if let Some(mb) = rate {
            let bytes = (mb * 1e6).round();
            if !(1.0..9e18).contains(&bytes) {
                bail!("max_rate({mb}) on {}: not a usable rate", p.node_id);
            }
            put("max_rate", Unit::int(bytes as i64));
        }
        let incoming = instance.edges.iter().filter(|e| e.to == p.node_id);
        let order = incoming
            .flat_map(|e| directives(&e.id))
            .find_map(|d| match d {
                DirectiveKind::OrderBy { function } => Some(function),
                _ => None,
            });
        if let Some(function) = order {
            put("order_by", Unit::from(order_path(&function)?));
        }
        // Each edge into it that asks for a rate or a latency: beside one of its producers
        // where that fits, elsewhere only over links measured to meet every such edge. A
        // latency is held against the link's round trip, which bounds a frame and its credit.
        let mut links = Vec::new();
        for pipe in plan.pipes.iter().filter(|pipe| pipe.to == p.id) {
            let mut link = Map::new();
            link.insert(Unit::str("from"), Unit::str(&pipe.from));
            for d in directives(&pipe.edge_id) {
                let (key, figure) = match d {
                    DirectiveKind::MinRate { mb_per_s } => {
                        ("min_rate", link_figure(mb_per_s * 1e6, "min_rate")?)
                    }
                    DirectiveKind::MaxLatency { ms } => {
                        ("max_rtt_us", link_figure(ms * 1e3, "max_latency")?)
                    }
                    _ => continue,
                };
                link.insert(Unit::str(key), Unit::int(figure));
            }
            if link.len() > 1 {
                links.push(Unit::Map(link));
            }
        }
        if !links.is_empty() {
            put("links", Unit::List(links));
        }
        procs.push(Unit::Map(m));
    }
    let pipes = plan
        .pipes
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert(Unit::str("from"), Unit::str(&p.from));
            m.insert(Unit::str("to"), Unit::str(&p.to));
            Unit::Map(m)
        })
        .collect();
    let mut graph = Map::new();
    graph.insert(Unit::str("name"), Unit::str(&instance.graph));
    graph.insert(Unit::str("procs"), Unit::List(procs));
    graph.insert(Unit::str("pipes"), Unit::List(pipes));
    let mut body = Map::new();
    body.insert(Unit::str("graph"), Unit::Map(graph));
    if attach {
        body.insert(Unit::str("attach"), Unit::Bool(true));
    }
    if dry {
        body.insert(Unit::str("dry"), Unit::Bool(true));
    }
    Ok(Unit::Map(body))
}

/// How many up nodes the cluster has: the replicas of a parallel node by default.
async fn up_nodes(client: &mut Client, key: &Keypair) -> Result<usize> {
    let msg = sign_with(key, plexus_units::parse("nodes@sys.node")?)?;
    let reply = client
        .call(&msg, None, std::future::pending::<()>())
        .await?;
    let Reply::Value(Unit::List(nodes)) = reply else {
        return Ok(1);
    };
    let up = nodes
        .iter()
        .filter(|n| {
            n.as_map()
                .and_then(|m| m.get_str("health"))
                .and_then(Unit::as_str)
                .is_none_or(|h| h == "alive")
        })
        .count();
    Ok(up.max(1))
}

fn value(reply: Reply) -> Result<Unit> {
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
    }
}

/// A refused placement (`e`, of process `stage`) shown in the script with a caret, as the
/// script's own errors are: at its node's `place` directive, or, when the links were what
/// no node met (`sys.proc` marks the error `links:t`), at the `min_rate` or `max_latency`
/// of an edge into it.
fn at_directive(
    path: &Path,
    source: &str,
    instance: &Instance,
    replicas: usize,
    e: &plexus_kernel::Error,
) -> Option<String> {
    let stage = e.get("stage").and_then(Unit::as_str)?;
    let message = e.message();
    let node = plexus_osh::plan(instance, replicas)
        .processes
        .into_iter()
        .find(|p| p.id == stage)?
        .node_id;
    let (directives, names): (&[&str], Vec<String>) =
        if matches!(e.get("links"), Some(Unit::Bool(true))) {
            let edges = instance.edges.iter().filter(|edge| edge.to == node);
            (
                &["min_rate", "max_latency"],
                edges.map(|e| e.id.clone()).collect(),
            )
        } else {
            (&["place"], vec![node])
        };
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    source.lines().enumerate().find_map(|(i, line)| {
        let col = directives.iter().find_map(|d| line.find(d))?;
        let operands = &line[line.rfind(')')?..];
        let names_it = operands
            .split(|c: char| !is_word(c))
            .any(|w| names.iter().any(|n| n == w));
        names_it.then(|| {
            format!(
                "{}:{}:{}: {message}\n{line}\n{}^^^^^",
                path.display(),
                i + 1,
                col + 1,
                " ".repeat(line[..col].chars().count())
            )
        })
    })
}

/// Runs the script: prints, shows test spawns, starts spawns (attached to the only one
/// unless `--detach`). The exit code is the attached graph's (bash's pipefail), else 0.
pub async fn execute(
    client: &mut Client,
    key: &Keypair,
    args: &OshArgs,
    input: mpsc::Receiver<Input>,
    signals: mpsc::UnboundedReceiver<String>,
) -> Result<i32> {
    let source = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow!("cannot read {}: {e}", args.file.display()))?;
    let effects = effects(&args.file, &source)?;
    let base = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let spawns = effects
        .iter()
        .filter(|e| matches!(e, Effect::Spawn(_)))
        .count();
    let needs_nodes = effects.iter().any(|e| !matches!(e, Effect::Print(_)));
    let replicas = match (args.replicas, needs_nodes) {
        (Some(n), _) => n.max(1),
        (None, true) => up_nodes(client, key).await?,
        (None, false) => 1,
    };
    let cwd = match &args.cwd {
        Some(dir) => Some(
            plexus_fs::FsPath::root()
                .resolve(dir)
                .map_err(|e| anyhow!("--cwd {dir}: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    let term = StdTerminal::new();
    let mut controls = Some(Controls { input, signals });
    let mut code = 0;
    for effect in &effects {
        match effect {
            Effect::Print(text) => println!("{text}"),
            Effect::TestSpawn(instance) => {
                let body = graph_body(instance, replicas, &base, cwd.as_deref(), false, true)?;
                let msg = sign_with(key, Unit::stream(body, PROC_SERVICE)?)?;
                let reply = client
                    .call(&msg, None, std::future::pending::<()>())
                    .await?;
                if let Reply::Error(e) = &reply {
                    if let Some(shown) = at_directive(&args.file, &source, instance, replicas, e) {
                        bail!("{shown}");
                    }
                }
                let reply = value(reply)?;
                let text = reply
                    .as_map()
                    .and_then(|m| m.get_str("text"))
                    .and_then(Unit::as_str)
                    .map_or_else(|| plexus_units::to_text(&reply), str::to_owned);
                println!("{text}");
            }
            Effect::Spawn(instance) => {
                for note in notes(instance) {
                    eprintln!("plx osh: {note}");
                }
                let attach = !args.detach && spawns == 1;
                let body = graph_body(instance, replicas, &base, cwd.as_deref(), attach, false)?;
                let msg = sign_with(key, Unit::stream(body, PROC_SERVICE)?)?;
                let reply = match (attach, controls.take()) {
                    (true, Some(controls)) => {
                        client.call_attached(&msg, &term, key, controls).await?
                    }
                    _ => {
                        client
                            .call(&msg, None, std::future::pending::<()>())
                            .await?
                    }
                };
                if let Reply::Error(e) = &reply {
                    if let Some(shown) = at_directive(&args.file, &source, instance, replicas, e) {
                        bail!("{shown}");
                    }
                }
                let reply = value(reply)?;
                if attach {
                    code = crate::cmd_proc::exit_code(&reply)?;
                } else if let Some(id) = reply
                    .as_map()
                    .and_then(|m| m.get_str("graph"))
                    .and_then(Unit::as_str)
                {
                    println!("{id}");
                }
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_functions_become_field_paths() {
        assert_eq!(order_path("(msg) => msg.index").unwrap(), "index");
        assert_eq!(order_path("m => m.a.b").unwrap(), "a.b");
        assert_eq!(order_path("(m) => m[\"seq\"]").unwrap(), "seq");
        assert_eq!(
            order_path("function (m) { return m.index; }").unwrap(),
            "index"
        );
        for bad in [
            "(m) => m.index + 1",
            "(m) => x.index",
            "index",
            "(m) => m",
            "(m) => m.",
        ] {
            assert!(order_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_wordcount_script_becomes_a_graph() {
        let script = "graph W (i) { node split: process(\"node\", \"Split.js \" + i); \
                      node count: process(\"python\", \"count.py\", \
                      {\"inputFormat\": \"raw\", \"outputFormat\": \"json\"}); \
                      edge e1: split -/> count; }\n\
                      policy P () for W { always () count; max_rate (2) e1; min_rate (1) e1; }\n\
                      spawn W(\"in.txt\") with P();";
        let Effect::Spawn(instance) = &plexus_osh::run(script).unwrap()[0] else {
            panic!("a spawn")
        };
        let body = graph_body(instance, 2, Path::new("/nonexistent"), None, true, false).unwrap();
        let text = plexus_units::to_text(&body);
        assert!(
            text.contains("{stage:split run:[node Split.js in.txt]"),
            "{text}"
        );
        assert!(text.contains("split:t max_rate:2000000"), "{text}");
        assert!(
            text.contains(
                "{stage:count-1 run:[python3 count.py] in:raw out:json restart:on-failure \
                 links:[{from:split min_rate:1000000}]}"
            ),
            "{text}"
        );
        assert!(text.contains("{from:split to:count-0}"), "{text}");
    }

    #[test]
    fn every_constrained_edge_into_a_node_holds_its_link() {
        let script = "graph M () { node a: process(\"sh\", \"a.sh\"); \
                      node b: process(\"sh\", \"b.sh\"); node m: process(\"sh\", \"m.sh\"); \
                      edge e1: a -> m; edge e2: b -> m; }\n\
                      policy P () for M { min_rate (5) e1; max_latency (2) e2; min_rate (1) e2; }\n\
                      spawn M() with P();";
        let Effect::Spawn(instance) = &plexus_osh::run(script).unwrap()[0] else {
            panic!("a spawn")
        };
        let body = graph_body(instance, 1, Path::new("/nonexistent"), None, true, false).unwrap();
        let text = plexus_units::to_text(&body);
        assert!(
            text.contains(
                "links:[{from:a min_rate:5000000} {from:b max_rtt_us:2000 min_rate:1000000}]"
            ),
            "{text}"
        );
    }
}
