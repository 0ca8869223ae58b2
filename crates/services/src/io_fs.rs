//! `io.fs`: the cluster file system's tree and its files, for every registered user.
//!
//! The tree (directories, files, owners, modes, each file's chunk list) is an
//! [`FsMeta`]: the node's own database, or the cluster's replicated state. A file's content
//! is cut into chunks ([`plexus_fs::Chunker`]) kept in the nodes' chunk stores
//! ([`ChunkStore`]): a write stores each chunk here and on up to two other up nodes, and
//! returns once a majority of those copies are durable and the new chunk list has committed,
//! so a reader sees the old content or the new, never a mix. A read takes each chunk from
//! this node's store, or from another up node that has it (checked against its hash, and
//! kept here). Commands and limits: `docs/fs.md`.

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use plexus_fs::{mode_text, Actor, ChunkParams, ChunkRef, Chunker, FsPath};
use plexus_identity::PublicKey;
use plexus_kernel::{code, Arg, BoxFuture, Cmd, Cx, Entry, Error, Help, Outcome, Service, Table};
use plexus_store::chunks::{ChunkError, ChunkStore};
use plexus_store::fs::{FsError, FsMeta, FsOp, Kind, Stat, StoredChunk};
use plexus_units::Unit;

use crate::directory::NodeDirectory;
use crate::forms::{int_u64, map_of};

/// The error code of data no node can give or keep now.
pub const UNAVAILABLE: &str = "fs.unavailable";
/// The error code of a read that asked for a version of a file that is gone.
pub const CHANGED: &str = "fs.changed";

/// 64 hex digits as 32 bytes.
fn hash_of(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The service's name.
pub const NAME: &str = "io.fs";
/// How many nodes keep each chunk: three, or every node of a smaller cluster.
pub const REPLICAS: usize = 3;
/// The most bytes one `write` carries or one `read` gives (a message's limit is larger; the
/// rest of it is for the other fields).
pub const MAX_TRANSFER_BYTES: usize = 32 * 1024 * 1024;

/// The `io.fs` service of one node.
pub struct IoFs {
    meta: Arc<dyn FsMeta>,
    chunks: ChunkStore,
    directory: Arc<dyn NodeDirectory>,
    /// Users whose home directory this node has seen made.
    homes: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl IoFs {
    /// The service over `meta`, keeping chunks in `chunks`, finding other nodes in `directory`.
    pub fn new(
        meta: Arc<dyn FsMeta>,
        chunks: ChunkStore,
        directory: Arc<dyn NodeDirectory>,
    ) -> Arc<IoFs> {
        Arc::new(IoFs {
            meta,
            chunks,
            directory,
            homes: Default::default(),
        })
    }
}

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
}

impl Service for IoFs {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, c) = TABLE.lookup(&msg)?;
            let actor = actor(cx);
            if !matches!(entry.run, Op::Keep | Op::Chunk) {
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
                    let chunk = self.store_replicated(cx, bytes.clone()).await?;
                    Ok(Some(map_of([
                        ("chunk", Unit::from(chunk.hex())),
                        ("len", int_u64(u64::from(chunk.len))),
                    ])))
                }
                Op::Commit => self.commit(actor, &c).await.map(Some),
                Op::Chunks => self.chunk_list(actor, &c).await.map(Some),
                Op::Chunk => self.chunk(&c).await.map(Some),
            }
        })
    }
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
        let admin = Actor {
            user: [0; 32],
            admin: true,
        };
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

    fn entry(&self, cx: &Cx, name: &str, stat: &Stat) -> Unit {
        let user = PublicKey::from_bytes(&stat.inode.owner)
            .ok()
            .and_then(|k| cx.kernel().user_name(&k))
            .unwrap_or_else(|| {
                if stat.inode.owner == [0; 32] {
                    "-".to_owned()
                } else {
                    stat.inode
                        .owner
                        .iter()
                        .take(4)
                        .map(|b| format!("{b:02x}"))
                        .collect()
                }
            });
        let dir = stat.inode.kind == Kind::Dir;
        map_of([
            ("name", Unit::str(name)),
            ("kind", Unit::str(if dir { "dir" } else { "file" })),
            ("size", int_u64(stat.inode.size)),
            ("mode", Unit::from(mode_text(stat.inode.mode, dir))),
            ("user", Unit::from(user)),
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
        Ok(Unit::List(
            listed
                .iter()
                .map(|(name, stat)| self.entry(cx, name, stat))
                .collect(),
        ))
    }

    async fn stat(&self, cx: &Cx, actor: Actor, c: &Cmd<'_>) -> Result<Unit, Error> {
        let path = path_arg(c)?;
        let stat = self
            .meta
            .stat(actor, path.clone())
            .await
            .map_err(fs_error)?;
        let mut entry = self.entry(cx, path.name().unwrap_or("/"), &stat);
        if let Unit::Map(m) = &mut entry {
            m.insert(Unit::str("path"), Unit::str(path.as_str()));
            m.insert(Unit::str("chunks"), int_u64(stat.inode.chunks.len() as u64));
        }
        Ok(entry)
    }

    /// The up nodes other than this one, by name.
    fn others(&self) -> Vec<String> {
        let local = self.directory.local();
        self.directory
            .view()
            .nodes
            .into_iter()
            .filter(|(name, v)| v.up && *name != local)
            .map(|(name, _)| name)
            .collect()
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
        let mut pieces = Vec::new();
        let mut chunker = Chunker::new(ChunkParams::FILES);
        chunker.push(&data, &mut |c| pieces.push(c.to_vec()));
        chunker.finish(&mut |c| pieces.push(c.to_vec()));
        let mut refs = Vec::with_capacity(pieces.len());
        for piece in pieces {
            refs.push(StoredChunk::from(
                self.store_replicated(cx, piece.into()).await?,
            ));
        }
        self.put_chunks(actor, &path, mode, refs).await
    }

    /// Stores `bytes` as `chunk` in this node's store (checked, durable), off the async threads.
    async fn store_here(&self, chunk: ChunkRef, bytes: bytes::Bytes) -> Result<(), Error> {
        let store = self.chunks.clone();
        tokio::task::spawn_blocking(move || store.put(&chunk, &bytes))
            .await
            .map_err(|e| Error::internal(format!("storing a chunk: {e}")))?
            .map_err(|e| Error::new(code::STORAGE, e.to_string()))
    }

    /// Stores a chunk here and on up to two other up nodes, at once; returns once a majority
    /// of its R = min(3, up nodes) copies are durable.
    async fn store_replicated(&self, cx: &Cx, piece: bytes::Bytes) -> Result<ChunkRef, Error> {
        let others = self.others();
        let replicas = REPLICAS.min(others.len() + 1);
        let needed_remote = (replicas / 2 + 1).saturating_sub(1);
        let chunk = ChunkRef::of(&piece);
        // The bytes are shared (reference-counted) by the local write and both sends.
        self.store_here(chunk, piece.clone()).await?;
        let keep = map_of([("keep", Unit::Bytes(piece))]);
        // REPLICAS is 3: at most two other nodes, asked at once.
        let kept = match &others[..(replicas - 1).min(2)] {
            [] => 0,
            [a] => usize::from(cx.send(NAME, Some(a), keep).await.is_ok()),
            [a, b, ..] => {
                let (x, y) = tokio::join!(
                    cx.send(NAME, Some(a), keep.clone()),
                    cx.send(NAME, Some(b), keep)
                );
                usize::from(x.is_ok()) + usize::from(y.is_ok())
            }
        };
        if kept < needed_remote {
            return Err(Error::new(
                UNAVAILABLE,
                format!("a chunk was kept on {kept} of the {needed_remote} other nodes it needs"),
            ));
        }
        Ok(chunk)
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
    /// have.
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
        for chunk in &refs {
            let chunk = ChunkRef::from(*chunk);
            if !self.chunks.has(&chunk) {
                return Err(Error::new(
                    code::NOT_FOUND,
                    format!("chunk {} was not staged on this node", chunk.hex()),
                ));
            }
        }
        self.put_chunks(actor, &path, mode, refs).await
    }

    /// `{cp:FROM to:TO}`: a new file with `FROM`'s content. The copy names the same chunks, so
    /// it costs no bytes and is instant at any size; the two files part ways at their next
    /// write.
    async fn copy(&self, actor: Actor, from: FsPath, to: FsPath) -> Result<Unit, Error> {
        let stat = self.readable_file(actor, &from).await?;
        self.may_write(actor, &to).await?;
        let size = stat.inode.size;
        let chunks = stat.inode.chunks;
        let mode = stat.inode.mode;
        self.change(
            actor,
            FsOp::PutFile {
                path: to.to_string(),
                mode,
                chunks,
            },
        )
        .await?;
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

    /// Makes the file `path` hold `refs` (durable on their nodes already) → `{path size chunks}`.
    async fn put_chunks(
        &self,
        actor: Actor,
        path: &FsPath,
        mode: u16,
        refs: Vec<StoredChunk>,
    ) -> Result<Unit, Error> {
        let size: u64 = refs.iter().map(|c| u64::from(c.len)).sum();
        let count = refs.len() as u64;
        let op = FsOp::PutFile {
            path: path.to_string(),
            mode,
            chunks: refs,
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
        let stat = self.readable_file(actor, &path).await?;
        if let Some(version) = c.opt_count("version")? {
            if version as u64 != stat.inode.version {
                return Err(Error::new(
                    CHANGED,
                    format!("{path} is at version {}, not {version}", stat.inode.version),
                ));
            }
        }
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
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
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
            out.extend_from_slice(&bytes[from..to]);
        }
        cx.charge(out.len() as u64)?;
        Ok(Unit::Bytes(out.into()))
    }

    /// A chunk's bytes: from this node's store, or else from another up node (checked and
    /// kept here).
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
        let ask = map_of([
            ("chunk", Unit::from(chunk.hex())),
            ("len", int_u64(u64::from(chunk.len))),
        ]);
        for node in self.others() {
            if let Ok(Some(Unit::Bytes(bytes))) = cx.send(NAME, Some(&node), ask.clone()).await {
                if chunk.matches(&bytes) {
                    // Kept here again: a failure to keep it does not fail the read.
                    let _ = self.store_here(chunk, bytes.clone()).await;
                    return Ok(bytes.to_vec());
                }
            }
        }
        Err(Error::new(
            UNAVAILABLE,
            format!("chunk {} is on no node that answers", chunk.hex()),
        ))
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
        let hex = c
            .arg()?
            .as_str()
            .ok_or_else(|| Error::bad_argument("chunk takes a hash in hex"))?;
        let hash =
            hash_of(hex).ok_or_else(|| Error::bad_argument("a chunk hash is 64 hex digits"))?;
        let len = c
            .opt_count("len")?
            .ok_or_else(|| Error::bad_argument("chunk needs len:N"))?;
        let chunk = ChunkRef {
            hash,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
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

static TABLE: LazyLock<Table<Op>> = LazyLock::new(|| {
    Table::new(
        NAME,
        "The cluster's file tree: list, inspect, make, remove and move files and directories, \
         write and read files. Each file and directory has an owner and mode bits (owner and \
         others; no groups); an admin may do anything",
        vec![],
        vec![
            Entry::new("ls", "The entries of a directory (/ by default) → [{name kind size mode user mtime ino version}…]", &["ls", "{ls:PATH}"], Arg::Optional, Op::Ls),
            Entry::new("stat", "One file or directory → {path name kind size mode user mtime ino version chunks}", &["{stat:PATH}"], Arg::Required, Op::Stat),
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
        ],
    )
});
