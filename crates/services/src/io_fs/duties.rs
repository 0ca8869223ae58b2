//! The file system's background duties and the commands that report on them.
//!
//! - **Repair**, on the node that leads (the cluster's Raft leader, or a single node): every
//!   `repair_every`, each chunk row is judged by [`plan`]; a chunk short of copies is pulled by
//!   the nodes chosen for it from a live home (rate-limited), and its homes are updated in the
//!   replicated state, dropping homes on nodes lost for good.
//! - **Sweep**, on every node: every `sweep_every`, each copy in this node's chunk store is
//!   judged by [`sweep`]: a copy no file names, or one not listed here while the chunk has
//!   enough copies elsewhere, is deleted once older than `unlisted_age` (so a write between its
//!   stages and its commit keeps its chunks); a good copy of a chunk short of copies, by the
//!   roster as well as by this node's picture of health, is listed.
//! - `status` counts chunks by how their copies stand; `scrub` reads every copy this node is
//!   listed for and replaces missing or bad ones from good copies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plexus_fs::replicas::{copies, plan, sweep, Repair, Sweep};
use plexus_fs::{ChunkRef, FsPath};
use plexus_kernel::{code, Cx, Error, Kernel};
use plexus_store::chunks::ChunkError;
use plexus_store::fs::{ChunkRow, FsOp, Homes};
use plexus_units::Unit;

use super::{fs_error, now_ms, IoFs, NAME, NODE_ACTOR};
use crate::forms::{int_u64, map_of};

/// Chunk rows read at a time.
const PAGE: usize = 512;
/// How long a chunk moved aside as corrupt is kept for someone to look at.
const CORRUPT_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// What this node's duties have done since it started.
#[derive(Clone, Debug, Default)]
pub struct Duties {
    /// Repair passes run (while leading).
    pub passes: u64,
    /// Copies repair made, and their bytes.
    pub copied: u64,
    /// Bytes of those copies.
    pub copied_bytes: u64,
    /// Copies repair tried and could not make.
    pub copy_failures: u64,
    /// Chunks short of copies at the end of the last pass.
    pub short: u64,
    /// When the last pass ended.
    pub last_pass: Option<Instant>,
    /// Copies the sweep deleted.
    pub swept: u64,
    /// Copies the sweep listed again.
    pub listed: u64,
    /// Missing or bad copies of this node replaced by reads and scrubs.
    pub mended: u64,
}

/// Runs the duties of `fs` for as long as the runtime does.
pub(super) async fn run(fs: Arc<IoFs>, kernel: Kernel) {
    let cx = kernel.context(*kernel.admin(), [0; 32], None, 0);
    let mut repair = tokio::time::interval(fs.tuning.repair_every);
    repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweeping = tokio::time::interval(fs.tuning.sweep_every);
    sweeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first sweep waits a period: a node just started is still catching up.
    sweeping.tick().await;
    loop {
        tokio::select! {
            _ = repair.tick() => {
                if fs.meta.leads() {
                    fs.repair_pass(&cx).await;
                }
            }
            _ = sweeping.tick() => fs.sweep_pass().await,
        }
    }
}

impl IoFs {
    /// One pass of repair over every chunk row.
    async fn repair_pass(&self, cx: &Cx) {
        let picture = self.picture();
        let target = picture.target();
        let mut after = None;
        let mut short = 0u64;
        loop {
            let page = match self.meta.chunk_rows(after, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!("repair waits for the tree: {e}");
                    return;
                }
            };
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            let mut changes = Vec::new();
            for (hash, row) in &page {
                match plan(hash, u64::from(row.len), &row.homes, &picture) {
                    Repair::Copy { from, to, drop } => {
                        let added = self.copy_to(cx, *hash, row, &from, to).await;
                        let enough = copies(&row.homes, &picture).counted() + added.len() >= target;
                        if !enough {
                            short += 1;
                        }
                        let drop = if enough { drop } else { Vec::new() };
                        if !added.is_empty() || !drop.is_empty() {
                            changes.push(Homes {
                                hash: *hash,
                                add: added,
                                drop,
                            });
                        }
                    }
                    Repair::Forget { drop } => changes.push(Homes {
                        hash: *hash,
                        add: Vec::new(),
                        drop,
                    }),
                    Repair::Stuck => short += 1,
                    Repair::Enough | Repair::Wait | Repair::Lost => {}
                }
            }
            if !changes.is_empty() {
                let op = FsOp::Rehome { changes };
                // Only as the leader: the changes follow this node's picture, and a leader cut
                // off from the others still believes it leads; its write must not be passed on
                // to the next leader once it steps down.
                if let Err(e) = self.meta.apply_leading(NODE_ACTOR, now_ms(), op).await {
                    tracing::warn!("repair could not record new copies: {e}");
                }
            }
            if !self.meta.leads() {
                break;
            }
        }
        self.note(|d| {
            d.passes += 1;
            d.short = short;
            d.last_pass = Some(Instant::now());
        });
    }

    /// Asks each of `to` to pull the chunk from one of `from`, at the repair rate; gives the
    /// nodes that now keep it.
    async fn copy_to(
        &self,
        cx: &Cx,
        hash: [u8; 32],
        row: &ChunkRow,
        from: &[String],
        to: Vec<String>,
    ) -> Vec<String> {
        let chunk = ChunkRef { hash, len: row.len };
        let mut added = Vec::new();
        for node in to {
            let msg = map_of([
                ("pull", Unit::from(chunk.hex())),
                ("len", int_u64(u64::from(row.len))),
                (
                    "from",
                    Unit::List(from.iter().map(|n| Unit::from(n.clone())).collect()),
                ),
            ]);
            match cx.send(NAME, Some(&node), msg).await {
                Ok(_) => {
                    self.note(|d| {
                        d.copied += 1;
                        d.copied_bytes += u64::from(row.len);
                    });
                    added.push(node);
                }
                Err(e) => {
                    tracing::debug!(chunk = %chunk.hex(), %node, "repair copy failed: {e}");
                    self.note(|d| d.copy_failures += 1);
                }
            }
            let rate = self.tuning.repair_rate.max(1) as f64;
            tokio::time::sleep(Duration::from_secs_f64(f64::from(row.len) / rate)).await;
        }
        added
    }

    /// One sweep of this node's chunk store.
    async fn sweep_pass(&self) {
        // A read through the tree first, so the rows below are current.
        if self.meta.stat(NODE_ACTOR, FsPath::root()).await.is_err() {
            return;
        }
        let store = self.chunks.clone();
        let held = match tokio::task::spawn_blocking(move || store.list()).await {
            Ok(Ok(held)) => held,
            _ => return,
        };
        let picture = self.picture();
        let local = self.directory.local();
        let age = self.tuning.unlisted_age;
        for batch in held.chunks(PAGE) {
            let hashes = batch.iter().map(|h| h.chunk.hash).collect();
            let Ok(rows) = self.meta.chunk_rows_of(hashes).await else {
                return;
            };
            let mut delete = Vec::new();
            let mut register = Vec::new();
            for (held, row) in batch.iter().zip(rows) {
                let old = held.modified.elapsed().is_ok_and(|e| e >= age);
                let homes = row.as_ref().map(|r| r.homes.as_slice());
                match sweep(&local, homes, old, &picture) {
                    Sweep::Keep => {}
                    Sweep::Delete => delete.push(held.chunk.hash),
                    Sweep::Register => {
                        if let Some(row) = row {
                            register.push(ChunkRef {
                                hash: held.chunk.hash,
                                len: row.len,
                            });
                        }
                    }
                }
            }
            let store = self.chunks.clone();
            let done = tokio::task::spawn_blocking(move || {
                let swept = delete
                    .iter()
                    .filter(|h| store.remove_if_older(h, age).unwrap_or(false))
                    .count();
                // Only a good copy is listed.
                let good: Vec<ChunkRef> = register
                    .into_iter()
                    .filter(|c| store.get(c).is_ok())
                    .collect();
                (swept, good)
            })
            .await;
            let Ok((swept, good)) = done else { return };
            let listed = good.len();
            if !good.is_empty() {
                let changes = good
                    .into_iter()
                    .map(|c| Homes {
                        hash: c.hash,
                        add: vec![local.clone()],
                        drop: Vec::new(),
                    })
                    .collect();
                let op = FsOp::Rehome { changes };
                if let Err(e) = self.meta.apply(NODE_ACTOR, now_ms(), op).await {
                    tracing::debug!("the sweep could not list copies: {e}");
                }
            }
            self.note(|d| {
                d.swept += swept as u64;
                d.listed += listed as u64;
            });
        }
        self.chunks.forget_corrupt(CORRUPT_KEPT);
    }

    /// `status`: chunks by how their copies stand, each node's share and disk, usable space,
    /// and what repair has done.
    pub(super) async fn status(&self) -> Result<Unit, Error> {
        // A read through the tree first, so the rows below are current.
        self.meta
            .stat(NODE_ACTOR, FsPath::root())
            .await
            .map_err(fs_error)?;
        let picture = self.picture();
        let target = picture.target();
        let (mut chunks, mut bytes, mut stored) = (0u64, 0u64, 0u64);
        let (mut ok, mut short, mut waiting, mut lost) = (0u64, 0u64, 0u64, 0u64);
        let mut per_node: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self.meta.chunk_rows(after, 4096).await.map_err(fs_error)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (hash, row) in &page {
                let len = u64::from(row.len);
                chunks += 1;
                bytes += len;
                stored += len * row.homes.len() as u64;
                for home in &row.homes {
                    let n = per_node.entry(home.clone()).or_default();
                    n.0 += 1;
                    n.1 += len;
                }
                match plan(hash, len, &row.homes, &picture) {
                    Repair::Enough | Repair::Forget { .. } => ok += 1,
                    Repair::Copy { .. } | Repair::Stuck => short += 1,
                    Repair::Wait => waiting += 1,
                    Repair::Lost => lost += 1,
                }
            }
        }
        let view = self.directory.view();
        let local = self.directory.local();
        let (mut total, mut free) = (0u64, 0u64);
        let mut nodes = Vec::new();
        let mut names: Vec<String> = view.nodes.keys().cloned().collect();
        names.extend(
            per_node
                .keys()
                .filter(|n| !view.nodes.contains_key(*n))
                .cloned(),
        );
        for name in names {
            let v = view.nodes.get(&name);
            let up = v.is_some_and(|v| v.up);
            let disk = v.and_then(|v| v.disk).or_else(|| {
                (name == local)
                    .then(|| crate::sys_hw::disk_space(self.chunks.dir()))
                    .flatten()
                    .map(|d| plexus_sched::Disk {
                        free: d.free,
                        total: d.total,
                    })
            });
            if let (true, Some(d)) = (up, disk) {
                total += d.total;
                free += d.free;
            }
            let (held, held_bytes) = per_node.get(&name).copied().unwrap_or_default();
            let mut node = vec![
                ("node", Unit::from(name.clone())),
                ("up", Unit::Bool(up)),
                ("member", Unit::Bool(v.is_some())),
                ("chunks", int_u64(held)),
                ("bytes", int_u64(held_bytes)),
            ];
            if let Some(d) = disk {
                node.push(("free", int_u64(d.free)));
                node.push(("total", int_u64(d.total)));
            }
            nodes.push(map_of(node));
        }
        let duties = self.duties.lock().map(|d| d.clone()).unwrap_or_default();
        let divisor = target.max(1) as u64;
        let mut repair = vec![
            ("leader", Unit::Bool(self.meta.leads())),
            ("copied", int_u64(duties.copied)),
            ("copied.bytes", int_u64(duties.copied_bytes)),
            ("failures", int_u64(duties.copy_failures)),
            ("grace.ms", int_u64(super::ms(self.tuning.grace))),
            ("rate", int_u64(self.tuning.repair_rate)),
        ];
        if let Some(at) = duties.last_pass {
            repair.push(("last.pass.ms", int_u64(super::ms(at.elapsed()))));
        }
        Ok(map_of([
            ("replicas", int_u64(target as u64)),
            ("chunks", int_u64(chunks)),
            ("bytes", int_u64(bytes)),
            ("stored", int_u64(stored)),
            ("ok", int_u64(ok)),
            ("short", int_u64(short)),
            ("waiting", int_u64(waiting)),
            ("lost", int_u64(lost)),
            ("total", int_u64(total / divisor)),
            ("free", int_u64(free / divisor)),
            ("nodes", Unit::List(nodes)),
            ("repair", map_of(repair)),
            (
                "here",
                map_of([
                    ("node", Unit::from(local)),
                    ("swept", int_u64(duties.swept)),
                    ("listed", int_u64(duties.listed)),
                    ("mended", int_u64(duties.mended)),
                ]),
            ),
        ]))
    }

    /// `scrub`: reads and checks every copy this node is listed for; a missing or bad one is
    /// fetched again from a good copy.
    pub(super) async fn scrub(&self, cx: &Cx) -> Result<Unit, Error> {
        let local = self.directory.local();
        let (mut checked, mut bytes, mut bad, mut mended, mut failed) = (0u64, 0u64, 0, 0, 0);
        let mut after = None;
        loop {
            let page = self.meta.chunk_rows(after, PAGE).await.map_err(fs_error)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (hash, row) in page.iter().filter(|(_, r)| r.homes.contains(&local)) {
                cx.meter().check()?;
                let chunk = ChunkRef {
                    hash: *hash,
                    len: row.len,
                };
                let store = self.chunks.clone();
                let got = tokio::task::spawn_blocking(move || store.get(&chunk))
                    .await
                    .map_err(|e| Error::internal(format!("reading a chunk: {e}")))?;
                checked += 1;
                match got {
                    Ok(b) => bytes += b.len() as u64,
                    Err(ChunkError::Missing(_) | ChunkError::Corrupt(_)) => {
                        bad += 1;
                        let sources = self.sources(&row.homes, false);
                        match self.fetch(cx, chunk, &sources).await {
                            Ok(good) => {
                                self.store_here(chunk, good.into()).await?;
                                self.note(|d| d.mended += 1);
                                mended += 1;
                                bytes += u64::from(row.len);
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    Err(e) => return Err(Error::new(code::STORAGE, e.to_string())),
                }
            }
        }
        Ok(map_of([
            ("node", Unit::from(local)),
            ("checked", int_u64(checked)),
            ("bytes", int_u64(bytes)),
            ("bad", int_u64(bad)),
            ("mended", int_u64(mended)),
            ("failed", int_u64(failed)),
        ]))
    }
}
