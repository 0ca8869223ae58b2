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
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_client::files::{self, Signed};
use plexus_client::Client;
use plexus_fs::FsPath;
use plexus_identity::Keypair;
use plexus_units::Unit;

use crate::backend::bodies::{self, pieces, ChunkEnds};
use crate::backend::{Backend, Caller, Entry, Space};
use crate::error::{Error, Result};

/// The most idle connections kept for later calls.
const POOL: usize = 8;
/// How long connecting may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// The file service of a node, through its client socket.
pub struct ClientBackend {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    key: Keypair,
    caller: Caller,
    pool: Mutex<Vec<Client>>,
    deadline: Duration,
    ends: ChunkEnds,
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
        let caller = Caller {
            key: key.public(),
            name: Arc::from("-"),
        };
        let mut backend = ClientBackend {
            rt,
            socket,
            key,
            caller,
            pool: Mutex::new(Vec::new()),
            deadline,
            ends: ChunkEnds::default(),
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
        backend.caller.name = Arc::from(name);
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
                Ok(Ok(r)) => files::value(r).map_err(Error::from),
                Ok(Err(e)) => Err(Error::Client(e)),
                Err(e) => Err(e),
            };
            (client, out)
        })
    }

    fn call(&self, body: Unit) -> Result<Unit> {
        self.call_service("io.fs", body)
    }
}

/// `fut`, or [`Error::Timeout`] once `deadline` has passed.
pub(crate) async fn within<T>(deadline: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| Error::Timeout(deadline))
}

/// Writes `content` to `path` through `link`, with a deadline on progress, not on the
/// whole: a large file takes its time, but a node that stops answering fails the write.
pub(crate) async fn put_within(
    link: &mut impl files::Link,
    content: &mut File,
    path: &FsPath,
    mode: u16,
    deadline: Duration,
) -> Result<()> {
    use std::io::Seek;
    content.rewind().map_err(|source| Error::Local {
        action: "read the spill file of",
        path: PathBuf::from(path.as_str()),
        source,
    })?;
    let mode = format!("{:03o}", mode & 0o777);
    let last = Cell::new(Instant::now());
    let mut progress = |_| last.set(Instant::now());
    let put = files::put(link, content, path.as_str(), &mode, &mut progress);
    let stalled = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if last.get().elapsed() > deadline {
                break;
            }
        }
    };
    tokio::select! {
        done = put => done.map(drop).map_err(Error::from),
        () = stalled => Err(Error::Timeout(deadline)),
    }
}

impl Backend for ClientBackend {
    /// Every request acts as the mount's one user (the kernel lets only the mounting user's
    /// processes in).
    fn caller(&self, _pid: u32) -> Result<Caller> {
        Ok(self.caller.clone())
    }

    fn stat(&self, _who: &Caller, path: &FsPath) -> Result<Entry> {
        Entry::from_unit(&self.call(bodies::stat(path))?)
    }

    fn list(&self, _who: &Caller, path: &FsPath) -> Result<Vec<Entry>> {
        bodies::entries(&self.call(bodies::ls(path))?)
    }

    fn read(
        &self,
        _who: &Caller,
        path: &FsPath,
        offset: u64,
        len: u64,
        version: u64,
    ) -> Result<Vec<Bytes>> {
        if len == 0 {
            // Nothing to read: the call checks the right to read, and the version.
            self.call(bodies::read(path, offset, 0, version))?;
            return Ok(Vec::new());
        }
        let ends = self
            .ends
            .of(path, version, || self.call(bodies::chunks(path)))?;
        let wanted = pieces(offset, offset.saturating_add(len), &ends, files::READ_BYTES);
        let reads = wanted
            .iter()
            .map(|&(at, n)| bodies::read(path, at, n, version))
            .collect();
        let (key, deadline) = (&self.key, self.deadline);
        self.with_client(|mut client| async move {
            let mut link = Signed::new(&mut client, key);
            let read = bodies::read_pieces(&mut link, reads);
            let out = within(deadline, read).await.and_then(|r| r);
            (client, out)
        })
    }

    fn write_file(
        &self,
        _who: &Caller,
        path: &FsPath,
        content: &mut File,
        mode: u16,
    ) -> Result<()> {
        let (key, deadline) = (&self.key, self.deadline);
        self.with_client(|mut client| async move {
            let mut link = Signed::new(&mut client, key);
            let out = put_within(&mut link, content, path, mode, deadline).await;
            (client, out)
        })
    }

    fn mkdir(&self, _who: &Caller, path: &FsPath, mode: u16) -> Result<()> {
        self.call(bodies::mkdir(path, mode)).map(drop)
    }

    fn rm(&self, _who: &Caller, path: &FsPath) -> Result<()> {
        self.call(bodies::rm(path)).map(drop)
    }

    fn mv(&self, _who: &Caller, from: &FsPath, to: &FsPath) -> Result<()> {
        self.call(bodies::mv(from, to)).map(drop)
    }

    fn chmod(&self, _who: &Caller, path: &FsPath, mode: u16) -> Result<()> {
        self.call(bodies::chmod(path, mode)).map(drop)
    }

    /// `status@io.fs` when the service has it and answers `{total free …}` in bytes; else
    /// [`Space::UNKNOWN`].
    fn statfs(&self) -> Result<Space> {
        match self.call(Unit::str("status")) {
            Ok(status) => Ok(bodies::space(&status)),
            Err(Error::Service { .. }) => Ok(Space::UNKNOWN),
            Err(e) => Err(e),
        }
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
