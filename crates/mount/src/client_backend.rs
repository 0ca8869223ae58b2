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

use crate::backend::bodies::{self, ChunkEnds};
use crate::backend::{Backend, Caller};
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

    fn own_caller(&self) -> &Caller {
        &self.caller
    }

    fn call(&self, _who: &Caller, body: Unit) -> Result<Unit> {
        self.call_service("io.fs", body)
    }

    fn reads(&self, _who: &Caller, bodies: Vec<Unit>) -> Result<Vec<Bytes>> {
        let (key, deadline) = (&self.key, self.deadline);
        self.with_client(|mut client| async move {
            let mut link = Signed::new(&mut client, key);
            let read = bodies::read_pieces(&mut link, bodies);
            let out = within(deadline, read).await.and_then(|r| r);
            (client, out)
        })
    }

    fn chunk_ends(&self, who: &Caller, path: &FsPath, version: u64) -> Result<Arc<[u64]>> {
        self.ends
            .of(path, version, || self.call(who, bodies::chunks(path)))
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
}
