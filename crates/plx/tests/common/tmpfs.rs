//! A small disk for end-to-end tests: a tmpfs of a given size mounted on a directory (a
//! node's data directory, say), filled to near its top by a filler file to make the disk full,
//! and emptied again.
//!
//! Needs root (`mount`). [`Tmpfs::mount`] says why on standard error and gives `None` when
//! that is not available, so tests can return early on developer machines. The tmpfs is
//! unmounted when the [`Tmpfs`] is dropped, also on panic; lazily, so files the nodes still
//! hold open do not keep it mounted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs mounted on a directory.
pub struct Tmpfs {
    dir: PathBuf,
}

/// The name of the filler file in the tmpfs's root.
const FILLER: &str = "filler";

/// Runs `program ARGS`; the error is its standard error.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on `dir` (made if missing). `None` (with the reason on
    /// standard error) when this process is not root or the mount fails (a container may
    /// forbid it even to root).
    pub fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        let euid = rustix::process::geteuid();
        if !euid.is_root() {
            eprintln!(
                "SKIPPED: a full-disk test mounts a tmpfs, which needs root; euid {}",
                euid.as_raw()
            );
            return None;
        }
        std::fs::create_dir_all(dir).expect("the mount point");
        let dir_text = dir.to_str().expect("a UTF-8 path");
        let size = format!("size={bytes}");
        if let Err(e) = run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", dir_text]) {
            eprintln!("SKIPPED: cannot mount a tmpfs: {e}");
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_owned(),
        })
    }

    /// Bytes still free on it.
    pub fn free(&self) -> u64 {
        let vfs = rustix::fs::statvfs(&self.dir).expect("statvfs of the tmpfs");
        vfs.f_bavail * vfs.f_frsize
    }

    /// Writes a filler file that leaves `room` bytes free (real bytes: a tmpfs keeps no
    /// holes' pages, so a sparse file would fill nothing). Returns the filler's size.
    pub fn fill(&self, room: u64) -> u64 {
        let size = self.free().saturating_sub(room);
        let mut file = std::fs::File::create(self.dir.join(FILLER)).expect("the filler file");
        let block = vec![0xa5u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n]).expect("writing the filler");
            left -= n as u64;
        }
        size
    }

    /// Deletes the filler file: the disk has room again.
    pub fn empty(&self) {
        std::fs::remove_file(self.dir.join(FILLER)).expect("removing the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.to_str() {
            if let Err(e) = run("umount", &["-l", dir]) {
                eprintln!("cannot unmount the test's tmpfs: {e}");
            }
        }
    }
}
