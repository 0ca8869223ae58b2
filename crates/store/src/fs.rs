//! The cluster file system's metadata: directories, files and their chunk lists, in redb
//! tables that a single node or the replicated cluster state applies operations to.
//!
//! Every operation takes the transaction, the [`Actor`] and the time as arguments and does the
//! same on every node, so the replicated state machine can apply it from its log. Paths are
//! resolved inside the transaction (each directory on the way needs `x`), so an operation is
//! atomic and linearizable with the log; `rename` moves one entry in one transaction. A file's
//! content is its list of chunks ([`ChunkRef`]), replaced whole by [`FsTables::put_file`]:
//! a reader sees the old list or the new one, never a mix. Each chunk has a row with its
//! references and its **homes**, the nodes that keep a copy; the row goes when no file names
//! the chunk any more, and the nodes' sweeps then delete their copies. Layout and rules:
//! `docs/fs.md`.

use plexus_fs::{check, Access, Actor, ChunkRef, Denied, FsPath, PathError, MODE_BITS};
use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::error::{DbResult, StoreError};

/// The inode number of `/`.
pub const ROOT: u64 = 1;
/// The encoding version of a stored [`Inode`] (2 added inline data; 1 is still read).
pub const INODE_ENCODING: u8 = 2;
/// The largest file kept inline in its inode, in the replicated metadata, instead of in
/// chunks: one page. Three chunk copies, each a file fsynced with its directory, cost a
/// small file far more than its bytes do in the log.
pub const INLINE_MAX: usize = 4096;
/// The encoding version of a stored [`ChunkRow`].
pub const CHUNK_ENCODING: u8 = 1;
/// Most homes one chunk lists.
pub const MAX_HOMES: usize = 16;
/// Longest node name a home is.
pub const MAX_HOME_BYTES: usize = 255;
/// Most entries one directory holds.
pub const MAX_DIR_ENTRIES: u64 = 1_000_000;
/// Most chunks one file has (4 MiB chunks: files up to 256 GiB).
pub const MAX_FILE_CHUNKS: usize = 65_536;

/// A file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

/// One chunk of a file as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// BLAKE3 of its bytes.
    pub hash: [u8; 32],
    /// Its length.
    pub len: u32,
}

impl From<ChunkRef> for StoredChunk {
    fn from(c: ChunkRef) -> StoredChunk {
        StoredChunk {
            hash: c.hash,
            len: c.len,
        }
    }
}

impl From<StoredChunk> for ChunkRef {
    fn from(c: StoredChunk) -> ChunkRef {
        ChunkRef {
            hash: c.hash,
            len: c.len,
        }
    }
}

/// A file or directory's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// File or directory.
    pub kind: Kind,
    /// The owner's public key.
    pub owner: [u8; 32],
    /// Its nine mode bits.
    pub mode: u16,
    /// A file's size in bytes (the sum of its chunks); a directory's number of entries.
    pub size: u64,
    /// When its content (or a directory's entries) last changed, in ms since the Unix epoch.
    pub mtime_ms: u64,
    /// A file's chunks, in order.
    pub chunks: Vec<StoredChunk>,
    /// Bumped by every change: a writer may ask that nothing changed since it read.
    pub version: u64,
    /// A small file's content, kept here instead of in chunks (at most [`INLINE_MAX`]
    /// bytes; a file has chunks or inline data, not both).
    pub data: Vec<u8>,
}

/// An inode as encoding 1 wrote it (before inline data).
#[derive(Deserialize)]
struct InodeV1 {
    kind: Kind,
    owner: [u8; 32],
    mode: u16,
    size: u64,
    mtime_ms: u64,
    chunks: Vec<StoredChunk>,
    version: u64,
}

impl Inode {
    fn encode(&self) -> Vec<u8> {
        encode_versioned(INODE_ENCODING, self)
    }

    fn decode(bytes: &[u8]) -> Result<Inode, StoreError> {
        match bytes.first() {
            Some(1) => decode_versioned::<InodeV1>(1, bytes, "an inode").map(|v1| Inode {
                kind: v1.kind,
                owner: v1.owner,
                mode: v1.mode,
                size: v1.size,
                mtime_ms: v1.mtime_ms,
                chunks: v1.chunks,
                version: v1.version,
                data: Vec::new(),
            }),
            _ => decode_versioned(INODE_ENCODING, bytes, "an inode"),
        }
    }
}

/// One version byte, then `value` in postcard.
fn encode_versioned(version: u8, value: &impl Serialize) -> Vec<u8> {
    let mut out = vec![version];
    if let Ok(body) = postcard::to_extend(value, Vec::new()) {
        out.extend(body);
    }
    out
}

/// What [`encode_versioned`] wrote with `version`: `what` names it in errors.
fn decode_versioned<T: serde::de::DeserializeOwned>(
    version: u8,
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((v, body)) if *v == version => match postcard::take_from_bytes(body) {
            Ok((value, [])) => Ok(value),
            Ok(_) => Err(StoreError::Corrupt(format!("bytes after {what}"))),
            Err(e) => Err(StoreError::Corrupt(format!("{what}: {e}"))),
        },
        _ => Err(StoreError::Corrupt(format!(
            "{what} of an unknown encoding"
        ))),
    }
}

/// What the metadata knows of one chunk that files name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRow {
    /// How many chunk entries of files name it.
    pub refs: u64,
    /// Its length in bytes.
    pub len: u32,
    /// The nodes that keep a copy, by name (unsorted, each once).
    pub homes: Vec<String>,
}

impl ChunkRow {
    fn encode(&self) -> Vec<u8> {
        encode_versioned(CHUNK_ENCODING, self)
    }

    fn decode(bytes: &[u8]) -> Result<ChunkRow, StoreError> {
        decode_versioned(CHUNK_ENCODING, bytes, "a chunk row")
    }
}

/// A page of chunk rows by hash, as [`FsTables::chunk_rows`] reads them.
pub type ChunkPage = Vec<([u8; 32], ChunkRow)>;

/// Nodes that now keep a copy of a chunk, as a write or a repair reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Homes {
    /// The chunk's hash.
    pub hash: [u8; 32],
    /// Nodes to list as keeping it.
    pub add: Vec<String>,
    /// Nodes to stop listing.
    pub drop: Vec<String>,
}

/// A change to the tree, as a replicated log entry carries it (paths as text, parsed when
/// applied: a bad one is refused there, `arg.bad`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsOp {
    /// [`FsTables::mkdir`].
    Mkdir {
        /// The new directory.
        path: String,
        /// Its mode.
        mode: u16,
    },
    /// [`FsTables::put_file`].
    PutFile {
        /// The file.
        path: String,
        /// Its mode if it is new.
        mode: u16,
        /// Its content.
        chunks: Vec<StoredChunk>,
        /// The nodes that keep its new chunks (listed in addition to known homes).
        homes: Vec<Homes>,
    },
    /// [`FsTables::put_inline`].
    PutInline {
        /// The file.
        path: String,
        /// Its mode if it is new.
        mode: u16,
        /// Its content (at most [`INLINE_MAX`] bytes).
        data: Vec<u8>,
    },
    /// [`FsTables::remove`].
    Remove {
        /// The file or empty directory.
        path: String,
    },
    /// [`FsTables::rename`].
    Rename {
        /// What moves.
        from: String,
        /// Where to.
        to: String,
    },
    /// [`FsTables::chmod`].
    Chmod {
        /// The file or directory.
        path: String,
        /// Its new mode.
        mode: u16,
    },
    /// [`FsTables::chown`].
    Chown {
        /// The file or directory.
        path: String,
        /// Its new owner.
        owner: [u8; 32],
    },
    /// [`FsTables::rehome`], by an admin (a node's repair or sweep).
    Rehome {
        /// The changes, chunk by chunk.
        changes: Vec<Homes>,
    },
}

/// The file tree as the `io.fs` service uses it: implemented by [`crate::NodeDb`] for a
/// single node and by the cluster's replicated state. A change is applied whole or not at all;
/// reads see every change acknowledged before them.
pub trait FsMeta: Send + Sync {
    /// Applies `op` for `actor`, with `now_ms` as the file time.
    fn apply(
        &self,
        actor: Actor,
        now_ms: u64,
        op: FsOp,
    ) -> crate::BoxFuture<'_, Result<(), FsError>>;
    /// The metadata at `path` ([`FsTables::stat`]).
    fn stat(&self, actor: Actor, path: FsPath) -> crate::BoxFuture<'_, Result<Stat, FsError>>;
    /// [`FsMeta::stat`] from this node's copy of the tree, without a read barrier: it may be
    /// a moment behind (for a read that names the version it wants, which it either finds or
    /// asks again with [`FsMeta::stat`]).
    fn stat_here(&self, actor: Actor, path: FsPath) -> crate::BoxFuture<'_, Result<Stat, FsError>> {
        self.stat(actor, path)
    }
    /// The entries of the directory at `path` ([`FsTables::list`]).
    fn list(
        &self,
        actor: Actor,
        path: FsPath,
    ) -> crate::BoxFuture<'_, Result<Vec<(String, Stat)>, FsError>>;
    /// The rows of the chunks `hashes` (`None` for a chunk no file names), from this node's
    /// copy of the tree: no read barrier, so it may be a moment behind.
    fn chunk_rows_of(
        &self,
        hashes: Vec<[u8; 32]>,
    ) -> crate::BoxFuture<'_, Result<Vec<Option<ChunkRow>>, FsError>>;
    /// Up to `max` chunk rows after `after` in hash order ([`FsTables::chunk_rows`]), from
    /// this node's copy of the tree.
    fn chunk_rows(
        &self,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> crate::BoxFuture<'_, Result<ChunkPage, FsError>>;
    /// Whether this node runs the tree's cluster-wide duties (repair): a cluster's leader, or
    /// a single node.
    fn leads(&self) -> bool;
    /// Applies `op` as [`FsMeta::apply`] does, but only while this node leads (a single node
    /// always does): for changes decided from what this node saw while leading (repair),
    /// which must not be made by a later leader that sees otherwise.
    fn apply_leading(
        &self,
        actor: Actor,
        now_ms: u64,
        op: FsOp,
    ) -> crate::BoxFuture<'_, Result<(), FsError>> {
        self.apply(actor, now_ms, op)
    }
}

/// Every row of the tables, as a snapshot carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsDump {
    /// (inode number, encoded inode).
    pub inodes: Vec<(u64, Vec<u8>)>,
    /// (directory, name, inode number).
    pub entries: Vec<(u64, String, u64)>,
    /// (chunk hash, encoded [`ChunkRow`]).
    pub chunks: Vec<([u8; 32], Vec<u8>)>,
    /// The next inode number.
    pub next_ino: u64,
}

/// What `stat` and `ls` give of one file or directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Its inode number.
    pub ino: u64,
    /// Its metadata.
    pub inode: Inode,
}

/// Why a file-system operation failed. [`FsError::code`] is the error code it travels with.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Not a path of the tree.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Nothing there.
    #[error("{0}: no such file or directory")]
    NotFound(FsPath),
    /// Something there already.
    #[error("{0} exists")]
    Exists(FsPath),
    /// A file where a directory is needed.
    #[error("{0} is not a directory")]
    NotDir(FsPath),
    /// A directory where a file is needed.
    #[error("{0} is a directory")]
    IsDir(FsPath),
    /// A directory that still has entries.
    #[error("{0} is not empty")]
    NotEmpty(FsPath),
    /// Refused by the mode bits.
    #[error("permission denied: {0}")]
    Denied(#[from] Denied),
    /// Only the owner (or an admin) may do this.
    #[error("only the owner of {0}, or an admin, may change it")]
    NotOwner(FsPath),
    /// An argument that makes no sense (moving a directory into itself, a mode over 0o777…).
    #[error("{0}")]
    Invalid(String),
    /// A bound of the tree (entries in a directory, chunks in a file).
    #[error("{0}")]
    Limit(String),
    /// Refused where the tree is kept (a replicated state's leader): its code and message.
    #[error("{message}")]
    Refused {
        /// The error code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// The database failed, or holds bytes that are not metadata.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FsError {
    /// The error code a caller sees.
    pub fn code(&self) -> &str {
        match self {
            FsError::Refused { code, .. } => code,
            FsError::Path(_) | FsError::Invalid(_) => "arg.bad",
            FsError::NotFound(_) => "not.found",
            FsError::Exists(_) => "fs.exists",
            FsError::NotDir(_) => "fs.not.dir",
            FsError::IsDir(_) => "fs.is.dir",
            FsError::NotEmpty(_) => "fs.not.empty",
            FsError::Denied(_) | FsError::NotOwner(_) => "denied",
            FsError::Limit(_) => "limit",
            FsError::Store(_) => "store",
        }
    }
}

/// The tables of the file-system metadata.
#[derive(Clone, Copy)]
pub struct FsTables {
    /// inode number → encoded [`Inode`].
    inodes: TableDefinition<'static, u64, &'static [u8]>,
    /// (directory, name) → inode number.
    entries: TableDefinition<'static, (u64, &'static str), u64>,
    /// chunk hash → encoded [`ChunkRow`], for chunks files name.
    chunks: TableDefinition<'static, &'static [u8; 32], &'static [u8]>,
    /// `next_ino` → the next inode number.
    counters: TableDefinition<'static, &'static str, u64>,
}

/// Where a path leads, as resolution found it.
struct Found {
    /// Its parent directory's inode number and metadata (`None` for `/`).
    parent: Option<(u64, Inode)>,
    /// Its own inode number and metadata, if it exists.
    node: Option<(u64, Inode)>,
}

impl FsTables {
    /// The tables with this prefix (`fs` → `fs.inodes`, `fs.entries`, …; static, as redb needs).
    pub const fn new(
        inodes: &'static str,
        entries: &'static str,
        chunks: &'static str,
        counters: &'static str,
    ) -> FsTables {
        FsTables {
            inodes: TableDefinition::new(inodes),
            entries: TableDefinition::new(entries),
            chunks: TableDefinition::new(chunks),
            counters: TableDefinition::new(counters),
        }
    }

    /// Creates the tables if missing, and `/` if there is none: mode 0o755, owned by no user
    /// (the all-zero key), so only an admin adds entries at the top (`/home`, `/data`).
    /// Files without chunk rows (a tree from before rows existed) get theirs, with no homes
    /// listed: each node's sweep lists its copies again.
    pub fn create(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        self.rebuild_chunk_rows(txn)?;
        let mut inodes = txn.open_table(self.inodes).db()?;
        txn.open_table(self.entries).db()?;
        let mut counters = txn.open_table(self.counters).db()?;
        if inodes.get(ROOT).db()?.is_none() {
            let root = Inode {
                kind: Kind::Dir,
                owner: [0; 32],
                mode: 0o755,
                size: 0,
                mtime_ms: 0,
                chunks: Vec::new(),
                version: 0,
                data: Vec::new(),
            };
            inodes.insert(ROOT, root.encode().as_slice()).db()?;
            counters.insert("next_ino", ROOT + 1).db()?;
        }
        Ok(())
    }

    /// The metadata at `path`; every directory on the way needs `x`.
    pub fn stat(
        &self,
        txn: &ReadTransaction,
        actor: &Actor,
        path: &FsPath,
    ) -> Result<Stat, FsError> {
        let inodes = txn.open_table(self.inodes).db()?;
        let entries = txn.open_table(self.entries).db()?;
        let found = resolve(&inodes, &entries, actor, path)?;
        let (ino, inode) = found.node.ok_or_else(|| FsError::NotFound(path.clone()))?;
        Ok(Stat { ino, inode })
    }

    /// The entries of the directory at `path`, by name; it needs `r`.
    pub fn list(
        &self,
        txn: &ReadTransaction,
        actor: &Actor,
        path: &FsPath,
    ) -> Result<Vec<(String, Stat)>, FsError> {
        let inodes = txn.open_table(self.inodes).db()?;
        let entries = txn.open_table(self.entries).db()?;
        let found = resolve(&inodes, &entries, actor, path)?;
        let (dir, inode) = found.node.ok_or_else(|| FsError::NotFound(path.clone()))?;
        if inode.kind != Kind::Dir {
            return Err(FsError::NotDir(path.clone()));
        }
        check(actor, &inode.owner, inode.mode, Access::Read, path.as_str())?;
        let mut out = Vec::new();
        for row in entries.range((dir, "")..).db()? {
            let (key, child) = row.db()?;
            let (parent, name) = key.value();
            if parent != dir {
                break;
            }
            let child = child.value();
            out.push((
                name.to_owned(),
                Stat {
                    ino: child,
                    inode: load(&inodes, child)?,
                },
            ));
        }
        Ok(out)
    }

    /// Makes the directory `path` with `mode`, owned by the actor; its parent needs `w` and
    /// `x`.
    pub fn mkdir(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
        now_ms: u64,
    ) -> Result<Stat, FsError> {
        self.make(
            txn,
            actor,
            path,
            mode,
            now_ms,
            Kind::Dir,
            Vec::new(),
            Vec::new(),
        )
    }

    /// Makes the file `path` hold `chunks` (in order), creating it with `mode` if it does
    /// not exist (its parent needs `w` and `x`) or replacing its content whole if it does (it
    /// needs `w`; its mode and owner stay). The old chunks lose a reference; `homes` lists
    /// the nodes that keep the new ones ([`FsTables::rehome`]).
    #[allow(clippy::too_many_arguments)]
    pub fn put_file(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
        chunks: &[ChunkRef],
        homes: &[Homes],
        now_ms: u64,
    ) -> Result<Stat, FsError> {
        if chunks.len() > MAX_FILE_CHUNKS {
            return Err(FsError::Limit(format!(
                "a file has at most {MAX_FILE_CHUNKS} chunks, not {}",
                chunks.len()
            )));
        }
        let stored: Vec<StoredChunk> = chunks.iter().map(|&c| c.into()).collect();
        let stat = self.put_content(txn, actor, path, mode, stored, Vec::new(), now_ms)?;
        self.rehome(txn, homes)?;
        Ok(stat)
    }

    /// As [`FsTables::put_file`], with `data` (at most [`INLINE_MAX`] bytes) kept inline in
    /// the inode instead of in chunks.
    pub fn put_inline(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
        data: &[u8],
        now_ms: u64,
    ) -> Result<Stat, FsError> {
        if data.len() > INLINE_MAX {
            return Err(FsError::Invalid(format!(
                "at most {INLINE_MAX} bytes are kept inline, not {}",
                data.len()
            )));
        }
        self.put_content(txn, actor, path, mode, Vec::new(), data.to_vec(), now_ms)
    }

    /// What [`FsTables::put_file`] and [`FsTables::put_inline`] share.
    #[allow(clippy::too_many_arguments)]
    fn put_content(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
        stored: Vec<StoredChunk>,
        data: Vec<u8>,
        now_ms: u64,
    ) -> Result<Stat, FsError> {
        let found = self.resolve_write(txn, actor, path)?;
        let Some((ino, old)) = found.node else {
            return self.make(txn, actor, path, mode, now_ms, Kind::File, stored, data);
        };
        if old.kind == Kind::Dir {
            return Err(FsError::IsDir(path.clone()));
        }
        check(actor, &old.owner, old.mode, Access::Write, path.as_str())?;
        self.count_refs(txn, &stored, &old.chunks)?;
        let inode = Inode {
            size: size_of(&stored) + data.len() as u64,
            mtime_ms: now_ms,
            chunks: stored,
            version: old.version + 1,
            data,
            ..old
        };
        store(txn, self.inodes, ino, &inode)?;
        Ok(Stat { ino, inode })
    }

    /// Removes the file or empty directory at `path`; its parent needs `w` and `x`. A file's
    /// chunks lose a reference.
    pub fn remove(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        now_ms: u64,
    ) -> Result<(), FsError> {
        let name = path
            .name()
            .ok_or_else(|| FsError::Invalid("/ cannot be removed".to_owned()))?;
        let found = self.resolve_write(txn, actor, path)?;
        let (parent, parent_inode) = found
            .parent
            .ok_or_else(|| FsError::Invalid("/ cannot be removed".to_owned()))?;
        let (ino, inode) = found.node.ok_or_else(|| FsError::NotFound(path.clone()))?;
        let (dir, _) = path
            .split()
            .ok_or_else(|| FsError::Invalid("/ cannot be removed".to_owned()))?;
        check(
            actor,
            &parent_inode.owner,
            parent_inode.mode,
            Access::Write,
            dir.as_str(),
        )?;
        if inode.kind == Kind::Dir && inode.size > 0 {
            return Err(FsError::NotEmpty(path.clone()));
        }
        self.count_refs(txn, &[], &inode.chunks)?;
        txn.open_table(self.entries)
            .db()?
            .remove((parent, name))
            .db()?;
        txn.open_table(self.inodes).db()?.remove(ino).db()?;
        touch(txn, self.inodes, parent, parent_inode, now_ms, -1)?;
        Ok(())
    }

    /// Moves `from` to `to` in one step. A file at `to` is replaced (its chunks lose a
    /// reference), an empty directory at `to` is replaced by a directory; both parents need
    /// `w` and `x`. A directory cannot move into itself.
    pub fn rename(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        from: &FsPath,
        to: &FsPath,
        now_ms: u64,
    ) -> Result<(), FsError> {
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) = (from.split(), to.split())
        else {
            return Err(FsError::Invalid(
                "/ cannot be moved, nor replaced".to_owned(),
            ));
        };
        if from.contains(to) && from != to {
            return Err(FsError::Invalid(format!(
                "{from} cannot move into itself ({to})"
            )));
        }
        let src = self.resolve_write(txn, actor, from)?;
        let (src_parent, src_parent_inode) =
            src.parent.ok_or_else(|| FsError::NotFound(from.clone()))?;
        let (ino, inode) = src.node.ok_or_else(|| FsError::NotFound(from.clone()))?;
        check(
            actor,
            &src_parent_inode.owner,
            src_parent_inode.mode,
            Access::Write,
            from_dir.as_str(),
        )?;
        if from == to {
            return Ok(());
        }
        let dst = self.resolve_write(txn, actor, to)?;
        let (dst_parent, dst_parent_inode) =
            dst.parent.ok_or_else(|| FsError::NotFound(to.clone()))?;
        check(
            actor,
            &dst_parent_inode.owner,
            dst_parent_inode.mode,
            Access::Write,
            to_dir.as_str(),
        )?;
        let replaced = i64::from(dst.node.is_some());
        if let Some((old, old_inode)) = dst.node {
            match (inode.kind, old_inode.kind) {
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir(to.clone())),
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir(to.clone())),
                (Kind::Dir, Kind::Dir) if old_inode.size > 0 => {
                    return Err(FsError::NotEmpty(to.clone()))
                }
                _ => {}
            }
            self.count_refs(txn, &[], &old_inode.chunks)?;
            txn.open_table(self.inodes).db()?.remove(old).db()?;
        } else {
            Self::check_room(&dst_parent_inode)?;
        }
        {
            let mut entries = txn.open_table(self.entries).db()?;
            entries.remove((src_parent, from_name)).db()?;
            entries.insert((dst_parent, to_name), ino).db()?;
        }
        if dst_parent == src_parent {
            touch(
                txn,
                self.inodes,
                src_parent,
                src_parent_inode,
                now_ms,
                -replaced,
            )?;
        } else {
            touch(txn, self.inodes, src_parent, src_parent_inode, now_ms, -1)?;
            // Read again: the source's parent may be on the destination's path.
            let inode = load(&txn.open_table(self.inodes).db()?, dst_parent)?;
            touch(txn, self.inodes, dst_parent, inode, now_ms, 1 - replaced)?;
        }
        Ok(())
    }

    /// Sets the mode bits of `path`: only its owner or an admin may.
    pub fn chmod(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
    ) -> Result<Stat, FsError> {
        check_mode(mode)?;
        self.update_attr(txn, actor, path, |inode| {
            if !actor.admin && actor.user != inode.owner {
                return Err(FsError::NotOwner(path.clone()));
            }
            inode.mode = mode;
            Ok(())
        })
    }

    /// Gives `path` (a file or directory) to `owner`: only an admin may. For users' home
    /// directories.
    pub fn chown(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        owner: [u8; 32],
    ) -> Result<Stat, FsError> {
        if !actor.admin {
            return Err(FsError::NotOwner(path.clone()));
        }
        self.update_attr(txn, actor, path, |inode| {
            inode.owner = owner;
            Ok(())
        })
    }

    /// Changes an attribute of the inode at `path` with `change` (which may refuse), bumping
    /// its version.
    fn update_attr(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        change: impl FnOnce(&mut Inode) -> Result<(), FsError>,
    ) -> Result<Stat, FsError> {
        let found = self.resolve_write(txn, actor, path)?;
        let (ino, mut inode) = found.node.ok_or_else(|| FsError::NotFound(path.clone()))?;
        change(&mut inode)?;
        inode.version += 1;
        store(txn, self.inodes, ino, &inode)?;
        Ok(Stat { ino, inode })
    }

    /// The row of the chunk `hash`, if a file names it.
    pub fn chunk_row(
        &self,
        txn: &ReadTransaction,
        hash: &[u8; 32],
    ) -> Result<Option<ChunkRow>, StoreError> {
        let table = txn.open_table(self.chunks).db()?;
        let row = table.get(hash).db()?;
        row.map(|r| ChunkRow::decode(r.value())).transpose()
    }

    /// Up to `max` chunk rows in hash order, after `after` (from the first with `None`): a
    /// scan of every chunk in pages.
    pub fn chunk_rows(
        &self,
        txn: &ReadTransaction,
        after: Option<[u8; 32]>,
        max: usize,
    ) -> Result<ChunkPage, StoreError> {
        let table = txn.open_table(self.chunks).db()?;
        let rows = match &after {
            Some(after) => table
                .range::<&[u8; 32]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => table.range::<&[u8; 32]>(..),
        }
        .db()?;
        let mut out = Vec::new();
        for row in rows.take(max) {
            let (hash, bytes) = row.db()?;
            out.push((*hash.value(), ChunkRow::decode(bytes.value())?));
        }
        Ok(out)
    }

    /// Lists and unlists homes of chunks. A change for a chunk no file names (collected since)
    /// is skipped; a chunk lists each node once and at most [`MAX_HOMES`].
    pub fn rehome(&self, txn: &WriteTransaction, changes: &[Homes]) -> Result<(), FsError> {
        let mut table = txn.open_table(self.chunks).db()?;
        for change in changes {
            if change
                .add
                .iter()
                .any(|n| n.is_empty() || n.len() > MAX_HOME_BYTES)
            {
                return Err(FsError::Invalid(format!(
                    "a home is a node name of 1 to {MAX_HOME_BYTES} bytes"
                )));
            }
            let Some(mut row) = table
                .get(&change.hash)
                .db()?
                .map(|r| ChunkRow::decode(r.value()))
                .transpose()?
            else {
                continue;
            };
            row.homes.retain(|h| !change.drop.contains(h));
            for node in &change.add {
                if !row.homes.contains(node) && row.homes.len() < MAX_HOMES {
                    row.homes.push(node.clone());
                }
            }
            table.insert(&change.hash, row.encode().as_slice()).db()?;
        }
        Ok(())
    }

    /// Applies `op` for `actor` at `now_ms`: what a replicated log entry carries.
    pub fn apply(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        now_ms: u64,
        op: &FsOp,
    ) -> Result<(), FsError> {
        match op {
            FsOp::Mkdir { path, mode } => self
                .mkdir(txn, actor, &FsPath::parse(path)?, *mode, now_ms)
                .map(drop),
            FsOp::PutFile {
                path,
                mode,
                chunks,
                homes,
            } => {
                let chunks: Vec<ChunkRef> = chunks.iter().map(|&c| c.into()).collect();
                let path = FsPath::parse(path)?;
                self.put_file(txn, actor, &path, *mode, &chunks, homes, now_ms)
                    .map(drop)
            }
            FsOp::PutInline { path, mode, data } => self
                .put_inline(txn, actor, &FsPath::parse(path)?, *mode, data, now_ms)
                .map(drop),
            FsOp::Remove { path } => self.remove(txn, actor, &FsPath::parse(path)?, now_ms),
            FsOp::Rename { from, to } => self.rename(
                txn,
                actor,
                &FsPath::parse(from)?,
                &FsPath::parse(to)?,
                now_ms,
            ),
            FsOp::Chmod { path, mode } => self
                .chmod(txn, actor, &FsPath::parse(path)?, *mode)
                .map(drop),
            FsOp::Chown { path, owner } => self
                .chown(txn, actor, &FsPath::parse(path)?, *owner)
                .map(drop),
            FsOp::Rehome { changes } => {
                if !actor.admin {
                    return Err(FsError::Invalid(
                        "only a node (as admin) changes where chunks are kept".to_owned(),
                    ));
                }
                self.rehome(txn, changes)
            }
        }
    }

    /// Every row of the tables, for a snapshot.
    pub fn dump(&self, txn: &ReadTransaction) -> Result<FsDump, StoreError> {
        let mut dump = FsDump::default();
        for row in txn.open_table(self.inodes).db()?.iter().db()? {
            let (ino, bytes) = row.db()?;
            dump.inodes.push((ino.value(), bytes.value().to_vec()));
        }
        for row in txn.open_table(self.entries).db()?.iter().db()? {
            let (key, ino) = row.db()?;
            let (dir, name) = key.value();
            dump.entries.push((dir, name.to_owned(), ino.value()));
        }
        for row in txn.open_table(self.chunks).db()?.iter().db()? {
            let (hash, bytes) = row.db()?;
            dump.chunks.push((*hash.value(), bytes.value().to_vec()));
        }
        dump.next_ino = txn
            .open_table(self.counters)
            .db()?
            .get("next_ino")
            .db()?
            .map_or(ROOT + 1, |g| g.value());
        Ok(dump)
    }

    /// Replaces every row by `dump`'s ([`FsTables::dump`]); an inode that does not decode is
    /// an error (the snapshot is damaged).
    pub fn restore(&self, txn: &WriteTransaction, dump: &FsDump) -> Result<(), StoreError> {
        let mut inodes = txn.open_table(self.inodes).db()?;
        let mut entries = txn.open_table(self.entries).db()?;
        let mut chunks = txn.open_table(self.chunks).db()?;
        let mut counters = txn.open_table(self.counters).db()?;
        inodes.retain(|_, _| false).db()?;
        entries.retain(|_, _| false).db()?;
        chunks.retain(|_, _| false).db()?;
        for (ino, bytes) in &dump.inodes {
            Inode::decode(bytes)?;
            inodes.insert(*ino, bytes.as_slice()).db()?;
        }
        for (dir, name, ino) in &dump.entries {
            entries.insert((*dir, name.as_str()), *ino).db()?;
        }
        for (hash, bytes) in &dump.chunks {
            ChunkRow::decode(bytes)?;
            chunks.insert(hash, bytes.as_slice()).db()?;
        }
        counters.insert("next_ino", dump.next_ino).db()?;
        Ok(())
    }

    fn resolve_write(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
    ) -> Result<Found, FsError> {
        let inodes = txn.open_table(self.inodes).db()?;
        let entries = txn.open_table(self.entries).db()?;
        resolve(&inodes, &entries, actor, path)
    }

    fn check_room(dir: &Inode) -> Result<(), FsError> {
        if dir.size >= MAX_DIR_ENTRIES {
            return Err(FsError::Limit(format!(
                "a directory holds at most {MAX_DIR_ENTRIES} entries"
            )));
        }
        Ok(())
    }

    /// Makes a new file or directory at `path` (nothing there yet).
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        txn: &WriteTransaction,
        actor: &Actor,
        path: &FsPath,
        mode: u16,
        now_ms: u64,
        kind: Kind,
        chunks: Vec<StoredChunk>,
        data: Vec<u8>,
    ) -> Result<Stat, FsError> {
        check_mode(mode)?;
        let (dir, name) = path.split().ok_or_else(|| FsError::Exists(path.clone()))?;
        let found = self.resolve_write(txn, actor, path)?;
        let (parent, parent_inode) = found.parent.ok_or_else(|| FsError::Exists(path.clone()))?;
        if found.node.is_some() {
            return Err(FsError::Exists(path.clone()));
        }
        check(
            actor,
            &parent_inode.owner,
            parent_inode.mode,
            Access::Write,
            dir.as_str(),
        )?;
        Self::check_room(&parent_inode)?;
        self.count_refs(txn, &chunks, &[])?;
        let ino = {
            let mut counters = txn.open_table(self.counters).db()?;
            let ino = counters
                .get("next_ino")
                .db()?
                .map_or(ROOT + 1, |g| g.value());
            counters.insert("next_ino", ino + 1).db()?;
            ino
        };
        let inode = Inode {
            kind,
            owner: actor.user,
            mode,
            size: if kind == Kind::Dir {
                0
            } else {
                size_of(&chunks) + data.len() as u64
            },
            mtime_ms: now_ms,
            chunks,
            version: 0,
            data,
        };
        store(txn, self.inodes, ino, &inode)?;
        txn.open_table(self.entries)
            .db()?
            .insert((parent, name), ino)
            .db()?;
        touch(txn, self.inodes, parent, parent_inode, now_ms, 1)?;
        Ok(Stat { ino, inode })
    }

    /// One more reference for each of `added`, one less for each of `dropped`; a chunk left
    /// with none loses its row (the stores' sweeps then delete its copies).
    fn count_refs(
        &self,
        txn: &WriteTransaction,
        added: &[StoredChunk],
        dropped: &[StoredChunk],
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(self.chunks).db()?;
        let load = |table: &redb::Table<&[u8; 32], &[u8]>, hash: &[u8; 32]| {
            table
                .get(hash)
                .db()?
                .map(|r| ChunkRow::decode(r.value()))
                .transpose()
        };
        for c in added {
            let mut row = load(&table, &c.hash)?.unwrap_or_else(|| ChunkRow {
                refs: 0,
                len: c.len,
                homes: Vec::new(),
            });
            row.refs += 1;
            table.insert(&c.hash, row.encode().as_slice()).db()?;
        }
        for c in dropped {
            match load(&table, &c.hash)? {
                Some(mut row) if row.refs > 1 => {
                    row.refs -= 1;
                    table.insert(&c.hash, row.encode().as_slice()).db()?;
                }
                _ => {
                    table.remove(&c.hash).db()?;
                }
            }
        }
        Ok(())
    }

    /// Gives every chunk files name a row, if the chunk table is empty while files have
    /// chunks: what a tree kept before chunk rows existed needs.
    fn rebuild_chunk_rows(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if !ReadableTableMetadata::is_empty(&txn.open_table(self.chunks).db()?).db()? {
            return Ok(());
        }
        let mut named = Vec::new();
        for row in txn.open_table(self.inodes).db()?.iter().db()? {
            let (_, bytes) = row.db()?;
            named.extend(Inode::decode(bytes.value())?.chunks);
        }
        self.count_refs(txn, &named, &[])
    }
}

fn check_mode(mode: u16) -> Result<(), FsError> {
    if mode & !MODE_BITS != 0 {
        return Err(FsError::Invalid(format!(
            "mode {mode:o} has bits beyond 0o777"
        )));
    }
    Ok(())
}

fn size_of(chunks: &[StoredChunk]) -> u64 {
    chunks.iter().map(|c| u64::from(c.len)).sum()
}

fn load(inodes: &impl ReadableTable<u64, &'static [u8]>, ino: u64) -> Result<Inode, StoreError> {
    let bytes = inodes.get(ino).db()?.ok_or_else(|| {
        StoreError::Corrupt(format!("an entry names inode {ino}, which does not exist"))
    })?;
    Inode::decode(bytes.value())
}

fn store(
    txn: &WriteTransaction,
    inodes: TableDefinition<'static, u64, &'static [u8]>,
    ino: u64,
    inode: &Inode,
) -> Result<(), StoreError> {
    txn.open_table(inodes)
        .db()?
        .insert(ino, inode.encode().as_slice())
        .db()?;
    Ok(())
}

/// A directory's entries changed, `added` more of them (or fewer): its count, time and
/// version move.
fn touch(
    txn: &WriteTransaction,
    inodes: TableDefinition<'static, u64, &'static [u8]>,
    ino: u64,
    inode: Inode,
    now_ms: u64,
    added: i64,
) -> Result<(), StoreError> {
    let inode = Inode {
        size: inode.size.saturating_add_signed(added),
        mtime_ms: now_ms,
        version: inode.version + 1,
        ..inode
    };
    store(txn, inodes, ino, &inode)
}

/// Walks `path` from `/`: each directory on the way needs `x`, and each name but the last
/// must be a directory. The last may not exist.
fn resolve(
    inodes: &impl ReadableTable<u64, &'static [u8]>,
    entries: &impl ReadableTable<(u64, &'static str), u64>,
    actor: &Actor,
    path: &FsPath,
) -> Result<Found, FsError> {
    let mut current = (ROOT, load(inodes, ROOT)?);
    let mut parent = None;
    let mut walked = FsPath::root();
    let names: Vec<&str> = path.names().collect();
    for (i, name) in names.iter().enumerate() {
        if current.1.kind != Kind::Dir {
            return Err(FsError::NotDir(walked));
        }
        check(
            actor,
            &current.1.owner,
            current.1.mode,
            Access::Exec,
            walked.as_str(),
        )?;
        let child = entries.get((current.0, *name)).db()?.map(|g| g.value());
        walked = walked.join(name)?;
        match child {
            Some(child) => {
                let inode = load(inodes, child)?;
                parent = Some(std::mem::replace(&mut current, (child, inode)));
            }
            None if i + 1 == names.len() => {
                return Ok(Found {
                    parent: Some(current),
                    node: None,
                });
            }
            None => return Err(FsError::NotFound(walked)),
        }
    }
    Ok(Found {
        parent,
        node: Some(current),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_of_encoding_one_are_read_without_inline_data() {
        #[derive(Serialize)]
        struct V1 {
            kind: Kind,
            owner: [u8; 32],
            mode: u16,
            size: u64,
            mtime_ms: u64,
            chunks: Vec<StoredChunk>,
            version: u64,
        }
        let chunk = StoredChunk {
            hash: [3; 32],
            len: 7,
        };
        let old = V1 {
            kind: Kind::File,
            owner: [1; 32],
            mode: 0o640,
            size: 7,
            mtime_ms: 99,
            chunks: vec![chunk],
            version: 4,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&old).unwrap_or_default());
        let inode = Inode::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (inode.mode, inode.size, inode.version, inode.chunks.clone()),
            (0o640, 7, 4, vec![chunk])
        );
        assert!(inode.data.is_empty());
        // And the current encoding round-trips, inline data included.
        let now = Inode {
            data: b"inline".to_vec(),
            ..inode
        };
        assert_eq!(Inode::decode(&now.encode()).ok(), Some(now));
        assert!(Inode::decode(&[9, 1, 2]).is_err());
    }
}
