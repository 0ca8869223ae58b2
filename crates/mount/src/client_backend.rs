//! [`ClientBackend`]: the file service of the local node, reached on its Unix socket and
//! called as a user, each message signed with the user's key (as `plx fs` does).
//!
//! Calls run on a small runtime of the backend's own, each on a connection from a pool (so
//! FUSE threads call at once), and each has a deadline: a node that stops answering makes the
//! call fail (`EIO`), and its connection is dropped. A read of a range is cut at the file's
//! chunk boundaries into reads of up to 1 MiB, a few in flight on one connection; a file is
//! written with [`plexus_client::files::put`] (chunks staged several at a time, then
//! committed), with a deadline on its progress.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_client::files::{self, TransferError};
use plexus_client::{Client, Reply};
use plexus_fs::FsPath;
use plexus_identity::{Keypair, SignedMessage};
use plexus_units::{Map, Unit};

use crate::backend::{count, Backend, Entry, Space};
use crate::error::{Error, Result};

/// The service's name.
const SERVICE: &str = "io.fs";
/// Where each chunk of a file ends, in bytes from its start.
type ChunkEnds = Arc<[u64]>;
/// The most idle connections kept for later calls.
const POOL: usize = 8;
/// How long connecting may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How many files' chunk boundaries are kept.
const ENDS_KEPT: usize = 256;
/// The code of a read of a version the file is no longer at.
const CHANGED: &str = "fs.changed";

/// The file service of a node, through its client socket.
pub struct ClientBackend {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    key: Keypair,
    user: String,
    pool: Mutex<Vec<Client>>,
    deadline: Duration,
    /// Chunk boundaries of recently read files: path → (version, chunk ends).
    ends: Mutex<HashMap<String, (u64, ChunkEnds)>>,
}

fn map_of(entries: impl IntoIterator<Item = (&'static str, Unit)>) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

fn path_unit(path: &FsPath) -> Unit {
    Unit::str(path.as_str())
}

fn int(n: u64) -> Unit {
    Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A mode as the service takes it: three octal digits.
fn mode_unit(mode: u16) -> Unit {
    Unit::from(format!("{:03o}", mode & 0o777))
}

impl ClientBackend {
    /// Connects to the node at `socket` as `key`'s user, each call allowed `deadline`; fails
    /// if no node answers there or the key is not registered on it.
    pub fn connect(socket: PathBuf, key: Keypair, deadline: Duration) -> Result<ClientBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plx-mount-io")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let mut backend = ClientBackend {
            rt,
            socket,
            key,
            user: String::new(),
            pool: Mutex::new(Vec::new()),
            deadline,
            ends: Mutex::new(HashMap::new()),
        };
        let who = backend.call_service("sys.usr", Unit::str("who"))?;
        let name = who
            .as_map()
            .and_then(|m| m.get_str("ath"))
            .and_then(Unit::as_str)
            .unwrap_or("-");
        if name == "-" {
            return Err(Error::NotRegistered);
        }
        backend.user = name.to_owned();
        Ok(backend)
    }

    fn take_client(&self) -> Option<Client> {
        self.pool.lock().ok().and_then(|mut p| p.pop())
    }

    fn give_back(&self, client: Client) {
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < POOL {
                pool.push(client);
            }
        }
    }

    /// Runs `work` with a connection from the pool (a new one if none is idle); the work
    /// hands the connection back with its result, and it goes back to the pool when the
    /// work ended with an answer of the node. A connection whose work failed otherwise (timed
    /// out, broke) is dropped: its stream may hold half a frame.
    fn with_client<T, F>(&self, work: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = (Client, Result<T>)>,
    {
        let pooled = self.take_client();
        self.rt.block_on(async {
            let client = match pooled {
                Some(c) => c,
                None => tokio::time::timeout(CONNECT_DEADLINE, Client::connect(&self.socket))
                    .await
                    .map_err(|_| Error::Timeout(CONNECT_DEADLINE))??,
            };
            let (client, out) = work(client).await;
            if matches!(out, Ok(_) | Err(Error::Service { .. })) {
                // Replies still to come of a pipeline cut short are skipped by their ids.
                self.give_back(client);
            }
            out
        })
    }

    /// One signed call to `service`, within the deadline; an error unit becomes
    /// [`Error::Service`].
    fn call_service(&self, service: &str, body: Unit) -> Result<Unit> {
        let msg = plexus_client::sign_with(&self.key, Unit::stream(body, service)?)?;
        let deadline = self.deadline;
        self.with_client(|mut client| async move {
            let reply = within(deadline, client.call(&msg, None, std::future::pending())).await;
            let out = match reply {
                Ok(Ok(r)) => value(r),
                Ok(Err(e)) => Err(Error::Client(e)),
                Err(e) => Err(e),
            };
            (client, out)
        })
    }

    fn call(&self, body: Unit) -> Result<Unit> {
        self.call_service(SERVICE, body)
    }

    /// Where each chunk of the file at `path` ends (empty for a file kept inline), as its
    /// chunk list said when asked for `version` (reads split there, so that no chunk is read
    /// twice; a list of another version only splits them less well).
    fn chunk_ends(&self, path: &FsPath, version: u64) -> Result<ChunkEnds> {
        if let Some((v, ends)) = lock(&self.ends).get(path.as_str()) {
            if *v == version {
                return Ok(ends.clone());
            }
        }
        let list = match self.call(map_of([("chunks", path_unit(path))]))? {
            Unit::Bytes(b) => b,
            other => {
                return Err(Error::BadReply(format!(
                    "chunks gave {}",
                    plexus_units::to_short(&other, 80)
                )))
            }
        };
        let mut at = 0u64;
        let ends: ChunkEnds = list
            .chunks_exact(36)
            .map(|r| {
                at += u64::from(u32::from_le_bytes([r[32], r[33], r[34], r[35]]));
                at
            })
            .collect();
        let mut cache = lock(&self.ends);
        if cache.len() >= ENDS_KEPT {
            cache.clear();
        }
        cache.insert(path.as_str().to_owned(), (version, ends.clone()));
        Ok(ends)
    }
}

/// `fut`, or [`Error::Timeout`] once `deadline` has passed.
async fn within<T>(deadline: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| Error::Timeout(deadline))
}

/// A reply's value; an error unit becomes [`Error::Service`].
fn value(reply: Reply) -> Result<Unit> {
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => Err(Error::Service {
            code: e.code().to_owned(),
            message: e.message().to_owned(),
        }),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends the signed reads `msgs`, up to [`files::DEPTH`] in flight, and gives their bytes
/// in order.
async fn read_pieces(client: &mut Client, msgs: &[SignedMessage]) -> Result<Vec<Bytes>> {
    let mut got: Vec<Option<Bytes>> = vec![None; msgs.len()];
    let mut in_flight: HashMap<u64, usize> = HashMap::new();
    let (mut next, mut done) = (0, 0);
    while done < msgs.len() {
        while in_flight.len() < files::DEPTH && next < msgs.len() {
            let id = client.send_call(&msgs[next]).await?;
            in_flight.insert(id, next);
            next += 1;
        }
        let (id, reply) = client.next_reply().await?;
        let Some(index) = in_flight.remove(&id) else {
            continue;
        };
        match value(reply)? {
            Unit::Bytes(b) => got[index] = Some(b),
            other => {
                return Err(Error::BadReply(format!(
                    "read gave {}",
                    plexus_units::to_short(&other, 80)
                )))
            }
        }
        done += 1;
    }
    Ok(got.into_iter().flatten().collect())
}

/// The reads that cover `start..end` of a file whose chunks end at `ends`: cut at chunk
/// boundaries, consecutive chunks joined up to `most` bytes a read (a chunk larger than that
/// is one read). Without chunk ends (a file kept inline), reads of `most` bytes.
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

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Error {
        match e {
            TransferError::Refused { code, message } => Error::Service { code, message },
            TransferError::Client(e) => Error::Client(e),
            TransferError::Read(source) | TransferError::Write(source) => Error::Local {
                action: "read the spill file of a file being written in",
                path: PathBuf::from("the spill directory"),
                source,
            },
            TransferError::Changed(path) => Error::Service {
                code: CHANGED.into(),
                message: format!("{path} changed while it was read"),
            },
            TransferError::Unexpected(what) => Error::BadReply(what),
        }
    }
}

impl Backend for ClientBackend {
    fn stat(&self, path: &FsPath) -> Result<Entry> {
        let stat = self.call(map_of([("stat", path_unit(path))]))?;
        Entry::from_unit(&stat)
    }

    fn list(&self, path: &FsPath) -> Result<Vec<Entry>> {
        let listed = self.call(map_of([("ls", path_unit(path))]))?;
        let rows = listed.as_list().ok_or_else(|| {
            Error::BadReply(format!("ls gave {}", plexus_units::to_short(&listed, 80)))
        })?;
        rows.iter().map(Entry::from_unit).collect()
    }

    fn read(&self, path: &FsPath, offset: u64, len: u64, version: u64) -> Result<Vec<Bytes>> {
        let read_body = |at: u64, n: u64| {
            map_of([
                ("read", path_unit(path)),
                ("offset", int(at)),
                ("len", int(n)),
                ("version", int(version)),
            ])
        };
        if len == 0 {
            // Nothing to read: the call checks the right to read, and the version.
            self.call(read_body(offset, 0))?;
            return Ok(Vec::new());
        }
        let ends = self.chunk_ends(path, version)?;
        let wanted = pieces(offset, offset.saturating_add(len), &ends, files::READ_BYTES);
        let msgs = wanted
            .iter()
            .map(|&(at, n)| {
                let body = Unit::stream(read_body(at, n), SERVICE)?;
                Ok(plexus_client::sign_with(&self.key, body)?)
            })
            .collect::<Result<Vec<SignedMessage>>>()?;
        let deadline = self.deadline;
        self.with_client(|mut client| async move {
            let out = match within(deadline, read_pieces(&mut client, &msgs)).await {
                Ok(read) => read,
                Err(e) => Err(e),
            };
            (client, out)
        })
    }

    fn write_file(&self, path: &FsPath, content: &mut File, mode: u16) -> Result<()> {
        use std::io::Seek;
        content.rewind().map_err(|source| Error::Local {
            action: "read the spill file of",
            path: PathBuf::from(path.as_str()),
            source,
        })?;
        let mode = format!("{:03o}", mode & 0o777);
        let (key, deadline) = (&self.key, self.deadline);
        self.with_client(|mut client| async move {
            // A deadline on progress, not on the whole: a large file takes its time, but a
            // node that stops answering fails the write.
            let last = Cell::new(Instant::now());
            let mut progress = |_| last.set(Instant::now());
            let put = files::put(
                &mut client,
                key,
                content,
                path.as_str(),
                &mode,
                &mut progress,
            );
            let stalled = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if last.get().elapsed() > deadline {
                        break;
                    }
                }
            };
            let out = tokio::select! {
                done = put => done.map(drop).map_err(Error::from),
                () = stalled => Err(Error::Timeout(deadline)),
            };
            (client, out)
        })
    }

    fn mkdir(&self, path: &FsPath, mode: u16) -> Result<()> {
        self.call(map_of([
            ("mkdir", path_unit(path)),
            ("mode", mode_unit(mode)),
        ]))
        .map(drop)
    }

    fn rm(&self, path: &FsPath) -> Result<()> {
        self.call(map_of([("rm", path_unit(path))])).map(drop)
    }

    fn mv(&self, from: &FsPath, to: &FsPath) -> Result<()> {
        self.call(map_of([("mv", path_unit(from)), ("to", path_unit(to))]))
            .map(drop)
    }

    fn chmod(&self, path: &FsPath, mode: u16) -> Result<()> {
        self.call(map_of([
            ("chmod", path_unit(path)),
            ("mode", mode_unit(mode)),
        ]))
        .map(drop)
    }

    /// `status@io.fs` when the service has it and answers `{total free …}` in bytes; else
    /// [`Space::UNKNOWN`].
    fn statfs(&self) -> Result<Space> {
        match self.call(Unit::str("status")) {
            Ok(status) => match (count(&status, "total"), count(&status, "free")) {
                (Some(total), Some(free)) => Ok(Space {
                    total,
                    free: free.min(total),
                }),
                _ => Ok(Space::UNKNOWN),
            },
            Err(Error::Service { .. }) => Ok(Space::UNKNOWN),
            Err(e) => Err(e),
        }
    }

    fn user(&self) -> &str {
        &self.user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
