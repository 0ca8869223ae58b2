//! What the mount needs of the file service: the [`Backend`] trait, the [`Caller`] each
//! request acts for, and the entries and figures it answers with.
//!
//! The trait is blocking: the FUSE threads call it directly. A backend that talks to a node
//! asynchronously waits on a runtime (its own, as [`crate::ClientBackend`]'s, or the node's).

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use plexus_client::files;
use plexus_fs::FsPath;
use plexus_identity::PublicKey;
use plexus_units::{Map, Unit};

use crate::error::{Error, Result};

/// One file or directory as `io.fs` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name (`/` for the root).
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
    /// A file's bytes; a directory's number of entries.
    pub size: u64,
    /// The nine mode bits.
    pub mode: u16,
    /// Its owner's name (or a short key, or `-`).
    pub user: String,
    /// Last change, in ms since the Unix epoch.
    pub mtime_ms: u64,
    /// The inode number: stable for the entry's life, never reused.
    pub ino: u64,
    /// Bumped by every change; a read can ask for one version.
    pub version: u64,
    /// What the caller may do to it (`0o4` read, `0o2` write, `0o1` execute or go through),
    /// when the service said (`stat` does; listings do not).
    pub may: Option<u16>,
}

/// The user a request acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user's key.
    pub key: PublicKey,
    /// The user's name.
    pub name: Arc<str>,
}

/// How much room the cluster has, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// All of it.
    pub total: u64,
    /// What is free.
    pub free: u64,
}

impl Space {
    /// What a mount shows until the file service reports its room: large, so that programs
    /// that check for room before writing go ahead (16 TiB, all free).
    pub const UNKNOWN: Space = Space {
        total: 16 << 40,
        free: 16 << 40,
    };
}

/// The file service, as the mount uses it. Paths are the tree's; each call acts as the
/// [`Caller`] it is given. A backend says how it reaches `io.fs` (one call, several reads,
/// a whole file sent); the operations follow from that.
pub trait Backend: Send + Sync + 'static {
    /// The user a request of process `pid` (as the kernel gives it: a thread's id) acts for;
    /// an error if it acts for none (the mount refuses it access).
    fn caller(&self, pid: u32) -> Result<Caller>;
    /// The user the backend acts for when no request asks (for the room, `statfs`).
    fn own_caller(&self) -> &Caller;
    /// One call to `io.fs` with `body`: its value; an error unit is [`Error::Service`].
    fn call(&self, who: &Caller, body: Unit) -> Result<Unit>;
    /// The reads `bodies` (each giving bytes), several in flight: their bytes in order.
    fn reads(&self, who: &Caller, bodies: Vec<Unit>) -> Result<Vec<Bytes>>;
    /// Where each chunk of the file at `path` ends, as its chunk list said at `version`
    /// (empty for a file kept inline): reads are cut there, so that no chunk is read twice.
    fn chunk_ends(&self, who: &Caller, path: &FsPath, version: u64) -> Result<Arc<[u64]>>;
    /// Makes the file at `path` hold the content of `content` (read from its start), created
    /// with `mode` if it is new; readers see the old content or the new, never a mix.
    fn write_file(&self, who: &Caller, path: &FsPath, content: &mut File, mode: u16) -> Result<()>;

    /// One file or directory.
    fn stat(&self, who: &Caller, path: &FsPath) -> Result<Entry> {
        Entry::from_unit(&self.call(who, bodies::stat(path))?)
    }

    /// The entries of a directory.
    fn list(&self, who: &Caller, path: &FsPath) -> Result<Vec<Entry>> {
        bodies::entries(&self.call(who, bodies::ls(path))?)
    }

    /// `len` bytes of the file at `path` from `offset`, while the file is at `version`
    /// (an error with code `fs.changed` once it is not), as consecutive pieces: fewer bytes at
    /// the end of the file. A read of nothing checks the right to read. The range is cut at
    /// the file's chunk boundaries into reads of up to [`files::READ_BYTES`].
    fn read(
        &self,
        who: &Caller,
        path: &FsPath,
        offset: u64,
        len: u64,
        version: u64,
    ) -> Result<Vec<Bytes>> {
        if len == 0 {
            self.call(who, bodies::read(path, offset, 0, version))?;
            return Ok(Vec::new());
        }
        let ends = self.chunk_ends(who, path, version)?;
        let end = offset.saturating_add(len);
        let reads = bodies::pieces(offset, end, &ends, files::READ_BYTES)
            .into_iter()
            .map(|(at, n)| bodies::read(path, at, n, version))
            .collect();
        self.reads(who, reads)
    }

    /// Makes a directory.
    fn mkdir(&self, who: &Caller, path: &FsPath, mode: u16) -> Result<()> {
        self.call(who, bodies::mkdir(path, mode)).map(drop)
    }

    /// Removes a file or an empty directory.
    fn rm(&self, who: &Caller, path: &FsPath) -> Result<()> {
        self.call(who, bodies::rm(path)).map(drop)
    }

    /// Moves a file or directory in one step (replacing a file, or an empty directory, there).
    fn mv(&self, who: &Caller, from: &FsPath, to: &FsPath) -> Result<()> {
        self.call(who, bodies::mv(from, to)).map(drop)
    }

    /// New mode bits (its owner or an admin).
    fn chmod(&self, who: &Caller, path: &FsPath, mode: u16) -> Result<()> {
        self.call(who, bodies::chmod(path, mode)).map(drop)
    }

    /// The cluster's room: `status@io.fs` when the service has it and answers `{total free
    /// …}` in bytes; else [`Space::UNKNOWN`].
    fn statfs(&self) -> Result<Space> {
        match self.call(self.own_caller(), Unit::str("status")) {
            Ok(status) => Ok(bodies::space(&status)),
            Err(Error::Service { .. }) => Ok(Space::UNKNOWN),
            Err(e) => Err(e),
        }
    }
}

/// The message bodies a backend sends to `io.fs`, and how it reads their answers.
pub(crate) mod bodies {
    use std::collections::HashMap;

    use plexus_client::files;

    use super::*;

    pub(crate) fn map_of<const N: usize>(entries: [(&'static str, Unit); N]) -> Unit {
        let mut m = Map::new();
        for (k, v) in entries {
            m.insert(Unit::str(k), v);
        }
        Unit::Map(m)
    }

    pub(crate) fn path_unit(path: &FsPath) -> Unit {
        Unit::str(path.as_str())
    }

    pub(crate) fn int(n: u64) -> Unit {
        Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// A mode as the service takes it: three octal digits.
    pub(crate) fn mode_unit(mode: u16) -> Unit {
        Unit::from(format!("{:03o}", mode & 0o777))
    }

    pub(crate) fn stat(path: &FsPath) -> Unit {
        map_of([("stat", path_unit(path))])
    }

    pub(crate) fn ls(path: &FsPath) -> Unit {
        map_of([("ls", path_unit(path))])
    }

    /// A read of `len` bytes from `at`, of the file while it is at `version`.
    pub(crate) fn read(path: &FsPath, at: u64, len: u64, version: u64) -> Unit {
        map_of([
            ("read", path_unit(path)),
            ("offset", int(at)),
            ("len", int(len)),
            ("version", int(version)),
        ])
    }

    pub(crate) fn chunks(path: &FsPath) -> Unit {
        map_of([("chunks", path_unit(path))])
    }

    pub(crate) fn mkdir(path: &FsPath, mode: u16) -> Unit {
        map_of([("mkdir", path_unit(path)), ("mode", mode_unit(mode))])
    }

    pub(crate) fn rm(path: &FsPath) -> Unit {
        map_of([("rm", path_unit(path))])
    }

    pub(crate) fn mv(from: &FsPath, to: &FsPath) -> Unit {
        map_of([("mv", path_unit(from)), ("to", path_unit(to))])
    }

    pub(crate) fn chmod(path: &FsPath, mode: u16) -> Unit {
        map_of([("chmod", path_unit(path)), ("mode", mode_unit(mode))])
    }

    /// The entries of an `ls` answer.
    pub(crate) fn entries(listed: &Unit) -> Result<Vec<Entry>> {
        let rows = listed.as_list().ok_or_else(|| {
            Error::BadReply(format!("ls gave {}", plexus_units::to_short(listed, 80)))
        })?;
        rows.iter().map(Entry::from_unit).collect()
    }

    /// Where each chunk ends, in bytes from the file's start, from a `chunks` answer (36
    /// bytes a chunk: its hash, then its length as a little-endian u32).
    pub(crate) fn chunk_ends(list: &Unit) -> Result<Vec<u64>> {
        let Unit::Bytes(list) = list else {
            return Err(Error::BadReply(format!(
                "chunks gave {}",
                plexus_units::to_short(list, 80)
            )));
        };
        let mut at = 0u64;
        Ok(list
            .chunks_exact(36)
            .map(|r| {
                at += u64::from(u32::from_le_bytes([r[32], r[33], r[34], r[35]]));
                at
            })
            .collect())
    }

    /// The room a `status` answer gives (`{total free …}` in bytes), if it gives it.
    pub(crate) fn space(status: &Unit) -> Space {
        match (count(status, "total"), count(status, "free")) {
            (Some(total), Some(free)) => Space {
                total,
                free: free.min(total),
            },
            _ => Space::UNKNOWN,
        }
    }

    /// Where each chunk of recently read files ends (reads are cut there, so that no chunk
    /// is read twice), by path, for the version the list was asked at.
    #[derive(Default)]
    pub(crate) struct ChunkEnds(std::sync::Mutex<HashMap<String, Versioned>>);

    /// A file's chunk ends, and the version they are of.
    type Versioned = (u64, Arc<[u64]>);

    impl ChunkEnds {
        /// How many files' lists are kept.
        const KEPT: usize = 256;

        /// The chunk ends of `path` at `version`: kept ones, or those `fetch` gives (a list
        /// of another version only splits reads less well).
        pub(crate) fn of(
            &self,
            path: &FsPath,
            version: u64,
            fetch: impl FnOnce() -> Result<Unit>,
        ) -> Result<Arc<[u64]>> {
            let lock = || {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            if let Some((v, ends)) = lock().get(path.as_str()) {
                if *v == version {
                    return Ok(ends.clone());
                }
            }
            let ends: Arc<[u64]> = chunk_ends(&fetch()?)?.into();
            let mut kept = lock();
            if kept.len() >= Self::KEPT {
                kept.clear();
            }
            kept.insert(path.as_str().to_owned(), (version, ends.clone()));
            Ok(ends)
        }
    }

    /// Sends the reads `bodies` through `link`, up to [`files::DEPTH`] in flight, and gives
    /// their bytes in order.
    pub(crate) async fn read_pieces(
        link: &mut impl files::Link,
        bodies: Vec<Unit>,
    ) -> Result<Vec<Bytes>> {
        let mut got: Vec<Option<Bytes>> = vec![None; bodies.len()];
        let mut in_flight: HashMap<u64, usize> = HashMap::new();
        let count = bodies.len();
        let mut bodies = bodies.into_iter().enumerate();
        let mut done = 0;
        while done < count {
            while in_flight.len() < files::DEPTH {
                let Some((index, body)) = bodies.next() else {
                    break;
                };
                in_flight.insert(link.send(body).await?, index);
            }
            let (id, reply) = link.next().await?;
            // Replies to the calls of a read cut short before are skipped by their ids.
            let Some(index) = in_flight.remove(&id) else {
                continue;
            };
            got[index] = Some(bytes(files::value(reply)?)?);
            done += 1;
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// The bytes of a `read` answer.
    pub(crate) fn bytes(read: Unit) -> Result<Bytes> {
        match read {
            Unit::Bytes(b) => Ok(b),
            other => Err(Error::BadReply(format!(
                "read gave {}",
                plexus_units::to_short(&other, 80)
            ))),
        }
    }

    /// The reads that cover `start..end` of a file whose chunks end at `ends`: cut at chunk
    /// boundaries, consecutive chunks joined up to `most` bytes a read (a chunk larger than
    /// that is one read). Without chunk ends (a file kept inline), reads of `most` bytes.
    pub(crate) fn pieces(start: u64, end: u64, ends: &[u64], most: u64) -> Vec<(u64, u64)> {
        let most = most.max(1);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut at = start;
        // The first chunk that ends after `start`.
        let first = ends.partition_point(|&e| e <= start);
        for &chunk_end in ends.get(first..).unwrap_or_default() {
            if at >= end {
                break;
            }
            let to = chunk_end.min(end);
            let len = to - at;
            match out.last_mut() {
                Some((from, n)) if *from + *n == at && *n + len <= most => *n += len,
                _ => out.push((at, len)),
            }
            at = to;
        }
        // Past the last chunk (or no chunks): plain pieces.
        while at < end {
            let len = most.min(end - at);
            out.push((at, len));
            at += len;
        }
        out
    }
}

/// The nine mode bits and the kind (`true` for a directory) of a mode as `ls -l` prints it
/// (`drwxr-xr-x`, `-rw-r-----`); also nine letters without the kind (then `None` for it), and
/// `s`, `S`, `t`, `T` in the execute places. `None` for anything else.
pub fn parse_mode(text: &str) -> Option<(Option<bool>, u16)> {
    let text = text.trim();
    let (kind, bits) = match text.len() {
        10 => {
            let kind = match text.as_bytes().first()? {
                b'd' => Some(true),
                b'-' => Some(false),
                _ => return None,
            };
            (kind, text.get(1..)?)
        }
        9 => (None, text),
        _ => return None,
    };
    let mut mode = 0u16;
    for (i, c) in bits.bytes().enumerate() {
        let bit = 1u16 << (8 - i);
        let set = match (i % 3, c) {
            (_, b'-') => false,
            (0, b'r') | (1, b'w') | (2, b'x' | b's' | b't') => true,
            (2, b'S' | b'T') => false,
            _ => return None,
        };
        if set {
            mode |= bit;
        }
    }
    Some((kind, mode))
}

/// The bits of rights written as `ls` writes one triple (`rw-`).
fn rights(text: &str) -> Option<u16> {
    match parse_mode(&format!("{text}------"))? {
        (None, mode) => Some(mode >> 6),
        _ => None,
    }
}

fn field<'a>(u: &'a Unit, key: &str) -> Option<&'a Unit> {
    u.as_map().and_then(|m| m.get_str(key))
}

/// A field that is a count (a non-negative integer that fits 64 bits).
pub(crate) fn count(u: &Unit, key: &str) -> Option<u64> {
    field(u, key)
        .and_then(Unit::as_int)
        .and_then(|n| n.to_i64())
        .and_then(|n| u64::try_from(n).ok())
}

impl Entry {
    /// The entry an `ls` row or a `stat` answer describes: `ino`, `kind` and a name are
    /// needed; a mode that does not parse reads as 644 (755 for a directory).
    pub fn from_unit(u: &Unit) -> Result<Entry> {
        let bad =
            |what: &str| Error::BadReply(format!("{what} in {}", plexus_units::to_short(u, 80)));
        let name = field(u, "name")
            .and_then(Unit::as_str)
            .ok_or_else(|| bad("no name"))?
            .to_owned();
        let dir = match field(u, "kind").and_then(Unit::as_str) {
            Some("dir") => true,
            Some("file") => false,
            _ => return Err(bad("no kind")),
        };
        let parsed = field(u, "mode").and_then(Unit::as_str).and_then(parse_mode);
        let mode = match parsed {
            Some((_, mode)) => mode,
            None if dir => 0o755,
            None => 0o644,
        };
        Ok(Entry {
            name,
            dir,
            size: count(u, "size").unwrap_or(0),
            mode,
            user: field(u, "user")
                .and_then(Unit::as_str)
                .unwrap_or("-")
                .to_owned(),
            mtime_ms: count(u, "mtime").unwrap_or(0),
            ino: count(u, "ino").ok_or_else(|| bad("no ino"))?,
            version: count(u, "version").unwrap_or(0),
            may: field(u, "may").and_then(Unit::as_str).and_then(rights),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::bodies::pieces;
    use super::*;

    #[test]
    fn modes_parse_as_ls_prints_them() {
        assert_eq!(parse_mode("drwxr-xr-x"), Some((Some(true), 0o755)));
        assert_eq!(parse_mode("-rw-r--r--"), Some((Some(false), 0o644)));
        assert_eq!(parse_mode("-rw-------"), Some((Some(false), 0o600)));
        assert_eq!(parse_mode("----------"), Some((Some(false), 0)));
        assert_eq!(parse_mode("-rwxrwxrwx"), Some((Some(false), 0o777)));
        assert_eq!(parse_mode("rwxr-x---"), Some((None, 0o750)));
        assert_eq!(parse_mode(" -rw-r----- "), Some((Some(false), 0o640)));
        assert_eq!(parse_mode("-rwsr-xr-T"), Some((Some(false), 0o754)));
        // Every mode prints and parses back.
        for mode in 0..=0o777u16 {
            for dir in [false, true] {
                let text = plexus_fs::mode_text(mode, dir);
                assert_eq!(parse_mode(&text), Some((Some(dir), mode)), "{text}");
            }
        }
    }

    #[test]
    fn bad_modes_are_refused_not_guessed() {
        for bad in [
            "",
            "644",
            "drwxr-xr-",
            "drwxr-xr-xx",
            "lrwxrwxrwx",
            "-wrxr-xr-x",
            "-rw-r--r-\u{e9}",
            "drwxr-xr-\u{e9}",
            "-rw-r--r-?",
            "xrwxr-xr-x",
        ] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn entries_are_read_from_io_fs_rows() {
        let row = plexus_units::parse(
            "{name:`a.txt` kind:file size:12 mode:`-rw-r-----` user:bob mtime:1700000000000 \
             ino:42 version:7}",
        )
        .unwrap();
        let e = Entry::from_unit(&row).unwrap();
        assert_eq!(
            e,
            Entry {
                name: "a.txt".into(),
                dir: false,
                size: 12,
                mode: 0o640,
                user: "bob".into(),
                mtime_ms: 1_700_000_000_000,
                ino: 42,
                version: 7,
                may: None,
            }
        );
        let with_rights = plexus_units::parse("{name:a kind:file ino:4 may:`rw-`}").unwrap();
        assert_eq!(Entry::from_unit(&with_rights).unwrap().may, Some(0o6));
        let bad_rights = plexus_units::parse("{name:a kind:file ino:4 may:`rwz`}").unwrap();
        assert_eq!(Entry::from_unit(&bad_rights).unwrap().may, None);
        let odd = plexus_units::parse("{name:d kind:dir mode:`what` ino:3}").unwrap();
        let e = Entry::from_unit(&odd).unwrap();
        assert_eq!((e.dir, e.mode, e.size), (true, 0o755, 0));
        for bad in [
            "{name:d kind:dir}",
            "{kind:dir ino:3}",
            "{name:d kind:link ino:3}",
            "7",
        ] {
            let u = plexus_units::parse(bad).unwrap();
            assert!(
                matches!(Entry::from_unit(&u), Err(Error::BadReply(_))),
                "{bad}"
            );
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn reads_are_cut_at_chunk_boundaries_and_joined_up_to_the_most() {
        // Chunks of 1, 1, 3 and 0.5 MiB.
        let ends = [MIB, 2 * MIB, 5 * MIB, 5 * MIB + MIB / 2];
        assert_eq!(
            pieces(0, 5 * MIB + MIB / 2, &ends, 2 * MIB),
            vec![(0, 2 * MIB), (2 * MIB, 3 * MIB), (5 * MIB, MIB / 2)]
        );
        // A range that starts and ends inside chunks.
        assert_eq!(
            pieces(MIB / 2, 3 * MIB, &ends, 2 * MIB),
            vec![(MIB / 2, MIB + MIB / 2), (2 * MIB, MIB)]
        );
        // Past the chunks, and without them (a file kept inline): plain pieces.
        assert_eq!(
            pieces(5 * MIB, 7 * MIB, &ends, 4 * MIB),
            vec![(5 * MIB, MIB / 2), (5 * MIB + MIB / 2, 3 * MIB / 2)]
        );
        assert_eq!(
            pieces(0, 5 * MIB, &[], 2 * MIB),
            vec![(0, 2 * MIB), (2 * MIB, 2 * MIB), (4 * MIB, MIB)]
        );
        assert_eq!(pieces(10, 10, &ends, 2 * MIB), vec![]);
    }

    #[test]
    fn pieces_cover_the_range_exactly() {
        let ends: Vec<u64> = (1..=40u64).map(|i| i * 300_000 + i * i).collect();
        for (start, end) in [
            (0, 12_000_000),
            (7, 8),
            (299_999, 5_000_001),
            (11_000_000, 13_000_000),
        ] {
            let got = pieces(start, end, &ends, 2 * MIB);
            let mut at = start;
            for (from, len) in &got {
                assert_eq!(*from, at);
                assert!(*len > 0);
                at += len;
            }
            assert_eq!(at, end, "{start}..{end}: {got:?}");
        }
    }
}
