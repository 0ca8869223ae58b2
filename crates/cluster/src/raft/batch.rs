//! Group commit above raft: concurrent writes on the leader share one log entry.
//!
//! openraft 0.9 appends one entry per client write, and each entry costs the leader a trip
//! through raft's core, a log append, and its own AppendEntries to every follower, each of
//! which waits for its fsync before it answers. Instead a write joins a queue; up to
//! [`MAX_PROPOSERS`] proposer tasks take everything queued (up to [`MAX_BATCH`] commands or
//! [`MAX_BATCH_BYTES`]) and propose it as one [`Command::Batch`] entry, whose
//! [`Response::Batch`] gives each write its own outcome.
//! A lone write goes as itself, without waiting for company: there is no timer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError as OrError};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::types::{Command, Response, TypeConfig};
use super::{MembershipError, RaftError};

/// Proposals in flight at once (raft pipelines the second while the first replicates).
pub(crate) const MAX_PROPOSERS: usize = 2;
/// Commands in one batch entry.
pub(crate) const MAX_BATCH: usize = 1024;
/// About this many bytes of commands in one batch entry (a larger command goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 4 << 20;

/// What became of one queued write.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Committed and applied: the command's own response.
    Done(Response),
    /// This node is not the leader: nothing was appended.
    NotLeader,
    /// Raft gave no answer within the write timeout: it may or may not be applied later.
    TimedOut,
    /// Raft failed.
    Failed(RaftError),
}

struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    proposers: usize,
}

/// The leader-side write queue of one node.
#[derive(Default)]
pub(crate) struct Batcher {
    queue: Arc<Mutex<Queue>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// Roughly how many bytes `cmd` takes in an entry.
fn weight(cmd: &Command) -> usize {
    match cmd {
        Command::Save { path, value } => {
            value.len() + path.iter().map(|p| p.len() + 2).sum::<usize>()
        }
        Command::Batch(cmds) => cmds.iter().map(weight).sum(),
        _ => 64,
    }
}

impl Batcher {
    /// Proposes `cmd` through `raft` (with others queued meanwhile) and waits for its
    /// outcome until `deadline`.
    pub(crate) async fn write(
        &self,
        raft: &openraft::Raft<TypeConfig>,
        timeout: Duration,
        cmd: Command,
        deadline: Instant,
    ) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let start = {
            let Ok(mut q) = self.queue.lock() else {
                return Outcome::Failed(RaftError::Storage("the write queue failed".into()));
            };
            q.waiting.push(Pending { cmd, reply });
            let start = q.proposers < MAX_PROPOSERS;
            if start {
                q.proposers += 1;
            }
            start
        };
        if start {
            tokio::spawn(propose(self.queue.clone(), raft.clone(), timeout));
        }
        match tokio::time::timeout_at(deadline, outcome).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(o)) => o,
            Ok(Err(_)) => Outcome::Failed(RaftError::Shutdown),
        }
    }
}

/// Takes the next batch off the queue, or leaves (one proposer fewer) if it is empty.
fn next_batch(queue: &Mutex<Queue>) -> Option<Vec<Pending>> {
    let mut q = queue.lock().ok()?;
    if q.waiting.is_empty() {
        q.proposers -= 1;
        return None;
    }
    let mut bytes = 0;
    let mut take = 0;
    for p in &q.waiting {
        bytes += weight(&p.cmd);
        if take > 0 && (take == MAX_BATCH || bytes > MAX_BATCH_BYTES) {
            break;
        }
        take += 1;
    }
    Some(q.waiting.drain(..take).collect())
}

async fn propose(queue: Arc<Mutex<Queue>>, raft: openraft::Raft<TypeConfig>, timeout: Duration) {
    while let Some(batch) = next_batch(&queue) {
        propose_one(&raft, timeout, batch).await;
    }
}

/// Proposes one batch and answers each of its writes.
async fn propose_one(
    raft: &openraft::Raft<TypeConfig>,
    timeout: Duration,
    mut batch: Vec<Pending>,
) {
    let one = batch.len() == 1;
    let cmd = if one {
        match batch.first() {
            Some(p) => p.cmd.clone(),
            None => return,
        }
    } else {
        Command::Batch(batch.iter().map(|p| p.cmd.clone()).collect())
    };
    let result = tokio::time::timeout(timeout, raft.client_write(cmd)).await;
    let shared = match result {
        Err(_) => Some(Outcome::TimedOut),
        Ok(Ok(resp)) => match resp.data {
            Response::Batch(rs) if !one && rs.len() == batch.len() => {
                for (p, r) in batch.drain(..).zip(rs) {
                    let _ = p.reply.send(Outcome::Done(r));
                }
                None
            }
            r if one => {
                for p in batch.drain(..) {
                    let _ = p.reply.send(Outcome::Done(r.clone()));
                }
                None
            }
            other => Some(Outcome::Failed(RaftError::Protocol(format!(
                "a batch of {} writes was answered with {other:?}",
                batch.len()
            )))),
        },
        Ok(Err(OrError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
            Some(Outcome::NotLeader)
        }
        Ok(Err(OrError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            Some(Outcome::Failed(MembershipError::from(e).into()))
        }
        Ok(Err(OrError::Fatal(f))) => Some(Outcome::Failed(super::handle::fatal(f))),
    };
    if let Some(outcome) = shared {
        for p in batch {
            let _ = p.reply.send(outcome.clone());
        }
    }
}
