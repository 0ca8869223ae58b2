//! Mounting: [`serve`] mounts a [`Backend`] and serves it until it is unmounted or the
//! process is told to stop; [`Mounted::start`] mounts one served in the background, until
//! [`Mounted::stop`]; [`unmount`] undoes a mount.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::fs::{PlexusFs, Settings};

/// The helper that mounts and unmounts FUSE file systems for users other than root.
pub const FUSERMOUNT: &str = "fusermount3";

/// Mounts `backend` on `dir` (an empty directory) and serves it until the mount goes away
/// (`plx umount`, `fusermount3 -u`) or the process gets SIGTERM or SIGINT, which unmount it.
pub fn serve<B: Backend>(backend: B, dir: &Path, settings: Settings) -> Result<()> {
    let background = mount(backend, dir, settings)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let finished = || background.guard.is_finished();
    if wait(&rt, &finished) == Waited::Signal {
        tracing::info!("stopping: unmounting {}", dir.display());
        // A busy one is served until its last user lets go, or a second signal.
        unmount_or_detach(dir);
        wait(&rt, &finished);
    }
    tracing::info!("unmounted from {}", dir.display());
    // Dropping the session would unmount its directory again, and by then that may be
    // another mount of the same directory: it is left to the process's exit instead.
    std::mem::forget(background);
    Ok(())
}

/// Mounts `backend` on `dir`, served by threads of its own.
fn mount<B: Backend>(backend: B, dir: &Path, settings: Settings) -> Result<BackgroundSession> {
    let mount_error = |source| Error::Mount {
        dir: dir.to_path_buf(),
        source,
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("plexus".into()),
        MountOption::Subtype("plx".into()),
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.n_threads = Some(settings.threads.max(1));
    let session =
        fuser::Session::new(PlexusFs::new(backend, settings), dir, &config).map_err(mount_error)?;
    let background = session.spawn().map_err(mount_error)?;
    tracing::info!("mounted on {}", dir.display());
    Ok(background)
}

/// A mount served in the background by this process.
pub struct Mounted {
    dir: PathBuf,
    session: Option<BackgroundSession>,
}

impl Mounted {
    /// Mounts `backend` on `dir` (an empty directory) and serves it until [`Mounted::stop`].
    pub fn start<B: Backend>(backend: B, dir: &Path, settings: Settings) -> Result<Mounted> {
        Ok(Mounted {
            dir: dir.to_path_buf(),
            session: Some(mount(backend, dir, settings)?),
        })
    }

    /// Where it is mounted.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unmounts it: at once if no program uses it, else detached (it goes away when the last
    /// one lets go).
    pub fn stop(mut self) {
        self.unmount();
    }

    fn unmount(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        unmount_or_detach(&self.dir);
        // Dropping the session would unmount the directory again (by then perhaps another
        // mount of it); its threads end as the kernel ends the connection.
        std::mem::forget(session);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}

#[derive(PartialEq, Eq)]
enum Waited {
    Finished,
    Signal,
}

/// Waits until `finished()` holds, or SIGTERM or SIGINT comes.
fn wait(rt: &tokio::runtime::Runtime, finished: &dyn Fn() -> bool) -> Waited {
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return Waited::Signal;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return Waited::Signal,
                _ = int.recv() => return Waited::Signal,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if finished() {
                        return Waited::Finished;
                    }
                }
            }
        }
    })
}

/// Whether the process runs as root (which mounts and unmounts without the helper).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `fusermount3 ARGS DIR`; its standard error is the error.
fn fusermount(args: &[&str], dir: &Path) -> std::io::Result<()> {
    let out = Command::new(FUSERMOUNT)
        .args(args)
        .arg("--")
        .arg(dir)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Unmounts the FUSE mount on `dir`: with `fusermount3 -u`, or as root with umount(2) when
/// the helper is missing. Fails if a program still works in it.
pub fn unmount(dir: &Path) -> Result<()> {
    let done = match fusermount(&["-u"], dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_root() => {
            rustix::mount::unmount(dir, rustix::mount::UnmountFlags::empty())
                .map_err(std::io::Error::from)
        }
        other => other,
    };
    done.map_err(|source| Error::Unmount {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Unmounts `dir`, or, when a program still works in it, detaches it: it goes away when the
/// last one lets go. Failures are logged.
fn unmount_or_detach(dir: &Path) {
    if let Err(e) = unmount(dir) {
        tracing::warn!("{e}; detaching it instead");
        if let Err(e) = lazy_unmount(dir) {
            tracing::warn!("{e}");
        }
    }
}

/// Detaches the mount on `dir` at once; it goes away when no program uses it any more.
pub fn lazy_unmount(dir: &Path) -> Result<()> {
    let done = if is_root() {
        rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH)
            .map_err(std::io::Error::from)
    } else {
        fusermount(&["-u", "-q", "-z"], dir)
    };
    done.map_err(|source| Error::Unmount {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Why this machine cannot mount, if it cannot: no `/dev/fuse`, or (for a user other than
/// root) no `fusermount3` or a `/dev/fuse` only root may open.
pub fn cannot_mount() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing: this system has no FUSE (try `modprobe fuse`)".into());
    }
    if is_root() {
        return None;
    }
    if find_in_path(FUSERMOUNT).is_none() {
        return Some(format!(
            "{FUSERMOUNT} is missing: install FUSE 3 (Debian, Ubuntu: apt-get install fuse3)"
        ));
    }
    let open_to_users = rustix::fs::access(
        "/dev/fuse",
        rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
    );
    if open_to_users.is_err() {
        return Some(
            "/dev/fuse is open to root only on this system: FUSE is for root here (an admin can \
             allow users with chmod 666 /dev/fuse, as most systems have it)"
                .into(),
        );
    }
    None
}

/// Where `program` is on `$PATH`, if it is.
pub fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
