//! The tree as a node shows it to the programs it runs: [`NodeMounts`] mounts one view of
//! the tree per user (on first need, under the node's data directory), each a
//! [`NodeBackend`]: `io.fs` of the node itself, called in-process as that user through the
//! node's kernel (no socket, no signature: the node vouches for its own programs).
//!
//! A view answers only the processes that act for its user, as
//! [`plexus_services::sys_proc::SysProc::acting_for`] tells from the requesting process and
//! its ancestors: a process the node runs for the user (or one it started), or the node
//! itself while it starts one. Any other process, another user's included, gets `EACCES`.
//! This keeps each program to its user's rights; it is no wall against a hostile program,
//! which runs as the same operating-system user as the node (`docs/fs.md`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_client::files::{self, reply_of, KernelLink};
use plexus_fs::FsPath;
use plexus_identity::PublicKey;
use plexus_kernel::{Cx, Kernel};
use plexus_services::sys_proc::{Acting, ClusterFiles, SysProc};
use plexus_units::Unit;

use crate::backend::bodies::{self, ChunkEnds};
use crate::backend::{Backend, Caller};
use crate::client_backend::{put_within, within};
use crate::error::{Error, Result};
use crate::fs::Settings;
use crate::serve::{cannot_mount, lazy_unmount, Mounted};

/// The file service's name.
const SERVICE: &str = "io.fs";
/// How long a process's answer to "whom do you act for" is kept (a process's ancestry does
/// not change, but a pid may be used again once its process has gone).
const ACTING_KEPT: Duration = Duration::from_secs(1);
/// Most processes whose answer is kept.
const ACTING_MOST: usize = 4096;
/// Threads of each view: a node's programs are fewer than a user's desktop.
const THREADS: usize = 4;

/// Tells whom a process on this machine acts for.
pub type ActingFor = Arc<dyn Fn(u32) -> Acting + Send + Sync>;

/// `io.fs` of this node, called in-process as one user.
pub struct NodeBackend {
    kernel: Kernel,
    rt: tokio::runtime::Handle,
    user: Caller,
    acting_for: ActingFor,
    deadline: Duration,
    /// Recent answers of `acting_for`: pid → (allowed, when).
    acting: Mutex<HashMap<u32, (bool, Instant)>>,
    ends: ChunkEnds,
}

impl NodeBackend {
    /// `io.fs` of the node of `kernel` as `user`, waiting on `rt` (the node's runtime), each
    /// call allowed `deadline`; requests of processes that `acting_for` does not show acting
    /// for `user` (or the node) are refused.
    pub fn new(
        kernel: Kernel,
        rt: tokio::runtime::Handle,
        user: Caller,
        acting_for: ActingFor,
        deadline: Duration,
    ) -> NodeBackend {
        NodeBackend {
            kernel,
            rt,
            user,
            acting_for,
            deadline,
            acting: Mutex::new(HashMap::new()),
            ends: ChunkEnds::default(),
        }
    }

    fn cx(&self) -> Cx {
        self.kernel.context(self.user.key, [0; 32], None, 0)
    }

    /// Whether a request of `pid` may act for this view's user.
    fn allowed(&self, pid: u32) -> bool {
        let kept = |m: &Mutex<HashMap<u32, (bool, Instant)>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&pid)
                .filter(|(_, at)| at.elapsed() < ACTING_KEPT)
                .map(|(allowed, _)| *allowed)
        };
        if let Some(allowed) = kept(&self.acting) {
            return allowed;
        }
        // Read from /proc without the lock: other requests go on meanwhile.
        let allowed = match (self.acting_for)(pid) {
            Acting::Node => true,
            Acting::User(owner) => owner == self.user.key.to_bytes(),
            Acting::Nobody => false,
        };
        let mut kept = self
            .acting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= ACTING_MOST {
            kept.clear();
        }
        kept.insert(pid, (allowed, Instant::now()));
        allowed
    }
}

impl Backend for NodeBackend {
    fn caller(&self, pid: u32) -> Result<Caller> {
        if self.allowed(pid) {
            Ok(self.user.clone())
        } else {
            Err(Error::NoUser(pid))
        }
    }

    fn own_caller(&self) -> &Caller {
        &self.user
    }

    fn call(&self, _who: &Caller, body: Unit) -> Result<Unit> {
        let cx = self.cx();
        let out = self
            .rt
            .block_on(within(self.deadline, cx.send(SERVICE, None, body)))?;
        files::value(reply_of(out)).map_err(Error::from)
    }

    fn reads(&self, _who: &Caller, bodies: Vec<Unit>) -> Result<Vec<Bytes>> {
        let mut link = KernelLink::new(self.cx());
        self.rt.block_on(async {
            within(self.deadline, bodies::read_pieces(&mut link, bodies))
                .await
                .and_then(|read| read)
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
        let mut link = KernelLink::new(self.cx());
        self.rt
            .block_on(put_within(&mut link, content, path, mode, self.deadline))
    }
}

/// The views of the tree a node keeps mounted for the programs it runs, one per user, under
/// one directory.
pub struct NodeMounts {
    kernel: Kernel,
    rt: tokio::runtime::Handle,
    base: PathBuf,
    spill: PathBuf,
    processes: Weak<SysProc>,
    deadline: Duration,
    mounted: Mutex<HashMap<[u8; 32], Mounted>>,
}

impl NodeMounts {
    /// Views of the tree of the node of `kernel` (whose runtime is `rt`), mounted under
    /// `base` on first need, with spill files in `spill`, for the processes `processes` runs;
    /// each call allowed `deadline`. Mounts a previous run left under `base` (a node that
    /// was killed) are undone.
    pub fn new(
        kernel: Kernel,
        rt: tokio::runtime::Handle,
        base: PathBuf,
        spill: PathBuf,
        processes: &Arc<SysProc>,
        deadline: Duration,
    ) -> NodeMounts {
        let base = crate::mountinfo::absolute(&base);
        undo_views_left(&base);
        NodeMounts {
            kernel,
            rt,
            base,
            spill,
            processes: Arc::downgrade(processes),
            deadline,
            mounted: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of `user`'s view.
    pub fn dir_of(&self, user: &PublicKey) -> PathBuf {
        let hex: String = user.to_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.base.join(hex)
    }

    /// Unmounts every view (when the node stops).
    pub fn stop(&self) {
        let mounted = std::mem::take(
            &mut *self
                .mounted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (_, m) in mounted {
            m.stop();
        }
    }

    fn mount(&self, user: &PublicKey) -> std::result::Result<Mounted, String> {
        if let Some(why) = cannot_mount() {
            return Err(why);
        }
        let name = self
            .kernel
            .user_name(user)
            .ok_or_else(|| "the process's owner is not a registered user".to_owned())?;
        let dir = self.dir_of(user);
        if crate::mountinfo::is_mount_point(&dir) {
            // Left by a run of the node that was killed: its server is gone.
            lazy_unmount(&dir).map_err(|e| e.to_string())?;
        }
        create_private_dir(&self.base)
            .and_then(|()| create_private_dir(&dir))
            .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let processes = self.processes.clone();
        let acting_for: ActingFor = Arc::new(move |pid| match processes.upgrade() {
            Some(p) => p.acting_for(pid),
            None => Acting::Nobody,
        });
        let backend = NodeBackend::new(
            self.kernel.clone(),
            self.rt.clone(),
            Caller {
                key: *user,
                name: Arc::from(name.as_str()),
            },
            acting_for,
            self.deadline,
        );
        let mut settings = Settings::new(self.spill.clone());
        settings.threads = THREADS;
        let mounted = Mounted::start(backend, &dir, settings).map_err(|e| e.to_string())?;
        tracing::info!(user = %name, dir = %dir.display(), "the tree is mounted for the user's programs");
        Ok(mounted)
    }
}

/// Undoes the views of the tree that a node killed before it could unmount them left under
/// `base` (its data directory's `fs`); gives how many. Only for a node that is not running.
pub fn undo_views_left(base: &Path) -> usize {
    let base = crate::mountinfo::absolute(base);
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let mut undone = 0;
    for left in crate::mountinfo::mount_points(&text) {
        if left.parent() == Some(base.as_path()) {
            match lazy_unmount(&left) {
                Ok(()) => {
                    tracing::info!(
                        "undid a view left by a node that was killed: {}",
                        left.display()
                    );
                    undone += 1;
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
    undone
}

/// Makes `dir` (its parent must exist) readable by its owner only, if it is missing.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

impl ClusterFiles for NodeMounts {
    fn root_for(&self, user: &PublicKey) -> std::result::Result<PathBuf, String> {
        let mut mounted = self
            .mounted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = mounted.get(&user.to_bytes()) {
            return Ok(m.dir().to_path_buf());
        }
        let m = self.mount(user)?;
        let dir = m.dir().to_path_buf();
        mounted.insert(user.to_bytes(), m);
        Ok(dir)
    }
}
