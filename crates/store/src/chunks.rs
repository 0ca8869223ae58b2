//! A node's chunk store: the file system's content chunks on this node's disk, one file per
//! chunk named by its hash.
//!
//! A chunk is written to a temporary file, synced, renamed into place and its directory synced,
//! so a chunk the store has is whole and durable; a crash leaves at most a temporary file, which
//! the next open deletes. Every read checks the bytes against the hash: a chunk that no longer
//! matches (a bad disk, someone's editor) is moved to `corrupt/` and reported, so the caller
//! can fetch a good copy elsewhere. Chunks are spread over 256 directories by the first byte of
//! their hash, so no directory grows past a few thousand files. A new chunk is refused when it
//! would leave less than [`DISK_RESERVE`] free on the disk: the node's database and raft log
//! share that disk, and a node whose disk the chunks filled could no longer take part in the
//! cluster. Layout: `docs/fs.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use plexus_fs::replicas::DISK_RESERVE;
use plexus_fs::{hash_from_hex, ChunkRef};

/// The largest chunk the store takes (the file system's chunks are at most 4 MiB).
pub const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// Why the chunk store failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Bytes that are not the chunk they were given as.
    #[error("{len} bytes given as chunk {hash} do not match it")]
    Mismatch {
        /// The chunk's hash in hex.
        hash: String,
        /// How many bytes were given.
        len: usize,
    },
    /// A chunk over [`MAX_CHUNK_BYTES`].
    #[error("a chunk of {0} bytes; at most {MAX_CHUNK_BYTES}")]
    TooLarge(usize),
    /// The store does not have the chunk.
    #[error("chunk {0} is not in this node's store")]
    Missing(String),
    /// The stored bytes no longer match the hash; the file was moved to `corrupt/`.
    #[error("chunk {0} is corrupt in this node's store (moved aside)")]
    Corrupt(String),
    /// Storing the chunk would leave less than the reserve free on the store's disk.
    #[error(
        "no room for a chunk of {} on this node's disk: {} free, of which {} is kept free",
        mib(*len),
        mib(*free),
        mib(*reserve)
    )]
    Full {
        /// The chunk's length.
        len: u64,
        /// The disk's free bytes.
        free: u64,
        /// The bytes the store leaves free.
        reserve: u64,
    },
    /// The disk failed.
    #[error("chunk store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Bytes as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The chunk store in one directory.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    dir: PathBuf,
    /// Free bytes a new chunk must leave on the disk.
    reserve: u64,
    /// Held while a chunk that exists is renewed or an old one deleted, so a sweep never
    /// deletes a chunk a write has just renewed.
    renewing: Arc<Mutex<()>>,
    /// Makes each temporary file's name unique among this process's writes.
    temps: Arc<AtomicU64>,
}

/// One chunk file of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The chunk, with its file's length.
    pub chunk: ChunkRef,
    /// When it was written or last renewed.
    pub modified: SystemTime,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChunkError + '_ {
    move |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    }
}

impl ChunkStore {
    /// Opens (creating) the store in `dir`, deleting temporary files a crash left.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ChunkStore, ChunkError> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("corrupt")).map_err(io(&dir))?;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name().len() == 2 {
                for inner in std::fs::read_dir(entry.path()).map_err(io(&dir))?.flatten() {
                    if inner.file_name().to_string_lossy().ends_with(".tmp") {
                        let _ = std::fs::remove_file(inner.path());
                    }
                }
            }
        }
        Ok(ChunkStore {
            dir,
            reserve: DISK_RESERVE,
            renewing: Arc::default(),
            temps: Arc::default(),
        })
    }

    /// The store leaving `reserve` bytes free on its disk instead of [`DISK_RESERVE`].
    pub fn with_reserve(self, reserve: u64) -> ChunkStore {
        ChunkStore { reserve, ..self }
    }

    /// Refuses a new chunk of `len` bytes that would leave less than the reserve free (a disk
    /// whose free space cannot be read is taken to have room, as replica choices do).
    fn check_room(&self, len: usize) -> Result<(), ChunkError> {
        let Ok(vfs) = rustix::fs::statvfs(&self.dir) else {
            return Ok(());
        };
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        let len = len as u64;
        if free < len.saturating_add(self.reserve) {
            return Err(ChunkError::Full {
                len,
                free,
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the chunk `hex` lives.
    fn path_of(&self, hex: &str) -> PathBuf {
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Stores `bytes` as the chunk `chunk` (checked), durably; storing a chunk the store has
    /// renews its file's time, so the sweep sees it as new. A chunk it does not have is
    /// refused ([`ChunkError::Full`]) when it would leave less than the reserve free.
    pub fn put(&self, chunk: &ChunkRef, bytes: &[u8]) -> Result<(), ChunkError> {
        if !chunk.matches(bytes) {
            return Err(ChunkError::Mismatch {
                hash: chunk.hex(),
                len: bytes.len(),
            });
        }
        self.put_hashed(chunk, bytes)
    }

    /// [`ChunkStore::put`] of bytes the caller has just hashed as `chunk` (or checked against
    /// it): hashing them again would cost as much as writing them.
    pub fn put_hashed(&self, chunk: &ChunkRef, bytes: &[u8]) -> Result<(), ChunkError> {
        if bytes.len() > MAX_CHUNK_BYTES {
            return Err(ChunkError::TooLarge(bytes.len()));
        }
        let hex = chunk.hex();
        let path = self.path_of(&hex);
        if self.renew(&path, chunk.len) {
            return Ok(());
        }
        self.check_room(bytes.len())?;
        let dir = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let temp = dir.join(format!(
            "{hex}.{}.{}.tmp",
            std::process::id(),
            self.temps.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::File::create(&temp)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &path))
            .and_then(|()| std::fs::File::open(&dir)?.sync_all());
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(ChunkError::Io { path, source });
        }
        Ok(())
    }

    /// Sets the time of the chunk file at `path` to now if it exists with `len` bytes.
    fn renew(&self, path: &Path, len: u32) -> bool {
        let _held = self.renewing.lock();
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| {
                if file.metadata()?.len() != u64::from(len) {
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                file.set_modified(SystemTime::now())
            })
            .is_ok()
    }

    /// Deletes the chunk `hash` if its file is older than `age` (not written or renewed
    /// since): what a sweep does, safe against a write renewing it at the same moment.
    /// Whether it was deleted.
    pub fn remove_if_older(&self, hash: &[u8; 32], age: Duration) -> Result<bool, ChunkError> {
        let hex = ChunkRef {
            hash: *hash,
            len: 0,
        }
        .hex();
        let path = self.path_of(&hex);
        let _held = self.renewing.lock();
        let old = path
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
        if !old {
            return Ok(false);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(ChunkError::Io { path, source }),
        }
    }

    /// Every chunk file of the store, with its length and time (bytes unchecked).
    pub fn list(&self) -> Result<Vec<Held>, ChunkError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
        {
            if entry.file_name().len() != 2 || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for inner in std::fs::read_dir(entry.path())
                .map_err(io(&self.dir))?
                .flatten()
            {
                let name = inner.file_name();
                let Some(hash) = name
                    .to_str()
                    .filter(|n| n.len() == 64)
                    .and_then(hash_from_hex)
                else {
                    continue;
                };
                let Ok(meta) = inner.metadata() else { continue };
                out.push(Held {
                    chunk: ChunkRef {
                        hash,
                        len: u32::try_from(meta.len()).unwrap_or(u32::MAX),
                    },
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(out)
    }

    /// Deletes chunks moved to `corrupt/` longer than `age` ago (kept a while to look at).
    pub fn forget_corrupt(&self, age: Duration) {
        let dir = self.dir.join("corrupt");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The bytes of `chunk`, checked against its hash.
    pub fn get(&self, chunk: &ChunkRef) -> Result<Vec<u8>, ChunkError> {
        let hex = chunk.hex();
        let path = self.path_of(&hex);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ChunkError::Missing(hex))
            }
            Err(source) => return Err(ChunkError::Io { path, source }),
        };
        if !chunk.matches(&bytes) {
            let aside = self.dir.join("corrupt").join(&hex);
            let _ = std::fs::rename(&path, aside);
            return Err(ChunkError::Corrupt(hex));
        }
        Ok(bytes)
    }

    /// Asks the kernel to read `chunk`'s file into its cache now, without waiting: a reader
    /// going through a file's chunks in order finds the next ones read (a missing chunk is
    /// no error: the read that needs it says so).
    pub fn prefetch(&self, chunk: &ChunkRef) {
        if let Ok(file) = std::fs::File::open(self.path_of(&chunk.hex())) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
        }
    }

    /// Whether the store has a file for `chunk` of the right length (its bytes are checked
    /// when read).
    pub fn has(&self, chunk: &ChunkRef) -> bool {
        self.path_of(&chunk.hex())
            .metadata()
            .is_ok_and(|m| m.len() == u64::from(chunk.len))
    }

    /// Deletes the chunk `hash`; deleting one the store lacks is no error.
    pub fn remove(&self, hash: &[u8; 32]) -> Result<(), ChunkError> {
        let hex = ChunkRef {
            hash: *hash,
            len: 0,
        }
        .hex();
        let path = self.path_of(&hex);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ChunkError::Io { path, source }),
        }
    }

    /// How many chunks the store holds and their bytes.
    pub fn usage(&self) -> Result<(u64, u64), ChunkError> {
        let held = self.list()?;
        let bytes = held.iter().map(|h| u64::from(h.chunk.len)).sum();
        Ok((held.len() as u64, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_stored_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let bytes = b"some content".to_vec();
        let chunk = ChunkRef::of(&bytes);
        assert!(!store.has(&chunk));
        assert!(matches!(store.get(&chunk), Err(ChunkError::Missing(_))));
        store.put(&chunk, &bytes).unwrap();
        store.put(&chunk, &bytes).unwrap();
        assert!(store.has(&chunk));
        assert_eq!(store.get(&chunk).unwrap(), bytes);
        assert_eq!(store.usage().unwrap(), (1, bytes.len() as u64));
        let path = dir.path().join(&chunk.hex()[..2]).join(chunk.hex());
        assert!(path.is_file());
        assert!(matches!(
            store.put(&chunk, b"other bytes!"),
            Err(ChunkError::Mismatch { .. })
        ));
        store.remove(&chunk.hash).unwrap();
        store.remove(&chunk.hash).unwrap();
        assert!(!store.has(&chunk));
    }

    #[test]
    fn only_chunks_older_than_the_age_are_swept_and_a_put_renews() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let bytes = b"swept".to_vec();
        let chunk = ChunkRef::of(&bytes);
        store.put(&chunk, &bytes).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].chunk, chunk);
        assert!(!store
            .remove_if_older(&chunk.hash, Duration::from_secs(60))
            .unwrap());
        let path = dir.path().join(&chunk.hex()[..2]).join(chunk.hex());
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // A write of the same chunk renews it: not old any more.
        store.put(&chunk, &bytes).unwrap();
        assert!(!store
            .remove_if_older(&chunk.hash, Duration::from_secs(60))
            .unwrap());
        assert!(store.remove_if_older(&chunk.hash, Duration::ZERO).unwrap());
        assert!(!store.has(&chunk));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_chunk_is_moved_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let bytes = vec![7u8; 1000];
        let chunk = ChunkRef::of(&bytes);
        store.put(&chunk, &bytes).unwrap();
        let path = dir.path().join(&chunk.hex()[..2]).join(chunk.hex());
        let mut bad = bytes.clone();
        bad[500] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(store.has(&chunk), "the length still matches");
        assert!(matches!(store.get(&chunk), Err(ChunkError::Corrupt(_))));
        assert!(!path.exists() && dir.path().join("corrupt").join(chunk.hex()).exists());
        // A good copy puts it back.
        store.put(&chunk, &bytes).unwrap();
        assert_eq!(store.get(&chunk).unwrap(), bytes);
    }

    #[test]
    fn a_new_chunk_that_would_eat_into_the_reserve_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap().with_reserve(0);
        let kept = b"kept before the disk filled".to_vec();
        let kept_chunk = ChunkRef::of(&kept);
        store.put(&kept_chunk, &kept).unwrap();
        // No disk has this much free: every new chunk is refused, whole.
        let full = store.clone().with_reserve(u64::MAX / 2);
        let bytes = b"a new chunk".to_vec();
        let chunk = ChunkRef::of(&bytes);
        let err = full.put(&chunk, &bytes).unwrap_err();
        assert!(matches!(err, ChunkError::Full { len: 11, .. }), "{err:?}");
        assert!(err.to_string().contains("no room"), "{err}");
        assert!(!full.has(&chunk));
        assert_eq!(full.list().unwrap().len(), 1, "no file is left behind");
        // A chunk it has costs no room: storing it again renews it.
        full.put(&kept_chunk, &kept).unwrap();
        // With the reserve at zero, the same chunk fits.
        store.put(&chunk, &bytes).unwrap();
        assert_eq!(store.get(&chunk).unwrap(), bytes);
    }

    #[test]
    fn a_crash_leaves_no_partial_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let bytes = b"x".repeat(100);
        let chunk = ChunkRef::of(&bytes);
        let sub = dir.path().join(&chunk.hex()[..2]);
        std::fs::create_dir_all(&sub).unwrap();
        // What a writer killed between write and rename leaves.
        let temp = sub.join(format!("{}.99.0.tmp", chunk.hex()));
        std::fs::write(&temp, &bytes[..50]).unwrap();
        assert!(!store.has(&chunk));
        drop(store);
        let store = ChunkStore::open(dir.path()).unwrap();
        assert!(!temp.exists());
        assert_eq!(store.usage().unwrap(), (0, 0));
    }
}
