//! Graphs: processes joined by pipes, placed, recorded and started as one.
//!
//! A shell pipeline (`cat f @n1 | grep x | sort`) and an `.osh` graph both come here as
//! `{graph:{name procs:[…] pipes:[…]} attach:t}`: every process is placed (in order, each
//! placement counting what the ones before it reserve), every record is put with its
//! [`Wiring`], and the processes start consumers first, so a producer's first bytes find their
//! pipe. With `attach`, the outputs marked `console` (and every process's standard error) come
//! to the caller's terminal through pipes of their own, the terminal's input goes to the
//! process marked `stdin`, and the reply waits for every process to end: its `code` follows
//! bash's `pipefail` (the last non-zero status in process order, else 0).

use std::collections::{BTreeMap, HashSet};

use plexus_pipe::Format;
use plexus_sched::{place_near, LinkNeed};
use plexus_store::{Incoming, Outgoing, PipeTarget, Wiring};

use super::*;
use crate::sys_pipe::{InletPlan, Sink};

/// Most processes in one graph.
pub const MAX_STAGES: usize = 256;
/// Most pipes in one graph.
pub const MAX_PIPES: usize = 1024;
/// A pipe's window unless the graph says otherwise.
pub const DEFAULT_WINDOW: u64 = 1 << 20;
/// The smallest and largest windows a graph may ask for.
pub const WINDOWS: (u64, u64) = (4 << 10, 64 << 20);
/// Longest stage or graph name.
const MAX_STAGE_NAME: usize = 64;

/// One process of a graph, as asked.
pub(super) struct Stage {
    name: String,
    run: RunRequest,
    input_format: Format,
    output_format: Format,
    split: bool,
    max_rate: Option<u64>,
    console: bool,
    terminal_input: bool,
    order_by: Option<String>,
    /// What the links from earlier processes' nodes must meet (`.osh` `min_rate`,
    /// `max_latency` of the edges into it): placed beside one of them where it fits, a pipe
    /// within a node needing no link.
    links: Vec<StageLink>,
    /// Every how many seconds the state the program saves is kept (`.osh` `checkpoint`).
    checkpoint: Option<u64>,
}

/// `{from:STAGE min_rate max_rtt_us}` of a stage's `links`: the link from `from`'s node
/// carries at least `min_rate` bytes a second and has a round trip of at most `max_rtt_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StageLink {
    from: String,
    min_rate: Option<u64>,
    max_rtt_us: Option<u64>,
}

/// A stage's `links` (at most [`MAX_STAGES`]).
fn stage_links(c: &Cmd<'_>) -> Result<Vec<StageLink>, Error> {
    let Some(list) = c.opt("links") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_list()
        .ok_or_else(|| Error::bad_argument("links: a list of {from:STAGE min_rate max_rtt_us}"))?;
    if list.len() > MAX_STAGES {
        return Err(Error::bad_argument(format!(
            "links: at most {MAX_STAGES}, one for each process it reads from"
        )));
    }
    list.iter()
        .map(|l| {
            let m = l.as_map().ok_or_else(|| {
                Error::bad_argument("each of links is a map {from:STAGE min_rate max_rtt_us}")
            })?;
            let c = Cmd {
                name: "links",
                arg: None,
                opts: Some(m),
            };
            let from = c
                .opt("from")
                .ok_or_else(|| Error::bad_argument("each of links names the stage it is from"))?;
            Ok(StageLink {
                from: stage_name(from, "from")?,
                min_rate: positive(&c, "min_rate")?,
                max_rtt_us: positive(&c, "max_rtt_us")?,
            })
        })
        .collect()
}

/// Which output a pipe starts at and which input it ends at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PipeEnds {
    /// A named output, or standard output (standard error with `stderr`).
    out: Option<String>,
    stderr: bool,
    /// A named input, or standard input.
    input: Option<String>,
}

/// A `{graph:…}` request, checked.
pub(super) struct GraphRequest {
    name: String,
    window: u64,
    stages: Vec<Stage>,
    /// Pipes as (producer, consumer) stage indexes.
    pipes: Vec<(usize, usize)>,
    /// Each pipe's ends: the producer's output and the consumer's input.
    ends: Vec<PipeEnds>,
    attach: bool,
    dry: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STAGE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A stage's name: a string, or an int written as one (`stage:1`).
fn stage_name(u: &Unit, what: &str) -> Result<String, Error> {
    match u {
        Unit::Int(_) => Ok(plexus_units::to_text(u)),
        other => string_of(other, what),
    }
}

fn format_of(c: &Cmd<'_>, key: &str) -> Result<Format, Error> {
    match c.opt(key) {
        None => Ok(Format::Raw),
        Some(u) => string_of(u, key)?
            .parse::<Format>()
            .map_err(|e| Error::bad_argument(format!("{key}: {e}"))),
    }
}

fn positive(c: &Cmd<'_>, key: &str) -> Result<Option<u64>, Error> {
    c.opt(key)
        .map(|u| {
            crate::forms::int64(u, key).and_then(|n| {
                u64::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::bad_argument(format!("{key} must be positive")))
            })
        })
        .transpose()
}

/// Reads and checks a `{graph:…}` request: names, formats across each pipe, no cycle.
pub(super) fn read_graph(cx: &Cx, c: &Cmd<'_>, local: &str) -> Result<GraphRequest, Error> {
    let spec = c
        .arg()?
        .as_map()
        .ok_or_else(|| Error::bad_argument("graph: a map {name procs:[…] pipes:[…]}"))?;
    let field = |k: &str| spec.get_str(k);
    let name = match field("name") {
        Some(u) => string_of(u, "name")?,
        None => "graph".to_owned(),
    };
    if !valid_name(&name) {
        return Err(Error::bad_argument(format!(
            "the graph name {name:?} is not 1 to {MAX_STAGE_NAME} letters, digits, '.', '_' or '-'"
        )));
    }
    let graph_cmd = Cmd {
        name: "graph",
        arg: None,
        opts: Some(spec),
    };
    let window = positive(&graph_cmd, "window")?.unwrap_or(DEFAULT_WINDOW);
    if !(WINDOWS.0..=WINDOWS.1).contains(&window) {
        return Err(Error::bad_argument(format!(
            "window must be {} to {} bytes",
            WINDOWS.0, WINDOWS.1
        )));
    }
    let procs = field("procs")
        .and_then(Unit::as_list)
        .ok_or_else(|| Error::bad_argument("graph needs procs:[{stage run …}…]"))?;
    if procs.is_empty() || procs.len() > MAX_STAGES {
        return Err(Error::new(
            code::LIMIT,
            format!(
                "a graph has 1 to {MAX_STAGES} processes, not {}",
                procs.len()
            ),
        ));
    }
    let mut stages = Vec::with_capacity(procs.len());
    let mut by_name = BTreeMap::new();
    for (i, p) in procs.iter().enumerate() {
        let m = p
            .as_map()
            .ok_or_else(|| Error::bad_argument("each of procs is a map {stage run …}"))?;
        let c = Cmd {
            name: "run",
            arg: m.get_str("run"),
            opts: Some(m),
        };
        let name = match c.opt("stage") {
            Some(u) => stage_name(u, "stage")?,
            None => (i + 1).to_string(),
        };
        if !valid_name(&name) {
            return Err(Error::bad_argument(format!(
                "the stage name {name:?} is not 1 to {MAX_STAGE_NAME} letters, digits, '.', '_' or '-'"
            )));
        }
        if by_name.insert(name.clone(), i).is_some() {
            return Err(Error::bad_argument(format!("two processes named {name}")));
        }
        let run = read_run(cx, &c, local)
            .map_err(|e| Error::new(e.code(), format!("process {name}: {}", e.message())))?;
        if run.attach || run.everywhere || run.dry {
            return Err(Error::bad_argument(format!(
                "process {name}: attach, everywhere and dry belong to the graph, not its processes"
            )));
        }
        stages.push(Stage {
            name,
            input_format: format_of(&c, "in")?,
            output_format: format_of(&c, "out")?,
            split: c.opt_bool("split", false)?,
            max_rate: positive(&c, "max_rate")?,
            console: c.opt_bool("console", false)?,
            terminal_input: c.opt_bool("stdin", false)?,
            order_by: c
                .opt("order_by")
                .map(|u| string_of(u, "order_by"))
                .transpose()?,
            links: stage_links(&c)?,
            checkpoint: positive(&c, "checkpoint")?,
            run,
        });
    }
    for s in &stages {
        if let Some(l) = s.links.iter().find(|l| !by_name.contains_key(&l.from)) {
            return Err(Error::bad_argument(format!(
                "process {}: links from {}, which is no process of the graph",
                s.name, l.from
            )));
        }
    }
    let mut pipes = Vec::new();
    let mut ends = Vec::new();
    for p in field("pipes").and_then(Unit::as_list).unwrap_or(&[]) {
        let m = p
            .as_map()
            .ok_or_else(|| Error::bad_argument("each of pipes is a map {from to}"))?;
        let end = |k: &str| -> Result<usize, Error> {
            let n = stage_name(
                m.get_str(k)
                    .ok_or_else(|| Error::bad_argument(format!("a pipe needs {k}")))?,
                k,
            )?;
            by_name.get(&n).copied().ok_or_else(|| {
                Error::bad_argument(format!(
                    "a pipe names {n}, which is not a process of the graph"
                ))
            })
        };
        let (from, to) = (end("from")?, end("to")?);
        if from == to {
            return Err(Error::bad_argument(format!(
                "a pipe from {} to itself",
                stages[from].name
            )));
        }
        let channel = |k: &str| -> Result<Option<String>, Error> {
            m.get_str(k).map(|u| string_of(u, k)).transpose()
        };
        let mut end = PipeEnds::default();
        match channel("out")?.as_deref() {
            None | Some("stdout") => {}
            Some("stderr") => end.stderr = true,
            Some(name) if super::channels::valid_channel(name) => end.out = Some(name.to_owned()),
            Some(name) => {
                return Err(Error::bad_argument(format!(
                    "out:{name}: a named output is 1 to {} lowercase letters, digits or _",
                    super::channels::MAX_CHANNEL_NAME
                )))
            }
        }
        match channel("in")?.as_deref() {
            None | Some("stdin") => {}
            Some(name) if super::channels::valid_channel(name) => end.input = Some(name.to_owned()),
            Some(name) => {
                return Err(Error::bad_argument(format!(
                    "in:{name}: a named input is 1 to {} lowercase letters, digits or _",
                    super::channels::MAX_CHANNEL_NAME
                )))
            }
        }
        if pipes
            .iter()
            .zip(&ends)
            .any(|(&p, e): (&(usize, usize), &PipeEnds)| p == (from, to) && *e == end)
        {
            return Err(Error::bad_argument(format!(
                "two pipes from {} to {}",
                stages[from].name, stages[to].name
            )));
        }
        let (out, inp) = (stages[from].output_format, stages[to].input_format);
        if out != inp {
            return Err(Error::bad_argument(format!(
                "pipe {} -> {}: {} writes {out} records, {} reads {inp}",
                stages[from].name, stages[to].name, stages[from].name, stages[to].name
            )));
        }
        pipes.push((from, to));
        ends.push(end);
    }
    if pipes.len() > MAX_PIPES {
        return Err(Error::new(
            code::LIMIT,
            format!("a graph has at most {MAX_PIPES} pipes"),
        ));
    }
    let request = GraphRequest {
        name,
        window,
        stages,
        pipes,
        ends,
        attach: c.opt_bool("attach", false)?,
        dry: c.opt_bool("dry", false)?,
    };
    check_shape(&request)?;
    Ok(request)
}

/// No cycle; `stdin` only on one process that has no pipe in; `split` only with pipes out and
/// without `console`.
fn check_shape(g: &GraphRequest) -> Result<(), Error> {
    let order = consumers_first(g.stages.len(), &g.pipes);
    if order.len() < g.stages.len() {
        let placed: HashSet<usize> = order.into_iter().collect();
        let cycle: Vec<&str> = (0..g.stages.len())
            .filter(|i| !placed.contains(i))
            .map(|i| g.stages[i].name.as_str())
            .collect();
        return Err(Error::bad_argument(format!(
            "the pipes make a cycle through {}: a graph's pipes may not loop",
            cycle.join(", ")
        )));
    }
    let inputs = |i: usize| g.pipes.iter().filter(|p| p.1 == i).count();
    let outputs = |i: usize| g.pipes.iter().filter(|p| p.0 == i).count();
    let mut readers = 0;
    for (i, s) in g.stages.iter().enumerate() {
        if s.terminal_input {
            readers += 1;
            if inputs(i) > 0 {
                return Err(Error::bad_argument(format!(
                    "process {} reads the terminal and a pipe",
                    s.name
                )));
            }
        }
        if s.order_by.is_some() && s.input_format != Format::Json {
            return Err(Error::bad_argument(format!(
                "process {} orders its input by a field: its input must be json records",
                s.name
            )));
        }
        if s.split && (outputs(i) == 0 || s.console) {
            return Err(Error::bad_argument(format!(
                "process {} splits its output: it needs pipes out and no console",
                s.name
            )));
        }
    }
    if readers > 1 {
        return Err(Error::bad_argument(
            "only one process of a graph reads the terminal",
        ));
    }
    Ok(())
}

/// Stage indexes with every consumer before its producers; shorter than `n` when the pipes
/// make a cycle.
fn consumers_first(n: usize, pipes: &[(usize, usize)]) -> Vec<usize> {
    let mut outs = vec![0usize; n];
    for &(from, _) in pipes {
        outs[from] += 1;
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| outs[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for &(from, to) in pipes {
            if to == i {
                outs[from] -= 1;
                if outs[from] == 0 {
                    ready.push(from);
                }
            }
        }
    }
    order
}

/// The pipefail status: the last non-zero status in process order, else 0.
pub fn pipefail(codes: &[i32]) -> i32 {
    codes.iter().rev().copied().find(|&c| c != 0).unwrap_or(0)
}

/// Whether a graph's process is over for good: ended, or lost with nothing to bring it back.
fn over(rec: &ProcRecord) -> bool {
    rec.state.is_ended() || (rec.state == ProcState::Lost && rec.restart == RestartPolicy::Never)
}

impl Inner {
    /// `{graph:…}`: places, records and starts a graph; attached, waits for its end.
    pub(super) async fn graph(self: &Arc<Self>, cx: &Cx, c: &Cmd<'_>) -> Outcome {
        let local = self.directory.local();
        let g = read_graph(cx, c, &local)?;
        let terminal = if g.attach && !g.dry {
            Some(cx.terminal()?.clone())
        } else {
            None
        };
        // Placement, each process counting what the ones before it reserve.
        let mut view = self.view(None).await?;
        let mut nodes: Vec<String> = Vec::with_capacity(g.stages.len());
        let mut explained = Vec::new();
        for s in &g.stages {
            // Its links with the stages placed before it: from them (its own `links`), and to
            // them (theirs, when it is placed after a process that reads from it).
            let placed = || g.stages.iter().zip(&nodes);
            let need = |peer: &String, l: &StageLink| LinkNeed {
                peer: peer.clone(),
                min_rate: l.min_rate,
                max_rtt_us: l.max_rtt_us,
            };
            let links: Vec<LinkNeed> = s
                .links
                .iter()
                .filter_map(|l| {
                    let (_, peer) = placed().find(|(t, _)| t.name == l.from)?;
                    Some(need(peer, l))
                })
                .chain(placed().flat_map(|(t, peer)| {
                    t.links
                        .iter()
                        .filter(|l| l.from == s.name)
                        .map(move |l| need(peer, l))
                }))
                .collect();
            let chosen = place_near(&view, &s.run.request, &links).map_err(|r| {
                // Links were what failed: the script shows the error at them.
                let by_links = r.for_links();
                let e = refusal_error(r);
                let e = Error::new(e.code(), format!("process {}: {}", s.name, e.message()))
                    .with("stage", s.name.as_str());
                if by_links {
                    e.with("links", Unit::Bool(true))
                } else {
                    e
                }
            })?;
            if let Some(node) = view.nodes.get_mut(&chosen.node) {
                node.add_process(s.run.request.reserve);
            }
            explained.push(format!(
                "{}: {} on {}",
                s.name,
                s.run.record.command.join(" "),
                chosen.node
            ));
            nodes.push(chosen.node.clone());
        }
        if g.dry {
            let pipes: Vec<String> = g
                .pipes
                .iter()
                .map(|&(a, b)| format!("{} -> {}", g.stages[a].name, g.stages[b].name))
                .collect();
            let mut text = explained.join("\n");
            if !pipes.is_empty() {
                text.push('\n');
                text.push_str(&pipes.join("\n"));
            }
            return Ok(Some(map_of([
                ("graph", Unit::str(&g.name)),
                (
                    "nodes",
                    Unit::List(nodes.iter().map(|n| Unit::str(n)).collect()),
                ),
                ("text", Unit::from(text)),
            ])));
        }
        let graph = format!(
            "g{}",
            ProcId::from_random(rand::Rng::gen(&mut rand::rngs::OsRng))
        );
        let mut ids: Vec<ProcId> = Vec::with_capacity(g.stages.len());
        while ids.len() < g.stages.len() {
            let id = self.unused_id().await?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let records = self.wired_records(cx, &g, &graph, &ids, &nodes).await?;
        let mut consoles = Vec::new();
        if let Some(term) = &terminal {
            consoles = self.consoles(&graph, cx, term, &records, g.window);
        }
        // Consumers first: a producer's first frame finds its pipe.
        let mut put = Vec::new();
        for rec in &records {
            match self.procs.put(rec.clone()).await {
                Ok(rec) => put.push(rec.id),
                Err(e) => {
                    for id in put {
                        let _ = self.procs.remove(id).await;
                    }
                    return Err(table_error(e));
                }
            }
        }
        for i in consumers_first(g.stages.len(), &g.pipes) {
            let rec = &records[i];
            let started = self
                .start_on(cx, Starting::Placed(rec.id), &rec.node, false)
                .await;
            if let (Err(e), Some(term)) = (started, &terminal) {
                let line = format!("plx: {} ({}): {}\n", g.stages[i].name, rec.id, e.message());
                let _ = term
                    .request(TermRequest::Output {
                        stream: OutputStream::Stderr,
                        bytes: line.into_bytes(),
                    })
                    .await;
            }
        }
        let listed = |recs: &[ProcRecord]| {
            Unit::List(
                recs.iter()
                    .zip(&g.stages)
                    .map(|(r, s)| {
                        let mut m = match end_reply(r) {
                            Unit::Map(m) => m,
                            _ => Map::new(),
                        };
                        m.insert(Unit::str("stage"), Unit::str(&s.name));
                        Unit::Map(m)
                    })
                    .collect(),
            )
        };
        let Some(term) = terminal else {
            return Ok(Some(map_of([
                ("graph", Unit::str(&graph)),
                ("name", Unit::str(&g.name)),
                ("procs", listed(&records)),
            ])));
        };
        if g.stages.iter().any(|s| s.terminal_input) {
            term.request(TermRequest::Process { id: graph.clone() })
                .await?;
        }
        let ended = self.wait_all(cx, &ids).await?;
        for console in consoles {
            let _ = tokio::time::timeout(Duration::from_secs(5), console).await;
        }
        let codes: Vec<i32> = ended.iter().map(|r| r.exit_status().unwrap_or(1)).collect();
        Ok(Some(map_of([
            ("graph", Unit::str(&graph)),
            ("name", Unit::str(&g.name)),
            ("procs", listed(&ended)),
            ("code", Unit::int(i64::from(pipefail(&codes)))),
        ])))
    }

    /// The records of a graph's processes, placed on `nodes`, under `ids`, wired.
    async fn wired_records(
        &self,
        cx: &Cx,
        g: &GraphRequest,
        graph: &str,
        ids: &[ProcId],
        nodes: &[String],
    ) -> Result<Vec<ProcRecord>, Error> {
        let local = self.directory.local();
        let attach = g.attach;
        let mut records = Vec::with_capacity(g.stages.len());
        for (i, s) in g.stages.iter().enumerate() {
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            for (k, (&(from, to), end)) in g.pipes.iter().zip(&g.ends).enumerate() {
                let pipe = format!("{graph}.{}", k + 1);
                if to == i {
                    inputs.push(Incoming {
                        pipe: pipe.clone(),
                        from: ids[from],
                        channel: end.input.clone(),
                    });
                }
                if from == i {
                    outputs.push(Outgoing {
                        pipe,
                        stderr: end.stderr,
                        channel: end.out.clone(),
                        to: PipeTarget::Proc(ids[to]),
                    });
                }
            }
            if attach && s.console {
                outputs.push(Outgoing {
                    pipe: format!("{graph}.{}.out", s.name),
                    stderr: false,
                    channel: None,
                    to: PipeTarget::Console(local.clone()),
                });
            }
            if attach {
                outputs.push(Outgoing {
                    pipe: format!("{graph}.{}.err", s.name),
                    stderr: true,
                    channel: None,
                    to: PipeTarget::Console(local.clone()),
                });
            }
            let mut record = s.run.record.clone();
            record.id = ids[i];
            record.wiring = Some(Wiring {
                graph: graph.to_owned(),
                graph_name: g.name.clone(),
                stage: s.name.clone(),
                inputs,
                input_format: s.input_format.name().to_owned(),
                terminal_input: attach && s.terminal_input,
                outputs,
                output_format: s.output_format.name().to_owned(),
                split: s.split,
                max_rate: s.max_rate,
                window: g.window,
                order_by: s.order_by.clone(),
                checkpoint: s.checkpoint,
            });
            let record = self
                .placed_on(cx, record, &nodes[i], s.run.copy.clone())
                .await?;
            record.validate().map_err(table_error)?;
            records.push(record);
        }
        Ok(records)
    }

    /// The inlets of a graph's console pipes on this node: standard output and standard error
    /// of its processes to the caller's terminal. Each resolves when its pipes have ended.
    fn consoles(
        &self,
        graph: &str,
        cx: &Cx,
        term: &Arc<dyn plexus_kernel::Terminal>,
        records: &[ProcRecord],
        window: u64,
    ) -> Vec<tokio::sync::oneshot::Receiver<()>> {
        let mut handles = Vec::new();
        for (stderr, stream) in [(false, OutputStream::Stdout), (true, OutputStream::Stderr)] {
            let pipes: Vec<(String, String, String)> = records
                .iter()
                .flat_map(|r| {
                    r.wiring.iter().flat_map(move |w| {
                        w.outputs
                            .iter()
                            .filter(move |o| {
                                o.stderr == stderr && matches!(o.to, PipeTarget::Console(_))
                            })
                            .map(move |o| (o.pipe.clone(), r.id.to_string(), r.node.clone()))
                    })
                })
                .collect();
            if pipes.is_empty() {
                continue;
            }
            let plan = InletPlan {
                graph: graph.to_owned(),
                here: "console".to_owned(),
                owner: cx.author().to_bytes(),
                pipes,
                format: Format::Raw,
                window,
                order_by: None,
            };
            let sink = Sink::Terminal {
                terminal: term.clone(),
                stream,
            };
            handles.push(self.pipes.inlet(plan, sink));
        }
        handles
    }

    /// Waits until every process of `ids` is over; their records, in order.
    async fn wait_all(&self, cx: &Cx, ids: &[ProcId]) -> Result<Vec<ProcRecord>, Error> {
        loop {
            let mut all = Vec::with_capacity(ids.len());
            for &id in ids {
                let rec = self
                    .procs
                    .get(id)
                    .await
                    .map_err(table_error)?
                    .ok_or_else(|| {
                        Error::new(code::NOT_FOUND, format!("process {id} was removed"))
                    })?;
                all.push(rec);
            }
            if all.iter().all(over) {
                return Ok(all);
            }
            cx.check()?;
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The live processes of the graph with this id or name, if there is one.
    pub(super) async fn graph_procs(&self, text: &str) -> Result<Vec<ProcRecord>, Error> {
        let all = self.procs.list().await.map_err(table_error)?;
        let of = |by_id: bool| -> Vec<ProcRecord> {
            all.iter()
                .filter(|r| {
                    r.wiring.as_ref().is_some_and(|w| {
                        if by_id {
                            w.graph == text
                        } else {
                            w.graph_name == text
                        }
                    })
                })
                .cloned()
                .collect()
        };
        let by_id = of(true);
        if !by_id.is_empty() {
            return Ok(by_id);
        }
        let by_name: Vec<ProcRecord> = of(false).into_iter().filter(|r| !over(r)).collect();
        let graphs: HashSet<&str> = by_name
            .iter()
            .filter_map(|r| r.wiring.as_ref().map(|w| w.graph.as_str()))
            .collect();
        if graphs.len() > 1 {
            return Err(Error::bad_argument(format!(
                "{} graphs named {text} run; name one by its id",
                graphs.len()
            )));
        }
        Ok(by_name)
    }

    /// `{kill:GRAPH …}`: the signal to every live process of the graph → `{graph procs}`.
    pub(super) async fn kill_graph(
        &self,
        cx: &Cx,
        procs: Vec<ProcRecord>,
        c: &Cmd<'_>,
    ) -> Result<Unit, Error> {
        let graph = procs
            .first()
            .and_then(|r| r.wiring.as_ref())
            .map(|w| w.graph.clone())
            .unwrap_or_default();
        for rec in &procs {
            may_act(cx, rec)?;
        }
        // Together, so that a TERM's grace runs for all at once.
        let live: Vec<&ProcRecord> = procs.iter().filter(|r| !over(r)).collect();
        let mut kills = tokio::task::JoinSet::new();
        for (i, rec) in live.iter().enumerate() {
            let mut m = c.opts.cloned().unwrap_or_default();
            m.insert(Unit::str("kill"), Unit::str(rec.id.as_str()));
            let (cx, msg) = (cx.clone(), Unit::Map(m));
            kills.spawn(async move { (i, cx.send(NAME, None, msg).await) });
        }
        let mut states = vec![String::from("?"); live.len()];
        while let Some(Ok((i, out))) = kills.join_next().await {
            states[i] = match out {
                Ok(Some(u)) => u
                    .as_map()
                    .and_then(|m| m.get_str("state"))
                    .and_then(Unit::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                Ok(None) => "?".to_owned(),
                Err(e) => format!("not killed: {}", e.message()),
            };
        }
        let stopped: Vec<Unit> = live
            .iter()
            .zip(states)
            .map(|(rec, state)| {
                map_of([
                    ("id", Unit::str(rec.id.as_str())),
                    ("state", Unit::from(state)),
                ])
            })
            .collect();
        Ok(map_of([
            ("graph", Unit::from(graph)),
            ("procs", Unit::List(stopped)),
        ]))
    }
}

/// One pipe as `pipes` shows it: both ends' figures joined.
#[derive(Debug, Default, Clone)]
struct PipeRow {
    pipe: String,
    graph: String,
    from: String,
    from_node: String,
    to: String,
    to_node: String,
    bytes: u64,
    bytes_s: u64,
    records: u64,
    records_s: u64,
    backlog: u64,
    lost: u64,
    state: String,
}

fn num(m: &Map, k: &str) -> u64 {
    m.get_str(k)
        .and_then(Unit::as_int)
        .and_then(|i| i.to_i64())
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0)
}

fn text(m: &Map, k: &str) -> String {
    m.get_str(k)
        .and_then(Unit::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Bytes as `ps` shows sizes: `512B`, `1.5K`, `12M`.
fn size(n: u64) -> String {
    plexus_store::bytes_short(n)
}

fn rate(n: u64) -> String {
    format!("{}/s", size(n))
}

impl PipeRow {
    fn to_unit(&self) -> Unit {
        let mut m = Map::new();
        let mut put = |k: &str, v: Unit| {
            m.insert(Unit::str(k), v);
        };
        put("pipe", Unit::str(&self.pipe));
        put("graph", Unit::str(&self.graph));
        put("from", Unit::str(&self.from));
        put("from_node", Unit::str(&self.from_node));
        put("to", Unit::str(&self.to));
        put("to_node", Unit::str(&self.to_node));
        put("bytes", int_u64(self.bytes));
        put("bytes_s", int_u64(self.bytes_s));
        put("records", int_u64(self.records));
        put("records_s", int_u64(self.records_s));
        put("backlog", int_u64(self.backlog));
        put("lost", int_u64(self.lost));
        put("state", Unit::str(&self.state));
        Unit::Map(m)
    }
}

fn pipe_table(rows: &[PipeRow]) -> String {
    let mut lines = vec![[
        "PIPE",
        "FROM",
        "TO",
        "BYTES",
        "RATE",
        "RECORDS/S",
        "BACKLOG",
        "STATE",
    ]
    .map(str::to_owned)
    .to_vec()];
    for r in rows {
        lines.push(vec![
            r.pipe.clone(),
            format!("{}@{}", r.from, r.from_node),
            format!("{}@{}", r.to, r.to_node),
            size(r.bytes),
            rate(r.bytes_s),
            r.records_s.to_string(),
            size(r.backlog),
            r.state.clone(),
        ]);
    }
    columns(&lines)
}

/// Lines of cells in aligned columns, two spaces apart.
fn columns(lines: &[Vec<String>]) -> String {
    let width = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|l| {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == l.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            cells.join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Inner {
    /// Every pipe end of every up node, joined by pipe: `pipes` and `graphs`.
    async fn pipe_rows(&self, cx: &Cx) -> Vec<PipeRow> {
        let nodes: Vec<String> = self.directory.view().nodes.keys().cloned().collect();
        let mut ends: Vec<Unit> = Vec::new();
        let mut asks = tokio::task::JoinSet::new();
        for node in nodes {
            if self.is_local(&node) {
                ends.extend(self.pipes.list());
                continue;
            }
            let cx = cx.clone();
            asks.spawn(async move {
                let ask = cx.send(crate::sys_pipe::NAME, Some(&node), Unit::str("pipes"));
                match tokio::time::timeout(STATS_DEADLINE, ask).await {
                    Ok(Ok(Some(Unit::List(l)))) => l,
                    _ => Vec::new(),
                }
            });
        }
        while let Some(Ok(more)) = asks.join_next().await {
            ends.extend(more);
        }
        let mut rows: BTreeMap<String, PipeRow> = BTreeMap::new();
        for end in &ends {
            let Some(m) = end.as_map() else { continue };
            let pipe = text(m, "pipe");
            let row = rows.entry(pipe.clone()).or_insert_with(|| PipeRow {
                pipe,
                graph: text(m, "graph"),
                ..PipeRow::default()
            });
            // Found on the node of the end it describes.
            let here = text(m, "here");
            let there = text(m, "there");
            let there_node = text(m, "there_node");
            match text(m, "side").as_str() {
                "out" => {
                    row.from = here;
                    row.to = there;
                    row.to_node = there_node;
                    row.backlog = row.backlog.max(num(m, "backlog"));
                    if row.state.is_empty() {
                        row.state = text(m, "state");
                    }
                    row.bytes = row.bytes.max(num(m, "bytes"));
                }
                _ => {
                    row.to = here;
                    row.from = there;
                    row.from_node = there_node;
                    row.backlog = row.backlog.max(num(m, "backlog"));
                    row.state = text(m, "state");
                    row.bytes = row.bytes.max(num(m, "bytes"));
                    row.bytes_s = num(m, "bytes_s");
                    row.records = num(m, "records");
                    row.records_s = num(m, "records_s");
                    row.lost += num(m, "lost");
                }
            }
        }
        // The node of each end, where the listing of the other end did not say it.
        let records = self.procs.list().await.unwrap_or_default();
        let node_of = |id: &str| {
            records
                .iter()
                .find(|r| r.id.as_str() == id)
                .map(|r| r.node.clone())
        };
        for row in rows.values_mut() {
            if row.from_node.is_empty() {
                row.from_node = node_of(&row.from).unwrap_or_else(|| "?".into());
            }
            if row.to_node.is_empty() {
                row.to_node = node_of(&row.to).unwrap_or_else(|| self.directory.local());
            }
        }
        rows.into_values().collect()
    }

    /// `{pipes:t text:t graph:ID}`: every pipe of the cluster (or of one graph).
    pub(super) async fn pipes(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let only = c.opt("graph").map(|u| string_of(u, "graph")).transpose()?;
        let rows: Vec<PipeRow> = self
            .pipe_rows(cx)
            .await
            .into_iter()
            .filter(|r| only.as_ref().is_none_or(|g| &r.graph == g))
            .collect();
        if c.opt_bool("text", false)? {
            return Ok(Unit::from(pipe_table(&rows)));
        }
        Ok(Unit::List(rows.iter().map(PipeRow::to_unit).collect()))
    }

    /// `{graphs:t text:t}`: every graph of the table, with its processes and pipes.
    pub(super) async fn graphs(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let mut records = self.procs.list().await.map_err(table_error)?;
        plexus_store::ps_order(&mut records);
        let pipes = self.pipe_rows(cx).await;
        let mut graphs: BTreeMap<String, Vec<&ProcRecord>> = BTreeMap::new();
        for r in &records {
            if let Some(w) = &r.wiring {
                graphs.entry(w.graph.clone()).or_default().push(r);
            }
        }
        let user_name = |key: &[u8; 32]| {
            PublicKey::from_bytes(key)
                .ok()
                .and_then(|k| cx.kernel().user_name(&k))
                .unwrap_or_else(|| key.iter().take(4).map(|b| format!("{b:02x}")).collect())
        };
        let mut out = Vec::new();
        let mut lines = Vec::new();
        for (graph, procs) in &graphs {
            let name = procs
                .first()
                .and_then(|r| r.wiring.as_ref())
                .map(|w| w.graph_name.clone())
                .unwrap_or_default();
            let live = procs.iter().filter(|r| !over(r)).count();
            let state = if live > 0 {
                format!("running ({live} of {})", procs.len())
            } else {
                let codes: Vec<i32> = procs.iter().map(|r| r.exit_status().unwrap_or(1)).collect();
                format!("ended ({})", pipefail(&codes))
            };
            let user = procs
                .first()
                .map(|r| user_name(&r.owner))
                .unwrap_or_default();
            // Standard error that carried nothing is left out of the picture.
            let edges: Vec<&PipeRow> = pipes
                .iter()
                .filter(|p| &p.graph == graph && !(p.pipe.ends_with(".err") && p.bytes == 0))
                .collect();
            lines.push(format!("{graph}  {name}  {user}  {state}"));
            for r in procs {
                let stage = r.wiring.as_ref().map(|w| w.stage.as_str()).unwrap_or("?");
                lines.push(format!(
                    "  {stage:<12} {}  {:<8} {:<14} {}",
                    r.id,
                    r.node,
                    state_word(&r.state),
                    r.command.join(" ")
                ));
            }
            for p in &edges {
                lines.push(format!(
                    "  {} -> {}  {}  {}  {} rec/s  backlog {}  {}",
                    p.from,
                    p.to,
                    size(p.bytes),
                    rate(p.bytes_s),
                    p.records_s,
                    size(p.backlog),
                    p.state
                ));
            }
            out.push(map_of([
                ("graph", Unit::str(graph)),
                ("name", Unit::from(name)),
                ("user", Unit::from(user)),
                ("state", Unit::from(state)),
                (
                    "procs",
                    Unit::List(
                        procs
                            .iter()
                            .map(|r| {
                                map_of([
                                    (
                                        "stage",
                                        Unit::str(
                                            r.wiring.as_ref().map_or("", |w| w.stage.as_str()),
                                        ),
                                    ),
                                    ("id", Unit::str(r.id.as_str())),
                                    ("node", Unit::str(&r.node)),
                                    ("state", Unit::str(state_word(&r.state))),
                                ])
                            })
                            .collect(),
                    ),
                ),
                (
                    "pipes",
                    Unit::List(edges.iter().map(|p| p.to_unit()).collect()),
                ),
            ]));
        }
        if c.opt_bool("text", false)? {
            if lines.is_empty() {
                return Ok(Unit::from("no graphs".to_owned()));
            }
            return Ok(Unit::from(lines.join("\n")));
        }
        Ok(Unit::List(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipefail_is_the_last_failure() {
        assert_eq!(pipefail(&[0, 0, 0]), 0);
        assert_eq!(pipefail(&[1, 0, 0]), 1);
        assert_eq!(pipefail(&[1, 141, 0]), 141);
        assert_eq!(pipefail(&[]), 0);
    }

    #[test]
    fn consumers_come_first_and_cycles_are_found() {
        assert_eq!(consumers_first(3, &[(0, 1), (1, 2)]), vec![2, 1, 0]);
        assert_eq!(consumers_first(3, &[(0, 1), (1, 2), (2, 0)]).len(), 0);
        let split = consumers_first(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_eq!(split.first(), Some(&3));
        assert_eq!(split.last(), Some(&0));
    }
}
