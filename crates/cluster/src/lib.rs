//! Plexus cluster: membership and replicated cluster state.
//!
//! - [`membership`]: SWIM failure detection and node metadata, on foca, sans-io (packets,
//!   timers and time come in as arguments; what to send comes out).
//! - [`raft`]: the replicated cluster state (roster, users, services, the unit store behind
//!   `io.store`) on openraft with redb storage.
//!
//! This crate is the only one that names foca and openraft.

pub mod membership;
pub mod raft;
