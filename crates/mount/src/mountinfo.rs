//! Which directories are mount points: `/proc/self/mountinfo`, read without touching the
//! mounts themselves (a mount whose server is gone would make a `stat` of it fail or hang).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The mount points listed in `mountinfo` text (the fifth field of each line, unescaped).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// A mount point's text with `\NNN` octal escapes (space, tab, newline, backslash) undone.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// `dir` made absolute without following the last name (so a dead mount there is no
/// obstacle): its parent resolved, then its name.
pub fn absolute(dir: &Path) -> PathBuf {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or(dir.clone()),
        _ => dir,
    }
}

/// Whether `dir` (absolute, as [`absolute`] gives it) is a mount point now.
pub fn is_mount_point(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| mount_points(&text).iter().any(|p| p == dir))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    98 22 0:50 / /tmp/my\\040dir rw,nosuid,nodev - fuse.plx plexus rw\n\
                    99 22 0:51 / /a\\134b\\011c rw - fuse plexus rw\n\
                    short line\n";
        assert_eq!(
            mount_points(text),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/tmp/my dir"),
                PathBuf::from("/a\\b\tc")
            ]
        );
        // A backslash without three octal digits stays as it is.
        assert_eq!(unescape("/x\\9y\\"), PathBuf::from("/x\\9y\\"));
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_fresh_directory_is_not() {
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(&absolute(dir.path())));
        assert_eq!(absolute(dir.path()), dir.path().canonicalize().unwrap());
    }
}
