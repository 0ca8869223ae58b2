//! The cluster's file tree as a local directory, through FUSE (`plx mount DIR`).
//!
//! A short tour:
//!
//! - [`Backend`] (`backend.rs`) is what the mount needs of the file service: stat, list, read
//!   a range at a version, write a whole file from a local file, mkdir, rm, mv, chmod, statfs.
//!   [`ClientBackend`] (`client_backend.rs`) is the first one: the local node's `io.fs`
//!   through its Unix socket, every message signed as the user, as `plx fs` sends them.
//! - [`NodeBackend`] (`node_backend.rs`) is the second: `io.fs` of the node itself, called
//!   in-process as one user; [`NodeMounts`] keeps one such view per user mounted for the
//!   programs the node runs (`/fs/…` paths in `plx run`).
//! - [`PlexusFs`] (`fs.rs`) is the `fuser::Filesystem`: inode numbers are `io.fs`'s own,
//!   each given a path by the inode table ([`Inodes`], `inodes.rs`); reads are served from
//!   4 MiB windows read at the version seen at open (the next two read ahead); writes go to
//!   a local spill file that is sent and committed whole at close, flush or fsync.
//! - [`serve`] (`serve.rs`) mounts and serves until unmounted or told to stop (SIGTERM,
//!   SIGINT); [`unmount`] undoes a mount; [`mountinfo`] tells mount points.
//! - [`Error`] (`error.rs`) is the one error type; [`Error::errno`] maps it for the kernel by
//!   the error unit's code, never its text.
//!
//! The rules (what is supported, when others see new content, caching) are in `docs/fs.md`,
//! "FUSE mount".

mod backend;
mod client_backend;
mod error;
mod fs;
mod inodes;
pub mod mountinfo;
mod node_backend;
mod serve;

pub use backend::{parse_mode, Backend, Caller, Entry, Space};
pub use client_backend::ClientBackend;
pub use error::{errno_for, Error, Op, Result};
pub use fs::{PlexusFs, Settings, THREADS};
pub use inodes::{Inodes, ROOT};
pub use node_backend::{undo_views_left, ActingFor, NodeBackend, NodeMounts};
pub use serve::{cannot_mount, find_in_path, lazy_unmount, serve, unmount, Mounted, FUSERMOUNT};
