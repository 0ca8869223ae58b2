//! The program cache behind `--copy`: program files by content hash, private to the node user.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest program the cache accepts.
pub const MAX_PROGRAM_BYTES: usize = 256 * 1024 * 1024;

/// A program could not be cached.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The program is larger than [`MAX_PROGRAM_BYTES`].
    #[error("program of {bytes} bytes is larger than the {max} bytes the cache accepts")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// [`MAX_PROGRAM_BYTES`].
        max: usize,
    },
    /// The extension is not 1–16 ASCII letters or digits.
    #[error("file extension {0:?} is not 1-16 ASCII letters or digits")]
    BadExtension(String),
    /// The cache directory or file could not be written.
    #[error("program cache {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Stores `bytes` in `dir` (created with mode 0700) as `<blake3 hex>[.<extension>]`, mode 0700,
/// written to a temporary file and renamed so a reader never sees part of it; the same bytes
/// again reuse the file. The extension keeps the interpreter choice (`.py` → `python3`).
pub(crate) fn store(
    dir: &Path,
    bytes: &[u8],
    extension: Option<&str>,
) -> Result<PathBuf, CacheError> {
    if bytes.len() > MAX_PROGRAM_BYTES {
        return Err(CacheError::TooLarge {
            bytes: bytes.len(),
            max: MAX_PROGRAM_BYTES,
        });
    }
    if let Some(ext) = extension {
        if ext.is_empty() || ext.len() > 16 || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CacheError::BadExtension(ext.to_owned()));
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CacheError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    // An existing directory keeps its mode; the cache must not be readable by others.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let hash = blake3::hash(bytes).to_hex();
    let name = match extension {
        Some(ext) => format!("{hash}.{ext}"),
        None => hash.to_string(),
    };
    let path = dir.join(name);
    if path
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
    {
        // Stored again: as recently used as a new one.
        touch(&path).map_err(io(&path))?;
        return Ok(path);
    }
    let temp = dir.join(format!(".{hash}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(CacheError::Io { path, source });
    }
    Ok(path)
}

/// Marks the cached program at `path` as just used (its modification time: access times are
/// often not kept); fails if there is no such file.
pub(crate) fn touch(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a file"));
    }
    file.set_modified(std::time::SystemTime::now())
}

/// Deletes the least recently used files of the cache `dir` until it holds at most `limit`
/// bytes, sparing those `keep` names; gives the bytes deleted. Files being written (`.…tmp`)
/// are neither counted nor deleted.
pub(crate) fn trim(dir: &Path, limit: u64, keep: impl Fn(&str) -> bool) -> std::io::Result<u64> {
    let mut files = Vec::new();
    let mut total = 0u64;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        if name.starts_with('.') || !meta.is_file() {
            continue;
        }
        total += meta.len();
        let used = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        files.push((used, name, meta.len()));
    }
    files.sort();
    let mut deleted = 0;
    for (_, name, len) in files {
        if total <= limit {
            break;
        }
        if keep(&name) {
            continue;
        }
        if std::fs::remove_file(dir.join(&name)).is_ok() {
            total -= len;
            deleted += len;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_deletes_the_least_recently_used_first_and_spares_the_kept() {
        let dir = tempfile::tempdir().unwrap();
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let put = |bytes: &[u8], used: u64| {
            let path = store(dir.path(), bytes, None).unwrap();
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(at(used))
                .unwrap();
            path.file_name().unwrap().to_str().unwrap().to_owned()
        };
        let oldest = put(&[1; 100], 10);
        let kept = put(&[2; 100], 20);
        let middle = put(&[3; 100], 30);
        let newest = put(&[4; 100], 40);
        std::fs::write(dir.path().join(".partial.tmp"), [0; 1000]).unwrap();
        // 400 bytes over a limit of 250: two must go, the kept one is skipped.
        let deleted = trim(dir.path(), 250, |n| n == kept).unwrap();
        assert_eq!(deleted, 200);
        let left = |name: &str| dir.path().join(name).exists();
        assert!(!left(&oldest) && !left(&middle));
        assert!(left(&kept) && left(&newest) && left(".partial.tmp"));
        // Under the limit, nothing goes.
        assert_eq!(trim(dir.path(), 250, |_| false).unwrap(), 0);
        // Storing the same bytes again makes a program recently used.
        let again = store(dir.path(), &[2; 100], None).unwrap();
        assert!(again.metadata().unwrap().modified().unwrap() > at(40));
        assert!(touch(&dir.path().join("missing")).is_err());
    }
}
