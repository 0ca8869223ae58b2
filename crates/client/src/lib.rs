//! Plexus client library: what a program needs to talk to a node.
//!
//! The `plx` command-line tool, the benchmarks and the tests use it, and so can any other front
//! end. A short tour:
//!
//! - [`home::Home`] locates the Plexus home directory (`$PLX_HOME`, default `~/.plexus`) with
//!   the users' key files and the current user;
//! - [`sign_with`] signs a unit as a user, stamped with the current time;
//! - [`Client::connect`] opens a connection to a node's Unix socket and greets it;
//!   [`Client::call`] sends one signed message and waits for its [`Reply`], serving the node's
//!   terminal requests meanwhile with a [`StdTerminal`]; [`Client::pipeline`] keeps many calls
//!   in flight;
//! - [`Client::call_attached`] runs an attached program (`{run:[…] attach:t}@sys.proc`),
//!   forwarding the caller's input and signals to it ([`attached`]);
//! - [`members`] reads the answer of `nodes@sys.node`;
//! - [`files`] streams files into and out of the cluster tree (`io.fs`), a few chunks in
//!   flight at once.
//!
//! Every failure is an [`Error`], with the error it comes from as its source.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use plexus_client::{home::Home, sign_with, Client, Reply};
//!
//! let home = Home::locate(None)?;
//! let key = home.unlock(&home.acting_user(None)?)?;
//! let msg = sign_with(&key, plexus_units::parse("(neg 5)@math.calc")?)?;
//! let mut client = Client::connect(&home.root().join("node/node.sock")).await?;
//! if let Reply::Value(v) = client.call(&msg, None, std::future::pending()).await? {
//!     println!("{}", plexus_units::to_text(&v));
//! }
//! # Ok(())
//! # }
//! ```

pub mod attached;
mod connection;
mod error;
pub mod files;
pub mod home;

use std::time::{SystemTime, UNIX_EPOCH};

use plexus_identity::SignedMessage;
use plexus_units::Unit;

pub use connection::{Client, Reply, StdTerminal};
pub use error::{Error, Result};
/// Help units (`help@serv` and the like) rendered as text for a person to read.
pub use plexus_kernel::help_text;

/// Signs `body` with `key`, stamped with the current time.
pub fn sign_with(key: &plexus_identity::Keypair, body: Unit) -> Result<SignedMessage> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::ClockBeforeEpoch)?;
    let now = u64::try_from(now.as_millis()).map_err(|_| Error::ClockOutOfRange)?;
    Ok(SignedMessage::sign(body, key, now, &mut rand_core::OsRng)?)
}

/// One row of `nodes@sys.node`.
pub struct Member {
    /// The node's name.
    pub name: String,
    /// `alive`, `suspect` or `down`.
    pub health: String,
    /// `voter` or `learner` (`single` for a node outside a cluster).
    pub role: String,
    /// Whether it leads the cluster state.
    pub leader: bool,
}

/// The rows of an answer of `nodes@sys.node` (rows that are not maps are skipped).
pub fn members(nodes: &Unit) -> Vec<Member> {
    let text = |m: &plexus_units::Map, k: &str| {
        m.get_str(k)
            .and_then(Unit::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    nodes
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(Unit::as_map)
        .map(|m| Member {
            name: text(m, "name"),
            health: text(m, "health"),
            role: text(m, "role"),
            leader: matches!(m.get_str("leader"), Some(Unit::Bool(true))),
        })
        .collect()
}
