//! The one error type of the client library.

use std::path::PathBuf;

use crate::home::PASSPHRASE_ENV;

/// Why a client operation failed: reaching a node, signing, or the home directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the node's socket.
    #[error("no node is running at {} (start one with `plx up --detach` or `plx node`)", socket.display())]
    NoNode {
        /// The socket.
        socket: PathBuf,
    },
    /// The node's socket could not be connected to for another reason.
    #[error("cannot connect to {}", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The node refused the connection (a protocol version it does not speak, or it serves
    /// as many clients as it may).
    #[error("the node refused the connection: {reason}")]
    Refused {
        /// The node's reason.
        reason: String,
    },
    /// The node answered the greeting with something other than a welcome.
    #[error("unexpected first frame from the node: {frame}")]
    UnexpectedFirstFrame {
        /// The frame, as debug text.
        frame: String,
    },
    /// The connection ended (the node stopped, or closed it).
    #[error("the node closed the connection")]
    Closed,
    /// Writing to the node failed: it has gone.
    #[error("the node closed the connection")]
    Send(#[source] std::io::Error),
    /// Reading from the node failed.
    #[error("cannot read from the node")]
    Receive(#[source] std::io::Error),
    /// A frame could not be encoded, or the node sent one that does not decode.
    #[error(transparent)]
    Protocol(#[from] plexus_protocol::ProtocolError),
    /// A reply's value is not a valid unit encoding.
    #[error("bad reply from the node")]
    BadReply(#[source] plexus_units::DecodeError),
    /// A reply's error unit is not a valid unit encoding.
    #[error("bad error reply from the node")]
    BadErrorReply(#[source] plexus_units::DecodeError),
    /// A service name that cannot be written (a program's id used as a name, say).
    #[error(transparent)]
    Name(plexus_units::NameError),
    /// The system clock is before 1970, so a message cannot be stamped.
    #[error("the system clock is before 1970")]
    ClockBeforeEpoch(#[source] std::time::SystemTimeError),
    /// The system clock is beyond what a message's time can hold.
    #[error("the system clock is out of range")]
    ClockOutOfRange,
    /// A message could not be signed.
    #[error(transparent)]
    Sign(#[from] plexus_identity::SignError),
    /// Neither `$PLX_HOME` nor `$HOME` names the home directory.
    #[error("neither PLX_HOME nor HOME is set: use --home DIR")]
    NoHome,
    /// A file or directory of the home could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `create`, `list`…).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file could not be written privately and atomically.
    #[error(transparent)]
    Write(#[from] plexus_node::NodeError),
    /// No key file for this user name.
    #[error("no user named {name:?} (see `plx user list`)")]
    NoSuchUser {
        /// The name.
        name: String,
    },
    /// A key file for this user name exists already.
    #[error("a user named {name:?} already exists ({})", path.display())]
    UserExists {
        /// The name.
        name: String,
        /// Its key file.
        path: PathBuf,
    },
    /// A key file that does not parse.
    #[error("{}", path.display())]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: plexus_identity::KeyFileError,
    },
    /// A new key pair could not be made.
    #[error(transparent)]
    NewKey(#[from] plexus_identity::KeyError),
    /// A key file could not be made from a key pair.
    #[error(transparent)]
    NewKeyFile(plexus_identity::KeyFileError),
    /// A user's key could not be unlocked (a wrong passphrase, a damaged file).
    #[error("user {name:?}")]
    Unlock {
        /// The user.
        name: String,
        /// Why.
        source: plexus_identity::KeyFileError,
    },
    /// An encrypted key needs a passphrase and there is no way to ask for one.
    #[error("a passphrase is needed: set {PASSPHRASE_ENV} or run in a terminal")]
    PassphraseNeeded,
    /// The passphrase could not be read from the terminal.
    #[error("cannot read the passphrase")]
    PassphraseRead(#[source] std::io::Error),
    /// The passphrase and its confirmation differ.
    #[error("the passphrases differ")]
    PassphrasesDiffer,
}

/// A client operation's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
