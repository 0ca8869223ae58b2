//! `.osh` `checkpoint (s)`: a program that saves its state finds it again when it restarts,
//! on this node or another.
//!
//! The program is told where: [`PATH_ENV`] names a file on its node, [`EVERY_ENV`] how
//! often to save (seconds). It writes its state there (best to a temporary file renamed over
//! it, so the file is always whole) and reads it back when it starts. Every `s` seconds the
//! node copies the file, when it changed, into the cluster's file tree
//! ([`cluster_path`], owned by the node's admin, mode 600), and once more when the run ends.
//! Before each start, wherever the process is placed, the node puts the last copy back.
//! A program that never writes the file restarts from its beginning, and its log says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use plexus_kernel::{code, Cx, Kernel};
use plexus_store::ProcId;
use plexus_units::Unit;

use crate::forms::map_of;

/// The variable naming the file a program saves its state to.
pub const PATH_ENV: &str = "PLX_CHECKPOINT";
/// The variable saying how often, in seconds.
pub const EVERY_ENV: &str = "PLX_CHECKPOINT_EVERY";
/// The largest state kept: larger files are not copied, and the log says so.
pub const MAX_STATE: u64 = 16 << 20;
/// Where the cluster keeps the states.
const DIR: &str = "/.plexus/checkpoints";

/// Where the cluster keeps the state of process `id`.
pub fn cluster_path(id: ProcId) -> String {
    format!("{DIR}/{id}")
}

/// The file on this node a run of `id` saves to, under the supervisor's `state_dir`.
pub fn local_path(state_dir: &Path, id: ProcId) -> PathBuf {
    state_dir.join("checkpoints").join(id.as_str())
}

/// The environment entries of a run that saves to `local` every `every` seconds.
pub fn env(local: &Path, every: u64) -> [String; 2] {
    [
        format!("{PATH_ENV}={}", local.display()),
        format!("{EVERY_ENV}={every}"),
    ]
}

/// The node's own context: the states are the node's to keep, not the user's to see.
fn node_cx(kernel: &Kernel) -> Cx {
    kernel.context(*kernel.admin(), [0; 32], None, 0)
}

/// Puts the last state the cluster keeps of `id` at `local` (or removes a stale file when
/// there is none): what the run's log says about it.
pub async fn restore(kernel: &Kernel, id: ProcId, local: &Path) -> String {
    if let Some(dir) = local.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return format!("checkpoint: cannot make {}: {e}", dir.display());
        }
    }
    let cx = node_cx(kernel);
    let read = map_of([("read", Unit::str(&cluster_path(id)))]);
    match cx.send("io.fs", None, read).await {
        Ok(Some(Unit::Bytes(state))) => match std::fs::write(local, &state) {
            Ok(()) => format!(
                "checkpoint: restored the state saved last ({} bytes)",
                state.len()
            ),
            Err(e) => format!("checkpoint: cannot write {}: {e}", local.display()),
        },
        Err(e) if e.code() == code::NOT_FOUND => {
            let _ = std::fs::remove_file(local);
            format!(
                "checkpoint: no state saved yet; save it to ${PATH_ENV} to start from it \
                 after a restart (a program that does not starts from its beginning)"
            )
        }
        Ok(_) => "checkpoint: the saved state is not a file's bytes; starting anew".to_owned(),
        Err(e) => format!(
            "checkpoint: the saved state cannot be read ({}); starting anew",
            e.message()
        ),
    }
}

/// What the file looked like when last copied.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
}

fn seen(local: &Path) -> Option<Seen> {
    let meta = std::fs::metadata(local).ok()?;
    Some(Seen {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Copies `local` into the cluster when it changed since `last`; what to log, if anything.
async fn save(
    kernel: &Kernel,
    id: ProcId,
    local: &Path,
    last: &mut Option<Seen>,
) -> Option<String> {
    let now = seen(local)?;
    if *last == Some(now) {
        return None;
    }
    *last = Some(now);
    if now.len > MAX_STATE {
        return Some(format!(
            "checkpoint: the state is {} bytes, more than the {MAX_STATE} kept; not saved",
            now.len
        ));
    }
    let state = std::fs::read(local).ok()?;
    let cx = node_cx(kernel);
    let write = map_of([
        ("write", Unit::str(&cluster_path(id))),
        ("data", Unit::Bytes(Bytes::from(state))),
        ("mode", Unit::str("600")),
    ]);
    let mut written = cx.send("io.fs", None, write.clone()).await;
    if written.as_ref().is_err_and(|e| e.code() == code::NOT_FOUND) {
        // The first state the cluster keeps: its directories are made then.
        for dir in ["/.plexus", DIR] {
            let mkdir = map_of([("mkdir", Unit::str(dir)), ("mode", Unit::str("700"))]);
            let _ = cx.send("io.fs", None, mkdir).await;
        }
        written = cx.send("io.fs", None, write).await;
    }
    match written {
        Ok(_) => None,
        Err(e) => {
            // Tried again at the next turn.
            *last = None;
            Some(format!(
                "checkpoint: the state could not be saved: {}",
                e.message()
            ))
        }
    }
}

/// Copies `local` into the cluster every `every` seconds while it changes, and once more
/// when `ended` resolves; `log` takes what is worth saying (each thing once in a row).
pub async fn keep(
    kernel: Kernel,
    id: ProcId,
    local: PathBuf,
    every: u64,
    ended: impl std::future::Future<Output = ()>,
    log: impl Fn(&str),
) {
    let mut last = seen(&local);
    let mut said: Option<String> = None;
    let mut say = |text: Option<String>| {
        if let Some(text) = text {
            if said.as_ref() != Some(&text) {
                log(&text);
                said = Some(text);
            }
        }
    };
    // The restored file is the cluster's already.
    let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
    tick.tick().await;
    tokio::pin!(ended);
    loop {
        tokio::select! {
            _ = tick.tick() => say(save(&kernel, id, &local, &mut last).await),
            () = &mut ended => {
                say(save(&kernel, id, &local, &mut last).await);
                return;
            }
        }
    }
}
