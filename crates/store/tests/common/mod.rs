//! Helpers shared by the store's integration tests.

#![allow(dead_code)]

use plexus_store::{Caller, Once, SaveBy};

/// An admin, who may read and change every entry.
pub const ADMIN: Caller = Caller {
    user: [0; 32],
    admin: true,
};

/// A save by [`ADMIN`].
pub fn by(once: Option<Once>) -> SaveBy {
    SaveBy {
        caller: ADMIN,
        private: None,
        once,
    }
}
