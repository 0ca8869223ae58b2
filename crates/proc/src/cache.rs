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
