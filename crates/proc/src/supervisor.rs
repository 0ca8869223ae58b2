//! The supervisor: the table of this node's processes and everything done to them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rustix::process::{Pid, Signal};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::{self, CacheError};
use crate::journal::{Journal, Leftover};
use crate::launch::{self, ChildSetup, Launch, Launched};
use crate::limits::{self, CgroupError, CgroupRoots, Enforcement};
use crate::log::{self, Follow, LogError, StreamLog};
use crate::spec::{self, Spec, SpecError};
use crate::stats::{self, Stats};

/// The most bytes read from a pipe at a time.
const PIPE_CHUNK: usize = 64 * 1024;
/// The most bytes read at a time from a stream that goes into a Plexus pipe, and the size
/// asked of the OS pipes of a piped stream or input: fewer, larger reads, writes and frames
/// (Linux lets any user raise a pipe to 1 MiB).
const PIPED_CHUNK: usize = 256 * 1024;
const PIPED_PIPE_SIZE: usize = 1024 * 1024;
/// The first read's buffer.
const PIPE_CHUNK_FIRST: usize = 1024;
/// Chunks queued for one attached reader before the pipe is no longer read.
const READER_QUEUE: usize = 4;
/// Attached readers per stream of one process.
const MAX_READERS: usize = 16;
/// How long a pipe may stay silent after its program ended before it is no longer read.
const PIPE_LINGER: Duration = Duration::from_secs(1);
/// The longest process id.
const MAX_ID_LEN: usize = 64;

/// Settings of a [`Supervisor`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the journal of running processes and the program cache (`procs/`,
    /// `programs/`).
    pub state_dir: PathBuf,
    /// Directory for the logs (`<id>.out`, `<id>.err`, and their `.1` previous files).
    pub log_dir: PathBuf,
    /// Bytes kept per stream of one process, both files together.
    pub log_limit: u64,
    /// Use cgroups for limits when the node offers them; `false` uses rlimits.
    pub cgroups: bool,
    /// Bytes the program cache may hold before [`Supervisor::trim_program_cache`] deletes the
    /// least recently used programs.
    pub program_cache_limit: u64,
}

impl Config {
    /// State under `state_dir`, logs in `state_dir/logs`, 8 MiB of log per stream, cgroups
    /// where the node offers them, a program cache of up to 1 GiB.
    pub fn new(state_dir: impl Into<PathBuf>) -> Config {
        let state_dir = state_dir.into();
        Config {
            log_dir: state_dir.join("logs"),
            state_dir,
            log_limit: 8 * 1024 * 1024,
            cgroups: true,
            program_cache_limit: 1024 * 1024 * 1024,
        }
    }
}

/// A stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A signal a process group can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGKILL.
    Kill,
    /// SIGSTOP.
    Stop,
    /// SIGCONT.
    Cont,
    /// SIGHUP.
    Hup,
}

impl Sig {
    fn raw(self) -> Signal {
        match self {
            Sig::Term => Signal::TERM,
            Sig::Int => Signal::INT,
            Sig::Kill => Signal::KILL,
            Sig::Stop => Signal::STOP,
            Sig::Cont => Signal::CONT,
            Sig::Hup => Signal::HUP,
        }
    }
}

/// The name is not one of TERM, INT, KILL, STOP, CONT, HUP.
#[derive(Debug, thiserror::Error)]
#[error("unknown signal {0:?} (one of TERM, INT, KILL, STOP, CONT, HUP)")]
pub struct UnknownSignal(pub String);

impl std::str::FromStr for Sig {
    type Err = UnknownSignal;
    /// `TERM` or `SIGTERM`, any case.
    fn from_str(s: &str) -> Result<Sig, UnknownSignal> {
        let upper = s.to_ascii_uppercase();
        match upper.strip_prefix("SIG").unwrap_or(&upper) {
            "TERM" => Ok(Sig::Term),
            "INT" => Ok(Sig::Int),
            "KILL" => Ok(Sig::Kill),
            "STOP" => Ok(Sig::Stop),
            "CONT" => Ok(Sig::Cont),
            "HUP" => Ok(Sig::Hup),
            _ => Err(UnknownSignal(s.to_owned())),
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) killed it.
    Killed(i32),
}

impl ExitStatus {
    /// The shell's `$?`: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Killed(signal) => 128 + signal,
        }
    }
}

/// What the table knows of a process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcInfo {
    /// The caller's id.
    pub id: String,
    /// Its process id (and process group id) on this node.
    pub pid: u32,
    /// The file executed (the interpreter for scripts).
    pub exe: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// When it was started.
    pub started_at: SystemTime,
    /// `None` while it runs.
    pub status: Option<ExitStatus>,
    /// How its limits are enforced.
    pub enforcement: Enforcement,
}

/// Output of a process, in order, while it runs; flow-controlled: the supervisor stops reading
/// the program's pipe while a queue is full, so the program blocks on write. Read both streams
/// (e.g. with `tokio::select!`), or a full one blocks the program. Each ends at end of output.
#[derive(Debug)]
pub struct Attached {
    /// Standard output chunks.
    pub stdout: mpsc::Receiver<Bytes>,
    /// Standard error chunks.
    pub stderr: mpsc::Receiver<Bytes>,
}

/// Which of a program's streams go into pipes ([`Supervisor::spawn_piped`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Piped {
    /// Standard output.
    pub stdout: bool,
    /// Standard error.
    pub stderr: bool,
    /// Standard input comes from pipes (its OS pipe is made larger).
    pub stdin: bool,
}

/// A process could not be started; nothing of it is left running.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The id is empty, too long, or has characters other than ASCII letters, digits, `-`, `_`.
    #[error("process id {0:?} must be 1-64 ASCII letters, digits, '-' or '_'")]
    BadId(String),
    /// A process with this id is in the table.
    #[error("a process with id {0:?} already exists on this node")]
    Duplicate(String),
    /// The supervisor is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The spec is invalid here.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The process's cgroup could not be prepared.
    #[error("cannot set limits: {0}")]
    Cgroup(#[from] CgroupError),
    /// The kernel refused to start it.
    #[error("cannot start {} on this node: {source}", exe.display())]
    Start {
        /// The file executed.
        exe: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The state directory could not be written.
    #[error("state directory {}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// An operation on a process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// No process with this id.
    #[error("no process {0:?} on this node")]
    Unknown(String),
    /// It has already ended.
    #[error("process {0:?} has ended")]
    Ended(String),
    /// It is still running (stop it first).
    #[error("process {0:?} is still running")]
    Running(String),
    /// Its stdin was closed (by `close_stdin` or by the program).
    #[error("stdin of process {0:?} is closed")]
    StdinClosed(String),
    /// Writing to its stdin failed.
    #[error("stdin of process {id:?}: {source}")]
    Stdin {
        /// The process.
        id: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Sending a signal failed.
    #[error("signal to process {id:?}: {source}")]
    Signal {
        /// The process.
        id: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Too many readers are attached.
    #[error("process {0:?} already has {MAX_READERS} attached readers")]
    TooManyReaders(String),
    /// Its log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The supervisor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was called outside a tokio runtime.
    #[error("the process supervisor must start inside a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// A state directory could not be made or read.
    #[error("process supervisor state {}: {source}", path.display())]
    State {
        /// The directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The thread that forks the children could not be started.
    #[error("cannot start the process supervisor's spawning thread: {0}")]
    Thread(#[source] std::io::Error),
}

type Readers = Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>;

struct Proc {
    id: String,
    pid: Pid,
    exe: PathBuf,
    args: Vec<String>,
    started_at: SystemTime,
    enforcement: Enforcement,
    cgroup_dirs: Vec<PathBuf>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    /// Set by `close_stdin`: a write blocked on a full pipe gives up the pipe.
    stdin_closing: watch::Sender<bool>,
    logs: [Arc<StreamLog>; 2],
    readers: [Readers; 2],
    status: watch::Sender<Option<ExitStatus>>,
    /// Set when the program has been reaped (`status` waits for its output too).
    exited: watch::Sender<bool>,
    /// Set at shutdown: attached readers are let go, so a reader that never reads cannot hold
    /// the shutdown up.
    detach: watch::Sender<bool>,
    /// The last CPU sample: when, and the process's CPU ticks then.
    cpu_sample: Mutex<(Instant, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// One start for the spawning thread: it resolves the program too, so a start crosses
/// threads once each way (every crossing costs a wake-up on the path to the first byte).
struct SpawnJob {
    spec: Spec,
    setup: ChildSetup,
    reply: oneshot::Sender<Result<(spec::Resolved, Launched), SpawnError>>,
}

impl SpawnJob {
    /// Blocks: the program and its directory may be on a FUSE mount that this very process
    /// serves with the runtime's help, so never on the runtime's threads.
    fn start(self) {
        let started = spec::resolve(&self.spec)
            .map_err(SpawnError::Spec)
            .and_then(|resolved| {
                let launched = Launch::new(
                    &resolved.exe,
                    &resolved.args,
                    &resolved.env,
                    resolved.cwd.as_deref(),
                    self.setup,
                )
                .and_then(|launch| launch.start());
                match launched {
                    Ok(launched) => Ok((resolved, launched)),
                    Err(source) => Err(SpawnError::Start {
                        exe: resolved.exe,
                        source,
                    }),
                }
            });
        // Nobody waits for this child any more (the spawn was cancelled): it must not run
        // untracked.
        if let Err(Ok((_, launched))) = self.reply.send(started) {
            launch::abandon(launched.pid, &launched.pidfd);
        }
    }
}

struct Inner {
    config: Config,
    cgroups: CgroupRoots,
    /// To the thread that forks every child: the parent-death signal fires when the thread
    /// that forked a child ends, so it must be one thread that lives as long as the supervisor.
    spawner: Mutex<std::sync::mpsc::Sender<SpawnJob>>,
    /// The running process groups, for the next start after a crash.
    journal: Journal,
    procs: Mutex<HashMap<String, Arc<Proc>>>,
    /// Ids being started: taken before the logs are created, so two spawns of one id cannot
    /// both get that far.
    starting: Mutex<HashSet<String>>,
    shutting_down: AtomicBool,
}

/// Frees an id taken in [`Inner::starting`] when its spawn has finished, either way.
struct Reservation<'a> {
    inner: &'a Inner,
    id: &'a str,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(&self.inner.starting).remove(self.id);
    }
}

impl Drop for Inner {
    /// The spawning thread ends with the last handle, and with it (by the parent-death signal)
    /// every child still running; their cgroups and this supervisor's own directories go too,
    /// as far as they are already empty (the next start sweeps the rest).
    fn drop(&mut self) {
        let procs = self
            .procs
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for dir in procs.values().flat_map(|p| &p.cgroup_dirs) {
            let _ = std::fs::remove_dir(dir);
        }
        for dir in self.cgroups.dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// This node's process supervisor. Cloning gives another handle to the same table.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// The cgroup directory name of the supervisor with this state directory, so supervisors with
/// different state (several nodes on one machine, tests) never touch each other's processes.
fn cgroup_leaf(state_dir: &Path) -> String {
    let canonical = state_dir
        .canonicalize()
        .unwrap_or_else(|_| state_dir.to_owned());
    let hash = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex();
    format!("plexus-{}", &hash[..16])
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Supervisor {
    /// Starts the supervisor (inside a tokio runtime with I/O enabled). Processes a previous run
    /// left behind (the node was killed with -9) are killed first, by their journal and
    /// cgroups; their ids are returned so the caller can mark them lost.
    pub fn start(config: Config) -> Result<(Supervisor, Vec<String>), StartError> {
        let dir_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StartError::State { path, source }
        };
        // Its processes are followed by tasks of the caller's runtime.
        tokio::runtime::Handle::try_current().map_err(StartError::NoRuntime)?;
        let pid_dir = config.state_dir.join("procs");
        std::fs::create_dir_all(&pid_dir).map_err(dir_err(&pid_dir))?;
        std::fs::create_dir_all(&config.log_dir).map_err(dir_err(&config.log_dir))?;
        let cgroups = if config.cgroups {
            CgroupRoots::detect(&cgroup_leaf(&config.state_dir))
        } else {
            CgroupRoots::Unavailable
        };
        let (journal, leftovers) = Journal::open(&pid_dir).map_err(dir_err(&pid_dir))?;
        let lost = reap_leftovers(leftovers, &pid_dir, &cgroups).map_err(dir_err(&pid_dir))?;

        let (spawner, jobs) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("plexus-proc-spawn".into())
            .spawn(move || {
                for job in jobs {
                    job.start();
                }
            })
            .map_err(StartError::Thread)?;
        let inner = Inner {
            config,
            cgroups,
            spawner: Mutex::new(spawner),
            journal,
            procs: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashSet::new()),
            shutting_down: AtomicBool::new(false),
        };
        Ok((
            Supervisor {
                inner: Arc::new(inner),
            },
            lost,
        ))
    }

    /// The directory of the supervisor's state (`Config::state_dir`).
    pub fn state_dir(&self) -> &Path {
        &self.inner.config.state_dir
    }

    /// How limits are enforced on this node: `CgroupV2`, `CgroupV1` or `Rlimits`.
    pub fn enforcement(&self) -> Enforcement {
        match self.inner.cgroups {
            CgroupRoots::V2(_) => Enforcement::CgroupV2,
            CgroupRoots::V1 { .. } => Enforcement::CgroupV1,
            CgroupRoots::Unavailable => Enforcement::Rlimits,
        }
    }

    /// Starts `spec` under `id` (1–64 ASCII letters, digits, `-`, `_`; unique on this node).
    /// Returns its pid.
    pub async fn spawn(&self, id: &str, spec: &Spec) -> Result<u32, SpawnError> {
        self.start_proc(id, spec, None).await
    }

    /// Like [`spawn`](Self::spawn), with readers attached before the first byte is read.
    pub async fn spawn_attached(
        &self,
        id: &str,
        spec: &Spec,
    ) -> Result<(u32, Attached), SpawnError> {
        let (out_tx, stdout) = mpsc::channel(READER_QUEUE);
        let (err_tx, stderr) = mpsc::channel(READER_QUEUE);
        let pid = self.start_proc(id, spec, Some([out_tx, err_tx])).await?;
        Ok((pid, Attached { stdout, stderr }))
    }

    /// Like [`spawn_attached`](Self::spawn_attached), for a program whose streams marked in
    /// `piped` go into pipes: such a stream is not logged, and once its reader is dropped it
    /// is no longer read at all, so the program's next write to it fails with `EPIPE` (or
    /// `SIGPIPE`), as when a shell pipeline's consumer exits.
    pub async fn spawn_piped(
        &self,
        id: &str,
        spec: &Spec,
        piped: Piped,
    ) -> Result<(u32, Attached), SpawnError> {
        let (out_tx, stdout) = mpsc::channel(READER_QUEUE);
        let (err_tx, stderr) = mpsc::channel(READER_QUEUE);
        let pid = self
            .start_piped(id, spec, Some([out_tx, err_tx]), piped)
            .await?;
        Ok((pid, Attached { stdout, stderr }))
    }

    async fn start_proc(
        &self,
        id: &str,
        spec: &Spec,
        attached: Option<[mpsc::Sender<Bytes>; 2]>,
    ) -> Result<u32, SpawnError> {
        self.start_piped(id, spec, attached, Piped::default()).await
    }

    async fn start_piped(
        &self,
        id: &str,
        spec: &Spec,
        attached: Option<[mpsc::Sender<Bytes>; 2]>,
        piped: Piped,
    ) -> Result<u32, SpawnError> {
        if !valid_id(id) {
            return Err(SpawnError::BadId(id.to_owned()));
        }
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SpawnError::ShuttingDown);
        }
        let _reservation = {
            let procs = lock(&self.inner.procs);
            if procs.contains_key(id) || !lock(&self.inner.starting).insert(id.to_owned()) {
                return Err(SpawnError::Duplicate(id.to_owned()));
            }
            Reservation {
                inner: &self.inner,
                id,
            }
        };
        let cgroup = if spec.limits.is_empty() {
            limits::ProcCgroup::default()
        } else {
            // Checked before a cgroup is written with them (the rest of the spec is checked
            // as the spawning thread resolves it).
            spec.limits.check()?;
            self.inner.cgroups.create(id, &spec.limits)?
        };
        let remove_cgroup = |dirs: &[PathBuf]| dirs.iter().for_each(|d| limits::kill_and_remove(d));
        let rlimits = cgroup.enforcement == Enforcement::Rlimits;
        let setup = ChildSetup {
            parent: rustix::process::getpid(),
            procs_files: cgroup.procs_files.clone(),
            rlimit_as: spec.limits.mem.filter(|_| rlimits),
            rlimit_nproc: spec.limits.pids.filter(|_| rlimits),
        };
        let (reply, launched) = oneshot::channel();
        let job = SpawnJob {
            spec: spec.clone(),
            setup,
            reply,
        };
        let sent = lock(&self.inner.spawner).send(job);
        let launched = match sent {
            Ok(()) => launched.await.unwrap_or(Err(SpawnError::ShuttingDown)),
            Err(_) => Err(SpawnError::ShuttingDown),
        };
        let (resolved, launched) = match launched {
            Ok(launched) => launched,
            Err(e) => {
                remove_cgroup(&cgroup.dirs);
                return Err(e);
            }
        };
        let Launched {
            pid,
            pidfd,
            stdin,
            stdout,
            stderr,
        } = launched;
        // Larger OS pipes for piped streams; a node that may not keeps the default.
        for (fd, wanted) in [
            (&stdin, piped.stdin),
            (&stdout, piped.stdout),
            (&stderr, piped.stderr),
        ] {
            if wanted {
                let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPED_PIPE_SIZE);
            }
        }
        let registered = (|| {
            Ok::<_, std::io::Error>((
                pipe::Sender::from_owned_fd(stdin)?,
                pipe::Receiver::from_owned_fd(stdout)?,
                pipe::Receiver::from_owned_fd(stderr)?,
            ))
        })();
        let followed = match registered {
            Ok(pipes) => launch::follow(pidfd).map(|exit| (pipes, exit)),
            Err(e) => Err((pidfd, e)),
        };
        let ((stdin, stdout, stderr), exit) = match followed {
            Ok(followed) => followed,
            Err((pidfd, source)) => {
                launch::abandon(pid, &pidfd);
                remove_cgroup(&cgroup.dirs);
                return Err(SpawnError::Start {
                    exe: resolved.exe,
                    source,
                });
            }
        };
        let logs = [".out", ".err"].map(|ext| {
            let path = self.inner.config.log_dir.join(format!("{id}{ext}"));
            StreamLog::new(path, self.inner.config.log_limit)
        });
        let start_ticks = stats::start_ticks(pid.as_raw_nonzero().get()).unwrap_or(0);
        if let Err(source) = self
            .inner
            .journal
            .started(id, pid.as_raw_nonzero().get(), start_ticks)
        {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            let _ = launch::exit_status(&exit).await;
            remove_cgroup(&cgroup.dirs);
            return Err(SpawnError::State {
                path: self.inner.config.state_dir.join("procs/journal"),
                source,
            });
        }

        let readers: [Readers; 2] = match attached {
            Some([out, err]) => [
                Arc::new(Mutex::new(vec![out])),
                Arc::new(Mutex::new(vec![err])),
            ],
            None => [Readers::default(), Readers::default()],
        };
        let proc = Arc::new(Proc {
            id: id.to_owned(),
            pid,
            exe: resolved.exe,
            args: resolved.args,
            started_at: SystemTime::now(),
            enforcement: if spec.limits.is_empty() {
                Enforcement::None
            } else {
                cgroup.enforcement
            },
            cgroup_dirs: cgroup.dirs,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            stdin_closing: watch::Sender::new(false),
            logs,
            readers,
            status: watch::Sender::new(None),
            exited: watch::Sender::new(false),
            detach: watch::Sender::new(false),
            cpu_sample: Mutex::new((Instant::now(), 0)),
        });
        let pump_of = |pipe: pipe::Receiver, i: usize| {
            tokio::spawn(pump(
                pipe,
                Arc::clone(&proc.logs[i]),
                Arc::clone(&proc.readers[i]),
                proc.detach.subscribe(),
                proc.exited.subscribe(),
                if i == 0 { piped.stdout } else { piped.stderr },
            ))
        };
        let pumps = [pump_of(stdout, 0), pump_of(stderr, 1)];
        lock(&self.inner.procs).insert(id.to_owned(), Arc::clone(&proc));
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            // Shutdown began during this spawn and may not have seen it.
            proc.detach.send_replace(true);
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let status = launch::exit_status(&exit).await;
            proc.exited.send_replace(true);
            // What it started in its group (or cgroup) goes with it: nothing is left behind.
            let _ = rustix::process::kill_process_group(proc.pid, Signal::KILL);
            // Nobody reads its stdin any more: the pipe goes now, not with the record (a node
            // that kept one per ended process ran out of descriptors, and each later spawn
            // copied and closed them all).
            proc.stdin_closing.send_replace(true);
            proc.stdin.lock().await.take();
            if !proc.cgroup_dirs.is_empty() {
                let dirs = proc.cgroup_dirs.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    dirs.iter().for_each(|d| limits::kill_and_remove(d))
                })
                .await;
            }
            inner.journal.ended(&proc.id);
            for pump in pumps {
                let _ = pump.await;
            }
            proc.status.send_replace(Some(status));
        });
        Ok(pid.as_raw_nonzero().get() as u32)
    }

    fn get(&self, id: &str) -> Result<Arc<Proc>, ProcError> {
        lock(&self.inner.procs)
            .get(id)
            .cloned()
            .ok_or_else(|| ProcError::Unknown(id.to_owned()))
    }

    fn info_of(proc: &Proc) -> ProcInfo {
        ProcInfo {
            id: proc.id.clone(),
            pid: proc.pid.as_raw_nonzero().get() as u32,
            exe: proc.exe.clone(),
            args: proc.args.clone(),
            started_at: proc.started_at,
            status: *proc.status.borrow(),
            enforcement: proc.enforcement,
        }
    }

    /// What the table knows of `id`.
    pub fn info(&self, id: &str) -> Result<ProcInfo, ProcError> {
        let proc = self.get(id)?;
        Ok(Self::info_of(&proc))
    }

    /// Every process in the table, running or ended, by id.
    pub fn list(&self) -> Vec<ProcInfo> {
        let mut all: Vec<ProcInfo> = lock(&self.inner.procs)
            .values()
            .map(|p| Self::info_of(p))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Waits until `id` has ended and all its output is logged.
    pub async fn wait(&self, id: &str) -> Result<ExitStatus, ProcError> {
        let proc = self.get(id)?;
        let mut status = proc.status.subscribe();
        let waited = status.wait_for(Option::is_some).await.map(|s| *s);
        match waited {
            Ok(Some(status)) => Ok(status),
            // The sender lives in `proc`, which we hold.
            _ => Err(ProcError::Ended(id.to_owned())),
        }
    }

    /// Sends `sig` to the process group of `id`.
    pub fn signal(&self, id: &str, sig: Sig) -> Result<(), ProcError> {
        let proc = self.get(id)?;
        // Once reaped, its pid may belong to someone else.
        if *proc.exited.borrow() {
            return Err(ProcError::Ended(id.to_owned()));
        }
        rustix::process::kill_process_group(proc.pid, sig.raw()).map_err(|e| ProcError::Signal {
            id: id.to_owned(),
            source: e.into(),
        })
    }

    /// TERM to the process group, then KILL if it is still running after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<ExitStatus, ProcError> {
        let proc = self.get(id)?;
        if let Some(status) = *proc.status.borrow() {
            return Ok(status);
        }
        stop_proc(&proc, grace).await;
        self.wait(id).await
    }

    /// Writes `bytes` to the program's stdin (waiting while its pipe is full).
    pub async fn write_stdin(&self, id: &str, bytes: &[u8]) -> Result<(), ProcError> {
        let proc = self.get(id)?;
        let closed = || ProcError::StdinClosed(id.to_owned());
        let mut closing = proc.stdin_closing.subscribe();
        let written = tokio::select! {
            written = async {
                let mut stdin = proc.stdin.lock().await;
                let pipe = stdin.as_mut().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                pipe.write_all(bytes).await?;
                pipe.flush().await
            } => written,
            // A program that does not read its stdin must not keep it from being closed.
            _ = closing.wait_for(|c| *c) => return Err(closed()),
        };
        written.map_err(|source| match source.kind() {
            std::io::ErrorKind::BrokenPipe => ProcError::StdinClosed(id.to_owned()),
            _ => ProcError::Stdin {
                id: id.to_owned(),
                source,
            },
        })
    }

    /// Closes the program's stdin: it reads end of file.
    pub async fn close_stdin(&self, id: &str) -> Result<(), ProcError> {
        let proc = self.get(id)?;
        proc.stdin_closing.send_replace(true);
        proc.stdin.lock().await.take();
        Ok(())
    }

    /// Attaches readers to the output from now on (see [`Attached`]).
    pub fn attach(&self, id: &str) -> Result<Attached, ProcError> {
        let proc = self.get(id)?;
        let mut receivers = Vec::with_capacity(2);
        for readers in &proc.readers {
            let mut readers = lock(readers);
            readers.retain(|r| !r.is_closed());
            if readers.len() >= MAX_READERS {
                return Err(ProcError::TooManyReaders(id.to_owned()));
            }
            let (tx, rx) = mpsc::channel(READER_QUEUE);
            // A stream that already ended keeps no senders: the receiver ends at once.
            if proc.status.borrow().is_none() {
                readers.push(tx);
            }
            receivers.push(rx);
        }
        let stderr = receivers.pop();
        let stdout = receivers.pop();
        match (stdout, stderr) {
            (Some(stdout), Some(stderr)) => Ok(Attached { stdout, stderr }),
            _ => Err(ProcError::Unknown(id.to_owned())),
        }
    }

    /// Writes a line of the node's own into a stream's log, `[plexus: TEXT]`: what happened to
    /// the process's pipes shows where its output is read.
    pub fn note(&self, id: &str, stream: Stream, text: &str) -> Result<(), ProcError> {
        let proc = self.get(id)?;
        proc.logs[index(stream)].append(format!("[plexus: {text}]\n").as_bytes());
        Ok(())
    }

    /// The whole retained log of a stream; a marker line stands where output was dropped.
    pub fn read_log(&self, id: &str, stream: Stream) -> Result<Vec<u8>, ProcError> {
        Ok(self.get(id)?.logs[index(stream)].read_all()?)
    }

    /// The last `lines` lines of a stream's retained log.
    pub fn tail(&self, id: &str, stream: Stream, lines: usize) -> Result<Vec<u8>, ProcError> {
        let all = self.read_log(id, stream)?;
        Ok(log::tail_lines(&all, lines).to_vec())
    }

    /// New bytes of a stream's log from `offset` (0 is the start) until the process has ended
    /// and everything was read.
    pub fn follow(&self, id: &str, stream: Stream, offset: u64) -> Result<Follow, ProcError> {
        Ok(self.get(id)?.logs[index(stream)].follow(offset))
    }

    /// CPU% since the previous call for this process (since its start on the first), RSS and
    /// start time. Fails with [`ProcError::Ended`] once it has ended.
    pub fn stats(&self, id: &str) -> Result<Stats, ProcError> {
        let proc = self.get(id)?;
        let ended = || ProcError::Ended(id.to_owned());
        if *proc.exited.borrow() {
            return Err(ended());
        }
        let raw = proc.pid.as_raw_nonzero().get();
        let sample = stats::sample(raw, &proc.cgroup_dirs).ok_or_else(ended)?;
        let now = Instant::now();
        let mut last = lock(&proc.cpu_sample);
        let cpu_percent = stats::cpu_percent(last.1, sample.cpu_ticks, now.duration_since(last.0));
        *last = (now, sample.cpu_ticks);
        Ok(Stats {
            cpu_percent,
            rss_bytes: sample.rss_bytes,
            started_at: proc.started_at,
        })
    }

    /// Deletes the log files of ids this supervisor does not know (a previous run of the node
    /// left them) for which `keep` is false; gives how many files were deleted. Blocking I/O
    /// over the log directory: call it off the async threads.
    pub fn sweep_logs(&self, keep: impl Fn(&str) -> bool) -> std::io::Result<usize> {
        let mut deleted = 0;
        for entry in std::fs::read_dir(&self.inner.config.log_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `<id>.out`, `<id>.err`, `<id>.out.1`, `<id>.err.1`.
            let Some(id) = [".out", ".err", ".out.1", ".err.1"]
                .iter()
                .find_map(|ext| name.strip_suffix(ext))
            else {
                continue;
            };
            let known =
                lock(&self.inner.procs).contains_key(id) || lock(&self.inner.starting).contains(id);
            if !known && !keep(id) && std::fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Forgets an ended process and deletes its logs.
    pub fn remove(&self, id: &str) -> Result<(), ProcError> {
        let mut procs = lock(&self.inner.procs);
        let proc = procs
            .get(id)
            .ok_or_else(|| ProcError::Unknown(id.to_owned()))?;
        if proc.status.borrow().is_none() {
            return Err(ProcError::Running(id.to_owned()));
        }
        for path in proc.logs.iter().flat_map(|l| l.paths()) {
            let _ = std::fs::remove_file(path);
        }
        procs.remove(id);
        Ok(())
    }

    /// Stores a program for `--copy` in this node's cache, `programs/` in the state directory:
    /// named `<BLAKE3 hex>[.<extension>]`, mode 0700, written atomically, reused for the same
    /// bytes; `extension` keeps the interpreter choice (`py` runs with `python3`). Blocking I/O
    /// of up to [`crate::MAX_PROGRAM_BYTES`], so call it off the async threads.
    pub fn cache_program(
        &self,
        bytes: &[u8],
        extension: Option<&str>,
    ) -> Result<PathBuf, CacheError> {
        cache::store(
            &self.inner.config.state_dir.join("programs"),
            bytes,
            extension,
        )
    }

    /// The cached program file `name` (as [`Supervisor::cache_program`] named it), if this
    /// node has it, marked as just used. A name with a `/` or a leading `.` names nothing.
    pub fn cached_program(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        let path = self.inner.config.state_dir.join("programs").join(name);
        cache::touch(&path).ok().map(|()| path)
    }

    /// Deletes the least recently used programs (stored or looked up longest ago) until the
    /// cache holds at most [`Config::program_cache_limit`] bytes, sparing those `keep` names
    /// (programs that processes still need); gives the bytes deleted. Blocking I/O: call it off
    /// the async threads.
    pub fn trim_program_cache(&self, keep: impl Fn(&str) -> bool) -> std::io::Result<u64> {
        cache::trim(
            &self.inner.config.state_dir.join("programs"),
            self.inner.config.program_cache_limit,
            keep,
        )
    }

    /// Stops every process (TERM, `grace`, KILL), waits for them, and removes this supervisor's
    /// cgroups. Later spawns fail with [`SpawnError::ShuttingDown`].
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let procs: Vec<Arc<Proc>> = lock(&self.inner.procs).values().cloned().collect();
        for proc in &procs {
            proc.detach.send_replace(true);
        }
        let stops = procs.iter().map(|p| stop_proc(p, grace));
        for stop in stops.collect::<Vec<_>>() {
            stop.await;
        }
        let dirs = self.inner.cgroups.dirs();
        let _ = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                let _ = std::fs::remove_dir(dir);
            }
        })
        .await;
    }
}

/// TERM, then KILL after `grace`; returns once the process has ended.
async fn stop_proc(proc: &Proc, grace: Duration) {
    let mut exited = proc.exited.subscribe();
    // Once reaped, its pid may belong to someone else: signal only before.
    if !*exited.borrow() {
        let _ = rustix::process::kill_process_group(proc.pid, Signal::TERM);
        // A stopped process cannot act on TERM.
        let _ = rustix::process::kill_process_group(proc.pid, Signal::CONT);
        let ended = tokio::time::timeout(grace, exited.wait_for(|e| *e)).await;
        if ended.is_err() {
            let _ = rustix::process::kill_process_group(proc.pid, Signal::KILL);
        }
    }
    let _ = proc.status.subscribe().wait_for(Option::is_some).await;
}

/// Reads one pipe into the log and the attached readers, waiting for the slowest reader. A
/// `piped` stream is not logged and is no longer read once its readers are gone.
async fn pump(
    pipe: pipe::Receiver,
    log: Arc<StreamLog>,
    readers: Readers,
    mut detach: watch::Receiver<bool>,
    mut exited: watch::Receiver<bool>,
    piped: bool,
) {
    // Most programs write little: a read gets a small buffer (a quiet process costs the node
    // little memory) that grows while reads fill it. None is held while the pipe is empty.
    let mut want = PIPE_CHUNK_FIRST;
    let most = if piped { PIPED_CHUNK } else { PIPE_CHUNK };
    loop {
        // After the program has ended, a pipe with nothing to read for a while is held open
        // only by a process that left its group (`setsid`): stop waiting for its end of file.
        let linger = async {
            let _ = exited.wait_for(|e| *e).await;
            tokio::time::sleep(PIPE_LINGER).await;
        };
        tokio::select! {
            ready = pipe.readable() => if ready.is_err() { break },
            () = linger => break,
        }
        let mut buf = BytesMut::with_capacity(want);
        match pipe.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(n) if n >= want => want = (want * 2).min(most),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        let chunk = buf.freeze();
        let attached: Vec<mpsc::Sender<Bytes>> = lock(&readers).clone();
        let mut gone = false;
        for reader in attached {
            tokio::select! {
                sent = reader.send(chunk.clone()) => gone |= sent.is_err(),
                _ = detach.wait_for(|detached| *detached) => gone = true,
            }
        }
        // After the readers: the log's first write makes its file, which an attached
        // caller's first byte need not wait for.
        if !piped {
            log.append(&chunk);
        }
        if *detach.borrow() {
            lock(&readers).clear();
        } else if gone {
            lock(&readers).retain(|r| !r.is_closed());
        }
        if piped && lock(&readers).is_empty() {
            break; // the pipe's consumer is gone: the program gets EPIPE
        }
    }
    lock(&readers).clear();
    log.finish();
}

/// Kills what a previous run left: the process groups its journal (or, from before the
/// journal, a `<id>.pid` file) names, unless the pid now belongs to another process, and every
/// process in this supervisor's cgroups.
fn reap_leftovers(
    journal: Vec<Leftover>,
    pid_dir: &Path,
    cgroups: &CgroupRoots,
) -> std::io::Result<Vec<String>> {
    let kill = |pid: i32, ticks: u64| {
        // A live process with this pid but another start time is someone else. A group whose
        // leader is gone still holds the pid number, so it can only be ours.
        let reused = stats::start_ticks(pid).is_some_and(|now| now != ticks);
        if let (false, Some(pid)) = (reused, Pid::from_raw(pid)) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
    };
    let mut lost = Vec::new();
    for left in journal {
        kill(left.pid, left.start_ticks);
        lost.push(left.id);
    }
    for entry in std::fs::read_dir(pid_dir)? {
        let path = entry?.path();
        let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "pid") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut fields = text.split_whitespace();
            let pid = fields.next().and_then(|f| f.parse::<i32>().ok());
            let ticks = fields.next().and_then(|f| f.parse::<u64>().ok());
            if let (Some(pid), Some(ticks)) = (pid, ticks) {
                kill(pid, ticks);
            }
            let _ = std::fs::remove_file(&path);
            lost.push(id);
        }
    }
    for root in cgroups.dirs() {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                limits::kill_and_remove(&entry.path());
                if let Some(id) = entry.file_name().to_str() {
                    lost.push(id.to_owned());
                }
            }
        }
    }
    lost.sort();
    lost.dedup();
    Ok(lost)
}
