//! `plx mount DIR`: the cluster's file tree as a local directory (FUSE), served by a
//! background `plx mount --foreground` process that this command starts and waits for;
//! `plx umount DIR` unmounts it. The file system itself is `plexus-mount`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plexus_identity::Keypair;
use plexus_mount::{mountinfo, ClientBackend, Settings};

use crate::cmd_node::socket_path;
use crate::cmd_proc::Common;
use crate::home::{Home, PASSPHRASE_ENV};

/// How long one call to the node may take before the operation fails with EIO.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);
/// How long `plx mount` waits for the background process to mount.
const MOUNT_DEADLINE: Duration = Duration::from_secs(30);

/// Options of `plx mount`.
#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// The directory to mount on: an existing, empty directory.
    pub dir: PathBuf,
    /// Serve the mount in this process (logging on standard error) until it is unmounted or
    /// the process gets Ctrl-C or SIGTERM, which unmount it.
    #[arg(long)]
    pub foreground: bool,
    /// Started by `plx mount` in the background: a session of its own.
    #[arg(long, hide = true)]
    pub detached: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Options of `plx umount`.
#[derive(Args, Debug, Clone)]
pub struct UmountArgs {
    /// The directory the tree is mounted on.
    pub dir: PathBuf,
}

/// The directory of mount logs and spill files in the home.
fn mounts_dir(home: &Home) -> PathBuf {
    home.root().join("mounts")
}

/// The log file of the mount on `dir`: its path with `/` as `_`.
fn log_path(home: &Home, dir: &Path) -> PathBuf {
    let name: String = dir
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    mounts_dir(home).join(format!(
        "{}.log",
        if name.is_empty() { "root" } else { &name }
    ))
}

/// The acting user's key, and the passphrase a background process needs to unlock it too
/// (when it is encrypted and `$PLX_PASSPHRASE` does not give it).
fn unlock(home: &Home, name: &str) -> Result<(Keypair, Option<String>)> {
    let file = home.load(name)?;
    if !file.is_encrypted() {
        return Ok((
            file.unlock(None)
                .with_context(|| format!("user {name:?}"))?,
            None,
        ));
    }
    let given = std::env::var(PASSPHRASE_ENV).is_ok();
    let passphrase = plexus_client::home::passphrase(&format!("passphrase for {name}: "), false)?;
    let key = file
        .unlock(Some(&passphrase))
        .with_context(|| format!("user {name:?}"))?;
    Ok((key, (!given).then_some(passphrase)))
}

/// Checks that `dir` can be mounted on: it exists, is a directory, is empty and is no mount
/// point yet, and this machine can mount.
fn check_dir(dir: &Path) -> Result<()> {
    if let Some(why) = plexus_mount::cannot_mount() {
        bail!("cannot mount: {why}");
    }
    let shown = dir.display();
    if mountinfo::is_mount_point(dir) {
        bail!("{shown} is already a mount point (unmount it with `plx umount {shown}`)");
    }
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("{shown} does not exist (make it with mkdir)"),
        _ => anyhow!("cannot use {shown}: {e}"),
    })?;
    if !meta.is_dir() {
        bail!("{shown} is not a directory");
    }
    let mut entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {shown}"))?;
    if entries.next().is_some() {
        bail!("{shown} is not empty: mount on an empty directory");
    }
    Ok(())
}

/// `plx mount DIR`.
pub fn run_mount(home: &Home, args: MountArgs) -> Result<i32> {
    if args.foreground {
        crate::give_large_blocks_back();
    }
    let dir = mountinfo::absolute(&args.dir);
    if args.detached {
        // Out of the terminal's session: closing it does not stop the mount.
        let _ = rustix::process::setsid();
    }
    if !args.detached {
        check_dir(&dir)?;
    }
    let user = home.acting_user(args.common.user.as_deref())?;
    let (key, passphrase) = unlock(home, &user)?;
    let socket = socket_path(home, args.common.socket.clone());
    let backend = ClientBackend::connect(socket.clone(), key, CALL_DEADLINE)
        .with_context(|| format!("cannot mount as {user}"))?;
    if args.foreground || args.detached {
        let filter = tracing_subscriber::EnvFilter::try_from_env("PLX_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
        let settings = Settings::new(mounts_dir(home).join("spill"));
        plexus_mount::serve(backend, &dir, settings)?;
        return Ok(0);
    }
    drop(backend);
    start_background(home, &args, &dir, &user, passphrase)?;
    eprintln!(
        "plx: the cluster tree is mounted on {} (as {user}); `plx umount {}` unmounts it",
        dir.display(),
        dir.display()
    );
    Ok(0)
}

/// Starts `plx mount DIR --foreground` in the background, logging to a file of the home, and
/// waits until the directory is a mount point.
fn start_background(
    home: &Home,
    args: &MountArgs,
    dir: &Path,
    user: &str,
    passphrase: Option<String>,
) -> Result<()> {
    let log_path = log_path(home, dir);
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?
    };
    let start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the plx executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(home.root())
        .arg("mount")
        .arg(dir)
        .arg("--foreground")
        .arg("--detached")
        .arg("--user")
        .arg(user)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(socket) = &args.common.socket {
        cmd.arg("--socket").arg(socket);
    }
    if let Some(p) = passphrase {
        // In the environment, not the arguments: other users can read a process's arguments.
        cmd.env(PASSPHRASE_ENV, p);
    }
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let deadline = Instant::now() + MOUNT_DEADLINE;
    loop {
        if mountinfo::is_mount_point(dir) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                use std::io::{Seek, SeekFrom};
                let _ = f.seek(SeekFrom::Start(start));
                let _ = f.read_to_string(&mut text);
            }
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim_start_matches("plx: ");
            bail!(
                "the mount process exited ({status}): {last} (log: {})",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} was not mounted within {} s (log: {})",
                dir.display(),
                MOUNT_DEADLINE.as_secs(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `plx umount DIR`.
pub fn run_umount(args: UmountArgs) -> Result<i32> {
    let dir = mountinfo::absolute(&args.dir);
    if !mountinfo::is_mount_point(&dir) {
        bail!("{} is not mounted", dir.display());
    }
    plexus_mount::unmount(&dir)?;
    // The mount process ends with its session; wait a moment for the mount to be gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mountinfo::is_mount_point(&dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("plx: unmounted {}", dir.display());
    Ok(0)
}
