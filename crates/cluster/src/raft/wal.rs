//! The raft log's own append-only files: segments of checksummed records in `raft-log/`.
//!
//! Raft's log is written at the rate of client writes and must be on disk before raft counts
//! an entry; a redb commit per append costs several page writes and holds redb's only write
//! lock during its fsync, which also stalls the state machine. Here an append is one `pwrite`
//! at the end of the active segment (no fsync), and [`Wal::sync`] makes everything written so
//! far durable with one `fdatasync`: a group commit (`Shared::flush_later` in `db.rs`) calls it
//! once for all the appends queued meanwhile. Format, recovery and durability rules:
//! `docs/storage.md` ("Raft log segments").

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The first bytes of every segment file: the format's name and version.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"PLXRLOG\x01";
/// A record's header: payload length (u32 LE), CRC-32 of index and payload (u32 LE), log index
/// (u64 LE).
const RECORD_HEADER: usize = 16;
/// A segment is closed and a new one started once it holds this many bytes.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Larger payloads are taken for damage (an entry is at most a few MiB).
const MAX_PAYLOAD: u32 = 256 << 20;
/// The segments' directory inside a node's data directory.
pub(crate) const WAL_DIR: &str = "raft-log";

/// Where one entry's payload is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes written, header included: where the next record goes.
    len: u64,
}

#[derive(Debug)]
struct State {
    /// By the index of the first entry each holds (its file name); the last one is active.
    segments: BTreeMap<u64, Segment>,
    /// Entries `first`, `first + 1`, …
    locs: VecDeque<Loc>,
    first: u64,
}

impl State {
    fn next_index(&self) -> Option<u64> {
        if self.locs.is_empty() {
            None
        } else {
            Some(self.first + self.locs.len() as u64)
        }
    }
}

/// The raft log's segment files. All methods block on file I/O.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    state: Mutex<State>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("raft log: cannot {what} {}: {e}", path.display())
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.log")
}

fn crc(index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one record (header and payload) for entry `index` to `buf`.
fn encode_record(buf: &mut Vec<u8>, index: u64, payload: &[u8]) -> Result<(), String> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD)
        .ok_or_else(|| {
            format!(
                "raft log: entry {index} is too large ({} bytes)",
                payload.len()
            )
        })?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc(index, payload).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

/// The records of one segment file, as far as they are whole and intact: their locations
/// and the offset after the last good one, and whether bytes after it were dropped.
struct Scan {
    locs: Vec<(u64, Loc)>,
    good_len: u64,
    damaged_tail: bool,
}

fn scan_segment(first: u64, bytes: &[u8]) -> Scan {
    let mut locs = Vec::new();
    let mut at = SEGMENT_MAGIC.len();
    let mut expect = first;
    let header_ok = bytes.len() >= at && &bytes[..at] == SEGMENT_MAGIC;
    if !header_ok {
        return Scan {
            locs,
            good_len: 0,
            damaged_tail: !bytes.is_empty(),
        };
    }
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&header[i..i + 4]);
            u32::from_le_bytes(w)
        };
        let len = word(0);
        let sum = word(4);
        let mut ix = [0u8; 8];
        ix.copy_from_slice(&header[8..16]);
        let index = u64::from_le_bytes(ix);
        let start = at + RECORD_HEADER;
        let Some(payload) = usize::try_from(len)
            .ok()
            .filter(|_| len <= MAX_PAYLOAD)
            .and_then(|l| bytes.get(start..start.checked_add(l)?))
        else {
            break;
        };
        if index != expect || crc(index, payload) != sum {
            break;
        }
        locs.push((
            index,
            Loc {
                segment: first,
                offset: start as u64,
                len,
            },
        ));
        expect += 1;
        at = start + payload.len();
    }
    Scan {
        locs,
        good_len: at as u64,
        damaged_tail: at < bytes.len(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync the directory", dir, e))
}

impl Wal {
    /// Opens (creating if needed) `dir` and recovers the log: entries up to `purged` are
    /// dropped, a damaged or torn tail of the last segment is cut off (those entries were
    /// never reported flushed), and damage anywhere else is an error.
    pub(crate) fn open(dir: &Path, purged: Option<u64>) -> Result<Wal, String> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))? {
            let item = item.map_err(|e| io_err("list", dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if let Some(first) = name
                .strip_suffix(".log")
                .filter(|n| n.len() == 20)
                .and_then(|n| n.parse::<u64>().ok())
            {
                names.push(first);
            }
        }
        names.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut locs: VecDeque<Loc> = VecDeque::new();
        let mut first = 0u64;
        let count = names.len();
        for (i, seg_first) in names.into_iter().enumerate() {
            let path = dir.join(segment_name(seg_first));
            let bytes = std::fs::read(&path).map_err(|e| io_err("read", &path, e))?;
            let scan = scan_segment(seg_first, &bytes);
            let is_last = i + 1 == count;
            if scan.damaged_tail && !is_last {
                return Err(format!(
                    "raft log: segment {} is damaged at byte {} (not at the end of the log)",
                    path.display(),
                    scan.good_len
                ));
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err("open", &path, e))?;
            let mut len = scan.good_len;
            if scan.damaged_tail || len == 0 {
                // Torn by a crash before its fsync: nothing past `good_len` was flushed.
                if len == 0 {
                    file.set_len(0)
                        .and_then(|_| file.write_all_at(SEGMENT_MAGIC, 0))
                        .map_err(|e| io_err("repair", &path, e))?;
                    len = SEGMENT_MAGIC.len() as u64;
                } else {
                    file.set_len(len).map_err(|e| io_err("cut", &path, e))?;
                }
                file.sync_all().map_err(|e| io_err("sync", &path, e))?;
            }
            for (index, loc) in scan.locs {
                if purged.is_some_and(|p| index <= p) {
                    continue;
                }
                if locs.is_empty() {
                    first = index;
                } else if index != first + locs.len() as u64 {
                    return Err(format!(
                        "raft log: entry {index} in {} does not follow entry {}",
                        path.display(),
                        first + locs.len() as u64 - 1
                    ));
                }
                locs.push_back(loc);
            }
            segments.insert(
                seg_first,
                Segment {
                    file: Arc::new(file),
                    path,
                    len,
                },
            );
        }
        if let (Some(p), false) = (purged, locs.is_empty()) {
            if first > p + 1 {
                return Err(format!(
                    "raft log: entries {} to {} are missing (purged up to {p})",
                    p + 1,
                    first - 1
                ));
            }
        }
        Ok(Wal {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                segments,
                locs,
                first,
            }),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, String> {
        self.state
            .lock()
            .map_err(|_| "raft log: a writer failed while holding the log".to_owned())
    }

    /// Starts a new active segment for entries from `first`, after making the current one
    /// durable.
    fn start_segment(&self, st: &mut State, first: u64) -> Result<(), String> {
        if let Some((_, active)) = st.segments.last_key_value() {
            active
                .file
                .sync_data()
                .map_err(|e| io_err("sync", &active.path, e))?;
        }
        let path = self.dir.join(segment_name(first));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err("create", &path, e))?;
        file.write_all(SEGMENT_MAGIC)
            .and_then(|_| file.sync_all())
            .map_err(|e| io_err("write", &path, e))?;
        sync_dir(&self.dir)?;
        st.segments.insert(
            first,
            Segment {
                file: Arc::new(file),
                path,
                len: SEGMENT_MAGIC.len() as u64,
            },
        );
        Ok(())
    }

    /// Writes entries `(index, payload)`, consecutive and following the last entry (any
    /// index when the log is empty), without fsync: readable at once, durable after the
    /// next [`Wal::sync`].
    pub(crate) fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), String> {
        let Some((head, _)) = entries.first() else {
            return Ok(());
        };
        let mut st = self.lock()?;
        if let Some(next) = st.next_index() {
            if *head != next {
                return Err(format!(
                    "raft log: entry {head} appended where entry {next} was expected"
                ));
            }
        }
        // A new segment when the active one is full, and when the log is empty and the
        // active one's records (if any) would not lead up to `head`.
        let need_new = match st.segments.last_key_value() {
            None => true,
            Some((seg_first, seg)) => {
                seg.len >= SEGMENT_BYTES
                    || (st.locs.is_empty()
                        && (seg.len > SEGMENT_MAGIC.len() as u64 || *seg_first != *head))
            }
        };
        if need_new {
            self.start_segment(&mut st, *head)?;
        }
        if st.locs.is_empty() {
            st.first = *head;
        }
        let Some((&seg_first, seg)) = st.segments.last_key_value() else {
            return Err("raft log: no active segment".into());
        };
        let mut buf = Vec::with_capacity(
            entries
                .iter()
                .map(|(_, p)| p.len() + RECORD_HEADER)
                .sum::<usize>(),
        );
        let mut new_locs = Vec::with_capacity(entries.len());
        for (expect, (index, payload)) in (*head..).zip(entries) {
            if *index != expect {
                return Err(format!(
                    "raft log: entry {index} appended where entry {expect} was expected"
                ));
            }
            let offset = seg.len + (buf.len() + RECORD_HEADER) as u64;
            encode_record(&mut buf, *index, payload)?;
            new_locs.push(Loc {
                segment: seg_first,
                offset,
                len: payload.len() as u32,
            });
        }
        seg.file
            .write_all_at(&buf, seg.len)
            .map_err(|e| io_err("write", &seg.path, e))?;
        let written = buf.len() as u64;
        if let Some(seg) = st.segments.get_mut(&seg_first) {
            seg.len += written;
        }
        st.locs.extend(new_locs);
        Ok(())
    }

    /// Makes every append made before the call durable.
    pub(crate) fn sync(&self) -> Result<(), String> {
        let active = {
            let st = self.lock()?;
            st.segments
                .last_key_value()
                .map(|(_, s)| (s.file.clone(), s.path.clone()))
        };
        // Earlier segments were synced when the next one started.
        match active {
            Some((file, path)) => file.sync_data().map_err(|e| io_err("sync", &path, e)),
            None => Ok(()),
        }
    }

    /// The payloads of the entries in `range` that the log holds, in order.
    pub(crate) fn read(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Vec<u8>>, String> {
        let st = self.lock()?;
        let Some(next) = st.next_index() else {
            return Ok(Vec::new());
        };
        let from = match range.0 {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(st.first);
        let to = match range.1 {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => i,
            Bound::Unbounded => next,
        }
        .min(next);
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        for index in from..to {
            let Some(loc) = st.locs.get((index - st.first) as usize) else {
                break;
            };
            let Some(seg) = st.segments.get(&loc.segment) else {
                return Err(format!("raft log: the segment of entry {index} is gone"));
            };
            let mut payload = vec![0u8; loc.len as usize];
            seg.file
                .read_exact_at(&mut payload, loc.offset)
                .map_err(|e| io_err("read", &seg.path, e))?;
            out.push(payload);
        }
        Ok(out)
    }

    /// The last entry's payload, if the log holds any.
    pub(crate) fn last(&self) -> Result<Option<Vec<u8>>, String> {
        let next = self.lock()?.next_index();
        match next {
            None => Ok(None),
            Some(next) => {
                let mut last = self.read((Bound::Included(next - 1), Bound::Unbounded))?;
                Ok(last.pop())
            }
        }
    }

    /// Removes entries from `index` on, durably.
    pub(crate) fn truncate(&self, index: u64) -> Result<(), String> {
        let mut st = self.lock()?;
        let Some(next) = st.next_index() else {
            return Ok(());
        };
        if index >= next {
            return Ok(());
        }
        let keep = index.saturating_sub(st.first) as usize;
        let cut_at = st.locs.get(keep).copied();
        st.locs.truncate(keep);
        let Some(cut) = cut_at else {
            return Ok(());
        };
        // Later segments go first (newest first), so a crash in between leaves a prefix.
        let later: Vec<u64> = st
            .segments
            .range(cut.segment + 1..)
            .map(|(k, _)| *k)
            .rev()
            .collect();
        for k in later {
            if let Some(seg) = st.segments.remove(&k) {
                std::fs::remove_file(&seg.path).map_err(|e| io_err("remove", &seg.path, e))?;
            }
        }
        sync_dir(&self.dir)?;
        if let Some(seg) = st.segments.get_mut(&cut.segment) {
            let at = cut.offset - RECORD_HEADER as u64;
            seg.file
                .set_len(at)
                .and_then(|_| seg.file.sync_all())
                .map_err(|e| io_err("truncate", &seg.path, e))?;
            seg.len = at;
        }
        Ok(())
    }

    /// Forgets entries up to `index` and removes the segment files holding only such
    /// entries (the purge pointer itself is recorded durably by the caller first, so a
    /// segment left behind by a crash is skipped when the log is opened again).
    pub(crate) fn purge(&self, index: u64) -> Result<(), String> {
        let mut st = self.lock()?;
        let drop = index
            .checked_add(1)
            .map_or(u64::MAX, |n| n.saturating_sub(st.first))
            .min(st.locs.len() as u64) as usize;
        st.locs.drain(..drop);
        st.first = st.first.saturating_add(drop as u64);
        // A segment can go when the next one starts at or below index + 1 (all its entries
        // are purged); the active (last) one always stays.
        let firsts: Vec<u64> = st.segments.keys().copied().collect();
        let mut removed = false;
        for pair in firsts.windows(2) {
            if pair[1] <= index.saturating_add(1) {
                if let Some(seg) = st.segments.remove(&pair[0]) {
                    std::fs::remove_file(&seg.path).map_err(|e| io_err("remove", &seg.path, e))?;
                    removed = true;
                }
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range
            .map(|i| (i, format!("entry {i}").into_bytes()))
            .collect()
    }

    fn all(w: &Wal) -> Vec<String> {
        w.read((Bound::Unbounded, Bound::Unbounded))
            .unwrap()
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn appends_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        w.append(&entries(1..4)).unwrap();
        w.append(&entries(4..6)).unwrap();
        w.sync().unwrap();
        assert_eq!(all(&w).len(), 5);
        assert_eq!(
            w.read((Bound::Included(2), Bound::Excluded(4))).unwrap(),
            vec![b"entry 2".to_vec(), b"entry 3".to_vec()]
        );
        assert_eq!(w.last().unwrap(), Some(b"entry 5".to_vec()));
        drop(w);
        let w = Wal::open(dir.path(), None).unwrap();
        assert_eq!(all(&w)[0], "entry 1");
        assert_eq!(w.last().unwrap(), Some(b"entry 5".to_vec()));
        assert!(w.append(&entries(7..8)).is_err(), "a hole is refused");
        w.append(&entries(6..7)).unwrap();
    }

    #[test]
    fn truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        w.append(&entries(1..11)).unwrap();
        w.truncate(8).unwrap();
        assert_eq!(w.last().unwrap(), Some(b"entry 7".to_vec()));
        w.append(&entries(8..9)).unwrap();
        w.purge(3).unwrap();
        assert_eq!(all(&w).first().map(String::as_str), Some("entry 4"));
        drop(w);
        let w = Wal::open(dir.path(), Some(3)).unwrap();
        assert_eq!(all(&w).len(), 5);
        // Purging everything, then appending after a snapshot's index.
        w.purge(8).unwrap();
        assert_eq!(w.last().unwrap(), None);
        w.append(&entries(20..22)).unwrap();
        drop(w);
        let w = Wal::open(dir.path(), Some(19)).unwrap();
        assert_eq!(all(&w), vec!["entry 20", "entry 21"]);
    }

    #[test]
    fn segments_rotate_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        let big = vec![7u8; 1 << 20];
        for i in 1..=40u64 {
            w.append(&[(i, big.clone())]).unwrap();
        }
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files() >= 2, "rotated");
        w.purge(35).unwrap();
        assert_eq!(files(), 1);
        w.truncate(38).unwrap();
        drop(w);
        let w = Wal::open(dir.path(), Some(35)).unwrap();
        assert_eq!(
            w.read((Bound::Unbounded, Bound::Unbounded)).unwrap().len(),
            2
        );
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_elsewhere_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        w.append(&entries(1..6)).unwrap();
        w.sync().unwrap();
        drop(w);
        let seg = dir.path().join(segment_name(1));
        let len = std::fs::metadata(&seg).unwrap().len();
        // A torn last record.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        assert_eq!(all(&w).len(), 4);
        w.append(&entries(5..7)).unwrap();
        drop(w);
        // A flipped byte in the middle of the last segment cuts the log there.
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = SEGMENT_MAGIC.len() + RECORD_HEADER + 2;
        bytes[at] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let w = Wal::open(dir.path(), None).unwrap();
        assert_eq!(all(&w).len(), 0);
        drop(w);
        // Damage in a segment that is not the last one is an error.
        let w = Wal::open(dir.path(), None).unwrap();
        w.append(&entries(1..3)).unwrap();
        w.purge(0).unwrap();
        drop(w);
        std::fs::write(dir.path().join(segment_name(3)), SEGMENT_MAGIC).unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let e = Wal::open(dir.path(), None).unwrap_err();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn garbage_never_panics() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
                let mut with_magic = SEGMENT_MAGIC.to_vec();
                with_magic.extend_from_slice(&bytes);
                let _ = scan_segment(1, &bytes);
                let s = scan_segment(1, &with_magic);
                prop_assert!(s.good_len as usize <= with_magic.len());
                Ok(())
            })
            .unwrap();
    }
}
