//! The process table: one [`ProcRecord`] per program the cluster (or a single node) runs.
//!
//! The same records live in a node's database ([`crate::NodeDb`]) and in the replicated
//! cluster state; both keep them in a [`ProcTables`] (redb tables named by the owner) and
//! serve them through the [`ProcTable`] trait, so the process service does not care which
//! backing it has. The rules (ids, names, generations, retention, what is stored):
//! `docs/storage.md`.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::error::DbResult;
use crate::{BoxFuture, StoreError};

/// The first byte of an encoded record: the encoding's version.
pub const PROC_ENCODING: u8 = 3;
/// Most ended records a table keeps; beyond it the oldest ended ones are removed.
pub const MAX_ENDED_PROCS: u64 = 1000;
/// Most records a table holds (live and ended); a put beyond it is refused.
pub const MAX_PROCS: u64 = 100_000;
/// Largest encoded record.
pub const MAX_PROC_BYTES: usize = 256 << 10;
/// Most command-line arguments (the program included).
pub const MAX_ARGS: usize = 4096;
/// Most environment variables.
pub const MAX_ENV: usize = 1024;
/// Most tag expressions in a placement request.
pub const MAX_TAG_EXPRS: usize = 64;
/// Longest process name, node name (placed on or asked for) or `--everywhere` group id, in
/// bytes.
pub const MAX_PROC_NAME_BYTES: usize = 64;
/// Longest tag expression, in bytes.
pub const MAX_TAG_EXPR_BYTES: usize = 1024;
/// Longest failure reason kept, in bytes (longer ones are cut at a char boundary).
pub const MAX_REASON_BYTES: usize = 1024;
/// How many fresh ids [`ProcId::generate`] tries before giving up.
pub const MAX_ID_ATTEMPTS: usize = 16;

/// Lowercase Crockford base32 (no `i`, `l`, `o`, `u`): ids read aloud and typed without
/// confusing `1` and `l` or `0` and `o`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A process id: 6 characters of lowercase Crockford base32 (30 random bits), such as
/// `k7f2q1`, unique in the cluster (a put of an id already in the table is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProcId([u8; 6]);

impl ProcId {
    /// The id spelled by the low 30 bits of `random`.
    pub fn from_random(random: [u8; 4]) -> ProcId {
        let bits = u32::from_le_bytes(random);
        let mut id = [0u8; 6];
        for (i, c) in id.iter_mut().enumerate() {
            *c = ALPHABET[((bits >> (5 * i)) & 31) as usize];
        }
        ProcId(id)
    }

    /// A fresh id from `random`, skipping ids for which `taken` says yes; `None` after
    /// [`MAX_ID_ATTEMPTS`] taken ones (a nearly full id space or a broken random source).
    pub fn generate(
        mut random: impl FnMut() -> [u8; 4],
        mut taken: impl FnMut(&ProcId) -> bool,
    ) -> Option<ProcId> {
        (0..MAX_ID_ATTEMPTS)
            .map(|_| ProcId::from_random(random()))
            .find(|id| !taken(id))
    }

    /// Parses an id (exactly 6 characters of the alphabet).
    pub fn parse(s: &str) -> Result<ProcId, ProcError> {
        let bytes: [u8; 6] = s
            .as_bytes()
            .try_into()
            .map_err(|_| ProcError::BadId(s.to_owned()))?;
        if bytes.iter().all(|b| ALPHABET.contains(b)) {
            Ok(ProcId(bytes))
        } else {
            Err(ProcError::BadId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only alphabet bytes get in (`from_random`, `parse`), so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("??????")
    }
}

impl std::fmt::Display for ProcId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for ProcId {
    type Error = ProcError;
    fn try_from(s: String) -> Result<ProcId, ProcError> {
        ProcId::parse(&s)
    }
}

impl From<ProcId> for String {
    fn from(id: ProcId) -> String {
        id.as_str().to_owned()
    }
}

/// Where a process is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcState {
    /// Placed; its node is spawning it.
    Starting,
    /// Running on its node.
    Running,
    /// Ended by itself with this exit code.
    Exited(i32),
    /// Ended by this signal.
    Killed(i32),
    /// Could not be started (no such program, not executable, …), for this reason.
    FailedToStart(String),
    /// Its node is down (or restarted and no longer has it); it may be placed again.
    Lost,
    /// Waiting to start again (restart backoff, or being moved to another node).
    Restarting,
    /// Failed too often in a row; no longer restarted.
    CrashLooping,
}

impl ProcState {
    /// Whether the process is over for good: exited, killed, failed to start or crash
    /// looping. Ended records free their name and count against [`MAX_ENDED_PROCS`]; a lost
    /// one is not ended, since it may be placed again.
    pub fn is_ended(&self) -> bool {
        matches!(
            self,
            ProcState::Exited(_)
                | ProcState::Killed(_)
                | ProcState::FailedToStart(_)
                | ProcState::CrashLooping
        )
    }

    /// The state in one word, for `ps`: `exited(0)`, `killed(9)`, `failed`, …
    pub fn short(&self) -> String {
        match self {
            ProcState::FailedToStart(_) => "failed".to_owned(),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for ProcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcState::Starting => f.write_str("starting"),
            ProcState::Running => f.write_str("running"),
            ProcState::Exited(code) => write!(f, "exited({code})"),
            ProcState::Killed(signal) => write!(f, "killed({signal})"),
            ProcState::FailedToStart(why) => write!(f, "failed-to-start({why})"),
            ProcState::Lost => f.write_str("lost"),
            ProcState::Restarting => f.write_str("restarting"),
            ProcState::CrashLooping => f.write_str("crash-looping"),
        }
    }
}

/// When a process that ended is started again (the scheduler's type, stored by its index).
pub use plexus_sched::RestartPolicy;

/// Which resource limits the node enforced on the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Enforced {
    /// None (none asked, or not started yet).
    #[default]
    None,
    /// A cgroup v2 (`memory.max`, `cpu.max`, `pids.max`).
    Cgroup,
    /// rlimits (the node could not create cgroups).
    Rlimit,
}

impl std::fmt::Display for Enforced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Enforced::None => "none",
            Enforced::Cgroup => "cgroup",
            Enforced::Rlimit => "rlimit",
        })
    }
}

/// What the process asked of its node: the scheduler's input, kept so that the process can
/// be placed again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The node asked for by name (`--on`), if any.
    pub on: Option<String>,
    /// Tag expressions the node must satisfy (`camera||webcam`, `site=lab`), as written.
    pub tags: Vec<String>,
    /// CPU reserved, in thousandths of a core.
    pub cpu_millis: Option<u64>,
    /// Memory reserved, in bytes.
    pub mem_bytes: Option<u64>,
}

/// Where a pipe from a process's output goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipeTarget {
    /// The standard input of a process of the same graph.
    Proc(ProcId),
    /// The terminal of the session that started the graph, through the node that started it
    /// (named here).
    Console(String),
}

/// One pipe from a process's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The pipe's id, unique in the cluster (`<graph>.<edge>`, with replica numbers).
    pub pipe: String,
    /// Which output: standard error when set, standard output otherwise (unless `channel`).
    pub stderr: bool,
    /// The named output it carries (`PLX_OUT_<NAME>`), instead of a standard one.
    pub channel: Option<String>,
    /// Where it goes.
    pub to: PipeTarget,
}

/// One pipe into a process's standard input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    /// The pipe's id.
    pub pipe: String,
    /// The process at its other end.
    pub from: ProcId,
    /// The named input it feeds (`PLX_IN_<NAME>`), or standard input.
    pub channel: Option<String>,
}

/// How a process of a pipeline or graph is connected to the others (`docs/pipes.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wiring {
    /// The graph's id (`g` and 6 characters, like a process id), shared by all its processes.
    pub graph: String,
    /// The graph's name (`pipeline` for a shell pipeline, the `.osh` graph's name otherwise).
    pub graph_name: String,
    /// The process's name in the graph (a stage number, or an `.osh` node id and replica).
    pub stage: String,
    /// Pipes into its standard input; from several, whole records are kept apart.
    pub inputs: Vec<Incoming>,
    /// Its input's record format: `raw`, `segment` or `json`.
    pub input_format: String,
    /// Its standard input comes from the terminal of the session that started the graph.
    pub terminal_input: bool,
    /// Pipes from its outputs.
    pub outputs: Vec<Outgoing>,
    /// Its output's record format.
    pub output_format: String,
    /// The standard output pipes to processes share its records (a split) instead of each
    /// taking every byte.
    pub split: bool,
    /// The most bytes a second it may write (`max_rate`), if limited.
    pub max_rate: Option<u64>,
    /// Bytes a pipe may have in flight.
    pub window: u64,
    /// Its merged input's JSON records are written in the order of this field (`order_by`).
    pub order_by: Option<String>,
    /// Every how many seconds the state it saves is kept in the cluster (`checkpoint`).
    pub checkpoint: Option<u64>,
}

/// Longest pipe or graph id, stage name or graph name.
pub const MAX_WIRING_NAME_BYTES: usize = 128;
/// Most pipes into or out of one process.
pub const MAX_PIPES_PER_PROC: usize = 256;

/// One process of the table.
///
/// `env` holds values as well as keys: a process placed again after its node is lost needs
/// them, and the cluster state is already trusted with secrets (every node holds the private
/// io.store entries). Readers show the keys only ([`PsTable`] shows neither).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// Its id.
    pub id: ProcId,
    /// Its name, unique among the table's live (not ended) processes.
    pub name: Option<String>,
    /// The public key of the user who started it.
    pub owner: [u8; 32],
    /// The name of the node it is placed on.
    pub node: String,
    /// The program and its arguments (no NUL). A program shipped with `--copy` is named here
    /// as its file was (`job.py`), and found by [`ProcRecord::copied`].
    pub command: Vec<String>,
    /// The program cache's name of the file shipped with `--copy` (`<BLAKE3 hex>[.ext]`):
    /// whichever node runs the process takes the file from its own cache, or fetches it from
    /// a node that has it.
    pub copied: Option<String>,
    /// Environment variables set for it (no NUL, no `=` in keys).
    pub env: Vec<(String, String)>,
    /// Its working directory, if not the node's default.
    pub cwd: Option<String>,
    /// What it asked of its node.
    pub placement: Placement,
    /// When it is started again.
    pub restart: RestartPolicy,
    /// The id of its `--everywhere` group, if it is one copy of such a program.
    pub everywhere: Option<String>,
    /// Its state.
    pub state: ProcState,
    /// When it was (last) started, in ms since the Unix epoch; 0 before it started.
    pub started_ms: u64,
    /// When it ended, in ms since the Unix epoch; set exactly when the state is ended.
    pub ended_ms: Option<u64>,
    /// How many times it was started again.
    pub restarts: u32,
    /// Which limits its node enforced.
    pub limits: Enforced,
    /// What Plexus last did to it on its own, and why: `moved from n2 (its node is down)`,
    /// `lost: its node n3 is down (restart policy never)`.
    pub note: Option<String>,
    /// Bumped by every update; an update must name the generation it read, so a racing one
    /// is refused rather than lost ([`ProcError::Conflict`]). A put stores generation 0.
    pub generation: u64,
    /// Its pipes, when it is a process of a pipeline or graph.
    pub wiring: Option<Wiring>,
}

impl ProcRecord {
    /// A record in state `starting`, generation 0, with nothing else set.
    pub fn new(id: ProcId, owner: [u8; 32], node: &str, command: Vec<String>) -> ProcRecord {
        ProcRecord {
            id,
            name: None,
            owner,
            node: node.to_owned(),
            command,
            copied: None,
            env: Vec::new(),
            cwd: None,
            placement: Placement::default(),
            restart: RestartPolicy::Never,
            everywhere: None,
            state: ProcState::Starting,
            started_ms: 0,
            ended_ms: None,
            restarts: 0,
            limits: Enforced::None,
            note: None,
            generation: 0,
            wiring: None,
        }
    }

    /// The exit status a shell would report: the exit code, or 128 + the signal.
    pub fn exit_status(&self) -> Option<i32> {
        match self.state {
            ProcState::Exited(code) => Some(code),
            ProcState::Killed(signal) => Some(128_i32.saturating_add(signal)),
            _ => None,
        }
    }

    /// The name if the process is live (the name it holds in the table).
    fn live_name(&self) -> Option<&str> {
        self.name.as_deref().filter(|_| !self.state.is_ended())
    }

    /// Checks the record against the table's rules: names, lengths, counts, no NUL, an end
    /// time exactly when ended.
    pub fn validate(&self) -> Result<(), ProcError> {
        let bad = |why: String| Err(ProcError::Invalid(why));
        if let Some(name) = &self.name {
            if !valid_name(name) {
                return bad(format!(
                    "the process name {name:?} is not 1 to {MAX_PROC_NAME_BYTES} letters, digits, '.', '_' or '-'"
                ));
            }
            if ProcId::parse(name).is_ok() {
                return bad(format!(
                    "the process name {name:?} could be read as a process id; choose another"
                ));
            }
        }
        if self.node.is_empty() || self.node.len() > MAX_PROC_NAME_BYTES {
            return bad(format!(
                "a node name has 1 to {MAX_PROC_NAME_BYTES} bytes, not {}",
                self.node.len()
            ));
        }
        if self.command.is_empty() || self.command.first().is_some_and(String::is_empty) {
            return bad("a process needs a program to run".to_owned());
        }
        if self.command.len() > MAX_ARGS {
            return bad(format!(
                "a command has at most {MAX_ARGS} arguments, not {}",
                self.command.len()
            ));
        }
        if let Some(arg) = self.command.iter().find(|a| a.contains('\0')) {
            return bad(format!("the argument {arg:?} holds a NUL byte"));
        }
        if self.env.len() > MAX_ENV {
            return bad(format!(
                "at most {MAX_ENV} environment variables, not {}",
                self.env.len()
            ));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return bad(format!(
                    "the environment variable {k:?} has an empty name, '=' in its name or a NUL byte"
                ));
            }
        }
        if self
            .cwd
            .as_deref()
            .is_some_and(|c| c.is_empty() || c.contains('\0'))
        {
            return bad("the working directory is empty or holds a NUL byte".to_owned());
        }
        if self.placement.tags.len() > MAX_TAG_EXPRS {
            return bad(format!("at most {MAX_TAG_EXPRS} tag expressions"));
        }
        let fits =
            |max: usize| move |s: &String| !s.is_empty() && s.len() <= max && !s.contains('\0');
        let names_ok = self.placement.tags.iter().all(fits(MAX_TAG_EXPR_BYTES))
            && self.placement.on.iter().all(fits(MAX_PROC_NAME_BYTES))
            && self.everywhere.iter().all(fits(MAX_PROC_NAME_BYTES));
        if !names_ok {
            return bad(
                "a tag expression, node or group id is empty, too long or holds a NUL byte"
                    .to_owned(),
            );
        }
        if let ProcState::FailedToStart(why) = &self.state {
            if why.len() > MAX_REASON_BYTES {
                return bad(format!(
                    "a failure reason has at most {MAX_REASON_BYTES} bytes"
                ));
            }
        }
        if self
            .note
            .as_ref()
            .is_some_and(|n| n.len() > MAX_REASON_BYTES)
        {
            return bad(format!("a note has at most {MAX_REASON_BYTES} bytes"));
        }
        if let Some(copied) = &self.copied {
            if !valid_cache_name(copied) {
                return bad(format!(
                    "{copied:?} is not a program cache name (64 hex digits, then an optional extension of 1 to 16 letters or digits)"
                ));
            }
        }
        if let Some(w) = &self.wiring {
            let names = [&w.graph, &w.graph_name, &w.stage]
                .into_iter()
                .chain(w.inputs.iter().map(|i| &i.pipe))
                .chain(w.outputs.iter().map(|o| &o.pipe));
            for name in names {
                if name.len() > MAX_WIRING_NAME_BYTES || name.contains('\0') {
                    return bad(format!(
                        "a graph, stage or pipe name has at most {MAX_WIRING_NAME_BYTES} bytes and no NUL"
                    ));
                }
            }
            if w.inputs.len() > MAX_PIPES_PER_PROC || w.outputs.len() > MAX_PIPES_PER_PROC {
                return bad(format!(
                    "a process has at most {MAX_PIPES_PER_PROC} pipes in and out"
                ));
            }
        }
        if self.state.is_ended() != self.ended_ms.is_some() {
            return bad(format!(
                "a record in state {} must {} an end time",
                self.state,
                if self.state.is_ended() {
                    "have"
                } else {
                    "not have"
                }
            ));
        }
        Ok(())
    }

    /// The versioned encoding: [`PROC_ENCODING`], then the record in postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![PROC_ENCODING];
        // Serializing to a Vec fails only for types serde cannot express, and this one has
        // none; an empty body would then be refused on decode rather than stored wrong.
        if let Ok(body) = postcard::to_extend(self, Vec::new()) {
            out.extend(body);
        }
        out
    }

    /// Decodes and validates a record ([`ProcRecord::encode`]); never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<ProcRecord, ProcError> {
        if bytes.len() > MAX_PROC_BYTES {
            return Err(ProcError::Limit(format!(
                "an encoded process record has at most {MAX_PROC_BYTES} bytes, not {}",
                bytes.len()
            )));
        }
        let Some((&version, body)) = bytes.split_first() else {
            return Err(ProcError::Decode("an empty process record".to_owned()));
        };
        let (record, rest): (ProcRecord, &[u8]) = match version {
            PROC_ENCODING => {
                postcard::take_from_bytes(body).map_err(|e| ProcError::Decode(e.to_string()))?
            }
            2 => postcard::take_from_bytes::<RecordV2>(body)
                .map(|(old, rest)| (old.into(), rest))
                .map_err(|e| ProcError::Decode(e.to_string()))?,
            1 => postcard::take_from_bytes::<RecordV1>(body)
                .map(|(old, rest)| (old.into(), rest))
                .map_err(|e| ProcError::Decode(e.to_string()))?,
            _ => {
                return Err(ProcError::Decode(format!(
                    "process record encoding {version} is not one of the supported 1, 2 and {PROC_ENCODING}"
                )))
            }
        };
        if !rest.is_empty() {
            return Err(ProcError::Decode(format!(
                "{} bytes after the process record",
                rest.len()
            )));
        }
        record.validate()?;
        Ok(record)
    }

    /// The encoding, refused beyond [`MAX_PROC_BYTES`].
    pub fn encode_checked(&self) -> Result<Vec<u8>, ProcError> {
        let bytes = self.encode();
        if bytes.len() > MAX_PROC_BYTES {
            return Err(ProcError::Limit(format!(
                "the process record takes {} bytes; at most {MAX_PROC_BYTES} (a shorter command or environment)",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

/// A record of encoding 1, before `copied` and `note`: still read, written as the current one.
#[derive(Deserialize)]
struct RecordV1 {
    id: ProcId,
    name: Option<String>,
    owner: [u8; 32],
    node: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    placement: Placement,
    restart: RestartPolicy,
    everywhere: Option<String>,
    state: ProcState,
    started_ms: u64,
    ended_ms: Option<u64>,
    restarts: u32,
    limits: Enforced,
    generation: u64,
}

impl From<RecordV1> for ProcRecord {
    fn from(old: RecordV1) -> ProcRecord {
        ProcRecord {
            id: old.id,
            name: old.name,
            owner: old.owner,
            node: old.node,
            command: old.command,
            copied: None,
            env: old.env,
            cwd: old.cwd,
            placement: old.placement,
            restart: old.restart,
            everywhere: old.everywhere,
            state: old.state,
            started_ms: old.started_ms,
            ended_ms: old.ended_ms,
            restarts: old.restarts,
            limits: old.limits,
            note: None,
            generation: old.generation,
            wiring: None,
        }
    }
}

/// A record of encoding 2, before `wiring`: still read, written as the current one.
#[derive(Deserialize)]
struct RecordV2 {
    id: ProcId,
    name: Option<String>,
    owner: [u8; 32],
    node: String,
    command: Vec<String>,
    copied: Option<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    placement: Placement,
    restart: RestartPolicy,
    everywhere: Option<String>,
    state: ProcState,
    started_ms: u64,
    ended_ms: Option<u64>,
    restarts: u32,
    limits: Enforced,
    note: Option<String>,
    generation: u64,
}

impl From<RecordV2> for ProcRecord {
    fn from(old: RecordV2) -> ProcRecord {
        ProcRecord {
            id: old.id,
            name: old.name,
            owner: old.owner,
            node: old.node,
            command: old.command,
            copied: old.copied,
            env: old.env,
            cwd: old.cwd,
            placement: old.placement,
            restart: old.restart,
            everywhere: old.everywhere,
            state: old.state,
            started_ms: old.started_ms,
            ended_ms: old.ended_ms,
            restarts: old.restarts,
            limits: old.limits,
            note: old.note,
            generation: old.generation,
            wiring: None,
        }
    }
}

/// `text` cut to at most [`MAX_REASON_BYTES`] on a character boundary: a failure reason or a
/// note that fits a record.
pub fn clip_reason(text: &str) -> String {
    let mut end = text.len().min(MAX_REASON_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Whether `name` is a program cache file name: `<64 lowercase hex>[.<1-16 ASCII letters or
/// digits>]`.
pub fn valid_cache_name(name: &str) -> bool {
    let (hash, ext) = match name.split_once('.') {
        Some((hash, ext)) => (hash, Some(ext)),
        None => (name, None),
    };
    hash.len() == 64
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && ext.is_none_or(|e| {
            !e.is_empty() && e.len() <= 16 && e.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROC_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a process-table operation failed. [`ProcError::code`] gives the error code it
/// travels with.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProcError {
    /// Text that is not a process id.
    #[error("{0:?} is not a process id (6 characters of 0-9 and a-z without i, l, o, u)")]
    BadId(String),
    /// A record that breaks the table's rules.
    #[error("{0}")]
    Invalid(String),
    /// A record too large, or a full table.
    #[error("{0}")]
    Limit(String),
    /// Stored or carried bytes that are not a record.
    #[error("process record does not decode: {0}")]
    Decode(String),
    /// No record with this id.
    #[error("there is no process {0}")]
    NotFound(ProcId),
    /// A put of an id the table has (with another record).
    #[error("process id {0} is taken")]
    Exists(ProcId),
    /// A name a live process has.
    #[error("the process name {0} is taken by a running process")]
    NameTaken(String),
    /// An update made from a record that is no longer the latest: read it again.
    #[error(
        "process {id} changed meanwhile (update of generation {expected}, the table has {found})"
    )]
    Conflict {
        /// The process.
        id: ProcId,
        /// The generation the update was made from.
        expected: u64,
        /// The generation in the table.
        found: u64,
    },
    /// An update that changes what a record keeps for life (owner, name).
    #[error("process {0}: an update cannot change the owner or the name")]
    Immutable(ProcId),
    /// No free id after [`MAX_ID_ATTEMPTS`] tries.
    #[error("no free process id after {MAX_ID_ATTEMPTS} tries")]
    NoFreeId,
    /// The storage failed (or, for the cluster, is unavailable).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Error codes of the process table beyond the standard ones.
pub mod proc_code {
    /// [`super::ProcError::Exists`].
    pub const EXISTS: &str = "proc.exists";
    /// [`super::ProcError::NameTaken`].
    pub const NAME_TAKEN: &str = "proc.name.taken";
    /// [`super::ProcError::Conflict`].
    pub const CONFLICT: &str = "proc.conflict";
}

impl ProcError {
    /// The error code this failure travels with.
    pub fn code(&self) -> &'static str {
        use plexus_units::code;
        match self {
            ProcError::BadId(_)
            | ProcError::Invalid(_)
            | ProcError::Decode(_)
            | ProcError::Immutable(_) => code::BAD_ARGUMENT,
            ProcError::Limit(_) | ProcError::NoFreeId => code::LIMIT,
            ProcError::NotFound(_) => code::NOT_FOUND,
            ProcError::Exists(_) => proc_code::EXISTS,
            ProcError::NameTaken(_) => proc_code::NAME_TAKEN,
            ProcError::Conflict { .. } => proc_code::CONFLICT,
            ProcError::Store(e) => e.code(),
        }
    }
}

/// The tables (in a redb file) where a store keeps its process records. A node's database
/// and the cluster's state machine each have their own, named by the owner. Every operation
/// checks first and writes after, so a refused one changes nothing in the transaction, and
/// depends only on the transaction's content (the cluster applies them on every node alike).
#[derive(Clone, Copy)]
pub struct ProcTables {
    /// id → encoded record.
    records: TableDefinition<'static, &'static str, &'static [u8]>,
    /// (end time, id) of every ended record: retention's order.
    ended: TableDefinition<'static, (u64, &'static str), ()>,
    /// name → id of every live named record.
    names: TableDefinition<'static, &'static str, &'static str>,
    /// The id of every live (not ended) record: placement reads what the live processes
    /// reserve without decoding the ended ones, which are most of a busy table.
    live: TableDefinition<'static, &'static str, ()>,
    /// Most ended records kept.
    max_ended: u64,
}

impl ProcTables {
    /// The tables with these names (static, as redb needs), keeping [`MAX_ENDED_PROCS`]
    /// ended records.
    pub const fn new(
        records: &'static str,
        ended: &'static str,
        names: &'static str,
        live: &'static str,
    ) -> ProcTables {
        ProcTables {
            records: TableDefinition::new(records),
            ended: TableDefinition::new(ended),
            names: TableDefinition::new(names),
            live: TableDefinition::new(live),
            max_ended: MAX_ENDED_PROCS,
        }
    }

    /// The same tables keeping at most `max` ended records (tests).
    pub const fn with_max_ended(self, max: u64) -> ProcTables {
        ProcTables {
            max_ended: max,
            ..self
        }
    }

    /// Creates the tables if missing, and the index of live records if a file from before
    /// it (or any other mismatch) leaves it short: it is derived from the records, so
    /// rebuilding it changes nothing another node could see.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let records = txn.open_table(self.records).db()?;
        let ended = txn.open_table(self.ended).db()?;
        txn.open_table(self.names).db()?;
        let mut live = txn.open_table(self.live).db()?;
        let expected = records.len().db()?.saturating_sub(ended.len().db()?);
        if live.len().db()? != expected {
            live.retain(|_, _| false).db()?;
            for row in records.iter().db()? {
                let (id, bytes) = row.db()?;
                let rec = ProcRecord::decode(bytes.value())
                    .map_err(|e| StoreError::Corrupt(format!("process {}: {e}", id.value())))?;
                if !rec.state.is_ended() {
                    live.insert(id.value(), ()).db()?;
                }
            }
        }
        Ok(())
    }

    fn stored(
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        id: &ProcId,
    ) -> Result<Option<ProcRecord>, ProcError> {
        match table.get(id.as_str()).db()? {
            Some(g) => {
                Ok(Some(ProcRecord::decode(g.value()).map_err(|e| {
                    StoreError::Corrupt(format!("process {id}: {e}"))
                })?))
            }
            None => Ok(None),
        }
    }

    /// Refuses `rec`'s name if another live process holds it.
    fn check_name(&self, txn: &WriteTransaction, rec: &ProcRecord) -> Result<(), ProcError> {
        let Some(name) = rec.live_name() else {
            return Ok(());
        };
        let names = txn.open_table(self.names).db()?;
        let holder = names.get(name).db()?.map(|g| g.value().to_owned());
        match holder {
            Some(holder) if holder != rec.id.as_str() => Err(ProcError::NameTaken(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// Writes `rec` over `old` (if any), keeping the indexes, then applies retention.
    fn write(
        &self,
        txn: &WriteTransaction,
        old: Option<&ProcRecord>,
        rec: &ProcRecord,
        bytes: &[u8],
    ) -> Result<(), ProcError> {
        let id = rec.id.as_str();
        {
            let mut names = txn.open_table(self.names).db()?;
            let mut ended = txn.open_table(self.ended).db()?;
            let mut live = txn.open_table(self.live).db()?;
            if rec.ended_ms.is_some() {
                live.remove(id).db()?;
            } else {
                live.insert(id, ()).db()?;
            }
            if let Some(old) = old {
                if let Some(name) = old.live_name() {
                    names.remove(name).db()?;
                }
                if let Some(at) = old.ended_ms {
                    ended.remove((at, id)).db()?;
                }
            }
            if let Some(name) = rec.live_name() {
                names.insert(name, id).db()?;
            }
            if let Some(at) = rec.ended_ms {
                ended.insert((at, id), ()).db()?;
            }
            txn.open_table(self.records).db()?.insert(id, bytes).db()?;
        }
        self.retain(txn)
    }

    /// Removes the oldest ended records (by end time, then id) beyond the bound.
    fn retain(&self, txn: &WriteTransaction) -> Result<(), ProcError> {
        let mut ended = txn.open_table(self.ended).db()?;
        let mut records = txn.open_table(self.records).db()?;
        while ended.len().db()? > self.max_ended {
            let Some((key, _)) = ended.pop_first().db()? else {
                break;
            };
            let (_, id) = key.value();
            records.remove(id).db()?;
        }
        Ok(())
    }

    /// Adds `rec` at generation 0. The same record put again is a success (a retried
    /// proposal); another record with its id is [`ProcError::Exists`]; a live name another
    /// live process has is [`ProcError::NameTaken`]. Gives the stored record.
    pub fn put(&self, txn: &WriteTransaction, rec: ProcRecord) -> Result<ProcRecord, ProcError> {
        let rec = ProcRecord {
            generation: 0,
            ..rec
        };
        rec.validate()?;
        let bytes = rec.encode_checked()?;
        let (existing, count) = {
            let records = txn.open_table(self.records).db()?;
            (Self::stored(&records, &rec.id)?, records.len().db()?)
        };
        match existing {
            Some(old) if old == rec => return Ok(rec),
            Some(_) => return Err(ProcError::Exists(rec.id)),
            None => {}
        }
        if count >= MAX_PROCS {
            return Err(ProcError::Limit(format!(
                "the process table is full ({MAX_PROCS} records); remove ended ones"
            )));
        }
        self.check_name(txn, &rec)?;
        self.write(txn, None, &rec, &bytes)?;
        Ok(rec)
    }

    /// Replaces the record with `rec`'s id by `rec`, if the table's is at `rec.generation`
    /// (the one the caller read); the stored one gets the next generation. Applying the same
    /// update again is a success (a retried proposal). Otherwise: [`ProcError::NotFound`],
    /// [`ProcError::Conflict`] (someone updated it first: read again), [`ProcError::Immutable`]
    /// (owner or name changed), [`ProcError::NameTaken`] (a live name another live process
    /// took while this one was ended). Gives the stored record.
    pub fn update(&self, txn: &WriteTransaction, rec: ProcRecord) -> Result<ProcRecord, ProcError> {
        let expected = rec.generation;
        let next = ProcRecord {
            generation: expected.checked_add(1).ok_or_else(|| {
                ProcError::Limit(format!("process {} has no generation left", rec.id))
            })?,
            ..rec
        };
        next.validate()?;
        let bytes = next.encode_checked()?;
        let old = {
            let records = txn.open_table(self.records).db()?;
            Self::stored(&records, &next.id)?.ok_or(ProcError::NotFound(next.id))?
        };
        if old == next {
            return Ok(next);
        }
        if old.generation != expected {
            return Err(ProcError::Conflict {
                id: next.id,
                expected,
                found: old.generation,
            });
        }
        if old.owner != next.owner || old.name != next.name {
            return Err(ProcError::Immutable(next.id));
        }
        self.check_name(txn, &next)?;
        self.write(txn, Some(&old), &next, &bytes)?;
        Ok(next)
    }

    /// Removes the record with `id`; gives it, or `None` if there was none (removing twice
    /// is no error: a retried proposal).
    pub fn remove(
        &self,
        txn: &WriteTransaction,
        id: &ProcId,
    ) -> Result<Option<ProcRecord>, ProcError> {
        let mut records = txn.open_table(self.records).db()?;
        let Some(old) = Self::stored(&records, id)? else {
            return Ok(None);
        };
        records.remove(id.as_str()).db()?;
        txn.open_table(self.live).db()?.remove(id.as_str()).db()?;
        if let Some(name) = old.live_name() {
            txn.open_table(self.names).db()?.remove(name).db()?;
        }
        if let Some(at) = old.ended_ms {
            txn.open_table(self.ended)
                .db()?
                .remove((at, id.as_str()))
                .db()?;
        }
        Ok(Some(old))
    }

    /// The record with `id`, if any.
    pub fn get(&self, txn: &ReadTransaction, id: &ProcId) -> Result<Option<ProcRecord>, ProcError> {
        Self::stored(&txn.open_table(self.records).db()?, id)
    }

    /// Every record, by id.
    pub fn list(&self, txn: &ReadTransaction) -> Result<Vec<ProcRecord>, ProcError> {
        let mut out = Vec::new();
        for row in txn.open_table(self.records).db()?.iter().db()? {
            let (id, bytes) = row.db()?;
            out.push(
                ProcRecord::decode(bytes.value())
                    .map_err(|e| StoreError::Corrupt(format!("process {}: {e}", id.value())))?,
            );
        }
        Ok(out)
    }

    /// Every live (not ended) record, by id.
    pub fn live(&self, txn: &ReadTransaction) -> Result<Vec<ProcRecord>, ProcError> {
        let records = txn.open_table(self.records).db()?;
        let mut out = Vec::new();
        for row in txn.open_table(self.live).db()?.iter().db()? {
            let (id, _) = row.db()?;
            let id = ProcId::parse(id.value())
                .map_err(|e| StoreError::Corrupt(format!("the live index: {e}")))?;
            let rec = Self::stored(&records, &id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("the live index names {id}, which has no record"))
            })?;
            out.push(rec);
        }
        Ok(out)
    }

    /// Every record encoded, by id: what a snapshot carries.
    pub fn dump(&self, txn: &ReadTransaction) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for row in txn.open_table(self.records).db()?.iter().db()? {
            let (_, bytes) = row.db()?;
            out.push(bytes.value().to_vec());
        }
        Ok(out)
    }

    /// Replaces every record by `records` ([`ProcTables::dump`]'s), rebuilding the indexes.
    /// A record that does not decode is an error (the snapshot is damaged).
    pub fn restore(&self, txn: &WriteTransaction, records: &[Vec<u8>]) -> Result<(), ProcError> {
        let mut table = txn.open_table(self.records).db()?;
        let mut ended = txn.open_table(self.ended).db()?;
        let mut names = txn.open_table(self.names).db()?;
        let mut live = txn.open_table(self.live).db()?;
        table.retain(|_, _| false).db()?;
        ended.retain(|_, _| false).db()?;
        names.retain(|_, _| false).db()?;
        live.retain(|_, _| false).db()?;
        for bytes in records {
            let rec = ProcRecord::decode(bytes)?;
            let id = rec.id.as_str();
            table.insert(id, bytes.as_slice()).db()?;
            if let Some(name) = rec.live_name() {
                names.insert(name, id).db()?;
            }
            match rec.ended_ms {
                Some(at) => ended.insert((at, id), ()).db()?,
                None => live.insert(id, ()).db()?,
            };
        }
        Ok(())
    }
}

/// The process table as the process service uses it: implemented by [`crate::NodeDb`] for a
/// single node and by the cluster's replicated state. Each write is durable (for a cluster:
/// committed by a majority) when it returns `Ok`; reads see every write that returned.
pub trait ProcTable: Send + Sync + 'static {
    /// Adds a record ([`ProcTables::put`]).
    fn put(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>>;
    /// Replaces a record read at `record.generation` ([`ProcTables::update`]).
    fn update(&self, record: ProcRecord) -> BoxFuture<'_, Result<ProcRecord, ProcError>>;
    /// Removes a record; removing a missing one is no error ([`ProcTables::remove`]).
    fn remove(&self, id: ProcId) -> BoxFuture<'_, Result<(), ProcError>>;
    /// The record with `id`, if any.
    fn get(&self, id: ProcId) -> BoxFuture<'_, Result<Option<ProcRecord>, ProcError>>;
    /// The record with `id` as this node's copy of the table has it, without first making
    /// sure the copy has every committed change (a cluster's read barrier costs a round
    /// trip): for reads whose staleness a later step catches, such as an update's
    /// generation check or a put's refusal of a taken id.
    fn get_local(&self, id: ProcId) -> BoxFuture<'_, Result<Option<ProcRecord>, ProcError>> {
        self.get(id)
    }
    /// Every record, by id.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>>;
    /// Every live (not ended) record as this node's copy of the table has it, possibly
    /// without the changes of the last few milliseconds: for estimates, such as what the
    /// live processes reserve when placing a new one.
    fn live_local(&self) -> BoxFuture<'_, Result<Vec<ProcRecord>, ProcError>>;
    /// Whether this node's copy of the table has a record with `id`, possibly without the
    /// changes of the last few milliseconds: to draw an id that a put will almost surely
    /// accept.
    fn has_local(&self, id: ProcId) -> BoxFuture<'_, Result<bool, ProcError>> {
        Box::pin(async move { Ok(self.get_local(id).await?.is_some()) })
    }
}

/// An id drawn from `random` that this node's copy of the table does not hold
/// ([`ProcTable::has_local`]), drawing again while it does, at most [`MAX_ID_ATTEMPTS`]
/// times. A put in the last few milliseconds may still hold it: the put refuses it then.
pub async fn unused_id(
    table: &dyn ProcTable,
    mut random: impl FnMut() -> [u8; 4] + Send,
) -> Result<ProcId, ProcError> {
    for _ in 0..MAX_ID_ATTEMPTS {
        let id = ProcId::from_random(random());
        if !table.has_local(id).await? {
            return Ok(id);
        }
    }
    Err(ProcError::NoFreeId)
}

/// Puts `record` under a fresh id drawn from `random` ([`unused_id`]), drawing again when
/// the put finds the id taken (by a record another node put at the same time), at most
/// [`MAX_ID_ATTEMPTS`] times. `record.id` is ignored.
pub async fn put_with_fresh_id(
    table: &dyn ProcTable,
    record: ProcRecord,
    mut random: impl FnMut() -> [u8; 4] + Send,
) -> Result<ProcRecord, ProcError> {
    for _ in 0..MAX_ID_ATTEMPTS {
        let id = unused_id(table, &mut random).await?;
        match table
            .put(ProcRecord {
                id,
                ..record.clone()
            })
            .await
        {
            Err(ProcError::Exists(_)) => continue,
            other => return other,
        }
    }
    Err(ProcError::NoFreeId)
}

#[cfg(test)]
mod tests;
