//! The core of Plexus's cluster file system: what a path is, how file content is cut into
//! chunks, and who may do what. Everything here is pure (sans-io): no disk, no network, no
//! clock, so the same input gives the same answer on every node, and each rule is tested
//! alone. The formats (path rules, chunk cuts, mode bits) are specified in `docs/fs.md`.
//!
//! - [`FsPath`]: absolute, normalized paths of the tree, with the bounds every interface
//!   checks (names up to 255 bytes, paths up to 4096, no NUL, no `..` above the root), and
//!   [`FsPath::resolve`] for what a user types against a working directory.
//! - [`Chunker`]: content-defined chunking (FastCDC) of a byte stream into chunks of 256 KiB to
//!   4 MiB ([`ChunkParams::FILES`]), streaming, holding at most one chunk; [`ChunkRef`] names a
//!   chunk by its BLAKE3 hash and length.
//! - [`check`]: owner and mode bits (no groups) with an admin override, as every operation
//!   checks them; [`mode_text`] prints a mode as `ls -l` does.
//! - [`replicas`]: how many copies a chunk needs, which nodes take new ones (spread, weighted
//!   by free space), what repair does after nodes are lost and what a node's sweep does with
//!   a copy of its own.
//!
//! ```
//! use plexus_fs::{chunk_refs, ChunkParams, FsPath};
//!
//! let home = FsPath::parse("/home/me").unwrap();
//! assert_eq!(home.resolve("../you/notes.txt").unwrap().as_str(), "/home/you/notes.txt");
//! assert!(home.resolve("../../..").is_err());
//!
//! let data = vec![7u8; 3 << 20];
//! let chunks = chunk_refs(&data, ChunkParams::FILES);
//! assert_eq!(chunks.iter().map(|c| c.len as usize).sum::<usize>(), data.len());
//! ```

mod chunk;
mod path;
mod perm;
pub mod replicas;

pub use chunk::{chunk_refs, hash_from_hex, ChunkParams, ChunkRef, Chunker};
pub use path::{FsPath, PathError, MAX_NAME_BYTES, MAX_PATH_BYTES};
pub use perm::{check, mode_text, Access, Actor, Denied, MODE_BITS};
