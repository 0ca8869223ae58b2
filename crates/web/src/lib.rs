//! Plexus's web desktop: the cluster in a browser, served by every node.
//!
//! A node started with `plx node --web ADDR` calls [`serve`] with its own kernel. A browser
//! gets in with a one-time login link from `plx web` ([`login::link`]): a token signed with
//! the user's key, for this desktop, good for one login within a minute ([`login::Logins`]).
//! The login opens a session ([`session::Sessions`]) kept in an `HttpOnly; SameSite=Strict`
//! cookie; requests that change state also carry the session's CSRF token in [`CSRF_HEADER`].
//! Without a session, every page, API and WebSocket answers 401 and shows nothing of the
//! cluster.
//!
//! The browser acts as its user through the node's kernel, in-process: each call is made in
//! a kernel context whose author is the session's user, so it is evaluated, routed and
//! checked against every service's policy exactly as a message the user signed with the CLI
//! (no socket and no signature: the node vouches for the session it opened on a signed
//! login, as it does for the programs it runs).
//!
//! The pages: the overview (every node with health, role, leader, tags, load and memory, and
//! a minute of charts), pushed every second over a WebSocket (`/api/live`); the processes
//! (the table, placing with the scheduler's explanation, output, kill); the graphs (each
//! running graph drawn with its pipes' figures); the files (browse, view, edit, upload,
//! download, through `io.fs`: `files`); the services (who provides what, each one's help as
//! text); the store (`io.store`, one level at a time); and the λ shell's terminal: messages,
//! with `io.term` answered in the page, and the shell's commands, which the binary gives
//! ([`term::Commands`]) since it parses them for its own shell (`term`, over `/api/term`). The
//! pages' files are embedded in the binary (`assets/`), hand-written HTML, CSS and
//! JavaScript. `/metrics` gives the node's figures in Prometheus text ([`metrics`]).
//! `docs/web.md` tells the whole story.
//!
//! [`login`], [`session`] and [`metrics`] are sans-io: they take the time and randomness as
//! arguments and are tested alone; `server` is the thin axum shell around them.

mod assets;
mod error;
mod files;
pub mod login;
pub mod metrics;
mod server;
pub mod session;
pub mod term;

pub use assets::total_bytes;
pub use error::Error;
pub use server::serve;

/// The header that carries a session's CSRF token on requests that change state.
pub const CSRF_HEADER: &str = "x-plexus-csrf";
