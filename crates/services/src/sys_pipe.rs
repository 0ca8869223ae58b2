//! `sys.pipe`: pipes between processes on any nodes (`docs/pipes.md`).
//!
//! A pipe runs from an output of a process (its *outlet*, on the producer's node) to the
//! standard input of another process or to a session's terminal (its *inlet*, on the
//! consumer's node). The protocol is [`plexus_pipe`]'s: the outlet sends frames as calls to
//! `sys.pipe` on the consumer's node, over the node links (or in-process when both ends are on
//! one node), and each call's reply is the inlet's acknowledgement. Data frames are answered at
//! once; when an outlet has nothing it may send, it keeps one `wait` call open, which the inlet
//! answers once its consumer has taken more (the credit opens) or its state changed. So a slow
//! consumer holds its producer back end to end, and a pipe holds at most its window.
//!
//! [`Pipes`] is this node's table of pipe ends: `sys.proc` makes them for the processes it
//! starts ([`Pipes::inlet`], [`Pipes::outlet`]) and for the terminal of a graph's session
//! ([`Pipes::console`]); the service ([`SysPipe`]) takes the frames and lists the ends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_kernel::{
    code, Arg, BoxFuture, Cmd, Cx, Delivery, Entry, Error, Help, Kernel, Outcome, Service, Table,
    Terminal,
};
use plexus_pipe::{Ack, AckState, Config, Format, Frame, Inlet, Outlet, Piece, Share, State};
use plexus_proc::Supervisor;
use plexus_protocol::{OutputStream, TermRequest};
use plexus_units::{Map, Unit};
use tokio::sync::{mpsc, watch, Notify};

use crate::forms::{int_u64, map_of};
use plexus_store::{ProcState, ProcTable};

/// The service's name.
pub const NAME: &str = "sys.pipe";

/// Error code: no pipe of that id ends on this node (not yet, or no longer).
pub const UNKNOWN_PIPE: &str = "pipe.unknown";
/// Error code: the pipe's consumer end does not know this producer (it was made again, or a
/// newer producer opened it): the producer opens it again, or gives up.
pub const UNOPENED: &str = "pipe.unopened";
/// Error code: a newer run of the producer has the pipe.
pub const STALE: &str = "pipe.stale";

/// Data frames of one pipe in flight at once.
const MAX_INFLIGHT: usize = 8;
/// Longest a `wait` call is held before it is answered anyway (the outlet asks again).
const WAIT_HOLD: Duration = Duration::from_secs(20);
/// How long an outlet keeps trying a pipe whose inlet is not there or whose node cannot be
/// reached (a link reconnecting), before the pipe fails; while the consumer's record says it
/// is starting or will be placed again, it keeps trying up to [`RELINK_DEADLINE`].
const REACH_DEADLINE: Duration = Duration::from_secs(5);
/// How long an outlet waits for a consumer that is being placed again (an `always` process
/// whose node died).
const RELINK_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two such tries.
const REACH_RETRY: Duration = Duration::from_millis(20);
/// The span over which `pipes` measures rates.
const RATE_SPAN: Duration = Duration::from_secs(1);
/// How long the ends of a pipe that ended stay listed (and answer late frames).
const KEEP_ENDED: Duration = Duration::from_secs(60);

/// Which end of a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The producer's: bytes go out.
    Out,
    /// The consumer's: bytes come in.
    In,
}

/// Live figures of one end of a pipe, for `pipes`.
#[derive(Debug)]
pub struct EndStats {
    /// The pipe's id.
    pub pipe: String,
    /// The graph's id.
    pub graph: String,
    /// Which end.
    pub side: Side,
    /// The process (or `console`) at this end, and at the other.
    pub here: String,
    /// The other end: a process id, or `console`.
    pub there: String,
    /// The node of the other end.
    pub there_node: Mutex<String>,
    /// Bytes the consumer took.
    pub bytes: AtomicU64,
    /// Records (lines, segments or JSON values) the consumer took, where counted.
    pub records: AtomicU64,
    /// Bytes held at this end.
    pub backlog: AtomicU64,
    /// Bytes lost: held for a consumer that was replaced, or by a producer that was.
    pub lost: AtomicU64,
    /// `open`, `finished`, `closed` or `failed: …`.
    pub state: Mutex<String>,
    /// When it began.
    pub began: Instant,
    /// When it ended.
    pub ended: Mutex<Option<Instant>>,
    /// Bytes and records at the previous listing, and when, for the rates.
    sample: Mutex<(Instant, u64, u64)>,
}

impl EndStats {
    fn new(pipe: &str, graph: &str, side: Side, here: &str, there: &str, node: &str) -> EndStats {
        EndStats {
            pipe: pipe.to_owned(),
            graph: graph.to_owned(),
            side,
            here: here.to_owned(),
            there: there.to_owned(),
            there_node: Mutex::new(node.to_owned()),
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            state: Mutex::new("open".to_owned()),
            began: Instant::now(),
            ended: Mutex::new(None),
            sample: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    fn set_state(&self, state: &State) {
        let word = match state {
            State::Open => "open".to_owned(),
            State::Finished => "finished".to_owned(),
            State::Closed => "closed".to_owned(),
            State::Failed(why) => format!("failed: {why}"),
        };
        let mut s = lock(&self.state);
        if *s != word {
            *s = word;
            if *state != State::Open {
                *lock(&self.ended) = Some(Instant::now());
            }
        }
    }

    /// Bytes and records a second, over the last second or so: measured from a sample kept
    /// at least [`RATE_SPAN`] old, so that listings close together (or from several
    /// viewers) all see the same rate.
    fn rates(&self) -> (u64, u64) {
        let now = Instant::now();
        let (bytes, records) = (
            self.bytes.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        );
        let mut sample = lock(&self.sample);
        let (then, b0, r0) = *sample;
        let secs = now.duration_since(then).as_secs_f64().max(1e-3);
        let rate = |d: u64| (d as f64 / secs) as u64;
        let rates = (rate(bytes - b0), rate(records - r0));
        if now.duration_since(then) >= RATE_SPAN {
            *sample = (now, bytes, records);
        }
        rates
    }

    fn to_unit(&self) -> Unit {
        let (bytes_s, records_s) = self.rates();
        let mut m = Map::new();
        let mut put = |k: &str, v: Unit| {
            m.insert(Unit::str(k), v);
        };
        put("pipe", Unit::str(&self.pipe));
        put("graph", Unit::str(&self.graph));
        put(
            "side",
            Unit::str(match self.side {
                Side::Out => "out",
                Side::In => "in",
            }),
        );
        put("here", Unit::str(&self.here));
        put("there", Unit::str(&self.there));
        put("there_node", Unit::str(&lock(&self.there_node)));
        put("bytes", int_u64(self.bytes.load(Ordering::Relaxed)));
        put("records", int_u64(self.records.load(Ordering::Relaxed)));
        put("bytes_s", int_u64(bytes_s));
        put("records_s", int_u64(records_s));
        put("backlog", int_u64(self.backlog.load(Ordering::Relaxed)));
        put("lost", int_u64(self.lost.load(Ordering::Relaxed)));
        put("state", Unit::str(&lock(&self.state)));
        put(
            "age_ms",
            int_u64(
                self.began
                    .elapsed()
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX),
            ),
        );
        Unit::Map(m)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The consumer's end of one or more pipes into one process (or terminal).
struct InletEnd {
    owner: [u8; 32],
    /// This end's incarnation: a producer that sees it change relinks.
    inc: u64,
    config: Config,
    /// Per pipe, the run of the producer that opened it.
    sources: Mutex<Vec<Option<u64>>>,
    inlet: Mutex<Inlet>,
    /// Bumped whenever the inlet's acknowledgement may have changed.
    changed: watch::Sender<u64>,
    /// Wakes the writer when bytes arrive.
    arrived: Notify,
    /// Per pipe, by index.
    stats: Vec<Arc<EndStats>>,
    format: Format,
    merging: bool,
    order_by: Option<String>,
}

impl InletEnd {
    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        let inlet = lock(&self.inlet);
        for (i, s) in self.stats.iter().enumerate() {
            if let Some(r) = inlet.receiver(i) {
                s.set_state(r.state());
                s.backlog.store(r.buffered(), Ordering::Relaxed);
            }
        }
    }

    fn ack(&self, index: usize) -> Option<Ack> {
        lock(&self.inlet).receiver(index).map(|r| r.ack())
    }
}

/// Where an inlet's bytes go.
pub enum Sink {
    /// A process's standard input on this node (its supervisor run id).
    Stdin {
        /// The supervisor.
        supervisor: Arc<Supervisor>,
        /// The run.
        run: String,
    },
    /// A named input of a process on this node (`sys_proc::channels`): written on a thread
    /// of its own; taking the sender out closes it.
    Channel {
        /// Writes to the input.
        writes: Mutex<Option<mpsc::Sender<crate::sys_proc::InputWrite>>>,
        /// The supervisor.
        supervisor: Arc<Supervisor>,
        /// The run.
        run: String,
    },
    /// A session's terminal.
    Terminal {
        /// The terminal.
        terminal: Arc<dyn Terminal>,
        /// Which of its streams.
        stream: OutputStream,
    },
}

impl Sink {
    async fn write(&self, bytes: &Bytes) -> Result<(), String> {
        match self {
            Sink::Stdin { supervisor, run } => supervisor
                .write_stdin(run, bytes)
                .await
                .map_err(|e| e.to_string()),
            Sink::Channel { writes, .. } => {
                let writes = lock(writes).clone();
                let Some(writes) = writes else {
                    return Err("the input is closed".to_owned());
                };
                let (reply, written) = tokio::sync::oneshot::channel();
                writes
                    .send((bytes.clone(), reply))
                    .await
                    .map_err(|_| "the input is closed".to_owned())?;
                written
                    .await
                    .map_err(|_| "the input is closed".to_owned())?
            }
            Sink::Terminal { terminal, stream } => terminal
                .request(TermRequest::Output {
                    stream: *stream,
                    bytes: bytes.to_vec(),
                })
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    async fn close(&self) {
        match self {
            Sink::Stdin { supervisor, run } => {
                let _ = supervisor.close_stdin(run).await;
            }
            Sink::Channel { writes, .. } => drop(lock(writes).take()),
            Sink::Terminal { .. } => {}
        }
    }

    /// Resolves once the consumer is gone (a process that ended); never for a terminal.
    async fn gone(&self) {
        match self {
            Sink::Stdin { supervisor, run }
            | Sink::Channel {
                supervisor, run, ..
            } => {
                let _ = supervisor.wait(run).await;
            }
            Sink::Terminal { .. } => std::future::pending().await,
        }
    }
}

/// Where a pipe of an outlet goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pipe's id.
    pub pipe: String,
    /// The node of its inlet.
    pub node: String,
    /// The consuming process, whose record says where the inlet is now (none for a terminal).
    pub consumer: Option<plexus_store::ProcId>,
    /// What is at the other end (a process id, or `console`), for listings.
    pub there: String,
}

/// One outlet to start: a process's output into pipes.
pub struct OutletPlan {
    /// The graph's id.
    pub graph: String,
    /// The process (for listings).
    pub here: String,
    /// The pipes.
    pub targets: Vec<Target>,
    /// Every byte to each pipe, or records split among them.
    pub share: Share,
    /// Bytes a pipe may have in flight.
    pub window: u64,
    /// The most bytes a second the producer may write, if limited.
    pub max_rate: Option<u64>,
    /// This run of the producer: a later run (a restart) replaces an earlier one at the
    /// consumer's end. Microseconds since the Unix epoch at its start.
    pub run: u64,
}

/// One inlet to make: pipes into a process's standard input or a terminal.
pub struct InletPlan {
    /// The graph's id.
    pub graph: String,
    /// The process (or `console`), for listings.
    pub here: String,
    /// The owner of the graph: only they (or an admin) may send on its pipes.
    pub owner: [u8; 32],
    /// The pipes, and for each what is at the other end and its node.
    pub pipes: Vec<(String, String, String)>,
    /// The record format kept whole when merging.
    pub format: Format,
    /// Bytes a pipe may have in flight.
    pub window: u64,
    /// Write JSON records in the order of this field (a dotted path), from 1 (`order_by`).
    pub order_by: Option<String>,
}

/// Restores the order of merged JSON records by an index field (OneOS's `order_by`): a
/// record is written once every record with a smaller index was, starting at 1. Records held
/// waiting are bounded (by `limit` bytes): past it, or once every pipe has ended, the smallest
/// held goes next and the gap before it is skipped. A record without the index goes at once.
struct Reorder {
    path: Vec<String>,
    next: i64,
    held: BTreeMap<i64, Vec<Piece>>,
    held_bytes: u64,
    limit: u64,
    ready: VecDeque<Piece>,
}

impl Reorder {
    fn new(path: &str, limit: u64) -> Reorder {
        Reorder {
            path: path.split('.').map(str::to_owned).collect(),
            next: 1,
            held: BTreeMap::new(),
            held_bytes: 0,
            limit,
            ready: VecDeque::new(),
        }
    }

    fn index(&self, bytes: &[u8]) -> Option<i64> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut u = plexus_units::json::from_json(text.trim()).ok()?;
        for key in &self.path {
            u = u.as_map()?.get_str(key)?.clone();
        }
        u.as_int()?.to_i64()
    }

    fn hold(&mut self, piece: Piece) {
        match self.index(&piece.bytes) {
            Some(i) if i >= self.next => {
                self.held_bytes += piece.bytes.len() as u64;
                self.held.entry(i).or_default().push(piece);
            }
            _ => self.ready.push_back(piece),
        }
    }

    /// The next record to write, if one may go: `ended` when no more will come.
    fn pop(&mut self, ended: bool) -> Option<Piece> {
        if self.ready.is_empty() {
            let first = self.held.first_key_value().map(|(&i, _)| i)?;
            if first != self.next && !ended && self.held_bytes < self.limit {
                return None;
            }
            let (i, pieces) = self.held.pop_first()?;
            self.next = i + 1;
            for p in pieces {
                self.held_bytes -= p.bytes.len() as u64;
                self.ready.push_back(p);
            }
        }
        self.ready.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.held.is_empty()
    }
}

/// This node's pipe ends.
#[derive(Clone)]
pub struct Pipes {
    inner: Arc<PipesInner>,
}

struct PipesInner {
    node: String,
    procs: Arc<dyn ProcTable>,
    directory: Arc<dyn crate::directory::NodeDirectory>,
    /// Pipe id → the inlet it feeds and its index there.
    inlets: Mutex<HashMap<String, (Arc<InletEnd>, usize)>>,
    /// Every end on this node, for listings.
    ends: Mutex<Vec<Arc<EndStats>>>,
}

fn config(window: u64) -> Config {
    Config {
        window: window.max(1),
        ..Config::default()
    }
}

/// Counts records in `bytes` where that is cheap: lines of a raw stream.
fn count_records(format: Format, bytes: &[u8]) -> u64 {
    match format {
        Format::Raw => newlines(bytes),
        _ => 0,
    }
}

/// The newlines in `bytes`. Counted in runs of at most 255 bytes into a byte-wide sum, which
/// the compiler turns into wide vector compares and adds: about 30 GB/s on one core, where
/// a count per byte widened to 64 bits did 2.3 GB/s, a quarter of the time of a receiving node
/// moving 400 MB/s (`plx bench pipe`).
fn newlines(bytes: &[u8]) -> u64 {
    bytes
        .chunks(255)
        .map(|run| u64::from(run.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n'))))
        .sum()
}

impl Pipes {
    /// The pipe ends of node `node`, whose processes are in `procs` and whose nodes are in
    /// `directory`.
    pub fn new(
        node: &str,
        procs: Arc<dyn ProcTable>,
        directory: Arc<dyn crate::directory::NodeDirectory>,
    ) -> Pipes {
        Pipes {
            inner: Arc::new(PipesInner {
                node: node.to_owned(),
                procs,
                directory,
                inlets: Mutex::default(),
                ends: Mutex::default(),
            }),
        }
    }

    fn keep(&self, stats: &Arc<EndStats>) {
        let mut ends = lock(&self.inner.ends);
        ends.retain(|e| {
            lock(&e.ended).is_none_or(|t| t.elapsed() < KEEP_ENDED) && e.pipe != stats.pipe
                || e.side != stats.side
        });
        ends.push(stats.clone());
    }

    /// Makes the inlet of `plan` and feeds it into `sink` until every pipe has ended (the
    /// sink's input is then closed) or the consumer is gone. Frames may arrive as soon as
    /// this returns; the feeding runs in a task of its own, and the receiver it returns
    /// resolves when the feeding is over.
    pub fn inlet(&self, plan: InletPlan, sink: Sink) -> tokio::sync::oneshot::Receiver<()> {
        let (fed, done) = tokio::sync::oneshot::channel();
        let n = plan.pipes.len().max(1);
        let stats: Vec<Arc<EndStats>> = plan
            .pipes
            .iter()
            .map(|(pipe, there, node)| {
                Arc::new(EndStats::new(
                    pipe,
                    &plan.graph,
                    Side::In,
                    &plan.here,
                    there,
                    node,
                ))
            })
            .collect();
        let end = Arc::new(InletEnd {
            owner: plan.owner,
            inc: rand::random::<u64>() >> 11,
            config: config(plan.window),
            sources: Mutex::new(vec![None; n]),
            inlet: Mutex::new(Inlet::new(config(plan.window), n, plan.format)),
            changed: watch::Sender::new(0),
            arrived: Notify::new(),
            stats: stats.clone(),
            format: plan.format,
            merging: n > 1,
            order_by: plan.order_by.clone(),
        });
        {
            let mut inlets = lock(&self.inner.inlets);
            for (i, (pipe, _, _)) in plan.pipes.iter().enumerate() {
                inlets.insert(pipe.clone(), (end.clone(), i));
            }
        }
        for s in &stats {
            self.keep(s);
        }
        let pipes = self.clone();
        let ids: Vec<String> = plan.pipes.iter().map(|p| p.0.clone()).collect();
        let producers: Vec<Option<plexus_store::ProcId>> = plan
            .pipes
            .iter()
            .map(|p| plexus_store::ProcId::parse(&p.1).ok())
            .collect();
        tokio::spawn(async move {
            tokio::select! {
                () = feed(&end, &sink) => {}
                () = watch_producers(
                    &end,
                    &producers,
                    pipes.inner.procs.as_ref(),
                    pipes.inner.directory.as_ref(),
                ) => {}
            }
            end.bump();
            if let Sink::Stdin { supervisor, run }
            | Sink::Channel {
                supervisor, run, ..
            } = &sink
            {
                let failures: Vec<String> = {
                    let inlet = lock(&end.inlet);
                    (0..ids.len())
                        .filter_map(|i| match inlet.receiver(i).map(|r| r.state().clone()) {
                            Some(State::Failed(why)) => Some(format!("pipe {}: {why}", ids[i])),
                            _ => None,
                        })
                        .collect()
                };
                for why in failures {
                    let _ = supervisor.note(run, plexus_proc::Stream::Stderr, &why);
                }
            }
            let _ = fed.send(());
            // Late frames still get an answer (closed or finished) for a while.
            tokio::time::sleep(KEEP_ENDED).await;
            let mut inlets = lock(&pipes.inner.inlets);
            for id in ids {
                if inlets.get(&id).is_some_and(|(e, _)| Arc::ptr_eq(e, &end)) {
                    inlets.remove(&id);
                }
            }
        });
        done
    }

    /// Lets go of the inlets of `pipes` here at once (their consumer was moved to another
    /// node): frames for them find no pipe, and their producers look for the new one.
    pub fn forget_inlets(&self, pipes: &[String]) {
        let mut inlets = lock(&self.inner.inlets);
        for pipe in pipes {
            inlets.remove(pipe);
        }
    }

    /// Starts the outlet of `plan`: `output` is the producer's stream (dropping it, when every
    /// pipe is closed, gives the producer `EPIPE`); frames go out on the authority of `owner`
    /// through `kernel`. Resolves when every pipe has ended, with the first failure.
    pub async fn outlet(
        &self,
        kernel: Kernel,
        owner: plexus_identity::PublicKey,
        plan: OutletPlan,
        output: mpsc::Receiver<Bytes>,
    ) -> Result<(), String> {
        let stats: Vec<Arc<EndStats>> = plan
            .targets
            .iter()
            .map(|t| {
                Arc::new(EndStats::new(
                    &t.pipe,
                    &plan.graph,
                    Side::Out,
                    &plan.here,
                    &t.there,
                    &t.node,
                ))
            })
            .collect();
        for s in &stats {
            self.keep(s);
        }
        let cx = kernel.context(owner, [0; 32], None, 0);
        run_outlet(&cx, plan, output, &stats, self.inner.procs.clone()).await
    }

    /// Every pipe end on this node, listed or ended within the last minute.
    pub fn ends(&self) -> Vec<Arc<EndStats>> {
        let mut ends = lock(&self.inner.ends);
        ends.retain(|e| lock(&e.ended).is_none_or(|t| t.elapsed() < KEEP_ENDED));
        ends.clone()
    }

    /// Every pipe end on this node, as `pipes` lists them.
    pub fn list(&self) -> Vec<Unit> {
        let mut ends = lock(&self.inner.ends);
        ends.retain(|e| lock(&e.ended).is_none_or(|t| t.elapsed() < KEEP_ENDED));
        ends.iter().map(|e| e.to_unit()).collect()
    }

    async fn frame(&self, cx: &Cx, c: &Cmd<'_>, verb: Verb) -> Result<Unit, Error> {
        let pipe = c
            .arg()?
            .as_str()
            .ok_or_else(|| Error::bad_argument("a pipe id is a string"))?;
        let found = lock(&self.inner.inlets).get(pipe).cloned();
        let Some((end, index)) = found else {
            return Err(Error::new(
                UNKNOWN_PIPE,
                format!("no pipe {pipe} ends on node {}", self.inner.node),
            )
            .with("pipe", pipe));
        };
        if cx.author().to_bytes() != end.owner && cx.author() != cx.kernel().admin() {
            return Err(Error::new(
                code::DENIED,
                format!("pipe {pipe} belongs to another user"),
            ));
        }
        let at = |key: &str| -> Result<u64, Error> {
            c.opt(key)
                .and_then(|u| u.as_int())
                .and_then(|i| i.to_i64())
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| Error::bad_argument(format!("{key}: a non-negative int")))
        };
        let run = at("run")?;
        let opened = lock(&end.sources).get(index).copied().flatten();
        if verb == Verb::Open {
            match opened {
                Some(r) if r > run => {
                    return Err(Error::new(
                        STALE,
                        format!("a later run of the producer has pipe {pipe}"),
                    ))
                }
                Some(r) if r == run => {}
                _ => {
                    // A new producer (or a relinking one): the stream goes on from `at`.
                    let lost = lock(&end.inlet).restart(index, end.config, at("at")?);
                    if let Some(s) = end.stats.get(index) {
                        s.lost.fetch_add(lost, Ordering::Relaxed);
                    }
                    if let Some(slot) = lock(&end.sources).get_mut(index) {
                        *slot = Some(run);
                    }
                    end.bump();
                }
            }
        } else if opened != Some(run) {
            return Err(Error::new(
                UNOPENED,
                format!("pipe {pipe} was not opened by this producer"),
            ));
        }
        let frame = match verb {
            Verb::Data => {
                let Some(Unit::Bytes(bytes)) = c.opt("bytes") else {
                    return Err(Error::bad_argument("bytes: the frame's bytes"));
                };
                Some(Frame::Data {
                    offset: at("at")?,
                    bytes: bytes.clone(),
                })
            }
            Verb::Eof => Some(Frame::Eof { offset: at("at")? }),
            Verb::Reset => Some(Frame::Reset {
                reason: c
                    .opt("reason")
                    .and_then(Unit::as_str)
                    .unwrap_or("reset")
                    .to_owned(),
            }),
            Verb::Wait | Verb::Open => None,
        };
        match frame {
            Some(frame) => {
                {
                    let mut inlet = lock(&end.inlet);
                    let Some(r) = inlet.receiver_mut(index) else {
                        return Err(Error::internal("a pipe's index is out of range"));
                    };
                    // A broken frame fails the pipe; its acknowledgement says so.
                    let _ = r.on_frame(frame);
                }
                end.arrived.notify_one();
                end.bump();
            }
            None if verb == Verb::Wait => {
                // Held until the consumer took more than the outlet knows of, or the state
                // changed: the outlet's credit opens.
                let known = at("taken")?;
                let mut changed = end.changed.subscribe();
                let moved = |end: &InletEnd| {
                    end.ack(index)
                        .is_none_or(|a| a.taken > known || a.state != AckState::Open)
                };
                let _ = tokio::time::timeout(WAIT_HOLD, async {
                    while !moved(&end) {
                        if changed.changed().await.is_err() {
                            break;
                        }
                    }
                })
                .await;
            }
            None => {}
        }
        let ack = end
            .ack(index)
            .ok_or_else(|| Error::internal("a pipe's index is out of range"))?;
        let mut reply = ack_unit(&ack, end.inc);
        if let Some(State::Failed(why)) =
            lock(&end.inlet).receiver(index).map(|r| r.state().clone())
        {
            if let Unit::Map(m) = &mut reply {
                m.insert(Unit::str("reason"), Unit::str(&why));
            }
        }
        Ok(reply)
    }
}

/// How often an inlet looks at the records of its producers.
const PRODUCER_CHECK: Duration = Duration::from_secs(1);
/// How long a pipe's other end must look gone (its process lost or ended, and its node down
/// all along) before the pipe fails. Membership can declare a busy node down while it runs;
/// it rejoins within a second, its processes and their pipes with it.
const GONE_GRACE: Duration = Duration::from_secs(5);

/// Fails the pipes whose producer's end died without ending them: the producer was lost with
/// its node (and will not be placed again), was removed, or ended on a node that is now down
/// (its outlet, which outlives the program while the pipe drains, went with the node).
/// Returns only when every pipe has ended otherwise, which `feed` sees first.
async fn watch_producers(
    end: &InletEnd,
    producers: &[Option<plexus_store::ProcId>],
    procs: &dyn ProcTable,
    directory: &dyn crate::directory::NodeDirectory,
) {
    let mut grace = Grace::new(producers.len());
    loop {
        tokio::time::sleep(PRODUCER_CHECK).await;
        for (i, producer) in producers.iter().enumerate() {
            let Some(id) = producer else { continue };
            let open = lock(&end.inlet)
                .receiver(i)
                .is_some_and(|r| *r.state() == State::Open && !r.at_end());
            if !open {
                continue;
            }
            let Ok(record) = procs.get(*id).await else {
                continue;
            };
            let view = directory.view();
            let node_down = |node: &str| view.nodes.get(node).is_some_and(|n| !n.up);
            let verdict = producer_gone(*id, record.as_ref(), node_down);
            let Some(why) = grace.judge(i, verdict, Instant::now()) else {
                continue;
            };
            if let Some(r) = lock(&end.inlet).receiver_mut(i) {
                r.fail(why);
            }
            end.arrived.notify_one();
            end.bump();
        }
    }
}

/// Why a pipe's producer looks gone, from its record and whether its node is down now.
#[derive(Debug, PartialEq, Eq)]
struct Gone {
    why: String,
    /// Only if it stays so for [`GONE_GRACE`]: the node may be back at once.
    wait: bool,
}

/// Whether the producer `id` (its record, `None` once removed) looks gone.
fn producer_gone(
    id: plexus_store::ProcId,
    record: Option<&plexus_store::ProcRecord>,
    node_down: impl Fn(&str) -> bool,
) -> Option<Gone> {
    let Some(rec) = record else {
        return Some(Gone {
            why: format!("its producer {id} was removed"),
            wait: false,
        });
    };
    let why = match &rec.state {
        // Lost with its node (not placed again) — unless the node is up: declared down while
        // it ran, it rejoined with its processes.
        ProcState::Lost
            if rec.restart == plexus_store::RestartPolicy::Never && node_down(&rec.node) =>
        {
            format!("its producer {id} was lost: its node {} is down", rec.node)
        }
        state if state.is_ended() && node_down(&rec.node) => format!(
            "its producer {id} ended ({state}) and its node {} went down before the pipe was \
             drained",
            rec.node
        ),
        _ => return None,
    };
    Some(Gone { why, wait: true })
}

/// Since when each watched end has looked gone: a node that membership declared down while
/// it ran (a busy machine that missed its pings) rejoins within a second, its processes with
/// it, so only an end that stays gone for [`GONE_GRACE`] fails its pipe. Time comes in as an
/// argument.
struct Grace {
    since: Vec<Option<Instant>>,
}

impl Grace {
    fn new(ends: usize) -> Grace {
        Grace {
            since: vec![None; ends],
        }
    }

    /// End `i` looks as `verdict` says at `now`: the reason its pipe fails, if it does now.
    fn judge(&mut self, i: usize, verdict: Option<Gone>, now: Instant) -> Option<String> {
        let slot = self.since.get_mut(i)?;
        let Some(gone) = verdict else {
            *slot = None;
            return None;
        };
        let since = *slot.get_or_insert(now);
        (!gone.wait || now.duration_since(since) >= GONE_GRACE).then_some(gone.why)
    }
}

/// Feeds an inlet's bytes into its sink until it ends.
async fn feed(end: &InletEnd, sink: &Sink) {
    let gone = sink.gone();
    tokio::pin!(gone);
    let mut order = end
        .order_by
        .as_deref()
        .map(|path| Reorder::new(path, end.config.window));
    loop {
        let arrived = end.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let piece = {
            let mut inlet = lock(&end.inlet);
            match &mut order {
                None => inlet.next_piece(),
                Some(order) => {
                    while let Some(p) = inlet.next_piece() {
                        order.hold(p);
                    }
                    order.pop(inlet.at_end())
                }
            }
        };
        match piece {
            Some(piece) => {
                let written = tokio::select! {
                    w = sink.write(&piece.bytes) => w,
                    () = &mut gone => Err("the consumer ended".to_owned()),
                };
                match written {
                    Ok(()) => {
                        lock(&end.inlet).written(&piece);
                        if let Some(s) = end.stats.get(piece.pipe) {
                            s.bytes
                                .fetch_add(piece.bytes.len() as u64, Ordering::Relaxed);
                            let records = if end.merging {
                                1
                            } else {
                                count_records(end.format, &piece.bytes)
                            };
                            s.records.fetch_add(records, Ordering::Relaxed);
                        }
                        end.bump();
                    }
                    Err(_) => {
                        lock(&end.inlet).close();
                        return;
                    }
                }
            }
            None => {
                let drained = order.as_ref().is_none_or(Reorder::is_empty);
                if drained && lock(&end.inlet).at_end() {
                    sink.close().await;
                    return;
                }
                tokio::select! {
                    () = arrived => {}
                    () = &mut gone => {
                        lock(&end.inlet).close();
                        return;
                    }
                }
            }
        }
    }
}

fn ack_unit(ack: &Ack, inc: u64) -> Unit {
    map_of([
        ("inc", int_u64(inc)),
        ("received", int_u64(ack.received)),
        ("taken", int_u64(ack.taken)),
        ("limit", int_u64(ack.limit)),
        (
            "state",
            Unit::str(match ack.state {
                AckState::Open => "open",
                AckState::Finished => "finished",
                AckState::Closed => "closed",
            }),
        ),
    ])
}

/// An acknowledgement, the inlet's incarnation and the reason of a failure.
fn ack_of(u: &Unit) -> Option<(Ack, u64, Option<String>)> {
    let m = u.as_map()?;
    let n = |k: &str| {
        m.get_str(k)
            .and_then(Unit::as_int)
            .and_then(|i| i.to_i64())
            .and_then(|i| u64::try_from(i).ok())
    };
    let state = match m.get_str("state")?.as_str()? {
        "open" => AckState::Open,
        "finished" => AckState::Finished,
        "closed" => AckState::Closed,
        _ => return None,
    };
    let reason = m
        .get_str("reason")
        .and_then(Unit::as_str)
        .map(str::to_owned);
    Some((
        Ack {
            received: n("received")?,
            taken: n("taken")?,
            limit: n("limit")?,
            state,
        },
        n("inc")?,
        reason,
    ))
}

fn frame_unit(pipe: &str, run: u64, frame: Frame) -> Unit {
    let mut m = Map::new();
    match frame {
        Frame::Data { offset, bytes } => {
            m.insert(Unit::str("data"), Unit::str(pipe));
            m.insert(Unit::str("at"), int_u64(offset));
            m.insert(Unit::str("bytes"), Unit::Bytes(bytes));
        }
        Frame::Eof { offset } => {
            m.insert(Unit::str("eof"), Unit::str(pipe));
            m.insert(Unit::str("at"), int_u64(offset));
        }
        Frame::Reset { reason } => {
            m.insert(Unit::str("reset"), Unit::str(pipe));
            m.insert(Unit::str("reason"), Unit::str(&reason));
        }
    }
    m.insert(Unit::str("run"), int_u64(run));
    Unit::Map(m)
}

fn control_unit(verb: &str, pipe: &str, run: u64, key: &str, n: u64) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str(verb), Unit::str(pipe));
    m.insert(Unit::str(key), int_u64(n));
    m.insert(Unit::str("run"), int_u64(run));
    Unit::Map(m)
}

/// Sends `msg` to `sys.pipe` on `node`, releasing what the reply cost the context's meter (an
/// outlet's context lives as long as its pipes).
async fn call(cx: &Cx, node: &str, msg: Unit) -> Result<Unit, Error> {
    let before = cx.meter().used();
    let out = cx.send(NAME, Some(node), msg).await;
    cx.meter().release(cx.meter().used().saturating_sub(before));
    Ok(out?.unwrap_or(Unit::None))
}

/// What a call of an outlet was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    Open,
    Frame,
    Wait,
}

/// Whether a failed call may succeed if tried again: the inlet is not there yet, or the node
/// cannot be reached for now (its link is reconnecting, or it died and the consumer is being
/// placed again).
fn transient(e: &Error) -> bool {
    [UNKNOWN_PIPE, code::NODE_DOWN, code::TIMEOUT, code::LIMIT].contains(&e.code())
}

/// How one pipe of an outlet stands with its inlet.
struct Link {
    /// The inlet has taken this run of the producer (`open` answered).
    opened: bool,
    /// The inlet's incarnation, once known.
    inc: Option<u64>,
    /// Data frames in flight.
    frames: usize,
    /// A call that is not a data frame (open or wait) is in flight.
    control: bool,
    /// Since when the inlet could not be reached.
    unreachable_since: Option<Instant>,
    /// No call before this.
    retry_at: Option<tokio::time::Instant>,
}

/// Where the inlet of a pipe to `consumer` is now, and whether it is worth waiting for: the
/// consumer is live, or will be placed again.
async fn consumer_node(
    procs: &dyn ProcTable,
    consumer: plexus_store::ProcId,
) -> Option<(String, Awaited)> {
    let rec = procs.get(consumer).await.ok().flatten()?;
    let awaited = match rec.state {
        ProcState::Starting | ProcState::Running | ProcState::Restarting => Awaited::Coming,
        ProcState::Lost if rec.restart != plexus_store::RestartPolicy::Never => Awaited::Coming,
        // Lost with its node, which may have been declared down while it ran: it is back
        // within a second if so.
        ProcState::Lost => Awaited::Unsure,
        _ => Awaited::Gone,
    };
    Some((rec.node, awaited))
}

/// What an outlet can expect of a consumer it cannot reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaited {
    /// It runs, starts, or will be placed again.
    Coming,
    /// Lost with its node.
    Unsure,
    /// It ended: nobody will read.
    Gone,
}

impl Awaited {
    /// Whether nobody will read, the consumer having been unreachable for `unreachable`: a
    /// consumer lost with its node only once [`GONE_GRACE`] has passed (a node declared down
    /// while it ran rejoins sooner, its consumer with it).
    fn gone_after(self, unreachable: Duration) -> bool {
        match self {
            Awaited::Coming => false,
            Awaited::Unsure => unreachable > GONE_GRACE,
            Awaited::Gone => true,
        }
    }
}

/// The outlet's loop: reads the producer, sends frames and waits, until every pipe ended.
async fn run_outlet(
    cx: &Cx,
    mut plan: OutletPlan,
    mut output: mpsc::Receiver<Bytes>,
    stats: &[Arc<EndStats>],
    procs: Arc<dyn ProcTable>,
) -> Result<(), String> {
    let n = plan.targets.len();
    let mut outlet = Outlet::new(config(plan.window), n, plan.share);
    let started = Instant::now();
    let run = plan.run;
    let mut fed: u64 = 0;
    let mut inflight: tokio::task::JoinSet<(usize, Sent, Result<Unit, Error>)> =
        tokio::task::JoinSet::new();
    let mut links: Vec<Link> = (0..n)
        .map(|_| Link {
            opened: false,
            inc: None,
            frames: 0,
            control: false,
            unreachable_since: None,
            retry_at: None,
        })
        .collect();
    let mut input_open = true;
    let mut failure: Option<String> = None;
    loop {
        let now = started.elapsed().as_millis() as u64;
        let clock = tokio::time::Instant::now();
        for (i, link) in links.iter_mut().enumerate() {
            if link.retry_at.is_some_and(|t| t > clock) {
                continue;
            }
            link.retry_at = None;
            let sender = &mut outlet.senders()[i];
            let target = &plan.targets[i];
            if *sender.state() != State::Open && !matches!(sender.state(), State::Failed(_)) {
                continue;
            }
            if !link.opened {
                if !link.control && *sender.state() == State::Open {
                    link.control = true;
                    // From what the consumer took: the rest is sent (again).
                    sender.relink();
                    let msg = control_unit("open", &target.pipe, run, "at", sender.taken());
                    let (node, cx) = (target.node.clone(), cx.clone());
                    inflight.spawn(async move { (i, Sent::Open, call(&cx, &node, msg).await) });
                }
                continue;
            }
            while link.frames < MAX_INFLIGHT {
                let Some(frame) = sender.poll_transmit(now) else {
                    break;
                };
                link.frames += 1;
                let msg = frame_unit(&target.pipe, run, frame);
                let (node, cx) = (target.node.clone(), cx.clone());
                inflight.spawn(async move { (i, Sent::Frame, call(&cx, &node, msg).await) });
            }
            if link.frames == 0 && !link.control && *sender.state() == State::Open {
                link.control = true;
                let msg = control_unit("wait", &target.pipe, run, "taken", sender.taken());
                let (node, cx) = (target.node.clone(), cx.clone());
                inflight.spawn(async move { (i, Sent::Wait, call(&cx, &node, msg).await) });
            }
        }
        for (i, s) in stats.iter().enumerate() {
            let sender = &outlet.senders()[i];
            s.bytes.store(sender.taken(), Ordering::Relaxed);
            s.backlog.store(sender.buffered(), Ordering::Relaxed);
            s.set_state(sender.state());
        }
        if outlet.is_closed() && input_open {
            // Every consumer is gone: the producer gets EPIPE at its next write.
            input_open = false;
            output.close();
            while output.try_recv().is_ok() {}
        }
        if outlet.is_done() && inflight.is_empty() {
            break;
        }
        let pace = plan.max_rate.and_then(|rate| {
            let due = Duration::from_secs_f64(fed as f64 / rate.max(1) as f64);
            (due > started.elapsed()).then(|| tokio::time::Instant::from_std(started + due))
        });
        let wants = input_open && outlet.wants_input() && pace.is_none();
        let next_retry = links.iter().filter_map(|l| l.retry_at).min();
        tokio::select! {
            chunk = output.recv(), if wants => {
                let taken = match chunk {
                    Some(bytes) => {
                        fed += bytes.len() as u64;
                        outlet.input(bytes)
                    }
                    None => {
                        input_open = false;
                        outlet.end_input()
                    }
                };
                if let Err(e) = taken {
                    failure.get_or_insert(format!("the producer's output: {e}"));
                    for s in outlet.senders() {
                        s.reset(e.to_string());
                    }
                }
            },
            Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                let Ok((i, sent, result)) = joined else { continue };
                let link = &mut links[i];
                match sent {
                    Sent::Frame => link.frames -= 1,
                    Sent::Open | Sent::Wait => link.control = false,
                }
                let now = started.elapsed().as_millis() as u64;
                let target = &mut plan.targets[i];
                match result.map(|u| ack_of(&u)) {
                    Ok(Some((ack, inc, reason))) => {
                        link.unreachable_since = None;
                        if sent == Sent::Open {
                            link.opened = true;
                        }
                        if link.inc.is_some_and(|known| known != inc) {
                            // The consumer's end was made again: open it from what the
                            // consumer took.
                            link.opened = false;
                            link.inc = Some(inc);
                            continue;
                        }
                        link.inc = Some(inc);
                        let sender = &mut outlet.senders()[i];
                        if let Err(e) = sender.on_ack(&ack, now) {
                            sender.reset(e.to_string());
                        } else if let (AckState::Closed, Some(why)) = (ack.state, reason) {
                            failure.get_or_insert(why);
                        }
                        outlet.pump();
                    }
                    Ok(None) => {
                        outlet.senders()[i].reset("a malformed acknowledgement");
                    }
                    Err(e) if e.code() == UNOPENED => {
                        link.opened = false;
                    }
                    Err(e) if transient(&e) => {
                        let since = *link.unreachable_since.get_or_insert_with(Instant::now);
                        let where_now = match target.consumer {
                            Some(id) => consumer_node(procs.as_ref(), id).await,
                            None => None,
                        };
                        let deadline = match &where_now {
                            Some((_, Awaited::Coming | Awaited::Unsure)) => RELINK_DEADLINE,
                            _ => REACH_DEADLINE,
                        };
                        if let Some((node, _)) = &where_now {
                            if *node != target.node {
                                // Placed again elsewhere: its new end is opened there.
                                target.node = node.clone();
                                *lock(&stats[i].there_node) = node.clone();
                                link.opened = false;
                            }
                        }
                        let gone = where_now
                            .as_ref()
                            .is_some_and(|(_, a)| a.gone_after(since.elapsed()));
                        if gone {
                            // The consumer ended, or was lost with its node (which stayed
                            // down): nobody will read.
                            let why = format!(
                                "pipe {} to {} on node {}: its consumer is gone ({})",
                                target.pipe,
                                target.there,
                                target.node,
                                e.message()
                            );
                            failure.get_or_insert(why.clone());
                            outlet.senders()[i].reset(why);
                        } else if since.elapsed() > deadline {
                            let why = format!(
                                "pipe {} to node {}: {}",
                                target.pipe,
                                target.node,
                                e.message()
                            );
                            failure.get_or_insert(why.clone());
                            outlet.senders()[i].reset(why);
                        } else {
                            outlet.senders()[i].on_lost();
                            link.retry_at = Some(tokio::time::Instant::now() + REACH_RETRY);
                        }
                    }
                    Err(e) => {
                        let why = format!(
                            "pipe {} to node {}: {}",
                            target.pipe,
                            target.node,
                            e.message()
                        );
                        failure.get_or_insert(why.clone());
                        outlet.senders()[i].reset(why);
                    }
                }
            },
            () = async {
                match pace.into_iter().chain(next_retry).min() {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
    for (i, s) in stats.iter().enumerate() {
        s.set_state(outlet.senders()[i].state());
        s.backlog.store(0, Ordering::Relaxed);
    }
    match failure {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// The `sys.pipe` service of a node.
pub struct SysPipe {
    pipes: Pipes,
}

impl SysPipe {
    /// The service over this node's pipe ends.
    pub fn new(pipes: Pipes) -> Arc<SysPipe> {
        Arc::new(SysPipe { pipes })
    }
}

/// The commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Open,
    Data,
    Eof,
    Reset,
    Wait,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Frame(Verb),
    List,
}

impl Service for SysPipe {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    /// Frames bytes as they are: nothing in them is evaluated.
    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    /// A pipe's calls are bounded by its credit (data frames) and one each (waits); they must
    /// not queue behind other pipes' waits.
    fn queues(&self, _msg: &Unit) -> bool {
        false
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, c) = TABLE.lookup(&msg)?;
            match entry.run {
                Op::Frame(verb) => self.pipes.frame(cx, &c, verb).await.map(Some),
                Op::List => Ok(Some(Unit::List(self.pipes.list()))),
            }
        })
    }
}

static TABLE: LazyLock<Table<Op>> = LazyLock::new(|| {
    Table::new(
        NAME,
        "Pipes between processes on any nodes: the frames of the pipes whose consumer is on \
         this node, and the list of this node's pipe ends. Processes get pipes from sys.proc \
         (a pipeline or graph); these commands are the pipes' own protocol",
        vec![],
        vec![
            Entry::new(
                "pipes",
                "This node's pipe ends → [{pipe graph side here there there_node bytes records \
                 bytes_s records_s backlog lost state age_ms}…]",
                &["pipes"],
                Arg::None,
                Op::List,
            ),
            Entry::new(
                "open",
                "Internal: a producer's run takes the pipe, its stream going on from at → \
                 {inc received taken limit state}",
                &["{open:PIPE at:N run:R}"],
                Arg::Required,
                Op::Frame(Verb::Open),
            ),
            Entry::new(
                "data",
                "Internal: bytes of a pipe from offset at → {received taken limit state}",
                &["{data:PIPE at:N bytes:x\"…\" run:R}"],
                Arg::Required,
                Op::Frame(Verb::Data),
            ),
            Entry::new(
                "eof",
                "Internal: the pipe's stream ends after at bytes → {received taken limit state}",
                &["{eof:PIPE at:N run:R}"],
                Arg::Required,
                Op::Frame(Verb::Eof),
            ),
            Entry::new(
                "reset",
                "Internal: the producer's end gave up → {received taken limit state}",
                &["{reset:PIPE reason:\"…\" run:R}"],
                Arg::Required,
                Op::Frame(Verb::Reset),
            ),
            Entry::new(
                "wait",
                "Internal: answers once the consumer has taken more than taken bytes or the \
                 pipe's state changed (or after 20 s) → {received taken limit state}",
                &["{wait:PIPE taken:N run:R}"],
                Arg::Required,
                Op::Frame(Verb::Wait),
            ),
        ],
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: ProcState, restart: plexus_store::RestartPolicy) -> plexus_store::ProcRecord {
        let mut r = plexus_store::ProcRecord::new(
            plexus_store::ProcId::from_random([7, 0, 0, 0]),
            [1; 32],
            "n1",
            vec!["seq".into()],
        );
        r.state = state;
        r.restart = restart;
        r
    }

    /// A producer whose node was declared down while it ran (its record says lost, its node
    /// is up again) is not gone: failing its pipe gave the consumer an early end of file and
    /// lost the rest of the stream, with every process exiting 0.
    #[test]
    fn a_lost_producer_is_gone_only_while_its_node_is_down() {
        use plexus_store::RestartPolicy::{Always, Never};
        let rec = record(ProcState::Lost, Never);
        let id = rec.id;
        let down = |_: &str| true;
        let up = |_: &str| false;
        assert_eq!(producer_gone(id, Some(&rec), up), None);
        assert!(producer_gone(id, Some(&rec), down).is_some_and(|g| g.wait));
        // Placed again elsewhere: its pipe is opened from there.
        assert_eq!(
            producer_gone(id, Some(&record(ProcState::Lost, Always)), down),
            None
        );
        // Ended: only a node that went down before the pipe drained loses its bytes.
        let ended = record(ProcState::Exited(0), Never);
        assert_eq!(producer_gone(id, Some(&ended), up), None);
        assert!(producer_gone(id, Some(&ended), down).is_some_and(|g| g.wait));
        assert_eq!(
            producer_gone(id, Some(&record(ProcState::Running, Never)), down),
            None
        );
        // Removed: gone at once.
        assert!(producer_gone(id, None, up).is_some_and(|g| !g.wait));
    }

    #[test]
    fn an_outlet_gives_up_on_a_lost_consumer_only_after_the_grace() {
        let just = Duration::from_millis(1);
        assert!(!Awaited::Coming.gone_after(GONE_GRACE * 10));
        assert!(!Awaited::Unsure.gone_after(just));
        assert!(!Awaited::Unsure.gone_after(GONE_GRACE));
        assert!(Awaited::Unsure.gone_after(GONE_GRACE + just));
        assert!(Awaited::Gone.gone_after(Duration::ZERO));
    }

    #[test]
    fn a_pipe_fails_once_its_end_stayed_gone_for_the_grace() {
        let gone = |wait| {
            Some(Gone {
                why: "gone".into(),
                wait,
            })
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let grace = GONE_GRACE.as_millis() as u64;
        let mut g = Grace::new(2);
        assert_eq!(g.judge(0, gone(true), at(0)), None);
        assert_eq!(g.judge(0, gone(true), at(grace - 1)), None);
        // Back before the grace ran out: the clock starts again.
        assert_eq!(g.judge(0, None, at(grace - 1)), None);
        assert_eq!(g.judge(0, gone(true), at(grace)), None);
        assert_eq!(g.judge(0, gone(true), at(2 * grace - 1)), None);
        assert_eq!(g.judge(0, gone(true), at(2 * grace)), Some("gone".into()));
        // Each end has its own clock; one that need not wait fails at once.
        assert_eq!(g.judge(1, gone(false), at(0)), Some("gone".into()));
        assert_eq!(g.judge(2, gone(false), at(0)), None, "no such end");
    }

    #[test]
    fn newlines_are_counted_across_runs_of_any_length() {
        assert_eq!(newlines(b""), 0);
        assert_eq!(newlines(b"a\nb\n\n"), 3);
        for len in [1, 254, 255, 256, 510, 511, 65_536, 65_537] {
            let all = vec![b'\n'; len];
            assert_eq!(newlines(&all), len as u64);
            let none = vec![b'x'; len];
            assert_eq!(newlines(&none), 0);
            let every_100: Vec<u8> = (0..len)
                .map(|i| if i % 100 == 99 { b'\n' } else { b'x' })
                .collect();
            assert_eq!(newlines(&every_100), (len / 100) as u64);
        }
        assert_eq!(count_records(Format::Raw, b"x\ny\n"), 2);
        assert_eq!(count_records(Format::Json, b"{}\n{}\n"), 0);
    }
}
