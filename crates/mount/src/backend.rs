//! What the mount needs of the file service: the [`Backend`] trait, and the entries and
//! figures it answers with.
//!
//! The trait is blocking: the FUSE threads call it directly. A backend that talks to a node
//! asynchronously runs its calls on a runtime of its own (as [`crate::ClientBackend`] does).

use std::fs::File;

use bytes::Bytes;
use plexus_fs::FsPath;
use plexus_units::Unit;

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

/// The file service, as the mount uses it. Paths are the tree's; every call acts as one user.
pub trait Backend: Send + Sync + 'static {
    /// One file or directory.
    fn stat(&self, path: &FsPath) -> Result<Entry>;
    /// The entries of a directory.
    fn list(&self, path: &FsPath) -> Result<Vec<Entry>>;
    /// `len` bytes of the file at `path` from `offset`, while the file is at `version`
    /// (an error with code `fs.changed` once it is not), as consecutive pieces: fewer bytes at
    /// the end of the file. A read of nothing checks the right to read.
    fn read(&self, path: &FsPath, offset: u64, len: u64, version: u64) -> Result<Vec<Bytes>>;
    /// Makes the file at `path` hold the content of `content` (read from its start), created
    /// with `mode` if it is new; readers see the old content or the new, never a mix.
    fn write_file(&self, path: &FsPath, content: &mut File, mode: u16) -> Result<()>;
    /// Makes a directory.
    fn mkdir(&self, path: &FsPath, mode: u16) -> Result<()>;
    /// Removes a file or an empty directory.
    fn rm(&self, path: &FsPath) -> Result<()>;
    /// Moves a file or directory in one step (replacing a file, or an empty directory, there).
    fn mv(&self, from: &FsPath, to: &FsPath) -> Result<()>;
    /// New mode bits (its owner or an admin).
    fn chmod(&self, path: &FsPath, mode: u16) -> Result<()>;
    /// The cluster's room: [`Space::UNKNOWN`] when the service does not say.
    fn statfs(&self) -> Result<Space>;
    /// The name of the user the calls act as.
    fn user(&self) -> &str;
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
        })
    }
}

#[cfg(test)]
mod tests {
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
            }
        );
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
}
