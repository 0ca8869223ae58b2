//! The raft type configuration, the peers raft knows, and the commands the state machine
//! applies. Commands and responses travel in raft log entries and snapshots (postcard): new
//! variants go at the end of each enum, and existing ones never change shape.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster member as raft records it in its membership: what another node needs to link
/// to it.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RaftPeer {
    /// The node's name (unique in the cluster).
    pub name: String,
    /// The address its links listen on (`host:port`).
    pub addr: String,
    /// Its public node key (32 bytes, ed25519); its raft id is [`crate::raft::node_id`] of it.
    pub key: [u8; 32],
}

impl fmt::Display for RaftPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the Plexus cluster state: node ids are `u64`
    /// ([`crate::raft::node_id`]), nodes are [`RaftPeer`]s, entries carry [`Command`]s and
    /// give [`Response`]s, snapshots are whole serialized state machines in memory.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = RaftPeer,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A change to the cluster state: the payload of a raft log entry, applied by every node's
/// state machine in log order, deterministically (no clock, no randomness, no local state).
///
/// A command that cannot apply (a bad path, a limit, an unknown invite…) gives a
/// [`Response::Err`] and changes nothing; it is still a committed log entry, not a raft
/// failure. Codes: `arg.bad`, `not.found`, `limit`, `invite.bad`, `storage`, `denied`,
/// `msg.replay`, `proc.exists`, `proc.name.taken`, `proc.conflict`. The full semantics: `docs/cluster-state.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// io.store's save: `value` (a units canonical binary document, `plexus_units::encode`)
    /// is saved at `path` with merge semantics (`plexus_store::save_entry`): the top-level
    /// entry named by `path[0]` becomes the merged result, a missing path is created.
    Save {
        /// The path's segments, at least one.
        path: Vec<String>,
        /// The encoded unit to save.
        value: Vec<u8>,
    },
    /// Registers user `name` with public key `key`, replacing the key the name had. A key
    /// registered under another name is refused (`arg.bad`).
    SetUser {
        /// The user's name (a valid key name: letters, digits, `.`, `_`, `-`; 1 to 64).
        name: String,
        /// The user's ed25519 public key.
        key: [u8; 32],
    },
    /// Removes user `name` (`not.found` if there is none).
    RemoveUser {
        /// The user's name.
        name: String,
    },
    /// Records which services `node` provides, replacing what it provided before (an empty
    /// list removes the node from the table).
    SetServices {
        /// The node's raft id.
        node: u64,
        /// Service names.
        services: Vec<String>,
    },
    /// Adds a one-time join token (an invite key), valid until `expires_ms`.
    AddInvite {
        /// The invite's id (its public key).
        id: [u8; 32],
        /// When it expires, in milliseconds since the Unix epoch.
        expires_ms: u64,
    },
    /// Uses (consumes) an invite. An unknown, already used or expired one is an
    /// `invite.bad` error. A successful use also prunes every invite expired at `now_ms`.
    UseInvite {
        /// The invite's id.
        id: [u8; 32],
        /// The proposer's clock when it asked, in milliseconds since the Unix epoch (the
        /// state machine has no clock of its own).
        now_ms: u64,
    },
    /// Revokes a node key for good: links refuse it from then on. Also forgets the
    /// services and metadata of the node with that key.
    Revoke {
        /// The removed node's public key.
        key: [u8; 32],
    },
    /// Sets a node's tags, replacing its previous ones (empty removes them).
    SetNodeMeta {
        /// The node's raft id.
        node: u64,
        /// Its tags.
        tags: BTreeMap<String, String>,
    },
    /// Drops every invite expired at `now_ms`.
    PruneInvites {
        /// The proposer's clock, in milliseconds since the Unix epoch.
        now_ms: u64,
    },
    /// Several commands in one log entry (the leader's group commit of concurrent writes),
    /// applied in order, each on its own: one refused changes nothing and does not stop the
    /// others. Gives a [`Response::Batch`] with one response per command. A batch inside a
    /// batch is refused (`arg.bad`).
    Batch(Vec<Command>),
    /// Registers user `name` with public key `key` when neither is registered yet (sys.usr's
    /// registration): a name another key has is `usr.name.taken`, a key this name already has
    /// is `usr.registered`, a key another name has is `usr.key.taken`.
    AddUser {
        /// The user's name (a valid key name: letters, digits, `.`, `_`, `-`; 1 to 64).
        name: String,
        /// The user's ed25519 public key.
        key: [u8; 32],
    },
    /// Renames user `name` to `to`, keeping its key: `not.found` if there is no user `name`,
    /// `usr.name.taken` if `to` is another user's name.
    RenameUser {
        /// The user's name now.
        name: String,
        /// Its new name (a valid key name).
        to: String,
    },
    /// Adds a one-time user invite (sys.usr's `invite`), valid until `expires_ms`; `id` is
    /// the hash of the token the admin hands out, never the token.
    AddUserInvite {
        /// The invite's id.
        id: [u8; 32],
        /// When it expires, in milliseconds since the Unix epoch.
        expires_ms: u64,
    },
    /// Registers user `name` with `key` as [`Command::AddUser`] does, using up user invite
    /// `invite` (and pruning every user invite expired at `now_ms`). An unknown, used or
    /// expired invite is `usr.invite.bad`; a refused registration leaves the invite unused.
    AddInvitedUser {
        /// The user's name.
        name: String,
        /// The user's public key.
        key: [u8; 32],
        /// The invite's id.
        invite: [u8; 32],
        /// The proposer's clock when it asked, in milliseconds since the Unix epoch.
        now_ms: u64,
    },
    /// io.store's save by a user: [`Command::Save`] under the ownership rules
    /// (`plexus_store::Caller::save_owner`: `denied` if the entry belongs to someone else;
    /// a new entry belongs to `user`; `private` sets whether others may read it), and, for a
    /// signed message (`once`: its hash, time and evaluation id), only if no other
    /// evaluation of that message saved before (`plexus_store::OnceTables`, else
    /// `msg.replay`).
    SaveBy {
        /// The path's segments, at least one.
        path: Vec<String>,
        /// The encoded unit to save.
        value: Vec<u8>,
        /// The saving user's public key.
        user: [u8; 32],
        /// Whether the user is an admin.
        admin: bool,
        /// Makes the entry private or public; `None` keeps it.
        private: Option<bool>,
        /// The signed message: (hash, time in ms, evaluation id).
        once: Option<([u8; 32], u64, u64)>,
    },
    /// `command` made for a signed message (`once`: its hash, time and evaluation id): applied
    /// only if no other evaluation of that message changed the state before, then recorded,
    /// in the same transaction (`plexus_store::OnceTables`, else `msg.replay`). sys.usr's
    /// changes are sent so. `command` is neither a `Batch` nor another `Once` (`arg.bad`).
    Once {
        /// The signed message: (hash, time in ms, evaluation id).
        once: ([u8; 32], u64, u64),
        /// The command to apply.
        command: Box<Command>,
    },
    /// Adds a process record (`plexus_store::ProcTables::put`): the same record again is
    /// applied (a retry), another record with its id is `proc.exists`, a live name another
    /// live process has is `proc.name.taken`.
    PutProc {
        /// The record, `plexus_store::ProcRecord::encode`d.
        record: Vec<u8>,
    },
    /// Replaces a process record if the table's is at the record's generation
    /// (`plexus_store::ProcTables::update`; else `proc.conflict`, and `not.found` for an
    /// unknown id). The same update again is applied (a retry).
    UpdateProc {
        /// The new record (with the generation it was made from), encoded.
        record: Vec<u8>,
    },
    /// Removes a process record; a missing one is no error.
    RemoveProc {
        /// The process id.
        id: String,
    },
    /// A change to the cluster file system's tree (`plexus_store::fs::FsTables::apply`),
    /// checked against `user`'s rights: `not.found`, `fs.exists`, `fs.not.dir`, `fs.is.dir`,
    /// `fs.not.empty`, `denied`, `arg.bad` or `limit` when refused.
    Fs {
        /// What changes.
        op: plexus_store::fs::FsOp,
        /// The acting user's public key.
        user: [u8; 32],
        /// Whether the user is an admin.
        admin: bool,
        /// The proposer's clock, in milliseconds since the Unix epoch (file times).
        now_ms: u64,
    },
}

impl Command {
    /// A short name for logs and errors (`save`, `set.user`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Save { .. } => "save",
            Command::SetUser { .. } => "set.user",
            Command::RemoveUser { .. } => "remove.user",
            Command::SetServices { .. } => "set.services",
            Command::AddInvite { .. } => "add.invite",
            Command::UseInvite { .. } => "use.invite",
            Command::Revoke { .. } => "revoke",
            Command::SetNodeMeta { .. } => "set.node.meta",
            Command::PruneInvites { .. } => "prune.invites",
            Command::Batch(_) => "batch",
            Command::AddUser { .. } => "add.user",
            Command::RenameUser { .. } => "rename.user",
            Command::AddUserInvite { .. } => "add.user.invite",
            Command::AddInvitedUser { .. } => "add.invited.user",
            Command::SaveBy { .. } => "save.by",
            Command::Once { .. } => "once",
            Command::PutProc { .. } => "put.proc",
            Command::UpdateProc { .. } => "update.proc",
            Command::RemoveProc { .. } => "remove.proc",
            Command::Fs { .. } => "fs",
        }
    }
}

/// What applying a [`Command`] gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied.
    Ok,
    /// Refused: nothing changed.
    Err {
        /// A Plexus error code (`arg.bad`, `not.found`, `limit`, `invite.bad`, `storage`).
        code: String,
        /// What went wrong, for people.
        message: String,
    },
    /// A [`Command::Batch`]'s responses, one per command, in order.
    Batch(Vec<Response>),
}

impl Response {
    /// A refusal with `code` and `message`.
    pub fn err(code: &str, message: impl Into<String>) -> Response {
        Response::Err {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the command applied.
    pub fn is_ok(&self) -> bool {
        matches!(self, Response::Ok)
    }
}
