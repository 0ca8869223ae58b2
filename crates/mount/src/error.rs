//! The one error type of the crate, and how each error becomes an errno for the kernel.

use std::path::PathBuf;
use std::time::Duration;

use plexus_client::files::TransferError;

/// The code of a read of a version the file is no longer at.
pub(crate) const CHANGED: &str = "fs.changed";

/// Why an operation on the mounted tree, or mounting it, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file service answered with an error unit: its code (`denied`, `not.found`…) decides
    /// the errno, never its message.
    #[error("{code}: {message}")]
    Service {
        /// The error unit's code.
        code: String,
        /// The error unit's message, for logs.
        message: String,
    },
    /// Reaching the node failed (no node, the connection closed, a bad frame).
    #[error(transparent)]
    Client(#[from] plexus_client::Error),
    /// A call got no answer within its deadline (the node hangs or is far too slow).
    #[error("no answer from the node within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The node answered with something the protocol does not allow here.
    #[error("unexpected answer from io.fs: {0}")]
    BadReply(String),
    /// A name that is not a valid name of the tree (not UTF-8, too long, `/` in it…).
    #[error("bad name {0:?}")]
    BadName(String),
    /// A path of the tree that does not parse (or would be too long).
    #[error(transparent)]
    Path(#[from] plexus_fs::PathError),
    /// An inode number this mount never handed out, or one whose entry is gone.
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    /// A file handle this mount never handed out.
    #[error("unknown file handle {0}")]
    UnknownHandle(u64),
    /// A local file (a spill file of a file being written) could not be used.
    #[error("cannot {action} {}", path.display())]
    Local {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Mounting, or serving the mount, failed.
    #[error("cannot mount on {}: {source}", dir.display())]
    Mount {
        /// The mount point.
        dir: PathBuf,
        /// What the operating system (or fusermount3) said.
        source: std::io::Error,
    },
    /// Unmounting failed (a program still works in the directory, or it is not mounted).
    #[error("cannot unmount {}: {source}", dir.display())]
    Unmount {
        /// The mount point.
        dir: PathBuf,
        /// What the operating system (or fusermount3) said.
        source: std::io::Error,
    },
    /// The runtime that runs calls to the node could not be made.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A message could not be addressed (a bad service name).
    #[error(transparent)]
    Name(#[from] plexus_units::NameError),
    /// The acting key is not registered on the node.
    #[error("the key is not registered on the node (see `plx user join` or ask its admin)")]
    NotRegistered,
    /// A request came from a process that acts for no user of the cluster (on a node's own
    /// mount: a process the node did not start).
    #[error("process {0} acts for no user of the cluster")]
    NoUser(u32),
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Error {
        match e {
            TransferError::Refused { code, message } => Error::Service { code, message },
            TransferError::Client(e) => Error::Client(e),
            TransferError::Read(source) | TransferError::Write(source) => Error::Local {
                action: "read the spill file of a file being written in",
                path: PathBuf::from("the spill directory"),
                source,
            },
            TransferError::Changed(path) => Error::Service {
                code: CHANGED.into(),
                message: format!("{path} changed while it was read"),
            },
            TransferError::Unexpected(what) => Error::BadReply(what),
        }
    }
}

/// A crate result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of operation an error came from, where the same code means different errnos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Reading metadata or content.
    Read,
    /// Writing a file's content (stage, commit).
    Write,
    /// Making an entry (a file or a directory) or moving one into a directory.
    Create,
    /// Changing the mode bits: a refusal is `EPERM`, as for a non-owner's chmod(2).
    Chmod,
    /// Anything else.
    Other,
}

/// The errno for an error unit's `code` from an operation of kind `op`.
pub fn errno_for(code: &str, op: Op) -> i32 {
    use plexus_units::code;
    match code {
        code::DENIED if op == Op::Chmod => libc::EPERM,
        code::DENIED => libc::EACCES,
        code::NOT_FOUND => libc::ENOENT,
        "fs.exists" => libc::EEXIST,
        "fs.not.dir" => libc::ENOTDIR,
        "fs.is.dir" => libc::EISDIR,
        "fs.not.empty" => libc::ENOTEMPTY,
        code::BAD_ARGUMENT => libc::EINVAL,
        code::LIMIT => match op {
            Op::Write => libc::EFBIG,
            Op::Create => libc::ENOSPC,
            _ => libc::EIO,
        },
        _ => libc::EIO,
    }
}

impl Error {
    /// The errno this error is to the kernel, for an operation of kind `op`.
    pub fn errno(&self, op: Op) -> i32 {
        match self {
            Error::Service { code, .. } => errno_for(code, op),
            Error::BadName(_) => libc::EINVAL,
            Error::Path(e) => match e {
                plexus_fs::PathError::NameTooLong { .. } | plexus_fs::PathError::TooLong(_) => {
                    libc::ENAMETOOLONG
                }
                _ => libc::EINVAL,
            },
            Error::UnknownInode(_) => libc::ENOENT,
            Error::UnknownHandle(_) => libc::EBADF,
            Error::NoUser(_) => libc::EACCES,

            Error::Local { source, .. } => match source.raw_os_error() {
                Some(libc::ENOSPC) => libc::ENOSPC,
                Some(libc::EFBIG) => libc::EFBIG,
                _ => libc::EIO,
            },
            _ => libc::EIO,
        }
    }

    /// The error unit's code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_io_fs_code_has_its_errno() {
        let cases = [
            ("denied", Op::Read, libc::EACCES),
            ("denied", Op::Write, libc::EACCES),
            ("denied", Op::Chmod, libc::EPERM),
            ("not.found", Op::Read, libc::ENOENT),
            ("fs.exists", Op::Create, libc::EEXIST),
            ("fs.not.dir", Op::Read, libc::ENOTDIR),
            ("fs.is.dir", Op::Write, libc::EISDIR),
            ("fs.not.empty", Op::Other, libc::ENOTEMPTY),
            ("arg.bad", Op::Other, libc::EINVAL),
            ("limit", Op::Write, libc::EFBIG),
            ("limit", Op::Create, libc::ENOSPC),
            ("limit", Op::Read, libc::EIO),
            ("fs.unavailable", Op::Read, libc::EIO),
            ("cluster.unavailable", Op::Write, libc::EIO),
            ("something.new", Op::Other, libc::EIO),
        ];
        for (code, op, errno) in cases {
            assert_eq!(errno_for(code, op), errno, "{code} in {op:?}");
            let e = Error::Service {
                code: code.into(),
                message: "whatever the text says".into(),
            };
            assert_eq!(e.errno(op), errno, "{code} in {op:?}");
        }
    }

    #[test]
    fn transport_failures_and_timeouts_are_eio() {
        assert_eq!(
            Error::Client(plexus_client::Error::Closed).errno(Op::Read),
            libc::EIO
        );
        assert_eq!(
            Error::Timeout(Duration::from_secs(30)).errno(Op::Write),
            libc::EIO
        );
        assert_eq!(Error::BadReply("x".into()).errno(Op::Read), libc::EIO);
    }

    #[test]
    fn bad_names_and_paths_are_refused_as_the_kernel_expects() {
        assert_eq!(Error::BadName("a/b".into()).errno(Op::Create), libc::EINVAL);
        let long = "x".repeat(300);
        let e = plexus_fs::FsPath::root().join(&long).map_err(Error::from);
        assert_eq!(
            e.err().map(|e| e.errno(Op::Create)),
            Some(libc::ENAMETOOLONG)
        );
        assert_eq!(Error::UnknownInode(9).errno(Op::Read), libc::ENOENT);
    }
}
