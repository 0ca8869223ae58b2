//! [`PlexusFs`]: the `fuser::Filesystem` over a [`Backend`].
//!
//! - **Inodes** are `io.fs`'s own numbers; [`Inodes`] gives each one's path.
//! - **Reads** take the file's size and version at `open`, then read whole windows (4 MiB,
//!   aligned) at that version; a sequential reader has the next two windows read ahead on
//!   threads of their own while it takes the current one, so the kernel's small
//!   requests rarely wait for the node. A file replaced meanwhile (`fs.changed`) is stat'ed
//!   again and its new content served.
//! - **Writes** go to a spill file on local disk, one per inode open for writing in this mount
//!   (shared by its handles, so they see each other's writes): empty for a new or truncated
//!   file, else filled with the current content at the first write. At `flush`, `fsync` or
//!   the last `release` of a changed file, the spill file is sent and committed whole: other
//!   readers see the new content at once, from the close on.
//! - **Listings** are taken at `opendir`; the entries they show answer lookups for the TTL.
//! - **Who asks**: each request acts for the user [`Backend::caller`] gives for its process;
//!   a handle keeps its opener's, for reads, writes and the commit at close.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use plexus_fs::FsPath;

use crate::backend::{Backend, Caller, Entry, Space};
use crate::error::{Error, Op, Result};
use crate::inodes::{Inodes, ROOT};

/// How the mount behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long the kernel may keep attributes and names (other nodes change the tree).
    pub ttl: Duration,
    /// How many bytes a read handle asks the node for at once (a power of two; the backend
    /// may cut it into several reads in flight).
    pub window: u64,
    /// Where spill files of files being written go (created if missing).
    pub spill_dir: PathBuf,
    /// The owner every file shows (the mounting user's).
    pub uid: u32,
    /// The group every file shows.
    pub gid: u32,
    /// How many threads take requests from the kernel.
    pub threads: usize,
}

/// How many threads take requests from the kernel by default. Each waits for the node while
/// it serves a request, so there are more than programs usually keep busy: a request that
/// needs no node (`statfs`, which nodes on this machine send every few seconds) finds a
/// thread free.
pub const THREADS: usize = 8;

impl Settings {
    /// One-second TTLs, 4 MiB windows, the given spill directory, the calling process's user,
    /// [`THREADS`] threads.
    pub fn new(spill_dir: PathBuf) -> Settings {
        Settings {
            ttl: Duration::from_secs(1),
            window: 4 << 20,
            spill_dir,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            threads: THREADS,
        }
    }
}

/// How many windows a sequential reader has read ahead at once.
const AHEAD: usize = 2;
/// How many windows a read handle keeps: the one being read and those read ahead.
const WINDOWS_KEPT: usize = AHEAD + 1;
/// How old the cluster's room shown by `statfs` may be before it is asked again (`status`
/// walks every chunk's row, and nodes on this machine ask every mount's room every 5 s).
const SPACE_REFRESH: Duration = Duration::from_secs(30);
/// The code of a read that asked for a version the file is no longer at.
const CHANGED: &str = "fs.changed";
/// How many times an operation starts over when the file changes under it.
const RETRIES: usize = 3;
/// The name an `access(X_OK)` probe looks up in a directory (any answer but `denied` means
/// the directory may be gone through).
const PROBE_NAME: &str = ".plx-access-probe";

/// Locks a mutex; a poisoned one (a thread panicked holding it) is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The errno of `e`; failures other than the file system's own answers are logged.
fn errno(e: &Error, op: Op) -> Errno {
    let n = e.errno(op);
    if n == libc::EIO {
        tracing::warn!("{op:?}: {e}");
    } else {
        tracing::debug!("{op:?}: {e}");
    }
    Errno::from_i32(n)
}

/// A file's content as a read handle caches it.
struct Reader {
    /// The file's size and version the reads ask for.
    size: u64,
    version: u64,
    /// The pieces of the windows kept (at most [`WINDOWS_KEPT`]): (offset, bytes).
    windows: VecDeque<Vec<(u64, Bytes)>>,
    /// The windows being read ahead in the background (at most [`AHEAD`]).
    ahead: Vec<u64>,
    /// Where the last read ended: a read that starts near it is sequential.
    last_end: u64,
}

/// A read handle's cache, shared with its read-ahead thread.
struct ReadState {
    reader: Mutex<Reader>,
    /// Signalled when a read-ahead ends.
    arrived: Condvar,
}

impl Reader {
    fn new(size: u64, version: u64) -> Reader {
        Reader {
            size,
            version,
            windows: VecDeque::new(),
            ahead: Vec::new(),
            last_end: 0,
        }
    }

    /// Keeps a window read, dropping the one that starts first beyond [`WINDOWS_KEPT`]
    /// (windows read ahead start after the one being read).
    fn keep(&mut self, start: u64, pieces: Vec<Bytes>) {
        if self.windows.len() >= WINDOWS_KEPT {
            let first = (0..self.windows.len())
                .min_by_key(|&i| self.windows[i].first().map_or(0, |(at, _)| *at));
            if let Some(i) = first {
                self.windows.remove(i);
            }
        }
        self.windows.push_back(placed(start, pieces));
    }

    /// Whether the window at `start` is kept or being read.
    fn has(&self, start: u64) -> bool {
        self.ahead.contains(&start) || self.piece(start).is_some()
    }

    /// The piece that holds byte `at`, if a window kept has it.
    fn piece(&self, at: u64) -> Option<(u64, Bytes)> {
        self.windows
            .iter()
            .flatten()
            .find(|(start, b)| *start <= at && at < start + b.len() as u64)
            .cloned()
    }
}

/// Consecutive pieces from `start`, with their offsets.
fn placed(start: u64, pieces: Vec<Bytes>) -> Vec<(u64, Bytes)> {
    let mut at = start;
    pieces
        .into_iter()
        .map(|b| {
            let here = at;
            at += b.len() as u64;
            (here, b)
        })
        .collect()
}

/// The local copy of a file open for writing in this mount.
struct Spill {
    file: File,
    len: u64,
}

/// An inode open for writing in this mount: its spill file (once needed) and whether it
/// holds changes not yet committed.
struct Writer {
    handles: usize,
    spill: Option<Spill>,
    /// The content the spill file starts from: the file as it was at open.
    base_size: u64,
    base_version: u64,
    mode: u16,
    dirty: bool,
}

struct WriterSlot {
    state: Mutex<Writer>,
    /// The spill file's length, or `u64::MAX` while there is none (read without the lock,
    /// so that a `getattr` does not wait for a commit).
    len: AtomicU64,
}

struct OpenFile {
    /// The user who opened it.
    who: Caller,
    ino: u64,
    /// The path at open, for a file removed from the tree since.
    path: FsPath,
    read: Arc<ReadState>,
    writer: Option<Arc<WriterSlot>>,
}

impl WriterSlot {
    /// The writer of the file `e`, with `handles` handles, no spill file yet.
    fn of(e: &Entry, handles: usize) -> WriterSlot {
        WriterSlot {
            state: Mutex::new(Writer {
                handles,
                spill: None,
                base_size: e.size,
                base_version: e.version,
                mode: e.mode,
                dirty: false,
            }),
            len: AtomicU64::new(u64::MAX),
        }
    }
}

impl OpenFile {
    /// `who`'s handle of inode `ino` at `path`, read at `size` and `version`.
    fn new(
        who: Caller,
        ino: u64,
        path: FsPath,
        size: u64,
        version: u64,
        writer: Option<Arc<WriterSlot>>,
    ) -> OpenFile {
        OpenFile {
            who,
            ino,
            path,
            read: Arc::new(ReadState {
                reader: Mutex::new(Reader::new(size, version)),
                arrived: Condvar::new(),
            }),
            writer,
        }
    }
}

enum Handle {
    File(Box<OpenFile>),
    Dir(Vec<(u64, FileType, String)>),
}

impl Handle {
    /// The opener, inode and writer of a file handle open for writing.
    fn writer(&self) -> Option<(&Caller, u64, &Arc<WriterSlot>)> {
        match self {
            Handle::File(f) => f.writer.as_ref().map(|slot| (&f.who, f.ino, slot)),
            Handle::Dir(_) => None,
        }
    }
}

/// A listed entry's user, directory inode and name.
type ListedKey = (Arc<str>, u64, String);

/// The mounted tree over `B`.
pub struct PlexusFs<B: Backend> {
    backend: Arc<B>,
    settings: Settings,
    inodes: Mutex<Inodes>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    writers: Mutex<HashMap<u64, Arc<WriterSlot>>>,
    /// Entries from recent listings, by (user, directory inode, name), with when they were
    /// listed (one user's listing answers only that user's lookups).
    listed: Mutex<HashMap<ListedKey, (Entry, Instant)>>,
    /// The version of each file at its last open, so an unchanged file keeps its page cache.
    opened: Mutex<HashMap<u64, u64>>,
    /// The cluster's room as last asked, and when.
    space: Mutex<(Space, Option<Instant>)>,
    space_refreshing: std::sync::atomic::AtomicBool,
}

impl<B: Backend> PlexusFs<B> {
    /// The tree of `backend`, with `settings`.
    pub fn new(backend: B, settings: Settings) -> PlexusFs<B> {
        PlexusFs {
            backend: Arc::new(backend),
            settings,
            inodes: Mutex::new(Inodes::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            writers: Mutex::new(HashMap::new()),
            listed: Mutex::new(HashMap::new()),
            opened: Mutex::new(HashMap::new()),
            space: Mutex::new((Space::UNKNOWN, None)),
            space_refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn attr(&self, e: &Entry) -> FileAttr {
        let mtime = UNIX_EPOCH + Duration::from_millis(e.mtime_ms);
        let size = if e.dir {
            e.size
        } else {
            self.writers
                .lock()
                .ok()
                .and_then(|w| w.get(&e.ino).map(|s| s.len.load(Ordering::Relaxed)))
                .filter(|&len| len != u64::MAX)
                .unwrap_or(e.size)
        };
        FileAttr {
            ino: INodeNo(e.ino),
            size,
            blocks: if e.dir { 0 } else { size.div_ceil(512) },
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: if e.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: e.mode & 0o777,
            nlink: if e.dir { 2 } else { 1 },
            uid: self.settings.uid,
            gid: self.settings.gid,
            rdev: 0,
            blksize: 1 << 20,
            flags: 0,
        }
    }

    fn path(&self, ino: u64) -> Result<FsPath> {
        lock(&self.inodes).path(ino)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<(FsPath, String)> {
        let name = name
            .to_str()
            .ok_or_else(|| Error::BadName(name.to_string_lossy().into_owned()))?;
        let path = lock(&self.inodes).child_path(parent, name)?;
        Ok((path, name.to_owned()))
    }

    /// The entry at `path`, which must still be inode `ino` (`ESTALE` otherwise: the kernel
    /// looks the name up again).
    fn stat_ino(&self, who: &Caller, ino: u64, path: &FsPath) -> std::result::Result<Entry, Errno> {
        let e = self
            .backend
            .stat(who, path)
            .map_err(|e| errno(&e, Op::Read))?;
        if e.ino != ino && ino != ROOT {
            return Err(Errno::ESTALE);
        }
        Ok(e)
    }

    /// The user `req` acts for: refused (`EACCES`) when it acts for none.
    fn who(&self, req: &Request) -> std::result::Result<Caller, Errno> {
        self.backend
            .caller(req.pid())
            .map_err(|e| errno(&e, Op::Read))
    }

    /// Forgets what listings showed: the tree changed here.
    fn changed(&self) {
        lock(&self.listed).clear();
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        lock(&self.handles).get(&fh.0).cloned()
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(h));
        fh
    }

    fn new_spill(&self) -> Result<File> {
        let dir = &self.settings.spill_dir;
        std::fs::create_dir_all(dir)
            .and_then(|()| tempfile::tempfile_in(dir))
            .map_err(|source| Error::Local {
                action: "make a spill file in",
                path: dir.clone(),
                source,
            })
    }

    /// Makes sure `w` has a spill file: a new one holds the first `keep` bytes of the file as
    /// it is in the tree (all of it for `u64::MAX`), read at its version.
    fn materialize(&self, who: &Caller, w: &mut Writer, ino: u64, keep: u64) -> Result<()> {
        if w.spill.is_some() {
            return Ok(());
        }
        let file = self.new_spill()?;
        let spill_error = |source| Error::Local {
            action: "write the spill file in",
            path: self.settings.spill_dir.clone(),
            source,
        };
        let mut attempt = 0;
        let len = 'copy: loop {
            attempt += 1;
            let want = keep.min(w.base_size);
            let mut at = 0u64;
            while at < want {
                let path = self.path(ino)?;
                let len = self.settings.window.min(want - at);
                match self.backend.read(who, &path, at, len, w.base_version) {
                    Ok(pieces) => {
                        let before = at;
                        for piece in pieces {
                            file.write_all_at(&piece, at).map_err(spill_error)?;
                            at += piece.len() as u64;
                        }
                        if at == before {
                            break;
                        }
                    }
                    Err(e) if e.code() == Some(CHANGED) && attempt < RETRIES => {
                        let now = self.backend.stat(who, &path)?;
                        w.base_size = now.size;
                        w.base_version = now.version;
                        file.set_len(0).map_err(spill_error)?;
                        continue 'copy;
                    }
                    Err(e) => return Err(e),
                }
            }
            break at;
        };
        w.spill = Some(Spill { file, len });
        Ok(())
    }

    /// Commits `slot`'s spill file if it holds changes: the file's new content, whole.
    fn commit(&self, who: &Caller, ino: u64, slot: &WriterSlot) -> Result<()> {
        let mut w = lock(&slot.state);
        if !w.dirty {
            return Ok(());
        }
        let path = match self.path(ino) {
            Ok(p) => p,
            // Removed from the tree while open: what was written goes with it.
            Err(Error::UnknownInode(_)) => {
                w.dirty = false;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mode = w.mode;
        let Some(spill) = w.spill.as_mut() else {
            w.dirty = false;
            return Ok(());
        };
        self.backend.write_file(who, &path, &mut spill.file, mode)?;
        w.dirty = false;
        drop(w);
        lock(&self.opened).remove(&ino);
        self.changed();
        Ok(())
    }

    /// The writer of `ino` in this mount, made from `e` if there is none, with one more handle.
    fn writer_for(&self, e: &Entry) -> Arc<WriterSlot> {
        let mut writers = lock(&self.writers);
        let slot = writers
            .entry(e.ino)
            .or_insert_with(|| Arc::new(WriterSlot::of(e, 0)));
        lock(&slot.state).handles += 1;
        slot.clone()
    }

    /// One handle of `ino` fewer for its writer; the last one drops it.
    fn writer_closed(&self, ino: u64, slot: &Arc<WriterSlot>) {
        let mut writers = lock(&self.writers);
        let mut w = lock(&slot.state);
        w.handles = w.handles.saturating_sub(1);
        if w.handles == 0 {
            if writers.get(&ino).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                writers.remove(&ino);
            }
            w.spill = None;
        }
    }

    /// Sets the length of `ino` open for writing here to `size`.
    fn truncate_writer(&self, who: &Caller, ino: u64, slot: &WriterSlot, size: u64) -> Result<()> {
        let mut w = lock(&slot.state);
        self.materialize(who, &mut w, ino, size)?;
        let Some(spill) = w.spill.as_mut() else {
            return Ok(());
        };
        spill.file.set_len(size).map_err(|source| Error::Local {
            action: "truncate the spill file in",
            path: self.settings.spill_dir.clone(),
            source,
        })?;
        spill.len = size;
        slot.len.store(size, Ordering::Relaxed);
        w.dirty = true;
        Ok(())
    }

    /// `truncate(2)` of a file not open for writing here: rewritten at once.
    fn truncate_closed(
        &self,
        who: &Caller,
        ino: u64,
        path: &FsPath,
        size: u64,
    ) -> std::result::Result<(), Errno> {
        let e = self.stat_ino(who, ino, path)?;
        if e.dir {
            return Err(Errno::EISDIR);
        }
        if e.size == size {
            return Ok(());
        }
        let slot = WriterSlot::of(&e, 1);
        self.truncate_writer(who, ino, &slot, size)
            .and_then(|()| self.commit(who, ino, &slot))
            .map_err(|e| errno(&e, Op::Write))
    }

    /// Opens the file `e` at `path` (`flags` as open(2) gave them): a handle, and whether the
    /// kernel may keep the pages it has of the file.
    fn open_file(
        &self,
        who: &Caller,
        e: &Entry,
        path: FsPath,
        flags: i32,
    ) -> std::result::Result<(u64, FopenFlags), Errno> {
        if e.dir {
            return Err(Errno::EISDIR);
        }
        let acc = OpenFlags(flags).acc_mode();
        let read = acc != OpenAccMode::O_WRONLY;
        let write = acc != OpenAccMode::O_RDONLY;
        // The rights are checked now, not at the first read or at close.
        match e.may {
            Some(may) if (read && may & 0o4 == 0) || (write && may & 0o2 == 0) => {
                return Err(Errno::EACCES)
            }
            Some(_) => {}
            None if read => {
                // Not told: a read of nothing checks the right to read.
                match self.backend.read(who, &path, 0, 0, e.version) {
                    Ok(_) => {}
                    Err(err) if err.code() == Some(CHANGED) => {}
                    Err(err) => return Err(errno(&err, Op::Read)),
                }
            }
            None => {}
        }
        let writer = write.then(|| self.writer_for(e));
        if let Some(slot) = &writer {
            if flags & libc::O_TRUNC != 0 {
                if let Err(err) = self.truncate_writer(who, e.ino, slot, 0) {
                    self.writer_closed(e.ino, slot);
                    return Err(errno(&err, Op::Write));
                }
            }
        }
        let mut open_flags = FopenFlags::empty();
        {
            let mut opened = lock(&self.opened);
            if writer.is_none()
                && opened.get(&e.ino) == Some(&e.version)
                && !lock(&self.writers).contains_key(&e.ino)
            {
                open_flags |= FopenFlags::FOPEN_KEEP_CACHE;
            }
            opened.insert(e.ino, e.version);
        }
        let fh = self.add_handle(Handle::File(Box::new(OpenFile::new(
            who.clone(),
            e.ino,
            path,
            e.size,
            e.version,
            writer,
        ))));
        Ok((fh, open_flags))
    }

    /// `size` bytes from `offset` of the file as the node has it, through the handle's
    /// windows; a sequential reader has the next windows read ahead meanwhile.
    fn read_remote(&self, f: &OpenFile, offset: u64, size: u32) -> Result<Bytes, Errno> {
        let window = self.settings.window;
        let mut r = lock(&f.read.reader);
        let mut attempts = 0;
        'again: loop {
            attempts += 1;
            let end = offset.saturating_add(u64::from(size)).min(r.size);
            // Slices of the pieces kept (no copy when one piece holds the whole request).
            let mut out: Vec<Bytes> = Vec::new();
            let mut at = offset;
            while at < end {
                let (start, bytes) = match r.piece(at) {
                    Some(w) => w,
                    None => {
                        let start = at - at % window;
                        if r.ahead.contains(&start) {
                            // Being read ahead: wait for it, then look again.
                            r = f
                                .read
                                .arrived
                                .wait_while(r, |r| r.ahead.contains(&start))
                                .unwrap_or_else(PoisonError::into_inner);
                            continue;
                        }
                        let path = self.path(f.ino).unwrap_or_else(|_| f.path.clone());
                        let len = window.min(r.size - start);
                        match self.backend.read(&f.who, &path, start, len, r.version) {
                            Ok(pieces) => {
                                r.keep(start, pieces);
                                match r.piece(at) {
                                    Some(w) => w,
                                    // The node gave less than the size: the end, for now.
                                    None => break,
                                }
                            }
                            Err(e) if e.code() == Some(CHANGED) && attempts < RETRIES => {
                                let now = self.stat_ino(&f.who, f.ino, &path)?;
                                r.size = now.size;
                                r.version = now.version;
                                r.windows.clear();
                                continue 'again;
                            }
                            Err(e) => return Err(errno(&e, Op::Read)),
                        }
                    }
                };
                let from = (at - start) as usize;
                let to = (end - start).min(bytes.len() as u64) as usize;
                if from >= to || to > bytes.len() {
                    // The node gave less than the size it reported: the end, for this read.
                    break;
                }
                out.push(bytes.slice(from..to));
                at = start + to as u64;
            }
            let sequential = offset.abs_diff(r.last_end) <= window / 4;
            r.last_end = at;
            if sequential {
                let here = offset - offset % window;
                for k in 1..=AHEAD as u64 {
                    let next = here + k * window;
                    if next < r.size && r.ahead.len() < AHEAD && !r.has(next) {
                        self.read_ahead(f, &mut r, next);
                    }
                }
            }
            return Ok(match out.len() {
                1 => out.swap_remove(0),
                _ => Bytes::from(out.concat()),
            });
        }
    }

    /// Reads the window at `start` on a thread of its own, into `f`'s cache.
    fn read_ahead(&self, f: &OpenFile, r: &mut Reader, start: u64) {
        let path = self.path(f.ino).unwrap_or_else(|_| f.path.clone());
        let (state, backend, who) = (f.read.clone(), self.backend.clone(), f.who.clone());
        let (version, len) = (r.version, self.settings.window.min(r.size - start));
        r.ahead.push(start);
        let spawned = std::thread::Builder::new()
            .name("plx-read-ahead".into())
            .spawn(move || {
                let got = backend.read(&who, &path, start, len, version);
                let mut r = lock(&state.reader);
                if let Some(i) = r.ahead.iter().position(|&a| a == start) {
                    r.ahead.swap_remove(i);
                    // A failure is left to the read that needs the window.
                    if let (Ok(pieces), true) = (got, r.version == version) {
                        r.keep(start, pieces);
                    }
                }
                drop(r);
                state.arrived.notify_all();
            });
        if spawned.is_err() {
            r.ahead.retain(|&a| a != start);
        }
    }

    /// Reads from the spill file of `ino` if it is open for writing here and has one.
    fn read_spill(&self, ino: u64, offset: u64, size: u32) -> Option<Result<Bytes, Errno>> {
        let slot = lock(&self.writers).get(&ino).cloned()?;
        let w = lock(&slot.state);
        let spill = w.spill.as_ref()?;
        let end = offset.saturating_add(u64::from(size)).min(spill.len);
        let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
        Some(match spill.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Bytes::from(buf)),
            Err(_) => Err(Errno::EIO),
        })
    }

    /// Whether `who` may do `bit` (`0o4`, `0o2`, `0o1`) to `e`: as the service said, or else
    /// as its mode bits say.
    fn mode_allows(&self, who: &Caller, e: &Entry, bit: u16) -> bool {
        if let Some(may) = e.may {
            return may & bit != 0;
        }
        let bits = if e.user == *who.name {
            e.mode >> 6
        } else {
            e.mode
        };
        bits & bit != 0
    }
}

impl<B: Backend> Filesystem for PlexusFs<B> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Large requests: the kernel caps them at its own limit (1 MiB by default).
        if let Err(max) = config.set_max_write(1 << 20) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        // open(O_TRUNC) reaches open as a flag, not as a separate truncate after it.
        let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(text) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let who = match self.who(req) {
            Ok(who) => who,
            Err(e) => return reply.error(e),
        };
        let listed = lock(&self.listed)
            .get(&(who.name.clone(), parent.0, text.to_owned()))
            .filter(|(_, at)| at.elapsed() < self.settings.ttl)
            .map(|(e, _)| e.clone());
        let entry = match listed {
            Some(e) => e,
            None => {
                let found = self
                    .child(parent.0, name)
                    .and_then(|(path, _)| self.backend.stat(&who, &path));
                match found {
                    Ok(e) => e,
                    Err(e) => return reply.error(errno(&e, Op::Read)),
                }
            }
        };
        lock(&self.inodes).looked_up(parent.0, text, entry.ino);
        reply.entry(&self.settings.ttl, &self.attr(&entry), Generation(0));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let got = self.who(req).and_then(|who| {
            let path = self.path(ino.0).map_err(|e| errno(&e, Op::Read))?;
            self.stat_ino(&who, ino.0, &path)
        });
        match got {
            Ok(e) => reply.attr(&self.settings.ttl, &self.attr(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let run = || -> std::result::Result<Entry, Errno> {
            let who = self.who(req)?;
            let path = self.path(ino.0).map_err(|e| errno(&e, Op::Read))?;
            // Every file shows the mounting user as its owner; no other can be given.
            if uid.is_some_and(|u| u != self.settings.uid)
                || gid.is_some_and(|g| g != self.settings.gid)
            {
                return Err(Errno::EPERM);
            }
            if let Some(mode) = mode {
                let bits = u16::try_from(mode & 0o777).unwrap_or(0o644);
                self.backend
                    .chmod(&who, &path, bits)
                    .map_err(|e| errno(&e, Op::Chmod))?;
                self.changed();
            }
            if let Some(size) = size {
                let by_handle = fh.and_then(|fh| self.handle(fh)).and_then(|h| match &*h {
                    Handle::File(f) => f.writer.clone(),
                    Handle::Dir(_) => None,
                });
                let slot = by_handle.or_else(|| lock(&self.writers).get(&ino.0).cloned());
                match slot {
                    Some(slot) => self
                        .truncate_writer(&who, ino.0, &slot, size)
                        .map_err(|e| errno(&e, Op::Write))?,
                    None => self.truncate_closed(&who, ino.0, &path, size)?,
                }
            }
            // Times cannot be set: the node stamps each change. Asking is not an error.
            self.stat_ino(&who, ino.0, &path)
        };
        match run() {
            Ok(e) => reply.attr(&self.settings.ttl, &self.attr(&e)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let run = || -> std::result::Result<(String, Entry), Errno> {
            let who = self.who(req)?;
            let made = || -> Result<(String, Entry)> {
                let (path, name) = self.child(parent.0, name)?;
                let bits = u16::try_from(mode & !umask & 0o777).unwrap_or(0o755);
                self.backend.mkdir(&who, &path, bits)?;
                self.changed();
                Ok((name, self.backend.stat(&who, &path)?))
            };
            made().map_err(|e| errno(&e, Op::Create))
        };
        match run() {
            Ok((name, e)) => {
                lock(&self.inodes).looked_up(parent.0, &name, e.ino);
                reply.entry(&self.settings.ttl, &self.attr(&e), Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, false, reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, true, reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        let run = || -> std::result::Result<(String, String), Errno> {
            let who = self.who(req)?;
            let (from, from_name) = self
                .child(parent.0, name)
                .map_err(|e| errno(&e, Op::Create))?;
            let (to, to_name) = self
                .child(newparent.0, newname)
                .map_err(|e| errno(&e, Op::Create))?;
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                match self.backend.stat(&who, &to) {
                    Ok(_) => return Err(Errno::EEXIST),
                    Err(e) if e.code() == Some(plexus_units::code::NOT_FOUND) => {}
                    Err(e) => return Err(errno(&e, Op::Read)),
                }
            }
            self.backend
                .mv(&who, &from, &to)
                .map_err(|e| errno(&e, Op::Create))?;
            Ok((from_name, to_name))
        };
        match run() {
            Ok((from_name, to_name)) => {
                lock(&self.inodes).moved(parent.0, &from_name, newparent.0, &to_name);
                self.changed();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let run = || -> std::result::Result<(u64, FopenFlags), Errno> {
            let who = self.who(req)?;
            let path = self.path(ino.0).map_err(|e| errno(&e, Op::Read))?;
            let e = self.stat_ino(&who, ino.0, &path)?;
            self.open_file(&who, &e, path, flags.0)
        };
        match run() {
            Ok((fh, flags)) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let Handle::File(f) = &*h else {
            return reply.error(Errno::EISDIR);
        };
        let got = match self.read_spill(f.ino, offset, size) {
            Some(read) => read,
            None => self.read_remote(f, offset, size),
        };
        match got {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let Some((who, ino, slot)) = h.writer() else {
            return reply.error(Errno::EBADF);
        };
        let run = || -> Result<()> {
            let mut w = lock(&slot.state);
            self.materialize(who, &mut w, ino, u64::MAX)?;
            let Some(spill) = w.spill.as_mut() else {
                return Ok(());
            };
            spill
                .file
                .write_all_at(data, offset)
                .map_err(|source| Error::Local {
                    action: "write the spill file in",
                    path: self.settings.spill_dir.clone(),
                    source,
                })?;
            spill.len = spill.len.max(offset.saturating_add(data.len() as u64));
            slot.len.store(spill.len, Ordering::Relaxed);
            w.dirty = true;
            Ok(())
        };
        match run() {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(&e, Op::Write)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.commit_handle(fh, reply);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(h) = lock(&self.handles).remove(&fh.0) else {
            return reply.ok();
        };
        if let Some((who, ino, slot)) = h.writer() {
            if let Err(e) = self.commit(who, ino, slot) {
                tracing::warn!("inode {ino}: changes not saved at close: {e}");
            }
            self.writer_closed(ino, slot);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit_handle(fh, reply);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let who = match self.who(req) {
            Ok(who) => who,
            Err(e) => return reply.error(e),
        };
        let run = || -> Result<Vec<(u64, FileType, String)>> {
            let path = self.path(ino.0)?;
            let entries = self.backend.list(&who, &path)?;
            let parent = lock(&self.inodes).parent(ino.0).unwrap_or(ROOT);
            let mut rows = vec![
                (ino.0, FileType::Directory, ".".to_owned()),
                (parent, FileType::Directory, "..".to_owned()),
            ];
            let now = Instant::now();
            let mut inodes = lock(&self.inodes);
            let mut listed = lock(&self.listed);
            for e in entries {
                inodes.seen(ino.0, &e.name, e.ino);
                let kind = if e.dir {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                rows.push((e.ino, kind, e.name.clone()));
                listed.insert((who.name.clone(), ino.0, e.name.clone()), (e, now));
            }
            Ok(rows)
        };
        match run() {
            Ok(rows) => reply.opened(
                FileHandle(self.add_handle(Handle::Dir(rows))),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(&e, Op::Read)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let Handle::Dir(rows) = &*h else {
            return reply.error(Errno::ENOTDIR);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in rows.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every change of the tree is committed before its call returns.
        reply.ok();
    }

    /// Answered at once from the last figures, which are then refreshed (at most every
    /// [`SPACE_REFRESH`], one refresh at a time): programs on this machine that check every
    /// mount's room (a node does, for its own disk) never wait for a node, so a node's
    /// `statvfs` of this mount cannot wait on itself.
    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        const BLOCK: u64 = 4096;
        let (space, stale) = {
            let known = lock(&self.space);
            (
                known.0,
                known.1.is_none_or(|at| at.elapsed() >= SPACE_REFRESH),
            )
        };
        reply.statfs(
            space.total / BLOCK,
            space.free / BLOCK,
            space.free / BLOCK,
            1 << 32,
            1 << 32,
            BLOCK as u32,
            plexus_fs::MAX_NAME_BYTES as u32,
            BLOCK as u32,
        );
        if stale && !self.space_refreshing.swap(true, Ordering::AcqRel) {
            match self.backend.statfs() {
                Ok(now) => *lock(&self.space) = (now, Some(Instant::now())),
                Err(e) => tracing::debug!("statfs: {e}"),
            }
            self.space_refreshing.store(false, Ordering::Release);
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // No extended attributes: ENOSYS tells the kernel not to ask again.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let run = || -> std::result::Result<(), Errno> {
            let who = self.who(req)?;
            let path = self.path(ino.0).map_err(|e| errno(&e, Op::Read))?;
            let e = self.stat_ino(&who, ino.0, &path)?;
            if let Some(may) = e.may {
                // The service said what this user may do.
                let asked = [
                    (AccessFlags::R_OK, 0o4),
                    (AccessFlags::W_OK, 0o2),
                    (AccessFlags::X_OK, 0o1),
                ];
                return match asked
                    .iter()
                    .any(|&(f, bit)| mask.contains(f) && may & bit == 0)
                {
                    true => Err(Errno::EACCES),
                    false => Ok(()),
                };
            }
            if mask.contains(AccessFlags::R_OK) {
                // Asked of the node: reading nothing checks the right to read.
                let probe = if e.dir {
                    self.backend.list(&who, &path).map(drop)
                } else {
                    self.backend.read(&who, &path, 0, 0, e.version).map(drop)
                };
                match probe {
                    Ok(()) => {}
                    Err(err) if err.code() == Some(CHANGED) => {}
                    Err(err) => return Err(errno(&err, Op::Read)),
                }
            }
            if mask.contains(AccessFlags::X_OK) {
                if e.dir {
                    let inside = path
                        .join(PROBE_NAME)
                        .map_err(|e| errno(&Error::from(e), Op::Read))?;
                    match self.backend.stat(&who, &inside) {
                        Err(err) if err.code() == Some(plexus_units::code::DENIED) => {
                            return Err(Errno::EACCES)
                        }
                        _ => {}
                    }
                } else if !self.mode_allows(&who, &e, 0o1) {
                    return Err(Errno::EACCES);
                }
            }
            // The right to write is only known when writing; the mode bits tell (for the
            // owner, or for the others), except that the node's admin may write anyway.
            if mask.contains(AccessFlags::W_OK) && !self.mode_allows(&who, &e, 0o2) {
                return Err(Errno::EACCES);
            }
            Ok(())
        };
        match run() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let run = || -> std::result::Result<(String, Entry, u64, FopenFlags), Errno> {
            let who = self.who(req)?;
            let (path, name) = self
                .child(parent.0, name)
                .map_err(|e| errno(&e, Op::Create))?;
            match self.backend.stat(&who, &path) {
                Ok(e) => {
                    // There already (made on another node since the kernel looked).
                    if flags & libc::O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    let (fh, open_flags) = self.open_file(&who, &e, path, flags)?;
                    return Ok((name, e, fh, open_flags));
                }
                Err(err) if err.code() == Some(plexus_units::code::NOT_FOUND) => {}
                Err(err) => return Err(errno(&err, Op::Read)),
            }
            let bits = u16::try_from(mode & !umask & 0o777).unwrap_or(0o644);
            // The file exists, empty, from now on; its content comes at close.
            let mut empty = self.new_spill().map_err(|e| errno(&e, Op::Create))?;
            self.backend
                .write_file(&who, &path, &mut empty, bits)
                .map_err(|e| errno(&e, Op::Create))?;
            self.changed();
            let e = self
                .backend
                .stat(&who, &path)
                .map_err(|e| errno(&e, Op::Read))?;
            let slot = self.writer_for(&e);
            {
                let mut w = lock(&slot.state);
                if w.spill.is_none() {
                    w.spill = Some(Spill {
                        file: empty,
                        len: 0,
                    });
                    slot.len.store(0, Ordering::Relaxed);
                }
            }
            lock(&self.opened).insert(e.ino, e.version);
            let fh = self.add_handle(Handle::File(Box::new(OpenFile::new(
                who,
                e.ino,
                path,
                0,
                e.version,
                Some(slot),
            ))));
            Ok((name, e, fh, FopenFlags::empty()))
        };
        match run() {
            Ok((name, e, fh, open_flags)) => {
                lock(&self.inodes).looked_up(parent.0, &name, e.ino);
                reply.created(
                    &self.settings.ttl,
                    &self.attr(&e),
                    Generation(0),
                    FileHandle(fh),
                    open_flags,
                );
            }
            Err(e) => reply.error(e),
        }
    }
}

impl<B: Backend> PlexusFs<B> {
    fn remove(&self, req: &Request, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let run = || -> std::result::Result<String, Errno> {
            let who = self.who(req)?;
            let (path, name) = self
                .child(parent.0, name)
                .map_err(|e| errno(&e, Op::Other))?;
            let e = self
                .backend
                .stat(&who, &path)
                .map_err(|e| errno(&e, Op::Read))?;
            match (dir, e.dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
            self.backend
                .rm(&who, &path)
                .map_err(|e| errno(&e, Op::Other))?;
            Ok(name)
        };
        match run() {
            Ok(name) => {
                lock(&self.inodes).removed(parent.0, &name);
                self.changed();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn commit_handle(&self, fh: FileHandle, reply: ReplyEmpty) {
        let Some(h) = self.handle(fh) else {
            return reply.ok();
        };
        if let Some((who, ino, slot)) = h.writer() {
            if let Err(e) = self.commit(who, ino, slot) {
                tracing::warn!("inode {ino}: commit failed: {e}");
                return reply.error(errno(&e, Op::Write));
            }
        }
        reply.ok();
    }
}
