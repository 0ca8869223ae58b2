//! Files of the cluster tree, streamed through a node's `io.fs` (`docs/fs.md`).
//!
//! [`put`] cuts a local stream into chunks here (the file system's [`Chunker`]), sends each
//! with `{stage:…}` while up to [`DEPTH`] are in flight, then commits the chunk list: the new
//! content becomes visible whole. [`get`] asks for whole chunks, [`READ_BYTES`] a call, up to
//! [`DEPTH`] calls in flight, each for the version `stat` gave, and writes them in order: a
//! file replaced while it is read is an error, never a mix of two versions. Either holds at
//! most a few chunks in memory, whatever the file's size.
//!
//! Both go through a [`Link`]: [`Signed`] is a connection to a node with each call signed as
//! a user; [`KernelLink`] calls the node's own kernel in-process as a user (how a node's
//! programs, through its mounts, and the web desktop reach `io.fs`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};

use futures::stream::{FuturesUnordered, StreamExt};
use plexus_fs::{ChunkParams, ChunkRef, Chunker};
use plexus_identity::Keypair;
use plexus_kernel::{BoxFuture, Cx, Outcome};
use plexus_units::{Map, Unit};

use crate::{sign_with, Client, Error, Reply};

/// Where [`put`] and [`get`] send their calls to `io.fs`, several in flight at once.
pub trait Link {
    /// Starts a call to `io.fs` with `body`; gives its id.
    fn send(&mut self, body: Unit) -> impl Future<Output = Result<u64, Error>>;
    /// The next reply to a call started, with the call's id.
    fn next(&mut self) -> impl Future<Output = Result<(u64, Reply), Error>>;
}

/// The file service's name.
const SERVICE: &str = "io.fs";

/// Calls to `io.fs` through a node's kernel in a user's context ([`Cx`]), several in flight:
/// no socket and no signature, the node vouches for the caller.
pub struct KernelLink {
    cx: Cx,
    next_id: u64,
    in_flight: FuturesUnordered<BoxFuture<'static, (u64, Outcome)>>,
}

impl KernelLink {
    /// Calls made in `cx` (whose author is the user acting).
    pub fn new(cx: Cx) -> KernelLink {
        KernelLink {
            cx,
            next_id: 0,
            in_flight: FuturesUnordered::new(),
        }
    }
}

/// A kernel call's outcome as a reply.
pub fn reply_of(outcome: Outcome) -> Reply {
    match outcome {
        Ok(Some(v)) => Reply::Value(v),
        Ok(None) => Reply::Nothing,
        Err(e) => Reply::Error(e),
    }
}

impl Link for KernelLink {
    async fn send(&mut self, body: Unit) -> Result<u64, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let cx = self.cx.clone();
        self.in_flight.push(Box::pin(async move {
            let out = cx.send(SERVICE, None, body).await;
            (id, out)
        }));
        Ok(id)
    }

    async fn next(&mut self) -> Result<(u64, Reply), Error> {
        match self.in_flight.next().await {
            Some((id, out)) => Ok((id, reply_of(out))),
            None => Err(Error::Closed),
        }
    }
}

/// A connection to a node, each call signed with a user's key.
pub struct Signed<'a> {
    /// The connection.
    pub client: &'a mut Client,
    /// The user's key.
    pub key: &'a Keypair,
}

impl<'a> Signed<'a> {
    /// Calls through `client`, signed with `key`.
    pub fn new(client: &'a mut Client, key: &'a Keypair) -> Signed<'a> {
        Signed { client, key }
    }
}

impl Link for Signed<'_> {
    async fn send(&mut self, body: Unit) -> Result<u64, Error> {
        let stream = Unit::stream(body, "io.fs").map_err(Error::Name)?;
        self.client.send_call(&sign_with(self.key, stream)?).await
    }

    async fn next(&mut self) -> Result<(u64, Reply), Error> {
        self.client.next_reply().await
    }
}

/// Calls in flight at once: enough to keep the nodes' disks and the links busy, few enough
/// that the node serving them holds less than 64 MiB for a file of any size (each call's
/// bytes are held a few times over on their way through it).
pub const DEPTH: usize = 4;
/// The most bytes one read asks for: whole chunks up to this much.
pub const READ_BYTES: u64 = 1 << 20;
/// Files up to this size are sent in one `{write:…}` (the node keeps them inline).
const SMALL: usize = 4096;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Reading the local input failed.
    #[error("cannot read the local file")]
    Read(#[source] std::io::Error),
    /// Writing the local output failed.
    #[error("cannot write the local file")]
    Write(#[source] std::io::Error),
    /// Talking to the node failed.
    #[error(transparent)]
    Client(#[from] Error),
    /// `io.fs` refused: its error code and message.
    #[error("{code}: {message}")]
    Refused {
        /// The error code (`denied`, `not.found`, `fs.changed`, …).
        code: String,
        /// What it said.
        message: String,
    },
    /// The file changed between two reads of it.
    #[error("{0} changed while it was read")]
    Changed(String),
    /// `io.fs` answered with something else than it should.
    #[error("io.fs answered {0}")]
    Unexpected(String),
}

impl TransferError {
    /// The `io.fs` error code, for a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            TransferError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn map_of<const N: usize>(entries: [(&str, Unit); N]) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

/// A reply's value; an error unit is a refusal.
pub fn value(reply: Reply) -> Result<Unit, TransferError> {
    match reply {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => Err(TransferError::Refused {
            code: e.code().to_owned(),
            message: e.message().to_owned(),
        }),
    }
}

/// One call to `io.fs` (with none other in flight on `link`).
pub async fn call(link: &mut impl Link, body: Unit) -> Result<Unit, TransferError> {
    let id = link.send(body).await?;
    loop {
        let (replied, reply) = link.next().await?;
        if replied == id {
            return value(reply);
        }
    }
}

/// A count as an integer unit (counts beyond `i64` do not occur: files are at most 256 GiB).
fn int(n: u64) -> Unit {
    Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A count field of a map.
fn count(u: &Unit, key: &str) -> Option<u64> {
    u.as_map()
        .and_then(|m| m.get_str(key))
        .and_then(Unit::as_int)
        .and_then(|n| n.to_i64())
        .and_then(|n| u64::try_from(n).ok())
}

/// The size and version of the file at `path`.
pub async fn size_and_version(
    link: &mut impl Link,
    path: &str,
) -> Result<(u64, u64), TransferError> {
    let stat = call(link, map_of([("stat", Unit::from(path))])).await?;
    match (count(&stat, "size"), count(&stat, "version")) {
        (Some(size), Some(version)) => Ok((size, version)),
        _ => Err(TransferError::Unexpected(plexus_units::to_text(&stat))),
    }
}

/// Calls in flight, by id: what each carries (bytes of a stage, or the index of a read).
struct InFlight(HashMap<u64, u64>);

impl InFlight {
    /// The next reply to one of the calls: its value, and what it carried.
    async fn next(&mut self, link: &mut impl Link) -> Result<(Unit, u64), TransferError> {
        loop {
            let (id, reply) = link.next().await?;
            if let Some(carried) = self.0.remove(&id) {
                return Ok((value(reply)?, carried));
            }
        }
    }
}

/// Writes what `input` gives to the file `path` (created with `mode`, three octal digits,
/// if new), calling `progress` with the bytes each chunk stored; gives `{path size chunks}`.
pub async fn put(
    link: &mut impl Link,
    input: &mut impl Read,
    path: &str,
    mode: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Unit, TransferError> {
    // A small file goes whole in one write (the node keeps it inline in the metadata).
    let mut head = Vec::with_capacity(SMALL + 1);
    input
        .take(SMALL as u64 + 1)
        .read_to_end(&mut head)
        .map_err(TransferError::Read)?;
    if head.len() <= SMALL {
        progress(head.len() as u64);
        let body = map_of([
            ("write", Unit::from(path)),
            ("data", Unit::Bytes(head.into())),
            ("mode", Unit::from(mode)),
        ]);
        return call(link, body).await;
    }
    let mut input = head.as_slice().chain(input);
    let input = &mut input;
    let mut chunker = Chunker::new(ChunkParams::FILES);
    let mut list = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut ready: Vec<Vec<u8>> = Vec::new();
    let mut in_flight = InFlight(HashMap::with_capacity(DEPTH));
    loop {
        let n = input.read(&mut buf).map_err(TransferError::Read)?;
        if n == 0 {
            break;
        }
        chunker.push(&buf[..n], &mut |c| ready.push(c.to_vec()));
        stage(link, &mut ready, &mut list, &mut in_flight, progress).await?;
    }
    chunker.finish(&mut |c| ready.push(c.to_vec()));
    stage(link, &mut ready, &mut list, &mut in_flight, progress).await?;
    while !in_flight.0.is_empty() {
        let (_, len) = in_flight.next(link).await?;
        progress(len);
    }
    let body = map_of([
        ("commit", Unit::from(path)),
        ("chunks", Unit::Bytes(list.into())),
        ("mode", Unit::from(mode)),
    ]);
    call(link, body).await
}

/// Sends each of `ready` with `{stage:…}` once fewer than [`DEPTH`] calls are in flight,
/// adding it to the chunk `list`.
async fn stage(
    link: &mut impl Link,
    ready: &mut Vec<Vec<u8>>,
    list: &mut Vec<u8>,
    in_flight: &mut InFlight,
    progress: &mut dyn FnMut(u64),
) -> Result<(), TransferError> {
    for chunk in ready.drain(..) {
        while in_flight.0.len() >= DEPTH {
            let (_, len) = in_flight.next(link).await?;
            progress(len);
        }
        let r = ChunkRef::of(&chunk);
        list.extend_from_slice(&r.hash);
        list.extend_from_slice(&r.len.to_le_bytes());
        let id = link
            .send(map_of([("stage", Unit::Bytes(chunk.into()))]))
            .await?;
        in_flight.0.insert(id, u64::from(r.len));
    }
    Ok(())
}

/// Writes the file `path` to `out`, calling `progress` with the bytes of each read; gives
/// its size. The file is read as it was at its first `stat`.
pub async fn get(
    link: &mut impl Link,
    path: &str,
    out: &mut impl Write,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, TransferError> {
    let (size, version) = size_and_version(link, path).await?;
    let list = match call(link, map_of([("chunks", Unit::from(path))])).await? {
        Unit::Bytes(b) => b,
        other => return Err(TransferError::Unexpected(plexus_units::to_text(&other))),
    };
    // Ranges of whole chunks, so no chunk is read twice.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut offset = 0u64;
    for record in list.chunks_exact(36) {
        let len = u64::from(u32::from_le_bytes([
            record[32], record[33], record[34], record[35],
        ]));
        match ranges.last_mut() {
            Some((_, range)) if *range + len <= READ_BYTES => *range += len,
            _ => ranges.push((offset, len)),
        }
        offset += len;
    }
    if ranges.is_empty() && size > 0 {
        // A small file kept inline in the metadata: no chunks, one read.
        ranges.push((0, size));
    } else if offset != size {
        return Err(TransferError::Changed(path.to_owned()));
    }
    let mut in_flight = InFlight(HashMap::with_capacity(DEPTH));
    let mut arrived: BTreeMap<u64, bytes::Bytes> = BTreeMap::new();
    let (mut next, mut written) = (0usize, 0u64);
    while (written as usize) < ranges.len() {
        while in_flight.0.len() < DEPTH && next < ranges.len() {
            let (at, len) = ranges[next];
            let body = map_of([
                ("read", Unit::from(path)),
                ("offset", int(at)),
                ("len", int(len)),
                ("version", int(version)),
            ]);
            let id = link.send(body).await?;
            in_flight.0.insert(id, next as u64);
            next += 1;
        }
        let (got, index) = match in_flight.next(link).await {
            Err(TransferError::Refused { code, .. }) if code == "fs.changed" => {
                return Err(TransferError::Changed(path.to_owned()))
            }
            other => other?,
        };
        let Unit::Bytes(bytes) = got else {
            return Err(TransferError::Unexpected(plexus_units::to_text(&got)));
        };
        if bytes.len() as u64 != ranges[index as usize].1 {
            return Err(TransferError::Changed(path.to_owned()));
        }
        arrived.insert(index, bytes);
        while let Some(bytes) = arrived.remove(&written) {
            out.write_all(&bytes).map_err(TransferError::Write)?;
            progress(bytes.len() as u64);
            written += 1;
        }
    }
    out.flush().map_err(TransferError::Write)?;
    Ok(size)
}
