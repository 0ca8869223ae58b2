//! Paths of the cluster tree: absolute, normalized, bounded.
//!
//! An [`FsPath`] is `/` or `/` followed by names joined by `/`. A name is 1 to
//! [`MAX_NAME_BYTES`] bytes of UTF-8 without `/` or NUL, and is neither `.` nor `..`; the
//! whole path is at most [`MAX_PATH_BYTES`] bytes. [`FsPath::resolve`] reads what a user typed
//! against a working directory: `.` and empty components are dropped and `..` goes up, but
//! never above the root (that is an error, not a silent stop at `/`: a path that means to leave
//! the tree is a mistake worth reporting).

use std::fmt;

/// The longest name of one file or directory, in bytes (as Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// The longest path, in bytes (as Linux's `PATH_MAX`, with its NUL).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why text is not a path of the tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An empty path.
    #[error("an empty path")]
    Empty,
    /// A NUL byte.
    #[error("the path {0:?} holds a NUL byte")]
    Nul(String),
    /// A name over [`MAX_NAME_BYTES`].
    #[error("the name {name:?}… has {bytes} bytes; at most {MAX_NAME_BYTES}")]
    NameTooLong {
        /// Its first 32 characters.
        name: String,
        /// Its length.
        bytes: usize,
    },
    /// A path over [`MAX_PATH_BYTES`].
    #[error("a path of {0} bytes; at most {MAX_PATH_BYTES}")]
    TooLong(usize),
    /// `..` above the root.
    #[error("{0:?} goes above the root /")]
    AboveRoot(String),
    /// A relative path where only an absolute one is taken.
    #[error("{0:?} is not an absolute path (it must start with /)")]
    Relative(String),
}

/// An absolute, normalized path of the cluster tree.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsPath(String);

impl FsPath {
    /// The root, `/`.
    pub fn root() -> FsPath {
        FsPath("/".to_owned())
    }

    /// An absolute path, normalized (`//`, `.` and `..` resolved).
    pub fn parse(text: &str) -> Result<FsPath, PathError> {
        if !text.starts_with('/') {
            if text.is_empty() {
                return Err(PathError::Empty);
            }
            return Err(PathError::Relative(text.to_owned()));
        }
        FsPath::root().resolve(text)
    }

    /// `text` read from this directory: an absolute `text` stands alone, a relative one is
    /// joined to this path.
    pub fn resolve(&self, text: &str) -> Result<FsPath, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.contains('\0') {
            return Err(PathError::Nul(text.to_owned()));
        }
        // Bounds first: nothing below allocates more than the input allows.
        if text.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(text.len()));
        }
        let mut names: Vec<&str> = if text.starts_with('/') {
            Vec::new()
        } else {
            self.names().collect()
        };
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if names.pop().is_none() {
                        return Err(PathError::AboveRoot(text.to_owned()));
                    }
                }
                name if name.len() > MAX_NAME_BYTES => {
                    return Err(PathError::NameTooLong {
                        name: name.chars().take(32).collect(),
                        bytes: name.len(),
                    })
                }
                name => names.push(name),
            }
        }
        let mut path = String::with_capacity(text.len() + self.0.len() + 1);
        for name in &names {
            path.push('/');
            path.push_str(name);
        }
        if path.is_empty() {
            path.push('/');
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(path.len()));
        }
        Ok(FsPath(path))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Its names from the root down (none for `/`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|n| !n.is_empty())
    }

    /// The directory holding it and its own name; `None` for `/`.
    pub fn split(&self) -> Option<(FsPath, &str)> {
        let (parent, name) = self.0.rsplit_once('/')?;
        if name.is_empty() {
            return None;
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        Some((FsPath(parent.to_owned()), name))
    }

    /// Its last name; `None` for `/`.
    pub fn name(&self) -> Option<&str> {
        self.split().map(|(_, name)| name)
    }

    /// `name` inside this directory.
    pub fn join(&self, name: &str) -> Result<FsPath, PathError> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathError::Relative(name.to_owned()));
        }
        self.resolve(name)
    }

    /// Whether `other` is this path or lies below it.
    pub fn contains(&self, other: &FsPath) -> bool {
        self.is_root()
            || other.0 == self.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        let p = |t: &str| FsPath::parse(t).map(|p| p.to_string());
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("//data//a/./b/").unwrap(), "/data/a/b");
        assert_eq!(p("/data/a/../b").unwrap(), "/data/b");
        assert_eq!(p("/a/..").unwrap(), "/");
        assert_eq!(p("data"), Err(PathError::Relative("data".into())));
        assert_eq!(p(""), Err(PathError::Empty));
        assert_eq!(p("/.."), Err(PathError::AboveRoot("/..".into())));
        assert_eq!(
            p("/a/../../etc"),
            Err(PathError::AboveRoot("/a/../../etc".into()))
        );
        assert_eq!(p("/a\0b"), Err(PathError::Nul("/a\0b".into())));
        assert!(matches!(
            p(&format!("/{}", "x".repeat(256))),
            Err(PathError::NameTooLong { bytes: 256, .. })
        ));
        assert!(p(&format!("/{}", "x".repeat(255))).is_ok());
        let deep = "/abcdefg".repeat(600);
        assert!(matches!(p(&deep), Err(PathError::TooLong(4800))));
    }

    #[test]
    fn relative_paths_resolve_against_a_directory() {
        let cwd = FsPath::parse("/home/me").unwrap();
        let r = |t: &str| cwd.resolve(t).map(|p| p.to_string());
        assert_eq!(r("notes.txt").unwrap(), "/home/me/notes.txt");
        assert_eq!(r("../you").unwrap(), "/home/you");
        assert_eq!(r("/data").unwrap(), "/data");
        assert_eq!(r(".").unwrap(), "/home/me");
        assert_eq!(
            r("../../..").unwrap_err(),
            PathError::AboveRoot("../../..".into())
        );
    }

    #[test]
    fn parts_of_a_path() {
        let p = FsPath::parse("/data/set/a.csv").unwrap();
        let (dir, name) = p.split().unwrap();
        assert_eq!((dir.as_str(), name), ("/data/set", "a.csv"));
        assert_eq!(p.name(), Some("a.csv"));
        assert_eq!(
            FsPath::parse("/a").unwrap().split().unwrap().0,
            FsPath::root()
        );
        assert!(FsPath::root().split().is_none());
        assert_eq!(p.names().collect::<Vec<_>>(), ["data", "set", "a.csv"]);
        assert_eq!(dir.join("b.csv").unwrap().as_str(), "/data/set/b.csv");
        assert!(dir.join("..").is_err() && dir.join("x/y").is_err());
        let data = FsPath::parse("/data").unwrap();
        assert!(data.contains(&p) && data.contains(&data) && FsPath::root().contains(&p));
        assert!(!data.contains(&FsPath::parse("/database").unwrap()));
        assert!(!p.contains(&data));
    }
}
