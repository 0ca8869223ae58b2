//! The journal of this node's running process groups: what a node killed with -9 kills when it
//! starts again.
//!
//! One file, `procs/journal` in the state directory, of lines appended as processes start and
//! end: `+ ID PID START` (the pid, which is also the group id, and its start time in clock
//! ticks after boot) and `- ID`. A start costs one appended write. A file per process cost an
//! inode allocation and a delete per run, and ext4 makes that allocation slow once many inodes
//! were freed recently: at a few hundred runs a second it took more CPU than `execve`. The
//! journal is rewritten with only the live entries once it grows past [`COMPACT_BYTES`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The journal is rewritten with only its live entries once it is this large.
const COMPACT_BYTES: u64 = 256 * 1024;
/// The most of a journal that is read: a journal this code wrote is never near it.
const MAX_READ_BYTES: u64 = 64 * 1024 * 1024;
/// The longest line that is read; longer ones are skipped.
const MAX_LINE_BYTES: usize = 256;

/// A process group a previous run of the node left in the journal as running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leftover {
    pub id: String,
    pub pid: i32,
    pub start_ticks: u64,
}

/// The open journal.
pub(crate) struct Journal {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    bytes: u64,
    live: HashMap<String, (i32, u64)>,
}

impl Journal {
    /// Reads what a previous run left in `dir/journal` and starts an empty journal. The
    /// caller kills the leftovers: until the next [`Journal::open`] they are forgotten.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Journal, Vec<Leftover>)> {
        let path = dir.join("journal");
        let leftovers = match File::open(&path) {
            Ok(file) => replay(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let file = create(&path)?;
        let journal = Journal {
            path,
            state: Mutex::new(State {
                file,
                bytes: 0,
                live: HashMap::new(),
            }),
        };
        Ok((journal, leftovers))
    }

    /// Records that `id` runs as process group `pid`.
    pub(crate) fn started(&self, id: &str, pid: i32, start_ticks: u64) -> std::io::Result<()> {
        let mut state = self.lock();
        state.append(&format!("+ {id} {pid} {start_ticks}\n"))?;
        state.live.insert(id.to_owned(), (pid, start_ticks));
        Ok(())
    }

    /// Records that `id` has ended. A line that cannot be written leaves `id` in the file:
    /// the next start then checks its pid's start time and finds it gone or someone else.
    pub(crate) fn ended(&self, id: &str) {
        let mut state = self.lock();
        if state.live.remove(id).is_none() {
            return;
        }
        if state.append(&format!("- {id}\n")).is_ok() && state.bytes > COMPACT_BYTES {
            // A failed rewrite keeps the longer journal, which says the same.
            let _ = state.compact(&self.path);
        }
    }

    /// How many processes the journal holds as running.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.lock().live.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn append(&mut self, line: &str) -> std::io::Result<()> {
        self.file.write_all(line.as_bytes())?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Rewrites the journal with the live entries only, through a temporary file and a rename:
    /// a crash at any point leaves one whole journal.
    fn compact(&mut self, path: &Path) -> std::io::Result<()> {
        let temp = path.with_extension("tmp");
        let mut text = String::new();
        for (id, (pid, ticks)) in &self.live {
            text.push_str(&format!("+ {id} {pid} {ticks}\n"));
        }
        let mut file = create(&temp)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&temp, path)?;
        self.file = file;
        self.bytes = text.len() as u64;
        Ok(())
    }
}

/// Creates (or empties) the journal file for appending, readable by the node's user only.
fn create(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    OpenOptions::new().append(true).open(path)
}

/// The entries of a journal still running at its end, in the order they started. Lines that do
/// not parse (a torn last line, say) are skipped.
fn replay(file: File) -> Vec<Leftover> {
    let mut live: Vec<Leftover> = Vec::new();
    let mut reader = BufReader::new(file.take(MAX_READ_BYTES));
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line is read at most MAX_LINE_BYTES + 1 at a time, so a file without newlines
        // cannot take memory.
        let Ok(n) = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
        else {
            break;
        };
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE_BYTES {
                // Skip the rest of an overlong line.
                let mut rest = Vec::new();
                while let Ok(m) = reader
                    .by_ref()
                    .take(MAX_LINE_BYTES as u64)
                    .read_until(b'\n', &mut rest)
                {
                    if m == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                    rest.clear();
                }
            }
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields[..] {
            ["+", id, pid, ticks] => {
                if let (Ok(pid), Ok(start_ticks)) = (pid.parse::<i32>(), ticks.parse::<u64>()) {
                    if pid > 0 {
                        live.retain(|l| l.id != id);
                        live.push(Leftover {
                            id: id.to_owned(),
                            pid,
                            start_ticks,
                        });
                    }
                }
            }
            ["-", id] => live.retain(|l| l.id != id),
            _ => {}
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left_running_is_read_back_and_the_journal_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, left) = Journal::open(dir.path()).unwrap();
        assert!(left.is_empty());
        journal.started("a", 100, 7).unwrap();
        journal.started("b", 200, 8).unwrap();
        journal.ended("a");
        journal.started("c", 300, 9).unwrap();
        drop(journal);
        let (journal, left) = Journal::open(dir.path()).unwrap();
        let ids: Vec<_> = left
            .iter()
            .map(|l| (l.id.as_str(), l.pid, l.start_ticks))
            .collect();
        assert_eq!(ids, [("b", 200, 8), ("c", 300, 9)]);
        assert_eq!(journal.live(), 0);
        drop(journal);
        assert!(Journal::open(dir.path()).unwrap().1.is_empty());
    }

    #[test]
    fn a_long_journal_is_compacted_to_its_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        journal.started("keep", 42, 1).unwrap();
        for i in 0..20_000 {
            let id = format!("run{i}");
            journal.started(&id, 1000, 5).unwrap();
            journal.ended(&id);
        }
        let size = std::fs::metadata(dir.path().join("journal")).unwrap().len();
        assert!(size <= COMPACT_BYTES + 64, "{size} bytes");
        // Appends after a compaction go to the new file.
        journal.started("late", 43, 2).unwrap();
        drop(journal);
        let (_, left) = Journal::open(dir.path()).unwrap();
        let ids: Vec<_> = left.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["keep", "late"]);
    }

    #[test]
    fn damaged_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("+ ok 5 6\n+ bad x 6\n+ neg -3 1\ngarbage\n");
        text.push_str(&"y".repeat(10_000));
        text.push_str("\n+ after 7 8\n- nothing\n\u{0}\u{ff}\n+ torn 9");
        std::fs::write(dir.path().join("journal"), text).unwrap();
        let (_, left) = Journal::open(dir.path()).unwrap();
        let ids: Vec<_> = left.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["ok", "after"]);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any file replays without panicking, to leftovers each named by a `+` line.
        #[test]
        fn any_journal_replays(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("journal"), &bytes).unwrap();
            let (_, left) = Journal::open(dir.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for l in &left {
                let (pid, ticks) = (l.pid.to_string(), l.start_ticks.to_string());
                let line = ["+", l.id.as_str(), pid.as_str(), ticks.as_str()];
                prop_assert!(l.pid > 0);
                prop_assert!(
                    text.lines().any(|t| t.split_whitespace().eq(line.iter().copied())),
                    "{:?} is not a line of {:?}", l, text
                );
            }
        }

        /// What is started and not ended is what the next open finds, in any order of events.
        #[test]
        fn replay_matches_the_events(events in proptest::collection::vec((0u8..8, any::<bool>()), 0..64)) {
            let dir = tempfile::tempdir().unwrap();
            let (journal, _) = Journal::open(dir.path()).unwrap();
            let mut live = std::collections::BTreeSet::new();
            for (id, start) in events {
                let id = format!("p{id}");
                if start {
                    journal.started(&id, 10, 1).unwrap();
                    live.insert(id);
                } else {
                    journal.ended(&id);
                    live.remove(&id);
                }
            }
            drop(journal);
            let (_, left) = Journal::open(dir.path()).unwrap();
            let found: std::collections::BTreeSet<String> = left.into_iter().map(|l| l.id).collect();
            prop_assert_eq!(found, live);
        }
    }
}
