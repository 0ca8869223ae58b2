//! [`ClientBackend`]: the file service of the local node, reached on its Unix socket and
//! called as a user, each message signed with the user's key (as `plx fs` does).
//!
//! Calls run on a small runtime of the backend's own, each on a connection from a pool (so
//! FUSE threads call at once), and each has a deadline: a node that stops answering makes the
//! call fail (`EIO`), and its connection is dropped.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use plexus_client::{Client, Reply};
use plexus_fs::{ChunkParams, ChunkRef, Chunker, FsPath};
use plexus_identity::Keypair;
use plexus_units::{Map, Unit};

use crate::backend::{count, Backend, Entry, Space};
use crate::error::{Error, Result};

/// The service's name.
const SERVICE: &str = "io.fs";
/// The most idle connections kept for later calls.
const POOL: usize = 8;
/// How long connecting may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// The file service of a node, through its client socket.
pub struct ClientBackend {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    key: Keypair,
    user: String,
    pool: Mutex<Vec<Client>>,
    deadline: Duration,
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

    /// One signed call to `service`; an error unit becomes [`Error::Service`].
    fn call_service(&self, service: &str, body: Unit) -> Result<Unit> {
        let msg = plexus_client::sign_with(&self.key, Unit::stream(body, service)?)?;
        let pooled = self.take_client();
        let deadline = self.deadline;
        let reply = self.rt.block_on(async {
            let mut client = match pooled {
                Some(c) => c,
                None => tokio::time::timeout(CONNECT_DEADLINE, Client::connect(&self.socket))
                    .await
                    .map_err(|_| Error::Timeout(CONNECT_DEADLINE))??,
            };
            // A connection whose call failed or timed out is dropped, not reused: its stream
            // may hold half a frame.
            let reply =
                tokio::time::timeout(deadline, client.call(&msg, None, std::future::pending()))
                    .await
                    .map_err(|_| Error::Timeout(deadline))??;
            self.give_back(client);
            Ok::<Reply, Error>(reply)
        })?;
        match reply {
            Reply::Value(v) => Ok(v),
            Reply::Nothing => Ok(Unit::None),
            Reply::Error(e) => Err(Error::Service {
                code: e.code().to_owned(),
                message: e.message().to_owned(),
            }),
        }
    }

    fn call(&self, body: Unit) -> Result<Unit> {
        self.call_service(SERVICE, body)
    }

    /// Stores one chunk of a file being written; adds its 36-byte record to `list`.
    fn stage(&self, chunk: Vec<u8>, list: &mut Vec<u8>) -> Result<()> {
        let r = ChunkRef::of(&chunk);
        self.call(map_of([("stage", Unit::Bytes(Bytes::from(chunk)))]))?;
        list.extend_from_slice(&r.hash);
        list.extend_from_slice(&r.len.to_le_bytes());
        Ok(())
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

    fn read(&self, path: &FsPath, offset: u64, len: u64, version: u64) -> Result<Bytes> {
        let body = map_of([
            ("read", path_unit(path)),
            ("offset", int(offset)),
            ("len", int(len)),
            ("version", int(version)),
        ]);
        match self.call(body)? {
            Unit::Bytes(b) => Ok(b),
            other => Err(Error::BadReply(format!(
                "read gave {}",
                plexus_units::to_short(&other, 80)
            ))),
        }
    }

    fn write_file(&self, path: &FsPath, content: &mut File, mode: u16) -> Result<()> {
        use std::io::Seek;
        let local = |source| Error::Local {
            action: "read the spill file of",
            path: PathBuf::from(path.as_str()),
            source,
        };
        content.rewind().map_err(local)?;
        let mut chunker = Chunker::new(ChunkParams::FILES);
        let mut list = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut pending: Vec<Vec<u8>> = Vec::new();
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(local(e)),
            };
            chunker.push(&buf[..n], &mut |c| pending.push(c.to_vec()));
            for chunk in pending.drain(..) {
                self.stage(chunk, &mut list)?;
            }
        }
        chunker.finish(&mut |c| pending.push(c.to_vec()));
        for chunk in pending.drain(..) {
            self.stage(chunk, &mut list)?;
        }
        let body = map_of([
            ("commit", path_unit(path)),
            ("chunks", Unit::Bytes(list.into())),
            ("mode", mode_unit(mode)),
        ]);
        self.call(body).map(drop)
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
