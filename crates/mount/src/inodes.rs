//! The inode table: where each inode number handed to the kernel sits in the tree.
//!
//! The mount hands out `io.fs`'s own inode numbers (stable, never reused; the root is 1 on
//! both sides), but `io.fs` is path-based, so each inode the kernel holds needs a path. The
//! table keeps, for each, its parent's inode and its name, learned from lookups (which the
//! kernel counts, and gives back with `forget`) and kept current by what this mount does
//! (`mv`, `rm`) and what listings show. An inode whose entry is gone (removed, or replaced by
//! a move) is detached: it has no path any more, and operations on it fail with `ENOENT`.

use std::collections::HashMap;

use plexus_fs::FsPath;

use crate::error::{Error, Result};

/// The root's inode number, for the kernel and for `io.fs`.
pub const ROOT: u64 = 1;

/// The parent of a detached inode.
const DETACHED: u64 = 0;

/// The deepest path walked: a path of 4096 bytes has at most 2048 names.
const MAX_DEPTH: usize = 2048;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    /// How many lookups the kernel holds.
    lookups: u64,
}

/// Inode numbers and where they sit.
#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
}

impl Default for Inodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Inodes {
    /// A table that knows the root.
    pub fn new() -> Inodes {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: String::new(),
                lookups: 1,
            },
        );
        Inodes {
            nodes,
            by_name: HashMap::new(),
        }
    }

    /// How many inodes the table holds (the root too).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the table holds only the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The path of `ino`: `UnknownInode` if it was never handed out, was forgotten, or is
    /// detached.
    pub fn path(&self, ino: u64) -> Result<FsPath> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let node = self.nodes.get(&at).ok_or(Error::UnknownInode(ino))?;
            if node.parent == DETACHED || names.len() >= MAX_DEPTH {
                return Err(Error::UnknownInode(ino));
            }
            names.push(node.name.as_str());
            at = node.parent;
        }
        let mut path = FsPath::root();
        for name in names.iter().rev() {
            path = path.join(name)?;
        }
        Ok(path)
    }

    /// The path of `name` in the directory `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Result<FsPath> {
        Ok(self.path(parent)?.join(name)?)
    }

    /// The directory `ino` sits in, as far as the table knows.
    pub fn parent(&self, ino: u64) -> Option<u64> {
        self.nodes
            .get(&ino)
            .map(|n| n.parent)
            .filter(|&p| p != DETACHED)
    }

    /// The inode at `name` in `parent`, as far as the table knows.
    pub fn at(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }

    /// The kernel looked `ino` up as `name` in `parent` (a lookup, a create, a mkdir): it is
    /// counted until forgotten.
    pub fn looked_up(&mut self, parent: u64, name: &str, ino: u64) {
        if ino == ROOT {
            return;
        }
        self.place(parent, name, ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_add(1);
        }
    }

    /// A listing shows `ino` as `name` in `parent`: an inode the table holds moves there (it
    /// may have moved on another node); one it does not hold is not added (the kernel looks
    /// up what it uses).
    pub fn seen(&mut self, parent: u64, name: &str, ino: u64) {
        if ino != ROOT && self.nodes.contains_key(&ino) {
            self.place(parent, name, ino);
        }
    }

    /// The entry `name` in `parent` is gone: whatever inode sat there is detached.
    pub fn removed(&mut self, parent: u64, name: &str) {
        if let Some(old) = self.by_name.remove(&(parent, name.to_owned())) {
            if let Some(node) = self.nodes.get_mut(&old) {
                node.parent = DETACHED;
            }
        }
    }

    /// The entry `from_name` in `from_parent` moved to `to_name` in `to_parent` (detaching
    /// what sat there before).
    pub fn moved(&mut self, from_parent: u64, from_name: &str, to_parent: u64, to_name: &str) {
        match self.by_name.remove(&(from_parent, from_name.to_owned())) {
            Some(ino) => self.place(to_parent, to_name, ino),
            None => self.removed(to_parent, to_name),
        }
    }

    /// The kernel gives back `n` lookups of `ino`: at none left, the table drops it.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let key = (node.parent, std::mem::take(&mut node.name));
            self.nodes.remove(&ino);
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
        }
    }

    /// Puts `ino` at `name` in `parent`, moving it from where it was and detaching another
    /// inode that sat there.
    fn place(&mut self, parent: u64, name: &str, ino: u64) {
        let key = (parent, name.to_owned());
        match self.by_name.get(&key) {
            Some(&there) if there == ino => return,
            Some(&there) => {
                if let Some(node) = self.nodes.get_mut(&there) {
                    node.parent = DETACHED;
                }
            }
            None => {}
        }
        let node = self.nodes.entry(ino).or_insert(Node {
            parent: DETACHED,
            name: String::new(),
            lookups: 0,
        });
        let old = (
            node.parent,
            std::mem::replace(&mut node.name, name.to_owned()),
        );
        node.parent = parent;
        if self.by_name.get(&old) == Some(&ino) {
            self.by_name.remove(&old);
        }
        self.by_name.insert(key, ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(t: &Inodes, ino: u64) -> String {
        t.path(ino)
            .map(|p| p.to_string())
            .unwrap_or_else(|e| format!("{e}"))
    }

    #[test]
    fn lookups_give_paths_from_the_root() {
        let mut t = Inodes::new();
        assert_eq!(path(&t, ROOT), "/");
        t.looked_up(ROOT, "home", 2);
        t.looked_up(2, "bob", 5);
        t.looked_up(5, "notes.txt", 9);
        assert_eq!(path(&t, 9), "/home/bob/notes.txt");
        assert_eq!(t.at(5, "notes.txt"), Some(9));
        assert_eq!(t.child_path(5, "x").unwrap().as_str(), "/home/bob/x");
        assert!(matches!(t.path(77), Err(Error::UnknownInode(77))));
    }

    #[test]
    fn moves_carry_children_and_detach_what_they_replace() {
        let mut t = Inodes::new();
        t.looked_up(ROOT, "a", 2);
        t.looked_up(2, "f", 3);
        t.looked_up(ROOT, "b", 4);
        t.looked_up(ROOT, "g", 6);
        t.moved(ROOT, "a", 4, "a2");
        assert_eq!(path(&t, 3), "/b/a2/f");
        // g replaces f: f is detached, g has f's path.
        t.moved(ROOT, "g", 2, "f");
        assert_eq!(path(&t, 6), "/b/a2/f");
        assert!(t.path(3).is_err());
        t.removed(2, "f");
        assert!(t.path(6).is_err());
        assert_eq!(t.at(2, "f"), None);
    }

    #[test]
    fn listings_update_known_inodes_only() {
        let mut t = Inodes::new();
        t.looked_up(ROOT, "x", 2);
        // Renamed on another node: a listing shows it under its new name.
        t.seen(ROOT, "y", 2);
        assert_eq!(path(&t, 2), "/y");
        assert_eq!(t.at(ROOT, "x"), None);
        t.seen(ROOT, "z", 3);
        assert!(t.path(3).is_err(), "not added by a listing");
        assert_eq!(t.len(), 2);
        // A new inode under a known name detaches the old one (replaced elsewhere).
        t.looked_up(ROOT, "y", 8);
        assert!(t.path(2).is_err());
        assert_eq!(path(&t, 8), "/y");
    }

    #[test]
    fn forgotten_inodes_leave_the_table() {
        let mut t = Inodes::new();
        t.looked_up(ROOT, "a", 2);
        t.looked_up(ROOT, "a", 2);
        t.forget(2, 1);
        assert_eq!(path(&t, 2), "/a");
        t.forget(2, 1);
        assert!(t.path(2).is_err());
        assert_eq!(t.at(ROOT, "a"), None);
        assert!(t.is_empty());
        // The root is never forgotten; unknown inodes are ignored.
        t.forget(ROOT, 100);
        t.forget(55, 1);
        assert_eq!(path(&t, ROOT), "/");
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        let mut t = Inodes::new();
        t.looked_up(ROOT, "a", 2);
        t.looked_up(2, "b", 3);
        // Learned in an order that makes a loop (moves seen half-way on other nodes).
        t.seen(3, "a", 2);
        assert!(t.path(2).is_err());
        assert!(t.path(3).is_err());
    }
}
