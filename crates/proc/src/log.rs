//! One output stream's log: two files on this node (the current one and the previous one),
//! bounded, with a marker wherever output is missing.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

/// The most bytes one follow step returns.
const READ_CHUNK: u64 = 64 * 1024;

/// A log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("log {}: {source}", path.display())]
pub struct LogError {
    /// The file.
    pub path: PathBuf,
    /// The failure.
    #[source]
    pub source: std::io::Error,
}

/// The marker line standing where `n` bytes of output are missing.
pub fn dropped_marker(n: u64) -> String {
    format!("[plexus: {n} bytes of output dropped]\n")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    /// Bytes logged so far: the offset in the stream's log, which counts the program's output
    /// and any marker written into a file.
    written: u64,
    /// No more output will come.
    ended: bool,
}

struct Files {
    /// Made at the first write: a quiet process holds no file (or descriptor) for its logs.
    current: Option<File>,
    /// Log offset of the current file's first byte.
    current_start: u64,
    /// Bytes in the current file (markers included).
    current_len: u64,
    /// Logical offset of the previous file's first byte, when there is one.
    previous_start: Option<u64>,
    /// Output that could not be written (disk full), to be marked at the next write that works.
    unwritten: u64,
}

/// The log of one stream of one process.
pub(crate) struct StreamLog {
    path: PathBuf,
    previous: PathBuf,
    /// The most bytes one file holds; two files are kept, so the stream's bound is twice this.
    file_limit: u64,
    files: Mutex<Files>,
    progress: watch::Sender<Progress>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError {
        path: path.to_owned(),
        source,
    }
}

impl StreamLog {
    /// The log at `path`, keeping at most `limit` bytes in all. Its file is made (truncating
    /// what a previous run of the id left there) at the first write: a process that writes
    /// nothing costs no file, and its start no file-system work.
    pub(crate) fn new(path: PathBuf, limit: u64) -> Arc<StreamLog> {
        let mut previous = path.clone().into_os_string();
        previous.push(".1");
        let previous = PathBuf::from(previous);
        Arc::new(StreamLog {
            path,
            previous,
            file_limit: (limit / 2).max(1),
            files: Mutex::new(Files {
                current: None,
                current_start: 0,
                current_len: 0,
                previous_start: None,
                unwritten: 0,
            }),
            progress: watch::Sender::new(Progress::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Files> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The paths of this log's files.
    pub(crate) fn paths(&self) -> [&Path; 2] {
        [&self.path, &self.previous]
    }

    /// Appends output. A write that fails (disk full) loses that output; a marker says so at the
    /// next write that works.
    pub(crate) fn append(&self, mut data: &[u8]) {
        let mut files = self.lock();
        if files.unwritten > 0 {
            let marker = dropped_marker(files.unwritten);
            if self.write_bounded(&mut files, marker.as_bytes()).is_ok() {
                files.unwritten = 0;
            }
        }
        while !data.is_empty() {
            match self.write_bounded(&mut files, data) {
                Ok(n) => data = &data[n..],
                Err(_) => {
                    files.unwritten += data.len() as u64;
                    // A failed write may have written part: the file's length is the truth.
                    if let Some(Ok(meta)) = files.current.as_ref().map(File::metadata) {
                        files.current_len = meta.len();
                    }
                    break;
                }
            }
        }
        let written = files.current_start + files.current_len;
        drop(files);
        self.progress.send_modify(|p| p.written = written);
    }

    /// Writes as much of `data` as fits in the current file, rotating first when it is full.
    fn write_bounded(&self, files: &mut Files, data: &[u8]) -> std::io::Result<usize> {
        if files.current_len >= self.file_limit {
            std::fs::rename(&self.path, &self.previous)?;
            let current = File::create(&self.path)?;
            files.previous_start = Some(files.current_start);
            files.current_start += files.current_len;
            files.current_len = 0;
            files.current = Some(current);
        }
        let file = match &mut files.current {
            Some(file) => file,
            None => {
                // The first write: nothing of a previous run of this id is kept.
                match std::fs::remove_file(&self.previous) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                files.current.insert(File::create(&self.path)?)
            }
        };
        let room = (self.file_limit - files.current_len) as usize;
        let n = room.min(data.len());
        file.write_all(&data[..n])?;
        files.current_len += n as u64;
        Ok(n)
    }

    /// Marks the stream finished: followers end once they have read everything.
    pub(crate) fn finish(&self) {
        self.progress.send_modify(|p| p.ended = true);
    }

    /// Up to `max` bytes from logical offset `from`; when `from` was already rotated away, the
    /// number of bytes skipped comes first.
    fn read_at(&self, from: u64, max: u64) -> Result<(u64, Vec<u8>), LogError> {
        let files = self.lock();
        let retained = files.previous_start.unwrap_or(files.current_start);
        let skipped = retained.saturating_sub(from);
        let from = from.max(retained);
        let (file_path, in_file, available) = if from < files.current_start {
            (&self.previous, from - retained, files.current_start - from)
        } else {
            let end = files.current_start + files.current_len;
            (
                &self.path,
                from - files.current_start,
                end.saturating_sub(from),
            )
        };
        let want = available.min(max) as usize;
        let mut buf = vec![0; want];
        if want > 0 {
            let file = File::open(file_path).map_err(io_err(file_path))?;
            file.read_exact_at(&mut buf, in_file)
                .map_err(io_err(file_path))?;
        }
        Ok((skipped, buf))
    }

    /// The whole retained log, with a marker first when older output was rotated away.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let (skipped, bytes) = self.read_at(offset, u64::MAX)?;
            if skipped > 0 {
                out.extend_from_slice(dropped_marker(skipped).as_bytes());
            }
            if bytes.is_empty() {
                return Ok(out);
            }
            offset += skipped + bytes.len() as u64;
            out.extend_from_slice(&bytes);
        }
    }

    /// A follower from logical offset `from`.
    pub(crate) fn follow(self: &Arc<Self>, from: u64) -> Follow {
        Follow {
            log: Arc::clone(self),
            offset: from,
            progress: self.progress.subscribe(),
        }
    }
}

/// The last `n` lines of `text` (a last line without a newline counts as a line).
pub(crate) fn tail_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut newlines = body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n');
    match newlines.nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

/// New output of one stream from an offset; ends when the stream ended and all was read.
pub struct Follow {
    log: Arc<StreamLog>,
    offset: u64,
    progress: watch::Receiver<Progress>,
}

impl Follow {
    /// The next bytes (or a dropped-output marker when the follower fell behind the log's
    /// bound); `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, LogError>> {
        loop {
            let progress = *self.progress.borrow_and_update();
            if self.offset < progress.written {
                return Some(
                    self.log
                        .read_at(self.offset, READ_CHUNK)
                        .map(|(skipped, bytes)| {
                            if skipped > 0 {
                                self.offset += skipped;
                                Bytes::from(dropped_marker(skipped))
                            } else {
                                self.offset += bytes.len() as u64;
                                Bytes::from(bytes)
                            }
                        }),
                );
            }
            if progress.ended || self.progress.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The logical offset the next bytes come from.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_write_replaces_what_a_previous_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.out");
        std::fs::write(&path, "old").unwrap();
        std::fs::write(dir.path().join("x.out.1"), "older").unwrap();
        let log = StreamLog::new(path.clone(), 1000);
        assert_eq!(log.read_all().unwrap(), b"");
        log.append(b"new");
        assert_eq!(log.read_all().unwrap(), b"new");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dir.path().join("x.out.1").exists());
    }

    #[test]
    fn tail_counts_lines() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb\n", 0), b"");
        assert_eq!(tail_lines(b"", 3), b"");
    }

    proptest! {
        /// The tail is the end of the text and holds `n` lines, or all of them when fewer.
        #[test]
        fn tail_is_the_last_n_lines(text in "[ab\n]{0,40}", n in 0usize..8) {
            let tail = tail_lines(text.as_bytes(), n);
            prop_assert!(text.as_bytes().ends_with(tail));
            let lines = |t: &[u8]| t.split(|b| *b == b'\n').count() - usize::from(t.ends_with(b"\n")) - usize::from(t.is_empty());
            prop_assert_eq!(lines(tail), n.min(lines(text.as_bytes())));
            // It starts at a line start.
            let start = text.len() - tail.len();
            prop_assert!(tail.is_empty() || start == 0 || text.as_bytes()[start - 1] == b'\n');
        }

        /// Whatever the writes, the files stay within the bound, the retained text is the tail
        /// of what was written, and a marker names exactly the bytes that are gone.
        #[test]
        fn rotation_keeps_a_marked_suffix(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
            limit in 2u64..600,
        ) {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let log = StreamLog::new(dir.path().join("x.out"), limit);
            let mut all = Vec::new();
            for c in &chunks {
                log.append(c);
                all.extend_from_slice(c);
            }
            for path in log.paths() {
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                prop_assert!(len <= limit / 2 + 1);
            }
            let read = log.read_all().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (dropped, kept) = match read.strip_prefix(b"[plexus: ") {
                Some(rest) => {
                    let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                    let text = String::from_utf8_lossy(&rest[..end]).into_owned();
                    let n: usize = text.trim_end_matches(" bytes of output dropped]").parse()
                        .map_err(|_| TestCaseError::fail(format!("bad marker {text:?}")))?;
                    (n, &rest[(end + 1).min(rest.len())..])
                }
                None => (0, &read[..]),
            };
            prop_assert_eq!(dropped + kept.len(), all.len());
            prop_assert_eq!(kept, &all[dropped..]);
            prop_assert!(kept.len() as u64 >= (limit / 2).min(all.len() as u64));
        }
    }
}
