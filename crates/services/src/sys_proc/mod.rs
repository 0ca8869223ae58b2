//! `sys.proc`: programs run on the nodes — start, list, signal, logs, stdin, wait, remove.
//!
//! The service ties four parts together: the process table ([`ProcTable`], a node's database
//! or the cluster's replicated state) holds one record per process; the node directory
//! ([`NodeDirectory`]) and [`plexus_sched::place`] choose a node; this node's
//! [`Supervisor`] runs the programs placed here; the kernel's router carries commands about a
//! process to the node in its record (`@sys.proc:NODE`), terminal requests included, so the
//! output of a program on n2 reaches the terminal of a user on n1.
//!
//! The node that runs a process keeps its record up to date: `running` with its start time once
//! spawned, then `exited`/`killed` with the end time, `restarting` while its restart policy
//! waits ([`RestartTracker`]), `failed-to-start` with the reason when it could not start, and
//! `lost` for the processes of a previous run of the node. The unit API is in
//! `docs/processes.md`.
//!
//! **One copy.** Membership can declare a busy node down while it runs; the leader then moves
//! its `on-failure`/`always` processes elsewhere and marks the rest lost. When the node is
//! heard again, [`Inner::reconcile`] makes it agree with the table: a process the table now
//! places on another node is stopped here (its pipes let go of, so their other ends find the
//! new copy), and a process marked lost that still runs here is running again. The node that
//! follows a process writes its record only while the record names that node.
//!
//! **Cluster paths.** A program, argument or working directory under [`CLUSTER_ROOT`]
//! (`/fs/code/x.py`) names a file of the cluster's tree: the node running the process gives
//! it as the same path under the tree's mount for the process's owner ([`ClusterFiles`]),
//! and [`SysProc::acting_for`] tells that mount which user a process on this machine acts
//! for.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use plexus_identity::PublicKey;
use plexus_kernel::{
    code, Arg, BoxFuture, Cmd, Cx, Entry, Error, Example, Help, Outcome, Service, Table,
};
use plexus_proc::{
    Attached, Enforcement, ExitStatus, Limits, ProcError as SupError, Sig, Spec, Stream, Supervisor,
};
use plexus_protocol::{OutputStream, TermRequest};
use plexus_sched::{
    place, ClusterView, Exit, ExitEvent, Placement as Chosen, Refusal, Request, Resources,
    RestartDecision, RestartTracker, StopReason, TagExpr,
};
use plexus_store::{
    put_with_fresh_id, Enforced, LiveFigures, Placement, ProcError, ProcId, ProcRecord, ProcState,
    ProcTable, PsTable, RestartPolicy,
};
use plexus_units::{Dec, Map, Unit};

use crate::directory::NodeDirectory;
use crate::forms::{int_u64, map_of};
use crate::sys_pipe::{OutletPlan, Pipes, Sink, SysPipe, Target};

mod channels;
pub mod checkpoint;
mod graph;
pub use channels::InputWrite;
pub use graph::pipefail;

const NAME: &str = "sys.proc";

/// How long `ps` waits for a node's live figures before showing `-`.
pub const STATS_DEADLINE: Duration = Duration::from_millis(700);
/// Default grace between TERM and KILL for `kill` (ms).
pub const DEFAULT_GRACE_MS: u64 = 5000;
/// How long a stopping node tries to mark its processes lost.
const MARK_LOST_DEADLINE: Duration = Duration::from_secs(2);
/// How many runs of one process a node keeps, with their logs: the current one and those
/// before it. `logs` reads them all.
pub const KEPT_RUNS: usize = 5;
/// How often a node forgets ended runs it need not keep and deletes their logs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often a node compares the processes it runs with the table ([`Inner::reconcile`]).
const RECONCILE_EVERY: Duration = Duration::from_secs(1);
/// How long a node waits for another to send a program copied with `--copy`.
const FETCH_DEADLINE: Duration = Duration::from_secs(30);
/// How long an attached run waits for its record to show the end.
const SETTLE_DEADLINE: Duration = Duration::from_secs(2);
/// How often `wait` looks at the table of a process it waits for.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// How many times a record update is retried when another update raced it.
const UPDATE_TRIES: usize = 8;
/// Most runs of one process kept apart on this node (`ID`, `ID-1`, `ID-2`…).
const MAX_RUN_SUFFIX: u32 = 100_000;

/// The prefix of cluster paths in a process's program, arguments and working directory.
pub const CLUSTER_ROOT: &str = "/fs";
/// The variable that gives each process the local directory of its owner's view of the tree.
pub const CLUSTER_ROOT_ENV: &str = "PLX_FS";
/// The variable that gives each process its id (and tells the node whose process it is).
pub const PROCESS_ENV: &str = "PLX_PROCESS";

/// Where a node keeps the cluster's tree mounted for the processes it runs.
pub trait ClusterFiles: Send + Sync + 'static {
    /// The local directory where the tree shows as `user` sees it (mounted now if it is not
    /// yet); the error is why there is none, in words for the user. May block.
    fn root_for(&self, user: &PublicKey) -> Result<PathBuf, String>;
}

/// Whom a process on this machine acts for, as a node's mount of the tree sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acting {
    /// A process this node runs for a user, or a process it started.
    User([u8; 32]),
    /// The node itself, or a program it is starting (not yet known by its pid).
    Node,
    /// Any other process.
    Nobody,
}

/// The process service of one node.
pub struct SysProc {
    inner: Arc<Inner>,
}

struct Inner {
    procs: Arc<dyn ProcTable>,
    directory: Arc<dyn NodeDirectory>,
    supervisor: Arc<Supervisor>,
    /// The supervisor id of each process's current run on this node (a restart is a new run,
    /// so the previous run's logs stay readable until it is removed).
    runs: Mutex<HashMap<ProcId, String>>,
    /// Processes a user killed: their restart policy no longer applies.
    killed: Mutex<HashSet<ProcId>>,
    /// Processes the table moved to another node while they ran here: stopped here, their
    /// ends not recorded.
    superseded: Mutex<HashSet<ProcId>>,
    /// The outlets of each process's runs here, to drop them (without an end of stream)
    /// when the process is superseded.
    outlets: Mutex<HashMap<ProcId, Vec<tokio::task::AbortHandle>>>,
    /// The task keeping each checkpointed process's state, which the next run here waits
    /// for (its last copy is the newest state).
    checkpoints: Mutex<HashMap<ProcId, tokio::task::JoinHandle<()>>>,
    /// Set once the node stops: ends are not restarts, and records become `lost`.
    stopping: AtomicBool,
    /// Set while the records of a previous run are being marked lost: new processes wait,
    /// so that none of theirs is taken for a leftover.
    recovering: tokio::sync::watch::Sender<bool>,
    /// The owner of each process this node runs or is starting.
    owners: Mutex<HashMap<ProcId, [u8; 32]>>,
    /// Where the cluster's tree is mounted for processes, once the node has a mount.
    files: Mutex<Option<Arc<dyn ClusterFiles>>>,
    /// This node's pipe ends.
    pipes: Pipes,
    /// The kernel, once a call has come: the outlets of processes restarted here send their
    /// frames through it.
    kernel: Mutex<Option<plexus_kernel::Kernel>>,
}

/// What `/metrics` shows of one program this node runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramFigures {
    /// The process's id.
    pub id: String,
    /// CPU use over the last sampling interval, in cores.
    pub cpu_cores: f64,
    /// Resident memory.
    pub rss_bytes: u64,
}

impl SysProc {
    /// The programs running on this node, with their CPU and memory.
    pub fn programs(&self) -> Vec<ProgramFigures> {
        let runs: Vec<(ProcId, String)> = match self.inner.runs.lock() {
            Ok(runs) => runs.iter().map(|(id, run)| (*id, run.clone())).collect(),
            Err(_) => return Vec::new(),
        };
        let mut figures: Vec<ProgramFigures> = runs
            .into_iter()
            .filter(|(_, run)| {
                self.inner
                    .supervisor
                    .info(run)
                    .is_ok_and(|i| i.status.is_none())
            })
            .filter_map(|(id, run)| {
                let stats = self.inner.supervisor.stats(&run).ok()?;
                Some(ProgramFigures {
                    id: id.to_string(),
                    cpu_cores: stats.cpu_percent / 100.0,
                    rss_bytes: stats.rss_bytes,
                })
            })
            .collect();
        figures.sort_by(|a, b| a.id.cmp(&b.id));
        figures
    }

    /// This node's pipe ends.
    pub fn pipe_ends(&self) -> Vec<Arc<crate::sys_pipe::EndStats>> {
        self.inner.pipes.ends()
    }

    /// The service over the process table `procs`, placing on the nodes of `directory` and
    /// running programs with this node's `supervisor`.
    pub fn new(
        procs: Arc<dyn ProcTable>,
        directory: Arc<dyn NodeDirectory>,
        supervisor: Arc<Supervisor>,
    ) -> Arc<SysProc> {
        let pipes = Pipes::new(&directory.local(), procs.clone(), directory.clone());
        Arc::new(SysProc {
            inner: Arc::new(Inner {
                pipes,
                kernel: Mutex::default(),
                procs,
                directory,
                supervisor,
                runs: Mutex::default(),
                killed: Mutex::default(),
                superseded: Mutex::default(),
                outlets: Mutex::default(),
                checkpoints: Mutex::default(),
                stopping: AtomicBool::new(false),
                recovering: tokio::sync::watch::Sender::new(false),
                owners: Mutex::default(),
                files: Mutex::default(),
            }),
        })
    }

    /// The `sys.pipe` service over this node's pipe ends (the node registers it).
    pub fn pipe_service(&self) -> Arc<SysPipe> {
        SysPipe::new(self.inner.pipes.clone())
    }

    /// Gives processes that name cluster paths the tree through `files`.
    pub fn set_cluster_files(&self, files: Arc<dyn ClusterFiles>) {
        if let Ok(mut slot) = self.inner.files.lock() {
            *slot = Some(files);
        }
    }

    /// Whom the process `pid` (a process or a thread, on this machine) acts for. A program
    /// this node started is its child, with its process id in [`PROCESS_ENV`]: the process and
    /// its descendants act for that process's owner. A child without it is one the node is
    /// starting (before its program runs): the node. The node itself is the node; any other
    /// process, nobody.
    pub fn acting_for(&self, pid: u32) -> Acting {
        let node = std::process::id();
        let line = plexus_proc::ancestry(pid);
        let Some(at) = line.iter().position(|&p| p == node) else {
            return Acting::Nobody;
        };
        let Some(child) = at.checked_sub(1).and_then(|i| line.get(i)) else {
            return Acting::Node;
        };
        let Some(id) = plexus_proc::environment_value(*child, PROCESS_ENV) else {
            return Acting::Node;
        };
        let owner = ProcId::parse(&id)
            .ok()
            .and_then(|id| self.inner.owners.lock().ok()?.get(&id).copied());
        match owner {
            Some(owner) => Acting::User(owner),
            None => Acting::Nobody,
        }
    }

    /// Marks `lost` every live record placed on this node, noting `why`: a node that
    /// (re)starts runs none of them (a previous run's leftovers were killed by
    /// [`Supervisor::start`], whose lost ids are among these), and a stopping one has stopped
    /// them. Returns how many were marked.
    async fn mark_lost(&self, why: &str) -> Result<usize, ProcError> {
        let local = self.inner.directory.local();
        let note = plexus_store::procs::clip_reason(&format!("lost: {why}"));
        let mut marked = 0;
        for rec in self.inner.procs.list().await? {
            if rec.node == local && !rec.state.is_ended() && rec.state != ProcState::Lost {
                self.inner
                    .update(rec.id, |r| {
                        if !r.state.is_ended() {
                            r.state = ProcState::Lost;
                            r.note = Some(note.clone());
                        }
                    })
                    .await?;
                marked += 1;
            }
        }
        Ok(marked)
    }

    /// [`SysProc::mark_lost`] in the background (a cluster's table answers once the
    /// cluster does); processes started meanwhile wait for it. Call it inside a tokio runtime.
    pub fn recover_in_background(self: &Arc<Self>) {
        self.inner.recovering.send_replace(true);
        let me = self.clone();
        tokio::spawn(async move {
            let local = me.inner.directory.local();
            let why = format!("its node {local} started again (it had been stopped or killed)");
            match me.mark_lost(&why).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "processes of a previous run marked lost"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot mark the processes of a previous run lost")
                }
            }
            me.inner.recovering.send_replace(false);
            let inner = me.inner.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RECONCILE_EVERY).await;
                    if inner.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    Box::pin(inner.reconcile()).await;
                }
            });
            // From now on, what the table no longer has is forgotten here.
            let mut doomed = HashSet::new();
            loop {
                doomed = me.inner.sweep(&doomed).await;
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        });
    }

    /// One sweep of what this node need not keep (run each minute once the node has
    /// recovered): ended runs of processes the table no longer has, runs of a process beyond
    /// its newest [`KEPT_RUNS`], and logs a previous run of the node left. A run is forgotten
    /// only if the sweep before found it forgettable too (`doomed`); gives the runs found
    /// forgettable now, for the next sweep.
    pub async fn sweep(&self, doomed: &HashSet<String>) -> HashSet<String> {
        self.inner.sweep(doomed).await
    }

    /// Stops every process of this node (TERM, `grace`, KILL) and marks their records `lost`:
    /// what the node does when it stops, so that no program outlives it.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.supervisor.shutdown(grace).await;
        // A cluster that lost its quorum cannot take the change: the next start marks them.
        let why = format!("its node {} stopped", self.inner.directory.local());
        match tokio::time::timeout(MARK_LOST_DEADLINE, self.mark_lost(&why)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not mark this node's processes lost"),
            Err(_) => tracing::warn!("marking this node's processes lost took too long"),
        }
    }
}

impl Service for SysProc {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    /// Attached runs, waits and followed logs hold their call as long as a program runs; a
    /// `kill` or `stdin` for that program must not queue behind them.
    fn queues(&self, _msg: &Unit) -> bool {
        false
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, c) = TABLE.lookup(&msg)?;
            let inner = &self.inner;
            match entry.run {
                Op::Run => inner.run(cx, &c).await,
                Op::Ps => inner.ps(cx, &c).await.map(Some),
                Op::Kill => inner.kill(cx, &c, &msg).await.map(Some),
                Op::Logs => inner.logs(cx, &c, &msg).await,
                Op::Wait => inner.wait(cx, &c).await.map(Some),
                Op::Rm => inner.rm(cx, &c, &msg).await.map(Some),
                Op::Stdin => inner.stdin(cx, &c, &msg).await.map(|()| None),
                Op::Explain => inner.explain(cx, &c).await.map(Some),
                Op::Start => inner.start(cx, &c).await.map(Some),
                Op::Stats => inner.stats(&c).map(Some),
                Op::Cache => inner.cache(&c).await.map(Some),
                Op::Program => inner.program(cx, &c).await.map(Some),
                Op::Graph => inner.graph(cx, &c).await,
                Op::Graphs => inner.graphs(cx, &c).await.map(Some),
                Op::Pipes => inner.pipes(cx, &c).await.map(Some),
            }
        })
    }
}

/// The commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Run,
    Ps,
    Kill,
    Logs,
    Wait,
    Rm,
    Stdin,
    Explain,
    Start,
    Stats,
    Cache,
    Program,
    Graph,
    Graphs,
    Pipes,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn table_error(e: ProcError) -> Error {
    Error::new(e.code(), e.to_string())
}

/// A supervisor failure as a kernel error (`not.found`, `proc.ended`, `proc.running`, …).
fn sup_error(node: &str, e: SupError) -> Error {
    let code = match &e {
        SupError::Unknown(_) => code::NOT_FOUND,
        SupError::Ended(_) => "proc.ended",
        SupError::Running(_) => "proc.running",
        SupError::StdinClosed(_) => "proc.stdin.closed",
        SupError::TooManyReaders(_) => code::LIMIT,
        SupError::Stdin { .. } | SupError::Signal { .. } | SupError::Log(_) => code::INTERNAL,
    };
    Error::new(code, format!("node {node}: {e}"))
}

/// The state in one word, as `ps` and the replies give it (`code`/`signal` say the rest).
pub fn state_word(state: &ProcState) -> &'static str {
    match state {
        ProcState::Starting => "starting",
        ProcState::Running => "running",
        ProcState::Exited(_) => "exited",
        ProcState::Killed(_) => "killed",
        ProcState::FailedToStart(_) => "failed",
        ProcState::Lost => "lost",
        ProcState::Restarting => "restarting",
        ProcState::CrashLooping => "crash-looping",
    }
}

/// `{id node state code signal}` of an ended (or lost) process: the reply of an attached
/// `run` and of `wait`.
fn end_reply(rec: &ProcRecord) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("id"), Unit::str(rec.id.as_str()));
    m.insert(Unit::str("node"), Unit::str(&rec.node));
    m.insert(Unit::str("state"), Unit::str(state_word(&rec.state)));
    if let ProcState::Killed(signal) = rec.state {
        m.insert(Unit::str("signal"), Unit::int(i64::from(signal)));
    }
    if let Some(code) = rec.exit_status() {
        m.insert(Unit::str("code"), Unit::int(i64::from(code)));
    }
    if let ProcState::FailedToStart(why) = &rec.state {
        m.insert(Unit::str("reason"), Unit::str(why));
    }
    Unit::Map(m)
}

fn status_reply(id: ProcId, node: &str, status: ExitStatus) -> Unit {
    let (state, signal) = match status {
        ExitStatus::Exited(_) => ("exited", None),
        ExitStatus::Killed(s) => ("killed", Some(s)),
    };
    let mut m = Map::new();
    m.insert(Unit::str("id"), Unit::str(id.as_str()));
    m.insert(Unit::str("node"), Unit::str(node));
    m.insert(Unit::str("state"), Unit::str(state));
    if let Some(s) = signal {
        m.insert(Unit::str("signal"), Unit::int(i64::from(s)));
    }
    m.insert(Unit::str("code"), Unit::int(i64::from(status.shell_code())));
    Unit::Map(m)
}

fn enforced(e: Enforcement) -> Enforced {
    match e {
        Enforcement::CgroupV2 | Enforcement::CgroupV1 => Enforced::Cgroup,
        Enforcement::Rlimits => Enforced::Rlimit,
        Enforcement::None => Enforced::None,
    }
}

fn string_of(u: &Unit, what: &str) -> Result<String, Error> {
    u.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::bad_argument(format!("{what} must be a string")))
}

/// A string or a list of strings.
fn strings(u: &Unit, what: &str) -> Result<Vec<String>, Error> {
    match u {
        Unit::Str(s) => Ok(vec![s.to_string()]),
        Unit::List(l) => l.iter().map(|x| string_of(x, what)).collect(),
        _ => Err(Error::bad_argument(format!(
            "{what} must be a string or a list of strings"
        ))),
    }
}

/// An amount written as an int, a decimal or a string.
fn amount_text(u: &Unit, what: &str) -> Result<String, Error> {
    match u {
        Unit::Str(s) => Ok(s.to_string()),
        Unit::Int(_) | Unit::Dec(_) => Ok(plexus_units::to_text(u)),
        _ => Err(Error::bad_argument(format!(
            "{what} must be a number or a string"
        ))),
    }
}

/// What a `run` asks for, read from its message.
struct RunRequest {
    record: ProcRecord,
    request: Request,
    attach: bool,
    everywhere: bool,
    dry: bool,
    copy: Option<Vec<u8>>,
}

/// What a start starts.
enum Starting {
    /// A record in the table, placed on the starting node: named runs, `--everywhere`
    /// copies, and processes placed again.
    Placed(ProcId),
    /// A record not in the table yet, placed on the starting node: it gets its id there and
    /// is put once the program runs, so no table write is on the path to the first byte.
    New(Box<ProcRecord>),
}

fn read_run(cx: &Cx, c: &Cmd<'_>, local: &str) -> Result<RunRequest, Error> {
    // Numbers are arguments too: `{run:[sleep 30]}`.
    let command = match c.arg()? {
        Unit::List(l) => l
            .iter()
            .map(|a| match a {
                Unit::Int(_) | Unit::Dec(_) => Ok(plexus_units::to_text(a)),
                other => string_of(other, "each of run's program and arguments"),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => strings(other, "run's program and arguments")?,
    };
    if command.len() > plexus_store::procs::MAX_ARGS {
        return Err(Error::new(
            code::LIMIT,
            format!(
                "a command has at most {} arguments, not {}",
                plexus_store::procs::MAX_ARGS,
                command.len()
            ),
        ));
    }
    let owner = cx.author().to_bytes();
    let mut record = ProcRecord::new(ProcId::from_random([0; 4]), owner, local, command);
    let mut request = Request::default();
    if let Some(on) = c.opt("on") {
        let on = string_of(on, "on")?;
        record.placement.on = Some(on.clone());
        request.on = Some(on);
    }
    if let Some(tags) = c.opt("tag") {
        for text in strings(tags, "tag")? {
            let expr = TagExpr::parse(&text)
                .map_err(|e| Error::bad_argument(format!("tag {text:?}: {e}")))?;
            request.tags.push(expr);
            record.placement.tags.push(text);
        }
    }
    if let Some(cpu) = c.opt("cpu") {
        let millis = plexus_sched::parse_cpu(&amount_text(cpu, "cpu")?)
            .map_err(|e| Error::bad_argument(format!("cpu: {e}")))?;
        record.placement.cpu_millis = Some(millis);
        request.reserve.cpu_millis = millis;
    }
    if let Some(mem) = c.opt("mem") {
        let bytes = plexus_sched::parse_mem(&amount_text(mem, "mem")?)
            .map_err(|e| Error::bad_argument(format!("mem: {e}")))?;
        record.placement.mem_bytes = Some(bytes);
        request.reserve.mem_bytes = bytes;
    }
    if let Some(policy) = c.opt("restart") {
        record.restart = string_of(policy, "restart")?
            .parse::<RestartPolicy>()
            .map_err(|e| Error::bad_argument(e.to_string()))?;
    }
    if let Some(name) = c.opt("name") {
        record.name = Some(string_of(name, "name")?);
    }
    if let Some(env) = c.opt("env") {
        let m = env
            .as_map()
            .ok_or_else(|| Error::bad_argument("env must be a map {KEY:value …}"))?;
        for (k, v) in m.iter() {
            record
                .env
                .push((string_of(k, "an env key")?, string_of(v, "an env value")?));
        }
    }
    if let Some(cwd) = c.opt("cwd") {
        record.cwd = Some(string_of(cwd, "cwd")?);
    }
    let copy = match c.opt("copy") {
        None => None,
        Some(Unit::Bytes(b)) => Some(b.to_vec()),
        Some(_) => {
            return Err(Error::bad_argument(
                "copy must be the program file's bytes x\"…\"",
            ))
        }
    };
    let everywhere = c.opt_bool("everywhere", false)?;
    let attach = c.opt_bool("attach", false)?;
    if everywhere && (attach || record.name.is_some() || record.placement.on.is_some()) {
        return Err(Error::bad_argument(
            "everywhere starts one copy on each eligible node: it takes no attach, name or on",
        ));
    }
    // Everything the table would refuse is refused before anything is placed.
    record.validate().map_err(table_error)?;
    Ok(RunRequest {
        record,
        request,
        attach,
        everywhere,
        dry: c.opt_bool("dry", false)?,
        copy,
    })
}

fn refusal_error(r: Refusal) -> Error {
    let code = match &r {
        Refusal::UnknownNode { .. } => code::UNKNOWN_NODE,
        Refusal::UnknownTag { .. } => code::BAD_ARGUMENT,
        Refusal::NoNodes | Refusal::NoFit { .. } => code::LIMIT,
    };
    Error::new(code, r.to_string())
}

fn placement_reply(p: &Chosen) -> Unit {
    map_of([
        ("node", Unit::str(&p.node)),
        ("text", Unit::from(p.to_string())),
    ])
}

fn reserve_of(p: &Placement) -> Resources {
    Resources::new(p.cpu_millis.unwrap_or(0), p.mem_bytes.unwrap_or(0))
}

fn request_of(p: &Placement) -> Result<Request, Error> {
    let mut request = Request {
        on: p.on.clone(),
        reserve: reserve_of(p),
        ..Request::default()
    };
    for text in &p.tags {
        request.tags.push(
            TagExpr::parse(text).map_err(|e| Error::bad_argument(format!("tag {text:?}: {e}")))?,
        );
    }
    Ok(request)
}

/// What follows [`CLUSTER_ROOT`] in a cluster path (`/fs` or `/fs/…`); `None` for any other.
fn in_the_tree(path: &str) -> Option<&str> {
    path.strip_prefix(CLUSTER_ROOT)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` under `root` if it is a cluster path; `None` if it is not.
fn on_this_node(path: &str, root: &Path) -> Option<String> {
    let rest = in_the_tree(path)?;
    let mut local = root.to_string_lossy().into_owned();
    local.push_str(rest);
    Some(local)
}

/// Whether `rec` names a cluster path as its program, an argument or its working directory.
fn uses_cluster_paths(rec: &ProcRecord) -> bool {
    rec.command
        .iter()
        .chain(rec.cwd.as_ref())
        .any(|p| in_the_tree(p).is_some())
}

/// What the supervisor runs for `rec`; `copied` is the path of its `--copy` program in this
/// node's cache, if it has one; `root` is where the owner's view of the cluster's tree is
/// mounted here, if it is (cluster paths are given under it).
fn spec_of(rec: &ProcRecord, copied: Option<&Path>, root: Option<&Path>) -> Spec {
    let local = |p: &String| {
        root.and_then(|r| on_this_node(p, r))
            .unwrap_or_else(|| p.clone())
    };
    let mut command = rec.command.iter();
    let named = command.next().map(local).unwrap_or_default();
    let mut env: Vec<String> = rec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("{PROCESS_ENV}={}", rec.id));
    if let Some(root) = root {
        env.push(format!("{CLUSTER_ROOT_ENV}={}", root.display()));
    }
    Spec {
        program: copied.map_or(named, |p| p.to_string_lossy().into_owned()),
        args: command.map(local).collect(),
        env,
        cwd: rec.cwd.as_ref().map(|c| local(c).into()),
        limits: Limits {
            mem: rec.placement.mem_bytes,
            cpu: rec.placement.cpu_millis.map(|m| m as f64 / 1000.0),
            pids: None,
        },
    }
}

fn may_act(cx: &Cx, rec: &ProcRecord) -> Result<(), Error> {
    if rec.owner == cx.author().to_bytes() || cx.author() == cx.kernel().admin() {
        return Ok(());
    }
    Err(Error::new(
        code::DENIED,
        format!(
            "process {} belongs to another user; only its owner or an admin may act on it",
            rec.id
        ),
    ))
}

impl Inner {
    /// Where `rec`'s owner sees the cluster's tree on this node, if `rec` names cluster
    /// paths; the error is why it cannot start here.
    async fn cluster_root(&self, rec: &ProcRecord) -> Result<Option<PathBuf>, String> {
        if !uses_cluster_paths(rec) {
            return Ok(None);
        }
        let local = self.directory.local();
        let files = self.files.lock().ok().and_then(|f| f.clone());
        let Some(files) = files else {
            return Err(format!(
                "node {local} does not keep the cluster's files mounted for its processes \
                 (start it with --mount-fs) and the program names {CLUSTER_ROOT}/ paths"
            ));
        };
        let owner = PublicKey::from_bytes(&rec.owner)
            .map_err(|_| format!("node {local}: the process's owner is no valid key"))?;
        // Mounting waits for the kernel: off the runtime's threads.
        match tokio::task::spawn_blocking(move || files.root_for(&owner)).await {
            Ok(Ok(root)) => Ok(Some(root)),
            Ok(Err(why)) => Err(format!(
                "node {local} cannot show the cluster's files: {why}"
            )),
            Err(_) => Err(format!("node {local}: mounting the cluster's files failed")),
        }
    }

    /// Notes whose process `rec` is, before it starts (the mount of the tree asks whom a
    /// process acts for from its first instruction on).
    fn note_owner(&self, rec: &ProcRecord) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.insert(rec.id, rec.owner);
        }
    }

    /// Forgets the owner of `id`, which no longer runs here.
    fn forget_owner(&self, id: ProcId) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.remove(&id);
        }
        if let Ok(mut outlets) = self.outlets.lock() {
            outlets.remove(&id);
        }
    }

    /// Applies `change` to the record of `id` and stores it, reading again when another
    /// update got in first. `None` when the record is gone.
    async fn update(
        &self,
        id: ProcId,
        change: impl Fn(&mut ProcRecord),
    ) -> Result<Option<ProcRecord>, ProcError> {
        let mut last = None;
        for attempt in 0..UPDATE_TRIES {
            // The first read is this node's copy: if it is stale, the generation check
            // refuses the update and the next read waits for the latest (as does a first
            // read that finds nothing: the copy may not have the record yet).
            let local = match attempt {
                0 => self.procs.get_local(id).await?,
                _ => None,
            };
            let read = match local {
                Some(rec) => Some(rec),
                None => self.procs.get(id).await?,
            };
            let Some(mut rec) = read else {
                return Ok(None);
            };
            let before = rec.clone();
            change(&mut rec);
            if rec == before {
                return Ok(Some(rec));
            }
            match self.procs.update(rec).await {
                Err(e @ ProcError::Conflict { .. }) => last = Some(e),
                other => return other.map(Some),
            }
        }
        Err(last.unwrap_or(ProcError::NotFound(id)))
    }

    async fn update_logged(&self, id: ProcId, change: impl Fn(&mut ProcRecord) + Send) {
        if let Err(e) = Box::pin(self.update(id, change)).await {
            tracing::warn!(process = %id, error = %e, "cannot update the process record");
        }
    }

    /// [`Inner::update_logged`] by the node that runs the process: a record that names
    /// another node now (the process was moved while this node was thought down) is not
    /// this node's to write.
    async fn update_here(&self, id: ProcId, change: impl Fn(&mut ProcRecord) + Send) {
        let local = self.directory.local();
        self.update_logged(id, move |r| {
            if r.node == local {
                change(r);
            }
        })
        .await;
    }

    /// Makes the processes this node runs agree with the table, after membership declared
    /// the node down while they ran: one the table now places elsewhere is stopped here,
    /// without recording its end, and its pipes are let go of (the other ends, finding no
    /// pipe here, look for the new copy); one the table marked lost runs here again.
    async fn reconcile(&self) {
        let local = self.directory.local();
        let runs: Vec<(ProcId, String)> = match self.runs.lock() {
            Ok(runs) => runs.iter().map(|(id, run)| (*id, run.clone())).collect(),
            Err(_) => return,
        };
        for (id, run) in runs {
            let alive = self
                .supervisor
                .info(&run)
                .is_ok_and(|info| info.status.is_none());
            if !alive {
                continue;
            }
            let Ok(Some(rec)) = self.procs.get_local(id).await else {
                continue;
            };
            if rec.node != local && !rec.state.is_ended() {
                if let Ok(mut superseded) = self.superseded.lock() {
                    if !superseded.insert(id) {
                        continue;
                    }
                }
                tracing::warn!(
                    process = %id,
                    "stopping this copy: the process runs on {} now (this node was thought \
                     down)",
                    rec.node
                );
                if let Ok(mut outlets) = self.outlets.lock() {
                    for outlet in outlets.remove(&id).unwrap_or_default() {
                        outlet.abort();
                    }
                }
                // The new copy keeps the state now: this one's last copy would be older.
                if let Some(keeping) = self.checkpoints.lock().ok().and_then(|mut c| c.remove(&id))
                {
                    keeping.abort();
                }
                let pipes: Vec<String> = rec
                    .wiring
                    .iter()
                    .flat_map(|w| w.inputs.iter().map(|i| i.pipe.clone()))
                    .collect();
                self.pipes.forget_inlets(&pipes);
                let _ = self.supervisor.signal(&run, Sig::Kill);
            } else if rec.node == local && rec.state == ProcState::Lost {
                tracing::info!(process = %id, "running again: this node is back");
                let note = format!("its node {local} was thought down and is back");
                self.update_logged(id, |r| {
                    if r.node == local && r.state == ProcState::Lost {
                        r.state = ProcState::Running;
                        r.note = Some(note.clone());
                    }
                })
                .await;
            }
        }
    }

    /// The record an ID (or a live process's name) stands for.
    async fn resolve(&self, u: &Unit) -> Result<ProcRecord, Error> {
        let text = u.as_str().ok_or_else(|| {
            Error::bad_argument("a process is named by its id or name (a string)")
        })?;
        let not_found =
            || Error::new(code::NOT_FOUND, format!("there is no process {text}")).with("id", text);
        if let Ok(id) = ProcId::parse(text) {
            if let Some(rec) = self.procs.get(id).await.map_err(table_error)? {
                return Ok(rec);
            }
            return Err(not_found());
        }
        let all = self.procs.list().await.map_err(table_error)?;
        all.into_iter()
            .find(|r| !r.state.is_ended() && r.name.as_deref() == Some(text))
            .ok_or_else(not_found)
    }

    /// The cluster as the scheduler sees it, with what the table's live processes reserve,
    /// leaving out `except`. The table is this node's copy: placement is an estimate
    /// anyway (processes starting elsewhere at the same moment are not counted either).
    async fn view(&self, except: Option<ProcId>) -> Result<ClusterView, Error> {
        let mut view = self.directory.view();
        for rec in self.procs.live_local().await.map_err(table_error)? {
            let reserving = matches!(
                rec.state,
                ProcState::Starting | ProcState::Running | ProcState::Restarting
            );
            if reserving && Some(rec.id) != except {
                if let Some(node) = view.nodes.get_mut(&rec.node) {
                    node.reserved = node.reserved.saturating_add(reserve_of(&rec.placement));
                    node.processes = node.processes.saturating_add(1);
                }
            }
        }
        Ok(view)
    }

    fn is_local(&self, node: &str) -> bool {
        node == self.directory.local()
    }

    /// The runs of `id` this node's supervisor has, oldest first.
    fn runs_here(&self, id: ProcId) -> Vec<String> {
        let mut runs: Vec<String> = self
            .supervisor
            .list()
            .into_iter()
            .map(|i| i.id)
            .filter(|run| run_of(run) == Some(id))
            .collect();
        runs.sort_by_key(|run| run_number(run));
        runs
    }

    /// Forgets (deleting their logs) the ended runs of processes the table no longer has, and
    /// those of a process beyond its newest [`KEPT_RUNS`]; deletes the logs a previous run of
    /// the node left for processes the table no longer has. A run is forgotten only if it was
    /// found forgettable in the sweep before too (`doomed`, which it gives for the next):
    /// a run that just ended may belong to a record whose put has not landed yet.
    async fn sweep(&self, doomed: &HashSet<String>) -> HashSet<String> {
        let runs = self.supervisor.list();
        let Ok(records) = self.procs.list().await else {
            return HashSet::new();
        };
        let ids: HashSet<ProcId> = records.iter().map(|r| r.id).collect();
        let mut forgettable = HashSet::new();
        let mut by_process: HashMap<ProcId, Vec<(u32, String, bool)>> = HashMap::new();
        for info in runs {
            let ended = info.status.is_some();
            match run_of(&info.id) {
                Some(id) if ids.contains(&id) => {
                    by_process
                        .entry(id)
                        .or_default()
                        .push((run_number(&info.id), info.id, ended))
                }
                _ if ended => {
                    forgettable.insert(info.id);
                }
                _ => {}
            }
        }
        for runs in by_process.values_mut() {
            runs.sort();
            let excess = runs.len().saturating_sub(KEPT_RUNS);
            forgettable.extend(
                runs[..excess]
                    .iter()
                    .filter(|(_, _, ended)| *ended)
                    .map(|(_, run, _)| run.clone()),
            );
        }
        let mut forgotten = 0;
        for run in forgettable.iter().filter(|run| doomed.contains(*run)) {
            if self.supervisor.remove(run).is_ok() {
                forgotten += 1;
            }
        }
        forgettable.retain(|run| !doomed.contains(run));
        if let Ok(mut r) = self.runs.lock() {
            r.retain(|id, run| ids.contains(id) && self.supervisor.info(run).is_ok());
        }
        if let Ok(mut k) = self.killed.lock() {
            k.retain(|id| ids.contains(id));
        }
        let supervisor = self.supervisor.clone();
        let swept = tokio::task::spawn_blocking(move || {
            supervisor.sweep_logs(|run| run_of(run).is_some_and(|id| ids.contains(&id)))
        })
        .await;
        match swept {
            Ok(Ok(files)) if forgotten + files > 0 => {
                tracing::info!(runs = forgotten, files, "forgot ended runs and their logs");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep the log directory"),
            Err(e) => tracing::warn!(error = %e, "the log sweep failed"),
        }
        forgettable
    }

    fn run_id(&self, id: ProcId) -> Option<String> {
        self.runs.lock().ok().and_then(|r| r.get(&id).cloned())
    }

    fn local_run(&self, rec: &ProcRecord) -> Result<String, Error> {
        self.run_id(rec.id).ok_or_else(|| {
            Error::new(
                code::NOT_FOUND,
                format!(
                    "process {} has no run on node {} (state {})",
                    rec.id,
                    rec.node,
                    rec.state.short()
                ),
            )
        })
    }

    async fn run(self: &Arc<Self>, cx: &Cx, c: &Cmd<'_>) -> Outcome {
        let local = self.directory.local();
        let RunRequest {
            record,
            request,
            attach,
            everywhere,
            dry,
            copy,
        } = read_run(cx, c, &local)?;
        if attach && !dry {
            cx.terminal()?;
        }
        let view = self.view(None).await?;
        if everywhere {
            return self
                .run_everywhere(cx, record, &request, &view, dry, copy)
                .await;
        }
        let chosen = place(&view, &request).map_err(refusal_error)?;
        if dry {
            return Ok(Some(placement_reply(&chosen)));
        }
        let node = chosen.node.clone();
        let record = self.placed_on(cx, record, &node, copy).await?;
        // A name must be free before anything runs, so a named process is put first; any
        // other is put by its node once it runs, off the path to its first byte.
        let starting = if record.name.is_some() {
            Starting::Placed(self.put_placed(record).await?.id)
        } else {
            Starting::New(Box::new(ProcRecord {
                id: self.unused_id().await?,
                ..record
            }))
        };
        let reply = self.start_on(cx, starting, &node, attach).await?;
        if attach {
            return Ok(Some(reply));
        }
        let id = reply
            .as_map()
            .and_then(|m| m.get_str("id"))
            .cloned()
            .ok_or_else(|| Error::internal("the start reply has no id"))?;
        Ok(Some(map_of([("id", id), ("node", Unit::str(&node))])))
    }

    /// One copy on every eligible node (up, with the tags): `{group ids}`, or with `dry`
    /// the nodes. A copy that cannot start is in the table as failed, with the reason.
    async fn run_everywhere(
        self: &Arc<Self>,
        cx: &Cx,
        mut record: ProcRecord,
        request: &Request,
        view: &ClusterView,
        dry: bool,
        copy: Option<Vec<u8>>,
    ) -> Outcome {
        let plan = plexus_sched::reconcile_everywhere(view, &request.tags, &Default::default());
        if plan.start.is_empty() {
            return Err(Error::new(
                code::LIMIT,
                format!(
                    "no node is up with the tags {}; the nodes are {}",
                    record.placement.tags.join(" "),
                    view.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let nodes = Unit::List(plan.start.iter().map(|n| Unit::str(n)).collect());
        if dry {
            return Ok(Some(map_of([("nodes", nodes)])));
        }
        let group = format!(
            "g{}",
            ProcId::from_random(rand::Rng::gen(&mut rand::rngs::OsRng))
        );
        record.everywhere = Some(group.clone());
        let mut ids = Vec::new();
        for node in &plan.start {
            let placed = self
                .placed_on(cx, record.clone(), node, copy.clone())
                .await?;
            let rec = self.put_placed(placed).await?;
            if let Err(e) = self
                .start_on(cx, Starting::Placed(rec.id), node, false)
                .await
            {
                tracing::info!(process = %rec.id, node, error = %e, "a copy did not start");
            }
            ids.push(Unit::str(rec.id.as_str()));
        }
        Ok(Some(map_of([
            ("group", Unit::from(group)),
            ("ids", Unit::List(ids)),
        ])))
    }

    /// `record` placed on `node`; a copied program is first kept in that node's cache.
    async fn placed_on(
        &self,
        cx: &Cx,
        mut record: ProcRecord,
        node: &str,
        copy: Option<Vec<u8>>,
    ) -> Result<ProcRecord, Error> {
        if let Some(bytes) = copy {
            let name = record.command.first().cloned().unwrap_or_default();
            let ext = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_owned);
            // A process that may be placed again keeps its program on a second node: the node
            // it moves to fetches it from one that has it.
            let may_move = record.restart != RestartPolicy::Never || record.everywhere.is_some();
            let path = if self.is_local(node) {
                let path = self.cache_here(bytes.clone(), ext.clone()).await?;
                if may_move {
                    self.keep_elsewhere(cx, node, bytes, ext).await;
                }
                path
            } else {
                if may_move {
                    self.cache_here(bytes.clone(), ext.clone()).await?;
                }
                self.cache_on(cx, node, bytes, ext).await?
            };
            let cached = Path::new(&path)
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| plexus_store::procs::valid_cache_name(n))
                .ok_or_else(|| Error::internal(format!("the cache named the program {path}")))?;
            record.copied = Some(cached.to_owned());
        }
        record.node = node.to_owned();
        Ok(record)
    }

    /// Puts a placed `record` in the table under a fresh id.
    async fn put_placed(&self, record: ProcRecord) -> Result<ProcRecord, Error> {
        self.recovered().await;
        put_with_fresh_id(self.procs.as_ref(), record, || {
            rand::Rng::gen::<[u8; 4]>(&mut rand::rngs::OsRng)
        })
        .await
        .map_err(table_error)
    }

    /// `{start:ID}` or `{start:RECORD}` on `node`: here directly, elsewhere through the
    /// router.
    async fn start_on(
        self: &Arc<Self>,
        cx: &Cx,
        starting: Starting,
        node: &str,
        attach: bool,
    ) -> Result<Unit, Error> {
        if self.is_local(node) {
            return self.start_here(cx, starting, attach).await;
        }
        let what = match starting {
            Starting::Placed(id) => Unit::str(id.as_str()),
            Starting::New(record) => Unit::Bytes(record.encode().into()),
        };
        let mut start = Map::new();
        start.insert(Unit::str("start"), what);
        if attach {
            start.insert(Unit::str("attach"), Unit::Bool(true));
        }
        Ok(cx
            .send(NAME, Some(node), Unit::Map(start))
            .await?
            .unwrap_or(Unit::None))
    }

    /// Keeps a program on `node`'s cache (`{cache:…}`): the path it has there.
    async fn cache_on(
        &self,
        cx: &Cx,
        node: &str,
        bytes: Vec<u8>,
        ext: Option<String>,
    ) -> Result<String, Error> {
        let mut m = Map::new();
        m.insert(Unit::str("cache"), Unit::Bytes(bytes.into()));
        if let Some(ext) = ext {
            m.insert(Unit::str("ext"), Unit::from(ext));
        }
        let reply = cx.send(NAME, Some(node), Unit::Map(m)).await?;
        reply
            .as_ref()
            .and_then(Unit::as_map)
            .and_then(|m| m.get_str("path"))
            .and_then(Unit::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::internal("the cache reply has no path"))
    }

    /// Keeps a program on one up node other than `running_on` (the first by name that takes
    /// it), so that it outlives that node. A cluster of one has no other: nothing is kept.
    async fn keep_elsewhere(&self, cx: &Cx, running_on: &str, bytes: Vec<u8>, ext: Option<String>) {
        let view = self.directory.view();
        let others = view
            .nodes
            .iter()
            .filter(|(name, v)| v.up && name.as_str() != running_on)
            .map(|(name, _)| name);
        for other in others {
            match self.cache_on(cx, other, bytes.clone(), ext.clone()).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::info!(node = %other, error = %e, "could not keep a copied program")
                }
            }
        }
    }

    async fn cache_here(&self, bytes: Vec<u8>, ext: Option<String>) -> Result<String, Error> {
        let supervisor = self.supervisor.clone();
        let local = self.directory.local();
        let cached =
            tokio::task::spawn_blocking(move || supervisor.cache_program(&bytes, ext.as_deref()))
                .await
                .map_err(|e| Error::internal(format!("caching the program: {e}")))?;
        let path =
            cached.map_err(|e| Error::new(code::BAD_ARGUMENT, format!("node {local}: {e}")))?;
        // The cache is bounded: the least recently used programs no live process needs go.
        let mut needed: HashSet<String> = self
            .procs
            .live_local()
            .await
            .map(|live| live.into_iter().filter_map(|r| r.copied).collect())
            .unwrap_or_default();
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            needed.insert(name.to_owned());
        }
        let supervisor = self.supervisor.clone();
        let trimmed = tokio::task::spawn_blocking(move || {
            supervisor.trim_program_cache(|name| needed.contains(name))
        })
        .await;
        match trimmed {
            Ok(Ok(0)) => {}
            Ok(Ok(bytes)) => tracing::info!(bytes, "deleted programs from the full program cache"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot trim the program cache"),
            Err(e) => tracing::warn!(error = %e, "trimming the program cache failed"),
        }
        Ok(path.to_string_lossy().into_owned())
    }

    /// `{program:NAME}`: the bytes of a program copied with `--copy`, for a node that is to
    /// run it and does not have it. Only the owner of a live process of that program (or an
    /// admin) gets them: the name alone, a content hash, is not enough.
    async fn program(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let name = string_of(c.arg()?, "program")?;
        if !plexus_store::procs::valid_cache_name(&name) {
            return Err(Error::bad_argument(format!(
                "{name:?} is not a program cache name"
            )));
        }
        if cx.author() != cx.kernel().admin() {
            let author = cx.author().to_bytes();
            let runs_it = self
                .procs
                .list()
                .await
                .map_err(table_error)?
                .iter()
                .any(|r| {
                    r.owner == author && !r.state.is_ended() && r.copied.as_deref() == Some(&name)
                });
            if !runs_it {
                return Err(Error::new(
                    code::DENIED,
                    "only the owner of a live process of this program, or an admin, may fetch it",
                ));
            }
        }
        let local = self.directory.local();
        let path = self.supervisor.cached_program(&name).ok_or_else(|| {
            Error::new(
                code::NOT_FOUND,
                format!("node {local} does not have the program {name}"),
            )
        })?;
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| Error::internal(format!("node {local}: reading {name}: {e}")))?
            .map_err(|e| Error::internal(format!("node {local}: reading {name}: {e}")))?;
        Ok(Unit::Bytes(bytes.into()))
    }

    /// The path of `rec`'s `--copy` program here, fetched from another up node if this one
    /// does not have it; `None` for a program named by path or in `PATH`. The error is the
    /// reason the process cannot start.
    async fn copied_program(&self, cx: &Cx, rec: &ProcRecord) -> Result<Option<PathBuf>, String> {
        let Some(name) = &rec.copied else {
            return Ok(None);
        };
        if let Some(path) = self.supervisor.cached_program(name) {
            return Ok(Some(path));
        }
        let local = self.directory.local();
        let shown = rec.command.first().map_or("", String::as_str);
        let mut tried = Vec::new();
        for (node, view) in &self.directory.view().nodes {
            if *node == local || !view.up {
                continue;
            }
            let mut m = Map::new();
            m.insert(Unit::str("program"), Unit::str(name));
            let sent =
                tokio::time::timeout(FETCH_DEADLINE, cx.send(NAME, Some(node), Unit::Map(m)));
            let bytes = match sent.await {
                Ok(Ok(Some(Unit::Bytes(bytes)))) => bytes,
                Ok(Ok(_)) => {
                    tried.push(format!("{node} sent no program"));
                    continue;
                }
                Ok(Err(e)) => {
                    tried.push(format!("{node}: {e}"));
                    continue;
                }
                Err(_) => {
                    tried.push(format!("{node} did not answer within {FETCH_DEADLINE:?}"));
                    continue;
                }
            };
            let ext = name.split_once('.').map(|(_, ext)| ext.to_owned());
            // The cache names a file by its contents: another name means other bytes.
            match self.cache_here(bytes.to_vec(), ext).await {
                Ok(path) if Path::new(&path).file_name().and_then(|n| n.to_str()) == Some(name) => {
                    tracing::info!(process = %rec.id, program = name, from = node, "fetched a copied program");
                    return Ok(Some(PathBuf::from(path)));
                }
                Ok(_) => tried.push(format!("{node} sent other bytes")),
                Err(e) => return Err(format!("node {local}: {e}")),
            }
        }
        let tried = if tried.is_empty() {
            "no other node is up".to_owned()
        } else {
            tried.join("; ")
        };
        Err(format!(
            "node {local}: the program {shown} (sent with --copy) is not here and no node sent it: {tried}"
        ))
    }

    async fn cache(&self, c: &Cmd<'_>) -> Result<Unit, Error> {
        let Unit::Bytes(bytes) = c.arg()? else {
            return Err(Error::bad_argument(
                "cache takes the program's bytes x\"…\"",
            ));
        };
        let ext = c.opt("ext").map(|e| string_of(e, "ext")).transpose()?;
        let path = self.cache_here(bytes.to_vec(), ext).await?;
        Ok(map_of([("path", Unit::from(path))]))
    }

    async fn start(self: &Arc<Self>, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let attach = c.opt_bool("attach", false)?;
        let starting = match c.arg()? {
            Unit::Bytes(bytes) => {
                let rec = ProcRecord::decode(bytes).map_err(|e| {
                    Error::bad_argument(format!("start takes a process record: {e}"))
                })?;
                // Starting a new record is what `run` pinned to this node does: only for
                // the user who signed it, admins included.
                if rec.owner != cx.author().to_bytes() {
                    return Err(Error::new(
                        code::DENIED,
                        "a new process belongs to the user who starts it",
                    ));
                }
                Starting::New(Box::new(rec))
            }
            other => {
                let rec = self.resolve(other).await?;
                may_act(cx, &rec)?;
                Starting::Placed(rec.id)
            }
        };
        self.start_here(cx, starting, attach).await
    }

    /// An id for a new record ([`plexus_store::unused_id`]).
    async fn unused_id(&self) -> Result<ProcId, Error> {
        plexus_store::unused_id(self.procs.as_ref(), || {
            rand::Rng::gen::<[u8; 4]>(&mut rand::rngs::OsRng)
        })
        .await
        .map_err(table_error)
    }

    /// The record of `starting` as this node starts it: a placed one from the table, a new
    /// one checked (its id is the placing node's draw: a taken one makes its put fail).
    async fn record_to_start(&self, starting: Starting) -> Result<ProcRecord, Error> {
        let local = self.directory.local();
        let rec = match starting {
            Starting::New(rec) => {
                let rec = *rec;
                if rec.node != local
                    || rec.state != ProcState::Starting
                    || rec.generation != 0
                    || rec.name.is_some()
                {
                    return Err(Error::bad_argument(format!(
                        "a new process starts on its node ({}, not {local}), unnamed, in \
                         state starting",
                        rec.node
                    )));
                }
                return Ok(rec);
            }
            Starting::Placed(id) => {
                // A record just put and never changed is as this node's copy has it, if the
                // copy has it yet: no read barrier (a round trip to the leader).
                let fresh = self
                    .procs
                    .get_local(id)
                    .await
                    .map_err(table_error)?
                    .filter(|r| r.generation == 0 && r.state == ProcState::Starting);
                match fresh {
                    Some(rec) => rec,
                    None => self
                        .procs
                        .get(id)
                        .await
                        .map_err(table_error)?
                        .ok_or_else(|| {
                            Error::new(code::NOT_FOUND, format!("there is no process {id}"))
                        })?,
                }
            }
        };
        let id = rec.id;
        if rec.node != local {
            return Err(Error::bad_argument(format!(
                "process {id} is placed on node {}, not on {local}",
                rec.node
            )));
        }
        if !matches!(
            rec.state,
            ProcState::Starting | ProcState::Restarting | ProcState::Lost
        ) {
            return Err(Error::new(
                "proc.state",
                format!(
                    "process {id} is {}; only a placed process starts",
                    rec.state.short()
                ),
            ));
        }
        Ok(rec)
    }

    /// Starts `starting` on this node; with `attach`, streams its output to the caller's
    /// terminal and replies with its end.
    async fn start_here(
        self: &Arc<Self>,
        cx: &Cx,
        starting: Starting,
        attach: bool,
    ) -> Result<Unit, Error> {
        self.recovered().await;
        let local = self.directory.local();
        let new = matches!(starting, Starting::New(_));
        let rec = self.record_to_start(starting).await?;
        let id = rec.id;
        let run = self.fresh_run_id(id)?;
        let copied = match self.copied_program(cx, &rec).await {
            Ok(copied) => copied,
            Err(reason) => {
                return Err(self
                    .failed_to_start(rec, new, reason, code::NOT_FOUND)
                    .await)
            }
        };
        let root = match self.cluster_root(&rec).await {
            Ok(root) => root,
            Err(reason) => {
                return Err(self
                    .failed_to_start(rec, new, reason, crate::io_fs::UNAVAILABLE)
                    .await)
            }
        };
        let spec = spec_of(&rec, copied.as_deref(), root.as_deref());
        self.note_owner(&rec);
        if let Ok(mut kernel) = self.kernel.lock() {
            kernel.get_or_insert_with(|| cx.kernel().clone());
        }
        // A process of a graph never attaches: its output goes into its pipes.
        let attach = attach && rec.wiring.is_none();
        let spawned = if attach {
            self.supervisor
                .spawn_attached(&run, &spec)
                .await
                .map(|(pid, a)| (pid, Some(a)))
        } else {
            self.spawn_run(&run, &spec, &rec)
                .await
                .map(|pid| (pid, None))
        };
        let (pid, attached) = match spawned {
            Ok(s) => s,
            Err(e) => {
                let code = match &e {
                    plexus_proc::SpawnError::Spec(
                        plexus_proc::SpecError::NotFound { .. }
                        | plexus_proc::SpecError::NotInPath { .. }
                        | plexus_proc::SpecError::NoInterpreter { .. },
                    ) => code::NOT_FOUND,
                    plexus_proc::SpawnError::Spec(plexus_proc::SpecError::TooManyArgs {
                        ..
                    })
                    | plexus_proc::SpawnError::Spec(plexus_proc::SpecError::TooLarge { .. }) => {
                        code::LIMIT
                    }
                    plexus_proc::SpawnError::Spec(_) => code::BAD_ARGUMENT,
                    _ => "proc.start",
                };
                let reason = format!("node {local}: {e}");
                self.forget_owner(id);
                return Err(self.failed_to_start(rec, new, reason, code).await);
            }
        };
        let started = now_ms();
        let limits = self
            .supervisor
            .info(&run)
            .map_or(Enforced::None, |i| enforced(i.enforcement));
        // A new record's id is the caller's: it is this run's only once the put accepts it.
        if !new {
            if let Ok(mut runs) = self.runs.lock() {
                runs.insert(id, run.clone());
            }
        }
        let policy = rec.restart;
        // The watcher records `running` (putting a new record), so an attached run's output
        // streams while that write replicates; it records the end only after it.
        let (running, running_recorded) = oneshot::channel();
        let (first_end, first_end_recorded) = oneshot::channel();
        let (shown, first_shown) = oneshot::channel();
        let recorded = Recorded {
            limits,
            new: new.then_some(rec),
            running,
            first_end,
            first_shown: attached.is_some().then_some(first_shown),
        };
        let watched = self.clone().watch(
            id,
            run.clone(),
            started,
            RestartTracker::new(policy),
            Some(Box::new(recorded)),
        );
        let me = self.clone();
        tokio::spawn(async move {
            watched.await;
            me.forget_owner(id);
        });
        let recorded_running = async {
            running_recorded
                .await
                .unwrap_or_else(|_| Err(Error::internal("the process watcher has ended")))
        };
        let Some(attached) = attached else {
            // A detached run's reply comes once `ps` shows it running.
            recorded_running.await?;
            return Ok(map_of([
                ("id", Unit::str(id.as_str())),
                ("pid", Unit::int(i64::from(pid))),
            ]));
        };
        // The client is told the id once the record is in the table (it then writes to the
        // program's stdin, and may kill it, through any node). The output streams
        // meanwhile: neither the table nor the client's answer is on the path to the first
        // byte.
        let term = cx.terminal()?;
        let told = async {
            recorded_running.await?;
            term.request(TermRequest::Process { id: id.to_string() })
                .await
        };
        let (told, ()) = tokio::join!(told, stream_output(cx, attached, shown));
        told?;
        let status = self
            .supervisor
            .wait(&run)
            .await
            .map_err(|e| sup_error(&local, e))?;
        // So that a `ps` after the reply sees the end (briefly: a slow table only delays it).
        let _ = tokio::time::timeout(SETTLE_DEADLINE, first_end_recorded).await;
        Ok(status_reply(id, &local, status))
    }

    /// Spawns run `run` of `rec`; a process of a graph gets its pipes (and its named
    /// channels, as FIFOs named in its environment).
    async fn spawn_run(
        &self,
        run: &str,
        spec: &Spec,
        rec: &ProcRecord,
    ) -> Result<u32, plexus_proc::SpawnError> {
        let Some(w) = &rec.wiring else {
            return self.supervisor.spawn(run, spec).await;
        };
        let mut named_out: Vec<String> =
            w.outputs.iter().filter_map(|o| o.channel.clone()).collect();
        let mut named_in: Vec<String> = w.inputs.iter().filter_map(|i| i.channel.clone()).collect();
        named_out.sort();
        named_out.dedup();
        named_in.sort();
        named_in.dedup();
        let mut spec = spec.clone();
        let kernel = self.kernel.lock().ok().and_then(|k| k.clone());
        let checkpoint = match (w.checkpoint, kernel) {
            (Some(every), Some(kernel)) => {
                let local = checkpoint::local_path(self.supervisor.state_dir(), rec.id);
                let previous = self
                    .checkpoints
                    .lock()
                    .ok()
                    .and_then(|mut c| c.remove(&rec.id));
                if let Some(previous) = previous {
                    let _ = tokio::time::timeout(Duration::from_secs(10), previous).await;
                }
                let note = checkpoint::restore(&kernel, rec.id, &local).await;
                spec.env.extend(checkpoint::env(&local, every));
                Some((kernel, local, every, note))
            }
            _ => None,
        };
        let fifos = if named_out.is_empty() && named_in.is_empty() {
            None
        } else {
            let dir = self.supervisor.state_dir().join("channels").join(run);
            let (fifos, env) =
                channels::Fifos::make(&dir, &named_out, &named_in).map_err(|source| {
                    plexus_proc::SpawnError::Start {
                        exe: dir.clone(),
                        source,
                    }
                })?;
            spec.env.extend(env);
            Some(fifos)
        };
        let piped = plexus_proc::Piped {
            stdout: w.outputs.iter().any(|o| !o.stderr && o.channel.is_none()),
            stderr: w.outputs.iter().any(|o| o.stderr && o.channel.is_none()),
            stdin: w.inputs.iter().any(|i| i.channel.is_none()),
        };
        let spawned = self.supervisor.spawn_piped(run, &spec, piped).await;
        let (pid, attached) = match spawned {
            Ok(s) => s,
            Err(e) => {
                if let Some(f) = &fifos {
                    f.remove();
                }
                return Err(e);
            }
        };
        self.connect(rec, w, run, attached, fifos.as_ref()).await;
        if let Some((kernel, local, every, note)) = checkpoint {
            let _ = self.supervisor.note(run, Stream::Stderr, &note);
            let (supervisor, waited, logged) =
                (self.supervisor.clone(), run.to_owned(), run.to_owned());
            let supervisor_log = self.supervisor.clone();
            let ended = async move {
                let _ = supervisor.wait(&waited).await;
            };
            let keeping = tokio::spawn(checkpoint::keep(
                kernel,
                rec.id,
                local,
                every,
                ended,
                move |text| {
                    let _ = supervisor_log.note(&logged, Stream::Stderr, text);
                },
            ));
            if let Ok(mut checkpoints) = self.checkpoints.lock() {
                checkpoints.insert(rec.id, keeping);
            }
        }
        if let Some(fifos) = fifos {
            let supervisor = self.supervisor.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                let _ = supervisor.wait(&run).await;
                // After the channels it never opened were let go.
                tokio::time::sleep(Duration::from_secs(1)).await;
                fifos.remove();
            });
        }
        Ok(pid)
    }

    /// Joins a run of a graph's process to its pipes: an inlet into its standard input (or
    /// the input closed, unless the terminal gives it), an outlet from each output with pipes.
    async fn connect(
        &self,
        rec: &ProcRecord,
        w: &plexus_store::Wiring,
        run: &str,
        attached: Attached,
        fifos: Option<&channels::Fifos>,
    ) {
        let format = |name: &str| name.parse::<plexus_pipe::Format>().unwrap_or_default();
        // One inlet per input: standard input, and each named input.
        let mut inputs: Vec<Option<String>> = w.inputs.iter().map(|i| i.channel.clone()).collect();
        inputs.sort();
        inputs.dedup();
        for channel in &inputs {
            let mut pipes = Vec::new();
            for input in w.inputs.iter().filter(|i| &i.channel == channel) {
                let node = match self.procs.get_local(input.from).await {
                    Ok(Some(r)) => r.node,
                    _ => String::new(),
                };
                pipes.push((input.pipe.clone(), input.from.to_string(), node));
            }
            let plan = crate::sys_pipe::InletPlan {
                graph: w.graph.clone(),
                here: match channel {
                    Some(name) => format!("{}:{name}", rec.id),
                    None => rec.id.to_string(),
                },
                owner: rec.owner,
                pipes,
                format: format(&w.input_format),
                window: w.window,
                order_by: w.order_by.clone().filter(|_| channel.is_none()),
            };
            let sink = match (channel, fifos) {
                (Some(name), Some(fifos)) => {
                    let supervisor = self.supervisor.clone();
                    let waited = run.to_owned();
                    let ended = async move {
                        let _ = supervisor.wait(&waited).await;
                    };
                    Sink::Channel {
                        writes: Mutex::new(Some(channels::write_input(
                            fifos.path(false, name),
                            ended,
                        ))),
                        supervisor: self.supervisor.clone(),
                        run: run.to_owned(),
                    }
                }
                _ => Sink::Stdin {
                    supervisor: self.supervisor.clone(),
                    run: run.to_owned(),
                },
            };
            self.pipes.inlet(plan, sink);
        }
        if !inputs.contains(&None) && !w.terminal_input {
            let _ = self.supervisor.close_stdin(run).await;
        }
        let kernel = self.kernel.lock().ok().and_then(|k| k.clone());
        let (Some(kernel), Ok(owner)) = (kernel, PublicKey::from_bytes(&rec.owner)) else {
            tracing::warn!(process = %rec.id, "no kernel or owner key for the process's pipes");
            return;
        };
        let Attached { stdout, stderr } = attached;
        let mut outputs = vec![(None, false, stdout), (None, true, stderr)];
        let mut named: Vec<&String> = w
            .outputs
            .iter()
            .filter_map(|o| o.channel.as_ref())
            .collect();
        named.sort();
        named.dedup();
        for name in named {
            let Some(fifos) = fifos else { break };
            let supervisor = self.supervisor.clone();
            let waited = run.to_owned();
            let ended = async move {
                let _ = supervisor.wait(&waited).await;
            };
            let chunks = channels::read_output(fifos.path(true, name), ended);
            outputs.push((Some(name.clone()), false, chunks));
        }
        for (channel, is_err, output) in outputs {
            let mut targets = Vec::new();
            for o in w
                .outputs
                .iter()
                .filter(|o| o.channel == channel && (channel.is_some() || o.stderr == is_err))
            {
                let (node, consumer, there) = match &o.to {
                    plexus_store::PipeTarget::Console(node) => {
                        (node.clone(), None, "console".to_owned())
                    }
                    plexus_store::PipeTarget::Proc(id) => {
                        let node = match self.procs.get_local(*id).await {
                            Ok(Some(r)) => r.node,
                            _ => match self.procs.get(*id).await {
                                Ok(Some(r)) => r.node,
                                _ => String::new(),
                            },
                        };
                        (node, Some(*id), id.to_string())
                    }
                };
                targets.push(Target {
                    pipe: o.pipe.clone(),
                    node,
                    consumer,
                    there,
                });
            }
            if targets.is_empty() {
                continue; // not piped: the supervisor logs it
            }
            let plan = OutletPlan {
                graph: w.graph.clone(),
                here: match &channel {
                    Some(name) => format!("{}:{name}", rec.id),
                    None => rec.id.to_string(),
                },
                share: if w.split && !is_err && channel.is_none() {
                    plexus_pipe::Share::Split(format(&w.output_format))
                } else {
                    plexus_pipe::Share::All
                },
                targets,
                window: w.window,
                max_rate: w.max_rate.filter(|_| !is_err),
                run: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64),
            };
            let (pipes, supervisor, run) =
                (self.pipes.clone(), self.supervisor.clone(), run.to_owned());
            let (kernel, owner) = (kernel.clone(), owner);
            let outlet = tokio::spawn(async move {
                if let Err(why) = pipes.outlet(kernel, owner, plan, output).await {
                    let _ = supervisor.note(&run, Stream::Stderr, &why);
                }
            });
            if let Ok(mut outlets) = self.outlets.lock() {
                let of_id = outlets.entry(rec.id).or_default();
                of_id.retain(|o| !o.is_finished());
                of_id.push(outlet.abort_handle());
            }
        }
    }

    /// Records that `rec` could not start, for `reason` (putting a `new` record, updating the
    /// table's otherwise), and gives the error of the start: `code`, the reason, the id.
    async fn failed_to_start(
        &self,
        rec: ProcRecord,
        new: bool,
        reason: String,
        code: &str,
    ) -> Error {
        let id = rec.id;
        let why = plexus_store::procs::clip_reason(&reason);
        let at = now_ms();
        let failed = |r: &mut ProcRecord| {
            r.state = ProcState::FailedToStart(why.clone());
            r.ended_ms = Some(at);
        };
        if new {
            let mut rec = rec;
            failed(&mut rec);
            if let Err(e) = self.procs.put(rec).await {
                tracing::warn!(process = %id, error = %e, "cannot record a failed start");
            }
        } else {
            self.update_logged(id, failed).await;
        }
        Error::new(code, reason).with("id", id.as_str())
    }

    /// Returns once the records of a previous run are marked lost.
    async fn recovered(&self) {
        let mut recovering = self.recovering.subscribe();
        // The sender lives in `self`: waiting cannot fail.
        let _ = recovering.wait_for(|r| !*r).await;
    }

    /// Waits (briefly) until the record of `id` no longer shows the run started at
    /// `started` as running, so that a `ps` after an attached run's reply sees its end.
    async fn settled(&self, id: ProcId, started: u64) {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            match self.procs.get(id).await {
                Ok(Some(r)) if r.state == ProcState::Running && r.started_ms == started => {}
                _ => return,
            }
            tokio::time::sleep(WAIT_POLL / 5).await;
        }
    }

    fn fresh_run_id(&self, id: ProcId) -> Result<String, Error> {
        let base = id.to_string();
        if self.supervisor.info(&base).is_err() {
            return Ok(base);
        }
        (1..MAX_RUN_SUFFIX)
            .map(|n| format!("{base}-{n}"))
            .find(|run| self.supervisor.info(run).is_err())
            .ok_or_else(|| Error::new(code::LIMIT, format!("process {id} ran too often")))
    }

    /// Records a run that started at `at` as running: puts a `new` record (and only then
    /// takes the run as its), or updates the table's.
    async fn record_running(
        &self,
        id: ProcId,
        run: &str,
        at: u64,
        limits: Enforced,
        new: Option<ProcRecord>,
    ) -> Result<(), ProcError> {
        let running = |r: &mut ProcRecord| {
            r.state = ProcState::Running;
            r.started_ms = at;
            r.ended_ms = None;
            r.limits = limits;
        };
        let Some(mut rec) = new else {
            self.update_logged(id, running).await;
            return Ok(());
        };
        running(&mut rec);
        self.procs.put(rec).await?;
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(id, run.to_owned());
        }
        Ok(())
    }

    /// Follows one process on this node from its start to its end, restarting it as its
    /// policy says, and keeps its record up to date.
    async fn watch(
        self: Arc<Self>,
        id: ProcId,
        run: String,
        started: u64,
        tracker: RestartTracker,
        recorded: Option<Box<Recorded>>,
    ) {
        let mut first_end = None;
        if let Some(recorded) = recorded {
            let Recorded {
                limits,
                new,
                running,
                first_end: end,
                first_shown,
            } = *recorded;
            if let Some(first_shown) = first_shown {
                let _ = tokio::time::timeout(FIRST_OUTPUT_WAIT, first_shown).await;
            }
            // Boxed, as every table write here: a watcher lives as long as its process, and
            // its future is as large as the largest thing it awaits.
            let put = Box::pin(self.record_running(id, &run, started, limits, new)).await;
            if let Err(e) = put {
                // Running, but not in the table: it must not go on untracked.
                tracing::warn!(process = %id, error = %e, "cannot record a new process; killing it");
                let _ = self.supervisor.signal(&run, Sig::Kill);
                let _ = running.send(Err(table_error(e)));
                let _ = self.supervisor.wait(&run).await;
                return;
            }
            let _ = running.send(Ok(()));
            first_end = Some(end);
        }
        let mut follow = Following {
            run,
            started,
            tracker,
            first_end,
        };
        // Each end is handled by a boxed step: only the wait stays in this future, which
        // lives as long as the process.
        loop {
            let Ok(status) = self.supervisor.wait(&follow.run).await else {
                return;
            };
            if !Box::pin(self.after_exit(id, status, &mut follow)).await {
                return;
            }
        }
    }

    /// Records how a run of `id` ended and restarts it as its policy says; false once the
    /// process is no longer followed here.
    async fn after_exit(&self, id: ProcId, status: ExitStatus, follow: &mut Following) -> bool {
        if self.stopping.load(Ordering::SeqCst) {
            // The node is stopping: `shutdown` marks the record lost.
            return false;
        }
        if self.superseded.lock().is_ok_and(|s| s.contains(&id)) {
            // Moved to another node: the copy there writes the record.
            return false;
        }
        let now = now_ms();
        let killed_by_user = self.killed.lock().is_ok_and(|k| k.contains(&id));
        let exit = match status {
            ExitStatus::Exited(code) => Exit::Code(code),
            ExitStatus::Killed(signal) => Exit::Signal(signal),
        };
        let event = ExitEvent {
            exit,
            killed_by_user,
            started_ms: follow.started,
        };
        let ended = |r: &mut ProcRecord, state: ProcState| {
            r.state = state;
            r.ended_ms = Some(now);
        };
        let final_state = match status {
            ExitStatus::Exited(code) => ProcState::Exited(code),
            ExitStatus::Killed(signal) => ProcState::Killed(signal),
        };
        match follow.tracker.on_exit(&event, now) {
            RestartDecision::Stop(reason) => {
                let state = match reason {
                    StopReason::CrashLooping { .. } => ProcState::CrashLooping,
                    _ => final_state,
                };
                self.update_here(id, |r| ended(r, state.clone())).await;
                return false;
            }
            RestartDecision::Restart { delay_ms, .. } => {
                // The record counts every restart, wherever it ran; the tracker only those on
                // this node.
                self.update_here(id, |r| {
                    r.state = ProcState::Restarting;
                    r.restarts = r.restarts.saturating_add(1);
                })
                .await;
                // Dropping it tells an attached caller its run's end is recorded (it is
                // also dropped on every return).
                drop(follow.first_end.take());
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let killed = self.killed.lock().is_ok_and(|k| k.contains(&id));
                if killed || self.stopping.load(Ordering::SeqCst) {
                    let at = now_ms();
                    self.update_here(id, |r| {
                        r.state = final_state.clone();
                        r.ended_ms = Some(at);
                    })
                    .await;
                    return false;
                }
                let rec = match self.procs.get(id).await {
                    Ok(Some(rec))
                        if rec.state == ProcState::Restarting && self.is_local(&rec.node) =>
                    {
                        rec
                    }
                    // Removed, or taken over (placed elsewhere): no longer ours.
                    _ => return false,
                };
                let Ok(next) = self.fresh_run_id(id) else {
                    return false;
                };
                // The program ran here: a copied one is in this node's cache (a spawn of a
                // missing file fails and is recorded as any other).
                let copied = rec
                    .copied
                    .as_deref()
                    .and_then(|n| self.supervisor.cached_program(n));
                let spawned = match Box::pin(self.cluster_root(&rec)).await {
                    Ok(root) => {
                        let spec = spec_of(&rec, copied.as_deref(), root.as_deref());
                        Box::pin(self.spawn_run(&next, &spec, &rec))
                            .await
                            .map_err(|e| format!("node {}: {e}", self.directory.local()))
                    }
                    Err(why) => Err(why),
                };
                match spawned {
                    Ok(_) => {
                        follow.started = now_ms();
                        let at = follow.started;
                        self.update_here(id, |r| {
                            r.state = ProcState::Running;
                            r.started_ms = at;
                        })
                        .await;
                        if let Ok(mut runs) = self.runs.lock() {
                            runs.insert(id, next.clone());
                        }
                        follow.run = next;
                    }
                    Err(e) => {
                        let why = plexus_store::procs::clip_reason(&e);
                        let at = now_ms();
                        self.update_here(id, |r| {
                            r.state = ProcState::FailedToStart(why.clone());
                            r.ended_ms = Some(at);
                        })
                        .await;
                        return false;
                    }
                }
            }
        }
        true
    }

    async fn ps(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let text = c.opt_bool("text", false)?;
        let long = c.opt_bool("long", false)?;
        let mut records = self.procs.list().await.map_err(table_error)?;
        plexus_store::ps_order(&mut records);
        let mut by_node: HashMap<&str, Vec<Unit>> = HashMap::new();
        for r in records.iter().filter(|r| r.state == ProcState::Running) {
            by_node
                .entry(r.node.as_str())
                .or_default()
                .push(Unit::str(r.id.as_str()));
        }
        let mut live: HashMap<String, LiveFigures> = HashMap::new();
        let mut replies = Vec::new();
        // Every node at once, each within the deadline; a node that is slow or gone shows `-`.
        let mut asks = tokio::task::JoinSet::new();
        for (node, ids) in by_node {
            let ask = map_of([("stats", Unit::List(ids))]);
            if self.is_local(node) {
                replies.push(self.stats_of(&ask).ok());
            } else {
                let (cx, node) = (cx.clone(), node.to_owned());
                asks.spawn(async move {
                    match tokio::time::timeout(STATS_DEADLINE, cx.send(NAME, Some(&node), ask))
                        .await
                    {
                        Ok(Ok(reply)) => reply,
                        _ => None,
                    }
                });
            }
        }
        while let Some(reply) = asks.join_next().await {
            replies.push(reply.ok().flatten());
        }
        for reply in replies {
            if let Some(Unit::Map(m)) = reply {
                for (k, v) in m.iter() {
                    if let (Some(id), Some(f)) = (k.as_str(), figures(v)) {
                        live.insert(id.to_owned(), f);
                    }
                }
            }
        }
        let user_name = |key: &[u8; 32]| {
            PublicKey::from_bytes(key)
                .ok()
                .and_then(|k| cx.kernel().user_name(&k))
        };
        if text {
            let figures = |id: &ProcId| live.get(id.as_str()).copied();
            let table = if long {
                PsTable::long(&records, user_name, figures, now_ms())
            } else {
                PsTable::new(&records, user_name, figures, now_ms())
            };
            return Ok(Unit::from(table.to_string()));
        }
        let rows = records
            .iter()
            .map(|r| {
                let mut m = Map::new();
                let mut put = |k: &str, v: Unit| {
                    m.insert(Unit::str(k), v);
                };
                put("id", Unit::str(r.id.as_str()));
                if let Some(name) = &r.name {
                    put("name", Unit::str(name));
                }
                if let Some(group) = &r.everywhere {
                    put("group", Unit::str(group));
                }
                if let Some(w) = &r.wiring {
                    put("graph", Unit::str(&w.graph));
                    put("stage", Unit::str(&w.stage));
                }
                let user = user_name(&r.owner).unwrap_or_else(|| {
                    r.owner.iter().take(4).map(|b| format!("{b:02x}")).collect()
                });
                put("user", Unit::from(user));
                put("node", Unit::str(&r.node));
                put("state", Unit::str(state_word(&r.state)));
                if let Some(code) = r.exit_status() {
                    put("code", Unit::int(i64::from(code)));
                }
                if let ProcState::Killed(s) = r.state {
                    put("signal", Unit::int(i64::from(s)));
                }
                if let ProcState::FailedToStart(why) = &r.state {
                    put("reason", Unit::str(why));
                }
                if let Some(f) = live.get(r.id.as_str()) {
                    put("cpu", cpu_unit(f.cpu_percent));
                    put("rss", int_u64(f.rss_bytes));
                }
                if r.started_ms > 0 {
                    put("started", int_u64(r.started_ms));
                }
                if let Some(at) = r.ended_ms {
                    put("ended", int_u64(at));
                }
                put("restarts", Unit::int(i64::from(r.restarts)));
                if let Some(note) = &r.note {
                    put("note", Unit::str(note));
                }
                put(
                    "command",
                    Unit::List(r.command.iter().map(|a| Unit::str(a)).collect()),
                );
                put("enforced", Unit::from(r.limits.to_string()));
                if long {
                    put("restart", Unit::from(r.restart.to_string()));
                    put(
                        "tags",
                        Unit::List(r.placement.tags.iter().map(|t| Unit::str(t)).collect()),
                    );
                    if let Some(on) = &r.placement.on {
                        put("on", Unit::str(on));
                    }
                }
                Unit::Map(m)
            })
            .collect();
        Ok(Unit::List(rows))
    }

    fn stats(&self, c: &Cmd<'_>) -> Result<Unit, Error> {
        self.stats_of(&map_of([("stats", c.arg()?.clone())]))
    }

    fn stats_of(&self, ask: &Unit) -> Result<Unit, Error> {
        let ids = ask
            .as_map()
            .and_then(|m| m.get_str("stats"))
            .map(|u| strings(u, "stats"))
            .transpose()?
            .unwrap_or_default();
        let mut out = Map::new();
        for text in ids {
            let Ok(id) = ProcId::parse(&text) else {
                continue;
            };
            let Some(run) = self.run_id(id) else {
                continue;
            };
            if let Ok(s) = self.supervisor.stats(&run) {
                out.insert(
                    Unit::from(text),
                    map_of([
                        ("cpu", cpu_unit(s.cpu_percent)),
                        ("rss", int_u64(s.rss_bytes)),
                    ]),
                );
            }
        }
        Ok(Unit::Map(out))
    }

    /// Forwards `msg` to the node of `rec` when it is another node; `None` when it is this one.
    async fn elsewhere(&self, cx: &Cx, rec: &ProcRecord, msg: &Unit) -> Option<Outcome> {
        if self.is_local(&rec.node) {
            return None;
        }
        Some(cx.send(NAME, Some(&rec.node), msg.clone()).await)
    }

    async fn kill(&self, cx: &Cx, c: &Cmd<'_>, msg: &Unit) -> Result<Unit, Error> {
        let rec = match self.resolve(c.arg()?).await {
            Ok(rec) => rec,
            Err(e) if e.code() == code::NOT_FOUND => {
                let graph = self
                    .graph_procs(c.arg()?.as_str().unwrap_or_default())
                    .await?;
                if graph.is_empty() {
                    return Err(e);
                }
                return self.kill_graph(cx, graph, c).await;
            }
            Err(e) => return Err(e),
        };
        may_act(cx, &rec)?;
        let sig = match c.opt("signal") {
            None => Sig::Term,
            Some(s) => string_of(s, "signal")?
                .parse::<Sig>()
                .map_err(|e| Error::bad_argument(e.to_string()))?,
        };
        let grace = match c.opt("grace") {
            None => DEFAULT_GRACE_MS,
            Some(g) => crate::forms::int64(g, "grace").and_then(|g| {
                u64::try_from(g).map_err(|_| Error::bad_argument("grace must not be negative"))
            })?,
        };
        let reply = |state: &str| {
            map_of([
                ("id", Unit::str(rec.id.as_str())),
                ("state", Unit::str(state)),
            ])
        };
        if rec.state.is_ended() || rec.state == ProcState::Lost {
            return Ok(reply(state_word(&rec.state)));
        }
        if let Some(forwarded) = self.elsewhere(cx, &rec, msg).await {
            return forwarded.map(|r| r.unwrap_or(Unit::None));
        }
        let ends = !matches!(sig, Sig::Stop | Sig::Cont);
        if ends {
            if let Ok(mut killed) = self.killed.lock() {
                killed.insert(rec.id);
            }
        }
        if rec.state == ProcState::Restarting {
            return Ok(reply("killed"));
        }
        let run = self.local_run(&rec)?;
        let local = self.directory.local();
        if sig == Sig::Term {
            let status = self
                .supervisor
                .stop(&run, Duration::from_millis(grace))
                .await
                .map_err(|e| sup_error(&local, e))?;
            let state = match status {
                ExitStatus::Exited(_) => "exited",
                ExitStatus::Killed(_) => "killed",
            };
            self.settled(rec.id, rec.started_ms).await;
            return Ok(reply(state));
        }
        self.supervisor
            .signal(&run, sig)
            .map_err(|e| sup_error(&local, e))?;
        Ok(reply(state_word(&rec.state)))
    }

    async fn logs(&self, cx: &Cx, c: &Cmd<'_>, msg: &Unit) -> Outcome {
        let rec = self.resolve(c.arg()?).await?;
        may_act(cx, &rec)?;
        let stream = match c
            .opt("stream")
            .map(|s| string_of(s, "stream"))
            .transpose()?
        {
            None => Stream::Stdout,
            Some(s) if s == "stdout" => Stream::Stdout,
            Some(s) if s == "stderr" => Stream::Stderr,
            Some(s) => {
                return Err(Error::bad_argument(format!(
                    "stream is stdout or stderr, not {s:?}"
                )))
            }
        };
        let tail = c.opt_count("tail")?;
        let follow = c.opt_bool("follow", false)?;
        if follow {
            cx.terminal()?;
        }
        if let Some(forwarded) = self.elsewhere(cx, &rec, msg).await {
            return forwarded;
        }
        let run = self.local_run(&rec)?;
        let local = self.directory.local();
        if follow {
            let mut f = self
                .supervisor
                .follow(&run, stream, 0)
                .map_err(|e| sup_error(&local, e))?;
            let term = cx.terminal()?;
            let out = match stream {
                Stream::Stdout => OutputStream::Stdout,
                Stream::Stderr => OutputStream::Stderr,
            };
            while let Some(chunk) = f.next().await {
                let bytes = chunk.map_err(|e| Error::internal(format!("node {local}: {e}")))?;
                term.request(TermRequest::Output {
                    stream: out,
                    bytes: bytes.to_vec(),
                })
                .await?;
            }
            return Ok(None);
        }
        // Every run kept here, oldest first: a restarted program's earlier output too.
        let mut runs = self.runs_here(rec.id);
        if runs.last() != Some(&run) {
            runs = vec![run];
        }
        let mut parts = Vec::new();
        let mut wanted = tail;
        for run in runs.iter().rev() {
            let part = match wanted {
                Some(0) => break,
                Some(n) => self.supervisor.tail(run, stream, n),
                None => self.supervisor.read_log(run, stream),
            }
            .map_err(|e| sup_error(&local, e))?;
            cx.charge(part.len() as u64)?;
            if let Some(n) = wanted.as_mut() {
                *n = n.saturating_sub(part.split_inclusive(|b| *b == b'\n').count());
            }
            parts.push(part);
        }
        let bytes: Vec<u8> = parts.into_iter().rev().flatten().collect();
        Ok(Some(Unit::Bytes(bytes.into())))
    }

    async fn wait(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let rec = self.resolve(c.arg()?).await?;
        may_act(cx, &rec)?;
        let id = rec.id;
        loop {
            let rec = self
                .procs
                .get(id)
                .await
                .map_err(table_error)?
                .ok_or_else(|| Error::new(code::NOT_FOUND, format!("process {id} was removed")))?;
            if rec.state.is_ended() || rec.state == ProcState::Lost {
                return Ok(end_reply(&rec));
            }
            cx.check()?;
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    async fn rm(&self, cx: &Cx, c: &Cmd<'_>, msg: &Unit) -> Result<Unit, Error> {
        let rec = self.resolve(c.arg()?).await?;
        may_act(cx, &rec)?;
        if !rec.state.is_ended() && rec.state != ProcState::Lost {
            return Err(Error::new(
                "proc.running",
                format!(
                    "process {} is {}; kill it first",
                    rec.id,
                    state_word(&rec.state)
                ),
            ));
        }
        if let Some(forwarded) = self.elsewhere(cx, &rec, msg).await {
            // A node that is gone keeps no logs to delete: the record goes anyway.
            if let Err(e) = forwarded {
                if e.code() != code::NODE_DOWN && e.code() != code::UNKNOWN_NODE {
                    return Err(e);
                }
            } else {
                return Ok(map_of([("id", Unit::str(rec.id.as_str()))]));
            }
        } else {
            let runs: Vec<String> = self
                .supervisor
                .list()
                .into_iter()
                .map(|i| i.id)
                .filter(|run| run_of(run) == Some(rec.id))
                .collect();
            for run in runs {
                let _ = self.supervisor.remove(&run);
            }
            if let Ok(mut r) = self.runs.lock() {
                r.remove(&rec.id);
            }
            if let Ok(mut k) = self.killed.lock() {
                k.remove(&rec.id);
            }
        }
        self.procs.remove(rec.id).await.map_err(table_error)?;
        Ok(map_of([("id", Unit::str(rec.id.as_str()))]))
    }

    async fn stdin(&self, cx: &Cx, c: &Cmd<'_>, msg: &Unit) -> Result<(), Error> {
        let rec = match self.resolve(c.arg()?).await {
            Ok(rec) => rec,
            // A graph's input is its process that reads the terminal.
            Err(e) if e.code() == code::NOT_FOUND => self
                .graph_procs(c.arg()?.as_str().unwrap_or_default())
                .await?
                .into_iter()
                .find(|r| r.wiring.as_ref().is_some_and(|w| w.terminal_input))
                .ok_or(e)?,
            Err(e) => return Err(e),
        };
        may_act(cx, &rec)?;
        let data = match c.opt("data") {
            None => None,
            Some(Unit::Bytes(b)) => Some(b.clone()),
            Some(Unit::Str(s)) => Some(s.as_bytes().to_vec().into()),
            Some(_) => return Err(Error::bad_argument("data must be bytes x\"…\" or a string")),
        };
        let eof = c.opt_bool("eof", false)?;
        if data.is_none() && !eof {
            return Err(Error::bad_argument("stdin needs data:x\"…\" or eof:t"));
        }
        if let Some(forwarded) = self.elsewhere(cx, &rec, msg).await {
            return forwarded.map(drop);
        }
        let run = self.local_run(&rec)?;
        let local = self.directory.local();
        if let Some(data) = data {
            self.supervisor
                .write_stdin(&run, &data)
                .await
                .map_err(|e| sup_error(&local, e))?;
        }
        if eof {
            self.supervisor
                .close_stdin(&run)
                .await
                .map_err(|e| sup_error(&local, e))?;
        }
        Ok(())
    }

    async fn explain(&self, _cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let rec = self.resolve(c.arg()?).await?;
        let request = request_of(&rec.placement)?;
        let view = self.view(Some(rec.id)).await?;
        let chosen = place(&view, &request).map_err(refusal_error)?;
        Ok(placement_reply(&chosen))
    }
}

/// Which run of its process a supervisor run id is: 0 for `k7f2q1`, 3 for `k7f2q1-3`.
fn run_number(run: &str) -> u32 {
    run.split_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// The process a supervisor run id belongs to (`k7f2q1` or `k7f2q1-3`).
pub fn run_of(run: &str) -> Option<ProcId> {
    ProcId::parse(run.split('-').next().unwrap_or(run)).ok()
}

fn cpu_unit(percent: f64) -> Unit {
    let tenths = (percent * 10.0).round();
    let tenths = if tenths.is_finite() && tenths >= 0.0 {
        tenths as i64
    } else {
        0
    };
    Unit::Dec(Dec::new(tenths.into(), 1))
}

fn figures(u: &Unit) -> Option<LiveFigures> {
    let m = u.as_map()?;
    let cpu = match m.get_str("cpu")? {
        Unit::Dec(d) => plexus_units::to_text(&Unit::Dec(d.clone())).parse().ok()?,
        Unit::Int(i) => i.to_i64()? as f64,
        _ => return None,
    };
    let rss = m.get_str("rss")?.as_int()?.to_i64()?;
    Some(LiveFigures {
        cpu_percent: cpu,
        rss_bytes: u64::try_from(rss).ok()?,
    })
}

/// What the watcher follows of one process's runs.
struct Following {
    /// The current run.
    run: String,
    /// When it started, in ms since the epoch.
    started: u64,
    tracker: RestartTracker,
    /// Dropped once the first run's end (or restart) is recorded.
    first_end: Option<oneshot::Sender<()>>,
}

/// What the watcher of a new run records first, and whom it tells.
struct Recorded {
    /// The limits the run got.
    limits: Enforced,
    /// A record not in the table yet: the watcher puts it (else it updates the table's).
    new: Option<ProcRecord>,
    /// Told once the record shows the run as running, or why it cannot.
    running: oneshot::Sender<Result<(), Error>>,
    /// Dropped once the run's first end (or restart) is recorded.
    first_end: oneshot::Sender<()>,
    /// For an attached run: resolves once its first output is with the caller, or it has
    /// none; the record waits for it (at most [`FIRST_OUTPUT_WAIT`]).
    first_shown: Option<oneshot::Receiver<()>>,
}

/// How long the record of an attached run waits for its first output to reach the caller:
/// the table write replicates to every node, and on a small machine it would take the CPU
/// the program needs to start (`docs/benchmarks.md`, proc (a)).
const FIRST_OUTPUT_WAIT: Duration = Duration::from_millis(5);

/// Streams a program's output to the caller's terminal, each chunk answered before the next
/// (a slow terminal holds the program back). A terminal that fails is let go; the program
/// runs on, its output still logged.
/// `shown` is sent once the first chunk is answered (dropped on return).
async fn stream_output(cx: &Cx, mut attached: Attached, shown: oneshot::Sender<()>) {
    let Ok(term) = cx.terminal() else {
        return;
    };
    let mut shown = Some(shown);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        let (stream, chunk) = tokio::select! {
            c = attached.stdout.recv(), if out_open => (OutputStream::Stdout, c),
            c = attached.stderr.recv(), if err_open => (OutputStream::Stderr, c),
        };
        match chunk {
            None if stream == OutputStream::Stdout => out_open = false,
            None => err_open = false,
            Some(bytes) => {
                let written = term
                    .request(TermRequest::Output {
                        stream,
                        bytes: bytes.to_vec(),
                    })
                    .await;
                if written.is_err() {
                    return;
                }
                if let Some(shown) = shown.take() {
                    let _ = shown.send(());
                }
            }
        }
    }
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Op>> = LazyLock::new(table);

fn table() -> Table<Op> {
    Table::new(
        NAME,
        "Programs on the nodes: run one (placed by node, tags, CPU and memory), list them \
         (ps), signal, read logs, write stdin, wait, remove. A process belongs to the user who \
         started it; only that user or an admin may act on it",
        vec![Example {
            info: "Where a program would run, without running it",
            com: "{run:[true] dry:t}@sys.proc",
            res: None,
        }],
        vec![
            Entry::new(
                "run",
                "Starts a program → {id node}. on: a node; tag: tag expressions all of which \
                 the node must hold; cpu (cores) and mem (bytes or 200M) are reserved and \
                 limited; restart: never, on-failure or always; name: a name unique among live \
                 processes; env, cwd; copy: the program file's bytes (run's first element is its \
                 name). attach:t streams the output to your terminal and returns at the end → \
                 {id node state code signal}; dry:t starts nothing → {node text}; \
                 everywhere:t starts a copy on every up node with the tags → {group ids}",
                &[
                    "{run:[prog arg…]}",
                    "{run:[prog arg…] on:NODE tag:[EXPR…] cpu:N mem:SIZE restart:POLICY name:N \
                     env:{K:V} cwd:DIR attach:t copy:x\"…\" everywhere:t dry:t}",
                ],
                Arg::Required,
                Op::Run,
            ),
            Entry::new(
                "graph",
                "Starts processes joined by pipes (a shell pipeline, an .osh graph) → {graph \
                 name procs}. procs: each a run map (as run takes) with stage (its name), in \
                 and out (record formats raw, segment, json), split:t (its records shared among \
                 its pipes), max_rate (bytes/s), console:t (its output to your terminal), \
                 stdin:t (your terminal's input); pipes: {from:STAGE to:STAGE}. attach:t \
                 waits for the end → {graph name procs code}, code as bash's pipefail; dry:t \
                 starts nothing → {graph nodes text}",
                &[
                    "{graph:{name:N procs:[{stage:S run:[prog arg…] on:NODE …}…] \
                     pipes:[{from:S to:S}…] window:BYTES} attach:t dry:t}",
                ],
                Arg::Required,
                Op::Graph,
            ),
            Entry::new(
                "graphs",
                "Every graph: its processes and its pipes' bytes/s, records/s and backlog; \
                 text:t gives it as text",
                &["graphs", "{graphs:t text:t}"],
                Arg::Optional,
                Op::Graphs,
            ),
            Entry::new(
                "pipes",
                "Every pipe of the cluster (or of one graph): ends, nodes, bytes, rate, \
                 backlog, state; text:t gives the table",
                &["pipes", "{pipes:t text:t graph:ID}"],
                Arg::Optional,
                Op::Pipes,
            ),
            Entry::new(
                "ps",
                "Every process of the cluster → [{id name user node state code signal cpu rss \
                 started ended restarts command enforced}…]; text:t gives the table as text, \
                 long:t adds restart, tags and on",
                &["ps", "{ps:t text:t long:t}"],
                Arg::Optional,
                Op::Ps,
            ),
            Entry::new(
                "kill",
                "Signals a process (TERM by default, then KILL after grace ms, 5000 by \
                 default; or INT, KILL, STOP, CONT, HUP) → {id state}",
                &["{kill:ID}", "{kill:ID signal:SIG grace:MS}"],
                Arg::Required,
                Op::Kill,
            ),
            Entry::new(
                "logs",
                "A process's retained output (stdout, or stream:stderr), or its last N lines \
                 → bytes; follow:t streams new output to your terminal until it ends",
                &["{logs:ID}", "{logs:ID tail:N stream:stderr follow:t}"],
                Arg::Required,
                Op::Logs,
            ),
            Entry::new(
                "wait",
                "Waits until a process ends → {id node state code signal}",
                &["{wait:ID}"],
                Arg::Required,
                Op::Wait,
            ),
            Entry::new(
                "rm",
                "Forgets an ended process and its logs → {id}",
                &["{rm:ID}"],
                Arg::Required,
                Op::Rm,
            ),
            Entry::new(
                "stdin",
                "Writes to a process's stdin (returns once written), or closes it with eof:t",
                &["{stdin:ID data:x\"…\"}", "{stdin:ID eof:t}"],
                Arg::Required,
                Op::Stdin,
            ),
            Entry::new(
                "explain",
                "Where a process would be placed now, and why → {node text}",
                &["{explain:ID}"],
                Arg::Required,
                Op::Explain,
            ),
            Entry::new(
                "start",
                "Internal: starts on this node a process placed here, from the table or a new \
                 record (which gets its id here) → {id pid}",
                &[
                    "{start:ID}",
                    "{start:ID attach:t}",
                    "{start:x\"RECORD\" attach:t}",
                ],
                Arg::Required,
                Op::Start,
            ),
            Entry::new(
                "stats",
                "Internal: live CPU% and RSS of processes on this node → {ID:{cpu rss}…}",
                &["{stats:[ID…]}"],
                Arg::Required,
                Op::Stats,
            ),
            Entry::new(
                "cache",
                "Internal: keeps a program file on this node → {path}",
                &["{cache:x\"…\" ext:py}"],
                Arg::Required,
                Op::Cache,
            ),
            Entry::new(
                "program",
                "Internal: a program copied with --copy, from this node's cache, for the owner \
                 of a live process of it → bytes",
                &["{program:NAME}"],
                Arg::Required,
                Op::Program,
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_names_its_process() {
        let id = ProcId::from_random([1, 2, 3, 4]);
        assert_eq!(run_of(id.as_str()), Some(id));
        assert_eq!(run_of(&format!("{id}-12")), Some(id));
        assert_eq!(run_of("nope"), None);
    }

    #[test]
    fn cluster_paths_are_given_under_the_owners_view() {
        let id = ProcId::from_random([1, 2, 3, 4]);
        let command = [
            "python3",
            "/fs/code/x.py",
            "/fs",
            "/fsx/y",
            "-o/fs/z",
            "/data/fs/w",
        ];
        let mut rec = ProcRecord::new(
            id,
            [7; 32],
            "n2",
            command.iter().map(|s| s.to_string()).collect(),
        );
        rec.cwd = Some("/fs/home/me".into());
        assert!(uses_cluster_paths(&rec));
        let spec = spec_of(&rec, None, Some(Path::new("/var/plx/fs/ab")));
        assert_eq!(spec.program, "python3");
        assert_eq!(
            spec.args,
            [
                "/var/plx/fs/ab/code/x.py",
                "/var/plx/fs/ab",
                "/fsx/y",
                "-o/fs/z",
                "/data/fs/w"
            ]
        );
        assert_eq!(spec.cwd, Some(PathBuf::from("/var/plx/fs/ab/home/me")));
        assert!(spec.env.contains(&"PLX_FS=/var/plx/fs/ab".to_owned()));
        assert!(spec.env.contains(&format!("PLX_PROCESS={id}")));
        // Without cluster paths nothing is given, and the node needs no view.
        let plain = ProcRecord::new(id, [7; 32], "n2", vec!["/fsx".into(), "fs/a".into()]);
        assert!(!uses_cluster_paths(&plain));
        let spec = spec_of(&plain, None, None);
        assert_eq!((spec.program.as_str(), spec.cwd), ("/fsx", None));
        assert!(!spec.env.iter().any(|e| e.starts_with("PLX_FS=")));
    }

    #[test]
    fn cpu_figures_round_trip_through_units() {
        let u = map_of([("cpu", cpu_unit(12.34)), ("rss", int_u64(4096))]);
        let f = figures(&u);
        assert_eq!(
            f,
            Some(LiveFigures {
                cpu_percent: 12.3,
                rss_bytes: 4096
            })
        );
    }
}
