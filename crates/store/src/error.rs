//! Errors of the node database.

use std::sync::Arc;

use plexus_units::{code, Path, Unit};

use crate::SaveError;

/// Why a storage operation failed.
///
/// Each variant has one error code ([`StoreError::code`]); the services turn a store error
/// into the kernel's error with that code.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the node database {path}: {why}")]
    Open {
        /// The file or directory given.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The database failed (I/O error, full disk…).
    #[error("node database failed: {0}")]
    Storage(String),
    /// Stored bytes that do not decode.
    #[error("node database is corrupt: {0}")]
    Corrupt(String),
    /// Nothing at a path.
    #[error("nothing at {} in the store", plexus_units::to_text(&Unit::Ref(.0.clone())))]
    NotFound(Path),
    /// A save through a unit that cannot hold the path.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// A save that would exceed an entry limit.
    #[error("{0}")]
    Limit(String),
    /// An argument that makes no sense (a seed that is not a map…).
    #[error("{0}")]
    BadArgument(String),
    /// A user registration that clashes with an existing one.
    #[error(transparent)]
    User(#[from] UserConflict),
    /// The caller may not change this entry: it belongs to another user.
    #[error("the store entry {} belongs to another user; only its owner or an admin may change it", plexus_units::to_text(&Unit::Ref(.0.clone())))]
    Denied(Path),
    /// Another evaluation of the signed message this save belongs to already saved: the
    /// message was replayed (after a restart, or to another node).
    #[error("this signed message already took effect (a replay); sign a new one")]
    Replayed,
    /// The signed message this save belongs to is older than what the store still
    /// remembers, so it cannot tell whether it already took effect.
    #[error("the message time {time_ms} ms is too old: the store refuses messages at or before {floor_ms} ms")]
    TooOld {
        /// The message's time.
        time_ms: u64,
        /// The store's floor.
        floor_ms: u64,
    },
    /// A replicated store cannot commit or read right now (no leader, no majority).
    #[error("the cluster cannot serve the store now: {0}")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The standard error code ([`plexus_units::code`]) this failure travels with.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } | StoreError::Storage(_) | StoreError::Corrupt(_) => {
                code::STORAGE
            }
            StoreError::NotFound(_) => code::NOT_FOUND,
            StoreError::Save(_) | StoreError::BadArgument(_) | StoreError::User(_) => {
                code::BAD_ARGUMENT
            }
            StoreError::Limit(_) => code::LIMIT,
            StoreError::Unavailable(_) => code::NO_QUORUM,
            StoreError::Replayed | StoreError::TooOld { .. } => code::REPLAYED,
            StoreError::Denied(_) => code::DENIED,
        }
    }

    /// The path the failure is about, if it names one (a `not.found` error carries it).
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreError::NotFound(p) | StoreError::Denied(p) => Some(p),
            _ => None,
        }
    }
}

/// A registration that clashes with the user registry (vnix's three cases).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserConflict {
    /// The name belongs to another key.
    #[error("the name {name} is taken by another key")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// This key is already registered under this name.
    #[error("user {name} is already registered with this key")]
    AlreadyRegistered {
        /// The name.
        name: String,
    },
    /// This key is already registered under another name.
    #[error("this key is already registered as {existing}")]
    KeyTaken {
        /// The name the key has.
        existing: String,
    },
    /// A user invite that is unknown, already used, or expired.
    #[error("{}", if *expired { "expired user invite" } else { "unknown or already used user invite" })]
    BadInvite {
        /// Whether it exists but has expired.
        expired: bool,
    },
}

/// Turns any database error into [`StoreError::Storage`] (keeps redb's types private).
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: std::fmt::Display> DbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Storage(e.to_string()))
    }
}
