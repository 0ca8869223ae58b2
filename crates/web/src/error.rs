//! The one error type of the web desktop.

impl Error {
    /// A failure of the desktop's own, with no error code of the cluster.
    pub fn cluster(message: impl Into<String>) -> Error {
        Error::Cluster {
            code: None,
            message: message.into(),
        }
    }
}

/// Why a login, a request or the server failed. Each message is plain words for the person
/// at the browser or the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a login token at all.
    #[error("this is not a login link; get one with `plx web`")]
    NotAToken,
    /// A token that does not decode.
    #[error("this login link is damaged ({0}); get a new one with `plx web`")]
    Damaged(String),
    /// A token of another format version.
    #[error("this login link was made by another version of plx (format {0})")]
    Version(u8),
    /// A token made for another node's desktop.
    #[error("this login link is for the desktop at {0}, not this one")]
    WrongDesktop(String),
    /// A token whose signature does not match its content and key.
    #[error("this login link is not signed by its user's key")]
    BadSignature,
    /// A token past its expiry (or one claiming a longer life than a login link has).
    #[error("this login link has expired (links last 60 s); get a new one with `plx web`")]
    Expired,
    /// A token already used once.
    #[error(
        "this login link was already used (each link logs in once); get a new one with `plx web`"
    )]
    Used,
    /// More logins within a minute than the desktop keeps track of.
    #[error("too many logins in the last minute; wait a moment and try again")]
    TooManyLogins,
    /// A signed token from a key the cluster does not know as a user.
    #[error("this key is not a registered user of the cluster")]
    NotAUser,
    /// The cluster did not answer a call in time.
    #[error("the cluster did not answer in time")]
    Timeout,
    /// The cluster refused or failed a call: its error code when it gave one (`not.found`,
    /// `denied`, …), and what it said.
    #[error("{message}")]
    Cluster {
        /// The cluster's error code, if any.
        code: Option<String>,
        /// What it said.
        message: String,
    },
    /// The server could not listen or serve.
    #[error("web desktop: {0}")]
    Io(#[from] std::io::Error),
}
