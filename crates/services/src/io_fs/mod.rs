//! `io.fs`: the cluster file system's tree and its files, for every registered user.
//!
//! The tree (directories, files, owners, modes, each file's chunk list, and where each chunk
//! is kept) is an [`FsMeta`]: the node's own database, or the cluster's replicated state. A
//! file's content is cut into chunks ([`plexus_fs::Chunker`]) kept in the nodes' chunk stores
//! ([`ChunkStore`]): a write stores each chunk here and on the nodes
//! [`plexus_fs::replicas`] chooses, and returns once a majority of those copies are durable
//! and the new chunk list (with the chunks' homes) has committed, so a reader sees the old
//! content or the new, never a mix. A read takes each chunk from this node's store, or from a
//! node that keeps it (checked against its hash). Background duties (`duties.rs`) copy chunks
//! short of copies again (the leader), and delete copies nothing needs (each node). Commands
//! and limits: `docs/fs.md`.

mod duties;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plexus_fs::replicas::{copies, NodeState, Nodes, DISK_RESERVE};
use plexus_fs::{hash_from_hex, mode_text, Actor, ChunkParams, ChunkRef, Chunker, FsPath};
use plexus_identity::PublicKey;
use plexus_kernel::{
    code, Arg, BoxFuture, Cmd, Cx, Entry, Error, Help, Kernel, Outcome, Service, Table,
};
use plexus_store::chunks::{ChunkError, ChunkStore};
use plexus_store::fs::{FsError, FsMeta, FsOp, Homes, Kind, Stat, StoredChunk, INLINE_MAX};
use plexus_units::Unit;

use crate::directory::NodeDirectory;
use crate::forms::{int_u64, map_of};

pub use duties::Duties;

/// The error code of data no node can give or keep now.
pub const UNAVAILABLE: &str = "fs.unavailable";
/// The error code of a read that asked for a version of a file that is gone.
pub const CHANGED: &str = "fs.changed";

/// The service's name.
pub const NAME: &str = "io.fs";
/// The most bytes one `write` carries or one `read` gives (a message's limit is larger; the
/// rest of it is for the other fields).
pub const MAX_TRANSFER_BYTES: usize = 32 * 1024 * 1024;
/// How far past a read the chunks of its file are read ahead into the kernel's cache.
const PREFETCH_BYTES: u64 = 8 << 20;
/// Most chunks whose homes a node remembers between their `stage` and a `commit`.
const MAX_STAGED: usize = 65_536;

/// Timings of the file system's background duties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsTuning {
    /// How long a down node's copies still count before repair copies its chunks elsewhere.
    pub grace: Duration,
    /// How often the leader looks for chunks short of copies.
    pub repair_every: Duration,
    /// Most bytes a second repair copies.
    pub repair_rate: u64,
    /// How often each node sweeps its chunk store.
    pub sweep_every: Duration,
    /// A copy no file's chunk lists on this node is deleted once older than this: longer
    /// than a write takes from its first `stage` to its `commit`.
    pub unlisted_age: Duration,
}

impl Default for FsTuning {
    fn default() -> FsTuning {
        FsTuning {
            grace: Duration::from_secs(30),
            repair_every: Duration::from_secs(2),
            repair_rate: 64 << 20,
            sweep_every: Duration::from_secs(60),
            unlisted_age: Duration::from_secs(3600),
        }
    }
}

/// The nodes that took a chunk this node staged, and when.
type Staged = (Vec<String>, Instant);

/// The `io.fs` service of one node.
pub struct IoFs {
    meta: Arc<dyn FsMeta>,
    chunks: ChunkStore,
    directory: Arc<dyn NodeDirectory>,
    tuning: FsTuning,
    /// Users whose home directory this node has seen made.
    homes: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// The nodes that took each chunk this node staged, for the commit to list.
    staged: Mutex<HashMap<[u8; 32], Staged>>,
    /// What the background duties did.
    duties: Mutex<Duties>,
}

impl IoFs {
    /// The service over `meta`, keeping chunks in `chunks`, finding other nodes in `directory`.
    pub fn new(
        meta: Arc<dyn FsMeta>,
        chunks: ChunkStore,
        directory: Arc<dyn NodeDirectory>,
        tuning: FsTuning,
    ) -> Arc<IoFs> {
        Arc::new(IoFs {
            meta,
            chunks,
            directory,
            tuning,
            homes: Default::default(),
            staged: Default::default(),
            duties: Default::default(),
        })
    }

    /// Starts the background duties (repair on the leader, the sweep on every node), calling
    /// other nodes through `kernel`; they stop with the runtime.
    pub fn start(self: &Arc<Self>, kernel: Kernel) {
        tokio::spawn(duties::run(self.clone(), kernel));
    }

    /// The cluster as replica decisions see it: each node's health, how long it has been down
    /// (as the directory tells: since membership last saw it alive, however rarely this is
    /// asked), and its free disk. A down node the directory gives no time for has just gone.
    fn picture(&self) -> Nodes {
        let view = self.directory.view();
        let now = Instant::now();
        let mut nodes = Nodes::new(ms(self.tuning.grace));
        for (name, v) in view.nodes {
            let state = if v.up {
                NodeState::up(v.disk.map(|d| d.free))
            } else {
                let since = v.down_since.unwrap_or(now);
                NodeState::down(ms(now.saturating_duration_since(since)))
            };
            nodes.insert(name, state);
        }
        nodes
    }

    /// Remembers which nodes took a staged chunk.
    fn remember_staged(&self, hash: [u8; 32], homes: Vec<String>) {
        let Ok(mut staged) = self.staged.lock() else {
            return;
        };
        if staged.len() >= MAX_STAGED {
            let age = self.tuning.unlisted_age / 2;
            staged.retain(|_, (_, at)| at.elapsed() < age);
            if staged.len() >= MAX_STAGED {
                staged.clear();
            }
        }
        staged.insert(hash, (homes, Instant::now()));
    }

    /// Whether this node staged the chunk `hash` recently enough that its copies are still
    /// kept unlisted (the sweep deletes them after `unlisted_age`).
    fn staged_lately(&self, hash: &[u8; 32]) -> bool {
        self.staged.lock().is_ok_and(|staged| {
            staged
                .get(hash)
                .is_some_and(|(_, at)| at.elapsed() < self.tuning.unlisted_age)
        })
    }

    /// The homes to list for chunks this node has or staged: those a stage reported, else
    /// this node.
    fn homes_of_staged(&self, refs: &[StoredChunk]) -> Vec<Homes> {
        let local = self.directory.local();
        let staged = self.staged.lock().ok();
        refs.iter()
            .map(|c| Homes {
                hash: c.hash,
                add: staged
                    .as_ref()
                    .and_then(|s| s.get(&c.hash))
                    .map_or_else(|| vec![local.clone()], |(homes, _)| homes.clone()),
                drop: Vec::new(),
            })
            .collect()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The actor of a node's own changes (homes, repair): an admin.
const NODE_ACTOR: Actor = Actor {
    user: [0; 32],
    admin: true,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ls,
    Stat,
    Mkdir,
    Rm,
    Mv,
    Chmod,
    Write,
    Read,
    Keep,
    Chunk,
    Stage,
    Commit,
    Chunks,
    Cp,
    Pull,
    Status,
    Scrub,
}

impl Service for IoFs {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, c) = TABLE.lookup(&msg)?;
            let actor = actor(cx);
            if !matches!(entry.run, Op::Keep | Op::Chunk | Op::Pull) {
                self.home_of(cx, actor).await?;
            }
            match entry.run {
                Op::Ls => self.ls(cx, actor, &c).await.map(Some),
                Op::Stat => self.stat(cx, actor, &c).await.map(Some),
                Op::Mkdir => {
                    let path = path_arg(&c)?;
                    let mode = mode_opt(&c, 0o755)?;
                    let op = FsOp::Mkdir {
                        path: path.to_string(),
                        mode,
                    };
                    self.changed(actor, op, &path).await.map(Some)
                }
                Op::Rm => {
                    let path = path_arg(&c)?;
                    let op = FsOp::Remove {
                        path: path.to_string(),
                    };
                    self.changed(actor, op, &path).await.map(Some)
                }
                Op::Mv => {
                    let (from, to) = (path_arg(&c)?, to_arg(&c, "mv")?);
                    let op = FsOp::Rename {
                        from: from.to_string(),
                        to: to.to_string(),
                    };
                    self.changed(actor, op, &to).await.map(Some)
                }
                Op::Cp => {
                    let (from, to) = (path_arg(&c)?, to_arg(&c, "cp")?);
                    self.copy(actor, from, to).await.map(Some)
                }
                Op::Chmod => {
                    let path = path_arg(&c)?;
                    if c.opt("mode").is_none() {
                        return Err(Error::bad_argument("chmod needs mode:`644`"));
                    }
                    let op = FsOp::Chmod {
                        path: path.to_string(),
                        mode: mode_opt(&c, 0)?,
                    };
                    self.changed(actor, op, &path).await.map(Some)
                }
                Op::Write => self.write(cx, actor, &c).await.map(Some),
                Op::Read => self.read(cx, actor, &c).await.map(Some),
                Op::Keep => self.keep(&c).await.map(Some),
                Op::Stage => {
                    let Unit::Bytes(bytes) = c.arg()? else {
                        return Err(Error::bad_argument("stage takes a chunk's bytes x\"…\""));
                    };
                    if bytes.len() > ChunkParams::FILES.max {
                        return Err(Error::new(
                            code::LIMIT,
                            format!("a chunk has at most {} bytes", ChunkParams::FILES.max),
                        ));
                    }
                    let (chunk, _) = self.store_replicated(cx, bytes.clone()).await?;
                    Ok(Some(map_of([
                        ("chunk", Unit::from(chunk.hex())),
                        ("len", int_u64(u64::from(chunk.len))),
                    ])))
                }
                Op::Commit => self.commit(actor, &c).await.map(Some),
                Op::Chunks => self.chunk_list(actor, &c).await.map(Some),
                Op::Chunk => self.chunk(&c).await.map(Some),
                Op::Pull => self.pull(cx, &c).await.map(Some),
                Op::Status => self.status().await.map(Some),
                Op::Scrub => {
                    if !actor.admin {
                        return Err(Error::new(
                            code::DENIED,
                            "only an admin scrubs a node's chunk store",
                        ));
                    }
                    self.scrub(cx).await.map(Some)
                }
            }
        })
    }
}

/// What `actor` may do to the entry of `stat`, as `ls` writes one triple (`rw-`).
fn rights(actor: &Actor, stat: &Stat) -> String {
    use plexus_fs::Access;
    [
        (Access::Read, 'r'),
        (Access::Write, 'w'),
        (Access::Exec, 'x'),
    ]
    .into_iter()
    .map(|(access, letter)| {
        let allowed = plexus_fs::check(actor, &stat.inode.owner, stat.inode.mode, access, "");
        if allowed.is_ok() {
            letter
        } else {
            '-'
        }
    })
    .collect()
}

fn actor(cx: &Cx) -> Actor {
    Actor {
        user: cx.author().to_bytes(),
        admin: cx.author() == cx.kernel().admin(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn fs_error(e: FsError) -> Error {
    Error::new(e.code(), e.to_string())
}

fn path_of(u: &Unit) -> Result<FsPath, Error> {
    let text = u
        .as_str()
        .ok_or_else(|| Error::bad_argument("a path is a string such as `/data/a.csv`"))?;
    FsPath::parse(text).map_err(|e| Error::bad_argument(e.to_string()))
}

/// The `to:PATH` of `mv` or `cp`.
fn to_arg(c: &Cmd<'_>, what: &str) -> Result<FsPath, Error> {
    path_of(
        c.opt("to")
            .ok_or_else(|| Error::bad_argument(format!("{what} needs to:PATH")))?,
    )
}

fn path_arg(c: &Cmd<'_>) -> Result<FsPath, Error> {
    path_of(c.arg()?)
}

/// `mode:` as octal digits (`644`), or `default`.
fn mode_opt(c: &Cmd<'_>, default: u16) -> Result<u16, Error> {
    let Some(u) = c.opt("mode") else {
        return Ok(default);
    };
    let text = u
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| plexus_units::to_text(u));
    let digits = text.trim_start_matches("0o");
    match u16::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(Error::bad_argument(format!(
            "mode is three octal digits such as `644`, not {text}"
        ))),
    }
}

impl IoFs {
    /// Makes `/home/<name>` for a registered user (the admin too) the first time this node
    /// sees the user:
    /// owned by the user, mode 755, under a `/home` the admin owns.
    async fn home_of(&self, cx: &Cx, actor: Actor) -> Result<(), Error> {
        if self.homes.lock().is_ok_and(|h| h.contains(&actor.user)) {
            return Ok(());
        }
        let Some(name) = cx.kernel().user_name(cx.author()) else {
            return Ok(());
        };
        let admin = NODE_ACTOR;
        let home = format!("/home/{name}");
        let path = FsPath::parse(&home).map_err(|e| Error::bad_argument(e.to_string()))?;
        let made = match self.meta.stat(admin, path).await {
            Ok(_) => true,
            Err(e) if e.code() == code::NOT_FOUND => {
                for op in [
                    FsOp::Mkdir {
                        path: "/home".into(),
                        mode: 0o755,
                    },
                    FsOp::Mkdir {
                        path: home.clone(),
                        mode: 0o755,
                    },
                ] {
                    match self.meta.apply(admin, now_ms(), op).await {
                        Err(e) if e.code() != "fs.exists" => return Err(fs_error(e)),
                        _ => {}
                    }
                }
                self.meta
                    .apply(
                        admin,
                        now_ms(),
                        FsOp::Chown {
                            path: home,
                            owner: actor.user,
                        },
                    )
                    .await
                    .map_err(fs_error)?;
                true
            }
            Err(e) => return Err(fs_error(e)),
        };
        if made {
            if let Ok(mut homes) = self.homes.lock() {
                homes.insert(actor.user);
            }
        }
        Ok(())
    }

    /// Applies `op`, answering `{path}`.
    async fn changed(&self, actor: Actor, op: FsOp, path: &FsPath) -> Result<Unit, Error> {
        self.change(actor, op).await?;
        Ok(map_of([("path", Unit::str(path.as_str()))]))
    }

    async fn change(&self, actor: Actor, op: FsOp) -> Result<(), Error> {
        self.meta.apply(actor, now_ms(), op).await.map_err(fs_error)
    }

    /// One entry as `ls` and `stat` give it; `names` keeps the owners' names found so far
    /// (a directory's files mostly share a few owners, and reading a key costs more than the
    /// rest of the entry).
    fn entry(&self, cx: &Cx, name: &str, stat: &Stat, names: &mut HashMap<[u8; 32], Unit>) -> Unit {
        let owner = stat.inode.owner;
        let user = names
            .entry(owner)
            .or_insert_with(|| {
                Unit::from(
                    PublicKey::from_bytes(&owner)
                        .ok()
                        .and_then(|k| cx.kernel().user_name(&k))
                        .unwrap_or_else(|| {
                            if owner == [0; 32] {
                                "-".to_owned()
                            } else {
                                owner.iter().take(4).map(|b| format!("{b:02x}")).collect()
                            }
                        }),
                )
            })
            .clone();
        let dir = stat.inode.kind == Kind::Dir;
        map_of([
            ("name", Unit::str(name)),
            ("kind", Unit::str(if dir { "dir" } else { "file" })),
            ("size", int_u64(stat.inode.size)),
            ("mode", Unit::from(mode_text(stat.inode.mode, dir))),
            ("user", user),
            ("mtime", int_u64(stat.inode.mtime_ms)),
            ("ino", int_u64(stat.ino)),
            ("version", int_u64(stat.inode.version)),
        ])
    }

    async fn ls(&self, cx: &Cx, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = match c.arg() {
            Ok(Unit::Bool(true)) | Err(_) => FsPath::root(),
            Ok(u) => path_of(u)?,
        };
        let listed = self.meta.list(actor, path).await.map_err(fs_error)?;
        let mut names = HashMap::new();
        let mut entries: Vec<Unit> = listed
            .iter()
            .map(|(name, stat)| self.entry(cx, name, stat, &mut names))
            .collect();
        if matches!(c.opt("copies"), Some(Unit::Bool(true))) {
            let stats: Vec<&Stat> = listed.iter().map(|(_, s)| s).collect();
            self.add_copies(&mut entries, &stats).await?;
        }
        Ok(Unit::List(entries))
    }

    /// Adds to each file's entry `copies` (the fewest live copies any of its chunks has) and
    /// `nodes` (the up nodes that keep some of it).
    async fn add_copies(&self, entries: &mut [Unit], stats: &[&Stat]) -> Result<(), Error> {
        let mut hashes: Vec<[u8; 32]> = stats
            .iter()
            .flat_map(|s| s.inode.chunks.iter().map(|c| c.hash))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        let rows = self
            .meta
            .chunk_rows_of(hashes.clone())
            .await
            .map_err(fs_error)?;
        let homes: HashMap<[u8; 32], Vec<String>> = hashes
            .into_iter()
            .zip(rows)
            .map(|(h, r)| (h, r.map(|r| r.homes).unwrap_or_default()))
            .collect();
        let picture = self.picture();
        for (entry, stat) in entries.iter_mut().zip(stats) {
            if stat.inode.kind != Kind::File || stat.inode.chunks.is_empty() {
                continue;
            }
            let mut fewest = usize::MAX;
            let mut nodes = std::collections::BTreeSet::new();
            for chunk in &stat.inode.chunks {
                let live = homes
                    .get(&chunk.hash)
                    .map(|h| copies(h, &picture).live)
                    .unwrap_or_default();
                fewest = fewest.min(live.len());
                nodes.extend(live);
            }
            if let Unit::Map(m) = entry {
                m.insert(Unit::str("copies"), int_u64(fewest as u64));
                m.insert(
                    Unit::str("nodes"),
                    Unit::List(nodes.into_iter().map(Unit::from).collect()),
                );
            }
        }
        Ok(())
    }

    async fn stat(&self, cx: &Cx, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let stat = self
            .meta
            .stat(actor, path.clone())
            .await
            .map_err(fs_error)?;
        let mut entry = self.entry(cx, path.name().unwrap_or("/"), &stat, &mut HashMap::new());
        if let Unit::Map(m) = &mut entry {
            m.insert(Unit::str("path"), Unit::str(path.as_str()));
            m.insert(Unit::str("chunks"), int_u64(stat.inode.chunks.len() as u64));
            m.insert(Unit::str("may"), Unit::from(rights(&actor, &stat)));
        }
        self.add_copies(std::slice::from_mut(&mut entry), &[&stat])
            .await?;
        Ok(entry)
    }

    async fn write(&self, cx: &Cx, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let data = match c.opt("data") {
            Some(Unit::Bytes(b)) => b.to_vec(),
            Some(Unit::Str(s)) => s.as_bytes().to_vec(),
            None => Vec::new(),
            Some(_) => return Err(Error::bad_argument("data is bytes x\"…\" or a string")),
        };
        if data.len() > MAX_TRANSFER_BYTES {
            return Err(Error::new(
                code::LIMIT,
                format!("one write carries at most {MAX_TRANSFER_BYTES} bytes"),
            ));
        }
        let mode = mode_opt(c, 0o644)?;
        // Nothing is stored for a write its author may not make.
        self.may_write(actor, &path).await?;
        if data.len() <= INLINE_MAX {
            let size = data.len() as u64;
            let op = FsOp::PutInline {
                path: path.to_string(),
                mode,
                data,
            };
            self.change(actor, op).await?;
            return Ok(map_of([
                ("path", Unit::str(path.as_str())),
                ("size", int_u64(size)),
                ("chunks", int_u64(0)),
            ]));
        }
        let mut pieces = Vec::new();
        let mut chunker = Chunker::new(ChunkParams::FILES);
        chunker.push(&data, &mut |c| pieces.push(c.to_vec()));
        chunker.finish(&mut |c| pieces.push(c.to_vec()));
        let mut refs = Vec::with_capacity(pieces.len());
        let mut homes = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let (chunk, kept) = self.store_replicated(cx, piece.into()).await?;
            refs.push(StoredChunk::from(chunk));
            homes.push(Homes {
                hash: chunk.hash,
                add: kept,
                drop: Vec::new(),
            });
        }
        self.put_chunks(actor, &path, mode, refs, homes).await
    }

    /// Stores `bytes` as `chunk` in this node's store (durable), off the async threads; every
    /// caller has just hashed the bytes or checked them against the chunk.
    async fn store_here(&self, chunk: ChunkRef, bytes: bytes::Bytes) -> Result<(), Error> {
        let store = self.chunks.clone();
        tokio::task::spawn_blocking(move || store.put_hashed(&chunk, &bytes))
            .await
            .map_err(|e| Error::internal(format!("storing a chunk: {e}")))?
            .map_err(|e| Error::new(code::STORAGE, e.to_string()))
    }

    /// Stores a chunk here and on the nodes [`Nodes::choose`] picks, until R = min(3, nodes
    /// not lost) keep it or no node is left to try (a full or failing node is skipped for the
    /// next); it needs a majority of R durable. Returns the chunk and the nodes that keep it.
    async fn store_replicated(
        &self,
        cx: &Cx,
        piece: bytes::Bytes,
    ) -> Result<(ChunkRef, Vec<String>), Error> {
        let chunk = ChunkRef::of(&piece);
        let picture = self.picture();
        let local = self.directory.local();
        let target = picture.target();
        let needed = target / 2 + 1;
        let mut homes = Vec::with_capacity(target);
        // Why each node that did not keep a copy did not, for the error if too few did.
        let mut trouble = Vec::new();
        let mut candidates = picture
            .choose(&chunk.hash, u64::from(chunk.len), usize::MAX, &[&local])
            .into_iter();
        let keep = map_of([("keep", Unit::Bytes(piece.clone()))]);
        // This node's copy and the first others' at once; a failed one is replaced below.
        let first: Vec<String> = candidates.by_ref().take(target - 1).collect();
        let mut asked = first.clone();
        let (here, sent) =
            tokio::join!(self.store_here(chunk, piece), send_each(cx, &first, &keep));
        match here {
            Ok(()) => homes.push(local.clone()),
            Err(e) => trouble.push(format!("{local}: {}", e.message())),
        }
        for (node, kept) in sent {
            match kept {
                Ok(_) => homes.push(node),
                Err(e) => trouble.push(format!("{node}: {}", e.message())),
            }
        }
        while homes.len() < target {
            let wave: Vec<String> = candidates.by_ref().take(target - homes.len()).collect();
            if wave.is_empty() {
                break;
            }
            asked.extend(wave.iter().cloned());
            for (node, kept) in send_each(cx, &wave, &keep).await {
                match kept {
                    Ok(_) => homes.push(node),
                    Err(e) => trouble.push(format!("{node}: {}", e.message())),
                }
            }
        }
        if homes.len() < needed {
            // Up nodes the ranking left out were too full by their last figures.
            let room = u64::from(chunk.len).saturating_add(DISK_RESERVE);
            let left_out = picture
                .iter()
                .filter(|(name, state)| state.up && **name != local && !asked.contains(name));
            for (name, state) in left_out {
                if let Some(free) = state.free.filter(|&free| free < room) {
                    trouble.push(format!(
                        "{name}: its disk is full ({} MiB free)",
                        free >> 20
                    ));
                }
            }
            let why = if trouble.is_empty() {
                String::new()
            } else {
                format!(" ({})", trouble.join("; "))
            };
            return Err(Error::new(
                UNAVAILABLE,
                format!(
                    "a chunk was kept on {} of the {needed} nodes it needs{why}",
                    homes.len()
                ),
            ));
        }
        self.remember_staged(chunk.hash, homes.clone());
        Ok((chunk, homes))
    }

    /// Whether `actor` may make `path` hold new content: write it if it exists (when it is
    /// new, the commit checks the parent's rights).
    async fn may_write(&self, actor: Actor, path: &FsPath) -> Result<(), Error> {
        match self.meta.stat(actor, path.clone()).await {
            Ok(stat) if stat.inode.kind == Kind::Dir => Err(fs_error(FsError::IsDir(path.clone()))),
            Ok(stat) => plexus_fs::check(
                &actor,
                &stat.inode.owner,
                stat.inode.mode,
                plexus_fs::Access::Write,
                path.as_str(),
            )
            .map_err(|e| fs_error(e.into())),
            Err(e) if e.code() == code::NOT_FOUND => Ok(()),
            Err(e) => Err(fs_error(e)),
        }
    }

    /// `{commit:PATH chunks:x"…" mode:M}`: makes a file hold chunks staged before (36 bytes
    /// each: the hash, then the length as a little-endian u32), each of which this node must
    /// have or have staged.
    async fn commit(&self, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let mode = mode_opt(c, 0o644)?;
        let list = match c.opt("chunks") {
            Some(Unit::Bytes(b)) => b.to_vec(),
            None => Vec::new(),
            Some(_) => {
                return Err(Error::bad_argument(
                    "chunks is bytes x\"…\": 36 bytes a chunk",
                ))
            }
        };
        if list.len() % 36 != 0 {
            return Err(Error::bad_argument(
                "chunks holds 36 bytes a chunk (hash, then a u32 length)",
            ));
        }
        let refs: Vec<StoredChunk> = list
            .chunks_exact(36)
            .map(|r| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&r[..32]);
                let len = u32::from_le_bytes([r[32], r[33], r[34], r[35]]);
                StoredChunk { hash, len }
            })
            .collect();
        // A chunk this node staged may have no copy here (its disk was full) but is durable
        // on the nodes the stage reported.
        for chunk in &refs {
            let chunk = ChunkRef::from(*chunk);
            if !self.chunks.has(&chunk) && !self.staged_lately(&chunk.hash) {
                return Err(Error::new(
                    code::NOT_FOUND,
                    format!("chunk {} was not staged on this node", chunk.hex()),
                ));
            }
        }
        let homes = self.homes_of_staged(&refs);
        self.put_chunks(actor, &path, mode, refs, homes).await
    }

    /// `{cp:FROM to:TO}`: a new file with `FROM`'s content. The copy names the same chunks, so
    /// it costs no bytes and is instant at any size; the two files part ways at their next
    /// write.
    async fn copy(&self, actor: Actor, from: FsPath, to: FsPath) -> Result<Unit, Error> {
        let stat = self.readable_file(actor, &from).await?;
        self.may_write(actor, &to).await?;
        let size = stat.inode.size;
        let mode = stat.inode.mode;
        let op = if stat.inode.chunks.is_empty() {
            FsOp::PutInline {
                path: to.to_string(),
                mode,
                data: stat.inode.data,
            }
        } else {
            FsOp::PutFile {
                path: to.to_string(),
                mode,
                chunks: stat.inode.chunks,
                homes: Vec::new(),
            }
        };
        self.change(actor, op).await?;
        Ok(map_of([
            ("path", Unit::str(to.as_str())),
            ("size", int_u64(size)),
        ]))
    }

    /// The metadata of the file at `path`, which `actor` may read.
    async fn readable_file(&self, actor: Actor, path: &FsPath) -> Result<Stat, Error> {
        let stat = self
            .meta
            .stat(actor, path.clone())
            .await
            .map_err(fs_error)?;
        readable(actor, path, stat)
    }

    /// The file at `path` at `version`, if `actor` may read it: from this node's copy of the
    /// tree when it already has that version (a version's content never changes, so a read
    /// in parts pays one read barrier, at its first `stat`), else after a read barrier.
    async fn readable_version(
        &self,
        actor: Actor,
        path: &FsPath,
        version: u64,
    ) -> Result<Stat, Error> {
        if let Ok(stat) = self.meta.stat_here(actor, path.clone()).await {
            if stat.inode.version == version {
                return readable(actor, path, stat);
            }
        }
        let stat = self.readable_file(actor, path).await?;
        if stat.inode.version != version {
            return Err(Error::new(
                CHANGED,
                format!("{path} is at version {}, not {version}", stat.inode.version),
            ));
        }
        Ok(stat)
    }
}

/// `stat` if it is a file `actor` may read.
fn readable(actor: Actor, path: &FsPath, stat: Stat) -> Result<Stat, Error> {
    if stat.inode.kind == Kind::Dir {
        return Err(fs_error(FsError::IsDir(path.clone())));
    }
    plexus_fs::check(
        &actor,
        &stat.inode.owner,
        stat.inode.mode,
        plexus_fs::Access::Read,
        path.as_str(),
    )
    .map_err(|e| fs_error(e.into()))?;
    Ok(stat)
}

impl IoFs {
    /// Makes the file `path` hold `refs` (durable on their nodes already) → `{path size chunks}`.
    async fn put_chunks(
        &self,
        actor: Actor,
        path: &FsPath,
        mode: u16,
        refs: Vec<StoredChunk>,
        homes: Vec<Homes>,
    ) -> Result<Unit, Error> {
        let size: u64 = refs.iter().map(|c| u64::from(c.len)).sum();
        let count = refs.len() as u64;
        let op = FsOp::PutFile {
            path: path.to_string(),
            mode,
            chunks: refs,
            homes,
        };
        self.change(actor, op).await?;
        Ok(map_of([
            ("path", Unit::str(path.as_str())),
            ("size", int_u64(size)),
            ("chunks", int_u64(count)),
        ]))
    }

    /// `{chunks:PATH}`: a file's chunk list, 36 bytes a chunk, for its readers.
    async fn chunk_list(&self, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let stat = self.readable_file(actor, &path).await?;
        let mut out = Vec::with_capacity(stat.inode.chunks.len() * 36);
        for chunk in &stat.inode.chunks {
            out.extend_from_slice(&chunk.hash);
            out.extend_from_slice(&chunk.len.to_le_bytes());
        }
        Ok(Unit::Bytes(out.into()))
    }

    async fn read(&self, cx: &Cx, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let stat = match c.opt_count("version")? {
            Some(version) => self.readable_version(actor, &path, version as u64).await?,
            None => self.readable_file(actor, &path).await?,
        };
        let offset = c.opt_count("offset")?.unwrap_or(0) as u64;
        let len = c
            .opt_count("len")?
            .map_or(stat.inode.size.saturating_sub(offset), |l| l as u64);
        if len > MAX_TRANSFER_BYTES as u64 {
            return Err(Error::new(
                code::LIMIT,
                format!(
                    "one read gives at most {MAX_TRANSFER_BYTES} bytes; read with offset:N len:N"
                ),
            ));
        }
        let end = offset.saturating_add(len).min(stat.inode.size);
        if stat.inode.chunks.is_empty() {
            let inline = &stat.inode.data;
            let range = inline
                .get(offset as usize..end as usize)
                .unwrap_or_default();
            return Ok(Unit::Bytes(range.to_vec().into()));
        }
        self.prefetch_after(&stat, offset, end);
        let mut out = Vec::new();
        let mut at = 0u64;
        for chunk in &stat.inode.chunks {
            let (start, stop) = (at, at + u64::from(chunk.len));
            at = stop;
            if stop <= offset || start >= end {
                continue;
            }
            let bytes = self.chunk_bytes(cx, ChunkRef::from(*chunk)).await?;
            let from = offset.saturating_sub(start) as usize;
            let to = (end.min(stop) - start) as usize;
            if out.is_empty() && from == 0 && to == bytes.len() && stop >= end {
                // The whole range is this one chunk: give it without a copy.
                out = bytes;
                break;
            }
            if out.capacity() == 0 {
                out.reserve_exact(end.saturating_sub(offset) as usize);
            }
            out.extend_from_slice(&bytes[from..to]);
        }
        cx.charge(out.len() as u64)?;
        Ok(Unit::Bytes(out.into()))
    }

    /// Has the kernel read this node's copies of the chunks of `stat`'s file that follow the
    /// read of `offset..end` ([`PREFETCH_BYTES`] of them) in the background: a reader going
    /// through the file in order finds them read, as a local file's readahead would have them.
    /// A read past the start asks only for the chunks the read before it (of the same length,
    /// just before it) did not: each chunk is asked for once in a sequential read.
    fn prefetch_after(&self, stat: &Stat, offset: u64, end: u64) {
        let from = if offset == 0 {
            end
        } else {
            end.max(offset.saturating_add(PREFETCH_BYTES))
        };
        let until = end.saturating_add(PREFETCH_BYTES);
        let mut at = 0u64;
        let next: Vec<ChunkRef> = stat
            .inode
            .chunks
            .iter()
            .filter(|c| {
                let start = at;
                at += u64::from(c.len);
                start >= from && start < until
            })
            .map(|c| ChunkRef::from(*c))
            .collect();
        if next.is_empty() {
            return;
        }
        let store = self.chunks.clone();
        tokio::task::spawn_blocking(move || next.iter().for_each(|c| store.prefetch(c)));
    }

    /// A chunk's bytes: from this node's store, or else from a node that keeps it (checked).
    /// A copy this node is listed for but lacks, or has bad, is stored here again.
    async fn chunk_bytes(&self, cx: &Cx, chunk: ChunkRef) -> Result<Vec<u8>, Error> {
        let store = self.chunks.clone();
        let local = tokio::task::spawn_blocking(move || store.get(&chunk))
            .await
            .map_err(|e| Error::internal(format!("reading a chunk: {e}")))?;
        match local {
            Ok(bytes) => return Ok(bytes),
            Err(ChunkError::Missing(_) | ChunkError::Corrupt(_)) => {}
            Err(e) => return Err(Error::new(code::STORAGE, e.to_string())),
        }
        let homes = self.homes_of(chunk.hash).await;
        let listed_here = homes.contains(&self.directory.local());
        let bytes = self.fetch(cx, chunk, &self.sources(&homes, true)).await?;
        if listed_here {
            // A failure to keep it does not fail the read.
            if self.store_here(chunk, bytes.clone().into()).await.is_ok() {
                self.note(|d| d.mended += 1);
            }
        }
        Ok(bytes)
    }

    /// The nodes the metadata lists as keeping the chunk `hash` (none if unknown).
    async fn homes_of(&self, hash: [u8; 32]) -> Vec<String> {
        self.meta
            .chunk_rows_of(vec![hash])
            .await
            .ok()
            .and_then(|mut rows| rows.pop().flatten())
            .map(|row| row.homes)
            .unwrap_or_default()
    }

    /// Where to look for a chunk listed on `homes`: its up homes other than this node, then
    /// (if `others`) every other up node.
    fn sources(&self, homes: &[String], others: bool) -> Vec<String> {
        let picture = self.picture();
        let local = self.directory.local();
        let mut out: Vec<String> = copies(homes, &picture)
            .live
            .into_iter()
            .filter(|n| *n != local)
            .collect();
        if others {
            for (name, state) in picture.iter() {
                if state.up && *name != local && !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    /// A chunk's bytes from the first of `nodes` that gives good ones.
    async fn fetch(&self, cx: &Cx, chunk: ChunkRef, nodes: &[String]) -> Result<Vec<u8>, Error> {
        let ask = map_of([
            ("chunk", Unit::from(chunk.hex())),
            ("len", int_u64(u64::from(chunk.len))),
        ]);
        for node in nodes {
            if let Ok(Some(Unit::Bytes(bytes))) = cx.send(NAME, Some(node), ask.clone()).await {
                if chunk.matches(&bytes) {
                    return Ok(bytes.to_vec());
                }
            }
        }
        Err(Error::new(
            UNAVAILABLE,
            format!("chunk {} is on no node that answers", chunk.hex()),
        ))
    }

    /// `{pull:HEX len:N from:[NODE…]}`: fetches a chunk from the first of the nodes that
    /// gives good bytes and keeps it here (what repair asks of a new home).
    async fn pull(&self, cx: &Cx, c: &Cmd<'_>) -> Result<Unit, Error> {
        let chunk = chunk_arg(c, "pull")?;
        let from: Vec<String> = match c.opt("from") {
            Some(Unit::List(nodes)) => nodes
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => return Err(Error::bad_argument("pull needs from:[NODE…]")),
        };
        if !self.chunks.has(&chunk) {
            let bytes = self.fetch(cx, chunk, &from).await?;
            self.store_here(chunk, bytes.into()).await?;
        }
        Ok(map_of([("chunk", Unit::from(chunk.hex()))]))
    }

    /// Records what a duty did.
    fn note(&self, change: impl FnOnce(&mut Duties)) {
        if let Ok(mut d) = self.duties.lock() {
            change(&mut d);
        }
    }

    /// `{keep:x"…"}`: stores a chunk another node wrote.
    async fn keep(&self, c: &Cmd<'_>) -> Result<Unit, Error> {
        let Unit::Bytes(bytes) = c.arg()? else {
            return Err(Error::bad_argument("keep takes a chunk's bytes x\"…\""));
        };
        let chunk = ChunkRef::of(bytes);
        self.store_here(chunk, bytes.clone()).await?;
        Ok(map_of([("chunk", Unit::from(chunk.hex()))]))
    }

    /// `{chunk:HEX len:N}`: a chunk's bytes from this node's store.
    async fn chunk(&self, c: &Cmd<'_>) -> Result<Unit, Error> {
        let chunk = chunk_arg(c, "chunk")?;
        let store = self.chunks.clone();
        let bytes = tokio::task::spawn_blocking(move || store.get(&chunk))
            .await
            .map_err(|e| Error::internal(format!("reading a chunk: {e}")))?
            .map_err(|e| match e {
                ChunkError::Missing(_) | ChunkError::Corrupt(_) => {
                    Error::new(code::NOT_FOUND, e.to_string())
                }
                e => Error::new(code::STORAGE, e.to_string()),
            })?;
        Ok(Unit::Bytes(bytes.into()))
    }
}

/// The chunk a `{VERB:HEX len:N}` names.
fn chunk_arg(c: &Cmd<'_>, verb: &str) -> Result<ChunkRef, Error> {
    let hex = c
        .arg()?
        .as_str()
        .ok_or_else(|| Error::bad_argument(format!("{verb} takes a hash in hex")))?;
    let hash =
        hash_from_hex(hex).ok_or_else(|| Error::bad_argument("a chunk hash is 64 hex digits"))?;
    let len = c
        .opt_count("len")?
        .ok_or_else(|| Error::bad_argument(format!("{verb} needs len:N")))?;
    Ok(ChunkRef {
        hash,
        len: u32::try_from(len).map_err(|_| Error::bad_argument("a chunk has at most 4 GiB"))?,
    })
}

/// Sends `msg` to `io.fs` on each of `nodes` at once (at most three at a time).
async fn send_each(cx: &Cx, nodes: &[String], msg: &Unit) -> Vec<(String, Outcome)> {
    let mut out = Vec::with_capacity(nodes.len());
    for group in nodes.chunks(3) {
        let results = match group {
            [a] => vec![cx.send(NAME, Some(a), msg.clone()).await],
            [a, b] => {
                let (x, y) = tokio::join!(
                    cx.send(NAME, Some(a), msg.clone()),
                    cx.send(NAME, Some(b), msg.clone())
                );
                vec![x, y]
            }
            [a, b, c] => {
                let (x, y, z) = tokio::join!(
                    cx.send(NAME, Some(a), msg.clone()),
                    cx.send(NAME, Some(b), msg.clone()),
                    cx.send(NAME, Some(c), msg.clone())
                );
                vec![x, y, z]
            }
            _ => Vec::new(),
        };
        out.extend(group.iter().cloned().zip(results));
    }
    out
}

static TABLE: LazyLock<Table<Op>> = LazyLock::new(|| {
    Table::new(
        NAME,
        "The cluster's file tree: list, inspect, make, remove and move files and directories, \
         write and read files. Each file and directory has an owner and mode bits (owner and \
         others; no groups); an admin may do anything",
        vec![],
        vec![
            Entry::new("ls", "The entries of a directory (/ by default); with copies:t, each file's fewest live copies of a chunk and the nodes keeping it → [{name kind size mode user mtime ino version copies nodes}…]", &["ls", "{ls:PATH}", "{ls:PATH copies:t}"], Arg::Optional, Op::Ls),
            Entry::new("stat", "One file or directory → {path name kind size mode user mtime ino version chunks copies nodes may}; may: what the caller may do to it (`rw-`)", &["{stat:PATH}"], Arg::Required, Op::Stat),
            Entry::new("mkdir", "Makes a directory (mode 755 by default) → {path}", &["{mkdir:PATH mode:`755`}"], Arg::Required, Op::Mkdir),
            Entry::new("rm", "Removes a file or an empty directory → {path}", &["{rm:PATH}"], Arg::Required, Op::Rm),
            Entry::new("mv", "Moves a file or directory in one step → {path}", &["{mv:PATH to:PATH}"], Arg::Required, Op::Mv),
            Entry::new(
                "cp",
                "Copies a file: the copy shares its chunks, so it is instant at any size → {path size}",
                &["{cp:PATH to:PATH}"],
                Arg::Required,
                Op::Cp,
            ),
            Entry::new("chmod", "Sets the mode bits (its owner or an admin) → {path}", &["{chmod:PATH mode:`640`}"], Arg::Required, Op::Chmod),
            Entry::new("write", "Makes a file hold data (created with mode 644 by default), visible whole once written → {path size chunks}", &["{write:PATH data:x\"…\" mode:`600`}"], Arg::Required, Op::Write),
            Entry::new("read", "A file's bytes, or len bytes from offset; with version:V, only while the file is at that version (fs.changed otherwise) → bytes", &["{read:PATH}", "{read:PATH offset:N len:N version:V}"], Arg::Required, Op::Read),
            Entry::new("stage", "Stores one chunk of a file being written (at most 4 MiB) here and on the nodes that keep it → {chunk len}", &["{stage:x\"…\"}"], Arg::Required, Op::Stage),
            Entry::new("commit", "Makes a file hold staged chunks (36 bytes each: hash, then a little-endian u32 length) → {path size chunks}", &["{commit:PATH chunks:x\"…\" mode:`644`}"], Arg::Required, Op::Commit),
            Entry::new("chunks", "A file's chunk list, 36 bytes a chunk → bytes", &["{chunks:PATH}"], Arg::Required, Op::Chunks),
            Entry::new("keep", "Internal: stores a chunk another node wrote → {chunk}", &["{keep:x\"…\"}"], Arg::Required, Op::Keep),
            Entry::new("chunk", "Internal: a chunk from this node's store → bytes", &["{chunk:HEX len:N}"], Arg::Required, Op::Chunk),
            Entry::new("pull", "Internal: fetches a chunk from one of the nodes and keeps it here (repair) → {chunk}", &["{pull:HEX len:N from:[n2 n3]}"], Arg::Required, Op::Pull),
            Entry::new(
                "status",
                "The file system's health: chunks by copies (ok, short, waiting, lost), each node's copies and disk, usable space, and repair progress → {…}",
                &["status"],
                Arg::None,
                Op::Status,
            ),
            Entry::new(
                "scrub",
                "Reads and checks every chunk this node keeps, replacing missing or bad ones from good copies (an admin) → {node checked bytes bad mended failed}",
                &["scrub"],
                Arg::None,
                Op::Scrub,
            ),
        ],
    )
});

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use plexus_fs::replicas::Standing;
    use plexus_sched::{ClusterView, NodeView};

    /// A directory that shows a fixed picture.
    struct Fixed(ClusterView);

    impl NodeDirectory for Fixed {
        fn local(&self) -> String {
            "n1".into()
        }

        fn view(&self) -> ClusterView {
            self.0.clone()
        }
    }

    #[test]
    fn a_down_node_counts_from_when_the_directory_saw_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let down = |ago: Duration| NodeView {
            down_since: Instant::now().checked_sub(ago),
            ..NodeView::default()
        };
        let view = ClusterView::new()
            .with_node("n1", NodeView::up(Default::default()))
            .with_node("long", down(Duration::from_secs(5)))
            .with_node("brief", down(Duration::ZERO))
            .with_node("unknown", NodeView::default());
        let fs = IoFs::new(
            crate::open_db(&dir.path().join("node.redb")).unwrap(),
            ChunkStore::open(dir.path().join("chunks")).unwrap(),
            Arc::new(Fixed(view)),
            FsTuning {
                grace: Duration::from_secs(2),
                ..FsTuning::default()
            },
        );
        // Down for longer than the grace period before this node first looked: lost at once,
        // not only a grace period after this look.
        let nodes = fs.picture();
        assert_eq!(nodes.standing("long"), Standing::Lost);
        assert_eq!(nodes.standing("brief"), Standing::Waiting);
        assert_eq!(nodes.standing("unknown"), Standing::Waiting);
        assert_eq!(nodes.standing("n1"), Standing::Live);
    }
}
